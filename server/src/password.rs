//! Checking a simple-bind password against stored `userPassword` values in the schemes other
//! directory servers write (`{SSHA}`, `{CRYPT}`, `{ARGON2}`, ...), so that hashes imported from
//! OpenLDAP or 389-ds keep working. A value without a scheme is compared as clear text, as slapd
//! does.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_NO_PAD};
use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// True if `password` matches the stored value `stored` (`{SCHEME}data` or clear text).
/// Whether checking a password against `stored` takes a deliberately slow hash (argon2,
/// PBKDF2, crypt's rounds): milliseconds, against microseconds for the SHA family and clear
/// values.
pub fn is_costly(stored: &[u8]) -> bool {
    split_scheme(stored).is_some_and(|(scheme, _)| {
        let scheme = scheme.to_ascii_uppercase();
        matches!(scheme.as_str(), "ARGON2" | "PBKDF2-SHA256" | "CRYPT")
    })
}

pub fn verify(stored: &[u8], password: &[u8]) -> bool {
    let Some((scheme, data)) = split_scheme(stored) else {
        return constant_time_eq(stored, password);
    };
    match scheme.to_ascii_uppercase().as_str() {
        "SHA" => unsalted::<Sha1>(data, password),
        "SHA256" => unsalted::<Sha256>(data, password),
        "SHA384" => unsalted::<Sha384>(data, password),
        "SHA512" => unsalted::<Sha512>(data, password),
        "SSHA" => salted::<Sha1>(data, password),
        "SSHA256" => salted::<Sha256>(data, password),
        "SSHA384" => salted::<Sha384>(data, password),
        "SSHA512" => salted::<Sha512>(data, password),
        "CRYPT" => crypt(data, password),
        "ARGON2" => argon2_phc(data, password),
        "PBKDF2-SHA256" => pbkdf2_sha256(data, password),
        "CLEARTEXT" => constant_time_eq(data, password),
        _ => false,
    }
}

/// What a new clear password must satisfy in one domain (`[[password_policy]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The naming context this policy is for; absent: every domain without one of its own.
    #[serde(default)]
    pub suffix: Option<String>,
    /// Fewest characters.
    #[serde(default)]
    pub min_length: usize,
    /// Fewest character classes among lower case, upper case, digits and others.
    #[serde(default)]
    pub min_classes: usize,
    /// The password may not contain the account's uid or cn (ignoring case).
    #[serde(default)]
    pub not_username: bool,
}

impl Policy {
    /// Checks a clear password for the entry it is set on; the message names the rule broken.
    pub fn check(&self, clear: &[u8], names: &[String]) -> Result<(), String> {
        let text = String::from_utf8_lossy(clear);
        let length = text.chars().count();
        if length < self.min_length {
            return Err(format!(
                "password policy: at least {} characters are required, {length} given",
                self.min_length
            ));
        }
        let classes = [
            text.chars().any(|c| c.is_lowercase()),
            text.chars().any(|c| c.is_uppercase()),
            text.chars().any(|c| c.is_ascii_digit()),
            text.chars()
                .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_ascii_digit()),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if classes < self.min_classes {
            return Err(format!(
                "password policy: characters from at least {} of lower case, upper case, digits and others are required, {classes} given",
                self.min_classes
            ));
        }
        if self.not_username {
            let lower = text.to_lowercase();
            // The whole names and their words ("Ann One": "ann one", "ann", "one"), from
            // three characters on.
            let words = names.iter().flat_map(|n| {
                std::iter::once(n.as_str()).chain(n.split(|c: char| !c.is_alphanumeric()))
            });
            if let Some(n) = words
                .filter(|n| n.chars().count() >= 3)
                .find(|n| lower.contains(&n.to_lowercase()))
            {
                return Err(format!(
                    "password policy: the password may not contain the user name {n:?}"
                ));
            }
        }
        Ok(())
    }
}

/// The scheme new passwords are stored in (`directory.password_scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `{ARGON2}` argon2id with the argon2 crate's default parameters (19 MiB, 2 passes).
    #[default]
    Argon2,
    /// `{PBKDF2-SHA256}` with [`PBKDF2_ITERATIONS`] iterations, as OpenLDAP's pw-pbkdf2 module
    /// and 389-ds read it.
    Pbkdf2Sha256,
    /// `{CRYPT}$6$`: SHA-512 crypt with 5000 rounds, which every Unix reads.
    CryptSha512,
    /// `{SSHA512}`, `{SSHA256}`, `{SSHA}`: one salted digest, for clients that must check
    /// hashes themselves; weak against guessing.
    Ssha512,
    Ssha256,
    Ssha,
}

/// Iterations of a new `{PBKDF2-SHA256}` hash.
pub const PBKDF2_ITERATIONS: u32 = 100_000;

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheme, String> {
        Ok(match s.to_ascii_uppercase().trim_matches(['{', '}']) {
            "ARGON2" => Scheme::Argon2,
            "PBKDF2-SHA256" => Scheme::Pbkdf2Sha256,
            "CRYPT" | "CRYPT-SHA512" => Scheme::CryptSha512,
            "SSHA512" => Scheme::Ssha512,
            "SSHA256" => Scheme::Ssha256,
            "SSHA" => Scheme::Ssha,
            other => {
                return Err(format!(
                    "unknown password scheme {other:?} (ARGON2, PBKDF2-SHA256, CRYPT, SSHA512, SSHA256 or SSHA)"
                ))
            }
        })
    }
}

/// 16 random bytes from the operating system (a version 4 UUID carries 122 random bits).
fn salt() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// Hashes a clear password for storage in `scheme`, with a random salt.
pub fn hash(scheme: Scheme, clear: &[u8]) -> Result<Vec<u8>, String> {
    match scheme {
        Scheme::Argon2 => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(&salt()).map_err(|e| format!("make salt: {e}"))?;
            let phc = argon2::Argon2::default()
                .hash_password(clear, &salt)
                .map_err(|e| format!("hash password: {e}"))?;
            Ok(format!("{{ARGON2}}{phc}").into_bytes())
        }
        Scheme::Pbkdf2Sha256 => {
            let salt = salt();
            let mut key = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(clear, &salt, PBKDF2_ITERATIONS, &mut key);
            let enc = |b: &[u8]| B64_NO_PAD.encode(b).replace('+', ".");
            Ok(format!(
                "{{PBKDF2-SHA256}}{PBKDF2_ITERATIONS}${}${}",
                enc(&salt),
                enc(&key)
            )
            .into_bytes())
        }
        Scheme::CryptSha512 => {
            let h = pwhash::sha512_crypt::hash(clear).map_err(|e| format!("hash password: {e}"))?;
            Ok(format!("{{CRYPT}}{h}").into_bytes())
        }
        Scheme::Ssha512 => Ok(salted_hash::<Sha512>("SSHA512", clear)),
        Scheme::Ssha256 => Ok(salted_hash::<Sha256>("SSHA256", clear)),
        Scheme::Ssha => Ok(salted_hash::<Sha1>("SSHA", clear)),
    }
}

/// `{SCHEME}` + base64(digest(password + salt) + salt), as slappasswd writes it.
fn salted_hash<D: Digest>(scheme: &str, clear: &[u8]) -> Vec<u8> {
    let salt = salt();
    let mut d = D::new();
    d.update(clear);
    d.update(salt);
    let mut raw = d.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!("{{{scheme}}}{}", B64.encode(raw)).into_bytes()
}

/// A new random password: 16 characters from a 64-letter alphabet (96 bits), drawn from the
/// operating system's random source through version 4 UUIDs.
pub fn generate() -> String {
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.+!*";
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        for b in uuid::Uuid::new_v4().as_bytes().iter().skip(1) {
            if out.len() == 16 {
                break;
            }
            // Six random bits per byte; the version and variant bits sit in bytes 6 and 8.
            let c = alphabet.get(usize::from(b & 0x3f)).copied().unwrap_or(b'x');
            out.push(char::from(c));
        }
    }
    out
}

/// Splits `{SCHEME}rest`; `None` when the value carries no scheme.
pub fn split_scheme(stored: &[u8]) -> Option<(String, &[u8])> {
    if stored.first() != Some(&b'{') {
        return None;
    }
    let close = stored.iter().position(|&b| b == b'}')?;
    let scheme = std::str::from_utf8(stored.get(1..close)?).ok()?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some((scheme.to_string(), stored.get(close + 1..)?))
}

fn unsalted<D: Digest>(data: &[u8], password: &[u8]) -> bool {
    let Ok(expected) = B64.decode(data.trim_ascii()) else {
        return false;
    };
    constant_time_eq(&D::digest(password), &expected)
}

fn salted<D: Digest>(data: &[u8], password: &[u8]) -> bool {
    let Ok(raw) = B64.decode(data.trim_ascii()) else {
        return false;
    };
    let n = <D as Digest>::output_size();
    if raw.len() <= n {
        return false;
    }
    let (hash, salt) = raw.split_at(n);
    let mut d = D::new();
    d.update(password);
    d.update(salt);
    constant_time_eq(&d.finalize(), hash)
}

/// Work factors past these are refused rather than computed: a stored hash with an absurd
/// cost would otherwise make every bind against it take seconds or gigabytes.
/// With at most `server.max_concurrent_binds` checks at once, these bound the memory and time
/// password checks can take together (64 MiB each for argon2).
const MAX_BCRYPT_COST: u32 = 14;
const MAX_SHA_CRYPT_ROUNDS: u64 = 200_000;
const MAX_ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const MAX_ARGON2_PASSES: u32 = 8;
const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;

fn crypt(data: &[u8], password: &[u8]) -> bool {
    let Ok(hash) = std::str::from_utf8(data) else {
        return false;
    };
    // Traditional DES crypt is refused: it silently truncates passwords to eight characters.
    if !hash.starts_with('$') || !crypt_cost_acceptable(hash) {
        return false;
    }
    pwhash::unix::verify(password, hash)
}

/// Checks the work factor of a `$2b$NN$...` or `$5$rounds=N$...`/`$6$rounds=N$...` hash.
fn crypt_cost_acceptable(hash: &str) -> bool {
    let mut parts = hash.split('$').skip(1);
    match (parts.next(), parts.next()) {
        (Some("2a" | "2b" | "2y" | "2x"), Some(cost)) => {
            cost.parse::<u32>().is_ok_and(|c| c <= MAX_BCRYPT_COST)
        }
        (Some("5" | "6"), Some(field)) => match field.strip_prefix("rounds=") {
            Some(n) => n.parse::<u64>().is_ok_and(|r| r <= MAX_SHA_CRYPT_ROUNDS),
            None => true,
        },
        _ => true,
    }
}

fn argon2_phc(data: &[u8], password: &[u8]) -> bool {
    let Ok(phc) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
        return false;
    }
    argon2::Argon2::default()
        .verify_password(password, &parsed)
        .is_ok()
}

/// `{PBKDF2-SHA256}<iterations>$<salt>$<key>` with OpenLDAP's adapted base64 (`.` for `+`).
fn pbkdf2_sha256(data: &[u8], password: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut parts = text.split('$');
    let (Some(iter), Some(salt), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iter.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
        return false;
    }
    let decode = |s: &str| B64_NO_PAD.decode(s.replace('.', "+").trim_end_matches('='));
    let (Ok(salt), Ok(expected)) = (decode(salt), decode(key)) else {
        return false;
    };
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, iterations, &mut out);
    constant_time_eq(&out, &expected)
}

/// Compares without an early exit, so the time taken does not tell how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssha<D: Digest>(scheme: &str, pw: &[u8], salt: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        d.update(pw);
        d.update(salt);
        let mut raw = d.finalize().to_vec();
        raw.extend_from_slice(salt);
        format!("{{{scheme}}}{}", B64.encode(raw)).into_bytes()
    }

    #[test]
    fn salted_and_unsalted_sha() {
        let v = ssha::<Sha1>("SSHA", b"secret", b"saltsalt");
        assert!(verify(&v, b"secret"));
        assert!(!verify(&v, b"Secret"));
        assert!(verify(
            &ssha::<Sha256>("SSHA256", b"pw", b"12345678"),
            b"pw"
        ));
        assert!(verify(
            &ssha::<Sha512>("ssha512", b"pw", b"12345678"),
            b"pw"
        ));
        // slappasswd -h {SHA} -s secret
        assert!(verify(b"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secret"));
        assert!(!verify(b"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secreT"));
    }

    #[test]
    fn generated_directory_hash() {
        // The form written by shared/bench/gen_ldif.py for user 0: salt = sha1("0")[..8].
        let salt = &Sha1::digest(b"0")[..8];
        assert!(verify(
            &ssha::<Sha1>("SSHA", b"pw0000000", salt),
            b"pw0000000"
        ));
    }

    #[test]
    #[allow(deprecated)] // Old schemes are hashed here only to check that they verify.
    fn crypt_variants() {
        for h in [
            pwhash::md5_crypt::hash("pw").unwrap(),
            pwhash::sha256_crypt::hash("pw").unwrap(),
            pwhash::sha512_crypt::hash("pw").unwrap(),
            pwhash::bcrypt::hash("pw").unwrap(),
        ] {
            let stored = format!("{{CRYPT}}{h}");
            assert!(verify(stored.as_bytes(), b"pw"), "{h}");
            assert!(!verify(stored.as_bytes(), b"px"), "{h}");
        }
        let y = pwhash::bcrypt::hash("pw")
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        assert!(verify(format!("{{CRYPT}}{y}").as_bytes(), b"pw"));
    }

    #[test]
    fn argon2_and_pbkdf2() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = argon2::Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify(format!("{{ARGON2}}{phc}").as_bytes(), b"pw"));
        assert!(!verify(format!("{{ARGON2}}{phc}").as_bytes(), b"px"));

        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pw", b"saltsalt", 1000, &mut key);
        let enc = |b: &[u8]| B64_NO_PAD.encode(b).replace('+', ".");
        let stored = format!("{{PBKDF2-SHA256}}1000${}${}", enc(b"saltsalt"), enc(&key));
        assert!(verify(stored.as_bytes(), b"pw"));
        assert!(!verify(stored.as_bytes(), b"px"));
    }

    #[test]
    fn absurd_work_factors_are_refused() {
        assert!(!verify(
            b"{CRYPT}$2b$31$abcdefghijklmnopqrstuuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            b"x"
        ));
        assert!(!verify(b"{CRYPT}$6$rounds=999999999$salt$hash", b"x"));
        assert!(!verify(
            b"{ARGON2}$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            b"x"
        ));
        assert!(crypt_cost_acceptable("$2b$12$abc"));
        assert!(crypt_cost_acceptable("$6$salt$hash"));
    }

    #[test]
    fn new_hashes_verify() {
        let h = hash(Scheme::Argon2, b"s3cret").unwrap();
        assert!(h.starts_with(b"{ARGON2}$argon2id$"));
        assert!(verify(&h, b"s3cret"));
        assert!(!verify(&h, b"s3creT"));
        assert_ne!(hash(Scheme::Argon2, b"s3cret").unwrap(), h, "salts differ");
        for (name, prefix) in [
            ("pbkdf2-sha256", "{PBKDF2-SHA256}100000$"),
            ("{CRYPT}", "{CRYPT}$6$"),
            ("ssha512", "{SSHA512}"),
            ("SSHA256", "{SSHA256}"),
            ("ssha", "{SSHA}"),
            ("argon2", "{ARGON2}"),
        ] {
            let scheme: Scheme = name.parse().unwrap();
            let h = hash(scheme, "pässword".as_bytes()).unwrap();
            assert!(h.starts_with(prefix.as_bytes()), "{name}");
            assert!(verify(&h, "pässword".as_bytes()), "{name}");
            assert!(!verify(&h, b"password"), "{name}");
        }
        assert!("md5"
            .parse::<Scheme>()
            .unwrap_err()
            .contains("md5".to_ascii_uppercase().as_str()));
    }

    #[test]
    fn costly_schemes_are_the_slow_hashes() {
        for cheap in [
            "{SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==",
            "{sha}x",
            "{SSHA512}x",
            "{CLEARTEXT}secret",
            "secret",
        ] {
            assert!(!is_costly(cheap.as_bytes()), "{cheap}");
        }
        let argon = hash(Scheme::Argon2, b"pw").unwrap();
        for costly in [
            String::from_utf8(argon).unwrap(),
            "{crypt}$6$salt$x".into(),
            "{PBKDF2-SHA256}x".into(),
        ] {
            assert!(is_costly(costly.as_bytes()), "{costly}");
        }
    }

    #[test]
    fn clear_text_and_garbage() {
        assert!(verify(b"plain", b"plain"));
        assert!(!verify(b"plain", b"plai"));
        assert!(!verify(b"{SSHA}not base64!", b"x"));
        assert!(!verify(b"{UNKNOWN}x", b"x"));
        assert!(!verify(b"{CRYPT}abJnggxhB/yWI", b"x"));
    }
}
