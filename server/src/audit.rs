//! The audit log: one JSON object per line for every write (who, from where, what changed,
//! the result), every failed bind, every refused bind, every lockout, and every bind whose
//! upstream directory could not be reached. Secrets never appear:
//! bind passwords are not logged and `userPassword` values are written as `"(redacted)"`.
//!
//! With `[audit] file` set, lines are appended to that file (opened once, written and flushed
//! line by line); otherwise they go to the server log under the target `audit`.

use crate::lockout::Locked;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

static FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Sends audit lines to `path` (appending) from now on.
pub fn to_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        // The log names accounts and addresses: a folder made for it is the server's alone.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let _ = FILE.set(Mutex::new(file));
    Ok(())
}

/// A value of an audit field.
pub enum Value<'a> {
    Str(&'a str),
    Num(u64),
    /// Already JSON (an array built by the caller).
    Raw(&'a str),
}

/// Appends `s` to `out` as a JSON string.
pub fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes one event.
pub fn emit(event: &str, fields: &[(&str, Value<'_>)]) {
    let mut line = String::with_capacity(256);
    line.push_str("{\"time\":");
    quote(&mut line, &crate::time::generalized_now());
    line.push_str(",\"event\":");
    quote(&mut line, event);
    for (k, v) in fields {
        line.push(',');
        quote(&mut line, k);
        line.push(':');
        match v {
            Value::Str(s) => quote(&mut line, s),
            Value::Num(n) => line.push_str(&n.to_string()),
            Value::Raw(r) => line.push_str(r),
        }
    }
    line.push('}');
    match FILE.get() {
        Some(file) => {
            let mut f = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            line.push('\n');
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
        None => tracing::info!(target: "audit", "{line}"),
    }
}

pub fn bind_failed(dn: &str, peer: IpAddr, reason: &str) {
    let peer = peer.to_string();
    emit(
        "bind_failed",
        &[
            ("dn", Value::Str(dn)),
            ("peer", Value::Str(&peer)),
            ("reason", Value::Str(reason)),
        ],
    );
}

/// A mapped user's bind whose upstream directory could not be reached; `cache` says what the
/// cached verifier did ("off", "no verifier", "verifier matched", "verifier differs").
pub fn upstream_unavailable(upstream: &str, dn: &str, peer: IpAddr, cache: &str) {
    let peer = peer.to_string();
    emit(
        "upstream_unavailable",
        &[
            ("upstream", Value::Str(upstream)),
            ("dn", Value::Str(dn)),
            ("peer", Value::Str(&peer)),
            ("cache", Value::Str(cache)),
        ],
    );
}

/// A bind from an address that failed too often, delayed before its check.
pub fn bind_throttled(dn: &str, peer: IpAddr, wait: std::time::Duration) {
    let peer = peer.to_string();
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    emit(
        "bind_throttled",
        &[
            ("dn", Value::Str(dn)),
            ("peer", Value::Str(&peer)),
            ("wait_ms", Value::Num(ms)),
        ],
    );
}

pub fn bind_refused(dn: &str, peer: IpAddr, locked: &str, remaining_secs: u64) {
    let peer = peer.to_string();
    emit(
        "bind_refused",
        &[
            ("dn", Value::Str(dn)),
            ("peer", Value::Str(&peer)),
            ("locked", Value::Str(locked)),
            ("remaining_secs", Value::Num(remaining_secs)),
        ],
    );
}

pub fn locked(lock: &Locked) {
    match lock {
        Locked::Account { dn, for_secs } => emit(
            "lockout",
            &[("account", Value::Str(dn)), ("secs", Value::Num(*for_secs))],
        ),
        Locked::AccountFrom { dn, addr, for_secs } => {
            let addr = addr.to_string();
            emit(
                "lockout",
                &[
                    ("account", Value::Str(dn)),
                    ("address", Value::Str(&addr)),
                    ("secs", Value::Num(*for_secs)),
                ],
            )
        }
        Locked::Address { addr, for_secs } => {
            let addr = addr.to_string();
            emit(
                "lockout",
                &[
                    ("address", Value::Str(&addr)),
                    ("secs", Value::Num(*for_secs)),
                ],
            )
        }
    }
}

/// One write: the operation, who asked from where, the target, what changed (a JSON array
/// built by [`changes`]), and the LDAP result code.
pub fn write(op: &str, who: &str, peer: IpAddr, dn: &str, changes: &str, code: u32) {
    let peer = peer.to_string();
    emit(
        "write",
        &[
            ("op", Value::Str(op)),
            ("who", Value::Str(who)),
            ("peer", Value::Str(&peer)),
            ("dn", Value::Str(dn)),
            ("changes", Value::Raw(changes)),
            ("result", Value::Num(code.into())),
        ],
    );
}

/// True for an attribute description that holds passwords: userPassword, authPassword,
/// sambaNTPassword, ... (a name containing "password") and userPassword's OID.
pub fn is_password(attr: &str) -> bool {
    attr.as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"password"))
        || attr.starts_with("2.5.4.35")
}

/// A JSON array of changes: `[{"op":"replace","attr":"cn","values":["x"]}, ...]`, with the
/// values of every password attribute (a name containing "password") redacted.
pub fn changes<'a>(items: impl IntoIterator<Item = (&'a str, &'a str, Vec<&'a [u8]>)>) -> String {
    let mut out = String::from("[");
    for (i, (op, attr, values)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"op\":");
        quote(&mut out, op);
        out.push_str(",\"attr\":");
        quote(&mut out, attr);
        out.push_str(",\"values\":[");
        let secret = is_password(attr);
        for (j, v) in values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            if secret {
                out.push_str("\"(redacted)\"");
            } else {
                quote(&mut out, &String::from_utf8_lossy(v));
            }
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_attributes_are_recognized() {
        for a in [
            "userPassword",
            "USERPASSWORD",
            "authPassword",
            "sambaNTPassword",
            "2.5.4.35",
        ] {
            assert!(is_password(a), "{a}");
        }
        for a in ["mail", "passwor", "pwdChangedTime", "cn;lang-pässword"] {
            assert!(!is_password(a), "{a}");
        }
    }

    #[test]
    fn changes_are_json_and_secrets_redacted() {
        let c = changes(vec![
            ("replace", "cn", vec![b"A \"quoted\"\n name".as_slice()]),
            ("add", "userPassword", vec![b"hunter2".as_slice()]),
            ("delete", "USERPASSWORD;x", vec![b"old".as_slice()]),
        ]);
        assert_eq!(
            c,
            "[{\"op\":\"replace\",\"attr\":\"cn\",\"values\":[\"A \\\"quoted\\\"\\n name\"]},\
             {\"op\":\"add\",\"attr\":\"userPassword\",\"values\":[\"(redacted)\"]},\
             {\"op\":\"delete\",\"attr\":\"USERPASSWORD;x\",\"values\":[\"(redacted)\"]}]"
        );
        assert!(!c.contains("hunter2"));
    }
}
