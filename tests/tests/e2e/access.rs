//! Access control with the built-in mail policy, over two mail domains: what anonymous
//! clients, users, service accounts, domain admins (directly and through a nested group),
//! global admins and the root DN can search, read, compare, bind as, add, change and delete.

use ldap3::{LdapConn, LdapError, Mod, Scope, SearchEntry};
use roster_tests::{run_tool, Rosterd, ROOT_DN, ROOT_PW};
use std::collections::HashSet;

const PW: &str = "Secret-pw-1";

fn domain(dc: &str, tld: &str) -> String {
    let base = format!("dc={dc},dc={tld}");
    let mut s = format!(
        "dn: {base}\nobjectClass: dcObject\nobjectClass: organization\ndc: {dc}\no: {dc}\n\n"
    );
    for ou in ["users", "groups", "services", "contacts"] {
        s += &format!("dn: ou={ou},{base}\nobjectClass: organizationalUnit\nou: {ou}\n\n");
    }
    for u in ["u1", "u2", "admin", "helper"] {
        s += &format!(
            "dn: uid={u},ou=users,{base}\nobjectClass: inetOrgPerson\nuid: {u}\ncn: {u}\nsn: {u}\n\
             mail: {u}@{dc}.{tld}\ntelephoneNumber: +1 555 0100\nuserPassword: {PW}\n\n"
        );
    }
    s += &format!(
        "dn: cn=postfix,ou=services,{base}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: postfix\nuserPassword: {PW}\n\n"
    );
    s += &format!(
        "dn: cn=partner,ou=contacts,{base}\nobjectClass: inetOrgPerson\ncn: partner\nsn: partner\n\
         mail: partner@elsewhere.example\n\n"
    );
    // The domain's admins: one directly, one through the helpdesk group.
    s += &format!(
        "dn: cn=helpdesk,ou=groups,{base}\nobjectClass: groupOfNames\ncn: helpdesk\nmember: uid=helper,ou=users,{base}\n\n"
    );
    s += &format!(
        "dn: cn=admins,ou=groups,{base}\nobjectClass: groupOfNames\ncn: admins\n\
         member: uid=admin,ou=users,{base}\nmember: cn=helpdesk,ou=groups,{base}\n\n"
    );
    s
}

fn config() -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[directory]\nsuffixes = [\"dc=example,dc=com\", \"dc=other,dc=org\"]\n\
         root_dn = \"{ROOT_DN}\"\nroot_password = \"{ROOT_PW}\"\nsize_limit = 5\n[storage]\ndurability = \"buffer\"\n\
         [access]\nglobal_admins = \"cn=roster-admins,ou=groups,dc=example,dc=com\"\n\
         global_services = \"ou=services,dc=example,dc=com\"\n\
         [[limits]]\nwho = \"subtree:ou=services,{{any}}\"\nsize_limit = 0\n\
         [[limits]]\nwho = \"group:cn=admins,ou=groups,{{suffix}}\"\nsize_limit = 100\n\
         [log]\nlevel = \"warn\"\n"
    )
}

fn ldif() -> String {
    let mut s = domain("example", "com");
    s += &domain("other", "org");
    s += "dn: uid=chief,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: chief\ncn: chief\nsn: chief\nuserPassword: Secret-pw-1\n\n";
    s += "dn: cn=roster-admins,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: roster-admins\nmember: uid=chief,ou=users,dc=example,dc=com\n\n";
    s
}

fn user(name: &str, base: &str) -> String {
    format!("uid={name},ou=users,{base}")
}

const EX: &str = "dc=example,dc=com";
const OT: &str = "dc=other,dc=org";

fn connect(url: &str, who: Option<&str>) -> LdapConn {
    let mut c = LdapConn::new(url).unwrap();
    if let Some(dn) = who {
        let pw = if dn == ROOT_DN { ROOT_PW } else { PW };
        c.simple_bind(dn, pw).unwrap().success().unwrap();
    }
    c
}

/// DNs (lowercased) a search returns.
fn dns(c: &mut LdapConn, base: &str, filter: &str) -> HashSet<String> {
    let (entries, _) = c
        .search(base, Scope::Subtree, filter, vec!["1.1"])
        .unwrap()
        .success()
        .unwrap();
    entries
        .into_iter()
        .map(|e| SearchEntry::construct(e).dn.to_ascii_lowercase())
        .collect()
}

/// The attributes (lowercased names) one entry shows this client; `None` if it is not seen
/// (an entry the client may not see answers noSuchObject, as a missing one).
fn attrs(c: &mut LdapConn, dn: &str, wanted: Vec<&str>) -> Option<HashSet<String>> {
    let ldap3::SearchResult(entries, res) = c
        .search(dn, Scope::Base, "(objectClass=*)", wanted)
        .unwrap();
    if res.rc == 32 {
        return None;
    }
    assert_eq!(res.rc, 0, "{res:?}");
    entries.into_iter().next().map(|e| {
        let e = SearchEntry::construct(e);
        e.attrs
            .keys()
            .chain(e.bin_attrs.keys())
            .map(|k| k.to_ascii_lowercase())
            .collect()
    })
}

fn rc(r: Result<ldap3::LdapResult, LdapError>) -> u32 {
    r.unwrap().rc
}

fn modify(c: &mut LdapConn, dn: &str, attr: &str, value: &str) -> u32 {
    rc(c.modify(dn, vec![Mod::Replace(attr, HashSet::from([value]))]))
}

fn add_user(c: &mut LdapConn, base: &str, name: &str) -> u32 {
    let dn = user(name, base);
    rc(c.add(
        &dn,
        vec![
            ("objectClass", HashSet::from(["inetOrgPerson"])),
            ("uid", HashSet::from([name])),
            ("cn", HashSet::from([name])),
            ("sn", HashSet::from([name])),
        ],
    ))
}

fn compare(c: &mut LdapConn, dn: &str, attr: &str, value: &str) -> u32 {
    c.compare(dn, attr, value).unwrap().0.rc
}

#[test]
fn the_mail_policy_over_two_domains() {
    let server = Rosterd::start_with_config(Some(&ldif()), &config());
    let url = server.url();
    let all_ex = {
        let mut root = connect(&url, Some(ROOT_DN));
        dns(&mut root, EX, "(objectClass=*)")
    };
    assert_eq!(all_ex.len(), 15);

    // Anonymous clients see the root DSE and the subschema, nothing stored, and can bind.
    let mut anon = connect(&url, None);
    assert!(dns(&mut anon, EX, "(objectClass=*)").is_empty());
    assert!(attrs(&mut anon, "", vec!["namingContexts"]).is_some());
    assert!(attrs(&mut anon, "cn=Subschema", vec!["objectClasses"]).is_some());
    assert_eq!(compare(&mut anon, &user("u1", EX), "uid", "u1"), 32);
    // An entry it may not see answers as a missing one, even by base-scope search.
    let res = anon
        .search(&user("u1", EX), Scope::Base, "(objectClass=*)", vec!["1.1"])
        .unwrap();
    assert_eq!((res.1.rc, res.1.matched.as_str()), (32, ""));
    // A missing entry's nearest ancestor is named only to those who may see it.
    let missing = user("nobody", EX);
    let res = anon
        .search(&missing, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .unwrap();
    assert_eq!((res.1.rc, res.1.matched.as_str()), (32, ""));
    let mut root0 = connect(&url, Some(ROOT_DN));
    let res = root0
        .search(&missing, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .unwrap();
    assert_eq!(res.1.rc, 32);
    assert_eq!(
        res.1.matched.to_ascii_lowercase(),
        "ou=users,dc=example,dc=com"
    );
    let mut u1 = connect(&url, Some(&user("u1", EX)));

    // A user reads its own entry (not its password) and nobody else's.
    let own = attrs(&mut u1, &user("u1", EX), vec!["*"]).unwrap();
    assert!(own.contains("mail") && own.contains("telephonenumber"));
    assert!(!own.contains("userpassword"));
    assert_eq!(
        dns(&mut u1, EX, "(objectClass=*)"),
        HashSet::from([user("u1", EX)])
    );
    assert!(attrs(&mut u1, &user("u2", EX), vec!["*"]).is_none());
    assert_eq!(compare(&mut u1, &user("u2", EX), "uid", "u2"), 32);
    assert_eq!(compare(&mut u1, &user("u1", EX), "uid", "u1"), 6);
    // It changes its own password, nothing else of its own, nothing of others.
    assert_eq!(modify(&mut u1, &user("u1", EX), "userPassword", PW), 0);
    assert_eq!(modify(&mut u1, &user("u1", EX), "cn", "me"), 50);
    // Entries it may not see are not there for it: the answer for a missing entry.
    assert_eq!(modify(&mut u1, &user("u2", EX), "userPassword", "x"), 32);
    assert_eq!(add_user(&mut u1, EX, "new1"), 50);
    assert_eq!(rc(u1.delete(&user("u2", EX))), 32);
    assert_eq!(rc(u1.delete(&user("nobody", EX))), 32);
    // A filter on what it may not search matches nothing (Undefined), even negated.
    assert!(dns(&mut u1, EX, "(userPassword=*)").is_empty());
    assert!(dns(&mut u1, EX, "(!(userPassword=x))").is_empty());

    // A service account reads what mail servers need, in every domain, and nothing else.
    let mut postfix = connect(&url, Some("cn=postfix,ou=services,dc=example,dc=com"));
    assert_eq!(
        dns(&mut postfix, OT, "(mail=u2@other.org)"),
        HashSet::from([user("u2", OT)])
    );
    let seen = attrs(&mut postfix, &user("u2", EX), vec!["*", "memberOf"]).unwrap();
    assert!(seen.contains("mail") && seen.contains("uid"), "{seen:?}");
    assert!(!seen.contains("telephonenumber") && !seen.contains("userpassword"));
    let admin_group = attrs(
        &mut postfix,
        "cn=admins,ou=groups,dc=example,dc=com",
        vec!["member"],
    )
    .unwrap();
    assert!(admin_group.contains("member"));
    assert_eq!(
        compare(&mut postfix, &user("u2", EX), "mail", "u2@example.com"),
        6
    );
    assert_eq!(
        compare(
            &mut postfix,
            &user("u2", EX),
            "telephoneNumber",
            "+1 555 0100"
        ),
        50
    );
    // Filters on attributes it may not search are Undefined; memberOf, direct and nested, is
    // searchable.
    assert!(dns(&mut postfix, EX, "(telephoneNumber=*)").is_empty());
    assert_eq!(
        dns(
            &mut postfix,
            EX,
            "(memberOf=cn=admins,ou=groups,dc=example,dc=com)"
        ),
        HashSet::from([
            user("admin", EX),
            "cn=helpdesk,ou=groups,dc=example,dc=com".into()
        ])
    );
    assert_eq!(
        dns(
            &mut postfix,
            EX,
            "(memberOf:1.2.840.113556.1.4.1941:=cn=admins,ou=groups,dc=example,dc=com)"
        ),
        HashSet::from([
            user("admin", EX),
            user("helper", EX),
            "cn=helpdesk,ou=groups,dc=example,dc=com".into()
        ])
    );
    // A service account of one domain reads that domain only.
    let mut local = connect(&url, Some("cn=postfix,ou=services,dc=other,dc=org"));
    assert!(dns(&mut local, EX, "(mail=*)").is_empty());
    assert!(!dns(&mut local, OT, "(mail=*)").is_empty());
    assert_eq!(
        modify(&mut postfix, &user("u2", EX), "mail", "x@example.com"),
        50
    );

    // A domain admin manages its domain (but for the global service accounts kept in it) and
    // cannot see or touch the other one.
    for admin in [user("admin", EX), user("helper", EX)] {
        let mut a = connect(&url, Some(&admin));
        let seen = dns(&mut a, EX, "(objectClass=*)");
        assert_eq!(
            seen,
            all_ex
                .iter()
                .filter(|d| !d.ends_with("ou=services,dc=example,dc=com"))
                .cloned()
                .collect(),
            "{admin}"
        );
        assert!(dns(&mut a, OT, "(objectClass=*)").is_empty(), "{admin}");
        let u2 = attrs(&mut a, &user("u2", EX), vec!["*"]).unwrap();
        assert!(
            u2.contains("telephonenumber") && !u2.contains("userpassword"),
            "{admin}: {u2:?}"
        );
        let name = format!(
            "new-{}",
            admin.split(',').next().unwrap().trim_start_matches("uid=")
        );
        assert_eq!(add_user(&mut a, EX, &name), 0, "{admin}");
        assert_eq!(modify(&mut a, &user(&name, EX), "cn", "Renamed"), 0);
        assert_eq!(
            modify(&mut a, &user(&name, EX), "userPassword", "Another-pw-2"),
            0
        );
        assert_eq!(rc(a.delete(&user(&name, EX))), 0);
        assert_eq!(add_user(&mut a, OT, &name), 50, "{admin}");
        assert_eq!(modify(&mut a, &user("u1", OT), "cn", "x"), 32, "{admin}");
        assert_eq!(rc(a.delete(&user("u2", OT))), 32, "{admin}");
        // Moving an entry out of the domain is refused.
        let moved = a
            .modifydn(
                &user("u2", EX),
                "uid=u2",
                true,
                Some("ou=users,dc=other,dc=org"),
            )
            .unwrap()
            .rc;
        assert_eq!(moved, 50, "{admin}");
    }
    // What gives rights across domains is not the domain admin's to change: the global admin
    // group (readable, not writable) and the global service accounts (not even visible).
    let mut admin = connect(&url, Some(&user("admin", EX)));
    let joined = admin
        .modify(
            "cn=roster-admins,ou=groups,dc=example,dc=com",
            vec![Mod::Add(
                "member",
                HashSet::from([user("admin", EX).as_str()]),
            )],
        )
        .unwrap()
        .rc;
    assert_eq!(joined, 50);
    assert_eq!(
        modify(
            &mut admin,
            "cn=postfix,ou=services,dc=example,dc=com",
            "userPassword",
            "Taken-over-1"
        ),
        32
    );
    assert_eq!(
        add_user(&mut admin, "ou=services,dc=example,dc=com", "rogue"),
        50
    );
    // Its password reset goes through ldappasswd as well.
    let (code, _, err) = run_tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            &user("admin", EX),
            "-w",
            PW,
            "-s",
            "Reset-pw-3",
            &user("u2", EX),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run_tool(
        "ldapwhoami",
        &["-x", "-H", &url, "-D", &user("u2", EX), "-w", "Reset-pw-3"],
    );
    assert_eq!(code, 0);

    // A global admin manages both domains (within the default size limit of 5: no [[limits]]
    // entry names it); nobody reads passwords, the root DN neither.
    let mut chief = connect(&url, Some("uid=chief,ou=users,dc=example,dc=com"));
    assert_eq!(add_user(&mut chief, OT, "from-chief"), 0);
    assert_eq!(modify(&mut chief, &user("u1", OT), "cn", "by chief"), 0);
    let res = chief
        .search(OT, Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .unwrap();
    assert_eq!(res.1.rc, 4, "sizeLimitExceeded for the global admin");
    assert_eq!(res.0.len(), 5);
    assert_eq!(dns(&mut chief, OT, "(uid=u1)").len(), 1);
    // The service account's [[limits]] entry lifts the limit.
    assert!(dns(&mut postfix, OT, "(objectClass=*)").len() > 5);
    let mut root = connect(&url, Some(ROOT_DN));
    assert!(!attrs(&mut root, &user("u1", OT), vec!["userPassword"])
        .unwrap()
        .contains("userpassword"));
    assert!(!attrs(&mut chief, &user("u1", OT), vec!["userPassword"])
        .unwrap()
        .contains("userpassword"));

    // Leaving the admin group takes the rights away at the next operation.
    let mut helper = connect(&url, Some(&user("helper", EX)));
    assert_eq!(add_user(&mut helper, EX, "before"), 0);
    let removed = root
        .modify(
            "cn=admins,ou=groups,dc=example,dc=com",
            vec![Mod::Delete(
                "member",
                HashSet::from(["cn=helpdesk,ou=groups,dc=example,dc=com"]),
            )],
        )
        .unwrap()
        .rc;
    assert_eq!(removed, 0);
    assert_eq!(add_user(&mut helper, EX, "after"), 50);
}

#[test]
fn a_python_ldap3_client_over_starttls_and_ldaps() {
    let config = config().replace("[log]", "[tls]\nlisten = \"127.0.0.1:0\"\n[log]");
    let server = Rosterd::start_with_config(Some(&ldif()), &config);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/ldap3_client.py");
    let port = server.addr.port().to_string();
    let ldaps = server.ldaps.unwrap().port().to_string();
    let ca = server.generated_ca().to_string_lossy().into_owned();
    // Debian's python3, which python3-ldap3 is installed for.
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["127.0.0.1", &port, &ldaps, &ca])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with("ok ")).count() >= 12,
        "{text}"
    );
}

/// What one client can do to one user entry, as a row of the matrix:
/// see it, read mail, read telephoneNumber, read userPassword, find it by a mail filter,
/// compare mail, write cn, write userPassword, and add (then delete) an entry in its domain.
fn abilities(c: &mut LdapConn, target: &str, domain: &str, who: &str) -> String {
    let mail = format!("u1@{}", domain.replace("dc=", "").replace(',', "."));
    let seen = attrs(c, target, vec!["*", "userPassword"]);
    let shows = |a: &str| seen.as_ref().is_some_and(|s| s.contains(a));
    let found = dns(c, domain, &format!("(mail={mail})")).contains(target);
    let compared = compare(c, target, "mail", &mail) == 6;
    let cn = modify(c, target, "cn", "u1") == 0;
    let pw = modify(c, target, "userPassword", PW) == 0;
    let tmp = format!("tmp-{}", who.replace(['=', ','], "-"));
    let added = add_user(c, domain, &tmp) == 0;
    if added {
        assert_eq!(
            rc(c.delete(&user(&tmp, domain))),
            0,
            "{who} deletes what it added"
        );
    }
    [
        seen.is_some(),
        shows("mail"),
        shows("telephonenumber"),
        shows("userpassword"),
        found,
        compared,
        cn,
        pw,
        added,
    ]
    .iter()
    .map(|b| if *b { '1' } else { '0' })
    .collect()
}

#[test]
fn the_mail_policy_access_matrix() {
    let server = Rosterd::start_with_config(Some(&ldif()), &config());
    let url = server.url();
    let t_ex = user("u1", EX);
    let t_ot = user("u1", OT);
    // Columns: see, mail, phone, password, filter, compare, write cn, write password, add.
    let rows: Vec<(&str, Option<String>, &str, &str)> = vec![
        ("anonymous", None, "000000000", "000000000"),
        ("self", Some(user("u1", EX)), "111011010", "000000000"),
        (
            "another user",
            Some(user("u2", EX)),
            "000000000",
            "000000000",
        ),
        (
            "global service account",
            Some("cn=postfix,ou=services,dc=example,dc=com".into()),
            "110011000",
            "110011000",
        ),
        (
            "one domain's service account",
            Some("cn=postfix,ou=services,dc=other,dc=org".into()),
            "000000000",
            "110011000",
        ),
        (
            "domain admin",
            Some(user("admin", EX)),
            "111011111",
            "000000000",
        ),
        (
            "nested domain admin",
            Some(user("helper", EX)),
            "111011111",
            "000000000",
        ),
        (
            "other domain's admin",
            Some(user("admin", OT)),
            "000000000",
            "111011111",
        ),
        (
            "global admin",
            Some("uid=chief,ou=users,dc=example,dc=com".into()),
            "111011111",
            "111011111",
        ),
        // Nobody reads a password over LDAP, not even the root DN (security.root_reads_passwords).
        ("root DN", Some(ROOT_DN.into()), "111011111", "111011111"),
    ];
    let mut wrong = Vec::new();
    for (name, who, want_ex, want_ot) in &rows {
        let mut c = connect(&url, who.as_deref());
        let tag = who.clone().unwrap_or_else(|| "anonymous".into());
        for (target, domain, want) in [(&t_ex, EX, want_ex), (&t_ot, OT, want_ot)] {
            let got = abilities(&mut c, target, domain, &tag);
            if &got != want {
                wrong.push(format!("{name} on {target}: got {got}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
