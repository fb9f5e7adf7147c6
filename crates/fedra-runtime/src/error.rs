//! Errors of jobs and of running them.

use std::path::PathBuf;

use fedra_data::DataError;
use fedra_federation::FedError;

/// A job or party config file that cannot be used. Raised before any work starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field of the wrong type or name (the message has line and column).
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value outside what is allowed.
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `tasks[1].rounds`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl JobError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::Read { .. } => "job.read",
            JobError::Syntax { .. } => "job.syntax",
            JobError::Invalid { .. } => "job.invalid",
        }
    }
}

/// Why a task failed on this party.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// Reading this party's data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The federation failed (a peer failed or vanished, a refusal, a timeout).
    #[error(transparent)]
    Fed(#[from] FedError),
    /// Private set intersection failed (code and message from `fedra-psi`).
    #[error("{1}")]
    Psi(&'static str, String),
    /// The parties disagree (different job files, different data shapes).
    #[error("{0}")]
    Mismatch(String),
    /// This party needs something the job does not give it.
    #[error("{0}")]
    Setup(String),
    /// Writing results failed.
    #[error("{}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl TaskError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> String {
        match self {
            TaskError::Data(e) => format!("data.{}", e.code()),
            TaskError::Fed(e) => e.code().to_owned(),
            TaskError::Psi(code, _) => (*code).to_owned(),
            TaskError::Mismatch(_) => "task.mismatch".into(),
            TaskError::Setup(_) => "task.setup".into(),
            TaskError::Output { .. } => "task.output".into(),
        }
    }

    /// Whether the error came from another party (so this party need not tell its peers).
    pub fn is_from_peer(&self) -> bool {
        matches!(
            self,
            TaskError::Fed(FedError::PeerFailed(_) | FedError::PeerLost { .. })
        )
    }
}
