//! The guest's boosting loop, written once against the [`Hosts`] trait.
//!
//! The secure protocol implements [`Hosts`] with encrypted messages to remote
//! hosts ([`crate::protocol`]); the plaintext twin implements it with in-process
//! hosts that see the plaintext gradients ([`crate::plain`]). Everything the
//! guest decides — sampling, histogram subtraction, split choice, leaf weights,
//! early stopping — is this one function, so the two produce the same model
//! whenever the hosts return the same histograms and partitions (which the
//! tests check).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use fedra_federation::PartyId;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::binning::Binned;
use crate::config::{Config, Privacy};
use crate::error::{Result, TreeError};
use crate::hist::{self, Layout, Rules};
use crate::model::{GuestModel, GuestNode, Importance, Round};
use crate::objective;

/// The split of one node, as the hosts need to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The node is a leaf.
    Leaf,
    /// Split on a guest feature (hosts learn only that it is the guest's).
    Guest { left: u32, right: u32 },
    /// Split on host `party`'s split id `split`.
    Host {
        party: usize,
        split: u32,
        default_left: bool,
        left: u32,
        right: u32,
    },
}

/// The left/right partition of a split node's rows: bit `i` set = the node's
/// `i`-th row (ascending) goes left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) node: u32,
    pub(crate) left: Vec<u8>,
}

/// One host's histograms for the requested nodes (features it did not sample are zero).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostHists {
    /// Features the host sampled for this tree.
    pub(crate) features: Vec<usize>,
    /// One histogram per requested node, in request order.
    pub(crate) nodes: Vec<Vec<i128>>,
}

/// What the guest's loop needs from the hosts.
pub(crate) trait Hosts: Send {
    /// Each host's feature slots.
    fn layouts(&self) -> &[Layout];
    /// A new tree: the sampled rows and their fixed-point `[g, h]` per output
    /// (row-major, zero for rows not sampled). With `guest_only` the hosts are
    /// told to sit this tree out (complete-secure mode).
    fn start_tree(
        &mut self,
        tree: u32,
        guest_only: bool,
        sampled: &[bool],
        gh: &[i128],
    ) -> impl Future<Output = Result<()>> + Send;
    /// The partitions of the previous level's splits, then histograms of `build`.
    /// With `last` the tree is complete and nothing is returned.
    fn level(
        &mut self,
        tree: u32,
        depth: u32,
        parts: &[Part],
        build: &[u32],
        last: bool,
    ) -> impl Future<Output = Result<Vec<HostHists>>> + Send;
    /// This level's decisions; returns the partition of every host-owned split
    /// (in decision order).
    fn decide(
        &mut self,
        tree: u32,
        depth: u32,
        decisions: &[(u32, Decision)],
    ) -> impl Future<Output = Result<Vec<Vec<u8>>>> + Send;
    /// Training is over; keep the first `trees` trees.
    fn finish(&mut self, trees: u32) -> impl Future<Output = Result<()>> + Send;
    /// Ciphertexts encrypted and decrypted, payload bytes sent and received since
    /// the last call.
    fn take_counts(&mut self) -> Counts;
}

/// Per-tree counters of the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) encryptions: u64,
    pub(crate) decryptions: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
}

/// A public, seeded stream for sampling (row, feature and validation draws are
/// not secret).
pub(crate) fn stream(seed: u64, a: u64, b: u64) -> ChaCha8Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&a.to_le_bytes());
    s[16..24].copy_from_slice(&b.to_le_bytes());
    s[24..].copy_from_slice(b"fedratre");
    ChaCha8Rng::from_seed(s)
}

fn shuffle<T>(v: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Features party `party` (0 = guest) uses in tree `tree`.
pub(crate) fn sample_features(cfg: &Config, tree: u32, party: usize, n: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    if cfg.colsample_bytree >= 1.0 || n == 0 {
        return all;
    }
    let keep = ((cfg.colsample_bytree * n as f64).round() as usize).clamp(1, n);
    shuffle(
        &mut all,
        &mut stream(cfg.seed, u64::from(tree), 100 + party as u64),
    );
    all.truncate(keep);
    all.sort_unstable();
    all
}

pub(crate) fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1)
}

pub(crate) fn bitmap(flags: impl ExactSizeIterator<Item = bool>) -> Vec<u8> {
    let mut out = vec![0u8; flags.len().div_ceil(8)];
    for (i, f) in flags.enumerate() {
        if f {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Left flags of a split on binned column `col` after value bin `bin`.
pub(crate) fn split_rows(
    col: &[u8],
    missing: u8,
    bin: usize,
    default_left: bool,
    rows: &[u32],
) -> Vec<u8> {
    bitmap(rows.iter().map(|&r| {
        let s = col[r as usize];
        if s == missing {
            default_left
        } else {
            usize::from(s) <= bin
        }
    }))
}

pub(crate) fn apply_part(rows: &[u32], left: &[u8]) -> (Vec<u32>, Vec<u32>) {
    let mut l = Vec::new();
    let mut r = Vec::new();
    for (i, &row) in rows.iter().enumerate() {
        if bit(left, i) {
            l.push(row);
        } else {
            r.push(row);
        }
    }
    (l, r)
}

/// Host split ids: feature index and bin (the guest never learns thresholds).
pub(crate) fn split_id(feature: usize, bin: usize) -> u32 {
    ((feature as u32) << 8) | bin as u32
}

pub(crate) fn split_of_id(id: u32) -> (usize, usize) {
    ((id >> 8) as usize, (id & 0xff) as usize)
}

/// The guest's data for training.
pub(crate) struct GuestInput<'a> {
    pub(crate) binned: &'a Binned,
    pub(crate) y: &'a [f64],
    pub(crate) names: &'a [String],
}

struct NodeState {
    id: u32,
    depth: u32,
    rows: Vec<u32>,
    sampled: usize,
    total: Vec<i128>,
    /// Index of the parent's histograms in `parents` and whether this node is the
    /// smaller sibling (built directly; the other is derived by subtraction).
    parent: Option<usize>,
    built: bool,
    guest: Vec<i128>,
    hosts: Vec<Vec<i128>>,
}

fn quantize(v: f64, scale: f64) -> Result<i128> {
    let q = (v * scale).round();
    if !q.is_finite() || q.abs() >= 2f64.powi(100) {
        return Err(TreeError::Data(format!(
            "gradient {v} cannot be encoded with this precision"
        )));
    }
    Ok(q as i128)
}

/// Runs the boosting loop as the guest.
pub(crate) async fn grow<H: Hosts>(
    cfg: &Config,
    input: GuestInput<'_>,
    host_ids: &[PartyId],
    hosts: &mut H,
    mut progress: impl FnMut(u32, &Round) + Send,
) -> Result<GuestModel> {
    let obj = cfg.objective;
    let k = obj.outputs();
    let w = 2 * k;
    let n = input.binned.rows();
    let y = objective::check_labels(obj, input.y)?;
    if y.len() != n {
        return Err(TreeError::Data(format!("{} labels for {n} rows", y.len())));
    }
    if n == 0 {
        return Err(TreeError::Data("no training rows".into()));
    }
    let scale = 2f64.powi(cfg.precision_bits as i32);
    let rules = Rules {
        lambda: cfg.lambda,
        alpha: cfg.alpha,
        gamma: cfg.gamma,
        min_child_weight: cfg.min_child_weight,
        scale,
    };
    let g_layout = Layout::new(input.binned.slots(), k);
    let columns: Vec<&[u8]> = (0..input.binned.features())
        .map(|j| input.binned.column(j))
        .collect();
    let host_layouts: Vec<Layout> = hosts.layouts().to_vec();

    // Validation rows (never sampled, never in histograms) for early stopping.
    let mut is_valid = vec![false; n];
    let mut valid_rows: Vec<u32> = Vec::new();
    if let Some(es) = &cfg.early_stopping {
        let mut all: Vec<u32> = (0..n as u32).collect();
        shuffle(&mut all, &mut stream(cfg.seed, u64::MAX, 0));
        let m = ((es.validation_fraction * n as f64).round() as usize).clamp(1, n - 1);
        valid_rows = all[..m].to_vec();
        valid_rows.sort_unstable();
        for &r in &valid_rows {
            is_valid[r as usize] = true;
        }
    }
    let train_rows: Vec<u32> = (0..n as u32).filter(|&r| !is_valid[r as usize]).collect();
    let train_y: Vec<f64> = train_rows.iter().map(|&r| y[r as usize]).collect();
    let base = objective::base_margin(obj, &train_y);
    let mut margin: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();

    let mut trees: Vec<Vec<GuestNode>> = Vec::new();
    let mut rounds: Vec<Round> = Vec::new();
    let mut importance: BTreeMap<String, Importance> = BTreeMap::new();
    let mut best = (f64::INFINITY, 0usize);
    let (mut g, mut h) = (vec![0.0; n * k], vec![0.0; n * k]);

    for t in 0..cfg.trees {
        let started = Instant::now();
        objective::gradients(obj, &y, &margin, &mut g, &mut h);
        // Row sampling (public, seeded).
        let mut sampled = vec![false; n];
        let mut weight = vec![1.0f64; n];
        if let Some(goss) = &cfg.goss {
            let mut order = train_rows.clone();
            let mag = |r: u32| -> f64 { (0..k).map(|j| g[r as usize * k + j].abs()).sum::<f64>() };
            order.sort_by(|&a, &b| mag(b).total_cmp(&mag(a)).then(a.cmp(&b)));
            let top = ((goss.top_rate * order.len() as f64).round() as usize).min(order.len());
            let others =
                ((goss.other_rate * order.len() as f64).round() as usize).min(order.len() - top);
            for &r in &order[..top] {
                sampled[r as usize] = true;
            }
            let mut rest = order[top..].to_vec();
            shuffle(&mut rest, &mut stream(cfg.seed, u64::from(t), 2));
            let amp = (1.0 - goss.top_rate) / goss.other_rate;
            for &r in &rest[..others] {
                sampled[r as usize] = true;
                weight[r as usize] = amp;
            }
        } else if cfg.subsample < 1.0 {
            let mut rng = stream(cfg.seed, u64::from(t), 1);
            for &r in &train_rows {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                sampled[r as usize] = u < cfg.subsample;
            }
        } else {
            for &r in &train_rows {
                sampled[r as usize] = true;
            }
        }
        let mut gh = vec![0i128; n * w];
        for r in 0..n {
            if !sampled[r] {
                continue;
            }
            for j in 0..k {
                gh[r * w + 2 * j] = quantize(g[r * k + j] * weight[r], scale)?;
                gh[r * w + 2 * j + 1] = quantize(h[r * k + j] * weight[r], scale)?;
            }
        }
        let guest_only = cfg.privacy == Privacy::CompleteSecure && t == 0;
        hosts.start_tree(t, guest_only, &sampled, &gh).await?;
        let g_feats = sample_features(cfg, t, 0, input.binned.features());

        let mut tree: Vec<GuestNode> = vec![GuestNode::Leaf { weights: vec![] }];
        let root_total = sum_rows(&gh, w, &train_rows, &sampled);
        let mut frontier = vec![NodeState {
            id: 0,
            depth: 0,
            rows: (0..n as u32).collect(),
            sampled: sampled.iter().filter(|&&s| s).count(),
            total: root_total,
            parent: None,
            built: true,
            guest: vec![],
            hosts: vec![],
        }];
        let mut parents: Vec<(Vec<i128>, Vec<Vec<i128>>)> = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut host_feats: Vec<Vec<usize>> = vec![vec![]; host_layouts.len()];
        let (mut gs, mut hs) = (0u32, 0u32);
        let mut leaves: Vec<NodeState> = Vec::new();
        for depth in 0..=cfg.max_depth {
            let last = depth == cfg.max_depth || frontier.is_empty();
            let build: Vec<u32> = frontier.iter().filter(|s| s.built).map(|s| s.id).collect();
            let hh = if guest_only {
                vec![]
            } else {
                hosts
                    .level(t, depth, &parts, if last { &[] } else { &build }, last)
                    .await?
            };
            if last {
                leaves.append(&mut frontier);
                break;
            }
            if !guest_only {
                if hh.len() != host_layouts.len() || hh.iter().any(|x| x.nodes.len() != build.len())
                {
                    return Err(TreeError::Model(
                        "hosts returned the wrong number of histograms".into(),
                    ));
                }
                for (i, x) in hh.iter().enumerate() {
                    host_feats[i] = x.features.clone();
                }
            }
            // Histograms: build the smaller sibling, derive the larger.
            for (bi, s) in frontier.iter_mut().filter(|s| s.built).enumerate() {
                s.guest = hist::build(&g_layout, &columns, &g_feats, &s.rows, &gh, &sampled);
                s.hosts = hh.iter().map(|x| x.nodes[bi].clone()).collect();
            }
            for i in 0..frontier.len() {
                if frontier[i].built {
                    continue;
                }
                let Some(p) = frontier[i].parent else {
                    continue;
                };
                let sib = frontier
                    .iter()
                    .position(|s| s.parent == Some(p) && s.built)
                    .ok_or_else(|| TreeError::Model("internal: sibling missing".into()))?;
                let guest = hist::subtract(&parents[p].0, &frontier[sib].guest);
                let hsts: Vec<Vec<i128>> = parents[p]
                    .1
                    .iter()
                    .zip(&frontier[sib].hosts)
                    .map(|(a, b)| hist::subtract(a, b))
                    .collect();
                frontier[i].guest = guest;
                frontier[i].hosts = hsts;
            }
            // Choose splits.
            let mut decisions: Vec<(u32, Decision)> = Vec::new();
            let mut chosen: Vec<Option<(usize, hist::Candidate)>> = Vec::new();
            let mut next_id = tree.len() as u32;
            for s in &frontier {
                let mut best_c: Option<(usize, hist::Candidate)> =
                    hist::best_split(&g_layout, &s.guest, &g_feats, &s.total, &rules)
                        .map(|c| (0, c));
                if !guest_only {
                    for (hi, lay) in host_layouts.iter().enumerate() {
                        if let Some(c) =
                            hist::best_split(lay, &s.hosts[hi], &host_feats[hi], &s.total, &rules)
                            && best_c.as_ref().is_none_or(|(_, b)| c.gain > b.gain)
                        {
                            best_c = Some((hi + 1, c));
                        }
                    }
                }
                let d = match &best_c {
                    None => Decision::Leaf,
                    Some((0, _)) => {
                        next_id += 2;
                        Decision::Guest {
                            left: next_id - 2,
                            right: next_id - 1,
                        }
                    }
                    Some((p, c)) => {
                        next_id += 2;
                        Decision::Host {
                            party: p - 1,
                            split: split_id(c.feature, c.bin),
                            default_left: c.default_left,
                            left: next_id - 2,
                            right: next_id - 1,
                        }
                    }
                };
                decisions.push((s.id, d));
                chosen.push(best_c);
            }
            let host_bits = if guest_only {
                vec![]
            } else {
                hosts.decide(t, depth, &decisions).await?
            };
            let mut host_bits = host_bits.into_iter();
            // Apply: partitions, child states, tree nodes.
            parts = Vec::new();
            parents = Vec::new();
            let mut next: Vec<NodeState> = Vec::new();
            for ((s, (_, d)), c) in std::mem::take(&mut frontier)
                .into_iter()
                .zip(decisions)
                .zip(chosen)
            {
                let (left_bits, l_id, r_id) = match (&d, &c) {
                    (Decision::Leaf, _) | (_, None) => {
                        leaves.push(s);
                        continue;
                    }
                    (Decision::Guest { left, right }, Some((_, c))) => {
                        let f = c.feature;
                        let bins = &input.binned.bins()[f];
                        tree[s.id as usize] = GuestNode::Guest {
                            feature: f,
                            threshold: bins.thresholds[c.bin],
                            default_left: c.default_left,
                            left: *left,
                            right: *right,
                        };
                        gs += 1;
                        let e = importance.entry(input.names[f].clone()).or_default();
                        e.splits += 1;
                        e.gain += c.gain;
                        let missing = (bins.slots() - 1) as u8;
                        (
                            split_rows(columns[f], missing, c.bin, c.default_left, &s.rows),
                            *left,
                            *right,
                        )
                    }
                    (
                        Decision::Host {
                            party,
                            split,
                            left,
                            right,
                            ..
                        },
                        Some((_, c)),
                    ) => {
                        tree[s.id as usize] = GuestNode::Host {
                            party: *party,
                            split: *split,
                            left: *left,
                            right: *right,
                        };
                        hs += 1;
                        let e = importance
                            .entry(format!("{}/f{}", host_ids[*party], c.feature))
                            .or_default();
                        e.splits += 1;
                        e.gain += c.gain;
                        let b = host_bits.next().ok_or_else(|| {
                            TreeError::Model("a host did not return a partition".into())
                        })?;
                        if b.len() != s.rows.len().div_ceil(8) {
                            return Err(TreeError::Model(format!(
                                "host '{}' returned a partition of {} bytes for {} rows",
                                host_ids[*party],
                                b.len(),
                                s.rows.len()
                            )));
                        }
                        (b, *left, *right)
                    }
                };
                let (lrows, rrows) = apply_part(&s.rows, &left_bits);
                let Some((_, cand)) = c else { continue };
                let ltot = cand.left.clone();
                let rtot: Vec<i128> = s.total.iter().zip(&ltot).map(|(a, b)| a - b).collect();
                let lcount = lrows.iter().filter(|&&r| sampled[r as usize]).count();
                let rcount = s.sampled - lcount;
                parents.push((s.guest, s.hosts));
                let p = parents.len() - 1;
                let left_small = lcount <= rcount;
                tree.push(GuestNode::Leaf { weights: vec![] });
                tree.push(GuestNode::Leaf { weights: vec![] });
                for (id, rows, total, cnt, small) in [
                    (l_id, lrows, ltot, lcount, left_small),
                    (r_id, rrows, rtot, rcount, !left_small),
                ] {
                    next.push(NodeState {
                        id,
                        depth: depth + 1,
                        rows,
                        sampled: cnt,
                        total,
                        parent: Some(p),
                        built: small,
                        guest: vec![],
                        hosts: vec![],
                    });
                }
                parts.push(Part {
                    node: s.id,
                    left: left_bits,
                });
            }
            frontier = next;
        }
        // Leaf weights and margin updates (train and validation rows).
        for s in &leaves {
            let wts: Vec<f64> = rules
                .leaf(&s.total)
                .into_iter()
                .map(|v| v * cfg.learning_rate)
                .collect();
            for &r in &s.rows {
                for j in 0..k {
                    margin[r as usize * k + j] += wts[j];
                }
            }
            let _ = s.depth;
            tree[s.id as usize] = GuestNode::Leaf { weights: wts };
        }
        let nleaves = leaves.len() as u32;
        trees.push(tree);
        let train_loss = objective::eval_loss(obj, &y, &margin, &train_rows);
        let valid_loss =
            (!valid_rows.is_empty()).then(|| objective::eval_loss(obj, &y, &margin, &valid_rows));
        let c = hosts.take_counts();
        let round = Round {
            train_loss,
            valid_loss,
            leaves: nleaves,
            guest_splits: gs,
            host_splits: hs,
            encryptions: c.encryptions,
            decryptions: c.decryptions,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(t, &round);
        rounds.push(round);
        if let (Some(es), Some(v)) = (&cfg.early_stopping, valid_loss) {
            if v < best.0 {
                best = (v, trees.len());
            } else if trees.len() - best.1 >= es.rounds as usize {
                break;
            }
        }
    }
    if cfg.early_stopping.is_some() && best.1 > 0 {
        trees.truncate(best.1);
    }
    hosts.finish(trees.len() as u32).await?;
    Ok(GuestModel {
        objective: obj,
        base_margin: base,
        hosts: host_ids.to_vec(),
        feature_names: input.names.to_vec(),
        trees,
        rounds,
        importance,
        scheme: cfg.scheme,
        key_bits: cfg.key_bits,
        precision_bits: cfg.precision_bits,
    })
}

fn sum_rows(gh: &[i128], w: usize, rows: &[u32], sampled: &[bool]) -> Vec<i128> {
    let mut out = vec![0i128; w];
    for &r in rows {
        if sampled[r as usize] {
            for (o, v) in out
                .iter_mut()
                .zip(&gh[r as usize * w..(r as usize + 1) * w])
            {
                *o += v;
            }
        }
    }
    out
}
