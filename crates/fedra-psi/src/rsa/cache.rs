//! The key holder's offline signature cache `id → H'(FDH(id)^d)`, and its encoding
//! to and from bytes.
//!
//! The cache lives in memory; storing it is the caller's job (the runtime's PSI
//! task reads the file and writes it back with `fedra_fs::write_atomic`), so that
//! this crate does no file I/O. [`SignCache::from_bytes`] treats its input as
//! untrusted: every length and count is checked before it is used, and a truncated
//! or corrupt cache is a [`PsiError::CacheFormat`], never a panic.
//!
//! Format (version 1, unchanged from the builds that read and wrote the file here,
//! so existing caches stay valid; its integers are **big-endian**, unlike the
//! little-endian wire): `"FPSIRSAC"`, `u32` version, 32-byte key fingerprint, `u64`
//! entry count, then the entries sorted by digest, each
//! `digest[32] || u32 id length || id (UTF-8)`; ids are at most 64 KiB.

use std::collections::HashMap;
use std::fmt;

use fedra_federation::codec::{CodecError, CodecErrorKind, Reader, Writer};

use super::blind::{SigDigest, sign_all};
use super::key::RsaPsiKey;
use crate::error::PsiError;
use crate::wire::{dedup, hex};

const CACHE_MAGIC: &[u8; 8] = b"FPSIRSAC";
const CACHE_VERSION: u32 = 1;
/// Longest id accepted in a cache (bounds memory per entry while reading).
const MAX_CACHE_ID_LEN: u32 = 1 << 16;
/// Bytes of an entry before its id.
const ENTRY_HEAD: usize = 32 + 4;

/// The key holder's cache `id → H'(FDH(id)^d)` (the offline phase).
///
/// Stored by the caller as [`to_bytes`](Self::to_bytes) (format version 1, integers
/// big-endian as in earlier builds: `"FPSIRSAC"`, `u32` version, key fingerprint,
/// `u64` count, entries sorted by digest as `digest[32] || u32 len || id`), read
/// back with [`from_bytes`](Self::from_bytes).
pub struct SignCache {
    fingerprint: [u8; 32],
    entries: HashMap<String, SigDigest>,
}

impl fmt::Debug for SignCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignCache")
            .field("fingerprint", &hex(&self.fingerprint))
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// A [`PsiError::CacheFormat`] for what the reader found wrong.
fn format_err(e: CodecError) -> PsiError {
    let detail = match e.kind {
        CodecErrorKind::Short { .. } => format!("the cache is truncated ({e})"),
        _ => e.to_string(),
    };
    PsiError::CacheFormat { detail }
}

/// A big-endian `u32` (the cache's byte order, see the module docs).
fn u32_be(r: &mut Reader<'_>) -> Result<u32, CodecError> {
    Ok(u32::from_be_bytes(r.array()?))
}

impl SignCache {
    /// An empty cache for `key` (nothing signed yet).
    pub fn new(key: &RsaPsiKey) -> Self {
        SignCache {
            fingerprint: key.fingerprint(),
            entries: HashMap::new(),
        }
    }

    /// Reads a cache written by [`to_bytes`](Self::to_bytes) for `key`.
    ///
    /// A cache made with another key is a [`PsiError::CacheKeyMismatch`]; a
    /// truncated, corrupt or unknown-version one a [`PsiError::CacheFormat`].
    pub fn from_bytes(bytes: &[u8], key: &RsaPsiKey) -> Result<Self, PsiError> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 8] = r.array().map_err(|_| PsiError::CacheFormat {
            detail: "not a fedra-psi RSA signature cache".into(),
        })?;
        if &magic != CACHE_MAGIC {
            return Err(PsiError::CacheFormat {
                detail: "not a fedra-psi RSA signature cache".into(),
            });
        }
        let version = u32_be(&mut r).map_err(format_err)?;
        if version != CACHE_VERSION {
            return Err(PsiError::CacheFormat {
                detail: format!(
                    "format version {version}, this build reads version {CACHE_VERSION}"
                ),
            });
        }
        let fingerprint: [u8; 32] = r.array().map_err(format_err)?;
        if fingerprint != key.fingerprint() {
            return Err(PsiError::CacheKeyMismatch {
                expected: key.fingerprint_hex(),
                found: hex(&fingerprint),
            });
        }
        let mut cache = SignCache::new(key);
        cache.read_entries(&mut r).map_err(format_err)?;
        r.finish().map_err(format_err)?;
        Ok(cache)
    }

    /// The entry count and the entries; every count is checked against the bytes
    /// left before anything is allocated.
    fn read_entries(&mut self, r: &mut Reader<'_>) -> Result<(), CodecError> {
        let at = r.position();
        let count = u64::from_be_bytes(r.array()?);
        let fits = (r.remaining() / ENTRY_HEAD) as u64;
        if count > fits {
            return Err(CodecError {
                offset: at,
                kind: CodecErrorKind::Count {
                    what: "entry",
                    count,
                    max: fits,
                },
            });
        }
        self.entries.reserve(count as usize);
        let mut prev: Option<SigDigest> = None;
        for k in 0..count {
            let start = r.position();
            let digest: SigDigest = r.array()?;
            if prev.is_some_and(|p| p >= digest) {
                return Err(invalid_at(start, format!("entry {k} is out of order")));
            }
            prev = Some(digest);
            let len_at = r.position();
            let len = u32_be(r)?;
            if len > MAX_CACHE_ID_LEN {
                return Err(invalid_at(
                    len_at,
                    format!("entry {k} has an id of {len} bytes, more than {MAX_CACHE_ID_LEN}"),
                ));
            }
            let id_at = r.position();
            let id = std::str::from_utf8(r.take(len as usize)?)
                .map_err(|_| invalid_at(id_at, format!("entry {k}: id is not UTF-8")))?;
            if self.entries.insert(id.to_owned(), digest).is_some() {
                return Err(invalid_at(start, format!("entry {k}: repeated id")));
            }
        }
        Ok(())
    }

    /// The cache in its byte format (entries sorted by digest), for the caller to
    /// store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sorted: Vec<(&SigDigest, &String)> =
            self.entries.iter().map(|(id, d)| (d, id)).collect();
        sorted.sort_unstable();
        let size = sorted
            .iter()
            .map(|(_, id)| ENTRY_HEAD + id.len())
            .sum::<usize>();
        let mut w = Writer::with_capacity(8 + 4 + 32 + 8 + size);
        w.raw(CACHE_MAGIC)
            .raw(&CACHE_VERSION.to_be_bytes())
            .raw(&self.fingerprint)
            .raw(&(sorted.len() as u64).to_be_bytes());
        for (d, id) in sorted {
            w.raw(d)
                .raw(&(id.len() as u32).to_be_bytes())
                .raw(id.as_bytes());
        }
        w.into_vec()
    }

    /// Fingerprint of the key the cache was made with.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
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
    /// returns how many were signed. Store [`to_bytes`](Self::to_bytes) afterwards.
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

    /// The cached digest of `id`.
    pub(super) fn digest(&self, id: &str) -> Option<SigDigest> {
        self.entries.get(id).copied()
    }

    /// Adds freshly signed digests.
    pub(super) fn extend(&mut self, signed: impl IntoIterator<Item = (String, SigDigest)>) {
        self.entries.extend(signed);
    }

    /// Refuses a key other than the one the cache was made with.
    pub(super) fn check_key(&self, key: &RsaPsiKey) -> Result<(), PsiError> {
        if key.fingerprint() != self.fingerprint {
            return Err(PsiError::CacheKeyMismatch {
                expected: key.fingerprint_hex(),
                found: hex(&self.fingerprint),
            });
        }
        Ok(())
    }
}

fn invalid_at(offset: usize, detail: String) -> CodecError {
    CodecError {
        offset,
        kind: CodecErrorKind::Invalid { detail },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::rsa::blind::own_digest;

    fn key() -> &'static RsaPsiKey {
        static KEY: OnceLock<RsaPsiKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPsiKey::generate(2048).unwrap())
    }

    fn filled() -> SignCache {
        let mut c = SignCache::new(key());
        let ids: Vec<String> = (0..20).map(|i| format!("id{i}")).collect();
        assert_eq!(c.sign_offline(key(), &ids).unwrap(), 20);
        assert_eq!(c.sign_offline(key(), &ids).unwrap(), 0);
        c
    }

    #[test]
    fn round_trip() {
        let c = filled();
        let bytes = c.to_bytes();
        let c2 = SignCache::from_bytes(&bytes, key()).unwrap();
        assert_eq!(c2.len(), 20);
        assert_eq!(c2.entries, c.entries);
        assert_eq!(c2.entries["id3"], own_digest(key(), "id3").unwrap());
        assert_eq!(c2.to_bytes(), bytes, "the encoding is canonical");
        let empty = SignCache::new(key()).to_bytes();
        assert!(SignCache::from_bytes(&empty, key()).unwrap().is_empty());
    }

    #[test]
    fn the_format_is_version_1_big_endian() {
        let bytes = filled().to_bytes();
        assert_eq!(&bytes[..8], b"FPSIRSAC");
        assert_eq!(&bytes[8..12], &[0, 0, 0, 1]);
        assert_eq!(&bytes[12..44], &key().fingerprint());
        assert_eq!(&bytes[44..52], &20u64.to_be_bytes());
        let first_len = u32::from_be_bytes(bytes[84..88].try_into().unwrap());
        assert!(
            [3, 4].contains(&first_len),
            "length of the first id (id0..id19)"
        );
    }

    #[test]
    fn every_truncation_is_refused_cleanly() {
        let bytes = filled().to_bytes();
        for n in 0..bytes.len() {
            let e = SignCache::from_bytes(&bytes[..n], key()).unwrap_err();
            assert_eq!(e.code(), "psi.cache_format", "{n}: {e}");
        }
        let e = SignCache::from_bytes(&bytes[..bytes.len() - 3], key()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut long = bytes.clone();
        long.push(0);
        let e = SignCache::from_bytes(&long, key()).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn corrupt_caches_are_refused_cleanly() {
        let bytes = filled().to_bytes();
        let corrupt = |at: usize, with: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + with.len()].copy_from_slice(with);
            let e = SignCache::from_bytes(&b, key()).unwrap_err();
            (e.code(), e.to_string())
        };
        assert_eq!(corrupt(0, b"X").0, "psi.cache_format");
        let (code, msg) = corrupt(8, &[0, 0, 0, 2]);
        assert_eq!(code, "psi.cache_format");
        assert!(msg.contains("version 2"), "{msg}");
        // A count the file cannot hold: refused before allocating.
        let (code, msg) = corrupt(44, &u64::MAX.to_be_bytes());
        assert_eq!(code, "psi.cache_format");
        assert!(msg.contains("entry count"), "{msg}");
        // An id length beyond the limit, and one beyond the file.
        let (_, msg) = corrupt(84, &u32::MAX.to_be_bytes());
        assert!(msg.contains("more than 65536"), "{msg}");
        let (_, msg) = corrupt(84, &60_000u32.to_be_bytes());
        assert!(msg.contains("truncated"), "{msg}");
        // Ids that are not UTF-8.
        let (_, msg) = corrupt(88, &[0xff]);
        assert!(msg.contains("not UTF-8"), "{msg}");
        // Digests out of order (the first entry's digest raised above the second's).
        let (_, msg) = corrupt(52, &[0xff; 32]);
        assert!(msg.contains("out of order"), "{msg}");
        // Another key's fingerprint.
        let (code, msg) = corrupt(12, &[0u8; 32]);
        assert_eq!(code, "psi.cache_key_mismatch");
        assert!(msg.contains(&key().fingerprint_hex()), "{msg}");
    }
}
