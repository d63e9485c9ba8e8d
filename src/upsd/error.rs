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

/// One failure: its class, a stable code (upsd's `ERR` word, or our own for local failures),
/// what happened and what to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NutError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

impl NutError {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        NutError {
            kind,
            code: code.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// upsd answered `ERR CODE`: the one place where each code gets its class and advice.
    pub fn from_err(code: &str, request: &str) -> Self {
        use ErrorKind::*;
        let (kind, what, hint): (ErrorKind, &str, &str) = match code {
            "ACCESS-DENIED" => (Authentication, "upsd refused: wrong user name or password, or the user lacks the right", "check the user's password, actions and upsmon line in upsd.users (`power-snitch validate`)"),
            "INVALID-PASSWORD" => (Authentication, "upsd refused the password", "check the password in upsd.users"),
            "INVALID-USERNAME" => (Authentication, "upsd refused the user name", "check the user's [section] in upsd.users"),
            "USERNAME-REQUIRED" => (Authentication, "upsd needs USERNAME first", "give a user name"),
            "PASSWORD-REQUIRED" => (Authentication, "upsd needs PASSWORD first", "give the password"),
            "ALREADY-SET-USERNAME" | "ALREADY-SET-PASSWORD" | "ALREADY-LOGGED-IN" => (Authentication, "upsd already has this from the session", "open a new connection"),
            "UNKNOWN-UPS" => (Configuration, "upsd does not know this UPS", "check the UPS name against ups.conf's [sections] (`power-snitch status` lists them)"),
            "VAR-NOT-SUPPORTED" | "VAR-UNKNOWN" => (Configuration, "this UPS has no such variable", "list the UPS's variables with `power-snitch status UPS`"),
            "CMD-NOT-SUPPORTED" | "UNKNOWN-INSTCMD" => (Configuration, "this UPS has no such command", "list the UPS's commands (LIST CMD)"),
            "INVALID-ARGUMENT" | "MISSING-ARGUMENT" => (Configuration, "upsd did not accept the request's arguments", "a word with spaces, `=` or `#` must be quoted; upsmon sends passwords unquoted"),
            "INVALID-VALUE" => (Configuration, "the value is not valid for this variable", "see the variable's type and range (GET TYPE, LIST RANGE, LIST ENUM)"),
            "READONLY" => (Configuration, "this variable cannot be set", "only variables in LIST RW can be set"),
            "TOO-LONG" => (Configuration, "the value is too long for this variable", "shorten it"),
            "SET-FAILED" => (Configuration, "the driver could not set the variable", "see the driver's log"),
            "INSTCMD-FAILED" => (Configuration, "the driver could not run the command", "see the driver's log"),
            "FEATURE-NOT-SUPPORTED" => (Configuration, "this upsd does not support the feature", "a newer NUT, or a build with it (e.g. SSL)"),
            "FEATURE-NOT-CONFIGURED" => (Configuration, "the feature is not configured in upsd", "for STARTTLS, set CERTFILE (OpenSSL) or CERTPATH and CERTIDENT (NSS) in upsd.conf"),
            "ALREADY-SSL-MODE" => (Protocol, "the connection is already encrypted", "send STARTTLS once"),
            "UNKNOWN-COMMAND" | "UNKNOWN-TYPE" => (Protocol, "upsd does not know this request", "upsd may be older than this request"),
            "DRIVER-NOT-CONNECTED" => (Connection, "upsd is running but the UPS's driver is not connected to it", "start the driver (`upsdrvctl start UPS`) and check its port and cable"),
            "DATA-STALE" => (Connection, "the driver has not updated the UPS's data in time (MAXAGE)", "check the UPS cable and the driver's log"),
            _ => (Protocol, "upsd answered with an error code this client does not know", "check the NUT version"),
        };
        NutError::new(kind, code, format!("{request}: {what} (ERR {code})")).hint(hint)
    }
}

impl fmt::Display for NutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error [{}]: {}",
            self.kind.as_str(),
            self.code,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NutError {}

/// Every `ERR` code: the 23 of NUT's protocol specification and the legacy ones older servers send.
pub const ERR_CODES: &[&str] = &[
    "ACCESS-DENIED",
    "UNKNOWN-UPS",
    "VAR-NOT-SUPPORTED",
    "CMD-NOT-SUPPORTED",
    "INVALID-ARGUMENT",
    "INSTCMD-FAILED",
    "SET-FAILED",
    "READONLY",
    "TOO-LONG",
    "FEATURE-NOT-SUPPORTED",
    "FEATURE-NOT-CONFIGURED",
    "ALREADY-SSL-MODE",
    "DRIVER-NOT-CONNECTED",
    "DATA-STALE",
    "ALREADY-LOGGED-IN",
    "INVALID-PASSWORD",
    "ALREADY-SET-PASSWORD",
    "INVALID-USERNAME",
    "ALREADY-SET-USERNAME",
    "USERNAME-REQUIRED",
    "PASSWORD-REQUIRED",
    "UNKNOWN-COMMAND",
    "INVALID-VALUE",
    "VAR-UNKNOWN",
    "UNKNOWN-TYPE",
    "UNKNOWN-INSTCMD",
    "MISSING-ARGUMENT",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_class() {
        for code in ERR_CODES {
            let e = NutError::from_err(code, "GET VAR");
            assert!(
                !e.message.contains("this client does not know"),
                "{code} falls through to the unknown-code arm"
            );
        }
        assert_eq!(
            NutError::from_err("ACCESS-DENIED", "LOGIN").kind,
            ErrorKind::Authentication
        );
        assert_eq!(
            NutError::from_err("UNKNOWN-UPS", "LOGIN").kind,
            ErrorKind::Configuration
        );
        assert_eq!(
            NutError::from_err("DATA-STALE", "GET VAR").kind,
            ErrorKind::Connection
        );
        assert_eq!(
            NutError::from_err("BOGUS", "GET VAR").kind,
            ErrorKind::Protocol
        );
    }
}
