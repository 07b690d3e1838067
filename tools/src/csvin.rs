//! Reading the user CSV files of the seeds' administrators, in either documented scheme:
//! semicolons between fields with commas between the values of one field, or commas between
//! fields with several values quoted ("read,all"). The header row may use either delimiter
//! (the vendor's own comma example keeps a semicolon header); column names are matched without
//! regard to case, in any order; `Name` is required. UTF-8 (with or without a byte order
//! mark) or Windows-1252; CRLF or LF; quoted fields may hold delimiters, quotes and newlines.
//!
//! Every problem is collected, by line and column, rather than only the first.

use std::collections::HashMap;

/// The columns a user file may have, as the importer names them.
pub const USER_COLUMNS: [&str; 12] = [
    "Name",
    "Password",
    "FullName",
    "Description",
    "MailAddress",
    "Groups",
    "Enabled",
    "Role",
    "IMAP",
    "POP3",
    "Identifier",
    "Quota",
];

/// Columns whose cells hold several values separated by commas.
const MULTI: [&str; 2] = ["MailAddress", "Groups"];

/// The text encoding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Windows1252,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Encoding, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => Ok(Encoding::Windows1252),
            other => Err(format!(
                "unknown encoding {other:?} (utf-8 or windows-1252)"
            )),
        }
    }
}

/// One thing wrong with a file: its line (1 is the header), the column when one is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// One user row: its line and its cells by column (as in [`USER_COLUMNS`]), multi-valued
/// cells split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub cells: HashMap<&'static str, Vec<String>>,
}

impl Row {
    /// The first value of a column, if given and not empty.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.cells
            .get(column)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// What a file held: the rows that are good, and every problem found.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<Row>,
    pub problems: Vec<Problem>,
    /// The delimiter between fields of the rows (`;` or `,`).
    pub delimiter: char,
    /// The user name (as written, perhaps empty) on each line with a problem.
    pub names: HashMap<u64, String>,
}

/// Decodes `bytes` as `encoding`; invalid UTF-8 is a problem naming its line.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, Problem> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match encoding {
        Encoding::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = 1 + bytes
                .get(..at)
                .unwrap_or_default()
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            Problem {
                line,
                column: None,
                message: "not valid UTF-8; if the file comes from Excel on Windows, give --encoding windows-1252".into(),
            }
        }),
        Encoding::Windows1252 => Ok(bytes.iter().map(|&b| cp1252(b)).collect()),
    }
}

/// The character of a Windows-1252 byte (Latin-1 but for 0x80-0x9F).
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH
            .get(usize::from(b - 0x80))
            .copied()
            .unwrap_or('\u{FFFD}'),
        _ => char::from(b),
    }
}

/// Reads a user file's text.
pub fn read_users(text: &str) -> Table {
    let mut table = Table::default();
    let (header_line, rest) = match text.find('\n') {
        Some(i) => (
            text.get(..i).unwrap_or_default(),
            text.get(i + 1..).unwrap_or_default(),
        ),
        None => (text, ""),
    };
    let header_line = header_line.trim_end_matches('\r');
    // The header's own delimiter; the rows' is the first data line's (the vendor's comma
    // example keeps a semicolon header).
    let header_delim = if header_line.contains(';') {
        b';'
    } else {
        b','
    };
    let first_row = rest.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let row_delim = if first_row.contains(';') {
        b';'
    } else if first_row.contains(',') {
        b','
    } else {
        header_delim
    };
    table.delimiter = char::from(row_delim);
    let header: Vec<String> = match csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(header_delim)
        .from_reader(header_line.as_bytes())
        .records()
        .next()
    {
        Some(Ok(r)) => r.iter().map(|c| c.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    let problem = |line: u64, column: Option<&str>, message: String| Problem {
        line,
        column: column.map(str::to_string),
        message,
    };
    let mut columns: Vec<Option<&'static str>> = Vec::new();
    for name in &header {
        let known = USER_COLUMNS
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name))
            .copied();
        if known.is_none() {
            table.problems.push(problem(
                1,
                Some(name),
                format!(
                    "unknown column (the columns are {})",
                    USER_COLUMNS.join(", ")
                ),
            ));
        } else if columns.contains(&known) {
            table
                .problems
                .push(problem(1, Some(name), "the column is named twice".into()));
        }
        columns.push(known);
    }
    if !columns.contains(&Some("Name")) {
        table.problems.push(problem(
            1,
            None,
            "no Name column: the user name is required".into(),
        ));
        return table;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(row_delim)
        .from_reader(rest.as_bytes());
    let mut names: HashMap<String, u64> = HashMap::new();
    let mut lines = Lines::new(rest);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = lines.of(e.position().map_or(0, |p| p.byte()));
                table
                    .problems
                    .push(problem(line, None, format!("unreadable: {e}")));
                continue;
            }
        };
        let line = lines.of(record.position().map_or(0, |p| p.byte()));
        if let Some(i) = columns.iter().position(|c| *c == Some("Name")) {
            let name = record.get(i).unwrap_or_default().trim().to_string();
            table.names.insert(line, name);
        }
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if record.len() != header.len() {
            table.problems.push(problem(
                line,
                None,
                format!(
                    "{} fields where the header has {}",
                    record.len(),
                    header.len()
                ),
            ));
            continue;
        }
        let mut cells = HashMap::new();
        for (value, column) in record.iter().zip(&columns) {
            let Some(column) = column else { continue };
            let values = if MULTI.contains(column) {
                value
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect()
            } else {
                vec![value.trim().to_string()]
            };
            cells.insert(*column, values);
        }
        let row = Row { line, cells };
        let Some(name) = row.get("Name").map(str::to_string) else {
            table
                .problems
                .push(problem(line, Some("Name"), "no user name".into()));
            continue;
        };
        if let Err(m) = roster_schema::names::check_username(&name) {
            table.problems.push(problem(line, Some("Name"), m));
            continue;
        }
        if let Some(first) = names.get(&name.to_ascii_lowercase()) {
            table.problems.push(problem(
                line,
                Some("Name"),
                format!("{name:?} is already on line {first} (user names ignore case)"),
            ));
            continue;
        }
        names.insert(name.to_ascii_lowercase(), line);
        table.names.remove(&line);
        table.rows.push(row);
    }
    table
}

/// Line numbers of the text after the header (so the first is line 2), for byte offsets
/// that come in increasing order as the csv reader reports them; counting resumes where the
/// last one stopped, so numbering a whole file reads it once.
pub(crate) struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Lines<'a> {
        Lines {
            text: text.as_bytes(),
            at: 0,
            line: 2,
        }
    }

    /// The line of byte `at`.
    pub(crate) fn of(&mut self, at: u64) -> u64 {
        let mut at = usize::try_from(at)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        // The csv crate places a record after the line ends and blank lines before it (after
        // a CRLF, at the LF).
        while matches!(self.text.get(at), Some(b'\n' | b'\r')) {
            at += 1;
        }
        if at < self.at {
            self.at = 0;
            self.line = 2;
        }
        self.line += self
            .text
            .get(self.at..at)
            .unwrap_or_default()
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.at = at;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor's semicolon example, one row a line.
    const SEMICOLONS: &str = "Name;Password;FullName;Description;MailAddress;Groups\r\nabird;VbD66op1;Alexandra Bird;Development;abird;read,all\r\nabird;Ahdpppu4;Edward Wood;Sales;ewood,wood;sales,all\r\nmtaylor;SpoiuS158;Michael Taylor;Assistant;mtaylor,michael.taylor;all\r\n";
    /// The vendor's comma example, with its semicolon header.
    const COMMAS: &str = "Name;Password;FullName;Description;MailAddress;Groups\nabird,VbD66op1,Alexandra Bird,Development,abird,\"read,all\"\newood,Ahdpppu4,Edward Wood,Sales,\"awood,wood\",\"sales,all\"\nmtaylor,SpoiuS158,Michael Taylor,Assistant,\"mtaylor,michael.taylor\",all\n";

    #[test]
    fn the_semicolon_example_names_abird_twice() {
        let t = read_users(SEMICOLONS);
        assert_eq!(t.delimiter, ';');
        assert_eq!(t.rows.len(), 2);
        assert_eq!(
            t.problems,
            vec![Problem {
                line: 3,
                column: Some("Name".into()),
                message: "\"abird\" is already on line 2 (user names ignore case)".into(),
            }]
        );
        let m = &t.rows[1];
        assert_eq!(m.cells["MailAddress"], vec!["mtaylor", "michael.taylor"]);
        assert_eq!(m.cells["Groups"], vec!["all"]);
    }

    #[test]
    fn the_comma_example_reads_with_its_semicolon_header() {
        let t = read_users(COMMAS);
        assert_eq!(t.delimiter, ',');
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[1].cells["MailAddress"], vec!["awood", "wood"]);
        assert_eq!(t.rows[1].cells["Groups"], vec!["sales", "all"]);
        assert_eq!(t.rows[1].get("FullName"), Some("Edward Wood"));
    }

    #[test]
    fn every_bad_row_is_named() {
        let text = "name;FULLNAME;Colour\nj doe;John;red\n;Nobody;blue\nann;Ann\nbob;\"Bob; Jr.\nSecond line\";green\n";
        let t = read_users(text);
        let shown: Vec<String> = t.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(shown[0].starts_with("line 1, column Colour: unknown column"));
        assert!(shown[1].starts_with("line 2, column Name: uid \"j doe\""));
        assert!(shown[2].starts_with("line 3, column Name: no user name"));
        assert!(shown[3].starts_with("line 4: 2 fields where the header has 3"));
        // A quoted field with the delimiter and a newline inside.
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.rows[0].get("FullName"), Some("Bob; Jr.\nSecond line"));
        assert_eq!(t.rows[0].line, 5);
    }

    #[test]
    fn encodings() {
        let bom = b"\xEF\xBB\xBFName\nann\n";
        assert_eq!(decode(bom, Encoding::Utf8).unwrap(), "Name\nann\n");
        let latin = b"Name;FullName\nmunoz;Mu\xF1oz \x80\n";
        let e = decode(latin, Encoding::Utf8).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("windows-1252"));
        assert_eq!(
            decode(latin, Encoding::Windows1252).unwrap(),
            "Name;FullName\nmunoz;Muñoz €\n"
        );
        let t = read_users(&decode(latin, Encoding::Windows1252).unwrap());
        assert_eq!(t.rows[0].get("FullName"), Some("Muñoz €"));
        assert!(read_users("FullName\nx\n").problems[0]
            .message
            .contains("no Name column"));
    }
}
