//! Converts the wire form of a search filter into the schema crate's filter.

use ldap3_proto::proto::LdapFilter;
use roster_schema::{AttrId, CompiledFilter, Filter, Schema};

pub fn from_wire(f: &LdapFilter) -> Filter {
    match f {
        LdapFilter::And(v) => Filter::And(v.iter().map(from_wire).collect()),
        LdapFilter::Or(v) => Filter::Or(v.iter().map(from_wire).collect()),
        LdapFilter::Not(x) => Filter::Not(Box::new(from_wire(x))),
        LdapFilter::Equality(a, v) => Filter::Equality {
            attr: a.clone(),
            value: v.as_bytes().to_vec(),
        },
        LdapFilter::Substring(a, s) => Filter::Substrings {
            attr: a.clone(),
            initial: s.initial.as_ref().map(|x| x.as_bytes().to_vec()),
            any: s.any.iter().map(|x| x.as_bytes().to_vec()).collect(),
            final_: s.final_.as_ref().map(|x| x.as_bytes().to_vec()),
        },
        LdapFilter::GreaterOrEqual(a, v) => Filter::GreaterOrEqual {
            attr: a.clone(),
            value: v.as_bytes().to_vec(),
        },
        LdapFilter::LessOrEqual(a, v) => Filter::LessOrEqual {
            attr: a.clone(),
            value: v.as_bytes().to_vec(),
        },
        LdapFilter::Present(a) => Filter::Present { attr: a.clone() },
        LdapFilter::Approx(a, v) => Filter::Approx {
            attr: a.clone(),
            value: v.as_bytes().to_vec(),
        },
        LdapFilter::Extensible(m) => Filter::Extensible {
            rule: m.matching_rule.clone(),
            attr: m.type_.clone(),
            value: m.match_value.as_bytes().to_vec(),
            dn_attributes: m.dn_attributes,
        },
    }
}

/// The number of elements (items and operators) of a filter.
pub fn elements(f: &LdapFilter) -> usize {
    match f {
        LdapFilter::And(v) | LdapFilter::Or(v) => 1 + v.iter().map(elements).sum::<usize>(),
        LdapFilter::Not(x) => 1 + elements(x),
        _ => 1,
    }
}

/// Makes every part of a compiled filter that could look at a hidden attribute Undefined, so
/// that a client cannot test values it may not read (`(userPassword=...)`, or an ordering match
/// that narrows a hash down byte by byte). An extensible match without an attribute type
/// looks at every attribute, so it is Undefined too while anything is hidden.
pub fn hide(f: CompiledFilter, schema: &Schema, hidden: &[AttrId]) -> CompiledFilter {
    if hidden.is_empty() {
        return f;
    }
    let sees = |attr: AttrId| hidden.iter().any(|&h| schema.is_subtype_of(h, attr));
    match f {
        CompiledFilter::And(v) => {
            CompiledFilter::And(v.into_iter().map(|x| hide(x, schema, hidden)).collect())
        }
        CompiledFilter::Or(v) => {
            CompiledFilter::Or(v.into_iter().map(|x| hide(x, schema, hidden)).collect())
        }
        CompiledFilter::Not(x) => CompiledFilter::Not(Box::new(hide(*x, schema, hidden))),
        CompiledFilter::Equality { attr, .. }
        | CompiledFilter::Substrings { attr, .. }
        | CompiledFilter::GreaterOrEqual { attr, .. }
        | CompiledFilter::LessOrEqual { attr, .. }
        | CompiledFilter::Present { attr, .. }
        | CompiledFilter::Approx { attr, .. }
            if sees(attr) =>
        {
            CompiledFilter::Undefined
        }
        CompiledFilter::Extensible { attr: None, .. } => CompiledFilter::Undefined,
        CompiledFilter::Extensible {
            attr: Some(attr), ..
        } if sees(attr) => CompiledFilter::Undefined,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_attributes_make_filter_parts_undefined() {
        let schema = Schema::builtin();
        let pw = schema.attr_id("userPassword").unwrap();
        let compile = |s: &str| Filter::parse(s).unwrap().compile(&schema);
        let hidden = [pw];
        assert_eq!(
            hide(compile("(userPassword=x)"), &schema, &hidden),
            CompiledFilter::Undefined
        );
        assert_eq!(
            hide(compile("(userpassword:2.5.13.18:=x)"), &schema, &hidden),
            CompiledFilter::Undefined
        );
        assert_eq!(
            hide(compile("(:2.5.13.18:=x)"), &schema, &hidden),
            CompiledFilter::Undefined
        );
        assert_eq!(
            hide(compile("(|(cn=a)(!(userPassword=*)))"), &schema, &hidden),
            CompiledFilter::Or(vec![
                compile("(cn=a)"),
                CompiledFilter::Not(Box::new(CompiledFilter::Undefined))
            ])
        );
        // Nothing hidden (the root DN): the filter stays as it is.
        assert_eq!(
            hide(compile("(:2.5.13.18:=x)"), &schema, &[]),
            compile("(:2.5.13.18:=x)")
        );
    }
}
