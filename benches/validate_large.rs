//! Validates a generated ups.conf of 10,000 sections (plus the other four files) and prints the
//! median time, in process and end to end through the binary. Budget: under 20 ms in process.
//!
//! Run: `cargo bench --bench validate_large`

use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use power_snitch::nut::drivers::DriverDb;
use power_snitch::nut::version::NutVersion;
use power_snitch::nut::{validate, Context, FileMeta, FileState, Snapshot};

const SECTIONS: usize = 10_000;
const BUDGET: Duration = Duration::from_millis(20);

fn ups_conf() -> String {
    let mut s = String::from("maxretry = 3\nretrydelay = 5\n\n");
    for i in 0..SECTIONS {
        let _ = match i % 3 {
            0 => write!(s, "[ups{i}]\n\tdriver = usbhid-ups\n\tport = auto\n\tvendorid = 0463\n\tproductid = ffff\n\tdesc = \"Rack {i}, row \\#2\"\n\n"),
            1 => write!(s, "[ups{i}]\n\tdriver = nutdrv_qx\n\tport = /dev/ttyUSB{}\n\tprotocol = megatec\n\tpollinterval = 5\n\n", i % 8),
            _ => write!(s, "[ups{i}]\n\tdriver = dummy-ups\n\tport = ups{i}.dev\n\tnolock\n\n"),
        };
    }
    s
}

fn read(text: &str) -> FileState {
    FileState::Read {
        text: text.as_bytes().to_vec(),
        meta: FileMeta {
            mode: 0o100640,
            uid: 0,
            gid: 0,
        },
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let ups = ups_conf();
    let snap = Snapshot {
        ups_conf: read(&ups),
        upsd_conf: read("LISTEN 127.0.0.1 3493\n"),
        upsd_users: read("[mon]\n\tpassword = secret\n\tupsmon primary\n"),
        upsmon_conf: read(
            "MONITOR ups0@localhost 1 mon secret primary\nSHUTDOWNCMD \"/sbin/shutdown -h +0\"\n",
        ),
        nut_conf: read("MODE=standalone\n"),
        daemon: None,
    };
    let cx = Context {
        version: NutVersion::new(2, 8, 0),
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let (_, findings) = validate(&snap, &cx);
    assert!(
        findings.is_empty(),
        "the generated set is valid: {:?}",
        findings.first()
    );
    let runs: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(validate(std::hint::black_box(&snap), &cx));
            t.elapsed()
        })
        .collect();
    let lines = ups.lines().count();
    let inproc = median(runs);
    println!(
        "validate, {SECTIONS} sections ({lines} lines, {} KiB): median {:.2} ms in process; budget {} ms ({:.2} of budget)",
        ups.len() / 1024,
        inproc.as_secs_f64() * 1e3,
        BUDGET.as_millis(),
        inproc.as_secs_f64() / BUDGET.as_secs_f64()
    );

    // End to end: the release binary on real files.
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/power-snitch");
    if bin.exists() {
        let dir = std::env::temp_dir().join(format!("ps-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (f, t) in [
            ("ups.conf", ups.as_str()),
            ("upsd.conf", "LISTEN 127.0.0.1 3493\n"),
            ("upsd.users", "[mon]\n\tpassword = secret\n\tupsmon primary\n"),
            ("upsmon.conf", "MONITOR ups0@localhost 1 mon secret primary\nSHUTDOWNCMD \"/sbin/shutdown -h +0\"\n"),
            ("nut.conf", "MODE=standalone\n"),
        ] {
            std::fs::write(dir.join(f), t).unwrap();
        }
        let runs: Vec<Duration> = (0..15)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new(&bin)
                    .args(["validate", "--nut-version", "2.8.0", "--nut-dir"])
                    .arg(&dir)
                    .output()
                    .expect("binary runs");
                assert!(out.status.code().is_some());
                t.elapsed()
            })
            .collect();
        println!(
            "power-snitch validate (release binary, files on disk): median {:.2} ms",
            median(runs).as_secs_f64() * 1e3
        );
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("(build the release binary to time it end to end: cargo build --release)");
    }
    if inproc > BUDGET {
        eprintln!("over budget");
        std::process::exit(1);
    }
}
