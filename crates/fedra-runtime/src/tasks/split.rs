//! Held-out split agreed by all parties of a vertical task.
//!
//! The guest (label holder) draws a stratified (or plain) random split of the aligned
//! rows from a seed and sends the test-row bitmap to every other party; hosts learn
//! which rows are held out, nothing about labels. Rows are aligned, so row positions
//! are shared identities.

use std::collections::BTreeMap;

use bytes::Bytes;
use fedra_data::Dataset;
use fedra_federation::{FedError, PartyId};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::error::TaskError;
use crate::runner::TaskCtx;

/// Train and test row positions, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) train: Vec<usize>,
    pub(crate) test: Vec<usize>,
}

/// Fisher–Yates with a seeded generator (not security relevant: the split is public).
fn shuffle(v: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The guest's split: per label value (if `stratified`), `round(holdout · count)` rows to test.
///
/// Rows are taken in the order of their ids before shuffling, so the same ids, labels
/// and seed give the same held-out rows whatever order the rows arrive in (PSI's
/// output order differs from run to run).
pub(crate) fn draw(
    ids: &[String],
    labels: &[f64],
    holdout: f64,
    seed: u64,
    stratified: bool,
) -> Split {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| ids.get(a).cmp(&ids.get(b)));
    let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for i in order {
        let key = if stratified { labels[i].to_bits() } else { 0 };
        groups.entry(key).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut is_test = vec![false; labels.len()];
    for rows in groups.values_mut() {
        shuffle(rows, &mut rng);
        let k = (holdout * rows.len() as f64).round() as usize;
        for &i in &rows[..k.min(rows.len())] {
            is_test[i] = true;
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, t) in is_test.into_iter().enumerate() {
        if t { test.push(i) } else { train.push(i) }
    }
    Split { train, test }
}

fn encode(split: &Split, n: usize) -> Vec<u8> {
    let mut bits = vec![0u8; n.div_ceil(8)];
    for &i in &split.test {
        bits[i / 8] |= 1 << (i % 8);
    }
    bits
}

fn decode(bits: &[u8], n: usize) -> Result<Split, String> {
    if bits.len() != n.div_ceil(8) {
        return Err(format!(
            "split bitmap of {} bytes, but this party has {n} rows",
            bits.len()
        ));
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for i in 0..n {
        if bits[i / 8] >> (i % 8) & 1 == 1 {
            test.push(i)
        } else {
            train.push(i)
        }
    }
    if !n.is_multiple_of(8) && bits.last().is_some_and(|b| b >> (n % 8) != 0) {
        return Err("split bitmap marks rows beyond the last one".into());
    }
    Ok(Split { train, test })
}

/// Agrees on the split: the `guest` draws it and sends it to `others`, who receive it.
pub(crate) async fn agree(
    ctx: &TaskCtx<'_>,
    guest: &PartyId,
    others: &[PartyId],
    data: &Dataset,
    holdout: f64,
    seed: u64,
    stratified: bool,
) -> Result<Split, TaskError> {
    let tag = ctx.tag(0, "split");
    let n = data.n_rows();
    if ctx.party.me == *guest {
        let labels = data.labels().ok_or_else(|| {
            TaskError::Setup(format!(
                "party '{guest}' must hold the labels to split the data"
            ))
        })?;
        let split = draw(data.ids(), labels, holdout, seed, stratified);
        let mut msg = (n as u64).to_le_bytes().to_vec();
        msg.extend(encode(&split, n));
        fedra_federation::broadcast(ctx.ch, others, &tag, Bytes::from(msg)).await?;
        Ok(split)
    } else {
        let msg = ctx.ch.recv(guest, &tag).await?;
        let bad = |detail: String| FedError::Decode {
            party: guest.to_string(),
            tag: tag.to_string(),
            detail,
        };
        let head: [u8; 8] = msg
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("short split message".into()))?;
        let theirs = u64::from_le_bytes(head);
        if theirs != n as u64 {
            return Err(TaskError::Mismatch(format!(
                "party '{guest}' has {theirs} rows but '{}' has {n}: align the parties' data first (psi task)",
                ctx.party.me
            )));
        }
        Ok(decode(&msg[8..], n).map_err(bad)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_class_shares_and_is_reproducible() {
        let labels: Vec<f64> = (0..1000)
            .map(|i| if i % 4 == 0 { 1.0 } else { 0.0 })
            .collect();
        let ids: Vec<String> = (0..1000).map(|i| format!("id{i}")).collect();
        let s = draw(&ids, &labels, 0.2, 42, true);
        assert_eq!(s.test.len(), 200);
        assert_eq!(s.test.iter().filter(|&&i| labels[i] == 1.0).count(), 50);
        assert_eq!(s, draw(&ids, &labels, 0.2, 42, true));
        assert_ne!(s, draw(&ids, &labels, 0.2, 43, true));
        // The same ids in another row order give the same held-out ids.
        let perm: Vec<usize> = (0..1000).map(|i| (i * 7919) % 1000).collect();
        let ids2: Vec<String> = perm.iter().map(|&i| ids[i].clone()).collect();
        let labels2: Vec<f64> = perm.iter().map(|&i| labels[i]).collect();
        let s2 = draw(&ids2, &labels2, 0.2, 42, true);
        let mut a: Vec<&String> = s.test.iter().map(|&i| &ids[i]).collect();
        let mut b: Vec<&String> = s2.test.iter().map(|&i| &ids2[i]).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(decode(&encode(&s, 1000), 1000).unwrap(), s);
        // A bitmap for another row count is refused (length, or bits past the end).
        assert!(decode(&encode(&s, 1000), 992).is_err());
        assert!(decode(&[0x80], 7).is_err());
        assert!(decode(&[0x40], 7).is_ok());
    }
}
