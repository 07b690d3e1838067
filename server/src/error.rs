//! Why an operation failed, and the one place where that becomes an LDAP result code and a
//! diagnostic message for the client.

use ldap3_proto::proto::{LdapResult, LdapResultCode};
use roster_schema::DnError;

/// A failed operation, in the server's terms. `ldap_result` is the only mapping to the wire.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no such object")]
    NoSuchObject { matched: Option<String> },
    #[error("invalid DN syntax: {0}")]
    InvalidDn(String),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("{0}")]
    UnwillingToPerform(String),
    #[error("{0}")]
    Protocol(String),
    #[error("critical control {0} is not supported")]
    UnavailableCriticalExtension(String),
    #[error("{0}")]
    AuthMethodNotSupported(String),
    #[error("{0}")]
    UndefinedAttributeType(String),
    #[error("{0}")]
    InappropriateMatching(String),
    #[error("{0}")]
    NoSuchAttribute(String),
    #[error("{0}")]
    InvalidAttributeSyntax(String),
    #[error("{0}")]
    Unavailable(String),
    /// The upstream directory that checks a mapped user's password did not answer; its own
    /// error is logged, never sent to the client.
    #[error("the upstream directory {upstream:?} cannot be reached")]
    UpstreamUnavailable { upstream: String },
    #[error("{0}")]
    InsufficientAccess(String),
    #[error("{0}")]
    Busy(String),
    /// A sync search's consumer fell behind the change log (RFC 4533 e-syncRefreshRequired):
    /// it must refresh again.
    #[error("the change log no longer holds the changes this consumer needs")]
    SyncRefreshRequired,
    #[error("{0}")]
    ConstraintViolation(String),
    #[error("{0}")]
    StrongerAuthRequired(String),
    #[error("{0}")]
    AttributeOrValueExists(String),
    #[error("{0}")]
    ObjectClassModsProhibited(String),
    #[error("{0}")]
    NotAllowedOnNonLeaf(String),
    /// The operation cannot run in the connection's present state (StartTLS with operations
    /// outstanding or TLS already in use).
    #[error("{0}")]
    Operations(String),
    #[error("{0}")]
    InappropriateAuthentication(String),
    /// The operation needs a protected connection (a password over plain LDAP).
    #[error("{0}")]
    ConfidentialityRequired(String),
    /// The entry fails the schema (RFC 4512 rules as slapd applies them).
    #[error("{0}")]
    Entry(#[from] roster_schema::EntryError),
    #[error("size limit exceeded")]
    SizeLimitExceeded,
    #[error("time limit exceeded")]
    TimeLimitExceeded,
    /// The entry store failed; the message is for the log, the client sees a generic text.
    #[error("entry store: {0}")]
    Store(#[from] roster_storage::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A write to a read-only replica: the client is referred to the provider.
    #[error("this server is a read-only replica; writes go to {url}")]
    Referral { url: String },
}

impl From<DnError> for OpError {
    fn from(e: DnError) -> Self {
        OpError::InvalidDn(e.to_string())
    }
}

/// The single mapping from a failure to the LDAP result a client receives.
pub fn ldap_result(err: &OpError) -> LdapResult {
    use LdapResultCode as C;
    let (code, message, matched) = match err {
        OpError::NoSuchObject { matched } => (C::NoSuchObject, String::new(), matched.clone()),
        OpError::InvalidDn(m) => (C::InvalidDNSyntax, format!("invalid DN: {m}"), None),
        OpError::InvalidCredentials => (C::InvalidCredentials, String::new(), None),
        OpError::UnwillingToPerform(m) => (C::UnwillingToPerform, m.clone(), None),
        OpError::Protocol(m) => (C::ProtocolError, m.clone(), None),
        OpError::UnavailableCriticalExtension(oid) => (
            C::UnavailableCriticalExtension,
            format!("critical control {oid} is not supported"),
            None,
        ),
        OpError::AuthMethodNotSupported(m) => (C::AuthMethodNotSupported, m.clone(), None),
        OpError::UndefinedAttributeType(m) => (C::UndefinedAttributeType, m.clone(), None),
        OpError::InappropriateMatching(m) => (C::InappropriateMatching, m.clone(), None),
        OpError::NoSuchAttribute(m) => (C::NoSuchAttribute, m.clone(), None),
        OpError::InvalidAttributeSyntax(m) => (C::InvalidAttributeSyntax, m.clone(), None),
        OpError::Unavailable(m) => (C::Unavailable, m.clone(), None),
        OpError::UpstreamUnavailable { upstream } => (
            C::Unavailable,
            format!("the upstream directory {upstream:?} cannot be reached to check this password"),
            None,
        ),
        OpError::InsufficientAccess(m) => (C::InsufficentAccessRights, m.clone(), None),
        OpError::Busy(m) => (C::Busy, m.clone(), None),
        OpError::SyncRefreshRequired => (
            C::EsyncRefreshRequired,
            "the change log no longer holds the changes since this cookie: refresh again".into(),
            None,
        ),
        OpError::ConstraintViolation(m) => (C::ConstraintViolation, m.clone(), None),
        OpError::StrongerAuthRequired(m) => (C::StrongerAuthRequired, m.clone(), None),
        OpError::AttributeOrValueExists(m) => (C::AttributeOrValueExists, m.clone(), None),
        OpError::ObjectClassModsProhibited(m) => (C::ObjectClassModsProhibited, m.clone(), None),
        OpError::NotAllowedOnNonLeaf(m) => (C::NotAllowedOnNonLeaf, m.clone(), None),
        OpError::Operations(m) => (C::OperationsError, m.clone(), None),
        OpError::InappropriateAuthentication(m) => {
            (C::InappropriateAuthentication, m.clone(), None)
        }
        OpError::ConfidentialityRequired(m) => (C::ConfidentialityRequired, m.clone(), None),
        OpError::Entry(e) => (entry_code(e), e.to_string(), None),
        OpError::SizeLimitExceeded => (C::SizeLimitExceeded, String::new(), None),
        OpError::TimeLimitExceeded => (C::TimeLimitExceeded, String::new(), None),
        OpError::Store(roster_storage::StoreError::AlreadyExists { .. }) => {
            (C::EntryAlreadyExists, String::new(), None)
        }
        OpError::Store(
            roster_storage::StoreError::NoSuchObject { .. }
            | roster_storage::StoreError::NoSuchParent { .. },
        ) => (C::NoSuchObject, String::new(), None),
        OpError::Store(roster_storage::StoreError::NotAllowedOnNonLeaf { .. }) => {
            (C::NotAllowedOnNonLeaf, String::new(), None)
        }
        OpError::Store(e @ roster_storage::StoreError::NotUnique(_)) => {
            (C::ConstraintViolation, e.to_string(), None)
        }
        OpError::Store(_) => (
            C::Other,
            "internal error in the entry store".to_string(),
            None,
        ),
        OpError::Internal(_) => (C::Other, "internal error".to_string(), None),
        OpError::Referral { url } => {
            return LdapResult {
                code: C::Referral,
                matcheddn: String::new(),
                message: "this server is a read-only replica: writes go to its provider"
                    .to_string(),
                referral: vec![url.clone()],
            }
        }
    };
    LdapResult {
        code,
        matcheddn: matched.unwrap_or_default(),
        message,
        referral: Vec::new(),
    }
}

/// A successful result with no message.
pub fn success() -> LdapResult {
    LdapResult {
        code: LdapResultCode::Success,
        matcheddn: String::new(),
        message: String::new(),
        referral: Vec::new(),
    }
}

/// A result with a code and message that is not a failure of the operation (compareTrue, ...).
pub fn result(code: LdapResultCode, message: impl Into<String>) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.into(),
        referral: Vec::new(),
    }
}

/// The result code for a schema violation, as slapd gives it.
fn entry_code(e: &roster_schema::EntryError) -> LdapResultCode {
    use LdapResultCode as C;
    match e.result_code() {
        17 => C::UndefinedAttributeType,
        19 => C::ConstraintViolation,
        20 => C::AttributeOrValueExists,
        21 => C::InvalidAttributeSyntax,
        34 => C::InvalidDNSyntax,
        64 => C::NamingViolation,
        _ => C::ObjectClassViolation,
    }
}
