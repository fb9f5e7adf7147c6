//! The values exchanged between a strategy and its driver: client ids,
//! round plans, client results and failures.

use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{HorizontalError, Result};

/// A client's identity (opaque to this crate; compared and ordered as a
/// string, so sampling does not depend on the order clients connected in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps a name.
    pub fn new(name: impl Into<String>) -> Self {
        ClientId(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        ClientId(s.to_owned())
    }
}

impl From<String> for ClientId {
    fn from(s: String) -> Self {
        ClientId(s)
    }
}

/// What the selected clients are told to do in a round, beyond "start from
/// the current global parameters and train locally". Serialisable so the
/// driver can ship it over its transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientInstructions {
    /// Plain local training (FedAvg, FedAdam/FedYogi/FedAdagrad).
    Plain,
    /// FedProx: add the proximal term's gradient `mu·(w − w_global)` to every
    /// local gradient (see [`crate::client::fedprox_correct_gradient`]).
    FedProx {
        /// Proximal coefficient μ.
        mu: f64,
    },
    /// SCAFFOLD: correct every local gradient with `− c_i + c` and return
    /// the control-variate delta `Δc_i` (see [`crate::client`]).
    Scaffold {
        /// The server control variate `c`.
        server_control: Vec<f32>,
    },
}

/// A strategy's decision for one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundPlan {
    /// The round.
    pub round: u32,
    /// The selected clients, sorted by id.
    pub clients: Vec<ClientId>,
    /// What every selected client must do.
    pub instructions: ClientInstructions,
}

/// One client's contribution to a round.
///
/// `delta` is the **model delta**: `local − global`, i.e. the client's
/// parameters after local training minus the global parameters it started
/// from (for SCAFFOLD this is the paper's `Δy_i`). Aggregation rules work on
/// deltas; the new global model is `global + (server step on the aggregated
/// delta)`. Use [`crate::client::model_delta`] on the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientResult {
    /// Who sent it.
    pub client: ClientId,
    /// Local training examples (the FedAvg weight; must be `> 0`).
    pub num_examples: u64,
    /// `local − global`, same length as the global parameters.
    pub delta: Vec<f32>,
    /// SCAFFOLD only: the control-variate delta `Δc_i = c_i⁺ − c_i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_delta: Option<Vec<f32>>,
}

impl ClientResult {
    /// A result without extra vectors.
    pub fn new(client: impl Into<ClientId>, num_examples: u64, delta: Vec<f32>) -> Self {
        ClientResult {
            client: client.into(),
            num_examples,
            delta,
            control_delta: None,
        }
    }

    /// Attaches the SCAFFOLD control-variate delta.
    pub fn with_control_delta(mut self, control_delta: Vec<f32>) -> Self {
        self.control_delta = Some(control_delta);
        self
    }

    /// Checks `num_examples > 0`, the lengths (against `num_params`) and
    /// that every value is finite.
    pub fn validate(&self, num_params: usize) -> Result<()> {
        if self.num_examples == 0 {
            return Err(HorizontalError::ZeroExamples {
                client: self.client.clone(),
            });
        }
        check_vector("update", Some(&self.client), &self.delta, num_params)?;
        if let Some(dc) = &self.control_delta {
            check_vector("control_delta", Some(&self.client), dc, num_params)?;
        }
        Ok(())
    }
}

/// A selected client that could not deliver a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFailure {
    /// Who failed.
    pub client: ClientId,
    /// Why (free text from the driver: timeout, transport error, ...).
    pub reason: String,
}

impl ClientFailure {
    /// A failure.
    pub fn new(client: impl Into<ClientId>, reason: impl Into<String>) -> Self {
        ClientFailure {
            client: client.into(),
            reason: reason.into(),
        }
    }
}

/// Splits results into those that pass [`ClientResult::validate`] and
/// failures for the others (reason = the validation error), so that one
/// malformed or NaN-poisoned update costs one client rather than the round.
/// Strategies themselves reject invalid results with an error.
pub fn partition_valid(
    results: Vec<ClientResult>,
    num_params: usize,
) -> (Vec<ClientResult>, Vec<ClientFailure>) {
    let mut ok = Vec::with_capacity(results.len());
    let mut bad = Vec::new();
    for r in results {
        match r.validate(num_params) {
            Ok(()) => ok.push(r),
            Err(e) => bad.push(ClientFailure {
                client: r.client,
                reason: e.to_string(),
            }),
        }
    }
    (ok, bad)
}

/// Length and finiteness check of one vector.
pub(crate) fn check_vector(
    what: &'static str,
    client: Option<&ClientId>,
    v: &[f32],
    expected: usize,
) -> Result<()> {
    if v.len() != expected {
        return Err(HorizontalError::DimensionMismatch {
            what,
            client: client.cloned(),
            expected,
            got: v.len(),
        });
    }
    if let Some(index) = first_non_finite(v) {
        return Err(HorizontalError::NonFinite {
            what,
            client: client.cloned(),
            index,
        });
    }
    Ok(())
}

/// Index of the first NaN/infinity, scanning in parallel chunks.
pub(crate) fn first_non_finite(v: &[f32]) -> Option<usize> {
    const CHUNK: usize = 1 << 16;
    v.par_chunks(CHUNK)
        .enumerate()
        .find_first(|(_, c)| c.iter().any(|x| !x.is_finite()))
        .and_then(|(i, c)| c.iter().position(|x| !x.is_finite()).map(|j| i * CHUNK + j))
}
