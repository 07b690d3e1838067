//! Entries as the server handles them: a DN and attributes whose types are resolved against the
//! schema, with options kept (`cn;lang-de`) and values as bytes.

use crate::dn::{Dn, NormDn};
use crate::registry::{AttrId, Schema};

/// An attribute description (RFC 4512 section 2.5): a type and its options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrDesc {
    pub id: AttrId,
    /// Options in the case the client wrote them, sorted case-insensitively.
    pub options: Vec<String>,
}

impl AttrDesc {
    /// Splits `type;opt1;opt2` and resolves the type. `None` if the type is not in the schema
    /// or the description is malformed.
    pub fn parse(_schema: &Schema, _desc: &str) -> Option<AttrDesc> {
        None
    }

    /// The description as returned to clients: the type's first name and the options.
    pub fn to_string(&self, schema: &Schema) -> String {
        let mut s = schema.attr(self.id).map(|a| a.name().to_string()).unwrap_or_default();
        for o in &self.options {
            s.push(';');
            s.push_str(o);
        }
        s
    }
}

/// One attribute of an entry: a description and its values, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub desc: AttrDesc,
    pub values: Vec<Vec<u8>>,
}

/// An entry: its DN as written, its normalized DN, and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    pub ndn: NormDn,
    pub attrs: Vec<Attribute>,
}

impl Entry {
    /// All values of attributes of exactly this type (any options).
    pub fn values_of(&self, id: AttrId) -> impl Iterator<Item = &Vec<u8>> {
        self.attrs.iter().filter(move |a| a.desc.id == id).flat_map(|a| a.values.iter())
    }
}
