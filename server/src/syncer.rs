//! Acknowledging writes once the journal is on disk, without a thread per waiting write.
//!
//! A write operation runs on a blocking thread inside [`Store::deferring`]: its commits go
//! into the journal and are visible at once, and the thread is free as soon as the operation
//! returns, with the [`SyncPoint`] its commits reached. The session then waits here, as an
//! async task, until the journal is synced up to that point, and only then answers the
//! client. One thread (`rosterd-sync`) syncs for every waiting write: it takes the latest point
//! handed to it, syncs once (the store's group commit), and publishes the point reached, which
//! wakes every session whose write it covers. Writes that arrive during a sync are covered by
//! the next one.
//!
//! The thread runs at the write threads' priority (`server.write_nice`).
//!
//! A failed sync is fatal to the store: waiters get the error and the process exits (see
//! `Directory::store_failed`).

use roster_storage::{Store, StoreError, SyncPoint};
use std::sync::mpsc;
use tokio::sync::watch;

/// What the sync thread has reached.
#[derive(Debug, Clone, Default)]
struct Synced {
    /// Every commit up to here is on disk.
    point: Option<SyncPoint>,
    /// Why the last sync failed; set once, the store goes no further.
    failed: Option<String>,
}

/// The handle sessions wait on. Dropping it ends the thread and waits for it, so that the
/// store is not held after the directory is gone.
#[derive(Debug)]
pub struct Syncer {
    points: Option<mpsc::Sender<SyncPoint>>,
    synced: watch::Receiver<Synced>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.points.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Syncer {
    /// Starts the sync thread of `store`, `nice` steps below the server's priority (as the
    /// write threads: the syncs are the writes' work too).
    pub fn start(store: Store, nice: i32) -> std::io::Result<Syncer> {
        let (points, rx) = mpsc::channel::<SyncPoint>();
        let (publish, synced) = watch::channel(Synced::default());
        let thread = std::thread::Builder::new()
            .name("rosterd-sync".into())
            .spawn(move || {
                if nice != 0 {
                    crate::writers::lower_priority(nice);
                }
                while let Ok(mut point) = rx.recv() {
                    // Everything handed over meanwhile is covered by the latest point.
                    while let Ok(later) = rx.try_recv() {
                        point = point.max(later);
                    }
                    match store.sync_through(point) {
                        Ok(()) => {
                            publish.send_if_modified(|s| {
                                let newer = s.point < Some(point);
                                if newer {
                                    s.point = Some(point);
                                }
                                newer
                            });
                        }
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
            points: Some(points),
            synced,
            thread: Some(thread),
        })
    }

    /// Returns once the journal is on disk up to `point`.
    pub async fn wait(&self, point: SyncPoint) -> Result<(), StoreError> {
        let covered = |s: &Synced| s.failed.is_some() || s.point >= Some(point);
        let stopped = || StoreError::JournalSync {
            detail: "the sync thread has stopped".into(),
        };
        if !covered(&self.synced.borrow()) {
            let points = self.points.as_ref().ok_or_else(stopped)?;
            points.send(point).map_err(|_| stopped())?;
        }
        let mut synced = self.synced.clone();
        let state = synced.wait_for(covered).await.map_err(|_| stopped())?;
        match &state.failed {
            Some(detail) => Err(StoreError::JournalSync {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }
}
