//! rosterd as an RFC 4533 provider: a stock OpenLDAP slapd consumer (syncrepl,
//! refreshAndPersist over StartTLS) follows it through changes and restarts of either side,
//! and OpenLDAP's ldapsearch asks for refreshOnly syncs with and without a cookie.

use roster_tests::{
    data, free_port, rosterd_config, run_tool, Rosterd, Slapd, ROOT_DN, ROOT_PW,
    ROOT_READS_PASSWORDS, SUFFIX,
};
use std::time::Duration;

/// Waits (at most 30 s) until the consumer holds what the provider holds.
fn converges(provider: &str, consumer: &str, what: &str) {
    roster_tests::replication::converges(provider, consumer, Duration::from_secs(30), what);
}

fn modify(url: &str, ldif: &str) {
    let (code, out, err) = roster_tests::ldapmodify(url, ROOT_DN, ROOT_PW, ldif);
    assert_eq!(code, 0, "{out}{err}");
}

/// A slapd whose only database is a syncrepl consumer of `provider` (StartTLS with `ca`).
fn consumer(provider: &str, ca: &std::path::Path) -> Slapd {
    let syncrepl = format!(
        "index entryUUID,entryCSN eq\n\
         syncrepl rid=001 provider={provider} bindmethod=simple binddn=\"{ROOT_DN}\" credentials={ROOT_PW} \
         searchbase=\"{SUFFIX}\" type=refreshAndPersist retry=\"1 +\" starttls=critical tls_cacert={} tls_reqcert=demand\n",
        ca.display()
    );
    Slapd::start_with("", "", &syncrepl)
}

fn fixed_port_config() -> String {
    rosterd_config(ROOT_READS_PASSWORDS).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{}\"", free_port()),
    )
}

#[test]
fn a_slapd_consumer_follows_rosterd_through_changes_and_restarts() {
    let d = data::directory(60, 41);
    let rosterd = Rosterd::start_with_config(Some(&d.ldif), &fixed_port_config());
    let url = rosterd.url();
    let mut slapd = consumer(&url, &rosterd.generated_ca());
    let replica = slapd.url();
    converges(&url, &replica, "initial refresh");

    // Adds, modifies, deletes and renames, and a subtree moved with its entries.
    modify(
        &url,
        "dn: uid=new1,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new1\ncn: New One\nsn: One\nmail: new1@example.com\n\n\
         dn: uid=u0003,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: changed3@example.com\n-\nadd: description\ndescription: changed\n\n\
         dn: uid=u0004,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0005,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=u0005b\ndeleteoldrdn: 1\n\n\
         dn: ou=deep,ou=Special  Unit,dc=example,dc=com\nchangetype: modrdn\nnewrdn: ou=moved\ndeleteoldrdn: 1\nnewsuperior: ou=contacts,dc=example,dc=com\n",
    );
    converges(&url, &replica, "persisted changes");

    // Four writers at once: adds, modifies, renames and deletes interleave in the change log.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = ldap3::LdapConn::new(&url).unwrap();
                c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
                for i in 0..25 {
                    let dn = format!("uid=w{w}x{i},ou=people,dc=example,dc=com");
                    let uid = format!("w{w}x{i}");
                    c.add(
                        &dn,
                        vec![
                            ("objectClass", ["inetOrgPerson"].into()),
                            ("uid", [uid.as_str()].into()),
                            ("cn", ["Writer"].into()),
                            ("sn", ["W"].into()),
                        ],
                    )
                    .unwrap()
                    .success()
                    .unwrap();
                    let round = i.to_string();
                    let target = format!(
                        "uid=u{:04},ou=people,dc=example,dc=com",
                        10 + w * 10 + i % 10
                    );
                    c.modify(
                        &target,
                        vec![ldap3::Mod::Replace("description", [round.as_str()].into())],
                    )
                    .unwrap()
                    .success()
                    .unwrap();
                    match i % 3 {
                        0 => {
                            c.delete(&dn).unwrap().success().unwrap();
                        }
                        1 => {
                            c.modifydn(&dn, &format!("uid={uid}r"), true, None)
                                .unwrap()
                                .success()
                                .unwrap();
                        }
                        _ => {}
                    }
                }
                let _ = c.unbind();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    converges(&url, &replica, "four concurrent writers");

    // The consumer away: it comes back with its cookie and gets what changed meanwhile,
    // including an entry deleted while it was away.
    slapd.stop();
    modify(
        &url,
        "dn: uid=u0006,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0007,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: Renamed Seven\n\n\
         dn: uid=new2,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new2\ncn: New Two\nsn: Two\n",
    );
    slapd.restart();
    converges(&url, &replica, "catch-up after the consumer's restart");

    // The provider restarted on the same address: the consumer reconnects with its cookie.
    let (dir, config, status) = rosterd.stop();
    assert!(status.success(), "{status}");
    let rosterd = Rosterd::spawn(dir, config);
    assert_eq!(rosterd.url(), url);
    modify(
        &url,
        "dn: uid=u0008,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=new3,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new3\ncn: New Three\nsn: Three\n",
    );
    converges(&url, &replica, "changes after the provider's restart");
    drop(slapd);
    drop(rosterd);
}

/// The SyncDone cookie of `ldapsearch -E sync=ro...` output, and its entries' DNs.
fn refresh_only(
    url: &str,
    bind: Option<(&str, &str)>,
    cookie: Option<&str>,
) -> (String, Vec<String>, String) {
    let sync = match cookie {
        Some(c) => format!("sync=ro/{c}"),
        None => "sync=ro".to_string(),
    };
    let mut args = vec!["-x", "-H", url, "-b", SUFFIX, "-E", &sync];
    if let Some((dn, pw)) = bind {
        args.extend(["-D", dn, "-w", pw]);
    }
    args.extend(["(objectClass=*)", "*"]);
    let (code, out, err) = run_tool("ldapsearch", &args);
    assert_eq!(code, 0, "{out}{err}");
    let dns = out
        .lines()
        .filter_map(|l| l.strip_prefix("dn:"))
        .map(|d| d.trim_start_matches(':').trim().to_string())
        .collect();
    // ldapsearch comments the SyncDone control: `# cookie: rid=...,csn=...`.
    let cookie_out = out
        .lines()
        .find_map(|l| l.strip_prefix("# cookie: "))
        .unwrap_or_default()
        .to_string();
    (cookie_out, dns, out)
}

const ROOT: Option<(&str, &str)> = Some((ROOT_DN, ROOT_PW));
const REPLICATOR: &str = "uid=u0000,ou=people,dc=example,dc=com";

#[test]
fn refresh_only_with_a_cookie_sends_only_what_changed() {
    let d = data::directory(40, 43);
    // slapd's access rules, and one account that replicates.
    let access = roster_tests::SLAPD_ACCESS.replace(
        "policy = \"custom\"\n",
        &format!("policy = \"custom\"\nreplicators = [\"{REPLICATOR}\"]\n"),
    );
    let rosterd = Rosterd::start(Some(&d.ldif), &format!("{ROOT_READS_PASSWORDS}{access}"));
    let url = rosterd.url();
    let (cookie, all, _) = refresh_only(&url, ROOT, None);
    assert_eq!(
        all.len(),
        d.dns.len(),
        "a refresh without a cookie sends everything"
    );
    assert!(cookie.contains("csn="), "cookie {cookie:?}");

    // Nothing changed: nothing is sent.
    let (same, none, out) = refresh_only(&url, ROOT, Some(&cookie));
    assert!(none.is_empty(), "{out}");
    assert_eq!(same, cookie);

    modify(
        &url,
        "dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: one change\n\n\
         dn: uid=u0002,ou=people,dc=example,dc=com\nchangetype: delete\n",
    );
    let (next, changed, out) = refresh_only(&url, ROOT, Some(&cookie));
    // The modified user, and the groups that lost the deleted one (referential integrity
    // rewrote them in the delete's commit); nothing else.
    assert_eq!(
        changed.first().map(String::as_str),
        Some("uid=u0001,ou=people,dc=example,dc=com"),
        "{out}"
    );
    let groups_of_u2 = d
        .ldif
        .split("\n\n")
        .filter(|e| e.starts_with("dn: cn=group") && e.to_lowercase().contains("uid=u0002,"))
        .count();
    assert!(
        changed[1..].iter().all(|dn| dn.starts_with("cn=group")),
        "{out}"
    );
    assert_eq!(changed.len(), 1 + groups_of_u2, "{out}");
    assert!(next > cookie, "{next} after {cookie}");
    // The deleted entry's UUID comes in a syncIdSet (the delete phase, refreshDeletes TRUE).
    assert!(out.contains("refreshDeletes=1"), "{out}");

    // A cookie older than anything the change log holds gets the whole content, unchanged
    // entries as present.
    let (_, present, _) = refresh_only(
        &url,
        ROOT,
        Some("rid=001,csn=20000101000000.000000Z#000000#000#000000"),
    );
    assert_eq!(present.len(), d.dns.len() - 1);

    // Access control applies: an anonymous consumer gets no password hashes.
    let (_, anon, out) = refresh_only(&url, None, None);
    assert_eq!(anon.len(), d.dns.len() - 1);
    assert!(!out.to_lowercase().contains("userpassword"), "{out}");
    let (_, _, out) = refresh_only(&url, ROOT, None);
    assert!(
        out.to_lowercase().contains("userpassword"),
        "the root DN reads them here"
    );
    // The replication account reads everything, password hashes included, and writes nothing.
    let (_, all_again, out) = refresh_only(&url, Some((REPLICATOR, "pw0")), None);
    assert_eq!(all_again.len(), d.dns.len() - 1);
    assert!(out.contains("userPassword:: cHcx"), "{out}");
    let (code, _, err) = roster_tests::ldapmodify(
        &url,
        REPLICATOR,
        "pw0",
        "dn: uid=u0003,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: x\n",
    );
    assert_eq!(code, 50, "{err}");
}

/// The change log's (first kept, last) sequence numbers, from cn=Monitor.
fn change_log(url: &str) -> (u64, u64) {
    let (_, out, _) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-s",
            "base",
            "-b",
            "cn=Change Log,cn=Replication,cn=Monitor",
            "monitoredInfo",
            "monitorCounter",
        ],
    );
    let field = |p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{p} in {out}"))
    };
    (field("monitoredInfo: first "), field("monitorCounter: "))
}

#[test]
fn a_consumer_away_longer_than_the_change_log_gets_the_present_phase() {
    let d = data::directory(30, 47);
    let config = fixed_port_config().replace("[storage]\n", "[storage]\nchange_log = 3\n");
    let rosterd = Rosterd::start_with_config(Some(&d.ldif), &config);
    let url = rosterd.url();
    let mut slapd = consumer(&url, &rosterd.generated_ca());
    let replica = slapd.url();
    converges(&url, &replica, "initial refresh");
    modify(
        &url,
        "dn: uid=u0001,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: before\n",
    );
    converges(&url, &replica, "a change while connected");
    let (_, seen) = change_log(&url);
    slapd.stop();
    modify(
        &url,
        "dn: uid=u0002,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0003,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=u0004,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: away\n\n\
         dn: uid=away1,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: away1\ncn: Away\nsn: One\n\n\
         dn: uid=away2,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: away2\ncn: Away\nsn: Two\n",
    );
    let (first, last) = change_log(&url);
    assert!(
        first > seen + 1,
        "the log dropped what the consumer missed: first {first}, consumer at {seen}, last {last}"
    );
    slapd.restart();
    converges(&url, &replica, "present phase after the log moved on");
}
