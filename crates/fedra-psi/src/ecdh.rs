//! ECDH-PSI over ristretto255 (Meadows 1986 / Huberman–Franklin–Hogg 1999 style,
//! as in SecretFlow's ECDH-PSI and OpenMined PSI), with hash partitioning.
//!
//! ## Protocol
//!
//! The leader `A` holds ids `X` and a fresh secret scalar `a`; the follower `B` holds
//! `Y` and `b`. Both scalars are drawn from the caller's RNG for every run and never
//! leave the party. `H` is [`hash_to_group`].
//!
//! 1. `hello` (round 0): version, role, output mode, bucket count, batch size and
//!    number of (distinct) ids; the leader adds a fresh 32-byte bucket salt.
//!    Mismatched settings fail on both sides with [`PsiError::ConfigMismatch`].
//!    The hello and the `count` messages are encoded with `fedra_federation::codec`
//!    (little-endian integers); points are their 32-byte encodings.
//! 2. Both sides hash-partition their ids into `N` buckets with the salted hash of
//!    [`bucket_of`]. Buckets are processed one after the
//!    other (memory is bounded by the largest bucket); within a bucket the curve
//!    work runs on all cores (rayon). Every message of bucket `k` uses round `k`.
//! 3. Per bucket: each side sends a `count` message, then `H(x)^a` (resp. `H(y)^b`)
//!    in batches of at most `batch_points` points (`blinded-<i>`), in a **secret,
//!    uniformly random order** (a permutation drawn from the caller's RNG before the
//!    first message, independent of the input order and of the values). Each batch
//!    is sent as soon as it is blinded.
//! 4. Each side raises the peer's points to its own scalar and returns the
//!    double-blinded points `H(·)^{ab}` (`double-<i>`), **batch by batch as the
//!    peer's batches arrive**:
//!    * the follower always returns them **in the order received**, so the leader can
//!      map them back to its ids;
//!    * the leader returns them in the order received in [`OutputMode::Both`], and
//!      **sorted by their own encoding** in [`OutputMode::LeaderOnly`] (after it has
//!      double-blinded the whole bucket): the follower cannot compute `H(y)^{ab}`
//!      itself (it lacks `a`), so a sorted list cannot be linked to its ids and it
//!      can only count the common values.
//!
//!    Steps 3 and 4 and the receipt of the own double-blinded points run
//!    concurrently on both sides: each party blinds its own set while it
//!    double-blinds the peer's batches received so far, so neither waits for the
//!    other's whole set and the network transfer overlaps the curve work. Only the
//!    timing interleaves; every message, its tag and its content are as in the
//!    sequential description. (Earlier builds sent the blinded points sorted by
//!    encoding, which needs the whole bucket blinded before the first batch; a sorted
//!    order and a secret random order both hide the input order, and receivers accept
//!    either, so the wire version is unchanged.)
//! 5. Each side intersects its own double-blinded values with the peer's; both then
//!    exchange `SHA-256("fedra-psi-checksum-v1" || bucket || count || sorted matched
//!    double-blinded encodings)` and fail with [`PsiError::ChecksumMismatch`] naming the
//!    bucket if they differ. This catches a silent disagreement of the two views of a
//!    bucket (a bug, a lost or reordered batch) instead of training on misaligned rows.
//!
//! Every peer message is validated before use: exact lengths, whole 32-byte points,
//! counts within what the peer declared in `hello` and within
//! [`EcdhConfig::max_peer_ids`], valid and non-identity ristretto255 encodings.
//! A violation is a [`FedError::Decode`] naming
//! the peer and the message tag.
//!
//! The result lists the intersection in a canonical order that both sides agree on:
//! by bucket, then by the double-blinded encoding. With [`OutputMode::Both`], both
//! parties' [`Intersection::ids`] are equal lists, so aligned datasets have the same
//! row order on both sides.
//!
//! ## Threat model
//!
//! Semi-honest (honest-but-curious) parties: each follows the protocol but may
//! analyse everything it receives. Security rests on the decisional Diffie–Hellman
//! assumption in ristretto255 with `H` modelled as a random oracle. Not covered:
//! malicious parties (a malicious party can, for instance, feed arbitrary ids — any
//! PSI allows that — or send wrong double-blinded values to make the other side's
//! output wrong; the checksum catches inconsistency only between honest
//! implementations), and traffic analysis beyond what is listed below.
//!
//! What each party learns, besides its own input:
//!
//! | | leader learns | follower learns |
//! |---|---|---|
//! | [`OutputMode::Both`] | the intersection (which of its ids are common) | the intersection |
//! | [`OutputMode::LeaderOnly`] | the intersection | only the intersection **size** |
//!
//! and, in both modes, for both parties:
//!
//! * the number of distinct ids of the peer (declared in `hello`), and **the number
//!   of peer ids in each bucket** (the bucket salt is known to both sides, so this is
//!   a histogram of the peer's set under a hash both can compute; with `N` buckets it
//!   reveals on the order of `(N/2)·log2(n/N)` bits about the peer's set beyond its size — use
//!   `buckets = 1` if even that matters) and therefore the intersection size per
//!   bucket;
//! * nothing else about the peer's ids outside the intersection: the peer's blinded
//!   points are pseudo-random group elements, sent in a secret random order, so
//!   neither the values nor the peer's input order of non-matching ids leak.
//!
//! In `LeaderOnly` mode the follower does not learn which of its ids matched: the
//! values it can link to its own ids are only `H(y)^b`; the `H(y)^{ab}` come back
//! sorted, and linking them would require `a` (or solving DDH). The leader learns
//! which of *its* ids matched, exactly as in `Both`.
//!
//! Secret scalars (and `s/2 mod ℓ`, used for batched encoding: `enc(2·(s/2)·P) =
//! enc(s·P)`) are wiped from the protocol's own memory when the run ends (copies
//! made by rayon closures are plain `Copy` values and are best effort).
//!
//! ## Performance
//!
//! Curve work is batched: points are encoded 256 at a time with one shared field
//! inversion ([`RistrettoPoint::double_and_compress_batch`] applied to `(s/2)·P`),
//! which makes the protocol's per-point cost lower than that of [`blind`] and
//! [`reblind`]; the intersection is a parallel sort-merge.

use std::sync::Arc;
use std::time::Instant;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use fedra_federation::codec::{CodecError, Reader, Writer};
use fedra_federation::{Channel, FedError, PartyId, Tag};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::PsiError;
use crate::hash::{bucket_of, hash_to_group};
use crate::wire::{count_msg, dedup, offload, recv_count, recv_exact, recv_items, send, try_join3};
use crate::{Intersection, OutputMode, PsiStats, Role};

/// Wire version of this protocol: 2 since its integers are little-endian (the
/// codec); 1 was big-endian, so a peer on an older build is refused in the hello.
const VERSION: u8 = 2;
const MAGIC: &[u8; 4] = b"FPSI";
const KIND_ECDH: u8 = 1;
const HELLO_LEN: usize = 4 + 1 + 1 + 1 + 1 + 4 + 4 + 8 + 32;
/// Largest accepted batch size (points per message), from either side.
pub const MAX_BATCH_POINTS: u32 = 1 << 22;

/// Settings of one ECDH-PSI run; both parties must agree on `mode` and `buckets`
/// (checked in the handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdhConfig {
    /// Task name used in message tags and in the hash-to-group domain.
    pub task: String,
    /// Who learns the intersection.
    pub mode: OutputMode,
    /// Number of hash buckets (≥ 1); memory is bounded by the largest bucket.
    pub buckets: u32,
    /// Maximum points per message (1..=[`MAX_BATCH_POINTS`]); 65,536 points = 2 MiB.
    pub batch_points: u32,
    /// The most distinct ids this party accepts the peer to declare.
    pub max_peer_ids: u64,
}

impl EcdhConfig {
    /// Defaults: [`OutputMode::Both`], 1 bucket, 65,536 points per message, at most
    /// 2^30 peer ids.
    pub fn new(task: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            mode: OutputMode::Both,
            buckets: 1,
            batch_points: 1 << 16,
            max_peer_ids: 1 << 30,
        }
    }

    /// Sets the output mode.
    pub fn with_mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the number of buckets.
    pub fn with_buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// Sets the maximum points per message.
    pub fn with_batch_points(mut self, batch_points: u32) -> Self {
        self.batch_points = batch_points;
        self
    }

    /// Sets the largest accepted peer set size.
    pub fn with_max_peer_ids(mut self, max: u64) -> Self {
        self.max_peer_ids = max;
        self
    }

    fn validate(&self) -> Result<(), PsiError> {
        let bad = |detail: String| Err(PsiError::Config { detail });
        if self.buckets == 0 {
            return bad("buckets must be at least 1".into());
        }
        if self.batch_points == 0 || self.batch_points > MAX_BATCH_POINTS {
            return bad(format!(
                "batch_points must be in 1..={MAX_BATCH_POINTS}, got {}",
                self.batch_points
            ));
        }
        if self.task.is_empty() {
            return bad("task name must not be empty".into());
        }
        Ok(())
    }
}

struct Hello {
    role: Role,
    mode: OutputMode,
    buckets: u32,
    batch: u32,
    count: u64,
    salt: [u8; 32],
}

impl Hello {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HELLO_LEN);
        w.raw(MAGIC)
            .u8(VERSION)
            .u8(KIND_ECDH)
            .u8(self.role.code())
            .u8(self.mode.code())
            .u32(self.buckets)
            .u32(self.batch)
            .u64(self.count)
            .raw(&self.salt);
        w.into_vec()
    }

    fn decode(b: &[u8], peer: &PartyId, tag: &Tag) -> Result<Hello, PsiError> {
        let malformed = |detail: &str| PsiError::from(FedError::malformed(peer, tag, detail));
        let codec = |e: CodecError| PsiError::from(e.from_peer(peer, tag));
        let mut r = Reader::new(b);
        let magic: [u8; 4] = r.array().map_err(codec)?;
        let [version, kind, role, mode] = r.array().map_err(codec)?;
        if &magic != MAGIC || kind != KIND_ECDH {
            return Err(malformed("not an ECDH-PSI hello message"));
        }
        if version != VERSION {
            return Err(PsiError::ConfigMismatch {
                party: peer.to_string(),
                detail: format!("protocol version {VERSION} here, {version} there"),
            });
        }
        let role = Role::from_code(role).ok_or_else(|| malformed("unknown role"))?;
        let mode = OutputMode::from_code(mode).ok_or_else(|| malformed("unknown mode"))?;
        let hello = Hello {
            role,
            mode,
            buckets: r.u32().map_err(codec)?,
            batch: r.u32().map_err(codec)?,
            count: r.u64().map_err(codec)?,
            salt: r.array().map_err(codec)?,
        };
        r.finish().map_err(codec)?;
        Ok(hello)
    }
}

/// Draws a uniformly random non-zero scalar (64 random bytes reduced mod ℓ, as
/// `Scalar::random` does).
fn random_scalar<R: CryptoRng + RngCore>(rng: &mut R) -> Zeroizing<Scalar> {
    loop {
        let mut wide = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(wide.as_mut());
        let s = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&wide));
        if *s != Scalar::ZERO {
            return s;
        }
    }
}

/// `H(id)^s`, compressed: the first blinding.
pub fn blind(job: &str, task: &str, id: &[u8], s: &Scalar) -> [u8; 32] {
    (hash_to_group(job, task, id) * s).compress().to_bytes()
}

/// Decodes a peer's point, raises it to `s` and re-encodes it: the second blinding.
/// Fails on an invalid encoding or the identity.
pub fn reblind(encoded: &[u8; 32], s: &Scalar) -> Result<[u8; 32], &'static str> {
    if encoded == &[0u8; 32] {
        return Err("the identity point is not a valid blinded id");
    }
    let p: RistrettoPoint = CompressedRistretto(*encoded)
        .decompress()
        .ok_or("not a valid ristretto255 point encoding")?;
    Ok((p * s).compress().to_bytes())
}

/// Points per batch normalisation: one field inversion is shared by this many
/// points when they are encoded ([`RistrettoPoint::double_and_compress_batch`]),
/// and this is also the unit of parallel work.
const ENCODE_CHUNK: usize = 256;

/// `s / 2 mod ℓ`: multiplying by it and then encoding `2·P` in a batch
/// ([`RistrettoPoint::double_and_compress_batch`]) gives exactly the encoding of
/// `s·P`, because ristretto255 has prime order ℓ (2 is invertible mod ℓ).
fn half_of(s: &Scalar) -> Zeroizing<Scalar> {
    Zeroizing::new(s * Scalar::from(2u8).invert())
}

/// Writes the encodings of `2·P` for every `P` in `points` to `out` (32 bytes each).
fn double_and_encode(points: &[RistrettoPoint], out: &mut [u8]) {
    for (dst, c) in out
        .chunks_exact_mut(32)
        .zip(RistrettoPoint::double_and_compress_batch(points))
    {
        dst.copy_from_slice(c.as_bytes());
    }
}

/// `H(id)^s` for the ids `ids[i]`, `i` in `order`, flat (32 bytes per id), computed
/// on all cores with batched encoding; `half` is [`half_of`]`(s)`. Equal to
/// [`blind`] point by point.
fn blind_many(job: &str, task: &str, ids: &[String], order: &[u32], half: &Scalar) -> Vec<u8> {
    let mut out = vec![0u8; order.len() * 32];
    out.par_chunks_mut(32 * ENCODE_CHUNK)
        .zip(order.par_chunks(ENCODE_CHUNK))
        .for_each(|(out, idx)| {
            let points: Vec<RistrettoPoint> = idx
                .iter()
                .map(|&i| hash_to_group(job, task, ids[i as usize].as_bytes()) * half)
                .collect();
            double_and_encode(&points, out);
        });
    out
}

/// Decodes a peer's point, refusing the identity and invalid encodings.
fn decode_point(encoded: &[u8]) -> Result<RistrettoPoint, &'static str> {
    if encoded.iter().all(|&b| b == 0) {
        return Err("the identity point is not a valid blinded id");
    }
    CompressedRistretto::from_slice(encoded)
        .ok()
        .and_then(|c| c.decompress())
        .ok_or("not a valid ristretto255 point encoding")
}

/// [`reblind`] of every 32-byte point of `bytes`, flat, on all cores with batched
/// encoding; `half` is [`half_of`]`(s)`. Fails naming the first bad point of a chunk.
fn reblind_many(bytes: &[u8], half: &Scalar) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; bytes.len()];
    out.par_chunks_mut(32 * ENCODE_CHUNK)
        .zip(bytes.par_chunks(32 * ENCODE_CHUNK))
        .enumerate()
        .try_for_each(|(k, (out, input))| {
            let points = input
                .chunks_exact(32)
                .enumerate()
                .map(|(j, c)| {
                    decode_point(c)
                        .map(|p| p * half)
                        .map_err(|e| format!("point {}: {e}", k * ENCODE_CHUNK + j))
                })
                .collect::<Result<Vec<RistrettoPoint>, String>>()?;
            double_and_encode(&points, out);
            Ok::<(), String>(())
        })?;
    Ok(out)
}

/// The common values of `own` (this party's double-blinded points, flat, in the
/// order of `order`) and `peer` (the peer's double-blinded points), each with the
/// index of the own id, sorted by encoding: the canonical order. Sort-merge on all
/// cores; each own value matches at most once.
fn intersect(own: &[u8], order: &[u32], mut peer: Vec<[u8; 32]>) -> Vec<([u8; 32], u32)> {
    let mut mine: Vec<([u8; 32], u32)> = own
        .par_chunks_exact(32)
        .zip(order.par_iter())
        .map(|(c, &i)| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            (a, i)
        })
        .collect();
    let ((), ()) = rayon::join(|| mine.par_sort_unstable(), || peer.par_sort_unstable());
    let mut matched = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < mine.len() && j < peer.len() {
        match mine[i].0.cmp(&peer[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                matched.push(mine[i]);
                i += 1;
            }
        }
    }
    matched
}

/// A uniformly random index in `0..n` (`n` ≥ 1), by rejection sampling.
fn below<R: RngCore>(rng: &mut R, n: u64) -> u64 {
    let limit = u64::MAX - u64::MAX % n;
    loop {
        let x = rng.next_u64();
        if x < limit {
            return x % n;
        }
    }
}

/// A uniformly random permutation of `0..n` (Fisher–Yates), secret to this party.
fn secret_permutation<R: RngCore>(rng: &mut R, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

fn add_counts(total: &mut PsiStats, part: &PsiStats) {
    total.points_sent += part.points_sent;
    total.bytes_sent += part.bytes_sent;
    total.messages_sent += part.messages_sent;
    total.curve_ops += part.curve_ops;
}

fn flatten(points: &[[u8; 32]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(points.len() * 32);
    for p in points {
        v.extend_from_slice(p);
    }
    v
}

fn to_points(bytes: &[u8]) -> impl Iterator<Item = [u8; 32]> + '_ {
    bytes.chunks_exact(32).map(|c| {
        let mut a = [0u8; 32];
        a.copy_from_slice(c);
        a
    })
}

/// The per-bucket intersection checksum (`matched` sorted).
fn checksum(bucket: u32, matched: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedra-psi-checksum-v1");
    h.update(bucket.to_be_bytes());
    h.update((matched.len() as u64).to_be_bytes());
    for m in matched {
        h.update(m);
    }
    h.finalize().into()
}

/// Runs ECDH-PSI with `peer` over `ch` and returns this party's output.
///
/// `ids` may contain repeats; they are collapsed (the protocol works on the set).
/// The job id (`ch.job()`) and `cfg.task` are part of the hash-to-group domain, so
/// both parties must use the same ones. `rng` supplies the secret blinding scalar,
/// the secret order in which the blinded ids are sent and (on the leader) the bucket
/// salt; it is used before the first message only.
/// See the [module docs](self) for the protocol and what each party learns.
pub async fn ecdh_psi<R: CryptoRng + RngCore + Send>(
    ch: &dyn Channel,
    peer: &PartyId,
    role: Role,
    cfg: &EcdhConfig,
    ids: &[String],
    rng: &mut R,
) -> Result<(Intersection, PsiStats), PsiError> {
    cfg.validate()?;
    let start = Instant::now();
    let secret = random_scalar(rng);
    let mut salt = [0u8; 32];
    if role == Role::Leader {
        rng.fill_bytes(&mut salt);
    }
    let ids: Arc<Vec<String>> = Arc::new(dedup(ids));
    // The order in which this party sends its blinded ids: secret and uniformly
    // random, so it reveals nothing about the input order.
    let perm = secret_permutation(rng, ids.len());
    let mut stats = PsiStats {
        ids_in: ids.len() as u64,
        buckets: cfg.buckets,
        ..PsiStats::default()
    };

    // 1. Handshake.
    let hello_tag = Tag::new(&cfg.task, 0, "hello");
    let mine = Hello {
        role,
        mode: cfg.mode,
        buckets: cfg.buckets,
        batch: cfg.batch_points,
        count: ids.len() as u64,
        salt,
    };
    send(ch, peer, &hello_tag, mine.encode(), &mut stats).await?;
    let raw = recv_exact(ch, peer, &hello_tag, HELLO_LEN).await?;
    let theirs = Hello::decode(&raw, peer, &hello_tag)?;
    let mismatch = |detail: String| PsiError::ConfigMismatch {
        party: peer.to_string(),
        detail,
    };
    if theirs.role == role {
        return Err(mismatch(format!("both parties are the {role:?}")));
    }
    if theirs.mode != cfg.mode {
        return Err(mismatch(format!(
            "output mode {:?} here, {:?} there",
            cfg.mode, theirs.mode
        )));
    }
    if theirs.buckets != cfg.buckets {
        return Err(mismatch(format!(
            "{} buckets here, {} there",
            cfg.buckets, theirs.buckets
        )));
    }
    if theirs.batch == 0 || theirs.batch > MAX_BATCH_POINTS {
        return Err(FedError::malformed(
            peer,
            &hello_tag,
            format!("batch size {} outside 1..={MAX_BATCH_POINTS}", theirs.batch),
        )
        .into());
    }
    if theirs.count > cfg.max_peer_ids {
        return Err(PsiError::TooManyIds {
            party: peer.to_string(),
            declared: theirs.count,
            max: cfg.max_peer_ids,
        });
    }
    if role == Role::Follower {
        salt = theirs.salt;
    }
    let my_batch = cfg.batch_points as usize;
    let peer_batch = theirs.batch as usize;
    let mut peer_remaining = theirs.count;

    // 2. Partition, each bucket in this party's secret random order (see step 3).
    let buckets = cfg.buckets;
    let ids_p = ids.clone();
    let mut parts: Vec<Vec<u32>> = offload(move || {
        let assign: Vec<u32> = ids_p
            .par_iter()
            .map(|id| bucket_of(&salt, id.as_bytes(), buckets))
            .collect();
        let mut parts = vec![Vec::new(); buckets as usize];
        for i in perm {
            parts[assign[i as usize] as usize].push(i);
        }
        parts
    })
    .await?;

    let learns_ids = cfg.mode == OutputMode::Both || role == Role::Leader;
    let return_sorted = cfg.mode == OutputMode::LeaderOnly && role == Role::Leader;
    let job: Arc<str> = Arc::from(ch.job());
    let task: Arc<str> = Arc::from(cfg.task.as_str());
    let half = half_of(&secret);
    let mut out_ids = Vec::new();
    let mut size = 0usize;

    for b in 0..buckets {
        let round = u64::from(b);
        let tag = |name: String| Tag::new(&cfg.task, round, name);
        // This bucket's own ids, in the secret random order.
        let order: Arc<Vec<u32>> = Arc::new(std::mem::take(&mut parts[b as usize]));
        send(
            ch,
            peer,
            &tag("count".into()),
            count_msg(order.len() as u64),
            &mut stats,
        )
        .await?;

        // Three concurrent streams (their curve work shares the rayon pool):
        // 3. blind own ids batch by batch and send each batch as soon as it is ready;
        let own_side = async {
            let mut st = PsiStats::default();
            for (i, chunk) in order.chunks(my_batch).enumerate() {
                let (ids_c, job_c, task_c, h) = (ids.clone(), job.clone(), task.clone(), *half);
                let idx = chunk.to_vec();
                let flat = offload(move || blind_many(&job_c, &task_c, &ids_c, &idx, &h)).await?;
                st.curve_ops += 2 * chunk.len() as u64;
                st.points_sent += chunk.len() as u64;
                send(ch, peer, &tag(format!("blinded-{i}")), flat, &mut st).await?;
            }
            Ok(st)
        };
        // 4. double-blind the peer's batches as they arrive and return them;
        let remaining = peer_remaining;
        let peer_side = async {
            let mut st = PsiStats::default();
            let count_tag = tag("count".into());
            let peer_n = recv_count(ch, peer, &count_tag).await?;
            if peer_n > remaining {
                return Err(FedError::malformed(
                    peer,
                    &count_tag,
                    format!(
                        "bucket {b} announces {peer_n} points, but only {remaining} of the {} ids declared in hello remain",
                        theirs.count
                    ),
                ).into());
            }
            let n = peer_n as usize;
            let mut peer_double: Vec<[u8; 32]> = Vec::with_capacity(n.min(1 << 20)); // grow with what really arrives
            for i in 0..n.div_ceil(peer_batch) {
                let items = peer_batch.min(n - i * peer_batch);
                let btag = tag(format!("blinded-{i}"));
                let raw = recv_items(ch, peer, &btag, items, 32).await?;
                let h = *half;
                let doubled = offload(move || reblind_many(&raw, &h))
                    .await?
                    .map_err(|detail| FedError::malformed(peer, &btag, detail))?;
                st.curve_ops += items as u64;
                peer_double.extend(to_points(&doubled));
                if !return_sorted {
                    st.points_sent += items as u64;
                    send(ch, peer, &tag(format!("double-{i}")), doubled, &mut st).await?;
                }
            }
            if return_sorted {
                peer_double = offload(move || {
                    peer_double.par_sort_unstable();
                    peer_double
                })
                .await?;
                for (i, chunk) in peer_double.chunks(peer_batch).enumerate() {
                    st.points_sent += chunk.len() as u64;
                    send(
                        ch,
                        peer,
                        &tag(format!("double-{i}")),
                        flatten(chunk),
                        &mut st,
                    )
                    .await?;
                }
            }
            Ok((peer_n, peer_double, st))
        };
        // 5. collect our own double-blinded points (in our order, or sorted).
        let back_side = async {
            let mut own_double = Vec::with_capacity(order.len() * 32);
            for (i, chunk) in order.chunks(my_batch).enumerate() {
                let dtag = tag(format!("double-{i}"));
                own_double.extend_from_slice(&recv_items(ch, peer, &dtag, chunk.len(), 32).await?);
            }
            Ok(own_double)
        };
        let (own_st, (peer_n, peer_double, peer_st), own_double) =
            try_join3(own_side, peer_side, back_side).await?;
        add_counts(&mut stats, &own_st);
        add_counts(&mut stats, &peer_st);
        peer_remaining -= peer_n;

        // Intersect own double-blinded values with the peer's.
        let order_c = order.clone();
        let matched = offload(move || intersect(&own_double, &order_c, peer_double)).await?;

        // 6. Checksums.
        let encodings: Vec<[u8; 32]> = matched.iter().map(|(d, _)| *d).collect();
        let sum = checksum(b, &encodings);
        let ctag = tag("checksum".into());
        send(ch, peer, &ctag, sum.to_vec(), &mut stats).await?;
        let theirs_sum = recv_exact(ch, peer, &ctag, 32).await?;
        if theirs_sum.as_ref() != sum {
            return Err(PsiError::ChecksumMismatch {
                party: peer.to_string(),
                bucket: b,
            });
        }
        size += matched.len();
        if learns_ids {
            out_ids.extend(matched.iter().map(|(_, i)| ids[*i as usize].clone()));
        }
        tracing::debug!(
            bucket = b,
            own = order.len(),
            peer = peer_n,
            matched = matched.len(),
            "psi bucket done"
        );
    }
    if peer_remaining != 0 {
        return Err(FedError::malformed(
            peer,
            &Tag::new(&cfg.task, u64::from(buckets.saturating_sub(1)), "count"),
            format!(
                "the buckets hold {} points fewer than the {} ids declared in hello",
                peer_remaining, theirs.count
            ),
        )
        .into());
    }
    stats.wall_s = start.elapsed().as_secs_f64();
    tracing::info!(
        peer = %peer,
        ?role,
        mode = ?cfg.mode,
        ids_in = stats.ids_in,
        peer_ids = theirs.count,
        intersection = size,
        buckets,
        wall_s = stats.wall_s,
        "ECDH-PSI done"
    );
    Ok((
        Intersection {
            ids: out_ids,
            size,
            ids_revealed: learns_ids,
        },
        stats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(seed: u8) -> Scalar {
        Scalar::from_bytes_mod_order_wide(&[seed; 64])
    }

    #[test]
    fn batched_blinding_equals_blind_and_reblind_point_by_point() {
        // More than one encoding chunk, and a partial last chunk.
        let n = 2 * ENCODE_CHUNK + 7;
        let ids: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
        let order: Vec<u32> = (0..n as u32).rev().collect();
        let (a, b) = (scalar(3), scalar(250));
        let flat = blind_many("job", "task", &ids, &order, &half_of(&a));
        for (c, &i) in flat.chunks_exact(32).zip(&order) {
            assert_eq!(c, blind("job", "task", ids[i as usize].as_bytes(), &a));
        }
        let double = reblind_many(&flat, &half_of(&b)).expect("valid points");
        for (d, c) in double.chunks_exact(32).zip(flat.chunks_exact(32)) {
            let c: [u8; 32] = c.try_into().expect("32 bytes");
            assert_eq!(d, reblind(&c, &b).expect("valid point"));
        }
    }

    #[test]
    fn batched_reblinding_names_the_bad_point() {
        let ids: Vec<String> = (0..600).map(|i| format!("{i}")).collect();
        let order: Vec<u32> = (0..600).collect();
        let mut flat = blind_many("j", "t", &ids, &order, &half_of(&scalar(9)));
        flat[32 * 300..32 * 301].fill(0xff);
        let e = reblind_many(&flat, &half_of(&scalar(1))).expect_err("bad point");
        assert!(e.starts_with("point 300: not a valid"), "{e}");
        flat[32 * 300..32 * 301].fill(0);
        let e = reblind_many(&flat, &half_of(&scalar(1))).expect_err("identity");
        assert!(e.starts_with("point 300: the identity"), "{e}");
    }

    #[test]
    fn secret_permutation_is_a_permutation() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([5u8; 32]);
        for n in [0usize, 1, 2, 1000] {
            let mut p = secret_permutation(&mut rng, n);
            if n == 1000 {
                assert_ne!(p, (0..1000).collect::<Vec<u32>>());
            }
            p.sort_unstable();
            assert_eq!(p, (0..n as u32).collect::<Vec<u32>>());
        }
    }

    #[test]
    fn intersect_matches_each_own_value_once_in_encoding_order() {
        let own: Vec<[u8; 32]> = [5u8, 1, 9, 3].map(|b| [b; 32]).to_vec();
        let peer: Vec<[u8; 32]> = [9u8, 2, 3, 3, 7].map(|b| [b; 32]).to_vec();
        let m = intersect(&flatten(&own), &[10, 11, 12, 13], peer);
        assert_eq!(m, vec![([3u8; 32], 13), ([9u8; 32], 12)]);
        assert!(intersect(&[], &[], vec![[1u8; 32]]).is_empty());
    }
}
