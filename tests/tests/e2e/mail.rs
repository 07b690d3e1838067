//! The mail model served to real mail servers: Postfix's LDAP tables (`postmap -q`) and
//! Dovecot's LDAP passdb and userdb (`doveadm`, IMAP and POP3 logins), configured with the
//! files of `docs/mail-servers.md` as printed there; and the model's rules, which ldapadd and
//! ldapmodify try to break.

use roster_tests::{free_port, run_tool, wait_for_port, write_file, Rosterd, ROOT_DN, ROOT_PW};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const GUIDE: &str = include_str!("../../../docs/mail-servers.md");

/// The file of a guide whose fence says `file=<name>`, as printed.
pub(crate) fn fenced(guide: &str, name: &str) -> String {
    let mut lines = guide.lines();
    let marker = format!("file={name}");
    while let Some(line) = lines.next() {
        if line.starts_with("```") && line.split_whitespace().any(|w| w == marker) {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            return body.join("\n") + "\n";
        }
    }
    panic!("the guide has no file={name}");
}

/// The file of `docs/mail-servers.md` whose fence says `file=<name>`.
fn guide_file(name: &str) -> String {
    fenced(GUIDE, name)
}

/// More of the example domain: users with forwarding, a disabled one, one without IMAP, a
/// catch-all, a contact, and groups of every kind.
const MORE: &str = "
dn: uid=bob,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: bob
cn: Bob
sn: Bob
mail: bob@example.com
rosterForwardingAddress: bob@elsewhere.net
rosterMailboxEnabled: TRUE
rosterService: imap
rosterService: imapsecured
userPassword: Bob-pw-22

dn: uid=carol,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: carol
cn: Carol
sn: Carol
mail: carol@example.com
rosterForwardingAddress: carol@elsewhere.net
rosterForwardingAddress: carol@example.com
rosterMailboxEnabled: TRUE

dn: uid=dave,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: dave
cn: Dave
sn: Dave
mail: dave@example.com
rosterMailboxEnabled: TRUE
rosterService: imap
rosterService: imapsecured
rosterService: pop3
rosterService: pop3secured
rosterAccountDisabled: TRUE
userPassword: Dave-pw-33

dn: uid=erin,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: erin
cn: Erin
sn: Erin
mail: erin@example.com
rosterMailboxEnabled: TRUE
rosterService: pop3
rosterService: pop3secured
userPassword: Erin-pw-44

dn: uid=frank,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: frank
cn: Frank
sn: Frank
mail: frank@example.com
mailLocalAddress: info@example.com
rosterMailboxEnabled: TRUE

dn: uid=postmaster,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: postmaster
cn: Postmaster
sn: Postmaster
mail: postmaster@example.com
mailLocalAddress: @example.com
rosterMailboxEnabled: TRUE

dn: cn=Zed,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterContact
cn: Zed
sn: Zed
mail: zed@partner.net

dn: cn=team,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: team
mailLocalAddress: team@example.com
rosterGroupKind: external
member: uid=alice,ou=users,dc=example,dc=com
member: cn=Zed,ou=contacts,dc=example,dc=com

dn: cn=all,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: all
mailLocalAddress: all@example.com
rosterGroupKind: internal
member: cn=team,ou=groups,dc=example,dc=com
member: uid=bob,ou=users,dc=example,dc=com

dn: cn=empty,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: empty
mailLocalAddress: empty@example.com

dn: cn=info,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: info
mailLocalAddress: info@example.com
member: uid=alice,ou=users,dc=example,dc=com

dn: cn=staff,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: staff
rosterGroupKind: security
member: uid=alice,ou=users,dc=example,dc=com

dn: cn=auditors,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: auditors
rosterGroupKind: security
rosterGroupRight: read
member: uid=erin,ou=users,dc=example,dc=com

dn: uid=adam,ou=users,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: rosterMailUser
uid: adam
cn: Adam
sn: Adam
mail: adam@example.com
rosterRole: admin
userPassword: Adam-pw-55

dn: cn=roster-admins,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: rosterGroup
cn: roster-admins
rosterGroupKind: security
member: uid=adam,ou=users,dc=example,dc=com
";

/// A directory for the mail servers' files that their unprivileged processes can read
/// (temporary directories are private to their owner).
pub(crate) struct Shared {
    dir: tempfile::TempDir,
    /// The port of rosterd's Postfix policy service.
    policy: u16,
}

impl Shared {
    fn new(policy: u16) -> Shared {
        let dir = tempfile::tempdir().expect("temp dir");
        set_mode(dir.path(), 0o755);
        Shared { dir, policy }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The guide's file with the test's server, CA and directories in place of the guide's.
fn localized(name: &str, server: &Rosterd, shared: &Shared) -> String {
    let s = shared.path().display().to_string();
    guide_file(name)
        .replace("ldap://127.0.0.1:3389", &server.url())
        .replace("127.0.0.1:10040", &format!("127.0.0.1:{}", shared.policy))
        .replace("/etc/roster/ca.pem", &format!("{s}/ca.pem"))
        .replace("/etc/postfix/roster/", &format!("{s}/postfix/"))
        .replace("/etc/dovecot/", &format!("{s}/dovecot/"))
        .replace("/var/vmail", &format!("{s}/vmail"))
}

/// The guide's example directory and the tests' additions, as LDIF.
pub(crate) fn directory_ldif() -> String {
    guide_file("example.ldif") + MORE
}

pub(crate) fn start_directory(extra_toml: &str) -> (Rosterd, Shared) {
    let ldif = directory_ldif();
    let policy = free_port();
    let config = guide_file("rosterd-mail.toml")
        .replace("127.0.0.1:10040", &format!("127.0.0.1:{policy}"))
        + extra_toml;
    let server = Rosterd::start(Some(&ldif), &config);
    let shared = Shared::new(policy);
    let ca = shared.path().join("ca.pem");
    std::fs::copy(server.generated_ca(), &ca).expect("copy CA");
    set_mode(&ca, 0o644);
    (server, shared)
}

/// `postmap -q key table`: the values in sorted order, or None when not found.
fn postmap(key: &str, table: &Path) -> Option<Vec<String>> {
    let out = Command::new("postmap")
        .arg("-q")
        .arg(key)
        .arg(format!("ldap:{}", table.display()))
        .output()
        .expect("run postmap (install postfix-ldap: scripts/install-test-deps.sh)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning") && !stderr.contains("fatal"),
        "postmap {key}: {stderr}"
    );
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut v: Vec<String> = text.trim().split(',').map(str::to_string).collect();
            v.sort();
            Some(v)
        }
        Some(1) => None,
        other => panic!("postmap {key}: exit {other:?}: {stderr}"),
    }
}

fn some(values: &[&str]) -> Option<Vec<String>> {
    let mut v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    v.sort();
    Some(v)
}

#[test]
fn postfix_tables_resolve_users_aliases_groups_and_senders() {
    let (server, shared) = start_directory("");
    let dir = shared.path().join("postfix");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let table = |name: &str| write_file(&dir, name, &localized(name, &server, &shared));
    let domains = table("domains.cf");
    let mailboxes = table("mailboxes.cf");
    let aliases = table("aliases.cf");
    let empty = table("empty-groups.cf");
    let senders = table("senders.cf");

    assert_eq!(postmap("example.com", &domains), some(&["example.com"]));
    assert_eq!(postmap("example.org", &domains), None);

    assert_eq!(
        postmap("alice@example.com", &mailboxes),
        some(&["example.com/alice/"])
    );
    assert_eq!(
        postmap("ali@example.com", &mailboxes),
        None,
        "aliases are not mailboxes"
    );
    assert_eq!(postmap("dave@example.com", &mailboxes), None, "disabled");
    assert_eq!(
        postmap("zed@partner.net", &mailboxes),
        None,
        "contacts have no mailbox"
    );

    // A user: its primary address (rosterd added it to mailLocalAddress) and its alias.
    assert_eq!(
        postmap("alice@example.com", &aliases),
        some(&["alice@example.com"])
    );
    assert_eq!(
        postmap("ALI@example.com", &aliases),
        some(&["alice@example.com"])
    );
    // Forwarding, without and with a copy.
    assert_eq!(
        postmap("bob@example.com", &aliases),
        some(&["bob@elsewhere.net"])
    );
    assert_eq!(
        postmap("carol@example.com", &aliases),
        some(&["carol@elsewhere.net", "carol@example.com"])
    );
    // A disabled user is not found.
    assert_eq!(postmap("dave@example.com", &aliases), None);
    // A group with a contact, and a group holding it (nested) and a forwarding user.
    assert_eq!(
        postmap("team@example.com", &aliases),
        some(&["alice@example.com", "zed@partner.net"])
    );
    assert_eq!(
        postmap("all@example.com", &aliases),
        some(&["alice@example.com", "bob@elsewhere.net", "zed@partner.net"])
    );
    // An address shared by a user and a group goes to both.
    assert_eq!(
        postmap("info@example.com", &aliases),
        some(&["alice@example.com", "frank@example.com"])
    );
    // The catch-all, asked for only once the full address found nothing.
    assert_eq!(postmap("nobody@example.com", &aliases), None);
    assert_eq!(
        postmap("@example.com", &aliases),
        some(&["postmaster@example.com"])
    );
    // An empty group: nothing in the alias table, a discard address in the second one.
    assert_eq!(postmap("empty@example.com", &aliases), None);
    let sink = postmap("empty@example.com", &empty).expect("empty group found");
    assert!(
        sink.len() == 1 && sink[0].ends_with("@empty-group.invalid"),
        "{sink:?}"
    );
    assert_eq!(
        postmap("team@example.com", &empty),
        None,
        "a group with members"
    );

    // Senders: a user as itself and its aliases; group members as the group; no catch-all.
    assert_eq!(
        postmap("ali@example.com", &senders),
        some(&["alice@example.com"])
    );
    assert_eq!(
        postmap("team@example.com", &senders),
        some(&["alice@example.com", "zed@partner.net"])
    );
    assert_eq!(postmap("@example.com", &senders), None);
    assert_eq!(postmap("dave@example.com", &senders), None);

    // A member that is disabled later: its own address is gone from the tables at once.
    let (code, _, err) = ldapmodify(
        &server,
        ROOT_DN,
        ROOT_PW,
        "dn: uid=alice,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: rosterAccountDisabled\nrosterAccountDisabled: TRUE\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(postmap("alice@example.com", &aliases), None);
    assert_eq!(postmap("alice@example.com", &mailboxes), None);
}

/// A Dovecot instance of the test's own, on loopback ports, stopped when dropped.
struct Dovecot {
    config: PathBuf,
    imap: SocketAddr,
    pop3: SocketAddr,
}

impl Dovecot {
    /// With `postfix_queue`, Dovecot's auth service listens there for Postfix (the guide's
    /// 10-master.conf).
    fn start(server: &Rosterd, shared_dir: &Shared, postfix_queue: Option<&Path>) -> Dovecot {
        let shared = shared_dir.path();
        let dir = shared.join("dovecot");
        std::fs::create_dir_all(dir.join("run")).expect("mkdir");
        std::fs::create_dir_all(shared.join("vmail")).expect("mkdir");
        let vmail = Command::new("chown")
            .arg("vmail:vmail")
            .arg(shared.join("vmail"))
            .status()
            .expect("chown (the vmail user: scripts/install-test-deps.sh)");
        assert!(vmail.success(), "chown vmail");
        write_file(
            &dir,
            "roster-ldap.conf.ext",
            &localized("roster-ldap.conf.ext", server, shared_dir),
        );
        write_file(
            &dir,
            "10-auth.conf",
            &localized("10-auth.conf", server, shared_dir),
        );
        write_file(
            &dir,
            "10-mail.conf",
            &localized("10-mail.conf", server, shared_dir),
        );
        let (imap, pop3) = (free_port(), free_port());
        let d = dir.display();
        let main = format!(
            "protocols = imap pop3\nlisten = 127.0.0.1\nbase_dir = {d}/run\nlog_path = {d}/dovecot.log\n\
             ssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\nauth_failure_delay = 0\n\
             first_valid_uid = 100\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {pop3}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
             !include {d}/10-mail.conf\n!include {d}/10-auth.conf\n"
        );
        let main = match postfix_queue {
            Some(q) => {
                let master = localized("10-master.conf", server, shared_dir)
                    .replace("/var/spool/postfix", &q.display().to_string());
                write_file(&dir, "10-master.conf", &master);
                format!("{main}!include {d}/10-master.conf\n")
            }
            None => main,
        };
        let config = write_file(&dir, "dovecot.conf", &main);
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&config)
            .status()
            .expect("run dovecot (scripts/install-test-deps.sh installs it)");
        assert!(status.success(), "dovecot did not start");
        let imap: SocketAddr = format!("127.0.0.1:{imap}").parse().expect("addr");
        let pop3: SocketAddr = format!("127.0.0.1:{pop3}").parse().expect("addr");
        assert!(wait_for_port(imap, Duration::from_secs(20)), "dovecot imap");
        assert!(wait_for_port(pop3, Duration::from_secs(20)), "dovecot pop3");
        Dovecot { config, imap, pop3 }
    }

    fn doveadm(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run doveadm");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn auth(&self, service: &str, user: &str, password: &str) -> bool {
        let (ok, text) = self.doveadm(&[
            "auth",
            "test",
            "-x",
            &format!("service={service}"),
            user,
            password,
        ]);
        assert_eq!(ok, text.contains("auth succeeded"), "{text}");
        ok
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .status();
    }
}

/// Sends `lines` after the greeting and returns the reply to the last one.
fn converse(addr: SocketAddr, lines: &[&str], done: impl Fn(&str) -> bool) -> String {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut w = stream;
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    let mut last = String::new();
    for l in lines {
        w.write_all(format!("{l}\r\n").as_bytes()).expect("send");
        loop {
            line.clear();
            if reader.read_line(&mut line).expect("reply") == 0 {
                return last;
            }
            if done(&line) {
                last = line.trim_end().to_string();
                break;
            }
        }
    }
    last
}

fn imap_login(d: &Dovecot, user: &str, password: &str) -> String {
    converse(d.imap, &[&format!("a LOGIN {user} {password}")], |l| {
        l.starts_with("a ")
    })
}

fn pop3_login(d: &Dovecot, user: &str, password: &str) -> String {
    converse(
        d.pop3,
        &[&format!("USER {user}"), &format!("PASS {password}")],
        |l| l.starts_with('+') || l.starts_with('-'),
    )
}

#[test]
fn dovecot_authenticates_per_service_and_refuses_disabled_users_and_contacts() {
    let (server, shared) = start_directory("");
    let d = Dovecot::start(&server, &shared, None);

    assert!(d.auth("imap", "alice@example.com", "Alice-pw-1"));
    assert!(d.auth("pop3", "alice@example.com", "Alice-pw-1"));
    assert!(!d.auth("imap", "alice@example.com", "wrong-password"));
    // Per protocol: erin has POP3 and not IMAP, bob the reverse.
    assert!(!d.auth("imap", "erin@example.com", "Erin-pw-44"));
    assert!(d.auth("pop3", "erin@example.com", "Erin-pw-44"));
    assert!(d.auth("imap", "bob@example.com", "Bob-pw-22"));
    assert!(!d.auth("pop3", "bob@example.com", "Bob-pw-22"));
    // Disabled: refused with the right password; a contact never logs in.
    assert!(!d.auth("imap", "dave@example.com", "Dave-pw-33"));
    assert!(!d.auth("imap", "zed@partner.net", ""));

    let (ok, text) = d.doveadm(&["user", "alice@example.com"]);
    assert!(ok, "{text}");
    let home = format!("{}/vmail/example.com/alice", shared.path().display());
    assert!(text.contains(&home), "{text}");
    assert!(text.contains("quota_rule\t*:bytes=1073741824"), "{text}");
    let (ok, text) = d.doveadm(&["user", "dave@example.com"]);
    assert!(!ok, "a disabled user has no userdb entry: {text}");

    // The real listeners.
    let r = imap_login(&d, "alice@example.com", "Alice-pw-1");
    assert!(r.starts_with("a OK"), "{r}");
    let r = imap_login(&d, "erin@example.com", "Erin-pw-44");
    assert!(r.starts_with("a NO"), "{r}");
    let r = pop3_login(&d, "erin@example.com", "Erin-pw-44");
    assert!(r.starts_with("+OK"), "{r}");
    let r = pop3_login(&d, "bob@example.com", "Bob-pw-22");
    assert!(r.starts_with("-ERR"), "{r}");
    let r = imap_login(&d, "dave@example.com", "Dave-pw-33");
    assert!(r.starts_with("a NO"), "{r}");
}

fn ldapmodify(server: &Rosterd, dn: &str, pw: &str, ldif: &str) -> (i32, String, String) {
    roster_tests::ldapmodify(&server.url(), dn, pw, ldif)
}

/// Every entry with its operational attributes (times, modifiersName), as the root DN sees it.
fn whole_tree(server: &Rosterd) -> String {
    let url = server.url();
    let (code, out, err) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-b",
            "dc=example,dc=com",
            "(objectClass=*)",
            "*",
            "+",
        ],
    );
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn model_rules_refuse_what_breaks_them_and_change_nothing() {
    let admins = "[access]\nglobal_admins = \"cn=roster-admins,ou=groups,dc=example,dc=com\"\n";
    // The guide's [access] section and this test's key in one section.
    let extra = admins.replace("[access]\n", "");
    let (server, _shared) = start_directory(&extra);
    let before = whole_tree(&server);
    let user = |uid: &str, mail: &str, more: &str| {
        format!(
            "dn: uid={uid},ou=users,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\n{more}"
        )
    };
    let cases: Vec<(String, i32, &str)> = vec![
        (user("j doe", "jdoe@example.com", ""), 19, "no spaces"),
        (user("jdoe", "jdoe@other.org", ""), 19, "other.org is not a domain"),
        (user("jdoe", "jdoe@example.com", "mailLocalAddress: ALI@example.com\n"), 19, "already used by uid=alice"),
        (user("jdoe", "bob@example.com", ""), 19, "already used by uid=bob"),
        (user("jdoe", "jdoe@example.com", "mail: j2@example.com\n"), 19, "one primary address"),
        (user("jdoe", "jdoe@example.com", "rosterRole: contact\n"), 19, "rosterContact"),
        (user("jdoe", "jdoe@example.com", "rosterService: ftp\n"), 19, "rosterService"),
        (user("jdoe", "jdoe@example.com", "mailLocalAddress: jdoe@@example.com\n"), 19, "jdoe@@example.com"),
        // One catch-all per domain among users.
        (user("jdoe", "jdoe@example.com", "mailLocalAddress: @example.com\n"), 19, "already used by uid=postmaster"),
        (
            "dn: uid=bob,ou=users,dc=example,dc=com\nchangetype: modify\nadd: mailLocalAddress\nmailLocalAddress: alice@example.com\n".into(),
            19,
            "already used by uid=alice",
        ),
        (
            "dn: cn=team2,ou=groups,dc=example,dc=com\nchangetype: add\nobjectClass: groupOfNames\nobjectClass: rosterGroup\ncn: team2\nmailLocalAddress: team@example.com\n".into(),
            19,
            "group address team@example.com",
        ),
        (
            "dn: cn=sec2,ou=groups,dc=example,dc=com\nchangetype: add\nobjectClass: groupOfNames\nobjectClass: rosterGroup\ncn: sec2\nrosterGroupKind: security\nmailLocalAddress: sec2@example.com\n".into(),
            19,
            "security group",
        ),
        (
            "dn: cn=odd,ou=groups,dc=example,dc=com\nchangetype: add\nobjectClass: groupOfNames\nobjectClass: rosterGroup\ncn: odd\nrosterGroupKind: secret\n".into(),
            19,
            "internal, external, security",
        ),
        (
            "dn: cn=Yan,ou=contacts,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterContact\ncn: Yan\nsn: Yan\nmail: yan@partner.net\nuserPassword: Yan-pw-66\n".into(),
            19,
            "contact never binds",
        ),
        (
            "dn: cn=roster-admins,ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\nmember: uid=adam,ou=users,dc=example,dc=com\n".into(),
            53,
            "last global admin",
        ),
        (
            "dn: uid=adam,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: rosterAccountDisabled\nrosterAccountDisabled: TRUE\n".into(),
            53,
            "last global admin",
        ),
        (
            "dn: uid=adam,ou=users,dc=example,dc=com\nchangetype: delete\n".into(),
            53,
            "last global admin",
        ),
    ];
    for (ldif, want, message) in &cases {
        let (code, out, err) = ldapmodify(&server, ROOT_DN, ROOT_PW, ldif);
        assert_eq!(code, *want, "{ldif}\n{out}{err}");
        assert!(
            err.contains(message),
            "{ldif}\nwanted {message:?} in: {err}"
        );
    }
    // Password Modify gives a contact no password either.
    let url = server.url();
    let (code, out, err) = run_tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-s",
            "Zed-pw-88",
            "cn=Zed,ou=contacts,dc=example,dc=com",
        ],
    );
    let err = out + &err;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("contact never binds"), "{err}");
    assert_eq!(
        whole_tree(&server),
        before,
        "a refused write changed the directory"
    );

    // A domain admin cannot make itself a global admin by inheriting one: it joins only the
    // groups it may change, and the last global admin stays.
    let (code, out, err) = ldapmodify(
        &server,
        ROOT_DN,
        ROOT_PW,
        "dn: uid=fred,ou=users,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: fred\ncn: Fred\nsn: Fred\nmail: fred@example.com\nrosterRole: admin\nuserPassword: Fred-pw-99\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let fred = "uid=fred,ou=users,dc=example,dc=com";
    // A domain admin names no domains: that decides where addresses may be.
    let (code, _, err) = ldapmodify(
        &server,
        fred,
        "Fred-pw-99",
        "dn: dc=example,dc=com\nchangetype: modify\nadd: associatedDomain\nassociatedDomain: gmail.com\n",
    );
    assert_eq!(code, 50, "{err}");
    assert!(err.contains("only a global admin"), "{err}");
    let (code, _, err) = run_tool(
        "ldapdelete",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            fred,
            "-w",
            "Fred-pw-99",
            "-e",
            &transfer(fred),
            "uid=adam,ou=users,dc=example,dc=com",
        ],
    );
    assert_eq!(code, 53, "{err}");
    assert!(err.contains("last global admin"), "{err}");
    // A plain user learns nothing about entries through the control.
    let (code, _, err) = run_tool(
        "ldapdelete",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            "uid=bob,ou=users,dc=example,dc=com",
            "-w",
            "Bob-pw-22",
            "-e",
            &transfer(fred),
            "cn=all,ou=groups,dc=example,dc=com",
        ],
    );
    // The same answer as without the control: it cannot see the group.
    assert_eq!(code, 32, "{err}");
    assert!(
        !err.contains("not one") && !err.contains("inherit"),
        "{err}"
    );

    // What the rules allow: a group sharing a user's address, a catch-all group elsewhere
    // refused only when another group has it, and the address of a user who let it go.
    let ok = [
        // Contacts' external addresses are outside the rules: two contacts may share one.
        "dn: cn=Zed Again,ou=contacts,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterContact\ncn: Zed Again\nsn: Zed\nmail: zed@partner.net\n",
        "dn: cn=bobs,ou=groups,dc=example,dc=com\nchangetype: add\nobjectClass: groupOfNames\nobjectClass: rosterGroup\ncn: bobs\nmailLocalAddress: bob@example.com\n",
        "dn: uid=frank,ou=users,dc=example,dc=com\nchangetype: modify\ndelete: mailLocalAddress\nmailLocalAddress: info@example.com\n",
        "dn: uid=alice,ou=users,dc=example,dc=com\nchangetype: modify\nadd: mailLocalAddress\nmailLocalAddress: info@example.com\n",
        // A new primary address replaces the old one among the delivering addresses.
        "dn: uid=carol,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: caroline@example.com\n",
    ];
    for ldif in ok {
        let (code, out, err) = ldapmodify(&server, ROOT_DN, ROOT_PW, ldif);
        assert_eq!(code, 0, "{ldif}\n{out}{err}");
    }
    let carol = roster_tests::root_search(
        &server.url(),
        "uid=carol,ou=users,dc=example,dc=com",
        &["mailLocalAddress"],
    );
    assert!(
        carol.contains("mailLocalAddress: caroline@example.com")
            && !carol.contains("mailLocalAddress: carol@example.com"),
        "{carol}"
    );
    // With a second admin, the first may go.
    let (code, _, err) = ldapmodify(
        &server,
        ROOT_DN,
        ROOT_PW,
        "dn: cn=roster-admins,ou=groups,dc=example,dc=com\nchangetype: modify\nadd: member\nmember: uid=alice,ou=users,dc=example,dc=com\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ldapmodify(
        &server,
        ROOT_DN,
        ROOT_PW,
        "dn: uid=adam,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: rosterAccountDisabled\nrosterAccountDisabled: TRUE\n",
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn roles_and_group_rights_give_rights_in_their_domain() {
    let (server, _shared) = start_directory("");
    let adam = "uid=adam,ou=users,dc=example,dc=com";
    let erin = "uid=erin,ou=users,dc=example,dc=com";
    let change = "dn: uid=bob,ou=users,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: moved to sales\n";
    // rosterRole admin manages the domain.
    let (code, _, err) = ldapmodify(&server, adam, "Adam-pw-55", change);
    assert_eq!(code, 0, "{err}");
    // rosterGroupRight read (auditors) reads the domain and writes nothing.
    let (code, _, _) = ldapmodify(&server, erin, "Erin-pw-44", change);
    assert_eq!(code, 50, "a reader may not write");
    let url = server.url();
    let (code, out, err) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-D",
            erin,
            "-w",
            "Erin-pw-44",
            "-b",
            "dc=example,dc=com",
            "(uid=bob)",
            "description",
            "userPassword",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("description: moved to sales"), "{out}");
    assert!(!out.contains("userPassword"), "{out}");
    // A plain user reads only itself.
    let bob = "uid=bob,ou=users,dc=example,dc=com";
    let (code, out, _) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-D",
            bob,
            "-w",
            "Bob-pw-22",
            "-b",
            "dc=example,dc=com",
            "(uid=alice)",
            "mail",
        ],
    );
    assert_eq!(code, 0);
    assert!(!out.contains("alice"), "{out}");
}

/// The `-e` argument of OpenLDAP's tools for Roster's transfer control (value in base64).
fn transfer(heir: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(heir.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run base64");
    format!(
        "!2.25.24255257495890672766456308829707613084.3.1={}",
        String::from_utf8_lossy(&out.stdout)
    )
}

fn ldap_tool(tool: &str, server: &Rosterd, args: &[&str]) -> (i32, String) {
    let url = server.url();
    let mut all = vec!["-x", "-H", &url, "-D", ROOT_DN, "-w", ROOT_PW];
    all.extend_from_slice(args);
    let (code, out, err) = run_tool(tool, &all);
    (code, out + &err)
}

#[test]
fn deleting_a_user_hands_its_addresses_and_groups_on_and_renamed_groups_keep_theirs() {
    let (server, shared) = start_directory("");
    let dir = shared.path().join("postfix");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let aliases = write_file(
        &dir,
        "aliases.cf",
        &localized("aliases.cf", &server, &shared),
    );
    let alice = "uid=alice,ou=users,dc=example,dc=com";
    let frank = "uid=frank,ou=users,dc=example,dc=com";

    // Refused transfers name the problem and change nothing.
    let before = whole_tree(&server);
    for (heir, target, message) in [
        (
            "uid=nobody,ou=users,dc=example,dc=com",
            alice,
            "does not exist",
        ),
        (
            "cn=Zed,ou=contacts,dc=example,dc=com",
            alice,
            "is not a user",
        ),
        (alice, alice, "itself"),
        (frank, "cn=team,ou=groups,dc=example,dc=com", "only a user"),
    ] {
        let (code, out) = ldap_tool("ldapdelete", &server, &["-e", &transfer(heir), target]);
        assert_eq!(code, 53, "{out}");
        assert!(out.contains(message), "{message}: {out}");
    }
    assert_eq!(whole_tree(&server), before);

    // alice's addresses and groups go to frank in the same change.
    let (code, out) = ldap_tool("ldapdelete", &server, &["-e", &transfer(frank), alice]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        postmap("alice@example.com", &aliases),
        some(&["frank@example.com"])
    );
    assert_eq!(
        postmap("ali@example.com", &aliases),
        some(&["frank@example.com"])
    );
    assert_eq!(
        postmap("team@example.com", &aliases),
        some(&["frank@example.com", "zed@partner.net"])
    );
    // info@ is frank's address and the group info's, whose member alice was: frank twice
    // (postmap lists both; the queue manager delivers once).
    assert_eq!(
        postmap("info@example.com", &aliases),
        some(&["frank@example.com", "frank@example.com"])
    );
    let (_, staff) = ldap_tool(
        "ldapsearch",
        &server,
        &[
            "-LLL",
            "-b",
            "cn=staff,ou=groups,dc=example,dc=com",
            "-s",
            "base",
            "member",
        ],
    );
    assert!(staff.contains(frank) && !staff.contains(alice), "{staff}");

    // Without the control everything goes: erin's address and its place in auditors.
    let (code, out) = ldap_tool(
        "ldapdelete",
        &server,
        &["uid=erin,ou=users,dc=example,dc=com"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(postmap("erin@example.com", &aliases), None);
    let (_, auditors) = ldap_tool(
        "ldapsearch",
        &server,
        &[
            "-LLL",
            "-b",
            "cn=auditors,ou=groups,dc=example,dc=com",
            "-s",
            "base",
            "member",
        ],
    );
    assert!(!auditors.contains("erin"), "{auditors}");

    // Renaming a group keeps its members, its address and its place in other groups.
    let (code, out) = ldap_tool(
        "ldapmodrdn",
        &server,
        &["-r", "cn=team,ou=groups,dc=example,dc=com", "cn=sales team"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        postmap("team@example.com", &aliases),
        some(&["frank@example.com", "zed@partner.net"])
    );
    assert_eq!(
        postmap("all@example.com", &aliases),
        some(&["bob@elsewhere.net", "frank@example.com", "zed@partner.net"])
    );
}

#[test]
fn a_global_admin_creates_a_domain_at_run_time() {
    let (server, shared) =
        start_directory("global_admins = \"cn=roster-admins,ou=groups,dc=example,dc=com\"\n");
    let adam = "uid=adam,ou=users,dc=example,dc=com";
    let domain = "dn: dc=example,dc=org\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\nobjectClass: domainRelatedObject\ndc: example\no: Example Org\nassociatedDomain: example.org\n\n\
dn: ou=users,dc=example,dc=org\nchangetype: add\nobjectClass: organizationalUnit\nou: users\n\n\
dn: uid=olga,ou=users,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: olga\ncn: Olga\nsn: Olga\nmail: olga@example.org\nrosterMailboxEnabled: TRUE\n";
    // Not a global admin: slapd's answer for a DN no database holds.
    let (code, _, err) = ldapmodify(
        &server,
        "uid=bob,ou=users,dc=example,dc=com",
        "Bob-pw-22",
        domain,
    );
    assert_eq!(code, 53, "{err}");
    assert!(err.contains("no global superior knowledge"), "{err}");
    // A global admin, with entries that cannot start a domain.
    for (ldif, message) in [
        ("dn: ou=loose\nchangetype: add\nobjectClass: organizationalUnit\nou: loose\n", "dcObject or domain"),
        ("dn: dc=com\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\ndc: com\no: Com\n", "do not nest"),
    ] {
        let (code, _, err) = ldapmodify(&server, adam, "Adam-pw-55", ldif);
        assert_eq!(code, 53, "{err}");
        assert!(err.contains(message), "{message}: {err}");
    }
    let (code, out, err) = ldapmodify(&server, adam, "Adam-pw-55", domain);
    assert_eq!(code, 0, "{out}{err}");
    // A domain name one naming context serves is no other's.
    let (code, _, err) = ldapmodify(
        &server,
        adam,
        "Adam-pw-55",
        "dn: dc=example,dc=com\nchangetype: modify\nadd: associatedDomain\nassociatedDomain: example.org\n",
    );
    assert_eq!(code, 19, "{err}");
    assert!(
        err.contains("already a domain of dc=example,dc=org"),
        "{err}"
    );
    // An address outside the new domain is refused there too.
    let (code, _, err) = ldapmodify(
        &server,
        adam,
        "Adam-pw-55",
        "dn: uid=olga,ou=users,dc=example,dc=org\nchangetype: modify\nadd: mailLocalAddress\nmailLocalAddress: olga@example.com\n",
    );
    assert_eq!(code, 19, "{err}");

    let dir = shared.path().join("postfix");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let domains = dir.join("domains.cf");
    let aliases = dir.join("aliases.cf");
    let check = |server: &Rosterd| {
        // The tables follow the server's port, which a restart changes.
        for name in ["domains.cf", "aliases.cf"] {
            write_file(&dir, name, &localized(name, server, &shared));
        }
        let dse = roster_tests::root_search(&server.url(), "", &["namingContexts"]);
        assert!(dse.contains("namingContexts: dc=example,dc=org"), "{dse}");
        assert_eq!(postmap("example.org", &domains), some(&["example.org"]));
        assert_eq!(
            postmap("olga@example.org", &aliases),
            some(&["olga@example.org"])
        );
    };
    check(&server);
    // It is still there after a restart, and its entry's delete ends it.
    let (tmp, config, status) = server.stop();
    assert!(status.success());
    let server = Rosterd::spawn(tmp, config);
    check(&server);
    let (code, out) = ldap_tool("ldapdelete", &server, &["-r", "dc=example,dc=org"]);
    assert_eq!(code, 0, "{out}");
    let dse = roster_tests::root_search(&server.url(), "", &["namingContexts"]);
    assert!(!dse.contains("dc=example,dc=org"), "{dse}");
    assert_eq!(postmap("example.org", &domains), None);
}

/// A Postfix instance of the test's own: the guide's main.cf and tables, smtpd on a loopback
/// port, mail to other domains discarded (and logged), stopped when dropped.
struct Postfix {
    etc: PathBuf,
    queue: PathBuf,
    log: PathBuf,
    smtp: SocketAddr,
}

fn id_of(flag: &str, user: &str) -> String {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "no {user} user (scripts/install-test-deps.sh creates it)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Postfix {
    fn start(server: &Rosterd, shared_dir: &Shared) -> Postfix {
        let shared = shared_dir.path();
        let root = shared.join("postfix-instance");
        let (etc, queue, data) = (root.join("etc"), root.join("spool"), root.join("data"));
        for d in [&etc, &queue, &data] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let tables = shared.join("postfix");
        std::fs::create_dir_all(&tables).expect("mkdir");
        for name in [
            "domains.cf",
            "mailboxes.cf",
            "aliases.cf",
            "empty-groups.cf",
            "senders.cf",
        ] {
            write_file(&tables, name, &localized(name, server, shared_dir));
        }
        let vmail = shared.join("vmail");
        std::fs::create_dir_all(&vmail).expect("mkdir");
        let owner = format!("{}:{}", id_of("-u", "vmail"), id_of("-g", "vmail"));
        assert!(Command::new("chown")
            .arg(&owner)
            .arg(&vmail)
            .status()
            .expect("chown")
            .success());
        assert!(Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .expect("chown")
            .success());
        let log = root.join("maillog");
        let port = free_port();
        let guide = localized("main.cf", server, shared_dir)
            .replace("static:999", &format!("static:{}", id_of("-u", "vmail")))
            .replace("static:995", &format!("static:{}", id_of("-g", "vmail")));
        // The instance's own paths and names; other domains' mail is discarded, not sent
        // out, and the log says so. mynetworks holds no loopback address: the test's client
        // is an outsider unless it authenticates.
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {data}\n\
             mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mx.example.com\n\
             mydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
             mynetworks = 192.0.2.0/24\nmaillog_file_prefixes = {r}\nmaillog_file = {log}\n\
             smtputf8_enable = no\ndefault_transport = discard:sent elsewhere\n{guide}",
            q = queue.display(),
            data = data.display(),
            r = root.display(),
            log = log.display(),
        );
        write_file(&etc, "main.cf", &main);
        std::fs::copy("/etc/postfix/master.cf", etc.join("master.cf")).expect("copy master.cf");
        let postconf = |args: &[&str]| {
            let st = Command::new("postconf")
                .arg("-c")
                .arg(&etc)
                .args(args)
                .status()
                .expect("run postconf");
            assert!(st.success(), "postconf {args:?}");
        };
        postconf(&["-F", "*/*/chroot = n"]);
        postconf(&["-MX", "smtp/inet"]);
        postconf(&[
            "-M",
            &format!("127.0.0.1:{port}/inet=127.0.0.1:{port} inet n - n - - smtpd"),
        ]);
        let out = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .expect("run postfix (scripts/install-test-deps.sh installs it)");
        assert!(
            out.status.success(),
            "postfix start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let smtp: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        assert!(
            wait_for_port(smtp, Duration::from_secs(30)),
            "postfix smtpd"
        );
        Postfix {
            etc,
            queue,
            log,
            smtp,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (30 s at most) for the log to show `needle`.
    fn wait_log(&self, needle: &str) -> bool {
        for _ in 0..300 {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.etc)
            .args(["stop"])
            .output();
    }
}

/// One SMTP transaction with swaks: (exit code, transcript).
fn swaks(
    p: &Postfix,
    from: &str,
    to: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> (i32, String) {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &p.smtp.to_string(), "--from", from, "--to", to])
        .args(["--header", &format!("Subject: {body}"), "--body", body]);
    if let Some((user, pw)) = auth {
        cmd.args([
            "--auth",
            "PLAIN",
            "--auth-user",
            user,
            "--auth-password",
            pw,
        ]);
    }
    let out = cmd
        .output()
        .expect("run swaks (scripts/install-test-deps.sh installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The messages in a user's maildir (new/) whose text holds `needle`, waiting 30 s at most
/// for at least one.
fn delivered(shared: &Path, user: &str, needle: &str) -> usize {
    let dir = shared.join("vmail/example.com").join(user).join("new");
    for _ in 0..300 {
        let n = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(needle)))
                    .count()
            })
            .unwrap_or(0);
        if n > 0 {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    0
}

#[test]
fn postfix_delivers_and_refuses_as_the_guide_says() {
    let (server, shared) = start_directory("");
    let postfix = Postfix::start(&server, &shared);
    let dovecot = Dovecot::start(&server, &shared, Some(&postfix.queue));
    let outsider = "someone@internet.test";

    // An external group takes mail from anyone: its user member gets it in its mailbox, its
    // contact member is sent on.
    let (code, out) = swaks(&postfix, outsider, "team@example.com", None, "to-team-1");
    assert_eq!(code, 0, "{out}");
    assert_eq!(delivered(shared.path(), "alice", "to-team-1"), 1);
    // Dovecot finds it where Postfix put it.
    let r = converse(
        dovecot.imap,
        &["a LOGIN alice@example.com Alice-pw-1", "b SELECT INBOX"],
        |l| l.starts_with("a ") || l.contains(" EXISTS"),
    );
    assert!(r.contains("1 EXISTS"), "{r}");
    assert!(
        postfix.wait_log("to=<zed@partner.net>"),
        "{}",
        postfix.log()
    );

    // An internal group refuses an outsider at RCPT, and takes mail from an authenticated user.
    let (code, out) = swaks(&postfix, outsider, "all@example.com", None, "to-all-1");
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("554 5.7.1 <all@example.com>: Recipient address rejected: only authenticated users of example.com"),
        "{out}"
    );
    // ... with an address extension too.
    let (code, out) = swaks(
        &postfix,
        outsider,
        "all+news@example.com",
        None,
        "to-all-ext",
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("only authenticated users of example.com"),
        "{out}"
    );
    let (code, out) = swaks(
        &postfix,
        "alice@example.com",
        "all@example.com",
        Some(("alice@example.com", "Alice-pw-1")),
        "to-all-2",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(delivered(shared.path(), "alice", "to-all-2"), 1);
    assert!(
        postfix.wait_log("to=<bob@elsewhere.net>"),
        "bob forwards: {}",
        postfix.log()
    );

    // A user of another domain on the same server may not post to it either.
    let (code, out, err) = ldapmodify(
        &server,
        ROOT_DN,
        ROOT_PW,
        "dn: dc=example,dc=org\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\nobjectClass: domainRelatedObject\ndc: example\no: Example Org\nassociatedDomain: example.org\n\n\
dn: ou=users,dc=example,dc=org\nchangetype: add\nobjectClass: organizationalUnit\nou: users\n\n\
dn: uid=olga,ou=users,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: olga\ncn: Olga\nsn: Olga\nmail: olga@example.org\nrosterMailboxEnabled: TRUE\nrosterService: smtp\nrosterService: smtpsecured\nuserPassword: Olga-pw-77\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let olga = Some(("olga@example.org", "Olga-pw-77"));
    let (code, out) = swaks(
        &postfix,
        "olga@example.org",
        "all@example.com",
        olga,
        "from-olga",
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(
            "Recipient address rejected: only users of example.com may send to this group"
        ),
        "{out}"
    );
    // ... while an external group takes her mail.
    let (code, out) = swaks(
        &postfix,
        "olga@example.org",
        "team@example.com",
        olga,
        "olga-team",
    );
    assert_eq!(code, 0, "{out}");

    // An authenticated user sends as a group it is a member of, and not as someone else.
    let alice = Some(("alice@example.com", "Alice-pw-1"));
    let (code, out) = swaks(
        &postfix,
        "team@example.com",
        "frank@example.com",
        alice,
        "as-team",
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = swaks(
        &postfix,
        "bob@example.com",
        "frank@example.com",
        alice,
        "as-bob",
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("Sender address rejected: not owned by user"),
        "{out}"
    );

    // The catch-all takes unknown addresses and spares existing ones; an empty group's mail
    // is accepted and dropped, not bounced.
    let (code, out) = swaks(&postfix, outsider, "nobody@example.com", None, "to-nobody");
    assert_eq!(code, 0, "{out}");
    assert_eq!(delivered(shared.path(), "postmaster", "to-nobody"), 1);
    let (code, out) = swaks(&postfix, outsider, "frank@example.com", None, "to-frank");
    assert_eq!(code, 0, "{out}");
    assert_eq!(delivered(shared.path(), "frank", "to-frank"), 1);
    let (code, out) = swaks(&postfix, outsider, "empty@example.com", None, "to-empty");
    assert_eq!(code, 0, "{out}");
    assert!(
        postfix.wait_log("@empty-group.invalid"),
        "{}",
        postfix.log()
    );
    assert!(
        !postfix.log().contains("status=bounced"),
        "{}",
        postfix.log()
    );
}

#[test]
fn rosterd_load_applies_the_model_with_the_files_own_alias_domains() {
    let domain = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\nobjectClass: domainRelatedObject\ndc: example\no: Example\nassociatedDomain: example.com\nassociatedDomain: example.net\n\n\
dn: ou=users,dc=example,dc=com\nobjectClass: organizationalUnit\nou: users\n\n";
    let user = |uid: &str, alias: &str| {
        format!("dn: uid={uid},ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {uid}@example.com\nmailLocalAddress: {alias}\n\n")
    };
    // An alias in the alias domain that the file's own domain entry names.
    let ok = format!("{domain}{}", user("al", "al@example.net"));
    let server = Rosterd::start(Some(&ok), "");
    let al = roster_tests::root_search(
        &server.url(),
        "uid=al,ou=users,dc=example,dc=com",
        &["mailLocalAddress"],
    );
    assert!(
        al.contains("mailLocalAddress: al@example.net")
            && al.contains("mailLocalAddress: al@example.com"),
        "{al}"
    );
    // Addresses of another domain, and the same address twice, stop the load at their line.
    for (bad, message) in [
        (
            format!("{domain}{}", user("al", "al@other.org")),
            "other.org is not a domain",
        ),
        (
            format!(
                "{domain}{}{}",
                user("al", "x@example.com"),
                user("bo", "x@example.com")
            ),
            "user address x@example.com is already used by uid=al",
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = write_file(
            dir.path(),
            "rosterd.toml",
            &roster_tests::rosterd_config(""),
        );
        let ldif = write_file(dir.path(), "bad.ldif", &bad);
        let out = roster_tests::rosterd_cmd(&config)
            .arg("load")
            .arg(&ldif)
            .output()
            .expect("run rosterd load");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(message) && err.contains("line "),
            "{message}: {err}"
        );
    }
}
