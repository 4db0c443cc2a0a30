//! One task per client connection: reads frames, tells 4lw commands from a handshake, decodes
//! requests and hands them to the core; writes what the core queues for it, batched.
//!
//! Bad input never reaches the core as a panic: an out-of-range frame length or an
//! undecodable header closes this connection only; an undecodable body is passed on as a
//! fault so the core can answer it as ZooKeeper does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use ferrokeeper_proto::request::{Request, RequestError};
use ferrokeeper_proto::{ConnectRequest, Id, Jute, RequestHeader, frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::shell::{ConnControl, Event, Outbound};
use crate::config::{Config, FOUR_LETTER_WORDS};
use crate::replica::RequestFault;
use crate::tree::ConnId;

/// ZooKeeper's `zookeeper.nio.sessionlessCnxnTimeout`: a connection that sends no
/// ConnectRequest within this time is closed.
const SESSIONLESS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a four-letter-word reply may take before the connection gives up.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A client connection over `S`: a `TcpStream` on the plain port, a TLS stream after the
/// handshake on the secure port (one copy of this code per stream type, no dynamic dispatch).
pub struct Connection<S> {
    id: ConnId,
    stream: S,
    peer: SocketAddr,
    config: Arc<Config>,
    events: mpsc::Sender<Event>,
    input: BytesMut,
    /// Ids the TLS handshake gave the connection (`x509`), handed to the core with the
    /// ConnectRequest.
    auth: Vec<Id>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    pub fn new(
        id: ConnId,
        stream: S,
        peer: SocketAddr,
        config: Arc<Config>,
        events: mpsc::Sender<Event>,
    ) -> Connection<S> {
        Connection {
            id,
            stream,
            peer,
            config,
            events,
            input: BytesMut::with_capacity(8 * 1024),
            auth: Vec::new(),
        }
    }

    /// The ids the connection starts with besides `ip` (from its client certificate).
    pub fn with_auth(mut self, auth: Vec<Id>) -> Connection<S> {
        self.auth = auth;
        self
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let outcome = tokio::select! {
            outcome = self.serve() => outcome,
            _ = shutdown.changed() => Ok(()),
        };
        if let Err(reason) = outcome {
            tracing::debug!(conn = self.id, peer = %self.peer, %reason, "connection closed");
        }
        let _ = self.events.send(Event::Closed { conn: self.id }).await;
    }

    async fn serve(&mut self) -> Result<(), String> {
        // The first four bytes are either a four-letter word or the handshake's length.
        let read = tokio::time::timeout(SESSIONLESS_TIMEOUT, self.fill(4)).await;
        match read {
            Err(_) => return Err("no ConnectRequest within the sessionless timeout".into()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        if let Ok(word) = std::str::from_utf8(&self.input[..4])
            && FOUR_LETTER_WORDS.contains(&word)
        {
            let word = word.to_owned();
            return self.four_letter(word).await;
        }
        let payload = tokio::time::timeout(SESSIONLESS_TIMEOUT, self.read_frame())
            .await
            .map_err(|_| "no ConnectRequest within the sessionless timeout".to_string())??;
        let request = ConnectRequest::decode(&payload).map_err(|e| format!("bad ConnectRequest: {e}"))?;
        let (outbound_tx, outbound_rx) = mpsc::channel(self.config.connection_outbound_queue_max.max(1));
        let control = Arc::new(ConnControl::default());
        let event = Event::Connect {
            conn: self.id,
            peer: self.peer,
            request,
            outbound: outbound_tx,
            control: control.clone(),
            auth: std::mem::take(&mut self.auth),
        };
        self.events.send(event).await.map_err(|_| "server stopping".to_string())?;
        self.established(outbound_rx, control).await
    }

    async fn established(
        &mut self,
        mut outbound: mpsc::Receiver<Outbound>,
        control: Arc<ConnControl>,
    ) -> Result<(), String> {
        let mut output = BytesMut::new();
        loop {
            tokio::select! {
                read = self.stream.read_buf(&mut self.input) => {
                    match read {
                        Ok(0) => return Err("client closed the connection".into()),
                        Ok(_) => self.dispatch_frames().await?,
                        Err(e) => return Err(format!("read failed: {e}")),
                    }
                }
                _ = control.abort.notified() => return Err("cut off: the client stopped reading".into()),
                message = outbound.recv() => {
                    let mut close = false;
                    let mut next = message;
                    // Coalesce everything already queued into one write.
                    loop {
                        match next {
                            Some(Outbound::Data(bytes)) => output.extend_from_slice(&bytes),
                            Some(Outbound::Close) | None => { close = true; break; }
                        }
                        match outbound.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(_) => break,
                        }
                    }
                    if !output.is_empty() {
                        tokio::select! {
                            written = self.stream.write_all(&output) => {
                                written.map_err(|e| format!("write failed: {e}"))?;
                            }
                            _ = control.abort.notified() => return Err("cut off: the client stopped reading".into()),
                        }
                        control.queued_bytes.fetch_sub(output.len(), std::sync::atomic::Ordering::AcqRel);
                        output.clear();
                    }
                    if close {
                        let _ = self.stream.shutdown().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Hands every whole frame in the input buffer to the core.
    async fn dispatch_frames(&mut self) -> Result<(), String> {
        let received = Instant::now();
        while let Some(length) =
            frame::check(&self.input, self.config.max_buffer_bytes).map_err(|e| e.to_string())?
        {
            self.input.advance(4);
            let payload = self.input.split_to(length).freeze();
            let header = RequestHeader::decode(&payload).map_err(|e| format!("bad request header: {e}"))?;
            let body = &payload[8..];
            let request = match Request::decode(header.op, body) {
                Ok(request) => Ok(request),
                Err(RequestError::UnknownOp(_)) => Err(RequestFault::UnknownOp),
                Err(RequestError::Malformed { source, .. }) => {
                    tracing::warn!(conn = self.id, op = header.op, %source, "malformed request");
                    Err(RequestFault::Malformed)
                }
            };
            let event = Event::Request { conn: self.id, xid: header.xid, op: header.op, request, received };
            self.events.send(event).await.map_err(|_| "server stopping".to_string())?;
        }
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Bytes, String> {
        loop {
            if let Some(length) =
                frame::check(&self.input, self.config.max_buffer_bytes).map_err(|e| e.to_string())?
            {
                self.input.advance(4);
                return Ok(self.input.split_to(length).freeze());
            }
            let n = self.stream.read_buf(&mut self.input).await.map_err(|e| format!("read failed: {e}"))?;
            if n == 0 {
                return Err("client closed the connection during the handshake".into());
            }
        }
    }

    async fn fill(&mut self, wanted: usize) -> Result<(), String> {
        while self.input.len() < wanted {
            let n = self.stream.read_buf(&mut self.input).await.map_err(|e| format!("read failed: {e}"))?;
            if n == 0 {
                return Err("client closed the connection".into());
            }
        }
        Ok(())
    }

    async fn four_letter(&mut self, word: String) -> Result<(), String> {
        let text = if !self.config.four_letter_whitelist.contains(&word) {
            format!("{word} is not executed because it is not in the whitelist.\n")
        } else {
            if word == "stmk" {
                // stmk carries the new trace mask as an 8-byte long.
                let _ = tokio::time::timeout(FOUR_LETTER_TIMEOUT, self.fill(12)).await;
            }
            let (reply, answer) = oneshot::channel();
            self.events
                .send(Event::FourLetter { word, reply })
                .await
                .map_err(|_| "server stopping".to_string())?;
            match tokio::time::timeout(FOUR_LETTER_TIMEOUT, answer).await {
                Ok(Ok(text)) => text,
                _ => "This ZooKeeper instance is not currently serving requests\n".to_owned(),
            }
        };
        self.stream.write_all(text.as_bytes()).await.map_err(|e| format!("write failed: {e}"))?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}
