//! Streaming: [`open`] a dataset file as a [`BatchReader`], an iterator of [`Batch`]es of
//! at most `batch_rows` rows each, so files larger than memory can be processed.
//!
//! Only the current batch and (unless `allow_duplicate_ids` is set) the set of ids seen
//! so far are held in memory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use crate::error::{ColumnRole, DataError, Location, Result};
use crate::spec::{DatasetSpec, Format, MissingPolicy};
use crate::{csv_io, parquet_io};

/// Up to `batch_rows` consecutive rows of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Row ids, as written in the file.
    pub ids: Vec<String>,
    /// Labels, one per row, when the spec names a label column.
    pub labels: Option<Vec<f64>>,
    /// Feature values, row-major: row `i` is `features[i * n_features..(i + 1) * n_features]`.
    /// Never NaN: missing values have been handled by the [`MissingPolicy`].
    pub features: Vec<f64>,
    /// Number of features per row.
    pub n_features: usize,
    /// Categorical values, row-major (`n_categorical` per row; empty = missing).
    pub categorical: Vec<String>,
    /// 0-based index, within the whole file, of this batch's first row.
    pub first_row_index: usize,
}

impl Batch {
    /// Number of rows in the batch.
    pub fn n_rows(&self) -> usize {
        self.ids.len()
    }

    /// The features of row `i` of this batch.
    ///
    /// # Panics
    /// If `i >= self.n_rows()`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }
}

/// How missing feature values are resolved inside a reader.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fill {
    /// Fail with [`DataError::MissingValue`].
    Error,
    /// Same value for every column.
    Const(f64),
    /// One value per selected feature (column means).
    PerFeature(Vec<f64>),
    /// Keep NaN as a placeholder (first pass of the mean policy).
    Nan,
}

/// A selected column: its 1-based index in the file and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Col {
    /// 0-based index in the header / schema.
    pub index: usize,
    /// Column name.
    pub name: String,
}

impl Col {
    /// 1-based column number used in errors.
    pub fn number(&self) -> usize {
        // `row_ids` selections use an index past any header for the id.
        self.index.saturating_add(1)
    }
}

/// The columns a spec selects from a header.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    /// The id column (`None` with `row_ids`: ids are row numbers).
    pub id: Col,
    pub row_ids: bool,
    pub label: Option<Col>,
    pub features: Vec<Col>,
    pub categorical: Vec<Col>,
}

/// Resolves the spec's id, label and feature names against a header.
pub(crate) fn select_columns(
    path: &Path,
    header: &[String],
    spec: &DatasetSpec,
) -> Result<Selection> {
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        if let Some(first) = by_name.insert(name.as_str(), i) {
            return Err(DataError::DuplicateColumn {
                path: path.to_path_buf(),
                name: name.clone(),
                first: first + 1,
                second: i + 1,
            });
        }
    }
    let find = |name: &str, role: ColumnRole| -> Result<Col> {
        match by_name.get(name) {
            Some(&index) => Ok(Col {
                index,
                name: name.to_owned(),
            }),
            None => Err(DataError::ColumnNotFound {
                path: path.to_path_buf(),
                role,
                name: name.to_owned(),
                available: header.to_vec(),
            }),
        }
    };
    let id = if spec.row_ids {
        // No id column in the file: an index past the header, never read.
        Col {
            index: usize::MAX,
            name: spec.id_column.clone(),
        }
    } else {
        find(&spec.id_column, ColumnRole::Id)?
    };
    let label = match &spec.label {
        Some(name) => Some(find(name, ColumnRole::Label)?),
        None => None,
    };
    let categorical = spec
        .categorical
        .iter()
        .map(|n| find(n, ColumnRole::Feature))
        .collect::<Result<Vec<_>>>()?;
    let features = match &spec.features {
        Some(names) => names
            .iter()
            .map(|n| find(n, ColumnRole::Feature))
            .collect::<Result<Vec<_>>>()?,
        None => header
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                *i != id.index
                    && label.as_ref().is_none_or(|l| l.index != *i)
                    && categorical.iter().all(|c| c.index != *i)
            })
            .map(|(index, name)| Col {
                index,
                name: name.clone(),
            })
            .collect(),
    };
    Ok(Selection {
        id,
        row_ids: spec.row_ids,
        label,
        features,
        categorical,
    })
}

/// State shared by the CSV and Parquet sources: missing-value handling and the
/// duplicate-id check.
#[derive(Debug)]
pub(crate) struct Common {
    pub path: PathBuf,
    pub selection: Selection,
    pub fill: Fill,
    seen_ids: Option<HashMap<String, Location>>,
}

impl Common {
    /// An infinite value (or a number too large for `f64`) in `col` at `at`: refused at
    /// load, in every format; `text` is the cell as written (truncated).
    pub fn non_finite(&self, col: &Col, at: Location, text: &str) -> DataError {
        DataError::NonFinite {
            path: self.path.clone(),
            at,
            column: col.number(),
            column_name: col.name.clone(),
            text: crate::error::truncate_text(text),
        }
    }

    pub fn new(path: PathBuf, selection: Selection, fill: Fill, check_ids: bool) -> Common {
        Common {
            path,
            selection,
            fill,
            seen_ids: check_ids.then(HashMap::new),
        }
    }

    /// Records `id` at `at`, failing if it was seen before.
    pub fn check_id(&mut self, id: &str, at: Location) -> Result<()> {
        let Some(seen) = &mut self.seen_ids else {
            return Ok(());
        };
        match seen.entry(id.to_owned()) {
            Entry::Vacant(v) => {
                v.insert(at);
                Ok(())
            }
            Entry::Occupied(o) => Err(DataError::DuplicateId {
                path: self.path.clone(),
                id: id.to_owned(),
                first: *o.get(),
                second: at,
            }),
        }
    }

    /// The value to use for a missing feature `j` (index into the selected features).
    #[inline]
    pub fn missing_feature(&self, j: usize, at: Location) -> Result<f64> {
        match &self.fill {
            Fill::Const(v) => Ok(*v),
            Fill::PerFeature(vs) => Ok(vs[j]),
            Fill::Nan => Ok(f64::NAN),
            Fill::Error => Err(self.missing(&self.selection.features[j], ColumnRole::Feature, at)),
        }
    }

    /// A [`DataError::MissingValue`] for `col`.
    pub fn missing(&self, col: &Col, role: ColumnRole, at: Location) -> DataError {
        DataError::MissingValue {
            path: self.path.clone(),
            at,
            column: col.number(),
            column_name: col.name.clone(),
            role,
        }
    }
}

/// The format-specific part of a reader.
// The CSV reader embeds its I/O buffer; both variants are long-lived, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
enum Source {
    Csv(csv_io::CsvSource),
    Parquet(parquet_io::ParquetSource),
}

/// An iterator over the [`Batch`]es of a dataset file; see [`open`].
///
/// After the first error the iterator is exhausted (it returns `None`).
pub struct BatchReader {
    source: Source,
    common: Common,
    format: Format,
    id_column: String,
    label_name: Option<String>,
    feature_names: Vec<String>,
    batch_rows: usize,
    next_row: usize,
    done: bool,
}

impl std::fmt::Debug for BatchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchReader")
            .field("path", &self.common.path)
            .field("format", &self.format)
            .field("feature_names", &self.feature_names)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl BatchReader {
    /// Opens `spec.path`, reads its header/schema and resolves the selected columns, with
    /// the given missing-value handling.
    pub(crate) fn with_fill(spec: &DatasetSpec, fill: Fill, check_ids: bool) -> Result<Self> {
        spec.validate()?;
        let format = spec.resolved_format()?;
        let (source, common) = match format {
            Format::Csv => {
                let (s, c) = csv_io::CsvSource::open(spec, fill, check_ids)?;
                (Source::Csv(s), c)
            }
            Format::Parquet => {
                let (s, c) = parquet_io::ParquetSource::open(spec, fill, check_ids)?;
                (Source::Parquet(s), c)
            }
        };
        let sel = &common.selection;
        Ok(BatchReader {
            format,
            id_column: sel.id.name.clone(),
            label_name: sel.label.as_ref().map(|c| c.name.clone()),
            feature_names: sel.features.iter().map(|c| c.name.clone()).collect(),
            source,
            common,
            batch_rows: spec.batch_rows,
            next_row: 0,
            done: false,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.common.path
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Name of the id column.
    pub fn id_column(&self) -> &str {
        &self.id_column
    }

    /// Name of the label column, if one was requested.
    pub fn label_name(&self) -> Option<&str> {
        self.label_name.as_deref()
    }

    /// Names of the selected features, in the order of each batch's row layout.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Number of selected features.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Names of the categorical columns, in the order of each batch's row layout.
    pub fn categorical_names(&self) -> Vec<String> {
        self.common
            .selection
            .categorical
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The shared reader state.
    pub(crate) fn common(&self) -> &Common {
        &self.common
    }

    /// Number of rows returned so far.
    pub fn rows_read(&self) -> usize {
        self.next_row
    }
}

impl Iterator for BatchReader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.done {
            return None;
        }
        let res = match &mut self.source {
            Source::Csv(s) => s.next_batch(&mut self.common, self.batch_rows),
            Source::Parquet(s) => s.next_batch(&mut self.common, self.batch_rows),
        };
        match res {
            Ok(Some(mut batch)) => {
                batch.first_row_index = self.next_row;
                self.next_row += batch.n_rows();
                Some(Ok(batch))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for BatchReader {}

/// Opens a dataset for streaming.
///
/// The header (CSV) or schema (Parquet) is read and checked at once, so a missing id,
/// label or feature column is reported here; row-level problems are reported by the batch
/// that contains them. With [`MissingPolicy::Mean`] the whole file is read once here to
/// compute the column means (any row-level error then surfaces from `open`).
pub fn open(spec: &DatasetSpec) -> Result<BatchReader> {
    let fill = match spec.missing {
        MissingPolicy::Error => Fill::Error,
        MissingPolicy::Fill(v) => Fill::Const(v),
        MissingPolicy::Mean => {
            // First pass: means over non-missing values (ids are checked in the second pass).
            let mut reader = BatchReader::with_fill(spec, Fill::Nan, false)?;
            let mut acc = MeanAccumulator::new(reader.n_features());
            for batch in reader.by_ref() {
                acc.add(&batch?);
            }
            Fill::PerFeature(acc.means(&reader.common)?)
        }
    };
    BatchReader::with_fill(spec, fill, !spec.allow_duplicate_ids)
}

/// Sums and counts of non-NaN values per feature.
#[derive(Debug)]
pub(crate) struct MeanAccumulator {
    sums: Vec<f64>,
    counts: Vec<u64>,
    missing: Vec<u64>,
}

impl MeanAccumulator {
    pub fn new(n_features: usize) -> Self {
        MeanAccumulator {
            sums: vec![0.0; n_features],
            counts: vec![0; n_features],
            missing: vec![0; n_features],
        }
    }

    /// Adds row-major `features` (NaN = missing).
    pub fn add_rows(&mut self, features: &[f64]) {
        let n = self.sums.len();
        if n == 0 {
            return;
        }
        for row in features.chunks_exact(n) {
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    self.missing[j] += 1;
                } else {
                    self.sums[j] += v;
                    self.counts[j] += 1;
                }
            }
        }
    }

    pub fn add(&mut self, batch: &Batch) {
        self.add_rows(&batch.features);
    }

    /// The means, or an error naming the first column that has missing values but no
    /// value at all. (A column without any row gets 0, which is never used.)
    pub fn means(&self, common: &Common) -> Result<Vec<f64>> {
        self.sums
            .iter()
            .zip(&self.counts)
            .enumerate()
            .map(|(j, (&s, &c))| {
                if c == 0 && self.missing[j] > 0 {
                    let col = &common.selection.features[j];
                    Err(DataError::NoValuesForMean {
                        path: common.path.clone(),
                        column: col.number(),
                        column_name: col.name.clone(),
                    })
                } else if c == 0 {
                    Ok(0.0)
                } else {
                    Ok(s / c as f64)
                }
            })
            .collect()
    }
}
