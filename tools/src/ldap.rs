//! The LDAP calls the tool makes: paged searches, and writes that tell a refusal by the server
//! (a result code and its message) from a connection that is gone.

use ldap3::controls::RawControl;
use ldap3::{LdapConn, Mod, Scope, SearchEntry};
use std::collections::HashSet;

/// The No-Op control (OpenLDAP's and rosterd's): the server checks the write and makes none.
pub const NO_OP: &str = "1.3.6.1.4.1.4203.666.5.2";

/// rosterd's transfer control: a deleted user's addresses and groups go to the DN in its value.
pub const TRANSFER: &str = "2.25.24255257495890672766456308829707613084.3.1";

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
#[error("search {base}: {message}")]
pub struct SearchError {
    pub base: String,
    pub message: String,
}

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The server answered with a result code other than success.
    #[error("{text} (result {rc})")]
    Refused { rc: u32, text: String },
    /// No answer: the connection failed or the server went away.
    #[error("no answer from the server: {0}")]
    Connection(String),
}

/// One change of a modify, with owned values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(String, Vec<String>),
    Replace(String, Vec<String>),
    Delete(String, Vec<String>),
}

/// A subtree search of `base`, paged so that any number of entries comes back under the
/// server's size limit.
pub fn search(
    conn: &mut LdapConn,
    base: &str,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>, SearchError> {
    search_scope(conn, base, Scope::Subtree, filter, attrs)
}

/// As [`search`], with a scope.
pub fn search_scope(
    conn: &mut LdapConn,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>, SearchError> {
    let failed = |message: String| SearchError {
        base: base.to_string(),
        message,
    };
    let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![
        Box::new(ldap3::adapters::EntriesOnly::new()),
        Box::new(ldap3::adapters::PagedResults::new(500)),
    ];
    let mut stream = conn
        .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
        .map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(entry) = stream.next().map_err(|e| failed(e.to_string()))? {
        out.push(SearchEntry::construct(entry));
    }
    let result = stream.result();
    // noSuchObject: nothing there.
    if result.rc == 32 {
        return Ok(out);
    }
    result.success().map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

/// The entry named `dn`, if it exists (a base search).
pub fn read(
    conn: &mut LdapConn,
    dn: &str,
    attrs: &[&str],
) -> Result<Option<SearchEntry>, SearchError> {
    Ok(
        search_scope(conn, dn, Scope::Base, "(objectClass=*)", attrs)?
            .into_iter()
            .next(),
    )
}

pub fn first(e: &SearchEntry, attr: &str) -> String {
    e.attrs
        .get(attr)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default()
}

pub fn all(e: &SearchEntry, attr: &str) -> Vec<String> {
    e.attrs.get(attr).cloned().unwrap_or_default()
}

pub fn has(e: &SearchEntry, attr: &str, value: &str) -> bool {
    all(e, attr).iter().any(|v| v.eq_ignore_ascii_case(value))
}

fn controls(check_only: bool) -> Vec<RawControl> {
    if check_only {
        vec![RawControl {
            ctype: NO_OP.to_string(),
            crit: true,
            val: None,
        }]
    } else {
        Vec::new()
    }
}

fn outcome(r: ldap3::result::Result<ldap3::LdapResult>) -> Result<(), WriteError> {
    match r {
        Ok(r) if r.rc == 0 => Ok(()),
        Ok(r) => Err(WriteError::Refused {
            rc: r.rc,
            text: r.text,
        }),
        Err(e) => Err(WriteError::Connection(e.to_string())),
    }
}

/// Adds `dn` (or, `check_only`, asks the server whether it would).
pub fn add(
    conn: &mut LdapConn,
    dn: &str,
    attrs: &[(String, Vec<String>)],
    check_only: bool,
) -> Result<(), WriteError> {
    let attrs: Vec<(&str, HashSet<&str>)> = attrs
        .iter()
        .map(|(a, v)| (a.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    outcome(conn.with_controls(controls(check_only)).add(dn, attrs))
}

/// Modifies `dn` (or, `check_only`, asks the server whether it would).
pub fn modify(
    conn: &mut LdapConn,
    dn: &str,
    changes: &[Change],
    check_only: bool,
) -> Result<(), WriteError> {
    fn set(v: &[String]) -> HashSet<&str> {
        v.iter().map(String::as_str).collect()
    }
    let mods: Vec<Mod<&str>> = changes
        .iter()
        .map(|c| match c {
            Change::Add(a, v) => Mod::Add(a.as_str(), set(v)),
            Change::Replace(a, v) => Mod::Replace(a.as_str(), set(v)),
            Change::Delete(a, v) => Mod::Delete(a.as_str(), set(v)),
        })
        .collect();
    outcome(conn.with_controls(controls(check_only)).modify(dn, mods))
}

/// Deletes `dn`; with `heir`, its addresses and groups go to that DN (rosterd's transfer
/// control).
pub fn delete(conn: &mut LdapConn, dn: &str, heir: Option<&str>) -> Result<(), WriteError> {
    let ctrls = heir
        .map(|h| {
            vec![RawControl {
                ctype: TRANSFER.to_string(),
                crit: true,
                val: Some(h.as_bytes().to_vec()),
            }]
        })
        .unwrap_or_default();
    outcome(conn.with_controls(ctrls).delete(dn))
}

/// Renames `dn` to the RDN `new_rdn` in place.
pub fn rename(conn: &mut LdapConn, dn: &str, new_rdn: &str) -> Result<(), WriteError> {
    outcome(conn.modifydn(dn, new_rdn, true, None))
}

/// An RDN value with the characters RFC 4514 requires escaped.
pub fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let edge = i == 0 && (c == ' ' || c == '#') || i + 1 == v.chars().count() && c == ' ';
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A filter assertion value with `*`, `(`, `)`, `\` and NUL escaped (RFC 4515).
pub fn escape_filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_rdn_value("a,b"), "a\\,b");
        assert_eq!(escape_rdn_value(" x "), "\\ x\\ ");
        assert_eq!(escape_filter_value("a*(b)\\"), "a\\2a\\28b\\29\\5c");
    }
}
