//! The change log: one record per entry each committed write changed, in commit order, kept
//! for the last `StoreConfig::change_log` records, in the same transaction as the change. It
//! is what a replication provider reads to tell a consumer that was away what changed since
//! its cookie (a CSN), and to stream changes to consumers that stay connected.
//!
//! Keyspace `changes`: sequence number (u64, big-endian, from 1) → CSN (40 bytes), kind (1
//! byte), entry id (u64), entryUUID as stored (length byte + bytes), the entry's DN as written
//! before the change (the rest). `meta` keeps `log_head` (last sequence number + the context
//! CSN, the CSN of the last commit) and `log_tail` (first sequence number still kept + the
//! floor: every change with a CSN after it is in the log).

use crate::csn::{CsnClock, CSN_LEN};
use crate::error::{Context, Result, StoreError};
use crate::keys;
use crate::reader::Reader;
use crate::store::{EntryId, Inner};
use crate::writes::WriteReads;
use fjall::{Readable, SingleWriterTxKeyspace};
use roster_schema::{AttrDesc, AttrId, Attribute, Entry};

pub(crate) const META_LOG_HEAD: &[u8] = b"log_head";
pub(crate) const META_LOG_TAIL: &[u8] = b"log_tail";

/// What a write did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    /// Its attributes changed (a modify, or a rewrite of its references by another write).
    Modify,
    /// Its DN changed (and maybe its attributes): descendants moved with it.
    Rename,
    Delete,
}

impl ChangeKind {
    fn byte(self) -> u8 {
        match self {
            ChangeKind::Add => b'a',
            ChangeKind::Modify => b'm',
            ChangeKind::Rename => b'r',
            ChangeKind::Delete => b'd',
        }
    }

    fn from_byte(b: u8) -> Option<ChangeKind> {
        Some(match b {
            b'a' => ChangeKind::Add,
            b'm' => ChangeKind::Modify,
            b'r' => ChangeKind::Rename,
            b'd' => ChangeKind::Delete,
            _ => return None,
        })
    }
}

/// One record of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    /// The CSN of the commit (every record of one write has the same).
    pub csn: String,
    pub kind: ChangeKind,
    pub id: EntryId,
    /// The entry's entryUUID as stored (empty when it has none).
    pub uuid: String,
    /// The entry's DN as written before the change (for an add, its DN).
    pub dn: String,
}

/// Where the log stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogState {
    /// The last record's sequence number (0: none yet).
    pub last_seq: u64,
    /// The first record still kept.
    pub first_seq: u64,
    /// The CSN of the last commit (empty for a store never written).
    pub context_csn: String,
    /// Every change with a CSN after this one is in the log (empty: every change is).
    pub floor: String,
}

/// The records a write adds, collected while its transaction is built.
pub(crate) struct TxLog {
    pub(crate) csn: String,
    pub(crate) records: Vec<(ChangeKind, u64, String, String)>,
}

impl TxLog {
    pub(crate) fn new(csn: String) -> TxLog {
        TxLog {
            csn,
            records: Vec::new(),
        }
    }

    /// Notes a change of entry `id`; `dn` is its DN before the change.
    pub(crate) fn note(
        &mut self,
        kind: ChangeKind,
        id: u64,
        entry: &Entry,
        dn: String,
        uuid: Option<AttrId>,
    ) {
        let uuid = uuid
            .and_then(|u| entry.values_of(u).next())
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
            .to_string();
        self.records.push((kind, id, uuid, dn));
    }
}

/// The state writers share under the writer lock: the CSN clock and the log's ends.
#[derive(Debug)]
pub(crate) struct WriterState {
    pub(crate) clock: CsnClock,
    /// The sequence number of the next record.
    pub(crate) next_seq: u64,
    pub(crate) first_seq: u64,
    /// Records kept.
    pub(crate) max_records: u64,
}

impl WriterState {
    /// Seeds the clock and the log's ends from `meta`.
    pub(crate) fn open(meta: &SingleWriterTxKeyspace, max_records: u64) -> Result<WriterState> {
        let head = meta.get(META_LOG_HEAD).context("read log head")?;
        let (last_seq, context) = match &head {
            Some(v) => split_mark(v, "log_head")?,
            None => (0, String::new()),
        };
        let tail = meta.get(META_LOG_TAIL).context("read log tail")?;
        let first_seq = match &tail {
            Some(v) => split_mark(v, "log_tail")?.0,
            None => 1,
        };
        Ok(WriterState {
            clock: CsnClock::after((!context.is_empty()).then_some(context.as_str())),
            next_seq: last_seq + 1,
            first_seq,
            max_records,
        })
    }
}

/// (sequence number, CSN or empty) from a `log_head` / `log_tail` value.
fn split_mark(v: &[u8], what: &str) -> Result<(u64, String)> {
    let corrupt = || StoreError::corrupt("meta", format!("{what} of {} bytes", v.len()));
    let (seq, csn) = (
        v.get(..8).ok_or_else(corrupt)?,
        v.get(8..).ok_or_else(corrupt)?,
    );
    let seq = keys::id_from_value(seq)?;
    let csn = std::str::from_utf8(csn).map_err(|_| corrupt())?.to_string();
    Ok((seq, csn))
}

fn mark(seq: u64, csn: &str) -> Vec<u8> {
    let mut v = keys::id_bytes(seq).to_vec();
    v.extend_from_slice(csn.as_bytes());
    v
}

fn encode(csn: &str, kind: ChangeKind, id: u64, uuid: &str, dn: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(CSN_LEN + 10 + uuid.len() + dn.len());
    v.extend_from_slice(csn.as_bytes());
    v.push(kind.byte());
    v.extend_from_slice(&keys::id_bytes(id));
    v.push(u8::try_from(uuid.len()).unwrap_or(0));
    if uuid.len() <= usize::from(u8::MAX) {
        v.extend_from_slice(uuid.as_bytes());
    }
    v.extend_from_slice(dn.as_bytes());
    v
}

fn decode(seq: u64, v: &[u8]) -> Result<Change> {
    let corrupt = |why: &str| StoreError::corrupt("changes", format!("record {seq}: {why}"));
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| corrupt("not UTF-8"))
    };
    let csn = text(v.get(..CSN_LEN).ok_or_else(|| corrupt("short"))?)?;
    let kind = v
        .get(CSN_LEN)
        .copied()
        .and_then(ChangeKind::from_byte)
        .ok_or_else(|| corrupt("unknown kind"))?;
    let id = keys::id_from_value(
        v.get(CSN_LEN + 1..CSN_LEN + 9)
            .ok_or_else(|| corrupt("short"))?,
    )?;
    let ulen = usize::from(*v.get(CSN_LEN + 9).ok_or_else(|| corrupt("short"))?);
    let start = CSN_LEN + 10;
    let uuid = text(v.get(start..start + ulen).ok_or_else(|| corrupt("short"))?)?;
    let dn = text(v.get(start + ulen..).ok_or_else(|| corrupt("short"))?)?;
    Ok(Change {
        seq,
        csn,
        kind,
        id: EntryId(id),
        uuid,
        dn,
    })
}

impl Inner {
    /// Sets `entryCSN` of an entry a write stores: the write's CSN, unless the store keeps the
    /// CSNs it is given (a replica) and the entry has one.
    pub(crate) fn stamp(&self, entry: &mut Entry, csn: &str) {
        let Some(attr) = self.entry_csn else {
            return;
        };
        if let Some(a) = entry.attrs.iter_mut().find(|a| a.desc.id == attr) {
            if self.keep_csn && !a.values.is_empty() {
                return;
            }
            a.values = vec![csn.as_bytes().to_vec()];
            return;
        }
        entry.attrs.push(Attribute {
            desc: AttrDesc::plain(attr),
            values: vec![csn.as_bytes().to_vec()],
        });
    }

    /// Inside `tx`: writes the records of `log`, the new head, and drops the oldest records
    /// beyond the configured number, raising the floor. Returns the state to keep once the
    /// transaction commits.
    pub(crate) fn write_log(
        &self,
        tx: &mut impl WriteReads,
        state: &WriterState,
        log: &TxLog,
    ) -> Result<(u64, u64)> {
        let mut seq = state.next_seq;
        for (kind, id, uuid, dn) in &log.records {
            tx.insert(
                &self.changes,
                keys::id_bytes(seq),
                encode(&log.csn, *kind, *id, uuid, dn),
            );
            seq += 1;
        }
        let last = seq - 1;
        tx.insert(&self.meta, META_LOG_HEAD, mark(last, &log.csn));
        let mut first = state.first_seq;
        let mut floor = None;
        while first <= last && last - first + 1 > state.max_records {
            if first >= state.next_seq {
                // A record of this very write (a log kept shorter than one write's records):
                // a batch's reads do not see it, and its CSN is the write's.
                floor = Some(log.csn.clone());
            } else {
                let old = tx
                    .reads()
                    .get(&self.changes, keys::id_bytes(first))
                    .context("read change log")?;
                if let Some(v) = old {
                    floor = Some(decode(first, &v)?.csn);
                }
            }
            tx.remove(&self.changes, keys::id_bytes(first));
            first += 1;
        }
        if let Some(f) = floor {
            tx.insert(&self.meta, META_LOG_TAIL, mark(first, &f));
        }
        Ok((seq, first))
    }
}

impl Reader {
    /// Where the change log stands in this snapshot.
    pub fn log_state(&self) -> Result<LogState> {
        let meta = &self.inner.meta;
        let (last_seq, context_csn) = match self
            .snapshot
            .get(meta, META_LOG_HEAD)
            .context("read log head")?
        {
            Some(v) => split_mark(&v, "log_head")?,
            None => (0, String::new()),
        };
        let (first_seq, floor) = match self
            .snapshot
            .get(meta, META_LOG_TAIL)
            .context("read log tail")?
        {
            Some(v) => split_mark(&v, "log_tail")?,
            None => (1, String::new()),
        };
        Ok(LogState {
            last_seq,
            first_seq,
            context_csn,
            floor,
        })
    }

    /// The log record with this sequence number, if it is still kept.
    pub fn change(&self, seq: u64) -> Result<Option<Change>> {
        match self
            .snapshot
            .get(&self.inner.changes, keys::id_bytes(seq))
            .context("read change log")?
        {
            Some(v) => Ok(Some(decode(seq, &v)?)),
            None => Ok(None),
        }
    }

    /// The records from `from` (a sequence number) to the last, in order; `None` when records
    /// from there on are no longer kept.
    pub fn changes_from(&self, from: u64) -> Result<Option<Vec<Change>>> {
        let state = self.log_state()?;
        if from < state.first_seq {
            return Ok(None);
        }
        let mut out = Vec::new();
        for guard in self
            .snapshot
            .range(&self.inner.changes, keys::id_bytes(from)..)
        {
            let (k, v) = guard.into_inner().context("read change log")?;
            let seq = keys::id_from_value(&k)?;
            out.push(decode(seq, &v)?);
        }
        Ok(Some(out))
    }

    /// The sequence number of the first record after `csn`: `None` when the log cannot tell
    /// every change after it (it is older than the floor, or later than anything this store
    /// wrote, as a cookie from another server can be).
    pub fn seq_after(&self, csn: &str) -> Result<Option<u64>> {
        let state = self.log_state()?;
        if csn < state.floor.as_str() || csn > state.context_csn.as_str() {
            return Ok(None);
        }
        // The first record whose CSN is after `csn`: records are in CSN order.
        let (mut lo, mut hi) = (state.first_seq, state.last_seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.change(mid)? {
                Some(c) if c.csn.as_str() <= csn => lo = mid + 1,
                Some(_) => hi = mid,
                // Trimmed meanwhile: not in this snapshot's view, treat as before `csn`.
                None => lo = mid + 1,
            }
        }
        Ok(Some(lo))
    }
}
