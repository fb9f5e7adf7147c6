//! The server's state machine for one round.
//!
//! Messages are fed one at a time as they arrive (`receive_*`); the driver
//! decides when a phase ends (timeout, enough clients) and calls `close_*`,
//! which fixes that phase's client set and returns the messages to send:
//!
//! ```text
//! receive_advertise(AdvertiseKeys)*      close_advertise()      -> KeyList          (U1)
//! receive_shares(ShareKeys)*             close_shares()         -> ForwardedShares* (U2)
//! receive_masked_input(MaskedInput)*     close_masked_inputs()  -> UnmaskRequest    (U3)
//! receive_unmask_response(UnmaskResponse)*  finish()            -> Aggregate        (U5)
//! ```
//!
//! A rejected message (bad form, unknown or duplicate sender, wrong round,
//! late) returns an error and leaves the server as it was: one bad client
//! does not end the round. Closing a phase with fewer than `t` clients, or a
//! failed reconstruction, aborts the round with an error and no output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::crypto;
use crate::error::{Error, Result};
use crate::ids::{ClientId, Neighbours, Params, RoundId};
use crate::messages::{
    AdvertiseKeys, CIPHERTEXT_LEN, EncryptedShares, ForwardedShares, KeyEntry, KeyList,
    MaskedInput, SHARE_ELEMS, ShareKeys, UnmaskRequest, UnmaskResponse, id_set,
};
use crate::prg::{self, MaskSeed, Sign};
use crate::ring::RingVec;
use crate::shamir::{LagrangeAtZero, Share};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    CollectingKeys,
    CollectingShares,
    CollectingMaskedInputs,
    CollectingUnmask,
    Finished,
    Aborted,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::CollectingKeys => "AdvertiseKeys",
            Self::CollectingShares => "ShareKeys",
            Self::CollectingMaskedInputs => "MaskedInputCollection",
            Self::CollectingUnmask => "Unmasking",
            Self::Finished => "Finished",
            Self::Aborted => "Aborted",
        }
    }
}

/// The result of a round: the sum of the surviving clients' inputs and who
/// survived. This is all the server learns (besides who dropped when).
#[derive(Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Round.
    pub round: RoundId,
    /// `Σ_{u∈U3} x_u` in the ring.
    pub sum: RingVec,
    /// `U3`, the clients whose inputs are in the sum, sorted.
    pub survivors: Vec<ClientId>,
    /// `U2 \ U3`, clients that shared keys but whose input is not in the sum.
    pub dropped: Vec<ClientId>,
}

impl fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregate")
            .field("round", &self.round)
            .field("ring", &self.sum.ring())
            .field("dim", &self.sum.len())
            .field("survivors", &self.survivors)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// The server's state for one round. It holds no secrets of its own; the
/// seeds it reconstructs at the end live only inside [`Server::finish`]
/// (the clients' shares it collects for that are zeroized on drop).
/// `Clone` forks the whole state, e.g. to checkpoint or benchmark it.
#[derive(Clone)]
pub struct Server {
    params: Params,
    phase: Phase,
    u1: BTreeMap<ClientId, KeyEntry>,
    /// Ciphertexts per sender in `U2`, until forwarded.
    ciphertexts: BTreeMap<ClientId, Vec<EncryptedShares>>,
    /// Self-mask commitments per sender in `U2`.
    commitments: BTreeMap<ClientId, [u8; 32]>,
    u2: BTreeSet<ClientId>,
    u3: BTreeSet<ClientId>,
    sum: Option<RingVec>,
    dropped: BTreeSet<ClientId>,
    responses: BTreeMap<ClientId, UnmaskResponse>,
    /// The round's neighbour relation (complete unless SecAgg+).
    nb: Neighbours,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("round", &self.params.round)
            .field("phase", &self.phase.name())
            .field("u1", &self.u1.len())
            .field("u2", &self.u2.len())
            .field("u3", &self.u3.len())
            .field("responses", &self.responses.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server waiting for round-0 messages.
    ///
    /// # Errors
    /// [`Error::InvalidParams`].
    pub fn new(params: Params) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            phase: Phase::CollectingKeys,
            u1: BTreeMap::new(),
            ciphertexts: BTreeMap::new(),
            commitments: BTreeMap::new(),
            u2: BTreeSet::new(),
            u3: BTreeSet::new(),
            sum: None,
            dropped: BTreeSet::new(),
            responses: BTreeMap::new(),
            nb: params.neighbours(),
        })
    }

    /// The round parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current phase, for logs.
    pub fn phase(&self) -> &'static str {
        self.phase.name()
    }

    /// Checks that the server is in `expected`; a message for an earlier
    /// phase is late, one for a later phase is out of order.
    fn expect(
        &self,
        expected: Phase,
        operation: &'static str,
        client: Option<ClientId>,
    ) -> Result<()> {
        match (self.phase, client) {
            (p, _) if p == expected => Ok(()),
            (Phase::Aborted, _) => Err(Error::Aborted { operation }),
            (p, Some(client)) if p > expected => Err(Error::LateMessage {
                client,
                message: operation,
                phase: p.name(),
            }),
            (p, _) => Err(Error::WrongPhase {
                operation,
                expected: expected.name(),
                actual: p.name(),
            }),
        }
    }

    fn check_round(&self, round: RoundId) -> Result<()> {
        if round != self.params.round {
            return Err(Error::WrongRound {
                expected: self.params.round,
                got: round,
            });
        }
        Ok(())
    }

    fn check_sender(
        &self,
        sender: ClientId,
        set: &BTreeSet<ClientId>,
        seen: bool,
        context: &'static str,
    ) -> Result<()> {
        if !set.contains(&sender) {
            return Err(Error::UnknownClient {
                client: sender,
                context,
            });
        }
        if seen {
            return Err(Error::DuplicateClient {
                client: sender,
                context,
            });
        }
        Ok(())
    }

    fn close(&mut self, phase: &'static str, set: &BTreeSet<ClientId>) -> Result<()> {
        if set.len() < self.params.t() {
            self.phase = Phase::Aborted;
            self.sum = None;
            return Err(Error::TooFewClients {
                phase,
                got: set.len(),
                needed: self.params.t(),
                present: set.iter().copied().collect(),
            });
        }
        Ok(())
    }

    /// Round 0: accepts a client's public keys.
    ///
    /// # Errors
    /// Late or out-of-phase message, wrong round, id outside `1..=n`,
    /// duplicate sender, a low-order key, or a key another client already
    /// advertised.
    pub fn receive_advertise(&mut self, msg: &AdvertiseKeys) -> Result<()> {
        self.expect(Phase::CollectingKeys, "AdvertiseKeys", Some(msg.sender))?;
        self.check_round(msg.round)?;
        if !self.params.contains(msg.sender) {
            return Err(Error::UnknownClient {
                client: msg.sender,
                context: "AdvertiseKeys sender (outside 1..=n)",
            });
        }
        if self.u1.contains_key(&msg.sender) {
            return Err(Error::DuplicateClient {
                client: msg.sender,
                context: "AdvertiseKeys",
            });
        }
        let bad = |reason| {
            Err(Error::BadPublicKey {
                client: msg.sender,
                reason,
            })
        };
        if crypto::is_low_order(&msg.enc_pk) || crypto::is_low_order(&msg.mask_pk) {
            return bad("low-order point");
        }
        if msg.enc_pk == msg.mask_pk {
            return bad("the two public keys are equal");
        }
        let keys = [msg.enc_pk, msg.mask_pk];
        if self
            .u1
            .values()
            .any(|e| keys.contains(&e.enc_pk) || keys.contains(&e.mask_pk))
        {
            return bad("key already advertised by another client");
        }
        self.u1.insert(
            msg.sender,
            KeyEntry {
                client: msg.sender,
                enc_pk: msg.enc_pk,
                mask_pk: msg.mask_pk,
            },
        );
        Ok(())
    }

    /// Ends round 0: `U1` is fixed and its key list is to be broadcast to
    /// every client in it.
    ///
    /// # Errors
    /// [`Error::TooFewClients`] (the round aborts) if `|U1| < t`.
    pub fn close_advertise(&mut self) -> Result<KeyList> {
        self.expect(Phase::CollectingKeys, "close_advertise", None)?;
        let u1: BTreeSet<ClientId> = self.u1.keys().copied().collect();
        self.close("AdvertiseKeys", &u1)?;
        self.phase = Phase::CollectingShares;
        Ok(KeyList {
            round: self.params.round,
            entries: self.u1.values().copied().collect(),
        })
    }

    /// Round 1: accepts a client's encrypted shares.
    ///
    /// # Errors
    /// Late or out-of-phase message, wrong round, sender not in `U1` or
    /// repeated, or a share list that is not exactly one well-sized
    /// ciphertext per other client in `U1`.
    pub fn receive_shares(&mut self, msg: ShareKeys) -> Result<()> {
        self.expect(Phase::CollectingShares, "ShareKeys", Some(msg.sender))?;
        self.check_round(msg.round)?;
        let u1: BTreeSet<ClientId> = self.u1.keys().copied().collect();
        self.check_sender(
            msg.sender,
            &u1,
            self.u2.contains(&msg.sender),
            "ShareKeys sender (U1)",
        )?;
        let recipients = id_set(
            msg.shares.iter().map(|s| s.peer),
            self.params.n,
            "ShareKeys recipients",
        )?;
        for es in &msg.shares {
            if !u1.contains(&es.peer) || !self.nb.adjacent(msg.sender, es.peer) {
                return Err(Error::UnknownClient {
                    client: es.peer,
                    context: "ShareKeys recipient (not a neighbour in U1)",
                });
            }
            if es.ciphertext.len() != CIPHERTEXT_LEN {
                return Err(crate::wire::decode_error(
                    "ShareKeys",
                    0,
                    "ciphertext has the wrong length",
                ));
            }
        }
        if let Some(&missing) = u1
            .iter()
            .find(|&&v| self.nb.adjacent(msg.sender, v) && !recipients.contains(&v))
        {
            return Err(Error::Incomplete {
                message: "ShareKeys",
                missing,
            });
        }
        self.u2.insert(msg.sender);
        self.commitments
            .insert(msg.sender, msg.self_mask_commitment);
        self.ciphertexts.insert(msg.sender, msg.shares);
        Ok(())
    }

    /// Ends round 1: `U2` is fixed; returns, for each client in `U2`, the
    /// ciphertexts addressed to it by the other clients in `U2` (those from
    /// or to clients outside `U2` are discarded).
    ///
    /// # Errors
    /// [`Error::TooFewClients`] (the round aborts) if `|U2| < t`.
    pub fn close_shares(&mut self) -> Result<Vec<ForwardedShares>> {
        self.expect(Phase::CollectingShares, "close_shares", None)?;
        let u2 = self.u2.clone();
        self.close("ShareKeys", &u2)?;
        let mut inbox: BTreeMap<ClientId, Vec<EncryptedShares>> =
            u2.iter().map(|&v| (v, Vec::new())).collect();
        for (from, cts) in std::mem::take(&mut self.ciphertexts) {
            for es in cts {
                if let Some(list) = inbox.get_mut(&es.peer) {
                    list.push(EncryptedShares {
                        peer: from,
                        ciphertext: es.ciphertext,
                    });
                }
            }
        }
        self.phase = Phase::CollectingMaskedInputs;
        self.sum = Some(RingVec::zeros(self.params.ring, self.params.dim));
        Ok(inbox
            .into_iter()
            .map(|(recipient, shares)| ForwardedShares {
                round: self.params.round,
                recipient,
                shares,
            })
            .collect())
    }

    /// Round 2: accepts a masked input and adds it to the running sum (the
    /// server keeps only the sum, not individual vectors).
    ///
    /// # Errors
    /// [`Error::LateMessage`] once round 2 is closed (the input is *not*
    /// added); wrong round; sender not in `U2` or repeated; wrong ring or
    /// dimension.
    pub fn receive_masked_input(&mut self, msg: &MaskedInput) -> Result<()> {
        self.expect(
            Phase::CollectingMaskedInputs,
            "MaskedInput",
            Some(msg.sender),
        )?;
        self.check_round(msg.round)?;
        self.check_sender(
            msg.sender,
            &self.u2,
            self.u3.contains(&msg.sender),
            "MaskedInput sender (U2)",
        )?;
        msg.masked.check_shape(self.params.ring, self.params.dim)?;
        match self.sum.as_mut() {
            Some(sum) => sum.wrapping_add_assign(&msg.masked)?,
            None => {
                return Err(Error::Aborted {
                    operation: "MaskedInput",
                });
            }
        }
        self.u3.insert(msg.sender);
        Ok(())
    }

    /// [`Server::receive_masked_input`] straight from the encoded message
    /// as the transport delivered it, in pieces (`chunks`, in order, at
    /// most `max_len` bytes in all) from the client the transport
    /// authenticated as `from` (the message must name it as its sender):
    /// the header is checked first, then the
    /// words are added into the running sum as they are read — no
    /// intermediate vector, no copy. Either the whole input is added or
    /// nothing is (every check happens before the first word).
    ///
    /// # Errors
    /// As [`Server::receive_masked_input`], plus [`Error::TooLarge`] and
    /// [`Error::Decode`] for a malformed message.
    pub fn receive_masked_chunks<B: AsRef<[u8]>>(
        &mut self,
        from: ClientId,
        chunks: &[B],
        max_len: usize,
    ) -> Result<()> {
        use crate::messages::{MASKED_HEADER, decode_masked_header};
        let total: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
        if total > max_len {
            return Err(Error::TooLarge {
                message: "MaskedInput",
                len: total,
                max: max_len,
            });
        }
        let mut head = Vec::with_capacity(MASKED_HEADER);
        for c in chunks {
            let c = c.as_ref();
            let take = (MASKED_HEADER - head.len()).min(c.len());
            head.extend_from_slice(&c[..take]);
            if head.len() == MASKED_HEADER {
                break;
            }
        }
        let (round, sender, ring, n) = decode_masked_header(&head)?;
        if sender != from {
            return Err(Error::UnknownClient {
                client: sender,
                context: "MaskedInput sender (not the authenticated peer)",
            });
        }
        self.expect(Phase::CollectingMaskedInputs, "MaskedInput", Some(sender))?;
        self.check_round(round)?;
        self.check_sender(
            sender,
            &self.u2,
            self.u3.contains(&sender),
            "MaskedInput sender (U2)",
        )?;
        if ring != self.params.ring {
            return Err(Error::RingMismatch {
                expected: self.params.ring,
                got: ring,
            });
        }
        if n != self.params.dim {
            return Err(Error::DimensionMismatch {
                expected: self.params.dim,
                got: n,
            });
        }
        if total != MASKED_HEADER + n * ring.word_bytes() {
            return Err(crate::wire::decode_error(
                "MaskedInput",
                MASKED_HEADER,
                "the words do not match the count",
            ));
        }
        let Some(sum) = self.sum.as_mut() else {
            return Err(Error::Aborted {
                operation: "MaskedInput",
            });
        };
        match sum {
            RingVec::U32(v) => add_words(v, chunks, MASKED_HEADER),
            RingVec::U64(v) => add_words(v, chunks, MASKED_HEADER),
        }
        self.u3.insert(sender);
        Ok(())
    }

    /// Ends round 2: `U3` (survivors) and `U2 \ U3` (dropped) are fixed;
    /// returns the request to send to every client in `U3`. From now on any
    /// masked input is rejected as late.
    ///
    /// # Errors
    /// [`Error::TooFewClients`] (the round aborts) if `|U3| < t`.
    pub fn close_masked_inputs(&mut self) -> Result<UnmaskRequest> {
        self.expect(Phase::CollectingMaskedInputs, "close_masked_inputs", None)?;
        let u3 = self.u3.clone();
        self.close("MaskedInputCollection", &u3)?;
        self.dropped = self.u2.difference(&self.u3).copied().collect();
        self.phase = Phase::CollectingUnmask;
        Ok(self.unmask_request())
    }

    fn unmask_request(&self) -> UnmaskRequest {
        UnmaskRequest {
            round: self.params.round,
            survivors: self.u3.iter().copied().collect(),
            dropped: self.dropped.iter().copied().collect(),
        }
    }

    /// Round 4: accepts a client's shares.
    ///
    /// # Errors
    /// Late or out-of-phase message, wrong round, sender not in `U3` or
    /// repeated, or shares that are not exactly: one self-mask share per
    /// survivor and one key share per dropped client, each at the sender's
    /// point and well-formed.
    pub fn receive_unmask_response(&mut self, msg: UnmaskResponse) -> Result<()> {
        self.expect(Phase::CollectingUnmask, "UnmaskResponse", Some(msg.sender))?;
        self.check_round(msg.round)?;
        self.check_sender(
            msg.sender,
            &self.u3,
            self.responses.contains_key(&msg.sender),
            "UnmaskResponse sender (U3)",
        )?;
        let n = self.params.n;
        // The sender holds shares of itself and its neighbours in U2.
        let near = |set: &BTreeSet<ClientId>| -> BTreeSet<ClientId> {
            set.iter()
                .copied()
                .filter(|&v| self.nb.near(msg.sender, v))
                .collect()
        };
        let (survivors, dropped) = (near(&self.u3), near(&self.dropped));
        for (list, expected, message) in [
            (
                &msg.self_mask_shares,
                &survivors,
                "UnmaskResponse self-mask shares",
            ),
            (&msg.key_shares, &dropped, "UnmaskResponse key shares"),
        ] {
            let owners = id_set(list.iter().map(|s| s.owner), n, message)?;
            if let Some(&client) = owners.difference(expected).next() {
                return Err(Error::UnknownClient {
                    client,
                    context: message,
                });
            }
            if let Some(&missing) = expected.difference(&owners).next() {
                return Err(Error::Incomplete { message, missing });
            }
            for s in list {
                s.share.validate(n, SHARE_ELEMS)?;
                if s.share.x() != msg.sender.0 {
                    return Err(Error::InvalidShare {
                        x: s.share.x(),
                        reason: "share is not at the sender's point",
                    });
                }
            }
        }
        self.responses.insert(msg.sender, msg);
        Ok(())
    }

    /// Ends the round: reconstructs the survivors' self-mask seeds and the
    /// dropped clients' mask keys from the first `t` responses (by id),
    /// checks them against the commitments and public keys from rounds 0–1,
    /// removes all masks and returns the sum.
    ///
    /// # Errors
    /// [`Error::TooFewClients`] if fewer than `t` clients responded;
    /// [`Error::Reconstruction`] if a secret does not match its commitment
    /// or public key. Either way the round aborts without output.
    pub fn finish(&mut self) -> Result<Aggregate> {
        self.expect(Phase::CollectingUnmask, "finish", None)?;
        let responders: BTreeSet<ClientId> = self.responses.keys().copied().collect();
        self.close("Unmasking", &responders)?;
        let result = self.unmask_sum();
        if result.is_err() {
            self.phase = Phase::Aborted;
            self.sum = None;
        }
        result
    }

    fn unmask_sum(&mut self) -> Result<Aggregate> {
        let p = self.params;
        // Each secret from the first `t` responders (by id) holding a share
        // of it: any `t` responders without a graph (as in the paper), the
        // owner's neighbourhood under SecAgg+.
        let responses = &self.responses;
        let shares_of = |owner: ClientId, key: bool| -> Result<(LagrangeAtZero, Vec<&Share>)> {
            let shares: Vec<&Share> = responses
                .values()
                .filter_map(|r| {
                    let list = if key {
                        &r.key_shares
                    } else {
                        &r.self_mask_shares
                    };
                    list.iter().find(|s| s.owner == owner).map(|s| &s.share)
                })
                .take(p.t())
                .collect();
            if shares.len() < p.t() {
                return Err(Error::TooFewClients {
                    phase: "Unmasking",
                    got: shares.len(),
                    needed: p.t(),
                    present: shares.iter().map(|s| ClientId(s.x())).collect(),
                });
            }
            let xs: Vec<u32> = shares.iter().map(|s| s.x()).collect();
            Ok((LagrangeAtZero::new(&xs, p.n)?, shares))
        };
        let fail = |what, client, reason| Error::Reconstruction {
            what,
            client,
            reason,
        };

        let mut seeds: Vec<(MaskSeed, Sign)> = Vec::new();
        for &u in &self.u3 {
            let (lagrange, shares) = shares_of(u, false)?;
            let b = lagrange
                .reconstruct(&shares, 32, u)
                .map_err(|_| fail("self-mask seed", u, "interpolation failed"))?;
            let mut arr = [0u8; 32];
            arr.copy_from_slice(&b);
            let seed = MaskSeed::new(arr);
            zeroize::Zeroize::zeroize(&mut arr);
            if self.commitments.get(&u)
                != Some(&crypto::commit_self_mask(p.round, u, seed.as_bytes()))
            {
                return Err(fail("self-mask seed", u, "does not match the commitment"));
            }
            seeds.push((seed, Sign::Sub));
        }
        for &v in &self.dropped {
            let (lagrange, shares) = shares_of(v, true)?;
            let sk = lagrange
                .reconstruct(&shares, 32, v)
                .map_err(|_| fail("mask key", v, "interpolation failed"))?;
            let mut sk_arr = zeroize::Zeroizing::new([0u8; 32]);
            sk_arr.copy_from_slice(&sk);
            let Some(entry) = self.u1.get(&v) else {
                return Err(fail("mask key", v, "client has no advertised key"));
            };
            if crypto::public_of(&sk_arr) != entry.mask_pk {
                return Err(fail(
                    "mask key",
                    v,
                    "does not match the advertised public key",
                ));
            }
            for &u in self.u3.iter().filter(|&&u| self.nb.adjacent(u, v)) {
                let Some(eu) = self.u1.get(&u) else {
                    return Err(fail("mask key", u, "client has no advertised key"));
                };
                let shared = crypto::agree_raw(&sk_arr, &eu.mask_pk, u)?;
                // u added PRG(s_uv) if v < u and subtracted it if v > u.
                let sign = if v < u { Sign::Sub } else { Sign::Add };
                seeds.push((crypto::pairwise_seed(&shared, p.round, u, v)?, sign));
            }
        }
        let Some(mut sum) = self.sum.take() else {
            return Err(Error::Aborted {
                operation: "finish",
            });
        };
        let masks: Vec<(&MaskSeed, Sign)> = seeds.iter().map(|(s, sign)| (s, *sign)).collect();
        prg::apply_masks(&mut sum, &masks);
        self.phase = Phase::Finished;
        self.responses.clear();
        Ok(Aggregate {
            round: p.round,
            sum,
            survivors: self.u3.iter().copied().collect(),
            dropped: self.dropped.iter().copied().collect(),
        })
    }
}

/// A ring word read from little-endian bytes.
trait LeWord: Copy {
    const BYTES: usize;
    fn read(b: &[u8]) -> Self;
    fn wrapping(self, o: Self) -> Self;
}

impl LeWord for u32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn read(b: &[u8]) -> Self {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    #[inline(always)]
    fn wrapping(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
}

impl LeWord for u64 {
    const BYTES: usize = 8;
    #[inline(always)]
    fn read(b: &[u8]) -> Self {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
    #[inline(always)]
    fn wrapping(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
}

/// `sum += words` where the words follow `skip` header bytes across
/// `chunks` (the caller checked that they are exactly `sum.len()` words).
fn add_words<W: LeWord, B: AsRef<[u8]>>(sum: &mut [W], chunks: &[B], mut skip: usize) {
    let mut at = 0usize;
    let mut carry = [0u8; 8];
    let mut carried = 0usize;
    for c in chunks {
        let mut c = c.as_ref();
        if skip > 0 {
            let s = skip.min(c.len());
            c = &c[s..];
            skip -= s;
        }
        if carried > 0 {
            let take = (W::BYTES - carried).min(c.len());
            carry[carried..carried + take].copy_from_slice(&c[..take]);
            carried += take;
            c = &c[take..];
            if carried < W::BYTES {
                continue;
            }
            if let Some(x) = sum.get_mut(at) {
                *x = x.wrapping(W::read(&carry));
            }
            at += 1;
        }
        let whole = c.len() / W::BYTES;
        let end = (at + whole).min(sum.len());
        for (x, w) in sum[at..end].iter_mut().zip(c.chunks_exact(W::BYTES)) {
            *x = x.wrapping(W::read(w));
        }
        at += whole;
        let rest = &c[whole * W::BYTES..];
        carry[..rest.len()].copy_from_slice(rest);
        carried = rest.len();
    }
}
