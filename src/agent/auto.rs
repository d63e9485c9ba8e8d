//! **The edge** of what the agent does on its own: restarting a driver whose data stays
//! missing (the decisions are [`super::heal`]'s), and adopting the one UPS found when NUT serves
//! none (`auto_adopt`). Both go through the apply path ([`crate::manage`], the root side's
//! spool when the agent may not write NUT's directory) off the agent's thread; the outcome
//! comes back to the main loop as a [`Done`].

use std::path::{Path, PathBuf};

use log::Level;
use tokio::sync::mpsc;

use super::heal::{self, Decision, Health, Reason};
use crate::inspect::adopt::{self, ChangeError};
use crate::inspect::{Face, Installed, Plan};
use crate::manage::{self, spool, ManageError, Mode};
use crate::notify::event::{Event, Kind, Severity};
use crate::nut::diag::{Code, Finding};
use crate::probe::Root;
use crate::settings::model::Settings;
use crate::state::monitor::Data;
use crate::state::{HealCount, Shared, UpsSlot};

/// Most drivers tracked (one per configured UPS).
const MAX_DRIVERS: usize = 64;

/// What came back from work done off the agent's thread.
pub enum Done {
    Restarted {
        ups: String,
        reason: Reason,
        bad_for: u64,
        result: Result<manage::Outcome, ManageError>,
    },
    Adopt(AdoptResult),
}

/// What one auto-adopt attempt found and did.
pub enum AdoptResult {
    /// Nothing without a section was found.
    NoneFound,
    /// Adopted: the section's name and the UPS's description.
    Adopted {
        ups: String,
        describe: String,
    },
    /// More than one found: the page asks which.
    Many(Vec<String>),
    /// NUT served something by the time the scan ended.
    Served,
    Failed(String),
}

/// What the agent keeps for doing things on its own.
pub struct Auto {
    policy: heal::Policy,
    drivers: Vec<(String, heal::Driver)>,
    /// ups.conf's sections at the last recheck, and those whose device was missing.
    sections: Vec<String>,
    absent: Vec<String>,
    tx: mpsc::Sender<Done>,
    adopting: bool,
    /// The last thing auto-adopt said (said again only when it changes).
    adopt_said: String,
}

/// Where auto-adopt remembers that it adopted (then it never adopts again: a UPS the user
/// removed stays removed): next to the settings.
pub fn adopted_marker(settings_path: &Path) -> PathBuf {
    let mut name = settings_path
        .file_name()
        .map_or_else(|| "settings".into(), |n| n.to_os_string());
    name.push(".auto-adopted");
    settings_path.with_file_name(name)
}

/// A upsd on this machine: its drivers are ours to restart.
fn local(upsd: &str) -> bool {
    let host = match upsd.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => upsd,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// What the last poll says of a UPS's driver.
fn health(slot: &UpsSlot, now: u64) -> Health {
    let fresh = now.saturating_sub(slot.state.updated) <= 2 * u64::from(slot.poll_interval) + 10;
    match &slot.state.data {
        _ if !fresh || slot.state.updated == 0 => Health::Unknown,
        Data::Ok => Health::Healthy,
        Data::Unavailable(c) if c == "DATA-STALE" => Health::Stale,
        Data::Unavailable(c) if c == "DRIVER-NOT-CONNECTED" => Health::Disconnected,
        _ => Health::Unknown,
    }
}

/// The sections the check says have no device now.
fn absent(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| {
            matches!(
                f.code,
                Code::UpsAbsent | Code::MatcherNoMatch | Code::PortMissing
            )
        })
        .filter_map(|f| f.section.clone())
        .collect()
}

/// What a restart or an adoption needs of the agent.
pub struct Ctx<'a> {
    pub shared: &'a std::cell::RefCell<Shared>,
    pub settings: &'a Settings,
    pub settings_path: &'a Path,
    pub nut_dir: &'a Path,
    pub installed: &'a Installed,
    pub root: &'a Root,
    /// Serial ports auto-adopt may ask too (`run --serial-port`).
    pub serial_ports: &'a [String],
    pub hub: &'a crate::notify::Hub,
}

impl Auto {
    pub fn new(tx: mpsc::Sender<Done>) -> Auto {
        Auto {
            policy: heal::Policy::from_vars(|n| std::env::var(n).ok()),
            drivers: Vec::new(),
            sections: Vec::new(),
            absent: Vec::new(),
            tx,
            adopting: false,
            adopt_said: String::new(),
        }
    }

    /// After a recheck: ups.conf's sections and which have no device; a device that came back
    /// is told to its driver's self-healing.
    pub fn checked(&mut self, sections: Vec<String>, findings: &[Finding], now: u64) {
        let absent = absent(findings);
        for name in &self.absent {
            if !absent.contains(name) && sections.contains(name) {
                if let Some((_, d)) = self.drivers.iter_mut().find(|(n, _)| n == name) {
                    log::info!("{name}: its device is back; checking that its driver came back");
                    d.replugged(now);
                }
            }
        }
        self.absent = absent;
        self.sections = sections;
    }

    /// Once a second: each local UPS's driver judged, and restarted when [`heal`] says so.
    pub fn tick(&mut self, cx: &Ctx, now: u64) {
        if !cx.settings.self_heal {
            return;
        }
        let polled: Vec<(String, Health)> = cx
            .shared
            .borrow()
            .ups
            .iter()
            .filter(|u| local(&u.upsd) && self.sections.contains(&u.name))
            .map(|u| {
                let h = if self.absent.contains(&u.name) {
                    Health::Unknown
                } else {
                    health(u, now)
                };
                (u.name.clone(), h)
            })
            .collect();
        self.drivers
            .retain(|(n, d)| d.in_flight || polled.iter().any(|(p, _)| p == n));
        for (name, h) in polled {
            let i = match self.drivers.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None if self.drivers.len() < MAX_DRIVERS => {
                    self.drivers.push((name.clone(), heal::Driver::default()));
                    self.drivers.len() - 1
                }
                None => continue,
            };
            let d = &mut self.drivers[i].1;
            let given_up = d.given_up;
            let decision = d.observe(&self.policy, h, now);
            if d.given_up != given_up {
                // Healthy for a while after giving up: the gauge goes back to 0.
                self.count(cx, &name);
            }
            match decision {
                Decision::Nothing => {}
                Decision::Restart { reason, bad_for } => {
                    self.count(cx, &name);
                    self.restart(cx, &name, reason, bad_for);
                }
                Decision::GiveUp { restarts } => {
                    let text = format!(
                        "driver given up: restarted {restarts} times in the last hour and its data is still missing; no more restarts until it has been healthy for {} s (see its log: `journalctl -u nut-driver@{name}`)",
                        self.policy.reset_after
                    );
                    cx.shared.borrow_mut().emit(Level::Error, &name, &text);
                    cx.hub.events([Event::new(
                        Kind::DriverGivenUp,
                        Severity::Critical,
                        &name,
                        text,
                        now,
                    )]);
                    self.count(cx, &name);
                }
                Decision::Healed { restarts } => {
                    let text =
                        format!("driver healed: its data is back after {restarts} restart(s)");
                    cx.shared.borrow_mut().emit(Level::Info, &name, &text);
                    cx.hub.events([Event::new(
                        Kind::DriverHealed,
                        Severity::Info,
                        &name,
                        text,
                        now,
                    )]);
                    self.count(cx, &name);
                }
            }
        }
    }

    /// Copies a driver's counters into the state the page and /metrics read.
    fn count(&self, cx: &Ctx, name: &str) {
        let Some((_, d)) = self.drivers.iter().find(|(n, _)| n == name) else {
            return;
        };
        let mut sh = cx.shared.borrow_mut();
        let c = match sh.heal.iter().position(|h| h.ups == name) {
            Some(i) => &mut sh.heal[i],
            None if sh.heal.len() < MAX_DRIVERS => {
                sh.heal.push(HealCount {
                    ups: name.to_string(),
                    ..HealCount::default()
                });
                sh.heal.last_mut().expect("just pushed")
            }
            None => return,
        };
        c.restarts = d.restarts;
        c.given_up = d.given_up;
    }

    /// The restart of one driver, through the apply path, off the agent's thread.
    fn restart(&self, cx: &Ctx, name: &str, reason: Reason, bad_for: u64) {
        log::debug!(
            "{name}: restarting its driver ({})",
            reason.describe(bad_for)
        );
        let nut = manage::Nut::at(
            cx.nut_dir,
            cx.installed.version,
            cx.installed.drivers.clone(),
        );
        let driver_dir = cx.installed.driver_dir.clone();
        let (tx, ups) = (self.tx.clone(), name.to_string());
        tokio::task::spawn_blocking(move || {
            let result = manage::restart_driver(
                &nut,
                driver_dir.as_deref(),
                &ups,
                Path::new(spool::DEFAULT_SPOOL),
            );
            let _ = tx.blocking_send(Done::Restarted {
                ups,
                reason,
                bad_for,
                result,
            });
        });
    }

    /// A restart or an adoption ended.
    pub fn done(&mut self, cx: &Ctx, done: Done, now: u64) {
        match done {
            Done::Restarted {
                ups,
                reason,
                bad_for,
                result,
            } => {
                if let Some((_, d)) = self.drivers.iter_mut().find(|(n, _)| *n == ups) {
                    d.done(now);
                }
                let text = match result {
                    Ok(_) => format!("driver restarted: {}", reason.describe(bad_for)),
                    Err(e) => format!(
                        "driver restart failed ({}): {}",
                        reason.describe(bad_for),
                        one_line(&e.to_string())
                    ),
                };
                cx.shared.borrow_mut().emit(Level::Warn, &ups, &text);
            }
            Done::Adopt(r) => {
                self.adopting = false;
                let (level, text) = match r {
                    AdoptResult::NoneFound | AdoptResult::Served => {
                        log::debug!("auto-adopt: nothing to adopt");
                        return;
                    }
                    AdoptResult::Adopted { ups, describe } => {
                        if let Err(e) = std::fs::write(
                            adopted_marker(cx.settings_path),
                            format!("{ups}\n"),
                        ) {
                            log::warn!("auto-adopt: cannot remember the adoption: {e}");
                        }
                        // The agent changed NUT's files by itself: said at the default level.
                        (
                            Level::Warn,
                            format!("auto-adopt: adopted [{ups}] ({describe}), the only UPS found; NUT serves it now"),
                        )
                    }
                    AdoptResult::Many(list) => (
                        Level::Warn,
                        format!(
                            "auto-adopt: {} UPSes found ({}): none adopted; choose one with Adopt… on the Check page",
                            list.len(),
                            list.join("; ")
                        ),
                    ),
                    AdoptResult::Failed(e) => {
                        (Level::Warn, format!("auto-adopt failed: {}", one_line(&e)))
                    }
                };
                if text != self.adopt_said {
                    cx.shared.borrow_mut().emit(level, "agent", &text);
                    self.adopt_said = text;
                }
            }
        }
    }

    /// With `auto_adopt`, when NUT serves nothing and auto-adopt never adopted: the UPSes found
    /// are looked for (off the agent's thread), and the only one adopted.
    pub fn maybe_adopt(&mut self, cx: &Ctx) {
        if !cx.settings.auto_adopt || self.adopting || !self.sections.is_empty() {
            return;
        }
        if adopted_marker(cx.settings_path).exists() {
            log::debug!("auto-adopt: it adopted once already; a UPS removed since stays removed");
            return;
        }
        self.adopting = true;
        let plan_parts = (
            cx.nut_dir.to_path_buf(),
            cx.installed.clone(),
            cx.settings_path.to_path_buf(),
            cx.settings.clone(),
            cx.root.clone(),
            cx.serial_ports.to_vec(),
        );
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let (nut_dir, installed, settings_path, settings, root, serial_ports) = plan_parts;
            let plan = Plan {
                face: Face::Adopt,
                nut_dir,
                dir_source: crate::inspect::plan::DirSource::Option,
                installed,
                settings_path,
                settings: Some(settings),
                settings_warnings: Vec::new(),
                usb: crate::inspect::plan::usb_reader(&root),
                root,
                upsd: None,
                talk: Face::Adopt.talk(None),
                serial_ports,
            };
            let _ = tx.blocking_send(Done::Adopt(adopt_one(&plan)));
        });
    }
}

/// Adopts the only UPS found when ups.conf has no section.
fn adopt_one(plan: &Plan) -> AdoptResult {
    let report = crate::inspect::check(plan, &|_| {});
    if report
        .parsed
        .ups
        .as_ref()
        .is_some_and(|u| !u.sections.is_empty())
    {
        return AdoptResult::Served;
    }
    let found = adopt::candidates(plan, &report);
    let one = match found.as_slice() {
        [] => return AdoptResult::NoneFound,
        [one] => one,
        many => return AdoptResult::Many(many.iter().map(|c| c.describe.clone()).collect()),
    };
    let mut make = adopt::propose(plan, Mode::Apply, Path::new(spool::DEFAULT_SPOOL));
    match adopt::adopt(plan, &report, Some(&one.device), Mode::Apply, &mut make) {
        Ok(c) => AdoptResult::Adopted {
            ups: c.ups,
            describe: one.describe.clone(),
        },
        Err(e @ ChangeError::Usage(_)) => AdoptResult::Failed(e.to_string()),
        Err(e) => AdoptResult::Failed(e.to_string()),
    }
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_upsd_on_this_machine_has_drivers_to_restart() {
        for (a, want) in [
            ("localhost:3493", true),
            ("127.0.0.1:3493", true),
            ("[::1]:3493", true),
            ("nas.lan:3493", false),
            ("10.0.0.2:3493", false),
            ("localhost", true),
        ] {
            assert_eq!(local(a), want, "{a}");
        }
    }

    #[test]
    fn the_marker_sits_next_to_the_settings() {
        assert_eq!(
            adopted_marker(Path::new("/var/lib/power-snitch/settings.bin")),
            Path::new("/var/lib/power-snitch/settings.bin.auto-adopted")
        );
    }
}
