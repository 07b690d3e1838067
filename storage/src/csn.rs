//! Change sequence numbers (CSNs) in OpenLDAP's form, `YYYYmmddHHMMSS.uuuuuuZ#cccccc#sid#mmmmmm`:
//! the UTC time of a commit to the microsecond, a counter for commits within one microsecond,
//! the server id and a modification number, all fixed width, so that byte order is time order.
//! Every write stamps its entries' `entryCSN` and its change log records with one, taken under
//! the writer lock: CSN order is commit order, which is what a replication cookie relies on.

use std::time::{SystemTime, UNIX_EPOCH};

/// The length of a CSN.
pub const CSN_LEN: usize = 40;

/// Hands out strictly increasing CSNs, even if the system clock steps back.
#[derive(Debug, Default)]
pub(crate) struct CsnClock {
    /// Microseconds since the epoch and counter of the last CSN.
    last: (u64, u32),
}

impl CsnClock {
    /// A clock whose next CSN is later than `after` (a stored CSN, when the store opens).
    pub(crate) fn after(after: Option<&str>) -> CsnClock {
        let last = after.and_then(parse_time).unwrap_or((0, 0));
        CsnClock { last }
    }

    /// The next CSN.
    pub(crate) fn next(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.last = if now > self.last.0 {
            (now, 0)
        } else if self.last.1 < 0xff_ffff {
            (self.last.0, self.last.1 + 1)
        } else {
            (self.last.0 + 1, 0)
        };
        format_csn(self.last.0, self.last.1)
    }
}

fn format_csn(micros: u64, count: u32) -> String {
    use roster_schema::time::{push_date_time, push_padded};
    let mut csn = String::with_capacity(40);
    push_date_time(&mut csn, micros / 1_000_000);
    csn.push('.');
    push_padded(&mut csn, micros % 1_000_000, 6);
    csn.push_str("Z#");
    // The change count in at least six lowercase hex digits.
    let hex = |n: u32| char::from_digit(n & 0xf, 16).unwrap_or('0');
    let digits = (32 - count.leading_zeros()).div_ceil(4).max(6);
    for i in (0..digits).rev() {
        csn.push(hex(count >> (4 * i)));
    }
    csn.push_str("#000#000000");
    csn
}

/// The time of a CSN in microseconds since the Unix epoch; `None` if it is not one.
pub fn csn_micros(s: &str) -> Option<u64> {
    parse_time(s).map(|(us, _)| us)
}

/// True for a well-formed CSN (OpenLDAP's, or one of ours).
pub fn is_csn(s: &str) -> bool {
    parse_time(s).is_some()
}

/// (microseconds since the epoch, counter) of a CSN; `None` if it is not one.
fn parse_time(s: &str) -> Option<(u64, u32)> {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied();
    if b.len() != CSN_LEN || at(14) != Some(b'.') || at(21) != Some(b'Z') {
        return None;
    }
    if [22, 29, 33].iter().any(|&i| at(i) != Some(b'#')) {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let hex =
        |r: std::ops::Range<usize>| -> Option<u32> { u32::from_str_radix(s.get(r)?, 16).ok() };
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, min, sec) = (digits(8..10)?, digits(10..12)?, digits(12..14)?);
    let micros = digits(15..21)?;
    hex(30..33)?;
    hex(34..40)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + min * 60 + sec;
    Some((secs * 1_000_000 + micros, hex(23..29)?))
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csns_increase_and_read_back() {
        let mut clock = CsnClock::default();
        let a = clock.next();
        let b = clock.next();
        assert!(is_csn(&a), "{a}");
        assert!(b > a, "{b} after {a}");
        assert_eq!(
            format_csn(1_795_310_999_123_456, 7),
            "20261122012959.123456Z#000007#000#000000"
        );
        for count in [0, 0xab, 0xffffff, 0x1000000, u32::MAX] {
            assert_eq!(
                format_csn(5_000_001, count),
                format!("19700101000005.000001Z#{count:06x}#000#000000")
            );
        }
        assert_eq!(
            parse_time("20261122012959.123456Z#000007#000#000000"),
            Some((1_795_310_999_123_456, 7))
        );
    }

    #[test]
    fn a_clock_never_goes_back() {
        // A stored CSN far in the future: the next ones follow it rather than the clock.
        let future = "29991231235959.999999Z#000000#000#000000";
        let mut clock = CsnClock::after(Some(future));
        let a = clock.next();
        let b = clock.next();
        assert!(a.as_str() > future && b > a, "{a} {b}");
    }

    #[test]
    fn slapd_csns_are_accepted_and_junk_is_not() {
        assert!(is_csn("20240101120000.000001Z#000000#001#000000"));
        for bad in [
            "",
            "20240101120000Z",
            "20241301120000.000001Z#000000#001#000000",
            "2024010112000x.000001Z#000000#001#000000",
            "20240101120000.000001Z#00000g#001#000000",
        ] {
            assert!(!is_csn(bad), "{bad}");
        }
    }
}
