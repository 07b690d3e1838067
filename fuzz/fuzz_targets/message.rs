//! LDAP message decoding: any bytes either decode to messages or fail cleanly, within the
//! server's size and depth caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = ldap3_proto::LdapCodec::new(Some(64 * 1024), Some(64));
    let mut buf = bytes::BytesMut::from(data);
    // Every message the bytes hold, until one fails or more bytes are needed.
    for _ in 0..64 {
        match codec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
    }
});
