//! DN parsing and normalization: any string parses or is refused; a parsed DN prints to a DN
//! that parses to the same normalized form, and the normalized form reads back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster_schema::{Dn, Schema};
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    let schema = SCHEMA.get_or_init(Schema::builtin);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dn) = Dn::parse(text) else {
        return;
    };
    let printed = dn.to_string();
    let reparsed = Dn::parse(&printed).expect("a printed DN parses");
    if let Ok(norm) = dn.normalize(schema) {
        let again = reparsed.normalize(schema).expect("the printed DN normalizes");
        assert_eq!(norm, again, "{text:?} printed as {printed:?}");
        let back = roster_schema::NormDn::from_normalized(&norm.to_string());
        assert_eq!(norm, back, "reading back the normalized form of {text:?}");
        let _ = dn.pretty(schema);
    }
});
