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

pub mod wire;

use crate::directory::Directory;
use roster_schema::{AttrDesc, Attribute, Dn, Entry, NormDn, Schema};
use roster_storage::{Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
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

/// How the replica reaches its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` with StartTLS before the bind.
    StartTls,
    /// `ldap://` without TLS (`starttls = false`, loopback providers only).
    Plain,
}

/// One `[[replica]]` table, validated (see `config.rs`).
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub name: String,
    /// The provider's URL as configured.
    pub provider: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// The CAs to trust (PEM); the system's when `None`.
    pub ca: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<crate::config::Secret>,
    /// The naming context copied, as configured.
    pub base: String,
    pub filter: String,
    pub retry: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
    /// Where writes are referred.
    pub update_referral: String,
}

/// A provider URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrl {
    pub host: String,
    pub port: u16,
    /// `ldaps://`.
    pub tls: bool,
}

impl ProviderUrl {
    /// Parses `ldaps://host[:port]` or `ldap://host[:port]` (an optional trailing `/`).
    pub fn parse(url: &str) -> Result<ProviderUrl, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("ldaps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ldap://") {
            (false, rest)
        } else {
            return Err(format!(
                "{url:?} must start with ldaps:// (TLS) or ldap:// (StartTLS)"
            ));
        };
        let hostport = rest.strip_suffix('/').unwrap_or(rest);
        if hostport.starts_with('[') {
            return Err(format!(
                "{url:?}: IPv6 address literals are not supported; use a host name that resolves to the address"
            ));
        }
        if hostport.is_empty() || hostport.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{url:?} must be ldaps://host[:port] or ldap://host[:port], with no path, user or query"
            ));
        }
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{url:?}: no valid port after the host"))?,
            ),
            None => (hostport, if tls { 636 } else { 389 }),
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(ProviderUrl {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// True if the host is this machine: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    }
}

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

/// An entry waiting for its parent.
struct Pending {
    uuid: [u8; 16],
    entry: Entry,
}

/// Applies the provider's messages to the store (runs on blocking threads).
struct Applier {
    dir: Arc<Directory>,
    replica: Arc<Replica>,
    /// The UUIDs reported present during the refresh's present phase.
    present: Option<HashSet<[u8; 16]>>,
    /// Entries waiting for their parent, by the parent's normalized DN.
    pending: HashMap<NormDn, Vec<Pending>>,
    pending_count: usize,
    /// The parent each pending entry waits for, by its UUID.
    waiting: HashMap<[u8; 16], NormDn>,
    /// Deletes of entries that had children during the refresh, tried again at its end.
    deferred_deletes: Vec<[u8; 16]>,
    /// A cookie not stored yet because entries before it are still pending.
    unsaved_cookie: Option<Vec<u8>>,
    /// The refresh is over.
    persisting: bool,
    /// The search went without a cookie: the refresh sends the whole content, so whatever
    /// it does not send is gone, however the provider ends it.
    initial: bool,
    /// Attribute types the local schema lacks, reported once.
    unknown_attrs: HashSet<String>,
    entry_uuid: Option<roster_schema::AttrId>,
    /// The store for the changes: buffered, so that a refresh does not wait for a sync per
    /// entry; the cookie, stored through the store's own durability after them, makes them
    /// durable with it (the journal is synced in commit order).
    writes: Store,
}

/// A normalized DN's depth, for deleting children before parents.
fn depth(ndn: &NormDn) -> usize {
    ndn.rdns.len()
}

fn uuid_string(uuid: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*uuid).hyphenated().to_string()
}

impl Applier {
    fn new(dir: Arc<Directory>, replica: Arc<Replica>, initial: bool) -> Applier {
        let entry_uuid = dir.schema.attr_id("entryUUID");
        let writes = dir.store.buffered();
        Applier {
            writes,
            dir,
            replica,
            present: Some(HashSet::new()),
            initial,
            pending: HashMap::new(),
            pending_count: 0,
            waiting: HashMap::new(),
            deferred_deletes: Vec::new(),
            unsaved_cookie: None,
            persisting: false,
            unknown_attrs: HashSet::new(),
            entry_uuid,
        }
    }

    fn store(&self) -> &Store {
        &self.dir.store
    }

    fn name(&self) -> &str {
        &self.replica.config.name
    }

    /// Applies one response of the sync search.
    fn handle(&mut self, response: Response) -> Result<(), SessionError> {
        match response {
            Response::Entry { dn, attrs, state } => {
                let Some(state) = state else {
                    tracing::warn!(replica = %self.name(), dn = %dn, "entry without a Sync State control ignored");
                    return Ok(());
                };
                match state.state {
                    SyncState::Present => self.note_present(state.uuid)?,
                    SyncState::Add | SyncState::Modify => {
                        self.note_present(state.uuid)?;
                        self.upsert(&dn, attrs, state.uuid)?;
                    }
                    SyncState::Delete => self.delete_uuid(state.uuid)?,
                }
                if let Some(c) = state.cookie {
                    self.cookie(c)?;
                }
            }
            Response::Intermediate(Some(info)) => self.sync_info(info)?,
            Response::Intermediate(None) | Response::Reference => {}
            Response::Done { result, sync_done } => {
                if result.code == 4096 {
                    return Err(SessionError::RefreshRequired);
                }
                if result.code != 0 {
                    return Err(SessionError::Refused(format!(
                        "the sync search ended with result {} {}",
                        result.code, result.message
                    )));
                }
                let done = sync_done.unwrap_or_default();
                if !self.persisting {
                    if !done.refresh_deletes || self.initial {
                        self.end_present_phase()?;
                    }
                    self.end_refresh();
                }
                if let Some(c) = done.cookie {
                    self.cookie(c)?;
                }
            }
            Response::BindResponse(_) | Response::Extended { .. } | Response::Other(_) => {
                return Err(SessionError::Refused(
                    "unexpected message during the sync search".into(),
                ))
            }
        }
        Ok(())
    }

    fn sync_info(&mut self, info: SyncInfo) -> Result<(), SessionError> {
        match info {
            SyncInfo::NewCookie(c) => self.cookie(c)?,
            SyncInfo::RefreshDelete { cookie, done } => {
                // The delete phase ends: nothing to do for entries not mentioned, unless this
                // was the whole content.
                if self.initial {
                    self.end_present_phase()?;
                }
                self.present = None;
                if done {
                    self.end_refresh();
                }
                if let Some(c) = cookie {
                    self.cookie(c)?;
                }
            }
            SyncInfo::RefreshPresent { cookie, done } => {
                self.end_present_phase()?;
                if done {
                    self.end_refresh();
                }
                if let Some(c) = cookie {
                    self.cookie(c)?;
                }
            }
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            } => {
                if refresh_deletes {
                    for u in uuids {
                        self.delete_uuid(u)?;
                    }
                } else {
                    for u in uuids {
                        self.note_present(u)?;
                    }
                }
                if let Some(c) = cookie {
                    self.cookie(c)?;
                }
            }
        }
        Ok(())
    }

    fn note_present(&mut self, uuid: [u8; 16]) -> Result<(), SessionError> {
        if let Some(p) = &mut self.present {
            if p.len() >= MAX_PRESENT && !p.contains(&uuid) {
                return Err(SessionError::Refused(format!(
                    "the provider reported more than {MAX_PRESENT} entries present"
                )));
            }
            p.insert(uuid);
        }
        Ok(())
    }

    /// Stores `cookie` unless entries before it still wait for their parent.
    fn cookie(&mut self, cookie: Vec<u8>) -> Result<(), SessionError> {
        if self.pending_count > 0 {
            self.unsaved_cookie = Some(cookie);
            return Ok(());
        }
        self.unsaved_cookie = None;
        let mut value = cookie_owner(&self.replica.config).into_bytes();
        value.extend_from_slice(&cookie);
        self.store()
            .put_state(&cookie_key(&self.replica.config.name), &value)?;
        let csn = cookie_csn(&cookie);
        self.replica.update(|s| s.cookie_csn = csn);
        Ok(())
    }

    fn applied(&self) {
        self.replica.update(|s| {
            s.changes_applied = s.changes_applied.saturating_add(1);
            s.last_change = Some(SystemTime::now());
        });
    }

    /// The local entry whose `entryUUID` is `uuid`.
    fn find(&self, uuid: &[u8; 16]) -> Result<Option<Entry>, SessionError> {
        let filter = roster_schema::Filter::Equality {
            attr: "entryUUID".into(),
            value: uuid_string(uuid).into_bytes(),
        }
        .compile(&self.dir.schema);
        let reader = self.store().reader();
        // Before the naming context's entry arrives there is nothing to search.
        if reader.lookup(&self.replica.base)?.is_none() {
            return Ok(None);
        }
        let mut found =
            reader.search(&self.replica.base, roster_storage::Scope::Subtree, &filter)?;
        match found.next() {
            Some(r) => Ok(Some(r?.1)),
            None => Ok(None),
        }
    }

    /// The entry as the store keeps it: the attributes the schema knows, without the
    /// computed ones, with `entryUUID` set to the control's.
    fn build(
        &mut self,
        dn: &str,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
        uuid: &[u8; 16],
    ) -> Result<Entry, String> {
        let schema = self.dir.schema.clone();
        let mut parts = Vec::with_capacity(attrs.len());
        for (name, values) in attrs {
            if values.is_empty() {
                continue;
            }
            let Some(desc) = AttrDesc::parse(&schema, &name) else {
                if self.unknown_attrs.len() < 1000
                    && self.unknown_attrs.insert(name.to_ascii_lowercase())
                {
                    tracing::warn!(replica = %self.name(), attribute = %name, "attribute type unknown to the local schema: not copied (add the provider's schema to directory.schema_files)");
                }
                continue;
            };
            let Some(t) = schema.attr(desc.id) else {
                continue;
            };
            let kept_operational = KEPT_OPERATIONAL
                .iter()
                .any(|k| schema.attr_id(k) == Some(desc.id));
            let computed = COMPUTED.iter().any(|k| schema.attr_id(k) == Some(desc.id));
            let user = matches!(t.usage, roster_schema::Usage::UserApplications);
            if computed || !(user || kept_operational) {
                continue;
            }
            parts.push((name, values));
        }
        let mut entry = Entry::from_parts(&schema, dn, parts).map_err(|e| e.to_string())?;
        if let Some(id) = self.entry_uuid {
            entry.attrs.retain(|a| a.desc.id != id);
            entry.attrs.push(Attribute {
                desc: AttrDesc::plain(id),
                values: vec![uuid_string(uuid).into_bytes()],
            });
        }
        Ok(entry)
    }

    /// An add or modify: add, rename and replace as needed.
    fn upsert(
        &mut self,
        dn: &str,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
        uuid: [u8; 16],
    ) -> Result<(), SessionError> {
        let entry = match self.build(dn, attrs, &uuid) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %dn, error = %e, "entry from the provider not copied");
                return Ok(());
            }
        };
        if !entry.ndn.is_within(&self.replica.base) {
            tracing::error!(replica = %self.name(), dn = %dn, "entry outside the replicated naming context ignored");
            return Ok(());
        }
        // A newer version replaces one still waiting.
        self.forget_pending(&uuid);
        self.place(Pending { uuid, entry })?;
        Ok(())
    }

    /// Drops a pending entry with `uuid`, if any.
    fn forget_pending(&mut self, uuid: &[u8; 16]) {
        let Some(parent) = self.waiting.remove(uuid) else {
            return;
        };
        if let Some(list) = self.pending.get_mut(&parent) {
            let before = list.len();
            list.retain(|p| &p.uuid != uuid);
            let removed = before - list.len();
            self.pending_count = self.pending_count.saturating_sub(removed);
            if list.is_empty() {
                self.pending.remove(&parent);
            }
        }
    }

    /// Writes `p`, or holds it back until its parent is there; then writes the entries that
    /// waited for it.
    fn place(&mut self, p: Pending) -> Result<(), SessionError> {
        let mut queue = vec![p];
        while let Some(p) = queue.pop() {
            let ndn = p.entry.ndn.clone();
            if self.write(p)? {
                if let Some(children) = self.pending.remove(&ndn) {
                    self.pending_count = self.pending_count.saturating_sub(children.len());
                    for c in &children {
                        self.waiting.remove(&c.uuid);
                    }
                    queue.extend(children);
                }
            }
        }
        if self.pending_count == 0 {
            if let Some(c) = self.unsaved_cookie.take() {
                self.cookie(c)?;
            }
        }
        Ok(())
    }

    /// Writes one entry; false if it waits for its parent.
    fn write(&mut self, p: Pending) -> Result<bool, SessionError> {
        let Pending { uuid, entry } = p;
        let store = self.writes.clone();
        let ndn = entry.ndn.clone();
        let is_base = ndn == self.replica.base;
        let parent = ndn.parent().unwrap_or_default();
        let reader = store.reader();
        let parent_there = is_base || reader.lookup(&parent)?.is_some();
        if !parent_there {
            if self.persisting {
                // Changes after the refresh come in commit order: a parent that is not here
                // now will not come (it does not match the filter, or it failed to apply).
                tracing::error!(replica = %self.name(), dn = %entry.dn, "the parent of this entry is not in the replica: not copied (does the replica's filter leave out its parent?)");
                return Ok(false);
            }
            if self.pending_count >= MAX_PENDING {
                tracing::error!(replica = %self.name(), dn = %entry.dn, "too many entries wait for their parent: entry dropped");
                return Ok(false);
            }
            tracing::debug!(replica = %self.name(), dn = %entry.dn, "entry waits for its parent");
            self.waiting.insert(uuid, parent.clone());
            self.pending
                .entry(parent)
                .or_default()
                .push(Pending { uuid, entry });
            self.pending_count += 1;
            return Ok(false);
        }
        let local = self.find(&uuid)?;
        let result = match local {
            Some(old) if old.ndn == ndn => store.replace(&ndn, entry),
            Some(old) => {
                // Moved or renamed on the provider: the subtree moves with it.
                if let Some((_, other)) = reader.entry_by_dn(&ndn)? {
                    self.evict(&other)?;
                }
                let new_parent = (old.ndn.parent() != ndn.parent()).then_some(parent);
                store
                    .rename(&old.ndn, entry, new_parent.as_ref(), &|_| {})
                    .map(|_| ())
            }
            None => match reader.entry_by_dn(&ndn)? {
                // Another entry holds the DN (deleted on the provider, re-added with a new
                // UUID, and the delete not seen yet; or a replay): it becomes this one.
                Some(_) => store.replace(&ndn, entry),
                None if is_base => store.add_root(entry).map(|_| ()),
                None => store.add(entry).map(|_| ()),
            },
        };
        match result {
            Ok(()) => {
                self.applied();
                Ok(true)
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %ndn, error = %e, "change from the provider not applied");
                Ok(true)
            }
        }
    }

    /// Removes `other`, which holds a DN the provider gives to another entry, when it is a
    /// leaf; the provider will send it again under its own DN if it still exists.
    fn evict(&mut self, other: &Entry) -> Result<(), SessionError> {
        match self.writes.delete(&other.ndn, &|_| {}) {
            Ok(_) => {
                self.applied();
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %other.ndn, error = %e, "an entry holds the DN another entry moved to and cannot be removed");
                Ok(())
            }
        }
    }

    /// A delete by UUID: nothing when the entry is not here.
    fn delete_uuid(&mut self, uuid: [u8; 16]) -> Result<(), SessionError> {
        self.forget_pending(&uuid);
        let Some(entry) = self.find(&uuid)? else {
            return Ok(());
        };
        match self.writes.delete(&entry.ndn, &|_| {}) {
            Ok(_) => {
                self.applied();
                Ok(())
            }
            Err(StoreError::NotAllowedOnNonLeaf { .. }) if !self.persisting => {
                // Its children may still be deleted later in the refresh.
                if self.deferred_deletes.len() < MAX_PENDING {
                    self.deferred_deletes.push(uuid);
                } else {
                    tracing::error!(replica = %self.name(), dn = %entry.ndn, "too many deletes wait for their entries' children: not applied");
                }
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %entry.ndn, error = %e, "delete from the provider not applied");
                Ok(())
            }
        }
    }

    /// The end of the present phase: every local entry the provider did not report is gone
    /// there, and is deleted here, children first.
    fn end_present_phase(&mut self) -> Result<(), SessionError> {
        let Some(present) = self.present.take() else {
            return Ok(());
        };
        let everything = roster_schema::Filter::Present {
            attr: "objectClass".into(),
        }
        .compile(&self.dir.schema);
        let mut gone: Vec<NormDn> = Vec::new();
        {
            let reader = self.store().reader();
            let searched = if reader.lookup(&self.replica.base)?.is_some() {
                Some(reader.search(
                    &self.replica.base,
                    roster_storage::Scope::Subtree,
                    &everything,
                )?)
            } else {
                None
            };
            for found in searched.into_iter().flatten() {
                let (_, e) = found?;
                let reported = self.entry_uuid.is_some_and(|id| {
                    e.values_of(id).any(|v| {
                        uuid::Uuid::try_parse_ascii(v).is_ok_and(|u| present.contains(u.as_bytes()))
                    })
                });
                if !reported {
                    gone.push(e.ndn);
                }
            }
        }
        gone.sort_by_key(|n| std::cmp::Reverse(depth(n)));
        if !gone.is_empty() {
            tracing::info!(replica = %self.name(), entries = gone.len(), "deleting entries the provider no longer has");
        }
        for ndn in gone {
            match self.writes.delete(&ndn, &|_| {}) {
                Ok(_) => self.applied(),
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(replica = %self.name(), dn = %ndn, error = %e, "entry the provider no longer has not deleted")
                }
            }
        }
        Ok(())
    }

    /// The end of the refresh: deferred deletes, and entries still without a parent.
    fn end_refresh(&mut self) {
        self.persisting = true;
        self.present = None;
        let mut deferred = std::mem::take(&mut self.deferred_deletes);
        // Children before parents: deepest first.
        let mut with_depth: Vec<([u8; 16], usize)> = Vec::new();
        for u in deferred.drain(..) {
            if let Ok(Some(e)) = self.find(&u) {
                with_depth.push((u, depth(&e.ndn)));
            }
        }
        with_depth.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        for (u, _) in with_depth {
            if let Err(e) = self.delete_uuid(u) {
                tracing::error!(replica = %self.name(), error = %e, "delete from the provider not applied");
            }
        }
        if self.pending_count > 0 {
            let name = self.replica.config.name.clone();
            for (parent, list) in std::mem::take(&mut self.pending) {
                for p in list {
                    tracing::error!(replica = %name, dn = %p.entry.dn, parent = %parent, "the refresh ended and this entry's parent never arrived: not copied");
                }
            }
            self.pending_count = 0;
            self.waiting.clear();
            if let Some(c) = self.unsaved_cookie.take() {
                if let Err(e) = self.cookie(c) {
                    tracing::error!(replica = %self.name(), error = %e, "cookie not stored");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// A directory replicating dc=example,dc=com (from a provider that is never contacted),
    /// and an applier for its replica.
    fn replica_dir(data: &std::path::Path) -> (Arc<Directory>, Applier) {
        let text = "[directory]\nsuffixes = [\"dc=example,dc=com\", \"dc=local,dc=org\"]\n[storage]\ndurability = \"buffer\"\n\
                    [[replica]]\nname = \"t\"\nprovider = \"ldap://127.0.0.1:9\"\nstarttls = false\nbase = \"dc=example,dc=com\"\n";
        let file: crate::config::ConfigFile = toml::from_str(text).unwrap();
        let overrides = crate::config::Overrides {
            data_dir: Some(data.to_path_buf()),
            ..Default::default()
        };
        let settings =
            crate::config::Settings::from_file(file, std::path::Path::new(""), &overrides).unwrap();
        let dir = Arc::new(Directory::open(settings).unwrap());
        let replica = dir.replicas.list().first().unwrap().clone();
        let applier = Applier::new(dir.clone(), replica, false);
        (dir, applier)
    }

    fn entry(dn: &str, n: u8, state: SyncState, attrs: &[(&str, &str)]) -> Response {
        Response::Entry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.as_bytes().to_vec()]))
                .collect(),
            state: Some(wire::StateControl {
                state,
                uuid: [n; 16],
                cookie: None,
            }),
        }
    }

    fn ou(dn: &str, n: u8) -> Response {
        let name = dn
            .split(',')
            .next()
            .and_then(|r| r.strip_prefix("ou="))
            .unwrap();
        entry(
            dn,
            n,
            SyncState::Add,
            &[("objectClass", "organizationalUnit"), ("ou", name)],
        )
    }

    fn suffix() -> Response {
        entry(
            "dc=example,dc=com",
            1,
            SyncState::Add,
            &[
                ("objectClass", "dcObject"),
                ("objectClass", "organization"),
                ("dc", "example"),
                ("o", "Example"),
                ("entryCSN", "20260101000000.000000Z#000000#000#000000"),
                ("entryDN", "dc=example,dc=com"),
                ("hasSubordinates", "TRUE"),
                ("contextCSN", "20260101000000.000000Z#000000#000#000000"),
            ],
        )
    }

    /// The DNs under the suffix, normalized and sorted.
    fn dns(dir: &Directory) -> Vec<String> {
        let all = roster_schema::Filter::Present {
            attr: "objectClass".into(),
        }
        .compile(&dir.schema);
        let base = Dn::parse("dc=example,dc=com")
            .unwrap()
            .normalize(&dir.schema)
            .unwrap();
        let reader = dir.store.reader();
        let mut out: Vec<String> = reader
            .search(&base, roster_storage::Scope::Subtree, &all)
            .unwrap()
            .map(|r| r.unwrap().1.ndn.to_string())
            .collect();
        out.sort();
        out
    }

    fn stored_cookie(dir: &Directory) -> Option<Vec<u8>> {
        dir.store
            .reader()
            .state(&cookie_key("t"))
            .unwrap()
            .map(|v| {
                v.get(cookie_owner(&dir.replicas.list()[0].config).len()..)
                    .unwrap()
                    .to_vec()
            })
    }

    #[test]
    fn children_wait_for_their_parent_and_the_cookie_waits_for_them() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, mut a) = replica_dir(tmp.path());
        a.handle(suffix()).unwrap();
        // The suffix keeps the provider's entryCSN and entryUUID; computed and foreign
        // operational attributes are not stored.
        let base = Dn::parse("dc=example,dc=com")
            .unwrap()
            .normalize(&dir.schema)
            .unwrap();
        let (_, e) = dir.store.reader().entry_by_dn(&base).unwrap().unwrap();
        let names: Vec<&str> = e
            .attrs
            .iter()
            .map(|x| dir.schema.attr_name(x.desc.id))
            .collect();
        assert!(
            names.contains(&"entryCSN") && names.contains(&"entryUUID"),
            "{names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.eq_ignore_ascii_case("entryDN")
                    || n.eq_ignore_ascii_case("hasSubordinates")),
            "{names:?}"
        );
        assert_eq!(
            e.values_of(dir.schema.attr_id("entryCSN").unwrap())
                .next()
                .map(Vec::as_slice),
            Some(&b"20260101000000.000000Z#000000#000#000000"[..])
        );
        // A grandchild, then its parent, before the parent's parent.
        let Response::Entry { dn, attrs, .. } = ou("ou=c,ou=b,ou=a,dc=example,dc=com", 4) else {
            unreachable!()
        };
        a.handle(Response::Entry {
            dn,
            attrs,
            state: Some(wire::StateControl {
                state: SyncState::Add,
                uuid: [4; 16],
                cookie: Some(b"rid=000,csn=1".to_vec()),
            }),
        })
        .unwrap();
        a.handle(ou("ou=b,ou=a,dc=example,dc=com", 3)).unwrap();
        assert_eq!(dns(&dir), vec!["dc=example,dc=com"]);
        assert_eq!(
            stored_cookie(&dir),
            None,
            "a cookie waits for the entries before it"
        );
        a.handle(ou("ou=a,dc=example,dc=com", 2)).unwrap();
        assert_eq!(
            dns(&dir),
            vec![
                "dc=example,dc=com",
                "ou=a,dc=example,dc=com",
                "ou=b,ou=a,dc=example,dc=com",
                "ou=c,ou=b,ou=a,dc=example,dc=com"
            ]
        );
        assert_eq!(stored_cookie(&dir).as_deref(), Some(&b"rid=000,csn=1"[..]));
        assert_eq!(dir.replicas.statuses()[0].cookie_csn.as_deref(), Some("1"));
    }

    #[test]
    fn renames_move_subtrees_replays_replace_and_the_present_phase_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, mut a) = replica_dir(tmp.path());
        for r in [
            suffix(),
            ou("ou=a,dc=example,dc=com", 2),
            ou("ou=x,ou=a,dc=example,dc=com", 3),
            ou("ou=b,dc=example,dc=com", 4),
            ou("ou=gone,dc=example,dc=com", 5),
            ou("ou=child,ou=gone,dc=example,dc=com", 6),
        ] {
            a.handle(r).unwrap();
        }
        a.handle(Response::Intermediate(Some(SyncInfo::RefreshPresent {
            cookie: Some(b"csn=1".to_vec()),
            done: true,
        })))
        .unwrap();
        assert_eq!(dns(&dir).len(), 6);
        // The next session, from the cookie.
        let replica = dir.replicas.list().first().unwrap().clone();
        let mut a = Applier::new(dir.clone(), replica, false);
        // A replay of an add is a replace; a move takes the subtree along.
        a.handle(entry(
            "ou=a,dc=example,dc=com",
            2,
            SyncState::Add,
            &[
                ("objectClass", "organizationalUnit"),
                ("ou", "a"),
                ("description", "again"),
            ],
        ))
        .unwrap();
        assert_eq!(dns(&dir).len(), 6);
        let a_dn = Dn::parse("ou=a,dc=example,dc=com")
            .unwrap()
            .normalize(&dir.schema)
            .unwrap();
        let (_, again) = dir.store.reader().entry_by_dn(&a_dn).unwrap().unwrap();
        let description = dir.schema.attr_id("description").unwrap();
        assert_eq!(
            again.values_of(description).next().map(Vec::as_slice),
            Some(&b"again"[..])
        );
        a.handle(ou("ou=a2,ou=b,dc=example,dc=com", 2)).unwrap();
        // The present phase: 5 and 6 are not reported, and go, child first.
        for n in [1, 2, 3, 4] {
            a.handle(entry("", n, SyncState::Present, &[])).unwrap();
        }
        a.handle(Response::Intermediate(Some(SyncInfo::RefreshPresent {
            cookie: Some(b"csn=2".to_vec()),
            done: true,
        })))
        .unwrap();
        assert_eq!(
            dns(&dir),
            vec![
                "dc=example,dc=com",
                "ou=a2,ou=b,dc=example,dc=com",
                "ou=b,dc=example,dc=com",
                "ou=x,ou=a2,ou=b,dc=example,dc=com"
            ]
        );
        assert!(a.persisting);
        // After the refresh, an entry whose parent is missing is not held back: its parent
        // will not come (changes arrive in commit order).
        a.handle(ou("ou=orphan,ou=nowhere,dc=example,dc=com", 7))
            .unwrap();
        assert_eq!(a.pending_count, 0);
        assert_eq!(dns(&dir).len(), 4);
        // Persisted changes: a delete by UUID, an unknown UUID's delete does nothing.
        a.handle(entry(
            "ou=x,ou=a2,ou=b,dc=example,dc=com",
            3,
            SyncState::Delete,
            &[],
        ))
        .unwrap();
        a.handle(entry("", 99, SyncState::Delete, &[])).unwrap();
        assert_eq!(dns(&dir).len(), 3);
        // The provider cannot go on from the cookie.
        let r = a.handle(Response::Done {
            result: wire::LdapResult {
                code: 4096,
                ..Default::default()
            },
            sync_done: None,
        });
        assert!(matches!(r, Err(SessionError::RefreshRequired)), "{r:?}");
    }

    #[test]
    fn writes_in_a_replicated_context_are_referred() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = replica_dir(tmp.path());
        let e = write_referral(&dir, &["uid=a,ou=people,dc=example,dc=com"]).unwrap();
        let res = crate::error::ldap_result(&e);
        assert_eq!(res.code, ldap3_proto::proto::LdapResultCode::Referral);
        assert_eq!(
            res.referral,
            vec!["ldap://127.0.0.1:9/uid=a,ou=people,dc=example,dc=com".to_string()]
        );
        assert!(write_referral(&dir, &["uid=a,dc=local,dc=org"]).is_none());
        assert!(write_referral(&dir, &["not a dn"]).is_none());
        // A move from a local context into the replicated one is referred too.
        assert!(write_referral(&dir, &["uid=a,dc=local,dc=org", "dc=example,dc=com"]).is_some());
    }

    #[test]
    fn provider_urls() {
        let u = ProviderUrl::parse("ldap://127.0.0.1:3890").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 3890, false));
        assert!(u.is_loopback());
        let u = ProviderUrl::parse("ldaps://ldap.example.com/").unwrap();
        assert_eq!((u.port, u.tls, u.is_loopback()), (636, true, false));
        assert!(ProviderUrl::parse("ldapi:///run/slapd").is_err());
        assert!(ProviderUrl::parse("ldap://host:0").is_err());
        assert!(ProviderUrl::parse("ldap://host/dc=x").is_err());
        assert!(ProviderUrl::parse("ldap://").is_err());
    }

    #[test]
    fn cookie_csns() {
        assert_eq!(
            cookie_csn(b"rid=000,csn=20261206021419.123456Z#000000#000#000000").as_deref(),
            Some("20261206021419.123456Z#000000#000#000000")
        );
        assert_eq!(cookie_csn(b"rid=001,sid=002,csn=a;b").as_deref(), Some("a"));
        assert_eq!(cookie_csn(b"rid=000"), None);
        assert_eq!(cookie_csn(&[0xff, 0xfe]), None);
    }

    #[test]
    fn referrals_name_the_entry() {
        assert_eq!(
            referral_url("ldap://provider:389", "uid=a b,dc=example,dc=com"),
            "ldap://provider:389/uid=a%20b,dc=example,dc=com"
        );
        assert_eq!(referral_url("ldaps://p/", "cn=x"), "ldaps://p/cn=x");
        assert_eq!(
            referral_url("ldap://p/dc=other", "cn=x"),
            "ldap://p/dc=other"
        );
    }
}
