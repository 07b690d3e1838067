//! The provider side of the LDAP Content Synchronization operation (RFC 4533), as OpenLDAP's
//! syncprov overlay answers it, so that a stock slapd consumer (syncrepl) or a rosterd replica
//! can follow this server.
//!
//! A consumer's search carries the Sync Request control. The refresh stage sends what the
//! consumer lacks, decided by its cookie (`rid=NNN,csn=<CSN>`, the CSN of the last commit it
//! has seen; the store's change log, `roster_storage::Change`, is in CSN order):
//! - a cookie the change log covers: the entries changed since (each sent whole, state add)
//!   and the entries that left the content since (a syncIdSet of their UUIDs, refreshDeletes),
//!   the delete phase;
//! - no cookie, or one older than the log's floor: every entry of the content, each sent whole
//!   unless its `entryCSN` says it has not changed since the cookie (then named by UUID in a
//!   syncIdSet, a thousand to a message); the consumer drops what was not named, the present
//!   phase.
//!
//! In refreshAndPersist mode the search then stays open and each commit's changes follow
//! (state add, modify or delete, with a cookie on the last message of each batch).
//! Access control applies to every entry as to a search: a consumer gets what its identity may
//! read. Size and time limits do not apply to a sync search. Attributes the server computes
//! (memberOf, hasSubordinates, entryDN...) are not sent: a consumer keeps stored content, and
//! computes its own (a slapd consumer that should answer memberOf runs the memberof overlay).

use super::attrs::AttrSelection;
use super::search::{to_result, Stopped};
use super::{filter, Identity};
use crate::access::{Requester, Rights};
use crate::directory::Directory;
use crate::error::OpError;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapOp, LdapSearchRequest, LdapSearchResultEntry, LdapSearchScope, SyncStateValue,
};
use roster_schema::{CompiledFilter, Dn, Entry, NormDn, TriState};
use roster_storage::{ChangeKind, EntryId, Reader, Scope};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Entries named in one syncIdSet message.
const ID_SET_BATCH: usize = 1000;

/// A consumer's cookie: the replica id it echoes, and the CSN it has seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub rid: Option<String>,
    pub csn: Option<String>,
}

impl Cookie {
    /// Reads a cookie in OpenLDAP's form (`rid=001,sid=002,csn=<CSN>[;<CSN>...]`); parts it
    /// does not know are ignored, and of several CSNs the latest is taken.
    pub fn parse(bytes: &[u8]) -> Cookie {
        let mut out = Cookie::default();
        let Ok(text) = std::str::from_utf8(bytes) else {
            return out;
        };
        for part in text.split(',') {
            if let Some(rid) = part.strip_prefix("rid=") {
                if !rid.is_empty() && rid.len() <= 3 && rid.bytes().all(|b| b.is_ascii_digit()) {
                    out.rid = Some(rid.to_string());
                }
            } else if let Some(csns) = part.strip_prefix("csn=") {
                out.csn = csns
                    .split(';')
                    .filter(|c| roster_storage::is_csn(c))
                    .max()
                    .map(str::to_string);
            }
        }
        out
    }

    /// The cookie sent to a consumer whose request carried `self`, for the state `csn`.
    pub fn reply(&self, csn: &str) -> Option<Vec<u8>> {
        if csn.is_empty() {
            return None;
        }
        Some(match &self.rid {
            Some(rid) => format!("rid={rid},csn={csn}").into_bytes(),
            None => format!("csn={csn}").into_bytes(),
        })
    }
}

/// A message of a sync search: the operation and its controls.
pub type SyncMsg = (LdapOp, Vec<LdapControl>);

/// How the refresh stage ended.
#[derive(Debug)]
pub struct Refreshed {
    /// The cookie for the end of the refresh (absent for a store never written).
    pub cookie: Option<Vec<u8>>,
    /// The delete phase was used (refreshDeletes TRUE); otherwise the present phase.
    pub deletes: bool,
    /// The first change log record the persist stage sends.
    pub next_seq: u64,
}

/// One consumer's search, compiled once for the refresh and every persist batch.
pub struct SyncSearch {
    who: Identity,
    base: NormDn,
    scope: Scope,
    filter: CompiledFilter,
    sel: AttrSelection,
    types_only: bool,
    cookie: Cookie,
    reload: bool,
}

impl SyncSearch {
    /// Checks the request: its base must be an entry of a naming context (or the root, for
    /// every context with a subtree scope).
    pub fn new(
        dir: &Directory,
        who: &Identity,
        req: &LdapSearchRequest,
        cookie: Option<&[u8]>,
        reload: bool,
    ) -> Result<SyncSearch, OpError> {
        let schema = &dir.schema;
        let base = Dn::parse(&req.base).and_then(|d| d.normalize(schema))?;
        if filter::elements(&req.filter) > super::search::MAX_FILTER_ELEMENTS {
            return Err(OpError::UnwillingToPerform(format!(
                "the filter has more than {} elements",
                super::search::MAX_FILTER_ELEMENTS
            )));
        }
        let scope = match req.scope {
            LdapSearchScope::Base => Scope::Base,
            LdapSearchScope::OneLevel => Scope::One,
            LdapSearchScope::Subtree => Scope::Subtree,
            LdapSearchScope::Children => Scope::Children,
        };
        let all_contexts = base.is_root() && matches!(scope, Scope::Subtree | Scope::Children);
        if !all_contexts && dir.suffix_of(&base).is_none() {
            return Err(OpError::NoSuchObject { matched: None });
        }
        let sel = AttrSelection::parse(schema, &req.attrs);
        Ok(SyncSearch {
            who: who.clone(),
            base,
            scope,
            filter: filter::from_wire(&req.filter).compile(schema),
            sel,
            types_only: req.typesonly,
            cookie: cookie.map(Cookie::parse).unwrap_or_default(),
            reload,
        })
    }

    fn in_scope(&self, ndn: &NormDn) -> bool {
        match self.scope {
            Scope::Base => *ndn == self.base,
            Scope::One => ndn.parent().as_ref() == Some(&self.base),
            Scope::Subtree => ndn.is_within(&self.base),
            Scope::Children => ndn.is_within(&self.base) && *ndn != self.base,
        }
    }

    /// The entry as the consumer sees it, if it is part of its content: in scope, visible to
    /// it and matching its filter.
    fn visible(
        &self,
        dir: &Directory,
        reader: &Reader,
        entry: &Entry,
        store_filter: Option<&CompiledFilter>,
        attributes: bool,
    ) -> Result<Option<LdapSearchResultEntry>, OpError> {
        if entry.ndn.is_root() || !self.in_scope(&entry.ndn) {
            return Ok(None);
        }
        let schema = &dir.schema;
        let requester = Requester::new(&self.who, reader);
        let access = dir.policy.for_entry(schema, &requester, entry);
        // The store's filter has its links resolved (memberOf); a change found in the log is
        // checked against the request's own.
        let filter = store_filter.unwrap_or(&self.filter);
        if !requester.is_root() || dir.policy.hides_from_root() {
            if !access.allows(None, Rights::READ)
                || filter.evaluate_with(schema, entry, &|a| access.allows(Some(a), Rights::SEARCH))
                    != TriState::True
            {
                return Ok(None);
            }
        } else if store_filter.is_none() && filter.evaluate(schema, entry) != TriState::True {
            return Ok(None);
        }
        if !attributes {
            return Ok(Some(LdapSearchResultEntry {
                dn: entry.dn.to_string(),
                attributes: Vec::new(),
            }));
        }
        Ok(Some(to_result(
            dir,
            entry,
            &self.sel,
            self.types_only,
            &|a| access.allows(Some(a), Rights::READ),
            None,
        )))
    }

    /// The refresh stage, from one snapshot: every message goes to `emit`, in order; the
    /// caller sends the message that ends it (SyncDone or a syncInfo) with [`Refreshed`].
    pub fn refresh(
        &self,
        dir: &Directory,
        abandoned: &AtomicBool,
        emit: &mut dyn FnMut(SyncMsg) -> Result<(), Stopped>,
    ) -> Result<Result<Refreshed, OpError>, Stopped> {
        let reader = dir.store.reader();
        let state = match reader.log_state() {
            Ok(s) => s,
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        let since = match (&self.cookie.csn, self.reload) {
            (Some(csn), false) => match reader.seq_after(csn) {
                Ok(s) => s,
                Err(e) => return Ok(Err(OpError::Store(e))),
            },
            _ => None,
        };
        let outcome = match since {
            Some(from) => self.delete_phase(dir, &reader, from, abandoned, emit)?,
            None => self.present_phase(dir, &reader, abandoned, emit)?,
        };
        Ok(outcome.map(|()| Refreshed {
            cookie: self.cookie.reply(&state.context_csn),
            deletes: since.is_some(),
            next_seq: state.last_seq + 1,
        }))
    }

    /// Every entry of the content: whole when it changed after the cookie's CSN (or there is
    /// no usable cookie), present otherwise.
    fn present_phase(
        &self,
        dir: &Directory,
        reader: &Reader,
        abandoned: &AtomicBool,
        emit: &mut dyn FnMut(SyncMsg) -> Result<(), Stopped>,
    ) -> Result<Result<(), OpError>, Stopped> {
        // A cookie later than anything here comes from another server's history: its CSNs
        // say nothing about these entries.
        let context = match reader.log_state() {
            Ok(s) => s.context_csn,
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        let unchanged_since = match &self.cookie.csn {
            Some(c) if !self.reload && *c <= context => Some(c.as_str()),
            _ => None,
        };
        let entry_csn = dir.schema.attr_id("entryCSN");
        let mut present = Vec::new();
        let mut iter = match reader.search(&self.base, self.scope, &self.filter) {
            Ok(it) => it,
            Err(roster_storage::StoreError::NoSuchObject { .. }) => {
                return Ok(Err(OpError::NoSuchObject { matched: None }))
            }
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        while let Some(item) = iter.next() {
            if abandoned.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let (_, entry) = match item {
                Ok(x) => x,
                Err(e) => return Ok(Err(OpError::Store(e))),
            };
            let Some(uuid) = uuid_of(dir, &entry) else {
                tracing::warn!(dn = %entry.dn, "entry without an entryUUID is not replicated");
                continue;
            };
            let unchanged = unchanged_since.is_some_and(|c| {
                entry_csn
                    .and_then(|a| entry.values_of(a).next())
                    .is_some_and(|v| v.as_slice() <= c.as_bytes())
            });
            let filter = Some(iter.resolved_filter());
            let result = match self.visible(dir, reader, &entry, filter, !unchanged) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return Ok(Err(e)),
            };
            if unchanged {
                // Unchanged entries are named by UUID only, a thousand to a message.
                present.push(uuid);
                if present.len() >= ID_SET_BATCH {
                    emit(id_set(std::mem::take(&mut present), false))?;
                }
            } else {
                emit(state_msg(result, SyncStateValue::Add, uuid, None))?;
            }
        }
        if !present.is_empty() {
            emit(id_set(present, false))?;
        }
        Ok(Ok(()))
    }

    /// The entries changed since the cookie, whole, and the UUIDs of those that left the
    /// content.
    fn delete_phase(
        &self,
        dir: &Directory,
        reader: &Reader,
        from: u64,
        abandoned: &AtomicBool,
        emit: &mut dyn FnMut(SyncMsg) -> Result<(), Stopped>,
    ) -> Result<Result<(), OpError>, Stopped> {
        let changes = match reader.changes_from(from) {
            Ok(Some(c)) => c,
            // Trimmed since `seq_after` looked: not possible within one snapshot.
            Ok(None) => return Ok(Err(OpError::Unavailable("the change log moved on".into()))),
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        let mut gone = Vec::new();
        for (id, change) in latest_per_entry(&changes) {
            if abandoned.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            match self.current(dir, reader, id) {
                Ok(Some((entry, uuid))) => emit(state_msg(entry, SyncStateValue::Add, uuid, None))?,
                Ok(None) => {
                    if self.was_in_scope(dir, &change.first_dn) {
                        if let Ok(u) = uuid::Uuid::parse_str(&change.uuid) {
                            gone.push(u);
                        }
                    }
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        for chunk in gone.chunks(ID_SET_BATCH) {
            emit(id_set(chunk.to_vec(), true))?;
        }
        Ok(Ok(()))
    }

    /// The result entry and UUID of entry `id` if it is part of the consumer's content now.
    fn current(
        &self,
        dir: &Directory,
        reader: &Reader,
        id: EntryId,
    ) -> Result<Option<(LdapSearchResultEntry, uuid::Uuid)>, OpError> {
        let Some(entry) = reader.get(id)? else {
            return Ok(None);
        };
        let Some(uuid) = uuid_of(dir, &entry) else {
            return Ok(None);
        };
        Ok(self
            .visible(dir, reader, &entry, None, true)?
            .map(|r| (r, uuid)))
    }

    /// True if an entry named `dn` (as written, before a change) was in the scope: it may be
    /// part of the consumer's content, which must then lose it.
    fn was_in_scope(&self, dir: &Directory, dn: &str) -> bool {
        Dn::parse(dn)
            .and_then(|d| d.normalize(&dir.schema))
            .is_ok_and(|n| self.in_scope(&n))
    }

    /// One persist batch: the changes from `next_seq` on, from a new snapshot. Advances
    /// `next_seq`. `Err(OpError::SyncRefreshRequired)` when the log no longer holds them.
    pub fn changes(
        &self,
        dir: &Directory,
        next_seq: &mut u64,
        emit: &mut dyn FnMut(SyncMsg) -> Result<(), Stopped>,
    ) -> Result<Result<(), OpError>, Stopped> {
        let reader = dir.store.reader();
        let state = match reader.log_state() {
            Ok(s) => s,
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        if *next_seq > state.last_seq {
            return Ok(Ok(()));
        }
        let changes = match reader.changes_from(*next_seq) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Err(OpError::SyncRefreshRequired)),
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        *next_seq = state.last_seq + 1;
        let mut pending: Option<SyncMsg> = None;
        for (id, change) in latest_per_entry(&changes) {
            let msg = match self.current(dir, &reader, id) {
                Ok(Some((entry, uuid))) => {
                    let state = if change.first_kind == ChangeKind::Add {
                        SyncStateValue::Add
                    } else {
                        SyncStateValue::Modify
                    };
                    state_msg(entry, state, uuid, None)
                }
                Ok(None) => {
                    let Ok(uuid) = uuid::Uuid::parse_str(&change.uuid) else {
                        continue;
                    };
                    if !self.was_in_scope(dir, &change.first_dn) {
                        continue;
                    }
                    let gone = LdapSearchResultEntry {
                        dn: change.first_dn.clone(),
                        attributes: Vec::new(),
                    };
                    state_msg(gone, SyncStateValue::Delete, uuid, None)
                }
                Err(e) => return Ok(Err(e)),
            };
            if let Some(m) = pending.replace(msg) {
                emit(m)?;
            }
        }
        // The batch's last message carries the cookie of the state it brings the consumer to.
        if let Some((op, mut ctrls)) = pending {
            if let Some(LdapControl::SyncState { cookie, .. }) = ctrls.first_mut() {
                *cookie = self.cookie.reply(&state.context_csn);
            }
            emit((op, ctrls))?;
        }
        Ok(Ok(()))
    }
}

/// What a run of change log records did to one entry.
struct EntryChanges {
    /// The kind of its first record in the run (an add means the consumer never had it).
    first_kind: ChangeKind,
    /// Its DN before the run.
    first_dn: String,
    uuid: String,
}

/// The entries `changes` touched, each once, in the order of their last change.
fn latest_per_entry(changes: &[roster_storage::Change]) -> Vec<(EntryId, EntryChanges)> {
    let mut last: HashMap<EntryId, usize> = HashMap::new();
    let mut first: HashMap<EntryId, usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        last.insert(c.id, i);
        first.entry(c.id).or_insert(i);
    }
    let mut order: Vec<(usize, EntryId)> = last.into_iter().map(|(id, i)| (i, id)).collect();
    order.sort_unstable();
    order
        .into_iter()
        .filter_map(|(i, id)| {
            let f = changes.get(*first.get(&id)?)?;
            let l = changes.get(i)?;
            let uuid = if l.uuid.is_empty() { &f.uuid } else { &l.uuid };
            Some((
                id,
                EntryChanges {
                    first_kind: f.kind,
                    first_dn: f.dn.clone(),
                    uuid: uuid.clone(),
                },
            ))
        })
        .collect()
}

/// A syncIdSet message: entries present (the present phase) or gone (the delete phase).
fn id_set(syncuuids: Vec<uuid::Uuid>, refresh_deletes: bool) -> SyncMsg {
    (
        LdapOp::IntermediateResponse(
            ldap3_proto::proto::LdapIntermediateResponse::SyncInfoIdSet {
                cookie: None,
                refresh_deletes,
                syncuuids,
            },
        ),
        Vec::new(),
    )
}

fn uuid_of(dir: &Directory, entry: &Entry) -> Option<uuid::Uuid> {
    let attr = dir.schema.attr_id("entryUUID")?;
    let v = entry.values_of(attr).next()?;
    uuid::Uuid::try_parse_ascii(v).ok()
}

fn state_msg(
    entry: LdapSearchResultEntry,
    state: SyncStateValue,
    entry_uuid: uuid::Uuid,
    cookie: Option<Vec<u8>>,
) -> SyncMsg {
    (
        LdapOp::SearchResultEntry(entry),
        vec![LdapControl::SyncState {
            state,
            entry_uuid,
            cookie,
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::Cookie;

    #[test]
    fn cookies_in_openldap_form() {
        let c = Cookie::parse(b"rid=001,sid=002,csn=20240101120000.000001Z#000000#002#000000");
        assert_eq!(c.rid.as_deref(), Some("001"));
        assert_eq!(
            c.csn.as_deref(),
            Some("20240101120000.000001Z#000000#002#000000")
        );
        let two = Cookie::parse(
            b"rid=7,csn=20240101120000.000001Z#000000#001#000000;20250101120000.000001Z#000000#002#000000",
        );
        assert_eq!(
            two.csn.as_deref(),
            Some("20250101120000.000001Z#000000#002#000000")
        );
        assert_eq!(
            Cookie::parse(b"rid=001"),
            Cookie {
                rid: Some("001".into()),
                csn: None
            }
        );
        assert_eq!(Cookie::parse(b"csn=junk,rid=abcd"), Cookie::default());
        assert_eq!(Cookie::parse(&[0xff, 0xfe]), Cookie::default());
        assert_eq!(
            c.reply("20260101000000.000000Z#000000#000#000000"),
            Some(b"rid=001,csn=20260101000000.000000Z#000000#000#000000".to_vec())
        );
        assert_eq!(Cookie::default().reply(""), None);
    }
}
