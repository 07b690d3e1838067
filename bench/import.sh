#!/usr/bin/env bash
# A bulk import over LDAP: `roster users import` of N users from CSV into rosterd, against
# `ldapadd` of the same entries as LDIF into a stock OpenLDAP slapd (back-mdb, Roster's schema
# loaded, the same indexes), both durable (rosterd durability = "sync"; mdb syncs each
# commit), same machine, same run.
#
#   bash bench/import.sh [N]    # N users (default 100000); results appended to bench/RESULTS.md
#
# The CSV: Name;Password;FullName;MailAddress;Groups, a pre-hashed {SSHA} password (neither
# server hashes), two addresses each, every user in one of N/500 groups (--create-groups).
# The LDIF for slapd is what rosterd holds after the import (ldapsearch of its users and
# groups, operational attributes left out), so both servers end with the same entries: users
# first, then the groups with their members, as the tool writes them. slapd is measured with
# one ldapadd (the issue's reference) and with 4 ldapadd processes at once over the users
# split in four (as many connections as roster uses by default), groups after them.
# The wall time of each import is measured, and the CPU of the server and of the client.
# Rounds (ROUNDS, default 1) start every server on an empty domain; medians are reported.
set -euo pipefail
N=${1:-100000}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
W=${BENCH_DIR:-/tmp/roster-bench-import}
rm -rf "$W"; mkdir -p "$W"
. "$HERE/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$TOP/target}
(cd "$TOP" && { cargo build --release --locked -q -p roster-tools --bin roster 2>/dev/null || cargo build --release -q -p roster-tools --bin roster; })
ROSTER=$TARGET/release/roster
HZ=$(getconf CLK_TCK)

# The domain, empty.
cat > "$W/base.ldif" <<'LDIF'
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
objectClass: domainRelatedObject
dc: example
o: Example
associatedDomain: example.com

dn: ou=users,dc=example,dc=com
objectClass: organizationalUnit
ou: users

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups
LDIF
printf secret > "$W/password"
# "Pw-bulk-secret1", salted SSHA.
awk -v n="$N" 'BEGIN {
  print "Name;Password;FullName;MailAddress;Groups"
  for (i = 0; i < n; i++)
    printf "user%07d;{SSHA}q+Acw8fWj5eMeo3scxWqLeYqeShyMHN0;User %d Example;user%07d,u.%d;g%04d\n", i, i, i, i, int(i / 500)
}' > "$W/users.csv"

INDEXES='[storage.indexes]
objectClass = ["eq"]
uid = ["eq"]
mail = ["eq"]
mailLocalAddress = ["eq"]
member = ["eq"]
[security]
root_reads_passwords = true'
rosterd_up() { # -> sets ROSTER_PID, ROSTER_PORT
  rm -rf "$W/rosterd-data"
  rosterd_config "$W/rosterd-data" | sed '/^\[storage.indexes\]/,/^member/d' > "$W/rosterd.toml"
  printf '%s\n' "$INDEXES" >> "$W/rosterd.toml"
  "$ROSTERD" --config "$W/rosterd.toml" load --quiet "$W/base.ldif"
  "$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
  ROSTER_PID=$!
  for _ in $(seq 200); do grep -q '^listening' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
  ROSTER_PORT=$(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/rosterd.out" | head -1)
}
slapd_up() { # -> sets SLAPD_PID, SLAPD_PORT
  SLAPD_PORT=$(free_port); export SLAPD_PORT
  rm -rf "$W/slapd"; mkdir -p "$W/slapd/db"
  cat > "$W/slapd/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/misc.schema
include $TOP/schema/roster.schema
pidfile $W/slapd/slapd.pid
loglevel 0
moduleload back_mdb
threads 4
database mdb
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw secret
directory $W/slapd/db
maxsize 8589934592
index objectClass eq
index uid,mail,mailLocalAddress,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
CONF
  slapadd -q -f "$W/slapd/slapd.conf" -l "$W/base.ldif"
  slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$SLAPD_PORT/"
  for _ in $(seq 100); do ldapsearch -x -H "ldap://127.0.0.1:$SLAPD_PORT" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1; done
  SLAPD_PID=$(cat "$W/slapd/slapd.pid")
}
ROSTER_PID=; SLAPD_PID=
trap 'kill $ROSTER_PID $SLAPD_PID 2>/dev/null || true' EXIT
stop() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

# timed NAME PID CMD...: runs CMD, appends "NAME wall users/s server_cores client_cpu_s".
timed() {
  local name=$1 pid=$2 t0 t1 c0 c1 client; shift 2
  c0=$(cpu_ticks "$pid"); t0=$(now)
  /usr/bin/time -f '%U %S' -o "$W/client.time" "$@" > "$W/$name.out" 2> "$W/$name.err"
  t1=$(now); c1=$(cpu_ticks "$pid")
  client=$(awk '{print $1 + $2}' "$W/client.time")
  echo "$name $(echo "$t1 - $t0" | bc -l) $(echo "$N / ($t1 - $t0)" | bc -l) $(echo "($c1 - $c0) / $HZ / ($t1 - $t0)" | bc -l) $client" >> "$W/import.txt"
}
# ldapadd_all FILE...: one ldapadd per file, at once; waits for all.
ldapadd_all() {
  local pids=() f
  for f in "$@"; do
    ldapadd -x -H "ldap://127.0.0.1:$SLAPD_PORT" -D cn=admin,dc=example,dc=com -w secret -f "$f" > /dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
export -f ldapadd_all
: > "$W/import.txt"
for r in $(seq "$ROUNDS"); do
  rosterd_up
  timed roster "$ROSTER_PID" "$ROSTER" --no-tls --url "ldap://127.0.0.1:$ROSTER_PORT" \
    --bind-dn cn=admin,dc=example,dc=com --password-file "$W/password" \
    users import "$W/users.csv" --domain example.com --create-groups --connections "$CONNS"
  tail -1 "$W/roster.out"
  # The entries rosterd ends with, as LDIF for slapd.
  for ou in users groups; do
    ldapsearch -x -LLL -o ldif-wrap=no -E pr=1000/noprompt -H "ldap://127.0.0.1:$ROSTER_PORT" \
      -D cn=admin,dc=example,dc=com -w secret -b "ou=$ou,dc=example,dc=com" -s one '(objectClass=*)' '*' \
      | grep -v '^# \|^$' | sed 's/^dn:/\ndn:/' > "$W/$ou.ldif"
  done
  stop "$ROSTER_PID"; ROSTER_PID=
  USERS=$(grep -c '^dn: uid=' "$W/users.ldif"); NGROUPS=$(grep -c '^dn: cn=' "$W/groups.ldif")
  [ "$USERS" = "$N" ] || { echo "rosterd holds $USERS users after the import, not $N" >&2; exit 1; }
  awk -v k="$CONNS" -v dir="$W" 'BEGIN { RS = ""; ORS = "\n\n" } { print > (dir "/users-" (NR % k) ".ldif") }' "$W/users.ldif"

  slapd_up
  timed slapd1 "$SLAPD_PID" bash -c "ldapadd_all '$W/users.ldif' && ldapadd_all '$W/groups.ldif'"
  stop "$SLAPD_PID"; SLAPD_PID=
  slapd_up
  PARTS=$(for k in $(seq 0 $((CONNS - 1))); do printf "'%s' " "$W/users-$k.ldif"; done)
  timed slapd4 "$SLAPD_PID" bash -c "ldapadd_all $PARTS && ldapadd_all '$W/groups.ldif'"
  COUNT=$(ldapsearch -x -LLL -E pr=1000/noprompt -H "ldap://127.0.0.1:$SLAPD_PORT" -D cn=admin,dc=example,dc=com -w secret \
    -b ou=users,dc=example,dc=com -s one '(objectClass=*)' 1.1 | grep -c '^dn:')
  [ "$COUNT" = "$N" ] || { echo "slapd holds $COUNT users after the import, not $N" >&2; exit 1; }
  stop "$SLAPD_PID"; SLAPD_PID=
done
med() { awk -v who="$1" -v col="$2" '$1 == who {print $col}' "$W/import.txt" | median; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
RR=$(med roster 3); S1=$(med slapd1 3); S4=$(med slapd4 3)
REPORT=$(cat <<TXT

## $(date -u +%F): import of $N users and $NGROUPS groups over LDAP, $(nproc) cores, $ROUNDS round(s), medians

| import | wall s | users/s | server CPU (cores) | client CPU s | rosterd's rate / this |
|---|---|---|---|---|---|
| \`roster users import\` ($CONNS connections) into rosterd | $(printf %.1f "$(med roster 2)") | $(printf %.0f "$RR") | $(printf %.2f "$(med roster 4)") | $(printf %.1f "$(med roster 5)") | |
| one \`ldapadd\` into slapd | $(printf %.1f "$(med slapd1 2)") | $(printf %.0f "$S1") | $(printf %.2f "$(med slapd1 4)") | $(printf %.1f "$(med slapd1 5)") | $(ratio "$RR" "$S1") |
| $CONNS \`ldapadd\` at once into slapd | $(printf %.1f "$(med slapd4 2)") | $(printf %.0f "$S4") | $(printf %.2f "$(med slapd4 4)") | $(printf %.1f "$(med slapd4 5)") | $(ratio "$RR" "$S4") |

Command: \`bash bench/import.sh $N\` (raw: $(tr '\n' ';' < "$W/import.txt")). roster checks every
change with the No-Op control before it writes any, so it sends each entry twice.
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$HERE/RESULTS.md"
