//! A host's view of the tree being grown: which rows are in which open node, the
//! shape of the tree, and its own splits. Shared by the in-process twin hosts and
//! the remote host of the secure protocol; every instruction from the guest is
//! checked against this state (unknown nodes, wrong child ids, partitions of the
//! wrong size, split ids out of range) so a malformed or hostile guest message is
//! an error, never a panic or a corrupted model. A refusal is a [`Refusal`]; the
//! remote host reports it as a peer error naming the guest and the message
//! (`FedError::malformed`), the in-process twin as an internal model error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::binning::Binned;
use crate::config::Config;
use crate::error::TreeError;
use crate::grow::{Decision, Part, apply_part, sample_features, split_of_id, split_rows};
use crate::model::{HostNode, Importance};

pub(crate) struct HostState<'a> {
    /// This host's index among the hosts.
    pub(crate) me: usize,
    pub(crate) binned: &'a Binned,
    pub(crate) trees: Vec<Vec<HostNode>>,
    pub(crate) importance: BTreeMap<usize, Importance>,
    cur: Vec<HostNode>,
    open: HashMap<u32, Vec<u32>>,
    pending: HashMap<u32, (u32, u32)>,
    own_bits: HashMap<u32, Vec<u8>>,
    pub(crate) feats: Vec<usize>,
    active: bool,
}

/// A guest instruction that contradicts this host's state (what was wrong,
/// in terms of node and split ids and sizes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest instruction rejected: {}", self.0)
    }
}

impl Refusal {
    /// For the in-process twin, whose "guest" is this process: a refusal there
    /// is a bug, not a peer's fault.
    pub(crate) fn internal(self) -> TreeError {
        TreeError::Model(self.to_string())
    }
}

type Result<T> = std::result::Result<T, Refusal>;

fn bad(msg: impl Into<String>) -> Refusal {
    Refusal(msg.into())
}

impl<'a> HostState<'a> {
    pub(crate) fn new(me: usize, binned: &'a Binned) -> Self {
        HostState {
            me,
            binned,
            trees: Vec::new(),
            importance: BTreeMap::new(),
            cur: Vec::new(),
            open: HashMap::new(),
            pending: HashMap::new(),
            own_bits: HashMap::new(),
            feats: Vec::new(),
            active: false,
        }
    }

    pub(crate) fn start_tree(&mut self, cfg: &Config, tree: u32, guest_only: bool) -> Result<()> {
        if self.active {
            return Err(bad("a new tree started before the previous one ended"));
        }
        if tree as usize != self.trees.len() {
            return Err(bad(format!(
                "tree {tree} started, expected tree {}",
                self.trees.len()
            )));
        }
        self.cur = vec![HostNode::Leaf];
        self.open.clear();
        self.pending.clear();
        self.own_bits.clear();
        self.feats = sample_features(cfg, tree, self.me + 1, self.binned.features());
        if guest_only {
            // Complete-secure first tree: the host only learns that it exists.
            self.trees.push(vec![HostNode::Leaf]);
            return Ok(());
        }
        self.open
            .insert(0, (0..self.binned.rows() as u32).collect());
        self.active = true;
        Ok(())
    }

    /// Applies the partitions of the previous level's splits.
    pub(crate) fn apply_parts(&mut self, parts: &[Part]) -> Result<()> {
        for p in parts {
            let (l, r) = self
                .pending
                .remove(&p.node)
                .ok_or_else(|| bad(format!("partition of node {} that was not split", p.node)))?;
            let rows = self
                .open
                .remove(&p.node)
                .ok_or_else(|| bad(format!("node {} is not open", p.node)))?;
            if p.left.len() != rows.len().div_ceil(8)
                || (!rows.len().is_multiple_of(8)
                    && p.left.last().is_some_and(|b| b >> (rows.len() % 8) != 0))
            {
                return Err(bad(format!(
                    "partition of node {} has {} bytes for {} rows",
                    p.node,
                    p.left.len(),
                    rows.len()
                )));
            }
            if let Some(own) = self.own_bits.remove(&p.node)
                && own != p.left
            {
                return Err(bad(format!(
                    "partition of node {} differs from this host's own split",
                    p.node
                )));
            }
            let (lr, rr) = apply_part(&rows, &p.left);
            self.open.insert(l, lr);
            self.open.insert(r, rr);
        }
        if let Some(node) = self.pending.keys().next() {
            return Err(bad(format!("no partition for split node {node}")));
        }
        Ok(())
    }

    pub(crate) fn rows(&self, node: u32) -> Result<&[u32]> {
        self.open
            .get(&node)
            .map(Vec::as_slice)
            .ok_or_else(|| bad(format!("histogram of node {node}, which is not open")))
    }

    /// Records one level's decisions; returns the partitions of this host's splits.
    pub(crate) fn decide(&mut self, decisions: &[(u32, Decision)]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (node, d) in decisions {
            if !seen.insert(*node) {
                return Err(bad(format!("node {node} decided twice")));
            }
            let rows = self
                .open
                .get(node)
                .ok_or_else(|| bad(format!("decision for node {node}, which is not open")))?;
            let children = |l: u32, r: u32, len: usize| -> Result<()> {
                if l as usize != len || r as usize != len + 1 {
                    return Err(bad(format!(
                        "children {l}, {r} of node {node}; expected {len}, {}",
                        len + 1
                    )));
                }
                Ok(())
            };
            let node_kind = match d {
                Decision::Leaf => {
                    self.open.remove(node);
                    HostNode::Leaf
                }
                Decision::Guest { left, right } => {
                    children(*left, *right, self.cur.len())?;
                    HostNode::Other {
                        left: *left,
                        right: *right,
                    }
                }
                Decision::Host {
                    party,
                    split,
                    default_left,
                    left,
                    right,
                } => {
                    children(*left, *right, self.cur.len())?;
                    if *party == self.me {
                        let (f, b) = split_of_id(*split);
                        let bins = self
                            .binned
                            .bins()
                            .get(f)
                            .filter(|_| self.feats.contains(&f))
                            .ok_or_else(|| bad(format!("split id {split}: no such feature")))?;
                        if b + 1 >= bins.value_bins() {
                            return Err(bad(format!("split id {split}: no such bin")));
                        }
                        let missing = (bins.slots() - 1) as u8;
                        let bits =
                            split_rows(self.binned.column(f), missing, b, *default_left, rows);
                        self.own_bits.insert(*node, bits.clone());
                        out.push(bits);
                        let e = self.importance.entry(f).or_default();
                        e.splits += 1;
                        HostNode::Own {
                            feature: f,
                            threshold: bins.thresholds[b],
                            default_left: *default_left,
                            left: *left,
                            right: *right,
                        }
                    } else {
                        HostNode::Other {
                            left: *left,
                            right: *right,
                        }
                    }
                }
            };
            if let HostNode::Own { left, right, .. } | HostNode::Other { left, right } = &node_kind
            {
                self.pending.insert(*node, (*left, *right));
                self.cur.push(HostNode::Leaf);
                self.cur.push(HostNode::Leaf);
            }
            let slot = self
                .cur
                .get_mut(*node as usize)
                .ok_or_else(|| bad(format!("node {node} out of range")))?;
            *slot = node_kind;
        }
        // Every open node of this level must be decided.
        if let Some(n) = self
            .open
            .keys()
            .find(|n| !seen.contains(n) && !self.pending.contains_key(n))
        {
            return Err(bad(format!("open node {n} was not decided")));
        }
        Ok(out)
    }

    /// Ends the tree.
    pub(crate) fn end_tree(&mut self) {
        self.trees.push(std::mem::take(&mut self.cur));
        self.open.clear();
        self.active = false;
    }
}
