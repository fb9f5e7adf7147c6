//! Quantile binning of one party's feature columns.
//!
//! Each feature gets at most `max_bins` bins delimited by ascending thresholds
//! `t_1 < … < t_k`; a value `v` falls in bin `#{j : t_j <= v}`, and a split
//! "after bin `b`" sends `v < t_{b+1}` left. Missing values (NaN) get their own
//! slot after the last bin; every split decides separately which side they go to.
//! Thresholds are fitted on the training rows of the party that owns the feature
//! and never leave it.
//!
//! Features with at most `max_bins` distinct values get one bin per value
//! (thresholds at midpoints); others get (unweighted) quantile cuts, like
//! XGBoost's `hist` method without sample weights.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TreeError};

/// The thresholds of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    /// Ascending, finite bin boundaries.
    pub thresholds: Vec<f64>,
}

impl FeatureBins {
    /// Number of value bins (`thresholds.len() + 1`); the missing slot comes after.
    pub fn value_bins(&self) -> usize {
        self.thresholds.len() + 1
    }

    /// Histogram slots: the value bins plus the missing slot.
    pub fn slots(&self) -> usize {
        self.thresholds.len() + 2
    }

    /// The slot of a value (the missing slot for NaN).
    pub fn slot(&self, v: f64) -> u8 {
        if v.is_nan() {
            return self.thresholds.len().saturating_add(1).min(255) as u8;
        }
        self.thresholds.partition_point(|&t| t <= v).min(255) as u8
    }

    /// Fits thresholds to a column (NaN = missing).
    pub fn fit(values: &[f64], max_bins: usize) -> FeatureBins {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let max_bins = max_bins.clamp(2, 255);
        let mut uniq: Vec<f64> = Vec::new();
        for &x in &v {
            if uniq.last() != Some(&x) {
                uniq.push(x);
            }
        }
        let mut thresholds = Vec::new();
        if uniq.len() <= max_bins {
            for w in uniq.windows(2) {
                thresholds.push(w[0] + (w[1] - w[0]) / 2.0);
            }
        } else {
            let n = v.len();
            for k in 1..max_bins {
                let rank = k * n / max_bins;
                if rank == 0 || rank >= n {
                    continue;
                }
                let (a, b) = (v[rank - 1], v[rank]);
                let t = if a < b { a + (b - a) / 2.0 } else { b };
                if t > v[0] && thresholds.last().is_none_or(|&l| t > l) {
                    thresholds.push(t);
                }
            }
        }
        FeatureBins { thresholds }
    }
}

/// One party's binned columns: `slot(row, feature)`, column-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    rows: usize,
    bins: Vec<FeatureBins>,
    cols: Vec<Vec<u8>>,
}

impl Binned {
    /// Fits bins on a row-major matrix and bins it.
    pub fn fit(features: &[f64], rows: usize, max_bins: usize) -> Result<Binned> {
        let cols = column_count(features, rows)?;
        let bins: Vec<FeatureBins> = (0..cols)
            .map(|j| {
                let col: Vec<f64> = (0..rows).map(|i| features[i * cols + j]).collect();
                FeatureBins::fit(&col, max_bins)
            })
            .collect();
        Binned::apply(bins, features, rows)
    }

    /// Bins a row-major matrix with given thresholds (e.g. a saved model's).
    pub fn apply(bins: Vec<FeatureBins>, features: &[f64], rows: usize) -> Result<Binned> {
        let cols = column_count(features, rows)?;
        if rows > 0 && cols != bins.len() {
            return Err(TreeError::Data(format!(
                "{cols} feature columns, the bins were fitted on {}",
                bins.len()
            )));
        }
        let cols_data = bins
            .iter()
            .enumerate()
            .map(|(j, b)| (0..rows).map(|i| b.slot(features[i * cols + j])).collect())
            .collect();
        Ok(Binned {
            rows,
            bins,
            cols: cols_data,
        })
    }

    /// Row count.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Feature count.
    pub fn features(&self) -> usize {
        self.bins.len()
    }

    /// The thresholds of every feature.
    pub fn bins(&self) -> &[FeatureBins] {
        &self.bins
    }

    /// The slots of feature `j`, one per row.
    pub fn column(&self, j: usize) -> &[u8] {
        self.cols.get(j).map(Vec::as_slice).unwrap_or_default()
    }

    /// Histogram slots of every feature.
    pub fn slots(&self) -> Vec<usize> {
        self.bins.iter().map(FeatureBins::slots).collect()
    }
}

fn column_count(features: &[f64], rows: usize) -> Result<usize> {
    if rows == 0 {
        return Ok(0);
    }
    if !features.len().is_multiple_of(rows) {
        return Err(TreeError::Data(format!(
            "{} values do not form {rows} rows",
            features.len()
        )));
    }
    Ok(features.len() / rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_values_get_one_bin_each() {
        let b = FeatureBins::fit(&[1.0, 2.0, 2.0, 3.0, f64::NAN], 32);
        assert_eq!(b.thresholds, vec![1.5, 2.5]);
        assert_eq!(b.slot(1.0), 0);
        assert_eq!(b.slot(2.0), 1);
        assert_eq!(b.slot(3.0), 2);
        assert_eq!(b.slot(f64::NAN), 3);
        assert_eq!(b.slots(), 4);
    }

    #[test]
    fn quantiles_balance_the_bins() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let b = FeatureBins::fit(&v, 10);
        assert_eq!(b.value_bins(), 10);
        let mut counts = [0usize; 11];
        for &x in &v {
            counts[b.slot(x) as usize] += 1;
        }
        assert!(counts[..10].iter().all(|&c| c == 100), "{counts:?}");
    }

    #[test]
    fn heavy_ties_do_not_create_empty_bins() {
        let mut v = vec![0.0; 900];
        v.extend((0..100).map(f64::from));
        let b = FeatureBins::fit(&v, 8);
        let mut counts = vec![0usize; b.slots()];
        for &x in &v {
            counts[b.slot(x) as usize] += 1;
        }
        assert!(
            counts[..b.value_bins()].iter().all(|&c| c > 0),
            "{counts:?}"
        );
    }

    #[test]
    fn apply_checks_the_width() {
        let b = Binned::fit(&[1.0, 2.0, 3.0, 4.0], 2, 4).unwrap();
        assert_eq!(b.features(), 2);
        assert!(Binned::apply(b.bins().to_vec(), &[1.0, 2.0, 3.0], 1).is_err());
    }
}
