//! The registry's tests: the built-in schema, schema files and LDIF, derived facts.

use super::*;

#[test]
fn builtin_loads_everything() {
    let s = Schema::builtin();
    // Every built-in file must load completely.
    for (name, text, hidden) in BUILTIN_FILES {
        let mut fresh = Schema::default();
        for (n2, t2, h2) in BUILTIN_FILES {
            if n2 == name {
                break;
            }
            fresh
                .add_items(parse::schema_file(t2).unwrap(), *h2)
                .unwrap();
        }
        fresh
            .add_items(parse::schema_file(text).unwrap(), *hidden)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(s.attribute_types().count() > 175);
    assert!(s.object_classes().count() > 60);
    for name in [
        "objectClass",
        "aliasedObjectName",
        "createTimestamp",
        "modifyTimestamp",
        "creatorsName",
        "modifiersName",
        "structuralObjectClass",
        "subschemaSubentry",
        "entryDN",
        "entryUUID",
        "hasSubordinates",
        "numSubordinates",
        "namingContexts",
        "supportedControl",
        "supportedExtension",
        "supportedFeatures",
        "supportedLDAPVersion",
        "supportedSASLMechanisms",
        "vendorName",
        "vendorVersion",
        "altServer",
        "ldapSyntaxes",
        "attributeTypes",
        "objectClasses",
        "matchingRules",
        "matchingRuleUse",
        "memberOf",
        "mail",
        "mailLocalAddress",
        "mailHost",
        "mailRoutingAddress",
        "uidNumber",
        "member",
        "uniqueMember",
        "userPassword",
        "jpegPhoto",
    ] {
        assert!(s.attr_id(name).is_some(), "{name}");
    }
    for name in [
        "top",
        "alias",
        "extensibleObject",
        "subschema",
        "subentry",
        "referral",
        "inetOrgPerson",
        "posixAccount",
        "inetLocalMailRecipient",
        "groupOfNames",
        "dcObject",
    ] {
        assert!(s.object_class(name).is_some(), "{name}");
    }
    assert_eq!(
        s.attribute("memberOf").unwrap().oid,
        "1.2.840.113556.1.2.102"
    );
}

#[test]
fn lookups_are_case_insensitive_by_name_and_oid() {
    let s = Schema::builtin();
    let cn = s.attr_id("cn").unwrap();
    assert_eq!(s.attr_id("CommonName"), Some(cn));
    assert_eq!(s.attr_id("2.5.4.3"), Some(cn));
    assert_eq!(s.attr_name(cn), "cn");
    assert_eq!(
        s.object_class("INETORGPERSON").unwrap().oid,
        "2.16.840.1.113730.3.2.2"
    );
    assert_eq!(s.object_class("2.5.6.6").unwrap().name(), "person");
    assert!(s.attr_id("nosuchattr").is_none());
}

#[test]
fn derived_rules_and_subtypes() {
    let s = Schema::builtin();
    let name = s.attr_id("name").unwrap();
    let cn = s.attr_id("cn").unwrap();
    let sn = s.attr_id("sn").unwrap();
    assert_eq!(s.equality_rule(cn).unwrap().name(), "caseIgnoreMatch");
    assert_eq!(
        s.substr_rule(sn).unwrap().name(),
        "caseIgnoreSubstringsMatch"
    );
    assert_eq!(
        s.attr_syntax(cn).unwrap().oid,
        "1.3.6.1.4.1.1466.115.121.1.15"
    );
    let subs = s.subtypes(name);
    assert!(subs.contains(&name) && subs.contains(&cn) && subs.contains(&sn));
    assert!(s.is_subtype_of(cn, name));
    assert!(!s.is_subtype_of(name, cn));
    assert_eq!(s.subtypes(cn), &[cn]);
    assert!(s.is_operational(s.attr_id("createTimestamp").unwrap()));
    assert!(!s.is_operational(cn));
    // distinguishedName's subtypes include member (SUP distinguishedName).
    let dn = s.attr_id("distinguishedName").unwrap();
    assert!(s.subtypes(dn).contains(&s.attr_id("member").unwrap()));
}

#[test]
fn superclass_chains() {
    let s = Schema::builtin();
    let inet = s.class_id("inetOrgPerson").unwrap();
    let person = s.class_id("person").unwrap();
    let top = s.class_id("top").unwrap();
    assert!(s.is_subclass_of(inet, person));
    assert!(s.is_subclass_of(inet, top));
    assert!(!s.is_subclass_of(person, inet));
    let must: Vec<&str> = s.must_of(inet).iter().map(|a| s.attr_name(*a)).collect();
    assert!(must.contains(&"sn") && must.contains(&"cn") && must.contains(&"objectClass"));
    let may: Vec<&str> = s.may_of(inet).iter().map(|a| s.attr_name(*a)).collect();
    assert!(may.contains(&"mail") && may.contains(&"title") && !may.contains(&"sn"));
}

#[test]
fn every_reference_resolves_to_an_implemented_rule() {
    let s = Schema::builtin();
    for (id, at) in s.attribute_types() {
        for (given, eff) in [
            (&at.equality, s.equality_rule(id)),
            (&at.ordering, s.ordering_rule(id)),
            (&at.substr, s.substr_rule(id)),
        ] {
            if given.is_some() {
                assert!(eff.is_some(), "{}", at.name());
            }
        }
        assert!(s.attr_syntax(id).is_some(), "{}", at.name());
    }
}

#[test]
fn schema_file_errors_are_atomic_and_carry_lines() {
    let mut s = Schema::builtin();
    let before = s.attribute_types().count();
    let text = "objectidentifier R 1.3.6.1.4.1.99999.1\nattributetype ( R:1 NAME 'rosterA' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n\nattributetype ( R:2 NAME 'rosterB' EQUALITY noSuchMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n";
    let e = s.add_schema_file(text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 4: attribute type rosterB: unknown equality matching rule 'noSuchMatch'"
    );
    assert_eq!(s.attribute_types().count(), before);
    assert!(s.attr_id("rosterA").is_none());

    let e = s
        .add_schema_file("attributetype ( 1.2.3.4 NAME 'x' SUP nosuch )\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown superior attribute type 'nosuch'"),
        "{e}"
    );
    let e = s
        .add_schema_file("attributetype ( 1.2.3.4 NAME 'x' SYNTAX 9.9.9 )\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown syntax 9.9.9"), "{e}");
    let e = s
        .add_schema_file(
            "attributetype ( 1.2.3.4 NAME 'cn' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n",
        )
        .unwrap_err();
    assert!(e.to_string().contains("duplicate attribute type cn"), "{e}");
    let e = s.add_schema_file("attributetype ( 1.2.3.4 NAME 'x' EQUALITY caseIgnoreOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n").unwrap_err();
    assert!(e.to_string().contains("not an equality"), "{e}");
    let e = s
        .add_schema_file("objectclass ( 1.2.3.5 NAME 'x' SUP top AUXILIARY MAY ( cn $ nosuch ) )\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown attribute type 'nosuch' in MAY"),
        "{e}"
    );
    let e = s
        .add_schema_file("objectclass ( 1.2.3.5 NAME 'x' SUP person AUXILIARY )\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("auxiliary class cannot inherit from the structural class"),
        "{e}"
    );
    let e = s
        .add_schema_file("attributetype ( Nope:1 NAME 'x' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
        .unwrap_err();
    assert!(e.to_string().contains("objectidentifier"), "{e}");
}

#[test]
fn schema_file_with_macros_loads() {
    let mut s = Schema::builtin();
    let text = "# Roster test schema\nobjectidentifier RosterRoot 2.25.1234\nobjectidentifier RosterAttr RosterRoot:1\n\nattributetype ( RosterAttr:1\n  NAME ( 'rosterTestRole' 'rRole' )\n  DESC 'role'\n  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64} SINGLE-VALUE )\nattributetype ( RosterAttr:2 NAME 'rosterAlias' SUP mail )\nobjectclass ( RosterRoot:2.1 NAME 'rosterUser' SUP top AUXILIARY MAY ( rosterTestRole $ rosterAlias ) )\n";
    s.add_schema_file(text).unwrap();
    let r = s.attribute("rrole").unwrap();
    assert_eq!(r.oid, "2.25.1234.1.1");
    let alias = s.attr_id("rosterAlias").unwrap();
    assert_eq!(s.equality_rule(alias).unwrap().name(), "caseIgnoreIA5Match");
    assert!(s.subtypes(s.attr_id("mail").unwrap()).contains(&alias));
    assert_eq!(s.object_class("rosterUser").unwrap().oid, "2.25.1234.2.1");
}

#[test]
fn openldap_leniencies() {
    // Forms found in OpenLDAP's own schema files: a syntax with NAME and X-SUBST
    // (pmi.schema), the misspelt `attributeype` (dsee.schema), authzMatch (dyngroup.schema).
    let mut s = Schema::builtin();
    let text = "ldapsyntax ( 1.3.6.1.4.1.99999.7.1\n\tNAME 'PathSyntax'\n\tDESC 'a path'\n\tX-SUBST '1.3.6.1.4.1.1466.115.121.1.15' )\nattributeype ( 1.3.6.1.4.1.99999.7.2 NAME 'rosterPath' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.99999.7.1 )\nattributetype ( 1.3.6.1.4.1.99999.7.3 NAME 'rosterAuthz' EQUALITY authzMatch SYNTAX 1.3.6.1.4.1.4203.666.2.7 )\n";
    s.add_schema_file(text).unwrap();
    let id = s.attr_id("rosterPath").unwrap();
    assert!(s.validate(id, b"a/b").is_ok());
    assert!(s.validate(id, b"").is_err());
    assert!(s.attr_id("rosterAuthz").is_some());
    let e = s
        .add_schema_file("ldapsyntax ( 1.3.6.1.4.1.99999.7.9 X-SUBST '9.9' )\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown X-SUBST syntax 9.9"), "{e}");
}

#[test]
fn loads_stock_ldif_schema() {
    // The same definitions in cn=config LDIF form, as /etc/ldap/schema/*.ldif carry them.
    let mut s = Schema::builtin();
    let ldif = "dn: cn=roster,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: roster\nolcObjectIdentifier: {0}RosterRoot 2.25.99\nolcAttributeTypes: {0}( RosterRoot:1 NAME 'rosterKind' EQUALITY caseIgnoreMatch SYN\n TAX 1.3.6.1.4.1.1466.115.121.1.15 )\nolcObjectClasses: {0}( RosterRoot:2 NAME 'rosterTestGroup' SUP top AUXILIARY MAY rosterKind )\n";
    s.add_ldif_schema(ldif).unwrap();
    assert_eq!(s.attribute("rosterKind").unwrap().oid, "2.25.99.1");
    let bad = "dn: cn=x\nolcAttributeTypes: ( 2.25.98 NAME 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\nolcObjectClasses: ( 2.25.97 NAME 'b' MUST nosuch )\n";
    let e = s.add_ldif_schema(bad).unwrap_err();
    assert!(matches!(&e, SchemaError::Syntax { line: 3, .. }), "{e:?}");
    assert!(s.attribute("a").is_none());
}
