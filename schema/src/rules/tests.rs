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
