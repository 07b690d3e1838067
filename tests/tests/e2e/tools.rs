//! The `roster` tool against a real rosterd: exports of a mail domain's users and groups.

use crate::mail::start_directory;
use roster_tests::{workspace_bin, Rosterd, ROOT_DN, ROOT_PW};
use std::process::Command;

/// Runs `roster ARGS` as the root DN over StartTLS: (success, stdout, stderr).
pub(crate) fn roster(server: &Rosterd, password: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(workspace_bin("roster"))
        .arg("--url")
        .arg(server.url())
        .arg("--ca")
        .arg(server.generated_ca())
        .args(args)
        .env("ROSTER_BIND_DN", ROOT_DN)
        .env("ROSTER_PASSWORD", password)
        .output()
        .expect("run roster (cargo build -p roster-tools)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_and_groups_export_as_the_seeds_csv() {
    let (server, _shared) = start_directory("");
    // A value a spreadsheet would run as a formula.
    let (code, _, err) = roster_tests::ldapmodify(
        &server.url(),
        ROOT_DN,
        ROOT_PW,
        "dn: uid=bob,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: =HYPERLINK(\"http://x\")\n",
    );
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().expect("temp dir");

    let (ok, csv, err) = roster(
        &server,
        ROOT_PW,
        &["users", "export", "--domain", "example.com"],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "Name;Password;FullName;Description;MailAddress;Groups;Enabled;Role;IMAP;POP3;Identifier;Quota"
    );
    assert!(
        lines.contains(&"alice;;Alice Liddell;;alice@example.com,ali@example.com;info,staff,team;yes;user;yes;yes;;1073741824"),
        "{csv}"
    );
    assert!(
        lines.contains(&"dave;;Dave;;dave@example.com;;no;user;yes;yes;;"),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bob;;Bob;\"'=HYPERLINK(\"\"http://x\"\")\";")),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("adam;") && l.contains(";admin;")),
        "{csv}"
    );
    assert!(err.contains("exported 8 users of example.com"), "{err}");

    let out = dir.path().join("groups.csv");
    let (ok, _, err) = roster(
        &server,
        ROOT_PW,
        &[
            "groups",
            "export",
            "--domain",
            "example.com",
            "-o",
            out.to_str().expect("path"),
        ],
    );
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(&out).expect("read export");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "Name;MailAddress;Kind;Right;Members;Description");
    assert!(
        lines.contains(&"team;team@example.com;external;none;2;"),
        "{csv}"
    );
    assert!(
        lines.contains(&"empty;empty@example.com;external;none;0;"),
        "{csv}"
    );
    assert!(lines.contains(&"auditors;;security;read;1;"), "{csv}");

    // Errors name what is wrong.
    let (ok, _, err) = roster(
        &server,
        "wrong",
        &["users", "export", "--domain", "example.com"],
    );
    assert!(!ok);
    assert!(err.contains("bind as cn=admin,dc=example,dc=com"), "{err}");
    let (ok, _, err) = roster(
        &server,
        ROOT_PW,
        &["users", "export", "--domain", "exa mple.com"],
    );
    assert!(!ok);
    assert!(err.contains("is not a domain name"), "{err}");
}

#[test]
fn users_check_reads_the_seeds_examples_and_names_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Seed 001's two examples as the tool's guide prints them; the semicolon one with CRLF
    // line ends, as a spreadsheet on Windows saves it.
    let semicolons = roster_tests::write_file(
        dir.path(),
        "semicolons.csv",
        &crate::import::tool_file("users-semicolons.csv").replace('\n', "\r\n"),
    );
    let commas = roster_tests::write_file(
        dir.path(),
        "commas.csv",
        &crate::import::tool_file("users-commas.csv"),
    );
    let latin = dir.path().join("latin.csv");
    std::fs::write(&latin, b"Name;FullName\nmunoz;Mu\xF1oz\n").expect("write");
    let check = |file: &std::path::Path, extra: &[&str]| {
        let out = Command::new(workspace_bin("roster"))
            .args(["users", "check"])
            .arg(file)
            .args(extra)
            .output()
            .expect("run roster");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = check(&semicolons, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 3, column Name: \"abird\" is already on line 2"),
        "{out}"
    );
    assert!(
        out.contains("2 users readable, 1 problems (semicolons between fields)"),
        "{out}"
    );
    let (ok, out) = check(&commas, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("3 users readable, 0 problems (commas between fields)"),
        "{out}"
    );
    let (ok, out) = check(&latin, &[]);
    assert!(!ok && out.contains("line 2: not valid UTF-8"), "{out}");
    let (ok, out) = check(&latin, &["--encoding", "windows-1252"]);
    assert!(ok, "{out}");
}
