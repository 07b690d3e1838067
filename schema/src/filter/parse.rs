//! The RFC 4515 string form of a filter: parsing and escaping.

use super::*;

/// Parses `text`, a whole filter in parentheses.
pub(super) fn parse_whole(text: &str) -> Result<Filter, ValueError> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let f = p.filter()?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(err(format!(
            "bad search filter: unexpected text at offset {}",
            p.pos
        )));
    }
    Ok(f)
}

pub(super) fn err(msg: impl Into<String>) -> ValueError {
    ValueError::Invalid(msg.into())
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

/// Nesting deeper than this is refused, so a hostile filter cannot exhaust the stack.
const MAX_DEPTH: usize = 200;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self
            .peek()
            .is_some_and(|c| c == b' ' || c == b'\t' || c == b'\n' || c == b'\r')
        {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ValueError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(format!(
                "bad search filter: expected '{}' at offset {}",
                char::from(c),
                self.pos
            )))
        }
    }

    fn filter(&mut self) -> Result<Filter, ValueError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err("bad search filter: nested too deeply"));
        }
        self.skip_ws();
        self.expect(b'(')?;
        self.skip_ws();
        let f = match self.peek() {
            Some(b'&') => {
                self.pos += 1;
                Filter::And(self.list()?)
            }
            Some(b'|') => {
                self.pos += 1;
                Filter::Or(self.list()?)
            }
            Some(b'!') => {
                self.pos += 1;
                Filter::Not(Box::new(self.filter()?))
            }
            _ => self.item()?,
        };
        self.skip_ws();
        self.expect(b')')?;
        self.depth -= 1;
        Ok(f)
    }

    fn list(&mut self) -> Result<Vec<Filter>, ValueError> {
        let mut v = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'(') {
                v.push(self.filter()?);
            } else {
                return Ok(v);
            }
        }
    }

    /// Reads raw bytes up to the next unescaped `)`, decoding `\XX` (and, like OpenLDAP, the
    /// RFC 1960 forms `\*`, `\(`, `\)`, `\\`). Returns the pieces split at unescaped `*`.
    fn value_pieces(&mut self) -> Result<Vec<Vec<u8>>, ValueError> {
        let mut pieces = vec![Vec::new()];
        loop {
            match self.peek() {
                None => return Err(err("bad search filter: missing ')'")),
                Some(b')') => return Ok(pieces),
                Some(b'(') => {
                    return Err(err(format!(
                        "bad search filter: unescaped '(' at offset {}",
                        self.pos
                    )))
                }
                Some(b'*') => {
                    self.pos += 1;
                    pieces.push(Vec::new());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let h = self.s.get(self.pos).copied().and_then(hex);
                    let l = self.s.get(self.pos + 1).copied().and_then(hex);
                    let byte = match (h, l) {
                        (Some(h), Some(l)) => {
                            self.pos += 2;
                            h * 16 + l
                        }
                        _ => match self.peek() {
                            Some(c @ (b'*' | b'(' | b')' | b'\\')) => {
                                self.pos += 1;
                                c
                            }
                            _ => {
                                return Err(err(format!(
                                    "bad search filter: invalid escape at offset {}",
                                    self.pos
                                )))
                            }
                        },
                    };
                    if let Some(last) = pieces.last_mut() {
                        last.push(byte);
                    }
                }
                Some(c) => {
                    self.pos += 1;
                    if let Some(last) = pieces.last_mut() {
                        last.push(c);
                    }
                }
            }
        }
    }

    fn item(&mut self) -> Result<Filter, ValueError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b';' | b'.' | b'_'))
        {
            self.pos += 1;
        }
        let attr =
            String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default()).into_owned();
        match self.peek() {
            Some(b':') => return self.extensible(attr),
            Some(b'=') => {
                self.pos += 1;
            }
            Some(b'~') | Some(b'>') | Some(b'<') => {
                let op = self.peek().unwrap_or_default();
                self.pos += 1;
                self.expect(b'=')?;
                check_attr(&attr)?;
                let mut pieces = self.value_pieces()?;
                if pieces.len() != 1 {
                    return Err(err(
                        "bad search filter: '*' must be escaped in this filter item",
                    ));
                }
                let value = pieces.pop().unwrap_or_default();
                return Ok(match op {
                    b'~' => Filter::Approx { attr, value },
                    b'>' => Filter::GreaterOrEqual { attr, value },
                    _ => Filter::LessOrEqual { attr, value },
                });
            }
            _ => {
                return Err(err(format!(
                    "bad search filter: expected a filter operator at offset {}",
                    self.pos
                )))
            }
        }
        check_attr(&attr)?;
        let mut pieces = self.value_pieces()?;
        Ok(match pieces.len() {
            1 => Filter::Equality {
                attr,
                value: pieces.pop().unwrap_or_default(),
            },
            2 if pieces.iter().all(Vec::is_empty) => Filter::Present { attr },
            _ => {
                let final_ = pieces.pop().filter(|p| !p.is_empty());
                let mut it = pieces.into_iter();
                let initial = it.next().filter(|p| !p.is_empty());
                let any: Vec<Vec<u8>> = it.collect();
                if any.iter().any(Vec::is_empty) {
                    return Err(err("bad search filter: empty substring between two '*'"));
                }
                Filter::Substrings {
                    attr,
                    initial,
                    any,
                    final_,
                }
            }
        })
    }

    /// `attr[:dn][:rule]:=value` or `[:dn]:rule:=value`; `attr` (possibly empty) is read.
    fn extensible(&mut self, attr: String) -> Result<Filter, ValueError> {
        let mut dn_attributes = false;
        let mut rule = None;
        loop {
            self.expect(b':')?;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                break;
            }
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
            {
                self.pos += 1;
            }
            let word = String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default())
                .into_owned();
            if word.is_empty() {
                return Err(err(format!(
                    "bad search filter: expected 'dn' or a matching rule at offset {}",
                    self.pos
                )));
            }
            if word.eq_ignore_ascii_case("dn") && !dn_attributes && rule.is_none() {
                dn_attributes = true;
            } else if rule.is_none() {
                rule = Some(word);
            } else {
                return Err(err(
                    "bad search filter: more than one matching rule in an extensible match",
                ));
            }
        }
        let attr = if attr.is_empty() { None } else { Some(attr) };
        if let Some(a) = &attr {
            check_attr(a)?;
        }
        if attr.is_none() && rule.is_none() {
            return Err(err(
                "bad search filter: an extensible match needs an attribute or a matching rule",
            ));
        }
        let mut pieces = self.value_pieces()?;
        if pieces.len() != 1 {
            return Err(err(
                "bad search filter: '*' must be escaped in an extensible match",
            ));
        }
        Ok(Filter::Extensible {
            rule,
            attr,
            value: pieces.pop().unwrap_or_default(),
            dn_attributes,
        })
    }
}

pub(super) fn check_attr(a: &str) -> Result<(), ValueError> {
    if a.is_empty() {
        return Err(err("bad search filter: missing attribute description"));
    }
    Ok(())
}

pub(super) fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends an assertion value in RFC 4515 form: `*`, `(`, `)`, `\`, NUL, control characters
/// and bytes that are not UTF-8 as `\XX`.
pub(super) fn escape_value(v: &[u8], out: &mut String) {
    let text = String::from_utf8_lossy(v);
    let escape_all = matches!(text, std::borrow::Cow::Owned(_));
    if escape_all {
        for b in v {
            if b.is_ascii_alphanumeric() {
                out.push(char::from(*b));
            } else {
                out.push_str(&format!("\\{b:02x}"));
            }
        }
        return;
    }
    for c in text.chars() {
        match c {
            '*' | '(' | ')' | '\\' => out.push_str(&format!("\\{:02x}", u32::from(c))),
            c if c.is_control() && c.is_ascii() => out.push_str(&format!("\\{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
}
