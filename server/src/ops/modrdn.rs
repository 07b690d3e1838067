//! Modify DN (RFC 4511 section 4.9): a new RDN, optionally removing the old RDN's values, and
//! optionally a new superior; an entry with descendants moves with its whole subtree, in one
//! transaction.

use super::Identity;
use crate::access::Rights;
use crate::directory::Directory;
use crate::error::OpError;
use ldap3_proto::proto::{LdapModifyDNRequest, LdapResult};
use roster_schema::{Attribute, Dn, Schema};
use roster_storage::StoreError;

pub fn modify_dn(dir: &Directory, who: &Identity, req: &LdapModifyDNRequest) -> LdapResult {
    super::write_result(dir, "modify DN", super::Write::Commit, run(dir, who, req))
}

fn run(dir: &Directory, who: &Identity, req: &LdapModifyDNRequest) -> Result<(), OpError> {
    super::require_authenticated(who)?;
    let schema = &dir.schema;
    let ndn = Dn::parse(&req.dn)?.normalize(schema)?;
    let new_rdn_dn = Dn::parse(&req.newrdn)?;
    let [new_rdn] = new_rdn_dn.rdns.as_slice() else {
        return Err(OpError::InvalidDn(format!(
            "new RDN {:?} must be exactly one RDN",
            req.newrdn
        )));
    };
    if dir.suffix_of(&ndn).is_none() {
        return Err(OpError::NoSuchObject { matched: None });
    }
    if dir.global_admins.as_ref() == Some(&ndn) {
        return Err(OpError::UnwillingToPerform(
            "access.global_admins names this group: rename it in the configuration first".into(),
        ));
    }
    if dir.is_context(&ndn) {
        return Err(OpError::UnwillingToPerform(
            "a naming context's own entry cannot be renamed".into(),
        ));
    }
    let new_superior = match &req.new_superior {
        Some(s) => {
            let dn = Dn::parse(s)?;
            let norm = dn.normalize(schema)?;
            if dir.suffix_of(&norm).is_none() {
                return Err(OpError::UnwillingToPerform(
                    "the new superior is not within a naming context of this server".into(),
                ));
            }
            Some((dn, norm))
        }
        None => None,
    };
    let reader = dir.store.reader();
    let Some((_, mut entry)) = reader.entry_by_dn(&ndn)? else {
        let matched = super::matched(dir, who, &reader, &ndn)?;
        return Err(OpError::NoSuchObject { matched });
    };
    // A rename is a delete where the entry was and an add where it goes.
    super::require_right(dir, who, &reader, &entry, None, Rights::DELETE, "move")?;
    let before = entry.clone();
    let parent = match &new_superior {
        Some((dn, _)) => dn.clone(),
        None => entry.dn.parent().unwrap_or_default(),
    };
    let new_dn = parent.child(new_rdn.clone());
    let new_ndn = new_dn.normalize(schema)?;
    if req.deleteoldrdn {
        remove_old_rdn_values(schema, &mut entry.attrs, &entry.dn, &new_dn);
    }
    entry.dn = new_dn;
    entry.ndn = new_ndn;
    // The new RDN's values join the entry, as on add.
    entry.add_naming_values(schema);
    schema.check_entry(&entry)?;
    super::require_right(dir, who, &reader, &entry, None, Rights::ADD, "move to")?;
    crate::mail::check_write(dir, &reader, &mut entry, Some(&before))?;
    schema.check_entry(&entry)?;
    let now = crate::time::generalized_now();
    super::set_operational(
        schema,
        &mut entry.attrs,
        "modifiersName",
        who.dn().as_bytes(),
    );
    super::set_operational(schema, &mut entry.attrs, "modifyTimestamp", now.as_bytes());
    let new_parent = new_superior.as_ref().map(|(_, n)| n);
    let touch = super::mark_modified(schema, who, &now);
    let result = dir.store.rename(&ndn, entry, new_parent, &touch);
    match result {
        Ok(_) => Ok(()),
        Err(StoreError::NoSuchParent { .. }) => Err(OpError::NoSuchObject { matched: None }),
        Err(StoreError::InvalidEntry { reason, .. }) => Err(OpError::UnwillingToPerform(reason)),
        Err(e) => Err(e.into()),
    }
}

/// Removes the values of the old RDN that the new RDN does not also name.
fn remove_old_rdn_values(schema: &Schema, attrs: &mut Vec<Attribute>, old: &Dn, new: &Dn) {
    let (Some(old_rdn), Some(new_rdn)) = (old.rdn(), new.rdn()) else {
        return;
    };
    for ava in &old_rdn.avas {
        let Some(id) = schema.attr_id(&ava.attr) else {
            continue;
        };
        let key = |v: &[u8]| schema.normalize_eq(id, v).ok().flatten();
        let old_key = key(&ava.value);
        let kept = new_rdn
            .avas
            .iter()
            .any(|n| schema.attr_id(&n.attr) == Some(id) && key(&n.value) == old_key);
        if kept {
            continue;
        }
        for a in attrs.iter_mut().filter(|a| a.desc.id == id) {
            a.values.retain(|v| key(v) != old_key);
        }
        attrs.retain(|a| !a.values.is_empty());
    }
}
