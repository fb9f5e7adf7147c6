//! The secure protocol over [`Channel`]: the guest's side implements
//! [`Hosts`] with messages to remote hosts; [`run_host`] is a host's side.
//!
//! Messages (tag name, direction, content):
//! * `key` G→H: scheme id and the guest's public key.
//! * `meta` H→G: row count and the number of histogram slots per host feature.
//! * `start` (round t) G→H: tree t — sampled-row bitmap and one or more packed
//!   ciphertexts per sampled row — or "done, keep n trees".
//! * `level` (round t·256+d) G→H: partitions of the previous level's splits and
//!   the nodes whose histograms to build (or "tree complete").
//! * `hist` H→G: per requested node and sampled feature, a bitmap of non-empty
//!   slots and one re-randomised ciphertext sum per non-empty slot.
//! * `decide` G→H: per open node: leaf / guest split / host h split id k (+ the
//!   missing-value direction) and child ids.
//! * `bits` H→G: the partition of each split this host owns.

use std::sync::Arc;

use fedra_data::Dataset;
use fedra_federation::codec::{CodecError, Writer};
use fedra_federation::{Channel, FedError, PartyId, Tag};
use fedra_he::{AdditiveScheme, HePublicKey, OkamotoUchiyama, Paillier, Plaintext};
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::binning::Binned;
use crate::codec::{Clear, Codec, He};
use crate::config::{Config, Scheme};
use crate::error::{Result, TreeError, he};
use crate::grow::{self, Decision, GuestInput, HostHists, Hosts, Part, bitmap};
use crate::hist::Layout;
use crate::host::{HostState, Refusal};
use crate::model::{GuestModel, HostModel, Round};
use crate::pack;
use crate::plain::host_model;
use crate::wire::{items, read};

/// Largest feature count accepted from a peer.
const MAX_FEATURES: usize = 1 << 20;

fn tag(task: &str, round: u64, name: &str) -> Tag {
    Tag::new(task, round, name)
}

fn level_round(tree: u32, depth: u32) -> u64 {
    (u64::from(tree) << 8) | u64::from(depth)
}

fn role_err(me: &PartyId, what: &str) -> TreeError {
    TreeError::Config {
        field: "guest/hosts",
        reason: format!("this party is '{me}', which is not {what}"),
    }
}

/// Ciphertext counters of a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Homomorphic additions into histogram bins.
    pub additions: u64,
    /// Re-randomised ciphertexts sent to the guest.
    pub rerandomized: u64,
}

fn prepare(data: &Dataset, cfg: &Config) -> Result<Binned> {
    Binned::fit(data.features(), data.n_rows(), cfg.max_bins as usize)
}

/// Trains as the guest (label holder, key owner). `progress` is called after every round.
pub async fn train_guest<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    cfg: &Config,
    data: &Dataset,
    rng: &mut R,
    progress: impl FnMut(u32, &Round) + Send,
) -> Result<GuestModel> {
    cfg.validate()?;
    if *ch.me() != cfg.guest {
        return Err(role_err(ch.me(), "the guest"));
    }
    let y = data
        .labels()
        .ok_or_else(|| TreeError::Data("the guest's dataset has no label column".into()))?;
    let binned = prepare(data, cfg)?;
    let input = GuestInput {
        binned: &binned,
        y,
        names: data.feature_names(),
    };
    match cfg.scheme {
        Scheme::Ou => he_guest::<OkamotoUchiyama, R>(ch, task, cfg, input, rng, progress).await,
        Scheme::Paillier => he_guest::<Paillier, R>(ch, task, cfg, input, rng, progress).await,
        Scheme::InsecurePlaintext => guest(ch, task, cfg, input, Clear, &[], rng, progress).await,
    }
}

/// The wire id of a scheme (the first byte of the `key` message).
pub(crate) fn scheme_id(s: Scheme) -> u8 {
    match s {
        Scheme::Ou => 0,
        Scheme::Paillier => 1,
        Scheme::InsecurePlaintext => 2,
    }
}

/// The guest with a fresh key pair of scheme `S` (fixed-base tables are built on
/// first use).
async fn he_guest<S: AdditiveScheme, R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    cfg: &Config,
    input: GuestInput<'_>,
    rng: &mut R,
    progress: impl FnMut(u32, &Round) + Send,
) -> Result<GuestModel> {
    let (pk, sk) = S::generate_keypair(cfg.key_bits, rng).map_err(he("key generation"))?;
    let key = pk.to_bytes();
    let codec = He::<S> { pk, sk: Some(sk) };
    guest(ch, task, cfg, input, codec, &key, rng, progress).await
}

/// Trains as a host (features only). Returns its part of the model and its counters.
pub async fn train_host<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    cfg: &Config,
    data: &Dataset,
    rng: &mut R,
) -> Result<(HostModel, HostCounters)> {
    cfg.validate()?;
    let me = cfg
        .hosts
        .iter()
        .position(|h| h == ch.me())
        .ok_or_else(|| role_err(ch.me(), "one of the hosts"))?;
    let binned = prepare(data, cfg)?;
    let g = &cfg.guest;
    let t = tag(task, 0, "key");
    let msg = ch.recv(g, &t).await?;
    let (scheme, key) = read(g, &t, &msg, |r| Ok((r.u8()?, r.bytes("key", 1 << 20)?)))?;
    let want = scheme_id(cfg.scheme);
    if scheme != want {
        return Err(
            FedError::malformed(g, &t, format!("scheme {scheme}, the job says {want}")).into(),
        );
    }
    let (trees, imp, counters) = match cfg.scheme {
        Scheme::Ou => {
            let pk = <OkamotoUchiyama as AdditiveScheme>::PublicKey::from_bytes(key)
                .map_err(|e| FedError::malformed(g, &t, e))?;
            run_host(
                ch,
                task,
                cfg,
                me,
                &binned,
                He::<OkamotoUchiyama> { pk, sk: None },
                rng,
            )
            .await?
        }
        Scheme::Paillier => {
            let pk = <Paillier as AdditiveScheme>::PublicKey::from_bytes(key)
                .map_err(|e| FedError::malformed(g, &t, e))?;
            run_host(
                ch,
                task,
                cfg,
                me,
                &binned,
                He::<Paillier> { pk, sk: None },
                rng,
            )
            .await?
        }
        Scheme::InsecurePlaintext => run_host(ch, task, cfg, me, &binned, Clear, rng).await?,
    };
    Ok((
        host_model(g, cfg.scheme, data.feature_names(), trees, &imp),
        counters,
    ))
}

struct Remote<'a, C: Codec, R: ?Sized> {
    ch: &'a dyn Channel,
    task: &'a str,
    hosts: Vec<PartyId>,
    layouts: Vec<Layout>,
    codec: Arc<C>,
    rng: &'a mut R,
    k: usize,
    rows: usize,
    /// Slot width and classes per ciphertext of the current tree.
    slot_bits: u32,
    per_ct: usize,
    /// Bins the host packs into one ciphertext (shifted by `2·per_ct·slot_bits` bits each).
    pack_bins: usize,
    counts: (u64, u64),
    bytes_mark: (u64, u64),
    next_tree: u32,
}

#[allow(clippy::too_many_arguments)]
async fn guest<C: Codec + 'static, R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    cfg: &Config,
    input: GuestInput<'_>,
    codec: C,
    key: &[u8],
    rng: &mut R,
    progress: impl FnMut(u32, &Round) + Send,
) -> Result<GuestModel> {
    let mut w = Writer::with_capacity(5 + key.len());
    w.u8(scheme_id(cfg.scheme)).bytes(key);
    let msg = w.into_bytes();
    let t = tag(task, 0, "key");
    fedra_federation::broadcast(ch, &cfg.hosts, &t, msg).await?;
    let t = tag(task, 0, "meta");
    let mut layouts = Vec::new();
    let k = cfg.objective.outputs();
    for h in &cfg.hosts {
        let msg = ch.recv(h, &t).await?;
        let slots = read(h, &t, &msg, |r| {
            let rows = r.u64()?;
            if rows != input.binned.rows() as u64 {
                return Err(r.invalid(format!(
                    "host has {rows} rows, the guest {}",
                    input.binned.rows()
                )));
            }
            let nf = r.count("features", MAX_FEATURES, 4)?;
            (0..nf)
                .map(|_| {
                    let s = r.u32()? as usize;
                    if !(2..=256).contains(&s) {
                        return Err(r.invalid(format!("{s} histogram slots, allowed 2..=256")));
                    }
                    Ok(s)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })?;
        layouts.push(Layout::new(slots, k));
    }
    let mut remote = Remote {
        ch,
        task,
        hosts: cfg.hosts.clone(),
        layouts,
        codec: Arc::new(codec),
        rng,
        k,
        rows: input.binned.rows(),
        slot_bits: 0,
        per_ct: 1,
        pack_bins: 1,
        counts: (0, 0),
        bytes_mark: (0, 0),
        next_tree: 0,
    };
    grow::grow(cfg, input, &cfg.hosts, &mut remote, progress).await
}

impl<C: Codec, R: CryptoRng + Send + ?Sized> Remote<'_, C, R> {
    fn chunks(&self) -> usize {
        self.k.div_ceil(self.per_ct)
    }

    fn classes_in(&self, c: usize) -> usize {
        (self.k - c * self.per_ct).min(self.per_ct)
    }
}

impl<C: Codec, R: CryptoRng + Send + ?Sized> Hosts for Remote<'_, C, R> {
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
        let w = 2 * self.k;
        let n_sampled = sampled.iter().filter(|&&s| s).count();
        let mut msg = Writer::new();
        msg.u8(0).bool(guest_only);
        if guest_only {
            msg.u32(0)
                .u32(1)
                .u32(0)
                .raw(&bitmap(sampled.iter().map(|_| false)))
                .count(0);
        } else {
            // Slot width: every sum over any subset of sampled rows must fit.
            let max_abs = gh.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            let bound = max_abs.saturating_mul(n_sampled.max(1) as u128);
            let s = 128 - bound.leading_zeros() + 2;
            if s > 126 {
                return Err(TreeError::Config {
                    field: "precision_bits",
                    reason: format!(
                        "gradient sums need {s} bits per slot (at most 126); lower precision_bits"
                    ),
                });
            }
            let per_ct = ((self.codec.capacity_bits().saturating_sub(4)) / (2 * s)) as usize;
            if per_ct == 0 {
                return Err(TreeError::Config {
                    field: "key_bits",
                    reason: "the plaintext space cannot hold one (g, h) pair".into(),
                });
            }
            self.slot_bits = s;
            self.per_ct = per_ct.min(self.k);
            let chunks = self.chunks();
            let mut plain: Vec<Plaintext> = Vec::with_capacity(n_sampled * chunks);
            for (r, &smp) in sampled.iter().enumerate() {
                if !smp {
                    continue;
                }
                let row = &gh[r * w..(r + 1) * w];
                for c in 0..chunks {
                    let lo = 2 * c * self.per_ct;
                    let hi = lo + 2 * self.classes_in(c);
                    plain.push(pack::pack(&row[lo..hi], s));
                }
            }
            let cts = self.codec.encrypt(&plain, self.rng)?;
            self.counts.0 += cts.len() as u64;
            // The host packs several bins' sums into one ciphertext before sending:
            // far fewer re-randomisations and decryptions.
            let bin_bits = 2 * self.per_ct as u32 * s;
            self.pack_bins =
                ((self.codec.capacity_bits().saturating_sub(4) / bin_bits) as usize).clamp(1, 64);
            msg.u32(chunks as u32)
                .u32(self.pack_bins as u32)
                .u32(bin_bits)
                .raw(&bitmap(sampled.iter().copied()))
                .count(cts.len());
            for c in &cts {
                self.codec.write(c, &mut msg);
            }
        }
        let t = tag(self.task, u64::from(tree), "start");
        self.next_tree = tree + 1;
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.into_bytes()).await?;
        Ok(())
    }

    async fn level(
        &mut self,
        tree: u32,
        depth: u32,
        parts: &[Part],
        build: &[u32],
        last: bool,
    ) -> Result<Vec<HostHists>> {
        let mut msg = Writer::new();
        msg.bool(last).count(parts.len());
        for p in parts {
            msg.u32(p.node).bytes(&p.left);
        }
        msg.count(build.len());
        for b in build {
            msg.u32(*b);
        }
        let t = tag(self.task, level_round(tree, depth), "level");
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.into_bytes()).await?;
        if last {
            return Ok(vec![]);
        }
        let t = tag(self.task, level_round(tree, depth), "hist");
        let chunks = self.chunks();
        let width = self.codec.width();
        // Parse every host's message, then decrypt all items at once (both cores).
        // Items come per (node, feature, chunk) in groups of up to `pack_bins`
        // non-empty slots packed into one ciphertext.
        struct Group {
            node: usize,
            feature: usize,
            chunk: usize,
            slots: Vec<usize>,
        }
        let pb = self.pack_bins;
        let mut parsed = Vec::new();
        let mut all_items = Vec::new();
        for (hi, h) in self.hosts.iter().enumerate() {
            let msg = self.ch.recv(h, &t).await?;
            let lay = &self.layouts[hi];
            let (features, groups, raw) = read(h, &t, &msg, |r| {
                let nf = r.count("sampled features", lay.slots.len(), 4)?;
                let mut features: Vec<usize> = Vec::with_capacity(nf);
                for _ in 0..nf {
                    let f = r.u32()? as usize;
                    if f >= lay.slots.len() || features.last().is_some_and(|&l| l >= f) {
                        return Err(r.invalid(format!("feature {f} out of range or out of order")));
                    }
                    features.push(f);
                }
                let mut groups = Vec::new();
                let mut raw: Vec<&[u8]> = Vec::new();
                for node in 0..build.len() {
                    for &f in &features {
                        let ns = lay.slots[f];
                        let bits = r.take(ns.div_ceil(8))?;
                        if !ns.is_multiple_of(8) && bits.last().is_some_and(|b| b >> (ns % 8) != 0)
                        {
                            return Err(r.invalid("bits set beyond the last slot"));
                        }
                        let present: Vec<usize> = (0..ns).filter(|&s| grow::bit(bits, s)).collect();
                        for chunk in 0..chunks {
                            for g in present.chunks(pb) {
                                raw.push(r.take(width)?);
                                groups.push(Group {
                                    node,
                                    feature: f,
                                    chunk,
                                    slots: g.to_vec(),
                                });
                            }
                        }
                    }
                }
                Ok((features, groups, raw))
            })?;
            let items = self
                .codec
                .parse(&raw)
                .map_err(|(i, e)| FedError::malformed(h, &t, format!("item {i}: {e}")))?;
            all_items.push(items);
            parsed.push((features, groups));
        }
        let flat: Vec<C::Item> = all_items.iter().flatten().cloned().collect();
        let plain = self.codec.decrypt(&flat)?;
        self.counts.1 += plain.len() as u64;
        let s = self.slot_bits;
        let per_bin = 2 * self.per_ct;
        let sizes: Vec<usize> = parsed
            .iter()
            .flat_map(|(_, g)| g.iter().map(|g| g.slots.len() * per_bin))
            .collect();
        let decoded: Vec<Vec<i128>> = plain
            .par_iter()
            .zip(sizes.par_iter())
            .map(|(p, &n)| pack::unpack(p, s, n))
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        let mut it = decoded.into_iter();
        for (hi, (features, groups)) in parsed.into_iter().enumerate() {
            let lay = &self.layouts[hi];
            let w = 2 * self.k;
            let mut nodes = vec![vec![0i128; lay.len()]; build.len()];
            for g in groups {
                let vals = it
                    .next()
                    .ok_or_else(|| TreeError::Model("internal: item count".into()))?;
                let here = 2 * self.classes_in(g.chunk);
                for (j, &slot) in g.slots.iter().enumerate() {
                    let base = (lay.offsets[g.feature] + slot) * w + 2 * g.chunk * self.per_ct;
                    nodes[g.node][base..base + here]
                        .copy_from_slice(&vals[j * per_bin..j * per_bin + here]);
                }
            }
            out.push(HostHists { features, nodes });
        }
        Ok(out)
    }

    async fn decide(
        &mut self,
        tree: u32,
        depth: u32,
        decisions: &[(u32, Decision)],
    ) -> Result<Vec<Vec<u8>>> {
        let mut msg = Writer::new();
        msg.count(decisions.len());
        for (node, d) in decisions {
            msg.u32(*node);
            match d {
                Decision::Leaf => {
                    msg.u8(0);
                }
                Decision::Guest { left, right } => {
                    msg.u8(1).u32(*left).u32(*right);
                }
                Decision::Host {
                    party,
                    split,
                    default_left,
                    left,
                    right,
                } => {
                    msg.u8(2)
                        .u32(*left)
                        .u32(*right)
                        .u32(*party as u32)
                        .u32(*split)
                        .bool(*default_left);
                }
            }
        }
        let t = tag(self.task, level_round(tree, depth), "decide");
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.into_bytes()).await?;
        let t = tag(self.task, level_round(tree, depth), "bits");
        let mut per_host = Vec::new();
        for (hi, h) in self.hosts.iter().enumerate() {
            let msg = self.ch.recv(h, &t).await?;
            let owned = decisions
                .iter()
                .filter(|(_, d)| matches!(d, Decision::Host { party, .. } if *party == hi))
                .count();
            let max = self.rows.div_ceil(8);
            let v = read(h, &t, &msg, |r| {
                let c = r.exact_count("partitions", owned)?;
                (0..c)
                    .map(|_| Ok(r.bytes("partition", max)?.to_vec()))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })?;
            per_host.push(v.into_iter());
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
        let mut msg = Writer::with_capacity(5);
        msg.u8(1).u32(trees);
        let t = tag(self.task, u64::from(self.next_tree), "start");
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.into_bytes()).await?;
        Ok(())
    }

    fn take_counts(&mut self) -> crate::grow::Counts {
        let (sent, received) = self
            .ch
            .stats()
            .iter()
            .filter(|s| self.hosts.iter().any(|h| h.as_str() == s.peer))
            .fold((0, 0), |a, s| {
                (a.0 + s.payload_bytes_sent, a.1 + s.payload_bytes_received)
            });
        let (enc, dec) = std::mem::take(&mut self.counts);
        let c = crate::grow::Counts {
            encryptions: enc,
            decryptions: dec,
            bytes_sent: sent - self.bytes_mark.0.min(sent),
            bytes_received: received - self.bytes_mark.1.min(received),
        };
        self.bytes_mark = (sent, received);
        c
    }
}

/// The peer error for a guest instruction this host refuses: names the guest
/// and the message.
fn refused<'a>(guest: &'a PartyId, t: &'a Tag) -> impl FnOnce(Refusal) -> TreeError + 'a {
    move |e| FedError::malformed(guest, t, e).into()
}

/// A `start` message: the end of training, or the next tree.
enum Start<'m> {
    Done {
        keep: u32,
    },
    Tree {
        guest_only: bool,
        chunks: usize,
        pack_bins: usize,
        bin_bits: u32,
        sampled: Vec<bool>,
        raw: Vec<&'m [u8]>,
    },
}

type HostOut = (
    Vec<Vec<crate::model::HostNode>>,
    std::collections::BTreeMap<usize, crate::model::Importance>,
    HostCounters,
);

/// A host's side of training.
async fn run_host<C: Codec, R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    cfg: &Config,
    me: usize,
    binned: &Binned,
    codec: C,
    rng: &mut R,
) -> Result<HostOut> {
    let g = &cfg.guest;
    let n = binned.rows();
    let mut w = Writer::new();
    w.u64(n as u64).count(binned.features());
    for s in binned.slots() {
        w.u32(s as u32);
    }
    ch.send(g, &tag(task, 0, "meta"), w.into_bytes()).await?;
    let mut state = HostState::new(me, binned);
    let mut counters = HostCounters::default();
    let width = codec.width();
    let mut tree = 0u32;
    loop {
        // The guest announces tree `tree` or the end of training.
        let t = tag(task, u64::from(tree), "start");
        let msg = ch.recv(g, &t).await?;
        let start = read(g, &t, &msg, |r| {
            if r.u8()? == 1 {
                return Ok(Start::Done { keep: r.u32()? });
            }
            if tree >= cfg.trees {
                return Err(r.invalid("more trees than the job allows"));
            }
            let guest_only = r.bool()?;
            let chunks = r.u32()? as usize;
            if chunks > 64 {
                return Err(r.invalid(format!("{chunks} ciphertexts per row, at most 64")));
            }
            let pack_bins = r.u32()? as usize;
            let bin_bits = r.u32()?;
            if !(1..=64).contains(&pack_bins)
                || (pack_bins > 1
                    && (bin_bits == 0
                        || u64::from(bin_bits) * pack_bins as u64
                            > u64::from(codec.capacity_bits())))
            {
                return Err(r.invalid(format!(
                    "packing {pack_bins} bins of {bin_bits} bits exceeds the plaintext capacity"
                )));
            }
            let sampled_bits = r.take(n.div_ceil(8))?;
            let sampled: Vec<bool> = (0..n).map(|i| grow::bit(sampled_bits, i)).collect();
            let n_sampled = sampled.iter().filter(|&&s| s).count();
            let expect = if guest_only { 0 } else { n_sampled * chunks };
            let count = r.exact_count("ciphertexts", expect)?;
            Ok(Start::Tree {
                guest_only,
                chunks,
                pack_bins,
                bin_bits,
                sampled,
                raw: items(r, count, width)?,
            })
        })?;
        let (guest_only, chunks, pack_bins, bin_bits, sampled, raw) = match start {
            Start::Done { keep } => {
                let keep = keep as usize;
                if keep > state.trees.len() {
                    return Err(FedError::malformed(
                        g,
                        &t,
                        format!("keep {keep} trees, only {} grown", state.trees.len()),
                    )
                    .into());
                }
                state.trees.truncate(keep);
                return Ok((state.trees, state.importance, counters));
            }
            Start::Tree {
                guest_only,
                chunks,
                pack_bins,
                bin_bits,
                sampled,
                raw,
            } => (guest_only, chunks, pack_bins, bin_bits, sampled, raw),
        };
        let items = codec
            .parse(&raw)
            .map_err(|(i, e)| FedError::malformed(g, &t, format!("ciphertext {i}: {e}")))?;
        drop(raw);
        drop(msg);
        let items = codec.prepare(&items);
        state
            .start_tree(cfg, tree, guest_only)
            .map_err(refused(g, &t))?;
        if guest_only {
            tree += 1;
            continue;
        }
        // Row -> index of its first ciphertext.
        let mut first = vec![u32::MAX; n];
        let mut next = 0u32;
        for (r, &s) in sampled.iter().enumerate() {
            if s {
                first[r] = next;
                next += chunks as u32;
            }
        }
        let mut depth = 0u32;
        loop {
            if depth > cfg.max_depth {
                return Err(FedError::malformed(g, &t, "deeper than max_depth").into());
            }
            let t = tag(task, level_round(tree, depth), "level");
            let msg = ch.recv(g, &t).await?;
            let max_nodes = 1 << cfg.max_depth.min(20);
            let (last, parts, build) = read(g, &t, &msg, |r| {
                let last = r.bool()?;
                let np = r.count("partitions", max_nodes, 8)?;
                let parts = (0..np)
                    .map(|_| {
                        let node = r.u32()?;
                        let left = r.bytes("partition", n.div_ceil(8))?.to_vec();
                        Ok(Part { node, left })
                    })
                    .collect::<std::result::Result<Vec<_>, CodecError>>()?;
                let nb = r.count("nodes to build", max_nodes, 4)?;
                let build = (0..nb)
                    .map(|_| r.u32())
                    .collect::<std::result::Result<Vec<_>, CodecError>>()?;
                Ok((last, parts, build))
            })?;
            state.apply_parts(&parts).map_err(refused(g, &t))?;
            if last {
                state.end_tree();
                break;
            }
            // Histograms of the requested nodes: one task per (node, feature).
            let jobs: Vec<(usize, usize)> = (0..build.len())
                .flat_map(|b| state.feats.iter().map(move |&f| (b, f)))
                .collect();
            let node_rows: Vec<&[u32]> = build
                .iter()
                .map(|&b| state.rows(b))
                .collect::<std::result::Result<_, _>>()
                .map_err(refused(g, &t))?;
            let sums: Vec<(Vec<u8>, Vec<C::Item>, u64)> = jobs
                .par_iter()
                .map(|&(b, f)| {
                    let col = binned.column(f);
                    let ns = binned.bins()[f].slots();
                    let mut acc: Vec<Option<C::Acc>> = vec![None; ns * chunks];
                    let mut adds = 0u64;
                    for &row in node_rows[b] {
                        let i = first[row as usize];
                        if i == u32::MAX {
                            continue;
                        }
                        let s = col[row as usize] as usize;
                        for c in 0..chunks {
                            let x = &items[i as usize + c];
                            match &mut acc[s * chunks + c] {
                                Some(a) => {
                                    codec.acc_add(a, x)?;
                                    adds += 1;
                                }
                                slot @ None => *slot = Some(x.clone()),
                            }
                        }
                    }
                    let nonempty = bitmap((0..ns).map(|s| acc[s * chunks].is_some()));
                    // Per chunk, the non-empty slots' sums, `pack_bins` per ciphertext:
                    // Horner's rule `((b_k·2^B + b_{k-1})·2^B + …) + b_0`.
                    let mut packed = Vec::new();
                    for c in 0..chunks {
                        let sums: Vec<C::Item> = (0..ns)
                            .filter_map(|s| acc[s * chunks + c].as_ref().map(|a| codec.finish(a)))
                            .collect();
                        for group in sums.chunks(pack_bins) {
                            let mut it = group.iter().rev();
                            let Some(top) = it.next() else { continue };
                            let mut v = top.clone();
                            for lower in it {
                                v = codec.shift_add(&v, lower, bin_bits)?;
                            }
                            packed.push(v);
                        }
                    }
                    Ok((nonempty, packed, adds))
                })
                .collect::<Result<_>>()?;
            let flat: Vec<C::Item> = sums.iter().flat_map(|s| s.1.iter().cloned()).collect();
            let fresh = codec.rerandomize(&flat, rng)?;
            counters.rerandomized += fresh.len() as u64;
            counters.additions += sums.iter().map(|s| s.2).sum::<u64>();
            let mut w = Writer::with_capacity(4 + 4 * state.feats.len() + fresh.len() * width);
            w.count(state.feats.len());
            for &f in &state.feats {
                w.u32(f as u32);
            }
            let mut it = fresh.iter();
            for (bits, vals, _) in &sums {
                w.raw(bits);
                for _ in 0..vals.len() {
                    if let Some(c) = it.next() {
                        codec.write(c, &mut w);
                    }
                }
            }
            ch.send(
                g,
                &tag(task, level_round(tree, depth), "hist"),
                w.into_bytes(),
            )
            .await?;
            // Decisions.
            let t = tag(task, level_round(tree, depth), "decide");
            let msg = ch.recv(g, &t).await?;
            let decisions = read(g, &t, &msg, |r| {
                let nd = r.count("decisions", max_nodes, 5)?;
                (0..nd)
                    .map(|_| {
                        let node = r.u32()?;
                        let d = match r.u8()? {
                            0 => Decision::Leaf,
                            1 => Decision::Guest {
                                left: r.u32()?,
                                right: r.u32()?,
                            },
                            2 => {
                                let left = r.u32()?;
                                let right = r.u32()?;
                                let party = r.u32()? as usize;
                                if party >= cfg.hosts.len() {
                                    return Err(
                                        r.invalid(format!("host index {party} out of range"))
                                    );
                                }
                                Decision::Host {
                                    left,
                                    right,
                                    party,
                                    split: r.u32()?,
                                    default_left: r.bool()?,
                                }
                            }
                            v => return Err(r.invalid(format!("decision kind {v}"))),
                        };
                        Ok((node, d))
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
            })?;
            let bits = state.decide(&decisions).map_err(refused(g, &t))?;
            let mut w = Writer::new();
            w.count(bits.len());
            for b in &bits {
                w.bytes(b);
            }
            ch.send(
                g,
                &tag(task, level_round(tree, depth), "bits"),
                w.into_bytes(),
            )
            .await?;
            depth += 1;
        }
        tree += 1;
    }
}
