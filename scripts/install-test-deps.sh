#!/usr/bin/env bash
# Installs what the end-to-end tests run against: OpenLDAP's slapd (the reference server of the
# differential tests) and its command-line tools, openssl (TLS version checks), python3-ldap3
# (a Python client), ldclt (from 389-ds-base) for benchmarks, and the mail servers the mail
# model is tested with: Postfix with its LDAP tables, Dovecot with LDAP, IMAP and POP3, and
# swaks (an SMTP client), and Samba as an Active Directory domain controller (the upstream of
# `roster sync`; samba-ad-provision holds the AD schema that provisioning needs).
# Services are kept from starting on their own; the tests start their own on loopback.
set -euo pipefail
need=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
command -v ldclt >/dev/null 2>&1 || need+=(389-ds-base)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# python3-ldap3 for Debian's own python (a python3 earlier in PATH may be another install).
/usr/bin/python3 -c 'import ldap3' >/dev/null 2>&1 || need+=(python3-ldap3)
[ -x /usr/sbin/postfix ] || need+=(postfix)
[ -e /usr/lib/postfix/postfix-ldap.so ] || need+=(postfix-ldap)
[ -x /usr/sbin/dovecot ] || need+=(dovecot-core)
[ -e /usr/lib/dovecot/modules/auth/libauthdb_ldap.so ] || need+=(dovecot-ldap)
[ -e /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -e /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
[ -x /usr/sbin/samba ] || need+=(samba samba-ad-dc winbind)
[ -d /usr/share/samba/setup/ad-schema ] || need+=(samba-ad-provision)
# Mailboxes belong to a vmail user, as docs/mail-servers.md sets it up.
if ! id vmail >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    useradd --system --home-dir /var/vmail --shell /usr/sbin/nologin vmail
  else
    echo "install-test-deps: need root to create the vmail user" >&2
    exit 1
  fi
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: need root to install: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep packaged services from starting: the tests run their own instances on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
id vmail >/dev/null 2>&1 || useradd --system --home-dir /var/vmail --shell /usr/sbin/nologin vmail
