//! RFC 4512 descriptions of schema elements, in the form slapd publishes in `cn=Subschema`
//! (`attributeTypes`, `objectClasses`, `matchingRules`, `matchingRuleUse`, `ldapSyntaxes`):
//! keywords in slapd's order, single names bare in quotes, lists as `( a $ b )`.

use crate::model::{AttributeType, MatchingRule, ObjectClass, Syntax, Usage};
use crate::registry::Schema;
use crate::rules::RuleImpl;

fn names(out: &mut String, names: &[String]) {
    match names {
        [] => {}
        [one] => {
            out.push_str(" NAME '");
            out.push_str(one);
            out.push('\'');
        }
        many => {
            out.push_str(" NAME (");
            for n in many {
                out.push_str(" '");
                out.push_str(n);
                out.push('\'');
            }
            out.push_str(" )");
        }
    }
}

fn desc(out: &mut String, d: &Option<String>) {
    if let Some(d) = d {
        out.push_str(" DESC '");
        out.push_str(d);
        out.push('\'');
    }
}

fn oids(out: &mut String, kw: &str, list: &[String]) {
    match list {
        [] => {}
        [one] => {
            out.push(' ');
            out.push_str(kw);
            out.push(' ');
            out.push_str(one);
        }
        many => {
            out.push(' ');
            out.push_str(kw);
            out.push_str(" ( ");
            out.push_str(&many.join(" $ "));
            out.push_str(" )");
        }
    }
}

fn extensions(out: &mut String, ext: &[(String, Vec<String>)]) {
    for (k, v) in ext {
        out.push(' ');
        out.push_str(k);
        match v.as_slice() {
            [one] => {
                out.push_str(" '");
                out.push_str(one);
                out.push('\'');
            }
            many => {
                out.push_str(" (");
                for x in many {
                    out.push_str(" '");
                    out.push_str(x);
                    out.push('\'');
                }
                out.push_str(" )");
            }
        }
    }
}

impl AttributeType {
    /// The AttributeTypeDescription as slapd publishes it.
    pub fn to_description(&self) -> String {
        let mut s = format!("( {}", self.oid);
        names(&mut s, &self.names);
        desc(&mut s, &self.desc);
        if self.obsolete {
            s.push_str(" OBSOLETE");
        }
        for (kw, v) in [
            ("SUP", &self.sup),
            ("EQUALITY", &self.equality),
            ("ORDERING", &self.ordering),
            ("SUBSTR", &self.substr),
        ] {
            if let Some(v) = v {
                s.push(' ');
                s.push_str(kw);
                s.push(' ');
                s.push_str(v);
            }
        }
        if let Some(syn) = &self.syntax {
            s.push_str(" SYNTAX ");
            s.push_str(syn);
            if let Some(len) = self.syntax_len {
                s.push_str(&format!("{{{len}}}"));
            }
        }
        if self.single_value {
            s.push_str(" SINGLE-VALUE");
        }
        if self.collective {
            s.push_str(" COLLECTIVE");
        }
        if self.no_user_modification {
            s.push_str(" NO-USER-MODIFICATION");
        }
        if self.usage != Usage::UserApplications {
            s.push_str(" USAGE ");
            s.push_str(self.usage.keyword());
        }
        extensions(&mut s, &self.extensions);
        s.push_str(" )");
        s
    }
}

impl ObjectClass {
    /// The ObjectClassDescription as slapd publishes it.
    pub fn to_description(&self) -> String {
        let mut s = format!("( {}", self.oid);
        names(&mut s, &self.names);
        desc(&mut s, &self.desc);
        if self.obsolete {
            s.push_str(" OBSOLETE");
        }
        oids(&mut s, "SUP", &self.sup);
        s.push(' ');
        s.push_str(self.kind.keyword());
        oids(&mut s, "MUST", &self.must);
        oids(&mut s, "MAY", &self.may);
        extensions(&mut s, &self.extensions);
        s.push_str(" )");
        s
    }
}

impl MatchingRule {
    /// The MatchingRuleDescription as slapd publishes it.
    pub fn to_description(&self) -> String {
        let mut s = format!("( {}", self.oid);
        names(&mut s, &self.names);
        desc(&mut s, &self.desc);
        if self.obsolete {
            s.push_str(" OBSOLETE");
        }
        s.push_str(" SYNTAX ");
        s.push_str(&self.syntax);
        s.push_str(" )");
        s
    }
}

impl Syntax {
    /// The SyntaxDescription as slapd publishes it.
    pub fn to_description(&self) -> String {
        let mut s = format!("( {}", self.oid);
        desc(&mut s, &self.desc);
        extensions(&mut s, &self.extensions);
        s.push_str(" )");
        s
    }
}

/// The values of the subschema entry's schema attributes, in slapd's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubschemaValues {
    pub ldap_syntaxes: Vec<String>,
    pub matching_rules: Vec<String>,
    pub matching_rule_use: Vec<String>,
    pub attribute_types: Vec<String>,
    pub object_classes: Vec<String>,
}

impl Schema {
    /// Everything `cn=Subschema` publishes: the published syntaxes, matching rules, matching
    /// rule uses (which attribute types each rule applies to in extensible matches), attribute
    /// types and object classes. Internal definitions slapd hides are left out.
    pub fn subschema_values(&self) -> SubschemaValues {
        let mut v = SubschemaValues::default();
        for s in self.syntaxes() {
            if !self.syntax_hidden(&s.oid) {
                v.ldap_syntaxes.push(s.to_description());
            }
        }
        for (idx, r) in self.matching_rules().enumerate() {
            let hidden = self.rule_hidden(idx);
            let no_match = self
                .rule_spec(idx)
                .is_some_and(|s| s.imp == RuleImpl::NoMatch);
            if !hidden && !no_match {
                v.matching_rules.push(r.to_description());
            }
            if let Some(u) = self.matching_rule_use(idx) {
                v.matching_rule_use.push(u);
            }
        }
        for (id, a) in self.attribute_types() {
            if !self.is_hidden(id) {
                v.attribute_types.push(a.to_description());
            }
        }
        for c in self.object_classes() {
            v.object_classes.push(c.to_description());
        }
        v
    }

    /// slapd's `matching_rule_use_init` for one rule: `None` for hidden rules, rules not meant
    /// for extensible matching, and rules that apply to no published attribute type.
    fn matching_rule_use(&self, idx: usize) -> Option<String> {
        if self.rule_hidden(idx) {
            return None;
        }
        let spec = self.rule_spec(idx)?;
        if !spec.ext && !self.rule_has_compat(idx) {
            return None;
        }
        let applies: Vec<String> = self
            .attribute_types()
            .filter(|(id, _)| !self.is_hidden(*id) && self.rule_usable_with(idx, *id))
            .map(|(_, a)| a.name().to_string())
            .collect();
        if applies.is_empty() {
            return None;
        }
        let r = self.rule_def(idx)?;
        let mut s = format!("( {}", r.oid);
        names(&mut s, &r.names);
        desc(&mut s, &r.desc);
        if r.obsolete {
            s.push_str(" OBSOLETE");
        }
        oids(&mut s, "APPLIES", &applies);
        s.push_str(" )");
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in files were captured from slapd's cn=Subschema, so rendering each parsed
    /// definition must give back the published text byte for byte.
    #[test]
    fn descriptions_round_trip_the_published_text() {
        let s = Schema::builtin();
        let published = s.subschema_values();
        for (file, key) in [
            (include_str!("builtin/system.schema"), "attributetype "),
            (include_str!("builtin/core.schema"), "attributetype "),
            (include_str!("builtin/cosine.schema"), "attributetype "),
            (
                include_str!("builtin/inetorgperson.schema"),
                "attributetype ",
            ),
            (include_str!("builtin/nis.schema"), "attributetype "),
            (include_str!("builtin/misc.schema"), "attributetype "),
        ] {
            for line in file.lines() {
                if let Some(d) = line.strip_prefix(key) {
                    assert!(published.attribute_types.iter().any(|p| p == d), "{d}");
                }
                if let Some(d) = line.strip_prefix("objectclass ") {
                    assert!(published.object_classes.iter().any(|p| p == d), "{d}");
                }
            }
        }
        for line in include_str!("builtin/syntaxes.schema").lines() {
            if let Some(d) = line.strip_prefix("ldapsyntax ") {
                assert!(published.ldap_syntaxes.iter().any(|p| p == d), "{d}");
            }
        }
        let rules: Vec<&str> = include_str!("builtin/matchingrules.schema")
            .lines()
            .filter_map(|l| l.strip_prefix("matchingrule "))
            .filter(|l| !l.starts_with("( 2.5.13.22 ") && !l.starts_with("( 2.5.13.24 "))
            .collect();
        assert_eq!(published.matching_rules, rules);
        assert!(!published
            .attribute_types
            .iter()
            .any(|a| a.contains("'subtreeSpecification'")));
        assert!(!published
            .ldap_syntaxes
            .iter()
            .any(|a| a.contains("Substring Assertion")));
    }

    #[test]
    fn matching_rule_use_as_slapd() {
        let s = Schema::builtin();
        let mru = s.subschema_values().matching_rule_use;
        // slapd 2.5 with the same schema (olc* attributes left out), plus
        // msDS-memberOfTransitive, which slapd does not define.
        let expect = [
            "( 2.5.13.23 NAME 'uniqueMemberMatch' APPLIES uniqueMember )",
            "( 2.5.13.22 NAME 'presentationAddressMatch' APPLIES presentationAddress )",
            "( 2.5.13.16 NAME 'bitStringMatch' APPLIES x500UniqueIdentifier )",
            "( 2.5.13.0 NAME 'objectIdentifierMatch' APPLIES ( supportedControl $ supportedExtension $ supportedFeatures $ supportedApplicationContext ) )",
            "( 2.5.13.17 NAME 'octetStringMatch' APPLIES userPassword )",
            "( 2.5.13.14 NAME 'integerMatch' APPLIES ( supportedLDAPVersion $ entryTtl $ uidNumber $ gidNumber $ numSubordinates $ mailPreferenceOption $ shadowLastChange $ shadowMin $ shadowMax $ shadowWarning $ shadowInactive $ shadowExpire $ shadowFlag $ ipServicePort $ ipProtocolNumber $ oncRpcNumber $ rosterMailQuota ) )",
            "( 2.5.13.1 NAME 'distinguishedNameMatch' APPLIES ( creatorsName $ modifiersName $ subschemaSubentry $ entryDN $ namingContexts $ aliasedObjectName $ dynamicSubtrees $ distinguishedName $ seeAlso $ memberOf $ msDS-memberOfTransitive $ member $ owner $ roleOccupant $ manager $ documentAuthor $ secretary $ associatedName $ dITRedirect $ rosterTemplateGroup ) )",
        ];
        for e in expect {
            assert!(mru.iter().any(|m| m == e), "{e}\n{mru:#?}");
        }
        assert_eq!(mru.len(), 31, "{mru:#?}");
    }
}
