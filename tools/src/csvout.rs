//! CSV as the seeds' administrators read it: semicolons between fields, commas between the
//! values of one field, a header row, and cells a spreadsheet will not run as formulas.

use std::io::Write;

/// Writes `rows` under `header` with `;` between fields.
pub fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    w.write_record(header)?;
    for row in rows {
        w.write_record(row.iter().map(|c| neutralised(c)))?;
    }
    w.flush()?;
    Ok(())
}

/// A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
/// spreadsheets skip before those) gets a leading apostrophe, so that a spreadsheet shows it
/// as text instead of evaluating it (OWASP's advice for CSV injection).
pub fn neutralised(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// Several values in one cell.
pub fn joined(values: &[String]) -> String {
    values.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(neutralised("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralised("+1"), "'+1");
        assert_eq!(neutralised("-1"), "'-1");
        assert_eq!(neutralised("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralised("alice"), "alice");
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["Name", "Note"],
            &[vec!["a;b".into(), "=1+1".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Name;Note\r\n\"a;b\";'=1+1\r\n"
        );
    }
}
