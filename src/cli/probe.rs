//! `power-snitch probe`: the UPS hardware on USB and serial ports.

use std::io::IsTerminal;

use super::{validate, Args, Common, Format};
use crate::json::{self, Object};
use crate::nut::drivers::{DriverDb, Lookup};
use crate::nut::ups_conf::UpsConf;
use crate::nut::version::NutVersion;
use crate::probe::{cross, scan, Bus, Detected, Inventory, Root, Scan};

/// The probe's root, from `--sysfs-root`: a directory that looks like sysfs, or an error
/// saying what it is not.
pub fn root(common: &Common) -> Result<Root, String> {
    let Some(dir) = &common.sysfs_root else {
        return Ok(Root::system());
    };
    if !dir.is_dir() {
        return Err(format!("--sysfs-root {} is not a directory", dir.display()));
    }
    if !dir.join("bus/usb").exists() && !dir.join("class/tty").exists() {
        return Err(format!(
            "--sysfs-root {} is not a sysfs tree: it has neither bus/usb nor class/tty (give the tree's sys directory)",
            dir.display()
        ));
    }
    Ok(Root::from_sysfs(dir.clone()))
}

/// The serial ports to talk to: `--serial-port`s and those ups.conf names for serial drivers.
pub fn asked_ports(common: &Common, conf: Option<&UpsConf>) -> Vec<String> {
    let mut asked = common.serial_ports.clone();
    for port in conf.map(crate::probe::named_ports).unwrap_or_default() {
        if !asked.contains(&port) {
            asked.push(port);
        }
    }
    asked
}

/// Probes the hardware, showing progress on a terminal (never in JSON mode).
pub fn hardware(common: &Common, root: &Root, conf: Option<&UpsConf>) -> Inventory {
    let asked = asked_ports(common, conf);
    let show = common.format == Format::Human && std::io::stderr().is_terminal();
    let progress = move |path: &str| {
        if show {
            eprintln!("probing {path} (APC Smart, Megatec/Q1)...");
        }
    };
    let know = crate::probe::knowledge(root);
    scan(
        &Scan {
            root,
            asked: &asked,
            talk: true,
            only: None,
            progress: &progress,
        },
        &know,
    )
}

pub fn run(args: &Args) -> (u8, String) {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return validate::fail(common.format, &format!("probe takes no argument `{extra}`"));
    }
    let root = match root(common) {
        Ok(r) => r,
        Err(e) => return validate::fail(common.format, &e),
    };
    // ups.conf, when there is one, names serial ports to probe and section names to avoid.
    let nut = validate::Nut::resolve(common).ok();
    let parsed = nut.as_ref().map(|n| n.validate().0);
    let conf = parsed.as_ref().and_then(|p| p.ups.as_ref());
    let version = nut.as_ref().map_or(NutVersion::NEWEST, |n| n.version);
    let inv = hardware(common, &root, conf);
    let taken: Vec<&str> = conf
        .map(|c| c.sections.iter().map(|s| s.name.as_str()).collect())
        .unwrap_or_default();
    let sections = sections(&inv, &taken, version);
    let out = match (common.format, common.ups_conf) {
        (Format::Human, true) => sections.iter().map(|s| format!("{s}\n\n")).collect(),
        (Format::Human, false) => human(&inv),
        (Format::Json, _) => format!("{}\n", json_report(&inv, &sections)),
    };
    (0, out)
}

/// A ready section per detected UPS, names unique among themselves and ups.conf's.
pub fn sections(inv: &Inventory, taken: &[&str], version: NutVersion) -> Vec<String> {
    let db = DriverDb::builtin();
    let busport = |d: &str| {
        matches!(
            db.section_var(d, "busport", version),
            Some(Lookup::Accepted(_))
        )
    };
    let mut names: Vec<String> = taken.iter().map(|s| s.to_string()).collect();
    inv.ups
        .iter()
        .map(|u| {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let text = cross::section_text(u, inv, &refs, busport);
            let name = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_matches(['[', ']'])
                .to_string();
            names.push(name);
            text
        })
        .collect()
}

fn human(inv: &Inventory) -> String {
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
    o.opt_str("ups_conf", section);
    o.end();
    out
}

fn json_report(inv: &Inventory, sections: &[String]) -> String {
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
