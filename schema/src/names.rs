//! The names of the mail model that need no schema: user names and mail addresses, checked
//! the same way by the server on every write and by the `roster` tool before it sends one.

/// A user name: letters, digits, `.`, `-` and `_`, starting with a letter or digit, at most
/// 64 characters. Names are compared without regard to case.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if name.is_empty() || name.len() > 64 || !ok_start || !ok_chars {
        return Err(format!(
            "uid {name:?}: a user name has 1 to 64 letters, digits, '.', '-' or '_', starts with a letter or digit, and has no spaces or other special characters"
        ));
    }
    Ok(())
}

/// An address `local@domain`: a local part of printable characters without spaces, `@` or
/// angle brackets, and a domain of dot-separated labels.
pub fn check_address(a: &str) -> Result<(), String> {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return Err("not an address (local@domain)".into());
    };
    if local.is_empty() {
        return Err("the part before @ is empty".into());
    }
    if local.len() > 64
        || local.chars().any(|c| {
            !c.is_ascii_graphic() || matches!(c, '@' | '<' | '>' | '(' | ')' | ',' | ';' | '"')
        })
    {
        return Err("the part before @ has spaces or characters an address cannot hold".into());
    }
    check_domain(domain)
}

pub fn check_domain(d: &str) -> Result<(), String> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{d:?} is not a domain name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(check_username("j.doe-2_x").is_ok());
        assert!(check_username("JDoe").is_ok());
        for bad in [
            "",
            "j doe",
            "jdoe@example.com",
            ".jdoe",
            "ñandú",
            &"a".repeat(65),
        ] {
            let e = check_username(bad).unwrap_err();
            assert!(e.contains("no spaces"), "{bad}: {e}");
        }
    }

    #[test]
    fn addresses() {
        assert!(check_address("j.doe+tag@example.com").is_ok());
        for bad in [
            "jdoe",
            "@example.com",
            "j doe@example.com",
            "jdoe@exa mple.com",
            "jdoe@",
            "jdoe@-x.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
