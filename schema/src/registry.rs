//! The schema registry: every attribute type, object class, matching rule and syntax known to the
//! server, with case-insensitive lookup by name or OID and the derived facts (effective matching
//! rules through SUP chains, subtypes, superclass chains) computed once when definitions are added.

use crate::error::{SchemaError, ValueError};
use crate::model::{AttributeType, MatchingRule, ObjectClass, ObjectClassKind, Syntax};
use crate::parse::{self, Item};
use crate::rules::{self, RuleImpl, RuleKind, RuleSpec, SyntaxImpl, Use};
use std::cmp::Ordering;
use std::collections::HashMap;

/// The index of an attribute type in one [`Schema`]. Only meaningful for the schema that made it;
/// never written to disk (the storage layer writes OIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(pub(crate) u32);

impl AttrId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The index of an object class in one [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub(crate) u32);

impl ClassId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Derived facts about one attribute type.
#[derive(Debug, Clone)]
pub(crate) struct AttrInfo {
    pub equality: Option<usize>,
    pub ordering: Option<usize>,
    pub substr: Option<usize>,
    /// The rule `~=` uses: the equality rule's approximate rule, if it has one.
    pub approx: Option<usize>,
    pub syntax: Option<usize>,
    pub syntax_impl: SyntaxImpl,
    pub sup: Option<AttrId>,
    /// Itself and every type derived from it, transitively.
    pub subtypes: Vec<AttrId>,
    /// Not published in `cn=Subschema` (slapd's `SLAP_AT_HIDE`).
    pub hidden: bool,
    /// `objectClass` and `structuralObjectClass`: matched with slapd's objectSubClassMatch.
    pub class_valued: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ClassInfo {
    /// Itself and every superclass, transitively, nearest first.
    pub supers: Vec<ClassId>,
    /// Required attributes, including inherited ones.
    pub must: Vec<AttrId>,
    /// Allowed attributes, including inherited ones (MUST not repeated).
    pub may: Vec<AttrId>,
}

#[derive(Debug, Clone)]
pub(crate) struct RuleInfo {
    pub spec: RuleSpec,
    pub hidden: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct SyntaxInfo {
    pub imp: SyntaxImpl,
    pub hidden: bool,
}

/// All schema elements known to the server.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    attrs: Vec<AttributeType>,
    attr_info: Vec<AttrInfo>,
    attr_index: HashMap<String, AttrId>,
    classes: Vec<ObjectClass>,
    class_info: Vec<ClassInfo>,
    class_index: HashMap<String, ClassId>,
    rules: Vec<MatchingRule>,
    rule_info: Vec<RuleInfo>,
    rule_index: HashMap<String, usize>,
    syntaxes: Vec<Syntax>,
    syntax_info: Vec<SyntaxInfo>,
    syntax_index: HashMap<String, usize>,
    /// `objectidentifier` macros: lowercased name to numeric OID.
    macros: HashMap<String, String>,
    /// Attribute types that filter evaluation treats specially, found once by OID.
    pub(crate) special: SpecialAttrs,
}

/// Ids of the operational attributes slapd computes rather than stores.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpecialAttrs {
    pub entry_dn: Option<AttrId>,
    pub subschema_subentry: Option<AttrId>,
    pub has_subordinates: Option<AttrId>,
}

const BUILTIN_FILES: &[(&str, &str, bool)] = &[
    (
        "syntaxes.schema",
        include_str!("builtin/syntaxes.schema"),
        false,
    ),
    (
        "hidden_syntaxes.schema",
        include_str!("builtin/hidden_syntaxes.schema"),
        true,
    ),
    (
        "matchingrules.schema",
        include_str!("builtin/matchingrules.schema"),
        false,
    ),
    ("hidden.schema", include_str!("builtin/hidden.schema"), true),
    (
        "system.schema",
        include_str!("builtin/system.schema"),
        false,
    ),
    ("core.schema", include_str!("builtin/core.schema"), false),
    (
        "cosine.schema",
        include_str!("builtin/cosine.schema"),
        false,
    ),
    (
        "inetorgperson.schema",
        include_str!("builtin/inetorgperson.schema"),
        false,
    ),
    ("nis.schema", include_str!("builtin/nis.schema"), false),
    ("misc.schema", include_str!("builtin/misc.schema"), false),
    ("roster.schema", include_str!("../roster.schema"), false),
];

/// The well-known OIDs the registry gives special behaviour.
pub(crate) mod oids {
    pub const OBJECT_CLASS: &str = "2.5.4.0";
    pub const STRUCTURAL_OBJECT_CLASS: &str = "2.5.21.9";
    pub const ENTRY_DN: &str = "1.3.6.1.1.20";
    pub const SUBSCHEMA_SUBENTRY: &str = "2.5.18.10";
    pub const HAS_SUBORDINATES: &str = "2.5.18.9";
    pub const EXTENSIBLE_OBJECT: &str = "1.3.6.1.4.1.1466.101.120.111";
}

fn key(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn is_numeric_oid(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

impl Schema {
    /// The built-in schema: RFC 4512 operational attributes, core (RFC 4519), cosine,
    /// inetOrgPerson (RFC 2798), nis (RFC 2307) and misc (`inetLocalMailRecipient`).
    pub fn builtin() -> Schema {
        let mut s = Schema::default();
        for (name, text, hidden) in BUILTIN_FILES {
            let loaded = parse::schema_file(text).and_then(|items| s.add_items(items, *hidden));
            // The built-in files are fixed at compile time and covered by tests, so a failure
            // here is a programming error; keep what loaded rather than take the process down.
            if let Err(e) = loaded {
                debug_assert!(false, "built-in {name}: {e}");
            }
        }
        // Operational attributes slapd keeps out of cn=Subschema's attributeTypes.
        let hide: Vec<AttrId> = s
            .attrs
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(
                    a.oid.as_str(),
                    "2.5.18.12"
                        | "2.5.18.7"
                        | "2.5.18.5"
                        | "2.5.18.6"
                        | "2.5.21.1"
                        | "2.5.21.2"
                        | "2.5.21.7"
                )
            })
            .map(|(i, _)| AttrId(i as u32))
            .collect();
        for id in hide {
            if let Some(info) = s.attr_info.get_mut(id.index()) {
                info.hidden = true;
            }
        }
        s
    }

    /// Adds the definitions of an OpenLDAP `.schema` file (`attributetype`, `objectclass`,
    /// `objectidentifier` lines). On error nothing of the file is added.
    pub fn add_schema_file(&mut self, text: &str) -> Result<(), SchemaError> {
        let items = parse::schema_file(text)?;
        let mut staged = self.clone();
        staged.add_items(items, false)?;
        *self = staged;
        Ok(())
    }

    /// Adds the definitions of a `cn=schema` LDIF file (`olcAttributeTypes`, `olcObjectClasses`,
    /// `attributeTypes`, `objectClasses`). On error nothing of the file is added.
    pub fn add_ldif_schema(&mut self, text: &str) -> Result<(), SchemaError> {
        let items = parse::ldif_schema(text)?;
        let mut staged = self.clone();
        staged.add_items(items, false)?;
        *self = staged;
        Ok(())
    }

    /// Adds one attribute type description (RFC 4512 form, as in `attributeTypes` values).
    pub fn add_attribute_type(&mut self, description: &str) -> Result<AttrId, SchemaError> {
        let at = parse::attribute_type(description).map_err(|m| SchemaError::Syntax {
            line: 1,
            message: format!("attribute type: {m}"),
        })?;
        let mut staged = self.clone();
        staged
            .add_attr(at, false)
            .map_err(|m| SchemaError::Syntax {
                line: 1,
                message: m,
            })?;
        *self = staged;
        Ok(AttrId((self.attrs.len() - 1) as u32))
    }

    /// Adds one object class description (RFC 4512 form, as in `objectClasses` values).
    pub fn add_object_class(&mut self, description: &str) -> Result<(), SchemaError> {
        let oc = parse::object_class(description).map_err(|m| SchemaError::Syntax {
            line: 1,
            message: format!("object class: {m}"),
        })?;
        let mut staged = self.clone();
        staged.add_class(oc).map_err(|m| SchemaError::Syntax {
            line: 1,
            message: m,
        })?;
        *self = staged;
        Ok(())
    }

    /// Adds parsed items in order; the caller has cloned `self` so a failure leaves no trace.
    fn add_items(&mut self, items: Vec<(usize, Item)>, hidden: bool) -> Result<(), SchemaError> {
        for (line, item) in items {
            let res = match item {
                Item::Macro { name, oid } => self.add_macro(&name, &oid),
                Item::Syntax(s) => self.add_syntax(s, hidden),
                Item::Rule(r) => self.add_rule(r, hidden),
                Item::Attr(a) => self.add_attr(a, hidden),
                Item::Class(c) => self.add_class(c),
            };
            res.map_err(|message| SchemaError::Syntax { line, message })?;
        }
        Ok(())
    }

    /// Expands an OID written as a macro name (`OLcfg`) or macro and suffix (`OLcfg:1.2`).
    fn resolve_oid(&self, s: &str) -> Result<String, String> {
        if is_numeric_oid(s) {
            return Ok(s.to_string());
        }
        let (name, suffix) = match s.split_once(':') {
            Some((n, sfx)) => (n, Some(sfx)),
            None => (s, None),
        };
        let base = self.macros.get(&key(name)).ok_or_else(|| {
            format!("'{s}' is neither a numeric OID nor a known objectidentifier")
        })?;
        match suffix {
            Some(sfx) if is_numeric_oid(sfx) => Ok(format!("{base}.{sfx}")),
            Some(sfx) => Err(format!("invalid OID suffix '{sfx}' in '{s}'")),
            None => Ok(base.clone()),
        }
    }

    fn add_macro(&mut self, name: &str, oid: &str) -> Result<(), String> {
        let resolved = self.resolve_oid(oid)?;
        self.macros.insert(key(name), resolved);
        Ok(())
    }

    fn add_syntax(&mut self, mut s: Syntax, hidden: bool) -> Result<(), String> {
        s.oid = self.resolve_oid(&s.oid)?;
        if self.syntax_index.contains_key(&key(&s.oid)) {
            return Err(format!("duplicate ldap syntax {}", s.oid));
        }
        // `X-SUBST` names a known syntax whose checks stand in for this one (OpenLDAP's way of
        // declaring syntaxes it has no code for, as pmi.schema does).
        let subst = s
            .extensions
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("X-SUBST"))
            .and_then(|(_, v)| v.first().cloned());
        let imp = match subst {
            Some(sub) => self
                .syntax_index
                .get(&key(&sub))
                .and_then(|i| self.syntax_info.get(*i))
                .map(|i| i.imp)
                .ok_or_else(|| format!("ldap syntax {}: unknown X-SUBST syntax {sub}", s.oid))?,
            None => rules::syntax_impl(&s.oid),
        };
        self.syntax_index.insert(key(&s.oid), self.syntaxes.len());
        self.syntaxes.push(s);
        self.syntax_info.push(SyntaxInfo { imp, hidden });
        Ok(())
    }

    fn add_rule(&mut self, mut r: MatchingRule, hidden: bool) -> Result<(), String> {
        r.oid = self.resolve_oid(&r.oid)?;
        let spec = rules::spec(&r.oid)
            .ok_or_else(|| format!("matching rule {} ({}) is not implemented", r.name(), r.oid))?;
        if !self.syntax_index.contains_key(&key(&r.syntax)) {
            return Err(format!(
                "matching rule {}: unknown syntax {}",
                r.name(),
                r.syntax
            ));
        }
        for k in std::iter::once(&r.oid).chain(r.names.iter()) {
            if self.rule_index.contains_key(&key(k)) {
                return Err(format!("duplicate matching rule {k}"));
            }
        }
        let idx = self.rules.len();
        for k in std::iter::once(&r.oid).chain(r.names.iter()) {
            self.rule_index.insert(key(k), idx);
        }
        self.rules.push(r);
        self.rule_info.push(RuleInfo { spec, hidden });
        Ok(())
    }

    fn find_rule_for(
        &self,
        at: &str,
        name: &str,
        want: RuleKind,
        kw: &str,
    ) -> Result<usize, String> {
        let idx = *self
            .rule_index
            .get(&key(name))
            .ok_or_else(|| format!("attribute type {at}: unknown {kw} matching rule '{name}'"))?;
        let kind = self.rule_info.get(idx).map(|r| r.spec.kind);
        if kind != Some(want) {
            return Err(format!(
                "attribute type {at}: '{name}' is not an {kw} matching rule"
            ));
        }
        Ok(idx)
    }

    fn add_attr(&mut self, mut at: AttributeType, hidden: bool) -> Result<(), String> {
        at.oid = self.resolve_oid(&at.oid)?;
        let name = at.name().to_string();
        if let Some(syn) = at.syntax.clone() {
            at.syntax = Some(self.resolve_oid(&syn)?);
        }
        for k in std::iter::once(&at.oid).chain(at.names.iter()) {
            if self.attr_index.contains_key(&key(k)) {
                return Err(format!("duplicate attribute type {k}"));
            }
        }
        let sup = match &at.sup {
            Some(s) => Some(self.attr_id(s).ok_or_else(|| {
                format!("attribute type {name}: unknown superior attribute type '{s}'")
            })?),
            None => None,
        };
        let sup_info = sup.and_then(|s| self.attr_info.get(s.index())).cloned();
        let pick = |own: Option<usize>, inherited: Option<usize>| own.or(inherited);
        let equality = match &at.equality {
            Some(r) => Some(self.find_rule_for(&name, r, RuleKind::Equality, "equality")?),
            None => None,
        };
        let ordering = match &at.ordering {
            Some(r) => Some(self.find_rule_for(&name, r, RuleKind::Ordering, "ordering")?),
            None => None,
        };
        let substr = match &at.substr {
            Some(r) => Some(self.find_rule_for(&name, r, RuleKind::Substr, "substring")?),
            None => None,
        };
        let syntax = match &at.syntax {
            Some(s) => Some(
                *self
                    .syntax_index
                    .get(&key(s))
                    .ok_or_else(|| format!("attribute type {name}: unknown syntax {s}"))?,
            ),
            None => sup_info.as_ref().and_then(|i| i.syntax),
        };
        if syntax.is_none() {
            return Err(format!(
                "attribute type {name}: no SYNTAX and no superior to inherit one from"
            ));
        }
        if let (Some(sup_at), Some(_)) = (sup.and_then(|s| self.attr(s)), sup) {
            if sup_at.usage != at.usage {
                return Err(format!(
                    "attribute type {name}: usage differs from its superior {}",
                    sup_at.name()
                ));
            }
        }
        let equality = pick(equality, sup_info.as_ref().and_then(|i| i.equality));
        let approx = equality
            .and_then(|e| self.rule_info.get(e))
            .and_then(|r| r.spec.approx)
            .and_then(|oid| self.rule_index.get(oid).copied());
        let syntax_impl = syntax
            .and_then(|s| self.syntax_info.get(s))
            .map(|s| s.imp)
            .unwrap_or(SyntaxImpl::Any);
        let id = AttrId(self.attrs.len() as u32);
        let class_valued = matches!(
            at.oid.as_str(),
            oids::OBJECT_CLASS | oids::STRUCTURAL_OBJECT_CLASS
        );
        let info = AttrInfo {
            equality,
            ordering: pick(ordering, sup_info.as_ref().and_then(|i| i.ordering)),
            substr: pick(substr, sup_info.as_ref().and_then(|i| i.substr)),
            approx,
            syntax,
            syntax_impl,
            sup,
            subtypes: vec![id],
            hidden,
            class_valued,
        };
        // Every ancestor gains the new type as a subtype.
        let mut cur = sup;
        while let Some(a) = cur {
            let next = match self.attr_info.get_mut(a.index()) {
                Some(i) => {
                    i.subtypes.push(id);
                    i.sup
                }
                None => None,
            };
            cur = next;
        }
        for k in std::iter::once(&at.oid).chain(at.names.iter()) {
            self.attr_index.insert(key(k), id);
        }
        match at.oid.as_str() {
            oids::ENTRY_DN => self.special.entry_dn = Some(id),
            oids::SUBSCHEMA_SUBENTRY => self.special.subschema_subentry = Some(id),
            oids::HAS_SUBORDINATES => self.special.has_subordinates = Some(id),
            _ => {}
        }
        self.attrs.push(at);
        self.attr_info.push(info);
        Ok(())
    }

    fn add_class(&mut self, mut oc: ObjectClass) -> Result<(), String> {
        oc.oid = self.resolve_oid(&oc.oid)?;
        let name = oc.name().to_string();
        for k in std::iter::once(&oc.oid).chain(oc.names.iter()) {
            if self.class_index.contains_key(&key(k)) {
                return Err(format!("duplicate object class {k}"));
            }
        }
        let id = ClassId(self.classes.len() as u32);
        let mut supers = vec![id];
        let mut must: Vec<AttrId> = Vec::new();
        let mut may: Vec<AttrId> = Vec::new();
        for s in &oc.sup {
            let sid = self.class_id(s).ok_or_else(|| {
                format!("object class {name}: unknown superior object class '{s}'")
            })?;
            let sup_kind = self.class(sid).map(|c| c.kind).unwrap_or_default();
            let ok = match oc.kind {
                ObjectClassKind::Abstract => sup_kind == ObjectClassKind::Abstract,
                ObjectClassKind::Structural => sup_kind != ObjectClassKind::Auxiliary,
                ObjectClassKind::Auxiliary => sup_kind != ObjectClassKind::Structural,
            };
            if !ok {
                return Err(format!(
                    "object class {name}: a {} class cannot inherit from the {} class '{s}'",
                    oc.kind.keyword().to_ascii_lowercase(),
                    sup_kind.keyword().to_ascii_lowercase()
                ));
            }
            if let Some(info) = self.class_info.get(sid.index()) {
                for c in &info.supers {
                    if !supers.contains(c) {
                        supers.push(*c);
                    }
                }
                for a in &info.must {
                    if !must.contains(a) {
                        must.push(*a);
                    }
                }
                for a in &info.may {
                    if !may.contains(a) {
                        may.push(*a);
                    }
                }
            }
        }
        for a in &oc.must {
            let aid = self.attr_id(a).ok_or_else(|| {
                format!("object class {name}: unknown attribute type '{a}' in MUST")
            })?;
            if !must.contains(&aid) {
                must.push(aid);
            }
        }
        for a in &oc.may {
            let aid = self.attr_id(a).ok_or_else(|| {
                format!("object class {name}: unknown attribute type '{a}' in MAY")
            })?;
            if !may.contains(&aid) {
                may.push(aid);
            }
        }
        may.retain(|a| !must.contains(a));
        for k in std::iter::once(&oc.oid).chain(oc.names.iter()) {
            self.class_index.insert(key(k), id);
        }
        self.classes.push(oc);
        self.class_info.push(ClassInfo { supers, must, may });
        Ok(())
    }

    /// Looks up an attribute type by any of its names or its numeric OID, case-insensitively.
    /// Options (`cn;lang-de`) must be stripped by the caller (see [`crate::AttrDesc::parse`]).
    pub fn attr_id(&self, name_or_oid: &str) -> Option<AttrId> {
        if let Some(id) = self.attr_index.get(name_or_oid) {
            return Some(*id);
        }
        self.attr_index.get(&key(name_or_oid)).copied()
    }

    /// The attribute type behind an id made by this schema.
    pub fn attr(&self, id: AttrId) -> Option<&AttributeType> {
        self.attrs.get(id.index())
    }

    pub fn attribute(&self, name_or_oid: &str) -> Option<&AttributeType> {
        self.attr_id(name_or_oid).and_then(|id| self.attr(id))
    }

    /// The attribute type's canonical name (its first NAME as defined, or its OID): the name
    /// slapd uses in results and in normalized DNs.
    pub fn attr_name(&self, id: AttrId) -> &str {
        self.attr(id).map(AttributeType::name).unwrap_or_default()
    }

    pub(crate) fn attr_info(&self, id: AttrId) -> Option<&AttrInfo> {
        self.attr_info.get(id.index())
    }

    pub fn object_class(&self, name_or_oid: &str) -> Option<&ObjectClass> {
        self.class_id(name_or_oid).and_then(|id| self.class(id))
    }

    /// Looks up an object class by name or OID, case-insensitively.
    pub fn class_id(&self, name_or_oid: &str) -> Option<ClassId> {
        if let Some(id) = self.class_index.get(name_or_oid) {
            return Some(*id);
        }
        self.class_index.get(&key(name_or_oid)).copied()
    }

    pub fn class(&self, id: ClassId) -> Option<&ObjectClass> {
        self.classes.get(id.index())
    }

    /// The class itself and all its superclasses, transitively (nearest first).
    pub fn superclasses(&self, id: ClassId) -> &[ClassId] {
        self.class_info
            .get(id.index())
            .map(|i| i.supers.as_slice())
            .unwrap_or_default()
    }

    /// True if `class` is `sup` or derives from it.
    pub fn is_subclass_of(&self, class: ClassId, sup: ClassId) -> bool {
        self.superclasses(class).contains(&sup)
    }

    /// Attributes a class requires, inherited ones included.
    pub fn must_of(&self, id: ClassId) -> &[AttrId] {
        self.class_info
            .get(id.index())
            .map(|i| i.must.as_slice())
            .unwrap_or_default()
    }

    /// Attributes a class allows beyond its MUST, inherited ones included.
    pub fn may_of(&self, id: ClassId) -> &[AttrId] {
        self.class_info
            .get(id.index())
            .map(|i| i.may.as_slice())
            .unwrap_or_default()
    }

    pub fn matching_rule(&self, name_or_oid: &str) -> Option<&MatchingRule> {
        self.rule_index
            .get(&key(name_or_oid))
            .and_then(|i| self.rules.get(*i))
    }

    pub(crate) fn rule_index_of(&self, name_or_oid: &str) -> Option<usize> {
        self.rule_index.get(&key(name_or_oid)).copied()
    }

    pub(crate) fn rule_def(&self, idx: usize) -> Option<&MatchingRule> {
        self.rules.get(idx)
    }

    pub(crate) fn rule_spec(&self, idx: usize) -> Option<RuleSpec> {
        self.rule_info.get(idx).map(|r| r.spec)
    }

    pub(crate) fn rule_hidden(&self, idx: usize) -> bool {
        self.rule_info.get(idx).is_some_and(|r| r.hidden)
    }

    pub fn syntax(&self, oid: &str) -> Option<&Syntax> {
        self.syntax_index
            .get(&key(oid))
            .and_then(|i| self.syntaxes.get(*i))
    }

    /// The syntax of an attribute type (its own or inherited through SUP).
    pub fn attr_syntax(&self, id: AttrId) -> Option<&Syntax> {
        self.attr_info(id)
            .and_then(|i| i.syntax)
            .and_then(|s| self.syntaxes.get(s))
    }

    /// True when the attribute's syntax is binary (`X-NOT-HUMAN-READABLE`): values should be
    /// shown base64-encoded and compared as octets.
    pub fn is_binary(&self, id: AttrId) -> bool {
        self.attr_syntax(id).is_some_and(|s| s.not_human_readable)
    }

    pub(crate) fn syntax_hidden(&self, oid: &str) -> bool {
        self.syntax_index
            .get(&key(oid))
            .and_then(|i| self.syntax_info.get(*i))
            .is_some_and(|s| s.hidden)
    }

    /// The numeric OID of a named attribute type, object class or matching rule.
    pub fn oid_of_name(&self, name: &str) -> Option<&str> {
        if let Some(a) = self.attribute(name) {
            return Some(&a.oid);
        }
        if let Some(c) = self.object_class(name) {
            return Some(&c.oid);
        }
        self.matching_rule(name).map(|r| r.oid.as_str())
    }

    pub fn attribute_types(&self) -> impl Iterator<Item = (AttrId, &AttributeType)> {
        self.attrs
            .iter()
            .enumerate()
            .map(|(i, a)| (AttrId(i as u32), a))
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

    /// True for definitions slapd does not publish in `cn=Subschema` (internal operational
    /// attributes such as `subtreeSpecification`).
    pub fn is_hidden(&self, id: AttrId) -> bool {
        self.attr_info(id).is_some_and(|i| i.hidden)
    }

    /// The attribute itself and every attribute type derived from it through SUP, transitively
    /// (a filter on `name` matches `cn` and `sn`).
    pub fn subtypes(&self, id: AttrId) -> &[AttrId] {
        self.attr_info(id)
            .map(|i| i.subtypes.as_slice())
            .unwrap_or_default()
    }

    /// True if `id` is `sup` or derives from it.
    pub fn is_subtype_of(&self, id: AttrId, sup: AttrId) -> bool {
        let mut cur = Some(id);
        while let Some(c) = cur {
            if c == sup {
                return true;
            }
            cur = self.attr_info(c).and_then(|i| i.sup);
        }
        false
    }

    /// True for attribute types with an operational usage.
    pub fn is_operational(&self, id: AttrId) -> bool {
        self.attr(id).is_some_and(|a| a.usage.is_operational())
    }

    /// The effective equality, ordering and substring matching rules (through SUP), by name.
    pub fn equality_rule(&self, id: AttrId) -> Option<&MatchingRule> {
        self.attr_info(id)
            .and_then(|i| i.equality)
            .and_then(|r| self.rules.get(r))
    }

    pub fn ordering_rule(&self, id: AttrId) -> Option<&MatchingRule> {
        self.attr_info(id)
            .and_then(|i| i.ordering)
            .and_then(|r| self.rules.get(r))
    }

    pub fn substr_rule(&self, id: AttrId) -> Option<&MatchingRule> {
        self.attr_info(id)
            .and_then(|i| i.substr)
            .and_then(|r| self.rules.get(r))
    }

    fn invalid(&self, id: AttrId, message: String) -> ValueError {
        ValueError::InvalidSyntax {
            attr: self.attr_name(id).to_string(),
            index: 0,
            syntax: self
                .attr_syntax(id)
                .and_then(|s| s.desc.clone())
                .unwrap_or_default(),
            message,
        }
    }

    /// Checks a value against the attribute's syntax.
    pub fn validate(&self, id: AttrId, value: &[u8]) -> Result<(), ValueError> {
        let info = self
            .attr_info(id)
            .ok_or_else(|| ValueError::Invalid("unknown attribute type".into()))?;
        if info.class_valued {
            // objectClass values must name a known class (slapd: "invalid value").
            let s = std::str::from_utf8(value).unwrap_or_default();
            if self.class_id(s.trim()).is_none() {
                return Err(self.invalid(
                    id,
                    format!("unknown object class '{}'", String::from_utf8_lossy(value)),
                ));
            }
            return Ok(());
        }
        rules::validate(self, info.syntax_impl, value).map_err(|m| self.invalid(id, m))
    }

    /// Normalizes with a rule by index, for a value of attribute `id` (used in error messages).
    pub(crate) fn normalize_with(
        &self,
        id: AttrId,
        rule: usize,
        use_: Use,
        value: &[u8],
    ) -> Result<Vec<u8>, ValueError> {
        let spec = self
            .rule_spec(rule)
            .ok_or_else(|| ValueError::Invalid("unknown matching rule".into()))?;
        rules::normalize(self, spec.imp, use_, value).map_err(|m| self.invalid(id, m))
    }

    /// The equality-normalized form of an object class name: its numeric OID.
    fn class_key(&self, value: &[u8]) -> Result<Vec<u8>, String> {
        let s =
            std::str::from_utf8(value).map_err(|_| "object class names are ASCII".to_string())?;
        let id = self
            .class_id(s.trim())
            .ok_or_else(|| format!("unknown object class '{s}'"))?;
        Ok(self
            .class(id)
            .map(|c| c.oid.as_bytes().to_vec())
            .unwrap_or_default())
    }

    /// Normalizes a value (or an assertion value) with the attribute's effective equality rule.
    /// `Ok(None)` when the attribute has no equality rule: equality filters on it are Undefined.
    /// Two values are equal exactly when their normalized forms are byte-equal; the storage
    /// layer's equality index and the DN index are keyed by this form.
    ///
    /// `objectClass` values normalize to the class's numeric OID; index them with
    /// [`Schema::object_class_keys`] so that `(objectClass=person)` finds subclasses too.
    pub fn normalize_eq(&self, id: AttrId, value: &[u8]) -> Result<Option<Vec<u8>>, ValueError> {
        let info = self
            .attr_info(id)
            .ok_or_else(|| ValueError::Invalid("unknown attribute type".into()))?;
        if info.class_valued {
            return self
                .class_key(value)
                .map(Some)
                .map_err(|m| self.invalid(id, m));
        }
        match info.equality {
            None => Ok(None),
            Some(r) => self.normalize_with(id, r, Use::Value, value).map(Some),
        }
    }

    /// The equality keys under which an `objectClass` value should be indexed: the class's own
    /// key and those of all its superclasses, so an index lookup for `person` finds entries
    /// whose objectClass values name only `inetOrgPerson` (slapd's objectSubClassMatch).
    pub fn object_class_keys(&self, value: &[u8]) -> Result<Vec<Vec<u8>>, ValueError> {
        let s = std::str::from_utf8(value)
            .map_err(|_| ValueError::Invalid("object class names are ASCII".into()))?;
        let id = self
            .class_id(s.trim())
            .ok_or_else(|| ValueError::Invalid(format!("unknown object class '{s}'")))?;
        Ok(self
            .superclasses(id)
            .iter()
            .filter_map(|c| self.class(*c))
            .map(|c| c.oid.as_bytes().to_vec())
            .collect())
    }

    /// Normalizes a whole value for substring matching with the attribute's effective substring
    /// rule, such that a normalized substring assertion piece occurs in it exactly when the
    /// assertion matches. `Ok(None)` when the attribute has no substring rule.
    ///
    /// Like slapd, substring assertions are matched against the equality-normalized value when
    /// the attribute has an equality rule, and against the value as stored otherwise.
    pub fn normalize_substr(
        &self,
        id: AttrId,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, ValueError> {
        let info = self
            .attr_info(id)
            .ok_or_else(|| ValueError::Invalid("unknown attribute type".into()))?;
        if info.substr.is_none() {
            return Ok(None);
        }
        match info.equality {
            Some(r) => self.normalize_with(id, r, Use::Value, value).map(Some),
            None => Ok(Some(value.to_vec())),
        }
    }

    /// Normalizes one substring assertion piece (`initial`, `any` or `final`) with the
    /// attribute's substring rule. `Ok(None)` when the attribute has no substring rule.
    pub fn normalize_substr_piece(
        &self,
        id: AttrId,
        piece: SubstrPiece,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, ValueError> {
        let info = self
            .attr_info(id)
            .ok_or_else(|| ValueError::Invalid("unknown attribute type".into()))?;
        let use_ = match piece {
            SubstrPiece::Initial => Use::SubInitial,
            SubstrPiece::Any => Use::SubAny,
            SubstrPiece::Final => Use::SubFinal,
        };
        match info.substr {
            None => Ok(None),
            Some(r) => self.normalize_with(id, r, use_, value).map(Some),
        }
    }

    /// Orders two values with the attribute's effective ordering rule. `None` when the attribute
    /// has no ordering rule or a value is invalid.
    pub fn compare_ordering(&self, id: AttrId, a: &[u8], b: &[u8]) -> Option<Ordering> {
        let info = self.attr_info(id)?;
        let r = info.ordering?;
        let spec = self.rule_spec(r)?;
        let na = rules::normalize(self, spec.imp, Use::Value, a).ok()?;
        let nb = rules::normalize(self, spec.imp, Use::Value, b).ok()?;
        Some(rules::compare(spec.imp, &na, &nb))
    }

    /// Normalizes a value with the attribute's ordering rule, giving a key whose order (with
    /// [`Schema::compare_ordering_keys`]) is the rule's order. `Ok(None)` without an ordering rule.
    pub fn normalize_ordering(
        &self,
        id: AttrId,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, ValueError> {
        let info = self
            .attr_info(id)
            .ok_or_else(|| ValueError::Invalid("unknown attribute type".into()))?;
        match info.ordering {
            None => Ok(None),
            Some(r) => self.normalize_with(id, r, Use::Value, value).map(Some),
        }
    }

    /// Compares two keys made by [`Schema::normalize_ordering`] for the same attribute.
    pub fn compare_ordering_keys(&self, id: AttrId, a: &[u8], b: &[u8]) -> Ordering {
        let imp = self
            .attr_info(id)
            .and_then(|i| i.ordering)
            .and_then(|r| self.rule_spec(r))
            .map(|s| s.imp);
        match imp {
            Some(imp) => rules::compare(imp, a, b),
            None => a.cmp(b),
        }
    }

    /// True if the rule `rule` may be used with attribute `id` in an extensible match
    /// (slapd's `mr_usable_with_at`; also what `matchingRuleUse` publishes).
    pub(crate) fn rule_usable_with(&self, rule: usize, id: AttrId) -> bool {
        let (Some(spec), Some(def), Some(info)) = (
            self.rule_spec(rule),
            self.rule_def(rule),
            self.attr_info(id),
        ) else {
            return false;
        };
        let at_syntax = info
            .syntax
            .and_then(|s| self.syntaxes.get(s))
            .map(|s| s.oid.as_str())
            .unwrap_or_default();
        // slapd's published matchingRuleUse leaves out objectClass (matched by its own
        // objectSubClassMatch) and the subschema description attributes (attributeTypes, ...).
        const DESCRIPTION_SYNTAXES: &[&str] = &["3", "16", "17", "30", "31", "35", "37"];
        if info.class_valued
            || at_syntax
                .strip_prefix("1.3.6.1.4.1.1466.115.121.1.")
                .is_some_and(|n| DESCRIPTION_SYNTAXES.contains(&n))
        {
            return false;
        }
        let same_syntax =
            def.syntax == at_syntax || rules::syntax_sups(at_syntax).contains(&def.syntax.as_str());
        if spec.ext && (same_syntax || info.equality == Some(rule) || info.approx == Some(rule)) {
            return true;
        }
        spec.compat.contains(&at_syntax)
    }

    /// True if the rule applies to syntaxes other than its own.
    pub(crate) fn rule_has_compat(&self, rule: usize) -> bool {
        self.rule_spec(rule).is_some_and(|r| !r.compat.is_empty())
    }

    /// The approximate rule's implementation for an attribute, if `~=` has one there.
    pub(crate) fn approx_of(&self, id: AttrId) -> Option<RuleImpl> {
        self.attr_info(id)
            .and_then(|i| i.approx)
            .and_then(|r| self.rule_spec(r))
            .map(|s| s.imp)
    }
}

/// Which piece of a substring assertion a value is (they keep different spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubstrPiece {
    Initial,
    Any,
    Final,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_loads_everything() {
        let s = Schema::builtin();
        // Every built-in file must load completely.
        for (name, text, hidden) in BUILTIN_FILES {
            let mut fresh = Schema::default();
            for (n2, t2, h2) in BUILTIN_FILES {
                if n2 == name {
                    break;
                }
                fresh
                    .add_items(parse::schema_file(t2).unwrap(), *h2)
                    .unwrap();
            }
            fresh
                .add_items(parse::schema_file(text).unwrap(), *hidden)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(s.attribute_types().count() > 175);
        assert!(s.object_classes().count() > 60);
        for name in [
            "objectClass",
            "aliasedObjectName",
            "createTimestamp",
            "modifyTimestamp",
            "creatorsName",
            "modifiersName",
            "structuralObjectClass",
            "subschemaSubentry",
            "entryDN",
            "entryUUID",
            "hasSubordinates",
            "numSubordinates",
            "namingContexts",
            "supportedControl",
            "supportedExtension",
            "supportedFeatures",
            "supportedLDAPVersion",
            "supportedSASLMechanisms",
            "vendorName",
            "vendorVersion",
            "altServer",
            "ldapSyntaxes",
            "attributeTypes",
            "objectClasses",
            "matchingRules",
            "matchingRuleUse",
            "memberOf",
            "mail",
            "mailLocalAddress",
            "mailHost",
            "mailRoutingAddress",
            "uidNumber",
            "member",
            "uniqueMember",
            "userPassword",
            "jpegPhoto",
        ] {
            assert!(s.attr_id(name).is_some(), "{name}");
        }
        for name in [
            "top",
            "alias",
            "extensibleObject",
            "subschema",
            "subentry",
            "referral",
            "inetOrgPerson",
            "posixAccount",
            "inetLocalMailRecipient",
            "groupOfNames",
            "dcObject",
        ] {
            assert!(s.object_class(name).is_some(), "{name}");
        }
        assert_eq!(
            s.attribute("memberOf").unwrap().oid,
            "1.2.840.113556.1.2.102"
        );
    }

    #[test]
    fn lookups_are_case_insensitive_by_name_and_oid() {
        let s = Schema::builtin();
        let cn = s.attr_id("cn").unwrap();
        assert_eq!(s.attr_id("CommonName"), Some(cn));
        assert_eq!(s.attr_id("2.5.4.3"), Some(cn));
        assert_eq!(s.attr_name(cn), "cn");
        assert_eq!(
            s.object_class("INETORGPERSON").unwrap().oid,
            "2.16.840.1.113730.3.2.2"
        );
        assert_eq!(s.object_class("2.5.6.6").unwrap().name(), "person");
        assert!(s.attr_id("nosuchattr").is_none());
    }

    #[test]
    fn derived_rules_and_subtypes() {
        let s = Schema::builtin();
        let name = s.attr_id("name").unwrap();
        let cn = s.attr_id("cn").unwrap();
        let sn = s.attr_id("sn").unwrap();
        assert_eq!(s.equality_rule(cn).unwrap().name(), "caseIgnoreMatch");
        assert_eq!(
            s.substr_rule(sn).unwrap().name(),
            "caseIgnoreSubstringsMatch"
        );
        assert_eq!(
            s.attr_syntax(cn).unwrap().oid,
            "1.3.6.1.4.1.1466.115.121.1.15"
        );
        let subs = s.subtypes(name);
        assert!(subs.contains(&name) && subs.contains(&cn) && subs.contains(&sn));
        assert!(s.is_subtype_of(cn, name));
        assert!(!s.is_subtype_of(name, cn));
        assert_eq!(s.subtypes(cn), &[cn]);
        assert!(s.is_operational(s.attr_id("createTimestamp").unwrap()));
        assert!(!s.is_operational(cn));
        // distinguishedName's subtypes include member (SUP distinguishedName).
        let dn = s.attr_id("distinguishedName").unwrap();
        assert!(s.subtypes(dn).contains(&s.attr_id("member").unwrap()));
    }

    #[test]
    fn superclass_chains() {
        let s = Schema::builtin();
        let inet = s.class_id("inetOrgPerson").unwrap();
        let person = s.class_id("person").unwrap();
        let top = s.class_id("top").unwrap();
        assert!(s.is_subclass_of(inet, person));
        assert!(s.is_subclass_of(inet, top));
        assert!(!s.is_subclass_of(person, inet));
        let must: Vec<&str> = s.must_of(inet).iter().map(|a| s.attr_name(*a)).collect();
        assert!(must.contains(&"sn") && must.contains(&"cn") && must.contains(&"objectClass"));
        let may: Vec<&str> = s.may_of(inet).iter().map(|a| s.attr_name(*a)).collect();
        assert!(may.contains(&"mail") && may.contains(&"title") && !may.contains(&"sn"));
    }

    #[test]
    fn every_reference_resolves_to_an_implemented_rule() {
        let s = Schema::builtin();
        for (id, at) in s.attribute_types() {
            for (given, eff) in [
                (&at.equality, s.equality_rule(id)),
                (&at.ordering, s.ordering_rule(id)),
                (&at.substr, s.substr_rule(id)),
            ] {
                if given.is_some() {
                    assert!(eff.is_some(), "{}", at.name());
                }
            }
            assert!(s.attr_syntax(id).is_some(), "{}", at.name());
        }
    }

    #[test]
    fn schema_file_errors_are_atomic_and_carry_lines() {
        let mut s = Schema::builtin();
        let before = s.attribute_types().count();
        let text = "objectidentifier R 1.3.6.1.4.1.99999.1\nattributetype ( R:1 NAME 'rosterA' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n\nattributetype ( R:2 NAME 'rosterB' EQUALITY noSuchMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n";
        let e = s.add_schema_file(text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 4: attribute type rosterB: unknown equality matching rule 'noSuchMatch'"
        );
        assert_eq!(s.attribute_types().count(), before);
        assert!(s.attr_id("rosterA").is_none());

        let e = s
            .add_schema_file("attributetype ( 1.2.3.4 NAME 'x' SUP nosuch )\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown superior attribute type 'nosuch'"),
            "{e}"
        );
        let e = s
            .add_schema_file("attributetype ( 1.2.3.4 NAME 'x' SYNTAX 9.9.9 )\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown syntax 9.9.9"), "{e}");
        let e = s
            .add_schema_file(
                "attributetype ( 1.2.3.4 NAME 'cn' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n",
            )
            .unwrap_err();
        assert!(e.to_string().contains("duplicate attribute type cn"), "{e}");
        let e = s.add_schema_file("attributetype ( 1.2.3.4 NAME 'x' EQUALITY caseIgnoreOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n").unwrap_err();
        assert!(e.to_string().contains("not an equality"), "{e}");
        let e = s
            .add_schema_file(
                "objectclass ( 1.2.3.5 NAME 'x' SUP top AUXILIARY MAY ( cn $ nosuch ) )\n",
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown attribute type 'nosuch' in MAY"),
            "{e}"
        );
        let e = s
            .add_schema_file("objectclass ( 1.2.3.5 NAME 'x' SUP person AUXILIARY )\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("auxiliary class cannot inherit from the structural class"),
            "{e}"
        );
        let e = s
            .add_schema_file(
                "attributetype ( Nope:1 NAME 'x' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n",
            )
            .unwrap_err();
        assert!(e.to_string().contains("objectidentifier"), "{e}");
    }

    #[test]
    fn schema_file_with_macros_loads() {
        let mut s = Schema::builtin();
        let text = "# Roster test schema\nobjectidentifier RosterRoot 2.25.1234\nobjectidentifier RosterAttr RosterRoot:1\n\nattributetype ( RosterAttr:1\n  NAME ( 'rosterTestRole' 'rRole' )\n  DESC 'role'\n  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64} SINGLE-VALUE )\nattributetype ( RosterAttr:2 NAME 'rosterAlias' SUP mail )\nobjectclass ( RosterRoot:2.1 NAME 'rosterUser' SUP top AUXILIARY MAY ( rosterTestRole $ rosterAlias ) )\n";
        s.add_schema_file(text).unwrap();
        let r = s.attribute("rrole").unwrap();
        assert_eq!(r.oid, "2.25.1234.1.1");
        let alias = s.attr_id("rosterAlias").unwrap();
        assert_eq!(s.equality_rule(alias).unwrap().name(), "caseIgnoreIA5Match");
        assert!(s.subtypes(s.attr_id("mail").unwrap()).contains(&alias));
        assert_eq!(s.object_class("rosterUser").unwrap().oid, "2.25.1234.2.1");
    }

    #[test]
    fn openldap_leniencies() {
        // Forms found in OpenLDAP's own schema files: a syntax with NAME and X-SUBST
        // (pmi.schema), the misspelt `attributeype` (dsee.schema), authzMatch (dyngroup.schema).
        let mut s = Schema::builtin();
        let text = "ldapsyntax ( 1.3.6.1.4.1.99999.7.1\n\tNAME 'PathSyntax'\n\tDESC 'a path'\n\tX-SUBST '1.3.6.1.4.1.1466.115.121.1.15' )\nattributeype ( 1.3.6.1.4.1.99999.7.2 NAME 'rosterPath' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.99999.7.1 )\nattributetype ( 1.3.6.1.4.1.99999.7.3 NAME 'rosterAuthz' EQUALITY authzMatch SYNTAX 1.3.6.1.4.1.4203.666.2.7 )\n";
        s.add_schema_file(text).unwrap();
        let id = s.attr_id("rosterPath").unwrap();
        assert!(s.validate(id, b"a/b").is_ok());
        assert!(s.validate(id, b"").is_err());
        assert!(s.attr_id("rosterAuthz").is_some());
        let e = s
            .add_schema_file("ldapsyntax ( 1.3.6.1.4.1.99999.7.9 X-SUBST '9.9' )\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown X-SUBST syntax 9.9"), "{e}");
    }

    #[test]
    fn loads_stock_ldif_schema() {
        // The same definitions in cn=config LDIF form, as /etc/ldap/schema/*.ldif carry them.
        let mut s = Schema::builtin();
        let ldif = "dn: cn=roster,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: roster\nolcObjectIdentifier: {0}RosterRoot 2.25.99\nolcAttributeTypes: {0}( RosterRoot:1 NAME 'rosterKind' EQUALITY caseIgnoreMatch SYN\n TAX 1.3.6.1.4.1.1466.115.121.1.15 )\nolcObjectClasses: {0}( RosterRoot:2 NAME 'rosterTestGroup' SUP top AUXILIARY MAY rosterKind )\n";
        s.add_ldif_schema(ldif).unwrap();
        assert_eq!(s.attribute("rosterKind").unwrap().oid, "2.25.99.1");
        let bad = "dn: cn=x\nolcAttributeTypes: ( 2.25.98 NAME 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\nolcObjectClasses: ( 2.25.97 NAME 'b' MUST nosuch )\n";
        let e = s.add_ldif_schema(bad).unwrap_err();
        assert!(matches!(&e, SchemaError::Syntax { line: 3, .. }), "{e:?}");
        assert!(s.attribute("a").is_none());
    }
}
