#!/usr/bin/env bash
# Side-by-side benchmark of rosterd and a stock OpenLDAP slapd on the same generated directory.
#
#   bash bench/run.sh [N]          # N users (default 100000); results appended to bench/RESULTS.md
#   LOAD_ONLY=1 bash bench/run.sh 1000000   # only the bulk-load comparison
#   NO_RESULTS=1 bash bench/run.sh 20000    # print the table without appending it to RESULTS.md
#
# Load: `rosterd load` vs `slapadd -q`, same LDIF, same indexes. Load generator: ldclt (389-ds-base),
# 4 threads, alternating rounds against each server after a 10 s warm-up of each (WARMUP=0: none);
# we report medians and ratios, since shared machines are noisy. Server CPU per operation comes from /proc/PID/stat (utime+stime).
set -euo pipefail
N=${1:-100000}
ROUNDS=${ROUNDS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-bench}
mkdir -p "$W"
. "$HERE/lib.sh"
LDIF=$W/dit-$N.ldif
[ -s "$LDIF" ] || python3 "$SHARED/bench/gen_ldif.py" "$N" > "$LDIF"
ENTRIES=$(grep -c '^dn: ' "$LDIF")

# --- bulk load -------------------------------------------------------------------------------
rosterd_config "$W/rosterd-data" > "$W/rosterd.toml"
rm -rf "$W/rosterd-data" "$W/slapd"
SLAPD_PORT=$(free_port)
SLAPD_PID=$(bash "$SHARED/bench/slapd_up.sh" "$LDIF" "$SLAPD_PORT" "$W/slapd")
# Timed loads alternate, each into a fresh directory after `sync`, so that neither pays for
# the other's page-cache writeback; slapadd runs alone with slapd_up.sh's configuration.
sed "s#directory .*#directory $W/slapadd-only/db#; s#pidfile .*#pidfile $W/slapadd-only/pid#" "$W/slapd/slapd.conf" > "$W/slapadd.conf"
LOAD_ROUNDS=${LOAD_ROUNDS:-$ROUNDS}
: > "$W/load.txt"
for r in $(seq "$LOAD_ROUNDS"); do
  rm -rf "$W/rosterd-data"; sync
  t0=$(now); "$ROSTERD" --config "$W/rosterd.toml" load --quiet "$LDIF" 2>/dev/null; t1=$(now)
  echo "roster $(echo "$t1 - $t0" | bc -l)" >> "$W/load.txt"
  rm -rf "$W/slapadd-only"; mkdir -p "$W/slapadd-only/db"; sync
  t0=$(now); slapadd -q -f "$W/slapadd.conf" -l "$LDIF" >/dev/null 2>&1; t1=$(now)
  echo "slapd $(echo "$t1 - $t0" | bc -l)" >> "$W/load.txt"
done
rm -rf "$W/slapadd-only"
ROSTER_LOAD=$(awk '$1 == "roster" {print $2}' "$W/load.txt" | median)
SLAPADD=$(awk '$1 == "slapd" {print $2}' "$W/load.txt" | median)
printf 'load %s entries: rosterd %.2f s, slapadd -q %.2f s, ratio slapadd/rosterd %.2fx\n' "$ENTRIES" "$ROSTER_LOAD" "$SLAPADD" "$(echo "$SLAPADD / $ROSTER_LOAD" | bc -l)"
if [ -n "${LOAD_ONLY:-}" ]; then
  kill "$SLAPD_PID"
  {
    echo; echo "## $(date -u +%F) load of $ENTRIES entries ($(nproc) cores)"; echo
    printf -- '- rosterd load: %.2f s; slapadd -q: %.2f s; slapadd/rosterd: %.2fx (medians of %s alternating rounds: %s)\n' "$ROSTER_LOAD" "$SLAPADD" "$(echo "$SLAPADD / $ROSTER_LOAD" | bc -l)" "$LOAD_ROUNDS" "$(tr '\n' ';' < "$W/load.txt")"
    echo "  Command: \`LOAD_ONLY=1 bash bench/run.sh $N\`"
  } >> "$HERE/RESULTS.md"
  exit 0
fi

# --- servers ---------------------------------------------------------------------------------
"$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
ROSTER_PID=$!
trap 'kill $ROSTER_PID $SLAPD_PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q '^listening' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
ROSTER_PORT=$(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/rosterd.out")
for port in "$ROSTER_PORT" "$SLAPD_PORT"; do
  n=$(ldapsearch -x -LLL -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com "(mail=user0000042@example.com)" 1.1 | grep -c '^dn:')
  [ "$n" = 1 ] || { echo "server on port $port does not find user0000042 by mail" >&2; exit 1; }
done

# ldclt prints "Global average rate: X/thr (Y/sec)"; we read the per-second figure.
ldclt_rate() { sed -n 's/.*Global average rate:.*( *\([0-9.]*\)\/sec).*/\1/p' | tail -1; }
search_round() { # port pid -> "rate cpu_us_per_op"
  local c0 c1 out rate
  c0=$(cpu_ticks "$2")
  out=$(ldclt -h 127.0.0.1 -p "$1" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
    -f mail=userXXXXXXX@example.com -e esearch,random -r0 -R$((N - 1)) -n 4 -N 2 -q 2>&1 || true)
  c1=$(cpu_ticks "$2")
  rate=$(echo "$out" | ldclt_rate)
  echo "$rate $(echo "($c1 - $c0) * 10000 / ($rate * 20)" | bc -l)"
}
# connect + bind as the root DN + search + unbind, a new connection for every search (ldclt's
# bindeach): what Postfix and Dovecot do with short-lived connections.
cycle_round() {
  local c0 c1 out rate
  c0=$(cpu_ticks "$2")
  out=$(ldclt -h 127.0.0.1 -p "$1" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
    -f mail=userXXXXXXX@example.com -e esearch,bindeach,random -r0 -R$((N - 1)) -n 4 -N 2 -q 2>&1 || true)
  c1=$(cpu_ticks "$2")
  rate=$(echo "$out" | ldclt_rate)
  echo "$rate $(echo "($c1 - $c0) * 10000 / ($rate * 20)" | bc -l)"
}
bind_round() {
  local c0 c1 out rate
  c0=$(cpu_ticks "$2")
  out=$(ldclt -h 127.0.0.1 -p "$1" -e bindeach,bindonly,randombinddn,randombinddnlow=0,randombinddnhigh=$((N - 1)) \
    -D uid=userXXXXXXX,ou=people,dc=example,dc=com -w pwXXXXXXX -n 4 -N 2 -q 2>&1 || true)
  c1=$(cpu_ticks "$2")
  rate=$(echo "$out" | ldclt_rate)
  echo "$rate $(echo "($c1 - $c0) * 10000 / ($rate * 20)" | bc -l)"
}
# Warm-up, not counted: one 10 s search sample against each server (WARMUP=0 to skip), so
# that the measured rounds see both in their steady state. Without it the first round of
# rosterd fills its read cache (each user's entry decoded once from the store) while slapd's
# map is already in the page cache from slapadd.
if [ "${WARMUP:-1}" != 0 ]; then
  for port in "$ROSTER_PORT" "$SLAPD_PORT"; do
    ldclt -h 127.0.0.1 -p "$port" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
      -f mail=userXXXXXXX@example.com -e esearch,random -r0 -R$((N - 1)) -n 4 -N 1 -q > /dev/null 2>&1 || true
  done
fi
: > "$W/search.txt"; : > "$W/bind.txt"; : > "$W/cycle.txt"
for r in $(seq "$ROUNDS"); do
  echo "roster $(search_round "$ROSTER_PORT" "$ROSTER_PID")" >> "$W/search.txt"
  echo "slapd $(search_round "$SLAPD_PORT" "$SLAPD_PID")" >> "$W/search.txt"
  echo "roster $(bind_round "$ROSTER_PORT" "$ROSTER_PID")" >> "$W/bind.txt"
  echo "slapd $(bind_round "$SLAPD_PORT" "$SLAPD_PID")" >> "$W/bind.txt"
  echo "roster $(cycle_round "$ROSTER_PORT" "$ROSTER_PID")" >> "$W/cycle.txt"
  echo "slapd $(cycle_round "$SLAPD_PORT" "$SLAPD_PID")" >> "$W/cycle.txt"
done
med() { awk -v who="$1" -v col="$2" '$1 == who {print $col}' "$3" | median; }
S_R=$(med roster 2 "$W/search.txt"); S_S=$(med slapd 2 "$W/search.txt")
C_R=$(med roster 3 "$W/search.txt"); C_S=$(med slapd 3 "$W/search.txt")
B_R=$(med roster 2 "$W/bind.txt"); B_S=$(med slapd 2 "$W/bind.txt")
CB_R=$(med roster 3 "$W/bind.txt"); CB_S=$(med slapd 3 "$W/bind.txt")
Y_R=$(med roster 2 "$W/cycle.txt"); Y_S=$(med slapd 2 "$W/cycle.txt")
CY_R=$(med roster 3 "$W/cycle.txt"); CY_S=$(med slapd 3 "$W/cycle.txt")
for v in "$S_R" "$S_S" "$B_R" "$B_S" "$Y_R" "$Y_S"; do
  [ -n "$v" ] || { echo "a load round produced no rate; raw rounds in $W/search.txt, $W/bind.txt and $W/cycle.txt" >&2; exit 1; }
done
RSS_R=$(rss_kb "$ROSTER_PID"); RSS_S=$(rss_kb "$SLAPD_PID")
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
REPORT=$(cat <<TXT

## $(date -u +%F): $ENTRIES entries ($N users), $(nproc) cores, $ROUNDS alternating rounds, medians$( [ "${WARMUP:-1}" != 0 ] && echo ", after a warm-up")

| measure | rosterd | slapd | ratio rosterd/slapd |
|---|---|---|---|
| exact search by mail, ldclt 4 threads (ops/s) | $(printf %.0f "$S_R") | $(printf %.0f "$S_S") | $(ratio "$S_R" "$S_S") |
| server CPU per search (µs) | $(printf %.1f "$C_R") | $(printf %.1f "$C_S") | $(ratio "$C_R" "$C_S") |
| new connection + simple bind, ldclt 4 threads (ops/s) | $(printf %.0f "$B_R") | $(printf %.0f "$B_S") | $(ratio "$B_R" "$B_S") |
| server CPU per connection + bind (µs) | $(printf %.1f "$CB_R") | $(printf %.1f "$CB_S") | $(ratio "$CB_R" "$CB_S") |
| connect + bind + search + unbind, ldclt 4 threads (cycles/s) | $(printf %.0f "$Y_R") | $(printf %.0f "$Y_S") | $(ratio "$Y_R" "$Y_S") |
| server CPU per cycle (µs) | $(printf %.1f "$CY_R") | $(printf %.1f "$CY_S") | $(ratio "$CY_R" "$CY_S") |
| bulk load (s; lower is better) | $(printf %.2f "$ROSTER_LOAD") | $(printf %.2f "$SLAPADD") (slapadd -q) | $(ratio "$SLAPADD" "$ROSTER_LOAD")x faster |
| resident memory after the run (MiB) | $(( RSS_R / 1024 )) | $(( RSS_S / 1024 )) | $(ratio "$RSS_R" "$RSS_S") |

Command: \`bash bench/run.sh $N\` (raw rounds: load $(tr '\n' ';' < "$W/load.txt") search $(tr '\n' ';' < "$W/search.txt") bind $(tr '\n' ';' < "$W/bind.txt") cycle $(tr '\n' ';' < "$W/cycle.txt")).
TXT
)
echo "$REPORT"
# NO_RESULTS=1 (bench/report.sh): print only.
[ -n "${NO_RESULTS:-}" ] || echo "$REPORT" >> "$HERE/RESULTS.md"
