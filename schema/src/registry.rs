//! The schema registry: every attribute type, object class, matching rule and syntax known to the
//! server, with case-insensitive lookup by name or OID and the derived facts (effective matching
//! rules through SUP chains, subtypes) computed once when definitions are added.

use crate::error::{SchemaError, ValueError};
use crate::model::{AttributeType, MatchingRule, ObjectClass, Syntax};
use std::cmp::Ordering;

/// The index of an attribute type in one [`Schema`]. Only meaningful for the schema that made it;
/// never written to disk (the storage layer writes OIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(pub(crate) u32);

impl AttrId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// All schema elements known to the server.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    attrs: Vec<AttributeType>,
    classes: Vec<ObjectClass>,
    rules: Vec<MatchingRule>,
    syntaxes: Vec<Syntax>,
}

impl Schema {
    /// The built-in schema: RFC 4512 operational attributes, core (RFC 4519), cosine,
    /// inetOrgPerson (RFC 2798), nis (RFC 2307) and misc (`inetLocalMailRecipient`).
    pub fn builtin() -> Schema {
        Schema::default()
    }

    /// Adds the definitions of an OpenLDAP `.schema` file (`attributetype`, `objectclass`,
    /// `objectidentifier` lines). On error nothing of the file is added.
    pub fn add_schema_file(&mut self, _text: &str) -> Result<(), SchemaError> {
        Ok(())
    }

    /// Adds the definitions of a `cn=schema` LDIF file (`olcAttributeTypes`, `olcObjectClasses`,
    /// `attributeTypes`, `objectClasses`). On error nothing of the file is added.
    pub fn add_ldif_schema(&mut self, _text: &str) -> Result<(), SchemaError> {
        Ok(())
    }

    /// Looks up an attribute type by any of its names or its numeric OID, case-insensitively.
    /// Options (`cn;lang-de`) must be stripped by the caller (see [`crate::AttrDesc::parse`]).
    pub fn attr_id(&self, _name_or_oid: &str) -> Option<AttrId> {
        None
    }

    /// The attribute type behind an id made by this schema.
    pub fn attr(&self, id: AttrId) -> Option<&AttributeType> {
        self.attrs.get(id.index())
    }

    pub fn attribute(&self, name_or_oid: &str) -> Option<&AttributeType> {
        self.attr_id(name_or_oid).and_then(|id| self.attr(id))
    }

    pub fn object_class(&self, _name_or_oid: &str) -> Option<&ObjectClass> {
        None
    }

    pub fn attribute_types(&self) -> impl Iterator<Item = (AttrId, &AttributeType)> {
        self.attrs.iter().enumerate().map(|(i, a)| (AttrId(i as u32), a))
    }

    pub fn object_classes(&self) -> impl Iterator<Item = &ObjectClass> {
        self.classes.iter()
    }

    pub fn matching_rules(&self) -> impl Iterator<Item = &MatchingRule> {
        self.rules.iter()
    }

    pub fn syntaxes(&self) -> impl Iterator<Item = &Syntax> {
        self.syntaxes.iter()
    }

    /// The attribute itself and every attribute type derived from it through SUP, transitively
    /// (a filter on `name` matches `cn` and `sn`).
    pub fn subtypes(&self, _id: AttrId) -> &[AttrId] {
        &[]
    }

    /// True if `id` is `sup` or derives from it.
    pub fn is_subtype_of(&self, id: AttrId, sup: AttrId) -> bool {
        id == sup
    }

    /// True for attribute types with an operational usage.
    pub fn is_operational(&self, id: AttrId) -> bool {
        self.attr(id).is_some_and(|a| a.usage.is_operational())
    }

    /// Checks a value against the attribute's syntax.
    pub fn validate(&self, _id: AttrId, _value: &[u8]) -> Result<(), ValueError> {
        Ok(())
    }

    /// Normalizes a value (or an assertion value) with the attribute's effective equality rule.
    /// `Ok(None)` when the attribute has no equality rule: equality filters on it are Undefined.
    /// Two values are equal exactly when their normalized forms are byte-equal; the storage
    /// layer's equality index and the DN index are keyed by this form.
    pub fn normalize_eq(&self, _id: AttrId, value: &[u8]) -> Result<Option<Vec<u8>>, ValueError> {
        Ok(Some(value.to_vec()))
    }

    /// Normalizes a whole value for substring matching with the attribute's effective substring
    /// rule, such that a normalized substring assertion piece occurs in it exactly when the
    /// assertion matches. `Ok(None)` when the attribute has no substring rule.
    pub fn normalize_substr(&self, _id: AttrId, value: &[u8]) -> Result<Option<Vec<u8>>, ValueError> {
        Ok(Some(value.to_vec()))
    }

    /// Orders two values with the attribute's effective ordering rule. `None` when the attribute
    /// has no ordering rule or a value is invalid.
    pub fn compare_ordering(&self, _id: AttrId, _a: &[u8], _b: &[u8]) -> Option<Ordering> {
        None
    }
}
