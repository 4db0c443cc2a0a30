//! Server-to-server links: every pair of ensemble members keeps one TCP connection on the
//! quorum port, dialed by the member with the larger id (ZooKeeper's rule for election
//! connections, which avoids two crossing connections). Frames are opaque (`u32 length |
//! bytes`); the first frame on a connection is the dialer's id. Delivery is best effort: while
//! a link is down, messages to that peer are dropped, which the consensus protocol tolerates
//! (it retransmits on its own schedule). The end of an established connection (EOF, reset,
//! write error, replaced by a newer one) is reported as [`Incoming::LinkDown`], after every
//! message received on it, so the replica reacts at once instead of waiting out a timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::tls::QuorumTls;

/// A link's byte stream: TCP, or TLS over it with `sslQuorum` (one copy of the link code per
/// stream type, as the client port's connections). A plain link splits without a lock; a TLS
/// link's halves share its state.
pub trait LinkStream: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    type Reader: AsyncRead + Unpin + Send;
    type Writer: AsyncWrite + Unpin + Send;
    fn split_link(self) -> (Self::Reader, Self::Writer);
}

impl LinkStream for TcpStream {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = tokio::net::tcp::OwnedWriteHalf;
    fn split_link(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

impl LinkStream for tokio_rustls::client::TlsStream<TcpStream> {
    type Reader = tokio::io::ReadHalf<Self>;
    type Writer = tokio::io::WriteHalf<Self>;
    fn split_link(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

impl LinkStream for tokio_rustls::server::TlsStream<TcpStream> {
    type Reader = tokio::io::ReadHalf<Self>;
    type Writer = tokio::io::WriteHalf<Self>;
    fn split_link(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

/// The accepted links by peer: each task hands its outbound queue back when it ends.
type Links = HashMap<u64, (tokio::task::JoinHandle<mpsc::Receiver<Bytes>>, watch::Sender<bool>)>;

/// Largest frame between servers. A larger message (the SNAP of a big tree: ~250 MB at 1 M
/// znodes) travels as pieces of at most this size: each piece but the last has
/// [`PIECE_FOLLOWS`] set in its length; the receiver joins them into one message.
pub const PEER_FRAME_MAX: usize = 64 * 1024 * 1024;
/// The length bit that marks a piece of a message continued by the next frame.
const PIECE_FOLLOWS: u32 = 0x8000_0000;
/// Largest message a peer may send in pieces (a sanity bound far above any snapshot).
const PEER_MESSAGE_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// Messages queued towards one peer before new ones are dropped.
const PEER_QUEUE_MAX: usize = 16 * 1024;
const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The first byte of a TLS connection (a handshake record), told apart from a plain peer's
/// first frame under `portUnification`.
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// Sends to peers; cheap to clone.
#[derive(Clone, Default)]
pub struct PeerSender {
    queues: HashMap<u64, mpsc::Sender<Bytes>>,
}

impl PeerSender {
    /// Queues `message` for `to`; false if the peer is unknown or its queue is full.
    pub fn send(&self, to: u64, message: Bytes) -> bool {
        self.queues.get(&to).is_some_and(|q| q.try_send(message).is_ok())
    }
}

/// What the links deliver to the replica.
#[derive(Debug)]
pub enum Incoming {
    /// A message from a peer.
    Message { from: u64, message: Bytes },
    /// The connection with `from` ended (after its last message).
    LinkDown { from: u64 },
}

/// Starts the links of server `my_id`: listens on `listen`, dials every peer with a smaller id
/// at its (host, port), resolving the host at every attempt, accepts peers with larger ids;
/// with `tls` every link is mutual TLS. Returns the sender and the stream of incoming messages.
pub async fn start(
    my_id: u64,
    listen: SocketAddr,
    peers: HashMap<u64, (String, u16)>,
    shutdown: watch::Receiver<bool>,
    tls: Option<QuorumTls>,
) -> std::io::Result<(PeerSender, mpsc::Receiver<Incoming>)> {
    let listener = TcpListener::bind(listen).await?;
    let (incoming_tx, incoming) = mpsc::channel(PEER_QUEUE_MAX);
    let mut queues = HashMap::new();
    let mut outbound_for_accepted = HashMap::new();
    for (&id, addr) in &peers {
        if id == my_id {
            continue;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
        queues.insert(id, tx);
        if id < my_id {
            let link = Dialer { my_id, peer: id, tls: tls.clone() };
            tokio::spawn(link.run(addr.clone(), rx, incoming_tx.clone(), shutdown.clone()));
        } else {
            outbound_for_accepted.insert(id, rx);
        }
    }
    tokio::spawn(accept_loop(listener, outbound_for_accepted, incoming_tx, shutdown, tls));
    Ok((PeerSender { queues }, incoming))
}

/// The dialing end of one peer's link.
struct Dialer {
    my_id: u64,
    peer: u64,
    tls: Option<QuorumTls>,
}

impl Dialer {
    async fn run(
        self,
        (host, port): (String, u16),
        mut outbound: mpsc::Receiver<Bytes>,
        incoming: mpsc::Sender<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let peer = self.peer;
        let mut backoff = Duration::from_millis(20);
        loop {
            let connected = tokio::select! {
                connected = TcpStream::connect((host.as_str(), port)) => connected,
                _ = shutdown.changed() => return,
            };
            let addr = format!("{host}:{port}");
            match connected {
                Ok(stream) => {
                    let connected_at = tokio::time::Instant::now();
                    let _ = stream.set_nodelay(true);
                    match self.tls.as_ref().filter(|tls| tls.dial_tls) {
                        None => self.link(stream, &addr, &mut outbound, &incoming, &mut shutdown).await,
                        Some(tls) => match tls.connect(&host, stream).await {
                            Ok(stream) => {
                                self.link(stream, &addr, &mut outbound, &incoming, &mut shutdown).await
                            }
                            Err(error) => {
                                tracing::warn!(peer, %addr, %error, "quorum TLS handshake with peer failed");
                            }
                        },
                    }
                    // A link that lived is re-dialed at once; one the peer keeps refusing (a
                    // certificate it does not trust fails only after TLS 1.3's handshake)
                    // backs off like an unreachable peer rather than retrying in a loop.
                    if connected_at.elapsed() >= DIAL_BACKOFF_MAX {
                        backoff = Duration::from_millis(20);
                    }
                }
                Err(error) => tracing::trace!(peer, %addr, %error, "cannot reach peer"),
            }
            if *shutdown.borrow() {
                return;
            }
            // Drop what queued while the link was down: stale protocol messages only confuse.
            while outbound.try_recv().is_ok() {}
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
        }
    }

    /// Says who this server is, then runs the link until it ends.
    async fn link<S: LinkStream>(
        &self,
        mut stream: S,
        addr: &str,
        outbound: &mut mpsc::Receiver<Bytes>,
        incoming: &mpsc::Sender<Incoming>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let peer = self.peer;
        let hello = Bytes::copy_from_slice(&self.my_id.to_be_bytes());
        if write_frame(&mut stream, &hello).await.is_ok() {
            tracing::debug!(peer, %addr, "connected to peer");
            let reason = run_link(peer, stream, outbound, incoming, shutdown).await;
            tracing::info!(peer, %reason, "peer link closed");
            if !*shutdown.borrow() {
                let _ = incoming.send(Incoming::LinkDown { from: peer }).await;
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    mut outbound: HashMap<u64, mpsc::Receiver<Bytes>>,
    incoming: mpsc::Sender<Incoming>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<QuorumTls>,
) {
    // One link task per accepted peer at a time; a newer connection from the same peer
    // replaces the older one (the peer restarted).
    let mut links: Links = HashMap::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, addr)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let accepting = Accepting { addr, outbound: &mut outbound, links: &mut links, incoming: &incoming };
        let tls = match &tls {
            // Port unification: a TLS ClientHello starts with a handshake record (22); a
            // plain peer's first frame with its length's high byte (0).
            Some(tls) if tls.accept_plain => {
                let mut first = [0u8; 1];
                let peeked = tokio::time::timeout(Duration::from_secs(5), stream.peek(&mut first)).await;
                match peeked {
                    Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => Some(tls),
                    Ok(Ok(1)) => None,
                    _ => continue,
                }
            }
            other => other.as_ref(),
        };
        match tls {
            None => accepting.admit(stream, &shutdown).await,
            Some(tls) => match tls.accept(stream).await {
                Ok(stream) => accepting.admit(stream, &shutdown).await,
                Err(error) => {
                    tracing::warn!(%addr, %error, "quorum TLS handshake with a connecting peer failed")
                }
            },
        }
    }
}

/// One accepted connection and the accept loop's state it may take a peer's queue from.
struct Accepting<'a> {
    addr: SocketAddr,
    outbound: &'a mut HashMap<u64, mpsc::Receiver<Bytes>>,
    links: &'a mut Links,
    incoming: &'a mpsc::Sender<Incoming>,
}

impl Accepting<'_> {
    /// Reads the peer's id and runs its link in a task (replacing an older link of that peer).
    async fn admit<S: LinkStream>(self, mut stream: S, shutdown: &watch::Receiver<bool>) {
        let addr = self.addr;
        let mut input = BytesMut::new();
        let hello = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream, &mut input)).await;
        let Ok(Ok(hello)) = hello else { return };
        if hello.len() != 8 {
            return;
        }
        let peer = u64::from_be_bytes([
            hello[0], hello[1], hello[2], hello[3], hello[4], hello[5], hello[6], hello[7],
        ]);
        let queue = match (self.outbound.remove(&peer), self.links.remove(&peer)) {
            (Some(queue), _) => queue,
            (None, Some((task, stop))) => {
                let _ = stop.send(true);
                match task.await {
                    Ok(queue) => queue,
                    Err(_) => return,
                }
            }
            (None, None) => {
                tracing::warn!(peer, %addr, "connection from a server not in the ensemble, or not expected to dial");
                return;
            }
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let incoming = self.incoming.clone();
        let server_shutdown = shutdown.clone();
        let task = tokio::spawn(async move {
            let mut queue = queue;
            let mut stop = stop_rx;
            let mut input = input;
            let ended = tokio::select! {
                reason = run_link_with_input(peer, stream, &mut queue, &incoming, &mut input) => reason,
                _ = stop.changed() => "replaced by a newer connection".to_string(),
                _ = wait_true(server_shutdown) => String::new(),
            };
            if !ended.is_empty() {
                tracing::info!(peer, reason = %ended, "peer link closed");
                let _ = incoming.send(Incoming::LinkDown { from: peer }).await;
            }
            while queue.try_recv().is_ok() {}
            queue
        });
        self.links.insert(peer, (task, stop_tx));
    }
}

async fn wait_true(mut flag: watch::Receiver<bool>) {
    while !*flag.borrow() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}

async fn run_link<S: LinkStream>(
    peer: u64,
    stream: S,
    outbound: &mut mpsc::Receiver<Bytes>,
    incoming: &mpsc::Sender<Incoming>,
    shutdown: &mut watch::Receiver<bool>,
) -> String {
    let mut input = BytesMut::new();
    tokio::select! {
        reason = run_link_with_input(peer, stream, outbound, incoming, &mut input) => reason,
        _ = shutdown.changed() => "shutting down".into(),
    }
}

async fn run_link_with_input<S: LinkStream>(
    peer: u64,
    stream: S,
    outbound: &mut mpsc::Receiver<Bytes>,
    incoming: &mpsc::Sender<Incoming>,
    input: &mut BytesMut,
) -> String {
    let (mut reader, mut writer) = stream.split_link();
    let read_side = async {
        loop {
            match read_frame_from(&mut reader, input).await {
                Ok(message) => {
                    if incoming.send(Incoming::Message { from: peer, message }).await.is_err() {
                        return "server stopping".to_string();
                    }
                }
                Err(error) => return format!("read: {error}"),
            }
        }
    };
    let write_side = async {
        let mut buffer = BytesMut::new();
        while let Some(message) = outbound.recv().await {
            if message.len() > PEER_FRAME_MAX {
                // A big message goes out piece by piece, without a copy.
                if let Err(error) = write_pieces(&mut writer, &message, PEER_FRAME_MAX).await {
                    return format!("write: {error}");
                }
                continue;
            }
            buffer.clear();
            push_frame(&mut buffer, &message);
            while let Ok(more) = outbound.try_recv() {
                push_frame(&mut buffer, &more);
                if buffer.len() > 1 << 20 {
                    break;
                }
            }
            if let Err(error) = writer.write_all(&buffer).await {
                return format!("write: {error}");
            }
        }
        "sender dropped".to_string()
    };
    tokio::select! {
        reason = read_side => reason,
        reason = write_side => reason,
    }
}

/// Appends one frame; `message` must fit in one (the writer sends bigger ones with
/// [`write_pieces`]).
fn push_frame(buffer: &mut BytesMut, message: &[u8]) {
    buffer.extend_from_slice(&(message.len() as u32).to_be_bytes());
    buffer.extend_from_slice(message);
}

/// Writes `message` as frames of at most `piece_max` bytes, all but the last flagged
/// [`PIECE_FOLLOWS`].
async fn write_pieces<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    message: &[u8],
    piece_max: usize,
) -> std::io::Result<()> {
    let mut pieces = message.chunks(piece_max.max(1)).peekable();
    while let Some(piece) = pieces.next() {
        let flag = if pieces.peek().is_some() { PIECE_FOLLOWS } else { 0 };
        writer.write_all(&(piece.len() as u32 | flag).to_be_bytes()).await?;
        writer.write_all(piece).await?;
    }
    Ok(())
}

async fn write_frame<S: LinkStream>(stream: &mut S, message: &[u8]) -> std::io::Result<()> {
    let mut buffer = BytesMut::with_capacity(message.len() + 4);
    push_frame(&mut buffer, message);
    stream.write_all(&buffer).await
}

async fn read_frame<S: LinkStream>(stream: &mut S, input: &mut BytesMut) -> std::io::Result<Bytes> {
    read_frame_from(stream, input).await
}

async fn read_frame_from<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    input: &mut BytesMut,
) -> std::io::Result<Bytes> {
    read_message(reader, input, PEER_FRAME_MAX).await
}

/// Reads one message: a frame, or pieces joined (see [`PEER_FRAME_MAX`]).
async fn read_message<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    input: &mut BytesMut,
    frame_max: usize,
) -> std::io::Result<Bytes> {
    let mut joined: Option<BytesMut> = None;
    loop {
        if input.len() >= 4 {
            let word = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
            let follows = word & PIECE_FOLLOWS != 0;
            let length = (word & !PIECE_FOLLOWS) as usize;
            if length > frame_max {
                return Err(std::io::Error::other(format!("peer frame of {length} bytes is over the limit")));
            }
            if input.len() >= 4 + length {
                input.advance(4);
                let frame = input.split_to(length);
                let so_far = joined.as_ref().map_or(0, |j| j.len()) as u64;
                if so_far + length as u64 > PEER_MESSAGE_MAX {
                    return Err(std::io::Error::other("peer message over the limit"));
                }
                match (follows, joined.take()) {
                    (false, None) => return Ok(frame.freeze()),
                    (false, Some(mut whole)) => {
                        whole.extend_from_slice(&frame);
                        return Ok(whole.freeze());
                    }
                    (true, None) => joined = Some(frame),
                    (true, Some(mut whole)) => {
                        whole.extend_from_slice(&frame);
                        joined = Some(whole);
                    }
                }
                continue;
            }
        }
        if reader.read_buf(input).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_message_over_the_frame_limit_travels_in_pieces() {
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        write_pieces(&mut wire, &big, 64).await.unwrap();
        let mut small = BytesMut::new();
        push_frame(&mut small, b"after");
        wire.extend_from_slice(&small);
        // 16 pieces (15 flagged), then a plain frame.
        let flagged = wire.chunks(68).take(15).filter(|c| c[0] & 0x80 != 0).count();
        assert_eq!(flagged, 15);
        let (mut reader, mut input) = (&wire[..], BytesMut::new());
        assert_eq!(&read_message(&mut reader, &mut input, 64).await.unwrap()[..], &big[..]);
        assert_eq!(&read_message(&mut reader, &mut input, 64).await.unwrap()[..], b"after");
        // A single frame over the limit is still refused.
        let mut over = BytesMut::new();
        push_frame(&mut over, &[0u8; 65]);
        let (mut reader, mut input) = (&over[..], BytesMut::new());
        assert!(read_message(&mut reader, &mut input, 64).await.is_err());
    }

    fn free_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    async fn expect(rx: &mut mpsc::Receiver<Incoming>, from: u64, text: &str) {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap() {
                Incoming::Message { from: sender, message } => {
                    assert_eq!(sender, from);
                    assert_eq!(&message[..], text.as_bytes());
                    return;
                }
                Incoming::LinkDown { .. } => {}
            }
        }
    }

    async fn send_until_delivered(
        sender: &PeerSender,
        to: u64,
        rx: &mut mpsc::Receiver<Incoming>,
        from: u64,
        text: &str,
    ) {
        // Links come up asynchronously and drop what they cannot deliver: retry.
        for _ in 0..200 {
            sender.send(to, Bytes::copy_from_slice(text.as_bytes()));
            if let Ok(Some(Incoming::Message { from: sender, message })) =
                tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            {
                assert_eq!(sender, from);
                assert_eq!(&message[..], text.as_bytes());
                return;
            }
        }
        panic!("{text} never delivered");
    }

    /// Peers are dialed by name, resolved at each attempt: a name that does not resolve (yet)
    /// does not stop the server, and a name that does is reached.
    #[tokio::test]
    async fn peers_are_resolved_when_dialed() {
        let (a1, a2) = (free_addr(), free_addr());
        let peers: HashMap<u64, (String, u16)> = HashMap::from([
            (1, ("localhost".to_owned(), a1.port())),
            (2, ("127.0.0.1".to_owned(), a2.port())),
            (3, ("no-such-peer.invalid".to_owned(), 1)),
        ]);
        let (stop_tx, stop) = watch::channel(false);
        let (s1, mut r1) = start(1, a1, peers.clone(), stop.clone(), None).await.unwrap();
        let (s2, mut r2) = start(2, a2, peers, stop, None).await.unwrap();
        send_until_delivered(&s2, 1, &mut r1, 2, "2→1 by name").await;
        send_until_delivered(&s1, 2, &mut r2, 1, "1→2").await;
        stop_tx.send(true).unwrap();
    }

    #[tokio::test]
    async fn three_servers_exchange_messages_and_survive_a_restart() {
        let addrs: HashMap<u64, SocketAddr> = (1..=3).map(|id| (id, free_addr())).collect();
        let peers: HashMap<u64, (String, u16)> =
            addrs.iter().map(|(id, a)| (*id, (a.ip().to_string(), a.port()))).collect();
        let (stop_tx, stop) = watch::channel(false);
        let (s1, mut r1) = start(1, addrs[&1], peers.clone(), stop.clone(), None).await.unwrap();
        let (s2, mut r2) = start(2, addrs[&2], peers.clone(), stop.clone(), None).await.unwrap();
        let (stop3_tx, stop3) = watch::channel(false);
        let (s3, mut r3) = start(3, addrs[&3], peers.clone(), stop3, None).await.unwrap();
        send_until_delivered(&s1, 2, &mut r2, 1, "1→2").await;
        send_until_delivered(&s3, 1, &mut r1, 3, "3→1").await;
        send_until_delivered(&s2, 3, &mut r3, 2, "2→3").await;
        assert!(s2.send(3, Bytes::from_static(b"again")));
        expect(&mut r3, 2, "again").await;
        // Server 3 restarts: its links come back.
        stop3_tx.send(true).unwrap();
        drop((s3, r3));
        // The others learn at once that their connection to 3 ended (3 dials 1 and 2).
        for rx in [&mut r1, &mut r2] {
            loop {
                let event = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
                if let Incoming::LinkDown { from } = event {
                    assert_eq!(from, 3);
                    break;
                }
            }
        }
        let (stop3_tx, stop3) = watch::channel(false);
        let (s3, mut r3) = start(3, addrs[&3], peers.clone(), stop3, None).await.unwrap();
        send_until_delivered(&s1, 3, &mut r3, 1, "1→3 after restart").await;
        send_until_delivered(&s3, 2, &mut r2, 3, "3→2 after restart").await;
        stop_tx.send(true).unwrap();
        stop3_tx.send(true).unwrap();
    }
}
