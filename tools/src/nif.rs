//! Spanish national identifiers: the NIF of a citizen (8 digits and a check letter) and the
//! NIE of a foreign resident (X, Y or Z, 7 digits, a check letter; X, Y, Z count as 0, 1, 2).
//! The check letter is `TRWAGMYFPDXBNJZSQVHLCKE` indexed by the number modulo 23.

const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// True if `id` has the shape of a NIF or NIE (whatever its check letter), so that it is
/// checked as one; other identifiers are taken as they are.
pub fn looks_spanish(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 9 || !b.last().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let digits = b.get(1..8).unwrap_or_default();
    digits.iter().all(u8::is_ascii_digit)
        && b.first().is_some_and(|c| {
            c.is_ascii_digit() || matches!(c.to_ascii_uppercase(), b'X' | b'Y' | b'Z')
        })
}

/// Checks a NIF or NIE; the message says what is wrong (the letter it should have).
pub fn check(id: &str) -> Result<(), String> {
    let upper = id.trim().to_ascii_uppercase();
    if !looks_spanish(&upper) {
        return Err(format!(
            "{id:?} is not a NIF (8 digits and a letter) or NIE (X, Y or Z, 7 digits and a letter)"
        ));
    }
    let b = upper.as_bytes();
    let mut number: u32 = 0;
    for (i, c) in b.iter().take(8).enumerate() {
        let digit = match (i, c) {
            (0, b'X') => 0,
            (0, b'Y') => 1,
            (0, b'Z') => 2,
            (_, c) => u32::from(c - b'0'),
        };
        number = number * 10 + digit;
    }
    let want = LETTERS
        .get(usize::try_from(number % 23).unwrap_or(0))
        .copied()
        .unwrap_or(b'T');
    let got = b.get(8).copied().unwrap_or(b' ');
    if got != want {
        return Err(format!(
            "{id:?}: the check letter is {}, not {}",
            char::from(want),
            char::from(got)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nif_and_nie() {
        // 12345678 mod 23 = 14: Z.
        assert!(check("12345678Z").is_ok());
        assert!(check("12345678z").is_ok());
        assert_eq!(
            check("12345678A").unwrap_err(),
            "\"12345678A\": the check letter is Z, not A"
        );
        // X1234567 reads 01234567, mod 23 = 19: L.
        assert!(check("X1234567L").is_ok());
        // Y1234567 reads 11234567, mod 23 = 10: X.
        assert!(check("Y1234567X").is_ok());
        // Z1234567 reads 21234567, mod 23 = 1: R.
        assert!(check("Z1234567R").is_ok());
        assert!(check("1234567").is_err());
        assert!(!looks_spanish("E-4711"));
        assert!(looks_spanish("00000000T"));
        assert!(check("00000000T").is_ok());
    }
}
