//! How a store is opened: where it lives, which attribute indexes it keeps, and how durable
//! each commit is.

use std::path::PathBuf;

/// The configuration of an entry store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The directory holding the fjall database; created if missing.
    pub path: PathBuf,
    /// The attribute indexes to keep. A change from the last open rebuilds the affected indexes.
    pub indexes: Vec<IndexSpec>,
    /// What a commit waits for.
    pub durability: Durability,
    /// DN-valued attribute types (names or OIDs) kept referentially intact: a delete removes,
    /// and a rename rewrites, the values naming the changed entries. Each gets an equality
    /// index, as does `member`, from which `memberOf` is computed.
    pub integrity: Vec<String>,
    /// Values no two entries of one class may share; each attribute gets an equality index.
    pub unique: Vec<crate::unique::UniqueSpec>,
    /// Change log records kept (one per entry a write changes), for replication consumers
    /// that were away: a consumer whose cookie is older than the oldest record gets the whole
    /// content again instead of the changes.
    pub change_log: u64,
    /// Entries keep the `entryCSN` they are written with (a replica stores its provider's);
    /// otherwise every write stamps its own.
    pub keep_csn: bool,
    /// Bytes of memory for decoded entries and equality index lists shared by all readers
    /// (0: no cache). See [`crate::DEFAULT_CACHE_SIZE`].
    pub cache_size: u64,
}

/// Change log records kept unless configured.
pub const DEFAULT_CHANGE_LOG: u64 = 100_000;

/// The indexes kept for one attribute type. Indexes are per type: a filter on a supertype
/// (`name`) uses the union of its subtypes' indexes and falls back to the scope when one of them
/// lacks the index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexSpec {
    /// The attribute type's name or OID, as configured.
    pub attr: String,
    /// Keys by normalized value: `(attr=value)`.
    pub equality: bool,
    /// Keys by entry: `(attr=*)`.
    pub presence: bool,
    /// Keys by value start, value end and three-byte grams: `(attr=ab*)`, `(attr=*yz)`,
    /// `(attr=*mid*)`.
    pub substring: bool,
}

/// What a commit waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The change is handed to the operating system: it survives a crash of the process, not a
    /// power loss.
    #[default]
    Buffer,
    /// A write returns once its commit is on disk (`fdatasync` of the journal; writers waiting
    /// at the same time share one, see group commit in the crate's `README.md`).
    SyncData,
}
