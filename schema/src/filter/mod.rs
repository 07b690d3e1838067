//! Search filters (RFC 4511 section 4.5.1): the abstract form, the RFC 4515 string form, and a
//! compiled form with attribute types resolved and assertion values normalized once, evaluated
//! against entries with three-valued logic.
//!
//! Evaluation follows slapd's `filterentry.c` so that a search answers exactly as slapd would:
//! an assertion on an undefined attribute type (or an unsupported option), with no matching rule
//! of the needed kind, or with a value the rule's syntax rejects is Undefined as a whole; an
//! attribute present in the entry whose own type lacks the rule makes the item Undefined unless
//! another value matches; `objectClass` equality matches subclasses (`(objectClass=person)`
//! matches an `inetOrgPerson`); `entryDN`, `subschemaSubentry` and `hasSubordinates` are always
//! present; `~=` uses slapd's metaphone word match where the equality rule has an approximate
//! rule and falls back to equality elsewhere; an ordering rule in an extensible match asserts
//! "less than".

use crate::approx;
use crate::dn::{Dn, NormDn};
use crate::entry::{options_cover, AttrDesc, Attribute, Entry};
use crate::error::ValueError;
use crate::registry::{AttrId, Schema};
use crate::rules::{self, RuleImpl, RuleKind, Use};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

mod compile;
mod eval;
mod parse;
#[cfg(test)]
mod tests;

use compile::*;
use parse::*;

/// A filter as received from a client, nothing resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equality {
        attr: String,
        value: Vec<u8>,
    },
    Substrings {
        attr: String,
        initial: Option<Vec<u8>>,
        any: Vec<Vec<u8>>,
        final_: Option<Vec<u8>>,
    },
    GreaterOrEqual {
        attr: String,
        value: Vec<u8>,
    },
    LessOrEqual {
        attr: String,
        value: Vec<u8>,
    },
    Present {
        attr: String,
    },
    Approx {
        attr: String,
        value: Vec<u8>,
    },
    Extensible {
        rule: Option<String>,
        attr: Option<String>,
        value: Vec<u8>,
        dn_attributes: bool,
    },
}

/// The three truth values of RFC 4511 filter evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriState {
    True,
    False,
    Undefined,
}

impl TriState {
    pub fn is_true(self) -> bool {
        self == TriState::True
    }
}

/// Normalized substring assertion pieces (each normalized with the substring rule).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubstringPieces {
    pub initial: Option<Vec<u8>>,
    pub any: Vec<Vec<u8>>,
    pub final_: Option<Vec<u8>>,
}

/// A filter with attributes resolved and assertion values normalized. Parts that can never be
/// True or False (an undefined attribute type, an attribute without the needed matching rule, an
/// assertion value invalid for the syntax) compile to `Undefined`. `And(vec![])` is always True
/// and `Or(vec![])` always False (RFC 4526 absolute filters).
///
/// `options` are the attribute options of the filter's description (`cn;lang-de`): only values
/// of attributes carrying all of them are considered. Match variants with `..`: fields may be
/// added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledFilter {
    And(Vec<CompiledFilter>),
    Or(Vec<CompiledFilter>),
    Not(Box<CompiledFilter>),
    Undefined,
    /// `key` is the assertion value normalized with the attribute's equality rule (for
    /// `objectClass`, the asserted class's numeric OID).
    Equality {
        attr: AttrId,
        key: Vec<u8>,
        options: Vec<String>,
    },
    Substrings {
        attr: AttrId,
        pieces: SubstringPieces,
        options: Vec<String>,
    },
    /// `value` is normalized with the attribute's ordering rule.
    GreaterOrEqual {
        attr: AttrId,
        value: Vec<u8>,
        options: Vec<String>,
    },
    LessOrEqual {
        attr: AttrId,
        value: Vec<u8>,
        options: Vec<String>,
    },
    Present {
        attr: AttrId,
        options: Vec<String>,
    },
    /// With `phonetic`, `value` is the assertion as sent and values match by slapd's metaphone
    /// word comparison; without, `value` is the equality key and this is an equality match.
    Approx {
        attr: AttrId,
        value: Vec<u8>,
        options: Vec<String>,
        phonetic: bool,
    },
    /// An extensible match, evaluated by the named (or the attribute's equality) matching rule.
    /// `rule` is the rule's numeric OID. With an attribute, `value` is normalized with the rule;
    /// without one it is `raw`, normalized per attribute during evaluation.
    Extensible {
        rule: Option<String>,
        attr: Option<AttrId>,
        value: Vec<u8>,
        dn_attributes: bool,
        options: Vec<String>,
        raw: Vec<u8>,
    },
    /// `(attr:1.2.840.113556.1.4.1941:=dn)`, Active Directory's in-chain rule on a DN-syntax
    /// attribute: true for an entry linked to `dn` through a chain of `attr` values (for
    /// `memberOf`, the members of the group `dn` and of the groups nested in it; for `member`,
    /// the groups that hold `dn` directly or through nested groups). Deciding it needs the
    /// directory, so evaluation alone gives Undefined; a store resolves it into [`Self::DnIn`].
    InChain {
        attr: AttrId,
        dn: NormDn,
    },
    /// True for the entries whose normalized DN is in the set, False for the others: what a
    /// store resolves a filter on directory links into (see [`Self::InChain`]).
    /// `attr` is the attribute type the resolved item was about (`memberOf`, `member`), for
    /// access control.
    DnIn {
        attr: AttrId,
        set: Arc<HashSet<NormDn>>,
    },
}

/// What one item of a compiled filter tests ([`CompiledFilter::item_type`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    /// `And`, `Or`, `Not`: nothing of its own ([`CompiledFilter::parts`]).
    Connective,
    /// Undefined whatever the entry.
    Undefined,
    /// An item on this attribute type, which also looks at its subtypes' values.
    Attribute(AttrId),
    /// An extensible match without a type: it looks at every attribute.
    Every,
}

/// The OID of Active Directory's in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN).
pub const IN_CHAIN_RULE: &str = "1.2.840.113556.1.4.1941";

/// The OID of the DN syntax (RFC 4517 section 3.3.9).
const DN_SYNTAX: &str = "1.3.6.1.4.1.1466.115.121.1.12";

impl fmt::Display for Filter {
    /// The RFC 4515 string form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

impl Filter {
    /// Parses the RFC 4515 string form, including `\XX` escapes, attribute options and numeric OIDs.
    /// Like ldapsearch, a filter without enclosing parentheses (`cn=x`) is accepted.
    pub fn parse(s: &str) -> Result<Filter, ValueError> {
        let t = s.trim();
        let owned;
        let text = if t.starts_with('(') {
            t
        } else {
            owned = format!("({t})");
            owned.as_str()
        };
        parse_whole(text)
    }

    fn write(&self, s: &mut String) {
        s.push('(');
        match self {
            Filter::And(v) | Filter::Or(v) => {
                s.push(if matches!(self, Filter::And(_)) {
                    '&'
                } else {
                    '|'
                });
                for x in v {
                    x.write(s);
                }
            }
            Filter::Not(x) => {
                s.push('!');
                x.write(s);
            }
            Filter::Equality { attr, value } => {
                s.push_str(attr);
                s.push('=');
                escape_value(value, s);
            }
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            } => {
                s.push_str(attr);
                s.push('=');
                if let Some(i) = initial {
                    escape_value(i, s);
                }
                s.push('*');
                for a in any {
                    escape_value(a, s);
                    s.push('*');
                }
                if let Some(fv) = final_ {
                    escape_value(fv, s);
                }
            }
            Filter::GreaterOrEqual { attr, value } => {
                s.push_str(attr);
                s.push_str(">=");
                escape_value(value, s);
            }
            Filter::LessOrEqual { attr, value } => {
                s.push_str(attr);
                s.push_str("<=");
                escape_value(value, s);
            }
            Filter::Present { attr } => {
                s.push_str(attr);
                s.push_str("=*");
            }
            Filter::Approx { attr, value } => {
                s.push_str(attr);
                s.push_str("~=");
                escape_value(value, s);
            }
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
            } => {
                if let Some(a) = attr {
                    s.push_str(a);
                }
                if *dn_attributes {
                    s.push_str(":dn");
                }
                if let Some(r) = rule {
                    s.push(':');
                    s.push_str(r);
                }
                s.push_str(":=");
                escape_value(value, s);
            }
        }
        s.push(')');
    }

    /// Resolves attribute types and normalizes assertion values once, so that evaluation per
    /// candidate entry does no parsing and little allocation.
    pub fn compile(&self, schema: &Schema) -> CompiledFilter {
        match self {
            Filter::And(v) => CompiledFilter::And(v.iter().map(|f| f.compile(schema)).collect()),
            Filter::Or(v) => CompiledFilter::Or(v.iter().map(|f| f.compile(schema)).collect()),
            Filter::Not(f) => CompiledFilter::Not(Box::new(f.compile(schema))),
            Filter::Equality { attr, value } => compile_equality(schema, attr, value),
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            } => compile_substrings(schema, attr, initial, any, final_),
            Filter::GreaterOrEqual { attr, value } => compile_ordering(schema, attr, value, true),
            Filter::LessOrEqual { attr, value } => compile_ordering(schema, attr, value, false),
            Filter::Present { attr } => match resolve(schema, attr) {
                Some(d) => CompiledFilter::Present {
                    attr: d.id,
                    options: d.options,
                },
                None => CompiledFilter::Undefined,
            },
            Filter::Approx { attr, value } => compile_approx(schema, attr, value),
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
            } => compile_extensible(
                schema,
                rule.as_deref(),
                attr.as_deref(),
                value,
                *dn_attributes,
            ),
        }
    }
}
