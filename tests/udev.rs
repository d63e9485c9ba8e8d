//! The udev side: the committed rules are the generated ones, the check unit passes systemd's
//! verifier, and `udev-check` judges a device that came or went, with the environment udev
//! gives it (or the unit's instance name), against captured sysfs trees.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"));
    c.env_remove("NUT_CONFPATH").env_remove("JOURNAL_STREAM");
    for k in [
        "ACTION",
        "DEVPATH",
        "PRODUCT",
        "ID_VENDOR_ID",
        "ID_MODEL_ID",
        "SUBSYSTEM",
    ] {
        c.env_remove(k);
    }
    c
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_rules_are_the_generated_ones() {
    let o = bin().arg("udev-rules").output().unwrap();
    assert!(o.status.success());
    let committed = fs::read_to_string(repo().join("udev/70-power-snitch.rules")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&o.stdout),
        "udev/70-power-snitch.rules differs from `power-snitch udev-rules`: regenerate it"
    );
}

#[test]
fn the_check_unit_passes_systemds_verifier() {
    let dir = std::env::temp_dir().join(format!("ps-units-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let unit = fs::read_to_string(repo().join("systemd/power-snitch-check@.service")).unwrap();
    // The verifier checks that the program exists: point it at the one just built.
    let unit = unit.replace("/usr/bin/power-snitch", env!("CARGO_BIN_EXE_power-snitch"));
    let path = dir.join("power-snitch-check@.service");
    fs::write(&path, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A captured tree (with its nodes' owners and modes) and a NUT directory with this ups.conf.
fn setup(case: &str, ups_conf: &str, tag: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("ps-udev-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("nut")).unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(common::fixtures_dir().join("usb").join(case))
        .arg(base.join("root"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let nodes = fs::read_to_string(base.join("root/nodes")).unwrap();
    for l in nodes
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let w: Vec<&str> = l.split_whitespace().collect();
        Command::new("chown")
            .arg(format!("{}:{}", w[1], w[2]))
            .arg(base.join("root").join(w[0]))
            .status()
            .unwrap();
        Command::new("chmod")
            .arg(w[3])
            .arg(base.join("root").join(w[0]))
            .status()
            .unwrap();
    }
    fs::write(base.join("nut/ups.conf"), ups_conf).unwrap();
    fs::write(base.join("nut/nut.conf"), "MODE=standalone\n").unwrap();
    (base.join("root/sys"), base.join("nut"))
}

fn udev_check(sys: &Path, nut: &Path, instance: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.args(["udev-check", "--nut-version", "2.8.0", "--sysfs-root"])
        .arg(sys)
        .arg("--nut-dir")
        .arg(nut)
        .args(instance)
        .envs(env.iter().copied());
    let o = c.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn log(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

const CPS: &str =
    "[cps]\n\tdriver = usbhid-ups\n\tport = auto\n\tvendorid = 0764\n\tproductid = 0501\n";

#[test]
fn a_configured_ups_plugged_in_is_matched_to_its_section() {
    let (sys, nut) = setup("cyberpower-hid", CPS, "add");
    // The environment udev gives a usb_device add event.
    let o = udev_check(
        &sys,
        &nut,
        None,
        &[
            ("ACTION", "add"),
            ("DEVPATH", "/devices/platform/dummy_hcd.0/usb3/3-1"),
            ("SUBSYSTEM", "usb"),
            ("PRODUCT", "764/501/200"),
            ("ID_VENDOR_ID", "0764"),
            ("ID_MODEL_ID", "0501"),
        ],
    );
    let l = log(&o);
    assert!(
        l.contains("info: UPS plugged in at 3-1: CPS CP1500AVRLCDa")
            && l.contains("served by [cps]"),
        "{l}"
    );
    // Its interface's own event is left to the device's.
    let o = udev_check(&sys, &nut, Some("add:3-1:1.0:0764:0501"), &[]);
    assert!(
        log(&o).contains("its device's check covers it"),
        "{}",
        log(&o)
    );
}

#[test]
fn an_unconfigured_ups_gets_a_section_and_a_keyboard_is_not_a_ups() {
    let (sys, nut) = setup(
        "pi4-mixed",
        "[other]\n\tdriver = dummy-ups\n\tport = x.dev\n",
        "unconf",
    );
    let l = log(&udev_check(&sys, &nut, Some("add:1-1.3:0764:0501"), &[]));
    assert!(
        l.contains("warning: UPS plugged in at 1-1.3")
            && l.contains("no ups.conf section serves it"),
        "{l}"
    );
    assert!(
        l.contains("driver = usbhid-ups") && l.contains("serial = CTHJV2002919"),
        "{l}"
    );
    let l = log(&udev_check(&sys, &nut, Some("add:1-1.2:1.0::"), &[]));
    assert!(
        l.contains("1-1.2 046d:c31c") && l.contains("not a UPS (keyboard"),
        "{l}"
    );
}

#[test]
fn a_configured_ups_pulled_out_is_a_critical_line() {
    // After the removal the tree has no UPS left: the keyboard's tree stands for it.
    let (sys, nut) = setup("keyboard", CPS, "remove");
    let l = log(&udev_check(&sys, &nut, Some("remove:1-1:0764:0501"), &[]));
    assert!(
        l.contains("critical: configured UPS disappeared: [cps]"),
        "{l}"
    );
    // Under systemd, with journald's priority prefix.
    let l = log(&udev_check(
        &sys,
        &nut,
        None,
        &[
            ("JOURNAL_STREAM", "8:1234"),
            ("ACTION", "remove"),
            ("DEVPATH", "/devices/pci0000:00/0000:00:14.0/usb1/1-1"),
            ("PRODUCT", "764/501/1"),
        ],
    ));
    assert!(l.starts_with("<2>configured UPS disappeared: [cps]"), "{l}");
    // Another device going is no alarm.
    let l = log(&udev_check(&sys, &nut, Some("remove:1-2:046d:c52b"), &[]));
    assert!(
        l.contains("info: 1-2 (046d:c52b) removed; no configured UPS depended on it"),
        "{l}"
    );
}

#[test]
fn a_serial_ups_behind_an_adapter_pulled_out_is_a_critical_line() {
    let by_id = "/dev/serial/by-id/usb-QEMU_QEMU_USB_SERIAL_A50285BI-if00-port0";
    let conf = format!("[ups]\n\tdriver = nutdrv_qx\n\tport = {by_id}\n\tprotocol = megatec\n");
    let (sys, nut) = setup("ftdi-serial", &conf, "tty");
    // Plugged in: its section's driver takes the port; nothing is sent to it.
    let l = log(&udev_check(&sys, &nut, Some("add:ttyUSB1:0403:6001"), &[]));
    assert!(
        l.contains("serial port /dev/ttyUSB1 appeared: configured for [ups] (nutdrv_qx), whose NUT driver takes it"),
        "{l}"
    );
    // Gone as the kernel and udev leave it: no tty, no by-id link.
    let root = sys.parent().unwrap();
    fs::remove_file(root.join(by_id.trim_start_matches('/'))).unwrap();
    fs::remove_file(sys.join("class/tty/ttyUSB1")).unwrap();
    let l = log(&udev_check(
        &sys,
        &nut,
        Some("remove:ttyUSB1:0403:6001"),
        &[],
    ));
    assert!(
        l.contains(
            "critical: configured UPS disappeared: [ups] (nutdrv_qx) lost its device ttyUSB1"
        ),
        "{l}"
    );
}

#[test]
fn bad_events_are_refused_clearly() {
    let o = bin()
        .args(["udev-check", "change:1-1:0764:0501"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        log(&o).contains("not an action udev-check handles"),
        "{}",
        log(&o)
    );
    let o = bin().arg("udev-check").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        log(&o).contains("no ACTION in the environment"),
        "{}",
        log(&o)
    );
}

#[test]
fn the_sysusers_file_makes_the_account_the_units_run_as() {
    let root = std::env::temp_dir().join(format!("ps-sysusers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\ndialout:x:20:\nnut:x:120:\n",
    )
    .unwrap();
    let o = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(repo().join("systemd/power-snitch.sysusers"))
        .output()
        .expect("systemd-sysusers (Debian's systemd package) is installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("power-snitch:x:") && passwd.contains(":/var/lib/power-snitch:"),
        "{passwd}"
    );
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.contains("nut:x:120:power-snitch") && group.contains("dialout:x:20:power-snitch"),
        "{group}"
    );
    for unit in ["power-snitch.service", "power-snitch-check@.service"] {
        let text = fs::read_to_string(repo().join("systemd").join(unit)).unwrap();
        assert!(text.contains("User=power-snitch"), "{unit}");
    }
}
