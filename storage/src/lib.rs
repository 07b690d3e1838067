//! The embedded entry store of Roster: LDAP entries, the DN tree and attribute indexes kept in
//! a fjall LSM database.
//!
//! What it is: synchronous storage with one consistent snapshot per [`Reader`], single-entry
//! writes in one transaction each, an offline [`BulkLoader`], index-planned searches that
//! return exact results lazily in entry-id order, and [`Store::verify`].
//!
//! What it is not: it knows the schema crate (to normalize values and evaluate filters) but
//! nothing of BER, the LDAP wire protocol, sockets or async runtimes. Calls may block on I/O
//! or on a write stall inside fjall: async callers run them on blocking threads. Errors for
//! which [`StoreError::is_fatal`] is true mean the store cannot go on; log them and exit.
//!
//! The on-disk layout (keyspaces and key formats) is described in `README.md` and in the
//! `keys`, `codec` and `index` modules.

mod basecache;
mod bulk;
mod cache;
#[cfg(test)]
mod cache_tests;
mod changelog;
mod codec;
mod commit;
mod config;
mod csn;
mod error;
mod index;
mod keys;
mod links;
mod reader;
mod search;
mod store;
mod unique;
mod verify;
mod writes;

pub use bulk::{BulkLoader, LoadStats};
pub use cache::{CacheStats, DEFAULT_CACHE_SIZE};
pub use changelog::{Change, ChangeKind, LogState};
pub use commit::SyncPoint;
pub use config::{Durability, IndexSpec, StoreConfig, DEFAULT_CHANGE_LOG};
pub use csn::{csn_micros, is_csn, CSN_LEN};
pub use error::{Result, StoreError, UniqueConflict};
pub use links::{Repaired, MAX_NESTED};
pub use reader::{Reader, WalkIter};
pub use search::{CandidateSource, IndexUse, Scope, SearchIter, SearchPlan, SharedEntry, MAX_IDS};
pub use store::{EntryId, Inherit, Store, TakesHeir, CLOSE_FLUSH_WAIT, FORMAT_VERSION};
pub use unique::UniqueSpec;
pub use verify::{KeyspaceCheck, VerifyReport};
