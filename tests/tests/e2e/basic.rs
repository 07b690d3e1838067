//! rosterd on its own: the root DSE and subschema, binds, searches, paging, compare, controls,
//! extended operations, refusals of writes, hostile input and shutdown.

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{LdapConn, LdapError, Scope, SearchEntry};
use roster_tests::{data, run_tool, Rosterd, ROOT_DN, ROOT_PW, ROOT_READS_PASSWORDS};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn server() -> (Rosterd, data::Directory) {
    let d = data::directory(60, 11);
    (Rosterd::start(Some(&d.ldif), ""), d)
}

fn rc(r: Result<ldap3::LdapResult, LdapError>) -> u32 {
    match r {
        Ok(res) => res.rc,
        Err(LdapError::LdapResult { result }) => result.rc,
        Err(e) => panic!("client error: {e}"),
    }
}

#[test]
fn root_dse_and_subschema_with_ldapsearch() {
    let (s, _) = server();
    let url = s.url();
    let (code, out, err) = run_tool(
        "ldapsearch",
        &["-x", "-LLL", "-H", &url, "-b", "", "-s", "base", "+"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("namingContexts: dc=example,dc=com"), "{out}");
    assert!(out.contains("supportedLDAPVersion: 3"), "{out}");
    assert!(
        out.contains("supportedControl: 1.2.840.113556.1.4.319"),
        "{out}"
    );
    assert!(
        out.contains("supportedExtension: 1.3.6.1.4.1.4203.1.11.3"),
        "{out}"
    );
    assert!(out.contains("subschemaSubentry: cn=Subschema"), "{out}");
    assert!(out.contains("vendorName: Roster"), "{out}");
    // Without "+", the root DSE's operational attributes are not returned.
    let (_, plain, _) = run_tool(
        "ldapsearch",
        &["-x", "-LLL", "-H", &url, "-b", "", "-s", "base"],
    );
    assert!(!plain.contains("namingContexts"), "{plain}");

    let (code, out, err) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            &url,
            "-b",
            "cn=Subschema",
            "-s",
            "base",
            "+",
            "*",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("attributeTypes: ( 2.5.4.3 NAME ( 'cn' 'commonName' )"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert!(
        out.contains("objectClasses: ( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson'"),
        "inetOrgPerson missing"
    );
    assert!(
        out.contains("ldapSyntaxes: ( 1.3.6.1.4.1.1466.115.121.1.15"),
        "syntaxes missing"
    );
    assert!(
        out.contains("matchingRules: ( 2.5.13.2 NAME 'caseIgnoreMatch'"),
        "matching rules missing"
    );
    assert!(out.contains("mailLocalAddress"), "misc schema missing");
}

#[test]
fn binds_and_rebinds_on_one_connection() {
    let (s, d) = server();
    let mut c = LdapConn::new(&s.url()).unwrap();
    let user = &d.users[3];
    let idx: usize = user.uid[1..].parse().unwrap();
    assert_eq!(rc(c.simple_bind(&user.dn, &format!("pw{idx}"))), 0);
    let who = c.extended(ldap3::exop::WhoAmI).unwrap().success().unwrap();
    let resp: ldap3::exop::WhoAmIResp = who.0.parse();
    assert_eq!(resp.authzid, format!("dn:{}", user.dn));
    assert_eq!(rc(c.simple_bind(&user.dn, "wrong")), 49);
    // After a failed bind the connection is anonymous.
    let who = c.extended(ldap3::exop::WhoAmI).unwrap().success().unwrap();
    let resp: ldap3::exop::WhoAmIResp = who.0.parse();
    assert_eq!(resp.authzid, "");
    assert_eq!(rc(c.simple_bind(ROOT_DN, ROOT_PW)), 0);
    assert_eq!(
        rc(c.simple_bind("CN=Admin, DC=Example, DC=Com", ROOT_PW)),
        0
    );
    // A DN with an empty password is an unauthenticated bind: never authenticated.
    assert_eq!(rc(c.simple_bind(&user.dn, "")), 53);
    assert_eq!(
        rc(c.simple_bind("uid=nobody,ou=people,dc=example,dc=com", "x")),
        49
    );
    assert_eq!(rc(c.simple_bind("not a dn", "x")), 34);
    assert_eq!(rc(c.simple_bind("", "x")), 49);
    assert_eq!(rc(c.simple_bind("", "")), 0);
    // ldapwhoami with the root DN.
    let (code, out, err) = run_tool(
        "ldapwhoami",
        &["-x", "-H", &s.url(), "-D", ROOT_DN, "-w", ROOT_PW],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{ROOT_DN}"));
    let (code, _, _) = run_tool(
        "ldapwhoami",
        &["-x", "-H", &s.url(), "-D", ROOT_DN, "-w", "nope"],
    );
    assert_eq!(code, 49);
}

#[test]
fn password_hashes_never_leave_the_server_unless_configured() {
    let (s, d) = server();
    let user = &d.users[0];
    let read_as = |url: &str, who: Option<(&str, &str)>| {
        let mut c = LdapConn::new(url).unwrap();
        if let Some((dn, pw)) = who {
            c.simple_bind(dn, pw).unwrap().success().unwrap();
        }
        let (rs, _) = c
            .search(
                &user.dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["*", "userPassword"],
            )
            .unwrap()
            .success()
            .unwrap();
        let e = SearchEntry::construct(rs.into_iter().next().unwrap());
        (
            e.attrs.contains_key("userPassword") || e.bin_attrs.contains_key("userPassword"),
            c.compare(&user.dn, "userPassword", "pw0").unwrap().0.rc,
        )
    };
    // By default nobody reads a hash, the root DN neither; compare works as before.
    let (shown, anonymous_compare) = read_as(&s.url(), None);
    assert!(!shown);
    let (shown, root_compare) = read_as(&s.url(), Some((ROOT_DN, ROOT_PW)));
    assert!(!shown, "the root DN reads no hash by default");
    assert_eq!(root_compare, 6, "the root DN compares a password");
    // Nor can it be searched by, which would give a hash away a bit at a time (an ordering
    // match tells which side of a guess it lies on).
    let mut c = LdapConn::new(&s.url()).unwrap();
    c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
    for filter in [
        "(userPassword=*)",
        "(userPassword:2.5.13.18:=zzzz)",
        "(!(userPassword:2.5.13.18:=zzzz))",
    ] {
        let (rs, _) = c
            .search(&user.dn, Scope::Base, filter, vec!["1.1"])
            .unwrap()
            .success()
            .unwrap();
        assert!(rs.is_empty(), "{filter} matched for the root DN");
    }
    let (rs, _) = c
        .search(&user.dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(rs.len(), 1, "the entry itself is there");
    // security.root_reads_passwords gives the root DN slapd's view, for migration tools.
    let compat = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let (shown, compat_compare) = read_as(&compat.url(), Some((ROOT_DN, ROOT_PW)));
    assert!(
        shown,
        "root_reads_passwords = true shows the root DN the hash"
    );
    assert_eq!(compat_compare, root_compare);
    let (shown, compat_anonymous) = read_as(&compat.url(), None);
    assert!(!shown, "only the root DN");
    assert_eq!(compat_anonymous, anonymous_compare);
}

#[test]
fn search_basics_limits_and_missing_base() {
    let (s, d) = server();
    let mut c = LdapConn::new(&s.url()).unwrap();
    let (rs, _) = c
        .search(
            "dc=example,dc=com",
            Scope::Subtree,
            "(mail=U0005@EXAMPLE.COM)",
            vec!["mail", "cn"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(rs.len(), 1);
    let e = SearchEntry::construct(rs.into_iter().next().unwrap());
    assert_eq!(e.dn, "uid=u0005,ou=people,dc=example,dc=com");
    assert!(e.attrs["mail"].contains(&"u0005@example.com".to_string()));
    // Operational attributes by name and with "+".
    let (rs, _) = c
        .search(&d.users[1].dn, Scope::Base, "(objectClass=*)", vec!["+"])
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(rs.into_iter().next().unwrap());
    for a in [
        "entryUUID",
        "createTimestamp",
        "structuralObjectClass",
        "entryDN",
        "subschemaSubentry",
        "hasSubordinates",
    ] {
        assert!(e.attrs.contains_key(a), "{a} missing: {:?}", e.attrs.keys());
    }
    assert_eq!(e.attrs["structuralObjectClass"], vec!["inetOrgPerson"]);
    assert!(!e.attrs.contains_key("cn"));
    // Size limit: entries up to the limit, then sizeLimitExceeded (4).
    let (code, out, _) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &s.url(),
            "-b",
            "ou=people,dc=example,dc=com",
            "-z",
            "3",
            "(objectClass=person)",
            "1.1",
        ],
    );
    assert_eq!(code, 4);
    assert_eq!(out.matches("dn: ").count(), 3);
    // A missing base: noSuchObject with the nearest existing entry as matchedDN.
    let err = c
        .search(
            "uid=x,ou=nowhere,ou=people,dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .unwrap()
        .success()
        .unwrap_err();
    match err {
        LdapError::LdapResult { result } => {
            assert_eq!(result.rc, 32);
            assert_eq!(result.matched, "ou=people,dc=example,dc=com");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn paged_results_walk_everything_and_abandon_with_zero() {
    let (s, d) = server();
    let mut c = LdapConn::new(&s.url()).unwrap();
    let adapters: Vec<Box<dyn Adapter<_, _>>> =
        vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(7))];
    let mut stream = c
        .streaming_search_with(
            adapters,
            "ou=people,dc=example,dc=com",
            Scope::OneLevel,
            "(uid=*)",
            vec!["uid"],
        )
        .unwrap();
    let mut seen = Vec::new();
    while let Some(e) = stream.next().unwrap() {
        seen.push(SearchEntry::construct(e).dn);
    }
    let res = stream.result();
    assert_eq!(res.rc, 0);
    assert_eq!(seen.len(), d.users.len());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), d.users.len());
    // ldapsearch's own paging (pr=N/noprompt) too.
    let (code, out, err) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &s.url(),
            "-E",
            "pr=10/noprompt",
            "-b",
            "ou=people,dc=example,dc=com",
            "(uid=*)",
            "1.1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("dn: ").count(), d.users.len());
}

#[test]
fn compare_controls_extended_and_writes() {
    let (s, d) = server();
    let url = s.url();
    let mut c = LdapConn::new(&url).unwrap();
    let u = &d.users[2];
    assert_eq!(
        rc(c.compare(&u.dn, "uid", u.uid.to_uppercase()).map(|r| r.0)),
        6
    );
    assert_eq!(rc(c.compare(&u.dn, "uid", "someone-else").map(|r| r.0)), 5);
    assert_eq!(rc(c.compare(&u.dn, "title", "x").map(|r| r.0)), 16);
    assert_eq!(rc(c.compare(&u.dn, "noSuchType", "x").map(|r| r.0)), 17);
    assert_eq!(
        rc(c.compare("uid=zz,ou=people,dc=example,dc=com", "uid", "zz")
            .map(|r| r.0)),
        32
    );
    // An unknown critical control: unavailableCriticalExtension (12); non-critical: ignored.
    let ctrl = RawControl {
        ctype: "1.2.3.4.5".into(),
        crit: true,
        val: None,
    };
    let r = c
        .with_controls(ctrl)
        .search(
            "dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .unwrap();
    assert_eq!(r.1.rc, 12);
    let ctrl = RawControl {
        ctype: "1.2.3.4.5".into(),
        crit: false,
        val: None,
    };
    let r = c
        .with_controls(ctrl)
        .search(
            "dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .unwrap();
    assert_eq!(r.1.rc, 0);
    assert_eq!(r.0.len(), 1);
    // An unknown extended operation: protocolError (2).
    let (_, _, err) = run_tool("ldapexop", &["-x", "-H", &url, "1.2.3.4.5.6"]);
    assert!(err.contains("Protocol error (2)"), "{err}");
    // An anonymous client may not write (as slapd: strongerAuthRequired); the root DN may.
    assert_eq!(rc(c.delete(&u.dn)), 8);
    let ldif = roster_tests::write_file(
        s.dir.path(),
        "add.ldif",
        "dn: cn=new,dc=example,dc=com\nobjectClass: person\ncn: new\nsn: x\n",
    );
    let (code, _, _) = run_tool(
        "ldapadd",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-f",
            ldif.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    // The root DN renames it.
    c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
    assert_eq!(
        rc(c.modifydn("cn=new,dc=example,dc=com", "cn=newer", true, None)),
        0
    );
    let (rs, _) = c
        .search(
            "cn=newer,dc=example,dc=com",
            Scope::Base,
            "(cn=newer)",
            vec!["cn"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(
        SearchEntry::construct(rs.into_iter().next().unwrap()).attrs["cn"],
        vec!["newer"]
    );
}

/// Reads the suffix entry on an open connection: proof that it is still served.
fn reads_suffix(c: &mut LdapConn) {
    let (rs, _) = c
        .search(
            "dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(rs.len(), 1);
}

fn connection_still_serves(url: &str) {
    reads_suffix(&mut LdapConn::new(url).unwrap());
}

/// True when the server has closed `c`: a search on it fails.
fn closed(c: &mut LdapConn) -> bool {
    c.search(
        "dc=example,dc=com",
        Scope::Base,
        "(objectClass=*)",
        vec!["1.1"],
    )
    .and_then(|r| r.success())
    .is_err()
}

#[test]
fn idle_connections_are_closed_after_their_timeout() {
    let d = data::directory(5, 3);
    let config = roster_tests::rosterd_config("").replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nidle_timeout_secs = 6\nidle_timeout_unbound_secs = 1\n",
        1,
    );
    assert!(config.contains("idle_timeout_unbound_secs"), "{config}");
    let s = Rosterd::start_with_config(Some(&d.ldif), &config);
    std::thread::scope(|scope| {
        // Silent and anonymous: a Notice of Disconnection after a second, then the close.
        scope.spawn(|| {
            let started = std::time::Instant::now();
            let mut raw = TcpStream::connect(s.addr).unwrap();
            raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut buf = Vec::new();
            raw.read_to_end(&mut buf).unwrap();
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(900), "closed after {took:?}");
            assert!(
                buf.windows(22).any(|w| w == b"1.3.6.1.4.1.1466.20036"),
                "{buf:?}"
            );
        });
        // Anonymous but busy: a search every 300 ms for 2.4 s keeps the connection.
        scope.spawn(|| {
            let mut c = LdapConn::new(&s.url()).unwrap();
            for _ in 0..8 {
                std::thread::sleep(Duration::from_millis(300));
                reads_suffix(&mut c);
            }
        });
        // Bound: silent for 1.6 s, past the anonymous timeout, and still served; silent for
        // longer than its own timeout, closed.
        scope.spawn(|| {
            let mut c = LdapConn::new(&s.url()).unwrap();
            c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
            std::thread::sleep(Duration::from_millis(1600));
            reads_suffix(&mut c);
            std::thread::sleep(Duration::from_millis(7000));
            assert!(closed(&mut c));
        });
        // Bound past the anonymous timeout (its timer has gone off once and waits for the
        // bound one), then anonymous again: the shorter timeout is back at once.
        scope.spawn(|| {
            let mut c = LdapConn::new(&s.url()).unwrap();
            c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            reads_suffix(&mut c);
            c.simple_bind("", "").unwrap().success().unwrap();
            std::thread::sleep(Duration::from_millis(2500));
            assert!(closed(&mut c));
        });
    });
    connection_still_serves(&s.url());
}

#[test]
fn hostile_bytes_end_only_their_connection() {
    let (s, _) = server();
    let mut healthy = LdapConn::new(&s.url()).unwrap();
    // Garbage: the server answers with a Notice of Disconnection (or just closes) and hangs up.
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"\x30\x05\x02\x01\x01\xff\xff garbage that is not BER")
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    if !buf.is_empty() {
        // An LDAPMessage with messageID 0 carrying the notice's OID.
        assert_eq!(buf[0], 0x30);
        assert!(
            buf.windows(22).any(|w| w == b"1.3.6.1.4.1.1466.20036"),
            "{buf:?}"
        );
    }
    // An announced length far beyond the message size limit.
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01])
        .unwrap();
    let _ = raw.write_all(&vec![0x04; 64 * 1024]);
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    // A client that vanishes in the middle of a message.
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.write_all(&[0x30, 0x0c, 0x02, 0x01]).unwrap();
    drop(raw);
    // A client that vanishes while a large search is being answered.
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.write_all(&raw_search(2)).unwrap();
    drop(raw);
    connection_still_serves(&s.url());
    reads_suffix(&mut healthy);
}

#[test]
fn shutdown_is_clean_and_data_survives_restart() {
    let (s, d) = server();
    let url = s.url();
    connection_still_serves(&url);
    let (dir, config, status) = s.stop();
    assert!(status.success(), "rosterd exited with {status}");
    let s = Rosterd::spawn(dir, config);
    let mut c = LdapConn::new(&s.url()).unwrap();
    let (rs, _) = c
        .search(
            "dc=example,dc=com",
            Scope::Subtree,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(rs.len(), d.dns.len());
}

/// A subtree search for `(objectClass=*)` under dc=example,dc=com, BER-encoded by hand so a
/// test can pipeline many without reading any answer.
fn raw_search(msgid: u16) -> Vec<u8> {
    let base = b"dc=example,dc=com";
    let mut op = vec![0x04, base.len() as u8];
    op.extend_from_slice(base);
    op.extend_from_slice(&[
        0x0a, 0x01, 0x02, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x01, 0x01, 0x00,
    ]);
    op.extend_from_slice(&[0x87, 0x0b]);
    op.extend_from_slice(b"objectClass");
    op.extend_from_slice(&[0x30, 0x00]);
    let mut body = vec![
        0x02,
        0x02,
        (msgid >> 8) as u8,
        msgid as u8,
        0x63,
        op.len() as u8,
    ];
    body.extend_from_slice(&op);
    let mut msg = vec![0x30, body.len() as u8];
    msg.extend_from_slice(&body);
    msg
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let (s, d) = server();
    // 600 pipelined searches, none of whose answers is ever read.
    let mut hog = TcpStream::connect(s.addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    for id in 1..=600u16 {
        if hog.write_all(&raw_search(id)).is_err() {
            break;
        }
    }
    // Everyone else is still served: a bind, an indexed lookup and a subtree search. The
    // thread below only turns a hang into a failure; it is not a speed requirement.
    let url = s.url();
    let uid = d.users[1].uid.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut c = LdapConn::new(&url).unwrap();
        c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
        let (rs, _) = c
            .search(
                "dc=example,dc=com",
                Scope::Subtree,
                &format!("(uid={uid})"),
                vec!["1.1"],
            )
            .unwrap()
            .success()
            .unwrap();
        let (all, _) = c
            .search(
                "dc=example,dc=com",
                Scope::Subtree,
                "(objectClass=*)",
                vec!["1.1"],
            )
            .unwrap()
            .success()
            .unwrap();
        let _ = tx.send((rs.len(), all.len()));
    });
    let (one, all) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("other clients stalled behind a client that does not read");
    assert_eq!(one, 1);
    assert_eq!(all, d.dns.len());
    drop(hog);
}

#[test]
fn mutated_and_random_messages_never_take_the_server_down() {
    let (s, _) = server();
    let mut rng = data::Rng::new(99);
    let valid = raw_search(7);
    for round in 0..300 {
        let mut bytes = if round % 3 == 0 {
            (0..1 + rng.below(200))
                .map(|_| rng.next_u64() as u8)
                .collect::<Vec<u8>>()
        } else {
            let mut m = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len());
                m[at] = rng.next_u64() as u8;
            }
            m
        };
        if round % 5 == 0 {
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        let mut raw = TcpStream::connect(s.addr).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = raw.write_all(&bytes);
        // End of input: the server answers what it could decode and closes.
        let _ = raw.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = raw.read_to_end(&mut answer);
    }
    connection_still_serves(&s.url());
}

/// `GET path` on the metrics listener: (status line, body).
fn scrape(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the metrics line `name` (with its labels, as printed), 0 when absent.
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_what_the_clients_did() {
    let d = data::directory(60, 11);
    let addr = format!("127.0.0.1:{}", roster_tests::free_port());
    let s = Rosterd::start(Some(&d.ldif), &format!("[metrics]\nlisten = \"{addr}\"\n"));
    let (_, before) = scrape(&addr, "/metrics");
    let mut c = LdapConn::new(&s.url()).unwrap();
    assert_eq!(rc(c.simple_bind(ROOT_DN, "wrong")), 49);
    assert_eq!(rc(c.simple_bind(ROOT_DN, ROOT_PW)), 0);
    let mut persons = 0.0;
    for _ in 0..5 {
        let ldap3::SearchResult(found, res) = c
            .search(
                "dc=example,dc=com",
                Scope::Subtree,
                "(objectClass=person)",
                vec!["cn"],
            )
            .unwrap();
        assert_eq!(res.rc, 0);
        assert!(!found.is_empty());
        persons = found.len() as f64;
    }
    let missing = c
        .search(
            "ou=nowhere,dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            vec!["cn"],
        )
        .unwrap()
        .1;
    assert_eq!(missing.rc, 32);
    let added = c.add(
        "cn=metered,dc=example,dc=com",
        vec![
            ("objectClass", ["organizationalRole"].into()),
            ("cn", ["metered"].into()),
        ],
    );
    assert_eq!(rc(added), 0);
    let (status, after) = scrape(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(
        delta("roster_operations_total{op=\"bind\",result=\"49\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("roster_operations_total{op=\"bind\",result=\"0\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("roster_operations_total{op=\"search\",result=\"0\"}"),
        5.0,
        "{after}"
    );
    assert_eq!(
        delta("roster_operations_total{op=\"search\",result=\"32\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("roster_operations_total{op=\"add\",result=\"0\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("roster_operation_duration_seconds_count{op=\"search\"}"),
        6.0,
        "{after}"
    );
    assert!(metric(&after, "roster_connections_open") >= 1.0, "{after}");
    assert!(metric(&after, "roster_store_bytes") > 0.0, "{after}");
    // The first search read the persons from the store into the read cache; the other four
    // found them there.
    assert!(
        delta("roster_cache_misses_total{kind=\"entry\"}") >= persons,
        "{after}"
    );
    assert!(
        delta("roster_cache_hits_total{kind=\"entry\"}") >= 4.0 * persons,
        "{after}"
    );
    assert!(
        metric(&after, "roster_cache_bytes{kind=\"entry\"}") > 0.0,
        "{after}"
    );
    // Nothing but /metrics is served.
    assert_eq!(scrape(&addr, "/").0, "HTTP/1.1 404 Not Found");
    c.unbind().unwrap();
}

/// One attribute of one cn=Monitor entry, as `ldapsearch` prints it for `who`.
fn monitor_value(url: &str, who: Option<(&str, &str)>, dn: &str, attr: &str) -> Option<String> {
    let mut args = vec![
        "-x",
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-H",
        url,
        "-s",
        "base",
        "-b",
        dn,
    ];
    if let Some((d, p)) = who {
        args.extend(["-D", d, "-w", p]);
    }
    args.extend(["(objectClass=*)", "*", "+"]);
    let (_, out, _) = run_tool("ldapsearch", &args);
    let prefix = format!("{attr}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
}

#[test]
fn cn_monitor_shows_the_servers_figures_to_administrators_only() {
    let d = data::directory(20, 17);
    let addr = format!("127.0.0.1:{}", roster_tests::free_port());
    let s = Rosterd::start(
        Some(&d.ldif),
        &format!("[metrics]\nlisten = \"{addr}\"\n[security]\nlockout_threshold = 2\n"),
    );
    let url = s.url();
    let root = Some((ROOT_DN, ROOT_PW));
    // The root DSE names the monitor context, as slapd's does.
    let (_, dse, _) = run_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-s",
            "base",
            "-b",
            "",
            "monitorContext",
        ],
    );
    assert!(dse.contains("monitorContext: cn=Monitor"), "{dse}");
    let completed = |who| {
        monitor_value(
            &url,
            who,
            "cn=Search,cn=Operations,cn=Monitor",
            "monitorOpCompleted",
        )
        .and_then(|v| v.parse::<u64>().ok())
    };
    let before = completed(root).expect("the root DN reads cn=Monitor");
    let mut c = LdapConn::new(&url).unwrap();
    assert_eq!(rc(c.simple_bind(ROOT_DN, ROOT_PW)), 0);
    for _ in 0..3 {
        c.search(
            "dc=example,dc=com",
            Scope::Subtree,
            "(uid=u0001)",
            vec!["cn"],
        )
        .unwrap();
    }
    // The search that reads the figure counts itself once it is answered.
    assert_eq!(completed(root), Some(before + 3 + 1));
    // A user locks itself out with two wrong passwords.
    let user = "uid=u0002,ou=people,dc=example,dc=com";
    for _ in 0..2 {
        assert_eq!(rc(c.simple_bind(user, "wrong")), 49);
    }
    let locks = monitor_value(
        &url,
        root,
        "cn=Lockouts,cn=Security,cn=Monitor",
        "monitorCounter",
    );
    assert_eq!(locks.as_deref(), Some("1"));
    let failed = monitor_value(
        &url,
        root,
        "cn=Failed Binds,cn=Security,cn=Monitor",
        "monitorCounter",
    );
    assert_eq!(failed.as_deref(), Some("2"));
    assert_eq!(
        monitor_value(&url, root, "cn=Monitor", "monitoredInfo").map(|v| v.starts_with("Roster")),
        Some(true)
    );
    let csn = monitor_value(
        &url,
        root,
        "cn=Database 1,cn=Databases,cn=Monitor",
        "contextCSN",
    );
    assert!(csn.is_some_and(|c| c.len() == 40));
    // Users and anonymous clients do not see the subtree at all.
    assert_eq!(completed(None), None);
    assert_eq!(
        completed(Some(("uid=u0003,ou=people,dc=example,dc=com", "pw3"))),
        None
    );
    let (code, _, _) = run_tool(
        "ldapsearch",
        &["-x", "-H", &url, "-b", "cn=Monitor", "-s", "base"],
    );
    assert_eq!(code, 32);
    // The same figures over HTTP.
    let (_, body) = scrape(&addr, "/metrics");
    assert_eq!(metric(&body, "roster_lockouts_total"), 1.0, "{body}");
    assert_eq!(metric(&body, "roster_sync_consumers"), 0.0, "{body}");
    assert!(
        metric(&body, "roster_context_csn_timestamp_seconds") > 1.7e9,
        "{body}"
    );
    c.unbind().unwrap();
}
