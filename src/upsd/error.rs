//! What went wrong talking to upsd, in the plan's error classes, with what to check next.

use std::fmt;

/// The plan's error classes, plus replies that make no sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Cannot connect, refused, timed out, closed; the driver is not connected or its data stale.
    Connection,
    /// The UPS, variable or command is not configured, or the request is not valid for it.
    Configuration,
    /// The user name, password or the user's rights.
    Authentication,
    /// A reply that is not NUT's protocol, or is longer than upsd ever sends.
    Protocol,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connection => "connection",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Protocol => "protocol",
        }
    }
}

/// What went wrong with upsd, in three kinds kept apart (as tokio-modbus keeps a device's
/// exception apart from an I/O error): the way to upsd failed, upsd refused, or we did not send.
///
/// **Architecture invariant:** no caller decides what a failure was by its text: the variant
/// says whether the transport failed, [`NutError::refusal`] names upsd's `ERR` code, and each
/// code's class and advice come from the one table below ([`ErrCode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NutError {
    /// Connecting, resolving, time, a closed or broken stream, TLS, or bytes that are not NUT's
    /// protocol: the connection cannot be used any more.
    Transport(Transport),
    /// upsd answered `ERR CODE`; the session is as it was.
    Refused(Refused),
    /// Nothing was sent, or a verdict of ours: the request cannot be encoded, the policy forbids
    /// it (a password in clear text, TLS without a trust anchor), or the answer says what to fix.
    Local(Local),
}

/// A failure of the way to upsd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    pub failure: TransportFailure,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    Resolve,
    ConnectRefused,
    ConnectFailed,
    ConnectTimeout,
    /// No complete reply in time (the request's or the command's).
    Timeout,
    Closed,
    Io,
    TlsHandshake,
    /// A reply that is not NUT's protocol.
    BadReply,
    /// A reply line longer than upsd ever sends.
    LineTooLong,
}

impl TransportFailure {
    pub fn code(self) -> &'static str {
        use TransportFailure::*;
        match self {
            Resolve => "resolve",
            ConnectRefused => "connect-refused",
            ConnectFailed => "connect-failed",
            ConnectTimeout => "connect-timeout",
            Timeout => "timeout",
            Closed => "closed",
            Io => "io",
            TlsHandshake => "tls-handshake",
            BadReply => "bad-reply",
            LineTooLong => "line-too-long",
        }
    }

    pub fn kind(self) -> ErrorKind {
        match self {
            TransportFailure::BadReply | TransportFailure::LineTooLong => ErrorKind::Protocol,
            _ => ErrorKind::Connection,
        }
    }

    /// Whether a new connection may fare better (the peer was unreachable, slow or gone, not a
    /// peer that answers wrongly).
    pub fn reconnect_may_help(self) -> bool {
        !matches!(
            self,
            TransportFailure::BadReply
                | TransportFailure::LineTooLong
                | TransportFailure::TlsHandshake
        )
    }
}

/// upsd answered `ERR CODE` to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrCode,
    /// The request's name (`GET VAR`, `LOGIN`, ...).
    pub request: String,
}

/// A failure on our side: nothing sent, or our verdict on what came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

macro_rules! err_codes {
    ($( $v:ident = $s:literal => $kind:ident, $what:literal, $hint:literal; )*) => {
        /// upsd's `ERR` codes: the 23 of NUT's protocol specification and the legacy ones older
        /// servers send, each with its class, what it means and what to check.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum ErrCode {
            $($v,)*
            /// A code this client does not know.
            Other(String),
        }

        impl ErrCode {
            pub fn parse(s: &str) -> ErrCode {
                match s {
                    $($s => ErrCode::$v,)*
                    _ => ErrCode::Other(s.to_string()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrCode::$v => $s,)*
                    ErrCode::Other(s) => s,
                }
            }

            /// The one place where each code gets its class and advice.
            pub fn class(&self) -> (ErrorKind, &'static str, &'static str) {
                match self {
                    $(ErrCode::$v => (ErrorKind::$kind, $what, $hint),)*
                    ErrCode::Other(_) => (
                        ErrorKind::Protocol,
                        "upsd answered with an error code this client does not know",
                        "check the NUT version",
                    ),
                }
            }
        }

        /// Every `ERR` code this client knows.
        pub const ERR_CODES: &[&str] = &[$($s),*];
    };
}

err_codes! {
    AccessDenied = "ACCESS-DENIED" => Authentication, "upsd refused: wrong user name or password, or the user lacks the right", "check the user's password, actions and upsmon line in upsd.users (`power-snitch validate`)";
    InvalidPassword = "INVALID-PASSWORD" => Authentication, "upsd refused the password", "check the password in upsd.users";
    InvalidUsername = "INVALID-USERNAME" => Authentication, "upsd refused the user name", "check the user's [section] in upsd.users";
    UsernameRequired = "USERNAME-REQUIRED" => Authentication, "upsd needs USERNAME first", "give a user name";
    PasswordRequired = "PASSWORD-REQUIRED" => Authentication, "upsd needs PASSWORD first", "give the password";
    AlreadySetUsername = "ALREADY-SET-USERNAME" => Authentication, "upsd already has this from the session", "open a new connection";
    AlreadySetPassword = "ALREADY-SET-PASSWORD" => Authentication, "upsd already has this from the session", "open a new connection";
    AlreadyLoggedIn = "ALREADY-LOGGED-IN" => Authentication, "upsd already has this from the session", "open a new connection";
    UnknownUps = "UNKNOWN-UPS" => Configuration, "upsd does not know this UPS", "check the UPS name against ups.conf's [sections] (`power-snitch status` lists them)";
    VarNotSupported = "VAR-NOT-SUPPORTED" => Configuration, "this UPS has no such variable", "list the UPS's variables with `power-snitch status UPS`";
    VarUnknown = "VAR-UNKNOWN" => Configuration, "this UPS has no such variable", "list the UPS's variables with `power-snitch status UPS`";
    CmdNotSupported = "CMD-NOT-SUPPORTED" => Configuration, "this UPS has no such command", "list the UPS's commands (LIST CMD)";
    UnknownInstcmd = "UNKNOWN-INSTCMD" => Configuration, "this UPS has no such command", "list the UPS's commands (LIST CMD)";
    InvalidArgument = "INVALID-ARGUMENT" => Configuration, "upsd did not accept the request's arguments", "a word with spaces, `=` or `#` must be quoted; upsmon sends passwords unquoted";
    MissingArgument = "MISSING-ARGUMENT" => Configuration, "upsd did not accept the request's arguments", "a word with spaces, `=` or `#` must be quoted; upsmon sends passwords unquoted";
    InvalidValue = "INVALID-VALUE" => Configuration, "the value is not valid for this variable", "see the variable's type and range (GET TYPE, LIST RANGE, LIST ENUM)";
    Readonly = "READONLY" => Configuration, "this variable cannot be set", "only variables in LIST RW can be set";
    TooLong = "TOO-LONG" => Configuration, "the value is too long for this variable", "shorten it";
    SetFailed = "SET-FAILED" => Configuration, "the driver could not set the variable", "see the driver's log";
    InstcmdFailed = "INSTCMD-FAILED" => Configuration, "the driver could not run the command", "see the driver's log";
    FeatureNotSupported = "FEATURE-NOT-SUPPORTED" => Configuration, "this upsd does not support the feature", "a newer NUT, or a build with it (e.g. SSL)";
    FeatureNotConfigured = "FEATURE-NOT-CONFIGURED" => Configuration, "the feature is not configured in upsd", "for STARTTLS, set CERTFILE (OpenSSL) or CERTPATH and CERTIDENT (NSS) in upsd.conf";
    AlreadySslMode = "ALREADY-SSL-MODE" => Protocol, "the connection is already encrypted", "send STARTTLS once";
    UnknownCommand = "UNKNOWN-COMMAND" => Protocol, "upsd does not know this request", "upsd may be older than this request";
    UnknownType = "UNKNOWN-TYPE" => Protocol, "upsd does not know this request", "upsd may be older than this request";
    DriverNotConnected = "DRIVER-NOT-CONNECTED" => Connection, "upsd is running but the UPS's driver is not connected to it", "start the driver (`upsdrvctl start UPS`) and check its port and cable";
    DataStale = "DATA-STALE" => Connection, "the driver has not updated the UPS's data in time (MAXAGE)", "check the UPS cable and the driver's log";
}

impl NutError {
    /// A failure of ours (nothing sent, or our verdict).
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        NutError::Local(Local {
            kind,
            code: code.to_string(),
            message: message.into(),
            hint: None,
        })
    }

    /// The way to upsd failed.
    pub fn transport(failure: TransportFailure, message: impl Into<String>) -> Self {
        NutError::Transport(Transport {
            failure,
            message: message.into(),
            hint: None,
        })
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        match &mut self {
            NutError::Transport(t) => t.hint = Some(hint.into()),
            NutError::Local(l) => l.hint = Some(hint.into()),
            // A refusal's advice is the table's.
            NutError::Refused(_) => {}
        }
        self
    }

    /// upsd answered `ERR CODE` to `request`.
    pub fn from_err(code: &str, request: &str) -> Self {
        NutError::Refused(Refused {
            code: ErrCode::parse(code),
            request: request.to_string(),
        })
    }

    /// The class the plan's error handling goes by.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NutError::Transport(t) => t.failure.kind(),
            NutError::Refused(r) => r.code.class().0,
            NutError::Local(l) => l.kind,
        }
    }

    /// A stable code: upsd's `ERR` word, or ours.
    pub fn code(&self) -> &str {
        match self {
            NutError::Transport(t) => t.failure.code(),
            NutError::Refused(r) => r.code.as_str(),
            NutError::Local(l) => &l.code,
        }
    }

    pub fn message(&self) -> String {
        match self {
            NutError::Transport(t) => t.message.clone(),
            NutError::Refused(r) => format!(
                "{}: {} (ERR {})",
                r.request,
                r.code.class().1,
                r.code.as_str()
            ),
            NutError::Local(l) => l.message.clone(),
        }
    }

    pub fn hint_text(&self) -> Option<&str> {
        match self {
            NutError::Transport(t) => t.hint.as_deref(),
            NutError::Refused(r) => Some(r.code.class().2),
            NutError::Local(l) => l.hint.as_deref(),
        }
    }

    /// The connection failed or can no longer be trusted.
    pub fn is_transport(&self) -> bool {
        matches!(self, NutError::Transport(_))
    }

    /// The transport failed in a way a new connection may fix (see
    /// [`TransportFailure::reconnect_may_help`]).
    pub fn reconnect_may_help(&self) -> bool {
        matches!(self, NutError::Transport(t) if t.failure.reconnect_may_help())
    }

    /// upsd's `ERR` code, when upsd refused.
    pub fn refusal(&self) -> Option<&ErrCode> {
        match self {
            NutError::Refused(r) => Some(&r.code),
            _ => None,
        }
    }

    /// The transport's failure, when the transport failed.
    pub fn transport_failure(&self) -> Option<TransportFailure> {
        match self {
            NutError::Transport(t) => Some(t.failure),
            _ => None,
        }
    }
}

impl fmt::Display for NutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error [{}]: {}",
            self.kind().as_str(),
            self.code(),
            self.message()
        )?;
        if let Some(h) = self.hint_text() {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NutError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_class() {
        for code in ERR_CODES {
            let e = NutError::from_err(code, "GET VAR");
            assert!(
                !e.message().contains("this client does not know"),
                "{code} falls through to the unknown-code arm"
            );
            assert_eq!(e.code(), *code);
            assert!(!e.is_transport());
        }
        assert_eq!(
            NutError::from_err("ACCESS-DENIED", "LOGIN").kind(),
            ErrorKind::Authentication
        );
        assert_eq!(
            NutError::from_err("UNKNOWN-UPS", "LOGIN").kind(),
            ErrorKind::Configuration
        );
        assert_eq!(
            NutError::from_err("DATA-STALE", "GET VAR").kind(),
            ErrorKind::Connection
        );
        assert_eq!(
            NutError::from_err("BOGUS", "GET VAR").kind(),
            ErrorKind::Protocol
        );
    }
}
