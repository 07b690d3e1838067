#!/usr/bin/env bash
# Replication (RFC 4533) side by side: lag from a write's acknowledgement on the provider to the
# change being visible on a consumer, under 4 writers, and the provider's search rate with 2
# persistent consumers attached against none.
#
#   bash bench/replication.sh [N]     # N users (default 20000); results appended to bench/RESULTS.md
#
# Pairs measured in one run: slapd -> slapd (syncprov, syncrepl refreshAndPersist), rosterd ->
# slapd (a stock syncrepl consumer of rosterd), rosterd -> rosterd ([[replica]], durable). Every server
# keeps durable writes (rosterd `durability = "sync"`, back-mdb's default). Lag: bench/replag.py
# (4 writers x CHANGES changes, replica polled every millisecond). Search rate: ldclt esearch by
# mail, 4 threads, as bench/run.sh; ROUNDS alternating rounds, medians.
set -euo pipefail
N=${1:-20000}
ROUNDS=${ROUNDS:-3}
CHANGES=${CHANGES:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-bench-repl}
rm -rf "$W"; mkdir -p "$W"
. "$HERE/lib.sh"
LDIF=$W/dit-$N.ldif
python3 "$SHARED/bench/gen_ldif.py" "$N" > "$LDIF"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

# slapd_conf DIR EXTRA: shared/bench's slapd configuration (same schema, indexes and access)
# with syncprov loaded and EXTRA in the database section.
slapd_conf() {
  mkdir -p "$1/db"
  cat > "$1/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/misc.schema
pidfile $1/slapd.pid
loglevel 0
moduleload back_mdb
moduleload syncprov
threads 4
database mdb
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw secret
directory $1/db
maxsize 8589934592
index objectClass eq
index uid,mail,cn eq,sub
index member eq
index entryUUID,entryCSN eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
$2
CONF
}
# start_slapd DIR PORT: prints its pid once it answers.
start_slapd() {
  slapd -f "$1/slapd.conf" -h "ldap://127.0.0.1:$2/" >"$1/slapd.log" 2>&1
  for _ in $(seq 100); do ldapsearch -x -H "ldap://127.0.0.1:$2" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1; done
  cat "$1/slapd.pid"
}
syncrepl() { # provider URL
  echo "syncrepl rid=001 provider=$1 type=refreshAndPersist searchbase=\"dc=example,dc=com\" bindmethod=simple binddn=\"cn=admin,dc=example,dc=com\" credentials=secret retry=\"1 +\""
}
# start_rosterd NAME [EXTRA_TOML]: prints "pid port".
start_rosterd() {
  rosterd_config "$W/$1-data" "${2:-}" > "$W/$1.toml"
  "$ROSTERD" --config "$W/$1.toml" > "$W/$1.out" 2> "$W/$1.err" &
  local pid=$!
  for _ in $(seq 400); do grep -q '^listening' "$W/$1.out" 2>/dev/null && break; sleep 0.05; done
  echo "$pid $(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/$1.out")"
}
count_on() { # port -> entries below the suffix
  ldapsearch -x -LLL -H "ldap://127.0.0.1:$1" -D cn=admin,dc=example,dc=com -w secret -b dc=example,dc=com -z 0 1.1 2>/dev/null | grep -c '^dn:' || true
}
wait_synced() { # port entries
  for _ in $(seq 1200); do [ "$(count_on "$1")" = "$2" ] && return 0; sleep 0.25; done
  echo "consumer on port $1 did not reach $2 entries" >&2; exit 1
}
ENTRIES=$(grep -c '^dn: ' "$LDIF")
ldclt_rate() { sed -n 's/.*Global average rate:.*( *\([0-9.]*\)\/sec).*/\1/p' | tail -1; }
search_rate() { # port
  ldclt -h 127.0.0.1 -p "$1" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
    -f mail=userXXXXXXX@example.com -e esearch,random -r0 -R$((N - 1)) -n 4 -N 2 -q 2>&1 | ldclt_rate
}

# --- providers -------------------------------------------------------------------------------
SP_PORT=$(free_port)
slapd_conf "$W/slapd-provider" "overlay syncprov
syncprov-checkpoint 100 1"
slapadd -q -f "$W/slapd-provider/slapd.conf" -l "$LDIF" >/dev/null 2>&1
SP_PID=$(start_slapd "$W/slapd-provider" "$SP_PORT"); PIDS+=("$SP_PID")
"$ROSTERD" --config <(rosterd_config "$W/rp-data") load --quiet "$LDIF" 2>/dev/null
# Its consumers bind as the root DN, as slapd's do here: the root DN reads password hashes.
ROOT_READS='[security]
root_reads_passwords = true'
read -r RP_PID RP_PORT < <(start_rosterd rp "$ROOT_READS"); PIDS+=("$RP_PID")

# --- search rate with two persistent consumers of each provider and without -----------------
# The consumers are started once and fully synced; then each round measures both providers with
# them attached, stops them (SIGTERM: their searches end) and measures again, and starts them
# again (they come back with their cookies to an unchanged provider).
CONSUMER_DIRS=()
CONSUMERS=()
for i in 1 2; do
  for kind in s r; do
    if [ $kind = s ]; then prov=$SP_PORT; else prov=$RP_PORT; fi
    port=$(free_port); slapd_conf "$W/${kind}c$i" "$(syncrepl "ldap://127.0.0.1:$prov")"
    pid=$(start_slapd "$W/${kind}c$i" "$port"); PIDS+=("$pid")
    CONSUMER_DIRS+=("$W/${kind}c$i"); CONSUMERS+=("$port")
  done
done
for port in "${CONSUMERS[@]}"; do wait_synced "$port" "$ENTRIES"; done
consumers_stop() {
  for d in "${CONSUMER_DIRS[@]}"; do kill "$(cat "$d/slapd.pid")" 2>/dev/null || true; done
  for d in "${CONSUMER_DIRS[@]}"; do for _ in $(seq 100); do [ -e "$d/slapd.pid" ] || break; sleep 0.1; done; done
}
consumers_start() {
  local k=0
  for d in "${CONSUMER_DIRS[@]}"; do PIDS+=("$(start_slapd "$d" "${CONSUMERS[$k]}")"); k=$((k + 1)); done
  sleep 3
}
: > "$W/rates.txt"
for r in $(seq "$ROUNDS"); do
  echo "two roster $(search_rate "$RP_PORT")" >> "$W/rates.txt"
  echo "two slapd $(search_rate "$SP_PORT")" >> "$W/rates.txt"
  consumers_stop
  echo "none roster $(search_rate "$RP_PORT")" >> "$W/rates.txt"
  echo "none slapd $(search_rate "$SP_PORT")" >> "$W/rates.txt"
  consumers_start
done
rate() { awk -v a="$1" -v b="$2" '$1 == a && $2 == b {print $3}' "$W/rates.txt" | median; }

# --- lag under 4 writers ---------------------------------------------------------------------
lag() { python3 "$HERE/replag.py" --provider "$1" --replica "$2" --users "$N" --changes "$CHANGES"; }
SS=$(lag "$SP_PORT" "${CONSUMERS[0]}")
RS=$(lag "$RP_PORT" "${CONSUMERS[1]}")
echo secret > "$W/replica.pw"
read -r RR_PID RR_PORT < <(start_rosterd rr "[[replica]]
name = \"bench\"
provider = \"ldap://127.0.0.1:$RP_PORT\"
starttls = false
bind_dn = \"cn=admin,dc=example,dc=com\"
password_file = \"$W/replica.pw\"
base = \"dc=example,dc=com\""); PIDS+=("$RR_PID")
t0=$(now); wait_synced "$RR_PORT" "$ENTRIES"; t1=$(now)
RR_REFRESH=$(echo "$t1 - $t0" | bc -l)
RR=$(lag "$RP_PORT" "$RR_PORT")

report() {
  echo
  echo "## $(date -u +%F) replication, $ENTRIES entries ($(nproc) cores)"
  echo
  printf -- '- Lag from a write acknowledged on the provider to visible on the consumer, 4 writers x %s changes (median / p95 / max ms; writes/s of the write-then-wait loop):\n' "$CHANGES"
  echo "  - slapd -> slapd: $SS"
  echo "  - rosterd -> slapd: $RS"
  echo "  - rosterd -> rosterd ([[replica]]): $RR"
  printf -- '- A new rosterd replica of %s entries is complete (all entries there) %.1f s after it starts\n' "$ENTRIES" "$RR_REFRESH"
  printf -- '- Provider search rate (ldclt esearch by mail, 4 threads), medians of %s rounds: rosterd %s/s with none, %s/s with 2 persistent consumers (%.2fx); slapd %s/s and %s/s (%.2fx)\n' \
    "$ROUNDS" "$(rate none roster)" "$(rate two roster)" "$(echo "$(rate two roster) / $(rate none roster)" | bc -l)" \
    "$(rate none slapd)" "$(rate two slapd)" "$(echo "$(rate two slapd) / $(rate none slapd)" | bc -l)"
  echo "  Command: \`bash bench/replication.sh $N\`"
}
report | tee -a "$HERE/RESULTS.md"
