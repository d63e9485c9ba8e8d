//! The upsd client against a real upsd and dummy-ups (Debian's nut-server), and against hostile
//! fake servers.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::nut::Nut;
use power_snitch::upsd::client::{Client, Options, Reply};
use power_snitch::upsd::error::ErrorKind;
use power_snitch::upsd::proto::Request;
use power_snitch::upsd::target::Target;
use serde_json::Value;

const UPS1: &str = "ups.status: OL CHRG\nbattery.charge: 87\nbattery.runtime: 1800\nups.load: 23\ninput.voltage: 230.1\nups.model: Smart UPS 1500\n";
const SEQ: &str = "ups.status: OL\nTIMER 2\nups.status: OB DISCHRG\nTIMER 2\n";
const USERS: &str = "[admin]\n\tpassword = \"adm pw\"\n\tactions = SET FSD\n\tinstcmds = ALL\n[mon]\n\tpassword = monpass\n\tupsmon primary\n[setter]\n\tpassword = \"s=t\\#1\"\n\tactions = SET\n[viewer]\n\tpassword = viewpass\n";

/// One NUT for the tests that only read: three UPSes, `ghost` without a running driver.
fn shared() -> &'static Nut {
    static NUT: OnceLock<Nut> = OnceLock::new();
    NUT.get_or_init(|| {
        let mut n = Nut::new(
            "shared",
            &[
                ("ups1", "ups1.dev", UPS1),
                ("ups2", "ups2.seq", SEQ),
                ("ghost", "ghost.dev", UPS1),
            ],
            USERS,
            "",
        );
        n.start_driver("ups1");
        n.start_driver("ups2");
        n.start_upsd();
        n.wait_ready("ups1");
        n.wait_ready("ups2");
        n
    })
}

fn quick() -> Options {
    Options {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        retry_count: 3,
        retry_delay: Duration::from_millis(200),
        tls: Default::default(),
    }
}

fn client(nut: &Nut) -> Client {
    Client::new(
        Target::parse(&format!("@127.0.0.1:{}", nut.port)).unwrap(),
        quick(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn upsc(args: &[&str]) -> String {
    let o = Command::new("upsc")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("upsc runs");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn status_json_equals_what_upsc_prints() {
    let nut = shared();
    let o = bin(&["status", &nut.target("ups1"), "--format", "json"], None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ups"], "ups1");
    let ours: Vec<(String, String)> = v["vars"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let theirs: Vec<(String, String)> = upsc(&[&nut.target("ups1")])
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    // Same variables and values; upsc sorts nothing, neither do we.
    let a: BTreeMap<_, _> = ours.iter().cloned().collect();
    let b: BTreeMap<_, _> = theirs.iter().cloned().collect();
    assert_eq!(a, b);
    assert!(a.len() > 10, "dummy-ups serves its variables: {a:?}");
    assert_eq!(a["ups.model"], "Smart UPS 1500");
    // Human output is upsc's, line for line.
    let o = bin(&["status", &nut.target("ups1")], None);
    let human = String::from_utf8(o.stdout).unwrap();
    let mut h: Vec<&str> = human.lines().collect();
    let u = upsc(&[&nut.target("ups1")]);
    let mut t: Vec<&str> = u.lines().collect();
    h.sort();
    t.sort();
    assert_eq!(h, t);
}

#[test]
fn status_without_ups_lists_them_like_upsc_l() {
    let nut = shared();
    let o = bin(&["status", &format!("@127.0.0.1:{}", nut.port)], None);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        upsc(&["-l", &format!("127.0.0.1:{}", nut.port)])
    );
}

#[test]
fn every_error_upsd_gives_has_its_class() {
    let nut = shared();
    rt().block_on(async {
        let mut c = client(nut);
        let cases: Vec<(Request, &str, ErrorKind)> = vec![
            (
                Request::GetVar("nope".into(), "ups.status".into()),
                "UNKNOWN-UPS",
                ErrorKind::Configuration,
            ),
            (
                Request::GetVar("ups1".into(), "no.such.var".into()),
                "VAR-NOT-SUPPORTED",
                ErrorKind::Configuration,
            ),
            (
                Request::ListVar("ghost".into()),
                "DRIVER-NOT-CONNECTED",
                ErrorKind::Connection,
            ),
            (
                Request::Login("ups1".into()),
                "USERNAME-REQUIRED",
                ErrorKind::Authentication,
            ),
            (
                Request::StartTls,
                "FEATURE-NOT-CONFIGURED",
                ErrorKind::Configuration,
            ),
        ];
        for (req, code, kind) in cases {
            let e = c.request(&req).await.unwrap_err();
            assert_eq!((e.code(), e.kind()), (code, kind), "{req:?}: {e}");
            assert!(e.hint_text().is_some(), "{code} says what to check next");
        }
    });
}

#[test]
fn sessions_follow_upsd_rules() {
    let nut = shared();
    rt().block_on(async {
        let mut c = client(nut);
        let ok = |r: Result<Reply, _>| match r {
            Ok(Reply::Line(w)) => w.join(" "),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ok(c.request(&Request::Username("viewer".into())).await),
            "OK"
        );
        assert_eq!(
            c.request(&Request::Username("viewer".into()))
                .await
                .unwrap_err()
                .code(),
            "ALREADY-SET-USERNAME"
        );
        assert_eq!(
            ok(c.request(&Request::Password("wrong".into())).await),
            "OK"
        );
        assert_eq!(
            c.request(&Request::Password("wrong".into()))
                .await
                .unwrap_err()
                .code(),
            "ALREADY-SET-PASSWORD"
        );
        let e = c.request(&Request::Login("ups1".into())).await.unwrap_err();
        assert_eq!(
            (e.code(), e.kind()),
            ("ACCESS-DENIED", ErrorKind::Authentication)
        );

        // Passwords with a space, `=` and `#` go through quoted, unlike upsmon's.
        let mut c = client(nut);
        ok(c.request(&Request::Username("mon".into())).await);
        ok(c.request(&Request::Password("monpass".into())).await);
        assert_eq!(ok(c.request(&Request::Login("ups1".into())).await), "OK");
        assert_eq!(
            c.request(&Request::Login("ups1".into()))
                .await
                .unwrap_err()
                .code(),
            "ALREADY-LOGGED-IN"
        );
        assert_eq!(
            ok(c.request(&Request::Primary("ups1".into())).await),
            "OK PRIMARY-GRANTED"
        );
        assert_eq!(ok(c.request(&Request::Logout).await), "OK Goodbye");

        for (user, pw) in [("admin", "adm pw"), ("setter", "s=t#1")] {
            let mut c = client(nut);
            ok(c.request(&Request::Username(user.into())).await);
            ok(c.request(&Request::Password(pw.into())).await);
            let probe = Request::SetVar("ups1".into(), "power-snitch.probe".into(), "x".into());
            assert_eq!(
                c.request(&probe).await.unwrap_err().code(),
                "VAR-NOT-SUPPORTED",
                "{user}"
            );
        }
        // LOGIN without PASSWORD; an unknown command; descriptions and types.
        let mut c = client(nut);
        ok(c.request(&Request::Username("mon".into())).await);
        let e = c.request(&Request::Login("ups1".into())).await.unwrap_err();
        assert_eq!(
            (e.code(), e.kind()),
            ("PASSWORD-REQUIRED", ErrorKind::Authentication)
        );
        let mut c = client(nut);
        ok(c.request(&Request::Username("admin".into())).await);
        ok(c.request(&Request::Password("adm pw".into())).await);
        let e = c
            .request(&Request::InstCmd("ups1".into(), "no.such.cmd".into(), None))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.kind()),
            ("CMD-NOT-SUPPORTED", ErrorKind::Configuration)
        );
        assert_eq!(
            ok(
                c.request(&Request::GetType("ups1".into(), "ups.status".into()))
                    .await
            ),
            "TYPE ups1 ups.status RW STRING:32"
        );
        assert_eq!(
            ok(
                c.request(&Request::GetDesc("ups1".into(), "ups.status".into()))
                    .await
            ),
            "DESC ups1 ups.status UPS status"
        );
        let e = c
            .request(&Request::GetTracking("1".into()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "FEATURE-NOT-CONFIGURED");

        let mut c = client(nut);
        ok(c.request(&Request::Username("admin".into())).await);
        ok(c.request(&Request::Password("adm".into())).await);
        let probe = Request::SetVar("ups1".into(), "power-snitch.probe".into(), "x".into());
        assert_eq!(c.request(&probe).await.unwrap_err().code(), "ACCESS-DENIED");
    });
}

#[test]
fn lists_of_every_kind() {
    let nut = shared();
    rt().block_on(async {
        let mut c = client(nut);
        let ups = c.list_ups().await.unwrap();
        let mut names: Vec<&str> = ups.iter().map(|u| u.0.as_str()).collect();
        names.sort();
        assert_eq!(names, ["ghost", "ups1", "ups2"]);
        assert!(
            ups.contains(&("ups1".to_string(), "UPS ups1".to_string())),
            "{ups:?}"
        );
        for req in [
            Request::ListRw("ups1".into()),
            Request::ListCmd("ups1".into()),
            Request::ListClient("ups1".into()),
        ] {
            assert!(
                matches!(c.request(&req).await, Ok(Reply::List(_))),
                "{req:?}"
            );
        }
        let Reply::Line(v) = c.request(&Request::Ver).await.unwrap() else {
            panic!()
        };
        assert!(v.join(" ").contains("Network UPS Tools"), "{v:?}");
        assert!(matches!(
            c.request(&Request::NetVer).await.unwrap(),
            Reply::Line(_)
        ));
        assert!(matches!(
            c.request(&Request::GetNumLogins("ups1".into()))
                .await
                .unwrap(),
            Reply::Line(_)
        ));
    });
}

#[test]
fn sequences_change_status() {
    let nut = shared();
    rt().block_on(async {
        let mut c = client(nut);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline
            && !(seen.contains(&"OL".to_string()) && seen.contains(&"OB DISCHRG".to_string()))
        {
            let Reply::Line(w) = c
                .request(&Request::GetVar("ups2".into(), "ups.status".into()))
                .await
                .unwrap()
            else {
                panic!()
            };
            if !seen.contains(&w[3]) {
                seen.push(w[3].clone());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            seen.contains(&"OB DISCHRG".to_string()) && seen.contains(&"OL".to_string()),
            "{seen:?}"
        );
    });
}

#[test]
fn test_connection_tells_each_step() {
    let nut = shared();
    let run = |args: &[&str], stdin: Option<&str>| -> (i32, Value) {
        let o = bin(args, stdin);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code().unwrap(), v)
    };
    let t1 = nut.target("ups1");
    let with_user = |user: &str, login: bool| {
        let mut a = vec!["test-connection", t1.as_str(), "--format", "json", "--user"];
        a.push(if user == "setter" {
            "setter"
        } else if user == "admin" {
            "admin"
        } else {
            "mon"
        });
        a.push("--password-stdin");
        if login {
            a.push("--login");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };

    let (code, v) = run(&strs(&with_user("setter", false)), Some("s=t#1\n"));
    assert_eq!(code, 0, "{v}");
    let names: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "reachable",
            "tls",
            "protocol",
            "ups known",
            "driver connected",
            "data fresh",
            "credentials"
        ]
    );
    assert!(step(&v, "credentials")["message"]
        .as_str()
        .unwrap()
        .contains("SET probe"));
    assert!(step(&v, "tls")["message"]
        .as_str()
        .unwrap()
        .contains("not attempted"));

    let (code, v) = run(&strs(&with_user("admin", false)), Some("wrong\n"));
    assert_eq!(code, 2);
    assert_eq!(step(&v, "credentials")["error_kind"], "authentication");
    assert_eq!(step(&v, "credentials")["code"], "login-needed");

    // An upsmon user: only LOGIN can tell, and only when asked.
    let (code, v) = run(&strs(&with_user("mon", true)), Some("monpass\n"));
    assert_eq!(code, 0, "{v}");
    assert!(step(&v, "credentials")["message"]
        .as_str()
        .unwrap()
        .contains("LOGIN"));
    let (code, v) = run(&strs(&with_user("mon", true)), Some("nope\n"));
    assert_eq!(
        (code, step(&v, "credentials")["code"].clone()),
        (2, Value::from("ACCESS-DENIED"))
    );

    let (code, v) = run(
        &["test-connection", &nut.target("nope"), "--format", "json"],
        None,
    );
    assert_eq!(
        (code, step(&v, "ups known")["error_kind"].clone()),
        (2, Value::from("configuration"))
    );
    let (code, v) = run(
        &["test-connection", &nut.target("ghost"), "--format", "json"],
        None,
    );
    assert_eq!(
        (code, step(&v, "driver connected")["code"].clone()),
        (2, Value::from("DRIVER-NOT-CONNECTED"))
    );
    let closed = common::nut::free_port();
    let target = format!("ups1@127.0.0.1:{closed}");
    let (code, v) = run(
        &[
            "test-connection",
            &target,
            "--format",
            "json",
            "--retries",
            "0",
        ],
        None,
    );
    assert_eq!(
        (code, step(&v, "reachable")["code"].clone()),
        (2, Value::from("connect-refused"))
    );
}

/// The credentials of a UPS whose driver is not connected are still proven by LOGIN (upsd
/// answers a SET on such a UPS with DRIVER-NOT-CONNECTED before it looks at the user), so a
/// change that verifies every MONITOR account is not undone because another UPS is unplugged.
#[test]
fn credentials_of_a_ups_without_its_driver_are_proven_by_login() {
    use power_snitch::upsd::diagnose::{credentials, Credentials, Proof};
    let nut = shared();
    rt().block_on(async {
        let mut c = client(nut);
        assert_eq!(
            credentials(&mut c, "ghost", "mon", "monpass", true)
                .await
                .unwrap(),
            Credentials::Valid(Proof::Login)
        );
        let e = credentials(&mut c, "ghost", "mon", "wrong", true)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "ACCESS-DENIED", "{e:?}");
        // Without LOGIN nothing can be proven: upsd's own word stays the answer.
        let e = credentials(&mut c, "ghost", "admin", "adm pw", false)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "DRIVER-NOT-CONNECTED", "{e:?}");
        // A UPS upsd does not know is still an error, whatever the password.
        let e = credentials(&mut c, "nope", "mon", "monpass", true)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "UNKNOWN-UPS", "{e:?}");
    });
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A test-connection step by name.
fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {v}"))
}

#[test]
fn a_password_is_never_taken_from_the_command_line() {
    let o = bin(
        &["test-connection", "--user", "admin", "--password", "x"],
        None,
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--password-stdin"));
}

#[test]
fn status_failures_exit_2_with_a_json_error() {
    let nut = shared();
    let o = bin(&["status", &nut.target("nope"), "--format", "json"], None);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "configuration");
    assert_eq!(v["error"]["code"], "UNKNOWN-UPS");
    assert!(v["error"]["message"].as_str().unwrap().contains("LIST VAR"));
}

#[test]
fn survives_the_driver_and_upsd_going_away() {
    let mut nut = Nut::new(
        "restart",
        &[("ups1", "ups1.dev", UPS1)],
        USERS,
        "MAXAGE 3\n",
    );
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    rt().block_on(async {
        let mut c = client(&nut);
        assert!(c.vars("ups1").await.unwrap().len() > 5);
        // upsd restarts: the next read reconnects and succeeds (a just-started upsd may not
        // have all of the driver's data yet; on a busy machine it takes a moment).
        nut.stop_upsd();
        nut.start_upsd();
        match c.vars("ups1").await {
            Ok(_) => {}
            // upsd answered (the driver may not have reconnected to it yet): reconnected.
            Err(e) => assert!(!e.is_transport(), "{e:?}"),
        }
        nut.wait_ready("ups1");
        assert!(c.vars("ups1").await.unwrap().len() > 5);
        // The driver dies: upsd says so.
        nut.stop_driver("ups1");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.vars("ups1").await {
                Err(e) if e.code() == "DRIVER-NOT-CONNECTED" || e.code() == "DATA-STALE" => {
                    assert_eq!(e.kind(), ErrorKind::Connection);
                    break;
                }
                other => assert!(Instant::now() < deadline, "still {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // upsd gone for good: the client retries, then says so.
        nut.stop_upsd();
        let t = Instant::now();
        let e = c.vars("ups1").await.unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::Connection, "connect-refused")
        );
        assert!(
            t.elapsed() >= Duration::from_millis(600),
            "three retries 200 ms apart"
        );
    });
}

#[cfg(feature = "tls")]
/// upsd with an NSS certificate database (libnss3-tools' certutil), CERTPATH and CERTIDENT.
fn tls_nut() -> &'static (Nut, std::path::PathBuf, String) {
    static NUT: OnceLock<(Nut, std::path::PathBuf, String)> = OnceLock::new();
    NUT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ps-nss-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = format!("sql:{}", dir.display());
        std::fs::write(dir.join("pw"), "dbpass\n").unwrap();
        let noise: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(dir.join("noise"), noise).unwrap();
        let certutil = |args: &[&str]| {
            let o = Command::new("certutil")
                .args(args)
                .output()
                .expect("certutil runs (apt install libnss3-tools)");
            assert!(
                o.status.success(),
                "certutil {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            o.stdout
        };
        let pw = dir.join("pw");
        let noise = dir.join("noise");
        certutil(&["-N", "-d", &db, "-f", pw.to_str().unwrap()]);
        certutil(&[
            "-S",
            "-d",
            &db,
            "-f",
            pw.to_str().unwrap(),
            "-z",
            noise.to_str().unwrap(),
            "-n",
            "upsd",
            "-s",
            "CN=localhost",
            "-x",
            "-t",
            "CTu,Cu,Cu",
            "-k",
            "rsa",
            "-g",
            "2048",
            "-v",
            "12",
            "--keyUsage",
            "digitalSignature,keyEncipherment",
            "--extKeyUsage",
            "serverAuth",
            "--extSAN",
            "dns:localhost,ip:127.0.0.1",
        ]);
        let pem = certutil(&["-L", "-d", &db, "-n", "upsd", "-a"]);
        let pem_path = dir.join("upsd.pem");
        std::fs::write(&pem_path, &pem).unwrap();
        let der = certutil(&["-L", "-d", &db, "-n", "upsd", "-r"]);
        let sha = power_snitch::upsd::tls::sha256_hex(&der);
        let extra = format!(
            "CERTPATH {}\nCERTIDENT \"upsd\" \"dbpass\"\n",
            dir.display()
        );
        let mut n = Nut::new("tls", &[("ups1", "ups1.dev", UPS1)], USERS, &extra);
        n.start_driver("ups1");
        n.start_upsd();
        n.wait_ready("ups1");
        (n, pem_path, sha)
    })
}

#[cfg(feature = "tls")]
#[test]
fn starttls_verifies_upsd_by_ca_file_or_pin() {
    let (nut, pem, sha) = tls_nut();
    let t = nut.target("ups1");
    let pem = pem.to_str().unwrap();
    let json = |args: &[&str], stdin: Option<&str>| -> (i32, Value) {
        let o = bin(args, stdin);
        (
            o.status.code().unwrap(),
            serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
        )
    };
    // Verified against the certificate as a CA, and by its pin; credentials go over TLS.
    let (code, v) = json(
        &[
            "test-connection",
            &t,
            "--format",
            "json",
            "--tls",
            "required",
            "--ca-file",
            pem,
            "--user",
            "setter",
            "--password-stdin",
        ],
        Some("s=t#1\n"),
    );
    assert_eq!(code, 0, "{v}");
    assert!(
        step(&v, "tls")["message"]
            .as_str()
            .unwrap()
            .starts_with("encrypted (TLSv1_3)"),
        "{v}"
    );
    let (code, v) = json(
        &[
            "test-connection",
            &t,
            "--format",
            "json",
            "--pin-sha256",
            sha,
        ],
        None,
    );
    assert_eq!(code, 0, "{v}");
    assert!(
        step(&v, "tls")["message"]
            .as_str()
            .unwrap()
            .starts_with("encrypted"),
        "{v}"
    );
    // status over TLS equals status in clear.
    let over_tls = bin(
        &[
            "status",
            &t,
            "--format",
            "json",
            "--tls",
            "required",
            "--ca-file",
            pem,
        ],
        None,
    );
    let clear = bin(&["status", &t, "--format", "json", "--tls", "off"], None);
    let a: Value = serde_json::from_slice(&over_tls.stdout).unwrap();
    let b: Value = serde_json::from_slice(&clear.stdout).unwrap();
    assert_eq!(
        a["vars"].as_object().unwrap().keys().collect::<Vec<_>>(),
        b["vars"].as_object().unwrap().keys().collect::<Vec<_>>()
    );
    // A second STARTTLS on an encrypted connection.
    rt().block_on(async {
        let mut opts = quick();
        opts.tls.mode = power_snitch::upsd::tls::TlsMode::Required;
        opts.tls.trust =
            power_snitch::upsd::tls::roots_from_file(std::path::Path::new(pem)).unwrap();
        let mut c = Client::new(Target::parse(&t).unwrap(), opts);
        c.connect().await.unwrap();
        assert!(matches!(
            c.tls,
            power_snitch::upsd::client::TlsState::Encrypted(_)
        ));
        let e = c.request(&Request::StartTls).await.unwrap_err();
        assert_eq!(
            (e.code(), e.kind()),
            ("ALREADY-SSL-MODE", ErrorKind::Protocol)
        );
    });
    // A wrong pin is refused, and so is TLS required without anything to verify with.
    let wrong = "00".repeat(32);
    let (code, v) = json(
        &[
            "test-connection",
            &t,
            "--format",
            "json",
            "--pin-sha256",
            &wrong,
        ],
        None,
    );
    assert_eq!(
        (code, step(&v, "tls")["code"].clone()),
        (2, Value::from("tls-handshake")),
        "{v}"
    );
    let (code, v) = json(
        &[
            "test-connection",
            &t,
            "--format",
            "json",
            "--tls",
            "required",
        ],
        None,
    );
    assert_eq!(
        (code, step(&v, "tls")["code"].clone()),
        (2, Value::from("tls-no-trust")),
        "{v}"
    );
    // An upsd without certificates: auto goes on in clear, required stops.
    let plain = shared().target("ups1");
    let (code, v) = json(
        &[
            "test-connection",
            &plain,
            "--format",
            "json",
            "--pin-sha256",
            sha,
        ],
        None,
    );
    assert_eq!(code, 0, "{v}");
    assert!(
        step(&v, "tls")["message"]
            .as_str()
            .unwrap()
            .contains("FEATURE-NOT-CONFIGURED"),
        "{v}"
    );
    let (code, v) = json(
        &[
            "test-connection",
            &plain,
            "--format",
            "json",
            "--pin-sha256",
            sha,
            "--tls",
            "required",
            "--retries",
            "0",
        ],
        None,
    );
    assert_eq!(
        (code, step(&v, "tls")["code"].clone()),
        (2, Value::from("FEATURE-NOT-CONFIGURED")),
        "{v}"
    );
}

#[test]
fn sync_asks_upsd_whether_the_stored_password_is_right() {
    let nut = shared();
    let dir = std::env::temp_dir().join(format!("ps-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    let port = format!("upsd_port={}", nut.port);
    let set = |args: &[&str], stdin: Option<&str>| {
        let mut a = vec!["settings", "set", "--settings", f, "--ups", "ups1"];
        a.extend_from_slice(args);
        assert!(bin(&a, stdin).status.success());
    };
    set(
        &[
            "upsd_host=127.0.0.1",
            &port,
            "nut_username=setter",
            "nut_driver=dummy-ups",
            "nut_port=ups1.dev",
        ],
        None,
    );
    set(&["--password-stdin"], Some("s=t#1\n"));
    let sync = || {
        let o = bin(
            &[
                "sync",
                "--format",
                "json",
                "--nut-version",
                "2.8.0",
                "--settings",
                f,
                "--nut-dir",
                nut.dir.to_str().unwrap(),
            ],
            None,
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code().unwrap(), v)
    };
    // Right password: no error (a warning: `setter` has no upsmon role, which the agent needs).
    let (code, v) = sync();
    assert_eq!(
        (code, v["summary"]["errors"].clone()),
        (1, Value::from(0)),
        "{v}"
    );
    set(&["--password-stdin"], Some("nope\n"));
    let (code, v) = sync();
    assert_eq!(code, 2, "{v}");
    let messages: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("upsd refuses the settings' password for `setter`")),
        "{messages:?}"
    );
    assert!(!v.to_string().contains("nope"));
}
