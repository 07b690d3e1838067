//! The two entries the server makes up rather than stores: the root DSE (RFC 4512 section 5.1),
//! which tells clients what the server supports, and `cn=Subschema` (section 4.2), which
//! publishes the schema in RFC 4512 form.

use roster_schema::{AttrDesc, Attribute, Dn, Entry, NormDn, Schema};

/// Controls the server understands.
pub const SUPPORTED_CONTROLS: &[&str] = &[
    "1.2.840.113556.1.4.319",        // simple paged results (RFC 2696)
    "1.3.6.1.4.1.4203.1.9.1.1", // LDAP Content Synchronization (RFC 4533): replication consumers
    "2.16.840.1.113730.3.4.2",  // manageDsaIT (RFC 3296): accepted; there are no referral entries
    super::NO_OP_CONTROL,       // adds and modifies checked, not written
    super::NO_OP_CONTROL_DRAFT, // the same, by the draft's OID
    super::delete::TRANSFER_CONTROL, // Roster: delete a user and give its addresses and groups to another
];

/// Extended operations the server understands.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[
    "1.3.6.1.4.1.4203.1.11.1", // Password Modify (RFC 3062)
    "1.3.6.1.4.1.4203.1.11.3", // Who am I? (RFC 4532)
];

/// Protocol features (RFC 4512 section 5.1 supportedFeatures).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "1.3.6.1.4.1.4203.1.5.1", // all operational attributes: "+" (RFC 3673)
    "1.3.6.1.4.1.4203.1.5.2", // attributes by object class: "@class" (RFC 4529)
    "1.3.6.1.4.1.4203.1.5.3", // absolute true and false filters: (&) and (|) (RFC 4526)
];

fn push(schema: &Schema, attrs: &mut Vec<Attribute>, name: &str, values: Vec<Vec<u8>>) {
    if values.is_empty() {
        return;
    }
    if let Some(desc) = AttrDesc::parse(schema, name) {
        attrs.push(Attribute { desc, values });
    }
}

fn strs<'a>(v: impl IntoIterator<Item = &'a str>) -> Vec<Vec<u8>> {
    v.into_iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// The root DSE: the entry with the empty DN.
pub fn root_dse(schema: &Schema, suffixes: &[String], starttls: bool, external: bool) -> Entry {
    let mut attrs = Vec::new();
    push(
        schema,
        &mut attrs,
        "objectClass",
        strs(["top", "extensibleObject"]),
    );
    push(
        schema,
        &mut attrs,
        "structuralObjectClass",
        strs(["extensibleObject"]),
    );
    push(
        schema,
        &mut attrs,
        "namingContexts",
        strs(suffixes.iter().map(String::as_str)),
    );
    push(
        schema,
        &mut attrs,
        "subschemaSubentry",
        strs(["cn=Subschema"]),
    );
    push(schema, &mut attrs, "supportedLDAPVersion", strs(["3"]));
    push(
        schema,
        &mut attrs,
        "supportedControl",
        strs(SUPPORTED_CONTROLS.iter().copied()),
    );
    push(
        schema,
        &mut attrs,
        "supportedExtension",
        strs(
            SUPPORTED_EXTENSIONS
                .iter()
                .copied()
                .chain(starttls.then_some(super::extended::START_TLS)),
        ),
    );
    push(
        schema,
        &mut attrs,
        "supportedFeatures",
        strs(SUPPORTED_FEATURES.iter().copied()),
    );
    if external {
        push(
            schema,
            &mut attrs,
            "supportedSASLMechanisms",
            strs(["EXTERNAL"]),
        );
    }
    push(
        schema,
        &mut attrs,
        "monitorContext",
        strs([crate::monitor::MONITOR_DN]),
    );
    push(schema, &mut attrs, "vendorName", strs(["Roster"]));
    push(
        schema,
        &mut attrs,
        "vendorVersion",
        strs([concat!("rosterd ", env!("CARGO_PKG_VERSION"))]),
    );
    push(schema, &mut attrs, "entryDN", vec![Vec::new()]);
    Entry {
        dn: Dn::default(),
        ndn: NormDn::default(),
        attrs,
    }
}

/// The subschema subentry `cn=Subschema`.
pub fn subschema(schema: &Schema, ndn: NormDn, started: &str) -> Entry {
    let mut attrs = Vec::new();
    push(
        schema,
        &mut attrs,
        "objectClass",
        strs(["top", "subentry", "subschema", "extensibleObject"]),
    );
    push(schema, &mut attrs, "cn", strs(["Subschema"]));
    push(
        schema,
        &mut attrs,
        "structuralObjectClass",
        strs(["subentry"]),
    );
    push(schema, &mut attrs, "createTimestamp", strs([started]));
    push(schema, &mut attrs, "modifyTimestamp", strs([started]));
    push(schema, &mut attrs, "entryDN", strs(["cn=Subschema"]));
    push(
        schema,
        &mut attrs,
        "subschemaSubentry",
        strs(["cn=Subschema"]),
    );
    let v = schema.subschema_values();
    let enc = |v: Vec<String>| v.into_iter().map(String::into_bytes).collect::<Vec<_>>();
    push(schema, &mut attrs, "ldapSyntaxes", enc(v.ldap_syntaxes));
    push(schema, &mut attrs, "matchingRules", enc(v.matching_rules));
    push(
        schema,
        &mut attrs,
        "matchingRuleUse",
        enc(v.matching_rule_use),
    );
    push(schema, &mut attrs, "attributeTypes", enc(v.attribute_types));
    push(schema, &mut attrs, "objectClasses", enc(v.object_classes));
    let dn = Dn::parse("cn=Subschema").unwrap_or_default();
    Entry { dn, ndn, attrs }
}
