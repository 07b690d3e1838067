//! Lockout after repeated failed binds, per account and per source address.
//!
//! From the `threshold`-th failure in a row, binds to that account (or from that address) are
//! refused without checking the password, for a period that starts at `base` and doubles with
//! each further lockout up to `max`. A successful bind clears the account's and the address's
//! run of failures. The state lives in memory (a restart clears it) in a bounded table, so a
//! flood of failures from many addresses cannot grow it without end; an administrator sees a
//! lock as the account's `pwdAccountLockedTime` and clears it by deleting that attribute.

use roster_schema::dn::NormDn;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures in a row that lock an account; 0: accounts are not locked.
    pub threshold: u32,
    /// Failures in a row that lock a source address; 0: addresses are not locked.
    pub address_threshold: u32,
    /// The first lock's length.
    pub base: Duration,
    /// The longest lock.
    pub max: Duration,
}

/// Most accounts and addresses tracked at once; past it the stalest are forgotten.
const MAX_TRACKED: usize = 100_000;

/// A run of failures with no success since: after this much quiet, it is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(NormDn),
    Address(IpAddr),
}

#[derive(Debug, Clone)]
struct Track {
    /// Failures since the last success or lock.
    failures: u32,
    /// Locks so far in this run; each doubles the next one's length.
    locks: u32,
    locked_until: Option<Instant>,
    locked_at: Option<SystemTime>,
    last: Instant,
}

/// What a failure led to, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    Account { dn: String, for_secs: u64 },
    Address { addr: IpAddr, for_secs: u64 },
}

/// Why a bind is refused before its password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Account { remaining: Duration },
    Address { remaining: Duration },
}

#[derive(Debug)]
pub struct Lockout {
    config: LockoutConfig,
    tracks: Mutex<HashMap<Key, Track>>,
}

impl Lockout {
    pub fn new(config: LockoutConfig) -> Lockout {
        Lockout {
            config,
            tracks: Mutex::new(HashMap::new()),
        }
    }

    fn tracks(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Track>> {
        // The table holds counters only: after a panic elsewhere it is still usable.
        self.tracks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` when binds to `dn` or from `addr` are locked now.
    pub fn check(&self, dn: &NormDn, addr: IpAddr) -> Result<(), Refusal> {
        if self.off() {
            return Ok(());
        }
        let now = Instant::now();
        let tracks = self.tracks();
        let remaining = |k: &Key| {
            tracks
                .get(k)
                .and_then(|t| t.locked_until)
                .and_then(|u| u.checked_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        if let Some(r) = remaining(&Key::Account(dn.clone())) {
            return Err(Refusal::Account { remaining: r });
        }
        if let Some(r) = remaining(&Key::Address(addr)) {
            return Err(Refusal::Address { remaining: r });
        }
        Ok(())
    }

    /// Records a failed bind to `dn` (if it names an account) from `addr`; the locks it caused.
    pub fn failed(&self, dn: Option<&NormDn>, addr: IpAddr) -> Vec<Locked> {
        if self.off() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut tracks = self.tracks();
        if tracks.len() >= MAX_TRACKED {
            forget_stale(&mut tracks, now);
        }
        let mut out = Vec::new();
        let keys = dn
            .filter(|_| self.config.threshold > 0)
            .map(|d| (Key::Account(d.clone()), self.config.threshold))
            .into_iter()
            .chain(
                (self.config.address_threshold > 0)
                    .then_some((Key::Address(addr), self.config.address_threshold)),
            );
        for (key, threshold) in keys {
            if tracks.len() >= MAX_TRACKED && !tracks.contains_key(&key) {
                continue;
            }
            let t = tracks.entry(key.clone()).or_insert(Track {
                failures: 0,
                locks: 0,
                locked_until: None,
                locked_at: None,
                last: now,
            });
            if now.duration_since(t.last) > FORGET_AFTER {
                t.locks = 0;
                t.failures = 0;
            }
            t.last = now;
            t.failures += 1;
            if t.failures >= threshold {
                let factor = 2u32.saturating_pow(t.locks.min(30));
                let length = self.config.base.saturating_mul(factor).min(self.config.max);
                t.locks += 1;
                t.failures = 0;
                t.locked_until = Some(now + length);
                t.locked_at = Some(SystemTime::now());
                let for_secs = length.as_secs();
                out.push(match &key {
                    Key::Account(d) => Locked::Account {
                        dn: d.to_string(),
                        for_secs,
                    },
                    Key::Address(a) => Locked::Address { addr: *a, for_secs },
                });
            }
        }
        out
    }

    /// Records a successful bind: the account's and the address's runs end.
    pub fn succeeded(&self, dn: &NormDn, addr: IpAddr) {
        if self.off() {
            return;
        }
        let mut tracks = self.tracks();
        tracks.remove(&Key::Account(dn.clone()));
        tracks.remove(&Key::Address(addr));
    }

    fn off(&self) -> bool {
        self.config.threshold == 0 && self.config.address_threshold == 0
    }

    /// When the account was locked, while it is.
    pub fn locked_since(&self, dn: &NormDn) -> Option<SystemTime> {
        let now = Instant::now();
        let tracks = self.tracks();
        let t = tracks.get(&Key::Account(dn.clone()))?;
        match t.locked_until {
            Some(u) if u > now => t.locked_at,
            _ => None,
        }
    }

    /// Clears the account's lock and run of failures (an administrator's unlock); true if it
    /// was locked.
    pub fn clear(&self, dn: &NormDn) -> bool {
        let now = Instant::now();
        self.tracks()
            .remove(&Key::Account(dn.clone()))
            .is_some_and(|t| t.locked_until.is_some_and(|u| u > now))
    }
}

/// Drops tracks quiet for longer than a lock lasts, oldest first, until there is room.
fn forget_stale(tracks: &mut HashMap<Key, Track>, now: Instant) {
    tracks.retain(|_, t| {
        t.locked_until.is_some_and(|u| u > now) || now.duration_since(t.last) < FORGET_AFTER
    });
    if tracks.len() >= MAX_TRACKED {
        let mut by_age: Vec<(Instant, Key)> = tracks
            .iter()
            .filter(|(_, t)| t.locked_until.is_none_or(|u| u <= now))
            .map(|(k, t)| (t.last, k.clone()))
            .collect();
        by_age.sort_by_key(|(last, _)| *last);
        for (_, k) in by_age.into_iter().take(MAX_TRACKED / 10) {
            tracks.remove(&k);
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

    #[test]
    fn locks_from_the_threshold_and_doubles() {
        let l = Lockout::new(LockoutConfig {
            threshold: 3,
            address_threshold: 3,
            base: Duration::from_secs(60),
            max: Duration::from_secs(150),
        });
        let a = dn("uid=a,dc=x");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.failed(Some(&a), ip).is_empty());
        assert!(l.failed(Some(&a), other).is_empty());
        assert!(l.check(&a, ip).is_ok());
        // The third failure of the account locks it (the addresses have fewer).
        let locked = l.failed(Some(&a), other);
        assert_eq!(
            locked,
            vec![Locked::Account {
                dn: "uid=a,dc=x".into(),
                for_secs: 60
            }]
        );
        assert!(matches!(l.check(&a, ip), Err(Refusal::Account { .. })));
        assert!(l.locked_since(&a).is_some());
        // An administrator clears it; the next lock lasts longer, capped.
        assert!(l.clear(&a));
        assert!(l.check(&a, ip).is_ok());
        for _ in 0..3 {
            l.failed(Some(&a), ip);
        }
        // The address reached 3 as well (one failure before, two now... plus this run).
        assert!(l.check(&a, ip).is_err());
        // A success ends the runs.
        l.succeeded(&a, ip);
        assert!(l.check(&a, ip).is_ok());
        assert!(l.locked_since(&a).is_none());
    }

    #[test]
    fn addresses_lock_for_unknown_names_too() {
        let l = Lockout::new(LockoutConfig {
            threshold: 2,
            address_threshold: 2,
            base: Duration::from_secs(10),
            max: Duration::from_secs(10),
        });
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        l.failed(None, ip);
        let locked = l.failed(None, ip);
        assert_eq!(locked.len(), 1);
        assert!(matches!(
            l.check(&dn("uid=b,dc=x"), ip),
            Err(Refusal::Address { .. })
        ));
        let off = Lockout::new(LockoutConfig {
            threshold: 0,
            address_threshold: 0,
            base: Duration::ZERO,
            max: Duration::ZERO,
        });
        assert!(off.failed(None, ip).is_empty());
    }
}
