//! Pass-through authentication: the password of a user that a `roster sync` job maps from an
//! upstream directory (Active Directory, eDirectory, another LDAP server) lives only there.
//! Such an entry carries `rosterUpstream` (the job's name), `rosterUpstreamDn` (its DN
//! upstream) and no `userPassword`; a bind as it is checked by binding to the upstream as
//! `rosterUpstreamDn` with the password given, over TLS only (LDAPS, or StartTLS on `ldap://`).
//!
//! Each upstream has a timeout covering connect, TLS and bind, and a cap on checks at once.
//! With `cache_max_age` set, an argon2id hash of each password the upstream accepted is kept in
//! memory (never on disk) per entry, and used only while the upstream cannot be reached. The
//! lockout accounting and the answers are decided in `ops/bind.rs`; this module talks to the
//! upstream and keeps the verifiers.

use crate::directory::Directory;
use roster_schema::{Entry, NormDn};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the client is told when a password is changed on a mapped user.
pub const CHANGE_UPSTREAM: &str =
    "the password of a user mapped from an upstream directory is changed in that directory";

/// Most verifiers kept per upstream; past it the oldest are forgotten.
const MAX_VERIFIERS: usize = 100_000;

pub use crate::config::{check_url, UpstreamConfig};

/// Why the upstreams could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("upstream {name:?}: {message}")]
pub struct SetupError {
    name: String,
    message: String,
}

/// The configured upstreams, by name.
#[derive(Debug, Default)]
pub struct Upstreams {
    list: Vec<Upstream>,
}

impl Upstreams {
    /// Reads the CA files; fails on one that has no usable certificate.
    pub fn new(configs: &[UpstreamConfig]) -> Result<Upstreams, SetupError> {
        let mut list = Vec::new();
        for c in configs {
            let tls = client_config(c.ca.as_deref()).map_err(|message| SetupError {
                name: c.name.clone(),
                message,
            })?;
            list.push(Upstream {
                config: c.clone(),
                tls,
                slots: Arc::new(tokio::sync::Semaphore::new(c.max_concurrent)),
                verifiers: c.cache_max_age.map(Verifiers::new),
            });
        }
        Ok(Upstreams { list })
    }

    /// The upstream named `name` (as `rosterUpstream` values compare: without case).
    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.list
            .iter()
            .find(|u| u.config.name.eq_ignore_ascii_case(name))
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// A TLS client configuration trusting the certificates in `ca`, or the system's.
pub(crate) fn client_config(
    ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| format!("CA file {}: {e}", path.display());
            let certs =
                rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
            for cert in certs {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate of the system's store that rustls cannot use is skipped.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(
                    "no `ca` given and no trusted CA found in the system's store: set ca to the PEM file of the CAs that signed the upstream's certificate".into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One upstream directory.
pub struct Upstream {
    pub config: UpstreamConfig,
    tls: Arc<rustls::ClientConfig>,
    /// Checks running at once.
    slots: Arc<tokio::sync::Semaphore>,
    verifiers: Option<Verifiers>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("config", &self.config)
            .field("verifiers", &self.verifiers)
            .finish_non_exhaustive()
    }
}

/// What an upstream said of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The bind succeeded.
    Accepted,
    /// invalidCredentials: a wrong password, or (Active Directory's data codes in the message)
    /// an account disabled, locked, expired upstream.
    Rejected { detail: String },
    /// The upstream answered the bind with another failure code: not a wrong password, but no
    /// success either.
    Refused { code: u32, detail: String },
    /// No answer: connection, TLS, timeout, or the upstream busy or unavailable.
    Unreachable { error: String },
}

impl Upstream {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Binds to the upstream as `dn` with `password`: waits at most `timeout` for one of the
    /// upstream's slots, then at most `timeout` for connect, TLS and bind.
    pub async fn check(&self, dn: &str, password: &str) -> Verdict {
        let timeout = self.config.timeout;
        if password.is_empty() {
            // An empty password is an unauthenticated bind, which succeeds without checking
            // anything (RFC 4513 section 5.1.2): never sent.
            return Verdict::Rejected {
                detail: "empty password".into(),
            };
        }
        let _slot = match tokio::time::timeout(timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => {
                return Verdict::Unreachable {
                    error: "the upstream's check slots are closed".into(),
                }
            }
            Err(_) => {
                return Verdict::Unreachable {
                    error: format!(
                        "{} checks already running did not finish within {timeout:?}",
                        self.config.max_concurrent
                    ),
                }
            }
        };
        // The client library panics on some malformed answers: the check runs as a task of its
        // own, so that a broken upstream costs one verdict, not the client's session.
        let settings = ldap3::LdapConnSettings::new()
            .set_config(self.tls.clone())
            .set_starttls(self.config.starttls);
        let (url, dn, password) = (
            self.config.url.clone(),
            dn.to_string(),
            password.to_string(),
        );
        let mut task = tokio::spawn(async move { bind(settings, &url, &dn, &password).await });
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => Verdict::Unreachable {
                error: "the upstream's answer could not be read".into(),
            },
            Err(_) => {
                task.abort();
                Verdict::Unreachable {
                    error: format!("no answer within {timeout:?}"),
                }
            }
        }
    }

    /// The entry's verifier if the cache is on, it is young enough and it was made for the
    /// same upstream DN; another one is dropped.
    pub fn cached(&self, ndn: &NormDn, upstream_dn: &str) -> Option<Vec<u8>> {
        self.verifiers
            .as_ref()
            .and_then(|v| v.get(ndn, upstream_dn))
    }

    /// True if the cache is on.
    pub fn caches(&self) -> bool {
        self.verifiers.is_some()
    }

    /// Keeps `hash` (an argon2id hash of a password the upstream just accepted for
    /// `upstream_dn`) for `ndn`.
    pub fn remember(&self, ndn: &NormDn, upstream_dn: &str, hash: Vec<u8>) {
        if let Some(v) = &self.verifiers {
            v.put(ndn, upstream_dn, hash);
        }
    }

    /// Drops the verifier of `ndn` (the upstream refused a password for it).
    pub fn forget(&self, ndn: &NormDn) {
        if let Some(v) = &self.verifiers {
            v.remove(ndn);
        }
    }
}

/// Hashes of passwords an upstream accepted, per entry, with the time of the check; in memory
/// only, and never in `Debug` output.
struct Verifiers {
    max_age: Duration,
    map: Mutex<HashMap<NormDn, Verifier>>,
}

/// A hash of a password the upstream accepted for `upstream_dn`, at `at`.
struct Verifier {
    hash: Vec<u8>,
    upstream_dn: String,
    at: Instant,
}

impl std::fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifiers")
            .field("max_age", &self.max_age)
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl Verifiers {
    fn new(max_age: Duration) -> Verifiers {
        Verifiers {
            max_age,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NormDn, Verifier>> {
        // Hashes and times only: usable after a panic elsewhere.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, ndn: &NormDn, upstream_dn: &str) -> Option<Vec<u8>> {
        let mut map = self.lock();
        let v = map.get(ndn)?;
        if v.at.elapsed() <= self.max_age && v.upstream_dn == upstream_dn {
            return Some(v.hash.clone());
        }
        map.remove(ndn);
        None
    }

    fn put(&self, ndn: &NormDn, upstream_dn: &str, hash: Vec<u8>) {
        let mut map = self.lock();
        if map.len() >= MAX_VERIFIERS && !map.contains_key(ndn) {
            let max_age = self.max_age;
            map.retain(|_, v| v.at.elapsed() <= max_age);
            if map.len() >= MAX_VERIFIERS {
                // The oldest eighth goes at once, so that a full table is scanned once per
                // eighth of its size, not on every new verifier.
                let mut ages: Vec<(Instant, NormDn)> =
                    map.iter().map(|(k, v)| (v.at, k.clone())).collect();
                let cut = (ages.len() / 8).max(1);
                ages.select_nth_unstable_by_key(cut - 1, |(at, _)| *at);
                for (_, k) in ages.iter().take(cut) {
                    map.remove(k);
                }
            }
        }
        map.insert(
            ndn.clone(),
            Verifier {
                hash,
                upstream_dn: upstream_dn.to_string(),
                at: Instant::now(),
            },
        );
    }

    fn remove(&self, ndn: &NormDn) {
        self.lock().remove(ndn);
    }
}

/// Where a mapped entry's password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `rosterUpstream`: the sync job (and `[[upstream]]`) name.
    pub upstream: String,
    /// `rosterUpstreamDn`, if the entry has one.
    pub upstream_dn: Option<String>,
}

/// The mapping of a user entry that carries `rosterUpstream`; groups (which carry it too,
/// as the sync job maps them) never bind through an upstream.
pub fn mapping(dir: &Directory, entry: &Entry) -> Option<Mapping> {
    let is_group = dir.schema.attr_id("objectClass").is_some_and(|id| {
        entry.values_of(id).any(|v| {
            v.eq_ignore_ascii_case(b"rosterGroup") || v.eq_ignore_ascii_case(b"groupOfNames")
        })
    });
    if is_group {
        return None;
    }
    let first = |name: &str| -> Option<String> {
        let id = dir.schema.attr_id(name)?;
        entry
            .values_of(id)
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    Some(Mapping {
        upstream: first("rosterUpstream")?,
        upstream_dn: first("rosterUpstreamDn"),
    })
}

/// One bind to the upstream as `dn`, on a connection of its own.
async fn bind(settings: ldap3::LdapConnSettings, url: &str, dn: &str, password: &str) -> Verdict {
    let (conn, mut ldap) = match ldap3::LdapConnAsync::with_settings(settings, url).await {
        Ok(pair) => pair,
        Err(e) => {
            return Verdict::Unreachable {
                error: e.to_string(),
            }
        }
    };
    ldap3::drive!(conn);
    let verdict = match ldap.simple_bind(dn, password).await {
        Ok(res) => match res.rc {
            0 => Verdict::Accepted,
            49 => Verdict::Rejected { detail: res.text },
            // busy, unavailable, unwillingToPerform while it cannot serve: no verdict.
            51 | 52 => Verdict::Unreachable {
                error: format!("result {}: {}", res.rc, res.text),
            },
            code => Verdict::Refused {
                code,
                detail: res.text,
            },
        },
        Err(e) => Verdict::Unreachable {
            error: e.to_string(),
        },
    };
    // The connection served its one bind; its driver ends when the handle is gone.
    let _ = ldap.unbind().await;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls_urls() {
        assert_eq!(check_url("ldaps://dc1.corp.example.com"), Ok(false));
        assert_eq!(check_url("ldaps://dc1.corp.example.com:3269/"), Ok(false));
        assert_eq!(check_url("ldap://10.0.0.5:389"), Ok(true));
        for bad in [
            "ldapi:///run/slapd.sock",
            "http://dc1",
            "dc1.corp.example.com",
            "ldaps://",
            "ldaps://dc1:x",
            "ldaps://dc1/dc=corp",
            "ldaps://user@dc1",
            "ldap://[2001:db8::1]:389",
            "ldaps://[2001:db8::1]",
            "ldaps://dc1:",
            "ldaps://dc1:0",
            "ldaps://:636",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verifiers_age_and_stay_bounded() {
        let v = Verifiers::new(Duration::from_millis(50));
        let dn = |i: usize| NormDn::from_normalized(&format!("uid=u{i},dc=example,dc=com"));
        v.put(&dn(1), "CN=U1", b"hash".to_vec());
        assert_eq!(v.get(&dn(1), "CN=U1"), Some(b"hash".to_vec()));
        assert!(!format!("{v:?}").contains("hash"));
        // Another upstream DN (the entry now maps someone else): no verifier.
        assert_eq!(v.get(&dn(1), "CN=U2"), None);
        v.put(&dn(1), "CN=U1", b"hash".to_vec());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(v.get(&dn(1), "CN=U1"), None);
        let v = Verifiers::new(Duration::from_secs(3600));
        for i in 0..MAX_VERIFIERS + 10 {
            v.put(&dn(i), "CN=U", Vec::new());
        }
        assert!(v.lock().len() <= MAX_VERIFIERS);
        assert_eq!(v.get(&dn(0), "CN=U"), None, "the oldest went first");
        assert_eq!(v.get(&dn(MAX_VERIFIERS + 9), "CN=U"), Some(Vec::new()));
        v.remove(&dn(MAX_VERIFIERS + 9));
        assert_eq!(v.get(&dn(MAX_VERIFIERS + 9), "CN=U"), None);
    }
}
