#!/usr/bin/env bash
# LDAPS: rosterd against a stock OpenLDAP slapd serving the same generated directory with the SAME
# certificate and key (the private CA and localhost certificate rosterd generates in
# <data_dir>/tls/ on first start), in one run.
#
#   bash bench/tls.sh [N]          # N users (default 100000); results appended to bench/RESULTS.md
#
# Load generator: ldclt (389-ds-base) over ldaps:// URLs (-H); it uses libldap, which trusts the
# CA named by LDAPTLS_CACERT and verifies the server's name. Two measures, 4 threads each, rounds
# alternating between the servers (ROUNDS, default 3), medians and ratios:
#   - exact search by mail over long-lived LDAPS connections bound as the root DN (as run.sh);
#   - new TCP connection + TLS handshake + simple bind as a random user + unbind (bindeach).
# Server CPU per operation comes from /proc/PID/stat (utime+stime). The clients run on the same
# cores as the servers, and ldclt's own TLS handshakes cost about as much as the server's.
set -euo pipefail
N=${1:-100000}
ROUNDS=${ROUNDS:-3}
SAMPLES=${SAMPLES:-2}   # ldclt samples of 10 s per round and measure
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
W=${BENCH_DIR:-/tmp/roster-bench-tls}
mkdir -p "$W"
. "$HERE/lib.sh"
LDIF=$W/dit-$N.ldif
[ -s "$LDIF" ] || python3 "$SHARED/bench/gen_ldif.py" "$N" > "$LDIF"
ENTRIES=$(grep -c '^dn: ' "$LDIF")

# --- rosterd: load, then start; the first start writes tls/ca.pem, server.pem, server.key -----
rosterd_config "$W/rosterd-data" "[tls]
listen = \"127.0.0.1:0\"
$SLAPD_LIKE_ACCESS" > "$W/rosterd.toml"
rm -rf "$W/rosterd-data" "$W/slapd"
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$LDIF" 2>/dev/null
"$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
ROSTER_PID=$!
SLAPD_PID=
trap 'kill $ROSTER_PID $SLAPD_PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q '^listening ldaps' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
ROSTER_PORT=$(sed -n 's/^listening ldaps:\/\/127.0.0.1://p' "$W/rosterd.out")
[ -n "$ROSTER_PORT" ] || { echo "rosterd did not start LDAPS; see $W/rosterd.err" >&2; exit 1; }
TLSDIR=$W/rosterd-data/tls
for f in ca.pem server.pem server.key; do [ -s "$TLSDIR/$f" ] || { echo "no $TLSDIR/$f" >&2; exit 1; }; done

# --- slapd: as shared/bench/slapd_up.sh, plus TLS with rosterd's certificate and key ----------
SLAPD_PORT=$(free_port)
mkdir -p "$W/slapd/db"
cat > "$W/slapd/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/misc.schema
pidfile $W/slapd/slapd.pid
loglevel 0
moduleload back_mdb
moduleload memberof
threads 4
TLSCACertificateFile $TLSDIR/ca.pem
TLSCertificateFile $TLSDIR/server.pem
TLSCertificateKeyFile $TLSDIR/server.key
database mdb
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw secret
directory $W/slapd/db
maxsize 8589934592
index objectClass eq
index uid,mail,cn eq,sub
index member eq
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
CONF
slapadd -q -f "$W/slapd/slapd.conf" -l "$LDIF" > "$W/slapd/slapadd.log" 2>&1
slapd -f "$W/slapd/slapd.conf" -h "ldaps://127.0.0.1:$SLAPD_PORT/" > "$W/slapd/slapd.log" 2>&1
export LDAPTLS_CACERT=$TLSDIR/ca.pem LDAPTLS_REQCERT=demand
for _ in $(seq 100); do ldapsearch -x -H "ldaps://127.0.0.1:$SLAPD_PORT" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1; done
SLAPD_PID=$(cat "$W/slapd/slapd.pid")

# Both must answer over TLS, anonymously and as a user, with the same certificate.
for port in "$ROSTER_PORT" "$SLAPD_PORT"; do
  n=$(ldapsearch -x -LLL -H "ldaps://127.0.0.1:$port" -b ou=people,dc=example,dc=com "(mail=user0000042@example.com)" 1.1 | grep -c '^dn:' || true)
  [ "$n" = 1 ] || { echo "server on port $port does not show user0000042 to an anonymous LDAPS client" >&2; exit 1; }
  ldapwhoami -x -H "ldaps://127.0.0.1:$port" -D uid=user0000042,ou=people,dc=example,dc=com -w pw0000042 >/dev/null \
    || { echo "server on port $port refuses the bind of user0000042 over LDAPS" >&2; exit 1; }
done
tls_params() { # port -> "protocol cipher certificate-fingerprint" as openssl s_client sees them
  local out
  out=$(openssl s_client -connect "127.0.0.1:$1" -CAfile "$TLSDIR/ca.pem" </dev/null 2>/dev/null || true)
  printf '%s %s %s' "$(echo "$out" | sed -n 's/^ *Protocol *: *//p; s/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1/p' | head -1)" \
    "$(echo "$out" | sed -n 's/^ *Cipher *: *//p; s/^New, TLSv[0-9.]*, Cipher is //p' | head -1)" \
    "$(echo "$out" | openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//' | cut -c1-23)"
}
TLS_R=$(tls_params "$ROSTER_PORT"); TLS_S=$(tls_params "$SLAPD_PORT")
[ "${TLS_R##* }" = "${TLS_S##* }" ] || { echo "the servers present different certificates: $TLS_R / $TLS_S" >&2; exit 1; }
KEY_ALG=$(openssl x509 -in "$TLSDIR/server.pem" -noout -text | sed -n 's/^ *Public Key Algorithm: *//p' | head -1)
echo "rosterd ldaps port $ROSTER_PORT ($TLS_R), slapd ldaps port $SLAPD_PORT ($TLS_S), key $KEY_ALG"

# ldclt prints "Global average rate: X/thr (Y/sec)"; we read the per-second figure, and counts
# errors from its "Global error E (...) occurs N times" lines.
ldclt_rate() { sed -n 's/.*Global average rate:.*( *\([0-9.]*\)\/sec).*/\1/p' | tail -1; }
ldclt_errors() { sed -n 's/.*Global error .* occurs *\([0-9]*\) times.*/\1/p' | awk '{s+=$1} END {print s+0}'; }
round() { # kind port pid -> "rate cpu_us_per_op errors"
  local c0 c1 out rate
  c0=$(cpu_ticks "$3")
  if [ "$1" = search ]; then
    out=$(ldclt -H "ldaps://127.0.0.1:$2" -D cn=admin,dc=example,dc=com -w secret -b ou=people,dc=example,dc=com \
      -f mail=userXXXXXXX@example.com -e esearch,random -r0 -R$((N - 1)) -n 4 -N "$SAMPLES" -q 2>&1 || true)
  else
    out=$(ldclt -H "ldaps://127.0.0.1:$2" -e bindeach,bindonly,randombinddn,randombinddnlow=0,randombinddnhigh=$((N - 1)) \
      -D uid=userXXXXXXX,ou=people,dc=example,dc=com -w pwXXXXXXX -n 4 -N "$SAMPLES" -q 2>&1 || true)
  fi
  c1=$(cpu_ticks "$3")
  rate=$(echo "$out" | ldclt_rate)
  [ -n "$rate" ] || { echo "$out" >&2; rate=0; }
  echo "$rate $(echo "($c1 - $c0) * 10000 / ($rate * 10 * $SAMPLES + 1)" | bc -l) $(echo "$out" | ldclt_errors)"
}
: > "$W/tls.txt"
for r in $(seq "$ROUNDS"); do
  echo "rosterS $(round search "$ROSTER_PORT" "$ROSTER_PID")" >> "$W/tls.txt"
  echo "slapdS $(round search "$SLAPD_PORT" "$SLAPD_PID")" >> "$W/tls.txt"
  echo "rosterB $(round bind "$ROSTER_PORT" "$ROSTER_PID")" >> "$W/tls.txt"
  echo "slapdB $(round bind "$SLAPD_PORT" "$SLAPD_PID")" >> "$W/tls.txt"
done
med() { awk -v who="$1" -v col="$2" '$1 == who {print $col}' "$W/tls.txt" | median; }
sum_errors() { awk -v who="$1" '$1 == who {s+=$4} END {print s+0}' "$W/tls.txt"; }
SR=$(med rosterS 2); SS=$(med slapdS 2); BR=$(med rosterB 2); BS=$(med slapdB 2)
CSR=$(med rosterS 3); CSS=$(med slapdS 3); CBR=$(med rosterB 3); CBS=$(med slapdB 3)
for v in "$SR" "$SS" "$BR" "$BS"; do
  [ "$v" != 0 ] || { echo "a load round produced no rate; raw rounds in $W/tls.txt" >&2; exit 1; }
done
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
REPORT=$(cat <<TXT

## $(date -u +%F): LDAPS, $ENTRIES entries ($N users), $(nproc) cores, $ROUNDS alternating rounds, medians

Both servers present the same certificate and key ($KEY_ALG, from rosterd's generated private
CA); negotiated with \`openssl s_client\`: rosterd $TLS_R, slapd $TLS_S
(protocol, cipher, start of the SHA-256 certificate fingerprint). slapd links $(ldd "$(command -v slapd)" | grep -o 'lib\(gnutls\|ssl\)[^ ]*' | head -1); ldclt uses libldap.

| measure | rosterd | slapd | ratio rosterd/slapd |
|---|---|---|---|
| exact search by mail over LDAPS, ldclt 4 threads (ops/s) | $(printf %.0f "$SR") | $(printf %.0f "$SS") | $(ratio "$SR" "$SS") |
| server CPU per search (µs) | $(printf %.1f "$CSR") | $(printf %.1f "$CSS") | $(ratio "$CSR" "$CSS") |
| new connection + TLS handshake + simple bind, ldclt 4 threads (ops/s) | $(printf %.0f "$BR") | $(printf %.0f "$BS") | $(ratio "$BR" "$BS") |
| server CPU per connection + handshake + bind (µs) | $(printf %.1f "$CBR") | $(printf %.1f "$CBS") | $(ratio "$CBR" "$CBS") |
| ldclt errors, all rounds (search; bind) | $(sum_errors rosterS); $(sum_errors rosterB) | $(sum_errors slapdS); $(sum_errors slapdB) | |

Command: \`bash bench/tls.sh $N\` (raw rounds, name rate cpu_us errors: $(tr '\n' ';' < "$W/tls.txt")).
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$HERE/RESULTS.md"
