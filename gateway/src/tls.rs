//! The local certificate authority and the rustls configurations built from it.
//!
//! [`LocalCa`] is created per start (rcgen, ECDSA P-256) unless the caller passes one. It issues
//! the front door's certificate (the gateway host name, `localhost`, `127.0.0.1`, `::1`) and the
//! certificates of TLS backends (their DNS names and simulated addresses); its certificate is
//! exported as PEM so clients can trust a TLS front door. Upstream connections trust this CA
//! **only** (plus any extra roots the caller adds), so a backend with another certificate fails
//! with `BACKEND_TLS`. Every configuration uses the `ring` provider explicitly.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocols of the front door and the echo backends, in preference order.
pub const ALPN_H2_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why a certificate or TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed (an invalid DNS name, ...).
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration (an unsupported key, ...).
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA certificate could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct IssuedCert {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate as PEM.
    pub cert_pem: String,
    /// The key as PEM.
    pub key_pem: String,
}

impl Clone for IssuedCert {
    fn clone(&self) -> Self {
        IssuedCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// A local CA: one self-signed root that issues every certificate the gateway and its
/// backends present.
///
/// ```
/// let ca = gateway::tls::LocalCa::new().unwrap();
/// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// let leaf = ca.issue(&["orders.internal.contoso.com".to_string()]).unwrap();
/// assert_eq!(leaf.chain.len(), 1);
/// ```
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

// === impl LocalCa ===

impl LocalCa {
    /// Creates a new root (ECDSA P-256, CN "vnetsim local CA").
    ///
    /// # Errors
    /// [`TlsError::Generate`] if key generation fails.
    pub fn new() -> Result<LocalCa, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "vnetsim local CA");
        dn.push(DnType::OrganizationName, "vnetsim");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(LocalCa {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The root certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Writes the root certificate as PEM to `path` (so `curl --cacert` can trust it).
    ///
    /// # Errors
    /// [`TlsError::Write`] on I/O failure.
    pub fn write_pem(&self, path: &Path) -> Result<(), TlsError> {
        std::fs::write(path, self.cert_pem.as_bytes()).map_err(|source| TlsError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Issues a server certificate for `names` (DNS names or IP literals; the first is the CN).
    ///
    /// # Errors
    /// [`TlsError::Generate`] for names rcgen cannot encode.
    pub fn issue(&self, names: &[String]) -> Result<IssuedCert, TlsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok(IssuedCert {
            chain: vec![cert.der().clone()],
            key: key_der,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A root store holding only this CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        // Our own freshly generated root always parses; a failure would leave the store empty,
        // which fails closed (every backend handshake is rejected).
        let _ = roots.add(self.cert_der.clone());
        roots
    }

    /// A client configuration trusting this CA (and `extra_roots`), with ALPN `alpn`.
    ///
    /// # Errors
    /// [`TlsError::Config`] when an extra root does not parse.
    pub fn client_config(
        &self,
        extra_roots: &[CertificateDer<'static>],
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = self.root_store();
        for r in extra_roots {
            roots.add(r.clone())?;
        }
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

/// A server configuration presenting `cert`, with ALPN `alpn`.
///
/// # Errors
/// [`TlsError::Config`] when rustls refuses the key.
pub fn server_config(cert: &IssuedCert, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Largest PEM file [`load_pem`] reads: 1 MiB. A certificate is a few KiB of PEM, so even a long
/// chain fits hundreds of times; the cap keeps a mistaken path from filling memory.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Reads a PEM certificate chain and private key (user-supplied `tls_cert` / `tls_key`). Each
/// must be a regular file of at most [`MAX_PEM_BYTES`] ([`crate::file::read_to_string`]), so a
/// FIFO or a device never blocks the caller (a reload, or the start).
///
/// # Errors
/// [`TlsError::Pem`] when a file cannot be read, is not a regular file, is too large, or holds
/// no certificate / key.
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<IssuedCert, TlsError> {
    let pem_err = |p: &Path, reason: String| TlsError::Pem {
        path: p.display().to_string(),
        reason,
    };
    let read = |p: &Path| {
        crate::file::read_to_string(p, MAX_PEM_BYTES).map_err(|e| pem_err(p, e.to_string()))
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_err(cert_path, "no CERTIFICATE block".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| pem_err(key_path, e.to_string()))?
        .ok_or_else(|| pem_err(key_path, "no PRIVATE KEY block".into()))?;
    Ok(IssuedCert {
        chain,
        key,
        cert_pem,
        key_pem,
    })
}

/// A random token of `bytes` random bytes, hex-encoded (the admin bearer token).
///
/// # Errors
/// When the system random source fails.
pub fn random_hex(bytes: usize) -> Result<String, rustls::Error> {
    let mut buf = vec![0u8; bytes];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certs_verify_against_the_ca_only() {
        use rustls::client::danger::ServerCertVerifier;
        let ca = LocalCa::new().unwrap();
        let other = LocalCa::new().unwrap();
        let leaf = ca
            .issue(&["orders.internal.contoso.com".into(), "10.0.2.4".into()])
            .unwrap();
        let server = server_config(&leaf, ALPN_H2_H1).unwrap();
        assert_eq!(
            server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // The verifier of a client trusting `ca` accepts the leaf; one trusting `other` does not.
        let verify = |ca: &LocalCa| {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(ca.root_store()),
                provider(),
            )
            .build()
            .unwrap();
            verifier
                .verify_server_cert(
                    &leaf.chain[0],
                    &[],
                    &rustls_pki_types::ServerName::try_from("orders.internal.contoso.com").unwrap(),
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .is_ok()
        };
        assert!(verify(&ca));
        assert!(!verify(&other));
    }

    #[test]
    fn pem_round_trip() {
        let ca = LocalCa::new().unwrap();
        let leaf = ca.issue(&["localhost".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("vnetsim-tls-{}", random_hex(6).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join("k.pem"), &leaf.key_pem).unwrap();
        let loaded = load_pem(&dir.join("c.pem"), &dir.join("k.pem")).unwrap();
        assert_eq!(loaded.chain, leaf.chain);
        assert!(load_pem(&dir.join("k.pem"), &dir.join("k.pem")).is_err());
        // A device is refused before it is read (it would never end).
        let e = load_pem(Path::new("/dev/zero"), &dir.join("k.pem")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        ca.write_pem(&dir.join("ca.pem")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
            ca.cert_pem()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16).unwrap());
    }
}
