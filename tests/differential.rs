//! Differential tests against NUT itself: every fixture made for the installed NUT is run
//! through NUT's own programs (each section's driver, upsd, upsmon logging in to that upsd),
//! and what NUT rejects must be an error of ours at that place, and what NUT accepts must not be.
//!
//! Needs NUT's Debian packages (nut-server, nut-client) and root, as the README's test command
//! sets up.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use power_snitch::nut::diag::{Code, Finding, Severity};
use power_snitch::nut::drivers::DriverDb;
use power_snitch::nut::version::NutVersion;
use power_snitch::nut::{host, validate, Context};

const LIBEXEC: &str = "/lib/nut";

static UPSMON: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What NUT made of one fixture.
#[derive(Debug, Default)]
struct Verdict {
    /// (file, line or 0 for the whole file, what NUT said)
    rejected: Vec<(&'static str, u32, String)>,
    /// Files NUT read and ran with.
    exercised: Vec<&'static str>,
    /// (file, line, what NUT said): lines NUT ignores with a complaint in its log.
    ignored: Vec<(&'static str, u32, String)>,
}

/// A NUT program running in a process group of its own (upsmon forks), its output collected
/// as it comes, so the test can wait for what it says instead of guessing how long it takes.
struct Watched {
    child: Child,
    out: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Watched {
    fn start(mut cmd: Command) -> Watched {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("NUT program starts");
        let out = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut pipe in pipes {
            let out = Arc::clone(&out);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        Watched {
            child,
            out,
            readers,
        }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits until the program exits (its code) or `done` holds for its output, at most `limit`.
    fn until(&mut self, limit: Duration, done: impl Fn(&str) -> bool) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s.code().unwrap_or(-1));
            }
            if done(&self.text()) || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the program and everything it forked; returns all it said.
    fn finish(mut self) -> String {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.text()
    }
}

fn nut_env(cmd: &mut Command, dir: &Path) {
    for v in ["NUT_CONFPATH", "NUT_STATEPATH", "NUT_ALTPIDPATH"] {
        cmd.env(v, dir);
    }
}

/// The 1-based number of the first line of `file` in `dir` whose text contains `needle`.
fn line_of(dir: &Path, file: &str, needle: &str) -> u32 {
    let text = fs::read(dir.join(file)).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .position(|l| l.contains(needle))
        .map_or(0, |i| i as u32 + 1)
}

/// Copies a fixture where NUT's programs can use it, with the meta's modes and owners.
fn stage(fixture: &Path, meta: &common::Meta) -> PathBuf {
    let name = fixture.file_name().unwrap().to_string_lossy().to_string();
    let dir = std::env::temp_dir().join(format!("psd-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let nut = host::account("nut").expect("user nut exists (Debian's nut-server creates it)");
    let nut_gid = nut.gids[0];
    for e in fs::read_dir(fixture).unwrap() {
        let e = e.unwrap();
        let f = e.file_name().to_string_lossy().to_string();
        if f == "expected" || f == "meta" {
            continue;
        }
        fs::copy(e.path(), dir.join(&f)).unwrap();
        let mode = meta.mode(&f);
        let (uid, gid) = match meta.owners.iter().find(|o| o.0 == f) {
            Some(o) => (o.1, o.2),
            None => (0, nut_gid),
        };
        nix::unistd::chown(&dir.join(&f), Some(uid.into()), Some(gid.into())).unwrap();
        fs::set_permissions(dir.join(&f), fs::Permissions::from_mode(mode)).unwrap();
    }
    nix::unistd::chown(&dir, Some(0.into()), Some(nut_gid.into())).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
    dir
}

fn ask_nut(dir: &Path, sections: &[(String, Option<String>)]) -> Verdict {
    let mut v = Verdict::default();
    if dir.join("ups.conf").exists() {
        v.exercised.push("ups.conf");
    }
    // Each section's driver, parsing its configuration and dumping once.
    for (name, driver) in sections {
        let Some(driver) = driver else { continue };
        let program = Path::new(LIBEXEC).join(driver);
        let header = line_of(dir, "ups.conf", &format!("[{name}]"));
        if !program.exists() {
            let line = line_of(dir, "ups.conf", &format!("= {driver}"));
            v.rejected
                .push(("ups.conf", line, format!("no driver {driver}")));
            continue;
        }
        let mut cmd = Command::new(&program);
        cmd.args(["-a", name, "-d", "1", "-u", "root"]);
        nut_env(&mut cmd, dir);
        // Configuration errors come at once; a driver still running after two seconds got past them.
        let mut driver_run = Watched::start(cmd);
        driver_run.until(Duration::from_secs(2), |o| o.contains("Fatal error"));
        let out = driver_run.finish();
        if let Some(rest) = out.split("Fatal error: '").nth(1) {
            let var = rest
                .split("' is not a valid variable name")
                .next()
                .unwrap_or_default();
            let line = line_of(dir, "ups.conf", var);
            v.rejected.push((
                "ups.conf",
                line,
                format!("{driver}: `{var}` is not a valid variable"),
            ));
        }
        if out.contains("must specify a port name") {
            v.rejected
                .push(("ups.conf", header, format!("{driver}: no port")));
        }
    }
    // upsdrvctl's dry run: it stops on a section without a driver, or no section at all.
    if dir.join("ups.conf").exists() {
        let mut cmd = Command::new("/sbin/upsdrvctl");
        cmd.args(["-t", "start"]);
        nut_env(&mut cmd, dir);
        let mut dry = Watched::start(cmd);
        let status = dry.until(Duration::from_secs(10), |_| false);
        let out = dry.finish();
        if status != Some(0) {
            let last = out
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            v.rejected
                .push(("ups.conf", 0, format!("upsdrvctl -t start fails: {last}")));
        }
    }
    // upsd, as user nut, as packaged.
    let mut cmd = Command::new(Path::new(LIBEXEC).join("upsd"));
    cmd.args(["-F", "-u", "nut"]);
    nut_env(&mut cmd, dir);
    let mut upsd = Watched::start(cmd);
    // upsd says this once it has read its files and is listening.
    let exited = upsd.until(Duration::from_secs(10), |o| {
        o.contains("Running as foreground process")
    });
    if exited.is_some() {
        let out = upsd.finish();
        let file = ["ups.conf", "upsd.users"]
            .into_iter()
            .find(|f| out.contains(f))
            .unwrap_or("upsd.conf");
        v.rejected
            .push((file, 0, format!("upsd exits: {}", out.trim())));
        return v;
    }
    v.exercised.extend(["upsd.conf", "upsd.users"]);
    // upsmon logs in to that upsd with each MONITOR line.
    if dir.join("upsmon.conf").exists() {
        // upsmon keeps one PID file for the whole machine: one at a time.
        let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = Command::new(Path::new(LIBEXEC).join("upsmon"));
        cmd.args(["-F", "-D", "-u", "root"]);
        nut_env(&mut cmd, dir);
        let mut upsmon = Watched::start(cmd);
        // upsmon announces each MONITOR line ("UPS: ..."), then tries each once: wait for as
        // many outcomes, and a little more for a PRIMARY refusal that follows a login.
        let outcome = |o: &str| {
            o.lines()
                .filter(|l| {
                    l.contains("Logged into UPS")
                        || l.contains("failed - got [ERR")
                        || l.contains("connect failed")
                        || l.contains("Connection refused")
                })
                .count()
        };
        let announced = |o: &str| o.lines().filter(|l| l.contains("\tUPS: ")).count();
        let status = upsmon.until(Duration::from_secs(10), |o| {
            announced(o) > 0 && outcome(o) >= announced(o)
        });
        if status.is_none() {
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = upsmon.finish();
        let _ = fs::remove_file("/run/nut/upsmon.pid");
        for l in out.lines().filter(|l| l.contains(": invalid directive ")) {
            let text = l.split(": invalid directive ").nth(1).unwrap_or_default();
            let line = line_of(
                dir,
                "upsmon.conf",
                text.split_whitespace().next().unwrap_or(text),
            );
            v.ignored.push(("upsmon.conf", line, l.trim().to_string()));
        }
        if status.is_some() && out.contains("Fatal error") {
            v.rejected
                .push(("upsmon.conf", 0, format!("upsmon exits: {}", out.trim())));
        }
        for l in out.lines() {
            let failed = l.contains("failed - got [ERR")
                || l.contains("privileges unavailable")
                || l.contains("connect failed")
                || l.contains("Connection refused");
            if failed {
                if let Some(sys) = l.split('[').nth(1).and_then(|s| s.split(']').next()) {
                    let ups = sys.split('@').next().unwrap_or(sys);
                    let host = sys.split('@').nth(1).unwrap_or("");
                    if host.contains("example") {
                        continue; // a remote host that cannot exist here
                    }
                    let line = line_of(dir, "upsmon.conf", &format!("{ups}@"));
                    v.rejected.push(("upsmon.conf", line, l.trim().to_string()));
                }
            }
        }
        v.exercised.push("upsmon.conf");
    }
    let out = upsd.finish();
    for l in out
        .lines()
        .filter(|l| l.starts_with("upsd.conf: invalid directive "))
    {
        let text = l.trim_start_matches("upsd.conf: invalid directive ");
        let line = line_of(
            dir,
            "upsd.conf",
            text.split_whitespace().next().unwrap_or(text),
        );
        v.ignored.push(("upsd.conf", line, l.trim().to_string()));
    }
    if out.contains("upsd.users: Permission denied") {
        v.rejected
            .push(("upsd.users", 0, "upsd cannot open upsd.users".into()));
    }
    v
}

/// Errors of ours that NUT's start-up cannot show: a USB match that can never find the
/// device only shows when a device is attached.
fn unobservable(f: &Finding) -> bool {
    f.code == Code::BadValue
        && ["vendorid", "productid", "bus", "device", "busport"]
            .iter()
            .any(|k| f.message.starts_with(&format!("`{k}`")))
}

#[test]
fn nut_agrees_with_every_fixture() {
    let (installed, _) =
        host::detect_version().expect("NUT is installed (apt install nut-server nut-client)");
    let nut = host::installed_drivers();
    let fixtures: Vec<PathBuf> = common::fixtures()
        .into_iter()
        .filter(|d| common::meta(d).version == installed)
        .collect();
    assert!(
        fixtures.len() >= 40,
        "only {} fixtures are for the installed NUT {installed}",
        fixtures.len()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let problems = std::sync::Mutex::new(Vec::new());
    // Fixtures listen on ports of their own, so several run at once; upsmon runs one at a time.
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(fixture) = fixtures.get(i) else {
                    break;
                };
                let found = compare(fixture, installed, nut.as_deref());
                problems.lock().unwrap().extend(found);
            });
        }
    });
    let problems = problems.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "{} disagreement(s) with NUT:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Runs one fixture through NUT and through the validator; returns the disagreements.
fn compare(fixture: &Path, installed: NutVersion, nut: Option<&[String]>) -> Vec<String> {
    let mut problems = Vec::new();
    let meta = common::meta(fixture);
    let dir = stage(fixture, &meta);
    let cx = Context {
        version: installed,
        drivers: DriverDb::builtin(),
        host_drivers: nut,
    };
    let mut snap = host::snapshot(&dir);
    snap.daemon = host::account("nut");
    let (parsed, findings) = validate(&snap, &cx);
    let sections: Vec<(String, Option<String>)> = parsed
        .ups
        .iter()
        .flat_map(|u| u.sections.iter())
        .map(|s| (s.name.clone(), s.value("driver").map(String::from)))
        .collect();
    let verdict = ask_nut(&dir, &sections);
    let name = fixture.file_name().unwrap().to_string_lossy();
    let errors = |file: &str| -> Vec<&Finding> {
        findings
            .iter()
            .filter(|f| f.severity == Severity::Error && f.file == file)
            .collect()
    };
    // upsd that cannot read its users refuses every login: that explains a failed MONITOR.
    let unreadable_users = errors("upsd.users")
        .iter()
        .any(|f| f.code == Code::DaemonCannotRead);
    for (file, line, said) in &verdict.rejected {
        let ours = errors(file);
        let explained =
            *file == "upsmon.conf" && said.contains("ACCESS-DENIED") && unreadable_users;
        // A rejection NUT places on a line needs our error on that line; one about the whole
        // file (upsd's exit) needs an error anywhere in the file.
        let hit = explained || ours.iter().any(|f| *line == 0 || f.line == *line);
        if !hit {
            problems.push(format!(
                "{name}: NUT rejects {file}:{line} ({said}) but we report no error there"
            ));
        }
    }
    // What NUT ignores with a complaint, we at least warn about at that line.
    for (file, line, said) in &verdict.ignored {
        let warned = findings
            .iter()
            .any(|f| f.file == *file && f.line == *line && f.severity >= Severity::Warning);
        if !warned {
            problems.push(format!(
                "{name}: NUT ignores {file}:{line} ({said}) but we do not warn there"
            ));
        }
    }
    for file in &verdict.exercised {
        if verdict.rejected.iter().any(|r| r.0 == *file) {
            continue;
        }
        for f in errors(file).into_iter().filter(|f| !unobservable(f)) {
            problems.push(format!(
                "{name}: NUT accepts {file}, but we report {}:{}: {}: {}",
                f.file, f.line, f.code, f.message
            ));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    problems
}
