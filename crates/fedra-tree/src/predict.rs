//! Prediction, local parts.
//!
//! * The private protocol ([`crate::secure_predict`]): each party computes, per
//!   tree and row, the leaves consistent with its own splits ([`leaf_masks`]);
//!   the hosts intersect them ([`intersect`]).
//! * The plaintext oracle ([`crate::predict_plaintext`]): each host's split
//!   outcomes as row bitmaps ([`host_bits`]) and a walk of every tree with them
//!   ([`guest_margins`]) — an independent implementation the tests compare the
//!   protocol with.

use rayon::prelude::*;

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

/// A node as one party sees it when computing its leaf masks: its own splits
/// (evaluated on its own features) and everybody else's (both ways open).
pub(crate) enum Walk {
    Leaf,
    Own {
        feature: usize,
        threshold: f64,
        default_left: bool,
        left: u32,
        right: u32,
    },
    Other {
        left: u32,
        right: u32,
    },
}

/// The guest's view of its trees: guest splits are its own.
pub(crate) fn guest_walk(model: &GuestModel) -> Vec<Vec<Walk>> {
    model
        .trees
        .iter()
        .map(|t| {
            t.iter()
                .map(|n| match n {
                    GuestNode::Leaf { .. } => Walk::Leaf,
                    GuestNode::Guest {
                        feature,
                        threshold,
                        default_left,
                        left,
                        right,
                    } => Walk::Own {
                        feature: *feature,
                        threshold: *threshold,
                        default_left: *default_left,
                        left: *left,
                        right: *right,
                    },
                    GuestNode::Host { left, right, .. } => Walk::Other {
                        left: *left,
                        right: *right,
                    },
                })
                .collect()
        })
        .collect()
}

/// A host's view of its trees.
pub(crate) fn host_walk(model: &HostModel) -> Vec<Vec<Walk>> {
    model
        .trees
        .iter()
        .map(|t| {
            t.iter()
                .map(|n| match n {
                    HostNode::Leaf => Walk::Leaf,
                    HostNode::Own {
                        feature,
                        threshold,
                        default_left,
                        left,
                        right,
                    } => Walk::Own {
                        feature: *feature,
                        threshold: *threshold,
                        default_left: *default_left,
                        left: *left,
                        right: *right,
                    },
                    HostNode::Other { left, right } => Walk::Other {
                        left: *left,
                        right: *right,
                    },
                })
                .collect()
        })
        .collect()
}

/// Per tree and row, the set of leaves consistent with one party's splits, as
/// bitmaps (leaf `i` = the `i`-th leaf in node-id order; bit `i % 8` of byte
/// `i / 8`). Tree-major: tree `t` is a block of `rows × ⌈leaves_t / 8⌉` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Masks {
    pub(crate) rows: usize,
    /// Leaves per tree.
    pub(crate) leaves: Vec<u32>,
    /// Start of each tree's block in `data`, plus the total length at the end.
    pub(crate) offsets: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

impl Masks {
    /// An all-zero layout for `rows` rows and these leaf counts.
    pub(crate) fn zeros(rows: usize, leaves: Vec<u32>) -> Result<Masks> {
        let mut offsets = Vec::with_capacity(leaves.len() + 1);
        let mut at = 0usize;
        for &l in &leaves {
            offsets.push(at);
            at = (l as usize)
                .div_ceil(8)
                .checked_mul(rows)
                .and_then(|b| b.checked_add(at))
                .ok_or_else(|| TreeError::Model("leaf masks too large".into()))?;
        }
        offsets.push(at);
        Ok(Masks {
            rows,
            leaves,
            offsets,
            data: vec![0; at],
        })
    }

    /// Bytes per row of tree `t`.
    pub(crate) fn width(&self, t: usize) -> usize {
        (self.leaves[t] as usize).div_ceil(8)
    }

    /// The total length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }
}

/// Leaves per tree (nodes that are leaves, in node-id order).
pub(crate) fn leaf_counts(trees: &[Vec<Walk>]) -> Vec<u32> {
    trees
        .iter()
        .map(|t| t.iter().filter(|n| matches!(n, Walk::Leaf)).count() as u32)
        .collect()
}

/// One party's leaf masks: for every tree and row, the leaves reachable when this
/// party's splits are evaluated on its own features (missing values follow the
/// learned direction) and every other party's split is left open.
pub(crate) fn leaf_masks(
    trees: &[Vec<Walk>],
    features: &[f64],
    nf: usize,
    rows: usize,
) -> Result<Masks> {
    if features.len() != rows * nf {
        return Err(TreeError::Data(format!(
            "{} values for {rows} rows of {nf} features",
            features.len()
        )));
    }
    let mut masks = Masks::zeros(rows, leaf_counts(trees))?;
    // Leaf number of every node.
    let leaf_ids: Vec<Vec<u32>> = trees
        .iter()
        .map(|t| {
            let mut next = 0u32;
            t.iter()
                .map(|n| {
                    if matches!(n, Walk::Leaf) {
                        next += 1;
                        next - 1
                    } else {
                        u32::MAX
                    }
                })
                .collect()
        })
        .collect();
    // Split the data into one block per tree and fill the blocks in parallel.
    let mut blocks = Vec::with_capacity(trees.len());
    let mut rest = masks.data.as_mut_slice();
    for t in 0..trees.len() {
        let (b, r) = rest.split_at_mut(masks.offsets[t + 1] - masks.offsets[t]);
        blocks.push((t, b));
        rest = r;
    }
    let widths: Vec<usize> = (0..trees.len())
        .map(|t| (masks.leaves[t] as usize).div_ceil(8))
        .collect();
    blocks.into_par_iter().try_for_each(|(t, block)| {
        let tree = &trees[t];
        let w = widths[t];
        let mut stack = Vec::with_capacity(64);
        for (r, out) in block.chunks_mut(w.max(1)).enumerate().take(rows) {
            let x = &features[r * nf..(r + 1) * nf];
            stack.clear();
            stack.push(0usize);
            while let Some(i) = stack.pop() {
                let child = |c: u32| -> Result<usize> {
                    let c = c as usize;
                    if c <= i || c >= tree.len() {
                        return Err(TreeError::Model(format!(
                            "tree {t}: node {i} has child {c}"
                        )));
                    }
                    Ok(c)
                };
                match tree.get(i) {
                    Some(Walk::Leaf) => {
                        let l = leaf_ids[t][i] as usize;
                        out[l / 8] |= 1 << (l % 8);
                    }
                    Some(Walk::Own {
                        feature,
                        threshold,
                        default_left,
                        left,
                        right,
                    }) => {
                        let v = *x.get(*feature).ok_or_else(|| {
                            TreeError::Model(format!("tree {t}: feature {feature} out of range"))
                        })?;
                        let go = if goes_left(v, *threshold, *default_left) {
                            *left
                        } else {
                            *right
                        };
                        stack.push(child(go)?);
                    }
                    Some(Walk::Other { left, right }) => {
                        stack.push(child(*left)?);
                        stack.push(child(*right)?);
                    }
                    None => {
                        return Err(TreeError::Model(format!("tree {t}: node {i} missing")));
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(masks)
}

/// ANDs this party's `own` masks into `received` (a buffer of exactly
/// `own.len()` bytes in the same layout, from the previous party). Fails if a
/// received bit names a leaf that does not exist, or if a (tree, row) has no
/// surviving leaf — or, with `exactly_one`, more than one. Returns the first
/// surviving leaf of every (tree, row), tree-major (the leaf, with `exactly_one`).
pub(crate) fn intersect(
    received: &mut [u8],
    own: &Masks,
    exactly_one: bool,
) -> std::result::Result<Vec<u32>, String> {
    if received.len() != own.len() {
        return Err(format!(
            "{} bytes of leaf masks, expected {}",
            received.len(),
            own.len()
        ));
    }
    let rows = own.rows;
    let trees = own.leaves.len();
    let mut blocks = Vec::with_capacity(trees);
    let mut rest = received;
    for t in 0..trees {
        let (b, r) = rest.split_at_mut(own.offsets[t + 1] - own.offsets[t]);
        blocks.push((t, b));
        rest = r;
    }
    let per_tree: Vec<Vec<u32>> = blocks
        .into_par_iter()
        .map(|(t, block)| {
            let w = own.width(t);
            let leaves = own.leaves[t] as usize;
            let mine = &own.data[own.offsets[t]..own.offsets[t + 1]];
            let pad: u8 = if leaves.is_multiple_of(8) {
                0
            } else {
                !((1u8 << (leaves % 8)) - 1)
            };
            let mut first = Vec::with_capacity(rows);
            for r in 0..rows {
                let got = &mut block[r * w..(r + 1) * w];
                if got.last().is_some_and(|&b| b & pad != 0) {
                    return Err(format!(
                        "tree {t}, row {r}: a bit set beyond the tree's {leaves} leaves"
                    ));
                }
                let mut count = 0u32;
                let mut at = u32::MAX;
                for (j, (g, m)) in got.iter_mut().zip(&mine[r * w..(r + 1) * w]).enumerate() {
                    *g &= m;
                    if *g != 0 && at == u32::MAX {
                        at = (j * 8) as u32 + g.trailing_zeros();
                    }
                    count += g.count_ones();
                }
                if count == 0 {
                    return Err(format!(
                        "tree {t}, row {r}: no leaf is consistent with the received mask and this party's splits"
                    ));
                }
                if exactly_one && count != 1 {
                    return Err(format!(
                        "tree {t}, row {r}: {count} leaves remain after every party's splits, exactly one expected"
                    ));
                }
                first.push(at);
            }
            Ok(first)
        })
        .collect::<std::result::Result<_, String>>()?;
    Ok(per_tree.into_iter().flatten().collect())
}
