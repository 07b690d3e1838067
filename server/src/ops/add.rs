//! Add (RFC 4511 section 4.7): a schema-checked new entry with the operational attributes the
//! server maintains, and `userPassword` values in clear stored hashed.

use super::{Identity, Write};
use crate::access::Rights;
use crate::directory::Directory;
use crate::error::OpError;
use crate::password;
use ldap3_proto::proto::{LdapAddRequest, LdapResult};
use roster_schema::{AttrDesc, Attribute, Entry, Schema};

/// Adds the entry, or with `write` = [`Write::CheckOnly`] (the No-Op control) checks every
/// rule an add obeys and writes nothing.
pub fn add(dir: &Directory, who: &Identity, req: &LdapAddRequest, write: Write) -> LdapResult {
    super::write_result(dir, "add", write, run(dir, who, req, write))
}

fn run(dir: &Directory, who: &Identity, req: &LdapAddRequest, write: Write) -> Result<(), OpError> {
    super::require_authenticated(who)?;
    let schema = &dir.schema;
    let parts = req
        .attributes
        .iter()
        .map(|a| (a.atype.clone(), a.vals.clone()))
        .collect();
    let mut entry = Entry::from_add_request(schema, &req.dn, parts)?;
    // A domain entry outside every naming context, added by a global admin, starts a new one;
    // the checks, the write and the list's update happen under one lock.
    let _creating = dir
        .suffix_of(&entry.ndn)
        .is_none()
        .then(|| dir.lock_contexts());
    let reader = dir.store.reader();
    let new_context = dir.suffix_of(&entry.ndn).is_none();
    if new_context && !may_create_context(dir, who, &reader, &entry)? {
        // slapd's words for a DN no database holds.
        return Err(OpError::UnwillingToPerform(
            "no global superior knowledge".into(),
        ));
    }
    if let Some(a) = entry.attrs.iter().find(|a| {
        schema
            .attr(a.desc.id)
            .is_some_and(|t| t.no_user_modification)
    }) {
        return Err(OpError::ConstraintViolation(format!(
            "{}: no user modification allowed",
            schema.attr_name(a.desc.id)
        )));
    }
    entry.add_naming_values(schema);
    if !new_context {
        super::require_right(dir, who, &reader, &entry, None, Rights::ADD, "add")?;
    }
    crate::mail::check_write(dir, &reader, &mut entry, None)?;
    crate::mail::check_domain_claims(dir, who, &reader, &entry, None)?;
    crate::mail::check_upstream_mapping(dir, who, &reader, &entry, None)?;
    drop(reader);
    if let Some(pw) = schema.attr_id("userPassword") {
        // {CLEARTEXT}x is the password x.
        for a in entry.attrs.iter_mut().filter(|a| a.desc.id == pw) {
            for v in a.values.iter_mut() {
                if let Some((scheme, clear)) = password::split_scheme(v) {
                    if scheme.eq_ignore_ascii_case("CLEARTEXT") {
                        *v = clear.to_vec();
                    }
                }
            }
        }
        for v in entry.values_of(pw) {
            if password::split_scheme(v).is_none() {
                dir.check_password(&entry, v)
                    .map_err(OpError::ConstraintViolation)?;
            }
        }
    }
    // A checked add stores nothing: the cheapest scheme stands in for the slow one.
    let scheme = match write {
        Write::Commit => dir.settings.password_scheme,
        Write::CheckOnly => password::Scheme::Ssha,
    };
    hash_clear_passwords(schema, scheme, &mut entry)?;
    stamp_new_entry(
        schema,
        &mut entry,
        Some(who.dn()),
        &crate::time::generalized_now(),
    );
    schema.check_entry(&entry)?;
    let is_suffix = new_context || dir.is_context(&entry.ndn);
    let ndn = entry.ndn.clone();
    let name = entry.dn.to_string();
    if write == Write::CheckOnly {
        if new_context {
            return Ok(());
        }
        return match dir.store.check_add(entry, is_suffix) {
            Err(roster_storage::StoreError::NoSuchParent { .. }) => {
                let matched = super::matched(dir, who, &dir.store.reader(), &ndn)?;
                Err(OpError::NoSuchObject { matched })
            }
            other => other.map_err(OpError::from),
        };
    }
    let added = if is_suffix {
        dir.store.add_root(entry)
    } else {
        dir.store.add(entry)
    };
    match added {
        Ok(_) => {
            if new_context {
                dir.set_context(&ndn, Some(&name));
                tracing::info!(suffix = %name, by = %who.dn(), "naming context created");
            }
            Ok(())
        }
        Err(roster_storage::StoreError::NoSuchParent { .. }) => {
            let matched = super::matched(dir, who, &dir.store.reader(), &ndn)?;
            Err(OpError::NoSuchObject { matched })
        }
        Err(e) => Err(e.into()),
    }
}

/// True if `entry`, outside every naming context, may start one: the client is the root DN or
/// a global admin, the entry is a domain (`dcObject` or `domain`), and no naming context lies
/// below it. A client that may not gets slapd's answer for a DN no database holds; one that may
/// but names a wrong entry is told why.
fn may_create_context(
    dir: &Directory,
    who: &Identity,
    reader: &roster_storage::Reader,
    entry: &Entry,
) -> Result<bool, OpError> {
    let global_admin = crate::mail::is_global_admin(dir, who, reader);
    if !dir.settings.runtime_domains || !(who.is_root() || global_admin) {
        return Ok(false);
    }
    let schema = &dir.schema;
    if !entry.has_object_class(schema, "dcObject") && !entry.has_object_class(schema, "domain") {
        return Err(OpError::UnwillingToPerform(format!(
            "{} is outside every naming context; a new one (a mail domain) starts with an entry of class dcObject or domain",
            entry.dn
        )));
    }
    if entry.ndn.is_root() {
        return Ok(false);
    }
    if let Some(inner) = dir
        .naming
        .current()
        .list
        .iter()
        .find(|s| s.is_within(&entry.ndn))
    {
        return Err(OpError::UnwillingToPerform(format!(
            "{} would hold the naming context {inner}; naming contexts do not nest",
            entry.dn
        )));
    }
    Ok(true)
}

/// Stores `userPassword` values given in clear as hashes in the configured scheme; values
/// that already carry a `{SCHEME}` are kept, so hashes can be imported from other servers.
fn hash_clear_passwords(
    schema: &Schema,
    scheme: password::Scheme,
    entry: &mut Entry,
) -> Result<(), OpError> {
    let Some(pw) = schema.attr_id("userPassword") else {
        return Ok(());
    };
    for a in entry.attrs.iter_mut().filter(|a| a.desc.id == pw) {
        for v in a.values.iter_mut() {
            if password::split_scheme(v).is_none() {
                *v = password::hash(scheme, v).map_err(OpError::Internal)?;
            }
        }
    }
    Ok(())
}

/// Adds the operational attributes a new entry gets, as slapd does on add and slapadd on
/// load: structuralObjectClass, entryUUID, creatorsName and modifiersName, and the times.
/// Values the entry already carries (from an LDIF export) are kept.
pub fn stamp_new_entry(schema: &Schema, entry: &mut Entry, creator: Option<&str>, now: &str) {
    let mut extra: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(soc) = schema
        .structural_class(entry)
        .ok()
        .and_then(|id| schema.class(id))
    {
        extra.push(("structuralObjectClass", soc.name().as_bytes().to_vec()));
    }
    extra.push((
        "entryUUID",
        uuid::Uuid::new_v4().hyphenated().to_string().into_bytes(),
    ));
    if let Some(c) = creator {
        extra.push(("creatorsName", c.as_bytes().to_vec()));
        extra.push(("modifiersName", c.as_bytes().to_vec()));
    }
    extra.push(("createTimestamp", now.as_bytes().to_vec()));
    extra.push(("modifyTimestamp", now.as_bytes().to_vec()));
    for (name, value) in extra {
        if let Some(desc) = AttrDesc::parse(schema, name) {
            if entry.values_of(desc.id).next().is_none() {
                entry.attrs.push(Attribute {
                    desc,
                    values: vec![value],
                });
            }
        }
    }
}
