//! In-memory driver: one server and `n` clients run a full round in one
//! process, with clients dropping out at chosen points. Every message goes
//! through its byte encoding, as it would over a transport.

use std::collections::BTreeMap;

use rand_core::CryptoRng;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::ids::{ClientId, Params, RoundId};
use crate::messages::WireMessage;
use crate::ring::RingVec;
use crate::server::{Aggregate, Server};

/// When a client stops responding (it still receives whatever is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropPoint {
    /// Never advertises keys: not in `U1`.
    BeforeAdvertise,
    /// Advertises keys (round 0), never sends shares: in `U1`, not `U2`.
    AfterAdvertise,
    /// Sends shares (round 1), never sends a masked input: in `U2`, not `U3`.
    AfterShareKeys,
    /// Sends its masked input (round 2), never answers the unmasking
    /// request: in `U3` (its input is in the sum), not among the responders.
    AfterMaskedInput,
}

/// Which clients drop, and when. Clients not listed complete the round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropSchedule {
    drops: BTreeMap<ClientId, DropPoint>,
}

impl DropSchedule {
    /// Nobody drops.
    pub fn none() -> Self {
        Self::default()
    }

    /// `client` drops at `point` (replacing an earlier entry).
    #[must_use]
    pub fn with(mut self, client: ClientId, point: DropPoint) -> Self {
        self.drops.insert(client, point);
        self
    }

    /// Every client in `clients` drops at `point`.
    #[must_use]
    pub fn with_all(
        mut self,
        clients: impl IntoIterator<Item = ClientId>,
        point: DropPoint,
    ) -> Self {
        for c in clients {
            self.drops.insert(c, point);
        }
        self
    }

    /// When `client` drops, if it does.
    pub fn get(&self, client: ClientId) -> Option<DropPoint> {
        self.drops.get(&client).copied()
    }

    /// Whether `client` is still active just after `point` has happened,
    /// i.e. it drops later than `point`, or never.
    fn active_after(&self, client: ClientId, point: DropPoint) -> bool {
        self.get(client).is_none_or(|d| d > point)
    }
}

/// Largest encoding the simulation accepts for any message: the masked
/// vector plus generous room for the id lists and ciphertexts.
fn max_len(params: &Params) -> usize {
    let n = params.n as usize;
    64 + params.dim * params.ring.word_bytes() + n * 256
}

fn wire<M: WireMessage>(msg: &M, params: &Params) -> Result<M> {
    M::decode(&msg.encode(), max_len(params))
}

/// Runs one complete round in memory: clients `1..=n` with `inputs[i-1]` as
/// client `i`'s input, threshold `t`, dropouts per `drops`; the round id is
/// drawn from `rng`, which also serves every client's randomness.
///
/// Returns the server's [`Aggregate`]: the exact ring sum of the inputs of
/// the clients that delivered their masked input (all clients except those
/// dropping before [`DropPoint::AfterMaskedInput`]).
///
/// # Errors
/// [`Error::InvalidParams`] if `inputs.len() != n` or the inputs differ in
/// shape; otherwise whatever error the server or a client raises, e.g.
/// [`Error::TooFewClients`] when fewer than `t` clients are left in a phase.
pub fn run_in_memory(
    n: u32,
    t: u32,
    inputs: &[RingVec],
    drops: &DropSchedule,
    rng: &mut impl CryptoRng,
) -> Result<Aggregate> {
    run_in_memory_with_graph(n, t, None, inputs, drops, rng)
}

/// As [`run_in_memory`], with the SecAgg+ neighbour graph `(degree, seed)`
/// ([`Params::with_graph`]) if given.
///
/// # Errors
/// As [`run_in_memory`]; also a client's refusal to unmask when its
/// neighbourhood lost too many members.
pub fn run_in_memory_with_graph(
    n: u32,
    t: u32,
    graph: Option<(u32, u64)>,
    inputs: &[RingVec],
    drops: &DropSchedule,
    rng: &mut impl CryptoRng,
) -> Result<Aggregate> {
    let Some(first) = inputs.first() else {
        return Err(Error::InvalidParams {
            reason: "no inputs".into(),
        });
    };
    if inputs.len() != n as usize {
        return Err(Error::InvalidParams {
            reason: format!("{} inputs for {n} clients", inputs.len()),
        });
    }
    let mut params = Params::new(RoundId(rng.next_u64()), n, t, first.len(), first.ring())?;
    if let Some((degree, seed)) = graph {
        params = params.with_graph(degree, seed)?;
    }
    for x in inputs {
        x.check_shape(params.ring, params.dim)?;
    }
    let mut server = Server::new(params)?;
    let mut clients = BTreeMap::new();

    // Round 0: AdvertiseKeys.
    for i in 1..=n {
        let id = ClientId(i);
        let (client, adv) = Client::new(params, id, rng)?;
        if drops.get(id) != Some(DropPoint::BeforeAdvertise) {
            server.receive_advertise(&wire(&adv, &params)?)?;
            clients.insert(id, client);
        }
    }
    let key_list = wire(&server.close_advertise()?, &params)?;

    // Round 1: ShareKeys.
    for (&id, client) in clients.iter_mut() {
        if drops.active_after(id, DropPoint::AfterAdvertise) {
            let msg = client.share_keys(&key_list, rng)?;
            server.receive_shares(wire(&msg, &params)?)?;
        }
    }
    let forwarded = server.close_shares()?;

    // Round 2: MaskedInputCollection.
    for fwd in forwarded {
        let id = fwd.recipient;
        let Some(client) = clients.get_mut(&id) else {
            continue;
        };
        if drops.active_after(id, DropPoint::AfterShareKeys) {
            let input = &inputs[(id.0 - 1) as usize];
            let msg = client.mask_input(&wire(&fwd, &params)?, input)?;
            server.receive_masked_input(&wire(&msg, &params)?)?;
        }
    }
    let request = wire(&server.close_masked_inputs()?, &params)?;

    // Round 4: Unmasking.
    for &id in &request.survivors {
        let Some(client) = clients.get_mut(&id) else {
            continue;
        };
        if drops.active_after(id, DropPoint::AfterMaskedInput) {
            let msg = client.unmask(&request)?;
            server.receive_unmask_response(wire(&msg, &params)?)?;
        }
    }
    server.finish()
}

/// The plaintext ring sum of `inputs[i-1]` over the clients `i` in `ids`
/// (what [`run_in_memory`] must output for `ids` = the survivors).
///
/// # Errors
/// If an id is out of range or the shapes differ.
pub fn plaintext_sum(inputs: &[RingVec], ids: &[ClientId]) -> Result<RingVec> {
    let Some(first) = inputs.first() else {
        return Err(Error::InvalidParams {
            reason: "no inputs".into(),
        });
    };
    let mut acc = RingVec::zeros(first.ring(), first.len());
    for id in ids {
        let Some(x) = (id.0 as usize).checked_sub(1).and_then(|i| inputs.get(i)) else {
            return Err(Error::UnknownClient {
                client: *id,
                context: "plaintext_sum",
            });
        };
        acc.wrapping_add_assign(x)?;
    }
    Ok(acc)
}
