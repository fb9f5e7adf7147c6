//! The protocol messages and their byte encoding.
//!
//! Format (written and read with `fedra_federation::codec`): `"SA"`, version
//! byte `1`, a type byte, then the fields in order, integers little-endian, lists
//! as a `u32` count followed by fixed-size elements. No field has a variable-size element, so every size is a simple
//! formula (see the crate docs). [`WireMessage::decode`] takes the largest
//! accepted encoding; it checks every count against the bytes present before
//! allocating, rejects trailing bytes, and never panics.
//!
//! Decoding checks form only; whether ids, dimensions and sets make sense is
//! checked by [`crate::Client`] and [`crate::Server`] when the message is
//! consumed.

use std::fmt;

use crate::error::{Error, Result};
use crate::ids::{ClientId, RoundId};
use crate::ring::{Ring, RingVec};
use crate::shamir::Share;
use crate::wire::{decode_message, invalid, writer};
use fedra_federation::codec::{CodecError, MAX_COUNT, Reader, Writer};

/// Field elements in one share of a 32-byte secret.
pub const SHARE_ELEMS: usize = 5;
/// Plaintext of one encrypted share pair: key share and self-mask share.
pub(crate) const SHARE_PAIR_LEN: usize = 2 * SHARE_ELEMS * 8;
/// Length of one encrypted share pair (plaintext + Poly1305 tag).
pub const CIPHERTEXT_LEN: usize = SHARE_PAIR_LEN + crate::crypto::TAG_LEN;

const TAG_ADVERTISE: u8 = 1;
const TAG_KEY_LIST: u8 = 2;
const TAG_SHARE_KEYS: u8 = 3;
const TAG_FORWARDED: u8 = 4;
const TAG_MASKED: u8 = 5;
const TAG_UNMASK_REQ: u8 = 6;
const TAG_UNMASK_RESP: u8 = 7;
const HEADER: usize = 4;

/// Byte encoding shared by all messages.
pub trait WireMessage: Sized {
    /// Name used in errors.
    const NAME: &'static str;

    /// Encodes to bytes.
    fn encode(&self) -> Vec<u8>;

    /// Decodes bytes, refusing inputs longer than `max_len` bytes. Never
    /// allocates more than the input's length and never panics.
    ///
    /// # Errors
    /// [`Error::TooLarge`] or [`Error::Decode`].
    fn decode(bytes: &[u8], max_len: usize) -> Result<Self>;
}

/// Round 0, client → server: the client's two X25519 public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertiseKeys {
    /// Round.
    pub round: RoundId,
    /// Sender.
    pub sender: ClientId,
    /// Public key for encrypting shares (`c_u^PK`).
    pub enc_pk: [u8; 32],
    /// Public key for pairwise mask agreement (`s_u^PK`).
    pub mask_pk: [u8; 32],
}

/// One client's entry in [`KeyList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    /// Client.
    pub client: ClientId,
    /// Its share-encryption public key.
    pub enc_pk: [u8; 32],
    /// Its mask-agreement public key.
    pub mask_pk: [u8; 32],
}

/// Round 0, server → every client in `U1`: all advertised keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList {
    /// Round.
    pub round: RoundId,
    /// One entry per client in `U1`, sorted by id.
    pub entries: Vec<KeyEntry>,
}

/// One AEAD ciphertext holding a pair of Shamir shares (of `s_u^SK` and of
/// `b_u`) from one client to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedShares {
    /// The other end: the recipient in [`ShareKeys`], the sender in
    /// [`ForwardedShares`].
    pub peer: ClientId,
    /// [`CIPHERTEXT_LEN`] bytes.
    pub ciphertext: Vec<u8>,
}

/// Round 1, client → server: encrypted shares for every other client in `U1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareKeys {
    /// Round.
    pub round: RoundId,
    /// Sender.
    pub sender: ClientId,
    /// SHA-256 commitment to the sender's self-mask seed `b_u`, kept by the
    /// server to check the reconstructed seed.
    pub self_mask_commitment: [u8; 32],
    /// One ciphertext per other client in `U1`.
    pub shares: Vec<EncryptedShares>,
}

/// Round 1, server → each client in `U2`: the ciphertexts addressed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedShares {
    /// Round.
    pub round: RoundId,
    /// Recipient.
    pub recipient: ClientId,
    /// One ciphertext from every other client in `U2` (`peer` = sender).
    pub shares: Vec<EncryptedShares>,
}

/// Round 2, client → server: the masked input `y_u`.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskedInput {
    /// Round.
    pub round: RoundId,
    /// Sender.
    pub sender: ClientId,
    /// `y_u`.
    pub masked: RingVec,
}

impl fmt::Debug for MaskedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskedInput")
            .field("round", &self.round)
            .field("sender", &self.sender)
            .field("ring", &self.masked.ring())
            .field("dim", &self.masked.len())
            .finish_non_exhaustive()
    }
}

/// Round 4, server → each client in `U3`: who survived and who dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmaskRequest {
    /// Round.
    pub round: RoundId,
    /// `U3`: clients whose masked input was accepted; their self-mask seeds
    /// are to be reconstructed.
    pub survivors: Vec<ClientId>,
    /// `U2 \ U3`: clients that shared keys but sent no masked input; their
    /// mask keys are to be reconstructed.
    pub dropped: Vec<ClientId>,
}

/// A Shamir share of `owner`'s secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedShare {
    /// Whose secret.
    pub owner: ClientId,
    /// The responder's share of it (`x` = the responder's id).
    pub share: Share,
}

/// Round 4, client → server: the requested shares. Contains secrets; its
/// shares are zeroized on drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmaskResponse {
    /// Round.
    pub round: RoundId,
    /// Sender.
    pub sender: ClientId,
    /// Shares of `b_v` for every survivor `v` (including the sender).
    pub self_mask_shares: Vec<OwnedShare>,
    /// Shares of `s_v^SK` for every dropped `v`.
    pub key_shares: Vec<OwnedShare>,
}

fn put_ids(w: &mut Writer, ids: &[ClientId]) {
    w.count(ids.len());
    for c in ids {
        w.u32(c.0);
    }
}

fn get_ids(r: &mut Reader<'_>) -> Result<Vec<ClientId>, CodecError> {
    let n = r.count("client id", MAX_COUNT, 4)?;
    (0..n).map(|_| r.u32().map(ClientId)).collect()
}

fn put_cts(w: &mut Writer, cts: &[EncryptedShares]) {
    w.count(cts.len());
    for c in cts {
        w.u32(c.peer.0);
        // Fixed width on the wire; a wrong-length ciphertext (only possible
        // if built by hand) is padded or cut and then fails authentication.
        let mut fixed = [0u8; CIPHERTEXT_LEN];
        let k = c.ciphertext.len().min(CIPHERTEXT_LEN);
        fixed[..k].copy_from_slice(&c.ciphertext[..k]);
        w.raw(&fixed);
    }
}

fn get_cts(r: &mut Reader<'_>) -> Result<Vec<EncryptedShares>, CodecError> {
    let n = r.count("ciphertext", MAX_COUNT, 4 + CIPHERTEXT_LEN)?;
    (0..n)
        .map(|_| {
            Ok(EncryptedShares {
                peer: ClientId(r.u32()?),
                ciphertext: r.take(CIPHERTEXT_LEN)?.to_vec(),
            })
        })
        .collect()
}

fn put_owned(w: &mut Writer, shares: &[OwnedShare]) {
    w.count(shares.len());
    for s in shares {
        w.u32(s.owner.0);
        for k in 0..SHARE_ELEMS {
            w.u64(s.share.y().get(k).copied().unwrap_or(u64::MAX));
        }
    }
}

fn get_owned(r: &mut Reader<'_>, x: u32) -> Result<Vec<OwnedShare>, CodecError> {
    let n = r.count("share", MAX_COUNT, 4 + 8 * SHARE_ELEMS)?;
    (0..n)
        .map(|_| {
            let owner = ClientId(r.u32()?);
            let y = r.u64s(SHARE_ELEMS)?;
            Ok(OwnedShare {
                owner,
                share: Share::new(x, y),
            })
        })
        .collect()
}

impl WireMessage for AdvertiseKeys {
    const NAME: &'static str = "AdvertiseKeys";

    fn encode(&self) -> Vec<u8> {
        let mut w = writer(TAG_ADVERTISE, HEADER + 76);
        w.u64(self.round.0)
            .u32(self.sender.0)
            .raw(&self.enc_pk)
            .raw(&self.mask_pk);
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_ADVERTISE, Self::NAME, |r| {
            Ok(Self {
                round: RoundId(r.u64()?),
                sender: ClientId(r.u32()?),
                enc_pk: r.array()?,
                mask_pk: r.array()?,
            })
        })
    }
}

impl WireMessage for KeyList {
    const NAME: &'static str = "KeyList";

    fn encode(&self) -> Vec<u8> {
        let mut w = writer(TAG_KEY_LIST, HEADER + 12 + 68 * self.entries.len());
        w.u64(self.round.0).count(self.entries.len());
        for e in &self.entries {
            w.u32(e.client.0).raw(&e.enc_pk).raw(&e.mask_pk);
        }
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_KEY_LIST, Self::NAME, |r| {
            let round = RoundId(r.u64()?);
            let n = r.count("key entry", MAX_COUNT, 68)?;
            let entries = (0..n)
                .map(|_| {
                    Ok(KeyEntry {
                        client: ClientId(r.u32()?),
                        enc_pk: r.array()?,
                        mask_pk: r.array()?,
                    })
                })
                .collect::<Result<Vec<_>, CodecError>>()?;
            Ok(Self { round, entries })
        })
    }
}

impl WireMessage for ShareKeys {
    const NAME: &'static str = "ShareKeys";

    fn encode(&self) -> Vec<u8> {
        let mut w = writer(
            TAG_SHARE_KEYS,
            HEADER + 48 + (4 + CIPHERTEXT_LEN) * self.shares.len(),
        );
        w.u64(self.round.0)
            .u32(self.sender.0)
            .raw(&self.self_mask_commitment);
        put_cts(&mut w, &self.shares);
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_SHARE_KEYS, Self::NAME, |r| {
            Ok(Self {
                round: RoundId(r.u64()?),
                sender: ClientId(r.u32()?),
                self_mask_commitment: r.array()?,
                shares: get_cts(r)?,
            })
        })
    }
}

impl WireMessage for ForwardedShares {
    const NAME: &'static str = "ForwardedShares";

    fn encode(&self) -> Vec<u8> {
        let mut w = writer(
            TAG_FORWARDED,
            HEADER + 16 + (4 + CIPHERTEXT_LEN) * self.shares.len(),
        );
        w.u64(self.round.0).u32(self.recipient.0);
        put_cts(&mut w, &self.shares);
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_FORWARDED, Self::NAME, |r| {
            Ok(Self {
                round: RoundId(r.u64()?),
                recipient: ClientId(r.u32()?),
                shares: get_cts(r)?,
            })
        })
    }
}

/// Bytes before the words of an encoded [`MaskedInput`].
pub(crate) const MASKED_HEADER: usize = HEADER + 17;

/// Reads the ring tag of a [`MaskedInput`].
fn get_ring(r: &mut Reader<'_>) -> Result<Ring, CodecError> {
    let at = r.position();
    Ring::from_tag(r.u8()?).ok_or_else(|| invalid(at, "unknown ring"))
}

/// The header of an encoded [`MaskedInput`]: round, sender, ring and word
/// count (checked by the caller against the bytes that follow).
pub(crate) fn decode_masked_header(b: &[u8]) -> Result<(RoundId, ClientId, Ring, usize)> {
    decode_message(b, MASKED_HEADER, TAG_MASKED, MaskedInput::NAME, |r| {
        let round = RoundId(r.u64()?);
        let sender = ClientId(r.u32()?);
        let ring = get_ring(r)?;
        let n = r.u32()? as usize;
        Ok((round, sender, ring, n))
    })
}

impl WireMessage for MaskedInput {
    const NAME: &'static str = "MaskedInput";

    fn encode(&self) -> Vec<u8> {
        let ring = self.masked.ring();
        let mut w = writer(
            TAG_MASKED,
            HEADER + 17 + ring.word_bytes() * self.masked.len(),
        );
        w.u64(self.round.0)
            .u32(self.sender.0)
            .u8(ring.tag())
            .count(self.masked.len());
        match &self.masked {
            RingVec::U32(v) => {
                for x in v {
                    w.u32(*x);
                }
            }
            RingVec::U64(v) => {
                w.u64s(v);
            }
        }
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_MASKED, Self::NAME, |r| {
            let round = RoundId(r.u64()?);
            let sender = ClientId(r.u32()?);
            let ring = get_ring(r)?;
            let n = r.count("word", MAX_COUNT, ring.word_bytes())?;
            let masked = match ring {
                Ring::U32 => RingVec::U32(
                    r.take(n * 4)?
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Ring::U64 => RingVec::U64(r.u64s(n)?),
            };
            Ok(Self {
                round,
                sender,
                masked,
            })
        })
    }
}

impl WireMessage for UnmaskRequest {
    const NAME: &'static str = "UnmaskRequest";

    fn encode(&self) -> Vec<u8> {
        let mut w = writer(
            TAG_UNMASK_REQ,
            HEADER + 16 + 4 * (self.survivors.len() + self.dropped.len()),
        );
        w.u64(self.round.0);
        put_ids(&mut w, &self.survivors);
        put_ids(&mut w, &self.dropped);
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_UNMASK_REQ, Self::NAME, |r| {
            Ok(Self {
                round: RoundId(r.u64()?),
                survivors: get_ids(r)?,
                dropped: get_ids(r)?,
            })
        })
    }
}

impl WireMessage for UnmaskResponse {
    const NAME: &'static str = "UnmaskResponse";

    fn encode(&self) -> Vec<u8> {
        let n = self.self_mask_shares.len() + self.key_shares.len();
        let mut w = writer(TAG_UNMASK_RESP, HEADER + 20 + (4 + 8 * SHARE_ELEMS) * n);
        w.u64(self.round.0).u32(self.sender.0);
        put_owned(&mut w, &self.self_mask_shares);
        put_owned(&mut w, &self.key_shares);
        w.into_vec()
    }

    fn decode(bytes: &[u8], max_len: usize) -> Result<Self> {
        decode_message(bytes, max_len, TAG_UNMASK_RESP, Self::NAME, |r| {
            let round = RoundId(r.u64()?);
            let sender = ClientId(r.u32()?);
            let self_mask_shares = get_owned(r, sender.0)?;
            let key_shares = get_owned(r, sender.0)?;
            Ok(Self {
                round,
                sender,
                self_mask_shares,
                key_shares,
            })
        })
    }
}

/// Checks a list of ids for range (`1..=n`) and duplicates; returns them as a set.
pub(crate) fn id_set(
    ids: impl IntoIterator<Item = ClientId>,
    n: u32,
    context: &'static str,
) -> Result<std::collections::BTreeSet<ClientId>> {
    let mut set = std::collections::BTreeSet::new();
    for id in ids {
        if id.0 == 0 || id.0 > n {
            return Err(Error::UnknownClient {
                client: id,
                context,
            });
        }
        if !set.insert(id) {
            return Err(Error::DuplicateClient {
                client: id,
                context,
            });
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Vec<u8>> {
        let ct = EncryptedShares {
            peer: ClientId(2),
            ciphertext: vec![9; CIPHERTEXT_LEN],
        };
        vec![
            AdvertiseKeys {
                round: RoundId(7),
                sender: ClientId(1),
                enc_pk: [1; 32],
                mask_pk: [2; 32],
            }
            .encode(),
            KeyList {
                round: RoundId(7),
                entries: vec![KeyEntry {
                    client: ClientId(1),
                    enc_pk: [1; 32],
                    mask_pk: [2; 32],
                }],
            }
            .encode(),
            ShareKeys {
                round: RoundId(7),
                sender: ClientId(1),
                self_mask_commitment: [3; 32],
                shares: vec![ct.clone()],
            }
            .encode(),
            ForwardedShares {
                round: RoundId(7),
                recipient: ClientId(1),
                shares: vec![ct],
            }
            .encode(),
            MaskedInput {
                round: RoundId(7),
                sender: ClientId(1),
                masked: RingVec::U32(vec![1, 2, 3]),
            }
            .encode(),
            MaskedInput {
                round: RoundId(7),
                sender: ClientId(1),
                masked: RingVec::U64(vec![u64::MAX]),
            }
            .encode(),
            UnmaskRequest {
                round: RoundId(7),
                survivors: vec![ClientId(1), ClientId(2)],
                dropped: vec![ClientId(3)],
            }
            .encode(),
            UnmaskResponse {
                round: RoundId(7),
                sender: ClientId(1),
                self_mask_shares: vec![OwnedShare {
                    owner: ClientId(2),
                    share: Share::new(1, vec![1, 2, 3, 4, 5]),
                }],
                key_shares: vec![],
            }
            .encode(),
        ]
    }

    fn decode_all(bytes: &[u8], max: usize) -> usize {
        [
            AdvertiseKeys::decode(bytes, max).is_ok(),
            KeyList::decode(bytes, max).is_ok(),
            ShareKeys::decode(bytes, max).is_ok(),
            ForwardedShares::decode(bytes, max).is_ok(),
            MaskedInput::decode(bytes, max).is_ok(),
            UnmaskRequest::decode(bytes, max).is_ok(),
            UnmaskResponse::decode(bytes, max).is_ok(),
        ]
        .iter()
        .filter(|&&ok| ok)
        .count()
    }

    #[test]
    fn round_trips_and_sizes() {
        let a = AdvertiseKeys {
            round: RoundId(7),
            sender: ClientId(1),
            enc_pk: [1; 32],
            mask_pk: [2; 32],
        };
        assert_eq!(a.encode().len(), 80);
        assert_eq!(AdvertiseKeys::decode(&a.encode(), 80).unwrap(), a);
        let m = MaskedInput {
            round: RoundId(7),
            sender: ClientId(1),
            masked: RingVec::U32(vec![1, 2, 3]),
        };
        assert_eq!(m.encode().len(), 21 + 12);
        assert_eq!(MaskedInput::decode(&m.encode(), 1000).unwrap(), m);
        let u = UnmaskResponse {
            round: RoundId(7),
            sender: ClientId(4),
            self_mask_shares: vec![OwnedShare {
                owner: ClientId(2),
                share: Share::new(4, vec![1, 2, 3, 4, 5]),
            }],
            key_shares: vec![OwnedShare {
                owner: ClientId(3),
                share: Share::new(4, vec![5, 4, 3, 2, 1]),
            }],
        };
        assert_eq!(u.encode().len(), 24 + 44 * 2);
        assert_eq!(UnmaskResponse::decode(&u.encode(), 1000).unwrap(), u);
        // the size formulas of the crate docs, for one list entry each
        let s = samples();
        assert_eq!(s[1].len(), 16 + 68); // KeyList
        assert_eq!(s[2].len(), 52 + 100); // ShareKeys
        assert_eq!(s[3].len(), 20 + 100); // ForwardedShares
        assert_eq!(s[6].len(), 20 + 4 * 3); // UnmaskRequest
        assert_eq!(s[7].len(), 24 + 44); // UnmaskResponse
        // every sample decodes as exactly its own type
        for s in samples() {
            assert_eq!(decode_all(&s, 1 << 20), 1);
        }
    }

    #[test]
    fn limits_and_truncation() {
        for s in samples() {
            assert_eq!(decode_all(&s, s.len() - 1), 0, "max_len must be enforced");
            for cut in 0..s.len() {
                assert_eq!(decode_all(&s[..cut], 1 << 20), 0, "truncated at {cut}");
            }
            let mut long = s.clone();
            long.push(0);
            assert_eq!(decode_all(&long, 1 << 20), 0, "trailing byte");
        }
        // a huge count in a tiny message is refused before allocating
        let mut evil = KeyList {
            round: RoundId(1),
            entries: vec![],
        }
        .encode();
        evil[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = KeyList::decode(&evil, 1 << 20).unwrap_err();
        assert_eq!(e.code(), "secagg.decode");
        assert!(
            matches!(&e, Error::Decode { message: "KeyList", source } if source.offset == 12),
            "{e}"
        );
        // the wrong message type, and an unknown ring, name the message
        let e = AdvertiseKeys::decode(&samples()[1], 1 << 20).unwrap_err();
        assert!(e.to_string().contains("AdvertiseKeys"), "{e}");
        let mut ring = samples()[4].clone();
        ring[16] = 9;
        let e = MaskedInput::decode(&ring, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("unknown ring"), "{e}");
        assert!(
            matches!(&e, Error::Decode { source, .. } if source.offset == 16),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            decode_all(&bytes, 1 << 16);
        }

        #[test]
        fn decoders_never_panic_on_mutated_messages(
            which in 0usize..8,
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
            cut in any::<u16>(),
        ) {
            let mut s = samples()[which].clone();
            for (pos, val) in flips {
                let i = pos as usize % s.len();
                s[i] = val;
            }
            let keep = (cut as usize) % (s.len() + 1);
            decode_all(&s[..keep], 1 << 16);
            decode_all(&s, 1 << 16);
        }
    }
}
