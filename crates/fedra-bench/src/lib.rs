//! The benchmarks behind `fedra bench ...`: end-to-end runs that print one JSON
//! object per line on stdout (`transport`, `psi`, `secureboost` here; [`he`],
//! [`horizontal`], [`splitnn`]), and the synthetic Criteo-shaped data generator
//! ([`synth`]) behind `fedra gen criteo`, which the split-NN benchmark also uses.
//!
//! This crate is a harness of the `fedra` command, split out so that the CLI stays
//! about running jobs (and so that its benchmark code and dependencies build only
//! where needed): it is unpublished, its entry points are [`BenchCommand`] (the clap
//! subcommand) and [`run`], and its errors are reported on the terminal only (hence
//! `anyhow`, like the binary). Benchmarks that run a job with every party as its own
//! process get that ability from the CLI through [`LocalRunner`] (process management
//! stays in `fedra-cli`). Benchmarks are never timed assertions.

pub mod he;
pub mod horizontal;
pub mod splitnn;
pub mod synth;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use clap::Subcommand;
use fedra_federation::{Channel, PartyId, Tag};
use fedra_pki::{DevCa, Validity};
use fedra_transport::{GrpcChannel, GrpcConfig, TlsIdentity};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A job run in progress (see [`LocalRunner`]).
pub type LocalRun<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<fedra_runtime::report::JobReport>> + 'a>>;

/// Runs a job with every party as its own process on loopback over mutual TLS, as
/// `fedra run --local` does, writing into `out`; returns the merged report. The CLI
/// implements it (only the CLI manages processes).
pub trait LocalRunner {
    /// Runs the job file `job` (without progress bars).
    fn run_local<'a>(&'a self, job: &'a Path, out: PathBuf) -> LocalRun<'a>;
}

/// The `fedra bench` subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Throughput of large payloads between two parties over loopback mutual TLS,
    /// next to the raw loopback TCP throughput of this machine.
    Transport {
        /// Payload sizes in MiB.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16, 128])]
        sizes_mb: Vec<usize>,
        /// Messages per size.
        #[arg(long, default_value_t = 4)]
        repeat: u32,
    },
    /// Private set intersection between two party processes over loopback mutual
    /// TLS, N ids per side with a 50% overlap; for ECDH also the curve-operation
    /// floor of this machine (both parties' curve work spread over every core) and
    /// the ratio of the wall time to it.
    Psi {
        /// Ids per side.
        #[arg(long, value_delimiter = ',', default_values_t = vec![100_000])]
        ids: Vec<usize>,
        /// The protocol.
        #[arg(long, value_enum, default_value_t = PsiProtocol::Ecdh)]
        protocol: PsiProtocol,
        /// Hash buckets (ECDH).
        #[arg(long, default_value_t = 1)]
        buckets: u32,
    },
    /// SecureBoost training and evaluation between party processes over loopback
    /// mutual TLS (a `secureboost` job; default: FATE default_credit, 64 trees of
    /// depth 6): wall time, ciphertext operations, bytes and peak memory per party.
    Secureboost {
        /// The job file (its first `secureboost` task is benchmarked).
        #[arg(long, default_value = "examples/secureboost-default-credit/job.toml")]
        job: std::path::PathBuf,
        /// Schemes to run, one result line each: ou, paillier, insecure_plaintext.
        #[arg(long, value_delimiter = ',', default_values_t = vec!["ou".to_string()])]
        schemes: Vec<String>,
        /// Override the number of trees.
        #[arg(long)]
        trees: Option<u32>,
        /// Override the maximum depth.
        #[arg(long)]
        max_depth: Option<u32>,
    },
    /// Paillier and Okamoto–Uchiyama operations per second (keygen, encrypt,
    /// decrypt, additions, scalar multiplication, rerandomisation) at each key
    /// size and thread count; `bench/he_compare.sh` runs it next to phe and HEU.
    He(he::HeArgs),
    /// The server's cost of one horizontal-FL round, plain FedAvg vs secure
    /// aggregation, for 1M/10M-parameter models and 10/100 clients: seconds
    /// and bytes per client; `--flower` adds Flower's FedAvg on the same sizes.
    Horizontal(horizontal::HorizontalArgs),
    /// Split-NN training on the synthetic Criteo shape: two party processes over
    /// loopback mutual TLS vs centralized training of the same model in one process
    /// (examples/s, ratio, bytes per example each way, embedding memory per row).
    Splitnn(splitnn::SplitnnArgs),
}

/// A PSI protocol to benchmark.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PsiProtocol {
    /// ECDH over ristretto255.
    Ecdh,
    /// RSA blind signatures (fresh 2048-bit key).
    Rsa,
}

/// Single-core seconds per (hash + scalar mult + encode) and per (decode + mult + encode).
fn curve_costs() -> (f64, f64) {
    use curve25519_dalek::Scalar;
    let s = Scalar::from_bytes_mod_order([7u8; 32]);
    let n = 20_000u32;
    let t0 = Instant::now();
    let mut enc = Vec::with_capacity(n as usize);
    for i in 0..n {
        enc.push(fedra_psi::ecdh::blind(
            "bench",
            "psi",
            format!("u{i}").as_bytes(),
            &s,
        ));
    }
    let hash = t0.elapsed().as_secs_f64() / f64::from(n);
    let t1 = Instant::now();
    for e in &enc {
        let _ = std::hint::black_box(fedra_psi::ecdh::reblind(e, &s));
    }
    (hash, t1.elapsed().as_secs_f64() / f64::from(n))
}

async fn bench_psi(
    runner: &dyn LocalRunner,
    ids: &[usize],
    protocol: PsiProtocol,
    buckets: u32,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let costs = matches!(protocol, PsiProtocol::Ecdh).then(curve_costs);
    for &n in ids {
        let dir = tempfile::tempdir()?;
        let write = |name: &str, range: std::ops::Range<usize>| -> std::io::Result<()> {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(std::fs::File::create(dir.path().join(name))?);
            writeln!(w, "id,x")?;
            for i in range {
                writeln!(w, "u{i},{}", i % 7)?;
            }
            w.flush()
        };
        write("guest.csv", 0..n)?;
        write("host.csv", n / 2..n / 2 + n)?;
        let task = match protocol {
            PsiProtocol::Ecdh => {
                format!(
                    "protocol = \"ecdh\"\nleader = \"guest\"\nfollower = \"host\"\nbuckets = {buckets}\n"
                )
            }
            PsiProtocol::Rsa => {
                "protocol = \"rsa\"\nkey_holder = \"host\"\nclient = \"guest\"\n".to_owned()
            }
        };
        let job = format!(
            "[job]\nid = \"bench-psi\"\n[parties.guest]\nrole = \"guest\"\ndata = {{ path = \"guest.csv\" }}\n\
             [parties.host]\nrole = \"host\"\ndata = {{ path = \"host.csv\" }}\n\
             [[tasks]]\nname = \"psi\"\nkind = \"psi\"\n{task}"
        );
        let job_path = dir.path().join("job.toml");
        std::fs::write(&job_path, job)?;
        let report = runner.run_local(&job_path, dir.path().join("out")).await?;
        let t = report
            .tasks
            .first()
            .ok_or_else(|| anyhow::anyhow!("no task in the report"))?;
        anyhow::ensure!(
            t.status == fedra_runtime::report::Status::Succeeded,
            "the PSI job failed: {}",
            t.error.as_deref().unwrap_or("see the logs")
        );
        let party = |p: &str| report.parties.get(p);
        let mut line = json!({
            "name": match protocol { PsiProtocol::Ecdh => "psi_ecdh", PsiProtocol::Rsa => "psi_rsa" },
            "ids_per_side": n,
            "overlap": n / 2,
            "buckets": buckets,
            "intersection_size": t.metrics.get("intersection_size"),
            "wall_s": t.wall_s,
            "guest_wire_bytes_sent": party("guest").map(|s| s.traffic.wire_bytes_sent),
            "host_wire_bytes_sent": party("host").map(|s| s.traffic.wire_bytes_sent),
            "guest_peak_rss_mb": party("guest").and_then(|s| s.peak_rss_mb),
            "host_peak_rss_mb": party("host").and_then(|s| s.peak_rss_mb),
            "cores": cores,
        });
        if let Some((hash, mult)) = costs {
            // Each party hashes and blinds its own n ids and re-blinds the peer's n:
            // 2n(hash + mult) core-seconds in all, over every core of this machine.
            let floor = 2.0 * n as f64 * (hash + mult) / cores;
            line["curve_floor_s"] = json!(floor);
            line["ratio_to_floor"] = json!(t.wall_s / floor);
            line["hash_blind_per_s_core"] = json!(1.0 / hash);
            line["reblind_per_s_core"] = json!(1.0 / mult);
        }
        println!("{line}");
    }
    Ok(())
}

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Raw loopback TCP throughput for `total` bytes, in MB/s.
async fn raw_tcp(total: usize) -> anyhow::Result<f64> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = l.accept().await?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0usize;
        loop {
            let k = s.read(&mut buf).await?;
            if k == 0 {
                return Ok::<_, std::io::Error>(n);
            }
            n += k;
        }
    });
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await?;
    let chunk = vec![7u8; 1 << 20];
    let mut left = total;
    while left > 0 {
        let k = left.min(chunk.len());
        s.write_all(&chunk[..k]).await?;
        left -= k;
    }
    s.shutdown().await?;
    let got = reader.await??;
    anyhow::ensure!(got == total, "raw TCP moved {got} of {total} bytes");
    Ok(total as f64 / t0.elapsed().as_secs_f64() / 1e6)
}

async fn pair() -> anyhow::Result<(GrpcChannel, GrpcChannel)> {
    let ca = DevCa::new(Validity::days(1))?;
    let (g, h) = (PartyId::new("guest")?, PartyId::new("host")?);
    let (lg, lh) = (
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    );
    let (ag, ah) = (lg.local_addr()?, lh.local_addr()?);
    let id = |p: &str| -> anyhow::Result<TlsIdentity> {
        let c = ca.issue(p, Validity::days(1))?;
        Ok(TlsIdentity::from_pem(
            ca.cert_pem(),
            &c.cert_pem,
            &c.key_pem,
        )?)
    };
    let cg = GrpcConfig::new(
        "bench",
        g.clone(),
        ag,
        BTreeMap::from([(h.clone(), ah.to_string())]),
        id("guest")?,
    );
    let ch = GrpcConfig::new(
        "bench",
        h.clone(),
        ah,
        BTreeMap::from([(g.clone(), ag.to_string())]),
        id("host")?,
    );
    Ok((
        GrpcChannel::start_on(cg, lg).await?,
        GrpcChannel::start_on(ch, lh).await?,
    ))
}

/// Runs a SecureBoost job once per scheme (with overrides) and prints one line each.
async fn bench_secureboost(
    runner: &dyn LocalRunner,
    job: &std::path::Path,
    schemes: &[String],
    trees: Option<u32>,
    max_depth: Option<u32>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(job).with_context(|| format!("reading {}", job.display()))?;
    let dir = job.parent().unwrap_or(std::path::Path::new("."));
    let out_root = tempfile::tempdir()?;
    for scheme in schemes {
        let mut doc: toml::Table = toml::from_str(&text)?;
        let tasks = doc
            .get_mut("tasks")
            .and_then(|t| t.as_array_mut())
            .context("the job has no [[tasks]]")?;
        let task = tasks
            .iter_mut()
            .filter_map(|t| t.as_table_mut())
            .find(|t| t.get("kind").and_then(|k| k.as_str()) == Some("secureboost"))
            .context("the job has no secureboost task")?;
        task.insert("scheme".into(), toml::Value::String(scheme.clone()));
        if let Some(t) = trees {
            task.insert("trees".into(), toml::Value::Integer(i64::from(t)));
        }
        if let Some(d) = max_depth {
            task.insert("max_depth".into(), toml::Value::Integer(i64::from(d)));
        }
        let name = task
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        if scheme == "insecure_plaintext" {
            // The bench compares against the mode without encryption on purpose.
            let rt = doc
                .entry("runtime")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(rt) = rt.as_table_mut() {
                rt.insert("allow_insecure".into(), toml::Value::Boolean(true));
            }
        }
        // Next to the original so that relative data paths resolve the same way.
        let path = dir.join(format!(".bench-secureboost-{scheme}.toml"));
        std::fs::write(&path, toml::to_string(&doc)?)?;
        let result = runner.run_local(&path, out_root.path().join(scheme)).await;
        let _ = std::fs::remove_file(&path);
        let report = result?;
        let t = report
            .tasks
            .iter()
            .find(|t| t.name == name)
            .context("no report for the secureboost task")?;
        anyhow::ensure!(
            t.error.is_none(),
            "the secureboost task failed: {}",
            t.error.clone().unwrap_or_default()
        );
        let metric = |k: &str| t.metrics.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let mut line = json!({
            "name": "secureboost",
            "job": job.display().to_string(),
            "scheme": scheme,
            "trees": metric("trees"),
            "rows_train": metric("rows_train"),
            "training_s": metric("training_s"),
            "task_wall_s": t.wall_s,
            "s_per_tree": metric("training_s").as_f64().zip(metric("rounds_run").as_f64()).map(|(a, b)| a / b.max(1.0)),
            "auc": metric("auc"),
            "train_auc": metric("train_auc"),
            "encryptions": metric("encryptions"),
            "decryptions": metric("decryptions"),
            "host_ciphertext_additions": metric("ciphertext_additions"),
            "rerandomized": metric("rerandomized"),
            // Private prediction of the held-out rows (guest's view).
            "predict_s": metric("predict_s"),
            "predict_encryptions": metric("predict_encryptions"),
            "predict_decryptions": metric("predict_decryptions"),
            "predict_bytes_sent": metric("predict_bytes_sent"),
            "predict_bytes_received": metric("predict_bytes_received"),
        });
        for (party, p) in &report.parties {
            line[format!("bytes_sent_{party}")] = json!(p.traffic.wire_bytes_sent);
            line[format!("peak_rss_mb_{party}")] = json!(p.peak_rss_mb);
        }
        println!("{line}");
    }
    Ok(())
}

/// Runs one benchmark; `runner` starts jobs as party processes.
pub async fn run(cmd: BenchCommand, runner: &dyn LocalRunner) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::He(args) => he::run(&args),
        BenchCommand::Horizontal(args) => horizontal::run(&args),
        BenchCommand::Splitnn(args) => splitnn::run(&args, runner).await,
        BenchCommand::Psi {
            ids,
            protocol,
            buckets,
        } => bench_psi(runner, &ids, protocol, buckets).await,
        BenchCommand::Secureboost {
            job,
            schemes,
            trees,
            max_depth,
        } => bench_secureboost(runner, &job, &schemes, trees, max_depth).await,
        BenchCommand::Transport { sizes_mb, repeat } => {
            let (a, b) = pair().await?;
            // Warm up: connection, TLS handshake, HTTP/2 windows.
            let warm = Tag::new("warmup", 0, "m");
            let (s, r) = tokio::join!(
                a.send(b.me(), &warm, Bytes::from(vec![0u8; 1 << 20])),
                b.recv(a.me(), &warm)
            );
            s?;
            r?;
            for (i, mb) in sizes_mb.iter().enumerate() {
                let len = mb << 20;
                let payload = Bytes::from(vec![0x5au8; len]);
                let before = a.stats()[0].clone();
                let t0 = Instant::now();
                for k in 0..repeat {
                    let tag = Tag::new("bench", (i as u64) << 32 | u64::from(k), "blob");
                    let (s, r) =
                        tokio::join!(a.send(b.me(), &tag, payload.clone()), b.recv(a.me(), &tag));
                    s?;
                    anyhow::ensure!(r?.len() == len, "short payload");
                }
                let wall = t0.elapsed().as_secs_f64();
                let after = a.stats()[0].clone();
                let moved = len as f64 * f64::from(repeat);
                let wire = after.wire_bytes_sent - before.wire_bytes_sent;
                let raw = raw_tcp(len * repeat as usize).await?;
                let mbps = moved / wall / 1e6;
                println!(
                    "{}",
                    json!({
                        "name": "transport",
                        "payload_mb": mb,
                        "repeat": repeat,
                        "wall_s": wall,
                        "throughput_mb_s": mbps,
                        "payload_bytes": moved as u64,
                        "wire_bytes_sent": wire,
                        "wire_overhead_pct": (wire as f64 / moved - 1.0) * 100.0,
                        "raw_tcp_mb_s": raw,
                        "fraction_of_raw_tcp": mbps / raw,
                        "peak_rss_mb": peak_rss_mb(),
                    })
                );
            }
            a.shutdown().await;
            b.shutdown().await;
            Ok(())
        }
    }
}
