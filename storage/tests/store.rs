//! The entry store end to end: layout on disk, adds and lookups, searches in every scope and
//! their plans, bulk loading, reopening, reindexing and verify.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use roster_schema::{AttrDesc, Attribute, Dn, Entry, Filter, Schema};
use roster_storage::{
    CandidateSource, Durability, EntryId, IndexSpec, IndexUse, Scope, Store, StoreConfig,
    StoreError,
};
use std::path::Path;
use std::sync::Arc;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::builtin())
}

fn spec(attr: &str, eq: bool, pres: bool, sub: bool) -> IndexSpec {
    IndexSpec {
        attr: attr.into(),
        equality: eq,
        presence: pres,
        substring: sub,
    }
}

fn default_indexes() -> Vec<IndexSpec> {
    vec![
        spec("objectClass", true, false, false),
        spec("uid", true, false, true),
        spec("mail", true, true, true),
        spec("cn", true, false, true),
        spec("member", true, false, false),
    ]
}

fn config(path: &Path, indexes: Vec<IndexSpec>) -> StoreConfig {
    StoreConfig {
        change_log: roster_storage::DEFAULT_CHANGE_LOG,
        keep_csn: false,
        cache_size: roster_storage::DEFAULT_CACHE_SIZE,
        path: path.to_path_buf(),
        indexes,
        durability: Durability::Buffer,
        integrity: vec!["member".into()],
        unique: Vec::new(),
    }
}

/// An entry as read, without the `entryCSN` every write stamps.
fn without_csn(schema: &Schema, mut e: Entry) -> Entry {
    let csn = schema.attr_id("entryCSN").unwrap();
    e.attrs.retain(|a| a.desc.id != csn);
    e
}

fn ndn(schema: &Schema, dn: &str) -> roster_schema::dn::NormDn {
    Dn::parse(dn).unwrap().normalize(schema).unwrap()
}

fn entry(schema: &Schema, dn: &str, attrs: &[(&str, &str)]) -> Entry {
    let dn = Dn::parse(dn).unwrap();
    let ndn = dn.normalize(schema).unwrap();
    let mut out: Vec<Attribute> = Vec::new();
    for (name, value) in attrs {
        let desc =
            AttrDesc::parse(schema, name).unwrap_or_else(|| panic!("unknown attribute {name}"));
        match out.iter_mut().find(|a| a.desc == desc) {
            Some(a) => a.values.push(value.as_bytes().to_vec()),
            None => out.push(Attribute {
                desc,
                values: vec![value.as_bytes().to_vec()],
            }),
        }
    }
    Entry {
        dn,
        ndn,
        attrs: out,
    }
}

fn user(schema: &Schema, i: u32) -> Entry {
    let uid = format!("user{i:04}");
    let dn = format!("uid={uid},ou=people,dc=example,dc=com");
    let mail = format!("{uid}@example.com");
    let alias = format!("a.{uid}@example.com");
    let cn = format!("User {i} Smith{}", i % 7);
    let sn = format!("Smith{}", i % 7);
    entry(
        schema,
        &dn,
        &[
            ("objectClass", "top"),
            ("objectClass", "person"),
            ("objectClass", "organizationalPerson"),
            ("objectClass", "inetOrgPerson"),
            ("uid", &uid),
            ("cn", &cn),
            ("sn", &sn),
            ("mail", &mail),
            ("mail", &alias),
        ],
    )
}

fn group(schema: &Schema, g: u32, members: std::ops::Range<u32>) -> Entry {
    let dn = format!("cn=group{g},ou=groups,dc=example,dc=com");
    let cn = format!("group{g}");
    let mail = format!("group{g}@example.com");
    let member_dns: Vec<String> = members
        .map(|i| format!("uid=user{i:04},ou=people,dc=example,dc=com"))
        .collect();
    let mut attrs: Vec<(&str, &str)> = vec![
        ("objectClass", "top"),
        ("objectClass", "groupOfNames"),
        ("cn", &cn),
        ("mail", &mail),
    ];
    for m in &member_dns {
        attrs.push(("member", m));
    }
    entry(schema, &dn, &attrs)
}

fn skeleton(schema: &Schema) -> Vec<Entry> {
    vec![
        entry(
            schema,
            "dc=example,dc=com",
            &[
                ("objectClass", "top"),
                ("objectClass", "dcObject"),
                ("objectClass", "organization"),
                ("dc", "example"),
                ("o", "Example"),
            ],
        ),
        entry(
            schema,
            "ou=people,dc=example,dc=com",
            &[("objectClass", "organizationalUnit"), ("ou", "people")],
        ),
        entry(
            schema,
            "ou=groups,dc=example,dc=com",
            &[("objectClass", "organizationalUnit"), ("ou", "groups")],
        ),
    ]
}

/// A store with the skeleton, `users` users and a group of the first ten users, added one by one.
fn populated(path: &Path, indexes: Vec<IndexSpec>, users: u32) -> Store {
    let schema = schema();
    let store = Store::open(&config(path, indexes), schema.clone()).unwrap();
    let mut sk = skeleton(&schema).into_iter();
    store.add_root(sk.next().unwrap()).unwrap();
    for e in sk {
        store.add(e).unwrap();
    }
    for i in 0..users {
        store.add(user(&schema, i)).unwrap();
    }
    store.add(group(&schema, 0, 0..10.min(users))).unwrap();
    store
}

fn search_dns(store: &Store, base: &str, scope: Scope, filter: &str) -> Vec<String> {
    let schema = store.schema().clone();
    let f = Filter::parse(filter).unwrap().compile(&schema);
    let reader = store.reader();
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for item in reader.search(&ndn(&schema, base), scope, &f).unwrap() {
        let (id, e) = item.unwrap();
        ids.push(id);
        out.push(e.ndn.to_string());
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "results come in id order");
    out
}

fn plan(store: &Store, base: &str, scope: Scope, filter: &str) -> roster_storage::SearchPlan {
    let schema = store.schema().clone();
    let f = Filter::parse(filter).unwrap().compile(&schema);
    store.reader().plan(&ndn(&schema, base), scope, &f).unwrap()
}

#[test]
fn add_lookup_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path(), default_indexes(), 20);
    let schema = store.schema().clone();
    let reader = store.reader();

    let people = reader
        .lookup(&ndn(&schema, "OU=People,DC=Example,DC=COM"))
        .unwrap()
        .unwrap();
    let (id, e) = reader
        .entry_by_dn(&ndn(&schema, "uid=user0003,ou=people,dc=example,dc=com"))
        .unwrap()
        .unwrap();
    assert_eq!(without_csn(&schema, e.clone()), user(&schema, 3));
    assert_eq!(reader.get(id).unwrap().unwrap(), e);
    assert!(reader.get(EntryId(9999)).unwrap().is_none());
    assert!(reader.has_children(people).unwrap());
    assert!(!reader.has_children(id).unwrap());
    assert_eq!(reader.count_children(people).unwrap(), 20);

    let missing = ndn(&schema, "uid=x,ou=nothing,ou=people,dc=example,dc=com");
    assert!(reader.lookup(&missing).unwrap().is_none());
    let matched = reader.matched_dn(&missing).unwrap().unwrap();
    assert_eq!(matched.to_string(), "ou=people,dc=example,dc=com");
    assert!(reader
        .matched_dn(&ndn(&schema, "dc=other"))
        .unwrap()
        .is_none());

    // Errors an add can meet.
    assert!(matches!(
        store.add(user(&schema, 3)),
        Err(StoreError::AlreadyExists { .. })
    ));
    let orphan = entry(
        &schema,
        "uid=x,ou=nowhere,dc=example,dc=com",
        &[("objectClass", "account"), ("uid", "x")],
    );
    match store.add(orphan) {
        Err(e @ StoreError::NoSuchParent { .. }) => {
            assert!(e.to_string().contains("uid=x,ou=nowhere"))
        }
        other => panic!("expected NoSuchParent, got {other:?}"),
    }
    assert!(!StoreError::NoSuchParent { dn: String::new() }.is_fatal());
    // A second root is allowed when the caller says so.
    store
        .add_root(entry(
            &schema,
            "dc=org",
            &[("objectClass", "domain"), ("dc", "org")],
        ))
        .unwrap();
    let walked: Vec<String> = store
        .dump_iter()
        .unwrap()
        .map(|r| r.unwrap().1.ndn.to_string())
        .collect();
    assert_eq!(walked.len(), 3 + 20 + 1 + 1);
    // Each parent comes before its children.
    for (i, dn) in walked.iter().enumerate() {
        if let Some((_, parent)) = dn.split_once(',') {
            if parent != "dc=com" && dn != "dc=org" {
                assert!(
                    walked[..i].contains(&parent.to_string()),
                    "{dn} before its parent"
                );
            }
        }
    }
    // The snapshot taken before the last add does not see it.
    assert!(reader.lookup(&ndn(&schema, "dc=org")).unwrap().is_none());
    assert!(store
        .reader()
        .lookup(&ndn(&schema, "dc=org"))
        .unwrap()
        .is_some());
}

#[test]
fn search_in_every_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path(), default_indexes(), 30);
    let all = "(objectClass=*)";
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::Base, all),
        vec!["dc=example,dc=com"]
    );
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::One, all).len(),
        2
    );
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::Subtree, all).len(),
        3 + 30 + 1
    );
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::Children, all).len(),
        2 + 30 + 1
    );
    assert_eq!(
        search_dns(&store, "ou=people,dc=example,dc=com", Scope::One, all).len(),
        30
    );
    assert!(search_dns(
        &store,
        "ou=groups,dc=example,dc=com",
        Scope::Base,
        "(mail=user0001@example.com)"
    )
    .is_empty());

    let one = search_dns(
        &store,
        "dc=example,dc=com",
        Scope::Subtree,
        "(mail=USER0007@example.com)",
    );
    assert_eq!(one, vec!["uid=user0007,ou=people,dc=example,dc=com"]);
    // In scope is checked for index candidates too.
    assert!(search_dns(
        &store,
        "ou=groups,dc=example,dc=com",
        Scope::Subtree,
        "(mail=user0007@example.com)"
    )
    .is_empty());
    assert_eq!(
        search_dns(
            &store,
            "ou=groups,dc=example,dc=com",
            Scope::One,
            "(mail=group0@example.com)"
        )
        .len(),
        1
    );
    let members = search_dns(
        &store,
        "dc=example,dc=com",
        Scope::Subtree,
        "(member=UID=user0004,ou=people,dc=example,dc=com)",
    );
    assert_eq!(members, vec!["cn=group0,ou=groups,dc=example,dc=com"]);

    let schema = store.schema().clone();
    let f = Filter::parse(all).unwrap().compile(&schema);
    match store.reader().search(
        &ndn(&schema, "ou=nothing,dc=example,dc=com"),
        Scope::Subtree,
        &f,
    ) {
        Err(StoreError::NoSuchObject { dn }) => assert_eq!(dn, "ou=nothing,dc=example,dc=com"),
        other => panic!("expected NoSuchObject, got {:?}", other.map(|_| ())),
    }

    // Resuming a paged search skips the earlier ids.
    let reader = store.reader();
    let base = ndn(&schema, "ou=people,dc=example,dc=com");
    let ids: Vec<EntryId> = reader
        .search(&base, Scope::One, &f)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    let rest: Vec<EntryId> = reader
        .search(&base, Scope::One, &f)
        .unwrap()
        .starting_at(ids[10])
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(rest, ids[10..].to_vec());
}

/// The same searches on a store without indexes give the same answers: indexes only narrow.
#[test]
fn indexed_and_unindexed_answers_agree() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let indexed = populated(a.path(), default_indexes(), 60);
    let plain = populated(b.path(), Vec::new(), 60);
    let filters = [
        "(mail=user0042@example.com)",
        "(mail=*)",
        "(uid=user00*)",
        "(mail=*0@example.com)",
        "(cn=*smith3*)",
        "(cn=user 1*smith*)",
        "(&(objectClass=person)(cn=*smith2))",
        "(|(uid=user0001)(mail=a.user0002@example.com)(cn=group0))",
        "(!(uid=user0001))",
        "(&(objectClass=inetOrgPerson)(!(mail=user0003@example.com)))",
        "(name=user 5 smith5)",
        "(sn=smith4)",
        "(member=uid=user0009,ou=people,dc=example,dc=com)",
        "(objectClass=groupOfNames)",
        "(uid=nobody)",
        "(&(mail=user0001@example.com)(uid=user0002))",
    ];
    for f in filters {
        for scope in [Scope::Subtree, Scope::One, Scope::Children] {
            for base in ["dc=example,dc=com", "ou=people,dc=example,dc=com"] {
                let want = search_dns(&plain, base, scope, f);
                let got = search_dns(&indexed, base, scope, f);
                assert_eq!(got, want, "{f} under {base} {scope:?}");
            }
        }
    }
    assert_eq!(
        search_dns(
            &indexed,
            "dc=example,dc=com",
            Scope::Subtree,
            "(cn=*smith3*)"
        )
        .len(),
        9
    );
}

#[test]
fn plans_use_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path(), default_indexes(), 40);
    let base = "dc=example,dc=com";

    let p = plan(&store, base, Scope::Subtree, "(mail=user0007@example.com)");
    assert_eq!(p.source, CandidateSource::Index { ids: 1 });
    assert!(matches!(&p.index, IndexUse::Equality { attr, ids: 1 } if attr == "mail"));

    // The selective part is read first, and objectClass is not read once few remain.
    let p = plan(
        &store,
        base,
        Scope::Subtree,
        "(&(objectClass=inetOrgPerson)(mail=user0007@example.com))",
    );
    assert_eq!(p.source, CandidateSource::Index { ids: 1 });
    assert!(matches!(&p.index, IndexUse::And(parts) if parts.len() == 1));

    let p = plan(&store, base, Scope::Subtree, "(description=x)");
    assert_eq!(p.index, IndexUse::All);
    assert_eq!(p.source, CandidateSource::Subtree { ids: 3 + 40 + 1 });
    let p = plan(
        &store,
        "ou=people,dc=example,dc=com",
        Scope::One,
        "(!(mail=x))",
    );
    assert_eq!(p.source, CandidateSource::Children { ids: 40 });
    let p = plan(&store, base, Scope::Base, "(mail=x)");
    assert_eq!(p.source, CandidateSource::Base);

    let p = plan(&store, base, Scope::Subtree, "(uid=user001*)");
    assert!(
        matches!(&p.index, IndexUse::Substrings { ids: 10, .. }),
        "{p:?}"
    );
    let p = plan(&store, base, Scope::Subtree, "(mail=*7@example.com)");
    assert!(
        matches!(&p.index, IndexUse::Substrings { ids: 4, .. }),
        "{p:?}"
    );
    let p = plan(&store, base, Scope::Subtree, "(cn=*er 12 smi*)");
    assert!(
        matches!(&p.index, IndexUse::Substrings { ids: 1, .. }),
        "{p:?}"
    );
    let p = plan(&store, base, Scope::Subtree, "(mail=*)");
    assert!(
        matches!(&p.index, IndexUse::Presence { ids: 41, .. }),
        "{p:?}"
    );

    let p = plan(
        &store,
        base,
        Scope::Subtree,
        "(|(uid=user0001)(uid=user0002))",
    );
    assert_eq!(p.source, CandidateSource::Index { ids: 2 });
    // One unindexed branch makes an OR read the whole scope.
    let p = plan(
        &store,
        base,
        Scope::Subtree,
        "(|(uid=user0001)(description=x))",
    );
    assert_eq!(p.source, CandidateSource::Subtree { ids: 44 });
    // `name` has subtypes that are not indexed (sn): no narrowing.
    let p = plan(&store, base, Scope::Subtree, "(name=group0)");
    assert_eq!(p.index, IndexUse::All);
    // An undefined attribute can match nothing.
    let p = plan(
        &store,
        base,
        Scope::Subtree,
        "(&(noSuchAttribute=1)(mail=*))",
    );
    assert_eq!(p.source, CandidateSource::Index { ids: 0 });
    assert!(format!("{p:?}").contains("SearchPlan"));
}

#[test]
fn reopen_after_close_and_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = populated(dir.path(), default_indexes(), 5);
    let last = store
        .reader()
        .lookup(&ndn(&schema, "cn=group0,ou=groups,dc=example,dc=com"))
        .unwrap()
        .unwrap();
    store.close().unwrap();

    // Reopened with every commit synced to disk.
    let synced = StoreConfig {
        durability: Durability::SyncData,
        ..config(dir.path(), default_indexes())
    };
    let store = Store::open(&synced, schema.clone()).unwrap();
    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(objectClass=*)"
        )
        .len(),
        9
    );
    // Ids continue after the highest stored one.
    let id = store.add(user(&schema, 100)).unwrap();
    assert!(id > last);
    drop(store);

    // Dropped without close: the journal is replayed.
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    assert_eq!(
        store
            .reader()
            .lookup(&ndn(&schema, "uid=user0100,ou=people,dc=example,dc=com"))
            .unwrap(),
        Some(id)
    );
    assert!(store.verify().unwrap().is_clean());
    store.close().unwrap();
}

#[test]
fn reindex_on_configuration_change() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let before = vec![
        spec("mail", true, false, false),
        spec("objectClass", true, false, false),
    ];
    let store = populated(dir.path(), before, 30);
    store.close().unwrap();

    // A keyspace left by an interrupted build of the cn index must not be reused.
    {
        let db = fjall::SingleWriterTxDatabase::builder(dir.path())
            .open()
            .unwrap();
        let stray = db
            .keyspace("ix:2.5.4.3:0", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let mut junk = b"ejunk\0".to_vec();
        junk.extend_from_slice(&1u64.to_be_bytes());
        stray.insert(junk, []).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }

    // Substrings on cn added (by OID), mail dropped.
    let after = vec![
        spec("2.5.4.3", true, false, true),
        spec("objectClass", true, false, false),
    ];
    let store = Store::open(&config(dir.path(), after.clone()), schema.clone()).unwrap();
    let p = plan(&store, "dc=example,dc=com", Scope::Subtree, "(cn=*smith2*)");
    assert!(matches!(&p.index, IndexUse::Substrings { .. }), "{p:?}");
    let p = plan(
        &store,
        "dc=example,dc=com",
        Scope::Subtree,
        "(mail=user0001@example.com)",
    );
    assert_eq!(p.index, IndexUse::All);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
    // member's equality index is kept whatever the configuration says (memberOf, integrity).
    assert_eq!(report.keyspaces.len(), 5);
    store.close().unwrap();

    // The same configuration again: nothing to rebuild, still clean.
    let store = Store::open(&config(dir.path(), after), schema.clone()).unwrap();
    assert!(store.verify().unwrap().is_clean());
    store.close().unwrap();

    // Only the current generation of each configured index is left.
    {
        let db = fjall::SingleWriterTxDatabase::builder(dir.path())
            .open()
            .unwrap();
        let mut names: Vec<String> = db
            .list_keyspace_names()
            .iter()
            .map(|n| n.to_string())
            .filter(|n| n.starts_with("ix:"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "ix:2.5.4.0:0".to_string(),
                "ix:2.5.4.31:0".to_string(),
                "ix:2.5.4.3:1".to_string()
            ]
        );
    }

    let unknown = vec![spec("noSuchAttribute", true, false, false)];
    assert!(matches!(
        Store::open(&config(dir.path(), unknown), schema),
        Err(StoreError::UnknownIndexAttribute { .. })
    ));
}

#[test]
fn verify_finds_a_broken_index() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = populated(dir.path(), default_indexes(), 10);
    assert!(store.verify().unwrap().is_clean());
    let target = store
        .reader()
        .lookup(&ndn(&schema, "uid=user0004,ou=people,dc=example,dc=com"))
        .unwrap()
        .unwrap();
    store.close().unwrap();

    // Remove one equality key of mail and add a key for an entry that does not exist.
    {
        let db = fjall::SingleWriterTxDatabase::builder(dir.path())
            .open()
            .unwrap();
        let mail_oid = schema.attribute("mail").unwrap().oid.clone();
        let ix = db
            .keyspace(
                &format!("ix:{mail_oid}:0"),
                fjall::KeyspaceCreateOptions::default,
            )
            .unwrap();
        let mut gone = b"euser0004@example.com\0".to_vec();
        gone.extend_from_slice(&target.get().to_be_bytes());
        assert!(
            ix.get(&gone).unwrap().is_some(),
            "layout changed: equality key not found"
        );
        ix.remove(gone).unwrap();
        let mut extra = b"eghost@example.com\0".to_vec();
        extra.extend_from_slice(&999u64.to_be_bytes());
        ix.insert(extra, []).unwrap();
    }

    let store = Store::open(&config(dir.path(), default_indexes()), schema).unwrap();
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    let mail = report
        .keyspaces
        .iter()
        .find(|k| k.name.starts_with("index mail"))
        .unwrap();
    assert_eq!((mail.missing, mail.extra), (1, 1), "{report}");
    assert!(
        mail.missing_examples[0].contains("user0004@example.com"),
        "{report}"
    );
    assert!(
        mail.extra_examples[0].contains("ghost@example.com"),
        "{report}"
    );
    assert!(report
        .keyspaces
        .iter()
        .filter(|k| !k.name.starts_with("index mail"))
        .all(|k| k.missing == 0 && k.extra == 0));
    // A stray key naming no entry does not break searches.
    assert!(search_dns(
        &store,
        "dc=example,dc=com",
        Scope::Subtree,
        "(mail=ghost@example.com)"
    )
    .is_empty());
    // The missing key makes the indexed search miss the entry: that is what verify is for.
    assert!(search_dns(
        &store,
        "dc=example,dc=com",
        Scope::Subtree,
        "(mail=user0004@example.com)"
    )
    .is_empty());
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(&config(dir.path(), Vec::new()), schema())
        .unwrap()
        .close()
        .unwrap();
    {
        let db = fjall::SingleWriterTxDatabase::builder(dir.path())
            .open()
            .unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        assert_eq!(
            meta.get("format").unwrap().unwrap().as_ref(),
            &1u32.to_be_bytes()
        );
        meta.insert("format", 99u32.to_be_bytes()).unwrap();
    }
    match Store::open(&config(dir.path(), Vec::new()), schema()) {
        Err(e @ StoreError::UnsupportedFormat { found: 99, .. }) => assert!(e.is_fatal()),
        other => panic!("expected UnsupportedFormat, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn bulk_load() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    let mut loader = store.bulk_loader().unwrap();
    let mut sk = skeleton(&schema).into_iter();
    loader.add_root(sk.next().unwrap()).unwrap();
    for e in sk {
        loader.add(e).unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..500 {
        ids.push(loader.add(user(&schema, i)).unwrap());
    }
    for g in 0..10 {
        loader.add(group(&schema, g, g * 50..g * 50 + 50)).unwrap();
    }
    // Failures name the entry and leave the loader usable.
    let orphan = entry(
        &schema,
        "uid=x,ou=nowhere,dc=example,dc=com",
        &[("objectClass", "account"), ("uid", "x")],
    );
    match loader.add(orphan) {
        Err(e @ StoreError::NoSuchParent { .. }) => assert!(e.to_string().contains("ou=nowhere")),
        other => panic!("expected NoSuchParent, got {other:?}"),
    }
    assert!(matches!(
        loader.add(user(&schema, 7)),
        Err(StoreError::AlreadyExists { .. })
    ));
    let stats = loader.finish().unwrap();
    assert_eq!(stats.entries, 3 + 500 + 10);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in load order");

    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(mail=user0321@example.com)"
        )
        .len(),
        1
    );
    assert_eq!(
        search_dns(
            &store,
            "ou=people,dc=example,dc=com",
            Scope::One,
            "(objectClass=*)"
        )
        .len(),
        500
    );
    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(member=uid=user0321,ou=people,dc=example,dc=com)"
        )
        .len(),
        1
    );
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.entries, 513);

    // A second load into a non-empty store, in many small runs merged at the end, then single
    // adds, all consistent.
    let mut loader = store.bulk_loader().unwrap().with_run_bytes(16 * 1024);
    for i in 500..600 {
        loader.add(user(&schema, i)).unwrap();
    }
    assert!(matches!(
        loader.add(user(&schema, 1)),
        Err(StoreError::AlreadyExists { .. })
    ));
    loader.finish().unwrap();
    let id = store.add(user(&schema, 600)).unwrap();
    assert!(id > *ids.last().unwrap());
    assert!(store.verify().unwrap().is_clean());
    let dumped: Vec<EntryId> = store.dump_iter().unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(dumped.len(), 3 + 601 + 10);
    store.close().unwrap();
    let store = Store::open(&config(dir.path(), default_indexes()), schema).unwrap();
    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(uid=user0599)"
        )
        .len(),
        1
    );
}

#[test]
fn bulk_load_survives_drop_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    {
        let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
        let mut loader = store.bulk_loader().unwrap();
        let mut sk = skeleton(&schema).into_iter();
        loader.add_root(sk.next().unwrap()).unwrap();
        for e in sk {
            loader.add(e).unwrap();
        }
        for i in 0..50 {
            loader.add(user(&schema, i)).unwrap();
        }
        loader.finish().unwrap();
        store.add(user(&schema, 50)).unwrap();
    }
    let store = Store::open(&config(dir.path(), default_indexes()), schema).unwrap();
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::Subtree, "(uid=user00*)").len(),
        51
    );
    assert!(store.verify().unwrap().is_clean());
}

/// DN values holding 0x00 and 0x01 bytes keep the subtree prefix property.
#[test]
fn awkward_dn_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    store
        .add_root(entry(
            &schema,
            "dc=com",
            &[("objectClass", "domain"), ("dc", "com")],
        ))
        .unwrap();
    store
        .add(entry(
            &schema,
            "ou=a\\00b,dc=com",
            &[("objectClass", "organizationalUnit"), ("ou", "a\u{0}b")],
        ))
        .unwrap();
    store
        .add(entry(
            &schema,
            "ou=a,dc=com",
            &[("objectClass", "organizationalUnit"), ("ou", "a")],
        ))
        .unwrap();
    store
        .add(entry(
            &schema,
            "cn=x,ou=a\\00b,dc=com",
            &[("objectClass", "device"), ("cn", "x")],
        ))
        .unwrap();
    store
        .add(entry(
            &schema,
            "cn=y,ou=a,dc=com",
            &[("objectClass", "device"), ("cn", "y")],
        ))
        .unwrap();
    let under_a = search_dns(&store, "ou=a,dc=com", Scope::Subtree, "(objectClass=*)");
    assert_eq!(under_a.len(), 2, "{under_a:?}");
    let under_nul = search_dns(
        &store,
        "ou=a\\00b,dc=com",
        Scope::Subtree,
        "(objectClass=*)",
    );
    assert_eq!(under_nul.len(), 2, "{under_nul:?}");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send_sync::<roster_storage::Reader>();
    send::<roster_storage::SearchIter>();
    send::<roster_storage::WalkIter>();
    send_sync::<StoreError>();
}

#[test]
fn a_stop_check_ends_a_scan_between_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path(), default_indexes(), 300);
    let schema = store.schema().clone();
    // No entry matches, so without the check one `next` would scan all 300 users.
    let f = Filter::parse("(description=no such value)")
        .unwrap()
        .compile(&schema);
    let reader = store.reader();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let mut it = reader
        .search(&ndn(&schema, "dc=example,dc=com"), Scope::Subtree, &f)
        .unwrap()
        .with_stop(move || counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 1);
    match it.next() {
        Some(Err(StoreError::Stopped)) => {}
        other => panic!(
            "expected the search to stop, got {:?}",
            other.map(|r| r.map(|(id, _)| id))
        ),
    }
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert!(it.next().is_none(), "a stopped search yields nothing more");
    // Without a stop check the same search simply finds nothing.
    assert!(search_dns(
        &store,
        "dc=example,dc=com",
        Scope::Subtree,
        "(description=no such value)"
    )
    .is_empty());
}

/// Verify finds every keyspace as the entries call for; returns the index keys stored.
fn assert_clean(store: &Store) -> u64 {
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
    report
        .keyspaces
        .iter()
        .filter(|k| k.name.starts_with("index"))
        .map(|k| k.found)
        .sum()
}

fn count(store: &Store, filter: &str) -> usize {
    search_dns(store, "dc=example,dc=com", Scope::Subtree, filter).len()
}

#[test]
fn delete_removes_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = populated(dir.path(), default_indexes(), 10);
    let before = assert_clean(&store);
    assert_eq!(count(&store, "(objectClass=inetOrgPerson)"), 10);
    assert_eq!(count(&store, "(mail=user0004@example.com)"), 1);
    let people = store
        .reader()
        .lookup(&ndn(&schema, "ou=people,dc=example,dc=com"))
        .unwrap()
        .unwrap();

    let dn = ndn(&schema, "UID=User0004,ou=people,dc=example,dc=com");
    let old_reader = store.reader();
    let (gone, _) = store.delete(&dn, &|_| {}).unwrap();
    assert_eq!(without_csn(&schema, gone), user(&schema, 4));
    let after = assert_clean(&store);
    assert!(after < before, "index keys {before} -> {after}");

    assert!(store.reader().lookup(&dn).unwrap().is_none());
    assert_eq!(store.reader().count_children(people).unwrap(), 9);
    assert_eq!(count(&store, "(objectClass=inetOrgPerson)"), 9);
    assert_eq!(count(&store, "(mail=user0004@example.com)"), 0);
    assert_eq!(count(&store, "(mail=*)"), 9 + 1);
    assert_eq!(count(&store, "(cn=User 4 *)"), 0);
    assert_eq!(count(&store, "(uid=*er0004)"), 0);
    // Its group no longer lists it (referential integrity), in the same commit.
    assert_eq!(
        count(&store, "(member=uid=user0004,ou=people,dc=example,dc=com)"),
        0
    );
    assert_eq!(count(&store, "(member=*)"), 1);
    assert_eq!(
        search_dns(
            &store,
            "ou=people,dc=example,dc=com",
            Scope::One,
            "(objectClass=*)"
        )
        .len(),
        9
    );
    // A snapshot taken before the delete still sees the entry.
    assert!(old_reader.lookup(&dn).unwrap().is_some());
    assert_eq!(old_reader.count_children(people).unwrap(), 10);
    drop(old_reader);

    // Deleting it again, or something that never existed.
    match store.delete(&dn, &|_| {}) {
        Err(e @ StoreError::NoSuchObject { .. }) => {
            assert!(!e.is_fatal());
            assert!(e.to_string().contains("uid=user0004"), "{e}");
        }
        other => panic!("expected NoSuchObject, got {other:?}"),
    }
    assert!(matches!(
        store.delete(&ndn(&schema, "uid=x,ou=nowhere,dc=example,dc=com"), &|_| {}),
        Err(StoreError::NoSuchObject { .. })
    ));

    // An entry with children is refused and left as it was.
    for parent in ["ou=people,dc=example,dc=com", "dc=example,dc=com"] {
        match store.delete(&ndn(&schema, parent), &|_| {}) {
            Err(e @ StoreError::NotAllowedOnNonLeaf { .. }) => {
                assert!(!e.is_fatal());
                assert!(e.to_string().contains(parent), "{e}");
            }
            other => panic!("expected NotAllowedOnNonLeaf, got {other:?}"),
        }
    }
    assert_eq!(assert_clean(&store), after);
    assert!(store
        .reader()
        .lookup(&ndn(&schema, "ou=people,dc=example,dc=com"))
        .unwrap()
        .is_some());

    // The DN can be added again (with a new id), and a whole branch deleted leaf first. The
    // group's member value is not restored: one key fewer than before.
    let id = store.add(user(&schema, 4)).unwrap();
    assert_eq!(assert_clean(&store), before - 1);
    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(mail=user0004@example.com)"
        ),
        vec!["uid=user0004,ou=people,dc=example,dc=com"]
    );
    assert_eq!(store.reader().lookup(&dn).unwrap(), Some(id));
    store
        .delete(
            &ndn(&schema, "cn=group0,ou=groups,dc=example,dc=com"),
            &|_| {},
        )
        .unwrap();
    store
        .delete(&ndn(&schema, "ou=groups,dc=example,dc=com"), &|_| {})
        .unwrap();
    assert_eq!(count(&store, "(objectClass=groupOfNames)"), 0);
    assert_eq!(count(&store, "(member=*)"), 0);
    assert_clean(&store);
    store.close().unwrap();

    // The result survives a reopen, and a delete dropped without close is replayed.
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    assert!(store
        .reader()
        .lookup(&ndn(&schema, "ou=groups,dc=example,dc=com"))
        .unwrap()
        .is_none());
    assert_eq!(count(&store, "(objectClass=*)"), 2 + 10);
    store
        .delete(
            &ndn(&schema, "uid=user0009,ou=people,dc=example,dc=com"),
            &|_| {},
        )
        .unwrap();
    drop(store);
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    assert_eq!(count(&store, "(objectClass=*)"), 2 + 9);
    assert_eq!(count(&store, "(uid=user0009)"), 0);
    assert_clean(&store);
    store.close().unwrap();
}

#[test]
fn replace_writes_the_index_differences() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = populated(dir.path(), default_indexes(), 10);
    let before = assert_clean(&store);
    let dn = ndn(&schema, "uid=user0003,ou=people,dc=example,dc=com");
    let id = store.reader().lookup(&dn).unwrap().unwrap();

    // Drop the alias and one cn, add a mail value and a cn value.
    let mail = AttrDesc::parse(&schema, "mail").unwrap();
    let cn = AttrDesc::parse(&schema, "cn").unwrap();
    let mut new = user(&schema, 3);
    for a in &mut new.attrs {
        if a.desc == mail {
            a.values.retain(|v| !v.starts_with(b"a."));
            a.values.push(b"Renamed.Three@Example.ORG".to_vec());
        } else if a.desc == cn {
            a.values = vec![b"Third Renamed".to_vec()];
        }
    }
    store.replace(&dn, new.clone()).unwrap();
    assert_clean(&store);
    let reader = store.reader();
    assert_eq!(reader.lookup(&dn).unwrap(), Some(id), "the id is kept");
    assert_eq!(without_csn(&schema, reader.get(id).unwrap().unwrap()), new);
    drop(reader);
    let user3 = vec!["uid=user0003,ou=people,dc=example,dc=com".to_string()];
    let dns = |f: &str| search_dns(&store, "dc=example,dc=com", Scope::Subtree, f);
    assert_eq!(dns("(mail=renamed.three@example.org)"), user3);
    assert_eq!(dns("(mail=renamed.*)"), user3);
    assert_eq!(dns("(mail=*@example.org)"), user3);
    assert_eq!(dns("(cn=*third*)"), user3);
    assert_eq!(
        dns("(mail=user0003@example.com)"),
        user3,
        "unchanged value kept"
    );
    assert!(dns("(mail=a.user0003@example.com)").is_empty());
    assert!(dns("(mail=a.user0003*)").is_empty());
    assert!(dns("(cn=User 3 Smith3)").is_empty());
    assert!(dns("(cn=*r 3 Sm*)").is_empty());
    // Same number of mail and cn values as before: the same number of equality keys, and
    // the entry still has its place in the tree.
    assert_eq!(
        search_dns(
            &store,
            "ou=people,dc=example,dc=com",
            Scope::One,
            "(uid=user0003)"
        ),
        user3
    );

    // Removing every mail value removes the presence key too; putting the entry back as it
    // was gives the original keys.
    let mut no_mail = user(&schema, 3);
    no_mail.attrs.retain(|a| a.desc != mail);
    store.replace(&dn, no_mail).unwrap();
    assert_clean(&store);
    assert_eq!(count(&store, "(mail=*)"), 9 + 1);
    assert!(dns("(mail=user0003@example.com)").is_empty());
    store.replace(&dn, user(&schema, 3)).unwrap();
    assert_eq!(assert_clean(&store), before);
    assert_eq!(count(&store, "(mail=*)"), 10 + 1);

    // Errors: another DN, a missing entry. Nothing changes.
    assert!(matches!(
        store.replace(&dn, user(&schema, 4)),
        Err(StoreError::InvalidEntry { .. })
    ));
    let missing = ndn(&schema, "uid=user0077,ou=people,dc=example,dc=com");
    assert!(matches!(
        store.replace(&missing, user(&schema, 77)),
        Err(StoreError::NoSuchObject { .. })
    ));
    assert_eq!(assert_clean(&store), before);

    // A replace survives close and reopen.
    store.replace(&dn, new.clone()).unwrap();
    store.close().unwrap();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    assert_eq!(
        without_csn(&schema, store.reader().get(id).unwrap().unwrap()),
        new
    );
    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(mail=renamed.three@example.org)"
        ),
        user3
    );
    assert_clean(&store);
    store.close().unwrap();
}

/// `e` under a new DN, with the RDN's attribute value set to the new one (what ModifyDN with
/// deleteOldRDN stores).
fn with_dn(schema: &Schema, mut e: Entry, dn: &str) -> Entry {
    let parsed = Dn::parse(dn).unwrap();
    let rdn = parsed.to_string();
    let (ava, _) = rdn.split_once(',').unwrap_or((&rdn, ""));
    let (attr, value) = ava.split_once('=').unwrap();
    let desc = AttrDesc::parse(schema, attr).unwrap();
    if let Some(a) = e.attrs.iter_mut().find(|a| a.desc == desc) {
        a.values = vec![value.as_bytes().to_vec()];
    }
    e.ndn = parsed.normalize(schema).unwrap();
    e.dn = parsed;
    e
}

#[test]
fn rename_a_leaf_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = populated(dir.path(), default_indexes(), 10);
    let before = assert_clean(&store);
    let old = ndn(&schema, "uid=user0003,ou=people,dc=example,dc=com");
    let id = store.reader().lookup(&old).unwrap().unwrap();
    let new_dn = "uid=three,ou=people,dc=example,dc=com";
    let renamed = with_dn(&schema, user(&schema, 3), new_dn);
    store.rename(&old, renamed.clone(), None, &|_| {}).unwrap();
    // uid keys: e, b and f, and the grams of "user0003" (6) replaced by those of "three" (3).
    assert_eq!(assert_clean(&store), before - (3 + 6) + (3 + 3));

    let reader = store.reader();
    assert!(reader.lookup(&old).unwrap().is_none());
    assert_eq!(reader.lookup(&ndn(&schema, new_dn)).unwrap(), Some(id));
    assert_eq!(
        without_csn(&schema, reader.get(id).unwrap().unwrap()),
        renamed
    );
    drop(reader);
    assert_eq!(count(&store, "(uid=user0003)"), 0);
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::Subtree, "(uid=three)"),
        vec![new_dn]
    );
    assert_eq!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(mail=user0003@example.com)"
        ),
        vec![new_dn]
    );
    assert_eq!(
        search_dns(
            &store,
            "ou=people,dc=example,dc=com",
            Scope::One,
            "(uid=thr*)"
        ),
        vec![new_dn]
    );

    // Errors leave everything as it was.
    let after = assert_clean(&store);
    let to_user4 = with_dn(
        &schema,
        user(&schema, 3),
        "uid=user0004,ou=people,dc=example,dc=com",
    );
    assert!(matches!(
        store.rename(&ndn(&schema, new_dn), to_user4, None, &|_| {}),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.rename(&old, renamed.clone(), None, &|_| {}),
        Err(StoreError::NoSuchObject { .. })
    ));
    let elsewhere = with_dn(
        &schema,
        user(&schema, 3),
        "uid=three,ou=nowhere,dc=example,dc=com",
    );
    let nowhere = ndn(&schema, "ou=nowhere,dc=example,dc=com");
    assert!(matches!(
        store.rename(
            &ndn(&schema, new_dn),
            elsewhere.clone(),
            Some(&nowhere),
            &|_| {}
        ),
        Err(StoreError::NoSuchParent { .. })
    ));
    // Without a new superior the entry must stay below its parent.
    assert!(matches!(
        store.rename(&ndn(&schema, new_dn), elsewhere, None, &|_| {}),
        Err(StoreError::InvalidEntry { .. })
    ));
    assert_eq!(assert_clean(&store), after);
    assert_eq!(count(&store, "(objectClass=*)"), 3 + 10 + 1);

    store.close().unwrap();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    assert_eq!(
        store.reader().lookup(&ndn(&schema, new_dn)).unwrap(),
        Some(id)
    );
    assert!(store.reader().lookup(&old).unwrap().is_none());
    assert_clean(&store);
    store.close().unwrap();
}

#[test]
fn rename_and_move_a_subtree() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = populated(dir.path(), default_indexes(), 10);
    store
        .add(entry(
            &schema,
            "ou=org,dc=example,dc=com",
            &[("objectClass", "organizationalUnit"), ("ou", "org")],
        ))
        .unwrap();
    let before = assert_clean(&store);
    let people = ndn(&schema, "ou=people,dc=example,dc=com");
    let people_id = store.reader().lookup(&people).unwrap().unwrap();
    let user5 = store
        .reader()
        .lookup(&ndn(&schema, "uid=user0005,ou=people,dc=example,dc=com"))
        .unwrap()
        .unwrap();

    // Move ou=people below ou=org, renaming it to ou=Staff on the way.
    let org = ndn(&schema, "ou=org,dc=example,dc=com");
    let moved = with_dn(
        &schema,
        store.reader().get(people_id).unwrap().unwrap(),
        "ou=Staff,ou=org,dc=example,dc=com",
    );
    store
        .rename(&people, moved.clone(), Some(&org), &|_| {})
        .unwrap();
    assert_eq!(assert_clean(&store), before - 1 + 1, "ou is not indexed");

    let reader = store.reader();
    assert!(reader.lookup(&people).unwrap().is_none());
    let staff = ndn(&schema, "ou=staff,ou=org,dc=example,dc=com");
    assert_eq!(reader.lookup(&staff).unwrap(), Some(people_id));
    assert_eq!(reader.count_children(people_id).unwrap(), 10);
    let org_id = reader.lookup(&org).unwrap().unwrap();
    assert_eq!(reader.count_children(org_id).unwrap(), 1);
    let (id, e) = reader
        .entry_by_dn(&ndn(
            &schema,
            "uid=user0005,ou=staff,ou=org,dc=example,dc=com",
        ))
        .unwrap()
        .unwrap();
    assert_eq!(id, user5);
    assert_eq!(
        e.dn.to_string(),
        "uid=user0005,ou=Staff,ou=org,dc=example,dc=com",
        "descendants' stored DNs are rewritten"
    );
    assert_eq!(
        without_csn(&schema, e.clone()).attrs,
        user(&schema, 5).attrs
    );
    drop(reader);
    assert!(
        search_dns(
            &store,
            "dc=example,dc=com",
            Scope::Subtree,
            "(uid=user0005)"
        ) == vec!["uid=user0005,ou=staff,ou=org,dc=example,dc=com"]
    );
    assert_eq!(
        search_dns(
            &store,
            "ou=org,dc=example,dc=com",
            Scope::Subtree,
            "(objectClass=*)"
        )
        .len(),
        1 + 1 + 10
    );
    assert_eq!(
        search_dns(
            &store,
            "ou=staff,ou=org,dc=example,dc=com",
            Scope::One,
            "(mail=*)"
        )
        .len(),
        10
    );
    assert_eq!(
        search_dns(&store, "dc=example,dc=com", Scope::One, "(objectClass=*)"),
        vec!["ou=groups,dc=example,dc=com", "ou=org,dc=example,dc=com"]
    );

    // A move below itself is refused; so is a move onto an existing entry.
    let staff_entry = store.reader().get(people_id).unwrap().unwrap();
    let user5_dn = ndn(&schema, "uid=user0005,ou=staff,ou=org,dc=example,dc=com");
    let inside = with_dn(
        &schema,
        staff_entry.clone(),
        "ou=staff,uid=user0005,ou=staff,ou=org,dc=example,dc=com",
    );
    assert!(matches!(
        store.rename(&staff, inside, Some(&user5_dn), &|_| {}),
        Err(StoreError::InvalidEntry { .. })
    ));
    let onto_groups = with_dn(&schema, staff_entry.clone(), "ou=groups,dc=example,dc=com");
    assert!(matches!(
        store.rename(
            &staff,
            onto_groups,
            Some(&ndn(&schema, "dc=example,dc=com")),
            &|_| {}
        ),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_clean(&store);

    // A change of case only rewrites the stored DNs below it.
    let cased = with_dn(&schema, staff_entry, "OU=STAFF,ou=org,dc=example,dc=com");
    store.rename(&staff, cased, None, &|_| {}).unwrap();
    assert_clean(&store);
    assert_eq!(
        store.reader().get(user5).unwrap().unwrap().dn.to_string(),
        "uid=user0005,OU=STAFF,ou=org,dc=example,dc=com"
    );
    store.close().unwrap();

    // The whole move survives a reopen.
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    assert_eq!(store.reader().lookup(&user5_dn).unwrap(), Some(user5));
    assert_eq!(
        search_dns(
            &store,
            "ou=staff,ou=org,dc=example,dc=com",
            Scope::Subtree,
            "(objectClass=*)"
        )
        .len(),
        11
    );
    assert_eq!(count(&store, "(objectClass=*)"), 3 + 1 + 10 + 1);
    assert_clean(&store);
    store.close().unwrap();
}

/// A group named `cn=<name>,ou=groups,dc=example,dc=com` with the given member DNs.
fn named_group(schema: &Schema, name: &str, members: &[&str]) -> Entry {
    let dn = format!("cn={name},ou=groups,dc=example,dc=com");
    let mut attrs: Vec<(&str, &str)> = vec![("objectClass", "groupOfNames"), ("cn", name)];
    for m in members {
        attrs.push(("member", m));
    }
    entry(schema, &dn, &attrs)
}

fn dns(list: Vec<Dn>) -> Vec<String> {
    list.into_iter().map(|d| d.to_string()).collect()
}

#[test]
fn member_of_nested_groups_and_referential_integrity() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    // No index configured on member: the store keeps one anyway.
    let store = populated(dir.path(), vec![spec("objectClass", true, false, false)], 6);
    let u = |i: u32| format!("uid=user{i:04},ou=people,dc=example,dc=com");
    let g = |n: &str| format!("cn={n},ou=groups,dc=example,dc=com");
    // all > (staff > (admins > user1, user2), user3) ; loop: a > b > a ; user4 in staff and a.
    store
        .add(named_group(&schema, "admins", &[&u(1), &u(2)]))
        .unwrap();
    store
        .add(named_group(&schema, "staff", &[&g("admins"), &u(3), &u(4)]))
        .unwrap();
    store
        .add(named_group(&schema, "all", &[&g("staff")]))
        .unwrap();
    store
        .add(named_group(&schema, "a", &[&g("b"), &u(4)]))
        .unwrap();
    store.add(named_group(&schema, "b", &[&g("a")])).unwrap();
    assert_clean(&store);

    let reader = store.reader();
    let user1 = ndn(&schema, &u(1));
    assert_eq!(
        dns(reader.member_of(&user1).unwrap()),
        vec!["cn=group0,ou=groups,dc=example,dc=com", &g("admins")]
    );
    assert_eq!(
        dns(reader.member_of_transitive(&user1).unwrap()),
        vec![
            "cn=group0,ou=groups,dc=example,dc=com".to_string(),
            g("admins"),
            g("staff"),
            g("all")
        ]
    );
    // A cycle ends: a holds b holds a.
    assert_eq!(
        dns(reader.member_of_transitive(&ndn(&schema, &g("a"))).unwrap()),
        vec![g("a"), g("b")]
    );
    drop(reader);

    let base = "dc=example,dc=com";
    let sub = Scope::Subtree;
    assert_eq!(
        search_dns(&store, base, sub, &format!("(memberOf={})", g("ADMINS"))),
        vec![u(1), u(2)]
    );
    assert_eq!(
        search_dns(
            &store,
            base,
            sub,
            &format!("(memberOf:1.2.840.113556.1.4.1941:={})", g("all"))
        ),
        vec![u(1), u(2), u(3), u(4), g("admins"), g("staff")]
    );
    assert_eq!(
        search_dns(
            &store,
            base,
            sub,
            &format!("(member:1.2.840.113556.1.4.1941:={})", u(2))
        ),
        vec![
            "cn=group0,ou=groups,dc=example,dc=com".to_string(),
            g("admins"),
            g("staff"),
            g("all")
        ]
    );
    assert_eq!(
        search_dns(
            &store,
            base,
            sub,
            &format!(
                "(&(objectClass=groupOfNames)(!(member:1.2.840.113556.1.4.1941:={})))",
                u(4)
            )
        ),
        vec![g("admins")]
    );
    // Other forms on memberOf see it computed on each candidate.
    assert_eq!(
        search_dns(
            &store,
            base,
            sub,
            "(&(objectClass=groupOfNames)(memberOf=*))"
        ),
        vec![g("admins"), g("staff"), g("a"), g("b")]
    );
    assert_eq!(
        search_dns(
            &store,
            base,
            sub,
            &format!("(msDS-memberOfTransitive={})", g("b"))
        ),
        vec![u(4), g("a"), g("b")]
    );
    // The in-chain rule needs a DN and a DN-syntax attribute.
    assert!(search_dns(
        &store,
        base,
        sub,
        "(memberOf:1.2.840.113556.1.4.1941:=not a dn)"
    )
    .is_empty());
    assert!(search_dns(&store, base, sub, "(cn:1.2.840.113556.1.4.1941:=cn=x)").is_empty());

    // Deleting a member removes it from every group, marking each as changed.
    let touched = |e: &mut Entry| {
        let desc = AttrDesc::parse(&schema, "description").unwrap();
        e.attrs.retain(|a| a.desc != desc);
        e.attrs.push(Attribute {
            desc,
            values: vec![b"touched".to_vec()],
        });
    };
    let (_, repaired) = store.delete(&ndn(&schema, &u(4)), &touched).unwrap();
    assert_eq!(
        dns(repaired.entries),
        vec![
            "cn=group0,ou=groups,dc=example,dc=com".to_string(),
            g("staff"),
            g("a")
        ]
    );
    assert_eq!(count(&store, &format!("(member={})", u(4))), 0);
    assert_eq!(
        search_dns(&store, base, sub, "(description=touched)"),
        vec![
            "cn=group0,ou=groups,dc=example,dc=com".to_string(),
            g("staff"),
            g("a")
        ]
    );
    assert_clean(&store);

    // Renaming people moves every user; the groups follow, once each.
    let people = ndn(&schema, "ou=people,dc=example,dc=com");
    let (_, staff_entry) = store
        .reader()
        .entry_by_dn(&ndn(&schema, "ou=people,dc=example,dc=com"))
        .unwrap()
        .unwrap();
    let renamed = with_dn(&schema, staff_entry, "ou=Staff,dc=example,dc=com");
    let repaired = store.rename(&people, renamed, None, &|_| {}).unwrap();
    assert_eq!(
        dns(repaired.entries),
        vec![
            "cn=group0,ou=groups,dc=example,dc=com".to_string(),
            g("admins"),
            g("staff")
        ]
    );
    let moved = |i: u32| format!("uid=user{i:04},ou=staff,dc=example,dc=com");
    assert_eq!(
        search_dns(&store, base, sub, &format!("(memberOf={})", g("admins"))),
        vec![moved(1), moved(2)]
    );
    let (_, admins) = store
        .reader()
        .entry_by_dn(&ndn(&schema, &g("admins")))
        .unwrap()
        .unwrap();
    let member = schema.attr_id("member").unwrap();
    let values: Vec<&[u8]> = admins.values_of(member).map(|v| v.as_slice()).collect();
    assert_eq!(
        values,
        vec![
            b"uid=user0001,ou=Staff,dc=example,dc=com".as_slice(),
            b"uid=user0002,ou=Staff,dc=example,dc=com".as_slice()
        ]
    );

    // Renaming a group that holds itself through the cycle, and is held: both values follow.
    let (_, a) = store
        .reader()
        .entry_by_dn(&ndn(&schema, &g("a")))
        .unwrap()
        .unwrap();
    let a2 = with_dn(&schema, a, &g("a2"));
    store
        .rename(&ndn(&schema, &g("a")), a2, None, &|_| {})
        .unwrap();
    assert_eq!(
        search_dns(&store, base, sub, &format!("(member={})", g("a2"))),
        vec![g("b")]
    );
    assert_eq!(
        dns(store
            .reader()
            .member_of_transitive(&ndn(&schema, &g("a2")))
            .unwrap()),
        vec![g("a2"), g("b")]
    );
    // The last member leaves: the group stays, empty.
    store.delete(&ndn(&schema, &g("all")), &|_| {}).unwrap();
    store.delete(&ndn(&schema, &moved(3)), &|_| {}).unwrap();
    let (_, staff) = store
        .reader()
        .entry_by_dn(&ndn(&schema, &g("staff")))
        .unwrap()
        .unwrap();
    assert_eq!(staff.values_of(member).count(), 1);
    assert_clean(&store);
    store.close().unwrap();
}

/// Writers on several threads with every commit synced (group commit): each add gets its own
/// id, the indexes stay exact, and everything acknowledged is there after a reopen without
/// close (the journal replayed).
/// A store in `dir` whose every commit is synced (`Durability::SyncData`), holding the
/// skeleton; with its configuration (to reopen it) and schema.
fn synced_skeleton(dir: &std::path::Path) -> (StoreConfig, Arc<Schema>, Store) {
    let schema = schema();
    let synced = StoreConfig {
        durability: Durability::SyncData,
        ..config(dir, default_indexes())
    };
    let store = skeleton_store(&synced, &schema);
    (synced, schema, store)
}

/// A store opened with `cfg`, holding the skeleton.
fn skeleton_store(cfg: &StoreConfig, schema: &Arc<Schema>) -> Store {
    let store = Store::open(cfg, schema.clone()).unwrap();
    let mut sk = skeleton(schema).into_iter();
    store.add_root(sk.next().unwrap()).unwrap();
    for e in sk {
        store.add(e).unwrap();
    }
    store
}

#[test]
fn concurrent_durable_writers() {
    let dir = tempfile::tempdir().unwrap();
    let (synced, schema, store) = synced_skeleton(dir.path());

    const THREADS: u32 = 6;
    const PER_THREAD: u32 = 40;
    // Each thread adds its users, replaces every third one (a new mail), deletes every fifth
    // and renames every seventh; it returns (number, id) of the users it added.
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let schema = schema.clone();
            std::thread::spawn(move || {
                let mut added = Vec::new();
                for i in 0..PER_THREAD {
                    let n = t * 1000 + i;
                    let e = user(&schema, n);
                    let dn = e.ndn.clone();
                    let id = store.add(e.clone()).unwrap();
                    added.push((n, id));
                    if i % 3 == 0 {
                        let mut changed = e.clone();
                        let mail = AttrDesc::parse(&schema, "mail").unwrap();
                        let a = changed.attrs.iter_mut().find(|a| a.desc == mail).unwrap();
                        a.values = vec![format!("changed{n}@example.com").into_bytes()];
                        store.replace(&dn, changed).unwrap();
                    }
                    if i % 5 == 0 {
                        store.delete(&dn, &|_| {}).unwrap();
                    } else if i % 7 == 0 {
                        let to = format!("uid=moved{n},ou=people,dc=example,dc=com");
                        let current = store.reader().entry_by_dn(&dn).unwrap().unwrap().1;
                        store
                            .rename(&dn, with_dn(&schema, current, &to), None, &|_| {})
                            .unwrap();
                    }
                }
                added
            })
        })
        .collect();
    let mut added = Vec::new();
    for h in handles {
        added.extend(h.join().unwrap());
    }
    let mut ids: Vec<EntryId> = added.iter().map(|(_, id)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        (THREADS * PER_THREAD) as usize,
        "ids are distinct"
    );

    let check = |store: &Store| {
        let reader = store.reader();
        for &(n, id) in &added {
            let i = n % 1000;
            let original = ndn(
                &schema,
                &format!("uid=user{n:04},ou=people,dc=example,dc=com"),
            );
            let moved = ndn(
                &schema,
                &format!("uid=moved{n},ou=people,dc=example,dc=com"),
            );
            let (at, gone) = if i % 5 == 0 {
                (None, vec![original, moved])
            } else if i % 7 == 0 {
                (Some(moved), vec![original])
            } else {
                (Some(original), vec![moved])
            };
            for dn in &gone {
                assert_eq!(reader.lookup(dn).unwrap(), None, "{dn}");
            }
            if let Some(dn) = at {
                assert_eq!(reader.lookup(&dn).unwrap(), Some(id), "{dn}");
                let mail = if i % 3 == 0 {
                    format!("changed{n}@example.com")
                } else {
                    format!("user{n:04}@example.com")
                };
                assert_eq!(count(store, &format!("(mail={mail})")), 1, "{mail}");
            } else {
                assert_eq!(reader.get(id).unwrap(), None, "deleted entry {id}");
            }
        }
        let kept = added.iter().filter(|(n, _)| n % 1000 % 5 != 0).count();
        assert_eq!(count(store, "(objectClass=inetOrgPerson)"), kept);
        assert_clean(store);
    };
    check(&store);

    // Dropped without close: the synced journal is replayed.
    drop(store);
    let store = Store::open(&synced, schema.clone()).unwrap();
    check(&store);
    store.close().unwrap();
}

#[test]
fn unique_values_are_refused_within_one_class() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let addresses = roster_storage::UniqueSpec {
        name: "user address".into(),
        attrs: vec!["mail".into(), "mailLocalAddress".into()],
        class: "rosterMailUser".into(),
    };
    let cfg = StoreConfig {
        unique: vec![addresses],
        ..config(dir.path(), default_indexes())
    };
    let store = Store::open(&cfg, schema.clone()).unwrap();
    for e in skeleton(&schema) {
        store.add_root(e).unwrap();
    }
    let mail_user = |uid: &str, mail: &str, aliases: &[&str]| {
        let dn = format!("uid={uid},ou=people,dc=example,dc=com");
        let mut attrs = vec![
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "rosterMailUser"),
            ("uid", uid),
            ("cn", uid),
            ("sn", uid),
            ("mail", mail),
        ];
        attrs.extend(aliases.iter().map(|a| ("mailLocalAddress", *a)));
        entry(&schema, &dn, &attrs)
    };
    store
        .add(mail_user("ann", "ann@example.com", &["sales@example.com"]))
        .unwrap();
    // Another user may not take the address, as primary or alias, in any case.
    let err = store
        .add(mail_user("bob", "SALES@example.com", &[]))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotUnique(c) if c.holder.starts_with("uid=ann")),
        "{err}"
    );
    let err = store
        .add(mail_user("bob", "bob@example.com", &["ann@example.com"]))
        .unwrap_err();
    assert!(err.to_string().contains("ann@example.com"), "{err}");
    // An entry of another class may (a group sharing a user's address).
    store
        .add(entry(
            &schema,
            "cn=sales,ou=groups,dc=example,dc=com",
            &[
                ("objectClass", "groupOfNames"),
                ("objectClass", "inetLocalMailRecipient"),
                ("cn", "sales"),
                ("mailLocalAddress", "sales@example.com"),
            ],
        ))
        .unwrap();
    store.add(mail_user("bob", "bob@example.com", &[])).unwrap();
    // Replace: taking ann's alias is refused, keeping one's own values is not checked again.
    let bob = ndn(&schema, "uid=bob,ou=people,dc=example,dc=com");
    let err = store
        .replace(
            &bob,
            mail_user("bob", "bob@example.com", &["sales@example.com"]),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NotUnique(_)), "{err}");
    store
        .replace(
            &bob,
            mail_user(
                "bob",
                "bob@example.com",
                &["bob@example.com", "b@example.com"],
            ),
        )
        .unwrap();
    // Once ann lets the alias go, bob may take it.
    let ann = ndn(&schema, "uid=ann,ou=people,dc=example,dc=com");
    store
        .replace(&ann, mail_user("ann", "ann@example.com", &[]))
        .unwrap();
    store
        .replace(
            &bob,
            mail_user("bob", "bob@example.com", &["sales@example.com"]),
        )
        .unwrap();
    assert_eq!(count(&store, "(mailLocalAddress=sales@example.com)"), 2);
    // A rename keeps the entry's own values.
    let renamed = mail_user("robert", "bob@example.com", &["sales@example.com"]);
    store.rename(&bob, renamed, None, &|_| {}).unwrap();
    assert_clean(&store);
}

fn csn_of(store: &Store, schema: &Schema, dn: &str) -> String {
    let (_, e) = store
        .reader()
        .entry_by_dn(&ndn(schema, dn))
        .unwrap()
        .unwrap();
    let attr = schema.attr_id("entryCSN").unwrap();
    let v = e.values_of(attr).next().unwrap().to_vec();
    String::from_utf8(v).unwrap()
}

#[test]
fn every_write_is_stamped_and_logged_in_commit_order() {
    use roster_storage::ChangeKind;
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    let mut sk = skeleton(&schema).into_iter();
    store.add_root(sk.next().unwrap()).unwrap();
    for e in sk {
        store.add(e).unwrap();
    }
    let mut u = user(&schema, 1);
    u.attrs.push(Attribute {
        desc: AttrDesc::parse(&schema, "entryUUID").unwrap(),
        values: vec![b"0b6f1c2e-7a3d-4c59-9a53-8f7e3b9d4a11".to_vec()],
    });
    store.add(u).unwrap();
    store.add(group(&schema, 1, 1..2)).unwrap();
    let udn = "uid=user0001,ou=people,dc=example,dc=com";
    let first = csn_of(&store, &schema, udn);
    assert!(roster_storage::is_csn(&first), "{first}");

    // A rename moves the user; the group naming it is rewritten in the same commit.
    let mut renamed = store
        .reader()
        .entry_by_dn(&ndn(&schema, udn))
        .unwrap()
        .unwrap()
        .1;
    renamed.dn = Dn::parse("uid=user0001b,ou=people,dc=example,dc=com").unwrap();
    renamed.ndn = renamed.dn.normalize(&schema).unwrap();
    store
        .rename(&ndn(&schema, udn), renamed, None, &|_| {})
        .unwrap();
    let after = csn_of(&store, &schema, "uid=user0001b,ou=people,dc=example,dc=com");
    assert!(after > first);
    assert_eq!(
        csn_of(&store, &schema, "cn=group1,ou=groups,dc=example,dc=com"),
        after,
        "the repaired group carries the rename's CSN"
    );
    store
        .delete(
            &ndn(&schema, "uid=user0001b,ou=people,dc=example,dc=com"),
            &|_| {},
        )
        .unwrap();

    let reader = store.reader();
    let state = reader.log_state().unwrap();
    let all = reader.changes_from(1).unwrap().unwrap();
    assert_eq!(all.len() as u64, state.last_seq);
    let tail: Vec<(ChangeKind, &str)> = all[all.len() - 5..]
        .iter()
        .map(|c| (c.kind, c.dn.as_str()))
        .collect();
    assert_eq!(
        tail,
        vec![
            (ChangeKind::Add, "cn=group1,ou=groups,dc=example,dc=com"),
            (ChangeKind::Rename, udn),
            (ChangeKind::Modify, "cn=group1,ou=groups,dc=example,dc=com"),
            (
                ChangeKind::Delete,
                "uid=user0001b,ou=people,dc=example,dc=com"
            ),
            (ChangeKind::Modify, "cn=group1,ou=groups,dc=example,dc=com"),
        ][..]
    );
    assert_eq!(
        all[all.len() - 4].uuid,
        "0b6f1c2e-7a3d-4c59-9a53-8f7e3b9d4a11"
    );
    assert!(all
        .windows(2)
        .all(|w| w[0].csn <= w[1].csn && w[0].seq + 1 == w[1].seq));
    assert_eq!(state.context_csn, all[all.len() - 1].csn);
    // After the rename's CSN come the delete's two records.
    assert_eq!(reader.seq_after(&after).unwrap(), Some(state.last_seq - 1));
    assert_eq!(
        reader.seq_after(&state.context_csn).unwrap(),
        Some(state.last_seq + 1)
    );
    // A cookie from the future (another server) is not covered.
    assert_eq!(
        reader
            .seq_after("29991231235959.999999Z#000000#000#000000")
            .unwrap(),
        None
    );
    drop(reader);

    // The log and the clock survive a reopen.
    store.close().unwrap();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    let before = store.reader().log_state().unwrap();
    assert_eq!(before.context_csn, state.context_csn);
    store.add(user(&schema, 2)).unwrap();
    let now = store.reader().log_state().unwrap();
    assert_eq!(now.last_seq, before.last_seq + 1);
    assert!(now.context_csn > before.context_csn);
}

#[test]
fn the_log_keeps_its_last_records_and_raises_its_floor() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let cfg = StoreConfig {
        change_log: 3,
        ..config(dir.path(), default_indexes())
    };
    let store = Store::open(&cfg, schema.clone()).unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s2 = seen.clone();
    store.on_commit(Arc::new(move |seq| {
        s2.store(seq, std::sync::atomic::Ordering::SeqCst)
    }));
    let mut sk = skeleton(&schema).into_iter();
    store.add_root(sk.next().unwrap()).unwrap();
    let early = store.reader().log_state().unwrap().context_csn;
    for e in sk {
        store.add(e).unwrap();
    }
    for i in 0..5 {
        store.add(user(&schema, i)).unwrap();
    }
    let reader = store.reader();
    let state = reader.log_state().unwrap();
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        state.last_seq
    );
    assert_eq!(state.last_seq - state.first_seq + 1, 3);
    assert!(reader.changes_from(state.first_seq - 1).unwrap().is_none());
    assert_eq!(
        reader.changes_from(state.first_seq).unwrap().unwrap().len(),
        3
    );
    assert_eq!(reader.seq_after(&early).unwrap(), None, "trimmed away");
    let kept = reader.change(state.first_seq).unwrap().unwrap();
    assert!(state.floor < kept.csn);
    assert_eq!(
        reader.seq_after(&state.floor).unwrap(),
        Some(state.first_seq)
    );
}

/// With no change log kept, every add drops its own record at once: the floor still rises to
/// that write's CSN (an add reads from a snapshot that does not see its own record), so a
/// consumer with an older cookie is told the log does not cover it.
#[test]
fn a_log_of_no_records_raises_its_floor_at_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let cfg = StoreConfig {
        change_log: 0,
        ..config(dir.path(), default_indexes())
    };
    let store = skeleton_store(&cfg, &schema);
    let before = store.reader().log_state().unwrap();
    store.add(user(&schema, 1)).unwrap();
    let after = store.reader().log_state().unwrap();
    assert!(after.context_csn > before.context_csn);
    assert_eq!(after.floor, after.context_csn, "the floor is the add's CSN");
    assert_eq!(after.first_seq, after.last_seq + 1, "no record kept");
    assert_eq!(store.reader().seq_after(&before.context_csn).unwrap(), None);
}

/// A flush that cannot end (here: the store's directory removed under it) does not hold the
/// close forever: it gives up after the wait it was given.
#[test]
fn close_gives_up_on_a_flush_that_cannot_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let schema = schema();
    let store = skeleton_store(&config(&data, default_indexes()), &schema);
    for i in 0..50 {
        store.add(user(&schema, i)).unwrap();
    }
    std::fs::remove_dir_all(&data).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Ok or an error: either way it returns.
        let _ = store.close_within(std::time::Duration::from_millis(300));
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("close returned");
}

#[test]
fn a_replica_store_keeps_the_csns_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let cfg = StoreConfig {
        keep_csn: true,
        cache_size: roster_storage::DEFAULT_CACHE_SIZE,
        ..config(dir.path(), default_indexes())
    };
    let store = Store::open(&cfg, schema.clone()).unwrap();
    let mut root = skeleton(&schema).remove(0);
    let given = "20200101000000.000000Z#000000#001#000000";
    root.attrs.push(Attribute {
        desc: AttrDesc::parse(&schema, "entryCSN").unwrap(),
        values: vec![given.as_bytes().to_vec()],
    });
    store.add_root(root).unwrap();
    assert_eq!(csn_of(&store, &schema, "dc=example,dc=com"), given);
    // The log has its own, local CSNs.
    assert!(store.reader().log_state().unwrap().context_csn.as_str() > given);
}

#[test]
fn a_bulk_load_stamps_entries_and_moves_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    let mut loader = store.bulk_loader().unwrap();
    let mut sk = skeleton(&schema).into_iter();
    loader.add_root(sk.next().unwrap()).unwrap();
    for e in sk {
        loader.add(e).unwrap();
    }
    loader.finish().unwrap();
    let csn = csn_of(&store, &schema, "ou=people,dc=example,dc=com");
    let state = store.reader().log_state().unwrap();
    assert_eq!(state.floor, csn);
    assert_eq!(state.context_csn, csn);
    store.add(user(&schema, 1)).unwrap();
    assert!(csn_of(&store, &schema, "uid=user0001,ou=people,dc=example,dc=com") > csn);
}

#[test]
fn named_state_values_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), default_indexes());
    cfg.durability = Durability::SyncData;
    {
        let store = Store::open(&cfg, schema()).unwrap();
        assert_eq!(store.reader().state("replica:a").unwrap(), None);
        store.put_state("replica:a", b"rid=000,csn=1").unwrap();
        store.put_state("replica:b", b"other").unwrap();
        // Buffered writes, made durable by the state value written after them.
        let skeleton = skeleton(&schema());
        let buffered = store.buffered();
        buffered.add_root(skeleton[0].clone()).unwrap();
        buffered.add(skeleton[1].clone()).unwrap();
        store.put_state("replica:a", b"rid=000,csn=2").unwrap();
        assert_eq!(
            store.reader().state("replica:a").unwrap().as_deref(),
            Some(&b"rid=000,csn=2"[..])
        );
        store.remove_state("replica:b").unwrap();
        store.remove_state("replica:none").unwrap();
        store.close().unwrap();
    }
    let store = Store::open(&cfg, schema()).unwrap();
    let reader = store.reader();
    assert_eq!(
        reader.state("replica:a").unwrap().as_deref(),
        Some(&b"rid=000,csn=2"[..])
    );
    assert_eq!(reader.state("replica:b").unwrap(), None);
    for e in skeleton(&schema()).iter().take(2) {
        assert!(reader.lookup(&e.ndn).unwrap().is_some(), "{}", e.dn);
    }
    // State values are not entries: verify finds nothing wrong.
    assert!(
        store.verify().unwrap().is_clean(),
        "verify after state values"
    );
}

/// A deferred write is visible at once, is not announced to the commit listeners until its
/// sync point is synced, and survives a reopen without close once synced. Writes outside the
/// deferral still wait for their own sync and announce themselves.
#[test]
fn deferred_writes_are_acknowledged_by_their_sync_point() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (synced, schema, store) = synced_skeleton(dir.path());
    let (first_dn, second_dn);
    {
        let told = Arc::new(AtomicU64::new(0));
        let seen = told.clone();
        store.on_commit(Arc::new(move |seq| {
            seen.fetch_max(seq, Ordering::SeqCst);
        }));

        // Nothing written: nothing to sync.
        let ((), none) = store.deferring(|| ());
        assert_eq!(none, None);

        let first = user(&schema, 1);
        first_dn = first.ndn.clone();
        let (id, first_point) = store.deferring(|| store.add(first).unwrap());
        let first_point = first_point.expect("a deferred add has a sync point");
        assert_eq!(store.reader().lookup(&first_dn).unwrap(), Some(id));
        let before = told.load(Ordering::SeqCst);

        // Two writes in one deferral (one nested): the point covers the later one.
        let second = user(&schema, 2);
        second_dn = second.ndn.clone();
        let (inner, point) = store.deferring(|| {
            let mut changed = store.reader().entry_by_dn(&first_dn).unwrap().unwrap().1;
            let mail = AttrDesc::parse(&schema, "mail").unwrap();
            changed
                .attrs
                .iter_mut()
                .find(|a| a.desc == mail)
                .unwrap()
                .values = vec![b"changed1@example.com".to_vec()];
            store.replace(&first_dn, changed).unwrap();
            store.deferring(|| store.add(second).unwrap()).1
        });
        assert_eq!(inner, None, "a nested deferral folds into the outer one");
        let point = point.unwrap();
        assert!(point > first_point);
        assert_eq!(
            told.load(Ordering::SeqCst),
            before,
            "deferred commits are not announced before their sync"
        );
        store.sync_through(point).unwrap();
        let after = told.load(Ordering::SeqCst);
        assert!(after > before, "the sync announces the deferred commits");
        // An earlier point is already covered.
        store.sync_through(first_point).unwrap();

        // An ordinary write still announces itself when it returns.
        store.add(user(&schema, 3)).unwrap();
        assert!(told.load(Ordering::SeqCst) > after);
        // Dropped without close: the journal is replayed at the next open.
        drop(store);
    }
    let store = Store::open(&synced, schema.clone()).unwrap();
    let reader = store.reader();
    let first = reader.entry_by_dn(&first_dn).unwrap().unwrap().1;
    let mail = AttrDesc::parse(&schema, "mail").unwrap();
    assert_eq!(
        first.attrs.iter().find(|a| a.desc == mail).unwrap().values,
        vec![b"changed1@example.com".to_vec()]
    );
    assert!(reader.lookup(&second_dn).unwrap().is_some());
}

/// `sync_next` is what a sync thread loops on: it returns nothing while nothing is committed,
/// wakes for a deferred commit made on another thread while it waits, and the point it
/// returns covers that commit (and announces it to the commit listeners).
#[test]
fn sync_next_wakes_for_deferred_commits() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (_, schema, store) = synced_skeleton(dir.path());
    let told = Arc::new(AtomicU64::new(0));
    let seen = told.clone();
    store.on_commit(Arc::new(move |seq| {
        seen.fetch_max(seq, Ordering::SeqCst);
    }));
    // The skeleton's writes synced themselves: the first call reports them, without a sync
    // of its own, and then nothing is left.
    assert!(store
        .sync_next(Duration::from_millis(20), || ())
        .unwrap()
        .is_some());
    assert_eq!(
        store.sync_next(Duration::from_millis(20), || ()).unwrap(),
        None
    );

    let writer = {
        let (store, schema) = (store.clone(), schema.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            store.deferring(|| store.add(user(&schema, 1)).unwrap()).1
        })
    };
    let before = told.load(Ordering::SeqCst);
    let reached = store
        .sync_next(Duration::from_secs(10), || ())
        .unwrap()
        .expect("woken by the deferred add");
    let point = writer
        .join()
        .unwrap()
        .expect("a deferred add has a sync point");
    assert!(reached >= point, "the sync covers the add");
    assert!(told.load(Ordering::SeqCst) > before, "and announces it");
    assert_eq!(
        store.sync_next(Duration::from_millis(20), || ()).unwrap(),
        None
    );

    // Deferred commits made before the call: synced at once, through the last of them.
    let (_, p1) = store.deferring(|| store.add(user(&schema, 2)).unwrap());
    let (_, p2) = store.deferring(|| store.add(user(&schema, 3)).unwrap());
    let reached = store
        .sync_next(Duration::from_secs(10), || ())
        .unwrap()
        .unwrap();
    assert!(reached >= p1.unwrap().max(p2.unwrap()));

    // A deferred write whose commit an ordinary writer's own sync covered is still reported:
    // its session waits for the sync thread's point, not for the journal.
    let (_, deferred) = store.deferring(|| store.add(user(&schema, 4)).unwrap());
    store.add(user(&schema, 5)).unwrap(); // syncs through both
    let reached = store
        .sync_next(Duration::from_secs(10), || ())
        .unwrap()
        .expect("the covered write is reported");
    assert!(reached >= deferred.unwrap());
}

/// `shared_by_dn` reads through the entry cache: a reader after a change sees the change, a
/// reader from before it keeps its version, and both agree with `entry_by_dn`.
#[test]
fn shared_reads_follow_writes() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let store = Store::open(&config(dir.path(), default_indexes()), schema.clone()).unwrap();
    let mut sk = skeleton(&schema).into_iter();
    store.add_root(sk.next().unwrap()).unwrap();
    for e in sk {
        store.add(e).unwrap();
    }
    let ann = user(&schema, 7);
    let dn = ann.ndn.clone();
    store.add(ann).unwrap();
    let mail = AttrDesc::parse(&schema, "mail").unwrap();
    let mail_of = |e: &Entry| {
        e.attrs
            .iter()
            .find(|a| a.desc == mail)
            .unwrap()
            .values
            .clone()
    };
    let before = store.reader();
    let first = before.shared_by_dn(&dn).unwrap().unwrap().1;
    // A second read is served from the cache: the same shared entry.
    let again = store.reader().shared_by_dn(&dn).unwrap().unwrap().1;
    assert_eq!(mail_of(&first), mail_of(&again));

    let mut changed = before.entry_by_dn(&dn).unwrap().unwrap().1;
    changed
        .attrs
        .iter_mut()
        .find(|a| a.desc == mail)
        .unwrap()
        .values = vec![b"moved@example.com".to_vec()];
    store.replace(&dn, changed).unwrap();
    let after = store.reader();
    let now = after.shared_by_dn(&dn).unwrap().unwrap().1;
    assert_eq!(mail_of(&now), vec![b"moved@example.com".to_vec()]);
    assert_eq!(
        mail_of(&now),
        mail_of(&after.entry_by_dn(&dn).unwrap().unwrap().1)
    );
    // The reader from before the change still sees the old value, cached or not.
    let old = before.shared_by_dn(&dn).unwrap().unwrap().1;
    assert_eq!(mail_of(&old), mail_of(&first));
    assert_ne!(mail_of(&old), mail_of(&now));

    store.delete(&dn, &|_| {}).unwrap();
    assert!(store.reader().shared_by_dn(&dn).unwrap().is_none());
    assert!(before.shared_by_dn(&dn).unwrap().is_some());
}
