//! Private federated prediction: every party walks only its own splits and the
//! guest learns only the final scores.
//!
//! Per tree and row, each party computes the set of leaves consistent with its
//! own splits ([`predict::leaf_masks`]); the row's leaf is the intersection over
//! all parties (exactly one leaf). The guest (key holder, owner of the leaf
//! weights) encrypts every leaf's weights once per prediction job and sends them
//! with its masks to the first host; each host ANDs its own masks in and
//! forwards (guest → host 1 → host 2 → … → last host); the last host adds, for
//! every row, the ciphertexts of the selected leaf of every tree, packs several
//! rows' sums into one ciphertext, re-randomises and returns only those sums.
//!
//! Trees without a host split never enter the protocol: the guest evaluates
//! them alone and adds their weights itself (the hosts learn nothing about them,
//! e.g. about the complete-secure first tree). The others are the "shared" trees.
//!
//! Messages (tag name, direction, content), all in round 0 of the task:
//! * `predict` G→every host: row count, tree count, the shared trees' indices
//!   and the host chain.
//! * `predict-masks` G→H₁→…→Hₘ: scheme id, the guest's fresh public key, row
//!   count, per shared tree its node and leaf counts, the packing parameters
//!   (ciphertexts per leaf, bits per row sum, row sums per returned
//!   ciphertext), `Σ leaves × chunks` leaf-weight ciphertexts, and the leaf
//!   masks (intersected with the masks of every party before the receiver).
//! * `predict-sums` Hₘ→G: `⌈rows × chunks / pack⌉` re-randomised ciphertexts.
//!
//! **Encoding.** A leaf weight `w` becomes `v = round(w · 2^precision_bits)`;
//! the `k` class weights of a leaf are packed into one plaintext with
//! [`pack::pack`] (signed slots of `s` bits; several plaintexts when `k·s`
//! exceeds the capacity). With `V_t = max |v|` over the leaves and classes of
//! tree `t` and `B = Σ_t V_t`, the guest chooses `s = bits(B) + 2`, so every
//! partial sum over trees stays in `(−2^(s−2), 2^(s−2))`: no slot wraps and
//! centred decoding is exact. A row's sum occupies `per_ct · s` bits
//! (`|value| < 2^(per_ct·s − 1)`); `pack` sums are combined by Horner's rule with
//! shifts of `per_ct · s` bits and `pack · per_ct · s ≤ capacity − 4`, so the
//! packed integer's magnitude (and every intermediate one) stays below
//! `2^(capacity − 4)` and never wraps modulo the plaintext space. The guest
//! checks every decoded slot against `B` and refuses sums that do not fit the
//! layout.

use fedra_data::Dataset;
use fedra_federation::codec::{Reader, Writer};
use fedra_federation::{Channel, FedError, PartyId, Tag};
use fedra_he::{AdditiveScheme, HePublicKey, OkamotoUchiyama, Paillier, Plaintext};
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::codec::{Clear, Codec, He};
use crate::config::Scheme;
use crate::error::{Result, TreeError, he};
use crate::model::{GuestModel, GuestNode, HostModel, HostNode};
use crate::pack;
use crate::predict::{self, Masks};
use crate::protocol::{HostCounters, scheme_id};
use crate::wire::{items, read};

/// Largest row count accepted from a peer.
const MAX_ROWS: usize = 1 << 31;
/// Largest host chain accepted from the guest.
const MAX_HOSTS: usize = 1024;
/// Largest number of leaf-weight ciphertexts per leaf.
const MAX_CHUNKS: usize = 64;

/// What a prediction job cost the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PredictStats {
    /// Leaf-weight ciphertexts encrypted (once per leaf and chunk).
    pub encryptions: u64,
    /// Packed row-sum ciphertexts received from the last host and decrypted.
    pub decryptions: u64,
    /// Payload bytes the guest sent to the hosts.
    pub bytes_sent: u64,
    /// Payload bytes the guest received from the hosts.
    pub bytes_received: u64,
}

fn tag(task: &str, name: &str) -> Tag {
    Tag::new(task, 0, name)
}

fn payload_bytes(ch: &dyn Channel, hosts: &[PartyId]) -> (u64, u64) {
    ch.stats()
        .iter()
        .filter(|s| hosts.iter().any(|h| h.as_str() == s.peer))
        .fold((0, 0), |a, s| {
            (a.0 + s.payload_bytes_sent, a.1 + s.payload_bytes_received)
        })
}

/// Federated prediction as the guest: returns probabilities (binary), row-major
/// class probabilities (multi-class) or values (regression), and the cost. Rows
/// must be aligned with the hosts' rows. The guest learns only these scores; the
/// scheme, key size and precision are the model's (those of its training).
pub async fn predict_guest<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    model: &GuestModel,
    data: &Dataset,
    rng: &mut R,
) -> Result<(Vec<f64>, PredictStats)> {
    let rows = data.n_rows();
    if data.feature_names() != model.feature_names.as_slice() {
        return Err(TreeError::Data(format!(
            "the dataset's features {:?} differ from the model's {:?}",
            data.feature_names(),
            model.feature_names
        )));
    }
    if model.hosts.is_empty()
        || model.hosts.len() > MAX_HOSTS
        || model.hosts.contains(ch.me())
        || (1..model.hosts.len()).any(|i| model.hosts[..i].contains(&model.hosts[i]))
    {
        return Err(TreeError::Model(format!(
            "the model's hosts {:?} must be 1..={MAX_HOSTS} distinct parties other than '{}'",
            model.hosts,
            ch.me()
        )));
    }
    let mark = payload_bytes(ch, &model.hosts);
    let k = model.objective.outputs();
    // Trees without a host split are the guest's alone: it adds their leaves
    // itself and the hosts learn nothing about them (e.g. the complete-secure
    // first tree). The others go through the protocol.
    let (mut shared, mut local) = (Vec::new(), Vec::new());
    for (t, w) in predict::guest_walk(model).into_iter().enumerate() {
        if model.trees[t]
            .iter()
            .any(|n| matches!(n, GuestNode::Host { .. }))
        {
            shared.push((t, w));
        } else {
            local.push((t, w));
        }
    }
    let nf = model.feature_names.len();
    let mut margins = model.base_margin.repeat(rows);
    let (local_ids, local_walk): (Vec<usize>, Vec<_>) = local.into_iter().unzip();
    let own = predict::leaf_masks(&local_walk, data.features(), nf, rows)?;
    let leaves = predict::intersect(&mut own.data.clone(), &own, true)
        .map_err(|e| TreeError::Model(format!("internal: {e}")))?;
    for (i, &t) in local_ids.iter().enumerate() {
        let weights = leaf_weights(&model.trees[t]);
        for (row, &leaf) in leaves[i * rows..(i + 1) * rows].iter().enumerate() {
            for (m, w) in margins[row * k..(row + 1) * k]
                .iter_mut()
                .zip(weights[leaf as usize])
            {
                *m += w;
            }
        }
    }
    let (shared_ids, shared_walk): (Vec<usize>, Vec<_>) = shared.into_iter().unzip();
    let masks = predict::leaf_masks(&shared_walk, data.features(), nf, rows)?;
    let mut w = Writer::new();
    w.u64(rows as u64)
        .u32(model.trees.len() as u32)
        .count(shared_ids.len());
    for &t in &shared_ids {
        w.u32(t as u32);
    }
    w.count(model.hosts.len());
    for h in &model.hosts {
        w.str(h.as_str());
    }
    fedra_federation::broadcast(ch, &model.hosts, &tag(task, "predict"), w.into_bytes()).await?;
    let mut stats = PredictStats::default();
    if !shared_ids.is_empty() {
        let a = GuestArgs {
            ch,
            task,
            model,
            trees: &shared_ids,
            masks,
        };
        let (sums, st) = match model.scheme {
            Scheme::Ou => he_guest::<OkamotoUchiyama, R>(a, rng).await?,
            Scheme::Paillier => he_guest::<Paillier, R>(a, rng).await?,
            Scheme::InsecurePlaintext => guest_run(a, &Clear, &[], rng).await?,
        };
        for (m, v) in margins.iter_mut().zip(sums) {
            *m += v;
        }
        stats = st;
    }
    let now = payload_bytes(ch, &model.hosts);
    stats.bytes_sent = now.0 - mark.0.min(now.0);
    stats.bytes_received = now.1 - mark.1.min(now.1);
    Ok((
        crate::objective::transform(model.objective, &margins),
        stats,
    ))
}

/// The leaves' weights of a tree, in node-id order.
fn leaf_weights(tree: &[GuestNode]) -> Vec<&[f64]> {
    tree.iter()
        .filter_map(|n| match n {
            GuestNode::Leaf { weights } => Some(weights.as_slice()),
            _ => None,
        })
        .collect()
}

/// What the guest's side of the protocol works on.
struct GuestArgs<'a> {
    ch: &'a dyn Channel,
    task: &'a str,
    model: &'a GuestModel,
    /// The trees that go through the protocol (those with host splits).
    trees: &'a [usize],
    /// The guest's masks of those trees.
    masks: Masks,
}

/// The guest with a fresh key pair of scheme `S` for this prediction job.
async fn he_guest<S: AdditiveScheme, R: CryptoRng + Send + ?Sized>(
    a: GuestArgs<'_>,
    rng: &mut R,
) -> Result<(Vec<f64>, PredictStats)> {
    let (pk, sk) = S::generate_keypair(a.model.key_bits, rng).map_err(he("key generation"))?;
    let key = pk.to_bytes();
    let codec = He::<S> { pk, sk: Some(sk) };
    guest_run(a, &codec, &key, rng).await
}

/// Fixed-point leaf weights of `trees` (tree-major, leaves in node-id order, `k`
/// per leaf) and the bound `Σ_t max |v|` on any sum over these trees.
fn fixed_point(model: &GuestModel, trees: &[usize]) -> Result<(Vec<i128>, u128)> {
    let p = model.precision_bits;
    if !(16..=48).contains(&p) {
        return Err(TreeError::Model(format!(
            "precision_bits must be in 16..=48, got {p}"
        )));
    }
    let scale = (p as f64).exp2();
    let k = model.objective.outputs();
    let mut out = Vec::new();
    let mut bound = 0u128;
    for &t in trees {
        let tree = &model.trees[t];
        let mut max = 0u128;
        for n in tree {
            if let GuestNode::Leaf { weights } = n {
                if weights.len() != k {
                    return Err(TreeError::Model(format!(
                        "tree {t}: a leaf with {} weights, the objective has {k} outputs",
                        weights.len()
                    )));
                }
                for w in weights {
                    let x = (w * scale).round();
                    if !x.is_finite() || x.abs() >= 2f64.powi(100) {
                        return Err(TreeError::Model(format!(
                            "tree {t}: leaf weight {w} does not fit {p} fractional bits"
                        )));
                    }
                    let v = x as i128;
                    max = max.max(v.unsigned_abs());
                    out.push(v);
                }
            }
        }
        bound = bound.saturating_add(max);
    }
    Ok((out, bound))
}

/// Packing parameters, chosen by the guest and checked by the hosts.
struct Packing {
    /// Bits per slot.
    s: u32,
    /// Classes per ciphertext.
    per_ct: usize,
    /// Ciphertexts per leaf (and per row sum).
    chunks: usize,
    /// Row sums per returned ciphertext.
    pack: usize,
}

impl Packing {
    fn new(bound: u128, k: usize, capacity: u32, items: usize) -> Result<Packing> {
        let s = (128 - bound.leading_zeros() + 2).max(2);
        if s > 126 {
            return Err(TreeError::Config {
                field: "precision_bits",
                reason: format!(
                    "sums of leaf weights need {s} bits per slot (at most 126); lower precision_bits"
                ),
            });
        }
        let usable = capacity.saturating_sub(4);
        let per_ct = ((usable / s) as usize).min(k);
        if per_ct == 0 {
            return Err(TreeError::Config {
                field: "key_bits",
                reason: "the plaintext space cannot hold one leaf weight".into(),
            });
        }
        let chunks = k.div_ceil(per_ct);
        let item_bits = per_ct as u32 * s;
        let pack = ((usable / item_bits) as usize).clamp(1, items.max(1));
        Ok(Packing {
            s,
            per_ct,
            chunks,
            pack,
        })
    }

    fn item_bits(&self) -> u32 {
        self.per_ct as u32 * self.s
    }
}

async fn guest_run<C: Codec, R: CryptoRng + Send + ?Sized>(
    a: GuestArgs<'_>,
    codec: &C,
    key: &[u8],
    rng: &mut R,
) -> Result<(Vec<f64>, PredictStats)> {
    let GuestArgs {
        ch,
        task,
        model,
        trees,
        masks,
    } = a;
    let k = model.objective.outputs();
    let rows = masks.rows;
    let (values, bound) = fixed_point(model, trees)?;
    let pk = Packing::new(bound, k, codec.capacity_bits(), rows * k)?;
    let leaves = values.len() / k;
    let mut plain: Vec<Plaintext> = Vec::with_capacity(leaves * pk.chunks);
    for leaf in values.chunks(k) {
        for c in 0..pk.chunks {
            let lo = c * pk.per_ct;
            let hi = (lo + pk.per_ct).min(k);
            plain.push(pack::pack(&leaf[lo..hi], pk.s));
        }
    }
    let cts = codec.encrypt(&plain, rng)?;
    let mut stats = PredictStats {
        encryptions: cts.len() as u64,
        ..PredictStats::default()
    };
    let mut w = Writer::with_capacity(
        33 + key.len() + 8 * trees.len() + cts.len() * codec.width() + masks.len(),
    );
    w.u8(scheme_id(model.scheme))
        .bytes(key)
        .u64(rows as u64)
        .count(trees.len());
    for (i, &t) in trees.iter().enumerate() {
        w.u32(model.trees[t].len() as u32).u32(masks.leaves[i]);
    }
    w.u32(pk.chunks as u32)
        .u32(pk.item_bits())
        .u32(pk.pack as u32)
        .count(cts.len());
    for c in &cts {
        codec.write(c, &mut w);
    }
    w.raw(&masks.data);
    drop(masks);
    let first = &model.hosts[0];
    ch.send(first, &tag(task, "predict-masks"), w.into_bytes())
        .await?;

    // Only the last host's packed sums come back.
    let last = &model.hosts[model.hosts.len() - 1];
    let t = tag(task, "predict-sums");
    let msg = ch.recv(last, &t).await?;
    let n_items = rows * pk.chunks;
    let want = n_items.div_ceil(pk.pack);
    let raw = read(last, &t, &msg, |r| {
        let count = r.exact_count("ciphertexts", want)?;
        items(r, count, codec.width())
    })?;
    let sums = codec
        .parse(&raw)
        .map_err(|(i, e)| FedError::malformed(last, &t, format!("ciphertext {i}: {e}")))?;
    let decrypted = codec.decrypt(&sums)?;
    stats.decryptions = decrypted.len() as u64;
    let scale = (-(model.precision_bits as f64)).exp2();
    let tail = k - (pk.chunks - 1) * pk.per_ct;
    let decoded: Vec<Vec<i128>> = decrypted
        .par_iter()
        .enumerate()
        .map(|(g, p)| {
            let n = pk.pack.min(n_items - g * pk.pack);
            let v = pack::unpack(p, pk.s, n * pk.per_ct).map_err(|_| {
                FedError::malformed(last, &t, format!("sum {g} does not fit its layout"))
            })?;
            for (j, x) in v.iter().enumerate() {
                let item = g * pk.pack + j / pk.per_ct;
                let chunk = item % pk.chunks;
                let slot = j % pk.per_ct;
                let unused = chunk == pk.chunks - 1 && slot >= tail;
                if x.unsigned_abs() > bound || (unused && *x != 0) {
                    return Err(FedError::malformed(
                        last,
                        &t,
                        format!("sum {g}: slot {j} is not a sum of leaf weights"),
                    )
                    .into());
                }
            }
            Ok(v)
        })
        .collect::<Result<_>>()?;
    let mut margins = vec![0.0; rows * k];
    for (g, v) in decoded.iter().enumerate() {
        for (j, x) in v.iter().enumerate() {
            let item = g * pk.pack + j / pk.per_ct;
            let (row, chunk) = (item / pk.chunks, item % pk.chunks);
            let class = chunk * pk.per_ct + j % pk.per_ct;
            if class < k {
                margins[row * k + class] += *x as f64 * scale;
            }
        }
    }
    Ok((margins, stats))
}

/// Federated prediction as a host: ANDs its own leaf masks into the ones it
/// receives and forwards them to the next host, or — as the last host — adds the
/// selected leaves' ciphertexts per row and returns re-randomised packed sums to
/// the guest. The host learns the leaf of each row in every tree (the last host)
/// or the leaves consistent with the earlier parties' splits, never a weight or a
/// score.
pub async fn predict_host<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    model: &HostModel,
    data: &Dataset,
    rng: &mut R,
) -> Result<HostCounters> {
    let g = &model.guest;
    let t = tag(task, "predict");
    let msg = ch.recv(g, &t).await?;
    let (rows, shared, chain) = read(g, &t, &msg, |r| {
        let rows = r.u64()? as usize;
        let trees = r.u32()? as usize;
        if trees != model.trees.len() {
            return Err(r.invalid(format!(
                "guest's model has {trees} trees, this host's {}",
                model.trees.len()
            )));
        }
        // The trees with host splits, in increasing order.
        let ns = r.count("shared trees", trees, 4)?;
        let mut shared: Vec<usize> = Vec::with_capacity(ns);
        for _ in 0..ns {
            let t = r.u32()? as usize;
            if t >= trees || shared.last().is_some_and(|&l| l >= t) {
                return Err(r.invalid(format!("shared tree {t} out of range or out of order")));
            }
            shared.push(t);
        }
        let nh = r.count("hosts", MAX_HOSTS, 4)?;
        let mut chain: Vec<PartyId> = Vec::with_capacity(nh);
        for _ in 0..nh {
            let id = PartyId::new(r.str("party id", 63)?)
                .map_err(|_| r.invalid("an invalid party id in the host chain"))?;
            if id == *g || chain.contains(&id) {
                return Err(r.invalid(format!("party '{id}' twice in the host chain")));
            }
            chain.push(id);
        }
        Ok((rows, shared, chain))
    })?;
    let bad = |detail: String| TreeError::from(FedError::malformed(g, &t, detail));
    if rows != data.n_rows() || rows > MAX_ROWS {
        return Err(bad(format!(
            "guest predicts {rows} rows, this host has {}",
            data.n_rows()
        )));
    }
    for (t, tree) in model.trees.iter().enumerate() {
        if tree.iter().any(|n| matches!(n, HostNode::Own { .. })) && !shared.contains(&t) {
            return Err(bad(format!(
                "tree {t} has splits of this host but the guest leaves it out"
            )));
        }
    }
    let me = chain
        .iter()
        .position(|h| h == ch.me())
        .ok_or_else(|| bad(format!("'{}' is not in the host chain", ch.me())))?;
    for p in &chain {
        if p != ch.me() && !ch.peers().contains(p) {
            return Err(TreeError::Config {
                field: "hosts",
                reason: format!("host '{p}' of the chain is not a peer of this party"),
            });
        }
    }
    if data.feature_names() != model.feature_names.as_slice() {
        return Err(TreeError::Data(format!(
            "the dataset's features {:?} differ from the model's {:?}",
            data.feature_names(),
            model.feature_names
        )));
    }
    if shared.is_empty() {
        return Ok(HostCounters::default());
    }
    let mut walk = predict::host_walk(model);
    let walk: Vec<_> = shared
        .iter()
        .map(|&t| std::mem::take(&mut walk[t]))
        .collect();
    let own = predict::leaf_masks(&walk, data.features(), model.feature_names.len(), rows)?;
    let prev = if me == 0 { g } else { &chain[me - 1] };
    let next = chain.get(me + 1);
    let t = tag(task, "predict-masks");
    let msg = ch.recv(prev, &t).await?;
    // The scheme and the key; host_run reads the whole message.
    let mut r = Reader::new(&msg);
    let scheme = r.u8().map_err(|e| e.from_peer(prev, &t))?;
    let key = r.bytes("key", 1 << 20).map_err(|e| e.from_peer(prev, &t))?;
    let bad = |detail: String| TreeError::from(FedError::malformed(prev, &t, detail));
    let want = scheme_id(model.scheme);
    if scheme != want {
        return Err(bad(format!(
            "scheme {scheme}, the model was trained with {want}"
        )));
    }
    let args = HostArgs {
        ch,
        task,
        model,
        shared: &shared,
        own: &own,
        prev,
        next,
    };
    let key_err = |e: fedra_he::HeError| FedError::malformed(prev, &t, e);
    match model.scheme {
        Scheme::Ou => {
            let pk =
                <OkamotoUchiyama as AdditiveScheme>::PublicKey::from_bytes(key).map_err(key_err)?;
            host_run(&args, &msg, &He::<OkamotoUchiyama> { pk, sk: None }, rng).await
        }
        Scheme::Paillier => {
            let pk = <Paillier as AdditiveScheme>::PublicKey::from_bytes(key).map_err(key_err)?;
            host_run(&args, &msg, &He::<Paillier> { pk, sk: None }, rng).await
        }
        Scheme::InsecurePlaintext => {
            if !key.is_empty() {
                return Err(bad("a key in the insecure plaintext mode".into()));
            }
            host_run(&args, &msg, &Clear, rng).await
        }
    }
}

struct HostArgs<'a> {
    ch: &'a dyn Channel,
    task: &'a str,
    model: &'a HostModel,
    /// The trees that go through the protocol.
    shared: &'a [usize],
    /// This host's masks of those trees.
    own: &'a Masks,
    prev: &'a PartyId,
    next: Option<&'a PartyId>,
}

async fn host_run<C: Codec, R: CryptoRng + Send + ?Sized>(
    a: &HostArgs<'_>,
    msg: &[u8],
    codec: &C,
    rng: &mut R,
) -> Result<HostCounters> {
    let (prev, own) = (a.prev, a.own);
    let t = tag(a.task, "predict-masks");
    let width = codec.width();
    let (trees, chunks, item_bits, pack, raw, mut masks) = read(prev, &t, msg, |r| {
        r.u8()?;
        r.bytes("key", 1 << 20)?;
        let rows = r.u64()? as usize;
        if rows != own.rows {
            return Err(r.invalid(format!("{rows} rows, this host has {}", own.rows)));
        }
        let trees = r.count("trees", own.leaves.len(), 8)?;
        if trees != own.leaves.len() {
            return Err(r.invalid(format!(
                "{trees} trees, this host's model has {}",
                own.leaves.len()
            )));
        }
        for (i, &ti) in a.shared.iter().enumerate() {
            let tree = &a.model.trees[ti];
            let (nodes, leaves) = (r.u32()? as usize, r.u32()?);
            if nodes != tree.len() || leaves != own.leaves[i] {
                return Err(r.invalid(format!(
                    "tree {ti} has {nodes} nodes and {leaves} leaves, this host's {} and {}",
                    tree.len(),
                    own.leaves[i]
                )));
            }
        }
        let chunks = r.u32()? as usize;
        let item_bits = r.u32()?;
        let pack = r.u32()? as usize;
        if !(1..=MAX_CHUNKS).contains(&chunks) {
            return Err(r.invalid(format!(
                "{chunks} ciphertexts per leaf, allowed 1..={MAX_CHUNKS}"
            )));
        }
        if item_bits < 2
            || pack == 0
            || pack as u64 * u64::from(item_bits) > u64::from(codec.capacity_bits())
        {
            return Err(r.invalid(format!(
                "packing {pack} sums of {item_bits} bits exceeds the plaintext capacity of {} bits",
                codec.capacity_bits()
            )));
        }
        let leaves: usize = own.leaves.iter().map(|&l| l as usize).sum();
        let count = r.exact_count("leaf ciphertexts", leaves * chunks)?;
        let raw = items(r, count, width)?;
        let masks = r.take(own.len())?.to_vec();
        Ok((trees, chunks, item_bits, pack, raw, masks))
    })?;
    let rows = own.rows;
    let items = codec
        .parse(&raw)
        .map_err(|(i, e)| FedError::malformed(prev, &t, format!("leaf ciphertext {i}: {e}")))?;
    drop(raw);
    // The masks are the message's tail: everything before them is forwarded as is.
    let head = msg.len() - masks.len();
    let chosen = predict::intersect(&mut masks, own, a.next.is_none())
        .map_err(|e| FedError::malformed(prev, &t, e))?;
    if let Some(next) = a.next {
        // Forward the guest's ciphertexts with the intersected masks.
        let mut w = Writer::with_capacity(msg.len());
        w.raw(&msg[..head]).raw(&masks);
        a.ch.send(next, &t, w.into_bytes()).await?;
        return Ok(HostCounters::default());
    }
    // The last host: per row, the sum of the chosen leaves' ciphertexts.
    let mut first_leaf = Vec::with_capacity(trees);
    let mut at = 0usize;
    for &l in &own.leaves {
        first_leaf.push(at);
        at += l as usize;
    }
    let prepared = codec.prepare(&items);
    drop(items);
    let sums: Vec<C::Item> = (0..rows)
        .into_par_iter()
        .flat_map_iter(|row| {
            let (prepared, chosen, first_leaf) = (&prepared, &chosen, &first_leaf);
            (0..chunks).map(move |c| {
                let at =
                    |ti: usize| (first_leaf[ti] + chosen[ti * rows + row] as usize) * chunks + c;
                let mut acc = prepared[at(0)].clone();
                for ti in 1..trees {
                    codec.acc_add(&mut acc, &prepared[at(ti)])?;
                }
                Ok(codec.finish(&acc))
            })
        })
        .collect::<Result<_>>()?;
    // `pack` sums per ciphertext, Horner's rule: ((s_{p-1}·2^B + s_{p-2})·2^B + …) + s_0.
    let packed: Vec<C::Item> = sums
        .par_chunks(pack)
        .map(|group| {
            let mut it = group.iter().rev();
            let Some(top) = it.next() else {
                return Err(TreeError::Model("internal: an empty group".into()));
            };
            let mut v = top.clone();
            for lower in it {
                v = codec.shift_add(&v, lower, item_bits)?;
            }
            Ok(v)
        })
        .collect::<Result<_>>()?;
    let fresh = codec.rerandomize(&packed, rng)?;
    let counters = HostCounters {
        additions: (rows * chunks * (trees - 1) + sums.len() - packed.len()) as u64,
        rerandomized: fresh.len() as u64,
    };
    let mut w = Writer::with_capacity(4 + fresh.len() * width);
    w.count(fresh.len());
    for c in &fresh {
        codec.write(c, &mut w);
    }
    a.ch.send(&a.model.guest, &tag(a.task, "predict-sums"), w.into_bytes())
        .await?;
    Ok(counters)
}
