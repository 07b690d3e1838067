//! Reads from one consistent snapshot of every keyspace: lookups by DN and id, the DN tree,
//! and the pre-order walk used by dump. Searching is in `search`.

use crate::cache::CachedEntry;
use crate::codec;
use crate::error::{Context, Result, StoreError};
use crate::keys;
use crate::search::SharedEntry;
use crate::store::{EntryId, Inner};
use fjall::{Readable, Snapshot};
use roster_schema::dn::NormDn;
use roster_schema::{Dn, Entry};
use std::sync::Arc;

/// A read view of the store as it was when the reader was made. Cheap to create; hold it only
/// as long as needed, since it keeps old versions from being compacted away.
#[derive(Clone)]
pub struct Reader {
    pub(crate) snapshot: Snapshot,
    pub(crate) inner: Arc<Inner>,
}

impl Reader {
    pub(crate) fn new(inner: Arc<Inner>) -> Reader {
        Reader {
            snapshot: inner.db.read_tx(),
            inner,
        }
    }

    /// The schema the store was opened with.
    pub fn schema(&self) -> &Arc<roster_schema::Schema> {
        &self.inner.schema
    }

    /// The named state value `name` ([`crate::Store::put_state`]), if one is stored.
    pub fn state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .snapshot
            .get(&self.inner.meta, crate::store::state_key(name))
            .context("read state value")?
            .map(|v| v.to_vec()))
    }

    /// The id of the entry named `dn`.
    pub fn lookup(&self, dn: &NormDn) -> Result<Option<EntryId>> {
        if dn.is_root() {
            return Ok(None);
        }
        self.lookup_key(&keys::dn_key(dn))
    }

    /// The id of the entry whose DN key is `dn_key`, through the read cache.
    pub(crate) fn lookup_key(&self, dn_key: &[u8]) -> Result<Option<EntryId>> {
        let cache = &self.inner.cache;
        if !cache.lists_enabled() {
            return self.read_dn_key(dn_key);
        }
        let key = crate::cache::ReadCache::dn_list_key(dn_key);
        let seqno = self.snapshot.seqno();
        if let Some(ids) = cache.list(&key, seqno) {
            return Ok(ids.first().map(|id| EntryId(*id)));
        }
        let id = self.read_dn_key(dn_key)?;
        // Only DNs that exist: binds or bases naming random DNs would otherwise push the
        // equality lists out of the cache.
        if let Some(id) = id {
            cache.fill_list(key, Arc::new([id.0]), seqno);
        }
        Ok(id)
    }

    /// [`Reader::lookup_key`] from the store.
    fn read_dn_key(&self, dn_key: &[u8]) -> Result<Option<EntryId>> {
        match self
            .snapshot
            .get(&self.inner.dn2id, dn_key)
            .context("look up dn")?
        {
            Some(v) => Ok(Some(EntryId(keys::id_from_value(&v)?))),
            None => Ok(None),
        }
    }

    /// The id of a search base: [`Reader::lookup_key`] through the store's cache of recent
    /// bases, which answers only for a snapshot with the same sequence number as the one the
    /// answer was read in (`basecache`).
    pub(crate) fn base_id(&self, dn_key: &[u8]) -> Result<Option<EntryId>> {
        let seqno = self.snapshot.seqno();
        if let Some(id) = self.inner.bases.get(seqno, dn_key) {
            return Ok(Some(EntryId(id)));
        }
        let id = self.lookup_key(dn_key)?;
        if let Some(id) = id {
            self.inner.bases.put(seqno, dn_key, id.0);
        }
        Ok(id)
    }

    /// The entry with this id.
    pub fn get(&self, id: EntryId) -> Result<Option<Entry>> {
        match self
            .snapshot
            .get(&self.inner.id2entry, keys::id_bytes(id.0))
            .context("read entry")?
        {
            Some(record) => Ok(Some(self.inner.codec.decode(id.0, &record)?)),
            None => Ok(None),
        }
    }

    /// The entry with this id, shared with the store's read cache (taken from it, or read,
    /// decoded and put there): for reading in place, without a copy.
    pub fn shared(&self, id: EntryId) -> Result<Option<SharedEntry>> {
        let inner = &*self.inner;
        if let Some(cached) = inner.cache.entry(id.0, self.snapshot.seqno()) {
            return Ok(Some(SharedEntry(cached)));
        }
        match self
            .snapshot
            .get(&inner.id2entry, keys::id_bytes(id.0))
            .context("read entry")?
        {
            Some(record) => Ok(Some(SharedEntry(self.decode_into_cache(id.0, &record)?))),
            None => Ok(None),
        }
    }

    /// The entry named `dn`, with its id, shared with the read cache ([`Reader::shared`]).
    pub fn shared_by_dn(&self, dn: &NormDn) -> Result<Option<(EntryId, SharedEntry)>> {
        let Some(id) = self.lookup(dn)? else {
            return Ok(None);
        };
        match self.shared(id)? {
            Some(entry) => Ok(Some((id, entry))),
            None => Err(StoreError::corrupt(
                "dn2id",
                format!("{dn} names missing entry {id}"),
            )),
        }
    }

    /// Decodes the record of entry `id` read from this snapshot and offers it to the read
    /// cache, which keeps it only if this snapshot may fill it (`cache`).
    pub(crate) fn decode_into_cache(&self, id: u64, record: &[u8]) -> Result<Arc<CachedEntry>> {
        let inner = &*self.inner;
        let header = codec::header(id, record)?;
        let entry = inner.codec.decode(id, record)?;
        if !inner.cache.entries_enabled() {
            return Ok(Arc::new(CachedEntry::new(0, Box::default(), entry)));
        }
        let entry = Arc::new(CachedEntry::new(header.parent, header.dn_key.into(), entry));
        inner
            .cache
            .fill_entry(id, entry.clone(), self.snapshot.seqno());
        Ok(entry)
    }

    /// The entry named `dn`, with its id.
    pub fn entry_by_dn(&self, dn: &NormDn) -> Result<Option<(EntryId, Entry)>> {
        let Some(id) = self.lookup(dn)? else {
            return Ok(None);
        };
        match self.get(id)? {
            Some(entry) => Ok(Some((id, entry))),
            None => Err(StoreError::corrupt(
                "dn2id",
                format!("{dn} names missing entry {id}"),
            )),
        }
    }

    /// The DN, as stored, of the nearest existing ancestor of `dn` (the matchedDN of a
    /// noSuchObject result); `None` when no ancestor exists.
    pub fn matched_dn(&self, dn: &NormDn) -> Result<Option<Dn>> {
        let key = keys::dn_key(dn);
        for len in keys::ancestor_key_lens(&key) {
            let Some(prefix) = key.get(..len) else {
                continue;
            };
            if let Some(id) = self.lookup_key(prefix)? {
                return Ok(self.get(id)?.map(|e| e.dn));
            }
        }
        Ok(None)
    }

    /// True if the entry has at least one child.
    pub fn has_children(&self, id: EntryId) -> Result<bool> {
        match self
            .snapshot
            .prefix(&self.inner.children, keys::id_bytes(id.0))
            .next()
        {
            Some(guard) => {
                guard.key().context("read children")?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The number of children of an entry (reads one key per child).
    pub fn count_children(&self, id: EntryId) -> Result<u64> {
        let mut n = 0;
        for guard in self
            .snapshot
            .prefix(&self.inner.children, keys::id_bytes(id.0))
        {
            guard.key().context("read children")?;
            n += 1;
        }
        Ok(n)
    }

    /// The ids of an entry's children (parent 0: the roots), ascending.
    pub(crate) fn child_ids(&self, parent: u64) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        for guard in self
            .snapshot
            .prefix(&self.inner.children, keys::id_bytes(parent))
        {
            let (_, v) = guard.into_inner().context("read children")?;
            ids.push(keys::id_from_value(&v)?);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Every entry in pre-order from the roots (each parent before its children; siblings in
    /// id order, which for a bulk load is LDIF order).
    pub fn walk(&self) -> Result<WalkIter> {
        let roots = self.child_ids(0)?;
        Ok(WalkIter {
            reader: self.clone(),
            stack: vec![roots.into_iter()],
            failed: false,
        })
    }
}

/// The iterator of [`Reader::walk`].
pub struct WalkIter {
    reader: Reader,
    /// The not yet visited children of each entry on the path from a root.
    stack: Vec<std::vec::IntoIter<u64>>,
    failed: bool,
}

impl WalkIter {
    fn step(&mut self) -> Result<Option<(EntryId, Entry)>> {
        loop {
            let Some(level) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(id) = level.next() else {
                self.stack.pop();
                continue;
            };
            let entry = self.reader.get(EntryId(id))?.ok_or_else(|| {
                StoreError::corrupt("children", format!("child {id} has no entry"))
            })?;
            let children = self.reader.child_ids(id)?;
            if !children.is_empty() {
                self.stack.push(children.into_iter());
            }
            return Ok(Some((EntryId(id), entry)));
        }
    }
}

impl Iterator for WalkIter {
    type Item = Result<(EntryId, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
