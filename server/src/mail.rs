//! The mail model's rules, applied to every entry a client writes (add, modify, rename) before
//! the store sees it. They concern the entries of Roster's mail classes only:
//!
//! - users (`rosterMailUser`): a user name of letters, digits, `.`, `-` and `_`; one primary
//!   address (`mail`), which rosterd keeps among the delivering addresses (`mailLocalAddress`);
//!   every address in the user's own domain; a role of `user` or `admin`; known services.
//! - contacts (`rosterContact`): one external address, no password, no local address.
//! - groups (`rosterGroup`): a known kind and right; addresses in the group's own domain; a
//!   security group has none.
//!
//! Addresses are unique among users and among groups (a user and a group may share one: mail
//! goes to both); the store enforces that inside the write transaction ([`unique_specs`]).
//! The domain of a naming context is its `dc` components joined with dots
//! (`dc=example,dc=com` is example.com) plus the `associatedDomain` values of its entry.

use crate::directory::Directory;
use crate::error::OpError;
pub use roster_schema::names::{check_address, check_domain, check_username};
use roster_schema::{Entry, NormDn};
use roster_storage::{Reader, UniqueSpec};

pub const USER_CLASS: &str = "rosterMailUser";
pub const CONTACT_CLASS: &str = "rosterContact";
pub const GROUP_CLASS: &str = "rosterGroup";

/// Services a user can be given (`rosterService`), each also with `secured` appended: the
/// variant over TLS (Dovecot's `%c`).
const SERVICES: [&str; 4] = ["imap", "pop3", "smtp", "sieve"];
const ROLES: [&str; 3] = ["user", "admin", "contact"];
const GROUP_KINDS: [&str; 3] = ["internal", "external", "security"];
const GROUP_RIGHTS: [&str; 3] = ["none", "read", "admin"];

/// The values the store keeps unique.
pub fn unique_specs() -> Vec<UniqueSpec> {
    vec![
        UniqueSpec {
            name: "user address".into(),
            attrs: vec!["mail".into(), "mailLocalAddress".into()],
            class: USER_CLASS.into(),
        },
        UniqueSpec {
            name: "group address".into(),
            attrs: vec!["mailLocalAddress".into()],
            class: GROUP_CLASS.into(),
        },
    ]
}

/// Checks `entry` (new, or `before` changed) against the model and completes what the server
/// maintains (the primary address among the delivering addresses).
pub fn check_write(
    dir: &Directory,
    reader: &Reader,
    entry: &mut Entry,
    before: Option<&Entry>,
) -> Result<(), OpError> {
    check_write_with(dir, reader, entry, before, &[])
}

/// As [`check_write`], with `more_domains` counted among the entry's domains (`rosterd load`:
/// the `associatedDomain` names of a domain entry earlier in the same file, not yet stored).
pub fn check_write_with(
    dir: &Directory,
    reader: &Reader,
    entry: &mut Entry,
    before: Option<&Entry>,
    more_domains: &[String],
) -> Result<(), OpError> {
    let schema = &dir.schema;
    let user = entry.has_object_class(schema, USER_CLASS);
    let contact = entry.has_object_class(schema, CONTACT_CLASS);
    let group = entry.has_object_class(schema, GROUP_CLASS);
    if !(user || contact || group) {
        return Ok(());
    }
    let refuse = |m: String| Err(OpError::ConstraintViolation(m));
    if [user, contact, group].iter().filter(|b| **b).count() > 1 {
        return refuse(format!(
            "an entry is one of a user ({USER_CLASS}), a contact ({CONTACT_CLASS}) or a group ({GROUP_CLASS}), not several"
        ));
    }
    let values = |e: &Entry, name: &str| -> Vec<String> {
        schema
            .attr_id(name)
            .map(|id| {
                e.values_of(id)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let one_of = |e: &Entry, attr: &str, allowed: &[&str]| -> Result<(), OpError> {
        for v in values(e, attr) {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&v)) {
                return refuse(format!("{attr} {v:?}: not one of {}", allowed.join(", ")));
            }
        }
        Ok(())
    };
    let ndn = entry.ndn.clone();
    let domains = || {
        let mut d = domains_of(dir, reader, &ndn);
        d.extend(more_domains.iter().cloned());
        d
    };
    if user {
        for uid in values(entry, "uid") {
            check_username(&uid).map_err(OpError::ConstraintViolation)?;
        }
        one_of(entry, "rosterRole", &ROLES[..2]).map_err(|_| {
            OpError::ConstraintViolation(
                "rosterRole: a user's role is user or admin (a contact is an entry of class rosterContact)".into(),
            )
        })?;
        let services: Vec<String> = SERVICES
            .iter()
            .flat_map(|s| [s.to_string(), format!("{s}secured")])
            .collect();
        let services: Vec<&str> = services.iter().map(String::as_str).collect();
        one_of(entry, "rosterService", &services)?;
        let mails = values(entry, "mail");
        if mails.len() > 1 {
            return refuse(
                "mail: a user has one primary address; further addresses go in mailLocalAddress"
                    .into(),
            );
        }
        let domains = domains();
        for a in mails.iter().chain(&values(entry, "mailLocalAddress")) {
            check_local_address(a, &domains, true)?;
        }
        for a in values(entry, "rosterForwardingAddress") {
            check_address(&a).map_err(|m| {
                OpError::ConstraintViolation(format!("rosterForwardingAddress {a:?}: {m}"))
            })?;
        }
        for q in values(entry, "rosterMailQuota") {
            if q.starts_with('-') {
                return refuse(format!(
                    "rosterMailQuota {q}: a quota is 0 (none) or more bytes"
                ));
            }
        }
        keep_primary_delivering(dir, entry, before);
    }
    if contact {
        let mails = values(entry, "mail");
        if mails.len() != 1 {
            return refuse("mail: a contact has exactly one (external) address".into());
        }
        for a in &mails {
            check_address(a)
                .map_err(|m| OpError::ConstraintViolation(format!("mail {a:?}: {m}")))?;
        }
        if !values(entry, "mailLocalAddress").is_empty() {
            return refuse(
                "mailLocalAddress: a contact has no local addresses, only its external mail address"
                    .into(),
            );
        }
        if schema
            .attr_id("userPassword")
            .is_some_and(|pw| entry.values_of(pw).next().is_some())
        {
            return refuse("userPassword: a contact never binds and has no password".into());
        }
        one_of(entry, "rosterRole", &ROLES[2..])?;
    }
    if group {
        one_of(entry, "rosterGroupKind", &GROUP_KINDS)?;
        one_of(entry, "rosterGroupRight", &GROUP_RIGHTS)?;
        let addresses = values(entry, "mailLocalAddress");
        let security = values(entry, "rosterGroupKind")
            .iter()
            .any(|k| k.eq_ignore_ascii_case("security"));
        if security && !addresses.is_empty() {
            return refuse(
                "mailLocalAddress: a security group grants rights and receives no mail; it has no addresses"
                    .into(),
            );
        }
        let domains = domains();
        for a in &addresses {
            check_local_address(a, &domains, true)?;
        }
    }
    Ok(())
}

/// Keeps the primary address among the delivering ones: added when missing, and a previous
/// primary the entry held only as such leaves with it.
fn keep_primary_delivering(dir: &Directory, entry: &mut Entry, before: Option<&Entry>) {
    let schema = &dir.schema;
    let (Some(mail), Some(local)) = (schema.attr_id("mail"), schema.attr_id("mailLocalAddress"))
    else {
        return;
    };
    let norm = |v: &[u8]| String::from_utf8_lossy(v).to_ascii_lowercase();
    let primary: Option<Vec<u8>> = entry.values_of(mail).next().cloned();
    let old_primary: Option<Vec<u8>> = before.and_then(|b| b.values_of(mail).next().cloned());
    let Some(desc) = roster_schema::AttrDesc::parse(schema, "mailLocalAddress") else {
        return;
    };
    if entry.get(local).is_none() {
        entry.attrs.push(roster_schema::Attribute {
            desc,
            values: Vec::new(),
        });
    }
    let Some(attr) = entry.attrs.iter_mut().find(|a| a.desc.id == local) else {
        return;
    };
    if let Some(old) = &old_primary {
        if primary.as_ref().is_none_or(|p| norm(p) != norm(old)) {
            attr.values.retain(|v| norm(v) != norm(old));
        }
    }
    if let Some(p) = &primary {
        if !attr.values.iter().any(|v| norm(v) == norm(p)) {
            attr.values.insert(0, p.clone());
        }
    }
    entry.attrs.retain(|a| !a.values.is_empty());
}

/// An address a user or group receives mail at: well formed (or `@domain`, the domain's
/// catch-all) and in one of `domains`.
fn check_local_address(a: &str, domains: &[String], catch_all: bool) -> Result<(), OpError> {
    let bad = |m: String| Err(OpError::ConstraintViolation(m));
    let domain = match a.strip_prefix('@') {
        Some(d) if catch_all => {
            check_domain(d).or_else(|m| bad(format!("{a:?}: {m}")))?;
            d
        }
        _ => {
            check_address(a).or_else(|m| bad(format!("{a:?}: {m}")))?;
            a.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
        }
    };
    if domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Ok(());
    }
    if domains.is_empty() {
        return bad(format!(
            "{a:?}: this entry's naming context has no mail domain (dc=... components or associatedDomain)"
        ));
    }
    bad(format!(
        "{a:?}: {domain} is not a domain of this entry's naming context (its domains: {})",
        domains.join(", ")
    ))
}

/// True if `who` is a member of the global admin group
/// (`access.global_admins`).
pub fn is_global_admin(dir: &Directory, who: &crate::identity::Identity, reader: &Reader) -> bool {
    dir.global_admins
        .as_ref()
        .is_some_and(|g| crate::access::Requester::new(who, reader).is_member_of(g))
}

/// Refuses a change of an entry's upstream mapping (`rosterUpstream`, `rosterUpstreamDn`,
/// `rosterUpstreamId`) that concerns a configured `[[upstream]]` by anyone but the root DN, a
/// global admin or one of that upstream's `writers`: the mapping decides where rosterd sends
/// the password of a user who binds, so a domain admin must not point one of its entries at
/// somebody else's upstream account (to guess its password through rosterd), nor send its
/// users' passwords to another upstream.
pub fn check_upstream_mapping(
    dir: &Directory,
    who: &crate::identity::Identity,
    reader: &Reader,
    entry: &Entry,
    before: Option<&Entry>,
) -> Result<(), OpError> {
    let values = |e: &Entry, attr: &str| -> Vec<Vec<u8>> {
        dir.schema
            .attr_id(attr)
            .map(|id| e.values_of(id).cloned().collect())
            .unwrap_or_default()
    };
    const ATTRS: [&str; 3] = ["rosterUpstream", "rosterUpstreamDn", "rosterUpstreamId"];
    let changed = ATTRS.iter().any(|a| {
        let now = values(entry, a);
        match before {
            Some(b) => now != values(b, a),
            None => !now.is_empty(),
        }
    });
    if !changed {
        return Ok(());
    }
    let mut names: Vec<Vec<u8>> = values(entry, "rosterUpstream");
    if let Some(b) = before {
        names.extend(values(b, "rosterUpstream"));
    }
    for name in names {
        let name = String::from_utf8_lossy(&name);
        let Some(upstream) = dir.upstreams.get(&name) else {
            continue;
        };
        if who.is_root() {
            continue;
        }
        let global_admin = is_global_admin(dir, who, reader);
        let writer = match who {
            crate::identity::Identity::Entry { ndn, .. } => {
                upstream.config.writers.iter().any(|w| {
                    roster_schema::Dn::parse(w)
                        .ok()
                        .and_then(|d| d.normalize(&dir.schema).ok())
                        .is_some_and(|w| &w == ndn)
                })
            }
            _ => false,
        };
        if !global_admin && !writer {
            return Err(OpError::InsufficientAccess(format!(
                "rosterUpstream {name}: only the root DN, a global admin or one of the upstream's writers ([[upstream]] writers) maps entries to it, since the mapping decides where a user's password is checked"
            )));
        }
    }
    Ok(())
}

/// Refuses a change of `associatedDomain` (the domain names a naming context serves, which
/// decide where addresses may be) by anyone but the root DN and global admins, and a name
/// another naming context already serves.
pub fn check_domain_claims(
    dir: &Directory,
    who: &crate::identity::Identity,
    reader: &Reader,
    entry: &Entry,
    before: Option<&Entry>,
) -> Result<(), OpError> {
    let Some(id) = dir.schema.attr_id("associatedDomain") else {
        return Ok(());
    };
    let names = |e: &Entry| -> Vec<String> {
        let mut v: Vec<String> = e
            .values_of(id)
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let now = names(entry);
    let was = before.map(names).unwrap_or_default();
    if now == was {
        return Ok(());
    }
    if !who.is_root() && !is_global_admin(dir, who, reader) {
        return Err(OpError::InsufficientAccess(
            "associatedDomain: only a global admin names the domains a naming context serves"
                .into(),
        ));
    }
    let own = dir.suffix_of(&entry.ndn);
    let contexts = dir.naming.current();
    for name in now.iter().filter(|n| !was.contains(n)) {
        for other in contexts.list.iter().filter(|c| Some(*c) != own.as_ref()) {
            if domains_of(dir, reader, other).iter().any(|d| d == name) {
                return Err(OpError::ConstraintViolation(format!(
                    "associatedDomain {name}: already a domain of {other}"
                )));
            }
        }
    }
    Ok(())
}

/// The mail domains of the naming context holding `ndn`.
pub fn domains_of(dir: &Directory, reader: &Reader, ndn: &NormDn) -> Vec<String> {
    let Some(suffix) = dir.suffix_of(ndn) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let labels: Option<Vec<&str>> = suffix.rdns.iter().map(|r| r.strip_prefix("dc=")).collect();
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        out.push(labels.join("."));
    }
    if let (Some(id), Ok(Some((_, e)))) = (
        dir.schema.attr_id("associatedDomain"),
        reader.entry_by_dn(&suffix),
    ) {
        out.extend(
            e.values_of(id)
                .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase()),
        );
    }
    out
}

/// What a write does to the global admin group's enabled members.
pub enum AdminChange<'a> {
    /// The entry is deleted.
    Delete(&'a NormDn),
    /// The entry becomes `after`.
    Modify(&'a Entry),
}

/// [`check_last_global_admin`] for a change about to be written: when the change concerns
/// the global admin group (the group itself, or deleting or disabling one of its members), the
/// check runs under a lock, on the directory as it is then, and the returned guard keeps other
/// such changes out until the caller has written its own.
pub fn guard_last_global_admin<'d>(
    dir: &'d Directory,
    change: AdminChange<'_>,
) -> Result<Option<std::sync::MutexGuard<'d, ()>>, OpError> {
    let Some(group_dn) = &dir.global_admins else {
        return Ok(None);
    };
    let reader = dir.store.reader();
    let Some((_, group)) = reader.entry_by_dn(group_dn)? else {
        return Ok(None);
    };
    let names = |dn: &NormDn| {
        dir.schema.attr_id("member").is_some_and(|m| {
            group.values_of(m).any(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| roster_schema::Dn::parse(v).ok())
                    .and_then(|d| d.normalize(&dir.schema).ok())
                    .is_some_and(|n| n == *dn)
            })
        })
    };
    let relevant = match &change {
        AdminChange::Delete(dn) => *dn == group_dn || names(dn),
        AdminChange::Modify(after) => {
            after.ndn == *group_dn
                || (crate::ops::bind::is_disabled(dir, after) && names(&after.ndn))
        }
    };
    if !relevant {
        return Ok(None);
    }
    let guard = match dir.admins_lock.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    check_last_global_admin(dir, &dir.store.reader(), change)?;
    Ok(Some(guard))
}

/// Refuses a change that would leave the global admin group (`access.global_admins`) without
/// an enabled member: deleting or disabling its last one, removing it from the group, or
/// deleting the group while it has members.
pub fn check_last_global_admin(
    dir: &Directory,
    reader: &Reader,
    change: AdminChange<'_>,
) -> Result<(), OpError> {
    let Some(group_dn) = &dir.global_admins else {
        return Ok(());
    };
    let schema = &dir.schema;
    let Some(member) = schema.attr_id("member") else {
        return Ok(());
    };
    let Some((_, group)) = reader.entry_by_dn(group_dn)? else {
        return Ok(());
    };
    let is_disabled = |e: &Entry| crate::ops::bind::is_disabled(dir, e);
    let members = |g: &Entry| -> Vec<NormDn> {
        g.values_of(member)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|v| roster_schema::Dn::parse(v).ok())
            .filter_map(|d| d.normalize(schema).ok())
            .collect()
    };
    // Enabled members now, and after the change.
    let enabled_now: Vec<NormDn> = members(&group)
        .into_iter()
        .filter(|m| matches!(reader.entry_by_dn(m), Ok(Some((_, e))) if !is_disabled(&e)))
        .collect();
    if enabled_now.is_empty() {
        return Ok(());
    }
    let left = match change {
        AdminChange::Delete(dn) if dn == group_dn => 0,
        AdminChange::Delete(dn) => enabled_now.iter().filter(|m| *m != dn).count(),
        AdminChange::Modify(after) if after.ndn == *group_dn => members(after)
            .iter()
            .filter(|m| matches!(reader.entry_by_dn(m), Ok(Some((_, e))) if !is_disabled(&e)))
            .count(),
        AdminChange::Modify(after) if is_disabled(after) => {
            enabled_now.iter().filter(|m| **m != after.ndn).count()
        }
        AdminChange::Modify(_) => return Ok(()),
    };
    if left == 0 {
        return Err(OpError::UnwillingToPerform(format!(
            "this would leave {} without an enabled member: the last global admin cannot be deleted, disabled or removed; add another admin first",
            group.dn
        )));
    }
    Ok(())
}

/// Checks the heir of a delete with transfer (`ops::delete`): another user of the deleted
/// user's domain, which the client may give addresses to. Returns its DN.
pub fn check_heir(
    dir: &Directory,
    who: &crate::identity::Identity,
    reader: &Reader,
    deleted: &NormDn,
    heir: &str,
) -> Result<NormDn, OpError> {
    let schema = &dir.schema;
    let refuse = |m: String| OpError::UnwillingToPerform(m);
    let heir_ndn = roster_schema::Dn::parse(heir)?.normalize(schema)?;
    let Some((_, gone)) = reader.entry_by_dn(deleted)? else {
        return Err(OpError::NoSuchObject { matched: None });
    };
    if !gone.has_object_class(schema, USER_CLASS) {
        return Err(refuse(format!(
            "only a user ({USER_CLASS}) hands its addresses and groups on; {} is not one",
            gone.dn
        )));
    }
    if heir_ndn == *deleted {
        return Err(refuse("a user cannot inherit from itself".into()));
    }
    let missing = || refuse(format!("the user {heir} who is to inherit does not exist"));
    let Some((_, heir_entry)) = reader.entry_by_dn(&heir_ndn)? else {
        return Err(missing());
    };
    // An heir the client cannot see is not there for it either.
    let requester = crate::access::Requester::new(who, reader);
    if !dir
        .policy
        .for_entry(schema, &requester, &heir_entry)
        .allows(None, crate::access::Rights::READ)
    {
        return Err(missing());
    }
    if !heir_entry.has_object_class(schema, USER_CLASS) {
        return Err(refuse(format!(
            "{heir} is not a user ({USER_CLASS}) and cannot inherit"
        )));
    }
    if dir.suffix_of(&heir_ndn) != dir.suffix_of(deleted) {
        return Err(refuse(format!(
            "{heir} is in another domain: addresses stay in their domain"
        )));
    }
    crate::ops::require_right(
        dir,
        who,
        reader,
        &heir_entry,
        schema.attr_id("mailLocalAddress"),
        crate::access::Rights::WRITE,
        "transfer to",
    )?;
    Ok(heir_ndn)
}

/// `heir` with the addresses of `gone` added to its delivering addresses.
pub fn inherit(schema: &roster_schema::Schema, gone: &Entry, heir: &Entry) -> Entry {
    let mut out = heir.clone();
    let (Some(mail), Some(local)) = (schema.attr_id("mail"), schema.attr_id("mailLocalAddress"))
    else {
        return out;
    };
    let Some(desc) = roster_schema::AttrDesc::parse(schema, "mailLocalAddress") else {
        return out;
    };
    let given: Vec<Vec<u8>> = gone
        .values_of(mail)
        .chain(gone.values_of(local))
        .cloned()
        .collect();
    if out.get(local).is_none() {
        out.attrs.push(roster_schema::Attribute {
            desc,
            values: Vec::new(),
        });
    }
    if let Some(attr) = out.attrs.iter_mut().find(|a| a.desc.id == local) {
        for v in given {
            if !attr.values.iter().any(|h| h.eq_ignore_ascii_case(&v)) {
                attr.values.push(v);
            }
        }
    }
    out.attrs.retain(|a| !a.values.is_empty());
    out
}

/// The addresses of an offline load (`rosterd load`), which bypasses the store's write
/// transactions: the same uniqueness rules, over the file and what is already stored.
#[derive(Default)]
pub struct AddressBook {
    /// (user or group, lowercased address) -> DN of the entry holding it.
    seen: std::collections::HashMap<(bool, String), String>,
}

impl AddressBook {
    /// Records the addresses of `entry`, or names the entry that already holds one of them.
    pub fn claim(&mut self, dir: &Directory, reader: &Reader, entry: &Entry) -> Result<(), String> {
        let schema = &dir.schema;
        let user = entry.has_object_class(schema, USER_CLASS);
        if !user && !entry.has_object_class(schema, GROUP_CLASS) {
            return Ok(());
        }
        let (what, class, attrs): (&str, &str, &[&str]) = if user {
            ("user address", USER_CLASS, &["mail", "mailLocalAddress"])
        } else {
            ("group address", GROUP_CLASS, &["mailLocalAddress"])
        };
        let mut mine = Vec::new();
        for a in attrs {
            if let Some(id) = schema.attr_id(a) {
                mine.extend(
                    entry
                        .values_of(id)
                        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase()),
                );
            }
        }
        mine.sort();
        mine.dedup();
        for address in &mine {
            if let Some(holder) = self.seen.get(&(user, address.clone())) {
                return Err(format!("{what} {address} is already used by {holder}"));
            }
            use roster_schema::Filter;
            let eq = |attr: &str, value: &str| Filter::Equality {
                attr: attr.to_string(),
                value: value.as_bytes().to_vec(),
            };
            let filter = Filter::And(vec![
                eq("objectClass", class),
                Filter::Or(attrs.iter().map(|a| eq(a, address)).collect()),
            ])
            .compile(schema);
            let mut stored = reader
                .search(&NormDn::default(), roster_storage::Scope::Subtree, &filter)
                .map_err(|e| e.to_string())?;
            if let Some(found) = stored.next() {
                let (_, holder) = found.map_err(|e| e.to_string())?;
                if holder.ndn != entry.ndn {
                    return Err(format!("{what} {address} is already used by {}", holder.dn));
                }
            }
        }
        for address in mine {
            self.seen.insert((user, address), entry.dn.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_in_the_entrys_domains() {
        let d = vec!["example.com".to_string()];
        assert!(check_local_address("@example.com", &d, true).is_ok());
        assert!(check_local_address("a@EXAMPLE.com", &d, true).is_ok());
        let e = check_local_address("a@other.org", &d, true).unwrap_err();
        assert!(e.to_string().contains("other.org is not a domain"), "{e}");
    }
}
