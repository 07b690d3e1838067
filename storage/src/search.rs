//! Search: planning with the indexes, then a lazy scan of the candidates in ascending id order.
//!
//! The plan only narrows: each index lookup yields a superset of the entries that can match its
//! part of the filter (AND intersects, OR unites, NOT and unindexed parts mean "every entry in
//! scope"), and every candidate is checked against the scope and the whole filter before it is
//! returned. So results are exact whatever the indexes, and come in id order whatever the plan,
//! which is the order slapd's back-mdb returns them in (a size limit lets the same entries
//! through).
//!
//! Like back-mdb's ID lists, which turn into a range past 2^16 ids, an index list longer than
//! [`MAX_IDS`] stops narrowing: reading and merging it would cost more than it saves.

use crate::cache::{CachedEntry, ReadCache};
use crate::codec;
use crate::error::{Context, Result, StoreError};
use crate::index::{piece_grams, AttrIndex, IndexFlags};
use crate::keys;
use crate::reader::Reader;
use crate::store::EntryId;
use fjall::{Readable, SingleWriterTxKeyspace};
use roster_schema::dn::NormDn;
use roster_schema::{AttrId, CompiledFilter, Entry, SubstringPieces, TriState};
use std::fmt;
use std::sync::Arc;

/// The longest id list an index lookup may produce before it is treated as "every entry".
pub const MAX_IDS: usize = 1 << 17;

/// Once an AND has narrowed the candidates to this many, reading more indexes costs more than
/// checking the candidates themselves.
const FEW_IDS: usize = 16;

/// The scope of a search (RFC 4511 section 4.5.1.2, plus the subordinate-subtree scope of
/// draft-sermersheim-ldap-subordinate-scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The base entry only.
    Base,
    /// The base's immediate children.
    One,
    /// The base and everything below it.
    Subtree,
    /// Everything below the base, without the base.
    Children,
}

/// How the indexes narrowed one part of the filter (for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexUse {
    /// No index narrows this part: every entry in scope is a candidate.
    All,
    /// This part can match no entry.
    Empty,
    Equality {
        attr: String,
        ids: usize,
    },
    Presence {
        attr: String,
        ids: usize,
    },
    Substrings {
        attr: String,
        ids: usize,
    },
    /// An index lookup passed [`MAX_IDS`] ids and was dropped.
    TooMany {
        attr: String,
    },
    And(Vec<IndexUse>),
    Or(Vec<IndexUse>),
}

/// Where the candidates of a search come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CandidateSource {
    /// The base entry alone (base scope).
    Base,
    /// The ids the indexes produced.
    Index { ids: usize },
    /// The base's children, from the parent index.
    Children { ids: usize },
    /// The subtree's entries, from the DN index.
    Subtree { ids: usize },
    /// Every entry, in id order, checked against the scope.
    FullScan,
}

/// A search plan: how candidates are found. Made by [`Reader::plan`], run by [`Reader::run`].
#[derive(Clone)]
pub struct SearchPlan {
    pub base: EntryId,
    pub scope: Scope,
    pub index: IndexUse,
    pub source: CandidateSource,
    candidates: Candidates,
    base_key: Vec<u8>,
    /// The filter with its links resolved (see `links`), evaluated on each candidate.
    filter: CompiledFilter,
    /// Whether candidates need `memberOf` and `msDS-memberOfTransitive` computed before the
    /// filter sees them.
    link_attrs: (bool, bool),
}

impl fmt::Debug for SearchPlan {
    // The candidate ids are left out: there may be a million of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchPlan")
            .field("base", &self.base)
            .field("scope", &self.scope)
            .field("index", &self.index)
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Clone)]
enum Candidates {
    Ids(Vec<u64>),
    Scan,
}

/// An id set: sorted, deduplicated ids, or every entry.
enum IdSet {
    All,
    Ids(Vec<u64>),
}

impl Reader {
    /// Plans a search. Fails with [`StoreError::NoSuchObject`] when the base does not exist.
    /// The root (the empty DN) is the parent of every naming context: a subtree or children
    /// search below it covers every stored entry; it is no base of its own.
    pub fn plan(&self, base: &NormDn, scope: Scope, filter: &CompiledFilter) -> Result<SearchPlan> {
        let filter = self.resolve_links(filter)?;
        let link_attrs = self.link_attrs_needed(&filter);
        let base_key = keys::dn_key(base);
        let base_id = match base.is_root() {
            true if scope != Scope::Base => Some(EntryId(0)),
            true => None,
            false => self.base_id(&base_key)?,
        };
        let Some(base_id) = base_id else {
            return Err(StoreError::NoSuchObject {
                dn: base.to_string(),
            });
        };
        let (index, source, candidates) = if scope == Scope::Base {
            (
                IndexUse::All,
                CandidateSource::Base,
                Candidates::Ids(vec![base_id.0]),
            )
        } else {
            let (set, index) = self.filter_ids(&filter, MAX_IDS)?;
            match set {
                IdSet::Ids(ids) => (
                    index,
                    CandidateSource::Index { ids: ids.len() },
                    Candidates::Ids(ids),
                ),
                IdSet::All if scope == Scope::One => {
                    let ids = self.child_ids(base_id.0)?;
                    (
                        index,
                        CandidateSource::Children { ids: ids.len() },
                        Candidates::Ids(ids),
                    )
                }
                IdSet::All => match self.subtree_ids(&base_key, MAX_IDS)? {
                    Some(ids) => (
                        index,
                        CandidateSource::Subtree { ids: ids.len() },
                        Candidates::Ids(ids),
                    ),
                    None => (index, CandidateSource::FullScan, Candidates::Scan),
                },
            }
        };
        Ok(SearchPlan {
            base: base_id,
            scope,
            index,
            source,
            candidates,
            base_key,
            filter,
            link_attrs,
        })
    }

    /// Searches: the entries in scope for which `filter` is True, lazily, in ascending id order.
    pub fn search(
        &self,
        base: &NormDn,
        scope: Scope,
        filter: &CompiledFilter,
    ) -> Result<SearchIter> {
        let plan = self.plan(base, scope, filter)?;
        Ok(self.run(plan))
    }

    /// Runs a plan made by [`Reader::plan`] on this reader.
    pub fn run(&self, plan: SearchPlan) -> SearchIter {
        let scope = match plan.scope {
            Scope::Base => ScopeCheck::Base(plan.base.0),
            Scope::One => ScopeCheck::One(plan.base.0),
            Scope::Subtree => ScopeCheck::Subtree(plan.base_key),
            Scope::Children => ScopeCheck::Children(plan.base_key, plan.base.0),
        };
        let source = match plan.candidates {
            Candidates::Ids(ids) => Source::Ids(ids.into_iter()),
            Candidates::Scan => Source::Scan(self.snapshot.iter(&self.inner.id2entry)),
        };
        SearchIter {
            reader: self.clone(),
            source,
            scope,
            filter: plan.filter,
            link_attrs: plan.link_attrs,
            failed: false,
            stop: None,
            since_check: 0,
        }
    }

    /// The ids of a subtree from the DN index, or `None` past `cap`.
    fn subtree_ids(&self, base_key: &[u8], cap: usize) -> Result<Option<Vec<u64>>> {
        let mut ids = Vec::new();
        for guard in self.snapshot.prefix(&self.inner.dn2id, base_key) {
            if ids.len() >= cap {
                return Ok(None);
            }
            let (_, v) = guard.into_inner().context("scan dn index")?;
            ids.push(keys::id_from_value(&v)?);
        }
        ids.sort_unstable();
        Ok(Some(ids))
    }

    fn filter_ids(&self, filter: &CompiledFilter, cap: usize) -> Result<(IdSet, IndexUse)> {
        match filter {
            CompiledFilter::And(parts) => self.and_ids(parts, cap),
            CompiledFilter::Or(parts) => self.or_ids(parts, cap),
            CompiledFilter::Undefined => Ok((IdSet::Ids(Vec::new()), IndexUse::Empty)),
            CompiledFilter::Equality { attr, key, .. } => self.value_ids(*attr, key, cap),
            CompiledFilter::Present { attr, .. } => self.presence_ids(*attr, cap),
            CompiledFilter::Substrings { attr, pieces, .. } => {
                self.substring_ids(*attr, pieces, cap)
            }
            CompiledFilter::DnIn { set, .. } => self.dn_set_ids(set, cap),
            _ => Ok((IdSet::All, IndexUse::All)),
        }
    }

    /// Lower ranks are read first in an AND: likely selective and cheap.
    fn rank(&self, filter: &CompiledFilter) -> u8 {
        match filter {
            CompiledFilter::Undefined => 0,
            CompiledFilter::Equality { attr, .. } if Some(*attr) == self.inner.object_class => 5,
            CompiledFilter::Equality { .. } | CompiledFilter::DnIn { .. } => 1,
            CompiledFilter::Substrings { pieces, .. } if pieces.initial.is_some() => 2,
            CompiledFilter::Substrings { .. } => 3,
            CompiledFilter::And(_) | CompiledFilter::Or(_) => 4,
            CompiledFilter::Present { .. } => 6,
            _ => 7,
        }
    }

    fn and_ids(&self, parts: &[CompiledFilter], cap: usize) -> Result<(IdSet, IndexUse)> {
        let mut order: Vec<&CompiledFilter> = parts.iter().collect();
        order.sort_by_key(|f| self.rank(f));
        let mut acc = IdSet::All;
        let mut uses = Vec::new();
        for part in order {
            let part_cap = match &acc {
                IdSet::All => cap,
                IdSet::Ids(ids) if ids.len() <= FEW_IDS => break,
                IdSet::Ids(ids) => cap.min(ids.len().saturating_mul(64).saturating_add(1024)),
            };
            let (set, used) = self.filter_ids(part, part_cap)?;
            uses.push(used);
            acc = match (acc, set) {
                (IdSet::All, s) => s,
                (a, IdSet::All) => a,
                (IdSet::Ids(a), IdSet::Ids(b)) => IdSet::Ids(intersect(&a, &b)),
            };
        }
        Ok((acc, IndexUse::And(uses)))
    }

    fn or_ids(&self, parts: &[CompiledFilter], cap: usize) -> Result<(IdSet, IndexUse)> {
        let mut acc = Vec::new();
        let mut uses = Vec::new();
        for part in parts {
            let (set, used) = self.filter_ids(part, cap)?;
            uses.push(used);
            match set {
                IdSet::All => return Ok((IdSet::All, IndexUse::Or(uses))),
                IdSet::Ids(ids) => acc = union(&acc, &ids),
            }
            if acc.len() > cap {
                return Ok((IdSet::All, IndexUse::Or(uses)));
            }
        }
        Ok((IdSet::Ids(acc), IndexUse::Or(uses)))
    }

    /// The ids of the entries named in `set` (a resolved link filter) from the DN index.
    fn dn_set_ids(
        &self,
        set: &std::collections::HashSet<NormDn>,
        cap: usize,
    ) -> Result<(IdSet, IndexUse)> {
        if set.len() > cap {
            return Ok((
                IdSet::All,
                IndexUse::TooMany {
                    attr: "entryDN".into(),
                },
            ));
        }
        let mut ids = Vec::with_capacity(set.len());
        for dn in set {
            if let Some(id) = self.lookup(dn)? {
                ids.push(id.0);
            }
        }
        ids.sort_unstable();
        let n = ids.len();
        Ok((
            IdSet::Ids(ids),
            IndexUse::Equality {
                attr: "entryDN".into(),
                ids: n,
            },
        ))
    }

    fn attr_name(&self, attr: AttrId) -> String {
        self.inner
            .schema
            .attr(attr)
            .map(|a| a.name().to_string())
            .unwrap_or_default()
    }

    /// The union over `attr` and its subtypes of what `read` finds in each one's index of the
    /// kind `has` selects. Any type without such an index, or a lookup past `cap` (`read`
    /// returning `Some(None)`), leaves the scope as the candidates; `read` returning `None`
    /// skips that type.
    fn union_over_types(
        &self,
        attr: AttrId,
        has: fn(IndexFlags) -> bool,
        mut read: impl FnMut(AttrId, &AttrIndex) -> Result<Option<Option<Vec<u64>>>>,
        used: fn(String, usize) -> IndexUse,
    ) -> Result<(IdSet, IndexUse)> {
        let mut acc = Vec::new();
        let one = [attr];
        let subtypes = self.inner.schema.subtypes(attr);
        let types = if subtypes.is_empty() {
            &one[..]
        } else {
            subtypes
        };
        for &t in types {
            let Some(ix) = self.inner.indexes.get(t).filter(|ix| has(ix.flags)) else {
                return Ok((IdSet::All, IndexUse::All));
            };
            match read(t, ix)? {
                None => continue,
                Some(Some(ids)) if acc.is_empty() => acc = ids,
                Some(Some(ids)) => acc = union(&acc, &ids),
                Some(None) => {
                    return Ok((
                        IdSet::All,
                        IndexUse::TooMany {
                            attr: ix.name.clone(),
                        },
                    ))
                }
            }
        }
        let n = acc.len();
        Ok((IdSet::Ids(acc), used(self.attr_name(attr), n)))
    }

    fn value_ids(&self, attr: AttrId, key: &[u8], cap: usize) -> Result<(IdSet, IndexUse)> {
        self.union_over_types(
            attr,
            IndexFlags::equality,
            |t, ix| {
                // A subtype normally shares its supertype's equality rule; normalizing the
                // assertion again keeps the key right if it does not.
                let norm = if t == attr {
                    key.to_vec()
                } else {
                    match self.inner.schema.normalize_eq(t, key) {
                        Ok(Some(n)) => n,
                        _ => return Ok(None),
                    }
                };
                self.equality_ids(t, &ix.keyspace, &norm, cap).map(Some)
            },
            |attr, ids| IndexUse::Equality { attr, ids },
        )
    }

    /// The ids under one equality key of `attr`'s index, through the store's cache of id
    /// lists (`cache`); `None` past `cap`.
    fn equality_ids(
        &self,
        attr: AttrId,
        keyspace: &SingleWriterTxKeyspace,
        norm: &[u8],
        cap: usize,
    ) -> Result<Option<Vec<u64>>> {
        let cache = &self.inner.cache;
        let slot = self.inner.indexes.slot(attr);
        let (Some(slot), true) = (slot, cache.lists_enabled()) else {
            let prefix = keys::value_prefix(keys::EQUALITY, norm);
            return self.read_ids(keyspace, &prefix, cap, true);
        };
        let key = ReadCache::equality_key(slot, norm);
        let seqno = self.snapshot.seqno();
        if let Some(ids) = cache.list(&key, seqno) {
            return Ok((ids.len() <= cap).then(|| ids.to_vec()));
        }
        let prefix = key.get(ReadCache::LIST_KEY_SLOT..).unwrap_or_default();
        let ids = self.read_ids(keyspace, prefix, cap, true)?;
        if let Some(ids) = &ids {
            cache.fill_list(key, ids.as_slice().into(), seqno);
        }
        Ok(ids)
    }

    fn presence_ids(&self, attr: AttrId, cap: usize) -> Result<(IdSet, IndexUse)> {
        // Every entry has an object class: the index would list them all.
        if Some(attr) == self.inner.object_class {
            return Ok((IdSet::All, IndexUse::All));
        }
        self.union_over_types(
            attr,
            IndexFlags::presence,
            |_, ix| {
                self.read_ids(&ix.keyspace, &[keys::PRESENCE], cap, true)
                    .map(Some)
            },
            |attr, ids| IndexUse::Presence { attr, ids },
        )
    }

    fn substring_ids(
        &self,
        attr: AttrId,
        pieces: &SubstringPieces,
        cap: usize,
    ) -> Result<(IdSet, IndexUse)> {
        self.union_over_types(
            attr,
            IndexFlags::substring,
            |_, ix| self.pieces_ids(&ix.keyspace, pieces, cap).map(Some),
            |attr, ids| IndexUse::Substrings { attr, ids },
        )
    }

    /// Candidates for substring pieces in one attribute's index: the values starting with the
    /// initial (a range of the initial keys), those ending with the final (a range of the
    /// reversed-value keys), and for each `*any*` piece the entries having all its grams.
    /// `None` when nothing narrows.
    fn pieces_ids(
        &self,
        keyspace: &SingleWriterTxKeyspace,
        pieces: &SubstringPieces,
        cap: usize,
    ) -> Result<Option<Vec<u64>>> {
        let mut acc: Option<Vec<u64>> = None;
        let narrowed_cap = |acc: &Option<Vec<u64>>| match acc {
            Some(ids) => cap.min(ids.len().saturating_mul(64).saturating_add(1024)),
            None => cap,
        };
        let mut ranges = Vec::new();
        if let Some(initial) = pieces.initial.as_ref().filter(|p| !p.is_empty()) {
            ranges.push(keys::piece_prefix(keys::INITIAL, initial));
        }
        if let Some(final_) = pieces.final_.as_ref().filter(|p| !p.is_empty()) {
            ranges.push(keys::piece_prefix(keys::FINAL, &keys::reversed(final_)));
        }
        for prefix in ranges {
            if let Some(ids) = self.read_ids(keyspace, &prefix, narrowed_cap(&acc), false)? {
                acc = Some(match acc {
                    Some(a) => intersect(&a, &ids),
                    None => ids,
                });
            }
        }
        for piece in &pieces.any {
            for gram in piece_grams(piece) {
                if acc.as_ref().is_some_and(|a| a.len() <= FEW_IDS) {
                    return Ok(acc);
                }
                if let Some(ids) = self.read_ids(
                    keyspace,
                    &keys::gram_prefix(&gram),
                    narrowed_cap(&acc),
                    true,
                )? {
                    acc = Some(match acc {
                        Some(a) => intersect(&a, &ids),
                        None => ids,
                    });
                }
            }
        }
        Ok(acc)
    }

    /// The ids at the end of the keys under `prefix`, ascending; `None` past `cap` keys.
    /// `sorted` says the keys already come in id order (one value's keys).
    fn read_ids(
        &self,
        keyspace: &SingleWriterTxKeyspace,
        prefix: &[u8],
        cap: usize,
        sorted: bool,
    ) -> Result<Option<Vec<u64>>> {
        let mut ids = Vec::new();
        // A range with no upper end, stopped at the first key past the prefix: fjall's prefix
        // iterator also seeks the upper bound in the index block and in the data block of every
        // table before the first key, which cost more than the keys of a single value.
        for guard in self.snapshot.range(keyspace, prefix..) {
            let key = guard.key().context("scan index")?;
            if !key.starts_with(prefix) {
                break;
            }
            if ids.len() >= cap {
                return Ok(None);
            }
            ids.push(keys::id_from_suffix(&key)?);
        }
        if !sorted {
            ids.sort_unstable();
            ids.dedup();
        }
        Ok(Some(ids))
    }
}

/// Sorted intersection of two sorted id lists.
pub(crate) fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    // A list much shorter than the other is probed by binary search instead of merged.
    if small.len().saturating_mul(16) < large.len() {
        for id in small {
            if large.binary_search(id).is_ok() {
                out.push(*id);
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (small.get(i), large.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(*x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Sorted union of two sorted id lists.
pub(crate) fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    out.push(*x);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(*y);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(*x);
                    i += 1;
                    j += 1;
                }
            },
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (None, Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

enum Source {
    Ids(std::vec::IntoIter<u64>),
    Scan(fjall::Iter),
}

enum ScopeCheck {
    Base(u64),
    One(u64),
    Subtree(Vec<u8>),
    Children(Vec<u8>, u64),
}

impl ScopeCheck {
    fn accepts(&self, id: u64, header: &codec::RecordHeader<'_>) -> bool {
        match self {
            ScopeCheck::Base(base) => id == *base,
            ScopeCheck::One(base) => header.parent == *base,
            ScopeCheck::Subtree(key) => header.dn_key.starts_with(key),
            ScopeCheck::Children(key, base) => id != *base && header.dn_key.starts_with(key),
        }
    }
}

/// The entries a search returns, lazily, in ascending id order. Owns its snapshot, so it can
/// be moved to another thread and outlive the [`Reader`] that made it.
pub struct SearchIter {
    reader: Reader,
    source: Source,
    scope: ScopeCheck,
    filter: CompiledFilter,
    /// (`memberOf`, `msDS-memberOfTransitive`) computed on each candidate before evaluation.
    link_attrs: (bool, bool),
    failed: bool,
    /// Asked every [`STOP_CHECK_INTERVAL`] candidates whether the caller wants the search to
    /// end (a time limit, an abandon): candidates that do not match are skipped inside one
    /// `next`, which could otherwise run for as long as the scope is large.
    stop: Option<Box<dyn Fn() -> bool + Send>>,
    /// Candidates examined since the last stop check.
    since_check: u32,
}

/// How many candidates a search examines between two calls of its stop check.
const STOP_CHECK_INTERVAL: u32 = 64;

impl SearchIter {
    /// Makes the search end with [`StoreError::Stopped`] once `stop` returns true; it is asked
    /// every few candidates, matching or not.
    pub fn with_stop(mut self, stop: impl Fn() -> bool + Send + 'static) -> SearchIter {
        self.stop = Some(Box::new(stop));
        self
    }

    /// Skips the candidates below `first` without reading them: resuming a paged search at the
    /// first id of its next page.
    pub fn starting_at(mut self, first: EntryId) -> SearchIter {
        self.source = match self.source {
            Source::Ids(ids) => {
                let rest: Vec<u64> = ids.filter(|id| *id >= first.0).collect();
                Source::Ids(rest.into_iter())
            }
            Source::Scan(_) => Source::Scan(
                self.reader
                    .snapshot
                    .range(&self.reader.inner.id2entry, keys::id_bytes(first.0)..),
            ),
        };
        self
    }

    /// The filter the candidates are checked against: the search's, with the parts about
    /// links resolved (`(memberOf=G)`, the in-chain rule). A caller that evaluates entries
    /// again (access control) must use this one: the original gives Undefined for the in-chain
    /// rule.
    pub fn resolved_filter(&self) -> &CompiledFilter {
        &self.filter
    }

    /// The next entry, shared with the store's cache: [`Iterator::next`] without a copy of an
    /// entry the cache holds.
    pub fn next_shared(&mut self) -> Option<Result<(EntryId, SharedEntry)>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    /// Candidate `id` from the cache or its record, if it is in scope; `Ok(None)` when it is
    /// not (or is missing).
    fn candidate(&self, id: u64) -> Result<Option<Arc<CachedEntry>>> {
        let inner = &*self.reader.inner;
        let seqno = self.reader.snapshot.seqno();
        if let Some(cached) = inner.cache.entry(id, seqno) {
            let header = codec::RecordHeader {
                parent: cached.parent,
                dn_key: &cached.dn_key,
            };
            return Ok(self.scope.accepts(id, &header).then_some(cached));
        }
        let Some(record) = self
            .reader
            .snapshot
            .get(&inner.id2entry, keys::id_bytes(id))
            .context("read entry")?
        else {
            // An index names an entry this snapshot does not have: a stray key only widens
            // the candidates, so the search goes on; `verify` reports it.
            tracing::warn!(id, "index names a missing entry; run verify");
            return Ok(None);
        };
        let header = codec::header(id, &record)?;
        if !self.scope.accepts(id, &header) {
            return Ok(None);
        }
        self.reader.decode_into_cache(id, &record).map(Some)
    }

    fn step(&mut self) -> Result<Option<(EntryId, SharedEntry)>> {
        let inner = &*self.reader.inner;
        loop {
            if let Some(stop) = &self.stop {
                self.since_check += 1;
                if self.since_check >= STOP_CHECK_INTERVAL {
                    self.since_check = 0;
                    if stop() {
                        return Err(StoreError::Stopped);
                    }
                }
            }
            let (id, entry) = match &mut self.source {
                Source::Ids(ids) => {
                    let Some(id) = ids.next() else {
                        return Ok(None);
                    };
                    match self.candidate(id)? {
                        Some(entry) => (id, entry),
                        None => continue,
                    }
                }
                // A scan reads every entry once: it neither uses nor fills the cache.
                Source::Scan(iter) => {
                    let Some(guard) = iter.next() else {
                        return Ok(None);
                    };
                    let (k, record) = guard.into_inner().context("scan entries")?;
                    let id = keys::id_from_value(&k)?;
                    if !self.scope.accepts(id, &codec::header(id, &record)?) {
                        continue;
                    }
                    let entry = inner.codec.decode(id, &record)?;
                    (id, Arc::new(CachedEntry::new(0, Box::default(), entry)))
                }
            };
            let mut entry = entry;
            if self.link_attrs != (false, false) {
                // Computed per search, never stored with the cached entry.
                let (member_of, transitive) = self.link_attrs;
                let mut own = entry.entry.clone();
                self.reader
                    .add_link_attrs(&mut own, member_of, transitive)?;
                entry = Arc::new(CachedEntry::new(0, Box::default(), own));
            }
            let entry = SharedEntry(entry);
            if self.filter.evaluate(&inner.schema, &entry) == TriState::True {
                return Ok(Some((EntryId(id), entry)));
            }
        }
    }
}

impl Iterator for SearchIter {
    type Item = Result<(EntryId, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_shared()
            .map(|item| item.map(|(id, entry)| (id, entry.into_entry())))
    }
}

/// An entry a search found, shared with the store's cache: read it in place (it derefs to
/// [`Entry`]); [`SharedEntry::into_entry`] copies it only if the cache holds it too.
#[derive(Debug, Clone)]
pub struct SharedEntry(pub(crate) Arc<CachedEntry>);

impl SharedEntry {
    /// The DN in its RFC 4514 string form, made once per cached entry.
    pub fn dn_string(&self) -> &str {
        self.0.dn.get_or_init(|| self.0.entry.dn.to_string())
    }

    /// The entry, moved out if nothing else holds it, copied otherwise.
    pub fn into_entry(self) -> Entry {
        self.try_into_entry().unwrap_or_else(|e| e.0.entry.clone())
    }

    /// The entry if nothing else holds it (no copy), or this handle back.
    pub fn try_into_entry(self) -> std::result::Result<Entry, SharedEntry> {
        Arc::try_unwrap(self.0)
            .map(|c| c.entry)
            .map_err(SharedEntry)
    }
}

impl std::ops::Deref for SharedEntry {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.0.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5, 8]), vec![3, 5]);
        let big: Vec<u64> = (0..1000).collect();
        assert_eq!(intersect(&[5, 500, 2000], &big), vec![5, 500]);
        assert_eq!(union(&[1, 3, 5], &[2, 3, 9]), vec![1, 2, 3, 5, 9]);
        assert_eq!(union(&[], &[2]), vec![2]);
        assert_eq!(union(&[2], &[]), vec![2]);
    }
}
