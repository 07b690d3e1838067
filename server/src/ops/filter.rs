//! Converts the wire form of a search filter into the schema crate's filter.

use ldap3_proto::proto::LdapFilter;
use roster_schema::Filter;

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
