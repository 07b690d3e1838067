//! Password Modify (RFC 3062): the root DN sets anyone's password; an entry changes its own,
//! proving the old one when it gives it. Without a new password the server generates one and
//! returns it. The stored value is always a hash. A user mapped from an upstream directory
//! (`rosterUpstream`) changes its password there.

use super::Identity;
use crate::access::Rights;
use crate::directory::Directory;
use crate::error::{ldap_result, success, OpError};
use crate::password;
use ldap3_proto::proto::{
    LdapExtendedRequest, LdapExtendedResponse, LdapPasswordModifyRequest,
    LdapPasswordModifyResponse,
};
use roster_schema::{AttrDesc, Attribute, Dn};

pub fn password_modify(
    dir: &Directory,
    who: &Identity,
    req: &LdapExtendedRequest,
) -> LdapExtendedResponse {
    match run(dir, who, req) {
        Ok(generated) => LdapPasswordModifyResponse {
            res: success(),
            gen_password: generated,
        }
        .into(),
        Err(e) => {
            if let OpError::Store(inner) = &e {
                dir.store_failed("password modify", inner);
            }
            LdapExtendedResponse {
                res: ldap_result(&e),
                name: None,
                value: None,
            }
        }
    }
}

fn run(
    dir: &Directory,
    who: &Identity,
    req: &LdapExtendedRequest,
) -> Result<Option<String>, OpError> {
    let req = LdapPasswordModifyRequest::try_from(req)
        .map_err(|_| OpError::Protocol("malformed password modify request".into()))?;
    let schema = &dir.schema;
    let target = match (&req.user_identity, who) {
        (_, Identity::Anonymous) => {
            return Err(OpError::UnwillingToPerform(
                "only authenticated users may change passwords".into(),
            ))
        }
        (Some(id), _) => Dn::parse(id)?.normalize(schema)?,
        (None, Identity::Entry { ndn, .. }) => ndn.clone(),
        (None, Identity::Root { .. }) => {
            return Err(OpError::UnwillingToPerform(
                "the root DN's password is set in the configuration".into(),
            ))
        }
    };
    if dir.suffix_of(&target).is_none() {
        return Err(OpError::NoSuchObject { matched: None });
    }
    let Some(pw) = schema.attr_id("userPassword") else {
        return Err(OpError::Internal("the schema has no userPassword".into()));
    };
    let reader = dir.store.reader();
    let Some((_, mut entry)) = reader.entry_by_dn(&target)? else {
        let matched = super::matched(dir, who, &reader, &target)?;
        return Err(OpError::NoSuchObject { matched });
    };
    super::require_right(dir, who, &reader, &entry, Some(pw), Rights::WRITE, "change")?;
    // A mapped user's password lives in its upstream directory, which checks it at every bind.
    if crate::upstream::mapping(dir, &entry).is_some() {
        return Err(OpError::UnwillingToPerform(
            crate::upstream::CHANGE_UPSTREAM.into(),
        ));
    }
    if let (Some(old), false) = (&req.old_password, who.is_root()) {
        if !entry
            .values_of(pw)
            .any(|v| password::verify(v, old.as_bytes()))
        {
            return Err(OpError::InvalidCredentials);
        }
    }
    let (new, generated) = match req.new_password {
        Some(p) if !p.is_empty() => {
            dir.check_password(&entry, p.as_bytes())
                .map_err(OpError::ConstraintViolation)?;
            (p, None)
        }
        _ => {
            let g = password::generate();
            (g.clone(), Some(g))
        }
    };
    let hashed =
        password::hash(dir.settings.password_scheme, new.as_bytes()).map_err(OpError::Internal)?;
    entry.attrs.retain(|a| a.desc.id != pw);
    entry.attrs.push(Attribute {
        desc: AttrDesc::plain(pw),
        values: vec![hashed],
    });
    let now = crate::time::generalized_now();
    super::set_operational(
        schema,
        &mut entry.attrs,
        "modifiersName",
        who.dn().as_bytes(),
    );
    super::set_operational(schema, &mut entry.attrs, "modifyTimestamp", now.as_bytes());
    // The mail model's rules hold here too (a contact gets no password).
    let before = entry.clone();
    crate::mail::check_write(dir, &dir.store.reader(), &mut entry, Some(&before))?;
    dir.store.replace(&target, entry)?;
    Ok(generated)
}
