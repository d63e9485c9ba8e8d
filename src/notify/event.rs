//! The events worth telling someone, sans I/O: what changed between two states of a UPS, of a
//! upsd connection, or between two checks of NUT's files, each with a severity and one plain
//! sentence; the per-channel severity filter; and the flapping guard, which summarises a state
//! that toggles faster than a set time instead of repeating it. Time is passed in.
//!
//! **Architecture invariant:** nothing here reads a socket, a file or a clock.

use crate::nut::diag::{Code, Finding, Severity as FindingSeverity};
use crate::state::monitor::{Data, UpsState};
use crate::state::ring::bounded;

/// Bytes kept of an event's sentence and of its source's name.
pub const MAX_TEXT: usize = 400;
pub const MAX_SOURCE: usize = 80;

pub use crate::settings::model::Severity;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OnBattery,
    LowBattery,
    /// Back on line power after an outage of this many seconds.
    OnLine,
    ReplaceBattery,
    UpsdLost,
    UpsdRestored,
    DriverLost,
    DriverRestored,
    Unplugged,
    NewUps,
    Finding,
    /// A flapping state, summarised.
    Flapping,
    /// Events dropped from a full outbox.
    Dropped,
    /// Sent by "send a test".
    Test,
    /// The agent restarted a driver and its data is back.
    DriverHealed,
    /// The agent stopped restarting a driver that keeps failing.
    DriverGivenUp,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::OnBattery,
        Kind::LowBattery,
        Kind::OnLine,
        Kind::ReplaceBattery,
        Kind::UpsdLost,
        Kind::UpsdRestored,
        Kind::DriverLost,
        Kind::DriverRestored,
        Kind::Unplugged,
        Kind::NewUps,
        Kind::Finding,
        Kind::Flapping,
        Kind::Dropped,
        Kind::Test,
        Kind::DriverHealed,
        Kind::DriverGivenUp,
    ];

    /// The name receivers see (JSON `kind`, ntfy tags, MQTT).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OnBattery => "on_battery",
            Kind::LowBattery => "low_battery",
            Kind::OnLine => "on_line",
            Kind::ReplaceBattery => "replace_battery",
            Kind::UpsdLost => "upsd_lost",
            Kind::UpsdRestored => "upsd_restored",
            Kind::DriverLost => "driver_lost",
            Kind::DriverRestored => "driver_restored",
            Kind::Unplugged => "unplugged",
            Kind::NewUps => "new_ups",
            Kind::Finding => "finding",
            Kind::Flapping => "flapping",
            Kind::Dropped => "dropped",
            Kind::Test => "test",
            Kind::DriverHealed => "driver_healed",
            Kind::DriverGivenUp => "driver_given_up",
        }
    }

    pub fn code(self) -> u8 {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8
    }

    pub fn from_code(c: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(c)).copied()
    }

    /// Events that toggle with each other (a state set and cleared) share a family; the
    /// flapping guard counts toggles per (source, family).
    fn family(self) -> Option<u8> {
        match self {
            Kind::OnBattery | Kind::OnLine => Some(0),
            Kind::UpsdLost | Kind::UpsdRestored => Some(1),
            Kind::DriverLost | Kind::DriverRestored => Some(2),
            _ => None,
        }
    }
}

/// One event, before the outbox gives it its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub severity: Severity,
    /// The UPS (`ups@host:port` as the agent names it), the upsd, or `check`.
    pub source: String,
    pub text: String,
    /// Seconds since the epoch.
    pub at: u64,
}

impl Event {
    pub fn new(kind: Kind, severity: Severity, source: &str, text: String, at: u64) -> Event {
        Event {
            kind,
            severity,
            source: bounded(source, MAX_SOURCE),
            text: bounded(&text, MAX_TEXT),
            at,
        }
    }
}

/// "1 h 2 min 3 s", "45 s".
pub fn duration_text(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min {s} s"),
    }
}

/// What changed for the UPS `ups` between `before` and `after` (one reading), at `now`.
/// `on_battery_since` is kept by the caller per UPS: when the outage began (for its length).
pub fn ups_changes(
    ups: &str,
    before: &UpsState,
    after: &UpsState,
    on_battery_since: &mut Option<u64>,
    now: u64,
    out: &mut Vec<Event>,
) {
    let ev = |kind, sev, text: String| Event::new(kind, sev, ups, format!("{ups}: {text}"), now);
    let had_data = |s: &UpsState| s.data == Data::Ok;
    // Data lost and back: upsd answered an error for the UPS (the driver), or WAIT.
    match (&before.data, &after.data) {
        (Data::Ok, Data::Unavailable(code)) => out.push(ev(
            Kind::DriverLost,
            Severity::Critical,
            format!("upsd has no data from the UPS's driver ({code}); the UPS is not watched"),
        )),
        (Data::Unavailable(code), Data::Ok) if before.seen => out.push(ev(
            Kind::DriverRestored,
            Severity::Info,
            format!("upsd has data from the UPS's driver again (was {code})"),
        )),
        _ => {}
    }
    // The first reading is no change: what was wrong before the agent started was told by
    // the agent that ran then (a restart repeats nothing).
    if !had_data(after) || !before.seen {
        return;
    }
    let (was, is) = (before.flags, after.flags);
    let set = |w: &str| is.has(w) && !was.has(w);
    let cleared = |w: &str| was.has(w) && !is.has(w);
    if set("OB") {
        *on_battery_since = Some(now);
        let charge = after
            .charge
            .map_or(String::new(), |c| format!(", battery at {c}%"));
        out.push(ev(
            Kind::OnBattery,
            Severity::Warning,
            format!("on battery: utility power is gone{charge}"),
        ));
    }
    if set("LB") {
        out.push(ev(
            Kind::LowBattery,
            Severity::Critical,
            "low battery: shutdown is near".into(),
        ));
    }
    if cleared("OB") && is.has("OL") {
        let outage = now.saturating_sub(on_battery_since.take().unwrap_or(before.since));
        out.push(ev(
            Kind::OnLine,
            Severity::Info,
            format!(
                "back on line power after {} on battery",
                duration_text(outage)
            ),
        ));
    }
    if set("RB") {
        out.push(ev(
            Kind::ReplaceBattery,
            Severity::Warning,
            "the battery needs replacing".into(),
        ));
    }
}

/// What changed for the upsd connection `upsd` (`host:port`): `up_before`/`up_after` whether
/// it was up, `ever_up` whether it had ever been up before this change, `error` the last
/// failure, `down_for` seconds it was down when it comes back.
pub fn link_change(
    upsd: &str,
    up_before: bool,
    up_after: bool,
    ever_up: bool,
    error: &str,
    down_for: u64,
    now: u64,
) -> Option<Event> {
    let source = format!("upsd {upsd}");
    match (up_before, up_after) {
        (true, false) => Some(Event::new(
            Kind::UpsdLost,
            Severity::Critical,
            &source,
            format!("lost the connection to upsd at {upsd}: {error}; no UPS on it is watched"),
            now,
        )),
        (false, true) if ever_up => Some(Event::new(
            Kind::UpsdRestored,
            Severity::Info,
            &source,
            format!(
                "connection to upsd at {upsd} restored after {}",
                duration_text(down_for)
            ),
            now,
        )),
        _ => None,
    }
}

/// The events of findings that appeared in a check: a configured UPS unplugged, a new UPS
/// detected, a new error in NUT's files.
pub fn finding_events(appeared: &[&Finding], now: u64, out: &mut Vec<Event>) {
    for f in appeared {
        let place = match (f.file.is_empty(), f.line) {
            (true, _) => String::new(),
            (false, 0) => format!(" ({})", f.file),
            (false, l) => format!(" ({}:{l})", f.file),
        };
        let (kind, severity, text) = match f.code {
            Code::UpsAbsent | Code::MatcherNoMatch => (
                Kind::Unplugged,
                Severity::Critical,
                format!("a configured UPS is unplugged: {}{place}", f.message),
            ),
            Code::UpsUnconfigured => (
                Kind::NewUps,
                Severity::Info,
                format!("a new UPS is connected: {}", f.message),
            ),
            _ if f.severity == FindingSeverity::Error => (
                Kind::Finding,
                Severity::Warning,
                format!("new error in NUT's files{place}: {}", f.message),
            ),
            _ => continue,
        };
        let source = f.section.as_deref().unwrap_or("check");
        out.push(Event::new(kind, severity, source, text, now));
    }
}

/// Whether a channel that wants `min` and above takes `e`. A test always passes.
pub fn passes(min: Severity, e: &Event) -> bool {
    e.kind == Kind::Test || e.severity >= min
}

/// Families watched at once by the guard; beyond, the oldest is forgotten.
pub const MAX_GUARDED: usize = 32;

#[derive(Clone, Debug)]
struct Watch {
    source: String,
    family: u8,
    /// When the last event of the family came (passed or held).
    last: u64,
    /// Events held back since the last one that passed.
    held: u32,
    /// The latest held event (the state now) and the worst severity held.
    latest: Option<Event>,
    worst: Severity,
}

/// The flapping guard: within `window` seconds of the last event of the same family and
/// source, a toggle is held back; once the family has been quiet for `window`, one summary
/// says how often it toggled and where it stands. `window` 0 lets everything through.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    pub window: u64,
    watches: Vec<Watch>,
}

impl Guard {
    pub fn new(window: u64) -> Guard {
        Guard {
            window,
            watches: Vec::new(),
        }
    }

    /// Offers an event at `now`; returns it when it may go out now.
    pub fn offer(&mut self, e: Event, now: u64) -> Option<Event> {
        let Some(family) = e.kind.family().filter(|_| self.window > 0) else {
            return Some(e);
        };
        match self
            .watches
            .iter_mut()
            .find(|w| w.family == family && w.source == e.source)
        {
            Some(w) if now < w.last.saturating_add(self.window) => {
                w.last = now;
                w.held += 1;
                w.worst = w.worst.max(e.severity);
                w.latest = Some(e);
                None
            }
            Some(w) => {
                w.last = now;
                Some(e)
            }
            None => {
                if self.watches.len() >= MAX_GUARDED {
                    self.watches.remove(0);
                }
                self.watches.push(Watch {
                    source: e.source.clone(),
                    family,
                    last: now,
                    held: 0,
                    latest: None,
                    worst: Severity::Info,
                });
                Some(e)
            }
        }
    }

    /// The summaries due at `now`: families quiet for `window` with events held.
    pub fn due(&mut self, now: u64) -> Vec<Event> {
        let mut out = Vec::new();
        for w in &mut self.watches {
            if w.held == 0 || now < w.last.saturating_add(self.window) {
                continue;
            }
            if let Some(latest) = w.latest.take() {
                out.push(Event::new(
                    Kind::Flapping,
                    w.worst.max(latest.severity),
                    &w.source,
                    format!(
                        "changed {} more time(s) within {} s of each other; now: {}",
                        w.held, self.window, latest.text
                    ),
                    now,
                ));
            }
            w.held = 0;
            w.worst = Severity::Info;
        }
        self.watches
            .retain(|w| now < w.last.saturating_add(self.window.saturating_mul(4)));
        out
    }

    /// When the next summary may be due (for the timer), if any is held.
    pub fn next_due(&self) -> Option<u64> {
        self.watches
            .iter()
            .filter(|w| w.held > 0)
            .map(|w| w.last.saturating_add(self.window))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::lexer::Pos;
    use crate::state::monitor::{Reading, Vars};

    fn state_after(steps: &[(&str, &str, u64)]) -> Vec<(UpsState, UpsState, u64)> {
        let mut s = UpsState::default();
        let mut out = Vec::new();
        for (status, charge, t) in steps {
            let before = s.clone();
            let mut notes = Vec::new();
            let reading = if let Some(code) = status.strip_prefix("ERR ") {
                Reading::Unavailable { code, message: "" }
            } else {
                Reading::Vars(Vars {
                    status: Some(status),
                    charge: Some(charge),
                    ..Vars::default()
                })
            };
            s.observe(reading, *t, &mut notes);
            out.push((before, s.clone(), *t));
        }
        out
    }

    /// Feeds readings (status or `ERR code`, charge, time) and checks the events' kinds,
    /// severities and sentences, step by step.
    fn check(steps: &[(&str, &str, u64)], expected: &[&[(Kind, Severity, &str)]]) {
        let states = state_after(steps);
        assert_eq!(states.len(), expected.len());
        let mut since = None;
        for ((before, after, t), want) in states.iter().zip(expected) {
            let mut got = Vec::new();
            ups_changes(
                "ups@localhost:3493",
                before,
                after,
                &mut since,
                *t,
                &mut got,
            );
            let got: Vec<(Kind, Severity, &str)> = got
                .iter()
                .map(|e| (e.kind, e.severity, e.text.as_str()))
                .collect();
            assert_eq!(&got, want, "at t={t}");
        }
    }

    const U: &str = "ups@localhost:3493: ";

    #[test]
    fn notify_events_from_readings() {
        use Kind::*;
        use Severity::*;
        let ob = format!("{U}on battery: utility power is gone, battery at 90%");
        let lb = format!("{U}low battery: shutdown is near");
        let ol = format!("{U}back on line power after 1 min 5 s on battery");
        let rb = format!("{U}the battery needs replacing");
        let lost = format!(
            "{U}upsd has no data from the UPS's driver (DATA-STALE); the UPS is not watched"
        );
        let back = format!("{U}upsd has data from the UPS's driver again (was DATA-STALE)");
        check(
            &[
                ("OL", "100", 10),
                ("OB DISCHRG", "90", 20),
                ("OB DISCHRG", "80", 25),
                ("OB LB", "10", 60),
                ("OL CHRG", "12", 85),
                ("OL RB", "50", 90),
                ("ERR DATA-STALE", "", 100),
                ("OL RB", "50", 110),
            ],
            &[
                &[],
                &[(OnBattery, Warning, &ob)],
                &[],
                &[(LowBattery, Critical, &lb)],
                &[(OnLine, Info, &ol)],
                &[(ReplaceBattery, Warning, &rb)],
                &[(DriverLost, Critical, &lost)],
                &[(DriverRestored, Info, &back)],
            ],
        );
        // The first reading is no change (a restart repeats nothing); an outage going on
        // when the agent started is measured from its first reading.
        check(
            &[("OB LB RB", "5", 1), ("OL", "5", 31)],
            &[
                &[],
                &[(
                    OnLine,
                    Info,
                    &format!("{U}back on line power after 30 s on battery"),
                )],
            ],
        );
        // WAIT after a restart keeps the last state: no "on line" when the data returns.
        check(
            &[
                ("OL", "50", 0),
                ("OB", "50", 1),
                ("WAIT", "", 5),
                ("OB", "50", 9),
            ],
            &[
                &[],
                &[(
                    OnBattery,
                    Warning,
                    &format!("{U}on battery: utility power is gone, battery at 50%"),
                )],
                &[(
                    DriverLost,
                    Critical,
                    &format!(
                        "{U}upsd has no data from the UPS's driver (WAIT); the UPS is not watched"
                    ),
                )],
                &[(
                    DriverRestored,
                    Info,
                    &format!("{U}upsd has data from the UPS's driver again (was WAIT)"),
                )],
            ],
        );
    }

    #[test]
    fn notify_link_events() {
        let lost = link_change("h:1", true, false, true, "refused", 0, 5).unwrap();
        assert_eq!(
            (lost.kind, lost.severity),
            (Kind::UpsdLost, Severity::Critical)
        );
        assert_eq!(lost.source, "upsd h:1");
        let back = link_change("h:1", false, true, true, "", 3725, 9).unwrap();
        assert_eq!(
            back.text,
            "connection to upsd at h:1 restored after 1 h 2 min 5 s"
        );
        assert_eq!(link_change("h:1", false, true, false, "", 0, 1), None);
        assert_eq!(link_change("h:1", false, false, true, "x", 0, 1), None);
        assert_eq!(link_change("h:1", true, true, true, "", 0, 1), None);
    }

    #[test]
    fn notify_finding_events() {
        let f = |sev, code, msg: &str| {
            let mut f = Finding::new(sev, code, "ups.conf", Pos { line: 3, col: 1 }, msg.into());
            f.section = Some("myups".into());
            f
        };
        let all = [
            f(
                FindingSeverity::Error,
                Code::UpsAbsent,
                "no device for [myups]",
            ),
            f(
                FindingSeverity::Info,
                Code::UpsUnconfigured,
                "Eaton 5E at 1-1",
            ),
            f(
                FindingSeverity::Error,
                Code::MissingDriver,
                "[b] has no driver",
            ),
            f(FindingSeverity::Warning, Code::PortUnstable, "ttyUSB0"),
        ];
        let refs: Vec<&Finding> = all.iter().collect();
        let mut out = Vec::new();
        finding_events(&refs, 7, &mut out);
        let got: Vec<(Kind, &str)> = out.iter().map(|e| (e.kind, e.text.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    Kind::Unplugged,
                    "a configured UPS is unplugged: no device for [myups] (ups.conf:3)"
                ),
                (Kind::NewUps, "a new UPS is connected: Eaton 5E at 1-1"),
                (
                    Kind::Finding,
                    "new error in NUT's files (ups.conf:3): [b] has no driver"
                ),
            ]
        );
        assert_eq!(out[0].source, "myups");
    }

    #[test]
    fn notify_severity_filter() {
        let e = |sev| Event::new(Kind::OnBattery, sev, "u", "t".into(), 0);
        for (min, sev, pass) in [
            (Severity::Info, Severity::Info, true),
            (Severity::Warning, Severity::Info, false),
            (Severity::Warning, Severity::Warning, true),
            (Severity::Warning, Severity::Critical, true),
            (Severity::Critical, Severity::Warning, false),
        ] {
            assert_eq!(passes(min, &e(sev)), pass, "{min:?} {sev:?}");
        }
        let t = Event::new(Kind::Test, Severity::Info, "u", "t".into(), 0);
        assert!(passes(Severity::Critical, &t));
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Ok(s));
            assert_eq!(Severity::from_code(s.code()), Some(s));
        }
        assert!(Severity::parse("loud").unwrap_err().contains("`loud`"));
        for k in Kind::ALL {
            assert_eq!(Kind::from_code(k.code()), Some(k));
        }
    }

    #[test]
    fn notify_flapping_is_summarised() {
        let e = |k, t: u64| {
            let sev = if k == Kind::OnBattery {
                Severity::Warning
            } else {
                Severity::Info
            };
            Event::new(k, sev, "u", format!("{k:?} at {t}"), t)
        };
        // (event offered at t, or a summary check at t) -> what goes out
        let mut g = Guard::new(10);
        let mut out = Vec::new();
        for (k, t) in [
            (Kind::OnBattery, 0),
            (Kind::OnLine, 3),
            (Kind::OnBattery, 6),
            (Kind::OnLine, 9),
            (Kind::LowBattery, 9),
        ] {
            if let Some(x) = g.offer(e(k, t), t) {
                out.push(x.text);
            }
        }
        assert_eq!(out, ["OnBattery at 0", "LowBattery at 9"]);
        assert_eq!(g.next_due(), Some(19));
        assert!(g.due(18).is_empty());
        let s = g.due(19);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, Kind::Flapping);
        assert_eq!(s[0].severity, Severity::Warning);
        assert_eq!(
            s[0].text,
            "changed 3 more time(s) within 10 s of each other; now: OnLine at 9"
        );
        assert!(g.due(30).is_empty());
        // Quiet for the window: the next toggle goes out at once.
        assert!(g.offer(e(Kind::OnBattery, 40), 40).is_some());
        // Another source is its own family.
        let mut other = e(Kind::OnLine, 41);
        other.source = "v".into();
        assert!(g.offer(other, 41).is_some());
        // Window 0: nothing is held.
        let mut g = Guard::new(0);
        assert!(g.offer(e(Kind::OnBattery, 0), 0).is_some());
        assert!(g.offer(e(Kind::OnLine, 0), 0).is_some());
        assert_eq!(g.next_due(), None);
    }
}
