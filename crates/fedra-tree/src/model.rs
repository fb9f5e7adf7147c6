//! Trained models: the guest's part (tree shapes, its own thresholds, the host
//! split ids it chose, all leaf weights) and each host's part (tree shapes and
//! only its own thresholds). Both serialise to JSON so a later job can predict;
//! both record the encryption scheme, which prediction uses too.

use std::collections::BTreeMap;

use fedra_federation::PartyId;
use serde::{Deserialize, Serialize};

use crate::config::{Objective, Scheme};
use crate::error::{Result, TreeError};

/// A node of the guest's copy of a tree (index = node id, root = 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestNode {
    /// A leaf with one weight per output (learning rate applied).
    Leaf {
        /// Added to the margin of the rows that reach this leaf.
        weights: Vec<f64>,
    },
    /// A split on one of the guest's features: `value < threshold` goes left,
    /// missing values go to `default_left`.
    Guest {
        /// Guest feature index.
        feature: usize,
        /// The threshold.
        threshold: f64,
        /// Where missing values go.
        default_left: bool,
        /// Left child id.
        left: u32,
        /// Right child id.
        right: u32,
    },
    /// A split on a host's feature; only that host knows the threshold.
    Host {
        /// Index into the model's `hosts`.
        party: usize,
        /// The host's opaque split id.
        split: u32,
        /// Left child id.
        left: u32,
        /// Right child id.
        right: u32,
    },
}

/// A node of a host's copy of a tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostNode {
    /// A leaf (the weights stay with the guest).
    Leaf,
    /// This host's split.
    Own {
        /// Feature index of this host.
        feature: usize,
        /// `value < threshold` goes left.
        threshold: f64,
        /// Where missing values go.
        default_left: bool,
        /// Left child id.
        left: u32,
        /// Right child id.
        right: u32,
    },
    /// Another party's split.
    Other {
        /// Left child id.
        left: u32,
        /// Right child id.
        right: u32,
    },
}

/// Per-round training record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Training loss after this round (log loss, multi-class log loss, or RMSE).
    pub train_loss: f64,
    /// Validation loss, if early stopping is on.
    pub valid_loss: Option<f64>,
    /// Leaves of the tree.
    pub leaves: u32,
    /// Splits on guest / host features.
    pub guest_splits: u32,
    /// Splits on host features.
    pub host_splits: u32,
    /// Ciphertexts the guest encrypted for this tree.
    pub encryptions: u64,
    /// Ciphertexts the guest decrypted for this tree.
    pub decryptions: u64,
    /// Payload bytes the guest sent for this tree (to all hosts).
    #[serde(default)]
    pub bytes_sent: u64,
    /// Payload bytes the guest received for this tree.
    #[serde(default)]
    pub bytes_received: u64,
    /// Wall time of the round in seconds (as seen by the guest).
    pub seconds: f64,
}

/// Split count and total gain of one feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// Number of splits.
    pub splits: u32,
    /// Sum of the splits' gains.
    pub gain: f64,
}

/// The guest's part of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestModel {
    /// Loss.
    pub objective: Objective,
    /// Initial margin per output.
    pub base_margin: Vec<f64>,
    /// The hosts, in the order of [`GuestNode::Host::party`].
    pub hosts: Vec<PartyId>,
    /// The guest's feature names (for importance and checks).
    pub feature_names: Vec<String>,
    /// The trees.
    pub trees: Vec<Vec<GuestNode>>,
    /// Per-round record (may be longer than `trees` after early stopping).
    pub rounds: Vec<Round>,
    /// Feature importance: guest features by name, host features as `<host>/f<index>`.
    pub importance: BTreeMap<String, Importance>,
    /// Encryption of the leaf weights at prediction (the training scheme; models
    /// saved before this field existed predict with OU).
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
    /// Modulus size of the key generated for each prediction job.
    #[serde(default = "default_key_bits")]
    pub key_bits: u32,
    /// Fractional bits of the fixed-point leaf weights at prediction, 16..=48.
    #[serde(default = "default_precision")]
    pub precision_bits: u32,
}

/// A host's part of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostModel {
    /// The guest this model was trained with.
    pub guest: PartyId,
    /// This host's feature names.
    pub feature_names: Vec<String>,
    /// The trees (shape plus this host's thresholds).
    pub trees: Vec<Vec<HostNode>>,
    /// Importance of this host's features by name.
    pub importance: BTreeMap<String, Importance>,
    /// The scheme the guest must use at prediction (the training scheme).
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
}

fn default_scheme() -> Scheme {
    Scheme::Ou
}

fn default_key_bits() -> u32 {
    2048
}

fn default_precision() -> u32 {
    32
}

fn model_err(e: serde_json::Error) -> TreeError {
    TreeError::Model(e.to_string())
}

impl GuestModel {
    /// JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(model_err)
    }

    /// Parses and checks a saved model.
    pub fn from_json(s: &str) -> Result<GuestModel> {
        let m: GuestModel = serde_json::from_str(s).map_err(model_err)?;
        let k = m.objective.outputs();
        if m.base_margin.len() != k {
            return Err(TreeError::Model(format!(
                "base_margin has {} values, the objective has {k} outputs",
                m.base_margin.len()
            )));
        }
        for (t, tree) in m.trees.iter().enumerate() {
            check_shape(
                t,
                tree.len(),
                tree.iter().map(|n| match n {
                    GuestNode::Leaf { weights } => {
                        if weights.len() == k && weights.iter().all(|w| w.is_finite()) {
                            Ok(None)
                        } else {
                            Err(format!("a leaf needs {k} finite weights"))
                        }
                    }
                    GuestNode::Guest {
                        feature,
                        left,
                        right,
                        threshold,
                        ..
                    } => {
                        if *feature >= m.feature_names.len() || threshold.is_nan() {
                            Err(format!("guest feature {feature} out of range"))
                        } else {
                            Ok(Some((*left, *right)))
                        }
                    }
                    GuestNode::Host {
                        party, left, right, ..
                    } => {
                        if *party >= m.hosts.len() {
                            Err(format!("host index {party} out of range"))
                        } else {
                            Ok(Some((*left, *right)))
                        }
                    }
                }),
            )?;
        }
        Ok(m)
    }
}

impl HostModel {
    /// JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(model_err)
    }

    /// Parses and checks a saved model.
    pub fn from_json(s: &str) -> Result<HostModel> {
        let m: HostModel = serde_json::from_str(s).map_err(model_err)?;
        for (t, tree) in m.trees.iter().enumerate() {
            check_shape(
                t,
                tree.len(),
                tree.iter().map(|n| match n {
                    HostNode::Leaf => Ok(None),
                    HostNode::Own {
                        feature,
                        left,
                        right,
                        threshold,
                        ..
                    } => {
                        if *feature >= m.feature_names.len() || threshold.is_nan() {
                            Err(format!("feature {feature} out of range"))
                        } else {
                            Ok(Some((*left, *right)))
                        }
                    }
                    HostNode::Other { left, right } => Ok(Some((*left, *right))),
                }),
            )?;
        }
        Ok(m)
    }
}

/// Every child id must point forward to an existing node, once, so that walking a
/// tree always terminates.
fn check_shape(
    tree: usize,
    len: usize,
    nodes: impl Iterator<Item = std::result::Result<Option<(u32, u32)>, String>>,
) -> Result<()> {
    if len == 0 {
        return Err(TreeError::Model(format!("tree {tree} has no nodes")));
    }
    let mut seen = vec![false; len];
    for (i, n) in nodes.enumerate() {
        let children = n.map_err(|e| TreeError::Model(format!("tree {tree} node {i}: {e}")))?;
        if let Some((l, r)) = children {
            for c in [l as usize, r as usize] {
                if c <= i || c >= len || seen[c] {
                    return Err(TreeError::Model(format!(
                        "tree {tree} node {i}: child {c} is invalid"
                    )));
                }
                seen[c] = true;
            }
        }
    }
    Ok(())
}
