//! `roster users import` and the group member files against a real rosterd: the seed's
//! examples as printed, every kind of bad row, dry runs, templates, a 10,000-row file, and an
//! import cut short by stopping the server.

use crate::mail::start_directory;
use crate::tools::roster;
use roster_tests::{write_file, Rosterd, ROOT_DN, ROOT_PW};
use std::collections::{BTreeMap, BTreeSet};

const POLICY: &str = "[[password_policy]]\nmin_length = 8\nmin_classes = 3\nnot_username = true\n";

/// The roster tool's guide; the tests use its files as printed.
pub(crate) const TOOL_GUIDE: &str = include_str!("../../../docs/roster-tool.md");

/// A file of the tool's guide.
pub(crate) fn tool_file(name: &str) -> String {
    crate::mail::fenced(TOOL_GUIDE, name)
}

/// The entries under `base` matching `filter` as the root DN: DN (lower case) -> attribute
/// (lower case) -> values.
pub(crate) fn entries(
    server: &Rosterd,
    base: &str,
    filter: &str,
    attrs: &[&str],
) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
    conn.simple_bind(ROOT_DN, ROOT_PW)
        .expect("bind")
        .success()
        .expect("bind ok");
    let (found, _) = conn
        .search(base, ldap3::Scope::Subtree, filter, attrs.to_vec())
        .expect("search")
        .success()
        .expect("search ok");
    found
        .into_iter()
        .map(|e| {
            let e = ldap3::SearchEntry::construct(e);
            (
                e.dn.to_ascii_lowercase(),
                e.attrs
                    .into_iter()
                    .map(|(k, mut v)| {
                        v.sort();
                        (k.to_ascii_lowercase(), v)
                    })
                    .collect(),
            )
        })
        .collect()
}

pub(crate) fn members(server: &Rosterd, group: &str) -> Vec<String> {
    let dn = format!("cn={group},ou=groups,dc=example,dc=com");
    let mut m = entries(server, &dn, "(objectClass=*)", &["member"])
        .remove(&dn.to_ascii_lowercase())
        .and_then(|mut a| a.remove("member"))
        .unwrap_or_default();
    for v in m.iter_mut() {
        *v = v.to_ascii_lowercase();
    }
    m.sort();
    m
}

pub(crate) fn user_dn(name: &str) -> String {
    format!("uid={name},ou=users,dc=example,dc=com")
}

fn import(server: &Rosterd, file: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["users", "import"];
    let path = file.to_str().expect("path");
    args.push(path);
    args.extend(["--domain", "example.com"]);
    args.extend(extra);
    let (ok, out, err) = roster(server, ROOT_PW, &args);
    (ok, out + &err)
}

#[test]
fn the_seeds_examples_import_as_their_administrators_expect() {
    let (server, _shared) = start_directory(POLICY);
    let dir = tempfile::tempdir().expect("temp dir");
    // Seed 001's examples (the semicolon one names abird twice).
    let semi = write_file(
        dir.path(),
        "semicolons.csv",
        &tool_file("users-semicolons.csv"),
    );
    let commas = write_file(dir.path(), "commas.csv", &tool_file("users-commas.csv"));

    // abird twice: the second row is bad, so by default nothing is imported.
    let (ok, out) = import(&server, &semi, &["--create-groups"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 3, column Name: \"abird\" is already on line 2"),
        "{out}"
    );
    assert!(out.contains("nothing was imported"), "{out}");
    assert!(entries(&server, "dc=example,dc=com", "(uid=abird)", &["uid"]).is_empty());

    // A dry run says what would happen and changes nothing.
    let (ok, out) = import(
        &server,
        &semi,
        &["--create-groups", "--skip-invalid", "--dry-run"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "line 2 abird: would create uid=abird,ou=users,dc=example,dc=com; joins read, all"
        ),
        "{out}"
    );
    assert!(
        out.contains("would create 2, update 0, leave 0 unchanged; 1 invalid, 0 not selected; would create groups read"),
        "{out}"
    );
    assert!(entries(&server, "dc=example,dc=com", "(uid=abird)", &["uid"]).is_empty());

    // Without --create-groups, the missing group makes the rows bad.
    let (ok, out) = import(&server, &semi, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "line 2, column Groups: the group \"read\" does not exist (--create-groups creates it)"
        ),
        "{out}"
    );

    // --skip-invalid imports the good rows: the first abird and mtaylor.
    let report = dir.path().join("report.csv");
    let (ok, out) = import(
        &server,
        &semi,
        &[
            "--create-groups",
            "--skip-invalid",
            "--report",
            report.to_str().expect("path"),
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("created 2, updated 0, unchanged 0, skipped 1 (1 invalid, 0 not selected), failed 0, not applied 0, without groups 0; created groups read"),
        "{out}"
    );
    let report = std::fs::read_to_string(&report).expect("report");
    assert_eq!(
        report.split("\r\n").collect::<Vec<_>>(),
        vec![
            "Line;Name;Result;Detail",
            "2;abird;created;",
            "3;abird;invalid;\"Name: \"\"abird\"\" is already on line 2 (user names ignore case)\"",
            "4;mtaylor;created;",
            "",
        ]
    );
    let abird = entries(
        &server,
        &user_dn("abird"),
        "(objectClass=*)",
        &[
            "cn",
            "sn",
            "mail",
            "mailLocalAddress",
            "description",
            "rosterService",
        ],
    );
    let a = &abird[&user_dn("abird")];
    assert_eq!(a["cn"], vec!["Alexandra Bird"]);
    assert_eq!(a["sn"], vec!["Bird"]);
    assert_eq!(a["mail"], vec!["abird@example.com"]);
    assert_eq!(a["description"], vec!["Development"]);
    assert_eq!(a["rosterservice"].len(), 6);
    let m = &entries(
        &server,
        &user_dn("mtaylor"),
        "(objectClass=*)",
        &["mailLocalAddress"],
    )[&user_dn("mtaylor")];
    assert_eq!(
        m["maillocaladdress"],
        vec!["michael.taylor@example.com", "mtaylor@example.com"]
    );
    assert_eq!(members(&server, "read"), vec![user_dn("abird")]);
    assert!(members(&server, "all").contains(&user_dn("abird")));
    assert!(members(&server, "all").contains(&user_dn("mtaylor")));
    // The new user logs in with the password of the file.
    let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
    assert_eq!(
        conn.simple_bind(&user_dn("abird"), "VbD66op1")
            .expect("bind")
            .rc,
        0
    );

    // The comma example: ewood is new, the two others are as the file says.
    let (ok, out) = import(&server, &commas, &["--create-groups"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("created 1, updated 0, unchanged 2,") && out.contains("created groups sales"),
        "{out}"
    );
    assert_eq!(members(&server, "sales"), vec![user_dn("ewood")]);
    // Once more: nothing to do.
    let (ok, out) = import(&server, &commas, &[]);
    assert!(
        ok && out.contains("created 0, updated 0, unchanged 3,"),
        "{out}"
    );

    // Exporting, then importing the export, changes nothing.
    let exported = dir.path().join("export.csv");
    let (ok, _, err) = roster(
        &server,
        ROOT_PW,
        &[
            "users",
            "export",
            "--domain",
            "example.com",
            "-o",
            exported.to_str().expect("path"),
        ],
    );
    assert!(ok, "{err}");
    let before = entries(
        &server,
        "dc=example,dc=com",
        "(objectClass=*)",
        &["*", "modifyTimestamp"],
    );
    let (ok, out) = import(&server, &exported, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("created 0, updated 0, unchanged 11,"), "{out}");
    assert_eq!(
        before,
        entries(
            &server,
            "dc=example,dc=com",
            "(objectClass=*)",
            &["*", "modifyTimestamp"]
        )
    );

    // An update changes only what differs; a password in the file is kept from existing
    // users unless asked.
    let change = write_file(
        dir.path(),
        "change.csv",
        "name;FULLNAME;password;IMAP;Quota;Enabled\nmtaylor;Michael J. Taylor;Newpass-1;no;2G;no\n",
    );
    let (ok, out) = import(&server, &change, &["--dry-run"]);
    assert!(!ok || out.contains("would create 0, update 1"), "{out}");
    let (ok, out) = import(&server, &change, &[]);
    assert!(
        ok && out.contains("created 0, updated 1, unchanged 0,"),
        "{out}"
    );
    let m = &entries(
        &server,
        &user_dn("mtaylor"),
        "(objectClass=*)",
        &[
            "cn",
            "sn",
            "rosterService",
            "rosterMailQuota",
            "rosterAccountDisabled",
        ],
    )[&user_dn("mtaylor")];
    assert_eq!(m["cn"], vec!["Michael J. Taylor"]);
    assert_eq!(m["sn"], vec!["Taylor"]);
    assert_eq!(
        m["rosterservice"],
        vec!["pop3", "pop3secured", "smtp", "smtpsecured"]
    );
    assert_eq!(m["rostermailquota"], vec!["2147483648"]);
    assert_eq!(m["rosteraccountdisabled"], vec!["TRUE"]);
    let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
    assert_ne!(
        conn.simple_bind(&user_dn("mtaylor"), "Newpass-1")
            .expect("bind")
            .rc,
        0
    );
}

/// Runs `roster ARGS` bound as `dn`: (success, stdout + stderr).
pub(crate) fn roster_as(server: &Rosterd, dn: &str, pw: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(roster_tests::workspace_bin("roster"))
        .arg("--url")
        .arg(server.url())
        .arg("--ca")
        .arg(server.generated_ca())
        .args(args)
        .env("ROSTER_BIND_DN", dn)
        .env("ROSTER_PASSWORD", pw)
        .output()
        .expect("run roster");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_bad_row_is_named_and_options_select_what_is_imported() {
    let (server, _shared) = start_directory(POLICY);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_file(
        dir.path(),
        "bad.csv",
        "Name;Password;FullName;MailAddress;Groups;Quota\n\
         ;Pw-secret1;No Name;;;\n\
         j doe;Pw-secret1;J Doe;;;\n\
         nina;short;Nina;;;\n\
         omar;Pw-secret1;Omar;omar@elsewhere.org;;\n\
         pia;Pw-secret1;Pia;ali;;\n\
         nina;Pw-secret1;Nina Two;;;\n\
         quinn;Pw-secret1;Quinn\n\
         rita;Pw-secret1;Rita;;team;1T\n\
         sam;Pw-secret1;Sam;;;lots\n",
    );
    let (ok, out) = import(&server, &file, &[]);
    assert!(!ok, "{out}");
    for expected in [
        "line 2, column Name: no user name",
        "line 3, column Name: uid \"j doe\"",
        "line 4, column Password: the server refuses it: password policy: at least 8 characters are required, 5 given (result 19)",
        "line 5, column MailAddress: \"omar@elsewhere.org\" is not in the domain (example.com)",
        "line 6, column MailAddress: ali@example.com already belongs to alice",
        "line 7, column Name: \"nina\" is already on line 4",
        "line 8: 3 fields where the header has 6",
        "line 10, column Quota: \"lots\": bytes, or a number with K, M, G or T",
        "created 0, updated 0, unchanged 0, skipped 8 (8 invalid, 0 not selected), failed 0, not applied 1,",
        "nothing was imported",
    ] {
        assert!(out.contains(expected), "{expected:?} in\n{out}");
    }
    assert!(entries(&server, "dc=example,dc=com", "(uid=rita)", &["uid"]).is_empty());
    let (ok, out) = import(&server, &file, &["--skip-invalid"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("created 1, updated 0, unchanged 0, skipped 8"),
        "{out}"
    );
    assert!(members(&server, "team").contains(&user_dn("rita")));

    // An unknown column: the file as a whole is refused.
    let file = write_file(dir.path(), "colour.csv", "Name;Colour\nzoe;red\n");
    let (ok, out) = import(&server, &file, &["--skip-invalid"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 1, column Colour: unknown column"),
        "{out}"
    );

    // --select.
    let file = write_file(
        dir.path(),
        "three.csv",
        "Name;Password\ntom;Pw-secret1\numa;Pw-secret1\nvera;Pw-secret1\n",
    );
    let (ok, out) = import(&server, &file, &["--select", "tom,UMA"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("created 2, updated 0, unchanged 0, skipped 1 (0 invalid, 1 not selected)"),
        "{out}"
    );
    assert!(entries(&server, "dc=example,dc=com", "(uid=vera)", &["uid"]).is_empty());
    let (ok, out) = import(&server, &file, &["--select", "zed"]);
    assert!(
        !ok && out.contains("--select names users that are not in"),
        "{out}"
    );

    // --template: the template's services, quota and groups for new users (the guide's).
    let template = write_file(dir.path(), "template.ldif", &tool_file("template.ldif"));
    let (code, _, err) = roster_tests::run_tool(
        "ldapadd",
        &[
            "-x",
            "-H",
            &server.url(),
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-f",
            template.to_str().expect("path"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let file = write_file(dir.path(), "wes.csv", "Name;Quota\nwes;\nxia;5K\n");
    let (ok, out) = import(&server, &file, &["--template", "staff"]);
    assert!(ok, "{out}");
    let found = entries(
        &server,
        "ou=users,dc=example,dc=com",
        "(|(uid=wes)(uid=xia))",
        &["rosterService", "rosterMailQuota"],
    );
    let wes = &found[&user_dn("wes")];
    assert_eq!(wes["rosterservice"], vec!["imap", "imapsecured"]);
    assert_eq!(wes["rostermailquota"], vec!["2147483648"]);
    assert_eq!(found[&user_dn("xia")]["rostermailquota"], vec!["5120"]);
    assert!(members(&server, "info").contains(&user_dn("wes")));
    let (ok, out) = import(&server, &file, &["--template", "nope"]);
    assert!(
        !ok && out.contains("the template \"nope\" does not exist"),
        "{out}"
    );
}

#[test]
fn a_refused_group_change_leaves_no_user_half_created() {
    // bob may add users, but not change the members of info.
    let access = "[access]\npolicy = \"custom\"\n\
        [[access.rule]]\nbase = \"cn=info,ou=groups,dc=example,dc=com\"\nscope = \"base\"\nattrs = [\"member\"]\nby = [{ who = \"*\", rights = \"read\" }]\n\
        [[access.rule]]\nattrs = [\"userPassword\"]\nby = [{ who = \"dn:uid=bob,ou=users,dc=example,dc=com\", rights = \"write\" }, { who = \"anonymous\", rights = \"auth\" }]\n\
        [[access.rule]]\nby = [{ who = \"dn:uid=bob,ou=users,dc=example,dc=com\", rights = \"manage\" }, { who = \"*\", rights = \"read\" }]\n";
    let server = Rosterd::start(Some(&crate::mail::directory_ldif()), access);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_file(
        dir.path(),
        "users.csv",
        "Name;Password;Groups\nyan;Pw-secret1;team,info\nzoe;Pw-secret1;team\n",
    );
    let bob = "uid=bob,ou=users,dc=example,dc=com";
    let args = [
        "users",
        "import",
        file.to_str().expect("path"),
        "--domain",
        "example.com",
    ];
    let (ok, out) = roster_as(&server, bob, "Bob-pw-22", &args);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 2 yan: failed: the group info refused the new member")
            && out.contains("the user was not kept"),
        "{out}"
    );
    assert!(
        out.contains(
            "created 1, updated 0, unchanged 0, skipped 0 (0 invalid, 0 not selected), failed 1,"
        ),
        "{out}"
    );
    assert!(entries(&server, "dc=example,dc=com", "(uid=yan)", &["uid"]).is_empty());
    let team = members(&server, "team");
    assert!(
        !team.contains(&user_dn("yan")) && team.contains(&user_dn("zoe")),
        "{team:?}"
    );
}

/// The password of [`many_rows`]'s users, and its salted SHA-1 hash: imported hashes are kept
/// as they are (as from another server), so the debug build hashes nothing 10,000 times.
const BULK_PASSWORD: &str = "Pw-bulk-secret1";
const BULK_HASH: &str = "{SSHA}q+Acw8fWj5eMeo3scxWqLeYqeShyMHN0";

/// `n` user rows named `<prefix><i>`, half in `group`, CRLF line ends.
fn many_rows(prefix: &str, n: usize, group: &str) -> String {
    let mut text = String::from("Name;Password;FullName;MailAddress;Groups\r\n");
    for i in 0..n {
        let g = if i % 2 == 0 { group } else { "" };
        text.push_str(&format!(
            "{prefix}{i};{BULK_HASH};Person {i};{prefix}{i},{prefix}.{i};{g}\r\n"
        ));
    }
    text
}

#[test]
fn ten_thousand_rows_with_bom_and_crlf_and_windows_1252() {
    let server = Rosterd::start(Some(&crate::mail::directory_ldif()), "");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.csv");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(many_rows("u", 10_000, "big").as_bytes());
    std::fs::write(&path, bytes).expect("write");
    let (ok, out) = import(&server, &path, &["--create-groups"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("created 10000, updated 0, unchanged 0,"),
        "{out}"
    );
    assert_eq!(members(&server, "big").len(), 5_000);
    let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
    assert_eq!(
        conn.simple_bind(&user_dn("u9999"), BULK_PASSWORD)
            .expect("bind")
            .rc,
        0
    );
    let (ok, out) = import(&server, &path, &["--create-groups"]);
    assert!(
        ok && out.contains("created 0, updated 0, unchanged 10000,"),
        "{out}"
    );

    let latin = dir.path().join("latin.csv");
    std::fs::write(
        &latin,
        b"Name;FullName;Description\r\nmunoz;Jos\xE9 Mu\xF1oz;Caf\xE9 \x80 5\r\n",
    )
    .expect("write");
    let (ok, out) = import(&server, &latin, &[]);
    assert!(!ok && out.contains("line 2: not valid UTF-8"), "{out}");
    let (ok, out) = import(&server, &latin, &["--encoding", "windows-1252"]);
    assert!(ok, "{out}");
    let m = &entries(
        &server,
        &user_dn("munoz"),
        "(objectClass=*)",
        &["cn", "description"],
    )[&user_dn("munoz")];
    assert_eq!(m["cn"], vec!["José Muñoz"]);
    assert_eq!(m["description"], vec!["Café € 5"]);
}

#[test]
fn an_import_cut_short_by_the_server_says_exactly_what_was_applied() {
    let server = Rosterd::start(Some(&crate::mail::directory_ldif()), "");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_file(dir.path(), "cut.csv", &many_rows("cut", 10_000, "cutters"));
    let report = dir.path().join("report.csv");
    let mut child = std::process::Command::new(roster_tests::workspace_bin("roster"))
        .arg("--url")
        .arg(server.url())
        .arg("--ca")
        .arg(server.generated_ca())
        .args(["users", "import"])
        .arg(&file)
        .args(["--domain", "example.com", "--create-groups", "--report"])
        .arg(&report)
        .env("ROSTER_BIND_DN", ROOT_DN)
        .env("ROSTER_PASSWORD", ROOT_PW)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run roster");
    // Stop the server once a few thousand users are in (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n = entries(
            &server,
            "ou=users,dc=example,dc=com",
            "(uid=cut*)",
            &["1.1"],
        )
        .len();
        if n >= 2_500 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the import did not get going ({n} users)"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the import ended before the server was stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (data, config) = server.kill();
    let out = child.wait_with_output().expect("wait for roster");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("not applied"), "{text}");
    let server = Rosterd::spawn(data, config);

    let report = std::fs::read_to_string(&report).expect("report");
    let mut by_result: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in report.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.splitn(4, ';').collect();
        by_result
            .entry(fields[2].to_string())
            .or_default()
            .push(fields[1].to_string());
    }
    let count = |k: &str| by_result.get(k).map_or(0, Vec::len);
    assert_eq!(
        count("created")
            + count("created without groups")
            + count("created, groups in doubt")
            + count("not applied")
            + count("in doubt")
            + count("failed"),
        10_000,
        "{by_result:?}"
    );
    // Only a change in flight on one of the 4 connections can be in doubt.
    assert!(count("in doubt") <= 4, "{by_result:?}");
    assert!(
        count("created") >= 2_000 && count("not applied") > 0,
        "{text}"
    );
    // Every row reported written is there with its addresses; no other row is, but for those
    // whose change was in flight when the server died.
    let found = entries(
        &server,
        "ou=users,dc=example,dc=com",
        "(uid=cut*)",
        &["uid", "mailLocalAddress"],
    );
    let rows =
        |k: &str| -> BTreeSet<String> { by_result.get(k).into_iter().flatten().cloned().collect() };
    let written: BTreeSet<String> = [
        "created",
        "created without groups",
        "created, groups in doubt",
    ]
    .iter()
    .flat_map(|k| rows(k))
    .collect();
    let present: BTreeSet<String> = found.values().map(|a| a["uid"][0].clone()).collect();
    let missing: Vec<&String> = written.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "reported written, not there: {missing:?}"
    );
    let extra: Vec<&String> = present.difference(&written).collect();
    let doubt = rows("in doubt");
    assert!(
        extra.iter().all(|n| doubt.contains(*n)),
        "there, not reported written or in doubt: {extra:?}"
    );
    for a in found.values() {
        assert_eq!(a["maillocaladdress"].len(), 2, "{a:?}");
    }
    // Every even row reported created is in the group; those without groups say so.
    let group = members(&server, "cutters");
    for name in by_result.get("created").into_iter().flatten() {
        let i: usize = name.trim_start_matches("cut").parse().expect("number");
        assert_eq!(
            group.contains(&user_dn(name)),
            i.is_multiple_of(2),
            "{name}"
        );
    }
    for name in by_result
        .get("created without groups")
        .into_iter()
        .flatten()
    {
        assert!(!group.contains(&user_dn(name)), "{name}");
    }
    // Running the import again finishes the job.
    let (ok, out) = import(&server, &file, &["--create-groups"]);
    assert!(ok, "{out}");
    assert_eq!(members(&server, "cutters").len(), 5_000);
    assert_eq!(
        entries(
            &server,
            "ou=users,dc=example,dc=com",
            "(uid=cut*)",
            &["1.1"]
        )
        .len(),
        10_000
    );
}
