//! Seed 004's group workflow through the real `roster` binary against a real rosterd: member
//! templates, member files with NIF/NIE identifiers, the member export, and the one-change
//! commands (groups created, renamed, deleted, members added and removed from either side,
//! users disabled, enabled and deleted with a transfer); and the No-Op control those checks
//! rest on, driven by OpenLDAP's ldapmodify.

use crate::import::{entries, members, roster_as, user_dn};
use crate::mail::start_directory;
use crate::tools::roster;
use roster_tests::{run_tool, write_file, Rosterd, ROOT_DN, ROOT_PW};

fn group_dn(name: &str) -> String {
    format!("cn={name},ou=groups,dc=example,dc=com")
}

/// `roster ARGS --domain example.com` as the root DN: (success, stdout + stderr).
fn run(server: &Rosterd, args: &[&str]) -> (bool, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--domain", "example.com"]);
    let (ok, out, err) = roster(server, ROOT_PW, &all);
    (ok, out + &err)
}

fn set(server: &Rosterd, dn: &str, attr: &str, value: &str) {
    let (code, _, err) = roster_tests::ldapmodify(
        &server.url(),
        ROOT_DN,
        ROOT_PW,
        &format!("dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n"),
    );
    assert_eq!(code, 0, "{err}");
}

/// The result code of a simple bind.
fn bind(server: &Rosterd, dn: &str, pw: &str) -> u32 {
    let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
    conn.simple_bind(dn, pw).expect("bind").rc
}

#[test]
fn member_templates_and_files_follow_the_seed() {
    let (server, _shared) = start_directory("");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("path");
    set(&server, &user_dn("bob"), "rosterNationalId", "12345678Z");
    set(&server, &user_dn("erin"), "rosterNationalId", "X1234567L");

    // The empty template: the header and nothing else.
    let (ok, out) = run(&server, &["groups", "template", "team", "--dir", d]);
    assert!(ok, "{out}");
    let example = dir.path().join("users-mailbox-example.csv");
    assert_eq!(
        std::fs::read_to_string(&example).expect("template"),
        "Identifier;Name\r\n"
    );
    // The users not yet in team (alice is; the contact Zed is not a user).
    let (ok, out) = run(
        &server,
        &["groups", "template", "team", "--unassigned", "--dir", d],
    );
    assert!(ok && out.contains("7 users"), "{out}");
    let available =
        std::fs::read_to_string(dir.path().join("users-mailbox-available.csv")).expect("read");
    assert_eq!(
        available.split("\r\n").collect::<Vec<_>>(),
        vec![
            "Identifier;Name",
            "12345678Z;Bob",
            "X1234567L;Erin",
            "adam;Adam",
            "carol;Carol",
            "dave;Dave",
            "frank;Frank",
            "postmaster;Postmaster",
            "",
        ]
    );

    // A filled-in template: every line is accounted for.
    let filled = write_file(
        dir.path(),
        "filled.csv",
        "Identifier;Name\r\n\
         12345678Z;Bob\r\n\
         x1234567l;Erin, lower case\r\n\
         12345678A;Wrong check letter\r\n\
         Y0000000Z;Valid NIE, nobody's\r\n\
         carol;Carol\r\n\
         12345678Z;Bob again\r\n\
         alice;Alice;extra\r\n\
         \r\n\
         ;No identifier\r\n\
         zed;Not a user\r\n",
    );
    let path = filled.to_str().expect("path");
    let (ok, out) = run(&server, &["groups", "import-members", "empty", path]);
    assert!(ok, "{out}");
    assert!(
        out.contains("line 4: invalid: \"12345678A\": the check letter is Z, not A"),
        "{out}"
    );
    assert!(
        out.contains("line 5: unknown identifier \"Y0000000Z\""),
        "{out}"
    );
    assert!(
        out.contains("line 8: invalid: 3 fields where the header has 2"),
        "{out}"
    );
    assert!(out.contains("line 10: invalid: no identifier"), "{out}");
    assert!(out.contains("line 11: unknown identifier \"zed\""), "{out}");
    assert!(
        out.contains("added 3, already members 1, unknown identifiers 2, invalid lines 3"),
        "{out}"
    );
    assert_eq!(
        members(&server, "empty"),
        vec![user_dn("bob"), user_dn("carol"), user_dn("erin")]
    );
    // The same file again adds nothing.
    let (ok, out) = run(&server, &["groups", "import-members", "empty", path]);
    assert!(
        ok && out.contains("added 0, already members 4, unknown identifiers 2, invalid lines 3"),
        "{out}"
    );

    // A changed header, or commas, are refused before anything is read.
    for (name, text) in [
        ("commas.csv", "Identifier,Name\r\ncarol,Carol\r\n"),
        ("renamed.csv", "NIF;Name\r\nadam;Adam\r\n"),
    ] {
        let f = write_file(dir.path(), name, text);
        let (ok, out) = run(
            &server,
            &[
                "groups",
                "import-members",
                "team",
                f.to_str().expect("path"),
            ],
        );
        assert!(!ok, "{out}");
        assert!(
            out.contains("line 1: the header must be left as it was, \"Identifier;Name\""),
            "{out}"
        );
    }
    assert_eq!(
        members(&server, "team"),
        vec![
            "cn=zed,ou=contacts,dc=example,dc=com".to_string(),
            user_dn("alice")
        ]
    );
    // The guide's example file, into staff.
    let example = write_file(
        dir.path(),
        "members.csv",
        &crate::import::tool_file("members.csv"),
    );
    let (ok, out) = run(
        &server,
        &[
            "groups",
            "import-members",
            "staff",
            example.to_str().expect("path"),
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("line 4: invalid: \"12345678A\": the check letter is Z, not A")
            && out.contains("added 3, already members 0, unknown identifiers 0, invalid lines 1"),
        "{out}"
    );
    // An unknown group is named.
    let (ok, out) = run(&server, &["groups", "import-members", "nosuch", path]);
    assert!(
        !ok && out.contains("no group named \"nosuch\" in example.com"),
        "{out}"
    );

    // The member export: today's date in the name, semicolons between fields, commas
    // between the addresses of one user.
    let (ok, out) = run(&server, &["groups", "export-members", "info", "--dir", d]);
    assert!(ok, "{out}");
    let date = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .expect("run date");
    let today = String::from_utf8_lossy(&date.stdout).trim().to_string();
    let file = dir
        .path()
        .join(format!("users_example.com_info_{today}.csv"));
    let csv = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{out}: {e}"));
    assert_eq!(
        csv.split("\r\n").collect::<Vec<_>>(),
        vec![
            "Identifier;Name;User;MailAddress",
            "alice;Alice Liddell;alice;alice@example.com,ali@example.com",
            "",
        ]
    );
}

#[test]
fn group_and_user_commands_are_one_change_each() {
    let (server, _shared) = start_directory("");

    // A group with two addresses; a bad name and a taken one are refused with the reason.
    let (ok, out) = run(
        &server,
        &[
            "groups",
            "create",
            "sales",
            "--address",
            "sales",
            "--address",
            "ventas@example.com",
            "--kind",
            "internal",
            "--description",
            "Sales team",
        ],
    );
    assert!(ok, "{out}");
    let sales =
        &entries(&server, &group_dn("sales"), "(objectClass=*)", &["*"])[&group_dn("sales")];
    assert_eq!(
        sales["maillocaladdress"],
        vec!["sales@example.com", "ventas@example.com"]
    );
    assert_eq!(sales["rostergroupkind"], vec!["internal"]);
    assert_eq!(sales["description"], vec!["Sales team"]);
    let (ok, out) = run(&server, &["groups", "create", "bad name"]);
    assert!(!ok && out.contains("bad name"), "{out}");
    let (ok, out) = run(&server, &["groups", "create", "sales"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("create cn=sales,ou=groups,dc=example,dc=com") && out.contains("68"),
        "{out}"
    );
    // An address another group holds is refused by the server (a user and a group may
    // share one: mail goes to both).
    let (ok, out) = run(&server, &["groups", "create", "other", "--address", "team"]);
    assert!(!ok && out.contains("team@example.com"), "{out}");
    assert!(entries(&server, "dc=example,dc=com", "(cn=other)", &["cn"]).is_empty());

    // Members from the group's side: a user, a contact by address, a group.
    let (ok, out) = run(
        &server,
        &[
            "groups",
            "add-member",
            "sales",
            "alice",
            "zed@partner.net",
            "team",
            "frank",
        ],
    );
    assert!(
        ok && out.contains("sales: added alice, zed@partner.net, team, frank"),
        "{out}"
    );
    let (ok, out) = run(&server, &["groups", "add-member", "sales", "alice"]);
    assert!(ok && out.contains("sales: already has alice"), "{out}");
    let (ok, out) = run(&server, &["groups", "remove-member", "sales", "team"]);
    assert!(ok && out.contains("sales: removed team"), "{out}");
    let (ok, out) = run(&server, &["groups", "add-member", "sales", "nobody"]);
    assert!(
        !ok && out.contains("no user or group named \"nobody\""),
        "{out}"
    );
    assert_eq!(
        members(&server, "sales"),
        vec![
            "cn=zed,ou=contacts,dc=example,dc=com".to_string(),
            user_dn("alice"),
            user_dn("frank"),
        ]
    );

    // From the user's side: one change per group.
    let (ok, out) = run(&server, &["users", "join", "bob", "sales", "all"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("bob: joined sales") && out.contains("bob: was already in all"),
        "{out}"
    );
    let (ok, out) = run(&server, &["users", "leave", "bob", "sales", "info"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("bob: left sales") && out.contains("bob: was not in info"),
        "{out}"
    );
    assert!(!members(&server, "sales").contains(&user_dn("bob")));

    // A rename keeps members and addresses, and the groups that held it follow.
    let (ok, out) = run(&server, &["groups", "rename", "team", "crew"]);
    assert!(ok, "{out}");
    let crew = &entries(&server, &group_dn("crew"), "(objectClass=*)", &["*"])[&group_dn("crew")];
    assert_eq!(crew["maillocaladdress"], vec!["team@example.com"]);
    assert_eq!(crew["member"].len(), 2);
    assert!(entries(&server, "dc=example,dc=com", "(cn=team)", &["cn"]).is_empty());
    assert!(members(&server, "all").contains(&group_dn("crew")));

    // A delete removes the group from the groups that held it.
    let (ok, out) = run(&server, &["groups", "delete", "crew"]);
    assert!(ok, "{out}");
    assert!(!members(&server, "all").contains(&group_dn("crew")));
    let (ok, out) = run(&server, &["groups", "delete", "crew"]);
    assert!(!ok && out.contains("no group named \"crew\""), "{out}");

    // Disabled users cannot log in; enabled again they can.
    assert_eq!(bind(&server, &user_dn("erin"), "Erin-pw-44"), 0);
    let (ok, out) = run(&server, &["users", "disable", "erin"]);
    assert!(ok && out.contains("erin: disabled"), "{out}");
    assert_eq!(bind(&server, &user_dn("erin"), "Erin-pw-44"), 49);
    let (ok, out) = run(&server, &["users", "disable", "erin"]);
    assert!(ok && out.contains("erin: was already disabled"), "{out}");
    let (ok, out) = run(&server, &["users", "enable", "erin"]);
    assert!(ok && out.contains("erin: enabled"), "{out}");
    assert_eq!(bind(&server, &user_dn("erin"), "Erin-pw-44"), 0);

    // Deleted with a transfer: erin gets frank's addresses and groups.
    let (ok, out) = run(
        &server,
        &["users", "delete", "frank", "--transfer-to", "erin"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "deleted uid=frank,ou=users,dc=example,dc=com; its addresses and groups went to erin"
        ),
        "{out}"
    );
    assert!(entries(&server, "dc=example,dc=com", "(uid=frank)", &["uid"]).is_empty());
    let erin = &entries(
        &server,
        &user_dn("erin"),
        "(objectClass=*)",
        &["mailLocalAddress"],
    )[&user_dn("erin")];
    assert!(
        erin["maillocaladdress"].contains(&"info@example.com".to_string()),
        "{erin:?}"
    );
    assert!(members(&server, "sales").contains(&user_dn("erin")));
    assert!(!members(&server, "sales").contains(&user_dn("frank")));
    let (ok, out) = run(&server, &["users", "delete", "frank"]);
    assert!(!ok && out.contains("no user named \"frank\""), "{out}");

    // The server's access rules hold: bob may read but not create groups.
    let (ok, out) = roster_as(
        &server,
        &user_dn("bob"),
        "Bob-pw-22",
        &["groups", "create", "mine", "--domain", "example.com"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("50"), "{out}");
    assert!(entries(&server, "dc=example,dc=com", "(cn=mine)", &["cn"]).is_empty());
}

#[test]
fn the_no_op_control_checks_a_change_and_writes_nothing() {
    let (server, _shared) = start_directory("");
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let noop = |ldif: &str| {
        let f = write_file(dir.path(), "change.ldif", ldif);
        let path = f.to_str().expect("path").to_string();
        run_tool(
            "ldapmodify",
            &[
                "-x", "-H", &url, "-D", ROOT_DN, "-w", ROOT_PW, "-e", "!noop", "-f", &path,
            ],
        )
    };
    let add = "dn: uid=nina,ou=users,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: nina\ncn: Nina\nsn: Nina\nmail: nina@example.com\nuserPassword: Nina-pw-66\n";
    let (code, out, err) = noop(add);
    assert_eq!(code, 0, "{out}{err}");
    assert!(entries(&server, "dc=example,dc=com", "(uid=nina)", &["uid"]).is_empty());

    // What a real add would refuse, a checked one refuses the same way.
    let taken = add.replace("mail: nina@example.com", "mail: alice@example.com");
    let (code, _, err) = noop(&taken);
    let (real, _, real_err) = roster_tests::ldapmodify(&url, ROOT_DN, ROOT_PW, &taken);
    assert_ne!(code, 0, "{err}");
    assert_eq!(code, real, "{err} / {real_err}");
    let no_parent = add.replace("ou=users,dc=example", "ou=nowhere,dc=example");
    let (code, _, err) = noop(&no_parent);
    assert_eq!(code, 32, "{err}");

    // A checked modify leaves the entry as it was.
    let before = entries(&server, &user_dn("bob"), "(objectClass=*)", &["*", "+"]);
    let (code, out, err) = noop(
        "dn: uid=bob,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: Robert\n-\nreplace: userPassword\nuserPassword: Bob-new-pw-1\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        before,
        entries(&server, &user_dn("bob"), "(objectClass=*)", &["*", "+"])
    );
    assert_eq!(bind(&server, &user_dn("bob"), "Bob-pw-22"), 0);

    // Deletes and renames are not checked this way: the critical control is refused (12),
    // and nothing is removed.
    let (code, _, err) = noop("dn: uid=carol,ou=users,dc=example,dc=com\nchangetype: delete\n");
    assert_eq!(code, 12, "{err}");
    assert_eq!(
        entries(&server, &user_dn("carol"), "(objectClass=*)", &["uid"]).len(),
        1
    );
}
