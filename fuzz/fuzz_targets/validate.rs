//! Any bytes as each of NUT's five files at once, under old and new NUT rules: every parser and
//! the checks across files never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::nut::drivers::DriverDb;
use power_snitch::nut::version::NutVersion;
use power_snitch::nut::{validate, Context, FileMeta, FileState, Snapshot};

fuzz_target!(|data: &[u8]| {
    // Split the input into five files at 0xFF bytes (which NUT drops anyway).
    let mut parts = data.split(|b| *b == 0xff).map(|p| FileState::Read {
        text: p.to_vec(),
        meta: FileMeta { mode: 0o100640, uid: 0, gid: 0 },
    });
    let mut next = || parts.next().unwrap_or(FileState::Missing);
    let snap = Snapshot {
        ups_conf: next(),
        upsd_conf: next(),
        upsd_users: next(),
        upsmon_conf: next(),
        nut_conf: next(),
        daemon: None,
    };
    for version in [NutVersion::new(2, 7, 4), NutVersion::new(2, 8, 0), NutVersion::NEWEST] {
        let cx = Context { version, drivers: DriverDb::builtin(), host_drivers: None };
        let _ = validate(&snap, &cx);
    }
});
