//! Bulk loading (offline, like `slapadd -q`): entries are encoded and their keys collected in
//! memory, sorted per keyspace, and written with fjall's ingestion API as ready-made tables,
//! bypassing the journal and the memtables.
//!
//! Loads larger than one run (the memory budget) are an external merge sort: each full run is
//! sorted and spilled to a file per keyspace (in `bulk-tmp/` inside the store directory), and
//! `finish` merges each keyspace's files with the last run into a single ingestion, so that
//! every keyspace ends up as one sorted run. `id2entry` needs no merge: its keys are the
//! ascending ids, so each run is ingested as it fills. Sorting, spilling and merging run on two
//! threads while the caller keeps adding entries.
//!
//! Measured on the 2-core development machine (see `README.md`): one transaction per batch of
//! entries spent most of its time inserting index keys into memtables; sorted ingestion writes
//! the same keys several times faster. Ingesting each run as overlapping tables and leaving the
//! merge to compaction made `(mail=x)` searches 155 µs instead of 23 µs at 1M entries until
//! compaction caught up, and merging with a major compaction took 20 s of a 44 s load.
//!
//! What that costs: a load is not atomic. Readers may see part of it, and a crash during a load
//! leaves part of it stored. The store's write lock is held for the loader's lifetime, so no
//! other writer runs meanwhile.

use crate::error::{Context, Result, StoreError};
use crate::index::KeyBuilder;
use crate::keys;
use crate::store::{EntryId, Store};
use fjall::{Readable, SingleWriterTxKeyspace, Snapshot};
use roster_schema::Entry;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The memory (key and value bytes plus sort items) collected before a run is written. Two runs
/// can be in memory at once: one being written, one being filled.
pub(crate) const RUN_BYTES: usize = 512 * 1024 * 1024;

/// Buffer size of each spill file's reader and writer.
const SPILL_BUFFER: usize = 1024 * 1024;

/// The directory of spilled runs, inside the store directory (fjall ignores what it does not
/// know there).
const SPILL_DIR: &str = "bulk-tmp";

/// Figures of a finished load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadStats {
    /// Entries stored.
    pub entries: u64,
    /// Keys written to the DN, parent and attribute index keyspaces.
    pub index_keys: u64,
    /// Runs the load was collected in (more than one means runs were spilled and merged).
    pub runs: u64,
    /// Time `finish` spent writing the last run (merging the spilled runs into it, if any).
    pub finishing: Duration,
}

/// Loads many entries at once; see the module documentation for what it trades. Each entry's
/// parent must be stored already or added earlier in the same load (entries come in LDIF
/// order). A failed [`BulkLoader::add`] skips that entry and leaves the loader usable. Entries
/// become visible in runs; [`BulkLoader::finish`] writes the rest. Dropping a loader without
/// `finish` loses the entries not yet written.
pub struct BulkLoader<'a> {
    store: &'a Store,
    writer: MutexGuard<'a, crate::changelog::WriterState>,
    /// The CSN of the load: entries without an `entryCSN` get it (as slapadd stamps them),
    /// and the change log's floor becomes it.
    csn: String,
    snapshot: Snapshot,
    /// xxh3-128 of the DN key of each entry of this load → its id: the parent check of later
    /// entries. A hash instead of the key keeps a 1M-entry load's map at tens of megabytes;
    /// a collision among 128-bit hashes is not a practical concern.
    loaded: FxHashMap<u128, u64>,
    keys: KeyBuilder,
    run: Run,
    /// The keyspaces whose runs are merged: `dn2id`, `children`, then each index by slot.
    merged: Vec<SingleWriterTxKeyspace>,
    /// The spilled runs of each merged keyspace.
    spills: Vec<Vec<PathBuf>>,
    spill_dir: PathBuf,
    /// The threads writing the previous run.
    writing: Vec<JoinHandle<Result<()>>>,
    /// The memory collected before a run is written.
    run_bytes: usize,
    stats: LoadStats,
}

/// One run: a buffer per keyspace.
struct Run {
    id2entry: KvBuffer,
    /// Parallel to `BulkLoader::merged`.
    merged: Vec<KvBuffer>,
}

/// Slots of `Run::merged` and `BulkLoader::merged`.
const DN2ID: usize = 0;
const CHILDREN: usize = 1;
const FIRST_INDEX: usize = 2;

impl Run {
    fn new(keyspaces: usize) -> Run {
        Run {
            id2entry: KvBuffer::default(),
            merged: (0..keyspaces).map(|_| KvBuffer::default()).collect(),
        }
    }

    fn bytes(&self) -> usize {
        self.id2entry.bytes() + self.merged.iter().map(KvBuffer::bytes).sum::<usize>()
    }
}

/// One piece of work of a writer thread.
enum Job {
    Ingest(SingleWriterTxKeyspace, KvBuffer),
    Spill(KvBuffer, PathBuf),
    Merge(SingleWriterTxKeyspace, Vec<PathBuf>, KvBuffer),
}

impl Job {
    /// Roughly the bytes the job reads or writes, to balance the two writer threads.
    fn weight(&self) -> u64 {
        match self {
            Job::Ingest(_, b) | Job::Spill(b, _) => b.bytes() as u64,
            Job::Merge(_, files, b) => {
                let spilled: u64 = files
                    .iter()
                    .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
                    .sum();
                spilled + b.bytes() as u64
            }
        }
    }

    fn run(self) -> Result<()> {
        match self {
            Job::Ingest(keyspace, buffer) => buffer.ingest(&keyspace),
            Job::Spill(buffer, path) => buffer.spill(&path),
            Job::Merge(keyspace, files, buffer) => merge(&keyspace, &files, buffer),
        }
    }
}

impl<'a> BulkLoader<'a> {
    pub(crate) fn new(store: &'a Store) -> Result<BulkLoader<'a>> {
        let mut writer = store.lock_writers()?;
        // The load ingests tables instead of marking what it writes: nothing cached is used
        // or stored again until it ends (published when the loader is dropped).
        store.inner.cache.invalidate();
        let csn = writer.clock.next();
        let snapshot = store.inner.db.read_tx();
        let inner = &store.inner;
        let mut merged = vec![inner.dn2id.clone(), inner.children.clone()];
        merged.extend(inner.indexes.list.iter().map(|ix| ix.keyspace.clone()));
        let spill_dir = inner.path.join(SPILL_DIR);
        // Left over by a load that did not finish.
        remove_spill_dir(&spill_dir)?;
        Ok(BulkLoader {
            store,
            writer,
            csn,
            snapshot,
            loaded: FxHashMap::default(),
            keys: KeyBuilder::default(),
            run: Run::new(merged.len()),
            spills: merged.iter().map(|_| Vec::new()).collect(),
            merged,
            spill_dir,
            writing: Vec::new(),
            run_bytes: RUN_BYTES,
            stats: LoadStats::default(),
        })
    }

    /// Sets the memory collected before a run is written (512 MiB by default; up to twice this
    /// is held while a run is written). Smaller runs use less memory and spill more.
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
        let mut entry = entry;
        if inner
            .entry_csn
            .is_some_and(|a| entry.values_of(a).next().is_none())
        {
            inner.stamp(&mut entry, &self.csn);
        }
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
                if let Some(buffer) = run.merged.get_mut(FIRST_INDEX + slot) {
                    buffer.push_key_with_id(key, &id_key);
                    index_keys += 1;
                }
            },
        );
        run.id2entry.push(&id_key, &record);
        if let Some(children) = run.merged.get_mut(CHILDREN) {
            children.push(&keys::child_key(parent, &dn_key), &id_key);
        }
        if let Some(dn2id) = run.merged.get_mut(DN2ID) {
            dn2id.push(&dn_key, &id_key);
        }
        self.loaded.insert(hash, id);
        self.stats.entries += 1;
        self.stats.index_keys += index_keys + 2;
        if self.run.bytes() > self.run_bytes {
            self.write_run(false)?;
        }
        Ok(EntryId(id))
    }

    /// Writes the last run (merging the spilled ones into it) and waits until everything is
    /// stored.
    pub fn finish(mut self) -> Result<LoadStats> {
        let started = Instant::now();
        self.write_run(true)?;
        self.wait_for_writer()?;
        self.stats.finishing = started.elapsed();
        remove_spill_dir(&self.spill_dir)?;
        // The log knows nothing of the loaded entries: a consumer with an older cookie gets
        // the whole content again.
        let inner = &self.store.inner;
        let mut head = crate::keys::id_bytes(self.writer.next_seq - 1).to_vec();
        head.extend_from_slice(self.csn.as_bytes());
        let mut tail = crate::keys::id_bytes(self.writer.next_seq).to_vec();
        tail.extend_from_slice(self.csn.as_bytes());
        inner
            .meta
            .insert(crate::changelog::META_LOG_HEAD, head)
            .context("write log head")?;
        inner
            .meta
            .insert(crate::changelog::META_LOG_TAIL, tail)
            .context("write log tail")?;
        self.writer.first_seq = self.writer.next_seq;
        self.store
            .inner
            .db
            .persist(fjall::PersistMode::SyncAll)
            .context("sync after bulk load")?;
        Ok(self.stats)
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

    /// Hands the current run to two writer threads, after the previous run is written (so that
    /// `id2entry` receives its runs in id order and memory stays bounded). A run before the last
    /// is spilled; the last is ingested, merged with the spilled runs if there are any.
    fn write_run(&mut self, last: bool) -> Result<()> {
        self.wait_for_writer()?;
        let run = std::mem::replace(&mut self.run, Run::new(self.merged.len()));
        if run.id2entry.is_empty() && !(last && self.spills.iter().any(|s| !s.is_empty())) {
            return Ok(());
        }
        let run_number = self.stats.runs;
        self.stats.runs += 1;
        let mut jobs = vec![Job::Ingest(self.store.inner.id2entry.clone(), run.id2entry)];
        if !last {
            std::fs::create_dir_all(&self.spill_dir).map_err(|source| StoreError::Io {
                context: "create bulk-load spill directory",
                source,
            })?;
        }
        for (i, (buffer, keyspace)) in run.merged.into_iter().zip(&self.merged).enumerate() {
            let spilled = self.spills.get_mut(i);
            match (last, spilled) {
                (false, Some(spilled)) => {
                    let path = self.spill_dir.join(format!("{i}-{run_number}.run"));
                    spilled.push(path.clone());
                    jobs.push(Job::Spill(buffer, path));
                }
                (true, Some(spilled)) if !spilled.is_empty() => {
                    jobs.push(Job::Merge(
                        keyspace.clone(),
                        std::mem::take(spilled),
                        buffer,
                    ));
                }
                _ => jobs.push(Job::Ingest(keyspace.clone(), buffer)),
            }
        }
        // The heaviest jobs first, each to the thread with less so far.
        let mut weighted: Vec<(u64, Job)> = jobs.into_iter().map(|j| (j.weight(), j)).collect();
        weighted.sort_by_key(|(w, _)| Reverse(*w));
        let mut groups: [(u64, Vec<Job>); 2] = [(0, Vec::new()), (0, Vec::new())];
        for (weight, job) in weighted {
            let [first, second] = &mut groups;
            let group = if first.0 <= second.0 { first } else { second };
            group.0 += weight;
            group.1.push(job);
        }
        for (_, group) in groups {
            let handle = std::thread::Builder::new()
                .name("roster-bulk-write".into())
                .spawn(move || group.into_iter().try_for_each(Job::run))
                .map_err(|source| StoreError::Io {
                    context: "start bulk writer thread",
                    source,
                })?;
            self.writing.push(handle);
        }
        Ok(())
    }
}

impl Drop for BulkLoader<'_> {
    fn drop(&mut self) {
        // A loader dropped without `finish` still must not leave threads or spill files behind.
        for handle in self.writing.drain(..) {
            let _ = handle.join();
        }
        // Everything ingested is visible by now; the writer lock is still held.
        self.store.inner.publish_cache();
        if let Err(e) = remove_spill_dir(&self.spill_dir) {
            tracing::warn!(error = %e, "could not remove bulk-load spill files");
        }
    }
}

fn remove_spill_dir(dir: &std::path::Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            context: "remove bulk-load spill directory",
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Merges sorted spill files and a last in-memory run into one ingestion.
fn merge(keyspace: &SingleWriterTxKeyspace, files: &[PathBuf], last: KvBuffer) -> Result<()> {
    let mut sources: Vec<Source> = Vec::with_capacity(files.len() + 1);
    for path in files {
        let file = File::open(path).map_err(|source| StoreError::Io {
            context: "open bulk-load spill file",
            source,
        })?;
        sources.push(Source::File(BufReader::with_capacity(SPILL_BUFFER, file)));
    }
    sources.push(Source::Memory(last.into_sorted()));
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (index, source) in sources.iter_mut().enumerate() {
        let mut pair = Pending {
            head: 0,
            key: Vec::new(),
            value: Vec::new(),
            source: index,
        };
        if source.next_into(&mut pair.key, &mut pair.value)? {
            pair.head = head(&pair.key);
            heap.push(Reverse(pair));
        }
    }
    let mut ingestion = AsRef::<fjall::Keyspace>::as_ref(keyspace)
        .start_ingestion()
        .context("start ingestion")?;
    let mut previous: Vec<u8> = Vec::new();
    let mut wrote = false;
    while let Some(Reverse(mut pair)) = heap.pop() {
        // The same key in two runs would be one key; ingestion requires strictly ascending keys.
        if !(wrote && pair.key == previous) {
            ingestion
                .write(pair.key.as_slice(), pair.value.as_slice())
                .context("write ingested table")?;
            previous.clear();
            previous.extend_from_slice(&pair.key);
            wrote = true;
        }
        if let Some(source) = sources.get_mut(pair.source) {
            if source.next_into(&mut pair.key, &mut pair.value)? {
                pair.head = head(&pair.key);
                heap.push(Reverse(pair));
            }
        }
    }
    ingestion.finish().context("finish ingestion")?;
    for path in files {
        // The directory goes at `finish` anyway; freeing the space early is a courtesy.
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The current pair of one merge source.
#[derive(PartialEq, Eq)]
struct Pending {
    head: u128,
    key: Vec<u8>,
    value: Vec<u8>,
    source: usize,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.key.cmp(&other.key))
            .then_with(|| self.source.cmp(&other.source))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A sorted stream of pairs: a spill file or the last run in memory.
enum Source {
    File(BufReader<File>),
    Memory(SortedBuffer),
}

impl Source {
    /// Reads the next pair into `key` and `value`, reusing their allocations; false at the end.
    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        match self {
            Source::Memory(sorted) => Ok(sorted.next_into(key, value)),
            Source::File(reader) => {
                let io = |source| StoreError::Io {
                    context: "read bulk-load spill file",
                    source,
                };
                let mut lens = [0u8; 8];
                match reader.read_exact(&mut lens) {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                    other => other.map_err(io)?,
                }
                let (k, v) = lens.split_at(4);
                let k = u32::from_le_bytes(k.try_into().unwrap_or_default()) as usize;
                let v = u32::from_le_bytes(v.try_into().unwrap_or_default()) as usize;
                key.resize(k, 0);
                reader.read_exact(key).map_err(io)?;
                value.resize(v, 0);
                reader.read_exact(value).map_err(io)?;
                Ok(true)
            }
        }
    }
}

/// A [`KvBuffer`] with its items sorted and deduplicated, read in order.
pub(crate) struct SortedBuffer {
    buffer: KvBuffer,
    items: Vec<Item>,
    next: usize,
}

impl SortedBuffer {
    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> bool {
        let Some(item) = self.items.get(self.next) else {
            return false;
        };
        self.next += 1;
        key.clear();
        key.extend_from_slice(self.buffer.key(item));
        value.clear();
        value.extend_from_slice(self.buffer.value(item));
        true
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

    /// Sorts by key and drops repeated keys (the last pushed wins).
    fn into_sorted(mut self) -> SortedBuffer {
        let mut items = std::mem::take(&mut self.items);
        // A stable sort keeps pushes of one key in order, so the dedup keeps the last.
        items.sort_by(|a, b| {
            a.head
                .cmp(&b.head)
                .then_with(|| self.key(a).cmp(self.key(b)))
        });
        let mut kept: Vec<Item> = Vec::with_capacity(items.len());
        for item in items {
            match kept.last_mut() {
                Some(last) if last.head == item.head && self.key(last) == self.key(&item) => {
                    *last = item;
                }
                _ => kept.push(item),
            }
        }
        SortedBuffer {
            buffer: self,
            items: kept,
            next: 0,
        }
    }

    /// Sorts the pairs and writes them into `keyspace` as one run of tables.
    pub(crate) fn ingest(self, keyspace: &SingleWriterTxKeyspace) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let sorted = self.into_sorted();
        let mut ingestion = AsRef::<fjall::Keyspace>::as_ref(keyspace)
            .start_ingestion()
            .context("start ingestion")?;
        for item in &sorted.items {
            ingestion
                .write(sorted.buffer.key(item), sorted.buffer.value(item))
                .context("write ingested table")?;
        }
        ingestion.finish().context("finish ingestion")?;
        Ok(())
    }

    /// Sorts the pairs and writes them to a spill file: per pair, key and value lengths (u32,
    /// little-endian), key, value.
    fn spill(self, path: &std::path::Path) -> Result<()> {
        let io = |source| StoreError::Io {
            context: "write bulk-load spill file",
            source,
        };
        let sorted = self.into_sorted();
        let file = File::create(path).map_err(io)?;
        let mut out = BufWriter::with_capacity(SPILL_BUFFER, file);
        for item in &sorted.items {
            out.write_all(&item.key_len.to_le_bytes()).map_err(io)?;
            out.write_all(&item.value_len.to_le_bytes()).map_err(io)?;
            out.write_all(sorted.buffer.key(item)).map_err(io)?;
            out.write_all(sorted.buffer.value(item)).map_err(io)?;
        }
        out.flush().map_err(io)?;
        Ok(())
    }
}
