//! NUT's configuration: read every file as NUT does and say what is wrong with it.
//!
//! **Architecture invariant:** everything here but [`host`] is pure: it takes bytes, metadata
//! and a [`Context`] and returns findings. [`host`] is the only module that touches the disk or
//! runs a program.

pub mod conf;
pub mod cross;
pub mod diag;
pub mod directives;
pub mod drivers;
pub mod edit;
pub mod ere;
pub mod fnv;
pub mod host;
pub mod known_bad;
pub mod lexer;
pub mod nut_conf;
pub mod target;
pub mod text;
pub mod ups_conf;
pub mod upsd_conf;
pub mod upsd_users;
pub mod upsmon_conf;
pub mod version;

/// A small deterministic generator for the property tests, so they run the same cases everywhere.
#[cfg(test)]
pub(crate) struct Rng(pub u64);

#[cfg(test)]
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

use diag::{Code, Finding, Sink};
use drivers::DriverDb;
use lexer::Pos;
use version::NutVersion;

/// What the checks know about the NUT they check against.
pub struct Context<'a> {
    pub version: NutVersion,
    pub drivers: &'a DriverDb,
    /// The drivers installed on the host, when its driver directory was read.
    pub host_drivers: Option<&'a [String]>,
}

/// File metadata the permission checks need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One file as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Unreadable(String),
    Read { text: Vec<u8>, meta: FileMeta },
}

/// A user account: its id and every group it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

/// The five files of a NUT configuration directory, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub ups_conf: FileState,
    pub upsd_conf: FileState,
    pub upsd_users: FileState,
    pub upsmon_conf: FileState,
    pub nut_conf: FileState,
    /// The account upsd runs as (NUT's build default, `nut` on Debian), when it exists.
    pub daemon: Option<Account>,
}

pub const UPS_CONF: &str = "ups.conf";
pub const UPSD_CONF: &str = "upsd.conf";
pub const UPSD_USERS: &str = "upsd.users";
pub const UPSMON_CONF: &str = "upsmon.conf";
pub const NUT_CONF: &str = "nut.conf";

/// Everything parsed from a directory, for the checks across files.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub ups: Option<ups_conf::UpsConf>,
    pub upsd: Option<upsd_conf::UpsdConf>,
    pub users: Option<upsd_users::UpsdUsers>,
    pub upsmon: Option<upsmon_conf::UpsmonConf>,
    pub nut: Option<nut_conf::NutConf>,
}

/// Validates a whole directory: each file, then the files against each other.
pub fn validate(snap: &Snapshot, cx: &Context) -> (Parsed, Vec<Finding>) {
    let dialect = cx.version.dialect();
    let mut findings = Vec::new();
    let mut parsed = Parsed::default();

    let mut each =
        |name: &'static str, state: &FileState, parse: &mut dyn FnMut(&[u8], &mut Sink)| {
            let mut sink = Sink::new(name);
            match state {
                FileState::Missing => {}
                FileState::Unreadable(why) => {
                    sink.error(
                        Code::Unreadable,
                        Pos::new(0, 0),
                        format!("cannot read {name}: {why}"),
                    )
                    .with_hint("check the file's owner and mode");
                }
                FileState::Read { text, meta } => {
                    check_permissions(name, meta, snap.daemon.as_ref(), &mut sink);
                    parse(text, &mut sink);
                }
            }
            findings.extend(sink.findings);
        };

    each(UPS_CONF, &snap.ups_conf, &mut |text, sink| {
        let lines = conf::read_lines(text, dialect, sink);
        let ups = ups_conf::parse(&lines, sink);
        ups_conf::check(&ups, cx, sink);
        known_bad::check(&ups, cx.version, sink);
        parsed.ups = Some(ups);
    });
    each(UPSD_CONF, &snap.upsd_conf, &mut |text, sink| {
        let lines = conf::read_lines(text, dialect, sink);
        parsed.upsd = Some(upsd_conf::parse(&lines, cx, sink));
    });
    each(UPSD_USERS, &snap.upsd_users, &mut |text, sink| {
        let lines = conf::read_lines(text, dialect, sink);
        parsed.users = Some(upsd_users::parse(&lines, cx, sink));
    });
    each(UPSMON_CONF, &snap.upsmon_conf, &mut |text, sink| {
        let lines = conf::read_lines(text, dialect, sink);
        parsed.upsmon = Some(upsmon_conf::parse(&lines, cx, sink));
    });
    each(NUT_CONF, &snap.nut_conf, &mut |text, sink| {
        parsed.nut = Some(nut_conf::parse(text, sink));
    });

    findings.extend(cross::check(snap, &parsed, cx.version));
    // With MODE=none NUT starts nothing, so what would stop a daemon is only worth knowing.
    if parsed
        .nut
        .as_ref()
        .and_then(|n| n.mode)
        .is_some_and(|m| m.0 == nut_conf::Mode::None)
    {
        for f in findings.iter_mut().filter(|f| f.code == Code::NoMonitor) {
            f.severity = diag::Severity::Info;
            f.message
                .push_str(" (once started: nut.conf's MODE=none starts nothing now)");
        }
    }
    sort(&mut findings);
    (parsed, findings)
}

/// Orders findings by file (in the order NUT reads them), line and column.
pub fn sort(findings: &mut [Finding]) {
    let rank = |f: &str| {
        [NUT_CONF, UPS_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF]
            .iter()
            .position(|n| *n == f)
            .unwrap_or(usize::MAX)
    };
    findings.sort_by(|a, b| {
        (rank(&a.file), a.line, a.column, b.severity, a.code).cmp(&(
            rank(&b.file),
            b.line,
            b.column,
            a.severity,
            b.code,
        ))
    });
}

/// Files with passwords must not be world-readable, and upsd must be able to read its users.
fn check_permissions(name: &str, meta: &FileMeta, daemon: Option<&Account>, sink: &mut Sink) {
    let secret = matches!(name, UPSD_USERS | UPSMON_CONF);
    let whole = Pos::new(0, 0);
    if secret && meta.mode & 0o004 != 0 {
        sink.warning(
            Code::WorldReadable,
            whole,
            format!(
                "{name} holds passwords and every user can read it (mode {:04o})",
                meta.mode & 0o7777
            ),
        )
        .with_hint(format!("chown root:nut {name} && chmod 0640 {name}"));
    }
    if name == UPSD_USERS {
        if let Some(acct) = daemon {
            let can_read = acct.uid == 0
                || (meta.uid == acct.uid && meta.mode & 0o400 != 0)
                || (acct.gids.contains(&meta.gid) && meta.mode & 0o040 != 0)
                || meta.mode & 0o004 != 0;
            if !can_read {
                sink.error(
                    Code::DaemonCannotRead,
                    whole,
                    format!(
                        "upsd runs as `{}`, which cannot read {name} (owner {}, group {}, mode {:04o}): every LOGIN will be refused",
                        acct.name, meta.uid, meta.gid, meta.mode & 0o7777
                    ),
                )
                .with_hint(format!("chown root:{} {name} && chmod 0640 {name}", acct.name));
            }
        }
    }
}
