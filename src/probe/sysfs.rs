//! Reads USB devices and serial ports from a sysfs tree, as the kernel lays it out:
//! `bus/usb/devices/<name>` links to each device's directory, whose attribute files
//! (`idVendor`, `busnum`, ...) and interface directories (`<name>:1.0`) say the rest; ttys are
//! under `class/tty`. The root is a parameter, so a captured tree reads like the real one.
//!
//! A device can vanish while it is read (pulled out mid-probe): it is then left out and the
//! problem reported, never an error for the whole probe.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{hid, Interface, Node, Root, SerialPort, UsbDevice};
use crate::nut::FileMeta;

/// The longest attribute we read: sysfs pages are 4 KiB; report descriptors are at most 4 KiB
/// (HID_MAX_DESCRIPTOR_SIZE).
const MAX_ATTR: u64 = 4096;

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    fs::File::open(path)?.take(MAX_ATTR).read_to_end(&mut out)?;
    Ok(out)
}

/// An attribute's text, without the kernel's trailing newline; `None` when absent.
fn attr(dir: &Path, name: &str) -> io::Result<Option<String>> {
    match read_bounded(&dir.join(name)) {
        Ok(bytes) => Ok(Some(
            String::from_utf8_lossy(&bytes)
                .trim_end_matches('\n')
                .to_string(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn hex_attr(dir: &Path, name: &str) -> io::Result<Option<u16>> {
    Ok(attr(dir, name)?.and_then(|s| u16::from_str_radix(s.trim(), 16).ok()))
}

fn dec_attr(dir: &Path, name: &str) -> io::Result<Option<u16>> {
    Ok(attr(dir, name)?.and_then(|s| s.trim().parse().ok()))
}

/// A string descriptor sysfs exposes; empty or whitespace-only strings count as absent.
fn string_attr(dir: &Path, name: &str) -> io::Result<Option<String>> {
    Ok(attr(dir, name)?
        .map(|s| {
            s.trim()
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
        })
        .filter(|s| !s.is_empty()))
}

/// The `KEY=value` of a uevent file.
fn uevent(dir: &Path, key: &str) -> Option<String> {
    let text = attr(dir, "uevent").ok()??;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}

fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
}

/// Owner, group and mode of a device node under the root.
pub fn node(root: &Root, devname: &str) -> Node {
    let mut n = node_at(&root.dev.join(devname).display().to_string());
    n.path = format!("/dev/{devname}");
    n
}

/// Owner, group and mode of the file at a path (following links).
pub fn node_at(path: &str) -> Node {
    let system = path.to_string();
    let meta = fs::metadata(path).ok().map(|m| FileMeta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    });
    use nix::unistd::{Gid, Group, Uid, User};
    let owner = meta
        .and_then(|m| User::from_uid(Uid::from_raw(m.uid)).ok().flatten())
        .map(|u| u.name);
    let group = meta
        .and_then(|m| Group::from_gid(Gid::from_raw(m.gid)).ok().flatten())
        .map(|g| g.name);
    Node {
        path: system,
        meta,
        owner,
        group,
    }
}

/// A USB device's name (`1-1.3`) rather than a root hub (`usb1`) or interface (`1-1.3:1.0`).
pub fn is_device_name(name: &str) -> bool {
    let Some((bus, path)) = name.split_once('-') else {
        return false;
    };
    !bus.is_empty()
        && bus.bytes().all(|b| b.is_ascii_digit())
        && !path.is_empty()
        && path.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Every USB device under the root, sorted by name; and what could not be read.
pub fn usb_devices(root: &Root) -> (Vec<UsbDevice>, Vec<String>) {
    let mut devices = Vec::new();
    let mut problems = Vec::new();
    let dir = root.sys.join("bus/usb/devices");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (devices, problems),
        Err(e) => {
            problems.push(format!("cannot list {}: {e}", dir.display()));
            return (devices, problems);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| is_device_name(n))
        .collect();
    names.sort_by_key(|n| natural(n));
    for name in names {
        match usb_device(root, &dir.join(&name), &name) {
            Ok(Some(d)) => devices.push(d),
            Ok(None) => {}
            Err(e) => problems.push(format!(
                "USB device {name} could not be read (unplugged while probing?): {e}"
            )),
        }
    }
    (devices, problems)
}

/// Sort key: `1-1.10` after `1-1.9`.
fn natural(name: &str) -> Vec<u32> {
    name.split(['-', '.', ':'])
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

/// One device; `None` when it is gone (its directory vanished).
pub fn usb_device(root: &Root, dir: &Path, name: &str) -> io::Result<Option<UsbDevice>> {
    let (Some(vendor_id), Some(product_id)) =
        (hex_attr(dir, "idVendor")?, hex_attr(dir, "idProduct")?)
    else {
        if dir.exists() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no idVendor/idProduct",
            ));
        }
        return Ok(None);
    };
    let busnum = dec_attr(dir, "busnum")?.unwrap_or(0);
    let devnum = dec_attr(dir, "devnum")?.unwrap_or(0);
    let devpath = attr(dir, "devpath")?
        .unwrap_or_else(|| name.split_once('-').map(|x| x.1).unwrap_or("").to_string());
    let mut interfaces = Vec::new();
    let prefix = format!("{name}:");
    let mut ifnames: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    ifnames.sort();
    for ifname in ifnames {
        interfaces.push(interface(&dir.join(&ifname))?);
    }
    let node = uevent(dir, "DEVNAME")
        .or_else(|| Some(format!("bus/usb/{busnum:03}/{devnum:03}")))
        .map(|devname| node(root, &devname));
    Ok(Some(UsbDevice {
        name: name.to_string(),
        vendor_id,
        product_id,
        class: hex_attr(dir, "bDeviceClass")?.unwrap_or(0) as u8,
        manufacturer: string_attr(dir, "manufacturer")?,
        product: string_attr(dir, "product")?,
        serial: string_attr(dir, "serial")?,
        busnum,
        devnum,
        devpath,
        interfaces,
        node,
    }))
}

fn interface(dir: &Path) -> io::Result<Interface> {
    let h = |n: &str| -> io::Result<u8> { Ok(hex_attr(dir, n)?.unwrap_or(0) as u8) };
    let mut hid_summary = None;
    let mut ttys = Vec::new();
    for entry in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let n = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        // A HID device bound under the interface: `0003:0764:0501.0001/report_descriptor`.
        if n.starts_with("0003:") && hid_summary.is_none() {
            if let Ok(bytes) = read_bounded(&path.join("report_descriptor")) {
                hid_summary = Some(hid::parse(&bytes));
            }
        }
        // USB-serial (`ttyUSB0/`) and CDC-ACM (`tty/ttyACM0/`) ttys.
        if n.starts_with("ttyUSB") {
            ttys.push(n.clone());
        }
        if n == "tty" {
            if let Ok(inner) = fs::read_dir(&path) {
                ttys.extend(
                    inner
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|t| t.starts_with("tty")),
                );
            }
        }
    }
    ttys.sort();
    Ok(Interface {
        number: h("bInterfaceNumber")?,
        class: h("bInterfaceClass")?,
        subclass: h("bInterfaceSubClass")?,
        protocol: h("bInterfaceProtocol")?,
        driver: link_name(&dir.join("driver")),
        hid: hid_summary,
        ttys,
    })
}

const TTY_PREFIXES: [&str; 4] = ["ttyUSB", "ttyACM", "ttyAMA", "ttyS"];

/// The serial ports under the root: USB-serial, CDC-ACM, the Pi's UARTs and 8250 ports that
/// have hardware behind them (a `type` of 0 is a placeholder the 8250 driver always creates).
pub fn serial_ports(root: &Root) -> Vec<SerialPort> {
    let class = root.sys.join("class/tty");
    let consoles: Vec<String> = attr(&class.join("console"), "active")
        .ok()
        .flatten()
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let by_id = links(&root.dev.join("serial/by-id"));
    let mut ports = Vec::new();
    let Ok(entries) = fs::read_dir(&class) else {
        return ports;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(prefix) = TTY_PREFIXES.iter().find(|p| name.starts_with(**p)) else {
            continue;
        };
        if !name[prefix.len()..].bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = class.join(&name);
        if *prefix == "ttyS" && attr(&dir, "type").ok().flatten().as_deref() == Some("0") {
            continue;
        }
        ports.push(SerialPort {
            path: format!("/dev/{name}"),
            by_id: by_id
                .iter()
                .filter(|(_, target)| target == &name)
                .map(|(link, _)| format!("/dev/serial/by-id/{link}"))
                .collect(),
            usb_parent: usb_parent(&dir),
            node: Some(node(root, &name)),
            console: consoles.contains(&name),
            skipped: None,
            answer: None,
            name,
        });
    }
    ports.sort_by_key(|p| natural_tty(&p.name));
    ports
}

fn natural_tty(name: &str) -> (String, u32) {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    (
        name[..name.len() - digits.len()].to_string(),
        digits.parse().unwrap_or(0),
    )
}

/// The links in a directory such as /dev/serial/by-id and the file names they point to.
fn links(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().to_string(),
                target.file_name()?.to_string_lossy().to_string(),
            ))
        })
        .collect();
    out.sort();
    out
}

/// The USB device a tty belongs to: the last component of its real path that names one.
fn usb_parent(tty_dir: &Path) -> Option<String> {
    let real: PathBuf = fs::canonicalize(tty_dir).ok()?;
    real.components()
        .filter_map(|c| c.as_os_str().to_str())
        .rfind(|c| is_device_name(c))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_told_from_hubs_and_interfaces() {
        assert!(is_device_name("1-1"));
        assert!(is_device_name("1-1.3"));
        assert!(is_device_name("10-2.4.1"));
        assert!(!is_device_name("usb1"));
        assert!(!is_device_name("1-1:1.0"));
        assert!(!is_device_name("1-"));
    }

    #[test]
    fn names_sort_naturally() {
        let mut v = vec!["1-1.10", "1-1.9", "2-1", "1-1"];
        v.sort_by_key(|n| natural(n));
        assert_eq!(v, vec!["1-1", "1-1.9", "1-1.10", "2-1"]);
    }
}
