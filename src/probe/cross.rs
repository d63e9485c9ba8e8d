//! The cross-check: ups.conf's sections against the hardware found and, when upsd answers,
//! against what upsd serves. Pure: a parsed ups.conf, an inventory, the state of the paths
//! ups.conf names and an optional live view in; findings in `validate`'s shape out.

use super::matcher::{Field, Matchers, Regex};
use super::perms;
use super::{Bus, Detected, Inventory, SerialPort, Skip, UsbDevice};
use crate::nut::diag::{Code, Finding, Sink};
use crate::nut::drivers::{bus, DriverDb, Lookup};
use crate::nut::lexer::Pos;
use crate::nut::ups_conf::{UpsConf, UpsSection};
use crate::nut::version::NutVersion;
use crate::nut::{Account, UPS_CONF};

/// What upsd says about one UPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveUps {
    /// `driver.name`, `ups.vendorid`, `ups.productid`, `ups.status`, when upsd has them.
    Vars {
        driver: Option<String>,
        vendor_id: Option<String>,
        product_id: Option<String>,
        status: Option<String>,
    },
    /// upsd's `ERR` for it (`DRIVER-NOT-CONNECTED`, `DATA-STALE`, ...).
    Error(String),
}

/// What upsd serves, asked once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// `host:port`, for messages.
    pub target: String,
    pub ups: Vec<(String, LiveUps)>,
}

/// A path ups.conf names and whether it exists on the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathState {
    pub path: String,
    pub exists: bool,
}

pub struct Input<'a> {
    pub conf: &'a UpsConf,
    pub inv: &'a Inventory,
    pub paths: &'a [PathState],
    /// The account NUT's drivers run as, and its name (`nut`, or ups.conf's `user`).
    pub driver_user: &'a str,
    pub driver_account: Option<&'a Account>,
    pub live: Option<&'a Live>,
    pub db: &'a DriverDb,
    pub version: NutVersion,
}

/// What a section turned out to be about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The detected UPS (index into [`Inventory::ups`]) it selects.
    Ups(usize),
    /// Several: the driver takes one of them, no telling which.
    Several(Vec<usize>),
    Nothing,
}

/// The result: findings, and which detected UPS each section claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub claims: Vec<(String, usize)>,
}

pub fn check(input: &Input) -> Outcome {
    let mut sink = Sink::new(UPS_CONF);
    let mut claims: Vec<(String, usize, Pos)> = Vec::new();
    let mut covered: Vec<usize> = Vec::new();
    for section in &input.conf.sections {
        let Some(driver) = section.value("driver") else {
            continue;
        };
        let port = section.value("port").unwrap_or("");
        let from = sink.findings.len();
        let claim = match bus(driver, port) {
            Some(Bus::Usb) => usb_section(input, section, driver, &mut sink),
            Some(Bus::Serial) => serial_section(input, section, driver, port, &mut sink),
            None => Claim::Nothing,
        };
        if let Claim::Several(all) = claim {
            covered.extend(all);
        } else if let Claim::Ups(i) = claim {
            if let Some((first, _, _)) = claims.iter().find(|(_, j, _)| *j == i) {
                let what = describe(input.inv, &input.inv.ups[i]);
                sink.error(
                    Code::DeviceClaimedTwice,
                    section.pos,
                    format!("[{}] and [{first}] both select {what}", section.name),
                )
                .with_hint("a device can be served by one driver only: give each section matchers (serial, busport) or a port that selects its own UPS, or remove one");
            } else {
                claims.push((section.name.clone(), i, section.pos));
            }
        }
        sink.about_section(from, &section.name);
    }
    for (i, ups) in input.inv.ups.iter().enumerate() {
        if claims.iter().any(|(_, j, _)| *j == i) || covered.contains(&i) {
            continue;
        }
        let section = paste_section(input, ups);
        sink.warning(
            Code::UpsUnconfigured,
            Pos::new(0, 0),
            format!(
                "{} is connected but no ups.conf section serves it",
                describe(input.inv, ups)
            ),
        )
        .with_hint(format!("add to ups.conf:\n{section}"));
        if let Some(d) = ups.usb.map(|u| &input.inv.usb[u]) {
            if ups.bus == Bus::Usb {
                permission_usb(input, d, None, &mut sink);
            }
        }
    }
    if let Some(live) = input.live {
        live_checks(input, live, &claims, &mut sink);
    }
    let mut findings = sink.findings;
    for p in &input.inv.problems {
        findings.push(Finding::new(
            crate::nut::diag::Severity::Warning,
            Code::ProbeProblem,
            "",
            Pos::new(0, 0),
            p.clone(),
        ));
    }
    Outcome {
        findings,
        claims: claims.into_iter().map(|(n, i, _)| (n, i)).collect(),
    }
}

/// A detected UPS in a few words: `CPS CP1500PFCLCD (0764:0501, serial CTHJV2002919, USB 1-1.3)`.
pub fn describe(inv: &Inventory, ups: &Detected) -> String {
    let name = match (&ups.vendor, &ups.model) {
        (Some(v), Some(m)) if m.starts_with(v.as_str()) => m.clone(),
        (Some(v), Some(m)) => format!("{v} {m}"),
        (Some(v), None) => format!("a {v} UPS"),
        (None, Some(m)) => m.clone(),
        (None, None) => "a UPS".to_string(),
    };
    let mut details = Vec::new();
    if let (Some(v), Some(p)) = (ups.vendor_id, ups.product_id) {
        details.push(format!("{v:04x}:{p:04x}"));
    }
    match &ups.serial {
        Some(s) => details.push(format!("serial {s}")),
        None if ups.bus == Bus::Usb => details.push("no serial number".to_string()),
        None => {}
    }
    match (ups.bus, ups.usb, ups.serial_port) {
        (Bus::Usb, Some(u), _) => details.push(format!("USB {}", inv.usb[u].name)),
        (Bus::Serial, _, Some(s)) => details.push(inv.serial[s].path.clone()),
        _ => {}
    }
    format!("{name} ({})", details.join(", "))
}

fn matchers(section: &UpsSection) -> Option<Matchers> {
    let mut m = Matchers::default();
    let mut ok = true;
    for f in Field::ALL {
        let Some(entry) = section.get(f.name()) else {
            continue;
        };
        let Some(pattern) = entry.value.as_deref() else {
            continue;
        };
        match Regex::new(pattern) {
            Ok(re) => m.set.push((f, pattern.to_string(), re)),
            // Validation reports a matcher that does not compile (the driver stops on it).
            Err(_) => ok = false,
        }
    }
    ok.then_some(m)
}

fn usb_section(input: &Input, section: &UpsSection, driver: &str, sink: &mut Sink) -> Claim {
    let Some(m) = matchers(section) else {
        return Claim::Nothing;
    };
    let inv = input.inv;
    let usb_ups: Vec<usize> = (0..inv.ups.len())
        .filter(|&i| inv.ups[i].bus == Bus::Usb && inv.ups[i].usb.is_some())
        .collect();
    let dev = |i: usize| &inv.usb[inv.ups[i].usb.unwrap_or(0)];
    let serves = |i: usize| inv.ups[i].drivers.iter().any(|d| d == driver);
    let matched: Vec<usize> = usb_ups
        .iter()
        .copied()
        .filter(|&i| m.matches(dev(i)))
        .collect();
    let served: Vec<usize> = matched.iter().copied().filter(|&i| serves(i)).collect();

    for (f, pattern, _) in &m.set {
        let pos = section.get(f.name()).map(|e| e.pos).unwrap_or(section.pos);
        if f.unstable() {
            sink.warning(
                Code::MatcherUnstable,
                pos,
                format!("[{}] matches on device = \"{pattern}\": the kernel gives a USB device a new number each time it is plugged in or the UPS resets", section.name),
            )
            .with_hint(stable_hint(input, section, driver, served.first().map(|&i| dev(i))));
        } else if *f == Field::Bus && !bus_needed(&m, &usb_ups, &dev, &serves) {
            sink.info(
                Code::MatcherUnstable,
                pos,
                format!("[{}] matches on bus = \"{pattern}\": bus numbers follow the order the kernel finds USB controllers and can change with the kernel or hardware", section.name),
            )
            .with_hint(stable_hint(input, section, driver, served.first().map(|&i| dev(i))));
        }
    }

    match served.len() {
        1 => {
            let i = served[0];
            permission_usb(input, dev(i), Some(section), sink);
            Claim::Ups(i)
        }
        0 => {
            let others: Vec<usize> = if m.is_empty() && usb_ups.len() != 1 {
                Vec::new()
            } else {
                matched.clone()
            };
            if let Some(&i) = others.first() {
                let ups = &inv.ups[i];
                let needs = if ups.drivers.is_empty() {
                    "a driver NUT's udev rules do not name".to_string()
                } else {
                    ups.drivers.join(" or ")
                };
                sink.error(
                    Code::DriverMismatch,
                    driver_pos(section),
                    format!(
                        "[{}] uses driver {driver}, which cannot serve {}",
                        section.name,
                        describe(inv, ups)
                    ),
                )
                .with_hint(format!(
                    "that UPS needs {needs}: driver = {}",
                    ups.drivers.first().map(String::as_str).unwrap_or("?")
                ));
                return Claim::Nothing;
            }
            let candidates: Vec<usize> = usb_ups.iter().copied().filter(|&i| serves(i)).collect();
            if !m.is_empty() && !candidates.is_empty() {
                let seen: Vec<String> = candidates
                    .iter()
                    .map(|&i| {
                        let d = dev(i);
                        m.set
                            .iter()
                            .map(|(f, _, _)| format!("{} = \"{}\"", f.name(), f.value(d)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect();
                let given: Vec<String> = m
                    .set
                    .iter()
                    .map(|(f, p, _)| format!("{} = \"{p}\"", f.name()))
                    .collect();
                sink.error(
                    Code::MatcherNoMatch,
                    section.pos,
                    format!("[{}] selects no connected device: {} matches none of the {} UPS(es) {driver} serves here", section.name, given.join(", "), candidates.len()),
                )
                .with_hint(format!("connected: {}", seen.join("; ")));
            } else {
                sink.error(
                    Code::UpsAbsent,
                    section.pos,
                    format!(
                        "[{}]: no USB UPS that {driver} serves is connected",
                        section.name
                    ),
                )
                .with_hint(
                    "check the cable and `lsusb`; the driver will not start until the UPS is there",
                );
            }
            Claim::Nothing
        }
        _ => {
            let list: Vec<String> = served.iter().map(|&i| describe(inv, &inv.ups[i])).collect();
            sink.error(
                Code::MatcherAmbiguous,
                section.pos,
                format!(
                    "[{}] selects {} devices, and the driver takes whichever it finds first: {}",
                    section.name,
                    served.len(),
                    list.join("; ")
                ),
            )
            .with_hint(ambiguity_hint(
                input,
                section,
                driver,
                &served.iter().map(|&i| dev(i)).collect::<Vec<_>>(),
            ));
            Claim::Several(served)
        }
    }
}

/// How to tell identical devices apart: serial numbers when they differ, else the hub port.
fn ambiguity_hint(
    input: &Input,
    section: &UpsSection,
    driver: &str,
    devs: &[&UsbDevice],
) -> String {
    let serials: Vec<Option<&str>> = devs.iter().map(|d| d.serial.as_deref()).collect();
    let distinct = |v: &[Option<&str>]| {
        v.iter().all(|s| s.is_some())
            && v.iter()
                .enumerate()
                .all(|(i, a)| v[i + 1..].iter().all(|b| a != b))
    };
    if distinct(&serials) {
        let lines: Vec<String> = devs
            .iter()
            .map(|d| format!("serial = \"{}\"", d.serial.as_deref().unwrap_or("")))
            .collect();
        return format!("give each section one of: {}", lines.join(" / "));
    }
    if busport_ok(input, driver) {
        let ports: Vec<String> = devs
            .iter()
            .map(|d| format!("busport = {} (USB {})", Field::BusPort.value(d), d.name))
            .collect();
        let mut distinct_ports: Vec<String> =
            devs.iter().map(|d| Field::BusPort.value(d)).collect();
        distinct_ports.sort();
        distinct_ports.dedup();
        if distinct_ports.len() == devs.len() {
            return format!(
                "these UPSes have no serial numbers: tell them apart by the hub port they are plugged into, one section each: {}",
                ports.join(" / ")
            );
        }
        // The same port number on different buses (each on a root port of its own
        // controller): the bus and the port together.
        let mut places: Vec<(String, String)> = devs
            .iter()
            .map(|d| (Field::Bus.value(d), Field::BusPort.value(d)))
            .collect();
        places.sort();
        places.dedup();
        if places.len() == devs.len() {
            let both: Vec<String> = devs
                .iter()
                .map(|d| {
                    format!(
                        "bus = {}, busport = {} (USB {})",
                        Field::Bus.value(d),
                        Field::BusPort.value(d),
                        d.name
                    )
                })
                .collect();
            return format!(
                "these UPSes have no serial numbers and sit on the same port number of different buses: tell them apart by bus and port, one section each: {}",
                both.join(" / ")
            );
        }
    }
    format!(
        "these UPSes have no serial numbers and {} cannot match on the hub port here (busport needs NUT 2.8.1 or later); until then, [{}] can only tell them apart by bus and device numbers, which change on replug",
        driver, section.name
    )
}

fn busport_ok(input: &Input, driver: &str) -> bool {
    matches!(
        input.db.section_var(driver, "busport", input.version),
        Some(Lookup::Accepted(_))
    )
}

/// Whether a section's `bus` tells apart devices its other matchers cannot: identical twins
/// on the same port number of two buses (one on each controller's root hub).
fn bus_needed<'a>(
    m: &Matchers,
    usb_ups: &[usize],
    dev: &impl Fn(usize) -> &'a UsbDevice,
    serves: &impl Fn(usize) -> bool,
) -> bool {
    let others = Matchers {
        set: m
            .set
            .iter()
            .filter(|(f, _, _)| *f != Field::Bus)
            .cloned()
            .collect(),
    };
    usb_ups
        .iter()
        .filter(|&&i| serves(i) && others.matches(dev(i)))
        .count()
        > 1
}

fn stable_hint(
    input: &Input,
    section: &UpsSection,
    driver: &str,
    dev: Option<&UsbDevice>,
) -> String {
    let Some(d) = dev else {
        return "match on vendorid, productid and serial (or busport) instead".to_string();
    };
    match (&d.serial, busport_ok(input, driver)) {
        (Some(s), _) => format!("[{}]: use serial = \"{s}\" instead", section.name),
        (None, true) => format!("[{}]: use busport = {} instead", section.name, Field::BusPort.value(d)),
        (None, false) => "this UPS has no serial number and this NUT has no busport; keep it on the same USB port".to_string(),
    }
}

fn permission_usb(input: &Input, d: &UsbDevice, section: Option<&UpsSection>, sink: &mut Sink) {
    let (Some(account), Some(node)) = (input.driver_account, &d.node) else {
        return;
    };
    let Some(meta) = node.meta else {
        return;
    };
    if perms::can_open_rw(&meta, account) {
        return;
    }
    let who = input.driver_user;
    let message = format!(
        "{} is {} — the driver's user {who} cannot open it, so the driver will fail with \"Permission denied\"{}",
        node.path,
        node.describe_access(),
        section.map(|s| format!(" for [{}]", s.name)).unwrap_or_default()
    );
    let hint = format!(
        "add a udev rule, e.g. /etc/udev/rules.d/62-power-snitch-local.rules:\n{}\nthen: udevadm control --reload && udevadm trigger --subsystem-match=usb",
        // NUT's packages name the drivers' group like their user (`nut`).
        perms::usb_rule(d.vendor_id, d.product_id, who)
    );
    let pos = section.map(|s| s.pos).unwrap_or(Pos::new(0, 0));
    sink.error(Code::DevicePermission, pos, message)
        .with_hint(hint);
}

fn serial_section(
    input: &Input,
    section: &UpsSection,
    driver: &str,
    port: &str,
    sink: &mut Sink,
) -> Claim {
    let port_pos = section
        .get("port")
        .map(|e| e.value_pos)
        .unwrap_or(section.pos);
    let exists = input
        .paths
        .iter()
        .find(|p| p.path == port)
        .is_none_or(|p| p.exists);
    let inv = input.inv;
    let found: Option<(usize, &SerialPort)> = inv
        .serial
        .iter()
        .enumerate()
        .find(|(_, p)| p.path == port || p.by_id.iter().any(|b| b == port) || p.name == port);
    if !exists {
        let here: Vec<String> = inv
            .serial
            .iter()
            .filter(|p| !p.console && p.node.is_some())
            .map(|p| p.stable_path().to_string())
            .collect();
        let hint = if here.is_empty() {
            "no serial port is present: check the cable or USB-serial adapter".to_string()
        } else {
            format!("serial ports here: {}", here.join(", "))
        };
        sink.error(
            Code::PortMissing,
            port_pos,
            format!("[{}] port = {port} does not exist", section.name),
        )
        .with_hint(hint);
        return Claim::Nothing;
    }
    let Some((pi, p)) = found else {
        return Claim::Nothing;
    };
    let unstable = ["/dev/ttyUSB", "/dev/ttyACM"]
        .iter()
        .any(|pre| port.starts_with(pre));
    if unstable {
        if let Some(stable) = p.by_id.first() {
            sink.warning(
                Code::PortUnstable,
                port_pos,
                format!("[{}] port = {port}: USB serial ports are numbered in the order they appear, so this name can point at another device after a replug or reboot", section.name),
            )
            .with_hint(format!("port = {stable}"));
        }
    }
    if let (Some(account), Some(node)) = (input.driver_account, &p.node) {
        if let Some(meta) = node.meta {
            if !perms::can_open_rw(&meta, account) {
                let adapter = p
                    .usb_parent
                    .as_ref()
                    .and_then(|n| inv.usb.iter().find(|d| &d.name == n))
                    .map(|d| (d.vendor_id, d.product_id, d.serial.as_deref()));
                sink.error(
                    Code::DevicePermission,
                    port_pos,
                    format!(
                        "{} is {} — the driver's user {} cannot open it",
                        node.path,
                        node.describe_access(),
                        input.driver_user
                    ),
                )
                .with_hint(format!(
                    "add a udev rule, e.g. /etc/udev/rules.d/62-power-snitch-local.rules:\n{}\nthen: udevadm control --reload && udevadm trigger --subsystem-match=tty",
                    perms::tty_rule(&p.name, adapter, input.driver_user)
                ));
            }
        }
    }
    match (&p.answer, &p.skipped) {
        (Some((proto, _)), _) => {
            let i = inv.ups.iter().position(|u| u.serial_port == Some(pi));
            if !proto.drivers().contains(&driver) {
                let ups = i.map(|i| describe(inv, &inv.ups[i])).unwrap_or_default();
                let mut extra = String::new();
                for (k, v) in proto.extra_settings() {
                    extra.push_str(&format!(", {k} = {v}"));
                }
                sink.error(
                    Code::DriverMismatch,
                    driver_pos(section),
                    format!(
                        "[{}] uses driver {driver}, but {ups} on {port} speaks the {} protocol",
                        section.name,
                        proto.name()
                    ),
                )
                .with_hint(format!("driver = {}{extra}", proto.drivers()[0]));
                return Claim::Nothing;
            }
            i.map(Claim::Ups).unwrap_or(Claim::Nothing)
        }
        (None, None) => {
            let knows = ["apcsmart", "nutdrv_qx", "blazer_ser"].contains(&driver);
            let message = format!(
                "[{}]: nothing answered on {port} in the APC Smart or Megatec/Q1 protocols",
                section.name
            );
            if knows {
                sink.error(Code::UpsAbsent, port_pos, message).with_hint(
                    "check the cable (APC needs its own serial cable) and that the UPS is on",
                );
            } else {
                sink.info(Code::UpsAbsent, port_pos, message).with_hint(format!(
                    "{driver} speaks a protocol this check does not; `upsdrvctl start {}` will tell",
                    section.name
                ));
            }
            Claim::Nothing
        }
        (None, Some(Skip::Held(by))) => {
            sink.info(
                Code::PortInUse,
                port_pos,
                format!(
                    "[{}] {port} is in use by {by}, so it was not probed",
                    section.name
                ),
            );
            Claim::Nothing
        }
        (None, Some(skip)) => {
            sink.info(
                Code::PortInUse,
                port_pos,
                format!(
                    "[{}] {port} was not probed: {}",
                    section.name,
                    skip.describe()
                ),
            );
            Claim::Nothing
        }
    }
}

/// Where a section names its driver (else its header).
fn driver_pos(section: &UpsSection) -> Pos {
    section
        .get("driver")
        .map(|e| e.value_pos)
        .unwrap_or(section.pos)
}

/// A ready ups.conf section for a detected UPS: driver, port, and stable matchers.
pub fn paste_section(input: &Input, ups: &Detected) -> String {
    let taken: Vec<&str> = input
        .conf
        .sections
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    section_text(ups, input.inv, &taken, |d| busport_ok(input, d))
}

/// The section text; `busport_ok` says whether the driver can match on the hub port.
pub fn section_text(
    ups: &Detected,
    inv: &Inventory,
    taken: &[&str],
    busport_ok: impl Fn(&str) -> bool,
) -> String {
    let base = section_base(ups.vendor.as_deref().unwrap_or("ups"));
    let base = if base.is_empty() {
        "ups".to_string()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name.as_str()) {
        name = format!("{base}{n}");
        n += 1;
    }
    let driver = ups
        .drivers
        .first()
        .map(String::as_str)
        .unwrap_or("usbhid-ups");
    let mut lines = vec![
        format!("[{name}]"),
        format!("\tdriver = {driver}"),
        format!("\tport = {}", ups.port),
    ];
    if ups.bus == Bus::Serial && driver == "nutdrv_qx" {
        lines.push("\tprotocol = megatec".to_string());
    }
    if let (Bus::Usb, Some(v), Some(p)) = (ups.bus, ups.vendor_id, ups.product_id) {
        lines.push(format!("\tvendorid = {v:04x}"));
        lines.push(format!("\tproductid = {p:04x}"));
        let twins = inv
            .ups
            .iter()
            .filter(|o| o.vendor_id == ups.vendor_id && o.product_id == ups.product_id)
            .count()
            > 1;
        match (&ups.serial, twins) {
            (Some(s), _) => lines.push(format!(
                "\tserial = {}",
                crate::nut::conf::format_word(&regex_literal(s))
            )),
            (None, true) if busport_ok(driver) => {
                if let Some(d) = ups.usb.map(|u| &inv.usb[u]) {
                    // Twins on the same port number of two buses (two root hubs): the bus too.
                    let port = Field::BusPort.value(d);
                    let same_port = inv
                        .ups
                        .iter()
                        .filter(|o| o.vendor_id == ups.vendor_id && o.product_id == ups.product_id)
                        .filter_map(|o| o.usb.map(|u| &inv.usb[u]))
                        .filter(|o| Field::BusPort.value(o) == port)
                        .count()
                        > 1;
                    if same_port {
                        lines.push(format!("\tbus = {}", Field::Bus.value(d)));
                    }
                    lines.push(format!("\tbusport = {port}"));
                }
            }
            _ => {}
        }
    }
    let desc = match (&ups.vendor, &ups.model) {
        (Some(v), Some(m)) if !m.starts_with(v.as_str()) => format!("{v} {m}"),
        (_, Some(m)) => m.clone(),
        (Some(v), None) => v.clone(),
        _ => "UPS".to_string(),
    };
    lines.push(format!("\tdesc = {}", crate::nut::conf::format_word(&desc)));
    lines.join("\n")
}

/// Words of a company's form that say nothing of which company it is.
const COMPANY_WORDS: &[&str] = &[
    "co",
    "ltd",
    "coltd",
    "inc",
    "corp",
    "corporation",
    "company",
    "gmbh",
    "llc",
    "limited",
    "sa",
    "ag",
    "bv",
    "spa",
    "srl",
];

/// A section name from a vendor's name: its initials when it has three words or more
/// (`American Power Conversion`: `apc`), else its first word (`CPS`, `EATON`, `Tripp Lite`:
/// `cps`, `eaton`, `tripp`); ASCII letters and digits only, lower case, at most 16.
pub fn section_base(vendor: &str) -> String {
    let words: Vec<String> = vendor
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty() && !COMPANY_WORDS.contains(&w.to_ascii_lowercase().as_str()))
        .collect();
    let base: String = if words.len() >= 3 {
        words.iter().filter_map(|w| w.chars().next()).collect()
    } else {
        words.first().cloned().unwrap_or_default()
    };
    base.chars()
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A matcher that matches exactly `text`: NUT reads `serial`, `vendor`, `product` ... as POSIX
/// extended regular expressions, so each of `.[\\()*+?{|^$` is escaped (`]` and `}` alone are
/// literal).
pub fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if ".[\\()*+?{|^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn live_checks(input: &Input, live: &Live, claims: &[(String, usize, Pos)], sink: &mut Sink) {
    for section in &input.conf.sections {
        if !crate::nut::ups_conf::complete(section) {
            continue;
        }
        let from = sink.findings.len();
        live_section(input, live, claims, section, sink);
        sink.about_section(from, &section.name);
    }
    for (name, _) in &live.ups {
        if input.conf.section(name).is_none() {
            sink.warning(
                Code::LiveMismatch,
                Pos::new(0, 0),
                format!(
                    "upsd at {} serves [{name}], which ups.conf does not define",
                    live.target
                ),
            )
            .with_hint("upsd runs with an older ups.conf: `upsd -c reload`");
        }
    }
}

/// upsd's view of one complete section.
fn live_section(
    input: &Input,
    live: &Live,
    claims: &[(String, usize, Pos)],
    section: &UpsSection,
    sink: &mut Sink,
) {
    {
        let name = &section.name;
        let Some((_, state)) = live.ups.iter().find(|(n, _)| n == name) else {
            sink.error(
                Code::NotServed,
                section.pos,
                format!("upsd at {} does not serve [{name}]", live.target),
            )
            .with_hint("upsd reads ups.conf only when it starts or reloads: `upsd -c reload` (or restart nut-server), then start the driver: `upsdrvctl start`");
            return;
        };
        match state {
            LiveUps::Error(e) if e == "DRIVER-NOT-CONNECTED" => {
                sink.error(
                    Code::DriverNotConnected,
                    section.pos,
                    format!("upsd serves [{name}] but its driver is not connected"),
                )
                .with_hint(format!("the driver is not running or lost the UPS: `upsdrvctl start {name}` shows why; see also the journal of nut-driver@{name}"));
            }
            LiveUps::Error(e) if e == "DATA-STALE" => {
                sink.error(
                    Code::DataStale,
                    section.pos,
                    format!("upsd's data for [{name}] is stale: the driver has not heard from the UPS recently"),
                )
                .with_hint("check the cable; a USB UPS that reset gets a new device number and the driver must reconnect");
            }
            LiveUps::Error(e) => {
                sink.warning(
                    Code::NotServed,
                    section.pos,
                    format!("upsd answers ERR {e} for [{name}]"),
                );
            }
            LiveUps::Vars {
                driver,
                vendor_id,
                product_id,
                ..
            } => {
                let configured = section.value("driver").unwrap_or("");
                if let Some(d) = driver {
                    if d != configured {
                        sink.error(
                            Code::LiveMismatch,
                            section.pos,
                            format!("upsd serves [{name}] with driver.name = {d}, but ups.conf says driver = {configured}"),
                        )
                        .with_hint("the running driver predates the change to ups.conf: restart it (`upsdrvctl stop; upsdrvctl start`)");
                    }
                }
                let Some(&(_, i, _)) = claims.iter().find(|(n, _, _)| n == name) else {
                    return;
                };
                let ups = &input.inv.ups[i];
                let (Some(v), Some(p)) = (ups.vendor_id, ups.product_id) else {
                    return;
                };
                let differs = |live: &Option<String>, want: u16| {
                    live.as_deref()
                        .and_then(|s| u16::from_str_radix(s.trim(), 16).ok())
                        .is_some_and(|x| x != want)
                };
                if differs(vendor_id, v) || differs(product_id, p) {
                    sink.error(
                        Code::LiveMismatch,
                        section.pos,
                        format!(
                            "upsd's [{name}] reports ups.vendorid = {}, ups.productid = {}, but the section selects {}",
                            vendor_id.as_deref().unwrap_or("?"),
                            product_id.as_deref().unwrap_or("?"),
                            describe(input.inv, ups)
                        ),
                    )
                    .with_hint("the driver serves another device than ups.conf selects: restart it, and make the matchers select one device");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::section_base;

    #[test]
    fn section_names_are_short_for_long_vendor_names() {
        for (vendor, base) in [
            ("American Power Conversion", "apc"),
            ("CPS", "cps"),
            ("EATON", "eaton"),
            ("Tripp Lite", "tripp"),
            ("POWERCOM Co.,LTD", "powercom"),
            ("Powercom Co., Ltd", "powercom"),
            ("PowerSim", "powersim"),
            ("Liebert Corporation", "liebert"),
            ("INNO TECH", "inno"),
            ("", ""),
            ("--- !", ""),
            ("Averyveryveryverylongname Ltd", "averyveryveryver"),
        ] {
            assert_eq!(section_base(vendor), base, "{vendor}");
        }
    }
}
