use super::*;

#[test]
fn items_on_attributes_not_allowed_are_undefined() {
    let schema = Schema::builtin();
    let pw = schema.attr_id("userPassword").unwrap();
    let dn = crate::dn::Dn::parse("uid=a,dc=example,dc=com").unwrap();
    let entry = Entry::from_parts(
        &schema,
        &dn.to_string(),
        vec![
            ("objectClass".into(), vec![b"inetOrgPerson".to_vec()]),
            ("uid".into(), vec![b"a".to_vec()]),
            ("cn".into(), vec![b"A".to_vec()]),
            ("sn".into(), vec![b"A".to_vec()]),
            ("userPassword".into(), vec![b"secret".to_vec()]),
        ],
    )
    .unwrap();
    let allowed = |a: AttrId| a != pw;
    let eval = |s: &str| {
        Filter::parse(s)
            .unwrap()
            .compile(&schema)
            .evaluate_with(&schema, &entry, &allowed)
    };
    assert_eq!(eval("(userPassword=secret)"), TriState::Undefined);
    assert_eq!(eval("(!(userPassword=x))"), TriState::Undefined);
    assert_eq!(
        eval("(userpassword:2.5.13.17:=secret)"),
        TriState::Undefined
    );
    assert_eq!(eval("(|(cn=a)(userPassword=*))"), TriState::True);
    assert_eq!(eval("(&(cn=a)(userPassword=*))"), TriState::Undefined);
    // Without a type: what the visible attributes say if True, else unknown.
    assert_eq!(eval("(:2.5.13.2:=a)"), TriState::True);
    assert_eq!(eval("(:2.5.13.17:=secret)"), TriState::Undefined);
    // A supertype reaches only the subtypes allowed.
    let sn = schema.attr_id("sn").unwrap();
    let no_sn = |a: AttrId| a != sn;
    let eval_sn = |s: &str| {
        Filter::parse(s)
            .unwrap()
            .compile(&schema)
            .evaluate_with(&schema, &entry, &no_sn)
    };
    assert_eq!(eval_sn("(name=A)"), TriState::True, "cn is A too");
    assert_eq!(eval_sn("(sn=A)"), TriState::Undefined);
    assert_eq!(
        eval_sn("(name=B)"),
        TriState::Undefined,
        "sn could have been B"
    );
    assert_eq!(
        Filter::parse("(userPassword=secret)")
            .unwrap()
            .compile(&schema)
            .evaluate_with(&schema, &entry, &|_| true),
        TriState::True
    );
}

fn entry(s: &Schema, dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
    let mut parts: Vec<(String, Vec<Vec<u8>>)> = attrs
        .iter()
        .map(|(a, v)| {
            (
                a.to_string(),
                v.iter().map(|x| x.as_bytes().to_vec()).collect(),
            )
        })
        .collect();
    parts.push(("createTimestamp".into(), vec![b"20261122024500Z".to_vec()]));
    parts.push(("modifyTimestamp".into(), vec![b"20261122024500Z".to_vec()]));
    Entry::from_parts(s, dn, parts).unwrap()
}

/// The directory the expectations below were taken from: the same four entries loaded
/// into a stock slapd 2.5 and searched with ldapsearch.
fn directory(s: &Schema) -> Vec<(&'static str, Entry)> {
    vec![
        (
            "base",
            entry(
                s,
                "dc=example,dc=com",
                &[
                    ("objectClass", &["dcObject", "organization"]),
                    ("dc", &["example"]),
                    ("o", &["Example"]),
                    ("structuralObjectClass", &["organization"]),
                ],
            ),
        ),
        (
            "users",
            entry(
                s,
                "ou=users,dc=example,dc=com",
                &[
                    ("objectClass", &["organizationalUnit"]),
                    ("ou", &["users"]),
                    ("structuralObjectClass", &["organizationalUnit"]),
                ],
            ),
        ),
        (
            "jdoe",
            entry(
                s,
                "uid=jdoe,ou=users,dc=example,dc=com",
                &[
                    ("objectClass", &["inetOrgPerson", "inetLocalMailRecipient"]),
                    ("uid", &["jdoe"]),
                    ("cn", &["John Doe"]),
                    ("cn;lang-de", &["Johann Doe"]),
                    ("sn", &["Doe"]),
                    ("mail", &["jdoe@example.com"]),
                    ("mailLocalAddress", &["j.doe@example.com"]),
                    ("telephoneNumber", &["+1 555-123 4567"]),
                    ("employeeNumber", &["00042"]),
                    ("description", &["  Some   Spaced   Text  "]),
                    ("structuralObjectClass", &["inetOrgPerson"]),
                ],
            ),
        ),
        (
            "group",
            entry(
                s,
                "cn=Group One,ou=users,dc=example,dc=com",
                &[
                    ("objectClass", &["groupOfNames"]),
                    ("cn", &["Group One"]),
                    ("member", &["uid=jdoe,ou=users,dc=example,dc=com"]),
                    ("structuralObjectClass", &["groupOfNames"]),
                ],
            ),
        ),
    ]
}

fn matches(s: &Schema, dir: &[(&'static str, Entry)], filter: &str) -> String {
    let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    let c = f.compile(s);
    dir.iter()
        .filter(|(_, e)| c.evaluate(s, e) == TriState::True)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn evaluation_matches_slapd() {
    let s = Schema::builtin();
    let dir = directory(&s);
    let all = "base,users,jdoe,group";
    let cases: &[(&str, &str)] = &[
        ("(objectClass=person)", "jdoe"),
        ("(objectClass=PERSON)", "jdoe"),
        ("(objectClass=2.5.6.6)", "jdoe"),
        ("(!(objectClass=Person))", "base,users,group"),
        ("(objectClass=top)", all),
        ("(structuralObjectClass=person)", "jdoe"),
        ("(!(nosuchattr=*))", ""),
        ("(!(nosuchattr=x))", ""),
        ("(!(uidNumber=abc))", ""),
        ("(!(uidNumber=*))", all),
        ("(!(objectClass=nosuchclass))", ""),
        ("(!(objectClass=1.2.3.4))", ""),
        ("(cn~=jon doe)", "jdoe"),
        ("(cn~=John)", "jdoe"),
        ("(cn~=doe john)", ""),
        ("(mail~=jdoe@example.com)", "jdoe"),
        ("(mail~=jdo@example.com)", "jdoe"),
        ("(uid~=jdoe)", "jdoe"),
        ("(objectClass~=person)", "jdoe"),
        ("(!(objectClass~=persn))", ""),
        ("(telephoneNumber~=+1 555 123 4567)", "jdoe"),
        ("(!(userPassword>=a))", ""),
        ("(description=some spaced text)", "jdoe"),
        ("(ou:dn:=users)", "users,jdoe,group"),
        ("(cn:dn:=users)", ""),
        ("(dc:dn:=example)", all),
        ("(:dn:caseIgnoreMatch:=example)", "base"),
        ("(:caseExactMatch:=Doe)", "jdoe"),
        ("(:caseExactMatch:=doe)", ""),
        ("(telephoneNumber=+15551234567)", "jdoe"),
        ("(telephoneNumber=*555-123*)", "jdoe"),
        ("(telephoneNumber=+1*4567)", "jdoe"),
        ("(telephoneNumber=* 555 *)", "jdoe"),
        ("(!(telephoneNumber=*-*))", all),
        ("(name=john doe)", "jdoe"),
        ("(2.5.4.3=john doe)", "jdoe"),
        ("(cn;lang-de=Johann Doe)", "jdoe"),
        ("(cn;lang-de=John Doe)", ""),
        ("(!(cn;lang-fr=*))", all),
        ("(cn;lang-=*)", "jdoe"),
        ("(!(cn;lang-=*))", "base,users,group"),
        ("(!(cn;binary=*))", ""),
        ("(!(cn;x-foo=*))", ""),
        ("(entryDN=UID=jdoe,ou=users,dc=example,dc=com)", "jdoe"),
        ("(entryDN:distinguishedNameMatch:=uid=jdoe,ou=users,dc=example,dc=com)", "jdoe"),
        ("(!(entryDN>=a))", ""),
        ("(entryDN=*)", all),
        ("(subschemaSubentry=*)", all),
        ("(description=*  spaced  *)", "jdoe"),
        ("(description=some *)", "jdoe"),
        ("(description=* text)", "jdoe"),
        ("(description=*e s*)", "jdoe"),
        ("(description=*spaced   text  *)", ""),
        ("(description=* )", "jdoe"),
        ("(description=*  *)", "jdoe"),
        ("(description=\\20some spaced text\\20\\20)", "jdoe"),
        ("(!(mail>=a))", ""),
        ("(uid:caseExactMatch:=JDOE)", ""),
        ("(uid:caseExactMatch:=jdoe)", "jdoe"),
        ("(member:distinguishedNameMatch:=UID=JDOE,ou=users,dc=example,dc=com)", "group"),
        ("(member=uid=JDOE,OU=Users,DC=example,DC=com)", "group"),
        ("(member=uid=jdoe,ou=users,dc=example,dc=net)", ""),
        ("(!(member=not a dn))", ""),
        ("(!(member=cn=x,nosuch=y))", ""),
        ("(!(cn:1.2.840.113556.1.4.803:=2))", ""),
        ("(!(cn:nosuchrule:=x))", ""),
        ("(!(:nosuchrule:=x))", ""),
        ("(!(objectClass:caseIgnoreMatch:=inetorgperson))", ""),
        ("(objectClass:objectIdentifierMatch:=person)", ""),
        ("(!(sn:caseIgnoreSubstringsMatch:=Doe))", ""),
        ("(!(cn:caseIgnoreIA5Match:=john doe))", ""),
        ("(cn:caseIgnoreOrderingMatch:=K)", "jdoe,group"),
        ("(cn:caseIgnoreOrderingMatch:=A)", ""),
        ("(employeeNumber=42)", ""),
        ("(!(sn>=D))", ""),
        ("(!(cn=))", ""),
        ("(&)", all),
        ("(|)", ""),
        ("(!(&))", ""),
        ("(mailLocalAddress=J.Doe@EXAMPLE.com)", "jdoe"),
        ("(mail=  jdoe@example.com )", "jdoe"),
        ("(mail=*@example.com)", "jdoe"),
        ("(mail=JDOE@*)", "jdoe"),
        ("(cn=john*doe)", "jdoe"),
        ("(cn=*)", "jdoe,group"),
        ("(cn=j*)", "jdoe"),
        ("(cn=J* D*)", "jdoe"),
        ("(cn=*N D*)", "jdoe"),
        ("(cn=*n  d*)", "jdoe"),
        ("(sn=D*e)", "jdoe"),
        ("(sn=Do*oe)", ""),
        ("(uid=jdo\\2a)", ""),
        ("(uid=jdo\\*)", ""),
        ("(!(uid=jdoe\\2a))", all),
        ("(cn=John\\20Doe)", "jdoe"),
        ("(modifyTimestamp>=20000101000000Z)", all),
        ("(modifyTimestamp<=20000101000000Z)", ""),
        ("(createTimestamp>=2000010100Z)", all),
        ("(!(createTimestamp>=2000))", ""),
        ("(createTimestamp:generalizedTimeOrderingMatch:=29990101000000Z)", all),
        ("(&(objectClass=inetOrgPerson)(|(mail=jdoe@example.com)(mailLocalAddress=jdoe@example.com)))", "jdoe"),
        ("(&(objectClass=person)(!(nosuch=x)))", ""),
        ("(|(objectClass=person)(nosuch=x))", "jdoe"),
    ];
    for (f, want) in cases {
        assert_eq!(matches(&s, &dir, f), *want, "{f}");
    }
}

#[test]
fn integers_bits_and_approx_words_match_slapd() {
    // posixGroup entries with gidNumber -5, 10, 100 and 0, searched on slapd 2.5.
    let s = Schema::builtin();
    let dir: Vec<(&'static str, Entry)> = ["-5", "10", "100", "0"]
        .iter()
        .map(|n| {
            let e = entry(
                &s,
                &format!("cn=n{n},ou=users,dc=example,dc=com"),
                &[
                    ("objectClass", &["posixGroup"]),
                    ("cn", &[&format!("n{n}")]),
                    ("gidNumber", &[n]),
                    ("description", &["Jean-Luc Picard the Third"]),
                ],
            );
            (*n, e)
        })
        .collect();
    let all = "-5,10,100,0";
    let cases: &[(&str, &str)] = &[
        ("(gidNumber>=9)", "10,100"),
        ("(gidNumber<=-1)", "-5"),
        ("(gidNumber<=0)", "-5,0"),
        ("(gidNumber>=-10)", all),
        ("(gidNumber:integerOrderingMatch:=10)", "-5,0"),
        ("(gidNumber:integerBitAndMatch:=2)", "-5,10"),
        ("(gidNumber:integerBitOrMatch:=3)", "-5,10"),
        ("(gidNumber=-0)", ""),
        ("(!(gidNumber=-0))", ""),
        ("(description~=jean luc)", ""),
        ("(description~=jeanluc)", ""),
        ("(description~=pikard third)", all),
        ("(description~=third picard)", ""),
        ("(description~=J)", ""),
        ("(description~=the)", all),
        ("(description~=Jean-Luc)", all),
    ];
    for (f, want) in cases {
        assert_eq!(matches(&s, &dir, f), *want, "{f}");
    }
}

#[test]
fn three_valued_logic() {
    let s = Schema::builtin();
    let dir = directory(&s);
    let jdoe = &dir[2].1;
    let ev = |f: &str| Filter::parse(f).unwrap().compile(&s).evaluate(&s, jdoe);
    assert_eq!(ev("(nosuch=x)"), TriState::Undefined);
    assert_eq!(ev("(!(nosuch=x))"), TriState::Undefined);
    assert_eq!(ev("(&(uid=jdoe)(nosuch=x))"), TriState::Undefined);
    assert_eq!(ev("(&(uid=nobody)(nosuch=x))"), TriState::False);
    assert_eq!(ev("(|(uid=jdoe)(nosuch=x))"), TriState::True);
    assert_eq!(ev("(|(uid=nobody)(nosuch=x))"), TriState::Undefined);
    assert_eq!(ev("(uid=nobody)"), TriState::False);
    assert_eq!(ev("(uid=*)"), TriState::True);
    assert_eq!(ev("(uidNumber>=5)"), TriState::False);
    assert_eq!(ev("(uidNumber>=x)"), TriState::Undefined);
    assert_eq!(ev("(sn>=a)"), TriState::Undefined);
}

#[test]
fn compiled_forms() {
    let s = Schema::builtin();
    let mail = s.attr_id("mail").unwrap();
    assert_eq!(
        Filter::parse("(MAIL= JDoe@Example.COM )")
            .unwrap()
            .compile(&s),
        CompiledFilter::Equality {
            attr: mail,
            key: b"jdoe@example.com".to_vec(),
            options: vec![]
        }
    );
    match Filter::parse("(cn=  ab  *  cd  *ef  )")
        .unwrap()
        .compile(&s)
    {
        CompiledFilter::Substrings { pieces, .. } => {
            assert_eq!(pieces.initial.as_deref(), Some(&b"ab "[..]));
            assert_eq!(pieces.any, vec![b" cd ".to_vec()]);
            assert_eq!(pieces.final_.as_deref(), Some(&b"ef"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Filter::parse("(nosuch=x)").unwrap().compile(&s),
        CompiledFilter::Undefined
    );
    assert_eq!(
        Filter::parse("(uidNumber=007)").unwrap().compile(&s),
        CompiledFilter::Undefined
    );
    let oc = s.attr_id("objectClass").unwrap();
    assert_eq!(
        Filter::parse("(objectclass=InetOrgPerson)")
            .unwrap()
            .compile(&s),
        CompiledFilter::Equality {
            attr: oc,
            key: b"2.16.840.1.113730.3.2.2".to_vec(),
            options: vec![]
        }
    );
}

#[test]
fn parse_and_display_round_trip() {
    let cases = [
        "(cn=John Doe)",
        "(&(objectClass=person)(|(mail=a@b)(!(uid=x))))",
        "(cn;lang-de=x)",
        "(2.5.4.3=x)",
        "(cn=a*b*c)",
        "(cn=*b*)",
        "(cn=a*)",
        "(cn=*a)",
        "(cn=*)",
        "(cn~=x)",
        "(uidNumber>=5)",
        "(uidNumber<=5)",
        "(cn:dn:caseExactMatch:=x)",
        "(:dn:2.5.13.5:=x)",
        "(cn:=x)",
        "(cn=\\2a\\28\\29\\5c\\00)",
        "(&)",
        "(|)",
        "(cn=caf\u{e9})",
    ];
    for c in cases {
        let f = Filter::parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(f.to_string(), c);
        assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
    }
    assert_eq!(
        Filter::parse("cn=x").unwrap(),
        Filter::Equality {
            attr: "cn".into(),
            value: b"x".to_vec()
        }
    );
    assert_eq!(
        Filter::parse("(cn=\\c3\\a9)").unwrap(),
        Filter::Equality {
            attr: "cn".into(),
            value: "é".as_bytes().to_vec()
        }
    );
    assert_eq!(Filter::parse("(cn=\\ff)").unwrap().to_string(), "(cn=\\ff)");
    assert_eq!(
        Filter::parse("( & (a=1) (b=2) )").unwrap(),
        Filter::And(vec![
            Filter::Equality {
                attr: "a".into(),
                value: b"1".to_vec()
            },
            Filter::Equality {
                attr: "b".into(),
                value: b"2".to_vec()
            },
        ])
    );
    match Filter::parse("(cn:dn:1.2.3:=v)").unwrap() {
        Filter::Extensible {
            rule,
            attr,
            value,
            dn_attributes,
        } => {
            assert_eq!(rule.as_deref(), Some("1.2.3"));
            assert_eq!(attr.as_deref(), Some("cn"));
            assert_eq!(value, b"v");
            assert!(dn_attributes);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parse_errors() {
    for bad in [
        "",
        "(",
        "(cn=x",
        "(cn=x))",
        "(=x)",
        "(cn)",
        "(cn=a(b)",
        "(cn=\\zz)",
        "(cn=a**b)",
        "(:=x)",
        "(cn:dn:a:b:=x)",
        "(cn~=a*)",
        "(!(a=1)(b=2))",
        "(&(a=1)x)",
    ] {
        assert!(Filter::parse(bad).is_err(), "{bad}");
    }
    let deep = format!("{}(a=1){}", "(!".repeat(500), ")".repeat(500));
    assert!(Filter::parse(&deep).is_err());
}
