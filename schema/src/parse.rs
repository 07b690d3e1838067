//! Parsers for RFC 4512 schema descriptions (attribute types, object classes, matching rules,
//! LDAP syntaxes) and for the two file formats administrators hand us: OpenLDAP `.schema`
//! files and `cn=schema` LDIF.
//!
//! The description parser is deliberately as lenient as OpenLDAP's own (`LDAP_SCHEMA_ALLOW_ALL`):
//! it accepts bare (unquoted) names, names in place of numeric OIDs (resolved later through
//! `objectidentifier` macros), and keywords in any case. It does not resolve references; the
//! registry does that, so that a whole file can be checked before anything is added.

use crate::error::SchemaError;
use crate::model::{AttributeType, MatchingRule, ObjectClass, ObjectClassKind, Syntax, Usage};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Dollar,
    Quoted(String),
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '$' => {
                chars.next();
                out.push(Token::Dollar);
            }
            '\'' => {
                chars.next();
                // OpenLDAP takes everything up to the next quote verbatim (no RFC 4512 `\27`
                // decoding); we do the same so descriptions round-trip exactly as slapd shows them.
                let start = i + 1;
                let mut end = None;
                for (j, d) in chars.by_ref() {
                    if d == '\'' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or_else(|| "unterminated quoted string".to_string())?;
                out.push(Token::Quoted(
                    s.get(start..end).unwrap_or_default().to_string(),
                ));
            }
            _ => {
                let start = i;
                let mut end = s.len();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '$' | '\'') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                out.push(Token::Word(
                    s.get(start..end).unwrap_or_default().to_string(),
                ));
            }
        }
    }
    Ok(out)
}

struct Cursor {
    toks: Vec<Token>,
    pos: usize,
}

impl Cursor {
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect_open(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Open) => Ok(()),
            _ => Err("a description must start with '('".into()),
        }
    }

    /// The element's own OID: a numeric OID, or a name/macro reference resolved later.
    fn oid(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            Some(Token::Quoted(w)) => Ok(w),
            _ => Err("expected the numeric OID after '('".into()),
        }
    }

    /// `'a'`, `a`, or `( 'a' 'b' )`.
    fn qdescrs(&mut self, what: &str) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Quoted(w)) | Some(Token::Word(w)) => Ok(vec![w]),
            Some(Token::Open) => {
                let mut v = Vec::new();
                loop {
                    match self.next() {
                        Some(Token::Close) => break,
                        Some(Token::Quoted(w)) | Some(Token::Word(w)) => v.push(w),
                        Some(Token::Dollar) => {}
                        _ => return Err(format!("unterminated list after {what}")),
                    }
                }
                if v.is_empty() {
                    return Err(format!("empty list after {what}"));
                }
                Ok(v)
            }
            _ => Err(format!("expected a value after {what}")),
        }
    }

    fn qdstring(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Quoted(w)) => Ok(w),
            _ => Err(format!("expected a quoted string after {what}")),
        }
    }

    /// `oid` or `( oid $ oid ... )`.
    fn oids(&mut self, what: &str) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => Ok(vec![w]),
            Some(Token::Open) => {
                let mut v = Vec::new();
                let mut want_item = true;
                loop {
                    match self.next() {
                        Some(Token::Close) if want_item && !v.is_empty() => {
                            return Err(format!("misplaced '$' in the list of {what}"))
                        }
                        Some(Token::Close) => break,
                        Some(Token::Word(w)) | Some(Token::Quoted(w)) => {
                            if !want_item {
                                return Err(format!("missing '$' between the values of {what}"));
                            }
                            v.push(w);
                            want_item = false;
                        }
                        Some(Token::Dollar) => {
                            if want_item {
                                return Err(format!("misplaced '$' in the list of {what}"));
                            }
                            want_item = true;
                        }
                        None => return Err(format!("unterminated list after {what}")),
                        Some(Token::Open) => {
                            return Err(format!("nested '(' in the list of {what}"))
                        }
                    }
                }
                if v.is_empty() {
                    return Err(format!("empty list after {what}"));
                }
                Ok(v)
            }
            _ => Err(format!("expected a value after {what}")),
        }
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => Ok(w),
            _ => Err(format!("expected a value after {what}")),
        }
    }

    /// `X-NAME 'v'` or `X-NAME ( 'v1' 'v2' )`.
    fn extension(&mut self, key: String) -> Result<(String, Vec<String>), String> {
        let vals = self.qdescrs(&key)?;
        Ok((key, vals))
    }

    fn finish(&mut self) -> Result<(), String> {
        match self.next() {
            None => Ok(()),
            Some(_) => Err("unexpected text after the closing ')'".into()),
        }
    }
}

fn start(s: &str) -> Result<(Cursor, String), String> {
    let toks = tokenize(s)?;
    let mut c = Cursor { toks, pos: 0 };
    c.expect_open()?;
    let oid = c.oid()?;
    Ok((c, oid))
}

fn unexpected(t: Option<Token>) -> String {
    match t {
        None => "missing closing ')'".into(),
        Some(Token::Word(w)) => format!("unknown keyword '{w}'"),
        Some(Token::Quoted(w)) => format!("unexpected quoted string '{w}'"),
        Some(Token::Open) => "unexpected '('".into(),
        Some(Token::Dollar) => "unexpected '$'".into(),
        Some(Token::Close) => "unexpected ')'".into(),
    }
}

/// Splits `1.2.3{64}` into the OID and the length bound.
fn split_len(s: &str) -> Result<(String, Option<u32>), String> {
    match s.find('{') {
        None => Ok((s.to_string(), None)),
        Some(i) => {
            let rest = s.get(i + 1..).unwrap_or_default();
            let n = rest
                .strip_suffix('}')
                .and_then(|d| d.parse::<u32>().ok())
                .ok_or_else(|| format!("invalid length bound in SYNTAX '{s}'"))?;
            Ok((s.get(..i).unwrap_or_default().to_string(), Some(n)))
        }
    }
}

fn once<T>(slot: &mut Option<T>, v: T, kw: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{kw} given twice"));
    }
    *slot = Some(v);
    Ok(())
}

/// Parses an AttributeTypeDescription (RFC 4512 section 4.1.2).
pub(crate) fn attribute_type(s: &str) -> Result<AttributeType, String> {
    let (mut c, oid) = start(s)?;
    let mut at = AttributeType {
        oid,
        ..Default::default()
    };
    let mut desc = None;
    let mut names = None;
    loop {
        match c.next() {
            Some(Token::Close) => break,
            Some(Token::Word(kw)) => match kw.to_ascii_uppercase().as_str() {
                "NAME" => once(&mut names, c.qdescrs("NAME")?, "NAME")?,
                "DESC" => once(&mut desc, c.qdstring("DESC")?, "DESC")?,
                "OBSOLETE" => at.obsolete = true,
                "SUP" => once(&mut at.sup, c.word("SUP")?, "SUP")?,
                "EQUALITY" => once(&mut at.equality, c.word("EQUALITY")?, "EQUALITY")?,
                "ORDERING" => once(&mut at.ordering, c.word("ORDERING")?, "ORDERING")?,
                "SUBSTR" => once(&mut at.substr, c.word("SUBSTR")?, "SUBSTR")?,
                "SYNTAX" => {
                    let (oid, len) = split_len(&c.word("SYNTAX")?)?;
                    once(&mut at.syntax, oid, "SYNTAX")?;
                    at.syntax_len = len;
                }
                "SINGLE-VALUE" => at.single_value = true,
                "COLLECTIVE" => at.collective = true,
                "NO-USER-MODIFICATION" => at.no_user_modification = true,
                "USAGE" => {
                    let u = c.word("USAGE")?;
                    at.usage = match u.to_ascii_lowercase().as_str() {
                        "userapplications" => Usage::UserApplications,
                        "directoryoperation" => Usage::DirectoryOperation,
                        "distributedoperation" => Usage::DistributedOperation,
                        "dsaoperation" => Usage::DsaOperation,
                        _ => return Err(format!("unknown USAGE '{u}'")),
                    }
                }
                k if k.starts_with("X-") => at.extensions.push(c.extension(kw)?),
                _ => return Err(unexpected(Some(Token::Word(kw)))),
            },
            t => return Err(unexpected(t)),
        }
    }
    c.finish()?;
    at.names = names.unwrap_or_default();
    at.desc = desc;
    if at.sup.is_none() && at.syntax.is_none() {
        return Err(format!("attribute type {} needs SUP or SYNTAX", at.name()));
    }
    Ok(at)
}

/// Parses an ObjectClassDescription (RFC 4512 section 4.1.1).
pub(crate) fn object_class(s: &str) -> Result<ObjectClass, String> {
    let (mut c, oid) = start(s)?;
    let mut oc = ObjectClass {
        oid,
        ..Default::default()
    };
    let mut names = None;
    let mut desc = None;
    let mut kind = None;
    let mut sup = None;
    let mut must = None;
    let mut may = None;
    loop {
        match c.next() {
            Some(Token::Close) => break,
            Some(Token::Word(kw)) => match kw.to_ascii_uppercase().as_str() {
                "NAME" => once(&mut names, c.qdescrs("NAME")?, "NAME")?,
                "DESC" => once(&mut desc, c.qdstring("DESC")?, "DESC")?,
                "OBSOLETE" => oc.obsolete = true,
                "SUP" => once(&mut sup, c.oids("SUP")?, "SUP")?,
                "ABSTRACT" => once(&mut kind, ObjectClassKind::Abstract, "kind")?,
                "STRUCTURAL" => once(&mut kind, ObjectClassKind::Structural, "kind")?,
                "AUXILIARY" => once(&mut kind, ObjectClassKind::Auxiliary, "kind")?,
                "MUST" => once(&mut must, c.oids("MUST")?, "MUST")?,
                "MAY" => once(&mut may, c.oids("MAY")?, "MAY")?,
                k if k.starts_with("X-") => oc.extensions.push(c.extension(kw)?),
                _ => return Err(unexpected(Some(Token::Word(kw)))),
            },
            t => return Err(unexpected(t)),
        }
    }
    c.finish()?;
    oc.names = names.unwrap_or_default();
    oc.desc = desc;
    oc.kind = kind.unwrap_or_default();
    oc.sup = sup.unwrap_or_default();
    oc.must = must.unwrap_or_default();
    oc.may = may.unwrap_or_default();
    Ok(oc)
}

/// Parses a MatchingRuleDescription (RFC 4512 section 4.1.3).
pub(crate) fn matching_rule(s: &str) -> Result<MatchingRule, String> {
    let (mut c, oid) = start(s)?;
    let mut mr = MatchingRule {
        oid,
        ..Default::default()
    };
    let mut names = None;
    let mut desc = None;
    let mut syntax = None;
    loop {
        match c.next() {
            Some(Token::Close) => break,
            Some(Token::Word(kw)) => match kw.to_ascii_uppercase().as_str() {
                "NAME" => once(&mut names, c.qdescrs("NAME")?, "NAME")?,
                "DESC" => once(&mut desc, c.qdstring("DESC")?, "DESC")?,
                "OBSOLETE" => mr.obsolete = true,
                "SYNTAX" => once(&mut syntax, c.word("SYNTAX")?, "SYNTAX")?,
                k if k.starts_with("X-") => {
                    c.extension(kw)?;
                }
                _ => return Err(unexpected(Some(Token::Word(kw)))),
            },
            t => return Err(unexpected(t)),
        }
    }
    c.finish()?;
    mr.names = names.unwrap_or_default();
    mr.desc = desc;
    mr.syntax = syntax.ok_or_else(|| format!("matching rule {} needs SYNTAX", mr.oid))?;
    Ok(mr)
}

/// Parses a SyntaxDescription (RFC 4512 section 4.1.5).
pub(crate) fn syntax(s: &str) -> Result<Syntax, String> {
    let (mut c, oid) = start(s)?;
    let mut syn = Syntax {
        oid,
        ..Default::default()
    };
    let mut desc = None;
    loop {
        match c.next() {
            Some(Token::Close) => break,
            Some(Token::Word(kw)) => match kw.to_ascii_uppercase().as_str() {
                "DESC" => once(&mut desc, c.qdstring("DESC")?, "DESC")?,
                // OpenLDAP lets a syntax have a NAME; it is not published, so it is dropped.
                "NAME" => {
                    c.qdescrs("NAME")?;
                }
                k if k.starts_with("X-") => {
                    let (k, v) = c.extension(kw)?;
                    if k.eq_ignore_ascii_case("X-NOT-HUMAN-READABLE") {
                        syn.not_human_readable =
                            v.first().is_some_and(|x| x.eq_ignore_ascii_case("TRUE"));
                    }
                    syn.extensions.push((k, v));
                }
                _ => return Err(unexpected(Some(Token::Word(kw)))),
            },
            t => return Err(unexpected(t)),
        }
    }
    c.finish()?;
    syn.desc = desc;
    Ok(syn)
}

/// One parsed item of a schema file, with the line it starts on.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Attr(AttributeType),
    Class(ObjectClass),
    Rule(MatchingRule),
    Syntax(Syntax),
    /// `objectidentifier NAME OID` (OID may itself use a macro: `Base:1.2`).
    Macro {
        name: String,
        oid: String,
    },
}

fn err(line: usize, message: impl Into<String>) -> SchemaError {
    SchemaError::Syntax {
        line,
        message: message.into(),
    }
}

/// Parses one directive (`attributetype ...`, `objectclass ...`, `objectidentifier ...`,
/// `ldapsyntax ...`, `matchingrule ...`).
fn directive(keyword: &str, rest: &str, line: usize) -> Result<Option<Item>, SchemaError> {
    let kw = keyword.to_ascii_lowercase();
    // slapd matches `attribute` as a prefix (so `attributetype`, `attributetypes` and even the
    // misspelt `attributeype` in OpenLDAP's own dsee.schema are attribute type definitions).
    let kw = if kw.starts_with("attribute") && kw != "attributeoptions" {
        "attributetype".to_string()
    } else {
        kw
    };
    let item = match kw.as_str() {
        "attributetype" => {
            Item::Attr(attribute_type(rest).map_err(|m| err(line, format!("attribute type: {m}")))?)
        }
        "objectclass" | "objectclasses" => {
            Item::Class(object_class(rest).map_err(|m| err(line, format!("object class: {m}")))?)
        }
        "ldapsyntax" | "ldapsyntaxes" => {
            Item::Syntax(syntax(rest).map_err(|m| err(line, format!("ldap syntax: {m}")))?)
        }
        "matchingrule" | "matchingrules" => {
            Item::Rule(matching_rule(rest).map_err(|m| err(line, format!("matching rule: {m}")))?)
        }
        "objectidentifier" => {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(oid), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err(line, "objectidentifier needs exactly a name and an OID"));
            };
            Item::Macro { name: name.to_string(), oid: oid.to_string() }
        }
        _ => return Err(err(line, format!("unknown directive '{keyword}'; expected attributetype, objectclass or objectidentifier"))),
    };
    Ok(Some(item))
}

/// Parses an OpenLDAP `.schema` file: directives start in column one, lines starting with
/// whitespace continue the previous directive, `#` starts a comment line.
pub(crate) fn schema_file(text: &str) -> Result<Vec<(usize, Item)>, SchemaError> {
    let mut items = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let flush =
        |cur: Option<(usize, String)>, items: &mut Vec<(usize, Item)>| -> Result<(), SchemaError> {
            if let Some((line, text)) = cur {
                let text = text.trim();
                let (kw, rest) = match text.find(char::is_whitespace) {
                    Some(i) => (
                        text.get(..i).unwrap_or_default(),
                        text.get(i..).unwrap_or_default(),
                    ),
                    None => (text, ""),
                };
                if let Some(item) = directive(kw, rest.trim(), line)? {
                    items.push((line, item));
                }
            }
            Ok(())
        };
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            // A blank line ends the current directive, as in slapd.conf.
            flush(current.take(), &mut items)?;
            continue;
        }
        if line.starts_with(|c: char| c.is_whitespace()) {
            match current.as_mut() {
                Some((_, text)) => {
                    text.push(' ');
                    text.push_str(line.trim());
                }
                None => {
                    return Err(err(
                        line_no,
                        "continuation line without a directive before it",
                    ))
                }
            }
        } else {
            flush(current.take(), &mut items)?;
            current = Some((line_no, line.to_string()));
        }
    }
    flush(current.take(), &mut items)?;
    Ok(items)
}

/// Decodes standard base64 (RFC 4648, with padding, whitespace ignored).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut pad = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if pad > 2 {
        return None;
    }
    Some(out)
}

/// Removes an `{N}` ordering prefix (cn=config `X-ORDERED` values).
fn strip_order_prefix(v: &str) -> &str {
    let t = v.trim_start();
    if let Some(rest) = t.strip_prefix('{') {
        if let Some(end) = rest.find('}') {
            if rest
                .get(..end)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            {
                return rest.get(end + 1..).unwrap_or_default();
            }
        }
    }
    v
}

/// Parses `cn=schema` LDIF (as slapcat writes it, or `/etc/ldap/schema/*.ldif`): the values of
/// `olcAttributeTypes`/`attributeTypes`, `olcObjectClasses`/`objectClasses`,
/// `olcObjectIdentifier`, `olcLdapSyntaxes`/`ldapSyntaxes` become definitions; every other
/// attribute is ignored.
pub(crate) fn ldif_schema(text: &str) -> Result<Vec<(usize, Item)>, SchemaError> {
    // First unfold: a line starting with one space continues the previous line.
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(cont) = line.strip_prefix(' ') {
            match logical.last_mut() {
                Some((_, prev)) if !prev.is_empty() && !prev.starts_with('#') => {
                    prev.push_str(cont)
                }
                Some((_, prev)) if prev.starts_with('#') => {}
                _ => return Err(err(idx + 1, "folded line without a line before it")),
            }
            continue;
        }
        logical.push((idx + 1, line.to_string()));
    }
    let mut items = Vec::new();
    for (line, l) in logical {
        if l.is_empty() || l.starts_with('#') || l.starts_with('-') {
            continue;
        }
        let Some(colon) = l.find(':') else {
            return Err(err(
                line,
                format!("expected 'attribute: value', found '{l}'"),
            ));
        };
        let attr = l.get(..colon).unwrap_or_default();
        let rest = l.get(colon + 1..).unwrap_or_default();
        let base = attr
            .split(';')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let kw = match base.as_str() {
            "olcattributetypes" | "attributetypes" => "attributetype",
            "olcobjectclasses" | "objectclasses" => "objectclass",
            "olcobjectidentifier" => "objectidentifier",
            "olcldapsyntaxes" | "ldapsyntaxes" => "ldapsyntax",
            _ => continue,
        };
        let value = if let Some(b64) = rest.strip_prefix(':') {
            let bytes = base64_decode(b64.trim())
                .ok_or_else(|| err(line, format!("invalid base64 value of {attr}")))?;
            String::from_utf8(bytes)
                .map_err(|_| err(line, format!("value of {attr} is not UTF-8")))?
        } else if rest.starts_with('<') {
            return Err(err(
                line,
                format!("URL values are not supported for {attr}"),
            ));
        } else {
            rest.trim_start().to_string()
        };
        let value = strip_order_prefix(&value);
        if let Some(item) = directive(kw, value.trim(), line)? {
            items.push((line, item));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attribute_type_with_everything() {
        let at = attribute_type(
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519: common name(s) for which the entity is known by' \
             SUP name EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{32768} SINGLE-VALUE \
             USAGE dSAOperation X-ORIGIN 'test' X-MULTI ( 'a' 'b' ) )",
        )
        .unwrap();
        assert_eq!(at.oid, "2.5.4.3");
        assert_eq!(at.names, vec!["cn", "commonName"]);
        assert_eq!(at.sup.as_deref(), Some("name"));
        assert_eq!(at.syntax.as_deref(), Some("1.3.6.1.4.1.1466.115.121.1.15"));
        assert_eq!(at.syntax_len, Some(32768));
        assert!(at.single_value);
        assert_eq!(at.usage, Usage::DsaOperation);
        assert_eq!(at.extensions.len(), 2);
        assert_eq!(at.extensions[1].1, vec!["a", "b"]);
    }

    #[test]
    fn parses_object_class_lists() {
        let oc = object_class("( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( userPassword $ telephoneNumber ) )").unwrap();
        assert_eq!(oc.must, vec!["sn", "cn"]);
        assert_eq!(oc.may, vec!["userPassword", "telephoneNumber"]);
        assert_eq!(oc.kind, ObjectClassKind::Structural);
        assert_eq!(oc.sup, vec!["top"]);
        let oc = object_class("( 1.2 NAME 'x' AUXILIARY MUST cn )").unwrap();
        assert_eq!(oc.must, vec!["cn"]);
        assert_eq!(oc.kind, ObjectClassKind::Auxiliary);
    }

    #[test]
    fn rejects_malformed_descriptions() {
        assert!(attribute_type("2.5.4.3 NAME 'cn' )").is_err());
        assert!(attribute_type("( 2.5.4.3 NAME 'cn' SYNTAX 1.2 ").is_err());
        assert!(attribute_type("( 2.5.4.3 NAME 'cn' )")
            .unwrap_err()
            .contains("SUP or SYNTAX"));
        assert!(attribute_type("( 2.5.4.3 NAME 'cn SYNTAX 1.2 )")
            .unwrap_err()
            .contains("unterminated"));
        assert!(attribute_type("( 2.5.4.3 FOO 'cn' SYNTAX 1.2 )")
            .unwrap_err()
            .contains("unknown keyword 'FOO'"));
        assert!(object_class("( 1.2 MUST ( a b ) )")
            .unwrap_err()
            .contains("missing '$'"));
        assert!(object_class("( 1.2 MUST ( a $ ) )").is_err());
        assert!(attribute_type("( 1.2 SYNTAX 1.2 NAME 'a' NAME 'b' )")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn schema_file_continuations_comments_and_lines() {
        let text = "# comment\nobjectidentifier Base 1.3.6.1.4.1.99999\n\nattributetype ( Base:1 NAME 'fooAttr'\n\tDESC 'x'\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n# between\nobjectclass ( Base:2 NAME 'fooClass' SUP top AUXILIARY MAY fooAttr )\n";
        let items = schema_file(text).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].0, 4);
        match &items[1].1 {
            Item::Attr(a) => {
                assert_eq!(a.oid, "Base:1");
                assert_eq!(a.desc.as_deref(), Some("x"));
            }
            other => panic!("{other:?}"),
        }
        let bad = "attributetype ( 1.2 NAME 'a' SYNTAX 1.2 )\n\nattributetype ( 1.3 NAME 'b'\n  BOGUS )\n";
        let e = schema_file(bad).unwrap_err();
        assert_eq!(
            e,
            SchemaError::Syntax {
                line: 3,
                message: "attribute type: unknown keyword 'BOGUS'".into()
            }
        );
        assert!(schema_file("  ( 1.2 )\n").is_err());
        assert!(schema_file("foo bar\n")
            .unwrap_err()
            .to_string()
            .starts_with("line 1: unknown directive"));
    }

    #[test]
    fn ldif_schema_folding_base64_and_order_prefixes() {
        let text = "dn: cn=test,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: test\nolcObjectIdentifier: {0}T 1.2.3\nolcAttributeTypes: {0}( T:1 NAME 'tA'\n  DESC 'folded' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\nolcObjectClasses:: ezB9KCBUOjIgTkFN\n RSAndEMnIFNVUCB0b3AgQVVYSUxJQVJZIE1BWSB0QSAp\n";
        let items = ldif_schema(text).unwrap();
        assert_eq!(items.len(), 3);
        match &items[1].1 {
            Item::Attr(a) => assert_eq!(a.desc.as_deref(), Some("folded")),
            other => panic!("{other:?}"),
        }
        match &items[2].1 {
            Item::Class(c) => assert_eq!(c.names, vec!["tC"]),
            other => panic!("{other:?}"),
        }
        let e = ldif_schema("dn: cn=x\nolcAttributeTypes: ( 1.2 NAME )\n").unwrap_err();
        assert!(matches!(e, SchemaError::Syntax { line: 2, .. }), "{e:?}");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*b").is_none());
    }
}
