//! The setup page over HTTP, served by a real agent against a real upsd and dummy-ups: every
//! route, the security rules (no session, a wrong CSRF token, another site's Origin, the brake
//! on guessing, the setup code), the limits, and no password in any response.

#![cfg(feature = "web")]

mod common;

use std::time::{Duration, Instant};

use common::http::{self, enc, get, post, request, Reply};
use common::web::{bin, served_agent, served_agent_more, served_agent_with, Agent, BIN};
use serde_json::Value;

const USERS: &str =
    "[admin]\n\tpassword = adminpass\n\tactions = SET\n\tupsmon primary\n[mon]\n\tpassword = monpass\n\tupsmon secondary\n";
const ADMIN: &str = "webadmin-pass";
/// Texts no response may contain.
const SECRETS: &[&str] = &["adminpass", "monpass", ADMIN, "pbkdf2"];

/// Every reply seen, to check at the end that none carries a secret.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn keep(&mut self, r: Reply) -> Reply {
        let mut all = format!("{} ", r.status);
        for (k, v) in &r.headers {
            all.push_str(&format!("{k}: {v}\n"));
        }
        all.push_str(&r.body);
        self.0.push(all);
        r
    }

    fn assert_no_secret(&self) {
        for r in &self.0 {
            for s in SECRETS {
                assert!(!r.contains(s), "a response contains `{s}`:\n{r}");
            }
        }
    }
}

fn login(port: u16, seen: &mut Seen) -> String {
    let r = seen.keep(post(
        port,
        "/login",
        None,
        &format!("password={}&next=%2Fsetup", enc(ADMIN)),
    ));
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/setup"));
    let c = r.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(part), "{c}");
    }
    r.cookie("ps_session").unwrap()
}

fn json(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

/// Each line of the exposition is a comment or `name{labels} value`.
fn assert_prometheus_text(text: &str) {
    for l in text.lines() {
        if l.starts_with("# HELP ") || l.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
        assert!(value.parse::<f64>().is_ok(), "value of {l}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{l}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{l}"
            );
        }
    }
}

#[test]
fn web_every_route_against_a_real_upsd_and_the_security_rules() {
    let (nut, agent) = served_agent("web-routes", USERS, ADMIN);
    let s = agent.settings.to_str().unwrap().to_string();
    let port = agent.port;
    let mut seen = Seen::default();

    // Status, open to anyone by default; the agent's first poll shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let r = seen.keep(get(port, "/api/status", None));
        assert_eq!(r.status, 200);
        let v = json(&r);
        if v["ups"][0]["data"] == "ok" {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["ups"][0]["readings"]["battery.charge"], 87.0);
    assert_eq!(status["ups"][0]["readings"]["input.voltage"], 230.5);
    assert_eq!(status["ups"][0]["model"], "Rack 1500");
    let r = seen.keep(get(port, "/", None));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    for want in [
        "on line",
        "charging",
        "87 %",
        "25 min",
        "23 %",
        "230.5 V",
        "229 V",
        "connected",
        "Last events",
    ] {
        assert!(r.body.contains(want), "the status page lacks {want:?}");
    }
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let r = seen.keep(get(port, "/status/live", None));
    assert!(r.status == 200 && !r.body.contains("<html") && r.body.contains("ups1"));
    let r = seen.keep(get(port, "/api/events?n=3", None));
    let ev = json(&r);
    assert!(ev["events"].as_array().unwrap().len() <= 3);
    let r = seen.keep(get(port, "/metrics", None));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_prometheus_text(&r.body);
    for want in [
        "network_ups_tools_battery_charge{ups=\"ups1\"} 87",
        "network_ups_tools_battery_runtime{ups=\"ups1\"} 1500",
        "network_ups_tools_ups_load{ups=\"ups1\"} 23",
        "network_ups_tools_input_voltage{ups=\"ups1\"} 230.5",
        "network_ups_tools_ups_status{ups=\"ups1\",flag=\"OL\"} 1",
        "network_ups_tools_ups_status{ups=\"ups1\",flag=\"OB\"} 0",
        "network_ups_tools_ups_status{ups=\"ups1\",flag=\"CHRG\"} 1",
        "network_ups_tools_device_info{ups=\"ups1\",mfr=\"Dummy\",model=\"Rack 1500\"} 1",
        "power_snitch_upsd_connected{upsd=\"127.0.0.1:",
        "# TYPE network_ups_tools_battery_charge gauge",
    ] {
        assert!(r.body.contains(want), "metrics lack {want}:\n{}", r.body);
    }
    for (path, ty) in [
        ("/static/style.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/static/icon.svg", "image/svg+xml"),
    ] {
        let r = seen.keep(get(port, path, None));
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{path}");
    }
    let r = seen.keep(get(port, "/nope", None));
    assert_eq!(r.status, 404);
    let r = seen.keep(request(port, "DELETE", "/setup", &[], ""));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = seen.keep(request(port, "HEAD", "/", &[], ""));
    assert_eq!((r.status, r.body.as_str()), (200, ""));

    // No session: pages send to the login page, the API and every write are refused.
    let r = seen.keep(get(port, "/setup", None));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2Fsetup"));
    for p in ["/check", "/test"] {
        assert_eq!(seen.keep(get(port, p, None)).status, 303, "{p}");
    }
    for p in ["/api/settings", "/api/check"] {
        let r = seen.keep(get(port, p, None));
        assert_eq!(r.status, 401, "{p}");
        assert!(json(&r)["error"].is_string());
    }
    for p in ["/setup", "/sync", "/test", "/api/test", "/logout"] {
        let r = seen.keep(post(port, p, None, "poll_interval=9"));
        assert_eq!(r.status, 401, "POST {p}");
    }
    let r = seen.keep(get(port, "/setup", Some("0123456789abcdef")));
    assert_eq!(r.status, 303, "a made-up session");

    // Logging in.
    let r = seen.keep(get(port, "/login", None));
    assert!(r.body.contains("Admin password") && !r.body.contains("Setup code"));
    let r = seen.keep(post(port, "/login", None, "password=wrong-one"));
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong password"));
    let cookie = login(port, &mut seen);
    let c = Some(cookie.as_str());

    // The setup page: the entry, the probe's choices, the password never sent back.
    let r = seen.keep(get(port, "/setup", c));
    assert_eq!(r.status, 200);
    let csrf = r.csrf().expect("a CSRF token");
    let version = r.hidden("version").expect("the settings' version");
    for want in [
        "value=\"ups1\"",
        "value=\"dummy-ups\"",
        "placeholder=\"unchanged\"",
        "name=\"nut_password\" value=\"\"",
        "CP1500PFCLCD",
        "usbhid-ups",
        "<option value=\"auto\">",
    ] {
        assert!(r.body.contains(want), "the setup page lacks {want:?}");
    }
    let before = std::fs::read(&agent.settings).unwrap();
    // The form as the page sends it, with some fields changed.
    let form = |changed: &[(&str, &str)], csrf: &str| {
        let upsd_port = nut.port.to_string();
        let mut fields = vec![
            ("csrf", csrf),
            ("version", version.as_str()),
            ("original", "ups1"),
            ("nut_device_name", "ups1"),
            ("nut_driver", "dummy-ups"),
            ("nut_port", "ups1.dev"),
            ("nut_username", "admin"),
            ("nut_password", ""),
            ("nut_retry_count", "3"),
            ("nut_retry_delay", "5"),
            ("upsd_host", "127.0.0.1"),
            ("upsd_port", upsd_port.as_str()),
            ("poll_interval", "1"),
            ("tls", "auto"),
            ("log_level", "warn"),
            ("web_public_status", "on"),
        ];
        for (k, v) in changed {
            fields
                .iter_mut()
                .find(|f| f.0 == *k)
                .expect("a field of the form")
                .1 = v;
        }
        fields
            .iter()
            .filter(|(k, v)| *k != "csrf" || !v.is_empty())
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    // A wrong CSRF token, or another site's Origin: refused, nothing stored.
    let r = seen.keep(post(
        port,
        "/setup",
        c,
        &form(&[("poll_interval", "2")], "0000"),
    ));
    assert_eq!(r.status, 403);
    let r = seen.keep(post(
        port,
        "/setup",
        c,
        &form(&[("poll_interval", "2")], ""),
    ));
    assert_eq!(r.status, 403, "no token at all");
    let r = seen.keep(request(
        port,
        "POST",
        "/setup",
        &[
            &format!("Cookie: ps_session={cookie}"),
            "Origin: http://evil.example",
        ],
        &form(&[("poll_interval", "2")], &csrf),
    ));
    assert_eq!(r.status, 403);
    // Invalid fields: each named, nothing stored.
    let r = seen.keep(post(
        port,
        "/setup",
        c,
        &form(&[("poll_interval", "0"), ("upsd_port", "70000")], &csrf),
    ));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body
            .contains("poll_interval is a whole number from 1 to 3600, not `0`"),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("upsd_port is a whole number from 1 to 65535, not `70000`"));
    assert!(r.body.contains("aria-invalid=\"true\""));
    assert_eq!(
        std::fs::read(&agent.settings).unwrap(),
        before,
        "nothing stored"
    );
    // A valid change: stored, the UPS password kept, the agent applies it.
    let r = seen.keep(post(
        port,
        "/setup",
        c,
        &form(&[("poll_interval", "2")], &csrf),
    ));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/setup?ups=ups1&saved=1"));
    let st = agent.settings();
    assert_eq!(st.ups[0].poll_interval, 2);
    assert_eq!(st.ups[0].nut_password.as_ref().unwrap().0, "adminpass");
    agent.wait_for(|l| l.contains("poll_interval[ups1]: 1 -> 2"));
    let r = seen.keep(get(port, "/setup?ups=ups1&saved=1", c));
    assert!(r.body.contains("Saved: 1 change(s)"));
    // "Use" on a found UPS fills in its driver and port.
    let r = seen.keep(get(port, "/setup?ups=ups1&driver=usbhid-ups&port=auto", c));
    assert!(r
        .body
        .contains("id=\"nut_driver\" name=\"nut_driver\" value=\"usbhid-ups\""));

    // Settings as JSON: no secret.
    let r = seen.keep(get(port, "/api/settings", c));
    let v = json(&r);
    assert_eq!(v["ups"][0]["poll_interval"], "2");
    assert_eq!(v["ups"][0]["nut_password_set"], true);
    assert_eq!(v["web_password_set"], true);

    // Test connection: the stored credentials pass; a typed wrong password fails at the
    // credentials step, as an authentication error; nothing is stored either way.
    let r = seen.keep(get(port, "/test", c));
    assert!(r.body.contains("value=\"admin\""));
    let r = seen.keep(post(
        port,
        "/test",
        c,
        &format!("csrf={csrf}&ups=ups1&user=&password="),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("all steps passed"), "{}", r.body);
    for step in [
        "reachable",
        "protocol",
        "ups known",
        "driver connected",
        "data fresh",
        "credentials",
    ] {
        assert!(r.body.contains(&format!("data-step=\"{step}\"")), "{step}");
    }
    let r = seen.keep(post(
        port,
        "/test",
        c,
        &format!("csrf={csrf}&ups=ups1&user=admin&password=not-it"),
    ));
    assert!(
        r.body
            .contains("<li class=\"step bad\" data-step=\"credentials\">"),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("<span class=\"badge bad kind\">authentication</span>"));
    let r = seen.keep(post(
        port,
        "/test",
        c,
        &format!("csrf={csrf}&ups=ups1&user=mon&password=monpass&login=on"),
    ));
    assert!(
        r.body.contains("all steps passed"),
        "a LOGIN test: {}",
        r.body
    );
    assert_eq!(
        agent.settings().ups[0].nut_password.as_ref().unwrap().0,
        "adminpass"
    );
    let hdr = format!("X-CSRF-Token: {csrf}");
    let ck = format!("Cookie: ps_session={cookie}");
    let r = seen.keep(request(port, "POST", "/api/test", &[&ck, &hdr], "ups=ups1"));
    let v = json(&r);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 7);
    let r = seen.keep(request(port, "POST", "/api/test", &[&ck], "ups=ups1"));
    assert_eq!(r.status, 403);

    // The check and the sync: the settings name another driver than ups.conf.
    let out = bin(
        &["settings", "set", "--settings", &s, "nut_driver=usbhid-ups"],
        "",
    );
    assert!(out.status.success());
    let r = seen.keep(get(port, "/check", c));
    assert_eq!(r.status, 200, "{}", r.body);
    for want in [
        "<h2>ups.conf</h2>",
        "settings-driver",
        "nut_driver[ups1]",
        "Apply the sync",
        "CP1500PFCLCD",
    ] {
        assert!(
            r.body.contains(want),
            "the check page lacks {want:?}:\n{}",
            r.body
        );
    }
    let r = seen.keep(get(port, "/api/check", c));
    let v = json(&r);
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "settings-driver"));
    assert!(v["summary"]["errors"].is_u64());
    let r = seen.keep(post(port, "/sync", c, &format!("csrf={csrf}&expect=9")));
    assert_eq!(r.status, 409, "a stale preview is refused");
    let r = seen.keep(post(port, "/sync", c, &format!("csrf={csrf}&expect=1")));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(agent.settings().ups[0].nut_driver, "dummy-ups");
    let r = seen.keep(get(port, "/check?synced=1", c));
    assert!(r.body.contains("Synced from NUT: 1 change(s)") && r.body.contains("agree with NUT"));

    // Logging out ends the session.
    let r = seen.keep(post(port, "/logout", c, &format!("csrf={csrf}")));
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(seen.keep(get(port, "/setup", c)).status, 303);

    // Guessing is slowed down: after five wrong passwords, the next must wait.
    for _ in 0..5 {
        assert_eq!(
            seen.keep(post(port, "/login", None, "password=guess"))
                .status,
            401
        );
    }
    let r = seen.keep(post(
        port,
        "/login",
        None,
        &format!("password={}", enc(ADMIN)),
    ));
    assert_eq!(r.status, 429, "even the right password waits: {}", r.body);
    assert!(matches!(r.header("retry-after"), Some("1" | "2")), "{r:?}");
    std::thread::sleep(Duration::from_millis(2100));
    login(port, &mut seen);

    seen.assert_no_secret();
    drop(agent);
}

#[test]
fn web_first_password_by_setup_code_private_status_and_limits() {
    let nut_dir = std::env::temp_dir().join(format!("ps-web-nut-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    let agent = Agent::start(
        "first",
        &nut_dir,
        &["web_public_status=no", "upsd_port=9"],
        None,
    );
    let port = agent.port;
    let mut seen = Seen::default();
    let logged = agent.wait_for(|l| l.contains("setup code"));
    let code = logged
        .split("setup code ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(code.len(), 9, "{logged}");

    // Private status: nothing without a session.
    let r = seen.keep(get(port, "/", None));
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/login?next=%2F"))
    );
    assert_eq!(seen.keep(get(port, "/metrics", None)).status, 401);
    assert_eq!(seen.keep(get(port, "/api/status", None)).status, 401);
    // The code never reaches the event ring the pages show.
    let events = std::process::Command::new(BIN)
        .args(["events", "--format", "json", "--control-socket"])
        .arg(agent.dir.join("control.sock"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&events.stdout).contains(&code));

    // The first password: a wrong code, then the SD image's file code.
    let r = seen.keep(get(port, "/login", None));
    assert!(r.body.contains("Setup code"));
    let body = |code: &str, pw: &str, confirm: &str| {
        format!(
            "code={}&password={}&confirm={}&next=%2F",
            enc(code),
            enc(pw),
            enc(confirm)
        )
    };
    let r = seen.keep(post(
        port,
        "/login/setup",
        None,
        &body("AAAA-AAAA", ADMIN, ADMIN),
    ));
    assert_eq!(r.status, 401);
    let file = agent.dir.join("setup-code");
    std::fs::write(&file, "WXYZ-2345\n").unwrap();
    let r = seen.keep(post(
        port,
        "/login/setup",
        None,
        &body("wxyz 2345", "short", "short"),
    ));
    assert_eq!(r.status, 422, "a short password");
    let r = seen.keep(post(
        port,
        "/login/setup",
        None,
        &body("WXYZ-2345", ADMIN, "other-pass"),
    ));
    assert_eq!(r.status, 422, "passwords that differ");
    let r = seen.keep(post(
        port,
        "/login/setup",
        None,
        &body("WXYZ-2345", ADMIN, ADMIN),
    ));
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.cookie("ps_session").unwrap();
    assert!(!file.exists(), "the file's code is used up");
    assert!(agent.settings().web_password.is_some());
    let r = seen.keep(get(port, "/", Some(&cookie)));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Log out"));
    // Once set, no code works: the logged one neither.
    let r = seen.keep(post(
        port,
        "/login/setup",
        None,
        &body(&code, "another-pass", "another-pass"),
    ));
    assert_eq!(r.status, 409);

    // web-password on the device: too short is refused; a new one ends every session.
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(&["web-password", "--settings", &s], "short\n");
    assert_eq!(out.status.code(), Some(3));
    let out = bin(&["web-password", "--settings", &s], "a-new-admin-pass\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(seen.keep(get(port, "/", Some(&cookie))).status, 303);
    let r = seen.keep(post(port, "/login", None, "password=a-new-admin-pass"));
    assert_eq!(r.status, 303);

    // Limits: a huge head, a huge body, too many connections at once.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = http::parse(&http::raw(port, big.as_bytes()).unwrap_or_default());
    assert!(
        r.status == 431 || r.status == 0,
        "a 20 KB head: {}",
        r.status
    );
    let r = seen.keep(post(port, "/login", None, &"x".repeat(70_000)));
    assert_eq!(r.status, 413);
    let idle: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = http::parse(&http::raw(port, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n").unwrap());
    assert_eq!(r.status, 503);
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seen.keep(get(port, "/login", None)).status, 200);
    for s in SECRETS.iter().chain(&["a-new-admin-pass", "WXYZ"]) {
        assert!(seen.0.iter().all(|r| !r.contains(s)), "{s}");
    }
    drop(agent);
    let _ = std::fs::remove_dir_all(&nut_dir);
}

/// `n` wrong logins at once, from the loopback address `from(i)` each; their statuses.
fn parallel_wrong_logins(port: u16, n: u8, from: impl Fn(u8) -> [u8; 4]) -> Vec<u16> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let addr = from(i);
            std::thread::spawn(move || {
                http::request_from(addr, port, "POST", "/login", &[], "password=guess-it").status
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn web_a_parallel_burst_from_one_address_is_braked_like_a_serial_one_and_the_admin_gets_in() {
    let (_nut, agent) = served_agent("web-burst", USERS, ADMIN);
    let port = agent.port;
    let statuses = parallel_wrong_logins(port, 30, |_| [127, 0, 0, 2]);
    let heard = statuses.iter().filter(|s| **s == 401).count();
    // Only the free attempts are heard: the rest were braked before their hash (429), or not
    // even served beyond the connections one address may hold (503).
    assert_eq!(heard, 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)) && statuses.contains(&429),
        "{statuses:?}"
    );
    // The burst came from another address: the admin logs in at once.
    let mut seen = Seen::default();
    login(port, &mut seen);
    // Each failed login is logged with its address, rate-limited, never with what was typed.
    agent.wait_for(|l| l.contains("web: failed login from 127.0.0.2"));
    agent.wait_for(|l| l.contains("web: login from 127.0.0.1"));
    let log = agent.log();
    assert!(!log.contains("guess-it") && !log.contains(ADMIN), "{log}");
    let lines = log.lines().filter(|l| l.contains("login from")).count();
    assert!(lines <= 11, "{lines} login lines:\n{log}");
    // The brake holds for the guesser: one more is heard once its wait is over, the next
    // waits again.
    std::thread::sleep(Duration::from_millis(2100));
    let r = http::request_from([127, 0, 0, 2], port, "POST", "/login", &[], "password=x");
    assert!(matches!(r.status, 401 | 429), "{}", r.body);
    let r = http::request_from([127, 0, 0, 2], port, "POST", "/login", &[], "password=x");
    assert_eq!(r.status, 429);
    assert!(r.body.contains("from your address"), "{}", r.body);
}

#[test]
fn web_guesses_from_many_addresses_hit_the_ceiling_and_the_console_code_still_lets_the_admin_in() {
    let (_nut, agent) = served_agent("web-ceiling", USERS, ADMIN);
    let port = agent.port;
    // Wrong guesses from ever new addresses, six at once (what the page's workers take): the
    // ceiling (30) stops them, whoever sends them.
    let mut heard = 0;
    let mut all = Vec::new();
    let started = Instant::now();
    for round in 0..12u8 {
        let statuses = parallel_wrong_logins(port, 6, |i| [127, 0, 1 + round, 10 + i]);
        heard += statuses.iter().filter(|s| **s == 401).count();
        all.extend_from_slice(&statuses);
        if statuses.contains(&429) {
            break;
        }
    }
    // The ceiling gives one more attempt a minute.
    let allowed = 30 + started.elapsed().as_secs() / 60 + 1;
    assert!(heard as u64 <= allowed, "{heard} heard: {all:?}");
    assert!(all.contains(&429), "{all:?}");
    // The right password alone waits now, from any address.
    let r = post(port, "/login", None, &format!("password={}", enc(ADMIN)));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.body.contains("name=\"code\""),
        "the code is asked: {}",
        r.body
    );
    // The console's log has a code that passes the ceiling; a wrong one does not.
    let logged = agent.wait_for(|l| l.contains("reached the ceiling"));
    let code = logged
        .split("setup code ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let r = post(
        port,
        "/login",
        None,
        &format!("code=ABCD-EFGH&password={}", enc(ADMIN)),
    );
    assert_eq!(r.status, 429, "a wrong code counts under the ceiling");
    let r = post(
        port,
        "/login",
        None,
        &format!("code={}&password={}&next=%2Fsetup", enc(&code), enc(ADMIN)),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.cookie("ps_session").is_some());
    // The code never reaches the event ring the pages show.
    let events = std::process::Command::new(BIN)
        .args(["events", "--format", "json", "--control-socket"])
        .arg(agent.dir.join("control.sock"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&events.stdout).contains(&code));
}

#[test]
fn web_a_reconnecting_slowloris_from_one_address_leaves_the_page_to_others() {
    let (_nut, agent) = served_agent("web-slowloris", USERS, ADMIN);
    let port = agent.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 32 sockets from 127.0.0.3, each sending a head one byte a second, dropped at 10 s and
    // opened again (before the page's header timeout).
    let attackers: Vec<_> = (0..32)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                std::thread::sleep(Duration::from_millis(i * 30));
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let Ok(mut s) = http::connect_from([127, 0, 0, 3], port) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    let opened = Instant::now();
                    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                    while opened.elapsed() < Duration::from_secs(10)
                        && !stop.load(std::sync::atomic::Ordering::SeqCst)
                    {
                        let _ = s.write_all(b"X");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let mut served = 0;
    for _ in 0..40 {
        let r = http::parse(
            &http::raw(
                port,
                format!(
                    "GET /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap_or_default(),
        );
        if r.status == 200 {
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for a in attackers {
        a.join().unwrap();
    }
    eprintln!("legitimate requests served under the reconnecting slowloris: {served} of 40");
    assert_eq!(served, 40, "legitimate requests served");
    drop(agent);
}

#[test]
fn web_public_routes_show_ups_state_only_and_a_foreign_host_is_refused() {
    let (_nut, agent) = served_agent("web-public", USERS, ADMIN);
    let port = agent.port;
    let s = agent.settings.to_str().unwrap().to_string();
    // A settings change and a check: events the public must not see.
    let out = bin(
        &[
            "settings",
            "set",
            "--settings",
            &s,
            "--ups",
            "ups1",
            "nut_username=mon",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    agent.wait_for(|l| l.contains("nut_username[ups1]"));
    agent.wait_for(|l| l.contains("check: "));
    let r = get(port, "/api/events", None);
    assert_eq!(r.status, 200);
    let v = json(&r);
    for e in v["events"].as_array().unwrap() {
        let src = e["source"].as_str().unwrap();
        assert!(
            src == "ups1" || src.starts_with("upsd "),
            "a public event: {e}"
        );
    }
    for r in [get(port, "/", None), get(port, "/status/live", None)] {
        assert_eq!(r.status, 200);
        for hidden in [
            "nut_username",
            "`mon`",
            "<h2>NUT's files",
            "settings.bin",
            "and the settings:",
        ] {
            assert!(!r.body.contains(hidden), "{hidden} in {}", r.body);
        }
        assert!(r.body.contains("ups1"));
    }
    // The public status JSON: the UPSes and upsd, not the agent's process, files or counts.
    let v = json(&get(port, "/api/status", None));
    assert!(v["ups"].as_array().is_some_and(|u| !u.is_empty()), "{v}");
    for hidden in ["pid", "settings", "nut_dir", "findings"] {
        assert!(
            v.get(hidden).is_none(),
            "{hidden} in the public status: {v}"
        );
    }
    // A session sees every event, and the whole status.
    let mut seen = Seen::default();
    let cookie = login(port, &mut seen);
    let full = json(&get(port, "/api/status", Some(&cookie)));
    for shown in ["pid", "settings", "nut_dir", "findings"] {
        assert!(
            full.get(shown).is_some(),
            "{shown} not in the status: {full}"
        );
    }
    let v = json(&get(port, "/api/events", Some(&cookie)));
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("nut_username")));
    // DNS rebinding: another site's name for this address is refused; the page's names pass.
    let r = http::parse(
        &http::raw(
            port,
            b"GET /api/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        )
        .unwrap(),
    );
    assert_eq!(r.status, 421, "{}", r.body);
    let r = http::parse(
        &http::raw(
            port,
            format!("GET /api/status HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap(),
    );
    assert_eq!(r.status, 421);
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = http::parse(
            &http::raw(
                port,
                format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap(),
        );
        assert_eq!(r.status, 200, "{host}");
    }
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let r = http::parse(
        &http::raw(
            port,
            format!(
                "GET /api/status HTTP/1.1\r\nHost: {}.local:{port}\r\nConnection: close\r\n\r\n",
                me.trim()
            )
            .as_bytes(),
        )
        .unwrap(),
    );
    assert_eq!(r.status, 200, "NAME.local");
    // More names (a reverse proxy's, a DNS name) in `web-hosts` next to the settings.
    let by_name = |name: &str| {
        http::parse(
            &http::raw(
                port,
                format!(
                    "GET /api/status HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap(),
        )
        .status
    };
    assert_eq!(by_name("ups.example.lan"), 421);
    std::fs::write(
        agent.dir.join("web-hosts"),
        "# the rack's name\nups.example.lan\n",
    )
    .unwrap();
    assert_eq!(by_name("ups.example.lan"), 200);
    assert_eq!(by_name("evil.example"), 421);
}

#[test]
fn web_a_stale_setup_form_is_refused_and_the_command_line_change_kept() {
    let (nut, agent) = served_agent("web-stale", USERS, ADMIN);
    let port = agent.port;
    let s = agent.settings.to_str().unwrap().to_string();
    let mut seen = Seen::default();
    let cookie = login(port, &mut seen);
    let c = Some(cookie.as_str());
    let page = get(port, "/setup", c);
    let (csrf, version) = (page.csrf().unwrap(), page.hidden("version").unwrap());
    let body = |version: &str, poll: &str| {
        format!(
            "csrf={csrf}&version={version}&original=ups1&nut_device_name=ups1&nut_driver=dummy-ups&nut_port=ups1.dev&nut_username=admin&nut_password=&nut_retry_count=3&nut_retry_delay=5&upsd_host=127.0.0.1&upsd_port={}&poll_interval={poll}&tls=auto&log_level=warn&web_public_status=on",
            nut.port
        )
    };
    // The command line changes another key meanwhile.
    let out = bin(
        &[
            "settings",
            "set",
            "--settings",
            &s,
            "--ups",
            "ups1",
            "nut_retry_count=7",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let r = post(port, "/setup", c, &body(&version, "4"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("nothing was saved"), "{}", r.body);
    let st = agent.settings();
    assert_eq!((st.ups[0].nut_retry_count, st.ups[0].poll_interval), (7, 1));
    // No version at all is stale too.
    let r = post(port, "/setup", c, &body("", "4"));
    assert_eq!(r.status, 409);
    // A form loaded after the change saves, and keeps it.
    let page = get(port, "/setup", c);
    let fresh = page.hidden("version").unwrap();
    assert_ne!(fresh, version);
    let r = post(
        port,
        "/setup",
        c,
        &body(&fresh, "4").replace("nut_retry_count=3", "nut_retry_count=7"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let st = agent.settings();
    assert_eq!((st.ups[0].nut_retry_count, st.ups[0].poll_interval), (7, 4));
    seen.assert_no_secret();
}

#[test]
fn web_next_goes_only_to_the_sites_own_pages_and_a_huge_declared_body_is_refused_at_once() {
    let (_nut, agent) = served_agent("web-next", USERS, ADMIN);
    let port = agent.port;
    for (next, want) in [
        ("%2Fcheck", "/check"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2Fsetup%0D%0ASet-Cookie%3A%20x%3D1", "/"),
        ("%2Fsetup%3Fups%3Da%0D%0Ax%3Ay", "/"),
    ] {
        let r = post(
            port,
            "/login",
            None,
            &format!("password={}&next={next}", enc(ADMIN)),
        );
        assert_eq!(r.status, 303, "next={next}: {}", r.body);
        assert_eq!(r.header("location"), Some(want), "next={next}");
        assert!(r.header("x").is_none());
    }
    let r = get(port, "/login?next=%2F%09%2Fevil", None);
    assert!(r.body.contains("name=\"next\" value=\"/\""), "{}", r.body);
    // Content-Length: 10^12 is refused before any of it, not after the body timeout.
    let t = Instant::now();
    let r = http::parse(
        &http::raw(
            port,
            format!("POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000000\r\n\r\npassword=x").as_bytes(),
        )
        .unwrap(),
    );
    assert_eq!(r.status, 413);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// `promtool check metrics` (Prometheus' own parser and linter) on an exposition.
fn promtool(text: &str) {
    use std::io::Write;
    let mut c = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) runs");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn web_metrics_pass_promtool_with_every_status_word_once_and_a_scrape_token() {
    let dev = "ups.status: OL ALARM WAIT XYZ XYZ\nbattery.charge: 87\nups.mfr: Dummy\nups.model: Rack 1500\n";
    let (_nut, agent) = served_agent_with("web-metrics", USERS, ADMIN, dev);
    let port = agent.port;
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = get(port, "/metrics", None);
        assert_eq!(r.status, 200);
        if r.body.contains("network_ups_tools_ups_status") {
            break r.body;
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool(&text);
    assert_prometheus_text(&text);
    for w in ["OL", "ALARM", "WAIT", "XYZ"] {
        let series = format!("network_ups_tools_ups_status{{ups=\"ups1\",flag=\"{w}\"}} 1");
        assert_eq!(text.matches(&series).count(), 1, "{series}:\n{text}");
    }
    // The status made private: Prometheus still reads /metrics with the token file's token.
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(
        &["settings", "set", "--settings", &s, "web_public_status=no"],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    agent.wait_for(|l| l.contains("web_public_status: yes -> no"));
    let file = agent.dir.join("metrics-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(get(port, "/metrics", None).status, 401);
    let wrong =
        "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(request(port, "GET", "/metrics", &[wrong], "").status, 401);
    let right = format!("Authorization: Bearer {token}");
    let r = request(port, "GET", "/metrics", &[&right], "");
    assert_eq!(r.status, 200);
    promtool(&r.body);
    // The token opens /metrics only.
    assert_eq!(
        request(port, "GET", "/api/status", &[&right], "").status,
        401
    );
    assert!(!agent.log().contains(&token), "the token is not logged");
}

#[test]
fn web_a_taken_port_is_retried_until_it_is_free_and_said_loudly() {
    let nut_dir = std::env::temp_dir().join(format!("ps-web-nut-bind-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    let port = common::nut::free_port();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let agent = Agent::start_on("bind", &nut_dir, &["upsd_port=9"], None, port, true);
    agent.wait_for(|l| l.contains("error: web: no setup page yet: cannot listen on"));
    std::thread::sleep(Duration::from_millis(1500));
    drop(squatter);
    agent.wait_for(|l| l.contains("at last: the address is free now"));
    assert_eq!(get(port, "/login", None).status, 200);
    drop(agent);
    let _ = std::fs::remove_dir_all(&nut_dir);
}

/// A pids cgroup (v2, or v1's pids hierarchy) holding at most `max` tasks.
struct PidsCgroup(std::path::PathBuf);

impl PidsCgroup {
    fn new(name: &str, max: u32) -> PidsCgroup {
        let v2 = std::path::Path::new("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        let base = if controllers.split_whitespace().any(|c| c == "pids") {
            v2.to_path_buf()
        } else {
            v2.join("pids")
        };
        let dir = base.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
            panic!("this test needs a pids cgroup (root, cgroup v2 with pids, or v1's pids hierarchy): {}: {e}", dir.display())
        });
        std::fs::write(dir.join("pids.max"), max.to_string()).unwrap();
        PidsCgroup(dir)
    }

    fn join(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    fn refused_forks(&self) -> u64 {
        std::fs::read_to_string(self.0.join("pids.events"))
            .unwrap_or_default()
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn web_wrong_logins_and_a_check_under_the_units_tasks_max_never_kill_the_agent() {
    // Three serial ports in ups.conf that nothing answers: the check's probe talks to each on a
    // thread of its own.
    let cg = PidsCgroup::new("ps-web-tasks", 16);
    let links = std::env::temp_dir().join(format!("ps-web-tasks-tty-{}", std::process::id()));
    std::fs::create_dir_all(&links).unwrap();
    let mut masters = Vec::new();
    let mut more = String::new();
    for i in 0..3 {
        let pty = nix::pty::openpty(
            None::<&nix::pty::Winsize>,
            None::<&nix::sys::termios::Termios>,
        )
        .unwrap();
        for fd in [&pty.master, &pty.slave] {
            use std::os::fd::AsRawFd;
            nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .unwrap();
        }
        // The probe reads `/dev/...` under its captured root: a link elsewhere is the port.
        let link = links.join(format!("tty{i}"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(nix::unistd::ttyname(&pty.slave).unwrap(), &link).unwrap();
        more.push_str(&format!(
            "[serial{i}]\n\tdriver = nutdrv_qx\n\tport = {}\n",
            link.display()
        ));
        drop(pty.slave);
        masters.push(pty.master);
    }
    let (_nut, mut agent) = served_agent_more(
        "web-tasks",
        USERS,
        ADMIN,
        "ups.status: OL\nbattery.charge: 90\n",
        &more,
    );
    let port = agent.port;
    let mut seen = Seen::default();
    let cookie = login(port, &mut seen);
    // The unit's TasksMax=16, as a pids cgroup around the running agent.
    cg.join(agent.pid());
    // 30 wrong logins at once from 30 addresses, and the check meanwhile.
    let logins =
        std::thread::spawn(move || parallel_wrong_logins(port, 30, |i| [127, 0, 3, 10 + i]));
    std::thread::sleep(Duration::from_millis(200));
    let mut checks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r = get(port, "/api/check", Some(&cookie));
        checks.push(r.status);
        if r.status == 200 {
            break r;
        }
        assert_eq!(r.status, 503, "the check: {}", r.body);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(json(&r)["error"].as_str().unwrap().contains("try again"));
        assert!(Instant::now() < deadline, "{checks:?}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let statuses = logins.join().unwrap();
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let v = json(&report);
    assert!(v["findings"].is_array(), "{v}");
    // Again, with every login refused or heard: still alive, still answering.
    let statuses = parallel_wrong_logins(port, 30, |i| [127, 0, 4, 10 + i]);
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(agent.alive(), "the agent died:\n{}", agent.log());
    assert_eq!(get(port, "/api/status", None).status, 200);
    let r = get(port, "/api/check", Some(&cookie));
    assert!(matches!(r.status, 200 | 503), "{}", r.body);
    assert!(agent.alive(), "the agent died:\n{}", agent.log());
    eprintln!(
        "forks the cgroup refused: {}; checks: {checks:?}",
        cg.refused_forks()
    );
    drop(agent);
    drop(masters);
    let _ = std::fs::remove_dir_all(&links);
}

/// The fingerprint in a log line: the 95 characters after `marker`.
fn fingerprint_in(line: &str, marker: &str) -> String {
    let at = line
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in {line}"))
        + marker.len();
    line[at..].chars().take(95).collect()
}

#[test]
fn web_https_its_certificate_survives_a_restart_a_damaged_key_is_replaced_and_loopback_is_http() {
    let nut_dir = std::env::temp_dir().join(format!("ps-web-nut-https-{}", std::process::id()));
    std::fs::create_dir_all(&nut_dir).unwrap();
    let port = common::nut::free_port();
    let any = format!("web_listen=0.0.0.0:{port}");
    let mut agent = Agent::start_on("https", &nut_dir, &[&any, "upsd_port=9"], None, port, true);
    let key = agent.dir.join("web-tls.pem");

    // One line: the addresses a person can open, the fingerprint, the code.
    let line = agent.wait_for(|l| l.contains("setup code"));
    let fp = fingerprint_in(&line, "SHA-256 fingerprint is ");
    let code = line.split("setup code ").nth(1).unwrap()[..9].to_string();
    assert!(
        line.contains("open https://") && !line.contains("0.0.0.0"),
        "{line}"
    );
    assert!(line.contains(&format!(".local:{port}/login")), "{line}");
    // The same in the setup code file, for the console.
    let file = std::fs::read_to_string(agent.dir.join("setup-code")).unwrap();
    assert_eq!(file.lines().next(), Some(code.as_str()), "{file}");
    assert!(file.contains(&format!("SHA-256 {fp}\n")), "{file}");
    assert!(
        file.lines()
            .skip(1)
            .filter(|l| l.starts_with("https://"))
            .count()
            >= 1,
        "{file}"
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [&key, &agent.dir.join("setup-code")] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }

    // The page serves the certificate it printed, and only over TLS.
    let cert = http::tls::served_certificate(port);
    assert_eq!(http::tls::colon_hex(&http::tls::sha256(&cert)), fp);
    let pin = http::tls::sha256(&cert);
    let r = http::tls::request(port, pin, "GET", "/login", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Setup code"));
    let mut wrong = pin;
    wrong[0] ^= 1;

    // A restart keeps the certificate and the one code.
    agent.restart();
    let again = agent.wait_for(|l| l.contains("setup code"));
    assert_eq!(
        fingerprint_in(&again, "SHA-256 fingerprint is "),
        fp,
        "{again}"
    );
    assert!(again.contains(&format!("setup code {code},")), "{again}");
    assert_eq!(http::tls::served_certificate(port), cert);
    assert!(
        http::tls::raw(port, b"GET / HTTP/1.1\r\n\r\n", Some(wrong)).is_err(),
        "another pin"
    );
    // The first password over HTTPS: its session cookie is Secure.
    let body = format!(
        "code={}&password={}&confirm={}&next=%2F",
        enc(&code),
        enc(ADMIN),
        enc(ADMIN)
    );
    let r = http::tls::request(port, pin, "POST", "/login/setup", &[], &body);
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP to the HTTPS port: a redirect, nothing served.
    let r = http::parse(
        &http::raw(
            port,
            format!("GET /login?next=%2Fsetup HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap(),
    );
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{port}/login?next=%2Fsetup").as_str())
    );
    let r = http::parse(&http::raw(port, b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n").unwrap());
    assert_eq!((r.status, r.header("location")), (400, None));

    // Stalled handshakes and stalled plain HTTP from one address hold at most their places
    // for the header timeout; others are served meanwhile.
    use std::io::{Read, Write};
    let mut stalled = Vec::new();
    for i in 0..6 {
        let mut s = http::connect_from([127, 0, 0, 7], port).unwrap();
        match i % 3 {
            0 => {}
            1 => s.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap(),
            _ => s.write_all(b"GET / HTT").unwrap(),
        }
        stalled.push(s);
    }
    let opened = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let r = http::tls::request(port, pin, "GET", "/login", &[], "");
        assert_eq!(r.status, 200);
    }
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a stalled connection is closed, not answered");
    }
    let took = opened.elapsed();
    assert!(took < Duration::from_secs(13), "closed after {took:?}");

    // With the password set, a restart still says where and which certificate.
    agent.restart();
    let line = agent.wait_for(|l| l.contains("setup page on https://"));
    assert_eq!(fingerprint_in(&line, "certificate SHA-256 "), fp, "{line}");
    assert!(
        !agent.log().contains("setup code"),
        "no code once the password is set"
    );

    // A damaged key file is replaced, said in the log, the old one kept.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbm9uc2Vuc2U=\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    agent.restart();
    let said = agent.wait_for(|l| l.contains("cannot be used"));
    assert!(
        said.contains("web-tls.pem.damaged") && said.contains("fingerprint changes"),
        "{said}"
    );
    assert!(
        std::fs::read_to_string(agent.dir.join("web-tls.pem.damaged"))
            .unwrap()
            .contains("bm9uc2Vuc2U=")
    );
    let line = agent.wait_for(|l| l.contains("setup page on https://"));
    let new_fp = fingerprint_in(&line, "certificate SHA-256 ");
    assert_ne!(new_fp, fp);
    let new_cert = http::tls::served_certificate(port);
    assert_eq!(http::tls::colon_hex(&http::tls::sha256(&new_cert)), new_fp);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // On loopback the page is plain HTTP.
    let lo = common::nut::free_port();
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(
        &[
            "settings",
            "set",
            "--settings",
            &s,
            &format!("web_listen=127.0.0.1:{lo}"),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    agent.wait_for(|l| l.contains(&format!("setup page on http://127.0.0.1:{lo}/")));
    let r = get(lo, "/login", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("set-cookie").is_none());
    assert!(
        http::tls::raw(lo, b"GET / HTTP/1.1\r\n\r\n", None).is_err(),
        "no TLS on loopback"
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&nut_dir);
}
