//! The receiving side: TLS accept loop, peer identification, and the gRPC service.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use fedra_federation::inbox::Delivery;
use fedra_federation::{Failure, FedError, PartyId, Tag};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use crate::counting::{Counted, WireCount};
use crate::tls::{PeerIdentity, describe, identify};
use crate::wire::federation_server::{Federation, FederationServer};
use crate::wire::{Ack, Frame, SignalRequest, signal_request};
use crate::{Shared, lock};

/// Longest task, message or job name accepted on the wire.
const MAX_NAME: usize = 256;
/// Longest failure message accepted from a peer.
const MAX_FAILURE_TEXT: usize = 4096;

/// What the service knows about the connection a request arrived on.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    addr: SocketAddr,
    identity: PeerIdentity,
}

/// An accepted, authenticated connection.
pub(crate) struct PeerStream {
    io: TlsStream<Counted<TcpStream>>,
    info: ConnInfo,
}

impl Connected for PeerStream {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Starts the accept loop and the gRPC server; `stop` shuts both down.
pub(crate) fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    stop: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::unbounded_channel::<Result<PeerStream, io::Error>>();
    let acceptor = TlsAcceptor::from(tls);
    let accept_shared = shared.clone();
    let accept_loop = tokio::spawn(async move {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, shared, tx) = (acceptor.clone(), accept_shared.clone(), tx.clone());
            tokio::spawn(async move {
                let count = Arc::new(WireCount::default());
                let hs = tokio::time::timeout(
                    shared.timing.handshake_timeout,
                    acceptor.accept(Counted::new(tcp, count.clone())),
                )
                .await;
                let tls = match hs {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        let why = crate::tls::find_rustls_error(&e)
                            .map(describe)
                            .unwrap_or_else(|| e.to_string());
                        shared.refuse(format!("TLS connection from {addr}: {why}"));
                        return;
                    }
                    Err(_) => {
                        shared.refuse(format!("TLS connection from {addr}: handshake timed out"));
                        return;
                    }
                };
                let identity = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    Some(cert) => identify(cert, &shared.peers),
                    // Unreachable with a verifier that requires client certificates.
                    None => PeerIdentity::Stranger(Vec::new()),
                };
                match &identity {
                    PeerIdentity::Party(p) => lock(&shared.wires).push((p.clone(), count)),
                    PeerIdentity::Stranger(names)
                        if names.iter().any(|n| n == shared.me.as_str()) =>
                    {
                        shared.refuse(format!(
                            "connection from {addr} presents this party's own certificate ('{}'): another process is using this party's key, or a peer's address points back at this party",
                            shared.me
                        ))
                    }
                    PeerIdentity::Stranger(names) => shared.refuse(format!(
                        "connection from {addr}: its certificate is for {}, which is no party of job '{}'",
                        if names.is_empty() { "no name".to_owned() } else { names.join(", ") },
                        shared.job
                    )),
                }
                let _ = tx.send(Ok(PeerStream {
                    io: tls,
                    info: ConnInfo { addr, identity },
                }));
            });
        }
    });

    let service = FederationServer::new(Service {
        shared: shared.clone(),
    })
    .max_decoding_message_size(shared.chunk_bytes + (64 << 10));
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(16 << 20)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
            .add_service(service)
            .serve_with_incoming_shutdown(UnboundedReceiverStream::new(rx), async {
                let _ = stop.await;
            })
            .await;
        accept_loop.abort();
        if let Err(e) = served {
            tracing::error!("gRPC server stopped: {e}");
        }
    })
}

struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// Authenticates a request: the connection's certificate must name a party of the
    /// job, the same party the request claims to come from, for this job.
    fn sender<T>(&self, req: &Request<T>, job: &str, claimed: &str) -> Result<PartyId, Status> {
        let Some(info) = req.extensions().get::<ConnInfo>() else {
            return Err(Status::unauthenticated("no authenticated connection"));
        };
        let sh = &self.shared;
        let party = match &info.identity {
            PeerIdentity::Stranger(names) => {
                let msg = format!(
                    "your certificate names {names:?}, which is not a party of job '{}' (expected one of {:?})",
                    sh.job, sh.peers
                );
                return Err(Status::permission_denied(msg));
            }
            PeerIdentity::Party(p) => p.clone(),
        };
        if job != sh.job {
            let job: String = job.chars().take(MAX_NAME).collect();
            sh.refuse(format!(
                "message from '{party}' ({}) for job '{job}'; this party runs job '{}'",
                info.addr, sh.job
            ));
            return Err(Status::failed_precondition(format!(
                "party '{}' runs job '{}', not job '{job}'",
                sh.me, sh.job
            )));
        }
        if claimed != party.as_str() {
            let claimed: String = claimed.chars().take(MAX_NAME).collect();
            sh.refuse(format!(
                "connection authenticated as '{party}' claimed to be '{claimed}'"
            ));
            return Err(Status::permission_denied(format!(
                "your certificate identifies party '{party}', but the message claims sender '{claimed}'"
            )));
        }
        sh.touch(&party);
        Ok(party)
    }

    fn malformed(&self, from: &PartyId, detail: String) -> Status {
        self.shared
            .refuse(format!("malformed message from '{from}': {detail}"));
        Status::invalid_argument(detail)
    }
}

/// The status a refused delivery answers with: over the queue limit is "resource
/// exhausted", a task the job lacks a failed precondition.
fn inbox_refusal(e: &FedError) -> Status {
    match e {
        FedError::QueueFull { .. } => Status::resource_exhausted(e.to_string()),
        _ => Status::failed_precondition(e.to_string()),
    }
}

#[tonic::async_trait]
impl Federation for Service {
    async fn deliver(&self, req: Request<Streaming<Frame>>) -> Result<Response<Ack>, Status> {
        // The identity check needs the header, which is in the first frame.
        let (meta, ext, mut stream) = req.into_parts();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty message stream"))?;
        let Some(h) = first.header else {
            return Err(Status::invalid_argument("first frame has no header"));
        };
        let probe = Request::from_parts(meta, ext, ());
        let from = self.sender(&probe, &h.job, &h.sender)?;
        if h.task.is_empty()
            || h.task.len() > MAX_NAME
            || h.name.is_empty()
            || h.name.len() > MAX_NAME
        {
            return Err(self.malformed(
                &from,
                format!("task and message names must be 1..={MAX_NAME} bytes"),
            ));
        }
        let tag = Tag::new(&h.task, h.round, &h.name);
        let max = self.shared.max_message_bytes;
        if h.length > max {
            let e = FedError::TooLarge {
                party: from.to_string(),
                tag: tag.to_string(),
                size: h.length,
                max,
            };
            self.shared.refuse(e.to_string());
            return Err(Status::resource_exhausted(e.to_string()));
        }
        // Before buffering the body: is this a task the job has, and may this peer
        // make us hold this many more bytes? (A refusal also fails the job.)
        if let Err(e) = self.shared.inbox.admit(&from, &tag, h.length) {
            self.shared.refuse(e.to_string());
            return Err(inbox_refusal(&e));
        }
        let declared = h.length as usize;
        let payload: Bytes = if first.data.len() == declared {
            // Single-frame message: keep the decoded buffer, no copy.
            if stream.message().await?.is_some() {
                return Err(
                    self.malformed(&from, format!("more than the declared {declared} bytes"))
                );
            }
            first.data
        } else {
            // Reserve what was declared (already checked against the limit) but not
            // more than 64 MiB up front, so a lying header cannot reserve memory.
            let mut buf = BytesMut::with_capacity(declared.min(64 << 20));
            let mut next = Some(first.data);
            while let Some(data) = next {
                if buf.len() + data.len() > declared {
                    return Err(
                        self.malformed(&from, format!("more than the declared {declared} bytes"))
                    );
                }
                buf.extend_from_slice(&data);
                next = match stream.message().await? {
                    None => None,
                    Some(f) if f.header.is_some() => {
                        return Err(self.malformed(&from, "header in a continuation frame".into()));
                    }
                    Some(f) => Some(f.data),
                };
            }
            if buf.len() != declared {
                return Err(self.malformed(
                    &from,
                    format!("stream ended after {} of {declared} bytes", buf.len()),
                ));
            }
            buf.freeze()
        };
        let delivery = self
            .shared
            .inbox
            .deliver(&from, h.seq, tag, payload)
            .map_err(|e| inbox_refusal(&e))?;
        Ok(Response::new(Ack {
            duplicate: delivery == Delivery::Duplicate,
        }))
    }

    async fn signal(&self, req: Request<SignalRequest>) -> Result<Response<Ack>, Status> {
        let from = self.sender(&req, &req.get_ref().job, &req.get_ref().sender)?;
        match req.into_inner().kind {
            Some(signal_request::Kind::Heartbeat(_)) => {}
            Some(signal_request::Kind::Done(_)) => {
                tracing::info!("party '{from}' finished the job");
                self.shared.inbox.mark_finished(&from);
            }
            Some(signal_request::Kind::Abort(a)) => {
                let clip = |s: String, n: usize| s.chars().take(n).collect::<String>();
                self.shared.inbox.fail_peer(
                    &from,
                    FedError::PeerFailed(Failure {
                        party: from.to_string(),
                        task: clip(a.task, MAX_NAME),
                        round: a.round,
                        code: clip(a.code, MAX_NAME),
                        message: clip(a.message, MAX_FAILURE_TEXT),
                    }),
                );
            }
            None => return Err(self.malformed(&from, "signal without a kind".into())),
        }
        Ok(Response::new(Ack { duplicate: false }))
    }
}
