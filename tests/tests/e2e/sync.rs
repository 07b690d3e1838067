//! `roster sync` through the real binary, from a real Samba Active Directory domain controller
//! into a real rosterd, with the job file of `docs/sync.md` as printed: the first run, changes
//! read incrementally (renames, disabled accounts, deletions through tombstones, entries moved
//! out of the searched base, group members), the deletion cap, an upstream that is down, a
//! 2,000-member group read through AD's ranged values, and nested groups flattened on request.
//! Each run is a new process, so every incremental run resumes from the state stored in the
//! directory.

use crate::import::{entries, members};
use crate::mail::start_directory;
use roster_tests::samba::{Samba, ADMIN_DN, ADMIN_PW, LDAPS_URL};
use roster_tests::{workspace_bin, write_file, Rosterd, ROOT_PW};
use std::path::Path;

const GUIDE: &str = include_str!("../../../docs/sync.md");
const STAFF: &str = "OU=Staff,DC=corp,DC=example,DC=com";
/// A domain administrator of example.com in the mail tests' directory.
const ADAM: &str = "uid=adam,ou=users,dc=example,dc=com";
const ADAM_PW: &str = "Adam-pw-55";

/// The guide's job file with the test's servers, CAs and password files in place.
fn job_file(dir: &Path, server: &Rosterd, samba: &Samba, extra: &str) -> std::path::PathBuf {
    let admin_pw = write_file(dir, "admin.pw", &format!("{ROOT_PW}\n"));
    let corp_pw = write_file(dir, "corp.pw", &format!("{ADMIN_PW}\n"));
    let text = crate::mail::fenced(GUIDE, "corp-sync.toml")
        .replace("ldap://127.0.0.1:3389", &server.url())
        .replace(
            "/etc/roster/ca.pem",
            &server.generated_ca().display().to_string(),
        )
        .replace("/etc/roster/admin.pw", &admin_pw.display().to_string())
        .replace("ldaps://dc1.corp.example.com:636", LDAPS_URL)
        .replace("/etc/roster/corp-ca.pem", &samba.ca().display().to_string())
        .replace(
            "CN=roster-sync,CN=Users,DC=corp,DC=example,DC=com",
            ADMIN_DN,
        )
        .replace("/etc/roster/corp.pw", &corp_pw.display().to_string());
    write_file(dir, "corp-sync.toml", &format!("{extra}{text}"))
}

/// `roster sync --config JOB ARGS`: (exit code, stdout + stderr).
fn sync(job: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(workspace_bin("roster"))
        .arg("sync")
        .arg("--config")
        .arg(job)
        .args(args)
        .output()
        .expect("run roster");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The number of entries a run says it read.
fn read_count(out: &str) -> usize {
    out.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" run, ")?;
            rest.split_once(" entries read")?.0.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary in {out}"))
}

/// `unicodePwd` as AD takes it: the quoted password in UTF-16LE, base64.
fn unicode_pwd(pw: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = format!("\"{pw}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An AD user under OU=Staff, enabled (or disabled) with a password.
fn ad_user(cn: &str, sam: &str, mail: &str, aliases: &[&str], disabled: bool) -> String {
    let (given, sn) = cn.split_once(' ').unwrap_or((cn, cn));
    let mut ldif = format!(
        "dn: CN={cn},{STAFF}\nchangetype: add\nobjectClass: user\nsAMAccountName: {sam}\n\
         givenName: {given}\nsn: {sn}\ndisplayName: {cn}\nmail: {mail}\nproxyAddresses: SMTP:{mail}\n"
    );
    for a in aliases {
        ldif.push_str(&format!("proxyAddresses: smtp:{a}\n"));
    }
    ldif.push_str(&format!(
        "unicodePwd:: {}\nuserAccountControl: {}\n\n",
        unicode_pwd(&format!("Pw-{sam}-1")),
        if disabled { 514 } else { 512 }
    ));
    ldif
}

fn ad(samba: &Samba, ldif: &str) {
    let (code, out, err) = samba.ldapmodify(ldif);
    assert_eq!(code, 0, "{out}{err}\n{ldif}");
}

fn user(server: &Rosterd, uid: &str) -> Option<std::collections::BTreeMap<String, Vec<String>>> {
    let dn = format!("uid={uid},ou=users,dc=example,dc=com");
    entries(
        server,
        "ou=users,dc=example,dc=com",
        &format!("(uid={uid})"),
        &["*"],
    )
    .remove(&dn)
}

fn first(e: &std::collections::BTreeMap<String, Vec<String>>, attr: &str) -> String {
    e.get(attr)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_ad_domain_is_mapped_and_followed_through_its_changes() {
    let mut samba = Samba::start();
    // rosterd checks the mapped users' passwords with the domain controller.
    let upstream = crate::mail::fenced(GUIDE, "rosterd-upstream.toml")
        .replace("ldaps://dc1.corp.example.com:636", LDAPS_URL)
        .replace("/etc/roster/corp-ca.pem", &samba.ca().display().to_string());
    let (server, _shared) = start_directory(&upstream);
    let dir = tempfile::tempdir().expect("temp dir");
    let job = job_file(dir.path(), &server, &samba, "");
    ad(
        &samba,
        &format!("dn: {STAFF}\nchangetype: add\nobjectClass: organizationalUnit\n\n"),
    );
    let mut ldif = ad_user(
        "Ann Bird",
        "ann",
        "ann@example.com",
        &["a.bird@example.com", "ann@corp.example.com"],
        false,
    );
    ldif += &ad_user(
        "Boris Stone",
        "boris",
        "boris.stone@example.com",
        &[],
        false,
    );
    ldif += &ad_user("Carl Dent", "carl", "carl@example.com", &[], true);
    // A local user of the example domain has this name: it is not taken over.
    ldif += &ad_user(
        "Alice Other",
        "alice",
        "alice.other@example.com",
        &[],
        false,
    );
    // The address of the local alice: the server refuses it; the other entries go on.
    ldif += &ad_user("Edna Clash", "edna", "alice@example.com", &[], false);
    ldif += &format!(
        "dn: CN=Inner,{STAFF}\nchangetype: add\nobjectClass: group\nsAMAccountName: inner\n\
         member: CN=Carl Dent,{STAFF}\n\n\
         dn: CN=Sales Team,{STAFF}\nchangetype: add\nobjectClass: group\nsAMAccountName: sales-team\n\
         mail: sales-team@example.com\ndescription: Everyone who sells\n\
         member: CN=Ann Bird,{STAFF}\nmember: CN=Boris Stone,{STAFF}\nmember: CN=Inner,{STAFF}\n\n"
    );
    ad(&samba, &ldif);
    let before = entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*"]);

    // A dry run lists what it would do and writes nothing, not even its state.
    let (code, out) = sync(&job, &["--dry-run"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("would create user ann"), "{out}");
    assert!(out.contains("would create group Sales Team"), "{out}");
    assert!(out.contains("dry full run"), "{out}");
    assert_eq!(
        entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*"]),
        before
    );

    // The first run: a full one.
    let (code, out) = sync(&job, &["--once"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("sync corp: full run"), "{out}");
    assert!(
        out.contains("users: 3 created, 0 updated, 0 renamed, 0 disabled, 0 deleted"),
        "{out}"
    );
    assert!(out.contains("groups: 2 created"), "{out}");
    assert!(out.contains("2 errors"), "{out}");
    assert!(
        out.contains(&format!(
            "error: CN=Alice Other,{STAFF}: a local user named \"alice\" exists here"
        )),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l
            .starts_with(&format!("error: CN=Edna Clash,{STAFF}: create user edna:"))
            && l.contains("(result 19)")),
        "{out}"
    );
    assert!(
        out.contains("1 addresses outside the domain's names left out"),
        "{out}"
    );
    let ann = user(&server, "ann").expect("ann mapped");
    let guid = samba.tool_output(&["user", "show", "ann", "--attributes=objectGUID"]);
    let guid = guid
        .lines()
        .find_map(|l| l.strip_prefix("objectGUID: "))
        .expect("objectGUID")
        .trim()
        .to_string();
    assert_eq!(first(&ann, "rosterupstreamid"), guid);
    assert_eq!(first(&ann, "rosterupstream"), "corp");
    assert_eq!(
        first(&ann, "rosterupstreamdn"),
        format!("CN=Ann Bird,{STAFF}")
    );
    assert_eq!(first(&ann, "mail"), "ann@example.com");
    assert_eq!(
        ann.get("maillocaladdress").cloned().unwrap_or_default(),
        vec!["a.bird@example.com".to_string(), "ann@example.com".into()]
    );
    assert_eq!(first(&ann, "cn"), "Ann Bird");
    assert!(!ann.contains_key("userpassword"));
    assert_eq!(
        first(
            &user(&server, "carl").expect("carl"),
            "rosteraccountdisabled"
        ),
        "TRUE"
    );
    assert_eq!(
        first(&user(&server, "alice").expect("alice"), "rosterupstream"),
        ""
    );
    assert!(user(&server, "edna").is_none());
    // Nested groups are not mapped as members by default.
    assert_eq!(
        members(&server, "Sales Team"),
        vec![
            "uid=ann,ou=users,dc=example,dc=com",
            "uid=boris,ou=users,dc=example,dc=com"
        ]
    );
    // Mapped users log in with their AD password; disabled ones do not.
    let bind = |uid: &str, pw: &str| {
        let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
        conn.simple_bind(&format!("uid={uid},ou=users,dc=example,dc=com"), pw)
            .expect("bind")
            .rc
    };
    assert_eq!(bind("ann", "Pw-ann-1"), 0);
    assert_eq!(bind("ann", "Pw-wrong-1"), 49);
    assert_eq!(bind("carl", "Pw-carl-1"), 49);
    // Where a password is checked is decided by the job's account (here the root DN), not by
    // a domain admin: adam may neither point ann at another AD account nor map an entry of
    // his own to one (to guess its password through rosterd).
    let (code, _, err) = roster_tests::ldapmodify(
        &server.url(),
        ADAM,
        ADAM_PW,
        "dn: uid=ann,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: rosterUpstreamDn\nrosterUpstreamDn: CN=Administrator,CN=Users,DC=corp,DC=example,DC=com\n-\n",
    );
    assert_eq!(code, 50, "{err}");
    assert!(
        err.contains("only the root DN, a global admin or one of the upstream's writers"),
        "{err}"
    );
    let (code, _, err) = roster_tests::ldapmodify(
        &server.url(),
        ADAM,
        ADAM_PW,
        "dn: uid=probe,ou=users,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: probe\ncn: Probe\nsn: Probe\nrosterUpstream: corp\nrosterUpstreamDn: CN=Administrator,CN=Users,DC=corp,DC=example,DC=com\n",
    );
    assert_eq!(code, 50, "{err}");
    assert_eq!(
        members(&server, "Inner"),
        vec!["uid=carl,ou=users,dc=example,dc=com"]
    );
    let state = entries(&server, "ou=sync,dc=example,dc=com", "(cn=corp)", &["*"]);
    let state = state
        .get("cn=corp,ou=sync,dc=example,dc=com")
        .expect("state entry");
    assert!(
        first(state, "rostersyncmark").parse::<u64>().is_ok(),
        "{state:?}"
    );
    assert!(first(state, "rostersyncsource").contains('@'), "{state:?}");
    assert!(!first(state, "rostersynclastfullrun").is_empty());
    assert_eq!(
        state.get("rostersyncretry").map(Vec::len),
        Some(2),
        "{state:?}"
    );

    // Changes upstream: a rename, a disabled account, a deletion, a new user, members.
    ad(
        &samba,
        &(format!(
            "dn: CN=Ann Bird,{STAFF}\nchangetype: modrdn\nnewrdn: CN=Anne Bird\ndeleteoldrdn: 1\n\n\
             dn: CN=Anne Bird,{STAFF}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: anne\n-\n\
             replace: displayName\ndisplayName: Anne Bird\n-\n\n\
             dn: CN=Boris Stone,{STAFF}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n-\n\n\
             dn: CN=Carl Dent,{STAFF}\nchangetype: delete\n\n\
             dn: CN=Alice Other,{STAFF}\nchangetype: delete\n\n\
             dn: CN=Edna Clash,{STAFF}\nchangetype: delete\n\n"
        ) + &ad_user("Dina Lamb", "dina", "dina@example.com", &[], false)
            + &format!(
                "dn: CN=Sales Team,{STAFF}\nchangetype: modify\nadd: member\nmember: CN=Dina Lamb,{STAFF}\n-\n\
                 delete: member\nmember: CN=Boris Stone,{STAFF}\n-\n\n"
            )),
    );
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sync corp: incremental run"), "{out}");
    assert!(out.contains("rename user anne (ann -> anne"), "{out}");
    assert!(out.contains("disable user boris"), "{out}");
    assert!(out.contains("delete user carl"), "{out}");
    assert!(out.contains("create user dina"), "{out}");
    assert!(
        out.contains("users: 1 created, 0 updated, 1 renamed, 1 disabled, 1 deleted"),
        "{out}"
    );
    let incremental_read = read_count(&out);
    let anne = user(&server, "anne").expect("anne");
    assert!(user(&server, "ann").is_none());
    assert_eq!(
        first(&anne, "rosterupstreamid"),
        guid,
        "a rename keeps the entry"
    );
    assert_eq!(
        first(&anne, "rosterupstreamdn"),
        format!("CN=Anne Bird,{STAFF}")
    );
    assert_eq!(first(&anne, "cn"), "Anne Bird");
    // Renamed upstream and here: the password is still checked with the domain controller.
    assert_eq!(bind("anne", "Pw-ann-1"), 0);
    assert_eq!(
        first(
            &user(&server, "boris").expect("boris"),
            "rosteraccountdisabled"
        ),
        "TRUE"
    );
    assert!(user(&server, "carl").is_none());
    assert_eq!(
        members(&server, "Sales Team"),
        vec![
            "uid=anne,ou=users,dc=example,dc=com",
            "uid=dina,ou=users,dc=example,dc=com"
        ]
    );

    // Nothing changed upstream: an incremental run reads (almost) nothing and writes nothing.
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("users: 0 created, 0 updated, 0 renamed, 0 disabled, 0 deleted"),
        "{out}"
    );
    let idle_read = read_count(&out);
    assert!(
        idle_read < incremental_read,
        "{idle_read} then {incremental_read}: {out}"
    );
    // An entry the job takes for gone is looked for again by its GUID before anything is
    // removed: boris, named for removal in the job's retries, is found and stays.
    let boris_guid = samba.tool_output(&["user", "show", "boris", "--attributes=objectGUID"]);
    let boris_guid = boris_guid
        .lines()
        .find_map(|l| l.strip_prefix("objectGUID: "))
        .expect("objectGUID")
        .trim()
        .to_string();
    let (code, _, err) = roster_tests::ldapmodify(
        &server.url(),
        roster_tests::ROOT_DN,
        ROOT_PW,
        &format!("dn: cn=corp,ou=sync,dc=example,dc=com\nchangetype: modify\nadd: rosterSyncRetry\nrosterSyncRetry: id:{boris_guid}\n-\n"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 disabled, 0 deleted"), "{out}");
    assert!(user(&server, "boris").is_some(), "{out}");
    // boris enabled again upstream is enabled here.
    ad(
        &samba,
        &format!("dn: CN=Boris Stone,{STAFF}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 512\n-\n\n"),
    );
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("update user boris (enabled)"), "{out}");
    assert_eq!(
        first(
            &user(&server, "boris").expect("boris"),
            "rosteraccountdisabled"
        ),
        ""
    );

    // An OU renamed upstream: its users' DNs change, their change numbers do not. The run
    // reads what is under the renamed OU again, and olga still logs in.
    ad(
        &samba,
        &(format!("dn: OU=Sales,{STAFF}\nchangetype: add\nobjectClass: organizationalUnit\n\n")
            + &ad_user("Olga Ruiz", "olga", "olga@example.com", &[], false)
                .replace(&format!(",{STAFF}"), &format!(",OU=Sales,{STAFF}"))),
    );
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("create user olga"), "{out}");
    ad(
        &samba,
        &format!(
            "dn: OU=Sales,{STAFF}\nchangetype: modrdn\nnewrdn: OU=Vendas\ndeleteoldrdn: 1\n\n"
        ),
    );
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("update user olga (rosterUpstreamDn)"), "{out}");
    assert_eq!(
        first(&user(&server, "olga").expect("olga"), "rosterupstreamdn"),
        format!("CN=Olga Ruiz,OU=Vendas,{STAFF}")
    );
    assert_eq!(bind("olga", "Pw-olga-1"), 0);

    // Two deletions of six mapped entries: more than 10% allows; the run changes nothing.
    ad(
        &samba,
        &format!("dn: CN=Anne Bird,{STAFF}\nchangetype: delete\n\ndn: CN=Dina Lamb,{STAFF}\nchangetype: delete\n\n"),
    );
    let before = entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*", "+"]);
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("would remove 2 of the 6 entries this job maps"),
        "{out}"
    );
    assert!(out.contains("nothing was changed"), "{out}");
    assert!(out.contains("would delete user anne"), "{out}");
    assert_eq!(
        entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*", "+"]),
        before
    );
    let (code, out) = sync(&job, &["--max-deletes", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        user(&server, "anne").is_none() && user(&server, "dina").is_none(),
        "{out}"
    );

    // An entry moved out of the searched base has left the job, though nothing was deleted.
    ad(
        &samba,
        &format!("dn: CN=Boris Stone,{STAFF}\nchangetype: modrdn\nnewrdn: CN=Boris Stone\ndeleteoldrdn: 1\nnewsuperior: CN=Users,DC=corp,DC=example,DC=com\n\n"),
    );
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("delete user boris"), "{out}");

    // The upstream is down: the run fails and changes nothing.
    ad(
        &samba,
        &ad_user("Fay Wray", "fay", "fay@example.com", &[], false),
    );
    samba.stop();
    let before = entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*", "+"]);
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the upstream: connect to ldaps://127.0.0.1:636"),
        "{out}"
    );
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(
        entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*", "+"]),
        before
    );
}

#[test]
fn a_group_of_two_thousand_is_read_through_ranges_and_nesting_is_flattened_on_request() {
    let samba = Samba::start();
    let (server, _shared) = start_directory("");
    let dir = tempfile::tempdir().expect("temp dir");
    let job = job_file(dir.path(), &server, &samba, "");
    let text = std::fs::read_to_string(&job).expect("job");
    std::fs::write(
        &job,
        text.replace("nested_groups = \"ignore\"", "nested_groups = \"flatten\""),
    )
    .expect("job");
    let mut ldif = format!("dn: {STAFF}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    let mut group = format!(
        "dn: CN=Everyone,{STAFF}\nchangetype: add\nobjectClass: group\nsAMAccountName: everyone\nmail: everyone@example.com\n"
    );
    for i in 0..2000 {
        ldif.push_str(&format!(
            "dn: CN=u{i:04},{STAFF}\nchangetype: add\nobjectClass: user\nsAMAccountName: u{i:04}\nmail: u{i:04}@example.com\n\n"
        ));
        group.push_str(&format!("member: CN=u{i:04},{STAFF}\n"));
    }
    ldif += &group;
    ldif += "\n";
    ldif += &ad_user("Gil Head", "gil", "gil@example.com", &[], false);
    ldif += &format!(
        "dn: CN=Outer,{STAFF}\nchangetype: add\nobjectClass: group\nsAMAccountName: outer\n\
         member: CN=Everyone,{STAFF}\nmember: CN=Gil Head,{STAFF}\n\n"
    );
    ad(&samba, &ldif);
    // Asked for a range, the domain controller gives at most 1,500 values of member in one
    // read, as a Windows one always does: the job follows the ranges to the end.
    let (code, out, err) = samba.ldapsearch(&[
        "-b",
        &format!("CN=Everyone,{STAFF}"),
        "-s",
        "base",
        "(objectClass=*)",
        "member;range=0-1499",
    ]);
    assert!(
        out.contains("member;range=0-1499:"),
        "{code} {err} {}",
        &out[..out.len().min(300)]
    );

    let (code, out) = sync(&job, &["--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("users: 2001 created"), "{out}");
    assert_eq!(members(&server, "Everyone").len(), 2000);
    // Flattened: the users of Everyone and gil.
    let outer = members(&server, "Outer");
    assert_eq!(outer.len(), 2001);
    assert!(outer.contains(&"uid=gil,ou=users,dc=example,dc=com".to_string()));
    // Users created without a password upstream are disabled there and here.
    assert_eq!(
        first(
            &user(&server, "u0007").expect("u0007"),
            "rosteraccountdisabled"
        ),
        "TRUE"
    );

    // One member leaves Everyone: the next run removes it from both groups.
    ad(
        &samba,
        &format!("dn: CN=Everyone,{STAFF}\nchangetype: modify\ndelete: member\nmember: CN=u1999,{STAFF}\n-\n\n"),
    );
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("incremental run"), "{out}");
    assert_eq!(members(&server, "Everyone").len(), 1999);
    assert_eq!(members(&server, "Outer").len(), 2000);

    // The upstream goes away in the middle of a full read (a relay cuts the connection after
    // 200 kB of answers): the run fails, changes nothing, and keeps its mark.
    ad(
        &samba,
        &ad_user("Hal Moss", "hal", "hal@example.com", &[], false),
    );
    let cutter =
        roster_tests::cutter::Cutter::start("127.0.0.1:636".parse().expect("addr"), 200_000);
    let cut_job = dir.path().join("cut-sync.toml");
    std::fs::write(
        &cut_job,
        std::fs::read_to_string(&job)
            .expect("job")
            .replace(LDAPS_URL, &format!("ldaps://{}", cutter.addr)),
    )
    .expect("job");
    let before = entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*", "+"]);
    let (code, out) = sync(&cut_job, &["--full"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(": search {STAFF} for ")),
        "cut while reading: {out}"
    );
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(
        entries(&server, "dc=example,dc=com", "(objectClass=*)", &["*", "+"]),
        before
    );
    drop(cutter);
    let (code, out) = sync(&job, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("create user hal"), "{out}");
}

/// An eDirectory-style user: the binary GUID, loginDisabled.
fn edir_user(uid: &str, cn: &str, guid: u8, disabled: bool) -> String {
    use base64::Engine;
    let (_, sn) = cn.split_once(' ').unwrap_or((cn, cn));
    format!(
        "dn: uid={uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: rosterTestEdirectoryEntry\n\
         uid: {uid}\ncn: {cn}\nsn: {sn}\nmail: {uid}@example.com\nuserPassword: Pw-{uid}-1\nGUID:: {}\nloginDisabled: {}\n\n",
        base64::engine::general_purpose::STANDARD.encode([guid; 16]),
        if disabled { "TRUE" } else { "FALSE" }
    )
}

#[test]
fn an_edirectory_tree_is_mapped_by_guid_and_deletions_are_found_by_full_runs() {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/edirectory.schema");
    let mut ldif = String::from(
        "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: corp\ndc: example\n\n\
         dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n",
    );
    ldif += &edir_user("kim", "Kim Lee", 1, false);
    ldif += &edir_user("lou", "Lou Reed", 2, true);
    ldif += &edir_user("max", "Max Ernst", 3, false);
    // A user without mail is outside the job's filter.
    ldif += "dn: uid=ned,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ned\ncn: Ned\nsn: Ned\n\n";
    ldif += &format!(
        "dn: cn=Ops,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\nobjectClass: rosterTestEdirectoryEntry\n\
         cn: Ops\nmail: ops@example.com\nGUID:: {}\nmember: uid=kim,ou=people,dc=example,dc=com\nmember: uid=lou,ou=people,dc=example,dc=com\n\n",
        {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode([9u8; 16])
        }
    );
    // refint: member values follow renames, as in eDirectory.
    let upstream = roster_tests::Slapd::start_tls(&ldif, &[&schema], roster_tests::GROUP_OVERLAYS);
    // Passwords are checked with the upstream over StartTLS.
    let (server, _shared) = start_directory(&format!(
        "[[upstream]]\nname = \"edir\"\nurl = \"{}\"\nca = \"{}\"\nwriters = [\"{ADAM}\"]\n",
        upstream.url(),
        upstream.ca().display()
    ));
    let bind = |uid: &str, pw: &str| {
        let mut conn = ldap3::LdapConn::new(&server.url()).expect("connect");
        conn.simple_bind(&format!("uid={uid},ou=users,dc=example,dc=com"), pw)
            .expect("bind")
            .rc
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let pw = write_file(dir.path(), "edir.pw", ROOT_PW);
    let job = write_file(
        dir.path(),
        "edir-sync.toml",
        &crate::mail::fenced(GUIDE, "edir-sync.toml")
            .replace("ldap://edir.example.com:389", &upstream.url())
            .replace(
                "/etc/roster/edir-ca.pem",
                &upstream.ca().display().to_string(),
            )
            .replace("/etc/roster/edir.pw", &pw.display().to_string())
            .replace("cn=roster-sync,ou=services,o=corp", roster_tests::ROOT_DN)
            .replace(",o=corp", ",dc=example,dc=com"),
    );
    let run = |args: &[&str]| {
        // As a domain administrator of example.com, not the root DN.
        let (ok, out) = crate::import::roster_as(
            &server,
            ADAM,
            ADAM_PW,
            &[&["sync", "--config", job.to_str().expect("path")], args].concat(),
        );
        (ok, out)
    };
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("sync edir: full run"), "{out}");
    assert!(out.contains("users: 3 created"), "{out}");
    assert!(out.contains("groups: 1 created"), "{out}");
    let kim = user(&server, "kim").expect("kim");
    assert_eq!(
        first(&kim, "rosterupstreamid"),
        "01010101-0101-0101-0101-010101010101"
    );
    assert_eq!(
        first(&kim, "rosterupstreamdn"),
        "uid=kim,ou=people,dc=example,dc=com"
    );
    assert_eq!(
        first(&user(&server, "lou").expect("lou"), "rosteraccountdisabled"),
        "TRUE"
    );
    assert!(user(&server, "ned").is_none());
    assert_eq!(bind("kim", "Pw-kim-1"), 0);
    assert_eq!(bind("kim", "Pw-lou-1"), 49);
    assert_eq!(
        bind("lou", "Pw-lou-1"),
        49,
        "disabled here: not even asked upstream"
    );
    assert_eq!(
        members(&server, "Ops"),
        vec![
            "uid=kim,ou=users,dc=example,dc=com",
            "uid=lou,ou=users,dc=example,dc=com"
        ]
    );

    // A rename (the GUID stays), an account enabled, a deletion.
    let change = |ldif: &str| {
        let (code, _, err) =
            roster_tests::ldapmodify(&upstream.url(), roster_tests::ROOT_DN, ROOT_PW, ldif);
        assert_eq!(code, 0, "{err}");
    };
    change(
        "dn: uid=kim,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=kimberly\ndeleteoldrdn: 1\n\n\
         dn: uid=lou,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: loginDisabled\nloginDisabled: FALSE\n-\n\n\
         dn: uid=max,ou=people,dc=example,dc=com\nchangetype: delete\n\n",
    );
    // slapd's refint rewrites the group after it has answered the rename.
    let mut tries = 0;
    while !roster_tests::run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &upstream.url(),
            "-D",
            roster_tests::ROOT_DN,
            "-w",
            ROOT_PW,
            "-b",
            "cn=Ops,ou=groups,dc=example,dc=com",
            "member",
        ],
    )
    .1
    .contains("uid=kimberly")
    {
        tries += 1;
        assert!(tries < 100, "the upstream group never followed the rename");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("sync edir: incremental run"), "{out}");
    assert!(
        out.contains("rename user kimberly (kim -> kimberly"),
        "{out}"
    );
    assert!(out.contains("update user lou (enabled)"), "{out}");
    assert_eq!(bind("lou", "Pw-lou-1"), 0);
    assert_eq!(
        bind("kimberly", "Pw-kim-1"),
        0,
        "the upstream DN followed the rename"
    );
    assert_eq!(
        first(
            &user(&server, "kimberly").expect("kimberly"),
            "rosterupstreamid"
        ),
        "01010101-0101-0101-0101-010101010101"
    );
    assert_eq!(
        members(&server, "Ops"),
        vec![
            "uid=kimberly,ou=users,dc=example,dc=com",
            "uid=lou,ou=users,dc=example,dc=com"
        ]
    );
    // No tombstones: an incremental run cannot see the deletion; a full run does, and this
    // job keeps the user, disabled.
    assert_eq!(
        first(&user(&server, "max").expect("max"), "rosteraccountdisabled"),
        ""
    );
    let (ok, out) = run(&["--full", "--max-deletes", "1"]);
    assert!(ok, "{out}");
    assert!(out.contains("sync edir: full run"), "{out}");
    assert!(out.contains("disable user max (gone upstream)"), "{out}");
    assert_eq!(
        first(&user(&server, "max").expect("max"), "rosteraccountdisabled"),
        "TRUE"
    );
    // Disabled because it is gone: later runs leave it alone.
    let (ok, out) = run(&["--full"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 disabled, 0 deleted, 3 unchanged"), "{out}");

    // On a schedule: a user added upstream appears here without anyone running the job.
    let mut every = std::process::Command::new(workspace_bin("roster"))
        .args(["--url", &server.url(), "--ca"])
        .arg(server.generated_ca())
        .args([
            "sync",
            "--config",
            job.to_str().expect("path"),
            "--every",
            "1s",
        ])
        .env("ROSTER_BIND_DN", ADAM)
        .env("ROSTER_PASSWORD", ADAM_PW)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run roster sync --every");
    // Two users one after the other: the second is mapped by a later run than the first.
    let mut seen = Vec::new();
    for (uid, guid) in [("oda", 4u8), ("pia", 5)] {
        change(&edir_user(uid, "Oda Nobu", guid, false).replacen(
            "\nobjectClass:",
            "\nchangetype: add\nobjectClass:",
            1,
        ));
        for _ in 0..100 {
            if user(&server, uid).is_some() {
                seen.push(uid);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let still_running = every.try_wait().expect("wait").is_none();
    let _ = every.kill();
    let _ = every.wait();
    assert_eq!(seen, ["oda", "pia"], "the scheduled job did not map them");
    assert!(still_running, "roster sync --every ended by itself");
}
