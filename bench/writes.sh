#!/usr/bin/env bash
# Durable adds: rosterd (durability = "sync") against a stock slapd (back-mdb, which syncs each
# commit by default) on the same small directory, in one run.
#
#   bash bench/writes.sh [N]    # N adds per measurement (default 2000); appended to bench/RESULTS.md
#
# One connection: `ldapadd` of N entries. Eight writers: eight `ldapadd` processes, N/8 each, at
# once. Rounds alternate between the servers; medians of ROUNDS (default 3).
set -euo pipefail
N=${1:-2000}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-bench-writes}
rm -rf "$W"; mkdir -p "$W"
bash "$TOP/scripts/install-test-deps.sh"
cargo build --release --locked -p roster-server --bin rosterd >/dev/null 2>&1 || cargo build --release -p roster-server --bin rosterd
ROSTERD=$TOP/target/release/rosterd
python3 "$SHARED/bench/gen_ldif.py" 1000 > "$W/base.ldif"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

cat > "$W/rosterd.toml" <<CONF
[server]
listen = "127.0.0.1:0"
data_dir = "$W/rosterd-data"
[directory]
suffixes = ["dc=example,dc=com"]
root_dn = "cn=admin,dc=example,dc=com"
root_password = "secret"
[storage]
durability = "sync"
[storage.indexes]
objectClass = ["eq"]
uid = ["eq", "sub"]
mail = ["eq", "sub"]
cn = ["eq", "sub"]
member = ["eq"]
[log]
level = "warn"
CONF
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$W/base.ldif" 2>/dev/null
"$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
ROSTER_PID=$!
SLAPD_PORT=$(free_port)
SLAPD_PID=$(bash "$SHARED/bench/slapd_up.sh" "$W/base.ldif" "$SLAPD_PORT" "$W/slapd")
trap 'kill $ROSTER_PID $SLAPD_PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q '^listening' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
ROSTER_PORT=$(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/rosterd.out")

# Writes LDIF of `count` new users named w<tag>-<i>.
gen() {
  local tag=$1 count=$2
  for i in $(seq "$count"); do
    printf 'dn: uid=w%s-%d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: w%s-%d\ncn: Writer %d\nsn: W\nmail: w%s-%d@example.com\n\n' "$tag" "$i" "$tag" "$i" "$i" "$tag" "$i"
  done
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
: > "$W/writes.txt"
for r in $(seq "$ROUNDS"); do
  echo "roster1 $(add_rate "$ROSTER_PORT" "r$r-a" 1)" >> "$W/writes.txt"
  echo "slapd1 $(add_rate "$SLAPD_PORT" "s$r-a" 1)" >> "$W/writes.txt"
  echo "roster8 $(add_rate "$ROSTER_PORT" "r$r-b" 8)" >> "$W/writes.txt"
  echo "slapd8 $(add_rate "$SLAPD_PORT" "s$r-b" 8)" >> "$W/writes.txt"
done
med() { awk -v who="$1" '$1 == who {print $2}' "$W/writes.txt" | median; }
R1=$(med roster1); S1=$(med slapd1); R8=$(med roster8); S8=$(med slapd8)
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
REPORT=$(cat <<TXT

## $(date -u +%F): durable adds, $N per measurement, $(nproc) cores, $ROUNDS alternating rounds, medians

| measure | rosterd | slapd | ratio rosterd/slapd |
|---|---|---|---|
| adds/s through one ldapadd connection | $(printf %.0f "$R1") | $(printf %.0f "$S1") | $(ratio "$R1" "$S1") |
| adds/s with 8 concurrent ldapadd writers | $(printf %.0f "$R8") | $(printf %.0f "$S8") | $(ratio "$R8" "$S8") |
| rosterd 8 writers / rosterd 1 connection | $(ratio "$R8" "$R1") | | |

Command: \`bash bench/writes.sh $N\` (raw: $(tr '\n' ';' < "$W/writes.txt")).
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$HERE/RESULTS.md"
