//! Groups: `memberOf` and the groups' member lists compared with a stock slapd running the
//! memberof and refint overlays, through adds, member changes, deletes and renames made with
//! OpenLDAP's tools; then what slapd does not have: nested membership (the in-chain rule and
//! `msDS-memberOfTransitive`), `numSubordinates`, and empty groups.

use roster_tests::{
    run_tool, settle, write_file, Rosterd, Slapd, GROUP_OVERLAYS, ROOT_DN, ROOT_PW,
};
use std::collections::{BTreeMap, BTreeSet};

const BASE: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n\
dn: ou=contacts,dc=example,dc=com\nobjectClass: organizationalUnit\nou: contacts\n";

fn user(uid: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {uid}@example.com\n\n"
    )
}

fn group(cn: &str, members: &[&str]) -> String {
    let mut s = format!(
        "dn: cn={cn},ou=groups,dc=example,dc=com\nchangetype: add\nobjectClass: groupOfNames\ncn: {cn}\n"
    );
    for m in members {
        s.push_str(&format!("member: {m}\n"));
    }
    s.push('\n');
    s
}

fn u(uid: &str) -> String {
    format!("uid={uid},ou=people,dc=example,dc=com")
}

fn g(cn: &str) -> String {
    format!("cn={cn},ou=groups,dc=example,dc=com")
}

/// Runs ldapmodify (with `-a` for adds) as the root DN; the exit code.
fn modify(url: &str, dir: &std::path::Path, name: &str, ldif: &str) -> i32 {
    let file = write_file(dir, name, ldif);
    let (code, _, err) = run_tool(
        "ldapmodify",
        &[
            "-x",
            "-H",
            url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-f",
            file.to_str().unwrap(),
        ],
    );
    if code != 0 {
        eprintln!("ldapmodify {name} on {url}: {err}");
    }
    code
}

/// DN (lowercased) -> attribute (lowercased) -> values, for `filter` under the suffix.
type View = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn search(url: &str, filter: &str, attrs: &[&str]) -> View {
    let mut args = vec![
        "-x",
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-H",
        url,
        "-D",
        ROOT_DN,
        "-w",
        ROOT_PW,
        "-b",
        "dc=example,dc=com",
        filter,
    ];
    args.extend_from_slice(attrs);
    let (code, out, err) = run_tool("ldapsearch", &args);
    assert_eq!(code, 0, "ldapsearch {filter} on {url}: {err}");
    let mut view = View::new();
    for block in out.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.is_empty());
        let Some(dn) = lines.next().and_then(|l| l.strip_prefix("dn: ")) else {
            continue;
        };
        let attrs = view.entry(dn.to_ascii_lowercase()).or_default();
        for line in lines {
            if let Some((a, v)) = line.split_once(": ") {
                attrs
                    .entry(a.to_ascii_lowercase())
                    .or_default()
                    .insert(v.to_string());
            }
        }
    }
    view
}

/// What both servers must agree on: every entry's memberOf, every group's members, and the
/// members of each group found by a memberOf filter.
fn groups_view(url: &str) -> (View, View, Vec<View>) {
    let member_of = search(url, "(objectClass=*)", &["memberOf"]);
    let members = search(url, "(objectClass=groupOfNames)", &["member"]);
    let by_filter = ["sales", "eng", "engineering", "all"]
        .iter()
        .map(|cn| {
            search(
                url,
                &format!("(memberOf={})", g(cn).to_uppercase()),
                &["1.1"],
            )
        })
        .collect();
    (member_of, members, by_filter)
}

fn compare_code(url: &str, dn: &str, assertion: &str) -> i32 {
    run_tool(
        "ldapcompare",
        &["-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW, dn, assertion],
    )
    .0
}

#[test]
fn groups_answer_as_slapd_with_memberof_and_refint() {
    let slapd = Slapd::start(BASE, GROUP_OVERLAYS);
    let ours = Rosterd::start(Some(BASE), "");
    let tmp = tempfile::tempdir().unwrap();
    let servers = [ours.url(), slapd.url()];

    // Users, a contact, and nested groups: all > (sales > u1, u2, contact ; eng > u3) , u6.
    let mut adds = String::new();
    for uid in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        adds.push_str(&user(uid));
    }
    adds.push_str("dn: cn=partner,ou=contacts,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\ncn: partner\nsn: partner\nmail: partner@other.example\n\n");
    adds.push_str(&group(
        "sales",
        &[
            &u("u1"),
            &u("u2"),
            "cn=partner,ou=contacts,dc=example,dc=com",
        ],
    ));
    adds.push_str(&group("eng", &[&u("u3")]));
    adds.push_str(&group("all", &[&g("sales"), &g("eng"), &u("u6")]));
    let steps: Vec<(&str, String)> = vec![
        ("adds", adds),
        (
            "members",
            format!(
                "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n-\nadd: member\nmember: {}\nmember: {}\n\n",
                g("sales"),
                u("u2").to_uppercase(),
                u("u4"),
                u("u5")
            ),
        ),
        // A member renamed, one moved to another branch, a group renamed, members deleted.
        (
            "rename-user",
            format!("dn: {}\nchangetype: modrdn\nnewrdn: uid=u1b\ndeleteoldrdn: 1\n\n", u("u1")),
        ),
        (
            "move-user",
            format!(
                "dn: {}\nchangetype: modrdn\nnewrdn: uid=u3\ndeleteoldrdn: 1\nnewsuperior: ou=contacts,dc=example,dc=com\n\n",
                u("u3")
            ),
        ),
        (
            "rename-group",
            format!("dn: {}\nchangetype: modrdn\nnewrdn: cn=engineering\ndeleteoldrdn: 1\n\n", g("eng")),
        ),
        ("delete-user", format!("dn: {}\nchangetype: delete\n\n", u("u6"))),
        ("delete-contact", "dn: cn=partner,ou=contacts,dc=example,dc=com\nchangetype: delete\n\n".to_string()),
        // memberOf is the server's: a client may not write it.
        (
            "write-memberof",
            format!("dn: {}\nchangetype: modify\nadd: memberOf\nmemberOf: {}\n\n", u("u5"), g("all")),
        ),
    ];
    for (name, ldif) in &steps {
        let codes: Vec<i32> = servers
            .iter()
            .enumerate()
            .map(|(i, url)| modify(url, tmp.path(), &format!("{name}-{i}.ldif"), ldif))
            .collect();
        assert_eq!(codes[0], codes[1], "{name}: rosterd vs slapd result code");
        if *name == "write-memberof" {
            assert_eq!(
                codes[0], 19,
                "memberOf is not writable (constraintViolation)"
            );
        } else {
            assert_eq!(codes[0], 0, "{name}");
        }
        let ours_view = groups_view(&servers[0]);
        let slapd_view = settle(|| groups_view(&servers[1]));
        assert_eq!(ours_view, slapd_view, "after {name}: rosterd vs slapd");
    }
    // Compare sees memberOf on both.
    for (dn, assertion, code) in [
        (u("u4"), format!("memberOf:{}", g("sales")), 6),
        (u("u4"), format!("memberOf:{}", g("all")), 5),
    ] {
        for url in &servers {
            assert_eq!(
                compare_code(url, &dn, &assertion),
                code,
                "{url} {dn} {assertion}"
            );
        }
    }

    // The final state, as a check that the comparison saw something.
    let (member_of, members, _) = groups_view(&servers[0]);
    assert_eq!(
        member_of[&u("u1b")]["memberof"],
        BTreeSet::from([g("sales")])
    );
    assert_eq!(
        members[&g("all")]["member"],
        BTreeSet::from([g("sales"), g("engineering")])
    );
    assert_eq!(
        members[&g("engineering")]["member"],
        BTreeSet::from(["uid=u3,ou=contacts,dc=example,dc=com".to_string()])
    );

    // Nested membership, which slapd does not offer: members of all through its groups, and
    // the groups u4 belongs to directly or not.
    let url = &servers[0];
    let nested = search(
        url,
        &format!("(memberOf:1.2.840.113556.1.4.1941:={})", g("all")),
        &["1.1"],
    );
    let names: BTreeSet<&str> = nested.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            u("u1b").as_str(),
            u("u4").as_str(),
            u("u5").as_str(),
            "uid=u3,ou=contacts,dc=example,dc=com",
            g("sales").as_str(),
            g("engineering").as_str(),
        ])
    );
    let holders = search(
        url,
        &format!("(member:1.2.840.113556.1.4.1941:={})", u("u4")),
        &["1.1"],
    );
    assert_eq!(
        holders.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([g("sales"), g("all")])
    );
    let view = search(url, "(uid=u4)", &["msDS-memberOfTransitive", "memberOf"]);
    assert_eq!(
        view[&u("u4")]["msds-memberoftransitive"],
        BTreeSet::from([g("sales"), g("all")])
    );
    assert_eq!(view[&u("u4")]["memberof"], BTreeSet::from([g("sales")]));
    // A cycle (all holds sales holds all) ends.
    assert_eq!(
        modify(
            url,
            tmp.path(),
            "cycle.ldif",
            &format!(
                "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\n",
                g("sales"),
                g("all")
            ),
        ),
        0
    );
    let view = search(url, "(uid=u4)", &["msDS-memberOfTransitive"]);
    assert_eq!(
        view[&u("u4")]["msds-memberoftransitive"],
        BTreeSet::from([g("sales"), g("all")])
    );
    // numSubordinates and hasSubordinates.
    let view = search(url, "(ou=people)", &["numSubordinates", "hasSubordinates"]);
    assert_eq!(
        view["ou=people,dc=example,dc=com"]["numsubordinates"],
        BTreeSet::from(["4".to_string()])
    );
    // A group whose last member leaves stays, empty (slapd refuses: groupOfNames needs one).
    assert_eq!(
        modify(
            url,
            tmp.path(),
            "empty.ldif",
            &format!(
                "dn: {}\nchangetype: modify\ndelete: member\n\n",
                g("engineering")
            ),
        ),
        0
    );
    let view = search(url, "(cn=engineering)", &["*"]);
    assert!(view.contains_key(&g("engineering")));
    assert!(!view[&g("engineering")].contains_key("member"));
}
