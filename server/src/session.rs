//! One client connection: reads LDAP messages, runs operations, writes responses. Generic over
//! the byte stream so that TLS wraps it without touching the operations. A failure in one
//! connection is logged here and never reaches the accept loop or another connection.

use crate::directory::Directory;
use crate::error::{ldap_result, OpError};
use crate::ops::search::{ClientGone, PageRequest, PagedSearches};
use crate::ops::{self, Identity};
use futures::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapExtendedResponse, LdapMsg, LdapOp, LdapResult, LdapResultCode};
use ldap3_proto::LdapCodec;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn, Instrument};

/// The OID of the unsolicited Notice of Disconnection (RFC 4511 section 4.4.1).
const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";

/// Messages queued by running operations for the connection's writer.
#[allow(clippy::large_enum_variant)] // Nearly every queued item is a message; boxing would add an allocation each.
enum Outgoing {
    Msg(LdapMsg),
    /// The operation with this message id has sent its last response.
    Finished(i32),
}

/// Responses waiting in a connection's queue before a slow reader slows the search down.
const OUTGOING_QUEUE: usize = 256;

/// Most entries a search run in place may return before it moves to a blocking thread.
const IN_PLACE_MAX_ENTRIES: usize = 16;

/// What the session does after a request.
enum Next {
    Continue,
    Close,
}

/// The state of one connection between requests.
struct Session {
    dir: Arc<Directory>,
    who: Identity,
    /// Abandon flags of the operations still running, by message id.
    running: HashMap<i32, Arc<AtomicBool>>,
    paged: Arc<PagedSearches>,
    tx: mpsc::Sender<Outgoing>,
}

/// Serves one connection until the client unbinds or disconnects, or the server shuts down.
pub async fn serve<S>(
    stream: S,
    dir: Arc<Directory>,
    conn_id: u64,
    peer: String,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::info_span!("conn", id = conn_id, peer = %peer);
    async move {
        debug!("connection opened");
        let codec = LdapCodec::new(Some(dir.settings.max_message_bytes), Some(dir.settings.max_ber_depth));
        let mut framed = Framed::new(stream, codec);
        let (tx, mut rx) = mpsc::channel(OUTGOING_QUEUE);
        let idle = dir.settings.idle_timeout;
        let mut session =
            Session { dir, who: Identity::Anonymous, running: HashMap::new(), paged: Arc::default(), tx };
        loop {
            let idle_sleep = async {
                match idle {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                out = rx.recv() => {
                    let Some(out) = out else { break };
                    if let Err(e) = write_queued(&mut framed, &mut rx, &mut session, out).await {
                        debug!(error = %e, "write failed; closing");
                        break;
                    }
                }
                inbound = framed.next() => match inbound {
                    None => {
                        debug!("client closed the connection");
                        break;
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "undecodable message; closing the connection");
                        let _ = framed.send(notice(LdapResultCode::ProtocolError, "malformed or oversized LDAP message")).await;
                        break;
                    }
                    Some(Ok(msg)) => match session.handle(msg, &mut framed).await {
                        Ok(Next::Continue) => {}
                        Ok(Next::Close) => break,
                        Err(e) => {
                            debug!(error = %e, "write failed; closing");
                            break;
                        }
                    },
                },
                _ = shutdown.changed() => {
                    let _ = framed.send(notice(LdapResultCode::Unavailable, "the server is shutting down")).await;
                    break;
                }
                _ = idle_sleep, if session.running.is_empty() => {
                    debug!("idle timeout");
                    let _ = framed.send(notice(LdapResultCode::Unavailable, "idle timeout")).await;
                    break;
                }
            }
        }
        for flag in session.running.values() {
            flag.store(true, Ordering::Relaxed);
        }
        debug!("connection closed");
    }
    .instrument(span)
    .await
}

/// Writes one queued message and whatever else is already queued, then flushes once.
async fn write_queued<S>(
    framed: &mut Framed<S, LdapCodec>,
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
            Outgoing::Finished(id) => {
                session.running.remove(&id);
            }
        }
        next = rx.try_recv().ok();
    }
    framed.flush().await
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
        LdapOp::BindRequest(_) => LdapOp::BindResponse(ldap3_proto::proto::LdapBindResponse {
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
fn read_controls(ctrls: &[LdapControl]) -> Result<Option<PageRequest>, OpError> {
    let mut page = None;
    for c in ctrls {
        match c {
            LdapControl::SimplePagedResults { size, cookie } => {
                page = Some(PageRequest {
                    size: usize::try_from(*size).unwrap_or(0),
                    cookie: cookie.clone(),
                });
            }
            LdapControl::ManageDsaIT { .. } => {}
            LdapControl::Unknown {
                oid,
                criticality: true,
                ..
            } => return Err(OpError::UnavailableCriticalExtension(oid.clone())),
            LdapControl::SyncRequest {
                criticality: true, ..
            } => {
                return Err(OpError::UnavailableCriticalExtension(
                    "1.3.6.1.4.1.4203.1.9.1.1".into(),
                ))
            }
            LdapControl::PasswordPolicyRequest { criticality: true } => {
                return Err(OpError::UnavailableCriticalExtension(
                    "1.3.6.1.4.1.42.2.27.8.5.1".into(),
                ))
            }
            LdapControl::SearchOptions {
                criticality: true, ..
            } => {
                return Err(OpError::UnavailableCriticalExtension(
                    "1.2.840.113556.1.4.1340".into(),
                ))
            }
            LdapControl::ShowDeleted { criticality: true } => {
                return Err(OpError::UnavailableCriticalExtension(
                    "1.2.840.113556.1.4.417".into(),
                ))
            }
            LdapControl::SdFlags {
                criticality: true, ..
            } => {
                return Err(OpError::UnavailableCriticalExtension(
                    "1.2.840.113556.1.4.801".into(),
                ))
            }
            LdapControl::ExtendedDn {
                criticality: true, ..
            } => {
                return Err(OpError::UnavailableCriticalExtension(
                    "1.2.840.113556.1.4.529".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(page)
}

impl Session {
    async fn handle<S>(
        &mut self,
        msg: LdapMsg,
        framed: &mut Framed<S, LdapCodec>,
    ) -> std::io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let LdapMsg { msgid, op, ctrl } = msg;
        let page = match read_controls(&ctrl) {
            Ok(p) => p,
            Err(e) => {
                if let Some(op) = refusal(&op, ldap_result(&e)) {
                    framed
                        .send(LdapMsg {
                            msgid,
                            op,
                            ctrl: Vec::new(),
                        })
                        .await?;
                }
                return Ok(Next::Continue);
            }
        };
        match op {
            LdapOp::UnbindRequest => return Ok(Next::Close),
            LdapOp::AbandonRequest(target) => {
                if let Some(flag) = self.running.get(&target) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            LdapOp::BindRequest(req) => {
                let dir = self.dir.clone();
                let (res, who) =
                    match tokio::task::spawn_blocking(move || ops::bind::bind(&dir, &req)).await {
                        Ok(r) => r,
                        Err(e) => (internal(&e.to_string()), Identity::Anonymous),
                    };
                if res.code == LdapResultCode::InvalidCredentials {
                    info!(msgid, "bind failed: invalid credentials");
                }
                self.who = who;
                let op = LdapOp::BindResponse(ldap3_proto::proto::LdapBindResponse {
                    res,
                    saslcreds: None,
                });
                framed
                    .send(LdapMsg {
                        msgid,
                        op,
                        ctrl: Vec::new(),
                    })
                    .await?;
            }
            LdapOp::SearchRequest(req) => {
                if page.is_none() && ops::search::is_small(&self.dir, &req) {
                    if let Some(msgs) = self.search_in_place(msgid, &req) {
                        for m in msgs {
                            framed.feed(m).await?;
                        }
                        framed.flush().await?;
                        return Ok(Next::Continue);
                    }
                }
                self.spawn_search(msgid, req, page)
            }
            LdapOp::CompareRequest(req) => {
                let dir = self.dir.clone();
                let res = tokio::task::spawn_blocking(move || ops::compare::compare(&dir, &req))
                    .await
                    .unwrap_or_else(|e| internal(&e.to_string()));
                framed
                    .send(LdapMsg {
                        msgid,
                        op: LdapOp::CompareResult(res),
                        ctrl: Vec::new(),
                    })
                    .await?;
            }
            LdapOp::ExtendedRequest(req) => {
                let resp = ops::extended::extended(&self.who, &req);
                framed
                    .send(LdapMsg {
                        msgid,
                        op: LdapOp::ExtendedResponse(resp),
                        ctrl: Vec::new(),
                    })
                    .await?;
            }
            op @ (LdapOp::AddRequest(_)
            | LdapOp::ModifyRequest(_)
            | LdapOp::DelRequest(_)
            | LdapOp::ModifyDNRequest(_)) => {
                let e =
                    OpError::UnwillingToPerform("this server does not accept changes yet".into());
                if let Some(op) = refusal(&op, ldap_result(&e)) {
                    framed
                        .send(LdapMsg {
                            msgid,
                            op,
                            ctrl: Vec::new(),
                        })
                        .await?;
                }
            }
            other => {
                // A response type sent by a client is a protocol violation.
                warn!(msgid, op = ?std::mem::discriminant(&other), "client sent a server-only message; closing");
                framed
                    .send(notice(
                        LdapResultCode::ProtocolError,
                        "unexpected message type from a client",
                    ))
                    .await?;
                return Ok(Next::Close);
            }
        }
        Ok(Next::Continue)
    }

    /// Runs a small search on this task. `None` when it turned out to return more than a
    /// handful of entries: nothing was sent, and the caller runs it on a blocking thread.
    fn search_in_place(
        &self,
        msgid: i32,
        req: &ldap3_proto::proto::LdapSearchRequest,
    ) -> Option<Vec<LdapMsg>> {
        let mut msgs = Vec::new();
        let mut emit = |e: ldap3_proto::proto::LdapSearchResultEntry| {
            if msgs.len() >= IN_PLACE_MAX_ENTRIES {
                return Err(ClientGone);
            }
            msgs.push(LdapMsg {
                msgid,
                op: LdapOp::SearchResultEntry(e),
                ctrl: Vec::new(),
            });
            Ok(())
        };
        let never = AtomicBool::new(false);
        let done = ops::search::search(
            &self.dir,
            &self.who,
            req,
            None,
            &self.paged,
            &never,
            &mut emit,
        )
        .ok()?;
        msgs.push(LdapMsg {
            msgid,
            op: LdapOp::SearchResultDone(done.result),
            ctrl: Vec::new(),
        });
        Some(msgs)
    }

    fn spawn_search(
        &mut self,
        msgid: i32,
        req: ldap3_proto::proto::LdapSearchRequest,
        page: Option<PageRequest>,
    ) {
        let flag = Arc::new(AtomicBool::new(false));
        self.running.insert(msgid, flag.clone());
        let dir = self.dir.clone();
        let who = self.who.clone();
        let paged = self.paged.clone();
        let tx = self.tx.clone();
        let span = tracing::debug_span!("search", msgid, base = %req.base);
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let mut emit = |e: ldap3_proto::proto::LdapSearchResultEntry| {
                tx.blocking_send(Outgoing::Msg(LdapMsg {
                    msgid,
                    op: LdapOp::SearchResultEntry(e),
                    ctrl: Vec::new(),
                }))
                .map_err(|_| ClientGone)
            };
            match ops::search::search(&dir, &who, &req, page, &paged, &flag, &mut emit) {
                Ok(done) => {
                    let ctrl = match done.page_cookie {
                        Some(cookie) => vec![LdapControl::SimplePagedResults { size: 0, cookie }],
                        None => Vec::new(),
                    };
                    let msg = LdapMsg {
                        msgid,
                        op: LdapOp::SearchResultDone(done.result),
                        ctrl,
                    };
                    let _ = tx.blocking_send(Outgoing::Msg(msg));
                }
                Err(ClientGone) => debug!("search abandoned"),
            }
            let _ = tx.blocking_send(Outgoing::Finished(msgid));
        });
    }
}

fn internal(detail: &str) -> LdapResult {
    tracing::error!(detail, "operation task failed");
    ldap_result(&OpError::Internal(detail.to_string()))
}
