//! `roster sync`: maps the users and groups of an upstream directory (Active Directory,
//! eDirectory, any LDAP server) into one mail domain of rosterd, once or on a schedule.
//!
//! A run reads the job's state from rosterd, reads the upstream (everything, or only what
//! changed since the stored mark), plans the changes against the entries the job mapped
//! before (matched by the upstream's stable id), and writes them one entry at a time: one
//! entry's refusal is reported and the others go on. A run that cannot read the upstream
//! writes nothing, and one that would remove more entries than `max_deletes` allows stops
//! before its first write. The state (mark, retries, summary) is stored last.

pub mod config;
pub mod plan;
mod state;
pub mod upstream;

use crate::connect::{ConnectError, Target};
use crate::domain::{dn_key, Domain, DomainError};
use crate::ldap::{self, WriteError};
use config::{Cap, SyncConfig};
use plan::{Kind, Step};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("rosterd: {0}")]
    Rosterd(#[from] ConnectError),
    #[error("rosterd: {0}")]
    Domain(#[from] DomainError),
    #[error("rosterd: read the job's state: {0}")]
    State(#[from] ldap::SearchError),
    #[error("rosterd: {0}")]
    Write(WriteError),
    #[error("{0}; nothing was changed")]
    Upstream(#[from] upstream::UpstreamError),
    #[error("the run would remove {removals} of the {mapped} entries this job maps, more than max_deletes ({cap}) allows ({allowed}); nothing was changed (check the upstream and the filters, or raise the cap with --max-deletes)")]
    TooManyDeletes {
        removals: usize,
        mapped: usize,
        cap: Cap,
        allowed: usize,
        report: Box<Report>,
    },
    #[error("the connection to rosterd was lost: {message}; the changes listed were made, the rest were not, and the next run starts again from the last stored mark")]
    Interrupted {
        message: String,
        report: Box<Report>,
    },
}

/// What one run of the command asks for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    /// Read everything, whatever the state says.
    pub full: bool,
    /// Overrides the configuration's `max_deletes` for this run.
    pub max_deletes: Option<Cap>,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Report {
    pub job: String,
    pub dry_run: bool,
    pub full: bool,
    /// Entries read from the upstream.
    pub fetched: usize,
    pub counts: BTreeMap<(&'static str, &'static str), usize>,
    pub unchanged_users: usize,
    pub unchanged_groups: usize,
    /// One line per change, in the order made.
    pub changes: Vec<String>,
    /// Entries not mapped, by upstream DN, and why.
    pub errors: Vec<(String, String)>,
    pub foreign_addresses: usize,
}

impl Report {
    fn count(&self, kind: &'static str, outcome: &'static str) -> usize {
        self.counts.get(&(kind, outcome)).copied().unwrap_or(0)
    }

    /// One line: what the run read and did.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "sync {}: {}{} run, {} entries read",
            self.job,
            if self.dry_run { "dry " } else { "" },
            if self.full { "full" } else { "incremental" },
            self.fetched
        );
        for (kind, unchanged) in [
            ("users", self.unchanged_users),
            ("groups", self.unchanged_groups),
        ] {
            let k = if kind == "users" { "user" } else { "group" };
            let _ = write!(
                s,
                "; {kind}: {} created, {} updated, {} renamed, {} disabled, {} deleted, {unchanged} unchanged",
                self.count(k, "create"),
                self.count(k, "update"),
                self.count(k, "rename"),
                self.count(k, "disable"),
                self.count(k, "delete"),
            );
        }
        let _ = write!(s, "; {} errors", self.errors.len());
        if self.foreign_addresses > 0 {
            let _ = write!(
                s,
                "; {} addresses outside the domain's names left out",
                self.foreign_addresses
            );
        }
        s
    }

    /// The summary, then each entry that could not be mapped.
    pub fn text(&self) -> String {
        let mut s = self.summary();
        for (dn, why) in &self.errors {
            let _ = write!(s, "\nerror: {dn}: {why}");
        }
        s
    }
}

/// GeneralizedTime of `t` (UTC, seconds).
fn generalized(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::User => "user",
        Kind::Group => "group",
    }
}

/// Runs the job once; the report says what was done.
pub fn run_once(cfg: &SyncConfig, rosterd: &Target, opts: &Options) -> Result<Report, SyncError> {
    let mut conn = crate::connect::connect(rosterd)?;
    let domain = Domain::read(&mut conn, &cfg.domain)?;
    let template = match &cfg.template {
        Some(t) => Some(domain.template(&mut conn, t)?),
        None => None,
    };
    let stored = state::read(&mut conn, &cfg.name, &domain.base)?;
    let now = time::OffsetDateTime::now_utc();
    let stamp = generalized(now);
    let due = stored.as_ref().is_none_or(|s| {
        let every = time::Duration::try_from(cfg.full_run_every).unwrap_or(time::Duration::DAY);
        let since = now.checked_sub(every).map(generalized).unwrap_or_default();
        s.last_full_run.is_empty() || s.last_full_run < since
    });
    let known: HashSet<String> = domain
        .users
        .values()
        .filter(|u| u.upstream.eq_ignore_ascii_case(&cfg.name) && !u.upstream_dn.is_empty())
        .map(|u| dn_key(&u.upstream_dn))
        .collect();
    let mark = stored.as_ref().map(|s| s.mark.clone());
    // Everything is read before anything is written: a failure here changes nothing.
    let mut up = upstream::Upstream::connect(cfg)?;
    let mut snap = up.read(mark.as_ref(), opts.full || due, &known)?;
    // Removals the last run could not make are planned again.
    if let Some(m) = &mark {
        for r in &m.retry {
            if let Some(id) = r.strip_prefix(upstream::RETRY_ID) {
                snap.gone.insert(id.to_string());
            }
        }
    }
    let mut p = plan::plan(cfg, &domain, &snap, template.as_ref());
    // Nothing is removed on the word of one read: each entry about to go is looked for again
    // by its id (it may have changed or moved while the run read).
    if !p.removed_ids.is_empty() {
        let ids = p.removed_ids.clone();
        up.recheck(&mut snap, &ids)?;
        p = plan::plan(cfg, &domain, &snap, template.as_ref());
    }
    drop(up);
    let mut report = Report {
        job: cfg.name.clone(),
        dry_run: opts.dry_run,
        full: snap.full,
        fetched: snap.fetched,
        unchanged_users: p.unchanged_users,
        unchanged_groups: p.unchanged_groups,
        foreign_addresses: p.foreign_addresses,
        ..Report::default()
    };
    for pr in &p.problems {
        report
            .errors
            .push((pr.upstream_dn.clone(), pr.reason.clone()));
    }
    let cap = opts.max_deletes.unwrap_or(cfg.max_deletes);
    let allowed = cap.allows(p.mapped);
    let line = |e: &plan::EntryPlan, dry: bool| {
        let verb = e.outcome.word();
        let mut l = format!(
            "{}{verb} {} {}",
            if dry { "would " } else { "" },
            kind_word(e.kind),
            e.name
        );
        if !e.detail.is_empty() {
            let _ = write!(l, " ({})", e.detail);
        }
        l
    };
    if p.removals > allowed {
        for e in &p.entries {
            report.changes.push(line(e, true));
        }
        return Err(SyncError::TooManyDeletes {
            removals: p.removals,
            mapped: p.mapped,
            cap,
            allowed,
            report: Box::new(report),
        });
    }
    if opts.dry_run {
        for e in &p.entries {
            report.changes.push(line(e, true));
            *report
                .counts
                .entry((kind_word(e.kind), e.outcome.word()))
                .or_default() += 1;
        }
        return Ok(report);
    }
    state::ensure_containers(&mut conn, &domain.base).map_err(SyncError::Write)?;
    let mut retry: Vec<String> = p.problems.iter().map(|pr| pr.upstream_dn.clone()).collect();
    // Users not written (refused here, or not mappable): their groups are read again next
    // time, so that they join once they exist.
    let mut failed_users: HashSet<String> = p
        .problems
        .iter()
        .map(|pr| dn_key(&pr.upstream_dn))
        .collect();
    for e in &p.entries {
        match apply(&mut conn, &e.steps) {
            Ok(()) => {
                report.changes.push(line(e, false));
                *report
                    .counts
                    .entry((kind_word(e.kind), e.outcome.word()))
                    .or_default() += 1;
            }
            Err(WriteError::Refused { rc, text }) => {
                let what = format!("{} {} {}", e.outcome.word(), kind_word(e.kind), e.name);
                report.errors.push((
                    e.upstream_dn.clone(),
                    format!("{what}: {text} (result {rc})"),
                ));
                if p.removed_ids.contains(&e.upstream_id) {
                    // Gone upstream: its DN leads nowhere; the next run plans it again by id.
                    retry.push(format!("{}{}", upstream::RETRY_ID, e.upstream_id));
                } else if !e.upstream_dn.is_empty() {
                    retry.push(e.upstream_dn.clone());
                }
                if e.kind == Kind::User {
                    failed_users.insert(dn_key(&e.upstream_dn));
                }
            }
            Err(WriteError::Connection(message)) => {
                return Err(SyncError::Interrupted {
                    message,
                    report: Box::new(report),
                })
            }
        }
    }
    // Groups with a member that could not be written are read again next time, so the
    // member joins once it exists.
    for g in &snap.groups {
        if g.members.iter().any(|m| failed_users.contains(&dn_key(m))) {
            retry.push(g.dn.clone());
        }
    }
    let new_mark = upstream::Mark {
        source: snap.source.clone(),
        mark: if snap.mark.is_empty() {
            mark.map(|m| m.mark).unwrap_or_default()
        } else {
            snap.mark.clone()
        },
        retry,
    };
    let record = state::Record {
        upstream_url: &cfg.upstream.url,
        mark: &new_mark,
        now: &stamp,
        full: snap.full,
        summary: &report.summary(),
    };
    state::write(&mut conn, &cfg.name, &domain.base, &record).map_err(SyncError::Write)?;
    Ok(report)
}

/// Runs an entry's steps in order; the first refusal stops them.
fn apply(conn: &mut ldap3::LdapConn, steps: &[Step]) -> Result<(), WriteError> {
    for s in steps {
        match s {
            Step::Add { dn, attrs } => ldap::add(conn, dn, attrs, false)?,
            Step::Rename { dn, new_rdn } => ldap::rename(conn, dn, new_rdn)?,
            Step::Modify { dn, changes } => ldap::modify(conn, dn, changes, false)?,
            Step::Delete { dn } => ldap::delete(conn, dn, None)?,
        }
    }
    Ok(())
}
