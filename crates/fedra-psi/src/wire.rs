//! Shared plumbing: running CPU work off the async thread, batched sends and
//! length-checked receives, count messages, id de-duplication.
//!
//! Messages are encoded with `fedra_federation::codec` (little-endian); a malformed
//! one is a [`FedError::Decode`] naming the peer and the tag
//! ([`FedError::malformed`], `CodecError::from_peer`).

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::task::Poll;

use bytes::Bytes;
use fedra_federation::codec::{Reader, Writer};
use fedra_federation::{Channel, FedError, PartyId, Tag};

use crate::PsiStats;
use crate::error::PsiError;

/// Runs `f` on the rayon pool (where it may use `par_iter`) and awaits its result, so
/// curve and RSA work never blocks the async executor that drives the channel.
/// Works with any executor (the wake-up is a `tokio::sync::oneshot`, which needs no
/// runtime).
pub(crate) async fn offload<R, F>(f: F) -> Result<R, PsiError>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let r = std::panic::catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(_)) => Err(PsiError::Internal {
            detail: "a PSI worker thread panicked".into(),
        }),
        Err(_) => Err(PsiError::Internal {
            detail: "a PSI worker thread vanished".into(),
        }),
    }
}

/// Drives three fallible futures concurrently on the current task (no runtime
/// needed) and returns their outputs once all have finished, or the first error as
/// soon as one fails (the others are then dropped, which cancels them).
pub(crate) async fn try_join3<A, B, C, TA, TB, TC>(
    a: A,
    b: B,
    c: C,
) -> Result<(TA, TB, TC), PsiError>
where
    A: Future<Output = Result<TA, PsiError>>,
    B: Future<Output = Result<TB, PsiError>>,
    C: Future<Output = Result<TC, PsiError>>,
{
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(r) = a.as_mut().poll(cx)
        {
            ra = Some(r?);
        }
        if rb.is_none()
            && let Poll::Ready(r) = b.as_mut().poll(cx)
        {
            rb = Some(r?);
        }
        if rc.is_none()
            && let Poll::Ready(r) = c.as_mut().poll(cx)
        {
            rc = Some(r?);
        }
        if ra.is_some() && rb.is_some() && rc.is_some() {
            Poll::Ready(Ok::<(), PsiError>(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    match (ra, rb, rc) {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(PsiError::Internal {
            detail: "a joined PSI step finished without a result".into(),
        }),
    }
}

/// Sends `payload` and counts it in `stats`.
pub(crate) async fn send(
    ch: &dyn Channel,
    to: &PartyId,
    tag: &Tag,
    payload: Vec<u8>,
    stats: &mut PsiStats,
) -> Result<(), PsiError> {
    stats.bytes_sent += payload.len() as u64;
    stats.messages_sent += 1;
    ch.send(to, tag, Bytes::from(payload)).await?;
    Ok(())
}

/// Receives a message that must be exactly `len` bytes long.
pub(crate) async fn recv_exact(
    ch: &dyn Channel,
    from: &PartyId,
    tag: &Tag,
    len: usize,
) -> Result<Bytes, PsiError> {
    let b = ch.recv(from, tag).await?;
    if b.len() != len {
        return Err(FedError::malformed(
            from,
            tag,
            format_args!("expected {len} bytes, got {}", b.len()),
        )
        .into());
    }
    Ok(b)
}

/// Receives a batch that must hold exactly `items` fixed-width items of `width` bytes.
pub(crate) async fn recv_items(
    ch: &dyn Channel,
    from: &PartyId,
    tag: &Tag,
    items: usize,
    width: usize,
) -> Result<Bytes, PsiError> {
    let b = ch.recv(from, tag).await?;
    if b.len() % width != 0 {
        return Err(FedError::malformed(
            from,
            tag,
            format_args!(
                "length {} is not a multiple of the {width}-byte item size",
                b.len()
            ),
        )
        .into());
    }
    if b.len() / width != items {
        return Err(FedError::malformed(
            from,
            tag,
            format_args!("expected {items} items, got {}", b.len() / width),
        )
        .into());
    }
    Ok(b)
}

/// A count message: one `u64`.
pub(crate) fn count_msg(n: u64) -> Vec<u8> {
    let mut w = Writer::with_capacity(8);
    w.u64(n);
    w.into_vec()
}

/// Receives a count message ([`count_msg`]).
pub(crate) async fn recv_count(
    ch: &dyn Channel,
    from: &PartyId,
    tag: &Tag,
) -> Result<u64, PsiError> {
    let b = recv_exact(ch, from, tag, 8).await?;
    let mut r = Reader::new(&b);
    let n = r.u64().map_err(|e| e.from_peer(from, tag))?;
    r.finish().map_err(|e| e.from_peer(from, tag))?;
    Ok(n)
}

/// The distinct ids, in first-occurrence order.
pub(crate) fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
