//! Modify (RFC 4511 section 4.6): the changes are applied in order to a copy of the entry,
//! the result is schema-checked (which also keeps the RDN's values in it, with slapd's
//! namingViolation), and the store replaces the entry in one transaction writing
//! only the index keys that changed. Either every change takes effect or none does.

use super::{Identity, Write};
use crate::access::Rights;
use crate::directory::Directory;
use crate::error::OpError;
use crate::password;
use ldap3_proto::proto::{LdapModify, LdapModifyRequest, LdapModifyType, LdapResult};
use roster_schema::{AttrDesc, AttrId, Attribute, Dn, Entry, Schema};

/// Applies the changes, or with `write` = [`Write::CheckOnly`] (the No-Op control) checks
/// them all and writes nothing.
pub fn modify(
    dir: &Directory,
    who: &Identity,
    req: &LdapModifyRequest,
    write: Write,
) -> LdapResult {
    super::write_result(dir, "modify", write, run(dir, who, req, write))
}

fn run(
    dir: &Directory,
    who: &Identity,
    req: &LdapModifyRequest,
    write: Write,
) -> Result<(), OpError> {
    super::require_authenticated(who)?;
    let schema = &dir.schema;
    let ndn = Dn::parse(&req.dn)?.normalize(schema)?;
    if dir.suffix_of(&ndn).is_none() {
        return Err(OpError::NoSuchObject { matched: None });
    }
    let reader = dir.store.reader();
    let Some((_, mut entry)) = reader.entry_by_dn(&ndn)? else {
        let matched = super::matched(dir, who, &reader, &ndn)?;
        return Err(OpError::NoSuchObject { matched });
    };
    // The lock of failed binds is not stored: deleting pwdAccountLockedTime clears it.
    let locked_attr = schema.attr_id("pwdAccountLockedTime");
    let (lock_changes, changes): (Vec<&LdapModify>, Vec<&LdapModify>) = req
        .changes
        .iter()
        .partition(|c| AttrDesc::parse(schema, &c.modification.atype).map(|d| d.id) == locked_attr);
    for change in &lock_changes {
        super::require_right(
            dir,
            who,
            &reader,
            &entry,
            locked_attr,
            Rights::WRITE,
            "unlock",
        )?;
        if change.operation != LdapModifyType::Delete || !change.modification.vals.is_empty() {
            return Err(OpError::UnwillingToPerform(
                "pwdAccountLockedTime can only be deleted (to unlock the account)".into(),
            ));
        }
    }
    // A hash chosen by the client escapes the password policy and sets the cost of every
    // later check: administrators (who may add entries here) may import one, others send
    // passwords in clear.
    let password = schema.attr_id("userPassword");
    let sets_hash = changes.iter().any(|c| {
        c.operation != LdapModifyType::Delete
            && AttrDesc::parse(schema, &c.modification.atype).map(|d| d.id) == password
            && c.modification.vals.iter().any(|v| {
                password::split_scheme(v).is_some_and(|(s, _)| !s.eq_ignore_ascii_case("CLEARTEXT"))
            })
    });
    if sets_hash && !who.is_root() {
        let requester = crate::access::Requester::new(who, &reader);
        if !dir
            .policy
            .for_entry(schema, &requester, &entry)
            .allows(None, Rights::ADD)
        {
            return Err(OpError::ConstraintViolation(
                "userPassword: a hashed value may be set by an administrator only; send the password in clear (over TLS)".into(),
            ));
        }
    }
    // Every attribute changed needs the write right on it.
    for change in &changes {
        if let Some(desc) = AttrDesc::parse(schema, &change.modification.atype) {
            super::require_right(
                dir,
                who,
                &reader,
                &entry,
                Some(desc.id),
                Rights::WRITE,
                "modify",
            )?;
        }
    }
    // A mapped user's password lives in its upstream directory: no userPassword is set here,
    // unless the same change ends the mapping (the user becomes a local one).
    let upstream_attr = schema.attr_id("rosterUpstream");
    let names =
        |c: &LdapModify, id| AttrDesc::parse(schema, &c.modification.atype).map(|d| d.id) == id;
    let touches_password = password.is_some() && changes.iter().any(|c| names(c, password));
    let ends_mapping = changes.iter().any(|c| {
        names(c, upstream_attr)
            && (c.operation == LdapModifyType::Delete
                || (c.operation == LdapModifyType::Replace && c.modification.vals.is_empty()))
    });
    if touches_password && !ends_mapping && crate::upstream::mapping(dir, &entry).is_some() {
        return Err(OpError::UnwillingToPerform(
            crate::upstream::CHANGE_UPSTREAM.into(),
        ));
    }
    let structural_before = schema.structural_class(&entry).ok();
    let before = entry.clone();
    // A checked change stores nothing: the cheapest scheme stands in for the slow one.
    let scheme = match write {
        Write::Commit => dir.settings.password_scheme,
        Write::CheckOnly => password::Scheme::Ssha,
    };
    for change in &changes {
        apply(
            schema,
            scheme,
            &|e, clear| dir.check_password(e, clear),
            &mut entry,
            change,
        )?;
    }
    if !lock_changes.is_empty() && write == Write::Commit {
        if dir.lockout.clear(&ndn) {
            crate::audit::emit(
                "unlocked",
                &[
                    ("account", crate::audit::Value::Str(&req.dn)),
                    ("by", crate::audit::Value::Str(who.dn())),
                ],
            );
        }
        if changes.is_empty() {
            return Ok(());
        }
    }
    if schema.structural_class(&entry).ok() != structural_before {
        return Err(OpError::ObjectClassModsProhibited(
            "structural object class modification from one class to another not allowed".into(),
        ));
    }
    crate::mail::check_write(dir, &reader, &mut entry, Some(&before))?;
    crate::mail::check_domain_claims(dir, who, &reader, &entry, Some(&before))?;
    crate::mail::check_upstream_mapping(dir, who, &reader, &entry, Some(&before))?;
    let _admins =
        crate::mail::guard_last_global_admin(dir, crate::mail::AdminChange::Modify(&entry))?;
    schema.check_entry(&entry)?;
    let now = crate::time::generalized_now();
    super::set_operational(
        schema,
        &mut entry.attrs,
        "modifiersName",
        who.dn().as_bytes(),
    );
    super::set_operational(schema, &mut entry.attrs, "modifyTimestamp", now.as_bytes());
    match write {
        Write::Commit => dir.store.replace(&ndn, entry)?,
        Write::CheckOnly => dir.store.check_replace(&ndn, entry)?,
    }
    Ok(())
}

/// Checks a new clear password for the entry it is set on (the password policy).
type PasswordCheck<'a> = dyn Fn(&Entry, &[u8]) -> Result<(), String> + 'a;

/// Applies one change to the working copy, with the result codes slapd gives.
fn apply(
    schema: &Schema,
    scheme: password::Scheme,
    policy: &PasswordCheck<'_>,
    entry: &mut Entry,
    change: &LdapModify,
) -> Result<(), OpError> {
    let name = &change.modification.atype;
    let Some(desc) = AttrDesc::parse(schema, name) else {
        return Err(OpError::UndefinedAttributeType(format!(
            "{name}: attribute type undefined"
        )));
    };
    if schema.attr(desc.id).is_some_and(|t| t.no_user_modification) {
        return Err(OpError::ConstraintViolation(format!(
            "{name}: no user modification allowed"
        )));
    }
    let mut values = change.modification.vals.clone();
    let is_password = schema.attr_id("userPassword") == Some(desc.id);
    // New clear passwords are stored hashed; a value to delete is found by checking it
    // against the stored hashes instead.
    if is_password && change.operation != LdapModifyType::Delete {
        for v in values.iter_mut() {
            // {CLEARTEXT}x is the password x.
            if let Some((scheme, clear)) = password::split_scheme(v) {
                if scheme.eq_ignore_ascii_case("CLEARTEXT") {
                    *v = clear.to_vec();
                }
            }
            if password::split_scheme(v).is_none() {
                policy(entry, v).map_err(OpError::ConstraintViolation)?;
                *v = password::hash(scheme, v).map_err(OpError::Internal)?;
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        schema.validate(desc.id, v).map_err(|e| {
            OpError::InvalidAttributeSyntax(format!("{name}: value #{i} invalid per syntax: {e}"))
        })?;
    }
    let pos = entry.attrs.iter().position(|a| a.desc.same_as(&desc));
    match change.operation {
        LdapModifyType::Add => {
            if values.is_empty() {
                return Err(OpError::Protocol(format!(
                    "modify/add: {name}: no values given"
                )));
            }
            let mut keys: Vec<Vec<u8>> = match pos.and_then(|p| entry.attrs.get(p)) {
                Some(a) => a.values.iter().map(|v| key(schema, desc.id, v)).collect(),
                None => Vec::new(),
            };
            for (i, v) in values.iter().enumerate() {
                let k = key(schema, desc.id, v);
                if keys.contains(&k) {
                    return Err(OpError::AttributeOrValueExists(format!(
                        "modify/add: {name}: value #{i} already exists"
                    )));
                }
                keys.push(k);
            }
            match pos.and_then(|p| entry.attrs.get_mut(p)) {
                Some(a) => a.values.extend(values),
                None if values.is_empty() => {}
                None => entry.attrs.push(Attribute { desc, values }),
            }
        }
        LdapModifyType::Delete => {
            let Some(p) = pos else {
                return Err(OpError::NoSuchAttribute(format!(
                    "modify/delete: {name}: no such attribute"
                )));
            };
            if values.is_empty() {
                entry.attrs.remove(p);
                return Ok(());
            }
            let Some(a) = entry.attrs.get_mut(p) else {
                return Ok(());
            };
            for (i, v) in values.iter().enumerate() {
                let k = key(schema, desc.id, v);
                let Some(found) = a.values.iter().position(|x| {
                    key(schema, desc.id, x) == k || (is_password && password::verify(x, v))
                }) else {
                    return Err(OpError::NoSuchAttribute(format!(
                        "modify/delete: {name}: no such value (#{i})"
                    )));
                };
                a.values.remove(found);
            }
            if a.values.is_empty() {
                entry.attrs.remove(p);
            }
        }
        LdapModifyType::Replace => {
            let mut keys: Vec<Vec<u8>> = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let k = key(schema, desc.id, v);
                if keys.contains(&k) {
                    return Err(OpError::AttributeOrValueExists(format!(
                        "modify/replace: {name}: value #{i} provided more than once"
                    )));
                }
                keys.push(k);
            }
            match (pos, values.is_empty()) {
                (Some(p), true) => {
                    entry.attrs.remove(p);
                }
                (Some(p), false) => {
                    if let Some(a) = entry.attrs.get_mut(p) {
                        a.values = values;
                    }
                }
                (None, true) => {}
                (None, false) => entry.attrs.push(Attribute { desc, values }),
            }
        }
        LdapModifyType::Increment => {
            let delta = values
                .first()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    OpError::InvalidAttributeSyntax(format!(
                        "modify/increment: {name}: invalid syntax of assertion"
                    ))
                })?;
            let Some(a) = pos.and_then(|p| entry.attrs.get_mut(p)) else {
                return Err(OpError::NoSuchAttribute(format!(
                    "modify/increment: {name}: no such attribute"
                )));
            };
            for v in a.values.iter_mut() {
                let n = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .and_then(|n| n.checked_add(delta))
                    .ok_or_else(|| {
                        OpError::ConstraintViolation(format!(
                            "modify/increment: {name}: value is not an integer in range"
                        ))
                    })?;
                *v = n.to_string().into_bytes();
            }
        }
    }
    Ok(())
}

/// The value's equality key, or the value itself for types without an equality rule.
fn key(schema: &Schema, id: AttrId, v: &[u8]) -> Vec<u8> {
    schema
        .normalize_eq(id, v)
        .ok()
        .flatten()
        .unwrap_or_else(|| v.to_vec())
}
