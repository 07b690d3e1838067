# Shared by the benchmark scripts (sourced; TOP must be set): installs what they use, builds
# rosterd in release ($ROSTERD), and defines the helpers and the rosterd configuration they
# have in common.
bash "$TOP/scripts/install-test-deps.sh"
cargo build --release --locked -p roster-server --bin rosterd >/dev/null 2>&1 || cargo build --release -p roster-server --bin rosterd
ROSTERD=${CARGO_TARGET_DIR:-$TOP/target}/release/rosterd

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

# Access rules equivalent to those of shared/bench/slapd_up.sh (userPassword: self write,
# anonymous auth; everything else readable by all), and no lockout, so that nothing but the
# servers' speed differs.
SLAPD_LIKE_ACCESS='[security]
lockout_threshold = 0
lockout_address_threshold = 0
[access]
policy = "custom"
[[access.rule]]
attrs = ["userPassword"]
by = [{ who = "self", rights = "write" }, { who = "anonymous", rights = "auth" }]
[[access.rule]]
by = [{ who = "*", rights = "read" }]'

# rosterd_config DATA_DIR [EXTRA_TOML]: the benchmark configuration (the suffix, root DN and
# indexes of shared/bench's slapd, durable writes) on a free port, with EXTRA_TOML appended;
# STORAGE_EXTRA (say `cache_size = 0`) goes into its [storage] table.
rosterd_config() {
  cat <<CONF
[server]
listen = "127.0.0.1:0"
data_dir = "$1"
[directory]
suffixes = ["dc=example,dc=com"]
root_dn = "cn=admin,dc=example,dc=com"
root_password = "secret"
size_limit = 500
[storage]
durability = "sync"
${STORAGE_EXTRA:-}
[storage.indexes]
objectClass = ["eq"]
uid = ["eq", "sub"]
mail = ["eq", "sub"]
cn = ["eq", "sub"]
member = ["eq"]
[log]
level = "warn"
${2:-}
CONF
}
