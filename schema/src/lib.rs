//! The directory's data model, with no I/O and no async: the RFC 4512 schema (attribute types,
//! object classes, matching rules, syntaxes), distinguished names (RFC 4514), entries, and search
//! filters with their evaluation against an entry.
//!
//! Everything that decides whether two values are "the same" for LDAP lives here, so that the
//! storage indexes, the search evaluator and the DN index all agree by construction.

pub mod dn;
pub mod entry;
pub mod error;
pub mod filter;
pub mod model;
pub mod registry;

pub use dn::{Ava, Dn, Rdn};
pub use entry::{AttrDesc, Attribute, Entry};
pub use error::{DnError, SchemaError, ValueError};
pub use filter::{CompiledFilter, Filter, SubstringPieces, TriState};
pub use model::{AttributeType, MatchingRule, ObjectClass, ObjectClassKind, Syntax, Usage};
pub use registry::{AttrId, Schema};
