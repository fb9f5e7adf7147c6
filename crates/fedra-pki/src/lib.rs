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
//! Keys are ECDSA P-256. Private keys are created with mode 0600. Files are written
//! with `fedra_fs::write_atomic` (a new file renamed into place, so a symlink planted
//! at a key's name is replaced, never written through), and [`init_dir`] /
//! [`issue_into`] refuse to replace existing files unless told to
//! ([`Overwrite::Replace`]). Validity is bounded: parties 1–[`MAX_PARTY_DAYS`] days,
//! the CA 1–[`MAX_CA_DAYS`] days.
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
    /// A file would be replaced without [`Overwrite::Replace`].
    #[error("{}: already exists; refusing to replace it (use --force to replace it)", path.display())]
    Exists {
        /// The existing file (or link).
        path: PathBuf,
    },
    /// A request out of its allowed range (validity, duplicate parties).
    #[error("{0}")]
    Invalid(String),
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
            PkiError::Exists { .. } => "pki.exists",
            PkiError::Invalid(_) => "pki.invalid",
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

/// Longest validity of a party certificate, in days (the CA/Browser Forum's old
/// ceiling; rotate sooner).
pub const MAX_PARTY_DAYS: u32 = 825;
/// Longest validity of a dev CA, in days.
pub const MAX_CA_DAYS: u32 = 3650;

/// Whether writing certificates may replace existing files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse if any target file (or a link by that name) exists.
    Refuse,
    /// Replace them (atomically; links are replaced, not followed).
    Replace,
}

fn check_days(what: &str, days: u32, max: u32) -> Result<(), PkiError> {
    if (1..=max).contains(&days) {
        Ok(())
    } else {
        Err(PkiError::Invalid(format!(
            "{what} validity must be in 1..={max} days, got {days}"
        )))
    }
}

fn check_free(paths: &[PathBuf], overwrite: Overwrite) -> Result<(), PkiError> {
    if overwrite == Overwrite::Replace {
        return Ok(());
    }
    // `symlink_metadata`: a dangling link counts as existing too.
    match paths.iter().find(|p| fs::symlink_metadata(p).is_ok()) {
        Some(p) => Err(PkiError::Exists { path: p.clone() }),
        None => Ok(()),
    }
}

/// Creates a CA (valid `ca_days`) and one certificate per party (valid `days`) in
/// `dir` (what `fedra certs init` does). Nothing is written if a check fails.
pub fn init_dir(
    dir: &Path,
    parties: &[&str],
    days: u32,
    ca_days: u32,
    overwrite: Overwrite,
) -> Result<DevCa, PkiError> {
    check_days("a party certificate's", days, MAX_PARTY_DAYS)?;
    check_days("the CA's", ca_days, MAX_CA_DAYS)?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(p) = parties.iter().find(|p| !seen.insert(**p)) {
        return Err(PkiError::Invalid(format!("party {p:?} is listed twice")));
    }
    let mut paths = vec![dir.join("ca.pem"), dir.join("ca.key")];
    for p in parties {
        paths.push(dir.join(format!("{p}.pem")));
        paths.push(dir.join(format!("{p}.key")));
    }
    check_free(&paths, overwrite)?;
    let ca = DevCa::new(Validity::days(ca_days))?;
    ca.write(dir)?;
    for p in parties {
        ca.issue(p, Validity::days(days))?.write(dir, p)?;
    }
    Ok(ca)
}

/// Issues a certificate for `party` (valid `days`) from the CA in `dir` and writes it
/// there (what `fedra certs issue` does); returns the certificate and key paths.
pub fn issue_into(
    dir: &Path,
    party: &str,
    days: u32,
    overwrite: Overwrite,
) -> Result<(PathBuf, PathBuf), PkiError> {
    check_days("a party certificate's", days, MAX_PARTY_DAYS)?;
    check_free(
        &[
            dir.join(format!("{party}.pem")),
            dir.join(format!("{party}.key")),
        ],
        overwrite,
    )?;
    let ca = DevCa::load(dir)?;
    ca.issue(party, Validity::days(days))?.write(dir, party)
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
        let ca = init_dir(&dir, &["guest", "host"], 1, 1, Overwrite::Refuse).unwrap();
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

    #[test]
    fn refuses_to_replace_keys_and_never_writes_through_a_link() {
        let d = std::env::temp_dir().join(format!("fedra-pki-ow-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        init_dir(&d, &["guest"], 30, 60, Overwrite::Refuse).unwrap();
        let before = fs::read(d.join("ca.key")).unwrap();
        let e = init_dir(&d, &["guest"], 30, 60, Overwrite::Refuse).unwrap_err();
        assert_eq!(e.code(), "pki.exists");
        assert!(
            e.to_string().contains("ca.pem") && e.to_string().contains("--force"),
            "{e}"
        );
        assert_eq!(fs::read(d.join("ca.key")).unwrap(), before);
        let e = issue_into(&d, "guest", 30, Overwrite::Refuse).unwrap_err();
        assert_eq!(e.code(), "pki.exists");
        issue_into(&d, "host", 30, Overwrite::Refuse).unwrap();

        // A link planted at ca.key's name (even dangling) is "existing"; with
        // --force it is replaced by a regular file, and its target is untouched.
        #[cfg(unix)]
        {
            let victim = d.join("victim.txt");
            fs::write(&victim, b"someone else's file").unwrap();
            fs::remove_file(d.join("ca.key")).unwrap();
            std::os::unix::fs::symlink(&victim, d.join("ca.key")).unwrap();
            let e = init_dir(&d, &[], 30, 60, Overwrite::Refuse).unwrap_err();
            assert_eq!(e.code(), "pki.exists");
            init_dir(&d, &[], 30, 60, Overwrite::Replace).unwrap();
            assert_eq!(fs::read(&victim).unwrap(), b"someone else's file");
            assert!(
                !fs::symlink_metadata(d.join("ca.key"))
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn validity_and_parties_are_checked_before_anything_is_written() {
        let d = std::env::temp_dir().join(format!("fedra-pki-v-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        for (days, ca_days, needle) in [
            (0, 60, "1..=825 days, got 0"),
            (100_000, 60, "1..=825 days, got 100000"),
            (30, 0, "1..=3650 days, got 0"),
            (30, 100_000, "1..=3650 days, got 100000"),
        ] {
            let e = init_dir(&d, &["guest"], days, ca_days, Overwrite::Refuse).unwrap_err();
            assert_eq!(e.code(), "pki.invalid");
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e = init_dir(&d, &["guest", "guest"], 30, 60, Overwrite::Refuse).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        assert!(!d.exists(), "nothing written");
    }
}
