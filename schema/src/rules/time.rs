//! GeneralizedTime: slapd's syntax check, normalization to UTC, and ordering.

use super::*;

/// slapd's `check_time_syntax` for GeneralizedTime, then `generalizedTimeNormalize`:
/// `YYYYmmddHHMMSS[.fraction]Z` in UTC, trailing zeros of the fraction dropped.
pub(crate) fn generalized_time(v: &[u8]) -> Result<Vec<u8>, String> {
    const CEILING: [i32; 9] = [100, 100, 12, 31, 24, 60, 60, 24, 60];
    const MDAYS: [[i32; 12]; 2] = [
        [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
        [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
    ];
    let ceiling = |i: usize| CEILING.get(i).copied().unwrap_or(0);
    let get = |parts: &[i32; 9], i: usize| parts.get(i).copied().unwrap_or(0);
    let set = |parts: &mut [i32; 9], i: usize, v: i32| {
        if let Some(slot) = parts.get_mut(i) {
            *slot = v;
        }
    };
    let bad =
        || "a generalized time looks like YYYYMMDDHH[MM[SS]][.fraction](Z|+HHMM|-HHMM)".to_string();
    let mut parts = [0i32; 9];
    let mut p = 0usize;
    let at = |i: usize| v.get(i).copied();
    let mut part = 0usize;
    while part < 7 && p < v.len() {
        let Some(c1) = at(p).filter(u8::is_ascii_digit) else {
            break;
        };
        p += 1;
        let c2 = at(p).filter(u8::is_ascii_digit).ok_or_else(bad)?;
        p += 1;
        let mut c = i32::from(c1 - b'0') * 10 + i32::from(c2 - b'0');
        if part == 2 || part == 3 {
            // Months and days are stored zero-based.
            c -= 1;
            if c < 0 {
                return Err(bad());
            }
        }
        if c >= ceiling(part) && !(c == 60 && part == 6) {
            return Err(bad());
        }
        set(&mut parts, part, c);
        part += 1;
    }
    if part < 5 {
        return Err(bad());
    }
    let leap_ref = if parts[1] == 0 { parts[0] } else { parts[1] };
    let leap = usize::from(leap_ref % 4 == 0);
    let mdays = |m: i32| {
        MDAYS
            .get(leap)
            .and_then(|r| r.get(usize::try_from(m).unwrap_or(0)))
            .copied()
            .unwrap_or(31)
    };
    // The size of field `i` when carrying: days depend on the month (the previous month when
    // borrowing eastwards).
    let limit = |parts: &[i32; 9], i: usize, carry: bool| -> i32 {
        if i != 3 {
            return ceiling(i);
        }
        if carry {
            mdays(parts[2])
        } else {
            mdays((parts[2] - 1 + 12) % 12)
        }
    };
    if parts[3] >= mdays(parts[2]) {
        return Err(bad());
    }
    let mut fraction: &[u8] = &[];
    if matches!(at(p), Some(b'.') | Some(b',')) {
        let start = p;
        p += 1;
        while at(p).is_some_and(|c| c.is_ascii_digit()) {
            p += 1;
        }
        if p - start == 1 {
            return Err(bad());
        }
        let mut end = p;
        while end > start + 1 && at(end - 1) == Some(b'0') {
            end -= 1;
        }
        if end - start > 1 {
            fraction = v.get(start + 1..end).unwrap_or_default();
        }
    }
    let tz = at(p)
        .ok_or_else(|| "a generalized time needs a time zone (Z or +HHMM/-HHMM)".to_string())?;
    p += 1;
    match tz {
        b'Z' => {}
        b'+' | b'-' => {
            let mut part = 7;
            while part < 9 && p < v.len() {
                let Some(c1) = at(p).filter(u8::is_ascii_digit) else {
                    break;
                };
                p += 1;
                let c2 = at(p).filter(u8::is_ascii_digit).ok_or_else(bad)?;
                p += 1;
                let n = i32::from(c1 - b'0') * 10 + i32::from(c2 - b'0');
                if n >= ceiling(part) {
                    return Err(bad());
                }
                set(&mut parts, part, n);
                part += 1;
            }
            if part < 8 {
                return Err(bad());
            }
            // Apply the offset to hours and minutes, then carry (west of Greenwich) or borrow
            // (east) through the larger fields, as slapd does.
            let west = tz == b'-';
            let sign = if west { 1 } else { -1 };
            parts[4] += sign * parts[7];
            parts[5] += sign * parts[8];
            let mut i = 6usize;
            while i > 0 {
                i -= 1;
                let cur = get(&parts, i);
                let out_of_range = if west {
                    cur >= limit(&parts, i, true)
                } else {
                    cur < 0
                };
                if out_of_range {
                    if i == 0 {
                        return Err(bad());
                    }
                    let c = limit(&parts, i, west);
                    set(&mut parts, i, cur - sign * c);
                    let above = get(&parts, i - 1) + sign;
                    set(&mut parts, i - 1, above);
                    continue;
                } else if i != 5 {
                    break;
                }
            }
        }
        _ => return Err(bad()),
    }
    if p != v.len() {
        return Err(bad());
    }
    let mut out = String::with_capacity(16 + fraction.len());
    for n in [
        parts[0],
        parts[1],
        parts[2] + 1,
        parts[3] + 1,
        parts[4],
        parts[5],
        parts[6],
    ] {
        // Every part is in range here (0..=99).
        crate::time::push_padded(&mut out, u64::try_from(n).unwrap_or(0), 2);
    }
    let mut out = out.into_bytes();
    if !fraction.is_empty() {
        out.push(b'.');
        out.extend_from_slice(fraction);
    }
    out.push(b'Z');
    Ok(out)
}

/// slapd's `generalizedTimeOrderingMatch`: compare without the trailing `Z`.
pub(super) fn compare_time(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len()).saturating_sub(1);
    match a.get(..n).cmp(&b.get(..n)) {
        Ordering::Equal => a.len().cmp(&b.len()),
        o => o,
    }
}
