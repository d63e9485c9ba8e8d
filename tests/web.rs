//! The setup page over HTTP, served by a real agent against a real upsd and dummy-ups: every
//! route, the security rules (no session, a wrong CSRF token, another site's Origin, the brake
//! on guessing, the setup code), the limits, and no password in any response.

#![cfg(feature = "web")]

mod common;

use std::time::{Duration, Instant};

use common::http::{self, enc, get, post, request, Reply};
use common::web::{bin, served_agent, Agent, BIN};
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
