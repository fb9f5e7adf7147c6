//! A composing RDP accountant with persistent state.
//!
//! [`Accountant`] records [`Event`]s — `steps` steps of the Poisson-subsampled Gaussian
//! mechanism with noise multiplier σ and sampling rate q — and composes heterogeneous
//! rounds by adding their RDP vectors, exactly like dp-accounting's `RdpAccountant`
//! composing `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)`
//! events one after another (same orders, same summation order, so the same floats).
//!
//! ## Persistence
//! The state is serialised (serde, JSON via [`Accountant::save`]/[`Accountant::load`])
//! as the list of recorded events plus the order grid — not the RDP vector, which is
//! recomputed on load (JSON has no infinity, and the events are the ground truth). A
//! restarted server therefore resumes with bit-for-bit the same budget spent:
//!
//! ```json
//! {
//!   "format": "fedra-dp.accountant",
//!   "version": 1,
//!   "neighbouring_relation": "add_or_remove_one",
//!   "orders": [1.1, 1.2, …, 1024.0],
//!   "events": [{ "noise_multiplier": 1.1, "sampling_rate": 0.01, "steps": 100 }]
//! }
//! ```
//!
//! [`Accountant::save`] goes through [`fedra_fs::write_atomic`] (owner-only file; a
//! temporary file in the destination directory, synced, renamed over the destination,
//! directory synced), so a crash leaves either the old or the new state, never a torn
//! file. [`Accountant::load`] never modifies the file; a
//! malformed or inconsistent file is a [`DpError::MalformedState`] naming the path
//! (and line/column for JSON errors).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{
    DpError, Result, check_delta, check_epsilon, check_noise_multiplier, check_sampling_rate,
    check_steps,
};
use crate::planning::{DeltaReport, EpsilonReport};
use crate::rdp::{DEFAULT_ORDERS, check_orders, compute_rdp, delta_from_rdp, epsilon_from_rdp};

/// The `format` tag of a saved accountant.
pub const STATE_FORMAT: &str = "fedra-dp.accountant";
/// The `version` of the saved-state layout this crate writes and reads.
pub const STATE_VERSION: u32 = 1;
const RELATION: &str = "add_or_remove_one";
/// Distinct (σ, q) pairs whose per-step RDP is memoised.
const CACHE_CAPACITY: usize = 64;

/// `steps` steps of the Poisson-subsampled Gaussian mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Noise standard deviation divided by the L2 sensitivity; finite, `>= 0`.
    pub noise_multiplier: f64,
    /// Poisson sampling probability per step, in `(0, 1]`.
    pub sampling_rate: f64,
    /// Number of steps, `>= 1`.
    pub steps: u64,
}

impl Event {
    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        check_noise_multiplier("noise_multiplier", self.noise_multiplier)?;
        check_sampling_rate(self.sampling_rate)?;
        check_steps(self.steps)
    }
}

/// What [`Accountant::record_round`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RoundReport {
    /// 1-based index of the round (the number of events recorded so far).
    pub round: usize,
    /// The round's event.
    pub event: Event,
    /// ε of this round on its own.
    pub round_epsilon: EpsilonReport,
    /// ε of all rounds up to and including this one.
    pub total: EpsilonReport,
}

/// Memoised per-step RDP vectors keyed by the bit patterns of (σ, q).
#[derive(Debug, Clone, Default)]
struct RdpCache(HashMap<(u64, u64), Vec<f64>>);

impl RdpCache {
    /// The per-step RDP of `event`, from the cache or computed (without caching it).
    fn peek(&self, orders: &[f64], event: &Event) -> Result<Vec<f64>> {
        let key = (
            event.noise_multiplier.to_bits(),
            event.sampling_rate.to_bits(),
        );
        match self.0.get(&key) {
            Some(v) => Ok(v.clone()),
            None => compute_rdp(event.sampling_rate, event.noise_multiplier, orders),
        }
    }

    /// The per-step RDP of `event`, memoised.
    fn unit(&mut self, orders: &[f64], event: &Event) -> Result<Vec<f64>> {
        let key = (
            event.noise_multiplier.to_bits(),
            event.sampling_rate.to_bits(),
        );
        if let Some(v) = self.0.get(&key) {
            return Ok(v.clone());
        }
        let v = compute_rdp(event.sampling_rate, event.noise_multiplier, orders)?;
        if self.0.len() >= CACHE_CAPACITY {
            self.0.clear();
        }
        self.0.insert(key, v.clone());
        Ok(v)
    }
}

/// `acc += steps · unit`, elementwise (dp-accounting: `self._rdp += count * rdp`).
fn add_scaled(acc: &mut [f64], unit: &[f64], steps: u64) {
    let n = steps as f64;
    for (a, u) in acc.iter_mut().zip(unit) {
        *a += n * u;
    }
}

/// A composing RDP accountant (add-or-remove-one, Poisson sampling). See the
/// [module docs](self).
///
/// # Example
/// ```
/// use fedra_dp::{Accountant, Event};
/// let mut acc = Accountant::new();
/// for _ in 0..60 {
///     acc.record(Event { noise_multiplier: 1.1, sampling_rate: 0.01, steps: 100 })?;
/// }
/// // 60 rounds of 100 steps = 6000 steps.
/// assert!((acc.epsilon(1e-5)?.epsilon - 4.246599).abs() < 1e-6);
///
/// let path = std::env::temp_dir().join(format!("fedra-dp-doc-{}.json", std::process::id()));
/// acc.save(&path)?;
/// let resumed = Accountant::load(&path)?;
/// assert_eq!(resumed.epsilon(1e-5)?, acc.epsilon(1e-5)?);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "State", into = "State")]
pub struct Accountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
    events: Vec<Event>,
    cache: RdpCache,
}

impl Default for Accountant {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Accountant {
    /// Two accountants are equal when they have the same orders and events (and hence
    /// the same RDP).
    fn eq(&self, other: &Self) -> bool {
        self.orders == other.orders && self.events == other.events
    }
}

impl Accountant {
    /// An empty accountant over dp-accounting's default orders ([`DEFAULT_ORDERS`]).
    pub fn new() -> Self {
        Accountant {
            orders: DEFAULT_ORDERS.to_vec(),
            rdp: vec![0.0; DEFAULT_ORDERS.len()],
            events: Vec::new(),
            cache: RdpCache::default(),
        }
    }

    /// An empty accountant over custom RDP orders.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] unless `orders` is non-empty and every order is in
    /// `(1, MAX_ORDER]` ([`crate::rdp::MAX_ORDER`]).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self> {
        check_orders(&orders)?;
        Ok(Accountant {
            rdp: vec![0.0; orders.len()],
            orders,
            events: Vec::new(),
            cache: RdpCache::default(),
        })
    }

    /// Records one event (composes it into the running RDP).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] for an invalid event; the state is unchanged.
    pub fn record(&mut self, event: Event) -> Result<()> {
        event.validate()?;
        let unit = self.cache.unit(&self.orders, &event)?;
        add_scaled(&mut self.rdp, &unit, event.steps);
        self.events.push(event);
        Ok(())
    }

    /// Records one round and reports its own ε and the running total at `delta`.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] for an invalid event or δ; the state is then
    /// unchanged.
    pub fn record_round(&mut self, event: Event, delta: f64) -> Result<RoundReport> {
        event.validate()?;
        check_delta(delta)?;
        let unit = self.cache.unit(&self.orders, &event)?;
        let mut own = vec![0.0; self.orders.len()];
        add_scaled(&mut own, &unit, event.steps);
        let round_epsilon = self.report_epsilon(&own, delta)?;
        add_scaled(&mut self.rdp, &unit, event.steps);
        self.events.push(event);
        Ok(RoundReport {
            round: self.events.len(),
            event,
            round_epsilon,
            total: self.report_epsilon(&self.rdp, delta)?,
        })
    }

    /// ε at `delta` if `event` were recorded next, without recording it (to refuse a
    /// round that would overspend the budget).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] for an invalid event or δ.
    pub fn epsilon_after(&self, event: &Event, delta: f64) -> Result<EpsilonReport> {
        event.validate()?;
        check_delta(delta)?;
        let unit = self.cache.peek(&self.orders, event)?;
        let mut rdp = self.rdp.clone();
        add_scaled(&mut rdp, &unit, event.steps);
        self.report_epsilon(&rdp, delta)
    }

    fn report_epsilon(&self, rdp: &[f64], delta: f64) -> Result<EpsilonReport> {
        let (epsilon, order) = epsilon_from_rdp(&self.orders, rdp, delta)?;
        Ok(EpsilonReport {
            epsilon,
            delta,
            order,
        })
    }

    /// ε of everything recorded so far, at `delta` (0 when nothing was recorded).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] unless δ ∈ (0, 1).
    pub fn epsilon(&self, delta: f64) -> Result<EpsilonReport> {
        self.report_epsilon(&self.rdp, delta)
    }

    /// δ of everything recorded so far, at `epsilon`.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] unless ε is finite and `> 0`.
    pub fn delta(&self, epsilon: f64) -> Result<DeltaReport> {
        check_epsilon("epsilon", epsilon)?;
        let (delta, order) = delta_from_rdp(&self.orders, &self.rdp, epsilon)?;
        Ok(DeltaReport {
            delta,
            epsilon,
            order,
        })
    }

    /// One [`RoundReport`] per recorded event, in order (recomputed from the events,
    /// with the same floats as when they were recorded).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] unless δ ∈ (0, 1).
    pub fn history(&self, delta: f64) -> Result<Vec<RoundReport>> {
        check_delta(delta)?;
        let mut cache = self.cache.clone();
        let mut running = vec![0.0; self.orders.len()];
        let mut out = Vec::with_capacity(self.events.len());
        for (i, event) in self.events.iter().enumerate() {
            let unit = cache.unit(&self.orders, event)?;
            let mut own = vec![0.0; self.orders.len()];
            add_scaled(&mut own, &unit, event.steps);
            add_scaled(&mut running, &unit, event.steps);
            out.push(RoundReport {
                round: i + 1,
                event: *event,
                round_epsilon: self.report_epsilon(&own, delta)?,
                total: self.report_epsilon(&running, delta)?,
            });
        }
        Ok(out)
    }

    /// The recorded events, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The RDP orders.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The composed RDP at each order (entries may be `+∞`).
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Saves the state as pretty JSON to `path`, durably and atomically, readable by
    /// the owner only ([`fedra_fs::write_atomic`]: a temporary file in the same
    /// directory is written, synced and renamed over `path`, then the directory is
    /// synced).
    ///
    /// # Errors
    /// [`DpError::Io`] naming `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut json =
            serde_json::to_vec_pretty(&State::from(self.clone())).map_err(|e| DpError::Io {
                path: path.to_path_buf(),
                op: "serialising",
                source: std::io::Error::other(e),
            })?;
        json.push(b'\n');
        fedra_fs::write_atomic(path, &json, fedra_fs::Mode::Private).map_err(|source| DpError::Io {
            path: path.to_path_buf(),
            op: "writing",
            source,
        })
    }

    /// Loads a state saved by [`Accountant::save`]. The file is only read.
    ///
    /// # Errors
    /// [`DpError::Io`] if the file cannot be read (including when it does not exist:
    /// check `source.kind()` for `NotFound`); [`DpError::MalformedState`] if it is not
    /// a valid state (syntax, unknown format/version, invalid event or order).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DpError::Io {
            path: path.to_path_buf(),
            op: "reading",
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| {
            let at = (e.line() > 0).then(|| (e.line(), e.column()));
            let mut reason = e.to_string();
            // serde_json appends " at line L column C"; the location is in `at`.
            if at.is_some()
                && let Some(i) = reason.rfind(" at line ")
            {
                reason.truncate(i);
            }
            DpError::MalformedState {
                path: path.to_path_buf(),
                at,
                reason,
            }
        })
    }
}

/// The serialised form of an [`Accountant`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: String,
    version: u32,
    neighbouring_relation: String,
    orders: Vec<f64>,
    events: Vec<Event>,
}

impl From<Accountant> for State {
    fn from(acc: Accountant) -> Self {
        State {
            format: STATE_FORMAT.to_owned(),
            version: STATE_VERSION,
            neighbouring_relation: RELATION.to_owned(),
            orders: acc.orders,
            events: acc.events,
        }
    }
}

impl TryFrom<State> for Accountant {
    type Error = String;

    fn try_from(s: State) -> std::result::Result<Self, String> {
        if s.format != STATE_FORMAT {
            return Err(format!(
                "format is {:?}, expected {STATE_FORMAT:?}",
                s.format
            ));
        }
        if s.version != STATE_VERSION {
            return Err(format!(
                "version {} is not supported (this build reads version {STATE_VERSION})",
                s.version
            ));
        }
        if s.neighbouring_relation != RELATION {
            return Err(format!(
                "neighbouring relation {:?} is not supported (only {RELATION:?})",
                s.neighbouring_relation
            ));
        }
        let mut acc = Accountant::with_orders(s.orders).map_err(|e| e.to_string())?;
        for (i, event) in s.events.into_iter().enumerate() {
            acc.record(event).map_err(|e| format!("events[{i}]: {e}"))?;
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_accountant_spends_nothing() {
        let acc = Accountant::new();
        assert_eq!(acc.epsilon(1e-5).unwrap().epsilon, 0.0);
        assert_eq!(acc.delta(1.0).unwrap().delta, 0.0);
        assert!(acc.history(1e-5).unwrap().is_empty());
    }

    #[test]
    fn invalid_event_leaves_state_unchanged() {
        let mut acc = Accountant::new();
        let good = Event {
            noise_multiplier: 1.0,
            sampling_rate: 0.1,
            steps: 3,
        };
        acc.record(good).unwrap();
        let before = acc.rdp().to_vec();
        let bad = Event { steps: 0, ..good };
        assert_eq!(acc.record(bad).unwrap_err().code(), "dp.invalid_parameter");
        assert!(acc.record_round(good, 2.0).is_err());
        assert_eq!(acc.rdp(), &before[..]);
        assert_eq!(acc.events().len(), 1);
    }

    #[test]
    fn rounds_compose_like_one_event() {
        let mut acc = Accountant::new();
        for _ in 0..10 {
            acc.record(Event {
                noise_multiplier: 1.3,
                sampling_rate: 0.02,
                steps: 50,
            })
            .unwrap();
        }
        let mut one = Accountant::new();
        one.record(Event {
            noise_multiplier: 1.3,
            sampling_rate: 0.02,
            steps: 500,
        })
        .unwrap();
        let a = acc.epsilon(1e-5).unwrap().epsilon;
        let b = one.epsilon(1e-5).unwrap().epsilon;
        assert!((a - b).abs() <= 1e-12 * b, "{a} vs {b}");
    }

    #[test]
    fn custom_orders_are_validated() {
        assert!(Accountant::with_orders(vec![]).is_err());
        assert!(Accountant::with_orders(vec![2.0, 0.5]).is_err());
        assert!(Accountant::with_orders(vec![2.0, 1e9]).is_err());
        let acc = Accountant::with_orders(vec![2.0, 4.0, 8.0]).unwrap();
        assert_eq!(acc.orders(), &[2.0, 4.0, 8.0]);
    }
}
