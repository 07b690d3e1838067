//! Evaluating a compiled filter against an entry, with three-valued logic.

use super::compile::{assertion, is_entry_dn};
use super::*;

impl CompiledFilter {
    /// Evaluates the filter against an entry with RFC 4511 three-valued logic. Operational
    /// attributes the server computes (other than `entryDN`) must be in `entry.attrs` to be
    /// seen.
    pub fn evaluate(&self, schema: &Schema, entry: &Entry) -> TriState {
        match self {
            CompiledFilter::And(_) | CompiledFilter::Or(_) | CompiledFilter::Not(_) => {
                self.connective(&|f| f.evaluate(schema, entry))
            }
            CompiledFilter::Undefined => TriState::Undefined,
            CompiledFilter::Present { attr, options } => {
                let sp = &schema.special;
                if [sp.entry_dn, sp.subschema_subentry, sp.has_subordinates].contains(&Some(*attr))
                {
                    return TriState::True;
                }
                if selected(schema, entry, *attr, options).next().is_some() {
                    TriState::True
                } else {
                    TriState::False
                }
            }
            CompiledFilter::Equality { attr, key, options } => {
                eval_equality(schema, entry, *attr, key, options)
            }
            CompiledFilter::Approx {
                attr,
                value,
                options,
                phonetic,
            } => {
                if !phonetic {
                    return eval_equality(schema, entry, *attr, value, options);
                }
                eval_approx(schema, entry, *attr, value, options)
            }
            CompiledFilter::Substrings {
                attr,
                pieces,
                options,
            } => eval_substrings(schema, entry, *attr, pieces, options),
            CompiledFilter::GreaterOrEqual {
                attr,
                value,
                options,
            } => eval_ordering(schema, entry, *attr, value, options, true),
            CompiledFilter::LessOrEqual {
                attr,
                value,
                options,
            } => eval_ordering(schema, entry, *attr, value, options, false),
            CompiledFilter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
                options,
                raw,
            } => eval_extensible(
                schema,
                entry,
                rule.as_deref(),
                *attr,
                value,
                raw,
                *dn_attributes,
                options,
            ),
            CompiledFilter::InChain { .. } => TriState::Undefined,
            CompiledFilter::DnIn { set, .. } => {
                if set.contains(&entry.ndn) {
                    TriState::True
                } else {
                    TriState::False
                }
            }
        }
    }

    /// The value of an AND, OR or NOT from its parts' values as `eval` gives them (Kleene's
    /// three-valued logic, RFC 4511 section 4.5.1.7); Undefined for anything else.
    fn connective(&self, eval: &dyn Fn(&CompiledFilter) -> TriState) -> TriState {
        match self {
            CompiledFilter::And(v) => {
                let mut r = TriState::True;
                for f in v {
                    match eval(f) {
                        TriState::False => return TriState::False,
                        TriState::Undefined => r = TriState::Undefined,
                        TriState::True => {}
                    }
                }
                r
            }
            CompiledFilter::Or(v) => {
                let mut r = TriState::False;
                for f in v {
                    match eval(f) {
                        TriState::True => return TriState::True,
                        TriState::Undefined => r = TriState::Undefined,
                        TriState::False => {}
                    }
                }
                r
            }
            CompiledFilter::Not(f) => match eval(f) {
                TriState::True => TriState::False,
                TriState::False => TriState::True,
                TriState::Undefined => TriState::Undefined,
            },
            _ => TriState::Undefined,
        }
    }

    /// Evaluates as [`Self::evaluate`] with access control: an item on an attribute type for
    /// which `allowed` is false is Undefined, as slapd treats an assertion the client may not
    /// search (its value can then not change the result). Types are asked as the filter names
    /// them; an extensible match without a type looks only at allowed attributes.
    pub fn evaluate_with(
        &self,
        schema: &Schema,
        entry: &Entry,
        allowed: &dyn Fn(AttrId) -> bool,
    ) -> TriState {
        match self.item_type() {
            ItemType::Connective => self.connective(&|f| f.evaluate_with(schema, entry, allowed)),
            ItemType::Attribute(attr) => {
                if !allowed(attr) {
                    return TriState::Undefined;
                }
                // An item on a supertype (`name`) looks at its subtypes' values too (`cn`,
                // `sn`): those the client may not search are left out, and only a True from
                // the rest counts.
                let hidden = |a: &Attribute| {
                    a.desc.id != attr
                        && schema.is_subtype_of(a.desc.id, attr)
                        && !allowed(a.desc.id)
                };
                if !entry.attrs.iter().any(hidden) {
                    return self.evaluate(schema, entry);
                }
                let visible = Entry {
                    dn: entry.dn.clone(),
                    ndn: entry.ndn.clone(),
                    attrs: entry.attrs.iter().filter(|a| !hidden(a)).cloned().collect(),
                };
                match self.evaluate(schema, &visible) {
                    TriState::True => TriState::True,
                    _ => TriState::Undefined,
                }
            }
            ItemType::Every => {
                if entry.attrs.iter().all(|a| allowed(a.desc.id)) {
                    self.evaluate(schema, entry)
                } else {
                    let visible = Entry {
                        dn: entry.dn.clone(),
                        ndn: entry.ndn.clone(),
                        attrs: entry
                            .attrs
                            .iter()
                            .filter(|a| allowed(a.desc.id))
                            .cloned()
                            .collect(),
                    };
                    // What the hidden attributes would have said is unknown: False becomes
                    // Undefined, so the result is never truer than without access control.
                    match self.evaluate(schema, &visible) {
                        TriState::True => TriState::True,
                        _ => TriState::Undefined,
                    }
                }
            }
            ItemType::Undefined => TriState::Undefined,
        }
    }

    /// What this item tests, for access control: each kind of item names its attribute type
    /// here only.
    pub fn item_type(&self) -> ItemType {
        match self {
            CompiledFilter::And(_) | CompiledFilter::Or(_) | CompiledFilter::Not(_) => {
                ItemType::Connective
            }
            CompiledFilter::Equality { attr, .. }
            | CompiledFilter::Substrings { attr, .. }
            | CompiledFilter::GreaterOrEqual { attr, .. }
            | CompiledFilter::LessOrEqual { attr, .. }
            | CompiledFilter::Present { attr, .. }
            | CompiledFilter::Approx { attr, .. }
            | CompiledFilter::InChain { attr, .. }
            | CompiledFilter::DnIn { attr, .. }
            | CompiledFilter::Extensible {
                attr: Some(attr), ..
            } => ItemType::Attribute(*attr),
            CompiledFilter::Extensible { attr: None, .. } => ItemType::Every,
            CompiledFilter::Undefined => ItemType::Undefined,
        }
    }

    /// The filters an `And` or `Or` combines, or the one a `Not` negates; none for an item.
    pub fn parts(&self) -> &[CompiledFilter] {
        match self {
            CompiledFilter::And(parts) | CompiledFilter::Or(parts) => parts,
            CompiledFilter::Not(inner) => std::slice::from_ref(&**inner),
            _ => &[],
        }
    }

    /// True if any part of the filter looks at attribute `attr` (or a subtype of it) of an
    /// entry, so that a caller knows whether a computed attribute must be added to candidates
    /// before evaluation.
    pub fn looks_at(&self, schema: &Schema, attr: AttrId) -> bool {
        let on = |a: &AttrId| schema.is_subtype_of(*a, attr) || schema.is_subtype_of(attr, *a);
        match self {
            CompiledFilter::And(v) | CompiledFilter::Or(v) => {
                v.iter().any(|f| f.looks_at(schema, attr))
            }
            CompiledFilter::Not(f) => f.looks_at(schema, attr),
            CompiledFilter::Undefined | CompiledFilter::DnIn { .. } => false,
            CompiledFilter::Equality { attr: a, .. }
            | CompiledFilter::Substrings { attr: a, .. }
            | CompiledFilter::GreaterOrEqual { attr: a, .. }
            | CompiledFilter::LessOrEqual { attr: a, .. }
            | CompiledFilter::Present { attr: a, .. }
            | CompiledFilter::Approx { attr: a, .. }
            | CompiledFilter::InChain { attr: a, .. } => on(a),
            CompiledFilter::Extensible {
                attr: Some(a),
                dn_attributes,
                ..
            } => on(a) || *dn_attributes,
            // Without an attribute, every attribute the rule applies to is looked at.
            CompiledFilter::Extensible { attr: None, .. } => true,
        }
    }

    /// The conjunction of two compiled filters (for servers that add a filter of their own, such
    /// as an access restriction).
    pub fn and(self, other: CompiledFilter) -> CompiledFilter {
        CompiledFilter::And(vec![self, other])
    }
}

fn eval_equality(
    schema: &Schema,
    entry: &Entry,
    attr: AttrId,
    key: &[u8],
    options: &[String],
) -> TriState {
    if is_entry_dn(schema, attr) {
        return if entry.ndn.to_string().as_bytes() == key {
            TriState::True
        } else {
            TriState::False
        };
    }
    let class_valued = schema.attr_info(attr).is_some_and(|i| i.class_valued);
    let asserted_class = if class_valued {
        std::str::from_utf8(key)
            .ok()
            .and_then(|k| schema.class_id(k))
    } else {
        None
    };
    let mut rc = TriState::False;
    for a in selected(schema, entry, attr, options) {
        let Some(info) = schema.attr_info(a.desc.id) else {
            continue;
        };
        if let Some(want) = asserted_class {
            for v in &a.values {
                match std::str::from_utf8(v)
                    .ok()
                    .and_then(|n| schema.class_id(n.trim()))
                {
                    Some(c) if schema.is_subclass_of(c, want) => return TriState::True,
                    Some(_) => {}
                    None => rc = TriState::Undefined,
                }
            }
            continue;
        }
        let Some(imp) = info
            .equality
            .and_then(|r| schema.rule_spec(r))
            .map(|s| s.imp)
        else {
            rc = TriState::Undefined;
            continue;
        };
        for v in &a.values {
            let fast = match imp {
                RuleImpl::DistinguishedName => crate::dn::fast_dn_eq(schema, v, key),
                _ => rules::fast_eq(imp, v, key),
            };
            match fast {
                Some(true) => return TriState::True,
                Some(false) => continue,
                None => {}
            }
            match rules::normalize(schema, imp, Use::Value, v) {
                Ok(n) if n == key => return TriState::True,
                Ok(_) => {}
                Err(_) => rc = TriState::Undefined,
            }
        }
    }
    rc
}

fn eval_approx(
    schema: &Schema,
    entry: &Entry,
    attr: AttrId,
    raw: &[u8],
    options: &[String],
) -> TriState {
    let mut rc = TriState::False;
    for a in selected(schema, entry, attr, options) {
        let Some(info) = schema.attr_info(a.desc.id) else {
            continue;
        };
        let Some(eq) = info
            .equality
            .and_then(|r| schema.rule_spec(r))
            .map(|s| s.imp)
        else {
            rc = TriState::Undefined;
            continue;
        };
        let phonetic = schema.approx_of(a.desc.id).is_some();
        let key = if phonetic {
            None
        } else {
            rules::normalize(schema, eq, Use::Value, raw).ok()
        };
        for v in &a.values {
            let Ok(nv) = rules::normalize(schema, eq, Use::Value, v) else {
                rc = TriState::Undefined;
                continue;
            };
            let hit = match &key {
                None => approx::approx_match(&nv, raw),
                Some(k) => nv == *k,
            };
            if hit {
                return TriState::True;
            }
        }
    }
    rc
}

fn eval_substrings(
    schema: &Schema,
    entry: &Entry,
    attr: AttrId,
    pieces: &SubstringPieces,
    options: &[String],
) -> TriState {
    let mut rc = TriState::False;
    for a in selected(schema, entry, attr, options) {
        let Some(info) = schema.attr_info(a.desc.id) else {
            continue;
        };
        if info.substr.is_none() {
            rc = TriState::Undefined;
            continue;
        }
        let eq = info
            .equality
            .and_then(|r| schema.rule_spec(r))
            .map(|s| s.imp);
        for v in &a.values {
            let hit = match eq {
                Some(imp) => match rules::normalize(schema, imp, Use::Value, v) {
                    Ok(nv) => rules::substrings_match(
                        &nv,
                        pieces.initial.as_deref(),
                        &pieces.any,
                        pieces.final_.as_deref(),
                    ),
                    Err(_) => {
                        rc = TriState::Undefined;
                        continue;
                    }
                },
                None => rules::substrings_match(
                    v,
                    pieces.initial.as_deref(),
                    &pieces.any,
                    pieces.final_.as_deref(),
                ),
            };
            if hit {
                return TriState::True;
            }
        }
    }
    rc
}

fn eval_ordering(
    schema: &Schema,
    entry: &Entry,
    attr: AttrId,
    value: &[u8],
    options: &[String],
    ge: bool,
) -> TriState {
    let mut rc = TriState::False;
    for a in selected(schema, entry, attr, options) {
        let Some(imp) = schema
            .attr_info(a.desc.id)
            .and_then(|i| i.ordering)
            .and_then(|r| schema.rule_spec(r))
            .map(|s| s.imp)
        else {
            rc = TriState::Undefined;
            continue;
        };
        for v in &a.values {
            let Ok(nv) = rules::normalize(schema, imp, Use::Value, v) else {
                rc = TriState::Undefined;
                continue;
            };
            let o = rules::compare(imp, &nv, value);
            if (ge && o.is_ge()) || (!ge && o.is_le()) {
                return TriState::True;
            }
        }
    }
    rc
}

/// Does one normalized value match under an extensible-match rule? Equality rules compare
/// keys, ordering rules assert "less than", bit rules test bits, approximate rules use metaphone.
fn ext_match(imp: RuleImpl, kind: RuleKind, value: &[u8], assertion: &[u8]) -> bool {
    match kind {
        RuleKind::Ordering => rules::compare(imp, value, assertion).is_lt(),
        RuleKind::ExtOnly => rules::bit_match(imp, value, assertion).unwrap_or(false),
        RuleKind::Approx => approx::approx_match(value, assertion),
        RuleKind::Equality | RuleKind::Substr => value == assertion,
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_extensible(
    schema: &Schema,
    entry: &Entry,
    rule: Option<&str>,
    attr: Option<AttrId>,
    value: &[u8],
    raw: &[u8],
    dn_attributes: bool,
    options: &[String],
) -> TriState {
    let Some(rule_idx) = rule.and_then(|r| schema.rule_index_of(r)) else {
        return TriState::Undefined;
    };
    let Some(spec) = schema.rule_spec(rule_idx) else {
        return TriState::Undefined;
    };
    let norm_value = |v: &[u8]| rules::normalize(schema, spec.imp, Use::Value, v).ok();
    match attr {
        Some(id) => {
            if is_entry_dn(schema, id) {
                let ndn = entry.ndn.to_string();
                return match norm_value(ndn.as_bytes()) {
                    Some(nv) if ext_match(spec.imp, spec.kind, &nv, value) => TriState::True,
                    Some(_) => TriState::False,
                    None => TriState::Undefined,
                };
            }
            for a in selected(schema, entry, id, options) {
                for v in &a.values {
                    // A value the rule cannot normalize is skipped, as slapd does.
                    if let Some(nv) = norm_value(v) {
                        if ext_match(spec.imp, spec.kind, &nv, value) {
                            return TriState::True;
                        }
                    }
                }
            }
        }
        None => {
            for a in &entry.attrs {
                if !schema.rule_usable_with(rule_idx, a.desc.id) {
                    continue;
                }
                let Some(asserted) = assertion(schema, rule_idx, Use::Value, raw) else {
                    continue;
                };
                for v in &a.values {
                    if let Some(nv) = norm_value(v) {
                        if ext_match(spec.imp, spec.kind, &nv, &asserted) {
                            return TriState::True;
                        }
                    }
                }
            }
        }
    }
    if dn_attributes && !entry.dn.is_root() {
        for rdn in &entry.dn.rdns {
            for ava in &rdn.avas {
                let Some(ad) = schema.attr_id(&ava.attr) else {
                    continue;
                };
                let asserted = match attr {
                    Some(id) => {
                        if !schema.is_subtype_of(ad, id) {
                            continue;
                        }
                        value.to_vec()
                    }
                    None => {
                        if !schema.rule_usable_with(rule_idx, ad) {
                            continue;
                        }
                        match assertion(schema, rule_idx, Use::Value, raw) {
                            Some(a) => a,
                            None => continue,
                        }
                    }
                };
                if let Some(nv) = norm_value(&ava.value) {
                    if ext_match(spec.imp, spec.kind, &nv, &asserted) {
                        return TriState::True;
                    }
                }
            }
        }
    }
    TriState::False
}

/// The attributes of `entry` that a filter on `attr` with `options` looks at.
fn selected<'e>(
    schema: &'e Schema,
    entry: &'e Entry,
    attr: AttrId,
    options: &'e [String],
) -> impl Iterator<Item = &'e Attribute> {
    let subs = schema.subtypes(attr);
    entry
        .attrs
        .iter()
        .filter(move |a| subs.contains(&a.desc.id) && options_cover(&a.desc.options, options))
}
