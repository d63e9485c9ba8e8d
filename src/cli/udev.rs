//! `power-snitch udev-rules` (the rules, from the device table) and `power-snitch udev-check`
//! (what the rules' unit runs: one device that came or went, against ups.conf).

use super::{given, Args, CommandError, Output};
use crate::inspect::{self, Face, Installed, Plan, Report};
use crate::nut::diag::{Code, Finding, Severity};
use crate::nut::ups_conf::UpsConf;
use crate::probe::cross;
use crate::probe::matcher::Field;
use crate::probe::udev_event::{self, Action, Event};
use crate::probe::{udev_rules, Bus, UsbDevice};

pub fn rules(args: &Args) -> Result<Output, CommandError> {
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "udev-rules takes no argument `{extra}`"
        )));
    }
    // Only our own table: the rules file is the same on every machine.
    let table = crate::probe::table::Knowledge {
        table: crate::probe::table::Knowledge::builtin().table,
        host: None,
    };
    Ok(Output::ok(udev_rules::generate(&table)))
}

/// Log priorities as journald reads them from a `<N>` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Critical = 2,
    Error = 3,
    Warning = 4,
    Info = 6,
}

impl Priority {
    fn word(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Error => "error",
            Priority::Warning => "warning",
            Priority::Info => "info",
        }
    }

    fn of(s: Severity) -> Priority {
        match s {
            Severity::Error => Priority::Error,
            Severity::Warning => Priority::Warning,
            Severity::Info => Priority::Info,
        }
    }
}

/// One verdict line: to the journal with its priority when systemd runs us, else plainly.
fn emit(p: Priority, message: &str) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    for (i, line) in message.lines().enumerate() {
        let indent = if i == 0 { "" } else { "    " };
        if journal {
            eprintln!("<{}>{indent}{line}", p as u8);
        } else {
            eprintln!("power-snitch: {}: {indent}{line}", p.word());
        }
    }
}

pub fn check(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    let event = match args.positional.first() {
        Some(instance) => udev_event::from_instance(instance),
        None => udev_event::from_env(|k| std::env::var(k).ok()),
    }
    .map_err(CommandError::Usage)?;
    let mut plan = Plan::resolve(
        Face::UdevCheck,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    plan.require_nut_dir()?;
    // Only the port of this event is talked to, only when it appears, and only when no
    // ups.conf section names it (see `Face::talk`).
    plan.talk = Face::UdevCheck.talk(Some(&event));
    let know = crate::probe::knowledge(&plan.root);
    // A known UPS's interface: the event of its device does the check.
    if event.is_interface() {
        if let (Some(v), Some(p)) = (event.vendor_id, event.product_id) {
            if know.lookup(v, p).is_some() {
                emit(
                    Priority::Info,
                    &format!(
                        "{}: an interface of a known UPS; its device's check covers it",
                        event.describe()
                    ),
                );
                return Ok(Output::ok(String::new()));
            }
        }
    }
    let report = inspect::check(&plan, &|_| {});
    let conf = report.parsed.ups.clone().unwrap_or_default();
    let lines = match event.action {
        Action::Add => added(&event, &report, &conf),
        Action::Remove => removed(&event, &report, &conf),
    };
    for (p, m) in &lines {
        emit(*p, m);
    }
    ask_agent_to_recheck(&super::run::control_socket(args));
    Ok(Output::ok(String::new()))
}

/// Tells the running agent to check again now (it then logs what changed). No agent running is
/// not a failure: the check above stands on its own.
fn ask_agent_to_recheck(socket: &std::path::Path) {
    use crate::agent::control::{ask, Reply};
    if !socket.exists() {
        log::info!("no agent at {} to re-check", socket.display());
        return;
    }
    match ask(socket, "recheck", std::time::Duration::from_secs(10)) {
        Ok(Reply::Ok { .. }) => emit(Priority::Info, "the agent re-checked"),
        Ok(Reply::Refused(e)) => log::warn!("the agent did not re-check: {e}"),
        Err(e) => log::info!("{e}"),
    }
}

/// Findings about a section, at warning or above.
fn section_findings<'a>(
    findings: &'a [Finding],
    name: &'a str,
) -> impl Iterator<Item = (Priority, String)> + 'a {
    findings
        .iter()
        .filter(move |f| f.severity >= Severity::Warning && f.section.as_deref() == Some(name))
        .map(|f| {
            let hint = f
                .hint
                .as_deref()
                .map(|h| format!("\nhint: {h}"))
                .unwrap_or_default();
            (
                Priority::of(f.severity),
                format!("{}[{}]: {}{hint}", f.severity.as_str(), f.code, f.message),
            )
        })
}

fn added(event: &Event, report: &Report, conf: &UpsConf) -> Vec<(Priority, String)> {
    let inv = &report.inv;
    let mut out = Vec::new();
    let found = inv.ups.iter().position(|u| match u.bus {
        Bus::Usb => u
            .usb
            .is_some_and(|i| Some(inv.usb[i].name.as_str()) == event.usb_device()),
        Bus::Serial => u
            .serial_port
            .is_some_and(|i| inv.serial[i].name == event.kernel),
    });
    if let Some(i) = found {
        let ups = &inv.ups[i];
        let what = cross::describe(inv, ups);
        match report.section_of(i) {
            Some(name) => {
                out.push((
                    Priority::Info,
                    format!(
                        "UPS plugged in at {}: {what}, served by [{name}]",
                        event.kernel
                    ),
                ));
                out.extend(section_findings(&report.findings, name));
            }
            None => {
                let taken: Vec<&str> = conf.sections.iter().map(|s| s.name.as_str()).collect();
                let section = cross::section_text(ups, inv, &taken, |_| false);
                out.push((
                    Priority::Warning,
                    format!("UPS plugged in at {}: {what}, but no ups.conf section serves it; add:\n{section}", event.kernel),
                ));
            }
        }
        return out;
    }
    if let Some(d) = event
        .usb_device()
        .and_then(|n| inv.usb.iter().position(|d| d.name == n))
    {
        let why = inv
            .others
            .iter()
            .find(|o| o.usb == d)
            .map(|o| o.why.clone())
            .unwrap_or_else(|| "a USB-serial adapter: its tty is checked on its own".to_string());
        let dev = &inv.usb[d];
        out.push((
            Priority::Info,
            format!(
                "{} {:04x}:{:04x} {}: not a UPS ({why})",
                dev.name,
                dev.vendor_id,
                dev.product_id,
                dev.product.as_deref().unwrap_or("")
            ),
        ));
        return out;
    }
    if let Some(p) = inv.serial.iter().find(|p| p.name == event.kernel) {
        let sections: Vec<_> = conf
            .sections
            .iter()
            .filter(|s| names_port(s.value("port"), p))
            .collect();
        if sections.is_empty() {
            let why = match &p.skipped {
                Some(s) => format!("not probed: {}", s.describe()),
                None => "no APC Smart or Megatec/Q1 answer".to_string(),
            };
            out.push((
                Priority::Info,
                format!("serial port {} appeared: {why}", p.path),
            ));
        }
        for s in sections {
            out.push((
                Priority::Info,
                format!(
                    "serial port {} appeared: configured for [{}] ({}), whose NUT driver takes it",
                    p.path,
                    s.name,
                    s.value("driver").unwrap_or("?")
                ),
            ));
            out.extend(section_findings(&report.findings, &s.name));
        }
        return out;
    }
    out.push((
        Priority::Info,
        format!("{} is gone already", event.describe()),
    ));
    out
}

fn names_port(port: Option<&str>, p: &crate::probe::SerialPort) -> bool {
    port.is_some_and(|port| port == p.path || p.by_id.iter().any(|b| b == port))
}

fn removed(event: &Event, report: &Report, conf: &UpsConf) -> Vec<(Priority, String)> {
    let (inv, know) = (&report.inv, &report.know);
    let mut out = Vec::new();
    // The sections that now have no device.
    let lost: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.code,
                Code::UpsAbsent | Code::MatcherNoMatch | Code::PortMissing
            )
        })
        .filter_map(|f| conf.section(f.section.as_deref()?).map(|s| s.name.as_str()))
        .collect();
    for s in &conf.sections {
        let (Some(driver), port) = (s.value("driver"), s.value("port").unwrap_or("")) else {
            continue;
        };
        let was_it = match crate::nut::drivers::bus(driver, port) {
            Some(Bus::Usb) => match (event.vendor_id, event.product_id) {
                (Some(v), Some(p)) if event.usb_device().is_some() => {
                    usb_section_could_match(s, driver, v, p, know)
                }
                _ => false,
            },
            Some(Bus::Serial) => {
                event.is_tty()
                    && (port == format!("/dev/{}", event.kernel) || lost.contains(&s.name.as_str()))
            }
            None => false,
        };
        if !was_it {
            continue;
        }
        if lost.contains(&s.name.as_str()) {
            out.push((
                Priority::Critical,
                format!(
                    "configured UPS disappeared: [{}] ({driver}) lost its device {} — it was pulled out or lost power; upsd will report it stale until it is back",
                    s.name,
                    event.describe()
                ),
            ));
        } else {
            out.push((
                Priority::Info,
                format!(
                    "{} removed; [{}] still has a device",
                    event.describe(),
                    s.name
                ),
            ));
        }
    }
    if out.is_empty() {
        let remaining = inv.ups.len();
        out.push((
            Priority::Info,
            format!("{} removed; no configured UPS depended on it ({remaining} UPS(es) still connected)", event.describe()),
        ));
    }
    out
}

/// Whether a USB section could have selected a device with these ids: its id matchers accept
/// them (other matchers need the device's strings, which are gone) and its driver serves them.
fn usb_section_could_match(
    s: &crate::nut::ups_conf::UpsSection,
    driver: &str,
    v: u16,
    p: u16,
    know: &crate::probe::table::Knowledge,
) -> bool {
    let probe_dev = UsbDevice {
        name: String::new(),
        vendor_id: v,
        product_id: p,
        class: 0,
        manufacturer: None,
        product: None,
        serial: None,
        busnum: 0,
        devnum: 0,
        devpath: String::new(),
        interfaces: Vec::new(),
        node: None,
    };
    for f in [Field::VendorId, Field::ProductId] {
        if let Some(pattern) = s.value(f.name()) {
            match crate::probe::matcher::Regex::new(pattern) {
                Ok(re) if re.full_match(&f.value(&probe_dev)) => {}
                _ => return false,
            }
        }
    }
    let explicit = s.value("vendorid").is_some();
    explicit
        || know
            .lookup(v, p)
            .is_some_and(|(k, _)| k.drivers.iter().any(|d| d == driver))
}
