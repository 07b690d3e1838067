//! One client connection: reads LDAP messages, runs operations, writes responses. Generic over
//! the byte stream so that TLS wraps it without touching the operations. A failure in one
//! connection is logged here and never reaches the accept loop or another connection.
//!
//! What one client can cost is bounded: a message size (smaller before a successful bind), a
//! number of outstanding operations, a share of the blocking threads searches run on, and a
//! write timeout for clients that stop reading.

use crate::audit;
use crate::codec::{Codec, EntryMsg};
use crate::directory::Directory;
use crate::error::{ldap_result, OpError};
use crate::identity::Identity;
use crate::ops;
use crate::ops::search::{PageRequest, PagedSearches, ResultEntry, Stopped};
use crate::tls::Tls;
use futures::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp, LdapResult,
    LdapResultCode, LdapSearchRequest, SyncRequestMode,
};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;

mod sync;
mod writes;
use tracing::{debug, info, Instrument};

/// The OID of the unsolicited Notice of Disconnection (RFC 4511 section 4.4.1).
const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";

/// Messages queued by running operations for the connection's writer.
#[allow(clippy::large_enum_variant)] // Nearly every queued item is a message; boxing would add an allocation each.
enum Outgoing {
    Msg(LdapMsg),
    /// A search result entry encoded from the store's shared entry.
    Entry(EntryMsg),
    /// The operation with this message id has sent its last response.
    Finished(i32),
}

/// Responses waiting in a connection's queue before a slow reader slows the search down.
const OUTGOING_QUEUE: usize = 256;

/// Most entries a search run in place may return before it moves to a blocking thread.
const IN_PLACE_MAX_ENTRIES: usize = 16;

/// Operations one connection may have running at once; more are answered busy, as slapd
/// does past its `conn_max_pending`.
const MAX_OUTSTANDING: usize = 64;

/// How long a client may leave a response unread before the connection is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the session does after a request.
enum Next {
    Continue,
    Close,
    /// StartTLS was accepted: the TLS handshake comes next on this stream.
    StartTls,
}

/// How a connection's message loop ended.
enum Ended {
    Closed,
    StartTls,
}

/// How long a client has to complete a TLS handshake (StartTLS or LDAPS).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept loop knows about a connection.
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    /// TLS is in use from the first byte (LDAPS).
    pub secure: bool,
    /// The server's TLS configuration, for StartTLS.
    pub tls: Option<Arc<Tls>>,
    /// The subject of the verified client certificate of an LDAPS connection.
    pub certificate_subject: Option<String>,
}

/// The state of one connection between requests.
struct Session {
    dir: Arc<Directory>,
    who: Identity,
    /// Abandon flags of the operations still running, by message id.
    running: HashMap<i32, Arc<AtomicBool>>,
    /// Where paged searches of this connection stopped, by cookie.
    paged: Arc<PagedSearches>,
    /// The queue running searches write their responses to.
    tx: mpsc::Sender<Outgoing>,
    peer: SocketAddr,
    /// TLS protects the connection (LDAPS, or after StartTLS).
    secure: bool,
    tls: Option<Arc<Tls>>,
    certificate_subject: Option<String>,
    /// Set while the operation being handled waits for the server's own work (a write thread,
    /// the journal sync, a password slot) rather than for the client: that time does not
    /// count toward [`WRITE_TIMEOUT`] ([`unless_stalled`]).
    server_work: Arc<AtomicBool>,
}

/// Marks a session's handler as waiting for the server's own work until dropped.
struct ServerWork<'a>(&'a AtomicBool);

impl Drop for ServerWork<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Serves one connection until the client unbinds or disconnects, or the server shuts down.
pub async fn serve<S>(
    stream: S,
    dir: Arc<Directory>,
    conn: Conn,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::info_span!("conn", id = conn.id, peer = %conn.peer);
    async move {
        debug!(tls = conn.secure, "connection opened");
        dir.metrics.connection_opened();
        let (tx, mut rx) = mpsc::channel(OUTGOING_QUEUE);
        let mut session = Session {
            dir,
            who: Identity::Anonymous,
            running: HashMap::new(),
            paged: Arc::default(),
            tx,
            peer: conn.peer,
            secure: conn.secure,
            tls: conn.tls,
            certificate_subject: conn.certificate_subject,
            server_work: Arc::default(),
        };
        let mut framed = Framed::new(stream, codec_for(&session.dir, &Identity::Anonymous));
        let ended = drive(&mut framed, &mut session, &mut rx, &mut shutdown).await;
        if let Ended::StartTls = ended {
            // Boxed: the TLS stream and its loop would make every connection's future
            // larger, StartTLS or not.
            Box::pin(start_tls(framed, &mut session, &mut rx, &mut shutdown)).await;
        }
        session.abandon_all();
        session.dir.metrics.connection_closed();
        debug!("connection closed");
    }
    .instrument(span)
    .await
}

/// The session after an accepted StartTLS: the handshake, then the message loop over TLS.
async fn start_tls<S>(
    framed: Framed<S, Codec>,
    session: &mut Session,
    rx: &mut mpsc::Receiver<Outgoing>,
    shutdown: &mut watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(stream) = upgrade(framed, session).await {
        session.secure = true;
        session.certificate_subject = peer_subject(&stream);
        debug!("TLS started");
        let codec = codec_for(&session.dir, &session.who);
        let mut framed = Framed::new(stream, codec);
        // A second StartTLS is refused (the session is secure), so this ends closed.
        drive(&mut framed, session, rx, shutdown).await;
    }
}

/// The subject of the client certificate of a TLS stream, if the client presented one (it
/// was verified against the configured client CA during the handshake).
pub fn peer_subject<S>(stream: &tokio_rustls::server::TlsStream<S>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|c| crate::tls::client_subject(c.as_ref()))
}

/// The TLS handshake after an accepted StartTLS. `None` (the connection closes) when the client
/// sent more before the handshake, or the handshake fails or times out.
async fn upgrade<S>(
    framed: Framed<S, Codec>,
    session: &Session,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let parts = framed.into_parts();
    if !parts.read_buf.is_empty() {
        info!("client sent data between the StartTLS response and the handshake; closing");
        return None;
    }
    let acceptor = session.tls.as_ref()?.acceptor();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(parts.io)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            info!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            info!("TLS handshake timed out");
            None
        }
    }
}

/// The message loop of a connection over one stream.
///
/// No timer is created per message: the idle timer is one per connection, re-armed when it
/// fires (from the time of the last message, [`idle_check`]) or when a bind changes the
/// timeout, and the write timeout starts only once a write has to wait for the client
/// ([`unless_stalled`]). A timer per message cost a few
/// percent of the CPU of a mail lookup (registering and cancelling it in tokio's timer wheel,
/// and the runtime handle each timer holds, shared by every worker thread).
async fn drive<S>(
    framed: &mut Framed<S, Codec>,
    session: &mut Session,
    rx: &mut mpsc::Receiver<Outgoing>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle_for = |session: &Session| {
        if matches!(session.who, Identity::Anonymous) {
            session.dir.settings.idle_timeout_unbound
        } else {
            session.dir.settings.idle_timeout
        }
    };
    let mut last_active = tokio::time::Instant::now();
    // The idle timeout the timer was armed with; it changes with a bind.
    let mut armed = idle_for(session);
    let idle_sleep = tokio::time::sleep_until(last_active + armed.unwrap_or(NO_IDLE_TIMEOUT));
    tokio::pin!(idle_sleep);
    let server_work = session.server_work.clone();
    loop {
        tokio::select! {
            biased;
            out = rx.recv() => {
                let Some(out) = out else { return Ended::Closed };
                if let Err(ended) = answered(unless_stalled(&server_work, write_queued(framed, rx, session, out)).await) {
                    return ended;
                }
                last_active = tokio::time::Instant::now();
            }
            inbound = framed.next() => match inbound {
                None => {
                    debug!("client closed the connection");
                    return Ended::Closed;
                }
                Some(Err(e)) => {
                    if is_disconnect(&e) {
                        debug!(error = %e, "connection lost");
                    } else {
                        info!(error = %e, "undecodable message; closing the connection");
                        let notice = notice(LdapResultCode::ProtocolError, "malformed or oversized LDAP message");
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, framed.send(notice)).await;
                    }
                    return Ended::Closed;
                }
                Some(Ok(msg)) => {
                    match answered(unless_stalled(&server_work, session.handle(msg, framed)).await) {
                        Ok(Next::Continue) => {}
                        Ok(Next::Close) => return Ended::Closed,
                        Ok(Next::StartTls) => return Ended::StartTls,
                        Err(ended) => return ended,
                    }
                    last_active = tokio::time::Instant::now();
                    let now_for = idle_for(session);
                    if now_for != armed {
                        // A bind changed the timeout: re-arm from the last message.
                        armed = now_for;
                        idle_sleep.as_mut().reset(last_active + armed.unwrap_or(NO_IDLE_TIMEOUT));
                    }
                }
            },
            _ = shutdown.changed() => {
                let notice = notice(LdapResultCode::Unavailable, "the server is shutting down");
                let _ = tokio::time::timeout(Duration::from_secs(1), framed.send(notice)).await;
                return Ended::Closed;
            }
            _ = &mut idle_sleep, if session.running.is_empty() => {
                match idle_check(armed, last_active, tokio::time::Instant::now()) {
                    None => {
                        debug!("idle timeout");
                        let _ = tokio::time::timeout(Duration::from_secs(1), framed.send(notice(LdapResultCode::Unavailable, "idle timeout"))).await;
                        return Ended::Closed;
                    }
                    Some(next) => idle_sleep.as_mut().reset(next),
                }
            }
        }
    }
}

/// The outcome of answering the client ([`unless_stalled`]): its value, or why the connection
/// ends (a failed write, or a client that stopped reading), logged.
fn answered<T>(outcome: Option<std::io::Result<T>>) -> Result<T, Ended> {
    match outcome {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => {
            debug!(error = %e, "write failed; closing");
            Err(Ended::Closed)
        }
        None => {
            info!("client stopped reading responses; closing");
            Err(Ended::Closed)
        }
    }
}

/// How far the idle timer is set when no idle timeout applies (it is only re-armed then).
const NO_IDLE_TIMEOUT: Duration = Duration::from_secs(86_400);

/// What the idle timer does when it fires at `now`, armed with the timeout `armed` (none: the
/// connection never times out) and the last message at `last_active`: close the connection
/// (`None`), or fire again at the returned time, which is always later than `now`.
fn idle_check(
    armed: Option<Duration>,
    last_active: tokio::time::Instant,
    now: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    match armed {
        None => Some(now + NO_IDLE_TIMEOUT),
        Some(idle) => {
            let due = last_active + idle;
            (due > now).then_some(due)
        }
    }
}

/// Runs `work` (which writes to the client) to its end, or gives up with `None` once it has
/// waited [`WRITE_TIMEOUT`] for the client: a client that stops reading its responses cannot
/// hold a session forever. The timer starts only when `work` has to wait, and starts again
/// after any wait for the server's own work (`server_work` set: a write thread, the journal
/// sync, a password slot), which does not count; most messages are answered without waiting
/// and never create one.
async fn unless_stalled<T>(
    server_work: &AtomicBool,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    use std::future::Future;
    let mut work = std::pin::pin!(work);
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        if server_work.load(Ordering::Relaxed) {
            // `work` is woken by the server's work itself.
            timer = None;
            return std::task::Poll::Pending;
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// True for I/O errors that only mean the client went away.
fn is_disconnect(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}

/// The message size limit for a connection bound as `who`: anonymous clients get a smaller
/// one, so that an unauthenticated client cannot make the server buffer megabytes.
fn codec_for(dir: &Directory, who: &Identity) -> Codec {
    let max = match who {
        Identity::Anonymous => dir.settings.max_message_bytes_anonymous,
        _ => dir.settings.max_message_bytes,
    };
    // Operations are always counted (cn=Monitor); timed only when the metrics are served, so
    // that a search's answer takes no clock reading otherwise.
    Codec::new(max, dir.settings.max_ber_depth)
        .with_metrics(dir.metrics.clone(), dir.settings.metrics_listen.is_some())
}

/// The message size limit for a connection bound as `who` (see [`codec_for`]), set on the
/// connection's codec without losing the timings of its operations in flight.
fn set_limits<S>(framed: &mut Framed<S, Codec>, dir: &Directory, who: &Identity) {
    let max = match who {
        Identity::Anonymous => dir.settings.max_message_bytes_anonymous,
        _ => dir.settings.max_message_bytes,
    };
    framed
        .codec_mut()
        .set_limits(max, dir.settings.max_ber_depth);
}

/// Writes one queued message and whatever else is already queued, then flushes once.
async fn write_queued<S>(
    framed: &mut Framed<S, Codec>,
    rx: &mut mpsc::Receiver<Outgoing>,
    session: &mut Session,
    first: Outgoing,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut next = Some(first);
    while let Some(out) = next {
        match out {
            Outgoing::Msg(m) => framed.feed(m).await?,
            Outgoing::Entry(e) => framed.feed(e).await?,
            Outgoing::Finished(id) => {
                session.running.remove(&id);
            }
        }
        next = rx.try_recv().ok();
    }
    SinkExt::<LdapMsg>::flush(framed).await
}

/// A search result entry in the response to `msgid`, as the connection writes it.
fn entry_out(msgid: i32, e: ResultEntry) -> Outgoing {
    match e {
        ResultEntry::Built(e) => Outgoing::Msg(LdapMsg {
            msgid,
            op: LdapOp::SearchResultEntry(e),
            ctrl: Vec::new(),
        }),
        ResultEntry::Encoded(entry) => Outgoing::Entry(EntryMsg { msgid, entry }),
    }
}

fn notice(code: LdapResultCode, message: &str) -> LdapMsg {
    LdapMsg {
        msgid: 0,
        op: LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: LdapResult {
                code,
                matcheddn: String::new(),
                message: message.to_string(),
                referral: Vec::new(),
            },
            name: Some(NOTICE_OF_DISCONNECTION.to_string()),
            value: None,
        }),
        ctrl: Vec::new(),
    }
}

/// The response an operation gets when it is refused before it runs; `None` for operations
/// without a response (abandon, unbind).
fn refusal(op: &LdapOp, res: LdapResult) -> Option<LdapOp> {
    Some(match op {
        LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse {
            res,
            saslcreds: None,
        }),
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(res),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
        LdapOp::ExtendedRequest(_) => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: None,
            value: None,
        }),
        _ => return None,
    })
}

/// Checks the request's controls: an unknown or unsupported critical control refuses the
/// operation (RFC 4511 section 4.1.11); a paged-results control is returned for the search.
///
/// ldap3_proto drops the criticality of a few controls it decodes (server-side sort, DirSync);
/// those are ignored as if they were not critical.
fn read_controls(ctrls: &[LdapControl], op: &LdapOp) -> Result<RequestControls, OpError> {
    let is_delete = matches!(op, LdapOp::DelRequest(_));
    let checks_only = matches!(op, LdapOp::AddRequest(_) | LdapOp::ModifyRequest(_));
    let is_search = matches!(op, LdapOp::SearchRequest(_));
    let mut page = None;
    let mut sync = None;
    let mut heir = None;
    let mut write = ops::Write::Commit;
    for c in ctrls {
        let critical_oid = match c {
            // OpenLDAP's servers take the No-Op control only as critical.
            LdapControl::Unknown {
                oid,
                criticality: true,
                ..
            } if checks_only && (oid == ops::NO_OP_CONTROL || oid == ops::NO_OP_CONTROL_DRAFT) => {
                write = ops::Write::CheckOnly;
                None
            }
            LdapControl::Unknown { oid, value, .. }
                if is_delete && oid == ops::delete::TRANSFER_CONTROL =>
            {
                let dn = value
                    .as_deref()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        OpError::Protocol(
                            "the transfer control's value is the DN of the user who inherits the addresses and groups".into(),
                        )
                    })?;
                heir = Some(dn.to_string());
                None
            }
            LdapControl::SimplePagedResults { size, cookie } => {
                page = Some(PageRequest {
                    size: usize::try_from(*size).unwrap_or(0),
                    cookie: cookie.clone(),
                });
                None
            }
            LdapControl::ManageDsaIT { .. } => None,
            LdapControl::SyncRequest {
                mode,
                cookie,
                reload_hint,
                ..
            } if is_search => {
                sync = Some(SyncRequest {
                    persist: *mode == SyncRequestMode::RefreshAndPersist,
                    cookie: cookie.clone(),
                    reload: *reload_hint,
                });
                None
            }
            LdapControl::Unknown {
                oid,
                criticality: true,
                ..
            } => Some(oid.as_str()),
            LdapControl::SyncRequest {
                criticality: true, ..
            } => Some("1.3.6.1.4.1.4203.1.9.1.1"),
            LdapControl::PasswordPolicyRequest { criticality: true } => {
                Some("1.3.6.1.4.1.42.2.27.8.5.1")
            }
            LdapControl::SearchOptions {
                criticality: true, ..
            } => Some("1.2.840.113556.1.4.1338"),
            LdapControl::ShowDeleted { criticality: true } => Some("1.2.840.113556.1.4.417"),
            LdapControl::SdFlags {
                criticality: true, ..
            } => Some("1.2.840.113556.1.4.801"),
            LdapControl::ExtendedDn {
                criticality: true, ..
            } => Some("1.2.840.113556.1.4.529"),
            _ => None,
        };
        if let Some(oid) = critical_oid {
            return Err(OpError::UnavailableCriticalExtension(oid.to_string()));
        }
    }
    if sync.is_some() && page.is_some() {
        return Err(OpError::UnwillingToPerform(
            "a sync search cannot be paged".into(),
        ));
    }
    Ok(RequestControls {
        page,
        sync,
        heir,
        write,
    })
}

/// The Sync Request control of a search (RFC 4533).
struct SyncRequest {
    /// refreshAndPersist (else refreshOnly).
    persist: bool,
    cookie: Option<Vec<u8>>,
    reload: bool,
}

/// What the controls of a request ask for.
struct RequestControls {
    /// Simple paged results (searches).
    page: Option<PageRequest>,
    /// The Sync Request control (searches): a replication consumer.
    sync: Option<SyncRequest>,
    /// The transfer control (deletes): who inherits the deleted entry's addresses and groups.
    heir: Option<String>,
    /// The No-Op control (adds and modifies): check the change, write nothing.
    write: ops::Write,
}

impl Session {
    /// The referral a write gets when it targets a replicated naming context (see
    /// `replica::write_referral`); `None` for other operations.
    fn replica_referral(&self, op: &LdapOp) -> Option<OpError> {
        if self.dir.replicas.is_empty() {
            return None;
        }
        let own;
        let dns: Vec<&str> = match op {
            LdapOp::AddRequest(r) => vec![r.dn.as_str()],
            LdapOp::DelRequest(dn) => vec![dn.as_str()],
            LdapOp::ModifyRequest(r) => vec![r.dn.as_str()],
            LdapOp::ModifyDNRequest(r) => std::iter::once(r.dn.as_str())
                .chain(r.new_superior.as_deref())
                .collect(),
            LdapOp::ExtendedRequest(r) if r.name == ldap3_proto::proto::OID_PASSWORD_MODIFY => {
                own = ldap3_proto::proto::LdapPasswordModifyRequest::try_from(r)
                    .ok()
                    .and_then(|r| r.user_identity)
                    .unwrap_or_else(|| self.who.dn().to_string());
                vec![own.as_str()]
            }
            _ => return None,
        };
        crate::replica::write_referral(&self.dir, &dns)
    }

    async fn handle<S>(
        &mut self,
        msg: LdapMsg,
        framed: &mut Framed<S, Codec>,
    ) -> std::io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let LdapMsg { msgid, op, ctrl } = msg;
        // Unbind and abandon have no response, so their controls cannot be refused.
        match op {
            LdapOp::UnbindRequest => return Ok(Next::Close),
            LdapOp::AbandonRequest(target) => {
                if let Some(flag) = self.running.get(&target) {
                    flag.store(true, Ordering::Relaxed);
                }
                return Ok(Next::Continue);
            }
            _ => {}
        }
        let refused = if self.running.contains_key(&msgid) {
            Some(OpError::Protocol(format!(
                "message id {msgid} belongs to an operation still in progress"
            )))
        } else if self.running.len() >= MAX_OUTSTANDING {
            Some(OpError::Busy(format!(
                "more than {MAX_OUTSTANDING} operations outstanding on this connection"
            )))
        } else {
            None
        };
        let RequestControls {
            page,
            sync,
            heir,
            write,
        } = match refused.map_or_else(|| read_controls(&ctrl, &op), Err) {
            Ok(p) => p,
            Err(e) => {
                if let Some(op) = refusal(&op, ldap_result(&e)) {
                    let ctrl = Vec::new();
                    framed.send(LdapMsg { msgid, op, ctrl }).await?;
                }
                return Ok(Next::Continue);
            }
        };
        // A read-only replica refers writes in its naming context to the provider, as slapd's
        // consumers do with `updateref`.
        if let Some(e) = self.replica_referral(&op) {
            if let Some(op) = refusal(&op, ldap_result(&e)) {
                let ctrl = Vec::new();
                framed.send(LdapMsg { msgid, op, ctrl }).await?;
            }
            return Ok(Next::Continue);
        }
        let reply = match op {
            LdapOp::BindRequest(req) if self.refuses_plain_password(&req.cred) => {
                // RFC 4513 section 5.1.2: the password is not checked, and the connection's
                // authorization state becomes anonymous.
                self.abandon_all();
                set_limits(framed, &self.dir, &Identity::Anonymous);
                self.who = Identity::Anonymous;
                info!(msgid, dn = %req.dn, "simple bind over a connection without TLS refused");
                Some(LdapOp::BindResponse(LdapBindResponse {
                    res: ldap_result(&OpError::ConfidentialityRequired(
                        "passwords are accepted only over TLS here: use StartTLS or LDAPS".into(),
                    )),
                    saslcreds: None,
                }))
            }
            LdapOp::BindRequest(req) => {
                // RFC 4511 section 4.2.1: operations in progress are abandoned by a bind.
                self.abandon_all();
                if matches!(&req.cred, LdapBindCred::Simple(pw) if !pw.is_empty()) {
                    // An address that guessed too often waits its turn, or is refused.
                    let peer = self.peer.ip();
                    match self.dir.lockout.throttle(peer) {
                        Ok(None) => {}
                        Ok(Some(wait)) => {
                            audit::bind_throttled(&req.dn, peer, wait);
                            tokio::time::sleep(wait).await;
                        }
                        Err(refusal) => {
                            audit::bind_refused(
                                &req.dn,
                                peer,
                                refusal.what(),
                                refusal.remaining().as_secs(),
                            );
                            set_limits(framed, &self.dir, &Identity::Anonymous);
                            self.who = Identity::Anonymous;
                            let res = ldap_result(&OpError::InvalidCredentials);
                            let op = LdapOp::BindResponse(LdapBindResponse {
                                res,
                                saslcreds: None,
                            });
                            let ctrl = Vec::new();
                            framed.send(LdapMsg { msgid, op, ctrl }).await?;
                            return Ok(Next::Continue);
                        }
                    }
                }
                let dir = self.dir.clone();
                let dn = req.dn.clone();
                let origin = ops::bind::Origin {
                    peer: self.peer.ip(),
                    certificate_subject: self.certificate_subject.clone(),
                };
                // Cheap checks (salted SHA, clear) run in place; a costly hash on a blocking
                // thread in one of the password slots.
                let bound = match ops::bind::bind_in_place(&dir, &req, &origin) {
                    Some(bound) => Ok(bound),
                    None => {
                        let slot = self.password_slot(true).await;
                        tokio::task::spawn_blocking(move || {
                            let r = ops::bind::bind(&dir, &req, &origin);
                            drop(slot);
                            r
                        })
                        .await
                    }
                };
                let (res, who) = match bound {
                    Ok(ops::bind::Bound::Done(res, who)) => (res, who),
                    // A mapped user's upstream is waited for here, not on a blocking thread.
                    Ok(ops::bind::Bound::Upstream(b)) => {
                        ops::bind::finish_upstream(&self.dir, b).await
                    }
                    Err(e) => (internal(&e.to_string()), Identity::Anonymous),
                };
                if res.code == LdapResultCode::InvalidCredentials {
                    info!(msgid, dn = %dn, "bind failed: invalid credentials");
                }
                set_limits(framed, &self.dir, &who);
                self.who = who;
                Some(LdapOp::BindResponse(LdapBindResponse {
                    res,
                    saslcreds: None,
                }))
            }
            LdapOp::SearchRequest(req) if sync.is_some() => {
                if let Some(sync) = sync {
                    self.spawn_sync(msgid, req, sync);
                }
                None
            }
            LdapOp::SearchRequest(req) => {
                if page.is_none() && ops::search::is_small(&self.dir, &req) {
                    if let Some(msgs) = self.search_in_place(msgid, &req) {
                        for m in msgs {
                            match m {
                                Outgoing::Msg(m) => framed.feed(m).await?,
                                Outgoing::Entry(e) => framed.feed(e).await?,
                                Outgoing::Finished(_) => {}
                            }
                        }
                        SinkExt::<LdapMsg>::flush(framed).await?;
                        return Ok(Next::Continue);
                    }
                }
                self.spawn_search(msgid, req, page);
                None
            }
            // A compare reads one entry: cheaper here than on another thread.
            LdapOp::CompareRequest(req) => Some(LdapOp::CompareResult(ops::compare::compare(
                &self.dir, &self.who, &req,
            ))),
            // A password change hashes with argon2: a blocking thread's work.
            LdapOp::ExtendedRequest(req)
                if req.name == ldap3_proto::proto::OID_PASSWORD_MODIFY
                    && !self.secure
                    && !self.dir.settings.plain_passwords.allows(self.peer.ip()) =>
            {
                Some(LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: ldap_result(&OpError::ConfidentialityRequired(
                        "passwords are accepted only over TLS here: use StartTLS or LDAPS".into(),
                    )),
                    name: None,
                    value: None,
                }))
            }
            LdapOp::ExtendedRequest(req) if req.name == ldap3_proto::proto::OID_PASSWORD_MODIFY => {
                Some(LdapOp::ExtendedResponse(self.password_modify(req).await))
            }
            LdapOp::ExtendedRequest(req) if req.name == ops::extended::START_TLS => {
                // RFC 4511 section 4.14 and RFC 4513 section 3.1.1.
                let refused = if self.secure {
                    Some(OpError::Operations(
                        "TLS is already in use on this connection".into(),
                    ))
                } else if !self.running.is_empty() {
                    Some(OpError::Operations(
                        "operations are outstanding on this connection".into(),
                    ))
                } else if self.tls.is_none() {
                    Some(OpError::Unavailable(
                        "TLS is not configured on this server".into(),
                    ))
                } else {
                    None
                };
                match refused {
                    Some(e) => Some(LdapOp::ExtendedResponse(LdapExtendedResponse {
                        res: ldap_result(&e),
                        name: None,
                        value: None,
                    })),
                    None => {
                        let op = LdapOp::ExtendedResponse(LdapExtendedResponse {
                            res: crate::error::success(),
                            name: Some(ops::extended::START_TLS.to_string()),
                            value: None,
                        });
                        framed
                            .send(LdapMsg {
                                msgid,
                                op,
                                ctrl: Vec::new(),
                            })
                            .await?;
                        return Ok(Next::StartTls);
                    }
                }
            }
            LdapOp::ExtendedRequest(req) => Some(LdapOp::ExtendedResponse(
                ops::extended::extended(&self.who, &req),
            )),
            // Writes run on the write threads; the answer waits for the journal sync
            // (session/writes.rs).
            LdapOp::AddRequest(req) => Some(LdapOp::AddResponse(self.add(req, write).await)),
            LdapOp::DelRequest(dn) => Some(LdapOp::DelResponse(self.delete(dn, heir).await)),
            LdapOp::ModifyRequest(req) => {
                Some(LdapOp::ModifyResponse(self.modify(req, write).await))
            }
            LdapOp::ModifyDNRequest(req) => {
                Some(LdapOp::ModifyDNResponse(self.modify_dn(req).await))
            }
            other => {
                // A response type sent by a client is a protocol violation.
                info!(msgid, op = ?std::mem::discriminant(&other), "client sent a server-only message; closing");
                let notice = notice(
                    LdapResultCode::ProtocolError,
                    "unexpected message type from a client",
                );
                framed.send(notice).await?;
                return Ok(Next::Close);
            }
        };
        if let Some(op) = reply {
            let ctrl = Vec::new();
            framed.send(LdapMsg { msgid, op, ctrl }).await?;
        }
        Ok(Next::Continue)
    }

    /// One of the server's password slots when `needed`: password checks and hashes are
    /// costly (argon2: ~19 MiB each), so only a few run at a time across all connections.
    async fn password_slot(&self, needed: bool) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if !needed {
            return None;
        }
        let _waiting = self.server_work();
        self.dir.password_slots.clone().acquire_owned().await.ok()
    }

    /// Marks the handler as waiting for the server's own work until the guard is dropped.
    fn server_work(&self) -> ServerWork<'_> {
        self.server_work.store(true, Ordering::Relaxed);
        ServerWork(&self.server_work)
    }

    /// Writes the audit line of a write.
    fn audit(&self, op: &str, dn: &str, changes: &str, res: &LdapResult) {
        let code = res.code.clone() as i64;
        audit::write(
            op,
            self.who.dn(),
            self.peer.ip(),
            dn,
            changes,
            u32::try_from(code).unwrap_or(80),
        );
    }

    /// True for a simple bind with a password that this connection may not carry in clear.
    fn refuses_plain_password(&self, cred: &LdapBindCred) -> bool {
        let has_password = matches!(cred, LdapBindCred::Simple(pw) if !pw.is_empty());
        has_password && !self.secure && !self.dir.settings.plain_passwords.allows(self.peer.ip())
    }

    /// Asks every running operation to stop; they send nothing more.
    fn abandon_all(&self) {
        for flag in self.running.values() {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Runs a small search on this task. `None` when it turned out to return more than a
    /// handful of entries: nothing was sent, and the caller runs it on a blocking thread.
    fn search_in_place(&self, msgid: i32, req: &LdapSearchRequest) -> Option<Vec<Outgoing>> {
        let mut msgs = Vec::new();
        let mut emit = |e: ResultEntry| {
            if msgs.len() >= IN_PLACE_MAX_ENTRIES {
                return Err(Stopped);
            }
            msgs.push(entry_out(msgid, e));
            Ok(())
        };
        let never = Arc::new(AtomicBool::new(false));
        let done = ops::search::search(
            &self.dir,
            &self.who,
            req,
            None,
            &self.paged,
            &never,
            true,
            &mut emit,
        )
        .ok()?;
        msgs.push(Outgoing::Msg(LdapMsg {
            msgid,
            op: LdapOp::SearchResultDone(done.result),
            ctrl: Vec::new(),
        }));
        Some(msgs)
    }

    /// Runs a search on a blocking thread once one of the server's search slots is free,
    /// streaming its entries to this connection's queue.
    fn spawn_search(&mut self, msgid: i32, req: LdapSearchRequest, page: Option<PageRequest>) {
        let flag = Arc::new(AtomicBool::new(false));
        self.running.insert(msgid, flag.clone());
        let dir = self.dir.clone();
        let who = self.who.clone();
        let paged = self.paged.clone();
        let tx = self.tx.clone();
        let span = tracing::debug_span!("search", msgid, base = %req.base);
        let slots = self.dir.search_slots.clone();
        self.dir.background.spawn(async move {
            // A slot bounds the blocking threads all clients together can occupy.
            let Ok(slot) = slots.acquire_owned().await else {
                return;
            };
            let finished_tx = tx.clone();
            let work = tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let mut emit =
                    |e: ResultEntry| tx.blocking_send(entry_out(msgid, e)).map_err(|_| Stopped);
                match ops::search::search(&dir, &who, &req, page, &paged, &flag, false, &mut emit) {
                    Ok(done) => {
                        let ctrl = match done.page_cookie {
                            Some(cookie) => {
                                vec![LdapControl::SimplePagedResults { size: 0, cookie }]
                            }
                            None => Vec::new(),
                        };
                        let msg = LdapMsg {
                            msgid,
                            op: LdapOp::SearchResultDone(done.result),
                            ctrl,
                        };
                        let _ = tx.blocking_send(Outgoing::Msg(msg));
                    }
                    // RFC 4511 section 4.11: an abandoned operation gets no response.
                    Err(Stopped) => debug!("search abandoned"),
                }
                drop(slot);
            });
            if let Err(e) = work.await {
                tracing::error!(error = %e, "search task failed");
            }
            let _ = finished_tx.send(Outgoing::Finished(msgid)).await;
        });
    }
}

pub(crate) fn internal(detail: &str) -> LdapResult {
    tracing::error!(detail, "operation task failed");
    ldap_result(&OpError::Internal(detail.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_idle_timer_closes_or_fires_again_later() {
        let start = tokio::time::Instant::now();
        let later = |secs| start + Duration::from_secs(secs);
        let minute = Some(Duration::from_secs(60));
        // Idle for the whole timeout: close.
        assert_eq!(idle_check(minute, start, later(60)), None);
        assert_eq!(idle_check(minute, start, later(61)), None);
        // A message came since: fire again a timeout after it.
        assert_eq!(idle_check(minute, later(30), later(60)), Some(later(90)));
        // No timeout: never close, and never fire again at once (a timer reset to a time
        // already past would fire on every turn of the loop).
        for now in [later(0), later(86_400), later(10 * 86_400)] {
            let next = idle_check(None, start, now).unwrap();
            assert!(next > now, "{next:?} {now:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_waiting_for_the_client_counts_toward_the_write_timeout() {
        let server_work = AtomicBool::new(false);
        // Answered at once: no timer at all.
        assert_eq!(unless_stalled(&server_work, async { 7 }).await, Some(7));
        // The client reads nothing for longer than the timeout: given up.
        let stalled = unless_stalled(&server_work, std::future::pending::<()>());
        assert_eq!(stalled.await, None);
        // Waiting as long for the server's own work (a write thread, the journal sync), then
        // a little for the client: answered.
        let flag = Arc::new(AtomicBool::new(true));
        let work = {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(WRITE_TIMEOUT * 2).await;
                flag.store(false, Ordering::Relaxed);
                tokio::time::sleep(WRITE_TIMEOUT / 2).await;
                "answered"
            }
        };
        assert_eq!(unless_stalled(&flag, work).await, Some("answered"));
        // The same without the flag: given up.
        let work = async {
            tokio::time::sleep(WRITE_TIMEOUT * 2).await;
        };
        assert_eq!(unless_stalled(&server_work, work).await, None);
    }
}
