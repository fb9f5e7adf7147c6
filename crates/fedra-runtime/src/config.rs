//! A party's own configuration file: who it is, where it listens, its certificates,
//! its peers' endpoints and (optionally) where its data lives on its machine.
//!
//! ```toml
//! party = "guest"
//! listen = "0.0.0.0:7001"
//!
//! [tls]
//! ca = "certs/ca.pem"
//! cert = "certs/guest.pem"
//! key = "certs/guest.key"
//!
//! [peers]
//! host = "host.bank.example:7001"
//!
//! [data]              # optional: replaces the job file's dataset for this party
//! path = "/srv/data/guest.csv"
//! label = "y"
//! ```
//!
//! Relative paths resolve against the config file's folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fedra_data::DatasetSpec;
use fedra_federation::PartyId;
use serde::{Deserialize, Serialize};

use crate::error::JobError;
use crate::job::Job;

/// Certificate files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// CA certificate(s) trusted for peers (PEM).
    pub ca: PathBuf,
    /// This party's certificate chain (PEM).
    pub cert: PathBuf,
    /// This party's private key (PEM).
    pub key: PathBuf,
}

/// A party's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyConfig {
    /// This party's id in the job.
    pub party: PartyId,
    /// Listening address.
    pub listen: SocketAddr,
    /// Certificates.
    pub tls: TlsPaths,
    /// Every peer's `host:port`.
    pub peers: BTreeMap<PartyId, String>,
    /// Local dataset overriding the job file's.
    #[serde(default)]
    pub data: Option<DatasetSpec>,
}

impl PartyConfig {
    /// Reads a config file and resolves its relative paths.
    pub fn load(path: &Path) -> Result<Self, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: PartyConfig = toml::from_str(&text).map_err(|e| JobError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.tls.ca, &mut c.tls.cert, &mut c.tls.key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(d) = &mut c.data {
            if d.path.is_relative() {
                d.path = base.join(&d.path);
            }
            d.validate().map_err(|e| JobError::Invalid {
                path: path.to_owned(),
                field: "data".into(),
                message: e.to_string(),
            })?;
        }
        Ok(c)
    }

    /// Checks this config against a job: the party exists and every other party has an endpoint.
    pub fn check(&self, job: &Job, path: &Path) -> Result<(), JobError> {
        let invalid = |field: &str, message: String| JobError::Invalid {
            path: path.to_owned(),
            field: field.into(),
            message,
        };
        if !job.parties.contains_key(&self.party) {
            let known: Vec<String> = job.parties.keys().map(|p| p.to_string()).collect();
            return Err(invalid(
                "party",
                format!(
                    "'{}' is not a party of job '{}' (parties: {})",
                    self.party,
                    job.id,
                    known.join(", ")
                ),
            ));
        }
        for p in job.parties.keys().filter(|p| **p != self.party) {
            if !self.peers.contains_key(p) {
                return Err(invalid(
                    "peers",
                    format!("no endpoint for party '{p}' of job '{}'", job.id),
                ));
            }
        }
        if let Some(extra) = self
            .peers
            .keys()
            .find(|p| !job.parties.contains_key(*p) || **p == self.party)
        {
            return Err(invalid(
                &format!("peers.{extra}"),
                format!("'{extra}' is not a peer in job '{}'", job.id),
            ));
        }
        Ok(())
    }

    /// The dataset this party uses: its own override, else the job file's.
    pub fn dataset(&self, job: &Job) -> Option<DatasetSpec> {
        self.data
            .clone()
            .or_else(|| job.parties.get(&self.party).and_then(|p| p.data.clone()))
    }
}
