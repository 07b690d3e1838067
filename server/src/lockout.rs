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
    /// Attempts being checked now.
    in_flight: u32,
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

    /// Starts a bind attempt to `dn` (an account, or `None` for a name that is none) from
    /// `addr`: refused while either is locked, and while as many attempts as would lock it are
    /// already being checked (so a burst of parallel guesses gets no more checks than a
    /// sequence). The attempt must end with [`Attempt::failed`] or [`Attempt::succeeded`];
    /// dropped otherwise, it counts as neither.
    pub fn begin<'a>(&'a self, dn: Option<&NormDn>, addr: IpAddr) -> Result<Attempt<'a>, Refusal> {
        let mut keys = Vec::new();
        if let Some(d) = dn.filter(|_| self.config.threshold > 0) {
            keys.push((Key::Account(d.clone()), self.config.threshold));
        }
        if self.config.address_threshold > 0 {
            keys.push((Key::Address(addr), self.config.address_threshold));
        }
        let now = Instant::now();
        let mut tracks = self.tracks();
        if tracks.len() >= MAX_TRACKED {
            forget_stale(&mut tracks, now);
        }
        for (key, threshold) in &keys {
            let Some(t) = tracks.get(key) else { continue };
            let locked = t.locked_until.and_then(|u| u.checked_duration_since(now));
            let saturated = t.failures + t.in_flight >= *threshold;
            if let Some(remaining) = locked
                .filter(|d| !d.is_zero())
                .or(saturated.then_some(self.config.base))
            {
                return Err(match key {
                    Key::Account(_) => Refusal::Account { remaining },
                    Key::Address(_) => Refusal::Address { remaining },
                });
            }
        }
        let mut counted = Vec::new();
        for (key, threshold) in keys {
            if tracks.len() >= MAX_TRACKED && !tracks.contains_key(&key) {
                continue;
            }
            let t = tracks.entry(key.clone()).or_insert(Track {
                failures: 0,
                in_flight: 0,
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
            t.in_flight += 1;
            counted.push((key, threshold));
        }
        Ok(Attempt {
            lockout: self,
            counted,
            done: false,
        })
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

/// A bind attempt being checked (see [`Lockout::begin`]).
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    counted: Vec<(Key, u32)>,
    done: bool,
}

impl Attempt<'_> {
    /// The password was wrong: counts a failure; the locks it caused.
    pub fn failed(mut self) -> Vec<Locked> {
        self.done = true;
        let l = self.lockout;
        let now = Instant::now();
        let mut tracks = l.tracks();
        let mut out = Vec::new();
        for (key, threshold) in &self.counted {
            let Some(t) = tracks.get_mut(key) else {
                continue;
            };
            t.in_flight = t.in_flight.saturating_sub(1);
            t.failures += 1;
            t.last = now;
            if t.failures >= *threshold {
                let factor = 2u32.saturating_pow(t.locks.min(30));
                let length = l.config.base.saturating_mul(factor).min(l.config.max);
                t.locks += 1;
                t.failures = 0;
                t.locked_until = Some(now + length);
                t.locked_at = Some(SystemTime::now());
                let for_secs = length.as_secs();
                out.push(match key {
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

    /// The password was right: the runs of failures end, unless a lock was set meanwhile (by
    /// parallel guesses), which stays.
    pub fn succeeded(mut self) {
        self.done = true;
        let now = Instant::now();
        let mut tracks = self.lockout.tracks();
        for (key, _) in &self.counted {
            let Some(t) = tracks.get_mut(key) else {
                continue;
            };
            t.in_flight = t.in_flight.saturating_sub(1);
            if t.locked_until.is_none_or(|u| u <= now) {
                t.failures = 0;
                t.locks = 0;
                t.locked_until = None;
                if t.in_flight == 0 {
                    tracks.remove(key);
                }
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut tracks = self.lockout.tracks();
        for (key, _) in &self.counted {
            if let Some(t) = tracks.get_mut(key) {
                t.in_flight = t.in_flight.saturating_sub(1);
            }
        }
    }
}

/// Drops tracks quiet for longer than a lock lasts, oldest first, until there is room.
fn forget_stale(tracks: &mut HashMap<Key, Track>, now: Instant) {
    tracks.retain(|_, t| {
        t.in_flight > 0
            || t.locked_until.is_some_and(|u| u > now)
            || now.duration_since(t.last) < FORGET_AFTER
    });
    if tracks.len() >= MAX_TRACKED {
        let mut by_age: Vec<(Instant, Key)> = tracks
            .iter()
            .filter(|(_, t)| t.in_flight == 0 && t.locked_until.is_none_or(|u| u <= now))
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

    fn lockout(threshold: u32, address_threshold: u32) -> Lockout {
        Lockout::new(LockoutConfig {
            threshold,
            address_threshold,
            base: Duration::from_secs(60),
            max: Duration::from_secs(150),
        })
    }

    #[test]
    fn locks_from_the_threshold_and_doubles() {
        let l = lockout(3, 10);
        let a = dn("uid=a,dc=x");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.begin(Some(&a), ip).unwrap().failed().is_empty());
        assert!(l.begin(Some(&a), other).unwrap().failed().is_empty());
        let locked = l.begin(Some(&a), other).unwrap().failed();
        assert_eq!(
            locked,
            vec![Locked::Account {
                dn: "uid=a,dc=x".into(),
                for_secs: 60
            }]
        );
        assert!(matches!(
            l.begin(Some(&a), ip),
            Err(Refusal::Account { .. })
        ));
        assert!(l.locked_since(&a).is_some());
        // An administrator clears it; a success ends the run of failures.
        assert!(l.clear(&a));
        l.begin(Some(&a), ip).unwrap().failed();
        l.begin(Some(&a), ip).unwrap().succeeded();
        l.begin(Some(&a), ip).unwrap().failed();
        l.begin(Some(&a), ip).unwrap().failed();
        assert!(
            l.begin(Some(&a), ip).is_ok(),
            "two failures since the success"
        );
    }

    #[test]
    fn parallel_guesses_get_no_more_checks_than_a_sequence() {
        let l = lockout(3, 100);
        let a = dn("uid=a,dc=x");
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let burst: Vec<_> = (0..10).filter_map(|_| l.begin(Some(&a), ip).ok()).collect();
        assert_eq!(burst.len(), 3, "three may be checked at once");
        let mut attempts = burst.into_iter();
        // Two wrong and the right one: no lock, and the success ends the run.
        attempts.next().unwrap().failed();
        attempts.next().unwrap().failed();
        attempts.next().unwrap().succeeded();
        assert!(l.begin(Some(&a), ip).is_ok());
        // Three wrong at once lock; nothing else was checked meanwhile.
        let l = lockout(3, 100);
        let burst: Vec<_> = (0..3).map(|_| l.begin(Some(&a), ip).unwrap()).collect();
        assert!(l.begin(Some(&a), ip).is_err(), "saturated");
        let locks: usize = burst.into_iter().map(|t| t.failed().len()).sum();
        assert_eq!(locks, 1);
        assert!(matches!(
            l.begin(Some(&a), ip),
            Err(Refusal::Account { .. })
        ));
        // An attempt dropped (an error before the check) counts as nothing.
        let l = lockout(1, 100);
        drop(l.begin(Some(&a), ip).unwrap());
        assert!(l.begin(Some(&a), ip).is_ok());
    }

    #[test]
    fn addresses_lock_for_unknown_names_too() {
        let l = lockout(2, 2);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        l.begin(None, ip).unwrap().failed();
        let locked = l.begin(None, ip).unwrap().failed();
        assert_eq!(locked.len(), 1);
        assert!(matches!(
            l.begin(Some(&dn("uid=b,dc=x")), ip),
            Err(Refusal::Address { .. })
        ));
        let off = lockout(0, 0);
        assert!(off.begin(None, ip).unwrap().failed().is_empty());
    }
}
