//! `roster users export` and `roster groups export`: a domain's users and groups as CSV, in the
//! columns the importer reads (semicolons between fields, commas inside one).

// The columns of a user row are the importer's; `Password` is never exported.
use crate::csvin::USER_COLUMNS;
use crate::csvout::{joined, write_table};
use ldap3::{LdapConn, Scope, SearchEntry};
use std::collections::BTreeMap;
use std::io::Write;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0:?} is not a domain name (example.com)")]
    Domain(String),
    #[error("search {base}: {message}")]
    Search { base: String, message: String },
    #[error("write the CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// The naming context of a mail domain: example.com is dc=example,dc=com.
pub fn domain_base(domain: &str) -> Result<String, ExportError> {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let ok = labels
        .iter()
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !ok || labels.is_empty() {
        return Err(ExportError::Domain(domain.to_string()));
    }
    Ok(labels
        .iter()
        .map(|l| format!("dc={}", l.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(","))
}

fn search(
    conn: &mut LdapConn,
    base: &str,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>, ExportError> {
    let failed = |message: String| ExportError::Search {
        base: base.to_string(),
        message,
    };
    // Paged, so that a domain of any size comes back whole under the server's size limit.
    let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![
        Box::new(ldap3::adapters::EntriesOnly::new()),
        Box::new(ldap3::adapters::PagedResults::new(500)),
    ];
    let mut stream = conn
        .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
        .map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(entry) = stream.next().map_err(|e| failed(e.to_string()))? {
        out.push(SearchEntry::construct(entry));
    }
    stream
        .result()
        .success()
        .map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

fn first(e: &SearchEntry, attr: &str) -> String {
    e.attrs
        .get(attr)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default()
}

fn all(e: &SearchEntry, attr: &str) -> Vec<String> {
    e.attrs.get(attr).cloned().unwrap_or_default()
}

fn has(e: &SearchEntry, attr: &str, value: &str) -> bool {
    all(e, attr).iter().any(|v| v.eq_ignore_ascii_case(value))
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// Writes the users of `domain`, ordered by name.
pub fn users(conn: &mut LdapConn, domain: &str, out: &mut dyn Write) -> Result<usize, ExportError> {
    let base = domain_base(domain)?;
    let groups = search(conn, &base, "(objectClass=rosterGroup)", &["cn", "member"])?;
    // user DN (lowercase) -> group names
    let mut member_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &groups {
        for m in all(g, "member") {
            member_of
                .entry(m.to_ascii_lowercase())
                .or_default()
                .push(first(g, "cn"));
        }
    }
    let users = search(
        conn,
        &base,
        "(objectClass=rosterMailUser)",
        &[
            "uid",
            "cn",
            "description",
            "mail",
            "mailLocalAddress",
            "rosterAccountDisabled",
            "rosterRole",
            "rosterService",
            "rosterNationalId",
            "rosterMailQuota",
        ],
    )?;
    let mut rows = Vec::new();
    for u in &users {
        let primary = first(u, "mail");
        let mut addresses = vec![primary.clone()];
        addresses.extend(
            all(u, "mailLocalAddress")
                .into_iter()
                .filter(|a| !a.eq_ignore_ascii_case(&primary)),
        );
        addresses.retain(|a| !a.is_empty());
        let mut groups = member_of
            .get(&u.dn.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        groups.sort();
        rows.push(vec![
            first(u, "uid"),
            String::new(),
            first(u, "cn"),
            first(u, "description"),
            joined(&addresses),
            joined(&groups),
            yes_no(!has(u, "rosterAccountDisabled", "TRUE")),
            {
                let r = first(u, "rosterRole");
                if r.is_empty() {
                    "user".into()
                } else {
                    r
                }
            },
            yes_no(has(u, "rosterService", "imap")),
            yes_no(has(u, "rosterService", "pop3")),
            first(u, "rosterNationalId"),
            first(u, "rosterMailQuota"),
        ]);
    }
    rows.sort_by(|a, b| a.first().cmp(&b.first()));
    write_table(out, &USER_COLUMNS, &rows)?;
    Ok(rows.len())
}

/// Writes the groups of `domain`: name, addresses, kind, right, member count.
pub fn groups(
    conn: &mut LdapConn,
    domain: &str,
    out: &mut dyn Write,
) -> Result<usize, ExportError> {
    let base = domain_base(domain)?;
    let groups = search(
        conn,
        &base,
        "(objectClass=rosterGroup)",
        &[
            "cn",
            "mailLocalAddress",
            "rosterGroupKind",
            "rosterGroupRight",
            "member",
            "description",
        ],
    )?;
    let mut rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let kind = first(g, "rosterGroupKind");
            let right = first(g, "rosterGroupRight");
            vec![
                first(g, "cn"),
                joined(&all(g, "mailLocalAddress")),
                if kind.is_empty() {
                    "external".into()
                } else {
                    kind
                },
                if right.is_empty() {
                    "none".into()
                } else {
                    right
                },
                all(g, "member").len().to_string(),
                first(g, "description"),
            ]
        })
        .collect();
    rows.sort_by(|a, b| a.first().cmp(&b.first()));
    write_table(
        out,
        &[
            "Name",
            "MailAddress",
            "Kind",
            "Right",
            "Members",
            "Description",
        ],
        &rows,
    )?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_name_their_naming_context() {
        assert_eq!(domain_base("Example.COM").unwrap(), "dc=example,dc=com");
        assert_eq!(
            domain_base("mail.example.co.uk").unwrap(),
            "dc=mail,dc=example,dc=co,dc=uk"
        );
        assert!(domain_base("exa mple.com").is_err());
        assert!(domain_base("").is_err());
    }
}
