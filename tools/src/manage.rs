//! One change at a time: groups created, renamed, deleted, members added and removed (from
//! the group's side or the user's), users disabled, enabled and deleted (their addresses and
//! groups given to another user with rosterd's transfer control). Each is one LDAP change;
//! the server's refusal comes back with its result code and message.

use crate::domain::{dn_key, domain_base, DomainError};
use crate::ldap::{self, escape_filter_value, first, search, Change, SearchError, WriteError};
use ldap3::LdapConn;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("no user named {name:?} in {domain}")]
    NoUser { name: String, domain: String },
    #[error("no group named {name:?} in {domain}")]
    NoGroup { name: String, domain: String },
    #[error("no user or group named {name:?} in {domain}")]
    NoMember { name: String, domain: String },
    #[error("{what}: {source}")]
    Write { what: String, source: WriteError },
    #[error("{0}")]
    Invalid(String),
}

/// A domain's base and name, for lookups.
pub struct Scope {
    pub domain: String,
    pub base: String,
}

impl Scope {
    pub fn new(domain: &str) -> Result<Scope, ManageError> {
        Ok(Scope {
            base: domain_base(domain)?,
            domain: domain.to_ascii_lowercase(),
        })
    }

    fn find(
        &self,
        conn: &mut LdapConn,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<ldap3::SearchEntry>, ManageError> {
        Ok(search(conn, &self.base, filter, attrs)?.into_iter().next())
    }

    /// The user named `name`.
    pub fn user(&self, conn: &mut LdapConn, name: &str) -> Result<ldap3::SearchEntry, ManageError> {
        let filter = format!(
            "(&(objectClass=inetOrgPerson)(uid={}))",
            escape_filter_value(name)
        );
        self.find(conn, &filter, &["uid", "rosterAccountDisabled"])?
            .ok_or_else(|| ManageError::NoUser {
                name: name.to_string(),
                domain: self.domain.clone(),
            })
    }

    /// The group named `name`.
    pub fn group(
        &self,
        conn: &mut LdapConn,
        name: &str,
    ) -> Result<ldap3::SearchEntry, ManageError> {
        let filter = format!(
            "(&(objectClass=groupOfNames)(cn={}))",
            escape_filter_value(name)
        );
        self.find(conn, &filter, &["cn", "member"])?
            .ok_or_else(|| ManageError::NoGroup {
                name: name.to_string(),
                domain: self.domain.clone(),
            })
    }

    /// A user, a contact (by address) or a group that can be a member, by name.
    fn member(&self, conn: &mut LdapConn, name: &str) -> Result<String, ManageError> {
        let v = escape_filter_value(name);
        let filter = format!(
            "(|(&(objectClass=inetOrgPerson)(uid={v}))(&(objectClass=rosterContact)(mail={v}))(&(objectClass=groupOfNames)(cn={v})))"
        );
        match self.find(conn, &filter, &["cn"])? {
            Some(e) => Ok(e.dn),
            None => Err(ManageError::NoMember {
                name: name.to_string(),
                domain: self.domain.clone(),
            }),
        }
    }
}

fn write(what: String, r: Result<(), WriteError>) -> Result<(), ManageError> {
    r.map_err(|source| ManageError::Write { what, source })
}

/// A new group's settings.
pub struct NewGroup {
    pub name: String,
    pub addresses: Vec<String>,
    pub kind: Option<String>,
    pub right: Option<String>,
    pub description: Option<String>,
}

pub fn create_group(conn: &mut LdapConn, s: &Scope, g: &NewGroup) -> Result<String, ManageError> {
    roster_schema::names::check_username(&g.name)
        .map_err(|m| ManageError::Invalid(m.replacen("uid", "group", 1)))?;
    let dn = format!(
        "cn={},ou=groups,{}",
        ldap::escape_rdn_value(&g.name),
        s.base
    );
    let mut attrs: Vec<(String, Vec<String>)> = vec![
        (
            "objectClass".into(),
            vec!["groupOfNames".into(), "rosterGroup".into()],
        ),
        ("cn".into(), vec![g.name.clone()]),
    ];
    let addresses: Vec<String> = g
        .addresses
        .iter()
        .map(|a| {
            if a.contains('@') {
                a.clone()
            } else {
                format!("{a}@{}", s.domain)
            }
        })
        .collect();
    if !addresses.is_empty() {
        attrs.push(("mailLocalAddress".into(), addresses));
    }
    for (attr, v) in [
        ("rosterGroupKind", &g.kind),
        ("rosterGroupRight", &g.right),
        ("description", &g.description),
    ] {
        if let Some(v) = v {
            attrs.push((attr.into(), vec![v.clone()]));
        }
    }
    write(format!("create {dn}"), ldap::add(conn, &dn, &attrs, false))?;
    Ok(dn)
}

pub fn rename_group(
    conn: &mut LdapConn,
    s: &Scope,
    name: &str,
    new: &str,
) -> Result<String, ManageError> {
    roster_schema::names::check_username(new)
        .map_err(|m| ManageError::Invalid(m.replacen("uid", "group", 1)))?;
    let g = s.group(conn, name)?;
    write(
        format!("rename {}", g.dn),
        ldap::rename(conn, &g.dn, &format!("cn={}", ldap::escape_rdn_value(new))),
    )?;
    Ok(g.dn)
}

pub fn delete_group(conn: &mut LdapConn, s: &Scope, name: &str) -> Result<String, ManageError> {
    let g = s.group(conn, name)?;
    write(format!("delete {}", g.dn), ldap::delete(conn, &g.dn, None))?;
    Ok(g.dn)
}

/// What a membership change did.
#[derive(Debug, Default)]
pub struct Membership {
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Adds (`add`) or removes the named members of `group`, in one change.
pub fn members(
    conn: &mut LdapConn,
    s: &Scope,
    group: &str,
    names: &[String],
    add: bool,
) -> Result<Membership, ManageError> {
    let g = s.group(conn, group)?;
    let held: Vec<String> = ldap::all(&g, "member").iter().map(|m| dn_key(m)).collect();
    let mut out = Membership::default();
    let mut dns = Vec::new();
    for n in names {
        let dn = s.member(conn, n)?;
        if held.contains(&dn_key(&dn)) == add {
            out.unchanged.push(n.clone());
        } else if !dns.contains(&dn) {
            dns.push(dn);
            out.changed.push(n.clone());
        }
    }
    if !dns.is_empty() {
        let change = if add {
            Change::Add("member".into(), dns)
        } else {
            Change::Delete("member".into(), dns)
        };
        write(
            format!("change the members of {}", g.dn),
            ldap::modify(conn, &g.dn, &[change], false),
        )?;
    }
    Ok(out)
}

/// Adds (`join`) or removes user `name` to or from each group: one change per group.
pub fn user_groups(
    conn: &mut LdapConn,
    s: &Scope,
    name: &str,
    groups: &[String],
    join: bool,
) -> Result<Membership, ManageError> {
    s.user(conn, name)?;
    let mut out = Membership::default();
    for g in groups {
        let m = members(conn, s, g, std::slice::from_ref(&name.to_string()), join)?;
        if m.changed.is_empty() {
            out.unchanged.push(g.clone());
        } else {
            out.changed.push(g.clone());
        }
    }
    Ok(out)
}

/// Disables (`disabled`) or enables user `name`; false when it already was.
pub fn set_disabled(
    conn: &mut LdapConn,
    s: &Scope,
    name: &str,
    disabled: bool,
) -> Result<bool, ManageError> {
    let u = s.user(conn, name)?;
    let now = first(&u, "rosterAccountDisabled").eq_ignore_ascii_case("TRUE");
    if now == disabled {
        return Ok(false);
    }
    let change = if disabled {
        Change::Replace("rosterAccountDisabled".into(), vec!["TRUE".into()])
    } else {
        Change::Delete("rosterAccountDisabled".into(), Vec::new())
    };
    write(
        format!("change {}", u.dn),
        ldap::modify(conn, &u.dn, &[change], false),
    )?;
    Ok(true)
}

/// Deletes user `name`; with `heir`, that user gets its addresses and groups.
pub fn delete_user(
    conn: &mut LdapConn,
    s: &Scope,
    name: &str,
    heir: Option<&str>,
) -> Result<String, ManageError> {
    let u = s.user(conn, name)?;
    let heir_dn = match heir {
        Some(h) => Some(s.user(conn, h)?.dn),
        None => None,
    };
    write(
        format!("delete {}", u.dn),
        ldap::delete(conn, &u.dn, heir_dn.as_deref()),
    )?;
    Ok(u.dn)
}
