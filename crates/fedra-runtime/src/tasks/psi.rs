//! `psi`: private set intersection (`fedra-psi`) and alignment as a job task.
//!
//! Each party that learns the intersection writes its dataset restricted to and
//! ordered by the common ids (the same order on both sides) and continues with it.
//! The RSA key holder's signature cache file is read and written here (fedra-psi
//! only encodes it), with `fedra_fs::write_atomic`.

use std::path::{Path, PathBuf};

use fedra_psi::{
    EcdhConfig, OutputMode, PsiError, Role, RsaConfig, RsaOutput, RsaPsiKey, SignCache,
};

use fedra_federation::PartyId;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::params::{FieldError, ParseCtx, range};
use super::{Metrics, Outcome, OutputFormat, Task, write_output};
use crate::error::TaskError;
use crate::runner::TaskCtx;

/// What to do with ids that occur on several rows of a party's dataset when aligning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duplicates {
    /// Refuse to align (the dataset must have unique ids).
    #[default]
    Error,
    /// Keep the first row of each id.
    KeepFirst,
}

/// Who learns the intersection in ECDH-PSI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EcdhOutput {
    /// Both parties learn it (and align their data).
    #[default]
    Both,
    /// Only the leader learns it; the follower learns its size.
    LeaderOnly,
}

/// Who learns the intersection in RSA-PSI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RsaOutputMode {
    /// Both parties learn it.
    #[default]
    Both,
    /// Only the client learns it; the key holder learns its size.
    ClientOnly,
}

/// Parameters of the `psi` task: private set intersection of two parties' ids, then
/// each party that learns the intersection continues with its dataset restricted
/// to and ordered by the common ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case", deny_unknown_fields)]
pub enum Psi {
    /// ECDH-PSI over ristretto255 (no long-term keys; the default choice).
    Ecdh {
        /// Draws the bucket salt; always learns the intersection.
        leader: PartyId,
        /// The other party.
        follower: PartyId,
        /// Who learns the intersection.
        #[serde(default)]
        output: EcdhOutput,
        /// Hash buckets (1–65,536): memory is bounded by the largest bucket.
        #[serde(default = "one_u32")]
        buckets: u32,
        /// Repeated ids in a dataset.
        #[serde(default)]
        on_duplicate: Duplicates,
        /// Format of the aligned dataset.
        #[serde(default)]
        write: OutputFormat,
    },
    /// RSA blind-signature PSI (Fedlearner style), with an optional offline cache.
    Rsa {
        /// Holds the RSA key and signs.
        key_holder: PartyId,
        /// Blinds its ids; always learns the intersection.
        client: PartyId,
        /// Who learns the intersection.
        #[serde(default)]
        output: RsaOutputMode,
        /// Size of a fresh per-job key when `key` is not given (2048–4096).
        #[serde(default = "default_rsa_bits")]
        key_bits: u32,
        /// The key holder's persistent RSA key (PEM), relative to the job file.
        #[serde(default)]
        key: Option<PathBuf>,
        /// The key holder's signature cache (made on first use), relative to the job file.
        #[serde(default)]
        cache: Option<PathBuf>,
        /// Repeated ids in a dataset.
        #[serde(default)]
        on_duplicate: Duplicates,
        /// Format of the aligned dataset.
        #[serde(default)]
        write: OutputFormat,
    },
}

fn one_u32() -> u32 {
    1
}

fn default_rsa_bits() -> u32 {
    2048
}

impl Psi {
    /// The two parties taking part.
    pub fn parties(&self) -> [&PartyId; 2] {
        match self {
            Psi::Ecdh {
                leader, follower, ..
            } => [leader, follower],
            Psi::Rsa {
                key_holder, client, ..
            } => [key_holder, client],
        }
    }
}

/// A cache content error (format, key), naming the cache file: fedra-psi sees
/// only its bytes.
fn cache_err(path: &Path, e: PsiError) -> TaskError {
    TaskError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

/// Reads the key holder's RSA signature cache, or starts an empty one if the file
/// does not exist yet (made on first use).
fn load_cache(path: &Path, key: &RsaPsiKey) -> Result<SignCache, TaskError> {
    match std::fs::read(path) {
        Ok(bytes) => SignCache::from_bytes(&bytes, key).map_err(|e| cache_err(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SignCache::new(key)),
        Err(source) => Err(psi_err(PsiError::Io {
            path: path.to_path_buf(),
            source,
        })),
    }
}

/// Writes the signature cache back, durably and owner-only (it lists the ids).
fn save_cache(path: &Path, cache: &SignCache) -> Result<(), TaskError> {
    fedra_fs::write_atomic(path, &cache.to_bytes(), fedra_fs::Mode::Private).map_err(|source| {
        psi_err(PsiError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

impl Task for Psi {
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError> {
        let mut p: Psi = cx.decode(table)?;
        let [a, b] = p.parties();
        let names = match p {
            Psi::Ecdh { .. } => ["leader", "follower"],
            Psi::Rsa { .. } => ["key_holder", "client"],
        };
        for (field, party) in names.into_iter().zip([a, b]) {
            cx.check_party(
                cx.at(field),
                party,
                Some("psi needs a dataset on both of its parties"),
            )?;
        }
        if a == b {
            return Err((
                cx.at(names[1]),
                format!("must differ from the {}", names[0]),
            ));
        }
        match &mut p {
            Psi::Ecdh { buckets, .. } => range(&cx.at("buckets"), *buckets, 1, 65_536)?,
            Psi::Rsa {
                key_bits,
                key,
                cache,
                ..
            } => {
                range(&cx.at("key_bits"), *key_bits, 2048, 4096)?;
                if cache.is_some() && key.is_none() {
                    return Err((
                        cx.at("cache"),
                        "a signature cache needs a persistent `key`: with a fresh key per job nothing could be reused".into(),
                    ));
                }
                for (field, p) in [("key", key), ("cache", cache)] {
                    if let Some(p) = p {
                        cx.confined(cx.at(field), p)?;
                    }
                }
            }
        }
        Ok(p)
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await
    }
}

fn psi_err(e: PsiError) -> TaskError {
    TaskError::from(e)
}

async fn run(ctx: &TaskCtx<'_>, p: &Psi) -> Result<Outcome, TaskError> {
    let me = &ctx.party.me;
    let [a, b] = p.parties();
    if me != a && me != b {
        return Ok(Metrics::new().into());
    }
    let peer = if me == a { b } else { a };
    let spec = super::dataset(ctx)?;
    let (on_duplicate, write) = match p {
        Psi::Ecdh {
            on_duplicate,
            write,
            ..
        }
        | Psi::Rsa {
            on_duplicate,
            write,
            ..
        } => (*on_duplicate, *write),
    };
    let mut load_spec = spec.clone();
    if on_duplicate == Duplicates::KeepFirst {
        load_spec.allow_duplicate_ids = true;
    }
    // With `on_duplicate = "error"` the loader itself reports repeated ids with both lines.
    let data = super::load(load_spec).await?;
    let ids = data.ids().to_vec();
    // The CSPRNG is created here, at the edge of the library code, and passed in.
    let mut rng = ChaCha20Rng::from_os_rng();
    let task = ctx.spec.name.clone();
    let (inter, stats) = match p {
        Psi::Ecdh {
            leader,
            output,
            buckets,
            ..
        } => {
            let mode = match output {
                EcdhOutput::Both => OutputMode::Both,
                EcdhOutput::LeaderOnly => OutputMode::LeaderOnly,
            };
            let cfg = EcdhConfig::new(task).with_mode(mode).with_buckets(*buckets);
            let role = if me == leader {
                Role::Leader
            } else {
                Role::Follower
            };
            fedra_psi::ecdh_psi(ctx.ch, peer, role, &cfg, &ids, &mut rng)
                .await
                .map_err(psi_err)?
        }
        Psi::Rsa {
            key_holder,
            output,
            key_bits,
            key,
            cache,
            ..
        } => {
            let mode = match output {
                RsaOutputMode::Both => RsaOutput::Both,
                RsaOutputMode::ClientOnly => RsaOutput::ClientOnly,
            };
            let cfg = RsaConfig::new(task).with_mode(mode);
            if me == key_holder {
                let key = match key {
                    Some(path) => {
                        let path = ctx.party.job.local_path(path);
                        let pem = std::fs::read(&path).map_err(|source| TaskError::Output {
                            path: path.clone(),
                            source,
                        })?;
                        RsaPsiKey::from_pem(&pem).map_err(psi_err)?
                    }
                    None => RsaPsiKey::generate(*key_bits).map_err(psi_err)?,
                };
                let cache = cache.as_deref().map(|c| ctx.party.job.local_path(c));
                let mut sign_cache = cache
                    .as_deref()
                    .map(|path| load_cache(path, &key))
                    .transpose()?;
                let r = fedra_psi::rsa_psi_key_holder(
                    ctx.ch,
                    peer,
                    &cfg,
                    &key,
                    &ids,
                    sign_cache.as_mut(),
                )
                .await
                .map_err(psi_err)?;
                if let (Some(path), Some(c)) = (cache.as_deref(), &sign_cache) {
                    save_cache(path, c)?;
                }
                r
            } else {
                fedra_psi::rsa_psi_client(ctx.ch, peer, &cfg, &ids, &mut rng)
                    .await
                    .map_err(psi_err)?
            }
        }
    };

    let mut m = Metrics::new();
    m.insert("intersection_size".into(), inter.size.into());
    m.insert(format!("ids_{me}"), stats.ids_in.into());
    m.insert(format!("psi_bytes_sent_{me}"), stats.bytes_sent.into());
    if stats.curve_ops > 0 {
        m.insert(format!("curve_ops_{me}"), stats.curve_ops.into());
    }
    if stats.rsa_private_ops > 0 || stats.own_ids_cached > 0 {
        m.insert("rsa_private_ops".into(), stats.rsa_private_ops.into());
        m.insert("own_ids_signed".into(), stats.own_ids_signed.into());
        m.insert("own_ids_cached".into(), stats.own_ids_cached.into());
    }
    if !inter.ids_revealed {
        m.insert(format!("aligned_{me}"), false.into());
        return Ok(m.into());
    }
    let duplicates = match on_duplicate {
        Duplicates::KeepFirst => fedra_psi::Duplicates::KeepFirst,
        Duplicates::Error => fedra_psi::Duplicates::Error,
    };
    let aligned = fedra_psi::align_with(&data, &inter, duplicates).map_err(psi_err)?;
    let out = write_output(ctx, "aligned", &aligned, write)?;
    m.insert(format!("aligned_{me}"), true.into());
    Ok(Outcome {
        metrics: m,
        data: Some(out),
    })
}
