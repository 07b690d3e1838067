#!/usr/bin/env python3
"""A mail directory in Roster's model for bench/mail.sh, loadable by rosterd and by a slapd
that includes schema/roster.schema.

Usage: gen_mail_ldif.py N > mail.ldif
Users: uid=userNNNNNNN,ou=users,dc=example,dc=com with mail userN@example.com and the alias
a.userN@example.com (both in mailLocalAddress, as rosterd keeps them).
Groups: cn=groupK (50 users each, address groupK@example.com); cn=outerK: two groups each
(outerK@example.com), for two-level nesting.
"""
import sys

n = int(sys.argv[1])
s = "dc=example,dc=com"
w = sys.stdout.write
w(f"dn: {s}\nobjectClass: dcObject\nobjectClass: organization\nobjectClass: domainRelatedObject\ndc: example\no: Example\nassociatedDomain: example.com\n\n")
for ou in ("users", "groups"):
    w(f"dn: ou={ou},{s}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
for i in range(n):
    u = f"user{i:07d}"
    w(f"dn: uid={u},ou=users,{s}\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\n"
      f"uid: {u}\ncn: User {i}\nsn: {i}\nmail: {u}@example.com\n"
      f"mailLocalAddress: {u}@example.com\nmailLocalAddress: a.{u}@example.com\n"
      f"rosterMailboxEnabled: TRUE\n\n")
groups = max(1, n // 50)
for g in range(groups):
    w(f"dn: cn=group{g:05d},ou=groups,{s}\nobjectClass: groupOfNames\nobjectClass: rosterGroup\n"
      f"cn: group{g:05d}\nmailLocalAddress: group{g:05d}@example.com\nrosterGroupKind: external\n")
    for i in range(g * 50, min(n, g * 50 + 50)):
        w(f"member: uid=user{i:07d},ou=users,{s}\n")
    w("\n")
for o in range(max(1, groups // 2)):
    w(f"dn: cn=outer{o:05d},ou=groups,{s}\nobjectClass: groupOfNames\nobjectClass: rosterGroup\n"
      f"cn: outer{o:05d}\nmailLocalAddress: outer{o:05d}@example.com\nrosterGroupKind: external\n"
      f"member: cn=group{2 * o:05d},ou=groups,{s}\n")
    if 2 * o + 1 < groups:
        w(f"member: cn=group{2 * o + 1:05d},ou=groups,{s}\n")
    w("\n")
