//! TLS: StartTLS and LDAPS with the certificate rosterd generates on first start, checked with
//! OpenLDAP's tools, the ldap3 crate and openssl; confidentiality rules for passwords; reload of
//! the certificate on SIGHUP; the cap on connections per source address.

use ldap3::{LdapConn, LdapConnSettings, Scope};
use roster_tests::{run_tool_env, Rosterd, ROOT_DN, ROOT_PW};
use std::path::Path;
use std::sync::Arc;

const LDAPS: &str = "[tls]\nlisten = \"127.0.0.1:0\"\n";

fn whoami(url: &str, starttls: bool, ca: Option<&Path>) -> (i32, String, String) {
    let mut args = vec!["-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW];
    if starttls {
        args.push("-ZZ");
    }
    let ca_s;
    let mut env = vec![("LDAPTLS_REQCERT", "demand")];
    match ca {
        Some(p) => {
            ca_s = p.to_string_lossy().into_owned();
            env.push(("LDAPTLS_CACERT", ca_s.as_str()));
        }
        // A CA file that does not sign the server's certificate.
        None => env.push(("LDAPTLS_CACERT", "/etc/ssl/certs/ca-certificates.crt")),
    }
    run_tool_env("ldapwhoami", &args, &env)
}

/// A rustls client configuration trusting only the PEM CA at `ca`.
fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[test]
fn starttls_and_ldaps_with_the_generated_ca() {
    let server = Rosterd::start(None, LDAPS);
    let ca = server.generated_ca();
    assert!(ca.exists(), "generated CA at {}", ca.display());
    let key = server.dir.path().join("data/tls/server.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "server key readable by others: {mode:o}");
    }
    let url = server.url();
    let ldaps = server.ldaps_url();

    // OpenLDAP's tools: StartTLS (-ZZ requires success) and LDAPS, with the CA and without.
    let (code, out, err) = whoami(&url, true, Some(&ca));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{ROOT_DN}"));
    let (code, out, err) = whoami(&ldaps, false, Some(&ca));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{ROOT_DN}"));
    let (code, _, _) = whoami(&url, true, None);
    assert_ne!(code, 0, "StartTLS must fail against an unknown CA");
    let (code, _, _) = whoami(&ldaps, false, None);
    assert_ne!(code, 0, "LDAPS must fail against an unknown CA");
    // The ldap3 crate, both ways.
    let config = client_config(&ca);
    let settings = LdapConnSettings::new()
        .set_config(config.clone())
        .set_starttls(true);
    let mut conn = LdapConn::with_settings(settings, &url).unwrap();
    conn.simple_bind(ROOT_DN, ROOT_PW)
        .unwrap()
        .success()
        .unwrap();
    let (entries, _) = conn
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["supportedExtension"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(entries.len(), 1);
    // A second StartTLS on a protected connection: operationsError.
    let res = conn
        .extended(ldap3::exop::Exop {
            name: Some("1.3.6.1.4.1.1466.20037".into()),
            val: None,
        })
        .unwrap();
    assert_eq!(res.1.rc, 1, "{:?}", res.1);
    conn.unbind().unwrap();
    let settings = LdapConnSettings::new().set_config(config);
    let mut conn = LdapConn::with_settings(settings, &ldaps).unwrap();
    conn.simple_bind(ROOT_DN, ROOT_PW)
        .unwrap()
        .success()
        .unwrap();
    let res = conn
        .extended(ldap3::exop::Exop {
            name: Some("1.3.6.1.4.1.1466.20037".into()),
            val: None,
        })
        .unwrap();
    assert_eq!(res.1.rc, 1, "StartTLS over LDAPS: {:?}", res.1);
    conn.unbind().unwrap();

    // TLS 1.0 and 1.1 are refused; 1.2 and 1.3 are served.
    let hostport = ldaps.trim_start_matches("ldaps://").to_string();
    let ca_s = ca.to_string_lossy().into_owned();
    for (flag, ok) in [
        ("-tls1", false),
        ("-tls1_1", false),
        ("-tls1_2", true),
        ("-tls1_3", true),
    ] {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &hostport,
                flag,
                "-CAfile",
                &ca_s,
                "-verify_return_error",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "openssl {flag}: {text}");
    }
}

#[test]
fn passwords_only_over_tls_when_configured() {
    let server = Rosterd::start(None, "[security]\nplain_passwords = \"never\"\n");
    let ca = server.generated_ca();
    let url = server.url();
    // A simple bind in clear: confidentialityRequired (13); anonymous still works.
    let (code, _, err) = whoami(&url, false, Some(&ca));
    assert_eq!(code, 13, "{err}");
    let (code, out, err) = run_tool_env("ldapwhoami", &["-x", "-H", &url], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "anonymous");
    // Password Modify in clear is refused the same way; over StartTLS both work.
    let (code, out, _) = run_tool_env(
        "ldappasswd",
        &["-x", "-H", &url, "-s", "x", "cn=nobody,dc=example,dc=com"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(out.contains("Confidentiality required (13)"), "{out}");
    let (code, _, err) = whoami(&url, true, Some(&ca));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn certificate_reloads_on_sighup() {
    // Two servers generate two unrelated CAs; the third serves files that are replaced.
    let first = Rosterd::start(None, "");
    let second = Rosterd::start(None, "");
    let tmp = tempfile::tempdir().unwrap();
    let copy = |from: &Rosterd| {
        let tls = from.dir.path().join("data/tls");
        std::fs::copy(tls.join("server.pem"), tmp.path().join("cert.pem")).unwrap();
        std::fs::copy(tls.join("server.key"), tmp.path().join("key.pem")).unwrap();
    };
    copy(&first);
    let config = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        tmp.path().join("cert.pem").display(),
        tmp.path().join("key.pem").display()
    );
    let server = Rosterd::start(None, &config);
    let ldaps = server.ldaps_url();
    assert!(!server.generated_ca().exists(), "configured files are used");
    assert_eq!(whoami(&ldaps, false, Some(&first.generated_ca())).0, 0);
    assert_ne!(whoami(&ldaps, false, Some(&second.generated_ca())).0, 0);

    // A connection made before the reload keeps working after it.
    let settings = LdapConnSettings::new().set_config(client_config(&first.generated_ca()));
    let mut before = LdapConn::with_settings(settings, &ldaps).unwrap();
    before
        .simple_bind(ROOT_DN, ROOT_PW)
        .unwrap()
        .success()
        .unwrap();

    copy(&second);
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut reloaded = false;
    for _ in 0..50 {
        if whoami(&ldaps, false, Some(&second.generated_ca())).0 == 0 {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(reloaded, "new handshakes use the new certificate");
    assert_ne!(whoami(&ldaps, false, Some(&first.generated_ca())).0, 0);
    let (entries, _) = before
        .search("", Scope::Base, "(objectClass=*)", vec!["vendorName"])
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(entries.len(), 1);

    // A broken file is refused at reload and the working certificate stays.
    std::fs::write(tmp.path().join("cert.pem"), "not a certificate").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(whoami(&ldaps, false, Some(&second.generated_ca())).0, 0);
}

#[test]
fn connections_per_address_are_capped() {
    let config = roster_tests::rosterd_config("").replacen(
        "[server]\n",
        "[server]\nmax_connections_per_address = 3\n",
        1,
    );
    let server = Rosterd::start_with_config(None, &config);
    let url = server.url();
    let mut held: Vec<LdapConn> = (0..3)
        .map(|_| {
            let mut c = LdapConn::new(&url).unwrap();
            c.simple_bind(ROOT_DN, ROOT_PW).unwrap().success().unwrap();
            c
        })
        .collect();
    // The fourth from the same address is closed before it is served.
    let fourth = LdapConn::new(&url).and_then(|mut c| c.simple_bind(ROOT_DN, ROOT_PW));
    assert!(fourth.is_err(), "a fourth connection was served");
    // The others go on, and a slot freed is a slot for the next one.
    let (entries, _) = held[0]
        .search("", Scope::Base, "(objectClass=*)", vec!["vendorName"])
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(entries.len(), 1);
    held.pop().unwrap().unbind().unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(mut c) = LdapConn::new(&url) {
            if c.simple_bind(ROOT_DN, ROOT_PW).is_ok_and(|r| r.rc == 0) {
                ok = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ok, "a freed slot is reused");
}

/// A CA and a client certificate for `uid=u1,ou=users,o=example` signed by it, written as PEM
/// files in `dir`: (ca, cert, key). (rcgen keeps one value per attribute type in a name, so the
/// subject has no repeated type such as two `dc`.)
fn client_certificate(
    dir: &Path,
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    };
    let mut ca = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("clients {tag}"));
    ca.distinguished_name = name;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = DistinguishedName::new();
    // X.509 order: most general first.
    subject.push(DnType::OrganizationName, "example");
    subject.push(DnType::OrganizationalUnitName, "users");
    subject.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
        "u1",
    );
    client.distinguished_name = subject;
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = client.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join(format!("{tag}-ca.pem")),
        dir.join(format!("{tag}-client.pem")),
        dir.join(format!("{tag}-client.key")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn sasl_external_with_a_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (client_ca, cert, key) = client_certificate(tmp.path(), "good");
    let (_, stranger_cert, stranger_key) = client_certificate(tmp.path(), "other");
    let ldif = "dn: o=example\nobjectClass: organization\no: example\n\n\
                dn: ou=users,o=example\nobjectClass: organizationalUnit\nou: users\n\n\
                dn: uid=u1,ou=users,o=example\nobjectClass: inetOrgPerson\nuid: u1\ncn: u1\nsn: u1\n";
    let config = roster_tests::rosterd_config(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nclient_ca = \"{}\"\n",
        client_ca.display()
    ))
    .replace(
        "suffixes = [\"dc=example,dc=com\"]",
        "suffixes = [\"o=example\"]",
    );
    let server = Rosterd::start_with_config(Some(ldif), &config);
    let ca = server.generated_ca();
    let ca_s = ca.to_string_lossy().into_owned();
    let with_cert = |cert: &Path, key: &Path, url: &str, starttls: bool| {
        let (c, k) = (
            cert.to_string_lossy().into_owned(),
            key.to_string_lossy().into_owned(),
        );
        let mut args = vec!["-Y", "EXTERNAL", "-Q", "-H", url];
        if starttls {
            args.push("-ZZ");
        }
        run_tool_env(
            "ldapwhoami",
            &args,
            &[
                ("LDAPTLS_CACERT", ca_s.as_str()),
                ("LDAPTLS_REQCERT", "demand"),
                ("LDAPTLS_CERT", c.as_str()),
                ("LDAPTLS_KEY", k.as_str()),
            ],
        )
    };
    // The root DSE offers EXTERNAL.
    let (_, out, _) = run_tool_env(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &server.url(),
            "-b",
            "",
            "-s",
            "base",
            "supportedSASLMechanisms",
        ],
        &[],
    );
    assert!(out.contains("supportedSASLMechanisms: EXTERNAL"), "{out}");
    // LDAPS and StartTLS: the certificate's subject is the identity.
    for (url, starttls) in [(server.ldaps_url(), false), (server.url(), true)] {
        let (code, out, err) = with_cert(&cert, &key, &url, starttls);
        assert_eq!(code, 0, "{url}: {err}");
        assert_eq!(out.trim(), "dn:uid=u1,ou=users,o=example", "{url}");
    }
    // A certificate from another CA fails the handshake; without one EXTERNAL is refused.
    let (code, _, _) = with_cert(&stranger_cert, &stranger_key, &server.ldaps_url(), false);
    assert_ne!(code, 0);
    let (code, _, err) = run_tool_env(
        "ldapwhoami",
        &["-Y", "EXTERNAL", "-Q", "-H", &server.ldaps_url()],
        &[
            ("LDAPTLS_CACERT", ca_s.as_str()),
            ("LDAPTLS_REQCERT", "demand"),
        ],
    );
    assert_ne!(code, 0, "EXTERNAL without a certificate: {err}");
}

#[test]
fn an_expired_certificate_fails_as_clients_expect() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "expiry test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server.distinguished_name = rcgen::DistinguishedName::new();
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    server.not_before = rcgen::date_time_ymd(2020, 1, 1);
    server.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    let (ca_p, cert_p, key_p) = (
        tmp.path().join("ca.pem"),
        tmp.path().join("cert.pem"),
        tmp.path().join("key.pem"),
    );
    std::fs::write(&ca_p, ca_cert.pem()).unwrap();
    std::fs::write(&cert_p, cert.pem()).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    let server = Rosterd::start(
        None,
        &format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_p.display(),
            key_p.display()
        ),
    );
    // The server serves it (an administrator's choice), and clients refuse it.
    let (code, _, err) = whoami(&server.ldaps_url(), false, Some(&ca_p));
    assert_ne!(code, 0, "an expired certificate was accepted: {err}");
    let (code, _, _) = whoami(&server.url(), true, Some(&ca_p));
    assert_ne!(code, 0);
    let hostport = server
        .ldaps_url()
        .trim_start_matches("ldaps://")
        .to_string();
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &hostport,
            "-CAfile",
            &ca_p.to_string_lossy(),
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("certificate has expired"), "{text}");
    // With verification off the same handshake completes: it is the date that fails.
    let (code, _, err) = run_tool_env(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &server.ldaps_url(),
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
        ],
        &[("LDAPTLS_REQCERT", "never")],
    );
    assert_eq!(code, 0, "{err}");
}
