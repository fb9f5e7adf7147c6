//! `fedra bench splitnn`: split-NN training on the synthetic Criteo shape as two
//! party processes over loopback mutual TLS (a `splitnn` job run like `fedra run
//! --local`), next to centralized single-process training of the same model (same
//! specs from the same job text, same initial weights, same batch order) on the same
//! rows. Prints one JSON line per run and a summary line with the ratio.
//!
//! Model (the issue's shape): follower 26 hashed fields × 16 dims over one shared
//! 10^6-row table (row-wise Adagrad) → cut 64; leader 13 dense → cut 16; top
//! 80 → 256 → 128 → 1; batch 512; staleness 1 by default (the follower computes
//! batch k+1 while the leader works on batch k).

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fedra_splitnn::{
    BottomTower, CentralData, Features, LeaderModel, TopTower, decl::party_seed, hash_str,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;

use crate::synth::{Criteo, DENSE, FIELDS};

/// Options of `fedra bench splitnn`.
#[derive(Args, Debug, Clone)]
pub struct SplitnnArgs {
    /// Training rows (one epoch); steps = rows / batch.
    #[arg(long, default_value_t = 131_072)]
    rows: u64,
    /// Run this many steps instead (rows = steps × batch).
    #[arg(long)]
    steps: Option<u64>,
    /// Rows per batch.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Follower pipelining: 0 or 1.
    #[arg(long, default_value_t = 1)]
    staleness: u32,
    /// Rows of the shared embedding table.
    #[arg(long, default_value_t = 1_000_000)]
    table_rows: usize,
    /// Seed of the data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the centralized run.
    #[arg(long)]
    no_central: bool,
}

fn job_text(a: &SplitnnArgs, vocab: u64) -> String {
    let fields: Vec<String> = (1..=FIELDS).map(|i| format!("\"C{i}\"")).collect();
    format!(
        r#"[job]
id = "bench-splitnn"
[runtime]
peer_timeout_s = 60
[parties.guest]
role = "guest"
data = {{ path = "leader.csv", label = "label" }}
[parties.host]
role = "host"
data = {{ path = "follower.csv", features = [], categorical = [{fields}] }}
[[tasks]]
name = "snn"
kind = "splitnn"
holdout = 0
leader = "guest"
batch_size = {batch}
epochs = 1
staleness = {staleness}
shuffle_seed = 3
init_seed = 5
leak_meter = false
[tasks.top]
hidden = [256, 128]
objective = "binary"
[tasks.towers.guest]
cut = 16
[tasks.towers.host]
cut = 64
cut_activation = "linear"
sparse = {{ fields = [{fields}], rows = {rows}, dim = 16 }}
# vocabulary per field: {vocab}
"#,
        fields = fields.join(", "),
        batch = a.batch,
        staleness = a.staleness,
        rows = a.table_rows,
    )
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs the benchmark.
pub async fn run(a: &SplitnnArgs, runner: &dyn crate::LocalRunner) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    let rows = a.steps.map_or(a.rows, |s| s * a.batch as u64);
    anyhow::ensure!(rows > 0, "no rows");
    let synth = Criteo {
        seed: a.seed,
        vocab: 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let t0 = Instant::now();
    crate::synth::write(dir.path(), rows, synth)?;
    let gen_s = t0.elapsed().as_secs_f64();
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, job_text(a, synth.vocab))?;
    let job = fedra_runtime::job::Job::load(&job_path)?;
    let decl = job
        .tasks
        .iter()
        .find_map(|t| match &t.kind {
            fedra_runtime::tasks::TaskKind::Splitnn(p) => Some(p.decl.clone()),
            _ => None,
        })
        .context("the benchmark job has no splitnn task")?;

    // --- split: two processes over loopback mTLS
    let load0 = load_avg();
    let report = runner.run_local(&job_path, dir.path().join("out")).await?;
    let t = report
        .tasks
        .iter()
        .find(|t| t.name == "snn")
        .context("no report for the splitnn task")?;
    anyhow::ensure!(
        t.error.is_none(),
        "the splitnn job failed: {}",
        t.error.clone().unwrap_or_default()
    );
    let leader = &t.metrics;
    let get = |m: &fedra_runtime::tasks::Metrics, k: &str| m.get(k).cloned().unwrap_or_default();
    let follower: fedra_runtime::tasks::Metrics = leader
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("host_").map(|k| (k.to_owned(), v.clone())))
        .collect();
    let split_eps = get(leader, "examples_per_s").as_f64().unwrap_or(0.0);
    println!(
        "{}",
        json!({
            "name": "splitnn_split",
            "processes": 2,
            "transport": "grpc+mtls loopback",
            "rows": rows,
            "batch": a.batch,
            "staleness": a.staleness,
            "steps": get(leader, "steps"),
            "train_wall_s": get(leader, "train_wall_s"),
            "examples_per_s": split_eps,
            "bytes_per_example_leader_to_follower": get(leader, "bytes_per_example_sent"),
            "bytes_per_example_follower_to_leader": get(leader, "bytes_per_example_received"),
            "embedding_bytes_per_row": get(&follower, "embedding_bytes_per_row"),
            "embedding_table_bytes": get(&follower, "embedding_table_bytes"),
            "train_log_loss": get(leader, "train_log_loss"),
            "train_auc": get(leader, "train_auc"),
            "load_avg_before": load0,
            "load_avg_after": load_avg(),
            "data_gen_s": gen_s,
        })
    );
    if a.no_central {
        return Ok(());
    }

    // --- centralized: the same specs, seeds, rows and batch order in one process
    let n = rows as usize;
    let mut lx = Vec::with_capacity(n * DENSE);
    let mut ids = Vec::with_capacity(n * FIELDS);
    let mut y = Vec::with_capacity(n);
    for i in 0..rows {
        let r = synth.row(i);
        y.push(r.label);
        lx.extend_from_slice(&r.dense);
        for (f, id) in r.ids.iter().enumerate() {
            ids.push(hash_str(&synth.text(f, *id)));
        }
    }
    let lf = Features::dense(n, DENSE, lx)?;
    let ff = Features::new(n, 0, Vec::new(), FIELDS, ids)?;
    let cfg = decl.to_config("snn")?;
    let mut init = ChaCha20Rng::seed_from_u64(party_seed(decl.init_seed, "guest"));
    let lt = &decl.towers["guest"];
    let bottom = BottomTower::new(lt.to_bottom_spec("towers.guest", DENSE)?, &mut init)?;
    let top = TopTower::new(decl.top.to_top_spec("top")?, decl.top_inputs(), &mut init)?;
    let mut model = LeaderModel {
        bottom: Some(bottom),
        top,
    };
    let mut finit = ChaCha20Rng::seed_from_u64(party_seed(decl.init_seed, "host"));
    let mut followers = vec![BottomTower::new(
        decl.towers["host"].to_bottom_spec("towers.host", 0)?,
        &mut finit,
    )?];
    let load1 = load_avg();
    let t1 = Instant::now();
    fedra_splitnn::train_centralized(
        &cfg,
        &mut model,
        &mut followers,
        CentralData {
            leader: &lf,
            followers: &[&ff],
        },
        &y,
        None,
    )?;
    let central_s = t1.elapsed().as_secs_f64();
    let central_eps = rows as f64 / central_s;
    println!(
        "{}",
        json!({
            "name": "splitnn_central",
            "processes": 1,
            "rows": rows,
            "batch": a.batch,
            "train_wall_s": central_s,
            "examples_per_s": central_eps,
            "load_avg_before": load1,
            "load_avg_after": load_avg(),
        })
    );
    println!(
        "{}",
        json!({
            "name": "splitnn_summary",
            "split_examples_per_s": split_eps,
            "central_examples_per_s": central_eps,
            "ratio_split_to_central": split_eps / central_eps,
            "goal_ratio": 0.8,
            "bytes_per_example_leader_to_follower": get(leader, "bytes_per_example_sent"),
            "bytes_per_example_follower_to_leader": get(leader, "bytes_per_example_received"),
            "embedding_bytes_per_row": get(&follower, "embedding_bytes_per_row"),
            "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1),
        })
    );
    Ok(())
}
