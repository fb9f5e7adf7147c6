//! Message framing of the protocol: every payload is a *blob* streamed in
//! chunks, headers are JSON, vectors are little-endian `f32`; the binary
//! parts (length prefix, vectors) are written and read with
//! [`fedra_federation::codec`].
//!
//! A blob named `n` is sent as message `n` = `[total length: u64 LE][first
//! chunk]`, then messages `n#1`, `n#2`, … with the remaining chunks, all
//! under the same task and round. The receiver checks the declared total
//! against the limit for that message *before* reading further, and every
//! chunk against what remains, so a peer can make it allocate at most the
//! limit. Vectors must have exactly the expected length and be finite.
//! A malformed message is a [`FedError::Decode`] naming the sender and the
//! tag ([`FedError::malformed`]); its detail describes the problem, never
//! the peer's values.

use std::fmt::Display;
use std::time::Duration;

use bytes::Bytes;
use fedra_federation::codec::{Reader, Writer};
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
    /// The bytes are invalid: a [`FedError::Decode`] naming the sender and
    /// the tag.
    Malformed(FedError),
}

impl RecvError {
    /// A one-line reason for a client failure.
    pub(crate) fn reason(&self) -> String {
        match self {
            RecvError::Timeout => "no answer before the round deadline".into(),
            RecvError::Channel(e) => format!("channel failed: {e} [{}]", e.code()),
            RecvError::Malformed(e) => format!("malformed message: {e}"),
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
            RecvError::Malformed(e) => HorizontalError::Malformed {
                party: party.to_string(),
                message: message.to_owned(),
                detail: match e {
                    FedError::Decode { detail, .. } => detail,
                    other => other.to_string(),
                },
            },
        }
    }
}

/// Peer `from` sent something malformed as message `name` of `round`
/// (`detail` describes the problem, never the peer's values).
pub(crate) fn malformed(
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    detail: impl Display,
) -> RecvError {
    RecvError::Malformed(FedError::malformed(from, &tag(task, round, name), detail))
}

pub(crate) type RecvResult<T> = std::result::Result<T, RecvError>;

fn tag(task: &str, round: u32, name: &str) -> Tag {
    Tag::new(task, u64::from(round), name)
}

/// The first message of a blob: the total length, then the first `first`
/// bytes.
fn blob_head(data: &[u8], first: usize) -> Bytes {
    let mut w = Writer::with_capacity(8 + first);
    w.u64(data.len() as u64).raw(&data[..first]);
    w.into_bytes()
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
    ch.send(to, &tag(task, round, name), blob_head(data, first))
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
    let head = blob_head(data, first);
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
    let mut out = Vec::new();
    recv_blob_with(ch, from, task, round, name, max, |total, c| {
        out.reserve_exact(total.saturating_sub(out.len()));
        out.extend_from_slice(&c);
    })
    .await?;
    Ok(out)
}

/// Receives blob `name` of at most `max` bytes, handing each chunk to
/// `sink(total, chunk)` as it arrives (so large vectors are decoded once,
/// straight from the transport's buffers).
#[allow(clippy::too_many_arguments)] // the blob's address is task + round + name
async fn recv_blob_with(
    ch: &dyn Channel,
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    max: usize,
    mut sink: impl FnMut(usize, Bytes),
) -> RecvResult<()> {
    let t = tag(task, round, name);
    let head = ch.recv(from, &t).await.map_err(RecvError::Channel)?;
    let mut r = Reader::new(&head);
    let total = r
        .u64()
        .map_err(|e| RecvError::Malformed(e.from_peer(from, &t)))?;
    if total > max as u64 {
        return Err(malformed(
            from,
            task,
            round,
            name,
            format!("declares {total} bytes, more than the limit of {max}"),
        ));
    }
    let total = total as usize;
    let first = head.slice(r.position()..);
    if first.len() > total {
        return Err(malformed(
            from,
            task,
            round,
            name,
            format!(
                "first chunk of {} bytes exceeds the declared total {total}",
                first.len()
            ),
        ));
    }
    let mut have = first.len();
    sink(total, first);
    let mut i = 1;
    while have < total {
        let c = ch
            .recv(from, &tag(task, round, &format!("{name}#{i}")))
            .await
            .map_err(RecvError::Channel)?;
        if c.is_empty() || c.len() > total - have {
            return Err(malformed(
                from,
                task,
                round,
                name,
                format!("chunk {i} has {} bytes, {} remain", c.len(), total - have),
            ));
        }
        have += c.len();
        sink(total, c);
        i += 1;
    }
    Ok(())
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
    serde_json::from_slice(&b).map_err(|e| malformed(from, task, round, name, json_detail(&e)))
}

/// What is wrong with a JSON header, without quoting it (serde_json's own
/// messages repeat the offending values and field names).
fn json_detail(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape for this header",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} (at line {}, column {})", e.line(), e.column())
}

/// `f32` little-endian bytes.
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut w = Writer::with_capacity(v.len() * 4);
    w.f32s(v);
    w.into_vec()
}

/// Receives blob `name` of at most `max` bytes as the transport's chunks
/// (no copy).
pub(crate) async fn recv_chunks(
    ch: &dyn Channel,
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    max: usize,
) -> RecvResult<Vec<Bytes>> {
    let mut chunks = Vec::new();
    recv_blob_with(ch, from, task, round, name, max, |_, c| chunks.push(c)).await?;
    Ok(chunks)
}

/// Decodes a little-endian `f32` vector chunk by chunk as it arrives (chunk
/// boundaries need not fall on a value), checking that every value is
/// finite while the chunk is still in cache: one allocation and one pass
/// per vector, which is most of a plain FedAvg server's work.
///
/// ```
/// use fedra_horizontal::protocol::F32Decoder;
/// let bytes: Vec<u8> = [1.5f32, -2.0, 0.25].iter().flat_map(|x| x.to_le_bytes()).collect();
/// let mut d = F32Decoder::new(3);
/// d.push(&bytes[..5]);
/// d.push(&bytes[5..]);
/// assert_eq!(d.finish(), Ok(vec![1.5, -2.0, 0.25]));
/// ```
#[derive(Debug)]
pub struct F32Decoder {
    out: Vec<f32>,
    expected: usize,
    carry: [u8; 4],
    carried: usize,
    bytes: usize,
    first_bad: Option<usize>,
}

/// Why [`F32Decoder::finish`] refused a vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum F32Error {
    /// The byte count is not `4 · expected`.
    Length {
        /// Bytes received.
        bytes: usize,
        /// Values expected.
        expected: usize,
    },
    /// Value `index` is NaN or infinite.
    NotFinite {
        /// Its position.
        index: usize,
    },
}

impl std::fmt::Display for F32Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            F32Error::Length { bytes, expected } => {
                write!(
                    f,
                    "{bytes} bytes, expected {} ({expected} f32)",
                    expected * 4
                )
            }
            F32Error::NotFinite { index } => write!(f, "value {index} is not finite"),
        }
    }
}

impl F32Decoder {
    /// A decoder for `expected` values (the memory is reserved as the first
    /// bytes arrive, never beyond `expected`).
    pub fn new(expected: usize) -> Self {
        F32Decoder {
            out: Vec::new(),
            expected,
            carry: [0; 4],
            carried: 0,
            bytes: 0,
            first_bad: None,
        }
    }

    /// A decoder writing into `buf` (cleared; its memory is reused, so a
    /// server decoding update after update does not fault in fresh pages
    /// for each).
    pub fn with_buffer(mut buf: Vec<f32>, expected: usize) -> Self {
        buf.clear();
        let mut d = F32Decoder::new(expected);
        d.out = buf;
        d
    }

    /// Appends the values in `b` (and a value split across the previous chunk).
    pub fn push(&mut self, mut b: &[u8]) {
        self.bytes = self.bytes.saturating_add(b.len());
        if self.bytes > self.expected.saturating_mul(4) {
            return; // refused in `finish`; never grow beyond `expected`
        }
        if self.out.capacity() < self.expected {
            self.out.reserve_exact(self.expected - self.out.len());
        }
        let start = self.out.len();
        if self.carried > 0 {
            let take = (4 - self.carried).min(b.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&b[..take]);
            self.carried += take;
            b = &b[take..];
            if self.carried < 4 {
                return; // `b` was shorter than the split value's remainder
            }
            self.out.push(f32::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let whole = b.len() / 4 * 4;
        self.out.extend(
            b[..whole]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        let rest = &b[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
        if self.first_bad.is_none() {
            let new = &self.out[start..];
            // Branch-free scan first (vectorises); locate only on failure.
            if !new.iter().fold(true, |ok, x| ok & x.is_finite()) {
                self.first_bad = new.iter().position(|x| !x.is_finite()).map(|i| start + i);
            }
        }
    }

    /// The vector, if it has exactly `expected` values, all finite.
    pub fn finish(self) -> std::result::Result<Vec<f32>, F32Error> {
        if self.bytes != self.expected.saturating_mul(4) {
            return Err(F32Error::Length {
                bytes: self.bytes,
                expected: self.expected,
            });
        }
        match self.first_bad {
            Some(index) => Err(F32Error::NotFinite { index }),
            None => Ok(self.out),
        }
    }
}

/// Receives a vector of exactly `len` finite `f32`s, decoding each chunk as
/// it arrives.
pub(crate) async fn recv_f32s(
    ch: &dyn Channel,
    from: &PartyId,
    task: &str,
    round: u32,
    name: &str,
    len: usize,
) -> RecvResult<Vec<f32>> {
    let mut d = F32Decoder::new(len);
    recv_blob_with(
        ch,
        from,
        task,
        round,
        name,
        len.saturating_mul(4),
        |_, c| d.push(&c),
    )
    .await?;
    d.finish()
        .map_err(|e| malformed(from, task, round, name, e))
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
    fn decoder_splits_anywhere_and_refuses_bad_vectors() {
        let v: Vec<f32> = (0..37).map(|i| i as f32 * -0.75 + 0.1).collect();
        let b = f32_bytes(&v);
        for cut in [1usize, 2, 3, 5, 7, 64] {
            let mut d = F32Decoder::new(v.len());
            for c in b.chunks(cut) {
                d.push(c);
            }
            assert_eq!(d.finish().unwrap(), v, "chunks of {cut}");
        }
        let mut d = F32Decoder::new(v.len());
        d.push(&b[..b.len() - 1]);
        assert!(matches!(d.finish(), Err(F32Error::Length { .. })));
        let mut d = F32Decoder::new(2);
        d.push(&b); // more than expected: refused, never stored
        assert!(matches!(d.finish(), Err(F32Error::Length { .. })));
        let mut bad = v.clone();
        bad[20] = f32::INFINITY;
        let mut d = F32Decoder::new(v.len());
        for c in f32_bytes(&bad).chunks(6) {
            d.push(c);
        }
        assert_eq!(d.finish(), Err(F32Error::NotFinite { index: 20 }));
    }

    #[test]
    fn bad_blobs_are_malformed_not_panics() {
        rt().block_on(async {
            let (a, b, from) = pair();
            let to = b.me().clone();
            let t = |n: &str| Tag::new("t", 1, n);
            // Every refusal is a `fed.decode` error naming the sender and the tag.
            let malformed = |r: RecvResult<Vec<f32>>| {
                matches!(r, Err(RecvError::Malformed(ref e))
                    if e.code() == "fed.decode" && e.party() == Some("a")
                        && e.to_string().contains("t/1/"))
            };
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
            // A header of the wrong shape: refused without quoting the peer's values.
            send_blob(&a, &to, "t", 1, "k", br#"{"num_examples":"secret-7"}"#, 64)
                .await
                .unwrap();
            let r: RecvResult<crate::protocol::HelloMsg> = recv_json(&b, &from, "t", 1, "k").await;
            let reason = r.unwrap_err().reason();
            assert!(
                reason.contains("wrong shape") && !reason.contains("secret-7"),
                "{reason}"
            );
        });
    }
}
