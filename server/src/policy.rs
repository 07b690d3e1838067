//! A Postfix policy service (Postfix's SMTPD_POLICY_README protocol: `name=value` lines, an
//! empty line, one `action=` answer) that enforces internal groups: mail to the address of a
//! group whose `rosterGroupKind` is `internal` is accepted only from a client authenticated
//! (SASL) as an enabled user of the group's own domain. Postfix asks it at RCPT TO with
//! `check_policy_service inet:127.0.0.1:10040` (`mail.policy_listen`).
//!
//! A restriction class cannot do this: it sees the recipient or the sender, never both, so it
//! cannot tell a user of the group's domain from a user of another domain on the same server.
//! The service reads the store directly, like an indexed search, and answers `DUNNO` (let the
//! other restrictions decide) for everything that is not an internal group.

use crate::directory::Directory;
use futures::StreamExt;
use roster_schema::{Entry, Filter, NormDn};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

/// The longest request line, and the most attributes in one request (Postfix sends about 30).
const MAX_LINE: usize = 4096;
const MAX_ATTRIBUTES: usize = 256;
/// An idle policy connection is closed after this long (Postfix reconnects).
const IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// Serves policy requests on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, dir: Arc<Directory>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn_dir = dir.clone();
                let stop = stop.clone();
                // Tracked, so that shutdown waits for it before closing the store.
                dir.background.spawn(async move {
                    let dir = conn_dir;
                    if let Err(e) = connection(stream, &dir, stop).await {
                        tracing::debug!(%peer, error = %e, "policy connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a policy connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    dir: &Arc<Directory>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
    let mut request: HashMap<String, String> = HashMap::new();
    loop {
        let line = tokio::select! {
            l = tokio::time::timeout(IDLE, lines.next()) => match l {
                Ok(l) => l,
                Err(_) => return Ok(()),
            },
            () = stop.cancelled() => return Ok(()),
        };
        let line = match line {
            None => return Ok(()),
            Some(Ok(line)) => line,
            Some(Err(_)) => {
                write
                    .write_all(b"action=DEFER_IF_PERMIT policy request too large\n\n")
                    .await?;
                return Ok(());
            }
        };
        if request.len() > MAX_ATTRIBUTES {
            write
                .write_all(b"action=DEFER_IF_PERMIT policy request too large\n\n")
                .await?;
            return Ok(());
        }
        if !line.is_empty() {
            if let Some((name, value)) = line.split_once('=') {
                request.insert(name.to_string(), value.to_string());
            }
            continue;
        }
        let req = std::mem::take(&mut request);
        let dir = dir.clone();
        let action = tokio::task::spawn_blocking(move || decide(&dir, &req))
            .await
            .unwrap_or_else(|_| "DEFER_IF_PERMIT internal error in the policy service".into());
        write
            .write_all(format!("action={action}\n\n").as_bytes())
            .await?;
    }
}

/// The answer to one request.
pub fn decide(dir: &Directory, req: &HashMap<String, String>) -> String {
    let dunno = "DUNNO".to_string();
    if req.get("request").map(String::as_str) != Some("smtpd_access_policy") {
        return dunno;
    }
    if req
        .get("protocol_state")
        .is_some_and(|s| !s.eq_ignore_ascii_case("RCPT"))
    {
        return dunno;
    }
    let Some(recipient) = req.get("recipient").filter(|r| !r.is_empty()) else {
        return dunno;
    };
    match groups_of_recipient(dir, recipient) {
        Ok(groups) if groups.is_empty() => dunno,
        Ok(groups) => {
            let login = req.get("sasl_username").map(String::as_str).unwrap_or("");
            let domains: Vec<String> = groups
                .iter()
                .flat_map(|g| crate::mail::domains_of(dir, &dir.store.reader(), &g.ndn))
                .take(1)
                .collect();
            let domain = domains.first().cloned().unwrap_or_default();
            if login.is_empty() {
                return format!(
                    "REJECT 5.7.1 only authenticated users of {domain} may send to this group"
                );
            }
            match user_context(dir, login) {
                Ok(Some(ctx))
                    if groups
                        .iter()
                        .any(|g| dir.suffix_of(&g.ndn) == Some(ctx.clone())) =>
                {
                    dunno
                }
                Ok(_) => format!("REJECT 5.7.1 only users of {domain} may send to this group"),
                Err(e) => {
                    tracing::error!(error = %e, "policy service: reading the sender");
                    "DEFER_IF_PERMIT directory unavailable".into()
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "policy service: reading the recipient's groups");
            "DEFER_IF_PERMIT directory unavailable".into()
        }
    }
}

fn eq(attr: &str, value: &str) -> Filter {
    Filter::Equality {
        attr: attr.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

/// The address extension delimiter Postfix strips before its alias lookups (Debian's
/// `recipient_delimiter = +`).
const DELIMITER: char = '+';

/// The internal groups mail to `recipient` reaches as Postfix resolves it: the address, the
/// address without its extension (`all+x@` is `all@`), and the domain's catch-all (`@domain`)
/// when no entry has the address.
fn groups_of_recipient(
    dir: &Directory,
    recipient: &str,
) -> Result<Vec<Entry>, roster_storage::StoreError> {
    let mut candidates = vec![recipient.to_string()];
    if let Some((local, domain)) = recipient.rsplit_once('@') {
        if let Some((base, _)) = local.split_once(DELIMITER) {
            candidates.push(format!("{base}@{domain}"));
        }
    }
    let mut groups = Vec::new();
    for c in &candidates {
        groups.extend(internal_groups(dir, c)?);
    }
    if groups.is_empty() {
        let delivered = candidates
            .iter()
            .map(|c| delivers(dir, c))
            .collect::<Result<Vec<bool>, _>>()?;
        if !delivered.contains(&true) {
            if let Some((_, domain)) = recipient.rsplit_once('@') {
                groups.extend(internal_groups(dir, &format!("@{domain}"))?);
            }
        }
    }
    Ok(groups)
}

/// True if some entry has `address` among its delivering addresses.
fn delivers(dir: &Directory, address: &str) -> Result<bool, roster_storage::StoreError> {
    let filter = eq("mailLocalAddress", address).compile(&dir.schema);
    let reader = dir.store.reader();
    let mut found = reader.search(&NormDn::default(), roster_storage::Scope::Subtree, &filter)?;
    Ok(found.next().transpose()?.is_some())
}

/// The internal groups that `address` delivers to.
fn internal_groups(
    dir: &Directory,
    address: &str,
) -> Result<Vec<Entry>, roster_storage::StoreError> {
    let filter = Filter::And(vec![
        eq("objectClass", crate::mail::GROUP_CLASS),
        eq("rosterGroupKind", "internal"),
        eq("mailLocalAddress", address),
    ])
    .compile(&dir.schema);
    let reader = dir.store.reader();
    let mut out = Vec::new();
    for found in reader.search(&NormDn::default(), roster_storage::Scope::Subtree, &filter)? {
        out.push(found?.1);
    }
    Ok(out)
}

/// The naming context of the enabled user whose primary address is `login`.
fn user_context(
    dir: &Directory,
    login: &str,
) -> Result<Option<NormDn>, roster_storage::StoreError> {
    let filter = Filter::And(vec![
        eq("objectClass", crate::mail::USER_CLASS),
        eq("mail", login),
        Filter::Not(Box::new(eq("rosterAccountDisabled", "TRUE"))),
    ])
    .compile(&dir.schema);
    let reader = dir.store.reader();
    let mut found = reader.search(&NormDn::default(), roster_storage::Scope::Subtree, &filter)?;
    match found.next() {
        Some(r) => Ok(dir.suffix_of(&r?.1.ndn)),
        None => Ok(None),
    }
}
