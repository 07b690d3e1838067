//! The ids of recent search bases. Mail servers search under the same few bases every time,
//! and looking a base up in `dn2id` was a tenth of a `(mail=x)` search.
//!
//! Exactness: an entry remembers the fjall sequence number of the snapshot it was read in
//! (`Snapshot::seqno`, the instant below which a snapshot sees writes). Every commit and every
//! ingestion moves the database's visible sequence number on, so two snapshots with the same
//! sequence number see the same data, and an entry is used only by a reader whose snapshot has
//! exactly that number. The first read in a newer snapshot empties the cache; readers of older
//! snapshots neither use nor fill it.

use std::sync::Mutex;

/// Bases remembered per sequence number; a mail server's lookups use one or two.
const MAX_BASES: usize = 16;
/// Longest DN key kept (longer bases are looked up every time).
const MAX_KEY: usize = 512;

#[derive(Default)]
pub(crate) struct BaseCache {
    state: Mutex<State>,
    #[cfg(test)]
    hits: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    seqno: u64,
    /// (DN key, entry id), at most `MAX_BASES`, replaced oldest first.
    bases: Vec<(Vec<u8>, u64)>,
    next: usize,
}

impl BaseCache {
    /// The id of the entry whose DN key is `key`, if it was read in a snapshot with this
    /// sequence number.
    pub(crate) fn get(&self, seqno: u64, key: &[u8]) -> Option<u64> {
        let state = self.state.lock().ok()?;
        if state.seqno != seqno {
            return None;
        }
        let id = state
            .bases
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, id)| *id)?;
        #[cfg(test)]
        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(id)
    }

    /// Remembers that `key` names entry `id` in the snapshot with sequence number `seqno`.
    pub(crate) fn put(&self, seqno: u64, key: &[u8], id: u64) {
        if key.len() > MAX_KEY {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if seqno < state.seqno {
            return;
        }
        if seqno > state.seqno {
            state.seqno = seqno;
            state.bases.clear();
            state.next = 0;
        }
        if state.bases.iter().any(|(k, _)| k.as_slice() == key) {
            return;
        }
        if state.bases.len() < MAX_BASES {
            state.bases.push((key.to_vec(), id));
        } else {
            let slot = state.next % MAX_BASES;
            if let Some(s) = state.bases.get_mut(slot) {
                *s = (key.to_vec(), id);
            }
            state.next = slot + 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use crate::cache_tests::entry;
    use crate::{Durability, Scope, Store, StoreConfig, StoreError};
    use roster_schema::dn::NormDn;
    use roster_schema::{Dn, Entry, Filter, Schema};
    use std::sync::Arc;

    fn ou(schema: &Schema, name: &str) -> Entry {
        entry(
            schema,
            &format!("ou={name},dc=example,dc=com"),
            &[("objectClass", "organizationalUnit"), ("ou", name)],
        )
    }

    fn ndn(schema: &Schema, dn: &str) -> NormDn {
        Dn::parse(dn).unwrap().normalize(schema).unwrap()
    }

    /// The DNs a subtree search for `(objectClass=*)` under `base` finds, or its error.
    fn under(store: &Store, reader: &crate::Reader, base: &str) -> Result<Vec<String>, String> {
        let schema = store.schema();
        let f = Filter::parse("(objectClass=*)").unwrap().compile(schema);
        match reader.search(&ndn(schema, base), Scope::Subtree, &f) {
            Ok(it) => Ok(it.map(|r| r.unwrap().1.ndn.to_string()).collect()),
            Err(StoreError::NoSuchObject { .. }) => Err("noSuchObject".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn renamed_and_deleted_bases_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::builtin());
        let config = StoreConfig {
            change_log: crate::DEFAULT_CHANGE_LOG,
            keep_csn: false,
            cache_size: crate::DEFAULT_CACHE_SIZE,
            path: dir.path().to_path_buf(),
            indexes: Vec::new(),
            durability: Durability::Buffer,
            integrity: Vec::new(),
            unique: Vec::new(),
        };
        let store = Store::open(&config, schema.clone()).unwrap();
        store
            .add_root(entry(
                &schema,
                "dc=example,dc=com",
                &[("objectClass", "domain"), ("dc", "example")],
            ))
            .unwrap();
        store.add(ou(&schema, "people")).unwrap();
        store.add(ou(&schema, "staff")).unwrap();
        let people = "ou=people,dc=example,dc=com";
        let staff = "ou=staff,dc=example,dc=com";

        // Filled by the first search, used by the second in the same snapshot and by a new
        // reader while nothing was written.
        let before = store.reader();
        let hits = store.inner.bases.hits();
        assert_eq!(under(&store, &before, people), Ok(vec![people.into()]));
        assert_eq!(under(&store, &before, people), Ok(vec![people.into()]));
        assert_eq!(
            under(&store, &store.reader(), people),
            Ok(vec![people.into()])
        );
        assert_eq!(store.inner.bases.hits(), hits + 2);

        // A rename of the base: the old name is gone and the new one found, from new readers;
        // the reader from before still sees the old name.
        let moved = "ou=folks,dc=example,dc=com";
        store
            .rename(
                &ndn(&schema, people),
                entry(
                    &schema,
                    moved,
                    &[("objectClass", "organizationalUnit"), ("ou", "folks")],
                ),
                None,
                &|_| {},
            )
            .unwrap();
        let after = store.reader();
        assert_eq!(under(&store, &after, people), Err("noSuchObject".into()));
        assert_eq!(under(&store, &after, moved), Ok(vec![moved.into()]));
        assert_eq!(under(&store, &before, people), Ok(vec![people.into()]));
        assert_eq!(under(&store, &before, moved), Err("noSuchObject".into()));
        assert_eq!(
            under(&store, &store.reader(), people),
            Err("noSuchObject".into())
        );

        // A delete of a cached base, and an add of an entry under the same name again.
        assert_eq!(
            under(&store, &store.reader(), staff),
            Ok(vec![staff.into()])
        );
        assert_eq!(
            under(&store, &store.reader(), staff),
            Ok(vec![staff.into()])
        );
        store.delete(&ndn(&schema, staff), &|_| {}).unwrap();
        assert_eq!(
            under(&store, &store.reader(), staff),
            Err("noSuchObject".into())
        );
        let readded = store.add(ou(&schema, "staff")).unwrap();
        let reader = store.reader();
        assert_eq!(under(&store, &reader, staff), Ok(vec![staff.into()]));
        assert_eq!(
            reader
                .base_id(&crate::keys::dn_key(&ndn(&schema, staff)))
                .unwrap(),
            Some(readded)
        );
        // An unrelated write also empties the cache (any commit moves the sequence number).
        let hits = store.inner.bases.hits();
        store.add(ou(&schema, "other")).unwrap();
        assert_eq!(
            under(&store, &store.reader(), moved),
            Ok(vec![moved.into()])
        );
        assert_eq!(store.inner.bases.hits(), hits);
    }
}
