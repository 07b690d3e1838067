//! The sync job's configuration file (SYNC.toml): the upstream directory, what of it to map
//! into which domain, and how. Defaults follow the upstream's kind; every mistake is named with
//! the file and the setting.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {setting}: {message}")]
    Invalid {
        path: PathBuf,
        setting: &'static str,
        message: String,
    },
}

/// What the upstream directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Active Directory (or Samba as an AD domain controller).
    Ad,
    /// Novell/NetIQ eDirectory.
    Edirectory,
    /// Any LDAPv3 server with entryUUID and modifyTimestamp (OpenLDAP, 389).
    Ldap,
}

/// What becomes of a mapped user deleted upstream or gone from the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Deleted {
    Delete,
    Disable,
}

/// Groups that are members of mapped groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nested {
    /// Not mapped as members (their members are not either).
    Ignore,
    /// Their users become members of the mapped group.
    Flatten,
}

/// The cap on deletions in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cap {
    Count(usize),
    Percent(f64),
}

impl Cap {
    /// How many of `mapped` entries one run may delete (at least one).
    pub fn allows(self, mapped: usize) -> usize {
        match self {
            Cap::Count(n) => n,
            Cap::Percent(p) => ((mapped as f64 * p / 100.0).floor() as usize).max(1),
        }
    }

    pub fn parse(v: &str) -> Result<Cap, String> {
        let v = v.trim();
        let bad = || format!("{v:?}: a number of entries, or a percentage such as \"10%\"");
        match v.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(bad());
                }
                Ok(Cap::Percent(p))
            }
            None => v.parse().map(Cap::Count).map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cap::Count(n) => write!(f, "{n}"),
            Cap::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `30s`, `15m`, `1h`, `1d` (a bare number is seconds).
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{v:?}: a number with s, m, h or d (15m)"))?;
    let factor: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{v:?}: a number with s, m, h or d (15m)")),
    };
    // At most ten years: longer is a mistake, and would overflow the clock's arithmetic.
    let secs = n
        .checked_mul(factor)
        .filter(|s| *s <= 10 * 366 * 86_400)
        .ok_or_else(|| format!("{v:?}: at most ten years"))?;
    if secs == 0 {
        return Err(format!("{v:?}: must be more than nothing"));
    }
    Ok(Duration::from_secs(secs))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    domain: String,
    #[serde(default)]
    deleted: Option<Deleted>,
    #[serde(default)]
    max_deletes: Option<toml::Value>,
    #[serde(default)]
    nested_groups: Option<Nested>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    full_run_every: Option<String>,
    #[serde(default)]
    rosterd: Option<Connection>,
    upstream: UpstreamFile,
    #[serde(default)]
    users: UsersFile,
    #[serde(default)]
    groups: GroupsFile,
}

/// How to reach and bind to a directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub url: String,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    kind: Kind,
    url: String,
    #[serde(default)]
    ca: Option<PathBuf>,
    bind_dn: String,
    password_file: PathBuf,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    page_size: Option<i32>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    base: Vec<String>,
    filter: Option<String>,
    name: Option<String>,
    full_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    description: Option<String>,
    addresses: Option<Vec<String>>,
    disabled: Option<String>,
    id: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    #[serde(default)]
    base: Vec<String>,
    filter: Option<String>,
    name: Option<String>,
    description: Option<String>,
    addresses: Option<Vec<String>>,
    members: Option<String>,
    /// Map no groups at all.
    #[serde(default)]
    skip: bool,
}

/// Upstream attributes a mapped entry is made of.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub full_name: String,
    pub given_name: String,
    pub surname: String,
    pub description: String,
    /// Read in order; the first address found is the primary unless an AD `SMTP:` value says.
    pub addresses: Vec<String>,
    /// `userAccountControl` (bit 0x2), or an attribute that is TRUE when disabled.
    pub disabled: Option<String>,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct GroupMapping {
    pub name: String,
    pub description: String,
    pub addresses: Vec<String>,
    pub members: String,
}

/// The upstream directory.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub kind: Kind,
    pub url: String,
    pub ca: Option<PathBuf>,
    pub bind_dn: String,
    pub password_file: PathBuf,
    pub timeout: Duration,
    pub page_size: i32,
}

/// A whole sync job.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub name: String,
    pub domain: String,
    pub deleted: Deleted,
    pub max_deletes: Cap,
    pub nested: Nested,
    pub template: Option<String>,
    pub full_run_every: Duration,
    pub rosterd: Option<Connection>,
    pub upstream: Upstream,
    pub user_bases: Vec<String>,
    pub user_filter: String,
    pub users: Mapping,
    pub group_bases: Vec<String>,
    pub group_filter: String,
    pub groups: GroupMapping,
    pub map_groups: bool,
}

impl SyncConfig {
    pub fn load(path: &Path) -> Result<SyncConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SyncConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<SyncConfig, ConfigError> {
        let f: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |setting: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            setting,
            message,
        };
        if f.name.is_empty()
            || f.name.len() > 64
            || !f
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name",
                format!("{:?}: letters, digits, - and _ (at most 64)", f.name),
            ));
        }
        crate::domain::domain_base(&f.domain).map_err(|e| invalid("domain", e.to_string()))?;
        let kind = f.upstream.kind;
        let u = &f.upstream;
        if !(u.url.starts_with("ldaps://") || u.url.starts_with("ldap://")) {
            return Err(invalid(
                "upstream.url",
                format!("{:?}: ldaps://host or ldap://host (StartTLS)", u.url),
            ));
        }
        let timeout = match &u.timeout {
            Some(t) => parse_duration(t).map_err(|m| invalid("upstream.timeout", m))?,
            None => Duration::from_secs(10),
        };
        let max_deletes = match &f.max_deletes {
            None => Cap::Percent(10.0),
            Some(toml::Value::Integer(n)) if *n >= 0 => Cap::Count(*n as usize),
            Some(toml::Value::String(s)) => Cap::parse(s).map_err(|m| invalid("max_deletes", m))?,
            Some(v) => {
                return Err(invalid(
                    "max_deletes",
                    format!("{v}: a number of entries, or a percentage such as \"10%\""),
                ))
            }
        };
        let full_run_every = match &f.full_run_every {
            Some(t) => parse_duration(t).map_err(|m| invalid("full_run_every", m))?,
            None => Duration::from_secs(86_400),
        };
        let (user_filter, group_filter, id) = match kind {
            Kind::Ad => (
                "(&(objectCategory=person)(objectClass=user))",
                "(objectClass=group)",
                "objectGUID",
            ),
            Kind::Edirectory => (
                "(objectClass=inetOrgPerson)",
                "(objectClass=groupOfNames)",
                "GUID",
            ),
            Kind::Ldap => (
                "(objectClass=inetOrgPerson)",
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                "entryUUID",
            ),
        };
        let uf = &f.users;
        let pick = |v: &Option<String>, ad: &str, other: &str| {
            v.clone().unwrap_or_else(|| {
                if kind == Kind::Ad {
                    ad.to_string()
                } else {
                    other.to_string()
                }
            })
        };
        let users = Mapping {
            name: pick(&uf.name, "sAMAccountName", "uid"),
            full_name: pick(&uf.full_name, "displayName", "cn"),
            given_name: pick(&uf.given_name, "givenName", "givenName"),
            surname: pick(&uf.surname, "sn", "sn"),
            description: pick(&uf.description, "description", "description"),
            addresses: uf.addresses.clone().unwrap_or_else(|| match kind {
                Kind::Ad => vec!["proxyAddresses".into(), "mail".into()],
                _ => vec!["mail".into()],
            }),
            disabled: match &uf.disabled {
                Some(d) if d.is_empty() => None,
                Some(d) => Some(d.clone()),
                None => match kind {
                    Kind::Ad => Some("userAccountControl".into()),
                    Kind::Edirectory => Some("loginDisabled".into()),
                    Kind::Ldap => None,
                },
            },
            id: uf.id.clone().unwrap_or_else(|| id.to_string()),
        };
        let gf = &f.groups;
        let groups = GroupMapping {
            name: gf.name.clone().unwrap_or_else(|| "cn".into()),
            description: gf
                .description
                .clone()
                .unwrap_or_else(|| "description".into()),
            addresses: gf.addresses.clone().unwrap_or_else(|| match kind {
                Kind::Ad => vec!["proxyAddresses".into(), "mail".into()],
                _ => vec!["mail".into()],
            }),
            members: gf.members.clone().unwrap_or_else(|| "member".into()),
        };
        let bases = |v: &[String], setting: &'static str| -> Result<Vec<String>, ConfigError> {
            if v.is_empty() {
                return Err(invalid(setting, "give at least one base DN".into()));
            }
            for b in v {
                roster_schema::Dn::parse(b).map_err(|e| invalid(setting, format!("{b:?}: {e}")))?;
            }
            Ok(v.to_vec())
        };
        let user_bases = bases(&uf.base, "users.base")?;
        let group_bases = if gf.skip {
            Vec::new()
        } else if gf.base.is_empty() {
            user_bases.clone()
        } else {
            bases(&gf.base, "groups.base")?
        };
        let filter = |v: &Option<String>, default: &str, setting: &'static str| {
            let v = v.clone().unwrap_or_else(|| default.to_string());
            // A filter written without its outer parentheses is combined with others too.
            let v = if v.trim_start().starts_with('(') {
                v
            } else {
                format!("({})", v.trim())
            };
            roster_schema::Filter::parse(&v)
                .map(|_| v.clone())
                .map_err(|e| invalid(setting, format!("{v:?}: {e}")))
        };
        Ok(SyncConfig {
            name: f.name.clone(),
            domain: f.domain.trim_end_matches('.').to_ascii_lowercase(),
            deleted: f.deleted.unwrap_or(Deleted::Delete),
            max_deletes,
            nested: f.nested_groups.unwrap_or(Nested::Ignore),
            template: f.template.clone(),
            full_run_every,
            rosterd: f.rosterd.clone(),
            upstream: Upstream {
                kind,
                url: u.url.clone(),
                ca: u.ca.clone(),
                bind_dn: u.bind_dn.clone(),
                password_file: u.password_file.clone(),
                timeout,
                page_size: u.page_size.unwrap_or(500).clamp(1, 1000),
            },
            user_filter: filter(&uf.filter, user_filter, "users.filter")?,
            user_bases,
            users,
            group_filter: filter(&gf.filter, group_filter, "groups.filter")?,
            group_bases,
            groups,
            map_groups: !gf.skip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SyncConfig, ConfigError> {
        SyncConfig::parse(Path::new("sync.toml"), text)
    }

    const AD: &str = r#"
name = "corp"
domain = "example.com"
[upstream]
kind = "ad"
url = "ldaps://dc1.corp.example.com"
bind_dn = "CN=roster,CN=Users,DC=corp,DC=example,DC=com"
password_file = "/etc/roster/corp.pw"
[users]
base = ["CN=Users,DC=corp,DC=example,DC=com"]
"#;

    #[test]
    fn defaults_follow_the_kind() {
        let c = parse(AD).unwrap();
        assert_eq!(c.users.name, "sAMAccountName");
        assert_eq!(c.users.id, "objectGUID");
        assert_eq!(c.users.disabled.as_deref(), Some("userAccountControl"));
        assert_eq!(c.group_bases, c.user_bases);
        assert_eq!(c.max_deletes, Cap::Percent(10.0));
        assert_eq!(c.deleted, Deleted::Delete);
        assert_eq!(c.nested, Nested::Ignore);
        let e = parse(&AD.replace("\"ad\"", "\"edirectory\"")).unwrap();
        assert_eq!(e.users.id, "GUID");
        assert_eq!(e.users.disabled.as_deref(), Some("loginDisabled"));
        let l = parse(&AD.replace("\"ad\"", "\"ldap\"")).unwrap();
        assert_eq!(l.users.id, "entryUUID");
        assert_eq!(l.users.disabled, None);
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(&AD.replace("kind = \"ad\"", "kind = \"nt\"")).unwrap_err();
        assert!(e.to_string().contains("sync.toml"), "{e}");
        let e = parse(&format!("{AD}filter = \"(cn=x\"\n")).unwrap_err();
        assert!(e.to_string().contains("users.filter"), "{e}");
        let e = parse(&AD.replace("name = \"corp\"", "name = \"my job\"")).unwrap_err();
        assert!(e.to_string().contains("name"), "{e}");
        let e = parse(&format!("max_deletes = \"lots\"\n{AD}")).unwrap_err();
        assert!(e.to_string().contains("max_deletes"), "{e}");
        let c = parse(&format!("{AD}filter = \"objectClass=user\"\n")).unwrap();
        assert_eq!(c.user_filter, "(objectClass=user)");
        let e = parse(&format!("colour = \"red\"\n{AD}")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn caps_and_durations() {
        assert_eq!(Cap::Percent(10.0).allows(200), 20);
        assert_eq!(Cap::Percent(10.0).allows(5), 1);
        assert_eq!(Cap::Count(3).allows(1000), 3);
        assert_eq!(Cap::parse("25%").unwrap(), Cap::Percent(25.0));
        assert!(Cap::parse("150%").is_err());
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999d").is_err());
    }
}
