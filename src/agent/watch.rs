//! Watching NUT's directory and the settings' directory with inotify (through nix). Directories,
//! not files, are watched: editors and the settings store replace a file by renaming a new one
//! over it, which a watch on the old file would not see.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::nut::{NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

/// The files of NUT's directory the agent checks.
pub const NUT_FILES: [&str; 5] = [NUT_CONF, UPS_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF];

/// What a batch of file events calls for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub settings: bool,
    /// NUT's files that were written, replaced, removed or changed mode.
    pub nut: bool,
}

/// Sorts file events (directory, file name) into what to re-read; other files (temporary
/// files, the settings' `.prev`, `.log`) are ignored. An empty name is NUT's directory itself
/// (a new mode or owner: NUT's programs may no longer read it).
pub fn classify(
    events: &[(PathBuf, OsString)],
    nut_dir: &Path,
    settings: &Path,
    into: &mut Pending,
) {
    let settings_dir = settings.parent().unwrap_or(Path::new("."));
    for (dir, name) in events {
        if dir.as_os_str().is_empty() {
            // The kernel's queue overflowed: anything may have changed.
            into.settings = true;
            into.nut = true;
        }
        if dir == settings_dir && Some(name.as_os_str()) == settings.file_name() {
            into.settings = true;
        }
        if dir == nut_dir && (name.is_empty() || NUT_FILES.iter().any(|f| name == f)) {
            into.nut = true;
        }
    }
}

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct Watcher {
    fd: AsyncFd<Fd>,
    watches: Vec<(WatchDescriptor, PathBuf)>,
}

impl Watcher {
    pub fn new() -> std::io::Result<Watcher> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // SAFETY: `Fd` owns the inotify descriptor (an `OwnedFd` inside `Inotify`) and never
        // gives it away, so it stays open and the same for as long as the `AsyncFd` lives.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(ino), Interest::READABLE) }?;
        Ok(Watcher {
            fd,
            watches: Vec::new(),
        })
    }

    /// Watches exactly these directories; returns a message for each that cannot be watched.
    pub fn watch(&mut self, dirs: &[&Path]) -> Vec<String> {
        let ino = &self.fd.get_ref().0;
        for (wd, _) in self.watches.drain(..) {
            let _ = ino.rm_watch(wd);
        }
        let mut errors = Vec::new();
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB;
        for d in dirs {
            if self.watches.iter().any(|(_, w)| w == d) {
                continue;
            }
            match ino.add_watch(*d, flags) {
                Ok(wd) => self.watches.push((wd, d.to_path_buf())),
                Err(e) => errors.push(format!(
                    "cannot watch {} for changes: {e}; changes there are seen only on SIGHUP",
                    d.display()
                )),
            }
        }
        errors
    }

    /// Waits for events; returns them as (directory, file name). The kernel's queue is bounded
    /// and reports an overflow, returned as an empty directory and name: "anything changed".
    pub async fn next(&mut self, out: &mut Vec<(PathBuf, OsString)>) -> std::io::Result<()> {
        out.clear();
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => {
                    for e in events {
                        if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            out.push((PathBuf::new(), OsString::new()));
                        }
                        let Some((_, dir)) = self.watches.iter().find(|(wd, _)| *wd == e.wd) else {
                            continue;
                        };
                        // No name: the watched directory itself (its mode, its owner).
                        out.push((dir.clone(), e.name.unwrap_or_default()));
                    }
                    if !out.is_empty() {
                        return Ok(());
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_watch_classifies_only_the_files_we_read() {
        let nut = Path::new("/etc/nut");
        let settings = Path::new("/var/lib/power-snitch/settings.bin");
        let ev = |d: &str, n: &str| (PathBuf::from(d), OsString::from(n));
        let check = |events: &[(PathBuf, OsString)], expected: Pending| {
            let mut p = Pending::default();
            classify(events, nut, settings, &mut p);
            assert_eq!(p, expected, "{events:?}");
        };
        check(
            &[ev("/etc/nut", "ups.conf")],
            Pending {
                settings: false,
                nut: true,
            },
        );
        check(
            &[ev("/etc/nut", ".ups.conf.swp"), ev("/etc/nut", "4913")],
            Pending::default(),
        );
        check(
            &[
                ev("/var/lib/power-snitch", "settings.bin.tmp42"),
                ev("/var/lib/power-snitch", "settings.bin.prev"),
            ],
            Pending::default(),
        );
        check(
            &[ev("/etc/nut", "")],
            Pending {
                settings: false,
                nut: true,
            },
        );
        check(
            &[ev("/var/lib/power-snitch", "settings.bin")],
            Pending {
                settings: true,
                nut: false,
            },
        );
    }
}
