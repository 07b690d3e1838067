//! `cn=Monitor`: the server's figures for LDAP tools, in the form of OpenLDAP's monitor backend
//! (`monitorServer`, `monitorContainer`, `monitorCounterObject`, `monitorOperation`,
//! `monitoredObject` entries; the figures are operational attributes, so ask for `+`), and
//! the same figures that are kept outside `metrics.rs` for the Prometheus listener.
//!
//! The entries are made up for each search from the counters (nothing is stored). Only the
//! root DN, members of `access.global_admins` and `access.replicators` see them; for anyone
//! else the subtree does not exist.
//!
//! - `cn=Connections`: `cn=Total`, `cn=Current` (monitorCounter);
//! - `cn=Operations` and one entry per operation (monitorOpInitiated, monitorOpCompleted);
//! - `cn=Time`: `cn=Start`, `cn=Current` (monitorTimestamp), `cn=Uptime` (seconds);
//! - `cn=Databases`: `cn=Database 1` (namingContexts, readOnly, contextCSN);
//! - `cn=Security`: `cn=Lockouts` (locks set by failed binds), `cn=Failed Binds`;
//! - `cn=Replication`: `cn=Consumers` (sync searches persisting now), `cn=Change Log` (the
//!   context CSN and the log's sequence numbers), and one entry per `[[replica]]` (provider,
//!   base, state, last error as monitoredInfo; changes applied; the cookie's CSN as
//!   contextCSN; the last change's time).

use crate::access::Requester;
use crate::directory::Directory;
use crate::identity::Identity;
use crate::ops::search::{to_result, Computed, Stopped};
use ldap3_proto::proto::{LdapSearchResultEntry, LdapSearchScope};
use roster_schema::{AttrDesc, Attribute, CompiledFilter, Dn, Entry, NormDn, TriState};
use std::time::{SystemTime, UNIX_EPOCH};

/// The monitor subtree's base.
pub const MONITOR_DN: &str = "cn=Monitor";

/// The operations of `metrics::OPS` under the names slapd's monitor gives them.
const OP_NAMES: [&str; 8] = [
    "Bind", "Search", "Compare", "Add", "Modify", "Delete", "Modrdn", "Extended",
];

/// True if `who` may read the monitor subtree.
pub fn may_read(dir: &Directory, who: &Identity, reader: &roster_storage::Reader) -> bool {
    if who.is_root() {
        return true;
    }
    if let Identity::Entry { ndn, .. } = who {
        if dir.policy.is_replicator(ndn) {
            return true;
        }
    }
    dir.global_admins
        .as_ref()
        .is_some_and(|g| Requester::new(who, reader).is_member_of(g))
}

/// One made-up entry: DN, object class, then attribute name and values.
fn entry(dir: &Directory, dn: &str, class: &str, attrs: &[(&str, Vec<String>)]) -> Option<Entry> {
    let schema = &dir.schema;
    let dn = Dn::parse(dn).ok()?;
    let ndn = dn.normalize(schema).ok()?;
    let cn = dn
        .rdn()
        .and_then(|r| r.avas.first())
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .unwrap_or_default();
    let mut list = vec![
        ("objectClass", vec![class.to_string()]),
        ("structuralObjectClass", vec![class.to_string()]),
        ("cn", vec![cn]),
    ];
    list.extend(attrs.iter().cloned());
    let mut out = Vec::new();
    for (name, values) in list {
        let desc = AttrDesc::parse(schema, name)?;
        out.push(Attribute {
            desc,
            values: values.into_iter().map(String::into_bytes).collect(),
        });
    }
    Some(Entry {
        dn,
        ndn,
        attrs: out,
    })
}

fn one(v: impl ToString) -> Vec<String> {
    vec![v.to_string()]
}

fn generalized(t: SystemTime) -> String {
    crate::time::generalized(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// Every entry of the subtree, each parent before its children.
pub fn entries(dir: &Directory) -> Vec<Entry> {
    let m = &dir.metrics;
    let mut out = Vec::new();
    let mut add = |e: Option<Entry>| out.extend(e);
    let info = concat!("Roster: rosterd ", env!("CARGO_PKG_VERSION"));
    add(entry(
        dir,
        MONITOR_DN,
        "monitorServer",
        &[
            (
                "description",
                one("This subtree contains monitoring/managing objects."),
            ),
            ("monitoredInfo", one(info)),
        ],
    ));
    let (open, total) = m.connections();
    add(entry(
        dir,
        "cn=Connections,cn=Monitor",
        "monitorContainer",
        &[],
    ));
    add(entry(
        dir,
        "cn=Total,cn=Connections,cn=Monitor",
        "monitorCounterObject",
        &[("monitorCounter", one(total))],
    ));
    add(entry(
        dir,
        "cn=Current,cn=Connections,cn=Monitor",
        "monitorCounterObject",
        &[("monitorCounter", one(open.max(0)))],
    ));
    let counts: Vec<(u64, u64)> = (0..OP_NAMES.len()).map(|i| m.op_counts(i)).collect();
    let (initiated, completed) = counts.iter().fold((0, 0), |(a, b), (i, c)| (a + i, b + c));
    add(entry(
        dir,
        "cn=Operations,cn=Monitor",
        "monitorContainer",
        &[
            ("monitorOpInitiated", one(initiated)),
            ("monitorOpCompleted", one(completed)),
        ],
    ));
    for (name, (i, c)) in OP_NAMES.iter().zip(&counts) {
        add(entry(
            dir,
            &format!("cn={name},cn=Operations,cn=Monitor"),
            "monitorOperation",
            &[
                ("monitorOpInitiated", one(i)),
                ("monitorOpCompleted", one(c)),
            ],
        ));
    }
    let now = SystemTime::now();
    add(entry(dir, "cn=Time,cn=Monitor", "monitorContainer", &[]));
    add(entry(
        dir,
        "cn=Start,cn=Time,cn=Monitor",
        "monitoredObject",
        &[("monitorTimestamp", one(generalized(dir.started)))],
    ));
    add(entry(
        dir,
        "cn=Current,cn=Time,cn=Monitor",
        "monitoredObject",
        &[("monitorTimestamp", one(generalized(now)))],
    ));
    let uptime = now
        .duration_since(dir.started)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    add(entry(
        dir,
        "cn=Uptime,cn=Time,cn=Monitor",
        "monitoredObject",
        &[("monitoredInfo", one(uptime))],
    ));
    let log = dir.store.reader().log_state().unwrap_or_default();
    add(entry(
        dir,
        "cn=Databases,cn=Monitor",
        "monitorContainer",
        &[],
    ));
    let mut db = vec![
        ("monitoredInfo", one("roster")),
        ("namingContexts", dir.naming.current().names.clone()),
        (
            "readOnly",
            one(if dir.read_only() { "TRUE" } else { "FALSE" }),
        ),
    ];
    if !log.context_csn.is_empty() {
        db.push(("contextCSN", one(&log.context_csn)));
    }
    add(entry(
        dir,
        "cn=Database 1,cn=Databases,cn=Monitor",
        "monitoredObject",
        &db,
    ));
    add(entry(
        dir,
        "cn=Security,cn=Monitor",
        "monitorContainer",
        &[],
    ));
    add(entry(
        dir,
        "cn=Lockouts,cn=Security,cn=Monitor",
        "monitorCounterObject",
        &[
            ("description", one("Locks set by failed binds")),
            ("monitorCounter", one(dir.lockout.locks_total())),
        ],
    ));
    add(entry(
        dir,
        "cn=Failed Binds,cn=Security,cn=Monitor",
        "monitorCounterObject",
        &[("monitorCounter", one(m.failed_binds()))],
    ));
    add(entry(
        dir,
        "cn=Replication,cn=Monitor",
        "monitorContainer",
        &[],
    ));
    add(entry(
        dir,
        "cn=Consumers,cn=Replication,cn=Monitor",
        "monitorCounterObject",
        &[
            (
                "description",
                one("Sync searches (RFC 4533) in refreshAndPersist mode open now"),
            ),
            ("monitorCounter", one(m.sync_consumers())),
        ],
    ));
    let mut change_log = vec![
        ("monitoredInfo", one(format!("first {}", log.first_seq))),
        ("monitorCounter", one(log.last_seq)),
    ];
    if !log.context_csn.is_empty() {
        change_log.push(("contextCSN", one(&log.context_csn)));
    }
    add(entry(
        dir,
        "cn=Change Log,cn=Replication,cn=Monitor",
        "monitoredObject",
        &change_log,
    ));
    for st in dir.replicas.statuses() {
        let mut info = vec![
            format!("provider {}", st.provider),
            format!("base {}", st.base),
            format!("state {}", st.state.as_str()),
        ];
        if let Some(e) = &st.last_error {
            info.push(format!("last error {e}"));
        }
        let mut attrs = vec![
            (
                "description",
                one("A read-only replica of this naming context (RFC 4533 consumer)"),
            ),
            ("monitoredInfo", info),
            ("monitorCounter", one(st.changes_applied)),
        ];
        if let Some(csn) = &st.cookie_csn {
            attrs.push(("contextCSN", one(csn)));
        }
        if let Some(t) = st.last_change {
            attrs.push(("monitorTimestamp", one(generalized(t))));
        }
        add(entry(
            dir,
            &format!("cn={},cn=Replication,cn=Monitor", escape_rdn(&st.name)),
            "monitoredObject",
            &attrs,
        ));
    }
    out
}

/// `name` as an RDN value (RFC 4514 escapes).
fn escape_rdn(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        let edge =
            (i == 0 && (c == ' ' || c == '#')) || (i + 1 == name.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Answers a search based in the monitor subtree; `None` lets the caller answer
/// noSuchObject (the base does not exist, or the client may not see the subtree).
#[allow(clippy::too_many_arguments)]
pub fn search(
    dir: &Directory,
    who: &Identity,
    base: &NormDn,
    scope: &LdapSearchScope,
    filter: &CompiledFilter,
    sel: &crate::ops::attrs::AttrSelection,
    types_only: bool,
    emit: &mut dyn FnMut(LdapSearchResultEntry) -> Result<(), Stopped>,
) -> Result<Option<()>, Stopped> {
    let reader = dir.store.reader();
    if !may_read(dir, who, &reader) {
        return Ok(None);
    }
    let all = entries(dir);
    if !all.iter().any(|e| e.ndn == *base) {
        return Ok(None);
    }
    for e in &all {
        let depth = e.ndn.rdns.len().checked_sub(base.rdns.len());
        let in_scope = e.ndn.is_within(base)
            && match scope {
                LdapSearchScope::Base => depth == Some(0),
                LdapSearchScope::OneLevel => depth == Some(1),
                LdapSearchScope::Subtree => true,
                LdapSearchScope::Children => depth != Some(0),
            };
        if !in_scope || filter.evaluate(&dir.schema, e) != TriState::True {
            continue;
        }
        let children = all
            .iter()
            .filter(|c| c.ndn.parent().as_ref() == Some(&e.ndn))
            .count();
        let computed = Computed {
            children: Some(children as u64),
            ..Computed::default()
        };
        emit(to_result(
            dir,
            e,
            sel,
            types_only,
            &|_| true,
            Some(&computed),
        ))?;
    }
    Ok(Some(()))
}

/// What the Prometheus listener shows beyond `Metrics`: lockouts, sync consumers, the
/// change log and the read cache.
pub fn prometheus(dir: &Directory) -> String {
    let log = dir.store.reader().log_state().unwrap_or_default();
    let csn_secs = roster_storage::csn_micros(&log.context_csn).map_or(0.0, |us| us as f64 / 1e6);
    let cache = dir.store.cache_stats();
    format!(
        "# HELP roster_lockouts_total Locks set by failed binds (accounts, account and address pairs, addresses).\n\
         # TYPE roster_lockouts_total counter\nroster_lockouts_total {}\n\
         # HELP roster_sync_consumers Sync searches (RFC 4533) in refreshAndPersist mode open now.\n\
         # TYPE roster_sync_consumers gauge\nroster_sync_consumers {}\n\
         # HELP roster_change_log_sequence Sequence number of the last change log record.\n\
         # TYPE roster_change_log_sequence counter\nroster_change_log_sequence {}\n\
         # HELP roster_context_csn_timestamp_seconds Time of the last commit (the context CSN).\n\
         # TYPE roster_context_csn_timestamp_seconds gauge\nroster_context_csn_timestamp_seconds {csn_secs}\n\
         # HELP roster_cache_hits_total Read cache lookups answered from memory, by kind (entries; equality id lists and the ids of DNs).\n\
         # TYPE roster_cache_hits_total counter\n\
         roster_cache_hits_total{{kind=\"entry\"}} {}\nroster_cache_hits_total{{kind=\"list\"}} {}\n\
         # HELP roster_cache_misses_total Read cache lookups that went to the store, by kind.\n\
         # TYPE roster_cache_misses_total counter\n\
         roster_cache_misses_total{{kind=\"entry\"}} {}\nroster_cache_misses_total{{kind=\"list\"}} {}\n\
         # HELP roster_cache_bytes What the read cache holds, by its own count (storage.cache_size bounds it), by kind.\n\
         # TYPE roster_cache_bytes gauge\n\
         roster_cache_bytes{{kind=\"entry\"}} {}\nroster_cache_bytes{{kind=\"list\"}} {}\n",
        dir.lockout.locks_total(),
        dir.metrics.sync_consumers(),
        log.last_seq,
        cache.entry_hits,
        cache.list_hits,
        cache.entry_misses,
        cache.list_misses,
        cache.entry_bytes,
        cache.list_bytes,
    )
}
