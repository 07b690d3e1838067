//! Entries as the server handles them: a DN and attributes whose types are resolved against the
//! schema, with options kept (`cn;lang-de`) and values as bytes.

use crate::dn::{Dn, NormDn};
use crate::error::EntryError;
use crate::registry::{AttrId, Schema};

/// An attribute description (RFC 4512 section 2.5): a type and its options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrDesc {
    pub id: AttrId,
    /// Options in the case the client wrote them, sorted case-insensitively.
    pub options: Vec<String>,
}

fn is_keystring(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

fn is_numericoid(s: &str) -> bool {
    s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

impl AttrDesc {
    /// Splits `type;opt1;opt2` and resolves the type. `None` if the type is not in the schema
    /// or the description is malformed.
    pub fn parse(schema: &Schema, desc: &str) -> Option<AttrDesc> {
        Self::parse_checked(schema, desc).ok()
    }

    /// Like [`AttrDesc::parse`], but says what is wrong: the error is
    /// [`EntryError::UndefinedAttribute`] or [`EntryError::MalformedDescription`].
    pub fn parse_checked(schema: &Schema, desc: &str) -> Result<AttrDesc, EntryError> {
        let mut parts = desc.split(';');
        let ty = parts.next().unwrap_or_default();
        if !(is_keystring(ty) || is_numericoid(ty)) {
            return Err(EntryError::MalformedDescription {
                attr: desc.to_string(),
            });
        }
        let mut options: Vec<String> = Vec::new();
        for o in parts {
            if o.is_empty() || !o.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                return Err(EntryError::MalformedDescription {
                    attr: desc.to_string(),
                });
            }
            if !options.iter().any(|x| x.eq_ignore_ascii_case(o)) {
                options.push(o.to_string());
            }
        }
        options.sort_by_key(|o| o.to_ascii_lowercase());
        let id = schema
            .attr_id(ty)
            .ok_or_else(|| EntryError::UndefinedAttribute(ty.to_string()))?;
        // slapd knows language tags and, on syntaxes that require it, `binary`; any other
        // option makes the whole description undefined.
        let binary_ok = schema
            .attr_syntax(id)
            .is_some_and(|s| s.binary_transfer_required());
        for o in &options {
            let lower = o.to_ascii_lowercase();
            if !(lower.starts_with("lang-") || (lower == "binary" && binary_ok)) {
                return Err(EntryError::UndefinedAttribute(desc.to_string()));
            }
        }
        Ok(AttrDesc { id, options })
    }

    /// A description without options.
    pub fn plain(id: AttrId) -> AttrDesc {
        AttrDesc {
            id,
            options: Vec::new(),
        }
    }

    /// The description as returned to clients: the type's first name and the options.
    pub fn to_string(&self, schema: &Schema) -> String {
        let mut s = schema
            .attr(self.id)
            .map(|a| a.name().to_string())
            .unwrap_or_default();
        for o in &self.options {
            s.push(';');
            s.push_str(o);
        }
        s
    }

    /// True if both name the same type with the same options (options compared
    /// case-insensitively): the two are one attribute of an entry.
    pub fn same_as(&self, other: &AttrDesc) -> bool {
        self.id == other.id
            && self.options.len() == other.options.len()
            && self
                .options
                .iter()
                .zip(&other.options)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// True if an attribute described by `self` is selected by a request or filter naming
    /// `wanted`: `self`'s type is `wanted`'s type or a subtype of it, and `self` carries every
    /// option of `wanted` (a language range such as `lang-en-` selects `lang-en-us`).
    pub fn is_selected_by(&self, schema: &Schema, wanted: &AttrDesc) -> bool {
        schema.is_subtype_of(self.id, wanted.id) && options_cover(&self.options, &wanted.options)
    }
}

/// True if `have` includes every option in `want` (RFC 4512 section 2.5, with RFC 3866
/// language ranges: a wanted option ending in `-` matches any option it prefixes).
pub(crate) fn options_cover(have: &[String], want: &[String]) -> bool {
    want.iter().all(|w| {
        have.iter().any(|h| {
            h.eq_ignore_ascii_case(w)
                || (w.ends_with('-')
                    && h.len() > w.len()
                    && h.get(..w.len()).is_some_and(|p| p.eq_ignore_ascii_case(w)))
        })
    })
}

/// One attribute of an entry: a description and its values, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub desc: AttrDesc,
    pub values: Vec<Vec<u8>>,
}

/// An entry: its DN as written, its normalized DN, and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    pub ndn: NormDn,
    pub attrs: Vec<Attribute>,
}

impl Entry {
    /// Builds an entry from a DN string and `(description, values)` pairs as they arrive in an
    /// LDAP add or an LDIF record. Descriptions are resolved against the schema; pairs naming
    /// the same description (type and options) are merged in order. Values are not checked
    /// here: [`Schema::check_entry`] does that.
    pub fn from_parts(
        schema: &Schema,
        dn: &str,
        parts: Vec<(String, Vec<Vec<u8>>)>,
    ) -> Result<Entry, EntryError> {
        let parsed = Dn::parse(dn)?;
        let ndn = parsed.normalize(schema)?;
        let mut attrs: Vec<Attribute> = Vec::with_capacity(parts.len());
        for (desc, values) in parts {
            let d = AttrDesc::parse_checked(schema, &desc)?;
            if values.is_empty() {
                return Err(EntryError::NoValues { attr: desc });
            }
            match attrs.iter_mut().find(|a| a.desc.same_as(&d)) {
                Some(a) => a.values.extend(values),
                None => attrs.push(Attribute { desc: d, values }),
            }
        }
        Ok(Entry {
            dn: parsed,
            ndn,
            attrs,
        })
    }

    /// All values of attributes of exactly this type (any options).
    pub fn values_of(&self, id: AttrId) -> impl Iterator<Item = &Vec<u8>> {
        self.attrs
            .iter()
            .filter(move |a| a.desc.id == id)
            .flat_map(|a| a.values.iter())
    }

    /// The attribute with exactly this type and no options.
    pub fn get(&self, id: AttrId) -> Option<&Attribute> {
        self.attrs
            .iter()
            .find(|a| a.desc.id == id && a.desc.options.is_empty())
    }

    /// True if any of the entry's objectClass values names `class` or a subclass of it.
    pub fn has_object_class(&self, schema: &Schema, class: &str) -> bool {
        let (Some(oc_attr), Some(want)) = (
            schema.attr_id(crate::registry::oids::OBJECT_CLASS),
            schema.class_id(class),
        ) else {
            return false;
        };
        self.values_of(oc_attr).any(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|n| schema.class_id(n.trim()))
                .is_some_and(|c| schema.is_subclass_of(c, want))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_desc_options() {
        let s = Schema::builtin();
        let d = AttrDesc::parse(&s, "CN;Lang-DE;lang-EN").unwrap();
        assert_eq!(d.id, s.attr_id("cn").unwrap());
        assert_eq!(d.options, vec!["Lang-DE", "lang-EN"]);
        assert_eq!(d.to_string(&s), "cn;Lang-DE;lang-EN");
        let e = AttrDesc::parse(&s, "commonName;lang-en;lang-de").unwrap();
        assert!(d.same_as(&e));
        assert_eq!(AttrDesc::parse(&s, "2.5.4.3").unwrap().id, d.id);
        assert!(AttrDesc::parse(&s, "cn;").is_none());
        assert!(AttrDesc::parse(&s, "cn;a_b").is_none());
        assert!(AttrDesc::parse(&s, "1cn").is_none());
        assert!(AttrDesc::parse(&s, "nosuch").is_none());
        assert_eq!(
            AttrDesc::parse_checked(&s, "nosuch;x"),
            Err(EntryError::UndefinedAttribute("nosuch".into()))
        );
        assert_eq!(
            AttrDesc::parse(&s, "cn;lang-x;LANG-X")
                .unwrap()
                .options
                .len(),
            1
        );
        // Only language tags, and binary on binary-transfer syntaxes, are options slapd knows.
        assert!(AttrDesc::parse(&s, "cn;x-foo").is_none());
        assert!(AttrDesc::parse(&s, "cn;binary").is_none());
        assert!(AttrDesc::parse(&s, "userCertificate;binary").is_some());
    }

    #[test]
    fn selection_by_subtype_and_options() {
        let s = Schema::builtin();
        let cn_de = AttrDesc::parse(&s, "cn;lang-de").unwrap();
        let cn_en_us = AttrDesc::parse(&s, "cn;lang-en-us").unwrap();
        let name = AttrDesc::parse(&s, "name").unwrap();
        let name_de = AttrDesc::parse(&s, "name;LANG-DE").unwrap();
        let cn_en_range = AttrDesc::parse(&s, "cn;lang-en-").unwrap();
        assert!(cn_de.is_selected_by(&s, &name));
        assert!(cn_de.is_selected_by(&s, &name_de));
        assert!(!AttrDesc::parse(&s, "cn")
            .unwrap()
            .is_selected_by(&s, &name_de));
        assert!(cn_en_us.is_selected_by(&s, &cn_en_range));
        assert!(!cn_de.is_selected_by(&s, &cn_en_range));
        assert!(!name.is_selected_by(&s, &cn_de));
    }

    #[test]
    fn from_parts_merges_and_reports() {
        let s = Schema::builtin();
        let e = Entry::from_parts(
            &s,
            "uid=JDoe,ou=Users,dc=example,dc=com",
            vec![
                ("objectClass".into(), vec![b"inetOrgPerson".to_vec()]),
                ("cn".into(), vec![b"John".to_vec()]),
                ("commonName".into(), vec![b"Johnny".to_vec()]),
                ("cn;lang-de".into(), vec![b"Johann".to_vec()]),
            ],
        )
        .unwrap();
        assert_eq!(e.ndn.to_string(), "uid=jdoe,ou=users,dc=example,dc=com");
        assert_eq!(e.attrs.len(), 3);
        let cn = s.attr_id("cn").unwrap();
        assert_eq!(e.get(cn).unwrap().values.len(), 2);
        assert_eq!(e.values_of(cn).count(), 3);
        assert!(e.has_object_class(&s, "person"));
        assert!(e.has_object_class(&s, "top"));
        assert!(!e.has_object_class(&s, "groupOfNames"));
        let err =
            Entry::from_parts(&s, "cn=x", vec![("bogus".into(), vec![b"x".to_vec()])]).unwrap_err();
        assert_eq!(err.to_string(), "bogus: attribute type undefined");
        let err = Entry::from_parts(&s, "cn=x,,", vec![]).unwrap_err();
        assert!(matches!(err, EntryError::Dn(_)));
        let err = Entry::from_parts(&s, "cn=x", vec![("cn".into(), vec![])]).unwrap_err();
        assert_eq!(err, EntryError::NoValues { attr: "cn".into() });
    }
}
