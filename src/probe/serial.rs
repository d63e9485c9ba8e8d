//! Serial ports: which ones may be talked to, and the dialogues on them.
//!
//! Probing sends bytes to a device, so it is careful: it only talks to ports ups.conf names,
//! ports the user gives, and USB-serial adapters; never to the kernel console, a port locked by
//! a UUCP lock file of a live process, or a port some process (a running NUT driver) holds open;
//! only to character devices; and it puts the port's settings back afterwards. Ports are probed
//! in parallel, each within a bounded time.
//!
//! Only real devices are ever talked to, so the lock files and open files checked are always
//! this system's (`/run/lock`, `/var/lock`, `/proc`), whatever root the ports were listed from.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg, SpecialCharacterIndices, Termios};

use super::dialogue::{Action, Dialogue, Identity, Protocol};
use super::table::Knowledge;
use super::{sysfs, Root, SerialPort, Skip, UsbDevice};

/// Where the serial ports come from and which ones are asked for.
pub struct Plan<'a> {
    pub root: &'a Root,
    /// Paths named by ups.conf or `--serial-port`, as the system names them.
    pub asked: &'a [String],
    /// Whether anything may be sent at all (`false` lists the ports only).
    pub talk: bool,
    /// Talk to this port (kernel name) only, as for a udev event about it.
    pub only: Option<&'a str>,
}

/// Lists the ports, adds the asked paths that are not kernel ttys (a pty, a symlink), and
/// decides for each whether it may be talked to.
pub fn ports(plan: &Plan, usb: &[UsbDevice], know: &Knowledge) -> Vec<SerialPort> {
    let root = plan.root;
    let mut ports = sysfs::serial_ports(root);
    let mut asked_idx = Vec::new();
    for path in plan.asked {
        let real = fs::canonicalize(root.dev_path(path)).ok();
        let real_name = real
            .as_ref()
            .and_then(|r| r.file_name())
            .map(|n| n.to_string_lossy().to_string());
        let found = ports.iter().position(|p| {
            p.path == *path
                || p.by_id.iter().any(|b| b == path)
                || (real_name.as_deref() == Some(p.name.as_str())
                    && real.as_ref().is_some_and(|r| r.starts_with(&root.dev)))
        });
        let i = match found {
            Some(i) => i,
            None => {
                ports.push(SerialPort {
                    name: real_name.clone().unwrap_or_else(|| path.clone()),
                    path: path.clone(),
                    by_id: Vec::new(),
                    usb_parent: None,
                    node: real.as_ref().map(|_| {
                        let mut n = sysfs::node_at(&root.dev_path(path).display().to_string());
                        n.path = path.clone();
                        n
                    }),
                    console: false,
                    skipped: None,
                    answer: None,
                });
                ports.len() - 1
            }
        };
        asked_idx.push(i);
    }
    for (i, p) in ports.iter_mut().enumerate() {
        let adapter = p.name.starts_with("ttyUSB")
            || p.usb_parent.as_ref().is_some_and(|parent| {
                usb.iter()
                    .find(|d| &d.name == parent)
                    .and_then(|d| know.lookup(d.vendor_id, d.product_id))
                    .is_some_and(|(k, _)| k.is_adapter())
            });
        p.skipped = if p.console {
            Some(Skip::Console)
        } else if (!asked_idx.contains(&i) && !adapter)
            || !plan.talk
            || plan.only.is_some_and(|only| only != p.name)
        {
            Some(Skip::NotAsked)
        } else {
            safety(root, p)
        };
    }
    ports
}

/// This system's UUCP lock directories and process table.
const LOCK_DIRS: [&str; 2] = ["/run/lock", "/var/lock"];
const PROC: &str = "/proc";

/// The reasons not to touch a port that we may otherwise talk to.
fn safety(root: &Root, p: &SerialPort) -> Option<Skip> {
    let path = root.dev_path(&p.path);
    let real = match fs::canonicalize(&path) {
        Ok(r) => r,
        Err(e) => return Some(Skip::CannotOpen(e.to_string())),
    };
    match fs::metadata(&real) {
        Ok(m) if m.file_type().is_char_device() => {}
        Ok(_) => return Some(Skip::CannotOpen("not a character device".to_string())),
        Err(e) => return Some(Skip::CannotOpen(e.to_string())),
    }
    let base = real.file_name()?.to_string_lossy().to_string();
    if let Some(by) = lock_holder(&base) {
        return Some(Skip::Locked(by));
    }
    holder(&real).map(Skip::Held)
}

/// A UUCP lock file `LCK..ttyUSB0` of a live process.
fn lock_holder(base: &str) -> Option<String> {
    for dir in LOCK_DIRS {
        let file = Path::new(dir).join(format!("LCK..{base}"));
        let Ok(text) = fs::read(&file) else { continue };
        let pid = parse_lock_pid(&text);
        let alive = pid.is_some_and(|pid| Path::new(PROC).join(pid.to_string()).exists());
        if alive || pid.is_none() {
            return Some(match pid {
                Some(pid) => format!("{} by pid {pid}", file.display()),
                None => format!("{} (unreadable pid)", file.display()),
            });
        }
    }
    None
}

/// UUCP lock files hold the pid as ten ASCII digits, or as a binary int from older tools.
pub fn parse_lock_pid(text: &[u8]) -> Option<u32> {
    let s = String::from_utf8_lossy(text);
    if let Ok(pid) = s.trim().parse::<u32>() {
        return Some(pid);
    }
    (text.len() == 4).then(|| u32::from_ne_bytes([text[0], text[1], text[2], text[3]]))
}

/// A process (other than this one) with the device open, as "pid N (name)".
fn holder(real: &Path) -> Option<String> {
    let me = std::process::id().to_string();
    for proc_entry in fs::read_dir(PROC).ok()?.filter_map(|e| e.ok()) {
        let pid = proc_entry.file_name().to_string_lossy().to_string();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(|e| e.ok()) {
            if fs::read_link(fd.path()).is_ok_and(|t| t == real) {
                let comm = fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

/// Talks to every port that may be talked to, in parallel; `progress` hears each start. When
/// the system gives no more threads (a pids limit, `TasksMax`), the ports left are talked to one
/// after the other on this thread: slower, never a crash.
pub fn probe(root: &Root, ports: &mut [SerialPort], progress: &(dyn Fn(&str) + Sync)) {
    type Answer = io::Result<Option<(Protocol, Identity)>>;
    let mut answers: Vec<(usize, Answer)> = Vec::new();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, p) in ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.skipped.is_none())
        {
            let path = root.dev_path(&p.path);
            let shown = p.path.as_str();
            let (thread_path, thread_shown) = (path.clone(), shown);
            let spawned = std::thread::Builder::new()
                .name("serial-probe".into())
                .spawn_scoped(s, move || {
                    progress(thread_shown);
                    identify(&thread_path)
                });
            match spawned {
                Ok(h) => handles.push((i, h)),
                Err(e) => {
                    log::debug!("probe: no thread for {shown} ({e}): probing it here");
                    progress(shown);
                    answers.push((i, identify(&path)));
                }
            }
        }
        for (i, h) in handles {
            let answer = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("probe failed")));
            answers.push((i, answer));
        }
    });
    for (i, answer) in answers {
        match answer {
            Ok(answer) => ports[i].answer = answer,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ports[i].skipped = Some(Skip::Held(e.to_string()))
            }
            Err(e) => ports[i].skipped = Some(Skip::CannotOpen(e.to_string())),
        }
    }
}

/// Opens a port, tries each protocol, and restores the port's settings.
pub fn identify(path: &Path) -> io::Result<Option<(Protocol, Identity)>> {
    let lock = Lock::take(path);
    let mut port = Port::open(path)?;
    let mut found = None;
    for proto in Protocol::ALL {
        if let Some(id) = port.converse(proto)? {
            found = Some((proto, id));
            break;
        }
    }
    drop(port);
    drop(lock);
    Ok(found)
}

/// Our own UUCP lock while talking, so a NUT driver starting meanwhile waits rather than
/// reading our dialogue. Best effort: without a writable lock directory, no lock.
struct Lock(Option<PathBuf>);

impl Lock {
    fn take(path: &Path) -> Lock {
        let Some(base) = fs::canonicalize(path)
            .ok()
            .and_then(|r| r.file_name().map(|n| n.to_string_lossy().to_string()))
        else {
            return Lock(None);
        };
        // Only for /dev/ttyX names: a pty's name (`5`) is not a lock name anyone checks.
        if !base.starts_with("tty") {
            return Lock(None);
        }
        for dir in LOCK_DIRS {
            let file = Path::new(dir).join(format!("LCK..{base}"));
            // UUCP lock files are world-readable so that every program can read the pid.
            let new = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&file);
            if let Ok(mut f) = new {
                let _ = writeln!(f, "{:>10}", std::process::id());
                return Lock(Some(file));
            }
        }
        Lock(None)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            let _ = fs::remove_file(f);
        }
    }
}

/// An open port in raw 2400 8N1, restored on drop.
struct Port {
    file: File,
    saved: Option<Termios>,
    _lock: Option<Flock<File>>,
}

impl Port {
    fn open(path: &Path) -> io::Result<Port> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
            .open(path)?;
        // NUT's drivers flock their port: a port locked so is in use, even where /proc does
        // not show us the holder. Our own lock keeps a driver starting now from reading our
        // dialogue; it goes with the port.
        let lock = match Flock::lock(file.try_clone()?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Some(l),
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "locked by the program using it",
                ))
            }
            // A device without flock support: no lock to respect or take.
            Err(_) => None,
        };
        let saved = termios::tcgetattr(file.as_fd()).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::cfsetspeed(&mut raw, BaudRate::B2400).map_err(io::Error::from)?;
        raw.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD | ControlFlags::CS8;
        raw.control_flags &= !(ControlFlags::CRTSCTS | ControlFlags::PARENB | ControlFlags::CSTOPB);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(file.as_fd(), SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        let port = Port {
            file,
            saved: Some(saved),
            _lock: lock,
        };
        port.flush();
        Ok(port)
    }

    fn flush(&self) {
        let _ = termios::tcflush(self.file.as_fd(), termios::FlushArg::TCIOFLUSH);
    }

    /// Runs one protocol's dialogue to its end.
    fn converse(&mut self, proto: Protocol) -> io::Result<Option<Identity>> {
        self.flush();
        let (mut d, mut action) = Dialogue::start(proto);
        let mut deadline = Instant::now();
        let mut buf = [0u8; 128];
        loop {
            action = match action {
                Action::Done(id) => return Ok(id),
                Action::Send(bytes, time) => {
                    self.write_all(&bytes, time)?;
                    deadline = Instant::now() + time;
                    Action::Read
                }
                Action::Read => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.wait_readable(left)? {
                        d.timeout()
                    } else {
                        match self.file.read(&mut buf) {
                            Ok(0) => d.timeout(),
                            Ok(n) => d.feed(&buf[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Action::Read,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => Action::Read,
                            // A pty whose other end closed, or a device pulled out.
                            Err(e) => return Err(e),
                        }
                    }
                }
            };
        }
    }

    fn write_all(&mut self, mut bytes: &[u8], time: Duration) -> io::Result<()> {
        let deadline = Instant::now() + time;
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "port does not take data",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn wait_readable(&self, left: Duration) -> io::Result<bool> {
        let ms = left.as_millis().clamp(1, 10_000) as u16;
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = termios::tcsetattr(self.file.as_fd(), SetArg::TCSANOW, &saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_hold_ascii_or_binary_pids() {
        assert_eq!(parse_lock_pid(b"      1234\n"), Some(1234));
        assert_eq!(parse_lock_pid(&1234u32.to_ne_bytes()), Some(1234));
        assert_eq!(parse_lock_pid(b"garbage!!"), None);
    }
}
