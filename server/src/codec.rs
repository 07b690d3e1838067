//! The connection's LDAP codec: ldap3_proto's `LdapCodec` for reading requests and for most
//! responses, and a direct BER writer for the two responses nearly every search sends (a result
//! entry and the result done, without controls or referrals). ldap3_proto builds a tree of tags
//! and copies every level into a fresh buffer byte by byte, which cost more than the search's
//! store lookup; this writes each byte once into the output buffer, and the bytes are the same.
//! A search's result entry can also come encoded already ([`EncodedEntry`], written by the
//! search straight from the entry the store's cache shares), and is then only framed.
//! Requests: simple binds, unbinds and searches with equality and presence filters are read
//! by `request` straight into `LdapMsg`, everything else by ldap3_proto (see `request` for
//! how the two are kept the same).

mod request;

use crate::metrics::Metrics;
use ldap3_proto::proto::{LdapMsg, LdapOp, LdapResult, LdapSearchResultEntry};
use ldap3_proto::LdapCodec;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// BER tags of the universal and LDAP application types written here.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const ENUMERATED: u8 = 0x0a;
const OCTET_STRING: u8 = 0x04;
const BIND_RESPONSE: u8 = 0x61;
const SEARCH_RESULT_ENTRY: u8 = 0x64;
const SEARCH_RESULT_DONE: u8 = 0x65;

/// Reads LDAP messages as `LdapCodec` does (size and depth caps) and writes them with the
/// same bytes, search entries and results directly. With metrics, it times each operation
/// from its request's decoding to its answer's encoding.
pub struct Codec {
    inner: LdapCodec,
    /// The caps `inner` was made with, for the direct request decoder.
    max_message_bytes: usize,
    max_ber_depth: usize,
    metrics: Option<Arc<Metrics>>,
    /// Operations are timed (`[metrics] listen` is set): a clock reading at each end.
    timed: bool,
    /// Requests not answered yet: message id, operation (an index of `metrics::OPS`), arrival.
    pending: Vec<(i32, usize, Option<Instant>)>,
}

/// Requests a connection may leave unanswered (abandoned ones) before their timings are
/// dropped; a client has at most 64 outstanding.
const MAX_PENDING: usize = 256;

impl Codec {
    pub fn new(max_message_bytes: usize, max_ber_depth: usize) -> Codec {
        Codec {
            inner: LdapCodec::new(Some(max_message_bytes), Some(max_ber_depth)),
            max_message_bytes,
            max_ber_depth,
            metrics: None,
            timed: false,
            pending: Vec::new(),
        }
    }

    /// Counts every operation of the connection in `metrics` (and times it when `timed`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>, timed: bool) -> Codec {
        self.metrics = Some(metrics);
        self.timed = timed;
        self
    }

    /// New message size and depth caps (after a bind), keeping the operations in flight.
    pub fn set_limits(&mut self, max_message_bytes: usize, max_ber_depth: usize) {
        self.inner = LdapCodec::new(Some(max_message_bytes), Some(max_ber_depth));
        self.max_message_bytes = max_message_bytes;
        self.max_ber_depth = max_ber_depth;
    }

    /// The next request, as `LdapCodec::decode` reads it.
    fn decode_request(&mut self, buf: &mut BytesMut) -> io::Result<Option<LdapMsg>> {
        // LdapCodec refuses a buffer past twice the message cap before reading anything.
        if buf.len() <= self.max_message_bytes.saturating_mul(2) {
            if let Some((msg, size)) =
                request::decode(buf, self.max_message_bytes, self.max_ber_depth)
            {
                buf.advance(size);
                return Ok(Some(msg));
            }
        }
        self.inner.decode(buf)
    }
}

/// The metrics index of a request that gets an answer.
fn request_kind(op: &LdapOp) -> Option<usize> {
    Some(match op {
        LdapOp::BindRequest(_) => 0,
        LdapOp::SearchRequest(_) => 1,
        LdapOp::CompareRequest(_) => 2,
        LdapOp::AddRequest(_) => 3,
        LdapOp::ModifyRequest(_) => 4,
        LdapOp::DelRequest(_) => 5,
        LdapOp::ModifyDNRequest(_) => 6,
        LdapOp::ExtendedRequest(_) => 7,
        _ => return None,
    })
}

/// The result code of a message that ends an operation.
fn final_code(op: &LdapOp) -> Option<u32> {
    let r = match op {
        LdapOp::BindResponse(r) => &r.res,
        LdapOp::SearchResultDone(r)
        | LdapOp::CompareResult(r)
        | LdapOp::AddResponse(r)
        | LdapOp::ModifyResponse(r)
        | LdapOp::DelResponse(r)
        | LdapOp::ModifyDNResponse(r) => r,
        LdapOp::ExtendedResponse(r) => &r.res,
        _ => return None,
    };
    Some(u32::try_from(r.code.clone() as i64).unwrap_or(80))
}

impl Decoder for Codec {
    type Item = LdapMsg;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<LdapMsg>> {
        let msg = self.decode_request(buf)?;
        if let (Some(metrics), Some(m)) = (&self.metrics, &msg) {
            if let Some(kind) = request_kind(&m.op) {
                metrics.initiated(kind);
                if self.pending.len() >= MAX_PENDING {
                    self.pending.clear();
                }
                self.pending
                    .push((m.msgid, kind, self.timed.then(Instant::now)));
            }
        }
        Ok(msg)
    }
}

impl Encoder<LdapMsg> for Codec {
    type Error = io::Error;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> io::Result<()> {
        if let Some(metrics) = &self.metrics {
            if let Some(code) = final_code(&msg.op) {
                if let Some(i) = self.pending.iter().position(|(id, _, _)| *id == msg.msgid) {
                    let (_, kind, at) = self.pending.swap_remove(i);
                    metrics.record(kind, code, at.map(|t| t.elapsed()));
                }
            }
        }
        if msg.msgid < 0 || !msg.ctrl.is_empty() {
            return self.inner.encode(msg, buf);
        }
        match &msg.op {
            LdapOp::SearchResultEntry(e) => {
                write_entry(buf, msg.msgid, e);
                Ok(())
            }
            LdapOp::SearchResultDone(r) if r.referral.is_empty() => {
                write_result(buf, SEARCH_RESULT_DONE, msg.msgid, r);
                Ok(())
            }
            LdapOp::BindResponse(b) if b.res.referral.is_empty() && b.saslcreds.is_none() => {
                write_result(buf, BIND_RESPONSE, msg.msgid, &b.res);
                Ok(())
            }
            _ => self.inner.encode(msg, buf),
        }
    }
}

/// A search result entry encoded straight from an entry the store's cache shares: the
/// SearchResultEntry op (tag and content), which [`EntryMsg`] sends in its message envelope.
/// Building an [`LdapSearchResultEntry`] instead copies every value and attribute name into
/// buffers of its own, encodes them, and frees them again.
#[derive(Debug, Clone)]
pub struct EncodedEntry(BytesMut);

/// One attribute of an [`EncodedEntry`]: the type's name, the description's options, values.
pub type EntryAttr<'a> = (&'a str, &'a [String], &'a [Vec<u8>]);

impl EncodedEntry {
    /// Encodes the entry named `dn` with the attributes `attrs`, with no values when
    /// `types_only`.
    pub fn new(dn: &str, attrs: &[EntryAttr<'_>], types_only: bool) -> EncodedEntry {
        let desc_len = |name: &str, options: &[String]| {
            name.len() + options.iter().map(|o| 1 + o.len()).sum::<usize>()
        };
        let vals = |v: &[Vec<u8>]| -> usize {
            if types_only {
                0
            } else {
                values_len(v)
            }
        };
        let all: usize = attrs
            .iter()
            .map(|(name, options, v)| tlv_len(tlv_len(desc_len(name, options)) + tlv_len(vals(v))))
            .sum();
        let op = tlv_len(dn.len()) + tlv_len(all);
        let mut buf = BytesMut::with_capacity(tlv_len(op));
        put_header(&mut buf, SEARCH_RESULT_ENTRY, op);
        put_octets(&mut buf, dn.as_bytes());
        put_header(&mut buf, SEQUENCE, all);
        for (name, options, v) in attrs {
            let desc = desc_len(name, options);
            let set = vals(v);
            put_header(&mut buf, SEQUENCE, tlv_len(desc) + tlv_len(set));
            put_header(&mut buf, OCTET_STRING, desc);
            buf.put_slice(name.as_bytes());
            for o in *options {
                buf.put_u8(b';');
                buf.put_slice(o.as_bytes());
            }
            put_header(&mut buf, SET, set);
            if !types_only {
                for value in *v {
                    put_octets(&mut buf, value);
                }
            }
        }
        EncodedEntry(buf)
    }
}

#[cfg(test)]
impl EncodedEntry {
    /// The entry read back by ldap3_proto's decoder, for tests that compare entries.
    pub fn decoded(&self) -> LdapSearchResultEntry {
        let mut buf = BytesMut::new();
        Codec::new(1 << 20, 32)
            .encode(
                EntryMsg {
                    msgid: 1,
                    entry: self.clone(),
                },
                &mut buf,
            )
            .expect("encode");
        match LdapCodec::new(None, None).decode(&mut buf) {
            Ok(Some(LdapMsg {
                op: LdapOp::SearchResultEntry(e),
                ..
            })) => e,
            other => panic!("not an entry: {other:?}"),
        }
    }
}

/// An encoded search result entry in the response to message `msgid`.
#[derive(Debug)]
pub struct EntryMsg {
    pub msgid: i32,
    pub entry: EncodedEntry,
}

impl Encoder<EntryMsg> for Codec {
    type Error = io::Error;

    fn encode(&mut self, msg: EntryMsg, buf: &mut BytesMut) -> io::Result<()> {
        // The message id as ldap3_proto writes it (so as every other response): as many
        // bytes as its magnitude needs, one more for a positive value whose high bit is set.
        let v = i64::from(msg.msgid);
        let magnitude = v.unsigned_abs();
        let mut count = (u64::BITS - magnitude.leading_zeros()).div_ceil(8).max(1) as usize;
        if v > 0 && (magnitude >> (8 * count - 1)) == 1 {
            count += 1;
        }
        let bytes = v.to_be_bytes();
        let id = bytes.get(bytes.len() - count..).unwrap_or(&bytes);
        let op = &msg.entry.0;
        let content = tlv_len(id.len()) + op.len();
        buf.reserve(tlv_len(content));
        put_header(buf, SEQUENCE, content);
        put_header(buf, INTEGER, id.len());
        buf.put_slice(id);
        buf.put_slice(op);
        Ok(())
    }
}

/// Bytes of a BER length.
fn len_of_len(n: usize) -> usize {
    if n < 0x80 {
        1
    } else {
        1 + (usize::BITS - n.leading_zeros()).div_ceil(8) as usize
    }
}

/// Bytes of a whole element (tag, length, content) with `n` bytes of content.
fn tlv_len(n: usize) -> usize {
    1 + len_of_len(n) + n
}

/// Writes a tag and the length of its content, in one copy.
fn put_header(buf: &mut BytesMut, tag: u8, n: usize) {
    if n < 0x80 {
        buf.extend_from_slice(&[tag, n as u8]);
    } else {
        // Long form: the count of length bytes, then the length, big-endian and minimal.
        let count = len_of_len(n) - 1;
        let mut header = [0u8; 2 + std::mem::size_of::<usize>()];
        header[0] = tag;
        header[1] = 0x80 | count as u8;
        for (slot, b) in header[2..]
            .iter_mut()
            .zip(n.to_be_bytes().iter().skip_while(|b| **b == 0))
        {
            *slot = *b;
        }
        buf.extend_from_slice(header.get(..2 + count).unwrap_or(&header));
    }
}

/// Bytes of a non-negative INTEGER or ENUMERATED: big-endian, minimal, with a leading zero
/// byte when the high bit would be set (BER integers are signed).
fn int_len(v: u32) -> usize {
    (u32::BITS - v.leading_zeros()) as usize / 8 + 1
}

fn put_int(buf: &mut BytesMut, tag: u8, v: u32) {
    let n = int_len(v);
    put_header(buf, tag, n);
    let bytes = u64::from(v).to_be_bytes();
    for b in bytes.iter().skip(bytes.len() - n) {
        buf.put_u8(*b);
    }
}

fn put_octets(buf: &mut BytesMut, v: &[u8]) {
    put_header(buf, OCTET_STRING, v.len());
    buf.put_slice(v);
}

/// Content length of a partial attribute's value set.
fn values_len(vals: &[Vec<u8>]) -> usize {
    vals.iter().map(|v| tlv_len(v.len())).sum()
}

fn attribute_len(atype: &str, vals: &[Vec<u8>]) -> usize {
    tlv_len(atype.len()) + tlv_len(values_len(vals))
}

/// The message envelope: SEQUENCE { INTEGER msgid, op } with `op_len` bytes of op.
fn put_envelope(buf: &mut BytesMut, msgid: u32, op_len: usize) {
    let content = tlv_len(int_len(msgid)) + op_len;
    buf.reserve(tlv_len(content));
    put_header(buf, SEQUENCE, content);
    put_int(buf, INTEGER, msgid);
}

fn write_entry(buf: &mut BytesMut, msgid: i32, e: &LdapSearchResultEntry) {
    let msgid = msgid.unsigned_abs();
    let attrs: usize = e
        .attributes
        .iter()
        .map(|a| tlv_len(attribute_len(&a.atype, &a.vals)))
        .sum();
    let op = tlv_len(e.dn.len()) + tlv_len(attrs);
    put_envelope(buf, msgid, tlv_len(op));
    put_header(buf, SEARCH_RESULT_ENTRY, op);
    put_octets(buf, e.dn.as_bytes());
    put_header(buf, SEQUENCE, attrs);
    for a in &e.attributes {
        put_header(buf, SEQUENCE, attribute_len(&a.atype, &a.vals));
        put_octets(buf, a.atype.as_bytes());
        put_header(buf, SET, values_len(&a.vals));
        for v in &a.vals {
            put_octets(buf, v);
        }
    }
}

/// A result with neither referral nor anything after it (a search's or a simple bind's).
fn write_result(buf: &mut BytesMut, tag: u8, msgid: i32, r: &LdapResult) {
    let msgid = msgid.unsigned_abs();
    // Result codes are small non-negative numbers (the enum's discriminants).
    let code = u32::try_from(r.code.clone() as i64).unwrap_or(80);
    let op = tlv_len(int_len(code)) + tlv_len(r.matcheddn.len()) + tlv_len(r.message.len());
    put_envelope(buf, msgid, tlv_len(op));
    put_header(buf, tag, op);
    put_int(buf, ENUMERATED, code);
    put_octets(buf, r.matcheddn.as_bytes());
    put_octets(buf, r.message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::control::LdapControl;
    use ldap3_proto::proto::{LdapBindResponse, LdapPartialAttribute, LdapResultCode};

    fn reference(msg: &LdapMsg) -> BytesMut {
        let mut buf = BytesMut::new();
        LdapCodec::new(None, None)
            .encode(msg.clone(), &mut buf)
            .expect("encode");
        buf
    }

    fn ours(msg: &LdapMsg) -> BytesMut {
        let mut buf = BytesMut::new();
        Codec::new(1 << 20, 32)
            .encode(msg.clone(), &mut buf)
            .expect("encode");
        buf
    }

    fn entry(msgid: i32, dn: &str, attrs: Vec<(&str, Vec<Vec<u8>>)>) -> LdapMsg {
        LdapMsg {
            msgid,
            op: LdapOp::SearchResultEntry(LdapSearchResultEntry {
                dn: dn.to_string(),
                attributes: attrs
                    .into_iter()
                    .map(|(t, vals)| LdapPartialAttribute {
                        atype: t.to_string(),
                        vals,
                    })
                    .collect(),
            }),
            ctrl: Vec::new(),
        }
    }

    fn done(msgid: i32, code: LdapResultCode, matched: &str, message: &str) -> LdapMsg {
        LdapMsg {
            msgid,
            op: LdapOp::SearchResultDone(LdapResult {
                code,
                matcheddn: matched.to_string(),
                message: message.to_string(),
                referral: Vec::new(),
            }),
            ctrl: Vec::new(),
        }
    }

    const MSGIDS: [i32; 12] = [
        0,
        1,
        2,
        127,
        128,
        255,
        256,
        32767,
        32768,
        65536,
        8_388_608,
        i32::MAX,
    ];

    #[test]
    fn entries_encode_as_ldap3_proto_does() {
        let sizes = [0usize, 1, 127, 128, 255, 256, 65535, 65536, 70000];
        for msgid in MSGIDS {
            assert_eq!(
                ours(&entry(msgid, "", vec![])),
                reference(&entry(msgid, "", vec![]))
            );
            for &n in &sizes {
                let big = vec![b'x'; n];
                let msg = entry(
                    msgid,
                    "uid=user0000001,ou=people,dc=example,dc=com",
                    vec![
                        ("objectClass", vec![b"top".to_vec(), b"person".to_vec()]),
                        ("jpegPhoto", vec![big.clone()]),
                        ("cn", vec![]),
                        ("description;lang-de", vec![big.clone(), big]),
                    ],
                );
                assert_eq!(
                    ours(&msg),
                    reference(&msg),
                    "msgid {msgid}, value of {n} bytes"
                );
            }
        }
        // Many attributes: the attribute list's own length in long form.
        let many: Vec<(&str, Vec<Vec<u8>>)> = (0..300)
            .map(|_| ("mail", vec![b"a@b.c".to_vec()]))
            .collect();
        let msg = entry(7, "dc=example,dc=com", many);
        assert_eq!(ours(&msg), reference(&msg));
    }

    /// What `EncodedEntry` writes for the attributes of `msg` (types as "name;opt;opt").
    fn encoded(msg: &LdapMsg, types_only: bool) -> BytesMut {
        let LdapOp::SearchResultEntry(e) = &msg.op else {
            panic!("not an entry")
        };
        let split: Vec<(String, Vec<String>, Vec<Vec<u8>>)> = e
            .attributes
            .iter()
            .map(|a| {
                let mut parts = a.atype.split(';');
                let name = parts.next().unwrap_or_default().to_string();
                (name, parts.map(str::to_string).collect(), a.vals.clone())
            })
            .collect();
        let attrs: Vec<EntryAttr<'_>> = split
            .iter()
            .map(|(n, o, v)| (n.as_str(), o.as_slice(), v.as_slice()))
            .collect();
        let entry = EncodedEntry::new(&e.dn, &attrs, types_only);
        let mut buf = BytesMut::new();
        Codec::new(1 << 20, 32)
            .encode(
                EntryMsg {
                    msgid: msg.msgid,
                    entry,
                },
                &mut buf,
            )
            .expect("encode");
        buf
    }

    #[test]
    fn entries_encoded_from_shared_entries_are_the_same_bytes() {
        let sizes = [0usize, 1, 127, 128, 255, 256, 65535, 65536, 70000];
        // Negative ids come from clients that send ids past 2^31 (truncated as ldap3_proto
        // does); they are written back as ldap3_proto writes them.
        let ids = MSGIDS
            .iter()
            .copied()
            .chain([-1, -128, -129, -32768, -32769, i32::MIN]);
        for msgid in ids {
            for &n in &sizes {
                let big = vec![b'x'; n];
                let attrs = |vals: bool| {
                    let v = |x: Vec<Vec<u8>>| if vals { x } else { Vec::new() };
                    vec![
                        ("objectClass", v(vec![b"top".to_vec(), b"person".to_vec()])),
                        ("jpegPhoto", v(vec![big.clone()])),
                        ("cn", vec![]),
                        (
                            "description;lang-de;x-opt",
                            v(vec![big.clone(), big.clone()]),
                        ),
                    ]
                };
                let dn = "uid=user0000001,ou=people,dc=example,dc=com";
                let msg = entry(msgid, dn, attrs(true));
                assert_eq!(
                    encoded(&msg, false),
                    reference(&msg),
                    "msgid {msgid}, value of {n} bytes"
                );
                // Types only: the same attributes with empty value sets.
                assert_eq!(
                    encoded(&msg, true),
                    reference(&entry(msgid, dn, attrs(false))),
                    "types only, msgid {msgid}"
                );
            }
        }
        let many: Vec<(&str, Vec<Vec<u8>>)> = (0..300)
            .map(|_| ("mail", vec![b"a@b.c".to_vec()]))
            .collect();
        let msg = entry(7, "dc=example,dc=com", many);
        assert_eq!(encoded(&msg, false), reference(&msg));
        let empty = entry(3, "", vec![]);
        assert_eq!(encoded(&empty, false), reference(&empty));
    }

    #[test]
    fn results_encode_as_ldap3_proto_does() {
        let codes = [
            LdapResultCode::Success,
            LdapResultCode::NoSuchObject,
            LdapResultCode::SizeLimitExceeded,
            LdapResultCode::UnwillingToPerform,
            LdapResultCode::Other,
        ];
        for msgid in MSGIDS {
            for code in &codes {
                for (matched, message) in [
                    ("", ""),
                    ("dc=example,dc=com", "no such entry"),
                    ("", &*"m".repeat(300)),
                ] {
                    let msg = done(msgid, code.clone(), matched, message);
                    assert_eq!(ours(&msg), reference(&msg), "msgid {msgid}, {code:?}");
                    let LdapOp::SearchResultDone(res) = msg.op else {
                        panic!("not a result");
                    };
                    let bind = LdapMsg {
                        msgid,
                        op: LdapOp::BindResponse(LdapBindResponse {
                            res,
                            saslcreds: None,
                        }),
                        ctrl: Vec::new(),
                    };
                    assert_eq!(
                        ours(&bind),
                        reference(&bind),
                        "bind: msgid {msgid}, {code:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_messages_are_left_to_ldap3_proto() {
        // A bind response with SASL credentials, and one with a referral.
        for (saslcreds, referral) in [
            (Some(b"x".to_vec()), vec![]),
            (None, vec!["ldap://h/".to_string()]),
        ] {
            let msg = LdapMsg {
                msgid: 4,
                op: LdapOp::BindResponse(LdapBindResponse {
                    res: LdapResult {
                        code: LdapResultCode::Success,
                        matcheddn: String::new(),
                        message: String::new(),
                        referral,
                    },
                    saslcreds,
                }),
                ctrl: Vec::new(),
            };
            assert_eq!(ours(&msg), reference(&msg));
        }
        let mut with_referral = done(3, LdapResultCode::Referral, "", "");
        if let LdapOp::SearchResultDone(r) = &mut with_referral.op {
            r.referral = vec!["ldap://other/".to_string()];
        }
        let mut with_control = done(4, LdapResultCode::Success, "", "");
        with_control.ctrl = vec![LdapControl::SimplePagedResults {
            size: 0,
            cookie: vec![1, 2, 3],
        }];
        for msg in [with_referral, with_control, entry(-1, "", vec![])] {
            assert_eq!(ours(&msg), reference(&msg));
        }
    }

    #[test]
    fn decoding_reads_what_was_written() {
        let msg = entry(
            9,
            "uid=a,dc=example,dc=com",
            vec![("mail", vec![b"a@example.com".to_vec()])],
        );
        let mut buf = ours(&msg);
        let back = Codec::new(1 << 20, 32)
            .decode(&mut buf)
            .expect("decode")
            .expect("a whole message");
        assert_eq!(back, msg);
    }
}
