//! SASL DIGEST-MD5 login, as ZooKeeper's Java client runs it with a JAAS `Client` section: after
//! every ConnectResponse (a new session or a reconnect) and before any other request, the
//! client sends GetSASL tokens until the server's `rspauth` proves it knows the password too.
//! The server then holds a `sasl:<username>` id for the connection. A refused login ends the
//! session with `AuthFailed` (SessionClosedRequireSaslAuth when the server enforces SASL).

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::frame::{self, MAX_FRAME_DEFAULT};
use ferrokeeper_proto::sasl::digest_md5::DigestClient;
use ferrokeeper_proto::sasl::jaas::JaasConfig;
use ferrokeeper_proto::{
    Code, GetSaslRequest, Jute, Reader, ReplyHeader, RequestHeader, SetSaslResponse, op,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// A DIGEST-MD5 login.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslOptions {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslOptions").field("username", &self.username).field("password", &"…").finish()
    }
}

impl SaslOptions {
    pub fn digest(username: &str, password: &str) -> SaslOptions {
        SaslOptions { username: username.to_owned(), password: password.to_owned() }
    }

    /// The Java client's properties: `java.security.auth.login.config` names a JAAS file whose
    /// section `zookeeper.sasl.clientconfig` (default `Client`) holds `username` and `password`
    /// (DigestLoginModule); `zookeeper.sasl.client=false` turns SASL off. `None` without a JAAS
    /// file. A JAAS file that cannot be read, lacks the section, or whose section is not a
    /// DIGEST-MD5 login is an error naming the file.
    pub fn from_properties<'a>(
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<SaslOptions>> {
        let properties: Vec<(&str, &str)> = properties.into_iter().collect();
        let get = |key: &str| properties.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.trim());
        if get("zookeeper.sasl.client").is_some_and(|v| !v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let Some(path) = get("java.security.auth.login.config").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let path = PathBuf::from(path);
        let section = get("zookeeper.sasl.clientconfig").unwrap_or("Client");
        let shown = path.display();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Sasl(format!("cannot read the JAAS file {shown}: {e}")))?;
        let jaas = JaasConfig::parse(&text).map_err(|e| Error::Sasl(format!("{shown}: {e}")))?;
        let entries = jaas.section(section).ok_or_else(|| {
            Error::Sasl(format!("{shown}: no JAAS configuration section named '{section}'"))
        })?;
        let login = entries.entries.iter().find_map(|e| Some((e.option("username")?, e.option("password")?)));
        match login {
            Some((username, password)) => Ok(Some(SaslOptions::digest(username, password))),
            None => Err(Error::Sasl(format!(
                "{shown}: section '{section}' has no username and password (only DIGEST-MD5 \
                 logins are supported, not Kerberos)"
            ))),
        }
    }
}

/// Runs the exchange on a fresh connection (nothing else in flight). `Err` carries the code
/// the session ends with: the server's (AuthFailed, SessionClosedRequireSaslAuth), or
/// AuthFailed when the server could not prove it knows the password; `Ok(false)`: the
/// connection broke (reconnect).
pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    options: &SaslOptions,
) -> std::result::Result<bool, Code> {
    let mut digest = DigestClient::new(&options.username, &options.password);
    let challenge = match call(stream, 1, &digest.initial_token()).await {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(false),
        Err(code) => return Err(code),
    };
    let cnonce = {
        use base64::Engine;
        let bytes: [u8; 16] = rand::random();
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    };
    let response = digest.respond(&challenge, &cnonce).map_err(|_| Code::AuthFailed)?;
    let rspauth = match call(stream, 2, &response).await {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(false),
        Err(code) => return Err(code),
    };
    digest.finish(&rspauth).map_err(|_| Code::AuthFailed)?;
    Ok(true)
}

/// Sends one token and reads the reply: `Ok(None)` when the connection broke.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    xid: i32,
    token: &[u8],
) -> std::result::Result<Option<Bytes>, Code> {
    let mut buf = BytesMut::new();
    let request = GetSaslRequest { token: Some(Bytes::copy_from_slice(token)) };
    frame::write(&mut buf, |b| {
        RequestHeader { xid, op: op::SASL }.write(b);
        request.write(b);
    });
    if stream.write_all(&buf).await.is_err() {
        return Ok(None);
    }
    let Ok(len) = stream.read_i32().await else { return Ok(None) };
    if len < 16 || len as usize > MAX_FRAME_DEFAULT {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    if stream.read_exact(&mut body).await.is_err() {
        return Ok(None);
    }
    let mut reader = Reader::new(&body);
    let Ok(header) = ReplyHeader::read(&mut reader) else { return Ok(None) };
    if header.err != 0 {
        return Err(Code::from_i32(header.err).unwrap_or(Code::AuthFailed));
    }
    if header.xid != xid {
        return Ok(None);
    }
    match SetSaslResponse::read(&mut reader) {
        Ok(response) => Ok(Some(response.token.unwrap_or_default())),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn properties_read_the_jaas_client_section() {
        let dir = std::env::temp_dir().join(format!("fk-sasl-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jaas.conf");
        std::fs::write(
            &file,
            "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"bob\" \
             password=\"pw\"; };\nOther { m required username=al password=x; };",
        )
        .unwrap();
        let path = file.display().to_string();
        let jaas = ("java.security.auth.login.config", path.as_str());
        assert_eq!(SaslOptions::from_properties([]).unwrap(), None);
        assert_eq!(SaslOptions::from_properties([jaas]).unwrap(), Some(SaslOptions::digest("bob", "pw")));
        assert_eq!(
            SaslOptions::from_properties([jaas, ("zookeeper.sasl.clientconfig", "Other")]).unwrap(),
            Some(SaslOptions::digest("al", "x"))
        );
        assert_eq!(SaslOptions::from_properties([jaas, ("zookeeper.sasl.client", "false")]).unwrap(), None);
        let missing =
            SaslOptions::from_properties([jaas, ("zookeeper.sasl.clientconfig", "Nope")]).unwrap_err();
        assert!(missing.to_string().contains("no JAAS configuration section named 'Nope'"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
