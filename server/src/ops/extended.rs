//! Extended operations answered in place (RFC 4511 section 4.12): Who am I? (RFC 4532).
//! StartTLS changes the stream and is the session's; Password Modify is in `passwd`.

use super::Identity;
use crate::error::{ldap_result, success, OpError};
use ldap3_proto::proto::{
    LdapExtendedRequest, LdapExtendedResponse, OID_PASSWORD_MODIFY, OID_WHOAMI,
};

/// RFC 4511 section 4.14.
pub const START_TLS: &str = "1.3.6.1.4.1.1466.20037";

pub fn extended(who: &Identity, req: &LdapExtendedRequest) -> LdapExtendedResponse {
    match req.name.as_str() {
        OID_WHOAMI => {
            let authz = match who {
                Identity::Anonymous => String::new(),
                other => format!("dn:{}", other.dn()),
            };
            LdapExtendedResponse {
                res: success(),
                name: None,
                value: Some(authz.into_bytes()),
            }
        }
        // The session answers StartTLS before operations see it.
        START_TLS => refuse(OpError::Internal(
            "StartTLS reached the in-place extended operations".into(),
        )),
        // The session runs password changes (ops::passwd) on a blocking thread.
        OID_PASSWORD_MODIFY => refuse(OpError::Internal(
            "password modify reached the in-place extended operations".into(),
        )),
        other => refuse(OpError::Protocol(format!(
            "extended operation {other} is not supported"
        ))),
    }
}

fn refuse(e: OpError) -> LdapExtendedResponse {
    LdapExtendedResponse {
        res: ldap_result(&e),
        name: None,
        value: None,
    }
}
