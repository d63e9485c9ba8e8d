//! Each UPS's history: battery charge, runtime, load and input voltage for the last 24 hours
//! at one-minute resolution and the last 7 days at ten minutes (lowest, average and highest of
//! the polls in each interval), whether the UPS was on battery, low or asking for a new battery
//! in it, and the last events about the UPS. Fixed-size rings allocated whole when a UPS is
//! first seen, so memory does not grow with uptime; saved to a small crash-safe file (postcard,
//! with a header and CRC-32 like the settings file) at most every few minutes and on stop, and
//! read back at start.
//!
//! Sans I/O except [`load`] and [`save`] at the bottom: time is passed in as seconds since the
//! epoch, so every rule (a new interval, a clock set back, a gap) is tested without sleeping.
//!
//! **Memory bound:** per UPS, [`MINUTES`] + [`TEN_MINUTES`] buckets of [`BUCKET_BYTES`] each
//! and at most [`EVENTS`] events of at most [`ring::MAX_TEXT`] bytes: [`MAX_BYTES_PER_UPS`]
//! (about 98 KiB), for at most [`MAX_UPS`] UPSes.

use std::collections::VecDeque;
use std::fmt::Write as _;

use log::Level;
use serde::{Deserialize, Serialize};

use super::monitor::{Data, Readings, UpsState};
use super::ring::{self, bounded};
use crate::json::{self, Object};
use crate::settings::stored::crc32;

/// The NUT variables the history keeps, in this order everywhere (buckets, file, JSON).
pub const METRICS: [&str; 4] = [
    "battery.charge",
    "battery.runtime",
    "ups.load",
    "input.voltage",
];
/// Stored value = reading × scale, rounded, as a `u16`: charge and load in 0.1 %, runtime in
/// seconds (at most 65,534 s, 18 h 12 min: a longer runtime is kept as that), voltage in 0.1 V.
const SCALE: [f64; 4] = [10.0, 1.0, 10.0, 10.0];
/// A metric without a reading in the bucket.
pub const GAP: u16 = u16::MAX;

/// One-minute buckets kept: 24 hours.
pub const MINUTES: usize = 24 * 60;
/// Ten-minute buckets kept: 7 days.
pub const TEN_MINUTES: usize = 7 * 24 * 6;
/// Events kept per UPS (the oldest goes).
pub const EVENTS: usize = 128;
/// The history is saved at most this often by default (seconds): 10 minutes.
pub const SAVE_EVERY: u64 = 600;
/// UPSes the history keeps (the first of the settings; an appliance watches one to four).
pub const MAX_UPS: usize = 16;

/// A bucket's marks: polled at all, and what the status said at least once.
pub const POLLED: u8 = 1;
pub const ON_BATTERY: u8 = 2;
pub const LOW_BATTERY: u8 = 4;
pub const REPLACE_BATTERY: u8 = 8;
/// upsd answered a poll with an error instead of data (driver stale, not connected).
pub const NO_DATA: u8 = 16;

/// One interval: per metric the lowest, average and highest reading (or [`GAP`]), and marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub values: [[u16; 3]; 4],
    pub marks: u8,
}

pub const BUCKET_BYTES: usize = std::mem::size_of::<Bucket>();

/// Per UPS at most this many bytes of memory: the buckets, the events (with their `String`s'
/// heap), the two accumulators and the UPS's name.
pub const MAX_BYTES_PER_UPS: usize = (MINUTES + TEN_MINUTES) * BUCKET_BYTES
    + EVENTS * (std::mem::size_of::<HistoryEvent>() + ring::MAX_TEXT)
    + std::mem::size_of::<UpsHistory>()
    + super::monitor::MAX_NAME * 4;

impl Bucket {
    pub const EMPTY: Bucket = Bucket {
        values: [[GAP; 3]; 4],
        marks: 0,
    };

    /// Metric `i`'s (lowest, average, highest) in its unit, or none for a gap.
    pub fn get(&self, i: usize) -> Option<(f64, f64, f64)> {
        let [lo, avg, hi] = self.values[i];
        if avg == GAP || lo == GAP || hi == GAP {
            return None;
        }
        let s = SCALE[i];
        Some((f64::from(lo) / s, f64::from(avg) / s, f64::from(hi) / s))
    }

    pub fn is_empty(&self) -> bool {
        self.marks == 0
    }
}

fn quantize(i: usize, v: f64) -> u16 {
    (v * SCALE[i]).round().clamp(0.0, f64::from(GAP - 1)) as u16
}

/// What one poll gives the history.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub values: [Option<f64>; 4],
    pub marks: u8,
}

impl Sample {
    /// The sample of a poll: the numbers of `readings`, the status words of `state`.
    pub fn of(state: &UpsState, readings: &Readings) -> Sample {
        let mut marks = POLLED;
        match state.data {
            Data::Ok => {
                for (word, mark) in [
                    ("OB", ON_BATTERY),
                    ("LB", LOW_BATTERY),
                    ("RB", REPLACE_BATTERY),
                ] {
                    if state.flags.has(word) {
                        marks |= mark;
                    }
                }
            }
            _ => marks |= NO_DATA,
        }
        let mut values = [None; 4];
        for (v, name) in values.iter_mut().zip(METRICS) {
            *v = readings.get(name).filter(|x| x.is_finite());
        }
        Sample { values, marks }
    }
}

/// The open bucket's running numbers.
#[derive(Clone, Copy, Debug)]
struct Acc {
    bucket: u64,
    n: [u32; 4],
    sum: [f64; 4],
    lo: [f64; 4],
    hi: [f64; 4],
    marks: u8,
}

impl Acc {
    fn new(bucket: u64) -> Acc {
        Acc {
            bucket,
            n: [0; 4],
            sum: [0.0; 4],
            lo: [f64::INFINITY; 4],
            hi: [f64::NEG_INFINITY; 4],
            marks: 0,
        }
    }

    /// Carries on a bucket from what it holds (after a restart within the same interval): its
    /// average counts as one reading.
    fn seeded(bucket: u64, b: &Bucket) -> Acc {
        let mut a = Acc::new(bucket);
        a.marks = b.marks;
        for i in 0..4 {
            if let Some((lo, avg, hi)) = b.get(i) {
                a.n[i] = 1;
                a.sum[i] = avg;
                a.lo[i] = lo;
                a.hi[i] = hi;
            }
        }
        a
    }

    fn add(&mut self, s: &Sample) {
        self.marks |= s.marks;
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = *v {
                self.n[i] += 1;
                self.sum[i] += v;
                self.lo[i] = self.lo[i].min(v);
                self.hi[i] = self.hi[i].max(v);
            }
        }
    }

    fn bucket(&self) -> Bucket {
        let mut b = Bucket {
            marks: self.marks,
            ..Bucket::EMPTY
        };
        for i in 0..4 {
            if self.n[i] > 0 {
                b.values[i] = [
                    quantize(i, self.lo[i]),
                    quantize(i, self.sum[i] / f64::from(self.n[i])),
                    quantize(i, self.hi[i]),
                ];
            }
        }
        b
    }
}

/// A ring of buckets of `step` seconds: bucket number `t / step` lives at `number % len`.
#[derive(Clone, Debug)]
pub struct Tier {
    step: u64,
    slots: Box<[Bucket]>,
    /// The newest bucket's number; none before the first sample.
    head: Option<u64>,
    acc: Option<Acc>,
}

impl Tier {
    pub fn new(step: u64, len: usize) -> Tier {
        Tier {
            step,
            // Filled with GAP (not zeroes), so the whole ring is in memory from the start.
            slots: vec![Bucket::EMPTY; len].into_boxed_slice(),
            head: None,
            acc: None,
        }
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn n(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, bucket: u64) -> usize {
        (bucket % self.n()) as usize
    }

    /// Empties the buckets numbered `from..=to` (at most the whole ring).
    fn clear(&mut self, from: u64, to: u64) {
        let count = to.saturating_sub(from).saturating_add(1).min(self.n());
        for k in 0..count {
            let i = self.index(from + k);
            self.slots[i] = Bucket::EMPTY;
        }
    }

    pub fn record(&mut self, t: u64, s: &Sample) {
        let b = t / self.step;
        let mut acc = match self.head {
            None => Acc::new(b),
            Some(h) if b > h => {
                self.clear(h + 1, b);
                Acc::new(b)
            }
            Some(h) => {
                if b < h {
                    // The clock was set back: what lies "in the future" goes.
                    self.clear(b + 1, h);
                }
                match self.acc {
                    Some(a) if a.bucket == b => a,
                    // After a restart (or the clock set back) within a bucket that holds
                    // readings already: carry on from them.
                    _ => Acc::seeded(b, &self.slots[self.index(b)]),
                }
            }
        };
        acc.add(s);
        let i = self.index(b);
        self.slots[i] = acc.bucket();
        self.acc = Some(acc);
        self.head = Some(b);
    }

    /// The bucket that starts at `start` (a multiple of the step), empty outside the window.
    fn at(&self, bucket: u64) -> Bucket {
        match self.head {
            Some(h) if bucket <= h && bucket + self.n() > h => self.slots[self.index(bucket)],
            _ => Bucket::EMPTY,
        }
    }

    /// The ring as seen at `now`: `len` buckets, oldest first, each with its start time; the
    /// last one holds `now`. Buckets nobody recorded (the agent stopped, upsd down) are empty.
    pub fn view(&self, now: u64) -> impl Iterator<Item = (u64, Bucket)> + '_ {
        let last = now / self.step;
        let first = (last + 1).saturating_sub(self.n());
        (first..=last).map(move |b| (b * self.step, self.at(b)))
    }
}

/// One event about a UPS, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    pub time: u64,
    pub level: Level,
    pub text: String,
}

/// One UPS's history.
#[derive(Clone, Debug)]
pub struct UpsHistory {
    pub name: String,
    pub minute: Tier,
    pub ten: Tier,
    pub events: VecDeque<HistoryEvent>,
}

impl UpsHistory {
    pub fn new(name: &str) -> UpsHistory {
        UpsHistory {
            name: bounded(name, super::monitor::MAX_NAME),
            minute: Tier::new(60, MINUTES),
            ten: Tier::new(600, TEN_MINUTES),
            events: VecDeque::with_capacity(EVENTS),
        }
    }

    pub fn record(&mut self, t: u64, s: &Sample) {
        self.minute.record(t, s);
        self.ten.record(t, s);
    }

    pub fn event(&mut self, time: u64, level: Level, text: &str) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(HistoryEvent {
            time,
            level,
            text: bounded(text, ring::MAX_TEXT),
        });
    }

    pub fn tier(&self, range: Range) -> &Tier {
        match range {
            Range::Day => &self.minute,
            Range::Week => &self.ten,
        }
    }
}

/// Which ring a view reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// The last 24 hours, one-minute buckets.
    Day,
    /// The last 7 days, ten-minute buckets.
    Week,
}

impl Range {
    /// `24h` or `7d`; anything else is none.
    pub fn parse(s: &str) -> Option<Range> {
        match s {
            "24h" | "day" => Some(Range::Day),
            "7d" | "week" => Some(Range::Week),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    pub fn seconds(self) -> u64 {
        match self {
            Range::Day => 86_400,
            Range::Week => 7 * 86_400,
        }
    }
}

/// Every UPS's history, and when it was last saved.
#[derive(Debug, Default)]
pub struct History {
    pub ups: Vec<UpsHistory>,
    /// Something was recorded since the last save.
    pub dirty: bool,
    /// When the history was last saved (or loaded): seconds since the epoch.
    pub saved_at: u64,
}

impl History {
    pub fn get(&self, name: &str) -> Option<&UpsHistory> {
        self.ups.iter().find(|u| u.name == name)
    }

    /// The UPS's history, made when first asked (none beyond [`MAX_UPS`]).
    fn entry(&mut self, name: &str) -> Option<&mut UpsHistory> {
        match self.ups.iter().position(|u| u.name == name) {
            Some(i) => Some(&mut self.ups[i]),
            None if self.ups.len() < MAX_UPS => {
                self.ups.push(UpsHistory::new(name));
                self.ups.last_mut()
            }
            None => None,
        }
    }

    /// One poll of the UPS `name` at `t`.
    pub fn record(&mut self, name: &str, t: u64, s: &Sample) {
        if let Some(u) = self.entry(name) {
            u.record(t, s);
            self.dirty = true;
        }
    }

    /// An event about the UPS `name` (events of level debug are not kept).
    pub fn event(&mut self, name: &str, t: u64, level: Level, text: &str) {
        if level > Level::Info {
            return;
        }
        if let Some(u) = self.entry(name) {
            u.event(t, level, text);
            self.dirty = true;
        }
    }

    /// Keeps only the UPSes named (those of the settings), in their order.
    pub fn retain(&mut self, names: &[&str]) {
        let before = self.ups.len();
        self.ups.retain(|u| names.contains(&u.name.as_str()));
        self.ups
            .sort_by_key(|u| names.iter().position(|n| *n == u.name));
        if self.ups.len() != before {
            self.dirty = true;
        }
    }

    /// Whether a save is due at `now`, saving at most every `every` seconds (0: only on stop).
    pub fn save_due(&self, now: u64, every: u64) -> bool {
        // A clock set back does not hold saving off until it catches up.
        self.dirty
            && every > 0
            && (now >= self.saved_at.saturating_add(every) || now < self.saved_at)
    }
}

// ---------------------------------------------------------------------------------------------
// The file: magic `PSNH`, format version (u16), payload length (u32), CRC-32 of the payload
// (u32), then postcard. Only non-empty runs of buckets are stored.

pub const MAGIC: &[u8; 4] = b"PSNH";
pub const VERSION: u16 = 1;
const HEADER: usize = 4 + 2 + 4 + 4;
/// Larger than any history this program writes ([`MAX_UPS`] full UPSes); beyond, not ours.
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

/// Format version 1.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct FileV1 {
    ups: Vec<UpsV1>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct UpsV1 {
    name: String,
    minute: TierV1,
    ten: TierV1,
    /// (time, level as 1 error .. 3 info, text)
    events: Vec<(u64, u8, String)>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct TierV1 {
    /// The newest bucket's number, none before the first sample.
    head: Option<u64>,
    runs: Vec<RunV1>,
}

/// Consecutive non-empty buckets from bucket number `start`: per bucket its marks, and 12
/// values (per metric lowest, average, highest).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct RunV1 {
    start: u64,
    marks: Vec<u8>,
    values: Vec<u16>,
}

fn tier_v1(t: &Tier) -> TierV1 {
    let mut runs: Vec<RunV1> = Vec::new();
    if let Some(h) = t.head {
        let first = (h + 1).saturating_sub(t.n());
        for b in first..=h {
            let bucket = t.slots[t.index(b)];
            if bucket.is_empty() {
                continue;
            }
            let run = match runs.last_mut() {
                Some(r) if r.start + r.marks.len() as u64 == b => r,
                _ => {
                    runs.push(RunV1 {
                        start: b,
                        marks: Vec::new(),
                        values: Vec::new(),
                    });
                    runs.last_mut().expect("just pushed")
                }
            };
            run.marks.push(bucket.marks);
            run.values.extend(bucket.values.iter().flatten());
        }
    }
    TierV1 { head: t.head, runs }
}

fn level_code(l: Level) -> u8 {
    l as u8
}

/// Why a history file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort(usize),
    BadMagic,
    UnknownVersion(u16),
    TooLong(usize),
    Truncated { expected: usize, got: usize },
    Checksum,
    Payload(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooShort(n) => write!(f, "{n} bytes is too short for a history file"),
            DecodeError::BadMagic => {
                write!(f, "not a Power Snitch history file (wrong magic bytes)")
            }
            DecodeError::UnknownVersion(v) => write!(
                f,
                "format version {v} is newer than this program knows ({VERSION})"
            ),
            DecodeError::TooLong(n) => {
                write!(f, "the payload length {n} is larger than a history can be")
            }
            DecodeError::Truncated { expected, got } => write!(
                f,
                "truncated: the payload should be {expected} bytes, the file has {got}"
            ),
            DecodeError::Checksum => write!(f, "the checksum does not match: the file is damaged"),
            DecodeError::Payload(e) => write!(f, "the content cannot be read: {e}"),
        }
    }
}

pub fn encode(h: &History) -> Vec<u8> {
    let file = FileV1 {
        ups: h
            .ups
            .iter()
            .map(|u| UpsV1 {
                name: u.name.clone(),
                minute: tier_v1(&u.minute),
                ten: tier_v1(&u.ten),
                events: u
                    .events
                    .iter()
                    .map(|e| (e.time, level_code(e.level), e.text.clone()))
                    .collect(),
            })
            .collect(),
    };
    let payload =
        postcard::to_allocvec(&file).expect("serializing plain data into memory cannot fail");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn tier_from(v: TierV1, step: u64, len: usize, what: &str) -> Result<Tier, DecodeError> {
    let mut t = Tier::new(step, len);
    let bad = |why: String| DecodeError::Payload(format!("{what}: {why}"));
    let Some(h) = v.head else {
        if v.runs.is_empty() {
            return Ok(t);
        }
        return Err(bad("buckets without a newest one".into()));
    };
    let first = (h + 1).saturating_sub(t.n());
    for r in v.runs {
        let n = r.marks.len() as u64;
        if r.values.len() != r.marks.len() * 12 {
            return Err(bad(format!(
                "{} values for {} buckets",
                r.values.len(),
                r.marks.len()
            )));
        }
        if r.start < first || r.start.checked_add(n).is_none_or(|end| end > h + 1) {
            return Err(bad(format!(
                "buckets {}..{} outside the window ending at {h}",
                r.start,
                r.start.saturating_add(n)
            )));
        }
        for (k, (marks, vals)) in r.marks.iter().zip(r.values.chunks_exact(12)).enumerate() {
            if *marks == 0 {
                return Err(bad("an empty bucket in a run".into()));
            }
            let mut b = Bucket {
                values: [[GAP; 3]; 4],
                marks: *marks,
            };
            for (i, m) in b.values.iter_mut().enumerate() {
                m.copy_from_slice(&vals[i * 3..i * 3 + 3]);
            }
            let i = t.index(r.start + k as u64);
            t.slots[i] = b;
        }
    }
    t.head = Some(h);
    Ok(t)
}

/// Reads a history file; never panics.
pub fn decode(bytes: &[u8]) -> Result<History, DecodeError> {
    if bytes.len() < HEADER {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let crc = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    if version == 0 || version > VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    if len > MAX_PAYLOAD {
        return Err(DecodeError::TooLong(len));
    }
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(DecodeError::Truncated {
            expected: len,
            got: payload.len(),
        });
    }
    if crc32(payload) != crc {
        return Err(DecodeError::Checksum);
    }
    let file: FileV1 =
        postcard::from_bytes(payload).map_err(|e| DecodeError::Payload(e.to_string()))?;
    if file.ups.len() > MAX_UPS {
        return Err(DecodeError::Payload(format!(
            "{} UPSes, more than the {MAX_UPS} a history keeps",
            file.ups.len()
        )));
    }
    let mut h = History::default();
    for u in file.ups {
        if h.get(&u.name).is_some() {
            return Err(DecodeError::Payload(format!("UPS `{}` twice", u.name)));
        }
        let mut out = UpsHistory::new(&u.name);
        out.minute = tier_from(u.minute, 60, MINUTES, &u.name)?;
        out.ten = tier_from(u.ten, 600, TEN_MINUTES, &u.name)?;
        let skip = u.events.len().saturating_sub(EVENTS);
        for (time, level, text) in u.events.into_iter().skip(skip) {
            let level = match level {
                1 => Level::Error,
                2 => Level::Warn,
                3 => Level::Info,
                _ => {
                    return Err(DecodeError::Payload(format!(
                        "{}: unknown event level {level}",
                        u.name
                    )))
                }
            };
            out.event(time, level, &text);
        }
        h.ups.push(out);
    }
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// JSON for `/api/history`.

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warning",
        _ => "info",
    }
}

/// The status words a bucket's marks stand for, as in `ups.status`.
pub fn mark_words(marks: u8) -> String {
    let mut w: Vec<&str> = Vec::new();
    for (m, word) in [
        (ON_BATTERY, "OB"),
        (LOW_BATTERY, "LB"),
        (REPLACE_BATTERY, "RB"),
    ] {
        if marks & m != 0 {
            w.push(word);
        }
    }
    w.join(" ")
}

fn number(out: &mut String, v: f64) {
    if v.fract() == 0.0 {
        let _ = write!(out, "{v:.0}");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn tier_json(t: &Tier, now: u64) -> String {
    let view: Vec<(u64, Bucket)> = t.view(now).collect();
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.num("start", view.first().map_or(0, |v| v.0))
        .num("step", t.step());
    for (i, name) in METRICS.iter().enumerate() {
        let mut list = String::from("[");
        for (k, (_, b)) in view.iter().enumerate() {
            if k > 0 {
                list.push(',');
            }
            match b.get(i) {
                Some((lo, avg, hi)) => {
                    list.push('[');
                    number(&mut list, lo);
                    list.push(',');
                    number(&mut list, avg);
                    list.push(',');
                    number(&mut list, hi);
                    list.push(']');
                }
                None => list.push_str("null"),
            }
        }
        list.push(']');
        o.raw(name, &list);
    }
    let status = json::array(view.iter().map(|(_, b)| {
        if b.marks & POLLED == 0 {
            "null".to_string()
        } else if b.marks & NO_DATA != 0 && b.values.iter().all(|v| v[1] == GAP) {
            "\"no data\"".to_string()
        } else {
            let mut s = String::new();
            json::string(&mut s, &mark_words(b.marks));
            s
        }
    }));
    o.raw("status", &status);
    o.end();
    out
}

/// `/api/history`: each UPS (or only `ups`), the ranges asked (both when none), its events.
pub fn json(h: &History, now: u64, range: Option<Range>, ups: Option<&str>) -> String {
    let list = json::array(
        h.ups
            .iter()
            .filter(|u| ups.is_none_or(|n| n == u.name))
            .map(|u| {
                let mut out = String::new();
                let mut o = Object::new(&mut out);
                o.str("name", &u.name);
                for r in [Range::Day, Range::Week] {
                    if range.is_none_or(|x| x == r) {
                        o.raw(r.as_str(), &tier_json(u.tier(r), now));
                    }
                }
                let since = now.saturating_sub(range.unwrap_or(Range::Week).seconds());
                let events = json::array(u.events.iter().filter(|e| e.time >= since).map(|e| {
                    let mut s = String::new();
                    let mut o = Object::new(&mut s);
                    o.num("time", e.time)
                        .str("level", level_str(e.level))
                        .str("text", &e.text);
                    o.end();
                    s
                }));
                o.raw("events", &events);
                o.end();
                out
            }),
    );
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", "true")
        .num("now", now)
        .raw("metrics", &json::strings(METRICS))
        .raw("units", &json::strings(["%", "s", "%", "V"]))
        .raw("ups", &list);
    o.end();
    out
}

// ---------------------------------------------------------------------------------------------
// The edge: the file on disk.

/// The history file next to the settings file: `DIR/history.bin`.
pub fn path(settings: &std::path::Path) -> std::path::PathBuf {
    settings
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("history.bin")
}

/// Reads the history file. No file: an empty history. A damaged one: an empty history, the
/// file moved aside to `NAME.damaged`, and the reason (for the log).
pub fn load(path: &std::path::Path) -> (History, Option<String>) {
    use std::io::Read;
    let read = std::fs::File::open(path).and_then(|f| {
        let mut bytes = Vec::new();
        f.take((HEADER + MAX_PAYLOAD + 1) as u64)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (History::default(), None),
        Err(e) => {
            return (
                History::default(),
                Some(format!(
                    "{}: {e}; starting with an empty history",
                    path.display()
                )),
            )
        }
    };
    match decode(&bytes) {
        Ok(h) => (h, None),
        Err(e) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".damaged");
            let kept = match std::fs::rename(path, &aside) {
                Ok(()) => format!("kept as {}", std::path::Path::new(&aside).display()),
                Err(err) => format!("cannot be moved aside: {err}"),
            };
            (
                History::default(),
                Some(format!(
                    "{}: {e}; starting with an empty history (the file is {kept})",
                    path.display()
                )),
            )
        }
    }
}

/// Writes the history whole: a new file (mode 0600), synced, renamed over the old one, the
/// directory synced. The old file stays until the new one is complete. Returns the bytes
/// written.
pub fn save(path: &std::path::Path, h: &History) -> Result<usize, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = encode(h);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    match written {
        Ok(()) => Ok(bytes.len()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(format!(
                "cannot save the history to {}: {e}; the file is unchanged",
                path.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(charge: f64, marks: u8) -> Sample {
        Sample {
            values: [Some(charge), Some(1200.0), Some(25.5), Some(230.4)],
            marks: POLLED | marks,
        }
    }

    type Charge = Option<(f64, f64, f64)>;

    /// (bucket start, charge (lo, avg, hi)) of the non-empty buckets of `t` seen at `now`.
    fn charges(t: &Tier, now: u64) -> Vec<(u64, Charge)> {
        t.view(now)
            .filter(|(_, b)| !b.is_empty())
            .map(|(s, b)| (s, b.get(0)))
            .collect()
    }

    #[test]
    fn history_buckets_keep_lowest_average_highest() {
        let mut t = Tier::new(60, 4);
        let base = 1_800_000_000 / 60 * 60;
        for (dt, c) in [(0, 80.0), (10, 90.0), (59, 100.0), (60, 50.0)] {
            t.record(base + dt, &sample(c, 0));
        }
        assert_eq!(
            charges(&t, base + 60),
            [
                (base, Some((80.0, 90.0, 100.0))),
                (base + 60, Some((50.0, 50.0, 50.0)))
            ]
        );
        let b = t.view(base + 60).last().unwrap().1;
        assert_eq!(b.get(1), Some((1200.0, 1200.0, 1200.0)));
        assert_eq!(b.get(3), Some((230.4, 230.4, 230.4)));
    }

    #[test]
    fn history_gaps_stay_gaps_and_old_buckets_go() {
        let mut t = Tier::new(60, 4);
        let base = 6000;
        t.record(base, &sample(10.0, 0));
        // Nothing for two minutes (the agent stopped), then a reading.
        t.record(base + 180, &sample(40.0, ON_BATTERY));
        let view: Vec<(u64, Bucket)> = t.view(base + 180).collect();
        assert_eq!(view.len(), 4);
        assert_eq!(view[0].0, base);
        assert!(view[1].1.is_empty() && view[2].1.is_empty());
        assert_eq!(view[3].1.marks, POLLED | ON_BATTERY);
        // Seen later, with nothing recorded since: the window moves on, the old buckets leave.
        assert_eq!(
            charges(&t, base + 300),
            [(base + 180, Some((40.0, 40.0, 40.0)))]
        );
        assert!(charges(&t, base + 180 + 240).is_empty());
        // A long silence clears the whole ring, whatever its size.
        t.record(base + 1_000_000, &sample(70.0, 0));
        assert_eq!(charges(&t, base + 1_000_000).len(), 1);
    }

    #[test]
    fn history_clock_set_back_drops_the_future() {
        let mut t = Tier::new(60, 10);
        t.record(6000, &sample(10.0, 0));
        t.record(6120, &sample(20.0, 0));
        t.record(6060, &sample(30.0, 0));
        assert_eq!(
            charges(&t, 6060),
            [
                (6000, Some((10.0, 10.0, 10.0))),
                (6060, Some((30.0, 30.0, 30.0)))
            ]
        );
        assert!(charges(&t, 6200).iter().all(|(s, _)| *s <= 6060));
    }

    #[test]
    fn history_missing_metric_is_a_gap_of_its_own() {
        let mut t = Tier::new(60, 3);
        let s = Sample {
            values: [Some(50.0), None, None, Some(0.0)],
            marks: POLLED | ON_BATTERY,
        };
        t.record(120, &s);
        let b = t.view(120).last().unwrap().1;
        assert_eq!(b.get(0), Some((50.0, 50.0, 50.0)));
        assert_eq!(b.get(1), None);
        assert_eq!(b.get(3), Some((0.0, 0.0, 0.0)));
        // Out-of-range readings are clamped to what a bucket holds, never wrapped.
        let mut t = Tier::new(60, 3);
        t.record(
            0,
            &Sample {
                values: [Some(-5.0), Some(1e9), None, None],
                marks: POLLED,
            },
        );
        let b = t.view(0).last().unwrap().1;
        assert_eq!(b.get(0), Some((0.0, 0.0, 0.0)));
        assert_eq!(b.get(1), Some((65534.0, 65534.0, 65534.0)));
    }

    fn full_history(t0: u64) -> History {
        let mut h = History::default();
        for k in 0..(8 * 86_400 / 30) {
            let t = t0 + k * 30;
            let c = (k % 100) as f64;
            let marks = if k % 7 == 0 { ON_BATTERY } else { 0 };
            h.record("ups1", t, &sample(c, marks));
            if k % 100 == 0 {
                h.event("ups1", t, Level::Warn, &"on battery ".repeat(40));
            }
        }
        h
    }

    #[test]
    fn history_file_round_trips() {
        let t0 = 1_800_000_000;
        let mut h = full_history(t0);
        h.record("ups2", t0 + 5, &sample(42.0, 0));
        let now = t0 + 8 * 86_400;
        let bytes = encode(&h);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.ups.len(), 2);
        for (a, b) in h.ups.iter().zip(&back.ups) {
            assert_eq!(a.name, b.name);
            for r in [Range::Day, Range::Week] {
                let x: Vec<_> = a.tier(r).view(now).collect();
                let y: Vec<_> = b.tier(r).view(now).collect();
                assert_eq!(x, y, "{} {r:?}", a.name);
            }
            assert_eq!(a.events, b.events);
        }
        assert_eq!(back.ups[0].events.len(), EVENTS);
        // A full UPS is small on disk: about 2 bytes a value (61 KB), and its events.
        assert!(bytes.len() < 100_000, "{} bytes", bytes.len());
        assert_eq!(json(&h, now, None, None), json(&back, now, None, None));
    }

    #[test]
    fn history_after_a_restart_goes_on_in_the_same_bucket() {
        let mut h = History::default();
        h.record("ups1", 600, &sample(80.0, 0));
        let mut back = decode(&encode(&h)).unwrap();
        back.record("ups1", 630, &sample(60.0, 0));
        let b = back.ups[0].minute.view(630).last().unwrap().1;
        assert_eq!(b.get(0), Some((60.0, 70.0, 80.0)));
    }

    #[test]
    fn history_every_truncation_and_bit_flip_is_refused() {
        let mut h = History::default();
        h.record("ups1", 600, &sample(80.0, ON_BATTERY));
        h.event("ups1", 600, Level::Warn, "on battery");
        let bytes = encode(&h);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode(&b).is_err(), "bit {i} flipped");
        }
    }

    #[test]
    fn history_payload_that_lies_is_refused_not_trusted() {
        let with_crc = |payload: Vec<u8>| {
            let mut out = Vec::new();
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&VERSION.to_le_bytes());
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            out
        };
        let run = |start, marks: Vec<u8>, values: usize| TierV1 {
            head: Some(10),
            runs: vec![RunV1 {
                start,
                marks,
                values: vec![1; values],
            }],
        };
        let empty = || TierV1 {
            head: None,
            runs: Vec::new(),
        };
        for (tier, why) in [
            (run(5, vec![1], 11), "11 values for 1 buckets"),
            (run(10, vec![1, 1], 24), "outside the window"),
            (run(u64::MAX, vec![1], 12), "outside the window"),
            (run(9, vec![0], 12), "an empty bucket"),
        ] {
            let file = FileV1 {
                ups: vec![UpsV1 {
                    name: "u".into(),
                    minute: tier,
                    ten: empty(),
                    events: Vec::new(),
                }],
            };
            let err = decode(&with_crc(postcard::to_allocvec(&file).unwrap())).unwrap_err();
            assert!(err.to_string().contains(why), "{err} for {why}");
        }
    }

    #[test]
    fn history_memory_is_bounded_and_allocated_whole() {
        let mut h = History::default();
        for i in 0..(MAX_UPS + 3) {
            h.record(&format!("ups{i}"), 0, &sample(1.0, 0));
        }
        assert_eq!(h.ups.len(), MAX_UPS);
        let u = &h.ups[0];
        assert_eq!(u.minute.len(), MINUTES);
        assert_eq!(u.ten.len(), TEN_MINUTES);
        assert_eq!(BUCKET_BYTES, 26);
        // 63,648 bytes of buckets, under 100 KiB in all per UPS.
        const { assert!(MAX_BYTES_PER_UPS < 100 * 1024) };
        let full = full_history(0);
        assert_eq!(full.ups[0].events.len(), EVENTS);
        assert!(full.ups[0]
            .events
            .iter()
            .all(|e| e.text.len() <= ring::MAX_TEXT));
        h.retain(&["ups3", "ups1"]);
        let names: Vec<&str> = h.ups.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["ups3", "ups1"]);
    }

    #[test]
    fn history_saves_at_most_every_interval() {
        let mut h = History {
            saved_at: 1000,
            ..History::default()
        };
        assert!(!h.save_due(5000, 600), "nothing recorded");
        h.record("ups1", 1001, &sample(1.0, 0));
        assert!(!h.save_due(1599, 600));
        assert!(h.save_due(1600, 600));
        assert!(!h.save_due(1_000_000, 0), "0: only on stop");
        assert!(h.save_due(10, 600), "the clock was set back");
    }

    #[test]
    fn history_sample_of_a_poll() {
        use super::super::monitor::{Reading, Vars};
        let mut st = UpsState::default();
        st.observe(
            Reading::Vars(Vars {
                status: Some("OB LB"),
                ..Vars::default()
            }),
            5,
            &mut Vec::new(),
        );
        let list: Vec<(String, String)> = [("battery.charge", "15"), ("ups.load", "nan")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Sample::of(&st, &Readings::from_list(&list));
        assert_eq!(s.values, [Some(15.0), None, None, None]);
        assert_eq!(s.marks, POLLED | ON_BATTERY | LOW_BATTERY);
        st.observe(
            Reading::Unavailable {
                code: "DATA-STALE",
                message: "stale",
            },
            6,
            &mut Vec::new(),
        );
        assert_eq!(
            Sample::of(&st, &Readings::default()).marks,
            POLLED | NO_DATA
        );
    }

    #[test]
    fn history_json_shows_gaps_as_null() {
        let t0 = 1_800_000_000;
        let mut h = History::default();
        h.record("ups1", t0 + 120, &sample(50.0, ON_BATTERY));
        h.event("ups1", t0 + 120, Level::Warn, "on battery");
        let j = json(&h, t0 + 180, Some(Range::Day), None);
        assert!(
            j.starts_with(r#"{"ok":true,"now":1800000180,"metrics":["battery.charge","#),
            "{j}"
        );
        assert!(j.contains(r#""battery.charge":[null,"#), "{j}");
        assert!(j.contains(r#"[50,50,50],null]"#), "{j}");
        assert!(
            j.contains(r#""status":[null,"#) && j.contains(r#""OB",null]"#),
            "{j}"
        );
        assert!(
            j.contains(r#""events":[{"time":1800000120,"level":"warning","text":"on battery"}]"#)
        );
        assert!(!j.contains("\"7d\""));
        assert!(json(&h, t0 + 180, None, Some("other")).contains(r#""ups":[]"#));
        let v: Vec<_> = h.ups[0].minute.view(t0 + 180).collect();
        assert_eq!(v.len(), MINUTES);
        assert_eq!(v.last().unwrap().0, t0 + 180);
    }
}
