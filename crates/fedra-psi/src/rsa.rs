//! RSA blind-signature PSI (De Cristofaro–Tsudik 2010; the variant used by
//! Fedlearner and EFLS), with an offline signature cache.
//!
//! ## Protocol
//!
//! The **key holder** owns an RSA key `(n, e = 65537, d)` (2048–4096 bits) and ids
//! `X`; the **client** owns ids `Y`. `FDH` is a full-domain hash of an id to `Z_n`
//! (SHA-256 in counter mode, expanded to `|n| + 128` bits, reduced mod `n`:
//! `T_i = SHA-256("fedra-psi-rsa-fdh-v1" || u32be(i) || u32be(len id) || id)`),
//! `H'(s) = SHA-256("fedra-psi-rsa-h2-v1" || s)` with `s` the fixed-width signature.
//!
//! 1. `hello` both ways: version, output mode, batch size, set size; the key holder
//!    adds its public key `(n, e)`.
//! 2. The key holder sends `H'(FDH(x)^d)` for its ids, **sorted** (`own-<i>`).
//! 3. For each batch, the client draws fresh `r` (from the caller's RNG) and sends
//!    `FDH(y)·r^e mod n` (`blinded-<i>`); the key holder returns `(FDH(y)·r^e)^d`
//!    (`signed-<i>`); the client divides by `r`, **verifies** the signature
//!    (`s^e = FDH(y)`, cheap with `e = 65537`) and computes `H'(s)`.
//! 4. The client intersects its digests with the key holder's. In
//!    [`RsaOutput::Both`] it sends the matched digests sorted (`result-*`), and the
//!    key holder maps them to its ids; in [`RsaOutput::ClientOnly`] it sends only the
//!    count. Canonical order of [`Intersection::ids`](crate::Intersection::ids): by
//!    digest `H'(s)`, the same on both sides.
//!
//! **Offline phase.** The key holder's part of step 2 depends only on its key and its
//! ids, not on the client or the job, so it is computed once and stored in a
//! [`SignCache`] file (`id → H'(FDH(x)^d)`). A later run signs only ids not in the
//! cache ([`PsiStats::own_ids_signed`](crate::PsiStats::own_ids_signed)); a cache
//! made with another key is refused ([`PsiError::CacheKeyMismatch`]).
//!
//! ## Threat model
//!
//! Semi-honest parties; security of the client's ids rests on the blinding (perfect:
//! `r^e` is uniform in `Z_n*`), security of the key holder's ids on the one-more-RSA
//! assumption with `FDH`, `H'` as random oracles.
//!
//! | | key holder learns | client learns |
//! |---|---|---|
//! | [`RsaOutput::Both`] | the intersection | the intersection |
//! | [`RsaOutput::ClientOnly`] | only the intersection **size** | the intersection |
//!
//! Both also learn the other's set size. The key holder sees only uniformly random
//! blinded values: nothing about the client's ids outside the output. The client
//! sees digests of signatures of the key holder's ids; without `d` it cannot compute
//! them for ids it did not get signed, so it learns nothing about the key holder's
//! other ids — **but** it can get up to its declared set size of arbitrary values
//! signed, so it can test any ids it likes for membership (inherent in every PSI:
//! a party may choose its input). [`RsaConfig::max_peer_ids`] bounds that number.
//! Because the key holder acts as a raw-RSA signing oracle, the key must be used for
//! PSI only, never for TLS, signatures or encryption elsewhere.
//!
//! Cached digests are as sensitive as the ids themselves (they allow membership
//! tests against future runs' traffic only together with the key, but they list
//! the ids in clear): keep the cache file with the same care as the dataset.
//!
//! ## Implementation choices
//!
//! The private-key operation uses OpenSSL (`RSA_private_decrypt` with no padding),
//! which uses CRT, constant-time modular exponentiation and RSA blinding. The
//! pure-Rust `rsa` crate is deliberately **not** used: advisory RUSTSEC-2023-0071
//! ("Marvin attack") reports that its private-key operations leak timing that can
//! recover the key, with no fixed release; a PSI key holder runs exactly this
//! operation millions of times on inputs chosen by the peer. OpenSSL is also ~2–6×
//! faster (see the workspace NOTES). Exception to "the caller supplies all
//! randomness": RSA key generation and the blinding inside the private-key
//! operation use OpenSSL's own CSPRNG (seeded from the OS).
//!
//! [`RsaPsiKey`] has no `Serialize` and a `Debug` that prints only the size and the
//! public fingerprint; the private key leaves only through the explicitly named
//! [`RsaPsiKey::export_private_pem`].

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fedra_federation::{Channel, PartyId, Tag};
use openssl::bn::{BigNum, BigNumContext};
use openssl::pkey::Private;
use openssl::rsa::{Padding, Rsa};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{PsiError, decode_err};
use crate::wire::{be_u32, be_u64, dedup, hex, offload, recv_exact, recv_items, send};
use crate::{Intersection, PsiStats};

const VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"FPSI";
const KIND_RSA_HOLDER: u8 = 2;
const KIND_RSA_CLIENT: u8 = 3;
const FDH_DOMAIN: &[u8] = b"fedra-psi-rsa-fdh-v1";
const H2_DOMAIN: &[u8] = b"fedra-psi-rsa-h2-v1";
const FP_DOMAIN: &[u8] = b"fedra-psi-rsa-key-v1";
const CACHE_MAGIC: &[u8; 8] = b"FPSIRSAC";
const CACHE_VERSION: u32 = 1;
/// Longest id accepted in a cache file (bounds memory per entry while reading).
const MAX_CACHE_ID_LEN: u32 = 1 << 16;
const E: u32 = 65_537;

/// A 32-byte digest `H'(signature)`.
pub type SigDigest = [u8; 32];

/// The key holder's RSA private key (e = 65537, 2048–4096 bits).
///
/// Cheap to clone (shared). Never printed by `Debug` and not serialisable; see
/// [`export_private_pem`](Self::export_private_pem).
#[derive(Clone)]
pub struct RsaPsiKey {
    rsa: Arc<Rsa<Private>>,
    fingerprint: [u8; 32],
}

impl fmt::Debug for RsaPsiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPsiKey")
            .field("bits", &self.bits())
            .field("fingerprint", &self.fingerprint_hex())
            .finish_non_exhaustive()
    }
}

fn fingerprint_of(n: &[u8], e: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(FP_DOMAIN);
    h.update((n.len() as u32).to_be_bytes());
    h.update(n);
    h.update((e.len() as u32).to_be_bytes());
    h.update(e);
    h.finalize().into()
}

impl RsaPsiKey {
    /// Generates a key of `bits` (2048, 3072 or 4096) with e = 65537, using
    /// OpenSSL's CSPRNG.
    pub fn generate(bits: u32) -> Result<Self, PsiError> {
        if ![2048, 3072, 4096].contains(&bits) {
            return Err(PsiError::Config {
                detail: format!("RSA key size must be 2048, 3072 or 4096 bits, not {bits}"),
            });
        }
        Self::from_rsa(Rsa::generate(bits)?)
    }

    /// Loads a PEM private key (PKCS#1 or PKCS#8); it must have e = 65537 and
    /// 2048–4096 bits.
    pub fn from_pem(pem: &[u8]) -> Result<Self, PsiError> {
        Self::from_rsa(Rsa::private_key_from_pem(pem)?)
    }

    fn from_rsa(rsa: Rsa<Private>) -> Result<Self, PsiError> {
        let bits = rsa.n().num_bits();
        if !(2048..=4096).contains(&bits) {
            return Err(PsiError::Config {
                detail: format!("RSA key has {bits} bits; 2048 to 4096 are accepted"),
            });
        }
        if rsa.e() != BigNum::from_u32(E)?.as_ref() {
            return Err(PsiError::Config {
                detail: "RSA key must have public exponent 65537".into(),
            });
        }
        rsa.check_key()?;
        let fingerprint = fingerprint_of(&rsa.n().to_vec(), &rsa.e().to_vec());
        Ok(Self {
            rsa: Arc::new(rsa),
            fingerprint,
        })
    }

    /// The private key as PKCS#1 PEM, for storing it. The only way the private key
    /// leaves this type.
    pub fn export_private_pem(&self) -> Result<Zeroizing<Vec<u8>>, PsiError> {
        Ok(Zeroizing::new(self.rsa.private_key_to_pem()?))
    }

    /// The public modulus `n`, big-endian.
    pub fn modulus(&self) -> Vec<u8> {
        self.rsa.n().to_vec()
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> u32 {
        self.rsa.n().num_bits() as u32
    }

    /// SHA-256 fingerprint of the public key `(n, e)` (domain-separated).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// [`fingerprint`](Self::fingerprint) in lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }

    fn nbytes(&self) -> usize {
        self.rsa.size() as usize
    }

    /// `m^d mod n` for a big-endian `m < n` of exactly `nbytes` bytes.
    fn sign_raw(&self, m: &[u8]) -> Result<Vec<u8>, PsiError> {
        let k = self.nbytes();
        let mut out = vec![0u8; k];
        let len = self.rsa.private_decrypt(m, &mut out, Padding::NONE)?;
        if len != k {
            // OpenSSL pads raw results to the modulus size; be defensive anyway.
            let mut padded = vec![0u8; k];
            padded[k - len..].copy_from_slice(&out[..len]);
            return Ok(padded);
        }
        Ok(out)
    }

    /// `H'(FDH(id)^d)`: the key holder's digest of one of its own ids.
    fn own_digest(&self, id: &str) -> Result<SigDigest, PsiError> {
        let m = fdh(id.as_bytes(), self.rsa.n(), self.nbytes())?;
        Ok(h2(&self.sign_raw(&m)?))
    }
}

/// Full-domain hash of `id` to `Z_n`, big-endian, `nbytes` wide.
fn fdh(id: &[u8], n: &openssl::bn::BigNumRef, nbytes: usize) -> Result<Vec<u8>, PsiError> {
    let want = nbytes + 16;
    let mut buf = Vec::with_capacity(want + 32);
    let mut ctr = 0u32;
    while buf.len() < want {
        let mut h = Sha256::new();
        h.update(FDH_DOMAIN);
        h.update(ctr.to_be_bytes());
        h.update((id.len() as u32).to_be_bytes());
        h.update(id);
        buf.extend_from_slice(&h.finalize());
        ctr += 1;
    }
    buf.truncate(want);
    let x = BigNum::from_slice(&buf)?;
    let mut r = BigNum::new()?;
    let mut ctx = BigNumContext::new()?;
    r.nnmod(&x, n, &mut ctx)?;
    Ok(r.to_vec_padded(nbytes as i32)?)
}

fn h2(sig: &[u8]) -> SigDigest {
    let mut h = Sha256::new();
    h.update(H2_DOMAIN);
    h.update(sig);
    h.finalize().into()
}

/// Who learns what in RSA-PSI (see the threat model in the [module docs](self)).
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

/// The key holder's persistent cache `id → H'(FDH(id)^d)` (the offline phase).
///
/// File format (version 1, all integers big-endian): `"FPSIRSAC"`, `u32` version,
/// 32-byte key fingerprint, `u64` entry count, then the entries sorted by digest,
/// each `digest[32] || u32 id length || id (UTF-8)`. Reading streams entry by entry
/// (ids are limited to 64 KiB); [`save`](Self::save) writes a temporary file and
/// renames it over the old one, so a crash never leaves a truncated cache.
pub struct SignCache {
    path: PathBuf,
    fingerprint: [u8; 32],
    entries: HashMap<String, SigDigest>,
}

impl fmt::Debug for SignCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignCache")
            .field("path", &self.path)
            .field("fingerprint", &hex(&self.fingerprint))
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl SignCache {
    /// Opens the cache at `path` for `key`, or starts an empty one if the file does
    /// not exist. A cache made with another key is refused.
    pub fn open(path: impl Into<PathBuf>, key: &RsaPsiKey) -> Result<Self, PsiError> {
        let path = path.into();
        let mut cache = SignCache {
            path,
            fingerprint: key.fingerprint,
            entries: HashMap::new(),
        };
        let file = match File::open(&cache.path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(cache),
            Err(source) => {
                return Err(PsiError::Io {
                    path: cache.path,
                    source,
                });
            }
        };
        cache.read(BufReader::new(file))?;
        Ok(cache)
    }

    fn read(&mut self, mut r: impl Read) -> Result<(), PsiError> {
        let path = self.path.clone();
        let bad = |detail: String| PsiError::CacheFormat {
            path: path.clone(),
            detail,
        };
        let io = |source: std::io::Error| {
            if source.kind() == ErrorKind::UnexpectedEof {
                PsiError::CacheFormat {
                    path: path.clone(),
                    detail: "file is truncated".into(),
                }
            } else {
                PsiError::Io {
                    path: path.clone(),
                    source,
                }
            }
        };
        let mut head = [0u8; 8 + 4 + 32 + 8];
        r.read_exact(&mut head).map_err(io)?;
        if &head[..8] != CACHE_MAGIC {
            return Err(bad("not a fedra-psi RSA signature cache".into()));
        }
        let version = be_u32(&head[8..12]);
        if version != CACHE_VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads version {CACHE_VERSION}"
            )));
        }
        if head[12..44] != self.fingerprint {
            return Err(PsiError::CacheKeyMismatch {
                path: self.path.clone(),
                expected: hex(&self.fingerprint),
                found: hex(&head[12..44]),
            });
        }
        let count = be_u64(&head[44..52]);
        let mut prev: Option<SigDigest> = None;
        let mut entry_head = [0u8; 36];
        for k in 0..count {
            r.read_exact(&mut entry_head).map_err(io)?;
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&entry_head[..32]);
            if prev.is_some_and(|p| p >= digest) {
                return Err(bad(format!("entry {k} is out of order")));
            }
            prev = Some(digest);
            let len = be_u32(&entry_head[32..36]);
            if len > MAX_CACHE_ID_LEN {
                return Err(bad(format!("entry {k} has an id of {len} bytes")));
            }
            let mut id = vec![0u8; len as usize];
            r.read_exact(&mut id).map_err(io)?;
            let id =
                String::from_utf8(id).map_err(|_| bad(format!("entry {k}: id is not UTF-8")))?;
            if self.entries.insert(id, digest).is_some() {
                return Err(bad(format!("entry {k}: repeated id")));
            }
        }
        let mut probe = [0u8; 1];
        if r.read(&mut probe).map_err(io)? != 0 {
            return Err(bad(format!("trailing data after {count} entries")));
        }
        Ok(())
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` is cached.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// The offline phase: signs every id of `ids` not yet cached (in parallel) and
    /// returns how many were signed. Call [`save`](Self::save) afterwards.
    ///
    /// Blocking and CPU-heavy (~1,200 signatures per second per core at 2048 bits):
    /// run it from a batch job or `spawn_blocking`, not on an async executor thread.
    pub fn sign_offline(&mut self, key: &RsaPsiKey, ids: &[String]) -> Result<u64, PsiError> {
        self.check_key(key)?;
        let missing: Vec<String> = dedup(ids)
            .into_iter()
            .filter(|id| !self.entries.contains_key(id))
            .collect();
        let digests = sign_all(key, &missing)?;
        let n = missing.len() as u64;
        self.entries.extend(missing.into_iter().zip(digests));
        Ok(n)
    }

    fn check_key(&self, key: &RsaPsiKey) -> Result<(), PsiError> {
        if key.fingerprint != self.fingerprint {
            return Err(PsiError::CacheKeyMismatch {
                path: self.path.clone(),
                expected: key.fingerprint_hex(),
                found: hex(&self.fingerprint),
            });
        }
        Ok(())
    }

    /// Writes the cache atomically (temporary file, then rename).
    pub fn save(&self) -> Result<(), PsiError> {
        let io = |source| PsiError::Io {
            path: self.path.clone(),
            source,
        };
        let mut sorted: Vec<(&SigDigest, &String)> =
            self.entries.iter().map(|(id, d)| (d, id)).collect();
        sorted.sort_unstable();
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
        w.write_all(CACHE_MAGIC).map_err(io)?;
        w.write_all(&CACHE_VERSION.to_be_bytes()).map_err(io)?;
        w.write_all(&self.fingerprint).map_err(io)?;
        w.write_all(&(sorted.len() as u64).to_be_bytes())
            .map_err(io)?;
        for (d, id) in sorted {
            w.write_all(d).map_err(io)?;
            w.write_all(&(id.len() as u32).to_be_bytes()).map_err(io)?;
            w.write_all(id.as_bytes()).map_err(io)?;
        }
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

/// Signs and digests `ids` on the current thread's rayon pool.
fn sign_all(key: &RsaPsiKey, ids: &[String]) -> Result<Vec<SigDigest>, PsiError> {
    ids.par_iter().map(|id| key.own_digest(id)).collect()
}

fn mismatch(peer: &PartyId, detail: String) -> PsiError {
    PsiError::ConfigMismatch {
        party: peer.to_string(),
        detail,
    }
}

/// The common prefix of both hellos: magic, version, kind, mode, batch, count.
fn hello_head(kind: u8, mode: RsaOutput, batch: u32, count: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(MAGIC);
    v.push(VERSION);
    v.push(kind);
    v.push(mode.code());
    v.extend_from_slice(&batch.to_be_bytes());
    v.extend_from_slice(&count.to_be_bytes());
    v
}
const HEAD_LEN: usize = 4 + 1 + 1 + 1 + 4 + 8;

/// Checks a hello prefix and returns `(batch, count)`.
fn check_head(
    b: &[u8],
    kind: u8,
    cfg: &RsaConfig,
    peer: &PartyId,
    tag: &Tag,
) -> Result<(u32, u64), PsiError> {
    if b.len() < HEAD_LEN || &b[..4] != MAGIC {
        return Err(decode_err(peer, tag, "not an RSA-PSI hello message"));
    }
    if b[4] != VERSION {
        return Err(mismatch(
            peer,
            format!("protocol version {VERSION} here, {} there", b[4]),
        ));
    }
    if b[5] != kind {
        return Err(mismatch(
            peer,
            "both parties play the same RSA-PSI role (or one runs another protocol)".into(),
        ));
    }
    if b[6] != cfg.mode.code() {
        return Err(mismatch(
            peer,
            format!("output mode {:?} here, code {} there", cfg.mode, b[6]),
        ));
    }
    let batch = be_u32(&b[7..11]);
    if batch == 0 || batch > 1 << 16 {
        return Err(decode_err(peer, tag, format!("batch size {batch} invalid")));
    }
    let count = be_u64(&b[11..19]);
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
/// added to `cache` (call [`SignCache::save`] to persist them). `ids` may contain
/// repeats (collapsed). Needs no RNG from the caller (see the [module docs](self)).
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
    let n = key.rsa.n().to_vec_padded(nbytes as i32)?;
    hello.extend_from_slice(&(nbytes as u32).to_be_bytes());
    hello.extend_from_slice(&n);
    send(ch, peer, &hello_tag, hello, &mut stats).await?;
    let raw = recv_exact(ch, peer, &hello_tag, HEAD_LEN).await?;
    let (client_batch, client_count) = check_head(&raw, KIND_RSA_CLIENT, cfg, peer, &hello_tag)?;

    // Own digests: from the cache, or signed now (the online part of the offline phase).
    let mut own: Vec<Option<SigDigest>> = match &cache {
        Some(c) => ids.iter().map(|id| c.entries.get(id).copied()).collect(),
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
        c.entries.extend(missing.into_iter().zip(signed));
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
            return Err(decode_err(
                peer,
                &tag,
                format!("value {k} is not smaller than the modulus"),
            ));
        }
        let key_c = key.clone();
        let signed = offload(move || -> Result<Vec<u8>, PsiError> {
            let sigs: Vec<Vec<u8>> = raw
                .par_chunks_exact(nbytes)
                .map(|c| key_c.sign_raw(c))
                .collect::<Result<_, _>>()?;
            Ok(sigs.concat())
        })
        .await??;
        stats.rsa_private_ops += items as u64;
        stats.points_sent += items as u64;
        let stag = Tag::new(&cfg.task, 0, format!("signed-{i}"));
        send(ch, peer, &stag, signed, &mut stats).await?;
    }

    // The result.
    let rtag = Tag::new(&cfg.task, 0, "result-count");
    let size = be_u64(&recv_exact(ch, peer, &rtag, 8).await?);
    if size > client_count.min(ids.len() as u64) {
        return Err(decode_err(
            peer,
            &rtag,
            format!("intersection size {size} exceeds a set size"),
        ));
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
                    return Err(decode_err(peer, &tag, "result digests are not sorted"));
                }
                prev = Some(d);
                let idx = by_digest.get(&d).ok_or_else(|| {
                    decode_err(peer, &tag, "result digest is not one of this party's ids")
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
        hello_head(KIND_RSA_CLIENT, cfg.mode, cfg.batch, ids.len() as u64),
        &mut stats,
    )
    .await?;
    let raw = ch.recv(peer, &hello_tag).await?;
    let (holder_batch, holder_count) = check_head(&raw, KIND_RSA_HOLDER, cfg, peer, &hello_tag)?;
    if raw.len() < HEAD_LEN + 4 {
        return Err(decode_err(peer, &hello_tag, "hello lacks the public key"));
    }
    let nbytes = be_u32(&raw[HEAD_LEN..HEAD_LEN + 4]) as usize;
    if !(256..=512).contains(&nbytes) || raw.len() != HEAD_LEN + 4 + nbytes {
        return Err(decode_err(
            peer,
            &hello_tag,
            format!("public key of {nbytes} bytes in a {}-byte hello", raw.len()),
        ));
    }
    let n_bytes = raw[HEAD_LEN + 4..].to_vec();
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
        (matched.len() as u64).to_be_bytes().to_vec(),
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

type Blinded = (Vec<u8>, Vec<Zeroizing<Vec<u8>>>);

/// `FDH(y)·r^e mod n` for each id, with `r` from `seeds` (reduced mod n); returns the
/// concatenated blinded values and the `r^{-1}` (big-endian) for unblinding.
fn blind_batch(
    ids: &[String],
    n: &BigNum,
    nbytes: usize,
    seeds: Vec<Zeroizing<Vec<u8>>>,
) -> Result<Blinded, PsiError> {
    let e = BigNum::from_u32(E)?;
    let out: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)> = ids
        .par_iter()
        .zip(seeds.into_par_iter())
        .map(|(id, seed)| -> Result<_, PsiError> {
            let mut ctx = BigNumContext::new()?;
            let mut r = BigNum::new()?;
            r.set_const_time();
            let seed = BigNum::from_slice(&seed)?;
            r.nnmod(&seed, n, &mut ctx)?;
            // r is 0 or shares a factor with n with negligible probability; mod_inverse
            // then fails and the run aborts with a crypto error.
            let mut rinv = BigNum::new()?;
            rinv.mod_inverse(&r, n, &mut ctx)?;
            let mut re = BigNum::new()?;
            re.mod_exp(&r, &e, n, &mut ctx)?;
            let m = BigNum::from_slice(&fdh(id.as_bytes(), n, nbytes)?)?;
            let mut b = BigNum::new()?;
            b.mod_mul(&m, &re, n, &mut ctx)?;
            Ok((
                b.to_vec_padded(nbytes as i32)?,
                Zeroizing::new(rinv.to_vec_padded(nbytes as i32)?),
            ))
        })
        .collect::<Result<_, _>>()?;
    let mut flat = Vec::with_capacity(ids.len() * nbytes);
    let mut rinvs = Vec::with_capacity(ids.len());
    for (b, ri) in out {
        flat.extend_from_slice(&b);
        rinvs.push(ri);
    }
    Ok((flat, rinvs))
}

/// Unblinds and verifies each signature and returns `H'(s)`; `Err(k)` (inner) names
/// the first signature that does not verify.
fn unblind_batch(
    ids: &[String],
    n: &BigNum,
    nbytes: usize,
    signed: &[u8],
    rinvs: Vec<Zeroizing<Vec<u8>>>,
) -> Result<Result<Vec<SigDigest>, usize>, PsiError> {
    let e = BigNum::from_u32(E)?;
    let res: Vec<Option<SigDigest>> = ids
        .par_iter()
        .zip(signed.par_chunks_exact(nbytes))
        .zip(rinvs.into_par_iter())
        .map(|((id, sig), rinv)| -> Result<_, PsiError> {
            let mut ctx = BigNumContext::new()?;
            let mut s = BigNum::new()?;
            let (sig, rinv) = (BigNum::from_slice(sig)?, BigNum::from_slice(&rinv)?);
            s.mod_mul(&sig, &rinv, n, &mut ctx)?;
            let mut check = BigNum::new()?;
            check.mod_exp(&s, &e, n, &mut ctx)?;
            let m = fdh(id.as_bytes(), n, nbytes)?;
            if check.to_vec_padded(nbytes as i32)? != m {
                return Ok(None);
            }
            Ok(Some(h2(&s.to_vec_padded(nbytes as i32)?)))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(res.len());
    for (k, d) in res.into_iter().enumerate() {
        match d {
            Some(d) => out.push(d),
            None => return Ok(Err(k)),
        }
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_private_key() {
        let key = RsaPsiKey::generate(2048).unwrap();
        let s = format!("{key:?}");
        assert!(s.contains(&key.fingerprint_hex()), "{s}");
        assert!(!s.contains("PRIVATE"), "{s}");
        assert!(s.len() < 200, "{s}");
        let pem = key.export_private_pem().unwrap();
        let again = RsaPsiKey::from_pem(&pem).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
    }

    #[test]
    fn rejects_small_keys_and_odd_sizes() {
        assert_eq!(RsaPsiKey::generate(1024).unwrap_err().code(), "psi.config");
        let small = Rsa::generate(1024).unwrap();
        let pem = small.private_key_to_pem().unwrap();
        assert_eq!(RsaPsiKey::from_pem(&pem).unwrap_err().code(), "psi.config");
    }

    #[test]
    fn cache_round_trip_and_corruption() {
        let key = RsaPsiKey::generate(2048).unwrap();
        let dir = std::env::temp_dir().join(format!("fedra-psi-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.bin");
        let _ = std::fs::remove_file(&path);
        let mut c = SignCache::open(&path, &key).unwrap();
        let ids: Vec<String> = (0..20).map(|i| format!("id{i}")).collect();
        assert_eq!(c.sign_offline(&key, &ids).unwrap(), 20);
        assert_eq!(c.sign_offline(&key, &ids).unwrap(), 0);
        c.save().unwrap();
        let c2 = SignCache::open(&path, &key).unwrap();
        assert_eq!(c2.len(), 20);
        assert_eq!(c2.entries, c.entries);
        assert_eq!(c2.entries["id3"], key.own_digest("id3").unwrap());
        // Truncated file.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = SignCache::open(&path, &key).unwrap_err();
        assert_eq!(e.code(), "psi.cache_format");
        assert!(e.to_string().contains("truncated"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
