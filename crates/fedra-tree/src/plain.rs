//! The plaintext twin: the same boosting loop with in-process hosts that see the
//! fixed-point gradients in the clear. It is the test oracle of the secure
//! protocol (same seed, same bins ⇒ the same model, bit for bit) and a fast way
//! to try parameters on data that may be pooled.

use std::collections::BTreeMap;

use fedra_data::Dataset;
use fedra_federation::PartyId;

use crate::binning::Binned;
use crate::config::{Config, Scheme};
use crate::error::{Result, TreeError};
use crate::grow::{self, Decision, GuestInput, HostHists, Hosts, Part};
use crate::hist::{self, Layout};
use crate::host::{HostState, Refusal};
use crate::model::{GuestModel, HostModel, Importance};
use crate::objective;
use crate::predict;

struct LocalHosts<'a> {
    cfg: &'a Config,
    states: Vec<HostState<'a>>,
    layouts: Vec<Layout>,
    gh: Vec<i128>,
    sampled: Vec<bool>,
}

impl Hosts for LocalHosts<'_> {
    fn layouts(&self) -> &[Layout] {
        &self.layouts
    }

    async fn start_tree(
        &mut self,
        tree: u32,
        guest_only: bool,
        sampled: &[bool],
        gh: &[i128],
    ) -> Result<()> {
        for s in &mut self.states {
            s.start_tree(self.cfg, tree, guest_only)
                .map_err(Refusal::internal)?;
        }
        self.gh = gh.to_vec();
        self.sampled = sampled.to_vec();
        Ok(())
    }

    async fn level(
        &mut self,
        _tree: u32,
        _depth: u32,
        parts: &[Part],
        build: &[u32],
        last: bool,
    ) -> Result<Vec<HostHists>> {
        let mut out = Vec::new();
        for (s, lay) in self.states.iter_mut().zip(&self.layouts) {
            s.apply_parts(parts).map_err(Refusal::internal)?;
            if last {
                s.end_tree();
                continue;
            }
            let cols: Vec<&[u8]> = (0..s.binned.features())
                .map(|j| s.binned.column(j))
                .collect();
            let mut nodes = Vec::new();
            for &b in build {
                nodes.push(hist::build(
                    lay,
                    &cols,
                    &s.feats,
                    s.rows(b).map_err(Refusal::internal)?,
                    &self.gh,
                    &self.sampled,
                ));
            }
            out.push(HostHists {
                features: s.feats.clone(),
                nodes,
            });
        }
        Ok(out)
    }

    async fn decide(
        &mut self,
        _tree: u32,
        _depth: u32,
        decisions: &[(u32, Decision)],
    ) -> Result<Vec<Vec<u8>>> {
        let mut per_host: Vec<std::vec::IntoIter<Vec<u8>>> = Vec::new();
        for s in &mut self.states {
            per_host.push(s.decide(decisions).map_err(Refusal::internal)?.into_iter());
        }
        let mut out = Vec::new();
        for (_, d) in decisions {
            if let Decision::Host { party, .. } = d
                && let Some(b) = per_host.get_mut(*party).and_then(Iterator::next)
            {
                out.push(b);
            }
        }
        Ok(out)
    }

    async fn finish(&mut self, trees: u32) -> Result<()> {
        for s in &mut self.states {
            s.trees.truncate(trees as usize);
        }
        Ok(())
    }

    fn take_counts(&mut self) -> crate::grow::Counts {
        crate::grow::Counts::default()
    }
}

pub(crate) fn host_model(
    guest: &PartyId,
    scheme: Scheme,
    names: &[String],
    trees: Vec<Vec<crate::model::HostNode>>,
    imp: &BTreeMap<usize, Importance>,
) -> HostModel {
    HostModel {
        guest: guest.clone(),
        scheme,
        feature_names: names.to_vec(),
        trees,
        importance: imp
            .iter()
            .map(|(f, i)| (names.get(*f).cloned().unwrap_or_default(), i.clone()))
            .collect(),
    }
}

/// Trains the plaintext twin on the guest's and the hosts' datasets (aligned rows,
/// same order). Returns the guest's model and each host's, exactly as the secure
/// protocol would (given the same configuration).
pub fn train_plaintext(
    cfg: &Config,
    guest: &Dataset,
    hosts: &[&Dataset],
) -> Result<(GuestModel, Vec<HostModel>)> {
    cfg.validate()?;
    if hosts.len() != cfg.hosts.len() {
        return Err(TreeError::Data(format!(
            "{} host datasets for {} hosts",
            hosts.len(),
            cfg.hosts.len()
        )));
    }
    let y = guest
        .labels()
        .ok_or_else(|| TreeError::Data("the guest's dataset has no label column".into()))?;
    let gb = Binned::fit(guest.features(), guest.n_rows(), cfg.max_bins as usize)?;
    let hb: Vec<Binned> = hosts
        .iter()
        .map(|d| {
            if d.n_rows() != guest.n_rows() {
                return Err(TreeError::Data(format!(
                    "a host has {} rows, the guest {}",
                    d.n_rows(),
                    guest.n_rows()
                )));
            }
            Binned::fit(d.features(), d.n_rows(), cfg.max_bins as usize)
        })
        .collect::<Result<_>>()?;
    let k = cfg.objective.outputs();
    let mut lh = LocalHosts {
        cfg,
        states: hb
            .iter()
            .enumerate()
            .map(|(i, b)| HostState::new(i, b))
            .collect(),
        layouts: hb.iter().map(|b| Layout::new(b.slots(), k)).collect(),
        gh: vec![],
        sampled: vec![],
    };
    let input = GuestInput {
        binned: &gb,
        y,
        names: guest.feature_names(),
    };
    let fut = grow::grow(cfg, input, &cfg.hosts, &mut lh, |_, _| {});
    let gm = block_on(fut)?;
    let hms = lh
        .states
        .into_iter()
        .zip(hosts)
        .map(|(s, d)| {
            host_model(
                &cfg.guest,
                cfg.scheme,
                d.feature_names(),
                s.trees,
                &s.importance,
            )
        })
        .collect();
    Ok((gm, hms))
}

/// Predictions (probabilities, row-major class probabilities, or values) of a
/// model whose parts are all local.
pub fn predict_plaintext(
    guest: &GuestModel,
    hosts: &[HostModel],
    guest_data: &Dataset,
    host_data: &[&Dataset],
) -> Result<Vec<f64>> {
    let rows = guest_data.n_rows();
    let bits = hosts
        .iter()
        .zip(host_data)
        .map(|(m, d)| {
            if d.n_rows() != rows {
                return Err(TreeError::Data(format!(
                    "a host has {} rows, the guest {rows}",
                    d.n_rows()
                )));
            }
            predict::host_bits(m, d.features(), rows)
        })
        .collect::<Result<Vec<_>>>()?;
    let m = predict::guest_margins(guest, guest_data.features(), rows, &bits)?;
    Ok(objective::transform(guest.objective, &m))
}

/// Runs a future that never waits on I/O (the in-process hosts) to completion.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
