//! Applying a provider's sync messages to the store (on a blocking thread): entries by their
//! entryUUID (add, rename with the subtree, replace, delete), entries waiting for their
//! parent, the present phase's deletes, and the cookie stored after the change that carried it.

use super::*;

/// An entry waiting for its parent.
pub(super) struct Pending {
    uuid: [u8; 16],
    entry: Entry,
}

/// Applies the provider's messages to the store (runs on blocking threads).
pub(super) struct Applier {
    dir: Arc<Directory>,
    replica: Arc<Replica>,
    /// The UUIDs reported present during the refresh's present phase.
    present: Option<HashSet<[u8; 16]>>,
    /// Entries waiting for their parent, by the parent's normalized DN.
    pending: HashMap<NormDn, Vec<Pending>>,
    pub(super) pending_count: usize,
    /// The parent each pending entry waits for, by its UUID.
    waiting: HashMap<[u8; 16], NormDn>,
    /// Deletes of entries that had children during the refresh, tried again at its end.
    deferred_deletes: Vec<[u8; 16]>,
    /// A cookie not stored yet because entries before it are still pending.
    unsaved_cookie: Option<Vec<u8>>,
    /// The refresh is over.
    pub(super) persisting: bool,
    /// The search went without a cookie: the refresh sends the whole content, so whatever
    /// it does not send is gone, however the provider ends it.
    initial: bool,
    /// Attribute types the local schema lacks, reported once.
    unknown_attrs: HashSet<String>,
    entry_uuid: Option<roster_schema::AttrId>,
    /// The store for the changes: buffered, so that a refresh does not wait for a sync per
    /// entry; the cookie, stored through the store's own durability after them, makes them
    /// durable with it (the journal is synced in commit order).
    writes: Store,
}

/// A normalized DN's depth, for deleting children before parents.
fn depth(ndn: &NormDn) -> usize {
    ndn.rdns.len()
}

fn uuid_string(uuid: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*uuid).hyphenated().to_string()
}

impl Applier {
    pub(super) fn new(dir: Arc<Directory>, replica: Arc<Replica>, initial: bool) -> Applier {
        let entry_uuid = dir.schema.attr_id("entryUUID");
        let writes = dir.store.buffered();
        Applier {
            writes,
            dir,
            replica,
            present: Some(HashSet::new()),
            initial,
            pending: HashMap::new(),
            pending_count: 0,
            waiting: HashMap::new(),
            deferred_deletes: Vec::new(),
            unsaved_cookie: None,
            persisting: false,
            unknown_attrs: HashSet::new(),
            entry_uuid,
        }
    }

    fn store(&self) -> &Store {
        &self.dir.store
    }

    fn name(&self) -> &str {
        &self.replica.config.name
    }

    /// Applies one response of the sync search.
    pub(super) fn handle(&mut self, response: Response) -> Result<(), SessionError> {
        match response {
            Response::Entry { dn, attrs, state } => {
                let Some(state) = state else {
                    tracing::warn!(replica = %self.name(), dn = %dn, "entry without a Sync State control ignored");
                    return Ok(());
                };
                match state.state {
                    SyncState::Present => self.note_present(state.uuid)?,
                    SyncState::Add | SyncState::Modify => {
                        self.note_present(state.uuid)?;
                        self.upsert(&dn, attrs, state.uuid)?;
                    }
                    SyncState::Delete => self.delete_uuid(state.uuid)?,
                }
                if let Some(c) = state.cookie {
                    self.cookie(c)?;
                }
            }
            Response::Intermediate(Some(info)) => self.sync_info(info)?,
            Response::Intermediate(None) | Response::Reference => {}
            Response::Done { result, sync_done } => {
                if result.code == 4096 {
                    return Err(SessionError::RefreshRequired);
                }
                if result.code != 0 {
                    return Err(SessionError::Refused(format!(
                        "the sync search ended with result {} {}",
                        result.code, result.message
                    )));
                }
                let done = sync_done.unwrap_or_default();
                if !self.persisting {
                    if !done.refresh_deletes || self.initial {
                        self.end_present_phase()?;
                    }
                    self.end_refresh();
                }
                if let Some(c) = done.cookie {
                    self.cookie(c)?;
                }
            }
            Response::BindResponse(_) | Response::Extended { .. } | Response::Other(_) => {
                return Err(SessionError::Refused(
                    "unexpected message during the sync search".into(),
                ))
            }
        }
        Ok(())
    }

    fn sync_info(&mut self, info: SyncInfo) -> Result<(), SessionError> {
        match info {
            SyncInfo::NewCookie(c) => self.cookie(c)?,
            SyncInfo::RefreshDelete { cookie, done } => {
                // The delete phase ends: nothing to do for entries not mentioned, unless this
                // was the whole content.
                if self.initial {
                    self.end_present_phase()?;
                }
                self.present = None;
                if done {
                    self.end_refresh();
                }
                if let Some(c) = cookie {
                    self.cookie(c)?;
                }
            }
            SyncInfo::RefreshPresent { cookie, done } => {
                self.end_present_phase()?;
                if done {
                    self.end_refresh();
                }
                if let Some(c) = cookie {
                    self.cookie(c)?;
                }
            }
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            } => {
                if refresh_deletes {
                    for u in uuids {
                        self.delete_uuid(u)?;
                    }
                } else {
                    for u in uuids {
                        self.note_present(u)?;
                    }
                }
                if let Some(c) = cookie {
                    self.cookie(c)?;
                }
            }
        }
        Ok(())
    }

    fn note_present(&mut self, uuid: [u8; 16]) -> Result<(), SessionError> {
        if let Some(p) = &mut self.present {
            if p.len() >= MAX_PRESENT && !p.contains(&uuid) {
                return Err(SessionError::Refused(format!(
                    "the provider reported more than {MAX_PRESENT} entries present"
                )));
            }
            p.insert(uuid);
        }
        Ok(())
    }

    /// Stores `cookie` unless entries before it still wait for their parent.
    fn cookie(&mut self, cookie: Vec<u8>) -> Result<(), SessionError> {
        if self.pending_count > 0 {
            self.unsaved_cookie = Some(cookie);
            return Ok(());
        }
        self.unsaved_cookie = None;
        let mut value = cookie_owner(&self.replica.config).into_bytes();
        value.extend_from_slice(&cookie);
        self.store()
            .put_state(&cookie_key(&self.replica.config.name), &value)?;
        let csn = cookie_csn(&cookie);
        self.replica.update(|s| s.cookie_csn = csn);
        Ok(())
    }

    fn applied(&self) {
        self.replica.update(|s| {
            s.changes_applied = s.changes_applied.saturating_add(1);
            s.last_change = Some(SystemTime::now());
        });
    }

    /// The local entry whose `entryUUID` is `uuid`.
    fn find(&self, uuid: &[u8; 16]) -> Result<Option<Entry>, SessionError> {
        let filter = roster_schema::Filter::Equality {
            attr: "entryUUID".into(),
            value: uuid_string(uuid).into_bytes(),
        }
        .compile(&self.dir.schema);
        let reader = self.store().reader();
        // Before the naming context's entry arrives there is nothing to search.
        if reader.lookup(&self.replica.base)?.is_none() {
            return Ok(None);
        }
        let mut found =
            reader.search(&self.replica.base, roster_storage::Scope::Subtree, &filter)?;
        match found.next() {
            Some(r) => Ok(Some(r?.1)),
            None => Ok(None),
        }
    }

    /// The entry as the store keeps it: the attributes the schema knows, without the
    /// computed ones, with `entryUUID` set to the control's.
    fn build(
        &mut self,
        dn: &str,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
        uuid: &[u8; 16],
    ) -> Result<Entry, String> {
        let schema = self.dir.schema.clone();
        let mut parts = Vec::with_capacity(attrs.len());
        for (name, values) in attrs {
            if values.is_empty() {
                continue;
            }
            let Some(desc) = AttrDesc::parse(&schema, &name) else {
                if self.unknown_attrs.len() < 1000
                    && self.unknown_attrs.insert(name.to_ascii_lowercase())
                {
                    tracing::warn!(replica = %self.name(), attribute = %name, "attribute type unknown to the local schema: not copied (add the provider's schema to directory.schema_files)");
                }
                continue;
            };
            let Some(t) = schema.attr(desc.id) else {
                continue;
            };
            let kept_operational = KEPT_OPERATIONAL
                .iter()
                .any(|k| schema.attr_id(k) == Some(desc.id));
            let computed = COMPUTED.iter().any(|k| schema.attr_id(k) == Some(desc.id));
            let user = matches!(t.usage, roster_schema::Usage::UserApplications);
            if computed || !(user || kept_operational) {
                continue;
            }
            parts.push((name, values));
        }
        let mut entry = Entry::from_parts(&schema, dn, parts).map_err(|e| e.to_string())?;
        if let Some(id) = self.entry_uuid {
            entry.attrs.retain(|a| a.desc.id != id);
            entry.attrs.push(Attribute {
                desc: AttrDesc::plain(id),
                values: vec![uuid_string(uuid).into_bytes()],
            });
        }
        Ok(entry)
    }

    /// An add or modify: add, rename and replace as needed.
    fn upsert(
        &mut self,
        dn: &str,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
        uuid: [u8; 16],
    ) -> Result<(), SessionError> {
        let entry = match self.build(dn, attrs, &uuid) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %dn, error = %e, "entry from the provider not copied");
                return Ok(());
            }
        };
        if !entry.ndn.is_within(&self.replica.base) {
            tracing::error!(replica = %self.name(), dn = %dn, "entry outside the replicated naming context ignored");
            return Ok(());
        }
        // A newer version replaces one still waiting.
        self.forget_pending(&uuid);
        self.place(Pending { uuid, entry })?;
        Ok(())
    }

    /// Drops a pending entry with `uuid`, if any.
    fn forget_pending(&mut self, uuid: &[u8; 16]) {
        let Some(parent) = self.waiting.remove(uuid) else {
            return;
        };
        if let Some(list) = self.pending.get_mut(&parent) {
            let before = list.len();
            list.retain(|p| &p.uuid != uuid);
            let removed = before - list.len();
            self.pending_count = self.pending_count.saturating_sub(removed);
            if list.is_empty() {
                self.pending.remove(&parent);
            }
        }
    }

    /// Writes `p`, or holds it back until its parent is there; then writes the entries that
    /// waited for it.
    fn place(&mut self, p: Pending) -> Result<(), SessionError> {
        let mut queue = vec![p];
        while let Some(p) = queue.pop() {
            let ndn = p.entry.ndn.clone();
            if self.write(p)? {
                if let Some(children) = self.pending.remove(&ndn) {
                    self.pending_count = self.pending_count.saturating_sub(children.len());
                    for c in &children {
                        self.waiting.remove(&c.uuid);
                    }
                    queue.extend(children);
                }
            }
        }
        if self.pending_count == 0 {
            if let Some(c) = self.unsaved_cookie.take() {
                self.cookie(c)?;
            }
        }
        Ok(())
    }

    /// Writes one entry; false if it waits for its parent.
    fn write(&mut self, p: Pending) -> Result<bool, SessionError> {
        let Pending { uuid, entry } = p;
        let store = self.writes.clone();
        let ndn = entry.ndn.clone();
        let is_base = ndn == self.replica.base;
        let parent = ndn.parent().unwrap_or_default();
        let reader = store.reader();
        let parent_there = is_base || reader.lookup(&parent)?.is_some();
        if !parent_there {
            if self.persisting {
                // Changes after the refresh come in commit order: a parent that is not here
                // now will not come (it does not match the filter, or it failed to apply).
                tracing::error!(replica = %self.name(), dn = %entry.dn, "the parent of this entry is not in the replica: not copied (does the replica's filter leave out its parent?)");
                return Ok(false);
            }
            if self.pending_count >= MAX_PENDING {
                tracing::error!(replica = %self.name(), dn = %entry.dn, "too many entries wait for their parent: entry dropped");
                return Ok(false);
            }
            tracing::debug!(replica = %self.name(), dn = %entry.dn, "entry waits for its parent");
            self.waiting.insert(uuid, parent.clone());
            self.pending
                .entry(parent)
                .or_default()
                .push(Pending { uuid, entry });
            self.pending_count += 1;
            return Ok(false);
        }
        let local = self.find(&uuid)?;
        let result = match local {
            Some(old) if old.ndn == ndn => store.replace(&ndn, entry),
            Some(old) => {
                // Moved or renamed on the provider: the subtree moves with it.
                if let Some((_, other)) = reader.entry_by_dn(&ndn)? {
                    self.evict(&other)?;
                }
                let new_parent = (old.ndn.parent() != ndn.parent()).then_some(parent);
                store
                    .rename(&old.ndn, entry, new_parent.as_ref(), &|_| {})
                    .map(|_| ())
            }
            None => match reader.entry_by_dn(&ndn)? {
                // Another entry holds the DN (deleted on the provider, re-added with a new
                // UUID, and the delete not seen yet; or a replay): it becomes this one.
                Some(_) => store.replace(&ndn, entry),
                None if is_base => store.add_root(entry).map(|_| ()),
                None => store.add(entry).map(|_| ()),
            },
        };
        match result {
            Ok(()) => {
                self.applied();
                Ok(true)
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %ndn, error = %e, "change from the provider not applied");
                Ok(true)
            }
        }
    }

    /// Removes `other`, which holds a DN the provider gives to another entry, when it is a
    /// leaf; the provider will send it again under its own DN if it still exists.
    fn evict(&mut self, other: &Entry) -> Result<(), SessionError> {
        match self.writes.delete(&other.ndn, &|_| {}) {
            Ok(_) => {
                self.applied();
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %other.ndn, error = %e, "an entry holds the DN another entry moved to and cannot be removed");
                Ok(())
            }
        }
    }

    /// A delete by UUID: nothing when the entry is not here.
    fn delete_uuid(&mut self, uuid: [u8; 16]) -> Result<(), SessionError> {
        self.forget_pending(&uuid);
        let Some(entry) = self.find(&uuid)? else {
            return Ok(());
        };
        match self.writes.delete(&entry.ndn, &|_| {}) {
            Ok(_) => {
                self.applied();
                Ok(())
            }
            Err(StoreError::NotAllowedOnNonLeaf { .. }) if !self.persisting => {
                // Its children may still be deleted later in the refresh.
                if self.deferred_deletes.len() < MAX_PENDING {
                    self.deferred_deletes.push(uuid);
                } else {
                    tracing::error!(replica = %self.name(), dn = %entry.ndn, "too many deletes wait for their entries' children: not applied");
                }
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::error!(replica = %self.name(), dn = %entry.ndn, error = %e, "delete from the provider not applied");
                Ok(())
            }
        }
    }

    /// The end of the present phase: every local entry the provider did not report is gone
    /// there, and is deleted here, children first.
    fn end_present_phase(&mut self) -> Result<(), SessionError> {
        let Some(present) = self.present.take() else {
            return Ok(());
        };
        let everything = roster_schema::Filter::Present {
            attr: "objectClass".into(),
        }
        .compile(&self.dir.schema);
        let mut gone: Vec<NormDn> = Vec::new();
        {
            let reader = self.store().reader();
            let searched = if reader.lookup(&self.replica.base)?.is_some() {
                Some(reader.search(
                    &self.replica.base,
                    roster_storage::Scope::Subtree,
                    &everything,
                )?)
            } else {
                None
            };
            for found in searched.into_iter().flatten() {
                let (_, e) = found?;
                let reported = self.entry_uuid.is_some_and(|id| {
                    e.values_of(id).any(|v| {
                        uuid::Uuid::try_parse_ascii(v).is_ok_and(|u| present.contains(u.as_bytes()))
                    })
                });
                if !reported {
                    gone.push(e.ndn);
                }
            }
        }
        gone.sort_by_key(|n| std::cmp::Reverse(depth(n)));
        if !gone.is_empty() {
            tracing::info!(replica = %self.name(), entries = gone.len(), "deleting entries the provider no longer has");
        }
        for ndn in gone {
            match self.writes.delete(&ndn, &|_| {}) {
                Ok(_) => self.applied(),
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(replica = %self.name(), dn = %ndn, error = %e, "entry the provider no longer has not deleted")
                }
            }
        }
        Ok(())
    }

    /// The end of the refresh: deferred deletes, and entries still without a parent.
    fn end_refresh(&mut self) {
        self.persisting = true;
        self.present = None;
        let mut deferred = std::mem::take(&mut self.deferred_deletes);
        // Children before parents: deepest first.
        let mut with_depth: Vec<([u8; 16], usize)> = Vec::new();
        for u in deferred.drain(..) {
            if let Ok(Some(e)) = self.find(&u) {
                with_depth.push((u, depth(&e.ndn)));
            }
        }
        with_depth.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        for (u, _) in with_depth {
            if let Err(e) = self.delete_uuid(u) {
                tracing::error!(replica = %self.name(), error = %e, "delete from the provider not applied");
            }
        }
        if self.pending_count > 0 {
            let name = self.replica.config.name.clone();
            for (parent, list) in std::mem::take(&mut self.pending) {
                for p in list {
                    tracing::error!(replica = %name, dn = %p.entry.dn, parent = %parent, "the refresh ended and this entry's parent never arrived: not copied");
                }
            }
            self.pending_count = 0;
            self.waiting.clear();
            if let Some(c) = self.unsaved_cookie.take() {
                if let Err(e) = self.cookie(c) {
                    tracing::error!(replica = %self.name(), error = %e, "cookie not stored");
                }
            }
        }
    }
}
