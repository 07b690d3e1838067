//! The LDAP operations. Each is a plain function from (directory, session state, request) to
//! responses; none of them knows about sockets, so each can be tested without a network.
//! Storage calls block, so the session runs these functions on blocking threads.

pub mod attrs;
pub mod bind;
pub mod compare;
pub mod dse;
pub mod extended;
pub mod filter;
pub mod search;

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
