//! Simple bind (RFC 4511 section 4.2, RFC 4513 section 5.1): anonymous, the configured root DN,
//! and any entry with a `userPassword`. A failed bind leaves the connection anonymous.

use super::Identity;
use crate::access::{Requester, Rights};
use crate::directory::Directory;
use crate::error::{ldap_result, success, OpError};
use crate::lockout::Name;
use crate::password;
use ldap3_proto::proto::{LdapBindCred, LdapBindRequest, LdapResult};
use roster_schema::Dn;
use std::net::IpAddr;

/// Where a bind comes from: the client's address, and the subject of the certificate it
/// presented over TLS (for SASL EXTERNAL).
#[derive(Debug, Clone)]
pub struct Origin {
    pub peer: IpAddr,
    pub certificate_subject: Option<String>,
}

/// Runs a bind and returns its result and the connection's identity afterwards.
pub fn bind(dir: &Directory, req: &LdapBindRequest, origin: &Origin) -> (LdapResult, Identity) {
    let peer = origin.peer;
    if let LdapBindCred::SASL(sasl) = &req.cred {
        if sasl.mechanism.eq_ignore_ascii_case("EXTERNAL") {
            return match external(dir, origin, &sasl.credentials) {
                Ok(who) => (success(), who),
                Err(e) => {
                    if let OpError::Store(inner) = &e {
                        dir.store_failed("bind", inner);
                    }
                    (ldap_result(&e), Identity::Anonymous)
                }
            };
        }
    }
    match authenticate(dir, req, peer) {
        Ok(who) => (success(), who),
        Err(e) => {
            if let OpError::Store(inner) = &e {
                dir.store_failed("bind", inner);
            }
            (ldap_result(&e), Identity::Anonymous)
        }
    }
}

fn authenticate(dir: &Directory, req: &LdapBindRequest, peer: IpAddr) -> Result<Identity, OpError> {
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
            return Ok(Identity::Anonymous);
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
    let dn = Dn::parse(&req.dn)?;
    let ndn = dn.normalize(&dir.schema)?;
    // The bound DN as slapd reports it (Who am I?): types canonical, values as written.
    let pretty = dn.pretty(&dir.schema)?.to_string();
    let is_root = dir.is_root_dn(&ndn);
    let reader = dir.store.reader();
    let entry = if is_root || dir.suffix_of(&ndn).is_none() {
        None
    } else {
        reader.entry_by_dn(&ndn)?.map(|(_, e)| e)
    };
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
            Ok(Identity::Root { dn: pretty })
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
    Ok(Identity::Entry { dn: pretty, ndn })
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
