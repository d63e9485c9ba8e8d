//! NUT's tables generated from the releases themselves: `nut-releases/gen-tables` writes
//! `src/nut/drivers.txt` from each release's `DRIVER -L` and `src/probe/devices.txt` from each
//! release's udev rules (with the overlays beside it for what the releases cannot show); the
//! committed tables must be what it writes. Needs root (chroot) and the roots
//! `nut-releases/build-roots` makes: without them the test fails saying how to build them.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

const TABLES: [&str; 2] = ["src/nut/drivers.txt", "src/probe/devices.txt"];

/// Runs the generator in `dir` (a copy of nut-releases, or the repository's own) into `out`:
/// its exit code and what it said.
fn generate(script: &Path, out: &Path) -> (i32, String) {
    let o = Command::new(script)
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
    let (code, said) = generate(&repo.join("nut-releases/gen-tables"), &out);
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
/// a variable dated 2.8.0 that 2.8.0's driver does not list, and an ID no release's rules have.
#[test]
fn the_generator_refuses_what_the_releases_contradict() {
    common::nut::releases();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases: [(&str, &str, &str, &str); 3] = [
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
    ];
    for (i, (file, from, to, want)) in cases.iter().enumerate() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gen-tables-bad-{i}"));
        let _ = fs::remove_dir_all(&dir);
        let copy = dir.join("nut-releases");
        fs::create_dir_all(&copy).unwrap();
        for f in ["gen-tables", "suites", "drivers.in", "devices.in"] {
            fs::copy(repo.join("nut-releases").join(f), copy.join(f)).unwrap();
        }
        let text = fs::read_to_string(copy.join(file)).unwrap();
        assert!(text.contains(from), "{file} has `{from}`");
        fs::write(copy.join(file), text.replacen(from, to, 1)).unwrap();
        let (code, said) = generate(&copy.join("gen-tables"), &dir.join("out"));
        assert_eq!(code, 2, "{file} with `{to}`: exits {code}: {said}");
        assert!(said.contains(want), "{file} with `{to}`: {said}");
        assert!(
            said.contains(&format!("nut-releases/{file}:")),
            "names the line: {said}"
        );
        assert!(!dir.join("out/src").exists(), "wrote nothing");
        let _ = fs::remove_dir_all(&dir);
    }
}
