//! This machine as the NUT server of the LAN, against real NUT: Debian's upsd and dummy-ups,
//! changed through the manage path with the Direct runner, and a second, real upsmon in
//! secondary mode (its own configuration and state directory) on 127.0.0.2 that logs in with
//! the account `client add` made; then `client remove` and its login refused.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nut::{Nut, LIBEXEC};
use power_snitch::inspect::clients;
use power_snitch::inspect::{Face, Given, Installed, Plan};
use power_snitch::manage::run::{alive, Direct};
use power_snitch::manage::{change, Apply, ManageError, Mode, Outcome, Proposal};
use power_snitch::nut::edit::Preset;
use power_snitch::nut::version::NutVersion;

const V: NutVersion = NutVersion::new(2, 8, 0);

fn plan(dir: &Path) -> Plan {
    let given = Given {
        nut_dir: Some(dir.to_path_buf()),
        settings: Some(dir.join("state/settings.bin")),
        ..Given::default()
    };
    Plan::resolve(Face::Sync, &given, Installed::detect(Some(V))).unwrap()
}

/// What the Direct runner starts (upsd after a restart) is stopped by its PID file at the end.
struct Started(PathBuf);

impl Drop for Started {
    fn drop(&mut self) {
        for e in fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with(".pid") {
                if let Some(pid) = fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

/// A real upsmon in secondary mode, in a directory of its own: killed (by its PID, never by
/// NUT's PID file, which other programs may share) when dropped.
struct Secondary {
    dir: PathBuf,
    child: Option<Child>,
}

impl Secondary {
    fn new(name: &str, monitor: &str) -> Secondary {
        let dir = std::env::temp_dir().join(format!("ps-clients-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("upsmon.conf"),
            format!(
                "{monitor}\nMINSUPPLIES 0\nSHUTDOWNCMD \"/bin/true\"\nPOLLFREQ 1\nPOLLFREQALERT 1\nDEADTIME 5\n"
            ),
        )
        .unwrap();
        Secondary { dir, child: None }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("upsmon.log")).unwrap_or_default()
    }

    /// Starts upsmon; while another upsmon on this machine holds NUT's PID file (upsmon 2.8
    /// refuses to start then), waits for it, at most 90 s. (upsmon also names "previous upsmon
    /// instance" when it finds no PID file at all: only its refusal counts.)
    fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.spawn();
            std::thread::sleep(Duration::from_millis(700));
            if !self
                .log()
                .contains("A previous upsmon instance is already running")
            {
                return;
            }
            self.stop();
            assert!(
                Instant::now() < deadline,
                "another upsmon kept running for 90 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn spawn(&mut self) {
        self.stop();
        let log = fs::File::create(self.dir.join("upsmon.log")).unwrap();
        // A process group of its own: upsmon forks, and the fork outlives the parent.
        let child = Command::new(format!("{LIBEXEC}/upsmon"))
            .process_group(0)
            .args(["-D", "-F", "-u", "root"])
            .env("NUT_CONFPATH", &self.dir)
            .env("NUT_STATEPATH", &self.dir)
            .env("NUT_ALTPIDPATH", &self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("upsmon starts");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // upsmon forks: the whole group goes.
            let pid = c.id() as i32;
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(300));
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
            // Its PID file in NUT's run directory, when it was ours or names no running
            // process (upsmon's fork, orphaned, may stay a zombie under an init that reaps none).
            let run = Path::new("/run/nut/upsmon.pid");
            if fs::read_to_string(run)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .is_some_and(|p| p == pid || !alive(nix::unistd::Pid::from_raw(p)))
            {
                let _ = fs::remove_file(run);
            }
        }
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The source addresses of the established TCP connections to `addr:port` (`/proc/net/tcp`).
fn connections_to(addr: [u8; 4], port: u16) -> Vec<String> {
    let hex =
        |a: [u8; 4], p: u16| format!("{:02X}{:02X}{:02X}{:02X}:{p:04X}", a[3], a[2], a[1], a[0]);
    let want = hex(addr, port);
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[2] == want && f[3] == "01").then(|| {
                let (ip, _) = f[1].split_once(':')?;
                let n = u32::from_str_radix(ip, 16).ok()?;
                Some(std::net::Ipv4Addr::from(n.swap_bytes()).to_string())
            })?
        })
        .collect()
}

fn eventually(limit: Duration, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn read(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap_or_default()
}

/// A login attempt with the product's client: Ok, or upsd's ERR code (or the transport's).
fn try_login(host: &str, port: u16, user: &str, password: &str) -> Result<(), String> {
    use power_snitch::upsd::client::{Client, Options};
    use power_snitch::upsd::tls::{TlsMode, TlsOptions};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = power_snitch::nut::target::Target {
            ups: None,
            host: host.into(),
            port,
        };
        let opts = Options {
            retry_count: 0,
            tls: TlsOptions {
                mode: TlsMode::Off,
                allow_plaintext_password: true,
                ..TlsOptions::default()
            },
            ..Options::default()
        };
        let mut c = Client::new(target, opts);
        power_snitch::upsd::diagnose::credentials(&mut c, "ups", user, password, true)
            .await
            .map(|_| ())
            .map_err(|e| format!("{} {}", e.code(), e.message()))
    })
}

#[test]
fn a_real_secondary_upsmon_logs_in_with_the_account_made_and_is_refused_after_remove() {
    let users = "# upsd.users\n\n[monitor-ups]\n\tpassword = pw-of-the-monitor\n\tupsmon primary\n";
    let mut nut = Nut::new(
        "clients",
        &[("ups", "dummy.dev", "ups.status: OL\nbattery.charge: 100\n")],
        users,
        "",
    );
    let port = nut.port;
    let dir = nut.dir.clone();
    fs::write(dir.join("nut.conf"), "# nut.conf\nMODE=standalone\n").unwrap();
    fs::write(
        dir.join("upsmon.conf"),
        format!("MONITOR ups@127.0.0.1:{port} 1 monitor-ups pw-of-the-monitor primary\n"),
    )
    .unwrap();
    let before: Vec<String> = [
        "nut.conf",
        "upsd.conf",
        "upsd.users",
        "upsmon.conf",
        "ups.conf",
    ]
    .iter()
    .map(|f| read(&dir, f))
    .collect();
    nut.start_driver("ups");
    nut.start_upsd();
    nut.wait_ready("ups");
    let _started = Started(dir.clone());
    let mut run = Direct::new(&dir, &dir, Path::new(LIBEXEC), Some("root"));
    let mut make = |p: Proposal| -> Result<Outcome, ManageError> {
        change(
            &power_snitch::manage::Nut::at(&dir, V, None),
            &p,
            Mode::Apply,
            Some(Apply {
                runner: &mut run,
                verify_timeout: Duration::from_secs(30),
            }),
        )
    };
    let plan = plan(&dir);

    // The preview changes nothing and runs nothing.
    let mut dry = |p: Proposal| {
        change(
            &power_snitch::manage::Nut::at(&dir, V, None),
            &p,
            Mode::DryRun,
            None,
        )
    };
    let preview = clients::add(
        &plan,
        "nas",
        Preset::Upsmon,
        None,
        Some("127.0.0.2"),
        Mode::DryRun,
        &mut dry,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(preview.login.is_none());
    assert!(
        preview.outcome.diffs.iter().any(|d| d.file == "upsd.conf" && d.diff.contains(&format!("+LISTEN 127.0.0.2 {port}"))),
        "{:?}",
        preview.outcome.diffs
    );
    assert!(
        preview
            .outcome
            .diffs
            .iter()
            .all(|d| !d.diff.contains(&preview.password)),
        "the preview masks the password"
    );
    assert!(
        preview.outcome.actions.iter().any(|a| a == "restart upsd"),
        "{:?}",
        preview.outcome.actions
    );
    let now: Vec<String> = [
        "nut.conf",
        "upsd.conf",
        "upsd.users",
        "upsmon.conf",
        "ups.conf",
    ]
    .iter()
    .map(|f| read(&dir, f))
    .collect();
    assert_eq!(now, before);

    // Applied: upsd restarted, listening on 127.0.0.2 too, the account logs in there.
    let nas = clients::add(
        &plan,
        "nas",
        Preset::Upsmon,
        None,
        Some("127.0.0.2"),
        Mode::Apply,
        &mut make,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (nas.user.as_str(), nas.ups.as_str(), nas.port),
        ("nas", "ups", port)
    );
    assert!(nas.password.len() >= 32);
    assert!(
        nas.login
            .as_deref()
            .is_some_and(|l| l.contains("127.0.0.2")),
        "{:?}",
        nas.login
    );
    assert!(
        nas.outcome.ran.iter().any(|a| a == "restart upsd"),
        "{:?}",
        nas.outcome.ran
    );
    assert_eq!(
        nas.monitor_line(),
        format!(
            "MONITOR ups@127.0.0.2:{port} 1 nas {} secondary",
            nas.password
        )
    );
    assert!(read(&dir, "nut.conf").contains("MODE=netserver"));
    assert!(
        read(&dir, "upsd.conf").contains(&format!("LISTEN 127.0.0.1 {port}\n")),
        "loopback kept"
    );
    // A second client: upsd already listens there, so only upsd.users changes (a reload).
    let ha = clients::add(
        &plan,
        "ha",
        Preset::HomeAssistant,
        None,
        Some("127.0.0.2"),
        Mode::Apply,
        &mut make,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ha.outcome.diffs.iter().all(|d| d.file == "upsd.users"),
        "{:?}",
        ha.outcome.diffs
    );
    assert!(
        !ha.outcome.ran.iter().any(|a| a.contains("restart")),
        "{:?}",
        ha.outcome.ran
    );

    // The real secondary upsmon, with exactly the MONITOR line the client was told. Before
    // it, nobody is logged in (no upsmon runs on the server side here).
    let listed = clients::list(&plan).unwrap();
    assert!(listed.error.is_none(), "{:?}", listed.error);
    assert!(listed.connected.is_empty(), "{:?}", listed.connected);
    let mut secondary = Secondary::new("upsmon", &nas.monitor_line());
    secondary.start();
    // Its connection goes to 127.0.0.2 (the kernel's table), and upsd lists the address it
    // comes from (a connection to any loopback address comes from 127.0.0.1).
    let deadline = Instant::now() + Duration::from_secs(30);
    let source = loop {
        let to_lan = connections_to([127, 0, 0, 2], port);
        let listed = clients::list(&plan).unwrap();
        if let Some(src) = to_lan
            .iter()
            .find(|s| listed.connected.iter().any(|c| &c.address == *s))
        {
            break src.clone();
        }
        assert!(
            Instant::now() < deadline,
            "upsd lists the secondary's connection to 127.0.0.2 within 30 s: {to_lan:?} {listed:?}\nupsmon said:\n{}",
            secondary.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let listed = clients::list(&plan).unwrap();
    let from = listed
        .connected
        .iter()
        .find(|c| c.address == source)
        .unwrap();
    assert_eq!(from.ups, "ups");
    assert!(
        from.account.contains("not told by upsd"),
        "{}",
        from.account
    );
    assert!(listed
        .accounts
        .iter()
        .any(|a| a.name == "nas" && a.preset == Some(Preset::Upsmon)));
    assert!(listed
        .accounts
        .iter()
        .any(|a| a.name == "ha" && a.preset == Some(Preset::HomeAssistant)));
    assert!(
        listed.logins.iter().any(|(u, n)| u == "ups" && *n == 1),
        "{:?}",
        listed.logins
    );
    assert!(
        !secondary.log().contains("ACCESS-DENIED"),
        "{}",
        secondary.log()
    );

    // Removed: the account is gone; upsmon, started again, is refused.
    let o = clients::remove(&plan, "nas", &mut make).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        o.diffs.iter().all(|d| d.file == "upsd.users"),
        "ha still needs the LAN"
    );
    assert!(!read(&dir, "upsd.users").contains("[nas]"));
    secondary.start();
    eventually(Duration::from_secs(30), "upsmon's login is refused", || {
        let log = secondary.log();
        log.contains("ACCESS-DENIED") || log.contains("Access denied")
    });
    let refused = try_login("127.0.0.2", port, "nas", &nas.password).unwrap_err();
    assert!(refused.contains("ACCESS-DENIED"), "{refused}");
    assert_eq!(try_login("127.0.0.2", port, "ha", &ha.password), Ok(()));
    secondary.stop();

    // The last one gone: LISTEN and MODE as they were, byte for byte; 127.0.0.2 is closed.
    clients::remove(&plan, "ha", &mut make).unwrap_or_else(|e| panic!("{e}"));
    let now: Vec<String> = [
        "nut.conf",
        "upsd.conf",
        "upsd.users",
        "upsmon.conf",
        "ups.conf",
    ]
    .iter()
    .map(|f| read(&dir, f))
    .collect();
    assert_eq!(now, before);
    assert!(std::net::TcpStream::connect(("127.0.0.2", port)).is_err());
    assert_eq!(
        try_login("127.0.0.1", port, "monitor-ups", "pw-of-the-monitor"),
        Ok(())
    );
    let e = clients::remove(&plan, "ha", &mut make).unwrap_err();
    assert!(e.to_string().contains("no such client"), "{e}");
}

#[cfg(feature = "web")]
#[test]
fn the_page_previews_adds_and_removes_a_client_and_a_forged_request_changes_nothing() {
    use common::http::{enc, get, post};
    use common::web::{bin, Agent};
    let users = "# upsd.users\n\n[monitor-ups]\n\tpassword = pw-of-the-monitor\n\tupsmon primary\n";
    let mut nut = Nut::new(
        "clients-page",
        &[("ups", "dummy.dev", "ups.status: OL\nbattery.charge: 100\n")],
        users,
        "",
    );
    let port = nut.port;
    let dir = nut.dir.clone();
    fs::write(dir.join("nut.conf"), "# nut.conf\nMODE=standalone\n").unwrap();
    let files = || -> Vec<String> {
        ["nut.conf", "upsd.conf", "upsd.users", "ups.conf"]
            .iter()
            .map(|f| read(&dir, f))
            .collect()
    };
    let before = files();
    nut.start_driver("ups");
    nut.start_upsd();
    nut.wait_ready("ups");
    let _started = Started(dir.clone());
    let agent = Agent::start("clients-page", &dir, &["nut_driver=dummy-ups"], None);
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(&["web-password", "--settings", &s], "page-admin-pw\n");
    assert!(out.status.success(), "{out:?}");
    let r = post(
        agent.port,
        "/login",
        None,
        &format!("password={}&next=%2Fclients", enc("page-admin-pw")),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.cookie("ps_session").unwrap();
    let c = Some(cookie.as_str());
    let page = get(agent.port, "/clients", c);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Add a client") && page.body.contains("No client account"),
        "{}",
        page.body
    );
    assert!(page.body.contains("LIST CLIENT"), "{}", page.body);
    let csrf = page.csrf().expect("a CSRF token");
    // Without a session: the login page; a forged write (no token): refused, nothing changes.
    assert_eq!(get(agent.port, "/clients", None).status, 303);
    let add = "name=diskstation&preset=synology&listen=127.0.0.2";
    let r = post(agent.port, "/clients/add", c, &format!("{add}&confirm=yes"));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(files(), before);

    // The preview: the diff, the well-known password's warning, a confirm form; nothing written.
    let r = post(agent.port, "/clients/add", c, &format!("csrf={csrf}&{add}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!("+LISTEN 127.0.0.2 {port}")),
        "{}",
        r.body
    );
    assert!(r.body.contains("known to everyone"), "{}", r.body);
    assert!(
        r.body.contains("name=\"confirm\" value=\"yes\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("secret</code>"), "{}", r.body);
    assert_eq!(files(), before);

    // Confirmed: applied, the login verified live, and what to enter on DSM, once.
    let r = post(
        agent.port,
        "/clients/add",
        c,
        &format!("csrf={csrf}&{add}&confirm=yes"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Verified live"), "{}", r.body);
    assert!(
        r.body.contains("<code>monuser</code>") && r.body.contains("<code>secret</code>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<code>127.0.0.2</code>"), "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(read(&dir, "upsd.users")
        .contains("# power-snitch client diskstation (synology)\n[monuser]"));
    assert_eq!(try_login("127.0.0.2", port, "monuser", "secret"), Ok(()));
    let page = get(agent.port, "/clients", c);
    assert!(
        page.body.contains("diskstation") && page.body.contains("monuser"),
        "{}",
        page.body
    );

    // Remove: previewed, then made; NUT's files as they were.
    let r = post(
        agent.port,
        "/clients/remove",
        c,
        &format!("csrf={csrf}&name=diskstation"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("-[monuser]"), "{}", r.body);
    assert!(
        read(&dir, "upsd.users").contains("[monuser]"),
        "the preview writes nothing"
    );
    let r = post(
        agent.port,
        "/clients/remove",
        c,
        &format!("csrf={csrf}&name=diskstation&confirm=yes"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(files(), before);
    assert!(try_login("127.0.0.1", port, "monuser", "secret").is_err());
    let r = post(
        agent.port,
        "/clients/remove",
        c,
        &format!("csrf={csrf}&name=diskstation"),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}

#[test]
fn the_client_command_previews_writes_without_applying_lists_and_refuses_what_it_cannot_do() {
    let dir = std::env::temp_dir().join(format!("ps-clients-{}-cli", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (f, t) in [
        ("nut.conf", "MODE=standalone\n"),
        (
            "ups.conf",
            "[ups]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
        ),
        ("upsd.conf", "# upsd.conf\n"),
        (
            "upsd.users",
            "[monitor-ups]\n\tpassword = pw-of-the-monitor\n\tupsmon primary\n",
        ),
        (
            "upsmon.conf",
            "MONITOR ups@localhost 1 monitor-ups pw-of-the-monitor primary\n",
        ),
    ] {
        fs::write(dir.join(f), t).unwrap();
    }
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
            .arg("client")
            .args(args)
            .args(["--nut-version", "2.8.0", "--nut-dir"])
            .arg(&dir)
            .arg("--settings")
            .arg(dir.join("settings.bin"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let before = fs::read(dir.join("upsd.conf")).unwrap();
    let (code, out, err) = run(&[
        "add",
        "pve",
        "--preset",
        "proxmox",
        "--listen",
        "192.0.2.7",
        "--dry-run",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("+LISTEN 127.0.0.1")
            && out.contains("+LISTEN ::1")
            && out.contains("+LISTEN 192.0.2.7"),
        "{out}"
    );
    assert!(out.contains("nothing written (--dry-run)"), "{out}");
    assert!(out.contains("MONITOR ups@192.0.2.7 1 pve "), "{out}");
    assert_eq!(fs::read(dir.join("upsd.conf")).unwrap(), before);
    let (code, out, err) = run(&[
        "add",
        "nas",
        "--preset",
        "synology",
        "--listen",
        "192.0.2.7",
        "--no-apply",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("warning: `monuser`/`secret`"), "{out}");
    let (code, out, _) = run(&["list"]);
    // No upsd runs here: the accounts are listed, and upsd's absence said.
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("client nas") && out.contains("account monuser"),
        "{out}"
    );
    assert!(out.contains("was not asked"), "{out}");
    let (code, out, err) = run(&["remove", "nas", "--no-apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        fs::read(dir.join("upsd.conf")).unwrap(),
        before,
        "the last client gone: upsd.conf as it was"
    );
    assert_eq!(
        fs::read_to_string(dir.join("nut.conf")).unwrap(),
        "MODE=standalone\n"
    );
    // Usage errors: exit 3, saying what is wrong.
    assert_eq!(run(&["add", "x"]).0, Some(3));
    let (code, _, err) = run(&["add", "x", "--preset", "qnap"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--preset qnap"), "{err}");
    assert_eq!(run(&["frobnicate"]).0, Some(3));
    let (code, _, err) = run(&["remove", "nobody", "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no such client"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}
