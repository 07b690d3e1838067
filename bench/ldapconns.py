#!/usr/bin/env python3
"""Many concurrent LDAP connections against one server, most of them idle, for bench/connections.sh.

    python3 bench/ldapconns.py --port P --pid SERVER_PID --users N [--idle 950] [--active 50] [--hold 60]

Plain sockets (asyncio) speaking pre-encoded BER, so nothing beyond python3 is needed. Every
connection binds as its own user (uid=userNNNNNNN, password pwNNNNNNN, as gen_ldif.py writes
them). The `active` connections then search by mail for random users, one request outstanding
each, until `hold` seconds have passed (and at most --max-ops searches in all); the idle ones wait.
At the end every idle connection issues one search too, to show it is still served, and all
unbind. The server's resident memory is read from /proc/PID/status before the connections are
opened, once they are all bound, and at the end of the hold.

Errors counted: connections refused or reset, binds or searches that do not succeed, searches
that do not return exactly the one entry asked for, replies slower than --timeout seconds.
Prints one line of `key=value` pairs.
"""
import argparse
import asyncio
import random
import sys
import time


from ldapwire import bind_request, message, search_request  # noqa: E402 (beside this script)


UNBIND = message(0x7FFFFFFF, b"\x42\x00")


async def read_message(reader):
    """One LDAPMessage -> (msgid, op tag, op content)."""
    head = await reader.readexactly(2)
    if head[0] != 0x30:
        raise ValueError("not an LDAPMessage")
    n = head[1]
    if n & 0x80:
        n = int.from_bytes(await reader.readexactly(n & 0x7F), "big")
    body = await reader.readexactly(n)
    # messageID
    if body[0] != 0x02:
        raise ValueError("no messageID")
    ilen = body[1]
    msgid = int.from_bytes(body[2 : 2 + ilen], "big")
    i = 2 + ilen
    tag = body[i]
    ln = body[i + 1]
    i += 2
    if ln & 0x80:
        k = ln & 0x7F
        ln = int.from_bytes(body[i : i + k], "big")
        i += k
    return msgid, tag, body[i : i + ln]


def result_code(content):
    # LDAPResult starts with resultCode ENUMERATED
    if content[0] != 0x0A:
        raise ValueError("no resultCode")
    return int.from_bytes(content[2 : 2 + content[1]], "big")


class Conn:
    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer
        self.next_id = 1

    async def bind(self, dn, pw, timeout):
        mid = self.next_id
        self.next_id += 1
        self.w.write(bind_request(mid, dn, pw))
        await self.w.drain()
        got, tag, content = await asyncio.wait_for(read_message(self.r), timeout)
        return got == mid and tag == 0x61 and result_code(content) == 0

    async def search(self, base, attr, value, timeout):
        """True when the search succeeds with exactly one entry."""
        mid = self.next_id
        self.next_id += 1
        self.w.write(search_request(mid, base, attr, value, []))
        await self.w.drain()
        entries = 0
        while True:
            got, tag, content = await asyncio.wait_for(read_message(self.r), timeout)
            if got != mid:
                return False
            if tag == 0x64:
                entries += 1
            elif tag == 0x65:
                return result_code(content) == 0 and entries == 1
            elif tag == 0x73:
                continue  # a referral: not expected, counted as a failure by the entry count

    def close(self):
        try:
            self.w.write(UNBIND)
            self.w.close()
        except Exception:
            pass


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server's pid, for its memory")
    ap.add_argument("--users", type=int, required=True, help="users in the directory")
    ap.add_argument("--idle", type=int, default=950)
    ap.add_argument("--active", type=int, default=50)
    ap.add_argument("--hold", type=float, default=60.0)
    ap.add_argument("--max-ops", type=int, default=50_000_000, help="cap on searches in all")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--open-batch", type=int, default=100, help="connections opened at once")
    ap.add_argument("--base", default="ou=people,dc=example,dc=com")
    ap.add_argument("--ldclt-conns", type=int, default=0, help="connections the ldclt command holds")
    ap.add_argument(
        "--ldclt",
        nargs=argparse.REMAINDER,
        help="drive the searches with this ldclt command instead of --active python connections"
        " (it must end by itself within --hold seconds, e.g. -n 50 -N 6); the rest of the line",
    )
    a = ap.parse_args()
    rnd = random.Random(1)
    total = a.idle + a.active
    errors = {"connect": 0, "bind": 0, "search": 0, "idle_check": 0}

    rss_before = rss_kb(a.pid)

    async def open_one(i):
        uid = i % a.users
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), a.timeout)
        except Exception:
            errors["connect"] += 1
            return None
        c = Conn(r, w)
        try:
            ok = await c.bind(f"uid=user{uid:07d},{a.base}", f"pw{uid:07d}", a.timeout)
        except Exception:
            ok = False
        if not ok:
            errors["bind"] += 1
            c.close()
            return None
        return c

    conns = []
    t_open0 = time.monotonic()
    for start in range(0, total, a.open_batch):
        batch = await asyncio.gather(*(open_one(i) for i in range(start, min(total, start + a.open_batch))))
        conns.extend(batch)
    t_open = time.monotonic() - t_open0
    await asyncio.sleep(1.0)
    rss_open = rss_kb(a.pid)
    threads_open = threads(a.pid)
    active = [c for c in conns[: a.active] if c is not None]
    idle = [c for c in conns[a.active :] if c is not None]

    ops = 0
    deadline = time.monotonic() + a.hold

    async def searcher(c):
        nonlocal ops
        while time.monotonic() < deadline and ops < a.max_ops:
            u = rnd.randrange(a.users)
            try:
                ok = await c.search(a.base, "mail", f"user{u:07d}@example.com", a.timeout)
            except Exception:
                ok = False
            ops += 1
            if not ok:
                errors["search"] += 1
                return  # the connection's state is unknown now

    c0 = cpu_ticks(a.pid)
    t0 = time.monotonic()
    if a.ldclt:
        # ldclt's connections are the active ones; sample memory while they are all open.
        proc = await asyncio.create_subprocess_exec(
            *a.ldclt, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out_task = asyncio.ensure_future(proc.communicate())
        await asyncio.sleep(max(1.0, a.hold - 5.0))
        rss_end = rss_kb(a.pid)
        threads_end = threads(a.pid)
        try:
            out, _ = await asyncio.wait_for(out_task, 60.0)
        except asyncio.TimeoutError:
            proc.kill()
            out, _ = await out_task
            errors["search"] += 1
        elapsed = time.monotonic() - t0
        c1 = cpu_ticks(a.pid)
        text = out.decode(errors="replace")
        rate = None
        for line in text.splitlines():
            if "Global average rate:" in line:
                rate = float(line.split("(")[1].split("/sec")[0])
            m = line.split("Global error ")
            if len(m) == 2 and " occurs " in m[1]:
                errors["search"] += int(m[1].split(" occurs ")[1].split()[0])
        if rate is None:
            sys.stderr.write(text)
            errors["search"] += 1
            rate = 0.0
        ops = int(rate * elapsed)
    else:
        await asyncio.gather(*(searcher(c) for c in active))
        elapsed = time.monotonic() - t0
        c1 = cpu_ticks(a.pid)
        rss_end = rss_kb(a.pid)
        threads_end = threads(a.pid)

    async def check(c):
        u = rnd.randrange(a.users)
        try:
            ok = await c.search(a.base, "mail", f"user{u:07d}@example.com", a.timeout)
        except Exception:
            ok = False
        if not ok:
            errors["idle_check"] += 1

    for start in range(0, len(idle), a.open_batch):
        await asyncio.gather(*(check(c) for c in idle[start : start + a.open_batch]))
    for c in conns:
        if c is not None:
            c.close()
    await asyncio.sleep(0.2)

    hz = 100
    try:
        import os

        hz = os.sysconf("SC_CLK_TCK")
    except Exception:
        pass
    n_err = sum(errors.values())
    rss_with = max(rss_open, rss_end)
    print(
        f"connections={sum(c is not None for c in conns) + a.ldclt_conns} idle={len(idle)} active={len(active) + a.ldclt_conns}"
        f" open_secs={t_open:.2f} hold_secs={elapsed:.2f} searches={ops}"
        f" rate={(rate if a.ldclt else ops / elapsed):.1f}"
        f" server_cpu_us_per_search={(c1 - c0) / hz * 1e6 / max(ops, 1):.1f}"
        f" rss_before_kb={rss_before} rss_open_kb={rss_open} rss_end_kb={rss_end}"
        f" threads_open={threads_open} threads_end={threads_end}"
        f" kb_per_conn={(rss_with - rss_before) / (total + a.ldclt_conns):.1f}"
        f" errors={n_err} " + " ".join(f"err_{k}={v}" for k, v in errors.items())
    )
    return 0 if n_err == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
