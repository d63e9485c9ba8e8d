//! The setup page in a real headless Chromium, driven through chromedriver's WebDriver HTTP API
//! (a tiny client below, over std's TcpStream), over HTTPS: the browser trusts exactly the
//! certificate whose fingerprint the agent printed (the test checks the served certificate
//! against it and gives Chromium its public key's hash), and no other; log in, change the poll
//! interval, save, see a forged change without the CSRF token refused, run test-connection
//! against a real upsd + dummy-ups, see every step pass, break the password and see the
//! authentication step fail. A screenshot of each page goes to
//! `target/screenshots/` (Debian's `chromium` and `chromium-driver`; `./scripts/test` installs
//! them).

#![cfg(feature = "web")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::tls;
use common::nut::free_port;
use common::web::served_agent_https;
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
    /// A session trusting the certificate whose public key (SubjectPublicKeyInfo) has the
    /// SHA-256 `spki` (base64), and no other certificate the system does not.
    fn new(d: &'a Driver, base: String, spki: &str) -> Browser<'a> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--window-size=1100,900", "--lang=en-US",
                         format!("--ignore-certificate-errors-spki-list={spki}")]
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
        self.try_go(path).unwrap();
    }

    fn try_go(&self, path: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.base)})),
        )
    }

    /// Runs `script` (an async function body ending in `done(value)`) in the page.
    fn run_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": format!("const done = arguments[arguments.length - 1]; {script}"), "args": []})),
        )
        .unwrap()
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

fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// One DER element at the start of `b`: (header length, whole length).
fn der_element(b: &[u8]) -> (usize, usize) {
    let first = b[1] as usize;
    if first < 0x80 {
        return (2, 2 + first);
    }
    let n = first & 0x7F;
    let len = b[2..2 + n]
        .iter()
        .fold(0usize, |a, x| (a << 8) | *x as usize);
    (2 + n, 2 + n + len)
}

/// A certificate's SubjectPublicKeyInfo (DER): the seventh element of tbsCertificate
/// (version, serial, signature, issuer, validity, subject, then the key).
fn spki_of(cert: &[u8]) -> Vec<u8> {
    let (h, _) = der_element(cert);
    let tbs = &cert[h..];
    let (h, _) = der_element(tbs);
    let mut rest = &tbs[h..];
    for _ in 0..6 {
        let (_, whole) = der_element(rest);
        rest = &rest[whole..];
    }
    let (_, whole) = der_element(rest);
    rest[..whole].to_vec()
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
    let (_nut, agent) = served_agent_https("browser", USERS, ADMIN);
    let base = format!("https://127.0.0.1:{}", agent.port);

    // The certificate served is the one whose fingerprint the agent printed; Chromium is told
    // its public key's hash, which the test computes from the certificate itself.
    let line = agent.wait_for(|l| l.contains("setup page on https://"));
    let marker = "certificate SHA-256 ";
    let printed: String = line[line.find(marker).unwrap() + marker.len()..]
        .chars()
        .take(95)
        .collect();
    let cert = tls::served_certificate(agent.port);
    assert_eq!(tls::colon_hex(&tls::sha256(&cert)), printed, "{line}");
    let spki = base64_encode(&tls::sha256(&spki_of(&cert)));

    let driver = Driver::start();
    {
        // Trusting another key, Chromium does not open the page.
        let other = base64_encode(&[7u8; 32]);
        let stranger = Browser::new(&driver, base.clone(), &other);
        // WebDriver says "insecure certificate", or Chromium shows its error page instead.
        let refused = stranger.try_go("/login");
        match &refused {
            Err(e) => assert!(e.contains("insecure certificate"), "{e}"),
            Ok(_) => {
                std::thread::sleep(Duration::from_millis(500));
                let (url, source) = (stranger.url(), stranger.source());
                assert!(stranger.find("#password").is_none(), "{url}: {source}");
                assert!(
                    url.starts_with("chrome-error://") || source.contains("ERR_CERT"),
                    "{url}: {source}"
                );
            }
        }
    }
    let b = Browser::new(&driver, base.clone(), &spki);

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
    assert!(b.url().starts_with("https://"), "{}", b.url());

    // A forged change from this very page, with the session's cookie but without the form's
    // CSRF token: refused, nothing changed.
    let forged = b.run_async(
        "fetch('/setup', {method: 'POST', credentials: 'same-origin', \
           headers: {'content-type': 'application/x-www-form-urlencoded'}, \
           body: 'original=ups1&nut_device_name=ups1&poll_interval=9'}) \
         .then(r => done(r.status), e => done(String(e)));",
    );
    assert_eq!(forged, json!(403), "{forged}");
    assert_eq!(agent.settings().ups[0].poll_interval, 3);

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

    // The UPS found that no section serves (the captured tree's USB UPS): Adopt… shows the
    // change first, the diff of each file with the new password masked; nothing is written.
    let files = || {
        ["ups.conf", "upsd.users", "upsmon.conf", "nut.conf"]
            .map(|f| std::fs::read(_nut.dir.join(f)).unwrap_or_default())
    };
    let before = files();
    b.wait("#adopt form button");
    b.click("#adopt form button");
    b.wait("pre.diff");
    let preview = b.text("main");
    assert!(preview.contains("driver = usbhid-ups"), "{preview}");
    assert!(preview.contains("password = ********"), "{preview}");
    assert!(b.find("form input[name=confirm][value=yes]").is_some());
    b.shot("adopt-preview", 1100);
    assert_eq!(files(), before, "a preview writes nothing");
    // Confirmed: that UPS is only in the captured tree, so its driver cannot start; the change
    // is rolled back, the page says so with NUT's words, and the UPS already served stays.
    b.click("form[action='/nut/adopt'] button");
    b.wait("h1.failed");
    let failed = b.text("main");
    assert!(failed.contains("not done"), "{failed}");
    assert!(failed.contains("the previous files are back"), "{failed}");
    b.shot("adopt-rolled-back", 1100);
    assert_eq!(
        files(),
        before,
        "the rolled-back change leaves the files as they were"
    );
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

    // The Notifications page, from the Setup page: a webhook added (its secret never shown
    // again), then "Send a test" says what the receiver answered.
    let rx = one_http_answer();
    b.click("#notify-link a");
    b.wait("#edit #url");
    b.typ("#name", "hook");
    b.typ("#url", &format!("http://127.0.0.1:{}/hook", rx.0));
    b.typ("#secret", "browser-hook-key");
    b.click("#edit button[type=submit]");
    b.wait("#channels table");
    assert!(
        b.text("#channels").contains("set"),
        "{}",
        b.text("#channels")
    );
    b.click("#channels form[action='/notify/test'] button");
    b.wait("#test-result");
    let said = b.text("#test-result");
    assert!(
        said.contains("channel hook: delivered; the receiver answered: HTTP 200 OK"),
        "{said}"
    );
    assert!(rx.1.join().unwrap().contains("\"kind\":\"test\""));
    b.shot("notifications", 1100);
    assert!(!b.source().contains("browser-hook-key"));
    drop(b);
    drop(driver);
    drop(agent);
}

/// An HTTP receiver on a free port that answers one POST with 200; its thread returns the
/// request's body.
fn one_http_answer() -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader};
    let port = free_port();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(&s);
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        String::from_utf8_lossy(&body).into_owned()
    });
    (port, t)
}
