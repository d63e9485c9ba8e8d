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
