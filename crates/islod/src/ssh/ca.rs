//! islod's SSH authorities: a user CA that signs short-lived certificates for API callers,
//! and a host CA that signs a certificate for `NAME.islo` on every connection, so OpenSSH
//! verifies the sandbox through `@cert-authority *.islo` instead of trusting on first use.
//! The keys live in `<state>/ssh/` (0600) and never leave islod.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};

/// Longest validity of a user certificate.
pub const MAX_TTL_SECS: u64 = 24 * 3600;
/// Default validity of a user certificate.
pub const DEFAULT_TTL_SECS: u64 = 4 * 3600;
/// Domain every sandbox host name ends in.
pub const DOMAIN: &str = ".islo";

/// Errors of the authorities.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("ssh key: {0}")]
    Key(#[from] russh::keys::ssh_key::Error),
    #[error("{0}")]
    Refused(String),
}

/// The authorities and the host key.
pub struct SshCa {
    user_ca: PrivateKey,
    host_ca: PrivateKey,
    host_key: PrivateKey,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key in `dir/name`, created (ed25519, mode 0600) when missing.
fn load_or_create(dir: &Path, name: &str) -> Result<PrivateKey, CaError> {
    let path = dir.join(name);
    let io = |source| CaError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(PrivateKey::from_openssh(pem)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::random(&mut rand_ssh::rng(), Algorithm::Ed25519)?;
            let pem = key.to_openssh(LineEnding::LF)?;
            // Whole or not there: a key cut short by a crash would stop every later start.
            islo_runtime::host::write_durable(&path, pem.as_bytes(), 0o600).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// An installation's SSH authorities (`<state>/ssh/`), loaded or created on first use.
pub struct LazyCa {
    dir: std::path::PathBuf,
    cell: std::sync::OnceLock<std::sync::Arc<SshCa>>,
}

impl LazyCa {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("ssh"),
            cell: std::sync::OnceLock::new(),
        }
    }

    /// The authorities, loading (or making) them the first time.
    pub fn get(&self) -> Result<std::sync::Arc<SshCa>, CaError> {
        if let Some(ca) = self.cell.get() {
            return Ok(ca.clone());
        }
        let ca = std::sync::Arc::new(SshCa::open(&self.dir)?);
        Ok(self.cell.get_or_init(|| ca).clone())
    }
}

impl SshCa {
    /// Load the keys from `dir`, creating what is missing.
    pub fn open(dir: &Path) -> Result<Self, CaError> {
        std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        Ok(Self {
            user_ca: load_or_create(dir, "user_ca")?,
            host_ca: load_or_create(dir, "host_ca")?,
            host_key: load_or_create(dir, "host_key")?,
        })
    }

    /// The host CA's public key (`@cert-authority *.islo KEY`).
    pub fn host_ca_public(&self) -> String {
        self.host_ca.public_key().to_openssh().unwrap_or_default()
    }

    pub fn host_key(&self) -> &PrivateKey {
        &self.host_key
    }

    /// A user certificate for `public_key` (OpenSSH format) of `tenant`, valid for `ttl` seconds
    /// for `principals`.
    pub fn sign_user(
        &self,
        public_key: &str,
        tenant: &str,
        principals: &[&str],
        ttl: u64,
    ) -> Result<Certificate, CaError> {
        let key = PublicKey::from_openssh(public_key.trim()).map_err(|e| {
            CaError::Refused(format!("public_key is not an OpenSSH public key: {e}"))
        })?;
        let start = now().saturating_sub(60);
        let mut b = Builder::new_with_random_nonce(&mut rand_ssh::rng(), key, start, now() + ttl)?;
        b.serial(now())?;
        b.cert_type(CertType::User)?;
        b.key_id(format!("tenant:{tenant}"))?;
        for p in principals {
            b.valid_principal(*p)?;
        }
        for ext in ["permit-pty", "permit-port-forwarding"] {
            b.extension(ext, "")?;
        }
        Ok(b.sign(&self.user_ca)?)
    }

    /// Check a presented user certificate: signed by the user CA, in its validity window, a
    /// user certificate for `user`, issued to `tenant`.
    pub fn verify_user(&self, cert: &Certificate, tenant: &str, user: &str) -> Result<(), String> {
        let ca = self.user_ca.public_key().fingerprint(HashAlg::Sha256);
        cert.validate_at(now(), [&ca])
            .map_err(|_| "certificate not signed by this islod, or expired".to_string())?;
        if cert.cert_type() != CertType::User {
            return Err("not a user certificate".into());
        }
        if !cert.valid_principals().iter().any(|p| p == user) {
            return Err(format!("certificate not valid for user {user}"));
        }
        if cert.key_id() != format!("tenant:{tenant}") {
            return Err("certificate issued to another tenant".into());
        }
        Ok(())
    }

    /// A host certificate for `NAME.islo`, valid for a day.
    pub fn host_cert(&self, host: &str) -> Result<Certificate, CaError> {
        let start = now().saturating_sub(60);
        let mut b = Builder::new_with_random_nonce(
            &mut rand_ssh::rng(),
            self.host_key.public_key().clone(),
            start,
            start + 24 * 3600,
        )?;
        b.serial(now())?;
        b.cert_type(CertType::Host)?;
        b.key_id(format!("islod host {host}"))?;
        b.valid_principal(host)?;
        Ok(b.sign(&self.host_ca)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_certificates_are_bound_to_ca_tenant_user_and_time() {
        let d = tempfile::tempdir().unwrap();
        let ca = SshCa::open(d.path()).unwrap();
        let again = SshCa::open(d.path()).unwrap();
        assert_eq!(ca.host_ca_public(), again.host_ca_public(), "keys persist");
        let user = PrivateKey::random(&mut rand_ssh::rng(), Algorithm::Ed25519).unwrap();
        let pubkey = user.public_key().to_openssh().unwrap();
        let cert = ca.sign_user(&pubkey, "t1", &["islo"], 60).unwrap();
        ca.verify_user(&cert, "t1", "islo").unwrap();
        assert!(
            ca.verify_user(&cert, "t2", "islo")
                .unwrap_err()
                .contains("another tenant")
        );
        assert!(
            ca.verify_user(&cert, "t1", "root")
                .unwrap_err()
                .contains("user root")
        );
        let other = SshCa::open(&d.path().join("other")).unwrap();
        let foreign = other.sign_user(&pubkey, "t1", &["islo"], 60).unwrap();
        assert!(
            ca.verify_user(&foreign, "t1", "islo").is_err(),
            "another CA"
        );
        let expired = ca.sign_user(&pubkey, "t1", &["islo"], 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(ca.verify_user(&expired, "t1", "islo").is_err(), "expired");
        assert!(ca.sign_user("not a key", "t1", &["islo"], 60).is_err());
        let mode = std::fs::metadata(d.path().join("user_ca")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }
}
