//! The directory's data model, with no I/O and no async: the RFC 4512 schema (attribute types,
//! object classes, matching rules, syntaxes), distinguished names (RFC 4514), entries, and search
//! filters with their evaluation against an entry.
//!
//! Everything that decides whether two values are "the same" for LDAP lives here, so that the
//! storage indexes, the search evaluator and the DN index all agree by construction. The
//! behaviour follows a stock OpenLDAP 2.5 slapd wherever the two could differ; the crate README
//! lists the deliberate differences.

mod approx;
mod check;
pub mod dn;
pub mod entry;
pub mod error;
pub mod filter;
pub mod model;
pub mod names;
mod parse;
pub mod registry;
pub mod render;
mod rules;
pub mod time;

pub use dn::{Ava, Dn, NormDn, Rdn};
pub use entry::{AttrDesc, Attribute, Entry};
pub use error::{DnError, EntryError, SchemaError, ValueError};
pub use filter::{CompiledFilter, Filter, ItemType, SubstringPieces, TriState};
pub use model::{AttributeType, MatchingRule, ObjectClass, ObjectClassKind, Syntax, Usage};
pub use registry::{AttrId, ClassId, Schema, SubstrPiece};
pub use render::SubschemaValues;
