#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared helpers for the end-to-end tests: start the real `rosterd` (and a stock OpenLDAP
//! `slapd` for differential tests) on loopback, with their own data in a temporary directory,
//! and stop them when the handle is dropped.

pub mod cutter;
pub mod data;
pub mod samba;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The suffix every test directory lives under.
pub const SUFFIX: &str = "dc=example,dc=com";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
pub const ROOT_PW: &str = "secret";

/// Path of a binary built from this workspace: `ROSTERD_BIN`-style override, else next to the
/// test executable's `deps` directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_ascii_uppercase());
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} not found; build it first (cargo build -p roster-server) or set {var}",
        bin.display()
    );
    bin
}

/// A running rosterd with its own data directory.
pub struct Rosterd {
    pub addr: SocketAddr,
    /// The LDAPS listener, when the config has `listen` in its `[tls]` section.
    pub ldaps: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Child,
}

/// The access rules of the stock slapd the tests compare with (`Slapd::start`): a password
/// is written by its entry and used for binds by anonymous clients, and everything else is
/// readable by everyone.
pub const SLAPD_ACCESS: &str = "[access]\npolicy = \"custom\"\n\
[[access.rule]]\nattrs = [\"userPassword\"]\nby = [{ who = \"self\", rights = \"write\" }, { who = \"anonymous\", rights = \"auth\" }]\n\
[[access.rule]]\nby = [{ who = \"*\", rights = \"read\" }]\n";

/// What a rosterd compared with slapd adds to its config: the root DN reads password hashes
/// as slapd's does (by default nobody reads them over LDAP).
pub const ROOT_READS_PASSWORDS: &str = "[security]\nroot_reads_passwords = true\n";

/// The config every test server starts from; `extra` is appended (TOML). Unless `extra` has an
/// `[access]` section of its own, the server gets slapd's access rules ([`SLAPD_ACCESS`]).
pub fn rosterd_config(extra: &str) -> String {
    let access = if extra.contains("[access]") {
        ""
    } else {
        SLAPD_ACCESS
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[directory]\nsuffixes = [\"{SUFFIX}\"]\nroot_dn = \"{ROOT_DN}\"\nroot_password = \"{ROOT_PW}\"\n\n[storage]\ndurability = \"buffer\"\n\n[log]\nlevel = \"warn\"\n{extra}\n{access}"
    )
}

impl Rosterd {
    /// Loads `ldif` (if any) with `rosterd load`, then starts the daemon on a free port.
    pub fn start(ldif: Option<&str>, extra_config: &str) -> Rosterd {
        Rosterd::start_with_config(ldif, &rosterd_config(extra_config))
    }

    /// As [`Rosterd::start`] with a whole config file of the test's own.
    pub fn start_with_config(ldif: Option<&str>, config_text: &str) -> Rosterd {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("rosterd.toml");
        std::fs::write(&config, config_text).expect("write config");
        if let Some(ldif) = ldif {
            let path = dir.path().join("load.ldif");
            std::fs::write(&path, ldif).expect("write ldif");
            let out = rosterd_cmd(&config)
                .args(["load", "--quiet"])
                .arg(&path)
                .output()
                .expect("run rosterd load");
            assert!(
                out.status.success(),
                "rosterd load failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Rosterd::spawn(dir, config)
    }

    /// Starts the daemon on an existing data directory and config.
    pub fn spawn(dir: tempfile::TempDir, config: PathBuf) -> Rosterd {
        let cmd = rosterd_cmd(&config);
        Rosterd::spawn_command(dir, config, cmd)
    }

    /// Starts the daemon with a command of the test's own (`rosterd_cmd` with more flags, or
    /// another working directory); `dir` is kept for the test, `config` read for `[tls]`.
    pub fn spawn_command(dir: tempfile::TempDir, config: PathBuf, mut cmd: Command) -> Rosterd {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .expect("spawn rosterd");
        let stdout = child.stdout.take().expect("rosterd stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("rosterd exited before listening")
            .expect("read rosterd stdout");
        let addr = first
            .strip_prefix("listening ldap://")
            .unwrap_or_else(|| panic!("unexpected first line from rosterd: {first}"))
            .parse()
            .expect("listen address");
        let wants_ldaps = std::fs::read_to_string(&config)
            .map(|c| {
                c.split("[tls]")
                    .nth(1)
                    .is_some_and(|t| t.lines().any(|l| l.trim_start().starts_with("listen")))
            })
            .unwrap_or(false);
        let ldaps = if wants_ldaps {
            let line = lines
                .next()
                .expect("rosterd exited before listening for LDAPS")
                .expect("read rosterd stdout");
            Some(
                line.strip_prefix("listening ldaps://")
                    .unwrap_or_else(|| panic!("unexpected second line from rosterd: {line}"))
                    .parse()
                    .expect("ldaps address"),
            )
        } else {
            None
        };
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Rosterd {
            addr,
            ldaps,
            dir,
            config,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("ldap://{}", self.addr)
    }

    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://{}",
            self.ldaps.expect("no LDAPS listener configured")
        )
    }

    /// The CA certificate the server generated in its data directory.
    pub fn generated_ca(&self) -> PathBuf {
        self.dir.path().join("data").join("tls").join("ca.pem")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon with SIGTERM and waits for it; returns the data directory for reuse.
    pub fn stop(mut self) -> (tempfile::TempDir, PathBuf, std::process::ExitStatus) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(30));
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.config.clone(), status)
    }

    /// Kills the daemon with SIGKILL (no shutdown, no flush: a crash) and waits for it;
    /// returns the data directory and config for a restart with [`Rosterd::spawn`].
    pub fn kill(mut self) -> (tempfile::TempDir, PathBuf) {
        // `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("send SIGKILL to rosterd");
        let status = self.child.wait().expect("wait for killed rosterd");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "rosterd exited on its own before the kill: {status}"
        );
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.config.clone())
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("wait for killed child");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Rosterd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rosterd --config FILE` ready for more arguments.
pub fn rosterd_cmd(config: &Path) -> Command {
    let mut c = Command::new(workspace_bin("rosterd"));
    c.arg("--config").arg(config);
    c
}

/// A port that was free a moment ago, for servers that cannot be told to pick one (slapd).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Waits until something accepts connections on `addr`, for at most `limit`.
pub fn wait_for_port(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A stock OpenLDAP slapd (back-mdb) on loopback, loaded with the same LDIF: the reference.
pub struct Slapd {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
    /// The folder of its CA and certificate, with StartTLS.
    tls: Option<PathBuf>,
}

fn find_slapd() -> PathBuf {
    for p in ["/usr/sbin/slapd", "/usr/local/libexec/slapd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("slapd not found: run scripts/install-test-deps.sh (the README's test command does)");
}

/// The overlays that make slapd keep groups as rosterd does: `memberOf` maintained on the
/// members, and `member` values following deletes and renames (slapd applies the latter in the
/// background, after answering: see [`settle`]).
pub const GROUP_OVERLAYS: &str = "overlay memberof\noverlay refint\nrefint_attributes member\n";

/// Calls `read` until two answers in a row 200 ms apart are equal (at most 10 s), for a slapd
/// whose refint overlay rewrites groups after it has answered.
pub fn settle<T: PartialEq>(mut read: impl FnMut() -> T) -> T {
    let mut last = read();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let next = read();
        if next == last {
            return next;
        }
        last = next;
    }
    last
}

/// Roster's schema file, which a stock slapd loads as it is.
pub const ROSTER_SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/roster.schema");

impl Slapd {
    /// `extra` is appended to slapd.conf inside the database section (indexes, overlays; the
    /// memberof and refint modules are loaded, see [`GROUP_OVERLAYS`]).
    pub fn start(ldif: &str, extra: &str) -> Slapd {
        Slapd::start_with(ldif, "", extra)
    }

    /// As [`Slapd::start`], with StartTLS: a certificate for 127.0.0.1 from a CA of its own
    /// ([`Slapd::ca`]), and `schema` files included after Roster's.
    pub fn start_tls(ldif: &str, schema: &[&Path], extra: &str) -> Slapd {
        let mut globals = String::new();
        for s in schema {
            globals.push_str(&format!("include {}\n", s.display()));
        }
        Slapd::start_tls_with(ldif, &globals, extra)
    }

    /// As [`Slapd::start_tls`], with `globals` (schema includes, `moduleload syncprov`)
    /// before the database section.
    pub fn start_tls_with(ldif: &str, globals: &str, extra: &str) -> Slapd {
        let tls = tempfile::tempdir().expect("temp dir").keep();
        crate::samba::write_certificates(&tls);
        let mut globals = globals.to_string();
        globals.push_str(&format!(
            "TLSCACertificateFile {0}/ca.pem\nTLSCertificateFile {0}/cert.pem\nTLSCertificateKeyFile {0}/key.pem\n",
            tls.display()
        ));
        let mut s = Slapd::start_with(ldif, &globals, extra);
        s.tls = Some(tls);
        s
    }

    /// The CA that signed the certificate of a [`Slapd::start_tls`] server.
    pub fn ca(&self) -> PathBuf {
        self.tls.as_ref().expect("a slapd with TLS").join("ca.pem")
    }

    /// As [`Slapd::start`], with `globals` inserted before the database section (module loads
    /// such as `moduleload syncprov`, TLS settings).
    pub fn start_with(ldif: &str, globals: &str, extra: &str) -> Slapd {
        let slapd = find_slapd();
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).expect("create db dir");
        let conf = dir.path().join("slapd.conf");
        let schema = "/etc/ldap/schema";
        let text = format!(
            "include {schema}/core.schema\ninclude {schema}/cosine.schema\ninclude {schema}/inetorgperson.schema\n\
             include {schema}/nis.schema\ninclude {schema}/misc.schema\ninclude {roster}\n{globals}pidfile {pid}\nloglevel 0\n\
             moduleload back_mdb\nmoduleload memberof\nmoduleload refint\nthreads 4\ndatabase mdb\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}\n\
             directory {db}\nmaxsize 1073741824\nindex objectClass eq\nindex uid,mail,cn eq,sub\nindex member eq\n{extra}\n\
             access to attrs=userPassword by self write by anonymous auth by * none\naccess to * by * read\n",
            pid = dir.path().join("slapd.pid").display(),
            db = db.display(),
            roster = ROSTER_SCHEMA,
        );
        std::fs::write(&conf, text).expect("write slapd.conf");
        let ldif_path = dir.path().join("data.ldif");
        std::fs::write(&ldif_path, ldif).expect("write ldif");
        let slapadd = slapd.with_file_name("slapadd");
        let out = Command::new(if slapadd.exists() {
            slapadd
        } else {
            PathBuf::from("slapadd")
        })
        .args(["-q", "-f"])
        .arg(&conf)
        .arg("-l")
        .arg(&ldif_path)
        .output()
        .expect("run slapadd");
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Slapd::spawn(&conf, addr);
        Slapd {
            addr,
            dir,
            child,
            tls: None,
        }
    }

    fn spawn(conf: &Path, addr: SocketAddr) -> Child {
        let child = Command::new(find_slapd())
            .args(["-d", "0", "-f"])
            .arg(conf)
            .arg("-h")
            .arg(format!("ldap://{addr}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn slapd");
        assert!(
            wait_for_port(addr, Duration::from_secs(20)),
            "slapd did not start listening on {addr}"
        );
        child
    }

    /// Stops slapd (SIGTERM, a clean shutdown that keeps its database and, for a syncrepl
    /// consumer, its cookie) and waits for it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Starts a stopped slapd again on the same address with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Slapd::spawn(&self.dir.path().join("slapd.conf"), self.addr);
    }

    pub fn url(&self) -> String {
        format!("ldap://{}", self.addr)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(tls);
        }
    }
}

/// Runs an OpenLDAP command-line tool and returns (exit code, stdout, stderr).
pub fn run_tool(tool: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs an OpenLDAP tool with extra environment variables (`LDAPTLS_CACERT`, ...), which
/// override ldap.conf; (exit code, stdout, stderr).
pub fn run_tool_env(tool: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run {tool}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ldapmodify -x` of `ldif` (changetype records) at `url` as `dn`: (exit code, stdout, stderr).
pub fn ldapmodify(url: &str, dn: &str, pw: &str, ldif: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let f = write_file(dir.path(), "change.ldif", ldif);
    let path = f.display().to_string();
    run_tool(
        "ldapmodify",
        &["-x", "-H", url, "-D", dn, "-w", pw, "-f", &path],
    )
}

/// Writes `text` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create file");
    f.write_all(text.as_bytes()).expect("write file");
    p
}

/// `ldapsearch -LLL` of one entry (base scope) as the root DN; its output. Fails the test
/// when ldapsearch does.
pub fn root_search(url: &str, base: &str, attrs: &[&str]) -> String {
    let mut args = vec![
        "-x",
        "-LLL",
        "-H",
        url,
        "-D",
        ROOT_DN,
        "-w",
        ROOT_PW,
        "-b",
        base,
        "-s",
        "base",
        "(objectClass=*)",
    ];
    args.extend_from_slice(attrs);
    let (code, out, err) = run_tool("ldapsearch", &args);
    assert_eq!(code, 0, "{err}");
    out
}

/// Comparing a replication consumer with its provider (`content`, `converges`).
pub mod replication {
    use crate::{ROOT_DN, ROOT_PW, SUFFIX};
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// Every entry below the suffix as `dn` → sorted `attr: value` lines: the user attributes
    /// and entryUUID, as the root DN reads them. Empty when the suffix is not there (yet).
    pub fn content(url: &str) -> BTreeMap<String, Vec<String>> {
        let Ok(mut conn) = ldap3::LdapConn::with_settings(
            ldap3::LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5)),
            url,
        ) else {
            return BTreeMap::new();
        };
        if conn
            .simple_bind(ROOT_DN, ROOT_PW)
            .ok()
            .and_then(|r| r.success().ok())
            .is_none()
        {
            return BTreeMap::new();
        }
        let Ok(res) = conn.search(
            SUFFIX,
            ldap3::Scope::Subtree,
            "(objectClass=*)",
            vec!["*", "entryUUID"],
        ) else {
            return BTreeMap::new();
        };
        let _ = conn.unbind();
        let Ok((entries, _)) = res.success() else {
            return BTreeMap::new();
        };
        entries
            .into_iter()
            .map(|e| {
                let e = ldap3::SearchEntry::construct(e);
                // slapd keeps DN values in its pretty form, rosterd as written.
                let value = |k: &str, v: &str| {
                    if k.eq_ignore_ascii_case("member") {
                        v.to_lowercase().replace(", ", ",").replace(" ,", ",")
                    } else {
                        v.to_string()
                    }
                };
                let mut lines: Vec<String> = e
                    .attrs
                    .iter()
                    .flat_map(|(k, vs)| {
                        vs.iter()
                            .map(move |v| format!("{}: {}", k.to_lowercase(), value(k, v)))
                    })
                    .chain(e.bin_attrs.iter().flat_map(|(k, vs)| {
                        vs.iter()
                            .map(move |v| format!("{}:: {v:?}", k.to_lowercase()))
                    }))
                    .collect();
                lines.sort();
                (e.dn.to_lowercase(), lines)
            })
            .collect()
    }

    /// Waits (polling, at most `limit`) until the replica holds what the provider holds.
    pub fn converges(provider: &str, replica: &str, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        loop {
            let want = content(provider);
            let got = content(replica);
            if !want.is_empty() && got == want {
                return;
            }
            if Instant::now() > deadline {
                let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
                let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
                let differ: Vec<_> = want
                    .iter()
                    .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                    .map(|(k, v)| (k, v, got.get(k)))
                    .take(2)
                    .collect();
                panic!("{what}: the replica did not converge: missing {missing:?}, extra {extra:?}, differing {differ:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
