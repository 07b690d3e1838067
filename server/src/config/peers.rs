//! The directories rosterd talks to as a client: providers it replicates from (`[[replica]]`)
//! and upstream directories that check mapped users' passwords (`[[upstream]]`), with their
//! validation and the durations their settings take.

use super::{ConfigError, Secret};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A provider (an RFC 4533 syncrepl provider: slapd with syncprov, or another rosterd) whose
/// content under `base` this server copies and keeps up to date (see `replica.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSection {
    /// A name for logs, metrics and the stored cookie.
    pub name: String,
    /// `ldaps://host[:port]`, or `ldap://host[:port]` with StartTLS.
    pub provider: String,
    /// With `ldap://` only: `false` talks to the provider without TLS, allowed only when the
    /// host is a loopback address.
    #[serde(default)]
    pub starttls: Option<bool>,
    /// CA certificates (PEM) the provider's certificate is checked against, relative to the
    /// config file; the system's trusted CAs when absent.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Who the replica binds as; anonymous when absent (then without `password_file`).
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file holding the bind password (one line), relative to the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The naming context copied: one of `directory.suffixes`.
    pub base: String,
    /// Which entries under `base` are copied.
    #[serde(default = "default_replica_filter")]
    pub filter: String,
    /// The first wait after a failure ("5s"); each further failure doubles it.
    #[serde(default = "default_replica_retry")]
    pub retry: String,
    /// The longest wait between attempts ("5m").
    #[serde(default = "default_replica_retry_max")]
    pub retry_max: String,
    /// How long connecting, TLS and the bind may take together ("10s").
    #[serde(default = "default_replica_timeout")]
    pub timeout: String,
    /// Where writes sent to this replica are referred (an LDAP URL); the provider's URL when
    /// absent.
    #[serde(default)]
    pub update_referral: Option<String>,
}

fn default_replica_filter() -> String {
    "(objectClass=*)".into()
}

fn default_replica_retry() -> String {
    "5s".into()
}

fn default_replica_retry_max() -> String {
    "5m".into()
}

fn default_replica_timeout() -> String {
    "10s".into()
}

/// Checks the `[[replica]]` tables: names unique, URLs with TLS (or plain on loopback when
/// asked), a base among the suffixes, one replica per base, durations that parse, a password
/// file that reads.
pub(super) fn replicas(
    specs: &[ReplicaSection],
    suffixes: &[String],
    base_dir: &Path,
) -> Result<Vec<ReplicaConfig>, ConfigError> {
    let mut out: Vec<ReplicaConfig> = Vec::new();
    for (i, r) in specs.iter().enumerate() {
        let name = r.name.trim();
        let at = if name.is_empty() {
            format!("replica #{}", i + 1)
        } else {
            format!("replica {name:?}")
        };
        let invalid = |m: String| ConfigError::Invalid(format!("{at}: {m}"));
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "name must be 1 to 64 letters, digits, '-', '_' or '.' (it labels metrics and the stored cookie)".into(),
            ));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            return Err(ConfigError::Invalid(format!(
                "replica {name:?} is configured twice (names are compared without case)"
            )));
        }
        let url = ProviderUrl::parse(&r.provider).map_err(|e| invalid(format!("provider: {e}")))?;
        let transport = match (url.tls, r.starttls) {
            (true, None | Some(true)) => Transport::Ldaps,
            (true, Some(false)) => {
                return Err(invalid(
                    "starttls applies to ldap:// providers; ldaps:// is TLS from the first byte"
                        .into(),
                ))
            }
            (false, None | Some(true)) => Transport::StartTls,
            (false, Some(false)) if url.is_loopback() => Transport::Plain,
            (false, Some(false)) => {
                return Err(invalid(format!(
                    "starttls = false is allowed only for a provider on this host (a loopback address), not {:?}: the bind password and every entry would cross the network in clear",
                    url.host
                )))
            }
        };
        let bind_password = match (&r.bind_dn, &r.password_file) {
            (Some(dn), Some(file)) => {
                if roster_schema::Dn::parse(dn).is_err() {
                    return Err(invalid(format!("bind_dn: {dn:?} is not a DN")));
                }
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| invalid(format!("password_file {}: {e}", path.display())))?;
                let pw = text.trim_end_matches(['\n', '\r']);
                if pw.is_empty() {
                    return Err(invalid(format!(
                        "password_file {}: the file is empty",
                        path.display()
                    )));
                }
                Some(Secret::new(pw))
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "bind_dn and password_file must be given together".into(),
                ))
            }
        };
        let base = r.base.trim();
        let Ok(base_dn) = roster_schema::Dn::parse(base) else {
            return Err(invalid(format!("base: {base:?} is not a DN")));
        };
        if !suffixes
            .iter()
            .any(|s| roster_schema::Dn::parse(s).is_ok_and(|d| same_dn_text(&d, &base_dn)))
        {
            return Err(invalid(format!(
                "base {base:?} must be one of directory.suffixes ({})",
                suffixes.join(", ")
            )));
        }
        if let Some(other) = out
            .iter()
            .find(|o| roster_schema::Dn::parse(&o.base).is_ok_and(|d| same_dn_text(&d, &base_dn)))
        {
            return Err(invalid(format!(
                "base {base:?} is already copied by replica {:?} (one replica per naming context)",
                other.name
            )));
        }
        if let Err(e) = ldap3_proto::parse_ldap_filter_str(&r.filter) {
            return Err(invalid(format!("filter {:?}: {e:?}", r.filter)));
        }
        let duration = |key: &str, text: &str| -> Result<Duration, ConfigError> {
            let d = parse_duration(text).map_err(|e| invalid(format!("{key}: {e}")))?;
            if d.is_zero() || d > MAX_REPLICA_WAIT {
                return Err(invalid(format!(
                    "{key} must be more than 0 and at most {}s, not {text:?}",
                    MAX_REPLICA_WAIT.as_secs()
                )));
            }
            Ok(d)
        };
        let retry = duration("retry", &r.retry)?;
        let retry_max = duration("retry_max", &r.retry_max)?;
        if retry_max < retry {
            return Err(invalid(format!(
                "retry_max ({:?}) must be at least retry ({:?})",
                r.retry_max, r.retry
            )));
        }
        let timeout = duration("timeout", &r.timeout)?;
        let update_referral = r.update_referral.clone().unwrap_or(r.provider.clone());
        if !(update_referral.starts_with("ldap://") || update_referral.starts_with("ldaps://"))
            || update_referral.contains(char::is_whitespace)
        {
            return Err(invalid(format!(
                "update_referral {update_referral:?} must be an ldap:// or ldaps:// URL"
            )));
        }
        out.push(ReplicaConfig {
            name: name.to_string(),
            provider: r.provider.clone(),
            host: url.host,
            port: url.port,
            transport,
            ca: r.ca.as_ref().map(|p| base_dir.join(p)),
            bind_dn: r.bind_dn.clone(),
            bind_password,
            base: base.to_string(),
            filter: r.filter.clone(),
            retry,
            retry_max,
            timeout,
            update_referral,
        });
    }
    Ok(out)
}

/// The longest replica retry or timeout that can be configured.
const MAX_REPLICA_WAIT: Duration = Duration::from_secs(24 * 3600);

/// True if two parsed DNs are the same text but for case and spaces (the schema that
/// normalizes them is not loaded yet; `Directory::open` compares normalized forms again).
fn same_dn_text(a: &roster_schema::Dn, b: &roster_schema::Dn) -> bool {
    let flat = |d: &roster_schema::Dn| d.to_string().replace(' ', "").to_ascii_lowercase();
    flat(a) == flat(b)
}

/// An upstream directory (Active Directory, eDirectory, another LDAP server) that checks the
/// passwords of the users a `roster sync` job maps from it (see `upstream.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// The sync job's name, as mapped entries carry it in `rosterUpstream`.
    pub name: String,
    /// `ldaps://host[:port]`, or `ldap://host[:port]` which always uses StartTLS.
    pub url: String,
    /// CA certificates (PEM) the upstream's certificate is checked against, relative to the
    /// config file; the system's trusted CAs when absent.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long connecting, TLS and the bind may take together ("5s").
    #[serde(default = "default_upstream_timeout")]
    pub timeout: String,
    /// Password checks sent to this upstream at once; more wait (at most `timeout`).
    #[serde(default = "default_upstream_max_concurrent")]
    pub max_concurrent: usize,
    /// How long a password the upstream accepted may still be accepted from memory while the
    /// upstream cannot be reached ("12h"); off when absent.
    #[serde(default)]
    pub cache_max_age: Option<String>,
    /// Who besides the root DN and the global admins may map entries to this upstream (write
    /// `rosterUpstream`, `rosterUpstreamDn` or `rosterUpstreamId` naming it): the sync job's
    /// account. Whoever writes them decides where a user's password is sent.
    #[serde(default)]
    pub writers: Vec<String>,
}

fn default_upstream_timeout() -> String {
    "5s".into()
}

fn default_upstream_max_concurrent() -> usize {
    16
}

/// The longest upstream timeout that can be configured: a bind waits for it.
const MAX_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

/// A duration written as a number and a unit, or several ("500ms", "5s", "30m", "12h", "7d",
/// "1h30m").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{text:?} is not a duration such as \"500ms\", \"5s\", \"30m\", \"12h\" or \"7d\"")
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = tail;
    }
    Ok(total)
}

/// Checks the `[[upstream]]` tables: names unique, URLs with TLS, durations that parse.
pub(super) fn upstreams(
    specs: &[UpstreamSection],
    base: &Path,
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let mut out: Vec<UpstreamConfig> = Vec::new();
    for (i, u) in specs.iter().enumerate() {
        let name = u.name.trim();
        let at = if name.is_empty() {
            format!("upstream #{}", i + 1)
        } else {
            format!("upstream {name:?}")
        };
        let invalid = |m: String| ConfigError::Invalid(format!("{at}: {m}"));
        if name.is_empty() || name.len() > 64 || name != u.name {
            return Err(invalid(
                "name must be the sync job's name as mapped entries carry it in rosterUpstream (1 to 64 characters, no surrounding spaces)".into(),
            ));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            return Err(ConfigError::Invalid(format!(
                "upstream {name:?} is configured twice (names are compared without case)"
            )));
        }
        let starttls = check_url(&u.url).map_err(invalid)?;
        let timeout = parse_duration(&u.timeout).map_err(|e| invalid(format!("timeout: {e}")))?;
        if timeout.is_zero() || timeout > MAX_UPSTREAM_TIMEOUT {
            return Err(invalid(format!(
                "timeout must be more than 0 and at most {}s, not {:?}",
                MAX_UPSTREAM_TIMEOUT.as_secs(),
                u.timeout
            )));
        }
        if u.max_concurrent == 0 {
            return Err(invalid("max_concurrent must be at least 1".into()));
        }
        let cache_max_age = match &u.cache_max_age {
            Some(text) => {
                let age =
                    parse_duration(text).map_err(|e| invalid(format!("cache_max_age: {e}")))?;
                if age.is_zero() {
                    return Err(invalid(
                        "cache_max_age must be more than 0 (leave it out to turn the cache off)"
                            .into(),
                    ));
                }
                Some(age)
            }
            None => None,
        };
        for w in &u.writers {
            if roster_schema::Dn::parse(w).is_err() {
                return Err(invalid(format!("writers: {w:?} is not a DN")));
            }
        }
        out.push(UpstreamConfig {
            writers: u.writers.clone(),
            name: name.to_string(),
            url: u.url.clone(),
            starttls,
            ca: u.ca.as_ref().map(|p| base.join(p)),
            timeout,
            max_concurrent: u.max_concurrent.min(tokio::sync::Semaphore::MAX_PERMITS),
            cache_max_age,
        });
    }
    Ok(out)
}

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
    pub bind_password: Option<Secret>,
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

/// One `[[upstream]]` table, validated (see `config.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    pub url: String,
    /// `ldap://`: StartTLS before the bind.
    pub starttls: bool,
    /// The CAs to trust (PEM); the system's when `None`.
    pub ca: Option<PathBuf>,
    pub timeout: Duration,
    pub max_concurrent: usize,
    /// The cached verifier's longest age; no cache when `None`.
    pub cache_max_age: Option<Duration>,
    /// DNs (as written) that may map entries to this upstream, besides the root DN and the
    /// global admins.
    pub writers: Vec<String>,
}

/// Checks an upstream URL: `ldaps://host[:port]` (false) or `ldap://host[:port]` (true:
/// StartTLS). Passwords never travel to an upstream in clear.
pub fn check_url(url: &str) -> Result<bool, String> {
    if !(url.starts_with("ldaps://") || url.starts_with("ldap://")) {
        return Err(format!(
            "url {url:?} must start with ldaps:// (TLS) or ldap:// (then always StartTLS): passwords never go to an upstream in clear"
        ));
    }
    // The same form as a replica's provider; its messages start with the URL.
    ProviderUrl::parse(url)
        .map(|u| !u.tls)
        .map_err(|e| format!("url {e}"))
}
