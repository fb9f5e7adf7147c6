//! Per-party models (serde JSON) and local scoring.

use fedra_data::Dataset;
use fedra_federation::PartyId;
use serde::{Deserialize, Serialize};

use crate::config::Objective;
use crate::error::{LinearError, Result};

/// A party's standardisation (its own training mean and std per column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations (1 for constant columns).
    pub std: Vec<f64>,
}

/// The guest's part of a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestModel {
    /// Logistic or linear.
    pub objective: Objective,
    /// The guest's feature columns, in order.
    pub feature_names: Vec<String>,
    /// One weight per feature (on standardised features if `scaling`).
    pub weights: Vec<f64>,
    /// The intercept (0 if not fitted).
    pub intercept: f64,
    /// The guest's standardisation.
    pub scaling: Option<Scaling>,
    /// The hosts whose partial scores complete a prediction.
    pub hosts: Vec<PartyId>,
    /// Training loss (Taylor loss for logistic, ½·MSE for linear, plus
    /// penalty) per epoch.
    pub loss_history: Vec<f64>,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
}

/// A host's part of a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostModel {
    /// The host's feature columns, in order.
    pub feature_names: Vec<String>,
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The host's standardisation.
    pub scaling: Option<Scaling>,
    /// The guest that receives this host's partial scores at prediction.
    pub guest: PartyId,
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| LinearError::Model(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| LinearError::Model(format!("invalid model JSON: {e}")))
}

/// `Σ_j standardise(x_ij) · w_j` for every row, checking the columns.
pub(crate) fn partial_scores(
    data: &Dataset,
    names: &[String],
    weights: &[f64],
    scaling: Option<&Scaling>,
) -> Result<Vec<f64>> {
    if data.feature_names() != names {
        return Err(LinearError::Model(format!(
            "the model was trained on columns {:?} but the dataset has {:?}",
            names,
            data.feature_names()
        )));
    }
    if weights.len() != names.len()
        || scaling.is_some_and(|s| s.mean.len() != names.len() || s.std.len() != names.len())
    {
        return Err(LinearError::Model(
            "weights/scaling do not match the feature names".into(),
        ));
    }
    crate::core::check_finite(data)?;
    Ok((0..data.n_rows())
        .map(|i| {
            data.row(i)
                .iter()
                .enumerate()
                .map(|(j, &x)| {
                    let x = scaling.map_or(x, |s| (x - s.mean[j]) / s.std[j]);
                    x * weights[j]
                })
                .sum()
        })
        .collect())
}

impl GuestModel {
    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        to_json(self)
    }

    /// Parses JSON written by [`GuestModel::to_json`].
    pub fn from_json(s: &str) -> Result<Self> {
        from_json(s)
    }

    /// The guest's partial scores `w_g·x_g + intercept`.
    pub fn partial_scores(&self, data: &Dataset) -> Result<Vec<f64>> {
        let mut u = partial_scores(
            data,
            &self.feature_names,
            &self.weights,
            self.scaling.as_ref(),
        )?;
        u.iter_mut().for_each(|u| *u += self.intercept);
        Ok(u)
    }

    /// Turns the full linear score into a prediction (probability of class 1
    /// for logistic regression).
    pub fn link(&self, u: f64) -> f64 {
        match self.objective {
            Objective::Logistic => 1.0 / (1.0 + (-u).exp()),
            Objective::Linear => u,
        }
    }
}

impl HostModel {
    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        to_json(self)
    }

    /// Parses JSON written by [`HostModel::to_json`].
    pub fn from_json(s: &str) -> Result<Self> {
        from_json(s)
    }

    /// The host's partial scores `w_h·x_h`.
    pub fn partial_scores(&self, data: &Dataset) -> Result<Vec<f64>> {
        partial_scores(
            data,
            &self.feature_names,
            &self.weights,
            self.scaling.as_ref(),
        )
    }
}
