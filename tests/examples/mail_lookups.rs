//! A load generator for the lookups Postfix makes through its LDAP tables (the queries of
//! docs/mail-servers.md), for `bench/mail.sh`: each worker keeps one connection, as Postfix's
//! proxymap does, and repeats one kind of lookup for a number of seconds.
//!
//!     cargo run --release -p roster-tests --example mail_lookups -- \
//!         URL BASE KIND USERS THREADS SECONDS
//!
//! KIND: `alias` (an alias to its user), `group` (a group of 50 users: the search, then one
//! base search per member, as special_result_attribute makes Postfix do), `nested` (a group of
//! two such groups), `sender` (the sender login map on an alias). Prints `lookups N` and
//! `searches N` (LDAP searches made).

use ldap3::{LdapConn, Scope, SearchEntry};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DELIVERING: &str = "(|(&(objectClass=rosterMailUser)(!(rosterAccountDisabled=TRUE)))(&(objectClass=rosterGroup)(!(rosterGroupKind=security))))";
const ATTRS: [&str; 3] = ["mail", "member", "rosterForwardingAddress"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, base, kind, users, threads, seconds] = args.as_slice() else {
        eprintln!("usage: mail_lookups URL BASE KIND USERS THREADS SECONDS");
        std::process::exit(2);
    };
    let users: u64 = users.parse().unwrap_or(100_000);
    let threads: usize = threads.parse().unwrap_or(4);
    let seconds: u64 = seconds.parse().unwrap_or(10);
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let searches = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for t in 0..threads {
        let (url, base, kind) = (url.clone(), base.clone(), kind.clone());
        let (stop, lookups, searches) = (stop.clone(), lookups.clone(), searches.clone());
        workers.push(std::thread::spawn(move || {
            let mut conn = match LdapConn::new(&url) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("connect {url}: {e}");
                    return;
                }
            };
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                // xorshift: a different user or group each time, the same sequence each run.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = x % users;
                let groups = (users / 50).max(1);
                let n = match kind.as_str() {
                    "alias" => lookup(
                        &mut conn,
                        &base,
                        &format!("a.user{i:07}@example.com"),
                        DELIVERING,
                    ),
                    "sender" => lookup(
                        &mut conn,
                        &base,
                        &format!("a.user{i:07}@example.com"),
                        DELIVERING,
                    ),
                    "group" => lookup(
                        &mut conn,
                        &base,
                        &format!("group{:05}@example.com", i % groups),
                        DELIVERING,
                    ),
                    "nested" => lookup(
                        &mut conn,
                        &base,
                        &format!("outer{:05}@example.com", i % (groups / 2).max(1)),
                        DELIVERING,
                    ),
                    other => {
                        eprintln!("unknown kind {other}");
                        return;
                    }
                };
                match n {
                    Ok(n) => {
                        searches.fetch_add(n, Ordering::Relaxed);
                        lookups.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("lookup failed: {e}");
                        return;
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("lookups {}", lookups.load(Ordering::Relaxed));
    println!("searches {}", searches.load(Ordering::Relaxed));
    println!("seconds {secs:.3}");
}

/// Postfix's expansion of one address: the query, then a base search of every DN in `member`
/// of what it found, recursively. Returns the number of searches made.
fn lookup(
    conn: &mut LdapConn,
    base: &str,
    address: &str,
    classes: &str,
) -> ldap3::result::Result<u64> {
    let filter = format!("(&(mailLocalAddress={address}){classes})");
    let (found, _) = conn
        .search(base, Scope::Subtree, &filter, ATTRS.to_vec())?
        .success()?;
    let mut searches = 1;
    let mut pending: Vec<String> = Vec::new();
    for e in found {
        let e = SearchEntry::construct(e);
        pending.extend(e.attrs.get("member").cloned().unwrap_or_default());
    }
    while let Some(dn) = pending.pop() {
        let (found, _) = conn
            .search(&dn, Scope::Base, "(objectclass=*)", ATTRS.to_vec())?
            .success()?;
        searches += 1;
        for e in found {
            let e = SearchEntry::construct(e);
            pending.extend(e.attrs.get("member").cloned().unwrap_or_default());
        }
    }
    Ok(searches)
}
