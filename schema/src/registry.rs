//! The schema registry: every attribute type, object class, matching rule and syntax known to the
//! server, with case-insensitive lookup by name or OID and the derived facts (effective matching
//! rules through SUP chains, subtypes, superclass chains) computed once when definitions are added.

use crate::error::SchemaError;
use crate::model::{AttributeType, MatchingRule, ObjectClass, ObjectClassKind, Syntax};
use crate::parse::{self, Item};
use crate::rules::{self, RuleKind, RuleSpec, SyntaxImpl};
use rustc_hash::FxHashMap as HashMap;

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
        "monitor.schema",
        include_str!("builtin/monitor.schema"),
        true,
    ),
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
            // As written too: the server names types as the schema spells them
            // ("userPassword"), and such a lookup then needs no lowercased copy.
            self.attr_index.insert(k.clone(), id);
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
            self.class_index.insert(k.clone(), id);
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
}

/// Which piece of a substring assertion a value is (they keep different spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubstrPiece {
    Initial,
    Any,
    Final,
}

mod values;

#[cfg(test)]
mod tests;
