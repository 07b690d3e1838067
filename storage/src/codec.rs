//! The stored form of an entry (the values of the `id2entry` keyspace).
//!
//! Version 1, all lengths and counts as LEB128 varints:
//!
//! ```text
//! u8  format = 1
//! u64 parent id, big-endian (0 for a root)
//! bytes  DN key (see `keys::dn_key`): the normalized DN, for scope checks without decoding
//! DN as written: rdn count, then per RDN: ava count, then per AVA: bytes type, bytes value
//! attribute count, then per attribute: bytes type OID, option count, bytes options...,
//!   value count, bytes values...
//! ```
//!
//! Attribute types are stored by OID because an `AttrId` only means something to the schema
//! of one process. The header (format, parent, DN key) comes first so that a search can reject
//! an out-of-scope candidate before decoding anything else.

use crate::error::{Result, StoreError};
use crate::keys;
use roster_schema::dn::NormDn;
use roster_schema::{AttrDesc, AttrId, Attribute, Ava, Dn, Entry, Rdn, Schema};
use rustc_hash::FxHashMap;

/// The entry format this build writes and reads.
pub(crate) const ENTRY_FORMAT: u8 = 1;
/// Offset of the parent id in a record.
const PARENT_AT: usize = 1;

/// Encodes and decodes entries against one schema: maps attribute ids to OIDs and back.
#[derive(Debug)]
pub(crate) struct EntryCodec {
    by_oid: FxHashMap<Box<[u8]>, AttrId>,
}

/// The fixed leading part of a record, readable without decoding the rest.
pub(crate) struct RecordHeader<'a> {
    pub(crate) parent: u64,
    pub(crate) dn_key: &'a [u8],
}

impl EntryCodec {
    pub(crate) fn new(schema: &Schema) -> EntryCodec {
        let by_oid = schema
            .attribute_types()
            .map(|(id, at)| (at.oid.as_bytes().to_vec().into_boxed_slice(), id))
            .collect();
        EntryCodec { by_oid }
    }

    /// Encodes an entry. `dn_key` must be `keys::dn_key(&entry.ndn)`.
    pub(crate) fn encode(
        &self,
        schema: &Schema,
        entry: &Entry,
        parent: u64,
        dn_key: &[u8],
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        out.push(ENTRY_FORMAT);
        out.extend_from_slice(&keys::id_bytes(parent));
        put_bytes(&mut out, dn_key);
        put_len(&mut out, entry.dn.rdns.len());
        for rdn in &entry.dn.rdns {
            put_len(&mut out, rdn.avas.len());
            for ava in &rdn.avas {
                put_bytes(&mut out, ava.attr.as_bytes());
                put_bytes(&mut out, &ava.value);
            }
        }
        put_len(&mut out, entry.attrs.len());
        for attr in &entry.attrs {
            let at = schema
                .attr(attr.desc.id)
                .ok_or_else(|| StoreError::InvalidEntry {
                    dn: entry.ndn.to_string(),
                    reason: "attribute id from another schema".into(),
                })?;
            put_bytes(&mut out, at.oid.as_bytes());
            put_len(&mut out, attr.desc.options.len());
            for o in &attr.desc.options {
                put_bytes(&mut out, o.as_bytes());
            }
            put_len(&mut out, attr.values.len());
            for v in &attr.values {
                put_bytes(&mut out, v);
            }
        }
        Ok(out)
    }

    /// Decodes a record of entry `id`.
    pub(crate) fn decode(&self, id: u64, record: &[u8]) -> Result<Entry> {
        let mut r = Reader { buf: record, id };
        let header = r.header()?;
        let ndn = keys::ndn_from_key(header.dn_key)?;
        let dn = r.dn()?;
        let attr_count = r.len()?;
        let mut attrs = Vec::with_capacity(attr_count.min(256));
        for _ in 0..attr_count {
            let oid = r.bytes()?;
            let attr_id = *self
                .by_oid
                .get(oid)
                .ok_or_else(|| StoreError::UndefinedAttribute {
                    id,
                    oid: String::from_utf8_lossy(oid).into_owned(),
                })?;
            let option_count = r.len()?;
            let mut options = Vec::with_capacity(option_count.min(16));
            for _ in 0..option_count {
                options.push(r.string()?);
            }
            let value_count = r.len()?;
            let mut values = Vec::with_capacity(value_count.min(4096));
            for _ in 0..value_count {
                values.push(r.bytes()?.to_vec());
            }
            attrs.push(Attribute {
                desc: AttrDesc {
                    id: attr_id,
                    options,
                },
                values,
            });
        }
        if !r.buf.is_empty() {
            return Err(r.corrupt("trailing bytes"));
        }
        Ok(Entry { dn, ndn, attrs })
    }
}

/// The DN of a record of entry `id` as written, and its normalized form, without decoding
/// the attributes (a group of thousands of members named in a `memberOf` value).
pub(crate) fn decode_dn(id: u64, record: &[u8]) -> Result<(Dn, NormDn)> {
    let mut r = Reader { buf: record, id };
    let header = r.header()?;
    let ndn = keys::ndn_from_key(header.dn_key)?;
    Ok((r.dn()?, ndn))
}

/// Reads the header of a record of entry `id`.
pub(crate) fn header(id: u64, record: &[u8]) -> Result<RecordHeader<'_>> {
    Reader { buf: record, id }.header()
}

/// Overwrites the parent id of an encoded record (the parent is known only inside the write
/// transaction, after the entry was encoded outside it).
pub(crate) fn set_parent(record: &mut [u8], parent: u64) {
    if let Some(slot) = record.get_mut(PARENT_AT..PARENT_AT + keys::ID_LEN) {
        slot.copy_from_slice(&keys::id_bytes(parent));
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    let mut n = n as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    id: u64,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::corrupt("entry record", format!("entry {}: {detail}", self.id))
    }

    fn dn(&mut self) -> Result<Dn> {
        let rdn_count = self.len()?;
        let mut rdns = Vec::with_capacity(rdn_count.min(64));
        for _ in 0..rdn_count {
            let ava_count = self.len()?;
            let mut avas = Vec::with_capacity(ava_count.min(16));
            for _ in 0..ava_count {
                let attr = self.string()?;
                let value = self.bytes()?.to_vec();
                avas.push(Ava { attr, value });
            }
            rdns.push(Rdn { avas });
        }
        Ok(Dn { rdns })
    }

    fn header(&mut self) -> Result<RecordHeader<'a>> {
        let (&format, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.corrupt("empty record"))?;
        if format != ENTRY_FORMAT {
            return Err(self.corrupt(&format!("unknown entry format {format}")));
        }
        let (parent, rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| self.corrupt("short header"))?;
        self.buf = rest;
        let parent = u64::from_be_bytes(*parent);
        let dn_key = self.bytes()?;
        Ok(RecordHeader { parent, dn_key })
    }

    fn len(&mut self) -> Result<usize> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| self.corrupt("truncated length"))?;
            self.buf = rest;
            if shift > 56 {
                return Err(self.corrupt("length too long"));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        usize::try_from(n).map_err(|_| self.corrupt("length too large"))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        if n > self.buf.len() {
            return Err(self.corrupt("truncated value"));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.corrupt("invalid UTF-8 in a name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 1 << 20, usize::MAX >> 1] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            let mut r = Reader { buf: &out, id: 0 };
            assert_eq!(r.len().unwrap(), n);
            assert!(r.buf.is_empty());
        }
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let codec = EntryCodec::new(&Schema::default());
        let mut rec = vec![ENTRY_FORMAT];
        rec.extend_from_slice(&7u64.to_be_bytes());
        put_bytes(&mut rec, b"dc=com\0");
        put_len(&mut rec, 0);
        put_len(&mut rec, 0);
        let e = codec.decode(1, &rec).unwrap();
        assert_eq!(e.ndn.rdns, vec!["dc=com".to_string()]);
        assert_eq!(header(1, &rec).unwrap().parent, 7);
        for cut in 0..rec.len() {
            assert!(codec.decode(1, &rec[..cut]).is_err());
        }
        let mut bad = rec.clone();
        bad[0] = 9;
        assert!(codec.decode(1, &bad).is_err());
    }
}
