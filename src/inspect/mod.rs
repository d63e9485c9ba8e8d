//! The application layer under every face: the installation resolved once into a [`Plan`],
//! and one [`check`] of it that `check`, `validate`, `probe`, `udev-check`, the agent's recheck
//! and the setup page all call. The faces only translate what they were given into a
//! [`plan::Given`] and the [`Report`] into their output.
//!
//! **Architecture invariant:** a face never builds another face's inputs: the page and the
//! agent call [`check`] with their own plan, not a command line.

pub mod adopt;
pub mod clients;
pub mod plan;
pub mod render;
pub mod settings;

use crate::nut::diag::{Code, Finding, Severity};
use crate::nut::drivers::{DriverDb, Lookup};
use crate::nut::lexer::Pos;
use crate::nut::version::NutVersion;
use crate::nut::{host, validate, Context, Parsed};
use crate::probe::cross::{Live, LiveUps};
use crate::probe::{self, Inventory};
use crate::upsd::client::Client;
use crate::upsd::error::NutError;
use crate::upsd::target::Target;

pub use plan::{Face, Given, Installed, Plan, PlanError, Talk};

/// Everything a check found, before a face renders it.
pub struct Report {
    pub parsed: Parsed,
    pub findings: Vec<Finding>,
    pub inv: Inventory,
    /// Which section serves which detected UPS (its index in `inv.ups`).
    pub claims: Vec<(String, usize)>,
    /// The knowledge the scan used (our table and the host's NUT udev rules).
    pub know: probe::table::Knowledge,
}

impl Report {
    /// The section that serves the detected UPS `i`.
    pub fn section_of(&self, i: usize) -> Option<&str> {
        self.claims
            .iter()
            .find(|(_, j)| *j == i)
            .map(|(n, _)| n.as_str())
    }
}

/// Reads and validates NUT's files as the plan says.
pub fn read_nut(plan: &Plan) -> (Parsed, Vec<Finding>) {
    // Debug, not info: the agent rechecks on every file change and when asked.
    log::debug!(
        "checking {} ({}) against NUT {}{}",
        plan.nut_dir.display(),
        plan.dir_source.describe(),
        plan.installed.version,
        match plan.installed.source.as_str() {
            "" => String::new(),
            s => format!(" ({s})"),
        }
    );
    let cx = Context {
        version: plan.installed.version,
        drivers: DriverDb::builtin(),
        host_drivers: plan.installed.drivers.as_deref(),
    };
    validate(&host::snapshot(&plan.nut_dir), &cx)
}

/// The serial ports a scan lists, whether it may talk, and to which one only: the plan's
/// policy applied to this ups.conf.
pub fn serial_policy(
    plan: &Plan,
    conf: &crate::nut::ups_conf::UpsConf,
) -> (Vec<String>, bool, Option<String>) {
    let mut listed = plan.serial_ports.clone();
    let named = || probe::named_ports(conf);
    match &plan.talk {
        Talk::Named | Talk::Never => {
            for port in named() {
                if !listed.contains(&port) {
                    listed.push(port);
                }
            }
            (listed, plan.talk == Talk::Named, None)
        }
        Talk::Event { tty, appeared } => {
            let Some(tty) = tty else {
                return (Vec::new(), false, None);
            };
            let configured = named().iter().any(|p| {
                std::fs::canonicalize(plan.root.dev_path(p))
                    .ok()
                    .and_then(|r| r.file_name().map(|n| n == tty.as_str()))
                    .unwrap_or(false)
            });
            let talk = *appeared && !configured;
            (vec![format!("/dev/{tty}")], talk, talk.then(|| tty.clone()))
        }
    }
}

/// Scans the hardware as the plan allows. `progress` hears each serial port as its dialogue
/// starts.
pub fn scan(
    plan: &Plan,
    conf: &crate::nut::ups_conf::UpsConf,
    know: &probe::table::Knowledge,
    progress: &(dyn Fn(&str) + Sync),
) -> Inventory {
    let (asked, talk, only) = serial_policy(plan, conf);
    probe::scan(
        &probe::Scan {
            root: &plan.root,
            usb: plan.usb.as_deref(),
            asked: &asked,
            talk,
            only: only.as_deref(),
            progress,
        },
        know,
    )
}

/// The one check: NUT's files, the hardware against ups.conf, the live upsd, and the settings
/// against NUT's files, as much of it as the plan's face covers.
pub fn check(plan: &Plan, progress: &(dyn Fn(&str) + Sync)) -> Report {
    let (parsed, mut findings) = read_nut(plan);
    let conf = parsed.ups.clone().unwrap_or_default();
    let know = probe::knowledge(&plan.root);
    let mut inv = Inventory::default();
    let mut claims = Vec::new();
    if plan.face.hardware() {
        inv = scan(plan, &conf, &know, progress);
        let live = match &plan.upsd {
            Some(ask) => match ask_upsd(ask) {
                Ok(l) => Some(l),
                Err(e) => {
                    findings.push(unreachable(&parsed, &ask.target, &e));
                    None
                }
            },
            None => None,
        };
        let outcome = probe::cross_check(
            &plan.root,
            &conf,
            &inv,
            live.as_ref(),
            plan.installed.version,
        );
        findings.extend(outcome.findings);
        claims = outcome.claims;
    }
    if plan.face.settings() {
        if let Some(s) = &plan.settings {
            findings.extend(settings::compare(plan, s, &parsed));
        }
    }
    crate::nut::sort(&mut findings);
    Report {
        parsed,
        findings,
        inv,
        claims,
        know,
    }
}

/// What `probe` found: the inventory, and a ready ups.conf section per detected UPS.
pub struct Probed {
    pub inv: Inventory,
    pub sections: Vec<String>,
}

/// The hardware as the plan allows, with a ready section per UPS found whose name no ups.conf
/// section (when NUT's directory is there) has taken.
pub fn probe(plan: &Plan, progress: &(dyn Fn(&str) + Sync)) -> Probed {
    // ups.conf, when there is one, names serial ports to probe and section names to avoid.
    let has_dir = plan.require_nut_dir().is_ok();
    let conf = if has_dir {
        read_nut(plan).0.ups.unwrap_or_default()
    } else {
        Default::default()
    };
    let version = if has_dir {
        plan.installed.version
    } else {
        NutVersion::NEWEST
    };
    let know = probe::knowledge(&plan.root);
    let inv = scan(plan, &conf, &know, progress);
    let taken: Vec<&str> = conf.sections.iter().map(|s| s.name.as_str()).collect();
    let sections = sections(&inv, &taken, version);
    Probed { inv, sections }
}

/// A ready section per detected UPS, names unique among themselves and ups.conf's.
fn sections(inv: &Inventory, taken: &[&str], version: NutVersion) -> Vec<String> {
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
            let text = probe::cross::section_text(u, inv, &refs, busport);
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

/// Asks upsd which UPSes it serves and, for each, the variables the cross-check compares.
fn ask_upsd(ask: &plan::Ask) -> Result<Live, NutError> {
    use crate::upsd::error::ErrorKind;
    let options = ask
        .options
        .clone()
        .map_err(|e| NutError::new(ErrorKind::Configuration, "options", e))?;
    let mut client = Client::new(ask.target.clone(), options);
    client.set_deadline(Some(tokio::time::Instant::now() + ask.total));
    let address = ask.target.address();
    let rt = runtime().map_err(|e| NutError::new(ErrorKind::Connection, "runtime", e))?;
    let ups = rt.block_on(async {
        let list = client.list_ups().await?;
        let mut ups = Vec::new();
        for (name, _) in list {
            let state = match client.vars(&name).await {
                Ok(vars) => {
                    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    LiveUps::Vars {
                        driver: get("driver.name"),
                        vendor_id: get("ups.vendorid"),
                        product_id: get("ups.productid"),
                        status: get("ups.status"),
                    }
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => LiveUps::Error(e.code().to_string()),
            };
            ups.push((name, state));
        }
        client.disconnect();
        Ok(ups)
    })?;
    Ok(Live {
        target: address,
        ups,
    })
}

/// A current-thread runtime for the upsd questions of one check.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the runtime for upsd: {e}"))
}

/// upsd did not answer: an error where nut.conf's MODE runs upsd here, else information.
fn unreachable(parsed: &Parsed, target: &Target, e: &NutError) -> Finding {
    use crate::nut::nut_conf::Mode;
    let mode = parsed.nut.as_ref().and_then(|n| n.mode).map(|m| m.0);
    let serves = matches!(mode, Some(Mode::Standalone) | Some(Mode::NetServer));
    let severity = if serves {
        Severity::Error
    } else {
        Severity::Info
    };
    let mut f = Finding::new(
        severity,
        Code::UpsdUnreachable,
        "",
        Pos::new(0, 0),
        format!("cannot ask upsd at {}: {}", target.address(), e.message()),
    );
    f.hint = Some(e.hint_text().map_or_else(
        || {
            "start it (systemctl start nut-server), or give --upsd HOST:PORT, or --no-upsd"
                .to_string()
        },
        str::to_string,
    ));
    f
}
