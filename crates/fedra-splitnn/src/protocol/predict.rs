//! Prediction: the followers send the cut outputs of their (aligned) rows,
//! only the leader learns the predictions.

use fedra_federation::Channel;

use super::config::SplitConfig;
use super::cuts::{collect_cuts, send_cuts};
use super::follower::my_width;
use super::mismatch;
use super::types::LeaderModel;
use crate::error::Result;
use crate::tower::{BottomTower, Features};
use crate::wire;

/// Predicts as the leader: the followers send the cut outputs of their
/// (aligned) rows; returns the predictions, row-major `rows × outputs`
/// (probabilities for the classification losses). Only the leader learns
/// them.
pub async fn predict_leader(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &LeaderModel,
    features: &Features,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    model.check(cfg)?;
    let hello = cfg.tag(0, "predict-hello");
    for f in &cfg.followers {
        let b = ch.recv(&f.party, &hello).await?;
        let got = wire::decode_u64s(&f.party, &hello, &b, 2)?;
        if got != [features.rows() as u64, f.width as u64] {
            return Err(mismatch(
                &f.party,
                format!(
                    "it predicts {} rows with a cut of {}, the leader {} rows with {}",
                    got[0],
                    got[1],
                    features.rows(),
                    f.width
                ),
            ));
        }
    }
    let cuts = collect_cuts(ch, cfg, model, features, &cfg.tag(0, "predict-emb")).await?;
    let mut out = Vec::with_capacity(features.rows() * model.top.spec().outputs);
    for (_, cut) in cuts {
        let rows = cut.len() / model.top.inputs();
        out.extend(model.top.predict(&cut, rows)?);
    }
    Ok(out)
}

/// Predicts as a follower: sends the cut outputs of its rows; learns
/// nothing.
pub async fn predict_follower(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &BottomTower,
    features: &Features,
) -> Result<()> {
    cfg.validate()?;
    let me = ch.me().clone();
    let k = my_width(cfg, &me, bottom)?;
    ch.send(
        &cfg.leader,
        &cfg.tag(0, "predict-hello"),
        wire::encode_u64s(&[features.rows() as u64, k as u64]),
    )
    .await?;
    send_cuts(ch, cfg, bottom, features, &cfg.tag(0, "predict-emb")).await
}
