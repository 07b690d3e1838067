#!/usr/bin/env bash
# Durable adds: rosterd (durability = "sync") against a stock slapd (back-mdb, which syncs each
# commit by default) on the same small directory, in one run; and searches with and without
# concurrent writers.
#
#   bash bench/writes.sh [N]    # N adds per measurement (default 2000); appended to bench/RESULTS.md
#
# One connection: `ldapadd` of N entries. Eight writers: eight `ldapadd` processes, N/8 each, at
# once. Searches: ldclt, 4 threads, exact search by mail (as bench/run.sh), one 10 s sample
# read-only, then one while eight `ldapadd` writers add without pause (they are stopped when
# the sample ends). Rounds alternate between the servers; medians of ROUNDS (default 3). The
# clients run on the same cores as the servers.
#
# The ceiling: the same adds against a second rosterd that does not sync its journal at all
# (durability = "buffer"). Eight durable writers cannot go faster than eight writers that never
# wait for the disk, so "8 unsynced writers / 1 durable connection" is the highest the
# "8 writers / 1 connection" ratio can reach on the machine the script runs on.
set -euo pipefail
N=${1:-2000}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-bench-writes}
rm -rf "$W"; mkdir -p "$W"
. "$HERE/lib.sh"
python3 "$SHARED/bench/gen_ldif.py" 1000 > "$W/base.ldif"

rosterd_config "$W/rosterd-data" > "$W/rosterd.toml"
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$W/base.ldif" 2>/dev/null
"$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
ROSTER_PID=$!
# The ceiling's server: the same data, no journal sync.
rosterd_config "$W/nosync-data" | sed 's/^durability = "sync"/durability = "buffer"/' > "$W/nosync.toml"
"$ROSTERD" --config "$W/nosync.toml" load --quiet "$W/base.ldif" 2>/dev/null
"$ROSTERD" --config "$W/nosync.toml" > "$W/nosync.out" 2> "$W/nosync.err" &
NOSYNC_PID=$!
SLAPD_PORT=$(free_port)
SLAPD_PID=$(bash "$SHARED/bench/slapd_up.sh" "$W/base.ldif" "$SLAPD_PORT" "$W/slapd")
WRITER_PIDS=()
trap 'kill $ROSTER_PID $NOSYNC_PID $SLAPD_PID "${WRITER_PIDS[@]}" 2>/dev/null || true' EXIT
listening_port() { # rosterd's stdout -> its port, once it listens
  for _ in $(seq 200); do grep -q '^listening' "$1" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$1"
}
ROSTER_PORT=$(listening_port "$W/rosterd.out")
NOSYNC_PORT=$(listening_port "$W/nosync.out")

# Writes LDIF of `count` new users named w<tag>-<i>.
gen() {
  awk -v tag="$1" -v n="$2" 'BEGIN { for (i = 1; i <= n; i++)
    printf "dn: uid=w%s-%d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: w%s-%d\ncn: Writer %d\nsn: W\nmail: w%s-%d@example.com\n\n", tag, i, tag, i, i, tag, i }'
}
add_rate() { # port tag writers -> adds per second
  local port=$1 tag=$2 writers=$3 each=$(( N / $3 )) t0 t1
  for k in $(seq "$writers"); do gen "$tag-$k" "$each" > "$W/add-$tag-$k.ldif"; done
  t0=$(now)
  for k in $(seq "$writers"); do
    ldapadd -x -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=com -w secret -f "$W/add-$tag-$k.ldif" > /dev/null &
  done
  wait
  t1=$(now)
  echo "$(( each * writers )) / ($t1 - $t0)" | bc -l
}
USERS=$(grep -c '^dn: uid=user' "$W/base.ldif")
# ldclt prints "Global average rate: X/thr (Y/sec)"; we read the per-second figure.
ldclt_rate() { sed -n 's/.*Global average rate:.*( *\([0-9.]*\)\/sec).*/\1/p' | tail -1; }
search_rate() { # port -> searches per second over one 10 s sample
  ldclt -h 127.0.0.1 -p "$1" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
    -f mail=userXXXXXXX@example.com -e esearch,random -r0 -R$((USERS - 1)) -n 4 -N 1 -q 2>&1 | ldclt_rate || true
}
# Writers that add without pause until stopped: far more entries than a 10 s sample takes.
WRITER_EACH=${WRITER_EACH:-20000}
count_added() { # port tag -> entries named w<tag>-*
  ldapsearch -x -LLL -H "ldap://127.0.0.1:$1" -D cn=admin,dc=example,dc=com -w secret \
    -b ou=people,dc=example,dc=com "(uid=w$2-*)" 1.1 2>/dev/null | grep -c '^dn:' || true
}
search_under_writes() { # port pid tag -> "search_rate add_rate server_cpu_share"
  local port=$1 pid=$2 tag=$3 t0 t1 c0 c1 rate added k
  for k in $(seq 8); do gen "$tag-$k" "$WRITER_EACH" > "$W/bg-$k.ldif"; done
  WRITER_PIDS=()
  for k in $(seq 8); do
    ldapadd -x -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=com -w secret -f "$W/bg-$k.ldif" > /dev/null 2>&1 &
    WRITER_PIDS+=($!)
  done
  sleep 0.5
  t0=$(now); c0=$(cpu_ticks "$pid")
  rate=$(search_rate "$port")
  t1=$(now); c1=$(cpu_ticks "$pid")
  kill "${WRITER_PIDS[@]}" 2>/dev/null || true
  wait "${WRITER_PIDS[@]}" 2>/dev/null || true
  WRITER_PIDS=()
  added=$(count_added "$port" "$tag")
  echo "$rate $(echo "$added / ($t1 - $t0 + 0.5)" | bc -l) $(echo "($c1 - $c0) / $(getconf CLK_TCK) / ($t1 - $t0)" | bc -l)"
}
: > "$W/writes.txt"
for r in $(seq "$ROUNDS"); do
  echo "roster1 $(add_rate "$ROSTER_PORT" "r$r-a" 1)" >> "$W/writes.txt"
  echo "slapd1 $(add_rate "$SLAPD_PORT" "s$r-a" 1)" >> "$W/writes.txt"
  echo "roster8 $(add_rate "$ROSTER_PORT" "r$r-b" 8)" >> "$W/writes.txt"
  echo "slapd8 $(add_rate "$SLAPD_PORT" "s$r-b" 8)" >> "$W/writes.txt"
  echo "nosync1 $(add_rate "$NOSYNC_PORT" "n$r-a" 1)" >> "$W/writes.txt"
  echo "nosync8 $(add_rate "$NOSYNC_PORT" "n$r-b" 8)" >> "$W/writes.txt"
  echo "rosterS0 $(search_rate "$ROSTER_PORT")" >> "$W/writes.txt"
  echo "slapdS0 $(search_rate "$SLAPD_PORT")" >> "$W/writes.txt"
  read -r sr ar cr <<< "$(search_under_writes "$ROSTER_PORT" "$ROSTER_PID" "r$r-c")"
  echo "rosterS8 $sr" >> "$W/writes.txt"; echo "rosterA8 $ar" >> "$W/writes.txt"; echo "rosterC8 $cr" >> "$W/writes.txt"
  read -r sr ar cr <<< "$(search_under_writes "$SLAPD_PORT" "$SLAPD_PID" "s$r-c")"
  echo "slapdS8 $sr" >> "$W/writes.txt"; echo "slapdA8 $ar" >> "$W/writes.txt"; echo "slapdC8 $cr" >> "$W/writes.txt"
done
med() { awk -v who="$1" '$1 == who {print $2}' "$W/writes.txt" | median; }
R1=$(med roster1); S1=$(med slapd1); R8=$(med roster8); S8=$(med slapd8)
U1=$(med nosync1); U8=$(med nosync8)
RS0=$(med rosterS0); SS0=$(med slapdS0); RS8=$(med rosterS8); SS8=$(med slapdS8)
RA8=$(med rosterA8); SA8=$(med slapdA8); RC8=$(med rosterC8); SC8=$(med slapdC8)
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
REPORT=$(cat <<TXT

## $(date -u +%F): durable adds, $N per measurement, $(nproc) cores, $ROUNDS alternating rounds, medians

| measure | rosterd | slapd | ratio rosterd/slapd |
|---|---|---|---|
| adds/s through one ldapadd connection | $(printf %.0f "$R1") | $(printf %.0f "$S1") | $(ratio "$R1" "$S1") |
| adds/s with 8 concurrent ldapadd writers | $(printf %.0f "$R8") | $(printf %.0f "$S8") | $(ratio "$R8" "$S8") |
| rosterd 8 writers / rosterd 1 connection (target >= 3) | $(ratio "$R8" "$R1") | slapd: $(ratio "$S8" "$S1") | |
| rosterd without journal sync (durability = "buffer"): adds/s, 1 connection / 8 writers | $(printf %.0f "$U1") / $(printf %.0f "$U8") | | |
| ceiling of the ratio above: 8 unsynced writers / 1 durable connection | $(ratio "$U8" "$R1") | | |
| 8 durable writers / 8 unsynced writers (what the journal syncs cost under load) | $(ratio "$R8" "$U8") | | |
| exact search by mail, ldclt 4 threads, read-only (ops/s) | $(printf %.0f "$RS0") | $(printf %.0f "$SS0") | $(ratio "$RS0" "$SS0") |
| the same search while 8 ldapadd writers add (ops/s) | $(printf %.0f "$RS8") | $(printf %.0f "$SS8") | $(ratio "$RS8" "$SS8") |
| search under 8 writers / read-only (target >= 0.8) | $(ratio "$RS8" "$RS0") | $(ratio "$SS8" "$SS0") | |
| adds/s of those 8 writers meanwhile | $(printf %.0f "$RA8") | $(printf %.0f "$SA8") | $(ratio "$RA8" "$SA8") |
| server CPU meanwhile (cores) | $(printf %.2f "$RC8") | $(printf %.2f "$SC8") | |

Command: \`bash bench/writes.sh $N\` (raw: $(tr '\n' ';' < "$W/writes.txt")).
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$HERE/RESULTS.md"
