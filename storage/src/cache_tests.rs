//! The read cache against the store: every write is seen by newer snapshots, older snapshots
//! keep their view, and nothing a reader of an old snapshot reads poisons the cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::{Durability, IndexSpec, Reader, Scope, Store, StoreConfig};
use roster_schema::dn::NormDn;
use roster_schema::{AttrDesc, Attribute, Dn, Entry, Filter, Schema};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn open(path: &std::path::Path, cache_size: u64) -> Store {
    let index = |attr: &str| IndexSpec {
        attr: attr.into(),
        equality: true,
        presence: false,
        substring: false,
    };
    let config = StoreConfig {
        change_log: crate::DEFAULT_CHANGE_LOG,
        keep_csn: false,
        cache_size,
        path: path.to_path_buf(),
        indexes: vec![index("mail"), index("uid"), index("objectClass")],
        durability: Durability::Buffer,
        integrity: Vec::new(),
        unique: Vec::new(),
    };
    let store = Store::open(&config, Arc::new(Schema::builtin())).unwrap();
    let schema = store.schema().clone();
    store
        .add_root(entry(
            &schema,
            "dc=example,dc=com",
            &[("objectClass", "domain"), ("dc", "example")],
        ))
        .unwrap();
    store
        .add(entry(
            &schema,
            "ou=people,dc=example,dc=com",
            &[("objectClass", "organizationalUnit"), ("ou", "people")],
        ))
        .unwrap();
    store
}

/// An entry named `dn` with the attribute values `attrs` (shared with `basecache`'s tests).
pub(crate) fn entry(schema: &Schema, dn: &str, attrs: &[(&str, &str)]) -> Entry {
    let dn = Dn::parse(dn).unwrap();
    let ndn = dn.normalize(schema).unwrap();
    let mut out: Vec<Attribute> = Vec::new();
    for (name, value) in attrs {
        let desc = AttrDesc::parse(schema, name).unwrap();
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

fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,dc=example,dc=com")
}

fn user(schema: &Schema, uid: &str, mail: &str, description: &str) -> Entry {
    entry(
        schema,
        &user_dn(uid),
        &[
            ("objectClass", "inetOrgPerson"),
            ("uid", uid),
            ("cn", uid),
            ("sn", uid),
            ("mail", mail),
            ("description", description),
        ],
    )
}

fn ndn(schema: &Schema, dn: &str) -> NormDn {
    Dn::parse(dn).unwrap().normalize(schema).unwrap()
}

/// (DN, description) of each entry `filter` finds under the root, in id order.
fn find(reader: &Reader, filter: &str) -> Vec<(String, String)> {
    let schema = reader.schema().clone();
    let f = Filter::parse(filter).unwrap().compile(&schema);
    let desc = schema.attr_id("description").unwrap();
    reader
        .search(&NormDn::default(), Scope::Subtree, &f)
        .unwrap()
        .map(|r| {
            let (_, e) = r.unwrap();
            let d = e
                .values_of(desc)
                .next()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            (e.dn.to_string(), d)
        })
        .collect()
}

/// uid number -> (mail, description).
type Model = HashMap<u64, (String, String)>;
/// (DN, description) of each entry found.
type Found = Vec<(String, String)>;

fn found(dn: &str, description: &str) -> Vec<(String, String)> {
    vec![(dn.to_string(), description.to_string())]
}

#[test]
fn writes_are_seen_and_old_snapshots_keep_their_view() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::DEFAULT_CACHE_SIZE);
    let schema = store.schema().clone();
    let dn1 = user_dn("u1");
    store.add(user(&schema, "u1", "a@x", "v1")).unwrap();

    // Filled by one reader, used by the next.
    assert_eq!(find(&store.reader(), "(mail=a@x)"), found(&dn1, "v1"));
    let hits = store.inner.cache.hits();
    assert_eq!(find(&store.reader(), "(mail=a@x)"), found(&dn1, "v1"));
    let now = store.inner.cache.hits();
    assert!(now.0 > hits.0 && now.1 > hits.1, "{hits:?} {now:?}");

    // A modify of the cached entry and of its index value.
    let v1 = store.reader();
    store
        .replace(&ndn(&schema, &dn1), user(&schema, "u1", "b@x", "v2"))
        .unwrap();
    for _ in 0..2 {
        assert_eq!(find(&store.reader(), "(mail=a@x)"), vec![]);
        assert_eq!(find(&store.reader(), "(mail=b@x)"), found(&dn1, "v2"));
        assert_eq!(find(&store.reader(), "(uid=u1)"), found(&dn1, "v2"));
        // The reader from before the write still sees (and reads) the old version ...
        assert_eq!(find(&v1, "(mail=a@x)"), found(&dn1, "v1"));
        assert_eq!(find(&v1, "(mail=b@x)"), vec![]);
        assert_eq!(find(&v1, "(uid=u1)"), found(&dn1, "v1"));
    }
    // ... and what it read went nowhere.
    let hits = store.inner.cache.hits();
    assert_eq!(find(&store.reader(), "(uid=u1)"), found(&dn1, "v2"));
    assert!(store.inner.cache.hits().0 > hits.0);

    // A rename: the cached entry gets its new DN.
    let v2 = store.reader();
    let dn9 = user_dn("u9");
    store
        .rename(
            &ndn(&schema, &dn1),
            user(&schema, "u9", "b@x", "v2"),
            None,
            &|_| {},
        )
        .unwrap();
    for _ in 0..2 {
        assert_eq!(find(&store.reader(), "(mail=b@x)"), found(&dn9, "v2"));
        assert_eq!(find(&store.reader(), "(uid=u1)"), vec![]);
        assert_eq!(find(&store.reader(), "(uid=u9)"), found(&dn9, "v2"));
        assert_eq!(find(&v2, "(mail=b@x)"), found(&dn1, "v2"));
        assert_eq!(find(&v2, "(uid=u9)"), vec![]);
        assert_eq!(find(&v1, "(mail=a@x)"), found(&dn1, "v1"));
    }

    // A delete.
    let v3 = store.reader();
    store.delete(&ndn(&schema, &dn9), &|_| {}).unwrap();
    for _ in 0..2 {
        assert_eq!(find(&store.reader(), "(mail=b@x)"), vec![]);
        assert_eq!(find(&store.reader(), "(uid=u9)"), vec![]);
        assert_eq!(find(&v3, "(mail=b@x)"), found(&dn9, "v2"));
        assert_eq!(find(&v2, "(mail=b@x)"), found(&dn1, "v2"));
    }
    // An add under a cached (empty) value and the same name again.
    store.add(user(&schema, "u9", "b@x", "v3")).unwrap();
    assert_eq!(find(&store.reader(), "(mail=b@x)"), found(&dn9, "v3"));
    assert_eq!(find(&v3, "(mail=b@x)"), found(&dn9, "v2"));
}

#[test]
fn index_lists_follow_adds_and_deletes_of_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::DEFAULT_CACHE_SIZE);
    let schema = store.schema().clone();
    let dns = |list: Vec<(String, String)>| list.into_iter().map(|(d, _)| d).collect::<Vec<_>>();
    assert!(find(&store.reader(), "(mail=shared@x)").is_empty());
    assert!(find(&store.reader(), "(mail=shared@x)").is_empty());
    store.add(user(&schema, "a", "shared@x", "")).unwrap();
    assert_eq!(
        dns(find(&store.reader(), "(mail=shared@x)")),
        [user_dn("a")]
    );
    store.add(user(&schema, "b", "shared@x", "")).unwrap();
    let both = [user_dn("a"), user_dn("b")];
    assert_eq!(dns(find(&store.reader(), "(mail=shared@x)")), both);
    assert_eq!(dns(find(&store.reader(), "(mail=shared@x)")), both);
    // A value removed by a modify, then the entry deleted.
    store
        .replace(
            &ndn(&schema, &user_dn("a")),
            user(&schema, "a", "own@x", ""),
        )
        .unwrap();
    assert_eq!(
        dns(find(&store.reader(), "(mail=shared@x)")),
        [user_dn("b")]
    );
    assert_eq!(dns(find(&store.reader(), "(mail=own@x)")), [user_dn("a")]);
    store.delete(&ndn(&schema, &user_dn("b")), &|_| {}).unwrap();
    assert!(find(&store.reader(), "(mail=shared@x)").is_empty());
    assert!(store.inner.cache.hits().1 > 0);
}

#[test]
fn dn_lookups_follow_adds_renames_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::DEFAULT_CACHE_SIZE);
    let schema = store.schema().clone();
    let id_of = |reader: &Reader, dn: &str| reader.lookup(&ndn(&schema, dn)).unwrap();
    let a = user_dn("a");
    // Absent (not cached), then added: the second lookup from the cache.
    assert_eq!(id_of(&store.reader(), &a), None);
    assert_eq!(id_of(&store.reader(), &a), None);
    let added = store.add(user(&schema, "a", "a@x", "")).unwrap();
    assert_eq!(id_of(&store.reader(), &a), Some(added));
    let hits = store.inner.cache.hits();
    assert_eq!(id_of(&store.reader(), &a), Some(added));
    assert!(store.inner.cache.hits().1 > hits.1);
    // A subtree renamed: every DN in it moves.
    let (team, crew) = (
        "ou=team,ou=people,dc=example,dc=com",
        "ou=crew,ou=people,dc=example,dc=com",
    );
    let (in_team, in_crew) = (format!("uid=c,{team}"), format!("uid=c,{crew}"));
    let team_id = store
        .add(entry(
            &schema,
            team,
            &[("objectClass", "organizationalUnit"), ("ou", "team")],
        ))
        .unwrap();
    let c = store
        .add(entry(
            &schema,
            &in_team,
            &[("objectClass", "account"), ("uid", "c")],
        ))
        .unwrap();
    for _ in 0..2 {
        let reader = store.reader();
        assert_eq!(id_of(&reader, team), Some(team_id));
        assert_eq!(id_of(&reader, &in_team), Some(c));
        assert_eq!(id_of(&reader, crew), None);
        assert_eq!(id_of(&reader, &in_crew), None);
    }
    let before = store.reader();
    store
        .rename(
            &ndn(&schema, team),
            entry(
                &schema,
                crew,
                &[("objectClass", "organizationalUnit"), ("ou", "crew")],
            ),
            None,
            &|_| {},
        )
        .unwrap();
    for _ in 0..2 {
        let reader = store.reader();
        assert_eq!(id_of(&reader, team), None);
        assert_eq!(id_of(&reader, &in_team), None);
        assert_eq!(id_of(&reader, crew), Some(team_id));
        assert_eq!(id_of(&reader, &in_crew), Some(c));
    }
    // A snapshot from before keeps its view, and does not put it in the cache.
    assert_eq!(id_of(&before, &in_team), Some(c));
    assert_eq!(id_of(&before, &in_crew), None);
    assert_eq!(id_of(&store.reader(), &in_crew), Some(c));
    store.delete(&ndn(&schema, &a), &|_| {}).unwrap();
    assert_eq!(id_of(&store.reader(), &a), None);
    assert_eq!(id_of(&before, &a), Some(added));
    assert_eq!(id_of(&store.reader(), &a), None);
}

#[test]
fn a_bulk_load_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::DEFAULT_CACHE_SIZE);
    let schema = store.schema().clone();
    store.add(user(&schema, "a", "a@x", "1")).unwrap();
    // Cached: an empty list, and a list of one.
    for _ in 0..2 {
        assert!(find(&store.reader(), "(mail=new@x)").is_empty());
        assert_eq!(find(&store.reader(), "(uid=a)"), found(&user_dn("a"), "1"));
    }
    let before = store.reader();
    let mut loader = store.bulk_loader().unwrap();
    loader.add(user(&schema, "n", "new@x", "2")).unwrap();
    loader.add(user(&schema, "n2", "new@x", "3")).unwrap();
    loader.finish().unwrap();
    for _ in 0..2 {
        let now = find(&store.reader(), "(mail=new@x)");
        assert_eq!(now.len(), 2, "{now:?}");
        assert!(find(&before, "(mail=new@x)").is_empty());
    }
    // The cache works again afterwards.
    let hits = store.inner.cache.hits();
    assert_eq!(find(&store.reader(), "(uid=a)"), found(&user_dn("a"), "1"));
    assert_eq!(find(&store.reader(), "(uid=a)"), found(&user_dn("a"), "1"));
    assert!(store.inner.cache.hits().1 > hits.1);
}

/// xorshift64*: deterministic choices without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn a_tiny_cache_evicts_and_stays_exact() {
    against_a_model(1024 * 1024, 4000);
}

#[test]
fn without_a_cache_searches_read_the_store() {
    against_a_model(0, 1000);
}

/// Random modifies and searches of 1200 users, each search checked against a model of what
/// was written; a snapshot taken now and then is checked against the model of its time.
fn against_a_model(size: u64, steps: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), size);
    let schema = store.schema().clone();
    let users = 1200u64;
    // uid -> (mail, description)
    let mut model: Model = HashMap::new();
    for i in 0..users {
        let (mail, d) = (format!("m{i}@x"), format!("d{i}-0"));
        store
            .add(user(&schema, &format!("u{i}"), &mail, &d))
            .unwrap();
        model.insert(i, (mail, d));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut old: Option<(Reader, Model)> = None;
    let evictions = crate::cache::EVICTIONS.load(Ordering::Relaxed);
    for step in 0..steps {
        let i = rng.below(users);
        let uid = format!("u{i}");
        match rng.below(10) {
            0 => {
                // A new mail (sometimes one another user had) and description.
                let mail = format!("m{}@x", rng.below(users + 50));
                let d = format!("d{i}-{step}");
                store
                    .replace(
                        &ndn(&schema, &user_dn(&uid)),
                        user(&schema, &uid, &mail, &d),
                    )
                    .unwrap();
                model.insert(i, (mail, d));
            }
            1 if old.is_none() || rng.below(8) == 0 => old = Some((store.reader(), model.clone())),
            _ => {
                let (mail, d) = &model[&i];
                let reader = store.reader();
                assert_eq!(
                    find(&reader, &format!("(uid={uid})")),
                    found(&user_dn(&uid), d)
                );
                let mut expect: Vec<(String, String)> = model
                    .iter()
                    .filter(|(_, (m, _))| m == mail)
                    .map(|(j, (_, d))| (*j, d.clone()))
                    .collect::<std::collections::BTreeMap<_, _>>()
                    .into_iter()
                    .map(|(j, d)| (user_dn(&format!("u{j}")), d))
                    .collect();
                let mut got = find(&reader, &format!("(mail={mail})"));
                expect.sort();
                got.sort();
                assert_eq!(got, expect, "step {step}");
                if let Some((reader, then)) = &old {
                    let (_, d) = &then[&i];
                    assert_eq!(
                        find(reader, &format!("(uid={uid})")),
                        found(&user_dn(&uid), d)
                    );
                }
            }
        }
    }
    let (entries, lists) = store.inner.cache.bytes();
    let size = usize::try_from(size).unwrap();
    assert!(entries + lists <= size + 64 * 1024, "{entries} {lists}");
    let hits = store.inner.cache.hits();
    if size > 0 {
        assert!(hits.0 > 100 && hits.1 > 100, "{hits:?}");
        assert!(crate::cache::EVICTIONS.load(Ordering::Relaxed) > evictions + 1000);
    } else {
        assert_eq!(hits, (0, 0));
        assert_eq!((entries, lists), (0, 0));
    }
}

#[test]
fn concurrent_readers_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::DEFAULT_CACHE_SIZE);
    let schema = store.schema().clone();
    let users = 20u64;
    // The mail of version n of user i: it alternates, so that index lists change too.
    let mail = |i: u64, n: u64| format!("u{i}-{}@x", n % 2);
    for i in 0..users {
        store
            .add(user(&schema, &format!("u{i}"), &mail(i, 0), "0"))
            .unwrap();
    }
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..users).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, schema, acked, done) =
            (store.clone(), schema.clone(), acked.clone(), done.clone());
        std::thread::spawn(move || {
            for n in 1..=600u64 {
                let i = n % users;
                let uid = format!("u{i}");
                store
                    .replace(
                        &ndn(&schema, &user_dn(&uid)),
                        user(&schema, &uid, &mail(i, n), &n.to_string()),
                    )
                    .unwrap();
                acked[i as usize].store(n, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..3u64)
        .map(|t| {
            let (store, acked, done) = (store.clone(), acked.clone(), done.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t);
                let mut checks = 0u64;
                let mut old: Option<(Reader, u64, Found)> = None;
                while !done.load(Ordering::SeqCst) && checks < 200_000 {
                    let i = rng.below(users);
                    let at_least = acked[i as usize].load(Ordering::SeqCst);
                    let reader = store.reader();
                    let filter = format!("(|(mail={})(mail={}))", mail(i, 0), mail(i, 1));
                    let got = find(&reader, &filter);
                    assert_eq!(got.len(), 1, "{got:?}");
                    let n: u64 = got[0].1.parse().unwrap();
                    assert!(n >= at_least, "user {i}: version {n} after {at_least}");
                    // The index list and the entry agree: the entry holds the value it was
                    // found by.
                    let by_mail = find(&reader, &format!("(mail={})", mail(i, n)));
                    assert_eq!(by_mail, got);
                    assert_eq!(find(&reader, &format!("(uid=u{i})")), got);
                    // A snapshot held across writes keeps its view.
                    match &old {
                        Some((r, j, seen)) => {
                            let f = format!("(|(mail={})(mail={}))", mail(*j, 0), mail(*j, 1));
                            assert_eq!(&find(r, &f), seen);
                            if rng.below(16) == 0 {
                                old = None;
                            }
                        }
                        None => old = Some((reader, i, got)),
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let hits = store.inner.cache.hits();
    assert!(hits.0 > 0 && hits.1 > 0, "{hits:?}");
}
