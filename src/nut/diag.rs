//! Findings: what is wrong, where, and what would be right.

use std::fmt;

use super::lexer::Pos;

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($($name:ident = $text:literal: $doc:literal,)*) => {
        /// Stable finding codes. The text of each is part of the JSON output and never changes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($name,)* }

        impl Code {
            /// Every code, in the order of the README's table.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => $text,)* }
            }

            /// One sentence on what the code means.
            pub fn describe(self) -> &'static str {
                match self { $(Code::$name => $doc,)* }
            }
        }
    };
}

codes! {
    // What NUT's lexer silently does to the text.
    LineSkipped = "line-skipped": "NUT reports a parse error and skips the line",
    BytesDropped = "bytes-dropped": "NUT drops control characters and non-ASCII bytes",
    WordCut = "word-cut": "NUT cuts a word at 512 characters",
    WordsDropped = "words-dropped": "NUT keeps at most 32 words of a line",
    EqualsSplit = "equals-split": "an unquoted `=` splits a word in two",
    QuoteRunsOn = "quote-runs-on": "a quoted word runs over a line break",
    UnterminatedQuote = "unterminated-quote": "a quote is never closed and takes the rest of the file",
    EmptyWord = "empty-word": "NUT reads an empty word the text does not show",
    BackslashCr = "backslash-cr": "a trailing backslash before a Windows line ending does not join lines",
    LastLineLost = "last-line-lost": "a one-word last line without a newline is never read",
    QuoteInWord = "quote-in-word": "a quote inside a word is a literal character",
    TextAfterQuote = "text-after-quote": "text right after a closing quote is a new word",
    CommentInWord = "comment-in-word": "a `#` right after a word's text starts a comment and cuts the word",
    // Shapes of lines.
    ExtraWords = "extra-words": "words after the value are ignored",
    MissingValue = "missing-value": "a setting without a value",
    NotASetting = "not-a-setting": "a line NUT ignores because it is neither a section nor a setting",
    OutsideSection = "outside-section": "a setting that belongs in a section appears before any",
    UnknownDirective = "unknown-directive": "a keyword that NUT does not know",
    BadValue = "bad-value": "a value NUT cannot use",
    Deprecated = "deprecated": "a spelling NUT still accepts but has replaced",
    Removed = "removed": "a directive that NUT no longer supports",
    Duplicate = "duplicate": "something defined twice",
    // ups.conf.
    MissingDriver = "missing-driver": "a UPS section without `driver`",
    MissingPort = "missing-port": "a UPS section without `port`",
    UnknownDriver = "unknown-driver": "a driver that this NUT does not ship",
    UnknownVariable = "unknown-variable": "a variable the driver does not accept (a fatal error for the driver)",
    FlagWithValue = "flag-with-value": "a flag given a value, or a value given as a flag",
    BadSectionName = "bad-section-name": "a UPS or user name that NUT or its clients cannot use",
    NoUps = "no-ups": "ups.conf defines no UPS",
    // upsd.conf.
    BadListen = "bad-listen": "a LISTEN address or port upsd cannot use",
    // upsd.users and upsmon.conf.
    MissingPassword = "missing-password": "a user without a password",
    BadMonitor = "bad-monitor": "a MONITOR line upsmon cannot use",
    MonitorUnknownUps = "monitor-unknown-ups": "MONITOR names a UPS that ups.conf does not define",
    MonitorUnknownUser = "monitor-unknown-user": "MONITOR names a user that upsd.users does not define",
    MonitorWrongPassword = "monitor-wrong-password": "MONITOR's password differs from upsd.users",
    MonitorNoRole = "monitor-no-role": "the MONITOR user lacks the upsmon role the line asks for",
    MonitorNotListening = "monitor-not-listening": "upsd does not listen where MONITOR connects",
    InsufficientPower = "insufficient-power": "MINSUPPLIES is more than the MONITOR lines supply",
    NoMonitor = "no-monitor": "upsmon.conf monitors no UPS",
    // nut.conf and the set of files.
    BadMode = "bad-mode": "nut.conf's MODE is missing, unknown or does not fit the files",
    ShellSyntax = "shell-syntax": "nut.conf is read by the shell and this line is not a plain assignment",
    // Files.
    MissingFile = "missing-file": "a file that this mode needs is missing",
    Unreadable = "unreadable": "a file that cannot be read",
    WorldReadable = "world-readable": "a file with passwords that every user can read",
    DaemonCannotRead = "daemon-cannot-read": "the NUT daemon's user cannot read the file",
    NutNotInstalled = "nut-not-installed": "no NUT configuration directory",
    // Power Snitch's settings against NUT's files.
    SettingsUpsMissing = "settings-ups-missing": "a UPS in the settings that ups.conf does not define",
    SettingsDriver = "settings-driver": "the settings' driver differs from ups.conf's",
    SettingsPort = "settings-port": "the settings' port differs from ups.conf's",
    SettingsUser = "settings-user": "the settings' user is not in upsd.users",
    SettingsPassword = "settings-password": "the settings' password differs from upsd.users'",
    SettingsRights = "settings-rights": "the settings' user lacks the upsmon rights the agent needs",
    SettingsMonitor = "settings-monitor": "upsmon.conf's MONITOR line disagrees with the settings",
    ChangedSinceLastCheck = "changed-since-last-check": "a NUT file or the settings changed since the last check",
    // Hardware against ups.conf, and what upsd serves.
    DriverMismatch = "driver-mismatch": "the section's driver cannot serve the device it selects",
    PortMissing = "port-missing": "a serial port that does not exist",
    PortUnstable = "port-unstable": "a USB serial port name that can change, where a stable by-id name exists",
    PortInUse = "port-in-use": "a serial port that was not probed: in use, locked or the console",
    MatcherNoMatch = "matcher-no-match": "USB matchers that select no connected device",
    MatcherAmbiguous = "matcher-ambiguous": "USB matchers that select several devices",
    MatcherUnstable = "matcher-unstable": "a USB matcher on a number that changes on replug or reboot",
    DeviceClaimedTwice = "device-claimed-twice": "two sections select the same device",
    UpsAbsent = "ups-absent": "a configured UPS that is not connected or does not answer",
    UpsUnconfigured = "ups-unconfigured": "a connected UPS that no section serves",
    DevicePermission = "device-permission": "the driver's user cannot open the device node",
    ProbeProblem = "probe-problem": "a device or port that could not be read while probing",
    NotServed = "not-served": "a section that upsd does not serve",
    DriverNotConnected = "driver-not-connected": "upsd serves the UPS but its driver is not connected",
    DataStale = "data-stale": "upsd's data for the UPS is stale",
    LiveMismatch = "live-mismatch": "what upsd serves disagrees with ups.conf or the device",
    UpsdUnreachable = "upsd-unreachable": "upsd could not be asked",
    // The NUT release.
    KnownDefect = "known-defect": "the NUT release has a known defect that this configuration meets",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    /// The file's name within the NUT directory (`ups.conf`), or empty for the directory.
    pub file: String,
    /// 1-based; 0 when the finding is about the whole file.
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub hint: Option<String>,
    /// The ups.conf section the finding is about, when it is about one.
    pub section: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, code: Code, file: &str, pos: Pos, message: String) -> Self {
        Finding {
            severity,
            code,
            file: file.to_string(),
            line: pos.line,
            column: pos.col,
            message,
            hint: None,
            section: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Collects the findings of one file.
pub struct Sink<'a> {
    pub file: &'a str,
    pub findings: Vec<Finding>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a str) -> Self {
        Sink {
            file,
            findings: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        severity: Severity,
        code: Code,
        pos: Pos,
        message: String,
    ) -> &mut Finding {
        self.findings
            .push(Finding::new(severity, code, self.file, pos, message));
        self.findings.last_mut().expect("just pushed")
    }

    pub fn error(&mut self, code: Code, pos: Pos, message: String) -> &mut Finding {
        self.push(Severity::Error, code, pos, message)
    }

    pub fn warning(&mut self, code: Code, pos: Pos, message: String) -> &mut Finding {
        self.push(Severity::Warning, code, pos, message)
    }

    pub fn info(&mut self, code: Code, pos: Pos, message: String) -> &mut Finding {
        self.push(Severity::Info, code, pos, message)
    }
}

impl Sink<'_> {
    /// Marks the findings from `from` on as being about `section`.
    pub fn about_section(&mut self, from: usize, section: &str) {
        for f in &mut self.findings[from..] {
            f.section = Some(section.to_string());
        }
    }
}

impl Finding {
    /// Adds a hint in place (for use on what [`Sink`] returns).
    pub fn with_hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}
