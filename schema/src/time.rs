//! Generalized Time (RFC 4517) values, computed without a calendar dependency: the server's
//! operational timestamps and the store's change sequence numbers share this calendar.

/// Seconds since the Unix epoch as `YYYYMMDDHHMMSSZ` (UTC).
pub fn generalized(secs: u64) -> String {
    let (date, time) = civil(secs);
    format!("{date}{time}Z")
}

/// Seconds since the Unix epoch as `YYYYMMDD` and `HHMMSS` (UTC).
pub fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, (rem % 3600) / 60, rem % 60),
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_instants() {
        assert_eq!(super::generalized(0), "19700101000000Z");
        assert_eq!(super::generalized(951_782_400), "20000229000000Z");
        assert_eq!(super::generalized(1_795_310_999), "20261122012959Z");
    }
}
