//! Delete (RFC 4511 section 4.8): removes a leaf entry and all its index keys, and the values
//! naming it in its groups (referential integrity), in one transaction.

use super::Identity;
use crate::access::Rights;
use crate::directory::Directory;
use crate::error::OpError;
use ldap3_proto::proto::LdapResult;
use roster_schema::Dn;
use roster_storage::StoreError;

pub fn delete(dir: &Directory, who: &Identity, dn: &str) -> LdapResult {
    super::write_result(dir, "delete", run(dir, who, dn))
}

fn run(dir: &Directory, who: &Identity, dn: &str) -> Result<(), OpError> {
    super::require_authenticated(who)?;
    let ndn = Dn::parse(dn)?.normalize(&dir.schema)?;
    if dir.suffix_of(&ndn).is_none() {
        return Err(OpError::NoSuchObject { matched: None });
    }
    let reader = dir.store.reader();
    if let Some((_, entry)) = reader.entry_by_dn(&ndn)? {
        super::require_right(dir, who, &reader, &entry, None, Rights::DELETE, "delete")?;
        crate::mail::check_last_global_admin(dir, &reader, crate::mail::AdminChange::Delete(&ndn))?;
    }
    drop(reader);
    let now = crate::time::generalized_now();
    let touch = super::mark_modified(&dir.schema, who, &now);
    let result = dir.store.delete(&ndn, &touch);
    match result {
        Ok((_, repaired)) => {
            if !repaired.entries.is_empty() {
                tracing::debug!(dn = %ndn, references = repaired.entries.len(), "references to the deleted entry removed");
            }
            Ok(())
        }
        Err(StoreError::NoSuchObject { .. }) => {
            let matched = super::matched(dir, who, &dir.store.reader(), &ndn)?;
            Err(OpError::NoSuchObject { matched })
        }
        Err(StoreError::NotAllowedOnNonLeaf { .. }) => Err(OpError::NotAllowedOnNonLeaf(
            "subordinate objects must be deleted first".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
