//! The agent (`power-snitch run`) as a real process against a real upsd and dummy-ups: status
//! changes, upsd restarts, a lost driver, edited files and settings, the control socket,
//! systemd's notifications, SIGTERM; and the systemd unit.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nut::Nut;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_power-snitch");
const USERS: &str = "[mon]\n\tpassword = monpass\n\tupsmon secondary\n";

fn bin(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("power-snitch runs")
}

/// A running agent, its stderr collected line by line with the time each line came.
struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    dir: PathBuf,
    socket: PathBuf,
    settings: PathBuf,
}

impl Agent {
    /// Writes a settings file (with `settings set`, one UPS per `(name, port)`), then starts
    /// `run -v` with its own control socket, NUT directory and environment.
    fn start(name: &str, nut_dir: &Path, ups: &[(&str, u16)], env: &[(&str, &str)]) -> Agent {
        Agent::start_with(name, nut_dir, ups, env, &[])
    }

    /// As [`Agent::start`], with more arguments for `run`.
    fn start_with(
        name: &str,
        nut_dir: &Path,
        ups: &[(&str, u16)],
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Agent {
        let dir = std::env::temp_dir().join(format!("ps-agent-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let settings = dir.join("settings.bin");
        let s = settings.to_str().unwrap();
        for (u, port) in ups {
            let port = format!("upsd_port={port}");
            let out = bin(&[
                "settings",
                "set",
                "--settings",
                s,
                "--ups",
                u,
                "upsd_host=127.0.0.1",
                &port,
                "poll_interval=1",
                "nut_retry_count=3",
                "nut_retry_delay=1",
            ]);
            assert!(out.status.success(), "{out:?}");
        }
        // No setup page: these agents run side by side, and the page's own tests serve it.
        let out = bin(&["settings", "set", "--settings", s, "web_listen="]);
        assert!(out.status.success(), "{out:?}");
        let socket = dir.join("control.sock");
        let mut child = Command::new(BIN)
            .args(["run", "-v", "--settings", s, "--nut-dir"])
            .arg(nut_dir)
            .arg("--control-socket")
            .arg(&socket)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the agent starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                sink.lock().unwrap().push((Instant::now(), l));
            }
        });
        let a = Agent {
            child,
            lines,
            dir,
            socket,
            settings,
        };
        a.wait_for(|l| l.contains("info: ready;"), Duration::from_secs(15));
        a
    }

    fn log(&self) -> String {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    }

    /// The first line (from index `from`) matching `pred`, with its index and arrival time;
    /// fails after `within`.
    fn find_from(
        &self,
        from: usize,
        pred: impl Fn(&str) -> bool,
        within: Duration,
    ) -> (usize, Instant) {
        let deadline = Instant::now() + within;
        loop {
            {
                let lines = self.lines.lock().unwrap();
                if let Some(i) = (from..lines.len()).find(|&i| pred(&lines[i].1)) {
                    return (i, lines[i].0);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no such line within {within:?}; the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool, within: Duration) -> usize {
        self.find_from(0, pred, within).0
    }

    fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--control-socket", self.socket.to_str().unwrap()]);
        bin(&all)
    }

    fn status(&self) -> Value {
        let out = self.ctl(&["status", "--agent", "--format", "json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).expect("status is JSON")
    }

    /// SIGTERM; the agent must exit 0 within a second and remove its socket.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(0), "exit status; log:\n{}", self.log());
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "still running 1 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!self.socket.exists(), "the control socket is removed");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ups.status` as upsd has it now, over a raw connection.
fn upsd_status(port: u16, ups: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET VAR {ups} ups.status\n").as_bytes())
        .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    let v = line
        .trim()
        .strip_prefix(&format!("VAR {ups} ups.status "))?;
    Some(v.trim_matches('"').to_string())
}

/// Each status of the sequence and the words its log line must have.
fn expected_line(status: &str) -> Option<&'static str> {
    match status {
        "OL" => Some("ups1: on line power (OL)"),
        "OB" => Some("ups1: on battery: utility power is gone (OB)"),
        "OB LB" => Some("ups1: low battery: shutdown is near (LB)"),
        _ => None,
    }
}

#[test]
fn agent_logs_every_transition_within_two_polls_and_notifies_systemd() {
    let seq = "ups.status: OL\nbattery.charge: 100\nTIMER 2\nups.status: OB\nbattery.charge: 80\nTIMER 2\nups.status: OB LB\nbattery.charge: 15\nTIMER 2\n";
    let mut nut = Nut::new("agent-seq", &[("ups1", "ups1.seq", seq)], USERS, "");
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");

    let notify_path = std::env::temp_dir().join(format!("ps-agent-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let agent = Agent::start(
        "seq",
        &nut.dir,
        &[("ups1", nut.port)],
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut buf = vec![0u8; 4096];
    let n = notify.recv(&mut buf).expect("a notification");
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(first.starts_with("READY=1\nSTATUS="), "{first:?}");
    // Watchdog keep-alives every 200 ms, and STATUS= with the UPS once it is read.
    let (mut watchdogs, mut status) = (0, String::new());
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) && (watchdogs < 3 || !status.contains("ups1: O")) {
        let n = notify.recv(&mut buf).expect("more notifications");
        let m = String::from_utf8_lossy(&buf[..n]).to_string();
        if m == "WATCHDOG=1" {
            watchdogs += 1;
        } else if let Some(s) = m.strip_prefix("STATUS=") {
            status = s.to_string();
        }
    }
    assert!(watchdogs >= 3, "watchdog keep-alives: {watchdogs}");
    assert!(
        status.contains("ups1: O") && status.contains("upsd connected"),
        "{status:?}"
    );

    // Watch upsd's own ups.status every 100 ms; each change must be logged by the agent
    // within two poll intervals (2 s) of the moment the test saw it.
    let mut seen: Vec<&str> = Vec::new();
    let mut last = upsd_status(nut.port, "ups1").unwrap();
    let t = Instant::now();
    while seen.len() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the sequence did not walk OL, OB, OB LB: saw {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        let Some(now) = upsd_status(nut.port, "ups1") else {
            continue;
        };
        if now == last {
            continue;
        }
        let changed_at = Instant::now();
        let want = expected_line(&now).unwrap_or_else(|| panic!("unexpected status {now:?}"));
        let from = agent
            .lines
            .lock()
            .unwrap()
            .iter()
            .position(|(at, _)| *at + Duration::from_millis(1100) >= changed_at)
            .unwrap_or(0);
        let (_, logged_at) = agent.find_from(from, |l| l.contains(want), Duration::from_secs(3));
        assert!(
            logged_at <= changed_at + Duration::from_secs(2),
            "{now}: logged {:?} after upsd had it",
            logged_at - changed_at
        );
        if !seen.contains(&expected_line(&now).unwrap()) {
            seen.push(want);
        }
        last = now;
    }
    let log = agent.log();
    assert!(
        log.contains("ups1: battery charge 15% is at or below the low threshold 20%"),
        "{log}"
    );

    // The control socket: status and events.
    let st = agent.status();
    assert_eq!(st["ok"], true);
    assert_eq!(st["ups"][0]["name"], "ups1");
    assert_eq!(st["ups"][0]["data"], "ok");
    assert_eq!(st["upsd"][0]["state"], "connected");
    assert_eq!(st["upsd"][0]["address"], format!("127.0.0.1:{}", nut.port));
    let out = agent.ctl(&["events", "-n", "3", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let ev: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = ev["events"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let out = agent.ctl(&["events"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(" warning ups1: on battery: utility power is gone (OB)"),
        "{text}"
    );
    let out = agent.ctl(&["status", "--agent"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("ups1 at 127.0.0.1:"), "{text}");
    assert!(text.contains("polled every 1 s"), "{text}");

    agent.stop();
    let _ = std::fs::remove_file(&notify_path);
}

#[test]
fn agent_logs_upsd_restarts_and_a_lost_driver_on_its_own() {
    let dev = "ups.status: OL\nbattery.charge: 100\n";
    let mut nut = Nut::new("agent-restart", &[("ups1", "ups1.dev", dev)], USERS, "");
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    let agent = Agent::start("restart", &nut.dir, &[("ups1", nut.port)], &[]);
    agent.wait_for(|l| l.contains("ups1: status OL"), Duration::from_secs(5));

    let m = agent.mark();
    nut.stop_upsd();
    agent.find_from(
        m,
        |l| l.contains("connection to upsd lost"),
        Duration::from_secs(5),
    );
    nut.start_upsd();
    let (i, _) = agent.find_from(
        m,
        |l| l.contains("connection to upsd restored after"),
        Duration::from_secs(15),
    );
    nut.wait_ready("ups1");
    assert_eq!(agent.status()["upsd"][0]["state"], "connected");
    // Nothing about the UPS changed: the restart logs no status change.
    let log = agent.log();
    assert!(
        !log[..].lines().skip(i).any(|l| l.contains("ups1: status")),
        "{log}"
    );

    let m = agent.mark();
    nut.stop_driver("ups1");
    agent.find_from(
        m,
        |l| l.contains("ups1: DRIVER-NOT-CONNECTED") || l.contains("ups1: DATA-STALE"),
        Duration::from_secs(10),
    );
    let st = agent.status();
    let data = st["ups"][0]["data"].as_str().unwrap().to_string();
    assert!(
        data == "DRIVER-NOT-CONNECTED" || data == "DATA-STALE",
        "{data}"
    );
    nut.start_driver("ups1");
    agent.find_from(
        m,
        |l| l.contains("ups1: upsd has data again"),
        Duration::from_secs(15),
    );
    agent.stop();
}

#[test]
fn agent_reacts_to_edited_files_new_settings_and_sighup() {
    let dev = "ups.status: OL\nbattery.charge: 100\n";
    let mut nut = Nut::new("agent-files", &[("ups1", "ups1.dev", dev)], USERS, "");
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    let agent = Agent::start("files", &nut.dir, &[("ups1", nut.port)], &[]);
    agent.wait_for(|l| l.contains("ups1: status OL"), Duration::from_secs(5));

    // ups.conf gains a section without a port: the change and the new finding within 1 s.
    let m = agent.mark();
    let conf = nut.dir.join("ups.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("[ups2]\n\tdriver = dummy-ups\n");
    let edited = Instant::now();
    std::fs::write(&conf, &text).unwrap();
    let (_, t1) = agent.find_from(
        m,
        |l| l.contains("files: ups.conf changed"),
        Duration::from_secs(2),
    );
    let (_, t2) = agent.find_from(
        m,
        |l| l.contains("new: ups.conf:") && l.contains("error[missing-port]") && l.contains("ups2"),
        Duration::from_secs(2),
    );
    assert!(
        t1.max(t2) <= edited + Duration::from_secs(1),
        "logged after {:?}",
        t1.max(t2) - edited
    );
    // Fixed again by an editor's way: a new file renamed over the old one.
    let m = agent.mark();
    text.push_str("\tport = ups1.dev\n");
    let tmp = nut.dir.join("ups.conf.new");
    std::fs::write(&tmp, &text).unwrap();
    std::fs::rename(&tmp, &conf).unwrap();
    agent.find_from(
        m,
        |l| l.contains("resolved: ups.conf:") && l.contains("missing-port"),
        Duration::from_secs(2),
    );

    // The poll cadence, before and after the settings change to 2 s.
    let polls = |a: &Agent| a.status()["ups"][0]["polls"].as_u64().unwrap();
    let p0 = polls(&agent);
    std::thread::sleep(Duration::from_secs(4));
    let fast = polls(&agent) - p0;
    assert!((3..=5).contains(&fast), "{fast} polls in 4 s at 1 s");
    let m = agent.mark();
    let out = bin(&[
        "settings",
        "set",
        "--settings",
        agent.settings.to_str().unwrap(),
        "poll_interval=2",
    ]);
    assert!(out.status.success(), "{out:?}");
    agent.find_from(
        m,
        |l| l.contains("poll_interval[ups1]: 1 -> 2"),
        Duration::from_secs(2),
    );
    assert_eq!(agent.status()["ups"][0]["poll_interval"], 2);
    std::thread::sleep(Duration::from_millis(500));
    let p1 = polls(&agent);
    std::thread::sleep(Duration::from_secs(6));
    let slow = polls(&agent) - p1;
    assert!((2..=4).contains(&slow), "{slow} polls in 6 s at 2 s");
    // No reconnection for a new poll interval.
    assert!(!agent.log()[..].contains("restored after"));

    // A new UPS in the settings is monitored without a restart, on the same connection.
    let m = agent.mark();
    let port = format!("upsd_port={}", nut.port);
    let out = bin(&[
        "settings",
        "set",
        "--settings",
        agent.settings.to_str().unwrap(),
        "--ups",
        "ghost",
        "upsd_host=127.0.0.1",
        &port,
        "poll_interval=1",
    ]);
    assert!(out.status.success(), "{out:?}");
    agent.find_from(
        m,
        |l| l.contains("ghost: monitoring through upsd"),
        Duration::from_secs(2),
    );
    agent.find_from(
        m,
        |l| l.contains("ghost: upsd does not serve this UPS (UNKNOWN-UPS)"),
        Duration::from_secs(3),
    );
    let st = agent.status();
    assert_eq!(st["ups"].as_array().unwrap().len(), 2);
    assert_eq!(st["upsd"].as_array().unwrap().len(), 1);
    assert_eq!(st["ups"][1]["data"], "UNKNOWN-UPS");

    // SIGHUP reads everything again; `recheck` on the socket answers with the summary.
    let m = agent.mark();
    let pid = nix::unistd::Pid::from_raw(agent.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    agent.find_from(m, |l| l.contains("SIGHUP"), Duration::from_secs(2));
    agent.find_from(
        m,
        |l| l.contains("and the settings: unchanged"),
        Duration::from_secs(2),
    );
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.write_all(b"recheck\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["errors"].is_u64() && v["appeared"].is_array(), "{line}");
    agent.stop();
}

#[test]
fn agent_cuts_off_huge_requests_and_too_many_clients_and_keeps_running() {
    let nut_dir = std::env::temp_dir().join(format!("ps-agent-empty-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    let agent = Agent::start("hostile", &nut_dir, &[], &[]);

    // A 10 MB line: the agent answers an error after 4 KiB and closes.
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = vec![b'x'; 10 << 20];
    let written = s.write_all(&big);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(
        written.is_err() || reply.contains("longer than 4096 bytes"),
        "{written:?} {reply:?}"
    );
    drop(s);
    let st = agent.status();
    assert_eq!(st["ok"], true);

    // Twelve idle clients of the agent's own user take every place (eight shared, four kept for
    // the agent's user and root); the thirteenth is told so.
    let idle: Vec<UnixStream> = (0..12)
        .map(|_| UnixStream::connect(&agent.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = UnixStream::connect(&agent.socket).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&mut ninth).read_line(&mut line).unwrap();
    assert!(line.contains("busy"), "{line}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    let out = agent.ctl(&["events", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    // A bad request is answered, and the connection stays usable.
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.write_all(b"reboot\nstatus\n").unwrap();
    let mut r = BufReader::new(&s);
    let mut l1 = String::new();
    let mut l2 = String::new();
    r.read_line(&mut l1).unwrap();
    r.read_line(&mut l2).unwrap();
    assert!(
        l1.starts_with(r#"{"ok":false,"error":"unknown request `reboot`"#),
        "{l1}"
    );
    assert!(l2.starts_with(r#"{"ok":true"#), "{l2}");
    drop(s);
    assert!(agent.log().contains("no UPS in the settings"));
    agent.stop();
    let _ = std::fs::remove_dir_all(&nut_dir);
}

#[test]
fn agent_refuses_a_control_socket_another_agent_answers_on() {
    let nut_dir = std::env::temp_dir().join(format!("ps-agent-empty2-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    let agent = Agent::start("twice", &nut_dir, &[], &[]);
    let out = Command::new(BIN)
        .args([
            "run",
            "--settings",
            agent.settings.to_str().unwrap(),
            "--nut-dir",
        ])
        .arg(&nut_dir)
        .arg("--control-socket")
        .arg(&agent.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another agent answers"));
    assert_eq!(agent.status()["ok"], true);
    agent.stop();
    let _ = std::fs::remove_dir_all(&nut_dir);
}

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the binary just built (verify
/// checks that the program exists). Fails, not skips, without systemd-analyze.
#[test]
fn agent_unit_file_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/power-snitch.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("ExecStart=/usr/bin/power-snitch run"));
    for needed in [
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "User=power-snitch",
        "SupplementaryGroups=nut dialout",
        "StateDirectory=power-snitch",
        "RuntimeDirectory=power-snitch",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/power-snitch",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "ProtectHome=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(text.lines().any(|l| l == needed), "the unit lacks {needed}");
    }
    let dir = std::env::temp_dir().join(format!("ps-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("power-snitch.service");
    std::fs::write(&copy, text.replace("/usr/bin/power-snitch", BIN)).unwrap();
    // --man=no: the unit's Documentation= pages are NUT's, and a machine without man-db (a
    // fresh Debian root, the SD-card image without its docs) cannot look them up.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect(
            "systemd-analyze is installed (Debian's package systemd; ./scripts/test installs it)",
        );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn agent_checks_the_hardware_and_rechecks_when_udev_check_asks() {
    // An APC UPS whose device node the nut group cannot open, as a captured tree.
    let nut_dir = std::env::temp_dir().join(format!("ps-agent-hw-nut-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    std::fs::write(
        nut_dir.join("ups.conf"),
        "[apc]\n\tdriver = usbhid-ups\n\tport = auto\n\tvendorid = 051d\n",
    )
    .unwrap();
    std::fs::write(nut_dir.join("nut.conf"), "MODE=standalone\n").unwrap();
    let sys = common::fixtures_dir().join("usb/locked-node/sys");
    let agent = Agent::start_with(
        "hw",
        &nut_dir,
        &[],
        &[],
        &[
            "--nut-version",
            "2.8.0",
            "--sysfs-root",
            sys.to_str().unwrap(),
            // An unchanged recheck asked on the socket is logged at debug only.
            "-v",
        ],
    );
    agent.wait_for(
        |l| l.contains("device-permission") && l.contains("[apc]"),
        Duration::from_secs(5),
    );
    let mark = agent.mark();
    let out = bin(&[
        "udev-check",
        "add:3-1:051d:0002",
        "--nut-version",
        "2.8.0",
        "--sysfs-root",
        sys.to_str().unwrap(),
        "--nut-dir",
        nut_dir.to_str().unwrap(),
        "--control-socket",
        agent.socket.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("served by [apc]") && log.contains("the agent re-checked"),
        "{log}"
    );
    agent.find_from(
        mark,
        |l| l.contains("recheck asked on the control socket"),
        Duration::from_secs(5),
    );
    agent.stop();
}

#[test]
fn agent_says_when_upsd_is_back_and_does_not_log_an_unchanged_ups_as_new() {
    let dev = "ups.status: OB LB\nbattery.charge: 15\n";
    let mut nut = Nut::new("agent-back", &[("ups1", "ups1.dev", dev)], USERS, "");
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    let agent = Agent::start("back", &nut.dir, &[("ups1", nut.port)], &[]);
    agent.wait_for(|l| l.contains("ups1: status OB LB"), Duration::from_secs(5));

    let m = agent.mark();
    nut.stop_upsd();
    nut.stop_driver("ups1");
    agent.find_from(
        m,
        |l| l.contains("connection to upsd lost"),
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_secs(2));
    nut.start_upsd();
    std::thread::sleep(Duration::from_secs(3));
    nut.start_driver("ups1");
    let (i, _) = agent.find_from(
        m,
        |l| l.contains("connection to upsd restored after"),
        Duration::from_secs(15),
    );
    nut.wait_ready("ups1");
    // Two polls with the driver's data again.
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.log();
    let after: Vec<&str> = log.lines().skip(m).collect();
    for l in &after {
        assert!(
            !(l.contains("ups1: on battery")
                || l.contains("ups1: low battery")
                || l.contains("ups1: battery charge")
                || l.contains("ups1: status")
                || l.contains("(OB cleared)")
                || l.contains("(LB cleared)")),
            "an unchanged UPS logged as new after upsd came back: {l}\n{log}"
        );
    }
    assert!(log.lines().nth(i).unwrap().contains(" s"), "{log}");
    assert_eq!(agent.status()["ups"][0]["status"], "OB LB");
    agent.stop();
}

/// Runs `f` on a new thread whose user (real, effective, saved) is `uid`; only that thread
/// changes (the raw system call, not libc's process-wide setresuid). Needs root.
fn as_user<T: Send + 'static>(
    uid: u32,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        // SAFETY: a plain system call on this thread's credentials; no memory is involved.
        let r = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_setresuid,
                uid as nix::libc::c_long,
                uid as nix::libc::c_long,
                uid as nix::libc::c_long,
            )
        };
        assert_eq!(
            r, 0,
            "this test runs as root, to be other users on its threads"
        );
        f()
    })
}

/// One request on a new connection: the reply line.
fn ask_once(socket: &Path, request: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn agent_control_socket_flood_shares_rechecks_logs_none_and_keeps_serving_others() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let nut_dir = std::env::temp_dir().join(format!("ps-agent-flood-nut-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    std::fs::write(nut_dir.join("nut.conf"), "MODE=standalone\n").unwrap();
    // -v twice: debug lines too, to count the recheck runs.
    let agent = Agent::start_with("flood", &nut_dir, &[], &[], &["-v"]);
    // Other users may reach the socket, as members of its group would.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let events_before = agent.ctl(&["events", "-n", "1", "--format", "json"]);
    let seq = |o: &Output| -> u64 {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["events"][0]["seq"].as_u64().unwrap()
    };
    let seq_before = seq(&events_before);

    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    // Seven clients of one user ask `recheck` as fast as they can.
    for _ in 0..7 {
        let (stop, replies, socket) = (stop.clone(), replies.clone(), agent.socket.clone());
        threads.push(as_user(65534, move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(s) = UnixStream::connect(&socket) else {
                    continue;
                };
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut w = &s;
                let mut r = BufReader::new(&s);
                while !stop.load(Ordering::Relaxed) {
                    let mut line = String::new();
                    if w.write_all(b"recheck\n").is_err() || r.read_line(&mut line).is_err() {
                        break;
                    }
                    if !line.starts_with(r#"{"ok":true"#) {
                        // Busy: this user has its places; try again a little later.
                        std::thread::sleep(Duration::from_millis(20));
                        break;
                    }
                    replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Nine more clients of three other users connect and hold their connections, silent.
    for uid in [65531, 65532, 65533] {
        for _ in 0..3 {
            let (stop, socket) = (stop.clone(), agent.socket.clone());
            threads.push(as_user(uid, move || {
                let s = UnixStream::connect(&socket).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                drop(s);
            }));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let m = agent.mark();
    let t = Instant::now();
    // Meanwhile the administrator's `status` and the udev hook's `recheck` (the agent's own
    // user, here root) are served, every one.
    for _ in 0..20 {
        assert_eq!(agent.status()["ok"], true);
    }
    let hook = ask_once(&agent.socket, "recheck");
    assert!(hook.starts_with(r#"{"ok":true"#), "{hook}");
    let out = agent.ctl(&["status", "--agent"]);
    assert!(out.status.success(), "{out:?}");
    let flood = Duration::from_secs(5);
    std::thread::sleep(flood.saturating_sub(t.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let seconds = t.elapsed().as_secs_f64();
    for th in threads {
        th.join().unwrap();
    }
    let log = agent.log();
    let during: Vec<&str> = log.lines().skip(m).collect();
    let runs = during
        .iter()
        .filter(|l| l.contains("share this run"))
        .count();
    let above_debug: Vec<&&str> = during.iter().filter(|l| !l.contains(": debug: ")).collect();
    let n = replies.load(Ordering::Relaxed);
    eprintln!(
        "flood of {seconds:.1} s: {n} recheck replies from {runs} runs; {} line(s) logged above debug",
        above_debug.len()
    );
    assert!(n >= 7, "the flooding clients were served too ({n})");
    assert!(
        runs as f64 <= seconds + 2.0,
        "{runs} recheck runs in {seconds:.1} s: requests asked together share a run"
    );
    assert!(above_debug.is_empty(), "{above_debug:#?}");
    let events_after = agent.ctl(&["events", "-n", "1", "--format", "json"]);
    assert_eq!(
        seq(&events_after),
        seq_before,
        "no event for an unchanged recheck"
    );
    agent.stop();
    let _ = std::fs::remove_dir_all(&nut_dir);
}

#[test]
fn agent_notices_a_new_mode_on_nut_s_files_and_directory_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let nut = Nut::new(
        "agent-modes",
        &[("ups1", "ups1.dev", "ups.status: OL\n")],
        USERS,
        "",
    );
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(&nut.dir.join("upsd.users"), 0o644);
    mode(&nut.dir, 0o755);
    let agent = Agent::start("modes", &nut.dir, &[], &[]);
    agent.wait_for(|l| l.contains("world-readable"), Duration::from_secs(5));

    let m = agent.mark();
    mode(&nut.dir.join("upsd.users"), 0o640);
    agent.find_from(
        m,
        |l| l.contains("files: upsd.users: mode 0644 -> 0640"),
        Duration::from_secs(2),
    );
    agent.find_from(
        m,
        |l| l.contains("check: resolved: upsd.users") && l.contains("world-readable"),
        Duration::from_secs(2),
    );
    let m = agent.mark();
    mode(&nut.dir, 0o750);
    let dir = nut.dir.display().to_string();
    agent.find_from(
        m,
        |l| l.contains(&format!("files: {dir}: mode 0755 -> 0750")),
        Duration::from_secs(2),
    );
    agent.stop();
}
