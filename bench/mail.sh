#!/usr/bin/env bash
# Postfix-style lookups against rosterd and a stock OpenLDAP slapd on the same mail directory
# (bench/gen_mail_ldif.py, Roster's schema loaded into slapd), the queries of
# docs/mail-servers.md: an alias, a group of 50 users (one search, then one base search per
# member, as Postfix's special_result_attribute does), a group of two such groups, and the
# sender login map. Load generator: tests/examples/mail_lookups.rs, 4 threads, one persistent
# connection each (as Postfix's proxymap keeps them). Rounds alternate between the servers;
# medians and ratios are reported, with server CPU per lookup from /proc/PID/stat.
#
#   bash bench/mail.sh [N]      # N users (default 100000); results appended to bench/RESULTS.md
set -euo pipefail
N=${1:-100000}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
THREADS=${THREADS:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
W=${BENCH_DIR:-/tmp/roster-bench-mail}
mkdir -p "$W"
. "$HERE/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$TOP/target}
(cd "$TOP" && cargo build --release -q -p roster-server --bin rosterd && cargo build --release -q -p roster-tests --example mail_lookups)
DRIVER=$TARGET/release/examples/mail_lookups
LDIF=$W/mail-$N.ldif
[ -s "$LDIF" ] || python3 "$HERE/gen_mail_ldif.py" "$N" > "$LDIF"

# Both servers: the same indexes, everything readable anonymously (lib.sh's slapd-like rules).
INDEXES='[storage.indexes]
objectClass = ["eq"]
uid = ["eq"]
mail = ["eq"]
mailLocalAddress = ["eq"]
member = ["eq"]'
rosterd_config "$W/rosterd-data" "$SLAPD_LIKE_ACCESS" | sed '/^\[storage.indexes\]/,/^member/d' > "$W/rosterd.toml"
printf '%s\n' "$INDEXES" >> "$W/rosterd.toml"
rm -rf "$W/rosterd-data" "$W/slapd"
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$LDIF"
"$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
ROSTER_PID=$!
SLAPD_PID=
trap 'kill $ROSTER_PID $SLAPD_PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q '^listening' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
ROSTER_PORT=$(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/rosterd.out" | head -1)

SLAPD_PORT=$(free_port)
mkdir -p "$W/slapd/db"
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
slapadd -q -f "$W/slapd/slapd.conf" -l "$LDIF"
slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$SLAPD_PORT/"
for _ in $(seq 100); do ldapsearch -x -H "ldap://127.0.0.1:$SLAPD_PORT" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1; done
SLAPD_PID=$(cat "$W/slapd/slapd.pid")

# run NAME PID PORT BASE KIND: one round; appends "NAME KIND lookups/s cpu_us_per_lookup searches/lookup".
HZ=$(getconf CLK_TCK)
run() {
  local c0 c1 out l s secs
  c0=$(cpu_ticks "$2")
  out=$("$DRIVER" "ldap://127.0.0.1:$3" "$4" "$5" "$N" "$THREADS" "$SECS")
  c1=$(cpu_ticks "$2")
  l=$(echo "$out" | awk '$1 == "lookups" {print $2}')
  s=$(echo "$out" | awk '$1 == "searches" {print $2}')
  secs=$(echo "$out" | awk '$1 == "seconds" {print $2}')
  echo "$1 $5 $(echo "$l / $secs" | bc -l) $(echo "($c1 - $c0) * 1000000 / $HZ / $l" | bc -l) $(echo "$s / $l" | bc -l)" >> "$W/mail.txt"
}
: > "$W/mail.txt"
KINDS=${KINDS:-alias group nested sender}
for r in $(seq "$ROUNDS"); do
  for k in $KINDS; do
    # rosterd answers at the empty base across its domains (the guide's search_base =);
    # slapd needs the suffix.
    run roster "$ROSTER_PID" "$ROSTER_PORT" "" "$k"
    run slapd "$SLAPD_PID" "$SLAPD_PORT" "dc=example,dc=com" "$k"
  done
done
{
  echo; echo "## $(date -u +%F) Postfix-style lookups, $N users ($(nproc) cores, $THREADS threads, $ROUNDS rounds of ${SECS} s)"; echo
  echo "| lookup | searches each | rosterd lookups/s | slapd lookups/s | rate ratio | rosterd CPU µs/lookup | slapd CPU µs/lookup | CPU ratio |"
  echo "|---|---|---|---|---|---|---|---|"
  for k in $KINDS; do
    rr=$(awk -v k="$k" '$1 == "roster" && $2 == k {print $3}' "$W/mail.txt" | median)
    sr=$(awk -v k="$k" '$1 == "slapd" && $2 == k {print $3}' "$W/mail.txt" | median)
    rc=$(awk -v k="$k" '$1 == "roster" && $2 == k {print $4}' "$W/mail.txt" | median)
    sc=$(awk -v k="$k" '$1 == "slapd" && $2 == k {print $4}' "$W/mail.txt" | median)
    se=$(awk -v k="$k" '$1 == "roster" && $2 == k {print $5}' "$W/mail.txt" | median)
    printf '| %s | %.0f | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |\n' "$k" "$se" "$rr" "$sr" "$(echo "$rr / $sr" | bc -l)" "$rc" "$sc" "$(echo "$rc / $sc" | bc -l)"
  done
  echo
  echo "Command: \`bash bench/mail.sh $N\`. Rate ratio = rosterd/slapd (higher is better for rosterd); CPU ratio = rosterd/slapd per lookup (lower is better). The client runs on the same 2 cores."
} | tee -a "$HERE/RESULTS.md"
