//! The control socket: a Unix socket in the data directory (`control.sock`, mode 0600) through
//! which `rosterd dump` asks a running server for a consistent LDIF export. The store is held
//! open (and locked) by the server, so an export while it runs has to come from the server
//! itself: it writes every entry from one snapshot, so the dump is one point in time even while
//! clients write.
//!
//! Protocol: the client sends one command line (`dump`); the server answers with the LDIF and a
//! last comment line, `# dump complete: N entries` or `# dump failed: REASON`, so that the client
//! can tell a whole dump from a cut one.

use crate::directory::Directory;
use crate::offline;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The socket's name inside the data directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The longest command line a client may send.
const MAX_COMMAND: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the server ended the dump early: {0}")]
    Failed(String),
    #[error("the server closed the connection before the dump was complete")]
    Incomplete,
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the control socket and serves it until `stop` is cancelled; the socket file is
/// removed then. A socket that cannot be bound (a path too long for a Unix socket, say) is
/// logged and the server runs without it.
pub fn start(dir: &Arc<Directory>, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let path = socket_path(&dir.settings.data_dir);
    // The store's lock is held, so no other server uses this data directory: a socket file
    // left here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "control socket not available; `rosterd dump` needs the server stopped");
            return None;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict the control socket");
    }
    let weak = Arc::downgrade(dir);
    Some(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.cancelled() => break,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // The server may be closing: then the request is dropped with the connection.
            let Some(dir) = weak.upgrade() else { break };
            let stream = match stream.into_std().and_then(|s| {
                s.set_nonblocking(false)?;
                Ok(s)
            }) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control connection unusable");
                    continue;
                }
            };
            let tracker = dir.background.clone();
            tracker.spawn_blocking(move || handle(&dir, stream));
        }
        let _ = std::fs::remove_file(&path);
    }))
}

/// Serves one control connection.
fn handle(dir: &Directory, stream: std::os::unix::net::UnixStream) {
    let mut command = Vec::new();
    let mut reader = BufReader::new(&stream).take(MAX_COMMAND as u64);
    if reader.read_until(b'\n', &mut command).is_err() {
        return;
    }
    let mut out = std::io::BufWriter::new(&stream);
    match String::from_utf8_lossy(&command).trim() {
        "dump" => {
            let started = std::time::Instant::now();
            let trailer = match offline::dump(dir, &mut out) {
                Ok(n) => {
                    tracing::info!(
                        entries = n,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "online dump written"
                    );
                    format!("# dump complete: {n} entries\n")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "online dump failed");
                    format!("# dump failed: {e}\n")
                }
            };
            let _ = out.write_all(trailer.as_bytes());
        }
        other => {
            let _ = writeln!(out, "# dump failed: unknown command {other:?}");
        }
    }
    let _ = out.flush();
}

/// Asks the server listening on `socket` for a dump and writes it to `out` without the
/// trailer; the number of entries.
pub fn request_dump(socket: &Path, out: &mut dyn Write) -> Result<u64, ControlError> {
    let io = |source| ControlError::Io {
        path: socket.display().to_string(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(io)?;
    stream.write_all(b"dump\n").map_err(io)?;
    let mut reader = BufReader::new(stream);
    // Each line is written once the next one has arrived, so the last (the trailer) is kept.
    let mut held: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        out.write_all(&held).map_err(io)?;
        std::mem::swap(&mut held, &mut line);
    }
    out.flush().map_err(io)?;
    let last = String::from_utf8_lossy(&held);
    if let Some(n) = last
        .strip_prefix("# dump complete: ")
        .and_then(|r| r.trim_end().strip_suffix(" entries"))
        .and_then(|n| n.parse().ok())
    {
        return Ok(n);
    }
    match last.strip_prefix("# dump failed: ") {
        Some(reason) => Err(ControlError::Failed(reason.trim_end().to_string())),
        None => Err(ControlError::Incomplete),
    }
}
