//! Reading the fixture corpus: each folder of tests/fixtures is one NUT configuration directory,
//! with `expected` (the report) and an optional `meta` (NUT version, file modes and owners).

#![allow(dead_code)]

pub mod http;
pub mod nut;
pub mod sim;
pub mod web;

use std::fs;
use std::path::{Path, PathBuf};

use power_snitch::nut::version::NutVersion;
use power_snitch::nut::{Account, FileMeta, FileState, Snapshot};

pub const NUT_UID: u32 = 200;
pub const NUT_GID: u32 = 200;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixtures() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .map(|e| e.expect("readable entry").path())
        // usb/ holds captured sysfs trees and usb-checks/ configurations checked against them.
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("usb"))
        })
        .collect();
    dirs.sort();
    dirs
}

/// What a fixture's `meta` file says.
pub struct Meta {
    pub version: NutVersion,
    /// (file, mode)
    pub modes: Vec<(String, u32)>,
    /// (file, uid, gid)
    pub owners: Vec<(String, u32, u32)>,
}

impl Meta {
    pub fn mode(&self, file: &str) -> u32 {
        self.modes
            .iter()
            .find(|m| m.0 == file)
            .map_or(0o640, |m| m.1)
    }

    pub fn owner(&self, file: &str) -> (u32, u32) {
        self.owners
            .iter()
            .find(|m| m.0 == file)
            .map_or((0, NUT_GID), |m| (m.1, m.2))
    }
}

pub fn meta(dir: &Path) -> Meta {
    let mut meta = Meta {
        version: NutVersion::new(2, 8, 0),
        modes: Vec::new(),
        owners: Vec::new(),
    };
    let text = fs::read_to_string(dir.join("meta")).unwrap_or_default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["nut-version", v] => meta.version = v.parse().expect("meta version"),
            ["mode", f, m] => meta.modes.push((
                f.to_string(),
                u32::from_str_radix(m, 8).expect("octal mode"),
            )),
            ["owner", f, u, g] => {
                meta.owners
                    .push((f.to_string(), u.parse().unwrap(), g.parse().unwrap()))
            }
            _ => panic!("{}: bad meta line `{line}`", dir.display()),
        }
    }
    meta
}

/// The fixture as the validator sees it, with the modes and owners its meta gives.
pub fn snapshot(dir: &Path, meta: &Meta) -> Snapshot {
    let file = |name: &str| -> FileState {
        match fs::read(dir.join(name)) {
            Ok(text) => {
                let (uid, gid) = meta.owner(name);
                FileState::Read {
                    text,
                    meta: FileMeta {
                        mode: 0o100000 | meta.mode(name),
                        uid,
                        gid,
                    },
                }
            }
            Err(_) => FileState::Missing,
        }
    };
    Snapshot {
        ups_conf: file("ups.conf"),
        upsd_conf: file("upsd.conf"),
        upsd_users: file("upsd.users"),
        upsmon_conf: file("upsmon.conf"),
        nut_conf: file("nut.conf"),
        daemon: Some(Account {
            name: "nut".into(),
            uid: NUT_UID,
            gids: vec![NUT_GID],
        }),
    }
}
