//! The search operation (RFC 4511 section 4.5): base resolution, scope, filter, attribute
//! selection, size and time limits, and simple paged results (RFC 2696).

use super::attrs::{self, AttrSelection};
use super::{filter, Identity};
use crate::access::{Requester, Rights};
use crate::codec::{EncodedEntry, EntryAttr};
use crate::directory::Directory;
use crate::error::{ldap_result, success, OpError};
use ldap3_proto::proto::{
    LdapFilter, LdapPartialAttribute, LdapResult, LdapSearchRequest, LdapSearchResultEntry,
    LdapSearchScope,
};
use roster_schema::{AttrId, Dn, DnError, Entry, NormDn, Schema, TriState};
use roster_storage::{EntryId, Scope};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A paged-results request (RFC 2696) attached to a search.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: usize,
    pub cookie: Vec<u8>,
}

/// Where a paged search stopped, kept per connection between pages.
#[derive(Debug, Clone)]
struct PageState {
    /// The request the cookie belongs to; a different request with this cookie is refused.
    fingerprint: [u8; 32],
    /// The first entry id of the next page.
    resume_from: EntryId,
    /// Entries returned by the earlier pages, for the size limit of the whole search.
    returned: usize,
}

/// What one connection's searches keep between requests: the paged searches, keyed by
/// cookie, and the last base DN with its normalized form (clients such as mail servers search
/// under the same base every time; normalizing it cost more than a tenth of a search).
#[derive(Debug, Default)]
pub struct PagedSearches {
    inner: Mutex<OpenPages>,
    last_base: Mutex<Option<(String, Arc<NormDn>)>>,
}

#[derive(Debug, Default)]
struct OpenPages {
    /// The last cookie handed out; cookies are this counter's bytes.
    last_cookie: u64,
    by_cookie: HashMap<Vec<u8>, PageState>,
}

/// Most paged searches one connection may hold open; the oldest is dropped beyond it.
const MAX_OPEN_PAGED_SEARCHES: usize = 64;

impl PagedSearches {
    /// The normalized form of a search's base DN, from the last search's when it is the same
    /// string, else from the server's recent bases (the schema that normalizes it does not
    /// change while the server runs).
    fn normalized_base(
        &self,
        shared: &crate::recent::RecentNames<Arc<NormDn>>,
        schema: &Schema,
        raw: &str,
    ) -> Result<Arc<NormDn>, DnError> {
        if let Ok(last) = self.last_base.lock() {
            if let Some((s, n)) = &*last {
                if s == raw {
                    return Ok(n.clone());
                }
            }
        }
        let n = match shared.get(raw) {
            Some(n) => n,
            None => {
                let n = Arc::new(Dn::parse(raw).and_then(|d| d.normalize(schema))?);
                shared.put(raw, n.clone());
                n
            }
        };
        if let Ok(mut last) = self.last_base.lock() {
            *last = Some((raw.to_string(), n.clone()));
        }
        Ok(n)
    }

    fn take(&self, cookie: &[u8]) -> Option<PageState> {
        self.inner
            .lock()
            .ok()
            .and_then(|mut open| open.by_cookie.remove(cookie))
    }

    fn put(&self, state: PageState) -> Vec<u8> {
        let Ok(mut open) = self.inner.lock() else {
            return Vec::new();
        };
        open.last_cookie += 1;
        let cookie = open.last_cookie.to_be_bytes().to_vec();
        if open.by_cookie.len() >= MAX_OPEN_PAGED_SEARCHES {
            // Big-endian counters order like numbers: the smallest is the oldest.
            if let Some(oldest) = open.by_cookie.keys().min().cloned() {
                open.by_cookie.remove(&oldest);
            }
        }
        open.by_cookie.insert(cookie.clone(), state);
        cookie
    }
}

/// What a finished search tells the client besides its entries.
#[derive(Debug)]
pub struct SearchDone {
    pub result: LdapResult,
    /// The cookie of the paged-results response control, when the request was paged.
    pub page_cookie: Option<Vec<u8>>,
}

/// The search stopped without a result to send: the client abandoned it or went away, or a
/// caller that runs small searches in place found this one too large.
#[derive(Debug)]
pub struct Stopped;

/// Largest filter of a search run in place: evaluating a huge filter is work of its own.
const SMALL_FILTER_ELEMENTS: usize = 32;

/// Largest filter accepted. Real filters have a few dozen elements; one of millions (which fits
/// in a few megabytes) would cost seconds and gigabytes to compile.
pub const MAX_FILTER_ELEMENTS: usize = 4096;

/// True for searches that touch a handful of entries: base-scope reads and searches narrowed
/// by an equality index (`(mail=x)`, `(&(objectClass=person)(uid=x))`). The session runs
/// those in place instead of on a blocking thread: handing a small search to another thread
/// costs more than the search.
pub fn is_small(dir: &Directory, req: &LdapSearchRequest) -> bool {
    if filter::elements(&req.filter) > SMALL_FILTER_ELEMENTS {
        return false;
    }
    if req.scope == LdapSearchScope::Base {
        return true;
    }
    let selective = |f: &LdapFilter| match f {
        LdapFilter::Equality(attr, _) => {
            let ty = attr.split(';').next().unwrap_or(attr);
            dir.schema
                .attr_id(ty)
                .is_some_and(|id| dir.selective_indexes.contains(&id))
        }
        _ => false,
    };
    match &req.filter {
        LdapFilter::And(parts) => parts.iter().any(selective),
        f => selective(f),
    }
}

/// How many candidates a search run in place (on the connection's task) may examine before it
/// gives up and is run again on a blocking thread: an indexed equality that many entries match
/// (`(cn=common)`) must not hold a worker thread that other connections need.
pub const IN_PLACE_CANDIDATES: usize = 64;

/// Runs one search, handing each result entry to `emit`. `in_place`: the caller runs it on a
/// connection's task and wants `Err(Stopped)` back, nothing sent, once more than
/// [`IN_PLACE_CANDIDATES`] candidates were examined.
#[allow(clippy::too_many_arguments)]
pub fn search(
    dir: &Directory,
    who: &Identity,
    req: &LdapSearchRequest,
    page: Option<PageRequest>,
    paged: &PagedSearches,
    abandoned: &Arc<AtomicBool>,
    in_place: bool,
    emit: &mut dyn FnMut(ResultEntry) -> Result<(), Stopped>,
) -> Result<SearchDone, Stopped> {
    let paged_request = page.is_some();
    let mut cookie_out = None;
    let outcome = run(
        dir,
        who,
        req,
        page,
        paged,
        abandoned,
        in_place,
        emit,
        &mut cookie_out,
    )?;
    let result = match outcome {
        Ok(()) => success(),
        Err(e) => {
            if let OpError::Store(inner) = &e {
                dir.store_failed("search", inner);
            }
            ldap_result(&e)
        }
    };
    Ok(SearchDone {
        result,
        page_cookie: paged_request.then(|| cookie_out.unwrap_or_default()),
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    dir: &Directory,
    who: &Identity,
    req: &LdapSearchRequest,
    page: Option<PageRequest>,
    paged: &PagedSearches,
    abandoned: &Arc<AtomicBool>,
    in_place: bool,
    emit: &mut dyn FnMut(ResultEntry) -> Result<(), Stopped>,
    cookie_out: &mut Option<Vec<u8>>,
) -> Result<Result<(), OpError>, Stopped> {
    let schema = &dir.schema;
    let base = match paged.normalized_base(&dir.base_dns, schema, &req.base) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e.into())),
    };
    if filter::elements(&req.filter) > MAX_FILTER_ELEMENTS {
        return Ok(Err(OpError::UnwillingToPerform(format!(
            "the filter has more than {MAX_FILTER_ELEMENTS} elements"
        ))));
    }
    let filter = filter::from_wire(&req.filter).compile(schema);
    let sel = AttrSelection::parse(schema, &req.attrs);
    let started = Instant::now();
    let own = if who.is_root() {
        (None, None)
    } else {
        identity_limits(dir, who)
    };
    let deadline = time_limit(dir, who, req, own.1).map(|d| started + d);
    let limit = size_limit(dir, who, req, own.0);

    // A subtree search based at the root DSE searches every naming context (slapd answers
    // noSuchObject): one mail server lookup table then serves every domain.
    let all_contexts = base.is_root()
        && matches!(
            req.scope,
            LdapSearchScope::Subtree | LdapSearchScope::Children
        );
    // The two entries that are not stored answer base-scope searches only.
    if (base.is_root() && !all_contexts) || *base == dir.subschema_ndn {
        if req.scope != LdapSearchScope::Base {
            return Ok(Err(OpError::NoSuchObject { matched: None }));
        }
        let dse = dir.root_dse();
        let entry = if base.is_root() {
            &*dse
        } else {
            &dir.subschema
        };
        if filter.evaluate(schema, entry) == TriState::True {
            emit(ResultEntry::Built(to_result(
                dir,
                entry,
                &sel,
                req.typesonly,
                &|_| true,
                Some(&Computed::default()),
            )))?;
        }
        return Ok(Ok(()));
    }
    if base.is_within(&dir.monitor_ndn) {
        return match crate::monitor::search(
            dir,
            who,
            &base,
            &req.scope,
            &filter,
            &sel,
            req.typesonly,
            &mut |e| emit(ResultEntry::Built(e)),
        )? {
            Some(()) => Ok(Ok(())),
            None => Ok(Err(OpError::NoSuchObject { matched: None })),
        };
    }
    if !all_contexts && dir.suffix_of(&base).is_none() {
        return Ok(Err(OpError::NoSuchObject { matched: None }));
    }

    let (resume, fingerprint) = match &page {
        Some(p) => {
            let fp = fingerprint(&base, req);
            if p.cookie.is_empty() {
                (None, fp)
            } else {
                match paged.take(&p.cookie) {
                    Some(st) if st.fingerprint == fp => {
                        if p.size == 0 {
                            // A page size of 0 with a cookie abandons the paged search.
                            *cookie_out = Some(Vec::new());
                            return Ok(Ok(()));
                        }
                        (Some(st), fp)
                    }
                    _ => {
                        // slapd answers protocolError here too.
                        return Ok(Err(OpError::Protocol(
                            "paged results cookie is invalid or belongs to another search".into(),
                        )));
                    }
                }
            }
        }
        None => (None, [0; 32]),
    };
    if let Some(p) = &page {
        if p.size == 0 && p.cookie.is_empty() {
            *cookie_out = Some(Vec::new());
            return Ok(Ok(()));
        }
    }

    let reader = dir.store.reader();
    // A base entry the client may not see is not there for a base-scope search: the answer
    // for a missing one (an empty success would tell that it exists). Wider scopes search
    // below it as usual (a user searches its domain for itself).
    if !who.is_root() && req.scope == LdapSearchScope::Base {
        if let Some((_, base_entry)) = match reader.entry_by_dn(&base) {
            Ok(found) => found,
            Err(e) => return Ok(Err(OpError::Store(e))),
        } {
            let requester = Requester::new(who, &reader);
            if !dir
                .policy
                .for_entry(schema, &requester, &base_entry)
                .allows(None, Rights::READ)
            {
                let matched = super::matched(dir, who, &reader, &base).ok().flatten();
                return Ok(Err(OpError::NoSuchObject { matched }));
            }
        }
    }
    let scope = match req.scope {
        LdapSearchScope::Base => Scope::Base,
        LdapSearchScope::OneLevel => Scope::One,
        LdapSearchScope::Subtree => Scope::Subtree,
        LdapSearchScope::Children => Scope::Children,
    };
    let iter = match reader.search(&base, scope, &filter) {
        // A later page skips the earlier pages' candidates without reading them.
        Ok(it) => {
            let it = match &resume {
                Some(st) => it.starting_at(st.resume_from),
                None => it,
            };
            // The store asks between candidates too, so a scan over many entries that do not
            // match still honours the time limit and an abandon.
            let flag = abandoned.clone();
            // In place, the first check (after a few dozen candidates) ends it.
            it.with_stop(move || {
                in_place
                    || flag.load(Ordering::Relaxed)
                    || deadline.is_some_and(|d| Instant::now() >= d)
            })
        }
        Err(e) => return Ok(Err(store_error(dir, who, &reader, &base, e))),
    };
    let earlier_pages = resume.as_ref().map_or(0, |s| s.returned);
    let wanted = Wanted::of(dir, &sel);
    let requester = Requester::new(who, &reader);
    // What access control must know of the filter the store matched (see `plain_item_types`):
    // its items' types, when their rights decide; else it is evaluated again under them.
    let item_types = filter::plain_item_types(schema, iter.resolved_filter());
    // Entries sent in this page, and candidates the store returned.
    let mut in_page = 0;
    let mut examined = 0;
    let mut iter = iter;
    // Entries come shared with the store's cache: read in place, copied into the result.
    while let Some(item) = iter.next_shared() {
        examined += 1;
        if in_place && examined > IN_PLACE_CANDIDATES {
            return Err(Stopped);
        }
        let returned_total = earlier_pages + in_page;
        if abandoned.load(Ordering::Relaxed) {
            return Err(Stopped);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Err(OpError::TimeLimitExceeded));
        }
        let (id, entry) = match item {
            Ok(x) => x,
            Err(roster_storage::StoreError::Stopped) => {
                if in_place || abandoned.load(Ordering::Relaxed) {
                    return Err(Stopped);
                }
                return Ok(Err(OpError::TimeLimitExceeded));
            }
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        if let Some(p) = &page {
            if in_page == p.size {
                let cookie = paged.put(PageState {
                    fingerprint,
                    resume_from: id,
                    returned: returned_total,
                });
                *cookie_out = Some(cookie);
                return Ok(Ok(()));
            }
        }
        // Entries the client may not see are not there for it; attributes it may not search
        // make the parts of the filter about them Undefined (the store matched without
        // access control, which can only have let more entries through).
        let access = dir.policy.for_entry(schema, &requester, &entry);
        if (!requester.is_root() || dir.policy.hides_from_root())
            && (!access.allows(None, Rights::READ)
                || match &item_types {
                    // Every type the filter's items name may be searched: the filter is True
                    // here as it was in the store.
                    Some(types)
                        if types
                            .iter()
                            .all(|a| access.allows(Some(*a), Rights::SEARCH)) =>
                    {
                        false
                    }
                    // The store's filter, with links resolved (the original gives Undefined
                    // for the in-chain rule), under the requester's rights: an item it may not
                    // search is Undefined, which an OR of it may still make True.
                    _ => {
                        iter.resolved_filter().evaluate_with(schema, &entry, &|a| {
                            access.allows(Some(a), Rights::SEARCH)
                        }) != TriState::True
                    }
                })
        {
            continue;
        }
        if limit.is_some_and(|l| returned_total >= l) {
            return Ok(Err(OpError::SizeLimitExceeded));
        }
        let computed = match wanted.compute(dir, &reader, id, &entry) {
            Ok(c) => c,
            Err(e) => return Ok(Err(OpError::Store(e))),
        };
        if sel.names_operational() {
            emit(ResultEntry::Built(to_result(
                dir,
                &entry,
                &sel,
                req.typesonly,
                &|a| access.allows(Some(a), Rights::READ),
                Some(&computed),
            )))?;
        } else {
            // Only stored attributes are returned: they are encoded straight from the entry,
            // which the store's cache may share, without copying a value; its DN string is
            // made once per cached entry.
            let attrs: Vec<EntryAttr<'_>> = entry
                .attrs
                .iter()
                .filter(|a| {
                    sel.includes(schema, &a.desc) && access.allows(Some(a.desc.id), Rights::READ)
                })
                .map(|a| {
                    (
                        schema.attr(a.desc.id).map_or("", |t| t.name()),
                        a.desc.options.as_slice(),
                        a.values.as_slice(),
                    )
                })
                .collect();
            emit(ResultEntry::Encoded(EncodedEntry::new(
                entry.dn_string(),
                &attrs,
                req.typesonly,
            )))?;
        }
        in_page += 1;
    }
    if page.is_some() {
        *cookie_out = Some(Vec::new());
    }
    Ok(Ok(()))
}

/// Maps a store failure at the start of a search; a missing base carries the matched DN.
fn store_error(
    dir: &Directory,
    who: &Identity,
    reader: &roster_storage::Reader,
    base: &NormDn,
    e: roster_storage::StoreError,
) -> OpError {
    if matches!(e, roster_storage::StoreError::NoSuchObject { .. }) {
        let matched = super::matched(dir, who, reader, base).ok().flatten();
        return OpError::NoSuchObject { matched };
    }
    OpError::Store(e)
}

/// Identifies a search for its paged-results cookie (RFC 2696: the same request every page).
/// A digest rather than the request itself: a paged search may carry a filter of megabytes.
fn fingerprint(base: &NormDn, req: &LdapSearchRequest) -> [u8; 32] {
    use sha2::Digest;
    let text = format!(
        "{}|{:?}|{:?}|{:?}|{}",
        base, req.scope, req.filter, req.attrs, req.typesonly
    );
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// The `[[limits]]` entry that applies to `who`: (size limit, time limit) overrides.
fn identity_limits(dir: &Directory, who: &Identity) -> (Option<u32>, Option<u32>) {
    if dir.limits.is_empty() {
        return (None, None);
    }
    let reader = dir.store.reader();
    let requester = Requester::new(who, &reader);
    dir.limits
        .iter()
        .find(|(w, _, _)| w.matches(&requester))
        .map_or((None, None), |(_, s, t)| (*s, *t))
}

/// The size limit of a search: the client's, within the server's for `who` (`own`: its
/// `[[limits]]` entry's, if any).
fn size_limit(
    dir: &Directory,
    who: &Identity,
    req: &LdapSearchRequest,
    own: Option<u32>,
) -> Option<usize> {
    let client = usize::try_from(req.sizelimit).ok().filter(|&n| n > 0);
    let server = if who.is_root() {
        None
    } else {
        match own {
            Some(0) => None,
            Some(n) => Some(n as usize),
            None => dir.settings.size_limit.map(|n| n as usize),
        }
    };
    match (client, server) {
        (Some(c), Some(s)) => Some(c.min(s)),
        (c, s) => c.or(s),
    }
}

fn time_limit(
    dir: &Directory,
    who: &Identity,
    req: &LdapSearchRequest,
    own: Option<u32>,
) -> Option<Duration> {
    let client = u64::try_from(req.timelimit)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_secs);
    let server = if who.is_root() {
        None
    } else {
        match own {
            Some(0) => None,
            Some(n) => Some(Duration::from_secs(u64::from(n))),
            None => dir.settings.time_limit,
        }
    };
    match (client, server) {
        (Some(c), Some(s)) => Some(c.min(s)),
        (c, s) => c.or(s),
    }
}

/// The ids of the attribute types a search computes instead of reading (`None`: not in the
/// schema), resolved once when the directory opens rather than by name for every entry.
#[derive(Debug, Default, Clone, Copy)]
pub struct ComputedAttrs {
    entry_dn: Option<AttrId>,
    subschema_subentry: Option<AttrId>,
    has_subordinates: Option<AttrId>,
    num_subordinates: Option<AttrId>,
    member_of: Option<AttrId>,
    member_of_transitive: Option<AttrId>,
    locked_time: Option<AttrId>,
}

impl ComputedAttrs {
    pub fn resolve(schema: &Schema) -> ComputedAttrs {
        ComputedAttrs {
            entry_dn: schema.attr_id("entryDN"),
            subschema_subentry: schema.attr_id("subschemaSubentry"),
            has_subordinates: schema.attr_id("hasSubordinates"),
            num_subordinates: schema.attr_id("numSubordinates"),
            member_of: schema.attr_id("memberOf"),
            member_of_transitive: schema.attr_id("msDS-memberOfTransitive"),
            locked_time: schema.attr_id("pwdAccountLockedTime"),
        }
    }
}

/// Which attributes computed from the rest of the directory a search returns.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Wanted {
    has_subordinates: bool,
    num_subordinates: bool,
    member_of: bool,
    member_of_transitive: bool,
    locked: bool,
}

/// The values of the computed attributes of one entry (`None`: not asked for).
#[derive(Debug, Default)]
pub struct Computed {
    pub children: Option<u64>,
    pub member_of: Option<Vec<Dn>>,
    pub member_of_transitive: Option<Vec<Dn>>,
    /// `pwdAccountLockedTime` while failed binds lock the account.
    pub locked_since: Option<String>,
}

impl Wanted {
    pub(crate) fn of(dir: &Directory, sel: &AttrSelection) -> Wanted {
        // Operational attributes are returned only when asked for, by "+" or by name.
        if !sel.names_operational() {
            return Wanted::default();
        }
        let wants = |id: Option<AttrId>| id.is_some_and(|id| sel.wants(&dir.schema, id));
        let ids = &dir.computed_attrs;
        Wanted {
            has_subordinates: wants(ids.has_subordinates),
            num_subordinates: wants(ids.num_subordinates),
            member_of: wants(ids.member_of),
            member_of_transitive: wants(ids.member_of_transitive),
            locked: wants(ids.locked_time),
        }
    }

    pub(crate) fn compute(
        &self,
        dir: &Directory,
        reader: &roster_storage::Reader,
        id: roster_storage::EntryId,
        entry: &Entry,
    ) -> Result<Computed, roster_storage::StoreError> {
        let mut c = Computed::default();
        if self.num_subordinates {
            c.children = Some(reader.count_children(id)?);
        } else if self.has_subordinates {
            c.children = Some(u64::from(reader.has_children(id)?));
        }
        if self.member_of {
            c.member_of = Some(reader.member_of(&entry.ndn)?);
        }
        if self.member_of_transitive {
            c.member_of_transitive = Some(reader.member_of_transitive(&entry.ndn)?);
        }
        if self.locked {
            c.locked_since = dir.lockout.locked_since(&entry.ndn).map(|t| {
                let secs = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                crate::time::generalized(secs)
            });
        }
        Ok(c)
    }
}

/// A search result entry as `search` hands it out: built with values of its own, or encoded
/// already from an entry the store's cache shares (`codec::EncodedEntry`: what a mail lookup
/// that names only stored attributes gets, without copying them).
#[derive(Debug)]
pub enum ResultEntry {
    Built(LdapSearchResultEntry),
    Encoded(EncodedEntry),
}

/// Builds the search result entry: stored attributes, then the computed operational ones.
pub(crate) fn to_result(
    dir: &Directory,
    entry: &Entry,
    sel: &AttrSelection,
    types_only: bool,
    readable: &dyn Fn(AttrId) -> bool,
    computed: Option<&Computed>,
) -> LdapSearchResultEntry {
    let dn = entry.dn.to_string();
    let schema = &dir.schema;
    let mut list: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    // Computed attributes are operational: none is returned unless "+" or names were asked for,
    // and never to a replication consumer (`None`), which keeps stored content only.
    if let Some(computed) = computed.filter(|_| {
        sel.names_operational() && !entry.ndn.is_root() && entry.ndn != dir.subschema_ndn
    }) {
        // A computed attribute already in the entry (added for the filter) is selected with
        // the stored ones.
        let ids = &dir.computed_attrs;
        let mut add = |id: Option<AttrId>, name: &str, values: &dyn Fn() -> Vec<Vec<u8>>| {
            let Some(id) = id else {
                return;
            };
            if !sel.wants(schema, id) || !readable(id) || entry.values_of(id).next().is_some() {
                return;
            }
            let values = values();
            if values.is_empty() {
                return;
            }
            let display = schema
                .attr(id)
                .map(|a| a.name().to_string())
                .unwrap_or_else(|| name.to_string());
            list.push((display, if types_only { Vec::new() } else { values }));
        };
        add(ids.entry_dn, "entryDN", &|| vec![dn.clone().into_bytes()]);
        add(ids.subschema_subentry, "subschemaSubentry", &|| {
            vec![b"cn=Subschema".to_vec()]
        });
        if let Some(n) = computed.children {
            let has: &[u8] = if n > 0 { b"TRUE" } else { b"FALSE" };
            add(ids.has_subordinates, "hasSubordinates", &|| {
                vec![has.to_vec()]
            });
            add(ids.num_subordinates, "numSubordinates", &|| {
                vec![n.to_string().into_bytes()]
            });
        }
        let dns = |v: &Option<Vec<Dn>>| {
            v.iter()
                .flatten()
                .map(|d| d.to_string().into_bytes())
                .collect::<Vec<_>>()
        };
        add(ids.member_of, "memberOf", &|| dns(&computed.member_of));
        add(ids.member_of_transitive, "msDS-memberOfTransitive", &|| {
            dns(&computed.member_of_transitive)
        });
        if let Some(t) = &computed.locked_since {
            add(ids.locked_time, "pwdAccountLockedTime", &|| {
                vec![t.clone().into_bytes()]
            });
        }
    }
    let mut attributes = attrs::select(schema, entry, sel, types_only, readable);
    attributes.extend(
        list.into_iter()
            .map(|(atype, vals)| LdapPartialAttribute { atype, vals }),
    );
    LdapSearchResultEntry { dn, attributes }
}
