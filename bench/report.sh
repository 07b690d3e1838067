#!/usr/bin/env bash
# rosterd against slapd in one table: the ldclt rounds of bench/run.sh (search by mail, new
# connection + bind, connect + bind + search + unbind: rates and server CPU per operation) and
# the callgrind counts of bench/profile.sh (instructions per search, per cycle and per user
# bind, system calls per search), each on a directory of N users generated and loaded for it.
#
#   bash bench/report.sh [N]      # N users (default 20000)
#
# Nothing is appended to RESULTS.md; the two scripts' own output is kept in $W (default
# /tmp/roster-report) as run.txt and profile.txt. Environment: ROUNDS (default 3) for run.sh;
# SEARCHES, CYCLES, BINDS, CONNS, ATTRS for profile.sh.
set -euo pipefail
N=${1:-20000}
HERE=$(cd "$(dirname "$0")" && pwd)
W=${BENCH_DIR:-/tmp/roster-report}
mkdir -p "$W"
ROUNDS=${ROUNDS:-3} NO_RESULTS=1 BENCH_DIR="$W/run" bash "$HERE/run.sh" "$N" > "$W/run.txt"
BENCH_DIR="$W/profile" bash "$HERE/profile.sh" "$N" > "$W/profile.txt"
row() { grep -F "| $2" "$W/$1.txt" | head -1; }
echo "## $(date -u +%F): rosterd vs slapd, $N users, $(nproc) cores ($(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo "no git"))"
echo
echo "| measure | rosterd | slapd | ratio rosterd/slapd |"
echo "|---|---|---|---|"
row run "exact search by mail"
row run "server CPU per search"
row run "new connection + simple bind"
row run "server CPU per connection + bind"
row run "connect + bind + search + unbind"
row run "server CPU per cycle"
row profile "instructions per search"
row profile "instructions per connect + bind + search + unbind"
row profile "instructions per connect + bind as a user + unbind"
row profile "system calls per search"
echo
echo "Rates: ldclt, 4 threads, medians of $(grep -c '^roster' "$W/run/search.txt") alternating rounds (higher is better);"
echo "CPU and instructions: lower is better. Full output: $W/run.txt, $W/profile.txt."
