//! [`run_client`]: the client side of the protocol (see the
//! [module docs](super)).

use std::path::Path;
use std::time::Duration;

use fedra_data::Dataset;
use fedra_dp::{Accountant, Event, clip_l2};
use fedra_federation::{Channel, PartyId, Tag};
use fedra_nn::{LossKind, Mlp, Optimizer};
use fedra_secagg::{
    Client as SaClient, ClientId as SaId, ForwardedShares, KeyList, QuantConfig, UnmaskRequest,
    WireMessage,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use super::checkpoint::{err as ck_err, write_atomic};
use super::config::ClientConfig;
use super::wire::{
    MAX_HEADER_BYTES, RecvError, RecvResult, f32_bytes, recv_blob, recv_f32s, recv_json, send_blob,
    to_json,
};
use super::{
    FinalMsg, HelloMsg, Instr, PlanMsg, ResultMsg, SecAggPlan, StartMsg, TrainPlan, dp_err, nn_err,
    ring_of, round_stream, secagg_err,
};
use crate::client::{
    fedprox_correct_gradient, model_delta, scaffold_correct_gradient, scaffold_update_control,
};
use crate::client_round_rng;
use crate::error::{HorizontalError, Result};

/// The result of [`run_client`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOutcome {
    /// Rounds this client trained in.
    pub rounds_trained: u32,
    /// Rounds it was not selected for.
    pub rounds_skipped: u32,
    /// Mean training loss of the last round trained (before the round's
    /// updates; not private under DP).
    pub last_loss: Option<f32>,
    /// Local DP-SGD: ε spent by this client (at the configured δ).
    pub epsilon: Option<f64>,
    /// The rounds the server completed; the model holds the final global
    /// parameters.
    pub rounds_completed: u32,
}

fn tag(task: &str, round: u32, name: &str) -> Tag {
    Tag::new(task, u64::from(round), name)
}

/// The local data as `f32`, validated against the model.
struct Local {
    x: Vec<f32>,
    y: Vec<f32>,
    rows: usize,
    inputs: usize,
}

fn prepare(data: &Dataset, model: &Mlp) -> Result<Local> {
    let spec = model.spec();
    let bad = |detail: String| HorizontalError::Data { detail };
    if data.n_features() != spec.inputs {
        return Err(bad(format!(
            "{} features, the model takes {}",
            data.n_features(),
            spec.inputs
        )));
    }
    if model.target_width() != 1 {
        return Err(bad(
            "multi-output regression is not supported by the protocol".into(),
        ));
    }
    let labels = data
        .labels()
        .ok_or_else(|| bad("the dataset has no label column".into()))?;
    if data.n_rows() == 0 {
        return Err(bad("the dataset is empty".into()));
    }
    let x: Vec<f32> = data.features().iter().map(|&v| v as f32).collect();
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "feature value {i} (row {}) is missing or not finite in f32",
            i / spec.inputs
        )));
    }
    let y: Vec<f32> = labels.iter().map(|&v| v as f32).collect();
    let ok = |v: f32| match spec.loss {
        LossKind::BinaryCrossEntropy => v == 0.0 || v == 1.0,
        LossKind::SoftmaxCrossEntropy => {
            v.fract() == 0.0 && v >= 0.0 && (v as usize) < spec.outputs
        }
        LossKind::Mse => v.is_finite(),
    };
    if let Some(i) = y.iter().position(|&v| !ok(v)) {
        return Err(bad(format!(
            "label of row {i} = {} does not fit the loss",
            y[i]
        )));
    }
    Ok(Local {
        rows: data.n_rows(),
        inputs: spec.inputs,
        x,
        y,
    })
}

/// Waits for a server message, failing after the client's timeout.
async fn from_server<T>(
    limit: Duration,
    server: &PartyId,
    what: &str,
    fut: impl std::future::Future<Output = RecvResult<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(RecvError::Timeout))
        .map_err(|e| e.into_error(server, what))
}

/// Runs a client of a horizontal federation until the server sends the
/// final model (which is then in `model`). See the [module docs](super).
///
/// * `server`: the server's party id; `task`: the task name (as the
///   server's).
/// * `data`: the local rows, with labels; features must match the model.
/// * `model`: its spec must equal the server's; parameters are replaced by
///   the global ones every round and by the final model at the end.
/// * `rng`: a CSPRNG (seed it from the OS in production); a 32-byte key is
///   drawn once, from which each round's secret randomness is derived:
///   secure-aggregation keys and masks, DP-SGD noise and (under DP-SGD)
///   batch order. Without DP-SGD the batch order is public, from
///   [`crate::client_round_rng`]`(seed, ch.me(), round)` with the seed the
///   server sends in `start`, so runs of the same job are reproducible.
pub async fn run_client(
    ch: &dyn Channel,
    task: &str,
    server: &PartyId,
    cfg: &ClientConfig,
    data: &Dataset,
    model: &mut Mlp,
    rng: &mut (impl CryptoRng + Send),
) -> Result<ClientOutcome> {
    run_client_with_state(ch, task, server, cfg, data, model, None, rng).await
}

/// SCAFFOLD's client control variate `c_i` after a round, as saved in the
/// client's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateEntry {
    round: u32,
    control: Vec<f32>,
}

/// The client's state file (JSON): its control variate after the last two
/// rounds it trained in (the server may resume from either).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientState {
    task: String,
    num_params: usize,
    entries: Vec<StateEntry>,
}

/// The control variate to resume with: the newest saved after a round
/// before `first_round` (the server's resume point), if any.
fn load_control(path: &Path, task: &str, n: usize, first_round: u32) -> Result<Option<Vec<f32>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ck_err(path, format!("read: {e}"))),
    };
    let st: ClientState =
        serde_json::from_slice(&bytes).map_err(|e| ck_err(path, format!("client state: {e}")))?;
    if st.task != task || st.num_params != n {
        return Err(ck_err(
            path,
            format!(
                "client state of task '{}' with {} parameters, this is task '{task}' with {n}",
                st.task, st.num_params
            ),
        ));
    }
    let Some(e) = st
        .entries
        .into_iter()
        .filter(|e| e.round < first_round)
        .max_by_key(|e| e.round)
    else {
        return Ok(None);
    };
    if e.control.len() != n || e.control.iter().any(|x| !x.is_finite()) {
        return Err(ck_err(
            path,
            "control variate of the wrong length or not finite",
        ));
    }
    Ok(Some(e.control))
}

/// Saves `control` after `round`, keeping the newest earlier entry.
fn save_control(path: &Path, task: &str, round: u32, control: &[f32]) -> Result<()> {
    let mut entries: Vec<StateEntry> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ClientState>(&b).ok())
        .filter(|s| s.task == task && s.num_params == control.len())
        .map(|s| s.entries)
        .unwrap_or_default();
    entries.retain(|e| e.round < round);
    entries.sort_by_key(|e| e.round);
    let keep = entries.pop();
    let mut entries: Vec<StateEntry> = keep.into_iter().collect();
    entries.push(StateEntry {
        round,
        control: control.to_vec(),
    });
    let st = ClientState {
        task: task.to_owned(),
        num_params: control.len(),
        entries,
    };
    let json = serde_json::to_vec(&st).map_err(|e| ck_err(path, format!("encode: {e}")))?;
    write_atomic(path, &json)
}

/// As [`run_client`], keeping SCAFFOLD's control variate `c_i` in `state`
/// (written atomically after every SCAFFOLD round; the client's own file,
/// e.g. in its output folder). When the server resumes from a checkpoint
/// after round `k`, the client restarts with its `c_i` as of round `k`, so
/// a killed and resumed SCAFFOLD run reaches the model of an uninterrupted
/// one bit for bit. Other strategies keep no client state.
#[allow(clippy::too_many_arguments)]
pub async fn run_client_with_state(
    ch: &dyn Channel,
    task: &str,
    server: &PartyId,
    cfg: &ClientConfig,
    data: &Dataset,
    model: &mut Mlp,
    state: Option<&Path>,
    rng: &mut (impl CryptoRng + Send),
) -> Result<ClientOutcome> {
    cfg.validate()?;
    let local = prepare(data, model)?;
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let limit = cfg.server_timeout();

    let start: StartMsg = from_server(
        limit,
        server,
        "start",
        recv_json(ch, server, task, 0, "start"),
    )
    .await?;
    let n = model.num_params();
    if start.model != *model.spec() || start.num_params != n || n > cfg.max_params {
        return Err(HorizontalError::Malformed {
            party: server.to_string(),
            message: "start".into(),
            detail: format!(
                "the server's model ({:?}, {} parameters) differs from the local one ({:?}, {n}; limit {})",
                start.model,
                start.num_params,
                model.spec(),
                cfg.max_params
            ),
        });
    }
    let chunk = start.chunk_bytes.clamp(4096, 64 << 20);
    let hello = to_json(&HelloMsg {
        num_examples: local.rows as u64,
    })?;
    send_blob(ch, server, task, 0, "hello", &hello, chunk)
        .await
        .map_err(|e| transport(server, "sending hello", &e))?;

    let mut out = ClientOutcome {
        rounds_trained: 0,
        rounds_skipped: 0,
        last_loss: None,
        epsilon: None,
        rounds_completed: 0,
    };
    let mut control: Option<Vec<f32>> = match state {
        Some(path) => load_control(path, task, n, start.first_round)?,
        None => None,
    };
    let mut accountant: Option<(Accountant, f64)> = None;
    for round in start.first_round..=start.last_round {
        let plan: PlanMsg = from_server(
            limit,
            server,
            "plan",
            recv_json(ch, server, task, round, "plan"),
        )
        .await?;
        let plan = match plan {
            PlanMsg::Skip => {
                out.rounds_skipped += 1;
                continue;
            }
            PlanMsg::Train(p) => p,
        };
        plan.local.validate()?;
        let global = from_server(
            limit,
            server,
            "params",
            recv_f32s(ch, server, task, round, "params", n),
        )
        .await?;
        let server_control = match plan.instructions {
            Instr::Scaffold => Some(
                from_server(
                    limit,
                    server,
                    "control",
                    recv_f32s(ch, server, task, round, "control", n),
                )
                .await?,
            ),
            _ => None,
        };
        // Secret: DP-SGD noise, secure-aggregation keys and masks (and the
        // batch order under DP-SGD). Public: the batch order otherwise.
        let mut rrng = round_stream(&key, round);
        let mut public = client_round_rng(start.seed, ch.me().as_str(), round);
        model.set_params_flat(&global).map_err(nn_err)?;
        if server_control.is_some() && control.is_none() {
            control = Some(vec![0.0; n]);
        }
        let (loss, steps) = train_round(
            model,
            &local,
            &plan,
            &global,
            control.as_deref(),
            server_control.as_deref(),
            &mut public,
            &mut rrng,
        )?;
        if let Some((dp, delta)) = plan.dp_sgd {
            let acc = accountant.get_or_insert_with(|| (Accountant::new(), delta));
            acc.1 = delta;
            let q = (plan.local.batch_size as f64 / local.rows as f64).min(1.0);
            acc.0
                .record(Event {
                    noise_multiplier: dp.noise_multiplier,
                    sampling_rate: q,
                    steps: steps.max(1),
                })
                .map_err(dp_err)?;
        }
        let mut delta = model_delta(model.params(), &global)?;
        let dc = match (&server_control, control.as_mut()) {
            (Some(c), Some(ci)) => Some(scaffold_update_control(
                ci,
                c,
                &global,
                model.params(),
                steps.max(1),
                plan.local.optimizer.lr(),
            )?),
            _ => None,
        };
        if let (Some(path), Some(_), Some(ci)) = (state, &dc, &control) {
            save_control(path, task, round, ci)?;
        }
        if let Some(c) = plan.clip_update_l2 {
            clip_l2(&mut delta, c).map_err(dp_err)?;
        }
        match &plan.secagg {
            Some(sa) => {
                secagg_round(
                    ch, task, server, round, n, start.seed, sa, &delta, limit, chunk, &mut rrng,
                )
                .await?
            }
            None => {
                let head = to_json(&ResultMsg {
                    num_examples: local.rows as u64,
                    loss,
                    has_control_delta: dc.is_some(),
                })?;
                let send = async {
                    send_blob(ch, server, task, round, "result", &head, chunk).await?;
                    send_blob(ch, server, task, round, "delta", &f32_bytes(&delta), chunk).await?;
                    if let Some(dc) = &dc {
                        send_blob(ch, server, task, round, "dc", &f32_bytes(dc), chunk).await?;
                    }
                    Ok::<(), fedra_federation::FedError>(())
                };
                send.await
                    .map_err(|e| transport(server, "sending the update", &e))?;
            }
        }
        out.rounds_trained += 1;
        out.last_loss = Some(loss);
    }

    let fin: FinalMsg = from_server(
        limit,
        server,
        "final",
        recv_json(ch, server, task, 0, "final"),
    )
    .await?;
    let params = from_server(
        limit,
        server,
        "final/params",
        recv_f32s(ch, server, task, 0, "final/params", n),
    )
    .await?;
    model.set_params_flat(&params).map_err(nn_err)?;
    out.rounds_completed = fin.rounds_completed;
    if let Some((acc, delta)) = &accountant {
        out.epsilon = Some(acc.epsilon(*delta).map_err(dp_err)?.epsilon);
    }
    Ok(out)
}

fn transport(party: &PartyId, doing: &str, e: &fedra_federation::FedError) -> HorizontalError {
    HorizontalError::Transport {
        party: party.to_string(),
        doing: doing.to_owned(),
        code: e.code(),
        detail: e.to_string(),
    }
}

/// Local epochs of mini-batch training from the global parameters (already
/// in `model`); returns the mean loss and the number of steps.
///
/// The batch order is drawn from `public` (derived from the job's seed),
/// except under DP-SGD, where it is drawn from `secret` like the noise.
#[allow(clippy::too_many_arguments)]
fn train_round(
    model: &mut Mlp,
    local: &Local,
    plan: &TrainPlan,
    global: &[f32],
    client_control: Option<&[f32]>,
    server_control: Option<&[f32]>,
    public: &mut ChaCha20Rng,
    secret: &mut ChaCha20Rng,
) -> Result<(f32, u64)> {
    let mut opt = Optimizer::new(plan.local.optimizer).map_err(nn_err)?;
    let (rows, d) = (local.rows, local.inputs);
    let bs = plan.local.batch_size.min(rows);
    let mut order: Vec<usize> = (0..rows).collect();
    let mut xb = Vec::with_capacity(bs * d);
    let mut yb = Vec::with_capacity(bs);
    let (mut loss_sum, mut seen, mut steps) = (0f64, 0usize, 0u64);
    for _ in 0..plan.local.local_epochs {
        let shuffle: &mut ChaCha20Rng = if plan.dp_sgd.is_some() {
            &mut *secret
        } else {
            &mut *public
        };
        for i in (1..rows).rev() {
            let j = (shuffle.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for batch in order.chunks(bs) {
            xb.clear();
            yb.clear();
            for &r in batch {
                xb.extend_from_slice(&local.x[r * d..(r + 1) * d]);
                yb.push(local.y[r]);
            }
            let (loss, mut grad) = match &plan.dp_sgd {
                Some((dp, _)) if dp.microbatch_size == 1 => {
                    model.dp_gradient_per_example(&xb, &yb, batch.len(), dp, secret)
                }
                Some((dp, _)) => model.dp_gradient(&xb, &yb, batch.len(), dp, secret),
                None => model.gradient(&xb, &yb, batch.len()),
            }
            .map_err(nn_err)?;
            match plan.instructions {
                Instr::FedProx { mu } => {
                    fedprox_correct_gradient(&mut grad, model.params(), global, mu)?
                }
                Instr::Scaffold => {
                    if let (Some(ci), Some(c)) = (client_control, server_control) {
                        scaffold_correct_gradient(&mut grad, ci, c)?;
                    }
                }
                Instr::Plain => {}
            }
            model.apply_gradient(&mut opt, &grad).map_err(nn_err)?;
            loss_sum += f64::from(loss) * batch.len() as f64;
            seen += batch.len();
            steps += 1;
        }
    }
    Ok(((loss_sum / seen.max(1) as f64) as f32, steps))
}

/// Waits for a secure-aggregation message, or for the server's `end`
/// (the round finished without this client).
async fn phase_msg(
    ch: &dyn Channel,
    task: &str,
    server: &PartyId,
    round: u32,
    name: &str,
    max: usize,
    limit: Duration,
) -> Result<Option<Vec<u8>>> {
    let end = tag(task, round, "end");
    let r = tokio::select! {
        r = recv_blob(ch, server, task, round, name, max) => r.map(Some),
        e = ch.recv(server, &end) => e.map(|_| None).map_err(RecvError::Channel),
        _ = tokio::time::sleep(limit) => Err(RecvError::Timeout),
    };
    r.map_err(|e| e.into_error(server, name))
}

/// This client's part of a secure-aggregation round.
#[allow(clippy::too_many_arguments)]
async fn secagg_round(
    ch: &dyn Channel,
    task: &str,
    server: &PartyId,
    round: u32,
    n: usize,
    seed: u64,
    sa: &SecAggPlan,
    delta: &[f32],
    limit: Duration,
    chunk: usize,
    rng: &mut ChaCha20Rng,
) -> Result<()> {
    let err = secagg_err(round);
    let ring = ring_of(sa.ring_bits);
    let q = QuantConfig::new(sa.clip, sa.scale, ring).map_err(&err)?;
    let input = q.quantize_weighted(delta, sa.weight).map_err(&err)?;
    let params = super::secagg_params(
        round,
        sa.n,
        sa.threshold,
        n,
        sa.ring_bits,
        sa.neighbors.map(|k| (k, seed)),
    )
    .map_err(&err)?;
    let (mut client, adv) = SaClient::new(params, SaId(sa.id), rng).map_err(&err)?;
    let send = |name: &'static str, bytes: Vec<u8>| async move {
        send_blob(ch, server, task, round, name, &bytes, chunk)
            .await
            .map_err(|e| transport(server, name, &e))
    };
    send("sa/adv", adv.encode()).await?;
    let small = MAX_HEADER_BYTES.max(256 + 128 * sa.n as usize);
    let Some(b) = phase_msg(ch, task, server, round, "sa/keys", small, limit).await? else {
        return Ok(());
    };
    let keys = KeyList::decode(&b, small).map_err(&err)?;
    let shares = client.share_keys(&keys, rng).map_err(&err)?;
    send("sa/shares", shares.encode()).await?;
    let Some(b) = phase_msg(ch, task, server, round, "sa/fwd", small, limit).await? else {
        return Ok(());
    };
    let fwd = ForwardedShares::decode(&b, small).map_err(&err)?;
    let masked = client.mask_input(&fwd, &input).map_err(&err)?;
    send("sa/masked", masked.encode()).await?;
    let Some(b) = phase_msg(ch, task, server, round, "sa/req", small, limit).await? else {
        return Ok(());
    };
    let req = UnmaskRequest::decode(&b, small).map_err(&err)?;
    let resp = client.unmask(&req).map_err(&err)?;
    send("sa/resp", resp.encode()).await?;
    Ok(())
}
