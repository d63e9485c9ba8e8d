//! The settings file as a user and a power cut meet it: real `power-snitch settings` processes,
//! SIGKILLed mid-write; damaged files; sync with NUT's files.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use power_snitch::settings::model::{Settings, UpsEntry};
use power_snitch::settings::stored::{decode, encode};
use serde_json::Value;

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// `settings set --settings FILE --ups UPS KEY=VALUE`.
fn set(file: &str, ups: &str, kv: &str) -> Output {
    bin(&["settings", "set", "--settings", file, "--ups", ups, kv])
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ps-settings-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn show(file: &Path) -> (Output, Value) {
    let o = bin(&[
        "settings",
        "show",
        "--format",
        "json",
        "--settings",
        file.to_str().unwrap(),
    ]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn retry_count(v: &Value) -> String {
    v["ups"][0]["nut_retry_count"]
        .as_u64()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

#[test]
fn a_write_killed_at_any_moment_leaves_the_old_or_the_new_value() {
    let dir = temp("kill");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    assert!(set(f, "ups1", "nut_retry_count=0").status.success());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut killed_mid_way = 0;
    for i in 1..=1000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (_, before) = show(&file);
        let old = retry_count(&before);
        let new = (i % 100).to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
            .args([
                "settings",
                "set",
                "--settings",
                f,
                "--ups",
                "ups1",
                &format!("nut_retry_count={new}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed % 3000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed_mid_way += 1;
        }
        let (o, after) = show(&file);
        assert!(
            o.status.success(),
            "run {i}: show failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stderr.is_empty(),
            "run {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = retry_count(&after);
        assert!(
            got == old || got == new,
            "run {i}: {got} is neither {old} nor {new}"
        );
    }
    assert!(
        killed_mid_way > 100,
        "only {killed_mid_way} of 1000 runs were killed before finishing"
    );
}

fn one_ups() -> Settings {
    let mut s = Settings::default();
    let mut u = UpsEntry::new("ups0");
    u.nut_driver = "usbhid-ups".into();
    u.nut_port = Some("auto".into());
    u.nut_username = Some("monuser".into());
    u.set_password("a-long-password-1").unwrap();
    s.ups.push(u);
    s
}

#[test]
fn a_damaged_file_falls_back_to_the_previous_good_one_and_is_kept() {
    let dir = temp("damage");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    assert!(set(f, "ups1", "nut_retry_count=7").status.success());
    assert!(set(f, "ups1", "nut_retry_count=8").status.success());
    let good = fs::read(&file).unwrap();
    // Truncation at every offset, and every single-bit flip: the previous value (7), with a warning.
    let mut damaged: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    for bit in (0..good.len() * 8).step_by(3) {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        damaged.push(b);
    }
    for bytes in &damaged {
        fs::write(&file, bytes).unwrap();
        let (o, v) = show(&file);
        assert!(o.status.success());
        assert_eq!(
            retry_count(&v),
            "7",
            "fell back to the previous good version"
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("using the previous good settings"), "{err}");
    }
    // The next write keeps the damaged file aside.
    fs::write(&file, &good[..good.len() / 2]).unwrap();
    assert!(set(f, "ups1", "nut_retry_count=9").status.success());
    assert_eq!(
        fs::read(dir.join("settings.bin.damaged")).unwrap(),
        &good[..good.len() / 2]
    );
    assert_eq!(retry_count(&show(&file).1), "9");
}

#[test]
fn nothing_valid_left_means_defaults_and_a_clear_message() {
    let dir = temp("nothing");
    let file = dir.join("settings.bin");
    fs::write(&file, b"").unwrap();
    let (o, v) = show(&file);
    assert!(o.status.success());
    assert_eq!(v["ups"].as_array().unwrap().len(), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("0 bytes is too short") && err.contains("starting from defaults"),
        "{err}"
    );
    // A directory in its place: reading says so, writing fails and changes nothing.
    let d2 = temp("dir-in-place");
    let file = d2.join("settings.bin");
    fs::create_dir(&file).unwrap();
    let (o, _) = show(&file);
    assert!(String::from_utf8_lossy(&o.stderr).contains("settings.bin"));
    let o = set(file.to_str().unwrap(), "u", "poll_interval=9");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(file.is_dir());
    // A parent that is a file.
    let d3 = temp("parent-file");
    fs::write(d3.join("notadir"), b"x").unwrap();
    let file = d3.join("notadir/settings.bin");
    let o = set(file.to_str().unwrap(), "u", "poll_interval=9");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("notadir"));
}

#[test]
fn an_unchanged_set_does_not_touch_the_file() {
    let dir = temp("unchanged");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    assert!(set(f, "ups1", "poll_interval=9").status.success());
    let before = fs::metadata(&file).unwrap();
    let log_before = fs::read_to_string(dir.join("settings.bin.log")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let o = set(f, "ups1", "poll_interval=9");
    assert!(String::from_utf8_lossy(&o.stdout).contains("unchanged"));
    let after = fs::metadata(&file).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    assert_eq!(after.mode() & 0o777, 0o600);
    assert_eq!(
        fs::read_to_string(dir.join("settings.bin.log")).unwrap(),
        log_before
    );
}

#[test]
fn sizes_for_one_and_eight_ups() {
    let one = encode(&one_ups());
    let mut eight = one_ups();
    for i in 2..=8 {
        let mut u = eight.ups[0].clone();
        u.nut_device_name = format!("ups{i}");
        eight.ups.push(u);
    }
    let eight = encode(&eight);
    assert!(one.len() <= 256, "one UPS: {} bytes", one.len());
    println!(
        "settings file: one UPS {} bytes, eight UPSes {} bytes",
        one.len(),
        eight.len()
    );
}

/// Each released format version has a committed file; it must read, and be rewritten in the
/// current version on the next change.
#[test]
fn files_of_every_released_version_still_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures-settings");
    let v1 = fs::read(dir.join("v1-one-ups.bin")).expect("the version 1 fixture");
    let (s, version) = decode(&v1).unwrap();
    assert_eq!(version, 1);
    assert_eq!(s, one_ups());
}

#[test]
fn sync_reports_each_mismatch_and_apply_takes_nut_s_values() {
    let nut = common::fixtures_dir().join("valid-full");
    let n = nut.to_str().unwrap();
    let dir = temp("sync");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    let sync = |extra: &[&str]| {
        let mut a = vec![
            "sync",
            "--format",
            "json",
            "--nut-version",
            "2.8.0",
            "--nut-dir",
            n,
            "--settings",
            f,
        ];
        a.extend_from_slice(extra);
        bin(&a)
    };
    assert!(bin(&[
        "settings",
        "import",
        "--nut-dir",
        n,
        "--nut-version",
        "2.8.0",
        "--settings",
        f
    ])
    .status
    .success());
    let o = sync(&[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Make every kind of difference.
    for kv in [
        "nut_driver=blazer_usb",
        "nut_port=/dev/ttyS9",
        "upsd_port=4000",
    ] {
        assert!(set(f, "ups1", kv).status.success());
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args([
            "settings",
            "set",
            "--settings",
            f,
            "--ups",
            "ups1",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"not-the-password\n")
        .unwrap();
    assert!(c.wait().unwrap().success());
    assert!(set(f, "ghost", "nut_driver=dummy-ups").status.success());
    assert!(set(f, "usb", "nut_username=nobody").status.success());
    let o = sync(&[]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "settings-driver",
            "settings-monitor",
            "settings-password",
            "settings-port",
            "settings-ups-missing",
            "settings-user"
        ]
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("settings.bin changed since the last check")
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("not-the-password"));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"));
    // Apply: NUT's values, one write; the unknown UPS and user stay (nothing in NUT to take).
    let o = sync(&["--apply"]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&sync(&[]).stdout).unwrap();
    let mut codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, ["settings-ups-missing", "settings-user"]);
    let history = String::from_utf8(bin(&["settings", "history", "--settings", f]).stdout).unwrap();
    assert!(
        history.contains("nut_driver[ups1]: blazer_usb -> dummy-ups"),
        "{history}"
    );
    assert!(!history.contains("not-the-password") && !history.contains("secret"));
}

/// A small tmpfs mounted for the test (needs root, as the README's test command runs).
struct Mount(PathBuf);

impl Mount {
    fn new(name: &str, size: &str) -> Mount {
        let dir = temp(name);
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            o.status.success(),
            "mount a tmpfs (needs root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mount(dir)
    }

    fn remount_read_only(&self) {
        let o = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_or_a_read_only_directory_loses_nothing() {
    let m = Mount::new("full", "16k");
    let file = m.0.join("settings.bin");
    let f = file.to_str().unwrap();
    assert!(set(f, "ups1", "poll_interval=7").status.success());
    // Fill the disk.
    let mut n = 0;
    while fs::write(m.0.join(format!("filler{n}")), vec![0u8; 1024]).is_ok() {
        n += 1;
        assert!(n < 1000);
    }
    let o = set(f, "ups1", "poll_interval=8");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("No space left on device") && err.contains("the file is unchanged"),
        "{err}"
    );
    let (o, v) = show(&file);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(v["ups"][0]["poll_interval"], 7);

    let ro = Mount::new("readonly", "64k");
    let file = ro.0.join("settings.bin");
    let f = file.to_str().unwrap();
    assert!(set(f, "ups1", "poll_interval=7").status.success());
    ro.remount_read_only();
    let o = set(f, "ups1", "poll_interval=8");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Read-only file system"));
    assert_eq!(show(&file).1["ups"][0]["poll_interval"], 7);
}

#[test]
fn fifty_concurrent_writers_lose_no_change_and_the_history_has_each() {
    let dir = temp("concurrent");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap().to_string();
    assert!(set(&f, "base", "poll_interval=5").status.success());
    let children: Vec<_> = (0..50)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_power-snitch"))
                .args(["settings", "set", "--settings", &f, "--ups"])
                .arg(format!("w{i}"))
                .arg(format!("poll_interval={}", i + 1))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("change(s) written"));
    }
    let (_, v) = show(&file);
    let names: Vec<&str> = v["ups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["nut_device_name"].as_str().unwrap())
        .collect();
    let lost: Vec<String> = (0..50)
        .map(|i| format!("w{i}"))
        .filter(|n| !names.contains(&n.as_str()))
        .collect();
    assert!(lost.is_empty(), "lost {} of 50: {lost:?}", lost.len());
    let history =
        String::from_utf8(bin(&["settings", "history", "--settings", &f]).stdout).unwrap();
    for i in 0..50 {
        assert!(
            history.contains(&format!(" ups[w{i}]: (none) -> added")),
            "w{i} missing from the history:\n{history}"
        );
    }
}

#[test]
fn a_save_killed_mid_way_is_in_the_history_exactly_when_it_landed_and_leaves_no_litter() {
    let dir = temp("kill-history");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    assert!(set(f, "ups1", "nut_retry_count=0").status.success());
    // How long a whole save takes on this machine now (its median of five): kills land before,
    // during and after one.
    let mut took: Vec<u64> = (0..5)
        .map(|k| {
            let t = std::time::Instant::now();
            // 98 and 99, which the runs below never set, and 0 last, as it was.
            let v = [98, 99, 98, 99, 0][k];
            assert!(set(f, "ups1", &format!("nut_retry_count={v}"))
                .status
                .success());
            t.elapsed().as_micros() as u64
        })
        .collect();
    took.sort_unstable();
    let window = (took[2] * 4 / 3).max(1_000);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut killed, mut killed_landed) = (0, 0);
    for i in 1..=300u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let new = (i % 97 + 1).to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
            .args(["settings", "set", "--settings", f, "--ups", "ups1"])
            .arg(format!("nut_retry_count={new}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed % window));
        let _ = child.kill();
        let killed_now = child.wait().unwrap().code().is_none();
        // `history` finishes what a dead writer left, under the writers' lock.
        let history =
            String::from_utf8(bin(&["settings", "history", "--settings", f]).stdout).unwrap();
        let (_, after) = show(&file);
        let landed = retry_count(&after) == new;
        let last = history.lines().last().unwrap_or("");
        let recorded = last.ends_with(&format!("-> {new}"));
        assert_eq!(
            landed,
            recorded,
            "run {i}: the file has {}, the history ends with `{last}`",
            retry_count(&after)
        );
        if killed_now {
            killed += 1;
            killed_landed += usize::from(landed);
        }
        let litter: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".tmp") || n.contains(".next"))
            .collect();
        assert!(litter.is_empty(), "run {i}: left {litter:?}");
    }
    assert!(killed > 40, "only {killed} of 300 runs were killed mid-way");
    eprintln!(
        "{killed} writers killed (a save took {} us), {killed_landed} of their saves landed, each in the history",
        took[2]
    );
}

#[test]
fn every_state_file_is_mode_0600() {
    let dir = temp("modes");
    let file = dir.join("settings.bin");
    let f = file.to_str().unwrap();
    let nut = dir.join("nut");
    fs::create_dir_all(&nut).unwrap();
    fs::write(
        nut.join("ups.conf"),
        "[ups1]\n\tdriver = dummy-ups\n\tport = x.dev\n",
    )
    .unwrap();
    assert!(set(f, "ups1", "poll_interval=7").status.success());
    assert!(set(f, "ups1", "poll_interval=8").status.success());
    // `sync` remembers the files' fingerprints in settings.bin.seen.
    let o = bin(&["sync", "--settings", f, "--nut-dir", nut.to_str().unwrap()]);
    assert!(o.status.code().is_some(), "{o:?}");
    for name in [
        "settings.bin.seen",
        "settings.bin",
        "settings.bin.prev",
        "settings.bin.log",
        "settings.bin.lock",
    ] {
        let mode = fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}
