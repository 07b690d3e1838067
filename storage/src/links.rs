//! Links between entries through DN-valued attributes.
//!
//! - `memberOf` is not stored: the groups of an entry are the entries whose `member` holds its
//!   DN, read from `member`'s equality index, which the store keeps whatever the configuration
//!   says. So it cannot go stale, and a rename of a group changes its members' `memberOf`
//!   without touching them.
//! - Nested membership (the in-chain rule `1.2.840.113556.1.4.1941` and
//!   `msDS-memberOfTransitive`) follows those links breadth-first with a visited set, so cycles
//!   end, and stops after [`MAX_NESTED`] entries.
//! - Referential integrity: a delete removes, and a rename rewrites, the values of the integrity
//!   attributes (`member` by default) that name the changed entries, in every entry holding
//!   them, inside the delete's or the rename's transaction. Each such entry is rewritten once
//!   however many of its values change (a whole branch of members renamed).

use crate::codec;
use crate::error::{Context, Result};
use crate::index::AttrIndex;
use crate::keys;
use crate::reader::Reader;
use crate::store::{Inner, Store};
use fjall::{Readable, SingleWriterWriteTx};
use roster_schema::dn::NormDn;
use roster_schema::{AttrId, Attribute, CompiledFilter, Dn, Entry, Schema};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// The most entries a nested expansion visits; past it the expansion stops (and says so in the
/// log) rather than walk an unbounded graph for one filter.
pub const MAX_NESTED: usize = 1 << 20;

/// The attribute types links are made of, resolved once when the store opens.
#[derive(Debug, Default, Clone)]
pub(crate) struct LinkAttrs {
    /// `member`: its values make `memberOf`.
    pub(crate) member: Option<AttrId>,
    pub(crate) member_of: Option<AttrId>,
    pub(crate) member_of_transitive: Option<AttrId>,
    /// The attributes whose values follow deletes and renames.
    pub(crate) integrity: Vec<AttrId>,
}

impl LinkAttrs {
    pub(crate) fn new(schema: &Schema, integrity: Vec<AttrId>) -> LinkAttrs {
        LinkAttrs {
            member: schema.attr_id("member"),
            member_of: schema.attr_id("memberOf"),
            member_of_transitive: schema.attr_id("msDS-memberOfTransitive"),
            integrity,
        }
    }
}

/// What a rewrite found: the entries of other DNs whose values changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The DNs of the entries rewritten, in id order.
    pub entries: Vec<Dn>,
}

/// The key of `dn` as a value of the DN-syntax attribute `attr` in its equality index.
fn value_key(schema: &Schema, attr: AttrId, dn: &NormDn) -> Vec<u8> {
    let text = dn.to_string();
    match schema.normalize_eq(attr, text.as_bytes()) {
        Ok(Some(key)) => key,
        _ => text.into_bytes(),
    }
}

/// The ids of the entries whose `ix` attribute holds `dn`, ascending.
fn holders<R: Readable>(r: &R, schema: &Schema, ix: &AttrIndex, dn: &NormDn) -> Result<Vec<u64>> {
    let prefix = keys::value_prefix(keys::EQUALITY, &value_key(schema, ix.attr, dn));
    let mut ids = Vec::new();
    for guard in r.prefix(&ix.keyspace, &prefix) {
        let key = guard.key().context("scan index")?;
        ids.push(keys::id_from_suffix(&key)?);
    }
    Ok(ids)
}

/// The normalized DN of a DN-syntax value; `None` for a value that is not a valid DN (kept as
/// it is by every rewrite, ignored by expansions).
fn normalized(schema: &Schema, value: &[u8]) -> Option<NormDn> {
    let text = std::str::from_utf8(value).ok()?;
    Dn::parse(text).ok()?.normalize(schema).ok()
}

impl Reader {
    /// The DN as written and normalized of entry `id`; `None` if it does not exist.
    fn dn_of(&self, id: u64) -> Result<Option<(Dn, NormDn)>> {
        match self
            .snapshot
            .get(&self.inner.id2entry, keys::id_bytes(id))
            .context("read entry")?
        {
            Some(record) => Ok(Some(codec::decode_dn(id, &record)?)),
            None => Ok(None),
        }
    }

    fn member_index(&self) -> Option<&AttrIndex> {
        self.inner
            .links
            .member
            .and_then(|m| self.inner.indexes.get(m))
    }

    /// The groups `dn` is a direct member of (the entries whose `member` holds it): their DNs
    /// as written, in id order. This is `memberOf`.
    pub fn member_of(&self, dn: &NormDn) -> Result<Vec<Dn>> {
        let Some(ix) = self.member_index() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for id in holders(&self.snapshot, &self.inner.schema, ix, dn)? {
            if let Some((pretty, _)) = self.dn_of(id)? {
                out.push(pretty);
            }
        }
        Ok(out)
    }

    /// Every group `dn` belongs to, directly or through nested groups, each once, in id
    /// order. This is `msDS-memberOfTransitive`.
    pub fn member_of_transitive(&self, dn: &NormDn) -> Result<Vec<Dn>> {
        let Some(ix) = self.member_index() else {
            return Ok(Vec::new());
        };
        Ok(self
            .holders_transitive(ix, dn)?
            .into_iter()
            .map(|(_, pretty, _)| pretty)
            .collect())
    }

    /// The entries linked to `dn` through a chain of `ix` values (`dn` itself only if a cycle
    /// leads back to it), breadth-first, in id order.
    fn holders_transitive(&self, ix: &AttrIndex, dn: &NormDn) -> Result<Vec<(u64, Dn, NormDn)>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut queue = VecDeque::from([dn.clone()]);
        while let Some(next) = queue.pop_front() {
            for id in holders(&self.snapshot, &self.inner.schema, ix, &next)? {
                if !seen.insert(id) {
                    continue;
                }
                if seen.len() > MAX_NESTED {
                    tracing::warn!(dn = %dn, limit = MAX_NESTED, "nested expansion stopped at its limit");
                    return Ok(sorted(out));
                }
                if let Some((pretty, norm)) = self.dn_of(id)? {
                    queue.push_back(norm.clone());
                    out.push((id, pretty, norm));
                }
            }
        }
        Ok(sorted(out))
    }

    /// The normalized DNs the `member` values of the entry `group` name; empty if it does not
    /// exist.
    fn direct_members(&self, group: &NormDn) -> Result<Vec<NormDn>> {
        let (Some(member), Some((_, entry))) = (self.inner.links.member, self.entry_by_dn(group)?)
        else {
            return Ok(Vec::new());
        };
        Ok(entry
            .values_of(member)
            .filter_map(|v| normalized(&self.inner.schema, v))
            .collect())
    }

    /// Every DN `group`'s `member` values name, and theirs in turn for the members that are
    /// groups: the members of `group`, directly or through nested groups.
    fn members_transitive(&self, group: &NormDn) -> Result<HashSet<NormDn>> {
        let mut out = HashSet::new();
        let mut queue = VecDeque::from([group.clone()]);
        while let Some(next) = queue.pop_front() {
            for m in self.direct_members(&next)? {
                if out.len() >= MAX_NESTED {
                    tracing::warn!(group = %group, limit = MAX_NESTED, "nested expansion stopped at its limit");
                    return Ok(out);
                }
                if out.insert(m.clone()) {
                    queue.push_back(m);
                }
            }
        }
        Ok(out)
    }

    /// Replaces the parts of `filter` that need the directory's links with the sets of entries
    /// they match: `(memberOf=G)` becomes G's members, and the in-chain rule on `memberOf`
    /// G's members through nested groups, on another indexed DN attribute (`member`,
    /// `manager`) the entries linked to the DN through a chain of its values. In-chain on an
    /// attribute without an equality index is Undefined.
    pub(crate) fn resolve_links(&self, filter: &CompiledFilter) -> Result<CompiledFilter> {
        let links = &self.inner.links;
        Ok(match filter {
            CompiledFilter::And(v) => CompiledFilter::And(
                v.iter()
                    .map(|f| self.resolve_links(f))
                    .collect::<Result<_>>()?,
            ),
            CompiledFilter::Or(v) => CompiledFilter::Or(
                v.iter()
                    .map(|f| self.resolve_links(f))
                    .collect::<Result<_>>()?,
            ),
            CompiledFilter::Not(f) => CompiledFilter::Not(Box::new(self.resolve_links(f)?)),
            CompiledFilter::InChain { attr, dn } => {
                if Some(*attr) == links.member_of {
                    CompiledFilter::DnIn {
                        attr: *attr,
                        set: Arc::new(self.members_transitive(dn)?),
                    }
                } else if let Some(ix) = self
                    .inner
                    .indexes
                    .get(*attr)
                    .filter(|ix| ix.flags.equality())
                {
                    let set = self
                        .holders_transitive(ix, dn)?
                        .into_iter()
                        .map(|(_, _, norm)| norm)
                        .collect();
                    CompiledFilter::DnIn {
                        attr: *attr,
                        set: Arc::new(set),
                    }
                } else {
                    CompiledFilter::Undefined
                }
            }
            CompiledFilter::Equality { attr, key, options }
                if Some(*attr) == links.member_of && options.is_empty() =>
            {
                // The key is the assertion's normalized DN: read back, not parsed again.
                let set = match std::str::from_utf8(key) {
                    Ok(text) => self
                        .direct_members(&NormDn::from_normalized(text))?
                        .into_iter()
                        .collect(),
                    Err(_) => HashSet::new(),
                };
                CompiledFilter::DnIn {
                    attr: *attr,
                    set: Arc::new(set),
                }
            }
            other => other.clone(),
        })
    }

    /// Adds the computed link attributes (`memberOf`, `msDS-memberOfTransitive`) to an entry
    /// read from this store, for a filter or a compare to see them.
    pub fn add_link_attrs(
        &self,
        entry: &mut Entry,
        member_of: bool,
        transitive: bool,
    ) -> Result<()> {
        let links = &self.inner.links;
        if let (true, Some(id)) = (member_of, links.member_of) {
            push_dns(entry, id, self.member_of(&entry.ndn)?);
        }
        if let (true, Some(id)) = (transitive, links.member_of_transitive) {
            push_dns(entry, id, self.member_of_transitive(&entry.ndn)?);
        }
        Ok(())
    }

    /// Which computed link attributes `filter` looks at: (`memberOf`,
    /// `msDS-memberOfTransitive`).
    pub(crate) fn link_attrs_needed(&self, filter: &CompiledFilter) -> (bool, bool) {
        let links = &self.inner.links;
        let schema = &self.inner.schema;
        let looks = |a: Option<AttrId>| a.is_some_and(|a| filter.looks_at(schema, a));
        (looks(links.member_of), looks(links.member_of_transitive))
    }
}

fn sorted(mut v: Vec<(u64, Dn, NormDn)>) -> Vec<(u64, Dn, NormDn)> {
    v.sort_by_key(|(id, _, _)| *id);
    v
}

fn push_dns(entry: &mut Entry, attr: AttrId, dns: Vec<Dn>) {
    if dns.is_empty() {
        return;
    }
    entry.attrs.push(Attribute {
        desc: roster_schema::AttrDesc::plain(attr),
        values: dns
            .into_iter()
            .map(|d| d.to_string().into_bytes())
            .collect(),
    });
}

impl Store {
    /// Inside `tx`, after the caller's own writes: every value of an integrity attribute that
    /// names an old DN of `changes` is removed (new DN `None`: a delete) or replaced by the new
    /// DN (a rename), in every entry holding one, and `touch` is applied to each entry
    /// rewritten (the server sets modifiersName and modifyTimestamp there). A value whose new
    /// DN is given is rewritten only in the entries `rewrites` accepts, and removed from the
    /// others (an heir takes over only the groups the client may give it).
    pub(crate) fn repair_links(
        &self,
        tx: &mut SingleWriterWriteTx<'_>,
        log: &mut crate::changelog::TxLog,
        changes: &HashMap<NormDn, Option<Dn>>,
        rewrites: &dyn Fn(&Entry) -> bool,
        touch: &dyn Fn(&mut Entry),
    ) -> Result<Repaired> {
        let inner: &Inner = &self.inner;
        let schema = &inner.schema;
        // id -> the integrity attributes of it that name a changed DN.
        let mut affected: BTreeMap<u64, Vec<AttrId>> = BTreeMap::new();
        for &attr in &inner.links.integrity {
            let Some(ix) = inner.indexes.get(attr).filter(|ix| ix.flags.equality()) else {
                continue;
            };
            for old in changes.keys() {
                for id in holders(&*tx, schema, ix, old)? {
                    let attrs = affected.entry(id).or_default();
                    if !attrs.contains(&attr) {
                        attrs.push(attr);
                    }
                }
            }
        }
        let mut repaired = Repaired::default();
        for (id, attrs) in affected {
            let Some(record) = tx
                .get(&inner.id2entry, keys::id_bytes(id))
                .context("read entry")?
            else {
                // A key of an entry this transaction deleted.
                continue;
            };
            let old = inner.codec.decode(id, &record)?;
            let rewrite = rewrites(&old);
            let mut new = old.clone();
            let mut changed = false;
            for attr in attrs {
                for a in new.attrs.iter_mut().filter(|a| a.desc.id == attr) {
                    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(a.values.len());
                    let mut seen: HashSet<NormDn> = HashSet::new();
                    for v in a.values.drain(..) {
                        let Some(norm) = normalized(schema, &v) else {
                            kept.push(v);
                            continue;
                        };
                        let (bytes, n) = match changes.get(&norm) {
                            None => (v, norm),
                            Some(None) => {
                                changed = true;
                                continue;
                            }
                            Some(Some(_)) if !rewrite => {
                                changed = true;
                                continue;
                            }
                            Some(Some(new_dn)) => {
                                changed = true;
                                match new_dn.normalize(schema) {
                                    Ok(n) => (new_dn.to_string().into_bytes(), n),
                                    Err(_) => continue,
                                }
                            }
                        };
                        // A rename onto a DN the entry already holds leaves one value.
                        if seen.insert(n) {
                            kept.push(bytes);
                        }
                    }
                    a.values = kept;
                }
            }
            if !changed {
                continue;
            }
            new.attrs.retain(|a| !a.values.is_empty());
            touch(&mut new);
            repaired.entries.push(new.dn.clone());
            self.rewrite(tx, log, id, &record, &old, new)?;
        }
        if !repaired.entries.is_empty() {
            tracing::debug!(entries = repaired.entries.len(), "references rewritten");
        }
        Ok(repaired)
    }
}
