//! Changing NUT's files: a proposal (the whole new contents of the files that change) is
//! validated together with the other files, previewed as unified diffs, written atomically
//! with dated backups, applied (exactly the drivers and daemons the change needs), verified
//! live, and rolled back when the verification fails; [`undo`] restores the newest backup by
//! the same path.
//!
//! **Architecture invariant:** nothing is written that was not validated here, in this
//! process, from the bytes read through the directory handle it writes through; a change that
//! adds an error finding is refused; only NUT's five file names are ever written, and never
//! through a symlink. A failed apply leaves the previous files and the previous NUT running.
//!
//! [`propose`] writes directly when this process may write NUT's directory (root); otherwise
//! it hands the proposal to the root side through the spool ([`spool`]), which validates it
//! again itself.

mod diag_codec;
pub mod diff;
pub mod fsop;
pub mod plan;
pub mod run;
pub mod spool;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::nut::diag::{Code, Finding, Severity};
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{validate, Account, Context, FileState, Parsed, Snapshot};
use crate::nut::{NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

use fsop::{known, Dir, IoError, FILES, MAX_FILE};
use plan::{Action, Unit};
use run::Runner;

/// A change of NUT's files: the whole new contents of each file that changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    /// NUT's file name (`ups.conf`, ...) to its new bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Files the change removes (an undo of a change that created them).
    pub remove: Vec<String>,
    /// Why, in the user's words (the backup and the log carry it).
    pub why: String,
    /// What the proposer read: each file's content hash ([`content_hash`]), `None` when the file
    /// was absent. When given, a file that is no longer so is a [`ManageError::Changed`].
    pub base: BTreeMap<String, Option<u64>>,
    /// Restore the newest backup instead (read by the side that applies: the backups hold the
    /// secret files, readable by root only).
    pub undo: bool,
    /// Restart the driver of this ups.conf section instead (the agent's self-healing): no
    /// file is written; the name must be a section ups.conf has.
    pub restart: Option<String>,
}

impl Proposal {
    pub fn new(files: BTreeMap<String, Vec<u8>>, why: &str) -> Proposal {
        Proposal {
            files,
            why: why.to_string(),
            ..Proposal::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The preview only: nothing is written.
    DryRun,
    /// Written (validated, backed up), nothing run: for a NUT directory that is not this
    /// machine's live one (an SD card's /etc/nut on a laptop).
    NoApply,
    /// Written, applied and verified; rolled back when the verification fails.
    Apply,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::NoApply => "no-apply",
            Mode::Apply => "apply",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::DryRun, Mode::NoApply, Mode::Apply]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// One file's change, as a unified diff with passwords masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDiff {
    pub file: String,
    pub diff: String,
}

/// What a change did (or would do, for a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub diffs: Vec<FileDiff>,
    /// Findings the change adds (warnings and notes; an added error refuses the change).
    pub added: Vec<Finding>,
    /// Findings the change makes go away.
    pub removed: Vec<Finding>,
    /// The backup of the previous versions, when something was written.
    pub backup: Option<PathBuf>,
    /// What NUT must do for the change (also for a dry run and `--no-apply`).
    pub actions: Vec<String>,
    /// The actions that ran.
    pub ran: Vec<String>,
    /// What the live verification saw.
    pub verified: Vec<String>,
    /// The root side applied it (through the spool), not this process.
    pub via_spool: bool,
}

impl Outcome {
    /// Nothing changes.
    pub fn unchanged(&self) -> bool {
        self.diffs.is_empty()
    }
}

/// Why a change was not made, or not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManageError {
    /// A name that is not one of NUT's five files (`../x`, `/etc/passwd`, `ups.conf\n`).
    NotNutFile(String),
    /// A file larger than NUT's files ever are.
    TooLarge { file: String, bytes: usize },
    /// The change adds these errors: nothing was written.
    Refused {
        added: Vec<Finding>,
        outcome: Box<Outcome>,
    },
    /// A name NUT's programs and units cannot carry safely (a UPS section or a user).
    Unsafe { file: String, name: String },
    /// The disk: a symlink refused, a file that cannot be read or written.
    Io(IoError),
    /// A file changed since the proposal was made or since it was validated: nothing written.
    Changed { file: String },
    /// Applying or verifying failed; the previous files were written back and NUT restarted.
    Failed(Box<Failure>),
    /// No backup to restore.
    NothingToUndo,
    /// The root side could not be reached or said no.
    Spool(String),
}

/// An apply that failed, and how the rollback went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub what: String,
    /// NUT's own log lines about it.
    pub logs: Vec<String>,
    /// The rollback: `Ok` with what the old state's verification saw, or what failed.
    pub restored: Result<Vec<String>, String>,
    pub outcome: Outcome,
}

impl std::fmt::Display for ManageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManageError::NotNutFile(n) => write!(
                f,
                "`{}` is not one of NUT's files ({}): refused",
                n.escape_debug(),
                FILES.join(", ")
            ),
            ManageError::TooLarge { file, bytes } => {
                write!(f, "{file}: {bytes} bytes is more than the {MAX_FILE} a NUT file may have")
            }
            ManageError::Refused { added, .. } => {
                write!(f, "the change would add {} error(s), so nothing was written:", added.len())?;
                for a in added {
                    write!(f, "\n  {}:{}: {}", a.file, a.line, a.message)?;
                }
                Ok(())
            }
            ManageError::Unsafe { file, name } => write!(
                f,
                "{file}: the name `{}` is refused: use letters, digits, `_`, `-` and `.` (not first)",
                name.escape_debug()
            ),
            ManageError::Io(e) => write!(f, "{e}"),
            ManageError::Changed { file } => write!(
                f,
                "{file} changed while the change was prepared: nothing was written; look at it again and retry"
            ),
            ManageError::Failed(fail) => {
                write!(f, "{}", fail.what)?;
                for l in &fail.logs {
                    write!(f, "\n  | {l}")?;
                }
                match &fail.restored {
                    Ok(_) => write!(f, "\nthe previous files are back and NUT serves them again"),
                    Err(e) => write!(f, "\nrestoring the previous files failed too: {e}"),
                }
            }
            ManageError::NothingToUndo => f.write_str("there is no backup to restore"),
            ManageError::Spool(e) => write!(f, "{e}"),
        }
    }
}

impl From<IoError> for ManageError {
    fn from(e: IoError) -> Self {
        ManageError::Io(e)
    }
}

/// The NUT a change is made to.
#[derive(Clone, Debug)]
pub struct Nut {
    pub dir: PathBuf,
    pub version: NutVersion,
    /// The drivers installed on the host, when known.
    pub host_drivers: Option<Vec<String>>,
    /// The account NUT's daemons run as (`nut`): its group reads the secret files.
    pub daemon: Option<Account>,
    /// The group new secret files get (the daemon account's group).
    pub nut_gid: Option<u32>,
}

impl Nut {
    /// NUT at `dir`, with this host's `nut` account.
    pub fn at(dir: &Path, version: NutVersion, host_drivers: Option<Vec<String>>) -> Nut {
        let daemon = crate::nut::host::account("nut");
        let nut_gid = nix::unistd::Group::from_name("nut")
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw());
        Nut {
            dir: dir.to_path_buf(),
            version,
            host_drivers,
            daemon,
            nut_gid,
        }
    }
}

/// How a change is applied and verified.
pub struct Apply<'a> {
    pub runner: &'a mut dyn Runner,
    /// The live verification ends within this time.
    pub verify_timeout: Duration,
}

/// The content hash a proposal's `base` carries.
pub fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::nut::fnv::Fnv::default();
    h.write(bytes);
    h.finish()
}

/// A file's new state: bytes, or gone.
type Change = Vec<(&'static str, Option<Vec<u8>>)>;

/// Makes the change on `nut` (the caller may write its directory): validate, diff, and per
/// `mode` write with a backup, apply with `apply` and verify.
pub fn change(
    nut: &Nut,
    proposal: &Proposal,
    mode: Mode,
    apply: Option<Apply>,
) -> Result<Outcome, ManageError> {
    if proposal.undo {
        return change(nut, &undo_proposal(&nut.dir)?, mode, apply);
    }
    if let Some(name) = &proposal.restart {
        if !proposal.files.is_empty() || !proposal.remove.is_empty() {
            return Err(ManageError::Spool(
                "a driver's restart carries no file: refused".into(),
            ));
        }
        return restart_here(nut, name, mode, apply);
    }
    let mut changes: Change = Vec::new();
    for (name, text) in &proposal.files {
        let f = known(name).ok_or_else(|| ManageError::NotNutFile(name.clone()))?;
        if text.len() > MAX_FILE {
            return Err(ManageError::TooLarge {
                file: f.to_string(),
                bytes: text.len(),
            });
        }
        changes.push((f, Some(text.clone())));
    }
    for name in &proposal.remove {
        let f = known(name).ok_or_else(|| ManageError::NotNutFile(name.clone()))?;
        if proposal.files.contains_key(name) {
            return Err(ManageError::Spool(format!(
                "{f} is both written and removed"
            )));
        }
        changes.push((f, None));
    }
    for name in proposal.base.keys() {
        known(name).ok_or_else(|| ManageError::NotNutFile(name.clone()))?;
    }
    let dir = Dir::open(&nut.dir)?;
    let old = read_all(&dir)?;
    for (name, want) in &proposal.base {
        let now = match old.get(name.as_str()) {
            Some(FileState::Read { text, .. }) => Some(content_hash(text)),
            _ => None,
        };
        if now != *want {
            return Err(ManageError::Changed { file: name.clone() });
        }
    }
    make(nut, &dir, old, changes, mode, apply)
}

fn read_all(dir: &Dir) -> Result<BTreeMap<&'static str, FileState>, ManageError> {
    let mut out = BTreeMap::new();
    for f in FILES {
        out.insert(f, dir.read(f)?);
    }
    Ok(out)
}

fn snapshot(files: &BTreeMap<&'static str, FileState>, daemon: Option<Account>) -> Snapshot {
    let get = |n: &str| files.get(n).cloned().unwrap_or(FileState::Missing);
    Snapshot {
        ups_conf: get(UPS_CONF),
        upsd_conf: get(UPSD_CONF),
        upsd_users: get(UPSD_USERS),
        upsmon_conf: get(UPSMON_CONF),
        nut_conf: get(NUT_CONF),
        daemon,
    }
}

/// The findings of `a` that `b` does not have, by code, file and message (lines move).
fn minus(a: &[Finding], b: &[Finding]) -> Vec<Finding> {
    let mut left: Vec<&Finding> = b.iter().collect();
    let mut out = Vec::new();
    for f in a {
        match left
            .iter()
            .position(|g| g.code == f.code && g.file == f.file && g.message == f.message)
        {
            Some(i) => {
                left.swap_remove(i);
            }
            None => out.push(f.clone()),
        }
    }
    out
}

/// A UPS or user name every NUT program and unit carries safely.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn unsafe_names(parsed: &Parsed) -> Option<ManageError> {
    if let Some(ups) = &parsed.ups {
        if let Some(s) = ups.sections.iter().find(|s| !safe_name(&s.name)) {
            return Some(ManageError::Unsafe {
                file: UPS_CONF.into(),
                name: s.name.clone(),
            });
        }
    }
    if let Some(users) = &parsed.users {
        if let Some(u) = users.users.iter().find(|u| !safe_name(&u.name)) {
            return Some(ManageError::Unsafe {
                file: UPSD_USERS.into(),
                name: u.name.clone(),
            });
        }
    }
    None
}

fn make(
    nut: &Nut,
    dir: &Dir,
    old: BTreeMap<&'static str, FileState>,
    changes: Change,
    mode: Mode,
    apply: Option<Apply>,
) -> Result<Outcome, ManageError> {
    // The new state: changed files with the old file's owner and mode, or a new file's.
    let mut new = old.clone();
    let mut changed: Vec<&'static str> = Vec::new();
    for (f, text) in &changes {
        let before = old.get(f).cloned().unwrap_or(FileState::Missing);
        let after = match text {
            None => FileState::Missing,
            Some(t) => FileState::Read {
                text: t.clone(),
                meta: match &before {
                    FileState::Read { meta, .. } => *meta,
                    _ => dir.new_meta(f, nut.nut_gid),
                },
            },
        };
        let same = match (&before, &after) {
            (FileState::Read { text: a, .. }, FileState::Read { text: b, .. }) => a == b,
            (FileState::Missing, FileState::Missing) => true,
            _ => false,
        };
        if !same {
            changed.push(f);
            new.insert(f, after);
        }
    }
    let drivers = DriverDb::builtin();
    let cx = Context {
        version: nut.version,
        drivers,
        host_drivers: nut.host_drivers.as_deref(),
    };
    let (old_parsed, old_findings) = validate(&snapshot(&old, nut.daemon.clone()), &cx);
    let (new_parsed, new_findings) = validate(&snapshot(&new, nut.daemon.clone()), &cx);
    let text_of = |m: &BTreeMap<&str, FileState>, f: &str| match m.get(f) {
        Some(FileState::Read { text, .. }) => Some(text.clone()),
        _ => None,
    };
    let mut outcome = Outcome {
        diffs: changed
            .iter()
            .map(|f| FileDiff {
                file: f.to_string(),
                diff: diff::unified(f, text_of(&old, f).as_deref(), text_of(&new, f).as_deref()),
            })
            .collect(),
        added: minus(&new_findings, &old_findings),
        removed: minus(&old_findings, &new_findings),
        ..Outcome::default()
    };
    let upsd_restart = changed.contains(&UPSD_CONF)
        && plan::upsd_needs_restart(
            &text_of(&old, UPSD_CONF).unwrap_or_default(),
            &text_of(&new, UPSD_CONF).unwrap_or_default(),
            nut.version.dialect(),
        );
    let actions = plan::plan(&old_parsed, &new_parsed, &changed, upsd_restart);
    outcome.actions = actions.iter().map(Action::to_string).collect();
    let errors: Vec<Finding> = outcome
        .added
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(ManageError::Refused {
            added: errors,
            outcome: Box::new(outcome),
        });
    }
    if let Some(e) = unsafe_names(&new_parsed) {
        return Err(e);
    }
    if mode == Mode::DryRun || changed.is_empty() {
        return Ok(outcome);
    }
    // The previous versions first, then a last look that nothing was swapped since it was
    // read and validated, then the writes.
    let previous: Vec<(&str, &FileState)> = changed.iter().map(|f| (*f, &old[f])).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    outcome.backup = Some(dir.backup(&previous, &fsop::stamp(now))?);
    for f in &changed {
        if !same_state(&dir.read(f)?, &old[f]) {
            return Err(ManageError::Changed {
                file: f.to_string(),
            });
        }
    }
    let apply = apply.filter(|_| mode == Mode::Apply);
    // Drivers that stop are stopped while the files still name them (upsdrvctl and NUT's
    // units find a driver through ups.conf); a stop never fails the change.
    let (stops, rest): (Vec<&Action>, Vec<&Action>) = actions.iter().partition(|a| is_stop(a));
    let mut apply = apply;
    if let Some(apply) = apply.as_mut() {
        for a in &stops {
            let _ = apply.runner.run(a);
            outcome.ran.push(a.to_string());
        }
    }
    write_states(dir, &changed, &new).inspect_err(|_| {
        let _ = write_states(dir, &changed, &old);
    })?;
    let Some(apply) = apply else {
        return Ok(outcome);
    };
    let mut failed: Option<(String, Unit)> = None;
    for a in rest {
        match apply.runner.run(a) {
            Ok(()) => outcome.ran.push(a.to_string()),
            Err(e) => {
                failed = Some((e, a.unit.clone()));
                break;
            }
        }
    }
    let mut logs = Vec::new();
    let what = match failed {
        Some((e, unit)) => {
            logs = apply.runner.logs(&unit);
            Some(e)
        }
        None => match verify::verify(&new_parsed, &actions, apply.verify_timeout) {
            Ok(seen) => {
                outcome.verified = seen;
                None
            }
            Err((e, unit)) => {
                if let Some(u) = unit {
                    logs = apply.runner.logs(&u);
                }
                Some(format!("the change was written and applied, but {e}"))
            }
        },
    };
    let Some(what) = what else {
        return Ok(outcome);
    };
    // Roll back: the old files, the actions from the new state to the old, the old verified.
    let restored = (|| -> Result<Vec<String>, String> {
        let back = plan::plan(&new_parsed, &old_parsed, &changed, upsd_restart);
        for a in back.iter().filter(|a| is_stop(a)) {
            let _ = apply.runner.run(a);
        }
        write_states(dir, &changed, &old).map_err(|e| e.to_string())?;
        for a in back.iter().filter(|a| !is_stop(a)) {
            apply.runner.run(a)?;
        }
        let seen = verify::verify(&old_parsed, &back, apply.verify_timeout).map_err(|(e, _)| e)?;
        if let Some(b) = &outcome.backup {
            dir.remove_backup(b).map_err(|e| e.to_string())?;
        }
        Ok(seen)
    })();
    if restored.is_ok() {
        outcome.backup = None;
    }
    Err(ManageError::Failed(Box::new(Failure {
        what,
        logs,
        restored,
        outcome,
    })))
}

/// A driver that stops: run before the files change.
fn is_stop(a: &Action) -> bool {
    a.op == plan::Op::Stop && matches!(a.unit, Unit::Driver(_))
}

fn same_state(a: &FileState, b: &FileState) -> bool {
    match (a, b) {
        (FileState::Read { text: x, meta: m }, FileState::Read { text: y, meta: n }) => {
            x == y && m == n
        }
        (FileState::Missing, FileState::Missing) => true,
        _ => false,
    }
}

fn write_states(
    dir: &Dir,
    files: &[&'static str],
    states: &BTreeMap<&'static str, FileState>,
) -> Result<(), IoError> {
    for f in files {
        match &states[f] {
            FileState::Read { text, meta } => dir.write(f, text, *meta)?,
            _ => dir.remove(f)?,
        }
    }
    Ok(())
}

/// Restores the newest backup through the same validated path (the restore is itself backed
/// up, so an undo can be undone).
pub fn undo(nut: &Nut, mode: Mode, apply: Option<Apply>) -> Result<Outcome, ManageError> {
    change(nut, &undo_request(), mode, apply)
}

/// The proposal that asks for an undo.
pub fn undo_request() -> Proposal {
    Proposal {
        why: "undo".into(),
        undo: true,
        ..Proposal::default()
    }
}

/// The proposal for an undo, read by whoever may read the backups (the root side).
pub fn undo_proposal(nut_dir: &Path) -> Result<Proposal, ManageError> {
    let dir = Dir::open(nut_dir)?;
    let (_, files) = dir.newest_backup()?.ok_or(ManageError::NothingToUndo)?;
    let mut p = Proposal {
        why: "undo".into(),
        ..Proposal::default()
    };
    for (f, text) in files {
        match text {
            Some(t) => {
                p.files.insert(f.to_string(), t);
            }
            None => p.remove.push(f.to_string()),
        }
    }
    Ok(p)
}

/// Whether this process may write NUT's directory itself (else the spool is the way).
pub fn may_write(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// The face's entry point: the change made here when this process may write NUT's directory
/// (with NUT's systemd units for `Mode::Apply`), else handed to the root side through the
/// spool at `spool_dir` and its result awaited.
/// `driver_dir` is where NUT's programs are, for running them directly.
pub fn propose(
    nut: &Nut,
    driver_dir: Option<&Path>,
    proposal: Proposal,
    mode: Mode,
    spool_dir: &Path,
) -> Result<Outcome, ManageError> {
    if may_write(&nut.dir) {
        let mut runner = native_runner(&nut.dir, driver_dir);
        let apply = Apply {
            runner: runner.as_mut(),
            verify_timeout: verify::TIMEOUT,
        };
        return change(nut, &proposal, mode, Some(apply));
    }
    let mut proposal = proposal;
    if proposal.base.is_empty() && !proposal.undo && proposal.restart.is_none() {
        proposal.base = spool::base_of(&nut.dir);
    }
    spool::submit_and_wait(spool_dir, &proposal, mode, spool::WAIT)
}

/// How this machine runs NUT: its systemd units when systemd runs it, else NUT's programs
/// directly (a container, a board without systemd) with NUT's directory, `$NUT_STATEPATH`
/// (default /run/nut), the installed driver directory, and `$POWER_SNITCH_NUT_USER` as the
/// account they run as (default: NUT's own).
pub fn native_runner(nut_dir: &Path, driver_dir: Option<&Path>) -> Box<dyn Runner> {
    if Path::new("/run/systemd/system").is_dir() {
        return Box::new(run::Systemd::detect());
    }
    let state =
        std::env::var_os("NUT_STATEPATH").map_or_else(|| PathBuf::from("/run/nut"), PathBuf::from);
    let drivers = driver_dir.unwrap_or(Path::new("/lib/nut"));
    let user = std::env::var("POWER_SNITCH_NUT_USER")
        .ok()
        .filter(|u| !u.is_empty());
    Box::new(run::Direct::new(nut_dir, &state, drivers, user.as_deref()))
}

/// The sections ups.conf has now, read through the same handle and parser as a change.
fn sections(nut: &Nut) -> Result<Vec<String>, ManageError> {
    let dir = Dir::open(&nut.dir)?;
    let old = read_all(&dir)?;
    let cx = Context {
        version: nut.version,
        drivers: DriverDb::builtin(),
        host_drivers: nut.host_drivers.as_deref(),
    };
    let (parsed, _) = validate(&snapshot(&old, nut.daemon.clone()), &cx);
    Ok(parsed
        .ups
        .map(|u| u.sections.into_iter().map(|s| s.name).collect())
        .unwrap_or_default())
}

/// Restarts the driver of the section `name` with `apply`'s runner (the one restart of one
/// driver the apply path has), after checking that ups.conf has that section and that its
/// name is safe for NUT's units. Nothing is written.
fn restart_here(
    nut: &Nut,
    name: &str,
    mode: Mode,
    apply: Option<Apply>,
) -> Result<Outcome, ManageError> {
    if !safe_name(name) {
        return Err(ManageError::Unsafe {
            file: UPS_CONF.into(),
            name: name.to_string(),
        });
    }
    if !sections(nut)?.iter().any(|s| s == name) {
        return Err(ManageError::Spool(format!(
            "ups.conf has no section [{name}]: no driver restarted"
        )));
    }
    let action = Action {
        op: plan::Op::Restart,
        unit: Unit::Driver(name.to_string()),
    };
    let mut outcome = Outcome {
        actions: vec![action.to_string()],
        ..Outcome::default()
    };
    let Some(apply) = apply.filter(|_| mode == Mode::Apply) else {
        return Ok(outcome);
    };
    match apply.runner.run(&action) {
        Ok(()) => {
            outcome.ran.push(action.to_string());
            Ok(outcome)
        }
        Err(what) => Err(ManageError::Failed(Box::new(Failure {
            what,
            logs: apply.runner.logs(&action.unit),
            restored: Ok(Vec::new()),
            outcome,
        }))),
    }
}

/// The proposal that asks for the restart of the driver of the section `name`.
pub fn restart_request(name: &str) -> Proposal {
    Proposal {
        why: format!("restart the driver of [{name}]"),
        restart: Some(name.to_string()),
        ..Proposal::default()
    }
}

/// Restarts the driver of the section `name`: here with [`native_runner`] when this process
/// may write NUT's directory (it runs NUT as the tests do, or is root), else through the root
/// side ([`spool`]), which checks the name against its own ups.conf.
pub fn restart_driver(
    nut: &Nut,
    driver_dir: Option<&Path>,
    name: &str,
    spool_dir: &Path,
) -> Result<Outcome, ManageError> {
    propose(
        nut,
        driver_dir,
        restart_request(name),
        Mode::Apply,
        spool_dir,
    )
}

/// A finding's code from its name (for results read back from the spool).
pub fn code_named(s: &str) -> Option<Code> {
    Code::ALL.iter().copied().find(|c| c.as_str() == s)
}
