//! Backups of a whole server, and restoring them: the entries as LDIF from one snapshot (the
//! running server writes it through its control socket; a stopped store is read directly),
//! the TLS material rosterd generated in its data directory (so that clients trusting its CA
//! still trust a restored server), and a manifest with the LDIF's SHA-256, checked before a
//! restore loads anything. A restore goes into a data directory that holds no store, so it
//! never mixes with, or overwrites, what is there.

use sha2::{Digest, Sha256};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// The entries, in the backup directory.
pub const LDIF_NAME: &str = "directory.ldif";
/// The manifest, in the backup directory.
pub const MANIFEST_NAME: &str = "backup.txt";
/// The generated TLS files, in the data directory and in the backup.
const TLS_DIR: &str = "tls";

/// Why a backup or a restore could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not empty: a backup goes into a new or empty directory")]
    NotEmpty(PathBuf),
    #[error("{0} holds no rosterd backup ({MANIFEST_NAME} is missing)")]
    NoManifest(PathBuf),
    #[error("{path}: line {line:?} is not part of a rosterd backup manifest")]
    BadManifest { path: PathBuf, line: String },
    #[error("{path} is damaged: its SHA-256 is {found}, the manifest says {expected}")]
    Damaged {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("the data directory {0} already holds a store: restore into an empty data directory (move this one aside first)")]
    StoreExists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub version: String,
    pub created: String,
    pub entries: u64,
    pub sha256: String,
}

/// Creates the backup directory (owner only: the LDIF holds password hashes and the TLS
/// keys), refusing one that holds anything.
pub fn prepare(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
    } else {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

fn sha256_of(path: &Path) -> Result<String, BackupError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Copies the files of `from` (one level, regular files) into `to`, owner-only.
fn copy_files(from: &Path, to: &Path) -> Result<usize, BackupError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).map_err(io(to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).map_err(io(to))?;
    let mut n = 0;
    for e in std::fs::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        if !e.file_type().map_err(io(from))?.is_file() {
            continue;
        }
        let target = to.join(e.file_name());
        std::fs::copy(e.path(), &target).map_err(io(&target))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
            .map_err(io(&target))?;
        n += 1;
    }
    Ok(n)
}

/// Completes a backup whose LDIF (`entries` entries) is written: copies the generated TLS
/// files of `data_dir` and writes the manifest last, so that a directory with a manifest is a
/// whole backup.
pub fn finish(dir: &Path, data_dir: &Path, entries: u64) -> Result<Manifest, BackupError> {
    let tls = data_dir.join(TLS_DIR);
    if tls.is_dir() {
        copy_files(&tls, &dir.join(TLS_DIR))?;
    }
    let manifest = Manifest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        created: crate::time::generalized_now(),
        entries,
        sha256: sha256_of(&dir.join(LDIF_NAME))?,
    };
    let path = dir.join(MANIFEST_NAME);
    let text = format!(
        "rosterd backup\nversion: {}\ncreated: {}\nentries: {}\nsha256 {LDIF_NAME}: {}\n",
        manifest.version, manifest.created, manifest.entries, manifest.sha256
    );
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    f.write_all(text.as_bytes()).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok(manifest)
}

/// Reads a backup's manifest and checks its LDIF against it.
pub fn check(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_NAME);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(dir.to_path_buf()))
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let mut m = Manifest {
        version: String::new(),
        created: String::new(),
        entries: 0,
        sha256: String::new(),
    };
    let bad = |line: &str| BackupError::BadManifest {
        path: path.clone(),
        line: line.to_string(),
    };
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        if i == 0 {
            if line != "rosterd backup" {
                return Err(bad(&line));
            }
            continue;
        }
        let Some((key, value)) = line.split_once(": ") else {
            return Err(bad(&line));
        };
        match key {
            "version" => m.version = value.to_string(),
            "created" => m.created = value.to_string(),
            "entries" => m.entries = value.parse().map_err(|_| bad(&line))?,
            k if k == format!("sha256 {LDIF_NAME}") => m.sha256 = value.to_string(),
            _ => return Err(bad(&line)),
        }
    }
    if m.sha256.is_empty() {
        return Err(bad("(no sha256 line)"));
    }
    let ldif = dir.join(LDIF_NAME);
    let found = sha256_of(&ldif)?;
    if found != m.sha256 {
        return Err(BackupError::Damaged {
            path: ldif,
            found,
            expected: m.sha256,
        });
    }
    Ok(m)
}

/// Before a restore opens the store: refuses a data directory that holds one, and puts the
/// backup's TLS files in place (unless the data directory has its own).
pub fn prepare_restore(dir: &Path, data_dir: &Path) -> Result<(), BackupError> {
    if data_dir.join("version").exists() || data_dir.join("keyspaces").exists() {
        return Err(BackupError::StoreExists(data_dir.to_path_buf()));
    }
    let tls = dir.join(TLS_DIR);
    let target = data_dir.join(TLS_DIR);
    if tls.is_dir() && !target.exists() {
        copy_files(&tls, &target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_checked_before_it_is_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("tls")).unwrap();
        std::fs::write(data.join("tls/ca.pem"), "ca").unwrap();
        let dir = tmp.path().join("backup");
        prepare(&dir).unwrap();
        std::fs::write(dir.join(LDIF_NAME), "dn: dc=example,dc=com\n").unwrap();
        let m = finish(&dir, &data, 1).unwrap();
        assert_eq!(check(&dir).unwrap(), m);
        assert!(matches!(prepare(&dir), Err(BackupError::NotEmpty(_))));
        // Restoring into the data directory that has a store is refused.
        std::fs::write(data.join("version"), "3").unwrap();
        assert!(matches!(
            prepare_restore(&dir, &data),
            Err(BackupError::StoreExists(_))
        ));
        let fresh = tmp.path().join("fresh");
        prepare_restore(&dir, &fresh).unwrap();
        assert_eq!(
            std::fs::read_to_string(fresh.join("tls/ca.pem")).unwrap(),
            "ca"
        );
        // One changed byte is found.
        std::fs::write(dir.join(LDIF_NAME), "dn: dc=example,dc=org\n").unwrap();
        assert!(matches!(check(&dir), Err(BackupError::Damaged { .. })));
        std::fs::remove_file(dir.join(MANIFEST_NAME)).unwrap();
        assert!(matches!(check(&dir), Err(BackupError::NoManifest(_))));
    }
}
