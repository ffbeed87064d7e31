//! The local certificate authority: created once (key 0600), then used to mint one leaf
//! certificate per intercepted host, cached (bounded LRU-like cache).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hudsucker::certificate_authority::CertificateAuthority;
use hudsucker::hyper::http::uri::Authority;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ProxyError;

/// File name of the CA certificate (PEM) in the CA directory.
pub const CA_CERT: &str = "ca.pem";
/// File name of the CA key (PEM, mode 0600).
pub const CA_KEY: &str = "ca.key";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProxyError + '_ {
    move |e| ProxyError::Io(format!("{}: {e}", path.display()))
}

fn rc(e: rcgen::Error) -> ProxyError {
    ProxyError::Ca(e.to_string())
}

/// Paths of the CA in `dir`.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(CA_CERT), dir.join(CA_KEY))
}

/// Loads the CA from `dir`, creating it (ECDSA P-256, 10 years, key mode 0600) if absent.
/// Returns the certificate PEM and the key.
pub fn load_or_create(dir: &Path) -> Result<(String, KeyPair), ProxyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let (cert_path, key_path) = ca_paths(dir);
    if cert_path.exists() && key_path.exists() {
        let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key).map_err(rc)?;
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Agent Assembly local CA");
    dn.push(DnType::OrganizationName, "Agent Assembly");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(10 * 365 * 86_400)).into();
    let cert = params.self_signed(&key).map_err(rc)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(io(&key_path))?;
    std::io::Write::write_all(&mut f, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
    std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
    Ok((cert.pem(), key))
}

/// Mints and caches per-host server configurations signed by the local CA.
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    /// One key for every leaf (fast minting); never the CA key.
    leaf_key: KeyPair,
    leaf_key_der: PrivateKeyDer<'static>,
    cache: quick_cache::sync::Cache<String, Arc<ServerConfig>>,
    provider: Arc<CryptoProvider>,
    minted: AtomicU64,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("minted", &self.minted)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// A CA from its PEM certificate and key, caching up to `cache_size` hosts.
    pub fn new(cert_pem: &str, key: KeyPair, cache_size: usize) -> Result<Self, ProxyError> {
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(rc)?;
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc)?;
        let leaf_key_der = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        Ok(LocalCa {
            issuer,
            leaf_key,
            leaf_key_der,
            cache: quick_cache::sync::Cache::new(cache_size.max(16)),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            minted: AtomicU64::new(0),
        })
    }

    /// Leaf certificates minted so far (cache misses).
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// A leaf certificate for `host` (a DNS name or an IP literal), valid 30 days.
    pub fn leaf(&self, host: &str) -> Result<CertificateDer<'static>, ProxyError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into().map_err(rc)?),
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(30 * 86_400)).into();
        let cert = params.signed_by(&self.leaf_key, &self.issuer).map_err(rc)?;
        self.minted.fetch_add(1, Ordering::Relaxed);
        Ok(cert.der().clone())
    }

    /// The server configuration for `host` (HTTP/2 and HTTP/1.1 by ALPN), cached.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, ProxyError> {
        if let Some(cfg) = self.cache.get(host) {
            return Ok(cfg);
        }
        let cert = self.leaf(host)?;
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Ca(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], self.leaf_key_der.clone_key())
            .map_err(|e| ProxyError::Ca(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        self.cache.insert(host.to_owned(), cfg.clone());
        Ok(cfg)
    }

    /// Hosts cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl CertificateAuthority for LocalCa {
    async fn gen_server_config(&self, authority: &Authority) -> Arc<ServerConfig> {
        match self.server_config(authority.host()) {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::warn!(host = authority.host(), error = %e, "cannot mint a certificate");
                // A config without a matching certificate: the client's handshake fails, loudly.
                self.server_config("invalid.agent-assembly")
                    .unwrap_or_else(|_| {
                        Arc::new(
                            ServerConfig::builder_with_provider(self.provider.clone())
                                .with_safe_default_protocol_versions()
                                .map(|b| {
                                    b.with_no_client_auth().with_cert_resolver(Arc::new(NoCert))
                                })
                                .unwrap_or_else(|_| unreachable_config()),
                        )
                    })
            }
        }
    }
}

#[derive(Debug)]
struct NoCert;

impl rustls::server::ResolvesServerCert for NoCert {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

fn unreachable_config() -> ServerConfig {
    ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCert))
}

/// Where `install-ca` puts the certificate for Debian's `update-ca-certificates`.
pub const DEFAULT_TRUST_DIR: &str = "/usr/local/share/ca-certificates";
const TRUST_NAME: &str = "agent-assembly-local-ca.crt";

/// Adds the CA to the system trust store (Debian/Ubuntu layout) and refreshes it.
pub fn install_system(cert_pem: &str, trust_dir: &Path) -> Result<PathBuf, ProxyError> {
    std::fs::create_dir_all(trust_dir).map_err(io(trust_dir))?;
    let path = trust_dir.join(TRUST_NAME);
    std::fs::write(&path, cert_pem).map_err(io(&path))?;
    refresh_store(trust_dir)?;
    Ok(path)
}

/// Removes the CA from the system trust store and refreshes it.
pub fn uninstall_system(trust_dir: &Path) -> Result<bool, ProxyError> {
    let path = trust_dir.join(TRUST_NAME);
    let existed = path.exists();
    if existed {
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    refresh_store(trust_dir)?;
    Ok(existed)
}

fn refresh_store(trust_dir: &Path) -> Result<(), ProxyError> {
    // Only the real system directory is wired to update-ca-certificates; a custom one (tests)
    // is just a directory.
    if trust_dir != Path::new(DEFAULT_TRUST_DIR) {
        return Ok(());
    }
    let status = std::process::Command::new("update-ca-certificates")
        .arg("--fresh")
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| ProxyError::Io(format!("update-ca-certificates: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ProxyError::Io(format!(
            "update-ca-certificates failed: {status}"
        )))
    }
}
