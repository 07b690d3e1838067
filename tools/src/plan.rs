//! From a CSV row and the domain as it is to the change the import makes: a new user, the
//! changes to an existing one, or nothing. Pure: no LDAP here.
//!
//! The rules a file's administrator relies on:
//! - an empty cell (or a missing column) keeps what an existing user has, and gives a new
//!   user the template's or the built-in default;
//! - `MailAddress` holds local parts or whole addresses, the first is the primary one; a new
//!   user without one gets `<name>@<domain>`;
//! - `Groups` adds the user to those groups and takes it out of none;
//! - `Password` sets the password of new users; existing users keep theirs unless the import
//!   is told to update passwords (re-importing the file that created them would otherwise put
//!   back every first password);
//! - `IMAP` and `POP3` give or take both the plain and the TLS variant of the service.

use crate::csvin::{Problem, Row};
use crate::domain::{dn_key, Domain, Template, User};
use crate::ldap::Change;

/// The built-in services of a new user.
pub const DEFAULT_SERVICES: [&str; 6] = [
    "imap",
    "imapsecured",
    "pop3",
    "pop3secured",
    "smtp",
    "smtpsecured",
];

/// What the import does with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        dn: String,
        attrs: Vec<(String, Vec<String>)>,
    },
    Update {
        dn: String,
        changes: Vec<Change>,
        /// The columns whose values change, for the summary.
        columns: Vec<&'static str>,
    },
    Unchanged {
        dn: String,
    },
}

impl Action {
    pub fn dn(&self) -> &str {
        match self {
            Action::Create { dn, .. } | Action::Update { dn, .. } | Action::Unchanged { dn } => dn,
        }
    }
}

/// One row's plan: the user change and the groups (lower-case names) the user joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub line: u64,
    pub name: String,
    pub action: Action,
    pub joins: Vec<String>,
}

/// How rows are planned.
pub struct Rules<'a> {
    pub domain: &'a Domain,
    pub template: Option<&'a Template>,
    /// Groups missing from the domain are created (otherwise such a row is bad).
    pub create_groups: bool,
    /// Passwords in the file replace those of existing users.
    pub update_passwords: bool,
}

fn yes_no(column: &'static str, v: &str) -> Result<bool, (&'static str, String)> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "on" => Ok(true),
        "no" | "n" | "false" | "0" | "off" => Ok(false),
        _ => Err((column, format!("{v:?}: yes or no"))),
    }
}

/// A quota in bytes, from bytes or a number with K, M, G or T (powers of 1024).
pub fn quota_bytes(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let factor: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{v:?}: bytes, or a number with K, M, G or T")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{v:?}: bytes, or a number with K, M, G or T"))
}

/// The last word of a full name (the surname `sn` that inetOrgPerson requires).
fn surname(full: &str) -> String {
    full.split_whitespace().last().unwrap_or(full).to_string()
}

/// A service family given (`imap`: imap and imapsecured) or taken.
fn set_family(services: &mut Vec<String>, family: &str, on: bool) {
    let has = services.iter().any(|s| {
        s.eq_ignore_ascii_case(family) || s.eq_ignore_ascii_case(&format!("{family}secured"))
    });
    if on && !has {
        services.push(family.to_string());
        services.push(format!("{family}secured"));
    } else if !on {
        services.retain(|s| {
            !s.eq_ignore_ascii_case(family) && !s.eq_ignore_ascii_case(&format!("{family}secured"))
        });
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    norm(a) == norm(b)
}

impl Rules<'_> {
    /// The row's addresses as whole addresses, each checked.
    fn addresses(&self, row: &Row, problems: &mut Vec<(&'static str, String)>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in row.cells.get("MailAddress").into_iter().flatten() {
            let full = if v.contains('@') {
                v.clone()
            } else {
                format!("{v}@{}", self.domain.name)
            };
            // `@domain` is the domain's catch-all.
            let checked = match full.strip_prefix('@') {
                Some(d) => roster_schema::names::check_domain(d),
                None => roster_schema::names::check_address(&full),
            };
            if let Err(m) = checked {
                problems.push(("MailAddress", format!("{full:?}: {m}")));
                continue;
            }
            let domain = full
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            if !self.domain.names.contains(&domain) {
                problems.push((
                    "MailAddress",
                    format!(
                        "{full:?} is not in the domain ({})",
                        self.domain.names.join(", ")
                    ),
                ));
                continue;
            }
            if !out.iter().any(|a| a.eq_ignore_ascii_case(&full)) {
                out.push(full);
            }
        }
        out
    }

    /// Plans one row; the problems come with the column at fault.
    pub fn plan(&self, row: &Row) -> Result<Planned, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let name = row.get("Name").unwrap_or_default().to_string();
        let existing = self.domain.user(&name);
        let addresses = self.addresses(row, &mut problems);
        let enabled = row.get("Enabled").map(|v| yes_no("Enabled", v));
        let imap = row.get("IMAP").map(|v| yes_no("IMAP", v));
        let pop3 = row.get("POP3").map(|v| yes_no("POP3", v));
        let mut flag = |r: Option<Result<bool, (&'static str, String)>>| match r {
            Some(Ok(b)) => Some(b),
            Some(Err(p)) => {
                problems.push(p);
                None
            }
            None => None,
        };
        let (enabled, imap, pop3) = (flag(enabled), flag(imap), flag(pop3));
        let role = row.get("Role").map(str::to_ascii_lowercase);
        if let Some(r) = &role {
            if r != "user" && r != "admin" {
                problems.push(("Role", format!("{r:?}: user or admin")));
            }
        }
        let quota = match row.get("Quota").map(quota_bytes) {
            Some(Ok(q)) => Some(q.to_string()),
            Some(Err(m)) => {
                problems.push(("Quota", m));
                None
            }
            None => None,
        };
        let identifier = row.get("Identifier").map(str::trim).map(str::to_string);
        if let Some(id) = &identifier {
            if crate::nif::looks_spanish(id) {
                if let Err(m) = crate::nif::check(id) {
                    problems.push(("Identifier", m));
                }
            } else if id.chars().count() > 32 {
                problems.push(("Identifier", "longer than 32 characters".into()));
            }
        }
        let mut joins: Vec<String> = Vec::new();
        for g in row.cells.get("Groups").into_iter().flatten() {
            let key = g.to_ascii_lowercase();
            if self.domain.group(g).is_none() {
                if !self.create_groups {
                    problems.push((
                        "Groups",
                        format!("the group {g:?} does not exist (--create-groups creates it)"),
                    ));
                    continue;
                }
                if let Err(m) = roster_schema::names::check_username(g) {
                    problems.push((
                        "Groups",
                        m.replacen("uid", "group", 1)
                            .replace("user name", "group name"),
                    ));
                    continue;
                }
            }
            if !joins.contains(&key) {
                joins.push(key);
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let password = row.get("Password").map(str::to_string);
        let full_name = row.get("FullName").map(str::to_string);
        let description = row.get("Description").map(str::to_string);
        let action = match existing {
            None => {
                let mut joined = joins.clone();
                if let Some(t) = self.template {
                    for dn in &t.groups {
                        let key = dn_key(dn);
                        if let Some(g) = self.domain.groups.values().find(|g| dn_key(&g.dn) == key)
                        {
                            let n = g.cn.to_ascii_lowercase();
                            if !joined.contains(&n) {
                                joined.push(n);
                            }
                        }
                    }
                }
                joins = joined;
                self.create(
                    &name,
                    addresses,
                    password,
                    full_name,
                    description,
                    enabled,
                    role,
                    imap,
                    pop3,
                    identifier,
                    quota,
                )
            }
            Some(user) => self.update(
                user,
                addresses,
                password,
                full_name,
                description,
                enabled,
                role,
                imap,
                pop3,
                identifier,
                quota,
            ),
        };
        // Groups the user is already in are not joined again.
        let dn = dn_key(action.dn());
        joins.retain(|g| {
            self.domain
                .group(g)
                .is_none_or(|group| !group.members.contains(&dn))
        });
        Ok(Planned {
            line: row.line,
            name,
            action,
            joins,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        name: &str,
        mut addresses: Vec<String>,
        password: Option<String>,
        full_name: Option<String>,
        description: Option<String>,
        enabled: Option<bool>,
        role: Option<String>,
        imap: Option<bool>,
        pop3: Option<bool>,
        identifier: Option<String>,
        quota: Option<String>,
    ) -> Action {
        let t = self.template;
        if addresses.is_empty() {
            addresses.push(format!(
                "{}@{}",
                name.to_ascii_lowercase(),
                self.domain.name
            ));
        }
        let cn = full_name.unwrap_or_else(|| name.to_string());
        let mut attrs: Vec<(String, Vec<String>)> = vec![
            (
                "objectClass".into(),
                vec!["inetOrgPerson".into(), "rosterMailUser".into()],
            ),
            ("uid".into(), vec![name.to_string()]),
            ("sn".into(), vec![surname(&cn)]),
            ("cn".into(), vec![cn]),
            (
                "mail".into(),
                addresses.first().cloned().into_iter().collect(),
            ),
            ("mailLocalAddress".into(), addresses),
        ];
        let mut push = |a: &str, v: Option<String>| {
            if let Some(v) = v {
                attrs.push((a.to_string(), vec![v]));
            }
        };
        push("description", description);
        push("userPassword", password);
        push("rosterNationalId", identifier);
        push(
            "rosterMailQuota",
            quota.or_else(|| t.and_then(|t| t.quota.clone())),
        );
        push(
            "rosterRole",
            role.or_else(|| t.and_then(|t| t.role.clone()))
                .filter(|r| r != "user"),
        );
        push(
            "rosterMailboxEnabled",
            Some(
                t.and_then(|t| t.mailbox.clone())
                    .unwrap_or_else(|| "TRUE".into()),
            ),
        );
        let disabled = match enabled {
            Some(e) => !e,
            None => t.is_some_and(|t| t.disabled),
        };
        push(
            "rosterAccountDisabled",
            disabled.then(|| "TRUE".to_string()),
        );
        let mut services: Vec<String> = t
            .and_then(|t| t.services.clone())
            .unwrap_or_else(|| DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect());
        if let Some(on) = imap {
            set_family(&mut services, "imap", on);
        }
        if let Some(on) = pop3 {
            set_family(&mut services, "pop3", on);
        }
        if !services.is_empty() {
            attrs.push(("rosterService".into(), services));
        }
        if let Some(t) = t {
            if !t.forwarding.is_empty() {
                attrs.push(("rosterForwardingAddress".into(), t.forwarding.clone()));
            }
        }
        Action::Create {
            dn: self.domain.user_dn(name),
            attrs,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        user: &User,
        addresses: Vec<String>,
        password: Option<String>,
        full_name: Option<String>,
        description: Option<String>,
        enabled: Option<bool>,
        role: Option<String>,
        imap: Option<bool>,
        pop3: Option<bool>,
        identifier: Option<String>,
        quota: Option<String>,
    ) -> Action {
        let mut changes = Vec::new();
        let mut columns = Vec::new();
        macro_rules! change {
            ($column:expr, $c:expr $(,)?) => {{
                let column: &'static str = $column;
                changes.push($c);
                if !columns.contains(&column) {
                    columns.push(column);
                }
            }};
        }
        if !user.mail_user {
            change!(
                "Name",
                Change::Add("objectClass".into(), vec!["rosterMailUser".into()]),
            );
        }
        if let Some(cn) = full_name.filter(|cn| *cn != user.cn) {
            change!("FullName", Change::Replace("sn".into(), vec![surname(&cn)]));
            change!("FullName", Change::Replace("cn".into(), vec![cn]));
        }
        if let Some(d) = description.filter(|d| *d != user.description) {
            change!(
                "Description",
                Change::Replace("description".into(), vec![d])
            );
        }
        if let Some(primary) = addresses.first() {
            let mut held = vec![user.mail.clone()];
            held.extend(user.local.iter().cloned());
            held.retain(|a| !a.is_empty());
            if !primary.eq_ignore_ascii_case(&user.mail) || !same_set(&held, &addresses) {
                change!(
                    "MailAddress",
                    Change::Replace("mail".into(), vec![primary.clone()])
                );
                change!(
                    "MailAddress",
                    Change::Replace("mailLocalAddress".into(), addresses.clone()),
                );
            }
        }
        if let Some(p) = password.filter(|_| self.update_passwords) {
            change!("Password", Change::Replace("userPassword".into(), vec![p]));
        }
        match enabled {
            Some(true) if user.disabled => change!(
                "Enabled",
                Change::Delete("rosterAccountDisabled".into(), Vec::new()),
            ),
            Some(false) if !user.disabled => change!(
                "Enabled",
                Change::Replace("rosterAccountDisabled".into(), vec!["TRUE".into()]),
            ),
            _ => {}
        }
        if let Some(r) = role {
            let now = if user.role.is_empty() {
                "user".to_string()
            } else {
                user.role.to_ascii_lowercase()
            };
            if r != now {
                change!(
                    "Role",
                    if r == "user" {
                        Change::Delete("rosterRole".into(), Vec::new())
                    } else {
                        Change::Replace("rosterRole".into(), vec![r])
                    },
                );
            }
        }
        let mut services = user.services.clone();
        let mut service_columns = Vec::new();
        for (column, family, on) in [("IMAP", "imap", imap), ("POP3", "pop3", pop3)] {
            let Some(on) = on else { continue };
            let before = services.clone();
            set_family(&mut services, family, on);
            if !same_set(&before, &services) {
                service_columns.push(column);
            }
        }
        if let Some(column) = service_columns.first() {
            change!(
                column,
                if services.is_empty() {
                    Change::Delete("rosterService".into(), Vec::new())
                } else {
                    Change::Replace("rosterService".into(), services)
                },
            );
            if let Some(c) = service_columns.get(1) {
                columns.push(*c);
            }
        }
        if let Some(id) = identifier.filter(|id| !id.eq_ignore_ascii_case(&user.national_id)) {
            change!(
                "Identifier",
                Change::Replace("rosterNationalId".into(), vec![id])
            );
        }
        if let Some(q) = quota.filter(|q| *q != user.quota) {
            change!("Quota", Change::Replace("rosterMailQuota".into(), vec![q]));
        }
        if changes.is_empty() {
            Action::Unchanged {
                dn: user.dn.clone(),
            }
        } else {
            Action::Update {
                dn: user.dn.clone(),
                changes,
                columns,
            }
        }
    }
}

/// Problems between rows: an address on two rows, or held by another user or a contact.
pub fn cross_check(domain: &Domain, planned: &[Planned]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: std::collections::HashMap<String, (u64, String)> = Default::default();
    for p in planned {
        let addresses: Vec<&String> = match &p.action {
            Action::Create { attrs, .. } => attrs
                .iter()
                .filter(|(a, _)| a == "mailLocalAddress")
                .flat_map(|(_, v)| v)
                .collect(),
            Action::Update { changes, .. } => changes
                .iter()
                .filter_map(|c| match c {
                    Change::Replace(a, v) if a == "mailLocalAddress" => Some(v),
                    _ => None,
                })
                .flatten()
                .collect(),
            Action::Unchanged { .. } => Vec::new(),
        };
        let me = p.name.to_ascii_lowercase();
        for a in addresses {
            let key = a.to_ascii_lowercase();
            if let Some(owner) = domain.owners.get(&key).filter(|o| **o != me) {
                problems.push(Problem {
                    line: p.line,
                    column: Some("MailAddress".into()),
                    message: format!("{a} already belongs to {owner}"),
                });
            } else if let Some((line, name)) = seen.get(&key).filter(|(_, n)| *n != me) {
                problems.push(Problem {
                    line: p.line,
                    column: Some("MailAddress".into()),
                    message: format!("{a} is also on line {line} ({name})"),
                });
            } else {
                seen.insert(key, (p.line, me.clone()));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csvin::read_users;
    use crate::domain::Group;

    fn domain() -> Domain {
        let mut d = Domain {
            name: "example.com".into(),
            base: "dc=example,dc=com".into(),
            names: vec!["example.com".into(), "example.org".into()],
            users_ou: "ou=users,dc=example,dc=com".into(),
            groups_ou: "ou=groups,dc=example,dc=com".into(),
            ..Domain::default()
        };
        d.groups.insert(
            "all".into(),
            Group {
                dn: "cn=all,ou=groups,dc=example,dc=com".into(),
                cn: "all".into(),
                members: ["uid=ann,ou=users,dc=example,dc=com".to_string()].into(),
                ..Group::default()
            },
        );
        d.users.insert(
            "ann".into(),
            User {
                dn: "uid=ann,ou=users,dc=example,dc=com".into(),
                uid: "ann".into(),
                cn: "Ann Lee".into(),
                mail: "ann@example.com".into(),
                local: vec!["ann@example.com".into(), "a@example.com".into()],
                services: DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect(),
                mail_user: true,
                ..User::default()
            },
        );
        d.owners.insert("ann@example.com".into(), "ann".into());
        d.owners.insert("a@example.com".into(), "ann".into());
        d
    }

    fn rules(d: &Domain) -> Rules<'_> {
        Rules {
            domain: d,
            template: None,
            create_groups: false,
            update_passwords: false,
        }
    }

    #[test]
    fn new_users_get_defaults_and_existing_ones_only_what_changes() {
        let d = domain();
        let t = read_users("Name;FullName;MailAddress;Groups;Password;IMAP;Quota\nbob;Bob Smith;bob,b@example.org;all;Pw-12345;no;2G\nann;Ann Lee;ann,a;all;other;yes;\nANN2;;;;;;\n");
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let r = rules(&d);
        let bob = r.plan(&t.rows[0]).unwrap();
        let Action::Create { dn, attrs } = &bob.action else {
            panic!("{bob:?}")
        };
        assert_eq!(dn, "uid=bob,ou=users,dc=example,dc=com");
        let get = |a: &str| attrs.iter().find(|(n, _)| n == a).map(|(_, v)| v.clone());
        assert_eq!(get("mail"), Some(vec!["bob@example.com".into()]));
        assert_eq!(
            get("mailLocalAddress"),
            Some(vec!["bob@example.com".into(), "b@example.org".into()])
        );
        assert_eq!(get("sn"), Some(vec!["Smith".into()]));
        assert_eq!(get("rosterMailQuota"), Some(vec!["2147483648".into()]));
        assert_eq!(
            get("rosterService"),
            Some(vec![
                "pop3".into(),
                "pop3secured".into(),
                "smtp".into(),
                "smtpsecured".into()
            ])
        );
        assert_eq!(bob.joins, vec!["all"]);
        // Ann: same name, addresses, group, services; the password is not touched.
        let ann = r.plan(&t.rows[1]).unwrap();
        assert!(matches!(ann.action, Action::Unchanged { .. }), "{ann:?}");
        assert!(ann.joins.is_empty());
        let plain = r.plan(&t.rows[2]).unwrap();
        let Action::Create { attrs, .. } = &plain.action else {
            panic!()
        };
        assert!(attrs.contains(&("mail".into(), vec!["ann2@example.com".into()])));
    }

    #[test]
    fn bad_values_name_their_column() {
        let d = domain();
        let t = read_users("Name;MailAddress;Groups;Enabled;Role;Quota;Identifier\nbob;bob@other.net;nope;maybe;boss;lots;12345678A\n");
        let problems = rules(&d).plan(&t.rows[0]).unwrap_err();
        let columns: Vec<&str> = problems.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            columns,
            vec![
                "MailAddress",
                "Enabled",
                "Role",
                "Quota",
                "Identifier",
                "Groups"
            ]
        );
        assert!(problems[0].1.contains("is not in the domain"));
        assert!(problems[4].1.contains("check letter is Z"));
    }

    #[test]
    fn addresses_taken_elsewhere() {
        let d = domain();
        let t = read_users("Name;MailAddress\nbob;a\ncid;c\ndan;c\n");
        let r = rules(&d);
        let planned: Vec<Planned> = t.rows.iter().map(|row| r.plan(row).unwrap()).collect();
        let p = cross_check(&d, &planned);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0].to_string(),
            "line 2, column MailAddress: a@example.com already belongs to ann"
        );
        assert_eq!(
            p[1].to_string(),
            "line 4, column MailAddress: c@example.com is also on line 3 (cid)"
        );
    }

    #[test]
    fn quotas() {
        assert_eq!(quota_bytes("1024").unwrap(), 1024);
        assert_eq!(quota_bytes("1K").unwrap(), 1024);
        assert_eq!(quota_bytes("5 MB").unwrap(), 5 << 20);
        assert_eq!(quota_bytes("1GiB").unwrap(), 1 << 30);
        assert!(quota_bytes("1X").is_err());
        assert!(quota_bytes("").is_err());
    }
}
