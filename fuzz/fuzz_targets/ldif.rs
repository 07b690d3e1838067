//! LDIF reading: any bytes yield records or a line-numbered error, never a panic, and every
//! record read writes back to LDIF that reads to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster_server::ldif::{write_line, LdifReader};

fuzz_target!(|data: &[u8]| {
    let mut reader = LdifReader::new(data);
    for _ in 0..256 {
        match reader.next_record() {
            Ok(Some(rec)) => {
                let mut out = Vec::new();
                write_line(&mut out, "dn", rec.dn.as_bytes()).expect("write to memory");
                for (name, value) in &rec.attrs {
                    write_line(&mut out, name, value).expect("write to memory");
                }
                let mut again = LdifReader::new(out.as_slice());
                let back = again
                    .next_record()
                    .expect("written LDIF reads")
                    .expect("one record");
                assert_eq!(back.dn, rec.dn);
                assert_eq!(back.attrs, rec.attrs);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
