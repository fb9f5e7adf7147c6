//! Federated prediction, local parts: each host evaluates its own splits on its
//! own rows ([`host_bits`]); the guest walks every tree with its own splits and
//! those bits and adds up leaf weights ([`guest_margins`]).

use crate::error::{Result, TreeError};
use crate::grow::{bit, bitmap};
use crate::model::{GuestModel, GuestNode, HostModel, HostNode};

fn goes_left(v: f64, threshold: f64, default_left: bool) -> bool {
    if v.is_nan() {
        default_left
    } else {
        v < threshold
    }
}

/// The nodes a host owns, in (tree, node) order: what its bitmaps belong to.
pub(crate) fn host_nodes(trees: &[Vec<GuestNode>], party: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (t, tree) in trees.iter().enumerate() {
        for (i, n) in tree.iter().enumerate() {
            if matches!(n, GuestNode::Host { party: p, .. } if *p == party) {
                out.push((t, i));
            }
        }
    }
    out
}

/// For every split the host owns (in (tree, node) order), a bitmap of the rows
/// that go left. `features` is row-major with the model's feature count.
pub(crate) fn host_bits(model: &HostModel, features: &[f64], rows: usize) -> Result<Vec<Vec<u8>>> {
    let nf = model.feature_names.len();
    if features.len() != rows * nf {
        return Err(TreeError::Data(format!(
            "{} values for {rows} rows of {nf} features",
            features.len()
        )));
    }
    let mut out = Vec::new();
    for tree in &model.trees {
        for n in tree {
            if let HostNode::Own {
                feature,
                threshold,
                default_left,
                ..
            } = n
            {
                out.push(bitmap((0..rows).map(|r| {
                    goes_left(features[r * nf + feature], *threshold, *default_left)
                })));
            }
        }
    }
    Ok(out)
}

/// Margins (row-major, one per output) from the guest's features and each
/// host's bitmaps (`bits[h]` in the order of [`host_nodes`]).
pub(crate) fn guest_margins(
    model: &GuestModel,
    features: &[f64],
    rows: usize,
    bits: &[Vec<Vec<u8>>],
) -> Result<Vec<f64>> {
    let k = model.objective.outputs();
    let nf = model.feature_names.len();
    if features.len() != rows * nf {
        return Err(TreeError::Data(format!(
            "{} values for {rows} rows of {nf} features",
            features.len()
        )));
    }
    // Map (tree, node) -> index into that host's bitmaps.
    let mut index: Vec<Vec<usize>> = model.trees.iter().map(|t| vec![0; t.len()]).collect();
    for h in 0..model.hosts.len() {
        let nodes = host_nodes(&model.trees, h);
        let got = bits.get(h).map_or(0, Vec::len);
        if got != nodes.len() {
            return Err(TreeError::Model(format!(
                "host '{}' sent {got} split bitmaps, the model has {}",
                model.hosts[h],
                nodes.len()
            )));
        }
        for (i, (t, n)) in nodes.into_iter().enumerate() {
            index[t][n] = i;
            if bits[h][i].len() != rows.div_ceil(8) {
                return Err(TreeError::Model(format!(
                    "host '{}' sent a bitmap of {} bytes for {rows} rows",
                    model.hosts[h],
                    bits[h][i].len()
                )));
            }
        }
    }
    let mut out = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let x = &features[r * nf..(r + 1) * nf];
        let mut m = model.base_margin.clone();
        for (t, tree) in model.trees.iter().enumerate() {
            let mut i = 0usize;
            // Children always have larger ids (checked on load), so this terminates.
            loop {
                match tree.get(i) {
                    Some(GuestNode::Leaf { weights }) => {
                        for (a, w) in m.iter_mut().zip(weights) {
                            *a += w;
                        }
                        break;
                    }
                    Some(GuestNode::Guest {
                        feature,
                        threshold,
                        default_left,
                        left,
                        right,
                    }) => {
                        i = if goes_left(x[*feature], *threshold, *default_left) {
                            *left as usize
                        } else {
                            *right as usize
                        };
                    }
                    Some(GuestNode::Host {
                        party, left, right, ..
                    }) => {
                        let b = &bits[*party][index[t][i]];
                        i = if bit(b, r) {
                            *left as usize
                        } else {
                            *right as usize
                        };
                    }
                    None => {
                        return Err(TreeError::Model(format!("tree {t}: node {i} missing")));
                    }
                }
            }
        }
        out.extend_from_slice(&m);
    }
    Ok(out)
}
