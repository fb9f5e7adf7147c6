//! The cut outputs of a whole row set (held-out rows, prediction rows),
//! sent by each follower and collected by the leader in chunks of
//! `chunk_rows`, every received matrix checked.

use fedra_federation::{Channel, Tag};

use super::config::SplitConfig;
use super::matrix::concat;
use super::types::LeaderModel;
use crate::error::Result;
use crate::tower::{BottomTower, Features};
use crate::wire;

/// The concatenated cut outputs of all rows of `f`, chunk by chunk
/// (`(first row, cut)`), receiving the followers' parts under `tag`.
pub(super) async fn collect_cuts(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &LeaderModel,
    f: &Features,
    tag: &Tag,
) -> Result<Vec<(usize, Vec<f32>)>> {
    let idx: Vec<usize> = (0..f.rows()).collect();
    let mut out = Vec::new();
    for (c, chunk) in idx.chunks(cfg.chunk_rows).enumerate() {
        let rows = chunk.len();
        let own = match &model.bottom {
            Some(b) => Some((b.infer(f, chunk)?, b.output_width())),
            None => None,
        };
        let mut received = Vec::with_capacity(cfg.followers.len());
        for fl in &cfg.followers {
            let b = ch.recv(&fl.party, tag).await?;
            received.push(wire::decode_matrix(
                &fl.party,
                tag,
                &b,
                rows,
                fl.width,
                cfg.max_abs_value,
            )?);
        }
        let mut parts: Vec<(&[f32], usize)> = Vec::new();
        if let Some((v, w)) = &own {
            parts.push((v, *w));
        }
        for (v, fl) in received.iter().zip(&cfg.followers) {
            parts.push((v, fl.width));
        }
        out.push((c * cfg.chunk_rows, concat(&parts, rows)));
    }
    Ok(out)
}

/// Sends the cut outputs of all rows of `f` in chunks under `tag`.
pub(super) async fn send_cuts(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &BottomTower,
    f: &Features,
    tag: &Tag,
) -> Result<()> {
    let idx: Vec<usize> = (0..f.rows()).collect();
    let k = bottom.output_width();
    for chunk in idx.chunks(cfg.chunk_rows) {
        let v = bottom.infer(f, chunk)?;
        ch.send(&cfg.leader, tag, wire::encode_matrix(chunk.len(), k, &v))
            .await?;
    }
    Ok(())
}
