//! Write operations (add, delete, modify, modify DN, Password Modify): each runs on a write
//! thread (`writers`) with its journal sync deferred, is answered once the sync covers it
//! (`syncer`), and leaves an audit line.

use super::{internal, Session};
use crate::audit;
use crate::directory::Directory;
use crate::identity::Identity;
use crate::ops;
use ldap3_proto::proto::{
    LdapAddRequest, LdapExtendedRequest, LdapExtendedResponse, LdapModifyDNRequest,
    LdapModifyRequest, LdapModifyType, LdapResult,
};

impl Session {
    /// Runs `op` on a write thread with its journal sync deferred, holding `slot` (a password
    /// slot) until it returns, and returns its result once the sync covers it; or the result
    /// to answer with if the operation could not run or the journal could not be synced.
    async fn run_write<R: Send + 'static>(
        &self,
        operation: &str,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        op: impl FnOnce(&Directory, &Identity) -> R + Send + 'static,
    ) -> Result<R, LdapResult> {
        let (dir, who) = (self.dir.clone(), self.who.clone());
        let _waiting = self.server_work();
        // A write holding a password slot does not yield to lookups: binds wait for the slot.
        let may_yield = slot.is_none();
        let (out, point) = self
            .dir
            .writers
            .run(may_yield, move || {
                let r = dir.store.deferring(|| op(&dir, &who));
                drop(slot);
                r
            })
            .await
            .map_err(|e| internal(&e.to_string()))?;
        self.dir.synced(operation, point).await?;
        Ok(out)
    }

    pub(super) async fn password_modify(&self, req: LdapExtendedRequest) -> LdapExtendedResponse {
        let target = ldap3_proto::proto::LdapPasswordModifyRequest::try_from(&req)
            .ok()
            .and_then(|r| r.user_identity)
            .unwrap_or_else(|| self.who.dn().to_string());
        let slot = self.password_slot(true).await;
        let resp = self
            .run_write("passwd", slot, move |dir, who| {
                ops::passwd::password_modify(dir, who, &req)
            })
            .await
            .unwrap_or_else(|res| LdapExtendedResponse {
                res,
                name: None,
                value: None,
            });
        let changes = audit::changes([("replace", "userPassword", vec![b"".as_slice()])]);
        self.audit("passwd", &target, &changes, &resp.res);
        resp
    }

    pub(super) async fn add(&self, req: LdapAddRequest, write: ops::Write) -> LdapResult {
        let (dn, changes) = (
            req.dn.clone(),
            audit::changes(req.attributes.iter().map(|a| {
                (
                    "add",
                    a.atype.as_str(),
                    a.vals.iter().map(Vec::as_slice).collect(),
                )
            })),
        );
        let hashes = req.attributes.iter().any(|a| audit::is_password(&a.atype));
        let slot = self
            .password_slot(hashes && write == ops::Write::Commit)
            .await;
        let res = self
            .run_write("add", slot, move |dir, who| {
                ops::add::add(dir, who, &req, write)
            })
            .await
            .unwrap_or_else(|failed| failed);
        if write == ops::Write::Commit {
            self.audit("add", &dn, &changes, &res);
        }
        res
    }

    pub(super) async fn delete(&self, dn: String, heir: Option<String>) -> LdapResult {
        let target = dn.clone();
        let audited = match &heir {
            Some(h) => audit::changes([("transfer-to", "heir", vec![h.as_bytes()])]),
            None => "[]".to_string(),
        };
        let res = self
            .run_write("delete", None, move |dir, who| {
                ops::delete::delete(dir, who, &dn, heir.as_deref())
            })
            .await
            .unwrap_or_else(|failed| failed);
        self.audit("delete", &target, &audited, &res);
        res
    }

    pub(super) async fn modify(&self, req: LdapModifyRequest, write: ops::Write) -> LdapResult {
        let (dn, changes) = (
            req.dn.clone(),
            audit::changes(req.changes.iter().map(|c| {
                let op = match c.operation {
                    LdapModifyType::Add => "add",
                    LdapModifyType::Delete => "delete",
                    LdapModifyType::Replace => "replace",
                    LdapModifyType::Increment => "increment",
                };
                (
                    op,
                    c.modification.atype.as_str(),
                    c.modification.vals.iter().map(Vec::as_slice).collect(),
                )
            })),
        );
        let hashes = req
            .changes
            .iter()
            .any(|c| audit::is_password(&c.modification.atype));
        let slot = self
            .password_slot(hashes && write == ops::Write::Commit)
            .await;
        let res = self
            .run_write("modify", slot, move |dir, who| {
                ops::modify::modify(dir, who, &req, write)
            })
            .await
            .unwrap_or_else(|failed| failed);
        if write == ops::Write::Commit {
            self.audit("modify", &dn, &changes, &res);
        }
        res
    }

    pub(super) async fn modify_dn(&self, req: LdapModifyDNRequest) -> LdapResult {
        let dn = req.dn.clone();
        let mut change = vec![("newrdn", "rdn", vec![req.newrdn.as_bytes()])];
        if let Some(sup) = &req.new_superior {
            change.push(("newsuperior", "dn", vec![sup.as_bytes()]));
        }
        if req.deleteoldrdn {
            change.push(("deleteoldrdn", "rdn", Vec::new()));
        }
        let changes = audit::changes(change);
        let res = self
            .run_write("modrdn", None, move |dir, who| {
                ops::modrdn::modify_dn(dir, who, &req)
            })
            .await
            .unwrap_or_else(|failed| failed);
        self.audit("modrdn", &dn, &changes, &res);
        res
    }
}
