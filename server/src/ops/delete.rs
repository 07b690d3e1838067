//! Delete (RFC 4511 section 4.8): removes a leaf entry and all its index keys, and the values
//! naming it in its groups (referential integrity), in one transaction.
//!
//! With the transfer control ([`TRANSFER_CONTROL`], its value the DN of another user of the
//! same domain), deleting a user gives that user, in the same transaction, the deleted user's
//! addresses and group memberships: the groups then name the heir where they named the deleted
//! user. OpenLDAP's tools take the value in base64:
//! `ldapdelete -e "!2.25.24255257495890672766456308829707613084.3.1=$(printf %s uid=bob,ou=users,dc=example,dc=com | base64 -w0)" uid=alice,ou=users,dc=example,dc=com`

use super::Identity;
use crate::access::Rights;
use crate::directory::Directory;
use crate::error::OpError;
use ldap3_proto::proto::LdapResult;
use roster_schema::{Dn, Entry};
use roster_storage::StoreError;

/// The transfer control: delete a user and give its addresses and groups to another.
pub const TRANSFER_CONTROL: &str = "2.25.24255257495890672766456308829707613084.3.1";

pub fn delete(dir: &Directory, who: &Identity, dn: &str, heir: Option<&str>) -> LdapResult {
    super::write_result(dir, "delete", super::Write::Commit, run(dir, who, dn, heir))
}

fn run(dir: &Directory, who: &Identity, dn: &str, heir: Option<&str>) -> Result<(), OpError> {
    super::require_authenticated(who)?;
    let ndn = Dn::parse(dn)?.normalize(&dir.schema)?;
    if dir.suffix_of(&ndn).is_none() {
        return Err(OpError::NoSuchObject { matched: None });
    }
    // Ending a naming context created at run time happens under the lock that creating does.
    let _ending = dir
        .naming
        .current()
        .is_created(&ndn)
        .then(|| dir.lock_contexts());
    let reader = dir.store.reader();
    if let Some((_, entry)) = reader.entry_by_dn(&ndn)? {
        super::require_right(dir, who, &reader, &entry, None, Rights::DELETE, "delete")?;
    }
    let heir = match heir {
        Some(h) => Some(crate::mail::check_heir(dir, who, &reader, &ndn, h)?),
        None => None,
    };
    // The heir joins only the groups whose members the client may change itself; from the
    // others the deleted user just leaves, as without an heir.
    let requester = crate::access::Requester::new(who, &reader);
    let member = dir.schema.attr_id("member");
    let takes = |group: &Entry| {
        dir.policy
            .for_entry(&dir.schema, &requester, group)
            .allows(member, Rights::WRITE)
    };
    // An enabled heir that takes the deleted user's place in the global admin group keeps
    // an admin there.
    let heir_keeps_admin = match (&heir, &dir.global_admins) {
        (Some(h), Some(g)) => {
            let enabled = reader
                .entry_by_dn(h)?
                .is_some_and(|(_, e)| !super::bind::is_disabled(dir, &e));
            enabled
                && reader
                    .entry_by_dn(g)?
                    .is_some_and(|(_, group)| takes(&group))
        }
        _ => false,
    };
    let _admins = if heir_keeps_admin {
        None
    } else {
        crate::mail::guard_last_global_admin(dir, crate::mail::AdminChange::Delete(&ndn))?
    };
    let now = crate::time::generalized_now();
    let touch = super::mark_modified(&dir.schema, who, &now);
    let inherit = |gone: &Entry, heir: &Entry| crate::mail::inherit(&dir.schema, gone, heir);
    let result = dir.store.delete_with_heir(
        &ndn,
        heir.as_ref().map(|h| {
            (
                h,
                &inherit as &roster_storage::Inherit<'_>,
                &takes as &roster_storage::TakesHeir<'_>,
            )
        }),
        &touch,
    );
    match result {
        Ok((_, repaired)) => {
            if dir.naming.current().is_created(&ndn) {
                dir.set_context(&ndn, None);
                tracing::info!(suffix = %ndn, "naming context removed with its entry");
            }
            if !repaired.entries.is_empty() {
                tracing::debug!(dn = %ndn, references = repaired.entries.len(), "references to the deleted entry removed");
            }
            Ok(())
        }
        Err(StoreError::NoSuchObject { dn: missing })
            if heir.as_ref().is_some_and(|h| h.to_string() == missing) =>
        {
            Err(OpError::UnwillingToPerform(format!(
                "the user {missing} who was to inherit no longer exists"
            )))
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
