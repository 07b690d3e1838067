//! Entry checks against the schema (RFC 4512 sections 2.4 and 4.1), in the order and with the
//! messages of slapd's `slap_mods_check` and `entry_schema_check`: values valid per syntax, no
//! duplicate values, single-valued types with one value, then objectClass present, one
//! structural chain, abstract classes only as superclasses, naming attributes present, MUST
//! attributes present, every attribute allowed.
//!
//! NO-USER-MODIFICATION is not checked here: whether a client may set an operational attribute
//! depends on the operation, which the server knows and this crate does not.

use crate::entry::{AttrDesc, Attribute, Entry};
use crate::error::EntryError;
use crate::model::ObjectClassKind;
use crate::registry::{oids, AttrId, ClassId, Schema};
use crate::rules;

impl Schema {
    /// Checks an entry against the schema. The first problem found is reported, as slapd does.
    pub fn check_entry(&self, entry: &Entry) -> Result<(), EntryError> {
        self.check_values(entry)?;
        let oc_attr = self
            .attr_id(oids::OBJECT_CLASS)
            .ok_or(EntryError::NoObjectClass)?;
        let oc_values: Vec<&Vec<u8>> = entry.values_of(oc_attr).collect();
        if oc_values.is_empty() {
            return Err(EntryError::NoObjectClass);
        }
        let classes: Vec<ClassId> = oc_values
            .iter()
            .map(|v| {
                let name = String::from_utf8_lossy(v);
                self.class_id(name.trim())
                    .ok_or_else(|| EntryError::UnknownObjectClass(name.into_owned()))
            })
            .collect::<Result<_, _>>()?;
        let structural = self.structural_class_of(&classes)?;
        if let Some(soc) = self.attr_id(oids::STRUCTURAL_OBJECT_CLASS) {
            if let Some(v) = entry.values_of(soc).next() {
                let given = String::from_utf8_lossy(v);
                if self.class_id(given.trim()) != Some(structural) {
                    return Err(EntryError::StructuralClassChange {
                        from: given.into_owned(),
                        to: self.class_name(structural).to_string(),
                    });
                }
            }
        }
        for (i, c) in classes.iter().enumerate() {
            if self.class(*c).map(|x| x.kind) != Some(ObjectClassKind::Abstract)
                || self.class(*c).is_some_and(|x| x.oid == "2.5.6.0")
            {
                continue;
            }
            // An abstract class may only appear as a superclass of another listed class.
            let justified = classes
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && self.is_subclass_of(*other, *c));
            if !justified {
                return Err(EntryError::AbstractClass(self.class_name(*c).to_string()));
            }
        }
        self.check_naming(entry)?;
        for c in &classes {
            for must in self.must_of(*c) {
                if !entry.attrs.iter().any(|a| a.desc.id == *must) {
                    return Err(EntryError::MissingRequired {
                        class: self.class_name(*c).to_string(),
                        attr: self.attr_name(*must).to_string(),
                    });
                }
            }
        }
        let extensible = classes.iter().any(|c| {
            self.class(*c)
                .is_some_and(|x| x.oid == oids::EXTENSIBLE_OBJECT)
        });
        if !extensible {
            for a in &entry.attrs {
                if self.is_operational(a.desc.id) {
                    continue;
                }
                let allowed = classes.iter().any(|c| {
                    self.must_of(*c).contains(&a.desc.id) || self.may_of(*c).contains(&a.desc.id)
                });
                if !allowed {
                    return Err(EntryError::NotAllowed {
                        attr: self.attr_name(a.desc.id).to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn class_name(&self, id: ClassId) -> &str {
        self.class(id).map(|c| c.name()).unwrap_or_default()
    }

    /// The entry's structural object class: the most derived of the listed structural classes,
    /// which must form one superclass chain (slapd's `structural_class`).
    pub fn structural_class_of(&self, classes: &[ClassId]) -> Result<ClassId, EntryError> {
        let mut sc: Option<ClassId> = None;
        for c in classes {
            if self.class(*c).map(|x| x.kind) != Some(ObjectClassKind::Structural) {
                continue;
            }
            sc = match sc {
                None => Some(*c),
                Some(cur) if self.is_subclass_of(*c, cur) => Some(*c),
                Some(cur) if self.is_subclass_of(cur, *c) => Some(cur),
                Some(cur) => {
                    return Err(EntryError::MultipleStructuralClasses {
                        first: self.class_name(cur).to_string(),
                        second: self.class_name(*c).to_string(),
                    })
                }
            };
        }
        sc.ok_or(EntryError::NoStructuralClass)
    }

    /// The structural object class of an entry by its objectClass values (names or OIDs);
    /// what the server stores as `structuralObjectClass`.
    pub fn structural_class(&self, entry: &Entry) -> Result<ClassId, EntryError> {
        let oc_attr = self
            .attr_id(oids::OBJECT_CLASS)
            .ok_or(EntryError::NoObjectClass)?;
        let mut classes = Vec::new();
        for v in entry.values_of(oc_attr) {
            let name = String::from_utf8_lossy(v);
            classes.push(
                self.class_id(name.trim())
                    .ok_or_else(|| EntryError::UnknownObjectClass(name.into_owned()))?,
            );
        }
        if classes.is_empty() {
            return Err(EntryError::NoObjectClass);
        }
        self.structural_class_of(&classes)
    }

    /// Syntax, duplicate and single-value checks on every attribute (slapd's mods check).
    fn check_values(&self, entry: &Entry) -> Result<(), EntryError> {
        for a in &entry.attrs {
            // Named only in an error.
            let name = || self.attr_name(a.desc.id).to_string();
            if a.values.is_empty() {
                return Err(EntryError::NoValues { attr: name() });
            }
            let info = self.attr_info(a.desc.id);
            let class_valued = info.is_some_and(|i| i.class_valued);
            // Normalized values to find duplicates, kept only when there is more than one.
            let several = a.values.len() > 1;
            let mut keys: Vec<Vec<u8>> =
                Vec::with_capacity(if several { a.values.len() } else { 0 });
            // A DN under distinguishedNameMatch is parsed and normalized by its syntax check
            // and again by its normalization: when the normalization succeeds, the syntax
            // check would too, so it is skipped (members of large groups, the server's own
            // creatorsName and modifiersName). When it fails, the syntax check runs as for any
            // value and gives its message.
            let dn_valued = info.is_some_and(|inf| {
                inf.syntax_impl == rules::SyntaxImpl::Dn
                    && inf.equality.and_then(|r| self.rule_spec(r)).map(|r| r.imp)
                        == Some(rules::RuleImpl::DistinguishedName)
            });
            for (i, v) in a.values.iter().enumerate() {
                let early = dn_valued.then(|| self.normalize_eq(a.desc.id, v));
                let valid = if let Some(Ok(Some(_))) = &early {
                    true
                } else if class_valued {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| self.class_id(s.trim()))
                        .is_some()
                } else {
                    info.is_some_and(|inf| rules::validate(self, inf.syntax_impl, v).is_ok())
                };
                if !valid {
                    let message = self
                        .validate(a.desc.id, v)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    return Err(EntryError::InvalidValue {
                        attr: name(),
                        index: i,
                        message,
                    });
                }
                let key = match early.unwrap_or_else(|| self.normalize_eq(a.desc.id, v)) {
                    Ok(Some(k)) => k,
                    Ok(None) => v.clone(),
                    Err(e) => {
                        return Err(EntryError::InvalidValue {
                            attr: name(),
                            index: i,
                            message: e.to_string(),
                        })
                    }
                };
                if let Some(j) = keys.iter().position(|k| *k == key) {
                    return Err(EntryError::DuplicateValue {
                        attr: name(),
                        index: j,
                    });
                }
                if several {
                    keys.push(key);
                }
            }
            if self.attr(a.desc.id).is_some_and(|t| t.single_value) && a.values.len() > 1 {
                return Err(EntryError::SingleValued { attr: name() });
            }
        }
        Ok(())
    }

    /// Every AVA of the entry's RDN must be one of its values (RFC 4512 section 2.3).
    fn check_naming(&self, entry: &Entry) -> Result<(), EntryError> {
        let Some(rdn) = entry.dn.rdns.first() else {
            return Ok(());
        };
        for ava in &rdn.avas {
            let id = self
                .attr_id(&ava.attr)
                .ok_or_else(|| EntryError::UndefinedAttribute(ava.attr.clone()))?;
            if !self.has_value(entry, id, &ava.value) {
                return Err(EntryError::NamingAttributeMissing {
                    attr: self.attr_name(id).to_string(),
                });
            }
        }
        Ok(())
    }

    /// True if the entry has `value` for exactly type `id` (any options), by equality rule.
    fn has_value(&self, entry: &Entry, id: AttrId, value: &[u8]) -> bool {
        let key = self.normalize_eq(id, value).ok().flatten();
        entry.values_of(id).any(|v| match &key {
            Some(k) => self.normalize_eq(id, v).ok().flatten().as_ref() == Some(k),
            None => v == value,
        })
    }
}

impl Entry {
    /// Adds the values of the entry's RDN that its attributes lack, as slapd does on add
    /// (`uid=jdoe,...` without a `uid` attribute gets `uid: jdoe`).
    pub fn add_naming_values(&mut self, schema: &Schema) {
        let Some(rdn) = self.dn.rdns.first().cloned() else {
            return;
        };
        for ava in rdn.avas {
            let Some(id) = schema.attr_id(&ava.attr) else {
                continue;
            };
            if schema.has_value(self, id, &ava.value) {
                continue;
            }
            match self
                .attrs
                .iter_mut()
                .find(|a| a.desc.id == id && a.desc.options.is_empty())
            {
                Some(a) => a.values.push(ava.value.clone()),
                None => self.attrs.push(Attribute {
                    desc: AttrDesc::plain(id),
                    values: vec![ava.value.clone()],
                }),
            }
        }
    }

    /// Builds an entry from the attributes of an LDAP add request, where (unlike LDIF) each
    /// attribute description may appear only once: slapd answers typeOrValueExists
    /// ("attribute 'uid' provided more than once") when two name the same attribute.
    pub fn from_add_request(
        schema: &Schema,
        dn: &str,
        parts: Vec<(String, Vec<Vec<u8>>)>,
    ) -> Result<Entry, EntryError> {
        let mut seen: Vec<AttrDesc> = Vec::with_capacity(parts.len());
        for (desc, _) in &parts {
            let d = AttrDesc::parse_checked(schema, desc)?;
            if seen.iter().any(|s| s.same_as(&d)) {
                return Err(EntryError::DuplicateAttribute {
                    attr: schema.attr_name(d.id).to_string(),
                });
            }
            seen.push(d);
        }
        Entry::from_parts(schema, dn, parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &Schema, dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
        Entry::from_parts(
            s,
            dn,
            attrs
                .iter()
                .map(|(a, v)| {
                    (
                        a.to_string(),
                        v.iter().map(|x| x.as_bytes().to_vec()).collect(),
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    fn check(s: &Schema, dn: &str, attrs: &[(&str, &[&str])]) -> String {
        match s.check_entry(&e(s, dn, attrs)) {
            Ok(()) => "ok".into(),
            Err(err) => format!("{} ({})", err, err.result_code()),
        }
    }

    #[test]
    fn messages_match_slapd() {
        // Each expectation is what slapd 2.5 answered to ldapadd of the same entry.
        let s = Schema::builtin();
        let dn = "uid=t,ou=users,dc=example,dc=com";
        type Attrs<'a> = &'a [(&'a str, &'a [&'a str])];
        let cases: &[(Attrs, &str)] = &[
            (&[("objectClass", &["inetOrgPerson"]), ("uid", &["t"]), ("cn", &["T"])], "object class 'inetOrgPerson' requires attribute 'sn' (65)"),
            (&[("objectClass", &["INETORGPERSON"]), ("uid", &["t"]), ("cn", &["T"])], "object class 'inetOrgPerson' requires attribute 'sn' (65)"),
            (&[("objectClass", &["person"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"])], "attribute 'uid' not allowed (65)"),
            (
                &[("objectClass", &["inetOrgPerson", "groupOfNames"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("member", &["cn=x"])],
                "invalid structural object class chain (inetOrgPerson/groupOfNames) (65)",
            ),
            (&[("objectClass", &["domain", "inetorgperson"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("dc", &["x"])], "invalid structural object class chain (domain/inetOrgPerson) (65)"),
            (&[("objectClass", &["top"]), ("uid", &["t"])], "no structural object class provided (65)"),
            (&[("objectClass", &["inetOrgPerson"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S", "s"])], "sn: value #0 provided more than once (20)"),
            (&[("objectClass", &["inetOrgPerson"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("uidNumber", &["007"])], "uidNumber: value #0 invalid per syntax (21)"),
            (&[("objectClass", &["inetOrgPerson", "nosuchclass"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"])], "objectClass: value #1 invalid per syntax (21)"),
            (&[("objectClass", &["inetOrgPerson"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("preferredLanguage", &["en", "de"])], "preferredLanguage: multiple values provided (19)"),
            (&[("uid", &["t"]), ("cn", &["T"])], "no objectClass attribute (65)"),
            (&[("objectClass", &["inetOrgPerson", "posixAccount"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"])], "object class 'posixAccount' requires attribute 'uidNumber' (65)"),
            (&[("objectClass", &["inetOrgPerson", "extensibleObject"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("uidNumber", &["5"]), ("c", &["US"])], "ok"),
            (&[("objectClass", &["organizationalPerson", "inetOrgPerson", "person"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("mail", &["x@y"])], "ok"),
            (&[("objectClass", &["inetOrgPerson", "alias"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"])], "invalid structural object class chain (inetOrgPerson/alias) (65)"),
            (&[("objectClass", &["inetOrgPerson"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("description", &[""])], "description: value #0 invalid per syntax (21)"),
            (&[("objectClass", &["inetOrgPerson"]), ("cn", &["T"]), ("sn", &["S"])], "naming attribute 'uid' is not present in entry (64)"),
            (&[("objectClass", &["inetOrgPerson", "inetLocalMailRecipient"]), ("uid", &["T"]), ("cn", &["T"]), ("sn", &["S"]), ("mailLocalAddress", &["a@b"]), ("createTimestamp", &["20260101000000Z"])], "ok"),
            (&[("objectClass", &["inetOrgPerson", "organization"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"])], "invalid structural object class chain (inetOrgPerson/organization) (65)"),
            (&[("objectClass", &["inetOrgPerson", "person", "top"]), ("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"]), ("structuralObjectClass", &["person"])], "structural object class modification from 'person' to 'inetOrgPerson' not allowed (65)"),
        ];
        for (attrs, want) in cases {
            assert_eq!(check(&s, dn, attrs), *want, "{attrs:?}");
        }
        assert_eq!(
            check(
                &s,
                "cn=t15,dc=example,dc=com",
                &[
                    ("objectClass", &["inetOrgPerson"]),
                    ("uid", &["t"]),
                    ("sn", &["S"]),
                    ("cn", &["t15", "T15"])
                ]
            ),
            "cn: value #0 provided more than once (20)"
        );
        // DN values: checked by their normalization alone when it succeeds.
        let person: (&str, &[&str]) = ("objectClass", &["inetOrgPerson"]);
        let named: [(&str, &[&str]); 3] = [("uid", &["t"]), ("cn", &["T"]), ("sn", &["S"])];
        for (values, want) in [
            (&["cn=A,dc=x", "cn=B,dc=x"][..], "ok"),
            (
                &["not a dn"][..],
                "seeAlso: value #0 invalid per syntax (21)",
            ),
            (
                &["cn=A,dc=x", "nosuchtype=b"][..],
                "seeAlso: value #1 invalid per syntax (21)",
            ),
            (
                &["cn=A,dc=x", "CN=a, DC=X"][..],
                "seeAlso: value #0 provided more than once (20)",
            ),
        ] {
            let mut attrs = vec![person];
            attrs.extend(named);
            attrs.push(("seeAlso", values));
            assert_eq!(check(&s, dn, &attrs), want, "{values:?}");
        }
    }

    #[test]
    fn abstract_classes_need_a_subclass() {
        let mut s = Schema::builtin();
        s.add_schema_file("objectclass ( 1.3.6.1.4.1.99999.9 NAME 'rosterAbstract' SUP top ABSTRACT MAY description )\nobjectclass ( 1.3.6.1.4.1.99999.10 NAME 'rosterThing' SUP rosterAbstract STRUCTURAL MUST cn )\n").unwrap();
        assert_eq!(
            check(
                &s,
                "cn=a",
                &[
                    ("objectClass", &["rosterAbstract", "organizationalRole"]),
                    ("cn", &["a"])
                ]
            ),
            "instantiation of abstract objectClass 'rosterAbstract' not allowed (65)"
        );
        assert_eq!(
            check(
                &s,
                "cn=a",
                &[
                    ("objectClass", &["rosterAbstract", "rosterThing"]),
                    ("cn", &["a"]),
                    ("description", &["d"])
                ]
            ),
            "ok"
        );
    }

    #[test]
    fn naming_values_and_add_requests() {
        let s = Schema::builtin();
        let mut ent = e(
            &s,
            "uid=t5+cn=X,ou=users,dc=example,dc=com",
            &[
                ("objectClass", &["inetOrgPerson"]),
                ("cn", &["x"]),
                ("sn", &["S"]),
            ],
        );
        ent.add_naming_values(&s);
        assert_eq!(
            ent.get(s.attr_id("uid").unwrap()).unwrap().values,
            vec![b"t5".to_vec()]
        );
        assert_eq!(
            ent.get(s.attr_id("cn").unwrap()).unwrap().values,
            vec![b"x".to_vec()]
        );
        assert_eq!(s.check_entry(&ent), Ok(()));
        let parts = vec![
            ("uid".to_string(), vec![b"u2".to_vec()]),
            ("USERid".to_string(), vec![b"x".to_vec()]),
        ];
        let err = Entry::from_add_request(&s, "uid=u2,dc=x", parts).unwrap_err();
        assert_eq!(err.to_string(), "attribute 'uid' provided more than once");
        assert_eq!(err.result_code(), 20);
        assert_eq!(
            s.class(s.structural_class(&ent).unwrap()).unwrap().name(),
            "inetOrgPerson"
        );
    }
}
