//! A group's members as files (seed 004's workflow): the member template to fill in
//! (`users-mailbox-example.csv`, header only, or `users-mailbox-available.csv`, the users not
//! yet in the group), the import of a filled-in template, and the export of a group's members
//! to `users_<domain>_<group>_<YYYY-MM-DD>.csv`.
//!
//! A member file has two columns, `Identifier;Name`: the identifier is the user name or the
//! national identifier stored on the user (a Spanish NIF or NIE, whose check letter is
//! verified); the name (first and last) is for the person filling it in.

use crate::csvout::{joined, write_table};
use crate::domain::{dn_key, Domain};
use crate::ldap::{self, Change, WriteError};
use crate::manage::ManageError;
use ldap3::LdapConn;
use std::io::Write;

/// The member file's header, which an import requires unchanged.
pub const HEADER: [&str; 2] = ["Identifier", "Name"];

/// The identifier a member file shows for a user: its national id, or its name.
fn identifier(u: &crate::domain::User) -> String {
    if u.national_id.is_empty() {
        u.uid.clone()
    } else {
        u.national_id.clone()
    }
}

/// Writes the member template: no rows, or (`unassigned`) every user not in `group`.
pub fn template(
    domain: &Domain,
    group: &str,
    unassigned: bool,
    out: &mut dyn Write,
) -> Result<usize, ManageError> {
    let g = domain.group(group).ok_or_else(|| ManageError::NoGroup {
        name: group.to_string(),
        domain: domain.name.clone(),
    })?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    if unassigned {
        for u in domain.users.values() {
            if !g.members.contains(&dn_key(&u.dn)) {
                rows.push(vec![identifier(u), u.cn.clone()]);
            }
        }
    }
    rows.sort();
    write_table(out, &HEADER, &rows).map_err(|e| ManageError::Invalid(e.to_string()))?;
    Ok(rows.len())
}

/// Writes the members of `group`: identifier, name, user name, addresses, one per line.
pub fn export(domain: &Domain, group: &str, out: &mut dyn Write) -> Result<usize, ManageError> {
    let g = domain.group(group).ok_or_else(|| ManageError::NoGroup {
        name: group.to_string(),
        domain: domain.name.clone(),
    })?;
    let mut rows: Vec<Vec<String>> = domain
        .users
        .values()
        .filter(|u| g.members.contains(&dn_key(&u.dn)))
        .map(|u| {
            let mut addresses = vec![u.mail.clone()];
            addresses.extend(
                u.local
                    .iter()
                    .filter(|a| !a.eq_ignore_ascii_case(&u.mail))
                    .cloned(),
            );
            addresses.retain(|a| !a.is_empty());
            vec![
                identifier(u),
                u.cn.clone(),
                u.uid.clone(),
                joined(&addresses),
            ]
        })
        .collect();
    rows.sort();
    write_table(out, &["Identifier", "Name", "User", "MailAddress"], &rows)
        .map_err(|e| ManageError::Invalid(e.to_string()))?;
    Ok(rows.len())
}

/// The export's file name: `users_<domain>_<group>_<YYYY-MM-DD>.csv`.
pub fn export_file_name(domain: &str, group: &str, date: &str) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("users_{}_{}_{date}.csv", safe(domain), safe(group))
}

/// What an import of a member file did.
#[derive(Debug, Default)]
pub struct MemberImport {
    pub added: Vec<String>,
    pub already: Vec<String>,
    /// (line, identifier)
    pub unknown: Vec<(u64, String)>,
    /// (line, reason)
    pub invalid: Vec<(u64, String)>,
}

/// Reads a filled-in member file and adds the users it names to `group`, in one change.
pub fn import(
    conn: &mut LdapConn,
    domain: &Domain,
    group: &str,
    text: &str,
) -> Result<MemberImport, ManageError> {
    let g = domain.group(group).ok_or_else(|| ManageError::NoGroup {
        name: group.to_string(),
        domain: domain.name.clone(),
    })?;
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default().trim_end_matches('\r');
    if header != HEADER.join(";") {
        return Err(ManageError::Invalid(format!(
            "line 1: the header must be left as it was, {:?} (got {header:?}); only files with semicolons between fields are read",
            HEADER.join(";")
        )));
    }
    // Identifier (upper case) -> user.
    let mut by_id: std::collections::HashMap<String, &crate::domain::User> = Default::default();
    for u in domain.users.values() {
        by_id.insert(u.uid.to_ascii_uppercase(), u);
        if !u.national_id.is_empty() {
            by_id.insert(u.national_id.to_ascii_uppercase(), u);
        }
    }
    let mut out = MemberImport::default();
    let mut adding: Vec<String> = Vec::new();
    let rest: String = lines.collect::<Vec<_>>().join("\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(b';')
        .from_reader(rest.as_bytes());
    let mut lines = crate::csvin::Lines::new(&rest);
    for record in reader.records() {
        let (line, record) = match record {
            Ok(r) => (lines.of(r.position().map_or(0, |p| p.byte())), r),
            Err(e) => {
                let line = lines.of(e.position().map_or(0, |p| p.byte()));
                out.invalid.push((line, format!("unreadable: {e}")));
                continue;
            }
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if record.len() != 2 {
            out.invalid.push((
                line,
                format!(
                    "{} fields where the header has 2 (Identifier;Name, semicolons between them)",
                    record.len()
                ),
            ));
            continue;
        }
        let id = record.get(0).unwrap_or_default().trim().to_string();
        if id.is_empty() {
            out.invalid.push((line, "no identifier".into()));
            continue;
        }
        if crate::nif::looks_spanish(&id) {
            if let Err(m) = crate::nif::check(&id) {
                out.invalid.push((line, m));
                continue;
            }
        }
        let Some(user) = by_id.get(&id.to_ascii_uppercase()) else {
            out.unknown.push((line, id));
            continue;
        };
        if g.members.contains(&dn_key(&user.dn)) || adding.contains(&user.dn) {
            out.already.push(id);
            continue;
        }
        adding.push(user.dn.clone());
        out.added.push(id);
    }
    for part in adding.chunks(1000) {
        ldap::modify(
            conn,
            &g.dn,
            &[Change::Add("member".into(), part.to_vec())],
            false,
        )
        .map_err(|source: WriteError| ManageError::Write {
            what: format!("add members to {}", g.dn),
            source,
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            export_file_name("example.com", "sales team", "2026-12-03"),
            "users_example.com_sales_team_2026-12-03.csv"
        );
    }
}
