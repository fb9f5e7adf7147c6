//! `horizontal`: horizontal federated learning (`fedra-horizontal`) as a job task.
//! The server runs the rounds, evaluates the global model on its own dataset (the
//! held-out test set, if it has one) after every round, checkpoints every round to
//! its output folder (a re-run with the same output folder resumes) and saves the
//! final model; each client trains on its own rows and keeps its SCAFFOLD control
//! variate in `<task>.client-state.json` in its own output folder, so a resumed
//! SCAFFOLD run matches an uninterrupted one too.
//!
//! Randomness: every non-secret choice derives from the job's
//! `horizontal.seed` — the initial model (`ChaCha20Rng::seed_from_u64(seed)`),
//! client sampling (`round_rng(seed, round)`) and each client's mini-batch
//! order (`client_round_rng(seed, client, round)`, seed shipped by the server)
//! — so re-running a job, or resuming a killed one, gives the same model bit
//! for bit when DP and secure aggregation are off. Secret randomness
//! (secure-aggregation keys and masks, DP noise, DP-SGD batch sampling) comes
//! from a ChaCha20 CSPRNG seeded by the OS, created here and passed in.
//!
//! Dropouts: the runner declares the clients droppable for this task
//! ([`Task::droppable`] below), so a client whose process dies or that
//! fails is dropped from the run (never selected again) while the server and the
//! other clients go on; the server's metrics carry `dropped_clients` (client →
//! reason) and `dropped_clients_by_round`, and the merged report's status is
//! `succeeded_with_dropouts` when the server and the other clients succeeded.

use fedra_data::Dataset;
use fedra_federation::PartyId;
use fedra_horizontal::HorizontalError;
use fedra_horizontal::protocol::{
    ClientConfig, Evaluate, ServerConfig, run_client_with_state, run_server,
};
use fedra_nn::{Mlp, MlpSpec};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;
use serde_json::json;

use super::params::{FieldError, ParseCtx};
use super::{Metrics, Outcome, Task};
use crate::error::TaskError;
use crate::runner::TaskCtx;

/// Parameters of the `horizontal` task: horizontal federated learning (FedAvg family,
/// `fedra-horizontal`) between one server and its clients; the server evaluates the
/// global model on its own dataset (if it has one) every round and saves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Horizontal {
    /// The aggregation server.
    pub server: PartyId,
    /// Rounds, model, local training, strategy, secure aggregation, DP (every other
    /// key of the task table; see `fedra_horizontal::protocol::ServerConfig`).
    pub config: ServerConfig,
    /// The clients' own limits (`[tasks.client]`, optional).
    pub client: ClientConfig,
}

impl Task for Horizontal {
    fn parse(cx: &ParseCtx<'_>, mut table: toml::Table) -> Result<Self, FieldError> {
        let server = match table.remove("server") {
            Some(toml::Value::String(s)) => {
                PartyId::new(&s).map_err(|e| (cx.at("server"), e.to_string()))?
            }
            Some(v) => return Err((cx.at("server"), format!("must be a party name, got {v}"))),
            None => return Err((cx.at("server"), "is required".into())),
        };
        cx.check_party(cx.at("server"), &server, None)?;
        let client: ClientConfig = match table.remove("client") {
            None => Default::default(),
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| (cx.at("client"), e.message().to_owned()))?,
        };
        client
            .validate()
            .map_err(|e| (cx.at("client"), e.to_string()))?;
        let config: ServerConfig = cx.decode(table)?;
        config.validate().map_err(|e| (cx.whole(), e.to_string()))?;
        let clients: Vec<PartyId> = match &config.clients {
            Some(c) => c.clone(),
            None => cx
                .parties
                .keys()
                .filter(|p| **p != server)
                .cloned()
                .collect(),
        };
        if clients.is_empty() {
            return Err((cx.at("clients"), "at least one client is needed".into()));
        }
        for c in &clients {
            if *c == server {
                return Err((cx.at("clients"), format!("'{c}' is the server")));
            }
            cx.check_party(
                cx.at("clients"),
                c,
                Some("horizontal learning needs a dataset on every client"),
            )?;
        }
        Ok(Horizontal {
            server,
            config,
            client,
        })
    }

    /// The clients (never the server).
    fn droppable(&self, parties: &[PartyId]) -> Vec<PartyId> {
        parties
            .iter()
            .filter(|p| **p != self.server)
            .filter(|p| self.config.clients.as_ref().is_none_or(|c| c.contains(p)))
            .cloned()
            .collect()
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await.map(Outcome::from)
    }
}

fn hfl_err(e: HorizontalError) -> TaskError {
    TaskError::from(e)
}

fn nn_err(e: fedra_nn::NnError) -> TaskError {
    TaskError::Setup(format!("model: {e}"))
}

/// Test features (f32, row-major) and labels of the server's evaluation set.
fn eval_set(d: &Dataset) -> Option<(Vec<f32>, Vec<f64>, usize)> {
    let y = d.labels()?.to_vec();
    let x = d.features().iter().map(|&v| v as f32).collect();
    Some((x, y, d.n_rows()))
}

/// AUC (binary models) or RMSE (single-output regression) of `params` on the set.
fn score(spec: &MlpSpec, params: &[f32], set: &(Vec<f32>, Vec<f64>, usize)) -> Vec<(String, f64)> {
    let Ok(m) = Mlp::from_params(spec.clone(), params) else {
        return vec![];
    };
    let Ok(p) = m.predict(&set.0, set.2) else {
        return vec![];
    };
    let p: Vec<f64> = p.into_iter().map(f64::from).collect();
    let mut out = Vec::new();
    if spec.outputs == 1 && set.1.iter().all(|&v| v == 0.0 || v == 1.0) {
        if let Ok(a) = fedra_metrics::roc_auc(&set.1, &p) {
            out.push(("auc".to_owned(), a));
        }
        if let Ok(l) = fedra_metrics::log_loss(&set.1, &p) {
            out.push(("log_loss".to_owned(), l));
        }
        if let Ok(a) = fedra_metrics::accuracy(&set.1, &p, 0.5) {
            out.push(("accuracy".to_owned(), a));
        }
    } else if spec.outputs == 1
        && let Ok(r) = fedra_metrics::rmse(&set.1, &p)
    {
        out.push(("rmse".to_owned(), r));
    }
    out
}

async fn run(ctx: &TaskCtx<'_>, p: &Horizontal) -> Result<Metrics, TaskError> {
    let me = &ctx.party.me;
    let task = &ctx.spec.name;
    let cfg = &p.config;
    let mut m = Metrics::new();
    // Secret randomness only (secure aggregation, DP): a CSPRNG seeded by the
    // OS, created at the edge of the library code and passed in. Public
    // randomness (model init, sampling, batch order) comes from the job seed.
    let mut rng = ChaCha20Rng::from_os_rng();
    if *me == p.server {
        let set = match &ctx.data {
            Some(spec) => eval_set(&super::load(spec.clone()).await?),
            None => None,
        };
        if let Some(s) = &set
            && s.0.len() != s.2 * cfg.model.inputs
        {
            return Err(TaskError::Setup(format!(
                "the server's evaluation set has {} features per row, the model {}",
                s.0.len() / s.2.max(1),
                cfg.model.inputs
            )));
        }
        // The initial model is public: derived from the strategy seed.
        let init = Mlp::new(
            cfg.model.clone(),
            &mut ChaCha20Rng::seed_from_u64(cfg.horizontal.seed),
        )
        .map_err(nn_err)?
        .params_flat();
        let spec = cfg.model.clone();
        let set2 = set.clone();
        let total = u64::from(cfg.rounds);
        ctx.progress(0, total);
        let eval = move |round: u32, params: &[f32]| -> Vec<(String, f64)> {
            let s = set2
                .as_ref()
                .map(|s| score(&spec, params, s))
                .unwrap_or_default();
            ctx.progress(u64::from(round), total);
            s
        };
        let eval: &Evaluate<'_> = &eval;
        let checkpoint = ctx.party.out_dir.join(format!("{task}.checkpoint"));
        let out = run_server(
            ctx.ch,
            task,
            cfg,
            init,
            Some(&checkpoint),
            Some(eval),
            &mut rng,
        )
        .await
        .map_err(hfl_err)?;
        if let Some(s) = &set {
            for (k, v) in score(&cfg.model, &out.params, s) {
                m.insert(k, json!(v));
            }
            m.insert("rows_test".into(), s.2.into());
        }
        m.insert("rounds".into(), out.rounds_completed.into());
        if let Some(r) = out.resumed_after {
            m.insert("resumed_after_round".into(), json!(r));
        }
        if let Some(e) = out.epsilon {
            m.insert("epsilon".into(), json!(e));
        }
        let auc_by_round: Vec<serde_json::Value> = out
            .history
            .iter()
            .map(|r| {
                r.metrics
                    .iter()
                    .find(|(k, _)| k == "auc")
                    .map_or(serde_json::Value::Null, |(_, v)| json!(v))
            })
            .collect();
        if auc_by_round.iter().any(|v| !v.is_null()) {
            m.insert("auc_by_round".into(), json!(auc_by_round));
        }
        let failures: usize = out.history.iter().map(|r| r.failures.len()).sum();
        m.insert("client_failures".into(), failures.into());
        // Dropouts: per round (the selected clients that died, vanished or aborted
        // in that round) and over the run with the reason; such a client is never
        // selected again.
        let by_round: Vec<serde_json::Value> = out
            .history
            .iter()
            .map(|r| json!(r.dropped_clients))
            .collect();
        m.insert("dropped_clients_by_round".into(), json!(by_round));
        let dropped: serde_json::Map<String, serde_json::Value> = out
            .dropped
            .iter()
            .map(|f| (f.client.to_string(), json!(f.reason)))
            .collect();
        m.insert("dropped_clients".into(), serde_json::Value::Object(dropped));
        if !out.absent.is_empty() {
            let absent: serde_json::Map<String, serde_json::Value> = out
                .absent
                .iter()
                .map(|f| (f.client.to_string(), json!(f.reason)))
                .collect();
            m.insert("absent_clients".into(), serde_json::Value::Object(absent));
        }
        let model = json!({ "spec": cfg.model, "params": out.params });
        super::write(ctx, "model.json", model.to_string())?;
    } else {
        let is_client = match &cfg.clients {
            Some(c) => c.contains(me),
            None => true,
        };
        if !is_client {
            return Ok(m);
        }
        let spec = super::dataset(ctx)?;
        let data = super::load(spec).await?;
        let mut model = Mlp::new(
            cfg.model.clone(),
            &mut ChaCha20Rng::seed_from_u64(cfg.horizontal.seed),
        )
        .map_err(nn_err)?;
        // SCAFFOLD's c_i survives a restart in the client's own output folder.
        let state = ctx.party.out_dir.join(format!("{task}.client-state.json"));
        let out = run_client_with_state(
            ctx.ch,
            task,
            &p.server,
            &p.client,
            &data,
            &mut model,
            Some(&state),
            &mut rng,
        )
        .await
        .map_err(hfl_err)?;
        m.insert("rounds_trained".into(), out.rounds_trained.into());
        m.insert("rows_local".into(), data.n_rows().into());
        if let Some(l) = out.last_loss {
            m.insert("local_loss".into(), json!(l));
        }
        if let Some(e) = out.epsilon {
            m.insert("local_epsilon".into(), json!(e));
        }
    }
    Ok(m)
}
