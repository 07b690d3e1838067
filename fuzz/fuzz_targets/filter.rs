//! Filter parsing, compilation and evaluation: the string form of any bytes parses or is
//! refused; what parses compiles, prints back to a filter that parses again, and evaluates on
//! an entry without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster_schema::{Entry, Filter, Schema};
use std::sync::OnceLock;

fn fixture() -> &'static (Schema, Entry) {
    static F: OnceLock<(Schema, Entry)> = OnceLock::new();
    F.get_or_init(|| {
        let schema = Schema::builtin();
        let parts = vec![
            ("objectClass".to_string(), vec![b"inetOrgPerson".to_vec(), b"posixAccount".to_vec()]),
            ("uid".to_string(), vec![b"jdoe".to_vec()]),
            ("cn".to_string(), vec![b"John Doe".to_vec(), b"J. Doe".to_vec()]),
            ("cn;lang-de".to_string(), vec![b"Johann".to_vec()]),
            ("sn".to_string(), vec![b"Doe".to_vec()]),
            ("mail".to_string(), vec![b"jdoe@example.com".to_vec()]),
            ("uidNumber".to_string(), vec![b"1000".to_vec()]),
            ("gidNumber".to_string(), vec![b"100".to_vec()]),
            ("homeDirectory".to_string(), vec![b"/home/jdoe".to_vec()]),
            ("member".to_string(), vec![b"cn=x,dc=example,dc=com".to_vec()]),
            ("userPassword".to_string(), vec![b"{SSHA}abc".to_vec()]),
        ];
        let entry = Entry::from_parts(&schema, "uid=jdoe,ou=people,dc=example,dc=com", parts)
            .expect("fixture entry");
        (schema, entry)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (schema, entry) = fixture();
    if let Ok(f) = Filter::parse(text) {
        let printed = f.to_string();
        let again = Filter::parse(&printed).expect("a printed filter parses");
        assert_eq!(again, f, "print/parse round trip of {text:?} via {printed:?}");
        let compiled = f.compile(schema);
        let _ = compiled.evaluate(schema, entry);
        let _ = compiled.evaluate_with(schema, entry, &|a| a.index() % 2 == 0);
    }
});
