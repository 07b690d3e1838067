//! End-to-end tests: the real rosterd binary on loopback, driven by real clients (the ldap3
//! crate and OpenLDAP's command-line tools), compared with a stock slapd where correctness is
//! in doubt. One test binary for the whole crate keeps linking cheap.

mod access;
mod accounts;
mod basic;
mod crash;
mod deployed;
mod differential;
mod groups;
mod import;
mod mail;
mod manage;
mod offline;
mod passthrough;
mod replica;
mod sync;
mod syncprov;
mod tls;
mod tools;
mod writes;
