//! The directory as operations see it: the schema, the entry store, the naming contexts and the
//! administrator, opened once at start and shared by every connection.

use crate::config::Settings;
use roster_schema::{AttrId, Dn, Entry, NormDn, Schema};
use roster_storage::{Durability, Store, StoreConfig};
use std::sync::Arc;

/// Why the directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("read schema file {path}: {source}")]
    SchemaRead {
        path: String,
        source: std::io::Error,
    },
    #[error("schema file {path}: {source}")]
    Schema {
        path: String,
        source: roster_schema::SchemaError,
    },
    #[error("directory.{field} {value:?}: {source}")]
    Dn {
        field: &'static str,
        value: String,
        source: roster_schema::DnError,
    },
    #[error("{0}")]
    Access(String),
    #[error("{0}")]
    Upstream(#[from] crate::upstream::SetupError),
    #[error("{0}")]
    Replica(#[from] crate::replica::SetupError),
    #[error("open entry store in {path}: {source}{hint}")]
    Store {
        path: String,
        source: roster_storage::StoreError,
        hint: &'static str,
    },
}

/// Everything an operation needs besides its session.
pub struct Directory {
    pub schema: Arc<Schema>,
    pub store: Store,
    pub settings: Settings,
    /// The naming contexts: configured, and created at run time (see `naming`).
    pub naming: Arc<crate::naming::NamingContexts>,
    /// Held while a naming context is created or ended, from the checks to the list's update,
    /// so that the list and the store's roots agree.
    pub context_lock: std::sync::Mutex<()>,
    /// Held from the last-global-admin check to the write of a change that concerns the
    /// global admin group (see `mail::guard_last_global_admin`).
    pub admins_lock: std::sync::Mutex<()>,
    pub root_ndn: Option<NormDn>,
    /// The global admin group (`access.global_admins`), which may not lose its last member.
    pub global_admins: Option<NormDn>,
    pub subschema_ndn: NormDn,
    /// The root DSE, rebuilt when a naming context comes or goes, and the subschema entry,
    /// built once: it changes only with the config.
    root_dse: std::sync::RwLock<Arc<Entry>>,
    pub subschema: Entry,
    /// Who may do what (see `access`).
    pub policy: crate::access::Policy,
    /// Failed binds by account and address (see `lockout`).
    pub lockout: crate::lockout::Lockout,
    /// The directories that check mapped users' passwords (see `upstream`).
    /// Counters of operations and connections, served by `metrics.rs`.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub upstreams: crate::upstream::Upstreams,
    /// The providers this server is a read-only replica of (see `replica`).
    pub replicas: crate::replica::Replicas,
    /// Search limits per identity: (who, size limit, time limit), `Some(0)` unlimited.
    pub limits: Vec<(crate::access::Who, Option<u32>, Option<u32>)>,
    /// Password policies by naming context (`None`: the default).
    pub password_policies: Vec<(Option<NormDn>, crate::password::Policy)>,
    /// Attribute types with an equality index that narrows a search to a few entries (every
    /// configured equality index but objectClass's, whose values each match many entries).
    pub selective_indexes: Vec<AttrId>,
    /// The attribute types searches compute (see `ops::search`).
    pub computed_attrs: crate::ops::search::ComputedAttrs,
    /// The normalized forms of recent search bases, for every connection (see `ops::search`).
    pub base_dns: crate::recent::RecentNames<Arc<NormDn>>,
    /// Recent bind DNs: normalized and as slapd reports them (see `ops::bind`).
    pub bind_dns: crate::recent::RecentNames<Arc<(NormDn, String)>>,
    /// Acknowledges deferred writes once the journal is on disk (see `syncer`).
    pub syncer: crate::syncer::Syncer,
    /// The threads clients' writes run on, below the lookups' priority (see `writers`).
    pub writers: crate::writers::Writers,
    /// Searches running on blocking threads at once, across all connections.
    pub search_slots: Arc<tokio::sync::Semaphore>,
    /// Password checks and hashes running at once, across all connections.
    pub password_slots: Arc<tokio::sync::Semaphore>,
    /// Work that outlives a request's session task (searches on blocking threads); shutdown
    /// waits for it before closing the store.
    pub background: tokio_util::task::TaskTracker,
    /// The change log's last sequence number after each commit: sync searches in
    /// refreshAndPersist mode wait on it.
    pub commits: tokio::sync::watch::Sender<u64>,
    /// When the directory was opened (cn=Monitor's start time).
    pub started: std::time::SystemTime,
    /// The monitor subtree's base (`cn=Monitor`), normalized.
    pub monitor_ndn: NormDn,
    /// A read-only replica (see [`Directory::read_only`]).
    read_only: bool,
}

/// The schema of the server: built-in definitions plus the configured schema files.
pub fn load_schema(settings: &Settings) -> Result<Schema, OpenError> {
    let mut schema = Schema::builtin();
    for path in &settings.schema_files {
        let text = std::fs::read_to_string(path).map_err(|source| OpenError::SchemaRead {
            path: path.display().to_string(),
            source,
        })?;
        let is_ldif = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ldif"));
        let res = if is_ldif {
            schema.add_ldif_schema(&text)
        } else {
            schema.add_schema_file(&text)
        };
        res.map_err(|source| OpenError::Schema {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(schema)
}

impl Directory {
    /// Loads the schema and opens the entry store in the data directory.
    pub fn open(settings: Settings) -> Result<Directory, OpenError> {
        let schema = Arc::new(load_schema(&settings)?);
        let norm = |field: &'static str, value: &str| -> Result<NormDn, OpenError> {
            Dn::parse(value)
                .and_then(|dn| dn.normalize(&schema))
                .map_err(|source| OpenError::Dn {
                    field,
                    value: value.to_string(),
                    source,
                })
        };
        let mut suffixes = Vec::new();
        for s in &settings.suffixes {
            suffixes.push((norm("suffixes", s)?, s.clone()));
        }
        let configured: Vec<NormDn> = suffixes.iter().map(|(ndn, _)| ndn.clone()).collect();
        let naming = Arc::new(crate::naming::NamingContexts::new(suffixes));
        let root_ndn = match &settings.root_dn {
            Some(r) => Some(norm("root_dn", r)?),
            None => None,
        };
        let subschema_ndn = norm("subschema", "cn=Subschema")?;
        let global_admins = match &settings.global_admins {
            Some(g) => Some(norm("access.global_admins", g)?),
            None => None,
        };
        // Password hashes never leave the server over LDAP, not even to the root DN (backups
        // go through `rosterd dump`), unless the operator asks for slapd's behaviour.
        let root_unreadable = if settings.root_reads_passwords {
            Vec::new()
        } else {
            schema.attr_id("userPassword").into_iter().collect()
        };
        let policy =
            crate::access::Policy::compile(&schema, naming.clone(), &settings.access_rules)
                .map_err(OpenError::Access)?
                .hide_from_root(root_unreadable)
                .with_replicators(
                    settings
                        .replicators
                        .iter()
                        .map(|dn| norm("access.replicators", dn))
                        .collect::<Result<Vec<_>, _>>()?,
                );
        let mut limits = Vec::new();
        for l in &settings.limits {
            let who = crate::access::Who::parse(&schema, naming.clone(), &l.who)
                .map_err(|e| OpenError::Access(format!("limits {:?}: {e}", l.who)))?;
            limits.push((who, l.size_limit, l.time_limit_secs));
        }
        let mut password_policies = Vec::new();
        for p in &settings.password_policies {
            let suffix = match &p.suffix {
                Some(s) => Some(norm("password_policy.suffix", s)?),
                None => None,
            };
            password_policies.push((suffix, p.clone()));
        }
        let store_config = StoreConfig {
            path: settings.data_dir.clone(),
            indexes: settings.indexes.clone(),
            durability: if settings.sync_writes {
                Durability::SyncData
            } else {
                Durability::Buffer
            },
            integrity: settings.integrity_attributes.clone(),
            // A replica takes the provider's entries as they come: the provider checked unique
            // values, and in the middle of a refresh two entries may hold one for a while (an
            // address moved from an entry deleted while the replica was away).
            unique: if settings.replicas.is_empty() {
                crate::mail::unique_specs()
            } else {
                Vec::new()
            },
            change_log: settings.change_log,
            // A replica keeps the provider's entryCSN, so that its own consumers and the
            // cookies it hands out follow the provider's clock.
            keep_csn: !settings.replicas.is_empty(),
            cache_size: settings.cache_size,
        };
        let store = Store::open(&store_config, schema.clone()).map_err(|source| {
            // fjall names a held lock only in its message; say what it means here.
            let hint = if source.to_string().contains("Locked") {
                " (another process, probably a running rosterd, has this data directory \
                     open; stop it before load, dump or verify)"
            } else {
                ""
            };
            OpenError::Store {
                path: settings.data_dir.display().to_string(),
                source,
                hint,
            }
        })?;
        // The store holds password hashes: the data directory is the server's alone.
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) =
                std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
            {
                tracing::warn!(path = %settings.data_dir.display(), error = %e, "cannot restrict the data directory to its owner");
            }
        }
        // Every stored root is a naming context, those created at run time included (when
        // domains may be created at run time at all).
        if settings.runtime_domains {
            let reader = store.reader();
            let everything = roster_schema::Filter::Present {
                attr: "objectClass".into(),
            }
            .compile(&schema);
            let roots = reader
                .search(&NormDn::default(), roster_storage::Scope::One, &everything)
                .map_err(|source| OpenError::Store {
                    path: settings.data_dir.display().to_string(),
                    source,
                    hint: "",
                })?;
            for found in roots {
                let (_, root) = found.map_err(|source| OpenError::Store {
                    path: settings.data_dir.display().to_string(),
                    source,
                    hint: "",
                })?;
                if !naming.current().contains(&root.ndn) {
                    tracing::info!(suffix = %root.dn, "naming context created at run time");
                    naming.add(root.ndn.clone(), root.dn.to_string());
                }
            }
        }
        let root_dse = crate::ops::dse::root_dse(
            &schema,
            &naming.current().names,
            settings.tls_enabled,
            settings.tls_enabled && settings.tls_client_ca.is_some(),
        );
        let subschema = crate::ops::dse::subschema(
            &schema,
            subschema_ndn.clone(),
            &crate::time::generalized_now(),
        );
        let object_class = schema.attr_id("objectClass");
        let selective_indexes = settings
            .indexes
            .iter()
            .filter(|i| i.equality)
            .filter_map(|i| schema.attr_id(&i.attr))
            .filter(|id| Some(*id) != object_class)
            .collect();
        let upstreams = crate::upstream::Upstreams::new(&settings.upstreams)?;
        let replicas = crate::replica::Replicas::new(&settings.replicas, &schema, &configured)?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let lookups = {
            let metrics = metrics.clone();
            crate::writers::Lookups(Arc::new(move || metrics.lookups_received()))
        };
        let writers = crate::writers::Writers::start(
            settings.write_threads,
            settings.write_priority,
            lookups,
        )
        .map_err(|e| OpenError::Access(format!("start the write threads: {e}")))?;
        let (commits, _) = tokio::sync::watch::channel(0);
        let told = commits.clone();
        // Listeners run after each writer's fsync, so a later commit may tell first: the value
        // only moves forward.
        store.on_commit(Arc::new(move |seq| {
            told.send_if_modified(|last| {
                let newer = seq > *last;
                if newer {
                    *last = seq;
                }
                newer
            });
        }));
        let monitor_ndn = Dn::parse(crate::monitor::MONITOR_DN)
            .and_then(|d| d.normalize(&schema))
            .map_err(|e| OpenError::Access(format!("cn=Monitor: {e}")))?;
        Ok(Directory {
            commits,
            started: std::time::SystemTime::now(),
            monitor_ndn,
            read_only: !replicas.is_empty(),
            upstreams,
            replicas,
            metrics,
            password_slots: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_binds)),
            syncer: crate::syncer::Syncer::start(
                store.clone(),
                settings.write_priority,
                writers.in_flight(),
            )
            .map_err(|e| OpenError::Access(format!("start the journal sync thread: {e}")))?,
            writers,
            search_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.max_concurrent_searches,
            )),
            background: tokio_util::task::TaskTracker::new(),
            selective_indexes,
            computed_attrs: crate::ops::search::ComputedAttrs::resolve(&schema),
            base_dns: crate::recent::RecentNames::new(32),
            bind_dns: crate::recent::RecentNames::new(4096),
            root_dse: std::sync::RwLock::new(Arc::new(root_dse)),
            subschema,
            policy,
            lockout: crate::lockout::Lockout::new(settings.lockout.clone()),
            password_policies,
            limits,
            schema,
            store,
            settings,
            naming,
            context_lock: std::sync::Mutex::new(()),
            admins_lock: std::sync::Mutex::new(()),
            root_ndn,
            global_admins,
            subschema_ndn,
        })
    }

    /// Checks a new clear password for `entry` against its domain's policy (or the default).
    pub fn check_password(&self, entry: &Entry, clear: &[u8]) -> Result<(), String> {
        let suffix = self.suffix_of(&entry.ndn);
        let policy = self
            .password_policies
            .iter()
            .find(|(s, _)| s.is_some() && s.as_ref() == suffix.as_ref())
            .or_else(|| self.password_policies.iter().find(|(s, _)| s.is_none()));
        let Some((_, policy)) = policy else {
            return Ok(());
        };
        let names: Vec<String> = ["uid", "cn"]
            .iter()
            .filter_map(|n| self.schema.attr_id(n))
            .flat_map(|id| entry.values_of(id))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        policy.check(clear, &names)
    }

    /// The naming context holding `ndn`, if any.
    pub fn suffix_of(&self, ndn: &NormDn) -> Option<NormDn> {
        self.naming.current().suffix_of(ndn).cloned()
    }

    /// Serializes the creation and end of naming contexts (see `context_lock`).
    pub fn lock_contexts(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.context_lock.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// True if `ndn` is the DN of a naming context.
    pub fn is_context(&self, ndn: &NormDn) -> bool {
        self.naming.current().contains(ndn)
    }

    /// True for a read-only replica: clients' writes are refused with a referral.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The root DSE as it is now.
    pub fn root_dse(&self) -> Arc<Entry> {
        match self.root_dse.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `ndn` (stored, without a parent) a naming context, or ends one created at run
    /// time (`name` `None`), and lists the change in the root DSE.
    pub fn set_context(&self, ndn: &NormDn, name: Option<&str>) {
        match name {
            Some(n) => self.naming.add(ndn.clone(), n.to_string()),
            None => self.naming.remove_created(ndn),
        }
        let dse = crate::ops::dse::root_dse(
            &self.schema,
            &self.naming.current().names,
            self.settings.tls_enabled,
            self.settings.tls_enabled && self.settings.tls_client_ca.is_some(),
        );
        let mut guard = match self.root_dse.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(dse);
    }

    /// Logs a failure of the entry store. A failure of the store itself (I/O, a poisoned
    /// journal, corruption) ends the process: fjall cannot go on safely, and the supervisor
    /// restarts the daemon, which recovers from the journal.
    pub fn store_failed(&self, operation: &str, e: &roster_storage::StoreError) {
        if e.is_fatal() {
            tracing::error!(operation, error = %e, "entry store failed; exiting so the supervisor can restart rosterd");
            std::process::exit(70);
        }
        tracing::debug!(operation, error = %e, "entry store refused the operation");
    }

    /// Returns once the commits of a deferred write (`Store::deferring`) are on disk, or
    /// the result to answer with if the journal could not be synced (which ends the process,
    /// see `store_failed`).
    pub async fn synced(
        &self,
        operation: &str,
        point: Option<roster_storage::SyncPoint>,
    ) -> Result<(), ldap3_proto::proto::LdapResult> {
        let Some(point) = point else {
            return Ok(());
        };
        self.syncer.wait(point).await.map_err(|e| {
            self.store_failed(operation, &e);
            crate::error::ldap_result(&crate::error::OpError::Store(e))
        })
    }

    pub fn is_root_dn(&self, ndn: &NormDn) -> bool {
        self.root_ndn.as_ref() == Some(ndn)
    }
}
