//! What travels as a "gradient ciphertext": an additively homomorphic ciphertext
//! of a packed plaintext ([`He`]), or — in the loudly named insecure debugging
//! mode — the packed plaintext itself ([`Clear`]). The protocol is generic over
//! this trait, so both modes run exactly the same code.

use fedra_federation::codec::Writer;
use fedra_he::{AdditiveScheme, HePublicKey, HeSecretKey, Plaintext};
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::error::{Result, TreeError, he};

pub(crate) trait Codec: Send + Sync {
    type Item: Clone + Send + Sync;
    /// Bytes per serialised item.
    fn width(&self) -> usize;
    /// Plaintext magnitudes must stay below `2^capacity_bits`.
    fn capacity_bits(&self) -> u32;
    /// Appends exactly [`Codec::width`] bytes (no length).
    fn write(&self, it: &Self::Item, w: &mut Writer);
    /// Parses and validates received items; on failure the index of the first bad one.
    fn parse(&self, items: &[&[u8]]) -> std::result::Result<Vec<Self::Item>, (usize, String)>;
    /// An item prepared for repeated additions (Montgomery form for HE).
    type Acc: Clone + Send + Sync;
    /// Converts received items once per tree.
    fn prepare(&self, items: &[Self::Item]) -> Vec<Self::Acc>;
    /// `acc += x` (homomorphically), in place.
    fn acc_add(&self, acc: &mut Self::Acc, x: &Self::Acc) -> Result<()>;
    /// Back to a sendable item (to be re-randomised).
    fn finish(&self, acc: &Self::Acc) -> Self::Item;
    /// `hi · 2^bits + lo` (packs two sums into one item).
    fn shift_add(&self, hi: &Self::Item, lo: &Self::Item, bits: u32) -> Result<Self::Item>;
    /// Fresh randomness for items about to leave this party.
    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        items: &[Self::Item],
        rng: &mut R,
    ) -> Result<Vec<Self::Item>>;
    /// Guest only: encrypt.
    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        rng: &mut R,
    ) -> Result<Vec<Self::Item>>;
    /// Guest only: decrypt.
    fn decrypt(&self, items: &[Self::Item]) -> Result<Vec<Plaintext>>;
}

/// Homomorphic encryption with scheme `S`; the secret key only on the guest.
pub(crate) struct He<S: AdditiveScheme> {
    pub(crate) pk: S::PublicKey,
    pub(crate) sk: Option<S::SecretKey>,
}

impl<S: AdditiveScheme> Codec for He<S> {
    type Item = S::Ciphertext;

    fn width(&self) -> usize {
        self.pk.ciphertext_len()
    }

    fn capacity_bits(&self) -> u32 {
        self.pk.plaintext_capacity_bits()
    }

    fn write(&self, it: &Self::Item, w: &mut Writer) {
        w.raw(&self.pk.ciphertext_to_bytes(it));
    }

    fn parse(&self, items: &[&[u8]]) -> std::result::Result<Vec<Self::Item>, (usize, String)> {
        self.pk
            .ciphertexts_from_bytes(items)
            .map_err(|(i, e)| (i, e.to_string()))
    }

    type Acc = <S::PublicKey as HePublicKey>::Acc;

    fn prepare(&self, items: &[Self::Item]) -> Vec<Self::Acc> {
        self.pk.acc_prepare_batch(items)
    }

    fn acc_add(&self, acc: &mut Self::Acc, x: &Self::Acc) -> Result<()> {
        self.pk.acc_add(acc, x);
        Ok(())
    }

    fn finish(&self, acc: &Self::Acc) -> Self::Item {
        self.pk.acc_finish(acc)
    }

    fn shift_add(&self, hi: &Self::Item, lo: &Self::Item, bits: u32) -> Result<Self::Item> {
        let shifted = self
            .pk
            .mul_plain(hi, &pow2(bits))
            .map_err(he("ciphertext shift"))?;
        self.pk.add(&shifted, lo).map_err(he("ciphertext addition"))
    }

    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        items: &[Self::Item],
        rng: &mut R,
    ) -> Result<Vec<Self::Item>> {
        self.pk
            .rerandomize_batch(items, rng)
            .map_err(he("re-randomisation"))
    }

    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        rng: &mut R,
    ) -> Result<Vec<Self::Item>> {
        match &self.sk {
            // The key holder encrypts with CRT: the same ciphertext distribution,
            // several times faster.
            Some(sk) => sk.encrypt_batch_crt(ms, rng).map_err(he("encryption")),
            None => self.pk.encrypt_batch(ms, rng).map_err(he("encryption")),
        }
    }

    fn decrypt(&self, items: &[Self::Item]) -> Result<Vec<Plaintext>> {
        let sk = self
            .sk
            .as_ref()
            .ok_or_else(|| TreeError::Model("decryption needs the secret key".into()))?;
        sk.decrypt_batch(items).map_err(he("decryption"))
    }
}

/// **Insecure**: packed plaintexts in the clear (`scheme = "insecure_plaintext"`).
pub(crate) struct Clear;

/// Plaintext capacity of the insecure mode (like 2048-bit Paillier).
const CLEAR_BITS: u32 = 2040;
const CLEAR_WIDTH: usize = 1 + (CLEAR_BITS as usize).div_ceil(8);

impl Codec for Clear {
    type Item = Plaintext;

    fn width(&self) -> usize {
        CLEAR_WIDTH
    }

    fn capacity_bits(&self) -> u32 {
        CLEAR_BITS
    }

    /// A sign byte, then the magnitude big-endian (like a ciphertext's residue).
    fn write(&self, it: &Plaintext, w: &mut Writer) {
        let mag = it.magnitude_be();
        let pad = CLEAR_WIDTH - 1 - mag.len().min(CLEAR_WIDTH - 1);
        w.bool(it.is_negative())
            .raw(&[0u8; CLEAR_WIDTH][..pad])
            .raw(&mag[mag.len().saturating_sub(CLEAR_WIDTH - 1)..]);
    }

    fn parse(&self, items: &[&[u8]]) -> std::result::Result<Vec<Plaintext>, (usize, String)> {
        items
            .par_iter()
            .enumerate()
            .map(|(i, b)| {
                if b.len() != CLEAR_WIDTH || b[0] > 1 {
                    return Err((i, format!("not a {CLEAR_WIDTH}-byte plaintext item")));
                }
                Ok(Plaintext::from_sign_magnitude_be(b[0] == 1, &b[1..]))
            })
            .collect()
    }

    type Acc = Plaintext;

    fn prepare(&self, items: &[Plaintext]) -> Vec<Plaintext> {
        items.to_vec()
    }

    fn finish(&self, acc: &Plaintext) -> Plaintext {
        acc.clone()
    }

    fn acc_add(&self, acc: &mut Plaintext, x: &Plaintext) -> Result<()> {
        *acc = acc.checked_add(x).map_err(he("plaintext addition"))?;
        if acc.bits() > CLEAR_BITS {
            return Err(TreeError::Model("plaintext sum overflow".into()));
        }
        Ok(())
    }

    fn shift_add(&self, hi: &Plaintext, lo: &Plaintext, bits: u32) -> Result<Plaintext> {
        let v = hi
            .checked_mul(&pow2(bits))
            .and_then(|x| x.checked_add(lo))
            .map_err(he("plaintext shift"))?;
        if v.bits() > CLEAR_BITS {
            return Err(TreeError::Model("plaintext packing overflow".into()));
        }
        Ok(v)
    }

    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        items: &[Plaintext],
        _: &mut R,
    ) -> Result<Vec<Plaintext>> {
        Ok(items.to_vec())
    }

    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        _: &mut R,
    ) -> Result<Vec<Plaintext>> {
        Ok(ms.to_vec())
    }

    fn decrypt(&self, items: &[Plaintext]) -> Result<Vec<Plaintext>> {
        Ok(items.to_vec())
    }
}

/// `2^bits` as a plaintext.
fn pow2(bits: u32) -> Plaintext {
    let mut be = vec![0u8; bits as usize / 8 + 1];
    be[0] = 1 << (bits % 8);
    Plaintext::from_sign_magnitude_be(false, &be)
}
