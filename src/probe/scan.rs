//! **The edge** of the probe: reads NUT's udev rules, the USB devices (and asks them, through
//! the reader passed in, for what sysfs lacks), lists and probes the serial ports, identifies
//! the UPSes; the cross-check with the paths and the drivers' account looked up on this system.

use std::path::Path;

use super::usbdev::{self, DeviceReader};
use super::{cross, identify, serial, sysfs, table, Bus, Inventory, Root};

/// NUT's udev rules as packages install them, relative to a system root.
const RULES: [&str; 3] = [
    "etc/udev/rules.d/62-nut-usbups.rules",
    "lib/udev/rules.d/62-nut-usbups.rules",
    "usr/lib/udev/rules.d/62-nut-usbups.rules",
];

/// Our table, plus NUT's udev rules found under the root's base (`/` for the system).
pub fn knowledge(root: &Root) -> table::Knowledge {
    let base = root.sys.parent().unwrap_or(Path::new("/"));
    let know = table::Knowledge::builtin();
    for rel in RULES {
        let path = base.join(rel);
        if let Ok(text) = std::fs::read_to_string(&path) {
            return know.with_host_rules(&path.display().to_string(), &text);
        }
    }
    know
}

/// What to look at, and whether serial ports may be talked to.
pub struct Scan<'a> {
    pub root: &'a Root,
    /// Asks the USB devices for what sysfs lacks; none for a captured tree.
    pub usb: Option<&'a dyn DeviceReader>,
    /// Serial ports named by ups.conf or the user.
    pub asked: &'a [String],
    pub talk: bool,
    /// Talk to this port (kernel name) only.
    pub only: Option<&'a str>,
    /// Hears the path of each serial port as its dialogue starts.
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// Reads the USB devices (asking the devices for what the real sysfs lacks), lists and probes
/// the serial ports, and identifies the UPSes.
pub fn scan(s: &Scan, know: &table::Knowledge) -> Inventory {
    let (mut usb, mut problems) = sysfs::usb_devices(s.root);
    if let Some(reader) = s.usb {
        usbdev::fill(&mut usb, reader, &mut problems);
    }
    let plan = serial::Plan {
        root: s.root,
        asked: s.asked,
        talk: s.talk,
        only: s.only,
    };
    let mut ports = serial::ports(&plan, &usb, know);
    serial::probe(s.root, &mut ports, s.progress);
    let mut inv = Inventory {
        usb,
        serial: ports,
        problems,
        ..Inventory::default()
    };
    identify(&mut inv, know);
    inv
}

/// Whether each serial port ups.conf names exists under the root.
pub fn path_states(root: &Root, conf: &crate::nut::ups_conf::UpsConf) -> Vec<cross::PathState> {
    conf.sections
        .iter()
        .filter_map(|s| {
            let port = s.value("port")?;
            (crate::nut::drivers::bus(s.value("driver")?, port) == Some(Bus::Serial)).then(|| {
                cross::PathState {
                    path: port.to_string(),
                    exists: std::fs::metadata(root.dev_path(port)).is_ok(),
                }
            })
        })
        .collect()
}

/// The cross-check of an inventory against ups.conf (and upsd's view, when given), with the
/// drivers' account looked up on this system.
pub fn cross_check(
    root: &Root,
    conf: &crate::nut::ups_conf::UpsConf,
    inv: &Inventory,
    live: Option<&cross::Live>,
    version: crate::nut::version::NutVersion,
) -> cross::Outcome {
    let paths = path_states(root, conf);
    let user = conf.global("user").unwrap_or("nut").to_string();
    let account = crate::nut::host::account(&user);
    cross::check(&cross::Input {
        conf,
        inv,
        paths: &paths,
        driver_user: &user,
        driver_account: account.as_ref(),
        live,
        db: crate::nut::drivers::DriverDb::builtin(),
        version,
    })
}
