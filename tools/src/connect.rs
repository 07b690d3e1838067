//! Connecting to rosterd: the URL, the bind DN and password (options or `ROSTER_*` variables, a
//! password file), StartTLS for `ldap://` URLs and TLS for `ldaps://`, trusting `--ca`.

use ldap3::{LdapConn, LdapConnSettings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the tool could not connect or bind.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("read the password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read the CA file {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("no bind DN: give --bind-dn or ROSTER_BIND_DN")]
    NoBindDn,
    #[error("no password: give --password-file or ROSTER_PASSWORD")]
    NoPassword,
    #[error("connect to {url}: {source}")]
    Connect {
        url: String,
        source: Box<ldap3::LdapError>,
    },
    #[error("bind as {dn}: {message}")]
    Bind { dn: String, message: String },
}

/// Where and as whom to connect.
pub struct Target {
    pub url: String,
    pub bind_dn: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The password from the environment (`ROSTER_PASSWORD`), when no file is given.
    pub password_env: Option<String>,
    pub ca: Option<PathBuf>,
    /// Allow a plain connection to a non-loopback server (passwords then travel in clear).
    pub no_tls: bool,
    /// How long connecting and binding may take each (10 s for the connection otherwise, and
    /// no limit on the bind).
    pub timeout: Option<Duration>,
}

/// Connects (StartTLS on `ldap://` unless `no_tls`) and binds.
pub fn connect(t: &Target) -> Result<LdapConn, ConnectError> {
    let dn = t.bind_dn.clone().ok_or(ConnectError::NoBindDn)?;
    let password = match (&t.password_file, &t.password_env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|source| ConnectError::PasswordFile {
                path: path.clone(),
                source,
            })?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        (None, Some(p)) => p.clone(),
        (None, None) => return Err(ConnectError::NoPassword),
    };
    let mut settings =
        LdapConnSettings::new().set_conn_timeout(t.timeout.unwrap_or(Duration::from_secs(10)));
    if let Some(ca) = &t.ca {
        settings = settings.set_config(client_config(ca)?);
    }
    if t.url.starts_with("ldap://") && !t.no_tls {
        settings = settings.set_starttls(true);
    }
    let mut conn =
        LdapConn::with_settings(settings, &t.url).map_err(|source| ConnectError::Connect {
            url: t.url.clone(),
            source: Box::new(source),
        })?;
    if let Some(limit) = t.timeout {
        conn.with_timeout(limit);
    }
    let bound = conn
        .simple_bind(&dn, &password)
        .map_err(|e| e.to_string())
        .and_then(|r| r.success().map_err(|e| e.to_string()));
    if let Err(message) = bound {
        return Err(ConnectError::Bind { dn, message });
    }
    Ok(conn)
}

/// A TLS client configuration trusting only the certificates in the PEM file `ca`.
fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |message: String| ConnectError::Ca {
        path: ca.to_path_buf(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        rustls::pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
