//! Values as the schema sees them: syntax checks, normalization for equality, ordering and
//! substrings, and which matching rules apply to which attribute types.

use super::{AttrId, Schema, SubstrPiece};
use crate::error::ValueError;
use crate::rules::{self, RuleImpl, Use};
use std::cmp::Ordering;

impl Schema {
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
