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
//! 2. Both sides hash-partition their ids into `N` buckets with the salted hash of
//!    [`bucket_of`]. Buckets are processed one after the
//!    other (memory is bounded by the largest bucket); within a bucket the curve
//!    work runs on all cores (rayon). Every message of bucket `k` uses round `k`.
//! 3. Per bucket: each side sends `H(x)^a` (resp. `H(y)^b`) **sorted by encoding**
//!    (a pseudo-random permutation that hides the input order), in batches of at most
//!    `batch_points` points (`blinded-<i>`), after a `count` message.
//! 4. Each side raises the peer's points to its own scalar and returns the
//!    double-blinded points `H(·)^{ab}` (`double-<i>`):
//!    * the follower always returns them **in the order received**, so the leader can
//!      map them back to its ids;
//!    * the leader returns them in the order received in [`OutputMode::Both`], and
//!      **sorted by their own encoding** in [`OutputMode::LeaderOnly`]: the follower
//!      cannot compute `H(y)^{ab}` itself (it lacks `a`), so a sorted list cannot be
//!      linked to its ids and it can only count the common values.
//! 5. Each side intersects its own double-blinded values with the peer's; both then
//!    exchange `SHA-256("fedra-psi-checksum-v1" || bucket || count || sorted matched
//!    double-blinded encodings)` and fail with [`PsiError::ChecksumMismatch`] naming the
//!    bucket if they differ. This catches a silent disagreement of the two views of a
//!    bucket (a bug, a lost or reordered batch) instead of training on misaligned rows.
//!
//! Every peer message is validated before use: exact lengths, whole 32-byte points,
//! counts within what the peer declared in `hello` and within
//! [`EcdhConfig::max_peer_ids`], valid and non-identity ristretto255 encodings.
//! A violation is a [`FedError::Decode`](fedra_federation::FedError::Decode) naming
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
//!   points are pseudo-random group elements, sent in sorted (random-looking) order,
//!   so neither the values nor the peer's input order of non-matching ids leak.
//!
//! In `LeaderOnly` mode the follower does not learn which of its ids matched: the
//! values it can link to its own ids are only `H(y)^b`; the `H(y)^{ab}` come back
//! sorted, and linking them would require `a` (or solving DDH). The leader learns
//! which of *its* ids matched, exactly as in `Both`.
//!
//! Secret scalars are wiped from the protocol's own memory when the run ends (copies
//! made by rayon closures are plain `Copy` values and are best effort).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use fedra_federation::{Channel, PartyId, Tag};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{PsiError, decode_err};
use crate::hash::{bucket_of, hash_to_group};
use crate::wire::{be_u32, be_u64, dedup, offload, recv_exact, recv_items, send};
use crate::{Intersection, OutputMode, PsiStats, Role};

/// Wire version of this protocol.
const VERSION: u8 = 1;
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
        let mut v = Vec::with_capacity(HELLO_LEN);
        v.extend_from_slice(MAGIC);
        v.push(VERSION);
        v.push(KIND_ECDH);
        v.push(self.role.code());
        v.push(self.mode.code());
        v.extend_from_slice(&self.buckets.to_be_bytes());
        v.extend_from_slice(&self.batch.to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&self.salt);
        v
    }

    fn decode(b: &[u8], peer: &PartyId, tag: &Tag) -> Result<Hello, PsiError> {
        // The caller checked the length.
        if &b[..4] != MAGIC || b[5] != KIND_ECDH {
            return Err(decode_err(peer, tag, "not an ECDH-PSI hello message"));
        }
        if b[4] != VERSION {
            return Err(PsiError::ConfigMismatch {
                party: peer.to_string(),
                detail: format!("protocol version {} here, {} there", VERSION, b[4]),
            });
        }
        let role = Role::from_code(b[6]).ok_or_else(|| decode_err(peer, tag, "unknown role"))?;
        let mode =
            OutputMode::from_code(b[7]).ok_or_else(|| decode_err(peer, tag, "unknown mode"))?;
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&b[24..56]);
        Ok(Hello {
            role,
            mode,
            buckets: be_u32(&b[8..12]),
            batch: be_u32(&b[12..16]),
            count: be_u64(&b[16..24]),
            salt,
        })
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

fn reblind_all(bytes: &[u8], s: &Scalar) -> Result<Vec<[u8; 32]>, String> {
    bytes
        .par_chunks_exact(32)
        .enumerate()
        .map(|(k, c)| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            reblind(&a, s).map_err(|e| format!("point {k}: {e}"))
        })
        .collect()
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
/// both parties must use the same ones. `rng` supplies the secret blinding scalar
/// and (on the leader) the bucket salt; it is used before the first message only.
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
        return Err(decode_err(
            peer,
            &hello_tag,
            format!("batch size {} outside 1..={MAX_BATCH_POINTS}", theirs.batch),
        ));
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

    // 2. Partition.
    let buckets = cfg.buckets;
    let ids_p = ids.clone();
    let mut parts: Vec<Vec<u32>> = offload(move || {
        let assign: Vec<u32> = ids_p
            .par_iter()
            .map(|id| bucket_of(&salt, id.as_bytes(), buckets))
            .collect();
        let mut parts = vec![Vec::new(); buckets as usize];
        for (i, b) in assign.into_iter().enumerate() {
            parts[b as usize].push(i as u32);
        }
        parts
    })
    .await?;

    let learns_ids = cfg.mode == OutputMode::Both || role == Role::Leader;
    let return_sorted = cfg.mode == OutputMode::LeaderOnly && role == Role::Leader;
    let job: Arc<str> = Arc::from(ch.job());
    let task: Arc<str> = Arc::from(cfg.task.as_str());
    let mut out_ids = Vec::new();
    let mut size = 0usize;

    for b in 0..buckets {
        let round = u64::from(b);
        let tag = |name: String| Tag::new(&cfg.task, round, name);

        // 3. Blind own ids, sort by encoding, send.
        let idx = std::mem::take(&mut parts[b as usize]);
        let (ids_c, job_c, task_c, s) = (ids.clone(), job.clone(), task.clone(), *secret);
        let mine: Vec<([u8; 32], u32)> = offload(move || {
            let mut v: Vec<([u8; 32], u32)> = idx
                .par_iter()
                .map(|&i| (blind(&job_c, &task_c, ids_c[i as usize].as_bytes(), &s), i))
                .collect();
            v.par_sort_unstable();
            v
        })
        .await?;
        stats.curve_ops += 2 * mine.len() as u64;
        send(
            ch,
            peer,
            &tag("count".into()),
            (mine.len() as u64).to_be_bytes().to_vec(),
            &mut stats,
        )
        .await?;
        for (i, chunk) in mine.chunks(my_batch).enumerate() {
            let mut flat = Vec::with_capacity(chunk.len() * 32);
            for (p, _) in chunk {
                flat.extend_from_slice(p);
            }
            stats.points_sent += chunk.len() as u64;
            send(ch, peer, &tag(format!("blinded-{i}")), flat, &mut stats).await?;
        }

        // 4. Receive the peer's blinded points, double-blind, return.
        let count_tag = tag("count".into());
        let peer_n = be_u64(&recv_exact(ch, peer, &count_tag, 8).await?);
        if peer_n > peer_remaining {
            return Err(decode_err(
                peer,
                &count_tag,
                format!(
                    "bucket {b} announces {peer_n} points, but only {peer_remaining} of the {} ids declared in hello remain",
                    theirs.count
                ),
            ));
        }
        peer_remaining -= peer_n;
        let peer_n = peer_n as usize;
        let mut peer_double: Vec<[u8; 32]> = Vec::with_capacity(peer_n);
        let n_batches = peer_n.div_ceil(peer_batch);
        for i in 0..n_batches {
            let items = peer_batch.min(peer_n - i * peer_batch);
            let btag = tag(format!("blinded-{i}"));
            let raw = recv_items(ch, peer, &btag, items, 32).await?;
            let s = *secret;
            let doubled = offload(move || reblind_all(&raw, &s))
                .await?
                .map_err(|detail| decode_err(peer, &btag, detail))?;
            stats.curve_ops += doubled.len() as u64;
            if !return_sorted {
                stats.points_sent += doubled.len() as u64;
                send(
                    ch,
                    peer,
                    &tag(format!("double-{i}")),
                    flatten(&doubled),
                    &mut stats,
                )
                .await?;
            }
            peer_double.extend(doubled);
        }
        if return_sorted {
            peer_double.sort_unstable();
            for (i, chunk) in peer_double.chunks(peer_batch).enumerate() {
                stats.points_sent += chunk.len() as u64;
                send(
                    ch,
                    peer,
                    &tag(format!("double-{i}")),
                    flatten(chunk),
                    &mut stats,
                )
                .await?;
            }
        }

        // 5. Receive own double-blinded points (in our order, or sorted) and match.
        let peer_set: HashSet<[u8; 32]> = peer_double.into_iter().collect();
        let mut matched: Vec<([u8; 32], u32)> = Vec::new();
        for (i, chunk) in mine.chunks(my_batch).enumerate() {
            let dtag = tag(format!("double-{i}"));
            let raw = recv_items(ch, peer, &dtag, chunk.len(), 32).await?;
            for (d, (_, idx)) in to_points(&raw).zip(chunk) {
                if peer_set.contains(&d) {
                    matched.push((d, *idx));
                }
            }
        }
        drop(peer_set);
        matched.sort_unstable();

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
            own = mine.len(),
            peer = peer_n,
            matched = matched.len(),
            "psi bucket done"
        );
    }
    if peer_remaining != 0 {
        return Err(decode_err(
            peer,
            &Tag::new(&cfg.task, u64::from(buckets.saturating_sub(1)), "count"),
            format!(
                "the buckets hold {} points fewer than the {} ids declared in hello",
                peer_remaining, theirs.count
            ),
        ));
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
