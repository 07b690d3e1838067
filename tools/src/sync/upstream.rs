//! Reading the upstream directory: what the filters select, or, on an incremental run, only what
//! changed since the stored mark (AD: `uSNChanged` above the mark of the same domain controller,
//! deletions from its tombstones; other LDAP servers: `modifyTimestamp`). Searches are paged,
//! AD's ranged `member;range=` values are read to the end, and any failure is an error: a run
//! that cannot read the upstream must not mistake that for an empty directory.

use super::config::{Kind, Nested, SyncConfig};
use ldap3::controls::RawControl;
use ldap3::{LdapConn, Scope, SearchEntry};
use std::collections::{HashMap, HashSet};

/// AD's Show Deleted control: tombstones are returned too.
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// Marks a retry that names an entry by its stable id (a removal that was refused) rather than
/// by its upstream DN.
pub const RETRY_ID: &str = "id:";

/// How far before its mark an incremental run of an LDAP upstream (modifyTimestamp) reads
/// again.
const MARK_OVERLAP_SECS: i64 = 300;

/// The number of values AD returns of one attribute in one read (MaxValRange).
const AD_RANGE: u64 = 1500;

/// Why the upstream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream: {0}")]
    Connect(#[from] crate::connect::ConnectError),
    #[error("the upstream {url}: search {base} for {filter}: {message}")]
    Search {
        url: String,
        base: String,
        filter: String,
        message: String,
    },
    #[error("the upstream {url}: {message}")]
    Answer { url: String, message: String },
}

/// An upstream entry's attributes, by lower-case name, as bytes.
#[derive(Debug, Clone, Default)]
pub struct Raw {
    pub dn: String,
    attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Raw {
    fn from(e: SearchEntry) -> Raw {
        let mut attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (k, v) in e.attrs {
            attrs
                .entry(k.to_ascii_lowercase())
                .or_default()
                .extend(v.into_iter().map(String::into_bytes));
        }
        for (k, v) in e.bin_attrs {
            attrs.entry(k.to_ascii_lowercase()).or_default().extend(v);
        }
        Raw { dn: e.dn, attrs }
    }

    pub fn bytes(&self, attr: &str) -> &[Vec<u8>] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn texts(&self, attr: &str) -> Vec<String> {
        self.bytes(attr)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn text(&self, attr: &str) -> Option<String> {
        self.texts(attr)
            .into_iter()
            .next()
            .filter(|s| !s.is_empty())
    }

    /// The values of `attr` with options (`member;range=0-1499`), and the option's range end.
    fn ranged(&self, attr: &str) -> Option<(String, &[Vec<u8>])> {
        let prefix = format!("{};range=", attr.to_ascii_lowercase());
        self.attrs.iter().find_map(|(k, v)| {
            k.strip_prefix(&prefix)
                .and_then(|r| r.split_once('-'))
                .map(|(_, end)| (end.to_string(), v.as_slice()))
        })
    }
}

/// A stable id as text: a UUID string as it is; 16 bytes as a GUID (AD's objectGUID has its
/// first three fields little-endian, as AD itself prints it).
pub fn id_text(kind: Kind, v: &[u8]) -> Option<String> {
    if let Ok(bytes) = <[u8; 16]>::try_from(v) {
        let id = if kind == Kind::Ad {
            uuid::Uuid::from_bytes_le(bytes)
        } else {
            uuid::Uuid::from_bytes(bytes)
        };
        return Some(id.hyphenated().to_string());
    }
    let s = std::str::from_utf8(v).ok()?.trim();
    (!s.is_empty()).then(|| s.to_ascii_lowercase())
}

/// A user as the upstream has it.
#[derive(Debug, Clone, Default)]
pub struct UUser {
    pub id: String,
    pub dn: String,
    pub name: String,
    pub full_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub description: Option<String>,
    /// Upstream addresses, primary first.
    pub addresses: Vec<String>,
    pub disabled: bool,
}

/// A group as the upstream has it.
#[derive(Debug, Clone, Default)]
pub struct UGroup {
    pub id: String,
    pub dn: String,
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<String>,
    /// Member DNs as the upstream wrote them.
    pub members: Vec<String>,
}

/// An entry the upstream has but the job cannot map, named for the summary.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub dn: String,
    /// Its stable id, when it could be read: a full run does not take it for gone.
    pub id: Option<String>,
    pub reason: String,
}

/// What one run read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Which upstream server answered (AD: invocationID@host); a different one means a full run.
    pub source: String,
    /// The mark to store once the run's changes are made.
    pub mark: String,
    pub full: bool,
    pub users: Vec<UUser>,
    pub groups: Vec<UGroup>,
    /// Ids of entries deleted upstream or changed so that they left the filter (incremental).
    pub gone: HashSet<String>,
    pub unreadable: Vec<Unreadable>,
    /// Entries fetched from the upstream in this run.
    pub fetched: usize,
    /// Upstream DNs (lower case) of nested groups, with their member DNs (flattening).
    pub nested: HashMap<String, Vec<String>>,
}

/// A bound connection to the upstream.
pub struct Upstream<'c> {
    conn: LdapConn,
    cfg: &'c SyncConfig,
    fetched: usize,
}

/// Where the last run stopped.
#[derive(Debug, Clone, Default)]
pub struct Mark {
    pub source: String,
    pub mark: String,
    /// Upstream DNs to read again (entries the last run could not write).
    pub retry: Vec<String>,
}

impl<'c> Upstream<'c> {
    pub fn connect(cfg: &'c SyncConfig) -> Result<Upstream<'c>, UpstreamError> {
        let u = &cfg.upstream;
        let conn = crate::connect::connect(&crate::connect::Target {
            url: u.url.clone(),
            bind_dn: Some(u.bind_dn.clone()),
            password_file: Some(u.password_file.clone()),
            password_env: None,
            ca: u.ca.clone(),
            no_tls: false,
            timeout: Some(u.timeout),
        })?;
        Ok(Upstream {
            conn,
            cfg,
            fetched: 0,
        })
    }

    /// A paged search; every result but success is an error (a missing base included).
    fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        controls: Vec<RawControl>,
    ) -> Result<Vec<Raw>, UpstreamError> {
        let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![
            Box::new(ldap3::adapters::EntriesOnly::new()),
            Box::new(ldap3::adapters::PagedResults::new(
                self.cfg.upstream.page_size,
            )),
        ];
        let timeout = self.cfg.upstream.timeout;
        let url = self.cfg.upstream.url.clone();
        let failed = |message: String| UpstreamError::Search {
            url: url.clone(),
            base: base.to_string(),
            filter: filter.to_string(),
            message,
        };
        let mut stream = self
            .conn
            .with_timeout(timeout)
            .with_controls(controls)
            .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
            .map_err(|e| failed(e.to_string()))?;
        let mut out = Vec::new();
        loop {
            match stream.next() {
                Ok(Some(e)) => out.push(Raw::from(SearchEntry::construct(e))),
                Ok(None) => break,
                Err(e) => {
                    let message = e.to_string();
                    return Err(failed(message));
                }
            }
        }
        let result = stream.result();
        if result.rc != 0 {
            let message = format!("result {}: {}", result.rc, result.text);
            return Err(failed(message));
        }
        self.fetched += out.len();
        Ok(out)
    }

    fn root_dse(&mut self, attrs: &[&str]) -> Result<Raw, UpstreamError> {
        let mut found = self.search("", Scope::Base, "(objectClass=*)", attrs, Vec::new())?;
        self.fetched = self.fetched.saturating_sub(found.len());
        found.pop().ok_or_else(|| UpstreamError::Answer {
            url: self.cfg.upstream.url.clone(),
            message: "no root DSE".into(),
        })
    }

    /// Which server this is, and its current mark (AD) — read before anything else, so that
    /// changes made while the run reads are seen by the next one.
    fn source(&mut self) -> Result<(String, Option<u64>, String), UpstreamError> {
        if self.cfg.upstream.kind != Kind::Ad {
            return Ok((self.cfg.upstream.url.clone(), None, String::new()));
        }
        let dse = self.root_dse(&[
            "dsServiceName",
            "dnsHostName",
            "highestCommittedUSN",
            "defaultNamingContext",
        ])?;
        let bad = |m: &str| UpstreamError::Answer {
            url: self.cfg.upstream.url.clone(),
            message: m.to_string(),
        };
        let usn: u64 = dse
            .text("highestCommittedUSN")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                bad("the root DSE has no highestCommittedUSN: is this an AD domain controller?")
            })?;
        let service = dse
            .text("dsServiceName")
            .ok_or_else(|| bad("the root DSE has no dsServiceName"))?;
        let nc = dse.text("defaultNamingContext").unwrap_or_default();
        let settings = self.search(
            &service,
            Scope::Base,
            "(objectClass=*)",
            &["invocationId"],
            Vec::new(),
        )?;
        self.fetched = self.fetched.saturating_sub(settings.len());
        let invocation = settings
            .first()
            .and_then(|e| e.bytes("invocationId").first().cloned())
            .and_then(|v| id_text(Kind::Ad, &v))
            .ok_or_else(|| bad("the domain controller's invocationId cannot be read"))?;
        let host = dse.text("dnsHostName").unwrap_or_default();
        Ok((format!("{invocation}@{host}"), Some(usn), nc))
    }

    fn user_attrs(&self) -> Vec<String> {
        let m = &self.cfg.users;
        let mut v = vec![
            m.id.clone(),
            m.name.clone(),
            m.full_name.clone(),
            m.given_name.clone(),
            m.surname.clone(),
            m.description.clone(),
            "modifyTimestamp".into(),
        ];
        v.extend(m.addresses.iter().cloned());
        v.extend(m.disabled.iter().cloned());
        v
    }

    /// The member attribute as a group search asks for it.
    fn member_request(&self) -> String {
        let attr = &self.cfg.groups.members;
        if self.cfg.upstream.kind == Kind::Ad {
            format!("{attr};range=0-{}", AD_RANGE - 1)
        } else {
            attr.clone()
        }
    }

    fn group_attrs(&self) -> Vec<String> {
        let m = &self.cfg.groups;
        // AD hands out at most 1,500 values of an attribute in one read; asking for the
        // first range outright makes every domain controller (Samba's too) answer in ranges,
        // which `members` then follows to the end.
        let members = self.member_request();
        let mut v = vec![
            self.cfg.users.id.clone(),
            m.name.clone(),
            m.description.clone(),
            members,
            "modifyTimestamp".into(),
        ];
        v.extend(m.addresses.iter().cloned());
        v
    }

    /// Reads what the run needs: everything the filters select (`full`), or what changed after
    /// `since` of the same source.
    /// `known`: upstream DNs (lower case) of the users already mapped.
    pub fn read(
        &mut self,
        since: Option<&Mark>,
        want_full: bool,
        known: &HashSet<String>,
    ) -> Result<Snapshot, UpstreamError> {
        let started = std::time::Instant::now();
        let (source, usn, nc) = self.source()?;
        let since = since.filter(|m| !want_full && m.source == source && !m.mark.is_empty());
        let mut snap = Snapshot {
            source,
            full: since.is_none(),
            ..Snapshot::default()
        };
        let kind = self.cfg.upstream.kind;
        // The condition an incremental run adds to each filter.
        let changed = since.map(|m| match kind {
            Kind::Ad => format!(
                "(uSNChanged>={})",
                m.mark.parse::<u64>().unwrap_or(0).saturating_add(1)
            ),
            // An entry changed while the last run read may carry an earlier time than the
            // newest one that run saw: the window before the mark is read again.
            _ => format!(
                "(modifyTimestamp>={})",
                crate::ldap::escape_filter_value(&earlier(&m.mark, MARK_OVERLAP_SECS))
            ),
        });
        let narrow = |filter: &str| match &changed {
            Some(c) => format!("(&{filter}{c})"),
            None => filter.to_string(),
        };
        let mut newest = since.map(|m| m.mark.clone()).unwrap_or_default();
        let user_attrs = self.user_attrs();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let mut seen: HashSet<String> = HashSet::new();
        for base in self.cfg.user_bases.clone() {
            let filter = narrow(&self.cfg.user_filter);
            for e in self.search(&base, Scope::Subtree, &filter, &user_attrs, Vec::new())? {
                newest = newest_of(newest, e.text("modifyTimestamp"));
                match self.user_of(&e) {
                    Ok(u) => {
                        if seen.insert(u.id.clone()) {
                            snap.users.push(u);
                        }
                    }
                    Err(reason) => {
                        let id = e
                            .bytes(&self.cfg.users.id)
                            .first()
                            .and_then(|v| id_text(kind, v));
                        snap.unreadable.push(Unreadable {
                            dn: e.dn,
                            id,
                            reason,
                        })
                    }
                }
            }
        }
        // Entries that failed to be written last time are read again.
        if let Some(m) = since {
            for dn in m.retry.iter().filter(|r| !r.starts_with(RETRY_ID)) {
                let filter = self.cfg.user_filter.clone();
                let found = match self.search(dn, Scope::Base, &filter, &user_attrs, Vec::new()) {
                    Ok(f) => f,
                    // Gone or moved: tombstones and full runs deal with it.
                    Err(UpstreamError::Search { message, .. }) if gone_or_elsewhere(&message) => {
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                };
                for e in found {
                    if let Ok(u) = self.user_of(&e) {
                        if seen.insert(u.id.clone()) {
                            snap.users.push(u);
                        }
                    }
                }
            }
        }
        let mut group_seen: HashSet<String> = HashSet::new();
        if self.cfg.map_groups {
            let group_attrs = self.group_attrs();
            let group_attrs: Vec<&str> = group_attrs.iter().map(String::as_str).collect();
            // Flattened groups change when a nested group does: all are read on every run.
            let filter = match self.cfg.nested {
                Nested::Flatten => self.cfg.group_filter.clone(),
                Nested::Ignore => narrow(&self.cfg.group_filter),
            };
            for base in self.cfg.group_bases.clone() {
                for e in self.search(&base, Scope::Subtree, &filter, &group_attrs, Vec::new())? {
                    newest = newest_of(newest, e.text("modifyTimestamp"));
                    match self.group_of(e) {
                        Ok(g) => {
                            if group_seen.insert(g.id.clone()) {
                                snap.groups.push(g);
                            }
                        }
                        Err((dn, id, reason)) => {
                            snap.unreadable.push(Unreadable { dn, id, reason })
                        }
                    }
                }
            }
            if let Some(m) = since {
                for dn in m.retry.iter().filter(|r| !r.starts_with(RETRY_ID)) {
                    let filter = self.cfg.group_filter.clone();
                    let found =
                        match self.search(dn, Scope::Base, &filter, &group_attrs, Vec::new()) {
                            Ok(f) => f,
                            Err(UpstreamError::Search { message, .. })
                                if gone_or_elsewhere(&message) =>
                            {
                                Vec::new()
                            }
                            Err(e) => return Err(e),
                        };
                    for e in found {
                        if let Ok(g) = self.group_of(e) {
                            if group_seen.insert(g.id.clone()) {
                                snap.groups.push(g);
                            }
                        }
                    }
                }
            }
            if self.cfg.nested == Nested::Flatten {
                self.read_nested(&mut snap, known)?;
            }
        }
        if let Some(c) = &changed {
            // Changed entries the filters no longer select have left the job.
            // In AD the whole domain is searched, so that an entry moved out of the bases is
            // seen to have left too.
            let id = self.cfg.users.id.clone();
            let mut bases = if kind == Kind::Ad && !nc.is_empty() {
                vec![nc.clone()]
            } else {
                let mut b = self.cfg.user_bases.clone();
                b.extend(self.cfg.group_bases.iter().cloned());
                b
            };
            bases.sort();
            bases.dedup();
            let mut changed_ids: Vec<String> = Vec::new();
            let mut containers: Vec<String> = Vec::new();
            for base in bases {
                let attrs = [id.as_str(), "objectClass"];
                for e in self.search(&base, Scope::Subtree, c, &attrs, Vec::new())? {
                    let container = e.texts("objectClass").iter().any(|o| {
                        ["organizationalUnit", "container", "organization"]
                            .iter()
                            .any(|k| o.eq_ignore_ascii_case(k))
                    });
                    if container {
                        containers.push(e.dn.clone());
                    }
                    if let Some(i) = e.bytes(&id).first().and_then(|v| id_text(kind, v)) {
                        changed_ids.push(i);
                    }
                }
            }
            // A renamed or moved container changes; the entries under it do not: they are
            // read again, so that their new DNs are learnt.
            self.read_under(&containers, &mut snap, &mut seen, &mut group_seen)?;
            for i in changed_ids {
                if !seen.contains(&i) && !group_seen.contains(&i) {
                    snap.gone.insert(i);
                }
            }
            if kind == Kind::Ad && !nc.is_empty() {
                let filter = format!("(&(isDeleted=TRUE){c})");
                let show = vec![RawControl {
                    ctype: SHOW_DELETED.into(),
                    crit: true,
                    val: None,
                }];
                for e in self.search(&nc, Scope::Subtree, &filter, &[id.as_str()], show)? {
                    if let Some(i) = e.bytes(&id).first().and_then(|v| id_text(kind, v)) {
                        snap.gone.insert(i);
                    }
                }
            }
        }
        snap.mark = match usn {
            Some(u) => u.to_string(),
            // An entry changed while this run read carries a time after the read began, which
            // may be earlier than the newest one seen: the mark goes back by the read's length.
            None if newest.is_empty() => newest,
            None => earlier(
                &newest,
                i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX / 2) + 1,
            ),
        };
        snap.fetched = self.fetched;
        Ok(snap)
    }

    /// Reads the users and groups the filters select under each of `containers` that lies
    /// within a base (entries already read are not read twice).
    fn read_under(
        &mut self,
        containers: &[String],
        snap: &mut Snapshot,
        seen: &mut HashSet<String>,
        group_seen: &mut HashSet<String>,
    ) -> Result<(), UpstreamError> {
        use crate::domain::dn_key;
        let within = |dn: &str, bases: &[String]| {
            let k = dn_key(dn);
            bases.iter().any(|b| {
                let b = dn_key(b);
                k == b || k.ends_with(&format!(",{b}"))
            })
        };
        let user_attrs = self.user_attrs();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let group_attrs = self.group_attrs();
        let group_attrs: Vec<&str> = group_attrs.iter().map(String::as_str).collect();
        for dn in containers {
            if within(dn, &self.cfg.user_bases) {
                let filter = self.cfg.user_filter.clone();
                for e in self.search(dn, Scope::Subtree, &filter, &user_attrs, Vec::new())? {
                    if let Ok(u) = self.user_of(&e) {
                        if seen.insert(u.id.clone()) {
                            snap.users.push(u);
                        }
                    }
                }
            }
            if self.cfg.map_groups && within(dn, &self.cfg.group_bases) {
                let filter = self.cfg.group_filter.clone();
                for e in self.search(dn, Scope::Subtree, &filter, &group_attrs, Vec::new())? {
                    if let Ok(g) = self.group_of(e) {
                        if group_seen.insert(g.id.clone()) {
                            snap.groups.push(g);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads again, by stable id, entries a run is about to remove: one that changed or moved
    /// while the run read, or that a paged read missed, is found here and added to the
    /// snapshot instead of being taken for gone.
    pub fn recheck(&mut self, snap: &mut Snapshot, ids: &[String]) -> Result<(), UpstreamError> {
        let kind = self.cfg.upstream.kind;
        let id_attr = self.cfg.users.id.clone();
        let user_attrs = self.user_attrs();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let group_attrs = self.group_attrs();
        let group_attrs: Vec<&str> = group_attrs.iter().map(String::as_str).collect();
        for id in ids {
            let v = id_assertion(kind, id);
            let mut found = false;
            for base in self.cfg.user_bases.clone() {
                let filter = format!("(&{}({id_attr}={v}))", self.cfg.user_filter);
                for e in self.search(&base, Scope::Subtree, &filter, &user_attrs, Vec::new())? {
                    if let Ok(u) = self.user_of(&e) {
                        if u.id == *id && !found {
                            found = true;
                            snap.users.push(u);
                        }
                    }
                }
            }
            if !found && self.cfg.map_groups {
                for base in self.cfg.group_bases.clone() {
                    let filter = format!("(&{}({id_attr}={v}))", self.cfg.group_filter);
                    for e in
                        self.search(&base, Scope::Subtree, &filter, &group_attrs, Vec::new())?
                    {
                        if let Ok(g) = self.group_of(e) {
                            if g.id == *id && !found {
                                found = true;
                                snap.groups.push(g);
                            }
                        }
                    }
                }
            }
            if found {
                snap.gone.remove(id);
            }
        }
        snap.fetched = self.fetched;
        Ok(())
    }

    fn user_of(&self, e: &Raw) -> Result<UUser, String> {
        let m = &self.cfg.users;
        let kind = self.cfg.upstream.kind;
        let id = e
            .bytes(&m.id)
            .first()
            .and_then(|v| id_text(kind, v))
            .ok_or_else(|| format!("no {}", m.id))?;
        let name = e.text(&m.name).ok_or_else(|| format!("no {}", m.name))?;
        let disabled = match &m.disabled {
            Some(a) if a.eq_ignore_ascii_case("userAccountControl") => e
                .text(a)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|v| v & 2 != 0),
            Some(a) => e.text(a).is_some_and(|v| v.eq_ignore_ascii_case("TRUE")),
            None => false,
        };
        Ok(UUser {
            id,
            dn: e.dn.clone(),
            name,
            full_name: e.text(&m.full_name),
            given_name: e.text(&m.given_name),
            surname: e.text(&m.surname),
            description: e.text(&m.description),
            addresses: addresses(e, &m.addresses),
            disabled,
        })
    }

    /// A group, or its DN, id (when readable) and why it cannot be mapped.
    #[allow(clippy::type_complexity)]
    fn group_of(&mut self, e: Raw) -> Result<UGroup, (String, Option<String>, String)> {
        let m = self.cfg.groups.clone();
        let kind = self.cfg.upstream.kind;
        let dn = e.dn.clone();
        let id = e
            .bytes(&self.cfg.users.id)
            .first()
            .and_then(|v| id_text(kind, v))
            .ok_or_else(|| (dn.clone(), None, format!("no {}", self.cfg.users.id)))?;
        let name = e
            .text(&m.name)
            .ok_or_else(|| (dn.clone(), Some(id.clone()), format!("no {}", m.name)))?;
        let members = self
            .members(&e, &m.members)
            .map_err(|err| (dn.clone(), Some(id.clone()), err.to_string()))?;
        Ok(UGroup {
            id,
            dn,
            name,
            description: e.text(&m.description),
            addresses: addresses(&e, &m.addresses),
            members,
        })
    }

    /// All values of a group's member attribute, following AD's ranges (1,500 values a read).
    fn members(&mut self, e: &Raw, attr: &str) -> Result<Vec<String>, UpstreamError> {
        let mut out: Vec<String> = e.texts(attr);
        let Some((mut end, values)) = e.ranged(attr) else {
            return Ok(out);
        };
        out.extend(
            values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned()),
        );
        // Bounded: each read moves the start past what was read.
        while end != "*" {
            let next: u64 = end.parse::<u64>().map_err(|_| UpstreamError::Answer {
                url: self.cfg.upstream.url.clone(),
                message: format!("{}: a range end {end:?} is not a number", e.dn),
            })? + 1;
            let want = format!("{attr};range={next}-*");
            let found = self.search(
                &e.dn,
                Scope::Base,
                "(objectClass=*)",
                &[want.as_str()],
                Vec::new(),
            )?;
            self.fetched = self.fetched.saturating_sub(found.len());
            let cut = |what: &str| UpstreamError::Answer {
                url: self.cfg.upstream.url.clone(),
                message: format!("{}: reading {attr} from value {next}: {what}", e.dn),
            };
            // A range that ends early would shorten the group: an error, not a smaller group.
            let Some(part) = found.into_iter().next() else {
                return Err(cut("the entry is gone"));
            };
            let Some((e2, values)) = part.ranged(attr) else {
                return Err(cut("no ranged values in the answer"));
            };
            let moved_on = e2 == "*" || e2.parse::<u64>().is_ok_and(|n| n >= next);
            if values.is_empty() || !moved_on {
                return Err(cut("the range did not move on"));
            }
            out.extend(
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            );
            end = e2;
        }
        Ok(out)
    }

    /// For flattening: the members of every group DN that is a member of a mapped group and is
    /// a group itself, read until no new one turns up.
    fn read_nested(
        &mut self,
        snap: &mut Snapshot,
        known_users: &HashSet<String>,
    ) -> Result<(), UpstreamError> {
        let mut known: HashMap<String, Vec<String>> = snap
            .groups
            .iter()
            .map(|g| (g.dn.to_ascii_lowercase(), g.members.clone()))
            .collect();
        let users: HashSet<String> = snap
            .users
            .iter()
            .map(|u| u.dn.to_ascii_lowercase())
            .collect();
        let mut queue: Vec<String> = known.values().flatten().cloned().collect();
        let mut asked: HashSet<String> = HashSet::new();
        let attr = self.cfg.groups.members.clone();
        let request = self.member_request();
        while let Some(dn) = queue.pop() {
            let key = dn.to_ascii_lowercase();
            if known.contains_key(&key)
                || users.contains(&key)
                || known_users.contains(&key)
                || !asked.insert(key.clone())
            {
                continue;
            }
            let found = match self.search(
                &dn,
                Scope::Base,
                "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                &[request.as_str()],
                Vec::new(),
            ) {
                Ok(f) => f,
                Err(UpstreamError::Search { message, .. }) if gone_or_elsewhere(&message) => {
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            if let Some(g) = found.into_iter().next() {
                let members = self.members(&g, &attr)?;
                queue.extend(members.iter().cloned());
                known.insert(key, members);
            }
        }
        snap.nested = known;
        Ok(())
    }
}

/// A GeneralizedTime `secs` seconds earlier, in the same form (`YYYYMMDDHHMMSSZ`); the value
/// as it is when it cannot be read.
fn earlier(gt: &str, secs: i64) -> String {
    let digits = |r: std::ops::Range<usize>| gt.get(r).and_then(|d| d.parse::<u16>().ok());
    let read = || {
        let month = time::Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::from(digits(0..4)?),
            month,
            u8::try_from(digits(6..8)?).ok()?,
        )
        .ok()?;
        let t = time::Time::from_hms(
            u8::try_from(digits(8..10)?).ok()?,
            u8::try_from(digits(10..12)?).ok()?,
            u8::try_from(digits(12..14)?).ok()?,
        )
        .ok()?;
        let at =
            time::PrimitiveDateTime::new(date, t).checked_sub(time::Duration::seconds(secs))?;
        Some(format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ))
    };
    read().unwrap_or_else(|| gt.to_string())
}

/// A base search's answer for an entry that is not there any more (32) or lives in another
/// domain of the forest (10, a referral): nothing to read here.
fn gone_or_elsewhere(message: &str) -> bool {
    message.starts_with("result 32") || message.starts_with("result 10")
}

/// An assertion value for a stable id as the upstream stores it: AD's objectGUID and
/// eDirectory's GUID are 16 bytes (AD's in its mixed-endian order), escaped byte by byte;
/// other ids (entryUUID) are text.
fn id_assertion(kind: Kind, id: &str) -> String {
    match uuid::Uuid::parse_str(id) {
        Ok(u) if kind != Kind::Ldap => {
            let bytes = if kind == Kind::Ad {
                u.to_bytes_le()
            } else {
                *u.as_bytes()
            };
            bytes.iter().map(|b| format!("\\{b:02x}")).collect()
        }
        _ => crate::ldap::escape_filter_value(id),
    }
}

/// The later of two GeneralizedTime values (same format, so they compare as text).
fn newest_of(a: String, b: Option<String>) -> String {
    match b {
        Some(b) if b > a => b,
        _ => a,
    }
}

/// Addresses from the mapped attributes in order, primary first: AD's `SMTP:` value is the
/// primary, `smtp:` values are aliases, other address types (X500:, SIP:) are not mail.
fn addresses(e: &Raw, attrs: &[String]) -> Vec<String> {
    let mut primary: Option<String> = None;
    let mut out: Vec<String> = Vec::new();
    for a in attrs {
        for v in e.texts(a) {
            let v = v.trim();
            let (address, is_primary) = match v.split_once(':') {
                Some(("SMTP", rest)) => (rest, true),
                Some((t, rest)) if t.eq_ignore_ascii_case("smtp") => (rest, false),
                Some((t, _)) if !t.contains('@') => continue,
                _ => (v, false),
            };
            if address.is_empty() || !address.contains('@') {
                continue;
            }
            if is_primary && primary.is_none() {
                primary = Some(address.to_string());
            }
            if !out.iter().any(|x| x.eq_ignore_ascii_case(address)) {
                out.push(address.to_string());
            }
        }
    }
    if let Some(p) = primary {
        out.retain(|x| !x.eq_ignore_ascii_case(&p));
        out.insert(0, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_asserted_as_the_upstream_stores_them() {
        let guid = "6581efde-02d3-4750-aa45-c658c10ee1a9";
        assert_eq!(
            id_assertion(Kind::Ad, guid),
            "\\de\\ef\\81\\65\\d3\\02\\50\\47\\aa\\45\\c6\\58\\c1\\0e\\e1\\a9"
        );
        assert!(id_assertion(Kind::Edirectory, guid).starts_with("\\65\\81\\ef\\de"));
        assert_eq!(id_assertion(Kind::Ldap, guid), guid);
        assert_eq!(id_assertion(Kind::Ad, "odd*id"), "odd\\2aid");
    }

    #[test]
    fn marks_are_read_again_from_a_little_earlier() {
        assert_eq!(earlier("20260101000200Z", 300), "20251231235700Z");
        assert_eq!(earlier("not a time", 300), "not a time");
    }

    #[test]
    fn guids_print_as_ad_prints_them() {
        // objectGUID:: 3u+BZdMCUEeqRcZYwQ7hqQ== is 6581efde-02d3-4750-aa45-c658c10ee1a9.
        let v = [
            0xde, 0xef, 0x81, 0x65, 0xd3, 0x02, 0x50, 0x47, 0xaa, 0x45, 0xc6, 0x58, 0xc1, 0x0e,
            0xe1, 0xa9,
        ];
        assert_eq!(
            id_text(Kind::Ad, &v).unwrap(),
            "6581efde-02d3-4750-aa45-c658c10ee1a9"
        );
        assert_eq!(
            id_text(Kind::Ldap, b"6581EFDE-02d3-4750-aa45-c658c10ee1a9").unwrap(),
            "6581efde-02d3-4750-aa45-c658c10ee1a9"
        );
    }

    #[test]
    fn proxy_addresses_give_the_primary_first() {
        let mut e = Raw::default();
        e.attrs.insert(
            "proxyaddresses".into(),
            vec![
                b"smtp:ann@example.com".to_vec(),
                b"X500:/o=corp/cn=ann".to_vec(),
                b"SMTP:abird@example.com".to_vec(),
            ],
        );
        e.attrs
            .insert("mail".into(), vec![b"abird@example.com".to_vec()]);
        assert_eq!(
            addresses(&e, &["proxyAddresses".into(), "mail".into()]),
            vec!["abird@example.com", "ann@example.com"]
        );
    }
}
