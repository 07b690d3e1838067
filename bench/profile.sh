#!/usr/bin/env bash
# Instructions and system calls per `(mail=x)` search, rosterd against a stock OpenLDAP slapd on
# the same generated directory. Instruction counts (callgrind) repeat from run to run, unlike
# wall-clock rates on a shared machine.
#
#   bash bench/profile.sh [N]      # N users (default 20000)
#
# Environment: SEARCHES (default 2000) searches over CONNS (default 4) connections bound as the
# root DN, one outstanding at a time, each for a different user (bench/searchload.py); ATTRS the
# attributes asked for (default "": all user attributes, as ldclt in bench/run.sh asks); CYCLES
# (default 1000) connect + bind + search + unbind cycles, one connection each, one after the
# other (`searchload.py --cycle`: what Postfix and Dovecot do with short-lived connections);
# BINDS (default 5000) connections that each bind as a different user and unbind
# (`searchload.py --user-binds`: bench/run.sh's bind rounds, Dovecot's password checks). 5000
# is more than the names rosterd keeps parsed (4096, the oldest dropped first), so that, as in
# run.sh's random binds over 100,000 users, each bind parses its DN while the entry is cached.
#
# For each server: start it under `valgrind --tool=callgrind`, run the searches once to warm it,
# open and bind the connections of a second run, zero the counters (`callgrind_control -z`), run
# the searches, dump (`callgrind_control -d`). So accepting, binding and startup are not counted,
# only the search phase (and whatever the server's background threads do meanwhile). Then, on
# the same server, the cycles are measured the same way (warm-up run, zero, run, dump), accepts,
# binds and connection teardown included. System calls
# come from a separate run of the server without valgrind, `strace -c -f -p` attached over the same
# phase. Profiles are left in $W (default /tmp/roster-prof) as callgrind.{rosterd,slapd}.out for
# callgrind_annotate; the summary goes to stdout.
set -euo pipefail
N=${1:-20000}
SEARCHES=${SEARCHES:-2000}
CYCLES=${CYCLES:-1000}
BINDS=${BINDS:-5000}
CONNS=${CONNS:-4}
ATTRS=${ATTRS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-prof}
mkdir -p "$W"
. "$HERE/lib.sh"
for tool in valgrind callgrind_control callgrind_annotate strace; do
  command -v "$tool" >/dev/null || { echo "profile.sh needs $tool" >&2; exit 1; }
done
LDIF=$W/dit-$N.ldif
[ -s "$LDIF" ] || python3 "$SHARED/bench/gen_ldif.py" "$N" > "$LDIF"

# --- data: rosterd's store and slapd's database, loaded once ---------------------------------
ROSTER_PORT=$(free_port)
rosterd_config "$W/rosterd-data" "$SLAPD_LIKE_ACCESS" | sed "s#^listen = .*#listen = \"127.0.0.1:$ROSTER_PORT\"#" > "$W/rosterd.toml"
rm -rf "$W/rosterd-data"
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$LDIF" 2>/dev/null
SLAPD_PORT=$(free_port)
SLAPD_PID=$(bash "$SHARED/bench/slapd_up.sh" "$LDIF" "$SLAPD_PORT" "$W/slapd")
kill "$SLAPD_PID"; while kill -0 "$SLAPD_PID" 2>/dev/null; do sleep 0.1; done

SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; true' EXIT
start_server() { # name wrapper... : starts the server (under the wrapper) on its port
  local name=$1; shift
  case $name in
    rosterd) "$@" "$ROSTERD" --config "$W/rosterd.toml" > "$W/$name.out" 2> "$W/$name.err" & ;;
    slapd) "$@" slapd -d 0 -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$SLAPD_PORT/" > "$W/$name.out" 2> "$W/$name.err" & ;;
  esac
  SERVER_PID=$!
  local port; port=$([ "$name" = rosterd ] && echo "$ROSTER_PORT" || echo "$SLAPD_PORT")
  for _ in $(seq 600); do
    ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base 1.1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$name did not start; see $W/$name.err" >&2; exit 1
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
port_of() { [ "$1" = rosterd ] && echo "$ROSTER_PORT" || echo "$SLAPD_PORT"; }
load() { # name [extra args]: the searches against the server; prints searches=S entries=E
  local name=$1; shift
  python3 "$HERE/searchload.py" --port "$(port_of "$name")" --users "$N" --searches "$COUNT" \
    --conns "$CONNS" --attrs "$ATTRS" $MODE "$@"
}
COUNT=$SEARCHES MODE=
# measured_load name before after: warm-up run, then a run whose connections are bound before
# `before` runs and whose searches end before `after` runs.
measured_load() {
  local name=$1 before=$2 after=$3 out
  load "$name" > /dev/null
  rm -f "$W/go"
  load "$name" --wait-file "$W/go" > "$W/load.out" &
  local lp=$!
  sleep 1
  $before
  touch "$W/go"
  wait "$lp"
  $after
  out=$(cat "$W/load.out")
  case $MODE in
    --user-binds) [ "$out" = "binds=$COUNT" ] || { echo "$name: binds failed: $out" >&2; exit 1; } ;;
    *) [ "$out" = "searches=$COUNT entries=$COUNT" ] || { echo "$name: searches did not each find one entry: $out" >&2; exit 1; } ;;
  esac
}

# --- instructions ----------------------------------------------------------------------------
cg_zero() { callgrind_control -z "$SERVER_PID" > /dev/null 2>&1; }
cg_dump() { callgrind_control -d "$SERVER_PID" > /dev/null 2>&1; }
cg_total() { # file: the instructions it counted
  local total
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$1")
  [ -n "$total" ] || total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$1")
  echo "$total"
}
declare -A IR IRC IRB SYS
for name in rosterd slapd; do
  rm -f "$W/callgrind.$name.out"*
  start_server "$name" valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.$name.out" --trace-children=no
  COUNT=$SEARCHES MODE=
  measured_load "$name" cg_zero cg_dump
  COUNT=$CYCLES MODE=--cycle
  measured_load "$name" cg_zero cg_dump
  COUNT=$BINDS MODE=--user-binds
  measured_load "$name" cg_zero cg_dump
  COUNT=$SEARCHES MODE=
  stop_server
  # The dumps are numbered in phase order: searches, cycles, user binds.
  mv "$W/callgrind.$name.out.1" "$W/callgrind.$name.search.out"
  mv "$W/callgrind.$name.out.2" "$W/callgrind.$name.cycle.out"
  mv "$W/callgrind.$name.out.3" "$W/callgrind.$name.bind.out"
  IR[$name]=$(( $(cg_total "$W/callgrind.$name.search.out") / SEARCHES ))
  IRC[$name]=$(( $(cg_total "$W/callgrind.$name.cycle.out") / CYCLES ))
  IRB[$name]=$(( $(cg_total "$W/callgrind.$name.bind.out") / BINDS ))
done

# --- system calls ----------------------------------------------------------------------------
ST_PID=
st_start() { strace -c -f -p "$SERVER_PID" -o "$W/strace.out" 2> /dev/null & ST_PID=$!; sleep 1; }
st_stop() { sleep 0.2; kill -INT "$ST_PID"; wait "$ST_PID" 2>/dev/null || true; }
for name in rosterd slapd; do
  start_server "$name"
  measured_load "$name" st_start st_stop
  stop_server
  cp "$W/strace.out" "$W/strace.$name.out"
  calls=$(awk '$NF == "total" {print $4}' "$W/strace.$name.out")
  SYS[$name]=$(echo "scale=2; $calls / $SEARCHES" | bc -l)
done

ENTRIES=$(grep -c '^dn: ' "$LDIF")
echo "$ENTRIES entries ($N users), $SEARCHES searches (mail=userNNNNNNN@example.com) over $CONNS connections, attrs: ${ATTRS:-all user attributes}"
printf '| measure | rosterd | slapd | ratio rosterd/slapd |\n|---|---|---|---|\n'
printf '| instructions per search (callgrind Ir) | %s | %s | %.2f |\n' "${IR[rosterd]}" "${IR[slapd]}" "$(echo "${IR[rosterd]} / ${IR[slapd]}" | bc -l)"
printf '| instructions per connect + bind + search + unbind (callgrind Ir, %s cycles) | %s | %s | %.2f |\n' "$CYCLES" "${IRC[rosterd]}" "${IRC[slapd]}" "$(echo "${IRC[rosterd]} / ${IRC[slapd]}" | bc -l)"
printf '| instructions per connect + bind as a user + unbind (callgrind Ir, %s binds) | %s | %s | %.2f |\n' "$BINDS" "${IRB[rosterd]}" "${IRB[slapd]}" "$(echo "${IRB[rosterd]} / ${IRB[slapd]}" | bc -l)"
printf '| system calls per search (strace -c -f) | %s | %s | %.2f |\n' "${SYS[rosterd]}" "${SYS[slapd]}" "$(echo "${SYS[rosterd]} / ${SYS[slapd]}" | bc -l)"
for name in rosterd slapd; do
  echo; echo "$name system calls over the search phase ($W/strace.$name.out):"
  awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" {printf "  %s %s\n", $NF, $4}' "$W/strace.$name.out" | sort -k2 -nr | head -8
done
