//! The client against servers that misbehave: every one ends with a clear error within the
//! request timeout, and the client reads no more than its bounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use power_snitch::upsd::client::{Client, Options};
use power_snitch::upsd::error::ErrorKind;
use power_snitch::upsd::proto::Request;
use power_snitch::upsd::target::Target;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_millis(500);

fn opts() -> Options {
    Options {
        connect_timeout: TIMEOUT,
        request_timeout: TIMEOUT,
        retry_count: 1,
        retry_delay: Duration::from_millis(50),
        tls: Default::default(),
    }
}

/// Serves every connection with `behave(request line, socket)`, counting bytes written.
async fn server<F, Fut>(behave: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream, Arc<AtomicUsize>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let behave = Arc::new(behave);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let b = Arc::clone(&behave);
            let c = Arc::clone(&counter);
            tokio::spawn(async move { b(s, c).await });
        }
    });
    (port, sent)
}

fn client(port: u16) -> Client {
    Client::new(
        Target::parse(&format!("ups@127.0.0.1:{port}")).unwrap(),
        opts(),
    )
}

/// Writes `chunk` until the peer stops reading or `total` bytes are out.
async fn flood(s: &mut tokio::net::TcpStream, chunk: &[u8], total: usize, sent: &AtomicUsize) {
    while sent.load(Ordering::SeqCst) < total {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(chunk)).await {
            Ok(Ok(())) => {
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            _ => return,
        }
    }
}

async fn read_request(s: &mut tokio::net::TcpStream) -> String {
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line).await;
    line
}

#[tokio::test]
async fn a_ten_megabyte_line_is_refused_after_the_limit() {
    let (port, sent) = server(|mut s, sent| async move {
        read_request(&mut s).await;
        s.write_all(b"VAR ups x \"").await.ok();
        flood(&mut s, &[b'a'; 64 * 1024], 10 * 1024 * 1024, &sent).await;
    })
    .await;
    let t = Instant::now();
    let e = client(port)
        .request(&Request::GetVar("ups".into(), "x".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Protocol, "line-too-long"),
        "{e}"
    );
    assert!(t.elapsed() < TIMEOUT);
    // The client stopped reading at its limit: most of the 10 MB was never taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sent.load(Ordering::SeqCst) < 10 * 1024 * 1024,
        "the whole line was read"
    );
}

#[tokio::test]
async fn endless_lines_to_a_list_end_at_the_item_bound_or_the_timeout() {
    let (port, _) = server(|mut s, sent| async move {
        read_request(&mut s).await;
        s.write_all(b"BEGIN LIST VAR ups\n").await.ok();
        flood(
            &mut s,
            b"VAR ups battery.charge \"100\"\n",
            usize::MAX,
            &sent,
        )
        .await;
    })
    .await;
    let t = Instant::now();
    let e = client(port).vars("ups").await.unwrap_err();
    assert!(
        e.kind() == ErrorKind::Protocol || e.code() == "timeout",
        "{e}"
    );
    assert!(t.elapsed() < TIMEOUT * 3, "{:?}", t.elapsed());
}

#[tokio::test]
async fn binary_garbage_is_a_protocol_error() {
    let (port, _) = server(|mut s, _| async move {
        read_request(&mut s).await;
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        s.write_all(&garbage).await.ok();
        s.write_all(b"\n").await.ok();
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let e = client(port)
        .request(&Request::GetVar("ups".into(), "x".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn a_server_that_says_nothing_times_out() {
    let (port, _) = server(|s, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    })
    .await;
    let t = Instant::now();
    let mut c = client(port);
    let e = c.request(&Request::ListUps).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Connection, "timeout"),
        "{e}"
    );
    // One try and one retry, each bounded by the request timeout.
    assert!(
        t.elapsed() < TIMEOUT * 3 + Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_list_that_never_ends_times_out() {
    let (port, _) = server(|mut s, _| async move {
        read_request(&mut s).await;
        s.write_all(b"BEGIN LIST UPS\nUPS a \"x\"\n").await.ok();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let e = client(port).list_ups().await.unwrap_err();
    assert_eq!(e.code(), "timeout", "{e}");
}

#[tokio::test]
async fn a_dropped_connection_is_reopened_for_the_next_read() {
    // Like upsd's idle drop: one reply per connection, then close.
    let (port, _) = server(|mut s, _| async move {
        read_request(&mut s).await;
        s.write_all(b"VAR ups ups.status \"OL\"\n").await.ok();
    })
    .await;
    let mut c = client(port);
    let req = Request::GetVar("ups".into(), "ups.status".into());
    c.request(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.request(&req).await.unwrap();
    // A write is never sent twice.
    let set = Request::SetVar("ups".into(), "x".into(), "1".into());
    let e = c.request(&set).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}

/// An abort's core dump would hold the UPS password: the shipped units forbid it (and the
/// binary turns itself non-dumpable, see `logger::forbid_core_dumps`).
#[test]
fn the_units_forbid_core_dumps() {
    for unit in ["power-snitch.service", "power-snitch-check@.service"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(unit);
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.lines().any(|l| l == "LimitCORE=0"),
            "{unit} lacks LimitCORE=0"
        );
    }
}

/// The section `probe --ups-conf` suggests for a UPS whose serial, vendor and product hold any
/// printable bytes validates clean, and its `serial` matcher matches exactly that serial.
#[test]
fn every_suggested_section_validates_clean_and_matches_its_ups() {
    use power_snitch::nut::diag::Severity;
    use power_snitch::nut::drivers::DriverDb;
    use power_snitch::nut::version::NutVersion;
    use power_snitch::nut::{host, validate, Context};
    use power_snitch::probe::cross::section_text;
    use power_snitch::probe::matcher::Regex;
    use power_snitch::probe::{table, Bus, Detected, IdentifiedBy, Inventory};

    let printable: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
    // Every printable byte alone, around text, then strings drawn from them.
    let mut cases: Vec<String> = printable.iter().map(|c| format!("A{c}1")).collect();
    cases.extend(printable.iter().map(|c| c.to_string()));
    let mut seed = 0x0123_4567_89ab_cdefu64;
    for _ in 0..400 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 24) as usize + 1;
        let s: String = (0..len)
            .map(|i| printable[((seed >> (i % 8 * 8)) as usize + i * 31) % printable.len()])
            .collect();
        cases.push(s);
    }
    let dir = std::env::temp_dir().join(format!("ps-suggest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cx = Context {
        version: NutVersion::NEWEST,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    for (n, s) in cases.iter().enumerate() {
        let ups = Detected {
            bus: Bus::Usb,
            usb: None,
            serial_port: None,
            vendor_id: Some(0x0764),
            product_id: Some(0x0501),
            vendor: Some(s.clone()),
            model: Some(format!("{s} model")),
            serial: Some(s.clone()),
            port: "auto".into(),
            drivers: vec!["usbhid-ups".into()],
            protocol: None,
            identified_by: IdentifiedBy::Table(table::Source::Table),
        };
        let text = section_text(&ups, &Inventory::default(), &[], |_| true);
        std::fs::write(dir.join("ups.conf"), format!("{text}\n")).unwrap();
        let (parsed, findings) = validate(&host::snapshot(&dir), &cx);
        let bad: Vec<String> = findings
            .iter()
            .filter(|f| f.file == "ups.conf" && f.severity != Severity::Info)
            .map(|f| f.message.clone())
            .collect();
        assert!(bad.is_empty(), "case {n} {s:?}:\n{text}\n{bad:?}");
        let conf = parsed.ups.expect("ups.conf parsed");
        let section = conf.sections.first().expect("one section");
        let serial = section.value("serial").expect("a serial matcher");
        let re = Regex::new(serial).unwrap_or_else(|e| panic!("case {n} {s:?}: `{serial}`: {e}"));
        assert!(
            re.full_match(s),
            "case {n}: `{serial}` does not match {s:?}"
        );
        assert!(
            !re.full_match(&format!("{s}x")),
            "case {n}: `{serial}` matches more"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fake upsd on a thread of its own, for the real binary: how it treats each connection.
#[derive(Clone, Copy, Debug)]
enum Impostor {
    /// Never accepts: the kernel completes the handshake, nobody reads.
    Silent,
    /// Accepts and reads, never answers.
    HalfOpen,
    /// Answers one byte per second, forever.
    Trickle,
    /// Answers STARTTLS with OK, then says nothing (no TLS handshake).
    StartTlsThenSilence,
}

/// Starts the impostor; returns its port and the number of request lines it has read.
fn impostor(kind: Impostor) -> (u16, Arc<AtomicUsize>) {
    use std::io::{BufRead, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let lines = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&lines);
    std::thread::spawn(move || {
        if let Impostor::Silent = kind {
            std::thread::sleep(Duration::from_secs(120));
            drop(l);
            return;
        }
        for s in l.incoming().flatten() {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = std::io::BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    match kind {
                        Impostor::HalfOpen => {}
                        Impostor::Trickle => {
                            for b in b"BEGIN LIST VAR ups\nVAR ups ups.status \"OL\"\n".repeat(100)
                            {
                                if w.write_all(&[b]).is_err() {
                                    return;
                                }
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                        Impostor::StartTlsThenSilence if line.starts_with("STARTTLS") => {
                            let _ = w.write_all(b"OK STARTTLS\n");
                            // Holds the connection open, reading nothing of the handshake.
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                        _ => {}
                    }
                    line.clear();
                }
            });
        }
    });
    (port, lines)
}

/// `--timeout` bounds the whole command: `status` and `test-connection` against each impostor
/// end with exit 2 within the timeout (plus the process's start), whatever the retry policy
/// (3 retries, 1 s apart), and test-connection sends nothing after the transport failed.
#[test]
fn timeout_bounds_the_whole_command_against_every_impostor() {
    const LIMIT: f64 = 2.0;
    let mut figures = Vec::new();
    for kind in [
        Impostor::Silent,
        Impostor::HalfOpen,
        Impostor::Trickle,
        Impostor::StartTlsThenSilence,
    ] {
        let (port, lines) = impostor(kind);
        let target = format!("ups@127.0.0.1:{port}");
        for command in ["status", "test-connection"] {
            let before = lines.load(Ordering::SeqCst);
            let t = Instant::now();
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_power-snitch"))
                .args([command, &target, "--timeout", "2", "--retries", "3"])
                .args([
                    "--retry-delay",
                    "1",
                    "--settings",
                    "/nonexistent/settings.bin",
                ])
                // A pin makes the client send STARTTLS (and verify what follows by it).
                .args(["--pin-sha256", &"ab".repeat(32)])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let took = t.elapsed().as_secs_f64();
            figures.push(format!("{kind:?} {command}: {took:.2} s"));
            assert_eq!(o.status.code(), Some(2), "{kind:?} {command}: {o:?}");
            assert!(
                took < LIMIT + 1.0,
                "{kind:?} {command} took {took:.2} s with --timeout 2"
            );
            let sent = lines.load(Ordering::SeqCst) - before;
            // STARTTLS, then (unless upsd answered it) the first request: never a second try.
            assert!(sent <= 2, "{kind:?} {command}: {sent} request lines sent");
            if command == "test-connection" {
                let out = String::from_utf8_lossy(&o.stdout);
                assert_eq!(
                    out.matches("FAIL").count(),
                    1,
                    "{kind:?}: one failed step, then nothing:\n{out}"
                );
            }
        }
    }
    eprintln!("{}", figures.join("\n"));
}

/// A pids cgroup holding at most `max` tasks (cgroup v1's pids hierarchy, or v2's), removed
/// when dropped. Fails, not skips, where neither is available.
struct PidsLimit(std::path::PathBuf);

impl PidsLimit {
    fn new(max: u32) -> PidsLimit {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ps-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let v1 = std::path::Path::new("/sys/fs/cgroup/pids");
        let base = if v1.join("cgroup.procs").exists() {
            v1.to_path_buf()
        } else {
            let v2 = std::path::Path::new("/sys/fs/cgroup");
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+pids");
            v2.to_path_buf()
        };
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).expect("a pids cgroup (needs root and the pids controller)");
        std::fs::write(dir.join("pids.max"), max.to_string()).unwrap();
        PidsLimit(dir)
    }

    /// The binary with `args`, started inside the cgroup.
    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                self.0.display()
            ))
            .arg(env!("CARGO_BIN_EXE_power-snitch"))
            .args(args)
            .env_remove("NUT_CONFPATH")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for PidsLimit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A pty nobody answers on, as a serial port ups.conf names.
fn silent_port(tag: &str) -> (nix::pty::OpenptyResult, std::path::PathBuf) {
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
    let pts = nix::unistd::ttyname(&pty.slave).unwrap();
    let dir = std::env::temp_dir().join(format!("ps-pids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(format!("tty{tag}"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(pts, &link).unwrap();
    (pty, link)
}

/// `check` with serial ports in ups.conf and a upsd to ask by name, under a pids limit that
/// leaves no thread to spawn: it probes the ports one after the other and resolves the name
/// itself, and reports what it found (never "failed to spawn thread", never an abort).
#[test]
fn check_under_a_pids_limit_degrades_instead_of_aborting() {
    let (a, pa) = silent_port("a");
    let (b, pb) = silent_port("b");
    drop((a.slave, b.slave));
    let base = std::env::temp_dir().join(format!("ps-pids-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("sys/bus/usb/devices")).unwrap();
    std::fs::create_dir_all(base.join("sys/class/tty")).unwrap();
    std::fs::create_dir_all(base.join("nut")).unwrap();
    std::fs::write(
        base.join("nut/ups.conf"),
        format!(
            "[a]\n\tdriver = nutdrv_qx\n\tport = {}\n[b]\n\tdriver = apcsmart\n\tport = {}\n",
            pa.display(),
            pb.display()
        ),
    )
    .unwrap();
    std::fs::write(base.join("nut/nut.conf"), "MODE=standalone\n").unwrap();
    let sys = base.join("sys").display().to_string();
    let nut = base.join("nut").display().to_string();
    let args = [
        "check",
        "--format",
        "json",
        "--nut-version",
        "2.8.0",
        "--sysfs-root",
        &sys,
        "--nut-dir",
        &nut,
        "--upsd",
        "localhost:1",
        "--settings",
        "/nonexistent/settings.bin",
    ];
    let codes = |o: &std::process::Output| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
        let mut c: Vec<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect();
        c.sort();
        c
    };
    let free = std::process::Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .env_remove("NUT_CONFPATH")
        .output()
        .unwrap();
    let expected = codes(&free);
    assert!(
        expected.iter().any(|c| c == "upsd-unreachable"),
        "{expected:?}"
    );
    for max in [1, 3] {
        let limit = PidsLimit::new(max);
        let o = limit.run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code().is_some_and(|c| c <= 2),
            "pids.max={max}: {:?} {err}",
            o.status
        );
        assert!(
            !err.contains("panicked") && !err.contains("spawn"),
            "pids.max={max}: {err}"
        );
        assert_eq!(
            codes(&o),
            expected,
            "pids.max={max}: the same findings as without a limit"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn a_deadline_ends_every_retry_and_read_by_then() {
    let (port, _) = server(|s, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    })
    .await;
    let mut c = client(port);
    c.opts.retry_count = 5;
    let t = Instant::now();
    c.set_deadline(Some(
        tokio::time::Instant::now() + Duration::from_millis(300),
    ));
    let e = c.request(&Request::ListUps).await.unwrap_err();
    assert_eq!(e.code(), "timeout", "{e}");
    assert!(e.is_transport() && e.refusal().is_none(), "{e:?}");
    assert!(e.message().contains("the command's time was up"), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
}
