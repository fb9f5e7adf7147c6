//! The crate's error type, [`DataError`], and the [`Location`] and [`ColumnRole`] types
//! that its variants use to say exactly where and why input was rejected.
//!
//! Every variant carries structured fields (file, line or row, 1-based column index and
//! column name where they apply) so callers can act on them without parsing messages,
//! and [`DataError::code`] returns a stable machine-readable code per variant.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Where in a file a record sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// A CSV line, 1-based; the header is line 1. For a record whose quoted fields span
    /// several lines, this is the line where the record starts.
    Line(u64),
    /// A Parquet row: `row` is the 0-based data-row index within the whole file and
    /// `row_group` the 0-based row group that holds it.
    Row {
        /// 0-based row index within the file.
        row: u64,
        /// 0-based index of the row group holding the row.
        row_group: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Row { row, row_group } => {
                write!(f, "row index {row} (row group {row_group})")
            }
        }
    }
}

/// Which role a column was requested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnRole {
    /// The id column (`id_column`).
    Id,
    /// The label column (`label`).
    Label,
    /// A requested feature column (`features`).
    Feature,
}

impl fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnRole::Id => "id",
            ColumnRole::Label => "label",
            ColumnRole::Feature => "feature",
        })
    }
}

/// Everything that can go wrong while reading or writing a dataset.
///
/// Column indices (`column`) are 1-based positions in the file's header (CSV) or schema
/// (Parquet); `column_name` is the header/schema name at that position.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// No format was given and the file extension does not reveal one.
    #[error(
        "{}: cannot infer the format from the file extension (expected .csv, .txt, .tsv, .parquet or .pq; .csv.gz, .txt.gz or .tsv.gz for gzipped CSV); set `format`",
        path.display()
    )]
    UnknownFormat {
        /// The file involved.
        path: PathBuf,
    },

    /// The [`DatasetSpec`](crate::DatasetSpec) is inconsistent (e.g. the label is also
    /// listed as a feature, or `batch_rows` is 0).
    #[error("invalid dataset spec: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },

    /// The file holds no header (it is empty or contains only blank lines).
    #[error("{}: file is empty: no header line found", path.display())]
    EmptyFile {
        /// The file involved.
        path: PathBuf,
    },

    /// Two header columns have the same name.
    #[error(
        "{}: duplicate column name {name:?} in header (columns {first} and {second})",
        path.display()
    )]
    DuplicateColumn {
        /// The file involved.
        path: PathBuf,
        /// The repeated name.
        name: String,
        /// 1-based index of the first occurrence.
        first: usize,
        /// 1-based index of the second occurrence.
        second: usize,
    },

    /// A requested column is not in the header.
    #[error(
        "{}: {role} column {name:?} not found; available columns: {}",
        path.display(),
        available.join(", ")
    )]
    ColumnNotFound {
        /// The file involved.
        path: PathBuf,
        /// The role the column was requested for.
        role: ColumnRole,
        /// The requested name.
        name: String,
        /// The columns the file does have, in order.
        available: Vec<String>,
    },

    /// A column has a type that cannot be read in the role requested (Parquet).
    #[error(
        "{}: column {column} ({column_name:?}) has unsupported type {data_type} for a {role} column",
        path.display()
    )]
    UnsupportedColumnType {
        /// The file involved.
        path: PathBuf,
        /// 1-based column index.
        column: usize,
        /// Column name.
        column_name: String,
        /// The role the column was requested for.
        role: ColumnRole,
        /// The column's type, as text, named as Arrow would infer it from the Parquet
        /// schema (e.g. `Date32`, `Binary`, `Decimal128(10, 2)`).
        data_type: String,
    },

    /// A CSV record has a different number of fields than the header.
    #[error(
        "{}: {at}: wrong number of fields: expected {expected} (as in the header), found {found}",
        path.display()
    )]
    RaggedRow {
        /// The file involved.
        path: PathBuf,
        /// Where the record starts.
        at: Location,
        /// Number of header columns.
        expected: usize,
        /// Number of fields in the record.
        found: usize,
    },

    /// A feature or label value is not a number.
    #[error(
        "{}: {at}, column {column} ({column_name:?}): not a number: {text:?}",
        path.display()
    )]
    NotNumeric {
        /// The file involved.
        path: PathBuf,
        /// Where the record is.
        at: Location,
        /// 1-based column index.
        column: usize,
        /// Column name.
        column_name: String,
        /// The offending text, truncated to 40 characters (with a trailing `…`).
        text: String,
    },

    /// A feature or label value is a number too large for `f64` or infinite (`inf`,
    /// `-Infinity`, `1e400`, a number with thousands of digits): refused at load, since
    /// every model downstream would silently train on it.
    #[error(
        "{}: {at}, column {column} ({column_name:?}): not a finite number: {text:?}",
        path.display()
    )]
    NonFinite {
        /// The file involved.
        path: PathBuf,
        /// Where the record is.
        at: Location,
        /// 1-based column index.
        column: usize,
        /// Column name.
        column_name: String,
        /// The offending text, truncated to 40 characters (with a trailing `…`).
        text: String,
    },

    /// The file has a header but no data rows.
    #[error("{}: the file has a header but no data rows", path.display())]
    NoRows {
        /// The file involved.
        path: PathBuf,
    },

    /// A value is missing where none may be: a feature under
    /// [`MissingPolicy::Error`](crate::MissingPolicy::Error), or any id or label.
    #[error(
        "{}: {at}, column {column} ({column_name:?}): missing value{}",
        path.display(),
        match role {
            ColumnRole::Feature => " (missing policy is `error`)",
            ColumnRole::Label => " (labels may not be missing)",
            ColumnRole::Id => " (ids may not be missing)",
        }
    )]
    MissingValue {
        /// The file involved.
        path: PathBuf,
        /// Where the record is.
        at: Location,
        /// 1-based column index.
        column: usize,
        /// Column name.
        column_name: String,
        /// The role of the column.
        role: ColumnRole,
    },

    /// Under [`MissingPolicy::Mean`](crate::MissingPolicy::Mean), a feature column has no
    /// value at all, so it has no mean to fill with.
    #[error(
        "{}: column {column} ({column_name:?}) has no non-missing value, so its mean is undefined",
        path.display()
    )]
    NoValuesForMean {
        /// The file involved.
        path: PathBuf,
        /// 1-based column index.
        column: usize,
        /// Column name.
        column_name: String,
    },

    /// The same id appears twice (and `allow_duplicate_ids` is false).
    #[error("{}: duplicate id {id:?} at {first} and {second}", path.display())]
    DuplicateId {
        /// The file involved.
        path: PathBuf,
        /// The repeated id.
        id: String,
        /// Where it first appeared.
        first: Location,
        /// Where it appeared again.
        second: Location,
    },

    /// A field (or the header) is not valid UTF-8.
    #[error(
        "{}: {at}{}: invalid UTF-8",
        path.display(),
        match (column, column_name) {
            (Some(c), Some(n)) => format!(", column {c} ({n:?})"),
            (Some(c), None) => format!(", column {c}"),
            _ => String::new(),
        }
    )]
    InvalidUtf8 {
        /// The file involved.
        path: PathBuf,
        /// Where the record is.
        at: Location,
        /// 1-based column index of the bad field, when known.
        column: Option<usize>,
        /// Name of that column, when known (not for the header itself).
        column_name: Option<String>,
    },

    /// Any other CSV parsing error reported by the `csv` crate.
    #[error("{}: {}CSV error: {message}", path.display(), at.map(|a| format!("{a}: ")).unwrap_or_default())]
    Csv {
        /// The file involved.
        path: PathBuf,
        /// Where, when known.
        at: Option<Location>,
        /// The `csv` crate's message.
        message: String,
    },

    /// An error from the Parquet library (corrupt file, unsupported encoding, …).
    #[error("{}: Parquet error{}: {source}", path.display(), context.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Parquet {
        /// The file involved.
        path: PathBuf,
        /// What was being done, e.g. a row group, when known.
        context: Option<String>,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A [`Dataset`](crate::Dataset) was built from inconsistent parts, or a row index is
    /// out of range.
    #[error("invalid dataset: {reason}")]
    InvalidDataset {
        /// What is wrong.
        reason: String,
    },
}

impl DataError {
    /// A stable, machine-readable code for the variant (never changes between releases).
    pub fn code(&self) -> &'static str {
        match self {
            DataError::Io { .. } => "io",
            DataError::UnknownFormat { .. } => "unknown_format",
            DataError::InvalidSpec { .. } => "invalid_spec",
            DataError::EmptyFile { .. } => "empty_file",
            DataError::DuplicateColumn { .. } => "duplicate_column",
            DataError::ColumnNotFound { .. } => "column_not_found",
            DataError::UnsupportedColumnType { .. } => "unsupported_column_type",
            DataError::RaggedRow { .. } => "ragged_row",
            DataError::NotNumeric { .. } => "not_numeric",
            DataError::NonFinite { .. } => "non_finite",
            DataError::NoRows { .. } => "no_rows",
            DataError::MissingValue { .. } => "missing_value",
            DataError::NoValuesForMean { .. } => "no_values_for_mean",
            DataError::DuplicateId { .. } => "duplicate_id",
            DataError::InvalidUtf8 { .. } => "invalid_utf8",
            DataError::Csv { .. } => "csv",
            DataError::Parquet { .. } => "parquet",
            DataError::InvalidDataset { .. } => "invalid_dataset",
        }
    }
}

/// Truncates `text` to at most 40 characters, appending `…` when something was cut.
pub(crate) fn truncate_text(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        None => text.to_owned(),
        Some((byte, _)) => format!("{}…", &text[..byte]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_text("abc"), "abc");
        let long: String = "é".repeat(45);
        let t = truncate_text(&long);
        assert_eq!(t.chars().count(), 41);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_text(&"x".repeat(40)), "x".repeat(40));
    }

    #[test]
    fn location_display() {
        assert_eq!(Location::Line(3).to_string(), "line 3");
        assert_eq!(
            Location::Row {
                row: 7,
                row_group: 1
            }
            .to_string(),
            "row index 7 (row group 1)"
        );
    }
}
