//! [`DatasetSpec`]: what to read (path, format, id/label/feature columns) and how
//! (missing-value policy, delimiter, duplicate ids, batch size).
//!
//! A spec is usually deserialized from a party's TOML configuration:
//!
//! ```toml
//! path = "data/breast_hetero_guest.csv"   # required
//! format = "csv"               # "csv" | "parquet"; default: inferred from the extension
//!                              # (a CSV file ending in .gz, e.g. .csv.gz, is gunzipped)
//! id_column = "id"             # default "id"
//! label = "y"                  # default: no label
//! features = ["x0", "x1"]      # default: every column except the id and label columns
//! missing = { fill = 0.0 }     # "error" (default) | "mean" | { fill = <number> }
//! delimiter = ","              # one ASCII character; default "," ("\t" for .tsv files)
//! allow_duplicate_ids = false  # default false
//! batch_rows = 65536           # rows per streamed batch; default 65536
//! categorical = ["C1", "C2"]   # text columns kept as strings (e.g. hashed ids); CSV only
//! row_ids = false              # true: the file has no id column; ids are the 0-based row numbers
//! ```
//!
//! **Categorical columns** (e.g. Criteo's hex-hashed `C1..C26`) are read as text,
//! trimmed, and never parsed as numbers; a missing cell (empty, `NA`, ...) is kept as
//! the empty string (whatever the missing policy: a missing category is a value of its
//! own). They are not features: with `features` unset, every column but the id, the
//! label and the categorical ones is a (numeric) feature.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{DataError, Result};

/// Default number of rows per streamed [`Batch`](crate::Batch).
pub const DEFAULT_BATCH_ROWS: usize = 65_536;

/// On-disk format of a dataset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text with a header line (comma-separated by default).
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Infers the format from the file extension (case-insensitive): `.csv`, `.txt` and
    /// `.tsv` are [`Format::Csv`], also gzipped (`.csv.gz`, `.txt.gz`, `.tsv.gz`);
    /// `.parquet` and `.pq` are [`Format::Parquet`].
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = data_extension(path)?;
        match ext.as_str() {
            "csv" | "txt" | "tsv" => Some(Format::Csv),
            "parquet" | "pq" if !is_gzip(path) => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// True if `path` ends in `.gz` (case-insensitive): a gzip-compressed CSV file, read
/// (and written) through gzip.
pub(crate) fn is_gzip(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// The lowercased extension that tells the data format: `csv` for `a.csv` and `a.csv.gz`.
fn data_extension(path: &Path) -> Option<String> {
    let path = if is_gzip(path) {
        Path::new(path.file_stem()?)
    } else {
        path
    };
    Some(path.extension()?.to_str()?.to_ascii_lowercase())
}

/// What to do with a missing feature value.
///
/// In CSV, a field is **missing** when, after trimming surrounding whitespace, it is empty
/// or equals `NA`, `NaN`, `nan` or `null`, compared case-insensitively (so `na`, `NAN`,
/// `Null` count too), or when it parses to a floating-point NaN. In Parquet, a value is
/// missing when it is null or a floating-point NaN.
///
/// The policy applies to feature columns only: a missing id or label is always an error.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// Reject the file with [`DataError::MissingValue`] (TOML: `missing = "error"`).
    #[default]
    Error,
    /// Replace every missing value with this number (TOML: `missing = { fill = 0.0 }`).
    Fill(f64),
    /// Replace a missing value with the mean of the non-missing values of its column
    /// (TOML: `missing = "mean"`). Streaming with [`open`](crate::open) then reads the
    /// file twice (once for the means); [`load`](crate::load) reads it once.
    Mean,
}

fn default_id_column() -> String {
    "id".to_owned()
}

fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}

/// Describes one party's dataset file and how to read it.
///
/// Build it in code with [`DatasetSpec::new`] and the `with_*` methods, or deserialize it
/// (unknown keys are rejected); see the [module docs](self) for the TOML shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// The file to read.
    pub path: PathBuf,
    /// The file format; `None` infers it from the extension (see [`Format::from_path`]).
    #[serde(default)]
    pub format: Option<Format>,
    /// Name of the id column (default `"id"`). Ids are kept as strings.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Name of the label column, if this party holds labels. Labels must be numeric.
    #[serde(default)]
    pub label: Option<String>,
    /// Feature columns to read, in this order; `None` means every column except the id
    /// and label columns, in file order.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// What to do with missing feature values.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// CSV field delimiter, one ASCII character; `None` means `,` (or tab for `.tsv` and
    /// `.tsv.gz`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Accept repeated ids instead of failing with [`DataError::DuplicateId`].
    #[serde(default)]
    pub allow_duplicate_ids: bool,
    /// Maximum number of rows per streamed batch (default [`DEFAULT_BATCH_ROWS`]).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Text (categorical) columns, in this order; CSV only.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// The file has no id column: ids are the 0-based row numbers (`"0"`, `"1"`, ...,
    /// counting data rows, blank lines skipped) and `id_column` only names them.
    #[serde(default)]
    pub row_ids: bool,
}

impl DatasetSpec {
    /// A spec for `path` with every other setting at its default.
    pub fn new(path: impl Into<PathBuf>) -> DatasetSpec {
        DatasetSpec {
            path: path.into(),
            format: None,
            id_column: default_id_column(),
            label: None,
            features: None,
            missing: MissingPolicy::default(),
            delimiter: None,
            allow_duplicate_ids: false,
            batch_rows: DEFAULT_BATCH_ROWS,
            categorical: Vec::new(),
            row_ids: false,
        }
    }

    /// Reads these columns as text (categorical) instead of numbers.
    pub fn with_categorical<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.categorical = names.into_iter().map(Into::into).collect();
        self
    }

    /// Ids are the 0-based row numbers (the file has no id column).
    pub fn with_row_ids(mut self, on: bool) -> Self {
        self.row_ids = on;
        self
    }

    /// Sets the format explicitly.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets the id column name.
    pub fn with_id_column(mut self, name: impl Into<String>) -> Self {
        self.id_column = name.into();
        self
    }

    /// Sets the label column name.
    pub fn with_label(mut self, name: impl Into<String>) -> Self {
        self.label = Some(name.into());
        self
    }

    /// Selects (and orders) the feature columns.
    pub fn with_features<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.features = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the missing-value policy.
    pub fn with_missing(mut self, policy: MissingPolicy) -> Self {
        self.missing = policy;
        self
    }

    /// Sets the CSV delimiter (must be ASCII).
    pub fn with_delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// Allows or forbids repeated ids.
    pub fn with_allow_duplicate_ids(mut self, allow: bool) -> Self {
        self.allow_duplicate_ids = allow;
        self
    }

    /// Sets the maximum rows per streamed batch.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    /// The format to use: the explicit one, else the one inferred from the extension.
    pub fn resolved_format(&self) -> Result<Format> {
        match self.format {
            Some(f) => Ok(f),
            None => Format::from_path(&self.path).ok_or_else(|| DataError::UnknownFormat {
                path: self.path.clone(),
            }),
        }
    }

    /// The CSV delimiter byte: the explicit one, else tab for `.tsv` (`.tsv.gz`) files,
    /// else `,`.
    pub fn resolved_delimiter(&self) -> Result<u8> {
        match self.delimiter {
            Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => Ok(c as u8),
            Some(c) => Err(DataError::InvalidSpec {
                reason: format!(
                    "delimiter must be one ASCII character other than a quote or newline, got {c:?}"
                ),
            }),
            None => {
                let is_tsv = data_extension(&self.path).as_deref() == Some("tsv");
                Ok(if is_tsv { b'\t' } else { b',' })
            }
        }
    }

    /// Checks settings that do not depend on the file's contents.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(DataError::InvalidSpec { reason });
        if self.batch_rows == 0 {
            return invalid("batch_rows must be at least 1".to_owned());
        }
        if self.id_column.is_empty() {
            return invalid("id_column must not be empty".to_owned());
        }
        if let MissingPolicy::Fill(v) = self.missing
            && v.is_nan()
        {
            return invalid("missing fill value must not be NaN".to_owned());
        }
        if self.label.as_deref() == Some(self.id_column.as_str()) {
            return invalid(format!(
                "label column {:?} is also the id column",
                self.id_column
            ));
        }
        if let Some(features) = &self.features {
            let mut seen = std::collections::HashSet::new();
            for f in features {
                if *f == self.id_column {
                    return invalid(format!("feature {f:?} is also the id column"));
                }
                if self.label.as_deref() == Some(f.as_str()) {
                    return invalid(format!("feature {f:?} is also the label column"));
                }
                if !seen.insert(f.as_str()) {
                    return invalid(format!("feature {f:?} is listed twice"));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.categorical {
            if !seen.insert(c.as_str()) {
                return invalid(format!("categorical column {c:?} is listed twice"));
            }
            if *c == self.id_column && !self.row_ids {
                return invalid(format!("categorical column {c:?} is also the id column"));
            }
            if self.label.as_deref() == Some(c.as_str()) {
                return invalid(format!("categorical column {c:?} is also the label column"));
            }
            if self.features.as_ref().is_some_and(|f| f.contains(c)) {
                return invalid(format!(
                    "column {c:?} is listed both as a feature and as categorical"
                ));
            }
        }
        let format = self.resolved_format()?;
        if !self.categorical.is_empty() && format != Format::Csv {
            return invalid("categorical columns can be read from CSV files only".to_owned());
        }
        if self.row_ids && format != Format::Csv {
            return invalid("row_ids can be used with CSV files only".to_owned());
        }
        self.resolved_delimiter()?;
        Ok(())
    }
}

/// True if a (CSV) field counts as missing; see [`MissingPolicy`].
pub(crate) fn is_missing_text(field: &str) -> bool {
    let t = field.trim_ascii();
    t.is_empty()
        || t.eq_ignore_ascii_case("na")
        || t.eq_ignore_ascii_case("nan")
        || t.eq_ignore_ascii_case("null")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.tsv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.txt")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.pq")), Some(Format::Parquet));
        assert_eq!(
            Format::from_path(Path::new("dir/a.parquet")),
            Some(Format::Parquet)
        );
        assert_eq!(Format::from_path(Path::new("a.json")), None);
        assert_eq!(Format::from_path(Path::new("a.csv.gz")), Some(Format::Csv));
        assert_eq!(
            Format::from_path(Path::new("d/a.TSV.GZ")),
            Some(Format::Csv)
        );
        assert_eq!(Format::from_path(Path::new("a.txt.gz")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.parquet.gz")), None);
        assert_eq!(Format::from_path(Path::new("a.gz")), None);
        assert_eq!(Format::from_path(Path::new(".gz")), None);
        assert!(is_gzip(Path::new("a.csv.GZ")));
        assert!(!is_gzip(Path::new("a.csv")));
        assert_eq!(Format::from_path(Path::new("noext")), None);
        let err = DatasetSpec::new("x.json").resolved_format().unwrap_err();
        assert_eq!(err.code(), "unknown_format");
    }

    #[test]
    fn delimiter_defaults() {
        assert_eq!(
            DatasetSpec::new("a.csv").resolved_delimiter().unwrap(),
            b','
        );
        assert_eq!(
            DatasetSpec::new("a.TSV").resolved_delimiter().unwrap(),
            b'\t'
        );
        assert_eq!(
            DatasetSpec::new("a.tsv.gz").resolved_delimiter().unwrap(),
            b'\t'
        );
        assert_eq!(
            DatasetSpec::new("a.csv.gz").resolved_delimiter().unwrap(),
            b','
        );
        assert_eq!(
            DatasetSpec::new("a.tsv")
                .with_delimiter(';')
                .resolved_delimiter()
                .unwrap(),
            b';'
        );
        let err = DatasetSpec::new("a.csv")
            .with_delimiter('é')
            .resolved_delimiter()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_spec");
    }

    #[test]
    fn missing_tokens() {
        for t in [
            "", " ", "NA", "na", "NaN", "nan", "NAN", "null", "NULL", " Null ",
        ] {
            assert!(is_missing_text(t), "{t:?}");
        }
        for t in ["0", "N", "none", "-", "1e3"] {
            assert!(!is_missing_text(t), "{t:?}");
        }
    }

    #[test]
    fn validate_rejects_inconsistent_specs() {
        let base = DatasetSpec::new("a.csv");
        assert!(base.validate().is_ok());
        for bad in [
            base.clone().with_batch_rows(0),
            base.clone().with_label("id"),
            base.clone().with_label("y").with_features(["x", "y"]),
            base.clone().with_features(["id"]),
            base.clone().with_features(["x", "x"]),
            base.clone().with_missing(MissingPolicy::Fill(f64::NAN)),
        ] {
            assert_eq!(
                bad.validate().unwrap_err().code(),
                "invalid_spec",
                "{bad:?}"
            );
        }
    }
}
