//! The RFC 4512 schema elements as plain data. Names and OIDs are stored as written in the
//! definition; lookups by name are case-insensitive through [`crate::Schema`].

/// RFC 4512 section 4.1.2 attribute usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    #[default]
    UserApplications,
    DirectoryOperation,
    DistributedOperation,
    DsaOperation,
}

impl Usage {
    /// True for the three operational usages.
    pub fn is_operational(self) -> bool {
        !matches!(self, Usage::UserApplications)
    }

    /// The keyword as slapd publishes it (`dSAOperation`, not the RFC's `dsaOperation`).
    pub fn keyword(self) -> &'static str {
        match self {
            Usage::UserApplications => "userApplications",
            Usage::DirectoryOperation => "directoryOperation",
            Usage::DistributedOperation => "distributedOperation",
            Usage::DsaOperation => "dSAOperation",
        }
    }
}

/// RFC 4512 section 4.1.1 object class kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectClassKind {
    Abstract,
    #[default]
    Structural,
    Auxiliary,
}

impl ObjectClassKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectClassKind::Abstract => "ABSTRACT",
            ObjectClassKind::Structural => "STRUCTURAL",
            ObjectClassKind::Auxiliary => "AUXILIARY",
        }
    }
}

/// An attribute type definition (RFC 4512 section 4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttributeType {
    pub oid: String,
    pub names: Vec<String>,
    pub desc: Option<String>,
    pub obsolete: bool,
    pub sup: Option<String>,
    pub equality: Option<String>,
    pub ordering: Option<String>,
    pub substr: Option<String>,
    pub syntax: Option<String>,
    pub syntax_len: Option<u32>,
    pub single_value: bool,
    pub collective: bool,
    pub no_user_modification: bool,
    pub usage: Usage,
    /// `X-` extensions, kept so that they are published in `cn=Subschema` as defined.
    pub extensions: Vec<(String, Vec<String>)>,
}

impl AttributeType {
    /// The first name, or the OID when the type has no name: the form used in results.
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or(&self.oid)
    }
}

/// An object class definition (RFC 4512 section 4.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectClass {
    pub oid: String,
    pub names: Vec<String>,
    pub desc: Option<String>,
    pub obsolete: bool,
    pub sup: Vec<String>,
    pub kind: ObjectClassKind,
    pub must: Vec<String>,
    pub may: Vec<String>,
    pub extensions: Vec<(String, Vec<String>)>,
}

impl ObjectClass {
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or(&self.oid)
    }
}

/// A matching rule (RFC 4512 section 4.1.3). The behaviour is chosen by OID in `crate::rules`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatchingRule {
    pub oid: String,
    pub names: Vec<String>,
    pub desc: Option<String>,
    pub obsolete: bool,
    pub syntax: String,
}

impl MatchingRule {
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or(&self.oid)
    }
}

/// An LDAP syntax (RFC 4512 section 4.1.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Syntax {
    pub oid: String,
    pub desc: Option<String>,
    /// `X-NOT-HUMAN-READABLE 'TRUE'`: values are binary (RFC 2252 usage kept by OpenLDAP).
    pub not_human_readable: bool,
    /// Every `X-` extension as defined (including `X-NOT-HUMAN-READABLE` and
    /// `X-BINARY-TRANSFER-REQUIRED`), in order, so the published description matches slapd's.
    pub extensions: Vec<(String, Vec<String>)>,
}

impl Syntax {
    /// True when values must be transferred with the `;binary` option
    /// (`X-BINARY-TRANSFER-REQUIRED 'TRUE'`, certificates and the like).
    pub fn binary_transfer_required(&self) -> bool {
        self.extensions.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("X-BINARY-TRANSFER-REQUIRED")
                && v.first().is_some_and(|x| x.eq_ignore_ascii_case("TRUE"))
        })
    }
}
