//! Generalized Time (RFC 4517) values for operational attributes (the calendar is the schema
//! crate's).

use std::time::{SystemTime, UNIX_EPOCH};

pub use roster_schema::time::generalized;

/// Now as `YYYYMMDDHHMMSSZ`.
pub fn generalized_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    generalized(secs)
}
