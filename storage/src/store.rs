//! The entry store: opening (format check, id seeding, index reconciliation), single-entry
//! writes, and clean shutdown.
//!
//! Keyspaces (see `README.md` for the byte layouts):
//! - `meta`: the on-disk format version and the index configuration by OID;
//! - `id2entry`: entry id → encoded entry (`codec`);
//! - `dn2id`: DN key (reversed, escaped, normalized) → entry id;
//! - `children`: parent id + escaped normalized RDN → entry id;
//! - `ix:<oid>`: one keyspace per indexed attribute type (`index`).
//!
//! Writers are serialized by one lock (fjall's single-writer transactions take another inside):
//! an add's existence checks, id allocation and writes happen in one transaction, so they
//! cannot interleave with another writer's. With `Durability::SyncData` the lock is released
//! after the commit and before the journal sync, which one writer runs for all (`commit`).

mod open;

use crate::bulk::{BulkLoader, KvBuffer};
use crate::changelog::{ChangeKind, TxLog, WriterState};
use crate::codec::{self, EntryCodec};
use crate::commit::{self, GroupCommit, SyncPoint};
use crate::config::{Durability, StoreConfig};
use crate::error::{Context, Result, StoreError};
use crate::index::{self, AttrIndex, IndexFlags, Indexes, KeyBuilder};
use crate::keys;
use crate::links::{LinkAttrs, Repaired};
use crate::reader::{Reader, WalkIter};
use crate::verify::{self, VerifyReport};
use crate::writes::{Batch, WriteReads, Writes};
use fjall::config::{FilterPolicy, RestartIntervalPolicy};
use fjall::{
    KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace,
    SingleWriterWriteTx,
};
use roster_schema::dn::NormDn;
use roster_schema::{AttrId, Entry, Schema};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

/// The on-disk format this build writes and reads (the `format` key of `meta`).
pub const FORMAT_VERSION: u32 = 1;

/// Whether a write commits or only checks that it could (a transaction dropped unwritten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Commit,
    CheckOnly,
}

/// The id of a stored entry. Ids are allocated in ascending order, so bulk-loaded entries get
/// ids in LDIF order, and search results come in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

impl EntryId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Told the last change log sequence number after each commit.
pub type Listener = Arc<dyn Fn(u64) + Send + Sync>;

/// How an heir inherits from a deleted entry: (deleted entry, heir as stored) -> heir's new
/// state (see [`Store::delete_with_heir`]).
pub type Inherit<'a> = dyn Fn(&Entry, &Entry) -> Entry + 'a;

/// Which entries naming a deleted entry name its heir instead (the others lose the value).
pub type TakesHeir<'a> = dyn Fn(&Entry) -> bool + 'a;

/// The embedded entry store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    /// Writes through this handle return once the operating system has them, whatever the
    /// store's durability ([`Store::buffered`]).
    buffered: bool,
}

pub(crate) struct Inner {
    /// The store directory (the bulk loader spills runs below it).
    pub(crate) path: std::path::PathBuf,
    pub(crate) db: SingleWriterTxDatabase,
    pub(crate) meta: SingleWriterTxKeyspace,
    pub(crate) id2entry: SingleWriterTxKeyspace,
    pub(crate) dn2id: SingleWriterTxKeyspace,
    pub(crate) children: SingleWriterTxKeyspace,
    pub(crate) indexes: Indexes,
    pub(crate) schema: Arc<Schema>,
    pub(crate) codec: EntryCodec,
    /// The next entry id. Seeded from the highest stored id at open and only advanced in
    /// memory: a shared counter key would be a hot key every writer rewrites.
    pub(crate) next_id: AtomicU64,
    pub(crate) durability: Durability,
    /// Serializes writers, including a bulk load, which bypasses transactions; holds the CSN
    /// clock and the change log's ends.
    pub(crate) write_lock: Mutex<WriterState>,
    /// The change log (`changelog`).
    pub(crate) changes: SingleWriterTxKeyspace,
    /// `entryCSN` and `entryUUID`, stamped on and logged for every entry written.
    pub(crate) entry_csn: Option<AttrId>,
    pub(crate) entry_uuid: Option<AttrId>,
    /// Entries keep the `entryCSN` they carry (a replica).
    pub(crate) keep_csn: bool,
    /// Called after each commit with the last change log sequence number.
    listeners: RwLock<Vec<Listener>>,
    /// Commit tickets and the synced mark (`Durability::SyncData`).
    group: GroupCommit,
    /// `objectClass`, whose equality index is the least selective: the planner reads it last.
    pub(crate) object_class: Option<AttrId>,
    /// `member`, `memberOf` and the attributes kept referentially intact (`links`).
    pub(crate) links: LinkAttrs,
    /// Values unique among the entries of a class (`unique`).
    pub(crate) unique: Vec<crate::unique::UniqueSpace>,
    /// The ids of recent search bases, exact for one snapshot sequence number (`basecache`).
    pub(crate) bases: crate::basecache::BaseCache,
    /// Decoded entries and equality id lists, exact for every snapshot (`cache`): writers mark
    /// what they write before committing and publish it after.
    pub(crate) cache: crate::cache::ReadCache,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("next_id", &self.inner.next_id.load(Ordering::Relaxed))
            .field(
                "indexes",
                &self
                    .inner
                    .indexes
                    .list
                    .iter()
                    .map(|i| &i.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// How long [`Store::close`] waits for the memtables to be flushed.
pub const CLOSE_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Store {
    /// Flushes every memtable and syncs the journal, so that the next open replays nothing and
    /// takes milliseconds (dropping a store without closing it leaves the journal to replay).
    /// Waits at most [`CLOSE_FLUSH_WAIT`] for the flushes.
    pub fn close(self) -> Result<()> {
        self.close_within(CLOSE_FLUSH_WAIT)
    }

    /// [`Store::close`], waiting at most `wait` for the memtables to be flushed. A flush that
    /// fails (the disk full, the directory gone) never ends, and fjall's own
    /// `rotate_memtable_and_wait` would wait for it forever: past `wait`, the store logs a
    /// warning and only syncs the journal, which the next open replays.
    pub fn close_within(self, wait: std::time::Duration) -> Result<()> {
        let inner = &self.inner;
        let mut keyspaces = vec![&inner.meta, &inner.id2entry, &inner.dn2id, &inner.children];
        keyspaces.extend(inner.indexes.list.iter().map(|i| &i.keyspace));
        let keyspaces: Vec<&fjall::Keyspace> = keyspaces.into_iter().map(AsRef::as_ref).collect();
        for ks in &keyspaces {
            ks.rotate_memtable().context("flush memtable")?;
        }
        let deadline = Instant::now() + wait;
        while keyspaces.iter().any(|ks| ks.sealed_memtable_count() > 0) {
            if Instant::now() >= deadline {
                tracing::warn!(
                    waited = ?wait,
                    "memtables not flushed at close; the journal is replayed at the next start"
                );
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        inner
            .db
            .persist(PersistMode::SyncAll)
            .context("sync journal")?;
        Ok(())
    }

    /// A consistent snapshot of the whole store for reads.
    pub fn reader(&self) -> Reader {
        Reader::new(self.inner.clone())
    }

    /// Every entry, each parent before its children (for `rosterd dump`).
    pub fn dump_iter(&self) -> Result<WalkIter> {
        self.reader().walk()
    }

    /// The schema the store was opened with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.inner.schema
    }

    /// Adds an entry whose parent must exist.
    pub fn add(&self, entry: Entry) -> Result<EntryId> {
        self.insert(entry, false, Write::Commit)
    }

    /// Checks that [`Store::add`] (or [`Store::add_root`] when `may_be_root`) of `entry` would
    /// succeed now (the DN is free, the parent exists, unique values are unique) and writes
    /// nothing: the checks run in a write transaction that is dropped.
    pub fn check_add(&self, entry: Entry, may_be_root: bool) -> Result<()> {
        self.insert(entry, may_be_root, Write::CheckOnly)
            .map(|_| ())
    }

    /// Checks that [`Store::replace`] would succeed now and writes nothing.
    pub fn check_replace(&self, dn: &NormDn, new: Entry) -> Result<()> {
        self.replace_with(dn, new, Write::CheckOnly)
    }

    /// Adds an entry that may be a root of the tree (a naming context): its parent is linked
    /// when it exists and not required otherwise. The server decides which DNs may be roots.
    pub fn add_root(&self, entry: Entry) -> Result<EntryId> {
        self.insert(entry, true, Write::Commit)
    }

    /// A loader for many entries at once (offline, like `slapadd`); see [`BulkLoader`].
    pub fn bulk_loader(&self) -> Result<BulkLoader<'_>> {
        BulkLoader::new(self)
    }

    /// Recomputes every DN, parent and index key from the entries and compares them with what
    /// is stored.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(self)
    }

    /// The read cache's hits, misses and size (`cache`).
    pub fn cache_stats(&self) -> crate::cache::CacheStats {
        self.inner.cache.stats()
    }

    /// Registers `listener`, called after every commit (on the writer's thread, after the
    /// writer lock is released) with the change log's last sequence number.
    pub fn on_commit(&self, listener: Listener) {
        if let Ok(mut l) = self.inner.listeners.write() {
            l.push(listener);
        }
    }

    /// A handle on the same store whose writes return once the operating system has them
    /// (as with `Durability::Buffer`), whatever the store's durability: for a series of
    /// writes made durable together by a later write through a `SyncData` handle. The
    /// journal is synced in commit order, so that later write's sync covers every earlier
    /// one; a crash before it loses a suffix of the buffered writes, never a write in the
    /// middle.
    pub fn buffered(&self) -> Store {
        Store {
            inner: self.inner.clone(),
            buffered: true,
        }
    }

    /// Stores `value` as the named state value `name` (a replica's cookie, say) in the `meta`
    /// keyspace, with this handle's durability: once this returns under `Durability::SyncData`,
    /// the value is on disk, and so is every write committed before it (buffered ones too).
    pub fn put_state(&self, name: &str, value: &[u8]) -> Result<()> {
        self.write_state(name, Some(value))
    }

    /// Removes the named state value `name`; nothing happens when there is none.
    pub fn remove_state(&self, name: &str) -> Result<()> {
        self.write_state(name, None)
    }

    fn write_state(&self, name: &str, value: Option<&[u8]>) -> Result<()> {
        let inner = &*self.inner;
        let key = state_key(name);
        let writer = self.lock_writers()?;
        let mut tx = self.write_tx();
        match value {
            Some(v) => tx.insert(&inner.meta, key, v),
            None => tx.remove(&inner.meta, key),
        }
        tx.commit().context("commit state value")?;
        if self.durability() == Durability::SyncData {
            let ticket = inner.group.committed(None)?;
            drop(writer);
            inner.group.wait_durable(ticket, &inner.db)?;
        }
        Ok(())
    }

    /// A store written before it kept a change log has entries the log does not know: the
    /// floor is set to now, so that a consumer with an older cookie gets the whole content.
    fn start_log_if_missing(&self) -> Result<()> {
        let inner = &*self.inner;
        if inner
            .meta
            .contains_key(crate::changelog::META_LOG_HEAD)
            .context("read log head")?
            || inner.id2entry.first_key_value().is_none()
        {
            return Ok(());
        }
        let mut writer = self.lock_writers()?;
        let csn = writer.clock.next();
        let mut tx = self.write_tx();
        let mut tail = keys::id_bytes(writer.next_seq).to_vec();
        tail.extend_from_slice(csn.as_bytes());
        tx.insert(&inner.meta, crate::changelog::META_LOG_TAIL, tail);
        let mut head = keys::id_bytes(writer.next_seq - 1).to_vec();
        head.extend_from_slice(csn.as_bytes());
        tx.insert(&inner.meta, crate::changelog::META_LOG_HEAD, head);
        tx.commit().context("start change log")?;
        writer.first_seq = writer.next_seq;
        drop(writer);
        inner
            .db
            .persist(PersistMode::SyncData)
            .context("sync journal")?;
        Ok(())
    }

    pub(crate) fn lock_writers(&self) -> Result<MutexGuard<'_, WriterState>> {
        self.inner
            .write_lock
            .lock()
            .map_err(|_| StoreError::Poisoned)
    }

    fn insert(&self, entry: Entry, may_be_root: bool, write: Write) -> Result<EntryId> {
        let inner = &*self.inner;
        if entry.ndn.is_root() {
            return Err(StoreError::InvalidEntry {
                dn: String::new(),
                reason: "the root DSE is not stored".into(),
            });
        }
        let dn_key = keys::dn_key(&entry.ndn);
        // Everything but the entryCSN stamped under the writer lock is known now: unless
        // entryCSN is indexed, the index keys are computed before taking the lock, which every
        // write waits for.
        let csn_indexed = inner
            .entry_csn
            .is_some_and(|a| inner.indexes.get(a).is_some());
        let early_keys = (!csn_indexed).then(|| self.index_keys(&entry));
        let mut writer = self.lock_writers()?;
        let mut entry = entry;
        let log = TxLog::new(writer.clock.next());
        inner.stamp(&mut entry, &log.csn);
        let mut record = inner.codec.encode(&inner.schema, &entry, 0, &dn_key)?;
        let index_keys = match early_keys {
            Some(keys) => keys,
            None => self.index_keys(&entry),
        };
        let mut log = log;
        let mut tx = self.write_batch();
        if tx
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
            Some(parent_key) => match tx
                .snapshot
                .get(&inner.dn2id, parent_key)
                .context("look up parent")?
            {
                Some(v) => keys::id_from_value(&v)?,
                None if may_be_root => 0,
                None => {
                    return Err(StoreError::NoSuchParent {
                        dn: entry.dn.to_string(),
                    })
                }
            },
            None if may_be_root => 0,
            None => {
                return Err(StoreError::NoSuchParent {
                    dn: entry.dn.to_string(),
                })
            }
        };
        self.check_unique(&tx.snapshot, &entry, None, None)?;
        if write == Write::CheckOnly {
            return Ok(EntryId(0));
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        codec::set_parent(&mut record, parent);
        let id_key = keys::id_bytes(id);
        inner.cache.mark_entry(id);
        inner.cache.mark_dn(&dn_key);
        tx.insert(&inner.id2entry, id_key, record);
        tx.insert(&inner.dn2id, dn_key.as_slice(), id_key);
        tx.insert(&inner.children, keys::child_key(parent, &dn_key), id_key);
        self.write_index_keys(&mut tx, &index_keys, id, true);
        log.note(
            ChangeKind::Add,
            id,
            &entry,
            entry.dn.to_string(),
            inner.entry_uuid,
        );
        self.commit(tx, writer, log, "commit entry")?;
        Ok(EntryId(id))
    }

    /// Deletes the leaf entry named `dn` with all its keys (id2entry, dn2id, the link from its
    /// parent and every index key of every value) in one transaction, and returns it.
    /// `NoSuchObject` if it does not exist, `NotAllowedOnNonLeaf` if it has children.
    ///
    /// Values of the integrity attributes naming it are removed from every entry holding one
    /// (its groups), in the same transaction; `touch` is applied to each such entry.
    pub fn delete(&self, dn: &NormDn, touch: &dyn Fn(&mut Entry)) -> Result<(Entry, Repaired)> {
        self.delete_with_heir(dn, None, touch)
    }

    /// As [`Store::delete`], and with `heir` (the DN of another entry and how it inherits:
    /// a function from the deleted entry and the heir's present state to its new state), in
    /// the same transaction: the heir is rewritten as `inherit` says (unique values checked),
    /// and the integrity values naming the deleted entry name the heir instead of being
    /// removed in the entries `takes` accepts (its groups become the heir's), and are removed
    /// from the others. `NoSuchObject` names the heir when it is gone.
    pub fn delete_with_heir(
        &self,
        dn: &NormDn,
        heir: Option<(&NormDn, &Inherit<'_>, &TakesHeir<'_>)>,
        touch: &dyn Fn(&mut Entry),
    ) -> Result<(Entry, Repaired)> {
        let inner = &*self.inner;
        let dn_key = keys::dn_key(dn);
        let mut writer = self.lock_writers()?;
        let mut log = TxLog::new(writer.clock.next());
        let mut tx = self.write_tx();
        let (id, record) = Self::locate(inner, &tx, dn, &dn_key)?;
        if let Some(guard) = tx.prefix(&inner.children, keys::id_bytes(id)).next() {
            guard.key().context("read children")?;
            return Err(StoreError::NotAllowedOnNonLeaf { dn: dn.to_string() });
        }
        let parent = codec::header(id, &record)?.parent;
        let entry = inner.codec.decode(id, &record)?;
        let index_keys = self.index_keys(&entry);
        let id_key = keys::id_bytes(id);
        inner.cache.mark_entry(id);
        tx.remove(&inner.id2entry, id_key);
        inner.cache.mark_dn(&dn_key);
        tx.remove(&inner.dn2id, dn_key.as_slice());
        tx.remove(&inner.children, keys::child_key(parent, &dn_key));
        self.write_index_keys(&mut tx, &index_keys, id, false);
        log.note(
            ChangeKind::Delete,
            id,
            &entry,
            entry.dn.to_string(),
            inner.entry_uuid,
        );
        let mut changes = HashMap::from([(dn.clone(), None)]);
        let mut takes: &TakesHeir<'_> = &|_| true;
        if let Some((heir_dn, inherit, takes_heir)) = heir {
            takes = takes_heir;
            let heir_key = keys::dn_key(heir_dn);
            let (heir_id, heir_record) = Self::locate(inner, &tx, heir_dn, &heir_key)?;
            let before = inner.codec.decode(heir_id, &heir_record)?;
            let mut after = inherit(&entry, &before);
            if after.ndn != before.ndn {
                return Err(StoreError::InvalidEntry {
                    dn: after.dn.to_string(),
                    reason: format!("an heir keeps its DN {heir_dn}"),
                });
            }
            touch(&mut after);
            self.check_unique(&tx, &after, Some(heir_id), Some(&before))?;
            self.rewrite(&mut tx, &mut log, heir_id, &heir_record, &before, after)?;
            changes.insert(dn.clone(), Some(before.dn.clone()));
        }
        let repaired = self.repair_links(&mut tx, &mut log, &changes, takes, touch)?;
        self.commit(tx, writer, log, "commit delete")?;
        Ok((entry, repaired))
    }

    /// Replaces the stored entry named `dn` with `new`, which must have the same normalized DN,
    /// in one transaction: the record is rewritten and only the index keys that differ are
    /// touched (keys of removed values deleted, keys of added values inserted). The entry keeps
    /// its id and parent. `NoSuchObject` if it does not exist. Schema checks are the caller's.
    pub fn replace(&self, dn: &NormDn, new: Entry) -> Result<()> {
        self.replace_with(dn, new, Write::Commit)
    }

    fn replace_with(&self, dn: &NormDn, new: Entry, write: Write) -> Result<()> {
        let inner = &*self.inner;
        if new.ndn != *dn {
            return Err(StoreError::InvalidEntry {
                dn: new.dn.to_string(),
                reason: format!("replace must keep the DN {dn}"),
            });
        }
        let dn_key = keys::dn_key(dn);
        let mut writer = self.lock_writers()?;
        let mut tx = self.write_tx();
        let (id, old_record) = Self::locate(inner, &tx, dn, &dn_key)?;
        let old = inner.codec.decode(id, &old_record)?;
        self.check_unique(&tx, &new, Some(id), Some(&old))?;
        if write == Write::CheckOnly {
            return Ok(());
        }
        let mut log = TxLog::new(writer.clock.next());
        self.rewrite(&mut tx, &mut log, id, &old_record, &old, new)?;
        self.commit(tx, writer, log, "commit replace")?;
        Ok(())
    }

    /// Inside `tx`: stores `new` (same DN as `old`, whose record is `old_record`) as entry
    /// `id`, writing only the index keys that differ.
    /// The new entry gets the write's CSN and the change is logged.
    pub(crate) fn rewrite(
        &self,
        tx: &mut SingleWriterWriteTx<'_>,
        log: &mut TxLog,
        id: u64,
        old_record: &[u8],
        old: &Entry,
        new: Entry,
    ) -> Result<()> {
        let inner = &*self.inner;
        let mut new = new;
        inner.stamp(&mut new, &log.csn);
        let header = codec::header(id, old_record)?;
        let record = inner
            .codec
            .encode(&inner.schema, &new, header.parent, header.dn_key)?;
        inner.cache.mark_entry(id);
        tx.insert(&inner.id2entry, keys::id_bytes(id), record);
        self.write_index_diff(tx, id, &self.index_keys(old), &self.index_keys(&new));
        log.note(
            ChangeKind::Modify,
            id,
            &new,
            old.dn.to_string(),
            inner.entry_uuid,
        );
        Ok(())
    }

    /// Removes the keys of `old` missing from `new` and inserts those of `new` missing from
    /// `old`, for entry `id`.
    fn write_index_diff(
        &self,
        tx: &mut SingleWriterWriteTx<'_>,
        id: u64,
        old: &BTreeSet<(usize, Vec<u8>)>,
        new: &BTreeSet<(usize, Vec<u8>)>,
    ) {
        self.write_index_keys(tx, old.difference(new), id, false);
        self.write_index_keys(tx, new.difference(old), id, true);
    }

    /// Renames or moves the entry named `old` to `new_entry.ndn`, storing `new_entry` (the
    /// caller has already adjusted its RDN attribute values) with the same id, in one
    /// transaction. The new parent is `new_entry`'s parent DN; `new_parent`, the LDAP
    /// newSuperior, must name it when given, and when not given the entry keeps its parent.
    /// For an entry with descendants, every descendant's DN key and stored DN are rewritten;
    /// their ids, parent links and index keys do not change.
    ///
    /// Errors: `NoSuchObject` if `old` does not exist, `AlreadyExists` if the new DN does,
    /// `NoSuchParent` if the new parent does not exist, `InvalidEntry` for a move below the
    /// entry itself or a new DN that does not match `new_parent`.
    ///
    /// Values of the integrity attributes naming the entry or a descendant are rewritten to
    /// the new DNs in every entry holding one, in the same transaction; `touch` is applied to
    /// each such entry.
    pub fn rename(
        &self,
        old: &NormDn,
        new_entry: Entry,
        new_parent: Option<&NormDn>,
        touch: &dyn Fn(&mut Entry),
    ) -> Result<Repaired> {
        let inner = &*self.inner;
        let invalid = |reason: String| StoreError::InvalidEntry {
            dn: new_entry.dn.to_string(),
            reason,
        };
        if new_entry.ndn.is_root() {
            return Err(invalid("the root DSE is not stored".into()));
        }
        let target_parent = new_entry.ndn.parent();
        match new_parent {
            Some(p) if target_parent.as_ref() != Some(p) => {
                return Err(invalid(format!(
                    "the new DN is not below the new superior {p}"
                )));
            }
            None if target_parent != old.parent() => {
                return Err(invalid(format!(
                    "the new DN is not below the parent of {old} and no new superior is given"
                )));
            }
            _ => {}
        }
        let old_key = keys::dn_key(old);
        let new_key = keys::dn_key(&new_entry.ndn);
        if new_key != old_key && new_key.starts_with(&old_key) {
            return Err(invalid(format!("cannot move {old} below itself")));
        }
        let mut writer = self.lock_writers()?;
        let mut log = TxLog::new(writer.clock.next());
        let mut new_entry = new_entry;
        inner.stamp(&mut new_entry, &log.csn);
        let mut record = inner.codec.encode(&inner.schema, &new_entry, 0, &new_key)?;
        let new_index_keys = self.index_keys(&new_entry);
        let mut tx = self.write_tx();
        let (id, old_record) = Self::locate(inner, &tx, old, &old_key)?;
        let old_parent = codec::header(id, &old_record)?.parent;
        let moved = new_key != old_key;
        if moved
            && tx
                .contains_key(&inner.dn2id, &new_key)
                .context("look up dn")?
        {
            return Err(StoreError::AlreadyExists {
                dn: new_entry.dn.to_string(),
            });
        }
        let parent = match keys::ancestor_key_lens(&new_key)
            .next()
            .and_then(|l| new_key.get(..l))
        {
            Some(parent_key) => match tx.get(&inner.dn2id, parent_key).context("look up parent")? {
                Some(v) => keys::id_from_value(&v)?,
                // A root renamed in place stays a root.
                None if new_parent.is_none() && old_parent == 0 => 0,
                None => {
                    return Err(StoreError::NoSuchParent {
                        dn: new_entry.dn.to_string(),
                    })
                }
            },
            None => 0,
        };

        // Descendants, read before anything is written: (old DN key, id, record). A new DN
        // with the same normalized form (a change of case) still rewrites their stored DNs.
        let old_entry = inner.codec.decode(id, &old_record)?;
        self.check_unique(&tx, &new_entry, Some(id), Some(&old_entry))?;
        let mut descendants = Vec::new();
        if moved || new_entry.dn != old_entry.dn {
            for guard in tx.prefix(&inner.dn2id, &old_key) {
                let (k, v) = guard.into_inner().context("read subtree")?;
                if k.len() == old_key.len() {
                    continue;
                }
                let child = keys::id_from_value(&v)?;
                let child_record = tx
                    .get(&inner.id2entry, keys::id_bytes(child))
                    .context("read entry")?
                    .ok_or_else(|| {
                        StoreError::corrupt(
                            "dn2id",
                            format!("{} names missing entry {child}", keys::render(&k)),
                        )
                    })?;
                descendants.push((k, child, child_record));
            }
        }

        let old_index_keys = self.index_keys(&old_entry);
        codec::set_parent(&mut record, parent);
        let id_key = keys::id_bytes(id);
        inner.cache.mark_entry(id);
        tx.insert(&inner.id2entry, id_key, record);
        if moved {
            inner.cache.mark_dn(&old_key);
            inner.cache.mark_dn(&new_key);
            tx.remove(&inner.dn2id, old_key.as_slice());
            tx.remove(&inner.children, keys::child_key(old_parent, &old_key));
            tx.insert(&inner.dn2id, new_key.as_slice(), id_key);
            tx.insert(&inner.children, keys::child_key(parent, &new_key), id_key);
        }
        self.write_index_diff(&mut tx, id, &old_index_keys, &new_index_keys);
        log.note(
            ChangeKind::Rename,
            id,
            &new_entry,
            old_entry.dn.to_string(),
            inner.entry_uuid,
        );

        // Old normalized DN -> new DN as written, for the references to rewrite.
        let mut changes = HashMap::new();
        if new_entry.ndn != *old || new_entry.dn != old_entry.dn {
            changes.insert(old.clone(), Some(new_entry.dn.clone()));
        }
        let old_depth = old.rdns.len();
        for (k, child, child_record) in descendants {
            let mut entry = inner.codec.decode(child, &child_record)?;
            let child_old_dn = entry.dn.to_string();
            inner.stamp(&mut entry, &log.csn);
            let child_parent = codec::header(child, &child_record)?.parent;
            let own = entry.dn.rdns.len().saturating_sub(old_depth);
            entry.dn.rdns.truncate(own);
            entry.dn.rdns.extend(new_entry.dn.rdns.iter().cloned());
            let own = entry.ndn.rdns.len().saturating_sub(old_depth);
            entry.ndn.rdns.truncate(own);
            entry.ndn.rdns.extend(new_entry.ndn.rdns.iter().cloned());
            let mut child_key = new_key.clone();
            child_key.extend_from_slice(k.get(old_key.len()..).unwrap_or_default());
            let record = inner
                .codec
                .encode(&inner.schema, &entry, child_parent, &child_key)?;
            let child_id = keys::id_bytes(child);
            let old_child = keys::ndn_from_key(&k)?;
            inner.cache.mark_dn(&k);
            inner.cache.mark_dn(&child_key);
            tx.remove(&inner.dn2id, k);
            tx.insert(&inner.dn2id, child_key, child_id);
            inner.cache.mark_entry(child);
            tx.insert(&inner.id2entry, child_id, record);
            log.note(
                ChangeKind::Rename,
                child,
                &entry,
                child_old_dn,
                inner.entry_uuid,
            );
            changes.insert(old_child, Some(entry.dn));
        }
        let repaired = self.repair_links(&mut tx, &mut log, &changes, &|_| true, touch)?;
        self.commit(tx, writer, log, "commit rename")?;
        Ok(repaired)
    }

    /// What this handle's writes wait for.
    fn durability(&self) -> Durability {
        if self.buffered {
            Durability::Buffer
        } else {
            self.inner.durability
        }
    }

    /// A write transaction. Its commit hands the batch to the operating system
    /// (`Durability::Buffer`) or, with `Durability::SyncData`, only writes it into the
    /// journal's buffer: [`Store::commit`] then waits for a sync that covers it.
    fn write_tx(&self) -> SingleWriterWriteTx<'_> {
        let tx = self.inner.db.write_tx();
        if self.durability() == Durability::SyncData {
            tx.durability(None)
        } else {
            tx.durability(Some(PersistMode::Buffer))
        }
    }

    /// A plain batch for a write that reads nothing it writes, with a snapshot to read from
    /// (see `writes.rs`). Call it under the writer lock: the snapshot then sees every commit
    /// before it. Durability as [`Store::write_tx`].
    fn write_batch(&self) -> Batch {
        let db = self.inner.db.inner();
        let batch = db.batch();
        let batch = if self.durability() == Durability::SyncData {
            batch.durability(None)
        } else {
            batch.durability(Some(PersistMode::Buffer))
        };
        Batch {
            batch,
            snapshot: db.snapshot(),
        }
    }

    /// Commits `tx` and releases the writer lock. With `Durability::SyncData`, returns only
    /// once the journal is on disk up to this commit (group commit, see `commit`): the ticket
    /// is taken under the writer lock, so a sync that covers it covers every earlier commit,
    /// and the lock is released before waiting so that other writers can commit meanwhile and
    /// share the same sync.
    ///
    /// The change log records of `log` are written in the same transaction, and the
    /// listeners are told once the write is durable.
    fn commit<W: WriteReads>(
        &self,
        mut tx: W,
        mut writer: MutexGuard<'_, WriterState>,
        log: TxLog,
        context: &'static str,
    ) -> Result<()> {
        let (next_seq, first_seq) = self.inner.write_log(&mut tx, &writer, &log)?;
        tx.commit().context(context)?;
        self.inner.publish_cache();
        writer.next_seq = next_seq;
        writer.first_seq = first_seq;
        let last = next_seq - 1;
        if self.durability() == Durability::SyncData {
            let ticket = self.inner.group.committed(Some(last))?;
            drop(writer);
            let point = SyncPoint {
                ticket,
                last_seq: last,
            };
            if commit::defer(self.key(), point) {
                return Ok(());
            }
            self.inner.group.wait_durable(ticket, &self.inner.db)?;
        } else {
            drop(writer);
        }
        self.tell(last);
        Ok(())
    }

    /// Calls the commit listeners with the change log's last sequence number.
    fn tell(&self, last: u64) {
        if let Ok(listeners) = self.inner.listeners.read() {
            for l in listeners.iter() {
                l(last);
            }
        }
    }

    /// Waits up to `timeout` for a durable commit this has not returned yet, calls `before`,
    /// syncs the journal through the last commit (sharing the sync with any writer syncing
    /// already; nothing to do if one has synced that far), tells the commit listeners and
    /// returns the point reached; `None` if nothing was committed by then. A server's sync
    /// thread loops on this, so that each sync starts as soon as there is a commit to sync,
    /// without being asked, and every point a deferred write waits for is returned once it is
    /// on disk, whoever synced it. A failed sync is fatal ([`StoreError::JournalSync`]).
    pub fn sync_next(
        &self,
        timeout: std::time::Duration,
        before: impl FnOnce(),
    ) -> Result<Option<SyncPoint>> {
        if !self.inner.group.wait_unreported(timeout)? {
            return Ok(None);
        }
        before();
        let Some((ticket, last_seq)) = self.inner.group.take_unreported()? else {
            return Ok(None);
        };
        let point = SyncPoint { ticket, last_seq };
        self.sync_through(point)?;
        Ok(Some(point))
    }

    /// Identifies the shared state of this store among others in the process.
    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Runs `f`, in which this thread's durable commits to this store are written to the
    /// journal but not waited for: returns `f`'s result and, if it committed anything that
    /// must be synced, the point to pass to [`Store::sync_through`] before acknowledging it.
    /// Readers see the commits at once, as they do while an ordinary writer waits for its
    /// sync; the commit listeners are told by `sync_through`.
    ///
    /// So a writer can release its thread while the journal sync runs, and one sync can
    /// acknowledge the writes of many threads.
    pub fn deferring<R>(&self, f: impl FnOnce() -> R) -> (R, Option<SyncPoint>) {
        commit::deferring(self.key(), f)
    }

    /// Returns once the journal is on disk up to `point` (and so every commit before it),
    /// syncing it if no other writer is, then tells the commit listeners. A failed sync is
    /// fatal ([`StoreError::JournalSync`]).
    pub fn sync_through(&self, point: SyncPoint) -> Result<()> {
        self.inner
            .group
            .wait_durable(point.ticket, &self.inner.db)?;
        self.tell(point.last_seq);
        Ok(())
    }

    /// The id and record of the entry whose DN key is `dn_key`, read inside `tx`.
    fn locate(
        inner: &Inner,
        tx: &SingleWriterWriteTx<'_>,
        dn: &NormDn,
        dn_key: &[u8],
    ) -> Result<(u64, fjall::Slice)> {
        let no_such = || StoreError::NoSuchObject { dn: dn.to_string() };
        if dn.is_root() {
            return Err(no_such());
        }
        let id = match tx.get(&inner.dn2id, dn_key).context("look up dn")? {
            Some(v) => keys::id_from_value(&v)?,
            None => return Err(no_such()),
        };
        let record = tx
            .get(&inner.id2entry, keys::id_bytes(id))
            .context("read entry")?
            .ok_or_else(|| {
                StoreError::corrupt("dn2id", format!("{dn} names missing entry {id}"))
            })?;
        Ok((id, record))
    }

    /// Every index key of `entry` as (index slot, key without the id), each once.
    fn index_keys(&self, entry: &Entry) -> BTreeSet<(usize, Vec<u8>)> {
        let inner = &*self.inner;
        // Gathered in a list and built into the set in one go (sorted and deduplicated once),
        // rather than inserted one by one.
        let mut out = Vec::new();
        KeyBuilder::default().entry_keys(
            &inner.schema,
            &inner.indexes,
            None,
            entry,
            &mut |slot, key| out.push((slot, key.to_vec())),
        );
        out.into_iter().collect()
    }

    /// Inserts (or, with `insert` false, removes) the index keys `keys` of entry `id`.
    fn write_index_keys<'k>(
        &self,
        tx: &mut impl Writes,
        keys: impl IntoIterator<Item = &'k (usize, Vec<u8>)>,
        id: u64,
        insert: bool,
    ) {
        let id_key = keys::id_bytes(id);
        // fjall copies each key into its own storage: one buffer serves for all.
        let mut full = Vec::new();
        for (slot, key) in keys {
            if let Some(ix) = self.inner.indexes.list.get(*slot) {
                self.inner.cache.mark_index_key(*slot, key);
                full.clear();
                full.extend_from_slice(key);
                full.extend_from_slice(&id_key);
                if insert {
                    tx.insert(&ix.keyspace, full.as_slice(), []);
                } else {
                    tx.remove(&ix.keyspace, full.as_slice());
                }
            }
        }
    }
}

/// The `meta` key of the named state value `name`.
pub(crate) fn state_key(name: &str) -> Vec<u8> {
    let mut k = b"state:".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}
