//! Write operations (add, delete, modify, modify DN, Password Modify): each runs on a write
//! thread (`writers`) with its journal sync deferred, is answered once the sync covers it
//! (`syncer`), and leaves an audit line.

use super::{internal, Session};
use crate::audit;
use crate::ops;
use ldap3_proto::proto::{
    LdapAddRequest, LdapExtendedRequest, LdapExtendedResponse, LdapModifyDNRequest,
    LdapModifyRequest, LdapModifyType, LdapResult,
};

impl Session {
    pub(super) async fn password_modify(&self, req: LdapExtendedRequest) -> LdapExtendedResponse {
        let (dir, who) = (self.dir.clone(), self.who.clone());
        let target = ldap3_proto::proto::LdapPasswordModifyRequest::try_from(&req)
            .ok()
            .and_then(|r| r.user_identity)
            .unwrap_or_else(|| self.who.dn().to_string());
        let slot = self.password_slot(true).await;
        let (mut resp, point) = self
            .dir
            .writers
            .run(move || {
                let r = dir
                    .store
                    .deferring(|| ops::passwd::password_modify(&dir, &who, &req));
                drop(slot);
                r
            })
            .await
            .unwrap_or_else(|e| {
                let res = internal(&e.to_string());
                let resp = LdapExtendedResponse {
                    res,
                    name: None,
                    value: None,
                };
                (resp, None)
            });
        if let Err(failed) = self.dir.synced("passwd", point).await {
            resp.res = failed;
        }
        let changes = audit::changes([("replace", "userPassword", vec![b"".as_slice()])]);
        self.audit("passwd", &target, &changes, &resp.res);
        resp
    }

    pub(super) async fn add(&self, req: LdapAddRequest, write: ops::Write) -> LdapResult {
        let (dir, who) = (self.dir.clone(), self.who.clone());
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
        let (res, point) = self
            .dir
            .writers
            .run(move || {
                let r = dir
                    .store
                    .deferring(|| ops::add::add(&dir, &who, &req, write));
                drop(slot);
                r
            })
            .await
            .unwrap_or_else(|e| (internal(&e.to_string()), None));
        let res = self.synced("add", res, point).await;
        if write == ops::Write::Commit {
            self.audit("add", &dn, &changes, &res);
        }
        res
    }

    pub(super) async fn delete(&self, dn: String, heir: Option<String>) -> LdapResult {
        let (dir, who) = (self.dir.clone(), self.who.clone());
        let target = dn.clone();
        let audited = match &heir {
            Some(h) => audit::changes([("transfer-to", "heir", vec![h.as_bytes()])]),
            None => "[]".to_string(),
        };
        let (res, point) = self
            .dir
            .writers
            .run(move || {
                dir.store
                    .deferring(|| ops::delete::delete(&dir, &who, &dn, heir.as_deref()))
            })
            .await
            .unwrap_or_else(|e| (internal(&e.to_string()), None));
        let res = self.synced("delete", res, point).await;
        self.audit("delete", &target, &audited, &res);
        res
    }

    pub(super) async fn modify(&self, req: LdapModifyRequest, write: ops::Write) -> LdapResult {
        let (dir, who) = (self.dir.clone(), self.who.clone());
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
        let (res, point) = self
            .dir
            .writers
            .run(move || {
                let r = dir
                    .store
                    .deferring(|| ops::modify::modify(&dir, &who, &req, write));
                drop(slot);
                r
            })
            .await
            .unwrap_or_else(|e| (internal(&e.to_string()), None));
        let res = self.synced("modify", res, point).await;
        if write == ops::Write::Commit {
            self.audit("modify", &dn, &changes, &res);
        }
        res
    }

    pub(super) async fn modify_dn(&self, req: LdapModifyDNRequest) -> LdapResult {
        let (dir, who) = (self.dir.clone(), self.who.clone());
        let dn = req.dn.clone();
        let mut change = vec![("newrdn", "rdn", vec![req.newrdn.as_bytes()])];
        if let Some(sup) = &req.new_superior {
            change.push(("newsuperior", "dn", vec![sup.as_bytes()]));
        }
        if req.deleteoldrdn {
            change.push(("deleteoldrdn", "rdn", Vec::new()));
        }
        let changes = audit::changes(change);
        let (res, point) = self
            .dir
            .writers
            .run(move || {
                dir.store
                    .deferring(|| ops::modrdn::modify_dn(&dir, &who, &req))
            })
            .await
            .unwrap_or_else(|e| (internal(&e.to_string()), None));
        let res = self.synced("modrdn", res, point).await;
        self.audit("modrdn", &dn, &changes, &res);
        res
    }

    /// `res` once the commits of its write (up to `point`) are on disk: a write is answered
    /// only when it is durable.
    async fn synced(
        &self,
        operation: &str,
        res: LdapResult,
        point: Option<roster_storage::SyncPoint>,
    ) -> LdapResult {
        match self.dir.synced(operation, point).await {
            Ok(()) => res,
            Err(failed) => failed,
        }
    }
}
