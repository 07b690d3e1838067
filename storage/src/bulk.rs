//! Bulk loading (offline, like `slapadd -q`): entries are encoded and their keys collected in
//! memory, sorted per keyspace, and written with fjall's ingestion API as ready-made tables,
//! bypassing the journal and the memtables.
//!
//! Measured on the 2-core development machine (see `README.md`): one transaction per batch of
//! entries spent most of its time inserting index keys into memtables; sorted ingestion writes
//! the same keys several times faster. Sorting and writing a run happens on a second thread
//! while the caller keeps adding entries to the next run.
//!
//! What that costs: a load is not atomic. Readers may see part of it, and a crash during a load
//! leaves part of it stored (with every stored entry fully indexed, since a run is written only
//! for whole entries and all keyspaces of a run are written before the next run starts). The
//! store's write lock is held for the loader's lifetime, so no other writer runs meanwhile.

use crate::error::{Context, Result, StoreError};
use crate::index::KeyBuilder;
use crate::keys;
use crate::store::{EntryId, Store};
use fjall::{Readable, SingleWriterTxKeyspace, Snapshot};
use roster_schema::Entry;
use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::thread::JoinHandle;

/// The memory (key and value bytes plus sort items) collected before a run is written. Two runs
/// can be in memory at once: one being written, one being filled.
pub(crate) const RUN_BYTES: usize = 512 * 1024 * 1024;

/// Figures of a finished load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadStats {
    /// Entries stored.
    pub entries: u64,
    /// Keys written to the DN, parent and attribute index keyspaces.
    pub index_keys: u64,
    /// Sorted runs written (each becomes one table run per keyspace).
    pub runs: u64,
    /// Time spent at the end merging the runs of each keyspace (zero for a single run).
    pub merging: std::time::Duration,
}

/// Loads many entries at once; see the module documentation for what it trades. Each entry's
/// parent must be stored already or added earlier in the same load (entries come in LDIF
/// order). A failed [`BulkLoader::add`] skips that entry and leaves the loader usable; nothing
/// is visible before a run is written, and [`BulkLoader::finish`] writes the rest.
pub struct BulkLoader<'a> {
    store: &'a Store,
    _writer: MutexGuard<'a, ()>,
    snapshot: Snapshot,
    /// xxh3-128 of the DN key of each entry of this load → its id: the parent check of later
    /// entries. A hash instead of the key keeps a 1M-entry load's map at tens of megabytes;
    /// a collision among 128-bit hashes is not a practical concern.
    loaded: FxHashMap<u128, u64>,
    keys: KeyBuilder,
    run: Run,
    /// The threads writing the previous run.
    writing: Vec<JoinHandle<Result<()>>>,
    /// The memory collected before a run is written.
    run_bytes: usize,
    stats: LoadStats,
}

/// One run: a buffer per keyspace.
#[derive(Default)]
struct Run {
    id2entry: KvBuffer,
    dn2id: KvBuffer,
    children: KvBuffer,
    indexes: Vec<KvBuffer>,
}

impl Run {
    fn bytes(&self) -> usize {
        self.id2entry.bytes()
            + self.dn2id.bytes()
            + self.children.bytes()
            + self.indexes.iter().map(KvBuffer::bytes).sum::<usize>()
    }
}

impl<'a> BulkLoader<'a> {
    pub(crate) fn new(store: &'a Store) -> Result<BulkLoader<'a>> {
        let writer = store.lock_writers()?;
        let snapshot = store.inner.db.read_tx();
        Ok(BulkLoader {
            store,
            _writer: writer,
            snapshot,
            loaded: FxHashMap::default(),
            keys: KeyBuilder::default(),
            run: new_run(store),
            writing: Vec::new(),
            run_bytes: RUN_BYTES,
            stats: LoadStats::default(),
        })
    }

    /// Sets the memory collected before a run is written (512 MiB by default; up to twice this
    /// is held while a run is written). Smaller runs use less memory and cost a merge at the end.
    pub fn with_run_bytes(mut self, bytes: usize) -> BulkLoader<'a> {
        self.run_bytes = bytes.max(1);
        self
    }

    /// Adds an entry whose parent must be stored or loaded earlier.
    pub fn add(&mut self, entry: Entry) -> Result<EntryId> {
        self.insert(entry, false)
    }

    /// Adds an entry that may be a root of the tree; see [`Store::add_root`].
    pub fn add_root(&mut self, entry: Entry) -> Result<EntryId> {
        self.insert(entry, true)
    }

    fn insert(&mut self, entry: Entry, may_be_root: bool) -> Result<EntryId> {
        let inner = &*self.store.inner;
        if entry.ndn.is_root() {
            return Err(StoreError::InvalidEntry {
                dn: String::new(),
                reason: "the root DSE is not stored".into(),
            });
        }
        let dn_key = keys::dn_key(&entry.ndn);
        let hash = xxhash_rust::xxh3::xxh3_128(&dn_key);
        if self.loaded.contains_key(&hash)
            || self
                .snapshot
                .contains_key(&inner.dn2id, &dn_key)
                .context("look up dn")?
        {
            return Err(StoreError::AlreadyExists {
                dn: entry.dn.to_string(),
            });
        }
        let parent = match keys::ancestor_key_lens(&dn_key)
            .next()
            .and_then(|l| dn_key.get(..l))
        {
            Some(parent_key) => match self.loaded.get(&xxhash_rust::xxh3::xxh3_128(parent_key)) {
                Some(&id) => Some(id),
                None => match self
                    .snapshot
                    .get(&inner.dn2id, parent_key)
                    .context("look up parent")?
                {
                    Some(v) => Some(keys::id_from_value(&v)?),
                    None => None,
                },
            },
            None => None,
        };
        let parent = match parent {
            Some(p) => p,
            None if may_be_root => 0,
            None => {
                return Err(StoreError::NoSuchParent {
                    dn: entry.dn.to_string(),
                })
            }
        };
        let record = inner.codec.encode(&inner.schema, &entry, parent, &dn_key)?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let id_key = keys::id_bytes(id);

        let run = &mut self.run;
        let mut index_keys = 0u64;
        self.keys.entry_keys(
            &inner.schema,
            &inner.indexes,
            None,
            &entry,
            &mut |slot, key| {
                if let Some(buffer) = run.indexes.get_mut(slot) {
                    buffer.push_key_with_id(key, &id_key);
                    index_keys += 1;
                }
            },
        );
        run.id2entry.push(&id_key, &record);
        run.children
            .push(&keys::child_key(parent, &dn_key), &id_key);
        run.dn2id.push(&dn_key, &id_key);
        self.loaded.insert(hash, id);
        self.stats.entries += 1;
        self.stats.index_keys += index_keys + 2;
        if self.run.bytes() > self.run_bytes {
            self.write_run()?;
        }
        Ok(EntryId(id))
    }

    /// Writes what is left, waits for all runs to be stored and, when there was more than one,
    /// merges each keyspace's runs so that reads are fast from the start.
    pub fn finish(mut self) -> Result<LoadStats> {
        self.write_run()?;
        self.wait_for_writer()?;
        if self.stats.runs > 1 {
            let started = std::time::Instant::now();
            self.merge_runs()?;
            self.stats.merging = started.elapsed();
        }
        self.store
            .inner
            .db
            .persist(fjall::PersistMode::SyncAll)
            .context("sync after bulk load")?;
        Ok(self.stats)
    }

    /// Compacts every keyspace but `id2entry` (whose runs hold ascending, disjoint id ranges)
    /// into one sorted run, on two threads. Without this, each lookup in an index merges one
    /// overlapping run per load run until background compaction, which only starts on later
    /// writes and then runs one keyspace at a time, catches up: measured at 1M entries, 155 µs
    /// per `(mail=x)` search right after the load against 23 µs once merged.
    fn merge_runs(&self) -> Result<()> {
        let inner = &self.store.inner;
        let mut keyspaces = vec![inner.dn2id.clone(), inner.children.clone()];
        keyspaces.extend(inner.indexes.list.iter().map(|ix| ix.keyspace.clone()));
        // Largest first, dealt alternately to the two threads, balances them roughly.
        keyspaces
            .sort_by_key(|k| std::cmp::Reverse(AsRef::<fjall::Keyspace>::as_ref(k).disk_space()));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, k) in keyspaces.into_iter().enumerate() {
            if i % 2 == 0 {
                a.push(k);
            } else {
                b.push(k);
            }
        }
        let compact = |list: Vec<SingleWriterTxKeyspace>| -> Result<()> {
            for k in list {
                AsRef::<fjall::Keyspace>::as_ref(&k)
                    .major_compact()
                    .context("merge bulk-loaded runs")?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let other = scope.spawn(|| compact(b));
            let mine = compact(a);
            let theirs = other.join().map_err(|_| StoreError::Poisoned)?;
            mine.and(theirs)
        })
    }

    fn wait_for_writer(&mut self) -> Result<()> {
        let mut outcome = Ok(());
        for handle in self.writing.drain(..) {
            let joined = handle
                .join()
                .map_err(|_| StoreError::Poisoned)
                .and_then(|r| r);
            outcome = outcome.and(joined);
        }
        outcome
    }

    /// Hands the current run to the writer thread (after the previous run is written, so that
    /// runs reach each keyspace in id order and memory stays bounded).
    fn write_run(&mut self) -> Result<()> {
        if self.run.id2entry.is_empty() {
            return Ok(());
        }
        self.wait_for_writer()?;
        let run = std::mem::replace(&mut self.run, new_run(self.store));
        let inner = &self.store.inner;
        let mut targets = vec![
            (inner.id2entry.clone(), run.id2entry),
            (inner.dn2id.clone(), run.dn2id),
            (inner.children.clone(), run.children),
        ];
        for (ix, buffer) in inner.indexes.list.iter().zip(run.indexes) {
            targets.push((ix.keyspace.clone(), buffer));
        }
        self.stats.runs += 1;
        // Two writers, the keyspaces dealt largest first to the one with less so far: the last
        // run is written while the caller has nothing left to add, and sorting is most of it.
        targets.sort_by_key(|(_, buffer)| std::cmp::Reverse(buffer.bytes()));
        let mut groups: [(usize, Vec<(SingleWriterTxKeyspace, KvBuffer)>); 2] =
            [(0, Vec::new()), (0, Vec::new())];
        for target in targets {
            let [first, second] = &mut groups;
            let group = if first.0 <= second.0 { first } else { second };
            group.0 += target.1.bytes();
            group.1.push(target);
        }
        for (_, group) in groups {
            let handle = std::thread::Builder::new()
                .name("roster-bulk-write".into())
                .spawn(move || {
                    for (keyspace, buffer) in group {
                        buffer.ingest(&keyspace)?;
                    }
                    Ok(())
                })
                .map_err(|source| StoreError::Io {
                    context: "start bulk writer thread",
                    source,
                })?;
            self.writing.push(handle);
        }
        Ok(())
    }
}

fn new_run(store: &Store) -> Run {
    Run {
        indexes: store
            .inner
            .indexes
            .list
            .iter()
            .map(|_| KvBuffer::default())
            .collect(),
        ..Run::default()
    }
}

/// Key-value pairs collected in one arena, sorted before ingestion.
#[derive(Default)]
pub(crate) struct KvBuffer {
    data: Vec<u8>,
    items: Vec<Item>,
}

/// One pair in a [`KvBuffer`]: the first sixteen key bytes as a big-endian integer, and where
/// the key and value are. Sixteen bytes cover a whole gram key and the distinguishing part of
/// most values, so nearly every comparison while sorting is one integer compare that does not
/// touch the arena (with eight, comparing keys in the arena took a third of the load time).
#[derive(Clone, Copy)]
struct Item {
    head: u128,
    at: usize,
    key_len: u32,
    value_len: u32,
}

/// The first sixteen bytes, zero-padded: ordering by it never contradicts the byte order of
/// the keys, and equal heads fall back to comparing the keys.
fn head(key: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(key) {
        *d = *s;
    }
    u128::from_be_bytes(b)
}

impl KvBuffer {
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() + self.items.len() * std::mem::size_of::<Item>()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) {
        let at = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.items.push(Item {
            head: head(key),
            at,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        });
    }

    /// Pushes `key ++ id` with an empty value (index keys).
    pub(crate) fn push_key_with_id(&mut self, key: &[u8], id: &[u8; keys::ID_LEN]) {
        let at = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(id);
        let full = self.data.get(at..).unwrap_or_default();
        self.items.push(Item {
            head: head(full),
            at,
            key_len: (key.len() + keys::ID_LEN) as u32,
            value_len: 0,
        });
    }

    fn key(&self, item: &Item) -> &[u8] {
        self.data
            .get(item.at..item.at + item.key_len as usize)
            .unwrap_or_default()
    }

    fn value(&self, item: &Item) -> &[u8] {
        let start = item.at + item.key_len as usize;
        self.data
            .get(start..start + item.value_len as usize)
            .unwrap_or_default()
    }

    /// Sorts by key, drops repeated keys (the last pushed wins), and writes the pairs into
    /// `keyspace` as one run of tables.
    pub(crate) fn ingest(mut self, keyspace: &SingleWriterTxKeyspace) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let mut items = std::mem::take(&mut self.items);
        // A stable sort keeps pushes of one key in order, so the dedup below keeps the last.
        items.sort_by(|a, b| {
            a.head
                .cmp(&b.head)
                .then_with(|| self.key(a).cmp(self.key(b)))
        });
        let mut ingestion = AsRef::<fjall::Keyspace>::as_ref(keyspace)
            .start_ingestion()
            .context("start ingestion")?;
        let mut iter = items.iter().peekable();
        while let Some(item) = iter.next() {
            let key = self.key(item);
            if iter.peek().is_some_and(|next| self.key(next) == key) {
                continue;
            }
            ingestion
                .write(key, self.value(item))
                .context("write ingested table")?;
        }
        ingestion.finish().context("finish ingestion")?;
        Ok(())
    }
}
