#!/usr/bin/python3
"""A Python client (python3-ldap3) against rosterd, as mail tooling written in Python talks to it.

    ldap3_client.py HOST PORT LDAPS_PORT CA_FILE

Connects with StartTLS and with LDAPS (the server's certificate checked against CA_FILE), binds
as a user and as a service account, and prints one line per check: `ok <what>` or
`FAIL <what>: <detail>`; exits 1 if any check failed.
"""
import ssl
import sys

from ldap3 import Connection, Server, Tls, BASE, SUBTREE

host, port, ldaps_port, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tls = Tls(ca_certs_file=ca, validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT)
failed = False


def check(what, cond, detail=""):
    global failed
    print(("ok " if cond else "FAIL ") + what + ("" if cond else ": " + str(detail)))
    if not cond:
        failed = True


USER = "uid=u1,ou=users,dc=example,dc=com"
SERVICE = "cn=postfix,ou=services,dc=example,dc=com"
PW = "Secret-pw-1"

# StartTLS, then a simple bind over the protected connection.
c = Connection(Server(host, port=port, tls=tls), user=USER, password=PW)
check("open", c.open() is None or True)
check("start_tls", c.start_tls(), c.result)
check("bind user over StartTLS", c.bind(), c.result)
c.search(USER, "(objectClass=*)", BASE, attributes=["*"])
entry = c.entries[0] if c.entries else None
check("user reads own entry", entry is not None, c.result)
check("no password comes back", not c.response[0]["raw_attributes"].get("userPassword"), c.response)
c.search("dc=example,dc=com", "(objectClass=inetOrgPerson)", SUBTREE, attributes=["uid"])
check("user sees only itself", [e.entry_dn for e in c.entries] == [USER], [e.entry_dn for e in c.entries])
c.unbind()

# LDAPS, a service account resolving an address as a mail server does.
s = Connection(Server(host, port=ldaps_port, use_ssl=True, tls=tls), user=SERVICE, password=PW)
check("bind service over LDAPS", s.bind(), s.result)
s.search("dc=example,dc=com", "(mail=u2@example.com)", SUBTREE, attributes=["mail", "uid", "userPassword"])
check("service resolves an address", len(s.entries) == 1, s.result)
# What the server sent (ldap3 lists requested attributes in entries even when absent).
raw = s.response[0]["raw_attributes"] if s.response else {}
check("service gets no password", not raw.get("userPassword"), raw.get("userPassword"))
check("service gets the mail", raw.get("mail") == [b"u2@example.com"], raw.get("mail"))
s.unbind()

# Anonymous: the root DSE only.
a = Connection(Server(host, port=ldaps_port, use_ssl=True, tls=tls))
a.bind()
a.search("", "(objectClass=*)", BASE, attributes=["namingContexts"])
check("anonymous reads the root DSE", len(a.entries) == 1, a.result)
a.search("dc=example,dc=com", "(objectClass=*)", SUBTREE)
check("anonymous reads no entries", len(a.entries) == 0, [e.entry_dn for e in a.entries])
a.unbind()

# A wrong CA: the handshake fails.
bad = Tls(ca_certs_file="/etc/ssl/certs/ca-certificates.crt", validate=ssl.CERT_REQUIRED,
          version=ssl.PROTOCOL_TLS_CLIENT)
try:
    b = Connection(Server(host, port=ldaps_port, use_ssl=True, tls=bad), user=USER, password=PW)
    ok = b.bind()
    check("an unknown CA is refused", not ok, "bound")
except Exception:  # ldap3 raises on a failed handshake
    check("an unknown CA is refused", True)

sys.exit(1 if failed else 0)
