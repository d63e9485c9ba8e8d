//! The agent's state as the faces read it: each UPS's last state and readings, each upsd
//! connection's state, the last check's summary, and the bounded event ring. The agent's loops
//! write it; the control socket and the setup page read it (on the agent's one thread, behind an
//! `Rc<RefCell<_>>`, never borrowed across an await).
//!
//! [`monitor`] is what a reading means (pure); [`ring`] the bounded events; [`view`] the state
//! rendered as the control socket and the page's API give it.
//!
//! **Architecture invariant:** this module knows nothing of the agent's runtime, the control
//! socket or the page: the agent (`agent`) and the page (`web`) import it, it imports neither.

pub mod battery;
pub mod history;
pub mod monitor;
pub mod ring;
pub mod view;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use log::Level;
use tokio::time::Instant;

use crate::nut::version::NutVersion;
use crate::settings::model::Settings;
use monitor::{Link, Note, Readings, UpsState};
use ring::Ring;

/// One configured UPS, as the monitor tasks and the control socket see it.
pub struct UpsSlot {
    pub name: String,
    /// upsd's `host:port`.
    pub upsd: String,
    pub poll_interval: u32,
    pub state: UpsState,
    /// The last poll's numbers (charge, runtime, load, voltages) and names; empty when upsd
    /// had no data.
    pub readings: Readings,
    pub polls: u64,
    pub last_poll_ms: Option<u64>,
    /// When the last poll ended, and when the next is due (the agent's schedule).
    pub last_poll: Option<Instant>,
    pub due: Instant,
}

impl UpsSlot {
    /// A UPS not polled yet, due now.
    pub fn new(name: &str, upsd: &str, poll_interval: u32) -> UpsSlot {
        UpsSlot::at(name, upsd, poll_interval, Instant::now())
    }

    /// A UPS not polled yet, due at `now`.
    pub fn at(name: &str, upsd: &str, poll_interval: u32, now: Instant) -> UpsSlot {
        UpsSlot {
            name: name.to_string(),
            upsd: upsd.to_string(),
            poll_interval,
            state: UpsState::default(),
            readings: Readings::default(),
            polls: 0,
            last_poll_ms: None,
            last_poll: None,
            due: now,
        }
    }
}

pub struct LinkSlot {
    pub address: String,
    pub link: Link,
}

/// What the tasks share (one thread: a `RefCell`, never borrowed across an await).
pub struct Shared {
    pub started: u64,
    pub ring: Ring,
    pub ups: Vec<UpsSlot>,
    pub links: Vec<LinkSlot>,
    /// Errors, warnings, infos of the last check, and when it ran.
    pub findings: (usize, usize, usize),
    pub checked_at: u64,
    pub settings_path: String,
    pub nut_dir: String,
    /// Each UPS's charts and events over the last 24 hours and 7 days (bounded).
    pub history: history::History,
    /// The drivers the agent restarted (self-healing), one per UPS, bounded by the UPSes.
    pub heal: Vec<HealCount>,
    /// The battery tests kept per UPS, as the results file last said.
    pub battery: battery::Results,
}

/// The `reason` labels of driver restarts, in [`HealCount::restarts`]' order.
pub const HEAL_REASONS: [&str; 3] = ["stale", "disconnected", "replugged"];

/// What the agent's self-healing did for one UPS's driver since the agent started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealCount {
    pub ups: String,
    /// Restarts per [`HEAL_REASONS`].
    pub restarts: [u64; 3],
    /// It stopped restarting it (the hourly cap was reached).
    pub given_up: bool,
}

impl Shared {
    /// Logs an event and keeps it in the ring (debug ones are only logged).
    pub fn emit(&mut self, level: Level, source: &str, text: &str) {
        // Logged as the agent's, as before this state had its own module (RUST_LOG names it).
        log::log!(target: "power_snitch::agent", level, "{source}: {text}");
        if level <= Level::Info {
            let now = unix_now();
            self.ring.push(now, level, source, text);
            // The history keeps what is about a UPS: its own events and its upsd's.
            let upsd = source.strip_prefix("upsd ");
            for u in &self.ups {
                if u.name == source || upsd == Some(u.upsd.as_str()) {
                    self.history.event(&u.name, now, level, text);
                }
            }
        }
    }

    /// Logs each note (and keeps it in the ring), emptying `notes`.
    pub fn emit_notes(&mut self, source: &str, notes: &mut Vec<Note>) {
        for n in notes.drain(..) {
            self.emit(n.level, source, &n.text);
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The one-line state for systemd's STATUS=: each UPS, its data and its upsd, then findings.
pub fn status_line(s: &Shared) -> String {
    let mut parts: Vec<String> = s
        .ups
        .iter()
        .map(|u| {
            let st = &u.state;
            let data = match &st.data {
                monitor::Data::Unknown => "not read yet".to_string(),
                monitor::Data::Ok => st.status_text(),
                monitor::Data::Unavailable(code) => code.clone(),
            };
            let charge = st.charge.map_or(String::new(), |c| format!(", {c}%"));
            let link = s
                .links
                .iter()
                .find(|l| l.address == u.upsd)
                .map_or("?", |l| l.link.state.as_str());
            format!("{}: {data}{charge}, upsd {link}", u.name)
        })
        .collect();
    if parts.is_empty() {
        parts.push("no UPS configured".into());
    }
    let (e, w, _) = s.findings;
    parts.push(format!("NUT files: {e} error(s), {w} warning(s)"));
    parts.join("; ")
}

/// A face served beside the agent that follows its settings (the setup page): `run` makes it
/// and hands it to the agent, which tells it each time settings are applied and when it stops.
/// The agent knows nothing else of it.
pub trait Companion {
    /// The settings as just applied (at start and after each change), with the NUT version
    /// the agent checks against.
    fn apply(&mut self, settings: &Settings, nut_version: NutVersion, shared: &Rc<RefCell<Shared>>);
    /// The agent is stopping.
    fn stop(&mut self);
}

#[cfg(test)]
mod tests {
    /// Every `crate::…` module a source file under `dir` names.
    fn imports(dir: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(dir);
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for (i, _) in text.match_indices("crate::") {
                        let m: String = text[i + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        out.push((p.display().to_string(), m));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn state_and_page_import_nothing_of_the_agent_and_the_agent_nothing_of_the_page() {
        for (file, m) in imports("state") {
            assert!(
                !["agent", "web", "cli"].contains(&m.as_str()),
                "{file} imports crate::{m}"
            );
        }
        for (file, m) in imports("web") {
            assert!(m != "agent", "{file} imports crate::{m}");
        }
        for (file, m) in imports("agent") {
            assert!(m != "web" && m != "cli", "{file} imports crate::{m}");
        }
    }
}
