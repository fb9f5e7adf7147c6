//! The blind-signature maths: the full-domain hash `FDH`, blinding with `r^e`, the
//! raw private-key operation, unblinding with verification, and the digest `H'`.
//!
//! Pure computation on byte strings and OpenSSL big numbers; the batch functions
//! use rayon and are meant to run off the async executor (`wire::offload`).

use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use openssl::rsa::Padding;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::key::RsaPsiKey;
use crate::error::PsiError;

const FDH_DOMAIN: &[u8] = b"fedra-psi-rsa-fdh-v1";
const H2_DOMAIN: &[u8] = b"fedra-psi-rsa-h2-v1";
/// The public exponent.
pub(super) const E: u32 = 65_537;

/// A 32-byte digest `H'(signature)`.
pub type SigDigest = [u8; 32];

/// Full-domain hash of `id` to `Z_n`, big-endian, `nbytes` wide. The counter and
/// length in the hash input are big-endian: part of the hash's definition (see the
/// module docs), not a wire format.
pub(super) fn fdh(id: &[u8], n: &BigNumRef, nbytes: usize) -> Result<Vec<u8>, PsiError> {
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

/// `H'(s)`: the digest of a fixed-width signature.
pub(super) fn h2(sig: &[u8]) -> SigDigest {
    let mut h = Sha256::new();
    h.update(H2_DOMAIN);
    h.update(sig);
    h.finalize().into()
}

/// `m^d mod n` for a big-endian `m < n` of exactly `nbytes` bytes.
pub(super) fn sign_raw(key: &RsaPsiKey, m: &[u8]) -> Result<Vec<u8>, PsiError> {
    let k = key.nbytes();
    let mut out = vec![0u8; k];
    let len = key.rsa().private_decrypt(m, &mut out, Padding::NONE)?;
    if len != k {
        // OpenSSL pads raw results to the modulus size; be defensive anyway.
        let mut padded = vec![0u8; k];
        padded[k - len..].copy_from_slice(&out[..len]);
        return Ok(padded);
    }
    Ok(out)
}

/// `H'(FDH(id)^d)`: the key holder's digest of one of its own ids.
pub(super) fn own_digest(key: &RsaPsiKey, id: &str) -> Result<SigDigest, PsiError> {
    let m = fdh(id.as_bytes(), key.n(), key.nbytes())?;
    Ok(h2(&sign_raw(key, &m)?))
}

/// Signs and digests `ids` on the current thread's rayon pool.
pub(super) fn sign_all(key: &RsaPsiKey, ids: &[String]) -> Result<Vec<SigDigest>, PsiError> {
    ids.par_iter().map(|id| own_digest(key, id)).collect()
}

/// Signs each `nbytes`-wide blinded value of `raw` (the caller checked that each is
/// below the modulus) and returns the signatures concatenated.
pub(super) fn sign_blinded(
    key: &RsaPsiKey,
    raw: &[u8],
    nbytes: usize,
) -> Result<Vec<u8>, PsiError> {
    let sigs: Vec<Vec<u8>> = raw
        .par_chunks_exact(nbytes)
        .map(|c| sign_raw(key, c))
        .collect::<Result<_, _>>()?;
    Ok(sigs.concat())
}

/// Blinded values (concatenated) and the `r^{-1}` to unblind them with.
pub(super) type Blinded = (Vec<u8>, Vec<Zeroizing<Vec<u8>>>);

/// `FDH(y)·r^e mod n` for each id, with `r` from `seeds` (reduced mod n); returns the
/// concatenated blinded values and the `r^{-1}` (big-endian) for unblinding.
pub(super) fn blind_batch(
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
pub(super) fn unblind_batch(
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
    fn blind_sign_unblind_gives_the_key_holders_digest() {
        let key = RsaPsiKey::generate(2048).unwrap();
        let (n, nbytes) = (key.n().to_owned().unwrap(), key.nbytes());
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let seeds = (0..3u8)
            .map(|i| Zeroizing::new(vec![i + 1; nbytes + 16]))
            .collect();
        let (blinded, rinvs) = blind_batch(&ids, &n, nbytes, seeds).unwrap();
        let signed = sign_blinded(&key, &blinded, nbytes).unwrap();
        let digests = unblind_batch(&ids, &n, nbytes, &signed, rinvs.clone())
            .unwrap()
            .unwrap();
        assert_eq!(digests, sign_all(&key, &ids).unwrap());
        // A signature of the wrong id does not verify.
        let mut swapped = signed[nbytes..2 * nbytes].to_vec();
        swapped.extend_from_slice(&signed[nbytes..]);
        assert_eq!(
            unblind_batch(&ids, &n, nbytes, &swapped, rinvs).unwrap(),
            Err(0)
        );
    }
}
