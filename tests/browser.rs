//! The setup page in a real headless Chromium, driven through chromedriver's WebDriver HTTP API
//! (a tiny client below, over std's TcpStream): log in, change the poll interval, save, run
//! test-connection against a real upsd + dummy-ups, see every step pass, break the password and
//! see the authentication step fail. A screenshot of each page goes to
//! `target/screenshots/` (Debian's `chromium` and `chromium-driver`; `./scripts/test` installs
//! them).

#![cfg(feature = "web")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nut::free_port;
use common::web::served_agent;
use serde_json::{json, Value};

const USERS: &str = "[admin]\n\tpassword = adminpass\n\tactions = SET\n\tupsmon primary\n";
const ADMIN: &str = "webadmin-pass";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is installed (Debian's chromium-driver; ./scripts/test installs it)",
            );
        let d = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// One WebDriver command: its `value`, or the error WebDriver gave.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let (head_len, body_len) = loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("chromedriver closed the connection".into());
            }
            out.extend_from_slice(&buf[..n]);
            if let Some(i) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("no Content-Length")?;
                break (i + 4, len);
            }
        };
        while out.len() < head_len + body_len {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let json = String::from_utf8_lossy(&out[head_len..]).to_string();
        let v: Value = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
        if v["value"]["error"].is_string() {
            return Err(format!(
                "{}: {}",
                v["value"]["error"], v["value"]["message"]
            ));
        }
        Ok(v["value"].clone())
    }
}

/// One browser session.
struct Browser<'a> {
    d: &'a Driver,
    id: String,
    base: String,
    shots: PathBuf,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .d
            .call("DELETE", &format!("/session/{}", self.id), None);
    }
}

impl<'a> Browser<'a> {
    fn new(d: &'a Driver, base: String) -> Browser<'a> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--window-size=1100,900", "--lang=en-US"]
            }
        }}});
        let v = d
            .call("POST", "/session", Some(caps))
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            d,
            id: v["sessionId"].as_str().unwrap().to_string(),
            base,
            shots,
        }
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Result<Value, String> {
        self.d
            .call(method, &format!("/session/{}{what}", self.id), body)
    }

    fn go(&self, path: &str) {
        self.cmd(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.base)})),
        )
        .unwrap();
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn find(&self, css: &str) -> Option<String> {
        self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(String::from))
    }

    /// Waits for an element (pages load and refresh).
    fn wait(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no `{css}` on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, css: &str) -> String {
        let e = self.wait(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn typ(&self, css: &str, text: &str) {
        let e = self.wait(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .unwrap();
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .unwrap();
    }

    fn click(&self, css: &str) {
        let e = self.wait(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .unwrap();
    }

    fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .unwrap();
    }

    /// A screenshot of the whole page at `width`, saved as `name`.png.
    fn shot(&self, name: &str, width: u32) -> PathBuf {
        self.resize(width, 900);
        let h = self
            .cmd(
                "POST",
                "/execute/sync",
                Some(json!({"script": "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight", "args": []})),
            )
            .unwrap()
            .as_u64()
            .unwrap_or(900);
        self.resize(width, (h as u32 + 20).clamp(400, 4000));
        let png = base64(
            self.cmd("GET", "/screenshot", None)
                .unwrap()
                .as_str()
                .unwrap(),
        );
        assert_eq!(&png[1..4], b"PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| {
            acc | (u32::from(val(c)) << (18 - 6 * i))
        });
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

#[test]
fn browser_logs_in_saves_the_poll_interval_and_tests_the_connection() {
    // The upsd the agent monitors lives as long as the test.
    let (_nut, agent) = served_agent("browser", USERS, ADMIN);

    let driver = Driver::start();
    let b = Browser::new(&driver, format!("http://127.0.0.1:{}", agent.port));

    // The status page, open to anyone, refreshing itself: the UPS on line and charging.
    b.go("/");
    b.wait(".card.ups .badge.ok[title=OL]");
    assert!(b.text(".card.ups").contains("charging"));
    assert!(b.text(".card.ups").contains("87 %"));

    // Log in on the way to the setup page.
    b.go("/setup");
    assert!(b.url().contains("/login?next=%2Fsetup"), "{}", b.url());
    b.shot("login", 1100);
    b.typ("#password", ADMIN);
    b.click("form button[type=submit]");
    b.wait("#poll_interval");
    assert!(b.url().ends_with("/setup"), "{}", b.url());

    // A wrong value is refused next to its field, then the right one is saved.
    b.typ("#poll_interval", "0");
    b.click("form.card button[type=submit]");
    let err = b.text("#err-poll_interval");
    assert!(err.contains("from 1 to 3600"), "{err}");
    b.shot("setup-refused", 1100);
    assert_eq!(agent.settings().ups[0].poll_interval, 1);
    b.typ("#poll_interval", "3");
    b.click("form.card button[type=submit]");
    let saved = b.text(".alert.ok");
    assert!(saved.contains("Saved: 1 change(s)"), "{saved}");
    let st = agent.settings();
    assert_eq!(st.ups[0].poll_interval, 3);
    assert_eq!(st.ups[0].nut_password.as_ref().unwrap().0, "adminpass");
    agent.wait_for(|l| l.contains("poll_interval[ups1]: 1 -> 3"));
    b.shot("setup", 1100);

    // Test connection with the stored credentials: every step passes.
    b.go("/test");
    b.click("form.card button[type=submit]");
    b.wait("#result");
    let steps = b.text("#result");
    assert!(steps.contains("all steps passed"), "{steps}");
    for step in [
        "reachable",
        "protocol",
        "ups known",
        "driver connected",
        "data fresh",
        "credentials",
    ] {
        assert!(
            b.find(&format!("li.step.ok[data-step='{step}']")).is_some(),
            "{step}: {steps}"
        );
    }
    b.shot("test-connection", 1100);

    // A broken password: the credentials step fails, as an authentication error.
    b.typ("#password", "broken-password");
    b.click("form.card button[type=submit]");
    b.wait("li.step.bad[data-step='credentials']");
    let failed = b.text("li.step.bad[data-step='credentials']");
    assert!(failed.contains("authentication"), "{failed}");
    assert!(b.find("li.step.ok[data-step='driver connected']").is_some());
    b.shot("test-connection-failed", 1100);
    assert_eq!(
        agent.settings().ups[0].nut_password.as_ref().unwrap().0,
        "adminpass",
        "a tested password is not stored"
    );

    // The check, and the status page on a desktop and a phone.
    b.go("/check");
    b.wait("#sync");
    b.shot("check", 1100);
    b.go("/");
    b.wait(".card.ups .badge.ok[title=OL]");
    b.wait("#history figure.chart svg");
    b.shot("status", 1100);
    b.shot("status-phone", 390);
    b.go("/setup");
    b.wait("#poll_interval");
    b.shot("setup-phone", 390);
    let page = b.source();
    assert!(!page.contains("adminpass") && !page.contains(ADMIN));
    drop(b);
    drop(driver);
    drop(agent);
}
