//! The `power-snitch` binary as a user runs it: exit codes, output formats, bad arguments.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .env_remove("NUT_CONFPATH")
        .output()
        .expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

/// A copy of a fixture with the owner and modes a packaged NUT has (git keeps neither).
fn installed_copy(fixture: &str) -> PathBuf {
    let src = common::fixtures_dir().join(fixture);
    let dir = std::env::temp_dir().join(format!("ps-cli-{}-{fixture}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for e in fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let to = dir.join(e.file_name());
        fs::copy(e.path(), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o640)).unwrap();
        if let Some(nut) = power_snitch::nut::host::account("nut") {
            nix::unistd::chown(&to, None, Some(nut.gids[0].into())).unwrap();
        }
    }
    dir
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/broken")
}

/// The example set's JSON report (it has errors: exit code 2).
fn example_json() -> Value {
    let dir = examples();
    let o = run(&[
        "validate",
        "--format",
        "json",
        "--nut-version",
        "2.8.0",
        "--nut-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn a_clean_directory_exits_0() {
    let dir = installed_copy("valid-minimal");
    let o = run(&[
        "validate",
        "--nut-version",
        "2.8.0",
        "--nut-dir",
        dir.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(
        out.contains("0 errors, 0 warnings, 0 infos (NUT 2.8.0, --nut-version)"),
        "{out}"
    );
}

#[test]
fn warnings_only_exit_1_and_errors_exit_2() {
    let dir = installed_copy("duplicate-key");
    let o = run(&[
        "--nut-version=2.8.0",
        "validate",
        "--nut-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    let dir = installed_copy("missing-port");
    let o = run(&[
        "validate",
        "--nut-dir",
        dir.to_str().unwrap(),
        "--nut-version",
        "2.8.0",
    ]);
    assert_eq!(code(&o), 2);
    let out = String::from_utf8_lossy(&o.stdout);
    let path = dir.join("ups.conf");
    assert!(
        out.contains(&format!("{}:1:1: error[missing-port]: ", path.display())),
        "{out}"
    );
    assert!(out.contains("    hint: add `port = auto`"), "{out}");
}

#[test]
fn json_output_has_every_field_and_counts_match() {
    let v = example_json();
    let findings = v["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        for k in ["severity", "code", "file", "line", "column", "message"] {
            assert!(f.get(k).is_some(), "finding without {k}: {f}");
        }
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
    }
    let count = |s: &str| findings.iter().filter(|f| f["severity"] == s).count() as u64;
    assert_eq!(v["summary"]["errors"], count("error"));
    assert_eq!(v["summary"]["warnings"], count("warning"));
    assert_eq!(v["summary"]["infos"], count("info"));
    assert_eq!(v["nut_version"], "2.8.0");
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn the_example_shows_every_severity_and_many_kinds() {
    let v = example_json();
    let findings = v["findings"].as_array().unwrap();
    for s in ["error", "warning", "info"] {
        assert!(
            findings.iter().any(|f| f["severity"] == s),
            "no {s} in the example"
        );
    }
    let mut codes: Vec<&str> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort();
    codes.dedup();
    assert!(
        codes.len() >= 25,
        "the example shows only {} kinds: {codes:?}",
        codes.len()
    );
}

#[test]
fn a_missing_directory_cannot_run_and_says_why() {
    let o = run(&["validate", "--nut-dir", "/nonexistent/nut"]);
    assert_eq!(code(&o), 3);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/nut does not exist: NUT is not installed here"),
        "{err}"
    );
    let o = run(&[
        "validate",
        "--nut-dir",
        "/nonexistent/nut",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 3);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

#[test]
fn nut_confpath_is_the_default_directory() {
    let dir = installed_copy("missing-port");
    let o = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(["validate", "--nut-version", "2.8.0"])
        .env("NUT_CONFPATH", &dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&dir.display().to_string()));
}

#[test]
fn bad_arguments_exit_3_with_usage() {
    for args in [
        &["validate", "--format", "xml"][..],
        &["frob"],
        &[],
        &["validate", "--nut-version", "two"],
    ] {
        let o = run(args);
        assert_eq!(code(&o), 3, "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Usage: power-snitch"),
            "{args:?}"
        );
    }
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("validate"));
}

#[test]
fn readme_documents_every_finding_code() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for code in power_snitch::nut::diag::Code::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.describe());
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
}

/// The binary with a clean environment: no $NUT_CONFPATH, no journal.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"));
    c.env_remove("NUT_CONFPATH").env_remove("JOURNAL_STREAM");
    c
}

/// A fresh directory under the temp dir for this test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ps-cli-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the valid-minimal fixture (one UPS, `[ups1]`) under `tag`.
fn nut_copy(tag: &str) -> PathBuf {
    let dir = scratch(tag);
    for e in fs::read_dir(common::fixtures_dir().join("valid-minimal")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

fn settings(file: &Path, pairs: &[&str]) {
    let o = bin()
        .args(["settings", "set", "--settings"])
        .arg(file)
        .args(pairs)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
}

fn show_json(file: &Path) -> Value {
    let o = bin()
        .args(["settings", "show", "--format", "json", "--settings"])
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn settings_show_json_gives_numbers_as_json_numbers() {
    let dir = scratch("show-json");
    let file = dir.join("settings.bin");
    settings(
        &file,
        &["--ups", "ups1", "nut_retry_count=7", "upsd_port=3500"],
    );
    let v = show_json(&file);
    let u = &v["ups"][0];
    assert_eq!(u["nut_retry_count"], Value::from(7), "{v}");
    assert_eq!(u["upsd_port"], Value::from(3500), "{v}");
    assert!(u["nut_retry_delay"].is_u64(), "{v}");
    assert!(u["poll_interval"].is_u64(), "{v}");
    assert_eq!(u["nut_device_name"], Value::from("ups1"), "{v}");
    assert!(v["nut_conf_dir"].is_string(), "{v}");
}

#[test]
fn settings_import_records_the_nut_directory_it_read() {
    let nut = nut_copy("import-nut");
    let file = scratch("import-settings").join("settings.bin");
    let o = bin()
        .args(["settings", "import", "--nut-version", "2.8.0", "--settings"])
        .arg(&file)
        .arg("--nut-dir")
        .arg(&nut)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v = show_json(&file);
    assert_eq!(
        v["nut_conf_dir"],
        Value::from(nut.canonicalize().unwrap().to_str().unwrap()),
        "{v}"
    );
    assert_eq!(v["ups"][0]["nut_device_name"], Value::from("ups1"), "{v}");
}

#[test]
fn an_option_a_command_does_not_take_is_a_usage_error() {
    for (args, says) in [
        (
            &["validate", "--apply"][..],
            "`validate` does not take --apply",
        ),
        (&["probe", "--login"], "`probe` does not take --login"),
        (
            &["status", "--ups-conf"],
            "`status` does not take --ups-conf",
        ),
    ] {
        let o = run(args);
        assert_eq!(code(&o), 3, "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Which NUT directory a command read: its `-vv` (debug) log line names it and where it came
/// from.
fn read_dir_of(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines()
        .find_map(|l| l.split_once("checking ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no `checking` line in: {err}"))
}

#[test]
fn every_command_and_the_page_take_nut_s_directory_by_one_precedence() {
    let (a, b, c) = (nut_copy("prec-a"), nut_copy("prec-b"), nut_copy("prec-c"));
    let base = scratch("prec-settings");
    let with = base.join("settings.bin");
    settings(
        &with,
        &[&format!("nut_conf_dir={}", b.display()), "web_listen="],
    );
    let without = base.join("none.bin");
    let sys = common::fixtures_dir().join("usb/cyberpower-hid/sys");
    let socket = base.join("control.sock");
    let commands: Vec<Vec<String>> = [
        &["validate"][..],
        &["check", "--no-upsd"],
        &["probe"],
        &["udev-check", "add:1-1:0764:0501"],
        &["sync"],
    ]
    .iter()
    .map(|c| c.iter().map(|s| s.to_string()).collect())
    .collect();
    // (--nut-dir, settings file, $NUT_CONFPATH) -> the directory and its source.
    let cases = [
        (Some(&a), &with, Some(&c), &a, "--nut-dir"),
        (None, &with, Some(&c), &b, "nut_conf_dir of"),
        (None, &without, Some(&c), &c, "$NUT_CONFPATH"),
    ];
    for (explicit, file, env, want, source) in cases {
        for command in &commands {
            let mut cmd = bin();
            cmd.args(command)
                .args(["-vv", "--nut-version", "2.8.0", "--settings"])
                .arg(file);
            if command[0] != "validate" && command[0] != "sync" {
                cmd.arg("--sysfs-root").arg(&sys);
            }
            if command[0] == "udev-check" {
                cmd.arg("--control-socket").arg(&socket);
            }
            if let Some(d) = explicit {
                cmd.arg("--nut-dir").arg(d);
            }
            if let Some(e) = env {
                cmd.env("NUT_CONFPATH", e);
            }
            let o = cmd.output().unwrap();
            let read = read_dir_of(&o);
            assert!(
                read.starts_with(&format!("{} ({source}", want.display())),
                "{command:?} with {explicit:?}, {}, {env:?}: read {read}",
                file.display()
            );
        }
        // The agent, where a settings file keeps its page off.
        if file == &with {
            let read = agent_dir(file, explicit, env, &base);
            assert_eq!(read, want.display().to_string(), "run with {explicit:?}");
        }
        #[cfg(feature = "web")]
        {
            use power_snitch::inspect::{plan::Upsd, Given, Installed};
            let given = Given {
                nut_dir: explicit.cloned(),
                settings: Some(file.clone()),
                sysfs_root: Some(sys.clone()),
                env_confpath: env.map(|e| e.clone().into_os_string()),
                upsd: Upsd::None,
                ..Given::default()
            };
            let r = power_snitch::web::check_report(
                &given,
                Installed::detect(Some("2.8.0".parse().unwrap())),
            )
            .unwrap();
            assert_eq!(r.nut_dir, want.display().to_string(), "the page");
        }
    }
}

/// The NUT directory `run` says it watches, from its start-up line; the agent is stopped.
fn agent_dir(
    settings: &Path,
    explicit: Option<&PathBuf>,
    env: Option<&PathBuf>,
    base: &Path,
) -> String {
    use std::io::BufRead;
    let mut cmd = bin();
    cmd.args(["run", "-vv", "--nut-version", "2.8.0", "--settings"])
        .arg(settings)
        .arg("--control-socket")
        .arg(base.join("agent.sock"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    if let Some(d) = explicit {
        cmd.arg("--nut-dir").arg(d);
    }
    if let Some(e) = env {
        cmd.env("NUT_CONFPATH", e);
    }
    let mut child = cmd.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once("NUT's files in ") {
                    break rest.split(" (").next().map(str::to_string);
                }
                seen.push(line);
            }
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.unwrap_or_else(|| panic!("the agent did not say its directory: {seen:?}"))
}

#[test]
fn a_settings_file_that_cannot_be_read_names_no_nut_directory() {
    let c = nut_copy("unreadable-c");
    let file = scratch("unreadable-settings").join("settings.bin");
    fs::write(&file, b"not a settings file").unwrap();
    let o = bin()
        .args(["validate", "-vv", "--nut-version", "2.8.0", "--settings"])
        .arg(&file)
        .env("NUT_CONFPATH", &c)
        .output()
        .unwrap();
    let read = read_dir_of(&o);
    assert!(
        read.starts_with(&format!("{} ($NUT_CONFPATH)", c.display())),
        "{read}"
    );
}
