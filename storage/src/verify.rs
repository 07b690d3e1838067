//! `verify`: recomputes every DN, parent and index key from the stored entries and compares
//! them with the keyspaces, reporting missing and extra keys.
//!
//! Keys are compared by 128-bit fingerprints of (key, value) so that memory stays at 16 bytes
//! per key; examples are rendered in a second pass only when something differs.

use crate::codec;
use crate::error::{Context, Result};
use crate::index::KeyBuilder;
use crate::keys;
use crate::store::{Inner, Store};
use fjall::{Readable, SingleWriterTxKeyspace, Snapshot};
use rustc_hash::FxHashSet;
use std::fmt;

/// How many example keys a report keeps per kind of difference.
const EXAMPLES: usize = 5;

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// Entries whose record does not decode; their keys are not expected.
    pub undecodable: u64,
    /// The first undecodable entries, with the reason.
    pub undecodable_examples: Vec<String>,
    /// One check per keyspace derived from the entries.
    pub keyspaces: Vec<KeyspaceCheck>,
}

/// The comparison of one keyspace with the keys its entries call for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyspaceCheck {
    pub name: String,
    /// Keys the entries call for.
    pub expected: u64,
    /// Keys stored.
    pub found: u64,
    /// Keys called for but not stored.
    pub missing: u64,
    /// Keys stored but not called for.
    pub extra: u64,
    pub missing_examples: Vec<String>,
    pub extra_examples: Vec<String>,
}

impl VerifyReport {
    /// True when every keyspace matches its entries and every entry decodes.
    pub fn is_clean(&self) -> bool {
        self.undecodable == 0
            && self
                .keyspaces
                .iter()
                .all(|k| k.missing == 0 && k.extra == 0)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} entries, {} undecodable",
            self.entries, self.undecodable
        )?;
        for e in &self.undecodable_examples {
            writeln!(f, "  undecodable: {e}")?;
        }
        for k in &self.keyspaces {
            writeln!(
                f,
                "{}: {} expected, {} found, {} missing, {} extra",
                k.name, k.expected, k.found, k.missing, k.extra
            )?;
            for e in &k.missing_examples {
                writeln!(f, "  missing: {e}")?;
            }
            for e in &k.extra_examples {
                writeln!(f, "  extra: {e}")?;
            }
        }
        Ok(())
    }
}

fn fingerprint(key: &[u8], value: &[u8]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(value);
    h.digest128()
}

/// The keyspaces checked: `dn2id`, `children`, then each index.
fn targets(inner: &Inner) -> Vec<(String, &SingleWriterTxKeyspace)> {
    let mut t = vec![
        ("dn2id".to_string(), &inner.dn2id),
        ("children".to_string(), &inner.children),
    ];
    for ix in &inner.indexes.list {
        t.push((
            format!("index {} ({})", ix.name, ix.flags.describe()),
            &ix.keyspace,
        ));
    }
    t
}

/// Receives (target keyspace, key, value) triples.
type PairSink<'a> = dyn FnMut(usize, &[u8], &[u8]) + 'a;

/// Calls `sink(target, key, value)` for every key an entry calls for.
fn entry_pairs(
    inner: &Inner,
    builder: &mut KeyBuilder,
    id: u64,
    record: &[u8],
    sink: &mut PairSink<'_>,
) -> Result<()> {
    let header = codec::header(id, record)?;
    let entry = inner.codec.decode(id, record)?;
    let id_key = keys::id_bytes(id);
    sink(0, header.dn_key, &id_key);
    sink(1, &keys::child_key(header.parent, header.dn_key), &id_key);
    let mut key = Vec::new();
    builder.entry_keys(
        &inner.schema,
        &inner.indexes,
        None,
        &entry,
        &mut |slot, k| {
            key.clear();
            key.extend_from_slice(k);
            key.extend_from_slice(&id_key);
            sink(slot + 2, &key, &[]);
        },
    );
    Ok(())
}

pub(crate) fn verify(store: &Store) -> Result<VerifyReport> {
    let inner = &*store.inner;
    let snapshot = inner.db.read_tx();
    let targets = targets(inner);
    let mut expected: Vec<Vec<u128>> = targets.iter().map(|_| Vec::new()).collect();
    let mut report = VerifyReport::default();
    let mut builder = KeyBuilder::default();
    for guard in snapshot.iter(&inner.id2entry) {
        let (k, v) = guard.into_inner().context("scan entries")?;
        report.entries += 1;
        let id = match keys::id_from_value(&k) {
            Ok(id) => id,
            Err(e) => {
                report.undecodable += 1;
                push_example(
                    &mut report.undecodable_examples,
                    format!("key {}: {e}", keys::render(&k)),
                );
                continue;
            }
        };
        let outcome = entry_pairs(inner, &mut builder, id, &v, &mut |t, key, value| {
            if let Some(list) = expected.get_mut(t) {
                list.push(fingerprint(key, value));
            }
        });
        if let Err(e) = outcome {
            report.undecodable += 1;
            push_example(&mut report.undecodable_examples, format!("entry {id}: {e}"));
        }
    }
    for (t, ((name, keyspace), mut want)) in targets.iter().zip(expected).enumerate() {
        want.sort_unstable();
        want.dedup();
        let mut have = Vec::new();
        for guard in snapshot.iter(*keyspace) {
            let (k, v) = guard.into_inner().context("scan keyspace")?;
            have.push(fingerprint(&k, &v));
        }
        have.sort_unstable();
        let (missing, extra) = differences(&want, &have);
        let mut check = KeyspaceCheck {
            name: name.clone(),
            expected: want.len() as u64,
            found: have.len() as u64,
            missing: missing.len() as u64,
            extra: extra.len() as u64,
            ..KeyspaceCheck::default()
        };
        if !extra.is_empty() {
            check.extra_examples = extra_examples(&snapshot, keyspace, &extra)?;
        }
        if !missing.is_empty() {
            check.missing_examples = missing_examples(inner, &snapshot, t, &missing)?;
        }
        report.keyspaces.push(check);
    }
    Ok(report)
}

/// Fingerprints in `want` but not in `have`, and in `have` but not in `want` (both sorted).
fn differences(want: &[u128], have: &[u128]) -> (Vec<u128>, Vec<u128>) {
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (want.get(i), have.get(j)) {
            (Some(w), Some(h)) if w == h => {
                i += 1;
                j += 1;
            }
            (Some(w), Some(h)) if w < h => {
                missing.push(*w);
                i += 1;
            }
            (Some(_), Some(h)) => {
                extra.push(*h);
                j += 1;
            }
            (Some(w), None) => {
                missing.push(*w);
                i += 1;
            }
            (None, Some(h)) => {
                // A key stored twice is one key to fjall; only distinct extras count.
                extra.push(*h);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (missing, extra)
}

fn push_example(list: &mut Vec<String>, example: String) {
    if list.len() < EXAMPLES {
        list.push(example);
    }
}

fn extra_examples(
    snapshot: &Snapshot,
    keyspace: &SingleWriterTxKeyspace,
    extra: &[u128],
) -> Result<Vec<String>> {
    let wanted: FxHashSet<u128> = extra.iter().take(EXAMPLES).copied().collect();
    let mut out = Vec::new();
    for guard in snapshot.iter(keyspace) {
        let (k, v) = guard.into_inner().context("scan keyspace")?;
        if wanted.contains(&fingerprint(&k, &v)) {
            push_example(&mut out, keys::render(&k));
        }
        if out.len() >= wanted.len() {
            break;
        }
    }
    Ok(out)
}

fn missing_examples(
    inner: &Inner,
    snapshot: &Snapshot,
    target: usize,
    missing: &[u128],
) -> Result<Vec<String>> {
    let wanted: FxHashSet<u128> = missing.iter().take(EXAMPLES).copied().collect();
    let mut out = Vec::new();
    let mut builder = KeyBuilder::default();
    for guard in snapshot.iter(&inner.id2entry) {
        let (k, v) = guard.into_inner().context("scan entries")?;
        let Ok(id) = keys::id_from_value(&k) else {
            continue;
        };
        // Entries that do not decode were reported already.
        let _ = entry_pairs(inner, &mut builder, id, &v, &mut |t, key, value| {
            if t == target && wanted.contains(&fingerprint(key, value)) && out.len() < EXAMPLES {
                out.push(format!("{} (entry {id})", keys::render(key)));
            }
        });
        if out.len() >= wanted.len() {
            break;
        }
    }
    Ok(out)
}
