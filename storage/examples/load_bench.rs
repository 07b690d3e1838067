//! Loads an LDIF made by `shared/bench/gen_ldif.py` with the bulk loader and times it, then
//! times reopening and a few kinds of searches.
//!
//! ```text
//! python3 ../shared/bench/gen_ldif.py 100000 > /tmp/100k.ldif
//! cargo run --release -p roster-storage --example load_bench -- /tmp/100k.ldif /tmp/bench-store [nosub]
//! ```
//!
//! The LDIF reader here only knows the plain form that script writes (no base64, no folding).

use roster_schema::{AttrDesc, Attribute, Dn, Entry, Filter, Schema};
use roster_storage::{Durability, IndexSpec, Scope, Store, StoreConfig};
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

fn index(attr: &str, equality: bool, substring: bool) -> IndexSpec {
    IndexSpec {
        attr: attr.into(),
        equality,
        presence: false,
        substring,
    }
}

fn entry(schema: &Schema, lines: &[(String, String)]) -> Result<Entry, Error> {
    let mut it = lines.iter();
    let (_, dn) = it.next().ok_or("empty record")?;
    let dn = Dn::parse(dn)?;
    let ndn = dn.normalize(schema)?;
    let mut attrs: Vec<Attribute> = Vec::new();
    for (name, value) in it {
        let desc =
            AttrDesc::parse(schema, name).ok_or_else(|| format!("unknown attribute {name}"))?;
        match attrs.iter_mut().find(|a| a.desc == desc) {
            Some(a) => a.values.push(value.clone().into_bytes()),
            None => attrs.push(Attribute {
                desc,
                values: vec![value.clone().into_bytes()],
            }),
        }
    }
    Ok(Entry { dn, ndn, attrs })
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let ldif = args
        .next()
        .ok_or("usage: load_bench FILE.ldif [STORE_DIR]")?;
    let dir = args
        .next()
        .unwrap_or_else(|| "/tmp/roster-load-bench".into());
    // `nosub` as third argument drops the substring indexes, to measure what they cost.
    let substring = args.next().as_deref() != Some("nosub");
    // `-` as the LDIF searches an existing store without loading.
    let load = ldif != "-";
    if load {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let schema = Arc::new(Schema::builtin());
    let config = StoreConfig {
        change_log: roster_storage::DEFAULT_CHANGE_LOG,
        keep_csn: false,
        cache_size: roster_storage::DEFAULT_CACHE_SIZE,
        path: dir.clone().into(),
        indexes: vec![
            index("objectClass", true, false),
            index("uid", true, substring),
            index("mail", true, substring),
            index("cn", true, substring),
            index("member", true, false),
        ],
        durability: Durability::Buffer,
        integrity: vec!["member".into()],
        unique: Vec::new(),
    };

    let started = Instant::now();
    let store = Store::open(&config, schema.clone())?;
    let entries = if load {
        load_ldif(&store, &schema, &ldif, started)?
    } else {
        store.reader().walk()?.count() as u64
    };

    let t = Instant::now();
    store.close()?;
    println!("close: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let store = Store::open(&config, schema.clone())?;
    println!("reopen: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    search(&store, &schema, entries)?;
    let t = Instant::now();
    let walked = store
        .dump_iter()?
        .try_fold(0u64, |n, item| item.map(|_| n + 1))?;
    println!(
        "dump_iter: {walked} entries, {:.2} µs each (read, decode, pre-order)",
        t.elapsed().as_secs_f64() * 1e6 / walked.max(1) as f64
    );
    if load {
        add_one_by_one(&store, &schema)?;
    }
    let t = Instant::now();
    let report = store.verify()?;
    println!(
        "verify: clean={} in {:.2} s",
        report.is_clean(),
        t.elapsed().as_secs_f64()
    );
    store.close()?;
    Ok(())
}

fn load_ldif(store: &Store, schema: &Schema, ldif: &str, started: Instant) -> Result<u64, Error> {
    let mut loader = store.bulk_loader()?;
    let file = BufReader::with_capacity(1 << 20, std::fs::File::open(ldif)?);
    let mut record: Vec<(String, String)> = Vec::new();
    let mut first = true;
    let mut flush = |record: &mut Vec<(String, String)>| -> Result<(), Error> {
        if record.is_empty() {
            return Ok(());
        }
        let e = entry(schema, record)?;
        record.clear();
        if std::mem::take(&mut first) {
            loader.add_root(e)?;
        } else {
            loader.add(e)?;
        }
        Ok(())
    };
    for line in file.lines() {
        let line = line?;
        if line.is_empty() {
            flush(&mut record)?;
            continue;
        }
        let (name, value) = line
            .split_once(": ")
            .ok_or_else(|| format!("bad line {line}"))?;
        record.push((name.to_string(), value.to_string()));
    }
    flush(&mut record)?;
    let stats = loader.finish()?;
    let loaded = started.elapsed();
    println!(
        "load: {} entries, {} keys, {} runs in {:.2} s ({:.0} entries/s; finishing {:.2} s of it)",
        stats.entries,
        stats.index_keys,
        stats.runs,
        loaded.as_secs_f64(),
        stats.entries as f64 / loaded.as_secs_f64(),
        stats.finishing.as_secs_f64()
    );
    Ok(stats.entries)
}

/// Times single adds, each its own transaction (as over LDAP).
fn add_one_by_one(store: &Store, schema: &Schema) -> Result<(), Error> {
    let n = 5_000;
    let t = Instant::now();
    for i in 0..n {
        let uid = format!("added{i:07}");
        let lines: Vec<(String, String)> = [
            ("dn", format!("uid={uid},ou=people,dc=example,dc=com")),
            ("objectClass", "inetOrgPerson".into()),
            ("uid", uid.clone()),
            ("cn", format!("Added {i}")),
            ("sn", format!("{i}")),
            ("mail", format!("{uid}@example.com")),
            ("mail", format!("a.{uid}@example.com")),
        ]
        .into_iter()
        .map(|(a, v)| (a.to_string(), v))
        .collect();
        store.add(entry(schema, &lines)?)?;
    }
    println!(
        "add: {n} entries one transaction each, {:.1} µs each",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    Ok(())
}

fn search(store: &Store, schema: &Schema, entries: u64) -> Result<(), Error> {
    let users = entries.saturating_sub(3) * 50 / 51;
    let base = Dn::parse("dc=example,dc=com")?.normalize(schema)?;
    // Each set runs twice: the first pass reads blocks from the files (cold cache), the second
    // is the steady state of a server that has been answering for a while.
    let time = |label: &str, filters: &[String]| -> Result<(), Error> {
        let mut passes = Vec::new();
        let mut found = 0usize;
        for _ in 0..2 {
            found = 0;
            let mut total = Duration::ZERO;
            for f in filters {
                let compiled = Filter::parse(f)?.compile(schema);
                let t = Instant::now();
                let reader = store.reader();
                for item in reader.search(&base, Scope::Subtree, &compiled)? {
                    item?;
                    found += 1;
                }
                total += t.elapsed();
            }
            passes.push(total.as_secs_f64() * 1e6 / filters.len().max(1) as f64);
        }
        let n = filters.len().max(1);
        println!(
            "{label}: {} searches, {:.1} µs each cold, {:.1} µs warm, {:.1} entries each",
            filters.len(),
            passes.first().copied().unwrap_or_default(),
            passes.last().copied().unwrap_or_default(),
            found as f64 / n as f64
        );
        Ok(())
    };
    let pick = |i: u64| i.wrapping_mul(2_654_435_761) % users.max(1);
    let exact: Vec<String> = (0..10_000)
        .map(|i| format!("(mail=user{:07}@example.com)", pick(i)))
        .collect();
    time("(mail=userN@example.com)", &exact)?;
    let and: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "(&(objectClass=inetOrgPerson)(mail=a.user{:07}@example.com))",
                pick(i)
            )
        })
        .collect();
    time("(&(objectClass=inetOrgPerson)(mail=a.userN@...))", &and)?;
    let member: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "(member=uid=user{:07},ou=people,dc=example,dc=com)",
                pick(i)
            )
        })
        .collect();
    time("(member=<dn>)", &member)?;
    let initial: Vec<String> = (0..1_000)
        .map(|i| format!("(mail=user{:06}*)", pick(i) / 10))
        .collect();
    time("(mail=userNNNNNN*)", &initial)?;
    let any: Vec<String> = (0..200)
        .map(|i| format!("(cn=*r {}*)", pick(i) + 1000))
        .collect();
    time("(cn=*r NNNN*)", &any)?;
    time(
        "(mail=*@example.com)",
        &["(mail=*@example.com)".to_string()],
    )?;
    time(
        "(objectClass=groupOfNames)",
        &["(objectClass=groupOfNames)".to_string()],
    )?;
    Ok(())
}
