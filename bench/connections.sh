#!/usr/bin/env bash
# 1,000 concurrent connections: rosterd against a stock OpenLDAP slapd on the same generated
# directory, plain LDAP on loopback, in one run.
#
#   bash bench/connections.sh [N]   # N users (default 10000); results appended to bench/RESULTS.md
#
# Each round starts the server afresh, warms it with 100,000 searches (ldclt, 50 threads), then
# reads its resident memory ("without"), and `bench/ldapconns.py` opens IDLE (default 950)
# connections, each bound as its own user, while ldclt holds ACTIVE (default 50) more, bound as
# the root DN, that search by mail without pause for HOLD (default 60) seconds (ldclt samples of
# 10 s, so it ends by itself). The memory is read again once the idle connections are bound and
# again near the end of the hold ("with": the larger of the two). Then every idle connection
# searches once to show it is still served, and all close. Errors (connections refused or
# reset, failed binds or searches, ldclt errors, idle checks) must be zero. Rounds alternate
# between the servers (ROUNDS, default 3); medians.
set -euo pipefail
N=${1:-10000}
ROUNDS=${ROUNDS:-3}
IDLE=${IDLE:-950}
ACTIVE=${ACTIVE:-50}
HOLD=${HOLD:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-bench-conns}
rm -rf "$W"; mkdir -p "$W"
. "$HERE/lib.sh"
python3 "$SHARED/bench/gen_ldif.py" "$N" > "$W/dit.ldif"
ENTRIES=$(grep -c '^dn: ' "$W/dit.ldif")
TOTAL=$((IDLE + ACTIVE))
# Each server and the client need a descriptor per connection, and some more.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((TOTAL + 512)) ]; then
  ulimit -n $((TOTAL + 512)) || { echo "ulimit -n $(ulimit -n) is too low for $TOTAL connections" >&2; exit 1; }
fi

# rosterd: the defaults for connections (max_connections 4096, max_connections_per_address 1024,
# idle_timeout_secs 900) admit 1,000 clients from 127.0.0.1; access rules equivalent to slapd's
# and no lockout, as in bench/tls.sh.
rosterd_config "$W/rosterd-data" "$SLAPD_LIKE_ACCESS" > "$W/rosterd.toml"
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$W/dit.ldif" 2>/dev/null
# slapd: shared/bench/slapd_up.sh loads the data and starts it once; later rounds restart it on
# the same database.
SLAPD_PORT=$(free_port)
SLAPD_PID=$(bash "$SHARED/bench/slapd_up.sh" "$W/dit.ldif" "$SLAPD_PORT" "$W/slapd")
ROSTER_PID=
trap 'kill $ROSTER_PID $SLAPD_PID 2>/dev/null || true' EXIT
stop() { # pid: TERM, then wait (bounded) until it is gone
  kill "$1" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
}
stop "$SLAPD_PID"; SLAPD_PID=
start_roster() {
  "$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2>> "$W/rosterd.err" &
  ROSTER_PID=$!
  for _ in $(seq 200); do grep -q '^listening' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
  ROSTER_PORT=$(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/rosterd.out")
}
start_slapd() {
  slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$SLAPD_PORT/" >> "$W/slapd/slapd.log" 2>&1
  for _ in $(seq 100); do ldapsearch -x -H "ldap://127.0.0.1:$SLAPD_PORT" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1; done
  SLAPD_PID=$(cat "$W/slapd/slapd.pid")
}
search_ldclt() { # port threads extra-args...
  local port=$1 threads=$2; shift 2
  echo ldclt -h 127.0.0.1 -p "$port" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
    -f mail=userXXXXXXX@example.com -e esearch,random -r0 -R$((N - 1)) -n "$threads" -q "$@"
}
round() { # port pid -> ldapconns.py's line
  local port=$1 pid=$2
  # Warm-up, bounded: 2,000 searches per thread.
  $(search_ldclt "$port" "$ACTIVE" -T 2000) > /dev/null 2>&1 || true
  sleep 1
  python3 "$HERE/ldapconns.py" --port "$port" --pid "$pid" --users "$N" --idle "$IDLE" --active 0 \
    --hold "$HOLD" --ldclt-conns "$ACTIVE" --ldclt $(search_ldclt "$port" "$ACTIVE" -N $((HOLD / 10))) || true
}
: > "$W/conns.txt"
for r in $(seq "$ROUNDS"); do
  start_roster
  echo "roster $(round "$ROSTER_PORT" "$ROSTER_PID")" | tee -a "$W/conns.txt"
  stop "$ROSTER_PID"; ROSTER_PID=
  start_slapd
  echo "slapd $(round "$SLAPD_PORT" "$SLAPD_PID")" | tee -a "$W/conns.txt"
  stop "$SLAPD_PID"; SLAPD_PID=
done
field() { # who key -> values, one per round
  awk -v who="$1" -v key="$2" '$1 == who { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' "$W/conns.txt"
}
med() { field "$1" "$2" | median; }
total() { field "$1" "$2" | awk '{s+=$1} END {print s+0}'; }
for who in roster slapd; do
  [ "$(field "$who" connections | wc -l)" = "$ROUNDS" ] || { echo "a $who round printed nothing; see $W" >&2; exit 1; }
done
REFUSED=$(grep -c 'too many from this address' "$W/rosterd.err" || true)
ratio() { if [ "$(echo "$2 == 0" | bc)" = 1 ]; then echo n/a; else echo "$1 / $2" | bc -l | xargs printf %.2f; fi; }
mib() { echo "$1 / 1024" | bc -l | xargs printf '%.1f'; }
RB=$(med roster rss_before_kb); SB=$(med slapd rss_before_kb)
RO=$(med roster rss_open_kb); SO=$(med slapd rss_open_kb)
RE=$(med roster rss_end_kb); SE=$(med slapd rss_end_kb)
RK=$(med roster kb_per_conn); SK=$(med slapd kb_per_conn)
RR=$(med roster rate); SR=$(med slapd rate)
RC=$(med roster server_cpu_us_per_search); SC=$(med slapd server_cpu_us_per_search)
REPORT=$(cat <<TXT

## $(date -u +%F): $TOTAL concurrent connections ($IDLE idle, $ACTIVE searching) for $HOLD s, $ENTRIES entries, $(nproc) cores, $ROUNDS alternating rounds, medians

| measure | rosterd | slapd | ratio rosterd/slapd |
|---|---|---|---|
| errors, all rounds (connect, bind, search, idle check, ldclt) | $(total roster errors) | $(total slapd errors) | |
| exact search by mail on the $ACTIVE active connections (ops/s) | $(printf %.0f "$RR") | $(printf %.0f "$SR") | $(ratio "$RR" "$SR") |
| server CPU per search, meanwhile (µs) | $(printf %.1f "$RC") | $(printf %.1f "$SC") | $(ratio "$RC" "$SC") |
| resident memory before the connections, after warm-up (MiB) | $(mib "$RB") | $(mib "$SB") | $(ratio "$RB" "$SB") |
| resident memory with $IDLE idle connections bound (MiB) | $(mib "$RO") | $(mib "$SO") | $(ratio "$RO" "$SO") |
| resident memory near the end of the hold, all $TOTAL open (MiB) | $(mib "$RE") | $(mib "$SE") | $(ratio "$RE" "$SE") |
| memory per connection, (with - before) / $TOTAL (KiB) | $(printf %.1f "$RK") | $(printf %.1f "$SK") | $(ratio "$RK" "$SK") |

rosterd refused $REFUSED connections for its per-address cap. Command: \`bash bench/connections.sh $N\`
(raw rounds: $(tr '\n' ';' < "$W/conns.txt")).
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$HERE/RESULTS.md"
