//! LDIF (RFC 2849) content records: a streaming reader for `rosterd load` and a writer for
//! `rosterd dump`. Reading keeps the line number of every record so that errors name where
//! the administrator has to look.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::io::{self, BufRead, Write};

/// One entry of an LDIF file: its DN and attribute values in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifRecord {
    /// Line number (1-based) of the record's `dn:` line.
    pub line: usize,
    pub dn: String,
    pub attrs: Vec<(String, Vec<u8>)>,
    /// The line (1-based) of each of `attrs`, where a report points.
    pub lines: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdifError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("read LDIF: {0}")]
    Io(#[from] io::Error),
}

fn syntax(line: usize, message: impl Into<String>) -> LdifError {
    LdifError::Syntax {
        line,
        message: message.into(),
    }
}

/// Reads LDIF content records one at a time from any buffered reader.
pub struct LdifReader<R> {
    input: R,
    /// Number of the last physical line read.
    line_no: usize,
    /// A physical line read ahead while unfolding the previous logical line.
    pending: Option<(usize, String)>,
    seen_record: bool,
}

impl<R: BufRead> LdifReader<R> {
    pub fn new(input: R) -> Self {
        LdifReader {
            input,
            line_no: 0,
            pending: None,
            seen_record: false,
        }
    }

    fn physical_line(&mut self) -> Result<Option<(usize, String)>, LdifError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        let mut buf = Vec::new();
        let n = self.input.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let text =
            String::from_utf8(buf).map_err(|_| syntax(self.line_no, "line is not valid UTF-8"))?;
        Ok(Some((self.line_no, text)))
    }

    /// The next logical line (folded continuations joined, comments skipped), or `None` at a
    /// blank line (`Some("")` is never returned) and at the end of input, told apart by `eof`.
    fn logical_line(&mut self, eof: &mut bool) -> Result<Option<(usize, String)>, LdifError> {
        loop {
            let Some((no, line)) = self.physical_line()? else {
                *eof = true;
                return Ok(None);
            };
            if line.is_empty() {
                return Ok(None);
            }
            if line.starts_with(' ') {
                return Err(syntax(no, "continuation line without a line to continue"));
            }
            let is_comment = line.starts_with('#');
            let mut joined = line;
            // Unfold: a line starting with one space continues the previous one.
            loop {
                match self.physical_line()? {
                    Some((_, next)) if next.starts_with(' ') => {
                        if !is_comment {
                            joined.push_str(next.get(1..).unwrap_or(""));
                        }
                    }
                    Some(other) => {
                        self.pending = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            if is_comment {
                continue;
            }
            return Ok(Some((no, joined)));
        }
    }

    /// Reads the next record; `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<LdifRecord>, LdifError> {
        let mut eof = false;
        let mut lines: Vec<(usize, String)> = Vec::new();
        loop {
            match self.logical_line(&mut eof)? {
                Some(l) => lines.push(l),
                None if lines.is_empty() && !eof => continue,
                None => break,
            }
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let mut iter = lines.into_iter().peekable();
        if !self.seen_record {
            self.seen_record = true;
            if let Some((no, l)) = iter.peek() {
                if l.to_ascii_lowercase().starts_with("version:") {
                    let (_, v) = parse_line(*no, l)?;
                    if v != b"1" {
                        return Err(syntax(*no, "unsupported LDIF version (only 1 is defined)"));
                    }
                    iter.next();
                    if iter.peek().is_none() {
                        return self.next_record();
                    }
                }
            }
        }
        let Some((dn_line, first)) = iter.next() else {
            return Ok(None);
        };
        let (name, value) = parse_line(dn_line, &first)?;
        if !name.eq_ignore_ascii_case("dn") {
            return Err(syntax(
                dn_line,
                format!("record must start with \"dn:\", found \"{name}:\""),
            ));
        }
        let dn = String::from_utf8(value).map_err(|_| syntax(dn_line, "DN is not valid UTF-8"))?;
        let mut attrs = Vec::new();
        let mut lines = Vec::new();
        let mut first_attr = true;
        for (no, l) in iter {
            if l == "-" {
                return Err(syntax(
                    no,
                    "\"-\" belongs to a modify record; only entries can be loaded",
                ));
            }
            let (name, value) = parse_line(no, &l)?;
            if first_attr && name.eq_ignore_ascii_case("changetype") {
                first_attr = false;
                if value.eq_ignore_ascii_case(b"add") {
                    continue;
                }
                return Err(syntax(
                    no,
                    format!(
                        "changetype {} is not supported here; only entries (or changetype: add) can be loaded",
                        String::from_utf8_lossy(&value)
                    ),
                ));
            }
            if first_attr && name.eq_ignore_ascii_case("control") {
                return Err(syntax(no, "controls are not supported in loaded LDIF"));
            }
            first_attr = false;
            attrs.push((name, value));
            lines.push(no);
        }
        Ok(Some(LdifRecord {
            line: dn_line,
            dn,
            attrs,
            lines,
        }))
    }
}

impl<R: BufRead> Iterator for LdifReader<R> {
    type Item = Result<LdifRecord, LdifError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Splits `name: value`, `name:: base64` or `name:< file://path`.
fn parse_line(no: usize, line: &str) -> Result<(String, Vec<u8>), LdifError> {
    let Some(colon) = line.find(':') else {
        return Err(syntax(
            no,
            format!("expected \"attribute: value\", found {line:?}"),
        ));
    };
    let name = line.get(..colon).unwrap_or("").trim_end();
    if name.is_empty() {
        return Err(syntax(no, "missing attribute name before \":\""));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.')
    {
        return Err(syntax(
            no,
            format!("invalid attribute description {name:?}"),
        ));
    }
    let rest = line.get(colon + 1..).unwrap_or("");
    let value = if let Some(b) = rest.strip_prefix(':') {
        let b = b.trim();
        B64.decode(b)
            .map_err(|e| syntax(no, format!("invalid base64 value for {name}: {e}")))?
    } else if let Some(url) = rest.strip_prefix('<') {
        let url = url.trim();
        let Some(path) = url.strip_prefix("file://") else {
            return Err(syntax(
                no,
                format!("only file:// URLs are supported, found {url:?}"),
            ));
        };
        std::fs::read(path).map_err(|e| syntax(no, format!("read {path} for {name}: {e}")))?
    } else {
        rest.trim_start_matches(' ').as_bytes().to_vec()
    };
    Ok((name.to_string(), value))
}

/// True if a value can be written as-is (RFC 2849 SAFE-STRING); otherwise it is base64-encoded.
fn is_safe(value: &[u8]) -> bool {
    match value.first() {
        None => return true,
        Some(b' ' | b':' | b'<') => return false,
        _ => {}
    }
    if value.last() == Some(&b' ') {
        return false;
    }
    value
        .iter()
        .all(|&b| b != 0 && b != b'\n' && b != b'\r' && b < 0x80)
}

/// Writes one attribute line, base64-encoding unsafe values and folding at 76 columns.
pub fn write_line(out: &mut impl Write, name: &str, value: &[u8]) -> io::Result<()> {
    let line = if is_safe(value) {
        let mut l = String::with_capacity(name.len() + 2 + value.len());
        l.push_str(name);
        l.push_str(": ");
        l.push_str(&String::from_utf8_lossy(value));
        l
    } else {
        format!("{name}:: {}", B64.encode(value))
    };
    write_folded(out, &line)
}

fn write_folded(out: &mut impl Write, line: &str) -> io::Result<()> {
    const WIDTH: usize = 76;
    let bytes = line.as_bytes();
    if bytes.len() <= WIDTH {
        out.write_all(bytes)?;
        return out.write_all(b"\n");
    }
    // Fold on character boundaries so every physical line stays valid UTF-8.
    let mut start = 0;
    let mut first = true;
    while start < bytes.len() {
        let room = if first { WIDTH } else { WIDTH - 1 };
        let mut end = (start + room).min(bytes.len());
        while end < bytes.len() && !line.is_char_boundary(end) {
            end -= 1;
        }
        if !first {
            out.write_all(b" ")?;
        }
        out.write_all(bytes.get(start..end).unwrap_or(&[]))?;
        out.write_all(b"\n")?;
        start = end;
        first = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<Vec<LdifRecord>, LdifError> {
        LdifReader::new(text.as_bytes()).collect()
    }

    #[test]
    fn folded_base64_comments_and_version() {
        let text = "version: 1\n# a comment\n#  continued\n\ndn: cn=a b,\n dc=example\ncn:: YSBi\ndescription: x\n  y\n\n\ndn: dc=x\nchangetype: add\ndc: x\n";
        let recs = read_all(text).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].dn, "cn=a b,dc=example");
        assert_eq!(recs[0].line, 5);
        assert_eq!(recs[0].attrs[0], ("cn".to_string(), b"a b".to_vec()));
        assert_eq!(
            recs[0].attrs[1],
            ("description".to_string(), b"x y".to_vec())
        );
        assert_eq!(recs[1].attrs, vec![("dc".to_string(), b"x".to_vec())]);
        assert_eq!(recs[1].line, 12);
    }

    #[test]
    fn errors_name_the_line() {
        let e = read_all("dn: dc=x\ndc x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: expected \"attribute: value\", found \"dc x\""
        );
        let e = read_all("dn: dc=x\ncn:: ***\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: invalid base64"), "{e}");
        let e = read_all("cn: x\n").unwrap_err();
        assert!(
            e.to_string().starts_with("line 1: record must start"),
            "{e}"
        );
        let e = read_all("dn: dc=x\nchangetype: modify\n").unwrap_err();
        assert!(e.to_string().contains("changetype modify"), "{e}");
    }

    #[test]
    fn writer_round_trips() {
        let mut out = Vec::new();
        let long = "x".repeat(200);
        write_line(&mut out, "dn", b"dc=example,dc=com").unwrap();
        write_line(&mut out, "description", long.as_bytes()).unwrap();
        write_line(&mut out, "cn", b" leading space").unwrap();
        write_line(&mut out, "jpegPhoto", &[0, 1, 2, 255]).unwrap();
        write_line(&mut out, "sn", "Müller".as_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.len() <= 76));
        let recs = read_all(&text).unwrap();
        assert_eq!(recs[0].attrs[0].1, long.as_bytes());
        assert_eq!(recs[0].attrs[1].1, b" leading space");
        assert_eq!(recs[0].attrs[2].1, vec![0, 1, 2, 255]);
        assert_eq!(recs[0].attrs[3].1, "Müller".as_bytes());
    }
}
