//! Accepting connections: the plain listener and the LDAPS one (TLS handshake first, with a
//! time limit), a cap on connections served at once, and a clean shutdown that tells every
//! client and waits for every connection to finish.

use crate::directory::Directory;
use crate::session::{self, Conn};
use crate::tls::Tls;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Accepts on `listener`, or never when there is none.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves the plain listener (with StartTLS when `tls` is set) and the LDAPS listener, if any,
/// until `shutdown` completes, then waits for the connections to close.
pub async fn run(
    plain: TcpListener,
    ldaps: Option<TcpListener>,
    dir: Arc<Directory>,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(dir.settings.max_connections));
    let per_address = Arc::new(PerAddress {
        cap: dir.settings.max_connections_per_address,
        open: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot first, so that excess clients wait in the kernel's accept queue.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (accepted, secure) = tokio::select! {
            a = plain.accept() => (a, false),
            a = accept_on(ldaps.as_ref()) => (a, true),
            _ = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(slot) = per_address.claim(peer.ip()) else {
                    // Closed at once: one address may not take the server's connections.
                    warn!(peer = %peer, limit = dir.settings.max_connections_per_address, "connection refused: too many from this address");
                    drop(stream);
                    continue;
                };
                next_id += 1;
                let _ = stream.set_nodelay(true);
                let dir = dir.clone();
                let stop = stop_rx.clone();
                let mut conn = Conn {
                    id: next_id,
                    peer,
                    secure,
                    tls: tls.clone(),
                    certificate_subject: None,
                };
                // The session's futures are boxed where they start: the connection's future
                // (a TLS handshake, the session loop over either stream) was 17 KB, and
                // spawning it copied all of it, twice, for every connection.
                conns.spawn(async move {
                    if !secure {
                        Box::pin(session::serve(stream, dir, conn, stop)).await;
                    } else if let Some(tls) = conn.tls.clone() {
                        Box::pin(async move {
                            let handshake = tls.acceptor().accept(stream);
                            match tokio::time::timeout(session::HANDSHAKE_TIMEOUT, handshake).await
                            {
                                Ok(Ok(stream)) => {
                                    conn.certificate_subject = session::peer_subject(&stream);
                                    session::serve(stream, dir, conn, stop).await
                                }
                                Ok(Err(e)) => {
                                    debug!(peer = %peer, error = %e, "TLS handshake failed")
                                }
                                Err(_) => debug!(peer = %peer, "TLS handshake timed out"),
                            }
                        })
                        .await;
                    }
                    drop(permit);
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off briefly rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        while let Some(done) = conns.try_join_next() {
            if let Err(e) = done {
                error!(error = %e, "connection task failed");
            }
        }
    }
    while conns.try_join_next().is_some() {}
    info!(
        connections = conns.len(),
        "shutting down: closing connections"
    );
    let _ = stop_tx.send(true);
    let drain = async {
        while let Some(done) = conns.join_next().await {
            if let Err(e) = done {
                error!(error = %e, "connection task failed");
            }
        }
    };
    if tokio::time::timeout(CLOSE_GRACE, drain).await.is_err() {
        warn!("connections still open after {CLOSE_GRACE:?}; closing them");
        conns.abort_all();
    }
}

/// Connections open per source address.
struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count, given back when dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    addr: IpAddr,
}

impl PerAddress {
    fn claim(self: &Arc<Self>, addr: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(addr).or_insert(0);
        if self.cap > 0 && *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            addr,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// How long shutdown waits for connections to finish their current operation.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
