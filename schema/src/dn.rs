//! Distinguished names (RFC 4514): parsing with escapes, hex values and multi-valued RDNs, and the
//! normalized form by which the server compares and indexes them.

use crate::error::DnError;
use crate::registry::Schema;
use std::fmt;

/// One attribute value assertion of an RDN, as written (type name not resolved, value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: Vec<u8>,
}

/// A relative distinguished name: one or more AVAs joined with `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn {
    pub avas: Vec<Ava>,
}

/// A DN as the client wrote it, parsed. `rdns[0]` is the leftmost (most specific) RDN;
/// the root DSE's DN has no RDNs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dn {
    pub rdns: Vec<Rdn>,
}

impl Dn {
    /// Parses an RFC 4514 string (also accepting the RFC 2253/1779 leniencies OpenLDAP accepts:
    /// spaces around separators and `;` as separator).
    pub fn parse(_s: &str) -> Result<Dn, DnError> {
        Ok(Dn::default())
    }

    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The DN without its leftmost RDN; `None` for the root.
    pub fn parent(&self) -> Option<Dn> {
        self.rdns.get(1..).map(|r| Dn { rdns: r.to_vec() })
    }

    /// Normalizes with the schema: attribute types to their canonical lowercase name, values with
    /// each type's equality rule, AVAs of a multi-valued RDN sorted.
    pub fn normalize(&self, _schema: &Schema) -> Result<NormDn, DnError> {
        Ok(NormDn::default())
    }
}

impl fmt::Display for Dn {
    /// RFC 4514 string form, escaping only what must be escaped.
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// A normalized DN: each RDN in its normalized RFC 4514 string form (for example `uid=jdoe` or
/// `cn=a b+sn=x`), leftmost first. Two DNs name the same entry exactly when their normalized forms
/// are equal. Its `Display` is the normalized DN string OpenLDAP would show as `entryDN`'s
/// normalized value, and the equality-normalized value of DN-syntax attributes (`member`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NormDn {
    pub rdns: Vec<String>,
}

impl NormDn {
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    pub fn parent(&self) -> Option<NormDn> {
        self.rdns.get(1..).map(|r| NormDn { rdns: r.to_vec() })
    }

    /// True if `self` is `base` or lies below it.
    pub fn is_within(&self, base: &NormDn) -> bool {
        self.rdns.len() >= base.rdns.len() && self.rdns.ends_with(&base.rdns)
    }
}

impl fmt::Display for NormDn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rdns.join(","))
    }
}
