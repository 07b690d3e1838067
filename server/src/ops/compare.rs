//! Compare (RFC 4511 section 4.10): does an entry hold a value, by the attribute's equality rule.

use super::Identity;
use crate::access::{Requester, Rights};
use crate::directory::Directory;
use crate::error::{ldap_result, result, OpError};
use ldap3_proto::proto::{LdapCompareRequest, LdapResult, LdapResultCode};
use roster_schema::{AttrDesc, Dn};

pub fn compare(dir: &Directory, who: &Identity, req: &LdapCompareRequest) -> LdapResult {
    match run(dir, who, req) {
        Ok(true) => result(LdapResultCode::CompareTrue, ""),
        Ok(false) => result(LdapResultCode::CompareFalse, ""),
        Err(e) => {
            if let OpError::Store(inner) = &e {
                dir.store_failed("compare", inner);
            }
            ldap_result(&e)
        }
    }
}

fn run(dir: &Directory, who: &Identity, req: &LdapCompareRequest) -> Result<bool, OpError> {
    let schema = &dir.schema;
    let ndn = Dn::parse(&req.dn)?.normalize(schema)?;
    let Some(desc) = AttrDesc::parse(schema, &req.atype) else {
        return Err(OpError::UndefinedAttributeType(format!(
            "{}: attribute type undefined",
            req.atype
        )));
    };
    let assertion = match schema.normalize_eq(desc.id, &req.val) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Err(OpError::InappropriateMatching(format!(
                "{}: no equality matching rule",
                req.atype
            )))
        }
        Err(e) => {
            return Err(OpError::InvalidAttributeSyntax(format!(
                "{}: value invalid: {e}",
                req.atype
            )))
        }
    };
    let stored;
    let dse = dir.root_dse();
    let entry = if ndn.is_root() {
        &*dse
    } else if ndn == dir.subschema_ndn {
        &dir.subschema
    } else {
        if dir.suffix_of(&ndn).is_none() {
            return Err(OpError::NoSuchObject { matched: None });
        }
        let reader = dir.store.reader();
        let Some((_, mut found)) = reader.entry_by_dn(&ndn)? else {
            let matched = super::matched(dir, who, &reader, &ndn)?;
            return Err(OpError::NoSuchObject { matched });
        };
        // An entry the client may not see is not there for it (the answer for a missing
        // one); one it sees needs the compare right on the attribute.
        let requester = Requester::new(who, &reader);
        let access = dir.policy.for_entry(schema, &requester, &found);
        if !access.allows(None, Rights::READ) {
            let matched = super::matched(dir, who, &reader, &ndn)?;
            return Err(OpError::NoSuchObject { matched });
        }
        if !access.allows(Some(desc.id), Rights::COMPARE) {
            return Err(OpError::InsufficientAccess(format!(
                "no access to compare {}",
                req.atype
            )));
        }
        // Comparing a supertype (`name`) looks at its subtypes' values: only those the client
        // may compare.
        let denied: Vec<roster_schema::AttrId> = found
            .attrs
            .iter()
            .map(|a| a.desc.id)
            .filter(|&id| {
                id != desc.id
                    && schema.is_subtype_of(id, desc.id)
                    && !access.allows(Some(id), Rights::COMPARE)
            })
            .collect();
        drop(access);
        found.attrs.retain(|a| !denied.contains(&a.desc.id));
        let is = |name: &str| schema.attr_id(name) == Some(desc.id);
        reader.add_link_attrs(&mut found, is("memberOf"), is("msDS-memberOfTransitive"))?;
        stored = found;
        &stored
    };
    let mut seen = false;
    for a in &entry.attrs {
        if !schema.is_subtype_of(a.desc.id, desc.id)
            || !desc
                .options
                .iter()
                .all(|o| a.desc.options.iter().any(|h| h.eq_ignore_ascii_case(o)))
        {
            continue;
        }
        seen = true;
        for v in &a.values {
            if schema.normalize_eq(a.desc.id, v).ok().flatten().as_deref()
                == Some(assertion.as_slice())
            {
                return Ok(true);
            }
        }
    }
    if seen {
        Ok(false)
    } else {
        Err(OpError::NoSuchAttribute(String::new()))
    }
}
