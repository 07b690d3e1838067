//! Values no two entries of one kind may share (the idea of slapd's `unique` overlay): a
//! [`UniqueSpec`] names attribute types and an object class; among the entries of that class,
//! a value of any of the types (normalized by its equality rule) may belong to one entry only.
//! The mail model uses it for addresses: no two users share one, no two groups share one, and
//! a user and a group may.
//!
//! The check runs inside the write transaction, under the writer lock, against the equality
//! indexes of the types (which the store keeps for them, configured or not), so two clients
//! adding the same address at once cannot both succeed.

use crate::error::{Context, Result, StoreError, UniqueConflict};
use crate::keys;
use crate::store::{Inner, Store};
use fjall::Readable;
use roster_schema::{AttrId, Entry, Schema};

/// One set of attribute types whose values are unique among the entries of one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueSpec {
    /// What the values are, for error messages ("user address").
    pub name: String,
    /// Attribute types (names or OIDs) sharing one value space.
    pub attrs: Vec<String>,
    /// The object class of the entries that take part.
    pub class: String,
}

/// A [`UniqueSpec`] resolved against the schema.
#[derive(Debug, Clone)]
pub(crate) struct UniqueSpace {
    name: String,
    attrs: Vec<AttrId>,
    class: String,
}

impl UniqueSpace {
    pub(crate) fn resolve(schema: &Schema, spec: &UniqueSpec) -> Result<UniqueSpace> {
        let mut attrs = Vec::new();
        for a in &spec.attrs {
            let id = schema
                .attr_id(a)
                .ok_or_else(|| StoreError::UnknownIndexAttribute { attr: a.clone() })?;
            attrs.push(id);
        }
        if schema.class_id(&spec.class).is_none() {
            return Err(StoreError::InvalidEntry {
                dn: String::new(),
                reason: format!("unique values: unknown object class {}", spec.class),
            });
        }
        Ok(UniqueSpace {
            name: spec.name.clone(),
            attrs,
            class: spec.class.clone(),
        })
    }

    pub(crate) fn attrs(&self) -> &[AttrId] {
        &self.attrs
    }
}

impl Store {
    /// Inside `tx`: fails with [`StoreError::NotUnique`] if `entry` (stored, or about to be,
    /// as `own`) holds a value another entry of the same kind already holds. Only values
    /// `before` (the entry's previous state) did not hold are checked: a value the entry kept
    /// was unique when it was written.
    pub(crate) fn check_unique(
        &self,
        tx: &impl Readable,
        entry: &Entry,
        own: Option<u64>,
        before: Option<&Entry>,
    ) -> Result<()> {
        let inner: &Inner = &self.inner;
        let schema = &inner.schema;
        for space in &inner.unique {
            if !entry.has_object_class(schema, &space.class) {
                continue;
            }
            let was_in = before.is_some_and(|b| b.has_object_class(schema, &space.class));
            for &attr in &space.attrs {
                for value in entry.values_of(attr) {
                    let kept = was_in
                        && before.is_some_and(|b| {
                            space.attrs.iter().any(|&a| {
                                b.values_of(a)
                                    .any(|v| same_value(schema, a, v, attr, value))
                            })
                        });
                    if kept {
                        continue;
                    }
                    self.check_value(tx, space, entry, own, attr, value)?;
                }
            }
        }
        Ok(())
    }

    fn check_value(
        &self,
        tx: &impl Readable,
        space: &UniqueSpace,
        entry: &Entry,
        own: Option<u64>,
        attr: AttrId,
        value: &[u8],
    ) -> Result<()> {
        let inner: &Inner = &self.inner;
        let schema = &inner.schema;
        for &other_attr in &space.attrs {
            let Some(ix) = inner.indexes.get(other_attr) else {
                continue;
            };
            let Ok(Some(norm)) = schema.normalize_eq(other_attr, value) else {
                continue;
            };
            let prefix = keys::value_prefix(keys::EQUALITY, &norm);
            for guard in tx.prefix(&ix.keyspace, &prefix) {
                let key = guard.key().context("read unique index")?;
                let id = keys::id_from_suffix(&key)?;
                if Some(id) == own {
                    continue;
                }
                let Some(record) = tx
                    .get(&inner.id2entry, keys::id_bytes(id))
                    .context("read entry")?
                else {
                    continue;
                };
                let holder = inner.codec.decode(id, &record)?;
                if holder.ndn == entry.ndn || !holder.has_object_class(schema, &space.class) {
                    continue;
                }
                return Err(StoreError::NotUnique(Box::new(UniqueConflict {
                    what: space.name.clone(),
                    attr: schema.attr_name(attr).to_string(),
                    value: String::from_utf8_lossy(value).into_owned(),
                    holder: holder.dn.to_string(),
                })));
            }
        }
        Ok(())
    }
}

/// True if `a` (a value of `a_attr`) and `b` (of `b_attr`) are the same value.
fn same_value(schema: &Schema, a_attr: AttrId, a: &[u8], b_attr: AttrId, b: &[u8]) -> bool {
    match (
        schema.normalize_eq(a_attr, a).ok().flatten(),
        schema.normalize_eq(b_attr, b).ok().flatten(),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}
