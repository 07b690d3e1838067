//! Access control: who may do what to which entries and attributes.
//!
//! A policy is an ordered list of rules, evaluated as OpenLDAP's access directives are: for an
//! entry (and one of its attributes, or the entry itself), the first rule whose target matches
//! decides; within it, the first subject clause matching the client gives the rights; nothing
//! matching means no rights. The root DN is not subject to the policy.
//!
//! - Targets: a base DN and scope, an optional filter, an optional attribute list (`entry` names
//!   the entry itself: seeing it in a search, adding, deleting it).
//! - Subjects: `*`, `anonymous`, `users` (any authenticated client), `self`, `dn:<DN>`,
//!   `subtree:<DN>`, `group:<DN>` (members, directly or through nested groups).
//! - DNs in targets and subjects may end in `{suffix}`, the naming context (mail domain) of the
//!   entry at hand, or `{any}`, any naming context served: `group:cn=admins,ou=groups,{suffix}`
//!   is the admin group of the entry's own domain.
//! - Rights: levels as in slapd, each including the ones before it (`none`, `auth`, `compare`,
//!   `search`, `read`, `write`) and `manage` (all, with adding and deleting entries), or an exact
//!   set after `=` of the letters `x` auth, `c` compare, `s` search, `r` read, `w` write, `a`
//!   add, `d` delete (`=xw`: bind with and change a password, never read it). Several may be
//!   joined with commas.
//!
//! The built-in `mail` policy (see [`mail_rules`]) fits the mail directory: domain admins
//! manage their domain, global admins all domains, service accounts read what mail servers
//! need, users read their own entry and change their own password, nobody reads a password.

use crate::identity::Identity;
use crate::naming::{Contexts, NamingContexts};
use roster_schema::dn::NormDn;
use roster_schema::{AttrId, CompiledFilter, Dn, Entry, Filter, Schema, TriState};
use roster_storage::Reader;
use serde::Deserialize;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::sync::Arc;

/// A set of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights(u8);

impl Rights {
    pub const NONE: Rights = Rights(0);
    pub const AUTH: Rights = Rights(1);
    pub const COMPARE: Rights = Rights(2);
    pub const SEARCH: Rights = Rights(4);
    pub const READ: Rights = Rights(8);
    pub const WRITE: Rights = Rights(16);
    pub const ADD: Rights = Rights(32);
    pub const DELETE: Rights = Rights(64);
    pub const ALL: Rights = Rights(127);

    pub fn has(self, r: Rights) -> bool {
        self.0 & r.0 == r.0
    }

    fn union(self, r: Rights) -> Rights {
        Rights(self.0 | r.0)
    }

    /// Parses `read`, `=xw`, `read,add` and the like.
    pub fn parse(text: &str) -> Result<Rights, String> {
        let mut out = Rights::NONE;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let r = match word.to_ascii_lowercase().as_str() {
                "none" => Rights::NONE,
                "auth" => Rights::AUTH,
                "compare" => Rights(1 | 2),
                "search" => Rights(1 | 2 | 4),
                "read" => Rights(1 | 2 | 4 | 8),
                "write" => Rights(1 | 2 | 4 | 8 | 16),
                "manage" => Rights::ALL,
                w if w.starts_with('=') => {
                    let mut r = Rights::NONE;
                    for c in w.chars().skip(1) {
                        r = r.union(match c {
                            'x' => Rights::AUTH,
                            'c' => Rights::COMPARE,
                            's' => Rights::SEARCH,
                            'r' => Rights::READ,
                            'w' => Rights::WRITE,
                            'a' => Rights::ADD,
                            'd' => Rights::DELETE,
                            other => {
                                return Err(format!(
                                    "unknown right {other:?} in {word:?} (letters: x c s r w a d)"
                                ))
                            }
                        });
                    }
                    r
                }
                other => {
                    return Err(format!(
                        "unknown rights {other:?} (none, auth, compare, search, read, write, manage, or =letters)"
                    ))
                }
            };
            out = out.union(r);
        }
        Ok(out)
    }
}

/// A rule as written in the configuration (`[[access.rule]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The base of the entries the rule is about; `{any}` (every naming context) by default.
    #[serde(default = "any_base")]
    pub base: String,
    /// `subtree` (the default), `base`, `one` or `children`.
    #[serde(default = "subtree")]
    pub scope: String,
    /// Only entries matching this filter.
    #[serde(default)]
    pub filter: Option<String>,
    /// Only these attributes (`entry`: the entry itself); all when absent.
    #[serde(default)]
    pub attrs: Option<Vec<String>>,
    /// Who gets which rights, first match wins.
    pub by: Vec<GrantSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    pub who: String,
    pub rights: String,
}

fn any_base() -> String {
    "{any}".into()
}

fn subtree() -> String {
    "subtree".into()
}

/// The names the built-in mail policy is written in terms of (`[access]`).
#[derive(Debug, Clone)]
pub struct MailPolicy {
    /// Members of this group manage every domain.
    pub global_admins: Option<String>,
    /// The admin group of each domain.
    pub domain_admins: String,
    /// Where service accounts live; with `{suffix}` each reads its own domain.
    pub services: String,
    /// Where service accounts that read every domain live (managed by global admins only).
    pub global_services: Option<String>,
    /// What service accounts may read.
    pub service_attributes: Vec<String>,
}

/// The rules of the built-in mail policy, after any custom rules.
pub fn mail_rules(p: &MailPolicy) -> Vec<RuleSpec> {
    let grant = |who: &str, rights: &str| GrantSpec {
        who: who.to_string(),
        rights: rights.to_string(),
    };
    let domain = format!("group:{}", p.domain_admins);
    let global = p.global_admins.as_ref().map(|g| format!("group:{g}"));
    // Domain admins: the admin group of the domain, the users whose role is admin and the
    // members of groups whose right is admin, in their own domain only.
    let admins = |rights: &str| {
        let mut v = vec![grant(&domain, rights), grant("rights:admin", rights)];
        if let Some(g) = &global {
            v.push(grant(g, rights));
        }
        v
    };
    let services = format!("subtree:{}", p.services);
    let mut password = admins("=xw");
    password.insert(0, grant("self", "=xw"));
    password.push(grant("anonymous", "=x"));
    let mut mail_attrs = admins("manage");
    mail_attrs.push(grant("rights:read", "read"));
    mail_attrs.push(grant("self", "read"));
    mail_attrs.push(grant(&services, "read"));
    if let Some(gs) = &p.global_services {
        mail_attrs.push(grant(&format!("subtree:{gs}"), "read"));
    }
    let mut rest = admins("manage");
    rest.push(grant("rights:read", "read"));
    rest.push(grant("self", "read"));
    let mut service_attrs = p.service_attributes.clone();
    service_attrs.push("entry".into());
    let mut rules = Vec::new();
    // What gives rights across domains is managed by global admins only: a domain admin whose
    // domain holds the global admin group or the global service accounts may not add itself
    // or reset their passwords.
    let only_global =
        |base: &str, scope: &str, attrs: Option<Vec<String>>, by: Vec<GrantSpec>| RuleSpec {
            base: base.to_string(),
            scope: scope.to_string(),
            filter: None,
            attrs,
            by,
        };
    if let Some(g) = &p.global_admins {
        let mut by = vec![grant(&format!("group:{g}"), "manage")];
        by.push(grant(&domain, "read"));
        rules.push(only_global(g, "base", None, by));
    }
    if let Some(gs) = &p.global_services {
        let mut pw = Vec::new();
        let mut all = Vec::new();
        if let Some(g) = &global {
            pw.push(grant(g, "=xw"));
            all.push(grant(g, "manage"));
        }
        pw.push(grant("self", "=xw"));
        pw.push(grant("anonymous", "=x"));
        all.push(grant("self", "read"));
        rules.push(only_global(
            gs,
            "subtree",
            Some(vec!["userPassword".into()]),
            pw,
        ));
        rules.push(only_global(gs, "subtree", None, all));
    }
    rules.extend([
        RuleSpec {
            base: any_base(),
            scope: subtree(),
            filter: None,
            attrs: Some(vec!["userPassword".into()]),
            by: password,
        },
        RuleSpec {
            base: any_base(),
            scope: subtree(),
            filter: None,
            attrs: Some(service_attrs),
            by: mail_attrs,
        },
        RuleSpec {
            base: any_base(),
            scope: subtree(),
            filter: None,
            attrs: None,
            by: rest,
        },
    ]);
    rules
}

/// What mail servers read (Postfix and Dovecot lookups, group expansion).
pub fn default_service_attributes() -> Vec<String> {
    [
        "objectClass",
        "uid",
        "cn",
        "mail",
        "mailLocalAddress",
        "mailRoutingAddress",
        "mailHost",
        "member",
        "memberOf",
        "uidNumber",
        "gidNumber",
        "homeDirectory",
        "entryUUID",
        "associatedDomain",
        "rosterAccountDisabled",
        "rosterService",
        "rosterMailboxEnabled",
        "rosterMailQuota",
        "rosterForwardingAddress",
        "rosterGroupKind",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Where a DN pattern ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tail {
    /// The DN is complete.
    Fixed,
    /// `{suffix}`: the naming context of the entry at hand.
    Suffix,
    /// `{any}`: any naming context served.
    Any,
}

/// A DN, possibly relative to a naming context.
#[derive(Debug, Clone)]
struct DnPattern {
    /// The normalized RDNs before the tail, leftmost first.
    head: Vec<String>,
    tail: Tail,
}

impl DnPattern {
    fn parse(schema: &Schema, text: &str) -> Result<DnPattern, String> {
        let text = text.trim();
        let (head, tail) = if let Some(h) = strip_tail(text, "{suffix}") {
            (h, Tail::Suffix)
        } else if let Some(h) = strip_tail(text, "{any}") {
            (h, Tail::Any)
        } else {
            (text, Tail::Fixed)
        };
        let head = if head.is_empty() {
            Vec::new()
        } else {
            Dn::parse(head)
                .and_then(|d| d.normalize(schema))
                .map_err(|e| format!("{text:?}: {e}"))?
                .rdns
        };
        Ok(DnPattern { head, tail })
    }

    /// How many RDNs `ndn` lies below a DN this pattern names for an entry in naming context
    /// `suffix` (0: it is that DN); `None` when it is below none of them. Nothing is allocated:
    /// this runs for every entry a search returns.
    fn depth_below(&self, ndn: &NormDn, suffix: Option<&NormDn>, all: &[NormDn]) -> Option<usize> {
        let below = |tail: &[String]| -> Option<usize> {
            let rdns = ndn.rdns.as_slice();
            let rest = rdns.strip_suffix(tail)?;
            let above = rest.strip_suffix(self.head.as_slice())?;
            Some(above.len())
        };
        match self.tail {
            Tail::Fixed => below(&[]),
            Tail::Suffix => suffix.and_then(|s| below(&s.rdns)),
            Tail::Any => all.iter().find_map(|s| below(&s.rdns)),
        }
    }

    /// The concrete DNs this pattern names for an entry in naming context `suffix`.
    fn concrete<'a>(
        &'a self,
        suffix: Option<&'a NormDn>,
        all: &'a [NormDn],
    ) -> impl Iterator<Item = NormDn> + 'a {
        let tails: Vec<&NormDn> = match self.tail {
            Tail::Fixed => Vec::new(),
            Tail::Suffix => suffix.into_iter().collect(),
            Tail::Any => all.iter().collect(),
        };
        let fixed = (self.tail == Tail::Fixed).then(|| NormDn {
            rdns: self.head.clone(),
        });
        fixed.into_iter().chain(tails.into_iter().map(|t| {
            let mut rdns = self.head.clone();
            rdns.extend(t.rdns.iter().cloned());
            NormDn { rdns }
        }))
    }
}

/// `text` without `tail` and the comma before it.
fn strip_tail<'a>(text: &'a str, tail: &str) -> Option<&'a str> {
    let head = text.strip_suffix(tail)?;
    Some(head.trim_end().strip_suffix(',').unwrap_or(head).trim_end())
}

#[derive(Debug, Clone)]
enum Subject {
    Anyone,
    Anonymous,
    Users,
    SelfEntry,
    Dn(DnPattern),
    Subtree(DnPattern),
    Group(DnPattern),
    /// `rights:admin` / `rights:read`: in the entry's naming context, a user whose
    /// `rosterRole` is admin (for `admin`), or a member, directly or not, of a group of that
    /// naming context whose `rosterGroupRight` gives at least this right.
    DomainRight(DomainRight),
}

/// What a group (or a user's role) gives in its own naming context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DomainRight {
    Read,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleScope {
    Base,
    One,
    Subtree,
    Children,
}

#[derive(Debug, Clone)]
enum AttrSel {
    Entry,
    Attr(AttrId),
}

#[derive(Debug, Clone)]
struct Rule {
    base: DnPattern,
    scope: RuleScope,
    filter: Option<CompiledFilter>,
    attrs: Option<Vec<AttrSel>>,
    by: Vec<(Subject, Rights)>,
}

/// A compiled access policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// The naming contexts served, which domains created at run time join.
    naming: Arc<NamingContexts>,
    /// Attribute types the root DN may use in every way but read (passwords, unless
    /// `security.root_reads_passwords`): the root DN is otherwise above the rules.
    root_unreadable: Vec<AttrId>,
    /// Replication consumers' identities (`access.replicators`): they read and search every
    /// entry and attribute, password hashes included, and may do nothing else.
    replicators: Vec<NormDn>,
}

impl Policy {
    /// Compiles `specs` for `schema`, with `naming` the naming contexts served. Errors name
    /// the rule (counting from 1) and what is wrong in it.
    pub fn compile(
        schema: &Schema,
        naming: Arc<NamingContexts>,
        specs: &[RuleSpec],
    ) -> Result<Policy, String> {
        let mut rules = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let at = |e: String| format!("access rule {}: {e}", i + 1);
            let base = DnPattern::parse(schema, &spec.base).map_err(at)?;
            let scope = match spec.scope.to_ascii_lowercase().as_str() {
                "base" => RuleScope::Base,
                "one" | "onelevel" => RuleScope::One,
                "sub" | "subtree" => RuleScope::Subtree,
                "children" => RuleScope::Children,
                other => return Err(at(format!("unknown scope {other:?}"))),
            };
            let filter = match &spec.filter {
                Some(f) => Some(
                    Filter::parse(f)
                        .map_err(|e| at(format!("filter {f:?}: {e}")))?
                        .compile(schema),
                ),
                None => None,
            };
            let attrs = match &spec.attrs {
                Some(list) => {
                    let mut out = Vec::new();
                    for a in list {
                        if a.eq_ignore_ascii_case("entry") {
                            out.push(AttrSel::Entry);
                        } else {
                            let id = schema
                                .attr_id(a)
                                .ok_or_else(|| at(format!("unknown attribute type {a:?}")))?;
                            out.push(AttrSel::Attr(id));
                        }
                    }
                    Some(out)
                }
                None => None,
            };
            let mut by = Vec::new();
            for g in &spec.by {
                let rights = Rights::parse(&g.rights).map_err(at)?;
                by.push((parse_subject(schema, &g.who).map_err(at)?, rights));
            }
            rules.push(Rule {
                base,
                scope,
                filter,
                attrs,
                by,
            });
        }
        Ok(Policy {
            rules,
            naming,
            root_unreadable: Vec::new(),
            replicators: Vec::new(),
        })
    }

    /// Keeps `attrs` (and their subtypes) from being read or searched by the root DN (in a
    /// filter they are Undefined for it, as for everyone); it may still compare and write them.
    pub fn hide_from_root(mut self, attrs: Vec<AttrId>) -> Policy {
        self.root_unreadable = attrs;
        self
    }

    /// Lets `dns` read every entry and attribute (replication consumers); see
    /// `access.replicators`.
    pub fn with_replicators(mut self, dns: Vec<NormDn>) -> Policy {
        self.replicators = dns;
        self
    }

    /// True if `dn` is one of `access.replicators`.
    pub fn is_replicator(&self, dn: &NormDn) -> bool {
        self.replicators.contains(dn)
    }

    /// True if the root DN is kept from reading some attribute, so its search filters must be
    /// evaluated under access control too.
    pub fn hides_from_root(&self) -> bool {
        !self.root_unreadable.is_empty()
    }

    /// The access `req` has to `entry`: ask it for the entry itself or any attribute.
    pub fn for_entry<'p, 'r>(
        &'p self,
        schema: &'p Schema,
        req: &'r Requester<'r>,
        entry: &'p Entry,
    ) -> EntryAccess<'p, 'r> {
        let all = self.naming.current();
        let suffix = all
            .list
            .iter()
            .enumerate()
            .filter(|(_, s)| entry.ndn.is_within(s))
            .max_by_key(|(_, s)| s.rdns.len())
            .map(|(i, _)| i);
        let rules = if req.is_root() {
            Vec::new()
        } else {
            let suffix_dn = suffix.and_then(|i| all.list.get(i));
            self.rules
                .iter()
                .filter(|r| self.targets(schema, r, entry, suffix_dn, &all.list))
                .collect()
        };
        EntryAccess {
            policy: self,
            schema,
            req,
            entry,
            suffix,
            all,
            rules,
        }
    }

    fn targets(
        &self,
        schema: &Schema,
        rule: &Rule,
        entry: &Entry,
        suffix: Option<&NormDn>,
        all: &[NormDn],
    ) -> bool {
        let depth = rule.base.depth_below(&entry.ndn, suffix, all);
        let in_scope = match (rule.scope, depth) {
            (_, None) => false,
            (RuleScope::Base, Some(d)) => d == 0,
            (RuleScope::One, Some(d)) => d == 1,
            (RuleScope::Subtree, Some(_)) => true,
            (RuleScope::Children, Some(d)) => d >= 1,
        };
        in_scope
            && rule
                .filter
                .as_ref()
                .is_none_or(|f| f.evaluate(schema, entry) == TriState::True)
    }
}

fn parse_subject(schema: &Schema, who: &str) -> Result<Subject, String> {
    let who = who.trim();
    Ok(match who.to_ascii_lowercase().as_str() {
        "*" => Subject::Anyone,
        "anonymous" => Subject::Anonymous,
        "users" => Subject::Users,
        "self" => Subject::SelfEntry,
        "rights:admin" => Subject::DomainRight(DomainRight::Admin),
        "rights:read" => Subject::DomainRight(DomainRight::Read),
        _ => {
            let (kind, dn) = who.split_once(':').ok_or_else(|| {
                format!(
                    "unknown subject {who:?} (*, anonymous, users, self, dn:, subtree:, group:, rights:admin, rights:read)"
                )
            })?;
            let dn = DnPattern::parse(schema, dn)?;
            match kind.trim().to_ascii_lowercase().as_str() {
                "dn" => Subject::Dn(dn),
                "subtree" => Subject::Subtree(dn),
                "group" => Subject::Group(dn),
                other => {
                    return Err(format!(
                        "unknown subject kind {other:?} (dn, subtree, group, rights)"
                    ))
                }
            }
        }
    })
}

/// A subject standing alone (`[[limits]]`): matched against the client only, so `self` never
/// matches and `{suffix}` means any naming context.
#[derive(Debug, Clone)]
pub struct Who {
    subject: Subject,
    naming: Arc<NamingContexts>,
}

impl Who {
    pub fn parse(schema: &Schema, naming: Arc<NamingContexts>, text: &str) -> Result<Who, String> {
        Ok(Who {
            subject: parse_subject(schema, text)?,
            naming,
        })
    }

    pub fn matches(&self, req: &Requester<'_>) -> bool {
        let all = self.naming.current();
        let any = |p: &DnPattern| -> Vec<NormDn> {
            let mut p = p.clone();
            if p.tail == Tail::Suffix {
                p.tail = Tail::Any;
            }
            p.concrete(None, &all.list).collect()
        };
        match &self.subject {
            Subject::Anyone => true,
            Subject::Anonymous => matches!(req.who, Identity::Anonymous),
            Subject::Users => !matches!(req.who, Identity::Anonymous),
            Subject::SelfEntry => false,
            Subject::Dn(p) => req.ndn().is_some_and(|me| any(p).iter().any(|d| d == me)),
            Subject::Subtree(p) => req
                .ndn()
                .is_some_and(|me| any(p).iter().any(|d| me.is_within(d))),
            Subject::Group(p) => {
                req.ndn().is_some() && any(p).iter().any(|g| req.groups().contains(g))
            }
            Subject::DomainRight(r) => req
                .domain_rights(&all.list)
                .iter()
                .any(|(_, have)| have >= r),
        }
    }
}

/// The client an access decision is about, with its groups read once per operation.
pub struct Requester<'a> {
    who: &'a Identity,
    reader: &'a Reader,
    groups: OnceCell<HashSet<NormDn>>,
    /// The rights the client's role and groups give it, by naming context.
    domain_rights: OnceCell<Vec<(NormDn, DomainRight)>>,
}

impl<'a> Requester<'a> {
    pub fn new(who: &'a Identity, reader: &'a Reader) -> Requester<'a> {
        Requester {
            who,
            reader,
            groups: OnceCell::new(),
            domain_rights: OnceCell::new(),
        }
    }

    /// What the client's `rosterRole` and its groups' `rosterGroupRight` give it, per naming
    /// context of `suffixes` (read once per operation; a store failure gives nothing).
    fn domain_rights(&self, suffixes: &[NormDn]) -> &[(NormDn, DomainRight)] {
        self.domain_rights.get_or_init(|| {
            let Some(me) = self.ndn() else {
                return Vec::new();
            };
            let schema = self.reader.schema();
            let suffix_of = |ndn: &NormDn| {
                suffixes
                    .iter()
                    .filter(|s| ndn.is_within(s))
                    .max_by_key(|s| s.rdns.len())
                    .cloned()
            };
            let value = |e: &Entry, attr: &str| -> Option<String> {
                let id = schema.attr_id(attr)?;
                e.values_of(id)
                    .next()
                    .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
            };
            let mut out = Vec::new();
            let read = |ndn: &NormDn, attr: &str| -> Option<(NormDn, DomainRight)> {
                let suffix = suffix_of(ndn)?;
                let entry = match self.reader.entry_by_dn(ndn) {
                    Ok(Some((_, e))) => e,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::error!(error = %e, "reading roles and group rights for access control");
                        return None;
                    }
                };
                let right = match value(&entry, attr)?.as_str() {
                    "admin" => DomainRight::Admin,
                    "read" if attr == "rosterGroupRight" => DomainRight::Read,
                    _ => return None,
                };
                Some((suffix, right))
            };
            if let Some(r) = read(me, "rosterRole") {
                out.push(r);
            }
            for g in self.groups() {
                if let Some(r) = read(g, "rosterGroupRight") {
                    out.push(r);
                }
            }
            out
        })
    }

    pub fn is_root(&self) -> bool {
        self.who.is_root()
    }

    pub fn identity(&self) -> &Identity {
        self.who
    }

    /// True if the client belongs to `group`, directly or through nested groups.
    pub fn is_member_of(&self, group: &NormDn) -> bool {
        self.ndn().is_some() && self.groups().contains(group)
    }

    fn ndn(&self) -> Option<&NormDn> {
        match self.who {
            Identity::Entry { ndn, .. } => Some(ndn),
            _ => None,
        }
    }

    /// The groups the client belongs to, directly or not (empty for anonymous clients and on
    /// a store failure, which is logged: a failure denies rather than grants).
    fn groups(&self) -> &HashSet<NormDn> {
        self.groups.get_or_init(|| {
            let Some(ndn) = self.ndn() else {
                return HashSet::new();
            };
            match self.reader.member_of_transitive(ndn) {
                Ok(groups) => groups
                    .into_iter()
                    .filter_map(|d| d.normalize(self.reader.schema()).ok())
                    .collect(),
                Err(e) => {
                    tracing::error!(error = %e, "reading group memberships for access control");
                    HashSet::new()
                }
            }
        })
    }
}

/// The access one client has to one entry.
pub struct EntryAccess<'p, 'r> {
    policy: &'p Policy,
    schema: &'p Schema,
    req: &'r Requester<'r>,
    entry: &'p Entry,
    /// The entry's naming context, in `all`.
    suffix: Option<usize>,
    /// The naming contexts when the access was asked for.
    all: Arc<Contexts>,
    /// The rules whose base, scope and filter match the entry, in order.
    rules: Vec<&'p Rule>,
}

impl EntryAccess<'_, '_> {
    /// The rights to the entry itself (`attr` `None`) or to one attribute type.
    pub fn rights(&self, attr: Option<AttrId>) -> Rights {
        if self.req.is_root() {
            let hidden = attr.is_some_and(|id| {
                self.policy
                    .root_unreadable
                    .iter()
                    .any(|&h| self.schema.is_subtype_of(id, h))
            });
            // Searching by a hidden value would give it away a bit at a time (ordering
            // matches): the root DN compares it, and neither reads nor searches it.
            return if hidden {
                Rights(Rights::ALL.0 & !Rights::READ.0 & !Rights::SEARCH.0)
            } else {
                Rights::ALL
            };
        }
        if self
            .req
            .ndn()
            .is_some_and(|me| self.policy.replicators.contains(me))
        {
            return Rights(Rights::READ.0 | Rights::SEARCH.0 | Rights::COMPARE.0);
        }
        let rule = self.rules.iter().find(|r| match (&r.attrs, attr) {
            (None, _) => true,
            (Some(list), None) => list.iter().any(|a| matches!(a, AttrSel::Entry)),
            (Some(list), Some(id)) => list.iter().any(|a| match a {
                AttrSel::Attr(t) => self.schema.is_subtype_of(id, *t),
                AttrSel::Entry => false,
            }),
        });
        let Some(rule) = rule else {
            return Rights::NONE;
        };
        rule.by
            .iter()
            .find(|(s, _)| self.subject_matches(s))
            .map_or(Rights::NONE, |(_, r)| *r)
    }

    pub fn allows(&self, attr: Option<AttrId>, right: Rights) -> bool {
        self.rights(attr).has(right)
    }

    fn subject_matches(&self, s: &Subject) -> bool {
        let all = &self.all.list;
        let suffix = self.suffix.and_then(|i| all.get(i));
        match s {
            Subject::Anyone => true,
            Subject::Anonymous => matches!(self.req.who, Identity::Anonymous),
            Subject::Users => !matches!(self.req.who, Identity::Anonymous),
            Subject::SelfEntry => self.req.ndn() == Some(&self.entry.ndn),
            Subject::Dn(p) => self
                .req
                .ndn()
                .is_some_and(|me| p.depth_below(me, suffix, all) == Some(0)),
            Subject::Subtree(p) => self
                .req
                .ndn()
                .is_some_and(|me| p.depth_below(me, suffix, all).is_some()),
            Subject::Group(p) => {
                self.req.ndn().is_some()
                    && !self.req.groups().is_empty()
                    && p.concrete(suffix, all)
                        .any(|g| self.req.groups().contains(&g))
            }
            Subject::DomainRight(want) => suffix.is_some_and(|suffix| {
                self.req
                    .domain_rights(all)
                    .iter()
                    .any(|(s, have)| s == suffix && have >= want)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_parse_as_levels_and_sets() {
        assert_eq!(Rights::parse("none").unwrap(), Rights::NONE);
        let read = Rights::parse("read").unwrap();
        assert!(read.has(Rights::SEARCH) && read.has(Rights::AUTH) && !read.has(Rights::WRITE));
        let pw = Rights::parse("=xw").unwrap();
        assert!(pw.has(Rights::AUTH) && pw.has(Rights::WRITE) && !pw.has(Rights::READ));
        let both = Rights::parse("read, =ad").unwrap();
        assert!(both.has(Rights::ADD) && both.has(Rights::DELETE) && both.has(Rights::READ));
        assert!(Rights::parse("manage").unwrap().has(Rights::ALL));
        assert!(Rights::parse("reed").unwrap_err().contains("reed"));
        assert!(Rights::parse("=xq").unwrap_err().contains('q'));
    }

    #[test]
    fn patterns_resolve_against_suffixes() {
        let schema = Schema::builtin();
        let p = DnPattern::parse(&schema, "cn=Admins, ou=groups,{suffix}").unwrap();
        let a = NormDn {
            rdns: vec!["dc=a".into(), "dc=com".into()],
        };
        let b = NormDn {
            rdns: vec!["dc=b".into(), "dc=com".into()],
        };
        let all = [a.clone(), b.clone()];
        let got: Vec<String> = p.concrete(Some(&a), &all).map(|d| d.to_string()).collect();
        assert_eq!(got, vec!["cn=admins,ou=groups,dc=a,dc=com"]);
        let any = DnPattern::parse(&schema, "ou=services,{any}").unwrap();
        assert_eq!(any.concrete(Some(&a), &all).count(), 2);
        let fixed = DnPattern::parse(&schema, "cn=x,dc=a,dc=com").unwrap();
        assert_eq!(fixed.concrete(None, &all).count(), 1);
        let whole = DnPattern::parse(&schema, "{any}").unwrap();
        assert_eq!(whole.concrete(None, &all).count(), 2);
        assert!(parse_subject(&schema, "friend:cn=x").is_err());
        assert!(parse_subject(&schema, "nobody").is_err());
    }
}
