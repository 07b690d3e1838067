//! Attribute indexes: the configured set resolved against the schema, and the keys an entry
//! contributes to them.
//!
//! Each indexed attribute type has its own keyspace (`ix:<oid>:<generation>`), so that
//! dropping or rebuilding one index touches nothing else. A rebuild fills a keyspace of the next
//! generation and switches to it in the meta keyspace; fjall's `clear` is never used, because
//! fjall 3.1 replays a journaled clear at recovery over tables written after it. Every key names one (kind, normalized value,
//! entry id): writes are blind inserts, removals are plain tombstones, and a prefix scan yields
//! the ids of one value in ascending order. See `keys` for the byte layouts.

use crate::keys;
use roster_schema::{AttrId, Entry, Schema};
use rustc_hash::FxHashMap;

/// Which index kinds an attribute has, as stored in the meta keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IndexFlags(pub(crate) u8);

impl IndexFlags {
    pub(crate) const EQUALITY: u8 = 1;
    pub(crate) const PRESENCE: u8 = 2;
    pub(crate) const SUBSTRING: u8 = 4;

    pub(crate) fn equality(self) -> bool {
        self.0 & Self::EQUALITY != 0
    }
    pub(crate) fn presence(self) -> bool {
        self.0 & Self::PRESENCE != 0
    }
    pub(crate) fn substring(self) -> bool {
        self.0 & Self::SUBSTRING != 0
    }

    pub(crate) fn describe(self) -> String {
        let mut kinds = Vec::new();
        if self.equality() {
            kinds.push("eq");
        }
        if self.presence() {
            kinds.push("pres");
        }
        if self.substring() {
            kinds.push("sub");
        }
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(",")
        }
    }
}

/// One indexed attribute type.
#[derive(Clone)]
pub(crate) struct AttrIndex {
    pub(crate) attr: AttrId,
    pub(crate) oid: String,
    /// The type's name, for plans and logs.
    pub(crate) name: String,
    pub(crate) flags: IndexFlags,
    pub(crate) keyspace: fjall::SingleWriterTxKeyspace,
}

/// The configured indexes, by attribute id.
#[derive(Clone, Default)]
pub(crate) struct Indexes {
    pub(crate) list: Vec<AttrIndex>,
    by_attr: FxHashMap<AttrId, usize>,
    /// `objectClass` and `structuralObjectClass`, whose values are indexed under their class and
    /// every superclass, so that `(objectClass=person)` finds an `inetOrgPerson`.
    class_valued: Vec<AttrId>,
}

/// The OIDs of `objectClass` and `structuralObjectClass`.
const CLASS_VALUED: [&str; 2] = ["2.5.4.0", "2.5.21.9"];

/// The prefix of every index keyspace's name.
pub(crate) const KEYSPACE_PREFIX: &str = "ix:";

/// The keyspace name of one generation of an attribute's index.
pub(crate) fn keyspace_name(oid: &str, generation: u32) -> String {
    format!("{KEYSPACE_PREFIX}{oid}:{generation}")
}

impl Indexes {
    pub(crate) fn new(schema: &Schema, list: Vec<AttrIndex>) -> Indexes {
        let by_attr = list
            .iter()
            .enumerate()
            .map(|(i, ix)| (ix.attr, i))
            .collect();
        let class_valued = CLASS_VALUED
            .iter()
            .filter_map(|oid| schema.attr_id(oid))
            .collect();
        Indexes {
            list,
            by_attr,
            class_valued,
        }
    }

    /// The slot of an attribute's index.
    pub(crate) fn slot(&self, attr: AttrId) -> Option<usize> {
        self.by_attr.get(&attr).copied()
    }

    pub(crate) fn get(&self, attr: AttrId) -> Option<&AttrIndex> {
        self.slot(attr).and_then(|s| self.list.get(s))
    }
}

/// Computes index keys of entries, reusing its buffers between entries.
#[derive(Default)]
pub(crate) struct KeyBuilder {
    key: Vec<u8>,
    grams: Vec<(usize, [u8; keys::GRAM_LEN])>,
    present: Vec<usize>,
}

impl KeyBuilder {
    /// Calls `sink(slot, key)` for every index key of `entry` (without the trailing entry id)
    /// in the indexes selected by `only` (all when `None`). A key may be produced more than once;
    /// writers tolerate that (a second insert of a key is a no-op).
    pub(crate) fn entry_keys(
        &mut self,
        schema: &Schema,
        indexes: &Indexes,
        only: Option<usize>,
        entry: &Entry,
        sink: &mut dyn FnMut(usize, &[u8]),
    ) {
        self.grams.clear();
        self.present.clear();
        for attr in &entry.attrs {
            let Some(slot) = indexes.slot(attr.desc.id) else {
                continue;
            };
            if only.is_some_and(|o| o != slot) {
                continue;
            }
            let Some(ix) = indexes.list.get(slot) else {
                continue;
            };
            let id = attr.desc.id;
            if ix.flags.presence() && !self.present.contains(&slot) && !attr.values.is_empty() {
                self.present.push(slot);
                sink(slot, &[keys::PRESENCE]);
            }
            for value in &attr.values {
                // A value that does not normalize can never match an assertion, so it needs no
                // key: the candidates stay a superset of the matches.
                if ix.flags.equality() && indexes.class_valued.contains(&id) {
                    for norm in schema.object_class_keys(value).unwrap_or_default() {
                        self.key.clear();
                        self.key.push(keys::EQUALITY);
                        keys::escape_into(&mut self.key, &norm);
                        self.key.push(0);
                        sink(slot, &self.key);
                    }
                } else if ix.flags.equality() {
                    if let Ok(Some(norm)) = schema.normalize_eq(id, value) {
                        self.key.clear();
                        self.key.push(keys::EQUALITY);
                        keys::escape_into(&mut self.key, &norm);
                        self.key.push(0);
                        sink(slot, &self.key);
                    }
                }
                if ix.flags.substring() {
                    if let Ok(Some(norm)) = schema.normalize_substr(id, value) {
                        self.key.clear();
                        self.key.push(keys::INITIAL);
                        keys::escape_into(&mut self.key, &norm);
                        self.key.push(0);
                        sink(slot, &self.key);
                        self.key.clear();
                        self.key.push(keys::FINAL);
                        keys::escape_into(&mut self.key, &keys::reversed(&norm));
                        self.key.push(0);
                        sink(slot, &self.key);
                        for w in norm.windows(keys::GRAM_LEN) {
                            if let Ok(g) = <[u8; keys::GRAM_LEN]>::try_from(w) {
                                self.grams.push((slot, g));
                            }
                        }
                    }
                }
            }
        }
        // Grams repeat across values and within a value; dedup them here, since they are the
        // bulk of the keys.
        self.grams.sort_unstable();
        self.grams.dedup();
        for (slot, g) in &self.grams {
            self.key.clear();
            self.key.push(keys::GRAM);
            self.key.extend_from_slice(g);
            sink(*slot, &self.key);
        }
    }
}

/// The grams of an `*any*` piece, deduplicated, or none when it is shorter than a gram.
pub(crate) fn piece_grams(piece: &[u8]) -> Vec<[u8; keys::GRAM_LEN]> {
    let mut grams: Vec<[u8; keys::GRAM_LEN]> = piece
        .windows(keys::GRAM_LEN)
        .filter_map(|w| <[u8; keys::GRAM_LEN]>::try_from(w).ok())
        .collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}
