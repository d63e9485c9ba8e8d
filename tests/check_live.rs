//! `check` against a real upsd with NUT's dummy-ups driver: what upsd serves compared with
//! ups.conf and the hardware.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::nut::{free_port, Nut};
use serde_json::Value;

const DEV: &str = "ups.status: OL\nbattery.charge: 100\nups.vendorid: 051d\nups.productid: 0002\n";
const USERS: &str = "[admin]\n\tpassword = secret\n\tupsmon primary\n";

fn check(nut: &Path, upsd: &str, sysfs: Option<&Path>) -> Value {
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"));
    c.args([
        "check",
        "--format",
        "json",
        "--nut-version",
        "2.8.0",
        "--upsd",
        upsd,
    ])
    .arg("--nut-dir")
    .arg(nut)
    .env_remove("NUT_CONFPATH");
    // Without a captured tree, an empty one: this machine's USB bus is not the test's.
    let empty = std::env::temp_dir().join(format!("ps-live-empty-{}/sys", std::process::id()));
    // A machine without USB devices or serial ports: sysfs with its empty directories.
    fs::create_dir_all(empty.join("bus/usb/devices")).unwrap();
    fs::create_dir_all(empty.join("class/tty")).unwrap();
    c.arg("--sysfs-root").arg(sysfs.unwrap_or(&empty));
    let o = c.output().unwrap();
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// (code, message) of each finding.
fn findings(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().into(),
                f["message"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn has(v: &Value, code: &str, needle: &str) -> bool {
    findings(v)
        .iter()
        .any(|(c, m)| c == code && m.contains(needle))
}

#[test]
fn sections_upsd_does_not_serve_and_drivers_that_are_not_connected() {
    let mut nut = Nut::new(
        "live1",
        &[("a", "a.dev", DEV), ("b", "b.dev", DEV)],
        USERS,
        "",
    );
    nut.start_driver("a");
    nut.start_driver("b");
    nut.start_upsd();
    nut.wait_ready("a");
    nut.wait_ready("b");
    let upsd = format!("127.0.0.1:{}", nut.port);
    let v = check(&nut.dir, &upsd, None);
    for code in [
        "not-served",
        "driver-not-connected",
        "data-stale",
        "live-mismatch",
        "upsd-unreachable",
    ] {
        assert!(
            !has(&v, code, ""),
            "a healthy upsd gives no {code}: {:?}",
            findings(&v)
        );
    }
    // A section added after upsd started, and a driver that stops.
    let conf = nut.dir.join("ups.conf");
    let mut text = fs::read_to_string(&conf).unwrap();
    text.push_str("[c]\n\tdriver = dummy-ups\n\tport = a.dev\n");
    fs::write(&conf, text).unwrap();
    nut.stop_driver("b");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = check(&nut.dir, &upsd, None);
        if has(&v, "driver-not-connected", "[b]") {
            assert!(has(&v, "not-served", "[c]"), "{:?}", findings(&v));
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", findings(&v));
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn stale_data_is_reported() {
    let mut nut = Nut::new("live2", &[("a", "a.dev", DEV)], USERS, "MAXAGE 3\n");
    nut.start_driver("a");
    nut.start_upsd();
    nut.wait_ready("a");
    let upsd = format!("127.0.0.1:{}", nut.port);
    // A driver that stops answering (stopped, not gone) makes upsd call its data stale.
    let pid = nut.drivers[0].1.id();
    let driver = Command::new("pgrep")
        .args(["-P", &pid.to_string(), "dummy-ups"])
        .output()
        .unwrap();
    let driver = String::from_utf8_lossy(&driver.stdout).trim().to_string();
    assert!(!driver.is_empty(), "dummy-ups runs under its supervisor");
    Command::new("kill")
        .args(["-STOP", &driver])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = check(&nut.dir, &upsd, None);
        if has(&v, "data-stale", "[a]") {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", findings(&v));
        std::thread::sleep(Duration::from_millis(500));
    }
    Command::new("kill")
        .args(["-CONT", &driver])
        .status()
        .unwrap();
}

#[test]
fn upsd_serving_another_driver_or_device_than_ups_conf_says() {
    let mut nut = Nut::new(
        "live3",
        &[("a", "a.dev", DEV), ("gone", "g.dev", DEV)],
        USERS,
        "",
    );
    nut.start_driver("a");
    nut.start_driver("gone");
    nut.start_upsd();
    nut.wait_ready("a");
    // ups.conf now says [a] is the CyberPower on USB, and [gone] is gone; upsd still serves
    // the old driver, which reports an APC vendor id.
    fs::write(
        nut.dir.join("ups.conf"),
        "[a]\n\tdriver = usbhid-ups\n\tport = auto\n\tvendorid = 0764\n",
    )
    .unwrap();
    let tree = std::env::temp_dir().join(format!("ps-live-tree-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(&tree).unwrap();
    let src = common::fixtures_dir().join("usb/cyberpower-hid");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(&tree)
        .status()
        .unwrap()
        .success());
    let v = check(
        &nut.dir,
        &format!("127.0.0.1:{}", nut.port),
        Some(&tree.join("sys")),
    );
    assert!(
        has(&v, "live-mismatch", "driver.name = dummy-ups"),
        "{:?}",
        findings(&v)
    );
    assert!(
        has(&v, "live-mismatch", "ups.vendorid = 051d"),
        "{:?}",
        findings(&v)
    );
    assert!(
        has(&v, "live-mismatch", "serves [gone]"),
        "{:?}",
        findings(&v)
    );
    assert_eq!(v["devices"][0]["section"], "a");
}

#[test]
fn an_absent_upsd_is_a_finding_not_a_failure() {
    let dir = std::env::temp_dir().join(format!("ps-live-none-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("ups.conf"),
        "[a]\n\tdriver = dummy-ups\n\tport = a.dev\n",
    )
    .unwrap();
    fs::write(dir.join("nut.conf"), "MODE=standalone\n").unwrap();
    let v = check(&dir, &format!("127.0.0.1:{}", free_port()), None);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "upsd-unreachable")
        .expect("upsd-unreachable");
    assert_eq!(f["severity"], "error", "MODE=standalone runs upsd here");
    assert_eq!(v["exit_code"], 2);
}
