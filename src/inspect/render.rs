//! A check's report as people and programs read it, shared by the CLI and the page.

use super::{Plan, Report};
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
    o.opt_str("ups_conf", section);
    o.end();
    out
}
