//! Generalized Time (RFC 4517) values, computed without a calendar dependency: the server's
//! operational timestamps and the store's change sequence numbers share this calendar.

/// Seconds since the Unix epoch as `YYYYMMDDHHMMSSZ` (UTC).
pub fn generalized(secs: u64) -> String {
    let mut out = String::with_capacity(15);
    push_date_time(&mut out, secs);
    out.push('Z');
    out
}

/// Seconds since the Unix epoch as `YYYYMMDD` and `HHMMSS` (UTC).
pub fn civil(secs: u64) -> (String, String) {
    let mut both = String::with_capacity(14);
    push_date_time(&mut both, secs);
    let time = both.split_off(both.len() - 6);
    (both, time)
}

/// Appends `YYYYMMDDHHMMSS` (UTC) for seconds since the Unix epoch. Digits are written one by
/// one: every write stamps two or three of these, and `format!` cost more than the rest of the
/// timestamp.
pub fn push_date_time(out: &mut String, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    push_padded(out, u64::try_from(y).unwrap_or(0), 4);
    push_padded(out, u64::from(m), 2);
    push_padded(out, u64::from(d), 2);
    push_padded(out, rem / 3600, 2);
    push_padded(out, (rem % 3600) / 60, 2);
    push_padded(out, rem % 60, 2);
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut rest = n;
    loop {
        if let Some(slot) = digits.get_mut(len) {
            *slot = b'0' + (rest % 10) as u8;
        }
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in len..width {
        out.push('0');
    }
    for d in digits.iter().take(len).rev() {
        out.push(char::from(*d));
    }
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
        assert_eq!(
            super::civil(1_795_310_999),
            ("20261122".to_string(), "012959".to_string())
        );
        // Year 10000 and later: more digits, as format!("{y:04}") wrote.
        assert_eq!(super::generalized(253_402_300_800), "100000101000000Z");
    }

    #[test]
    fn padded_numbers() {
        let p = |n, w| {
            let mut s = String::new();
            super::push_padded(&mut s, n, w);
            s
        };
        assert_eq!(p(0, 2), "00");
        assert_eq!(p(7, 4), "0007");
        assert_eq!(p(12345, 2), "12345");
        assert_eq!(p(u64::MAX, 1), u64::MAX.to_string());
    }
}
