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
use fedra_federation::{Channel, PartyId, Tag};
use fedra_he::{AdditiveScheme, HePublicKey, OkamotoUchiyama, Paillier, Plaintext};
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::binning::Binned;
use crate::codec::{Clear, Codec, He};
use crate::config::{Config, Scheme};
use crate::error::{Result, TreeError, he};
use crate::grow::{self, Decision, GuestInput, HostHists, Hosts, Part, bitmap};
use crate::hist::Layout;
use crate::host::HostState;
use crate::model::{GuestModel, HostModel, Round};
use crate::pack;
use crate::plain::host_model;
use crate::wire::{Reader, Writer, decode_err};

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
    let mut r = Reader::new(&msg, g, &t);
    let scheme = r.u8()?;
    let key = r.bytes(1 << 20, "key bytes")?;
    r.done()?;
    let want = scheme_id(cfg.scheme);
    if scheme != want {
        return Err(decode_err(
            g,
            &t,
            format!("scheme {scheme}, the job says {want}"),
        ));
    }
    let (trees, imp, counters) = match cfg.scheme {
        Scheme::Ou => {
            let pk = <OkamotoUchiyama as AdditiveScheme>::PublicKey::from_bytes(key)
                .map_err(|e| decode_err(g, &t, e.to_string()))?;
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
                .map_err(|e| decode_err(g, &t, e.to_string()))?;
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
    let mut w = Writer::default();
    w.u8(scheme_id(cfg.scheme)).bytes(key);
    let msg = w.finish();
    let t = tag(task, 0, "key");
    fedra_federation::broadcast(ch, &cfg.hosts, &t, msg).await?;
    let t = tag(task, 0, "meta");
    let mut layouts = Vec::new();
    let k = cfg.objective.outputs();
    for h in &cfg.hosts {
        let msg = ch.recv(h, &t).await?;
        let mut r = Reader::new(&msg, h, &t);
        let rows = r.u64()?;
        if rows != input.binned.rows() as u64 {
            return Err(decode_err(
                h,
                &t,
                format!("host has {rows} rows, the guest {}", input.binned.rows()),
            ));
        }
        let nf = r.count(MAX_FEATURES, "features")?;
        let mut slots = Vec::with_capacity(nf);
        for _ in 0..nf {
            let s = r.u32()? as usize;
            if !(2..=256).contains(&s) {
                return Err(decode_err(
                    h,
                    &t,
                    format!("{s} histogram slots, allowed 2..=256"),
                ));
            }
            slots.push(s);
        }
        r.done()?;
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
        let mut msg = Writer::default();
        msg.u8(0).u8(u8::from(guest_only));
        if guest_only {
            msg.u32(0)
                .u32(1)
                .u32(0)
                .raw(&bitmap(sampled.iter().map(|_| false)))
                .u64(0);
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
                .u64(cts.len() as u64);
            msg.0.reserve(cts.len() * self.codec.width());
            for c in &cts {
                self.codec.write(c, &mut msg.0);
            }
        }
        let t = tag(self.task, u64::from(tree), "start");
        self.next_tree = tree + 1;
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.finish()).await?;
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
        let mut msg = Writer::default();
        msg.u8(u8::from(last)).u32(parts.len() as u32);
        for p in parts {
            msg.u32(p.node).bytes(&p.left);
        }
        msg.u32(build.len() as u32);
        for b in build {
            msg.u32(*b);
        }
        let t = tag(self.task, level_round(tree, depth), "level");
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.finish()).await?;
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
            let mut r = Reader::new(&msg, h, &t);
            let nf = r.count(lay.slots.len(), "sampled features")?;
            let mut features = Vec::with_capacity(nf);
            for _ in 0..nf {
                let f = r.u32()? as usize;
                if f >= lay.slots.len() || features.last().is_some_and(|&l| l >= f) {
                    return Err(r.err(format!("feature {f} out of range or out of order")));
                }
                features.push(f);
            }
            let mut groups = Vec::new();
            let mut raw: Vec<&[u8]> = Vec::new();
            for node in 0..build.len() {
                for &f in &features {
                    let ns = lay.slots[f];
                    let bits = r.take(ns.div_ceil(8))?;
                    if !ns.is_multiple_of(8) && bits.last().is_some_and(|b| b >> (ns % 8) != 0) {
                        return Err(r.err("bits set beyond the last slot"));
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
            r.done()?;
            let items = self
                .codec
                .parse(&raw)
                .map_err(|(i, e)| decode_err(h, &t, format!("item {i}: {e}")))?;
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
        let mut msg = Writer::default();
        msg.u32(decisions.len() as u32);
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
                        .u8(u8::from(*default_left));
                }
            }
        }
        let t = tag(self.task, level_round(tree, depth), "decide");
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.finish()).await?;
        let t = tag(self.task, level_round(tree, depth), "bits");
        let mut per_host = Vec::new();
        for (hi, h) in self.hosts.iter().enumerate() {
            let msg = self.ch.recv(h, &t).await?;
            let mut r = Reader::new(&msg, h, &t);
            let owned = decisions
                .iter()
                .filter(|(_, d)| matches!(d, Decision::Host { party, .. } if *party == hi))
                .count();
            let c = r.count(owned, "partitions")?;
            if c != owned {
                return Err(r.err(format!("{c} partitions, expected {owned}")));
            }
            let mut v = Vec::with_capacity(c);
            for _ in 0..c {
                v.push(r.bytes(self.rows.div_ceil(8), "partition bytes")?.to_vec());
            }
            r.done()?;
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
        let mut msg = Writer::default();
        msg.u8(1).u32(trees);
        let t = tag(self.task, u64::from(self.next_tree), "start");
        fedra_federation::broadcast(self.ch, &self.hosts, &t, msg.finish()).await?;
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
    let mut w = Writer::default();
    w.u64(n as u64).u32(binned.features() as u32);
    for s in binned.slots() {
        w.u32(s as u32);
    }
    ch.send(g, &tag(task, 0, "meta"), w.finish()).await?;
    let mut state = HostState::new(me, binned);
    let mut counters = HostCounters::default();
    let width = codec.width();
    let mut tree = 0u32;
    loop {
        // The guest announces tree `tree` or the end of training.
        let t = tag(task, u64::from(tree), "start");
        let msg = ch.recv(g, &t).await?;
        let mut r = Reader::new(&msg, g, &t);
        if r.u8()? == 1 {
            let keep = r.u32()? as usize;
            r.done()?;
            if keep > state.trees.len() {
                return Err(r.err(format!(
                    "keep {keep} trees, only {} grown",
                    state.trees.len()
                )));
            }
            state.trees.truncate(keep);
            return Ok((state.trees, state.importance, counters));
        }
        if tree >= cfg.trees {
            return Err(r.err("more trees than the job allows"));
        }
        let guest_only = r.flag()?;
        let chunks = r.u32()? as usize;
        if chunks > 64 {
            return Err(r.err(format!("{chunks} ciphertexts per row, at most 64")));
        }
        let pack_bins = r.u32()? as usize;
        let bin_bits = r.u32()?;
        if !(1..=64).contains(&pack_bins)
            || (pack_bins > 1
                && (bin_bits == 0
                    || u64::from(bin_bits) * pack_bins as u64 > u64::from(codec.capacity_bits())))
        {
            return Err(r.err(format!(
                "packing {pack_bins} bins of {bin_bits} bits exceeds the plaintext capacity"
            )));
        }
        let sampled_bits = r.take(n.div_ceil(8))?;
        let sampled: Vec<bool> = (0..n).map(|i| grow::bit(sampled_bits, i)).collect();
        let count = r.u64()? as usize;
        let n_sampled = sampled.iter().filter(|&&s| s).count();
        let expect = if guest_only { 0 } else { n_sampled * chunks };
        if count != expect {
            return Err(r.err(format!("{count} ciphertexts, expected {expect}")));
        }
        let mut raw = Vec::with_capacity(count);
        for _ in 0..count {
            raw.push(r.take(width)?);
        }
        r.done()?;
        let items = codec
            .parse(&raw)
            .map_err(|(i, e)| decode_err(g, &t, format!("ciphertext {i}: {e}")))?;
        drop(msg);
        let items = codec.prepare(&items);
        state.start_tree(cfg, tree, guest_only)?;
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
                return Err(decode_err(g, &t, "deeper than max_depth"));
            }
            let t = tag(task, level_round(tree, depth), "level");
            let msg = ch.recv(g, &t).await?;
            let mut r = Reader::new(&msg, g, &t);
            let last = r.flag()?;
            let np = r.count(1 << (cfg.max_depth.min(20)), "partitions")?;
            let mut parts = Vec::with_capacity(np);
            for _ in 0..np {
                let node = r.u32()?;
                let left = r.bytes(n.div_ceil(8), "partition bytes")?.to_vec();
                parts.push(Part { node, left });
            }
            let nb = r.count(1 << (cfg.max_depth.min(20)), "nodes to build")?;
            let mut build = Vec::with_capacity(nb);
            for _ in 0..nb {
                build.push(r.u32()?);
            }
            r.done()?;
            state.apply_parts(&parts)?;
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
                .collect::<Result<_>>()?;
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
            let mut w = Writer::default();
            w.u32(state.feats.len() as u32);
            for &f in &state.feats {
                w.u32(f as u32);
            }
            w.0.reserve(fresh.len() * width);
            let mut it = fresh.iter();
            for (bits, vals, _) in &sums {
                w.raw(bits);
                for _ in 0..vals.len() {
                    if let Some(c) = it.next() {
                        codec.write(c, &mut w.0);
                    }
                }
            }
            ch.send(g, &tag(task, level_round(tree, depth), "hist"), w.finish())
                .await?;
            // Decisions.
            let t = tag(task, level_round(tree, depth), "decide");
            let msg = ch.recv(g, &t).await?;
            let mut r = Reader::new(&msg, g, &t);
            let nd = r.count(1 << (cfg.max_depth.min(20)), "decisions")?;
            let mut decisions = Vec::with_capacity(nd);
            for _ in 0..nd {
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
                            return Err(r.err(format!("host index {party} out of range")));
                        }
                        Decision::Host {
                            left,
                            right,
                            party,
                            split: r.u32()?,
                            default_left: r.flag()?,
                        }
                    }
                    v => return Err(r.err(format!("decision kind {v}"))),
                };
                decisions.push((node, d));
            }
            r.done()?;
            let bits = state.decide(&decisions)?;
            let mut w = Writer::default();
            w.u32(bits.len() as u32);
            for b in &bits {
                w.bytes(b);
            }
            ch.send(g, &tag(task, level_round(tree, depth), "bits"), w.finish())
                .await?;
            depth += 1;
        }
        tree += 1;
    }
}
