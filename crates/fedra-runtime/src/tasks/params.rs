//! What every task kind's parser shares: the [`ParseCtx`] a kind's
//! [`Task::parse`](super::Task::parse) receives (the task's index and name, the
//! job's parties and runtime limits, the job file's folder), and the checks that
//! produce errors naming `tasks[i].field` (ranges, parties, the held-out split keys).

use std::collections::BTreeMap;
use std::path::Path;

use fedra_federation::PartyId;
use serde::de::DeserializeOwned;

use crate::job::{PartySpec, RuntimeSettings};

/// A validation error: the field (e.g. `tasks[1].rounds`) and what is wrong with it.
pub(crate) type FieldError = (String, String);

/// Checks `lo <= v <= hi`, naming `field` otherwise.
pub(crate) fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), FieldError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err((field.to_owned(), format!("must be in {lo}..={hi}, got {v}")))
    }
}

/// What a task kind's parser knows about the task and its job.
pub(crate) struct ParseCtx<'a> {
    /// The task's position in the job (`tasks[i]`).
    pub(crate) index: usize,
    /// The task's name (already validated).
    pub(crate) name: &'a str,
    /// The job's parties.
    pub(crate) parties: &'a BTreeMap<PartyId, PartySpec>,
    /// The job's runtime limits.
    pub(crate) runtime: &'a RuntimeSettings,
}

impl ParseCtx<'_> {
    /// The name of one of the task's fields: `tasks[i].field`.
    pub(crate) fn at(&self, field: &str) -> String {
        format!("tasks[{}].{field}", self.index)
    }

    /// The name of the task as a whole, for errors of no single field: `tasks[i] (name)`.
    pub(crate) fn whole(&self) -> String {
        format!("tasks[{}] ({})", self.index, self.name)
    }

    /// Decodes the task's table (unknown keys and wrong types are errors of the whole task).
    pub(crate) fn decode<T: DeserializeOwned>(&self, table: toml::Table) -> Result<T, FieldError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| (self.whole(), e.message().to_owned()))
    }

    /// Checks that `path` (task field `field`) stays inside the job's folder: relative,
    /// without `..`. For files a task writes (or keys it reads) at a place the shared
    /// job file names: the other organization must not be able to point them
    /// elsewhere on this party's disk.
    pub(crate) fn confined(&self, field: String, path: &Path) -> Result<(), FieldError> {
        use std::path::Component;
        let inside = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if inside && !path.as_os_str().is_empty() {
            Ok(())
        } else {
            Err((
                field,
                "must be a relative path inside the job's folder (no leading '/', no '..')".into(),
            ))
        }
    }

    /// Checks that `party` (named by task field `field`) is in the job and, when
    /// `data_reason` is given, that it has a dataset (the reason is the error message
    /// otherwise, on `parties.<party>.data`).
    pub(crate) fn check_party(
        &self,
        field: String,
        party: &PartyId,
        data_reason: Option<&str>,
    ) -> Result<(), FieldError> {
        match (self.parties.get(party), data_reason) {
            (None, _) => Err((field, format!("{party} is not a party of the job"))),
            (Some(spec), Some(reason)) if spec.data.is_none() => {
                Err((format!("parties.{party}.data"), reason.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Takes the held-out split keys shared by training tasks out of the table:
    /// `holdout` (default 0.2, 0–0.9), `split_seed` (default 42) and `stratify`
    /// (default: the kind decides from its objective).
    pub(crate) fn take_split(&self, table: &mut toml::Table) -> Result<HeldOut, FieldError> {
        let holdout = match table.remove("holdout") {
            None => 0.2,
            Some(toml::Value::Float(f)) => f,
            Some(toml::Value::Integer(n)) => n as f64,
            Some(v) => {
                return Err((
                    self.at("holdout"),
                    format!("must be a number, got {}", v.type_str()),
                ));
            }
        };
        range(&self.at("holdout"), holdout, 0.0, 0.9)?;
        let split_seed = match table.remove("split_seed") {
            None => 42,
            Some(toml::Value::Integer(n)) if n >= 0 => n as u64,
            Some(v) => {
                return Err((
                    self.at("split_seed"),
                    format!("must be a non-negative integer, got {v}"),
                ));
            }
        };
        let stratify = match table.remove("stratify") {
            None => None,
            Some(toml::Value::Boolean(b)) => Some(b),
            Some(v) => {
                return Err((
                    self.at("stratify"),
                    format!("must be true or false, got {v}"),
                ));
            }
        };
        Ok(HeldOut {
            holdout,
            split_seed,
            stratify,
        })
    }
}

/// The held-out split keys of a training task, as given.
pub(crate) struct HeldOut {
    /// Fraction of rows held out.
    pub(crate) holdout: f64,
    /// Seed of the split.
    pub(crate) split_seed: u64,
    /// Whether to stratify, if the job says.
    pub(crate) stratify: Option<bool>,
}
