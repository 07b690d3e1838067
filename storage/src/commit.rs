//! Group commit: one journal sync for every writer waiting at the time.
//!
//! With `Durability::SyncData` a writer commits its transaction to the journal without syncing
//! while it holds the store's writer lock, so journal order is commit order, and takes a ticket
//! (its commit's sequence number) before releasing the lock. It then waits until the journal is
//! on disk at least up to its ticket. One waiter at a time syncs: it reads the last ticket
//! handed out, syncs the journal (which covers every batch written before the sync started),
//! and raises the synced mark to that ticket; the others sleep on a condition variable and
//! return when the mark covers them, or become the next to sync if it does not. A writer that
//! commits while a sync is under way is covered by the next one, which also covers everyone
//! else who committed in the meantime: under load one sync acknowledges many writes.
//!
//! The sync runs outside fjall's journal lock. fjall's `persist(SyncData)` holds that lock
//! through the `fdatasync`, and every commit needs it to append its batch, so writers that
//! arrive during a sync would queue behind it and each group would hold one or two commits
//! (measured: 3243 syncs for 4000 adds from eight connections). So a sync is two steps:
//! `persist(Buffer)` hands the journal's write buffer to the operating system under the lock
//! (a `write`, no sync), then [`ActiveJournal`] `fdatasync`s the journal file through the
//! store's own handle while the next writers commit. `fdatasync` syncs the file, whichever
//! handle wrote the pages.
//!
//! A failed sync is final: the journal's tail may not be on disk, and a later sync could report
//! success without having written it. Every writer not yet covered, and every later one, gets
//! [`StoreError::JournalSync`], which is fatal.

use crate::error::{Result, StoreError};
use fjall::{PersistMode, SingleWriterTxDatabase};
use std::cell::Cell;
use std::fmt::Display;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The commit sequence and the synced mark of one store.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
    /// Wakes a sync thread waiting in [`GroupCommit::wait_unreported`] for a commit.
    pending: Condvar,
    journal: ActiveJournal,
}

#[derive(Debug, Default)]
struct State {
    /// The last ticket handed out: commits 1..=committed are in the journal (perhaps only in
    /// its write buffer).
    committed: u64,
    /// Every commit up to this ticket is on disk.
    synced: u64,
    /// A waiter is syncing the journal now.
    syncing: bool,
    /// Why a sync failed; set once, never cleared.
    failed: Option<String>,
    /// The change log's last sequence number at the last commit (the commit listeners').
    last_seq: u64,
    /// A sync thread waits in [`GroupCommit::wait_unreported`]: a commit must wake it.
    sync_waiting: bool,
    /// The last ticket a sync thread took ([`GroupCommit::take_unreported`]).
    reported: u64,
}

/// A commit's place in the journal, to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// How far the commits of a deferred write reach ([`crate::Store::deferring`]): the journal
/// must be synced up to here before the write is acknowledged. Points compare in commit
/// order; the later of two covers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncPoint {
    pub(crate) ticket: Ticket,
    /// The change log's last sequence number at that commit, for the commit listeners.
    pub(crate) last_seq: u64,
}

/// One deferral under way on this thread: the store it is for (the address of its shared
/// state) and the furthest point its commits reached.
#[derive(Clone, Copy)]
struct Deferral {
    store: usize,
    reached: Option<SyncPoint>,
}

thread_local! {
    static DEFERRAL: Cell<Option<Deferral>> = const { Cell::new(None) };
}

/// Runs `f` with the commits this thread makes to the store identified by `store` deferred:
/// they are written to the journal but not waited for, and the furthest point they reached
/// is returned with `f`'s result. Nested calls for the same store fold into the outer one.
pub(crate) fn deferring<R>(store: usize, f: impl FnOnce() -> R) -> (R, Option<SyncPoint>) {
    if DEFERRAL.with(|d| d.get().is_some_and(|d| d.store == store)) {
        return (f(), None);
    }
    /// Restores the thread's previous deferral even if `f` unwinds.
    struct Restore(Option<Deferral>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEFERRAL.with(|d| d.set(self.0));
        }
    }
    let restore = Restore(DEFERRAL.with(|d| {
        d.replace(Some(Deferral {
            store,
            reached: None,
        }))
    }));
    let out = f();
    let reached = DEFERRAL.with(|d| d.get()).and_then(|d| d.reached);
    drop(restore);
    (out, reached)
}

/// If this thread defers commits to the store identified by `store`, records `point` and
/// returns true: the caller must not wait for the sync.
pub(crate) fn defer(store: usize, point: SyncPoint) -> bool {
    DEFERRAL.with(|d| match d.get() {
        Some(mut deferral) if deferral.store == store => {
            deferral.reached = deferral.reached.max(Some(point));
            d.set(Some(deferral));
            true
        }
        _ => false,
    })
}

impl GroupCommit {
    /// The group commit of the fjall database in `dir`.
    pub(crate) fn new(dir: &Path) -> GroupCommit {
        GroupCommit {
            journal: ActiveJournal::new(dir),
            ..GroupCommit::default()
        }
    }

    /// Returns once the journal of `db` is on disk up to `ticket` (see [`GroupCommit::wait`]).
    pub(crate) fn wait_durable(&self, ticket: Ticket, db: &SingleWriterTxDatabase) -> Result<()> {
        self.wait(ticket, || {
            db.persist(PersistMode::Buffer)
                .map_err(|e| format!("flush journal buffer: {e}"))?;
            self.journal
                .sync_data()
                .map_err(|e| format!("fdatasync journal: {e}"))
        })
    }

    /// Records a commit that has just been written to the journal, with the change log's last
    /// sequence number after it (`None`: the commit wrote no log record). Must be called under
    /// the store's writer lock, after the transaction's commit returned, so that ticket order
    /// is journal order.
    pub(crate) fn committed(&self, last_seq: Option<u64>) -> Result<Ticket> {
        let mut state = self.lock()?;
        state.committed += 1;
        if let Some(seq) = last_seq {
            state.last_seq = state.last_seq.max(seq);
        }
        if state.sync_waiting {
            // Only then: a notification costs a system call even when nobody waits.
            state.sync_waiting = false;
            self.pending.notify_one();
        }
        Ok(Ticket(state.committed))
    }

    /// Waits up to `timeout` for a commit the sync thread has not taken yet
    /// ([`GroupCommit::take_unreported`]); false if there was none by then. A sync thread
    /// calls this, then takes the commits and syncs through them, so that a sync starts as
    /// soon as there is something to sync, and the next one as soon as the last one ends if
    /// commits came meanwhile. A commit that another writer has synced already counts too:
    /// its deferred writes are acknowledged only through the sync thread.
    pub(crate) fn wait_unreported(&self, timeout: std::time::Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.lock()?;
        loop {
            if let Some(detail) = &state.failed {
                return Err(StoreError::JournalSync {
                    detail: detail.clone(),
                });
            }
            if state.committed > state.reported {
                state.sync_waiting = false;
                return Ok(true);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                state.sync_waiting = false;
                return Ok(false);
            }
            state.sync_waiting = true;
            state = self
                .pending
                .wait_timeout(state, deadline - now)
                .map_err(|_| StoreError::Poisoned)?
                .0;
        }
    }

    /// The last commit's ticket and change log sequence number, if any commit came since the
    /// last call; the caller (the sync thread) must then sync through it and report it.
    pub(crate) fn take_unreported(&self) -> Result<Option<(Ticket, u64)>> {
        let mut state = self.lock()?;
        if state.committed <= state.reported {
            return Ok(None);
        }
        state.reported = state.committed;
        Ok(Some((Ticket(state.committed), state.last_seq)))
    }

    /// Returns once the journal is on disk up to `ticket`, syncing it with `sync` if no other
    /// waiter is doing so. Call it without holding the writer lock, or no other writer can join
    /// the group.
    pub(crate) fn wait<E: Display>(
        &self,
        ticket: Ticket,
        mut sync: impl FnMut() -> std::result::Result<(), E>,
    ) -> Result<()> {
        let mut state = self.lock()?;
        loop {
            if let Some(detail) = &state.failed {
                return Err(StoreError::JournalSync {
                    detail: detail.clone(),
                });
            }
            if state.synced >= ticket.0 {
                return Ok(());
            }
            if state.syncing {
                state = self.changed.wait(state).map_err(|_| StoreError::Poisoned)?;
                continue;
            }
            // This waiter syncs for everyone who has committed so far.
            let target = state.committed;
            state.syncing = true;
            drop(state);
            let turn = Turn {
                group: self,
                finished: false,
            };
            let outcome = sync().map_err(|e| e.to_string());
            state = turn.finish(target, outcome)?;
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| StoreError::Poisoned)
    }
}

/// The journal file fjall appends to, opened by the store to `fdatasync` it without fjall's
/// journal lock.
///
/// fjall keeps its journals in the database directory as `<n>.jnl`; the one with the highest
/// number is the active one, and a rotation creates `<n+1>.jnl` only after syncing `<n>.jnl`
/// (`fsync`, under the journal lock). So once a commit's batch has been handed to the operating
/// system, syncing the newest journal file seen afterwards covers it: either the batch is in
/// that file, or its file was rotated, and so synced, after the batch was written.
#[derive(Debug, Default)]
pub(crate) struct ActiveJournal {
    dir: PathBuf,
    /// The newest journal seen and a handle on it.
    open: Mutex<Option<(u64, File)>>,
}

impl ActiveJournal {
    pub(crate) fn new(dir: &Path) -> ActiveJournal {
        ActiveJournal {
            dir: dir.to_path_buf(),
            open: Mutex::new(None),
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.jnl"))
    }

    /// The number of the newest journal file, found by listing the directory.
    fn newest(&self) -> std::io::Result<u64> {
        let mut newest = None;
        for dirent in std::fs::read_dir(&self.dir)? {
            let name = dirent?.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jnl"))
                .and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(id);
        }
        newest.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no journal file (*.jnl) in {}", self.dir.display()),
            )
        })
    }

    /// `fdatasync`s the newest journal file. Call it after the journal's write buffer has been
    /// handed to the operating system.
    pub(crate) fn sync_data(&self) -> std::io::Result<()> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| std::io::Error::other("journal handle lock poisoned"))?;
        let mut id = match &*open {
            Some((id, _)) => *id,
            None => self.newest()?,
        };
        while self.path(id + 1).try_exists()? {
            id += 1;
        }
        let file = match open.take() {
            Some((open_id, file)) if open_id == id => file,
            _ => File::open(self.path(id))?,
        };
        let file = &open.insert((id, file)).1;
        file.sync_data()
    }

    /// The path of the file the last sync went to.
    #[cfg(test)]
    fn synced_path(&self) -> Option<PathBuf> {
        let open = self.open.lock().ok()?;
        open.as_ref().map(|(id, _)| self.path(*id))
    }
}

/// The turn of the waiter that syncs. If the sync unwinds instead of returning, dropping the
/// turn marks the group failed so that the other waiters do not sleep forever.
struct Turn<'a> {
    group: &'a GroupCommit,
    finished: bool,
}

impl<'a> Turn<'a> {
    /// Publishes the outcome of a sync that covered the tickets up to `target` and wakes every
    /// waiter.
    fn finish(
        mut self,
        target: u64,
        outcome: std::result::Result<(), String>,
    ) -> Result<MutexGuard<'a, State>> {
        self.finished = true;
        let mut state = self.group.lock()?;
        state.syncing = false;
        match outcome {
            Ok(()) => state.synced = state.synced.max(target),
            Err(detail) => {
                tracing::error!(error = %detail, "journal sync failed; the store cannot go on");
                state.failed.get_or_insert(detail);
            }
        }
        self.group.changed.notify_all();
        Ok(state)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut state = self
            .group
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.syncing = false;
        state
            .failed
            .get_or_insert_with(|| "the journal sync panicked".to_string());
        self.group.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};

    #[test]
    fn one_waiter_syncs_once_for_itself() {
        let group = GroupCommit::default();
        let ticket = group.committed(None).unwrap();
        let mut syncs = 0;
        group
            .wait(ticket, || {
                syncs += 1;
                Ok::<(), String>(())
            })
            .unwrap();
        assert_eq!(syncs, 1);
        // Already covered: no second sync.
        group
            .wait(ticket, || -> Result<(), String> { panic!("synced twice") })
            .unwrap();
    }

    #[test]
    fn a_sync_covers_every_earlier_commit() {
        let group = GroupCommit::default();
        let tickets: Vec<Ticket> = (0..5).map(|_| group.committed(None).unwrap()).collect();
        let mut syncs = 0;
        group
            .wait(tickets[4], || {
                syncs += 1;
                Ok::<(), String>(())
            })
            .unwrap();
        for t in &tickets {
            group
                .wait(*t, || -> Result<(), String> { panic!("not covered") })
                .unwrap();
        }
        assert_eq!(syncs, 1);
    }

    #[test]
    fn concurrent_writers_share_syncs() {
        let group = Arc::new(GroupCommit::default());
        let writer_lock = Arc::new(Mutex::new(()));
        let syncs = Arc::new(AtomicU64::new(0));
        // The highest ticket each sync could have covered, checked against every return.
        let synced_up_to = Arc::new(AtomicU64::new(0));
        let threads = 8;
        let per_thread = 200;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (group, writer_lock, syncs, synced_up_to, start) = (
                    group.clone(),
                    writer_lock.clone(),
                    syncs.clone(),
                    synced_up_to.clone(),
                    start.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..per_thread {
                        let ticket = {
                            let _w = writer_lock.lock().unwrap();
                            group.committed(None).unwrap()
                        };
                        group
                            .wait(ticket, || {
                                let covered = group.state.lock().unwrap().committed;
                                syncs.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(300));
                                synced_up_to.fetch_max(covered, Ordering::SeqCst);
                                Ok::<(), String>(())
                            })
                            .unwrap();
                        assert!(synced_up_to.load(Ordering::SeqCst) >= ticket.0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total = (threads * per_thread) as u64;
        let syncs = syncs.load(Ordering::SeqCst);
        assert!(
            syncs >= 1 && syncs < total,
            "{syncs} syncs for {total} commits"
        );
    }

    #[test]
    fn a_failed_sync_fails_every_waiter_and_every_later_one() {
        let group = Arc::new(GroupCommit::default());
        let first = group.committed(None).unwrap();
        let second = group.committed(None).unwrap();
        let err = group
            .wait(second, || Err("disk on fire"))
            .expect_err("the sync failed");
        assert!(err.is_fatal());
        assert!(err.to_string().contains("disk on fire"), "{err}");
        // An earlier ticket was not covered either, and nothing syncs again.
        for ticket in [first, second, group.committed(None).unwrap()] {
            let err = group
                .wait(ticket, || -> Result<(), String> {
                    panic!("synced after a failure")
                })
                .expect_err("failure is final");
            assert!(matches!(err, StoreError::JournalSync { .. }), "{err}");
        }
    }

    #[test]
    fn waiters_blocked_on_a_failing_sync_all_get_the_error() {
        let group = Arc::new(GroupCommit::default());
        let tickets: Vec<Ticket> = (0..4).map(|_| group.committed(None).unwrap()).collect();
        let entered = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let syncer = {
            let (group, entered, release) = (group.clone(), entered.clone(), release.clone());
            let ticket = tickets[0];
            std::thread::spawn(move || {
                group.wait(ticket, || {
                    entered.wait();
                    release.wait();
                    Err("io error")
                })
            })
        };
        entered.wait();
        // The sync is under way: these wait for it rather than start their own.
        let waiters: Vec<_> = tickets[1..]
            .iter()
            .map(|&t| {
                let group = group.clone();
                std::thread::spawn(move || group.wait(t, || Ok::<(), String>(())))
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        release.wait();
        assert!(syncer.join().unwrap().is_err());
        // A waiter that arrived after the failure, or woke to it, sees the error; none may
        // succeed, because the failed sync was the only one and it covered none of them.
        for w in waiters {
            let r = w.join().unwrap();
            assert!(matches!(r, Err(StoreError::JournalSync { .. })), "{r:?}");
        }
    }

    #[test]
    fn the_synced_journal_is_the_one_holding_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = SingleWriterTxDatabase::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("k", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let group = GroupCommit::new(dir.path());
        for i in 0..3 {
            let marker = format!("group-commit-marker-{i}");
            let mut tx = db.write_tx().durability(None);
            tx.insert(&ks, marker.as_bytes(), b"v");
            tx.commit().unwrap();
            let ticket = group.committed(None).unwrap();
            group.wait_durable(ticket, &db).unwrap();
            let path = group.journal.synced_path().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} does not hold {marker}",
                path.display()
            );
        }
    }

    #[test]
    fn a_newer_journal_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = ActiveJournal::new(dir.path());
        assert_eq!(
            journal.sync_data().unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        for id in [3, 4, 12] {
            std::fs::write(dir.path().join(format!("{id}.jnl")), b"").unwrap();
        }
        std::fs::write(dir.path().join("lock"), b"").unwrap();
        journal.sync_data().unwrap();
        assert_eq!(journal.synced_path(), Some(dir.path().join("12.jnl")));
        // A rotation creates the next number; the old file may be deleted.
        std::fs::write(dir.path().join("13.jnl"), b"").unwrap();
        std::fs::write(dir.path().join("14.jnl"), b"").unwrap();
        std::fs::remove_file(dir.path().join("12.jnl")).unwrap();
        journal.sync_data().unwrap();
        assert_eq!(journal.synced_path(), Some(dir.path().join("14.jnl")));
    }

    #[test]
    fn a_panicking_sync_does_not_strand_the_others() {
        let group = Arc::new(GroupCommit::default());
        let ticket = group.committed(None).unwrap();
        let g = group.clone();
        let r = std::thread::spawn(move || {
            g.wait(ticket, || -> Result<(), String> { panic!("sync panicked") })
        })
        .join();
        assert!(r.is_err());
        let err = group
            .wait(ticket, || Ok::<(), String>(()))
            .expect_err("the panic counts as a failed sync");
        assert!(err.is_fatal());
    }
}
