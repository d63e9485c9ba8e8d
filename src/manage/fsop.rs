//! **The edge** that writes NUT's directory: opened once, every file reached through that
//! handle (`openat` with `O_NOFOLLOW`, `renameat`), so no symlink — of the directory or of a
//! file in it — leads a write elsewhere. Writes are atomic and durable (a temporary in the same
//! directory, fsync, rename, fsync of the directory) and keep the file's owner, group and mode.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::nut::{FileMeta, FileState, NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

/// NUT's five files: the only names ever written.
pub const FILES: [&str; 5] = [NUT_CONF, UPS_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF];
/// Largest NUT file written or read here; NUT's own are a few KiB.
pub const MAX_FILE: usize = 256 * 1024;
/// The backups' directory inside NUT's directory.
pub const BACKUPS: &str = "power-snitch-backups";
/// Most backups kept; the oldest go first.
pub const KEEP_BACKUPS: usize = 10;

/// One of NUT's five names, or `None`: nothing else is ever opened for writing.
pub fn known(name: &str) -> Option<&'static str> {
    FILES.iter().copied().find(|f| *f == name)
}

/// What went wrong on the disk, with the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoError {
    pub path: PathBuf,
    pub what: String,
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

/// NUT's directory, opened once.
pub struct Dir {
    pub path: PathBuf,
    fd: File,
}

pub(super) fn own(fd: RawFd) -> File {
    // SAFETY: `fd` was just returned by openat and is owned by nothing else.
    unsafe { File::from_raw_fd(fd) }
}

impl Dir {
    /// Opens `path` as a directory, refusing a symlink.
    pub fn open(path: &Path) -> Result<Dir, IoError> {
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(path)
            .map_err(|e| IoError {
                path: path.to_path_buf(),
                what: if e.raw_os_error() == Some(nix::libc::ELOOP)
                    || e.raw_os_error() == Some(nix::libc::ENOTDIR)
                {
                    "is a symlink or not a directory: refused".into()
                } else {
                    format!("cannot open NUT's directory: {e}")
                },
            })?;
        Ok(Dir {
            path: path.to_path_buf(),
            fd,
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn err(&self, name: &str, what: impl Into<String>) -> IoError {
        IoError {
            path: self.path.join(name),
            what: what.into(),
        }
    }

    /// Reads one of NUT's files as the validator sees it; a symlink or a non-regular file is
    /// an error, not followed.
    pub fn read(&self, name: &str) -> Result<FileState, IoError> {
        let fd = match openat(
            Some(self.raw()),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => own(fd),
            Err(nix::errno::Errno::ENOENT) => return Ok(FileState::Missing),
            Err(nix::errno::Errno::ELOOP) => return Err(self.err(
                name,
                "is a symlink: refused (NUT's files are written in place, never through a link)",
            )),
            Err(e) => return Err(self.err(name, format!("cannot open: {e}"))),
        };
        let meta = fd
            .metadata()
            .map_err(|e| self.err(name, format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(self.err(name, "is not a regular file: refused"));
        }
        let mut text = Vec::new();
        fd.take(MAX_FILE as u64 + 1)
            .read_to_end(&mut text)
            .map_err(|e| self.err(name, format!("cannot read: {e}")))?;
        if text.len() > MAX_FILE {
            return Err(self.err(name, format!("is larger than {MAX_FILE} bytes")));
        }
        Ok(FileState::Read {
            text,
            meta: FileMeta {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
            },
        })
    }

    /// Writes `text` as `name` atomically and durably with `meta`'s owner, group and mode
    /// (the owner only when this process may set it).
    pub fn write(&self, name: &str, text: &[u8], meta: FileMeta) -> Result<(), IoError> {
        let name = known(name).ok_or_else(|| self.err(name, "not one of NUT's five files"))?;
        let tmp = format!(".{name}.power-snitch-{}", std::process::id());
        let _ = unlinkat(Some(self.raw()), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let fd = openat(
            Some(self.raw()),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.err(&tmp, format!("cannot create: {e}")))?;
        let mut f = own(fd);
        let done = (|| -> Result<(), String> {
            f.write_all(text)
                .map_err(|e| format!("cannot write: {e}"))?;
            if Uid::effective().is_root() {
                fchown(
                    f.as_raw_fd(),
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                )
                .map_err(|e| format!("cannot set the owner: {e}"))?;
            }
            fchmod(f.as_raw_fd(), Mode::from_bits_truncate(meta.mode & 0o7777))
                .map_err(|e| format!("cannot set the mode: {e}"))?;
            f.sync_all().map_err(|e| format!("cannot sync: {e}"))?;
            renameat(Some(self.raw()), tmp.as_str(), Some(self.raw()), name)
                .map_err(|e| format!("cannot rename into place: {e}"))?;
            fsync(self.raw()).map_err(|e| format!("cannot sync the directory: {e}"))
        })();
        if let Err(e) = done {
            let _ = unlinkat(Some(self.raw()), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(self.err(name, e));
        }
        Ok(())
    }

    /// Removes `name` (a file the change had created), durably.
    pub fn remove(&self, name: &str) -> Result<(), IoError> {
        let name = known(name).ok_or_else(|| self.err(name, "not one of NUT's five files"))?;
        match unlinkat(Some(self.raw()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(self.err(name, format!("cannot remove: {e}"))),
        }
        fsync(self.raw()).map_err(|e| self.err(name, format!("cannot sync the directory: {e}")))
    }

    /// The metadata a new file gets: root:nut 0640 for the files with passwords (the group
    /// NUT's daemons run as), else that of an existing sibling (NUT's packages give all their
    /// files one owner and mode), else root:root 0644.
    pub fn new_meta(&self, name: &str, nut_gid: Option<u32>) -> FileMeta {
        if matches!(name, UPSD_USERS | UPSMON_CONF) {
            return FileMeta {
                mode: 0o100640,
                uid: 0,
                gid: nut_gid.unwrap_or(0),
            };
        }
        for sib in [UPS_CONF, UPSD_CONF, NUT_CONF] {
            if let Ok(st) = fstatat(
                Some(self.raw()),
                sib,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG {
                    return FileMeta {
                        mode: st.st_mode,
                        uid: st.st_uid,
                        gid: st.st_gid,
                    };
                }
            }
        }
        FileMeta {
            mode: 0o100644,
            uid: 0,
            gid: 0,
        }
    }

    /// The backups' directory, made 0700 when missing; refused when it is a symlink.
    fn backups(&self) -> Result<Dir, IoError> {
        match mkdirat(Some(self.raw()), BACKUPS, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(self.err(BACKUPS, format!("cannot create: {e}"))),
        }
        let fd = openat(
            Some(self.raw()),
            BACKUPS,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(BACKUPS, format!("cannot open (a symlink is refused): {e}")))?;
        Ok(Dir {
            path: self.path.join(BACKUPS),
            fd: own(fd),
        })
    }

    /// Keeps the previous versions of the files a change touches as one dated backup:
    /// `BACKUPS/STAMP/NAME` for a file that existed, `BACKUPS/STAMP/NAME.absent` for one that
    /// did not. At most [`KEEP_BACKUPS`] are kept. Returns the backup's path.
    pub fn backup(&self, old: &[(&str, &FileState)], stamp: &str) -> Result<PathBuf, IoError> {
        let root = self.backups()?;
        let mut name = stamp.to_string();
        let mut n = 1;
        loop {
            match mkdirat(
                Some(root.raw()),
                name.as_str(),
                Mode::from_bits_truncate(0o700),
            ) {
                Ok(()) => break,
                Err(nix::errno::Errno::EEXIST) if n < 100 => {
                    n += 1;
                    name = format!("{stamp}-{n}");
                }
                Err(e) => return Err(root.err(&name, format!("cannot create: {e}"))),
            }
        }
        let fd = openat(
            Some(root.raw()),
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| root.err(&name, format!("cannot open: {e}")))?;
        let dir = Dir {
            path: root.path.join(&name),
            fd: own(fd),
        };
        for (file, state) in old {
            match state {
                FileState::Read { text, meta } => dir.write(file, text, *meta)?,
                _ => {
                    let marker = format!("{file}.absent");
                    let fd = openat(
                        Some(dir.raw()),
                        marker.as_str(),
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                    .map_err(|e| dir.err(&marker, format!("cannot create: {e}")))?;
                    drop(own(fd));
                }
            }
        }
        fsync(dir.raw()).map_err(|e| dir.err("", format!("cannot sync: {e}")))?;
        fsync(root.raw()).map_err(|e| root.err("", format!("cannot sync: {e}")))?;
        root.prune()?;
        Ok(dir.path)
    }

    /// Removes a backup this change made, once the change was rolled back (the files are as
    /// it holds them, and undo must go to the change before).
    pub fn remove_backup(&self, path: &Path) -> Result<(), IoError> {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        let root = self.backups()?;
        let fd = openat(
            Some(root.raw()),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| root.err(name, format!("cannot open: {e}")))?;
        let d = own(fd);
        for f in FILES {
            let _ = unlinkat(Some(d.as_raw_fd()), f, UnlinkatFlags::NoRemoveDir);
            let marker = format!("{f}.absent");
            let _ = unlinkat(
                Some(d.as_raw_fd()),
                marker.as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        unlinkat(Some(root.raw()), name, UnlinkatFlags::RemoveDir)
            .map_err(|e| root.err(name, format!("cannot remove: {e}")))
    }

    /// The backups, oldest first.
    fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.as_bytes().first().is_some_and(u8::is_ascii_digit))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by_key(|a| stamp_key(a));
        names
    }

    fn prune(&self) -> Result<(), IoError> {
        let names = self.list();
        for old in names.iter().take(names.len().saturating_sub(KEEP_BACKUPS)) {
            let fd = openat(
                Some(self.raw()),
                old.as_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            if let Ok(fd) = fd {
                let d = own(fd);
                for f in FILES {
                    let _ = unlinkat(Some(d.as_raw_fd()), f, UnlinkatFlags::NoRemoveDir);
                    let _ = unlinkat(
                        Some(d.as_raw_fd()),
                        format!("{f}.absent").as_str(),
                        UnlinkatFlags::NoRemoveDir,
                    );
                }
            }
            unlinkat(Some(self.raw()), old.as_str(), UnlinkatFlags::RemoveDir)
                .map_err(|e| self.err(old, format!("cannot remove an old backup: {e}")))?;
        }
        Ok(())
    }

    /// The newest backup: its path and the files it holds (`None`: the file did not exist).
    #[allow(clippy::type_complexity)]
    pub fn newest_backup(
        &self,
    ) -> Result<Option<(PathBuf, Vec<(&'static str, Option<Vec<u8>>)>)>, IoError> {
        let root = match openat(
            Some(self.raw()),
            BACKUPS,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Dir {
                path: self.path.join(BACKUPS),
                fd: own(fd),
            },
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(self.err(BACKUPS, format!("cannot open (a symlink is refused): {e}")))
            }
        };
        let Some(name) = root.list().pop() else {
            return Ok(None);
        };
        let fd = openat(
            Some(root.raw()),
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| root.err(&name, format!("cannot open: {e}")))?;
        let dir = Dir {
            path: root.path.join(&name),
            fd: own(fd),
        };
        let mut files = Vec::new();
        for f in FILES {
            match dir.read(f)? {
                FileState::Read { text, .. } => files.push((f, Some(text))),
                _ => {
                    let marker = format!("{f}.absent");
                    if fstatat(
                        Some(dir.raw()),
                        marker.as_str(),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .is_ok()
                    {
                        files.push((f, None));
                    }
                }
            }
        }
        Ok(Some((dir.path, files)))
    }
}

/// Backups sort by their stamp, then by the counter a second backup in the same second gets.
fn stamp_key(name: &str) -> (String, u32) {
    match name.split_once('-') {
        Some((s, n)) => (s.to_string(), n.parse().unwrap_or(0)),
        None => (name.to_string(), 1),
    }
}

/// A backup's name from the time: `YYYYMMDDTHHMMSSZ`, UTC.
pub fn stamp(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(1_796_169_600), "20261202T000000Z");
        assert_eq!(stamp(951_782_400 + 3661), "20000229T010101Z");
    }

    #[test]
    fn backups_sort_by_stamp_then_counter() {
        let mut v = vec![
            "20261202T000000Z-10",
            "20261202T000000Z-2",
            "20261201T235959Z",
            "20261202T000000Z",
        ];
        v.sort_by_key(|a| stamp_key(a));
        assert_eq!(
            v,
            [
                "20261201T235959Z",
                "20261202T000000Z",
                "20261202T000000Z-2",
                "20261202T000000Z-10"
            ]
        );
    }
}
