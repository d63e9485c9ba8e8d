//! The agent on its own, against real NUT (Debian's upsd, upsdrvctl, dummy-ups, nutdrv_qx on a
//! simulated Megatec UPS): a driver whose data goes stale or that dies is restarted through the
//! apply path, a driver that keeps failing is given up with one critical line, and the one UPS
//! found is adopted when NUT serves none.
//!
//! The agent takes shorter self-healing times from the environment here
//! (`POWER_SNITCH_HEAL_AFTER`, `_BACKOFF`, `_PER_HOUR`), and runs NUT's programs directly (no
//! systemd in the tests) as root on the test's NUT directory.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nut::{free_port, LIBEXEC};
use common::sim::{Megatec, PtySim};
use common::web::{bin, BIN};
use power_snitch::manage::plan::{Action, Op, Unit};
use power_snitch::manage::run::{Direct, Runner};
use power_snitch::manage::{spool, ManageError, Nut};
use power_snitch::nut::version::NutVersion;

/// upsmon keeps its PID file in NUT's run directory whatever the environment says: the
/// adopting tests (which start it) one at a time.
static UPSMON: Mutex<()> = Mutex::new(());

const DEV: &str = "ups.status: OL\nbattery.charge: 100\nups.mfr: Dummy\n";

/// A NUT directory with `ups_conf`, upsd on a free port (data stale after 3 s).
struct Setup {
    dir: PathBuf,
    port: u16,
}

impl Setup {
    fn new(name: &str, ups_conf: &str, mode: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("ps-heal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let port = free_port();
        for (file, text) in [
            ("nut.conf", format!("MODE={mode}\n")),
            ("ups.conf", ups_conf.to_string()),
            ("upsd.conf", format!("LISTEN 127.0.0.1 {port}\nMAXAGE 3\n")),
            ("upsd.users", "# none\n".to_string()),
            ("upsmon.conf", "# none\n".to_string()),
        ] {
            fs::write(dir.join(file), text).unwrap();
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o640)).unwrap();
        }
        fs::write(dir.join("a.dev"), DEV).unwrap();
        Setup { dir, port }
    }

    fn runner(&self) -> Direct {
        Direct::new(&self.dir, &self.dir, Path::new(LIBEXEC), Some("root"))
    }

    fn run(&self, op: Op, unit: Unit) -> Result<(), String> {
        self.runner().run(&Action { op, unit })
    }

    fn driver_pid(&self, driver: &str, ups: &str) -> Option<i32> {
        fs::read_to_string(self.dir.join(format!("{driver}-{ups}.pid")))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .filter(|p| alive(*p))
    }

    fn upsc(&self, ups: &str, var: &str) -> Result<String, String> {
        let out = Command::new("upsc")
            .arg(format!("{ups}@127.0.0.1:{}", self.port))
            .arg(var)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.run(Op::Stop, Unit::Upsmon);
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pid") {
                if let Some(pid) = fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    signal(pid, nix::sys::signal::Signal::SIGCONT);
                    signal(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn signal(pid: i32, s: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
}

/// Waits until `f` gives something, at most `limit`.
fn eventually<T>(limit: Duration, what: &str, f: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `power-snitch run` on a setup, its log collected.
struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    state: PathBuf,
}

impl Agent {
    /// `set` are `settings set` arguments (for `--ups NAME` when `ups` is given).
    fn start(s: &Setup, name: &str, ups: Option<&str>, set: &[&str], args: &[&str]) -> Agent {
        let state = s.dir.join(format!("state-{name}"));
        fs::create_dir_all(&state).unwrap();
        let settings = state.join("settings.bin");
        let st = settings.to_str().unwrap().to_string();
        let port = format!("upsd_port={}", s.port);
        let mut a = vec!["settings", "set", "--settings", &st, "web_listen="];
        if let Some(u) = ups {
            a.extend(["--ups", u, "poll_interval=1", &port]);
        }
        a.extend_from_slice(set);
        let out = bin(&a, "");
        assert!(out.status.success(), "{out:?}");
        let mut child = Command::new(BIN)
            .args(["run", "-v", "--settings", &st, "--nut-dir"])
            .arg(&s.dir)
            .arg("--control-socket")
            .arg(state.join("control.sock"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env("NUT_STATEPATH", &s.dir)
            .env("NUT_ALTPIDPATH", &s.dir)
            .env("POWER_SNITCH_NUT_USER", "root")
            .env("POWER_SNITCH_HEAL_AFTER", "2")
            .env("POWER_SNITCH_HEAL_BACKOFF", "1")
            .env("POWER_SNITCH_HEAL_PER_HOUR", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the agent starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                sink.lock().unwrap().push(l);
            }
        });
        let a = Agent {
            child,
            lines,
            state,
        };
        a.wait_for(Duration::from_secs(15), |l| l.contains("info: ready;"));
        a
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    fn wait_for(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such line within {limit:?}; the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the control socket's `status` says (it carries no metrics; the page's /metrics is
    /// rendered from the same state in `web::metrics`).
    fn settings(&self) -> PathBuf {
        self.state.join("settings.bin")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_stale_or_dead_driver_is_restarted_and_serves_fresh_data_again() {
    let s = Setup::new(
        "stale",
        "[a]\n driver = dummy-ups\n port = a.dev\n",
        "standalone",
    );
    s.run(Op::Start, Unit::Driver("a".into())).unwrap();
    s.run(Op::Start, Unit::Upsd).unwrap();
    let first = eventually(Duration::from_secs(10), "dummy-ups runs", || {
        s.driver_pid("dummy-ups", "a")
    });
    eventually(Duration::from_secs(10), "upsd serves [a]", || {
        s.upsc("a", "ups.status").ok().filter(|v| v == "OL")
    });
    let agent = Agent::start(&s, "stale", Some("a"), &[], &[]);
    agent.wait_for(Duration::from_secs(10), |l| l.contains("a: status OL"));

    // Stopped, not killed: upsd says DATA-STALE; the agent restarts it.
    signal(first, nix::sys::signal::Signal::SIGSTOP);
    eventually(
        Duration::from_secs(15),
        "upsd reports the data stale",
        || {
            s.upsc("a", "ups.status")
                .err()
                .filter(|e| e.contains("Data stale"))
        },
    );
    let line = agent.wait_for(Duration::from_secs(30), |l| {
        l.contains("a: driver restarted: data stale for")
    });
    assert!(
        line.starts_with("warning:") || line.contains("warn"),
        "{line}"
    );
    let second = eventually(Duration::from_secs(10), "a new dummy-ups", || {
        s.driver_pid("dummy-ups", "a").filter(|p| *p != first)
    });
    // Fresh values again: the device file changed, and upsd serves the new one.
    fs::write(s.dir.join("a.dev"), DEV.replace("100", "77")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.upsc("a", "battery.charge").ok().as_deref() != Some("77") {
        assert!(
            Instant::now() < deadline,
            "fresh data: upsc says {:?}, driver {:?} (first {first}, alive {}); the log:\n{}",
            s.upsc("a", "battery.charge"),
            s.driver_pid("dummy-ups", "a"),
            alive(first),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.wait_for(Duration::from_secs(10), |l| {
        l.contains("a: driver healed: its data is back after 1 restart(s)")
    });
    assert!(
        !alive(first) || {
            signal(first, nix::sys::signal::Signal::SIGKILL);
            true
        }
    );

    // Killed: upsd says DRIVER-NOT-CONNECTED; the agent restarts it.
    signal(second, nix::sys::signal::Signal::SIGKILL);
    agent.wait_for(Duration::from_secs(30), |l| {
        l.contains("a: driver restarted: driver not connected to upsd for")
    });
    let third = eventually(Duration::from_secs(10), "another dummy-ups", || {
        s.driver_pid("dummy-ups", "a")
            .filter(|p| *p != second && *p != first)
    });
    eventually(Duration::from_secs(20), "served again", || {
        s.upsc("a", "ups.status").ok().filter(|v| v == "OL")
    });
    assert_eq!(
        agent.count(|l| l.contains("driver restarted")),
        2,
        "{}",
        agent.log()
    );
    drop(agent);

    // self_heal=no: a killed driver stays dead.
    let agent = Agent::start(&s, "off", Some("a"), &["self_heal=no"], &[]);
    agent.wait_for(Duration::from_secs(10), |l| l.contains("a: status OL"));
    signal(third, nix::sys::signal::Signal::SIGKILL);
    eventually(
        Duration::from_secs(10),
        "upsd says the driver is gone",
        || {
            s.upsc("a", "ups.status")
                .err()
                .filter(|e| e.contains("not connected"))
        },
    );
    std::thread::sleep(Duration::from_secs(8));
    assert!(s.driver_pid("dummy-ups", "a").is_none());
    assert_eq!(
        agent.count(|l| l.contains("driver restart")),
        0,
        "{}",
        agent.log()
    );
}

#[test]
fn a_driver_that_keeps_failing_backs_off_is_given_up_once_and_counted() {
    // The driver exits at once: its port (a file dummy-ups reads) is not there.
    let s = Setup::new(
        "failing",
        "[bad]\n driver = dummy-ups\n port = missing.dev\n",
        "standalone",
    );
    s.run(Op::Start, Unit::Upsd).unwrap();
    let agent = Agent::start(&s, "failing", Some("bad"), &[], &[]);
    agent.wait_for(Duration::from_secs(60), |l| {
        l.contains("bad: driver given up: restarted 3 times in the last hour")
    });
    let given_up = agent.log();
    let tries: Vec<&str> = given_up
        .lines()
        .filter(|l| l.contains("bad: driver restart failed (driver not connected"))
        .collect();
    assert_eq!(tries.len(), 3, "{given_up}");
    // No storm: nothing more is tried, and the critical line is said once.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        agent.count(|l| l.contains("bad: driver restart")),
        3,
        "{}",
        agent.log()
    );
    assert_eq!(agent.count(|l| l.contains("driver given up")), 1);
    let line = agent.wait_for(Duration::from_secs(1), |l| l.contains("driver given up"));
    assert!(line.contains("error: bad: driver given up"), "{line}");
}

#[cfg(feature = "web")]
#[test]
fn restarts_and_drivers_given_up_are_in_the_metrics() {
    use common::http::get;
    let s = Setup::new(
        "metrics",
        "[bad]\n driver = dummy-ups\n port = missing.dev\n",
        "standalone",
    );
    s.run(Op::Start, Unit::Upsd).unwrap();
    let page = free_port();
    let listen = format!("web_listen=127.0.0.1:{page}");
    let agent = Agent::start(&s, "metrics", Some("bad"), &[&listen], &[]);
    agent.wait_for(Duration::from_secs(60), |l| l.contains("driver given up"));
    let m = get(page, "/metrics", None);
    let body = m.body.clone();
    for want in [
        "power_snitch_driver_restarts_total{ups=\"bad\",reason=\"disconnected\"} 3",
        "power_snitch_driver_restarts_total{ups=\"bad\",reason=\"stale\"} 0",
        "power_snitch_driver_given_up{ups=\"bad\"} 1",
    ] {
        assert!(body.contains(want), "no {want} in {m:?}");
    }
    // The page's events list says it.
    let e = get(page, "/api/events?n=50", None);
    assert!(
        e.body.contains("driver given up") && e.body.contains("driver restart failed"),
        "{e:?}"
    );
}

#[test]
fn the_root_side_restarts_only_a_driver_its_ups_conf_has() {
    let s = Setup::new(
        "spool",
        "[a]\n driver = dummy-ups\n port = a.dev\n",
        "standalone",
    );
    s.run(Op::Start, Unit::Driver("a".into())).unwrap();
    let first = eventually(Duration::from_secs(10), "dummy-ups runs", || {
        s.driver_pid("dummy-ups", "a")
    });
    let spool_dir = s.dir.join("spool");
    let nut = Nut::at(&s.dir, NutVersion::new(2, 8, 0), None);
    let ask = |name: &str| {
        let id = spool::submit(
            &spool_dir,
            &power_snitch::manage::restart_request(name),
            power_snitch::manage::Mode::Apply,
        )
        .unwrap();
        let mut runner = s.runner();
        let handled =
            spool::apply_spool(&spool_dir, &nut, &mut runner, Duration::from_secs(10)).unwrap();
        assert_eq!(handled.len(), 1);
        assert_eq!(handled[0].id, id);
        spool::wait_result(&spool_dir, &id, Duration::from_secs(5))
    };
    // A section ups.conf does not have, and a name no unit may carry: refused, nothing run.
    for (name, want) in [
        ("b", "ups.conf has no section [b]"),
        ("../a", "is refused"),
        (".a", "is refused"),
    ] {
        let e = ask(name).unwrap_err();
        assert!(e.to_string().contains(want), "{name}: {e}");
    }
    assert_eq!(s.driver_pid("dummy-ups", "a"), Some(first));
    // Its own section: restarted, nothing written.
    let before = fs::read(s.dir.join("ups.conf")).unwrap();
    let out = ask("a").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.ran, vec!["restart the driver of [a]".to_string()]);
    assert!(out.diffs.is_empty() && out.backup.is_none());
    assert_eq!(fs::read(s.dir.join("ups.conf")).unwrap(), before);
    eventually(Duration::from_secs(10), "a new dummy-ups", || {
        s.driver_pid("dummy-ups", "a").filter(|p| *p != first)
    });
    // A restart with files in it is not a way to write them.
    let mut p = power_snitch::manage::restart_request("a");
    p.files
        .insert("ups.conf".into(), b"[x]\n driver = dummy-ups\n".to_vec());
    let id = spool::submit(&spool_dir, &p, power_snitch::manage::Mode::Apply).unwrap();
    let mut runner = s.runner();
    spool::apply_spool(&spool_dir, &nut, &mut runner, Duration::from_secs(10)).unwrap();
    let e = spool::wait_result(&spool_dir, &id, Duration::from_secs(5)).unwrap_err();
    assert!(matches!(e, ManageError::Spool(_)), "{e}");
    assert_eq!(fs::read(s.dir.join("ups.conf")).unwrap(), before);
}

/// A NUT directory as Debian's package leaves it (MODE=none, no section), upsd's port set.
fn unconfigured(name: &str) -> Setup {
    Setup::new(name, "# Network UPS Tools: example ups.conf\n", "none")
}

#[test]
fn the_one_ups_found_is_adopted_without_a_click_and_never_again() {
    let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
    let s = unconfigured("adopt-one");
    let mut sim = PtySim::start(Megatec::default()).unwrap();
    sim.release();
    let port = sim.link().display().to_string();
    let agent = Agent::start(
        &s,
        "adopt-one",
        None,
        &["auto_adopt=yes"],
        &["--serial-port", &port],
    );
    let line = agent.wait_for(Duration::from_secs(90), |l| l.contains("auto-adopt"));
    assert!(
        line.contains("auto-adopt: adopted [") && line.contains("the only UPS found"),
        "{}",
        agent.log()
    );
    let name = line
        .split("adopted [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap()
        .to_string();
    assert_eq!(s.upsc(&name, "ups.status").as_deref(), Ok("OL"));
    assert_eq!(s.upsc(&name, "device.mfr").as_deref(), Ok("PowerSim"));
    let ups_conf = fs::read_to_string(s.dir.join("ups.conf")).unwrap();
    assert!(ups_conf.contains(&format!("[{name}]")) && ups_conf.contains("nutdrv_qx"));
    // The settings entry came with it: the agent monitors it.
    agent.wait_for(Duration::from_secs(20), |l| {
        l.contains(&format!("ups[{name}]: (none) -> added"))
    });

    // The user removes it: auto-adopt does not adopt it again, not even after a restart.
    let st = agent.settings();
    drop(agent);
    let out = bin(
        &[
            "remove",
            &name,
            "--settings",
            st.to_str().unwrap(),
            "--nut-dir",
            s.dir.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!fs::read_to_string(s.dir.join("ups.conf"))
        .unwrap()
        .contains(&format!("[{name}]")));
    let agent = Agent::start(
        &s,
        "adopt-one",
        None,
        &["auto_adopt=yes"],
        &["--serial-port", &port],
    );
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(agent.count(|l| l.contains("auto-adopt: adopted")), 0);
    assert!(!fs::read_to_string(s.dir.join("ups.conf"))
        .unwrap()
        .contains(&format!("[{name}]")));
}

#[test]
fn two_found_are_not_adopted_and_an_existing_section_is_left_alone() {
    let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
    let s = unconfigured("adopt-two");
    let mut a = PtySim::start(Megatec::default()).unwrap();
    let mut b = PtySim::start(Megatec::default()).unwrap();
    a.release();
    b.release();
    let (pa, pb) = (
        a.link().display().to_string(),
        b.link().display().to_string(),
    );
    let before = fs::read(s.dir.join("ups.conf")).unwrap();
    let agent = Agent::start(
        &s,
        "two",
        None,
        &["auto_adopt=yes"],
        &["--serial-port", &pa, "--serial-port", &pb],
    );
    let line = agent.wait_for(Duration::from_secs(90), |l| l.contains("auto-adopt"));
    assert!(
        line.contains("auto-adopt: 2 UPSes found (") && line.contains("none adopted"),
        "{}",
        agent.log()
    );
    assert_eq!(fs::read(s.dir.join("ups.conf")).unwrap(), before);
    drop(agent);

    // A section the user wrote (here one dummy-ups): nothing is adopted beside it.
    let s = Setup::new(
        "adopt-section",
        "[mine]\n driver = dummy-ups\n port = a.dev\n",
        "standalone",
    );
    let before = fs::read(s.dir.join("ups.conf")).unwrap();
    let agent = Agent::start(
        &s,
        "section",
        None,
        &["auto_adopt=yes"],
        &["--serial-port", &pa],
    );
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        agent.count(|l| l.contains("auto-adopt")),
        0,
        "{}",
        agent.log()
    );
    assert_eq!(fs::read(s.dir.join("ups.conf")).unwrap(), before);
}
