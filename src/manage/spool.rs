//! Privilege separation: the unprivileged side (the agent, the page) proposes by writing a
//! file into a spool directory only it can write; a root oneshot (`power-snitch apply-spool`,
//! started by `power-snitch-apply.path`) reads each proposal — bounded in size and count —,
//! validates and applies it itself with [`super::change`], and writes a result the proposer
//! waits for, bounded in time.
//!
//! The format is length-prefixed records, so no byte of a value can start a record of its
//! own: `TAG NAME LEN\n` then LEN bytes and `\n`. Names are checked by [`super::change`]
//! against NUT's five; the NUT directory is the root side's own (`--nut-dir`, else
//! `$NUT_CONFPATH`, else /etc/nut), never one the proposal or the agent's settings name.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{mkdirat, Mode as FMode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::diag_codec::{finding_from, finding_to};
use super::fsop::{own, MAX_FILE};
use super::{
    change, content_hash, Apply, Failure, FileDiff, ManageError, Mode, Nut, Outcome, Proposal,
};
use crate::nut::FileState;

/// The spool the image's units use.
pub const DEFAULT_SPOOL: &str = "/var/lib/power-snitch/apply";
/// The largest proposal read: five files at their largest and a little more.
pub const MAX_PROPOSAL: usize = 5 * MAX_FILE + 64 * 1024;
/// Most records in a proposal or a result.
const MAX_RECORDS: usize = 256;
/// Most proposals waiting; a proposer refuses to add more.
pub const MAX_PENDING: usize = 4;
/// Most proposals applied per run of the root side; the rest are refused as a flood.
pub const MAX_BATCH: usize = 4;
/// Most directory entries looked at per run.
const MAX_SCAN: usize = 1024;
/// How long a proposer waits for the root side's result: longer than the root side takes on a
/// slow board (a driver's start, `systemctl enable` running Debian's sysv-install, the live
/// verification of 45 s).
pub const WAIT: Duration = Duration::from_secs(300);

const PROPOSAL: &str = "power-snitch-proposal 1\n";
const RESULT: &str = "power-snitch-result 1\n";

fn put(out: &mut Vec<u8>, tag: &str, name: &str, body: &[u8]) {
    out.extend_from_slice(format!("{tag} {name} {}\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out.push(b'\n');
}

type Record = (String, String, Vec<u8>);

/// The records after `header`, or what is wrong with them and where.
fn records(bytes: &[u8], header: &str) -> Result<Vec<Record>, String> {
    let mut rest = bytes
        .strip_prefix(header.as_bytes())
        .ok_or("not a Power Snitch spool file (wrong header)")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() >= MAX_RECORDS {
            return Err(format!("more than {MAX_RECORDS} records"));
        }
        let at = bytes.len() - rest.len();
        let nl = rest
            .iter()
            .take(200)
            .position(|b| *b == b'\n')
            .ok_or(format!("byte {at}: a record's head has no end"))?;
        let head = std::str::from_utf8(&rest[..nl])
            .map_err(|_| format!("byte {at}: a record's head is not text"))?;
        let w: Vec<&str> = head.split(' ').collect();
        let [tag, name, len] = w[..] else {
            return Err(format!(
                "byte {at}: `{}` is not `TAG NAME LENGTH`",
                head.escape_debug()
            ));
        };
        let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !ok(tag) || !ok(name) {
            return Err(format!(
                "byte {at}: a tag or name with a byte outside the printable ones"
            ));
        }
        let len: usize = len
            .parse()
            .map_err(|_| format!("byte {at}: `{len}` is not a length"))?;
        if len > MAX_FILE {
            return Err(format!("byte {at}: {len} bytes is more than {MAX_FILE}"));
        }
        let body_at = nl + 1;
        if rest.len() < body_at + len + 1 || rest[body_at + len] != b'\n' {
            return Err(format!("byte {at}: the record is cut short"));
        }
        out.push((
            tag.to_string(),
            name.to_string(),
            rest[body_at..body_at + len].to_vec(),
        ));
        rest = &rest[body_at + len + 1..];
    }
    Ok(out)
}

pub fn encode_proposal(p: &Proposal, mode: Mode) -> Vec<u8> {
    let mut out = PROPOSAL.as_bytes().to_vec();
    put(&mut out, "mode", "-", mode.as_str().as_bytes());
    put(&mut out, "why", "-", p.why.as_bytes());
    if p.undo {
        put(&mut out, "undo", "-", b"");
    }
    if let Some(name) = &p.restart {
        put(&mut out, "restart", name, b"");
    }
    for (name, text) in &p.files {
        put(&mut out, "file", name, text);
    }
    for name in &p.remove {
        put(&mut out, "remove", name, b"");
    }
    for (name, h) in &p.base {
        let body = h.map_or("absent".to_string(), |h| format!("{h:016x}"));
        put(&mut out, "base", name, body.as_bytes());
    }
    out
}

pub fn decode_proposal(bytes: &[u8]) -> Result<(Proposal, Mode), String> {
    let mut p = Proposal::default();
    let mut mode = None;
    for (tag, name, body) in records(bytes, PROPOSAL)? {
        let text = || String::from_utf8(body.clone()).map_err(|_| format!("`{tag}` is not text"));
        match tag.as_str() {
            "mode" => mode = Some(Mode::parse(&text()?).ok_or("an unknown mode")?),
            "why" => p.why = text()?,
            "file" => {
                if p.files.insert(name.clone(), body).is_some() {
                    return Err(format!("{name} is given twice"));
                }
            }
            "remove" => p.remove.push(name),
            "undo" => p.undo = true,
            // The name is checked by `change` against the root side's own ups.conf.
            "restart" => {
                if p.restart.replace(name).is_some() {
                    return Err("two restarts in one request".into());
                }
            }
            "base" => {
                let t = text()?;
                let h = if t == "absent" {
                    None
                } else {
                    Some(u64::from_str_radix(&t, 16).map_err(|_| "a base that is not a hash")?)
                };
                p.base.insert(name, h);
            }
            other => return Err(format!("unknown record `{}`", other.escape_debug())),
        }
    }
    Ok((p, mode.ok_or("no mode")?))
}

pub fn encode_result(r: &Result<Outcome, ManageError>) -> Vec<u8> {
    let mut out = RESULT.as_bytes().to_vec();
    let outcome = match r {
        Ok(o) => {
            put(&mut out, "status", "-", b"ok");
            Some(o)
        }
        Err(ManageError::Refused { added, outcome }) => {
            put(&mut out, "status", "-", b"refused");
            for f in added {
                put(&mut out, "error", "-", finding_to(f).as_bytes());
            }
            Some(&**outcome)
        }
        Err(ManageError::Failed(f)) => {
            put(&mut out, "status", "-", b"failed");
            put(&mut out, "message", "-", f.what.as_bytes());
            for l in &f.logs {
                put(&mut out, "log", "-", l.as_bytes());
            }
            match &f.restored {
                Ok(seen) => {
                    for s in seen {
                        put(&mut out, "restored", "-", s.as_bytes());
                    }
                }
                Err(e) => put(&mut out, "not-restored", "-", e.as_bytes()),
            }
            Some(&f.outcome)
        }
        Err(e) => {
            put(&mut out, "status", "-", b"error");
            put(&mut out, "message", "-", e.to_string().as_bytes());
            None
        }
    };
    if let Some(o) = outcome {
        for d in &o.diffs {
            put(&mut out, "diff", &d.file, d.diff.as_bytes());
        }
        for f in &o.added {
            put(&mut out, "added", "-", finding_to(f).as_bytes());
        }
        for f in &o.removed {
            put(&mut out, "removed", "-", finding_to(f).as_bytes());
        }
        if let Some(b) = &o.backup {
            put(&mut out, "backup", "-", b.display().to_string().as_bytes());
        }
        for (tag, list) in [
            ("action", &o.actions),
            ("ran", &o.ran),
            ("verified", &o.verified),
        ] {
            for a in list {
                put(&mut out, tag, "-", a.as_bytes());
            }
        }
    }
    out
}

pub fn decode_result(bytes: &[u8]) -> Result<Outcome, ManageError> {
    let bad = |e: String| ManageError::Spool(format!("the root side's result is unreadable: {e}"));
    let mut o = Outcome {
        via_spool: true,
        ..Outcome::default()
    };
    let (mut status, mut message, mut errors, mut logs) =
        (String::new(), String::new(), Vec::new(), Vec::new());
    let mut restored: Result<Vec<String>, String> = Ok(Vec::new());
    for (tag, name, body) in records(bytes, RESULT).map_err(bad)? {
        let text = String::from_utf8_lossy(&body).into_owned();
        match tag.as_str() {
            "status" => status = text,
            "message" => message = text,
            "error" => errors.extend(finding_from(&text)),
            "log" => logs.push(text),
            "restored" => {
                if let Ok(v) = &mut restored {
                    v.push(text)
                }
            }
            "not-restored" => restored = Err(text),
            "diff" => o.diffs.push(FileDiff {
                file: name,
                diff: text,
            }),
            "added" => o.added.extend(finding_from(&text)),
            "removed" => o.removed.extend(finding_from(&text)),
            "backup" => o.backup = Some(text.into()),
            "action" => o.actions.push(text),
            "ran" => o.ran.push(text),
            "verified" => o.verified.push(text),
            _ => {}
        }
    }
    match status.as_str() {
        "ok" => Ok(o),
        "refused" => Err(ManageError::Refused {
            added: errors,
            outcome: Box::new(o),
        }),
        "failed" => Err(ManageError::Failed(Box::new(Failure {
            what: message,
            logs,
            restored,
            outcome: o,
        }))),
        _ => Err(ManageError::Spool(message)),
    }
}

/// What the proposer read of NUT's files, for the root side to compare.
pub fn base_of(nut_dir: &Path) -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = super::fsop::Dir::open(nut_dir) {
        for f in super::fsop::FILES {
            if let Ok(state) = dir.read(f) {
                out.insert(
                    f.to_string(),
                    match state {
                        FileState::Read { text, .. } => Some(content_hash(&text)),
                        _ => None,
                    },
                );
            }
        }
    }
    out
}

fn io(what: &str, e: impl std::fmt::Display) -> ManageError {
    ManageError::Spool(format!("{what}: {e}"))
}

/// Opens `name` in `dir` as a directory, making it (0700) when missing; never a symlink.
fn subdir(dir: RawFd, name: &str, make: bool) -> Result<std::fs::File, nix::errno::Errno> {
    if make {
        match mkdirat(Some(dir), name, FMode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        FMode::empty(),
    )
    .map(own)
}

fn open_spool(spool: &Path) -> Result<std::fs::File, ManageError> {
    std::fs::create_dir_all(spool).map_err(|e| io(&spool.display().to_string(), e))?;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nofollow()
        .open(spool)
        .map_err(|e| io(&format!("{} (a symlink is refused)", spool.display()), e))
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
    }
}

/// Writes `bytes` as `dir/name` through a temporary and a rename, never following a link;
/// owned by `owner` when given (the root side gives its results to the spool's owner, the
/// agent, which could not read a root-owned 0600 file).
fn put_file(
    dir: RawFd,
    name: &str,
    bytes: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<(), nix::errno::Errno> {
    let tmp = format!(".{name}.tmp");
    let _ = unlinkat(Some(dir), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    let fd = openat(
        Some(dir),
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        FMode::from_bits_truncate(0o600),
    )?;
    let mut f = own(fd);
    if let Some((uid, gid)) = owner {
        nix::unistd::fchown(
            f.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
    }
    f.write_all(bytes).map_err(|_| nix::errno::Errno::EIO)?;
    f.sync_all().map_err(|_| nix::errno::Errno::EIO)?;
    renameat(Some(dir), tmp.as_str(), Some(dir), name)
}

fn is_id(name: &str) -> bool {
    let Some((a, b)) = name.split_once('-') else {
        return false;
    };
    (1..=20).contains(&a.len())
        && (1..=10).contains(&b.len())
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
}

/// The names in a directory, at most [`MAX_SCAN`].
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.take(MAX_SCAN)
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Hands `proposal` to the root side: `spool/in/ID.proposal`. Refused while
/// [`MAX_PENDING`] proposals wait.
pub fn submit(spool: &Path, proposal: &Proposal, mode: Mode) -> Result<String, ManageError> {
    let root = open_spool(spool)?;
    let inbox = subdir(root.as_raw_fd(), "in", true).map_err(|e| io("the spool's in/", e))?;
    subdir(root.as_raw_fd(), "out", true).map_err(|e| io("the spool's out/", e))?;
    let pending = names(&spool.join("in"))
        .iter()
        .filter(|n| n.ends_with(".proposal"))
        .count();
    if pending >= MAX_PENDING {
        return Err(ManageError::Spool(format!(
            "{pending} changes already wait for the root side: try again once they are done"
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{now}-{}", std::process::id());
    let bytes = encode_proposal(proposal, mode);
    if bytes.len() > MAX_PROPOSAL {
        return Err(ManageError::Spool(format!(
            "the change is larger than {MAX_PROPOSAL} bytes"
        )));
    }
    put_file(inbox.as_raw_fd(), &format!("{id}.proposal"), &bytes, None)
        .map_err(|e| io("writing the proposal", e))?;
    Ok(id)
}

/// Waits up to `limit` for the root side's result of `id`, then removes it.
pub fn wait_result(spool: &Path, id: &str, limit: Duration) -> Result<Outcome, ManageError> {
    let path = spool.join("out").join(format!("{id}.result"));
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(f) = std::fs::File::open(&path) {
            let mut bytes = Vec::new();
            let _ = f.take(MAX_PROPOSAL as u64 + 1).read_to_end(&mut bytes);
            let _ = std::fs::remove_file(&path);
            return decode_result(&bytes);
        }
        if Instant::now() >= deadline {
            let _ = std::fs::remove_file(spool.join("in").join(format!("{id}.proposal")));
            return Err(ManageError::Spool(format!(
                "the root side (power-snitch-apply.service) did not answer within {} s: is power-snitch-apply.path enabled? (`systemctl status power-snitch-apply.path`)",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn submit_and_wait(
    spool: &Path,
    p: &Proposal,
    mode: Mode,
    limit: Duration,
) -> Result<Outcome, ManageError> {
    let id = submit(spool, p, mode)?;
    wait_result(spool, &id, limit)
}

/// What one run of the root side did with one proposal.
#[derive(Debug)]
pub struct Handled {
    pub id: String,
    pub result: Result<Outcome, ManageError>,
}

/// The root side: reads each waiting proposal (at most [`MAX_BATCH`] applied, the rest refused
/// as a flood), validates and applies it on `nut` with `runner`, writes `out/ID.result`, and
/// removes the proposal. An undo's files are read from the backups here, not from the spool.
pub fn apply_spool(
    spool: &Path,
    nut: &Nut,
    runner: &mut dyn super::run::Runner,
    verify_timeout: Duration,
) -> Result<Vec<Handled>, ManageError> {
    let root = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nofollow()
        .open(spool)
    {
        Ok(f) => f,
        // No proposal was ever made.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(io(
                &format!("{} (a symlink is refused)", spool.display()),
                e,
            ))
        }
    };
    let inbox = match subdir(root.as_raw_fd(), "in", false) {
        Ok(f) => f,
        Err(nix::errno::Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(io("the spool's in/ (a symlink is refused)", e)),
    };
    let meta = inbox.metadata().map_err(|e| io("the spool's in/", e))?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o022 != 0 {
        return Err(ManageError::Spool(format!(
            "{}/in is writable by group or others: every proposal refused",
            spool.display()
        )));
    }
    let outbox = subdir(root.as_raw_fd(), "out", true).map_err(|e| io("the spool's out/", e))?;
    let owner = outbox.metadata().ok().and_then(|m| {
        use std::os::unix::fs::MetadataExt;
        nix::unistd::Uid::effective()
            .is_root()
            .then(|| (m.uid(), m.gid()))
    });
    let mut ids: Vec<String> = Vec::new();
    for n in names(&spool.join("in")) {
        match n.strip_suffix(".proposal").filter(|id| is_id(id)) {
            Some(id) => ids.push(id.to_string()),
            // Anything else there is not ours to keep: removed, never followed.
            None if !n.starts_with('.') => {
                let _ = unlinkat(
                    Some(inbox.as_raw_fd()),
                    n.as_str(),
                    UnlinkatFlags::NoRemoveDir,
                );
            }
            None => {}
        }
    }
    ids.sort_by_key(|id| {
        let (a, b) = id.split_once('-').unwrap_or((id, "0"));
        (
            a.parse::<u128>().unwrap_or(0),
            b.parse::<u64>().unwrap_or(0),
        )
    });
    let mut handled = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let name = format!("{id}.proposal");
        let result = if i >= MAX_BATCH {
            Err(ManageError::Spool(format!(
                "{} changes were proposed at once; at most {MAX_BATCH} are applied per run: this one was refused",
                ids.len()
            )))
        } else {
            read_proposal(inbox.as_raw_fd(), &name).and_then(|(p, mode)| {
                let apply = Apply {
                    runner: &mut *runner,
                    verify_timeout,
                };
                change(nut, &p, mode, Some(apply))
            })
        };
        let _ = unlinkat(
            Some(inbox.as_raw_fd()),
            name.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        let _ = put_file(
            outbox.as_raw_fd(),
            &format!("{id}.result"),
            &encode_result(&result),
            owner,
        );
        handled.push(Handled {
            id: id.clone(),
            result,
        });
    }
    Ok(handled)
}

fn read_proposal(dir: RawFd, name: &str) -> Result<(Proposal, Mode), ManageError> {
    let fd = openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        FMode::empty(),
    )
    .map_err(|e| io(&format!("the proposal {name} (a symlink is refused)"), e))?;
    let f = own(fd);
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(ManageError::Spool(format!(
            "the proposal {name} is not a regular file"
        )));
    }
    let mut bytes = Vec::new();
    f.take(MAX_PROPOSAL as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(&format!("the proposal {name}"), e))?;
    if bytes.len() > MAX_PROPOSAL {
        return Err(ManageError::Spool(format!(
            "the proposal {name} is larger than {MAX_PROPOSAL} bytes"
        )));
    }
    decode_proposal(&bytes).map_err(|e| ManageError::Spool(format!("the proposal {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proposal_round_trips_and_values_cannot_add_records() {
        let mut p = Proposal::new(
            BTreeMap::from([(
                "ups.conf".to_string(),
                b"[a]\n driver = dummy-ups\nfile ../../etc/passwd 3\nx\n".to_vec(),
            )]),
            "why\nfile /etc/shadow 1",
        );
        p.remove.push("upsmon.conf".into());
        p.base.insert("nut.conf".into(), None);
        p.base.insert("ups.conf".into(), Some(0xdead));
        let bytes = encode_proposal(&p, Mode::NoApply);
        assert_eq!(decode_proposal(&bytes), Ok((p, Mode::NoApply)));
        let u = super::super::undo_request();
        assert_eq!(
            decode_proposal(&encode_proposal(&u, Mode::Apply)),
            Ok((u, Mode::Apply))
        );
        let r = super::super::restart_request("rack-ups");
        assert_eq!(
            decode_proposal(&encode_proposal(&r, Mode::Apply)),
            Ok((r, Mode::Apply))
        );
    }

    #[test]
    fn broken_proposals_are_refused_with_the_place() {
        let cases: &[(&[u8], &str)] = &[
            (b"hello\n", "wrong header"),
            (
                b"power-snitch-proposal 1\nfile ups.conf 99\nabc\n",
                "cut short",
            ),
            (
                b"power-snitch-proposal 1\nfile ups.conf\n",
                "not `TAG NAME LENGTH`",
            ),
            (
                b"power-snitch-proposal 1\nfile a b 1 2\nx\n",
                "not `TAG NAME LENGTH`",
            ),
            (
                b"power-snitch-proposal 1\nfile ups.conf 999999999\n",
                "more than",
            ),
            (
                b"power-snitch-proposal 1\nmode - 5\napply\nrm - 0\n\n",
                "unknown record",
            ),
            (b"power-snitch-proposal 1\nwhy - 0\n\n", "no mode"),
            (
                b"power-snitch-proposal 1\nmode - 5\napply\nrestart a 0\n\nrestart b 0\n\n",
                "two restarts",
            ),
        ];
        for (bytes, want) in cases {
            let e = decode_proposal(bytes).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_result_round_trips() {
        let o = Outcome {
            diffs: vec![FileDiff {
                file: "ups.conf".into(),
                diff: "--- a/ups.conf\n".into(),
            }],
            actions: vec!["reload upsd".into()],
            ran: vec!["reload upsd".into()],
            verified: vec!["upsd serves [a]".into()],
            backup: Some("/etc/nut/power-snitch-backups/x".into()),
            via_spool: true,
            ..Outcome::default()
        };
        assert_eq!(decode_result(&encode_result(&Ok(o.clone()))), Ok(o));
        let e = decode_result(&encode_result(&Err(ManageError::NothingToUndo))).unwrap_err();
        assert_eq!(
            e,
            ManageError::Spool("there is no backup to restore".into())
        );
    }
}
