//! What the agent remembers of NUT's directory, its files and the settings file between two
//! looks: whether each is there and readable, its content's hash, its mode; and what changed,
//! in words. Reading is the edge ([`look`]); the comparison is pure ([`changes`]).

use std::hash::Hasher;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::nut::fnv::Fnv;

/// What one look found of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Missing,
    /// There, but reading it failed (the reason, e.g. "permission denied").
    Unreadable(String),
    /// Read; the content's FNV-64 hash (0 for a directory, whose content is not read).
    Read(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    pub name: String,
    pub seen: Seen,
    /// Permission bits (`0o7777`), when the file is there.
    pub mode: Option<u32>,
}

/// The state of a file from what reading its metadata and its bytes gave.
pub fn state_of(
    name: &str,
    mode: io::Result<u32>,
    bytes: Option<io::Result<Vec<u8>>>,
) -> FileState {
    let mode = match mode {
        Ok(m) => m & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return FileState {
                name: name.to_string(),
                seen: Seen::Missing,
                mode: None,
            }
        }
        Err(e) => {
            return FileState {
                name: name.to_string(),
                seen: Seen::Unreadable(reason(&e)),
                mode: None,
            }
        }
    };
    let seen = match bytes {
        None => Seen::Read(0),
        Some(Ok(b)) => {
            let mut h = Fnv::default();
            h.write(&b);
            Seen::Read(h.finish())
        }
        Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
        Some(Err(e)) => Seen::Unreadable(reason(&e)),
    };
    FileState {
        name: name.to_string(),
        mode: (seen != Seen::Missing).then_some(mode),
        seen,
    }
}

fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Looks at NUT's directory itself, each of NUT's files the agent checks, and the settings file.
pub fn look(nut_dir: &Path, settings: &Path) -> Vec<FileState> {
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let mut out = Vec::with_capacity(super::watch::NUT_FILES.len() + 2);
    out.push(state_of(
        &nut_dir.display().to_string(),
        mode(nut_dir),
        None,
    ));
    for f in super::watch::NUT_FILES {
        let p = nut_dir.join(f);
        out.push(state_of(f, mode(&p), Some(std::fs::read(&p))));
    }
    let name = settings
        .file_name()
        .map_or("settings".into(), |n| n.to_string_lossy().to_string());
    out.push(state_of(
        &name,
        mode(settings),
        Some(std::fs::read(settings)),
    ));
    out
}

/// What changed from `old` to `new`, one line each: appeared, went away, became unreadable,
/// readable again, changed, a new mode.
pub fn changes(old: &[FileState], new: &[FileState]) -> Vec<String> {
    let mut out = Vec::new();
    for n in new {
        let Some(o) = old.iter().find(|o| o.name == n.name) else {
            continue;
        };
        let name = &n.name;
        match (&o.seen, &n.seen) {
            (Seen::Missing, Seen::Missing) => {}
            (Seen::Missing, _) => out.push(format!("{name} appeared")),
            (_, Seen::Missing) => out.push(format!("{name} went away")),
            (Seen::Read(_), Seen::Unreadable(why)) => {
                out.push(format!("{name} became unreadable ({why})"))
            }
            (Seen::Unreadable(_), Seen::Read(_)) => out.push(format!("{name} is readable again")),
            (Seen::Read(a), Seen::Read(b)) if a != b => out.push(format!("{name} changed")),
            _ => {}
        }
        if let (Some(a), Some(b)) = (o.mode, n.mode) {
            if a != b {
                out.push(format!("{name}: mode {a:04o} -> {b:04o}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> io::Error {
        io::Error::from(io::ErrorKind::PermissionDenied)
    }
    fn missing() -> io::Error {
        io::Error::from(io::ErrorKind::NotFound)
    }

    #[test]
    fn agent_files_a_file_that_cannot_be_read_is_unreadable_not_gone() {
        let s = state_of("upsd.users", Ok(0o100000), Some(Err(denied())));
        assert_eq!(s.seen, Seen::Unreadable("permission denied".into()));
        assert_eq!(s.mode, Some(0));
        let s = state_of("ups.conf", Err(missing()), None);
        assert_eq!((s.seen, s.mode), (Seen::Missing, None));
        // Gone between the two reads.
        let s = state_of("ups.conf", Ok(0o644), Some(Err(missing())));
        assert_eq!((s.seen, s.mode), (Seen::Missing, None));
        let s = state_of("ups.conf", Ok(0o100640), Some(Ok(b"x".to_vec())));
        assert_eq!(s.mode, Some(0o640));
        assert!(matches!(s.seen, Seen::Read(h) if h != 0));
    }

    #[test]
    fn agent_files_says_what_changed_in_words() {
        let st = |name: &str, seen: Seen, mode: Option<u32>| FileState {
            name: name.into(),
            seen,
            mode,
        };
        let old = [
            st("/etc/nut", Seen::Read(0), Some(0o755)),
            st("ups.conf", Seen::Read(1), Some(0o640)),
            st("upsd.conf", Seen::Read(2), Some(0o640)),
            st("upsd.users", Seen::Read(3), Some(0o640)),
            st(
                "upsmon.conf",
                Seen::Unreadable("permission denied".into()),
                Some(0),
            ),
            st("nut.conf", Seen::Missing, None),
            st("settings.bin", Seen::Read(5), Some(0o600)),
        ];
        let new = [
            st("/etc/nut", Seen::Read(0), Some(0o700)),
            st("ups.conf", Seen::Read(9), Some(0o640)),
            st("upsd.conf", Seen::Missing, None),
            st(
                "upsd.users",
                Seen::Unreadable("permission denied".into()),
                Some(0o000),
            ),
            st("upsmon.conf", Seen::Read(4), Some(0o640)),
            st("nut.conf", Seen::Read(6), Some(0o644)),
            st("settings.bin", Seen::Read(5), Some(0o644)),
        ];
        assert_eq!(
            changes(&old, &new),
            [
                "/etc/nut: mode 0755 -> 0700",
                "ups.conf changed",
                "upsd.conf went away",
                "upsd.users became unreadable (permission denied)",
                "upsd.users: mode 0640 -> 0000",
                "upsmon.conf is readable again",
                "upsmon.conf: mode 0000 -> 0640",
                "nut.conf appeared",
                "settings.bin: mode 0600 -> 0644",
            ]
        );
        assert!(changes(&new, &new).is_empty());
    }
}
