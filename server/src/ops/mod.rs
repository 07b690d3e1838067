//! The LDAP operations. Each is a plain function from (directory, session state, request) to
//! responses; none of them knows about sockets, so each can be tested without a network.
//! Storage calls are synchronous: the session runs binds and large searches on blocking
//! threads, and small searches, compares and extended operations in place.

pub mod add;
pub mod attrs;
pub mod bind;
pub mod compare;
pub mod delete;
pub mod dse;
pub mod extended;
pub mod filter;
pub mod modify;
pub mod modrdn;
pub mod passwd;
pub mod search;
pub mod syncprov;

use crate::directory::Directory;
use crate::error::OpError;
pub use crate::identity::Identity;
use ldap3_proto::proto::{LdapResult, LdapResultCode};
use roster_schema::{AttrDesc, Attribute, Entry, NormDn, Schema};

/// Sets an operational attribute the server maintains (modifiersName, modifyTimestamp) to
/// one value.
pub fn set_operational(schema: &Schema, attrs: &mut Vec<Attribute>, name: &str, value: &[u8]) {
    let Some(id) = schema.attr_id(name) else {
        return;
    };
    attrs.retain(|a| a.desc.id != id);
    attrs.push(Attribute {
        desc: AttrDesc::plain(id),
        values: vec![value.to_vec()],
    });
}

/// What a write does to the entries it changes besides its target (the groups whose
/// references a delete or rename rewrites): they are marked as modified by the same client at
/// the same time.
pub fn mark_modified<'a>(
    schema: &'a Schema,
    who: &'a Identity,
    now: &'a str,
) -> impl Fn(&mut Entry) + 'a {
    move |e: &mut Entry| {
        set_operational(schema, &mut e.attrs, "modifiersName", who.dn().as_bytes());
        set_operational(schema, &mut e.attrs, "modifyTimestamp", now.as_bytes());
    }
}

/// The OID of the No-Op control (draft-zeilenga-ldap-noop): the server checks an add or
/// modify as if it were to be written, answers as it would, and writes nothing. This is the
/// OID OpenLDAP's libraries send today (`ldapmodify -e '!noop'`).
pub const NO_OP_CONTROL: &str = "1.3.6.1.4.1.4203.666.5.2";
/// The draft's registered OID for the same control, which older clients send.
pub const NO_OP_CONTROL_DRAFT: &str = "1.3.6.1.4.1.4203.1.10.2";

/// Whether a write is made or only checked (the No-Op control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Commit,
    CheckOnly,
}

/// The result of a write: success, or the failure's result code, logging store failures (and
/// ending the process on fatal ones, see `Directory::store_failed`).
pub fn write_result(
    dir: &Directory,
    operation: &str,
    write: Write,
    r: Result<(), OpError>,
) -> LdapResult {
    match r {
        Ok(()) if write == Write::CheckOnly => crate::error::result(
            LdapResultCode::Success,
            format!("no-op: the {operation} was checked and not written"),
        ),
        Ok(()) => crate::error::success(),
        Err(e) => {
            if let OpError::Store(inner) = &e {
                dir.store_failed(operation, inner);
            }
            crate::error::ldap_result(&e)
        }
    }
}

/// The matched DN of a noSuchObject answer about `ndn`: the nearest existing ancestor, if
/// the client may see it (its existence is information too).
pub fn matched(
    dir: &Directory,
    who: &Identity,
    reader: &roster_storage::Reader,
    ndn: &NormDn,
) -> Result<Option<String>, OpError> {
    let Some(dn) = reader.matched_dn(ndn)? else {
        return Ok(None);
    };
    if who.is_root() {
        return Ok(Some(dn.to_string()));
    }
    let norm = dn.normalize(&dir.schema)?;
    let Some((_, entry)) = reader.entry_by_dn(&norm)? else {
        return Ok(None);
    };
    let requester = crate::access::Requester::new(who, reader);
    let visible = dir
        .policy
        .for_entry(&dir.schema, &requester, &entry)
        .allows(None, crate::access::Rights::READ);
    Ok(visible.then(|| dn.to_string()))
}

/// Anonymous clients change nothing: slapd's answer to an anonymous update.
pub fn require_authenticated(who: &Identity) -> Result<(), OpError> {
    match who {
        Identity::Anonymous => Err(OpError::StrongerAuthRequired(
            "modifications require authentication".into(),
        )),
        _ => Ok(()),
    }
}

/// Checks that `who` has `right` on `entry` itself (`attr` `None`) or on one of its
/// attributes, by the access policy; insufficientAccess naming what is missing otherwise.
pub fn require_right(
    dir: &Directory,
    who: &Identity,
    reader: &roster_storage::Reader,
    entry: &Entry,
    attr: Option<roster_schema::AttrId>,
    right: crate::access::Rights,
    what: &str,
) -> Result<(), OpError> {
    let requester = crate::access::Requester::new(who, reader);
    let access = dir.policy.for_entry(&dir.schema, &requester, entry);
    if access.allows(attr, right) {
        return Ok(());
    }
    // An existing entry the client may not see is not there for it: the answer for a missing
    // one. (An entry about to be added is not there yet: refused as such.)
    if right != crate::access::Rights::ADD && !access.allows(None, crate::access::Rights::READ) {
        let matched = matched(dir, who, reader, &entry.ndn)?;
        return Err(OpError::NoSuchObject { matched });
    }
    let on = match attr {
        Some(a) => format!("{} of {}", dir.schema.attr_name(a), entry.dn),
        None => entry.dn.to_string(),
    };
    Err(OpError::InsufficientAccess(format!(
        "no access to {what} {on}"
    )))
}

#[cfg(test)]
mod tests {
    //! The operations driven directly, with no socket: a directory in a temporary data
    //! directory, loaded through the offline loader.

    use super::search::{search, PageRequest, PagedSearches, Stopped};
    use super::*;
    use crate::config::{ConfigFile, Overrides, Settings};
    use crate::directory::Directory;
    use ldap3_proto::proto::*;
    use std::sync::atomic::AtomicBool;

    const LDIF: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
        dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
        dn: uid=ann,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann Smith\nsn: Smith\nmail: ann@example.com\nuserPassword: {SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==\n\n\
        dn: uid=bob,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob Jones\nsn: Jones\nmail: bob@example.com\n\n\
        dn: uid=cyd,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: cyd\ncn: Cyd Smith\nsn: Smith\n\n\
        dn: cn=tagged,dc=example,dc=com\nobjectClass: device\nobjectClass: extensibleObject\ncn: tagged\nrosterTestTag: Blue\n";

    /// The schema file every test directory loads, to check that configured files count.
    const EXTRA_SCHEMA: &str = "attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'rosterTestTag'\n  EQUALITY caseIgnoreMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n";

    fn directory(dir: &tempfile::TempDir) -> Directory {
        std::fs::write(dir.path().join("extra.schema"), EXTRA_SCHEMA).unwrap();
        // The root password is given as a hash: {SSHA} of "secret" with salt "saltsalt".
        let file: ConfigFile = toml::from_str(
            "[directory]\nroot_dn = \"cn=admin,dc=example,dc=com\"\nroot_password = \"{SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==\"\nsize_limit = 2\nschema_files = [\"extra.schema\"]\n[storage]\ndurability = \"buffer\"\n\
             [access]\npolicy = \"custom\"\n[[access.rule]]\nattrs = [\"userPassword\"]\n\
             by = [{ who = \"self\", rights = \"write\" }, { who = \"anonymous\", rights = \"auth\" }]\n\
             [[access.rule]]\nby = [{ who = \"*\", rights = \"read\" }]\n",
        )
        .unwrap();
        let settings = Settings::from_file(
            file,
            dir.path(),
            &Overrides {
                data_dir: Some(dir.path().join("data")),
                ..Overrides::default()
            },
        )
        .unwrap();
        let d = Directory::open(settings).unwrap();
        let path = dir.path().join("in.ldif");
        std::fs::write(&path, LDIF).unwrap();
        crate::offline::load(
            &d,
            &path,
            false,
            crate::offline::InvalidValues::Refuse,
            &mut std::io::sink(),
        )
        .unwrap();
        d
    }

    fn req(base: &str, filter: &str, attrs: &[&str]) -> LdapSearchRequest {
        LdapSearchRequest {
            base: base.into(),
            scope: LdapSearchScope::Subtree,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter: ldap3_proto::parse_ldap_filter_str(filter).unwrap(),
            attrs: attrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn run(
        d: &Directory,
        who: &Identity,
        r: &LdapSearchRequest,
        page: Option<PageRequest>,
        paged: &PagedSearches,
    ) -> (Vec<LdapSearchResultEntry>, search::SearchDone) {
        let mut got = Vec::new();
        let mut emit = |e: search::ResultEntry| -> Result<(), Stopped> {
            got.push(match e {
                search::ResultEntry::Built(e) => e,
                search::ResultEntry::Encoded(e) => e.decoded(),
            });
            Ok(())
        };
        let done = search(
            d,
            who,
            r,
            page,
            paged,
            &std::sync::Arc::new(AtomicBool::new(false)),
            false,
            &mut emit,
        )
        .unwrap();
        (got, done)
    }

    #[test]
    fn a_connection_reuses_its_last_base_only_for_the_same_string() {
        let tmp = tempfile::tempdir().unwrap();
        let d = directory(&tmp);
        let root = Identity::Root {
            dn: "cn=admin,dc=example,dc=com".into(),
        };
        let paged = PagedSearches::default();
        let dns = |base: &str| {
            let (got, done) = run(&d, &root, &req(base, "(sn=smith)", &["cn"]), None, &paged);
            let dns: Vec<String> = got.into_iter().map(|e| e.dn).collect();
            (done.result.code, dns)
        };
        let people = dns("ou=people,dc=example,dc=com");
        assert_eq!(people.0, LdapResultCode::Success);
        assert_eq!(people.1.len(), 2);
        // The same base again, and written differently: the same entries.
        assert_eq!(dns("ou=people,dc=example,dc=com"), people);
        assert_eq!(dns("OU=People, DC=Example, DC=Com"), people);
        // A base that does not parse after one that did, then one that does not exist.
        assert_eq!(dns("ou=people,,").0, LdapResultCode::InvalidDNSyntax);
        assert_eq!(
            dns("ou=nobody,dc=example,dc=com").0,
            LdapResultCode::NoSuchObject
        );
        assert_eq!(dns("ou=people,dc=example,dc=com"), people);
        // Another connection (its own state) gets the same answers through the shared forms.
        let other = PagedSearches::default();
        for base in [
            "ou=people,dc=example,dc=com",
            "OU=People, DC=Example, DC=Com",
        ] {
            let (got, done) = run(&d, &root, &req(base, "(sn=smith)", &["cn"]), None, &other);
            assert_eq!(done.result.code, LdapResultCode::Success);
            let dns: Vec<String> = got.into_iter().map(|e| e.dn).collect();
            assert_eq!(dns, people.1);
        }
        let (_, done) = run(
            &d,
            &root,
            &req("ou=people,,", "(sn=smith)", &["cn"]),
            None,
            &other,
        );
        assert_eq!(done.result.code, LdapResultCode::InvalidDNSyntax);
    }

    #[test]
    fn search_selects_filters_and_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let d = directory(&tmp);
        let root = Identity::Root {
            dn: "cn=admin,dc=example,dc=com".into(),
        };
        let paged = PagedSearches::default();
        let (got, done) = run(
            &d,
            &root,
            &req("dc=example,dc=com", "(sn=smith)", &["cn"]),
            None,
            &paged,
        );
        assert_eq!(done.result.code, LdapResultCode::Success);
        let dns: Vec<_> = got.iter().map(|e| e.dn.as_str()).collect();
        assert_eq!(
            dns,
            [
                "uid=ann,ou=people,dc=example,dc=com",
                "uid=cyd,ou=people,dc=example,dc=com"
            ]
        );
        assert_eq!(got[0].attributes.len(), 1);
        assert_eq!(got[0].attributes[0].atype, "cn");
        // An attribute type from a configured schema file loads and matches by its rule.
        let (got, _) = run(
            &d,
            &root,
            &req(
                "dc=example,dc=com",
                "(rosterTestTag=BLUE)",
                &["rosterTestTag"],
            ),
            None,
            &paged,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].attributes[0].atype, "rosterTestTag");
        // The configured size limit (2) applies to everyone but the root DN.
        let (got, done) = run(
            &d,
            &Identity::Anonymous,
            &req("dc=example,dc=com", "(uid=*)", &["1.1"]),
            None,
            &paged,
        );
        assert_eq!(done.result.code, LdapResultCode::SizeLimitExceeded);
        assert_eq!(got.len(), 2);
        let (got, done) = run(
            &d,
            &root,
            &req("dc=example,dc=com", "(uid=*)", &["1.1"]),
            None,
            &paged,
        );
        assert_eq!(done.result.code, LdapResultCode::Success);
        assert_eq!(got.len(), 3, "uid=* matches the three people");
        // userPassword is withheld from anyone but the root DN.
        let (got, _) = run(
            &d,
            &Identity::Anonymous,
            &req(
                "uid=ann,ou=people,dc=example,dc=com",
                "(objectClass=*)",
                &["userPassword", "uid"],
            ),
            None,
            &paged,
        );
        assert!(got[0].attributes.iter().all(|a| a.atype != "userPassword"));
        // A missing base names the nearest existing entry.
        let (_, done) = run(
            &d,
            &root,
            &req(
                "uid=x,ou=gone,ou=people,dc=example,dc=com",
                "(objectClass=*)",
                &[],
            ),
            None,
            &paged,
        );
        assert_eq!(done.result.code, LdapResultCode::NoSuchObject);
        assert_eq!(done.result.matcheddn, "ou=people,dc=example,dc=com");
    }

    #[test]
    fn paging_resumes_and_zero_abandons() {
        let tmp = tempfile::tempdir().unwrap();
        let d = directory(&tmp);
        let root = Identity::Root {
            dn: "cn=admin,dc=example,dc=com".into(),
        };
        let paged = PagedSearches::default();
        let r = req("dc=example,dc=com", "(objectClass=*)", &["1.1"]);
        let (first, done) = run(
            &d,
            &root,
            &r,
            Some(PageRequest {
                size: 2,
                cookie: Vec::new(),
            }),
            &paged,
        );
        assert_eq!(first.len(), 2);
        let cookie = done.page_cookie.unwrap();
        assert!(!cookie.is_empty());
        let (second, done) = run(&d, &root, &r, Some(PageRequest { size: 2, cookie }), &paged);
        assert_eq!(second.len(), 2);
        let cookie = done.page_cookie.unwrap();
        let (third, done) = run(
            &d,
            &root,
            &r,
            Some(PageRequest {
                size: 0,
                cookie: cookie.clone(),
            }),
            &paged,
        );
        assert!(third.is_empty());
        assert_eq!(done.page_cookie, Some(Vec::new()));
        // The abandoned cookie is gone.
        let (_, done) = run(&d, &root, &r, Some(PageRequest { size: 2, cookie }), &paged);
        assert_eq!(done.result.code, LdapResultCode::ProtocolError);
        // A cookie replayed with another request is refused.
        let (_, done) = run(
            &d,
            &root,
            &r,
            Some(PageRequest {
                size: 1,
                cookie: Vec::new(),
            }),
            &paged,
        );
        let other = req("dc=example,dc=com", "(uid=*)", &["1.1"]);
        let (_, done2) = run(
            &d,
            &root,
            &other,
            Some(PageRequest {
                size: 1,
                cookie: done.page_cookie.unwrap(),
            }),
            &paged,
        );
        assert_eq!(done2.result.code, LdapResultCode::ProtocolError);
    }

    #[test]
    fn bind_and_compare() {
        let tmp = tempfile::tempdir().unwrap();
        let d = directory(&tmp);
        let bind = |dn: &str, pw: &str| {
            bind::bind(
                &d,
                &LdapBindRequest {
                    version: 3,
                    dn: dn.into(),
                    cred: LdapBindCred::Simple(pw.into()),
                },
                &bind::Origin {
                    peer: std::net::IpAddr::from([127, 0, 0, 1]),
                    certificate_subject: None,
                },
            )
            .decided()
        };
        // The stored hash is {SSHA} of "secret" with salt "saltsalt".
        let (res, who) = bind("uid=ann,ou=people,dc=example,dc=com", "secret");
        assert_eq!(res.code, LdapResultCode::Success, "{}", res.message);
        assert!(matches!(who, Identity::Entry { .. }));
        assert_eq!(
            bind("uid=ann,ou=people,dc=example,dc=com", "wrong").0.code,
            LdapResultCode::InvalidCredentials
        );
        assert_eq!(
            bind("uid=bob,ou=people,dc=example,dc=com", "x").0.code,
            LdapResultCode::InvalidCredentials
        );
        assert_eq!(
            bind("uid=ann,ou=people,dc=example,dc=com", "").0.code,
            LdapResultCode::UnwillingToPerform
        );
        assert_eq!(
            bind("cn=admin,dc=example,dc=com", "secret").1,
            Identity::Root {
                dn: "cn=admin,dc=example,dc=com".into()
            }
        );
        // The same names again (from the server's recent binds), written differently, and
        // with a wrong password: the names are reused, the password is checked every time.
        for _ in 0..2 {
            assert_eq!(
                bind("cn=admin,dc=example,dc=com", "secret").1,
                Identity::Root {
                    dn: "cn=admin,dc=example,dc=com".into()
                }
            );
            assert_eq!(
                bind("CN=Admin, DC=Example, DC=Com", "secret").1,
                Identity::Root {
                    dn: "cn=Admin,dc=Example,dc=Com".into()
                }
            );
            assert_eq!(
                bind("cn=admin,dc=example,dc=com", "wrong").0.code,
                LdapResultCode::InvalidCredentials
            );
            assert_eq!(
                bind("cn=admin,,", "secret").0.code,
                LdapResultCode::InvalidDNSyntax
            );
        }
        // The hashed root password is never accepted as the password itself.
        assert_eq!(
            bind(
                "cn=admin,dc=example,dc=com",
                "{SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA=="
            )
            .0
            .code,
            LdapResultCode::InvalidCredentials
        );
        let cmp_as = |who: &Identity, dn: &str, attr: &str, val: &str| {
            compare::compare(
                &d,
                who,
                &LdapCompareRequest {
                    dn: dn.into(),
                    atype: attr.into(),
                    val: val.as_bytes().to_vec(),
                },
            )
            .code
        };
        let cmp = |attr: &str, val: &str| {
            compare::compare(
                &d,
                &Identity::Anonymous,
                &LdapCompareRequest {
                    dn: "uid=ann,ou=people,dc=example,dc=com".into(),
                    atype: attr.into(),
                    val: val.as_bytes().to_vec(),
                },
            )
            .code
        };
        assert_eq!(cmp("cn", "ANN  SMITH"), LdapResultCode::CompareTrue);
        assert_eq!(cmp("name", "ann smith"), LdapResultCode::CompareTrue);
        assert_eq!(cmp("cn", "Bob"), LdapResultCode::CompareFalse);
        assert_eq!(cmp("title", "x"), LdapResultCode::NoSuchAttribute);
        // Password hashes cannot be tested by compare, except by the root DN.
        let ann = "uid=ann,ou=people,dc=example,dc=com";
        let hash = "{SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==";
        assert_eq!(
            cmp("userPassword", hash),
            LdapResultCode::InsufficentAccessRights
        );
        let root = Identity::Root {
            dn: "cn=admin,dc=example,dc=com".into(),
        };
        assert_eq!(
            cmp_as(&root, ann, "userPassword", hash),
            LdapResultCode::CompareTrue
        );
        // The root DSE and the subschema entry can be compared like stored entries.
        assert_eq!(
            cmp_as(&root, "cn=Subschema", "cn", "subschema"),
            LdapResultCode::CompareTrue
        );
        assert_eq!(
            cmp_as(&root, "", "objectClass", "top"),
            LdapResultCode::CompareTrue
        );
        // supportedLDAPVersion has no equality rule (RFC 4512), as slapd answers too.
        assert_eq!(
            cmp_as(&root, "", "supportedLDAPVersion", "3"),
            LdapResultCode::InappropriateMatching
        );
    }

    #[test]
    fn filters_cannot_test_hidden_attributes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = directory(&tmp);
        let paged = PagedSearches::default();
        let r = req("dc=example,dc=com", "(userPassword=*)", &["1.1"]);
        let (got, _) = run(&d, &Identity::Anonymous, &r, None, &paged);
        assert!(got.is_empty());
        let r = req(
            "dc=example,dc=com",
            "(!(userPassword:2.5.13.18:=x))",
            &["1.1"],
        );
        let (got, _) = run(&d, &Identity::Anonymous, &r, None, &paged);
        assert!(got.is_empty());
        let root = Identity::Root {
            dn: "cn=admin,dc=example,dc=com".into(),
        };
        // Nor for the root DN, which would otherwise find a hash a bit at a time by ordering.
        for f in ["(userPassword=*)", "(!(userPassword:2.5.13.18:=x))"] {
            let r = req("dc=example,dc=com", f, &["1.1"]);
            let (got, _) = run(&d, &root, &r, None, &paged);
            assert!(got.is_empty(), "{f}");
        }
        // An item on a hidden type is Undefined, not False: OR'd with a True one it still
        // returns the entry (the filter is evaluated again under the rights, not dropped).
        let all = run(
            &d,
            &root,
            &req("dc=example,dc=com", "(objectClass=*)", &["1.1"]),
            None,
            &paged,
        )
        .0;
        assert!(!all.is_empty());
        let either = run(
            &d,
            &root,
            &req(
                "dc=example,dc=com",
                "(|(objectClass=*)(userPassword=*))",
                &["1.1"],
            ),
            None,
            &paged,
        )
        .0;
        assert_eq!(either.len(), all.len());
        let both = run(
            &d,
            &root,
            &req(
                "dc=example,dc=com",
                "(&(objectClass=*)(userPassword=*))",
                &["1.1"],
            ),
            None,
            &paged,
        )
        .0;
        assert!(both.is_empty());
    }
}
