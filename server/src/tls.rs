//! TLS for LDAPS and StartTLS: rustls with the ring provider, TLS 1.2 and 1.3 only.
//!
//! The certificate chain and key come from PEM files named in the config. When none are named,
//! the server makes its own on first start: a private CA and a certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by it, written under `<data_dir>/tls/` (keys mode 0600), and logs
//! the CA's path so that `LDAPTLS_CACERT=<path> ldapsearch -ZZ ...` works at once. Later starts
//! reuse them. [`Tls::reload`] (SIGHUP) reads the files again; connections already open keep
//! the certificate they were made with, new handshakes get the new one. With a client CA
//! configured, clients may present a certificate (it is verified, not required); its subject
//! is then available for SASL EXTERNAL.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (leaf first) and private key, PEM.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates are verified against; none: clients are
    /// not asked for one.
    pub client_ca: Option<PathBuf>,
    /// The private CA's certificate when the server generated its own (for the log and tests).
    pub generated_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("generating the private CA and server certificate: {0}")]
    Generate(String),
}

fn file_err(path: &Path, detail: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// The live TLS configuration of the server, replaceable while it runs.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Loads the configured files, or with `files` `None` the generated ones under
    /// `data_dir/tls`, creating them first if needed.
    pub fn open(
        files: Option<TlsFiles>,
        client_ca: Option<PathBuf>,
        data_dir: &Path,
    ) -> Result<Tls, TlsError> {
        let files = match files {
            Some(f) => f,
            None => {
                let mut f = ensure_generated(&data_dir.join("tls"))?;
                f.client_ca = client_ca;
                f
            }
        };
        let config = build(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the certificate, key and client CA files again. On failure the previous
    /// configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(build(&self.files)?);
        let mut slot = self
            .current
            .write()
            .map_err(|_| TlsError::Config("configuration lock poisoned".into()))?;
        *slot = config;
        Ok(())
    }

    /// An acceptor for one new connection, with the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// The rustls configuration for `files`: TLS 1.2 and 1.3 with ring's cipher suites, the chain
/// and key, and an optional client certificate check.
fn build(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, e))?;
    if chain.is_empty() {
        return Err(file_err(&files.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_err(path, e))? {
                roots
                    .add(cert.map_err(|e| file_err(path, e))?)
                    .map_err(|e| file_err(path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| file_err(path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_err(&files.cert, e))?;
    config.alpn_protocols = Vec::new();
    Ok(config)
}

/// The generated files under `dir`, made on first use: `ca.pem` / `ca.key` (a private CA valid
/// for ten years) and `server.pem` / `server.key` (localhost, 127.0.0.1 and ::1, two years).
fn ensure_generated(dir: &Path) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: None,
        generated_ca: Some(dir.join("ca.pem")),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let generated = generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&dir.join("ca.key"), &generated.ca_key)?;
    write_public(&dir.join("ca.pem"), &generated.ca_cert)?;
    write_private(&files.key, &generated.server_key)?;
    write_public(&files.cert, &generated.server_cert)?;
    tracing::info!(ca = %dir.join("ca.pem").display(), "generated a private CA and a server certificate for localhost; clients trust it with LDAPTLS_CACERT=<ca>");
    Ok(files)
}

struct Generated {
    ca_cert: String,
    ca_key: String,
    server_cert: String,
    server_key: String,
}

fn generate() -> Result<Generated, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let mut ca = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Roster private CA");
    name.push(DnType::OrganizationName, "Roster");
    ca.distinguished_name = name;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut server = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "localhost");
    server.distinguished_name = name;
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(730);
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;
    Ok(Generated {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
    })
}

/// The subject of a client certificate as an LDAP DN string (RFC 4514 order: the most specific
/// RDN first), for SASL EXTERNAL. `None` for a certificate that does not parse or a subject
/// with values that are not strings.
pub fn client_subject(der: &[u8]) -> Option<String> {
    use roster_schema::{Ava, Dn, Rdn};
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut avas = Vec::new();
        for ava in rdn.iter() {
            let oid = ava.attr_type().to_id_string();
            let attr = match oid.as_str() {
                "2.5.4.3" => "cn".to_string(),
                "2.5.4.6" => "c".to_string(),
                "2.5.4.7" => "l".to_string(),
                "2.5.4.8" => "st".to_string(),
                "2.5.4.10" => "o".to_string(),
                "2.5.4.11" => "ou".to_string(),
                "0.9.2342.19200300.100.1.1" => "uid".to_string(),
                "0.9.2342.19200300.100.1.25" => "dc".to_string(),
                "1.2.840.113549.1.9.1" => "email".to_string(),
                other => other.to_string(),
            };
            let value = ava.as_str().ok()?.as_bytes().to_vec();
            avas.push(Ava { attr, value });
        }
        rdns.push(Rdn { avas });
    }
    // X.509 names list the most general RDN first; LDAP DNs the most specific.
    rdns.reverse();
    Some(Dn { rdns }.to_string())
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| file_err(path, e))?;
    f.sync_all().map_err(|e| file_err(path, e))
}

fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(|e| file_err(path, e))
}
