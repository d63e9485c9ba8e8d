//! The edge: reads a NUT directory, the installed drivers and NUT's version from the host.

use std::ffi::CString;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::version::NutVersion;
use super::{
    Account, FileMeta, FileState, Snapshot, NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF,
};

/// Largest config file read; NUT's own files are a few KiB.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Where distributions put NUT's drivers and daemons.
const LIBEXEC_DIRS: &[&str] = &[
    "/lib/nut",
    "/usr/lib/nut",
    "/usr/libexec/nut",
    "/usr/local/ups/bin",
    "/usr/local/libexec/nut",
];
const SBIN_DIRS: &[&str] = &[
    "/sbin",
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/local/ups/sbin",
];

/// The directory to check: the one given, else $NUT_CONFPATH, else /etc/nut.
pub fn default_dir() -> PathBuf {
    std::env::var_os("NUT_CONFPATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/nut"))
}

pub fn read_file(path: &Path) -> FileState {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return FileState::Missing,
        Err(e) => return FileState::Unreadable(e.to_string()),
    };
    if !meta.is_file() {
        return FileState::Unreadable("not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return FileState::Unreadable(format!(
            "{} bytes is larger than the {MAX_FILE} read",
            meta.len()
        ));
    }
    let mut text = Vec::new();
    match fs::File::open(path).and_then(|f| f.take(MAX_FILE).read_to_end(&mut text)) {
        Ok(_) => FileState::Read {
            text,
            meta: FileMeta {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
            },
        },
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

/// Reads the five files of `dir`.
pub fn snapshot(dir: &Path) -> Snapshot {
    Snapshot {
        ups_conf: read_file(&dir.join(UPS_CONF)),
        upsd_conf: read_file(&dir.join(UPSD_CONF)),
        upsd_users: read_file(&dir.join(UPSD_USERS)),
        upsmon_conf: read_file(&dir.join(UPSMON_CONF)),
        nut_conf: read_file(&dir.join(NUT_CONF)),
        daemon: account("nut"),
    }
}

/// Looks a user up in the host's account database.
pub fn account(name: &str) -> Option<Account> {
    let user = nix::unistd::User::from_name(name).ok()??;
    let cname = CString::new(name).ok()?;
    let gids = nix::unistd::getgrouplist(&cname, user.gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()]);
    Some(Account {
        name: name.to_string(),
        uid: user.uid.as_raw(),
        gids,
    })
}

/// The names of the drivers installed on the host, when a driver directory exists.
pub fn installed_drivers() -> Option<Vec<String>> {
    installed_drivers_under(Path::new("/"))
}

/// The directory of NUT's drivers on the host, when one is installed.
pub fn driver_dir() -> Option<PathBuf> {
    driver_dir_under(Path::new("/"))
}

/// The driver directory of the NUT installed under `root` (`/` for this host): the first of
/// the distributions' directories holding `dummy-ups`, which every NUT package ships.
/// Debian 12 (2.8.0) uses /lib/nut, Debian 13 (2.8.1) /usr/lib/nut, 2.8.5 /usr/libexec/nut.
pub fn driver_dir_under(root: &Path) -> Option<PathBuf> {
    LIBEXEC_DIRS
        .iter()
        .map(|d| root.join(d.trim_start_matches('/')))
        .find(|d| d.join("dummy-ups").exists())
}

/// The names of the drivers of the NUT installed under `root` (`/` for this host).
pub fn installed_drivers_under(root: &Path) -> Option<Vec<String>> {
    let dir = driver_dir_under(root)?;
    let mut names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !matches!(n.as_str(), "upsd" | "upsmon" | "upsdrvctl"))
        .collect();
    names.sort();
    Some(names)
}

/// NUT's version from its installed upsd (or upsmon, upsc), with the program that said it.
pub fn detect_version() -> Option<(NutVersion, PathBuf)> {
    detect_version_under(Path::new("/"), banner)
}

/// NUT's version as the programs installed under `root` state it: `run` is given each
/// candidate's path as seen from inside `root` (to run it there, e.g. by chroot) and returns
/// what `PROGRAM -V` printed. The first banner that names a version wins.
pub fn detect_version_under(
    root: &Path,
    run: impl Fn(&Path) -> Option<String>,
) -> Option<(NutVersion, PathBuf)> {
    // The driver directory's upsd first: Debian's /sbin/upsd up to 2.8.1 is a wrapper script
    // that prints no version until nut.conf sets MODE (2.8.5 installs upsd in /usr/sbin).
    let candidates = LIBEXEC_DIRS
        .iter()
        .map(|d| Path::new(d).join("upsd"))
        .chain(
            SBIN_DIRS
                .iter()
                .flat_map(|d| ["upsd", "upsmon"].map(|p| Path::new(d).join(p))),
        )
        .chain(["/usr/bin/upsc", "/bin/upsc"].map(PathBuf::from));
    for path in candidates.filter(|p| root.join(p.strip_prefix("/").unwrap_or(p)).exists()) {
        if let Some(v) = run(&path).as_deref().and_then(NutVersion::from_banner) {
            return Some((v, path));
        }
    }
    None
}

/// Runs `program -V` for at most two seconds and returns what it printed.
fn banner(program: &Path) -> Option<String> {
    let mut child = Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    // `-V` takes a couple of milliseconds: look often at first, then less.
    let mut pause = Duration::from_micros(250);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    Some(text)
}
