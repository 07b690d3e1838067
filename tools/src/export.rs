//! `roster users export` and `roster groups export`: a domain's users and groups as CSV, in the
//! columns the importer reads (semicolons between fields, commas inside one).

// The columns of a user row are the importer's; `Password` is never exported.
use crate::csvin::USER_COLUMNS;
use crate::csvout::{joined, write_table};
use crate::domain::{domain_base, DomainError};
use crate::ldap::{all, first, has, search, SearchError};
use ldap3::LdapConn;
use std::collections::BTreeMap;
use std::io::Write;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("write the CSV: {0}")]
    Csv(#[from] csv::Error),
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
            // Either variant of a service counts (the importer gives and takes both).
            yes_no(has(u, "rosterService", "imap") || has(u, "rosterService", "imapsecured")),
            yes_no(has(u, "rosterService", "pop3") || has(u, "rosterService", "pop3secured")),
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
