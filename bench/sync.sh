#!/usr/bin/env bash
# `roster sync` from a real Samba Active Directory domain controller into rosterd: the first
# (full) run over N users and N/50 groups of 50 members, then an incremental run after 100
# changes upstream (40 users modified, 20 added, 10 deleted, 10 disabled, 20 group
# memberships changed), and an idle incremental run. The entries each run read from the
# upstream are counted (the run's own summary), to show that an incremental run reads what
# changed and not the directory. The reference is the upstream read alone: a paged ldapsearch
# of the same users and groups from the same domain controller, same run.
#
#   bash bench/sync.sh [N]    # N users (default 20000); results appended to bench/RESULTS.md
#
# Samba serves LDAPS on 127.0.0.1:636 (its ports cannot be moved; the tests' domain
# controllers take the same lock, /tmp/roster-samba.lock). rosterd runs with durable writes.
set -euo pipefail
N=${1:-20000}
NGROUPS=$((N / 50))
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
W=${BENCH_DIR:-/tmp/roster-bench-sync}
. "$HERE/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$TOP/target}
(cd "$TOP" && { cargo build --release --locked -q -p roster-tools --bin roster 2>/dev/null || cargo build --release -q -p roster-tools --bin roster; })
ROSTER=$TARGET/release/roster
exec 9>/tmp/roster-samba.lock
flock 9
SAMBA_PID=""; ROSTER_PID=""
cleanup() {
  [ -n "$SAMBA_PID" ] && kill "$SAMBA_PID" 2>/dev/null || true
  [ -n "$ROSTER_PID" ] && kill "$ROSTER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$W"; mkdir -p "$W/samba/tls"
BASE="DC=corp,DC=example,DC=com"
ADMIN="CN=Administrator,CN=Users,$BASE"
ADMIN_PW='Adm1n-Secret!'
OU="OU=Bench,$BASE"

# A CA and a certificate for 127.0.0.1.
(cd "$W/samba/tls"
 openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Roster bench CA" 2>/dev/null
 openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.pem -subj "/CN=127.0.0.1" 2>/dev/null
 printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext
 openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext 2>/dev/null
 chmod 600 key.pem)
T=$W/samba/tls
samba-tool domain provision --realm=CORP.EXAMPLE.COM --domain=CORP --server-role=dc --dns-backend=NONE \
  --use-rfc2307 --host-ip=127.0.0.1 --adminpass="$ADMIN_PW" --targetdir="$W/samba" \
  --option="interfaces=lo" --option="bind interfaces only=yes" --option="server services=ldap" \
  --option="pid directory=$W/samba" --option="tls enabled=yes" --option="tls certfile=$T/cert.pem" \
  --option="tls keyfile=$T/key.pem" --option="tls cafile=$T/ca.pem" --option="log level=0" >/dev/null
samba-tool domain passwordsettings set --complexity=off --history-length=0 --min-pwd-age=0 \
  --max-pwd-age=0 --configfile="$W/samba/etc/smb.conf" >/dev/null
samba -s "$W/samba/etc/smb.conf" --foreground --no-process-group > "$W/samba.log" 2>&1 &
SAMBA_PID=$!
export LDAPTLS_CACERT=$T/ca.pem
ad() { ldapmodify -x -H ldaps://127.0.0.1:636 -D "$ADMIN" -w "$ADMIN_PW" -c "$@" >/dev/null; }
for _ in $(seq 300); do
  ldapsearch -x -H ldaps://127.0.0.1:636 -D "$ADMIN" -w "$ADMIN_PW" -b "" -s base dnsHostName >/dev/null 2>&1 && break
  sleep 0.2
done

# The upstream: N users (enabled, with a password, two addresses), N/50 groups of 50.
python3 - "$N" "$OU" > "$W/ad.ldif" <<'PY'
import base64, sys
n, ou = int(sys.argv[1]), sys.argv[2]
pw = base64.b64encode('"Pw-bench-1"'.encode('utf-16-le')).decode()
print(f"dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n")
for i in range(n):
    print(f"dn: CN=User {i:07d},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: user{i:07d}\n"
          f"givenName: User\nsn: {i:07d}\ndisplayName: User {i:07d}\nmail: user{i:07d}@example.com\n"
          f"proxyAddresses: SMTP:user{i:07d}@example.com\nproxyAddresses: smtp:u.{i}@example.com\n"
          f"unicodePwd:: {pw}\nuserAccountControl: 512\n")
for g in range(n // 50):
    print(f"dn: CN=Group {g:05d},{ou}\nchangetype: add\nobjectClass: group\nsAMAccountName: group{g:05d}\n"
          f"mail: group{g:05d}@example.com")
    for i in range(g * 50, g * 50 + 50):
        print(f"member: CN=User {i:07d},{ou}")
    print()
PY
t0=$(now); ad -f "$W/ad.ldif"; t1=$(now)
LOAD_S=$(echo "$t1 - $t0" | bc)
echo "samba: $N users and $NGROUPS groups added in ${LOAD_S}s"

# rosterd, with the domain example.com.
cat > "$W/base.ldif" <<'LDIF'
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
objectClass: domainRelatedObject
dc: example
o: Example
associatedDomain: example.com
LDIF
rosterd_config "$W/rosterd-data" '[security]
lockout_threshold = 0' | sed 's/^member = \["eq"\]/member = ["eq"]\nmailLocalAddress = ["eq"]/' > "$W/rosterd.toml"
"$ROSTERD" --config "$W/rosterd.toml" load --quiet "$W/base.ldif"
"$ROSTERD" --config "$W/rosterd.toml" > "$W/rosterd.out" 2> "$W/rosterd.err" &
ROSTER_PID=$!
for _ in $(seq 200); do grep -q '^listening' "$W/rosterd.out" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/^listening ldap:\/\/127.0.0.1://p' "$W/rosterd.out" | head -1)
printf 'secret' > "$W/rosterd.pw"
printf '%s' "$ADMIN_PW" > "$W/corp.pw"
cat > "$W/job.toml" <<TOML
name = "corp"
domain = "example.com"
max_deletes = "10%"
[rosterd]
url = "ldap://127.0.0.1:$PORT"
ca = "$W/rosterd-data/tls/ca.pem"
bind_dn = "cn=admin,dc=example,dc=com"
password_file = "$W/rosterd.pw"
[upstream]
kind = "ad"
url = "ldaps://127.0.0.1:636"
ca = "$T/ca.pem"
bind_dn = "$ADMIN"
password_file = "$W/corp.pw"
timeout = "60s"
[users]
base = ["$OU"]
TOML
HZ=$(getconf CLK_TCK)
# run NAME ARGS...: times one sync run; prints "wall_s entries_read server_cpu_s client_cpu_s".
run() {
  local name=$1; shift
  local c0 t0 t1 c1
  c0=$(cpu_ticks "$ROSTER_PID"); t0=$(now)
  /usr/bin/time -f '%U %S' -o "$W/$name.time" "$ROSTER" sync --config "$W/job.toml" "$@" > "$W/$name.out" 2>&1 || true
  t1=$(now); c1=$(cpu_ticks "$ROSTER_PID")
  local read
  read=$(sed -n 's/.* run, \([0-9]*\) entries read.*/\1/p' "$W/$name.out" | head -1)
  echo "$(echo "$t1 - $t0" | bc) ${read:-?} $(echo "scale=2; ($c1 - $c0) / $HZ" | bc) $(awk '{print $1 + $2}' "$W/$name.time")"
  grep '^sync ' "$W/$name.out" >&2
}
FULL=$(run full --once)

# 100 changes upstream.
python3 - "$N" "$OU" > "$W/changes.ldif" <<'PY'
import base64, sys
n, ou = int(sys.argv[1]), sys.argv[2]
pw = base64.b64encode('"Pw-bench-1"'.encode('utf-16-le')).decode()
step = n // 100
for k in range(40):
    i = k * step
    print(f"dn: CN=User {i:07d},{ou}\nchangetype: modify\nreplace: displayName\ndisplayName: User {i:07d} Changed\n-\n")
for k in range(20):
    i = n + k
    print(f"dn: CN=User {i:07d},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: user{i:07d}\n"
          f"mail: user{i:07d}@example.com\nunicodePwd:: {pw}\nuserAccountControl: 512\n")
for k in range(10):
    i = k * step + 1
    print(f"dn: CN=User {i:07d},{ou}\nchangetype: delete\n")
for k in range(10):
    i = k * step + 2
    print(f"dn: CN=User {i:07d},{ou}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n-\n")
for k in range(20):
    g = k * (n // 50 // 20)
    print(f"dn: CN=Group {g:05d},{ou}\nchangetype: modify\nadd: member\nmember: CN=User {n + k:07d},{ou}\n-\n")
PY
ad -f "$W/changes.ldif"
INCR=$(run incremental)
IDLE=$(run idle)

# The reference: the upstream read alone, paged, the attributes the job asks for.
t0=$(now)
ldapsearch -x -LLL -H ldaps://127.0.0.1:636 -D "$ADMIN" -w "$ADMIN_PW" -E pr=500/noprompt -b "$OU" \
  '(|(&(objectCategory=person)(objectClass=user))(objectClass=group))' objectGUID sAMAccountName displayName \
  givenName sn description proxyAddresses mail userAccountControl cn 'member;range=0-1499' > "$W/read.ldif"
t1=$(now)
READ_S=$(echo "$t1 - $t0" | bc)
READ_N=$(grep -c '^dn:' "$W/read.ldif")

read -r F_S F_N F_SC F_CC <<< "$FULL"
read -r I_S I_N I_SC I_CC <<< "$INCR"
read -r D_S D_N D_SC D_CC <<< "$IDLE"
MAPPED=$(ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -D cn=admin,dc=example,dc=com -w secret -E pr=1000/noprompt \
  -b dc=example,dc=com '(rosterUpstream=corp)' dn | grep -c '^dn:')
{
  echo
  echo "## $(date -u +%Y-%m-%d): roster sync from Samba AD, $N users and $NGROUPS groups of 50, $(nproc) cores"
  echo
  echo "| run | wall s | entries read upstream | rosterd CPU s | roster CPU s |"
  echo "|---|---|---|---|---|"
  echo "| first (full) run | $F_S | $F_N | $F_SC | $F_CC |"
  echo "| incremental run after 100 changes | $I_S | $I_N | $I_SC | $I_CC |"
  echo "| incremental run, nothing changed | $D_S | $D_N | $D_SC | $D_CC |"
  echo "| reference: paged ldapsearch of the same entries from Samba | $READ_S | $READ_N | | |"
  echo
  echo "Command: \`bash bench/sync.sh $N\`. Entries mapped in rosterd after the runs: $MAPPED."
  echo "Samba took ${LOAD_S} s to add the upstream entries (ldapmodify over LDAPS)."
} | tee -a "$HERE/RESULTS.md"
