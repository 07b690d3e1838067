//! Configuration: one typed struct built from defaults, then the TOML file, then command-line
//! overrides. Unknown keys are an error at start, not a surprise later. The raw file form
//! (`ConfigFile`) and the validated runtime settings (`Settings`) are two different types.

mod peers;

pub use peers::{
    check_url, parse_duration, ProviderUrl, ReplicaConfig, ReplicaSection, Transport,
    UpstreamConfig, UpstreamSection,
};
use peers::{replicas, upstreams};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most a connection or concurrency limit can be: what a tokio semaphore holds. A larger
/// configured value means no limit, and is taken as this.
const MAX_SLOTS: usize = tokio::sync::Semaphore::MAX_PERMITS;

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

/// Prometheus metrics over HTTP (see `metrics.rs`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where to serve `GET /metrics` ("127.0.0.1:9389"); off without.
    #[serde(default)]
    pub listen: Option<String>,
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
    /// Threads that run write operations, per pool (see `writers`: "yield" has two pools).
    #[serde(default = "default_write_threads")]
    pub write_threads: usize,
    /// How writes are scheduled against lookups: "yield" (while lookups come in, writes run in
    /// Linux's `SCHED_IDLE` class: they get the CPU time nothing else wants, and give it up at
    /// once; otherwise `write_nice` steps below the server) or "nice" (always `write_nice`
    /// steps below the server).
    #[serde(default)]
    pub write_priority: WritePriorityName,
    /// How far below the server's scheduling priority writes run when they do not yield (a
    /// nice increment, 0-19; 0: the same priority).
    #[serde(default = "default_write_nice")]
    pub write_nice: u8,
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
            write_threads: default_write_threads(),
            write_priority: WritePriorityName::default(),
            write_nice: default_write_nice(),
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
    /// Bytes of memory for decoded entries and equality index lists shared by all searches
    /// (0: none).
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
}

fn default_cache_size() -> u64 {
    roster_storage::DEFAULT_CACHE_SIZE
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
            cache_size: default_cache_size(),
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
fn default_write_threads() -> usize {
    2
}
/// `[server] write_priority`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WritePriorityName {
    #[default]
    Yield,
    Nice,
}

fn default_write_nice() -> u8 {
    5
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
    pub write_threads: usize,
    pub write_priority: crate::writers::WritePriority,
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
    /// The store's read cache in bytes (`storage.cache_size`).
    pub cache_size: u64,
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
    pub upstreams: Vec<UpstreamConfig>,
    /// The providers this server is a read-only replica of (`[[replica]]`).
    pub replicas: Vec<ReplicaConfig>,
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
            cache_size: file.storage.cache_size,
            max_connections: file.server.max_connections.clamp(1, MAX_SLOTS),
            max_connections_per_address: file.server.max_connections_per_address,
            max_message_bytes: file.server.max_message_bytes,
            max_message_bytes_anonymous: file.server.max_message_bytes_anonymous,
            max_concurrent_searches: file.server.max_concurrent_searches.clamp(1, MAX_SLOTS),
            max_ber_depth: file.server.max_ber_depth.max(8),
            max_concurrent_binds: file.server.max_concurrent_binds.clamp(1, MAX_SLOTS),
            write_threads: file.server.write_threads.max(1),
            write_priority: {
                let nice = i32::from(file.server.write_nice.min(19));
                match file.server.write_priority {
                    WritePriorityName::Yield => crate::writers::WritePriority::Yield(nice),
                    WritePriorityName::Nice => crate::writers::WritePriority::Nice(nice),
                }
            },
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
mod tests;
