//! Errors of jobs and of running them.

use std::path::PathBuf;

use fedra_data::DataError;
use fedra_federation::FedError;
use fedra_horizontal::HorizontalError;
use fedra_linear::LinearError;
use fedra_psi::PsiError;
use fedra_splitnn::SplitError;
use fedra_tree::TreeError;

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
    /// An algorithm crate failed (its message and stable code are the crate's).
    #[error(transparent)]
    Algorithm(#[from] AlgorithmError),
    /// The parties disagree (different job files, different data shapes).
    #[error("{0}")]
    Mismatch(String),
    /// This party needs something the job does not give it.
    #[error("{0}")]
    Setup(String),
    /// A file an algorithm crate reads as bytes (the RSA signature cache) is corrupt
    /// or belongs to another key; the crate's code, the file's name.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What the algorithm crate found wrong with its content (boxed: rare and
        /// large, it should not grow every `Result<_, TaskError>`).
        source: Box<AlgorithmError>,
    },
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
            TaskError::Algorithm(e) => e.code().to_owned(),
            TaskError::InFile { source, .. } => source.code().to_owned(),
            TaskError::Mismatch(_) => "task.mismatch".into(),
            TaskError::Setup(_) => "task.setup".into(),
            TaskError::Output { .. } => "task.output".into(),
        }
    }

    /// The public form of this error: what a failed party tells its peers. It says
    /// which kind of failure happened where (the code, and a category naming the
    /// party whose input or setup failed) and never carries the local detail: no ids,
    /// values, labels, column names or paths. The full text stays in the party's own
    /// log and report ([`std::fmt::Display`]).
    pub fn public_message(&self, me: &str) -> String {
        match self {
            TaskError::Data(_) => format!(
                "data error in party '{me}''s own input; the file, line and column are in its own log"
            ),
            // Channel errors are about the parties and the messages between them
            // (names, tags, sizes, timeouts), never about data.
            TaskError::Fed(FedError::Transport(_)) => format!(
                "party '{me}' has a local transport problem; the details are in its own log"
            ),
            TaskError::Fed(e) => e.to_string(),
            TaskError::Algorithm(_) => {
                format!("the protocol failed at party '{me}'; the details are in its own log")
            }
            TaskError::InFile { .. } => {
                format!("a local file of party '{me}' is unusable; the details are in its own log")
            }
            // The parties' disagreements (job digests, shapes, schedules) are about
            // the shared job, which both sides hold.
            TaskError::Mismatch(m) => m.clone(),
            TaskError::Setup(_) => {
                format!("party '{me}' is not set up for this task; the details are in its own log")
            }
            TaskError::Output { .. } => {
                format!("party '{me}' could not write its outputs; the details are in its own log")
            }
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

/// The error of an algorithm crate, kept whole: [`AlgorithmError::code`] is the
/// crate's stable code (`psi.*`, `linear.*`, `tree.*`, `horizontal.*`, `splitnn.*`).
///
/// Federation errors inside them become [`TaskError::Fed`] (so that a peer's failure
/// is recognised as such), except in horizontal learning, whose errors are kept
/// whole; split-NN mismatches become [`TaskError::Mismatch`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlgorithmError {
    /// Private set intersection (`fedra-psi`).
    #[error(transparent)]
    Psi(#[from] PsiError),
    /// Vertical linear models (`fedra-linear`).
    #[error(transparent)]
    Linear(#[from] LinearError),
    /// SecureBoost (`fedra-tree`).
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Horizontal learning (`fedra-horizontal`).
    #[error(transparent)]
    Horizontal(#[from] HorizontalError),
    /// Split neural networks (`fedra-splitnn`).
    #[error(transparent)]
    Splitnn(#[from] SplitError),
}

impl AlgorithmError {
    /// The algorithm crate's stable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            AlgorithmError::Psi(e) => e.code(),
            AlgorithmError::Linear(e) => e.code(),
            AlgorithmError::Tree(e) => e.code(),
            AlgorithmError::Horizontal(e) => e.code(),
            AlgorithmError::Splitnn(e) => e.code(),
        }
    }
}

impl From<PsiError> for TaskError {
    fn from(e: PsiError) -> Self {
        match e {
            PsiError::Fed(f) => TaskError::Fed(f),
            other => AlgorithmError::Psi(other).into(),
        }
    }
}

impl From<LinearError> for TaskError {
    fn from(e: LinearError) -> Self {
        match e {
            LinearError::Fed(f) => TaskError::Fed(f),
            other => AlgorithmError::Linear(other).into(),
        }
    }
}

impl From<TreeError> for TaskError {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::Fed(f) => TaskError::Fed(f),
            other => AlgorithmError::Tree(other).into(),
        }
    }
}

impl From<HorizontalError> for TaskError {
    fn from(e: HorizontalError) -> Self {
        AlgorithmError::Horizontal(e).into()
    }
}

impl From<SplitError> for TaskError {
    fn from(e: SplitError) -> Self {
        match e {
            SplitError::Fed(f) => TaskError::Fed(f),
            SplitError::Mismatch { .. } => TaskError::Mismatch(e.to_string()),
            other => AlgorithmError::Splitnn(other).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn algorithm_errors_keep_their_crate_code_and_message() {
        let e = TaskError::from(PsiError::Align { detail: "r".into() });
        assert!(matches!(e, TaskError::Algorithm(AlgorithmError::Psi(_))));
        assert_eq!(e.code(), "psi.align");
        let e = TaskError::from(LinearError::Model("m".into()));
        assert_eq!(e.code(), "linear.model");
        assert!(e.to_string().contains('m'));
        let e = TaskError::from(TreeError::Model("m".into()));
        assert_eq!(e.code(), "tree.model");
        let e = TaskError::from(SplitError::Data("d".into()));
        assert_eq!(e.code(), "splitnn.data");
        let fed = FedError::PeerFailed(fedra_federation::Failure {
            party: "p".into(),
            task: "t".into(),
            round: None,
            code: "x".into(),
            message: "m".into(),
        });
        assert!(TaskError::from(PsiError::Fed(fed)).is_from_peer());
    }

    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<TaskError>();
    }
}
