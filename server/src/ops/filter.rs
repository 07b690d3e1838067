//! Converts the wire form of a search filter into the schema crate's filter.

use ldap3_proto::proto::LdapFilter;
use roster_schema::{AttrId, CompiledFilter, Filter, ItemType, Schema};

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

/// The attribute types the items of `f` name, when the items' types are all that access
/// control needs to know: no item is about a type with subtypes, and no extensible match lacks
/// a type. `None` otherwise.
///
/// When the requester may search every one of these types, a filter the store matched (True)
/// is True under access control too: each item on an allowed type evaluates as it did in the
/// store (`CompiledFilter::evaluate_with` hides only values of disallowed types and of
/// disallowed subtypes, and there are none), so the connectives give what they gave. A search
/// then checks the rights to these types instead of evaluating the filter a second time; when
/// one of them may not be searched it still evaluates the filter under the rights (an OR with
/// an Undefined item may still be True).
pub fn plain_item_types(schema: &Schema, f: &CompiledFilter) -> Option<Vec<AttrId>> {
    fn walk(schema: &Schema, f: &CompiledFilter, out: &mut Vec<AttrId>) -> bool {
        match f.item_type() {
            ItemType::Connective => f.parts().iter().all(|p| walk(schema, p, out)),
            ItemType::Undefined => true,
            ItemType::Attribute(attr) => {
                // `subtypes` lists the type itself.
                if schema.subtypes(attr).len() > 1 {
                    return false;
                }
                if !out.contains(&attr) {
                    out.push(attr);
                }
                true
            }
            ItemType::Every => false,
        }
    }
    let mut out = Vec::new();
    walk(schema, f, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn types(schema: &Schema, f: &str) -> Option<Vec<String>> {
        let compiled = Filter::parse(f).unwrap().compile(schema);
        plain_item_types(schema, &compiled).map(|ids| {
            ids.iter()
                .map(|id| schema.attr(*id).unwrap().name().to_string())
                .collect()
        })
    }

    #[test]
    fn item_types_decide_only_for_plain_filters() {
        let schema = Schema::builtin();
        assert_eq!(types(&schema, "(mail=a@b.c)"), Some(vec!["mail".into()]));
        assert_eq!(
            types(
                &schema,
                "(&(mail=a@b.c)(!(uid=x))(|(mail=*@b.c)(objectClass=person)))"
            ),
            Some(vec!["mail".into(), "uid".into(), "objectClass".into()])
        );
        assert_eq!(
            types(&schema, "(uid:caseExactMatch:=x)"),
            Some(vec!["uid".into()])
        );
        // `name` has subtypes (cn, sn, ...): their rights may differ, so the filter is
        // evaluated under access control.
        assert_eq!(types(&schema, "(name=x)"), None);
        assert_eq!(types(&schema, "(&(mail=a@b.c)(name=x))"), None);
        // An extensible match without a type looks at every attribute.
        assert_eq!(types(&schema, "(:caseIgnoreMatch:=x)"), None);
    }
}
