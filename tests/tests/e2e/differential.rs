//! The differential test: the same directory in rosterd and in a stock OpenLDAP slapd, a few
//! hundred generated searches against both, and the same answers required of both.

use ldap3::{LdapConn, LdapError, Scope, SearchEntry, SearchOptions};
use roster_tests::data::{self, Rng};
use roster_tests::{Rosterd, Slapd, ROOT_DN, ROOT_PW, ROOT_READS_PASSWORDS};
use std::collections::BTreeMap;

/// One search of the generated workload.
#[derive(Debug, Clone)]
struct Query {
    base: String,
    scope: Scope,
    filter: String,
    attrs: Vec<String>,
    size_limit: i32,
    types_only: bool,
}

/// What a server answered, in a form that compares across servers.
#[derive(Debug, PartialEq)]
struct Answer {
    code: u32,
    matched: String,
    /// DN -> attribute name -> values.
    entries: Vec<(String, BTreeMap<String, Vec<String>>)>,
}

/// User attributes only: operational attributes (times, UUIDs) differ by construction.
const OPERATIONAL: &[&str] = &[
    "createtimestamp",
    "modifytimestamp",
    "creatorsname",
    "modifiersname",
    "entryuuid",
    "entrycsn",
    "structuralobjectclass",
    "entrydn",
    "subschemasubentry",
    "hassubordinates",
];

fn ask(conn: &mut LdapConn, q: &Query) -> Answer {
    let opts = SearchOptions::new()
        .sizelimit(q.size_limit)
        .typesonly(q.types_only);
    let attrs: Vec<&str> = q.attrs.iter().map(String::as_str).collect();
    let res = conn
        .with_search_options(opts)
        .search(&q.base, q.scope, &q.filter, attrs);
    match res {
        Ok(sr) => {
            let entries =
                sr.0.into_iter()
                    .map(|e| {
                        let se = SearchEntry::construct(e);
                        let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
                        for (k, mut v) in se.attrs {
                            if OPERATIONAL.contains(&k.to_lowercase().as_str()) {
                                continue;
                            }
                            v.sort();
                            attrs.insert(k, v);
                        }
                        for (k, v) in se.bin_attrs {
                            let mut v: Vec<String> = v.iter().map(|b| format!("{b:?}")).collect();
                            v.sort();
                            attrs.insert(k, v);
                        }
                        (se.dn, attrs)
                    })
                    .collect();
            Answer {
                code: sr.1.rc,
                matched: sr.1.matched,
                entries,
            }
        }
        Err(LdapError::LdapResult { result }) => Answer {
            code: result.rc,
            matched: result.matched,
            entries: Vec::new(),
        },
        Err(e) => panic!("search {q:?} failed on the client side: {e}"),
    }
}

/// Case and space variants of a value, as clients send them.
fn variants(rng: &mut Rng, v: &str) -> String {
    match rng.below(4) {
        0 => v.to_uppercase(),
        1 => v.to_lowercase(),
        2 => format!("  {}  ", v.replace(' ', "   ")),
        _ => v.to_string(),
    }
}

/// RFC 4515 escaping of an assertion value.
fn esc(v: &str) -> String {
    let mut s = String::new();
    for c in v.chars() {
        match c {
            '*' => s.push_str("\\2a"),
            '(' => s.push_str("\\28"),
            ')' => s.push_str("\\29"),
            '\\' => s.push_str("\\5c"),
            '\0' => s.push_str("\\00"),
            c => s.push(c),
        }
    }
    s
}

fn piece(rng: &mut Rng, v: &str) -> String {
    let chars: Vec<char> = v.chars().collect();
    if chars.len() < 2 {
        return v.to_string();
    }
    let a = rng.below(chars.len() - 1);
    let b = a + 1 + rng.below((chars.len() - a).min(5));
    chars[a..b.min(chars.len())].iter().collect()
}

fn simple_filter(rng: &mut Rng, d: &data::Directory) -> String {
    let u = rng.pick(&d.users);
    match rng.below(30) {
        0 => format!("(uid={})", variants(rng, &u.uid)),
        1 => format!("(cn={})", esc(&variants(rng, u.cn.trim()))),
        2 => format!("(sn={})", esc(&variants(rng, &u.sn))),
        3 => {
            let m = rng_pick_mail(rng, u).to_string();
            format!("(mail={})", variants(rng, &m))
        }
        4 => format!("(cn={}*)", esc(&variants(rng, &u.given))),
        5 => format!("(cn=*{}*)", esc(&piece(rng, &u.sn))),
        6 => format!("(mail=*{})", esc(&piece(rng, "@example.com"))),
        7 => format!("(mail={}*{}*com)", &u.uid[..2], piece(rng, &u.uid)),
        8 => format!(
            "(telephoneNumber={})",
            u.phone.clone().unwrap_or_else(|| "+49 30 0000007".into())
        ),
        9 => "(telephoneNumber=*30 00*)".to_string(),
        10 => format!("(uidNumber>={})", 1000 + rng.below(5000)),
        11 => format!("(uidNumber<={})", 1000 + rng.below(5000)),
        12 => format!("(uidNumber={})", u.uid_number.unwrap_or(1037)),
        13 => format!("(cn>={})", rng.pick(data::GIVEN)),
        14 => format!("(sn<={})", rng.pick(data::FAMILY)),
        15 => rng
            .pick(&[
                "(objectClass=*)",
                "(objectClass=person)",
                "(objectClass=inetOrgPerson)",
                "(objectclass=POSIXACCOUNT)",
                "(objectClass=organizationalUnit)",
                "(objectClass=2.5.6.6)",
                "(objectClass=groupOfNames)",
            ])
            .to_string(),
        16 => rng
            .pick(&[
                "(description=*)",
                "(employeeNumber=*)",
                "(uidNumber=*)",
                "(cn;lang-de=*)",
                "(name=*)",
                "(member=*)",
                "(createTimestamp=*)",
            ])
            .to_string(),
        17 => format!("(sn~={})", variants(rng, &u.sn)),
        18 => format!("(cn:caseExactMatch:={})", esc(u.cn.trim())),
        19 => rng
            .pick(&[
                "(ou:dn:=people)",
                "(ou:dn:=Special  Unit)",
                "(:dn:2.5.13.2:=deep)",
                "(ou:dn:caseIgnoreMatch:=PEOPLE)",
                "(:caseIgnoreMatch:=smith)",
                "(cn:2.5.13.5:=Multi)",
            ])
            .to_string(),
        20 => format!("(uidNumber:integerMatch:={})", u.uid_number.unwrap_or(1000)),
        21 => rng
            .pick(&[
                "(fooBar=x)",
                "(!(fooBar=x))",
                "(fooBar=*)",
                "(|(fooBar=x)(uid=u0001))",
                "(&(fooBar=x)(uid=u0001))",
                "(!(|(fooBar=x)(uid=u0001)))",
            ])
            .to_string(),
        22 => format!("(member={})", variants(rng, &u.dn)),
        23 => format!("(name={})", esc(&variants(rng, &u.sn))),
        24 => format!(
            "(departmentNumber={})",
            u.dept.clone().unwrap_or_else(|| "sales".into())
        ),
        25 => rng
            .pick(&[
                "(cn=Smith\\2c John)",
                "(cn=\\23hash + plus)",
                "(description=\\28parens\\29*)",
                "(description=*\\2astar\\2a*)",
                "(description=*back\\5cslash)",
                "(sn=spaced)",
                "(cn=ünïcødé ñame)",
                "(cn=*ÑAME)",
            ])
            .to_string(),
        26 => format!("(givenName={})", esc(&variants(rng, &u.given))),
        27 => format!("(employeeNumber={})", rng.below(1000)),
        28 => "(uidNumber>=abc)".to_string(),
        _ => format!(
            "(cn;lang-de={})",
            esc(&format!("{} {} (de)", u.given, u.sn))
        ),
    }
}

fn rng_pick_mail<'a>(rng: &mut Rng, u: &'a data::User) -> &'a str {
    &u.mail[rng.below(u.mail.len())]
}

fn filter(rng: &mut Rng, d: &data::Directory, depth: usize) -> String {
    if depth > 2 || rng.chance(55) {
        return simple_filter(rng, d);
    }
    let n = 1 + rng.below(3);
    let parts: String = (0..n).map(|_| filter(rng, d, depth + 1)).collect();
    match rng.below(3) {
        0 => format!("(&{parts})"),
        1 => format!("(|{parts})"),
        _ => format!("(!{})", filter(rng, d, depth + 1)),
    }
}

fn queries(d: &data::Directory, count: usize) -> Vec<Query> {
    let mut rng = Rng::new(4242);
    let bases = [
        "dc=example,dc=com",
        "ou=people,dc=example,dc=com",
        "OU=People, DC=Example,DC=COM",
        "ou=groups,dc=example,dc=com",
        "ou=Special  Unit,dc=example,dc=com",
        "ou=nowhere,dc=example,dc=com",
        "uid=nobody,ou=nowhere,ou=people,dc=example,dc=com",
        "dc=other,dc=org",
    ];
    let attr_lists: &[&[&str]] = &[
        &[],
        &["*"],
        &["cn", "mail"],
        &["1.1"],
        &["name"],
        &["CN", "2.5.4.4"],
        &["cn;lang-de"],
        &["objectClass", "uid", "member"],
        &["nonexistentAttr"],
    ];
    let mut out = Vec::new();
    for i in 0..count {
        let base = if rng.chance(15) {
            rng.pick(&d.dns).clone()
        } else {
            rng.pick(&bases).to_string()
        };
        let scope = match rng.below(6) {
            0 => Scope::Base,
            1 | 2 => Scope::OneLevel,
            _ => Scope::Subtree,
        };
        let size_limit = if rng.chance(10) {
            1 + rng.below(5) as i32
        } else {
            0
        };
        out.push(Query {
            base,
            scope,
            filter: if i % 7 == 0 {
                simple_filter(&mut rng, d)
            } else {
                filter(&mut rng, d, 0)
            },
            attrs: rng.pick(attr_lists).iter().map(|s| s.to_string()).collect(),
            size_limit,
            types_only: rng.chance(5),
        });
    }
    out
}

#[test]
fn searches_match_slapd() {
    let d = data::directory(150, 7);
    let slapd = Slapd::start(&d.ldif, "");
    let ours = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let mut a = LdapConn::new(&ours.url()).expect("connect to rosterd");
    let mut b = LdapConn::new(&slapd.url()).expect("connect to slapd");
    // As the administrator on both: nothing is hidden from it by either server, so every
    // filter kind compares (anonymous clients cannot test password hashes on either).
    a.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
    b.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
    let qs = queries(&d, 400);
    let mut failures = Vec::new();
    let mut nonempty = 0;
    for q in &qs {
        let mut ours = ask(&mut a, q);
        let mut theirs = ask(&mut b, q);
        if !theirs.entries.is_empty() {
            nonempty += 1;
        }
        // LDAP defines no order of results, and slapd's depends on how it walks its indexes, so
        // answers compare as sets. When a size limit cut the answer short, which entries made it
        // in depends on that order too: then both must return as many entries, each of them one
        // the unlimited search returns.
        ours.entries.sort_by(|x, y| x.0.cmp(&y.0));
        theirs.entries.sort_by(|x, y| x.0.cmp(&y.0));
        let same = if theirs.code == 4 && ours.code == 4 {
            let full = ask(
                &mut b,
                &Query {
                    size_limit: 0,
                    ..q.clone()
                },
            );
            ours.entries.len() == theirs.entries.len()
                && ours.entries.iter().all(|e| full.entries.contains(e))
        } else {
            ours == theirs
        };
        if !same {
            failures.push(format!("{q:?}\n  rosterd: {ours:?}\n  slapd:   {theirs:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} searches differ:\n{}",
        failures.len(),
        qs.len(),
        failures.join("\n\n")
    );
    // The workload must exercise real matches, not only empty answers.
    assert!(
        nonempty > qs.len() / 5,
        "only {nonempty} of {} searches found entries",
        qs.len()
    );
}

/// Splits `ldapsearch -LLL` output into entries (unwrapped), keeping user attributes only, and
/// sorts them, so two servers' answers compare as sets.
fn ldif_entries(text: &str) -> Vec<Vec<String>> {
    let mut entries: Vec<Vec<String>> = text
        .split("\n\n")
        .map(|block| {
            let mut lines: Vec<String> = block
                .lines()
                .filter(|l| !l.is_empty())
                .filter(|l| {
                    let name = l.split(':').next().unwrap_or("").to_lowercase();
                    !OPERATIONAL.contains(&name.as_str())
                })
                .map(str::to_string)
                .collect();
            // The DN stays first; attribute lines compare in any order.
            if lines.len() > 1 {
                lines[1..].sort();
            }
            lines
        })
        .filter(|l| !l.is_empty())
        .collect();
    entries.sort();
    entries
}

#[test]
fn ldapsearch_output_matches_slapd() {
    let d = data::directory(60, 19);
    let slapd = Slapd::start(&d.ldif, "");
    let ours = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    let cases: &[&[&str]] = &[
        &["-b", "dc=example,dc=com", "(objectClass=*)"],
        &["-b", "dc=example,dc=com", "(cn=*smith*)", "cn", "mail"],
        &[
            "-b",
            "ou=people,dc=example,dc=com",
            "-s",
            "one",
            "(|(sn=Lee)(givenName=Anna))",
        ],
        &[
            "-b",
            "dc=example,dc=com",
            "(&(objectClass=inetOrgPerson)(!(mail=*@example.com)))",
            "*",
        ],
        &["-b", "dc=example,dc=com", "(member=*)", "member"],
        &["-b", "dc=example,dc=com", "-z", "3", "(uid=*)", "1.1"],
        &[
            "-b",
            "ou=Special  Unit,dc=example,dc=com",
            "(cn=*)",
            "cn",
            "sn",
            "description",
        ],
        &[
            "-b",
            "cn=Smith\\2C John,ou=Special  Unit,dc=example,dc=com",
            "-s",
            "base",
            "(objectClass=*)",
        ],
        &[
            "-b",
            "dc=example,dc=com",
            "-A",
            "(uidNumber>=3000)",
            "uidNumber",
        ],
        &["-b", "dc=example,dc=com", "(description=*\\2astar\\2a*)"],
        &["-b", "ou=missing,dc=example,dc=com", "(objectClass=*)"],
        &[
            "-b",
            "dc=example,dc=com",
            "(telephoneNumber=+49 30 *)",
            "telephoneNumber",
        ],
        &["-b", "ou=groups,dc=example,dc=com", "(&)", "@groupOfNames"],
        &["-b", "dc=example,dc=com", "(|)"],
        &[
            "-b",
            "ou=people,dc=example,dc=com",
            "(uid=u000*)",
            "@person",
            "mail",
        ],
    ];
    let mut compared = 0;
    for args in cases {
        let run = |url: &str| {
            let mut full = vec!["-x", "-LLL", "-o", "ldif-wrap=no", "-H", url];
            full.extend_from_slice(args);
            roster_tests::run_tool("ldapsearch", &full)
        };
        let (code_a, out_a, err_a) = run(&ours.url());
        let (code_b, out_b, err_b) = run(&slapd.url());
        assert_eq!(
            code_a, code_b,
            "exit codes differ for {args:?}: rosterd {err_a} / slapd {err_b}"
        );
        if code_b == 4 {
            assert_eq!(
                ldif_entries(&out_a).len(),
                ldif_entries(&out_b).len(),
                "{args:?}"
            );
        } else {
            assert_eq!(ldif_entries(&out_a), ldif_entries(&out_b), "{args:?}");
        }
        // matchedDN and diagnostics are printed on stderr; compare the matched DN line.
        let matched = |e: &str| {
            e.lines()
                .find(|l| l.contains("Matched DN"))
                .map(str::to_string)
        };
        assert_eq!(matched(&err_a), matched(&err_b), "{args:?}");
        compared += ldif_entries(&out_b).len();
    }
    assert!(compared > 100, "only {compared} entries compared");
}

#[test]
fn default_size_limit_matches_slapd_for_anonymous_clients() {
    let d = data::directory(620, 23);
    let slapd = Slapd::start(&d.ldif, "");
    let ours = Rosterd::start(Some(&d.ldif), ROOT_READS_PASSWORDS);
    for extra in [&[][..], &["-E", "pr=100/noprompt"][..]] {
        let run = |url: &str| {
            let mut args = vec!["-x", "-LLL", "-H", url, "-b", "ou=people,dc=example,dc=com"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["(uid=*)", "1.1"]);
            let (code, out, _) = roster_tests::run_tool("ldapsearch", &args);
            (code, out.lines().filter(|l| l.starts_with("dn:")).count())
        };
        let (a, b) = (run(&ours.url()), run(&slapd.url()));
        assert_eq!(a, b, "rosterd vs slapd with {extra:?}");
        assert_eq!(b, (4, 500), "slapd's default limit with {extra:?}");
    }
}
