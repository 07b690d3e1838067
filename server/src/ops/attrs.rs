//! Which attributes a search returns (RFC 4511 section 4.5.1.8: `*`, `+`, `1.1`, names, OIDs,
//! supertypes and options) and the conversion of an entry into a search result entry.

use ldap3_proto::proto::LdapPartialAttribute;
use roster_schema::{AttrDesc, AttrId, Entry, Schema};

/// The attribute list of a search request, resolved once per search.
#[derive(Debug, Default)]
pub struct AttrSelection {
    pub all_user: bool,
    pub all_operational: bool,
    /// Explicitly requested descriptions (unknown types are ignored, as RFC 4511 requires).
    pub wanted: Vec<AttrDesc>,
}

impl AttrSelection {
    pub fn parse(schema: &Schema, attrs: &[String]) -> AttrSelection {
        let mut sel = AttrSelection::default();
        for a in attrs {
            match a.as_str() {
                "*" => sel.all_user = true,
                "+" => sel.all_operational = true,
                "1.1" => {}
                other => {
                    // RFC 4529: "@class" asks for every attribute the class allows.
                    if let Some(class) = other.strip_prefix('@') {
                        if let Some(id) = schema.class_id(class) {
                            let all = schema.must_of(id).iter().chain(schema.may_of(id));
                            sel.wanted.extend(all.map(|&a| AttrDesc::plain(a)));
                        }
                    } else if let Some(d) = AttrDesc::parse(schema, other) {
                        sel.wanted.push(d);
                    }
                }
            }
        }
        // An empty list means all user attributes; a list holding only "1.1" means none.
        if attrs.is_empty() {
            sel.all_user = true;
        }
        sel
    }

    /// True if an attribute of the entry with this description is returned.
    pub fn includes(&self, schema: &Schema, desc: &AttrDesc) -> bool {
        let operational = schema.is_operational(desc.id);
        if (operational && self.all_operational) || (!operational && self.all_user) {
            return true;
        }
        self.wanted.iter().any(|w| {
            schema.is_subtype_of(desc.id, w.id) && options_cover(&desc.options, &w.options)
        })
    }

    /// True if operational attributes may be returned: "+" or attributes named in the list.
    /// When false, [`AttrSelection::wants`] is false for every type.
    pub fn names_operational(&self) -> bool {
        self.all_operational || !self.wanted.is_empty()
    }

    /// True if a computed operational attribute of type `id` (no options) is asked for.
    pub fn wants(&self, schema: &Schema, id: AttrId) -> bool {
        self.all_operational
            || self
                .wanted
                .iter()
                .any(|w| schema.is_subtype_of(id, w.id) && w.options.is_empty())
    }
}

/// True if every requested option is among the attribute's options (case-insensitively).
fn options_cover(have: &[String], requested: &[String]) -> bool {
    requested
        .iter()
        .all(|r| have.iter().any(|h| h.eq_ignore_ascii_case(r)))
}

/// Builds the (description, values) list of a search result for `entry`.
pub fn select(
    schema: &Schema,
    entry: &Entry,
    sel: &AttrSelection,
    types_only: bool,
    readable: &dyn Fn(AttrId) -> bool,
) -> Vec<LdapPartialAttribute> {
    let mut out = Vec::with_capacity(entry.attrs.len());
    for a in &entry.attrs {
        if !sel.includes(schema, &a.desc) || !readable(a.desc.id) {
            continue;
        }
        let vals = if types_only {
            Vec::new()
        } else {
            a.values.clone()
        };
        out.push(LdapPartialAttribute {
            atype: a.desc.to_string(schema),
            vals,
        });
    }
    out
}
