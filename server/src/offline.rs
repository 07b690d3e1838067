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
}

/// What a load did.
#[derive(Debug)]
pub struct LoadSummary {
    pub entries: u64,
    pub seconds: f64,
    /// Of `seconds`, the time the store took to sort and write its tables at the end.
    pub finish_seconds: f64,
}

/// Loads LDIF from `path` (`-` for standard input). The store writes its tables only once the
/// whole input has been read and checked, so a bad entry stops the load, naming its line, with
/// nothing of it stored.
pub fn load(dir: &Directory, path: &Path, progress: bool) -> Result<LoadSummary, OfflineError> {
    let (input, total): (Box<dyn Read + Send>, u64) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = std::fs::File::open(path).map_err(|source| OfflineError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let bar = if progress && total > 0 {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {percent:>3}% {msg} [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let counted = CountingReader {
        inner: input,
        bar: bar.clone(),
    };
    let mut reader = LdifReader::new(BufReader::with_capacity(1 << 20, counted));
    let started = Instant::now();
    let stamp = crate::time::generalized_now();
    let creator = dir.settings.root_dn.clone();
    let mut loader = dir.store.bulk_loader()?;
    let mut entries = 0u64;
    // Two stages on two threads: parsing and schema-checking entries, and indexing them into
    // the loader. Batches keep the hand-off cheap; the bounded channel keeps memory flat.
    std::thread::scope(|scope| -> Result<(), OfflineError> {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<Result<Vec<(usize, Entry)>, OfflineError>>(8);
        let stamp = &stamp;
        let creator = creator.as_deref();
        scope.spawn(move || {
            let mut batch = Vec::with_capacity(LOAD_BATCH);
            loop {
                let rec = match reader.next_record() {
                    Ok(Some(rec)) => rec,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                let line = rec.line;
                let dn = rec.dn.clone();
                match build_entry(dir, rec, stamp, creator) {
                    Ok(entry) => batch.push((line, entry)),
                    Err(message) => {
                        let _ = tx.send(Err(OfflineError::Entry { line, dn, message }));
                        return;
                    }
                }
                if batch.len() == LOAD_BATCH && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return;
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch));
            }
        });
        for batch in rx {
            for (line, entry) in batch? {
                // A naming context's own entry is the root of its tree and has no parent to check.
                let added = if dir.suffixes.contains(&entry.ndn) {
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
        Ok(())
    })?;
    bar.set_message(format!("{entries} entries; writing tables"));
    let finishing = Instant::now();
    loader.finish()?;
    bar.finish_and_clear();
    Ok(LoadSummary {
        entries,
        seconds: started.elapsed().as_secs_f64(),
        finish_seconds: finishing.elapsed().as_secs_f64(),
    })
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

/// Turns an LDIF record into a schema-checked entry with the operational attributes a new
/// entry gets (as slapadd adds them): structuralObjectClass, entryUUID, creator and times.
pub fn build_entry(
    dir: &Directory,
    rec: ldif::LdifRecord,
    stamp: &str,
    creator: Option<&str>,
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
            dir.suffix_names.join("; ")
        ));
    }
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
