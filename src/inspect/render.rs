//! A check's report as people and programs read it, shared by the CLI and the page.

use super::{Plan, Probed, Report};
use crate::json::{self, Object};
use crate::nut::diag::Finding;
use crate::probe::{cross, Bus, Detected, Inventory};
use crate::report::{self, Summary, Validation};

/// The findings of a plan's NUT directory, in the shape `report` renders.
pub fn validation<'a>(plan: &'a Plan, findings: &'a [Finding]) -> Validation<'a> {
    Validation {
        dir: &plan.nut_dir,
        nut_version: plan.installed.version.to_string(),
        version_source: plan.installed.source.clone(),
        findings,
    }
}

/// The exit code of these findings: 0 nothing above info, 1 warnings, 2 errors.
pub fn exit_code(findings: &[Finding]) -> u8 {
    Summary::of(findings).exit_code()
}

/// `check --format json`: the findings report with the devices found.
pub fn check_json(plan: &Plan, r: &Report) -> String {
    let devices = json::array(r.inv.ups.iter().enumerate().map(|(i, u)| {
        let mut d = device_json(&r.inv, u, None);
        d.pop();
        d.push_str(",\"section\":");
        match r.section_of(i) {
            Some(n) => {
                json::string(&mut d, n);
            }
            None => d.push_str("null"),
        }
        d.push('}');
        d
    }));
    report::json_with(&validation(plan, &r.findings), &[("devices", devices)])
}

/// `check` for people: a line per UPS found and the section serving it, then the findings.
pub fn check_human(plan: &Plan, r: &Report) -> String {
    let mut out = String::new();
    for (i, u) in r.inv.ups.iter().enumerate() {
        let by = match r.section_of(i) {
            Some(n) => format!("[{n}]"),
            None => "no section".to_string(),
        };
        out.push_str(&format!("found: {} -> {by}\n", cross::describe(&r.inv, u)));
    }
    out + &report::human(&validation(plan, &r.findings))
}

/// One detected UPS in the JSON shape of `probe` and `check`.
pub fn device_json(inv: &Inventory, u: &Detected, section: Option<&str>) -> String {
    let mut out = String::new();
    let hex = |v: Option<u16>| v.map(|v| format!("{v:04x}"));
    let usb = u.usb.map(|i| &inv.usb[i]);
    let mut o = Object::new(&mut out);
    o.str("bus", u.bus.as_str())
        .opt_str("vendor_id", hex(u.vendor_id).as_deref())
        .opt_str("product_id", hex(u.product_id).as_deref())
        .opt_str("serial", u.serial.as_deref())
        .str("port", &u.port)
        .raw(
            "drivers",
            &json::strings(u.drivers.iter().map(String::as_str)),
        )
        .opt_str("protocol", u.protocol.as_deref())
        .str("identified_by", &u.identified_by.describe())
        .opt_str("vendor", u.vendor.as_deref())
        .opt_str("model", u.model.as_deref())
        .opt_str("usb_path", usb.map(|d| d.name.as_str()));
    let node = match u.bus {
        Bus::Usb => usb.and_then(|d| d.node.as_ref()),
        Bus::Serial => u.serial_port.and_then(|i| inv.serial[i].node.as_ref()),
    };
    match node {
        Some(n) => {
            let mut inner = String::new();
            let mut no = Object::new(&mut inner);
            no.str("path", &n.path);
            if let Some(m) = n.meta {
                no.str("mode", &format!("{:04o}", m.mode))
                    .num("uid", m.uid.into())
                    .num("gid", m.gid.into())
                    .opt_str("owner", n.owner.as_deref())
                    .opt_str("group", n.group.as_deref());
            }
            no.end();
            o.raw("node", &inner);
        }
        None => {
            o.raw("node", "null");
        }
    }
    match usb.and_then(|d| d.hid()) {
        Some(h) => {
            let mut inner = String::new();
            let mut ro = Object::new(&mut inner);
            ro.num("bytes", h.length as u64)
                .str("crc32", &format!("{:08x}", h.crc32))
                .str("read_from", descriptor_source(h));
            ro.end();
            o.raw("report_descriptor", &inner);
        }
        None => {
            o.raw("report_descriptor", "null");
        }
    }
    o.opt_str("ups_conf", section);
    o.end();
    out
}

/// Where a HID report descriptor was read: sysfs (a kernel driver holds the interface) or the
/// device itself (through libusb).
fn descriptor_source(h: &crate::probe::hid::Summary) -> &'static str {
    if h.from_device {
        "device"
    } else {
        "sysfs"
    }
}

/// `probe` for people: each UPS, each other device and why it is not one, the serial ports.
pub fn probe_human(inv: &Inventory) -> String {
    let mut out = String::new();
    if inv.ups.is_empty() {
        out.push_str("no UPS found\n");
    }
    for u in &inv.ups {
        out.push_str(&format!(
            "{}: {}\n    driver: {}; port = {}; identified by {}\n",
            u.bus.as_str(),
            cross::describe(inv, u),
            if u.drivers.is_empty() {
                "unknown".to_string()
            } else {
                u.drivers.join(", ")
            },
            u.port,
            u.identified_by.describe()
        ));
        if let Some(h) = u
            .usb
            .filter(|_| u.bus == Bus::Usb)
            .and_then(|i| inv.usb[i].hid())
        {
            out.push_str(&format!(
                "    report descriptor: {} bytes, CRC-32 {:08x}, read from {}\n",
                h.length,
                h.crc32,
                descriptor_source(h)
            ));
        }
        if let Some(node) = u
            .usb
            .filter(|_| u.bus == Bus::Usb)
            .and_then(|i| inv.usb[i].node.as_ref())
        {
            out.push_str(&format!(
                "    node: {} {}\n",
                node.path,
                node.describe_access()
            ));
        }
    }
    for o in &inv.others {
        let d = &inv.usb[o.usb];
        out.push_str(&format!(
            "not a UPS: USB {} {:04x}:{:04x} {}: {}\n",
            d.name,
            d.vendor_id,
            d.product_id,
            d.product.as_deref().unwrap_or(""),
            o.why
        ));
    }
    for p in &inv.serial {
        if let Some(skip) = &p.skipped {
            out.push_str(&format!(
                "serial port {} not probed: {}\n",
                p.path,
                skip.describe()
            ));
        } else if p.answer.is_none() {
            out.push_str(&format!(
                "serial port {}: no APC Smart or Megatec/Q1 answer\n",
                p.path
            ));
        }
    }
    for p in &inv.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    out
}

/// `probe --format json`.
pub fn probe_json(p: &Probed) -> String {
    let (inv, sections) = (&p.inv, &p.sections);
    let devices = json::array(
        inv.ups
            .iter()
            .zip(sections)
            .map(|(u, s)| device_json(inv, u, Some(s))),
    );
    let others = json::array(inv.others.iter().map(|o| {
        let d = &inv.usb[o.usb];
        let mut out = String::new();
        let mut ob = Object::new(&mut out);
        ob.str("bus", "usb")
            .str("vendor_id", &format!("{:04x}", d.vendor_id))
            .str("product_id", &format!("{:04x}", d.product_id))
            .opt_str("product", d.product.as_deref())
            .str("usb_path", &d.name)
            .str("why", &o.why);
        ob.end();
        out
    }));
    let ports = json::array(inv.serial.iter().map(|p| {
        let mut out = String::new();
        let mut ob = Object::new(&mut out);
        ob.str("path", &p.path)
            .raw("by_id", &json::strings(p.by_id.iter().map(String::as_str)))
            .bool("console", p.console)
            .bool("probed", p.skipped.is_none())
            .opt_str(
                "skipped",
                p.skipped.as_ref().map(|s| s.describe()).as_deref(),
            )
            .opt_str("protocol", p.answer.as_ref().map(|a| a.0.name()));
        ob.end();
        out
    }));
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("devices", &devices)
        .raw("others", &others)
        .raw("serial_ports", &ports)
        .raw(
            "problems",
            &json::strings(inv.problems.iter().map(String::as_str)),
        );
    o.end();
    out
}
