//! Distinguished names (RFC 4514): parsing with escapes and multi-valued RDNs, the string forms
//! slapd produces, and the normalized form by which the server compares and indexes DNs.
//!
//! Parsing accepts what slapd's `ldap_bv2dn` accepts in its default (LDAP) mode: spaces around
//! `=`, `,` and `+`, `;` as an RDN separator, quoted values (`cn="a, b"`), `\XX` hex escapes and
//! escaped specials, `OID.` prefixes on numeric types. Like slapd it refuses empty values,
//! unescaped `"`, `<` and `>` inside a value, and values that are not UTF-8 once unescaped.
//! BER (`#hex`) values are refused: slapd refuses them for every syntax a DN can name.

use crate::error::DnError;
use crate::registry::Schema;
use crate::rules::{self, RuleImpl};
use std::fmt;

/// One attribute value assertion of an RDN, as written (type name not resolved, value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: Vec<u8>,
}

/// A relative distinguished name: one or more AVAs joined with `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn {
    pub avas: Vec<Ava>,
}

/// A DN as the client wrote it, parsed. `rdns[0]` is the leftmost (most specific) RDN;
/// the root DSE's DN has no RDNs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dn {
    pub rdns: Vec<Rdn>,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn err(&self, message: impl Into<String>) -> DnError {
        DnError::Syntax {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn attr_type(&mut self) -> Result<String, DnError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-')
                {
                    self.pos += 1;
                }
                // `OID.1.2.3` (RFC 1779) names a type by numeric OID.
                let word = self.s.get(start..self.pos).unwrap_or_default();
                if word.eq_ignore_ascii_case(b"oid") && self.peek() == Some(b'.') {
                    self.pos += 1;
                    let oid_start = self.pos;
                    self.numeric_oid()?;
                    return Ok(String::from_utf8_lossy(
                        self.s.get(oid_start..self.pos).unwrap_or_default(),
                    )
                    .into_owned());
                }
            }
            Some(c) if c.is_ascii_digit() => self.numeric_oid()?,
            _ => return Err(self.err("expected an attribute type")),
        }
        Ok(String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default()).into_owned())
    }

    fn numeric_oid(&mut self) -> Result<(), DnError> {
        let start = self.pos;
        loop {
            let digits = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            if self.pos == digits {
                return Err(self.err("malformed numeric OID"));
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        if !self
            .s
            .get(start..self.pos)
            .unwrap_or_default()
            .contains(&b'.')
        {
            return Err(self.err("malformed numeric OID"));
        }
        Ok(())
    }

    fn hex_pair(&mut self) -> Option<u8> {
        let hi = hex_val(self.s.get(self.pos).copied()?)?;
        let lo = hex_val(self.s.get(self.pos + 1).copied()?)?;
        self.pos += 2;
        Some(hi * 16 + lo)
    }

    /// An escape after the backslash: a hex pair or an escaped special character.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), DnError> {
        if let Some(b) = self.hex_pair() {
            out.push(b);
            return Ok(());
        }
        match self.peek() {
            Some(c) if c.is_ascii_punctuation() || c == b' ' => {
                out.push(c);
                self.pos += 1;
                Ok(())
            }
            _ => {
                Err(self.err("invalid escape: use \\ before a special character or two hex digits"))
            }
        }
    }

    fn value(&mut self) -> Result<Vec<u8>, DnError> {
        // Sized up to the next separator: exact for a value without escapes or quotes.
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let mut out = Vec::with_capacity(
            rest.iter()
                .position(|c| matches!(c, b',' | b';' | b'+'))
                .unwrap_or(rest.len()),
        );
        match self.peek() {
            Some(b'#') => return Err(self.err("BER-encoded (#hex) values are not supported")),
            Some(b'"') => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => return Err(self.err("unterminated quoted value")),
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            self.pos += 1;
                            self.escape(&mut out)?;
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                self.skip_spaces();
            }
            _ => {
                // Unescaped trailing spaces are not part of the value; escaped ones are.
                let mut significant = 0;
                loop {
                    match self.peek() {
                        None | Some(b',') | Some(b';') | Some(b'+') => break,
                        Some(b'\\') => {
                            self.pos += 1;
                            self.escape(&mut out)?;
                            significant = out.len();
                        }
                        Some(b'"') | Some(b'<') | Some(b'>') => {
                            return Err(self.err("'\"', '<' and '>' must be escaped in a DN value"));
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                            if c != b' ' {
                                significant = out.len();
                            }
                        }
                    }
                }
                out.truncate(significant);
            }
        }
        if out.is_empty() {
            return Err(self.err("empty attribute value"));
        }
        if std::str::from_utf8(&out).is_err() {
            return Err(self.err("attribute value is not valid UTF-8"));
        }
        Ok(out)
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends an RDN value in RFC 4514 form, escaping as slapd does: `,+"\<>;=` and NUL anywhere,
/// `#` and space at the start, space at the end, all as uppercase `\XX`.
pub(crate) fn escape_value(v: &[u8], out: &mut String) {
    let last = v.len().saturating_sub(1);
    let mut plain_start = 0;
    let flush = |from: usize, to: usize, out: &mut String| {
        if let Some(chunk) = v.get(from..to) {
            out.push_str(&String::from_utf8_lossy(chunk));
        }
    };
    for (i, &c) in v.iter().enumerate() {
        let esc = matches!(
            c,
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=' | 0
        ) || (i == 0 && (c == b'#' || c == b' '))
            || (i == last && c == b' ');
        if esc {
            flush(plain_start, i, out);
            out.push('\\');
            out.push_str(&format!("{c:02X}"));
            plain_start = i + 1;
        }
    }
    flush(plain_start, v.len(), out);
}

impl Dn {
    /// Parses an RFC 4514 string (also accepting the RFC 2253/1779 leniencies OpenLDAP accepts:
    /// spaces around separators and `;` as separator).
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        let mut p = Parser {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut dn = Dn::default();
        p.skip_spaces();
        if p.peek().is_none() {
            return Ok(dn);
        }
        loop {
            let mut rdn = Rdn {
                avas: Vec::with_capacity(1),
            };
            loop {
                p.skip_spaces();
                let attr = p.attr_type()?;
                p.skip_spaces();
                if p.peek() != Some(b'=') {
                    return Err(p.err(format!("expected '=' after {attr}")));
                }
                p.pos += 1;
                p.skip_spaces();
                let value = p.value()?;
                rdn.avas.push(Ava { attr, value });
                p.skip_spaces();
                if p.peek() == Some(b'+') {
                    p.pos += 1;
                    continue;
                }
                break;
            }
            dn.rdns.push(rdn);
            match p.peek() {
                None => break,
                Some(b',') | Some(b';') => {
                    p.pos += 1;
                }
                Some(_) => return Err(p.err("expected ',' between RDNs")),
            }
        }
        Ok(dn)
    }

    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The DN without its leftmost RDN; `None` for the root.
    pub fn parent(&self) -> Option<Dn> {
        self.rdns.get(1..).map(|r| Dn { rdns: r.to_vec() })
    }

    /// The leftmost RDN; `None` for the root.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// A new DN with `rdn` in front of this one.
    pub fn child(&self, rdn: Rdn) -> Dn {
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(rdn);
        rdns.extend(self.rdns.iter().cloned());
        Dn { rdns }
    }

    /// Normalizes with the schema: attribute types to their canonical name, values with
    /// each type's equality rule, AVAs of a multi-valued RDN sorted.
    ///
    /// The canonical name is the type's first NAME exactly as the schema defines it, which is
    /// what slapd prints in normalized DNs: `cn`, `dc`, `uid`, but `objectClass` and
    /// `uniqueMember` keep their capitals.
    pub fn normalize(&self, schema: &Schema) -> Result<NormDn, DnError> {
        let mut rdns = Vec::with_capacity(self.rdns.len());
        for rdn in &self.rdns {
            if let [ava] = rdn.avas.as_slice() {
                // One AVA, as nearly every RDN: no sorting, no list of parts.
                let (id, name) = resolve(schema, &ava.attr)?;
                let v = normalize_ava_value(schema, id, name, &ava.value)?;
                let mut s = String::with_capacity(name.len() + 1 + v.len() + 2);
                s.push_str(name);
                s.push('=');
                escape_value(&v, &mut s);
                rdns.push(s);
                continue;
            }
            let mut parts: Vec<(&str, Vec<u8>)> = Vec::with_capacity(rdn.avas.len());
            for ava in &rdn.avas {
                let (id, name) = resolve(schema, &ava.attr)?;
                let v = normalize_ava_value(schema, id, name, &ava.value)?;
                if parts.iter().any(|(n, _)| *n == name) {
                    return Err(DnError::InvalidValue {
                        attr: name.to_string(),
                        message: "the same attribute type appears twice in one RDN".into(),
                    });
                }
                parts.push((name, v));
            }
            // slapd sorts the AVAs of a multi-valued RDN by canonical type name (strcmp).
            parts.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut s = String::new();
            for (i, (name, v)) in parts.iter().enumerate() {
                if i > 0 {
                    s.push('+');
                }
                s.push_str(name);
                s.push('=');
                escape_value(v, &mut s);
            }
            rdns.push(s);
        }
        Ok(NormDn { rdns })
    }

    /// Both forms a bind needs: `(self.normalize(schema)?, self.pretty(schema)?.to_rfc4514())`,
    /// in one pass over the RDNs when each has one AVA and none is DN-valued (each type is
    /// resolved and each value validated once, and no pretty `Dn` is built).
    pub fn normalize_pretty(&self, schema: &Schema) -> Result<(NormDn, String), DnError> {
        let mut rdns = Vec::with_capacity(self.rdns.len());
        let mut pretty = String::with_capacity(
            self.rdns
                .iter()
                .flat_map(|r| &r.avas)
                .map(|a| a.attr.len() + a.value.len() + 2)
                .sum(),
        );
        for rdn in &self.rdns {
            let [ava] = rdn.avas.as_slice() else {
                return Ok((self.normalize(schema)?, self.pretty(schema)?.to_rfc4514()));
            };
            let (id, name) = resolve(schema, &ava.attr)?;
            if schema
                .attr_info(id)
                .is_some_and(|info| info.syntax_impl == rules::SyntaxImpl::Dn)
            {
                return Ok((self.normalize(schema)?, self.pretty(schema)?.to_rfc4514()));
            }
            // Validates the value as `pretty` would.
            let v = normalize_ava_value(schema, id, name, &ava.value)?;
            let mut s = String::with_capacity(name.len() + 1 + v.len() + 2);
            s.push_str(name);
            s.push('=');
            escape_value(&v, &mut s);
            rdns.push(s);
            if !pretty.is_empty() {
                pretty.push(',');
            }
            pretty.push_str(name);
            pretty.push('=');
            escape_value(&ava.value, &mut pretty);
        }
        Ok((NormDn { rdns }, pretty))
    }

    /// The DN in slapd's "pretty" form (what it stores and returns): types by canonical name,
    /// values validated and kept as written, DN-valued values prettied in turn, the AVAs of a
    /// multi-valued RDN sorted by type name.
    pub fn pretty(&self, schema: &Schema) -> Result<Dn, DnError> {
        let mut out = Dn {
            rdns: Vec::with_capacity(self.rdns.len()),
        };
        for rdn in &self.rdns {
            let mut avas = Vec::with_capacity(rdn.avas.len());
            for ava in &rdn.avas {
                let (id, name) = resolve(schema, &ava.attr)?;
                let info = schema
                    .attr_info(id)
                    .ok_or_else(|| DnError::UndefinedAttribute(ava.attr.clone()))?;
                rules::validate(schema, info.syntax_impl, &ava.value).map_err(|message| {
                    DnError::InvalidValue {
                        attr: name.to_string(),
                        message,
                    }
                })?;
                let value = if info.syntax_impl == rules::SyntaxImpl::Dn {
                    let inner = std::str::from_utf8(&ava.value).unwrap_or_default();
                    Dn::parse(inner)?.pretty(schema)?.to_rfc4514().into_bytes()
                } else {
                    ava.value.clone()
                };
                if avas.iter().any(|a: &Ava| a.attr == name) {
                    return Err(DnError::InvalidValue {
                        attr: name.to_string(),
                        message: "the same attribute type appears twice in one RDN".into(),
                    });
                }
                avas.push(Ava {
                    attr: name.to_string(),
                    value,
                });
            }
            // slapd sorts multi-valued RDNs in its pretty form too.
            avas.sort_by(|a, b| a.attr.as_bytes().cmp(b.attr.as_bytes()));
            out.rdns.push(Rdn { avas });
        }
        Ok(out)
    }
}

fn resolve<'s>(schema: &'s Schema, attr: &str) -> Result<(crate::AttrId, &'s str), DnError> {
    let id = schema
        .attr_id(attr)
        .ok_or_else(|| DnError::UndefinedAttribute(attr.to_string()))?;
    Ok((id, schema.attr_name(id)))
}

/// Validates and normalizes one RDN value the way slapd's `LDAPRDN_rewrite` does: validate with
/// the syntax, then normalize with the equality rule, except for rules slapd does not apply in
/// DNs (objectClass, OIDs and UUIDs keep the value as written).
fn normalize_ava_value(
    schema: &Schema,
    id: crate::AttrId,
    name: &str,
    value: &[u8],
) -> Result<Vec<u8>, DnError> {
    let info = schema
        .attr_info(id)
        .ok_or_else(|| DnError::UndefinedAttribute(name.to_string()))?;
    rules::validate(schema, info.syntax_impl, value).map_err(|message| DnError::InvalidValue {
        attr: name.to_string(),
        message,
    })?;
    let imp = info
        .equality
        .and_then(|r| schema.rule_spec(r))
        .map(|s| s.imp);
    let v = match imp {
        None | Some(RuleImpl::ObjectIdentifier) | Some(RuleImpl::Uuid) => value.to_vec(),
        _ if info.class_valued => value.to_vec(),
        Some(imp) => {
            rules::normalize(schema, imp, rules::Use::Value, value).map_err(|message| {
                DnError::InvalidValue {
                    attr: name.to_string(),
                    message,
                }
            })?
        }
    };
    if v.is_empty() {
        return Err(DnError::InvalidValue {
            attr: name.to_string(),
            message: "the value is empty once normalized".into(),
        });
    }
    Ok(v)
}

/// Compares a DN value as stored with a normalized DN key without allocating, for the common
/// case of plain ASCII DNs whose naming attributes use string rules (`uid=jdoe,ou=users,...`).
/// `None` when the value has anything that needs the full parser (escapes, quotes, multi-valued
/// RDNs, other rules); the caller then normalizes.
pub(crate) fn fast_dn_eq(schema: &Schema, raw: &[u8], key: &[u8]) -> Option<bool> {
    if !raw.is_ascii()
        || raw
            .iter()
            .any(|c| matches!(c, b'\\' | b'"' | b'+' | b'#' | b';' | b'<' | b'>' | 0))
    {
        return None;
    }
    let mut k = key;
    for (i, rdn) in raw.split(|c| *c == b',').enumerate() {
        if i > 0 {
            match k.strip_prefix(b",") {
                Some(rest) => k = rest,
                None => return Some(false),
            }
        }
        let eq = rdn.iter().position(|c| *c == b'=')?;
        let ty = std::str::from_utf8(rdn.get(..eq)?).ok()?.trim_matches(' ');
        let val = rdn.get(eq + 1..)?;
        if val.contains(&b'=') || val.iter().all(|c| *c == b' ') {
            return None;
        }
        let id = schema.attr_id(ty)?;
        let info = schema.attr_info(id)?;
        let imp = info
            .equality
            .and_then(|r| schema.rule_spec(r))
            .map(|s| s.imp)?;
        if info.class_valued || !matches!(imp, RuleImpl::DirString { .. } | RuleImpl::Ia5 { .. }) {
            return None;
        }
        let name = schema.attr_name(id).as_bytes();
        match k.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")) {
            Some(rest) => k = rest,
            None => return Some(false),
        }
        let end = k.iter().position(|c| *c == b',').unwrap_or(k.len());
        let (kval, rest) = k.split_at(end);
        if !rules::fast_eq(imp, val, kval)? {
            return Some(false);
        }
        k = rest;
    }
    Some(k.is_empty())
}

impl fmt::Display for Dn {
    /// RFC 4514 string form, escaping only what must be escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc4514())
    }
}

impl Dn {
    /// The RFC 4514 string form (as `Display` writes it), built in one string: `to_string`
    /// would build it and then copy it.
    pub fn to_rfc4514(&self) -> String {
        // Sized for the common case of nothing to escape.
        let len = self
            .rdns
            .iter()
            .flat_map(|r| &r.avas)
            .map(|a| a.attr.len() + a.value.len() + 2)
            .sum();
        let mut s = String::with_capacity(len);
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            for (j, ava) in rdn.avas.iter().enumerate() {
                if j > 0 {
                    s.push('+');
                }
                s.push_str(&ava.attr);
                s.push('=');
                escape_value(&ava.value, &mut s);
            }
        }
        s
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        for (j, ava) in self.avas.iter().enumerate() {
            if j > 0 {
                s.push('+');
            }
            s.push_str(&ava.attr);
            s.push('=');
            escape_value(&ava.value, &mut s);
        }
        f.write_str(&s)
    }
}

/// A normalized DN: each RDN in its normalized RFC 4514 string form (for example `uid=jdoe` or
/// `cn=a b+sn=x`), leftmost first. Two DNs name the same entry exactly when their normalized forms
/// are equal. Its `Display` is the normalized DN string OpenLDAP would show as `entryDN`'s
/// normalized value, and the equality-normalized value of DN-syntax attributes (`member`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NormDn {
    pub rdns: Vec<String>,
}

impl NormDn {
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    pub fn parent(&self) -> Option<NormDn> {
        self.rdns.get(1..).map(|r| NormDn { rdns: r.to_vec() })
    }

    /// The leftmost normalized RDN; `None` for the root.
    pub fn rdn(&self) -> Option<&str> {
        self.rdns.first().map(String::as_str)
    }

    /// True if `self` is `base` or lies below it.
    pub fn is_within(&self, base: &NormDn) -> bool {
        self.rdns.len() >= base.rdns.len() && self.rdns.ends_with(&base.rdns)
    }

    /// The normalized DN whose `Display` is `s`: its RDNs split at the commas no backslash
    /// escapes. Nothing is validated again: a normalized value need not satisfy its syntax
    /// (`c=\,\ ` normalizes to a one-character country), as in slapd, which never re-checks
    /// normalized values.
    pub fn from_normalized(s: &str) -> NormDn {
        if s.is_empty() {
            return NormDn::default();
        }
        let mut rdns = Vec::new();
        let mut current = String::new();
        let mut escaped = false;
        for c in s.chars() {
            if escaped {
                current.push(c);
                escaped = false;
            } else if c == '\\' {
                current.push(c);
                escaped = true;
            } else if c == ',' {
                rdns.push(std::mem::take(&mut current));
            } else {
                current.push(c);
            }
        }
        rdns.push(current);
        NormDn { rdns }
    }
}

impl fmt::Display for NormDn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rdns.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_form_reads_back_without_revalidation() {
        let schema = Schema::builtin();
        // Found by the dn fuzz target: ", " is a valid country string, "," (after the
        // insignificant trailing space goes) is not, and must still read back.
        for text in [
            "c=\\,\\ ",
            "cn=a\\,b+sn=c,ou=x\\\\,dc=example",
            "",
            "cn=\\2C",
        ] {
            let norm = Dn::parse(text).unwrap().normalize(&schema).unwrap();
            assert_eq!(NormDn::from_normalized(&norm.to_string()), norm, "{text:?}");
        }
    }

    fn norm(s: &Schema, dn: &str) -> String {
        Dn::parse(dn)
            .and_then(|d| d.normalize(s))
            .map(|n| n.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    fn pretty(s: &Schema, dn: &str) -> String {
        Dn::parse(dn)
            .and_then(|d| d.pretty(s))
            .map(|n| n.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn parse_basics() {
        let dn = Dn::parse("uid=jdoe,ou=users,dc=example,dc=com").unwrap();
        assert_eq!(dn.rdns.len(), 4);
        assert_eq!(dn.rdns[0].avas[0].attr, "uid");
        assert_eq!(dn.rdns[0].avas[0].value, b"jdoe");
        assert!(Dn::parse("").unwrap().is_root());
        assert!(Dn::parse("   ").unwrap().is_root());
        assert_eq!(
            dn.parent().unwrap().to_string(),
            "ou=users,dc=example,dc=com"
        );
        assert!(Dn::default().parent().is_none());
    }

    #[test]
    fn parse_escapes_quotes_and_multi_valued() {
        let dn = Dn::parse(r#"cn=a\,b\2Cc\+d\\e\"f,o=x"#).unwrap();
        assert_eq!(dn.rdns[0].avas[0].value, br#"a,b,c+d\e"f"#);
        let dn = Dn::parse(r#"cn="quoted, v" ,dc=x"#).unwrap();
        assert_eq!(dn.rdns[0].avas[0].value, b"quoted, v");
        let dn = Dn::parse(" cn = a + sn = b ; dc = x ").unwrap();
        assert_eq!(dn.rdns.len(), 2);
        assert_eq!(dn.rdns[0].avas.len(), 2);
        assert_eq!(dn.rdns[0].avas[1].value, b"b");
        let dn = Dn::parse(r"cn=\C3\A9t\C3\A9,dc=x").unwrap();
        assert_eq!(dn.rdns[0].avas[0].value, "été".as_bytes());
        let dn = Dn::parse(r"cn=lead\ ,dc=x").unwrap();
        assert_eq!(dn.rdns[0].avas[0].value, b"lead ");
        let dn = Dn::parse("OID.2.5.4.3=x").unwrap();
        assert_eq!(dn.rdns[0].avas[0].attr, "2.5.4.3");
    }

    #[test]
    fn parse_rejects_what_slapd_rejects() {
        for bad in [
            "cn=,dc=x",
            "cn=a,,dc=x",
            "cn=a+,dc=x",
            r#"cn=x<y>z"q,dc=x"#,
            r"cn=\e9,dc=x",
            "cn=#04024869,dc=x",
            "=a",
            "cn",
            "cn=a,",
            "1=x",
            r"cn=a\zz",
            r#"cn="abc"#,
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_reescapes_like_slapd() {
        let cases = [
            (r"cn=a\2cb,dc=x", r"cn=a\2Cb,dc=x"),
            ("cn=a=b,dc=x", r"cn=a\3Db,dc=x"),
            (r"cn=\23x,dc=x", r"cn=\23x,dc=x"),
            ("cn=a#b,dc=x", "cn=a#b,dc=x"),
            (r"cn=\ a\ ,dc=x", r"cn=\20a\20,dc=x"),
            (r"cn=a\00b", r"cn=a\00b"),
            (r#"cn=a\"b\<c\>d\;e\\f"#, r"cn=a\22b\3Cc\3Ed\3Be\5Cf"),
            ("cn=é Ü", "cn=é Ü"),
        ];
        for (i, o) in cases {
            assert_eq!(Dn::parse(i).unwrap().to_string(), o, "{i}");
        }
    }

    #[test]
    fn normalize_matches_slapdn() {
        // Expected values are slapdn -N output from OpenLDAP 2.5.13 with core, cosine,
        // inetorgperson, nis and misc loaded.
        let s = Schema::builtin();
        let cases = [
            (
                "CN=John  Doe , OU=Users,DC=Example,DC=COM",
                "cn=john doe,ou=users,dc=example,dc=com",
            ),
            (r"commonName=Foo\,Bar,o=X", r"cn=foo\2Cbar,o=x"),
            ("2.5.4.3=Foo+sn=bar,dc=x", "cn=foo+sn=bar,dc=x"),
            ("sn=B+cn=A,dc=x", "cn=a+sn=b,dc=x"),
            ("uid=a+cn=b,dc=x", "cn=b+uid=a,dc=x"),
            (
                "sn=x+cn=y+o=z+description=w+uid=q,dc=x",
                "cn=y+description=w+o=z+sn=x+uid=q,dc=x",
            ),
            (r"cn=\23x,dc=x", r"cn=\23x,dc=x"),
            (r"cn= lead\ ,dc=x", "cn=lead,dc=x"),
            ("cn=a;dc=x", "cn=a,dc=x"),
            ("cn=é Ü,dc=x", "cn=é ü,dc=x"),
            ("mail=A@B.com,dc=x", "mail=a@b.com,dc=x"),
            (
                r"uniqueMember=cn=a\,dc=x,dc=y",
                r"uniqueMember=cn\3Da\2Cdc\3Dx,dc=y",
            ),
            (r"cn=a\2bb,dc=x", r"cn=a\2Bb,dc=x"),
            ("c=US", "c=us"),
            ("objectClass=person,dc=x", "objectClass=person,dc=x"),
            (r"cn=a\00b,dc=x", r"cn=a\00b,dc=x"),
            (r#"cn="quoted, v",dc=x"#, r"cn=quoted\2C v,dc=x"),
            (r"cn=A \20,dc=x", "cn=a,dc=x"),
            ("member=cn=x,dc=x", r"member=cn\3Dx,dc=x"),
            (r"seeAlso=cn=X\,DC=Y,dc=x", r"seeAlso=cn\3Dx\2Cdc\3Dy,dc=x"),
            (
                r"uniqueMember=cn=a#\27010\27B,dc=x",
                r"uniqueMember=cn\3Da#'010'B,dc=x",
            ),
            (r"cn=a\ \ b,dc=x", "cn=a b,dc=x"),
            ("0.9.2342.19200300.100.1.25=x", "dc=x"),
            ("dc=1.2,dc=x", "dc=1.2,dc=x"),
            ("userPassword=x,dc=x", "userPassword=x,dc=x"),
            ("", ""),
        ];
        for (i, o) in cases {
            assert_eq!(norm(&s, i), o, "{i}");
        }
        for bad in [
            "cn=b+cn=a,dc=x",
            "l=x+L=y,dc=x",
            "uidNumber=0042,dc=x",
            "ou=A+ou=a,dc=x",
            "cn=a+commonName=b",
        ] {
            assert!(norm(&s, bad).starts_with("ERR"), "{bad}");
        }
        assert_eq!(
            Dn::parse("foo=bar,dc=x").unwrap().normalize(&s),
            Err(DnError::UndefinedAttribute("foo".into()))
        );
    }

    #[test]
    fn normalize_pretty_agrees_with_the_two_forms() {
        let s = Schema::builtin();
        for text in [
            "uid=jdoe,ou=users,dc=example,dc=com",
            "UID=JDoe, OU=Users ,DC=Example,DC=COM",
            "CN=John  Doe , OU=Users,DC=Example,DC=COM",
            r"commonName=Foo\,Bar,o=X",
            r"cn= lead\ ,dc=x",
            r"cn=\ a,dc=x",
            r"cn=\23x\00y,dc=x",
            r"seeAlso=cn=X\,DC=Y,dc=x",
            "sn=B+cn=A,dc=x",
            "cn=a+cn=b,dc=x",
            "c=USA,dc=x",
            "nosuchtype=a,dc=x",
            "",
        ] {
            let two =
                Dn::parse(text).and_then(|d| Ok((d.normalize(&s)?, d.pretty(&s)?.to_rfc4514())));
            let one = Dn::parse(text).and_then(|d| d.normalize_pretty(&s));
            assert_eq!(format!("{one:?}"), format!("{two:?}"), "{text}");
        }
    }

    #[test]
    fn pretty_matches_slapdn() {
        let s = Schema::builtin();
        let cases = [
            (
                "CN=John  Doe , OU=Users,DC=Example,DC=COM",
                "cn=John  Doe,ou=Users,dc=Example,dc=COM",
            ),
            (r"commonName=Foo\,Bar,o=X", r"cn=Foo\2CBar,o=X"),
            (r"cn= lead\ ,dc=x", r"cn=lead\20,dc=x"),
            (r"cn=\ a,dc=x", r"cn=\20a,dc=x"),
            (r"seeAlso=cn=X\,DC=Y,dc=x", r"seeAlso=cn\3DX\2Cdc\3DY,dc=x"),
            ("sn=B+cn=A,dc=x", "cn=A+sn=B,dc=x"),
        ];
        for (i, o) in cases {
            assert_eq!(pretty(&s, i), o, "{i}");
        }
    }

    #[test]
    fn fast_dn_comparison_agrees_with_normalization() {
        let s = Schema::builtin();
        let key = norm(&s, "uid=jdoe,ou=users,dc=example,dc=com");
        for raw in [
            "uid=jdoe,ou=users,dc=example,dc=com",
            "UID=JDoe, OU=Users ,DC=Example,DC=COM",
            "userid=jdoe,ou=users,dc=example,dc=com",
            "uid=jdoe2,ou=users,dc=example,dc=com",
            "uid=jdoe,ou=users,dc=example",
            "uid=jdoe,ou=users,dc=example,dc=com,dc=x",
            "cn=jdoe,ou=users,dc=example,dc=com",
            "uid=j doe,ou=users,dc=example,dc=com",
        ] {
            let fast = fast_dn_eq(&s, raw.as_bytes(), key.as_bytes());
            let slow = norm(&s, raw) == key;
            assert_eq!(fast, Some(slow), "{raw}");
        }
        assert_eq!(fast_dn_eq(&s, br"cn=a\,b,dc=x", b"cn=a\\2cb,dc=x"), None);
        assert_eq!(
            fast_dn_eq(&s, b"uidNumber=5,dc=x", b"uidNumber=5,dc=x"),
            None
        );
    }

    #[test]
    fn norm_dn_relations() {
        let s = Schema::builtin();
        let a = Dn::parse("uid=A,ou=Users,dc=Example,dc=com")
            .unwrap()
            .normalize(&s)
            .unwrap();
        let base = Dn::parse("DC=example,DC=COM")
            .unwrap()
            .normalize(&s)
            .unwrap();
        assert!(a.is_within(&base));
        assert!(!base.is_within(&a));
        assert!(a.is_within(&a));
        assert_eq!(a.rdn(), Some("uid=a"));
        assert_eq!(
            a.parent().unwrap().to_string(),
            "ou=users,dc=example,dc=com"
        );
        assert!(NormDn::default().is_within(&NormDn::default()));
    }
}
