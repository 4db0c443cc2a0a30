//! SASL on the client port, as ZooKeeperServer.processSasl runs it: after its session is
//! established a client sends GetSASL tokens (opcode `sasl`); each is answered with a
//! SetSASL token; a completed DIGEST-MD5 exchange gives the connection `sasl:<id>` (and
//! `super:` for a `zookeeper.superUser`). A failed one is answered with AuthFailed
//! (SessionClosedRequireSaslAuth when SASL is enforced) and the connection closed, unless
//! `allowSaslFailedClients` keeps it. Also `enforce.auth.*`: a connection without an id of an
//! enforced scheme gets SessionClosedRequireSaslAuth for any other request, and is closed.
//!
//! The mechanism is `ferrokeeper_proto::sasl::digest_md5`; the settings `crate::auth`.

use std::time::Instant;

use base64::Engine;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::sasl::digest_md5::{DigestServer, ServerStep};
use ferrokeeper_proto::{Code, GetSaslRequest, Id, SetSaslResponse, op};

use super::Map;
use super::core::Core;
use crate::tree::{self, ConnId};

/// The DIGEST-MD5 exchanges by connection. An entry lives from a connection's first token
/// until the connection ends or its login fails; entries of connections that went away are dropped whenever
/// there are more entries than connections, so the map never outgrows the connection table.
#[derive(Default)]
pub struct SaslExchanges {
    servers: Map<ConnId, DigestServer>,
}

impl Core {
    /// Answers one GetSASL token from `conn_id`.
    pub(crate) fn sasl(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        request: GetSaslRequest,
        received: Instant,
    ) {
        let config = self.config.clone();
        let auth = &config.auth;
        if auth.sasl_users.is_none() {
            // ZooKeeper's connection has no SaslServer without a JAAS server section; the
            // NullPointerException is caught and the reply is OK with a null token.
            tracing::error!(
                conn = conn_id,
                "a client sent a SASL token, but no JAAS section is configured \
                 (java.security.auth.login.config); answering with an empty token"
            );
            let reply = Ok(Response::Sasl(SetSaslResponse { token: None }));
            self.reply(conn_id, xid, 0, reply, op_code, received);
            return;
        }
        let Some(token) = request.token else {
            self.sasl_failed(conn_id, xid, op_code, received, "null SASL token");
            return;
        };
        let mut server = self.sasl.servers.remove(&conn_id).unwrap_or_default();
        // The server nonce: 128 random bits from the shell (`Io::random`, a CSPRNG there).
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.io.random().to_le_bytes());
        nonce[8..].copy_from_slice(&self.io.random().to_le_bytes());
        let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
        let step = server.evaluate(&token, &nonce, &|user| auth.password(user));
        if step.is_ok() {
            // Kept after completion too: a token after a completed login is refused, as
            // ZooKeeper's SaslServer refuses it.
            self.sasl.servers.insert(conn_id, server);
            if self.sasl.servers.len() > self.connections.len() {
                let connections = &self.connections;
                self.sasl.servers.retain(|conn, _| connections.contains_key(conn));
            }
        }
        match step {
            Ok(ServerStep::Continue(challenge)) => {
                let reply = Ok(Response::Sasl(SetSaslResponse { token: Some(challenge.into()) }));
                self.reply(conn_id, xid, 0, reply, op_code, received);
            }
            Ok(ServerStep::Complete(rspauth, who)) => {
                let id = match auth.sasl_id(&who.authentication_id, &who.authorization_id) {
                    Ok(id) => id,
                    Err(cause) => return self.sasl_failed(conn_id, xid, op_code, received, &cause),
                };
                let superuser = auth.is_super_user(&id);
                let Some(conn) = self.connections.get_mut(&conn_id) else { return };
                tracing::info!(
                    conn = conn_id,
                    session = format_args!("0x{:x}", conn.caller.session_id),
                    authentication_id = %who.authentication_id,
                    id = %id,
                    superuser,
                    "adding SASL authorization"
                );
                let mut ids = vec![Id::new("sasl", &id)];
                if superuser {
                    ids.push(Id::new("super", ""));
                }
                for id in ids {
                    if !conn.caller.auth.contains(&id) {
                        conn.caller.auth.push(id);
                    }
                }
                tree::acl::java_set_order(&mut conn.caller.auth);
                let reply = Ok(Response::Sasl(SetSaslResponse { token: Some(rspauth.into()) }));
                self.reply(conn_id, xid, 0, reply, op_code, received);
            }
            Err(error) => self.sasl_failed(conn_id, xid, op_code, received, &error.to_string()),
        }
    }

    fn sasl_failed(&mut self, conn_id: ConnId, xid: i32, op_code: i32, received: Instant, cause: &str) {
        let auth = &self.config.auth;
        let peer = self.connections.get(&conn_id).map(|c| c.peer);
        tracing::warn!(conn = conn_id, peer = ?peer, %cause, "client failed to SASL authenticate");
        self.metrics.auth_failure("sasl");
        if auth.allow_failed_clients && !auth.sasl_required() {
            tracing::warn!(
                conn = conn_id,
                "maintaining client connection despite SASL authentication failure"
            );
            let reply = Ok(Response::Sasl(SetSaslResponse { token: None }));
            self.reply(conn_id, xid, 0, reply, op_code, received);
            return;
        }
        let code = if auth.sasl_required() { Code::SessionClosedRequireSaslAuth } else { Code::AuthFailed };
        self.reply(conn_id, xid, 0, Err(code), op_code, received);
        self.close_connection(conn_id);
    }

    /// AuthenticationHelper.enforceAuthentication: with `enforce.auth.*` on, any request but
    /// auth and sasl from a connection holding no id of an enforced scheme is answered with
    /// SessionClosedRequireSaslAuth and its connection closed. True when it was refused.
    pub(crate) fn refuse_unauthenticated(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        received: Instant,
    ) -> bool {
        let schemes = &self.config.auth.enforce_schemes;
        if schemes.is_empty() || op_code == op::AUTH || op_code == op::SASL {
            return false;
        }
        let Some(conn) = self.connections.get_mut(&conn_id) else { return false };
        if conn.caller.auth.iter().any(|id| schemes.contains(&id.scheme)) {
            return false;
        }
        // Counted as received and answered, as every request is (ZooKeeper refuses it before
        // its session is touched, and so does this, called before on_request's bookkeeping).
        conn.received += 1;
        conn.unanswered += 1;
        self.metrics.outstanding_requests.inc();
        self.packets_received += 1;
        let held: Vec<&str> = conn.caller.auth.iter().map(|id| id.scheme.as_str()).collect();
        tracing::error!(
            conn = conn_id,
            peer = %conn.peer,
            "client authentication scheme(s) {held:?} does not match any of the expected \
             authentication schemes {schemes:?}, closing session"
        );
        self.metrics.auth_failure("enforced");
        self.reply(conn_id, xid, 0, Err(Code::SessionClosedRequireSaslAuth), op_code, received);
        self.close_connection(conn_id);
        true
    }
}
