//! Applying sync messages to a real store, and the replica's small parsers.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;

/// A directory replicating dc=example,dc=com (from a provider that is never contacted),
/// and an applier for its replica.
fn replica_dir(data: &std::path::Path) -> (Arc<Directory>, Applier) {
    let text = "[directory]\nsuffixes = [\"dc=example,dc=com\", \"dc=local,dc=org\"]\n[storage]\ndurability = \"buffer\"\n\
                [[replica]]\nname = \"t\"\nprovider = \"ldap://127.0.0.1:9\"\nstarttls = false\nbase = \"dc=example,dc=com\"\n";
    let file: crate::config::ConfigFile = toml::from_str(text).unwrap();
    let overrides = crate::config::Overrides {
        data_dir: Some(data.to_path_buf()),
        ..Default::default()
    };
    let settings =
        crate::config::Settings::from_file(file, std::path::Path::new(""), &overrides).unwrap();
    let dir = Arc::new(Directory::open(settings).unwrap());
    let replica = dir.replicas.list().first().unwrap().clone();
    let applier = Applier::new(dir.clone(), replica, false);
    (dir, applier)
}

fn entry(dn: &str, n: u8, state: SyncState, attrs: &[(&str, &str)]) -> Response {
    Response::Entry {
        dn: dn.into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.as_bytes().to_vec()]))
            .collect(),
        state: Some(wire::StateControl {
            state,
            uuid: [n; 16],
            cookie: None,
        }),
    }
}

fn ou(dn: &str, n: u8) -> Response {
    let name = dn
        .split(',')
        .next()
        .and_then(|r| r.strip_prefix("ou="))
        .unwrap();
    entry(
        dn,
        n,
        SyncState::Add,
        &[("objectClass", "organizationalUnit"), ("ou", name)],
    )
}

fn suffix() -> Response {
    entry(
        "dc=example,dc=com",
        1,
        SyncState::Add,
        &[
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("dc", "example"),
            ("o", "Example"),
            ("entryCSN", "20260101000000.000000Z#000000#000#000000"),
            ("entryDN", "dc=example,dc=com"),
            ("hasSubordinates", "TRUE"),
            ("contextCSN", "20260101000000.000000Z#000000#000#000000"),
        ],
    )
}

/// The DNs under the suffix, normalized and sorted.
fn dns(dir: &Directory) -> Vec<String> {
    let all = roster_schema::Filter::Present {
        attr: "objectClass".into(),
    }
    .compile(&dir.schema);
    let base = Dn::parse("dc=example,dc=com")
        .unwrap()
        .normalize(&dir.schema)
        .unwrap();
    let reader = dir.store.reader();
    let mut out: Vec<String> = reader
        .search(&base, roster_storage::Scope::Subtree, &all)
        .unwrap()
        .map(|r| r.unwrap().1.ndn.to_string())
        .collect();
    out.sort();
    out
}

fn stored_cookie(dir: &Directory) -> Option<Vec<u8>> {
    dir.store
        .reader()
        .state(&cookie_key("t"))
        .unwrap()
        .map(|v| {
            v.get(cookie_owner(&dir.replicas.list()[0].config).len()..)
                .unwrap()
                .to_vec()
        })
}

#[test]
fn children_wait_for_their_parent_and_the_cookie_waits_for_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut a) = replica_dir(tmp.path());
    a.handle(suffix()).unwrap();
    // The suffix keeps the provider's entryCSN and entryUUID; computed and foreign
    // operational attributes are not stored.
    let base = Dn::parse("dc=example,dc=com")
        .unwrap()
        .normalize(&dir.schema)
        .unwrap();
    let (_, e) = dir.store.reader().entry_by_dn(&base).unwrap().unwrap();
    let names: Vec<&str> = e
        .attrs
        .iter()
        .map(|x| dir.schema.attr_name(x.desc.id))
        .collect();
    assert!(
        names.contains(&"entryCSN") && names.contains(&"entryUUID"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("entryDN")
                || n.eq_ignore_ascii_case("hasSubordinates")),
        "{names:?}"
    );
    assert_eq!(
        e.values_of(dir.schema.attr_id("entryCSN").unwrap())
            .next()
            .map(Vec::as_slice),
        Some(&b"20260101000000.000000Z#000000#000#000000"[..])
    );
    // A grandchild, then its parent, before the parent's parent.
    let Response::Entry { dn, attrs, .. } = ou("ou=c,ou=b,ou=a,dc=example,dc=com", 4) else {
        unreachable!()
    };
    a.handle(Response::Entry {
        dn,
        attrs,
        state: Some(wire::StateControl {
            state: SyncState::Add,
            uuid: [4; 16],
            cookie: Some(b"rid=000,csn=1".to_vec()),
        }),
    })
    .unwrap();
    a.handle(ou("ou=b,ou=a,dc=example,dc=com", 3)).unwrap();
    assert_eq!(dns(&dir), vec!["dc=example,dc=com"]);
    assert_eq!(
        stored_cookie(&dir),
        None,
        "a cookie waits for the entries before it"
    );
    a.handle(ou("ou=a,dc=example,dc=com", 2)).unwrap();
    assert_eq!(
        dns(&dir),
        vec![
            "dc=example,dc=com",
            "ou=a,dc=example,dc=com",
            "ou=b,ou=a,dc=example,dc=com",
            "ou=c,ou=b,ou=a,dc=example,dc=com"
        ]
    );
    assert_eq!(stored_cookie(&dir).as_deref(), Some(&b"rid=000,csn=1"[..]));
    assert_eq!(dir.replicas.statuses()[0].cookie_csn.as_deref(), Some("1"));
}

#[test]
fn renames_move_subtrees_replays_replace_and_the_present_phase_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut a) = replica_dir(tmp.path());
    for r in [
        suffix(),
        ou("ou=a,dc=example,dc=com", 2),
        ou("ou=x,ou=a,dc=example,dc=com", 3),
        ou("ou=b,dc=example,dc=com", 4),
        ou("ou=gone,dc=example,dc=com", 5),
        ou("ou=child,ou=gone,dc=example,dc=com", 6),
    ] {
        a.handle(r).unwrap();
    }
    a.handle(Response::Intermediate(Some(SyncInfo::RefreshPresent {
        cookie: Some(b"csn=1".to_vec()),
        done: true,
    })))
    .unwrap();
    assert_eq!(dns(&dir).len(), 6);
    // The next session, from the cookie.
    let replica = dir.replicas.list().first().unwrap().clone();
    let mut a = Applier::new(dir.clone(), replica, false);
    // A replay of an add is a replace; a move takes the subtree along.
    a.handle(entry(
        "ou=a,dc=example,dc=com",
        2,
        SyncState::Add,
        &[
            ("objectClass", "organizationalUnit"),
            ("ou", "a"),
            ("description", "again"),
        ],
    ))
    .unwrap();
    assert_eq!(dns(&dir).len(), 6);
    let a_dn = Dn::parse("ou=a,dc=example,dc=com")
        .unwrap()
        .normalize(&dir.schema)
        .unwrap();
    let (_, again) = dir.store.reader().entry_by_dn(&a_dn).unwrap().unwrap();
    let description = dir.schema.attr_id("description").unwrap();
    assert_eq!(
        again.values_of(description).next().map(Vec::as_slice),
        Some(&b"again"[..])
    );
    a.handle(ou("ou=a2,ou=b,dc=example,dc=com", 2)).unwrap();
    // The present phase: 5 and 6 are not reported, and go, child first.
    for n in [1, 2, 3, 4] {
        a.handle(entry("", n, SyncState::Present, &[])).unwrap();
    }
    a.handle(Response::Intermediate(Some(SyncInfo::RefreshPresent {
        cookie: Some(b"csn=2".to_vec()),
        done: true,
    })))
    .unwrap();
    assert_eq!(
        dns(&dir),
        vec![
            "dc=example,dc=com",
            "ou=a2,ou=b,dc=example,dc=com",
            "ou=b,dc=example,dc=com",
            "ou=x,ou=a2,ou=b,dc=example,dc=com"
        ]
    );
    assert!(a.persisting);
    // After the refresh, an entry whose parent is missing is not held back: its parent
    // will not come (changes arrive in commit order).
    a.handle(ou("ou=orphan,ou=nowhere,dc=example,dc=com", 7))
        .unwrap();
    assert_eq!(a.pending_count, 0);
    assert_eq!(dns(&dir).len(), 4);
    // Persisted changes: a delete by UUID, an unknown UUID's delete does nothing.
    a.handle(entry(
        "ou=x,ou=a2,ou=b,dc=example,dc=com",
        3,
        SyncState::Delete,
        &[],
    ))
    .unwrap();
    a.handle(entry("", 99, SyncState::Delete, &[])).unwrap();
    assert_eq!(dns(&dir).len(), 3);
    // The provider cannot go on from the cookie.
    let r = a.handle(Response::Done {
        result: wire::LdapResult {
            code: 4096,
            ..Default::default()
        },
        sync_done: None,
    });
    assert!(matches!(r, Err(SessionError::RefreshRequired)), "{r:?}");
}

#[test]
fn writes_in_a_replicated_context_are_referred() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = replica_dir(tmp.path());
    let e = write_referral(&dir, &["uid=a,ou=people,dc=example,dc=com"]).unwrap();
    let res = crate::error::ldap_result(&e);
    assert_eq!(res.code, ldap3_proto::proto::LdapResultCode::Referral);
    assert_eq!(
        res.referral,
        vec!["ldap://127.0.0.1:9/uid=a,ou=people,dc=example,dc=com".to_string()]
    );
    assert!(write_referral(&dir, &["uid=a,dc=local,dc=org"]).is_none());
    assert!(write_referral(&dir, &["not a dn"]).is_none());
    // A move from a local context into the replicated one is referred too.
    assert!(write_referral(&dir, &["uid=a,dc=local,dc=org", "dc=example,dc=com"]).is_some());
}

#[test]
fn provider_urls() {
    let u = ProviderUrl::parse("ldap://127.0.0.1:3890").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 3890, false));
    assert!(u.is_loopback());
    let u = ProviderUrl::parse("ldaps://ldap.example.com/").unwrap();
    assert_eq!((u.port, u.tls, u.is_loopback()), (636, true, false));
    assert!(ProviderUrl::parse("ldapi:///run/slapd").is_err());
    assert!(ProviderUrl::parse("ldap://host:0").is_err());
    assert!(ProviderUrl::parse("ldap://host/dc=x").is_err());
    assert!(ProviderUrl::parse("ldap://").is_err());
}

#[test]
fn cookie_csns() {
    assert_eq!(
        cookie_csn(b"rid=000,csn=20261206021419.123456Z#000000#000#000000").as_deref(),
        Some("20261206021419.123456Z#000000#000#000000")
    );
    assert_eq!(cookie_csn(b"rid=001,sid=002,csn=a;b").as_deref(), Some("a"));
    assert_eq!(cookie_csn(b"rid=000"), None);
    assert_eq!(cookie_csn(&[0xff, 0xfe]), None);
}

#[test]
fn referrals_name_the_entry() {
    assert_eq!(
        referral_url("ldap://provider:389", "uid=a b,dc=example,dc=com"),
        "ldap://provider:389/uid=a%20b,dc=example,dc=com"
    );
    assert_eq!(referral_url("ldaps://p/", "cn=x"), "ldaps://p/cn=x");
    assert_eq!(
        referral_url("ldap://p/dc=other", "cn=x"),
        "ldap://p/dc=other"
    );
}
