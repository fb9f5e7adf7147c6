//! Fedra jobs: the declarative job file ([`job`]), a party's own config
//! ([`config`]), the per-party runner ([`runner`]) and the report ([`report`]).
//!
//! The runner talks to peers only through [`fedra_federation::Channel`], so the same
//! job runs in memory in tests and over mutually authenticated gRPC in production:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use fedra_federation::mem::MemNetwork;
//! use fedra_runtime::{job::Job, runner::{run_party, PartyContext}, report::Status};
//!
//! let job = Job::parse(r#"
//!     [job]
//!     id = "demo"
//!     [parties.guest]
//!     role = "guest"
//!     [parties.host]
//!     role = "host"
//!     [[tasks]]
//!     name = "ping"
//!     kind = "echo"
//!     rounds = 3
//!     payload_bytes = 1024
//! "#, std::path::Path::new("job.toml"))?;
//! let ids = job.party_ids();
//! let mut net = MemNetwork::new(&job.id, &ids);
//! let (g, h) = (net.take(&ids[0])?, net.take(&ids[1])?);
//! let events = |_| {};
//! let ctx = |me| PartyContext { job: &job, me, data: None, out_dir: std::env::temp_dir(), events: &events };
//! let (cg, ch) = (ctx(ids[0].clone()), ctx(ids[1].clone()));
//! let (rg, rh) = tokio::join!(run_party(&cg, &g), run_party(&ch, &h));
//! assert_eq!(rg.status, Status::Succeeded);
//! assert_eq!(rh.tasks[0].status, Status::Succeeded);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod config;
pub mod error;
pub mod job;
pub mod report;
pub mod runner;
pub mod tasks;

pub use error::{JobError, TaskError};
