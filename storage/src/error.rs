//! The typed errors of the entry store.
//!
//! Two families share one enum: operation outcomes the server turns into LDAP result codes
//! (`AlreadyExists`, `NoSuchParent`, `NoSuchObject`, `NotAllowedOnNonLeaf`,
//! `InvalidEntry`) and store failures
//! (`Storage`, `Corrupt`, `UnsupportedFormat`, ...) after which the caller should log and exit;
//! [`StoreError::is_fatal`] tells them apart.

use thiserror::Error;

/// An error of the entry store. Messages are lowercase and name what is wrong.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// fjall failed (I/O, a poisoned journal, a corrupt table). Fatal: the process should exit
    /// and let its supervisor restart it.
    #[error("{context}: {source}")]
    Storage {
        context: &'static str,
        #[source]
        source: fjall::Error,
    },
    /// A file-system operation outside fjall failed (creating the store directory, starting the
    /// bulk loader's writer thread).
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An entry with this DN is already stored.
    #[error("entry already exists: {dn}")]
    AlreadyExists { dn: String },
    /// The parent of the entry being added does not exist.
    #[error("parent of {dn} does not exist")]
    NoSuchParent { dn: String },
    /// The entry named by an operation (for example a search base) does not exist.
    #[error("no such entry: {dn}")]
    NoSuchObject { dn: String },
    /// The entry to delete has children (LDAP notAllowedOnNonLeaf).
    #[error("entry has children: {dn}")]
    NotAllowedOnNonLeaf { dn: String },
    /// An entry cannot be stored as given.
    #[error("cannot store {dn}: {reason}")]
    InvalidEntry { dn: String, reason: String },
    /// An index is configured on an attribute type the schema does not define.
    #[error("index configured on unknown attribute type {attr}")]
    UnknownIndexAttribute { attr: String },
    /// Referential integrity is configured on an attribute type the schema does not define.
    #[error("referential integrity configured on unknown attribute type {attr}")]
    UnknownIntegrityAttribute { attr: String },
    /// The store was written by a build with another on-disk format.
    #[error("unsupported on-disk format version {found} (this build reads version {supported}); export with the build that wrote it and load again")]
    UnsupportedFormat { found: u32, supported: u32 },
    /// A stored entry uses an attribute type the current schema does not define.
    #[error("stored entry {id} uses attribute type {oid} that the schema does not define")]
    UndefinedAttribute { id: u64, oid: String },
    /// Stored bytes do not decode.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A search's caller asked it to stop (see `SearchIter::with_stop`).
    #[error("search stopped by its caller")]
    Stopped,
    /// Syncing the journal to disk failed (group commit). The writes waiting on that sync, and
    /// every later one, may not be on disk: fatal, like every failure after which fjall refuses
    /// to go on.
    #[error("journal sync failed: {detail}")]
    JournalSync { detail: String },
    /// A value that must be unique among entries of one kind (see `UniqueSpec`) is held by
    /// another entry.
    #[error("{0}")]
    NotUnique(Box<UniqueConflict>),
    /// A thread panicked while holding the store's write lock.
    #[error("store write lock poisoned by an earlier panic")]
    Poisoned,
}

/// Which entry already holds a value that must be unique.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} ({attr}) is already used by {holder}")]
pub struct UniqueConflict {
    /// What the values are ("user address").
    pub what: String,
    pub attr: String,
    pub value: String,
    /// The DN of the entry holding the value.
    pub holder: String,
}

impl StoreError {
    /// True for failures of the store itself, after which the process should log and exit;
    /// false for outcomes of one operation (an entry that exists, a missing parent, ...).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StoreError::Storage { .. }
                | StoreError::Io { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Poisoned
                | StoreError::JournalSync { .. }
                | StoreError::UnsupportedFormat { .. }
        )
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches a short verb phrase ("open entry store") to a fjall error.
pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, fjall::Error> {
    fn context(self, context: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Storage { context, source })
    }
}
