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
"""
import argparse
import os
import socket
import sys
import time


from ldapwire import ber_int, bind_request, message, tlv  # noqa: E402 (beside this script)


def search_request(msgid, base, attr, value, attrs):
    filt = tlv(0xA3, tlv(0x04, attr.encode()) + tlv(0x04, value.encode()))
    op = tlv(
        0x63,
        tlv(0x04, base.encode())
        + ber_int(0x0A, 2)  # subtree
        + ber_int(0x0A, 0)  # never deref
        + ber_int(0x02, 0)  # size limit
        + ber_int(0x02, 0)  # time limit
        + tlv(0x01, b"\x00")  # typesOnly false
        + filt
        + tlv(0x30, b"".join(tlv(0x04, a.encode()) for a in attrs)),
    )
    return message(msgid, op)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def read_msg(self):
        """One LDAP message: (op tag, op content)."""
        while True:
            if len(self.buf) >= 2:
                n = self.buf[1]
                hdr = 2
                if n & 0x80:
                    k = n & 0x7F
                    if len(self.buf) >= 2 + k:
                        n = int.from_bytes(self.buf[2 : 2 + k], "big")
                        hdr = 2 + k
                    else:
                        n = None
                if n is not None and len(self.buf) >= hdr + n:
                    body = self.buf[hdr : hdr + n]
                    self.buf = self.buf[hdr + n :]
                    # body: INTEGER msgid, then the op
                    i = 2 + body[1]
                    tag = body[i]
                    ln = body[i + 1]
                    j = i + 2
                    if ln & 0x80:
                        k = ln & 0x7F
                        ln = int.from_bytes(body[j : j + k], "big")
                        j += k
                    return tag, body[j : j + ln]
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk


def result_code(content):
    # ENUMERATED resultCode is first
    return content[2] if content[1] == 1 else int.from_bytes(content[2 : 2 + content[1]], "big")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--searches", type=int, required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--attrs", default="")
    ap.add_argument("--wait-file")
    a = ap.parse_args()
    attrs = a.attrs.split()
    conns = [Conn(a.port) for _ in range(a.conns)]
    for c in conns:
        c.s.sendall(bind_request(1, "cn=admin,dc=example,dc=com", "secret"))
        tag, content = c.read_msg()
        if tag != 0x61 or result_code(content) != 0:
            sys.exit(f"bind failed: tag {tag:#x}")
    if a.wait_file:
        while not os.path.exists(a.wait_file):
            time.sleep(0.05)
    entries = 0
    step = max(1, a.users // max(1, a.searches))
    for k in range(a.searches):
        c = conns[k % len(conns)]
        user = (k * step) % a.users
        c.s.sendall(
            search_request(k + 2, "ou=people,dc=example,dc=com", "mail", f"user{user:07d}@example.com", attrs)
        )
        found = 0
        while True:
            tag, content = c.read_msg()
            if tag == 0x64:
                found += 1
            elif tag == 0x65:
                if result_code(content) != 0:
                    sys.exit(f"search {k} failed with code {result_code(content)}")
                break
        if found != 1:
            sys.exit(f"search for user{user:07d} returned {found} entries")
        entries += found
    for c in conns:
        c.s.sendall(message(99999, b"\x42\x00"))  # unbind
        c.s.close()
    print(f"searches={a.searches} entries={entries}")


if __name__ == "__main__":
    main()
