//! `KeeperException.Code`: the error codes carried in `ReplyHeader.err`.

macro_rules! codes {
    ($($name:ident = $value:expr, $text:expr;)*) => {
        /// A ZooKeeper result code. `Ok` is 0; everything else is an error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum Code { $($name = $value),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The code for a wire value, if ZooKeeper defines it.
            pub fn from_i32(value: i32) -> Option<Code> {
                match value { $($value => Some(Code::$name),)* _ => None }
            }

            /// The message `KeeperException.getCodeMessage` gives for this code.
            pub fn message(self) -> &'static str {
                match self { $(Code::$name => $text),* }
            }
        }
    };
}

codes! {
    Ok = 0, "ok";
    SystemError = -1, "SystemError";
    RuntimeInconsistency = -2, "RuntimeInconsistency";
    DataInconsistency = -3, "DataInconsistency";
    ConnectionLoss = -4, "ConnectionLoss";
    MarshallingError = -5, "MarshallingError";
    Unimplemented = -6, "Unimplemented";
    OperationTimeout = -7, "OperationTimeout";
    BadArguments = -8, "BadArguments";
    UnknownSession = -12, "Unknown session";
    NewConfigNoQuorum = -13, "New config no quorum";
    ReconfigInProgress = -14, "Reconfig in progress";
    ApiError = -100, "APIError";
    NoNode = -101, "NoNode";
    NoAuth = -102, "NoAuth";
    BadVersion = -103, "BadVersion";
    NoChildrenForEphemerals = -108, "NoChildrenForEphemerals";
    NodeExists = -110, "NodeExists";
    NotEmpty = -111, "Directory not empty";
    SessionExpired = -112, "Session expired";
    InvalidCallback = -113, "Invalid callback";
    InvalidAcl = -114, "InvalidACL";
    AuthFailed = -115, "AuthFailed";
    SessionMoved = -118, "Session moved";
    NotReadOnly = -119, "Not a read-only call";
    EphemeralOnLocalSession = -120, "Ephemeral node on local session";
    NoWatcher = -121, "No such watcher";
    RequestTimeout = -122, "Request timeout";
    ReconfigDisabled = -123, "Reconfig is disabled";
    SessionClosedRequireSaslAuth = -124, "Session closed because client failed to authenticate";
    QuotaExceeded = -125, "Quota has exceeded";
    ThrottledOp = -127, "Op throttled due to high load";
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    pub fn is_ok(self) -> bool {
        self == Code::Ok
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_code() {
        for code in Code::ALL {
            assert_eq!(Code::from_i32(code.as_i32()), Some(*code));
        }
        assert_eq!(Code::from_i32(-126), None);
        assert_eq!(Code::NoNode.as_i32(), -101);
    }
}
