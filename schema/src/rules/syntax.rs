//! Syntax validators: what `validate` accepts for each syntax, as slapd's.

use super::*;

pub(crate) fn is_printable(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'?' | b' ' | b'='
        )
}

pub(super) fn utf8(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "value is not valid UTF-8".to_string())
}

pub(super) fn is_numericoid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        })
        && s.contains('.')
}

pub(super) fn is_descr(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// RFC 4517 `oid = descr / numericoid`.
pub(crate) fn is_oid(s: &str) -> bool {
    is_numericoid(s) || is_descr(s)
}

pub(crate) fn validate_integer(v: &[u8]) -> Result<(), String> {
    let digits = match v {
        [] => return Err("an integer cannot be empty".into()),
        [b'-'] => return Err("'-' alone is not an integer".into()),
        [b'-', b'0', ..] => return Err("a negative integer cannot start with 0".into()),
        [b'0'] => return Ok(()),
        [b'0', ..] => return Err("an integer cannot have leading zeros".into()),
        [b'-', rest @ ..] => rest,
        _ => v,
    };
    if digits.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err("an integer has only digits and an optional leading '-'".into())
    }
}

pub(super) fn validate_bitstring(v: &[u8]) -> Result<(), String> {
    match v {
        [b'\'', bits @ .., b'\'', b'B'] if bits.iter().all(|b| matches!(b, b'0' | b'1')) => Ok(()),
        _ => Err("a bit string looks like '0101'B".into()),
    }
}

pub(super) fn validate_utf8_nonempty(v: &[u8]) -> Result<(), String> {
    if v.is_empty() {
        return Err("a directory string cannot be empty".into());
    }
    utf8(v).map(|_| ())
}

pub(super) fn validate_uuid(v: &[u8]) -> Result<(), String> {
    if v.len() != 36 {
        return Err("a UUID has 36 characters (8-4-4-4-12 hex digits)".into());
    }
    for (i, c) in v.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            *c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return Err("a UUID looks like 01234567-89ab-cdef-0123-456789abcdef".into());
        }
    }
    Ok(())
}

pub(super) fn validate_postal(v: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if c == b'\\' {
            let esc = v.get(i + 1..i + 3).unwrap_or_default();
            if !esc.eq_ignore_ascii_case(b"24") && !esc.eq_ignore_ascii_case(b"5C") {
                return Err("a postal address escapes only '$' as \\24 and '\\' as \\5C".into());
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    utf8(v).map(|_| ())
}

pub(super) fn validate_delivery_method(v: &[u8]) -> Result<(), String> {
    const PDM: &[&str] = &[
        "any",
        "mhs",
        "physical",
        "telex",
        "teletex",
        "g3fax",
        "g4fax",
        "ia5",
        "videotex",
        "telephone",
    ];
    let s = utf8(v)?;
    for part in s.split('$') {
        let p = part.trim_matches(' ');
        if !PDM.iter().any(|m| m.eq_ignore_ascii_case(p)) {
            return Err(format!("'{p}' is not a delivery method (any, mhs, physical, telex, teletex, g3fax, g4fax, ia5, videotex, telephone)"));
        }
    }
    Ok(())
}

/// Checks a value against a syntax. `schema` resolves attribute types inside DN values.
pub(crate) fn validate(schema: &Schema, syn: SyntaxImpl, v: &[u8]) -> Result<(), String> {
    use SyntaxImpl as S;
    match syn {
        S::DirectoryString => validate_utf8_nonempty(v),
        S::Ia5String => {
            if v.is_ascii() {
                Ok(())
            } else {
                Err("an IA5 string has only ASCII characters".into())
            }
        }
        S::Integer => validate_integer(v),
        S::Boolean => match v {
            b"TRUE" | b"FALSE" => Ok(()),
            _ => Err("a boolean is TRUE or FALSE".into()),
        },
        S::Dn => {
            let s = utf8(v)?;
            let dn = Dn::parse(s).map_err(|e| e.to_string())?;
            dn.normalize(schema).map(|_| ()).map_err(|e| e.to_string())
        }
        S::Rdn => {
            let s = utf8(v)?;
            let dn = Dn::parse(s).map_err(|e| e.to_string())?;
            if dn.rdns.len() != 1 {
                return Err("an RDN has exactly one component".into());
            }
            dn.normalize(schema).map(|_| ()).map_err(|e| e.to_string())
        }
        S::Oid => {
            let s = utf8(v)?;
            if is_oid(s) {
                Ok(())
            } else {
                Err("an OID is a numeric OID (1.2.3) or a name".into())
            }
        }
        S::GeneralizedTime => generalized_time(v).map(|_| ()),
        S::PrintableString => {
            if !v.is_empty() && v.iter().all(|&c| is_printable(c)) {
                Ok(())
            } else {
                Err(
                    "a printable string has only letters, digits, spaces and ' ( ) + , - . / : ? ="
                        .into(),
                )
            }
        }
        S::PrintablesString => {
            if !v.is_empty()
                && v.split(|&c| c == b'$')
                    .all(|p| !p.is_empty() && p.iter().all(|&c| is_printable(c)))
            {
                Ok(())
            } else {
                Err("expected printable strings separated by '$'".into())
            }
        }
        S::CountryString => {
            if v.len() == 2 && v.iter().all(|&c| is_printable(c)) {
                Ok(())
            } else {
                Err("a country string has exactly two printable characters".into())
            }
        }
        S::NumericString => {
            if !v.is_empty() && v.iter().all(|&c| c.is_ascii_digit() || c == b' ') {
                Ok(())
            } else {
                Err("a numeric string has only digits and spaces".into())
            }
        }
        S::Uuid => validate_uuid(v),
        S::PostalAddress => validate_postal(v),
        S::BitString => validate_bitstring(v),
        S::NameAndOptionalUid => {
            let s = utf8(v)?;
            let dn = split_uid(s).0;
            let dn = Dn::parse(dn).map_err(|e| e.to_string())?;
            dn.normalize(schema).map(|_| ()).map_err(|e| e.to_string())
        }
        S::DeliveryMethod => validate_delivery_method(v),
        S::NisNetgroupTriple => {
            let s = utf8(v)?;
            let inner = s.strip_prefix('(').and_then(|r| r.strip_suffix(')'));
            match inner {
                Some(i) if i.split(',').count() == 3 => Ok(()),
                _ => Err("a netgroup triple looks like (host,user,domain)".into()),
            }
        }
        S::BootParameter => {
            let s = utf8(v)?;
            match s.split_once('=') {
                Some((k, rest)) if !k.is_empty() && rest.contains(':') => Ok(()),
                _ => Err("a boot parameter looks like key=server:/path".into()),
            }
        }
        S::Csn => {
            if !v.is_empty() && v.is_ascii() {
                Ok(())
            } else {
                Err("a CSN is a non-empty ASCII string".into())
            }
        }
        S::Any => Ok(()),
        S::NoValidator => Err("values of this syntax are not supported".into()),
    }
}
