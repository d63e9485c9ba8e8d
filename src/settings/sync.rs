//! The settings against NUT's files (NUT is the source of truth for driver, port and
//! credentials): findings for every mismatch, the settings NUT's files imply, and import.

use super::model::{Secret, Settings, UpsEntry};
use crate::nut::diag::{Code, Finding, Severity};
use crate::nut::lexer::Pos;
use crate::nut::upsmon_conf::Monitor;
use crate::nut::Parsed;

pub const FILE: &str = "settings";

fn finding(code: Code, severity: Severity, message: String, hint: &str) -> Finding {
    Finding::new(severity, code, FILE, Pos::new(0, 0), message).hint(hint)
}

/// The local MONITOR line for a UPS, if any.
fn monitor<'a>(parsed: &'a Parsed, ups: &str) -> Option<&'a Monitor> {
    parsed.upsmon.as_ref()?.monitors.iter().find(|m| {
        m.ups == ups
            && (m.host == "localhost"
                || m.host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()))
    })
}

/// Every difference between the settings and NUT's files. Passwords are never shown.
pub fn compare(settings: &Settings, parsed: &Parsed) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &settings.ups {
        let name = &u.nut_device_name;
        let Some(section) = parsed.ups.as_ref().and_then(|c| c.section(name)) else {
            out.push(finding(
                Code::SettingsUpsMissing,
                Severity::Error,
                format!("the settings name UPS `{name}`, which ups.conf does not define"),
                "run `power-snitch settings import` or fix nut_device_name",
            ));
            continue;
        };
        let nut_driver = section.value("driver").unwrap_or_default();
        if !u.nut_driver.is_empty() && u.nut_driver != nut_driver {
            out.push(finding(
                Code::SettingsDriver,
                Severity::Warning,
                format!(
                    "UPS `{name}`: the settings say driver `{}`, ups.conf says `{nut_driver}`",
                    u.nut_driver
                ),
                "`power-snitch sync --apply` takes ups.conf's",
            ));
        }
        let nut_port = section.value("port").unwrap_or_default();
        if u.nut_port.as_deref().is_some_and(|p| p != nut_port) {
            out.push(finding(
                Code::SettingsPort,
                Severity::Warning,
                format!(
                    "UPS `{name}`: the settings say port `{}`, ups.conf says `{nut_port}`",
                    u.nut_port.as_deref().unwrap_or_default()
                ),
                "`power-snitch sync --apply` takes ups.conf's",
            ));
        }
        if let Some(user) = &u.nut_username {
            match parsed.users.as_ref().and_then(|us| us.user(user)) {
                None => out.push(finding(
                    Code::SettingsUser,
                    Severity::Error,
                    format!("UPS `{name}`: the settings' user `{user}` is not in upsd.users"),
                    "add the user to upsd.users, or set nut_username",
                )),
                Some(nu) => {
                    let theirs = nu.password.as_ref().map(|p| p.0.as_str());
                    let ours = u.nut_password.as_ref().map(|p| p.0.as_str());
                    if theirs != ours {
                        out.push(finding(
                            Code::SettingsPassword,
                            Severity::Error,
                            format!("UPS `{name}`: the settings' password for `{user}` differs from upsd.users'"),
                            "`power-snitch sync --apply` takes upsd.users'",
                        ));
                    }
                    if nu.role.is_none() {
                        out.push(finding(
                            Code::SettingsRights,
                            Severity::Warning,
                            format!("UPS `{name}`: user `{user}` has no `upsmon primary|secondary` in upsd.users, so the agent cannot log in to watch the UPS"),
                            "add `upsmon secondary` to the user in upsd.users",
                        ));
                    }
                }
            }
        }
        if let Some(m) = monitor(parsed, name) {
            if u.nut_username.as_deref().is_some_and(|us| us != m.user) {
                out.push(finding(
                    Code::SettingsMonitor,
                    Severity::Info,
                    format!(
                        "UPS `{name}`: upsmon.conf's MONITOR logs in as `{}`, the settings as `{}`",
                        m.user,
                        u.nut_username.as_deref().unwrap_or_default()
                    ),
                    "fine if intended; `sync --apply` leaves it",
                ));
            }
            let port_differs = m.port != u.upsd_port;
            if port_differs {
                out.push(finding(
                    Code::SettingsMonitor,
                    Severity::Warning,
                    format!("UPS `{name}`: upsmon.conf's MONITOR uses port {}, the settings' upsd_port is {}", m.port, u.upsd_port),
                    "`power-snitch sync --apply` takes the MONITOR line's",
                ));
            }
        }
    }
    out
}

/// The settings with driver, port and credentials taken from NUT's files.
pub fn apply(settings: &Settings, parsed: &Parsed) -> Settings {
    let mut s = settings.clone();
    for u in &mut s.ups {
        fill(u, parsed);
    }
    s
}

/// New settings from NUT's files: one entry per ups.conf section (or just `only`).
pub fn import(base: &Settings, parsed: &Parsed, only: Option<&str>) -> Result<Settings, String> {
    let mut s = base.clone();
    let sections = parsed
        .ups
        .as_ref()
        .map(|c| c.sections.as_slice())
        .unwrap_or_default();
    let mut found = false;
    for sec in sections
        .iter()
        .filter(|sec| only.is_none_or(|o| o == sec.name))
    {
        found = true;
        if s.ups.iter().any(|u| u.nut_device_name == sec.name) {
            continue;
        }
        let mut u = UpsEntry::new(&sec.name);
        fill(&mut u, parsed);
        s.ups.push(u);
    }
    match only {
        Some(o) if !found => Err(format!("ups.conf defines no UPS `{o}`")),
        None if sections.is_empty() => Err("ups.conf defines no UPS to import".into()),
        _ => Ok(s),
    }
}

fn fill(u: &mut UpsEntry, parsed: &Parsed) {
    if let Some(sec) = parsed
        .ups
        .as_ref()
        .and_then(|c| c.section(&u.nut_device_name))
    {
        if let Some(d) = sec.value("driver") {
            u.nut_driver = d.to_string();
        }
        if let Some(p) = sec.value("port") {
            u.nut_port = Some(p.to_string());
        }
    }
    let mon = monitor(parsed, &u.nut_device_name);
    if let Some(m) = mon {
        u.upsd_port = m.port;
        if u.nut_username.is_none() {
            u.nut_username = Some(m.user.clone());
        }
    }
    if let Some(user) = u.nut_username.clone() {
        if let Some(nu) = parsed.users.as_ref().and_then(|us| us.user(&user)) {
            u.nut_password = nu.password.as_ref().map(|p| Secret(p.0.clone()));
        }
    }
}
