//! The background task that owns a session: finds a server, performs the handshake, runs one
//! connection (writer + reader polled together), and on loss reconnects with the same session.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::WatcherEvent;
use ferrokeeper_proto::frame::{self, MAX_FRAME_DEFAULT};
use ferrokeeper_proto::op::{self, xid};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::{
    AuthPacket, Code, ConnectRequest, ConnectResponse, Jute, Reader, ReplyHeader, RequestHeader,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};
use crate::tls::Connector;
use crate::types::{Chroot, EventType, KeeperState, SessionState, WatchedEvent};
use crate::watch::{Registry, SetWatchesMsg, WatchReg};

/// A raw reply: header fields and the undecoded body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) err: i32,
    pub(crate) body: Bytes,
}

/// One request submitted by a handle.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) request: Request,
    pub(crate) watch: Option<WatchReg>,
    pub(crate) reply: oneshot::Sender<Result<Reply>>,
}

struct Pending {
    xid: i32,
    op: i32,
    watch: Option<WatchReg>,
    reply: oneshot::Sender<Result<Reply>>,
}

/// State shared by the handles and the session task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) chroot: Chroot,
    pub(crate) last_zxid: AtomicI64,
    pub(crate) session_id: AtomicI64,
    pub(crate) negotiated_timeout: AtomicI64,
    pub(crate) watches: Mutex<Registry>,
    pub(crate) auth: Mutex<Vec<(String, Bytes)>>,
    pub(crate) events: mpsc::UnboundedSender<WatchedEvent>,
    pub(crate) state: watch::Sender<SessionState>,
    pub(crate) connected_host: Mutex<Option<String>>,
    /// Why the last connection attempt failed (a TLS handshake's cause), for ConnectFailed.
    pub(crate) last_failure: Mutex<Option<String>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn emit(&self, event: WatchedEvent) {
        let _ = self.events.send(event);
    }
}

/// Settings fixed at connect time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) hosts: Vec<String>,
    pub(crate) session_timeout: Duration,
    pub(crate) read_only: bool,
    /// TLS to the servers' secure ports; `None`: plain TCP.
    pub(crate) tls: Option<Arc<Connector>>,
    /// A SASL login run on every connection before anything else.
    pub(crate) sasl: Option<crate::sasl::SaslOptions>,
}

enum ConnEnd {
    /// The connection broke; reconnect.
    Lost,
    /// closeSession was answered (or every handle is gone): stop.
    Closed,
    /// Auth failed: the server closes the connection.
    AuthFailed,
}

/// A connection to a server: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn sasl(&mut self, options: &crate::sasl::SaslOptions) -> std::result::Result<bool, Code> {
        match self {
            Stream::Plain(tcp) => crate::sasl::authenticate(tcp, options).await,
            Stream::Tls(tls) => crate::sasl::authenticate(tls.as_mut(), options).await,
        }
    }
}

enum Handshake {
    Ok(Stream, ConnectResponse),
    Expired,
    Failed,
}

pub(crate) async fn run(shared: Arc<Shared>, config: Config, mut rx: mpsc::Receiver<Call>) {
    let mut passwd: Bytes = Bytes::from_static(&[0u8; 16]);
    let mut host_index = 0usize;
    let mut failures_in_row = 0usize;
    let mut ever_connected = false;
    let end_state = loop {
        if rx.is_closed() && rx.is_empty() && !ever_connected {
            break SessionState::Closed;
        }
        let host = &config.hosts[host_index % config.hosts.len()];
        host_index = host_index.wrapping_add(1);
        let per_host =
            (config.session_timeout / config.hosts.len().max(1) as u32).max(Duration::from_millis(500));
        match handshake(&shared, &config, host, &passwd, per_host).await {
            Handshake::Ok(mut stream, resp) => {
                failures_in_row = 0;
                ever_connected = true;
                shared.session_id.store(resp.session_id, Ordering::Relaxed);
                shared.negotiated_timeout.store(i64::from(resp.timeout), Ordering::Relaxed);
                if let Some(p) = resp.passwd.clone() {
                    passwd = p;
                }
                let sasl = match &config.sasl {
                    None => Ok(false),
                    Some(options) => match timeout(per_host, stream.sasl(options)).await {
                        Ok(Ok(true)) => Ok(true),
                        Ok(Err(code)) => Err(code),
                        // The connection broke or stalled during the login: try again.
                        Ok(Ok(false)) | Err(_) => continue,
                    },
                };
                if let Err(code) = sasl {
                    *lock(&shared.last_failure) = Some(format!("SASL login refused by {host}: {code:?}"));
                    shared.emit(WatchedEvent::state(KeeperState::AuthFailed));
                    break SessionState::AuthFailed;
                }
                *lock(&shared.connected_host) = Some(host.clone());
                shared.state.send_replace(SessionState::Connected);
                shared.emit(WatchedEvent::state(KeeperState::SyncConnected));
                if sasl == Ok(true) {
                    shared.emit(WatchedEvent::state(KeeperState::SaslAuthenticated));
                }
                let negotiated = Duration::from_millis(resp.timeout.max(1) as u64);
                let end = Connection::new(&shared, negotiated).run(stream, &mut rx).await;
                *lock(&shared.connected_host) = None;
                match end {
                    ConnEnd::Closed => break SessionState::Closed,
                    ConnEnd::AuthFailed => {
                        shared.emit(WatchedEvent::state(KeeperState::AuthFailed));
                        break SessionState::AuthFailed;
                    }
                    ConnEnd::Lost => {
                        if rx.is_closed() {
                            break SessionState::Closed;
                        }
                        shared.state.send_replace(SessionState::Connecting);
                        shared.emit(WatchedEvent::state(KeeperState::Disconnected));
                    }
                }
            }
            Handshake::Expired => {
                shared.emit(WatchedEvent::state(KeeperState::Expired));
                break SessionState::Expired;
            }
            Handshake::Failed => {
                failures_in_row += 1;
                if rx.is_closed() && rx.is_empty() {
                    break SessionState::Closed;
                }
                let pause = if failures_in_row.is_multiple_of(config.hosts.len().max(1)) { 200 } else { 20 };
                sleep(Duration::from_millis(pause)).await;
            }
        }
    };
    let (code, kstate) = match end_state {
        SessionState::Expired => (Code::SessionExpired, KeeperState::Expired),
        SessionState::AuthFailed => (Code::AuthFailed, KeeperState::AuthFailed),
        _ => (Code::SessionExpired, KeeperState::Closed),
    };
    lock(&shared.watches).clear(kstate);
    shared.state.send_replace(end_state);
    if end_state == SessionState::Closed {
        shared.emit(WatchedEvent::state(KeeperState::Closed));
    }
    // Every later call fails.
    rx.close();
    while let Some(call) = rx.recv().await {
        let err = if end_state == SessionState::Closed { Error::Closed } else { Error::keeper(code, None) };
        let _ = call.reply.send(Err(err));
    }
}

async fn handshake(
    shared: &Shared,
    config: &Config,
    host: &str,
    passwd: &Bytes,
    limit: Duration,
) -> Handshake {
    let attempt = async {
        let tcp = TcpStream::connect(host).await.ok()?;
        let _ = tcp.set_nodelay(true);
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: shared.last_zxid.load(Ordering::Relaxed),
            timeout: config.session_timeout.as_millis().min(i32::MAX as u128) as i32,
            session_id: shared.session_id.load(Ordering::Relaxed),
            passwd: Some(passwd.clone()),
            read_only: Some(config.read_only),
        };
        match &config.tls {
            None => {
                let mut tcp = tcp;
                let resp = exchange(&mut tcp, &req).await?;
                Some((Stream::Plain(tcp), resp))
            }
            Some(connector) => {
                let mut tls = match connector.connect(host, tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        *lock(&shared.last_failure) = Some(format!("TLS handshake with {host} failed: {e}"));
                        return None;
                    }
                };
                let resp = exchange(&mut tls, &req).await?;
                Some((Stream::Tls(Box::new(tls)), resp))
            }
        }
    };
    match timeout(limit, attempt).await {
        Ok(Some((_, resp))) if resp.timeout <= 0 => Handshake::Expired,
        Ok(Some((stream, resp))) => {
            *lock(&shared.last_failure) = None;
            Handshake::Ok(stream, resp)
        }
        _ => Handshake::Failed,
    }
}

/// Sends the ConnectRequest and reads the ConnectResponse.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    req: &ConnectRequest,
) -> Option<ConnectResponse> {
    let mut buf = BytesMut::with_capacity(64);
    frame::write(&mut buf, |b| req.write(b));
    stream.write_all(&buf).await.ok()?;
    let len = stream.read_i32().await.ok()?;
    if len < 0 || len as usize > MAX_FRAME_DEFAULT {
        return None;
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await.ok()?;
    ConnectResponse::read(&mut Reader::new(&body)).ok()
}

struct Connection<'a> {
    shared: &'a Shared,
    pending: Mutex<VecDeque<Pending>>,
    auth_waiters: Mutex<VecDeque<Option<oneshot::Sender<Result<Reply>>>>>,
    read_timeout: Duration,
    ping_interval: Duration,
}

/// What the writer half reports when it stops.
enum WriterEnd {
    Io,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, negotiated: Duration) -> Self {
        let read_timeout = negotiated * 2 / 3;
        Connection {
            shared,
            pending: Mutex::new(VecDeque::new()),
            auth_waiters: Mutex::new(VecDeque::new()),
            read_timeout,
            ping_interval: (read_timeout / 2).min(Duration::from_secs(10)),
        }
    }

    async fn run(self, stream: Stream, rx: &mut mpsc::Receiver<Call>) -> ConnEnd {
        match stream {
            // The plain socket splits without a lock; TLS state is shared by both halves.
            Stream::Plain(mut tcp) => {
                let (r, w) = tcp.split();
                self.drive(r, w, rx).await
            }
            Stream::Tls(tls) => {
                let (r, w) = tokio::io::split(*tls);
                self.drive(r, w, rx).await
            }
        }
    }

    async fn drive<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        self,
        mut r: R,
        mut w: W,
        rx: &mut mpsc::Receiver<Call>,
    ) -> ConnEnd {
        let end = {
            let writer = self.writer(&mut w, rx);
            let reader = self.reader(&mut r);
            tokio::pin!(writer, reader);
            tokio::select! {
                WriterEnd::Io = &mut writer => ConnEnd::Lost,
                end = &mut reader => end,
            }
        };
        let err = match end {
            ConnEnd::Lost => Error::keeper(Code::ConnectionLoss, None),
            ConnEnd::Closed => Error::Closed,
            ConnEnd::AuthFailed => Error::keeper(Code::AuthFailed, None),
        };
        for p in lock(&self.pending).drain(..) {
            let _ = p.reply.send(Err(err.clone()));
        }
        for tx in lock(&self.auth_waiters).drain(..).flatten() {
            let _ = tx.send(Err(err.clone()));
        }
        let _ = w.shutdown().await;
        end
    }

    /// Frames the session-priming messages: auth packets and setWatches.
    fn prime(&self, buf: &mut BytesMut) {
        for (scheme, auth) in lock(&self.shared.auth).iter() {
            let req = AuthPacket { auth_type: 0, scheme: scheme.clone(), auth: Some(auth.clone()) };
            frame::write(buf, |b| {
                RequestHeader { xid: xid::AUTH, op: op::AUTH }.write(b);
                req.write(b);
            });
            lock(&self.auth_waiters).push_back(None);
        }
        let registry = lock(&self.shared.watches);
        if registry.is_empty() {
            return;
        }
        for msg in registry.set_watches(self.shared.last_zxid.load(Ordering::Relaxed)) {
            frame::write(buf, |b| match &msg {
                SetWatchesMsg::V1(m) => {
                    RequestHeader { xid: xid::SET_WATCHES, op: op::SET_WATCHES }.write(b);
                    m.write(b);
                }
                SetWatchesMsg::V2(m) => {
                    RequestHeader { xid: xid::SET_WATCHES, op: op::SET_WATCHES2 }.write(b);
                    m.write(b);
                }
            });
        }
    }

    fn enqueue(&self, call: Call, next_xid: &mut i32, buf: &mut BytesMut) -> bool {
        let op_code = call.request.op();
        let is_auth = op_code == op::AUTH;
        let xid = if is_auth {
            xid::AUTH
        } else {
            let x = *next_xid;
            *next_xid = if x == i32::MAX { 1 } else { x + 1 };
            x
        };
        frame::write(buf, |b| {
            RequestHeader { xid, op: op_code }.write(b);
            call.request.write_body(b);
        });
        if is_auth {
            if let Request::Auth(a) = &call.request {
                lock(&self.shared.auth).push((a.scheme.clone(), a.auth.clone().unwrap_or_default()));
            }
            lock(&self.auth_waiters).push_back(Some(call.reply));
        } else {
            lock(&self.pending).push_back(Pending { xid, op: op_code, watch: call.watch, reply: call.reply });
        }
        op_code == op::CLOSE_SESSION
    }

    async fn writer<W: AsyncWriteExt + Unpin>(&self, w: &mut W, rx: &mut mpsc::Receiver<Call>) -> WriterEnd {
        const BATCH: usize = 256 * 1024;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut next_xid = 1i32;
        self.prime(&mut buf);
        if !buf.is_empty() && w.write_all(&buf).await.is_err() {
            return WriterEnd::Io;
        }
        buf.clear();
        let mut last_send = Instant::now();
        loop {
            let mut closing = false;
            tokio::select! {
                biased;
                call = rx.recv() => {
                    match call {
                        Some(call) => {
                            closing |= self.enqueue(call, &mut next_xid, &mut buf);
                            while buf.len() < BATCH && !closing {
                                match rx.try_recv() {
                                    Ok(call) => closing |= self.enqueue(call, &mut next_xid, &mut buf),
                                    Err(_) => break,
                                }
                            }
                        }
                        None => {
                            // Every handle is gone: close the session politely.
                            let (tx, _rx) = oneshot::channel();
                            let call = Call { request: Request::CloseSession, watch: None, reply: tx };
                            closing = self.enqueue(call, &mut next_xid, &mut buf);
                        }
                    }
                }
                _ = sleep_until(last_send + self.ping_interval) => {
                    frame::write(&mut buf, |b| RequestHeader { xid: xid::PING, op: op::PING }.write(b));
                }
            }
            if w.write_all(&buf).await.is_err() {
                return WriterEnd::Io;
            }
            let _ = w.flush().await;
            buf.clear();
            if buf.capacity() > 4 * BATCH {
                buf = BytesMut::with_capacity(64 * 1024);
            }
            last_send = Instant::now();
            if closing {
                // Nothing more is sent; the reader ends when the close is answered.
                std::future::pending::<()>().await;
            }
        }
    }

    async fn reader<R: AsyncReadExt + Unpin>(&self, r: &mut R) -> ConnEnd {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            loop {
                match frame::check(&buf, MAX_FRAME_DEFAULT) {
                    Ok(Some(len)) => {
                        let mut payload = buf.split_to(4 + len).freeze();
                        let payload = payload.split_off(4);
                        if let Some(end) = self.handle(payload) {
                            return end;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return ConnEnd::Lost,
                }
            }
            buf.reserve(64 * 1024);
            match timeout(self.read_timeout, r.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return ConnEnd::Lost,
            }
        }
    }

    /// Handles one reply frame; `Some` ends the connection.
    fn handle(&self, payload: Bytes) -> Option<ConnEnd> {
        let mut rd = Reader::new(&payload);
        let Ok(header) = ReplyHeader::read(&mut rd) else {
            return Some(ConnEnd::Lost);
        };
        let body = payload.slice(rd.position()..);
        match header.xid {
            xid::NOTIFICATION => {
                let Ok(ev) = WatcherEvent::read(&mut Reader::new(&body)) else {
                    return Some(ConnEnd::Lost);
                };
                self.notify(ev);
                None
            }
            xid::PING | xid::SET_WATCHES => None,
            xid::AUTH => {
                let waiter = lock(&self.auth_waiters).pop_front().flatten();
                if let Some(tx) = waiter {
                    let _ = tx.send(Ok(Reply { err: header.err, body }));
                }
                if header.err != 0 { Some(ConnEnd::AuthFailed) } else { None }
            }
            _ => {
                let Some(p) = lock(&self.pending).pop_front() else {
                    return Some(ConnEnd::Lost);
                };
                if p.xid != header.xid {
                    // "Xid out of order": the Java client drops the connection.
                    let _ = p.reply.send(Err(Error::keeper(Code::ConnectionLoss, None)));
                    return Some(ConnEnd::Lost);
                }
                if header.zxid > 0 {
                    self.shared.last_zxid.fetch_max(header.zxid, Ordering::Relaxed);
                }
                if let Some(reg) = p.watch {
                    lock(&self.shared.watches).register(reg, header.err);
                }
                let _ = p.reply.send(Ok(Reply { err: header.err, body }));
                if p.op == op::CLOSE_SESSION { Some(ConnEnd::Closed) } else { None }
            }
        }
    }

    fn notify(&self, ev: WatcherEvent) {
        let event_type = EventType::from_i32(ev.event_type);
        let mut event = WatchedEvent { event_type, state: KeeperState::from_i32(ev.state), path: None };
        let client_path = self.shared.chroot.strip(ev.path.clone());
        event.path = Some(client_path);
        lock(&self.shared.watches).trigger(&ev.path, &event);
        self.shared.emit(event);
    }
}
