//! Finding UPS hardware: USB devices from sysfs, serial ports, and the dialogues that identify
//! a serial UPS; then the cross-check of what was found against ups.conf and the live upsd.
//! This file holds the inventory's data and its identification (pure); [`scan`] drives the
//! edges.
//!
//! **Architecture invariant:** this file, [`hid`], [`table`], [`dialogue`], [`matcher`],
//! [`perms`] and [`cross`] are pure. [`sysfs`] and [`serial`] are the edges: they read a root
//! path (the real `/` or a captured tree) and talk to ports. [`usbdev`] asks the devices
//! themselves, through the [`usbdev::DeviceReader`] the caller passes in (the application
//! layer's plan gives one for the real `/sys` only, never for a captured tree). [`scan`] joins
//! them: it reads NUT's udev rules, lists and probes the ports, looks up the drivers' account.

pub mod cross;
pub mod dialogue;
pub mod hid;
pub mod matcher;
pub mod perms;
pub mod scan;
pub mod serial;
pub mod sysfs;
pub mod table;
pub mod udev_event;
pub mod udev_rules;
pub mod usbdev;

use std::path::PathBuf;

use crate::nut::FileMeta;

pub use crate::nut::drivers::Bus;
pub use scan::{cross_check, knowledge, path_states, scan, Scan};

/// A device node as found: its path on the system (`/dev/bus/usb/001/002`) and its metadata,
/// when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub meta: Option<FileMeta>,
    /// The owner's and group's names on this system, when they have one.
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Node {
    /// `0664 root:nut`, or with numbers where names are unknown.
    pub fn describe_access(&self) -> String {
        let Some(m) = self.meta else {
            return "(metadata unreadable)".to_string();
        };
        let owner = self.owner.clone().unwrap_or_else(|| m.uid.to_string());
        let group = self.group.clone().unwrap_or_else(|| m.gid.to_string());
        format!("{:04o} {owner}:{group}", m.mode)
    }
}

/// One interface of a USB device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub number: u8,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    /// The kernel driver bound to it (`usbhid`, `ftdi_sio`, or `usbfs` when a program such as
    /// a NUT driver has claimed it).
    pub driver: Option<String>,
    /// The HID report descriptor's summary, when the kernel exposes it.
    pub hid: Option<hid::Summary>,
    /// Serial ttys the interface provides (`ttyUSB0`).
    pub ttys: Vec<String>,
}

impl Interface {
    /// A program holds it through usbfs (a running NUT driver such as usbhid-ups).
    pub fn held_by_program(&self) -> bool {
        self.driver.as_deref() == Some("usbfs")
    }
}

/// A USB device as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbDevice {
    /// The kernel's name for it, which is its place in the tree (`1-1.3`).
    pub name: String,
    pub vendor_id: u16,
    pub product_id: u16,
    /// bDeviceClass: 0x09 for a hub, 0 when each interface says.
    pub class: u8,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub busnum: u16,
    pub devnum: u16,
    /// The port path below the root hub (`1.3`).
    pub devpath: String,
    pub interfaces: Vec<Interface>,
    pub node: Option<Node>,
}

impl UsbDevice {
    /// The number of the hub port it is plugged into: what NUT's `busport` matches.
    pub fn port_number(&self) -> Option<u16> {
        self.devpath.rsplit('.').next()?.parse().ok()
    }

    pub fn hid(&self) -> Option<&hid::Summary> {
        self.interfaces.iter().find_map(|i| i.hid.as_ref())
    }

    pub fn has_hid_interface(&self) -> bool {
        self.interfaces.iter().any(|i| i.class == 0x03)
    }

    /// A program holds an interface through usbfs (a running NUT driver, usually).
    pub fn claimed(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| i.driver.as_deref() == Some("usbfs"))
    }
}

/// Why a serial port is not talked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    Console,
    Locked(String),
    Held(String),
    NotAsked,
    CannotOpen(String),
}

impl Skip {
    pub fn describe(&self) -> String {
        match self {
            Skip::Console => "the kernel console".to_string(),
            Skip::Locked(by) => format!("locked ({by})"),
            Skip::Held(by) => format!("in use by {by}"),
            Skip::NotAsked => "not named in ups.conf nor with --serial-port".to_string(),
            Skip::CannotOpen(why) => format!("cannot open: {why}"),
        }
    }
}

/// A serial port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialPort {
    /// The kernel's name (`ttyUSB0`), or the path given when it is not a kernel tty.
    pub name: String,
    /// The path a driver opens (`/dev/ttyUSB0`, or what `--serial-port` gave).
    pub path: String,
    /// Stable names under /dev/serial/by-id.
    pub by_id: Vec<String>,
    /// The USB device it belongs to (`1-1.2`), for USB-serial adapters.
    pub usb_parent: Option<String>,
    pub node: Option<Node>,
    pub console: bool,
    /// Set when the port was not talked to.
    pub skipped: Option<Skip>,
    /// What answered on it.
    pub answer: Option<(dialogue::Protocol, dialogue::Identity)>,
}

impl SerialPort {
    /// The name ups.conf should use: the first by-id link, else the path.
    pub fn stable_path(&self) -> &str {
        self.by_id.first().map(String::as_str).unwrap_or(&self.path)
    }
}

/// How a detected UPS was recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentifiedBy {
    /// By VID:PID in a table.
    Table(table::Source),
    /// By its HID report descriptor (usage pages 0x84/0x85).
    HidDescriptor,
    /// By talking to it on a serial port.
    Dialogue(dialogue::Protocol),
}

impl IdentifiedBy {
    pub fn describe(&self) -> String {
        match self {
            IdentifiedBy::Table(s) => s.describe(),
            IdentifiedBy::HidDescriptor => "HID report descriptor".to_string(),
            IdentifiedBy::Dialogue(p) => format!("{} dialogue", p.name()),
        }
    }
}

/// A UPS found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    pub bus: Bus,
    /// Index into [`Inventory::usb`] (a USB UPS, or the adapter of a serial one).
    pub usb: Option<usize>,
    /// Index into [`Inventory::serial`].
    pub serial_port: Option<usize>,
    pub vendor_id: Option<u16>,
    pub product_id: Option<u16>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// What ups.conf's `port` should say: `auto` for USB, the stable path for serial.
    pub port: String,
    pub drivers: Vec<String>,
    pub protocol: Option<String>,
    pub identified_by: IdentifiedBy,
}

/// A device that was looked at and is not a UPS, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Other {
    pub usb: usize,
    pub why: String,
}

/// Everything the probe saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub usb: Vec<UsbDevice>,
    pub serial: Vec<SerialPort>,
    pub ups: Vec<Detected>,
    pub others: Vec<Other>,
    /// Things that could not be read (a device pulled out mid-probe), for the report.
    pub problems: Vec<String>,
}

/// Where the probe looks: a system root's sysfs and device nodes. For the real system these
/// are `/sys` and `/dev`; a captured tree `DIR/sys` has its nodes in `DIR/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl Root {
    pub fn system() -> Self {
        Root::from_sysfs(PathBuf::from("/sys"))
    }

    /// The real system's sysfs rather than a captured tree: the devices themselves may be asked.
    pub fn is_system(&self) -> bool {
        self.sys == std::path::Path::new("/sys")
    }

    pub fn from_sysfs(sys: PathBuf) -> Self {
        let base = sys
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        Root {
            dev: base.join("dev"),
            sys,
        }
    }

    /// A path as the system names it (`/dev/ttyUSB0`) to where it is under this root.
    pub fn dev_path(&self, system_path: &str) -> PathBuf {
        match system_path.strip_prefix("/dev/") {
            Some(rest) => self.dev.join(rest),
            None => PathBuf::from(system_path),
        }
    }
}

/// Identifies the UPSes among the USB devices and answered serial ports.
pub fn identify(inv: &mut Inventory, know: &table::Knowledge) {
    inv.ups.clear();
    inv.others.clear();
    for (i, d) in inv.usb.iter().enumerate() {
        let known = know.lookup(d.vendor_id, d.product_id);
        let hid = d.hid();
        let (drivers, by, vendor, model) = match (&known, hid) {
            (Some((k, _)), _) if k.is_adapter() => {
                // The UPS behind an adapter is found on its tty, if it answers.
                continue;
            }
            (Some((k, src)), _) => (
                k.drivers.clone(),
                IdentifiedBy::Table(src.clone()),
                Some(k.vendor.clone()),
                Some(k.models.clone()),
            ),
            (None, Some(h)) if h.is_power_device() => (
                vec!["usbhid-ups".to_string()],
                IdentifiedBy::HidDescriptor,
                None,
                None,
            ),
            (None, _) if d.class == 0x09 => continue,
            (None, h) => {
                let why = match h {
                    Some(h) => format!("{}, not a power device", h.kind()),
                    None if d
                        .interfaces
                        .iter()
                        .any(|i| i.class == 0x03 && i.held_by_program()) =>
                    {
                        "HID device held by a program through usbfs (a running NUT driver?): \
                         its report descriptor is not read"
                            .to_string()
                    }
                    None if d.has_hid_interface() => {
                        "HID device whose report descriptor is not readable".to_string()
                    }
                    None => "not in any UPS table".to_string(),
                };
                inv.others.push(Other { usb: i, why });
                continue;
            }
        };
        inv.ups.push(Detected {
            bus: Bus::Usb,
            usb: Some(i),
            serial_port: None,
            vendor_id: Some(d.vendor_id),
            product_id: Some(d.product_id),
            vendor: d.manufacturer.clone().or(vendor),
            model: d.product.clone().or(model),
            serial: d.serial.clone(),
            port: "auto".to_string(),
            drivers,
            protocol: hid
                .filter(|h| h.is_power_device())
                .map(|_| "hid-power-device".to_string()),
            identified_by: by,
        });
    }
    for (i, p) in inv.serial.iter().enumerate() {
        let Some((proto, id)) = &p.answer else {
            continue;
        };
        let usb = p
            .usb_parent
            .as_ref()
            .and_then(|name| inv.usb.iter().position(|d| &d.name == name));
        inv.ups.push(Detected {
            bus: Bus::Serial,
            usb,
            serial_port: Some(i),
            vendor_id: None,
            product_id: None,
            vendor: id.manufacturer.clone(),
            model: id.model.clone(),
            serial: id.serial.clone(),
            port: p.stable_path().to_string(),
            drivers: proto.drivers().iter().map(|s| s.to_string()).collect(),
            protocol: Some(proto.name().to_string()),
            identified_by: IdentifiedBy::Dialogue(*proto),
        });
    }
}

/// The serial ports ups.conf names for serial drivers: these may be probed.
pub fn named_ports(conf: &crate::nut::ups_conf::UpsConf) -> Vec<String> {
    let mut ports: Vec<String> = Vec::new();
    for s in &conf.sections {
        let (Some(driver), Some(port)) = (s.value("driver"), s.value("port")) else {
            continue;
        };
        if crate::nut::drivers::bus(driver, port) == Some(Bus::Serial)
            && !ports.iter().any(|p| p == port)
        {
            ports.push(port.to_string());
        }
    }
    ports
}
