//! Serial probing against simulated UPSes on pseudo-terminals (the same simulators NUT's own
//! drivers are tested against in tests/simulators.rs), and the cross-check of ups.conf's
//! serial sections.

mod common;

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::sim::{ApcSmart, Megatec, PtySim, UpsState};
use serde_json::Value;

fn state() -> UpsState {
    UpsState {
        mfr: "INNO TECH".into(),
        model: "UPS 1000".into(),
        serial: "AS0934123456".into(),
        firmware: "V2.10".into(),
        ..UpsState::default()
    }
}

/// A Megatec UPS on a pty that no process holds open, as a real serial port.
fn megatec() -> PtySim<Megatec> {
    let mut p = PtySim::start(Megatec::new(state())).unwrap();
    p.release();
    p
}

fn apc() -> PtySim<ApcSmart> {
    let mut s = state();
    s.model = "Smart-UPS 1500".into();
    let mut p = PtySim::start(ApcSmart::new(s)).unwrap();
    p.release();
    p
}

/// An empty captured root (this machine's own ports are not the test's) and a NUT directory.
fn dirs(tag: &str, ups_conf: Option<&str>) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("ps-serial-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    // A machine without USB devices or serial ports of its own: sysfs's empty directories.
    fs::create_dir_all(base.join("sys/bus/usb/devices")).unwrap();
    fs::create_dir_all(base.join("sys/class/tty")).unwrap();
    fs::create_dir_all(base.join("nut")).unwrap();
    if let Some(c) = ups_conf {
        fs::write(base.join("nut/ups.conf"), c).unwrap();
        fs::write(base.join("nut/nut.conf"), "MODE=none\n").unwrap();
    }
    (base.join("sys"), base.join("nut"))
}

fn run(args: &[&str], sys: &Path, nut: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .args(["--format", "json", "--nut-version", "2.8.0", "--sysfs-root"])
        .arg(sys)
        .arg("--nut-dir")
        .arg(nut)
        .env_remove("NUT_CONFPATH")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn probe(ports: &[&Path], tag: &str) -> Value {
    let (sys, nut) = dirs(tag, None);
    let mut args = vec!["probe".to_string()];
    for p in ports {
        args.push("--serial-port".into());
        args.push(p.display().to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    json(&run(&refs, &sys, &nut))
}

#[test]
fn a_megatec_ups_is_identified_by_its_dialogue() {
    let sim = megatec();
    let v = probe(&[sim.link()], "megatec");
    let d = &v["devices"][0];
    assert_eq!(d["bus"], "serial", "{v}");
    assert_eq!(d["protocol"], "megatec");
    assert_eq!(d["drivers"], serde_json::json!(["nutdrv_qx", "blazer_ser"]));
    assert_eq!(d["identified_by"], "megatec dialogue");
    assert_eq!(d["port"], sim.link().display().to_string());
    assert_eq!(d["vendor"], "INNO TECH");
    assert_eq!(d["model"], "UPS 1000");
    assert_eq!(
        (d["vendor_id"].is_null(), d["product_id"].is_null()),
        (true, true)
    );
    let section = d["ups_conf"].as_str().unwrap();
    assert!(
        section.contains("driver = nutdrv_qx") && section.contains("protocol = megatec"),
        "{section}"
    );
}

#[test]
fn an_apc_smart_ups_is_identified_by_its_dialogue() {
    let sim = apc();
    let v = probe(&[sim.link()], "apc");
    let d = &v["devices"][0];
    assert_eq!(d["protocol"], "apcsmart", "{v}");
    assert_eq!(d["drivers"], serde_json::json!(["apcsmart"]));
    assert_eq!(d["model"], "Smart-UPS 1500");
    assert_eq!(d["serial"], "AS0934123456");
}

/// A pty with nothing behind it: the test holds the master and never answers. Returned with
/// a link to its slave (the probe reads `/dev/...` paths under its captured root).
fn silent() -> (nix::pty::OpenptyResult, PathBuf) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let pty = nix::pty::openpty(
        None::<&nix::pty::Winsize>,
        None::<&nix::sys::termios::Termios>,
    )
    .unwrap();
    // Not inherited by the programs other tests start meanwhile.
    for fd in [&pty.master, &pty.slave] {
        use std::os::fd::AsRawFd;
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
    }
    let pts = nix::unistd::ttyname(&pty.slave).unwrap();
    let dir = std::env::temp_dir().join(format!("ps-silent-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let link = dir.join(format!("tty{}", N.fetch_add(1, Ordering::Relaxed)));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(pts, &link).unwrap();
    (pty, link)
}

#[test]
fn silent_ports_are_probed_in_parallel_within_a_bounded_time() {
    let ports: Vec<_> = (0..4).map(|_| silent()).collect();
    // Nobody holds the slaves: close ours.
    let (paths, _masters): (Vec<PathBuf>, Vec<_>) = ports
        .into_iter()
        .map(|(pty, path)| {
            drop(pty.slave);
            (path, pty.master)
        })
        .unzip();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let start = Instant::now();
    let v = probe(&refs, "silent");
    let took = start.elapsed();
    assert_eq!(v["devices"], serde_json::json!([]));
    let probed = v["serial_ports"].as_array().unwrap();
    assert_eq!(probed.len(), 4);
    assert!(
        probed
            .iter()
            .all(|p| p["probed"] == true && p["protocol"].is_null()),
        "{probed:?}"
    );
    // One silent port takes the two dialogues' first steps (0.6 s + 1 s); four in a row
    // would take over 6 s.
    assert!(took < Duration::from_millis(4500), "{took:?}");
}

#[test]
fn a_port_someone_holds_open_or_locks_is_not_talked_to() {
    let sim = PtySim::start(Megatec::new(state())).unwrap(); // holds its slave open
    let v = probe(&[sim.link()], "held");
    assert_eq!(v["devices"], serde_json::json!([]));
    let p = &v["serial_ports"][0];
    assert_eq!(p["probed"], false);
    assert!(
        p["skipped"].as_str().unwrap().starts_with("in use by pid"),
        "{p}"
    );

    let free = megatec();
    let name = fs::canonicalize(free.link()).unwrap();
    let lock = Path::new("/run/lock").join(format!(
        "LCK..{}",
        name.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir_all("/run/lock").unwrap();
    fs::write(&lock, format!("{:>10}\n", std::process::id())).unwrap();
    let v = probe(&[free.link()], "locked");
    let _ = fs::remove_file(&lock);
    let p = &v["serial_ports"][0];
    assert!(p["skipped"].as_str().unwrap().starts_with("locked"), "{p}");
    // A stale lock (its process is gone) does not stop the probe.
    fs::write(&lock, format!("{:>10}\n", u32::MAX / 2)).unwrap();
    let v = probe(&[free.link()], "stale");
    let _ = fs::remove_file(&lock);
    assert_eq!(v["devices"][0]["protocol"], "megatec");
}

#[test]
fn the_ports_settings_are_restored() {
    use nix::sys::termios::{
        cfgetospeed, cfsetspeed, tcgetattr, tcsetattr, BaudRate, LocalFlags, SetArg,
    };
    let sim = megatec();
    let set = |f: &dyn Fn(&mut nix::sys::termios::Termios)| {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(sim.link())
            .unwrap();
        let mut t = tcgetattr(file.as_fd()).unwrap();
        f(&mut t);
        tcsetattr(file.as_fd(), SetArg::TCSANOW, &t).unwrap();
    };
    set(&|t| {
        cfsetspeed(t, BaudRate::B9600).unwrap();
        t.local_flags &= !LocalFlags::ECHO;
        t.local_flags |= LocalFlags::ICANON;
    });
    let before = {
        let file = fs::File::open(sim.link()).unwrap();
        tcgetattr(file.as_fd()).unwrap()
    };
    let v = probe(&[sim.link()], "restore");
    assert_eq!(v["devices"][0]["protocol"], "megatec");
    let file = fs::File::open(sim.link()).unwrap();
    let after = tcgetattr(file.as_fd()).unwrap();
    assert_eq!(cfgetospeed(&after), BaudRate::B9600);
    assert_eq!(after.local_flags, before.local_flags);
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.control_flags, before.control_flags);
}

fn check(ups_conf: &str, tag: &str) -> Value {
    let (sys, nut) = dirs(tag, Some(ups_conf));
    json(&run(&["check", "--no-upsd"], &sys, &nut))
}

fn codes(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] != "bad-mode")
        .map(|f| {
            (
                f["code"].as_str().unwrap().into(),
                f["message"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn serial_sections_are_checked_against_what_answers() {
    let mega = megatec();
    let link = mega.link().display().to_string();
    // As NUT's udev rules would: the nut group may open the port.
    let nut = power_snitch::nut::host::account("nut").expect("the nut account");
    nix::unistd::chown(mega.pts(), None, Some(nut.gids[0].into())).unwrap();
    fs::set_permissions(
        mega.pts(),
        std::os::unix::fs::PermissionsExt::from_mode(0o660),
    )
    .unwrap();
    // The right driver: no finding.
    let v = check(
        &format!("[ups]\n\tdriver = nutdrv_qx\n\tport = {link}\n\tprotocol = megatec\n"),
        "right",
    );
    assert_eq!(codes(&v), vec![], "{v}");
    assert_eq!(v["devices"][0]["section"], "ups");
    // The wrong one.
    let v = check(
        &format!("[ups]\n\tdriver = apcsmart\n\tport = {link}\n"),
        "wrong",
    );
    let c = codes(&v);
    assert!(
        c.iter()
            .any(|(c, m)| c == "driver-mismatch" && m.contains("megatec")),
        "{c:?}"
    );
    // Two sections on one port.
    let v = check(
        &format!("[a]\n\tdriver = nutdrv_qx\n\tport = {link}\n[b]\n\tdriver = blazer_ser\n\tport = {link}\n"),
        "twice",
    );
    assert!(
        codes(&v).iter().any(|(c, _)| c == "device-claimed-twice"),
        "{v}"
    );
    // Nothing answers.
    let (pty, path) = silent();
    drop(pty.slave);
    let v = check(
        &format!("[ups]\n\tdriver = nutdrv_qx\n\tport = {}\n", path.display()),
        "absent",
    );
    assert!(codes(&v).iter().any(|(c, _)| c == "ups-absent"), "{v}");
    drop(pty.master);
    // A port in use by another program is left alone and said so.
    let held = PtySim::start(Megatec::new(state())).unwrap();
    let v = check(
        &format!(
            "[ups]\n\tdriver = nutdrv_qx\n\tport = {}\n",
            held.link().display()
        ),
        "inuse",
    );
    assert!(
        codes(&v)
            .iter()
            .any(|(c, m)| c == "port-in-use" && m.contains("in use by pid")),
        "{v}"
    );
}

#[test]
fn a_port_a_running_nut_driver_holds_is_left_to_it() {
    let sim = megatec();
    let link = sim.link().display().to_string();
    let conf = format!(
        "[ups]\n\tdriver = nutdrv_qx\n\tport = {link}\n\tprotocol = megatec\n\tpollinterval = 1\n"
    );
    let mut nut = common::nut::Nut::with_ups_conf("serial-held", &conf, "", "");
    nut.start_driver_program("ups", "nutdrv_qx");
    nut.start_upsd();
    nut.wait_ready("ups");
    let (sys, _) = dirs("drvheld", None);
    let o = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args([
            "check",
            "--format",
            "json",
            "--nut-version",
            "2.8.0",
            "--sysfs-root",
        ])
        .arg(&sys)
        .arg("--nut-dir")
        .arg(&nut.dir)
        .arg("--upsd")
        .arg(format!("127.0.0.1:{}", nut.port))
        .output()
        .unwrap();
    let v = json(&o);
    let c = codes(&v);
    assert!(
        c.iter()
            .any(|(c, m)| c == "port-in-use" && m.contains("nutdrv_qx")),
        "{c:?}"
    );
    for bad in [
        "not-served",
        "driver-not-connected",
        "data-stale",
        "live-mismatch",
        "ups-absent",
    ] {
        assert!(!c.iter().any(|(c, _)| c == bad), "{bad}: {c:?}");
    }
}

/// Which faces talk to a port ups.conf names: `check` does; the agent's recheck and the page's
/// Check never (a NUT driver about to start must not find its port locked by us).
#[test]
fn only_check_talks_to_a_configured_port_not_the_agent_nor_the_page() {
    use power_snitch::inspect::{self, plan::Upsd, Face, Given, Installed, Plan};
    use power_snitch::probe::Skip;
    let sim = megatec();
    let link = sim.link().display().to_string();
    let conf = format!("[q]\n\tdriver = nutdrv_qx\n\tport = {link}\n");
    let (sys, nut) = dirs("policy", Some(&conf));
    let given = Given {
        nut_dir: Some(nut.clone()),
        settings: Some(nut.join("no-settings.bin")),
        sysfs_root: Some(sys),
        upsd: Upsd::None,
        ..Given::default()
    };
    for (face, talks) in [
        (Face::Check, true),
        (Face::Recheck, false),
        (Face::Page, false),
    ] {
        let installed = Installed::detect(Some("2.8.0".parse().unwrap()));
        let plan = Plan::resolve(face, &given, installed).unwrap();
        let report = inspect::check(&plan, &|_| {});
        let port = report
            .inv
            .serial
            .iter()
            .find(|p| p.path == link)
            .unwrap_or_else(|| panic!("{face:?}: {link} not listed: {:?}", report.inv.serial));
        assert_eq!(port.answer.is_some(), talks, "{face:?}: {port:?}");
        if !talks {
            assert_eq!(port.skipped, Some(Skip::NotAsked), "{face:?}");
        }
    }
}
