//! The replica's side of the LDAP wire: requests are encoded by ldap3_proto, responses are
//! framed and decoded here from the BER, with the RFC 4533 controls and intermediate
//! responses. ldap3_proto 0.9 decodes the Sync Info message by popping elements from the end
//! of the sequence, which loses the cookie of a `refreshPresent` or `syncIdSet` whose optional
//! boolean is left out (slapd leaves out `refreshDone` when it is TRUE), and it cannot decode
//! `newcookie` at all; the decoding here reads every element in order.
//!
//! Everything here reads bytes from the network: every length is checked against what is
//! there, nothing panics, and a message larger than the cap is refused before it is buffered.

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapExtendedRequest, LdapFilter, LdapMsg,
    LdapOp, LdapSearchRequest, LdapSearchScope, SyncRequestMode,
};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Encoder;

/// The OIDs of RFC 4533.
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
pub const START_TLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// The Notice of Disconnection (RFC 4511 section 4.4.1).
pub const NOTICE_OF_DISCONNECTION_OID: &str = "1.3.6.1.4.1.1466.20036";

/// Why a response could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed BER: {0}")]
    Ber(&'static str),
    #[error("a message of {size} bytes is larger than the {max} accepted")]
    TooLarge { size: usize, max: usize },
    #[error("encode request: {0}")]
    Encode(String),
}

type Result<T> = std::result::Result<T, WireError>;

/// One BER element: its tag byte and contents.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads the tag and length at the start of `input`: (tag, header length, contents length).
/// `Ok(None)` when `input` ends inside the header. Only low tag numbers (< 31) and definite
/// lengths of up to four bytes are LDAP's; anything else is refused.
fn header(input: &[u8]) -> Result<Option<(u8, usize, usize)>> {
    let Some(&tag) = input.first() else {
        return Ok(None);
    };
    if tag & 0x1f == 0x1f {
        return Err(WireError::Ber("high tag numbers are not used by LDAP"));
    }
    let Some(&first) = input.get(1) else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((tag, 2, usize::from(first))));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 {
        return Err(WireError::Ber("indefinite lengths are not allowed in LDAP"));
    }
    if count > 4 {
        return Err(WireError::Ber("length of more than four bytes"));
    }
    let Some(bytes) = input.get(2..2 + count) else {
        return Ok(None);
    };
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok(Some((tag, 2 + count, len)))
}

/// The size of the complete LDAP message at the start of `buf`, once its header is there;
/// refuses one larger than `max`.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>> {
    match header(buf)? {
        None => Ok(None),
        Some((tag, head, len)) => {
            if tag != 0x30 {
                return Err(WireError::Ber("an LDAP message is a SEQUENCE"));
            }
            let size = head.saturating_add(len);
            if size > max {
                return Err(WireError::TooLarge { size, max });
            }
            Ok(Some(size))
        }
    }
}

/// Reads one complete element from the start of `input`; returns it and the rest.
fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
    let (tag, head, len) = header(input)?.ok_or(WireError::Ber("truncated header"))?;
    let end = head
        .checked_add(len)
        .ok_or(WireError::Ber("length overflows"))?;
    let body = input
        .get(head..end)
        .ok_or(WireError::Ber("contents shorter than their length"))?;
    let rest = input.get(end..).unwrap_or_default();
    Ok((Tlv { tag, body }, rest))
}

/// The elements of a constructed value, in order.
struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Elements<'a> {
    fn new(body: &'a [u8]) -> Elements<'a> {
        Elements { rest: body }
    }

    /// The next element, or `None` at the end.
    fn next(&mut self) -> Result<Option<Tlv<'a>>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read(self.rest)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next element, which must be there and carry `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8]> {
        match self.next()? {
            Some(t) if t.tag == tag => Ok(t.body),
            _ => Err(WireError::Ber(what)),
        }
    }

    /// The tag of the next element, without reading it.
    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }
}

fn integer(body: &[u8]) -> Result<i64> {
    if body.is_empty() || body.len() > 8 {
        return Err(WireError::Ber("integer of a bad length"));
    }
    let negative = body.first().is_some_and(|b| b & 0x80 != 0);
    let start: i64 = if negative { -1 } else { 0 };
    Ok(body.iter().fold(start, |acc, b| (acc << 8) | i64::from(*b)))
}

fn boolean(body: &[u8]) -> Result<bool> {
    match body {
        [b] => Ok(*b != 0),
        _ => Err(WireError::Ber("boolean of a bad length")),
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn uuid(body: &[u8]) -> Result<[u8; 16]> {
    <[u8; 16]>::try_from(body).map_err(|_| WireError::Ber("a syncUUID is 16 bytes"))
}

/// An LDAPResult.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LdapResult {
    pub code: i64,
    pub matched: String,
    pub message: String,
    pub referral: Vec<String>,
}

fn ldap_result(items: &mut Elements<'_>) -> Result<LdapResult> {
    let code = integer(items.expect(0x0a, "resultCode")?)?;
    let matched = text(items.expect(0x04, "matchedDN")?);
    let message = text(items.expect(0x04, "diagnosticMessage")?);
    let mut referral = Vec::new();
    if items.peek_tag() == Some(0xa3) {
        if let Some(r) = items.next()? {
            let mut urls = Elements::new(r.body);
            while let Some(u) = urls.next()? {
                referral.push(text(u.body));
            }
        }
    }
    Ok(LdapResult {
        code,
        matched,
        message,
        referral,
    })
}

/// The Sync State control's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Present,
    Add,
    Modify,
    Delete,
}

/// A Sync State control (RFC 4533 section 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateControl {
    pub state: SyncState,
    pub uuid: [u8; 16],
    pub cookie: Option<Vec<u8>>,
}

/// A Sync Done control (RFC 4533 section 2.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DoneControl {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

/// A Sync Info message (RFC 4533 section 2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<[u8; 16]>,
    },
}

/// A response from the provider, as the replica uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    BindResponse(LdapResult),
    Entry {
        dn: String,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
        state: Option<StateControl>,
    },
    Reference,
    Done {
        result: LdapResult,
        sync_done: Option<DoneControl>,
    },
    Extended {
        result: LdapResult,
        name: Option<String>,
    },
    Intermediate(Option<SyncInfo>),
    /// Another operation's response (none is expected).
    Other(u8),
}

/// One decoded LDAP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub msgid: i64,
    pub response: Response,
}

/// Decodes one complete LDAP message (as framed by [`frame_len`]).
pub fn decode(message: &[u8]) -> Result<Message> {
    let (outer, _) = read(message)?;
    if outer.tag != 0x30 {
        return Err(WireError::Ber("an LDAP message is a SEQUENCE"));
    }
    let mut items = Elements::new(outer.body);
    let msgid = integer(items.expect(0x02, "messageID")?)?;
    let op = items.next()?.ok_or(WireError::Ber("no protocolOp"))?;
    let mut controls: Vec<(String, Option<&[u8]>)> = Vec::new();
    if let Some(c) = items.next()? {
        if c.tag == 0xa0 {
            let mut list = Elements::new(c.body);
            while let Some(ctl) = list.next()? {
                let mut parts = Elements::new(ctl.body);
                let oid = text(parts.expect(0x04, "control type")?);
                let mut value = None;
                while let Some(p) = parts.next()? {
                    if p.tag == 0x04 {
                        value = Some(p.body);
                    }
                }
                controls.push((oid, value));
            }
        }
    }
    let control = |oid: &str| {
        controls
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.unwrap_or_default())
    };
    let mut body = Elements::new(op.body);
    let response = match op.tag {
        // BindResponse
        0x61 => Response::BindResponse(ldap_result(&mut body)?),
        // SearchResultEntry
        0x64 => {
            let dn = text(body.expect(0x04, "objectName")?);
            let mut attrs = Vec::new();
            let mut list = Elements::new(body.expect(0x30, "attributes")?);
            while let Some(a) = list.next()? {
                let mut parts = Elements::new(a.body);
                let name = text(parts.expect(0x04, "attribute type")?);
                let mut vals = Vec::new();
                let mut set = Elements::new(parts.expect(0x31, "attribute values")?);
                while let Some(v) = set.next()? {
                    vals.push(v.body.to_vec());
                }
                attrs.push((name, vals));
            }
            let state = control(SYNC_STATE_OID).map(state_control).transpose()?;
            Response::Entry { dn, attrs, state }
        }
        0x73 => Response::Reference,
        // SearchResultDone
        0x65 => Response::Done {
            result: ldap_result(&mut body)?,
            sync_done: control(SYNC_DONE_OID).map(done_control).transpose()?,
        },
        // ExtendedResponse
        0x78 => {
            let result = ldap_result(&mut body)?;
            let mut name = None;
            while let Some(p) = body.next()? {
                if p.tag == 0x8a {
                    name = Some(text(p.body));
                }
            }
            Response::Extended { result, name }
        }
        // IntermediateResponse
        0x79 => {
            let mut name = None;
            let mut value = None;
            while let Some(p) = body.next()? {
                match p.tag {
                    0x80 => name = Some(text(p.body)),
                    0x81 => value = Some(p.body),
                    _ => {}
                }
            }
            match (name.as_deref(), value) {
                (Some(SYNC_INFO_OID), Some(v)) => Response::Intermediate(Some(sync_info(v)?)),
                _ => Response::Intermediate(None),
            }
        }
        other => Response::Other(other),
    };
    Ok(Message { msgid, response })
}

fn state_control(value: &[u8]) -> Result<StateControl> {
    let (seq, _) = read(value)?;
    let mut items = Elements::new(seq.body);
    let state = match integer(items.expect(0x0a, "syncState state")?)? {
        0 => SyncState::Present,
        1 => SyncState::Add,
        2 => SyncState::Modify,
        3 => SyncState::Delete,
        _ => return Err(WireError::Ber("unknown sync state")),
    };
    let uuid = uuid(items.expect(0x04, "syncState entryUUID")?)?;
    let cookie = match items.next()? {
        Some(t) if t.tag == 0x04 => Some(t.body.to_vec()),
        _ => None,
    };
    Ok(StateControl {
        state,
        uuid,
        cookie,
    })
}

fn done_control(value: &[u8]) -> Result<DoneControl> {
    let mut done = DoneControl::default();
    if value.is_empty() {
        return Ok(done);
    }
    let (seq, _) = read(value)?;
    let mut items = Elements::new(seq.body);
    while let Some(t) = items.next()? {
        match t.tag {
            0x04 => done.cookie = Some(t.body.to_vec()),
            0x01 => done.refresh_deletes = boolean(t.body)?,
            _ => {}
        }
    }
    Ok(done)
}

fn sync_info(value: &[u8]) -> Result<SyncInfo> {
    let (choice, _) = read(value)?;
    // The optional cookie and booleans of each choice, read in order.
    let cookie_and_flag = |body: &[u8], default: bool| -> Result<(Option<Vec<u8>>, bool)> {
        let mut items = Elements::new(body);
        let mut cookie = None;
        let mut flag = default;
        while let Some(t) = items.next()? {
            match t.tag {
                0x04 => cookie = Some(t.body.to_vec()),
                0x01 => flag = boolean(t.body)?,
                _ => {}
            }
        }
        Ok((cookie, flag))
    };
    match choice.tag {
        // newcookie [0] syncCookie (primitive)
        0x80 => Ok(SyncInfo::NewCookie(choice.body.to_vec())),
        0xa1 => {
            let (cookie, done) = cookie_and_flag(choice.body, true)?;
            Ok(SyncInfo::RefreshDelete { cookie, done })
        }
        0xa2 => {
            let (cookie, done) = cookie_and_flag(choice.body, true)?;
            Ok(SyncInfo::RefreshPresent { cookie, done })
        }
        0xa3 => {
            let mut items = Elements::new(choice.body);
            let mut cookie = None;
            let mut refresh_deletes = false;
            let mut uuids = Vec::new();
            while let Some(t) = items.next()? {
                match t.tag {
                    0x04 => cookie = Some(t.body.to_vec()),
                    0x01 => refresh_deletes = boolean(t.body)?,
                    0x31 => {
                        let mut set = Elements::new(t.body);
                        while let Some(u) = set.next()? {
                            uuids.push(uuid(u.body)?);
                        }
                    }
                    _ => {}
                }
            }
            Ok(SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            })
        }
        _ => Err(WireError::Ber("unknown Sync Info choice")),
    }
}

/// Appends the BER of `msg` to `out`.
fn encode(msg: LdapMsg, out: &mut BytesMut) -> Result<()> {
    ldap3_proto::LdapCodec::default()
        .encode(msg, out)
        .map_err(|e| WireError::Encode(e.to_string()))
}

/// A simple bind.
pub fn bind(msgid: i32, dn: &str, password: &str, out: &mut BytesMut) -> Result<()> {
    encode(
        LdapMsg {
            msgid,
            op: LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: dn.to_string(),
                cred: LdapBindCred::Simple(password.to_string()),
            }),
            ctrl: Vec::new(),
        },
        out,
    )
}

/// The StartTLS extended request.
pub fn start_tls(msgid: i32, out: &mut BytesMut) -> Result<()> {
    encode(
        LdapMsg {
            msgid,
            op: LdapOp::ExtendedRequest(LdapExtendedRequest {
                name: START_TLS_OID.to_string(),
                value: None,
            }),
            ctrl: Vec::new(),
        },
        out,
    )
}

/// The refreshAndPersist search: everything under `base` matching `filter`, user and
/// operational attributes, with the Sync Request control and `cookie`.
pub fn sync_search(
    msgid: i32,
    base: &str,
    filter: LdapFilter,
    cookie: Option<Vec<u8>>,
    out: &mut BytesMut,
) -> Result<()> {
    encode(
        LdapMsg {
            msgid,
            op: LdapOp::SearchRequest(LdapSearchRequest {
                base: base.to_string(),
                scope: LdapSearchScope::Subtree,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter,
                attrs: vec!["*".into(), "+".into()],
            }),
            ctrl: vec![LdapControl::SyncRequest {
                criticality: true,
                mode: SyncRequestMode::RefreshAndPersist,
                cookie,
                reload_hint: false,
            }],
        },
        out,
    )
}

/// The unbind request.
pub fn unbind(msgid: i32, out: &mut BytesMut) -> Result<()> {
    encode(
        LdapMsg {
            msgid,
            op: LdapOp::UnbindRequest,
            ctrl: Vec::new(),
        },
        out,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// BER of `tag` around `body` (short or long form length).
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if body.len() < 0x80 {
            out.push(body.len() as u8);
        } else {
            let len = (body.len() as u32).to_be_bytes();
            let skip = len.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
        out.extend_from_slice(body);
        out
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn info_message(value: Vec<u8>) -> Vec<u8> {
        let op = tlv(
            0x79,
            &cat(&[tlv(0x80, SYNC_INFO_OID.as_bytes()), tlv(0x81, &value)]),
        );
        tlv(0x30, &cat(&[tlv(0x02, &[5]), op]))
    }

    #[test]
    fn refresh_present_without_done_keeps_its_cookie() {
        // slapd leaves out refreshDone when it is TRUE.
        let msg = info_message(tlv(0xa2, &tlv(0x04, b"rid=000,csn=1")));
        let m = decode(&msg).unwrap();
        assert_eq!(m.msgid, 5);
        assert_eq!(
            m.response,
            Response::Intermediate(Some(SyncInfo::RefreshPresent {
                cookie: Some(b"rid=000,csn=1".to_vec()),
                done: true
            }))
        );
    }

    #[test]
    fn new_cookie_and_id_sets_decode() {
        let m = decode(&info_message(tlv(0x80, b"csn=2"))).unwrap();
        assert_eq!(
            m.response,
            Response::Intermediate(Some(SyncInfo::NewCookie(b"csn=2".to_vec())))
        );
        let set = tlv(0x31, &cat(&[tlv(0x04, &[1; 16]), tlv(0x04, &[2; 16])]));
        let m = decode(&info_message(tlv(
            0xa3,
            &cat(&[tlv(0x04, b"c"), set.clone()]),
        )))
        .unwrap();
        assert_eq!(
            m.response,
            Response::Intermediate(Some(SyncInfo::IdSet {
                cookie: Some(b"c".to_vec()),
                refresh_deletes: false,
                uuids: vec![[1; 16], [2; 16]]
            }))
        );
        let m = decode(&info_message(tlv(0xa3, &cat(&[tlv(0x01, &[0xff]), set])))).unwrap();
        assert!(matches!(
            m.response,
            Response::Intermediate(Some(SyncInfo::IdSet {
                cookie: None,
                refresh_deletes: true,
                ..
            }))
        ));
    }

    #[test]
    fn entries_with_state_and_done_with_refresh_deletes() {
        let state = tlv(
            0x30,
            &cat(&[tlv(0x0a, &[1]), tlv(0x04, &[7; 16]), tlv(0x04, b"ck")]),
        );
        let ctl = tlv(
            0x30,
            &cat(&[tlv(0x04, SYNC_STATE_OID.as_bytes()), tlv(0x04, &state)]),
        );
        let attr = tlv(
            0x30,
            &cat(&[
                tlv(0x04, b"cn"),
                tlv(0x31, &cat(&[tlv(0x04, b"a"), tlv(0x04, b"b")])),
            ]),
        );
        let entry = tlv(0x64, &cat(&[tlv(0x04, b"cn=a,dc=x"), tlv(0x30, &attr)]));
        let msg = tlv(0x30, &cat(&[tlv(0x02, &[2]), entry, tlv(0xa0, &ctl)]));
        assert_eq!(frame_len(&msg, 1 << 20).unwrap(), Some(msg.len()));
        let m = decode(&msg).unwrap();
        assert_eq!(
            m.response,
            Response::Entry {
                dn: "cn=a,dc=x".into(),
                attrs: vec![("cn".into(), vec![b"a".to_vec(), b"b".to_vec()])],
                state: Some(StateControl {
                    state: SyncState::Add,
                    uuid: [7; 16],
                    cookie: Some(b"ck".to_vec())
                })
            }
        );
        // SyncDone without a cookie and refreshDeletes TRUE.
        let done_value = tlv(0x30, &tlv(0x01, &[0xff]));
        let ctl = tlv(
            0x30,
            &cat(&[tlv(0x04, SYNC_DONE_OID.as_bytes()), tlv(0x04, &done_value)]),
        );
        let res = tlv(
            0x65,
            &cat(&[tlv(0x0a, &[0x10, 0x00]), tlv(0x04, b""), tlv(0x04, b"")]),
        );
        let msg = tlv(0x30, &cat(&[tlv(0x02, &[2]), res, tlv(0xa0, &ctl)]));
        let m = decode(&msg).unwrap();
        let Response::Done { result, sync_done } = m.response else {
            panic!("not a done");
        };
        assert_eq!(result.code, 4096);
        assert_eq!(
            sync_done,
            Some(DoneControl {
                cookie: None,
                refresh_deletes: true
            })
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = info_message(tlv(0xa2, &tlv(0x04, b"c")));
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]);
            let _ = frame_len(&good[..cut], 1 << 20);
        }
        let mut flipped = good.clone();
        for i in 0..flipped.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                let _ = decode(&flipped);
                flipped[i] ^= 1 << bit;
            }
        }
        assert!(decode(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(matches!(
            frame_len(&[0x30, 0x84, 0x10, 0, 0, 0], 1 << 20),
            Err(WireError::TooLarge { .. })
        ));
        // A syncUUID of the wrong length.
        let bad = info_message(tlv(0xa3, &tlv(0x31, &tlv(0x04, &[1; 15]))));
        assert!(decode(&bad).is_err());
    }
}
