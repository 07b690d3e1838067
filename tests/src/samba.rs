//! A real Active Directory domain controller for the sync tests: Debian's Samba, provisioned
//! into a temporary directory and serving LDAP (389) and LDAPS (636) on 127.0.0.1 only, with a
//! certificate for 127.0.0.1 from a CA of the test's own. Samba's LDAP ports cannot be moved,
//! so one domain controller runs at a time on the machine: [`Samba::start`] holds a lock (a
//! file lock too, for other test processes) until the handle is dropped, and a provisioned domain is kept as a template so later tests copy it instead of
//! provisioning again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const REALM: &str = "CORP.EXAMPLE.COM";
pub const BASE: &str = "DC=corp,DC=example,DC=com";
pub const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=corp,DC=example,DC=com";
pub const ADMIN_PW: &str = "Adm1n-Secret!";
pub const LDAPS_URL: &str = "ldaps://127.0.0.1:636";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

/// A running domain controller; stopped when dropped.
pub struct Samba {
    child: Child,
    dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
    /// Held (locked) while this domain controller owns ports 389 and 636.
    _machine_turn: std::fs::File,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .expect("run samba-tool (install samba-ad-dc: scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Provisions the domain once per test process, with its own TLS certificate.
fn template() -> &'static Path {
    TEMPLATE.get_or_init(|| {
        // Templates of earlier test runs whose process is gone are removed.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("roster-samba-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("roster-samba-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create samba dir");
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).expect("create tls dir");
        write_certificates(&tls);
        let opt = |o: &str| format!("--option={o}");
        run(Command::new("samba-tool")
            .args(["domain", "provision"])
            .arg(format!("--realm={REALM}"))
            .args([
                "--domain=CORP",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--use-rfc2307",
                "--host-ip=127.0.0.1",
            ])
            .arg(format!("--adminpass={ADMIN_PW}"))
            .arg(format!("--targetdir={}", dir.display()))
            .arg(opt("interfaces=lo"))
            .arg(opt("bind interfaces only=yes"))
            .arg(opt("server services=ldap"))
            .arg(opt(&format!("pid directory={}", dir.display())))
            .arg(opt("logging=stderr"))
            .arg(opt("tls enabled=yes"))
            .arg(opt(&format!(
                "tls certfile={}",
                tls.join("cert.pem").display()
            )))
            .arg(opt(&format!(
                "tls keyfile={}",
                tls.join("key.pem").display()
            )))
            .arg(opt(&format!("tls cafile={}", tls.join("ca.pem").display())))
            // The tests add many users: no password history or complexity to slow them.
            .arg(opt("log level=0")));
        run(Command::new("samba-tool")
            .args([
                "domain",
                "passwordsettings",
                "set",
                "--complexity=off",
                "--history-length=0",
                "--min-pwd-age=0",
                "--max-pwd-age=0",
            ])
            .arg(format!(
                "--configfile={}",
                dir.join("etc/smb.conf").display()
            )));
        dir
    })
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 and localhost (`cert.pem`, `key.pem`)
/// signed by it, written to `dir`.
pub fn write_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Roster tests: Samba CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, &ca_key);
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params");
    server.distinguished_name = rcgen::DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().expect("key");
    let cert = server.signed_by(&key, &issuer).expect("cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write CA");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    // Samba refuses a key file others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

impl Samba {
    /// A fresh copy of the provisioned domain, started; waits until LDAPS answers.
    pub fn start() -> Samba {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let machine_turn = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("roster-samba.lock"))
            .expect("open the samba lock file");
        machine_turn.lock().expect("lock the samba lock file");
        let template = template();
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", template.display()))
            .arg(dir.path())
            .status()
            .expect("cp");
        assert!(status.success());
        // The copy's configuration names its own directories.
        let conf = dir.path().join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).expect("smb.conf");
        std::fs::write(
            &conf,
            text.replace(
                &template.display().to_string(),
                &dir.path().display().to_string(),
            ),
        )
        .expect("write smb.conf");
        let log = std::fs::File::create(dir.path().join("samba.log")).expect("log");
        let child = Command::new("samba")
            .arg("-s")
            .arg(&conf)
            .args(["--foreground", "--no-process-group"])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start samba");
        let samba = Samba {
            child,
            dir,
            _turn: turn,
            _machine_turn: machine_turn,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, _, _) = samba.ldapsearch(&["-b", "", "-s", "base", "dnsHostName"]);
            if code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "samba did not answer: {}",
                std::fs::read_to_string(samba.dir.path().join("samba.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        samba
    }

    /// Stops the domain controller and waits until its LDAPS port is closed, keeping its turn:
    /// no other test's domain controller takes the ports while this test counts on it being
    /// down.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], 636).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(Instant::now() < deadline, "Samba's LDAPS port stays open");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CA that signed the domain controller's certificate.
    pub fn ca(&self) -> PathBuf {
        template().join("tls/ca.pem")
    }

    /// `ldapsearch -LLL` over LDAPS as the domain's Administrator.
    pub fn ldapsearch(&self, args: &[&str]) -> (i32, String, String) {
        let ca = self.ca().display().to_string();
        let mut all = vec![
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            LDAPS_URL,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
        ];
        all.extend(args);
        crate::run_tool_env("ldapsearch", &all, &[("LDAPTLS_CACERT", &ca)])
    }

    /// `ldapmodify` of `ldif` over LDAPS as the Administrator.
    pub fn ldapmodify(&self, ldif: &str) -> (i32, String, String) {
        let ca = self.ca().display().to_string();
        let f = crate::write_file(self.dir.path(), "change.ldif", ldif);
        let path = f.display().to_string();
        crate::run_tool_env(
            "ldapmodify",
            &[
                "-x", "-H", LDAPS_URL, "-D", ADMIN_DN, "-w", ADMIN_PW, "-f", &path,
            ],
            &[("LDAPTLS_CACERT", &ca)],
        )
    }

    /// `samba-tool ARGS` against this domain's database: its standard output.
    pub fn tool_output(&self, args: &[&str]) -> String {
        let out = Command::new("samba-tool")
            .args(args)
            .arg(format!(
                "--configfile={}",
                self.dir.path().join("etc/smb.conf").display()
            ))
            .output()
            .expect("run samba-tool");
        assert!(
            out.status.success(),
            "samba-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `samba-tool ARGS` against this domain's database.
    pub fn tool(&self, args: &[&str]) {
        run(Command::new("samba-tool").args(args).arg(format!(
            "--configfile={}",
            self.dir.path().join("etc/smb.conf").display()
        )));
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
