//! `fedra run JOB --local`: every party of a job as a child process on loopback,
//! with fresh dev certificates, merged into one report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fedra_runtime::job::{Job, Role};
use fedra_runtime::report::{JobReport, PartyReport, Status};
use fedra_runtime::runner::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use crate::party::PARTY_REPORT;

/// Finds `examples/<name>/job.toml` from the working directory or the executable's location.
pub fn find_example(name: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new("examples").join(name).join("job.toml");
    let mut tried = Vec::new();
    let mut roots = vec![std::env::current_dir()?];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        let p = root.join(&rel);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    anyhow::bail!(
        "cannot find {}; run from the repository root (looked in {})",
        rel.display(),
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn quote(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

fn role_rank(r: Role) -> u8 {
    match r {
        Role::Guest => 0,
        Role::Host => 1,
        Role::Arbiter => 2,
        Role::Server => 3,
        Role::Client => 4,
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Runs the job with every party as a child process, prints the human report and
/// returns the exit code.
pub async fn run(job_path: &Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (merged, out) = run_job(job_path, out, true).await?;
    let path = out.join("report.json");
    crate::summary::print(&merged, &path);
    // A job whose only failures are droppable parties (e.g. a crashed horizontal
    // client) succeeded with dropouts: its results stand.
    if matches!(
        merged.status,
        Status::Succeeded | Status::SucceededWithDropouts
    ) {
        return Ok(ExitCode::SUCCESS);
    }
    for party in merged
        .parties
        .iter()
        .filter(|(_, s)| s.status != Status::Succeeded)
        .map(|(p, _)| p)
    {
        let log = out.join("logs").join(format!("{party}.log"));
        eprintln!("--- last lines of {} ---\n{}", log.display(), tail(&log, 8));
    }
    Ok(ExitCode::FAILURE)
}

/// `fedra bench`'s way to run a job with every party as a child process.
pub struct LocalJobs;

impl fedra_bench::LocalRunner for LocalJobs {
    fn run_local<'a>(&'a self, job: &'a Path, out: PathBuf) -> fedra_bench::LocalRun<'a> {
        Box::pin(async move { Ok(run_job(job, Some(out), false).await?.0) })
    }
}

/// Runs the job with every party as a child process and writes `report.json`;
/// `progress` shows progress bars. Returns the merged report and the output folder.
pub async fn run_job(
    job_path: &Path,
    out: Option<PathBuf>,
    progress: bool,
) -> anyhow::Result<(JobReport, PathBuf)> {
    let job = Job::load(job_path)?;
    let out = out.unwrap_or_else(|| PathBuf::from("out").join(&job.id));
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let tmp = tempfile::tempdir().context("creating a temporary folder for certificates")?;
    let ids = job.party_ids();
    let names: Vec<&str> = ids.iter().map(|p| p.as_str()).collect();
    let certs = tmp.path().join("certs");
    fedra_pki::init_dir(&certs, &names, 1, 1, fedra_pki::Overwrite::Refuse)?;

    // Reserve distinct free ports by holding all listeners until every port is chosen.
    let listeners = names
        .iter()
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free loopback ports")?;
    let addrs: Vec<_> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?;
    drop(listeners);

    let started = Instant::now();
    let multi = if progress {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {prefix:>10} {bar:20} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut killers = BTreeMap::new();
    for (i, p) in names.iter().enumerate() {
        let mut cfg = format!(
            "party = \"{p}\"\nlisten = \"{}\"\n[tls]\nca = {}\ncert = {}\nkey = {}\n[peers]\n",
            addrs[i],
            quote(&certs.join("ca.pem")),
            quote(&certs.join(format!("{p}.pem"))),
            quote(&certs.join(format!("{p}.key"))),
        );
        for (j, q) in names.iter().enumerate().filter(|(j, _)| *j != i) {
            cfg.push_str(&format!("{q} = \"{}\"\n", addrs[j]));
        }
        let cfg_path = tmp.path().join(format!("{p}.toml"));
        fedra_fs::write_atomic(&cfg_path, cfg.as_bytes(), fedra_fs::Mode::Private)
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        let log_path = logs.join(format!("{p}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("run")
            .arg(job_path)
            .args(["--party", p, "--config"])
            .arg(&cfg_path)
            .arg("--out")
            .arg(out.join("parties").join(p))
            .arg("--events")
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a party process")?;

        let bar = multi.add(ProgressBar::new(1));
        bar.set_style(style.clone());
        bar.set_prefix(p.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(stdout) = child.stdout.take() {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Event>(&line) {
                        Ok(Event::TaskStarted { task, index, total }) => {
                            bar.set_length(1);
                            bar.set_position(0);
                            bar.set_message(format!("task {}/{total}: {task}", index + 1));
                        }
                        Ok(Event::Progress { done, total, .. }) => {
                            bar.set_length(total.max(1));
                            bar.set_position(done);
                        }
                        Ok(Event::TaskFinished { .. }) | Err(_) => {}
                    }
                }
            });
        }
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        killers.insert(p.to_string(), kill_tx);
        let (done_tx, party) = (done_tx.clone(), p.to_string());
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s.map(|s| (s, false)),
                _ = kill_rx => child.kill().await.and(child.wait().await).map(|s| (s, true)),
            };
            bar.finish_and_clear();
            let _ = done_tx.send((party, status));
        });
    }
    drop(done_tx);

    // Every party stops by itself when another fails (heartbeats, abort signals);
    // this watchdog only guards against a party that is stuck outside the runtime.
    // A droppable party's exit (e.g. a crashed horizontal client) does not arm it:
    // the others go on without it.
    let droppable: Vec<String> = job
        .droppable_parties()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let grace = Duration::from_secs_f64(job.runtime.peer_timeout_s * 2.0 + 15.0);
    let mut deadline: Option<Instant> = None;
    let mut exits: BTreeMap<String, String> = BTreeMap::new();
    let mut killed = Vec::new();
    while exits.len() < names.len() {
        let next = match deadline {
            None => done_rx.recv().await,
            Some(d) => match tokio::time::timeout_at(d.into(), done_rx.recv()).await {
                Ok(x) => x,
                Err(_) => {
                    for (p, k) in std::mem::take(&mut killers) {
                        if !exits.contains_key(&p) {
                            killed.push(p.clone());
                            let _ = k.send(());
                        }
                    }
                    deadline = None;
                    continue;
                }
            },
        };
        let Some((party, status)) = next else { break };
        let (ok, text) = match status {
            Ok((s, _)) => (s.success(), s.to_string()),
            Err(e) => (false, e.to_string()),
        };
        if !ok && deadline.is_none() && !killers.is_empty() && !droppable.contains(&party) {
            deadline = Some(Instant::now() + grace);
        }
        exits.insert(party, text);
    }
    multi.clear().ok();

    let mut reports = Vec::new();
    for p in &names {
        let path = out.join("parties").join(p).join(PARTY_REPORT);
        let report = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<PartyReport>(&b).ok())
            .unwrap_or_else(|| {
                let why = if killed.iter().any(|k| k == p) {
                    format!("killed by `fedra run --local` after it did not stop within {:.0} s of another party's failure", grace.as_secs_f64())
                } else {
                    format!("process ended ({}) without a report", exits.get(*p).map(String::as_str).unwrap_or("unknown"))
                };
                PartyReport::not_run(&job, p, why)
            });
        reports.push(report);
    }
    reports.sort_by_key(|r| {
        let role = ids
            .iter()
            .find(|i| i.as_str() == r.party)
            .and_then(|i| job.parties.get(i))
            .map(|s| s.role);
        (role.map(role_rank).unwrap_or(9), r.party.clone())
    });
    let mut merged = JobReport::merge_job(&job, &reports);
    merged.wall_s = started.elapsed().as_secs_f64();
    let path = out.join("report.json");
    fedra_fs::write_atomic(
        &path,
        &serde_json::to_vec_pretty(&merged)?,
        fedra_fs::Mode::Public,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok((merged, out))
}
