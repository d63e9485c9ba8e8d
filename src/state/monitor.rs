//! What a UPS reading and a connection attempt mean, sans I/O: the last known state plus a new
//! reading give the changes worth logging, each once, with its meaning. Time is passed in.
//!
//! **Architecture invariant:** nothing here reads a socket or a clock; the monitor task in
//! `agent::mod` feeds readings and `now`, and logs the notes it gets back.

use std::time::Duration;

use log::Level;

use super::ring::bounded;

/// Bytes kept of `ups.alarm`, of unknown status words and of an error's text.
pub const MAX_STATE_TEXT: usize = 160;

/// One thing worth logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub text: String,
}

fn note(level: Level, text: String) -> Note {
    Note { level, text }
}

/// A status word of `ups.status`, what it means when it appears and when it goes.
struct Flag {
    word: &'static str,
    set: &'static str,
    set_level: Level,
    cleared: &'static str,
    cleared_level: Level,
}

const fn flag(
    word: &'static str,
    set: &'static str,
    set_level: Level,
    cleared: &'static str,
    cleared_level: Level,
) -> Flag {
    Flag {
        word,
        set,
        set_level,
        cleared,
        cleared_level,
    }
}

use Level::{Error, Info, Warn};

/// The status words NUT defines (docs/new-drivers.txt, "Status data"), at most 32.
const FLAGS: &[Flag] = &[
    flag("OL", "on line power", Info, "no longer on line power", Info),
    flag(
        "OB",
        "on battery: utility power is gone",
        Warn,
        "off battery",
        Info,
    ),
    flag(
        "LB",
        "low battery: shutdown is near",
        Error,
        "battery no longer low",
        Info,
    ),
    flag("HB", "high battery", Warn, "battery no longer high", Info),
    flag(
        "RB",
        "the battery needs replacing",
        Warn,
        "battery replacement no longer asked for",
        Info,
    ),
    flag("CHRG", "charging", Info, "not charging", Info),
    flag("DISCHRG", "discharging", Info, "not discharging", Info),
    flag(
        "BYPASS",
        "on bypass: the load is not protected",
        Warn,
        "off bypass",
        Info,
    ),
    flag(
        "CAL",
        "calibrating the battery",
        Info,
        "calibration over",
        Info,
    ),
    flag(
        "OFF",
        "output off: the load has no power from the UPS",
        Warn,
        "output on again",
        Info,
    ),
    flag("OVER", "overloaded", Error, "no longer overloaded", Info),
    flag(
        "TRIM",
        "trimming high input voltage",
        Info,
        "no longer trimming",
        Info,
    ),
    flag(
        "BOOST",
        "boosting low input voltage",
        Info,
        "no longer boosting",
        Info,
    ),
    flag(
        "FSD",
        "forced shutdown (FSD): the systems it powers are shutting down",
        Error,
        "forced shutdown flag cleared",
        Info,
    ),
    flag("ALARM", "alarm", Warn, "alarm cleared", Info),
    flag(
        "WAIT",
        "waiting for the driver's first data",
        Info,
        "the driver's data arrived",
        Info,
    ),
];

/// The status words set, one bit per entry of [`FLAGS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u32);

impl Flags {
    /// Known words as bits; unknown words into `other` (space-separated, bounded).
    pub fn parse(status: &str, other: &mut String) -> Flags {
        other.clear();
        let mut bits = 0;
        for w in status.split_ascii_whitespace() {
            match FLAGS.iter().position(|f| f.word == w) {
                Some(i) => bits |= 1 << i,
                None if other.len() + w.len() < MAX_STATE_TEXT => {
                    if !other.is_empty() {
                        other.push(' ');
                    }
                    other.push_str(w);
                }
                None => {}
            }
        }
        Flags(bits)
    }

    /// The one word `word` (none if it is not one of NUT's words).
    pub fn only(word: &str) -> Flags {
        Flags(
            FLAGS
                .iter()
                .position(|f| f.word == word)
                .map_or(0, |i| 1 << i),
        )
    }

    pub fn has(self, word: &str) -> bool {
        FLAGS
            .iter()
            .position(|f| f.word == word)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The words, in NUT's order, space-separated.
    pub fn words(self) -> impl Iterator<Item = &'static str> {
        FLAGS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, f)| f.word)
    }
}

/// Whether upsd has data for the UPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// Not read yet.
    Unknown,
    Ok,
    /// upsd answered an error instead of the variables: its code (DRIVER-NOT-CONNECTED,
    /// DATA-STALE, UNKNOWN-UPS, ...), bounded.
    Unavailable(String),
}

/// Where the battery charge stands against the thresholds. Ordered from worst to best.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Band {
    Low,
    Warning,
    Normal,
}

/// Thresholds when the UPS does not report its own. No settings field holds them (that would
/// need a new settings format version): the warning threshold is the UPS's
/// `battery.charge.warning`, else 50 %; the low threshold the UPS's `battery.charge.low`,
/// else 20 %.
pub const DEFAULT_WARNING: u8 = 50;
pub const DEFAULT_LOW: u8 = 20;
/// Percentage points the charge must rise above a threshold before "back above" is logged,
/// so a charge hovering at a threshold is not logged at every poll.
pub const HYSTERESIS: u8 = 2;

fn classify(charge: u8, low: u8, warning: u8) -> Band {
    if charge <= low {
        Band::Low
    } else if charge <= warning {
        Band::Warning
    } else {
        Band::Normal
    }
}

/// The variables a poll reads, borrowed from upsd's reply.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'a> {
    pub status: Option<&'a str>,
    pub alarm: Option<&'a str>,
    pub charge: Option<&'a str>,
    pub charge_low: Option<&'a str>,
    pub charge_warning: Option<&'a str>,
}

impl<'a> Vars<'a> {
    /// Picks the variables out of `LIST VAR`'s (name, value) pairs.
    pub fn from_list(list: &'a [(String, String)]) -> Self {
        let mut v = Vars::default();
        for (k, val) in list {
            let slot = match k.as_str() {
                "ups.status" => &mut v.status,
                "ups.alarm" => &mut v.alarm,
                "battery.charge" => &mut v.charge,
                "battery.charge.low" => &mut v.charge_low,
                "battery.charge.warning" => &mut v.charge_warning,
                _ => continue,
            };
            *slot = Some(val.as_str());
        }
        v
    }
}

/// One poll's outcome.
#[derive(Clone, Copy, Debug)]
pub enum Reading<'a> {
    Vars(Vars<'a>),
    /// upsd answered `ERR code` (with our message for it).
    Unavailable {
        code: &'a str,
        message: &'a str,
    },
}

/// The numbers a poll keeps for the setup page and /metrics, by NUT variable name.
pub const READINGS: [&str; 9] = [
    "battery.charge",
    "battery.runtime",
    "battery.voltage",
    "input.voltage",
    "output.voltage",
    "ups.load",
    "ups.realpower",
    "ups.temperature",
    "input.frequency",
];
/// Bytes kept of the maker's and the model's names.
pub const MAX_NAME: usize = 64;

/// A poll's numbers and the UPS's names: fixed size, replaced whole by each poll.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    pub values: [Option<f64>; READINGS.len()],
    pub mfr: String,
    pub model: String,
}

impl Readings {
    /// Picks the numbers and names out of `LIST VAR`'s (name, value) pairs; a value that is not
    /// a finite number is left out.
    pub fn from_list(list: &[(String, String)]) -> Self {
        let mut r = Readings::default();
        for (k, v) in list {
            if let Some(i) = READINGS.iter().position(|n| n == k) {
                r.values[i] = v.trim().parse::<f64>().ok().filter(|x| x.is_finite());
            } else if k == "ups.mfr" || (k == "device.mfr" && r.mfr.is_empty()) {
                r.mfr = bounded(v.trim(), MAX_NAME);
            } else if k == "ups.model" || (k == "device.model" && r.model.is_empty()) {
                r.model = bounded(v.trim(), MAX_NAME);
            }
        }
        r
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        READINGS
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.values[i])
    }
}

fn percent(v: Option<&str>) -> Option<u8> {
    let x: f64 = v?.trim().parse().ok()?;
    x.is_finite().then(|| x.round().clamp(0.0, 100.0) as u8)
}

/// What is known of one UPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsState {
    pub data: Data,
    pub flags: Flags,
    /// Status words Power Snitch does not know.
    pub other: String,
    pub alarm: String,
    pub charge: Option<u8>,
    pub band: Option<Band>,
    pub low: u8,
    pub warning: u8,
    /// When the status words last changed (seconds since the epoch; 0 before the first reading).
    pub since: u64,
    /// When the last reading came (seconds since the epoch).
    pub updated: u64,
    /// Whether a reading with data ever came: after that, an outage of upsd or of the driver
    /// is compared against the last known state, never logged as a first reading again.
    pub seen: bool,
}

/// The code kept while the driver's data is not there yet (`ups.status` is only `WAIT`).
pub const WAITING: &str = "WAIT";

impl Default for UpsState {
    fn default() -> Self {
        UpsState {
            data: Data::Unknown,
            flags: Flags::default(),
            other: String::new(),
            alarm: String::new(),
            charge: None,
            band: None,
            low: DEFAULT_LOW,
            warning: DEFAULT_WARNING,
            since: 0,
            updated: 0,
            seen: false,
        }
    }
}

impl UpsState {
    /// The status as upsd would write it (known words first), for reports.
    pub fn status_text(&self) -> String {
        let mut s: String = self.flags.words().collect::<Vec<_>>().join(" ");
        if !self.other.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&self.other);
        }
        s
    }

    /// Takes a reading; appends to `out` what changed, each change once.
    pub fn observe(&mut self, reading: Reading, now: u64, out: &mut Vec<Note>) {
        self.updated = now;
        let vars = match reading {
            Reading::Unavailable { code, message } => {
                if self.data != Data::Unavailable(code.to_string()) {
                    out.push(unavailable(code, message));
                    self.data = Data::Unavailable(bounded(code, 40));
                }
                return;
            }
            Reading::Vars(v) => v,
        };
        let mut other = String::new();
        let flags = Flags::parse(vars.status.unwrap_or(""), &mut other);
        if flags == Flags::only("WAIT") && other.is_empty() && self.seen {
            // upsd or the driver restarted and the driver's data is not there yet: what the
            // UPS does is unknown for a moment, not changed. The last known state stays.
            if self.data != Data::Unavailable(WAITING.into()) {
                out.push(note(
                    Info,
                    format!(
                        "the driver's data is not there yet (WAIT); last known status {}",
                        self.status_text()
                    ),
                ));
                self.data = Data::Unavailable(WAITING.into());
            }
            return;
        }
        let first = !self.seen;
        if let Data::Unavailable(code) = &self.data {
            out.push(note(Info, format!("upsd has data again (was {code})")));
        }
        self.data = Data::Ok;
        self.seen = true;
        let alarm = bounded(vars.alarm.unwrap_or("").trim(), MAX_STATE_TEXT);
        self.low = percent(vars.charge_low).unwrap_or(DEFAULT_LOW);
        self.warning = percent(vars.charge_warning)
            .unwrap_or(DEFAULT_WARNING)
            .max(self.low);
        let charge = percent(vars.charge);
        let band = charge.map(|c| {
            let raw = classify(c, self.low, self.warning);
            match self.band {
                Some(prev) if raw > prev => {
                    let risen = classify(c.saturating_sub(HYSTERESIS), self.low, self.warning);
                    risen.max(prev)
                }
                _ => raw,
            }
        });

        if first {
            self.since = now;
            out.push(first_note(flags, &other, &alarm, charge, band, self));
        } else {
            if flags != self.flags || other != self.other {
                self.since = now;
            }
            self.status_notes(flags, &other, &alarm, out);
            if let (Some(c), Some(b), Some(prev)) = (charge, band, self.band) {
                if b != prev {
                    out.push(self.band_note(c, prev, b));
                }
            }
        }
        self.flags = flags;
        self.other = other;
        self.alarm = alarm;
        self.charge = charge;
        self.band = band;
    }

    fn status_notes(&self, flags: Flags, other: &str, alarm: &str, out: &mut Vec<Note>) {
        for (i, f) in FLAGS.iter().enumerate() {
            let (was, is) = (self.flags.0 & (1 << i) != 0, flags.0 & (1 << i) != 0);
            match (was, is) {
                (false, true) if f.word == "ALARM" && !alarm.is_empty() => {
                    out.push(note(f.set_level, format!("alarm (ALARM): {alarm}")))
                }
                (false, true) => out.push(note(f.set_level, format!("{} ({})", f.set, f.word))),
                (true, false) => out.push(note(
                    f.cleared_level,
                    format!("{} ({} cleared)", f.cleared, f.word),
                )),
                (true, true) if f.word == "ALARM" && alarm != self.alarm && !alarm.is_empty() => {
                    out.push(note(f.set_level, format!("alarm now: {alarm}")))
                }
                _ => {}
            }
        }
        if other != self.other {
            let text = if other.is_empty() {
                format!("status words {} gone", self.other)
            } else {
                format!("status words Power Snitch does not know: {other}")
            };
            out.push(note(Info, text));
        }
    }

    fn band_note(&self, c: u8, prev: Band, now: Band) -> Note {
        let (low, warn) = (self.low, self.warning);
        match now {
            Band::Low => note(
                Error,
                format!("battery charge {c}% is at or below the low threshold {low}%"),
            ),
            Band::Warning if prev == Band::Normal => note(
                Warn,
                format!("battery charge {c}% is at or below the warning threshold {warn}%"),
            ),
            Band::Warning => note(
                Info,
                format!("battery charge {c}% is above the low threshold {low}% again"),
            ),
            Band::Normal => note(
                Info,
                format!("battery charge {c}% is above the warning threshold {warn}% again"),
            ),
        }
    }
}

fn unavailable(code: &str, message: &str) -> Note {
    let (level, text) = match code {
        "DRIVER-NOT-CONNECTED" => (
            Error,
            "DRIVER-NOT-CONNECTED: upsd has no connection to the UPS's driver, so nothing is known of the UPS (is the driver running? `upsdrvctl start`)".to_string(),
        ),
        "DATA-STALE" => (
            Error,
            "DATA-STALE: the driver sends no fresh data (is the UPS plugged in and answering?)"
                .to_string(),
        ),
        "UNKNOWN-UPS" => (
            Error,
            "upsd does not serve this UPS (UNKNOWN-UPS): check nut_device_name against ups.conf"
                .to_string(),
        ),
        _ => (Warn, format!("upsd answered {code}: {message}")),
    };
    note(level, bounded(&text, MAX_STATE_TEXT * 2))
}

/// The note for the first reading: the whole state, at the level of its worst part.
fn first_note(
    flags: Flags,
    other: &str,
    alarm: &str,
    charge: Option<u8>,
    band: Option<Band>,
    s: &UpsState,
) -> Note {
    let mut level = Info;
    let mut parts: Vec<String> = Vec::new();
    for (i, f) in FLAGS.iter().enumerate() {
        if flags.0 & (1 << i) != 0 {
            level = level.min(f.set_level);
            if f.word == "ALARM" && !alarm.is_empty() {
                parts.push(format!("alarm: {alarm}"));
            } else {
                parts.push(f.set.to_string());
            }
        }
    }
    if !other.is_empty() {
        parts.push(format!("unknown status words {other}"));
    }
    if let Some(c) = charge {
        let mut p = format!("battery {c}%");
        match band {
            Some(Band::Low) => {
                level = level.min(Error);
                p.push_str(&format!(" (at or below the low threshold {}%)", s.low));
            }
            Some(Band::Warning) => {
                level = level.min(Warn);
                p.push_str(&format!(
                    " (at or below the warning threshold {}%)",
                    s.warning
                ));
            }
            _ => {}
        }
        parts.push(p);
    }
    let mut words: Vec<&str> = flags.words().collect();
    if !other.is_empty() {
        words.push(other);
    }
    let status = if words.is_empty() {
        "(no ups.status)".to_string()
    } else {
        words.join(" ")
    };
    note(level, format!("status {status}: {}", parts.join(", ")))
}

/// The retry policy of one upsd connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after a loss, `delay` apart (the settings' `nut_retry_count`)...
    pub count: u32,
    /// (the settings' `nut_retry_delay`)...
    pub delay: Duration,
    /// ...then pauses doubling from `delay` (at least 1 s) up to this.
    pub cap: Duration,
}

/// The shortest pause between attempts, so a retry delay of 0 does not spin.
pub const MIN_PAUSE: Duration = Duration::from_millis(100);

/// Where a connection to upsd stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Never connected yet.
    Starting,
    Up,
    /// Failed `failures` times in a row, retrying per the policy.
    Retrying {
        failures: u32,
    },
    /// Past the policy's attempts: pausing `pause` before each attempt.
    BackingOff {
        failures: u32,
        pause: Duration,
    },
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Starting => "connecting",
            LinkState::Up => "connected",
            LinkState::Retrying { .. } => "retrying",
            LinkState::BackingOff { .. } => "backing-off",
        }
    }
}

/// One upsd connection's state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub state: LinkState,
    pub policy: RetryPolicy,
    /// The last failure's text, bounded.
    pub last_error: String,
    /// When the state last changed between up and down (seconds since the epoch).
    pub since: u64,
    /// Whether the connection was ever up (then a new connection is a restored one).
    pub was_up: bool,
}

impl Link {
    pub fn new(policy: RetryPolicy, now: u64) -> Self {
        Link {
            state: LinkState::Starting,
            policy,
            last_error: String::new(),
            since: now,
            was_up: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }

    /// A connection (and its first request) succeeded.
    pub fn connected(&mut self, now: u64) -> Option<Note> {
        let n = match self.state {
            LinkState::Up => return None,
            LinkState::Starting => note(Info, "connected to upsd".to_string()),
            LinkState::Retrying { failures } | LinkState::BackingOff { failures, .. } => {
                let secs = now.saturating_sub(self.since);
                let what = if self.was_up {
                    "connection to upsd restored"
                } else {
                    "connected to upsd"
                };
                note(
                    Info,
                    format!("{what} after {secs} s ({failures} failed attempt(s))"),
                )
            }
        };
        self.was_up = true;
        self.state = LinkState::Up;
        self.since = now;
        Some(n)
    }

    /// A connection attempt failed, or a connection broke and an immediate reconnect failed.
    /// Returns how long to wait before the next attempt, and what to log (only on a change of
    /// state, never for each failed attempt).
    pub fn failed(&mut self, now: u64, error: &str) -> (Duration, Option<Note>) {
        self.last_error = bounded(error, MAX_STATE_TEXT);
        let failures = match self.state {
            LinkState::Starting | LinkState::Up => 1,
            LinkState::Retrying { failures } | LinkState::BackingOff { failures, .. } => {
                failures.saturating_add(1)
            }
        };
        let mut out = match self.state {
            LinkState::Up => {
                self.since = now;
                Some(note(Warn, format!("connection to upsd lost: {error}")))
            }
            LinkState::Starting => {
                self.since = now;
                Some(note(Warn, format!("cannot connect to upsd: {error}")))
            }
            _ => None,
        };
        let p = self.policy;
        if failures <= p.count {
            self.state = LinkState::Retrying { failures };
            return (p.delay.max(MIN_PAUSE), out);
        }
        let pause = match self.state {
            LinkState::BackingOff { pause, .. } => (pause * 2).min(p.cap),
            _ => {
                let base = p.delay.max(Duration::from_secs(1)).min(p.cap);
                if out.is_none() {
                    out = Some(note(
                        Warn,
                        format!(
                            "upsd still unreachable after {failures} attempts: retrying with pauses doubling up to {} s ({error})",
                            p.cap.as_secs()
                        ),
                    ));
                }
                (base * 2).min(p.cap)
            }
        };
        self.state = LinkState::BackingOff { failures, pause };
        (pause, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_monitor_keeps_the_readings_that_are_numbers() {
        let list: Vec<(String, String)> = [
            ("battery.charge", "87"),
            ("battery.runtime", " 1200 "),
            ("input.voltage", "230.5"),
            ("ups.load", "NaN"),
            ("output.voltage", "n/a"),
            ("device.model", "Other"),
            ("ups.model", &"M".repeat(200)),
            ("ups.mfr", "CPS"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = Readings::from_list(&list);
        assert_eq!(r.get("battery.charge"), Some(87.0));
        assert_eq!(r.get("battery.runtime"), Some(1200.0));
        assert_eq!(r.get("input.voltage"), Some(230.5));
        assert_eq!(r.get("ups.load"), None);
        assert_eq!(r.get("output.voltage"), None);
        assert_eq!(r.get("no.such"), None);
        assert_eq!(r.mfr, "CPS");
        assert!(r.model.len() <= MAX_NAME && r.model.starts_with("MMM"));
    }

    fn vars<'a>(status: &'a str, charge: Option<&'a str>) -> Vars<'a> {
        Vars {
            status: Some(status),
            charge,
            ..Vars::default()
        }
    }

    /// Feeds readings in turn; returns every note as `LEVEL text`.
    fn check(readings: &[Reading], expected: &[&[&str]]) {
        let mut s = UpsState::default();
        let mut all = Vec::new();
        for (t, r) in readings.iter().enumerate() {
            let mut out = Vec::new();
            s.observe(*r, t as u64, &mut out);
            all.push(
                out.iter()
                    .map(|n| format!("{} {}", n.level, n.text))
                    .collect::<Vec<_>>(),
            );
        }
        let expected: Vec<Vec<String>> = expected
            .iter()
            .map(|e| e.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn agent_monitor_logs_each_status_change_once() {
        check(
            &[
                Reading::Vars(vars("OL CHRG", Some("100"))),
                Reading::Vars(vars("OL CHRG", Some("100"))),
                Reading::Vars(vars("OB DISCHRG", Some("99"))),
                Reading::Vars(vars("OB DISCHRG LB", Some("99"))),
                Reading::Vars(vars("OL", Some("99"))),
            ],
            &[
                &["INFO status OL CHRG: on line power, charging, battery 100%"],
                &[],
                &[
                    "INFO no longer on line power (OL cleared)",
                    "WARN on battery: utility power is gone (OB)",
                    "INFO not charging (CHRG cleared)",
                    "INFO discharging (DISCHRG)",
                ],
                &["ERROR low battery: shutdown is near (LB)"],
                &[
                    "INFO on line power (OL)",
                    "INFO off battery (OB cleared)",
                    "INFO battery no longer low (LB cleared)",
                    "INFO not discharging (DISCHRG cleared)",
                ],
            ],
        );
    }

    #[test]
    fn agent_monitor_alarm_text_and_unknown_words() {
        let alarm = |text| {
            Reading::Vars(Vars {
                status: Some("OL ALARM"),
                alarm: Some(text),
                ..Vars::default()
            })
        };
        check(
            &[
                Reading::Vars(vars("OL", None)),
                alarm("Replace battery!"),
                alarm("Replace battery!"),
                alarm("Fan failure"),
                Reading::Vars(vars("OL NEWWORD", None)),
            ],
            &[
                &["INFO status OL: on line power"],
                &["WARN alarm (ALARM): Replace battery!"],
                &[],
                &["WARN alarm now: Fan failure"],
                &[
                    "INFO alarm cleared (ALARM cleared)",
                    "INFO status words Power Snitch does not know: NEWWORD",
                ],
            ],
        );
    }

    #[test]
    fn agent_monitor_driver_gone_and_back() {
        let gone = Reading::Unavailable {
            code: "DRIVER-NOT-CONNECTED",
            message: "x",
        };
        let stale = Reading::Unavailable {
            code: "DATA-STALE",
            message: "x",
        };
        let mut s = UpsState::default();
        let mut out = Vec::new();
        s.observe(Reading::Vars(vars("OL", Some("90"))), 0, &mut out);
        out.clear();
        s.observe(gone, 1, &mut out);
        s.observe(gone, 2, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].level, Level::Error);
        assert!(out[0].text.starts_with("DRIVER-NOT-CONNECTED"));
        out.clear();
        s.observe(stale, 3, &mut out);
        assert!(out[0].text.starts_with("DATA-STALE"));
        out.clear();
        // Back, and what changed meanwhile.
        s.observe(Reading::Vars(vars("OB", Some("90"))), 4, &mut out);
        let texts: Vec<&str> = out.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "upsd has data again (was DATA-STALE)",
                "no longer on line power (OL cleared)",
                "on battery: utility power is gone (OB)"
            ]
        );
        assert_eq!(s.since, 4);
    }

    #[test]
    fn agent_monitor_charge_thresholds_with_hysteresis() {
        let r = |c| Reading::Vars(vars("OB", Some(c)));
        let with_low = |c| {
            Reading::Vars(Vars {
                status: Some("OB"),
                charge: Some(c),
                charge_low: Some("30"),
                ..Vars::default()
            })
        };
        check(
            &[
                r("80"),
                r("51"),
                r("50"),
                r("51"),
                r("52"),
                r("53"),
                r("20"),
                r("23"),
            ],
            &[
                &["WARN status OB: on battery: utility power is gone, battery 80%"],
                &[],
                &["WARN battery charge 50% is at or below the warning threshold 50%"],
                &[],
                &[],
                &["INFO battery charge 53% is above the warning threshold 50% again"],
                &["ERROR battery charge 20% is at or below the low threshold 20%"],
                &["INFO battery charge 23% is above the low threshold 20% again"],
            ],
        );
        // The UPS's own battery.charge.low is the low threshold.
        check(
            &[with_low("40"), with_low("30")],
            &[
                &["WARN status OB: on battery: utility power is gone, battery 40% (at or below the warning threshold 50%)"],
                &["ERROR battery charge 30% is at or below the low threshold 30%"],
            ],
        );
    }

    #[test]
    fn agent_monitor_flags_parse_bounded() {
        let mut other = String::new();
        let long = "X".repeat(100);
        let status = format!("OL {long} {long} CHRG");
        let f = Flags::parse(&status, &mut other);
        assert!(f.has("OL") && f.has("CHRG") && !f.has("OB"));
        assert!(other.len() < MAX_STATE_TEXT);
        assert_eq!(f.words().collect::<Vec<_>>(), ["OL", "CHRG"]);
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            count: 2,
            delay: Duration::from_secs(5),
            cap: Duration::from_secs(60),
        }
    }

    #[test]
    fn agent_link_retries_per_policy_then_backs_off_to_the_cap() {
        let mut l = Link::new(policy(), 0);
        assert_eq!(l.connected(1).unwrap().text, "connected to upsd");
        assert_eq!(l.connected(2), None);
        let (wait, n) = l.failed(3, "refused");
        assert_eq!(wait, Duration::from_secs(5));
        assert_eq!(n.unwrap().text, "connection to upsd lost: refused");
        let (wait, n) = l.failed(8, "refused");
        assert_eq!((wait, n), (Duration::from_secs(5), None));
        let (wait, n) = l.failed(13, "refused");
        assert_eq!(wait, Duration::from_secs(10));
        assert!(n
            .unwrap()
            .text
            .starts_with("upsd still unreachable after 3 attempts"));
        let waits: Vec<u64> = (0..5)
            .map(|i| {
                let (w, n) = l.failed(20 + i, "refused");
                assert_eq!(n, None, "one note per state change, not per attempt");
                w.as_secs()
            })
            .collect();
        assert_eq!(waits, [20, 40, 60, 60, 60]);
        assert_eq!(
            l.connected(100).unwrap().text,
            "connection to upsd restored after 97 s (8 failed attempt(s))"
        );
        assert_eq!(l.since, 100);
    }

    #[test]
    fn agent_link_first_connection_and_zero_retries() {
        let mut l = Link::new(
            RetryPolicy {
                count: 0,
                delay: Duration::ZERO,
                cap: Duration::from_secs(60),
            },
            0,
        );
        let (wait, n) = l.failed(0, "timed out");
        assert_eq!(n.unwrap().text, "cannot connect to upsd: timed out");
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(l.state.as_str(), "backing-off");
    }

    #[test]
    fn agent_link_says_how_long_the_connection_was_down() {
        let mut l = Link::new(policy(), 0);
        l.failed(10, "refused");
        l.failed(15, "refused");
        assert_eq!(
            l.connected(42).unwrap().text,
            "connected to upsd after 32 s (2 failed attempt(s))"
        );
        l.failed(50, "reset");
        assert_eq!(
            l.connected(53).unwrap().text,
            "connection to upsd restored after 3 s (1 failed attempt(s))"
        );
    }

    #[test]
    fn agent_monitor_a_restart_that_waits_for_the_driver_is_not_a_new_power_failure() {
        let gone = Reading::Unavailable {
            code: "DRIVER-NOT-CONNECTED",
            message: "x",
        };
        check(
            &[
                Reading::Vars(vars("OB LB", Some("15"))),
                gone,
                Reading::Vars(vars("WAIT", None)),
                Reading::Vars(vars("WAIT", None)),
                Reading::Vars(vars("OB LB", Some("15"))),
                Reading::Vars(vars("WAIT", None)),
                Reading::Vars(vars("OL", Some("15"))),
            ],
            &[
                &["ERROR status OB LB: on battery: utility power is gone, low battery: shutdown is near, battery 15% (at or below the low threshold 20%)"],
                &["ERROR DRIVER-NOT-CONNECTED: upsd has no connection to the UPS's driver, so nothing is known of the UPS (is the driver running? `upsdrvctl start`)"],
                &["INFO the driver's data is not there yet (WAIT); last known status OB LB"],
                &[],
                &["INFO upsd has data again (was WAIT)"],
                &["INFO the driver's data is not there yet (WAIT); last known status OB LB"],
                &[
                    "INFO upsd has data again (was WAIT)",
                    "INFO on line power (OL)",
                    "INFO off battery (OB cleared)",
                    "INFO battery no longer low (LB cleared)",
                ],
            ],
        );
        // Before any data, WAIT is the first reading, as upsd says it.
        check(
            &[
                Reading::Vars(vars("WAIT", None)),
                Reading::Vars(vars("OL", Some("90"))),
            ],
            &[
                &["INFO status WAIT: waiting for the driver's first data"],
                &[
                    "INFO on line power (OL)",
                    "INFO the driver's data arrived (WAIT cleared)",
                ],
            ],
        );
    }
}
