//! The follower's window of local records waiting for their leader record.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// One local record.
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) time: f64,
    pub(crate) label: Option<f64>,
    pub(crate) features: Vec<f64>,
}

/// A finite time usable as an ordered map key.
#[derive(Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Time {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// Buffered local records, indexed by id and by time, plus the leader records that
/// were declared unmatched recently (to recognise late local records).
pub(crate) struct Window {
    window: f64,
    slots: Vec<Option<Record>>,
    free: Vec<usize>,
    by_id: HashMap<String, Vec<usize>>,
    by_time: BTreeMap<Time, Vec<usize>>,
    unmatched: HashMap<String, Vec<f64>>,
    unmatched_by_time: BTreeMap<Time, Vec<String>>,
    max_local: f64,
    max_leader: f64,
    evicted: u64,
    late: u64,
}

impl Window {
    pub(crate) fn new(window: f64) -> Self {
        Self {
            window,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_time: BTreeMap::new(),
            unmatched: HashMap::new(),
            unmatched_by_time: BTreeMap::new(),
            max_local: f64::NEG_INFINITY,
            max_leader: f64::NEG_INFINITY,
            evicted: 0,
            late: 0,
        }
    }

    /// Latest local event time read so far.
    pub(crate) fn max_time(&self) -> f64 {
        self.max_local
    }

    /// Buffers a local record, unless it is the late partner of an unmatched leader record.
    pub(crate) fn insert(&mut self, r: Record) {
        self.max_local = self.max_local.max(r.time);
        if let Some(times) = self.unmatched.get_mut(&r.id)
            && let Some(k) = times.iter().position(|t| (t - r.time).abs() <= self.window)
        {
            let t = times.swap_remove(k);
            if times.is_empty() {
                self.unmatched.remove(&r.id);
            }
            remove_from(&mut self.unmatched_by_time, Time(t), |id| *id == r.id);
            self.late += 1;
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.by_id.entry(r.id.clone()).or_default().push(slot);
        self.by_time.entry(Time(r.time)).or_default().push(slot);
        self.slots[slot] = Some(r);
    }

    fn remove_slot(&mut self, slot: usize) -> Option<Record> {
        let r = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        if let Some(v) = self.by_id.get_mut(&r.id) {
            v.retain(|s| *s != slot);
            if v.is_empty() {
                self.by_id.remove(&r.id);
            }
        }
        remove_from(&mut self.by_time, Time(r.time), |s| *s == slot);
        Some(r)
    }

    /// Takes the buffered record with this id closest in time to `t`, if within the window.
    pub(crate) fn take_match(&mut self, id: &str, t: f64) -> Option<Record> {
        let slots = self.by_id.get(id)?;
        let best = slots
            .iter()
            .filter_map(|&s| self.slots[s].as_ref().map(|r| (s, (r.time - t).abs())))
            .filter(|(_, d)| *d <= self.window)
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        self.remove_slot(best.0)
    }

    /// Remembers a leader record that found no partner.
    pub(crate) fn declare_unmatched(&mut self, id: String, t: f64) {
        self.unmatched.entry(id.clone()).or_default().push(t);
        self.unmatched_by_time.entry(Time(t)).or_default().push(id);
    }

    /// Moves the leader's watermark; evicts what can no longer match.
    pub(crate) fn advance(&mut self, leader_time: f64) {
        self.max_leader = self.max_leader.max(leader_time);
        // Twice the window: leader records may themselves arrive up to a window late.
        let cut = Time(self.max_leader - 2.0 * self.window);
        let old: Vec<usize> = {
            let keep = self.by_time.split_off(&cut);
            let old = std::mem::replace(&mut self.by_time, keep);
            old.into_values().flatten().collect()
        };
        for slot in old {
            if let Some(r) = self.slots.get_mut(slot).and_then(Option::take) {
                self.free.push(slot);
                self.evicted += 1;
                if let Some(v) = self.by_id.get_mut(&r.id) {
                    v.retain(|s| *s != slot);
                    if v.is_empty() {
                        self.by_id.remove(&r.id);
                    }
                }
            }
        }
        let keep = self.unmatched_by_time.split_off(&cut);
        for (t, ids) in std::mem::replace(&mut self.unmatched_by_time, keep) {
            for id in ids {
                if let Some(v) = self.unmatched.get_mut(&id) {
                    v.retain(|x| *x != t.0);
                    if v.is_empty() {
                        self.unmatched.remove(&id);
                    }
                }
            }
        }
    }

    /// (follower records never joined, late records).
    pub(crate) fn finish(self) -> (u64, u64) {
        let left = self.slots.iter().filter(|s| s.is_some()).count() as u64;
        (self.evicted + left, self.late)
    }
}

fn remove_from<T>(map: &mut BTreeMap<Time, Vec<T>>, key: Time, pred: impl Fn(&T) -> bool) {
    if let Some(v) = map.get_mut(&key) {
        if let Some(k) = v.iter().position(pred) {
            v.swap_remove(k);
        }
        if v.is_empty() {
            map.remove(&key);
        }
    }
}
