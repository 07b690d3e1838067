//! Who a connection is bound as: what a bind produces and what access rules, operations and
//! the session ask. A type only, so that the access rules (which evaluate it) and the
//! operations (which set it) both depend on it and not on each other.

use roster_schema::NormDn;

/// Who a connection is bound as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Identity {
    #[default]
    Anonymous,
    /// The configured administrator; `dn` is as the client wrote it.
    Root { dn: String },
    /// An entry that authenticated with its own password.
    Entry { dn: String, ndn: NormDn },
}

impl Identity {
    pub fn is_root(&self) -> bool {
        matches!(self, Identity::Root { .. })
    }

    /// The bound DN as the client wrote it; empty for anonymous.
    pub fn dn(&self) -> &str {
        match self {
            Identity::Anonymous => "",
            Identity::Root { dn } | Identity::Entry { dn, .. } => dn,
        }
    }
}
