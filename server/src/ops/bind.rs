//! Simple bind (RFC 4511 section 4.2, RFC 4513 section 5.1): anonymous, the configured root DN,
//! any entry with a `userPassword`, and users mapped from an upstream directory (an entry with
//! `rosterUpstream` and no `userPassword`), whose password that directory checks (see
//! `upstream.rs`). A failed bind leaves the connection anonymous.
//!
//! A bind runs on a blocking thread ([`bind`]); a mapped user's comes back from there as
//! [`Bound::Upstream`] and ends on the session's task ([`finish_upstream`]), so that waiting
//! for an upstream holds neither a blocking thread nor one of the password slots local binds
//! need: the root DN and local users never wait for an upstream.

use super::Identity;
use crate::access::{Requester, Rights};
use crate::directory::Directory;
use crate::error::{ldap_result, success, OpError};
use crate::lockout::Name;
use crate::password;
use crate::upstream::{Mapping, Verdict};
use ldap3_proto::proto::{LdapBindCred, LdapBindRequest, LdapResult};
use roster_schema::{Dn, NormDn};
use std::net::IpAddr;
use std::sync::Arc;

/// Where a bind comes from: the client's address, and the subject of the certificate it
/// presented over TLS (for SASL EXTERNAL).
#[derive(Debug, Clone)]
pub struct Origin {
    pub peer: IpAddr,
    pub certificate_subject: Option<String>,
}

/// What a bind came to on its blocking thread.
#[derive(Debug)]
pub enum Bound {
    /// Decided: the result and the connection's identity afterwards.
    Done(LdapResult, Identity),
    /// A mapped user: its upstream checks the password ([`finish_upstream`]).
    Upstream(UpstreamBind),
}

impl Bound {
    /// The result and identity of a bind decided here (an upstream bind is refused: for
    /// callers that have no upstream to ask).
    pub fn decided(self) -> (LdapResult, Identity) {
        match self {
            Bound::Done(res, who) => (res, who),
            Bound::Upstream(b) => (
                ldap_result(&OpError::UpstreamUnavailable {
                    upstream: b.mapping.upstream,
                }),
                Identity::Anonymous,
            ),
        }
    }
}

/// A bind as a mapped user, with what the store said of the entry.
pub struct UpstreamBind {
    /// The bind DN as sent, for the audit log.
    dn: String,
    /// As slapd reports it (Who am I?).
    pretty: String,
    ndn: NormDn,
    peer: IpAddr,
    password: String,
    mapping: Mapping,
    /// The access policy gives anonymous clients the auth right on the entry's password.
    may_auth: bool,
    disabled: bool,
}

impl std::fmt::Debug for UpstreamBind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBind")
            .field("dn", &self.dn)
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

/// Runs a bind and returns its result and the connection's identity afterwards, or the
/// upstream check a mapped user's bind still needs.
pub fn bind(dir: &Directory, req: &LdapBindRequest, origin: &Origin) -> Bound {
    run(dir, req, origin, true).unwrap_or_else(|| {
        Bound::Done(
            ldap_result(&OpError::Internal("bind not decided".into())),
            Identity::Anonymous,
        )
    })
}

/// The same bind, unless it needs a costly password check (argon2, PBKDF2, crypt): then
/// `None`, with nothing done yet (no lockout accounting), and the caller runs [`bind`] on a
/// blocking thread. Everything else a bind does (a DN lookup, a salted SHA, the root DN's
/// clear password) costs less than handing the bind to another thread, so the session runs
/// it in place.
pub fn bind_in_place(dir: &Directory, req: &LdapBindRequest, origin: &Origin) -> Option<Bound> {
    run(dir, req, origin, false)
}

fn run(dir: &Directory, req: &LdapBindRequest, origin: &Origin, costly: bool) -> Option<Bound> {
    let peer = origin.peer;
    if let LdapBindCred::SASL(sasl) = &req.cred {
        if sasl.mechanism.eq_ignore_ascii_case("EXTERNAL") {
            return Some(match external(dir, origin, &sasl.credentials) {
                Ok(who) => Bound::Done(success(), who),
                Err(e) => {
                    if let OpError::Store(inner) = &e {
                        dir.store_failed("bind", inner);
                    }
                    Bound::Done(ldap_result(&e), Identity::Anonymous)
                }
            });
        }
    }
    Some(match authenticate(dir, req, peer, costly) {
        Ok(Authenticated::Local(who)) => Bound::Done(success(), who),
        Ok(Authenticated::Upstream(b)) => Bound::Upstream(b),
        Ok(Authenticated::Costly) => return None,
        Err(e) => {
            if let OpError::Store(inner) = &e {
                dir.store_failed("bind", inner);
            }
            Bound::Done(ldap_result(&e), Identity::Anonymous)
        }
    })
}

enum Authenticated {
    Local(Identity),
    Upstream(UpstreamBind),
    /// Not decided: the password check is costly and `costly` was false.
    Costly,
}

fn authenticate(
    dir: &Directory,
    req: &LdapBindRequest,
    peer: IpAddr,
    costly: bool,
) -> Result<Authenticated, OpError> {
    if req.version != 3 {
        return Err(OpError::Protocol(format!(
            "LDAP version {} is not supported; use version 3",
            req.version
        )));
    }
    let password = match &req.cred {
        LdapBindCred::Simple(p) => p.as_bytes(),
        LdapBindCred::SASL(s) => {
            return Err(OpError::AuthMethodNotSupported(format!(
                "SASL mechanism {} is not supported",
                s.mechanism
            )))
        }
        LdapBindCred::Unsupported => {
            return Err(OpError::AuthMethodNotSupported(
                "authentication method not supported".into(),
            ))
        }
    };
    if req.dn.is_empty() {
        if password.is_empty() {
            return Ok(Authenticated::Local(Identity::Anonymous));
        }
        // As slapd answers: an empty name with a password matches no entry.
        let attempt = match dir.lockout.begin(Name::Unknown, peer) {
            Ok(a) => a,
            Err(refusal) => {
                crate::audit::bind_refused("", peer, refusal.what(), refusal.remaining().as_secs());
                return Err(OpError::InvalidCredentials);
            }
        };
        return Err(failed(attempt, peer, "empty name with a password"));
    }
    if password.is_empty() {
        // RFC 4513 section 5.1.2: an unauthenticated bind must never grant anything.
        return Err(OpError::UnwillingToPerform(
            "unauthenticated bind (DN with no password) disallowed".into(),
        ));
    }
    let names = match dir.bind_dns.get(&req.dn) {
        Some(n) => n,
        None => {
            // The bound DN as slapd reports it (Who am I?): types canonical, values as written.
            let n = Arc::new(Dn::parse(&req.dn)?.normalize_pretty(&dir.schema)?);
            dir.bind_dns.put(&req.dn, n.clone());
            n
        }
    };
    let (ndn, pretty) = (names.0.clone(), names.1.clone());
    let is_root = dir.is_root_dn(&ndn);
    let reader = dir.store.reader();
    let entry = if is_root || dir.suffix_of(&ndn).is_none() {
        None
    } else {
        reader.shared_by_dn(&ndn)?.map(|(_, e)| e)
    };
    // A mapped user (rosterUpstream, no userPassword of its own): its upstream checks the
    // password, on the session's task. What needs the store is read here.
    if let Some(entry) = &entry {
        let pw_attr = dir.schema.attr_id("userPassword");
        let has_password = pw_attr.is_some_and(|id| entry.values_of(id).next().is_some());
        if let (false, Some(mapping), LdapBindCred::Simple(clear)) = (
            has_password,
            crate::upstream::mapping(dir, entry),
            &req.cred,
        ) {
            // The same access check as for a local password: the auth right is given on the
            // userPassword attribute type, whether the entry holds a value or its upstream
            // does, so rules that keep an entry from binding keep a mapped one too.
            let anonymous = Identity::Anonymous;
            let requester = Requester::new(&anonymous, &reader);
            let may_auth = pw_attr.is_some()
                && dir
                    .policy
                    .for_entry(&dir.schema, &requester, entry)
                    .allows(pw_attr, Rights::AUTH);
            return Ok(Authenticated::Upstream(UpstreamBind {
                dn: req.dn.clone(),
                pretty,
                ndn,
                peer,
                password: clear.clone(),
                mapping,
                may_auth,
                disabled: is_disabled(dir, entry),
            }));
        }
    }
    if !costly {
        let slow = if is_root {
            dir.settings
                .root_password
                .as_ref()
                .is_some_and(|stored| password::is_costly(stored.expose().as_bytes()))
        } else {
            let pw_attr = dir.schema.attr_id("userPassword");
            entry.as_ref().is_some_and(|e| {
                pw_attr.is_some_and(|id| e.values_of(id).any(|v| password::is_costly(v)))
            })
        };
        if slow {
            return Ok(Authenticated::Costly);
        }
    }
    // A locked account or address gets the answer of a wrong password, without a check. The
    // root DN is locked only from the addresses that guess it (locking it everywhere would
    // lock the administrator out); names that are no account count for their address only.
    let name = if is_root {
        Name::Root(&ndn)
    } else if entry.is_some() {
        Name::Account(&ndn)
    } else {
        Name::Unknown
    };
    let attempt = match dir.lockout.begin(name, peer) {
        Ok(a) => a,
        Err(refusal) => {
            crate::audit::bind_refused(
                &req.dn,
                peer,
                refusal.what(),
                refusal.remaining().as_secs(),
            );
            return Err(OpError::InvalidCredentials);
        }
    };
    if is_root {
        let ok = dir
            .settings
            .root_password
            .as_ref()
            .is_some_and(|stored| password::verify(stored.expose().as_bytes(), password));
        return if ok {
            attempt.succeeded();
            Ok(Authenticated::Local(Identity::Root { dn: pretty }))
        } else {
            Err(failed(attempt, peer, &req.dn))
        };
    }
    let Some(entry) = entry else {
        return Err(failed(attempt, peer, &req.dn));
    };
    let Some(pw_attr) = dir.schema.attr_id("userPassword") else {
        return Err(OpError::InvalidCredentials);
    };
    // A bind is decided as for an anonymous client (as slapd does): it needs the auth right
    // on the entry's password. Without it the password is not even checked.
    let anonymous = Identity::Anonymous;
    let requester = Requester::new(&anonymous, &reader);
    if !dir
        .policy
        .for_entry(&dir.schema, &requester, &entry)
        .allows(Some(pw_attr), Rights::AUTH)
    {
        return Err(failed(attempt, peer, &req.dn));
    }
    if !entry
        .values_of(pw_attr)
        .any(|stored| password::verify(stored, password))
    {
        return Err(failed(attempt, peer, &req.dn));
    }
    // A disabled account keeps its data and its password, and does not bind.
    if is_disabled(dir, &entry) {
        crate::audit::bind_failed(&req.dn, peer, "account disabled");
        return Err(OpError::InvalidCredentials);
    }
    attempt.succeeded();
    Ok(Authenticated::Local(Identity::Entry { dn: pretty, ndn }))
}

/// The rest of a mapped user's bind, on the session's task: the same lockout accounting as a
/// local password, then the upstream's check (or, while it cannot be reached, the cached
/// verifier).
///
/// An upstream that cannot be reached is no verdict on the password: the attempt is not
/// counted as a failure (an outage must not lock users out), and the client gets unavailable.
/// A password compared with a cached verifier during an outage is counted like a local check,
/// success or failure, so that the cache cannot be used to guess passwords faster than binds
/// could.
pub async fn finish_upstream(dir: &Directory, b: UpstreamBind) -> (LdapResult, Identity) {
    match upstream_bind(dir, b).await {
        Ok(who) => (success(), who),
        Err(e) => (ldap_result(&e), Identity::Anonymous),
    }
}

async fn upstream_bind(dir: &Directory, b: UpstreamBind) -> Result<Identity, OpError> {
    let peer = b.peer;
    let attempt = match dir.lockout.begin(Name::Account(&b.ndn), peer) {
        Ok(a) => a,
        Err(refusal) => {
            crate::audit::bind_refused(&b.dn, peer, refusal.what(), refusal.remaining().as_secs());
            return Err(OpError::InvalidCredentials);
        }
    };
    if !b.may_auth {
        return Err(failed(attempt, peer, &b.dn));
    }
    // A disabled account is refused before its password goes anywhere. Not a password check,
    // so not counted (a local disabled account with its right password is not counted either).
    if b.disabled {
        crate::audit::bind_failed(&b.dn, peer, "account disabled");
        return Err(OpError::InvalidCredentials);
    }
    let Some(upstream) = dir.upstreams.get(&b.mapping.upstream) else {
        tracing::warn!(
            upstream = %b.mapping.upstream,
            dn = %b.dn,
            "a mapped user names an upstream directory with no [[upstream]] table in the configuration: its password cannot be checked"
        );
        crate::audit::bind_failed(&b.dn, peer, "upstream directory not configured");
        return Err(OpError::InvalidCredentials);
    };
    let name = upstream.name();
    let Some(upstream_dn) = b.mapping.upstream_dn.as_deref() else {
        tracing::warn!(upstream = name, dn = %b.dn, "a mapped user has no rosterUpstreamDn: its password cannot be checked");
        crate::audit::bind_failed(&b.dn, peer, "mapped user without rosterUpstreamDn");
        return Err(OpError::InvalidCredentials);
    };
    let identity = Identity::Entry {
        dn: b.pretty.clone(),
        ndn: b.ndn.clone(),
    };
    match upstream.check(upstream_dn, &b.password).await {
        Verdict::Accepted => {
            if upstream.caches() {
                match hash(dir, b.password.clone()).await {
                    Ok(h) => upstream.remember(&b.ndn, upstream_dn, h),
                    Err(e) => {
                        tracing::warn!(upstream = name, error = %e, "cannot keep a verifier of an accepted password")
                    }
                }
            }
            still_mapped(dir, &b, upstream_dn)?;
            attempt.succeeded();
            Ok(identity)
        }
        Verdict::Rejected { detail } => {
            upstream.forget(&b.ndn);
            // Active Directory says why in the message (data 52e: wrong password, 533:
            // disabled, 775: locked, 532: expired): for the log, not the client.
            tracing::info!(upstream = name, dn = %b.dn, detail = %detail, "the upstream directory refused the password");
            Err(failed(attempt, peer, &b.dn))
        }
        Verdict::Refused { code, detail } => {
            upstream.forget(&b.ndn);
            // Some directories answer a locked account or a wrong password with another code
            // (389: 19 past its retry limit; eDirectory: 53 for login restrictions): counted as
            // a failure, so that guessing through rosterd stays limited whatever the upstream.
            tracing::warn!(upstream = name, dn = %b.dn, code, detail = %detail, "the upstream directory refused the bind with an unexpected result");
            Err(failed(attempt, peer, &b.dn))
        }
        Verdict::Unreachable { error } => {
            tracing::warn!(upstream = name, dn = %b.dn, error = %error, "the upstream directory cannot be reached to check a password");
            let unavailable = || OpError::UpstreamUnavailable {
                upstream: name.to_string(),
            };
            let Some(verifier) = upstream.cached(&b.ndn, upstream_dn) else {
                let cache = if upstream.caches() {
                    "no verifier"
                } else {
                    "off"
                };
                crate::audit::upstream_unavailable(name, &b.dn, peer, cache);
                return Err(unavailable());
            };
            if verify(dir, verifier, b.password.clone()).await {
                tracing::info!(upstream = name, dn = %b.dn, "the password matched the cached verifier of the unreachable upstream directory");
                crate::audit::upstream_unavailable(name, &b.dn, peer, "verifier matched");
                still_mapped(dir, &b, upstream_dn)?;
                attempt.succeeded();
                Ok(identity)
            } else {
                crate::audit::upstream_unavailable(name, &b.dn, peer, "verifier differs");
                crate::audit::bind_failed(&b.dn, peer, "password differs from the cached verifier");
                for lock in attempt.failed() {
                    crate::audit::locked(&lock);
                }
                Err(unavailable())
            }
        }
    }
}

/// The entry as it is once the upstream has answered (which takes up to twice the timeout):
/// one disabled, deleted or mapped elsewhere meanwhile does not bind.
fn still_mapped(dir: &Directory, b: &UpstreamBind, upstream_dn: &str) -> Result<(), OpError> {
    let now = dir.store.reader().entry_by_dn(&b.ndn)?;
    let same = now.as_ref().is_some_and(|(_, e)| {
        !is_disabled(dir, e)
            && crate::upstream::mapping(dir, e).is_some_and(|m| {
                m.upstream.eq_ignore_ascii_case(&b.mapping.upstream)
                    && m.upstream_dn.as_deref() == Some(upstream_dn)
            })
    });
    if same {
        Ok(())
    } else {
        crate::audit::bind_failed(&b.dn, b.peer, "account changed during the upstream check");
        Err(OpError::InvalidCredentials)
    }
}

/// An argon2id hash of `password` on a blocking thread, in one of the password slots.
async fn hash(dir: &Directory, password: String) -> Result<Vec<u8>, String> {
    let _slot = dir.password_slots.clone().acquire_owned().await;
    tokio::task::spawn_blocking(move || {
        password::hash(password::Scheme::Argon2, password.as_bytes())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Checks `password` against a verifier on a blocking thread, in one of the password slots.
async fn verify(dir: &Directory, verifier: Vec<u8>, password: String) -> bool {
    let _slot = dir.password_slots.clone().acquire_owned().await;
    tokio::task::spawn_blocking(move || password::verify(&verifier, password.as_bytes()))
        .await
        .unwrap_or(false)
}

/// SASL EXTERNAL (RFC 4422 appendix A): the identity is the entry named by the subject of the
/// client certificate the TLS layer verified. An authorization identity, when sent, must name
/// the same entry (`dn:<DN>`).
fn external(dir: &Directory, origin: &Origin, authzid: &[u8]) -> Result<Identity, OpError> {
    let Some(subject) = &origin.certificate_subject else {
        return Err(OpError::InappropriateAuthentication(
            "SASL EXTERNAL needs a client certificate over TLS".into(),
        ));
    };
    let dn = Dn::parse(subject)?;
    let ndn = dn.normalize(&dir.schema)?;
    let refuse = |why: &str| {
        crate::audit::bind_failed(subject, origin.peer, why);
        OpError::InvalidCredentials
    };
    if !authzid.is_empty() {
        let wanted = std::str::from_utf8(authzid)
            .ok()
            .and_then(|a| a.strip_prefix("dn:"))
            .and_then(|a| Dn::parse(a).ok())
            .and_then(|d| d.normalize(&dir.schema).ok());
        if wanted.as_ref() != Some(&ndn) {
            return Err(refuse(
                "authorization identity differs from the certificate",
            ));
        }
    }
    if dir.suffix_of(&ndn).is_none() {
        return Err(refuse("certificate subject names no entry"));
    }
    let reader = dir.store.reader();
    let Some((_, entry)) = reader.entry_by_dn(&ndn)? else {
        return Err(refuse("certificate subject names no entry"));
    };
    if is_disabled(dir, &entry) {
        return Err(refuse("account disabled"));
    }
    Ok(Identity::Entry {
        dn: entry.dn.to_string(),
        ndn,
    })
}

/// True for an entry with `rosterAccountDisabled: TRUE`.
pub fn is_disabled(dir: &Directory, entry: &roster_schema::Entry) -> bool {
    dir.schema
        .attr_id("rosterAccountDisabled")
        .is_some_and(|id| entry.values_of(id).any(|v| v.eq_ignore_ascii_case(b"TRUE")))
}

/// Records a failed bind (and the locks it causes) and returns its error.
fn failed(attempt: crate::lockout::Attempt<'_>, peer: IpAddr, dn: &str) -> OpError {
    crate::audit::bind_failed(dn, peer, "invalid credentials");
    for lock in attempt.failed() {
        crate::audit::locked(&lock);
    }
    OpError::InvalidCredentials
}
