//! rosterd as operators run it: the shipped configuration started from elsewhere with its data
//! somewhere else, password guessing behind a shared proxy address, password hashes kept in,
//! and a load of an LDIF that slapadd took but whose values are invalid.

use roster_tests::{root_search, rosterd_cmd, run_tool, run_tool_env, write_file, Rosterd, Slapd};
use std::path::Path;
use std::process::Command;

fn whoami(url: &str, dn: &str, pw: &str) -> i32 {
    run_tool("ldapwhoami", &["-x", "-H", url, "-D", dn, "-w", pw]).0
}

#[test]
fn the_example_config_keeps_its_data_where_data_dir_says() {
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc");
    let elsewhere = tmp.path().join("work");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // The shipped file, verbatim, started from another working directory with a data
    // directory whose parents do not exist yet.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
    let config = etc.join("config.example.toml");
    std::fs::copy(&shipped, &config).unwrap();
    let data = tmp.path().join("var/lib/roster");
    let mut cmd = rosterd_cmd(&config);
    cmd.current_dir(&elsewhere)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0"]);
    let server = Rosterd::spawn_command(tempfile::tempdir().unwrap(), config.clone(), cmd);
    let url = server.url();
    // A failed bind reaches the audit log in the data directory.
    assert_eq!(whoami(&url, "cn=admin,dc=example,dc=com", "wrong"), 49);
    assert_eq!(whoami(&url, "cn=admin,dc=example,dc=com", "admin"), 0);
    let ca = data.join("tls/ca.pem");
    let (code, out, err) = run_tool_env(
        "ldapwhoami",
        &[
            "-ZZ",
            "-x",
            "-H",
            &url,
            "-D",
            "cn=admin,dc=example,dc=com",
            "-w",
            "admin",
        ],
        &[("LDAPTLS_CACERT", ca.to_str().unwrap())],
    );
    assert_eq!(
        code, 0,
        "StartTLS with the CA generated in the data directory: {out}{err}"
    );
    let audit = std::fs::read_to_string(data.join("audit.log")).unwrap();
    assert!(audit.contains("\"bind_failed\""), "{audit}");
    // Nothing was put beside the config or in the working directory.
    assert!(!etc.join("data").exists());
    assert!(!elsewhere.join("data").exists());
    assert!(data.join("tls/server.pem").exists());
    drop(server);

    // An audit log that cannot be created is named at start, and the server does not run.
    let blocker = write_file(tmp.path(), "not-a-folder", "");
    let text = std::fs::read_to_string(&shipped).unwrap().replace(
        "file = \"audit.log\"",
        &format!("file = \"{}/audit.log\"", blocker.display()),
    );
    let bad = write_file(&etc, "bad.toml", &text);
    let out = rosterd_cmd(&bad)
        .current_dir(&elsewhere)
        .arg("--data-dir")
        .arg(tmp.path().join("other"))
        .args(["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("open the audit log") && err.contains("not-a-folder/audit.log"),
        "{err}"
    );
}

const USERS: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=users,dc=example,dc=com\nobjectClass: organizationalUnit\nou: users\n\n\
dn: uid=anna,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: anna\ncn: Anna\nsn: A\nuserPassword: Pw-anna-1\n\n\
dn: uid=bert,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bert\ncn: Bert\nsn: B\nuserPassword: Pw-bert-2\n\n\
dn: uid=carl,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: carl\ncn: Carl\nsn: C\nuserPassword: Pw-carl-3\n\n";

/// Binds `count` times from `source` (a loopback address of the test's choice) with
/// python3-ldap3; the result codes.
fn binds_from(source: &str, port: u16, dn: &str, pw: &str, count: usize) -> Vec<i32> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/bind_from.py");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([source, &port.to_string(), dn, pw, &count.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
fn a_guesser_behind_a_trusted_proxy_locks_one_account_not_the_domain() {
    let extra = "[security]\nlockout_threshold = 10\nlockout_account_threshold = 30\n\
                 lockout_address_throttle = 2\nlockout_address_threshold = 4\n\
                 trusted_proxies = [\"127.0.0.1\"]\nlockout_secs = 600\n\
                 [audit]\nfile = \"audit.log\"\n";
    let server = Rosterd::start(Some(USERS), extra);
    let url = server.url();
    let port = server.addr.port();
    let anna = "uid=anna,ou=users,dc=example,dc=com";
    let bert = "uid=bert,ou=users,dc=example,dc=com";
    let carl = "uid=carl,ou=users,dc=example,dc=com";

    // 12 wrong passwords for anna through the proxy (127.0.0.1): anna is locked there...
    for _ in 0..12 {
        assert_eq!(whoami(&url, anna, "wrong"), 49);
    }
    assert_eq!(whoami(&url, anna, "Pw-anna-1"), 49, "anna is locked");
    // ...and bert, behind the same address, binds at once.
    assert_eq!(whoami(&url, bert, "Pw-bert-2"), 0);
    let out = root_search(&url, anna, &["pwdAccountLockedTime"]);
    assert!(out.contains("pwdAccountLockedTime: 20"), "{out}");
    // The lock is the account's from that address: from another one anna still binds.
    assert_eq!(binds_from("127.0.0.2", port, anna, "Pw-anna-1", 1), vec![0]);

    // From an address that is no trusted proxy, guesses at any names are spaced out and
    // then refused for the whole address, whoever they name.
    let guesses = binds_from("127.0.0.2", port, carl, "wrong", 5);
    assert_eq!(guesses, vec![49; 5]);
    assert_eq!(
        binds_from("127.0.0.2", port, bert, "Pw-bert-2", 1),
        vec![49]
    );
    assert_eq!(binds_from("127.0.0.3", port, bert, "Pw-bert-2", 1), vec![0]);
    assert_eq!(whoami(&url, bert, "Pw-bert-2"), 0);
    // carl was not guessed often enough to be locked himself.
    assert_eq!(whoami(&url, carl, "Pw-carl-3"), 0);

    let audit = std::fs::read_to_string(server.dir.path().join("data/audit.log")).unwrap();
    let lines: Vec<&str> = audit.lines().collect();
    let has = |parts: &[&str]| lines.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&["\"lockout\"", "uid=anna", "\"address\":\"127.0.0.1\""]),
        "{audit}"
    );
    assert!(has(&["\"bind_throttled\"", "127.0.0.2"]), "{audit}");
    assert!(
        has(&["\"lockout\"", "\"address\":\"127.0.0.2\""]) && !has(&["\"lockout\"", "uid=carl"]),
        "{audit}"
    );
    assert!(
        !has(&["\"bind_throttled\"", "\"peer\":\"127.0.0.1\""]),
        "the trusted proxy is never throttled: {audit}"
    );
}

/// Values slapadd stores without checking their syntax: a mail address with a non-ASCII
/// character (IA5String) and a telephone number with a character outside PrintableString.
const INVALID_VALUES: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
dn: uid=jorg,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: jorg\ncn: Jörg\nsn: J\n\
mail: jorg@example.com\nmail: jörg@example.com\n\n\
dn: uid=kim,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: kim\ncn: Kim\nsn: K\n\
telephoneNumber: call me!\n\n\
dn: uid=lee,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: lee\ncn: Lee\nsn: L\nmail: lee@example.com\n\n";

fn load(config: &Path, ldif: &Path, flags: &[&str]) -> (bool, String, String) {
    let out = rosterd_cmd(config)
        .args(["load", "--quiet"])
        .args(flags)
        .arg(ldif)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_ldif_slapadd_took_loads_with_its_invalid_values_named_and_left_out() {
    // slapadd stores the file as it is.
    let _slapd = Slapd::start(INVALID_VALUES, "");
    let tmp = tempfile::tempdir().unwrap();
    let config = write_file(
        tmp.path(),
        "rosterd.toml",
        &roster_tests::rosterd_config(""),
    );
    let ldif = write_file(tmp.path(), "migrate.ldif", INVALID_VALUES);
    let line_of = |text: &str| {
        INVALID_VALUES
            .lines()
            .position(|l| l == text)
            .map(|i| i + 1)
            .unwrap()
    };
    let (jorg_line, kim_line) = (
        line_of("mail: jörg@example.com"),
        line_of("telephoneNumber: call me!"),
    );

    // A plain load refuses it and stores nothing, pointing at --report.
    let (ok, _, err) = load(&config, &ldif, &[]);
    assert!(!ok);
    assert!(
        err.contains("--report") && err.contains("uid=jorg"),
        "{err}"
    );
    let dump = rosterd_cmd(&config).arg("dump").output().unwrap();
    assert!(!String::from_utf8_lossy(&dump.stdout).contains("dn:"));

    // --report lists every invalid value of the file with its own line, and stores nothing.
    let (ok, out, err) = load(&config, &ldif, &["--report"]);
    assert!(!ok, "problems found: the report fails");
    let want_jorg = format!("line {jorg_line}: entry \"uid=jorg,ou=people,dc=example,dc=com\": mail: value \"jörg@example.com\" is invalid per syntax");
    let want_kim = format!("line {kim_line}: entry \"uid=kim,ou=people,dc=example,dc=com\": telephoneNumber: value \"call me!\" is invalid per syntax");
    assert!(out.contains(&want_jorg), "{out}");
    assert!(out.contains(&want_kim), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        err.contains(
            "checked 5 entries: 2 invalid values in 2 entries, 0 entries that cannot be loaded"
        ),
        "{err}"
    );
    let dump = rosterd_cmd(&config).arg("dump").output().unwrap();
    assert!(!String::from_utf8_lossy(&dump.stdout).contains("dn:"));

    // --skip-invalid-values loads the rest and says what it left out.
    let (ok, _, err) = load(&config, &ldif, &["--skip-invalid-values"]);
    assert!(ok, "{err}");
    assert!(err.contains("loaded 5 entries"), "{err}");
    assert!(
        err.contains("left out 2 invalid values in 2 entries"),
        "{err}"
    );
    assert!(err.contains(&format!("line {jorg_line}:")), "{err}");
    let dump = rosterd_cmd(&config).arg("dump").output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("mail: jorg@example.com"), "{dump}");
    assert!(
        !dump.contains("call me") && !dump.contains("j\u{f6}rg@"),
        "{dump}"
    );
    assert!(
        dump.contains("dn: uid=kim,ou=people,dc=example,dc=com"),
        "{dump}"
    );
    assert!(dump.contains("mail: lee@example.com"), "{dump}");
    assert!(roster_tests::rosterd_cmd(&config)
        .arg("verify")
        .status()
        .unwrap()
        .success());

    // The report also names entries that cannot be loaded at all, each with its line: one
    // that needs the value that is invalid, a DN twice, a missing parent, a missing sn.
    let more = format!(
        "{INVALID_VALUES}dn: uid=max,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         uid: max\ncn: Max\nsn: M\nuidNumber: 10x\ngidNumber: 100\nhomeDirectory: /home/max\n\n\
         dn: uid=lee,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: lee\ncn: Lee\nsn: L\n\n\
         dn: uid=orphan,ou=nowhere,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: orphan\ncn: O\nsn: O\n\n\
         dn: uid=nosn,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: nosn\ncn: N\n\n"
    );
    let fresh = tempfile::tempdir().unwrap();
    let config = write_file(
        fresh.path(),
        "rosterd.toml",
        &roster_tests::rosterd_config(""),
    );
    let ldif = write_file(fresh.path(), "more.ldif", &more);
    let (ok, out, err) = load(&config, &ldif, &["--report"]);
    assert!(!ok);
    let lee_first = line_of("dn: uid=lee,ou=people,dc=example,dc=com");
    assert!(
        out.contains(&format!("the same DN as the entry at line {lee_first}")),
        "{out}"
    );
    assert!(
        out.contains("uid=orphan") && out.contains("parent"),
        "{out}"
    );
    assert!(out.contains("uid=nosn") && out.contains("sn"), "{out}");
    assert!(
        out.contains("\"uid=max,ou=people,dc=example,dc=com\" (without its invalid values): object class 'posixAccount' requires attribute 'uidNumber'"),
        "{out}"
    );
    assert!(
        err.contains("3 invalid values in 3 entries, 4 entries that cannot be loaded"),
        "{err}"
    );
}
