//! Limits on password guessing: per account from one address, per account from everywhere,
//! and per untrusted source address.
//!
//! Mail deployments bind from few addresses: Dovecot, webmail and Postfix SASL all check every
//! user's password from one or two hosts. Counting failures per address alone would let one
//! attacker behind IMAP lock every user of the domain out of mail, so the counts are:
//!
//! - per (address, account): from `threshold` failures in a row the account is refused from
//!   that address;
//! - per account over all addresses: from `account_threshold` failures in a row the account is
//!   refused from everywhere (a guesser spread over many addresses). The root DN has no such
//!   count: that would let anyone lock the administrator out;
//! - per source address, for addresses that are not trusted proxies (loopback by default):
//!   from `address_throttle` failures its binds are spaced out, one every second at first and
//!   doubling, and from `address_threshold` failures they are refused. The address's count is
//!   a leaky bucket (one failure forgiven per [`ADDRESS_LEAK`]), and a success does not empty
//!   it, so a guesser cannot reset it with one account it knows.
//!
//! A lock lasts `base`, doubling with each further lock up to `max`. A success ends the runs of
//! failures of its account (and from its address). The state lives in memory (a restart clears
//! it) in bounded tables; an administrator sees any lock of an account as its
//! `pwdAccountLockedTime` and clears all of them by deleting that attribute.

use ipnet::IpNet;
use roster_schema::dn::NormDn;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Lockout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures in a row for one account from one address that lock the account for that
    /// address; 0: off.
    pub threshold: u32,
    /// Failures in a row for one account from all addresses that lock the account; 0: off.
    pub account_threshold: u32,
    /// Failures from one untrusted address after which its binds are spaced out; 0: off.
    pub address_throttle: u32,
    /// Failures from one untrusted address after which its binds are refused; 0: off.
    pub address_threshold: u32,
    /// Addresses whose failures are counted per account only (proxies such as Dovecot).
    pub trusted: Vec<IpNet>,
    /// The first lock's length.
    pub base: Duration,
    /// The longest lock.
    pub max: Duration,
}

impl LockoutConfig {
    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.trusted.iter().any(|net| net.contains(&addr))
    }
}

/// The key of an untrusted address's count: IPv4 as it is, IPv6 by its /64 (one host commonly
/// holds a whole /64, and would otherwise get a fresh count per address).
fn address_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Most accounts, and most addresses, tracked at once; past it the stalest are forgotten.
const MAX_TRACKED: usize = 100_000;

/// Most addresses tracked per account; failures from further ones count for the account only.
const MAX_ADDRESSES_PER_ACCOUNT: usize = 256;

/// A run of failures with no success since: after this much quiet, it is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// An untrusted address's count of failures goes down by one per this much time.
pub const ADDRESS_LEAK: Duration = Duration::from_secs(60);

/// The spacing of binds from an address at its throttle threshold, doubling per further
/// failure up to [`THROTTLE_MAX`].
const THROTTLE_FIRST: Duration = Duration::from_secs(1);
const THROTTLE_MAX: Duration = Duration::from_secs(16);

/// A bind from a throttled address waits at most this long; past it, it is refused.
const THROTTLE_QUEUE: Duration = Duration::from_secs(60);

/// A run of failures of an account (from one address, or from all).
#[derive(Debug, Clone)]
struct Track {
    /// Failures since the last success or lock.
    failures: u32,
    /// Attempts being checked now.
    in_flight: u32,
    /// Locks so far in this run; each doubles the next one's length.
    locks: u32,
    locked_until: Option<Instant>,
    locked_at: Option<SystemTime>,
    last: Instant,
}

impl Track {
    fn new(now: Instant) -> Track {
        Track {
            failures: 0,
            in_flight: 0,
            locks: 0,
            locked_until: None,
            locked_at: None,
            last: now,
        }
    }

    fn lock_left(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn locked_since(&self, now: Instant) -> Option<SystemTime> {
        self.lock_left(now).and(self.locked_at)
    }

    /// Refused now: locked, or as many attempts in flight as would lock.
    fn refuses(&self, now: Instant, threshold: u32, base: Duration) -> Option<Duration> {
        self.lock_left(now)
            .or((self.failures + self.in_flight >= threshold).then_some(base))
    }

    fn start(&mut self, now: Instant) {
        if now.duration_since(self.last) > FORGET_AFTER {
            self.locks = 0;
            self.failures = 0;
        }
        self.last = now;
        self.in_flight += 1;
    }

    /// Counts a failure; the lock's length if it locks.
    fn fail(&mut self, now: Instant, threshold: u32, config: &LockoutConfig) -> Option<u64> {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.failures += 1;
        self.last = now;
        (self.failures >= threshold).then(|| self.lock(now, config))
    }

    fn lock(&mut self, now: Instant, config: &LockoutConfig) -> u64 {
        let factor = 2u32.saturating_pow(self.locks.min(30));
        let length = config.base.saturating_mul(factor).min(config.max);
        self.locks += 1;
        self.failures = 0;
        self.locked_until = Some(now + length);
        self.locked_at = Some(SystemTime::now());
        length.as_secs()
    }

    /// A success ends the run, unless a lock was set meanwhile (by parallel guesses).
    fn succeed(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.lock_left(now).is_none() {
            self.failures = 0;
            self.locks = 0;
            self.locked_until = None;
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.in_flight == 0 && self.lock_left(now).is_none()
    }
}

/// One account's runs: over all addresses, and per address.
#[derive(Debug)]
struct AccountTracks {
    all: Track,
    from: HashMap<IpAddr, Track>,
}

impl AccountTracks {
    fn idle(&self, now: Instant) -> bool {
        self.all.idle(now) && self.from.values().all(|t| t.idle(now))
    }

    fn last(&self) -> Instant {
        self.from
            .values()
            .map(|t| t.last)
            .fold(self.all.last, Instant::max)
    }
}

/// One untrusted address's failures over all names.
#[derive(Debug)]
struct AddressTrack {
    /// Failures, less one per [`ADDRESS_LEAK`] since `last`.
    level: f64,
    in_flight: u32,
    locks: u32,
    locked_until: Option<Instant>,
    /// The earliest time the next throttled bind may be checked.
    next_at: Instant,
    last: Instant,
}

impl AddressTrack {
    fn new(now: Instant) -> AddressTrack {
        AddressTrack {
            level: 0.0,
            in_flight: 0,
            locks: 0,
            locked_until: None,
            next_at: now,
            last: now,
        }
    }

    /// Lets the count leak down to `now`.
    fn leak(&mut self, now: Instant) {
        let gone = now.duration_since(self.last).as_secs_f64() / ADDRESS_LEAK.as_secs_f64();
        self.level = (self.level - gone).max(0.0);
        self.last = now;
        let long_quiet = self
            .locked_until
            .is_none_or(|u| now.saturating_duration_since(u) > FORGET_AFTER);
        if self.level == 0.0 && long_quiet {
            self.locks = 0;
        }
    }

    fn lock_left(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Failures not yet forgiven (a failure being forgiven still counts).
    fn failures(&self) -> u32 {
        // The level stays below the refusal threshold (a u32): the conversion saturates.
        self.level.ceil() as u32
    }
}

/// What a failure led to, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// The account, from every address.
    Account { dn: String, for_secs: u64 },
    /// The account, from one address.
    AccountFrom {
        dn: String,
        addr: IpAddr,
        for_secs: u64,
    },
    /// Every bind from the address.
    Address { addr: IpAddr, for_secs: u64 },
}

/// Why a bind is refused before its password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Account { remaining: Duration },
    AccountFrom { remaining: Duration },
    Address { remaining: Duration },
}

impl Refusal {
    /// What is locked, for the audit log.
    pub fn what(&self) -> &'static str {
        match self {
            Refusal::Account { .. } => "account",
            Refusal::AccountFrom { .. } => "account from this address",
            Refusal::Address { .. } => "address",
        }
    }

    pub fn remaining(&self) -> Duration {
        match self {
            Refusal::Account { remaining }
            | Refusal::AccountFrom { remaining }
            | Refusal::Address { remaining } => *remaining,
        }
    }
}

/// Who a bind names.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// A name that is no account (or an empty name with a password).
    Unknown,
    /// The configured root DN: counted per address only.
    Root(&'a NormDn),
    /// An entry of the directory.
    Account(&'a NormDn),
}

#[derive(Debug, Default)]
struct Tables {
    /// Keyed by shared DNs: an attempt keeps its account's key without copying the DN.
    accounts: HashMap<Arc<NormDn>, AccountTracks>,
    addresses: HashMap<IpAddr, AddressTrack>,
}

#[derive(Debug)]
pub struct Lockout {
    config: LockoutConfig,
    tables: Mutex<Tables>,
    /// Locks set since the server started (accounts, account and address pairs, addresses).
    locks: std::sync::atomic::AtomicU64,
}

impl Lockout {
    pub fn new(config: LockoutConfig) -> Lockout {
        Lockout {
            config,
            tables: Mutex::new(Tables::default()),
            locks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Locks set since the server started.
    pub fn locks_total(&self) -> u64 {
        self.locks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // The tables hold counters only: after a panic elsewhere they are still usable.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long a bind from `addr` must wait before it is checked: nothing for trusted and
    /// unthrottled addresses. Past the throttle threshold, binds from one address are spaced
    /// out however many connections it opens; a bind that would wait longer than a minute,
    /// or one from a locked address, is refused.
    pub fn throttle(&self, addr: IpAddr) -> Result<Option<Duration>, Refusal> {
        let c = &self.config;
        if c.address_throttle == 0 || c.trusts(addr) {
            return Ok(None);
        }
        let now = Instant::now();
        let mut tables = self.tables();
        let Some(t) = tables.addresses.get_mut(&address_key(addr)) else {
            return Ok(None);
        };
        t.leak(now);
        if let Some(remaining) = t.lock_left(now) {
            return Err(Refusal::Address { remaining });
        }
        let failures = t.failures();
        if failures < c.address_throttle {
            return Ok(None);
        }
        let doublings = (failures - c.address_throttle).min(16);
        let spacing = THROTTLE_FIRST
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(THROTTLE_MAX);
        let wait = t.next_at.max(now) + spacing - now;
        if wait > THROTTLE_QUEUE {
            return Err(Refusal::Address { remaining: wait });
        }
        t.next_at = now + wait;
        Ok(Some(wait))
    }

    /// Starts a bind attempt naming `name` from `addr`: refused while the account (from
    /// there or everywhere) or the address is locked, and while as many attempts as would
    /// lock are already being checked (so a burst of parallel guesses gets no more checks
    /// than a sequence). The attempt must end with [`Attempt::failed`] or
    /// [`Attempt::succeeded`]; dropped otherwise, it counts as neither.
    pub fn begin<'a>(&'a self, name: Name<'_>, addr: IpAddr) -> Result<Attempt<'a>, Refusal> {
        let c = &self.config;
        let now = Instant::now();
        let (dn, account_wide) = match name {
            Name::Unknown => (None, false),
            Name::Root(d) => (Some(d), false),
            Name::Account(d) => (Some(d), c.account_threshold > 0),
        };
        let per_address = c.threshold > 0;
        let address = (c.address_threshold > 0 || c.address_throttle > 0) && !c.trusts(addr);
        let key = address_key(addr);
        let mut tables = self.tables();
        if let Some(d) = dn {
            if let Some(a) = tables.accounts.get(d) {
                if let Some(remaining) = account_wide
                    .then(|| a.all.refuses(now, c.account_threshold, c.base))
                    .flatten()
                {
                    return Err(Refusal::Account { remaining });
                }
                if let Some(remaining) = a
                    .from
                    .get(&addr)
                    .filter(|_| per_address)
                    .and_then(|t| t.refuses(now, c.threshold, c.base))
                {
                    return Err(Refusal::AccountFrom { remaining });
                }
            }
        }
        if address {
            if let Some(t) = tables.addresses.get_mut(&key) {
                t.leak(now);
                let count = t.failures();
                // Parallel binds get no more checks than sequential ones: below the throttle,
                // as many as are left before it; past it, one at a time (the session spaces
                // them out); never as many as would lock.
                let parallel = if c.address_throttle == 0 {
                    u32::MAX
                } else if count >= c.address_throttle {
                    1
                } else {
                    c.address_throttle - count
                };
                let saturated = t.in_flight >= parallel
                    || (c.address_threshold > 0 && count + t.in_flight >= c.address_threshold);
                if let Some(remaining) = t.lock_left(now).or(saturated.then_some(c.base)) {
                    return Err(Refusal::Address { remaining });
                }
            }
        }
        let mut attempt = Attempt {
            lockout: self,
            account: None,
            addr,
            address: false,
            done: false,
        };
        if let Some(d) = dn.filter(|_| account_wide || per_address) {
            if tables.accounts.len() >= MAX_TRACKED && !tables.accounts.contains_key(d) {
                forget_stale_accounts(&mut tables.accounts, now);
            }
            if tables.accounts.len() < MAX_TRACKED || tables.accounts.contains_key(d) {
                let key = match tables.accounts.get_key_value(d) {
                    Some((k, _)) => k.clone(),
                    None => Arc::new(d.clone()),
                };
                let a = tables
                    .accounts
                    .entry(key.clone())
                    .or_insert_with(|| AccountTracks {
                        all: Track::new(now),
                        from: HashMap::new(),
                    });
                if account_wide {
                    a.all.start(now);
                }
                let mut pair = false;
                if per_address {
                    if a.from.len() >= MAX_ADDRESSES_PER_ACCOUNT && !a.from.contains_key(&addr) {
                        a.from.retain(|_, t| !t.idle(now));
                    }
                    if a.from.len() < MAX_ADDRESSES_PER_ACCOUNT || a.from.contains_key(&addr) {
                        a.from
                            .entry(addr)
                            .or_insert_with(|| Track::new(now))
                            .start(now);
                        pair = true;
                    }
                }
                attempt.account = Some(Counted {
                    dn: key,
                    all: account_wide,
                    pair,
                });
            }
        }
        if address {
            if tables.addresses.len() >= MAX_TRACKED && !tables.addresses.contains_key(&key) {
                forget_stale_addresses(&mut tables.addresses, now);
            }
            if tables.addresses.len() < MAX_TRACKED || tables.addresses.contains_key(&key) {
                let t = tables
                    .addresses
                    .entry(key)
                    .or_insert_with(|| AddressTrack::new(now));
                t.in_flight += 1;
                attempt.address = true;
            }
        }
        Ok(attempt)
    }

    /// When the account was locked (from everywhere or from some address), while it is.
    pub fn locked_since(&self, dn: &NormDn) -> Option<SystemTime> {
        let now = Instant::now();
        let tables = self.tables();
        let a = tables.accounts.get(dn)?;
        std::iter::once(&a.all)
            .chain(a.from.values())
            .filter_map(|t| t.locked_since(now))
            .min()
    }

    /// Clears the account's locks and runs of failures from every address (an
    /// administrator's unlock); true if it was locked.
    pub fn clear(&self, dn: &NormDn) -> bool {
        let now = Instant::now();
        self.tables().accounts.remove(dn).is_some_and(|a| {
            a.all.lock_left(now).is_some() || a.from.values().any(|t| t.lock_left(now).is_some())
        })
    }
}

/// What an attempt counted for its account.
#[derive(Debug)]
struct Counted {
    dn: Arc<NormDn>,
    /// The account-wide run.
    all: bool,
    /// The run from the attempt's address.
    pair: bool,
}

/// A bind attempt being checked (see [`Lockout::begin`]).
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    account: Option<Counted>,
    addr: IpAddr,
    /// Counted for the untrusted address.
    address: bool,
    done: bool,
}

impl Attempt<'_> {
    /// The password was wrong: counts a failure; the locks it caused.
    pub fn failed(mut self) -> Vec<Locked> {
        self.done = true;
        let l = self.lockout;
        let c = &l.config;
        let now = Instant::now();
        let mut tables = l.tables();
        let mut out = Vec::new();
        if let Some(counted) = &self.account {
            if let Some(a) = tables.accounts.get_mut(&counted.dn) {
                if counted.all {
                    if let Some(for_secs) = a.all.fail(now, c.account_threshold, c) {
                        out.push(Locked::Account {
                            dn: counted.dn.to_string(),
                            for_secs,
                        });
                    }
                }
                if counted.pair {
                    if let Some(t) = a.from.get_mut(&self.addr) {
                        if let Some(for_secs) = t.fail(now, c.threshold, c) {
                            out.push(Locked::AccountFrom {
                                dn: counted.dn.to_string(),
                                addr: self.addr,
                                for_secs,
                            });
                        }
                    }
                }
            }
        }
        if self.address {
            if let Some(t) = tables.addresses.get_mut(&address_key(self.addr)) {
                t.leak(now);
                t.in_flight = t.in_flight.saturating_sub(1);
                t.level += 1.0;
                if c.address_threshold > 0 && t.failures() >= c.address_threshold {
                    let factor = 2u32.saturating_pow(t.locks.min(30));
                    let length = c.base.saturating_mul(factor).min(c.max);
                    t.locks += 1;
                    // After the lock the address is still throttled, and a further lock
                    // lasts twice as long.
                    t.level = f64::from(c.address_throttle);
                    t.locked_until = Some(now + length);
                    out.push(Locked::Address {
                        addr: self.addr,
                        for_secs: length.as_secs(),
                    });
                }
            }
        }
        l.locks
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        out
    }

    /// The password was right: the account's runs of failures end (everywhere and from this
    /// address), unless a lock was set meanwhile. The address's count stays.
    pub fn succeeded(mut self) {
        self.done = true;
        let now = Instant::now();
        let mut tables = self.lockout.tables();
        if let Some(counted) = &self.account {
            if let Some(a) = tables.accounts.get_mut(&counted.dn) {
                if counted.all {
                    a.all.succeed(now);
                }
                if counted.pair {
                    if let Some(t) = a.from.get_mut(&self.addr) {
                        t.succeed(now);
                        if t.idle(now) && t.failures == 0 {
                            a.from.remove(&self.addr);
                        }
                    }
                }
                if a.idle(now) && a.all.failures == 0 && a.from.is_empty() {
                    tables.accounts.remove(&counted.dn);
                }
            }
        }
        if self.address {
            if let Some(t) = tables.addresses.get_mut(&address_key(self.addr)) {
                t.in_flight = t.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut tables = self.lockout.tables();
        if let Some(counted) = &self.account {
            if let Some(a) = tables.accounts.get_mut(&counted.dn) {
                if counted.all {
                    a.all.in_flight = a.all.in_flight.saturating_sub(1);
                }
                if let Some(t) = a.from.get_mut(&self.addr).filter(|_| counted.pair) {
                    t.in_flight = t.in_flight.saturating_sub(1);
                }
            }
        }
        if self.address {
            if let Some(t) = tables.addresses.get_mut(&address_key(self.addr)) {
                t.in_flight = t.in_flight.saturating_sub(1);
            }
        }
    }
}

/// Drops account runs quiet for a day, then the oldest idle ones, until there is room.
fn forget_stale_accounts(accounts: &mut HashMap<Arc<NormDn>, AccountTracks>, now: Instant) {
    accounts.retain(|_, a| !a.idle(now) || now.duration_since(a.last()) < FORGET_AFTER);
    if accounts.len() >= MAX_TRACKED {
        let mut by_age: Vec<(Instant, Arc<NormDn>)> = accounts
            .iter()
            .filter(|(_, a)| a.idle(now))
            .map(|(k, a)| (a.last(), k.clone()))
            .collect();
        by_age.sort_by_key(|(last, _)| *last);
        for (_, k) in by_age.into_iter().take(MAX_TRACKED / 10) {
            accounts.remove(&k);
        }
    }
}

/// Drops addresses whose count has leaked away, then the oldest idle ones.
fn forget_stale_addresses(addresses: &mut HashMap<IpAddr, AddressTrack>, now: Instant) {
    addresses.retain(|_, t| {
        t.leak(now);
        t.in_flight > 0 || t.lock_left(now).is_some() || t.level > 0.0
    });
    if addresses.len() >= MAX_TRACKED {
        let mut by_age: Vec<(f64, IpAddr)> = addresses
            .iter()
            .filter(|(_, t)| t.in_flight == 0 && t.lock_left(now).is_none())
            .map(|(k, t)| (t.level, *k))
            .collect();
        by_age.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, k) in by_age.into_iter().take(MAX_TRACKED / 10) {
            addresses.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> NormDn {
        NormDn {
            rdns: s.split(',').map(str::to_string).collect(),
        }
    }

    fn config(
        threshold: u32,
        account_threshold: u32,
        throttle: u32,
        address: u32,
    ) -> LockoutConfig {
        LockoutConfig {
            threshold,
            account_threshold,
            address_throttle: throttle,
            address_threshold: address,
            trusted: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            base: Duration::from_secs(60),
            max: Duration::from_secs(150),
        }
    }

    fn lockout(threshold: u32, account_threshold: u32, throttle: u32, address: u32) -> Lockout {
        Lockout::new(config(threshold, account_threshold, throttle, address))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_an_account_from_one_address_and_doubles() {
        let l = lockout(3, 100, 0, 0);
        let a = dn("uid=a,dc=x");
        let here = ip("192.0.2.1");
        let there = ip("192.0.2.2");
        assert!(l
            .begin(Name::Account(&a), here)
            .unwrap()
            .failed()
            .is_empty());
        assert!(l
            .begin(Name::Account(&a), here)
            .unwrap()
            .failed()
            .is_empty());
        let locked = l.begin(Name::Account(&a), here).unwrap().failed();
        assert_eq!(
            locked,
            vec![Locked::AccountFrom {
                dn: "uid=a,dc=x".into(),
                addr: here,
                for_secs: 60
            }]
        );
        assert!(matches!(
            l.begin(Name::Account(&a), here),
            Err(Refusal::AccountFrom { .. })
        ));
        // From elsewhere the account still binds, and the lock shows.
        l.begin(Name::Account(&a), there).unwrap().succeeded();
        assert!(l.locked_since(&a).is_some());
        // An administrator clears it; a success ends the run of failures.
        assert!(l.clear(&a));
        l.begin(Name::Account(&a), here).unwrap().failed();
        l.begin(Name::Account(&a), here).unwrap().succeeded();
        l.begin(Name::Account(&a), here).unwrap().failed();
        l.begin(Name::Account(&a), here).unwrap().failed();
        assert!(
            l.begin(Name::Account(&a), here).is_ok(),
            "two since the success"
        );
        // The second lock lasts twice as long, up to the maximum.
        let l = lockout(1, 100, 0, 0);
        let lengths: Vec<u64> = (0..3)
            .map(|_| {
                let attempt = l.begin(Name::Account(&a), here).unwrap();
                let lock = attempt.failed();
                l.tables()
                    .accounts
                    .get_mut(&a)
                    .unwrap()
                    .from
                    .get_mut(&here)
                    .unwrap()
                    .locked_until = None;
                match lock.as_slice() {
                    [Locked::AccountFrom { for_secs, .. }] => *for_secs,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(lengths, vec![60, 120, 150]);
    }

    #[test]
    fn one_account_locked_leaves_the_others_behind_the_same_address() {
        let l = lockout(10, 30, 10, 50);
        let a = dn("uid=a,dc=x");
        let b = dn("uid=b,dc=x");
        let proxy = ip("127.0.0.1");
        for _ in 0..12 {
            if let Ok(t) = l.begin(Name::Account(&a), proxy) {
                t.failed();
            }
        }
        assert!(l.begin(Name::Account(&a), proxy).is_err());
        assert_eq!(l.throttle(proxy), Ok(None), "loopback is trusted");
        l.begin(Name::Account(&b), proxy).unwrap().succeeded();
    }

    #[test]
    fn guessers_on_many_addresses_lock_the_account() {
        let l = lockout(10, 5, 0, 0);
        let a = dn("uid=a,dc=x");
        for i in 0..5 {
            l.begin(Name::Account(&a), ip(&format!("192.0.2.{i}")))
                .unwrap()
                .failed();
        }
        assert!(matches!(
            l.begin(Name::Account(&a), ip("198.51.100.1")),
            Err(Refusal::Account { .. })
        ));
        // The root DN is never locked from everywhere.
        let root = dn("cn=admin,dc=x");
        for i in 0..20 {
            l.begin(Name::Root(&root), ip(&format!("192.0.2.{i}")))
                .unwrap()
                .failed();
        }
        assert!(l.begin(Name::Root(&root), ip("198.51.100.1")).is_ok());
    }

    #[test]
    fn parallel_guesses_get_no_more_checks_than_a_sequence() {
        let l = lockout(3, 100, 0, 0);
        let a = dn("uid=a,dc=x");
        let here = ip("192.0.2.9");
        let burst: Vec<_> = (0..10)
            .filter_map(|_| l.begin(Name::Account(&a), here).ok())
            .collect();
        assert_eq!(burst.len(), 3, "three may be checked at once");
        let mut attempts = burst.into_iter();
        // Two wrong and the right one: no lock, and the success ends the run.
        attempts.next().unwrap().failed();
        attempts.next().unwrap().failed();
        attempts.next().unwrap().succeeded();
        assert!(l.begin(Name::Account(&a), here).is_ok());
        // Three wrong at once lock; nothing else was checked meanwhile.
        let l = lockout(3, 100, 0, 0);
        let burst: Vec<_> = (0..3)
            .map(|_| l.begin(Name::Account(&a), here).unwrap())
            .collect();
        assert!(l.begin(Name::Account(&a), here).is_err(), "saturated");
        let locks: usize = burst.into_iter().map(|t| t.failed().len()).sum();
        assert_eq!(locks, 1);
        // An attempt dropped (an error before the check) counts as nothing.
        let l = lockout(1, 100, 0, 0);
        drop(l.begin(Name::Account(&a), here).unwrap());
        assert!(l.begin(Name::Account(&a), here).is_ok());
    }

    #[test]
    fn untrusted_addresses_are_throttled_then_refused() {
        let l = lockout(100, 100, 3, 6);
        let guesser = ip("203.0.113.7");
        let b = dn("uid=b,dc=x");
        for i in 0..3 {
            assert_eq!(l.throttle(guesser), Ok(None));
            l.begin(Name::Account(&dn(&format!("uid=u{i},dc=x"))), guesser)
                .unwrap()
                .failed();
        }
        // Throttled: binds are spaced out, one second apart at first, then doubling.
        let first = l.throttle(guesser).unwrap().unwrap();
        let second = l.throttle(guesser).unwrap().unwrap();
        assert!(first >= Duration::from_millis(900), "{first:?}");
        assert!(second >= first + Duration::from_millis(900), "{second:?}");
        // A success does not reset the address's count.
        l.begin(Name::Account(&b), guesser).unwrap().succeeded();
        l.begin(Name::Unknown, guesser).unwrap().failed();
        l.begin(Name::Unknown, guesser).unwrap().failed();
        let locked = l.begin(Name::Unknown, guesser).unwrap().failed();
        assert!(
            matches!(locked.as_slice(), [Locked::Address { .. }]),
            "{locked:?}"
        );
        assert!(matches!(
            l.begin(Name::Account(&b), guesser),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(l.throttle(guesser), Err(Refusal::Address { .. })));
        // Another address is not affected; trusted ones are never counted as a whole.
        assert_eq!(l.throttle(ip("203.0.113.8")), Ok(None));
        let trusted = ip("::ffff:127.0.0.1");
        for _ in 0..10 {
            l.begin(Name::Unknown, trusted).unwrap().failed();
        }
        assert!(l.begin(Name::Account(&b), trusted).is_ok());
    }

    #[test]
    fn parallel_binds_from_an_untrusted_address_do_not_skip_the_throttle() {
        let l = lockout(100, 100, 3, 50);
        let guesser = ip("203.0.113.20");
        // First contact: as many at once as are left before the throttle.
        let burst: Vec<_> = (0..10)
            .filter_map(|_| l.begin(Name::Unknown, guesser).ok())
            .collect();
        assert_eq!(burst.len(), 3);
        for a in burst {
            a.failed();
        }
        // Past it: spaced out, and one at a time.
        assert!(l.throttle(guesser).unwrap().is_some());
        let one = l.begin(Name::Unknown, guesser).unwrap();
        assert!(l.begin(Name::Unknown, guesser).is_err());
        one.failed();
    }

    #[test]
    fn address_locks_double_and_ipv6_counts_by_64() {
        let l = lockout(100, 100, 1, 2);
        let host = |i: u32| ip(&format!("2001:db8:1:2::{i:x}"));
        l.begin(Name::Unknown, host(1)).unwrap().failed();
        let first = l.begin(Name::Unknown, host(2)).unwrap().failed();
        assert_eq!(
            first,
            vec![Locked::Address {
                addr: host(2),
                for_secs: 60
            }]
        );
        assert!(l.begin(Name::Unknown, host(3)).is_err(), "the same /64");
        assert!(
            l.begin(Name::Unknown, ip("2001:db8:1:3::1")).is_ok(),
            "another /64"
        );
        // Once the lock ends the address is still throttled, and the next lock is longer.
        l.tables()
            .addresses
            .get_mut(&address_key(host(1)))
            .unwrap()
            .locked_until = None;
        assert!(l.throttle(host(4)).unwrap().is_some());
        let second = l.begin(Name::Unknown, host(4)).unwrap().failed();
        assert_eq!(
            second,
            vec![Locked::Address {
                addr: host(4),
                for_secs: 120
            }]
        );
    }

    #[test]
    fn an_address_count_leaks_away() {
        let l = lockout(100, 100, 2, 100);
        let guesser = ip("203.0.113.9");
        l.begin(Name::Unknown, guesser).unwrap().failed();
        l.begin(Name::Unknown, guesser).unwrap().failed();
        assert!(l.throttle(guesser).unwrap().is_some());
        // Two leak periods later the count is back under the threshold.
        {
            let mut tables = l.tables();
            let t = tables.addresses.get_mut(&guesser).unwrap();
            t.last = t.last.checked_sub(ADDRESS_LEAK * 2).unwrap();
            t.next_at = Instant::now();
        }
        assert_eq!(l.throttle(guesser), Ok(None));
    }

    #[test]
    fn off_counts_nothing() {
        let off = lockout(0, 0, 0, 0);
        let a = dn("uid=a,dc=x");
        for _ in 0..20 {
            assert!(off
                .begin(Name::Account(&a), ip("2001:db8::1"))
                .unwrap()
                .failed()
                .is_empty());
        }
        assert!(off.tables().accounts.is_empty() && off.tables().addresses.is_empty());
    }
}
