//! The horizontal-FL protocol over a [`fedra_federation::Channel`]: one
//! server ([`run_server`]) and `N` clients ([`run_client`]), each an async
//! function, so the same code runs in memory (tests) and over gRPC + mTLS.
//!
//! # Messages
//!
//! Every message is tagged `(task, round, name)`; round 0 holds the
//! session messages. Payloads are blobs (length-prefixed,
//! chunked at [`ServerConfig::chunk_bytes`], bounded and validated by the
//! receiver: message `n` carries `[total length: u64 LE][first chunk]`, messages `n#1`, `n#2`, … the rest), JSON headers or little-endian `f32` vectors.
//!
//! | round | name | direction | content |
//! |---|---|---|---|
//! | 0 | `start` | S → all | first and last round, model spec, parameter count |
//! | 0 | `hello` | C → S | the client's `num_examples` (its FedAvg weight; public) |
//! | r | `plan` | S → all | `skip`, or `train` with local hyper-parameters, FedProx/SCAFFOLD instructions, DP-SGD, secure-aggregation id/weight/scale |
//! | r | `params`, `control` | S → selected | global parameters; SCAFFOLD's server control |
//! | r | `result`, `delta`, `dc` | C → S | `num_examples`, loss; `local − global`; SCAFFOLD `Δc` |
//! | r | `sa/adv` … `sa/resp` | both | the four secure-aggregation phases (instead of `result`/`delta`) |
//! | r | `end` | S → selected | the round is over (releases clients still waiting in secure aggregation) |
//! | 0 | `final`, `final/params` | S → all | rounds completed; the final model |
//!
//! # Rounds, deadlines and failures
//!
//! Each round the strategy's scheduler picks clients among those that said
//! hello; the server sends the plan and parameters and waits for results
//! until the **round deadline** (`round_timeout_s`; under secure
//! aggregation the same deadline applies to each of its four phases). A
//! client that does not answer in time, whose channel fails, or whose
//! message is malformed (wrong size, NaN/∞, bad JSON, unexpected
//! secure-aggregation id) is a *failure* of that round — never a panic, and
//! its late messages are ignored. With fewer than `min_results` survivors
//! the run stops with [`crate::HorizontalError::TooFewResults`] naming the
//! failed and missing clients (a failed run is reported to peers by the
//! caller, e.g. with [`fedra_federation::Channel::abort`]).
//!
//! **Crashed clients.** Declare the clients *droppable* on every party's
//! channel ([`fedra_federation::Channel::set_droppable`]: on the server all
//! clients, on each client the other clients — `fedra-runtime` does this
//! for the `horizontal` task). Then a client whose process dies, vanishes
//! or aborts is a **dropout**: the server's receives from it fail at once
//! with `fed.peer_dropped` (no need to wait for the deadline once the
//! transport noticed, within its peer timeout), the round goes on with the
//! survivors, including under secure aggregation (Bonawitz recovery: the
//! others reveal the shares the server needs), and the other clients are
//! not affected. The server records it in [`RoundRecord::dropped_clients`]
//! and [`ServerOutcome::dropped`], and **never selects it again** in this
//! run ([`RoundRecord::excluded`]): the scheduler samples from the clients
//! that said hello minus those that dropped out (the sample is still a
//! function of the seed, the round and that set). A client that is only
//! slow (deadline missed) or sent a malformed message stays eligible. When
//! fewer than `max(min_available, min_results)` clients are left, the run
//! stops with [`crate::HorizontalError::TooManyDropouts`] naming every
//! dropped and absent client with its reason. Without `set_droppable` any
//! peer's failure is job-wide, as for every other protocol. The server is
//! never droppable: if it dies, every client stops.
//!
//! # Privacy options
//!
//! * **Secure aggregation** ([`SecAggConfig`], `fedra-secagg`): each client
//!   clamps its update to `±clip`, quantises `weight · update` into
//!   `Z_{2^bits}` with the scale chosen by the server for the round's total
//!   weight (no wrap possible), and runs the Bonawitz protocol; the server
//!   learns only the sum over the survivors and divides by their total
//!   weight. Error per coordinate of the averaged update: at most
//!   `1/(2·scale)` (deterministic rounding) — e.g. `2^-23 ≈ 1.2e-7` for
//!   clip 1, 32 bits and a total weight of 455. The mean is handed to the
//!   strategy as one identical update per survivor, so FedAvg/FedProx and
//!   the server optimisers (FedAdam, …) work unchanged; robust rules and
//!   SCAFFOLD are refused (they need individual updates). Client weights
//!   (`num_examples`) are public. With `neighbors = k` (SecAgg+, Bell et
//!   al. 2020) each client shares secrets and masks with only `k`
//!   neighbours on a random graph drawn per round from the job's public
//!   seed, the threshold applying per neighbourhood.
//! * **Central DP** ([`DpMode::Central`]): updates are clipped to L2 norm
//!   `clip` (by the server; by the clients under secure aggregation),
//!   summed, `N(0, σ²·clip²)` is added with the server's CSPRNG and the sum
//!   is divided by the number of *selected* clients; the
//!   [`fedra_dp::Accountant`] records `(σ, q = selected/available, 1 step)`
//!   per round and is checkpointed.
//! * **Local DP-SGD** ([`DpMode::Local`]): clients train with per-example
//!   (ghost) or micro-batch clipping and noise
//!   ([`fedra_nn::Mlp::dp_gradient_per_example`],
//!   [`fedra_nn::Mlp::dp_gradient`]) and account for
//!   their own ε ([`ClientOutcome::epsilon`]).
//!
//! # Randomness: public and secret
//!
//! Every random choice is one of two kinds, and they never share a
//! generator:
//!
//! * **Public** (derived from the job's `horizontal.seed`, which every party
//!   can read): client sampling, from [`crate::round_rng`]`(seed, round)`
//!   on the server; each client's mini-batch order, from
//!   [`crate::client_round_rng`]`(seed, client id, round)` (the server ships
//!   the seed in `start`); the initial model (the caller builds it, e.g.
//!   from `ChaCha20Rng::seed_from_u64(seed)` as the runtime does). Two runs
//!   of the same job therefore train on the same batches and, without DP or
//!   secure aggregation, reach **bit-identical** models.
//! * **Secret** (from the CSPRNG passed to [`run_server`] / [`run_client`],
//!   which production callers seed from the OS): a 32-byte key drawn once
//!   at start-up, expanded with ChaCha20 on stream `round` — the server's
//!   central-DP noise; each client's secure-aggregation keys and masks,
//!   DP-SGD noise and, **under local DP-SGD, the mini-batch order too**
//!   (the privacy analysis assumes the adversary does not know which rows
//!   were sampled into a batch, so it must not follow from a public seed).
//!
//! # Checkpoints and determinism
//!
//! With a checkpoint path the server writes [`Checkpoint`] after every
//! round (atomic rename). Restarted with the same path, it resumes after
//! the last completed round. Since every public choice depends only on
//! `(seed, client, round)` and the optimiser is fresh every round, a resumed
//! run reaches the model of an uninterrupted one bit for bit when DP is
//! off — also under secure aggregation, whose masks cancel exactly and whose
//! quantisation rounds deterministically (tested). With DP the noise (and
//! DP-SGD batch order) comes from a new start-up key, so runs differ by
//! fresh noise, as two uninterrupted runs would. SCAFFOLD's server
//! control variate `c` is part of the checkpoint (the strategy state); each
//! client's `c_i` is saved in the client's own state file by
//! [`run_client_with_state`] (after every SCAFFOLD round, its values after
//! the last two rounds it trained, since the server may resume from either),
//! so a killed and resumed SCAFFOLD run is bit-identical too (tested). With
//! [`run_client`] (no state file) `c_i` restarts from 0 on resume.
//!
//! Local training runs inline on the calling task (it is CPU-bound): use a
//! multi-threaded runtime when several parties share a process.

mod checkpoint;
mod client;
mod config;
mod server;
mod stream;
mod wire;

use fedra_nn::{DpSgd, MlpSpec, NnError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

pub use checkpoint::Checkpoint;
pub use client::{ClientOutcome, run_client, run_client_with_state};
pub use config::{
    ClientConfig, DEFAULT_CHUNK_BYTES, DpConfig, DpMode, LocalTraining, MAX_ROUNDS, SecAggConfig,
    ServerConfig,
};
pub use server::{Evaluate, RoundRecord, ServerOutcome, run_server};
pub use stream::StreamingMean;
pub use wire::{F32Decoder, F32Error};

use crate::error::HorizontalError;

/// Round 0: the session header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartMsg {
    pub first_round: u32,
    pub last_round: u32,
    pub model: MlpSpec,
    pub num_params: usize,
    /// Chunk size for the clients' uploads too.
    pub chunk_bytes: usize,
    /// The job's seed (`horizontal.seed`): clients derive their public
    /// randomness (mini-batch order) from it with
    /// [`crate::client_round_rng`].
    pub seed: u64,
}

/// Round 0: a client's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HelloMsg {
    pub num_examples: u64,
}

/// What a client does in a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum PlanMsg {
    Skip,
    Train(TrainPlan),
}

/// Local-training instructions of a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainPlan {
    pub local: LocalTraining,
    pub instructions: Instr,
    /// Clip the update to this L2 norm before sending (central DP under
    /// secure aggregation).
    pub clip_update_l2: Option<f64>,
    /// Local DP-SGD and the δ to report ε at.
    pub dp_sgd: Option<(DpSgd, f64)>,
    pub secagg: Option<SecAggPlan>,
}

/// FedProx / SCAFFOLD instructions (SCAFFOLD's server control follows as
/// the `control` vector).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Instr {
    Plain,
    FedProx { mu: f64 },
    Scaffold,
}

/// A client's part in a secure-aggregation round.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecAggPlan {
    /// Its secagg id, `1..=n`.
    pub id: u32,
    pub n: u32,
    pub threshold: u32,
    pub ring_bits: u32,
    pub clip: f32,
    pub scale: f64,
    /// Integer weight to multiply the quantised update by.
    pub weight: u64,
    /// SecAgg+: the graph's degree (its seed is the job's, from `start`).
    #[serde(default)]
    pub neighbors: Option<u32>,
}

/// A client's result header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResultMsg {
    pub num_examples: u64,
    pub loss: f32,
    pub has_control_delta: bool,
}

/// Round 0, at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinalMsg {
    pub rounds_completed: u32,
}

/// The per-round generator of a party: ChaCha20 keyed by the party's
/// start-up key, on stream `round`.
pub(crate) fn round_stream(key: &[u8; 32], round: u32) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::from_seed(*key);
    r.set_stream(u64::from(round));
    r
}

pub(crate) fn nn_err(e: NnError) -> HorizontalError {
    HorizontalError::Model {
        code: e.code(),
        detail: e.to_string(),
    }
}

pub(crate) fn dp_err(e: fedra_dp::DpError) -> HorizontalError {
    HorizontalError::Dp {
        code: e.code(),
        detail: e.to_string(),
    }
}

pub(crate) fn secagg_err(round: u32) -> impl Fn(fedra_secagg::Error) -> HorizontalError {
    move |e| HorizontalError::SecAgg {
        round,
        code: e.code(),
        detail: e.to_string(),
    }
}

/// The secure-aggregation parameters of a round, with the SecAgg+ graph
/// (degree, public seed) if configured.
pub(crate) fn secagg_params(
    round: u32,
    n: u32,
    threshold: u32,
    dim: usize,
    ring_bits: u32,
    graph: Option<(u32, u64)>,
) -> fedra_secagg::Result<fedra_secagg::Params> {
    let p = fedra_secagg::Params::new(
        fedra_secagg::RoundId(u64::from(round)),
        n,
        threshold,
        dim,
        ring_of(ring_bits),
    )?;
    match graph {
        Some((k, seed)) => p.with_graph(k, seed),
        None => Ok(p),
    }
}

pub(crate) fn ring_of(bits: u32) -> fedra_secagg::Ring {
    if bits == 64 {
        fedra_secagg::Ring::U64
    } else {
        fedra_secagg::Ring::U32
    }
}
