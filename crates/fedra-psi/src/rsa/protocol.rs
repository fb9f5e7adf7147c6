//! The RSA-PSI protocol over `&dyn Channel`: the hello, the key holder's and the
//! client's roles (see the [parent module](super) for the protocol and its threat
//! model).
//!
//! Every message is encoded with `fedra_federation::codec` (little-endian) and every
//! received one is checked: sizes against the declared counts, values against the
//! modulus, result digests for order and membership, signatures by verification.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use fedra_federation::codec::{CodecError, Reader, Writer};
use fedra_federation::{Channel, FedError, PartyId, Tag};
use openssl::bn::BigNum;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::blind::{SigDigest, blind_batch, sign_all, sign_blinded, unblind_batch};
use super::cache::SignCache;
use super::key::RsaPsiKey;
use crate::error::PsiError;
use crate::wire::{count_msg, dedup, offload, recv_count, recv_exact, recv_items, send};
use crate::{Intersection, PsiStats};

/// Wire version: 2 since its integers are little-endian (the codec); 1 was
/// big-endian, so a peer on an older build is refused in the hello.
const VERSION: u8 = 2;
const MAGIC: &[u8; 4] = b"FPSI";
const KIND_RSA_HOLDER: u8 = 2;
const KIND_RSA_CLIENT: u8 = 3;

/// Who learns what in RSA-PSI (see the threat model in the [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaOutput {
    /// Both parties learn the intersection.
    Both,
    /// The client learns the intersection; the key holder learns only its size.
    ClientOnly,
}

impl RsaOutput {
    fn code(self) -> u8 {
        match self {
            RsaOutput::Both => 1,
            RsaOutput::ClientOnly => 2,
        }
    }
}

/// Settings of one RSA-PSI run; both parties must agree on `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaConfig {
    /// Task name used in message tags.
    pub task: String,
    /// Who learns the intersection.
    pub mode: RsaOutput,
    /// Values per message (1..=65,536); 4,096 values of 2048 bits = 1 MiB.
    pub batch: u32,
    /// The most distinct ids this party accepts the peer to declare.
    pub max_peer_ids: u64,
}

impl RsaConfig {
    /// Defaults: [`RsaOutput::Both`], 4,096 values per message, at most 2^30 peer ids.
    pub fn new(task: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            mode: RsaOutput::Both,
            batch: 4096,
            max_peer_ids: 1 << 30,
        }
    }

    /// Sets the output mode.
    pub fn with_mode(mut self, mode: RsaOutput) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the values per message.
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// Sets the largest accepted peer set size.
    pub fn with_max_peer_ids(mut self, max: u64) -> Self {
        self.max_peer_ids = max;
        self
    }

    fn validate(&self) -> Result<(), PsiError> {
        if self.batch == 0 || self.batch > 1 << 16 {
            return Err(PsiError::Config {
                detail: format!("batch must be in 1..=65536, got {}", self.batch),
            });
        }
        if self.task.is_empty() {
            return Err(PsiError::Config {
                detail: "task name must not be empty".into(),
            });
        }
        Ok(())
    }
}

fn mismatch(peer: &PartyId, detail: String) -> PsiError {
    PsiError::ConfigMismatch {
        party: peer.to_string(),
        detail,
    }
}

/// The common prefix of both hellos: magic, version, kind, mode, batch, count.
fn hello_head(kind: u8, mode: RsaOutput, batch: u32, count: u64) -> Writer {
    let mut w = Writer::with_capacity(64);
    w.raw(MAGIC)
        .u8(VERSION)
        .u8(kind)
        .u8(mode.code())
        .u32(batch)
        .u64(count);
    w
}
const HEAD_LEN: usize = 4 + 1 + 1 + 1 + 4 + 8;

/// Reads and checks a hello prefix and returns `(batch, count)`.
fn check_head(
    r: &mut Reader<'_>,
    kind: u8,
    cfg: &RsaConfig,
    peer: &PartyId,
    tag: &Tag,
) -> Result<(u32, u64), PsiError> {
    let not_hello = || {
        PsiError::from(FedError::malformed(
            peer,
            tag,
            "not an RSA-PSI hello message",
        ))
    };
    let codec = |e: CodecError| PsiError::from(e.from_peer(peer, tag));
    if r.remaining() < HEAD_LEN {
        return Err(not_hello());
    }
    let magic: [u8; 4] = r.array().map_err(codec)?;
    if &magic != MAGIC {
        return Err(not_hello());
    }
    let [version, their_kind, mode] = r.array().map_err(codec)?;
    if version != VERSION {
        return Err(mismatch(
            peer,
            format!("protocol version {VERSION} here, {version} there"),
        ));
    }
    if their_kind != kind {
        return Err(mismatch(
            peer,
            "both parties play the same RSA-PSI role (or one runs another protocol)".into(),
        ));
    }
    if mode != cfg.mode.code() {
        return Err(mismatch(
            peer,
            format!("output mode {:?} here, code {mode} there", cfg.mode),
        ));
    }
    let batch = r.u32().map_err(codec)?;
    if batch == 0 || batch > 1 << 16 {
        return Err(
            FedError::malformed(peer, tag, format_args!("batch size {batch} invalid")).into(),
        );
    }
    let count = r.u64().map_err(codec)?;
    if count > cfg.max_peer_ids {
        return Err(PsiError::TooManyIds {
            party: peer.to_string(),
            declared: count,
            max: cfg.max_peer_ids,
        });
    }
    Ok((batch, count))
}

/// Runs RSA-PSI as the key holder.
///
/// Own ids found in `cache` are not signed again; the others are signed now and
/// added to `cache` (store [`SignCache::to_bytes`] afterwards to keep them). `ids`
/// may contain repeats (collapsed). Needs no RNG from the caller (see the
/// [module docs](super)).
pub async fn rsa_psi_key_holder(
    ch: &dyn Channel,
    peer: &PartyId,
    cfg: &RsaConfig,
    key: &RsaPsiKey,
    ids: &[String],
    cache: Option<&mut SignCache>,
) -> Result<(Intersection, PsiStats), PsiError> {
    cfg.validate()?;
    let start = Instant::now();
    let ids = dedup(ids);
    let mut stats = PsiStats {
        ids_in: ids.len() as u64,
        buckets: 1,
        ..PsiStats::default()
    };

    if let Some(c) = &cache {
        c.check_key(key)?;
    }
    // Hello first (cheap), so a misconfigured peer fails before the signing work.
    let hello_tag = Tag::new(&cfg.task, 0, "hello");
    let mut hello = hello_head(KIND_RSA_HOLDER, cfg.mode, cfg.batch, ids.len() as u64);
    let nbytes = key.nbytes();
    let n = key.n().to_vec_padded(nbytes as i32)?;
    hello.u32(nbytes as u32).raw(&n);
    send(ch, peer, &hello_tag, hello.into_vec(), &mut stats).await?;
    let raw = recv_exact(ch, peer, &hello_tag, HEAD_LEN).await?;
    let mut r = Reader::new(&raw);
    let (client_batch, client_count) = check_head(&mut r, KIND_RSA_CLIENT, cfg, peer, &hello_tag)?;
    r.finish().map_err(|e| e.from_peer(peer, &hello_tag))?;

    // Own digests: from the cache, or signed now (the online part of the offline phase).
    let mut own: Vec<Option<SigDigest>> = match &cache {
        Some(c) => ids.iter().map(|id| c.digest(id)).collect(),
        None => vec![None; ids.len()],
    };
    let missing: Vec<String> = ids
        .iter()
        .zip(&own)
        .filter(|(_, d)| d.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    stats.own_ids_cached = (ids.len() - missing.len()) as u64;
    stats.own_ids_signed = missing.len() as u64;
    stats.rsa_private_ops += missing.len() as u64;
    let (key_c, missing_c) = (key.clone(), missing);
    let (missing, signed) = offload(move || {
        let r = sign_all(&key_c, &missing_c);
        (missing_c, r)
    })
    .await?;
    let signed = signed?;
    let mut fresh = signed.iter();
    for slot in own.iter_mut().filter(|d| d.is_none()) {
        *slot = fresh.next().copied();
    }
    if let Some(c) = cache {
        c.extend(missing.into_iter().zip(signed));
    }
    let mut by_digest: HashMap<SigDigest, usize> = HashMap::with_capacity(ids.len());
    for (i, d) in own.iter().enumerate() {
        let d = d.ok_or_else(|| PsiError::Internal {
            detail: "an own id was left unsigned".into(),
        })?;
        by_digest.insert(d, i);
    }

    // Own digests, sorted.
    let mut sorted: Vec<SigDigest> = by_digest.keys().copied().collect();
    sorted.sort_unstable();
    for (i, chunk) in sorted.chunks(cfg.batch as usize).enumerate() {
        stats.points_sent += chunk.len() as u64;
        send(
            ch,
            peer,
            &Tag::new(&cfg.task, 0, format!("own-{i}")),
            chunk.concat(),
            &mut stats,
        )
        .await?;
    }
    drop(sorted);

    // Sign the client's blinded values, batch by batch.
    let client_n = client_count as usize;
    let cb = client_batch as usize;
    for i in 0..client_n.div_ceil(cb) {
        let items = cb.min(client_n - i * cb);
        let tag = Tag::new(&cfg.task, 0, format!("blinded-{i}"));
        let raw = recv_items(ch, peer, &tag, items, nbytes).await?;
        if let Some(k) = raw.chunks_exact(nbytes).position(|c| c >= &n[..]) {
            return Err(PsiError::from(FedError::malformed(
                peer,
                &tag,
                format!("value {k} is not smaller than the modulus"),
            )));
        }
        let key_c = key.clone();
        let signed = offload(move || sign_blinded(&key_c, &raw, nbytes)).await??;
        stats.rsa_private_ops += items as u64;
        stats.points_sent += items as u64;
        let stag = Tag::new(&cfg.task, 0, format!("signed-{i}"));
        send(ch, peer, &stag, signed, &mut stats).await?;
    }

    // The result.
    let rtag = Tag::new(&cfg.task, 0, "result-count");
    let size = recv_count(ch, peer, &rtag).await?;
    if size > client_count.min(ids.len() as u64) {
        return Err(PsiError::from(FedError::malformed(
            peer,
            &rtag,
            format!("intersection size {size} exceeds a set size"),
        )));
    }
    let size = size as usize;
    let mut out = Vec::new();
    if cfg.mode == RsaOutput::Both {
        let mut prev: Option<SigDigest> = None;
        for i in 0..size.div_ceil(cb) {
            let items = cb.min(size - i * cb);
            let tag = Tag::new(&cfg.task, 0, format!("result-{i}"));
            let raw = recv_items(ch, peer, &tag, items, 32).await?;
            for c in raw.chunks_exact(32) {
                let mut d = [0u8; 32];
                d.copy_from_slice(c);
                if prev.is_some_and(|p| p.cmp(&d) != Ordering::Less) {
                    return Err(PsiError::from(FedError::malformed(
                        peer,
                        &tag,
                        "result digests are not sorted",
                    )));
                }
                prev = Some(d);
                let idx = by_digest.get(&d).ok_or_else(|| {
                    PsiError::from(FedError::malformed(
                        peer,
                        &tag,
                        "result digest is not one of this party's ids",
                    ))
                })?;
                out.push(ids[*idx].clone());
            }
        }
    }
    stats.wall_s = start.elapsed().as_secs_f64();
    tracing::info!(
        peer = %peer,
        ids_in = stats.ids_in,
        own_signed = stats.own_ids_signed,
        own_cached = stats.own_ids_cached,
        client_ids = client_count,
        intersection = size,
        wall_s = stats.wall_s,
        "RSA-PSI (key holder) done"
    );
    Ok((
        Intersection {
            ids: out,
            size,
            ids_revealed: cfg.mode == RsaOutput::Both,
        },
        stats,
    ))
}

/// Runs RSA-PSI as the client. `rng` supplies the blinding factors.
pub async fn rsa_psi_client<R: CryptoRng + RngCore + Send>(
    ch: &dyn Channel,
    peer: &PartyId,
    cfg: &RsaConfig,
    ids: &[String],
    rng: &mut R,
) -> Result<(Intersection, PsiStats), PsiError> {
    cfg.validate()?;
    let start = Instant::now();
    let ids = Arc::new(dedup(ids));
    let mut stats = PsiStats {
        ids_in: ids.len() as u64,
        buckets: 1,
        ..PsiStats::default()
    };

    // Hello: the key holder's public key.
    let hello_tag = Tag::new(&cfg.task, 0, "hello");
    send(
        ch,
        peer,
        &hello_tag,
        hello_head(KIND_RSA_CLIENT, cfg.mode, cfg.batch, ids.len() as u64).into_vec(),
        &mut stats,
    )
    .await?;
    let raw = ch.recv(peer, &hello_tag).await?;
    let mut r = Reader::new(&raw);
    let (holder_batch, holder_count) = check_head(&mut r, KIND_RSA_HOLDER, cfg, peer, &hello_tag)?;
    let codec = |e: CodecError| PsiError::from(e.from_peer(peer, &hello_tag));
    if r.remaining() < 4 {
        return Err(FedError::malformed(peer, &hello_tag, "hello lacks the public key").into());
    }
    let nbytes = r.u32().map_err(codec)? as usize;
    if !(256..=512).contains(&nbytes) || r.remaining() != nbytes {
        return Err(FedError::malformed(
            peer,
            &hello_tag,
            format_args!("public key of {nbytes} bytes in a {}-byte hello", raw.len()),
        )
        .into());
    }
    let n_bytes = r.take(nbytes).map_err(codec)?.to_vec();
    r.finish().map_err(codec)?;
    let n = BigNum::from_slice(&n_bytes)?;
    if n.num_bits() < 2048 || !n.is_bit_set(0) || n.num_bits() as usize != nbytes * 8 {
        return Err(PsiError::BadPeerValue {
            party: peer.to_string(),
            detail: format!(
                "RSA modulus of {} bits (must be odd, full width, ≥ 2048 bits)",
                n.num_bits()
            ),
        });
    }
    let n = Arc::new(n);

    // Blind, get signed, unblind, verify, digest: one batch at a time.
    let batch = cfg.batch as usize;
    let mut own: Vec<SigDigest> = Vec::with_capacity(ids.len());
    for (i, range) in (0..ids.len())
        .step_by(batch)
        .map(|s| s..(s + batch).min(ids.len()))
        .enumerate()
    {
        let items = range.len();
        let mut seeds: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(items);
        for _ in 0..items {
            let mut s = Zeroizing::new(vec![0u8; nbytes + 16]);
            rng.fill_bytes(&mut s);
            seeds.push(s);
        }
        let (ids_c, n_c, range_c) = (ids.clone(), n.clone(), range.clone());
        let (blinded, rinvs) =
            offload(move || blind_batch(&ids_c[range_c], &n_c, nbytes, seeds)).await??;
        stats.points_sent += items as u64;
        send(
            ch,
            peer,
            &Tag::new(&cfg.task, 0, format!("blinded-{i}")),
            blinded,
            &mut stats,
        )
        .await?;
        let stag = Tag::new(&cfg.task, 0, format!("signed-{i}"));
        let signed = recv_items(ch, peer, &stag, items, nbytes).await?;
        let (ids_c, n_c) = (ids.clone(), n.clone());
        let digests = offload(move || unblind_batch(&ids_c[range], &n_c, nbytes, &signed, rinvs))
            .await??
            .map_err(|k| PsiError::BadPeerValue {
                party: peer.to_string(),
                detail: format!("signature {k} of message '{stag}' does not verify"),
            })?;
        own.extend(digests);
    }

    // The key holder's digests.
    let hn = holder_count as usize;
    let hb = holder_batch as usize;
    let mut theirs: HashSet<SigDigest> = HashSet::with_capacity(hn);
    for i in 0..hn.div_ceil(hb) {
        let items = hb.min(hn - i * hb);
        let tag = Tag::new(&cfg.task, 0, format!("own-{i}"));
        let raw = recv_items(ch, peer, &tag, items, 32).await?;
        for c in raw.chunks_exact(32) {
            let mut d = [0u8; 32];
            d.copy_from_slice(c);
            theirs.insert(d);
        }
    }
    let mut matched: Vec<(SigDigest, usize)> = own
        .iter()
        .enumerate()
        .filter(|(_, d)| theirs.contains(*d))
        .map(|(i, d)| (*d, i))
        .collect();
    drop(theirs);
    matched.sort_unstable();

    send(
        ch,
        peer,
        &Tag::new(&cfg.task, 0, "result-count"),
        count_msg(matched.len() as u64),
        &mut stats,
    )
    .await?;
    if cfg.mode == RsaOutput::Both {
        for (i, chunk) in matched.chunks(batch).enumerate() {
            let flat: Vec<u8> = chunk.iter().flat_map(|(d, _)| *d).collect();
            stats.points_sent += chunk.len() as u64;
            send(
                ch,
                peer,
                &Tag::new(&cfg.task, 0, format!("result-{i}")),
                flat,
                &mut stats,
            )
            .await?;
        }
    }
    stats.wall_s = start.elapsed().as_secs_f64();
    Ok((
        Intersection {
            size: matched.len(),
            ids: matched.into_iter().map(|(_, i)| ids[i].clone()).collect(),
            ids_revealed: true,
        },
        stats,
    ))
}
