//! **The edge** that runs NUT: the actions of [`super::plan`] behind one narrow trait, with a
//! systemd implementation (NUT's units) and a direct one (NUT's programs with NUT's paths in
//! the environment, as the tests run them). Every program runs bounded in time, its output
//! captured for the report.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::plan::{Action, Op, Unit};

/// How long one program may take (`upsdrvctl start` waits for the driver's first poll).
pub const PROGRAM_TIMEOUT: Duration = Duration::from_secs(90);
/// Most bytes of a program's output kept.
const MAX_OUTPUT: usize = 16 * 1024;
/// Most log lines a failure report carries per unit.
pub const LOG_LINES: usize = 20;

/// Runs the actions on NUT.
pub trait Runner {
    /// Runs one action; the error is what failed, with NUT's own words.
    fn run(&mut self, action: &Action) -> Result<(), String>;
    /// NUT's recent log lines about `unit` (the journal, or what the program printed).
    fn logs(&mut self, unit: &Unit) -> Vec<String>;
}

/// A program's exit and its output (stdout and stderr in one), bounded in time.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(bool, String), String> {
    // One pipe for both streams; read without blocking after the program exits, since a
    // daemon it forked may keep the write end open.
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let w2 = w
        .try_clone()
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // Drop our copies of the write end (the Command holds them until it is dropped).
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut file = std::fs::File::from(r);
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let status = loop {
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            if out.len() < MAX_OUTPUT {
                out.extend_from_slice(&buf[..n.min(MAX_OUTPUT - out.len())]);
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    while let Ok(n) = file.read(&mut buf) {
        if n == 0 || out.len() >= MAX_OUTPUT {
            break;
        }
        out.extend_from_slice(&buf[..n.min(MAX_OUTPUT - out.len())]);
    }
    let text = String::from_utf8_lossy(&out).trim_end().to_string();
    match status {
        Some(s) => Ok((s.success(), text)),
        None => Err(format!(
            "{program} did not finish within {} s{}",
            limit.as_secs(),
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        )),
    }
}

fn last_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(LOG_LINES)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// NUT's programs run directly, with `NUT_CONFPATH`, `NUT_STATEPATH` and `NUT_ALTPIDPATH`
/// set to NUT's directory and state directory; `-u USER` when given (root in tests, where no
/// `nut` account owns the temporary directory).
pub struct Direct {
    pub conf_dir: PathBuf,
    pub state_dir: PathBuf,
    /// NUT's programs themselves (not Debian's /sbin wrappers that read /etc/nut/nut.conf):
    /// the driver directory's upsd and upsmon, and upsdrvctl.
    pub upsd: PathBuf,
    pub upsmon: PathBuf,
    pub upsdrvctl: PathBuf,
    pub user: Option<String>,
    /// Where upsmon keeps its PID file: NUT's root PID directory, whatever the environment
    /// says (Debian: /run/nut).
    pub upsmon_pid: PathBuf,
    /// What each unit's last program said.
    said: Vec<(Unit, String)>,
}

impl Direct {
    /// NUT in `conf_dir`, its state in `state_dir`, its upsd and upsmon in `driver_dir`.
    pub fn new(conf_dir: &Path, state_dir: &Path, driver_dir: &Path, user: Option<&str>) -> Direct {
        Direct {
            conf_dir: conf_dir.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            upsd: driver_dir.join("upsd"),
            upsmon: driver_dir.join("upsmon"),
            upsdrvctl: find_upsdrvctl(),
            user: user.map(str::to_string),
            upsmon_pid: PathBuf::from("/run/nut/upsmon.pid"),
            said: Vec::new(),
        }
    }

    fn program(
        &mut self,
        unit: &Unit,
        name: &str,
        args: &[&str],
        must: bool,
    ) -> Result<(), String> {
        let path = match name {
            "upsd" => &self.upsd,
            "upsmon" => &self.upsmon,
            _ => &self.upsdrvctl,
        };
        let mut cmd = Command::new(path);
        if let Some(u) = &self.user {
            if args.first() != Some(&"-c") {
                cmd.args(["-u", u]);
            }
        }
        cmd.args(args)
            .env("NUT_CONFPATH", &self.conf_dir)
            .env("NUT_STATEPATH", &self.state_dir)
            .env("NUT_ALTPIDPATH", &self.state_dir);
        let (ok, text) = run_bounded(&mut cmd, PROGRAM_TIMEOUT)?;
        self.said.retain(|(u, _)| u != unit);
        self.said.push((unit.clone(), text.clone()));
        if ok || !must {
            Ok(())
        } else {
            Err(format!(
                "`{name} {}` failed{}",
                args.join(" "),
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", last_lines(&text).join(" / "))
                }
            ))
        }
    }

    /// The driver of the section `name` as ups.conf names it now (for its PID file).
    fn driver_of(&self, name: &str) -> Option<String> {
        use crate::nut::diag::Sink;
        let bytes = std::fs::read(self.conf_dir.join(crate::nut::UPS_CONF)).ok()?;
        let mut sink = Sink::new(crate::nut::UPS_CONF);
        let lines = crate::nut::conf::read_lines(
            &bytes,
            crate::nut::lexer::Dialect::HashInQuotesIsError,
            &mut sink,
        );
        let conf = crate::nut::ups_conf::parse(&lines, &mut sink);
        conf.section(name)?.value("driver").map(str::to_string)
    }

    /// Stops the driver of `name` as systemd stops a unit: `upsdrvctl stop` (SIGTERM), a
    /// SIGCONT so that a stopped driver handles it, and SIGKILL when it has not gone within
    /// 10 s (a hung driver must not keep its socket, or upsd would keep reading it).
    fn stop_driver(&mut self, unit: &Unit, name: &str) -> Result<(), String> {
        let pid_file = self
            .driver_of(name)
            .map(|d| self.state_dir.join(format!("{d}-{name}.pid")));
        let pid = pid_file.as_deref().and_then(pid_of);
        self.program(unit, "upsdrvctl", &["stop", name], false)?;
        if let Some(pid) = pid {
            use nix::sys::signal::{kill, Signal};
            let _ = kill(pid, Signal::SIGCONT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(pid) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        Ok(())
    }

    /// Waits until the process whose PID file is `path` has gone.
    fn wait_gone(&self, path: &Path) {
        let Some(pid) = pid_of(path) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts upsmon. upsmon refuses to while its PID file names a process that answers a
    /// signal 0, which a zombie upsmon does: a PID file that names no running process goes.
    fn start_upsmon(&mut self, unit: &Unit) -> Result<(), String> {
        if self.upsmon_pid.exists() && !runs(&self.upsmon_pid) {
            let _ = std::fs::remove_file(&self.upsmon_pid);
        }
        self.program(unit, "upsmon", &[], true)
    }
}

impl Runner for Direct {
    fn run(&mut self, a: &Action) -> Result<(), String> {
        match (&a.unit, a.op) {
            (Unit::Driver(n), Op::Start) => self.program(&a.unit, "upsdrvctl", &["start", n], true),
            (Unit::Driver(n), Op::Stop) => self.stop_driver(&a.unit, n),
            (Unit::Driver(n), Op::Restart | Op::Reload) => {
                self.stop_driver(&a.unit, n)?;
                self.program(&a.unit, "upsdrvctl", &["start", n], true)
            }
            (Unit::Upsd, Op::Start) => self.program(&a.unit, "upsd", &[], true),
            (Unit::Upsd, Op::Stop) => {
                self.program(&a.unit, "upsd", &["-c", "stop"], false)?;
                self.wait_gone(&self.state_dir.join("upsd.pid"));
                Ok(())
            }
            (Unit::Upsd, Op::Restart) => {
                self.program(&a.unit, "upsd", &["-c", "stop"], false)?;
                self.wait_gone(&self.state_dir.join("upsd.pid"));
                self.program(&a.unit, "upsd", &[], true)
            }
            // A daemon that does not run has nothing to reload (whether it runs follows MODE).
            (Unit::Upsd, Op::Reload) if !runs(&self.state_dir.join("upsd.pid")) => Ok(()),
            (Unit::Upsd, Op::Reload) => self.program(&a.unit, "upsd", &["-c", "reload"], true),
            (Unit::Upsmon, Op::Start) => self.start_upsmon(&a.unit),
            (Unit::Upsmon, Op::Stop) => {
                self.program(&a.unit, "upsmon", &["-c", "stop"], false)?;
                self.wait_gone(&self.upsmon_pid.clone());
                Ok(())
            }
            (Unit::Upsmon, Op::Restart) => {
                self.program(&a.unit, "upsmon", &["-c", "stop"], false)?;
                self.wait_gone(&self.upsmon_pid.clone());
                self.start_upsmon(&a.unit)
            }
            (Unit::Upsmon, Op::Reload) if !runs(&self.upsmon_pid) => Ok(()),
            (Unit::Upsmon, Op::Reload) => self.program(&a.unit, "upsmon", &["-c", "reload"], true),
        }
    }

    fn logs(&mut self, unit: &Unit) -> Vec<String> {
        self.said
            .iter()
            .find(|(u, _)| u == unit)
            .map(|(_, t)| last_lines(t))
            .unwrap_or_default()
    }
}

/// The process whose PID file is `path`, when it runs.
fn pid_of(path: &Path) -> Option<nix::unistd::Pid> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .map(nix::unistd::Pid::from_raw)
        .filter(|p| alive(*p))
}

/// Whether the process whose PID file is `path` runs.
fn runs(path: &Path) -> bool {
    pid_of(path).is_some()
}

/// Whether `pid` runs. A zombie does not: it has exited and only waits to be reaped, which
/// an init that is not a real one (a container's first process) may never do, while a
/// signal 0 to it still succeeds.
pub fn alive(pid: nix::unistd::Pid) -> bool {
    nix::sys::signal::kill(pid, None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            // The state follows the command name, which is in parentheses and may hold any.
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            != Some(true)
}

/// Where NUT installs upsdrvctl (a program, not a wrapper, in every release).
fn find_upsdrvctl() -> PathBuf {
    [
        "/sbin/upsdrvctl",
        "/usr/sbin/upsdrvctl",
        "/lib/nut/upsdrvctl",
        "/usr/libexec/nut/upsdrvctl",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("upsdrvctl"))
}

/// NUT's systemd units: `nut-driver@NAME` where NUT installs that template (else
/// `upsdrvctl`), `nut-server` for upsd, `nut-monitor` for upsmon; logs from the journal.
pub struct Systemd {
    /// NUT installs the `nut-driver@.service` template.
    pub driver_units: bool,
    pub upsdrvctl: PathBuf,
}

impl Systemd {
    pub fn detect() -> Systemd {
        let driver_units = [
            "/etc/systemd/system",
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
        ]
        .iter()
        .any(|d| Path::new(d).join("nut-driver@.service").exists());
        Systemd {
            driver_units,
            upsdrvctl: find_upsdrvctl(),
        }
    }

    /// The unit that runs `unit`, when there is one.
    pub fn unit_name(&self, unit: &Unit) -> Option<String> {
        match unit {
            Unit::Driver(n) if self.driver_units => {
                Some(format!("nut-driver@{}.service", escape(n)))
            }
            Unit::Driver(_) => None,
            Unit::Upsd => Some("nut-server.service".into()),
            Unit::Upsmon => Some("nut-monitor.service".into()),
        }
    }
}

/// systemd's escaping of an instance name (`systemd-escape`): `/` as `-`, and every byte but
/// ASCII letters, digits, `:`, `_` and a `.` that does not lead as `\xNN`.
pub fn escape(name: &str) -> String {
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i > 0 => out.push('.'),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

impl Systemd {
    /// The programs an action runs, in order, as argv; only the last one's failure fails it.
    pub fn commands(&self, a: &Action) -> Vec<Vec<String>> {
        let argv = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match (self.unit_name(&a.unit), &a.unit) {
            (Some(unit), u) => {
                let verb = match (u, a.op) {
                    // upsd and upsmon follow MODE at the next boot too: enabled when they
                    // start, disabled when they stop (the drivers follow ups.conf and udev).
                    (Unit::Upsd | Unit::Upsmon, Op::Start) => vec!["enable", "--now"],
                    (Unit::Upsd | Unit::Upsmon, Op::Stop) => vec!["disable", "--now"],
                    (_, Op::Start) => vec!["start"],
                    (_, Op::Stop) => vec!["stop"],
                    (_, Op::Restart) => vec!["restart"],
                    (_, Op::Reload) => vec!["reload-or-restart"],
                };
                let mut c = vec!["systemctl".to_string()];
                c.extend(verb.iter().map(|s| s.to_string()));
                c.push(unit);
                vec![c]
            }
            (None, Unit::Driver(n)) => {
                let prog = self.upsdrvctl.display().to_string();
                match a.op {
                    Op::Stop => vec![argv(&[&prog, "stop", n])],
                    Op::Start => vec![argv(&[&prog, "start", n])],
                    Op::Restart | Op::Reload => {
                        vec![argv(&[&prog, "stop", n]), argv(&[&prog, "start", n])]
                    }
                }
            }
            (None, _) => Vec::new(),
        }
    }
}

impl Runner for Systemd {
    fn run(&mut self, a: &Action) -> Result<(), String> {
        let commands = self.commands(a);
        let Some((last, before)) = commands.split_last() else {
            return Err(format!("no unit runs {}", a.unit));
        };
        for c in before {
            let _ = run_bounded(Command::new(&c[0]).args(&c[1..]), PROGRAM_TIMEOUT);
        }
        let (ok, text) = run_bounded(Command::new(&last[0]).args(&last[1..]), PROGRAM_TIMEOUT)?;
        if ok || a.op == Op::Stop {
            Ok(())
        } else {
            Err(format!(
                "{a} failed{}",
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                }
            ))
        }
    }

    fn logs(&mut self, unit: &Unit) -> Vec<String> {
        let Some(name) = self
            .unit_name(unit)
            .or_else(|| Some("nut-driver.target".into()))
        else {
            return Vec::new();
        };
        let mut cmd = Command::new("journalctl");
        cmd.args([
            "-u",
            &name,
            "-n",
            &LOG_LINES.to_string(),
            "--no-pager",
            "-o",
            "cat",
            "--since",
            "-5min",
        ]);
        match run_bounded(&mut cmd, Duration::from_secs(10)) {
            Ok((_, text)) => last_lines(&text),
            Err(e) => vec![e],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_does_not_run_and_its_pid_file_goes_before_upsmon_starts() {
        // A child that has exited and is not reaped yet: a zombie, which answers signal 0.
        let mut child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(Instant::now() < deadline, "the child exits");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            nix::sys::signal::kill(pid, None).is_ok(),
            "a zombie answers signal 0"
        );
        let dir = std::env::temp_dir().join(format!("ps-zombie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("upsmon.pid");
        std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
        assert!(!runs(&pid_file));
        let mut direct = Direct::new(&dir, &dir, &dir, None);
        direct.upsmon_pid = pid_file.clone();
        // No upsmon in that directory: the start fails, but the stale PID file went first.
        assert!(direct
            .run(&Action {
                op: Op::Start,
                unit: Unit::Upsmon
            })
            .is_err());
        assert!(!pid_file.exists());
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(alive(nix::unistd::getpid()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn escapes_instance_names_as_systemd_does() {
        assert_eq!(escape("myups"), "myups");
        assert_eq!(escape("rack-ups"), "rack\\x2dups");
        assert_eq!(escape("a.b_c:1"), "a.b_c:1");
        assert_eq!(escape(".x"), "\\x2ex");
        assert_eq!(escape("a/b"), "a-b");
    }

    #[test]
    fn systemd_runs_nuts_units_and_keeps_mode_across_boots() {
        let act = |op, unit| Action { op, unit };
        let d = |n: &str| Unit::Driver(n.into());
        let with = Systemd {
            driver_units: true,
            upsdrvctl: PathBuf::from("/sbin/upsdrvctl"),
        };
        let without = Systemd {
            driver_units: false,
            upsdrvctl: PathBuf::from("/sbin/upsdrvctl"),
        };
        let cases: &[(&Systemd, Action, &[&str])] = &[
            (
                &with,
                act(Op::Start, d("rack-ups")),
                &["systemctl start nut-driver@rack\\x2dups.service"],
            ),
            (
                &with,
                act(Op::Restart, d("qx")),
                &["systemctl restart nut-driver@qx.service"],
            ),
            (
                &with,
                act(Op::Stop, d("qx")),
                &["systemctl stop nut-driver@qx.service"],
            ),
            (
                &without,
                act(Op::Restart, d("qx")),
                &["/sbin/upsdrvctl stop qx", "/sbin/upsdrvctl start qx"],
            ),
            (
                &without,
                act(Op::Start, d("qx")),
                &["/sbin/upsdrvctl start qx"],
            ),
            (
                &with,
                act(Op::Reload, Unit::Upsd),
                &["systemctl reload-or-restart nut-server.service"],
            ),
            (
                &with,
                act(Op::Restart, Unit::Upsd),
                &["systemctl restart nut-server.service"],
            ),
            (
                &with,
                act(Op::Start, Unit::Upsd),
                &["systemctl enable --now nut-server.service"],
            ),
            (
                &with,
                act(Op::Stop, Unit::Upsmon),
                &["systemctl disable --now nut-monitor.service"],
            ),
            (
                &with,
                act(Op::Reload, Unit::Upsmon),
                &["systemctl reload-or-restart nut-monitor.service"],
            ),
        ];
        for (s, a, want) in cases {
            let got: Vec<String> = s.commands(a).iter().map(|c| c.join(" ")).collect();
            assert_eq!(got, *want, "{a}");
        }
    }

    #[test]
    fn a_program_is_bounded_and_its_output_kept() {
        let (ok, out) = run_bounded(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(!ok);
        assert_eq!(out, "out\nerr");
        // A program that leaves a child holding the pipe does not hang the read.
        let started = Instant::now();
        let (ok, out) = run_bounded(
            Command::new("sh").args(["-c", "(sleep 3 &) ; echo started"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(ok && out == "started", "{out}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let e =
            run_bounded(Command::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }
}
