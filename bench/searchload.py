#!/usr/bin/env python3
"""A fixed number of `(mail=userNNNNNNN@example.com)` searches against one server, for
bench/profile.sh.

    python3 bench/searchload.py --port P --users N --searches S [--conns 4] [--attrs "uid mail"]

Plain sockets speaking pre-encoded BER, so nothing beyond python3 is needed. Opens --conns
connections, binds each as the root DN (as bench/run.sh's ldclt does), then issues the searches
one at a time, round-robin over the connections (one request outstanding, as a mail server
does), for users spread evenly over 0..N-1 (each a different user while S <= N). --attrs: the
attributes asked for ("" = all user attributes). Every search must succeed and return exactly
one entry, else the script exits 1. With --wait-file F it binds, then waits until F exists
before searching (so the caller can zero counters between the two). Prints one line:
`searches=S entries=E`.

With --cycle, each search gets a connection of its own, as a mail server's short-lived
lookups do: connect, bind as the root DN, search, unbind, close, one after the other (--conns is
not used; --wait-file is waited for before the first connection).

With --user-binds, each of the --searches operations is a connection that binds as a user and
does nothing else, as bench/run.sh's bind rounds (ldclt bindeach,bindonly) and Dovecot's
password checks do: connect, simple bind as uid=userNNNNNNN (password pwNNNNNNN, as
gen_ldif.py writes them), unbind, close; users spread over 0..N-1 as for the searches.
Every bind must succeed.
"""
import argparse
import os
import socket
import sys
import time


from ldapwire import Conn, bind_request, message, result_code, search_request  # noqa: E402 (beside this script)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--searches", type=int, required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--attrs", default="")
    ap.add_argument("--wait-file")
    ap.add_argument("--cycle", action="store_true")
    ap.add_argument("--user-binds", action="store_true")
    a = ap.parse_args()
    attrs = a.attrs.split()
    if a.cycle or a.user_binds:
        return cycles(a, attrs)
    conns = [Conn(a.port) for _ in range(a.conns)]
    for c in conns:
        bind(c)
    if a.wait_file:
        while not os.path.exists(a.wait_file):
            time.sleep(0.05)
    entries = 0
    step = max(1, a.users // max(1, a.searches))
    for k in range(a.searches):
        c = conns[k % len(conns)]
        user = (k * step) % a.users
        found = search(c, k, user, attrs)
        if found != 1:
            sys.exit(f"search for user{user:07d} returned {found} entries")
        entries += found
    for c in conns:
        c.s.sendall(message(99999, b"\x42\x00"))  # unbind
        c.s.close()
    print(f"searches={a.searches} entries={entries}")


def bind(c, dn="cn=admin,dc=example,dc=com", password="secret"):
    c.s.sendall(bind_request(1, dn, password))
    tag, content = c.read_msg()
    if tag != 0x61 or result_code(content) != 0:
        sys.exit(f"bind as {dn} failed: tag {tag:#x}, code {result_code(content) if tag == 0x61 else '-'}")


def search(c, k, user, attrs):
    """One search for `user`; the number of entries it returned."""
    c.s.sendall(search_request(k + 2, "ou=people,dc=example,dc=com", "mail", f"user{user:07d}@example.com", attrs))
    found = 0
    while True:
        tag, content = c.read_msg()
        if tag == 0x64:
            found += 1
        elif tag == 0x65:
            if result_code(content) != 0:
                sys.exit(f"search {k} failed with code {result_code(content)}")
            return found


def cycles(a, attrs):
    if a.wait_file:
        while not os.path.exists(a.wait_file):
            time.sleep(0.05)
    entries = 0
    step = max(1, a.users // max(1, a.searches))
    for k in range(a.searches):
        user = (k * step) % a.users
        c = Conn(a.port)
        if a.user_binds:
            bind(c, f"uid=user{user:07d},ou=people,dc=example,dc=com", f"pw{user:07d}")
        else:
            bind(c)
            found = search(c, k, user, attrs)
            if found != 1:
                sys.exit(f"search for user{user:07d} returned {found} entries")
            entries += found
        c.s.sendall(message(k + 3, b"\x42\x00"))  # unbind
        # Wait for the server to close, so that its side of the cycle is over.
        c.s.settimeout(5)
        try:
            while c.s.recv(4096):
                pass
        except OSError:
            pass
        c.s.close()
    if a.user_binds:
        print(f"binds={a.searches}")
    else:
        print(f"searches={a.searches} entries={entries}")


if __name__ == "__main__":
    main()
