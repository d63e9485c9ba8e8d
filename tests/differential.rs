//! Differential tests against NUT itself, in each release people run: every fixture is run
//! through the programs of NUT 2.8.0 (Debian 12), 2.8.1 (Debian 13) and 2.8.5 (sid) — each
//! section's driver, upsdrvctl, upsd as user nut, upsmon logging in to that upsd — inside a
//! Debian root per release, and validated with `--nut-version` of that release. What NUT
//! rejects must be an error of ours at that place, what NUT ignores with a complaint at least a
//! warning, and what NUT accepts must have no error.
//!
//! A fixture is checked against every release unless a `releases` file next to it says
//! otherwise: `only 2.8.0 2.8.1` limits it; `changes-at 2.8.1` says NUT's verdict changes at
//! that release, and the suite checks that it does (both sides must be among its releases).
//!
//! Needs root (chroot) and the roots `nut-releases/build-roots` makes.

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

use common::nut::Release;

/// upsmon keeps one PID file per system: one at a time in each root.
static UPSMON: [Mutex<()>; 4] = [
    Mutex::new(()),
    Mutex::new(()),
    Mutex::new(()),
    Mutex::new(()),
];

/// What NUT made of one fixture.
#[derive(Debug, Default, Clone)]
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

/// Copies a fixture into the release's root where its programs can use it, with the meta's
/// modes and owners (the root's `nut` group by default): (path here, path inside the root).
fn stage(fixture: &Path, meta: &common::Meta, release: &Release) -> (PathBuf, PathBuf) {
    let name = fixture.file_name().unwrap().to_string_lossy().to_string();
    let (dir, inside) = release.temp_dir(&format!("psd-{name}"));
    let nut = release
        .account("nut")
        .expect("user nut exists in the root (Debian's nut-server creates it)");
    let nut_gid = nut.gids[0];
    for e in fs::read_dir(fixture).unwrap() {
        let e = e.unwrap();
        let f = e.file_name().to_string_lossy().to_string();
        if matches!(f.as_str(), "expected" | "meta" | "releases") {
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
    (dir, inside)
}

/// Runs the staged fixture (`dir` here, `inside` the root) through the release's programs.
fn ask_nut(
    release: &Release,
    slot: usize,
    dir: &Path,
    inside: &Path,
    sections: &[(String, Option<String>)],
) -> Verdict {
    let mut v = Verdict::default();
    if dir.join("ups.conf").exists() {
        v.exercised.push("ups.conf");
    }
    // Each section's driver, parsing its configuration and dumping once.
    for (name, driver) in sections {
        let Some(driver) = driver else { continue };
        let header = line_of(dir, "ups.conf", &format!("[{name}]"));
        // A name with a slash is no driver of this release, wherever it points.
        let program = release.program(driver).filter(|_| !driver.contains('/'));
        let Some(program) = program else {
            let line = line_of(dir, "ups.conf", &format!("= {driver}"));
            v.rejected
                .push(("ups.conf", line, format!("no driver {driver}")));
            continue;
        };
        let mut cmd = release.command(&program);
        cmd.args(["-a", name, "-d", "1", "-u", "root"]);
        nut_env(&mut cmd, inside);
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
        if out.contains("invalid regular expression") {
            v.rejected.push((
                "ups.conf",
                0,
                format!("{driver}: a USB matcher is an invalid regular expression"),
            ));
        }
        if out.contains("must specify a port name") {
            v.rejected
                .push(("ups.conf", header, format!("{driver}: no port")));
        }
    }
    // upsdrvctl's dry run: it stops on a section without a driver, or no section at all.
    if dir.join("ups.conf").exists() {
        let mut cmd = release.command(&release.program("upsdrvctl").expect("upsdrvctl"));
        cmd.args(["-t", "start"]);
        nut_env(&mut cmd, inside);
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
    // Debian's upsd wrapper (up to 2.8.1) reads nut.conf with the shell and starts upsd only
    // for MODE standalone or netserver; run as it is, on this nut.conf, without starting upsd.
    let wrapper = fs::read_to_string(release.root.join("usr/sbin/upsd")).unwrap_or_default();
    if wrapper.starts_with("#!/bin/sh") {
        let script = wrapper
            .replace(
                "/etc/nut/nut.conf",
                &inside.join("nut.conf").to_string_lossy(),
            )
            .replace("exec /lib/nut/upsd \"$@\"", "exit 0");
        // A nut.conf is a shell script run as root: no PATH to find programs with.
        let mut cmd = release.command(Path::new("/usr/bin/env"));
        cmd.args(["-i", "PATH=/nonexistent", "/bin/sh", "-c", &script]);
        let mut sh = Watched::start(cmd);
        let status = sh.until(Duration::from_secs(5), |_| false);
        let out = sh.finish();
        if status != Some(0) {
            v.rejected.push((
                "nut.conf",
                0,
                format!("Debian's upsd wrapper exits {status:?}: {}", out.trim()),
            ));
        }
        v.exercised.push("nut.conf");
    }
    // upsd, as user nut, as packaged. The same fixture's upsd of the release before may have
    // left its port briefly unbindable: when upsd binds nothing at all, try again.
    let (upsd, exited) = {
        let mut attempt = 0;
        loop {
            let mut cmd = release.command(&release.program("upsd").expect("upsd"));
            cmd.args(["-F", "-u", "nut"]);
            nut_env(&mut cmd, inside);
            let mut upsd = Watched::start(cmd);
            // upsd says this once it has read its files and is listening.
            let exited = upsd.until(Duration::from_secs(10), |o| {
                o.contains("Running as foreground process")
            });
            attempt += 1;
            if exited.is_none() || attempt == 3 || !upsd.text().contains("no listening interface") {
                break (upsd, exited);
            }
            upsd.finish();
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    if exited.is_some() {
        let out = upsd.finish();
        // The file upsd names last is the one it stopped on ("Found 1 UPS defined in
        // ups.conf" comes before a missing upsd.users in 2.8.1 and later).
        let file = out
            .lines()
            .rev()
            .find_map(|l| {
                ["upsd.users", "upsd.conf", "ups.conf"]
                    .into_iter()
                    .find(|f| l.contains(f) && !l.starts_with("Found "))
            })
            .unwrap_or("upsd.conf");
        v.rejected
            .push((file, 0, format!("upsd exits: {}", out.trim())));
        return v;
    }
    v.exercised.extend(["upsd.conf", "upsd.users"]);
    // upsmon logs in to that upsd with each MONITOR line.
    if dir.join("upsmon.conf").exists() {
        let _one = UPSMON[slot].lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = release.command(&release.program("upsmon").expect("upsmon"));
        cmd.args(["-F", "-D", "-u", "root"]);
        nut_env(&mut cmd, inside);
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
        let _ = fs::remove_file(release.root.join("run/nut/upsmon.pid"));
        for l in out.lines().filter(|l| l.contains(": invalid directive ")) {
            let text = l.split(": invalid directive ").nth(1).unwrap_or_default();
            let line = line_of(
                dir,
                "upsmon.conf",
                text.split_whitespace().next().unwrap_or(text),
            );
            v.ignored.push(("upsmon.conf", line, l.trim().to_string()));
        }
        // A notify type this upsmon does not know: it ignores the line.
        for l in out.lines() {
            let (keyword, ty) = if let Some(rest) = l.split("invalid notify type [").nth(1) {
                ("NOTIFYFLAG", rest.split(']').next().unwrap_or_default())
            } else if let Some(rest) = l.split("' is not a valid notify event name").next() {
                if rest.len() == l.len() {
                    continue;
                }
                ("NOTIFYMSG", rest.rsplit('\'').next().unwrap_or_default())
            } else {
                continue;
            };
            let line = line_of(dir, "upsmon.conf", &format!("{keyword} {ty} "));
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
    // A LISTEN line upsd could not bind: it runs without that socket.
    for l in out.lines().filter(|l| l.starts_with("not listening on ")) {
        let addr = l
            .trim_start_matches("not listening on ")
            .split(" port ")
            .next()
            .unwrap_or_default();
        let line = line_of(dir, "upsd.conf", &format!("LISTEN {addr} "));
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

/// The releases a fixture is meant for, from the `releases` file next to it.
struct Plan {
    /// Indexes into the releases.
    runs: Vec<usize>,
    /// NUT's verdict changes at each of these releases.
    changes_at: Vec<NutVersion>,
}

fn plan(fixture: &Path, releases: &[Release]) -> Plan {
    let mut plan = Plan {
        runs: (0..releases.len()).collect(),
        changes_at: Vec::new(),
    };
    let Ok(text) = fs::read_to_string(fixture.join("releases")) else {
        return plan;
    };
    let at = |v: &str| -> NutVersion {
        let v: NutVersion = v
            .parse()
            .unwrap_or_else(|e| panic!("{}/releases: {e}", fixture.display()));
        v
    };
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [] => {}
            ["only", list @ ..] if !list.is_empty() => {
                plan.runs = list
                    .iter()
                    .map(|v| {
                        let v = at(v);
                        releases
                            .iter()
                            .position(|r| r.version == v)
                            .unwrap_or_else(|| {
                                panic!("{}/releases: no root holds NUT {v}", fixture.display())
                            })
                    })
                    .collect();
            }
            ["changes-at", v] => plan.changes_at.push(at(v)),
            _ => panic!(
                "{}/releases: `{line}` is neither `only VERSION...` nor `changes-at VERSION`",
                fixture.display()
            ),
        }
    }
    for &v in &plan.changes_at {
        let before = plan.runs.iter().any(|&i| releases[i].version < v);
        let after = plan.runs.iter().any(|&i| releases[i].version >= v);
        assert!(
            before && after,
            "{}/releases: changes-at {v} needs a release on each side",
            fixture.display()
        );
    }
    plan
}

/// One fixture run through one release.
struct Outcome {
    release: usize,
    fixture: String,
    verdict: Verdict,
    problems: Vec<String>,
}

#[test]
fn nut_agrees_with_every_fixture_in_every_release() {
    let releases = common::nut::releases();
    let fixtures = common::fixtures();
    assert!(
        fixtures.len() >= 40,
        "the corpus has {} fixtures",
        fixtures.len()
    );
    let plans: Vec<Plan> = fixtures.iter().map(|f| plan(f, &releases)).collect();
    let drivers: Vec<Option<Vec<String>>> = releases
        .iter()
        .map(|r| host::installed_drivers_under(&r.root))
        .collect();
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    let spent = Mutex::new(vec![Duration::ZERO; releases.len()]);
    // Fixtures listen on ports of their own, so several run at once; one fixture goes through
    // its releases one after the other (the same ports), upsmon one at a time per root.
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(fixture) = fixtures.get(i) else {
                    break;
                };
                for &r in &plans[i].runs {
                    let t = Instant::now();
                    let (verdict, problems) =
                        compare(fixture, &releases[r], r, drivers[r].as_deref());
                    spent.lock().unwrap()[r] += t.elapsed();
                    outcomes.lock().unwrap().push(Outcome {
                        release: r,
                        fixture: fixture.file_name().unwrap().to_string_lossy().into(),
                        verdict,
                        problems,
                    });
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| (a.release, &a.fixture).cmp(&(b.release, &b.fixture)));
    let spent = spent.into_inner().unwrap();
    // A fixture that says its verdict changes at a release must show NUT changing there.
    let mut changes = Vec::new();
    for (fixture, plan) in fixtures.iter().zip(&plans) {
        for &at in &plan.changes_at {
            let name = fixture.file_name().unwrap().to_string_lossy();
            let said = |before: bool| -> Vec<(String, Vec<String>)> {
                outcomes
                    .iter()
                    .filter(|o| o.fixture == name && (releases[o.release].version < at) == before)
                    .map(|o| (releases[o.release].version.to_string(), o.verdict.said()))
                    .collect()
            };
            for (old, old_said) in said(true) {
                for (new, new_said) in said(false) {
                    if old_said == new_said {
                        changes.push(format!(
                            "{name}: says NUT's verdict changes at {at}, but NUT {old} and {new} \
                         both say: {old_said:?}"
                        ));
                    }
                }
            }
        }
    }
    let mut report = String::new();
    let mut failed = !changes.is_empty();
    for (r, release) in releases.iter().enumerate() {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.release == r).collect();
        let agreed = mine.iter().filter(|o| o.problems.is_empty()).count();
        report.push_str(&format!(
            "NUT {} ({} {}): {} cases run, {agreed} agreed, {} disagree ({:.1} s of fixture time)\n",
            release.version,
            release.suite,
            release.package,
            mine.len(),
            mine.len() - agreed,
            spent[r].as_secs_f64()
        ));
        for o in mine.iter().filter(|o| !o.problems.is_empty()) {
            failed = true;
            for p in &o.problems {
                report.push_str(&format!("  {p}\n"));
            }
        }
    }
    for c in &changes {
        report.push_str(&format!("  {c}\n"));
    }
    report.push_str(&format!(
        "{} fixtures, {:.1} s in all\n",
        fixtures.len(),
        started.elapsed().as_secs_f64()
    ));
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-report.txt");
    let _ = fs::write(&file, &report);
    println!("{report}(also in {})", file.display());
    assert!(!failed, "disagreements with NUT:\n{report}");
}

impl Verdict {
    /// What NUT said, by place, for comparing one release's verdict with another's.
    fn said(&self) -> Vec<String> {
        let mut said: Vec<String> = self
            .rejected
            .iter()
            .map(|(f, l, _)| format!("rejects {f}:{l}"))
            .chain(
                self.ignored
                    .iter()
                    .map(|(f, l, _)| format!("ignores {f}:{l}")),
            )
            .collect();
        said.sort();
        said.dedup();
        said
    }
}

/// Runs one fixture through one release of NUT and through the validator told that release;
/// returns NUT's verdict and the disagreements.
fn compare(
    fixture: &Path,
    release: &Release,
    slot: usize,
    nut: Option<&[String]>,
) -> (Verdict, Vec<String>) {
    let mut problems = Vec::new();
    let meta = common::meta(fixture);
    let (dir, inside) = stage(fixture, &meta, release);
    let cx = Context {
        version: release.version,
        drivers: DriverDb::builtin(),
        host_drivers: nut,
    };
    let mut snap = host::snapshot(&dir);
    snap.daemon = release.account("nut");
    let (parsed, findings) = validate(&snap, &cx);
    let sections: Vec<(String, Option<String>)> = parsed
        .ups
        .iter()
        .flat_map(|u| u.sections.iter())
        .map(|s| (s.name.clone(), s.value("driver").map(String::from)))
        .collect();
    let verdict = ask_nut(release, slot, &dir, &inside, &sections);
    let name = format!(
        "{} (NUT {})",
        fixture.file_name().unwrap().to_string_lossy(),
        release.version
    );
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
    (verdict, problems)
}

/// Version detection on each release's own installation: `upsd -V` where that release puts
/// upsd, and its driver directory.
#[test]
fn each_release_is_detected_from_its_programs() {
    for release in common::nut::releases() {
        let (found, from) = host::detect_version_under(&release.root, |p| release.banner(p))
            .unwrap_or_else(|| panic!("no NUT version found in {}", release.root.display()));
        assert_eq!(found, release.version, "{} said so", from.display());
        let dir = host::driver_dir_under(&release.root).expect("a driver directory");
        let drivers = host::installed_drivers_under(&release.root).unwrap();
        for d in ["dummy-ups", "usbhid-ups", "nutdrv_qx", "blazer_usb"] {
            assert!(
                drivers.iter().any(|n| n == d),
                "NUT {}: {d} not among {drivers:?} in {}",
                release.version,
                dir.display()
            );
        }
        let (dir, upsd) = (
            dir.strip_prefix(&release.root)
                .unwrap()
                .display()
                .to_string(),
            from.display().to_string(),
        );
        let want = match release.suite.as_str() {
            // merged /usr: /lib/nut is /usr/lib/nut; the first of the list is found
            "bookworm" | "trixie" => ("lib/nut", "/lib/nut/upsd"),
            // upsd itself in /usr/sbin, found as /sbin/upsd (merged /usr)
            _ => ("usr/libexec/nut", "/sbin/upsd"),
        };
        assert_eq!(
            (dir.as_str(), upsd.as_str()),
            want,
            "NUT {}",
            release.version
        );
    }
}

/// What `DRIVER -L` lists: (kind as printed, variable).
fn listed_variables(release: &Release, driver: &Path) -> Vec<(String, String)> {
    let out = release
        .command(Path::new("timeout"))
        .arg("5")
        .arg(driver)
        .arg("-L")
        .stdin(Stdio::null())
        .output()
        .expect("chroot runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next()?;
            let name = w.next()?;
            matches!(kind, "VALUE" | "FLAG" | "UNKNOWN")
                .then(|| (kind.to_string(), name.to_string()))
        })
        .collect()
}

/// drivers.txt against each release's own drivers: every driver the release ships is in the
/// table from that release on, every variable its `-L` lists is accepted there, as a value or
/// a flag as it says; and every driver the table dates to a release is in it (or in one of the
/// packages of their own the roots do not install).
#[test]
fn the_driver_table_agrees_with_each_release() {
    let db = DriverDb::builtin();
    let mut problems = Vec::new();
    for release in common::nut::releases() {
        let v = release.version;
        let shipped = host::installed_drivers_under(&release.root).expect("a driver directory");
        for name in &shipped {
            let Some(spec) = db.driver(name) else {
                problems.push(format!("NUT {v} ships {name}, which drivers.txt lacks"));
                continue;
            };
            if spec.since.is_some_and(|s| s > v) {
                problems.push(format!(
                    "NUT {v} ships {name}, which drivers.txt dates {}",
                    spec.since.unwrap()
                ));
            }
            let program = release.program(name).expect("the driver is there");
            for (kind, var) in listed_variables(&release, &program) {
                if READ_OTHERWISE.contains(&(name.as_str(), var.as_str())) {
                    continue;
                }
                let want = match kind.as_str() {
                    "FLAG" => power_snitch::nut::drivers::VarKind::Flag,
                    _ => power_snitch::nut::drivers::VarKind::Value,
                };
                // A variable a driver declares both ways (belkinunv's `wait`) is listed twice.
                let both = spec
                    .vars
                    .iter()
                    .any(|s| s.name.eq_ignore_ascii_case(&var) && s.kind == want);
                match db.section_var(name, &var, v) {
                    Some(power_snitch::nut::drivers::Lookup::Accepted(k)) => {
                        if k != want && !both {
                            problems.push(format!(
                                "NUT {v}: {name} -L says {kind} {var}; drivers.txt: {k:?}"
                            ));
                        }
                    }
                    other => problems.push(format!(
                        "NUT {v}: {name} -L lists {kind} {var}; drivers.txt: {other:?}"
                    )),
                }
            }
        }
        for name in db.driver_names(v) {
            if !shipped.iter().any(|s| s == name)
                && !OWN_PACKAGE.contains(&name)
                && !NOT_IN_DEBIAN.contains(&name)
            {
                problems.push(format!(
                    "drivers.txt has {name} in NUT {v}, which does not ship it"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreement(s) between drivers.txt and the releases:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Drivers Debian ships in packages of their own (nut-snmp, nut-xml, nut-ipmi, nut-modbus,
/// nut-powerman-pdu), and those of other systems.
const OWN_PACKAGE: &[&str] = &[
    "snmp-ups",
    "netxml-ups",
    "nut-ipmipsu",
    "powerman-pdu",
    "adelsystem_cbi",
    "generic_modbus",
    "huawei-ups2000",
    "phoenixcontact_modbus",
    "socomec_jbus",
    "apc_modbus",
];

/// NUT drivers Debian's amd64 nut-server does not ship in any of the three releases (they need
/// libgpiod, an I2C power monitor's sysfs, UPower, or are not built): dated from NUT's sources.
const NOT_IN_DEBIAN: &[&str] = &[
    "generic_gpio_libgpiod",
    "hwmon_ina219",
    "must_ep2000pro",
    "nut-upower",
];

/// Variables whose `-L` kind is not how the driver reads them: blazer's `protocol` is listed as
/// FLAG up to 2.8.1 but read with getval (2.8.5 lists it as VALUE).
const READ_OTHERWISE: &[(&str, &str)] = &[("blazer_ser", "protocol"), ("blazer_usb", "protocol")];

/// devices.txt against each release's udev rules (62-nut-usbups.rules, which NUT generates
/// from its drivers' USB ID tables): every ID a release's rules list is in the table from that
/// release on, with the rules' driver among the table's; every UPS ID the table dates to a
/// release is in that release's rules.
#[test]
fn the_device_table_agrees_with_each_release() {
    use power_snitch::probe::table::{parse_table, parse_udev_rules, BUILTIN};
    let table = parse_table(BUILTIN).expect("devices.txt parses");
    let mut problems = Vec::new();
    for release in common::nut::releases() {
        let v = release.version;
        let path = release.root.join("lib/udev/rules.d/62-nut-usbups.rules");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rules = parse_udev_rules(&text);
        assert!(rules.len() > 100, "{}: {} IDs", path.display(), rules.len());
        let since = |k: &power_snitch::probe::table::Known| -> NutVersion {
            k.since
                .as_deref()
                .map_or(NutVersion::new(2, 8, 0), |s| s.parse().expect("since"))
        };
        for r in &rules {
            let id = format!("{:04x}:{:04x}", r.vid, r.pid);
            match table.iter().find(|k| k.vid == r.vid && k.pid == r.pid) {
                None => problems.push(format!(
                    "NUT {v}'s udev rules list {id}, devices.txt lacks it"
                )),
                Some(k) => {
                    if since(k) > v {
                        problems.push(format!(
                            "NUT {v}'s udev rules list {id}, devices.txt dates it {}",
                            since(k)
                        ));
                    }
                    // A USB-serial adapter stays one in the table: the UPS behind it speaks
                    // for itself (2.8.5's rules give CH340 1a86:7523 to nutdrv_qx).
                    for d in r.drivers.iter().filter(|_| !k.adapter) {
                        if !k.drivers.contains(d) {
                            problems.push(format!(
                                "NUT {v}'s udev rules give {id} to {d}; devices.txt: {:?}",
                                k.drivers
                            ));
                        }
                    }
                }
            }
        }
        for k in table
            .iter()
            .filter(|k| !k.adapter && !k.drivers.is_empty() && since(k) <= v)
        {
            if !rules.iter().any(|r| r.vid == k.vid && r.pid == k.pid) {
                problems.push(format!(
                    "devices.txt has {:04x}:{:04x} ({}) in NUT {v}; its udev rules lack it",
                    k.vid,
                    k.pid,
                    k.drivers.join(",")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreement(s) between devices.txt and the releases:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A value each directive takes without complaint (the arity from the table).
fn sample_line(name: &str, words: usize, port: u16) -> String {
    let value = match name {
        "LISTEN" => format!("127.0.0.1 {port}"),
        "MONITOR" => format!("ups1@127.0.0.1:{port} 1 mon secret primary"),
        "NOTIFYFLAG" => "ONLINE SYSLOG".into(),
        "NOTIFYMSG" => "ONLINE \"on line\"".into(),
        "CERTHOST" => "localhost upsd 0 0".into(),
        "CERTIDENT" => "upsmon \"pass\"".into(),
        "CERTPATH" | "STATEPATH" | "CERTFILE" => "/tmp".into(),
        "SHUTDOWNCMD" | "NOTIFYCMD" => "/bin/true".into(),
        "POWERDOWNFLAG" => "/tmp/killpower-test".into(),
        "RUN_AS_USER" => "root".into(),
        "ALLOW_NO_DEVICE" | "ALLOW_NOT_ALL_LISTENERS" | "DISABLE_WEAK_SSL" => "false".into(),
        _ => vec!["1"; words].join(" "),
    };
    format!("{name} {value}\n")
}

/// The directive tables of upsd.conf and upsmon.conf against each release: a directive is
/// known to a release (no "invalid directive" in its log) exactly when the table dates it to
/// that release or earlier.
#[test]
fn the_directive_tables_agree_with_each_release() {
    use power_snitch::nut::{upsd_conf, upsmon_conf};
    let mut problems = Vec::new();
    for (slot, release) in common::nut::releases().into_iter().enumerate() {
        let v = release.version;
        for (file, table, program) in [
            ("upsd.conf", upsd_conf::DIRECTIVES, "upsd"),
            ("upsmon.conf", upsmon_conf::DIRECTIVES, "upsmon"),
        ] {
            let (dir, inside) = release.temp_dir(&format!("dirs-{program}"));
            let port = 13490 + (release.version.patch % 8);
            fs::write(
                dir.join("ups.conf"),
                "[ups1]\n\tdriver = dummy-ups\n\tport = ups1.dev\n",
            )
            .unwrap();
            fs::write(
                dir.join("upsd.users"),
                "[mon]\n\tpassword = secret\n\tupsmon primary\n",
            )
            .unwrap();
            let mut text = String::new();
            if program == "upsmon" {
                text.push_str(&sample_line("MONITOR", 5, port));
            }
            for (name, words, _) in table {
                if !matches!(
                    *name,
                    "MONITOR" | "LISTEN" | "CERTPATH" | "CERTIDENT" | "CERTHOST"
                ) {
                    text.push_str(&sample_line(name, *words, port));
                }
            }
            text.push_str(&sample_line("LISTEN", 2, port).replace(
                "LISTEN",
                if program == "upsd" {
                    "LISTEN"
                } else {
                    "# LISTEN"
                },
            ));
            fs::write(dir.join(file), &text).unwrap();
            if program == "upsmon" {
                fs::write(dir.join("upsd.conf"), format!("LISTEN 127.0.0.1 {port}\n")).unwrap();
            }
            let mut cmd = release.command(&release.program(program).expect("the program"));
            cmd.args(["-F", "-D", "-u", "root"]);
            nut_env(&mut cmd, &inside);
            // The same lock as the fixtures' upsmon in this root: upsmon keeps one PID file
            // there, and a second one exits before it reads its file.
            let _one = (program == "upsmon")
                .then(|| UPSMON[slot].lock().unwrap_or_else(|e| e.into_inner()));
            let mut run = Watched::start(cmd);
            run.until(Duration::from_secs(3), |o| {
                o.contains("Running as foreground process") || o.contains("Communications with UPS")
            });
            let out = run.finish();
            let _ = fs::remove_file(release.root.join("run/nut/upsmon.pid"));
            for (name, _, since) in table {
                let unknown = out.lines().any(|l| {
                    l.contains("invalid directive")
                        && l.split("invalid directive")
                            .nth(1)
                            .is_some_and(|r| r.split_whitespace().next() == Some(name))
                });
                let ours = since.is_none_or(|s| s <= v) && !DEBIAN_BUILD_LACKS.contains(name);
                if unknown == ours {
                    problems.push(format!(
                        "NUT {v} {program}: {name} is {} there, but the table dates it {}",
                        if unknown { "unknown" } else { "known" },
                        since.map_or("2.8.0 or earlier".into(), |s| s.to_string())
                    ));
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreement(s) between the directive tables and the releases:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// upsd.conf directives of SSL builds Debian does not make, measured in all three releases:
/// Debian builds NUT with NSS (CERTFILE is OpenSSL's) and without SSL client validation
/// (upsd says "CERTREQUEST is not supported in this SSL build"). Both are logged as
/// "invalid directive" and ignored.
const DEBIAN_BUILD_LACKS: &[&str] = &["CERTFILE", "CERTREQUEST"];

/// `power-snitch ARGS` with `stdin`: exit code, stdout, stderr.
fn ours(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("power-snitch runs");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The client against each release's upsd (as user nut) and dummy-ups: `status` prints what
/// that release's upsc prints; `test-connection` tells a good password from a bad one for an
/// admin (SET probe), an upsmon primary and secondary (LOGIN), and gives a user without rights
/// the same verdict everywhere; STARTTLS without a certificate is FEATURE-NOT-CONFIGURED (every
/// Debian build, 2.8.5's too, is an NSS build).
#[test]
fn the_client_agrees_with_each_upsd() {
    let mut problems = Vec::new();
    let mut viewer = Vec::new();
    for (i, release) in common::nut::releases().into_iter().enumerate() {
        let v = release.version;
        let port = 13510 + i as u16;
        let (dir, inside) = release.temp_dir("client");
        let nut = release.account("nut").expect("user nut");
        fs::write(
            dir.join("ups.conf"),
            "[ups1]\n\tdriver = dummy-ups\n\tport = ups1.dev\n\tdesc = \"UPS\"\n",
        )
        .unwrap();
        fs::write(
            dir.join("ups1.dev"),
            "ups.status: OL\nbattery.charge: 91\nups.model: Smart UPS 1500\n",
        )
        .unwrap();
        fs::write(dir.join("upsd.conf"), format!("LISTEN 127.0.0.1 {port}\n")).unwrap();
        fs::write(
            dir.join("upsd.users"),
            "[admin]\n\tpassword = adminpw\n\tactions = SET FSD\n\tinstcmds = ALL\n\
             [mon]\n\tpassword = monpw\n\tupsmon primary\n\
             [sec]\n\tpassword = secpw\n\tupsmon secondary\n\
             [viewer]\n\tpassword = viewpw\n",
        )
        .unwrap();
        for f in ["ups.conf", "ups1.dev", "upsd.conf", "upsd.users"] {
            nix::unistd::chown(&dir.join(f), Some(0.into()), Some(nut.gids[0].into())).unwrap();
            fs::set_permissions(dir.join(f), fs::Permissions::from_mode(0o640)).unwrap();
        }
        nix::unistd::chown(&dir, Some(0.into()), Some(nut.gids[0].into())).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        let mut cmd = release.command(&release.program("dummy-ups").unwrap());
        // As user nut, like upsd: 2.8.1's driver run as root leaves its socket to root alone.
        cmd.args(["-a", "ups1", "-F", "-u", "nut"]);
        nut_env(&mut cmd, &inside);
        let driver = Watched::start(cmd);
        let mut cmd = release.command(&release.program("upsd").unwrap());
        cmd.args(["-F", "-u", "nut"]);
        nut_env(&mut cmd, &inside);
        let mut upsd = Watched::start(cmd);
        upsd.until(Duration::from_secs(10), |o| {
            o.contains("Running as foreground process")
        });
        let target = format!("ups1@127.0.0.1:{port}");
        let upsc = release.program("upsc").expect("upsc");
        let deadline = Instant::now() + Duration::from_secs(15);
        let (theirs, mine) = loop {
            let out = release.command(&upsc).arg(&target).output().unwrap();
            let theirs = String::from_utf8_lossy(&out.stdout).into_owned();
            let (code, mine, err) = ours(&["status", &target], "");
            let ready = theirs.contains("ups.status: OL") && code == 0;
            if ready || Instant::now() > deadline {
                if !ready {
                    problems.push(format!("NUT {v}: never ready: upsc {theirs:?}, ours {err}"));
                }
                break (theirs, mine);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut a: Vec<&str> = theirs.lines().collect();
        let mut b: Vec<&str> = mine.lines().collect();
        a.sort();
        b.sort();
        if a != b {
            problems.push(format!("NUT {v}: status differs from upsc:\n{b:?}\n{a:?}"));
        }
        let verdict = |user: &str, password: &str, login: bool| -> (i32, String) {
            let mut args = vec![
                "test-connection",
                &target,
                "--format",
                "json",
                "--user",
                user,
            ];
            args.push("--password-stdin");
            if login {
                args.push("--login");
            }
            let (code, out, _) = ours(&args, &format!("{password}\n"));
            let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
            let step = json["steps"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "credentials"))
                .map(|s| s["code"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            (code, step)
        };
        for (user, good, login) in [
            ("admin", "adminpw", false),
            ("mon", "monpw", true),
            ("sec", "secpw", true),
        ] {
            let (ok, _) = verdict(user, good, login);
            let (bad, code) = verdict(user, "wrong", login);
            if ok != 0 || bad != 2 {
                problems.push(format!(
                    "NUT {v}: test-connection for {user}: good password exits {ok}, bad {bad} ({code})"
                ));
            }
        }
        viewer.push((
            v,
            verdict("viewer", "viewpw", true),
            verdict("viewer", "x", true),
        ));
        // STARTTLS on a upsd without a certificate.
        let reply = {
            use std::io::{BufRead, BufReader, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"STARTTLS\n").unwrap();
            let mut line = String::new();
            let _ = BufReader::new(s).read_line(&mut line);
            line.trim().to_string()
        };
        if reply != "ERR FEATURE-NOT-CONFIGURED" {
            problems.push(format!("NUT {v}: STARTTLS without a certificate: {reply}"));
        }
        let pin = "0".repeat(64);
        let (code, out, _) = ours(
            &[
                "test-connection",
                &target,
                "--format",
                "json",
                "--tls",
                "required",
                "--pin-sha256",
                &pin,
            ],
            "",
        );
        if code != 2 || !out.contains("FEATURE-NOT-CONFIGURED") {
            problems.push(format!(
                "NUT {v}: test-connection --tls required exits {code}: {out}"
            ));
        }
        upsd.finish();
        driver.finish();
        let _ = fs::remove_dir_all(&dir);
    }
    if viewer
        .iter()
        .any(|x| x.1 != viewer[0].1 || x.2 != viewer[0].2)
    {
        problems.push(format!(
            "a user without rights is told apart by release: {viewer:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
