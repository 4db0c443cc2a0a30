//! The client's error type.

use ferrokeeper_proto::Code;

/// Everything a client call can fail with.
///
/// Server-side and session-level failures carry a ZooKeeper [`Code`]; `Display` renders them the
/// way `zkCli.sh` does (`Node does not exist: /java`, `Node already exists: /java`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server (or the session machinery: `ConnectionLoss`, `SessionExpired`) answered with
    /// a non-zero code. `path` is the path the request named (without chroot), when it had one.
    #[error("{}", keeper_message(*code, path.as_deref()))]
    Keeper { code: Code, path: Option<String> },
    /// A path argument failed `PathUtils.validatePath`.
    #[error("{0}")]
    InvalidPath(String),
    /// An argument the client rejects before sending anything.
    #[error("{0}")]
    BadArguments(String),
    /// The connect string could not be parsed.
    #[error("invalid connect string: {0}")]
    ConnectString(String),
    /// No server accepted a session before the connect deadline.
    #[error("could not connect to {0}")]
    ConnectFailed(String),
    /// The client was closed with [`crate::ZooKeeper::close`].
    #[error("client is closed")]
    Closed,
    /// The server sent something the client could not decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The TLS settings cannot be used (a store that cannot be read, a missing trust store).
    #[error("TLS: {0}")]
    Tls(String),
    /// The SASL settings cannot be used (a JAAS file that cannot be read or lacks its section).
    #[error("SASL: {0}")]
    Sasl(String),
}

impl Error {
    /// The ZooKeeper code closest to this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Keeper { code, .. } => *code,
            Error::InvalidPath(_)
            | Error::BadArguments(_)
            | Error::ConnectString(_)
            | Error::Tls(_)
            | Error::Sasl(_) => Code::BadArguments,
            Error::ConnectFailed(_) => Code::ConnectionLoss,
            Error::Closed => Code::SessionExpired,
            Error::Protocol(_) => Code::MarshallingError,
        }
    }

    pub(crate) fn keeper(code: Code, path: Option<&str>) -> Error {
        Error::Keeper { code, path: path.map(str::to_owned) }
    }

    pub(crate) fn from_raw(err: i32, path: Option<&str>) -> Error {
        let code = Code::from_i32(err).unwrap_or(Code::SystemError);
        Error::keeper(code, path)
    }

    /// Whether the request may have failed only because the connection dropped.
    pub fn is_connection_loss(&self) -> bool {
        self.code() == Code::ConnectionLoss
    }
}

/// The message `zkCli.sh`'s `CliWrapperException` prints, falling back to
/// `KeeperException.getMessage()` (`KeeperErrorCode = X for /path`).
fn keeper_message(code: Code, path: Option<&str>) -> String {
    let p = path.unwrap_or("");
    match code {
        Code::NoNode => format!("Node does not exist: {p}"),
        Code::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        Code::NodeExists => format!("Node already exists: {p}"),
        Code::NotEmpty => format!("Node not empty: {p}"),
        Code::NotReadOnly => format!("Not a read-only call: {p}"),
        Code::InvalidAcl => format!("Acl is not valid : {p}"),
        Code::NoAuth => format!("Insufficient permission : {p}"),
        Code::BadArguments => format!("Arguments are not valid : {p}"),
        Code::BadVersion => format!("version No is not valid : {p}"),
        _ => match path {
            Some(path) => format!("KeeperErrorCode = {} for {path}", code.message()),
            None => format!("KeeperErrorCode = {}", code.message()),
        },
    }
}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, Error>;
