//! Accounts: disabled accounts, lockout after failed binds (seen and cleared by an
//! administrator, released after its period), password policy per domain, and the audit log.

use roster_tests::{root_search, run_tool, write_file, Rosterd, ROOT_DN, ROOT_PW};

const BASE: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=users,dc=example,dc=com\nobjectClass: organizationalUnit\nou: users\n\n\
dn: uid=u1,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u1\ncn: Ann One\nsn: One\nuserPassword: Pw-one-11\n\n\
dn: uid=u2,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: rosterAccount\nuid: u2\ncn: Bob Two\nsn: Two\n\
mail: u2@example.com\nuserPassword: Pw-two-22\nrosterAccountDisabled: TRUE\n\n";

fn whoami(url: &str, dn: &str, pw: &str) -> i32 {
    run_tool("ldapwhoami", &["-x", "-H", url, "-D", dn, "-w", pw]).0
}

/// Runs ldapmodify as the root DN (or `as_dn`); (exit code, stderr).
fn modify(
    url: &str,
    dir: &std::path::Path,
    ldif: &str,
    as_dn: Option<(&str, &str)>,
) -> (i32, String) {
    let f = write_file(dir, "change.ldif", ldif);
    let (dn, pw) = as_dn.unwrap_or((ROOT_DN, ROOT_PW));
    let (code, _, err) = run_tool(
        "ldapmodify",
        &[
            "-x",
            "-H",
            url,
            "-D",
            dn,
            "-w",
            pw,
            "-f",
            f.to_str().unwrap(),
        ],
    );
    (code, err)
}

#[test]
fn disabled_accounts_lockout_password_policy_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.log");
    let extra = format!(
        "[security]\nlockout_threshold = 3\nlockout_address_threshold = 50\nlockout_secs = 1\nlockout_max_secs = 2\n\
         [audit]\nfile = \"{}\"\n\
         [[password_policy]]\nmin_length = 8\nmin_classes = 3\nnot_username = true\n",
        audit.display()
    );
    let server = Rosterd::start(Some(BASE), &extra);
    let url = server.url();
    let u1 = "uid=u1,ou=users,dc=example,dc=com";
    let u2 = "uid=u2,ou=users,dc=example,dc=com";

    // A disabled account does not bind, even with its password, and keeps its data.
    assert_eq!(whoami(&url, u2, "Pw-two-22"), 49);
    assert!(root_search(&url, u2, &["mail"]).contains("mail: u2@example.com"));
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u2}\nchangetype: modify\nreplace: rosterAccountDisabled\nrosterAccountDisabled: FALSE\n"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(whoami(&url, u2, "Pw-two-22"), 0);

    // Three wrong passwords in a row lock the account: the right one fails too.
    for _ in 0..3 {
        assert_eq!(whoami(&url, u1, "wrong"), 49);
    }
    assert_eq!(whoami(&url, u1, "Pw-one-11"), 49);
    // Other accounts from the same address are not affected.
    assert_eq!(whoami(&url, u2, "Pw-two-22"), 0);
    // The administrator sees the lock and clears it.
    let shown = root_search(&url, u1, &["pwdAccountLockedTime"]);
    assert!(shown.contains("pwdAccountLockedTime: 20"), "{shown}");
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u1}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(!root_search(&url, u1, &["pwdAccountLockedTime"]).contains("pwdAccountLockedTime"));
    assert_eq!(whoami(&url, u1, "Pw-one-11"), 0);
    // Locked again, it releases on its own after the period.
    for _ in 0..3 {
        assert_eq!(whoami(&url, u1, "wrong"), 49);
    }
    assert_eq!(whoami(&url, u1, "Pw-one-11"), 49);
    let mut released = false;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        if whoami(&url, u1, "Pw-one-11") == 0 {
            released = true;
            break;
        }
    }
    assert!(released, "the lock ends after its period");
    // The lock cannot be set by hand.
    let (code, _) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u1}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 20300101000000Z\n"),
        None,
    );
    assert_eq!(code, 53);

    // Parallel guesses get no more checks than the threshold: eight at once, three checked.
    let guesses: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || whoami(&url, u2, &format!("guess-{i}")))
        })
        .collect();
    for g in guesses {
        assert_eq!(g.join().unwrap(), 49);
    }
    let log = std::fs::read_to_string(&audit).unwrap();
    let checked = log
        .lines()
        .filter(|l| {
            l.contains("\"event\":\"bind_failed\"")
                && l.contains(u2)
                && l.contains("invalid credentials")
        })
        .count();
    assert!(checked <= 3, "{checked} guesses checked");
    assert_eq!(whoami(&url, u2, "Pw-two-22"), 49, "locked by the burst");

    // The data directory is the server's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.dir.path().join("data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "data directory mode {mode:o}");
    }

    // Password policy: each rule named when broken; a good password and a hash pass.
    for (pw, rule) in [
        ("Sh0rt!", "at least 8 characters"),
        ("alllowercase", "at least 3 of"),
        ("Ann-One-9x", "user name"),
    ] {
        let (code, err) = modify(
            &url,
            tmp.path(),
            &format!("dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: {pw}\n"),
            Some((u1, "Pw-one-11")),
        );
        assert_eq!(code, 19, "{pw}: {err}");
        assert!(err.contains(rule), "{pw}: {err}");
    }
    let (code, out, _) = run_tool(
        "ldappasswd",
        &[
            "-x", "-H", &url, "-D", ROOT_DN, "-w", ROOT_PW, "-s", "short", u1,
        ],
    );
    assert_ne!(code, 0);
    assert!(out.contains("Constraint violation (19)"), "{out}");
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!(
            "dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: Good-pass-42\n"
        ),
        Some((u1, "Pw-one-11")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(whoami(&url, u1, "Good-pass-42"), 0);
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: {{SSHA}}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==\n"),
        None,
    );
    assert_eq!(code, 0, "imported hashes are not checked: {err}");
    // A user may not set a hash of its own choosing (it would escape the policy), and
    // {CLEARTEXT} is a clear password.
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: {{SSHA}}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==\n"),
        Some((u1, "secret")),
    );
    assert_eq!(code, 19, "{err}");
    assert!(err.contains("administrator"), "{err}");
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: {{CLEARTEXT}}weak\n"),
        Some((u1, "secret")),
    );
    assert_eq!(code, 19, "{{CLEARTEXT}} goes through the policy: {err}");
    let (code, err) = modify(
        &url,
        tmp.path(),
        &format!("dn: {u1}\nchangetype: modify\nreplace: userPassword\nuserPassword: {{CLEARTEXT}}Clear-pass-77\n"),
        Some((u1, "secret")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(whoami(&url, u1, "Clear-pass-77"), 0);

    // The audit log: one JSON object per line for writes, failed binds and lockouts, and
    // no password anywhere.
    let log = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines
        .iter()
        .all(|l| l.starts_with("{\"time\":\"") && l.ends_with('}')));
    assert!(lines
        .iter()
        .any(|l| l.contains("\"event\":\"bind_failed\"") && l.contains(u1)));
    assert!(lines
        .iter()
        .any(|l| l.contains("\"event\":\"lockout\"") && l.contains(u1)));
    assert!(lines
        .iter()
        .any(|l| l.contains("\"event\":\"bind_refused\"")));
    assert!(lines.iter().any(|l| l.contains("\"event\":\"unlocked\"")));
    assert!(lines.iter().any(|l| l.contains("\"event\":\"write\"")
        && l.contains("\"op\":\"modify\"")
        && l.contains("\"attr\":\"rosterAccountDisabled\"")
        && l.contains("\"result\":0")
        && l.contains("\"peer\":\"127.0.0.1\"")));
    assert!(lines.iter().any(|l| l.contains("\"result\":19")));
    for secret in [
        "Pw-one-11",
        "Good-pass-42",
        "Sh0rt!",
        "alllowercase",
        "1G904nLkTkGWjKNnQuB",
        "wrong",
    ] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}
