//! A lossless editor of NUT's five files, and the recipes built on it.
//!
//! **Architecture invariant:** pure. Bytes and a request in, bytes out; no I/O, and no input
//! makes anything here panic. Writing, validating the result against the other files, backups,
//! restarts and undo are the caller's (`manage`).
//!
//! # The model
//! A file is a [`doc::Doc`]: physical lines that keep their bytes (indentation, quoting,
//! comments, CR LF endings, a missing final newline), so an unedited document's `to_bytes()` is
//! its input byte for byte. NUT's own lexer ([`crate::nut::lexer`]) says which lines NUT reads as
//! one and what words it reads; an edit touches only the lines it concerns: a changed value is
//! replaced inside its line (what comes before it and a trailing comment stay), a new line copies
//! the indentation of its section's neighbours, and every line written is read back with the
//! lexer of the given [`NutVersion`] before it is kept.
//!
//! # Edits, per file
//! - ups.conf, [`UpsConfDoc`]: [`set`](UpsConfDoc::set) (a value or a flag; the line NUT uses,
//!   the last, is replaced, else one is added at the end of the section),
//!   [`remove`](UpsConfDoc::remove), [`add_section`](UpsConfDoc::add_section) (after the last
//!   section, a blank line before), [`remove_section`](UpsConfDoc::remove_section) (its lines and
//!   the comments directly above it, and the blank line before those),
//!   [`set_global`](UpsConfDoc::set_global) / [`remove_global`](UpsConfDoc::remove_global).
//! - upsd.users, [`UsersDoc`]: [`put`](UsersDoc::put) adds or replaces a user (password, `upsmon
//!   primary|secondary`, `actions`, `instcmds`), [`set_password`](UsersDoc::set_password),
//!   [`remove`](UsersDoc::remove).
//! - upsmon.conf, [`UpsmonDoc`]: [`put_monitor`](UpsmonDoc::put_monitor) /
//!   [`remove_monitor`](UpsmonDoc::remove_monitor) by UPS name and host (the loopback names are
//!   one host), [`set`](UpsmonDoc::set) / [`remove`](UpsmonDoc::remove) for the other directives
//!   (upsmon uses a directive's last line, so that one is replaced; `NOTIFYFLAG` and `NOTIFYMSG`
//!   are one directive per notify type).
//! - upsd.conf, [`UpsdDoc`]: [`set_listen`](UpsdDoc::set_listen), the whole list of LISTEN lines.
//! - nut.conf, [`NutConfDoc`]: [`set_mode`](NutConfDoc::set_mode), shell style `MODE=...`.
//!
//! Values are written so NUT reads back exactly the value meant: bare when they can be, else
//! quoted with `\`, `"` and `#` escaped (`\#` is literal in every release; a bare `#` in quotes
//! only from 2.8.6), `master`/`slave` before NUT 2.8.0. What NUT cannot carry is refused with an
//! [`EditError`] saying what, where and why: a byte outside 0x20–0x7E (a newline would add a
//! line), a word longer than NUT keeps, a UPS or user name other than letters, digits, `_`, `-`,
//! `.` (no `..`, no leading `-` or `.`: no `[`, `]`, `/` or white space), a MONITOR user or
//! password upsmon cannot send (upsmon writes `PASSWORD %s` unquoted, so no space, `=`, `#`, `"`,
//! `\`).
//!
//! # Recipes
//! Pure functions from the five files' current bytes ([`Files`], a missing file is empty) and a
//! request to the new bytes of exactly the files that change, keyed by [`crate::nut::UPS_CONF`]
//! and the other names:
//! - [`adopt`]: a section from the probe's suggestion ([`SectionSpec::from_text`] of
//!   `probe::cross::section_text`), a monitoring account ([`monitor_account`], `upsmon
//!   primary`, the caller's password: [`password_from`] turns 24 random bytes into one), the
//!   MONITOR line `NAME@localhost 1 USER PASS primary`, and `MODE=standalone` unless MODE is
//!   standalone or netserver. Refused when the name is taken or a section already serves the
//!   same device.
//! - [`remove`]: the section, its local MONITOR lines, and the account [`adopt`] made for it
//!   when no other MONITOR line uses it.
//! - [`to_nut`]: the settings' driver, port and credentials ([`SyncRequest`], built from a
//!   `settings::model::UpsEntry`) into the section, the MONITOR line and the account, creating
//!   what is missing.

pub mod doc;
mod files;
mod recipe;
mod value;

pub use files::{
    same_host, Entry, MonitorLine, MonitorSpec, NutConfDoc, Role, SectionSpec, UpsConfDoc, UpsdDoc,
    UpsmonDoc, UserSpec, UsersDoc,
};
pub use recipe::{
    adopt, monitor_account, password_from, remove, to_nut, AdoptRequest, Changes, Files,
    SyncRequest, BATTERY_TEST_COMMANDS,
};
pub use recipe::{
    client_accounts, client_add, client_remove, fixed_login_warning, ClientAccount, ClientAdded,
    ClientRequest, Preset,
};

use std::fmt;

/// The longest UPS or user name written.
pub const MAX_NAME: usize = 64;

/// Why an edit was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditError {
    /// `ups.conf`, …
    pub file: &'static str,
    /// The section, user or directive: `[myups]`, `user [monitor]`, `MONITOR myups`.
    pub place: String,
    /// The 1-based line, when the refusal is about one.
    pub line: Option<u32>,
    pub reason: Reason,
}

/// What was wrong. Values are never echoed: they may be passwords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A value NUT cannot carry as given.
    Value {
        what: String,
        why: String,
    },
    /// A name NUT's grammar does not take.
    Name {
        what: String,
        why: String,
    },
    NotFound {
        what: String,
    },
    Exists {
        what: String,
    },
    /// A section already serves the device being adopted.
    SameDevice {
        section: String,
    },
    /// A section needs a driver and a port.
    Incomplete {
        what: String,
    },
    /// The UPS is served by another machine's upsd, whose files these are not.
    NotLocal {
        host: String,
    },
    /// A line written would not read back as meant (never expected: every value is checked
    /// first).
    NotReadBack,
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}: ", self.place)?;
        match &self.reason {
            Reason::Value { what, why } | Reason::Name { what, why } => write!(f, "{what} {why}"),
            Reason::NotFound { what } => write!(f, "no such {what}"),
            Reason::Exists { what } => write!(f, "a {what} of this name exists already"),
            Reason::SameDevice { section } => {
                write!(f, "section [{section}] already serves this device")
            }
            Reason::Incomplete { what } => write!(f, "needs {what}"),
            Reason::NotLocal { host } => write!(
                f,
                "the UPS is served by upsd at {host}, not this machine: edit NUT's files there"
            ),
            Reason::NotReadBack => f.write_str("NUT would not read the line written as meant"),
        }
    }
}

impl std::error::Error for EditError {}

#[cfg(test)]
mod tests;
