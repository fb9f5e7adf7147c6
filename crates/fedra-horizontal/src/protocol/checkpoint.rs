//! The server's checkpoint: written after every round with
//! [`fedra_fs::write_atomic_with`] (owner-only; a temporary file in the
//! same directory, `fsync`, `rename`, `fsync` of the directory), so a
//! killed server finds either the previous or the new round, never a torn
//! file.
//!
//! Format: `FEDRAHFL` (8 bytes), format version (`u32` LE), JSON length
//! (`u64` LE), the JSON [`Checkpoint`] header (round, strategy state,
//! accountant, configuration, history), then the global parameters as
//! little-endian `f32`. Floats in the JSON round-trip exactly.

use std::path::Path;

use fedra_dp::Accountant;
use fedra_fs::Mode;
use serde::{Deserialize, Serialize};

use crate::error::{HorizontalError, Result};
use crate::protocol::config::ServerConfig;
use crate::protocol::server::RoundRecord;
use crate::strategy::StrategyState;

const MAGIC: &[u8; 8] = b"FEDRAHFL";
const VERSION: u32 = 1;
/// Largest JSON header accepted (the strategy state holds up to two
/// parameter-sized vectors as text).
const MAX_JSON: u64 = 16 << 30;
/// Parameters encoded per write when saving.
const PARAM_CHUNK: usize = 1 << 16;

/// What the server saves after each round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last completed round.
    pub round: u32,
    /// The configuration of the run that wrote it.
    pub config: ServerConfig,
    /// The strategy's state after `round`.
    pub strategy: StrategyState,
    /// Central DP's accountant, if any.
    pub accountant: Option<Accountant>,
    /// What happened in each completed round.
    pub history: Vec<RoundRecord>,
    /// The global parameters after `round` (stored after the JSON, raw).
    #[serde(skip)]
    pub params: Vec<f32>,
}

/// Replaces `path` with `buf` durably ([`fedra_fs::write_atomic`],
/// owner-only): the server's checkpoint and a client's state file.
pub(crate) fn write_atomic(path: &Path, buf: &[u8]) -> Result<()> {
    fedra_fs::write_atomic(path, buf, Mode::Private).map_err(|e| err(path, format!("write: {e}")))
}

pub(crate) fn err(path: &Path, detail: impl Into<String>) -> HorizontalError {
    HorizontalError::Checkpoint {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

impl Checkpoint {
    /// Writes atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| err(path, format!("encode: {e}")))?;
        // Streamed into the temporary file: the parameters are not copied
        // into one more buffer.
        fedra_fs::write_atomic_with(path, Mode::Private, |w| {
            w.write_all(MAGIC)?;
            w.write_all(&VERSION.to_le_bytes())?;
            w.write_all(&(json.len() as u64).to_le_bytes())?;
            w.write_all(&json)?;
            let mut bytes = Vec::with_capacity(PARAM_CHUNK.min(self.params.len()) * 4);
            for chunk in self.params.chunks(PARAM_CHUNK) {
                bytes.clear();
                bytes.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                w.write_all(&bytes)?;
            }
            Ok(())
        })
        .map_err(|e| err(path, format!("write: {e}")))
    }

    /// Reads `path`; `Ok(None)` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let buf = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(path, format!("read: {e}"))),
        };
        if buf.len() < 20 || &buf[..8] != MAGIC {
            return Err(err(path, "not a fedra-horizontal checkpoint"));
        }
        let version = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if version != VERSION {
            return Err(err(
                path,
                format!("format version {version}, this build reads {VERSION}"),
            ));
        }
        let mut l = [0u8; 8];
        l.copy_from_slice(&buf[12..20]);
        let json_len = u64::from_le_bytes(l);
        if json_len > MAX_JSON || json_len > (buf.len() - 20) as u64 {
            return Err(err(path, "truncated header"));
        }
        let end = 20 + json_len as usize;
        let mut ck: Checkpoint =
            serde_json::from_slice(&buf[20..end]).map_err(|e| err(path, format!("header: {e}")))?;
        let raw = &buf[end..];
        if Some(raw.len()) != ck.strategy.num_params.checked_mul(4) {
            return Err(err(
                path,
                format!(
                    "{} parameter bytes for {} parameters",
                    raw.len(),
                    ck.strategy.num_params
                ),
            ));
        }
        ck.params = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if ck.params.iter().any(|x| !x.is_finite()) {
            return Err(err(path, "non-finite parameter"));
        }
        Ok(Some(ck))
    }

    /// Checks that the checkpoint belongs to a run with configuration
    /// `cfg` (everything but `rounds`, `round_timeout_s` and `chunk_bytes`
    /// must be equal).
    pub fn check_compatible(&self, cfg: &ServerConfig, path: &Path) -> Result<()> {
        let norm = |c: &ServerConfig| ServerConfig {
            rounds: 1,
            round_timeout_s: 1.0,
            chunk_bytes: 0,
            ..c.clone()
        };
        if norm(&self.config) != norm(cfg) {
            return Err(err(
                path,
                "written by a run with another configuration (only rounds, round_timeout_s and chunk_bytes may change on resume)",
            ));
        }
        if self.strategy.num_params != cfg.model.count_params() {
            return Err(err(
                path,
                format!(
                    "{} parameters, the model has {}",
                    self.strategy.num_params,
                    cfg.model.count_params()
                ),
            ));
        }
        if self.round > cfg.rounds {
            return Err(err(
                path,
                format!(
                    "already at round {}, beyond rounds = {}",
                    self.round, cfg.rounds
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn missing_is_none_and_garbage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fedra-hfl-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ck");
        assert!(Checkpoint::load(&p).unwrap().is_none());
        std::fs::write(&p, b"FEDRAHFL\x01\0\0\0\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap();
        assert_eq!(
            Checkpoint::load(&p).unwrap_err().code(),
            "horizontal.checkpoint"
        );
        std::fs::write(&p, b"not a checkpoint").unwrap();
        assert_eq!(
            Checkpoint::load(&p).unwrap_err().code(),
            "horizontal.checkpoint"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
