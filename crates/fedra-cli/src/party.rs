//! `fedra run JOB --party NAME --config FILE`: one party's side of a job.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use fedra_federation::PartyId;
use fedra_runtime::config::PartyConfig;
use fedra_runtime::job::{Job, RuntimeSettings};
use fedra_runtime::report::{JobReport, Status};
use fedra_runtime::runner::{Event, PartyContext, run_party};
use fedra_transport::{GrpcChannel, GrpcConfig, Timing, TlsIdentity};
use indicatif::{ProgressBar, ProgressStyle};

/// File name of a party's own report (read by `--local` to merge).
pub const PARTY_REPORT: &str = "party-report.json";

/// Channel timing from the job's runtime settings.
pub fn timing(r: &RuntimeSettings) -> Timing {
    let s = Duration::from_secs_f64;
    Timing {
        send_timeout: s(r.send_timeout_s),
        recv_timeout: r.recv_timeout_s.map(s),
        heartbeat_interval: s((r.peer_timeout_s / 5.0).clamp(0.2, 2.0)),
        peer_timeout: s(r.peer_timeout_s),
        startup_grace: s(r.startup_timeout_s),
        ..Timing::default()
    }
}

pub async fn run(
    job_path: &Path,
    party: &str,
    config_path: &Path,
    out: Option<PathBuf>,
    events: bool,
) -> anyhow::Result<ExitCode> {
    let job = Job::load(job_path)?;
    let cfg = PartyConfig::load(config_path)?;
    let me = PartyId::new(party)?;
    anyhow::ensure!(
        cfg.party == me,
        "{}: the config is for party '{}', not '{me}'",
        config_path.display(),
        cfg.party
    );
    cfg.check(&job, config_path)?;
    let out = out.unwrap_or_else(|| PathBuf::from("out").join(&job.id).join(party));
    // The party's outputs (aligned rows, models, predictions) are private.
    fedra_fs::create_private_dir(&out).with_context(|| format!("creating {}", out.display()))?;

    let tls = TlsIdentity::from_files(&cfg.tls.ca, &cfg.tls.cert, &cfg.tls.key)?;
    let mut gc = GrpcConfig::new(&job.id, me.clone(), cfg.listen, cfg.peers.clone(), tls);
    gc.max_message_bytes = job.runtime.max_message_mb << 20;
    gc.max_queued_bytes = job.runtime.max_queued_bytes();
    gc.timing = timing(&job.runtime);
    let channel = GrpcChannel::start(gc).await?;

    let bar = (!events).then(|| {
        let b = ProgressBar::new(job.tasks.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.set_prefix(format!("{me}"));
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let on_event = |e: Event| {
        if events {
            // One JSON line per event for the --local parent; stdout is a pipe there.
            if let Ok(line) = serde_json::to_string(&e) {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{line}");
                let _ = o.flush();
            }
        } else if let Some(b) = &bar {
            match e {
                Event::TaskStarted { task, index, total } => {
                    b.set_message(format!("task {}/{total}: {task}", index + 1))
                }
                Event::Progress { task, done, total } => {
                    b.set_message(format!("{task}: {done}/{total}"))
                }
                Event::TaskFinished { task, status } => {
                    b.println(format!("{me}: task {task} {status:?}"))
                }
            }
        }
    };
    let ctx = PartyContext {
        job: &job,
        me: me.clone(),
        data: cfg.dataset(&job),
        out_dir: out.clone(),
        events: &on_event,
    };
    let mut report = run_party(&ctx, &channel).await;
    report.peak_rss_mb = fedra_bench::peak_rss_mb();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    channel.shutdown().await;

    // Reports are public (no data, no keys), and written durably.
    let write = |name: &str, body: Vec<u8>| -> anyhow::Result<()> {
        let p = out.join(name);
        fedra_fs::write_atomic(&p, &body, fedra_fs::Mode::Public)
            .with_context(|| format!("writing {}", p.display()))
    };
    write(PARTY_REPORT, serde_json::to_vec_pretty(&report)?)?;
    let merged = JobReport::merge(&job.id, std::slice::from_ref(&report));
    write("report.json", serde_json::to_vec_pretty(&merged)?)?;
    if report.status == Status::Succeeded {
        if !events {
            crate::summary::print(&merged, &out.join("report.json"));
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {}",
            report.error.as_deref().unwrap_or("the job failed")
        );
        Ok(ExitCode::FAILURE)
    }
}
