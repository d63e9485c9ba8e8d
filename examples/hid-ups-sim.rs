//! A simulated USB HID UPS on a real kernel USB stack: a FunctionFS gadget on `dummy_hcd`, so
//! that the same Linux machine sees a HID Power Device on its USB bus (sysfs, usbhid, hidraw,
//! libusb, udev) and NUT's `usbhid-ups` reads it as it reads a real unit. Linux only, as root;
//! the image's QEMU test runs it in the guest (image/rootfs, `power-snitch-test-hid.service`).
//!
//! ```text
//! hid-ups-sim [--control PATH] [--plug NAME]
//! ```
//!
//! Control lines (from PATH, e.g. the virtio port /dev/virtio-ports/powersnitch.hid, else
//! standard input): `plug NAME` (a personality of tests/common/hid_sim.rs: `cyberpower`, a
//! CP1500AVRLCDa 0764:0501; `apc`, a Back-UPS ES 850G2 051d:0002; `eaton`, a 5SC 0463:ffff;
//! `cyberpower-cst135`, a CST135UC2 0764:0601; makes a gadget and binds it to a free UDC;
//! `plug NAME no-serial` leaves the serial number out, and a personality plugged again is
//! another unit, `NAME-2`: two of them are identical twins), `unplug` / `replug` (unbind and
//! bind the last plugged gadget: a USB drop-out),
//! `status OL|OB [LB]`, `charge N`, `runtime MIN`, `input V`, `load N`, `battery`, `line`,
//! `low`, `not-low`, `show`; `sh COMMAND` (the test's checks in the guest; output on standard
//! output) and `send PATH` (a file back to the host on the control port, e.g. the captured
//! sysfs trees). Each answer is one line on standard
//! output.
//!
//! The descriptors and reports are `tests/common/hid_sim.rs` (sans-I/O, tested on the host);
//! this file is the FunctionFS side: configfs, the ep0 descriptors and strings, the ep0 events
//! (GET_DESCRIPTOR of the report descriptor, GET_REPORT, SET_REPORT, SET_IDLE) and the
//! interrupt-in endpoint.

#[allow(dead_code)]
#[path = "../tests/common/sim.rs"]
mod sim;

#[allow(dead_code)]
#[path = "../tests/common/hid_sim.rs"]
mod hid_sim;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hid_sim::{Command, Device, Kind};

const USAGE: &str = "usage: hid-ups-sim [--control PATH] [--plug NAME]";
const GADGETS: &str = "/sys/kernel/config/usb_gadget";

/// One plugged unit: its device model, shared by the ep0 and interrupt threads.
struct Unit {
    /// The personality's name, and this unit's (`NAME`, then `NAME-2`... for more of it).
    personality: String,
    name: String,
    gadget: PathBuf,
    udc: String,
    device: Mutex<Device>,
    /// Set when the state changed (or the host enabled the function): the interrupt thread
    /// sends the input reports.
    dirty: Mutex<bool>,
    wake: Condvar,
}

fn write(path: impl AsRef<Path>, value: &str) -> Result<(), String> {
    let path = path.as_ref();
    fs::write(path, value).map_err(|e| format!("cannot write `{value}` to {}: {e}", path.display()))
}

fn mkdir(path: impl AsRef<Path>) -> Result<(), String> {
    let path = path.as_ref();
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot make {}: {e}", path.display())),
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let status = Process::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {status}", args.join(" ")))
    }
}

/// dummy_hcd (two UDCs: two units at once), libcomposite, FunctionFS, configfs.
fn setup_kernel() -> Result<(), String> {
    run("modprobe", &["dummy_hcd", "num=2"])?;
    run("modprobe", &["libcomposite"])?;
    run("modprobe", &["usb_f_fs"])?;
    if !Path::new(GADGETS).exists() {
        run("mount", &["-t", "configfs", "none", "/sys/kernel/config"])?;
    }
    Ok(())
}

/// The UDCs no gadget is bound to.
fn free_udc() -> Result<String, String> {
    let mut udcs: Vec<String> = fs::read_dir("/sys/class/udc")
        .map_err(|e| format!("no UDC (/sys/class/udc: {e})"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    udcs.sort();
    let mut used = Vec::new();
    if let Ok(gadgets) = fs::read_dir(GADGETS) {
        for g in gadgets.flatten() {
            if let Ok(u) = fs::read_to_string(g.path().join("UDC")) {
                used.push(u.trim().to_string());
            }
        }
    }
    udcs.into_iter()
        .find(|u| !used.contains(u))
        .ok_or_else(|| "every UDC has a gadget bound".into())
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}

/// FunctionFS's descriptors (v2 header, full and high speed): one HID interface, its HID
/// class descriptor, one interrupt-in endpoint.
fn ffs_descriptors(device: &Device) -> Vec<u8> {
    let interface = [9u8, 4, 0, 0, 1, 3, 0, 0, 0];
    let hid = device.hid_descriptor();
    let mp = le16(device.personality.max_packet);
    // bInterval: 10 ms at full speed; 2^(7-1) microframes = 8 ms at high speed.
    let fs_ep = [7u8, 5, 0x81, 3, mp[0], mp[1], 10];
    let hs_ep = [7u8, 5, 0x81, 3, mp[0], mp[1], 7];
    let mut body = Vec::new();
    for ep in [fs_ep, hs_ep] {
        body.extend_from_slice(&interface);
        body.extend_from_slice(&hid);
        body.extend_from_slice(&ep);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&3u32.to_le_bytes()); // FUNCTIONFS_DESCRIPTORS_MAGIC_V2
    out.extend_from_slice(&(12u32 + 8 + body.len() as u32).to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes()); // HAS_FS_DESC | HAS_HS_DESC
    out.extend_from_slice(&3u32.to_le_bytes()); // fs_count
    out.extend_from_slice(&3u32.to_le_bytes()); // hs_count
    out.extend_from_slice(&body);
    out
}

/// No strings of the function's own (the interface has none).
fn ffs_strings() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&2u32.to_le_bytes()); // FUNCTIONFS_STRINGS_MAGIC
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

/// Makes the gadget (configfs), mounts its FunctionFS, writes the descriptors, binds it.
fn plug(name: &str, label: &str, serial: bool) -> Result<Arc<Unit>, String> {
    let personality = hid_sim::personality(name).ok_or(format!("unknown personality {name}"))?;
    let device = Device::new(personality).map_err(|e| format!("{name}: {e}"))?;
    let id = format!("ps-{label}");
    let g = Path::new(GADGETS).join(&id);
    mkdir(&g)?;
    write(g.join("idVendor"), &format!("0x{:04x}", personality.vendor))?;
    write(
        g.join("idProduct"),
        &format!("0x{:04x}", personality.product),
    )?;
    write(
        g.join("bcdDevice"),
        &format!("0x{:04x}", personality.bcd_device),
    )?;
    write(g.join("bcdUSB"), "0x0200")?;
    mkdir(g.join("strings/0x409"))?;
    write(
        g.join("strings/0x409/manufacturer"),
        personality.manufacturer,
    )?;
    write(g.join("strings/0x409/product"), personality.product_name)?;
    if serial {
        write(g.join("strings/0x409/serialnumber"), personality.serial)?;
    }
    mkdir(g.join("configs/c.1"))?;
    write(g.join("configs/c.1/MaxPower"), "100")?;
    write(g.join("configs/c.1/bmAttributes"), "0xa0")?;
    mkdir(g.join(format!("functions/ffs.{id}")))?;
    let link = g.join(format!("configs/c.1/ffs.{id}"));
    if fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(g.join(format!("functions/ffs.{id}")), &link)
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    let mnt = PathBuf::from(format!("/run/hid-ups-sim/{id}"));
    fs::create_dir_all(&mnt).map_err(|e| format!("cannot make {}: {e}", mnt.display()))?;
    run("mount", &["-t", "functionfs", &id, &mnt.to_string_lossy()])?;
    let mut ep0 = OpenOptions::new()
        .read(true)
        .write(true)
        .open(mnt.join("ep0"))
        .map_err(|e| format!("cannot open {}/ep0: {e}", mnt.display()))?;
    ep0.write_all(&ffs_descriptors(&device))
        .map_err(|e| format!("FunctionFS refused the descriptors: {e}"))?;
    ep0.write_all(&ffs_strings())
        .map_err(|e| format!("FunctionFS refused the strings: {e}"))?;
    let udc = free_udc()?;
    let unit = Arc::new(Unit {
        personality: name.into(),
        name: label.into(),
        gadget: g.clone(),
        udc: udc.clone(),
        device: Mutex::new(device),
        dirty: Mutex::new(true),
        wake: Condvar::new(),
    });
    let ep1 = mnt.join("ep1");
    {
        let unit = Arc::clone(&unit);
        std::thread::spawn(move || ep0_loop(ep0, &unit));
    }
    {
        let unit = Arc::clone(&unit);
        std::thread::spawn(move || interrupt_loop(&ep1, &unit));
    }
    write(g.join("UDC"), &udc)?;
    Ok(unit)
}

fn lock(unit: &Unit) -> std::sync::MutexGuard<'_, Device> {
    unit.device.lock().unwrap_or_else(|e| e.into_inner())
}

fn mark_dirty(unit: &Unit) {
    *unit.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
    unit.wake.notify_all();
}

// struct usb_functionfs_event: the 8-byte setup packet, type, 3 bytes of padding.
const EVENT_LEN: usize = 12;
const EVENT_ENABLE: u8 = 2;
const EVENT_SETUP: u8 = 4;

/// Answers the host's control requests for the interface.
fn ep0_loop(mut ep0: File, unit: &Unit) {
    let mut buf = [0u8; EVENT_LEN * 4];
    loop {
        let n = match ep0.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc_eintr()) => continue,
            Err(e) => {
                eprintln!("{}: ep0: {e}", unit.name);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        for ev in buf[..n].chunks_exact(EVENT_LEN) {
            match ev[8] {
                EVENT_SETUP => setup(&mut ep0, unit, ev),
                EVENT_ENABLE => mark_dirty(unit),
                _ => {}
            }
        }
    }
}

fn libc_eintr() -> i32 {
    nix::errno::Errno::EINTR as i32
}

/// One SETUP: bmRequestType, bRequest, wValue, wIndex, wLength.
fn setup(ep0: &mut File, unit: &Unit, ev: &[u8]) {
    let (rtype, request) = (ev[0], ev[1]);
    let value = u16::from_le_bytes([ev[2], ev[3]]);
    let length = usize::from(u16::from_le_bytes([ev[6], ev[7]]));
    let answer: Option<Vec<u8>> = {
        let mut device = lock(unit);
        match (rtype, request) {
            // GET_DESCRIPTOR, to the interface: the report descriptor or the HID descriptor.
            (0x81, 0x06) => match value >> 8 {
                0x22 => Some(device.personality.descriptor.to_vec()),
                0x21 => Some(device.hid_descriptor().to_vec()),
                _ => None,
            },
            // GET_REPORT.
            (0xa1, 0x01) => Kind::from_request((value >> 8) as u8)
                .and_then(|kind| device.report(kind, value as u8)),
            // GET_IDLE, GET_PROTOCOL.
            (0xa1, 0x02) => Some(vec![0]),
            (0xa1, 0x03) => Some(vec![1]),
            // SET_REPORT: the data stage.
            (0x21, 0x09) => {
                let mut data = vec![0u8; length];
                let kind = Kind::from_request((value >> 8) as u8);
                match ep0.read(&mut data) {
                    Ok(n) => {
                        if let Some(kind) = kind {
                            if !device.set_report(kind, value as u8, &data[..n]) {
                                eprintln!(
                                    "{}: SET_REPORT {kind:?} {value:#06x}: no such report",
                                    unit.name
                                );
                            }
                        }
                    }
                    Err(e) => eprintln!("{}: SET_REPORT {value:#06x}: {e}", unit.name),
                }
                return;
            }
            // SET_IDLE, SET_PROTOCOL: acknowledged.
            (0x21, 0x0a) | (0x21, 0x0b) => {
                let _ = ep0.read(&mut []);
                return;
            }
            _ => None,
        }
    };
    match answer {
        Some(mut bytes) => {
            bytes.truncate(length);
            if let Err(e) = ep0.write_all(&bytes) {
                eprintln!("{}: answer to {rtype:#04x}/{request:#04x}: {e}", unit.name);
            }
        }
        // A stall: the opposite direction of the request (FunctionFS's convention).
        None if rtype & 0x80 != 0 => {
            let _ = ep0.read(&mut []);
        }
        None => {
            let _ = ep0.write(&[]);
        }
    }
}

/// Sends the input reports on the interrupt-in endpoint whenever the state changed. A write
/// waits for the host to poll; while the function is disabled (unbound) it fails and is
/// retried.
fn interrupt_loop(ep1: &Path, unit: &Unit) {
    let mut file: Option<File> = None;
    loop {
        {
            let mut dirty = unit.dirty.lock().unwrap_or_else(|e| e.into_inner());
            while !*dirty {
                dirty = unit.wake.wait(dirty).unwrap_or_else(|e| e.into_inner());
            }
            *dirty = false;
        }
        let reports = lock(unit).input_reports();
        for report in reports {
            loop {
                if file.is_none() {
                    file = OpenOptions::new().read(true).write(true).open(ep1).ok();
                }
                match file.as_mut().map(|f| f.write_all(&report)) {
                    Some(Ok(())) => break,
                    _ => {
                        file = None;
                        std::thread::sleep(Duration::from_millis(500));
                        // A newer state replaces what could not go out.
                        if *unit.dirty.lock().unwrap_or_else(|e| e.into_inner()) {
                            break;
                        }
                    }
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let mut control_path = None;
    let mut first = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--control", Some(v)) => control_path = Some(PathBuf::from(v)),
            ("--plug", Some(v)) => first = Some(v),
            _ => {
                let names: Vec<&str> = hid_sim::PERSONALITIES.iter().map(|p| p.name).collect();
                eprintln!("{USAGE}\nNAME: {}", names.join(", "));
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = setup_kernel() {
        eprintln!("hid-ups-sim: {e}");
        return ExitCode::from(1);
    }
    // A virtio port reads as ended while the host is not connected: wait and read again. Standard
    // input ends for good.
    let mut port: Option<File> = None;
    let (mut input, follow): (Box<dyn BufRead>, bool) = match &control_path {
        Some(p) => match OpenOptions::new().read(true).write(true).open(p) {
            Ok(f) => {
                port = f.try_clone().ok();
                (Box::new(BufReader::new(f)), true)
            }
            Err(e) => {
                eprintln!("hid-ups-sim: cannot open {}: {e}", p.display());
                return ExitCode::from(1);
            }
        },
        None => (Box::new(BufReader::new(std::io::stdin())), false),
    };
    // What the host sends before this is lost: it waits for this line.
    println!("hid-ups-sim: ready for control lines");
    let mut units: Vec<Arc<Unit>> = Vec::new();
    let mut pending: Vec<String> = first.map(|n| format!("plug {n}")).into_iter().collect();
    let mut buf = Vec::new();
    loop {
        let line = match pending.pop() {
            Some(l) => l,
            None => {
                buf.clear();
                match input.by_ref().take(4096).read_until(b'\n', &mut buf) {
                    Ok(0) if follow => {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    Ok(0) => break,
                    Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
                    Err(e) => {
                        eprintln!("hid-ups-sim: control: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                }
            }
        };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        match handle(&line, &mut units, port.as_mut()) {
            Ok(s) => println!("hid-ups-sim: {line}: {s}"),
            Err(e) => println!("hid-ups-sim: {line}: error: {e}"),
        }
    }
    ExitCode::SUCCESS
}

fn handle(
    line: &str,
    units: &mut Vec<Arc<Unit>>,
    port: Option<&mut File>,
) -> Result<String, String> {
    // A file back to the host on the control port (the captured trees): bulk data the journal
    // would not carry whole.
    if let Some(path) = line.strip_prefix("send ") {
        let port = port.ok_or("no control port to send on")?;
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|f| f.take(16 << 20).read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        port.write_all(&bytes)
            .and_then(|()| port.flush())
            .map_err(|e| format!("cannot send {path}: {e}"))?;
        return Ok(format!("sent {} bytes", bytes.len()));
    }
    // The test's own commands in the guest (the capture of the sysfs trees, checks): a shell
    // line, its output on standard output (the journal, which the host reads).
    if let Some(command) = line.strip_prefix("sh ") {
        let out = Process::new("/bin/sh")
            .args(["-c", command])
            .output()
            .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
        for l in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("hid-ups-sim: | {l}");
        }
        return Ok(format!("sh: {}", out.status));
    }
    let current = units.last().cloned();
    let mut scratch = current
        .as_ref()
        .map(|u| lock(u).state.clone())
        .unwrap_or_default();
    match hid_sim::control(line, &mut scratch)? {
        Command::Plug { name, serial } => {
            // Another unit of a personality already plugged is a gadget of its own.
            let label = match units.iter().filter(|u| u.personality == name).count() {
                0 => name.clone(),
                n => format!("{name}-{}", n + 1),
            };
            let unit = plug(&name, &label, serial)?;
            let msg = {
                let d = lock(&unit);
                format!(
                    "{label} {:04x}:{:04x}{} on {}: {}",
                    d.personality.vendor,
                    d.personality.product,
                    if serial {
                        ""
                    } else {
                        " without a serial number"
                    },
                    unit.udc,
                    hid_sim::describe(&d.state)
                )
            };
            units.push(unit);
            Ok(msg)
        }
        Command::Unplug => {
            let u = current.ok_or("nothing is plugged")?;
            write(u.gadget.join("UDC"), "\n")?;
            Ok(format!("{} unbound from {}", u.name, u.udc))
        }
        Command::Replug => {
            let u = current.ok_or("nothing is plugged")?;
            write(u.gadget.join("UDC"), &u.udc)?;
            mark_dirty(&u);
            Ok(format!("{} bound to {}", u.name, u.udc))
        }
        Command::Changed => {
            let u = current.ok_or("nothing is plugged")?;
            let said = hid_sim::describe(&scratch);
            lock(&u).state = scratch;
            mark_dirty(&u);
            Ok(said)
        }
        Command::Show => Ok(match current {
            Some(_) => hid_sim::describe(&scratch),
            None => "nothing plugged".into(),
        }),
    }
}
