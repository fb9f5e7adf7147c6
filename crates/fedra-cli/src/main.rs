//! `fedra`: run federated jobs, the quickstart, certificates and benchmarks.

mod local;
mod party;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};

/// Fedra: federated learning between organizations that may not share raw data.
#[derive(Parser)]
#[command(name = "fedra", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job: one party's side (--party) or every party on this machine (--local).
    Run(RunArgs),
    /// Run the quickstart job (examples/quickstart/job.toml) with every party on this machine.
    Quickstart {
        /// Output directory (default: out/quickstart).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a job file without running it.
    Validate {
        /// The job file.
        job: PathBuf,
    },
    /// Development certificates for mutual TLS.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// End-to-end benchmarks; each prints one JSON object per line.
    #[command(subcommand)]
    Bench(fedra_bench::BenchCommand),
    /// Generate synthetic datasets.
    #[command(subcommand)]
    Gen(GenCommand),
    /// Differential-privacy budget planning (RDP accountant of the Poisson-subsampled
    /// Gaussian mechanism; agrees with Google's dp-accounting).
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Print every visible command of this CLI, one JSON object per line (path, about,
    /// the arguments without help), walked from clap's command tree; for the tests.
    #[command(name = "__commands", hide = true)]
    ListCommands,
}

/// One line of `fedra __commands`: a command's path, its description and its
/// arguments that have no help text.
fn list_commands(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<serde_json::Value>) {
    let undocumented: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_help().is_none())
        .map(|a| a.get_id().to_string())
        .collect();
    out.push(serde_json::json!({
        "path": path,
        "about": cmd.get_about().map(|s| s.to_string()).unwrap_or_default(),
        "args_without_help": undocumented,
    }));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name().to_owned());
        list_commands(sub, path, out);
        path.pop();
    }
}

#[derive(Subcommand)]
enum GenCommand {
    /// Criteo-shaped split data: DIR/leader.csv (id, label, I1..I13) and
    /// DIR/follower.csv (id, C1..C26: Zipf-like ids over 10^6 per field, hex-hashed);
    /// the label depends on both files' features.
    Criteo {
        /// Rows.
        #[arg(long)]
        rows: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Seed (the same seed and rows give the same files).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum PrivacyCommand {
    /// ε after `steps` noisy steps, or with --target-epsilon the noise multiplier that reaches it.
    Epsilon {
        /// σ: noise standard deviation over the clipping norm (not with --target-epsilon).
        #[arg(
            long,
            required_unless_present = "target_epsilon",
            conflicts_with = "target_epsilon"
        )]
        noise_multiplier: Option<f64>,
        /// ε to reach: print the smallest noise multiplier that achieves it.
        #[arg(long)]
        target_epsilon: Option<f64>,
        /// q: Poisson sampling rate per step (batch size / dataset size).
        #[arg(long)]
        sampling_rate: f64,
        /// Number of steps.
        #[arg(long)]
        steps: u64,
        /// δ.
        #[arg(long, default_value_t = 1e-5)]
        delta: f64,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["party", "local"]))]
struct RunArgs {
    /// The job file.
    job: PathBuf,
    /// Run this party's side; needs --config.
    #[arg(long, requires = "config")]
    party: Option<String>,
    /// This party's config file (endpoint, certificates, peers, data).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start every party as a child process on loopback with fresh dev certificates.
    #[arg(long)]
    local: bool,
    /// Output directory (default: out/<job id>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print progress as JSON lines on stdout (used by --local to drive its progress bars).
    #[arg(long, hide = true)]
    events: bool,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a dev CA and one certificate per party (DNS SAN = party id).
    Init {
        /// Party ids, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        parties: Vec<String>,
        /// Output folder.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Validity of the party certificates in days (1–825).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Validity of the CA in days (1–3650).
        #[arg(long, default_value_t = 1825)]
        ca_days: u32,
        /// Replace existing CA and party files (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate for one more party from an existing dev CA.
    Issue {
        /// The party id.
        #[arg(long)]
        party: String,
        /// The folder holding ca.pem and ca.key; the new files go there too.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Validity in days (1–825).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace the party's existing certificate and key (refused otherwise).
        #[arg(long)]
        force: bool,
    },
}

fn overwrite(force: bool) -> fedra_pki::Overwrite {
    if force {
        fedra_pki::Overwrite::Replace
    } else {
        fedra_pki::Overwrite::Refuse
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => {
            if a.local {
                init_logging("warn");
                runtime()?.block_on(local::run(&a.job, a.out))
            } else {
                init_logging("info");
                let party = a.party.context("--party is required without --local")?;
                let config = a.config.context("--config is required with --party")?;
                runtime()?.block_on(party::run(&a.job, &party, &config, a.out, a.events))
            }
        }
        Command::Quickstart { out } => {
            init_logging("warn");
            let job = local::find_example("quickstart")?;
            runtime()?.block_on(local::run(
                &job,
                Some(out.unwrap_or_else(|| PathBuf::from("out/quickstart"))),
            ))
        }
        Command::Validate { job } => {
            let j = fedra_runtime::job::Job::load(&job)?;
            println!(
                "{}: job '{}' is valid: {} parties, {} tasks ({})",
                job.display(),
                j.id,
                j.parties.len(),
                j.tasks.len(),
                j.tasks
                    .iter()
                    .map(|t| format!("{}:{}", t.name, t.kind.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(CertsCommand::Init {
            parties,
            dir,
            days,
            ca_days,
            force,
        }) => {
            for p in &parties {
                fedra_federation::PartyId::new(p)?;
            }
            let names: Vec<&str> = parties.iter().map(String::as_str).collect();
            fedra_pki::init_dir(&dir, &names, days, ca_days, overwrite(force))?;
            println!(
                "wrote {}/ca.pem, ca.key and a certificate and key per party: {}",
                dir.display(),
                names.join(", ")
            );
            println!(
                "keep ca.key private; give each party ca.pem and only its own <party>.pem and <party>.key"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(CertsCommand::Issue {
            party,
            dir,
            days,
            force,
        }) => {
            fedra_federation::PartyId::new(&party)?;
            let (c, k) = fedra_pki::issue_into(&dir, &party, days, overwrite(force))?;
            println!("wrote {} and {}", c.display(), k.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Privacy(PrivacyCommand::Epsilon {
            noise_multiplier,
            target_epsilon,
            sampling_rate,
            steps,
            delta,
            json,
        }) => {
            match (noise_multiplier, target_epsilon) {
                (Some(sigma), _) => {
                    let r = fedra_dp::epsilon(&fedra_dp::Plan {
                        noise_multiplier: sigma,
                        sampling_rate,
                        steps,
                        delta,
                    })?;
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "epsilon": r.epsilon, "delta": delta, "order": r.order,
                                "noise_multiplier": sigma, "sampling_rate": sampling_rate, "steps": steps,
                                "accountant": "rdp",
                            })
                        );
                    } else {
                        println!(
                            "epsilon = {:.6} (delta = {delta}, RDP order {}) after {steps} steps with noise multiplier {sigma} and sampling rate {sampling_rate}",
                            r.epsilon, r.order
                        );
                    }
                }
                (None, Some(eps)) => {
                    let sigma = fedra_dp::noise_multiplier_for(eps, sampling_rate, steps, delta)?;
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "noise_multiplier": sigma, "target_epsilon": eps, "delta": delta,
                                "sampling_rate": sampling_rate, "steps": steps, "accountant": "rdp",
                            })
                        );
                    } else {
                        println!(
                            "noise multiplier = {sigma:.6} reaches epsilon <= {eps} (delta = {delta}) after {steps} steps at sampling rate {sampling_rate}"
                        );
                    }
                }
                (None, None) => anyhow::bail!("give --noise-multiplier or --target-epsilon"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gen(GenCommand::Criteo { rows, out, seed }) => {
            anyhow::ensure!(rows > 0, "--rows must be at least 1");
            fedra_bench::synth::write(
                &out,
                rows,
                fedra_bench::synth::Criteo {
                    seed,
                    vocab: 1_000_000,
                },
            )?;
            println!(
                "wrote {rows} rows to {}/leader.csv (id, label, I1..I13) and {}/follower.csv (id, C1..C26)",
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ListCommands => {
            let mut lines = Vec::new();
            list_commands(&Cli::command(), &mut Vec::new(), &mut lines);
            for l in lines {
                println!("{l}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(b) => {
            init_logging("warn");
            runtime()?.block_on(fedra_bench::run(b, &local::LocalJobs))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
