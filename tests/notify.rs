//! Notifications end to end: the agent against a real upsd and dummy-ups, delivering to an
//! HTTP receiver written here (it checks the webhook's HMAC and ntfy's headers): a receiver
//! down during OL → OB → OL, the agent SIGKILLed with undelivered events, a receiver that
//! hangs, a bit-flipped outbox, and `notify test`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nut::{free_port, Nut};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_power-snitch");
const USERS: &str = "[mon]\n\tpassword = monpass\n\tupsmon secondary\n";
/// upsd's users for the page's agent (it monitors as `admin`).
#[cfg(feature = "web")]
const USERS_ADMIN: &str = "[admin]\n\tpassword = adminpass\n\tupsmon primary\n";
const KEY: &str = "webhook-signing-key";

fn bin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("power-snitch runs");
    let mut i = c.stdin.take().unwrap();
    if let Some(s) = stdin {
        i.write_all(s.as_bytes()).unwrap();
    }
    drop(i);
    c.wait_with_output().unwrap()
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

/// An HTTP receiver on a port: down until [`Receiver::up`], then it answers 200 to each POST
/// (or, hanging, reads the request and never answers).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    hang: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn new(hang: bool) -> Receiver {
        Receiver {
            port: free_port(),
            got: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            hang,
            thread: None,
        }
    }

    fn up(&mut self) {
        let l = TcpListener::bind(("127.0.0.1", self.port)).expect("the receiver's port");
        l.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (got, stop, hang) = (self.got.clone(), self.stop.clone(), self.hang);
        self.thread = Some(std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        if let Some(g) = read_request(&s) {
                            got.lock().unwrap().push(g);
                            if hang {
                                held.push(s);
                            } else {
                                let mut s = s;
                                let _ = s.write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\naccepted",
                                );
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
    }

    fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for what came; fails after `within`.
    fn wait(&self, within: Duration, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let t = Instant::now();
        loop {
            let g = self.got();
            if pred(&g) {
                return g;
            }
            assert!(t.elapsed() < within, "not within {within:?}; got {g:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn read_request(s: &TcpStream) -> Option<Got> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Got {
        path,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

/// The webhook's events (checking each signature), as (id, kind).
fn webhook_events(got: &[Got]) -> Vec<(String, String)> {
    got.iter()
        .filter(|g| g.path == "/hook")
        .map(|g| {
            let sig = g.headers.get("x-power-snitch-signature").expect("signed");
            let hex = sig.strip_prefix("sha256=").expect("sha256=");
            let tag: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY.as_bytes());
            ring::hmac::verify(&key, g.body.as_bytes(), &tag).expect("the HMAC checks");
            assert_eq!(g.headers["content-type"], "application/json");
            let v: Value = serde_json::from_str(&g.body).expect("JSON");
            assert_eq!(
                v["id"].as_str(),
                g.headers.get("x-power-snitch-id").map(|s| s.as_str())
            );
            (
                v["id"].as_str().unwrap().to_string(),
                v["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// ntfy's messages as (id, priority, tags, body).
fn ntfy_events(got: &[Got]) -> Vec<(String, String, String, String)> {
    got.iter()
        .filter(|g| g.path == "/ups-topic")
        .map(|g| {
            (
                g.headers["x-power-snitch-id"].clone(),
                g.headers["priority"].clone(),
                g.headers["tags"].clone(),
                g.body.clone(),
            )
        })
        .collect()
}

fn kinds(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(_, k)| k.as_str()).collect()
}

/// A running agent with its stderr collected.
struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(settings: &Path, nut_dir: &Path, socket: &Path) -> Agent {
        Agent::start_args(settings, nut_dir, socket, &[])
    }

    /// [`Agent::start`] with more arguments to `run`.
    fn start_args(settings: &Path, nut_dir: &Path, socket: &Path, extra: &[&str]) -> Agent {
        let mut child = Command::new(BIN)
            .args(["run", "-v", "--settings"])
            .arg(settings)
            .arg("--nut-dir")
            .arg(nut_dir)
            .arg("--control-socket")
            .arg(socket)
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
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
        let a = Agent { child, lines };
        a.wait_for(|l| l.contains("info: ready;"), Duration::from_secs(15));
        a
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool, within: Duration) {
        let t = Instant::now();
        while !self.lines.lock().unwrap().iter().any(|l| pred(l)) {
            assert!(
                t.elapsed() < within,
                "not within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    dir: PathBuf,
    settings: PathBuf,
    socket: PathBuf,
    nut: Nut,
}

impl Setup {
    /// NUT with one dummy-ups UPS on line power, and settings with it and the channels.
    fn new(name: &str, receiver_port: u16, flap_window: u32) -> Setup {
        let hook = format!("http://127.0.0.1:{receiver_port}/hook");
        let topic = format!("http://127.0.0.1:{receiver_port}/ups-topic");
        let fw = format!("flap_window={flap_window}");
        Setup::with(
            name,
            &[
                (
                    &[
                        "notify",
                        "add",
                        "hook",
                        "webhook",
                        &hook,
                        "--password-stdin",
                    ][..],
                    Some(KEY),
                ),
                (
                    &[
                        "notify",
                        "add",
                        "phone",
                        "ntfy",
                        &topic,
                        "min_severity=info",
                    ],
                    None,
                ),
                (&["notify", "set", &fw], None),
            ],
        )
    }

    /// NUT with one dummy-ups UPS on line power, and settings made by these commands (each
    /// with its standard input).
    fn with(name: &str, commands: &[(&[&str], Option<&str>)]) -> Setup {
        let mut nut = Nut::new(
            &format!("notify-{name}"),
            &[("ups1", "ups1.dev", "ups.status: OL\nbattery.charge: 100\n")],
            USERS,
            "",
        );
        nut.start_driver("ups1");
        nut.start_upsd();
        nut.wait_ready("ups1");
        let dir = std::env::temp_dir().join(format!("ps-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let settings = dir.join("settings.bin");
        let s = settings.to_str().unwrap();
        let port = format!("upsd_port={}", nut.port);
        let ok = |o: Output| assert!(o.status.success(), "{o:?}");
        ok(bin(
            &[
                "settings",
                "set",
                "--settings",
                s,
                "--ups",
                "ups1",
                "upsd_host=127.0.0.1",
                &port,
                "poll_interval=1",
                "nut_retry_count=3",
                "nut_retry_delay=1",
            ],
            None,
        ));
        ok(bin(
            &["settings", "set", "--settings", s, "web_listen="],
            None,
        ));
        for (args, stdin) in commands {
            let mut a = args.to_vec();
            a.extend(["--settings", s]);
            ok(bin(&a, stdin.map(|k| format!("{k}\n")).as_deref()));
        }
        Setup {
            socket: dir.join("control.sock"),
            dir,
            settings,
            nut,
        }
    }

    fn agent(&self) -> Agent {
        Agent::start(&self.settings, &self.nut.dir, &self.socket)
    }

    fn status(&self, status: &str) {
        std::fs::write(
            self.nut.dir.join("ups1.dev"),
            format!("ups.status: {status}\nbattery.charge: 90\n"),
        )
        .unwrap();
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn notify_an_outage_of_the_receiver_then_a_sigkill_lose_nothing_and_repeat_nothing() {
    let mut rx = Receiver::new(false);
    let setup = Setup::new("outage", rx.port, 0);
    let list = bin(
        &[
            "notify",
            "list",
            "--settings",
            setup.settings.to_str().unwrap(),
        ],
        None,
    );
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.contains("hook webhook") && list.contains("secret=********"),
        "{list}"
    );
    assert!(!list.contains(KEY), "{list}");

    // The receiver is down for 30 s while the UPS goes OL -> OB -> OL.
    let down = Instant::now();
    let agent = setup.agent();
    agent.wait_for(|l| l.contains("ups1: status OL"), Duration::from_secs(10));
    setup.status("OB");
    agent.wait_for(|l| l.contains("ups1: on battery"), Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    setup.status("OL");
    agent.wait_for(|l| l.contains("(OB cleared)"), Duration::from_secs(10));
    agent.wait_for(
        |l| l.contains("channel hook: cannot reach the receiver"),
        Duration::from_secs(10),
    );
    assert!(!agent.log().contains(KEY), "the secret is never logged");
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    rx.up();
    // Both events on both channels, once each, in order (the back-off reaches 32 s at most
    // before the next attempt).
    let got = rx.wait(Duration::from_secs(45), |g| {
        webhook_events(g).len() >= 2 && ntfy_events(g).len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let got = if rx.got().len() > got.len() {
        rx.got()
    } else {
        got
    };
    let hook = webhook_events(&got);
    assert_eq!(kinds(&hook), ["on_battery", "on_line"], "{got:#?}");
    assert_ne!(hook[0].0, hook[1].0);
    let phone = ntfy_events(&got);
    assert_eq!(phone.len(), 2, "{phone:#?}");
    assert_eq!(
        (phone[0].1.as_str(), phone[0].2.as_str()),
        ("4", "warning,on_battery")
    );
    assert_eq!(
        (phone[1].1.as_str(), phone[1].2.as_str()),
        ("3", "information_source,on_line")
    );
    assert!(
        phone[1].3.contains("ups1@127.0.0.1:") && phone[1].3.contains("back on line power after"),
        "{}",
        phone[1].3
    );
    // The same event has the same id on both channels.
    assert_eq!(phone[0].0, hook[0].0);

    // Now the receiver goes down again; an event is queued; the agent is killed before it
    // is delivered, and delivers it after it starts again.
    rx.down();
    setup.status("OB");
    let t = Instant::now();
    while agent.log().matches("ups1: on battery").count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    agent.kill();
    let outbox = PathBuf::from(format!("{}.outbox", setup.settings.display()));
    assert!(outbox.exists(), "the outbox file is there");
    rx.up();
    let agent = setup.agent();
    let got = rx.wait(Duration::from_secs(20), |g| {
        webhook_events(g).len() >= 3 && ntfy_events(g).len() >= 3
    });
    std::thread::sleep(Duration::from_secs(2));
    let hook = webhook_events(&rx.got());
    assert_eq!(
        kinds(&hook),
        ["on_battery", "on_line", "on_battery"],
        "{got:#?}"
    );
    let ids: std::collections::BTreeSet<&String> = hook.iter().map(|(i, _)| i).collect();
    assert_eq!(ids.len(), 3, "each event once: {hook:?}");
    assert_eq!(ntfy_events(&rx.got()).len(), 3);
    assert!(
        agent.log().contains("event(s) in the outbox from before"),
        "{}",
        agent.log()
    );
    agent.kill();
}

#[test]
fn notify_a_hanging_receiver_is_bounded_and_monitoring_goes_on() {
    let mut rx = Receiver::new(true);
    rx.up();
    let setup = Setup::new("hang", rx.port, 0);
    let agent = setup.agent();
    agent.wait_for(|l| l.contains("ups1: status OL"), Duration::from_secs(10));
    setup.status("OB");
    agent.wait_for(|l| l.contains("ups1: on battery"), Duration::from_secs(10));
    // The receiver has the request and never answers; the agent still sees each change.
    rx.wait(Duration::from_secs(10), |g| !g.is_empty());
    setup.status("OL");
    agent.wait_for(|l| l.contains("(OB cleared)"), Duration::from_secs(5));
    setup.status("OB");
    let t = Instant::now();
    while agent.log().matches("ups1: on battery").count() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "monitoring stalled: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The exchange is bounded: the agent gives up on it and says so.
    agent.wait_for(
        |l| l.contains("did not answer within 20 s"),
        Duration::from_secs(30),
    );
    agent.kill();
}

#[test]
fn notify_test_reports_what_the_receiver_answered() {
    let mut rx = Receiver::new(false);
    let setup = Setup::new("test", rx.port, 10);
    let s = setup.settings.to_str().unwrap();
    let out = bin(&["notify", "test", "hook", "--settings", s], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("channel hook: cannot reach the receiver"),
        "{err}"
    );
    rx.up();
    for ch in ["hook", "phone"] {
        let out = bin(&["notify", "test", ch, "--settings", s], None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            text.trim(),
            format!("channel {ch}: delivered; the receiver answered: HTTP 200 OK: accepted")
        );
    }
    let got = rx.got();
    assert_eq!(
        webhook_events(&got)
            .iter()
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>(),
        ["test"]
    );
    assert_eq!(ntfy_events(&got).len(), 1);
    let out = bin(&["notify", "test", "nope", "--settings", s], None);
    assert_eq!(out.status.code(), Some(3));
    let out = bin(
        &[
            "notify",
            "add",
            "x",
            "webhook",
            "http://h/",
            "secret=abc",
            "--settings",
            s,
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("never taken from the command line"));
}

#[test]
fn notify_a_bit_flipped_or_truncated_outbox_is_said_and_its_intact_events_delivered() {
    use power_snitch::notify::event::{Event, Kind, Severity};
    use power_snitch::notify::outbox::{decode, encode, Decoded, Queued};
    let mut rx = Receiver::new(false);
    rx.up();
    let setup = Setup::new("flip", rx.port, 0);
    let d = Decoded {
        next_seq: 4,
        epoch_ms: 0xabc,
        dropped: 0,
        cursors: vec![("hook".into(), 0), ("phone".into(), 0)],
        events: (1..=3)
            .map(|n| Queued {
                seq: n,
                id: format!("ps-abc-{n}"),
                event: Event::new(
                    Kind::OnBattery,
                    Severity::Warning,
                    "ups1",
                    format!("old event {n}"),
                    1,
                ),
            })
            .collect(),
        problems: Vec::new(),
    };
    let mut bytes = encode(&d);
    // Flip one bit inside the second event's text.
    let at = bytes.windows(11).position(|w| w == b"old event 2").unwrap();
    bytes[at + 4] ^= 0x01;
    assert_eq!(decode(&bytes).events.len(), 2);
    let outbox = PathBuf::from(format!("{}.outbox", setup.settings.display()));
    std::fs::write(&outbox, &bytes).unwrap();
    let agent = setup.agent();
    agent.wait_for(
        |l| l.contains("are damaged") && l.contains("outbox"),
        Duration::from_secs(5),
    );
    let got = rx.wait(Duration::from_secs(10), |g| webhook_events(g).len() >= 2);
    let ids: Vec<String> = webhook_events(&got).into_iter().map(|(i, _)| i).collect();
    assert_eq!(ids, ["ps-abc-1", "ps-abc-3"]);
    agent.kill();
    // A truncated file: the whole records before the cut.
    let whole = encode(&d);
    let d2 = decode(&whole[..whole.len() - 4]);
    assert_eq!(d2.events.len(), 2);
    assert!(d2.problems[0].contains("cut or damaged"));
    // The agent on a file cut short (a power cut mid-write): said, no crash, the whole events
    // before the cut delivered (again, with the same ids: the receiver drops duplicates).
    std::fs::write(&outbox, &whole[..whole.len() - 4]).unwrap();
    let n = webhook_events(&rx.got()).len();
    let agent = setup.agent();
    agent.wait_for(
        |l| l.contains("outbox") && l.contains("cut or damaged"),
        Duration::from_secs(5),
    );
    let got = rx.wait(Duration::from_secs(10), |g| {
        webhook_events(g).len() >= n + 2
    });
    let ids: Vec<String> = webhook_events(&got)[n..]
        .iter()
        .map(|(i, _)| i.clone())
        .collect();
    assert_eq!(ids, ["ps-abc-1", "ps-abc-2"]);
    agent.kill();
}

/// A mosquitto broker on a free port, with one user.
struct Broker {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Broker {
    fn start(name: &str) -> Broker {
        let dir = std::env::temp_dir().join(format!("ps-mqtt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("passwd");
        let out = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&pw)
            .args(["ha", "mqtt-secret"])
            .output()
            .expect("mosquitto_passwd runs");
        assert!(out.status.success(), "{out:?}");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
                pw.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "mosquitto does not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { port, child, dir }
    }

    fn sub(&self, topics: &[&str], extra: &[&str]) -> Command {
        let mut c = Command::new("mosquitto_sub");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-u",
            "ha",
            "-P",
            "mqtt-secret",
            "-v",
        ]);
        for t in topics {
            c.args(["-t", t]);
        }
        c.args(extra);
        c
    }

    /// The retained messages on `topics` now, as (topic, payload).
    fn retained(&self, topics: &[&str]) -> Vec<(String, String)> {
        let out = self
            .sub(topics, &["--retained-only", "-W", "2"])
            .output()
            .expect("mosquitto_sub runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Checks a discovery config against Home Assistant's MQTT discovery schema for sensors and
/// binary sensors: the keys it requires and the types of those we use.
fn check_discovery(topic: &str, v: &Value, state: &Value, prefix: &str) {
    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(parts.len(), 5, "{topic}");
    assert_eq!(parts[0], "homeassistant");
    assert!(["sensor", "binary_sensor"].contains(&parts[1]), "{topic}");
    assert_eq!(parts[4], "config");
    for p in &parts[2..4] {
        assert!(
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{topic}"
        );
    }
    for k in [
        "name",
        "unique_id",
        "state_topic",
        "value_template",
        "availability_topic",
    ] {
        assert!(v[k].is_string(), "{topic}: {k} missing in {v}");
    }
    assert_eq!(v["availability_topic"], format!("{prefix}/availability"));
    assert_eq!(v["payload_available"], "online");
    assert_eq!(v["payload_not_available"], "offline");
    let ids = v["device"]["identifiers"]
        .as_array()
        .expect("device.identifiers");
    assert!(!ids.is_empty() && ids.iter().all(Value::is_string));
    assert!(v["device"]["name"].is_string());
    // The template names a key the state carries.
    let t = v["value_template"].as_str().unwrap();
    let key = t
        .strip_prefix("{{ value_json.")
        .and_then(|r| r.strip_suffix(" }}"))
        .unwrap_or_else(|| panic!("{topic}: template {t}"));
    assert!(
        state.get(key).is_some(),
        "{topic}: the state has no {key}: {state}"
    );
    if parts[1] == "binary_sensor" {
        assert_eq!(v["payload_on"], "ON");
        assert_eq!(v["payload_off"], "OFF");
        assert!(["ON", "OFF"].contains(&state[key].as_str().unwrap()));
    } else if v.get("unit_of_measurement").is_some() {
        assert_eq!(v["state_class"], "measurement");
    }
    if let Some(c) = v.get("device_class") {
        let allowed: &[&str] = if parts[1] == "sensor" {
            &["battery", "duration", "power_factor", "voltage"]
        } else {
            &["battery", "problem", "power"]
        };
        assert!(
            allowed.contains(&c.as_str().unwrap()),
            "{topic}: device_class {c}"
        );
    }
}

#[test]
fn notify_mqtt_home_assistant_discovery_state_events_and_the_last_will() {
    let broker = Broker::start("ha");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let setup = Setup::with(
        "mqtt",
        &[(
            &[
                "notify",
                "add",
                "ha",
                "mqtt",
                &url,
                "user=ha",
                "to=ps-test",
                "--password-stdin",
            ][..],
            Some("mqtt-secret"),
        )],
    );
    // "send a test" reports the broker's acknowledgement.
    let out = bin(
        &[
            "notify",
            "test",
            "ha",
            "--settings",
            setup.settings.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("CONNACK 0 (connection accepted); the broker acknowledged the event on ps-test/event (PUBACK)"));

    let mut events = KillOnDrop(
        broker
            .sub(&["ps-test/event"], &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ev_out = events.0.stdout.take().unwrap();
    let ev_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = ev_lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(ev_out).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(l);
        }
    });
    std::thread::sleep(Duration::from_millis(500));

    let agent = setup.agent();
    agent.wait_for(|l| l.contains("ups1: status OL"), Duration::from_secs(10));
    let t = Instant::now();
    let retained = loop {
        let r = broker.retained(&["homeassistant/#", "ps-test/#"]);
        if r.iter()
            .filter(|(t, _)| t.starts_with("homeassistant/"))
            .count()
            >= 9
        {
            break r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no discovery: {r:?}\n{}",
            agent.log()
        );
    };
    let get = |t: &str| {
        retained
            .iter()
            .find(|(x, _)| x == t)
            .map(|(_, p)| p.clone())
    };
    assert_eq!(get("ps-test/availability").as_deref(), Some("online"));
    let state_topic = retained
        .iter()
        .find(|(t, _)| t.ends_with("/state"))
        .map(|(t, _)| t.clone())
        .expect("a retained state");
    let state: Value = serde_json::from_str(&get(&state_topic).unwrap()).unwrap();
    assert_eq!(state["status"], "OL");
    assert_eq!(state["charge"], 100);
    assert_eq!(state["on_battery"], "OFF");
    let configs: Vec<&(String, String)> = retained
        .iter()
        .filter(|(t, _)| t.starts_with("homeassistant/"))
        .collect();
    assert_eq!(configs.len(), 9, "{configs:?}");
    let mut uniques = std::collections::BTreeSet::new();
    for (t, p) in &configs {
        let v: Value = serde_json::from_str(p).unwrap_or_else(|e| panic!("{t}: {e}: {p}"));
        check_discovery(t, &v, &state, "ps-test");
        assert_eq!(v["state_topic"], state_topic.as_str());
        assert!(uniques.insert(v["unique_id"].as_str().unwrap().to_string()));
    }

    // On battery: the state changes (retained) and the event comes, with its id.
    setup.status("OB");
    let t = Instant::now();
    loop {
        let r = broker.retained(&[&state_topic]);
        if r.first()
            .is_some_and(|(_, p)| p.contains(r#""on_battery":"ON""#))
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{r:?}");
    }
    let t = Instant::now();
    while !ev_lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("on_battery"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            ev_lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = ev_lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("on_battery"))
        .unwrap()
        .clone();
    let v: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("ps-"));
    assert!(!agent.log().contains("mqtt-secret"));

    // Killed, the agent's last will says offline (retained).
    agent.kill();
    let t = Instant::now();
    loop {
        let r = broker.retained(&["ps-test/availability"]);
        if r.first().is_some_and(|(_, p)| p == "offline") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{r:?}");
    }
    drop(events);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// aiosmtpd with STARTTLS required and AUTH (user `ups`), its own self-signed certificate;
/// each message it takes is a JSON line in `out`.
const SMTPD: &str = r#"
import asyncio, json, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                "data": envelope.content.decode(), "tls": session.ssl is not None,
                "authenticated": session.authenticated}) + "\n")
        return "250 2.0.0 stored"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"ups" and data.password == b"mail-secret"
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
    require_starttls=True, authenticator=auth, auth_require_tls=True, auth_required=True)
c.start()
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

#[test]
fn notify_email_over_starttls_with_auth_to_aiosmtpd() {
    let dir = std::env::temp_dir().join(format!("ps-smtp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, out) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("mail.jsonl"),
    );
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{o:?}");
    let port = free_port();
    let mut smtpd = KillOnDrop(
        Command::new("/usr/bin/python3")
            .args(["-c", SMTPD, &port.to_string()])
            .args([&cert, &key, &out])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs"),
    );
    let mut ready = String::new();
    BufReader::new(smtpd.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(
        ready.trim(),
        "ready",
        "aiosmtpd (apt install python3-aiosmtpd)"
    );

    let url = format!("smtp://127.0.0.1:{port}");
    let ca = format!("ca_file={}", cert.display());
    let setup = Setup::with(
        "smtp",
        &[(
            &[
                "notify",
                "add",
                "mail",
                "smtp",
                &url,
                "user=ups",
                &ca,
                "from=ups@example.org",
                "to=admin@example.org,ops@example.org",
                "--password-stdin",
            ][..],
            Some("mail-secret"),
        )],
    );
    let s = setup.settings.to_str().unwrap();
    let o = bin(&["notify", "test", "mail", "--settings", s], None);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("the receiver answered: 250 2.0.0 stored"),
        "{o:?}"
    );
    // Through the agent: on battery arrives as a message.
    let agent = setup.agent();
    agent.wait_for(|l| l.contains("ups1: status OL"), Duration::from_secs(10));
    setup.status("OB");
    let t = Instant::now();
    let mails = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let mails: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if mails.len() >= 2 {
            break mails;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{mails:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for m in &mails {
        assert_eq!(m["tls"], true);
        assert_eq!(m["authenticated"], true);
        assert_eq!(m["from"], "ups@example.org");
        assert_eq!(
            m["to"],
            serde_json::json!(["admin@example.org", "ops@example.org"])
        );
    }
    let data = mails[1]["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [warning]") && data.contains("on battery"),
        "{data}"
    );
    assert!(data.contains("X-Power-Snitch-Id: ps-"), "{data}");
    // A wrong password: the server's refusal, said.
    let o = bin(
        &[
            "notify",
            "add",
            "mail",
            "smtp",
            &url,
            "user=ups",
            &ca,
            "from=a@b",
            "to=c@d",
            "--password-stdin",
            "--settings",
            s,
        ],
        Some("wrong\n"),
    );
    assert!(o.status.success());
    let o = bin(&["notify", "test", "mail", "--settings", s], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the receiver refused: SMTP AUTH"),
        "{o:?}"
    );
    agent.kill();
    drop(smtpd);
    let _ = std::fs::remove_dir_all(&dir);
}

const ADMIN: &str = "webadmin-pass";

/// Logs in on the page; the session's cookie.
#[cfg(feature = "web")]
fn page_login(port: u16) -> String {
    let r = common::http::post(
        port,
        "/login",
        None,
        &format!("password={}&next=%2Fnotify", common::http::enc(ADMIN)),
    );
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/notify"));
    r.cookie("ps_session").unwrap()
}

#[cfg(feature = "web")]
#[test]
fn notify_page_adds_tests_changes_and_removes_a_channel_and_never_shows_its_secret() {
    use common::http::{enc, get, post};
    let mut rx = Receiver::new(false);
    let (nut, agent) = common::web::served_agent("notify-page", USERS_ADMIN, ADMIN);
    let port = agent.port;
    let cookie = page_login(port);
    let c = Some(cookie.as_str());
    let mut bodies = Vec::new();
    let mut keep = |r: common::http::Reply| {
        bodies.push(format!("{r:?}"));
        r
    };

    // The Setup page links to it; without a session it asks for one.
    let setup = keep(get(port, "/setup", c));
    assert!(setup.body.contains("href=\"/notify\""), "{}", setup.body);
    let r = get(port, "/notify", None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2Fnotify"));

    let page = keep(get(port, "/notify", c));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("No channel yet"), "{}", page.body);
    let (csrf, version) = (page.csrf().unwrap(), page.hidden("version").unwrap());
    let hook = format!("http://127.0.0.1:{}/hook", rx.port);
    let form = |version: &str, original: &str, secret: &str, more: &str| {
        format!(
            "csrf={csrf}&version={version}&original={original}&name=hook&kind=webhook&url={}&min_severity=info&secret={}{more}",
            enc(&hook),
            enc(secret)
        )
    };
    // Without the CSRF token, nothing is saved.
    let r = keep(post(
        port,
        "/notify",
        c,
        &form(&version, "", KEY, "").replace(&format!("csrf={csrf}"), "csrf=nope"),
    ));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(agent.settings().notify.channels.is_empty());
    // A bad URL is said, at its field's value, nothing saved.
    let r = keep(post(
        port,
        "/notify",
        c,
        &form(&version, "", KEY, "").replace("kind=webhook", "kind=mqtt"),
    ));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("a mqtt URL starts with mqtt://"),
        "{}",
        r.body
    );
    assert!(agent.settings().notify.channels.is_empty());

    let r = keep(post(port, "/notify", c, &form(&version, "", KEY, "")));
    assert_eq!(r.status, 303, "{}", r.body);
    let st = agent.settings();
    assert_eq!(st.notify.channels.len(), 1);
    assert_eq!(
        st.notify.channels[0].secret.as_ref().map(|s| s.0.as_str()),
        Some(KEY)
    );

    // The list says a secret is set, never which.
    let page = keep(get(port, "/notify", c));
    assert!(
        page.body.contains("<td>set</td>") && page.body.contains(&hook),
        "{}",
        page.body
    );
    let version = page.hidden("version").unwrap();

    // "Send a test" with the receiver down says so; up, it says what the receiver answered,
    // and the receiver got a signed test event.
    let r = keep(post(
        port,
        "/notify/test",
        c,
        &format!("csrf={csrf}&name=hook"),
    ));
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.body
            .contains("channel hook: not delivered: cannot reach the receiver"),
        "{}",
        r.body
    );
    rx.up();
    let r = keep(post(
        port,
        "/notify/test",
        c,
        &format!("csrf={csrf}&name=hook"),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("channel hook: delivered; the receiver answered: HTTP 200 OK: accepted"),
        "{}",
        r.body
    );
    assert_eq!(kinds(&webhook_events(&rx.got())), ["test"]);

    // The agent took the channel from the settings by itself: a real event reaches it.
    std::fs::write(
        nut.dir.join("ups1.dev"),
        "ups.status: OB\nbattery.charge: 80\n",
    )
    .unwrap();
    rx.wait(Duration::from_secs(20), |g| {
        kinds(&webhook_events(g)).contains(&"on_battery")
    });

    // A change with the secret field empty keeps the stored secret.
    let r = keep(post(
        port,
        "/notify",
        c,
        &form(&version, "hook", "", "").replace("min_severity=info", "min_severity=critical"),
    ));
    assert_eq!(r.status, 303, "{}", r.body);
    let ch = agent.settings().notify.channels[0].clone();
    assert_eq!(
        (
            ch.min_severity.as_str(),
            ch.secret.as_ref().map(|s| s.0.as_str())
        ),
        ("critical", Some(KEY))
    );
    // The form loaded before that change is stale: refused, nothing saved.
    let r = keep(post(
        port,
        "/notify",
        c,
        &form(&version, "hook", "", "&secret_clear=on"),
    ));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("nothing was saved"), "{}", r.body);
    assert!(agent.settings().notify.channels[0].secret.is_some());
    let r = keep(post(
        port,
        "/notify/flap",
        c,
        &format!("csrf={csrf}&version={version}&flap_window=7"),
    ));
    assert_eq!(r.status, 409);
    let r = keep(post(
        port,
        "/notify/remove",
        c,
        &format!("csrf={csrf}&version={version}&name=hook"),
    ));
    assert_eq!(r.status, 409);
    assert_eq!(agent.settings().notify.channels.len(), 1);

    // A fresh form: the checkbox clears the secret; the flapping guard; the removal.
    let edit = keep(get(port, "/notify?channel=hook", c));
    assert!(
        edit.body.contains("secret_clear") && edit.body.contains("Change channel hook"),
        "{}",
        edit.body
    );
    let version = edit.hidden("version").unwrap();
    let r = keep(post(
        port,
        "/notify",
        c,
        &form(&version, "hook", "", "&secret_clear=on"),
    ));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(agent.settings().notify.channels[0].secret, None);
    let version = keep(get(port, "/notify", c)).hidden("version").unwrap();
    let r = keep(post(
        port,
        "/notify/flap",
        c,
        &format!("csrf={csrf}&version={version}&flap_window=3601"),
    ));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("flap_window"), "{}", r.body);
    let r = keep(post(
        port,
        "/notify/flap",
        c,
        &format!("csrf={csrf}&version={version}&flap_window=7"),
    ));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(agent.settings().notify.flap_window, 7);
    let version = keep(get(port, "/notify", c)).hidden("version").unwrap();
    let r = keep(post(
        port,
        "/notify/remove",
        c,
        &format!("csrf={csrf}&version={version}&name=hook"),
    ));
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(agent.settings().notify.channels.is_empty());
    let r = keep(post(
        port,
        "/notify/test",
        c,
        &format!("csrf={csrf}&name=hook"),
    ));
    assert_eq!(r.status, 422);

    for b in &bodies {
        assert!(!b.contains(KEY), "a response has the secret: {b}");
    }
    assert!(!agent.log().contains(KEY), "the secret is never logged");
}

/// The webhook's events as (kind, text), the HMAC checked.
fn webhook_texts(got: &[Got]) -> Vec<(String, String)> {
    let _ = webhook_events(got);
    got.iter()
        .filter(|g| g.path == "/hook")
        .map(|g| {
            let v: Value = serde_json::from_str(&g.body).unwrap();
            (
                v["kind"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn notify_a_ups_unplugged_a_new_ups_and_a_new_error_in_nuts_files_reach_the_receiver() {
    let mut rx = Receiver::new(false);
    rx.up();
    let dir = std::env::temp_dir().join(format!("ps-notify-{}-hw", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let nut_dir = dir.join("nut");
    std::fs::create_dir_all(&nut_dir).unwrap();
    let conf = "[apc]\n\tdriver = usbhid-ups\n\tport = auto\n\tvendorid = 051d\n";
    std::fs::write(nut_dir.join("ups.conf"), conf).unwrap();
    std::fs::write(nut_dir.join("nut.conf"), "MODE=standalone\n").unwrap();
    // The probe root is a link to a captured sysfs tree: pointing it at another tree is
    // unplugging one UPS and plugging in another.
    let root = dir.join("sys");
    let plug = |tree: &str| {
        let _ = std::fs::remove_file(&root);
        std::os::unix::fs::symlink(
            common::fixtures_dir().join(format!("usb/{tree}/sys")),
            &root,
        )
        .unwrap();
    };
    plug("apc-hid");
    let settings = dir.join("settings.bin");
    let s = settings.to_str().unwrap();
    let hook = format!("http://127.0.0.1:{}/hook", rx.port);
    for (args, stdin) in [
        (vec!["settings", "set", "web_listen="], None),
        (
            vec![
                "notify",
                "add",
                "hook",
                "webhook",
                &hook,
                "--password-stdin",
            ],
            Some("webhook-signing-key\n"),
        ),
        (vec!["notify", "set", "flap_window=0"], None),
    ] {
        let mut a = args.clone();
        a.extend(["--settings", s]);
        let o = bin(&a, stdin);
        assert!(o.status.success(), "{o:?}");
    }
    let socket = dir.join("control.sock");
    let root_arg = root.to_str().unwrap().to_string();
    let extra = ["--nut-version", "2.8.0", "--sysfs-root", &root_arg];
    let agent = Agent::start_args(&settings, &nut_dir, &socket, &extra);
    let udev = |action: &str| {
        let mut a = vec!["udev-check", action];
        a.extend(extra);
        a.extend([
            "--nut-dir",
            nut_dir.to_str().unwrap(),
            "--control-socket",
            socket.to_str().unwrap(),
        ]);
        let o = bin(&a, None);
        let log = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(log.contains("the agent re-checked"), "{log}");
    };
    // The first check tells nothing (nothing changed yet).
    std::thread::sleep(Duration::from_secs(1));
    assert!(webhook_texts(&rx.got()).is_empty(), "{:?}", rx.got());

    // The configured APC is unplugged.
    plug("keyboard");
    udev("remove:3-1:051d:0002");
    let got = rx.wait(Duration::from_secs(10), |g| !webhook_texts(g).is_empty());
    let ev = webhook_texts(&got);
    assert_eq!(ev[0].0, "unplugged", "{ev:?}");
    assert!(
        ev[0].1.contains("a configured UPS is unplugged: [apc]") && ev[0].1.contains("ups.conf:1"),
        "{ev:?}"
    );

    // A new UPS (a CyberPower, which [apc] does not select) is plugged in.
    let n = ev.len();
    plug("cyberpower-hid");
    udev("add:3-1:0764:0501");
    let got = rx.wait(Duration::from_secs(10), |g| {
        webhook_texts(g).iter().any(|(k, _)| k == "new_ups")
    });
    let ev = webhook_texts(&got);
    let new: Vec<&(String, String)> = ev[n..].iter().filter(|(k, _)| k == "new_ups").collect();
    assert_eq!(new.len(), 1, "{ev:?}");
    assert!(
        new[0].1.contains("a new UPS is connected") && new[0].1.contains("0764:0501"),
        "{ev:?}"
    );

    // A new error in ups.conf (a section without a driver): the agent sees the edit itself.
    let n = ev.len();
    std::fs::write(
        nut_dir.join("ups.conf"),
        format!("{conf}[broken]\n\tport = auto\n"),
    )
    .unwrap();
    let got = rx.wait(Duration::from_secs(10), |g| {
        webhook_texts(g)[n..].iter().any(|(k, _)| k == "finding")
    });
    let ev = webhook_texts(&got);
    let f = ev[n..].iter().find(|(k, _)| k == "finding").unwrap();
    assert!(
        f.1.contains("new error in NUT's files (ups.conf:"),
        "{ev:?}"
    );
    assert!(f.1.contains("[broken]") || f.1.contains("driver"), "{ev:?}");
    // Each told once: nothing comes again on the next recheck.
    udev("add:3-1:0764:0501");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        webhook_texts(&rx.got()).len(),
        ev.len(),
        "{:?}",
        webhook_texts(&rx.got())
    );
    agent.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
