//! The fixture corpus, checked against the expected reports next to each fixture.
//! `BLESS=1 cargo test --test fixtures` rewrites the expected files; review the diff.

mod common;

use std::fs;
use std::path::Path;

use power_snitch::nut::drivers::DriverDb;
use power_snitch::nut::{validate, Context};
use power_snitch::report::{self, Validation};

/// The one caller of the validator in this file: input directory in, report text out.
fn check(dir: &Path) -> Result<(), String> {
    let meta = common::meta(dir);
    let cx = Context {
        version: meta.version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let (_, findings) = validate(&common::snapshot(dir, &meta), &cx);
    let got = report::human(&Validation {
        dir: Path::new(""),
        nut_version: meta.version.to_string(),
        version_source: "fixture".into(),
        findings: &findings,
    });
    let expected_path = dir.join("expected");
    if std::env::var_os("BLESS").is_some() {
        fs::write(&expected_path, &got).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = fs::read_to_string(&expected_path).map_err(|e| {
        format!(
            "{}: {e} (run with BLESS=1 to create it)",
            expected_path.display()
        )
    })?;
    if got != want {
        return Err(format!(
            "{}:\n--- expected\n{want}--- got\n{got}",
            dir.file_name().unwrap().to_string_lossy()
        ));
    }
    Ok(())
}

#[test]
fn every_fixture_gives_its_expected_report() {
    let fixtures = common::fixtures();
    assert!(
        fixtures.len() >= 40,
        "the corpus has {} fixtures",
        fixtures.len()
    );
    let failures: Vec<String> = fixtures.iter().filter_map(|d| check(d).err()).collect();
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_valid_fixtures_have_no_warning() {
    for name in [
        "valid-minimal",
        "valid-full",
        "continuation-ok",
        "hash-in-quotes-2.8.6",
    ] {
        let dir = common::fixtures_dir().join(name);
        let text = fs::read_to_string(dir.join("expected")).unwrap();
        assert!(
            !text.contains("error[") && !text.contains("warning["),
            "{name} should be clean:\n{text}"
        );
    }
}
