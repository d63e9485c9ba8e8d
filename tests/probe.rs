//! `probe` and `check` against captured sysfs trees (tests/fixtures/usb/<case>/, with the
//! owners and modes of their `nodes` file applied to a copy), and ups.conf files checked
//! against them (tests/fixtures/usb-checks/<name>/: `case` names the tree, `args` adds options,
//! `expected` is the report; BLESS=1 writes it). The fixtures run in this process through the
//! application layer (`power_snitch::inspect`); a few tests run the binary for what the
//! command line adds.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use power_snitch::inspect::{self, plan::Upsd, render, Face, Given, Installed, Plan};
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"));
    c.env_remove("NUT_CONFPATH");
    c
}

fn usb_dir() -> PathBuf {
    common::fixtures_dir().join("usb")
}

fn checks_dir() -> PathBuf {
    common::fixtures_dir().join("usb-checks")
}

/// A number no other call in this process gets, for temp dir names of parallel tests.
fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn bless() -> bool {
    std::env::var_os("BLESS").is_some()
}

/// A copy of a captured tree with its device nodes' owners and modes applied.
fn tree(case: &str, tag: &str) -> PathBuf {
    let dst =
        std::env::temp_dir().join(format!("ps-usb-{}-{tag}-{}", std::process::id(), unique()));
    let _ = fs::remove_dir_all(&dst);
    fs::create_dir_all(&dst).unwrap();
    let src = usb_dir().join(case);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(&dst)
        .status()
        .unwrap()
        .success();
    assert!(ok, "copying {case}");
    let nodes = fs::read_to_string(src.join("nodes")).unwrap_or_default();
    for line in nodes
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [path, owner, group, mode] = w[..] else {
            panic!("{case}/nodes: bad line `{line}`");
        };
        let p = dst.join(path);
        let ok = Command::new("chown")
            .arg(format!("{owner}:{group}"))
            .arg(&p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {owner}:{group} {path} (is the nut group there?)");
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(u32::from_str_radix(mode, 8).unwrap()),
        )
        .unwrap();
    }
    dst
}

/// A NUT directory with these files, readable by the nut group only.
fn nut_dir(files: &[(&str, &str)], tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ps-usbnut-{}-{tag}-{}",
        std::process::id(),
        unique()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        if let Some(nut) = power_snitch::nut::host::account("nut") {
            nix::unistd::chown(&p, None, Some(nut.gids[0].into())).unwrap();
        }
    }
    dir
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// What `check`/`probe` would be given: these options (as the command line parses them), this
/// tree and NUT directory, no upsd, and a settings file that does not exist.
fn given(command: &str, root: &Path, nut: &Path, options: &str) -> Given {
    let argv = std::iter::once(command).chain(options.split_whitespace());
    let args = power_snitch::cli::parse_args(argv.map(std::ffi::OsString::from)).unwrap();
    let mut g = power_snitch::cli::given(&args.common).unwrap();
    g.sysfs_root = Some(root.join("sys"));
    g.nut_dir = Some(nut.to_path_buf());
    g.settings = Some(nut.join("no-settings.bin"));
    g.upsd = Upsd::None;
    g
}

/// A plan for `face`, as its command resolves it.
fn plan(face: Face, g: &Given) -> Plan {
    Plan::resolve(face, g, Installed::detect(g.nut_version)).unwrap()
}

/// Paths of this run replaced by names, so reports compare across runs.
fn normalise(s: &str, root: &Path, nut: &Path) -> String {
    s.replace(&root.display().to_string(), "$ROOT")
        .replace(&nut.display().to_string(), "$NUT")
}

fn compare(expected_file: &Path, actual: &str, failures: &mut Vec<String>) {
    if bless() {
        fs::write(expected_file, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(expected_file).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            expected_file.display()
        ));
    }
}

#[test]
fn every_captured_tree_probes_as_expected() {
    let mut failures = Vec::new();
    let mut cases: Vec<PathBuf> = fs::read_dir(usb_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let root = tree(&name, &format!("probe-{name}"));
        let nut = nut_dir(&[], &format!("probe-{name}"));
        let plan = plan(
            Face::Probe,
            &given("probe", &root, &nut, "--nut-version 2.8.0"),
        );
        let probed = inspect::probe(&plan, &|_| {});
        compare(
            &case.join("probe.expected"),
            &normalise(&render::probe_human(&probed.inv), &root, &nut),
            &mut failures,
        );
        let _ = fs::remove_dir_all(&root);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `check` for one usb-checks fixture; returns the exit code and the normalised report.
fn check_fixture(dir: &Path, format: &str) -> (i32, String) {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let case = fs::read_to_string(dir.join("case")).unwrap();
    let root = tree(case.trim(), &format!("check-{name}"));
    let mut files = Vec::new();
    for f in [
        "ups.conf",
        "nut.conf",
        "upsd.conf",
        "upsd.users",
        "upsmon.conf",
    ] {
        if let Ok(t) = fs::read_to_string(dir.join(f)) {
            files.push((f, t));
        }
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
    let nut = nut_dir(&refs, &format!("check-{name}"));
    let args =
        fs::read_to_string(dir.join("args")).unwrap_or_else(|_| "--nut-version 2.8.0".into());
    let plan = plan(Face::Check, &given("check", &root, &nut, &args));
    let report = inspect::check(&plan, &|_| {});
    let text = match format {
        "json" => render::check_json(&plan, &report),
        _ => render::check_human(&plan, &report),
    };
    let out = normalise(&text, &root, &nut);
    let _ = fs::remove_dir_all(&root);
    (i32::from(render::exit_code(&report.findings)), out)
}

#[test]
fn every_configuration_checks_against_its_tree_as_expected() {
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(checks_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let (code, out) = check_fixture(&dir, "human");
        compare(
            &dir.join("expected"),
            &format!("exit {code}\n{out}"),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn codes(dir: &str) -> Vec<String> {
    let (_, out) = check_fixture(&checks_dir().join(dir), "json");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{dir}: {e}: {out}"));
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        // The fixtures' nut.conf says MODE=none, which validation rightly questions.
        .filter(|c| c != "bad-mode")
        .collect()
}

#[test]
fn each_hardware_finding_comes_from_its_fixture() {
    for (dir, code) in [
        ("cps-wrong-driver", "driver-mismatch"),
        ("apc-eaton-swapped", "matcher-no-match"),
        ("cps-no-match", "matcher-no-match"),
        ("cps-twice", "device-claimed-twice"),
        ("cps-bad-regex", "bad-value"),
        ("cps-unstable", "matcher-unstable"),
        ("twins-ambiguous", "matcher-ambiguous"),
        ("twins-ambiguous-2.8.0", "matcher-ambiguous"),
        ("twins-same-port", "matcher-ambiguous"),
        ("keyboard-absent", "ups-absent"),
        ("locked-node", "device-permission"),
        // NUT's udev rules do not know its VID:PID, so its node stays root's.
        ("unknown-hid", "device-permission"),
        ("pi4-unconfigured", "ups-unconfigured"),
        ("ftdi-unstable", "port-unstable"),
        ("ftdi-missing", "port-missing"),
    ] {
        assert!(
            codes(dir).iter().any(|c| c == code),
            "{dir} lacks {code}: {:?}",
            codes(dir)
        );
    }
    for clean in [
        "cps-ok",
        "twins-busport",
        "twins-bus-and-port",
        "megatec-usb",
        "eaton-ok",
    ] {
        assert_eq!(codes(clean), Vec::<String>::new(), "{clean}");
    }
}

/// `check --no-upsd --format json` of a tree and a NUT directory against a NUT release.
fn check_json(root: &Path, nut: &Path, version: &str) -> Value {
    let o = bin()
        .args([
            "check",
            "--no-upsd",
            "--format",
            "json",
            "--nut-version",
            version,
        ])
        .arg("--sysfs-root")
        .arg(root.join("sys"))
        .arg("--nut-dir")
        .arg(nut)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

fn probe_json(root: &Path, extra: &[&str]) -> Value {
    let nut = nut_dir(&[], "json");
    let o = bin()
        .args([
            "probe",
            "--format",
            "json",
            "--nut-version",
            "2.8.0",
            "--sysfs-root",
        ])
        .arg(root.join("sys"))
        .arg("--nut-dir")
        .arg(&nut)
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn probe_json_has_the_documented_fields() {
    let root = tree("pi4-mixed", "json-pi4");
    let v = probe_json(&root, &[]);
    let d = &v["devices"].as_array().unwrap()[0];
    assert_eq!(d["bus"], "usb");
    assert_eq!(d["vendor_id"], "0764");
    assert_eq!(d["product_id"], "0501");
    assert_eq!(d["serial"], "CTHJV2002919");
    assert_eq!(d["port"], "auto");
    assert_eq!(d["drivers"][0], "usbhid-ups");
    assert_eq!(d["protocol"], "hid-power-device");
    assert_eq!(d["identified_by"], "device table");
    assert_eq!(d["node"]["path"], "/dev/bus/usb/001/004");
    assert_eq!(d["node"]["group"], "nut");
    assert!(d["ups_conf"]
        .as_str()
        .unwrap()
        .contains("serial = CTHJV2002919"));
    // The keyboard is seen and set aside; the console is never probed.
    assert_eq!(v["others"][0]["why"], "keyboard, not a power device");
    let ports = v["serial_ports"].as_array().unwrap();
    let ama = ports.iter().find(|p| p["path"] == "/dev/ttyAMA0").unwrap();
    assert_eq!(
        (ama["console"].as_bool(), ama["probed"].as_bool()),
        (Some(true), Some(false))
    );
    let usb0 = ports.iter().find(|p| p["path"] == "/dev/ttyUSB0").unwrap();
    assert_eq!(
        usb0["by_id"][0],
        "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    );
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_newer_nuts_udev_rules_identify_what_the_table_does_not() {
    // The same keyboard, on a system whose NUT rules (say, a future release) list it.
    let root = tree("keyboard", "rules");
    let rules = root.join("lib/udev/rules.d");
    fs::create_dir_all(&rules).unwrap();
    fs::write(
        rules.join("62-nut-usbups.rules"),
        "LABEL=\"nut-usbups_rules_real\"\n# QEMU\n#  USB Keyboard  - usbhid-ups\nATTR{idVendor}==\"0627\", ATTR{idProduct}==\"0001\", MODE=\"664\", GROUP=\"nut\"\n",
    )
    .unwrap();
    let v = probe_json(&root, &[]);
    let d = &v["devices"][0];
    assert_eq!(d["drivers"][0], "usbhid-ups");
    let by = d["identified_by"].as_str().unwrap();
    assert!(
        by.starts_with("udev rules ") && by.ends_with("lib/udev/rules.d/62-nut-usbups.rules"),
        "{by}"
    );
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_device_that_cannot_be_read_is_reported_and_the_rest_still_probed() {
    // A device whose attributes fail to read, as when it is pulled out mid-probe.
    let root = tree("pi4-mixed", "vanish");
    let devices = root.join("sys/bus/usb/devices");
    let real = fs::canonicalize(devices.join("1-1.2")).unwrap();
    fs::remove_file(real.join("idProduct")).unwrap();
    fs::create_dir(real.join("idProduct")).unwrap();
    let v = probe_json(&root, &[]);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].as_str().unwrap().contains("1-1.2"));
    assert_eq!(v["devices"][0]["vendor_id"], "0764");
    // check reports it as a finding.
    let nut = nut_dir(&[("nut.conf", "MODE=none\n")], "vanish");
    let c = check_json(&root, &nut, "2.8.0");
    let f = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "probe-problem")
        .expect("probe-problem");
    assert!(f["message"].as_str().unwrap().contains("1-1.2"));
    // A device gone entirely (its link dangles) is simply not there.
    fs::remove_dir_all(&real).unwrap();
    let v = probe_json(&root, &[]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    let _ = fs::remove_dir_all(&root);
}

/// The sections `probe --ups-conf` prints for a tree, checked to pass validation and the
/// cross-check against it with no finding but nut.conf's (MODE=none, on purpose).
fn pasted_sections(case: &str) -> String {
    let root = tree(case, "paste");
    let nut = nut_dir(&[], "paste");
    let o = bin()
        .args([
            "probe",
            "--ups-conf",
            "--nut-version",
            "2.8.1",
            "--sysfs-root",
        ])
        .arg(root.join("sys"))
        .arg("--nut-dir")
        .arg(&nut)
        .output()
        .unwrap();
    let sections = text(&o);
    let nut = nut_dir(
        &[("ups.conf", &sections), ("nut.conf", "MODE=none\n")],
        "paste2",
    );
    let v = check_json(&root, &nut, "2.8.1");
    assert_eq!(v["findings"][0]["code"], "bad-mode", "{sections}");
    assert_eq!(
        v["findings"].as_array().unwrap().len(),
        1,
        "{sections}: {v}"
    );
    let _ = fs::remove_dir_all(&root);
    sections
}

#[test]
fn ups_conf_sections_are_ready_to_paste() {
    let sections = pasted_sections("identical-twins");
    assert!(
        sections.contains("[cps]\n") && sections.contains("[cps2]\n"),
        "{sections}"
    );
    assert!(
        sections.contains("busport = 002") && sections.contains("busport = 003"),
        "{sections}"
    );
}

/// Twins on port 1 of two controllers' root hubs (as the kernel made them in the QEMU guest):
/// the port number alone is the same, so the sections name the bus too, and pass the check.
#[test]
fn twins_on_two_buses_are_told_apart_by_bus_and_port() {
    let sections = pasted_sections("twins-two-buses");
    assert!(
        sections.contains("\tbus = 003\n\tbusport = 001\n")
            && sections.contains("\tbus = 004\n\tbusport = 001\n"),
        "{sections}"
    );
}

#[test]
fn a_sysfs_root_that_is_not_one_is_refused_clearly() {
    let nut = nut_dir(&[], "badroot");
    for (root, why) in [
        (PathBuf::from("/nonexistent/sys"), "is not a directory"),
        (nut.clone(), "is not a sysfs tree"),
    ] {
        for cmd in [&["probe"][..], &["check", "--no-upsd"]] {
            let o = bin()
                .args(cmd)
                .args(["--nut-version", "2.8.0", "--sysfs-root"])
                .arg(&root)
                .arg("--nut-dir")
                .arg(&nut)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(3), "{cmd:?}: {err}");
            assert!(
                err.contains("--sysfs-root") && err.contains(why),
                "{cmd:?}: {err}"
            );
        }
    }
}

#[test]
fn hardware_findings_name_the_section_they_are_about() {
    for (fixture, code, section) in [
        ("cps-no-match", "matcher-no-match", "cps"),
        ("cps-twice", "device-claimed-twice", "again"),
        ("cps-wrong-driver", "driver-mismatch", "cps"),
    ] {
        let dir = checks_dir().join(fixture);
        let case = fs::read_to_string(dir.join("case")).unwrap();
        let root = tree(case.trim(), &format!("section-{fixture}"));
        let conf = fs::read_to_string(dir.join("ups.conf")).unwrap();
        let nut = nut_dir(&[("ups.conf", &conf)], &format!("section-{fixture}"));
        let plan = plan(
            Face::Check,
            &given("check", &root, &nut, "--nut-version 2.8.0"),
        );
        let report = inspect::check(&plan, &|_| {});
        let f = report
            .findings
            .iter()
            .find(|f| f.code.as_str() == code)
            .unwrap_or_else(|| panic!("{fixture}: no {code} in {:?}", report.findings));
        assert_eq!(f.section.as_deref(), Some(section), "{fixture}: {f:?}");
        // Findings about no section (the directory, nut.conf) name none.
        assert!(
            report
                .findings
                .iter()
                .filter(|f| f.file != "ups.conf")
                .all(|f| f.section.is_none()),
            "{fixture}"
        );
        let _ = fs::remove_dir_all(&root);
    }
}
