//! [`Dataset`]: a whole dataset in memory (ids, optional labels, row-major features), and
//! [`load`], which reads one from a [`DatasetSpec`].

use std::collections::HashSet;

use crate::batch::{BatchReader, Fill, MeanAccumulator};
use crate::error::{DataError, Result};
use crate::spec::{DatasetSpec, MissingPolicy};

/// A dataset held in memory: one id per row, optional numeric labels, and a dense
/// row-major matrix of `f64` features.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    id_column: String,
    ids: Vec<String>,
    label_name: Option<String>,
    labels: Option<Vec<f64>>,
    feature_names: Vec<String>,
    features: Vec<f64>,
    /// Names of the categorical (text) columns.
    categorical_names: Vec<String>,
    /// Categorical values, row-major; empty = missing.
    categorical: Vec<String>,
}

fn invalid(reason: String) -> DataError {
    DataError::InvalidDataset { reason }
}

impl Dataset {
    /// Builds a dataset from its parts, checking that they fit together: `features` has
    /// `ids.len() * feature_names.len()` values (row-major), labels (if any) have one value
    /// per row, and column names are distinct.
    pub fn new(
        id_column: impl Into<String>,
        ids: Vec<String>,
        label: Option<(String, Vec<f64>)>,
        feature_names: Vec<String>,
        features: Vec<f64>,
    ) -> Result<Dataset> {
        let id_column = id_column.into();
        let n_rows = ids.len();
        if features.len() != n_rows * feature_names.len() {
            return Err(invalid(format!(
                "{} feature values for {n_rows} rows × {} features",
                features.len(),
                feature_names.len()
            )));
        }
        let mut names = HashSet::new();
        names.insert(id_column.as_str());
        if let Some((name, labels)) = &label {
            if labels.len() != n_rows {
                return Err(invalid(format!(
                    "{} labels for {n_rows} rows",
                    labels.len()
                )));
            }
            if !names.insert(name.as_str()) {
                return Err(invalid(format!("column name {name:?} used twice")));
            }
        }
        for name in &feature_names {
            if !names.insert(name.as_str()) {
                return Err(invalid(format!("column name {name:?} used twice")));
            }
        }
        let (label_name, labels) = match label {
            Some((n, l)) => (Some(n), Some(l)),
            None => (None, None),
        };
        Ok(Dataset {
            id_column,
            ids,
            label_name,
            labels,
            feature_names,
            features,
            categorical_names: Vec::new(),
            categorical: Vec::new(),
        })
    }

    /// Adds categorical (text) columns: `values` row-major, `names.len()` per row,
    /// the empty string for a missing value. Names must differ from every other column.
    pub fn with_categorical(mut self, names: Vec<String>, values: Vec<String>) -> Result<Dataset> {
        if values.len() != self.n_rows() * names.len() {
            return Err(invalid(format!(
                "{} categorical values for {} rows × {} columns",
                values.len(),
                self.n_rows(),
                names.len()
            )));
        }
        let mut seen: HashSet<&str> = self.feature_names.iter().map(String::as_str).collect();
        seen.insert(self.id_column.as_str());
        if let Some(l) = &self.label_name {
            seen.insert(l.as_str());
        }
        for n in &names {
            if !seen.insert(n.as_str()) {
                return Err(invalid(format!("column name {n:?} used twice")));
            }
        }
        self.categorical_names = names;
        self.categorical = values;
        Ok(self)
    }

    /// Names of the categorical columns.
    pub fn categorical_names(&self) -> &[String] {
        &self.categorical_names
    }

    /// Number of categorical columns.
    pub fn n_categorical(&self) -> usize {
        self.categorical_names.len()
    }

    /// The categorical values of row `i` (empty = missing); empty if out of range.
    pub fn categorical_row(&self, i: usize) -> &[String] {
        let n = self.n_categorical();
        self.categorical.get(i * n..(i + 1) * n).unwrap_or(&[])
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.ids.len()
    }

    /// Number of features per row.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Name of the id column.
    pub fn id_column(&self) -> &str {
        &self.id_column
    }

    /// Row ids, in file order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Name of the label column, if the dataset has labels.
    pub fn label_name(&self) -> Option<&str> {
        self.label_name.as_deref()
    }

    /// Labels, one per row, if the dataset has labels.
    pub fn labels(&self) -> Option<&[f64]> {
        self.labels.as_deref()
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// All feature values, row-major.
    pub fn features(&self) -> &[f64] {
        &self.features
    }

    /// The features of row `i`.
    ///
    /// # Panics
    /// If `i >= self.n_rows()`.
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.n_features();
        &self.features[i * n..(i + 1) * n]
    }

    /// Iterates over the values of feature `j`, top to bottom.
    ///
    /// # Panics
    /// If `j >= self.n_features()`.
    pub fn column(&self, j: usize) -> impl ExactSizeIterator<Item = f64> + '_ {
        let n = self.n_features();
        assert!(j < n, "feature index {j} out of range ({n} features)");
        (0..self.n_rows()).map(move |i| self.features[i * n + j])
    }

    /// Index of the feature called `name`.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }

    /// A new dataset holding rows `indices`, in that order (repeats allowed), e.g. to
    /// align parties on a common id order.
    pub fn select_rows(&self, indices: &[usize]) -> Result<Dataset> {
        let n = self.n_features();
        let n_rows = self.n_rows();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n_rows) {
            return Err(invalid(format!(
                "row index {bad} out of range ({n_rows} rows)"
            )));
        }
        let mut features = Vec::with_capacity(indices.len() * n);
        let mut categorical = Vec::with_capacity(indices.len() * self.n_categorical());
        for &i in indices {
            features.extend_from_slice(self.row(i));
            categorical.extend_from_slice(self.categorical_row(i));
        }
        Ok(Dataset {
            id_column: self.id_column.clone(),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            label_name: self.label_name.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            feature_names: self.feature_names.clone(),
            features,
            categorical_names: self.categorical_names.clone(),
            categorical,
        })
    }

    /// Consumes the dataset, returning `(ids, labels, features)`.
    pub fn into_parts(self) -> (Vec<String>, Option<Vec<f64>>, Vec<f64>) {
        (self.ids, self.labels, self.features)
    }
}

/// Reads a whole dataset into memory (see [`open`](crate::open) for streaming).
///
/// With [`MissingPolicy::Mean`] the file is read once: values are collected with
/// placeholders, then filled with the column means.
pub fn load(spec: &DatasetSpec) -> Result<Dataset> {
    let fill = match spec.missing {
        MissingPolicy::Error => Fill::Error,
        MissingPolicy::Fill(v) => Fill::Const(v),
        MissingPolicy::Mean => Fill::Nan,
    };
    let mut reader = BatchReader::with_fill(spec, fill, !spec.allow_duplicate_ids)?;
    let mut ids = Vec::new();
    let mut labels = reader.label_name().map(|_| Vec::new());
    let mut features = Vec::new();
    let mut categorical = Vec::new();
    for batch in reader.by_ref() {
        let batch = batch?;
        if ids.is_empty() {
            // Most files fit in one batch; avoid re-copying its buffers.
            ids = batch.ids;
            features = batch.features;
            categorical = batch.categorical;
            if let (Some(l), Some(bl)) = (labels.as_mut(), batch.labels) {
                *l = bl;
            }
            continue;
        }
        ids.extend(batch.ids);
        features.extend_from_slice(&batch.features);
        categorical.extend(batch.categorical);
        if let (Some(l), Some(bl)) = (labels.as_mut(), batch.labels) {
            l.extend_from_slice(&bl);
        }
    }
    if ids.is_empty() {
        // A header without rows is almost always a truncated export; an empty dataset
        // would flow on into an "empty" PSI or a model of nothing.
        return Err(DataError::NoRows {
            path: spec.path.clone(),
        });
    }
    if spec.missing == MissingPolicy::Mean {
        let mut acc = MeanAccumulator::new(reader.n_features());
        acc.add_rows(&features);
        let n = reader.n_features();
        if n > 0 {
            let means = acc.means(reader.common())?;
            for row in features.chunks_exact_mut(n) {
                for (v, &m) in row.iter_mut().zip(&means) {
                    if v.is_nan() {
                        *v = m;
                    }
                }
            }
        }
    }
    let names = reader.categorical_names();
    let d = Dataset::new(
        reader.id_column().to_owned(),
        ids,
        reader.label_name().map(str::to_owned).zip(labels),
        reader.feature_names().to_vec(),
        features,
    )?;
    if names.is_empty() {
        Ok(d)
    } else {
        d.with_categorical(names, categorical)
    }
}
