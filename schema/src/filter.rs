//! Search filters (RFC 4511 section 4.5.1): the abstract form, the RFC 4515 string form, and a
//! compiled form with attribute types resolved and assertion values normalized once, evaluated
//! against entries with three-valued logic.

use crate::entry::Entry;
use crate::error::ValueError;
use crate::registry::{AttrId, Schema};

/// A filter as received from a client, nothing resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equality { attr: String, value: Vec<u8> },
    Substrings { attr: String, initial: Option<Vec<u8>>, any: Vec<Vec<u8>>, final_: Option<Vec<u8>> },
    GreaterOrEqual { attr: String, value: Vec<u8> },
    LessOrEqual { attr: String, value: Vec<u8> },
    Present { attr: String },
    Approx { attr: String, value: Vec<u8> },
    Extensible { rule: Option<String>, attr: Option<String>, value: Vec<u8>, dn_attributes: bool },
}

/// The three truth values of RFC 4511 filter evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriState {
    True,
    False,
    Undefined,
}

/// Normalized substring assertion pieces (each normalized with the substring rule).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubstringPieces {
    pub initial: Option<Vec<u8>>,
    pub any: Vec<Vec<u8>>,
    pub final_: Option<Vec<u8>>,
}

/// A filter with attributes resolved and assertion values normalized. Parts that can never be
/// True or False (an undefined attribute type, an attribute without the needed matching rule, an
/// assertion value invalid for the syntax) compile to `Undefined`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledFilter {
    And(Vec<CompiledFilter>),
    Or(Vec<CompiledFilter>),
    Not(Box<CompiledFilter>),
    Undefined,
    /// `key` is the assertion value normalized with the attribute's equality rule.
    Equality { attr: AttrId, key: Vec<u8> },
    Substrings { attr: AttrId, pieces: SubstringPieces },
    GreaterOrEqual { attr: AttrId, value: Vec<u8> },
    LessOrEqual { attr: AttrId, value: Vec<u8> },
    Present { attr: AttrId },
    Approx { attr: AttrId, value: Vec<u8> },
    /// An extensible match, evaluated by the named (or the attribute's equality) matching rule.
    Extensible { rule: Option<String>, attr: Option<AttrId>, value: Vec<u8>, dn_attributes: bool },
}

impl Filter {
    /// Parses the RFC 4515 string form, including `\XX` escapes, attribute options and numeric OIDs.
    pub fn parse(_s: &str) -> Result<Filter, ValueError> {
        Err(ValueError::Invalid("filter parsing not available".into()))
    }

    pub fn compile(&self, _schema: &Schema) -> CompiledFilter {
        CompiledFilter::Undefined
    }
}

impl CompiledFilter {
    pub fn evaluate(&self, _schema: &Schema, _entry: &Entry) -> TriState {
        TriState::Undefined
    }
}
