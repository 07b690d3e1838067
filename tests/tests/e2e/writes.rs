//! Writes through OpenLDAP's own tools, with the same sequence of valid and invalid changes
//! applied to a stock slapd: the same result codes and the same final directory.

use roster_tests::{
    data, root_search, run_tool, settle, write_file, Rosterd, Slapd, GROUP_OVERLAYS, ROOT_DN,
    ROOT_PW, ROOT_READS_PASSWORDS,
};

/// One change: the tool, its LDIF (or DN for ldapdelete), and whether to bind as root.
struct Change {
    tool: &'static str,
    input: &'static str,
    as_root: bool,
}

const USER: &str = "dn: uid=new,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: new\ncn: New Person\nsn: Person\nmail: new@example.com\n";

fn changes() -> Vec<Change> {
    let root = |tool, input| Change {
        tool,
        input,
        as_root: true,
    };
    let modify = |body: &'static str| Change {
        tool: "ldapmodify",
        input: body,
        as_root: true,
    };
    vec![
        root("ldapadd", USER),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nadd: mail\nmail: second@example.com\n"),
        // A value the entry has, in another case: attributeOrValueExists.
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nadd: mail\nmail: NEW@example.com\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: mail\nmail: nothere@example.com\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: description\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: one\ndescription: two\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: sn\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nadd: fooBar\nfooBar: 1\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: uid\nuid: new\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: entryUUID\nentryUUID: 597ae2f6-16a6-1027-98f4-d28b5365dc14\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nadd: displayName\ndisplayName: a\ndisplayName: b\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nadd: mail\nmail: \u{fc}ber@example.com\n"),
        // All changes or none: the first is valid, the second is not.
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nadd: title\ntitle: Boss\n-\nadd: fooBar\nfooBar: 1\n"),
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: Renamed Person\ncn: Alias\n-\ndelete: mail\nmail: second@example.com\n"),
        modify("dn: uid=ghost,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: x\n"),
        Change { tool: "ldapmodify", input: "dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: anon\n", as_root: false },
        // The same DN again: entryAlreadyExists.
        root("ldapadd", USER),
        // A required attribute missing: objectClassViolation.
        root("ldapadd", "dn: uid=nosn,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: nosn\ncn: x\n"),
        // An undefined attribute type.
        root("ldapadd", "dn: uid=bad,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bad\ncn: x\nsn: x\nnoSuchType: 1\n"),
        // A missing parent: noSuchObject with the nearest existing entry as matched DN.
        root("ldapadd", "dn: uid=x,ou=nowhere,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: x\ncn: x\nsn: x\n"),
        // Outside every naming context.
        root("ldapadd", "dn: dc=other,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: other\no: x\n"),
        // The same value twice.
        root("ldapadd", "dn: uid=dup,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: dup\ncn: x\ncn: X\nsn: x\n"),
        // Two values of a single-valued attribute.
        root("ldapadd", "dn: uid=sv,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: sv\ncn: x\nsn: x\nuidNumber: 1\nuidNumber: 2\ngidNumber: 1\nhomeDirectory: /h\n"),
        // A value the syntax refuses.
        root("ldapadd", "dn: uid=syn,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: syn\ncn: x\nsn: x\nuidNumber: abc\ngidNumber: 1\nhomeDirectory: /h\n"),
        // The RDN's value is not among the entry's values: it is added, as slapd does.
        root("ldapadd", "dn: cn=Named,ou=people,dc=example,dc=com\nobjectClass: person\ncn: Other\nsn: x\n"),
        // An operational attribute a client may not set.
        root("ldapadd", "dn: uid=op,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: op\ncn: x\nsn: x\nentryUUID: 597ae2f6-16a6-1027-98f4-d28b5365dc14\n"),
        // Not bound: no right to add.
        Change { tool: "ldapadd", input: "dn: uid=anon,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: anon\ncn: x\nsn: x\n", as_root: false },
        // Deletes: an entry with children, a missing one, then real ones.
        root("ldapdelete", "ou=people,dc=example,dc=com"),
        root("ldapdelete", "uid=ghost,ou=nowhere,dc=example,dc=com"),
        root("ldapdelete", "uid=new,ou=people,dc=example,dc=com"),
        root("ldapdelete", "cn=Named,ou=people,dc=example,dc=com"),
        root("ldapdelete", "uid=u0003,ou=people,dc=example,dc=com"),
        Change { tool: "ldapdelete", input: "uid=u0004,ou=people,dc=example,dc=com", as_root: false },
        root("ldapadd", USER),
        // Increments: an integer, a type without integer semantics, a missing attribute, a
        // value that is not a number, and a negative step.
        modify("dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nincrement: uidNumber\nuidNumber: 5\n"),
        modify("dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nincrement: cn\ncn: 1\n"),
        modify("dn: uid=u0000,ou=people,dc=example,dc=com\nchangetype: modify\nincrement: uidNumber\nuidNumber: 1\n"),
        modify("dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nincrement: uidNumber\nuidNumber: abc\n"),
        modify("dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nincrement: uidNumber\nuidNumber: -1000\n"),
        modify("dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nincrement: gidNumber\ngidNumber: 1\n-\nincrement: uidNumber\nuidNumber: x\n"),
        // Renames and moves.
        modify("dn: uid=new,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=newer\ndeleteoldrdn: 1\n"),
        modify("dn: uid=newer,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=u0001\ndeleteoldrdn: 1\n"),
        modify("dn: uid=gone,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=x\ndeleteoldrdn: 1\n"),
        modify("dn: uid=newer,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: cn=New Person\ndeleteoldrdn: 0\n"),
        modify("dn: uid=u0002,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=u0002\ndeleteoldrdn: 1\nnewsuperior: ou=contacts,dc=example,dc=com\n"),
        modify("dn: uid=u0005,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=u0005\ndeleteoldrdn: 1\nnewsuperior: ou=nowhere,dc=example,dc=com\n"),
        // A whole subtree moves with its root.
        modify("dn: ou=Special  Unit,dc=example,dc=com\nchangetype: modrdn\nnewrdn: ou=Renamed Unit\ndeleteoldrdn: 1\n"),
        modify("dn: ou=deep,ou=Renamed Unit,dc=example,dc=com\nchangetype: modrdn\nnewrdn: ou=deep\ndeleteoldrdn: 1\nnewsuperior: ou=groups,dc=example,dc=com\n"),
        Change { tool: "ldapmodify", input: "dn: uid=u0006,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=anon\ndeleteoldrdn: 1\n", as_root: false },
    ]
}

/// Runs one change against `url`: (exit code, matched DN line of the diagnostics).
fn apply(url: &str, dir: &std::path::Path, n: usize, c: &Change) -> (i32, Option<String>) {
    let mut args = vec!["-x", "-H", url];
    if c.as_root {
        args.extend_from_slice(&["-D", ROOT_DN, "-w", ROOT_PW]);
    }
    let file;
    if c.tool != "ldapdelete" {
        file = write_file(dir, &format!("change{n}.ldif"), c.input);
        args.extend_from_slice(&["-f", file.to_str().unwrap()]);
    } else {
        args.push(c.input);
    }
    let (code, _, err) = run_tool(c.tool, &args);
    let matched = err
        .lines()
        .find(|l| l.contains("matched DN"))
        .map(str::to_string);
    (code, matched)
}

#[test]
fn changes_answer_as_slapd_does() {
    let d = data::directory(30, 31);
    let slapd = Slapd::start(&d.ldif, GROUP_OVERLAYS);
    let ours = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let tmp = tempfile::tempdir().unwrap();
    let mut codes = Vec::new();
    for (n, c) in changes().iter().enumerate() {
        let a = apply(&ours.url(), tmp.path(), n, c);
        let b = apply(&slapd.url(), tmp.path(), n, c);
        assert_eq!(
            a,
            b,
            "change {n} ({} {:?}): rosterd vs slapd",
            c.tool,
            c.input.lines().next()
        );
        codes.push(b.0);
    }
    // The sequence exercises successes and several distinct refusals.
    assert!(
        codes.contains(&0) && codes.contains(&68) && codes.contains(&66) && codes.contains(&32)
    );
    // The same directory afterwards, user attributes compared as ldapsearch prints them.
    let dump = |url: &str| {
        let (code, out, err) = run_tool(
            "ldapsearch",
            &[
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
                "(objectClass=*)",
                "*",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let mut entries: Vec<Vec<String>> = out
            .split("\n\n")
            .map(|b| {
                let mut lines: Vec<String> = b
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with("userPassword"))
                    .map(str::to_string)
                    .collect();
                if lines.len() > 1 {
                    lines[1..].sort();
                }
                lines
            })
            .filter(|l| !l.is_empty())
            .collect();
        entries.sort();
        entries
    };
    // Deletes and renames of members reached the groups on both (slapd rewrites them in the
    // background).
    assert_eq!(dump(&ours.url()), settle(|| dump(&slapd.url())));
}

#[test]
fn added_passwords_are_stored_hashed_and_bind() {
    let d = data::directory(5, 37);
    let ours = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let tmp = tempfile::tempdir().unwrap();
    let ldif = "dn: uid=pw,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: pw\ncn: x\nsn: x\nuserPassword: clear-secret\n\n\
                dn: uid=imported,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: imported\ncn: y\nsn: y\nuserPassword: {SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==\n";
    let f = write_file(tmp.path(), "pw.ldif", ldif);
    let url = ours.url();
    let (code, _, err) = run_tool(
        "ldapadd",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-f",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let out = root_search(
        &url,
        "uid=pw,ou=people,dc=example,dc=com",
        &["userPassword"],
    );
    // ldapsearch prints the value base64-encoded: decode it.
    let b64 = out
        .lines()
        .find_map(|l| l.strip_prefix("userPassword:: "))
        .unwrap();
    let stored = String::from_utf8(base64_decode(b64)).unwrap();
    assert!(stored.starts_with("{ARGON2}$argon2id$"), "{stored}");
    for (dn, pw) in [
        ("uid=pw,ou=people,dc=example,dc=com", "clear-secret"),
        ("uid=imported,ou=people,dc=example,dc=com", "secret"),
    ] {
        let (code, out, err) = run_tool("ldapwhoami", &["-x", "-H", &url, "-D", dn, "-w", pw]);
        assert_eq!(code, 0, "{dn}: {err}");
        assert_eq!(out.trim(), format!("dn:{dn}"));
    }
}

/// Standard base64 decoding, enough for one test value.
fn base64_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = alphabet.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn password_changes_answer_as_slapd_does() {
    let d = data::directory(10, 41);
    let slapd = Slapd::start(&d.ldif, "");
    let ours = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let u1 = "uid=u0001,ou=people,dc=example,dc=com";
    let u2 = "uid=u0002,ou=people,dc=example,dc=com";
    let u3 = "uid=u0003,ou=people,dc=example,dc=com";
    let root = ["-D", ROOT_DN, "-w", ROOT_PW];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("ldappasswd", [&root[..], &["-s", "newpw1", u1]].concat()),
        ("ldapwhoami", vec!["-D", u1, "-w", "newpw1"]),
        (
            "ldappasswd",
            vec!["-D", u1, "-w", "newpw1", "-a", "newpw1", "-s", "newpw2"],
        ),
        ("ldapwhoami", vec!["-D", u1, "-w", "newpw2"]),
        ("ldapwhoami", vec!["-D", u1, "-w", "newpw1"]),
        (
            "ldappasswd",
            vec!["-D", u1, "-w", "newpw2", "-a", "wrong", "-s", "newpw3"],
        ),
        (
            "ldappasswd",
            vec!["-D", u1, "-w", "newpw2", "-s", "stolen", u2],
        ),
        ("ldappasswd", vec!["-s", "anon", u2]),
        (
            "ldappasswd",
            [
                &root[..],
                &["-s", "x", "uid=ghost,ou=people,dc=example,dc=com"],
            ]
            .concat(),
        ),
        // An entry changes its own userPassword with ldapmodify, and nothing else.
        (
            "ldapmodify",
            vec!["-D", u1, "-w", "newpw2", "-f", "self-replace.ldif"],
        ),
        ("ldapwhoami", vec!["-D", u1, "-w", "newpw4"]),
        (
            "ldapmodify",
            vec!["-D", u1, "-w", "newpw4", "-f", "self-cn.ldif"],
        ),
        (
            "ldapmodify",
            vec!["-D", u1, "-w", "newpw4", "-f", "other-password.ldif"],
        ),
        (
            "ldapmodify",
            vec!["-D", u1, "-w", "newpw4", "-f", "self-swap.ldif"],
        ),
        ("ldapwhoami", vec!["-D", u1, "-w", "newpw5"]),
        ("ldapwhoami", vec!["-D", u1, "-w", "newpw4"]),
        (
            "ldapmodify",
            vec!["-D", u1, "-w", "newpw5", "-f", "self-delete-wrong.ldif"],
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("self-replace.ldif", format!("dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: newpw4\n")),
        ("self-cn.ldif", format!("dn: {u1}\nchangetype: modify\nreplace: cn\ncn: Mine\n")),
        ("other-password.ldif", format!("dn: {u2}\nchangetype: modify\nreplace: userPassword\nuserPassword: stolen\n")),
        ("self-swap.ldif", format!("dn: {u1}\nchangetype: modify\ndelete: userPassword\nuserPassword: newpw4\n-\nadd: userPassword\nuserPassword: newpw5\n")),
        ("self-delete-wrong.ldif", format!("dn: {u1}\nchangetype: modify\ndelete: userPassword\nuserPassword: not-it\n")),
    ] {
        write_file(tmp.path(), name, &body);
    }
    let in_tmp = |a: &str| -> String {
        if a.ends_with(".ldif") {
            tmp.path().join(a).to_string_lossy().into_owned()
        } else {
            a.to_string()
        }
    };
    for (n, (tool, args)) in cases.iter().enumerate() {
        let args: Vec<String> = args.iter().map(|a| in_tmp(a)).collect();
        let run = |url: &str| {
            let mut full = vec!["-x", "-H", url];
            full.extend(args.iter().map(String::as_str));
            run_tool(tool, &full).0
        };
        assert_eq!(
            run(&ours.url()),
            run(&slapd.url()),
            "case {n}: {tool} {args:?}"
        );
    }
    // The self-service changes took effect: the last password set binds, on both.
    for url in [ours.url(), slapd.url()] {
        let (code, _, err) = run_tool("ldapwhoami", &["-x", "-H", &url, "-D", u1, "-w", "newpw5"]);
        assert_eq!(code, 0, "{url}: {err}");
    }
    // Without a new password the server makes one up, returns it, and it binds.
    for url in [ours.url(), slapd.url()] {
        let (code, out, err) = run_tool(
            "ldappasswd",
            &[&["-x", "-H", &url][..], &root[..], &[u3]].concat(),
        );
        assert_eq!(code, 0, "{url}: {err}");
        let generated = out
            .lines()
            .find_map(|l| l.strip_prefix("New password: "))
            .unwrap()
            .to_string();
        let (code, _, err) = run_tool(
            "ldapwhoami",
            &["-x", "-H", &url, "-D", u3, "-w", &generated],
        );
        assert_eq!(code, 0, "{url}: {err}");
    }
}
