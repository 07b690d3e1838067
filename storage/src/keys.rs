//! Byte layouts of every key the store writes, in one place so that writers, readers, the
//! bulk loader and `verify` agree by construction.
//!
//! Entry ids are big-endian `u64`, so keys ending in an id sort by id within their prefix and a
//! prefix scan returns ids in ascending order, ready for merge joins.
//!
//! Variable-length parts (RDNs, normalized values) are escaped so that `0x00` never occurs
//! inside them: `0x00` becomes `01 01` and `0x01` becomes `01 02`. A `0x00` then ends the part.
//! The escape maps each byte on its own, so the escaped form of a prefix is a prefix of the
//! escaped form: range scans for substring initials and DN subtrees stay plain prefix scans.

use crate::error::{Result, StoreError};
use roster_schema::dn::NormDn;

/// Length of an encoded entry id.
pub(crate) const ID_LEN: usize = 8;

/// Kind byte of an equality key: `e | escaped normalized value | 00 | id`.
pub(crate) const EQUALITY: u8 = b'e';
/// Kind byte of a presence key: `p | id`.
pub(crate) const PRESENCE: u8 = b'p';
/// Kind byte of a substring-initial key: `b | escaped substring-normalized value | 00 | id`.
pub(crate) const INITIAL: u8 = b'b';
/// Kind byte of a substring-final key: `f | escaped reversed value | 00 | id`.
pub(crate) const FINAL: u8 = b'f';
/// Kind byte of a substring-any key: `g | three value bytes | id`.
pub(crate) const GRAM: u8 = b'g';
/// Length of the grams that answer `*any*` pieces.
pub(crate) const GRAM_LEN: usize = 3;

/// The end of an escaped part.
const END: u8 = 0x00;
const ESC: u8 = 0x01;

pub(crate) fn id_bytes(id: u64) -> [u8; ID_LEN] {
    id.to_be_bytes()
}

/// Reads an id stored as a whole value (DN and parent keyspaces).
pub(crate) fn id_from_value(value: &[u8]) -> Result<u64> {
    let bytes: [u8; ID_LEN] = value
        .try_into()
        .map_err(|_| StoreError::corrupt("entry id", format!("{} bytes", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Reads the id that ends an index or parent key.
pub(crate) fn id_from_suffix(key: &[u8]) -> Result<u64> {
    let start = key
        .len()
        .checked_sub(ID_LEN)
        .ok_or_else(|| StoreError::corrupt("index key", render(key)))?;
    id_from_value(key.get(start..).unwrap_or_default())
}

pub(crate) fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            END => out.extend_from_slice(&[ESC, 0x01]),
            ESC => out.extend_from_slice(&[ESC, 0x02]),
            _ => out.push(b),
        }
    }
}

pub(crate) fn unescape(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        match b {
            END => return None,
            ESC => match it.next() {
                Some(0x01) => out.push(END),
                Some(0x02) => out.push(ESC),
                _ => return None,
            },
            _ => out.push(b),
        }
    }
    Some(out)
}

/// The DN key: the normalized RDNs from the root down, each escaped and ended by `00`, so that
/// every entry of a subtree has the subtree base's key as a prefix
/// (`dc=com 00 dc=example 00 ou=people 00`).
pub(crate) fn dn_key(ndn: &NormDn) -> Vec<u8> {
    let mut key = Vec::with_capacity(ndn.rdns.iter().map(|r| r.len() + 1).sum());
    for rdn in ndn.rdns.iter().rev() {
        escape_into(&mut key, rdn.as_bytes());
        key.push(END);
    }
    key
}

/// The lengths of the DN keys of each ancestor of `key`, nearest first (without `key` itself).
pub(crate) fn ancestor_key_lens(key: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let body = key.strip_suffix(&[END]).unwrap_or(key);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == END)
        .map(|(i, _)| i + 1)
}

/// The last component of a DN key (the escaped RDN of the entry itself, without its end byte).
pub(crate) fn last_component(key: &[u8]) -> &[u8] {
    let body = key.strip_suffix(&[END]).unwrap_or(key);
    match body.iter().rposition(|b| *b == END) {
        Some(i) => body.get(i + 1..).unwrap_or_default(),
        None => body,
    }
}

/// Rebuilds the normalized DN from a DN key.
pub(crate) fn ndn_from_key(key: &[u8]) -> Result<NormDn> {
    let body = key
        .strip_suffix(&[END])
        .ok_or_else(|| StoreError::corrupt("dn key", render(key)))?;
    let mut rdns = Vec::new();
    for part in body.split(|b| *b == END) {
        let raw = unescape(part).ok_or_else(|| StoreError::corrupt("dn key", render(key)))?;
        rdns.push(String::from_utf8(raw).map_err(|_| StoreError::corrupt("dn key", render(key)))?);
    }
    rdns.reverse();
    Ok(NormDn { rdns })
}

/// The parent keyspace's key: `parent id | escaped RDN`. Roots have parent id 0.
pub(crate) fn child_key(parent: u64, dn_key: &[u8]) -> Vec<u8> {
    let rdn = last_component(dn_key);
    let mut key = Vec::with_capacity(ID_LEN + rdn.len());
    key.extend_from_slice(&id_bytes(parent));
    key.extend_from_slice(rdn);
    key
}

/// `kind | escaped value | 00`: the prefix of all keys of one exact value.
pub(crate) fn value_prefix(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 2 + ID_LEN);
    key.push(kind);
    escape_into(&mut key, value);
    key.push(END);
    key
}

/// `kind | escaped piece`: the prefix of the keys of all values starting with `piece`.
pub(crate) fn piece_prefix(kind: u8, piece: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(piece.len() + 1);
    key.push(kind);
    escape_into(&mut key, piece);
    key
}

pub(crate) fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

pub(crate) fn gram_prefix(gram: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + GRAM_LEN + ID_LEN);
    key.push(GRAM);
    key.extend_from_slice(gram);
    key
}

/// A key in printable form for reports: printable ASCII as is, other bytes as `\xx`.
pub(crate) fn render(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() || b == b' ' {
            if b == b'\\' {
                s.push('\\');
            }
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndn(rdns: &[&str]) -> NormDn {
        NormDn {
            rdns: rdns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn dn_key_is_reversed_and_prefix_of_descendants() {
        let base = dn_key(&ndn(&["dc=example", "dc=com"]));
        assert_eq!(base, b"dc=com\0dc=example\0");
        let child = dn_key(&ndn(&["uid=a", "ou=people", "dc=example", "dc=com"]));
        assert!(child.starts_with(&base));
        // A sibling whose RDN extends the base's RDN is not inside the base.
        let sibling = dn_key(&ndn(&["dc=examples", "dc=com"]));
        assert!(!sibling.starts_with(&base));
    }

    #[test]
    fn escaping_keeps_zero_bytes_out_and_round_trips() {
        let tricky = ndn(&["cn=a\u{0}b\u{1}", "dc=com"]);
        let key = dn_key(&tricky);
        assert_eq!(key, b"dc=com\0cn=a\x01\x01b\x01\x02\0");
        assert_eq!(ndn_from_key(&key).unwrap(), tricky);
        // A component holding 0x00 does not make a shorter DN a false prefix.
        let other = dn_key(&ndn(&["cn=a", "dc=com"]));
        assert!(!key.starts_with(&other));
    }

    #[test]
    fn ancestors_and_last_component() {
        let key = dn_key(&ndn(&["uid=a", "ou=people", "dc=com"]));
        let lens: Vec<usize> = ancestor_key_lens(&key).collect();
        let prefixes: Vec<&[u8]> = lens.iter().map(|&l| &key[..l]).collect();
        assert_eq!(
            prefixes,
            vec![&b"dc=com\0ou=people\0"[..], &b"dc=com\0"[..]]
        );
        assert_eq!(last_component(&key), b"uid=a");
        assert_eq!(last_component(b"dc=com\0"), b"dc=com");
        assert_eq!(ancestor_key_lens(b"dc=com\0").count(), 0);
    }

    #[test]
    fn value_keys_sort_by_value_then_id() {
        let mut a = value_prefix(EQUALITY, b"ab");
        a.extend_from_slice(&id_bytes(9));
        let mut b = value_prefix(EQUALITY, b"ab\0");
        b.extend_from_slice(&id_bytes(1));
        let mut c = value_prefix(EQUALITY, b"abc");
        c.extend_from_slice(&id_bytes(1));
        assert!(a < b && b < c);
        assert!(c.starts_with(&piece_prefix(EQUALITY, b"ab")));
        assert!(!c.starts_with(&value_prefix(EQUALITY, b"ab")));
        assert_eq!(id_from_suffix(&a).unwrap(), 9);
    }
}
