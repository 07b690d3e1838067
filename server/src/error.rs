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
    #[error("{0}")]
    InsufficientAccess(String),
    #[error("{0}")]
    Busy(String),
    #[error("size limit exceeded")]
    SizeLimitExceeded,
    #[error("time limit exceeded")]
    TimeLimitExceeded,
    /// The entry store failed; the message is for the log, the client sees a generic text.
    #[error("entry store: {0}")]
    Store(#[from] roster_storage::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
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
        OpError::InsufficientAccess(m) => (C::InsufficentAccessRights, m.clone(), None),
        OpError::Busy(m) => (C::Busy, m.clone(), None),
        OpError::SizeLimitExceeded => (C::SizeLimitExceeded, String::new(), None),
        OpError::TimeLimitExceeded => (C::TimeLimitExceeded, String::new(), None),
        OpError::Store(_) => (
            C::Other,
            "internal error in the entry store".to_string(),
            None,
        ),
        OpError::Internal(_) => (C::Other, "internal error".to_string(), None),
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
