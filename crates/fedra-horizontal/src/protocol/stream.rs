//! The plain FedAvg server's hot loop: decode each client's update from the
//! transport's chunks and fold it into a running weighted mean, in client
//! order, holding no more than a batch of decoded updates.

use rayon::prelude::*;

use super::wire::{F32Decoder, F32Error};
use crate::aggregate::{Aggregator, MeanAccumulator};
use crate::error::{HorizontalError, Result};

/// A running mean of little-endian `f32` updates under a mean
/// [`Aggregator`] (weighted or not, with its norm bound), reusing its
/// memory from batch to batch and, after [`StreamingMean::reset`], from
/// round to round: a server does not fault in fresh pages for every
/// update.
///
/// Folding the same updates in the same order gives the same bits as
/// [`Aggregator::aggregate_results`] over all of them at once.
///
/// ```
/// use fedra_horizontal::Aggregator;
/// use fedra_horizontal::protocol::StreamingMean;
/// let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
/// let (a, b) = (bytes(&[1.0, 2.0]), bytes(&[3.0, f32::NAN]));
/// let mut m = StreamingMean::new(Aggregator::default(), 2)?;
/// // Client 1: 10 examples, one chunk; client 2: a NaN, refused.
/// let out = m.fold_batch(&[(10, &[a.as_slice()][..]), (30, &[b.as_slice()][..])])?;
/// assert!(out[0].is_ok() && out[1].is_err());
/// assert_eq!(m.mean()?, vec![1.0, 2.0]);
/// # Ok::<(), fedra_horizontal::HorizontalError>(())
/// ```
#[derive(Debug)]
pub struct StreamingMean {
    agg: Aggregator,
    acc: MeanAccumulator,
    buffers: Vec<Vec<f32>>,
}

impl StreamingMean {
    /// A mean of vectors of length `len` (`agg` must be a mean rule).
    pub fn new(agg: Aggregator, len: usize) -> Result<Self> {
        if agg.streaming_weight(1).is_none() {
            return Err(HorizontalError::Config {
                field: "aggregation.rule",
                reason: format!("{} needs every update at once", agg.rule.name()),
            });
        }
        Ok(StreamingMean {
            agg,
            acc: MeanAccumulator::new(len),
            buffers: Vec::new(),
        })
    }

    /// The vector length.
    pub fn len(&self) -> usize {
        self.acc.len()
    }

    /// Whether the vectors are empty.
    pub fn is_empty(&self) -> bool {
        self.acc.is_empty()
    }

    /// Empties the mean for a new round, keeping its memory.
    pub fn reset(&mut self) {
        self.acc.reset();
    }

    /// Updates folded since the last reset.
    pub fn folded(&self) -> usize {
        self.acc.folded()
    }

    /// Decodes a batch of updates — `(num_examples, chunks)`, in client
    /// order — in parallel, bounds each, and folds the valid ones in order
    /// in one pass. Returns each update's outcome: a malformed one (wrong
    /// length, NaN or infinity) is left out and reported, never folded.
    pub fn fold_batch<B: AsRef<[u8]> + Sync>(
        &mut self,
        updates: &[(u64, &[B])],
    ) -> Result<Vec<std::result::Result<(), F32Error>>> {
        let n = self.acc.len();
        let agg = self.agg;
        let jobs: Vec<(u64, &[B], Vec<f32>)> = updates
            .iter()
            .map(|&(k, chunks)| (k, chunks, self.buffers.pop().unwrap_or_default()))
            .collect();
        let decoded: Vec<(u64, std::result::Result<Vec<f32>, F32Error>)> = jobs
            .into_par_iter()
            .map(|(k, chunks, buf)| {
                let mut d = F32Decoder::with_buffer(buf, n);
                for c in chunks {
                    d.push(c.as_ref());
                }
                (k, d.finish())
            })
            .collect();
        let mut outcomes = Vec::with_capacity(decoded.len());
        let mut good = Vec::with_capacity(decoded.len());
        for (k, r) in decoded {
            match r {
                Ok(mut v) => {
                    agg.bound(&mut v)?;
                    good.push((v, agg.streaming_weight(k).unwrap_or(1.0)));
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        let views: Vec<(&[f32], f64)> = good.iter().map(|(v, w)| (v.as_slice(), *w)).collect();
        self.acc.fold_many(&views)?;
        self.buffers.extend(good.into_iter().map(|(v, _)| v));
        Ok(outcomes)
    }

    /// The mean so far (fails if nothing was folded).
    pub fn mean(&self) -> Result<Vec<f32>> {
        self.acc.mean()
    }
}
