//! The installation's certificate authority: made once, kept by islod (`ca.key` 0600, never
//! in a sandbox), trusted by every sandbox. The gateway terminates a sandbox's TLS with a leaf
//! certificate for the host it asked for, signed here and cached per host.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long a leaf is used before a fresh one is signed (leaves are valid for 30 days).
const LEAF_REUSE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Hosts whose configurations are cached at most.
const CACHE_MAX: usize = 4096;

/// Errors of the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The CA and its leaf cache.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    /// One key for every leaf: signing a leaf is then one signature, not a key generation.
    leaf_key: KeyPair,
    cache: Mutex<HashMap<String, (Instant, Arc<ServerConfig>)>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "islo");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(3650);
    p
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Ca {
    /// Load the CA kept in `dir` (`ca.key`, `ca.crt`, `ca.name`), making it the first time;
    /// `write(path, bytes, mode)` stores each new file (islod's writes whole files only).
    pub fn load_or_create(
        dir: &Path,
        write: impl Fn(&Path, &[u8], u32) -> std::io::Result<()>,
    ) -> Result<Self, CaError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (key_path, crt_path, name_path) =
            (dir.join("ca.key"), dir.join("ca.crt"), dir.join("ca.name"));
        // The certificate is written last: without it the CA was never finished (a crash while
        // making it), no sandbox trusts it yet, and it is made again.
        if !crt_path.exists() {
            let key = KeyPair::generate()?;
            let name = format!("islo gateway CA {:08x}", rand::random::<u32>());
            let cert = ca_params(&name).self_signed(&key)?;
            for (path, text, mode) in [
                (&key_path, key.serialize_pem(), 0o600),
                (&name_path, name, 0o644),
                (&crt_path, cert.pem(), 0o644),
            ] {
                write(path, text.as_bytes(), mode).map_err(io_err(path))?;
            }
        }
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let cert_pem = std::fs::read_to_string(&crt_path).map_err(io_err(&crt_path))?;
        let name = std::fs::read_to_string(&name_path).map_err(io_err(&name_path))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let cert_der = pem_to_der(&cert_pem).ok_or(rcgen::Error::CouldNotParseCertificate)?;
        Ok(Self {
            issuer: Issuer::new(ca_params(name.trim()), key),
            cert_pem,
            cert_der,
            leaf_key: KeyPair::generate()?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM), what sandboxes trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf certificate for `host` (a DNS name or an IP address), DER.
    pub fn leaf(&self, host: &str) -> Result<CertificateDer<'static>, CaError> {
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.to_string().try_into()?),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
        Ok(p.signed_by(&self.leaf_key, &self.issuer)?.der().clone())
    }

    /// The TLS server configuration presenting `host`'s leaf (cached).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let host = host.to_ascii_lowercase();
        if let Ok(cache) = self.cache.lock()
            && let Some((made, cfg)) = cache.get(&host)
            && made.elapsed() < LEAF_REUSE
        {
            return Ok(cfg.clone());
        }
        let chain = vec![self.leaf(&host)?, self.cert_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(host, (Instant::now(), cfg.clone()));
        }
        Ok(cfg)
    }
}

/// The first certificate of a PEM text, DER.
pub fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// Every certificate of a PEM text, DER (anything else in it is passed over).
pub fn pem_all(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// What islod passes: here plain writes, with the mode.
    fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn a_ca_cut_short_by_a_crash_is_made_again() {
        let dir = std::env::temp_dir().join(format!("islo-ca-cut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.key"), "-----BEGIN PRIVATE KEY-----\nMIG").unwrap();
        let ca = Ca::load_or_create(&dir, write).unwrap();
        assert_eq!(
            Ca::load_or_create(&dir, write).unwrap().cert_pem(),
            ca.cert_pem()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn made_once_then_loaded_and_leaves_verify_against_it() {
        let dir = std::env::temp_dir().join(format!("islo-ca-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Ca::load_or_create(&dir, write).unwrap();
        let b = Ca::load_or_create(&dir, write).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("ca.key")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // A leaf from the reloaded CA verifies against the stored certificate.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_to_der(a.cert_pem()).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let leaf = b.leaf("api.example.test").unwrap();
        let name = rustls::pki_types::ServerName::try_from("api.example.test").unwrap();
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], now)
            .unwrap();
        let other = rustls::pki_types::ServerName::try_from("other.test").unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], now)
                .is_err()
        );
        assert!(b.server_config("api.example.test").is_ok());
        // Text without certificates gives none (a wrong file in upstream_ca_files).
        assert!(pem_all("registry_mirrors: {}\n").is_empty());
        assert_eq!(
            pem_all(&format!("{}\n{}", a.cert_pem(), b.cert_pem())).len(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
