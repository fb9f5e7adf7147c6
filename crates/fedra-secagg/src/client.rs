//! The client's state machine for one round.
//!
//! ```text
//! Client::new            -> AdvertiseKeys            (round 0)
//! share_keys(KeyList)    -> ShareKeys                (round 1)
//! mask_input(ForwardedShares, x_u) -> MaskedInput    (round 2)
//! unmask(UnmaskRequest)  -> UnmaskResponse           (round 4)
//! ```
//!
//! Any error caused by a received message (wrong round, bad key, failed
//! decryption, a suspicious unmasking request, ...) aborts the client for
//! good: an honest client does not give a server a second try. Errors about
//! the caller's own input (wrong vector shape) and calls in the wrong phase
//! leave the state unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{self, KeyPair};
use crate::error::{Error, Refusal, Result};
use crate::ids::Neighbours;
use crate::ids::{ClientId, Params};
use crate::messages::{
    AdvertiseKeys, CIPHERTEXT_LEN, EncryptedShares, ForwardedShares, KeyEntry, KeyList,
    MaskedInput, OwnedShare, SHARE_ELEMS, SHARE_PAIR_LEN, ShareKeys, UnmaskRequest, UnmaskResponse,
    id_set,
};
use crate::prg::{self, MaskSeed, Sign};
use crate::ring::RingVec;
use crate::shamir::{self, Share};

enum State {
    Advertised {
        enc: KeyPair,
        mask: KeyPair,
    },
    SharesSent {
        enc: KeyPair,
        mask: KeyPair,
        self_mask: MaskSeed,
        u1: BTreeMap<ClientId, KeyEntry>,
        own_key_share: Share,
        own_mask_share: Share,
    },
    Masked {
        u2: BTreeSet<ClientId>,
        /// Shares of `s_v^SK` held for each `v` in `U2` (own included).
        key_shares: BTreeMap<ClientId, Share>,
        /// Shares of `b_v` held for each `v` in `U2` (own included).
        mask_shares: BTreeMap<ClientId, Share>,
    },
    Done,
    Aborted,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Advertised { .. } => "KeysAdvertised",
            Self::SharesSent { .. } => "SharesSent",
            Self::Masked { .. } => "InputMasked",
            Self::Done => "Done",
            Self::Aborted => "Aborted",
        }
    }
}

/// One client's state for one round. Holds its private keys, its self-mask
/// seed and the shares it received; all are zeroized when dropped or no
/// longer needed, and `Debug` shows only the id and phase.
pub struct Client {
    params: Params,
    id: ClientId,
    state: State,
    /// The round's neighbour relation (complete unless SecAgg+).
    nb: Neighbours,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("round", &self.params.round)
            .field("phase", &self.state.name())
            .finish_non_exhaustive()
    }
}

fn share_pair_plaintext(key_share: &Share, mask_share: &Share) -> Zeroizing<Vec<u8>> {
    let mut pt = Zeroizing::new(Vec::with_capacity(SHARE_PAIR_LEN));
    for v in key_share.y().iter().chain(mask_share.y()) {
        pt.extend_from_slice(&v.to_le_bytes());
    }
    pt
}

fn parse_share_pair(pt: &[u8], x: u32, from: ClientId, n: u32) -> Result<(Share, Share)> {
    if pt.len() != SHARE_PAIR_LEN {
        return Err(Error::Decryption {
            from,
            reason: "plaintext has the wrong length",
        });
    }
    let mut words = pt.chunks_exact(8).map(|c| {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        u64::from_le_bytes(a)
    });
    let key = Share::new(x, words.by_ref().take(SHARE_ELEMS).collect());
    let mask = Share::new(x, words.collect());
    key.validate(n, SHARE_ELEMS)?;
    mask.validate(n, SHARE_ELEMS)?;
    Ok((key, mask))
}

impl Client {
    /// Starts a round: generates the two X25519 key pairs and returns the
    /// round-0 message.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] for bad parameters, [`Error::UnknownClient`]
    /// if `id` is not in `1..=n`.
    pub fn new(
        params: Params,
        id: ClientId,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, AdvertiseKeys)> {
        params.validate()?;
        if !params.contains(id) {
            return Err(Error::UnknownClient {
                client: id,
                context: "client id",
            });
        }
        let enc = KeyPair::generate(rng);
        let mask = KeyPair::generate(rng);
        let msg = AdvertiseKeys {
            round: params.round,
            sender: id,
            enc_pk: enc.public,
            mask_pk: mask.public,
        };
        Ok((
            Self {
                params,
                id,
                state: State::Advertised { enc, mask },
                nb: params.neighbours(),
            },
            msg,
        ))
    }

    /// This client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The round parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current phase, for logs.
    pub fn phase(&self) -> &'static str {
        self.state.name()
    }

    /// Whether the client aborted.
    pub fn is_aborted(&self) -> bool {
        matches!(self.state, State::Aborted)
    }

    fn wrong_phase(&self, operation: &'static str, expected: &'static str) -> Error {
        match self.state {
            State::Aborted => Error::Aborted { operation },
            _ => Error::WrongPhase {
                operation,
                expected,
                actual: self.state.name(),
            },
        }
    }

    fn check_round(&self, round: crate::RoundId) -> Result<()> {
        if round != self.params.round {
            return Err(Error::WrongRound {
                expected: self.params.round,
                got: round,
            });
        }
        Ok(())
    }

    /// Round 1: given the server's list of advertised keys (`U1`), draws the
    /// self-mask seed `b_u`, Shamir-shares `s_u^SK` and `b_u` with threshold
    /// `t` among `U1`, and encrypts each peer's pair of shares to it.
    ///
    /// # Errors
    /// Aborts on a wrong round, an out-of-range or duplicate id, a list that
    /// lacks or misstates this client's keys, fewer than `t` entries, or a
    /// low-order peer key.
    pub fn share_keys(&mut self, keys: &KeyList, rng: &mut impl CryptoRng) -> Result<ShareKeys> {
        const OP: &str = "share_keys";
        if !matches!(self.state, State::Advertised { .. }) {
            return Err(self.wrong_phase(OP, "KeysAdvertised"));
        }
        let State::Advertised { enc, mask } = std::mem::replace(&mut self.state, State::Aborted)
        else {
            return Err(Error::Aborted { operation: OP });
        };
        let (msg, next) = self.share_keys_inner(keys, enc, mask, rng)?;
        self.state = next;
        Ok(msg)
    }

    fn share_keys_inner(
        &self,
        keys: &KeyList,
        enc: KeyPair,
        mask: KeyPair,
        rng: &mut impl CryptoRng,
    ) -> Result<(ShareKeys, State)> {
        let p = &self.params;
        self.check_round(keys.round)?;
        id_set(keys.entries.iter().map(|e| e.client), p.n, "KeyList")?;
        let u1: BTreeMap<ClientId, KeyEntry> =
            keys.entries.iter().map(|e| (e.client, *e)).collect();
        match u1.get(&self.id) {
            Some(e) if e.enc_pk == enc.public && e.mask_pk == mask.public => {}
            _ => {
                return Err(Error::BadPublicKey {
                    client: self.id,
                    reason: "key list lacks or misstates this client's keys",
                });
            }
        }
        // SecAgg+: only the neighbourhood (all of U1 without a graph).
        let u1: BTreeMap<ClientId, KeyEntry> = u1
            .into_iter()
            .filter(|(v, _)| self.nb.near(self.id, *v))
            .collect();
        if u1.len() < p.t() {
            return Err(Error::TooFewClients {
                phase: "AdvertiseKeys",
                got: u1.len(),
                needed: p.t(),
                present: u1.keys().copied().collect(),
            });
        }
        for e in u1.values() {
            if crypto::is_low_order(&e.enc_pk) || crypto::is_low_order(&e.mask_pk) {
                return Err(Error::BadPublicKey {
                    client: e.client,
                    reason: "low-order point",
                });
            }
        }

        let self_mask = MaskSeed::random(rng);
        let xs: Vec<u32> = u1.keys().map(|c| c.0).collect();
        let mask_sk = Zeroizing::new(mask.secret.to_bytes());
        let key_shares = shamir::split(&mask_sk[..], p.threshold, &xs, rng)?;
        let mask_shares = shamir::split(self_mask.as_bytes(), p.threshold, &xs, rng)?;

        let mut out = Vec::with_capacity(u1.len().saturating_sub(1));
        let mut own = None;
        for ((ks, ms), (&v, entry)) in key_shares.into_iter().zip(mask_shares).zip(&u1) {
            if v == self.id {
                own = Some((ks, ms));
                continue;
            }
            let shared = crypto::agree(&enc.secret, &entry.enc_pk, v)?;
            let key = crypto::share_key(&shared, p.round, self.id, v)?;
            let pt = share_pair_plaintext(&ks, &ms);
            out.push(EncryptedShares {
                peer: v,
                ciphertext: crypto::seal(&key, p.round, self.id, v, &pt)?,
            });
        }
        let Some((own_key_share, own_mask_share)) = own else {
            return Err(Error::UnknownClient {
                client: self.id,
                context: "KeyList",
            });
        };
        let msg = ShareKeys {
            round: p.round,
            sender: self.id,
            self_mask_commitment: crypto::commit_self_mask(p.round, self.id, self_mask.as_bytes()),
            shares: out,
        };
        Ok((
            msg,
            State::SharesSent {
                enc,
                mask,
                self_mask,
                u1,
                own_key_share,
                own_mask_share,
            },
        ))
    }

    /// Round 2: decrypts the shares forwarded to this client (their senders
    /// form `U2`), then masks `input`:
    /// `y_u = x_u + PRG(b_u) + Σ_{v∈U2, v<u} PRG(s_uv) − Σ_{v∈U2, v>u} PRG(s_uv)`.
    /// The private keys and `b_u` are erased afterwards.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] / [`Error::RingMismatch`] for a
    /// wrongly shaped input (state unchanged). Aborts on a wrong round or
    /// recipient, senders outside `U1` or repeated, fewer than `t` clients in
    /// `U2`, or a ciphertext that does not decrypt to well-formed shares.
    pub fn mask_input(
        &mut self,
        forwarded: &ForwardedShares,
        input: &RingVec,
    ) -> Result<MaskedInput> {
        const OP: &str = "mask_input";
        if !matches!(self.state, State::SharesSent { .. }) {
            return Err(self.wrong_phase(OP, "SharesSent"));
        }
        input.check_shape(self.params.ring, self.params.dim)?;
        let State::SharesSent {
            enc,
            mask,
            self_mask,
            u1,
            own_key_share,
            own_mask_share,
        } = std::mem::replace(&mut self.state, State::Aborted)
        else {
            return Err(Error::Aborted { operation: OP });
        };
        let p = self.params;
        self.check_round(forwarded.round)?;
        if forwarded.recipient != self.id {
            return Err(Error::UnknownClient {
                client: forwarded.recipient,
                context: "ForwardedShares recipient (not this client)",
            });
        }
        let senders = id_set(
            forwarded.shares.iter().map(|s| s.peer),
            p.n,
            "ForwardedShares",
        )?;
        if senders.len() + 1 < p.t() {
            return Err(Error::TooFewClients {
                phase: "ShareKeys",
                got: senders.len() + 1,
                needed: p.t(),
                present: senders.iter().copied().chain([self.id]).collect(),
            });
        }
        let mut key_shares = BTreeMap::from([(self.id, own_key_share)]);
        let mut mask_shares = BTreeMap::from([(self.id, own_mask_share)]);
        let mut seeds = Vec::with_capacity(senders.len());
        for es in &forwarded.shares {
            let v = es.peer;
            let Some(entry) = u1.get(&v).filter(|_| v != self.id) else {
                return Err(Error::UnknownClient {
                    client: v,
                    context: "ForwardedShares sender (not a peer in U1)",
                });
            };
            if es.ciphertext.len() != CIPHERTEXT_LEN {
                return Err(Error::Decryption {
                    from: v,
                    reason: "ciphertext has the wrong length",
                });
            }
            let shared = crypto::agree(&enc.secret, &entry.enc_pk, v)?;
            let key = crypto::share_key(&shared, p.round, v, self.id)?;
            let pt = crypto::open(&key, p.round, v, self.id, &es.ciphertext)?;
            let (ks, ms) = parse_share_pair(&pt, self.id.0, v, p.n)?;
            key_shares.insert(v, ks);
            mask_shares.insert(v, ms);

            let s_uv = crypto::agree(&mask.secret, &entry.mask_pk, v)?;
            let sign = if v < self.id { Sign::Add } else { Sign::Sub };
            seeds.push((crypto::pairwise_seed(&s_uv, p.round, self.id, v)?, sign));
        }
        let mut masked = input.clone();
        let mut masks: Vec<(&MaskSeed, Sign)> = Vec::with_capacity(seeds.len() + 1);
        masks.push((&self_mask, Sign::Add));
        masks.extend(seeds.iter().map(|(s, sign)| (s, *sign)));
        prg::apply_masks(&mut masked, &masks);

        let mut u2 = senders;
        u2.insert(self.id);
        drop((enc, mask, self_mask, seeds));
        self.state = State::Masked {
            u2,
            key_shares,
            mask_shares,
        };
        Ok(MaskedInput {
            round: p.round,
            sender: self.id,
            masked,
        })
    }

    /// Round 4: reveals shares of `b_v` for every survivor `v` and of
    /// `s_v^SK` for every dropped `v` — after checking that the request is
    /// one an honest client may answer.
    ///
    /// # Errors
    /// [`Error::UnmaskRefused`] (and the client aborts) if a peer is listed
    /// twice or in both sets (which would reveal both shares of one peer and
    /// so its input), a listed peer was not in `U2`, a peer of `U2` is in
    /// neither set, this client is not a survivor, or there are fewer than
    /// `t` survivors. [`Error::WrongRound`] also aborts.
    pub fn unmask(&mut self, request: &UnmaskRequest) -> Result<UnmaskResponse> {
        const OP: &str = "unmask";
        if !matches!(self.state, State::Masked { .. }) {
            return Err(self.wrong_phase(OP, "InputMasked"));
        }
        let State::Masked {
            u2,
            mut key_shares,
            mut mask_shares,
        } = std::mem::replace(&mut self.state, State::Aborted)
        else {
            return Err(Error::Aborted { operation: OP });
        };
        self.check_round(request.round)?;
        let refuse = |reason, peer| Err(Error::UnmaskRefused { reason, peer });
        let mut survivors = BTreeSet::new();
        for &v in &request.survivors {
            if !survivors.insert(v) {
                return refuse(Refusal::Duplicate, Some(v));
            }
        }
        let mut dropped = BTreeSet::new();
        for &v in &request.dropped {
            if survivors.contains(&v) {
                return refuse(Refusal::BothShares, Some(v));
            }
            if !dropped.insert(v) {
                return refuse(Refusal::Duplicate, Some(v));
            }
        }
        // Under SecAgg+ the request names every client; this one answers
        // for its neighbourhood only (non-neighbours hold no shares here).
        if let Some(&v) = survivors
            .iter()
            .chain(&dropped)
            .find(|v| !u2.contains(v) && self.nb.near(self.id, **v))
        {
            return refuse(Refusal::NotAPeer, Some(v));
        }
        if let Some(&v) = u2
            .iter()
            .find(|v| !survivors.contains(v) && !dropped.contains(v))
        {
            return refuse(Refusal::Unaccounted, Some(v));
        }
        if !survivors.contains(&self.id) {
            return refuse(Refusal::SelfNotSurvivor, Some(self.id));
        }
        if survivors.intersection(&u2).count() < self.params.t() {
            return refuse(Refusal::TooFewSurvivors, None);
        }
        // Each peer's share is moved out exactly once: the b-share of a
        // survivor or the key share of a dropped client, never both.
        let take = |map: &mut BTreeMap<ClientId, Share>, set: &BTreeSet<ClientId>| {
            set.iter()
                .filter_map(|&v| map.remove(&v).map(|share| OwnedShare { owner: v, share }))
                .collect::<Vec<_>>()
        };
        let self_mask_shares = take(&mut mask_shares, &survivors);
        let key_shares_out = take(&mut key_shares, &dropped);
        self.state = State::Done;
        Ok(UnmaskResponse {
            round: self.params.round,
            sender: self.id,
            self_mask_shares,
            key_shares: key_shares_out,
        })
    }
}
