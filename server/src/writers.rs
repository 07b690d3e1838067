//! The threads that run clients' write operations (add, delete, modify, modify DN, Password
//! Modify), at a lower scheduling priority than the threads that answer searches and binds.
//!
//! A write costs the server many times what a mail lookup does (schema checks, every index
//! key, the change log, the journal), and a directory behind mail servers must keep answering
//! lookups while an import or a sync runs. So writes run here, on `[server] write_threads`
//! threads per pool at the priority `[server] write_priority` names ([`WritePriority`]): when the
//! cores are busy, the kernel gives the lookups most of the time and the writes what is left;
//! when they are not, writes run at full speed. A write's thread is free once its commit is in
//! the journal; the answer waits for the journal sync elsewhere (`syncer`).
//!
//! With `write_priority = "yield"` (the default) there are two pools of threads. A write
//! handed over while lookups are coming in (the server's count of binds, searches and
//! compares rose since the last write was handed over) runs on a thread in Linux's
//! `SCHED_IDLE` class; any other write on a thread `write_nice` steps below the server. A
//! niced thread that is running when a lookup's thread wakes keeps the core until the
//! scheduler's fairness says otherwise; an idle-class thread is preempted at once. Measured
//! with eight `ldapadd` writers and ldclt searching by mail on two cores (bench/RESULTS.md):
//! searches kept 0.62-0.70 of their read-only rate with nice 5 (nice 19 was no better) and
//! 0.86-0.92 with the idle pool, while the writers got 1,050-1,350 adds/s instead of ~2,300.
//! Writes alone, all in the idle class, ran about a tenth slower (the write clients and the
//! server's network threads preempt them), hence the second pool. A thread cannot leave
//! `SCHED_IDLE`, or lower its nice value again, without privileges, so each pool keeps its
//! class for good.
//!
//! The priority is per thread (Linux); a kernel that refuses it leaves the threads at the
//! server's priority, with a warning.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Why a write could not be run.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the write threads have stopped")]
    Stopped,
    #[error("the write failed unexpectedly: {0}")]
    Panicked(String),
}

/// The write threads; they end when this is dropped and their queues are empty.
#[derive(Debug)]
pub struct Writers {
    jobs: Mutex<Option<Queues>>,
    in_flight: Arc<InFlight>,
    /// With [`WritePriority::Yield`]: the lookup count and its value at the last hand-over.
    lookups: Option<(Lookups, AtomicU64)>,
}

/// The queues of the write threads: one pool at the configured nice value and, with
/// [`WritePriority::Yield`], one in the idle class.
#[derive(Debug)]
struct Queues {
    niced: mpsc::Sender<Job>,
    idle: Option<mpsc::Sender<Job>>,
}

/// The count of lookups (searches, binds, compares) the server has received so far.
#[derive(Clone)]
pub struct Lookups(pub Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookups")
    }
}

/// How many writes are queued or running on the write threads, for the sync thread: a sync
/// started while a write is about to commit would leave that write to the next sync, so the
/// sync thread waits (briefly) for the writes under way to commit first.
#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<Count>,
    idle: Condvar,
}

#[derive(Debug, Default)]
struct Count {
    writes: usize,
    /// The sync thread waits for `writes` to reach 0.
    waiting: bool,
}

impl InFlight {
    fn enter(&self) {
        if let Ok(mut c) = self.state.lock() {
            c.writes += 1;
        }
    }

    fn leave(&self) {
        if let Ok(mut c) = self.state.lock() {
            c.writes = c.writes.saturating_sub(1);
            // Only then: a notification is a system call even when nobody waits.
            if c.writes == 0 && c.waiting {
                c.waiting = false;
                self.idle.notify_all();
            }
        }
    }

    /// Returns once no write is queued or running, or after `longest`.
    pub fn wait_idle(&self, longest: Duration) {
        let Ok(mut c) = self.state.lock() else { return };
        if c.writes > 0 {
            c.waiting = true;
            if let Ok((mut c, _)) = self.idle.wait_timeout_while(c, longest, |c| c.writes > 0) {
                c.waiting = false;
            }
        }
    }
}

impl Writers {
    /// Starts `threads` write threads (at least one) at `priority`; with
    /// [`WritePriority::Yield`], as many again in the idle class, which take the writes handed
    /// over while `lookups` is rising.
    pub fn start(
        threads: usize,
        priority: WritePriority,
        lookups: Lookups,
    ) -> std::io::Result<Writers> {
        let threads = threads.max(1);
        let niced = pool("rosterd-write", threads, Class::Nice(priority.nice()))?;
        let (idle, lookups) = match priority {
            WritePriority::Yield(_) => {
                let idle = pool("rosterd-write-idle", threads, Class::Idle)?;
                let seen = AtomicU64::new((lookups.0)());
                (Some(idle), Some((lookups, seen)))
            }
            WritePriority::Nice(_) => (None, None),
        };
        Ok(Writers {
            jobs: Mutex::new(Some(Queues { niced, idle })),
            in_flight: Arc::default(),
            lookups,
        })
    }

    /// Runs `f` on a write thread and returns its result: on the idle pool if `may_yield` and
    /// lookups came in since the last write was handed over, else on the niced pool. Jobs
    /// handed to the same pool start in the order they are handed over (a session hands over
    /// one write at a time).
    pub async fn run<R: Send + 'static>(
        &self,
        may_yield: bool,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, WriteError> {
        let (tx, rx) = oneshot::channel();
        let in_flight = self.in_flight.clone();
        let job: Job = Box::new(move || {
            /// Counts the write out however it ends.
            struct Leave(Arc<InFlight>);
            impl Drop for Leave {
                fn drop(&mut self) {
                    self.0.leave();
                }
            }
            let _leave = Leave(in_flight);
            let out = std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string())
            });
            // The session may be gone; the write is done either way.
            let _ = tx.send(out);
        });
        {
            let jobs = self.jobs.lock().map_err(|_| WriteError::Stopped)?;
            let jobs = jobs.as_ref().ok_or(WriteError::Stopped)?;
            // Lookups came in since the last write was handed over: this one goes to the
            // idle class.
            let yielding = self.lookups.as_ref().is_some_and(|(lookups, seen)| {
                let now = (lookups.0)();
                seen.swap(now, Ordering::Relaxed) != now
            }) && may_yield;
            let queue = match &jobs.idle {
                Some(idle) if yielding => idle,
                _ => &jobs.niced,
            };
            self.in_flight.enter();
            if queue.send(job).is_err() {
                self.in_flight.leave();
                return Err(WriteError::Stopped);
            }
        }
        match rx.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(detail)) => Err(WriteError::Panicked(detail)),
            Err(_) => Err(WriteError::Stopped),
        }
    }

    /// The count of writes under way, for the sync thread.
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }

    /// Stops taking jobs; the threads end once the queue is empty.
    pub fn stop(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

/// How write threads (and the journal sync thread) are scheduled against the rest of the
/// server (`[server] write_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePriority {
    /// While lookups come in, writes run in Linux's `SCHED_IDLE` class: only when no other
    /// thread of the machine wants the core, which they give up as soon as one does.
    /// Otherwise this many nice steps below the server (0-19).
    Yield(i32),
    /// Always this many nice steps below the server (0-19; 0: the same priority).
    Nice(i32),
}

impl WritePriority {
    /// The nice increment of the threads that do not yield.
    pub(crate) fn nice(self) -> i32 {
        match self {
            WritePriority::Yield(n) | WritePriority::Nice(n) => n,
        }
    }
}

/// The scheduling of one pool of write threads, fixed for their lifetime: a thread cannot
/// leave `SCHED_IDLE` or lower its nice value again without privileges.
#[derive(Debug, Clone, Copy)]
enum Class {
    Nice(i32),
    Idle,
}

impl Class {
    /// Applies this class to the calling thread; a refusal is logged and the thread keeps the
    /// server's priority.
    fn apply(self) {
        match self {
            Class::Nice(0) => {}
            Class::Nice(nice) => lower_priority(nice),
            Class::Idle => idle_class(),
        }
    }
}

/// Moves the calling thread to Linux's `SCHED_IDLE` class; a refusal is logged and the thread
/// keeps the server's priority.
#[cfg(target_os = "linux")]
fn idle_class() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
        NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    // The crate also sets the thread's nice value to 0 after the class, which a server started
    // niced may not do: what counts is the class the thread ended in.
    let set = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        idle,
    );
    if let Err(e) = set {
        if thread_schedule_policy().ok() != Some(idle) {
            tracing::warn!(error = ?e, "could not move a write thread to SCHED_IDLE; it runs at the server's priority");
        }
    }
}

/// Elsewhere there is no idle class: the thread keeps the server's priority.
#[cfg(not(target_os = "linux"))]
fn idle_class() {
    tracing::warn!(
        "this system has no idle scheduling class; write threads run at the server's priority"
    );
}

/// Starts `threads` threads named `name-<n>` in `class`, taking jobs from one queue.
fn pool(name: &str, threads: usize, class: Class) -> std::io::Result<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..threads {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                class.apply();
                loop {
                    // The lock is held only to take the next job.
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })?;
    }
    Ok(jobs)
}

/// Lowers the calling thread's priority by `nice` (the nice value is capped at 19).
pub(crate) fn lower_priority(nice: i32) {
    // On Linux the nice value belongs to the thread: "process" 0 is the calling thread.
    let lowered = rustix::process::getpriority_process(None)
        .and_then(|own| rustix::process::setpriority_process(None, (own + nice).min(19)));
    if let Err(e) = lowered {
        tracing::warn!(nice, error = %e, "could not lower a write thread's priority; it runs at the server's");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn runs_jobs_reports_panics_and_lowers_priority() {
        let writers = Writers::start(2, WritePriority::Nice(5), no_lookups()).unwrap();
        assert_eq!(writers.run(true, || 40 + 2).await.unwrap(), 42);
        let nice = writers
            .run(true, || rustix::process::getpriority_process(None).unwrap())
            .await
            .unwrap();
        let own = rustix::process::getpriority_process(None).unwrap();
        // Lowered by 5 from the priority the test runs at (capped at 19).
        assert_eq!(nice, (own + 5).min(19), "write thread nice");
        match writers.run(true, || -> u32 { panic!("boom") }).await {
            Err(WriteError::Panicked(d)) => assert!(d.contains("boom"), "{d}"),
            other => panic!("{other:?}"),
        }
        // The threads survive a panicking job.
        assert_eq!(writers.run(true, || 7).await.unwrap(), 7);
        writers.stop();
        assert!(matches!(
            writers.run(true, || 1).await,
            Err(WriteError::Stopped)
        ));
    }

    /// A lookup count that never moves.
    fn no_lookups() -> Lookups {
        Lookups(Arc::new(|| 0))
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn writes_yield_while_lookups_come_in() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let count = Arc::new(AtomicU64::new(0));
        let lookups = {
            let count = count.clone();
            Lookups(Arc::new(move || count.load(Ordering::Relaxed)))
        };
        let writers = Writers::start(1, WritePriority::Yield(3), lookups).unwrap();
        let class = || async {
            writers
                .run(true, || {
                    (
                        thread_schedule_policy().unwrap(),
                        rustix::process::getpriority_process(None).unwrap(),
                    )
                })
                .await
                .unwrap()
        };
        let own = rustix::process::getpriority_process(None).unwrap();
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let other = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        // No lookup since the start: the niced threads.
        assert_eq!(class().await, (other, (own + 3).min(19)));
        // A lookup came in: the idle class, for each write handed over while they come.
        count.fetch_add(1, Ordering::Relaxed);
        assert_eq!(class().await.0, idle);
        count.fetch_add(5, Ordering::Relaxed);
        assert_eq!(class().await.0, idle);
        // They stopped: niced again.
        assert_eq!(class().await.0, other);
        // A write that may not yield (it holds a password slot) goes to the niced pool even
        // while lookups come in.
        count.fetch_add(1, Ordering::Relaxed);
        let policy = writers
            .run(false, || thread_schedule_policy().unwrap())
            .await
            .unwrap();
        assert_eq!(policy, other);
        // The calling thread is left alone.
        assert_eq!(thread_schedule_policy().unwrap(), other);
        // With "nice", writes never yield.
        let writers = Writers::start(
            1,
            WritePriority::Nice(0),
            Lookups(Arc::new({
                let count = count.clone();
                move || count.fetch_add(1, Ordering::Relaxed)
            })),
        )
        .unwrap();
        for _ in 0..3 {
            let policy = writers
                .run(true, || thread_schedule_policy().unwrap())
                .await
                .unwrap();
            assert_eq!(policy, other);
        }
    }

    #[tokio::test]
    async fn the_sync_thread_can_wait_for_writes_under_way() {
        use std::time::{Duration, Instant};
        let writers = Writers::start(1, WritePriority::Nice(0), no_lookups()).unwrap();
        let in_flight = writers.in_flight();
        // Nothing under way: no wait.
        let t = Instant::now();
        in_flight.wait_idle(Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        // A write running: the wait ends when it does, not at the limit.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let job = writers.run(true, move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        let waiter = std::thread::spawn(move || {
            started_rx.recv().unwrap();
            let t = Instant::now();
            in_flight.wait_idle(Duration::from_secs(30));
            t.elapsed()
        });
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            release_tx.send(()).unwrap();
        });
        job.await.unwrap();
        release.join().unwrap();
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(10), "waited {waited:?}");
        // A write that outlasts the limit: the wait gives up at the limit.
        let in_flight = writers.in_flight();
        let waiter = std::thread::spawn(move || {
            // The job below is queued once its future is first polled.
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            in_flight.wait_idle(Duration::from_millis(50));
            t.elapsed()
        });
        writers
            .run(true, || std::thread::sleep(Duration::from_millis(400)))
            .await
            .unwrap();
        let waited = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_millis(350),
            "gave up after {waited:?}"
        );
    }
}
