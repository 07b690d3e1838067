//! What the tool reads of one mail domain before it changes anything: the domain's names, its
//! users and groups, and a template. Users live under `ou=users`, groups under `ou=groups`,
//! templates under `ou=templates` of the domain's naming context (docs/mail-servers.md).

use crate::ldap::{all, first, has, search, SearchError};
use ldap3::{LdapConn, SearchEntry};
use std::collections::{HashMap, HashSet};

/// Why a domain could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0:?} is not a domain name (example.com)")]
    Name(String),
    #[error("the domain {domain} ({base}) does not exist or this account may not read it")]
    Missing { domain: String, base: String },
    #[error("the template {name:?} does not exist (looked for {dn})")]
    NoTemplate { name: String, dn: String },
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// The naming context of a mail domain: example.com is dc=example,dc=com.
pub fn domain_base(domain: &str) -> Result<String, DomainError> {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let ok = labels
        .iter()
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !ok || labels.is_empty() {
        return Err(DomainError::Name(domain.to_string()));
    }
    Ok(labels
        .iter()
        .map(|l| format!("dc={}", l.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(","))
}

/// A DN as the tool compares them: lower case, no spaces around `,` and `=`.
pub fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' || c == '=' {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push(c);
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A user as stored.
#[derive(Debug, Clone, Default)]
pub struct User {
    pub dn: String,
    pub uid: String,
    pub cn: String,
    pub description: String,
    pub mail: String,
    pub local: Vec<String>,
    pub disabled: bool,
    pub role: String,
    pub services: Vec<String>,
    pub national_id: String,
    pub quota: String,
    /// Has the `rosterMailUser` class.
    pub mail_user: bool,
    pub given_name: String,
    pub surname: String,
    /// The sync job it is mapped by (empty for local users), its id and DN there.
    pub upstream: String,
    pub upstream_id: String,
    pub upstream_dn: String,
}

/// A group as stored.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub dn: String,
    pub cn: String,
    /// Member DNs as [`dn_key`]s.
    pub members: HashSet<String>,
    pub description: String,
    pub addresses: Vec<String>,
    /// The sync job it is mapped by (empty for local groups), its id and DN there.
    pub upstream: String,
    pub upstream_id: String,
    pub upstream_dn: String,
}

/// A template's defaults for new users.
#[derive(Debug, Clone, Default)]
pub struct Template {
    pub role: Option<String>,
    pub services: Option<Vec<String>>,
    pub mailbox: Option<String>,
    pub quota: Option<String>,
    pub forwarding: Vec<String>,
    pub disabled: bool,
    /// Group DNs.
    pub groups: Vec<String>,
}

/// One domain as the tool found it.
#[derive(Debug, Default)]
pub struct Domain {
    pub name: String,
    pub base: String,
    /// Every domain name the domain's addresses may use (its own, and `associatedDomain`s).
    pub names: Vec<String>,
    pub users_ou: String,
    pub groups_ou: String,
    /// Users by lower-case uid.
    pub users: HashMap<String, User>,
    /// Groups by lower-case cn.
    pub groups: HashMap<String, Group>,
    /// Who holds an address (lower case): the lower-case uid of a user, or a contact's DN.
    pub owners: HashMap<String, String>,
}

pub const USER_ATTRS: [&str; 18] = [
    "objectClass",
    "uid",
    "cn",
    "sn",
    "description",
    "mail",
    "mailLocalAddress",
    "rosterAccountDisabled",
    "rosterRole",
    "rosterService",
    "rosterNationalId",
    "rosterMailQuota",
    "rosterMailboxEnabled",
    "rosterForwardingAddress",
    "givenName",
    "rosterUpstream",
    "rosterUpstreamId",
    "rosterUpstreamDn",
];

pub fn user_of(e: &SearchEntry) -> User {
    User {
        dn: e.dn.clone(),
        uid: first(e, "uid"),
        cn: first(e, "cn"),
        description: first(e, "description"),
        mail: first(e, "mail"),
        local: all(e, "mailLocalAddress"),
        disabled: has(e, "rosterAccountDisabled", "TRUE"),
        role: first(e, "rosterRole"),
        services: all(e, "rosterService"),
        national_id: first(e, "rosterNationalId"),
        quota: first(e, "rosterMailQuota"),
        mail_user: has(e, "objectClass", "rosterMailUser"),
        given_name: first(e, "givenName"),
        surname: first(e, "sn"),
        upstream: first(e, "rosterUpstream"),
        upstream_id: first(e, "rosterUpstreamId"),
        upstream_dn: first(e, "rosterUpstreamDn"),
    }
}

fn group_of(e: &SearchEntry) -> Group {
    Group {
        dn: e.dn.clone(),
        cn: first(e, "cn"),
        members: all(e, "member").iter().map(|m| dn_key(m)).collect(),
        description: first(e, "description"),
        addresses: all(e, "mailLocalAddress"),
        upstream: first(e, "rosterUpstream"),
        upstream_id: first(e, "rosterUpstreamId"),
        upstream_dn: first(e, "rosterUpstreamDn"),
    }
}

impl Domain {
    /// Reads the domain `name`: its entry, users and groups (with members).
    pub fn read(conn: &mut LdapConn, name: &str) -> Result<Domain, DomainError> {
        let base = domain_base(name)?;
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let Some(top) = crate::ldap::read(conn, &base, &["associatedDomain"])? else {
            return Err(DomainError::Missing { domain: name, base });
        };
        let mut names = vec![name.clone()];
        for d in all(&top, "associatedDomain") {
            let d = d.to_ascii_lowercase();
            if !names.contains(&d) {
                names.push(d);
            }
        }
        let mut domain = Domain {
            users_ou: format!("ou=users,{base}"),
            groups_ou: format!("ou=groups,{base}"),
            name,
            base,
            names,
            ..Domain::default()
        };
        let people = search(
            conn,
            &domain.base,
            "(|(&(objectClass=inetOrgPerson)(uid=*))(objectClass=rosterContact))",
            &USER_ATTRS,
        )?;
        for e in &people {
            if has(e, "objectClass", "rosterContact") {
                for a in all(e, "mail") {
                    domain.owners.insert(a.to_ascii_lowercase(), e.dn.clone());
                }
                continue;
            }
            let u = user_of(e);
            let key = u.uid.to_ascii_lowercase();
            for a in std::iter::once(&u.mail).chain(&u.local) {
                if !a.is_empty() {
                    domain.owners.insert(a.to_ascii_lowercase(), key.clone());
                }
            }
            domain.users.insert(key, u);
        }
        for e in search(
            conn,
            &domain.base,
            "(objectClass=groupOfNames)",
            &[
                "cn",
                "member",
                "description",
                "mailLocalAddress",
                "rosterUpstream",
                "rosterUpstreamId",
                "rosterUpstreamDn",
            ],
        )? {
            let g = group_of(&e);
            domain.groups.insert(g.cn.to_ascii_lowercase(), g);
        }
        Ok(domain)
    }

    /// The group named `name` (any case).
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(&name.to_ascii_lowercase())
    }

    /// The user named `name` (any case).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(&name.to_ascii_lowercase())
    }

    /// The DN a new user `name` gets.
    pub fn user_dn(&self, name: &str) -> String {
        format!(
            "uid={},{}",
            crate::ldap::escape_rdn_value(name),
            self.users_ou
        )
    }

    /// The DN a new group `name` gets.
    pub fn group_dn(&self, name: &str) -> String {
        format!(
            "cn={},{}",
            crate::ldap::escape_rdn_value(name),
            self.groups_ou
        )
    }

    /// Reads the template `name` (`cn=<name>,ou=templates,<domain>`).
    pub fn template(&self, conn: &mut LdapConn, name: &str) -> Result<Template, DomainError> {
        let dn = format!(
            "cn={},ou=templates,{}",
            crate::ldap::escape_rdn_value(name),
            self.base
        );
        let Some(e) = crate::ldap::read(
            conn,
            &dn,
            &[
                "rosterRole",
                "rosterService",
                "rosterMailboxEnabled",
                "rosterMailQuota",
                "rosterForwardingAddress",
                "rosterAccountDisabled",
                "rosterTemplateGroup",
            ],
        )?
        else {
            return Err(DomainError::NoTemplate {
                name: name.to_string(),
                dn,
            });
        };
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        let services = all(&e, "rosterService");
        Ok(Template {
            role: some(first(&e, "rosterRole")),
            services: (!services.is_empty()).then_some(services),
            mailbox: some(first(&e, "rosterMailboxEnabled")),
            quota: some(first(&e, "rosterMailQuota")),
            forwarding: all(&e, "rosterForwardingAddress"),
            disabled: has(&e, "rosterAccountDisabled", "TRUE"),
            groups: all(&e, "rosterTemplateGroup"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(domain_base("Example.COM").unwrap(), "dc=example,dc=com");
        assert_eq!(
            domain_base("mail.example.co.uk").unwrap(),
            "dc=mail,dc=example,dc=co,dc=uk"
        );
        assert!(domain_base("exa mple.com").is_err());
        assert!(domain_base("").is_err());
        assert_eq!(
            dn_key("UID=Alice, ou=Users ,dc=Example"),
            "uid=alice,ou=users,dc=example"
        );
    }
}
