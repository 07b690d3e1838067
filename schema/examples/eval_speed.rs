//! Rough cost of evaluating typical mail-server filters against one entry.
//!
//!     cargo run --release -p roster-schema --example eval_speed
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use roster_schema::{Entry, Filter, Schema, TriState};

fn main() {
    let s = Schema::builtin();
    let mut parts: Vec<(String, Vec<Vec<u8>>)> = vec![
        (
            "objectClass".into(),
            vec![
                b"inetOrgPerson".to_vec(),
                b"inetLocalMailRecipient".to_vec(),
            ],
        ),
        ("uid".into(), vec![b"user0012345".to_vec()]),
        ("cn".into(), vec![b"User 0012345".to_vec()]),
        ("sn".into(), vec![b"Number 0012345".to_vec()]),
        ("mail".into(), vec![b"user0012345@example.com".to_vec()]),
        (
            "mailLocalAddress".into(),
            (0..5)
                .map(|i| format!("alias{i}@example.com").into_bytes())
                .collect(),
        ),
    ];
    parts.push(("description".into(), vec![b"a user".to_vec()]));
    let e = Entry::from_parts(&s, "uid=user0012345,ou=people,dc=example,dc=com", parts).unwrap();
    let members: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("uid=user{i:07},ou=people,dc=example,dc=com").into_bytes())
        .collect();
    let g = Entry::from_parts(
        &s,
        "cn=g,ou=groups,dc=example,dc=com",
        vec![
            ("objectClass".into(), vec![b"groupOfNames".to_vec()]),
            ("cn".into(), vec![b"g".to_vec()]),
            ("member".into(), members),
        ],
    )
    .unwrap();
    for (f, entry) in [
        ("(&(objectClass=inetOrgPerson)(|(mail=alias4@example.com)(mailLocalAddress=alias4@example.com)))", &e),
        ("(mail=user0012345@example.com)", &e),
        ("(cn=user*345)", &e),
        ("(member=uid=user0000999,ou=people,dc=example,dc=com)", &g),
    ] {
        let c = Filter::parse(f).unwrap().compile(&s);
        assert_eq!(c.evaluate(&s, entry), TriState::True, "{f}");
        let n = 100_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(c.evaluate(&s, entry));
        }
        println!("{f}: {:?} per evaluation", t.elapsed() / n);
    }
}
