//! rosterd: the Roster directory server. The binary in `main.rs` is glue; the pieces live here:
//! `config` (settings), `directory` (schema + store), `net` (accepting), `session` (one
//! connection), `ops` (the LDAP operations), `error` (result codes), `ldif` and `offline`
//! (load, dump, verify), `control` (the socket `rosterd dump` uses while the server runs),
//! `password` (hash schemes), `tls` (certificates for LDAPS and StartTLS), `upstream`
//! (pass-through authentication of users mapped from an upstream directory), `replica` (a
//! read-only copy of an RFC 4533 provider).

pub mod access;
pub mod audit;
pub mod backup;
pub mod codec;
pub mod config;
pub mod control;
pub mod directory;
pub mod error;
pub mod identity;
pub mod ldif;
pub mod lockout;
pub mod mail;
pub mod metrics;
pub mod monitor;
pub mod naming;
pub mod net;
pub mod offline;
pub mod ops;
pub mod password;
pub mod policy;
pub mod recent;
pub mod replica;
pub mod session;
pub mod syncer;
pub mod time;
pub mod tls;
pub mod upstream;
pub mod writers;
