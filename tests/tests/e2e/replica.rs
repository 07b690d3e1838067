//! Read replicas: rosterd as an RFC 4533 consumer of a stock slapd provider (syncprov over
//! StartTLS) and of another rosterd. The replica gets the initial content, then every add,
//! modify, delete and rename (a moved subtree too) within a bounded wait; it catches up from
//! its cookie after a restart (a delete made while it was away included, without receiving
//! everything again), reconnects after the provider's restart, refers writes to the provider,
//! and answers mail lookups while the provider is down.

use roster_tests::replication::converges;
use roster_tests::{
    data, free_port, rosterd_config, run_tool, Rosterd, Slapd, GROUP_OVERLAYS, ROOT_DN, ROOT_PW,
    ROOT_READS_PASSWORDS, SUFFIX,
};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The `[[replica]]` example of docs/operations.md, as written there.
fn documented_replica() -> String {
    let doc = include_str!("../../../docs/operations.md");
    let section = doc
        .split("## Read replicas")
        .nth(1)
        .expect("docs/operations.md has a Read replicas section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block in the Read replicas section");
    assert!(block.contains("[[replica]]"), "{block}");
    block.to_string()
}

/// The documented replica table pointed at `provider` (StartTLS with `ca`), binding as the
/// root DN with its password in a file of `dir`.
fn replica_table(provider: &str, ca: &Path, dir: &Path) -> String {
    let pw = roster_tests::write_file(dir, "replica.pw", &format!("{ROOT_PW}\n"));
    documented_replica()
        .replace("ldap://ldap1.example.com", provider)
        .replace("/etc/roster/provider-ca.pem", &ca.display().to_string())
        .replace("/etc/roster/replica.pw", &pw.display().to_string())
        .replace("cn=replicator,dc=example,dc=com", ROOT_DN)
}

/// A replica's config: the test defaults, the root DN reading passwords (the comparison
/// includes them), metrics on `metrics_port`, and the replica table.
fn replica_config(table: &str, metrics_port: u16) -> String {
    rosterd_config(&format!(
        "{ROOT_READS_PASSWORDS}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n{table}"
    ))
}

/// OpenLDAP's `ldapsearch` of everything below the suffix with `*` and `entryUUID` as the root
/// DN: records with their lines sorted (DN values of `member` in one case and spacing, as
/// slapd keeps them in its pretty form and rosterd as written), then the records sorted.
fn ldapsearch_sorted(url: &str) -> Vec<String> {
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
            SUFFIX,
            "(objectClass=*)",
            "*",
            "entryUUID",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut records: Vec<String> = out
        .split("\n\n")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let mut lines: Vec<String> = r
                .lines()
                .map(|l| match l.split_once(": ") {
                    Some((k, v)) if k.eq_ignore_ascii_case("member") => {
                        format!("member: {}", v.to_lowercase().replace(", ", ","))
                    }
                    _ => l.to_string(),
                })
                .collect();
            lines.sort();
            lines.join("\n")
        })
        .collect();
    records.sort();
    records
}

fn modify(url: &str, ldif: &str) {
    let (code, out, err) = roster_tests::ldapmodify(url, ROOT_DN, ROOT_PW, ldif);
    assert_eq!(code, 0, "{out}{err}");
}

/// The value of the metric line starting with `name` (labels included) on `port`.
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Asserts that a replica's catch-up applied fewer changes than half the directory's
/// `entries`: it went from its cookie, not through the whole content again.
fn caught_up_from_cookie(metrics_port: u16, entries: usize) {
    let applied = metric(
        metrics_port,
        "roster_replica_changes_applied_total{replica=\"main\"}",
    )
    .unwrap_or(f64::MAX);
    assert!(
        applied < (entries / 2) as f64,
        "the catch-up applied {applied} changes for a directory of {entries} entries: not from the cookie"
    );
}

/// Waits (at most 30 s) until `roster_replica_connected` is `want`.
fn wait_connected(port: u16, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if metric(port, "roster_replica_connected{replica=\"main\"}")
            == Some(f64::from(u8::from(want)))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the replica's connected state did not become {want}");
}

/// The slapd provider: syncprov with a checkpoint, the entryUUID and entryCSN indexes, and
/// the group overlays (so that its groups follow renames and deletes as rosterd's do).
fn slapd_provider(ldif: &str) -> Slapd {
    Slapd::start_tls_with(
        ldif,
        "moduleload syncprov\n",
        &format!(
            "index entryUUID,entryCSN eq\noverlay syncprov\nsyncprov-checkpoint 1 1\n{GROUP_OVERLAYS}"
        ),
    )
}

#[test]
fn a_replica_follows_a_slapd_provider() {
    let d = data::directory(60, 47);
    let mut slapd = slapd_provider(&d.ldif);
    let provider = slapd.url();
    let keep = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = replica_config(
        &replica_table(&provider, &slapd.ca(), keep.path()),
        metrics_port,
    );
    let rosterd = Rosterd::start_with_config(None, &config);
    let replica = rosterd.url();
    converges(
        &provider,
        &replica,
        Duration::from_secs(20),
        "initial refresh",
    );
    wait_connected(metrics_port, true);
    // The replica's state for LDAP tools, under cn=Monitor.
    let (code, out, err) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            &replica,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-b",
            "cn=main,cn=Replication,cn=Monitor",
            "-s",
            "base",
            "+",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("monitoredInfo: state persisting"), "{out}");
    assert!(
        out.contains(&format!("monitoredInfo: provider {provider}")),
        "{out}"
    );
    assert!(out.contains("contextCSN: "), "{out}");
    let (_, dse, _) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &replica,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-b",
            "cn=Database 1,cn=Databases,cn=Monitor",
            "-s",
            "base",
            "readOnly",
        ],
    );
    assert!(dse.contains("readOnly: TRUE"), "{dse}");
    // The time of the provider's last commit the replica holds, for the lag.
    let cookie_time = metric(
        metrics_port,
        "roster_replica_cookie_csn_timestamp_seconds{replica=\"main\"}",
    );
    assert!(cookie_time.is_some_and(|t| t > 1.7e9), "{cookie_time:?}");

    // Adds, modifies, deletes and renames, and a subtree moved with its entries, one change
    // at a time, each within a bounded wait.
    let changes = [
        "dn: uid=new1,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new1\ncn: New One\nsn: One\nmail: new1@example.com\n",
        "dn: uid=u0003,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: changed3@example.com\n-\nadd: description\ndescription: changed\n",
        "dn: uid=u0004,ou=people,dc=example,dc=com\nchangetype: delete\n",
        "dn: uid=u0005,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=u0005b\ndeleteoldrdn: 1\n",
        "dn: ou=deep,ou=Special  Unit,dc=example,dc=com\nchangetype: modrdn\nnewrdn: ou=moved\ndeleteoldrdn: 1\nnewsuperior: ou=contacts,dc=example,dc=com\n",
    ];
    for (i, change) in changes.iter().enumerate() {
        modify(&provider, change);
        converges(
            &provider,
            &replica,
            Duration::from_secs(10),
            &format!("change {i}"),
        );
    }

    // The replica away: it comes back with its cookie and gets what changed meanwhile (a
    // delete included), not the whole content again.
    let (dir, config_path, status) = rosterd.stop();
    assert!(status.success(), "{status}");
    modify(
        &provider,
        "dn: uid=u0006,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0007,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: Renamed Seven\n\n\
         dn: uid=new2,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new2\ncn: New Two\nsn: Two\nmail: new2@example.com\n",
    );
    let rosterd = Rosterd::spawn(dir, config_path);
    let replica = rosterd.url();
    converges(
        &provider,
        &replica,
        Duration::from_secs(20),
        "catch-up from the cookie",
    );
    caught_up_from_cookie(metrics_port, d.dns.len());

    // The provider restarted while the replica is connected: it reconnects after its
    // back-off and goes on.
    slapd.restart();
    modify(
        &provider,
        "dn: uid=u0008,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=new3,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new3\ncn: New Three\nsn: Three\nmail: new3@example.com\n",
    );
    converges(
        &provider,
        &replica,
        Duration::from_secs(30),
        "after the provider's restart",
    );

    // A write to the replica is referred to the provider, with the entry's DN.
    let (code, out, err) = roster_tests::ldapmodify(
        &replica,
        ROOT_DN,
        ROOT_PW,
        "dn: uid=u0009,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: local\n",
    );
    let said = format!("{out}{err}");
    assert_eq!(code, 10, "{said}");
    assert!(said.contains("Referral"), "{said}");
    assert!(
        said.contains(&format!("{provider}/uid=u0009,ou=people,dc=example,dc=com")),
        "{said}"
    );

    // Final comparison with slapd's own view (user attributes and entryUUID), then the
    // provider down: mail lookups go on.
    converges(&provider, &replica, Duration::from_secs(10), "final");
    let (theirs, ours) = (ldapsearch_sorted(&provider), ldapsearch_sorted(&replica));
    assert!(theirs.len() > 60, "{} entries", theirs.len());
    if let Some((a, b)) = theirs.iter().zip(&ours).find(|(a, b)| a != b) {
        panic!("ldapsearch of slapd and of the replica differ:\n{a}\n---\n{b}");
    }
    assert_eq!(theirs.len(), ours.len());
    slapd.stop();
    let (code, out, err) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &replica,
            "-b",
            SUFFIX,
            "(mail=new3@example.com)",
            "uid",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("uid: new3"), "{out}");
    wait_connected(metrics_port, false);
    drop(rosterd);
}

/// `rosterd dump` of a running server: its entries (LDIF records, lines unfolded), sorted.
/// The one thing that must differ between a provider and its replica is the order: a dump
/// follows entry ids, which each store hands out in its own order; so records are sorted, and
/// the attribute lines inside each record. Everything else is compared: every value,
/// `entryUUID`, `entryCSN`, the creators, modifiers and timestamps, password hashes.
fn dump(config: &Path) -> Vec<String> {
    let out = roster_tests::rosterd_cmd(config)
        .arg("dump")
        .output()
        .expect("run rosterd dump");
    assert!(
        out.status.success(),
        "rosterd dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).replace("\n ", "");
    let mut records: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|r| r.starts_with("dn:") || r.starts_with("dn::"))
        .map(|r| {
            // Attribute order inside a record follows the store's; compare the lines.
            let mut lines: Vec<&str> = r.lines().collect();
            let dn = lines.remove(0);
            lines.sort_unstable();
            format!("{dn}\n{}", lines.join("\n"))
        })
        .collect();
    records.sort();
    records
}

/// Waits (at most `limit`) until the two servers' dumps are equal; panics with the first
/// difference otherwise.
fn dumps_agree(provider: &Path, replica: &Path, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let want = dump(provider);
        let got = dump(replica);
        if want == got {
            assert!(want.len() > 100, "{what}: only {} entries", want.len());
            return;
        }
        if Instant::now() > deadline {
            let first = want
                .iter()
                .zip(&got)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("provider:\n{a}\nreplica:\n{b}"));
            panic!(
                "{what}: dumps differ ({} and {} entries); first difference: {first:?}",
                want.len(),
                got.len()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// One writer's changes to the provider: adds, modifies, renames, deletes and (writer 0) a
/// subtree moved, `n` rounds.
fn writer(url: &str, t: usize, n: usize) {
    let mut conn = ldap3::LdapConn::new(url).unwrap();
    conn.simple_bind(ROOT_DN, ROOT_PW)
        .unwrap()
        .success()
        .unwrap();
    let people = "ou=people,dc=example,dc=com";
    let mut live: Vec<String> = Vec::new();
    for i in 0..n {
        let uid = format!("w{t}x{i}");
        let dn = format!("uid={uid},{people}");
        conn.add(
            &dn,
            vec![
                ("objectClass", ["inetOrgPerson"].into()),
                ("uid", [uid.as_str()].into()),
                ("cn", [format!("Writer {t} {i}").as_str()].into()),
                ("sn", ["Writer"].into()),
                ("mail", [format!("{uid}@example.com").as_str()].into()),
            ],
        )
        .unwrap()
        .success()
        .unwrap();
        live.push(uid);
        if i % 3 == 1 {
            if let Some(prev) = live.get(live.len().saturating_sub(2)) {
                let d = format!("round {i}");
                conn.modify(
                    &format!("uid={prev},{people}"),
                    vec![ldap3::Mod::Replace("description", [d.as_str()].into())],
                )
                .unwrap()
                .success()
                .unwrap();
            }
        }
        if i % 4 == 2 && live.len() >= 2 {
            let old = live.remove(0);
            let new = format!("{old}r");
            conn.modifydn(
                &format!("uid={old},{people}"),
                &format!("uid={new}"),
                true,
                None,
            )
            .unwrap()
            .success()
            .unwrap();
            live.push(new);
        }
        if i % 5 == 4 && live.len() >= 3 {
            let gone = live.remove(live.len() / 2);
            conn.delete(&format!("uid={gone},{people}"))
                .unwrap()
                .success()
                .unwrap();
        }
        if t == 0 && i % 40 == 10 {
            // A small subtree, then moved with its entry.
            let ou = format!("ou=box{i},{people}");
            conn.add(
                &ou,
                vec![
                    ("objectClass", ["organizationalUnit"].into()),
                    ("ou", [format!("box{i}").as_str()].into()),
                ],
            )
            .unwrap()
            .success()
            .unwrap();
            conn.add(
                &format!("cn=inside,{ou}"),
                vec![
                    ("objectClass", ["organizationalRole"].into()),
                    ("cn", ["inside"].into()),
                ],
            )
            .unwrap()
            .success()
            .unwrap();
            conn.modifydn(
                &ou,
                &format!("ou=box{i}"),
                true,
                Some("ou=contacts,dc=example,dc=com"),
            )
            .unwrap()
            .success()
            .unwrap();
        }
    }
    let _ = conn.unbind();
}

#[test]
fn a_replica_of_rosterd_matches_it_under_concurrent_writes_and_a_crash() {
    let d = data::directory(100, 53);
    let provider = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let url = provider.url();
    let keep = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = replica_config(
        &replica_table(&url, &provider.generated_ca(), keep.path()),
        metrics_port,
    );
    // The replica syncs its writes (the default), which the crash below puts to the test.
    let config = config.replace("durability = \"buffer\"", "durability = \"sync\"");
    assert!(config.contains("durability = \"sync\""));
    let replica = Rosterd::start_with_config(None, &config);
    dumps_agree(
        &provider.config,
        &replica.config,
        Duration::from_secs(30),
        "initial refresh",
    );

    // Four writers, and the replica killed (SIGKILL) in the middle of their changes.
    const ROUNDS: usize = 200;
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || writer(&url, t, ROUNDS))
        })
        .collect();
    // Bounded: at most 10 s for the replica to have applied some of the writers' changes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && metric(
            metrics_port,
            "roster_replica_changes_applied_total{replica=\"main\"}",
        )
        .is_none_or(|n| n < (d.dns.len() + 150) as f64)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let running = writers.iter().filter(|w| !w.is_finished()).count();
    eprintln!("replica killed with {running} of 4 writers still writing");
    let (dir, config_path) = replica.kill();
    std::thread::sleep(Duration::from_millis(300));
    let replica = Rosterd::spawn(dir, config_path);
    for w in writers {
        w.join().unwrap();
    }
    dumps_agree(
        &provider.config,
        &replica.config,
        Duration::from_secs(60),
        "after the writers and the crash",
    );
    converges(&url, &replica.url(), Duration::from_secs(10), "over LDAP");
    drop(replica);
    drop(provider);
}

#[test]
fn a_replica_catches_up_from_a_slapd_session_log() {
    // With a session log, slapd sends what was deleted while the replica was away as a
    // delete phase (syncIdSet with refreshDeletes) instead of the UUIDs of everything present.
    let d = data::directory(40, 59);
    let slapd = Slapd::start_tls_with(
        &d.ldif,
        "moduleload syncprov\n",
        &format!(
            "index entryUUID,entryCSN eq\noverlay syncprov\nsyncprov-checkpoint 1 1\nsyncprov-sessionlog 100\n{GROUP_OVERLAYS}"
        ),
    );
    let provider = slapd.url();
    let keep = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = replica_config(
        &replica_table(&provider, &slapd.ca(), keep.path()),
        metrics_port,
    );
    let rosterd = Rosterd::start_with_config(None, &config);
    converges(
        &provider,
        &rosterd.url(),
        Duration::from_secs(20),
        "initial refresh",
    );
    // A change while connected, so that the session log has a starting point.
    modify(
        &provider,
        "dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: one\n",
    );
    converges(
        &provider,
        &rosterd.url(),
        Duration::from_secs(10),
        "a change",
    );
    let (dir, config_path, status) = rosterd.stop();
    assert!(status.success(), "{status}");
    modify(
        &provider,
        "dn: uid=u0002,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0003,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0004,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=u0004b\ndeleteoldrdn: 1\n",
    );
    let rosterd = Rosterd::spawn(dir, config_path);
    converges(
        &provider,
        &rosterd.url(),
        Duration::from_secs(20),
        "catch-up from the session log",
    );
    caught_up_from_cookie(metrics_port, d.dns.len());
    drop(rosterd);
    drop(slapd);
}
