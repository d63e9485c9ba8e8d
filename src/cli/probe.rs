//! `power-snitch probe`: the UPS hardware on USB and serial ports.

use super::{given, Args, CommandError, Format, Output};
use crate::inspect::{self, render::device_json, Face, Installed, Plan};
use crate::json::{self, Object};
use crate::nut::drivers::{DriverDb, Lookup};
use crate::nut::version::NutVersion;
use crate::probe::{cross, Bus, Inventory};

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "probe takes no argument `{extra}`"
        )));
    }
    let plan = Plan::resolve(
        Face::Probe,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    // ups.conf, when there is one, names serial ports to probe and section names to avoid.
    let has_dir = plan.require_nut_dir().is_ok();
    let parsed = has_dir.then(|| inspect::read_nut(&plan).0);
    let conf = parsed
        .as_ref()
        .and_then(|p| p.ups.clone())
        .unwrap_or_default();
    let version = if has_dir {
        plan.installed.version
    } else {
        NutVersion::NEWEST
    };
    let know = crate::probe::knowledge(&plan.root);
    let inv = inspect::scan(&plan, &conf, &know, &super::check::progress(common.format));
    let taken: Vec<&str> = conf.sections.iter().map(|s| s.name.as_str()).collect();
    let sections = sections(&inv, &taken, version);
    let text = match (common.format, common.ups_conf) {
        (Format::Human, true) => sections.iter().map(|s| format!("{s}\n\n")).collect(),
        (Format::Human, false) => human(&inv),
        (Format::Json, _) => format!("{}\n", json_report(&inv, &sections)),
    };
    Ok(Output::ok(text))
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
