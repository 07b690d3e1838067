//! Crash safety of durable writes: rosterd with `durability = "sync"` is killed with SIGKILL
//! while several clients add, modify and delete, then restarted on the same data directory.
//! Every acknowledged write must be there, every write in flight must be wholly there or wholly
//! absent (indexes included), and `rosterd verify` must find the indexes exact.

use ldap3::{LdapConn, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use roster_tests::{data::Rng, rosterd_cmd, rosterd_config, Rosterd, ROOT_DN, ROOT_PW};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASE: &str = "ou=crash,dc=example,dc=com";
const CLIENTS: usize = 4;
/// Operations per client per round, at most.
const OPS_PER_CLIENT: usize = 60;
const ROUNDS: u64 = 15;
const OP_TIMEOUT: Duration = Duration::from_secs(10);

const LDIF: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
                    dn: ou=crash,dc=example,dc=com\nobjectClass: organizationalUnit\nou: crash\n";

/// The states an entry may be in after the crash: `None` absent, `Some(v)` present at version
/// `v`. One state for an acknowledged write; two for the write that was in flight.
type States = Vec<Option<u32>>;

fn dn(name: &str) -> String {
    format!("uid={name},{BASE}")
}

fn home_mail(name: &str) -> String {
    format!("{name}@crash.example.com")
}

fn alias_mail(name: &str, version: u32) -> String {
    format!("{name}-v{version}@alias.example.com")
}

/// Every attribute of the entry `name` at `version`, as a client reads it back.
fn expected(name: &str, version: u32) -> BTreeMap<String, BTreeSet<String>> {
    let one = |v: String| BTreeSet::from([v]);
    BTreeMap::from([
        ("objectclass".to_string(), one("inetOrgPerson".into())),
        ("uid".to_string(), one(name.into())),
        ("cn".to_string(), one(format!("Crash {name}"))),
        ("sn".to_string(), one("Crash".into())),
        (
            "mail".to_string(),
            BTreeSet::from([home_mail(name), alias_mail(name, version)]),
        ),
        ("description".to_string(), one(format!("v{version}"))),
    ])
}

fn connect(url: &str) -> Result<LdapConn, LdapError> {
    let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
    let mut c = LdapConn::with_settings(settings, url)?;
    c.with_timeout(OP_TIMEOUT)
        .simple_bind(ROOT_DN, ROOT_PW)?
        .success()?;
    Ok(c)
}

/// A result code from the server is an answer (success or a refusal, neither leaving the write
/// in doubt); anything else (the connection closed by the kill) leaves it in doubt.
fn answered(r: Result<ldap3::LdapResult, LdapError>) -> Option<u32> {
    match r {
        Ok(res) => Some(res.rc),
        Err(LdapError::LdapResult { result }) => Some(result.rc),
        Err(_) => None,
    }
}

/// One client's round: adds, modifies and deletes its own entries until the connection fails
/// (the kill) or it has done `OPS_PER_CLIENT`. `model` holds the states of its entries,
/// updated as answers arrive; `acked` counts answered writes across clients.
fn client(
    url: &str,
    round: u64,
    id: usize,
    mut model: BTreeMap<String, States>,
    acked: &AtomicUsize,
) -> BTreeMap<String, States> {
    let mut rng = Rng::new(round * 1000 + id as u64 + 1);
    let Ok(mut c) = connect(url) else {
        return model;
    };
    for n in 0..OPS_PER_CLIENT {
        // Entries whose state is known (not left in doubt by an earlier crash).
        let present: Vec<(String, u32)> = model
            .iter()
            .filter_map(|(k, s)| match s.as_slice() {
                [Some(v)] => Some((k.clone(), *v)),
                _ => None,
            })
            .collect();
        let roll = rng.below(100);
        if present.is_empty() || roll < 50 {
            let name = format!("c{round}t{id}n{n}");
            let attrs: Vec<(String, HashSet<String>)> = expected(&name, 0)
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect();
            model.insert(name.clone(), vec![None, Some(0)]);
            match answered(c.with_timeout(OP_TIMEOUT).add(&dn(&name), attrs)) {
                Some(0) => model.insert(name, vec![Some(0)]),
                Some(rc) => panic!("add {name}: result code {rc}"),
                None => return model,
            };
        } else if roll < 80 {
            let (name, version) = rng.pick(&present).clone();
            let next = version + 1;
            let mods = vec![
                Mod::Replace(
                    "mail".to_string(),
                    HashSet::from([home_mail(&name), alias_mail(&name, next)]),
                ),
                Mod::Replace(
                    "description".to_string(),
                    HashSet::from([format!("v{next}")]),
                ),
            ];
            model.insert(name.clone(), vec![Some(version), Some(next)]);
            match answered(c.with_timeout(OP_TIMEOUT).modify(&dn(&name), mods)) {
                Some(0) => model.insert(name, vec![Some(next)]),
                Some(rc) => panic!("modify {name}: result code {rc}"),
                None => return model,
            };
        } else {
            let (name, version) = rng.pick(&present).clone();
            model.insert(name.clone(), vec![Some(version), None]);
            match answered(c.with_timeout(OP_TIMEOUT).delete(&dn(&name))) {
                Some(0) => model.insert(name, vec![None]),
                Some(rc) => panic!("delete {name}: result code {rc}"),
                None => return model,
            };
        }
        acked.fetch_add(1, Ordering::SeqCst);
    }
    model
}

fn search(c: &mut LdapConn, base: &str, scope: Scope, filter: &str) -> Vec<SearchEntry> {
    let (entries, res) = c
        .with_timeout(OP_TIMEOUT)
        .search(base, scope, filter, vec!["*"])
        .and_then(|r| r.success())
        .unwrap_or_else(|e| panic!("search {filter} under {base}: {e}"));
    assert_eq!(res.rc, 0);
    entries.into_iter().map(SearchEntry::construct).collect()
}

fn attrs_of(e: &SearchEntry) -> BTreeMap<String, BTreeSet<String>> {
    e.attrs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.iter().cloned().collect()))
        .collect()
}

/// DNs of the crash entries that match `filter` (one level below them), lowercased.
fn found(c: &mut LdapConn, filter: &str) -> BTreeSet<String> {
    search(c, BASE, Scope::OneLevel, filter)
        .iter()
        .map(|e| e.dn.to_ascii_lowercase())
        .collect()
}

/// Checks the restarted server against the model and resolves every entry in doubt to what
/// the server has. Index lookups (uid, mail) are checked for the entries of `detailed`.
/// Returns how many writes in doubt turned out done and not done.
fn check(
    url: &str,
    model: &mut BTreeMap<String, States>,
    detailed: &BTreeSet<String>,
) -> (usize, usize) {
    let mut done = 0;
    let mut not_done = 0;
    let mut c = connect(url).expect("connect to the restarted server");
    // Every stored entry, with its attributes, in one search.
    let mut stored: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> =
        search(&mut c, BASE, Scope::OneLevel, "(objectClass=*)")
            .iter()
            .map(|e| {
                let a = attrs_of(e);
                let uid = a
                    .get("uid")
                    .and_then(|v| v.iter().next())
                    .cloned()
                    .unwrap_or_else(|| panic!("entry without uid: {}", e.dn));
                (uid, a)
            })
            .collect();
    for (name, states) in model.iter_mut() {
        let have = stored.remove(name);
        // The state the server is in, among the allowed ones.
        let state = match &have {
            None => {
                assert!(
                    states.contains(&None),
                    "{name}: acknowledged as {states:?} but absent after the crash"
                );
                None
            }
            Some(attrs) => {
                let version = states
                    .iter()
                    .flatten()
                    .copied()
                    .find(|&v| *attrs == expected(name, v));
                assert!(
                    version.is_some(),
                    "{name}: expected one of {states:?}, the server has {attrs:?}"
                );
                version
            }
        };
        if detailed.contains(name) {
            let me = BTreeSet::from([dn(name).to_ascii_lowercase()]);
            let none = BTreeSet::new();
            let want = |present: bool| if present { &me } else { &none };
            assert_eq!(
                &found(&mut c, &format!("(mail={})", home_mail(name))),
                want(state.is_some()),
                "{name}: mail index disagrees with the entry ({state:?})"
            );
            assert_eq!(
                &found(&mut c, &format!("(uid={name})")),
                want(state.is_some()),
                "{name}: uid index disagrees with the entry ({state:?})"
            );
            for v in states.iter().flatten() {
                assert_eq!(
                    &found(&mut c, &format!("(mail={})", alias_mail(name, *v))),
                    want(state == Some(*v)),
                    "{name}: index of version {v} disagrees with the entry ({state:?})"
                );
            }
        }
        if states.len() > 1 {
            // The write in flight: its outcome is the last state.
            if states.last() == Some(&state) {
                done += 1;
            } else {
                not_done += 1;
            }
        }
        *states = vec![state];
    }
    assert!(
        stored.is_empty(),
        "entries nobody wrote: {:?}",
        stored.keys().collect::<Vec<_>>()
    );
    let _ = c.unbind();
    (done, not_done)
}

fn verify(config: &std::path::Path) {
    let out = rosterd_cmd(config)
        .arg("verify")
        .output()
        .expect("run rosterd verify");
    assert!(
        out.status.success(),
        "rosterd verify after the crash: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let started = Instant::now();
    let config = rosterd_config("").replace("durability = \"buffer\"", "durability = \"sync\"");
    assert!(config.contains("durability = \"sync\""));
    let mut server = Rosterd::start_with_config(Some(LDIF), &config);
    let mut models: Vec<BTreeMap<String, States>> = vec![BTreeMap::new(); CLIENTS];
    let mut rng = Rng::new(0x5eed_c0de);
    let mut kills = 0;
    let mut acked_total = 0;
    let mut in_doubt = (0, 0);
    for round in 0..ROUNDS {
        let acked = Arc::new(AtomicUsize::new(0));
        // Kill once this many writes were answered: anywhere in the round, at its very start
        // included.
        let kill_after = rng.below(CLIENTS * OPS_PER_CLIENT * 3 / 4);
        let url = server.url();
        let handles: Vec<_> = std::mem::take(&mut models)
            .into_iter()
            .enumerate()
            .map(|(id, model)| {
                let (url, acked) = (url.clone(), acked.clone());
                std::thread::spawn(move || client(&url, round, id, model, &acked))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while acked.load(Ordering::SeqCst) < kill_after
            && Instant::now() < deadline
            && !handles.iter().all(|h| h.is_finished())
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let (dir, cfg) = server.kill();
        kills += 1;
        models = handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();
        acked_total += acked.load(Ordering::SeqCst);

        // Every other round the offline verify recovers the journal first; otherwise the
        // restarted server does.
        if round % 2 == 0 {
            verify(&cfg);
        }
        server = Rosterd::spawn(dir, cfg);
        let this_round: BTreeSet<String> = models
            .iter()
            .flat_map(|m| m.keys())
            .filter(|k| k.starts_with(&format!("c{round}t")))
            .cloned()
            .collect();
        let mut all: BTreeMap<String, States> = models
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (done, not_done) = check(&server.url(), &mut all, &this_round);
        in_doubt = (in_doubt.0 + done, in_doubt.1 + not_done);
        // Back to the clients, with every doubt resolved.
        for m in &mut models {
            for (k, v) in m.iter_mut() {
                if let Some(s) = all.get(k) {
                    v.clone_from(s);
                }
            }
        }
    }
    let (_dir, cfg, status) = server.stop();
    assert!(status.success(), "rosterd did not stop cleanly: {status}");
    verify(&cfg);
    eprintln!(
        "{kills} kills, {acked_total} acknowledged writes, writes in flight at a kill: {} done, \
         {} not done; {:.1} s",
        in_doubt.0,
        in_doubt.1,
        started.elapsed().as_secs_f64()
    );
    assert!(acked_total > 0, "no write was ever acknowledged");
}
