//! The history and the fleet tools against real programs: the agent's history survives a
//! SIGKILL (saved every interval) and a SIGTERM (saved on stop), a damaged file is set aside
//! with a clear line; the Prometheus rules pass `promtool check rules` and `promtool test
//! rules` (the committed tests, and a walk OL → OB → OB LB → OL recorded from a real agent);
//! a real Prometheus scrapes the agent every second and the on-battery alert fires and
//! resolves; the Grafana dashboard parses and names only metrics the agent serves.

#![cfg(feature = "web")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::get;
use common::nut::Nut;
use common::web::{bin, BIN};
use serde_json::Value;

const USERS: &str = "[mon]\n\tpassword = monpass\n\tupsmon secondary\n";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port below 32768 free now on 127.0.0.1 (the ephemeral range stays for the kernel).
fn low_port() -> u16 {
    let start = 20_000 + (std::process::id() % 5000) as u16 * 2;
    (start..32_000)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 32768")
}

/// The agent with its page, on settings in `dir` (kept between runs).
struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Agent {
    fn settings(dir: &Path, nut: &Nut, port: u16, port_file: &str) {
        let s = dir.join("settings.bin");
        let out = bin(
            &[
                "settings",
                "set",
                "--settings",
                s.to_str().unwrap(),
                "--ups",
                "ups1",
                &format!("web_listen=127.0.0.1:{port}"),
                "upsd_host=127.0.0.1",
                &format!("upsd_port={}", nut.port),
                "poll_interval=1",
                "nut_driver=dummy-ups",
                &format!("nut_port={port_file}"),
            ],
            "",
        );
        assert!(out.status.success(), "{out:?}");
    }

    fn start(dir: &Path, nut_dir: &Path, port: u16, extra: &[&str]) -> Agent {
        let mut child = Command::new(BIN)
            .args(["run", "-v", "--settings"])
            .arg(dir.join("settings.bin"))
            .arg("--nut-dir")
            .arg(nut_dir)
            .arg("--control-socket")
            .arg(dir.join("control.sock"))
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
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
        let a = Agent { child, lines, port };
        a.wait_for(|l| l.contains("info: ready;"));
        a
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such line; the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn history(&self) -> Value {
        let r = get(self.port, "/api/history?range=24h", None);
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    fn signal(&mut self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        if sig == "-TERM" {
            assert!(status.success(), "{status:?}\n{}", self.log());
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one-minute buckets with a charge: (start time, average).
fn charges(h: &Value) -> Vec<(u64, f64)> {
    let day = &h["ups"][0]["24h"];
    let (start, step) = (
        day["start"].as_u64().unwrap(),
        day["step"].as_u64().unwrap(),
    );
    day["battery.charge"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((start + i as u64 * step, v.get(1)?.as_f64()?)))
        .collect()
}

/// The history's events about ups1 whose text contains `what`.
fn events(h: &Value, what: &str) -> Vec<u64> {
    h["ups"][0]["events"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|e| e["text"].as_str().unwrap().contains(what))
                .map(|e| e["time"].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn history_survives_sigkill_and_sigterm_and_a_damaged_file_is_set_aside() {
    let dev = "ups.status: OL\nbattery.charge: 87\nbattery.runtime: 1500\nups.load: 23\ninput.voltage: 230.5\n";
    let mut nut = Nut::new("history-restart", &[("ups1", "ups1.dev", dev)], USERS, "");
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    let dir = std::env::temp_dir().join(format!("ps-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = low_port();
    Agent::settings(&dir, &nut, port, "ups1.dev");
    let file = dir.join("history.bin");

    // A saves every second; it is killed without a chance to save on stop.
    let mut a = Agent::start(&dir, &nut.dir, port, &["--history-every", "1"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let before = loop {
        let c = charges(&a.history());
        if !c.is_empty() && file.exists() {
            break c;
        }
        assert!(Instant::now() < deadline, "no history; log:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(before.last().unwrap().1, 87.0);
    // One more save after the first reading, then SIGKILL.
    let saved = std::fs::metadata(&file).unwrap().modified().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&file).unwrap().modified().unwrap() == saved {
        assert!(
            Instant::now() < deadline,
            "saved only once; log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started_a = events(&a.history(), "monitoring through upsd");
    assert_eq!(started_a.len(), 1, "{}", a.history());
    a.signal("-KILL");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Without upsd, B can add nothing: what it shows is what A saved.
    nut.stop_upsd();
    let mut b = Agent::start(&dir, &nut.dir, port, &[]);
    let h = b.history();
    let after = charges(&h);
    assert!(
        before.iter().all(|x| after.contains(x)),
        "before the kill: {before:?}\nafter: {after:?}"
    );
    assert_eq!(events(&h, "monitoring through upsd").len(), 2, "{h}");
    assert!(!b.log().contains("history:"), "{}", b.log());
    // B runs shorter than its save interval (10 minutes): SIGTERM saves.
    b.signal("-TERM");

    let mut c = Agent::start(&dir, &nut.dir, port, &[]);
    let h = c.history();
    assert_eq!(events(&h, "monitoring through upsd").len(), 3, "{h}");
    assert_eq!(events(&h, "monitoring through upsd")[0], started_a[0]);
    c.signal("-KILL");

    // A damaged file: a clear line, an empty history, the agent runs, the file kept aside.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let mut d = Agent::start(&dir, &nut.dir, port, &[]);
    let line = d.wait_for(|l| l.contains("history: "));
    assert!(
        line.contains("history.bin: the checksum does not match: the file is damaged; starting with an empty history (the file is kept as")
            && line.contains("history.bin.damaged)"),
        "{line}"
    );
    assert!(dir.join("history.bin.damaged").exists());
    assert_eq!(events(&d.history(), "monitoring through upsd").len(), 1);
    assert!(charges(&d.history()).is_empty());
    let bad = get(port, "/api/history?range=1y", None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body, r#"{"error":"range is 24h or 7d"}"#);
    let week = get(port, "/api/history?range=7d&ups=ups1", None);
    let week: Value = serde_json::from_str(&week.body).unwrap();
    assert_eq!(week["ups"][0]["7d"]["step"], 600);
    assert!(week["ups"][0].get("24h").is_none());
    let status = get(port, "/", None);
    assert_eq!(status.status, 200);
    assert!(status.body.contains("id=\"history\""), "{}", status.body);
    d.signal("-TERM");
    let _ = std::fs::remove_dir_all(&dir);
}

fn promtool(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("promtool (Debian's prometheus package) runs")
}

#[test]
fn prometheus_rules_pass_promtool_check_and_their_tests() {
    let systemd = repo().join("systemd");
    let out = promtool(&["check", "rules", "power-snitch.rules.yml"], &systemd);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 8 rules found"));
    let out = promtool(&["test", "rules", "power-snitch.rules.test.yml"], &systemd);
    assert!(out.status.success(), "{out:?}");
}

/// Every metric name a PromQL expression names (not functions, labels, keywords).
fn names_in(expr: &str) -> Vec<String> {
    // Label matchers and strings are not names: drop what is inside `{}` and quotes.
    let mut cleaned = String::new();
    let (mut depth, mut quoted) = (0, false);
    for c in expr.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth -= 1,
            _ if quoted || depth > 0 => {}
            c => cleaned.push(c),
        }
        if c == '{' || c == '}' {
            cleaned.push(' ');
        }
    }
    cleaned
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            w.starts_with("network_ups_tools_") || w.starts_with("power_snitch_") || *w == "up"
        })
        .map(String::from)
        .collect()
}

/// Every `expr` in a Grafana dashboard.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

/// One scrape: `series{labels}` → value, for every sample line.
fn samples(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (s, v) = l.rsplit_once(' ').unwrap();
            (s.to_string(), v.to_string())
        })
        .collect()
}

fn with_target(series: &str, instance: &str) -> String {
    let extra = format!("instance=\"{instance}\",job=\"power-snitch\"");
    match series.strip_suffix('}') {
        Some(s) => format!("{s},{extra}}}"),
        None => format!("{series}{{{extra}}}"),
    }
}

struct Prometheus {
    child: Child,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn http_json(port: u16, path: &str) -> Option<Value> {
    let raw = common::http::raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .ok()?;
    let r = common::http::parse(&raw);
    (r.status == 200).then(|| serde_json::from_str(&r.body).ok())?
}

fn on_battery_alerts(prom: u16) -> Vec<Value> {
    http_json(prom, "/api/v1/alerts")
        .and_then(|v| v["data"]["alerts"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "UpsOnBattery")
        .collect()
}

#[test]
fn prometheus_scrapes_the_agent_and_the_on_battery_alert_fires() {
    // OL for 20 s (Prometheus starts meanwhile), OB 12 s, OB LB 8 s, then OL again.
    let seq = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nups.load: 20\ninput.voltage: 230\noutput.voltage: 230\nups.mfr: Dummy\nups.model: Walk\nTIMER 20\n\
ups.status: OB DISCHRG\nbattery.charge: 60\ninput.voltage: 0\nTIMER 12\n\
ups.status: OB DISCHRG LB\nbattery.charge: 15\nTIMER 8\n\
ups.status: OL CHRG\nbattery.charge: 40\ninput.voltage: 230\nTIMER 3600\n";
    let mut nut = Nut::new("history-prom", &[("ups1", "ups1.dev", seq)], USERS, "");
    std::fs::rename(nut.dir.join("ups1.dev"), nut.dir.join("ups1.seq")).unwrap();
    let conf = std::fs::read_to_string(nut.dir.join("ups.conf")).unwrap();
    std::fs::write(
        nut.dir.join("ups.conf"),
        conf.replace("ups1.dev", "ups1.seq"),
    )
    .unwrap();
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    let dir = std::env::temp_dir().join(format!("ps-history-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = low_port();
    Agent::settings(&dir, &nut, port, "ups1.seq");
    let agent = Agent::start(&dir, &nut.dir, port, &[]);
    let instance = format!("127.0.0.1:{port}");

    // Wait for the first reading, then check the rules and the dashboard name only what the
    // agent serves.
    let deadline = Instant::now() + Duration::from_secs(15);
    let served: Vec<String> = loop {
        let body = get(port, "/metrics", None).body;
        if body.contains("network_ups_tools_battery_charge{") {
            break body
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .map(|l| l.split(' ').next().unwrap().to_string())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "no readings; log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let rules = std::fs::read_to_string(repo().join("systemd/power-snitch.rules.yml")).unwrap();
    let mut named = Vec::new();
    for l in rules.lines() {
        if let Some(e) = l.trim().strip_prefix("expr:") {
            named.extend(names_in(e));
        }
    }
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("systemd/power-snitch.grafana.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let mut dash_exprs = Vec::new();
    exprs(&dash, &mut dash_exprs);
    assert!(dash_exprs.len() >= 14, "{dash_exprs:?}");
    for e in &dash_exprs {
        let n = names_in(e);
        assert!(!n.is_empty(), "`{e}` names no metric");
        named.extend(n);
    }
    for n in &named {
        assert!(
            n == "up" || served.contains(n),
            "`{n}` is named by the rules or the dashboard but /metrics serves no such family: {served:?}"
        );
    }
    for want in [
        "network_ups_tools_ups_status",
        "power_snitch_upsd_connected",
        "power_snitch_ups_data_ok",
        "network_ups_tools_battery_charge",
    ] {
        assert!(named.iter().any(|n| n == want), "nothing uses {want}");
    }

    // A real Prometheus: scrape and evaluate every second.
    let prom_port = low_port();
    let pdir = dir.join("prometheus");
    std::fs::create_dir_all(&pdir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: power-snitch\n    static_configs:\n      - targets: ['{instance}']\n",
        repo().join("systemd/power-snitch.rules.yml").display()
    );
    std::fs::write(pdir.join("prometheus.yml"), config).unwrap();
    let prom = Prometheus {
        child: Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                pdir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                pdir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's prometheus runs"),
        dir: pdir.clone(),
    };

    // Record one scrape a second through the walk, and watch Prometheus' alerts.
    let mut recorded: Vec<Vec<(String, String)>> = Vec::new();
    let mut fired: Option<Value> = None;
    let mut quiet_before = false;
    let mut resolved = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    let flag = |s: &[(String, String)], f: &str| {
        let key = format!("network_ups_tools_ups_status{{ups=\"ups1\",flag=\"{f}\"}}");
        s.iter().any(|(k, v)| *k == key && v == "1")
    };
    loop {
        let tick = Instant::now();
        let scrape = samples(&get(port, "/metrics", None).body);
        let ob = flag(&scrape, "OB");
        let alerts = on_battery_alerts(prom_port);
        let up = http_json(prom_port, "/api/v1/query?query=up")
            .is_some_and(|v| v["data"]["result"][0]["value"][1] == "1");
        if !ob && fired.is_none() && up && alerts.is_empty() {
            quiet_before = true;
        }
        if let Some(a) = alerts.iter().find(|a| a["state"] == "firing") {
            fired.get_or_insert(a.clone());
        }
        let back = !ob && recorded.iter().any(|s| flag(s, "LB"));
        if back && fired.is_some() && alerts.is_empty() {
            resolved = true;
        }
        recorded.push(scrape);
        if resolved || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    drop(prom);
    assert!(
        quiet_before,
        "Prometheus never scraped the agent on line without an alert"
    );
    let fired = fired.expect("UpsOnBattery never fired");
    assert_eq!(fired["labels"]["ups"], "ups1");
    assert_eq!(fired["labels"]["severity"], "warning");
    assert_eq!(fired["labels"]["instance"], instance.as_str());
    assert_eq!(
        fired["annotations"]["summary"],
        format!("UPS ups1 on {instance} is on battery").as_str()
    );
    assert!(
        resolved,
        "UpsOnBattery did not resolve when the UPS was on line again"
    );

    // The recorded walk as promtool's input series: the alerts fire where the walk says.
    let first = |f: &str| recorded.iter().position(|s| flag(s, f));
    let (ob, lb) = (first("OB").unwrap(), first("LB").unwrap());
    let last = recorded.len() - 1;
    assert!(ob > 0 && lb > ob && !flag(&recorded[last], "OB"));
    let mut all: Vec<String> = Vec::new();
    for s in &recorded {
        for (k, _) in s {
            if !all.contains(k) {
                all.push(k.clone());
            }
        }
    }
    let mut yaml = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1s\ntests:\n  - interval: 1s\n    input_series:\n",
        repo().join("systemd/power-snitch.rules.yml").display()
    );
    for k in &all {
        let values: Vec<String> = recorded
            .iter()
            .map(|s| {
                s.iter()
                    .find(|(x, _)| x == k)
                    .map_or("_".to_string(), |(_, v)| v.clone())
            })
            .collect();
        yaml.push_str(&format!(
            "      - series: '{}'\n        values: '{}'\n",
            with_target(k, &instance),
            values.join(" ")
        ));
    }
    let ob_alert = format!(
        "          - exp_labels: {{severity: warning, ups: ups1, flag: OB, instance: \"{instance}\", job: power-snitch}}\n            exp_annotations:\n              summary: \"UPS ups1 on {instance} is on battery\"\n              description: \"Utility power is gone; the UPS runs on its battery (charge and runtime on the appliance's status page).\"\n"
    );
    let lb_alert = format!(
        "          - exp_labels: {{severity: critical, ups: ups1, flag: LB, instance: \"{instance}\", job: power-snitch}}\n            exp_annotations:\n              summary: \"UPS ups1 on {instance} has a low battery: shutdown is near\"\n              description: \"upsmon shuts the systems it protects down when a UPS on battery reports LB.\"\n"
    );
    yaml.push_str("    alert_rule_test:\n");
    for (t, name, want) in [
        (ob - 1, "UpsOnBattery", String::new()),
        (ob, "UpsOnBattery", ob_alert.clone()),
        (lb - 1, "UpsLowBattery", String::new()),
        (lb, "UpsLowBattery", lb_alert),
        (lb, "UpsOnBattery", ob_alert),
        (last, "UpsOnBattery", String::new()),
        (last, "UpsLowBattery", String::new()),
        (last, "UpsdUnreachable", String::new()),
        (last, "UpsDriverStale", String::new()),
    ] {
        yaml.push_str(&format!(
            "      - eval_time: {t}s\n        alertname: {name}\n        exp_alerts:{}",
            if want.is_empty() {
                " []\n".to_string()
            } else {
                format!("\n{want}")
            }
        ));
    }
    let test = dir.join("walk.test.yml");
    std::fs::write(&test, &yaml).unwrap();
    let out = promtool(&["test", "rules", test.to_str().unwrap()], &dir);
    assert!(out.status.success(), "{out:?}\n{yaml}");
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}
