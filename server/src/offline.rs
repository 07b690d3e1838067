//! The offline commands, run with the daemon stopped (the store allows one process at a time):
//! `load` (LDIF into the store, like slapadd), `dump` (the store as LDIF, like slapcat) and
//! `verify` (every index checked against the entries).

use crate::directory::Directory;
use crate::ldif::{self, LdifError, LdifReader};
use indicatif::{ProgressBar, ProgressStyle};
use roster_schema::{Entry, Schema};
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Ldif(#[from] LdifError),
    #[error("line {line}: entry {dn:?}: {message}")]
    Entry {
        line: usize,
        dn: String,
        message: String,
    },
    /// The store refused an entry (it exists already, its parent is missing); the store's
    /// message names the DN.
    #[error("line {line}: {source}")]
    Add {
        line: usize,
        source: roster_storage::StoreError,
    },
    #[error("entry store: {0}")]
    Store(#[from] roster_storage::StoreError),
    #[error("write LDIF: {0}")]
    Write(#[from] std::io::Error),
    #[error("the LDIF reader stopped unexpectedly")]
    Panicked,
}

/// What a load did.
#[derive(Debug)]
pub struct LoadSummary {
    pub entries: u64,
    /// Invalid values left out (`--skip-invalid-values`), and the entries they were in.
    pub dropped_values: u64,
    pub entries_with_dropped_values: u64,
    pub seconds: f64,
    /// Of `seconds`, the time the store took to sort and write its tables at the end.
    pub finish_seconds: f64,
}

/// How a load treats values invalid per their attribute's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidValues {
    /// The first one stops the load (as ldapadd would refuse the entry).
    #[default]
    Refuse,
    /// Each is left out and named on `report`; the rest of its entry is loaded.
    Skip,
}

/// One value of the input that its attribute's syntax (or matching rule) refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    pub line: usize,
    pub dn: String,
    pub attr: String,
    pub message: String,
}

impl std::fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: entry {:?}: {}",
            self.line, self.dn, self.message
        )
    }
}

/// Loads LDIF from `path` (`-` for standard input). The store writes its tables only once the
/// whole input has been read and checked, so a bad entry stops the load, naming its line, with
/// nothing of it stored. With [`InvalidValues::Skip`], values invalid per their syntax are
/// left out instead, each written to `report`.
pub fn load(
    dir: &Directory,
    path: &Path,
    progress: bool,
    invalid: InvalidValues,
    report: &mut (dyn Write + Send),
) -> Result<LoadSummary, OfflineError> {
    let (mut reader, bar) = open_ldif(path, progress)?;
    let started = Instant::now();
    let stamp = crate::time::generalized_now();
    let creator = dir.settings.root_dn.clone();
    let mut loader = dir.store.bulk_loader()?;
    let mut entries = 0u64;
    let mut dropped_values = 0u64;
    let mut entries_with_dropped_values = 0u64;
    // Two stages on two threads: parsing and schema-checking entries, and indexing them into
    // the loader. Batches keep the hand-off cheap; the bounded channel keeps memory flat.
    std::thread::scope(|scope| -> Result<(), OfflineError> {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<Result<Vec<(usize, Entry)>, OfflineError>>(8);
        let stamp = &stamp;
        let creator = creator.as_deref();
        let dropped = scope.spawn(move || -> Result<(u64, u64), std::io::Error> {
            let mut batch = Vec::with_capacity(LOAD_BATCH);
            let store = dir.store.reader();
            let mut addresses = crate::mail::AddressBook::default();
            let mut file_domains = FileDomains::new();
            let (mut values, mut in_entries) = (0u64, 0u64);
            loop {
                let mut rec = match reader.next_record() {
                    Ok(Some(rec)) => rec,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return Ok((values, in_entries));
                    }
                };
                let line = rec.line;
                let dn = rec.dn.clone();
                if invalid == InvalidValues::Skip {
                    let bad = take_invalid_values(&dir.schema, &mut rec);
                    if !bad.is_empty() {
                        values += bad.len() as u64;
                        in_entries += 1;
                        for b in &bad {
                            writeln!(report, "{b}: value left out")?;
                        }
                    }
                }
                let built =
                    build_entry(dir, rec, stamp, creator, &mut file_domains).and_then(|entry| {
                        addresses.claim(dir, &store, &entry)?;
                        Ok(entry)
                    });
                match built {
                    Ok(entry) => batch.push((line, entry)),
                    Err(message) => {
                        let _ = tx.send(Err(OfflineError::Entry { line, dn, message }));
                        return Ok((values, in_entries));
                    }
                }
                if batch.len() == LOAD_BATCH && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return Ok((values, in_entries));
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch));
            }
            Ok((values, in_entries))
        });
        for batch in rx {
            for (line, entry) in batch? {
                // A naming context's own entry is the root of its tree and has no parent to check.
                let added = if dir.is_context(&entry.ndn) {
                    loader.add_root(entry)
                } else {
                    loader.add(entry)
                };
                added.map_err(|source| OfflineError::Add { line, source })?;
                entries += 1;
                if entries.is_multiple_of(4096) {
                    bar.set_message(format!("{entries} entries"));
                }
            }
        }
        match dropped.join() {
            Ok(Ok((v, e))) => {
                dropped_values = v;
                entries_with_dropped_values = e;
                Ok(())
            }
            Ok(Err(e)) => Err(OfflineError::Write(e)),
            Err(_) => Err(OfflineError::Panicked),
        }
    })?;
    bar.set_message(format!("{entries} entries; writing tables"));
    let finishing = Instant::now();
    loader.finish()?;
    bar.finish_and_clear();
    Ok(LoadSummary {
        entries,
        dropped_values,
        entries_with_dropped_values,
        seconds: started.elapsed().as_secs_f64(),
        finish_seconds: finishing.elapsed().as_secs_f64(),
    })
}

/// What `rosterd load --report` found.
#[derive(Debug, Default)]
pub struct CheckSummary {
    pub entries: u64,
    pub invalid_values: u64,
    pub entries_with_invalid_values: u64,
    /// Entries that cannot be loaded even without their invalid values.
    pub bad_entries: u64,
}

/// Reads the whole of `path` as a load would, stores nothing, and writes every problem to
/// `report`, one a line with its line number: each value invalid per its syntax, and each
/// entry that would be refused even without those values (schema, a DN already in the file
/// or the store, a parent neither in the file before it nor in the store).
pub fn check(
    dir: &Directory,
    path: &Path,
    progress: bool,
    report: &mut dyn Write,
) -> Result<CheckSummary, OfflineError> {
    let (mut reader, bar) = open_ldif(path, progress)?;
    let stamp = crate::time::generalized_now();
    let creator = dir.settings.root_dn.as_deref();
    let store = dir.store.reader();
    let mut seen: std::collections::HashMap<roster_schema::dn::NormDn, usize> =
        std::collections::HashMap::new();
    let mut sum = CheckSummary::default();
    let mut addresses = crate::mail::AddressBook::default();
    let mut file_domains = FileDomains::new();
    loop {
        let mut rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) => {
                // A syntax error ends the records: what follows cannot be told apart.
                writeln!(report, "{e}")?;
                sum.bad_entries += 1;
                break;
            }
        };
        sum.entries += 1;
        let (line, dn) = (rec.line, rec.dn.clone());
        let bad = take_invalid_values(&dir.schema, &mut rec);
        if !bad.is_empty() {
            sum.invalid_values += bad.len() as u64;
            sum.entries_with_invalid_values += 1;
            for b in &bad {
                writeln!(report, "{b}")?;
            }
        }
        let problem = match build_entry(dir, rec, &stamp, creator, &mut file_domains) {
            Err(message) => Some(message),
            Ok(entry) => {
                if let Some(first) = seen.get(&entry.ndn) {
                    Some(format!("the same DN as the entry at line {first}"))
                } else if let Err(m) = addresses.claim(dir, &store, &entry) {
                    Some(m)
                } else if store.entry_by_dn(&entry.ndn)?.is_some() {
                    Some("already in the store".to_string())
                } else {
                    let parent = entry.ndn.parent();
                    let rooted = dir.is_context(&entry.ndn);
                    let parent_known = rooted
                        || parent.as_ref().is_some_and(|p| seen.contains_key(p))
                        || match &parent {
                            Some(p) => store.entry_by_dn(p)?.is_some(),
                            None => false,
                        };
                    seen.insert(entry.ndn, line);
                    (!parent_known).then(|| {
                        "its parent entry is neither earlier in the file nor in the store"
                            .to_string()
                    })
                }
            }
        };
        if let Some(message) = problem {
            sum.bad_entries += 1;
            let after = if bad.is_empty() {
                ""
            } else {
                " (without its invalid values)"
            };
            writeln!(report, "line {line}: entry {dn:?}{after}: {message}")?;
        }
    }
    bar.finish_and_clear();
    report.flush()?;
    Ok(sum)
}

/// Removes from `rec` the values that their attribute's syntax or equality rule refuses, and
/// returns them. Unknown attribute types are left for the entry check to name.
fn take_invalid_values(schema: &Schema, rec: &mut ldif::LdifRecord) -> Vec<InvalidValue> {
    let mut bad = Vec::new();
    let mut keep = vec![true; rec.attrs.len()];
    for (i, ((name, value), keep)) in rec.attrs.iter().zip(keep.iter_mut()).enumerate() {
        let Some(desc) = roster_schema::AttrDesc::parse(schema, name) else {
            continue;
        };
        let problem = match schema.validate(desc.id, value) {
            Err(e) => Some(e),
            Ok(()) => schema.normalize_eq(desc.id, value).err(),
        };
        let Some(problem) = problem else { continue };
        *keep = false;
        let shown = shown_value(value);
        let message = match problem {
            roster_schema::ValueError::InvalidSyntax {
                attr,
                syntax,
                message,
                ..
            } => format!("{attr}: value {shown} is invalid per syntax {syntax}: {message}"),
            other => format!("{name}: value {shown}: {other}"),
        };
        bad.push(InvalidValue {
            line: rec.lines.get(i).copied().unwrap_or(rec.line),
            dn: rec.dn.clone(),
            attr: name.clone(),
            message,
        });
    }
    if !bad.is_empty() {
        let mut flags = keep.iter();
        rec.attrs.retain(|_| flags.next().copied().unwrap_or(true));
        let mut flags = keep.iter();
        rec.lines.retain(|_| flags.next().copied().unwrap_or(true));
    }
    bad
}

/// A value as a report shows it: quoted, escaped, cut after 60 characters.
fn shown_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut cut: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        cut.push_str("...");
    }
    format!("{cut:?}")
}

/// The LDIF reader of a load or a check, counting bytes for its progress bar.
type Input = LdifReader<BufReader<CountingReader<Box<dyn Read + Send>>>>;

/// Opens `path` (`-`: standard input) with a progress bar, hidden unless `progress` and the
/// input's size is known.
fn open_ldif(path: &Path, progress: bool) -> Result<(Input, ProgressBar), OfflineError> {
    let (input, total) = open_input(path)?;
    let bar = progress_bar(progress, total);
    let counted = CountingReader {
        inner: input,
        bar: bar.clone(),
    };
    let reader = LdifReader::new(BufReader::with_capacity(1 << 20, counted));
    Ok((reader, bar))
}

fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, u64), OfflineError> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin()), 0));
    }
    let f = std::fs::File::open(path).map_err(|source| OfflineError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((Box::new(f), len))
}

fn progress_bar(progress: bool, total: u64) -> ProgressBar {
    if !progress || total == 0 {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} [{elapsed_precise}, eta {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Entries handed from the parsing thread to the indexing thread at a time.
const LOAD_BATCH: usize = 256;

/// Counts bytes read for the progress bar.
struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// The `associatedDomain` names of naming contexts whose entries a load has read, by context.
pub type FileDomains = std::collections::HashMap<roster_schema::dn::NormDn, Vec<String>>;

/// Turns an LDIF record into a schema-checked entry with the operational attributes a new
/// entry gets (as slapadd adds them): structuralObjectClass, entryUUID, creator and times.
/// `file_domains` collects the `associatedDomain` names of the naming contexts' entries read
/// so far, for the mail model's address rules on the entries after them.
pub fn build_entry(
    dir: &Directory,
    rec: ldif::LdifRecord,
    stamp: &str,
    creator: Option<&str>,
    file_domains: &mut FileDomains,
) -> Result<Entry, String> {
    let schema = &dir.schema;
    // `from_parts` parses and normalizes the DN and merges repeated attributes (aliases too).
    let parts = rec
        .attrs
        .into_iter()
        .map(|(name, value)| (name, vec![value]))
        .collect();
    let mut entry = Entry::from_parts(schema, &rec.dn, parts).map_err(|e| e.to_string())?;
    if dir.suffix_of(&entry.ndn).is_none() {
        return Err(format!(
            "not within any naming context (suffixes: {})",
            dir.naming.current().names.join("; ")
        ));
    }
    if dir.is_context(&entry.ndn) {
        if let Some(id) = schema.attr_id("associatedDomain") {
            let names = entry
                .values_of(id)
                .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
                .collect();
            file_domains.insert(entry.ndn.clone(), names);
        }
    }
    let more = dir
        .suffix_of(&entry.ndn)
        .and_then(|s| file_domains.get(&s).cloned())
        .unwrap_or_default();
    crate::mail::check_write_with(dir, &dir.store.reader(), &mut entry, None, &more)
        .map_err(|e| crate::error::ldap_result(&e).message)?;
    crate::ops::add::stamp_new_entry(schema, &mut entry, creator, stamp);
    schema.check_entry(&entry).map_err(|e| e.to_string())?;
    Ok(entry)
}

/// Writes every entry as LDIF, each parent before its children.
pub fn dump(dir: &Directory, out: &mut dyn Write) -> Result<u64, OfflineError> {
    let mut n = 0u64;
    writeln!(out, "version: 1")?;
    writeln!(out)?;
    for item in dir.store.dump_iter()? {
        let (_, entry) = item?;
        write_entry(&dir.schema, &entry, out)?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

pub fn write_entry(schema: &Schema, entry: &Entry, out: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    ldif::write_line(&mut buf, "dn", entry.dn.to_string().as_bytes())?;
    for a in &entry.attrs {
        let name = a.desc.to_string(schema);
        for v in &a.values {
            ldif::write_line(&mut buf, &name, v)?;
        }
    }
    buf.push(b'\n');
    out.write_all(&buf)
}
