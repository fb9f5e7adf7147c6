//! Development certificate authority and per-party certificates.
//!
//! Fedra parties authenticate each other with mutual TLS: each party has a
//! certificate whose DNS subject-alternative name (and common name) is its party id,
//! issued by a CA that every party of the job trusts. This crate makes such a CA and
//! such certificates for development and for `fedra run --local`; in production an
//! organization uses its own PKI (see the README: any CA works as long as each
//! party's certificate carries its party id as a DNS SAN and both EKUs
//! `serverAuth` and `clientAuth`).
//!
//! Keys are ECDSA P-256. Private keys are written with mode 0600.
//!
//! ```
//! use fedra_pki::{DevCa, Validity};
//! let ca = DevCa::new(Validity::days(30))?;
//! let guest = ca.issue("guest", Validity::days(30))?;
//! assert!(guest.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! # Ok::<(), fedra_pki::PkiError>(())
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Errors of certificate generation and storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Certificate or key generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl PkiError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            PkiError::Generate(_) => "pki.generate",
            PkiError::Io { .. } => "pki.io",
        }
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from an hour ago (clock skew between machines) for `days` days.
    pub fn days(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    /// Already expired (for tests of certificate rejection).
    pub fn expired() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        }
    }
}

/// A PEM certificate and its PEM private key.
#[derive(Clone)]
pub struct PartyCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for PartyCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

const CA_NAME: &str = "Fedra development CA";

/// A development certificate authority.
pub struct DevCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn ca_params(validity: Validity) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Fedra");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    Ok(params)
}

impl DevCa {
    /// Creates a new CA with a fresh key.
    pub fn new(validity: Validity) -> Result<Self, PkiError> {
        let params = ca_params(validity)?;
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            params,
            key,
            cert_pem,
        })
    }

    /// Loads a CA written by [`DevCa::write`] (or by `fedra certs init`).
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_pem = read(&dir.join("ca.pem"))?;
        let key = KeyPair::from_pem(&read(&dir.join("ca.key"))?)?;
        // Issuing needs only the CA's subject name and key, which are fixed.
        let params = ca_params(Validity::days(1))?;
        Ok(Self {
            params,
            key,
            cert_pem,
        })
    }

    /// The CA certificate, PEM (the trust anchor every party needs).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `party`, usable as TLS server and client.
    pub fn issue(&self, party: &str, validity: Validity) -> Result<PartyCert, PkiError> {
        let mut params = CertificateParams::new(vec![party.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, party);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(PartyCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` and `ca.key` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        create_dir(dir)?;
        write(&dir.join("ca.pem"), &self.cert_pem, false)?;
        write(&dir.join("ca.key"), &self.key.serialize_pem(), true)
    }
}

impl PartyCert {
    /// Writes `<party>.pem` and `<party>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, party: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        create_dir(dir)?;
        let (c, k) = (
            dir.join(format!("{party}.pem")),
            dir.join(format!("{party}.key")),
        );
        write(&c, &self.cert_pem, false)?;
        write(&k, &self.key_pem, true)?;
        Ok((c, k))
    }
}

/// Creates a CA and one certificate per party in `dir` (what `fedra certs init` does).
pub fn init_dir(dir: &Path, parties: &[&str], days: u32) -> Result<DevCa, PkiError> {
    let ca = DevCa::new(Validity::days(days))?;
    ca.write(dir)?;
    for p in parties {
        ca.issue(p, Validity::days(days))?.write(dir, p)?;
    }
    Ok(ca)
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    // Durably, and a key is owner-only from its creation on.
    let mode = if secret {
        fedra_fs::Mode::Private
    } else {
        fedra_fs::Mode::Public
    };
    fedra_fs::write_atomic(path, contents.as_bytes(), mode).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_ca_and_party_files_and_reloads() {
        let dir = std::env::temp_dir().join(format!("fedra-pki-{}", std::process::id()));
        let ca = init_dir(&dir, &["guest", "host"], 1).unwrap();
        for f in [
            "ca.pem",
            "ca.key",
            "guest.pem",
            "guest.key",
            "host.pem",
            "host.key",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("guest.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others");
        }
        let again = DevCa::load(&dir).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        again.issue("arbiter", Validity::days(1)).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_prints_private_keys() {
        let ca = DevCa::new(Validity::days(1)).unwrap();
        let cert = ca.issue("guest", Validity::days(1)).unwrap();
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }
}
