//! `roster users import`: a user CSV file into one domain, over LDAP.
//!
//! 1. The file is read (both schemes, any encoding problem by line) and every row planned
//!    against the domain as it is: create, update (only what differs) or leave alone.
//! 2. Every create and update is sent to the server with the No-Op control first, so the
//!    server's own rules (password policy, unique addresses, access rights) are checked for
//!    all rows before anything is written. Every problem is reported, by line and column.
//! 3. Unless `--skip-invalid`, one bad row means nothing is written. `--dry-run` stops here.
//! 4. Rows are written in chunks over several connections; then each group gets the chunk's
//!    new members in one change (a missing group is created with them). A user whose group
//!    change is refused is removed again, so that no user is left half-created; the summary
//!    says which rows were applied, and a server that goes away stops the import there.

use crate::connect::{self, Target};
use crate::csvin::{self, Problem};
use crate::domain::Domain;
use crate::ldap::{self, WriteError};
use crate::plan::{self, Action, Planned, Rules};
use ldap3::LdapConn;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Why the good rows of a file with bad ones are not imported.
const BLOCKED: &str = "the file has invalid rows (--skip-invalid imports the others)";

/// Rows written before their groups are updated.
const CHUNK: usize = 1000;
/// Member values added to a group in one modify.
const MEMBERS_PER_CHANGE: usize = 1000;

pub struct Options {
    pub file: PathBuf,
    pub encoding: csvin::Encoding,
    pub domain: String,
    pub dry_run: bool,
    /// Only these users (lower case); empty: all.
    pub select: Vec<String>,
    pub template: Option<String>,
    pub create_groups: bool,
    pub update_passwords: bool,
    pub skip_invalid: bool,
    pub connections: usize,
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated(Vec<&'static str>),
    Unchanged,
    /// Not imported: the row is bad.
    Invalid(Vec<Problem>),
    /// Not imported: not named by `--select`.
    NotSelected,
    /// The server refused the row's change; nothing of it was kept.
    Failed(String),
    /// Not tried: the import stopped before this row.
    NotApplied(String),
    /// Sent, but the connection was lost before the answer: the change may or may not have been
    /// made. Running the import again settles it.
    InDoubt(String),
    /// Written, but the listed groups were not updated (the server went away or refused); with
    /// `doubt`, a group change was in flight when the connection was lost and may have been made.
    WithoutGroups {
        created: bool,
        groups: Vec<String>,
        reason: String,
        doubt: bool,
    },
    /// `--dry-run`: what would be done.
    Would(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated(_) => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Invalid(_) => "invalid",
            Outcome::NotSelected => "not selected",
            Outcome::Failed(_) => "failed",
            Outcome::NotApplied(_) => "not applied",
            Outcome::InDoubt(_) => "in doubt",
            Outcome::WithoutGroups {
                created: true,
                doubt: false,
                ..
            } => "created without groups",
            Outcome::WithoutGroups { doubt: false, .. } => "updated without groups",
            Outcome::WithoutGroups { created: true, .. } => "created, groups in doubt",
            Outcome::WithoutGroups { .. } => "updated, groups in doubt",
            Outcome::Would(_) => "dry run",
        }
    }

    fn detail(&self) -> String {
        match self {
            Outcome::Updated(c) => c.join(","),
            Outcome::Invalid(p) => p
                .iter()
                .map(|p| match &p.column {
                    Some(c) => format!("{c}: {}", p.message),
                    None => p.message.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            Outcome::Failed(r)
            | Outcome::NotApplied(r)
            | Outcome::InDoubt(r)
            | Outcome::Would(r) => r.clone(),
            Outcome::WithoutGroups {
                groups,
                reason,
                doubt: false,
                ..
            } => format!("not in {}: {reason}", groups.join(",")),
            Outcome::WithoutGroups { groups, reason, .. } => {
                format!("maybe not in {}: {reason}", groups.join(","))
            }
            _ => String::new(),
        }
    }
}

/// One row's report line.
pub struct Line {
    pub line: u64,
    pub name: String,
    pub outcome: Outcome,
}

/// The result of an import.
pub struct Report {
    pub lines: Vec<Line>,
    pub groups_created: Vec<String>,
    /// Problems of the file as a whole (its header).
    pub fatal: Vec<Problem>,
    pub dry_run: bool,
}

impl Report {
    pub fn count(&self, label: &str) -> usize {
        self.lines
            .iter()
            .filter(|l| l.outcome.label() == label)
            .count()
    }

    /// True when every selected row was applied (or, with `--skip-invalid`, skipped as bad).
    pub fn complete(&self, skip_invalid: bool) -> bool {
        self.fatal.is_empty()
            && self.lines.iter().all(|l| match &l.outcome {
                Outcome::Invalid(_) => skip_invalid,
                Outcome::Failed(_)
                | Outcome::NotApplied(_)
                | Outcome::InDoubt(_)
                | Outcome::WithoutGroups { .. } => false,
                _ => true,
            })
    }

    /// The report as CSV: one row per line of the file.
    pub fn write_csv(&self, out: &mut dyn Write) -> Result<(), csv::Error> {
        let rows: Vec<Vec<String>> = self
            .lines
            .iter()
            .map(|l| {
                vec![
                    l.line.to_string(),
                    l.name.clone(),
                    l.outcome.label().to_string(),
                    l.outcome.detail(),
                ]
            })
            .collect();
        crate::csvout::write_table(out, &["Line", "Name", "Result", "Detail"], &rows)
    }

    /// The summary a person reads: the rows that need attention, then the counts.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for p in &self.fatal {
            writeln!(out, "{p}")?;
        }
        for l in &self.lines {
            let show = match &l.outcome {
                Outcome::Created
                | Outcome::Updated(_)
                | Outcome::Unchanged
                | Outcome::NotSelected => false,
                // The good rows of a file that is not imported: the count says it.
                Outcome::NotApplied(r) => r != BLOCKED,
                _ => true,
            };
            if show {
                match &l.outcome {
                    Outcome::Invalid(problems) => {
                        for p in problems {
                            writeln!(out, "{p}")?;
                        }
                    }
                    Outcome::Would(what) => {
                        writeln!(out, "line {} {}: would {what}", l.line, l.name)?
                    }
                    o => writeln!(
                        out,
                        "line {} {}: {}: {}",
                        l.line,
                        l.name,
                        o.label(),
                        o.detail()
                    )?,
                }
            }
        }
        let n = |l: &str| self.count(l);
        if self.dry_run {
            writeln!(
                out,
                "dry run, nothing changed: would create {}, update {}, leave {} unchanged; {} invalid, {} not selected{}",
                self.lines.iter().filter(|l| matches!(&l.outcome, Outcome::Would(w) if w.starts_with("create"))).count(),
                self.lines.iter().filter(|l| matches!(&l.outcome, Outcome::Would(w) if w.starts_with("update"))).count(),
                self.lines.iter().filter(|l| matches!(&l.outcome, Outcome::Would(w) if w.starts_with("unchanged"))).count(),
                n("invalid"),
                n("not selected"),
                groups_note(&self.groups_created, "would create groups"),
            )
        } else {
            writeln!(
                out,
                "created {}, updated {}, unchanged {}, skipped {} ({} invalid, {} not selected), failed {}, not applied {}, without groups {}{}{}",
                n("created"),
                n("updated"),
                n("unchanged"),
                n("invalid") + n("not selected"),
                n("invalid"),
                n("not selected"),
                n("failed"),
                n("not applied"),
                n("created without groups") + n("updated without groups"),
                match n("in doubt") + n("created, groups in doubt") + n("updated, groups in doubt") {
                    0 => String::new(),
                    d => format!(", in doubt {d} (run the import again)"),
                },
                groups_note(&self.groups_created, "created groups"),
            )
        }
    }
}

fn groups_note(groups: &[String], what: &str) -> String {
    if groups.is_empty() {
        String::new()
    } else {
        format!("; {what} {}", groups.join(", "))
    }
}

/// The column a server's refusal is about, from the attribute its message names.
fn column_of(message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    const BY_ATTR: [(&str, &str); 13] = [
        ("password", "Password"),
        ("maillocaladdress", "MailAddress"),
        ("rosterforwardingaddress", "MailAddress"),
        ("rosteraccountdisabled", "Enabled"),
        ("rosterrole", "Role"),
        ("rosterservice", "IMAP"),
        ("rosternationalid", "Identifier"),
        ("rostermailquota", "Quota"),
        ("description", "Description"),
        ("mail", "MailAddress"),
        ("uid", "Name"),
        ("sn:", "FullName"),
        ("cn:", "FullName"),
    ];
    BY_ATTR
        .iter()
        .find(|(a, _)| m.contains(a))
        .map(|(_, c)| c.to_string())
}

/// Reads, checks and (unless a dry run) applies the file.
pub fn run(target: &Target, o: &Options) -> anyhow::Result<Report> {
    use anyhow::Context;
    let bytes = std::fs::read(&o.file).with_context(|| format!("read {}", o.file.display()))?;
    let text = csvin::decode(&bytes, o.encoding)
        .map_err(|p| anyhow::anyhow!("{}: {p}", o.file.display()))?;
    let table = csvin::read_users(&text);
    let mut report = Report {
        lines: Vec::new(),
        groups_created: Vec::new(),
        fatal: table
            .problems
            .iter()
            .filter(|p| p.line == 1)
            .cloned()
            .collect(),
        dry_run: o.dry_run,
    };
    if !report.fatal.is_empty() {
        return Ok(report);
    }
    let mut conn = connect::connect(target)?;
    let domain = Domain::read(&mut conn, &o.domain)?;
    let template = match &o.template {
        Some(t) => Some(domain.template(&mut conn, t)?),
        None => None,
    };
    let unknown: Vec<&String> = o
        .select
        .iter()
        .filter(|s| {
            !table
                .rows
                .iter()
                .any(|r| r.get("Name").is_some_and(|n| n.eq_ignore_ascii_case(s)))
        })
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "--select names users that are not in {}: {}",
            o.file.display(),
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rules = Rules {
        domain: &domain,
        template: template.as_ref(),
        create_groups: o.create_groups,
        update_passwords: o.update_passwords,
    };
    // Problems by line; rows by line.
    let mut bad: BTreeMap<u64, (String, Vec<Problem>)> = BTreeMap::new();
    for p in table.problems.iter().filter(|p| p.line > 1) {
        bad.entry(p.line).or_default().1.push(p.clone());
    }
    let mut planned: Vec<Planned> = Vec::new();
    for row in &table.rows {
        let name = row.get("Name").unwrap_or_default().to_string();
        if !o.select.is_empty() && !o.select.contains(&name.to_ascii_lowercase()) {
            report.lines.push(Line {
                line: row.line,
                name,
                outcome: Outcome::NotSelected,
            });
            continue;
        }
        match rules.plan(row) {
            Ok(p) => planned.push(p),
            Err(problems) => {
                let entry = bad.entry(row.line).or_default();
                entry.0 = name;
                entry.1.extend(problems.into_iter().map(|(c, m)| Problem {
                    line: row.line,
                    column: Some(c.to_string()),
                    message: m,
                }));
            }
        }
    }
    for p in plan::cross_check(&domain, &planned) {
        bad.entry(p.line).or_default().1.push(p);
    }
    // The server's own checks, for every change, before any is made.
    let writes: Vec<&Planned> = planned
        .iter()
        .filter(|p| !bad.contains_key(&p.line) && !matches!(p.action, Action::Unchanged { .. }))
        .collect();
    let mut conns = vec![conn];
    while conns.len() < o.connections.clamp(1, 16).min(writes.len().max(1)) {
        conns.push(connect::connect(target)?);
    }
    let progress = progress_bar(writes.len() as u64, "checking");
    let checked = parallel(&mut conns, &writes, |conn, p| {
        progress.inc(1);
        write_user(conn, &p.action, true)
    });
    progress.finish_and_clear();
    for (p, r) in writes.iter().zip(checked) {
        match r {
            Sent::Done(Ok(())) => {}
            Sent::Done(Err(WriteError::Refused { text, rc })) => {
                bad.entry(p.line).or_default().1.push(Problem {
                    line: p.line,
                    column: column_of(&text),
                    message: format!("the server refuses it: {text} (result {rc})"),
                })
            }
            Sent::Done(Err(e)) | Sent::Not(e) => anyhow::bail!("checking line {}: {e}", p.line),
        }
    }
    for (line, (name, problems)) in &bad {
        let name = if name.is_empty() {
            planned
                .iter()
                .find(|p| p.line == *line)
                .map(|p| p.name.clone())
                .or_else(|| table.names.get(line).cloned())
                .unwrap_or_default()
        } else {
            name.clone()
        };
        report.lines.push(Line {
            line: *line,
            name,
            outcome: Outcome::Invalid(problems.clone()),
        });
    }
    let good: Vec<Planned> = planned
        .into_iter()
        .filter(|p| !bad.contains_key(&p.line))
        .collect();
    let mut missing_groups: Vec<String> = Vec::new();
    for p in &good {
        for g in &p.joins {
            if domain.group(g).is_none() && !missing_groups.contains(g) {
                missing_groups.push(g.clone());
            }
        }
    }
    if o.dry_run {
        for p in &good {
            let joins = if p.joins.is_empty() {
                String::new()
            } else {
                format!("; joins {}", p.joins.join(", "))
            };
            let what = match &p.action {
                Action::Create { dn, .. } => format!("create {dn}{joins}"),
                Action::Update { columns, .. } => format!("update {}{joins}", columns.join(", ")),
                Action::Unchanged { .. } if !p.joins.is_empty() => format!("update Groups{joins}"),
                Action::Unchanged { .. } => "unchanged".into(),
            };
            report.lines.push(Line {
                line: p.line,
                name: p.name.clone(),
                outcome: Outcome::Would(what),
            });
        }
        report.groups_created = missing_groups;
        report.lines.sort_by_key(|l| l.line);
        return Ok(report);
    }
    if !bad.is_empty() && !o.skip_invalid {
        for p in &good {
            report.lines.push(Line {
                line: p.line,
                name: p.name.clone(),
                outcome: Outcome::NotApplied(BLOCKED.into()),
            });
        }
        report.lines.sort_by_key(|l| l.line);
        return Ok(report);
    }
    apply(&mut conns, &domain, &good, &mut report);
    report.lines.sort_by_key(|l| l.line);
    Ok(report)
}

fn progress_bar(n: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(n), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} rows ({per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

/// An item's result from [`parallel`].
enum Sent<R> {
    /// `f` ran; a connection error means the change was in flight when the connection was lost.
    Done(Result<R, WriteError>),
    /// Never sent: the connections were lost first, with this error.
    Not(WriteError),
}

/// Runs `f` on every item over the connections, one thread each; results in item order. A
/// connection that fails leaves its thread; the items nobody took are [`Sent::Not`].
fn parallel<T: Sync, R: Send>(
    conns: &mut [LdapConn],
    items: &[T],
    f: impl Fn(&mut LdapConn, &T) -> Result<R, WriteError> + Sync,
) -> Vec<Sent<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, WriteError>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let lost: Mutex<Option<WriteError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for conn in conns.iter_mut() {
            let (next, results, lost, f) = (&next, &results, &lost, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(conn, item);
                let gone = matches!(r, Err(WriteError::Connection(_)));
                if gone {
                    if let (Ok(mut l), Err(e)) = (lost.lock(), &r) {
                        l.get_or_insert(e.clone());
                    }
                }
                if let Ok(mut all) = results.lock() {
                    if let Some(slot) = all.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                if gone {
                    break;
                }
            });
        }
    });
    let lost = lost
        .into_inner()
        .ok()
        .flatten()
        .unwrap_or_else(|| WriteError::Connection("the connection was lost".into()));
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| match r {
            Some(r) => Sent::Done(r),
            None => Sent::Not(lost.clone()),
        })
        .collect()
}

fn write_user(conn: &mut LdapConn, action: &Action, check_only: bool) -> Result<(), WriteError> {
    match action {
        Action::Create { dn, attrs } => ldap::add(conn, dn, attrs, check_only),
        Action::Update { dn, changes, .. } => ldap::modify(conn, dn, changes, check_only),
        Action::Unchanged { .. } => Ok(()),
    }
}

/// Writes the rows chunk by chunk, each chunk's group changes after its users.
fn apply(conns: &mut [LdapConn], domain: &Domain, good: &[Planned], report: &mut Report) {
    // Group name -> DN, for the groups that exist or have been created.
    let mut group_dns: HashMap<String, String> = domain
        .groups
        .iter()
        .map(|(k, g)| (k.clone(), g.dn.clone()))
        .collect();
    let progress = progress_bar(good.len() as u64, "importing");
    let mut stopped: Option<String> = None;
    for chunk in good.chunks(CHUNK) {
        if let Some(reason) = &stopped {
            for p in chunk {
                report.lines.push(Line {
                    line: p.line,
                    name: p.name.clone(),
                    outcome: Outcome::NotApplied(reason.clone()),
                });
            }
            continue;
        }
        let results = parallel(conns, chunk, |conn, p| {
            let r = write_user(conn, &p.action, false);
            progress.inc(1);
            r
        });
        // Row index in the chunk -> its outcome so far.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(chunk.len());
        for (p, r) in chunk.iter().zip(results) {
            outcomes.push(match r {
                Sent::Done(Ok(())) => match &p.action {
                    Action::Create { .. } => Outcome::Created,
                    Action::Update { columns, .. } => Outcome::Updated(columns.clone()),
                    Action::Unchanged { .. } if !p.joins.is_empty() => {
                        Outcome::Updated(vec!["Groups"])
                    }
                    Action::Unchanged { .. } => Outcome::Unchanged,
                },
                Sent::Done(Err(WriteError::Refused { rc, text })) => {
                    Outcome::Failed(format!("{text} (result {rc})"))
                }
                Sent::Done(Err(e @ WriteError::Connection(_))) => {
                    stopped.get_or_insert_with(|| e.to_string());
                    Outcome::InDoubt(format!(
                        "{e}, with the change in flight: it may or may not have been made"
                    ))
                }
                Sent::Not(e) => {
                    stopped.get_or_insert_with(|| e.to_string());
                    Outcome::NotApplied(e.to_string())
                }
            });
        }
        // The chunk's new members of each group, in row order.
        let mut joining: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in chunk.iter().enumerate() {
            let written = matches!(
                outcomes.get(i),
                Some(Outcome::Created | Outcome::Updated(_))
            );
            if written {
                for g in &p.joins {
                    joining.entry(g.clone()).or_default().push(i);
                }
                if !p.joins.is_empty() {
                    if let Some(Outcome::Updated(c)) = outcomes.get_mut(i) {
                        if !c.contains(&"Groups") {
                            c.push("Groups");
                        }
                    }
                }
            }
        }
        let Some(conn) = conns.first_mut() else {
            return;
        };
        for (group, mut rows) in joining {
            // A user removed again after an earlier group's refusal joins no other group.
            rows.retain(|i| !matches!(outcomes.get(*i), Some(Outcome::Failed(_))));
            if rows.is_empty() {
                continue;
            }
            let members: Vec<String> = rows
                .iter()
                .filter_map(|i| chunk.get(*i))
                .map(|p| p.action.dn().to_string())
                .collect();
            let tried = stopped.is_none();
            let r = match &stopped {
                Some(reason) => Err(WriteError::Connection(reason.clone())),
                None => add_members(conn, domain, &mut group_dns, &group, &members, report),
            };
            let Err(e) = r else { continue };
            let refused = matches!(e, WriteError::Refused { .. });
            // A group change cut off in flight may have been made.
            let doubt = tried && !refused;
            if !refused {
                stopped.get_or_insert_with(|| e.to_string());
            }
            for i in rows {
                let (Some(p), Some(outcome)) = (chunk.get(i), outcomes.get_mut(i)) else {
                    continue;
                };
                let created = matches!(outcome, Outcome::Created);
                // A new user whose group is refused is removed again: nothing half-created.
                if created && refused {
                    match ldap::delete(conn, p.action.dn(), None) {
                        Ok(()) => {
                            *outcome = Outcome::Failed(format!(
                                "the group {group} refused the new member ({e}); the user was not kept"
                            ));
                            continue;
                        }
                        Err(d @ WriteError::Connection(_)) => {
                            stopped.get_or_insert_with(|| d.to_string());
                            *outcome = Outcome::InDoubt(format!(
                                "the group {group} refused the new member ({e}); removing the user again lost the connection ({d}): it may still exist"
                            ));
                            continue;
                        }
                        Err(d) => {
                            *outcome = Outcome::WithoutGroups {
                                created,
                                groups: vec![group.clone()],
                                reason: format!("{e}; removing the user failed too: {d}"),
                                doubt: false,
                            };
                            continue;
                        }
                    }
                }
                match outcome {
                    Outcome::WithoutGroups {
                        groups, doubt: d, ..
                    } => {
                        groups.push(group.clone());
                        *d |= doubt;
                    }
                    Outcome::Failed(_) | Outcome::InDoubt(_) => {}
                    _ => {
                        *outcome = Outcome::WithoutGroups {
                            created,
                            groups: vec![group.clone()],
                            reason: e.to_string(),
                            doubt,
                        }
                    }
                }
            }
        }
        for (p, outcome) in chunk.iter().zip(outcomes) {
            report.lines.push(Line {
                line: p.line,
                name: p.name.clone(),
                outcome,
            });
        }
    }
    progress.finish_and_clear();
}

/// Adds `members` to the group named `group` (lower case), creating it with them when it does
/// not exist yet.
fn add_members(
    conn: &mut LdapConn,
    domain: &Domain,
    group_dns: &mut HashMap<String, String>,
    group: &str,
    members: &[String],
    report: &mut Report,
) -> Result<(), WriteError> {
    let mut rest = members;
    if !group_dns.contains_key(group) {
        let (now, later) = rest.split_at(rest.len().min(MEMBERS_PER_CHANGE));
        let dn = domain.group_dn(group);
        ldap::add(
            conn,
            &dn,
            &[
                (
                    "objectClass".into(),
                    vec!["groupOfNames".into(), "rosterGroup".into()],
                ),
                ("cn".into(), vec![group.to_string()]),
                ("member".into(), now.to_vec()),
            ],
            false,
        )?;
        group_dns.insert(group.to_string(), dn);
        report.groups_created.push(group.to_string());
        rest = later;
    }
    let dn = group_dns.get(group).cloned().unwrap_or_default();
    for part in rest.chunks(MEMBERS_PER_CHANGE) {
        ldap::modify(
            conn,
            &dn,
            &[ldap::Change::Add("member".into(), part.to_vec())],
            false,
        )?;
    }
    Ok(())
}
