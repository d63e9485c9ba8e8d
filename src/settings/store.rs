//! The settings file on disk: atomic, durable writes; the previous good version kept; a damaged
//! file set aside, never overwritten; nothing written when nothing changed; a bounded change log.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Writes the settings if they differ from the file's. Returns whether it wrote.
pub fn save(path: &Path, settings: &Settings) -> Result<bool, String> {
    let bytes = encode(settings);
    let existing = fs::read(path);
    if existing.as_deref().ok() == Some(&bytes[..]) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
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
    }
    remove_stale_temporaries(path);
    let tmp = sibling(path, &format!(".tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
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
        return Err(format!(
            "cannot write the settings to {}: {e}; the file is unchanged",
            path.display()
        ));
    }
    Ok(true)
}

/// Removes temporary files left by writers that died mid-write (`NAME.tmpPID`, `NAME.prev.tmpPID`).
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        let Some(rest) = f.strip_prefix(name.as_ref()) else {
            continue;
        };
        let pid = rest
            .strip_prefix(".tmp")
            .or_else(|| rest.strip_prefix(".prev.tmp"));
        if let Some(pid) = pid.and_then(|p| p.parse::<i32>().ok()) {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if !alive {
                let _ = fs::remove_file(e.path());
            }
        }
    }
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
    out
}

/// Appends changes to the log next to the settings, keeping its last [`LOG_LINES`] lines.
pub fn log_changes(path: &Path, changes: &[(String, String, String)]) -> Result<(), String> {
    if changes.is_empty() {
        return Ok(());
    }
    let log = log_path(path);
    let old = fs::read_to_string(&log).unwrap_or_default();
    let now = timestamp(SystemTime::now());
    let mut lines: Vec<String> = old.lines().map(String::from).collect();
    lines.extend(
        changes
            .iter()
            .map(|(f, a, b)| format!("{now} {f}: {a} -> {b}")),
    );
    let keep = lines.len().saturating_sub(LOG_LINES);
    let text = lines[keep..].join("\n") + "\n";
    let tmp = sibling(&log, &format!(".tmp{}", std::process::id()));
    let r = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &log)
    })();
    r.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write the change log {}: {e}", log.display())
    })
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
