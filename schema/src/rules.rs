//! Matching rules and syntax validators, chosen by OID, with the behaviour of OpenLDAP 2.5's
//! `schema_init.c` (normalizers, ordering and substring matchers, validators).
//!
//! Every rule is reduced to a *normalized form*: two values are equal under a rule exactly when
//! their normalized forms are byte-equal, which is what lets the storage layer index values by
//! that form. Ordering rules compare normalized forms with a rule-specific comparison.
//!
//! String preparation follows slapd rather than the letter of RFC 4518: values are case-folded
//! per character and runs of ASCII spaces are collapsed (leading and trailing ones removed, with
//! the substring-piece exceptions slapd makes). Unicode NFKC normalization is not applied: slapd
//! applies it, so two values that differ only in Unicode composition (a precomposed `é` versus `e`
//! and a combining accent) are equal in slapd and different here. Directory data written by the
//! usual tools is precomposed, so in practice the results agree.

use crate::dn::Dn;
use crate::registry::Schema;
use std::cmp::Ordering;

/// How a normalized form will be used; substring pieces keep some spaces that whole values lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// A stored attribute value, or an equality/ordering assertion value.
    Value,
    SubInitial,
    SubAny,
    SubFinal,
}

/// What kind of assertion a rule serves (RFC 4512 `EQUALITY` / `ORDERING` / `SUBSTR`), or an
/// extensible-match-only rule such as `integerBitAndMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Equality,
    Ordering,
    Substr,
    ExtOnly,
    Approx,
}

/// The behaviour behind a matching rule OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleImpl {
    DirString {
        casefold: bool,
    },
    Ia5 {
        casefold: bool,
    },
    CaseIgnoreList,
    DistinguishedName,
    Rdn,
    UniqueMember,
    Integer,
    IntegerFirstComponent,
    IntegerBitAnd,
    IntegerBitOr,
    GeneralizedTime,
    OctetString,
    TelephoneNumber,
    NumericString,
    Boolean,
    ObjectIdentifier,
    ObjectIdentifierFirstComponent,
    BitString,
    Uuid,
    Csn,
    /// Certificates and CRLs: compared as whole DER values (see the crate README).
    Der,
    /// `directoryStringApproxMatch` / `IA5StringApproxMatch`: slapd's metaphone word match.
    Approx,
    /// Rules slapd defines without a match function (`presentationAddressMatch`,
    /// `protocolInformationMatch`): every assertion with them is Undefined.
    NoMatch,
}

/// The static facts of an implemented rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleSpec {
    pub imp: RuleImpl,
    pub kind: RuleKind,
    /// slapd's `SLAP_MR_EXT`: usable in extensible match with attributes of the rule's syntax.
    pub ext: bool,
    /// Extra attribute syntaxes the rule applies to (slapd's `smr_compat_syntaxes`).
    pub compat: &'static [&'static str],
    /// For EQUALITY rules, the OID of the rule `~=` uses with them.
    pub approx: Option<&'static str>,
}

const DIRECTORY_STRING_SYNTAXES: &[&str] = &[
    "1.3.6.1.4.1.1466.115.121.1.11",
    "1.3.6.1.4.1.1466.115.121.1.44",
    "1.3.6.1.4.1.1466.115.121.1.50",
];
/// slapd declares more description syntaxes here, but its published matchingRuleUse shows the
/// rule applying only to OIDs and `ldapSyntaxes`; we follow what it publishes.
const OID_FIRST_COMPONENT_SYNTAXES: &[&str] = &[
    "1.3.6.1.4.1.1466.115.121.1.38",
    "1.3.6.1.4.1.1466.115.121.1.54",
];
const INT_FIRST_COMPONENT_SYNTAXES: &[&str] = &[
    "1.3.6.1.4.1.1466.115.121.1.27",
    "1.3.6.1.4.1.1466.115.121.1.17",
];
const DIR_APPROX: &str = "1.3.6.1.4.1.4203.666.4.4";
const IA5_APPROX: &str = "1.3.6.1.4.1.4203.666.4.5";

/// The implementation of a matching rule OID, or `None` if Roster does not implement it.
pub(crate) fn spec(oid: &str) -> Option<RuleSpec> {
    use RuleImpl as I;
    use RuleKind as K;
    let s = |imp, kind, ext| RuleSpec {
        imp,
        kind,
        ext,
        compat: &[],
        approx: None,
    };
    let d = |imp, kind, ext| RuleSpec {
        imp,
        kind,
        ext,
        compat: DIRECTORY_STRING_SYNTAXES,
        approx: None,
    };
    Some(match oid {
        "2.5.13.0" => s(I::ObjectIdentifier, K::Equality, true),
        "2.5.13.1" => s(I::DistinguishedName, K::Equality, true),
        "1.2.36.79672281.1.13.3" => s(I::Rdn, K::Equality, true),
        "2.5.13.2" => RuleSpec {
            approx: Some(DIR_APPROX),
            ..d(I::DirString { casefold: true }, K::Equality, true)
        },
        "2.5.13.3" => d(I::DirString { casefold: true }, K::Ordering, true),
        "2.5.13.4" => d(I::DirString { casefold: true }, K::Substr, false),
        "2.5.13.5" => RuleSpec {
            approx: Some(DIR_APPROX),
            ..d(I::DirString { casefold: false }, K::Equality, true)
        },
        "2.5.13.6" => d(I::DirString { casefold: false }, K::Ordering, true),
        "2.5.13.7" => d(I::DirString { casefold: false }, K::Substr, false),
        "2.5.13.8" => s(I::NumericString, K::Equality, true),
        "2.5.13.9" => s(I::NumericString, K::Ordering, true),
        "2.5.13.10" => s(I::NumericString, K::Substr, false),
        "2.5.13.11" => s(I::CaseIgnoreList, K::Equality, true),
        "2.5.13.12" => s(I::CaseIgnoreList, K::Substr, false),
        "2.5.13.13" => s(I::Boolean, K::Equality, true),
        "2.5.13.14" => s(I::Integer, K::Equality, true),
        "2.5.13.15" => s(I::Integer, K::Ordering, true),
        "2.5.13.16" => s(I::BitString, K::Equality, true),
        "2.5.13.17" => s(I::OctetString, K::Equality, true),
        "2.5.13.18" => s(I::OctetString, K::Ordering, true),
        "2.5.13.19" => s(I::OctetString, K::Substr, false),
        "2.5.13.20" => s(I::TelephoneNumber, K::Equality, true),
        "2.5.13.21" => s(I::TelephoneNumber, K::Substr, false),
        "2.5.13.22" => s(I::NoMatch, K::Equality, true),
        "2.5.13.23" => s(I::UniqueMember, K::Equality, true),
        "2.5.13.24" => s(I::NoMatch, K::Equality, true),
        "2.5.13.27" => s(I::GeneralizedTime, K::Equality, true),
        "2.5.13.28" => s(I::GeneralizedTime, K::Ordering, true),
        "2.5.13.29" => RuleSpec {
            compat: INT_FIRST_COMPONENT_SYNTAXES,
            ..s(I::IntegerFirstComponent, K::Equality, true)
        },
        "2.5.13.30" => RuleSpec {
            compat: OID_FIRST_COMPONENT_SYNTAXES,
            ..s(I::ObjectIdentifierFirstComponent, K::Equality, true)
        },
        "2.5.13.34" => RuleSpec {
            compat: &["1.3.6.1.4.1.1466.115.121.1.8"],
            ..s(I::Der, K::Equality, true)
        },
        "2.5.13.38" => RuleSpec {
            compat: &["1.3.6.1.4.1.1466.115.121.1.9"],
            ..s(I::Der, K::Equality, true)
        },
        "1.3.6.1.4.1.1466.109.114.1" => RuleSpec {
            approx: Some(IA5_APPROX),
            ..s(I::Ia5 { casefold: false }, K::Equality, true)
        },
        "1.3.6.1.4.1.1466.109.114.2" => RuleSpec {
            approx: Some(IA5_APPROX),
            ..s(I::Ia5 { casefold: true }, K::Equality, true)
        },
        "1.3.6.1.4.1.1466.109.114.3" => s(I::Ia5 { casefold: true }, K::Substr, false),
        "1.3.6.1.4.1.4203.1.2.1" => s(I::Ia5 { casefold: false }, K::Substr, false),
        "1.2.840.113556.1.4.803" => s(I::IntegerBitAnd, K::ExtOnly, true),
        "1.2.840.113556.1.4.804" => s(I::IntegerBitOr, K::ExtOnly, true),
        "1.3.6.1.1.16.2" => s(I::Uuid, K::Equality, false),
        "1.3.6.1.1.16.3" => s(I::Uuid, K::Ordering, false),
        "1.3.6.1.4.1.4203.666.11.2.2" => s(I::Csn, K::Equality, false),
        "1.3.6.1.4.1.4203.666.11.2.3" => s(I::Csn, K::Ordering, true),
        "1.3.6.1.4.1.4203.666.4.13" => s(I::OctetString, K::Equality, false),
        // authzMatch (authzTo/authzFrom, dyngroup's dgAuthz): slapd compares normalized authz
        // rules octet by octet; we compare them as written.
        "1.3.6.1.4.1.4203.666.4.12" => s(I::OctetString, K::Equality, false),
        "2.5.13.45" => RuleSpec {
            compat: &["1.3.6.1.4.1.4203.666.11.10.2.1"],
            ..s(I::Der, K::Equality, true)
        },
        DIR_APPROX => s(I::Approx, K::Approx, true),
        IA5_APPROX => s(I::Approx, K::Approx, true),
        _ => return None,
    })
}

/// Syntaxes a syntax is a special case of (slapd's `ssyn_sups`): rules for those syntaxes
/// also apply to it. Only Country String has any: it is a Directory, IA5 and Printable String.
pub(crate) fn syntax_sups(oid: &str) -> &'static [&'static str] {
    match oid {
        "1.3.6.1.4.1.1466.115.121.1.11" => &[
            "1.3.6.1.4.1.1466.115.121.1.15",
            "1.3.6.1.4.1.1466.115.121.1.26",
            "1.3.6.1.4.1.1466.115.121.1.44",
        ],
        _ => &[],
    }
}

/// Syntax-specific value checks, chosen by syntax OID (slapd's `ssyn_validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyntaxImpl {
    DirectoryString,
    Ia5String,
    Integer,
    Boolean,
    Dn,
    Rdn,
    Oid,
    GeneralizedTime,
    PrintableString,
    PrintablesString,
    CountryString,
    NumericString,
    Uuid,
    PostalAddress,
    BitString,
    NameAndOptionalUid,
    DeliveryMethod,
    NisNetgroupTriple,
    BootParameter,
    Csn,
    /// Any value is valid (octet strings, JPEG, certificates, audio, ...).
    Any,
    /// slapd has no validator for this syntax, so it refuses every value of it.
    NoValidator,
}

pub(crate) fn syntax_impl(oid: &str) -> SyntaxImpl {
    use SyntaxImpl as S;
    match oid.strip_prefix("1.3.6.1.4.1.1466.115.121.1.") {
        Some("15") => S::DirectoryString,
        Some("26") | Some("39") => S::Ia5String,
        Some("27") => S::Integer,
        Some("7") => S::Boolean,
        Some("12") => S::Dn,
        Some("38") => S::Oid,
        Some("24") => S::GeneralizedTime,
        Some("44") | Some("50") => S::PrintableString,
        Some("22") | Some("52") => S::PrintablesString,
        Some("11") => S::CountryString,
        Some("36") => S::NumericString,
        Some("41") => S::PostalAddress,
        Some("6") => S::BitString,
        Some("34") => S::NameAndOptionalUid,
        Some("14") => S::DeliveryMethod,
        Some("4") | Some("5") | Some("8") | Some("9") | Some("10") | Some("23") | Some("28")
        | Some("40") | Some("45") | Some("49") => S::Any,
        Some(_) => S::NoValidator,
        None => match oid {
            "1.3.6.1.1.16.1" => S::Uuid,
            "1.2.36.79672281.1.5.0" => S::Rdn,
            "1.3.6.1.1.1.0.0" => S::NisNetgroupTriple,
            "1.3.6.1.1.1.0.1" => S::BootParameter,
            "1.3.6.1.4.1.4203.666.11.2.1" => S::Csn,
            "1.3.6.1.4.1.4203.666.2.7" => S::DirectoryString,
            _ => S::Any,
        },
    }
}

pub(crate) fn is_printable(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'?' | b' ' | b'='
        )
}

fn utf8(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "value is not valid UTF-8".to_string())
}

fn is_numericoid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        })
        && s.contains('.')
}

fn is_descr(s: &str) -> bool {
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

fn validate_bitstring(v: &[u8]) -> Result<(), String> {
    match v {
        [b'\'', bits @ .., b'\'', b'B'] if bits.iter().all(|b| matches!(b, b'0' | b'1')) => Ok(()),
        _ => Err("a bit string looks like '0101'B".into()),
    }
}

fn validate_utf8_nonempty(v: &[u8]) -> Result<(), String> {
    if v.is_empty() {
        return Err("a directory string cannot be empty".into());
    }
    utf8(v).map(|_| ())
}

fn validate_uuid(v: &[u8]) -> Result<(), String> {
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

fn validate_postal(v: &[u8]) -> Result<(), String> {
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

fn validate_delivery_method(v: &[u8]) -> Result<(), String> {
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

/// Splits `dn#'0101'B` into the DN and the optional bit-string UID (slapd uses the last `#`
/// when what follows is a valid bit string).
pub(crate) fn split_uid(s: &str) -> (&str, Option<&str>) {
    if let Some(i) = s.rfind('#') {
        let uid = s.get(i + 1..).unwrap_or_default();
        if validate_bitstring(uid.as_bytes()).is_ok() {
            return (s.get(..i).unwrap_or_default(), Some(uid));
        }
    }
    (s, None)
}

/// slapd's `UTF8StringNormalize`: case folding (unless case-exact) and space handling.
pub(crate) fn dir_string(v: &[u8], casefold: bool, use_: Use) -> Result<Vec<u8>, String> {
    let s = utf8(v)?;
    let mut out = Vec::with_capacity(v.len());
    // Leading spaces go, except at the start of `any` and `final` pieces, where they are part
    // of what the client asked to find.
    let mut wasspace = !matches!(use_, Use::SubAny | Use::SubFinal);
    let mut push = |c: char, out: &mut Vec<u8>| {
        if c == ' ' {
            if !wasspace {
                out.push(b' ');
            }
            wasspace = true;
        } else {
            wasspace = false;
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    };
    if casefold {
        for c in s.chars() {
            if c.is_ascii() {
                push(c.to_ascii_lowercase(), &mut out);
            } else {
                for l in c.to_lowercase() {
                    push(l, &mut out);
                }
            }
        }
    } else {
        for c in s.chars() {
            push(c, &mut out);
        }
    }
    if out.is_empty() {
        // A value of only spaces normalizes to one space, as in slapd.
        if !v.is_empty() {
            out.push(b' ');
        }
        return Ok(out);
    }
    if wasspace && !matches!(use_, Use::SubInitial | Use::SubAny) && out.last() == Some(&b' ') {
        out.pop();
    }
    Ok(out)
}

/// slapd's `IA5StringNormalize`: leading and trailing spaces removed, runs collapsed, ASCII
/// case folded unless case-exact. Unlike directory strings, substring pieces are trimmed too.
pub(crate) fn ia5(v: &[u8], casefold: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut wasspace = true;
    for &c in v {
        if c == 0 {
            break;
        }
        if c == b' ' {
            if !wasspace {
                out.push(b' ');
            }
            wasspace = true;
        } else {
            wasspace = false;
            out.push(if casefold { c.to_ascii_lowercase() } else { c });
        }
    }
    if out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

fn strip_chars(v: &[u8], drop: impl Fn(u8) -> bool) -> Vec<u8> {
    let mut out: Vec<u8> = v.iter().copied().filter(|&c| !drop(c)).collect();
    if out.is_empty() {
        out.push(b' ');
    }
    out
}

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
    let mut out = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}{:02}",
        parts[0],
        parts[1],
        parts[2] + 1,
        parts[3] + 1,
        parts[4],
        parts[5],
        parts[6]
    )
    .into_bytes();
    if !fraction.is_empty() {
        out.push(b'.');
        out.extend_from_slice(fraction);
    }
    out.push(b'Z');
    Ok(out)
}

/// slapd's `generalizedTimeOrderingMatch`: compare without the trailing `Z`.
fn compare_time(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len()).saturating_sub(1);
    match a.get(..n).cmp(&b.get(..n)) {
        Ordering::Equal => a.len().cmp(&b.len()),
        o => o,
    }
}

/// slapd's `integerMatch`: sign first, then length, then digits (values are validated, so
/// they have no leading zeros and no `-0`).
pub(crate) fn compare_integer(a: &[u8], b: &[u8]) -> Ordering {
    let (an, ad) = match a.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, a),
    };
    let (bn, bd) = match b.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, b),
    };
    match (an, bn) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => {
            let o = ad.len().cmp(&bd.len()).then_with(|| ad.cmp(bd));
            if an {
                o.reverse()
            } else {
                o
            }
        }
    }
}

fn parse_i64(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.parse::<i64>().ok()
}

/// The first component of a `( oid ... )` or `( 123 ... )` description; other values as is.
fn first_component(v: &[u8]) -> &[u8] {
    let t = v.trim_ascii();
    match t.strip_prefix(b"(") {
        Some(rest) => {
            let rest = rest.trim_ascii_start();
            let end = rest.iter().position(|c| *c == b' ').unwrap_or(rest.len());
            rest.get(..end).unwrap_or_default()
        }
        None => t,
    }
}

/// Normalizes an OID: numeric OIDs as is, known names to their numeric OID, other names lowercased.
fn oid_normal(schema: &Schema, v: &[u8]) -> Result<Vec<u8>, String> {
    let s = utf8(v)?.trim_matches(' ');
    if !is_oid(s) {
        return Err("an OID is a numeric OID (1.2.3) or a name".into());
    }
    if is_numericoid(s) {
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(oid) = schema.oid_of_name(s) {
        return Ok(oid.as_bytes().to_vec());
    }
    Ok(s.to_ascii_lowercase().into_bytes())
}

/// Normalizes a value (or one assertion piece) with a rule. The error says why the value is
/// not acceptable for the rule.
pub(crate) fn normalize(
    schema: &Schema,
    imp: RuleImpl,
    use_: Use,
    v: &[u8],
) -> Result<Vec<u8>, String> {
    use RuleImpl as I;
    Ok(match imp {
        I::DirString { casefold } => dir_string(v, casefold, use_)?,
        I::Ia5 { casefold } => ia5(v, casefold),
        I::CaseIgnoreList => {
            utf8(v)?;
            let mut out = Vec::with_capacity(v.len());
            for (i, line) in v.split(|&c| c == b'$').enumerate() {
                if i > 0 {
                    out.push(b'$');
                }
                if !line.is_empty() {
                    out.extend(dir_string(line, true, use_)?);
                }
            }
            out
        }
        I::DistinguishedName => {
            let s = utf8(v)?;
            let dn = Dn::parse(s).map_err(|e| e.to_string())?;
            dn.normalize(schema)
                .map_err(|e| e.to_string())?
                .to_string()
                .into_bytes()
        }
        I::Rdn => {
            let s = utf8(v)?;
            let dn = Dn::parse(s).map_err(|e| e.to_string())?;
            if dn.rdns.len() != 1 {
                return Err("an RDN has exactly one component".into());
            }
            dn.normalize(schema)
                .map_err(|e| e.to_string())?
                .to_string()
                .into_bytes()
        }
        I::UniqueMember => {
            let s = utf8(v)?;
            let (dn, uid) = split_uid(s);
            let dn = Dn::parse(dn).map_err(|e| e.to_string())?;
            let mut out = dn
                .normalize(schema)
                .map_err(|e| e.to_string())?
                .to_string()
                .into_bytes();
            if let Some(uid) = uid {
                out.push(b'#');
                out.extend_from_slice(uid.as_bytes());
            }
            out
        }
        I::Integer | I::IntegerBitAnd | I::IntegerBitOr => {
            validate_integer(v)?;
            v.to_vec()
        }
        I::IntegerFirstComponent => {
            let f = first_component(v);
            validate_integer(f)?;
            f.to_vec()
        }
        I::GeneralizedTime => generalized_time(v)?,
        I::OctetString | I::Der | I::Csn | I::BitString | I::Boolean | I::Approx | I::NoMatch => {
            v.to_vec()
        }
        I::TelephoneNumber => {
            if v.is_empty() {
                return Err("a telephone number cannot be empty".into());
            }
            strip_chars(v, |c| c == b' ' || c == b'-')
        }
        I::NumericString => strip_chars(v, |c| c == b' '),
        I::ObjectIdentifier => oid_normal(schema, v)?,
        I::ObjectIdentifierFirstComponent => oid_normal(schema, first_component(v))?,
        I::Uuid => {
            validate_uuid(v)?;
            v.to_ascii_lowercase()
        }
    })
}

/// Orders two values already normalized with `imp`.
pub(crate) fn compare(imp: RuleImpl, a: &[u8], b: &[u8]) -> Ordering {
    match imp {
        RuleImpl::Integer | RuleImpl::IntegerFirstComponent => compare_integer(a, b),
        RuleImpl::GeneralizedTime => compare_time(a, b),
        _ => a.cmp(b),
    }
}

/// Extensible-match-only rules (`integerBitAndMatch`, `integerBitOrMatch`): does `value`
/// (an integer) match `assertion` (an integer)?
pub(crate) fn bit_match(imp: RuleImpl, value: &[u8], assertion: &[u8]) -> Option<bool> {
    let v = parse_i64(value)?;
    let a = parse_i64(assertion)?;
    match imp {
        RuleImpl::IntegerBitAnd => Some(v & a == a),
        RuleImpl::IntegerBitOr => Some(v & a != 0),
        _ => None,
    }
}

/// slapd's substring matching on normalized forms: `initial` must be a prefix, `final_` a
/// suffix not overlapping it, and each `any` piece must occur in order between them.
pub(crate) fn substrings_match(
    value: &[u8],
    initial: Option<&[u8]>,
    any: &[Vec<u8>],
    final_: Option<&[u8]>,
) -> bool {
    let mut left = value;
    if let Some(i) = initial {
        match left.strip_prefix(i) {
            Some(rest) => left = rest,
            None => return false,
        }
    }
    if let Some(f) = final_ {
        match left.strip_suffix(f) {
            Some(rest) => left = rest,
            None => return false,
        }
    }
    for piece in any {
        if piece.is_empty() {
            continue;
        }
        match find(left, piece) {
            Some(pos) => left = left.get(pos + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// The position of `needle` in `hay` (first occurrence).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let first = *needle.first()?;
    let mut start = 0;
    while start + needle.len() <= hay.len() {
        let rest = hay.get(start..)?;
        let off = rest.iter().position(|&c| c == first)?;
        let pos = start + off;
        if hay.get(pos..pos + needle.len()) == Some(needle) {
            return Some(pos);
        }
        start = pos + 1;
    }
    None
}

/// Compares a raw value with an equality key without allocating, for the string rules whose
/// normalization of ASCII text is a simple byte stream (the common case in mail directories).
/// `None` when the fast path does not apply and the caller must normalize.
pub(crate) fn fast_eq(imp: RuleImpl, value: &[u8], key: &[u8]) -> Option<bool> {
    let casefold = match imp {
        RuleImpl::DirString { casefold } => {
            if !value.is_ascii() {
                return None;
            }
            casefold
        }
        RuleImpl::Ia5 { casefold } => {
            if value.contains(&0) {
                return None;
            }
            casefold
        }
        RuleImpl::OctetString
        | RuleImpl::Boolean
        | RuleImpl::Integer
        | RuleImpl::Csn
        | RuleImpl::BitString
        | RuleImpl::Der => return Some(value == key),
        _ => return None,
    };
    // Stream the normalized form of `value`: trimmed, space runs collapsed, maybe lowercased.
    let mut k = key.iter();
    let mut pending_space = false;
    let mut started = false;
    for &c in value {
        if c == b' ' {
            if started {
                pending_space = true;
            }
            continue;
        }
        if pending_space {
            if k.next() != Some(&b' ') {
                return Some(false);
            }
            pending_space = false;
        }
        started = true;
        let c = if casefold { c.to_ascii_lowercase() } else { c };
        if k.next() != Some(&c) {
            return Some(false);
        }
    }
    if !started {
        // All spaces: directory strings become " ", IA5 strings become "".
        return None;
    }
    Some(k.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_string_spaces() {
        assert_eq!(
            dir_string(b"  Some   Spaced Text  ", true, Use::Value).unwrap(),
            b"some spaced text"
        );
        assert_eq!(dir_string(b"  A  ", false, Use::Value).unwrap(), b"A");
        assert_eq!(dir_string(b"   ", true, Use::Value).unwrap(), b" ");
        // Substring pieces: initial keeps a trailing space, any keeps both, final keeps a leading one.
        assert_eq!(
            dir_string(b"  ab  ", true, Use::SubInitial).unwrap(),
            b"ab "
        );
        assert_eq!(dir_string(b"  ab  ", true, Use::SubAny).unwrap(), b" ab ");
        assert_eq!(dir_string(b"  ab  ", true, Use::SubFinal).unwrap(), b" ab");
        assert_eq!(
            dir_string("ÉCOLE Über".as_bytes(), true, Use::Value).unwrap(),
            "école über".as_bytes()
        );
        assert!(dir_string(b"\xff", true, Use::Value).is_err());
        // Tabs are not spaces for slapd.
        assert_eq!(dir_string(b"a\tb", true, Use::Value).unwrap(), b"a\tb");
    }

    #[test]
    fn ia5_spaces() {
        assert_eq!(ia5(b"  JDoe@Example.COM ", true), b"jdoe@example.com");
        assert_eq!(ia5(b"A  B", false), b"A B");
        assert_eq!(ia5(b"   ", true), b"");
    }

    #[test]
    fn telephone_and_numeric() {
        assert_eq!(
            strip_chars(b"+1 555-123 4567", |c| c == b' ' || c == b'-'),
            b"+15551234567"
        );
        assert_eq!(strip_chars(b" - ", |c| c == b' ' || c == b'-'), b" ");
        assert_eq!(strip_chars(b"12 34", |c| c == b' '), b"1234");
    }

    #[test]
    fn integers() {
        assert!(validate_integer(b"0").is_ok());
        assert!(validate_integer(b"-12").is_ok());
        assert!(validate_integer(b"007").is_err());
        assert!(validate_integer(b"-0").is_err());
        assert!(validate_integer(b"-").is_err());
        assert!(validate_integer(b"").is_err());
        assert!(validate_integer(b"1a").is_err());
        assert_eq!(compare_integer(b"-5", b"3"), Ordering::Less);
        assert_eq!(compare_integer(b"-5", b"-30"), Ordering::Greater);
        assert_eq!(compare_integer(b"100", b"99"), Ordering::Greater);
        assert_eq!(compare_integer(b"0", b"-1"), Ordering::Greater);
        assert_eq!(compare_integer(b"42", b"42"), Ordering::Equal);
    }

    #[test]
    fn generalized_times() {
        let n = |s: &str| generalized_time(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(n("20240229120000Z").unwrap(), "20240229120000Z");
        assert_eq!(n("202402291200Z").unwrap(), "20240229120000Z");
        assert_eq!(n("2024022912Z").unwrap(), "20240229120000Z");
        assert_eq!(n("20240101000000.500Z").unwrap(), "20240101000000.5Z");
        assert_eq!(n("20240101000000,000Z").unwrap(), "20240101000000Z");
        assert_eq!(n("20240101003000+0100").unwrap(), "20231231233000Z");
        assert_eq!(n("20231231233000-0100").unwrap(), "20240101003000Z");
        assert_eq!(n("20240101000060Z").unwrap(), "20240101000060Z");
        assert!(n("20230229120000Z").is_err());
        assert!(n("20240101120000").is_err());
        assert!(n("20241301120000Z").is_err());
        assert!(n("202401011200Zx").is_err());
        assert!(n("20240101.5Z").is_err());
        assert!(n("2024010112.Z").is_err());
        assert_eq!(
            compare_time(b"20240101000000Z", b"20240101000000.5Z"),
            Ordering::Less
        );
        assert_eq!(
            compare_time(b"20240101000001Z", b"20240101000000.5Z"),
            Ordering::Greater
        );
    }

    #[test]
    fn substrings() {
        let any = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert!(substrings_match(
            b"john doe",
            Some(b"jo"),
            &any(&["n d"]),
            Some(b"oe")
        ));
        assert!(!substrings_match(b"abc", Some(b"ab"), &[], Some(b"bc")));
        assert!(substrings_match(b"abab", Some(b"ab"), &[], Some(b"ab")));
        assert!(!substrings_match(
            b"abcabc",
            None,
            &any(&["c", "a", "c", "a"]),
            None
        ));
        assert!(substrings_match(
            b"abcabc",
            None,
            &any(&["c", "a", "c"]),
            None
        ));
    }

    #[test]
    fn fast_equality_matches_normalization() {
        let imp = RuleImpl::DirString { casefold: true };
        for v in [
            "  John   Doe ",
            "john doe",
            "JOHN DOE",
            "john  doex",
            "john",
        ] {
            let slow = dir_string(v.as_bytes(), true, Use::Value).unwrap() == b"john doe";
            assert_eq!(fast_eq(imp, v.as_bytes(), b"john doe"), Some(slow), "{v}");
        }
        assert_eq!(
            fast_eq(RuleImpl::Ia5 { casefold: true }, b" A@B.c ", b"a@b.c"),
            Some(true)
        );
        assert_eq!(fast_eq(imp, "é".as_bytes(), "é".as_bytes()), None);
    }

    #[test]
    fn oids_and_bits() {
        assert!(is_oid("2.5.4.3"));
        assert!(is_oid("cn"));
        assert!(!is_oid("2.05"));
        assert!(!is_oid("1a"));
        assert!(validate_bitstring(b"'0101'B").is_ok());
        assert!(validate_bitstring(b"''B").is_ok());
        assert!(validate_bitstring(b"'012'B").is_err());
        assert_eq!(split_uid("cn=a#'01'B"), ("cn=a", Some("'01'B")));
        assert_eq!(split_uid("cn=a#b"), ("cn=a#b", None));
        assert_eq!(bit_match(RuleImpl::IntegerBitAnd, b"514", b"2"), Some(true));
        assert_eq!(
            bit_match(RuleImpl::IntegerBitAnd, b"512", b"2"),
            Some(false)
        );
        assert_eq!(bit_match(RuleImpl::IntegerBitOr, b"3", b"6"), Some(true));
    }
}
