//! Message framing of the protocol: every payload is a *blob* streamed in
//! chunks, headers are JSON, vectors are little-endian `f32`.
//!
//! A blob named `n` is sent as message `n` = `[total length: u64 LE][first
//! chunk]`, then messages `n#1`, `n#2`, … with the remaining chunks, all
//! under the same task and round. The receiver checks the declared total
//! against the limit for that message *before* reading further, and every
//! chunk against what remains, so a peer can make it allocate at most the
//! limit. Vectors must have exactly the expected length and be finite.

use std::time::Duration;

use bytes::Bytes;
use fedra_federation::{Channel, FedError, PartyId, Tag};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{HorizontalError, Result};

/// Largest JSON header.
pub(crate) const MAX_HEADER_BYTES: usize = 1 << 20;

/// How a receive ended when it did not produce a valid message.
#[derive(Debug)]
pub(crate) enum RecvError {
    /// The deadline passed.
    Timeout,
    /// The channel failed (peer lost, aborted, finished, …).
    Channel(FedError),
    /// The bytes are invalid.
    Malformed(String),
}

impl RecvError {
    /// A one-line reason for a client failure.
    pub(crate) fn reason(&self) -> String {
        match self {
            RecvError::Timeout => "no answer before the round deadline".into(),
            RecvError::Channel(e) => format!("channel failed: {e} [{}]", e.code()),
            RecvError::Malformed(d) => format!("malformed message: {d}"),
        }
    }

    /// As a [`HorizontalError`].
    pub(crate) fn into_error(self, party: &PartyId, message: &str) -> HorizontalError {
        match self {
            RecvError::Timeout => HorizontalError::Transport {
                party: party.to_string(),
                doing: format!("waiting for '{message}'"),
                code: "fed.timeout",
                detail: "deadline passed".into(),
            },
            RecvError::Channel(e) => HorizontalError::Transport {
                party: party.to_string(),
                doing: format!("waiting for '{message}'"),
                code: e.code(),
                detail: e.to_string(),
            },
            RecvError::Malformed(detail) => HorizontalError::Malformed {
                party: party.to_string(),
                message: message.to_owned(),
                detail,
            },
        }
    }
}

pub(crate) type RecvResult<T> = std::result::Result<T, RecvError>;

fn tag(task: &str, round: u32, name: &str) -> Tag {
    Tag::new(task, u64::from(round), name)
}

/// Sends `data` as blob `name`, in chunks of at most `chunk` bytes.
pub(crate) async fn send_blob(
    ch: &dyn Channel,
    to: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    data: &[u8],
    chunk: usize,
) -> std::result::Result<(), FedError> {
    let chunk = chunk.max(1);
    let first = data.len().min(chunk);
    let mut head = Vec::with_capacity(8 + first);
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    head.extend_from_slice(&data[..first]);
    ch.send(to, &tag(task, round, name), Bytes::from(head))
        .await?;
    for (i, c) in data[first..].chunks(chunk).enumerate() {
        let t = tag(task, round, &format!("{name}#{}", i + 1));
        ch.send(to, &t, Bytes::copy_from_slice(c)).await?;
    }
    Ok(())
}

/// Sends the same blob to several parties (the chunks are shared, not
/// copied); returns each party's outcome.
#[allow(clippy::too_many_arguments)] // the blob's address is task + round + name
pub(crate) async fn broadcast_blob(
    ch: &dyn Channel,
    to: &[PartyId],
    task: &str,
    round: u32,
    name: &str,
    data: &[u8],
    chunk: usize,
    deadline: Duration,
) -> Vec<std::result::Result<(), String>> {
    let chunk = chunk.max(1);
    let first = data.len().min(chunk);
    let mut head = Vec::with_capacity(8 + first);
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    head.extend_from_slice(&data[..first]);
    let head = Bytes::from(head);
    let rest: Vec<Bytes> = data[first..]
        .chunks(chunk)
        .map(Bytes::copy_from_slice)
        .collect();
    let sends = to.iter().map(|p| {
        let head = head.clone();
        let rest = rest.clone();
        async move {
            let all = async {
                ch.send(p, &tag(task, round, name), head).await?;
                for (i, c) in rest.into_iter().enumerate() {
                    ch.send(p, &tag(task, round, &format!("{name}#{}", i + 1)), c)
                        .await?;
                }
                Ok::<(), FedError>(())
            };
            match tokio::time::timeout(deadline, all).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("sending '{name}' failed: {e} [{}]", e.code())),
                Err(_) => Err(format!(
                    "sending '{name}' did not finish before the deadline"
                )),
            }
        }
    });
    futures_util::future::join_all(sends).await
}

/// Receives blob `name` of at most `max` bytes.
pub(crate) async fn recv_blob(
    ch: &dyn Channel,
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    max: usize,
) -> RecvResult<Vec<u8>> {
    let head = ch
        .recv(from, &tag(task, round, name))
        .await
        .map_err(RecvError::Channel)?;
    if head.len() < 8 {
        return Err(RecvError::Malformed(format!(
            "'{name}': {} bytes, shorter than its 8-byte length prefix",
            head.len()
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[..8]);
    let total = u64::from_le_bytes(len);
    if total > max as u64 {
        return Err(RecvError::Malformed(format!(
            "'{name}' declares {total} bytes, more than the limit of {max}"
        )));
    }
    let total = total as usize;
    let first = &head[8..];
    if first.len() > total {
        return Err(RecvError::Malformed(format!(
            "'{name}': first chunk of {} bytes exceeds the declared total {total}",
            first.len()
        )));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(first);
    let mut i = 1;
    while out.len() < total {
        let c = ch
            .recv(from, &tag(task, round, &format!("{name}#{i}")))
            .await
            .map_err(RecvError::Channel)?;
        if c.is_empty() || c.len() > total - out.len() {
            return Err(RecvError::Malformed(format!(
                "'{name}': chunk {i} has {} bytes, {} remain",
                c.len(),
                total - out.len()
            )));
        }
        out.extend_from_slice(&c);
        i += 1;
    }
    Ok(out)
}

/// JSON encoding of a header.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| HorizontalError::Config {
        field: "header",
        reason: format!("cannot encode: {e}"),
    })
}

/// Receives and parses a JSON header.
pub(crate) async fn recv_json<T: DeserializeOwned>(
    ch: &dyn Channel,
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
) -> RecvResult<T> {
    let b = recv_blob(ch, from, task, round, name, MAX_HEADER_BYTES).await?;
    serde_json::from_slice(&b).map_err(|e| RecvError::Malformed(format!("'{name}': {e}")))
}

/// `f32` little-endian bytes.
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Parses exactly `len` finite `f32`s.
pub(crate) fn parse_f32s(name: &str, b: &[u8], len: usize) -> RecvResult<Vec<f32>> {
    if b.len() != len * 4 {
        return Err(RecvError::Malformed(format!(
            "'{name}': {} bytes, expected {} ({len} f32)",
            b.len(),
            len * 4
        )));
    }
    let v: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(RecvError::Malformed(format!(
            "'{name}': value {i} is not finite"
        )));
    }
    Ok(v)
}

/// Receives a vector of exactly `len` finite `f32`s.
pub(crate) async fn recv_f32s(
    ch: &dyn Channel,
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    len: usize,
) -> RecvResult<Vec<f32>> {
    let b = recv_blob(ch, from, task, round, name, len.saturating_mul(4)).await?;
    parse_f32s(name, &b, len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use fedra_federation::mem::MemNetwork;

    use super::*;

    fn pair() -> (
        fedra_federation::mem::MemChannel,
        fedra_federation::mem::MemChannel,
        PartyId,
    ) {
        let (a, b) = (PartyId::new("a").unwrap(), PartyId::new("b").unwrap());
        let mut net = MemNetwork::new("j", &[a.clone(), b.clone()]);
        (net.take(&a).unwrap(), net.take(&b).unwrap(), a)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn blobs_round_trip_in_chunks() {
        rt().block_on(async {
            let (a, b, from) = pair();
            let to = b.me().clone();
            let v: Vec<f32> = (0..3000).map(|i| i as f32 * 0.5).collect();
            send_blob(&a, &to, "t", 1, "v", &f32_bytes(&v), 4096)
                .await
                .unwrap();
            assert_eq!(a.stats()[0].messages_sent, 3);
            let got = recv_f32s(&b, &from, "t", 1, "v", 3000).await.unwrap();
            assert_eq!(got, v);
            // Empty blob.
            send_blob(&a, &to, "t", 1, "e", &[], 4096).await.unwrap();
            assert!(
                recv_blob(&b, &from, "t", 1, "e", 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
        });
    }

    #[test]
    fn bad_blobs_are_malformed_not_panics() {
        rt().block_on(async {
            let (a, b, from) = pair();
            let to = b.me().clone();
            let t = |n: &str| Tag::new("t", 1, n);
            let malformed = |r: RecvResult<Vec<f32>>| matches!(r, Err(RecvError::Malformed(_)));
            // Declared length above the limit: refused before reading on.
            a.send(&to, &t("big"), Bytes::from(u64::MAX.to_le_bytes().to_vec()))
                .await
                .unwrap();
            assert!(malformed(recv_f32s(&b, &from, "t", 1, "big", 4).await));
            // Shorter than the length prefix.
            a.send(&to, &t("short"), Bytes::from_static(b"abc"))
                .await
                .unwrap();
            assert!(malformed(recv_f32s(&b, &from, "t", 1, "short", 4).await));
            // First chunk longer than declared.
            let mut v = 2u64.to_le_bytes().to_vec();
            v.extend_from_slice(&[0; 8]);
            a.send(&to, &t("over"), Bytes::from(v)).await.unwrap();
            assert!(malformed(recv_f32s(&b, &from, "t", 1, "over", 4).await));
            // A later chunk longer than what remains.
            let mut v = 8u64.to_le_bytes().to_vec();
            v.extend_from_slice(&[0; 4]);
            a.send(&to, &t("c"), Bytes::from(v)).await.unwrap();
            a.send(&to, &t("c#1"), Bytes::from_static(&[0; 8]))
                .await
                .unwrap();
            assert!(malformed(recv_f32s(&b, &from, "t", 1, "c", 2).await));
            // Wrong length, NaN.
            send_blob(&a, &to, "t", 1, "len", &f32_bytes(&[1.0; 3]), 64)
                .await
                .unwrap();
            assert!(malformed(recv_f32s(&b, &from, "t", 1, "len", 2).await));
            send_blob(&a, &to, "t", 1, "nan", &f32_bytes(&[1.0, f32::NAN]), 64)
                .await
                .unwrap();
            assert!(malformed(recv_f32s(&b, &from, "t", 1, "nan", 2).await));
            // Bad JSON.
            send_blob(&a, &to, "t", 1, "j", b"{", 64).await.unwrap();
            let r: RecvResult<crate::protocol::HelloMsg> = recv_json(&b, &from, "t", 1, "j").await;
            assert!(matches!(r, Err(RecvError::Malformed(_))));
        });
    }
}
