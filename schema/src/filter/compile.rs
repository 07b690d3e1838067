//! Compiling a filter: attribute types resolved, assertion values normalized once.

use super::*;

/// options slapd does not know (anything but `lang-` tags, and `binary` on binary syntaxes).
/// Resolves a filter's attribute description; `None` (Undefined) for unknown types and for
pub(super) fn resolve(schema: &Schema, attr: &str) -> Option<AttrDesc> {
    AttrDesc::parse(schema, attr)
}

/// The assertion value checked against the rule's own syntax, then normalized (slapd's
/// `asserted_value_validate_normalize`). `None` makes the filter item Undefined.
pub(super) fn assertion(schema: &Schema, rule: usize, use_: Use, value: &[u8]) -> Option<Vec<u8>> {
    let spec = schema.rule_spec(rule)?;
    if spec.imp == RuleImpl::NoMatch {
        return None;
    }
    let def = schema.rule_def(rule)?;
    if let Some(info) = schema
        .syntax(&def.syntax)
        .map(|s| rules::syntax_impl(&s.oid))
    {
        if !matches!(info, rules::SyntaxImpl::NoValidator)
            && rules::validate(schema, info, value).is_err()
        {
            return None;
        }
    }
    rules::normalize(schema, spec.imp, use_, value).ok()
}

pub(super) fn compile_equality(schema: &Schema, attr: &str, value: &[u8]) -> CompiledFilter {
    let Some(d) = resolve(schema, attr) else {
        return CompiledFilter::Undefined;
    };
    let Some(info) = schema.attr_info(d.id) else {
        return CompiledFilter::Undefined;
    };
    if info.class_valued {
        // objectSubClassMatch: an unknown class makes the assertion Undefined.
        let name = std::str::from_utf8(value).unwrap_or_default().trim();
        return match schema.class_id(name).and_then(|c| schema.class(c)) {
            Some(c) => CompiledFilter::Equality {
                attr: d.id,
                key: c.oid.as_bytes().to_vec(),
                options: d.options,
            },
            None => CompiledFilter::Undefined,
        };
    }
    let Some(rule) = info.equality else {
        return CompiledFilter::Undefined;
    };
    match assertion(schema, rule, Use::Value, value) {
        Some(key) => CompiledFilter::Equality {
            attr: d.id,
            key,
            options: d.options,
        },
        None => CompiledFilter::Undefined,
    }
}

pub(super) fn compile_substrings(
    schema: &Schema,
    attr: &str,
    initial: &Option<Vec<u8>>,
    any: &[Vec<u8>],
    final_: &Option<Vec<u8>>,
) -> CompiledFilter {
    let Some(d) = resolve(schema, attr) else {
        return CompiledFilter::Undefined;
    };
    let Some(rule) = schema.attr_info(d.id).and_then(|i| i.substr) else {
        return CompiledFilter::Undefined;
    };
    let norm = |v: &[u8], use_| assertion(schema, rule, use_, v);
    let mut pieces = SubstringPieces::default();
    if let Some(i) = initial {
        match norm(i, Use::SubInitial) {
            Some(n) => pieces.initial = Some(n),
            None => return CompiledFilter::Undefined,
        }
    }
    for a in any {
        match norm(a, Use::SubAny) {
            Some(n) => pieces.any.push(n),
            None => return CompiledFilter::Undefined,
        }
    }
    if let Some(f) = final_ {
        match norm(f, Use::SubFinal) {
            Some(n) => pieces.final_ = Some(n),
            None => return CompiledFilter::Undefined,
        }
    }
    CompiledFilter::Substrings {
        attr: d.id,
        pieces,
        options: d.options,
    }
}

pub(super) fn compile_ordering(
    schema: &Schema,
    attr: &str,
    value: &[u8],
    ge: bool,
) -> CompiledFilter {
    let Some(d) = resolve(schema, attr) else {
        return CompiledFilter::Undefined;
    };
    if is_entry_dn(schema, d.id) {
        return CompiledFilter::Undefined;
    }
    let Some(rule) = schema.attr_info(d.id).and_then(|i| i.ordering) else {
        return CompiledFilter::Undefined;
    };
    match assertion(schema, rule, Use::Value, value) {
        Some(v) if ge => CompiledFilter::GreaterOrEqual {
            attr: d.id,
            value: v,
            options: d.options,
        },
        Some(v) => CompiledFilter::LessOrEqual {
            attr: d.id,
            value: v,
            options: d.options,
        },
        None => CompiledFilter::Undefined,
    }
}

pub(super) fn compile_approx(schema: &Schema, attr: &str, value: &[u8]) -> CompiledFilter {
    let Some(d) = resolve(schema, attr) else {
        return CompiledFilter::Undefined;
    };
    let Some(info) = schema.attr_info(d.id) else {
        return CompiledFilter::Undefined;
    };
    if let Some(rule) = info.approx {
        // The approximate rules have no normalizer: the value is only checked for its syntax.
        return match assertion(schema, rule, Use::Value, value) {
            Some(v) => CompiledFilter::Approx {
                attr: d.id,
                value: v,
                options: d.options,
                phonetic: true,
            },
            None => CompiledFilter::Undefined,
        };
    }
    match compile_equality(schema, attr, value) {
        CompiledFilter::Equality { attr, key, options } => CompiledFilter::Approx {
            attr,
            value: key,
            options,
            phonetic: false,
        },
        other => other,
    }
}

pub(super) fn compile_extensible(
    schema: &Schema,
    rule: Option<&str>,
    attr: Option<&str>,
    value: &[u8],
    dn_attributes: bool,
) -> CompiledFilter {
    let desc = match attr {
        Some(a) => match resolve(schema, a) {
            Some(d) => Some(d),
            None => return CompiledFilter::Undefined,
        },
        None => None,
    };
    if let (Some(r), Some(d)) = (rule, &desc) {
        if r == IN_CHAIN_RULE {
            return compile_in_chain(schema, d, value);
        }
    }
    let rule_idx = match (rule, &desc) {
        (Some(r), _) => match schema.rule_index_of(r) {
            Some(i) => i,
            None => return CompiledFilter::Undefined,
        },
        (None, Some(d)) => match schema.attr_info(d.id).and_then(|i| i.equality) {
            Some(i) => i,
            None => return CompiledFilter::Undefined,
        },
        (None, None) => return CompiledFilter::Undefined,
    };
    let Some(spec) = schema.rule_spec(rule_idx) else {
        return CompiledFilter::Undefined;
    };
    if matches!(spec.imp, RuleImpl::NoMatch) || spec.kind == RuleKind::Substr {
        return CompiledFilter::Undefined;
    }
    let rule_oid = schema.rule_def(rule_idx).map(|r| r.oid.clone());
    let (attr_id, options, normalized) = match desc {
        Some(d) => {
            if !schema.rule_usable_with(rule_idx, d.id) {
                return CompiledFilter::Undefined;
            }
            match assertion(schema, rule_idx, Use::Value, value) {
                Some(n) => (Some(d.id), d.options, n),
                None => return CompiledFilter::Undefined,
            }
        }
        None => (None, Vec::new(), value.to_vec()),
    };
    CompiledFilter::Extensible {
        rule: rule_oid,
        attr: attr_id,
        value: normalized,
        dn_attributes,
        options,
        raw: value.to_vec(),
    }
}

/// The in-chain rule applies to attributes of the DN syntax and takes a DN; anything else, or
/// options on the attribute, is Undefined.
pub(super) fn compile_in_chain(schema: &Schema, desc: &AttrDesc, value: &[u8]) -> CompiledFilter {
    let is_dn = schema
        .attr_syntax(desc.id)
        .is_some_and(|s| s.oid == DN_SYNTAX);
    if !is_dn || !desc.options.is_empty() {
        return CompiledFilter::Undefined;
    }
    let dn = std::str::from_utf8(value)
        .ok()
        .and_then(|v| Dn::parse(v).ok())
        .and_then(|d| d.normalize(schema).ok());
    match dn {
        Some(dn) => CompiledFilter::InChain { attr: desc.id, dn },
        None => CompiledFilter::Undefined,
    }
}

pub(super) fn is_entry_dn(schema: &Schema, id: AttrId) -> bool {
    schema.special.entry_dn == Some(id)
}
