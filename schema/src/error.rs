//! Typed errors of the schema crate. Messages are lowercase and say what to fix.

use thiserror::Error;

/// A schema definition (from a built-in file, a `.schema` file or `cn=schema` LDIF) was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("{kind} {name}: {message}")]
    Definition { kind: &'static str, name: String, message: String },
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
    InvalidSyntax { attr: String, index: usize, syntax: String, message: String },
    #[error("{0}")]
    Invalid(String),
}
