//! A direct decoder for the requests a mail server sends all day: simple binds, searches whose
//! filter is made of equality and presence tests under AND, OR and NOT, and unbinds, all
//! without controls. ldap3_proto first parses the bytes into a tree of tags (one allocation
//! per element) and then converts the tree; this reads the bytes once into the `LdapMsg`.
//!
//! It either produces exactly the message ldap3_proto's `LdapCodec` would produce from the same
//! bytes, with the same number of bytes consumed, or declines (`None`), and then the caller asks
//! ldap3_proto, which decodes, waits for more bytes or fails as it always did. So it declines
//! everything it does not read the way ldap3_proto does: other operations and filter kinds,
//! controls, trailing elements ldap3_proto would ignore, lengths in other forms than short and
//! one to four bytes long, messages past the size cap and elements at or past the depth cap
//! (ldap3_lber counts every element, primitive ones included, from 1 for the message).

use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMsg, LdapOp,
    LdapSearchRequest, LdapSearchScope,
};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BOOLEAN: u8 = 0x01;
const ENUMERATED: u8 = 0x0a;
const OCTET_STRING: u8 = 0x04;
const BIND_REQUEST: u8 = 0x60;
const UNBIND_REQUEST: u8 = 0x42;
const SEARCH_REQUEST: u8 = 0x63;
const SIMPLE_CREDENTIALS: u8 = 0x80;
const FILTER_AND: u8 = 0xa0;
const FILTER_OR: u8 = 0xa1;
const FILTER_NOT: u8 = 0xa2;
const FILTER_EQUALITY: u8 = 0xa3;
const FILTER_PRESENT: u8 = 0x87;

/// Filters nested deeper than this are left to ldap3_proto (its own limit is 63).
const MAX_FILTER_NESTING: usize = 16;

/// Bytes read one element at a time, with the depth of the elements they hold.
struct Ber<'a> {
    rest: &'a [u8],
    /// Depth of the elements read from here (the message is 1).
    depth: usize,
    max_depth: usize,
}

impl<'a> Ber<'a> {
    /// The next element: its tag byte and a reader over its content (one level deeper).
    fn next(&mut self) -> Option<(u8, Ber<'a>)> {
        if self.depth >= self.max_depth {
            return None;
        }
        let (&tag, rest) = self.rest.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if !(1..=4).contains(&n) {
                return None;
            }
            let (bytes, after) = rest.split_at_checked(n)?;
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (content, after) = rest.split_at_checked(len)?;
        self.rest = after;
        Some((
            tag,
            Ber {
                rest: content,
                depth: self.depth + 1,
                max_depth: self.max_depth,
            },
        ))
    }

    /// The next element's content if its tag is `tag`.
    fn expect(&mut self, tag: u8) -> Option<Ber<'a>> {
        match self.next()? {
            (t, inner) if t == tag => Some(inner),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The content as ldap3_proto reads an INTEGER or ENUMERATED: up to eight bytes, big-endian,
    /// not sign-extended.
    fn integer(&self) -> Option<i64> {
        if self.rest.len() > 8 {
            return None;
        }
        let v = self
            .rest
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        Some(i64::from_be_bytes(v.to_be_bytes()))
    }

    fn string(&self) -> Option<String> {
        std::str::from_utf8(self.rest).ok().map(str::to_owned)
    }

    /// The next element, an OCTET STRING holding UTF-8.
    fn next_string(&mut self) -> Option<String> {
        self.expect(OCTET_STRING)?.string()
    }

    fn next_integer(&mut self, tag: u8) -> Option<i64> {
        self.expect(tag)?.integer()
    }
}

/// The message at the start of `buf` and its length in bytes, when it is one this decoder
/// reads and fits the caps; `None` otherwise (incomplete included).
pub(super) fn decode(buf: &[u8], max_bytes: usize, max_depth: usize) -> Option<(LdapMsg, usize)> {
    let mut top = Ber {
        rest: buf,
        depth: 1,
        max_depth,
    };
    let mut msg = top.expect(SEQUENCE)?;
    let size = buf.len() - top.rest.len();
    if size > max_bytes {
        return None;
    }
    // Truncated to 32 bits as ldap3_proto does.
    let msgid = msg.next_integer(INTEGER)? as i32;
    let (tag, mut op) = msg.next()?;
    if !msg.is_empty() {
        return None; // controls
    }
    let op = match tag {
        SEARCH_REQUEST => LdapOp::SearchRequest(search(&mut op)?),
        BIND_REQUEST => LdapOp::BindRequest(bind(&mut op)?),
        // ldap3_proto reads any content of an unbind as nothing.
        UNBIND_REQUEST => LdapOp::UnbindRequest,
        _ => return None,
    };
    Some((
        LdapMsg {
            msgid,
            op,
            ctrl: Vec::new(),
        },
        size,
    ))
}

fn search(r: &mut Ber<'_>) -> Option<LdapSearchRequest> {
    let base = r.next_string()?;
    let scope = match r.next_integer(ENUMERATED)? {
        0 => LdapSearchScope::Base,
        1 => LdapSearchScope::OneLevel,
        2 => LdapSearchScope::Subtree,
        3 => LdapSearchScope::Children,
        _ => return None,
    };
    let aliases = match r.next_integer(ENUMERATED)? {
        0 => LdapDerefAliases::Never,
        1 => LdapDerefAliases::InSearching,
        2 => LdapDerefAliases::FindingBaseObj,
        3 => LdapDerefAliases::Always,
        _ => return None,
    };
    let sizelimit = r.next_integer(INTEGER)? as i32;
    let timelimit = r.next_integer(INTEGER)? as i32;
    let typesonly = *r.expect(BOOLEAN)?.rest.first()? != 0;
    let filter = filter(r, 1)?;
    let mut list = r.expect(SEQUENCE)?;
    let mut attrs = Vec::new();
    while !list.is_empty() {
        attrs.push(list.next_string()?);
    }
    if !r.is_empty() {
        return None;
    }
    Some(LdapSearchRequest {
        base,
        scope,
        aliases,
        sizelimit,
        timelimit,
        typesonly,
        filter,
        attrs,
    })
}

/// The next element as a filter `nesting` levels deep (the search's own filter is 1).
fn filter(r: &mut Ber<'_>, nesting: usize) -> Option<LdapFilter> {
    if nesting > MAX_FILTER_NESTING {
        return None;
    }
    let (tag, mut inner) = r.next()?;
    let f = match tag {
        FILTER_AND | FILTER_OR => {
            let mut parts = Vec::new();
            while !inner.is_empty() {
                parts.push(filter(&mut inner, nesting + 1)?);
            }
            match tag {
                FILTER_AND => LdapFilter::And(parts),
                _ => LdapFilter::Or(parts),
            }
        }
        FILTER_NOT => LdapFilter::Not(Box::new(filter(&mut inner, nesting + 1)?)),
        FILTER_EQUALITY => {
            let attr = inner.next_string()?;
            let value = inner.next_string()?;
            LdapFilter::Equality(attr, value)
        }
        FILTER_PRESENT => return inner.string().map(LdapFilter::Present),
        _ => return None,
    };
    inner.is_empty().then_some(f)
}

fn bind(r: &mut Ber<'_>) -> Option<LdapBindRequest> {
    let version = r.next_integer(INTEGER)?;
    let dn = r.next_string()?;
    let password = r.expect(SIMPLE_CREDENTIALS)?.string()?;
    r.is_empty().then_some(LdapBindRequest {
        version,
        dn,
        cred: LdapBindCred::Simple(password),
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::super::Codec;
    use ldap3_proto::control::LdapControl;
    use ldap3_proto::proto::*;
    use ldap3_proto::{parse_ldap_filter_str, LdapCodec};
    use tokio_util::bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    fn encoded(msg: LdapMsg) -> Vec<u8> {
        let mut buf = BytesMut::new();
        LdapCodec::default().encode(msg, &mut buf).unwrap();
        buf.to_vec()
    }

    fn msg(msgid: i32, op: LdapOp) -> LdapMsg {
        LdapMsg {
            msgid,
            op,
            ctrl: Vec::new(),
        }
    }

    fn search(base: &str, scope: LdapSearchScope, filter: &str, attrs: &[&str]) -> LdapOp {
        LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter: parse_ldap_filter_str(filter).unwrap(),
            attrs: attrs.iter().map(|a| a.to_string()).collect(),
        })
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// Requests ldap3_proto writes, of every kind a client sends.
    fn corpus() -> Vec<Vec<u8>> {
        let filters = [
            "(mail=user0000001@example.com)",
            "(objectClass=*)",
            "(&(objectClass=inetOrgPerson)(mail=a@b.c))",
            "(|(uid=a)(mail=a)(mailAlternateAddress=a))",
            "(!(uid=a))",
            "(&(|(a=1)(b=2))(!(c=*))(&(d=4)))",
            "(cn=Jos\\c3\\a9)",
            "(cn=a*b*c)",
            "(uid=ab*)",
            "(uidNumber>=10)",
            "(uidNumber<=10)",
            "(cn~=joe)",
            "(cn:caseExactMatch:=Joe)",
            "(&(mail=x)(cn=a*))",
            "(!(!(!(!(a=b)))))",
            "(mail=)",
        ];
        let mut out = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            for scope in [
                LdapSearchScope::Base,
                LdapSearchScope::OneLevel,
                LdapSearchScope::Subtree,
                LdapSearchScope::Children,
            ] {
                out.push(encoded(msg(
                    i as i32 + 1,
                    search("ou=people,dc=example,dc=com", scope, f, &[]),
                )));
            }
            out.push(encoded(msg(
                300 + i as i32,
                search(
                    "",
                    LdapSearchScope::Base,
                    f,
                    &["uid", "mail", "+", "*", "1.1"],
                ),
            )));
        }
        for (sizelimit, timelimit, typesonly, aliases, msgid) in [
            (500, 10, true, LdapDerefAliases::Always, 0x7fff_ffff),
            (-1, -1, false, LdapDerefAliases::InSearching, 0),
            (
                i32::MAX,
                i32::MIN,
                false,
                LdapDerefAliases::FindingBaseObj,
                128,
            ),
            (1, 0x80, true, LdapDerefAliases::Never, -5),
        ] {
            out.push(encoded(msg(
                msgid,
                LdapOp::SearchRequest(LdapSearchRequest {
                    base: "dc=example,dc=com".into(),
                    scope: LdapSearchScope::Subtree,
                    aliases,
                    sizelimit,
                    timelimit,
                    typesonly,
                    filter: parse_ldap_filter_str("(uid=x)").unwrap(),
                    attrs: vec!["cn".into()],
                }),
            )));
        }
        for f in [LdapFilter::And(Vec::new()), LdapFilter::Or(Vec::new())] {
            out.push(encoded(msg(
                11,
                LdapOp::SearchRequest(LdapSearchRequest {
                    base: "dc=x".into(),
                    scope: LdapSearchScope::OneLevel,
                    aliases: LdapDerefAliases::Never,
                    sizelimit: 0,
                    timelimit: 0,
                    typesonly: false,
                    filter: f,
                    attrs: Vec::new(),
                }),
            )));
        }
        // A long base and many attributes: lengths in the long form.
        let long = format!("cn={},dc=example,dc=com", "x".repeat(300));
        let many: Vec<String> = (0..100).map(|i| format!("attribute{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        out.push(encoded(msg(
            7,
            search(&long, LdapSearchScope::Subtree, "(mail=x)", &many),
        )));
        for (dn, pw) in [
            ("cn=admin,dc=example,dc=com", "secret"),
            ("", ""),
            ("uid=j\u{e9},dc=x", "p\u{e4}ss"),
        ] {
            out.push(encoded(msg(
                1,
                LdapOp::BindRequest(LdapBindRequest {
                    version: 3,
                    dn: dn.into(),
                    cred: LdapBindCred::Simple(pw.into()),
                }),
            )));
        }
        out.push(encoded(msg(
            2,
            LdapOp::BindRequest(LdapBindRequest {
                version: 2,
                dn: "cn=x".into(),
                cred: LdapBindCred::SASL(SaslCredentials {
                    mechanism: "EXTERNAL".into(),
                    credentials: Vec::new(),
                }),
            }),
        )));
        out.push(encoded(msg(3, LdapOp::UnbindRequest)));
        out.push(encoded(msg(4, LdapOp::DelRequest("cn=x,dc=y".into()))));
        out.push(encoded(msg(5, LdapOp::AbandonRequest(3))));
        out.push(encoded(msg(
            6,
            LdapOp::CompareRequest(LdapCompareRequest {
                dn: "cn=x".into(),
                atype: "mail".into(),
                val: b"a@b".to_vec(),
            }),
        )));
        out.push(encoded(msg(
            8,
            LdapOp::ExtendedRequest(LdapExtendedRequest {
                name: "1.3.6.1.4.1.1466.20037".into(),
                value: None,
            }),
        )));
        // With controls.
        out.push(encoded(LdapMsg {
            msgid: 9,
            op: search("dc=x", LdapSearchScope::Subtree, "(uid=a)", &["cn"]),
            ctrl: vec![LdapControl::SimplePagedResults {
                size: 10,
                cookie: Vec::new(),
            }],
        }));
        out.push(encoded(LdapMsg {
            msgid: 10,
            op: search("dc=x", LdapSearchScope::Subtree, "(uid=a)", &["cn"]),
            ctrl: vec![LdapControl::ManageDsaIT { criticality: true }],
        }));

        // Hand-written forms ldap3_proto does not write.
        let int = |v: &[u8]| tlv(0x02, v);
        let en = |v: u8| tlv(0x0a, &[v]);
        let eq = tlv(0xa3, &cat(&[tlv(0x04, b"mail"), tlv(0x04, b"x@y")]));
        let body = |base: &[u8], filter: &[u8], attrs: &[u8]| {
            cat(&[
                tlv(0x04, base),
                en(2),
                en(0),
                int(&[0]),
                int(&[0]),
                tlv(0x01, &[0]),
                filter.to_vec(),
                attrs.to_vec(),
            ])
        };
        let plain = body(b"dc=x", &eq, &tlv(0x30, &[]));
        let wrap = |msgid: &[u8], op: &[u8]| tlv(0x30, &cat(&[int(msgid), op.to_vec()]));
        out.push(wrap(&[1], &tlv(0x63, &plain)));
        // Message ids: empty, unsigned-looking, eight and nine bytes.
        out.push(wrap(&[], &tlv(0x63, &plain)));
        out.push(wrap(&[0xff], &tlv(0x63, &plain)));
        out.push(wrap(&[0xff; 4], &tlv(0x63, &plain)));
        out.push(wrap(&[0x80, 0, 0, 0, 0, 0, 0, 1], &tlv(0x63, &plain)));
        out.push(wrap(&[1; 9], &tlv(0x63, &plain)));
        // Lengths in the long form, minimal or not, and the indefinite form.
        let mut long = vec![0x30, 0x84, 0, 0];
        let inner = cat(&[int(&[1]), tlv(0x63, &plain)]);
        long.extend([0, inner.len() as u8]);
        long.extend(&inner);
        out.push(long);
        let mut long = vec![0x30, 0x81, inner.len() as u8];
        long.extend(&inner);
        out.push(long);
        let mut long = vec![0x30, 0x85, 0, 0, 0, 0, inner.len() as u8];
        long.extend(&inner);
        out.push(long);
        out.push(cat(&[vec![0x30, 0x80], inner.clone()]));
        // Wrong or odd parts: non-UTF-8, a constructed string, empty boolean, a long boolean,
        // scope 4, aliases 9, enumerated written as integer, extra elements, trailing bytes.
        out.push(wrap(
            &[1],
            &tlv(0x63, &body(b"dc=\xff", &eq, &tlv(0x30, &[]))),
        ));
        out.push(wrap(
            &[1],
            &tlv(
                0x63,
                &body(
                    b"dc=x",
                    &tlv(0xa3, &cat(&[tlv(0x04, b"m"), tlv(0x04, b"\xc3")])),
                    &tlv(0x30, &[]),
                ),
            ),
        ));
        out.push(wrap(
            &[1],
            &tlv(0x63, &body(b"dc=x", &eq, &tlv(0x30, &tlv(0x04, b"\xfe")))),
        ));
        out.push(wrap(
            &[1],
            &tlv(
                0x63,
                &body(b"dc=x", &eq, &tlv(0x30, &tlv(0x24, &tlv(0x04, b"cn")))),
            ),
        ));
        let mut odd = plain.clone();
        let at = odd.iter().position(|b| *b == 0x01).unwrap();
        odd[at + 1] = 0;
        odd.remove(at + 2);
        out.push(wrap(&[1], &tlv(0x63, &odd)));
        let mut odd = plain.clone();
        odd[at + 1] = 2;
        odd.insert(at + 2, 0xff);
        out.push(wrap(&[1], &tlv(0x63, &odd)));
        out.push(wrap(
            &[1],
            &tlv(0x63, &cat(&[plain.clone(), tlv(0x04, b"extra")])),
        ));
        out.push(wrap(&[1], &tlv(0x63, &cat(&[plain.clone(), vec![0x04]]))));
        out.push(cat(&[
            wrap(&[1], &tlv(0x63, &plain)),
            vec![0x30, 0x03, 0x02, 0x01],
        ]));
        out.push(tlv(0x30, &cat(&[int(&[1]), tlv(0x63, &plain), vec![0x04]])));
        out.push(tlv(
            0x30,
            &cat(&[int(&[1]), tlv(0x63, &plain), tlv(0x04, b"x")]),
        ));
        out.push(tlv(
            0x30,
            &cat(&[int(&[1]), tlv(0x63, &plain), tlv(0xa0, &[])]),
        ));
        for (pos, value) in [(1, 4u8), (2, 9), (1, 0)] {
            let mut odd = plain.clone();
            let idx = odd
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == 0x0a)
                .nth(pos - 1)
                .unwrap()
                .0;
            odd[idx + 2] = value;
            out.push(wrap(&[1], &tlv(0x63, &odd)));
            odd[idx] = 0x02;
            out.push(wrap(&[1], &tlv(0x63, &odd)));
        }
        // Filters: equality with one or three parts, NOT with two, present written
        // constructed, deep nesting, an empty present.
        for f in [
            tlv(0xa3, &tlv(0x04, b"mail")),
            tlv(
                0xa3,
                &cat(&[tlv(0x04, b"a"), tlv(0x04, b"b"), tlv(0x04, b"c")]),
            ),
            tlv(0xa2, &cat(&[eq.clone(), eq.clone()])),
            tlv(0xa2, &[]),
            tlv(0xa7, &tlv(0x04, b"mail")),
            tlv(0x87, b""),
            tlv(0x87, b"\xff"),
            tlv(0xa3, &cat(&[tlv(0x04, b"a"), tlv(0x02, b"b")])),
        ] {
            out.push(wrap(&[1], &tlv(0x63, &body(b"dc=x", &f, &tlv(0x30, &[])))));
        }
        for depth in [10, 15, 16, 17, 40, 62, 63, 64, 70] {
            let mut f = eq.clone();
            for _ in 1..depth {
                f = tlv(0xa2, &f);
            }
            out.push(wrap(&[1], &tlv(0x63, &body(b"dc=x", &f, &tlv(0x30, &[])))));
        }
        // Binds: another credential tag, a non-UTF-8 password, an extra element, no password.
        let bind = |parts: &[Vec<u8>]| wrap(&[1], &tlv(0x60, &cat(parts)));
        out.push(bind(&[int(&[3]), tlv(0x04, b"cn=x"), tlv(0x85, b"pw")]));
        out.push(bind(&[int(&[3]), tlv(0x04, b"cn=x"), tlv(0x80, b"\xff")]));
        out.push(bind(&[
            int(&[3]),
            tlv(0x04, b"cn=x"),
            tlv(0x80, b"pw"),
            tlv(0x04, b"e"),
        ]));
        out.push(bind(&[int(&[3]), tlv(0x04, b"cn=x")]));
        out.push(bind(&[int(&[3; 9]), tlv(0x04, b"cn=x"), tlv(0x80, b"pw")]));
        // Unbind with content, and written constructed.
        out.push(wrap(&[2], &tlv(0x42, b"xyz")));
        out.push(wrap(&[2], &tlv(0x62, &[])));
        out
    }

    /// Small deterministic generator for mutations.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Decodes `bytes` with ldap3_proto's codec and with ours, message after message: the
    /// same messages, the same bytes left, errors at the same point. Returns how many messages
    /// the direct decoder read.
    fn same(bytes: &[u8], max_bytes: usize, max_depth: usize) -> usize {
        let mut reference = LdapCodec::new(Some(max_bytes), Some(max_depth));
        let mut ours = Codec::new(max_bytes, max_depth);
        let mut a = BytesMut::from(bytes);
        let mut b = BytesMut::from(bytes);
        let mut direct = 0;
        for _ in 0..4 {
            if b.len() <= max_bytes * 2 && super::decode(&b, max_bytes, max_depth).is_some() {
                direct += 1;
            }
            match (reference.decode(&mut a), ours.decode(&mut b)) {
                (Ok(x), Ok(y)) => {
                    assert_eq!(x, y, "input {bytes:02x?}");
                    assert_eq!(a, b, "bytes left of {bytes:02x?}");
                    if x.is_none() {
                        break;
                    }
                }
                (Err(_), Err(_)) => break,
                (x, y) => panic!("input {bytes:02x?}: ldap3_proto {x:?}, ours {y:?}"),
            }
        }
        direct
    }

    const CAPS: [(usize, usize); 7] = [
        (64 * 1024, 64),
        (64 * 1024, 3),
        (64 * 1024, 4),
        (64 * 1024, 5),
        (64 * 1024, 8),
        (40, 64),
        (2000, 16),
    ];

    #[test]
    fn corpus_decodes_as_ldap3_proto_does() {
        let mut direct = 0;
        for bytes in corpus() {
            for (max_bytes, max_depth) in CAPS {
                direct += same(&bytes, max_bytes, max_depth);
            }
            // Two messages in one buffer, and each one cut short.
            let two = [bytes.clone(), bytes.clone()].concat();
            direct += same(&two, 64 * 1024, 64);
            for cut in 0..bytes.len() {
                same(&bytes[..cut], 64 * 1024, 64);
            }
        }
        // The direct decoder did read most of them.
        assert!(direct > 300, "direct decodes: {direct}");
    }

    #[test]
    fn mutations_decode_as_ldap3_proto_does() {
        let corpus = corpus();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut direct = 0;
        for bytes in &corpus {
            // Every byte replaced by a few interesting values.
            for i in 0..bytes.len() {
                for v in [
                    0x00, 0x01, 0x02, 0x04, 0x0a, 0x30, 0x7f, 0x80, 0x81, 0x84, 0xa3, 0xff,
                ] {
                    let mut m = bytes.clone();
                    m[i] = v;
                    direct += same(&m, 64 * 1024, 64);
                }
                let mut m = bytes.clone();
                m[i] = m[i].wrapping_add(1);
                same(&m, 1024, 6);
            }
        }
        // Random edits: replacements, insertions, deletions, several at once.
        for _ in 0..30_000 {
            let mut m = corpus[rng.below(corpus.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                match rng.below(3) {
                    0 if !m.is_empty() => m[i] = rng.next() as u8,
                    1 => m.insert(i, rng.next() as u8),
                    _ if !m.is_empty() => {
                        m.remove(i);
                    }
                    _ => {}
                }
            }
            let (max_bytes, max_depth) = CAPS[rng.below(CAPS.len())];
            direct += same(&m, max_bytes, max_depth);
        }
        // Random bytes.
        for _ in 0..5_000 {
            let n = rng.below(64);
            let mut m: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && !m.is_empty() {
                m[0] = 0x30;
            }
            same(&m, 64 * 1024, 64);
        }
        assert!(direct > 1000, "direct decodes: {direct}");
    }
}
