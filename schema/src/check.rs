//! Entry checks against the schema (RFC 4512 object class rules), as slapd's schema_check.c.
