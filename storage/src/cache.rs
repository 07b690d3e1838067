//! The read cache: decoded entries by id, the id lists of equality index keys, and the ids of
//! DNs, shared by every reader and exact for every snapshot.
//!
//! A `(mail=x)` search spent most of its store time scanning one index key, reading one entry
//! record and decoding it into ~47 allocations. Both answers are kept here, bounded by memory
//! (`StoreConfig::cache_size`), and handed out as `Arc`s. So is the id of a DN that exists
//! (`dn2id`), which every bind by DN reads first: with 100,000 users it missed fjall's block
//! cache and read a block from the file on most binds of a fresh server.
//!
//! # Exactness
//!
//! fjall gives every commit one sequence number `c`; a snapshot with number `S`
//! (`Snapshot::seqno`) sees exactly the commits with `c < S`, and once a commit is applied the
//! visible number, which new snapshots get, is `c + 1` or more. Each slot holds a value, `F`
//! (the number of the snapshot it was read in) and `L` (the number just past the last write to
//! its key: every snapshot that sees that write has `S >= L`, every one that does not has
//! `S < L`); `L = PENDING` while a write to the key is under way. Each shard has a `floor`,
//! at least `L` of every key that has no slot (raised when a slot is evicted).
//!
//! - A writer, under the writer lock, marks every key it writes or removes (`mark_*`) before
//!   its commit: the key's slot gets `L = PENDING` (a slot without value is made if there is
//!   none). After the commit, [`ReadCache::publish`] sets `L = W`, the visible sequence number
//!   read after the commit. A write that fails or is never committed leaves its keys pending
//!   until the next publish, which can only make `L` larger than needed.
//! - A reader with snapshot `S` uses a slot iff `L <= F` and `L <= S`: the value was read
//!   after the last write, and `S` sees that write too, and no later write has been committed
//!   (it would have made the slot pending first). So the value is what `S` itself would read.
//! - A value read in snapshot `F` may be stored iff the key's slot has `L <= F`, or it has no
//!   slot and the floor is `<= F`: `F` saw the last write to the key, so the value is current.
//!   A new slot takes `L` = the floor.
//! - Evicting a slot raises the floor to its `L`; pending slots are never evicted.
//! - Writes that are not marked key by key (a bulk load, an index rebuild) call
//!   [`ReadCache::invalidate`] first: every slot goes and every floor is `PENDING` until the
//!   next publish.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use roster_schema::Entry;

/// The read cache's size unless configured: 512 MiB, enough for the entries and index lists
/// of 100,000 typical users (256 MiB held too few of them: bench/run.sh 100000).
pub const DEFAULT_CACHE_SIZE: u64 = 512 * 1024 * 1024;

/// The read cache's counters: lookups answered from it (hits) and not (misses: read from the
/// store, or not cacheable), and the bytes it holds by its own count, for entries and for
/// equality id lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entry_hits: u64,
    pub entry_misses: u64,
    pub entry_bytes: u64,
    pub list_hits: u64,
    pub list_misses: u64,
    pub list_bytes: u64,
}

/// The `L` of a key being written.
const PENDING: u64 = u64::MAX;

/// The list slot of DN keys (the id of the entry with that DN, or none); index slots are small.
const DN_SLOT: u32 = u32::MAX - 1;
/// Shards per cache: readers on different keys rarely wait for each other.
const SHARDS: usize = 64;
/// What a slot costs besides its value (map and queue entries, the key, the counters).
const SLOT_OVERHEAD: usize = 96;
/// The longest id list kept (an equality key of most entries would crowd out the rest).
const MAX_LIST: usize = 1 << 14;

/// A decoded entry with the parts of its record a search checks its scope with, and its DN
/// as a string once asked for.
#[derive(Debug)]
pub(crate) struct CachedEntry {
    pub(crate) parent: u64,
    pub(crate) dn_key: Box<[u8]>,
    pub(crate) entry: Entry,
    pub(crate) dn: std::sync::OnceLock<String>,
}

impl CachedEntry {
    pub(crate) fn new(parent: u64, dn_key: Box<[u8]>, entry: Entry) -> CachedEntry {
        CachedEntry {
            parent,
            dn_key,
            entry,
            dn: std::sync::OnceLock::new(),
        }
    }
}

/// Memory an entry takes once decoded, roughly: its values, names and the vectors holding them
/// (and its DN string).
pub(crate) fn entry_size(entry: &Entry, dn_key: &[u8]) -> usize {
    let mut n = 256 + 3 * dn_key.len();
    for rdn in &entry.dn.rdns {
        for ava in &rdn.avas {
            n += 3 * (ava.attr.len() + ava.value.len() + 48);
        }
    }
    for attr in &entry.attrs {
        n += 64 + 24 * attr.desc.options.len();
        for v in &attr.values {
            n += 24 + v.len().next_multiple_of(16);
        }
    }
    n
}

/// Where a key's shard is chosen from (a cheap hash; the maps inside hash as they like).
pub(crate) trait ShardKey {
    fn shard(&self) -> usize;
}

impl ShardKey for u64 {
    fn shard(&self) -> usize {
        (self.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
    }
}

impl ShardKey for [u8] {
    fn shard(&self) -> usize {
        let mut h = rustc_hash::FxHasher::default();
        h.write(self);
        (h.finish() >> 58) as usize % SHARDS
    }
}

impl ShardKey for Vec<u8> {
    fn shard(&self) -> usize {
        (**self).shard()
    }
}

struct Slot<V> {
    value: Option<V>,
    /// `F`: the sequence number of the snapshot the value was read in.
    filled: u64,
    /// `L`: just past the last write to the key, or `PENDING`.
    last: u64,
    /// Bytes charged for the slot.
    size: usize,
    /// Used since the eviction hand last passed (second chance).
    used: bool,
}

/// Slots evicted, all caches together (for tests).
#[cfg(test)]
pub(crate) static EVICTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Shard<K, V, S> {
    map: HashMap<K, Slot<V>, S>,
    /// Keys in the order the eviction hand visits them (may name keys since removed).
    order: VecDeque<K>,
    bytes: usize,
    floor: u64,
    /// Lookups answered with a value, and not (counted under the shard's lock: no shared
    /// counter for the cores to pass around).
    hits: u64,
    misses: u64,
}

/// One cache: shards of slots under a mutex each, a byte budget per shard, and the keys the
/// current writer has marked.
pub(crate) struct Sharded<K, V, S> {
    shards: Box<[Mutex<Shard<K, V, S>>]>,
    budget: usize,
    pending: Mutex<Vec<K>>,
    /// Some shard's floor is `PENDING`.
    floors_pending: AtomicBool,
    /// Values handed out.
    #[cfg(test)]
    hits: std::sync::atomic::AtomicU64,
}

impl<K, V, S> Sharded<K, V, S>
where
    K: Hash + Eq + Clone + ShardKey,
    V: Clone,
    S: BuildHasher + Default,
{
    fn new(bytes: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(S::default()),
                    order: VecDeque::new(),
                    bytes: 0,
                    floor: 0,
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        Sharded {
            shards,
            budget: bytes / SHARDS,
            pending: Mutex::new(Vec::new()),
            floors_pending: AtomicBool::new(false),
            #[cfg(test)]
            hits: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        self.budget > 0
    }

    fn shard<Q: ShardKey + ?Sized>(&self, key: &Q) -> Option<MutexGuard<'_, Shard<K, V, S>>> {
        self.shards.get(key.shard())?.lock().ok()
    }

    /// The value of `key` for a reader whose snapshot has sequence number `snapshot`.
    fn get<Q>(&self, key: &Q, snapshot: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        if !self.enabled() {
            return None;
        }
        let mut shard = self.shard(key)?;
        let shard = &mut *shard;
        let value = match shard.map.get_mut(key) {
            Some(slot) if slot.last <= slot.filled && slot.last <= snapshot => {
                slot.used = true;
                slot.value.clone()
            }
            _ => None,
        };
        if value.is_some() {
            shard.hits += 1;
            #[cfg(test)]
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            shard.misses += 1;
        }
        value
    }

    /// (lookups answered, lookups not answered, bytes held) over every shard.
    fn counts(&self) -> (u64, u64, u64) {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .fold((0, 0, 0), |(h, m, b), s| {
                (h + s.hits, m + s.misses, b + s.bytes as u64)
            })
    }

    /// Stores `value`, read in the snapshot with sequence number `snapshot`, if that snapshot
    /// saw the last write to `key` and it fits.
    fn fill(&self, key: K, value: V, size: usize, snapshot: u64) {
        let size = size + SLOT_OVERHEAD;
        if !self.enabled() || size > self.budget / 4 {
            return;
        }
        let Some(mut shard) = self.shard(&key) else {
            return;
        };
        let shard = &mut *shard;
        if let Some(slot) = shard.map.get_mut(&key) {
            if slot.last > snapshot {
                return;
            }
            shard.bytes = shard.bytes - slot.size + size;
            *slot = Slot {
                value: Some(value),
                filled: snapshot,
                last: slot.last,
                size,
                used: true,
            };
            shard.make_room(self.budget, 0);
            return;
        }
        if shard.floor > snapshot || !shard.make_room(self.budget, size) {
            return;
        }
        shard.bytes += size;
        shard.order.push_back(key.clone());
        shard.map.insert(
            key,
            Slot {
                value: Some(value),
                filled: snapshot,
                last: shard.floor,
                size,
                used: false,
            },
        );
    }

    /// Marks `key` as being written: no reader uses or fills it until [`Sharded::publish`].
    fn mark(&self, key: K) {
        if !self.enabled() {
            return;
        }
        let Some(mut shard) = self.shard(&key) else {
            return;
        };
        let shard = &mut *shard;
        match shard.map.get_mut(&key) {
            Some(slot) => {
                slot.last = PENDING;
                // The value is stale from now on: its memory can go.
                if slot.value.take().is_some() {
                    shard.bytes = shard.bytes - slot.size + SLOT_OVERHEAD;
                    slot.size = SLOT_OVERHEAD;
                }
            }
            None => {
                shard.bytes += SLOT_OVERHEAD;
                shard.order.push_back(key.clone());
                shard.map.insert(
                    key.clone(),
                    Slot {
                        value: None,
                        filled: 0,
                        last: PENDING,
                        size: SLOT_OVERHEAD,
                        used: false,
                    },
                );
            }
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(key);
        } else {
            // Without the list the slot could not be published: the floor covers it instead.
            shard.map.remove(&key);
            shard.floor = PENDING;
            self.floors_pending.store(true, Ordering::SeqCst);
        }
    }

    /// Ends the writes marked so far: every snapshot with a sequence number of at least `seqno`
    /// sees them.
    fn publish(&self, seqno: u64) {
        let keys = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => Vec::new(),
        };
        for key in keys {
            if let Some(mut shard) = self.shard(&key) {
                if let Some(slot) = shard.map.get_mut(&key) {
                    if slot.last == PENDING {
                        slot.last = seqno;
                    }
                }
            }
        }
        if !self.floors_pending.swap(false, Ordering::SeqCst) {
            return;
        }
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.lock() {
                if shard.floor == PENDING {
                    shard.floor = seqno;
                }
            }
        }
    }

    /// Forgets everything; nothing is stored again until the next publish.
    fn invalidate(&self) {
        self.floors_pending.store(true, Ordering::SeqCst);
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.lock() {
                shard.map.clear();
                shard.order.clear();
                shard.bytes = 0;
                shard.floor = PENDING;
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.bytes))
            .sum()
    }
}

impl<K, V, S> Shard<K, V, S>
where
    K: Hash + Eq + Clone,
    S: BuildHasher,
{
    /// Evicts until `extra` more bytes fit in `budget`; false if they cannot (every slot left
    /// is pending).
    fn make_room(&mut self, budget: usize, extra: usize) -> bool {
        let mut visits = 2 * self.order.len() + 1;
        while self.bytes + extra > budget {
            if visits == 0 {
                return false;
            }
            visits -= 1;
            let Some(key) = self.order.pop_front() else {
                return false;
            };
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            if slot.last == PENDING || slot.used {
                slot.used = false;
                self.order.push_back(key);
                continue;
            }
            if let Some(slot) = self.map.remove(&key) {
                self.bytes -= slot.size;
                self.floor = self.floor.max(slot.last);
                #[cfg(test)]
                EVICTIONS.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

impl crate::store::Inner {
    /// Publishes the cache keys marked so far, once their writes are committed (under the
    /// writer lock): every snapshot taken from now on sees them.
    pub(crate) fn publish_cache(&self) {
        self.cache.publish(self.db.inner().visible_seqno());
    }
}

/// The id list of one equality index key, by index slot and key (without the id).
pub(crate) type IdList = Arc<[u64]>;

/// The store's read cache (see the module documentation).
pub(crate) struct ReadCache {
    entries: Sharded<u64, Arc<CachedEntry>, rustc_hash::FxBuildHasher>,
    lists: Sharded<Vec<u8>, IdList, std::collections::hash_map::RandomState>,
}

impl ReadCache {
    /// A cache of about `bytes` bytes (0: none): three quarters for entries, the rest for id
    /// lists.
    pub(crate) fn new(bytes: u64) -> ReadCache {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        let lists = bytes / 4;
        ReadCache {
            entries: Sharded::new(bytes - lists),
            lists: Sharded::new(lists),
        }
    }

    /// Where the index key starts in a [`ReadCache::list_key`].
    pub(crate) const LIST_KEY_SLOT: usize = 4;

    /// The cache key of index slot `slot`'s key `key` (without the id).
    pub(crate) fn list_key(slot: usize, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(4 + key.len());
        k.extend_from_slice(&u32::try_from(slot).unwrap_or(u32::MAX).to_be_bytes());
        k.extend_from_slice(key);
        k
    }

    pub(crate) fn entry(&self, id: u64, snapshot: u64) -> Option<Arc<CachedEntry>> {
        self.entries.get(&id, snapshot)
    }

    pub(crate) fn fill_entry(&self, id: u64, entry: Arc<CachedEntry>, snapshot: u64) {
        if self.entries.enabled() {
            let size = entry_size(&entry.entry, &entry.dn_key);
            self.entries.fill(id, entry, size, snapshot);
        }
    }

    /// The id list under `key` (from [`ReadCache::list_key`]).
    pub(crate) fn list(&self, key: &[u8], snapshot: u64) -> Option<IdList> {
        self.lists.get(key, snapshot)
    }

    pub(crate) fn entries_enabled(&self) -> bool {
        self.entries.enabled()
    }

    pub(crate) fn lists_enabled(&self) -> bool {
        self.lists.enabled()
    }

    pub(crate) fn fill_list(&self, key: Vec<u8>, ids: IdList, snapshot: u64) {
        if ids.len() <= MAX_LIST {
            let size = key.len() + 8 * ids.len();
            self.lists.fill(key, ids, size, snapshot);
        }
    }

    /// The list key of the DN key `dn_key` (its `dn2id` key): a slot no index has.
    pub(crate) fn dn_list_key(dn_key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(Self::LIST_KEY_SLOT + dn_key.len());
        k.extend_from_slice(&DN_SLOT.to_be_bytes());
        k.extend_from_slice(dn_key);
        k
    }

    /// Marks the `dn2id` key `dn_key` as being written (an entry gets or loses this DN).
    pub(crate) fn mark_dn(&self, dn_key: &[u8]) {
        if self.lists.enabled() {
            self.lists.mark(Self::dn_list_key(dn_key));
        }
    }

    /// [`ReadCache::list_key`] of the equality key of the normalized value `norm`
    /// (`keys::value_prefix(keys::EQUALITY, norm)`), made in one go.
    pub(crate) fn equality_key(slot: usize, norm: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(Self::LIST_KEY_SLOT + norm.len() + 4);
        k.extend_from_slice(&u32::try_from(slot).unwrap_or(u32::MAX).to_be_bytes());
        k.push(crate::keys::EQUALITY);
        crate::keys::escape_into(&mut k, norm);
        k.push(0);
        k
    }

    /// Marks entry `id` as being written (its record is inserted or removed).
    pub(crate) fn mark_entry(&self, id: u64) {
        self.entries.mark(id);
    }

    /// Marks the key `key` of index slot `slot` as being written.
    pub(crate) fn mark_index_key(&self, slot: usize, key: &[u8]) {
        // Only equality keys are cached.
        if self.lists.enabled() && key.first() == Some(&crate::keys::EQUALITY) {
            self.lists.mark(Self::list_key(slot, key));
        }
    }

    /// Ends the writes marked so far: `seqno` is the database's visible sequence number read
    /// after they were committed.
    pub(crate) fn publish(&self, seqno: u64) {
        self.entries.publish(seqno);
        self.lists.publish(seqno);
    }

    /// For writes not marked key by key: empties the cache until the next publish.
    pub(crate) fn invalidate(&self) {
        self.entries.invalidate();
        self.lists.invalidate();
    }

    /// What the cache has done since the store was opened.
    pub(crate) fn stats(&self) -> CacheStats {
        let (entry_hits, entry_misses, entry_bytes) = self.entries.counts();
        let (list_hits, list_misses, list_bytes) = self.lists.counts();
        CacheStats {
            entry_hits,
            entry_misses,
            entry_bytes,
            list_hits,
            list_misses,
            list_bytes,
        }
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> (usize, usize) {
        (self.entries.bytes(), self.lists.bytes())
    }

    /// (entries, id lists) handed out so far.
    #[cfg(test)]
    pub(crate) fn hits(&self) -> (u64, u64) {
        (
            self.entries.hits.load(Ordering::Relaxed),
            self.lists.hits.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    type Ids = Sharded<u64, u64, rustc_hash::FxBuildHasher>;

    #[test]
    fn protocol() {
        let c = Ids::new(SHARDS * 10_000);
        // Filled from snapshot 5, used by snapshots before and after (nothing was written).
        c.fill(1, 10, 8, 5);
        assert_eq!(c.get(&1, 5), Some(10));
        assert_eq!(c.get(&1, 3), Some(10));
        assert_eq!(c.get(&1, 9), Some(10));
        // A write under way: nobody uses or fills it.
        c.mark(1);
        assert_eq!(c.get(&1, 9), None);
        c.fill(1, 11, 8, 9);
        assert_eq!(c.get(&1, 9), None);
        // Committed: visible from 12 on.
        c.publish(12);
        assert_eq!(c.get(&1, 12), None);
        c.fill(1, 11, 8, 11);
        assert_eq!(c.get(&1, 20), None);
        c.fill(1, 12, 8, 12);
        assert_eq!(c.get(&1, 11), None);
        assert_eq!(c.get(&1, 12), Some(12));
        assert_eq!(c.get(&1, 30), Some(12));
        // A key written while it had no slot gets one, which keeps old readers out.
        c.mark(2);
        c.publish(15);
        c.fill(2, 20, 8, 14);
        assert_eq!(c.get(&2, 20), None);
        c.fill(2, 21, 8, 15);
        assert_eq!(c.get(&2, 15), Some(21));
        assert_eq!(c.get(&2, 14), None);
        // Invalidation: nothing is kept until the next publish, and then only from new reads.
        c.invalidate();
        assert_eq!(c.get(&2, 15), None);
        c.fill(3, 30, 8, 40);
        assert_eq!(c.get(&3, 40), None);
        c.publish(41);
        c.fill(3, 30, 8, 40);
        assert_eq!(c.get(&3, 41), None);
        c.fill(3, 31, 8, 41);
        assert_eq!(c.get(&3, 41), Some(31));
    }

    #[test]
    fn eviction_raises_the_floor() {
        // Four slots of 8 bytes per shard.
        let c = Ids::new(SHARDS * 4 * (SLOT_OVERHEAD + 8));
        let same: Vec<u64> = (0..100_000u64)
            .filter(|k| k.shard() == 0u64.shard())
            .take(12)
            .collect();
        let a = same[0];
        c.fill(a, 1, 8, 5);
        assert_eq!(c.get(&a, 5), Some(1));
        c.mark(a);
        c.publish(10);
        c.fill(a, 2, 8, 10);
        assert_eq!(c.get(&a, 10), Some(2));
        // Others push a out.
        for &k in &same[1..] {
            c.fill(k, 3, 8, 10);
        }
        assert_eq!(c.get(&a, 10), None);
        // a's slot is gone: a reader from before a's write cannot fill it again, a newer one can.
        c.fill(a, 1, 8, 9);
        assert_eq!(c.get(&a, 20), None);
        c.fill(a, 2, 8, 10);
        assert_eq!(c.get(&a, 10), Some(2));
        // Pending slots are never evicted.
        c.mark(a);
        for &k in &same[1..] {
            c.fill(k, 3, 8, 30);
        }
        c.fill(a, 9, 8, 30);
        assert_eq!(c.get(&a, 30), None);
        c.publish(31);
        c.fill(a, 9, 8, 30);
        assert_eq!(c.get(&a, 31), None);
        c.fill(a, 9, 8, 31);
        assert_eq!(c.get(&a, 31), Some(9));
        assert!(c.bytes() <= 4 * (SLOT_OVERHEAD + 8));
    }

    #[test]
    fn equality_keys() {
        for v in [&b""[..], b"a@x", b"\x00\x01\x02 z"] {
            let prefix = crate::keys::value_prefix(crate::keys::EQUALITY, v);
            assert_eq!(
                ReadCache::equality_key(7, v),
                ReadCache::list_key(7, &prefix)
            );
            assert_eq!(
                ReadCache::equality_key(7, v).get(ReadCache::LIST_KEY_SLOT..),
                Some(&prefix[..])
            );
        }
    }

    #[test]
    fn disabled() {
        let c = Ids::new(0);
        c.fill(1, 1, 8, 1);
        c.mark(1);
        c.publish(2);
        assert_eq!(c.get(&1, 5), None);
    }
}
