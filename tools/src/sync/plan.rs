//! What a sync run changes in rosterd: the upstream's users and groups (as read by
//! [`super::upstream`]) against the entries this job mapped before, matched by the upstream's
//! stable id, so that a rename upstream is a rename here and never a delete and an add. Pure:
//! no connection, so every rule is tested without a server.

use super::config::{Deleted, Nested, SyncConfig};
use super::upstream::{Snapshot, UGroup, UUser};
use crate::domain::{dn_key, Domain, Template};
use crate::ldap::Change;
use std::collections::{HashMap, HashSet};

/// A user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

/// What a run does to one entry, as the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Created,
    Updated,
    Renamed,
    Disabled,
    Deleted,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "create",
            Outcome::Updated => "update",
            Outcome::Renamed => "rename",
            Outcome::Disabled => "disable",
            Outcome::Deleted => "delete",
        }
    }
}

/// One LDAP change; an entry's steps run in order and stop at the first refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Add {
        dn: String,
        attrs: Vec<(String, Vec<String>)>,
    },
    /// Renames `dn` to `new_rdn` under the same parent.
    Rename {
        dn: String,
        new_rdn: String,
    },
    Modify {
        dn: String,
        changes: Vec<Change>,
    },
    Delete {
        dn: String,
    },
}

/// The changes of one entry.
#[derive(Debug, Clone)]
pub struct EntryPlan {
    pub kind: Kind,
    /// The entry's name here (uid or cn), after the run.
    pub name: String,
    /// Its DN upstream (read again by the next run if a step is refused).
    pub upstream_dn: String,
    /// Its stable id upstream.
    pub upstream_id: String,
    pub outcome: Outcome,
    /// What differs, for the dry run's listing (attribute names, old -> new names).
    pub detail: String,
    pub steps: Vec<Step>,
}

/// An upstream entry the run leaves alone, and why.
#[derive(Debug, Clone)]
pub struct Problem {
    pub upstream_dn: String,
    pub reason: String,
}

/// Everything one run would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub entries: Vec<EntryPlan>,
    pub problems: Vec<Problem>,
    pub unchanged_users: usize,
    pub unchanged_groups: usize,
    /// Entries mapped by the job before the run (the base of the deletion cap).
    pub mapped: usize,
    /// Deletions (and disables of vanished users) the plan holds.
    pub removals: usize,
    /// The upstream ids of those entries.
    pub removed_ids: Vec<String>,
    /// Addresses left out because they are not in one of the domain's names.
    pub foreign_addresses: usize,
}

/// The user attributes a job owns on the entries it maps; everything else (role, services,
/// quota, forwarding set by an administrator) is left as it is.
fn lower_set(v: &[String]) -> HashSet<String> {
    v.iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// Addresses in one of the domain's names, primary first; the number left out.
fn own_addresses(domain: &Domain, addresses: &[String]) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut left = 0;
    for a in addresses {
        let d = a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        if d.is_some_and(|d| domain.names.contains(&d)) {
            out.push(a.to_ascii_lowercase());
        } else {
            left += 1;
        }
    }
    (out, left)
}

/// The last word of a full name, for inetOrgPerson's `sn`.
fn surname_of(u: &UUser) -> String {
    u.surname.clone().unwrap_or_else(|| {
        u.full_name
            .as_deref()
            .and_then(|f| f.split_whitespace().last())
            .unwrap_or(&u.name)
            .to_string()
    })
}

fn full_name_of(u: &UUser) -> String {
    u.full_name
        .clone()
        .unwrap_or_else(|| match (&u.given_name, &u.surname) {
            (Some(g), Some(s)) => format!("{g} {s}"),
            _ => u.name.clone(),
        })
}

/// Replaces `attr` with `want` when the stored values differ (empty `want`: removes it).
fn set_attr(
    changes: &mut Vec<Change>,
    what: &mut Vec<String>,
    attr: &str,
    have: &[String],
    want: &[String],
) {
    let same = if attr == "mailLocalAddress" {
        lower_set(have) == lower_set(want)
    } else {
        have.len() == want.len() && have.iter().zip(want).all(|(a, b)| a == b)
    };
    if same {
        return;
    }
    what.push(attr.to_string());
    if want.is_empty() {
        changes.push(Change::Replace(attr.into(), Vec::new()));
    } else {
        changes.push(Change::Replace(attr.into(), want.to_vec()));
    }
}

fn opt(v: &Option<String>) -> Vec<String> {
    v.iter().filter(|s| !s.is_empty()).cloned().collect()
}

fn nonempty(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        vec![s.to_string()]
    }
}

/// Plans a run. `full`: the snapshot holds everything the filters select, so mapped entries
/// missing from it are gone; otherwise only `snap.gone` are.
pub fn plan(
    cfg: &SyncConfig,
    domain: &Domain,
    snap: &Snapshot,
    template: Option<&Template>,
) -> Plan {
    let job = cfg.name.to_ascii_lowercase();
    let mut p = Plan::default();
    // Entries this job mapped before, by upstream id.
    let mut users_by_id: HashMap<String, &crate::domain::User> = HashMap::new();
    for u in domain.users.values() {
        if u.upstream.to_ascii_lowercase() == job && !u.upstream_id.is_empty() {
            users_by_id.insert(u.upstream_id.to_ascii_lowercase(), u);
        }
    }
    let mut groups_by_id: HashMap<String, &crate::domain::Group> = HashMap::new();
    for g in domain.groups.values() {
        if g.upstream.to_ascii_lowercase() == job && !g.upstream_id.is_empty() {
            groups_by_id.insert(g.upstream_id.to_ascii_lowercase(), g);
        }
    }
    p.mapped = users_by_id.len() + groups_by_id.len();
    // Upstream DN -> DN here, for group members: what was mapped, then what this run maps.
    let mut dn_here: HashMap<String, String> = HashMap::new();
    for u in users_by_id.values() {
        if !u.upstream_dn.is_empty() {
            dn_here.insert(dn_key(&u.upstream_dn), u.dn.clone());
        }
    }
    // Names taken here after the run, to refuse two entries one name.
    let mut taken: HashMap<String, String> = domain
        .users
        .values()
        .map(|u| {
            (
                u.uid.to_ascii_lowercase(),
                u.upstream_id.to_ascii_lowercase(),
            )
        })
        .collect();
    let unreadable_ids: HashSet<String> = snap
        .unreadable
        .iter()
        .filter_map(|u| u.id.clone())
        .collect();
    for u in &snap.unreadable {
        p.problems.push(Problem {
            upstream_dn: u.dn.clone(),
            reason: u.reason.clone(),
        });
    }
    let mut seen_users: HashSet<String> = HashSet::new();
    for u in &snap.users {
        seen_users.insert(u.id.clone());
        match plan_user(
            cfg,
            domain,
            u,
            users_by_id.get(&u.id).copied(),
            template,
            &mut taken,
            &mut p,
        ) {
            Ok(Some((dn, e))) => {
                dn_here.insert(dn_key(&u.dn), dn);
                p.entries.push(e);
            }
            Ok(None) => {
                if let Some(old) = users_by_id.get(&u.id) {
                    dn_here.insert(dn_key(&u.dn), old.dn.clone());
                }
                p.unchanged_users += 1;
            }
            Err(reason) => {
                // Groups still name it where it is.
                if let Some(old) = users_by_id.get(&u.id) {
                    dn_here.insert(dn_key(&u.dn), old.dn.clone());
                }
                p.problems.push(Problem {
                    upstream_dn: u.dn.clone(),
                    reason,
                })
            }
        }
    }
    // Users renamed by this run: groups name them by their new DN once the rename is made
    // (the server rewrites the member values), so groups are planned against that.
    let mut renamed: HashMap<String, String> = HashMap::new();
    for e in &p.entries {
        for s in &e.steps {
            if let Step::Rename { dn, new_rdn } = s {
                if e.kind == Kind::User {
                    let parent = dn.split_once(',').map(|(_, p)| p).unwrap_or("");
                    renamed.insert(dn_key(dn), dn_key(&format!("{new_rdn},{parent}")));
                }
            }
        }
    }
    // Groups of this run by upstream DN, for flattening.
    let group_dns: HashSet<String> = snap.groups.iter().map(|g| dn_key(&g.dn)).collect();
    let mut group_names: HashMap<String, String> = domain
        .groups
        .values()
        .map(|g| {
            (
                g.cn.to_ascii_lowercase(),
                g.upstream_id.to_ascii_lowercase(),
            )
        })
        .collect();
    let mut seen_groups: HashSet<String> = HashSet::new();
    for g in &snap.groups {
        seen_groups.insert(g.id.clone());
        let members = members_here(cfg, snap, g, &group_dns, &dn_here);
        let old = groups_by_id.get(&g.id).map(|old| {
            let mut old = (*old).clone();
            old.members = old
                .members
                .iter()
                .map(|m| renamed.get(m).cloned().unwrap_or_else(|| m.clone()))
                .collect();
            old
        });
        match plan_group(
            cfg,
            domain,
            g,
            old.as_ref(),
            &members,
            &mut group_names,
            &mut p,
        ) {
            Ok(Some(e)) => p.entries.push(e),
            Ok(None) => p.unchanged_groups += 1,
            Err(reason) => p.problems.push(Problem {
                upstream_dn: g.dn.clone(),
                reason,
            }),
        }
    }
    // What is gone: on a full run, every mapped entry the upstream no longer has (unless it
    // could not be read this time); on an incremental run, what the upstream said is gone.
    let gone = |id: &String, seen: &HashSet<String>| {
        if snap.full {
            !seen.contains(id) && !unreadable_ids.contains(id)
        } else {
            snap.gone.contains(id) && !seen.contains(id) && !unreadable_ids.contains(id)
        }
    };
    let mut gone_users: Vec<&&crate::domain::User> = users_by_id
        .iter()
        .filter(|(id, _)| gone(id, &seen_users))
        .map(|(_, u)| u)
        .collect();
    gone_users.sort_by(|a, b| a.uid.cmp(&b.uid));
    for u in gone_users {
        let upstream_dn = u.upstream_dn.clone();
        match cfg.deleted {
            Deleted::Delete => {
                p.removals += 1;
                p.removed_ids.push(u.upstream_id.clone());
                p.entries.push(EntryPlan {
                    kind: Kind::User,
                    name: u.uid.clone(),
                    upstream_dn,
                    upstream_id: u.upstream_id.clone(),
                    outcome: Outcome::Deleted,
                    detail: String::new(),
                    steps: vec![Step::Delete { dn: u.dn.clone() }],
                });
            }
            Deleted::Disable if u.disabled => p.unchanged_users += 1,
            Deleted::Disable => {
                p.removals += 1;
                p.removed_ids.push(u.upstream_id.clone());
                p.entries.push(EntryPlan {
                    kind: Kind::User,
                    name: u.uid.clone(),
                    upstream_dn,
                    upstream_id: u.upstream_id.clone(),
                    outcome: Outcome::Disabled,
                    detail: "gone upstream".into(),
                    steps: vec![Step::Modify {
                        dn: u.dn.clone(),
                        changes: vec![Change::Replace(
                            "rosterAccountDisabled".into(),
                            vec!["TRUE".into()],
                        )],
                    }],
                });
            }
        }
    }
    let mut gone_groups: Vec<&&crate::domain::Group> = groups_by_id
        .iter()
        .filter(|(id, _)| gone(id, &seen_groups) && !seen_users.contains(*id))
        .map(|(_, g)| g)
        .collect();
    gone_groups.sort_by(|a, b| a.cn.cmp(&b.cn));
    for g in gone_groups {
        p.removals += 1;
        p.removed_ids.push(g.upstream_id.clone());
        p.entries.push(EntryPlan {
            kind: Kind::Group,
            name: g.cn.clone(),
            upstream_dn: g.upstream_dn.clone(),
            upstream_id: g.upstream_id.clone(),
            outcome: Outcome::Deleted,
            detail: String::new(),
            steps: vec![Step::Delete { dn: g.dn.clone() }],
        });
    }
    p
}

/// The DNs here of a group's upstream members: mapped users, and with flattening the users
/// of member groups at any depth. Members the job does not map are left out.
fn members_here(
    cfg: &SyncConfig,
    snap: &Snapshot,
    g: &UGroup,
    group_dns: &HashSet<String>,
    dn_here: &HashMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: Vec<String> = g.members.iter().map(|m| dn_key(m)).collect();
    let mut visited: HashSet<String> = HashSet::new();
    visited.insert(dn_key(&g.dn));
    let by_dn: HashMap<String, &UGroup> = snap.groups.iter().map(|x| (dn_key(&x.dn), x)).collect();
    while let Some(m) = queue.pop() {
        if let Some(here) = dn_here.get(&m) {
            if seen.insert(dn_key(here)) {
                out.push(here.clone());
            }
            continue;
        }
        if cfg.nested != Nested::Flatten || !visited.insert(m.clone()) {
            continue;
        }
        if let Some(inner) = by_dn.get(&m) {
            queue.extend(inner.members.iter().map(|x| dn_key(x)));
        } else if let Some(inner) = snap.nested.get(&m) {
            queue.extend(inner.iter().map(|x| dn_key(x)));
        } else if group_dns.contains(&m) {
            continue;
        }
    }
    out.sort();
    out
}

/// A user's plan: `None` when nothing differs; the DN it has after the run.
fn plan_user(
    cfg: &SyncConfig,
    domain: &Domain,
    u: &UUser,
    old: Option<&crate::domain::User>,
    template: Option<&Template>,
    taken: &mut HashMap<String, String>,
    p: &mut Plan,
) -> Result<Option<(String, EntryPlan)>, String> {
    roster_schema::names::check_username(&u.name)?;
    let key = u.name.to_ascii_lowercase();
    if let Some(holder) = taken.get(&key) {
        if *holder != u.id {
            return Err(if holder.is_empty() {
                format!(
                    "a local user named {:?} exists here; it is not taken over",
                    u.name
                )
            } else {
                format!(
                    "another upstream entry is mapped to the user name {:?}",
                    u.name
                )
            });
        }
    }
    let (addresses, left) = own_addresses(domain, &u.addresses);
    p.foreign_addresses += left;
    let cn = full_name_of(u);
    let sn = surname_of(u);
    let primary: Vec<String> = addresses.first().cloned().into_iter().collect();
    let Some(old) = old else {
        taken.insert(key, u.id.clone());
        let dn = domain.user_dn(&u.name);
        let mut attrs: Vec<(String, Vec<String>)> = vec![
            (
                "objectClass".into(),
                vec!["inetOrgPerson".into(), "rosterMailUser".into()],
            ),
            ("uid".into(), vec![u.name.clone()]),
            ("cn".into(), vec![cn]),
            ("sn".into(), vec![sn]),
            ("rosterUpstream".into(), vec![cfg.name.clone()]),
            ("rosterUpstreamId".into(), vec![u.id.clone()]),
            ("rosterUpstreamDn".into(), vec![u.dn.clone()]),
        ];
        for (attr, v) in [
            ("givenName", &u.given_name),
            ("description", &u.description),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                attrs.push((attr.into(), vec![v.clone()]));
            }
        }
        if !addresses.is_empty() {
            attrs.push(("mail".into(), primary));
            attrs.push(("mailLocalAddress".into(), addresses));
        }
        if let Some(t) = template {
            for (attr, v) in [
                ("rosterRole", &t.role),
                ("rosterMailboxEnabled", &t.mailbox),
                ("rosterMailQuota", &t.quota),
            ] {
                if let Some(v) = v {
                    attrs.push((attr.into(), vec![v.clone()]));
                }
            }
            if let Some(s) = &t.services {
                attrs.push(("rosterService".into(), s.clone()));
            }
            if !t.forwarding.is_empty() {
                attrs.push(("rosterForwardingAddress".into(), t.forwarding.clone()));
            }
        }
        if u.disabled {
            attrs.push(("rosterAccountDisabled".into(), vec!["TRUE".into()]));
        }
        return Ok(Some((
            dn.clone(),
            EntryPlan {
                kind: Kind::User,
                name: u.name.clone(),
                upstream_dn: u.dn.clone(),
                upstream_id: u.id.clone(),
                outcome: Outcome::Created,
                detail: String::new(),
                steps: vec![Step::Add { dn, attrs }],
            },
        )));
    };
    let mut steps = Vec::new();
    let mut what: Vec<String> = Vec::new();
    let mut dn = old.dn.clone();
    let mut outcome = Outcome::Updated;
    if old.uid != u.name {
        taken.remove(&old.uid.to_ascii_lowercase());
        taken.insert(key, u.id.clone());
        let new_rdn = format!("uid={}", crate::ldap::escape_rdn_value(&u.name));
        if old.uid.eq_ignore_ascii_case(&u.name) {
            // Only the case differs: the entry keeps its DN, uid takes the new spelling.
            what.push("uid".into());
        } else {
            steps.push(Step::Rename {
                dn: old.dn.clone(),
                new_rdn,
            });
            dn = domain.user_dn(&u.name);
            outcome = Outcome::Renamed;
            what.push(format!("{} -> {}", old.uid, u.name));
        }
    }
    let mut changes = Vec::new();
    if old.uid != u.name && old.uid.eq_ignore_ascii_case(&u.name) {
        changes.push(Change::Replace("uid".into(), vec![u.name.clone()]));
    }
    for (attr, have, want) in [
        ("cn", nonempty(&old.cn), vec![cn]),
        ("sn", nonempty(&old.surname), vec![sn]),
        ("givenName", nonempty(&old.given_name), opt(&u.given_name)),
        (
            "description",
            nonempty(&old.description),
            opt(&u.description),
        ),
        (
            "rosterUpstreamDn",
            nonempty(&old.upstream_dn),
            vec![u.dn.clone()],
        ),
    ] {
        set_attr(&mut changes, &mut what, attr, &have, &want);
    }
    // The primary address first, so that the server keeps it among the delivering ones.
    let mail_differs = !old
        .mail
        .eq_ignore_ascii_case(primary.first().map(String::as_str).unwrap_or(""));
    if mail_differs || lower_set(&old.local) != lower_set(&addresses) {
        what.push("addresses".into());
        changes.push(Change::Replace(
            "mailLocalAddress".into(),
            addresses.clone(),
        ));
        changes.push(Change::Replace("mail".into(), primary));
    }
    if u.disabled != old.disabled {
        if u.disabled {
            what.push("disabled".into());
            changes.push(Change::Replace(
                "rosterAccountDisabled".into(),
                vec!["TRUE".into()],
            ));
            if outcome == Outcome::Updated {
                outcome = Outcome::Disabled;
            }
        } else {
            what.push("enabled".into());
            changes.push(Change::Replace("rosterAccountDisabled".into(), Vec::new()));
        }
    }
    if !changes.is_empty() {
        steps.push(Step::Modify {
            dn: dn.clone(),
            changes,
        });
    }
    if steps.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        dn,
        EntryPlan {
            kind: Kind::User,
            name: u.name.clone(),
            upstream_dn: u.dn.clone(),
            upstream_id: u.id.clone(),
            outcome,
            detail: what.join(", "),
            steps,
        },
    )))
}

fn plan_group(
    cfg: &SyncConfig,
    domain: &Domain,
    g: &UGroup,
    old: Option<&crate::domain::Group>,
    members: &[String],
    names: &mut HashMap<String, String>,
    p: &mut Plan,
) -> Result<Option<EntryPlan>, String> {
    if g.name.trim().is_empty() || g.name.len() > 64 {
        return Err(format!("{:?}: a group name has 1 to 64 characters", g.name));
    }
    let key = g.name.to_ascii_lowercase();
    if let Some(holder) = names.get(&key) {
        if *holder != g.id {
            return Err(if holder.is_empty() {
                format!(
                    "a local group named {:?} exists here; it is not taken over",
                    g.name
                )
            } else {
                format!("another upstream group is mapped to the name {:?}", g.name)
            });
        }
    }
    let (addresses, left) = own_addresses(domain, &g.addresses);
    p.foreign_addresses += left;
    let Some(old) = old else {
        names.insert(key, g.id.clone());
        let dn = domain.group_dn(&g.name);
        let mut attrs: Vec<(String, Vec<String>)> = vec![
            (
                "objectClass".into(),
                vec!["groupOfNames".into(), "rosterGroup".into()],
            ),
            ("cn".into(), vec![g.name.clone()]),
            ("rosterUpstream".into(), vec![cfg.name.clone()]),
            ("rosterUpstreamId".into(), vec![g.id.clone()]),
            ("rosterUpstreamDn".into(), vec![g.dn.clone()]),
        ];
        if let Some(d) = g.description.as_ref().filter(|d| !d.is_empty()) {
            attrs.push(("description".into(), vec![d.clone()]));
        }
        if !addresses.is_empty() {
            attrs.push(("mailLocalAddress".into(), addresses));
        }
        if !members.is_empty() {
            attrs.push(("member".into(), members.to_vec()));
        }
        return Ok(Some(EntryPlan {
            kind: Kind::Group,
            name: g.name.clone(),
            upstream_dn: g.dn.clone(),
            upstream_id: g.id.clone(),
            outcome: Outcome::Created,
            detail: format!("{} members", members.len()),
            steps: vec![Step::Add { dn, attrs }],
        }));
    };
    let mut steps = Vec::new();
    let mut what = Vec::new();
    let mut outcome = Outcome::Updated;
    let mut dn = old.dn.clone();
    let mut changes = Vec::new();
    if old.cn != g.name {
        names.remove(&old.cn.to_ascii_lowercase());
        names.insert(key, g.id.clone());
        if old.cn.eq_ignore_ascii_case(&g.name) {
            what.push("cn".into());
            changes.push(Change::Replace("cn".into(), vec![g.name.clone()]));
        } else {
            steps.push(Step::Rename {
                dn: old.dn.clone(),
                new_rdn: format!("cn={}", crate::ldap::escape_rdn_value(&g.name)),
            });
            dn = domain.group_dn(&g.name);
            outcome = Outcome::Renamed;
            what.push(format!("{} -> {}", old.cn, g.name));
        }
    }
    for (attr, have, want) in [
        (
            "description",
            nonempty(&old.description),
            opt(&g.description),
        ),
        ("mailLocalAddress", old.addresses.clone(), addresses),
        (
            "rosterUpstreamDn",
            nonempty(&old.upstream_dn),
            vec![g.dn.clone()],
        ),
    ] {
        set_attr(&mut changes, &mut what, attr, &have, &want);
    }
    // Members: the upstream's mapped members; members an administrator added here that this
    // job does not map (a contact, a local user) stay.
    let want: HashSet<String> = members.iter().map(|m| dn_key(m)).collect();
    let mapped_here: HashSet<String> = domain
        .users
        .values()
        .filter(|u| u.upstream.eq_ignore_ascii_case(&cfg.name))
        .map(|u| dn_key(&u.dn))
        .chain(
            p.entries
                .iter()
                .filter(|e| e.kind == Kind::User)
                .flat_map(|e| {
                    e.steps.iter().filter_map(|s| match s {
                        Step::Add { dn, .. } => Some(dn_key(dn)),
                        Step::Rename { dn, new_rdn } => {
                            let parent = dn.split_once(',').map(|(_, p)| p).unwrap_or("");
                            Some(dn_key(&format!("{new_rdn},{parent}")))
                        }
                        _ => None,
                    })
                }),
        )
        .collect();
    let add: Vec<String> = members
        .iter()
        .filter(|m| !old.members.contains(&dn_key(m)))
        .cloned()
        .collect();
    let mut remove: Vec<String> = old
        .members
        .iter()
        .filter(|m| mapped_here.contains(*m) && !want.contains(*m))
        .cloned()
        .collect();
    remove.sort();
    if !add.is_empty() {
        what.push(format!("+{} members", add.len()));
        changes.push(Change::Add("member".into(), add));
    }
    if !remove.is_empty() {
        what.push(format!("-{} members", remove.len()));
        changes.push(Change::Delete("member".into(), remove));
    }
    if !changes.is_empty() {
        steps.push(Step::Modify { dn, changes });
    }
    if steps.is_empty() {
        return Ok(None);
    }
    Ok(Some(EntryPlan {
        kind: Kind::Group,
        name: g.name.clone(),
        upstream_dn: g.dn.clone(),
        upstream_id: g.id.clone(),
        outcome,
        detail: what.join(", "),
        steps,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Group, User};
    use std::path::Path;

    fn cfg(extra: &str) -> SyncConfig {
        SyncConfig::parse(
            Path::new("sync.toml"),
            &format!(
                r#"name = "corp"
domain = "example.com"
{extra}
[upstream]
kind = "ad"
url = "ldaps://127.0.0.1"
bind_dn = "CN=Administrator,CN=Users,DC=corp"
password_file = "pw"
[users]
base = ["CN=Users,DC=corp"]
"#
            ),
        )
        .unwrap()
    }

    fn domain() -> Domain {
        Domain {
            name: "example.com".into(),
            base: "dc=example,dc=com".into(),
            names: vec!["example.com".into()],
            users_ou: "ou=users,dc=example,dc=com".into(),
            groups_ou: "ou=groups,dc=example,dc=com".into(),
            ..Domain::default()
        }
    }

    fn uuser(id: &str, name: &str) -> UUser {
        UUser {
            id: id.into(),
            dn: format!("CN={name},CN=Users,DC=corp"),
            name: name.into(),
            full_name: Some(format!("{name} Bird")),
            addresses: vec![
                format!("{name}@example.com"),
                format!("{name}@corp.example.com"),
            ],
            ..UUser::default()
        }
    }

    fn mapped(id: &str, name: &str) -> User {
        User {
            dn: format!("uid={name},ou=users,dc=example,dc=com"),
            uid: name.into(),
            cn: format!("{name} Bird"),
            surname: "Bird".into(),
            mail: format!("{name}@example.com"),
            local: vec![format!("{name}@example.com")],
            upstream: "corp".into(),
            upstream_id: id.into(),
            upstream_dn: format!("CN={name},CN=Users,DC=corp"),
            ..User::default()
        }
    }

    fn with(users: Vec<User>) -> Domain {
        let mut d = domain();
        for u in users {
            d.users.insert(u.uid.to_ascii_lowercase(), u);
        }
        d
    }

    fn snap(full: bool, users: Vec<UUser>) -> Snapshot {
        Snapshot {
            full,
            users,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_new_user_is_created_with_its_origin_and_own_addresses() {
        let p = plan(
            &cfg(""),
            &domain(),
            &snap(true, vec![uuser("id-1", "ann")]),
            None,
        );
        assert_eq!(p.entries.len(), 1);
        let e = &p.entries[0];
        assert_eq!(e.outcome, Outcome::Created);
        let Step::Add { dn, attrs } = &e.steps[0] else {
            panic!()
        };
        assert_eq!(dn, "uid=ann,ou=users,dc=example,dc=com");
        let get = |a: &str| attrs.iter().find(|(k, _)| k == a).map(|(_, v)| v.clone());
        assert_eq!(get("rosterUpstreamId"), Some(vec!["id-1".into()]));
        assert_eq!(
            get("mailLocalAddress"),
            Some(vec!["ann@example.com".into()])
        );
        assert_eq!(get("userPassword"), None);
        assert_eq!(p.foreign_addresses, 1);
    }

    #[test]
    fn an_unchanged_user_is_left_alone_and_a_renamed_one_is_renamed() {
        let d = with(vec![mapped("id-1", "ann")]);
        let p = plan(&cfg(""), &d, &snap(true, vec![uuser("id-1", "ann")]), None);
        assert!(p.entries.is_empty(), "{:?}", p.entries);
        assert_eq!(p.unchanged_users, 1);
        let mut renamed = uuser("id-1", "anne");
        renamed.addresses = vec!["ann@example.com".into()];
        renamed.full_name = Some("ann Bird".into());
        renamed.dn = "CN=ann,CN=Users,DC=corp".into();
        let p = plan(&cfg(""), &d, &snap(true, vec![renamed]), None);
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].outcome, Outcome::Renamed);
        assert_eq!(
            p.entries[0].steps,
            vec![Step::Rename {
                dn: "uid=ann,ou=users,dc=example,dc=com".into(),
                new_rdn: "uid=anne".into()
            }]
        );
    }

    #[test]
    fn gone_users_are_deleted_or_disabled_and_counted() {
        let d = with(vec![mapped("id-1", "ann"), mapped("id-2", "bob")]);
        let p = plan(&cfg(""), &d, &snap(true, vec![uuser("id-1", "ann")]), None);
        assert_eq!(p.removals, 1);
        assert_eq!(p.entries[0].outcome, Outcome::Deleted);
        let p = plan(
            &cfg("deleted = \"disable\""),
            &d,
            &snap(true, vec![uuser("id-1", "ann")]),
            None,
        );
        assert_eq!(p.entries[0].outcome, Outcome::Disabled);
        // Incremental: only what the upstream says is gone.
        let p = plan(&cfg(""), &d, &snap(false, vec![]), None);
        assert!(p.entries.is_empty());
        let mut s = snap(false, vec![]);
        s.gone.insert("id-2".into());
        let p = plan(&cfg(""), &d, &s, None);
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].name, "bob");
    }

    #[test]
    fn a_local_user_of_the_same_name_is_not_taken_over() {
        let mut local = mapped("", "ann");
        local.upstream.clear();
        let p = plan(
            &cfg(""),
            &with(vec![local]),
            &snap(true, vec![uuser("id-1", "ann")]),
            None,
        );
        assert!(p.entries.is_empty());
        assert!(
            p.problems[0].reason.contains("local user"),
            "{:?}",
            p.problems
        );
        // And a local user is never deleted by a full run.
        assert_eq!(p.removals, 0);
    }

    #[test]
    fn group_members_map_to_users_here_and_nesting_is_flattened_on_request() {
        let d = with(vec![mapped("id-1", "ann"), mapped("id-2", "bob")]);
        let mut s = snap(true, vec![uuser("id-1", "ann"), uuser("id-2", "bob")]);
        s.users[0].addresses = vec!["ann@example.com".into()];
        s.users[1].addresses = vec!["bob@example.com".into()];
        s.groups = vec![
            UGroup {
                id: "g-1".into(),
                dn: "CN=All,CN=Users,DC=corp".into(),
                name: "All".into(),
                members: vec![
                    "CN=ann,CN=Users,DC=corp".into(),
                    "CN=Inner,CN=Users,DC=corp".into(),
                    "CN=stranger,DC=corp".into(),
                ],
                ..UGroup::default()
            },
            UGroup {
                id: "g-2".into(),
                dn: "CN=Inner,CN=Users,DC=corp".into(),
                name: "Inner".into(),
                members: vec!["cn=bob,cn=users,dc=corp".into()],
                ..UGroup::default()
            },
        ];
        let p = plan(&cfg(""), &d, &s, None);
        let all = p.entries.iter().find(|e| e.name == "All").unwrap();
        let Step::Add { attrs, .. } = &all.steps[0] else {
            panic!()
        };
        let members = attrs.iter().find(|(k, _)| k == "member").unwrap();
        assert_eq!(
            members.1,
            vec!["uid=ann,ou=users,dc=example,dc=com".to_string()]
        );
        let p = plan(&cfg("nested_groups = \"flatten\""), &d, &s, None);
        let all = p.entries.iter().find(|e| e.name == "All").unwrap();
        let Step::Add { attrs, .. } = &all.steps[0] else {
            panic!()
        };
        let members = attrs.iter().find(|(k, _)| k == "member").unwrap();
        assert_eq!(members.1.len(), 2);
    }

    #[test]
    fn local_members_of_a_mapped_group_stay() {
        let mut d = with(vec![mapped("id-1", "ann"), mapped("id-2", "bob")]);
        d.groups.insert(
            "all".into(),
            Group {
                dn: "cn=All,ou=groups,dc=example,dc=com".into(),
                cn: "All".into(),
                members: [
                    "uid=ann,ou=users,dc=example,dc=com".to_string(),
                    "uid=bob,ou=users,dc=example,dc=com".to_string(),
                    "cn=partner,ou=contacts,dc=example,dc=com".to_string(),
                ]
                .into(),
                upstream: "corp".into(),
                upstream_id: "g-1".into(),
                upstream_dn: "CN=All,CN=Users,DC=corp".into(),
                ..Group::default()
            },
        );
        let mut s = snap(true, vec![uuser("id-1", "ann"), uuser("id-2", "bob")]);
        for u in &mut s.users {
            u.addresses.truncate(1);
        }
        s.groups = vec![UGroup {
            id: "g-1".into(),
            dn: "CN=All,CN=Users,DC=corp".into(),
            name: "All".into(),
            members: vec!["CN=ann,CN=Users,DC=corp".into()],
            ..UGroup::default()
        }];
        let p = plan(&cfg(""), &d, &s, None);
        assert_eq!(p.entries.len(), 1, "{:?}", p.entries);
        let Step::Modify { changes, .. } = &p.entries[0].steps[0] else {
            panic!()
        };
        assert_eq!(
            changes,
            &vec![Change::Delete(
                "member".into(),
                vec!["uid=bob,ou=users,dc=example,dc=com".into()]
            )]
        );
    }
}
