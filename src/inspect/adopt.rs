//! From "found" to "monitored" and back: adopting a detected UPS, removing one, writing the
//! settings into NUT's files. One path for the CLI and the page: the edit is
//! [`crate::nut::edit`]'s (pure), the change [`crate::manage`]'s (validated, previewed, written
//! with a backup, applied and verified, or handed to the root side), then the settings entry.

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::Plan;
use super::Report;
use crate::manage::{self, content_hash, ManageError, Mode, Outcome, Proposal};

/// What makes a change once it is edited: [`crate::manage::propose`] for the faces (here, or
/// through the root side), [`crate::manage::change`] with a runner of one's own otherwise.
pub type Make<'a> = dyn FnMut(Proposal) -> Result<Outcome, ManageError> + 'a;

/// The faces' way to make a change: [`crate::manage::propose`] in `mode`, through `spool` when
/// this process may not write NUT's directory.
pub fn propose<'a>(
    plan: &'a Plan,
    mode: Mode,
    spool: &'a Path,
) -> impl FnMut(Proposal) -> Result<Outcome, ManageError> + 'a {
    move |p| {
        let nut = manage::Nut::at(
            &plan.nut_dir,
            plan.installed.version,
            plan.installed.drivers.clone(),
        );
        manage::propose(&nut, plan.installed.driver_dir.as_deref(), p, mode, spool)
    }
}
use crate::nut::edit::{self, AdoptRequest, EditError, SectionSpec, SyncRequest};
use crate::nut::{NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};
use crate::probe::{Bus, Detected, Inventory};
use crate::settings::model::{Secret, Settings, UpsEntry};
use crate::settings::store;

/// A detected UPS that no ups.conf section serves, with the section adopting it would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// What names it on the command line and in the page's form: the USB device's kernel name
    /// (`1-1.3`), or the serial port's path.
    pub device: String,
    /// Its index in the inventory.
    pub index: usize,
    /// The section adopting it writes (as `probe --ups-conf` prints it).
    pub section: String,
    /// The section's name.
    pub name: String,
    /// A line for a person: vendor, model, where.
    pub describe: String,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum ChangeError {
    /// What the user asked for does not fit what is there (no such device, a name taken).
    Usage(String),
    /// The edit refused (a value NUT cannot carry, a section that already serves the device).
    Edit(EditError),
    /// The change was refused, failed and was rolled back, or could not be made.
    Manage(ManageError),
    /// NUT's files or the settings could not be read or written.
    Io(String),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Usage(s) | ChangeError::Io(s) => f.write_str(s),
            ChangeError::Edit(e) => write!(f, "{e}"),
            ChangeError::Manage(e) => write!(f, "{e}"),
        }
    }
}

impl From<ManageError> for ChangeError {
    fn from(e: ManageError) -> Self {
        ChangeError::Manage(e)
    }
}

impl From<EditError> for ChangeError {
    fn from(e: EditError) -> Self {
        ChangeError::Edit(e)
    }
}

/// What a change did, and the settings entry written with it.
#[derive(Debug)]
pub struct Changed {
    pub outcome: Outcome,
    /// The UPS the change is about.
    pub ups: String,
    /// The settings were written too (not for a dry run).
    pub settings_written: bool,
}

/// The kernel name of a detected UPS's device, or its serial port's path.
fn device_of(inv: &Inventory, u: &Detected) -> String {
    match (u.bus, u.usb, u.serial_port) {
        (Bus::Serial, _, Some(s)) => inv.serial[s].path.clone(),
        (_, Some(d), _) => inv.usb[d].name.clone(),
        _ => u.port.clone(),
    }
}

/// The detected UPSes no section serves, each with the section adopting it writes.
pub fn candidates(plan: &Plan, report: &Report) -> Vec<Candidate> {
    let version = plan.installed.version;
    let conf = report.parsed.ups.clone().unwrap_or_default();
    let taken: Vec<&str> = conf.sections.iter().map(|s| s.name.as_str()).collect();
    let texts = super::sections(&report.inv, &taken, version);
    report
        .inv
        .ups
        .iter()
        .enumerate()
        .filter(|(i, _)| report.section_of(*i).is_none())
        .map(|(i, u)| {
            let section = texts[i].clone();
            let name = section
                .lines()
                .next()
                .unwrap_or("")
                .trim_matches(['[', ']'])
                .to_string();
            let what = match (&u.vendor, &u.model) {
                (Some(v), Some(m)) if !m.starts_with(v.as_str()) => format!("{v} {m}"),
                (_, Some(m)) => m.clone(),
                (Some(v), None) => v.clone(),
                _ => "a UPS".to_string(),
            };
            let device = device_of(&report.inv, u);
            Candidate {
                describe: format!("{what} at {device} ({})", u.drivers.join(", ")),
                device,
                index: i,
                section,
                name,
            }
        })
        .collect()
}

/// Picks the candidate `device` names (its device, its port, its section's name, or
/// VENDORID:PRODUCTID), or the only one when `device` is `None`.
pub fn pick<'a>(found: &'a [Candidate], device: Option<&str>) -> Result<&'a Candidate, String> {
    let list = || {
        found
            .iter()
            .map(|c| format!("  {}  {}", c.device, c.describe))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match device {
        None => match found {
            [] => Err("no detected UPS is without a ups.conf section: nothing to adopt (see `power-snitch probe`)".into()),
            [one] => Ok(one),
            _ => Err(format!(
                "{} UPSes are without a section; name the one to adopt:\n{}",
                found.len(),
                list()
            )),
        },
        Some(d) => {
            let canon = |p: &str| std::fs::canonicalize(p).ok();
            found
                .iter()
                .find(|c| {
                    c.device == d
                        || c.name == d
                        || (d.starts_with('/') && canon(d).is_some() && canon(d) == canon(&c.device))
                        || c.section.contains(&format!("port = {d}\n"))
                })
                .ok_or_else(|| {
                    if found.is_empty() {
                        format!("{d}: no UPS without a ups.conf section was found there (see `power-snitch probe`)")
                    } else {
                        format!("{d} is none of the UPSes without a section:\n{}", list())
                    }
                })
        }
    }
}

/// The five files' bytes as they are now (a missing file is absent), and what each hashed to.
pub(super) type Read = (edit::Files, BTreeMap<String, Option<u64>>);

pub(super) fn read_files(dir: &Path) -> Result<Read, ChangeError> {
    let mut files = edit::Files::new();
    let mut base = BTreeMap::new();
    for name in [NUT_CONF, UPS_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF] {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => {
                base.insert(name.to_string(), Some(content_hash(&b)));
                files.insert(name, b);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                base.insert(name.to_string(), None);
            }
            Err(e) => {
                return Err(ChangeError::Io(format!(
                    "cannot read {}: {e} (changing NUT's files needs root, or the agent's account in group nut)",
                    path.display()
                )))
            }
        }
    }
    Ok((files, base))
}

/// A password for a new monitoring account, from the kernel's random source.
pub(super) fn new_password() -> Result<String, ChangeError> {
    use std::io::Read;
    let mut random = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| ChangeError::Io(format!("no randomness for a password: {e}")))?;
    Ok(edit::password_from(&random))
}

pub(super) fn proposal(
    changes: edit::Changes,
    base: BTreeMap<String, Option<u64>>,
    why: String,
) -> Proposal {
    let mut p = Proposal::new(
        changes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        &why,
    );
    p.base = base;
    p
}

/// Writes the settings with `edit` applied, unless this is a dry run.
fn settings_after(
    plan: &Plan,
    mode: Mode,
    edit: impl FnOnce(&mut Settings),
) -> Result<bool, ChangeError> {
    if mode == Mode::DryRun {
        return Ok(false);
    }
    store::update(&plan.settings_path, |loaded| {
        let mut s = loaded.settings;
        edit(&mut s);
        Ok::<_, String>(s)
    })
    .map(|saved| saved.wrote)
    .map_err(|e| match e {
        store::UpdateError::Edit(e) | store::UpdateError::Store(e) => ChangeError::Io(format!(
            "NUT's files were changed, but the settings could not be written: {e}"
        )),
    })
}

/// Adopts a detected UPS: its section, a monitoring account with a new password, the MONITOR
/// line, MODE; applied and verified per `mode`; then its settings entry. `report` is a check
/// of `plan` (its hardware and ups.conf).
pub fn adopt(
    plan: &Plan,
    report: &Report,
    device: Option<&str>,
    mode: Mode,
    make: &mut Make,
) -> Result<Changed, ChangeError> {
    let found = candidates(plan, report);
    let chosen = pick(&found, device).map_err(ChangeError::Usage)?;
    let version = plan.installed.version;
    let section = SectionSpec::from_text(&chosen.section, version)?;
    let password = new_password()?;
    let (files, base) = read_files(&plan.nut_dir)?;
    let changes = edit::adopt(
        &files,
        &AdoptRequest {
            section,
            password: password.clone(),
            version,
        },
    )?;
    let name = chosen.name.clone();
    let outcome = make(proposal(
        changes,
        base,
        format!("adopt {name} ({})", chosen.describe),
    ))?;
    let section = SectionSpec::from_text(&chosen.section, version)?;
    let written = settings_after(plan, mode, |s| {
        let mut entry = s
            .ups
            .iter()
            .find(|u| u.nut_device_name == name)
            .cloned()
            .unwrap_or_else(|| UpsEntry::new(&name));
        entry.nut_driver = section.value("driver").unwrap_or_default().to_string();
        entry.nut_port = section.value("port").map(str::to_string);
        entry.nut_username = Some(edit::monitor_account(&name));
        entry.nut_password = Some(Secret(password));
        entry.upsd_host = "localhost".into();
        s.ups.retain(|u| u.nut_device_name != name);
        s.ups.push(entry);
    })?;
    Ok(Changed {
        outcome,
        ups: name,
        settings_written: written,
    })
}

/// Removes a UPS: its section, its MONITOR lines, the account adopting made for it; then its
/// settings entry.
pub fn remove(plan: &Plan, ups: &str, mode: Mode, make: &mut Make) -> Result<Changed, ChangeError> {
    let (files, base) = read_files(&plan.nut_dir)?;
    let known = plan
        .settings
        .as_ref()
        .is_some_and(|s| s.ups.iter().any(|u| u.nut_device_name == ups));
    let changes = match edit::remove(&files, ups, plan.installed.version) {
        // Only the settings have it: nothing to change in NUT's files.
        Err(EditError {
            reason: edit::Reason::NotFound { .. },
            ..
        }) if known => edit::Changes::new(),
        r => r?,
    };
    if changes.is_empty() && !known {
        return Err(ChangeError::Usage(format!(
            "{ups}: neither NUT's files nor the settings have such a UPS"
        )));
    }
    let outcome = make(proposal(changes, base, format!("remove {ups}")))?;
    let written = settings_after(plan, mode, |s| s.ups.retain(|u| u.nut_device_name != ups))?;
    Ok(Changed {
        outcome,
        ups: ups.to_string(),
        settings_written: written,
    })
}

/// Writes a settings entry's driver, port and credentials into NUT's files (`sync --to-nut`).
/// `ups` names the entry; without it, the only one.
pub fn to_nut(plan: &Plan, ups: Option<&str>, make: &mut Make) -> Result<Changed, ChangeError> {
    let entries = plan
        .settings
        .as_ref()
        .map(|s| s.ups.as_slice())
        .unwrap_or_default();
    let entry = match ups {
        Some(n) => entries
            .iter()
            .find(|u| u.nut_device_name == n)
            .ok_or_else(|| {
                ChangeError::Usage(format!("{n}: the settings have no such UPS entry"))
            })?,
        None => match entries {
            [one] => one,
            [] => {
                return Err(ChangeError::Usage(
                    "the settings have no UPS entry to write into NUT's files".into(),
                ))
            }
            _ => {
                return Err(ChangeError::Usage(format!(
                    "the settings have {} UPS entries: name one with --ups NAME",
                    entries.len()
                )))
            }
        },
    };
    let (files, base) = read_files(&plan.nut_dir)?;
    let changes = edit::to_nut(
        &files,
        &SyncRequest {
            name: entry.nut_device_name.clone(),
            driver: entry.nut_driver.clone(),
            port: entry.nut_port.clone(),
            user: entry.nut_username.clone(),
            password: entry.nut_password.as_ref().map(|p| p.0.clone()),
            upsd_host: entry.upsd_host.clone(),
            upsd_port: entry.upsd_port,
            version: plan.installed.version,
        },
    )?;
    let name = entry.nut_device_name.clone();
    let outcome = make(proposal(
        changes,
        base,
        format!("the settings of {name} into NUT's files"),
    ))?;
    Ok(Changed {
        outcome,
        ups: name,
        settings_written: false,
    })
}
