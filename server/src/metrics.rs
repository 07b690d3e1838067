//! What the server has done, for the operator: operations by type and result code with their
//! latency, connections, and the store's size on disk, served in Prometheus's text format on
//! an HTTP listener of its own (`[metrics] listen`, off unless set; give it a loopback address,
//! the figures are for the operator's monitoring, not for the world).
//!
//! The counters are atomics bumped by each connection's codec (`codec.rs`), which sees every
//! request as it is decoded and every response as it is encoded: one place, whatever path the
//! operation took in between.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The operations counted, by the name the metrics give them.
pub const OPS: [&str; 8] = [
    "bind", "search", "compare", "add", "modify", "delete", "modrdn", "extended",
];

/// The lookups among [`OPS`]: bind, search, compare.
const LOOKUPS: [usize; 3] = [0, 1, 2];

/// The Prometheus text of the replicas' state (`[[replica]]`); empty without replicas.
pub fn render_replicas(statuses: &[crate::replica::ReplicaStatus]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if statuses.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "# HELP roster_replica_connected 1 while the replica has a session with its provider.\n# TYPE roster_replica_connected gauge"
    );
    for s in statuses {
        let _ = writeln!(
            out,
            "roster_replica_connected{{replica=\"{}\"}} {}",
            s.name,
            u8::from(s.connected())
        );
    }
    let _ = writeln!(
        out,
        "# HELP roster_replica_changes_applied_total Changes from the provider applied since the start.\n# TYPE roster_replica_changes_applied_total counter"
    );
    for s in statuses {
        let _ = writeln!(
            out,
            "roster_replica_changes_applied_total{{replica=\"{}\"}} {}",
            s.name, s.changes_applied
        );
    }
    let _ = writeln!(
        out,
        "# HELP roster_replica_last_change_timestamp_seconds When the last change from the provider was applied (Unix time; 0: none since the start).\n# TYPE roster_replica_last_change_timestamp_seconds gauge"
    );
    for s in statuses {
        let secs = s
            .last_change
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(
            out,
            "roster_replica_last_change_timestamp_seconds{{replica=\"{}\"}} {secs:.3}",
            s.name
        );
    }
    let _ = writeln!(
        out,
        "# HELP roster_replica_cookie_csn_timestamp_seconds Time of the provider's last commit this replica holds (its cookie's CSN; 0: no cookie). The provider's roster_context_csn_timestamp_seconds minus this is the replication lag.\n# TYPE roster_replica_cookie_csn_timestamp_seconds gauge"
    );
    for s in statuses {
        let secs = s
            .cookie_csn
            .as_deref()
            .and_then(roster_storage::csn_micros)
            .map_or(0.0, |us| us as f64 / 1e6);
        let _ = writeln!(
            out,
            "roster_replica_cookie_csn_timestamp_seconds{{replica=\"{}\"}} {secs:.6}",
            s.name
        );
    }
    out
}

/// Result codes 0..=122 are counted one by one; anything else as "other".
const CODES: usize = 124;
const OTHER: usize = CODES - 1;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 500_000, 1_000_000, 5_000_000,
];

struct OpStats {
    /// Requests received.
    initiated: AtomicU64,
    /// Answers sent, by result code.
    by_code: [AtomicU64; CODES],
    buckets: [AtomicU64; BUCKETS_US.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            initiated: AtomicU64::new(0),
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// The server's counters.
pub struct Metrics {
    ops: [OpStats; OPS.len()],
    /// Sync searches (RFC 4533) in their persist stage.
    sync_consumers: AtomicI64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            ops: std::array::from_fn(|_| OpStats::new()),
            sync_consumers: AtomicI64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one request received (`op` an index into [`OPS`]).
    pub fn initiated(&self, op: usize) {
        if let Some(s) = self.ops.get(op) {
            s.initiated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one finished operation (`op` an index into [`OPS`]), with its latency when the
    /// operation was timed.
    pub fn record(&self, op: usize, code: u32, took: Option<Duration>) {
        let Some(s) = self.ops.get(op) else {
            return;
        };
        let slot = usize::try_from(code).map_or(OTHER, |c| c.min(OTHER));
        if let Some(c) = s.by_code.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let Some(took) = took else {
            return;
        };
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        for (bound, b) in BUCKETS_US.iter().zip(&s.buckets) {
            if us <= *bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        s.sum_us.fetch_add(us, Ordering::Relaxed);
        s.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (requests received, answers sent) for operation `op` (an index into [`OPS`]).
    pub fn op_counts(&self, op: usize) -> (u64, u64) {
        self.ops.get(op).map_or((0, 0), |s| {
            (
                s.initiated.load(Ordering::Relaxed),
                s.by_code.iter().map(|c| c.load(Ordering::Relaxed)).sum(),
            )
        })
    }

    /// Lookups (binds, searches, compares) received so far.
    pub fn lookups_received(&self) -> u64 {
        LOOKUPS
            .iter()
            .filter_map(|op| self.ops.get(*op))
            .map(|s| s.initiated.load(Ordering::Relaxed))
            .sum()
    }

    /// (connections open now, connections accepted).
    pub fn connections(&self) -> (i64, u64) {
        (
            self.connections_open.load(Ordering::Relaxed),
            self.connections_total.load(Ordering::Relaxed),
        )
    }

    /// Binds answered invalidCredentials (49).
    pub fn failed_binds(&self) -> u64 {
        self.ops
            .first()
            .and_then(|s| s.by_code.get(49))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// A sync search entered its persist stage; the guard counts it out when dropped.
    pub fn sync_consumer(self: &std::sync::Arc<Self>) -> SyncConsumer {
        self.sync_consumers.fetch_add(1, Ordering::Relaxed);
        SyncConsumer(self.clone())
    }

    /// Sync searches persisting now.
    pub fn sync_consumers(&self) -> i64 {
        self.sync_consumers.load(Ordering::Relaxed).max(0)
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter, the store's size and what `extra`
    /// adds (figures kept elsewhere: lockouts, replication).
    pub fn render(&self, store_bytes: u64, extra: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP roster_operations_total LDAP operations answered, by operation and result code.\n# TYPE roster_operations_total counter"
        );
        for (name, s) in OPS.iter().zip(&self.ops) {
            for (code, c) in s.by_code.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let code = if code == OTHER {
                        "other".to_string()
                    } else {
                        code.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "roster_operations_total{{op=\"{name}\",result=\"{code}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP roster_operation_duration_seconds Time from a request's arrival to its answer.\n# TYPE roster_operation_duration_seconds histogram"
        );
        for (name, s) in OPS.iter().zip(&self.ops) {
            let count = s.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            for (bound, b) in BUCKETS_US.iter().zip(&s.buckets) {
                let _ = writeln!(
                    out,
                    "roster_operation_duration_seconds_bucket{{op=\"{name}\",le=\"{}\"}} {}",
                    *bound as f64 / 1e6,
                    b.load(Ordering::Relaxed)
                );
            }
            let _ = writeln!(
                out,
                "roster_operation_duration_seconds_bucket{{op=\"{name}\",le=\"+Inf\"}} {count}\nroster_operation_duration_seconds_sum{{op=\"{name}\"}} {}\nroster_operation_duration_seconds_count{{op=\"{name}\"}} {count}",
                s.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "# HELP roster_connections_open LDAP connections open now.\n# TYPE roster_connections_open gauge\nroster_connections_open {}\n# HELP roster_connections_total LDAP connections accepted.\n# TYPE roster_connections_total counter\nroster_connections_total {}\n# HELP roster_store_bytes Size of the data directory's files.\n# TYPE roster_store_bytes gauge\nroster_store_bytes {store_bytes}",
            self.connections_open.load(Ordering::Relaxed),
            self.connections_total.load(Ordering::Relaxed)
        );
        out.push_str(extra);
        out
    }
}

/// One sync search in its persist stage, counted while it lives.
pub struct SyncConsumer(std::sync::Arc<Metrics>);

impl Drop for SyncConsumer {
    fn drop(&mut self) {
        self.0.sync_consumers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The size of the files under `dir`, walked to a bounded depth.
pub fn disk_usage(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        if depth > 8 {
            return 0;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path(), depth + 1),
                Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 0)
}

/// The longest request head read, and how long a scraper has to send it.
const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dir: std::sync::Arc<crate::directory::Directory>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "metrics: accept failed");
                continue;
            }
        };
        let dir = dir.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &dir).await {
                tracing::debug!(error = %e, "metrics: request failed");
            }
        });
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    dir: &crate::directory::Directory,
) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        io::Result::Ok(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request not sent in time"))??;
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line == b"GET /metrics" {
        let data_dir = dir.settings.data_dir.clone();
        let bytes = tokio::task::spawn_blocking(move || disk_usage(&data_dir))
            .await
            .unwrap_or(0);
        let mut body = dir.metrics.render(bytes, &crate::monitor::prometheus(dir));
        body.push_str(&render_replicas(&dir.replicas.statuses()));
        ("200 OK", body)
    } else {
        (
            "404 Not Found",
            "only /metrics is served here\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_binds_searches_and_compares() {
        assert_eq!(LOOKUPS.map(|i| OPS[i]), ["bind", "search", "compare"]);
        let m = Metrics::default();
        m.initiated(0);
        m.initiated(1);
        m.initiated(2);
        m.initiated(3);
        assert_eq!(m.lookups_received(), 3);
    }

    #[test]
    fn operations_are_counted_by_code_and_time() {
        let m = Metrics::default();
        m.record(1, 0, Some(Duration::from_micros(80)));
        m.record(1, 0, Some(Duration::from_millis(3)));
        m.record(0, 49, Some(Duration::from_millis(1)));
        m.record(0, 4096, Some(Duration::from_millis(1)));
        m.connection_opened();
        let text = m.render(1234, "");
        assert!(
            text.contains("roster_operations_total{op=\"search\",result=\"0\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("roster_operations_total{op=\"bind\",result=\"49\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("roster_operations_total{op=\"bind\",result=\"other\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "roster_operation_duration_seconds_bucket{op=\"search\",le=\"0.0001\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("roster_operation_duration_seconds_bucket{op=\"search\",le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("roster_operation_duration_seconds_count{op=\"search\"} 2"),
            "{text}"
        );
        assert!(text.contains("roster_connections_open 1"), "{text}");
        assert!(text.contains("roster_store_bytes 1234"), "{text}");
        assert!(!text.contains("op=\"add\""), "{text}");
    }
}
