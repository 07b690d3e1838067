//! Configuration: one typed struct built from defaults, then the TOML file, then command-line
//! overrides. Unknown keys are an error at start, not a surprise later. The raw file form
//! (`ConfigFile`) and the validated runtime settings (`Settings`) are two different types.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file as written, every section optional.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub directory: DirectorySection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub security: SecuritySection,
    #[serde(default)]
    pub access: AccessSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub mail: MailSection,
    /// Password rules per domain (`[[password_policy]]`).
    #[serde(default)]
    pub password_policy: Vec<crate::password::Policy>,
    /// Search limits per identity (`[[limits]]`), first match wins.
    #[serde(default)]
    pub limits: Vec<LimitsSpec>,
    #[serde(default)]
    pub log: LogSection,
    /// Directories that check the passwords of mapped users (`[[upstream]]`).
    #[serde(default)]
    pub upstream: Vec<UpstreamSection>,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Providers this server is a read-only replica of (`[[replica]]`), one per naming context.
    #[serde(default)]
    pub replica: Vec<ReplicaSection>,
}

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
fn replicas(
    specs: &[ReplicaSection],
    suffixes: &[String],
    base_dir: &Path,
) -> Result<Vec<crate::replica::ReplicaConfig>, ConfigError> {
    use crate::replica::{ProviderUrl, ReplicaConfig, Transport};
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

/// Prometheus metrics over HTTP (see `metrics.rs`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where to serve `GET /metrics` ("127.0.0.1:9389"); off without.
    #[serde(default)]
    pub listen: Option<String>,
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
fn upstreams(
    specs: &[UpstreamSection],
    base: &Path,
) -> Result<Vec<crate::upstream::UpstreamConfig>, ConfigError> {
    let mut out: Vec<crate::upstream::UpstreamConfig> = Vec::new();
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
        let starttls = crate::upstream::check_url(&u.url).map_err(invalid)?;
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
        out.push(crate::upstream::UpstreamConfig {
            writers: u.writers.clone(),
            name: name.to_string(),
            url: u.url.clone(),
            starttls,
            ca: u.ca.as_ref().map(|p| base.join(p)),
            timeout,
            max_concurrent: u.max_concurrent,
            cache_max_age,
        });
    }
    Ok(out)
}

/// Search limits for the clients a subject (as in access rules) matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub who: String,
    /// Entries one search returns at most (0: unlimited); the default applies when absent.
    #[serde(default)]
    pub size_limit: Option<u32>,
    /// Seconds one search may run (0: unlimited); the default applies when absent.
    #[serde(default)]
    pub time_limit_secs: Option<u32>,
}

/// Services for mail servers (see `policy.rs`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    /// Where the Postfix policy service listens (for example "127.0.0.1:10040"); off without.
    #[serde(default)]
    pub policy_listen: Option<String>,
}

/// The audit log (see `audit.rs`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// A file to append JSON lines to, relative to the data directory (it belongs with the
    /// data, and follows `--data-dir`); without it, audit lines go to the server log under the
    /// target `audit`.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// Access control (see `access.rs`): custom rules first, then the built-in policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// "mail" (the built-in mail directory policy after the custom rules) or "custom" (the
    /// custom rules alone).
    #[serde(default = "default_policy")]
    pub policy: String,
    /// A group whose members (nested too) manage every domain.
    #[serde(default)]
    pub global_admins: Option<String>,
    /// The group whose members manage a domain, `{suffix}` standing for the domain.
    #[serde(default = "default_domain_admins")]
    pub domain_admins: String,
    /// Where service accounts (mail servers, sync jobs) live; with `{suffix}` (the default)
    /// each reads its own domain.
    #[serde(default = "default_services")]
    pub services: String,
    /// Where service accounts that read every domain live (for a mail server serving all
    /// domains); only global admins manage them.
    #[serde(default)]
    pub global_services: Option<String>,
    /// What service accounts read.
    #[serde(default = "crate::access::default_service_attributes")]
    pub service_attributes: Vec<String>,
    /// Rules evaluated before the built-in policy, first match wins.
    #[serde(default)]
    pub rule: Vec<crate::access::RuleSpec>,
    /// Identities of replication consumers (RFC 4533): they read every entry and attribute,
    /// password hashes included, and can change nothing.
    #[serde(default)]
    pub replicators: Vec<String>,
}

impl Default for AccessSection {
    fn default() -> Self {
        AccessSection {
            policy: default_policy(),
            global_admins: None,
            domain_admins: default_domain_admins(),
            services: default_services(),
            global_services: None,
            service_attributes: crate::access::default_service_attributes(),
            rule: Vec::new(),
            replicators: Vec::new(),
        }
    }
}

fn default_policy() -> String {
    "mail".into()
}

fn default_domain_admins() -> String {
    "cn=admins,ou=groups,{suffix}".into()
}

fn default_services() -> String {
    "ou=services,{suffix}".into()
}

/// Who may send what.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// Where a password may travel over a connection without TLS (simple binds, Password
    /// Modify): "loopback" (clients on this host only), "anywhere", or "never". Elsewhere the
    /// request is refused with confidentialityRequired.
    #[serde(default = "default_plain_passwords")]
    pub plain_passwords: String,
    /// Failed binds in a row to one account from one address after which that account's
    /// binds from that address are refused for a while; 0: off.
    #[serde(default = "default_lockout_threshold")]
    pub lockout_threshold: u32,
    /// Failed binds in a row to one account from all addresses together after which the
    /// account is refused from everywhere (guessers spread over many addresses); 0: off. The
    /// root DN is never locked this way.
    #[serde(default = "default_lockout_account_threshold")]
    pub lockout_account_threshold: u32,
    /// Failed binds from one address that is not a trusted proxy, whatever names they try,
    /// after which its binds are spaced out (1 s apart, doubling to 16 s); 0: off.
    #[serde(default = "default_lockout_threshold")]
    pub lockout_address_throttle: u32,
    /// The same count after which binds from that address are refused for a while; 0: off.
    /// The count forgets one failure a minute, and a successful bind does not reset it.
    #[serde(default = "default_lockout_address_threshold")]
    pub lockout_address_threshold: u32,
    /// Addresses (CIDR, or single addresses) of hosts that bind on behalf of many users, such
    /// as Dovecot, webmail or Postfix: their failures count per account only.
    #[serde(default = "default_trusted_proxies")]
    pub trusted_proxies: Vec<String>,
    /// Let the root DN read `userPassword` values over LDAP, as slapd does (for migration
    /// tools that copy hashes); by default nobody reads them and backups use `rosterd dump`.
    #[serde(default)]
    pub root_reads_passwords: bool,
    /// The first lock's length in seconds; each further lock doubles it.
    #[serde(default = "default_lockout_secs")]
    pub lockout_secs: u64,
    /// The longest lock, in seconds.
    #[serde(default = "default_lockout_max_secs")]
    pub lockout_max_secs: u64,
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection {
            plain_passwords: default_plain_passwords(),
            lockout_threshold: default_lockout_threshold(),
            lockout_account_threshold: default_lockout_account_threshold(),
            lockout_address_throttle: default_lockout_threshold(),
            lockout_address_threshold: default_lockout_address_threshold(),
            trusted_proxies: default_trusted_proxies(),
            root_reads_passwords: false,
            lockout_secs: default_lockout_secs(),
            lockout_max_secs: default_lockout_max_secs(),
        }
    }
}

fn default_lockout_threshold() -> u32 {
    10
}

fn default_lockout_account_threshold() -> u32 {
    30
}

fn default_lockout_address_threshold() -> u32 {
    50
}

fn default_trusted_proxies() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

/// The longest lock that can be configured (a year).
const MAX_LOCK_SECS: u64 = 366 * 24 * 3600;

fn default_lockout_secs() -> u64 {
    60
}

fn default_lockout_max_secs() -> u64 {
    3600
}

fn default_plain_passwords() -> String {
    "loopback".into()
}

/// Where a password may be sent without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainPasswords {
    Loopback,
    Anywhere,
    Never,
}

impl PlainPasswords {
    /// True if a password from `peer` over a connection without TLS is accepted.
    pub fn allows(self, peer: std::net::IpAddr) -> bool {
        match self {
            PlainPasswords::Anywhere => true,
            PlainPasswords::Never => false,
            PlainPasswords::Loopback => {
                peer.is_loopback()
                    || matches!(peer, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
            }
        }
    }
}

/// TLS: StartTLS on the plain listener and an optional LDAPS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Offer TLS at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address of the LDAPS listener (TLS from the first byte); none when absent.
    #[serde(default)]
    pub listen: Option<String>,
    /// The server's certificate chain and private key (PEM), relative to the config file. When
    /// both are absent, a private CA and a localhost certificate are generated in the data
    /// directory (`tls/`) on first start.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) client certificates are checked against; clients are not asked
    /// for one when absent.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            enabled: true,
            listen: None,
            cert: None,
            key: None,
            client_ca: None,
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the plain LDAP listener.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The data directory; relative paths are relative to the config file's directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Connections served at once; further connections wait in the accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one source address may hold at once; more are closed at once (0: no cap).
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Largest LDAP message a bound client may send, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Largest LDAP message an anonymous client may send, in bytes (binds and searches are
    /// small; this keeps unauthenticated clients from making the server buffer megabytes).
    #[serde(default = "default_max_message_bytes_anonymous")]
    pub max_message_bytes_anonymous: usize,
    /// Searches running at once on blocking threads, across all clients; small searches
    /// (a base entry, an indexed equality) do not count.
    #[serde(default = "default_max_concurrent_searches")]
    pub max_concurrent_searches: usize,
    /// Password checks and hashes (binds, Password Modify, writes of userPassword) running at
    /// once across all clients; more wait. Each argon2 check takes about 19 MiB.
    #[serde(default = "default_max_concurrent_binds")]
    pub max_concurrent_binds: usize,
    /// Deepest BER nesting accepted (bounds filter nesting).
    #[serde(default = "default_max_ber_depth")]
    pub max_ber_depth: usize,
    /// Seconds a connection may stay idle before it is closed; 0 keeps idle connections open.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// The same for a connection that has not bound (at most `idle_timeout_secs`): idle
    /// anonymous connections only hold connection slots.
    #[serde(default = "default_idle_timeout_unbound_secs")]
    pub idle_timeout_unbound_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            data_dir: default_data_dir(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_message_bytes: default_max_message_bytes(),
            max_message_bytes_anonymous: default_max_message_bytes_anonymous(),
            max_concurrent_searches: default_max_concurrent_searches(),
            max_ber_depth: default_max_ber_depth(),
            max_concurrent_binds: default_max_concurrent_binds(),
            idle_timeout_secs: default_idle_timeout_secs(),
            idle_timeout_unbound_secs: default_idle_timeout_unbound_secs(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    /// Naming contexts served; each is the root of a tree and may be added without a parent.
    #[serde(default = "default_suffixes")]
    pub suffixes: Vec<String>,
    /// The administrator DN; it need not exist as an entry.
    #[serde(default)]
    pub root_dn: Option<String>,
    /// The administrator password, in clear or as a `{SCHEME}` hash.
    #[serde(default)]
    pub root_password: Option<Secret>,
    /// Extra schema files (`.schema` or `cn=schema` `.ldif`), relative to the config file.
    #[serde(default)]
    pub schema_files: Vec<PathBuf>,
    /// Entries returned by one search at most, unless the client asks for fewer; 0 is unlimited.
    /// The root DN is not limited.
    #[serde(default = "default_size_limit")]
    pub size_limit: u32,
    /// Seconds one search may run at most, unless the client asks for less; 0 is unlimited.
    #[serde(default = "default_time_limit")]
    pub time_limit_secs: u32,
    /// DN-valued attributes kept referentially intact: deleting or renaming an entry removes
    /// or rewrites these values wherever they name it, in the same transaction.
    #[serde(default = "default_integrity_attributes")]
    pub integrity_attributes: Vec<String>,
    /// The scheme clear passwords are stored in: ARGON2 (argon2id, the default),
    /// PBKDF2-SHA256, CRYPT (SHA-512 crypt), SSHA512, SSHA256 or SSHA. Values that already carry
    /// a `{SCHEME}` are stored as given.
    #[serde(default = "default_password_scheme")]
    pub password_scheme: String,
}

impl Default for DirectorySection {
    fn default() -> Self {
        DirectorySection {
            suffixes: default_suffixes(),
            root_dn: None,
            root_password: None,
            schema_files: Vec::new(),
            size_limit: default_size_limit(),
            time_limit_secs: default_time_limit(),
            integrity_attributes: default_integrity_attributes(),
            password_scheme: default_password_scheme(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// `sync`: a write is acknowledged once it is on disk; `buffer`: once the OS has it.
    #[serde(default = "default_durability")]
    pub durability: String,
    /// Index kinds per attribute: any of `eq`, `pres`, `sub`.
    #[serde(default = "default_indexes")]
    pub indexes: BTreeMap<String, Vec<String>>,
    /// Change log records kept for replication consumers that were away (RFC 4533 cookies
    /// older than the oldest record get the whole content instead of the changes).
    #[serde(default = "default_change_log")]
    pub change_log: u64,
}

fn default_change_log() -> u64 {
    roster_storage::DEFAULT_CHANGE_LOG
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            durability: default_durability(),
            indexes: default_indexes(),
            change_log: default_change_log(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// A tracing filter such as `info` or `rosterd=debug,info`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: default_log_level(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:3389".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_idle_timeout_unbound_secs() -> u64 {
    60
}

fn default_max_concurrent_binds() -> usize {
    4
}

fn default_idle_timeout_secs() -> u64 {
    900
}

fn default_max_connections_per_address() -> usize {
    1024
}

fn default_max_connections() -> usize {
    4096
}
fn default_max_message_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_max_message_bytes_anonymous() -> usize {
    256 * 1024
}
fn default_max_concurrent_searches() -> usize {
    16
}
fn default_max_ber_depth() -> usize {
    64
}
fn default_suffixes() -> Vec<String> {
    vec!["dc=example,dc=com".into()]
}
fn default_size_limit() -> u32 {
    500
}
fn default_time_limit() -> u32 {
    3600
}
fn default_password_scheme() -> String {
    "ARGON2".into()
}

fn default_integrity_attributes() -> Vec<String> {
    vec!["member".into()]
}

fn default_durability() -> String {
    "sync".into()
}
fn default_log_level() -> String {
    // The codec logs every malformed client message as an error; the session logs those itself.
    "info,fjall=warn,lsm_tree=warn,ldap3_proto=off".into()
}
fn default_indexes() -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    m.insert("objectClass".into(), vec!["eq".into()]);
    for a in ["uid", "mail", "cn"] {
        m.insert(a.into(), vec!["eq".into(), "sub".into()]);
    }
    for a in [
        "member",
        "mailLocalAddress",
        "associatedDomain",
        "entryUUID",
    ] {
        m.insert(a.into(), vec!["eq".into()]);
    }
    m
}

/// A password from the configuration: kept out of `Debug` output and so out of logs.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub ldaps_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// Validated runtime settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The group whose members manage every domain (`access.global_admins`).
    pub global_admins: Option<String>,
    /// Replication consumers' DNs (`access.replicators`).
    pub replicators: Vec<String>,
    /// Where the Postfix policy service listens, if anywhere.
    pub policy_listen: Option<SocketAddr>,
    /// Where the metrics are served over HTTP (`[metrics] listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Whether global admins and the root DN create naming contexts by adding a domain entry
    /// outside the existing ones (with the built-in mail policy).
    pub runtime_domains: bool,
    pub data_dir: PathBuf,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_message_bytes: usize,
    pub max_message_bytes_anonymous: usize,
    pub max_concurrent_searches: usize,
    pub max_ber_depth: usize,
    pub max_concurrent_binds: usize,
    pub idle_timeout: Option<Duration>,
    pub idle_timeout_unbound: Option<Duration>,
    pub suffixes: Vec<String>,
    pub root_dn: Option<String>,
    pub root_password: Option<Secret>,
    pub schema_files: Vec<PathBuf>,
    pub size_limit: Option<u32>,
    pub time_limit: Option<Duration>,
    pub sync_writes: bool,
    /// Change log records kept (`storage.change_log`).
    pub change_log: u64,
    pub indexes: Vec<roster_storage::IndexSpec>,
    pub integrity_attributes: Vec<String>,
    pub password_scheme: crate::password::Scheme,
    /// TLS on (StartTLS), with these files (`None`: generated in the data directory).
    pub tls_enabled: bool,
    pub tls_files: Option<crate::tls::TlsFiles>,
    pub tls_client_ca: Option<PathBuf>,
    pub ldaps_listen: Option<SocketAddr>,
    pub plain_passwords: PlainPasswords,
    pub root_reads_passwords: bool,
    pub lockout: crate::lockout::LockoutConfig,
    pub audit_file: Option<PathBuf>,
    pub password_policies: Vec<crate::password::Policy>,
    pub limits: Vec<LimitsSpec>,
    /// The access rules in evaluation order (custom, then built-in).
    pub access_rules: Vec<crate::access::RuleSpec>,
    pub log_level: String,
    /// The upstream directories that check mapped users' passwords (`[[upstream]]`).
    pub upstreams: Vec<crate::upstream::UpstreamConfig>,
    /// The providers this server is a read-only replica of (`[[replica]]`).
    pub replicas: Vec<crate::replica::ReplicaConfig>,
}

impl Settings {
    /// Reads `path` (or only defaults when `None`) and applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let (file, base) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (file, base)
            }
            None => (ConfigFile::default(), PathBuf::new()),
        };
        Settings::from_file(file, &base, overrides)
    }

    pub fn from_file(
        file: ConfigFile,
        base: &Path,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let listen_str = overrides.listen.clone().unwrap_or(file.server.listen);
        let listen: SocketAddr = listen_str
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("server.listen {listen_str:?}: {e}")))?;
        let data_dir = match &overrides.data_dir {
            Some(d) => d.clone(),
            None => base.join(&file.server.data_dir),
        };
        if file.directory.suffixes.is_empty() {
            return Err(ConfigError::Invalid(
                "directory.suffixes must name at least one naming context".into(),
            ));
        }
        if file.directory.root_dn.is_some() != file.directory.root_password.is_some() {
            return Err(ConfigError::Invalid(
                "directory.root_dn and directory.root_password must be given together".into(),
            ));
        }
        let ldaps_listen = match overrides.ldaps_listen.clone().or(file.tls.listen.clone()) {
            Some(a) => Some(
                a.parse()
                    .map_err(|e| ConfigError::Invalid(format!("tls.listen {a:?}: {e}")))?,
            ),
            None => None,
        };
        let tls_client_ca = file.tls.client_ca.as_ref().map(|p| base.join(p));
        let tls_files = match (&file.tls.cert, &file.tls.key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: base.join(cert),
                key: base.join(key),
                client_ca: tls_client_ca.clone(),
                generated_ca: None,
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls.cert and tls.key must be given together".into(),
                ))
            }
        };
        if ldaps_listen.is_some() && !file.tls.enabled {
            return Err(ConfigError::Invalid("tls.listen needs tls.enabled".into()));
        }
        let plain_passwords = match file.security.plain_passwords.as_str() {
            "loopback" => PlainPasswords::Loopback,
            "anywhere" => PlainPasswords::Anywhere,
            "never" => PlainPasswords::Never,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "security.plain_passwords must be \"loopback\", \"anywhere\" or \"never\", not {other:?}"
                )))
            }
        };
        let mut trusted = Vec::new();
        for t in &file.security.trusted_proxies {
            let net = t
                .parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "security.trusted_proxies: {t:?} is neither an address nor a CIDR network such as \"192.0.2.0/24\""
                    ))
                })?;
            trusted.push(net);
        }
        let mut access_rules = file.access.rule.clone();
        match file.access.policy.as_str() {
            "mail" => access_rules.extend(crate::access::mail_rules(&crate::access::MailPolicy {
                global_admins: file.access.global_admins.clone(),
                domain_admins: file.access.domain_admins.clone(),
                services: file.access.services.clone(),
                global_services: file.access.global_services.clone(),
                service_attributes: file.access.service_attributes.clone(),
            })),
            "custom" => {}
            other => {
                return Err(ConfigError::Invalid(format!(
                    "access.policy must be \"mail\" or \"custom\", not {other:?}"
                )))
            }
        }
        let password_scheme = file
            .directory
            .password_scheme
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("directory.password_scheme: {e}")))?;
        let sync_writes = match file.storage.durability.as_str() {
            "sync" => true,
            "buffer" => false,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "storage.durability must be \"sync\" or \"buffer\", not {other:?}"
                )))
            }
        };
        let mut indexes = Vec::new();
        for (attr, kinds) in &file.storage.indexes {
            let mut spec = roster_storage::IndexSpec {
                attr: attr.clone(),
                equality: false,
                presence: false,
                substring: false,
            };
            for k in kinds {
                match k.as_str() {
                    "eq" => spec.equality = true,
                    "pres" => spec.presence = true,
                    "sub" => spec.substring = true,
                    other => {
                        return Err(ConfigError::Invalid(format!(
                            "storage.indexes.{attr}: unknown index kind {other:?} (use eq, pres or sub)"
                        )))
                    }
                }
            }
            indexes.push(spec);
        }
        if file.server.max_message_bytes < 1024 || file.server.max_message_bytes_anonymous < 1024 {
            return Err(ConfigError::Invalid(
                "server.max_message_bytes and server.max_message_bytes_anonymous must be at least 1024".into(),
            ));
        }
        let upstreams = upstreams(&file.upstream, base)?;
        let replicas = replicas(&file.replica, &file.directory.suffixes, base)?;
        if !replicas.is_empty()
            && !indexes
                .iter()
                .any(|i| i.attr.eq_ignore_ascii_case("entryUUID") && i.equality)
        {
            // A replica finds the provider's entries by entryUUID.
            match indexes
                .iter_mut()
                .find(|i| i.attr.eq_ignore_ascii_case("entryUUID"))
            {
                Some(i) => i.equality = true,
                None => indexes.push(roster_storage::IndexSpec {
                    attr: "entryUUID".into(),
                    equality: true,
                    presence: false,
                    substring: false,
                }),
            }
        }
        Ok(Settings {
            listen,
            upstreams,
            replicas,
            global_admins: file.access.global_admins.clone(),
            replicators: file.access.replicators.clone(),
            runtime_domains: file.access.policy == "mail",
            policy_listen: match &file.mail.policy_listen {
                Some(a) => Some(a.parse().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "mail.policy_listen: {a:?} is not an address and port such as \"127.0.0.1:10040\""
                    ))
                })?),
                None => None,
            },
            metrics_listen: match &file.metrics.listen {
                Some(a) => Some(a.parse().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "metrics.listen: {a:?} is not an address and port such as \"127.0.0.1:9389\""
                    ))
                })?),
                None => None,
            },
            audit_file: file.audit.file.as_ref().map(|p| data_dir.join(p)),
            data_dir,
            change_log: file.storage.change_log,
            max_connections: file.server.max_connections.max(1),
            max_connections_per_address: file.server.max_connections_per_address,
            max_message_bytes: file.server.max_message_bytes,
            max_message_bytes_anonymous: file.server.max_message_bytes_anonymous,
            max_concurrent_searches: file.server.max_concurrent_searches.max(1),
            max_ber_depth: file.server.max_ber_depth.max(8),
            max_concurrent_binds: file.server.max_concurrent_binds.max(1),
            idle_timeout: (file.server.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(file.server.idle_timeout_secs)),
            idle_timeout_unbound: match (
                file.server.idle_timeout_secs,
                file.server.idle_timeout_unbound_secs,
            ) {
                (0, 0) => None,
                (0, u) => Some(Duration::from_secs(u)),
                (i, 0) => Some(Duration::from_secs(i)),
                (i, u) => Some(Duration::from_secs(i.min(u))),
            },
            suffixes: file.directory.suffixes,
            root_dn: file.directory.root_dn,
            root_password: file.directory.root_password,
            schema_files: file
                .directory
                .schema_files
                .iter()
                .map(|p| base.join(p))
                .collect(),
            size_limit: (file.directory.size_limit > 0).then_some(file.directory.size_limit),
            time_limit: (file.directory.time_limit_secs > 0)
                .then(|| Duration::from_secs(u64::from(file.directory.time_limit_secs))),
            sync_writes,
            indexes,
            integrity_attributes: file.directory.integrity_attributes,
            password_scheme,
            tls_enabled: file.tls.enabled,
            tls_files,
            tls_client_ca,
            ldaps_listen,
            plain_passwords,
            root_reads_passwords: file.security.root_reads_passwords,
            lockout: crate::lockout::LockoutConfig {
                threshold: file.security.lockout_threshold,
                account_threshold: file.security.lockout_account_threshold,
                address_throttle: file.security.lockout_address_throttle,
                address_threshold: file.security.lockout_address_threshold,
                trusted,
                // At most a year: a lock's end must stay a representable instant.
                base: Duration::from_secs(file.security.lockout_secs.min(MAX_LOCK_SECS)),
                max: Duration::from_secs(
                    file.security
                        .lockout_max_secs
                        .max(file.security.lockout_secs)
                        .min(MAX_LOCK_SECS),
                ),
            },
            access_rules,
            password_policies: file.password_policy,
            limits: file.limits,
            log_level: file.log.level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<ConfigFile>("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n");
        assert!(err.is_err());
    }

    #[test]
    fn overrides_win_over_file() {
        let file: ConfigFile = toml::from_str("[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2".into()),
            data_dir: Some("/tmp/x".into()),
            ..Overrides::default()
        };
        let s = Settings::from_file(file, Path::new("/etc"), &o).unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_index_kind_is_named() {
        let file: ConfigFile =
            toml::from_str("[storage.indexes]\nmail = [\"eq\", \"subs\"]\n").unwrap();
        let e = Settings::from_file(file, Path::new(""), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("storage.indexes.mail"), "{e}");
    }

    fn upstream_error(text: &str) -> String {
        let file: ConfigFile = toml::from_str(text).unwrap();
        Settings::from_file(file, Path::new("/etc/roster"), &Overrides::default())
            .unwrap_err()
            .to_string()
    }

    /// Settings from `text` with the config file in `dir`.
    fn replica_settings(dir: &Path, text: &str) -> Result<Settings, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Settings::from_file(file, dir, &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn replicas_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let head = "[directory]\nsuffixes = [\"dc=example,dc=com\", \"dc=other,dc=org\"]\n[storage.indexes]\nmail = [\"eq\"]\n";
        let good = "[[replica]]\nname = \"main\"\nprovider = \"ldap://ldap1.example.com\"\nca = \"ca.pem\"\nbind_dn = \"cn=replicator,dc=example,dc=com\"\npassword_file = \"pw\"\nbase = \"DC=Example, dc=com\"\n";
        let s = replica_settings(dir.path(), &format!("{head}{good}")).unwrap();
        let [r] = s.replicas.as_slice() else {
            panic!("one replica expected");
        };
        assert_eq!(r.transport, crate::replica::Transport::StartTls);
        assert_eq!((r.host.as_str(), r.port), ("ldap1.example.com", 389));
        assert_eq!(r.bind_password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(r.filter, "(objectClass=*)");
        assert_eq!(
            (r.retry, r.retry_max, r.timeout),
            (
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(10)
            )
        );
        assert_eq!(r.update_referral, "ldap://ldap1.example.com");
        assert_eq!(r.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
        // The entryUUID equality index is added when the configuration lacks it.
        assert!(s
            .indexes
            .iter()
            .any(|i| i.attr == "entryUUID" && i.equality));

        let plain = "[[replica]]\nname = \"p\"\nprovider = \"ldap://127.0.0.1:3890\"\nstarttls = false\nbase = \"dc=other,dc=org\"\nretry = \"1s\"\nretry_max = \"10s\"\nupdate_referral = \"ldap://master.example.org\"\n";
        let s = replica_settings(dir.path(), &format!("{head}{plain}")).unwrap();
        assert_eq!(
            s.replicas.first().map(|r| r.transport),
            Some(crate::replica::Transport::Plain)
        );

        let bad = |extra: &str, want: &[&str]| {
            let e = replica_settings(dir.path(), &format!("{head}{extra}")).unwrap_err();
            for w in want {
                assert!(e.contains(w), "{w:?} not in {e}");
            }
        };
        bad(
            &good.replace("ldap://ldap1", "ldapi://ldap1"),
            &["replica \"main\"", "provider"],
        );
        bad(
            &format!("{good}starttls = false\n"),
            &["starttls = false", "loopback"],
        );
        bad(
            &good.replace("DC=Example, dc=com", "dc=nowhere"),
            &["base", "directory.suffixes"],
        );
        bad(&format!("{good}{good}"), &["configured twice"]);
        bad(
            &format!("{good}{}", good.replace("\"main\"", "\"second\"")),
            &["already copied by replica \"main\""],
        );
        bad(
            &good.replace("password_file = \"pw\"\n", ""),
            &["bind_dn and password_file"],
        );
        bad(&good.replace("\"pw\"", "\"missing\""), &["password_file"]);
        bad(
            &format!("{good}retry = \"soon\"\n"),
            &["retry", "not a duration"],
        );
        bad(
            &format!("{good}retry = \"10m\"\n"),
            &["retry_max", "at least retry"],
        );
        bad(&format!("{good}timeout = \"0s\"\n"), &["timeout"]);
        bad(&format!("{good}filter = \"(uid=\"\n"), &["filter"]);
        bad(&good.replace("\"main\"", "\"a b\""), &["name"]);
        bad(
            &format!("{good}update_referral = \"http://x\"\n"),
            &["update_referral"],
        );
        assert!(
            replica_settings(dir.path(), &format!("{head}{good}provder = 1\n"))
                .unwrap_err()
                .contains("provder")
        );
    }

    #[test]
    fn upstreams_are_checked() {
        let file: ConfigFile = toml::from_str(
            "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://dc1.corp.example.com\"\nca = \"ad-ca.pem\"\n\
             [[upstream]]\nname = \"edir\"\nurl = \"ldap://10.0.0.5:389\"\ntimeout = \"1500ms\"\nmax_concurrent = 4\ncache_max_age = \"12h\"\n",
        )
        .unwrap();
        let s = Settings::from_file(file, Path::new("/etc/roster"), &Overrides::default()).unwrap();
        let [corp, edir] = s.upstreams.as_slice() else {
            panic!("two upstreams expected");
        };
        assert!(!corp.starttls);
        assert_eq!(corp.ca.as_deref(), Some(Path::new("/etc/roster/ad-ca.pem")));
        assert_eq!(corp.timeout, Duration::from_secs(5));
        assert_eq!(corp.max_concurrent, 16);
        assert_eq!(corp.cache_max_age, None);
        assert!(edir.starttls);
        assert_eq!(edir.timeout, Duration::from_millis(1500));
        assert_eq!(edir.cache_max_age, Some(Duration::from_secs(12 * 3600)));

        let e = upstream_error("[[upstream]]\nname = \"corp\"\nurl = \"ldapi:///run/x\"\n");
        assert!(
            e.contains("upstream \"corp\"") && e.contains("ldaps://"),
            "{e}"
        );
        let e = upstream_error("[[upstream]]\nname = \"corp\"\nurl = \"ldaps://a\"\n[[upstream]]\nname = \"CORP\"\nurl = \"ldaps://b\"\n");
        assert!(e.contains("configured twice"), "{e}");
        let e = upstream_error(
            "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://a\"\ntimeout = \"5 seconds\"\n",
        );
        assert!(e.contains("timeout") && e.contains("not a duration"), "{e}");
        let e = upstream_error(
            "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://a\"\ncache_max_age = \"0s\"\n",
        );
        assert!(e.contains("cache_max_age"), "{e}");
        let e = upstream_error("[[upstream]]\nname = \"\"\nurl = \"ldaps://a\"\n");
        assert!(e.contains("upstream #1"), "{e}");
        assert!(toml::from_str::<ConfigFile>(
            "[[upstream]]\nname = \"a\"\nurl = \"ldaps://a\"\npasword = 1\n"
        )
        .is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        for bad in ["", "5", "s", "5 s", "-5s", "5w", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../config.example.toml");
        let file: ConfigFile = toml::from_str(text).unwrap();
        Settings::from_file(file, Path::new(""), &Overrides::default()).unwrap();
    }
}
