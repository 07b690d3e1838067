//! Typed errors of the schema crate. Messages are lowercase and say what to fix.

use thiserror::Error;

/// A schema definition (from a built-in file, a `.schema` file or `cn=schema` LDIF) was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("{kind} {name}: {message}")]
    Definition {
        kind: &'static str,
        name: String,
        message: String,
    },
}

/// A DN string could not be parsed (RFC 4514) or normalized.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnError {
    #[error("invalid DN syntax at offset {offset}: {message}")]
    Syntax { offset: usize, message: String },
    #[error("undefined attribute type {0} in DN")]
    UndefinedAttribute(String),
    #[error("invalid value for {attr} in DN: {message}")]
    InvalidValue { attr: String, message: String },
}

/// A value does not conform to its attribute's syntax or cannot be normalized by its matching rule.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{attr}: value #{index} invalid per syntax {syntax}: {message}")]
    InvalidSyntax {
        attr: String,
        index: usize,
        syntax: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// An entry breaks the schema (RFC 4512 section 3.3 and 4.1). The messages follow slapd's
/// wording where slapd has one, so that administrators see the familiar text; the LDAP result
/// code each maps to is given by [`EntryError::result_code`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    #[error("no objectClass attribute")]
    NoObjectClass,
    #[error("invalid DN: {0}")]
    Dn(#[from] DnError),
    #[error("{0}: attribute type undefined")]
    UndefinedAttribute(String),
    #[error("{attr}: attribute description is malformed")]
    MalformedDescription { attr: String },
    #[error("unrecognized objectClass '{0}'")]
    UnknownObjectClass(String),
    #[error("no structural object class provided")]
    NoStructuralClass,
    #[error("invalid structural object class chain ({first}/{second})")]
    MultipleStructuralClasses { first: String, second: String },
    #[error("structural object class modification from '{from}' to '{to}' not allowed")]
    StructuralClassChange { from: String, to: String },
    #[error("instantiation of abstract objectClass '{0}' not allowed")]
    AbstractClass(String),
    #[error("object class '{class}' requires attribute '{attr}'")]
    MissingRequired { class: String, attr: String },
    #[error("attribute '{attr}' not allowed")]
    NotAllowed { attr: String },
    #[error("{attr}: multiple values provided")]
    SingleValued { attr: String },
    #[error("attribute '{attr}' provided more than once")]
    DuplicateAttribute { attr: String },
    #[error("{attr}: value #{index} provided more than once")]
    DuplicateValue { attr: String, index: usize },
    #[error("{attr}: no values given")]
    NoValues { attr: String },
    /// `message` says why the value is invalid; the display keeps slapd's exact text.
    #[error("{attr}: value #{index} invalid per syntax")]
    InvalidValue {
        attr: String,
        index: usize,
        message: String,
    },
    #[error("naming attribute '{attr}' is not present in entry")]
    NamingAttributeMissing { attr: String },
}

impl EntryError {
    /// The LDAP result code slapd answers with for this error (RFC 4511 appendix A).
    pub fn result_code(&self) -> u32 {
        match self {
            EntryError::Dn(_) => 34,
            EntryError::UndefinedAttribute(_) | EntryError::MalformedDescription { .. } => 17,
            EntryError::DuplicateValue { .. } | EntryError::DuplicateAttribute { .. } => 20,
            EntryError::SingleValued { .. } => 19,
            EntryError::InvalidValue { .. } => 21,
            EntryError::NamingAttributeMissing { .. } => 64,
            _ => 65,
        }
    }
}
