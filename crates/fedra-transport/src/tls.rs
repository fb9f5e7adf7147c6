//! Mutual TLS 1.3: configurations, peer identity, and readable handshake errors.
//!
//! A party's identity is the DNS subject-alternative name of its certificate. The
//! client side asks rustls to verify the server certificate for the expected peer's
//! party id (exactly like a browser verifies a host name); the server side requires
//! a client certificate from the job's CA and then checks, with webpki's own name
//! verification, which party of the job it is valid for.

use std::path::Path;
use std::sync::Arc;

use fedra_federation::{FedError, PartyId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore, ServerConfig};

/// A party's TLS material: the job's trust anchor, its certificate chain and key.
#[derive(Clone)]
pub struct TlsIdentity {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    present_client_cert: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("ca_certs", &self.ca.len())
            .field("chain_certs", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> FedError {
    FedError::Transport(format!("{what}: {e}"))
}

impl TlsIdentity {
    /// Parses PEM text: CA certificate(s), this party's certificate chain, its private key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, FedError> {
        let certs = |pem: &str, what: &str| -> Result<Vec<CertificateDer<'static>>, FedError> {
            let v = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(what, e))?;
            if v.is_empty() {
                return Err(tls_err(what, "no PEM certificate found"));
            }
            Ok(v)
        };
        let ca = certs(ca_pem, "CA certificate")?;
        let chain = certs(cert_pem, "party certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| tls_err("private key", e))?;
        Ok(Self {
            ca,
            chain,
            key: Arc::new(key),
            present_client_cert: true,
        })
    }

    /// Reads the three PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, FedError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| tls_err(&format!("cannot read {}", p.display()), e))
        };
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }

    /// Makes outgoing connections present no client certificate. Every Fedra peer
    /// refuses such connections; this exists so tests can show that it does.
    pub fn for_tests_present_no_client_certificate(mut self) -> Self {
        self.present_client_cert = false;
        self
    }

    fn roots(&self) -> Result<RootCertStore, FedError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots
                .add(c.clone())
                .map_err(|e| tls_err("CA certificate", e))?;
        }
        Ok(roots)
    }

    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, FedError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                .build()
                .map_err(|e| tls_err("client verifier", e))?;
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_err("party certificate/key", e))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, FedError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err("TLS versions", e))?
            .with_root_certificates(self.roots()?);
        let mut cfg = if self.present_client_cert {
            builder
                .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
                .map_err(|e| tls_err("party certificate/key", e))?
        } else {
            builder.with_no_client_auth()
        };
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Who is on the other end of an accepted connection.
#[derive(Clone, Debug)]
pub(crate) enum PeerIdentity {
    /// The certificate is valid for this party of the job.
    Party(PartyId),
    /// A certificate from the job's CA that names no party of this job.
    Stranger(Vec<String>),
}

/// Finds which of `parties` the verified end-entity certificate is valid for.
pub(crate) fn identify(cert: &CertificateDer<'_>, parties: &[PartyId]) -> PeerIdentity {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return PeerIdentity::Stranger(vec!["<unparsable certificate>".into()]);
    };
    for p in parties {
        let Ok(name) = ServerName::try_from(p.as_str()) else {
            continue;
        };
        if ee.verify_is_valid_for_subject_name(&name).is_ok() {
            return PeerIdentity::Party(p.clone());
        }
    }
    PeerIdentity::Stranger(ee.valid_dns_names().map(str::to_owned).collect())
}

/// Finds a rustls error in an error's chain of causes.
pub(crate) fn find_rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// Explains a TLS failure in terms of certificates and parties.
pub(crate) fn describe(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the peer's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the peer's certificate is not valid yet (check the clocks)".into()
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the peer's certificate is not issued by this job's CA".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the peer's certificate is for another party ({c})")
            }
            CertificateError::Revoked => "the peer's certificate has been revoked".into(),
            other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "the peer presented a CA certificate as its own; each party needs its own certificate issued by the CA (fedra certs issue)".into()
            }
            other if format!("{other:?}").contains("RequiredEkuNotFound") => {
                "the peer's certificate is not for TLS clients and servers (it lacks the serverAuth/clientAuth key usages)".into()
            }
            _ => "the peer's certificate is invalid for this job (check that it was issued by the job's CA for this party)".into(),
        },
        rustls::Error::NoCertificatesPresented => "the peer presented no certificate".into(),
        rustls::Error::AlertReceived(a) => describe_alert(*a),
        rustls::Error::PeerIncompatible(p) => {
            let p = format!("{p:?}");
            if ["SupportedVersions", "Tls12", "TlsVersion"].iter().any(|v| p.contains(v)) {
                "the peer does not speak TLS 1.3, which Fedra requires".into()
            } else {
                "the peer's TLS implementation is incompatible with ours (Fedra requires TLS 1.3 with mutual authentication)".into()
            }
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the peer does not speak TLS (is this a Fedra party's address?)".into()
        }
        other => format!("the TLS handshake failed: {other}"),
    }
}

fn describe_alert(a: AlertDescription) -> String {
    use AlertDescription as A;
    match a {
        A::CertificateExpired => "the peer refused our certificate: it has expired".into(),
        A::UnknownCA | A::DecryptError => {
            "the peer refused our certificate: it is not issued by the peer's CA".into()
        }
        A::CertificateRequired => {
            "the peer requires a client certificate and we presented none".into()
        }
        A::BadCertificate => {
            "the peer refused our certificate (bad certificate, e.g. issued for another party name)"
                .into()
        }
        other => format!("the peer aborted the TLS handshake with alert {other:?}"),
    }
}

/// Recognises a TLS alert in an error chain that only survived as text.
pub(crate) fn describe_text(chain: &str) -> Option<String> {
    use AlertDescription as A;
    let name = chain.split("received fatal alert: ").nth(1)?;
    let name: String = name
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let alert = [
        A::CertificateExpired,
        A::UnknownCA,
        A::DecryptError,
        A::CertificateRequired,
        A::BadCertificate,
    ]
    .into_iter()
    .find(|a| format!("{a:?}") == name);
    Some(match alert {
        Some(a) => describe_alert(a),
        None => format!("the peer aborted the TLS handshake with alert {name}"),
    })
}

/// Whether a TLS failure is about identity (final) rather than the network (retryable).
pub(crate) fn is_refusal(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::AlertReceived(_)
            | rustls::Error::PeerIncompatible(_)
    )
}
