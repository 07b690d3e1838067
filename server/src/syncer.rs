//! Acknowledging writes once the journal is on disk, without a thread per waiting write.
//!
//! A write operation runs on a blocking thread inside [`Store::deferring`]: its commits go
//! into the journal and are visible at once, and the thread is free as soon as the operation
//! returns, with the [`SyncPoint`] its commits reached. The session then waits here, as an
//! async task, until the journal is synced up to that point, and only then answers the
//! client. One thread (`rosterd-sync`) syncs for every write: the store wakes it at the first
//! commit not yet on disk ([`Store::sync_next`]), it syncs through the last commit (the store's
//! group commit), and publishes the point reached, which wakes every session whose write it
//! covers. Writes committed during a sync are covered by the next one, which starts as soon as
//! that sync ends: no session has to ask for it.
//!
//! Before it syncs, the thread waits for the writes queued or running on the write threads
//! ([`InFlight`]) to commit, at most [`GATHER`]: a sync started just before they commit would
//! leave them to the next one. A lone write is synced at once. Measured with eight `ldapadd`
//! writers on two cores: 4.2 writes per fsync instead of 2.1, the server's CPU per add down a
//! tenth, adds/s up 8%; waiting up to 1 ms instead was slower.
//!
//! The thread runs at the write threads' priority (`server.write_priority`).
//!
//! A failed sync is fatal to the store: waiters get the error and the process exits (see
//! `Directory::store_failed`).

use crate::writers::{InFlight, WritePriority};
use roster_storage::{Store, StoreError, SyncPoint};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the sync thread has reached.
#[derive(Debug, Clone, Default)]
struct Synced {
    /// Every commit up to here is on disk.
    point: Option<SyncPoint>,
    /// Why the last sync failed; set once, the store goes no further.
    failed: Option<String>,
}

/// How long the sync thread waits for a commit before it looks whether it should stop.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// The longest the sync thread waits for writes under way before it syncs.
pub const GATHER: Duration = Duration::from_micros(300);

/// The handle sessions wait on. Dropping it ends the thread and waits for it, so that the
/// store is not held after the directory is gone.
#[derive(Debug)]
pub struct Syncer {
    stop: Arc<AtomicBool>,
    synced: watch::Receiver<Synced>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Syncer {
    /// Starts the sync thread of `store` at `priority` (as the
    /// write threads: the syncs are the writes' work too).
    pub fn start(
        store: Store,
        priority: WritePriority,
        in_flight: Arc<InFlight>,
    ) -> std::io::Result<Syncer> {
        let (publish, synced) = watch::channel(Synced::default());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rosterd-sync".into())
            .spawn(move || {
                if priority.nice() != 0 {
                    crate::writers::lower_priority(priority.nice());
                }
                while !stopping.load(Ordering::Relaxed) {
                    match store.sync_next(IDLE_CHECK, || in_flight.wait_idle(GATHER)) {
                        Ok(Some(point)) => {
                            publish.send_if_modified(|s| {
                                let newer = s.point < Some(point);
                                if newer {
                                    s.point = Some(point);
                                }
                                newer
                            });
                        }
                        Ok(None) => {}
                        Err(e) => {
                            publish.send_modify(|s| {
                                s.failed.get_or_insert_with(|| e.to_string());
                            });
                            return;
                        }
                    }
                }
            })?;
        Ok(Syncer {
            stop,
            synced,
            thread: Some(thread),
        })
    }

    /// Returns once the journal is on disk up to `point`. The sync thread syncs every commit
    /// without being asked.
    pub async fn wait(&self, point: SyncPoint) -> Result<(), StoreError> {
        let covered = |s: &Synced| s.failed.is_some() || s.point >= Some(point);
        let mut synced = self.synced.clone();
        let state = synced
            .wait_for(covered)
            .await
            .map_err(|_| StoreError::JournalSync {
                detail: "the sync thread has stopped".into(),
            })?;
        match &state.failed {
            Some(detail) => Err(StoreError::JournalSync {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }
}
