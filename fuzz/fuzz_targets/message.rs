//! LDAP message decoding: any bytes either decode to messages or fail cleanly, within the
//! server's size and depth caps; and the server's codec (which reads common requests itself,
//! `server/src/codec/request.rs`) decodes exactly as ldap3_proto's: the same messages, the same
//! bytes left, a failure at the same point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the caps, so that small ones are explored too.
    let (caps, data) = data.split_first().map_or((0, data), |(c, d)| (*c, d));
    let (max_bytes, max_depth) = match caps % 4 {
        0 => (64 * 1024, 64),
        1 => (64 * 1024, 4),
        2 => (48, 64),
        _ => (1024, 8),
    };
    let mut reference = ldap3_proto::LdapCodec::new(Some(max_bytes), Some(max_depth));
    let mut ours = roster_server::codec::Codec::new(max_bytes, max_depth);
    let mut a = bytes::BytesMut::from(data);
    let mut b = bytes::BytesMut::from(data);
    // Every message the bytes hold, until one fails or more bytes are needed.
    for _ in 0..64 {
        match (reference.decode(&mut a), ours.decode(&mut b)) {
            (Ok(Some(x)), Ok(Some(y))) => {
                assert_eq!(x, y);
                assert_eq!(a, b);
            }
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => break,
            (x, y) => panic!("ldap3_proto: {x:?}, roster: {y:?}"),
        }
    }
});
