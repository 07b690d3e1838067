//! Where a sync job keeps its state: one entry in the directory it writes to,
//! `cn=<job>,ou=sync,<domain>` (object class `rosterSyncJob`), so that a restarted job, or
//! the same job run from another machine, goes on from where the last run stopped, and an
//! administrator reads it with ldapsearch.

use super::upstream::Mark;
use crate::ldap::{self, Change, WriteError};
use ldap3::LdapConn;

/// The stored state of a job.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub mark: Mark,
    /// GeneralizedTime of the last full run (empty: none yet).
    pub last_full_run: String,
}

pub const ATTRS: [&str; 5] = [
    "rosterSyncSource",
    "rosterSyncMark",
    "rosterSyncLastFullRun",
    "rosterSyncRetry",
    "rosterUpstream",
];

/// The DN of a job's state entry.
pub fn dn(job: &str, base: &str) -> String {
    format!("cn={},ou=sync,{base}", ldap::escape_rdn_value(job))
}

/// Reads a job's state; `None` before its first run.
pub fn read(
    conn: &mut LdapConn,
    job: &str,
    base: &str,
) -> Result<Option<State>, ldap::SearchError> {
    let Some(e) = ldap::read(conn, &dn(job, base), &ATTRS)? else {
        return Ok(None);
    };
    Ok(Some(State {
        mark: Mark {
            source: ldap::first(&e, "rosterSyncSource"),
            mark: ldap::first(&e, "rosterSyncMark"),
            retry: ldap::all(&e, "rosterSyncRetry"),
        },
        last_full_run: ldap::first(&e, "rosterSyncLastFullRun"),
    }))
}

/// Makes sure the containers a run writes into exist (`ou=users`, `ou=groups`, `ou=sync`).
pub fn ensure_containers(conn: &mut LdapConn, base: &str) -> Result<(), WriteError> {
    for ou in ["users", "groups", "sync"] {
        let dn = format!("ou={ou},{base}");
        let exists = ldap::read(conn, &dn, &["ou"])
            .map_err(|e| WriteError::Connection(e.to_string()))?
            .is_some();
        if !exists {
            ldap::add(
                conn,
                &dn,
                &[
                    ("objectClass".into(), vec!["organizationalUnit".into()]),
                    ("ou".into(), vec![ou.into()]),
                ],
                false,
            )?;
        }
    }
    Ok(())
}

/// What a finished run stores.
pub struct Record<'a> {
    pub upstream_url: &'a str,
    pub mark: &'a Mark,
    pub now: &'a str,
    pub full: bool,
    pub summary: &'a str,
}

/// Writes the state after a run (creates the entry on the first one).
pub fn write(conn: &mut LdapConn, job: &str, base: &str, r: &Record<'_>) -> Result<(), WriteError> {
    let dn = dn(job, base);
    let mut values: Vec<(String, Vec<String>)> = vec![
        ("rosterUpstream".into(), vec![r.upstream_url.to_string()]),
        ("rosterSyncLastRun".into(), vec![r.now.to_string()]),
        ("rosterSyncSummary".into(), vec![r.summary.to_string()]),
    ];
    let some = |v: &str| {
        if v.is_empty() {
            Vec::new()
        } else {
            vec![v.to_string()]
        }
    };
    values.push(("rosterSyncSource".into(), some(&r.mark.source)));
    values.push(("rosterSyncMark".into(), some(&r.mark.mark)));
    let mut retry = r.mark.retry.clone();
    retry.sort();
    retry.dedup();
    values.push(("rosterSyncRetry".into(), retry));
    if r.full {
        values.push(("rosterSyncLastFullRun".into(), vec![r.now.to_string()]));
    }
    let exists = ldap::read(conn, &dn, &["cn"])
        .map_err(|e| WriteError::Connection(e.to_string()))?
        .is_some();
    if exists {
        let changes: Vec<Change> = values
            .into_iter()
            .map(|(a, v)| Change::Replace(a, v))
            .collect();
        ldap::modify(conn, &dn, &changes, false)
    } else {
        let mut attrs: Vec<(String, Vec<String>)> = vec![
            ("objectClass".into(), vec!["rosterSyncJob".into()]),
            ("cn".into(), vec![job.to_string()]),
        ];
        attrs.extend(values.into_iter().filter(|(_, v)| !v.is_empty()));
        ldap::add(conn, &dn, &attrs, false)
    }
}
