#!/usr/bin/env python3
"""Replication lag: WRITERS threads each change entries on the provider (`description` := a
token of its own) and time from the modify's answer to the first search on the replica that
finds the token. Prints one line: `lag_ms median p95 max writes_per_s N`.

    python3 bench/replag.py --provider PORT --replica PORT --users N [--writers 4] [--changes 200]

Each writer works on its own users (user i*K..), binds as the root DN of shared/bench's
directory on both servers, and polls the replica every millisecond (the same for every pair of
servers measured). Bounded: each writer makes `--changes` changes and waits at most 10 s for
each to appear.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ldapwire import Conn, bind_request, modify_replace, result_code, search_request  # noqa: E402

ROOT = ("cn=admin,dc=example,dc=com", "secret")


def bound(port):
    c = Conn(port)
    c.s.sendall(bind_request(1, *ROOT))
    tag, content = c.read_msg()
    if tag != 0x61 or result_code(content) != 0:
        sys.exit(f"bind to port {port} failed")
    return c


def writer(a, w, lags, errors):
    prov, repl = bound(a.provider), bound(a.replica)
    msgid = 2
    per = max(1, a.users // a.writers)
    for i in range(a.changes):
        uid = f"user{(w * per + i % per):07d}"
        token = f"lag-{w}-{i}-{time.time_ns()}"
        dn = f"uid={uid},ou=people,dc=example,dc=com"
        prov.s.sendall(modify_replace(msgid, dn, "description", token))
        msgid += 1
        tag, content = prov.read_msg()
        if tag != 0x67 or result_code(content) != 0:
            errors.append(f"modify of {uid}: tag {tag:#x} code {result_code(content)}")
            return
        acked = time.perf_counter()
        deadline = acked + 10
        while True:
            # The entry itself (a base-scope read): cheap on both servers, unlike a scan.
            repl.s.sendall(search_request(msgid, dn, "description", token, ["1.1"], scope=0))
            msgid += 1
            found = False
            while True:
                tag, content = repl.read_msg()
                if tag == 0x64:
                    found = True
                elif tag == 0x65:
                    break
            if found:
                lags.append(time.perf_counter() - acked)
                break
            if time.perf_counter() > deadline:
                errors.append(f"{uid}: not on the replica after 10 s")
                return
            time.sleep(0.001)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider", type=int, required=True)
    ap.add_argument("--replica", type=int, required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--changes", type=int, default=200)
    a = ap.parse_args()
    lags, errors = [], []
    threads = [threading.Thread(target=writer, args=(a, w, lags, errors)) for w in range(a.writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        sys.exit("; ".join(errors[:5]))
    lags.sort()
    ms = [x * 1000 for x in lags]
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"lag_ms {ms[len(ms) // 2]:.2f} {p95:.2f} {ms[-1]:.2f} writes_per_s {len(ms) / took:.0f} {len(ms)}")


if __name__ == "__main__":
    main()
