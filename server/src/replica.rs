//! Read replicas: an RFC 4533 (syncrepl) consumer. For each `[[replica]]` table one task
//! connects to the provider (a stock slapd with the syncprov overlay, or another rosterd),
//! binds, and runs a refreshAndPersist search of the naming context with the Sync Request
//! control and the cookie stored last time. The provider sends the changes since that cookie
//! (or everything), then keeps the search open and sends each change as it happens.
//!
//! Applying (`Applier`, on a blocking thread) follows RFC 4533: an entry with the Sync State
//! add or modify is found by its `entryUUID` (the control's UUID) and added, renamed (a moved
//! subtree moves with it) and replaced, keeping the provider's operational attributes; an
//! entry whose parent has not arrived yet waits for it; delete deletes; in the present phase
//! every UUID the provider reports is noted and, at its end, every local entry it did not
//! report is deleted (children first); a `syncIdSet` with refreshDeletes deletes its UUIDs.
//! Writes go straight to the store, without access control or the mail model's checks (the
//! provider made them). The cookie is stored in the store's state values after the change
//! that carried it, so a crash in between replays the change, which is harmless: an add of an
//! entry that exists is a replace.
//!
//! Failures (the provider down, a refused bind, a malformed message) end the connection and
//! the task tries again after a wait that doubles from `retry` to `retry_max`.

mod apply;
#[cfg(test)]
mod tests;
pub mod wire;

use crate::directory::Directory;
use apply::Applier;
use roster_schema::{AttrDesc, Attribute, Dn, Entry, NormDn, Schema};
use roster_storage::{Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use wire::{Response, SyncInfo, SyncState};

/// The largest message accepted from a provider (an entry with its values).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// TCP keepalive on the connection to the provider: the first probe after this much silence,
/// then one every `KEEPALIVE_INTERVAL`, and the connection is dropped after
/// `KEEPALIVE_PROBES` unanswered ones (about two minutes in all).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
#[cfg(target_os = "linux")]
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
#[cfg(target_os = "linux")]
const KEEPALIVE_PROBES: u32 = 4;

/// UUIDs a present phase may report, at most (16 bytes each, and the set's overhead).
const MAX_PRESENT: usize = 20_000_000;

/// Messages applied together on one blocking thread, at most (those already received).
const MAX_BATCH: usize = 256;

/// Entries held back until their parent arrives, at most.
const MAX_PENDING: usize = 100_000;

/// Operational attributes kept as the provider sends them; the other operational attributes
/// (computed ones such as `entryDN`, `hasSubordinates`, `subschemaSubentry`, the provider's
/// own `contextCSN`) are not stored.
const KEPT_OPERATIONAL: [&str; 7] = [
    "entryUUID",
    "entryCSN",
    "createTimestamp",
    "creatorsName",
    "modifiersName",
    "modifyTimestamp",
    "structuralObjectClass",
];

/// Attribute types rosterd computes on every read; stored values would be shown twice.
const COMPUTED: [&str; 3] = [
    "memberOf",
    "msDS-memberOfTransitive",
    "pwdAccountLockedTime",
];

pub use crate::config::{ProviderUrl, ReplicaConfig, Transport};

/// What a replica is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Connecting, TLS, bind, and the search sent.
    Connecting,
    /// Receiving the content (or the changes since the cookie).
    Refreshing,
    /// Up to date, receiving changes as they happen.
    Persisting,
    /// Waiting before the next attempt after a failure.
    Retrying,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Connecting => "connecting",
            ReplicaState::Refreshing => "refreshing",
            ReplicaState::Persisting => "persisting",
            ReplicaState::Retrying => "retrying",
        }
    }
}

/// A replica's state for the operator (metrics, cn=Monitor).
#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    pub name: String,
    pub provider: String,
    pub base: String,
    pub state: ReplicaState,
    /// The `csn=` part of the last cookie stored.
    pub cookie_csn: Option<String>,
    /// When the last change was applied.
    pub last_change: Option<SystemTime>,
    /// Changes applied since the server started (adds, modifies, renames, deletes).
    pub changes_applied: u64,
    /// The last failure, kept after a recovery.
    pub last_error: Option<String>,
}

impl ReplicaStatus {
    /// True while the replica has a working session with its provider.
    pub fn connected(&self) -> bool {
        matches!(
            self.state,
            ReplicaState::Refreshing | ReplicaState::Persisting
        )
    }
}

/// One configured replica: its settings, its naming context and its status.
pub struct Replica {
    pub config: ReplicaConfig,
    pub base: NormDn,
    tls: Option<Arc<rustls::ClientConfig>>,
    status: Mutex<ReplicaStatus>,
}

impl Replica {
    /// The status as it is now.
    pub fn status(&self) -> ReplicaStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReplicaStatus)) {
        match self.status.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Why the replicas could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("replica {name:?}: {message}")]
pub struct SetupError {
    name: String,
    message: String,
}

/// The configured replicas.
#[derive(Default)]
pub struct Replicas {
    list: Vec<Arc<Replica>>,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|r| &r.config.name))
            .finish()
    }
}

impl Replicas {
    /// Checks each base against the naming contexts and reads the CA files.
    pub fn new(
        configs: &[ReplicaConfig],
        schema: &Schema,
        suffixes: &[NormDn],
    ) -> Result<Replicas, SetupError> {
        let mut list = Vec::new();
        for c in configs {
            let err = |message: String| SetupError {
                name: c.name.clone(),
                message,
            };
            let base = Dn::parse(&c.base)
                .and_then(|d| d.normalize(schema))
                .map_err(|e| err(format!("base {:?}: {e}", c.base)))?;
            if !suffixes.contains(&base) {
                return Err(err(format!(
                    "base {:?} must be one of directory.suffixes",
                    c.base
                )));
            }
            let tls = match c.transport {
                Transport::Plain => None,
                Transport::Ldaps | Transport::StartTls => {
                    Some(crate::upstream::client_config(c.ca.as_deref()).map_err(err)?)
                }
            };
            list.push(Arc::new(Replica {
                status: Mutex::new(ReplicaStatus {
                    name: c.name.clone(),
                    provider: c.provider.clone(),
                    base: c.base.clone(),
                    state: ReplicaState::Connecting,
                    cookie_csn: None,
                    last_change: None,
                    changes_applied: 0,
                    last_error: None,
                }),
                config: c.clone(),
                base,
                tls,
            }));
        }
        Ok(Replicas { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn list(&self) -> &[Arc<Replica>] {
        &self.list
    }

    /// The status of every replica.
    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        self.list.iter().map(|r| r.status()).collect()
    }

    /// The replica holding `ndn`, if it lies in a replicated naming context.
    pub fn holding(&self, ndn: &NormDn) -> Option<&Replica> {
        self.list
            .iter()
            .map(Arc::as_ref)
            .find(|r| ndn.is_within(&r.base))
    }
}

/// The referral a client's write to `dn` gets when `dn` lies in a replicated naming context:
/// the replica's `update_referral` with the DN, as slapd's consumers refer writes to their
/// `updateref`. `None` when the write is this server's to make (or `dn` is not a DN, which
/// the operation reports).
pub fn write_referral(dir: &Directory, dns: &[&str]) -> Option<crate::error::OpError> {
    if dir.replicas.is_empty() {
        return None;
    }
    for dn in dns {
        let Ok(ndn) = Dn::parse(dn).and_then(|d| d.normalize(&dir.schema)) else {
            continue;
        };
        if let Some(r) = dir.replicas.holding(&ndn) {
            return Some(crate::error::OpError::Referral {
                url: referral_url(&r.config.update_referral, dn),
            });
        }
    }
    None
}

/// `url` with `dn` as its path (RFC 4516 percent-encoding), unless `url` already has a path.
fn referral_url(url: &str, dn: &str) -> String {
    let after_scheme = url.split_once("://").map_or("", |(_, r)| r);
    if after_scheme.trim_end_matches('/').contains('/') {
        return url.to_string();
    }
    let mut out = url.trim_end_matches('/').to_string();
    out.push('/');
    for b in dn.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~=,+".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The state value holding a replica's cookie: the provider, base and filter it belongs to
/// (a change of any of them makes it worthless), then the cookie.
fn cookie_key(name: &str) -> String {
    format!("replica:{name}:cookie")
}

fn cookie_owner(c: &ReplicaConfig) -> String {
    format!("{}\n{}\n{}\n", c.provider, c.base, c.filter)
}

/// The `csn=` part of a cookie (the first CSN when there are several).
pub fn cookie_csn(cookie: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(cookie).ok()?;
    text.split(',')
        .find_map(|p| p.strip_prefix("csn="))
        .map(|c| c.split(';').next().unwrap_or(c).to_string())
}

/// Why a session with the provider ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?} (connect, TLS and bind)")]
    Timeout(Duration),
    #[error("{0}")]
    Wire(#[from] wire::WireError),
    #[error("the provider closed the connection")]
    Closed,
    #[error("the provider ended the sync search")]
    Ended,
    #[error("{0}")]
    Refused(String),
    #[error("the provider asks for a refresh from scratch (e-syncRefreshRequired)")]
    RefreshRequired,
    #[error("entry store: {0}")]
    Store(#[from] StoreError),
    #[error("shutting down")]
    Stopped,
    #[error("{0}")]
    Internal(String),
}

/// A connection: TCP, possibly with TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the provider with its read buffer.
struct Conn {
    io: Box<dyn Io>,
    buf: BytesMut,
    out: BytesMut,
}

impl Conn {
    fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
        }
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        let out = self.out.split();
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The next message from the provider.
    async fn next(&mut self) -> Result<wire::Message, SessionError> {
        loop {
            if let Some(size) = wire::frame_len(&self.buf, MAX_MESSAGE_BYTES)? {
                if self.buf.len() >= size {
                    let frame = self.buf.split_to(size);
                    return Ok(wire::decode(&frame)?);
                }
                self.buf.reserve(size.saturating_sub(self.buf.len()));
            }
            let n = self.io.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(SessionError::Closed);
            }
        }
    }

    /// The next message if it is already received in full; never waits.
    fn try_next(&mut self) -> Result<Option<wire::Message>, SessionError> {
        match wire::frame_len(&self.buf, MAX_MESSAGE_BYTES)? {
            Some(size) if self.buf.len() >= size => {
                let frame = self.buf.split_to(size);
                Ok(Some(wire::decode(&frame)?))
            }
            _ => Ok(None),
        }
    }

    /// Gives the TCP stream back once the buffers are empty (before StartTLS).
    fn into_inner(self) -> Box<dyn Io> {
        self.io
    }
}

/// Runs the replica `index` of `dir` until `stop` is cancelled.
pub async fn run(dir: Arc<Directory>, index: usize, stop: CancellationToken) {
    let Some(replica) = dir.replicas.list().get(index).cloned() else {
        return;
    };
    let name = replica.config.name.clone();
    let mut wait = replica.config.retry;
    let mut last_logged: Option<String> = None;
    let mut refresh_required_in_a_row = 0u32;
    loop {
        replica.update(|s| s.state = ReplicaState::Connecting);
        let mut reached_persist = false;
        let outcome = session(&dir, &replica, &mut reached_persist, &stop).await;
        let err = match outcome {
            Ok(()) => SessionError::Ended,
            Err(e) => e,
        };
        if matches!(err, SessionError::Stopped) {
            break;
        }
        if reached_persist {
            // A working session ended: the next failure is news again.
            wait = replica.config.retry;
            refresh_required_in_a_row = 0;
            last_logged = None;
        }
        if let SessionError::Store(e) = &err {
            if e.is_fatal() {
                dir.store_failed("replica", e);
            }
        }
        let message = err.to_string();
        if matches!(err, SessionError::RefreshRequired) {
            // The stored cookie is dropped and the next session starts from scratch: at once
            // the first time, after the usual wait if the provider keeps asking.
            let store = dir.store.clone();
            let key = cookie_key(&name);
            let dropped = tokio::task::spawn_blocking(move || store.remove_state(&key)).await;
            if !matches!(dropped, Ok(Ok(()))) {
                tracing::error!(replica = %name, "cannot drop the stored cookie");
            }
            replica.update(|s| s.cookie_csn = None);
            tracing::warn!(replica = %name, "the provider cannot send the changes since the stored cookie: refreshing the whole content");
            refresh_required_in_a_row += 1;
            if refresh_required_in_a_row == 1 {
                continue;
            }
        }
        if last_logged.as_deref() != Some(message.as_str()) {
            tracing::error!(replica = %name, provider = %replica.config.provider, error = %message, retry_in = ?wait, "replica: no session with the provider");
            last_logged = Some(message.clone());
        } else {
            tracing::debug!(replica = %name, error = %message, "replica: still no session with the provider");
        }
        replica.update(|s| {
            s.state = ReplicaState::Retrying;
            s.last_error = Some(message);
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => break,
        }
        wait = wait.saturating_mul(2).min(replica.config.retry_max);
    }
    tracing::debug!(replica = %name, "replica stopped");
}

/// Connects within the timeout: TCP, TLS (LDAPS or StartTLS), bind.
async fn connect(
    c: &ReplicaConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Conn, SessionError> {
    let tcp = tokio::net::TcpStream::connect((c.host.as_str(), c.port)).await?;
    let _ = tcp.set_nodelay(true);
    // A persisting search is quiet while nothing changes: keepalive probes find a provider
    // that vanished without closing the connection (a host down, a dropped route).
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(target_os = "linux")]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
        tracing::debug!(replica = %c.name, error = %e, "cannot turn on TCP keepalive");
    }
    let server_name = || {
        rustls::pki_types::ServerName::try_from(c.host.clone())
            .map_err(|e| SessionError::Refused(format!("host name {:?}: {e}", c.host)))
    };
    let tls_config = || {
        tls.cloned()
            .ok_or_else(|| SessionError::Internal("no TLS configuration".into()))
    };
    let mut conn = match c.transport {
        Transport::Plain => Conn::new(Box::new(tcp)),
        Transport::Ldaps => {
            let connector = tokio_rustls::TlsConnector::from(tls_config()?);
            Conn::new(Box::new(connector.connect(server_name()?, tcp).await?))
        }
        Transport::StartTls => {
            let mut plain = Conn::new(Box::new(tcp));
            wire::start_tls(1, &mut plain.out)?;
            plain.flush().await?;
            let msg = plain.next().await?;
            match msg.response {
                Response::Extended { result, .. } if result.code == 0 => {}
                Response::Extended { result, .. } => {
                    return Err(SessionError::Refused(format!(
                        "StartTLS refused: result {} {}",
                        result.code, result.message
                    )))
                }
                _ => {
                    return Err(SessionError::Refused(
                        "unexpected answer to StartTLS".into(),
                    ))
                }
            }
            if !plain.buf.is_empty() {
                return Err(SessionError::Refused(
                    "the provider sent data after accepting StartTLS".into(),
                ));
            }
            let connector = tokio_rustls::TlsConnector::from(tls_config()?);
            let io = plain.into_inner();
            Conn::new(Box::new(connector.connect(server_name()?, io).await?))
        }
    };
    if let (Some(dn), Some(pw)) = (&c.bind_dn, &c.bind_password) {
        wire::bind(2, dn, pw.expose(), &mut conn.out)?;
        conn.flush().await?;
        match conn.next().await?.response {
            Response::BindResponse(r) if r.code == 0 => {}
            Response::BindResponse(r) => {
                return Err(SessionError::Refused(format!(
                    "bind as {dn} refused: result {} {}",
                    r.code, r.message
                )))
            }
            _ => {
                return Err(SessionError::Refused(
                    "unexpected answer to the bind".into(),
                ))
            }
        }
    }
    Ok(conn)
}

/// One session: connect, search, apply until the connection ends.
async fn session(
    dir: &Arc<Directory>,
    replica: &Arc<Replica>,
    reached_persist: &mut bool,
    stop: &CancellationToken,
) -> Result<(), SessionError> {
    let c = &replica.config;
    let connecting = tokio::time::timeout(c.timeout, connect(c, replica.tls.as_ref()));
    let mut conn = tokio::select! {
        r = connecting => r.map_err(|_| SessionError::Timeout(c.timeout))??,
        _ = stop.cancelled() => return Err(SessionError::Stopped),
    };
    let filter = ldap3_proto::parse_ldap_filter_str(&c.filter)
        .map_err(|e| SessionError::Internal(format!("filter {:?}: {e:?}", c.filter)))?;
    let cookie = {
        let store = dir.store.clone();
        let key = cookie_key(&c.name);
        tokio::task::spawn_blocking(move || store.reader().state(&key))
            .await
            .map_err(|e| SessionError::Internal(e.to_string()))??
    };
    let owner = cookie_owner(c);
    let cookie = cookie.and_then(|v| v.strip_prefix(owner.as_bytes()).map(<[u8]>::to_vec));
    if let Some(ck) = &cookie {
        let csn = cookie_csn(ck);
        replica.update(|s| s.cookie_csn = csn);
    }
    let mut applier = Applier::new(dir.clone(), replica.clone(), cookie.is_none());
    tracing::info!(replica = %c.name, provider = %c.provider, from_cookie = cookie.is_some(), "replica: connected, refreshing");
    wire::sync_search(3, &c.base, filter, cookie, &mut conn.out)?;
    conn.flush().await?;
    replica.update(|s| s.state = ReplicaState::Refreshing);
    loop {
        // Shutdown is noticed between messages, never while one is being applied.
        let msg = tokio::select! {
            m = conn.next() => m?,
            _ = stop.cancelled() => {
                if wire::unbind(4, &mut conn.out).is_ok() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn.flush()).await;
                }
                return Err(SessionError::Stopped);
            }
        };
        // Messages already received go to one blocking thread together.
        let mut batch = vec![msg];
        while batch.len() < MAX_BATCH {
            match conn.try_next()? {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        let mut todo = Vec::with_capacity(batch.len());
        let mut notice = None;
        let mut done = false;
        for msg in batch {
            if msg.msgid == 0 {
                if let Response::Extended { name, result } = &msg.response {
                    if name.as_deref() == Some(wire::NOTICE_OF_DISCONNECTION_OID) {
                        notice = Some(result.message.clone());
                        break;
                    }
                }
                continue;
            }
            if msg.msgid != 3 {
                continue;
            }
            done = matches!(msg.response, Response::Done { .. });
            todo.push(msg.response);
            if done {
                break;
            }
        }
        let (back, result) = tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            for response in todo {
                result = applier.handle(response);
                if result.is_err() {
                    break;
                }
            }
            (applier, result)
        })
        .await
        .map_err(|e| SessionError::Internal(format!("applying a change failed: {e}")))?;
        applier = back;
        result?;
        if let Some(message) = notice {
            return Err(SessionError::Refused(format!(
                "the provider is disconnecting: {message}"
            )));
        }
        if applier.persisting && !*reached_persist {
            *reached_persist = true;
            replica.update(|s| s.state = ReplicaState::Persisting);
            tracing::info!(replica = %c.name, "replica: up to date, receiving changes");
        }
        if done {
            return Ok(());
        }
    }
}
