//! RFC 4512 descriptions of schema elements, in the form slapd publishes in cn=Subschema.
