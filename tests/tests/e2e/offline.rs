//! The offline commands: load, dump and verify, with the errors an administrator needs.

use roster_tests::{data, rosterd_cmd, rosterd_config, write_file};
use std::path::Path;

fn setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "rosterd.toml", &rosterd_config(extra));
    (dir, cfg)
}

/// A client adding users `live0`, `live1`, ... under `ou` (each add whole: dn, mail, cn) as
/// the root DN until `stop` (at most 2,000); the thread returns how many it added.
fn spawn_writer(
    url: &str,
    ou: &str,
    classes: &'static [&'static str],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let url = url.to_string();
    let ou = ou.to_string();
    std::thread::spawn(move || {
        let mut conn = ldap3::LdapConn::new(&url).unwrap();
        conn.simple_bind(roster_tests::ROOT_DN, roster_tests::ROOT_PW)
            .unwrap()
            .success()
            .unwrap();
        let mut added = 0;
        while added < 2000 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let uid = format!("live{added}");
            let mail = format!("{uid}@example.com");
            conn.add(
                &format!("uid={uid},{ou},dc=example,dc=com"),
                vec![
                    ("objectClass", classes.iter().copied().collect()),
                    ("uid", [uid.as_str()].into()),
                    ("cn", ["Live"].into()),
                    ("sn", ["Live"].into()),
                    ("mail", [mail.as_str()].into()),
                ],
            )
            .unwrap()
            .success()
            .unwrap();
            added += 1;
        }
        added
    })
}

fn run(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    let out = rosterd_cmd(cfg).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn load_dump_load_gives_an_identical_dump() {
    let d = data::directory(80, 3);
    let (dir, cfg) = setup("");
    let src = write_file(dir.path(), "in.ldif", &d.ldif);
    let (ok, _, err) = run(&cfg, &["load", "--quiet", src.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("loaded {} entries", d.dns.len())),
        "{err}"
    );
    let first = dir.path().join("first.ldif");
    let (ok, _, err) = run(&cfg, &["dump", "-o", first.to_str().unwrap()]);
    assert!(ok, "{err}");
    let first_text = std::fs::read_to_string(&first).unwrap();
    assert_eq!(
        first_text.lines().filter(|l| l.starts_with("dn:")).count(),
        d.dns.len()
    );

    // Load the dump into a second data directory (--data-dir on every subcommand).
    let other = dir.path().join("other-data");
    let other_s = other.to_str().unwrap();
    let (ok, _, err) = run(
        &cfg,
        &[
            "--data-dir",
            other_s,
            "load",
            "--quiet",
            first.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let (ok, second_text, err) = run(&cfg, &["dump", "--data-dir", other_s]);
    assert!(ok, "{err}");
    assert_eq!(first_text, second_text);

    let (ok, out, err) = run(&cfg, &["verify"]);
    assert!(ok, "verify failed: {out} {err}");
}

#[test]
fn bad_entries_are_reported_by_line() {
    let (dir, cfg) = setup("");
    let cases = [
        ("dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\n\ndn: uid=a,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: a\ncn: a\n", "line 7", "sn"),
        ("dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\n\ndn: cn=b,ou=missing,dc=example,dc=com\nobjectClass: person\ncn: b\nsn: b\n", "line 7", "ou=missing"),
        ("dn: dc=other,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: other\no: x\n", "line 1", "naming context"),
        ("dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\nnoSuchAttr: 1\n", "line 1", "noSuchAttr"),
        ("dn: dc=example,dc=com\nobjectClass dcObject\n", "line 2", "attribute: value"),
        ("dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\n\ndn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\n", "line 7", "exists"),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let data_dir = dir.path().join(format!("d{i}"));
        let f = write_file(dir.path(), &format!("bad{i}.ldif"), text);
        let (ok, _, err) = run(
            &cfg,
            &[
                "--data-dir",
                data_dir.to_str().unwrap(),
                "load",
                "--quiet",
                f.to_str().unwrap(),
            ],
        );
        assert!(!ok, "case {i} loaded");
        assert!(err.contains(line), "case {i}: {err}");
        assert!(
            err.to_lowercase().contains(&what.to_lowercase()),
            "case {i}: {err}"
        );
    }
}

#[test]
fn changing_indexes_rebuilds_them_and_offline_commands_wait_for_the_daemon() {
    let d = data::directory(40, 5);
    let (dir, cfg) = setup("");
    let src = write_file(dir.path(), "in.ldif", &d.ldif);
    let (ok, _, err) = run(&cfg, &["load", "--quiet", src.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&cfg, &["verify"]);
    assert!(ok && !out.contains("index sn"), "{out}");

    // Index sn and givenName from now on; the daemon rebuilds at start.
    let indexed = "[storage.indexes]\nobjectClass = [\"eq\"]\nsn = [\"eq\", \"sub\"]\ngivenName = [\"eq\", \"pres\"]\n";
    std::fs::write(&cfg, rosterd_config(indexed)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = roster_tests::Rosterd::spawn(tmp, cfg.clone());
    // While the daemon holds the data directory, offline commands refuse with a reason.
    let (ok, _, err) = run(&cfg, &["verify"]);
    assert!(!ok && err.contains("running rosterd"), "{err}");
    let mut c = ldap3::LdapConn::new(&server.url()).unwrap();
    let u = &d.users[7];
    let (rs, _) = c
        .search(
            "dc=example,dc=com",
            ldap3::Scope::Subtree,
            &format!("(&(sn={})(givenName=*))", u.sn),
            vec!["1.1"],
        )
        .unwrap()
        .success()
        .unwrap();
    let expected = d
        .users
        .iter()
        .filter(|x| x.sn.eq_ignore_ascii_case(&u.sn))
        .count();
    assert_eq!(rs.len(), expected);
    let (_, _, status) = server.stop();
    assert!(status.success());
    let (ok, out, err) = run(&cfg, &["verify"]);
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("index sn (eq,sub)") && out.contains("index givenName"),
        "{out}"
    );
    // mail lost its substring index; its equality index stays, since user addresses are kept
    // unique through it.
    assert!(
        out.contains("index mail (eq)") && !out.contains("index mail (eq,sub)"),
        "{out}"
    );
}

#[test]
fn dump_while_the_server_runs_and_writes() {
    let d = data::directory(60, 9);
    let server = roster_tests::Rosterd::start(Some(&d.ldif), "");
    let url = server.url();
    let cfg = server.config.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // One client adds users (each add is whole: dn, mail, cn) while dumps are taken.
    let writer = spawn_writer(&url, "ou=people", &["inetOrgPerson"], stop.clone());
    let tmp = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    for i in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let file = tmp.path().join(format!("live{i}.ldif"));
        let (ok, _, err) = run(&cfg, &["dump", "-o", file.to_str().unwrap()]);
        assert!(ok, "online dump failed: {err}");
        assert!(err.contains("from the running server"), "{err}");
        let text = std::fs::read_to_string(&file).unwrap();
        let dns = text.lines().filter(|l| l.starts_with("dn:")).count();
        assert!(dns >= d.dns.len(), "{dns} entries");
        // Every live entry in the dump is whole.
        let live: Vec<&str> = text
            .split("\n\n")
            .filter(|b| b.contains("uid=live"))
            .collect();
        for b in &live {
            assert!(
                b.contains("\nmail: live") && b.contains("\ncn: Live"),
                "{b}"
            );
        }
        // The dump loads into a fresh store and verifies.
        let data = tmp.path().join(format!("data{i}"));
        let data_s = data.to_str().unwrap();
        let (ok, _, err) = run(
            &cfg,
            &[
                "--data-dir",
                data_s,
                "load",
                "--quiet",
                file.to_str().unwrap(),
            ],
        );
        assert!(ok, "reload of online dump {i}: {err}");
        let (ok, out, err) = run(&cfg, &["--data-dir", data_s, "verify"]);
        assert!(ok, "{out} {err}");
        sizes.push(dns);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let added = writer.join().unwrap();
    assert!(added > 0);
    // Dumps taken later hold at least as much: each is one point in time.
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    // Stopped, the same command reads the store directly.
    let (dir, cfg, status) = server.stop();
    assert!(status.success());
    // The control socket is gone with the server.
    assert!(dir.path().join("data").is_dir());
    assert!(!dir.path().join("data").join("control.sock").exists());
    let (ok, out, err) = run(&cfg, &["dump"]);
    assert!(ok, "{err}");
    assert!(!err.contains("running server"), "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("dn:")).count(),
        d.dns.len() + added
    );
}

#[test]
fn an_online_backup_restores_into_an_identical_server() {
    let (server, _shared) = crate::mail::start_directory("");
    let url = server.url();
    let cfg = server.config.clone();
    let ca = std::fs::read(server.generated_ca()).unwrap();
    // A client adds users while the backup is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = spawn_writer(
        &url,
        "ou=users",
        &["inetOrgPerson", "rosterMailUser"],
        stop.clone(),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    let backup_s = backup.to_str().unwrap();
    let (ok, _, err) = run(&cfg, &["backup", backup_s]);
    assert!(ok, "{err}");
    assert!(err.contains("from the running server"), "{err}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    // A second backup into the same directory is refused: nothing is overwritten.
    let (ok, _, err) = run(&cfg, &["backup", backup_s]);
    assert!(!ok && err.contains("is not empty"), "{err}");
    let ldif = std::fs::read_to_string(backup.join("directory.ldif")).unwrap();
    let (_keep, _, status) = server.stop();
    assert!(status.success());

    // The running server's own data directory holds a store: a restore there is refused.
    let (ok, _, err) = run(&cfg, &["restore", backup_s]);
    assert!(!ok && err.contains("already holds a store"), "{err}");
    // Restored into an empty data directory: the same entries, the same certificate.
    let restored = tmp.path().join("restored");
    let restored_s = restored.to_str().unwrap();
    let (ok, _, err) = run(
        &cfg,
        &["--data-dir", restored_s, "restore", "--quiet", backup_s],
    );
    assert!(ok, "{err}");
    assert!(err.contains("restored"), "{err}");
    let (ok, dump, err) = run(&cfg, &["--data-dir", restored_s, "dump"]);
    assert!(ok, "{err}");
    assert_eq!(dump, ldif);
    assert_eq!(std::fs::read(restored.join("tls/ca.pem")).unwrap(), ca);
    let (ok, out, err) = run(&cfg, &["--data-dir", restored_s, "verify"]);
    assert!(ok, "{out} {err}");

    // One changed byte in the backup: the restore refuses before it loads anything.
    std::fs::write(
        backup.join("directory.ldif"),
        ldif.replacen("live", "lIve", 1),
    )
    .unwrap();
    let again = tmp.path().join("again");
    let (ok, _, err) = run(
        &cfg,
        &["--data-dir", again.to_str().unwrap(), "restore", backup_s],
    );
    assert!(!ok && err.contains("is damaged"), "{err}");
    assert!(!again.join("version").exists());
}
