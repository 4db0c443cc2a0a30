//! DIGEST-MD5 (RFC 2831) with `qop=auth` only, the exchange ZooKeeper runs when its JAAS
//! `Server` section holds passwords (`DigestLoginModule`):
//!
//! ```text
//! client                                   server
//!   GetSASL(empty)                  ──►
//!                                   ◄──    realm="zk-sasl-md5",nonce="…",qop="auth",
//!                                          charset=utf-8,algorithm=md5-sess
//!   username="bob",realm=…,nonce=…,
//!   cnonce=…,nc=00000001,qop=auth,
//!   digest-uri="zookeeper/zk-sasl-md5",
//!   response=<32 hex>               ──►
//!                                   ◄──    rspauth=<32 hex>   (the server knows the password too)
//! ```
//!
//! Integrity and confidentiality layers (`auth-int`, `auth-conf`) are not offered, as Java's
//! server does not offer them unless `javax.security.sasl.qop` asks (ZooKeeper never does).
//! The checks on a response and their error texts follow Java's `DigestMD5Server`.

use md5::{Digest, Md5};

/// The SASL protocol (service) name ZooKeeper uses.
pub const PROTOCOL: &str = "zookeeper";
/// ZooKeeper's fixed server name for DIGEST-MD5: the realm offered and the digest-uri's host.
pub const SERVER_NAME: &str = "zk-sasl-md5";
/// The digest-uri every ZooKeeper client sends.
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";
/// Java's `DigestMD5Server` refuses longer responses.
pub const MAX_RESPONSE_LEN: usize = 4096;

/// Why an exchange failed; the text is what the server logs (Java's wording where it has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("DIGEST-MD5 must not have an initial response")]
    InitialResponse,
    #[error("DIGEST-MD5: Invalid digest response length. Got: {0} Expected < {MAX_RESPONSE_LEN}")]
    TooLong(usize),
    #[error("DIGEST-MD5: digest response format violation: {0}")]
    Format(String),
    #[error("DIGEST-MD5: digest response format violation. Missing {0}.")]
    Missing(&'static str),
    #[error("DIGEST-MD5: digest response format violation. Nonexistent realm: {0}")]
    Realm(String),
    #[error("DIGEST-MD5: digest response format violation. Mismatched nonce.")]
    Nonce,
    #[error("DIGEST-MD5: digest response format violation. Nonce count does not match: {0}")]
    NonceCount(String),
    #[error("DIGEST-MD5: digest response format violation. Incompatible charset value: {0}")]
    Charset(String),
    #[error("DIGEST-MD5: Client selected unsupported protection: {0}")]
    Qop(String),
    #[error("DIGEST-MD5: digest response format violation. Mismatched URI: {0}; expecting: {DIGEST_URI}")]
    Uri(String),
    #[error("DIGEST-MD5: cannot acquire password for {0} in realm : {SERVER_NAME}")]
    UnknownUser(String),
    #[error("DIGEST-MD5: digest response format violation. Mismatched response.")]
    WrongPassword,
    #[error("DIGEST-MD5 authentication already completed")]
    Completed,
    #[error("DIGEST-MD5: server challenge: {0}")]
    Challenge(String),
    #[error("DIGEST-MD5: server's rspauth does not match: the server does not know the password")]
    ServerNotAuthenticated,
}

impl DigestError {
    /// A short, stable name for logs and tests: `wrong_password`, `unknown_user`, `malformed`…
    pub fn kind(&self) -> &'static str {
        match self {
            DigestError::UnknownUser(_) => "unknown_user",
            DigestError::WrongPassword => "wrong_password",
            DigestError::Completed => "already_completed",
            DigestError::ServerNotAuthenticated => "server_not_authenticated",
            _ => "malformed",
        }
    }
}

/// A successful exchange: who the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The username the password was checked for.
    pub authentication_id: String,
    /// The `authzid` the client asked to act as, else the username.
    pub authorization_id: String,
}

/// What the server answers one token with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this token and wait for the next.
    Continue(Vec<u8>),
    /// Send this token (`rspauth=…`); the client is authenticated.
    Complete(Vec<u8>, Authenticated),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerState {
    Start,
    Challenged { nonce: String },
    Done,
}

/// The server side of one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestServer {
    state: ServerState,
}

impl Default for DigestServer {
    fn default() -> Self {
        DigestServer::new()
    }
}

impl DigestServer {
    pub fn new() -> DigestServer {
        DigestServer { state: ServerState::Start }
    }

    /// Whether a token has authenticated the client.
    pub fn is_complete(&self) -> bool {
        self.state == ServerState::Done
    }

    /// Answers `token`. `nonce` (fresh random text, used for the first token only) goes into
    /// the challenge; `password` looks a username up. Any error ends the exchange.
    pub fn evaluate(
        &mut self,
        token: &[u8],
        nonce: &str,
        password: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServerStep, DigestError> {
        if token.len() > MAX_RESPONSE_LEN {
            return Err(DigestError::TooLong(token.len()));
        }
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Start => {
                if !token.is_empty() {
                    return Err(DigestError::InitialResponse);
                }
                assert!(!nonce.is_empty() && !nonce.contains(['"', '\\']), "a nonce is plain text");
                let challenge = format!(
                    "realm=\"{SERVER_NAME}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"
                );
                self.state = ServerState::Challenged { nonce: nonce.to_owned() };
                Ok(ServerStep::Continue(challenge.into_bytes()))
            }
            ServerState::Challenged { nonce } => {
                let (rspauth, who) = verify_response(token, &nonce, password)?;
                Ok(ServerStep::Complete(format!("rspauth={rspauth}").into_bytes(), who))
            }
            ServerState::Done => Err(DigestError::Completed),
        }
    }
}

/// Checks a client's digest-response against `nonce`; on success the `rspauth` value.
fn verify_response(
    token: &[u8],
    nonce: &str,
    password: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Authenticated), DigestError> {
    let directives = parse_directives(token).map_err(DigestError::Format)?;
    let get = |name: &str| directives.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let utf8 = match get("charset") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"utf-8") => true,
        Some(v) => return Err(DigestError::Charset(latin1(v))),
    };
    let text = |bytes: &Vec<u8>| -> Result<String, DigestError> {
        if utf8 {
            String::from_utf8(bytes.clone()).map_err(|_| DigestError::Format("a value is not UTF-8".into()))
        } else {
            Ok(latin1(bytes))
        }
    };
    let username = text(get("username").ok_or(DigestError::Missing("username"))?)?;
    let realm = match get("realm") {
        None => String::new(),
        Some(v) => {
            let realm = text(v)?;
            if realm != SERVER_NAME {
                return Err(DigestError::Realm(realm));
            }
            realm
        }
    };
    let nonce_sent = get("nonce").ok_or(DigestError::Missing("nonce"))?;
    if nonce_sent.as_slice() != nonce.as_bytes() {
        return Err(DigestError::Nonce);
    }
    let cnonce = get("cnonce").ok_or(DigestError::Missing("cnonce"))?;
    let nc = get("nc").ok_or(DigestError::Missing("nonce-count"))?;
    if u32::from_str_radix(&latin1(nc), 16) != Ok(1) {
        return Err(DigestError::NonceCount(latin1(nc)));
    }
    let qop = get("qop").map(|q| latin1(q)).unwrap_or_else(|| "auth".to_owned());
    if qop != "auth" {
        return Err(DigestError::Qop(qop));
    }
    let uri = text(get("digest-uri").ok_or(DigestError::Missing("digest-uri"))?)?;
    if !uri.eq_ignore_ascii_case(DIGEST_URI) {
        return Err(DigestError::Uri(uri));
    }
    let response = get("response").ok_or(DigestError::Missing("response"))?;
    let authzid = get("authzid").map(text).transpose()?;
    let Some(secret) = password(&username) else { return Err(DigestError::UnknownUser(username)) };
    let input = DigestInput {
        username: &username,
        realm: &realm,
        password: &secret,
        nonce: nonce.as_bytes(),
        cnonce,
        nc: &latin1(nc),
        authzid: authzid.as_deref(),
        digest_uri: &uri,
        utf8,
    };
    let expected = input.digest(b"AUTHENTICATE:");
    if !constant_time_eq(expected.as_bytes(), &response.to_ascii_lowercase()) {
        return Err(DigestError::WrongPassword);
    }
    let rspauth = input.digest(b":");
    let authorization_id = authzid.unwrap_or_else(|| username.clone());
    Ok((rspauth, Authenticated { authentication_id: username, authorization_id }))
}

/// What both sides hash (RFC 2831 §2.1.2.1, `qop=auth`).
struct DigestInput<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a [u8],
    cnonce: &'a [u8],
    nc: &'a str,
    authzid: Option<&'a str>,
    digest_uri: &'a str,
    utf8: bool,
}

impl DigestInput<'_> {
    /// `HEX(KD(HEX(H(A1)), nonce:nc:cnonce:auth:HEX(H(A2))))` with `A2 = a2_prefix digest-uri`
    /// (`AUTHENTICATE:` for the client's response, `:` for the server's rspauth).
    fn digest(&self, a2_prefix: &[u8]) -> String {
        let mut secret = Vec::new();
        secret.extend(hash_text(self.username, self.utf8));
        secret.push(b':');
        secret.extend(hash_text(self.realm, self.utf8));
        secret.push(b':');
        secret.extend(hash_text(self.password, self.utf8));
        let mut a1 = Md5::digest(&secret).to_vec();
        a1.push(b':');
        a1.extend_from_slice(self.nonce);
        a1.push(b':');
        a1.extend_from_slice(self.cnonce);
        if let Some(authzid) = self.authzid {
            a1.push(b':');
            a1.extend(hash_text(authzid, self.utf8));
        }
        let mut a2 = a2_prefix.to_vec();
        a2.extend_from_slice(self.digest_uri.as_bytes());
        let mut kd = hex(&Md5::digest(&a1)).into_bytes();
        kd.push(b':');
        kd.extend_from_slice(self.nonce);
        kd.push(b':');
        kd.extend_from_slice(self.nc.as_bytes());
        kd.push(b':');
        kd.extend_from_slice(self.cnonce);
        kd.extend_from_slice(b":auth:");
        kd.extend(hex(&Md5::digest(&a2)).into_bytes());
        hex(&Md5::digest(&kd))
    }
}

/// RFC 2831 §2.1.2.1: a name or password is hashed as ISO 8859-1 when every character fits,
/// else (only allowed with `charset=utf-8`) as UTF-8. Without the charset Java encodes it as
/// ISO 8859-1 regardless, unmappable characters becoming `?`.
fn hash_text(text: &str, utf8: bool) -> Vec<u8> {
    if text.chars().all(|c| u32::from(c) <= 0xFF) {
        text.chars().map(|c| u32::from(c) as u8).collect()
    } else if utf8 {
        text.as_bytes().to_vec()
    } else {
        text.chars().map(|c| if u32::from(c) <= 0xFF { u32::from(c) as u8 } else { b'?' }).collect()
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `name=value, name="quoted \" value", …` (RFC 2831 §7.1: a `#` list, so empty
/// elements and spaces around commas are allowed). Repeated directives are refused, except
/// `realm` in a challenge (the first is kept).
pub fn parse_directives(input: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut at = 0usize;
    let skip_space = |at: &mut usize| {
        while *at < input.len() && matches!(input[*at], b' ' | b'\t' | b'\r' | b'\n') {
            *at += 1;
        }
    };
    loop {
        skip_space(&mut at);
        if at == input.len() {
            return Ok(out);
        }
        if input[at] == b',' {
            at += 1;
            continue;
        }
        let start = at;
        while at < input.len() && input[at] != b'=' && input[at] != b',' && !input[at].is_ascii_whitespace() {
            at += 1;
        }
        let name = latin1(&input[start..at]);
        skip_space(&mut at);
        if name.is_empty() || at == input.len() || input[at] != b'=' {
            return Err(format!("expected name=value at byte {start}"));
        }
        at += 1;
        skip_space(&mut at);
        let mut value = Vec::new();
        if at < input.len() && input[at] == b'"' {
            at += 1;
            loop {
                match input.get(at) {
                    None => return Err(format!("unterminated quoted value of {name}")),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        at += 1;
                        let Some(&escaped) = input.get(at) else {
                            return Err(format!("unterminated quoted value of {name}"));
                        };
                        value.push(escaped);
                    }
                    Some(&byte) => value.push(byte),
                }
                at += 1;
            }
            at += 1;
        } else {
            while at < input.len() && input[at] != b',' && !input[at].is_ascii_whitespace() {
                value.push(input[at]);
                at += 1;
            }
        }
        skip_space(&mut at);
        if at < input.len() && input[at] != b',' {
            return Err(format!("expected a comma after {name}"));
        }
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            if name.eq_ignore_ascii_case("realm") {
                continue;
            }
            return Err(format!("{name} appears twice"));
        }
        out.push((name, value));
    }
}

/// Quotes a value for a directive (`"` and `\` escaped).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientState {
    Start,
    Responded { expected_rspauth: String },
    Done,
}

/// The client side: what ZooKeeper's Java client does with a JAAS `Client` section holding a
/// username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestClient {
    username: String,
    password: String,
    state: ClientState,
}

impl DigestClient {
    pub fn new(username: &str, password: &str) -> DigestClient {
        DigestClient {
            username: username.to_owned(),
            password: password.to_owned(),
            state: ClientState::Start,
        }
    }

    /// DIGEST-MD5 has no initial response: the first token a client sends is empty.
    pub fn initial_token(&self) -> Vec<u8> {
        Vec::new()
    }

    pub fn is_complete(&self) -> bool {
        self.state == ClientState::Done
    }

    /// Answers the server's challenge with a digest-response; `cnonce` is fresh random text.
    pub fn respond(&mut self, challenge: &[u8], cnonce: &str) -> Result<Vec<u8>, DigestError> {
        if self.state != ClientState::Start {
            return Err(DigestError::Completed);
        }
        let directives = parse_directives(challenge).map_err(DigestError::Challenge)?;
        let get = |name: &str| directives.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let nonce = get("nonce").ok_or_else(|| DigestError::Challenge("no nonce".into()))?.clone();
        let qops = get("qop").map(|q| latin1(q)).unwrap_or_else(|| "auth".to_owned());
        if !qops.split(',').any(|q| q.trim() == "auth") {
            return Err(DigestError::Challenge(format!("qop {qops:?} does not offer auth")));
        }
        let utf8 = get("charset").is_some_and(|c| c.eq_ignore_ascii_case(b"utf-8"));
        let realm = get("realm").map(|r| latin1(r));
        let nonce_text = latin1(&nonce);
        let input = DigestInput {
            username: &self.username,
            realm: realm.as_deref().unwrap_or(""),
            password: &self.password,
            nonce: &nonce,
            cnonce: cnonce.as_bytes(),
            nc: "00000001",
            authzid: None,
            digest_uri: DIGEST_URI,
            utf8,
        };
        let response = input.digest(b"AUTHENTICATE:");
        let expected_rspauth = input.digest(b":");
        let mut parts = Vec::new();
        if utf8 {
            parts.push("charset=utf-8".to_owned());
        }
        parts.push(format!("username={}", quote(&self.username)));
        if let Some(realm) = &realm {
            parts.push(format!("realm={}", quote(realm)));
        }
        parts.push(format!("nonce={}", quote(&nonce_text)));
        parts.push("nc=00000001".to_owned());
        parts.push(format!("cnonce={}", quote(cnonce)));
        parts.push(format!("digest-uri={}", quote(DIGEST_URI)));
        parts.push("maxbuf=65536".to_owned());
        parts.push(format!("response={response}"));
        parts.push("qop=auth".to_owned());
        self.state = ClientState::Responded { expected_rspauth };
        let text = parts.join(",");
        // Without charset=utf-8 the values go out as ISO 8859-1.
        Ok(if utf8 { text.into_bytes() } else { hash_text(&text, false) })
    }

    /// Checks the server's final `rspauth`: it proves the server knows the password too.
    pub fn finish(&mut self, token: &[u8]) -> Result<(), DigestError> {
        let ClientState::Responded { expected_rspauth } = &self.state else {
            return Err(DigestError::Completed);
        };
        let directives = parse_directives(token).map_err(DigestError::Challenge)?;
        let rspauth = directives.iter().find(|(n, _)| n.eq_ignore_ascii_case("rspauth")).map(|(_, v)| v);
        match rspauth {
            Some(value) if constant_time_eq(value, expected_rspauth.as_bytes()) => {
                self.state = ClientState::Done;
                Ok(())
            }
            _ => Err(DigestError::ServerNotAuthenticated),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rfc_input<'a>(uri: &'a str, nonce: &'a [u8], cnonce: &'a [u8]) -> DigestInput<'a> {
        DigestInput {
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce,
            cnonce,
            nc: "00000001",
            authzid: None,
            digest_uri: uri,
            utf8: false,
        }
    }

    /// RFC 2831 §4, the IMAP and ACAP examples (response and rspauth as the RFC prints them).
    #[test]
    fn rfc_2831_examples() {
        let imap = rfc_input("imap/elwood.innosoft.com", b"OA6MG9tEQGm2hh", b"OA6MHXh6VqTrRk");
        assert_eq!(imap.digest(b"AUTHENTICATE:"), "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(imap.digest(b":"), "ea40f60335c427b5527b84dbabcdfffd");
        let acap = rfc_input("acap/elwood.innosoft.com", b"OA9BSXrbuRhWay", b"OA9BSuZWMSpW8m");
        assert_eq!(acap.digest(b"AUTHENTICATE:"), "6084c6db3fede7352c551284490fd0fc");
        assert_eq!(acap.digest(b":"), "2f0b3d7c3c2e486600ef710726aa2eae");
    }

    fn users(name: &str) -> Option<String> {
        match name {
            "bob" => Some("bobsecret".to_owned()),
            "jörg" => Some("pässwörd€".to_owned()),
            _ => None,
        }
    }

    fn exchange(client: &mut DigestClient) -> Result<Authenticated, DigestError> {
        let mut server = DigestServer::new();
        let ServerStep::Continue(challenge) = server.evaluate(&client.initial_token(), "n0nce", &users)?
        else {
            panic!("the first step is a challenge");
        };
        let response = client.respond(&challenge, "cn0nce")?;
        let ServerStep::Complete(rspauth, who) = server.evaluate(&response, "unused", &users)? else {
            panic!("the second step completes");
        };
        assert!(server.is_complete());
        client.finish(&rspauth)?;
        assert!(client.is_complete());
        Ok(who)
    }

    #[test]
    fn client_and_server_agree() {
        let who = exchange(&mut DigestClient::new("bob", "bobsecret")).unwrap();
        assert_eq!(who.authentication_id, "bob");
        assert_eq!(who.authorization_id, "bob");
        // Non-Latin-1 password characters: hashed as UTF-8 under charset=utf-8.
        assert_eq!(exchange(&mut DigestClient::new("jörg", "pässwörd€")).unwrap().authentication_id, "jörg");
    }

    #[test]
    fn wrong_password_and_unknown_user_fail() {
        assert_eq!(exchange(&mut DigestClient::new("bob", "nope")), Err(DigestError::WrongPassword));
        assert_eq!(
            exchange(&mut DigestClient::new("eve", "x")),
            Err(DigestError::UnknownUser("eve".to_owned()))
        );
    }

    /// The response pure-sasl (kazoo) sends: no charset, `qop` last, and Python's hash.
    #[test]
    fn pure_sasl_style_response_is_accepted() {
        let mut server = DigestServer::new();
        server.evaluate(b"", "abc", &users).unwrap();
        let input = DigestInput {
            username: "bob",
            realm: SERVER_NAME,
            password: "bobsecret",
            nonce: b"abc",
            cnonce: b"123",
            nc: "00000001",
            authzid: None,
            digest_uri: DIGEST_URI,
            utf8: false,
        };
        let token = format!(
            "qop=auth,realm=zk-sasl-md5,username=bob,nonce=abc,cnonce=123,nc=00000001,\
             digest-uri=zookeeper/zk-sasl-md5,response={}",
            input.digest(b"AUTHENTICATE:")
        );
        let step = server.evaluate(token.as_bytes(), "", &users).unwrap();
        assert!(matches!(step, ServerStep::Complete(..)));
    }

    #[test]
    fn malformed_responses_fail_with_their_cause() {
        let fresh = || {
            let mut server = DigestServer::new();
            server.evaluate(b"", "abc", &users).unwrap();
            server
        };
        let cases: &[(&[u8], &str)] = &[
            (b"username=\"bob", "unterminated"),
            (b"username=bob,nonce=abc", "Missing cnonce"),
            (b"username=bob,nonce=xyz,cnonce=1,nc=1", "Mismatched nonce"),
            (b"username=bob,nonce=abc,cnonce=1,nc=2,digest-uri=x,response=0", "Nonce count"),
            (b"username=bob,nonce=abc,cnonce=1,nc=1,qop=auth-conf", "unsupported protection"),
            (b"username=bob,realm=other,nonce=abc", "Nonexistent realm"),
            (b"username=bob,nonce=abc,cnonce=1,nc=1,digest-uri=\"ldap/x\",response=0", "Mismatched URI"),
            (b"charset=latin9,username=bob", "charset"),
            (b"username=a,username=b", "twice"),
            (b"=x", "expected name=value"),
        ];
        for (token, cause) in cases {
            let error = fresh().evaluate(token, "", &users).unwrap_err().to_string();
            assert!(error.contains(cause), "{:?}: {error}", String::from_utf8_lossy(token));
        }
        assert_eq!(DigestServer::new().evaluate(b"x", "n", &users), Err(DigestError::InitialResponse));
        assert_eq!(fresh().evaluate(&[b'a'; 4097], "", &users), Err(DigestError::TooLong(4097)));
    }

    #[test]
    fn a_completed_exchange_takes_no_more_tokens() {
        let mut server = DigestServer::new();
        server.evaluate(b"", "abc", &users).unwrap();
        let _ = server.evaluate(b"username=bob", "", &users);
        assert_eq!(server.evaluate(b"", "abc", &users), Err(DigestError::Completed));
    }

    #[test]
    fn directives_parse_quotes_escapes_and_empty_elements() {
        let parsed = parse_directives(b" a=1 , ,b=\"x\\\"y,z\",realm=\"r1\",realm=\"r2\"").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("a".into(), b"1".to_vec()),
                ("b".into(), b"x\"y,z".to_vec()),
                ("realm".into(), b"r1".to_vec())
            ]
        );
    }

    #[test]
    fn a_forged_rspauth_is_refused() {
        let mut client = DigestClient::new("bob", "bobsecret");
        let challenge = b"realm=\"zk-sasl-md5\",nonce=\"n\",qop=\"auth\",charset=utf-8,algorithm=md5-sess";
        client.respond(challenge, "c").unwrap();
        assert_eq!(
            client.finish(b"rspauth=00000000000000000000000000000000"),
            Err(DigestError::ServerNotAuthenticated)
        );
    }
}
