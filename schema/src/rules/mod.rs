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

mod syntax;
mod time;

pub(crate) use syntax::*;
pub(crate) use time::*;

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
mod tests;
