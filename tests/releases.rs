//! NUT's tables generated from the releases themselves: `nut-releases/gen-tables` writes
//! `src/nut/drivers.txt` from each release's `DRIVER -L` and `src/probe/devices.txt` from each
//! release's udev rules (with the overlays beside it for what the releases cannot show); the
//! committed tables must be what it writes. Needs root (chroot) and the roots
//! `nut-releases/build-roots` makes: without them the test fails saying how to build them.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

const TABLES: [&str; 3] = [
    "src/nut/drivers.txt",
    "src/probe/devices.txt",
    "src/nut/directives.rs",
];

/// Runs the generator `script` (the repository's, or one in a copy of nut-releases) into
/// `out`, all tables or `only` one: its exit code and what it said.
fn generate(script: &Path, out: &Path, only: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(script);
    if let Some(t) = only {
        cmd.args(["--only", t]);
    }
    let o = cmd
        .arg("--roots")
        .arg(common::nut::roots_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("{} runs (python3): {e}", script.display()));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The first lines where two texts part.
fn first_difference(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "line {}: committed {:?}, generated {:?}",
        at + 1,
        a.get(at).unwrap_or(&"(end)"),
        b.get(at).unwrap_or(&"(end)")
    )
}

#[test]
fn the_committed_tables_are_what_the_releases_generate() {
    // Fails with the way to build them when a root is missing.
    let releases = common::nut::releases();
    assert_eq!(releases.len(), 3, "NUT 2.8.0, 2.8.1 and 2.8.5");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gen-tables");
    let _ = fs::remove_dir_all(&out);
    let (code, said) = generate(&repo.join("nut-releases/gen-tables"), &out, None);
    assert_eq!(code, 0, "nut-releases/gen-tables fails: {said}");
    let mut differ = Vec::new();
    for t in TABLES {
        let committed = fs::read_to_string(repo.join(t)).unwrap();
        let generated = fs::read_to_string(out.join(t)).unwrap();
        if committed != generated {
            differ.push(format!("{t}: {}", first_difference(&committed, &generated)));
        }
    }
    assert!(
        differ.is_empty(),
        "the committed tables are not what NUT's releases give (run `sudo \
         nut-releases/gen-tables` and review the change):\n{}",
        differ.join("\n")
    );
}

/// An overlay fact that a release contradicts stops the generator, naming the line: here the
/// date the typed table had for riello_usb's `localcalculation` (2.8.1, whose driver lacks it),
/// a variable dated 2.8.0 that 2.8.0's driver does not list, an ID no release's rules have, a
/// notify type dated to a release whose upsmon does not know it; and a directive the releases
/// know that the overlay lacks (DATAPATH, which the typed table lacked).
#[test]
fn the_generator_refuses_what_the_releases_contradict() {
    common::nut::releases();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "drivers.in",
            "flag localcalculation since 2.8.2",
            "flag localcalculation since 2.8.1",
            "localcalculation of riello_usb since 2.8.1, but NUT 2.8.1 does not have it",
        ),
        (
            "drivers.in",
            "value authconf since 2.8.6",
            "value authconf",
            "value authconf of dummy-ups dated 2.8.0, but NUT 2.8.5's -L does not list it",
        ),
        (
            "devices.in",
            "# --- UPS and power devices served by a NUT USB driver ---\n",
            "# --- UPS and power devices served by a NUT USB driver ---\n\
             ffff:fffe\tusbhid-ups\tNobody\tnothing\t-\n",
            "ffff:fffe is in no release's udev rules",
        ),
        // The generator found DATAPATH in every release's upsd, which the typed table lacked.
        (
            "directives.in",
            "upsd.conf DATAPATH 1\n",
            "",
            "NUT 2.8.0's upsd knows `DATAPATH`, which nut-releases/directives.in lacks",
        ),
        (
            "directives.in",
            "notify NOTCAL since 2.8.2",
            "notify NOTCAL since 2.8.1",
            "notify NOTCAL since 2.8.1, but NUT 2.8.1 does not have it",
        ),
    ];
    for (i, (file, from, to, want)) in cases.iter().enumerate() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gen-tables-bad-{i}"));
        let _ = fs::remove_dir_all(&dir);
        let copy = dir.join("nut-releases");
        fs::create_dir_all(&copy).unwrap();
        for f in [
            "gen-tables",
            "suites",
            "drivers.in",
            "devices.in",
            "directives.in",
        ] {
            fs::copy(repo.join("nut-releases").join(f), copy.join(f)).unwrap();
        }
        let text = fs::read_to_string(copy.join(file)).unwrap();
        assert!(text.contains(from), "{file} has `{from}`");
        fs::write(copy.join(file), text.replacen(from, to, 1)).unwrap();
        let only = file.trim_end_matches(".in");
        let (code, said) = generate(&copy.join("gen-tables"), &dir.join("out"), Some(only));
        assert_eq!(code, 2, "{file} with `{to}`: exits {code}: {said}");
        assert!(said.contains(want), "{file} with `{to}`: {said}");
        // A fact the overlay lacks has no line to name.
        if !to.is_empty() {
            assert!(
                said.contains(&format!("nut-releases/{file}:")),
                "names the line: {said}"
            );
        }
        assert!(!dir.join("out/src").exists(), "wrote nothing");
        let _ = fs::remove_dir_all(&dir);
    }
}

// ---- the client and the agent against each release's upsd ---------------------------------

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::nut::Release;

const BIN: &str = env!("CARGO_BIN_EXE_power-snitch");

/// A NUT program running in its root, in a process group of its own; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        common::nut::kill_group(&mut self.0);
    }
}

/// One release's upsd (as user nut) and dummy-ups serving `ups1`, on `port`.
struct Served {
    _driver: Running,
    _upsd: Running,
    dir: PathBuf,
    port: u16,
}

impl Served {
    fn target(&self) -> String {
        format!("ups1@127.0.0.1:{}", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const USERS: &str = "[admin]\n\tpassword = adminpw\n\tactions = SET FSD\n\tinstcmds = ALL\n\
                     [mon]\n\tpassword = monpw\n\tupsmon primary\n";

/// Starts `release`'s dummy-ups and upsd in a fresh directory of its root; `prepare` may add
/// files (given the directory here and inside the root) and returns upsd.conf's extra lines.
/// Waits until `status` reads `OL`.
fn serve(
    release: &Release,
    name: &str,
    port: u16,
    prepare: impl FnOnce(&Path, &Path) -> String,
) -> Served {
    let (dir, inside) = release.temp_dir(name);
    let nut = release.account("nut").expect("user nut in the root");
    let extra = prepare(&dir, &inside);
    let files = [
        (
            "ups.conf",
            "[ups1]\n\tdriver = dummy-ups\n\tport = ups1.dev\n".to_string(),
        ),
        (
            "ups1.dev",
            "ups.status: OL\nbattery.charge: 91\n".to_string(),
        ),
        ("upsd.conf", format!("LISTEN 127.0.0.1 {port}\n{extra}")),
        ("upsd.users", USERS.to_string()),
    ];
    for (f, text) in files {
        fs::write(dir.join(f), text).unwrap();
        nix::unistd::chown(&dir.join(f), Some(0.into()), Some(nut.gids[0].into())).unwrap();
        fs::set_permissions(dir.join(f), fs::Permissions::from_mode(0o640)).unwrap();
    }
    nix::unistd::chown(&dir, Some(0.into()), Some(nut.gids[0].into())).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
    let start = |program: &str, args: &[&str]| -> Running {
        let mut cmd = release.command(&release.program(program).expect("the program"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        for v in ["NUT_CONFPATH", "NUT_STATEPATH", "NUT_ALTPIDPATH"] {
            cmd.env(v, &inside);
        }
        Running(cmd.spawn().expect("NUT program starts"))
    };
    let driver = start("dummy-ups", &["-a", "ups1", "-F", "-u", "nut"]);
    let upsd = start("upsd", &["-F", "-u", "nut"]);
    let served = Served {
        _driver: driver,
        _upsd: upsd,
        dir,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = ours(&["status", &served.target(), "--tls", "off"], "");
        if code == 0 && out.contains("ups.status: OL") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "NUT {}: upsd and dummy-ups never ready: {out}{err}",
            release.version
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    served
}

/// `power-snitch ARGS` with `stdin`: exit code, stdout, stderr.
fn ours(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("power-snitch runs");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[cfg(feature = "tls")]
/// The message of test-connection's step `name` in its JSON.
fn step_message(json: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .map(|s| s["message"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[cfg(feature = "tls")]
/// What each release's upsd is built with for TLS, from the libraries its upsd links: NSS
/// (libssl3.so, libnss3.so) or OpenSSL (libssl.so.3), or none.
fn tls_library(release: &Release) -> &'static str {
    let upsd = release.program("upsd").unwrap();
    let bytes = fs::read(release.root.join(upsd.strip_prefix("/").unwrap())).unwrap();
    let has = |s: &[u8]| bytes.windows(s.len()).any(|w| w == s);
    if has(b"libnss3.so") {
        "nss"
    } else if has(b"libssl.so.") {
        "openssl"
    } else {
        "none"
    }
}

#[cfg(feature = "tls")]
/// A certificate database for an NSS build of upsd (libnss3-tools' certutil on this host;
/// the database format is the same in every release's NSS): upsd.conf's CERTPATH and
/// CERTIDENT lines, the certificate as PEM and its SHA-256.
fn nss_certificate(dir: &Path, inside: &Path, nut_gid: u32) -> (String, PathBuf, String) {
    let db_dir = dir.join("nss");
    fs::create_dir_all(&db_dir).unwrap();
    let db = format!("sql:{}", db_dir.display());
    let pw = dir.join("nss-pw");
    fs::write(&pw, "dbpass\n").unwrap();
    let noise = dir.join("nss-noise");
    let bytes: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    fs::write(&noise, bytes).unwrap();
    let certutil = |args: &[&str]| -> Vec<u8> {
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
    let (pw, noise) = (pw.to_str().unwrap(), noise.to_str().unwrap());
    certutil(&["-N", "-d", &db, "-f", pw]);
    certutil(&[
        "-S",
        "-d",
        &db,
        "-f",
        pw,
        "-z",
        noise,
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
    let pem = dir.join("upsd.pem");
    fs::write(&pem, certutil(&["-L", "-d", &db, "-n", "upsd", "-a"])).unwrap();
    let sha =
        power_snitch::upsd::tls::sha256_hex(&certutil(&["-L", "-d", &db, "-n", "upsd", "-r"]));
    // upsd runs as nut: it reads the database.
    for e in fs::read_dir(&db_dir).unwrap() {
        let p = e.unwrap().path();
        nix::unistd::chown(&p, Some(0.into()), Some(nut_gid.into())).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    }
    nix::unistd::chown(&db_dir, Some(0.into()), Some(nut_gid.into())).unwrap();
    fs::set_permissions(&db_dir, fs::Permissions::from_mode(0o750)).unwrap();
    let conf = format!(
        "CERTPATH {}\nCERTIDENT \"upsd\" \"dbpass\"\n",
        inside.join("nss").display()
    );
    (conf, pem, sha)
}

/// STARTTLS with each release's upsd, set up as its build needs: every Debian build of NUT
/// 2.8.0, 2.8.1 and 2.8.5 links NSS, so a certificate database (CERTPATH, CERTIDENT). The
/// client verifies upsd by the certificate as a CA file and by its pin, logs in over TLS, and
/// reads the same variables as in clear; upsd without a certificate answers
/// FEATURE-NOT-CONFIGURED, which test-connection names as TLS not configured there.
#[cfg(feature = "tls")]
#[test]
fn the_client_speaks_tls_with_each_upsd() {
    let mut problems = Vec::new();
    for (i, release) in common::nut::releases().into_iter().enumerate() {
        let v = release.version;
        let lib = tls_library(&release);
        assert_eq!(
            lib, "nss",
            "NUT {v}: upsd links {lib}: set it up as that build needs"
        );
        let nut_gid = release.account("nut").unwrap().gids[0];
        let mut pem = PathBuf::new();
        let mut sha = String::new();
        let served = serve(&release, "tls", 13520 + i as u16, |dir, inside| {
            let (conf, p, s) = nss_certificate(dir, inside, nut_gid);
            (pem, sha) = (p, s);
            conf
        });
        let t = served.target();
        let pem_s = pem.to_str().unwrap();
        let (code, out, err) = ours(
            &[
                "test-connection",
                &t,
                "--format",
                "json",
                "--tls",
                "required",
                "--ca-file",
                pem_s,
                "--user",
                "admin",
                "--password-stdin",
            ],
            "adminpw\n",
        );
        let tls = step_message(&out, "tls");
        if code != 0 || !tls.starts_with("encrypted (TLSv1_") {
            problems.push(format!(
                "NUT {v}: test-connection --tls required --ca-file exits {code}: {tls:?} {out}{err}"
            ));
        }
        let (code, out, _) = ours(
            &[
                "test-connection",
                &t,
                "--format",
                "json",
                "--pin-sha256",
                &sha,
                "--user",
                "admin",
                "--password-stdin",
            ],
            "wrong\n",
        );
        if code != 2 || !step_message(&out, "tls").starts_with("encrypted") {
            problems.push(format!(
                "NUT {v}: over TLS by pin, a wrong password exits {code}: {out}"
            ));
        }
        let (c1, over_tls, _) = ours(
            &[
                "status",
                &t,
                "--format",
                "json",
                "--tls",
                "required",
                "--ca-file",
                pem_s,
            ],
            "",
        );
        let (c2, clear, _) = ours(&["status", &t, "--format", "json", "--tls", "off"], "");
        let keys = |s: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(s).unwrap_or_default();
            v["vars"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        if c1 != 0 || c2 != 0 || keys(&over_tls).is_empty() || keys(&over_tls) != keys(&clear) {
            problems.push(format!(
                "NUT {v}: status over TLS ({c1}) and in clear ({c2}) differ:\n{over_tls}\n{clear}"
            ));
        }
        drop(served);
        // The same upsd without a certificate.
        let served = serve(&release, "notls", 13520 + i as u16, |_, _| String::new());
        let (code, out, _) = ours(
            &[
                "test-connection",
                &served.target(),
                "--format",
                "json",
                "--pin-sha256",
                &sha,
            ],
            "",
        );
        let tls = step_message(&out, "tls");
        if code != 0 || !tls.contains("TLS is not configured in this upsd (FEATURE-NOT-CONFIGURED")
        {
            problems.push(format!(
                "NUT {v}: upsd without a certificate, test-connection exits {code}: {tls:?}"
            ));
        }
        let (code, out, _) = ours(
            &[
                "test-connection",
                &served.target(),
                "--format",
                "json",
                "--tls",
                "required",
                "--pin-sha256",
                &sha,
            ],
            "",
        );
        if code != 2 || !out.contains("FEATURE-NOT-CONFIGURED") || !out.contains("CERTPATH") {
            problems.push(format!(
                "NUT {v}: TLS required of upsd without a certificate exits {code}: {out}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A upsd built without TLS answers STARTTLS with FEATURE-NOT-SUPPORTED. No Debian build of
/// the three releases is one (all link NSS), so a server speaking exactly upsd's words for
/// that build stands in: test-connection must say this upsd has no TLS at all, not that TLS is
/// not configured.
#[cfg(feature = "tls")]
#[test]
fn a_upsd_without_tls_is_told_from_one_without_a_certificate() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { break };
                    let reply = match line.trim() {
                        "STARTTLS" => "ERR FEATURE-NOT-SUPPORTED\n".to_string(),
                        "VER" => {
                            "Network UPS Tools upsd 2.8.5 - https://www.networkupstools.org/\n"
                                .into()
                        }
                        "NETVER" => "1.3\n".into(),
                        "GET VAR ups1 ups.status" => "VAR ups1 ups.status \"OL\"\n".into(),
                        l if l.starts_with("LIST VAR ups1") => {
                            "BEGIN LIST VAR ups1\nVAR ups1 ups.status \"OL\"\nEND LIST VAR ups1\n"
                                .into()
                        }
                        "LOGOUT" => "OK Goodbye\n".into(),
                        _ => "ERR UNKNOWN-COMMAND\n".into(),
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let target = format!("ups1@127.0.0.1:{port}");
    let pin = "0".repeat(64);
    let (code, out, _) = ours(
        &[
            "test-connection",
            &target,
            "--format",
            "json",
            "--pin-sha256",
            &pin,
        ],
        "",
    );
    let tls = step_message(&out, "tls");
    assert!(
        tls.contains("this upsd is built without TLS (FEATURE-NOT-SUPPORTED)"),
        "exit {code}: {tls:?} {out}"
    );
    let (code, out, _) = ours(
        &[
            "test-connection",
            &target,
            "--format",
            "json",
            "--tls",
            "required",
            "--pin-sha256",
            &pin,
        ],
        "",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("FEATURE-NOT-SUPPORTED") && out.contains("does not support"),
        "{out}"
    );
}

/// The agent (`power-snitch run` with a settings file) against each release's upsd: it reads
/// OL, and OB once dummy-ups changes (set through upsd by that release's upsrw).
#[test]
fn the_agent_follows_each_upsd() {
    for (i, release) in common::nut::releases().into_iter().enumerate() {
        let v = release.version;
        let served = serve(&release, "agent", 13530 + i as u16, |_, _| String::new());
        let here = served.dir.join("agent");
        fs::create_dir_all(&here).unwrap();
        let settings = here.join("settings.bin");
        let s = settings.to_str().unwrap();
        let port = format!("upsd_port={}", served.port);
        for args in [
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
            ][..],
            &["settings", "set", "--settings", s, "web_listen="][..],
        ] {
            let (code, out, err) = ours(args, "");
            assert_eq!(code, 0, "{args:?}: {out}{err}");
        }
        let mut agent = Command::new(BIN)
            .args(["run", "-v", "--settings", s, "--nut-dir"])
            .arg(&served.dir)
            .arg("--control-socket")
            .arg(here.join("control.sock"))
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the agent starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = agent.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let wait = |what: &str, within: Duration| {
            let t = Instant::now();
            while !log.lock().unwrap().contains(what) {
                assert!(
                    t.elapsed() < within,
                    "NUT {v}: the agent never logged {what:?}:\n{}",
                    log.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait("ups1: status OL", Duration::from_secs(15));
        let upsrw = release.program("upsrw").expect("upsrw (nut-client)");
        let out = release
            .command(&upsrw)
            .args(["-s", "ups.status=OB", "-u", "admin", "-p", "adminpw"])
            .arg(served.target())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "NUT {v}: upsrw: {out:?}");
        wait(
            "ups1: on battery: utility power is gone (OB)",
            Duration::from_secs(10),
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let status = agent.wait().unwrap();
        let _ = reader.join();
        assert_eq!(status.code(), Some(0), "NUT {v}: the agent's exit");
    }
}

/// Each release's upsd speaks NUT's TRACKING as `power-snitch command` uses it: `SET TRACKING
/// ON` after the account, an `INSTCMD` refused with its word, an unknown id answered `ERR
/// UNKNOWN`; and `command` lists what the UPS offers (dummy-ups: none) and refuses the rest
/// before sending.
#[test]
fn each_upsd_tracks_instant_commands() {
    use std::io::{BufRead, BufReader, Write};
    for (i, release) in common::nut::releases().into_iter().enumerate() {
        let v = release.version;
        let served = serve(&release, "track", 13560 + i as u16, |_, _| String::new());
        let s = std::net::TcpStream::connect(("127.0.0.1", served.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut say = |line: &str| {
            w.write_all(format!("{line}\n").as_bytes()).unwrap();
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            l.trim_end().to_string()
        };
        assert_eq!(say("USERNAME admin"), "OK", "NUT {v}");
        assert_eq!(say("PASSWORD adminpw"), "OK", "NUT {v}");
        assert_eq!(say("SET TRACKING ON"), "OK", "NUT {v}");
        assert_eq!(
            say("INSTCMD ups1 beeper.toggle"),
            "ERR CMD-NOT-SUPPORTED",
            "NUT {v}"
        );
        assert_eq!(
            say("GET TRACKING 00000000-0000-0000-0000-000000000000"),
            "ERR UNKNOWN",
            "NUT {v}"
        );
        let (code, out, err) = ours(&["command", &served.target(), "--tls", "off"], "");
        assert_eq!(code, 0, "NUT {v}: {out}{err}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("load.off") && l.contains("needs --yes-cut-power")),
            "NUT {v}: {out}"
        );
        let run = |args: &[&str]| {
            let mut all = vec![
                "command",
                "--tls",
                "off",
                "--user",
                "admin",
                "--password-stdin",
            ];
            let t = served.target();
            all.push(&t);
            all.extend_from_slice(args);
            ours(&all, "adminpw\n")
        };
        let (code, out, err) = run(&["beeper.toggle"]);
        assert_eq!(code, 2, "NUT {v}: {out}{err}");
        assert!(
            err.contains("it offers: ") && err.contains("load.off"),
            "NUT {v}: {err}"
        );
        let (code, out, err) = run(&["load.off"]);
        assert_eq!(code, 2, "NUT {v}: {out}{err}");
        assert!(err.contains("[cuts-power]"), "NUT {v}: {err}");
        // Confirmed, it goes to dummy-ups, and TRACKING tells how it went.
        let (code, out, err) = run(&["load.off", "--yes-cut-power"]);
        eprintln!("NUT {v}: load.off: exit {code}: {out}{err}");
        assert!(out.contains("ups1: load.off: "), "NUT {v}: {out}{err}");
    }
}
