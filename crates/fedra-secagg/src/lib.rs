//! Secure aggregation for Fedra, after Bonawitz et al., *Practical Secure
//! Aggregation for Privacy-Preserving Machine Learning* (CCS 2017), in its
//! honest-but-curious form with dropouts.
//!
//! `n` clients each hold a vector `x_u` over `Z_{2^k}` (`k` = 32 or 64); the
//! server learns `Σ x_u` over the clients that stayed to the end of round 2,
//! and nothing else about the individual vectors, even when up to `n - t`
//! clients drop out at any point.
//!
//! This is a pure library: no I/O, no async, no threads of its own besides
//! rayon's pool for mask expansion, and every random draw comes from an RNG
//! the caller passes in. [`Client`] and [`Server`] are state machines for one
//! round; the caller moves their messages (each has
//! [`encode`](WireMessage::encode) / [`decode`](WireMessage::decode)) over
//! whatever transport it likes. [`run_in_memory`] drives a whole round in one
//! process and is the reference for how the pieces fit.
//!
//! # Protocol
//!
//! | round | client `u` | server |
//! |---|---|---|
//! | 0 AdvertiseKeys | [`Client::new`]: X25519 pairs `(c_u, s_u)`, sends both public keys | [`Server::receive_advertise`]*, [`Server::close_advertise`]: needs `\|U1\| ≥ t`, broadcasts [`KeyList`] |
//! | 1 ShareKeys | [`Client::share_keys`]: draws `b_u`, Shamir-shares `s_u^SK` and `b_u` (`t` of `U1`), encrypts each peer's pair under `HKDF(X25519(c_u, c_v))` with AD = (round, u, v), commits to `b_u` | [`Server::receive_shares`]*, [`Server::close_shares`]: needs `\|U2\| ≥ t`, routes [`ForwardedShares`] |
//! | 2 MaskedInputCollection | [`Client::mask_input`]: `y_u = x_u + PRG(b_u) + Σ_{v<u} PRG(s_uv) − Σ_{v>u} PRG(s_uv)`, `v ∈ U2`, `s_uv = HKDF(X25519(s_u, s_v))` | [`Server::receive_masked_input`]* (summed on arrival), [`Server::close_masked_inputs`]: needs `\|U3\| ≥ t`, sends [`UnmaskRequest`] (survivors `U3`, dropped `U2 \ U3`) |
//! | 3 ConsistencyCheck | not implemented (see *Threat model*) | |
//! | 4 Unmasking | [`Client::unmask`]: checks the request, returns shares of `b_v` for survivors and of `s_v^SK` for dropped `v` | [`Server::receive_unmask_response`]*, [`Server::finish`]: needs `t` responses, reconstructs, checks each `b_u` against its commitment and each `s_v^SK` against `s_v^PK`, strips the masks, outputs [`Aggregate`] |
//!
//! Usage sequence (see [`run_in_memory`] for the full loop):
//!
//! ```
//! use fedra_secagg::{Client, ClientId, Params, Ring, RingVec, RoundId, Server};
//! # fn main() -> Result<(), fedra_secagg::Error> {
//! let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
//! # use rand_core::SeedableRng;
//! let params = Params::new(RoundId(1), 3, 2, 4, Ring::U32)?;
//! let mut server = Server::new(params)?;
//! let mut clients = Vec::new();
//! for i in 1..=3 {
//!     let (c, adv) = Client::new(params, ClientId(i), &mut rng)?;
//!     server.receive_advertise(&adv)?;
//!     clients.push(c);
//! }
//! let keys = server.close_advertise()?;
//! for c in &mut clients {
//!     server.receive_shares(c.share_keys(&keys, &mut rng)?)?;
//! }
//! for fwd in server.close_shares()? {
//!     let c = &mut clients[fwd.recipient.0 as usize - 1];
//!     let x = RingVec::U32(vec![fwd.recipient.0; 4]);
//!     server.receive_masked_input(&c.mask_input(&fwd, &x)?)?;
//! }
//! let request = server.close_masked_inputs()?;
//! for c in &mut clients {
//!     server.receive_unmask_response(c.unmask(&request)?)?;
//! }
//! assert_eq!(server.finish()?.sum, RingVec::U32(vec![6; 4]));
//! # Ok(()) }
//! ```
//!
//! # Threat model
//!
//! **Who may be curious.** The server and any set of clients may be
//! *honest-but-curious*: they follow the protocol but pool everything they
//! saw to learn more. Clients are authenticated by the transport (Fedra's
//! mTLS), so the server cannot invent clients; it can, however, make clients
//! look dropped.
//!
//! **What the server learns.** The sum `Σ_{u∈U3} x_u` and the sets
//! `U1 ⊇ U2 ⊇ U3` (who dropped when), plus message sizes and timing. Each
//! masked vector `y_u` is `x_u` plus `PRG(b_u)`, a ChaCha20 keystream under
//! a seed the server never holds for a client whose pairwise keys it also
//! learns: it is computationally indistinguishable from uniform, whatever
//! `x_u` is. A client's shares travel through the server encrypted and
//! authenticated (ChaCha20-Poly1305) under keys only the two clients can
//! derive.
//!
//! **Why dropouts do not leak.** For each client the server asks survivors
//! for shares of `b_u` (if `u` survived) *or* of `s_u^SK` (if `u` dropped),
//! never both; an honest client refuses a request naming a peer in both
//! sets, a peer it never exchanged shares with, omitting one, or with fewer
//! than `t` survivors ([`Error::UnmaskRefused`]), and aborts for good. A
//! masked input arriving after the server closed round 2 is rejected
//! ([`Error::LateMessage`]), so a "dropped" client's input can never be
//! added after its pairwise masks were unmasked.
//!
//! **Collusion.** The server together with fewer than `t` clients learns
//! nothing beyond the sum of the honest survivors' inputs (and the colluders'
//! own inputs): each secret is shared with threshold `t`, so `t − 1` shares
//! are independent of it, and the colluders know only their own pairwise
//! seeds. `t` or more colluding clients (or `t` clients without the server,
//! if they can read the server's traffic) can reconstruct any client's
//! secrets and, with its masked input, its `x_u`. So pick `t` above the
//! largest coalition of clients that might collude with the server; `t > n/2`
//! is the usual default (the paper's actively secure variant needs a larger
//! `t`). Dropouts do not lower that bar: every reconstruction still needs `t`
//! shares, and the round aborts when fewer than `t` clients are left.
//!
//! **Out of scope: an actively malicious server.** A server that deviates
//! (e.g. tells different clients different survivor sets, so that each
//! alone looks consistent, or forges "dropped" claims in two separate
//! requests) can learn individual inputs. The paper's defense is round 3,
//! *ConsistencyCheck*, where clients sign the survivor set with keys bound
//! to their identities by a PKI, and every client checks `t` signatures
//! before unmasking. This crate does not implement it (no signature keys
//! or PKI binding here), so it must only be used with a server trusted to
//! follow the protocol. Also out of scope: clients that send malformed
//! inputs to bias the sum (no input validation/range proofs), and Sybil
//! clients (prevented, if at all, by the transport's authentication).
//!
//! # SecAgg+: a sparse neighbour graph
//!
//! With [`Params::with_graph`]`(k, seed)` (Bell et al., *Secure
//! Single-Server Aggregation with (Poly)Logarithmic Overhead*, CCS 2020)
//! the clients sit on a public random `k`-regular graph ([`Graph`]: a
//! Harary graph over an order of the ids drawn from `seed` and the round
//! id) and each client shares `s_u^SK` and `b_u` and agrees pairwise masks
//! **only with its `k` neighbours**: its messages and mask expansions grow
//! with `k`, not `n`. The threshold `t` applies within each neighbourhood
//! (`k + 1` clients with itself): the round completes while every
//! survivor's neighbourhood keeps `t` responders and every dropped client's
//! neighbourhood keeps `t`; a client refuses to unmask when fewer than `t`
//! of its neighbours survived. The same rules keep the server from seeing
//! both shares of a client. Security is per neighbourhood: `t` colluding
//! neighbours of a client (with the server) could unmask it, so with a
//! sparse graph the collusion bound is about `t` of `k`, not of `n` (Bell et
//! al. analyse the choice `k = O(log n)` against a fraction of corrupt
//! clients; this crate takes `k` and `t` as given). Without a graph (the
//! default) every pair of clients is connected, exactly as above.
//!
//! # Message sizes per client
//!
//! With `N1 = |U1|`, `N2 = |U2|`, `N3 = |U3|`, `D = N2 − N3`, `d` = vector
//! dimension, `w = k/8` bytes per element (every message starts with a
//! 4-byte header: magic, version, type):
//!
//! | message | direction | bytes |
//! |---|---|---|
//! | [`AdvertiseKeys`] | up | 80 |
//! | [`KeyList`] | down | 16 + 68·N1 |
//! | [`ShareKeys`] | up | 52 + 100·(N1 − 1) |
//! | [`ForwardedShares`] | down | 20 + 100·(N2 − 1) |
//! | [`MaskedInput`] | up | 21 + w·d |
//! | [`UnmaskRequest`] | down | 20 + 4·N2 |
//! | [`UnmaskResponse`] | up | 24 + 44·N2 |
//!
//! (Under SecAgg+ replace `N1 − 1`, `N2 − 1` by the neighbours in `U1`, `U2`:
//! at most `k`.) So a client sends `77 + 144·n + w·d` bytes at most; for `d = 10^6`,
//! `k = 32` and `n = 100` that is 4.0 MB, of which the masked vector is
//! 99.6%. Computation: a client expands `N2` PRG streams of `w·d` bytes,
//! the server `N3 + N3·D`.
//!
//! # Modules
//! [`shamir`] (secret sharing over GF(2^61−1)), [`prg`] (ChaCha20 mask
//! expansion), [`quant`] (fixed-point encoding of `f32` updates, wrap check,
//! weighted FedAvg), [`messages`] (wire format).

mod client;
mod crypto;
mod error;
mod ids;
pub mod messages;
pub mod prg;
pub mod quant;
mod ring;
mod server;
pub mod shamir;
mod sim;
mod wire;

pub use client::Client;
pub use error::{Error, Refusal, Result};
pub use ids::{ClientId, Graph, MAX_CLIENTS, MAX_DIM, Neighbours, Params, RoundId};
pub use messages::{
    AdvertiseKeys, CIPHERTEXT_LEN, EncryptedShares, ForwardedShares, KeyEntry, KeyList,
    MaskedInput, OwnedShare, ShareKeys, UnmaskRequest, UnmaskResponse, WireMessage,
};
pub use quant::{QuantConfig, Rounding};
pub use ring::{Ring, RingVec};
pub use server::{Aggregate, Server};
pub use sim::{DropPoint, DropSchedule, plaintext_sum, run_in_memory, run_in_memory_with_graph};

#[cfg(test)]
mod tests;
