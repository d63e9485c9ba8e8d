//! The settings file on disk: atomic, durable writes; the previous good version kept; a damaged
//! file set aside, never overwritten; nothing written when nothing changed; a bounded change log
//! that follows the file (a save that landed is in it, one that did not is not); writers
//! serialised by a lock next to the file.
//!
//! **Architecture invariant:** every write of the settings goes through [`update`] (or
//! [`commit`]/[`save`], which call it): the lock is held from the read to the history's rename.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::{Settings, AGENT_KEYS, UPS_KEYS};
use super::stored::{decode, encode, VERSION};

pub const DEFAULT_PATH: &str = "/var/lib/power-snitch/settings.bin";
/// Most lines the change log keeps.
pub const LOG_LINES: usize = 500;

/// Where the settings came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Current,
    /// The current file is damaged; the previous good version was read.
    Previous,
    /// Nothing valid: built-in defaults.
    Defaults,
    /// No file yet: built-in defaults.
    Missing,
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub source: Source,
    /// The format version of the file read, when older than this program's: upgraded on write.
    pub old_version: Option<u16>,
    pub warnings: Vec<String>,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn previous_path(path: &Path) -> PathBuf {
    sibling(path, ".prev")
}

pub fn damaged_path(path: &Path) -> PathBuf {
    sibling(path, ".damaged")
}

pub fn log_path(path: &Path) -> PathBuf {
    sibling(path, ".log")
}

fn read_one(path: &Path) -> Result<Option<(Settings, u16)>, String> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Reads the settings, falling back to the previous good version, then to defaults.
pub fn load(path: &Path) -> Loaded {
    let mut warnings = Vec::new();
    let current = read_one(path);
    let (found, source) = match current {
        Ok(Some(s)) => (Some(s), Source::Current),
        Ok(None) => (None, Source::Missing),
        Err(e) => {
            warnings.push(e);
            match read_one(&previous_path(path)) {
                Ok(Some(s)) => {
                    warnings.push(format!(
                        "using the previous good settings from {}",
                        previous_path(path).display()
                    ));
                    (Some(s), Source::Previous)
                }
                Ok(None) | Err(_) => {
                    warnings.push(format!(
                        "no valid settings left: starting from defaults; the damaged file stays as it is (and is kept as {} on the next write)",
                        damaged_path(path).display()
                    ));
                    (None, Source::Defaults)
                }
            }
        }
    };
    match found {
        Some((settings, version)) => Loaded {
            settings,
            source,
            old_version: (version < VERSION).then_some(version),
            warnings,
        },
        None => Loaded {
            settings: Settings::default(),
            source,
            old_version: None,
            warnings,
        },
    }
}

/// Checks the directory: it must not be writable by others than its owner.
pub fn check_dir(dir: &Path) -> Option<String> {
    let meta = fs::metadata(dir).ok()?;
    (meta.mode() & 0o022 != 0).then(|| {
        format!(
            "{} is writable by group or others (mode {:04o}): anyone there could replace the settings; chmod 0700 it",
            dir.display(),
            meta.mode() & 0o7777
        )
    })
}

/// How long a writer waits for another writer to finish before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

pub fn lock_path(path: &Path) -> PathBuf {
    sibling(path, ".lock")
}

/// The history as it will be once the save whose encoded bytes hash to `hash` has landed.
fn pending_log_path(path: &Path, hash: u64) -> PathBuf {
    sibling(path, &format!(".log.next-{hash:016x}"))
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::nut::fnv::Fnv::default();
    h.write(bytes);
    h.finish()
}

/// The writers' lock: `flock` on `NAME.lock` next to the settings, held from the read to the
/// history's last rename. Released when dropped (or when the holder dies).
pub struct WriteLock {
    _lock: nix::fcntl::Flock<File>,
}

impl WriteLock {
    /// Waits up to [`LOCK_WAIT`] for other writers.
    pub fn take(path: &Path) -> Result<WriteLock, String> {
        ensure_dir(path)?;
        let lp = lock_path(path);
        let open = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lp)
            // A read-only directory: an existing lock file can still be locked, and the write
            // that follows says why it cannot go on.
            .or_else(|e| File::open(&lp).map_err(|_| e))
            .map_err(|e| format!("cannot lock the settings with {}: {e}", lp.display()))?;
        let mut file = open;
        let started = std::time::Instant::now();
        loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Ok(WriteLock { _lock: l }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if started.elapsed() < LOCK_WAIT => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(format!(
                        "another writer has held {} for {} s: the file is unchanged; try again",
                        lp.display(),
                        LOCK_WAIT.as_secs()
                    ))
                }
                Err((_, e)) => {
                    return Err(format!(
                        "cannot lock the settings with {}: {e}",
                        lp.display()
                    ))
                }
            }
        }
    }
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn ensure_dir(path: &Path) -> Result<(), String> {
    let dir = dir_of(path);
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// What a locked write did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// False: the file already held exactly these settings.
    pub wrote: bool,
    /// What changed against the file as it was under the lock, secrets masked.
    pub changes: Vec<(String, String, String)>,
}

/// Why [`update`] wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateError<E> {
    /// The edit refused the settings it was given.
    Edit(E),
    /// The file could not be locked, read or written: it is unchanged.
    Store(String),
}

/// Read-modify-write under the writers' lock: `edit` gets the settings as they are now, and
/// what it returns is written with its history entry (see [`save`]).
pub fn update<E>(
    path: &Path,
    edit: impl FnOnce(Loaded) -> Result<Settings, E>,
) -> Result<Saved, UpdateError<E>> {
    let _lock = WriteLock::take(path).map_err(UpdateError::Store)?;
    recover(path);
    let loaded = load(path);
    let old = loaded.settings.clone();
    let new = edit(loaded).map_err(UpdateError::Edit)?;
    write_locked(path, &old, &new).map_err(UpdateError::Store)
}

/// Writes `new` under the writers' lock; the history names what changed against the file as it
/// is then (not against what the caller once read).
pub fn commit(path: &Path, new: &Settings) -> Result<Saved, String> {
    match update(path, |_| Ok::<_, String>(new.clone())) {
        Ok(s) => Ok(s),
        Err(UpdateError::Edit(e) | UpdateError::Store(e)) => Err(e),
    }
}

/// Writes the settings if they differ from the file's, with their history. Returns whether it
/// wrote. Takes the writers' lock.
pub fn save(path: &Path, settings: &Settings) -> Result<bool, String> {
    commit(path, settings).map(|s| s.wrote)
}

/// The change history, after finishing the history of a save that landed just before its
/// writer died.
pub fn history(path: &Path) -> std::io::Result<String> {
    // Reading creates nothing: without the directory there is no history to finish.
    if dir_of(path).is_dir() {
        if let Ok(_lock) = WriteLock::take(path) {
            recover(path);
        }
    }
    match fs::read_to_string(log_path(path)) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        r => r,
    }
}

/// Under the lock: a writer that died left its pending history (`NAME.log.next-HASH`) and
/// temporaries. The history goes in if the save it belongs to landed (the file's bytes hash to
/// HASH), and is dropped otherwise; every temporary goes (no writer is mid-write: we hold the
/// lock).
fn recover(path: &Path) {
    let (Some(name), dir) = (path.file_name(), dir_of(path)) else {
        return;
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let current = fs::read(path).ok().map(|b| hash(&b));
    let mut touched = false;
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        let Some(rest) = f.strip_prefix(name.as_ref()) else {
            continue;
        };
        if let Some(h) = rest.strip_prefix(".log.next-") {
            let landed = u64::from_str_radix(h, 16)
                .ok()
                .is_some_and(|h| Some(h) == current);
            if landed && fs::rename(e.path(), log_path(path)).is_ok() {
                log::info!(
                    "{}: completed the history of a save that landed",
                    path.display()
                );
            } else {
                let _ = fs::remove_file(e.path());
            }
            touched = true;
        } else if [".tmp", ".prev.tmp", ".log.tmp"].iter().any(|p| {
            rest.strip_prefix(p)
                .is_some_and(|pid| pid.parse::<u32>().is_ok())
        }) {
            let _ = fs::remove_file(e.path());
            touched = true;
        }
    }
    if touched {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

/// The write itself, with the lock held. The order makes the history follow the file: the new
/// history is written under a name that carries the new file's hash, then the file is renamed
/// in (the commit point), then the history. A crash before the commit leaves a pending history
/// that [`recover`] drops; after it, one that [`recover`] puts in place.
fn write_locked(path: &Path, old: &Settings, new: &Settings) -> Result<Saved, String> {
    let bytes = encode(new);
    let existing = fs::read(path);
    if existing.as_deref().ok() == Some(&bytes[..]) {
        return Ok(Saved::default());
    }
    let dir = dir_of(path);
    let current_valid = match &existing {
        Ok(b) => decode(b).is_ok(),
        Err(_) => false,
    };
    // A damaged file is kept aside for inspection, never overwritten.
    if existing.is_ok() && !current_valid {
        let aside = damaged_path(path);
        fs::copy(path, &aside).map_err(|e| {
            format!(
                "cannot keep the damaged {} as {}: {e}",
                path.display(),
                aside.display()
            )
        })?;
        let _ = fs::set_permissions(&aside, fs::Permissions::from_mode(0o600));
    }
    let changes = changes(old, new);
    let pending = pending_log_path(path, hash(&bytes));
    let tmp = sibling(path, &format!(".tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        write_new(&pending, history_text(path, &changes).as_bytes())?;
        write_new(&tmp, &bytes)?;
        if current_valid {
            // Keep the previous good version: link it under a temporary name, then rename, so
            // that a current file exists at every moment.
            let prev_tmp = sibling(path, &format!(".prev.tmp{}", std::process::id()));
            let _ = fs::remove_file(&prev_tmp);
            fs::hard_link(path, &prev_tmp)?;
            fs::rename(&prev_tmp, previous_path(path))?;
        }
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&pending);
        return Err(format!(
            "cannot write the settings to {}: {e}; the file is unchanged",
            path.display()
        ));
    }
    // The save landed; should this fail, the next writer puts the history in place.
    if let Err(e) = fs::rename(&pending, log_path(path)).and_then(|_| File::open(dir)?.sync_all()) {
        log::warn!(
            "{}: the history of this save waits in {}: {e}",
            path.display(),
            pending.display()
        );
    }
    Ok(Saved {
        wrote: true,
        changes,
    })
}

/// A new file, mode 0600, synced.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What changed, field by field, secrets masked: `(field, old, new)`.
pub fn changes(old: &Settings, new: &Settings) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for k in AGENT_KEYS {
        let (a, b) = (old.show_agent(k), new.show_agent(k));
        if a != b {
            out.push((k.to_string(), a, b));
        }
    }
    if old.web_password != new.web_password {
        let set = |p: &Option<_>| if p.is_some() { "********" } else { "(none)" };
        out.push((
            "web_password".to_string(),
            set(&old.web_password).to_string(),
            if new.web_password.is_some() {
                "(changed)"
            } else {
                "(none)"
            }
            .to_string(),
        ));
    }
    for u in &new.ups {
        match old
            .ups
            .iter()
            .find(|o| o.nut_device_name == u.nut_device_name)
        {
            None => out.push((
                format!("ups[{}]", u.nut_device_name),
                "(none)".into(),
                "added".into(),
            )),
            Some(o) => {
                for k in UPS_KEYS {
                    if *k == "nut_password" {
                        if o.nut_password != u.nut_password {
                            out.push((
                                format!("{k}[{}]", u.nut_device_name),
                                "********".into(),
                                "(changed)".into(),
                            ));
                        }
                        continue;
                    }
                    let (a, b) = (o.show(k), u.show(k));
                    if a != b {
                        out.push((format!("{k}[{}]", u.nut_device_name), a, b));
                    }
                }
            }
        }
    }
    for o in &old.ups {
        if !new
            .ups
            .iter()
            .any(|u| u.nut_device_name == o.nut_device_name)
        {
            out.push((
                format!("ups[{}]", o.nut_device_name),
                "present".into(),
                "removed".into(),
            ));
        }
    }
    notify_changes(old, new, &mut out);
    out
}

/// The notification settings' changes, a channel's secret masked.
fn notify_changes(old: &Settings, new: &Settings, out: &mut Vec<(String, String, String)>) {
    let (a, b) = (&old.notify, &new.notify);
    if a.flap_window != b.flap_window {
        out.push((
            "notify.flap_window".into(),
            a.flap_window.to_string(),
            b.flap_window.to_string(),
        ));
    }
    for c in &b.channels {
        let key = format!("notify.channel[{}]", c.name);
        match a.channels.iter().find(|o| o.name == c.name) {
            None => out.push((key, "(none)".into(), c.show())),
            Some(o) if o == c => {}
            Some(o) if o.secret != c.secret && o.show() == c.show() => {
                out.push((key, "secret ********".into(), "(changed)".into()))
            }
            Some(o) => out.push((key, o.show(), c.show())),
        }
    }
    for o in &a.channels {
        if !b.channels.iter().any(|c| c.name == o.name) {
            out.push((
                format!("notify.channel[{}]", o.name),
                o.show(),
                "removed".into(),
            ));
        }
    }
}

/// The history with `changes` appended, keeping its last [`LOG_LINES`] lines.
fn history_text(path: &Path, changes: &[(String, String, String)]) -> String {
    let old = fs::read_to_string(log_path(path)).unwrap_or_default();
    let now = timestamp(SystemTime::now());
    let mut lines: Vec<String> = old.lines().map(String::from).collect();
    lines.extend(
        changes
            .iter()
            .map(|(f, a, b)| format!("{now} {f}: {a} -> {b}")),
    );
    let keep = lines.len().saturating_sub(LOG_LINES);
    if lines[keep..].is_empty() {
        return String::new();
    }
    lines[keep..].join("\n") + "\n"
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_795_714_380)),
            "2026-11-26T17:33:00Z"
        );
    }
}
