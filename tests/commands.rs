//! Instant commands against a real NUT: a simulated Megatec UPS on a pseudo-terminal (it runs a
//! battery test as a real one does: the "test in progress" bit, a sagging battery, then back)
//! behind NUT's `nutdrv_qx` and upsd, driven by `power-snitch command`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::nut::Nut;
use common::sim::{Megatec, PtySim};

const USERS: &str = "\
[tester]
\tpassword = testpw
\tinstcmds = test.battery.start.quick test.battery.start.deep beeper.toggle load.off shutdown.return
[viewer]
\tpassword = viewpw
";

/// A Megatec UPS named `ups` whose tests take four status polls and sag the battery by 10 %, behind
/// nutdrv_qx and upsd.
fn start(name: &str) -> (PtySim<Megatec>, Nut, PathBuf) {
    start_as(name, "qx")
}

fn start_as(name: &str, ups: &str) -> (PtySim<Megatec>, Nut, PathBuf) {
    let mut m = Megatec::default();
    m.test_length = Some(4);
    m.test_dip = 10.0;
    let sim = PtySim::start(m).unwrap();
    let conf = format!(
        "[{ups}]\n\tdriver = nutdrv_qx\n\tport = {}\n\tpollinterval = 1\n\tprotocol = megatec\n\tpollfreq = 1\n",
        sim.link().display()
    );
    let mut nut = Nut::with_ups_conf(name, &conf, USERS, "");
    nut.start_driver_program(ups, "nutdrv_qx");
    nut.start_upsd();
    nut.wait_ready(ups);
    let settings = nut.dir.join("state").join("settings.bin");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    (sim, nut, settings)
}

/// `power-snitch command ARGS… --settings S`, the password (if any) on standard input.
fn command(settings: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"));
    c.arg("command")
        .args(args)
        .arg("--settings")
        .arg(settings)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if password.is_some() {
        c.args(["--user", "tester", "--password-stdin"]);
    }
    let mut child = c.spawn().unwrap();
    if let Some(p) = password {
        writeln!(child.stdin.take().unwrap(), "{p}").unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn commands_lists_what_the_ups_offers_with_descriptions() {
    let (_sim, nut, settings) = start("cmd-list");
    let target = nut.target("qx");
    let out = command(&settings, &[&target, "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = String::from_utf8_lossy(&out.stdout);
    for want in [
        r#"{"name":"test.battery.start.quick","description":"Start a quick battery test","cuts_power":false}"#,
        r#""name":"beeper.toggle""#,
        r#"{"name":"load.off","description":"Turn off the load immediately","cuts_power":true}"#,
        r#""name":"shutdown.return""#,
    ] {
        assert!(json.contains(want), "{want} not in {json}");
    }
    let human = command(&settings, &[&target], None);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("load.off") && l.contains("needs --yes-cut-power")),
        "{human}"
    );
}

#[test]
fn battery_test_runs_with_tracking_and_is_kept_with_before_and_after() {
    let (sim, nut, settings) = start("cmd-test");
    let target = nut.target("qx");
    let out = command(
        &settings,
        &[&target, "test.battery.start.quick", "--format", "json"],
        Some("testpw"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(json.contains(r#""tracking":"SUCCESS""#), "{json}");
    assert!(json.contains(r#""before":{"charge":100,"#), "{json}");
    assert!(json.contains(r#""after":{"charge":100,"#), "{json}");
    // The sag while the test ran was seen.
    let lowest: f64 = json
        .split(r#""lowest_charge":"#)
        .nth(1)
        .and_then(|s| s.split(['}', ',']).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no lowest charge in {json}"));
    assert!(lowest < 100.0, "{json}");
    assert!(
        sim.with(|m| m.received_any(b"T")),
        "the UPS got its test command"
    );
    assert!(!sim.with(|m| m.testing), "the test ended by itself");

    let kept = command(&settings, &[&target, "--results", "--format", "json"], None);
    assert_eq!(kept.status.code(), Some(0), "{}", text(&kept));
    let kept = String::from_utf8_lossy(&kept.stdout);
    assert!(
        kept.contains(r#""cmd":"test.battery.start.quick","origin":"user","tracking":"SUCCESS""#),
        "{kept}"
    );
    assert!(kept.contains(r#""replace":null"#), "{kept}");
    assert!(settings
        .parent()
        .unwrap()
        .join("battery-tests.bin")
        .exists());
}

#[test]
fn a_command_the_ups_does_not_offer_is_refused_with_what_it_offers() {
    let (_sim, nut, settings) = start("cmd-unknown");
    let out = command(
        &settings,
        &[&nut.target("qx"), "outlet.1.load.on"],
        Some("testpw"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[command-not-offered]"), "{err}");
    assert!(
        err.contains("it offers: beeper.toggle, load.off, load.on, shutdown.return"),
        "{err}"
    );
}

#[test]
fn a_power_cut_needs_the_second_confirmation_and_nothing_is_sent_without_it() {
    let (sim, nut, settings) = start("cmd-cut");
    let target = nut.target("qx");
    for cmd in ["load.off", "shutdown.return"] {
        let out = command(&settings, &[&target, cmd], Some("testpw"));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("[cuts-power]") && err.contains("nothing was sent"),
            "{err}"
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !sim.with(|m| m.received_any(b"S") || m.shutdown_pending),
        "the UPS got a shutdown command"
    );
    // Confirmed, it goes through.
    let out = command(
        &settings,
        &[&target, "load.off", "--yes-cut-power"],
        Some("testpw"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("load.off: SUCCESS"));
    assert!(
        sim.with(|m| m.received_any(b"S")),
        "the confirmed command reached the UPS"
    );
}

#[test]
fn a_failed_test_is_kept_and_makes_the_replace_battery_finding() {
    let (sim, nut, settings) = start("cmd-fail");
    sim.with(|m| m.refuse_tests = true);
    let target = nut.target("qx");
    let out = command(
        &settings,
        &[&target, "test.battery.start.quick"],
        Some("testpw"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAILED"),
        "{}",
        text(&out)
    );
    let kept = command(&settings, &[&target, "--results"], None);
    let kept = String::from_utf8_lossy(&kept.stdout);
    assert!(
        kept.contains("replace the battery [battery-replace]"),
        "{kept}"
    );
    assert!(kept.contains("TRACKING said FAILED"), "{kept}");
}

#[test]
fn an_account_without_instcmds_is_refused_by_upsd() {
    let (sim, nut, settings) = start("cmd-denied");
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"));
    let mut child = c
        .args([
            "command",
            &nut.target("qx"),
            "beeper.toggle",
            "--user",
            "viewer",
            "--password-stdin",
            "--settings",
        ])
        .arg(&settings)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "viewpw").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ACCESS-DENIED"),
        "{}",
        text(&out)
    );
    assert!(!sim.with(|m| m.received_any(b"Q\0") || m.received.iter().any(|c| c == b"Q")));
}

/// `power-snitch ARGS…` with `stdin` on standard input.
fn bin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `run -v` until `until` shows in its log (or `within` passes); the log.
fn agent_until(
    settings: &Path,
    nut_dir: &Path,
    until: &str,
    within: std::time::Duration,
    then: impl FnOnce(&Path),
) -> String {
    use std::io::{BufRead, BufReader};
    let socket = settings.with_file_name("control.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(["run", "-v", "--settings"])
        .arg(settings)
        .arg("--nut-dir")
        .arg(nut_dir)
        .arg("--control-socket")
        .arg(&socket)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + within;
    let mut log = String::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                log.push_str(&l);
                log.push('\n');
                if l.contains(until) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    then(&socket);
    let _ = child.kill();
    let _ = child.wait();
    log
}

#[test]
fn the_agent_runs_the_due_battery_test_once_and_keeps_it() {
    use power_snitch::state::battery::{self, Origin, TestRecord, Values};
    let (sim, nut, settings) = start("cmd-agent");
    let s = settings.to_str().unwrap();
    let port = format!("upsd_port={}", nut.port);
    for (args, stdin) in [
        (
            vec![
                "settings",
                "set",
                "--settings",
                s,
                "--ups",
                "qx",
                "upsd_host=127.0.0.1",
                &port,
                "poll_interval=1",
                "nut_username=tester",
                "--password-stdin",
            ],
            "testpw\n",
        ),
        (
            vec![
                "settings",
                "set",
                "--settings",
                s,
                "web_listen=",
                "battery_test_every=30",
            ],
            "",
        ),
    ] {
        let out = bin(&args, stdin);
        assert!(out.status.success(), "{}", text(&out));
    }
    // The last test, as the results file says, was 31 days ago: the next is due.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let results = battery::path(&settings);
    let mut kept = battery::Results::default();
    kept.push(
        "qx",
        TestRecord {
            at: now - 31 * 24 * 3600,
            cmd: "test.battery.start.quick".into(),
            origin: Origin::Schedule,
            tracking: "SUCCESS".into(),
            test_result: None,
            before: Values::default(),
            after: Values::default(),
            lowest_charge: None,
        },
    );
    battery::save(&results, &kept).unwrap();

    let log = agent_until(
        &settings,
        &nut.dir,
        "the scheduled battery test ended",
        std::time::Duration::from_secs(60),
        |_| {},
    );
    assert!(
        log.contains("qx: the scheduled battery test ended: SUCCESS"),
        "{log}"
    );
    assert!(sim.with(|m| m.received_any(b"T")), "the UPS got the test");
    let (after, problem) = battery::load(&results);
    assert_eq!(problem, None);
    let tests = after.tests("qx");
    assert_eq!(tests.len(), 2, "{tests:?}");
    let t = tests[1];
    assert_eq!(
        (t.origin, t.tracking.as_str()),
        (Origin::Schedule, "SUCCESS")
    );
    assert!(t.at >= now && t.before.charge == Some(100.0), "{t:?}");
    assert!(t.lowest_charge.is_some_and(|c| c < 100.0), "{t:?}");

    let t_at = t.at;
    // Restarted, the agent finds the test it just ran: no second one.
    let sent = sim.with(|m| m.received.iter().filter(|c| c.as_slice() == b"T").count());
    let log = agent_until(
        &settings,
        &nut.dir,
        "battery test starts",
        std::time::Duration::from_secs(8),
        |socket| {
            // The status shows the tests kept, newest first.
            let out = bin(
                &[
                    "status",
                    "--agent",
                    "--format",
                    "json",
                    "--control-socket",
                    socket.to_str().unwrap(),
                ],
                "",
            );
            let json = String::from_utf8_lossy(&out.stdout);
            let tests = json.split(r#""battery":{"tests":["#).nth(1).unwrap_or("");
            assert!(
                tests.starts_with(&format!(r#"{{"at":{}"#, t_at))
                    && tests.contains(r#""origin":"schedule","tracking":"SUCCESS""#),
                "{json}"
            );
        },
    );
    assert!(!log.contains("battery test starts"), "{log}");
    assert!(log.contains("ready;"), "{log}");
    assert_eq!(
        sim.with(|m| m.received.iter().filter(|c| c.as_slice() == b"T").count()),
        sent
    );
    assert_eq!(battery::load(&results).0.tests("qx").len(), 2);
}

#[test]
fn the_page_runs_commands_asks_again_before_a_power_cut_and_shows_the_tests() {
    use common::http::{enc, get, post};
    let (sim, nut, _) = start_as("cmd-page", "ups1");
    let upsd_port = format!("upsd_port={}", nut.port);
    let agent = common::web::Agent::start(
        "cmd-page",
        &nut.dir,
        &[
            "upsd_host=127.0.0.1",
            &upsd_port,
            "poll_interval=1",
            "nut_username=tester",
        ],
        Some("testpw"),
    );
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(&["web-password", "--settings", &s], "page-admin-pw\n");
    assert!(out.status.success(), "{}", text(&out));
    let r = post(
        agent.port,
        "/login",
        None,
        &format!("password={}&next=%2F", enc("page-admin-pw")),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.cookie("ps_session").unwrap();
    let c = Some(cookie.as_str());

    let page = get(agent.port, "/commands?ups=ups1", c);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("data-cmd=\"test.battery.start.quick\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Start a quick battery test"),
        "{}",
        page.body
    );
    let csrf = page.csrf().expect("a CSRF token");

    // Without the token: refused.
    let r = post(agent.port, "/commands", c, "ups=ups1&cmd=beeper.toggle");
    assert_eq!(r.status, 403, "{r:?}");

    // A power cut: the second form, nothing sent.
    let r = post(
        agent.port,
        "/commands",
        c,
        &format!("csrf={csrf}&ups=ups1&cmd=load.off"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("id=\"cut-power\"") && r.body.contains("Nothing was sent"),
        "{}",
        r.body
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        !sim.with(|m| m.received_any(b"S")),
        "the UPS got a shutdown command"
    );

    // A battery test: TRACKING's word and the test kept.
    let r = post(
        agent.port,
        "/commands",
        c,
        &format!("csrf={csrf}&ups=ups1&cmd=test.battery.start.quick"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("<p id=\"tracking\">SUCCESS</p>"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("test.battery.start.quick</td><td>user</td><td>SUCCESS"),
        "{}",
        r.body
    );
    assert!(sim.with(|m| m.received_any(b"T")));

    // Confirmed, the power cut goes through.
    let r = post(
        agent.port,
        "/commands",
        c,
        &format!("csrf={csrf}&ups=ups1&cmd=load.off&confirm=cut-power"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        sim.with(|m| m.received_any(b"S")),
        "the confirmed command reached the UPS"
    );
}
