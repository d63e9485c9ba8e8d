//! The outbox: events waiting to be delivered, kept on disk so that none is lost when a
//! receiver is down or the agent is killed. The file format is sans I/O ([`encode`],
//! [`decode`]); [`Outbox`] keeps it in memory and writes it whole, crash-safe (a temporary file,
//! fsync, rename, as the settings are written), once per new event and once per delivery,
//! never per poll.
//!
//! Layout (little-endian): magic `PSOB`, format version (u16), then records. Each record is a
//! sync mark `0xA5 0x5A`, the payload's length (u32), its CRC-32 (u32) and the postcard
//! payload. The first record is the outbox's state (next id, events dropped, each channel's
//! last delivered id); every other record is one event. A damaged record is skipped (the
//! reader looks for the next sync mark whose record checks), so one flipped bit loses at most
//! that record, and a truncated file keeps every whole record before the cut.
//!
//! **Invariant:** [`decode`] never panics; any input gives what could be read and what was not.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::event::{Event, Kind, Severity};
use crate::settings::stored::crc32;

pub const MAGIC: &[u8; 4] = b"PSOB";
pub const VERSION: u16 = 1;
const SYNC: [u8; 2] = [0xA5, 0x5A];
const RECORD_HEADER: usize = 2 + 4 + 4;
/// Bounds: events kept, bytes of the file. Beyond either, the oldest events are dropped (and
/// counted: the next delivery says how many).
pub const MAX_EVENTS: usize = 256;
pub const MAX_BYTES: usize = 64 * 1024;
/// Channels whose progress is kept.
pub const MAX_CHANNELS: usize = 16;
const MAX_RECORD: usize = 4096;

/// An event with the id the outbox gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Increasing, never reused in one outbox file.
    pub seq: u64,
    /// A stable id the receivers can drop duplicates by: `ps-<creation ms in hex>-<seq>`.
    pub id: String,
    pub event: Event,
}

/// Stored form of the state record (format version 1).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Clone, Default)]
struct StateV1 {
    next_seq: u64,
    /// Made when the file was first written: part of each id, so a new file's ids differ
    /// from an old one's.
    epoch_ms: u64,
    dropped: u64,
    /// (channel name, last seq delivered to it).
    cursors: Vec<(String, u64)>,
    /// Event records that follow (so a file cut between records is noticed too).
    count: u32,
}

/// Stored form of an event (format version 1).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct EventV1 {
    seq: u64,
    /// The id receivers saw (kept whole, so it survives a lost state record).
    id: String,
    kind: u8,
    severity: u8,
    source: String,
    text: String,
    at: u64,
}

/// What was read of an outbox file, and what was not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub next_seq: u64,
    pub epoch_ms: u64,
    pub dropped: u64,
    pub cursors: Vec<(String, u64)>,
    pub events: Vec<Queued>,
    /// Each problem, with the byte offset where it was found.
    pub problems: Vec<String>,
}

fn id_of(epoch_ms: u64, seq: u64) -> String {
    format!("ps-{epoch_ms:x}-{seq}")
}

fn record(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&SYNC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The file's bytes.
pub fn encode(d: &Decoded) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let state = StateV1 {
        next_seq: d.next_seq,
        epoch_ms: d.epoch_ms,
        dropped: d.dropped,
        cursors: d.cursors.clone(),
        count: d.events.len() as u32,
    };
    record(&mut out, &postcard::to_allocvec(&state).unwrap_or_default());
    for q in &d.events {
        let e = EventV1 {
            seq: q.seq,
            id: q.id.clone(),
            kind: q.event.kind.code(),
            severity: q.event.severity.code(),
            source: q.event.source.clone(),
            text: q.event.text.clone(),
            at: q.event.at,
        };
        record(&mut out, &postcard::to_allocvec(&e).unwrap_or_default());
    }
    out
}

/// The record at `at`, when one whole record with a matching checksum is there.
fn record_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let head = bytes.get(at..at + RECORD_HEADER)?;
    if head[..2] != SYNC {
        return None;
    }
    let len = le32(&head[2..6]) as usize;
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
    (crc32(payload) == le32(&head[6..10])).then_some(payload)
}

/// Reads an outbox file: every record that checks, and a sentence for each that does not.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    if bytes.len() < 6 || &bytes[..4] != MAGIC {
        d.problems
            .push("not an outbox file (wrong magic bytes or too short)".into());
        return d;
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        d.problems.push(format!(
            "format version {version} is not the one this program knows ({VERSION})"
        ));
        return d;
    }
    let mut at = 6;
    let mut first = true;
    let mut state_seen = false;
    let mut count = 0usize;
    while at < bytes.len() {
        let Some(payload) = record_at(bytes, at) else {
            // Damaged or cut: look for the next record that checks.
            let next = (at + 1..bytes.len()).find(|&i| record_at(bytes, i).is_some());
            match next {
                Some(n) => {
                    d.problems.push(format!(
                        "bytes {at} to {n} are damaged (a record's checksum or length is wrong); skipped"
                    ));
                    at = n;
                    first = false;
                    continue;
                }
                None => {
                    d.problems.push(format!(
                        "the file is cut or damaged from byte {at} on ({} bytes); the records before are kept",
                        bytes.len() - at
                    ));
                    break;
                }
            }
        };
        at += RECORD_HEADER + payload.len();
        if first {
            first = false;
            if let Ok(s) = postcard::from_bytes::<StateV1>(payload) {
                d.next_seq = s.next_seq;
                d.epoch_ms = s.epoch_ms;
                d.dropped = s.dropped;
                d.cursors = s.cursors.into_iter().take(MAX_CHANNELS).collect();
                count = s.count as usize;
                state_seen = true;
                continue;
            }
        }
        match postcard::from_bytes::<EventV1>(payload) {
            Ok(e) => {
                let (Some(kind), Some(severity)) =
                    (Kind::from_code(e.kind), Severity::from_code(e.severity))
                else {
                    d.problems
                        .push(format!("event {} has an unknown kind or severity", e.seq));
                    continue;
                };
                if d.events.last().is_some_and(|l| l.seq >= e.seq) {
                    d.problems
                        .push(format!("event {} is out of order; skipped", e.seq));
                    continue;
                }
                let id = if e.id.is_empty() || e.id.len() > 64 {
                    String::new()
                } else {
                    e.id
                };
                d.events.push(Queued {
                    seq: e.seq,
                    id,
                    event: Event::new(kind, severity, &e.source, e.text, e.at),
                });
                if d.events.len() >= MAX_EVENTS {
                    break;
                }
            }
            Err(e) => d.problems.push(format!("a record cannot be read: {e}")),
        }
    }
    if !state_seen {
        d.problems.push(
            "the outbox's state record is lost: every kept event is sent again (receivers drop what they had by its id)"
                .into(),
        );
    }
    // Never reuse a seq, whatever the state record said.
    let last = d.events.last().map_or(0, |e| e.seq);
    d.next_seq = d.next_seq.max(last + 1).max(1);
    for q in &mut d.events {
        if q.id.is_empty() {
            q.id = id_of(d.epoch_ms, q.seq);
        }
    }
    if state_seen && d.problems.is_empty() && d.events.len() < count {
        d.problems.push(format!(
            "the file is cut: {} of its {count} events are there",
            d.events.len()
        ));
    }
    d
}

/// The outbox in memory, and its file.
pub struct Outbox {
    path: PathBuf,
    d: Decoded,
    /// The channels configured now (others' cursors are forgotten at the next write).
    channels: Vec<String>,
}

impl Outbox {
    /// Reads the file (missing: empty); returns the outbox and what to log about it.
    pub fn open(path: &Path, now_ms: u64) -> (Outbox, Vec<String>) {
        let mut notes = Vec::new();
        let d = match std::fs::read(path) {
            Ok(bytes) => {
                let d = decode(&bytes);
                for p in &d.problems {
                    notes.push(format!("{}: {p}", path.display()));
                }
                d
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Decoded {
                next_seq: 1,
                epoch_ms: now_ms,
                ..Decoded::default()
            },
            Err(e) => {
                notes.push(format!(
                    "cannot read {}: {e}; starting an empty outbox",
                    path.display()
                ));
                Decoded::default()
            }
        };
        let mut d = d;
        if d.epoch_ms == 0 {
            d.epoch_ms = now_ms;
        }
        d.next_seq = d.next_seq.max(1);
        let o = Outbox {
            path: path.to_path_buf(),
            d,
            channels: Vec::new(),
        };
        (o, notes)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets which channels are configured. A channel new to the outbox starts after the events
    /// already there (it is not sent old news); a channel gone is forgotten.
    pub fn set_channels(&mut self, names: &[String]) {
        self.channels = names.iter().take(MAX_CHANNELS).cloned().collect();
        let start = self.d.next_seq - 1;
        for n in &self.channels {
            if !self.d.cursors.iter().any(|(c, _)| c == n) {
                self.d.cursors.push((n.clone(), start));
            }
        }
        let keep = &self.channels;
        self.d.cursors.retain(|(c, _)| keep.contains(c));
        self.trim();
    }

    pub fn events(&self) -> &[Queued] {
        &self.d.events
    }

    pub fn dropped(&self) -> u64 {
        self.d.dropped
    }

    /// The last seq delivered to `channel`.
    pub fn cursor(&self, channel: &str) -> u64 {
        self.d
            .cursors
            .iter()
            .find(|(c, _)| c == channel)
            .map_or(self.d.next_seq - 1, |(_, s)| *s)
    }

    /// The first event after `channel`'s cursor that `wants` takes; the events it skips count
    /// as delivered when it acknowledges a later one.
    pub fn next_for(&self, channel: &str, wants: impl Fn(&Event) -> bool) -> Option<&Queued> {
        let after = self.cursor(channel);
        self.d
            .events
            .iter()
            .find(|q| q.seq > after && wants(&q.event))
    }

    /// `channel` wants none of the events left: its cursor moves past them (in memory; the
    /// next write keeps it).
    pub fn pass(&mut self, channel: &str) {
        let last = self.d.events.last().map(|q| q.seq);
        if let (Some(last), Some(c)) = (last, self.d.cursors.iter_mut().find(|(c, _)| c == channel))
        {
            c.1 = c.1.max(last);
        }
        self.trim();
    }

    /// Whether `channel` has nothing it wants left.
    pub fn idle(&self, channel: &str, wants: impl Fn(&Event) -> bool) -> bool {
        self.next_for(channel, wants).is_none()
    }

    /// Adds an event (when a channel is configured) and writes the file; returns the queued
    /// event, or the write's error (the event stays in memory and goes out when it can).
    pub fn push(&mut self, event: Event) -> Result<Option<Queued>, String> {
        if self.channels.is_empty() {
            return Ok(None);
        }
        let seq = self.d.next_seq;
        self.d.next_seq += 1;
        let q = Queued {
            seq,
            id: id_of(self.d.epoch_ms, seq),
            event,
        };
        self.d.events.push(q.clone());
        self.bound();
        self.write().map(|()| Some(q))
    }

    /// `channel` received event `seq`: moves its cursor, drops events every channel has, and
    /// writes the file.
    pub fn ack(&mut self, channel: &str, seq: u64) -> Result<(), String> {
        if let Some(c) = self.d.cursors.iter_mut().find(|(c, _)| c == channel) {
            c.1 = c.1.max(seq);
        }
        self.trim();
        self.write()
    }

    /// Events every configured channel has moved past are no longer kept.
    fn trim(&mut self) {
        let min = self.d.cursors.iter().map(|(_, s)| *s).min();
        match min {
            Some(m) => self.d.events.retain(|q| q.seq > m),
            None => self.d.events.clear(),
        }
    }

    /// Drops the oldest events beyond the bounds, counting them, and puts a notice saying how
    /// many in their place.
    fn bound(&mut self) {
        let record_len =
            |q: &Queued| RECORD_HEADER + 32 + q.event.source.len() + q.event.text.len();
        let mut size = encode(&self.d).len();
        let mut dropped = 0u64;
        while self.d.events.len() >= MAX_EVENTS || (self.d.events.len() > 1 && size > MAX_BYTES) {
            let gone = self.d.events.remove(0);
            size = size.saturating_sub(record_len(&gone));
            if gone.event.kind != Kind::Dropped {
                dropped += 1;
            }
        }
        if dropped == 0 {
            return;
        }
        self.d.dropped += dropped;
        // The notice takes the oldest place (the seq of the first kept event minus one, which
        // no channel has seen).
        let first = self.d.events.first().map_or(self.d.next_seq, |q| q.seq);
        let seq = first - 1;
        if self
            .d
            .events
            .first()
            .is_some_and(|q| q.event.kind == Kind::Dropped)
        {
            self.d.events.remove(0);
        }
        let text = format!(
            "the outbox was full: {} older event(s) were dropped undelivered ({} in all)",
            dropped, self.d.dropped
        );
        let at = self.d.events.first().map_or(0, |q| q.event.at);
        self.d.events.insert(
            0,
            Queued {
                seq,
                id: id_of(self.d.epoch_ms, seq),
                event: Event::new(Kind::Dropped, Severity::Warning, "outbox", text, at),
            },
        );
        // Channels past the notice's place would not see it: move them back just before it.
        for c in &mut self.d.cursors {
            if c.1 >= seq {
                continue;
            }
            c.1 = seq - 1;
        }
    }

    /// Writes the file whole: a temporary file, fsync, rename, fsync of the directory.
    fn write(&self) -> Result<(), String> {
        write_atomic(&self.path, &encode(&self.d))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event::new(
            Kind::OnBattery,
            Severity::Warning,
            "ups@h:1",
            format!("event {n}"),
            1000 + n,
        )
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ps-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn texts(d: &Decoded) -> Vec<String> {
        d.events.iter().map(|q| q.event.text.clone()).collect()
    }

    #[test]
    fn notify_outbox_round_trips_and_keeps_ids_across_restarts() {
        let d = dir("round");
        let path = d.join("outbox");
        let (mut o, notes) = Outbox::open(&path, 0x1234);
        assert!(notes.is_empty());
        o.set_channels(&["a".into(), "b".into()]);
        let q1 = o.push(ev(1)).unwrap().unwrap();
        let q2 = o.push(ev(2)).unwrap().unwrap();
        assert_eq!((q1.id.as_str(), q2.id.as_str()), ("ps-1234-1", "ps-1234-2"));
        o.ack("a", 1).unwrap();
        // "Restart": the same ids, a's progress kept, b still has both.
        let (mut o, notes) = Outbox::open(&path, 0x9999);
        assert!(notes.is_empty(), "{notes:?}");
        o.set_channels(&["a".into(), "b".into()]);
        assert_eq!(o.next_for("a", |_| true).unwrap().id, "ps-1234-2");
        assert_eq!(o.next_for("b", |_| true).unwrap().id, "ps-1234-1");
        o.ack("b", 2).unwrap();
        // Event 1 is delivered everywhere: gone from the file.
        let (o2, _) = Outbox::open(&path, 0);
        assert_eq!(o2.events().len(), 1);
        o.ack("a", 2).unwrap();
        let (mut o, _) = Outbox::open(&path, 0);
        assert!(o.events().is_empty());
        // A new seq never repeats an old one.
        o.set_channels(&["a".into(), "b".into()]);
        assert_eq!(o.push(ev(3)).unwrap().unwrap().id, "ps-1234-3");
        // A channel added later does not get old news.
        o.set_channels(&["a".into(), "b".into(), "c".into()]);
        assert!(o.idle("c", |_| true));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn notify_outbox_without_channels_keeps_nothing() {
        let d = dir("none");
        let (mut o, _) = Outbox::open(&d.join("outbox"), 1);
        assert_eq!(o.push(ev(1)), Ok(None));
        assert!(!d.join("outbox").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn notify_outbox_is_bounded_and_says_what_it_dropped() {
        let d = dir("bound");
        let (mut o, _) = Outbox::open(&d.join("outbox"), 1);
        o.set_channels(&["a".into()]);
        for n in 0..(MAX_EVENTS as u64 + 10) {
            o.push(ev(n)).unwrap();
        }
        assert!(o.events().len() <= MAX_EVENTS);
        assert_eq!(o.dropped(), 11);
        let first = &o.next_for("a", |_| true).unwrap().event;
        assert_eq!(first.kind, Kind::Dropped);
        assert!(first.text.contains("11 in all"), "{}", first.text);
        // Then the oldest kept event, in order.
        let seq = o.next_for("a", |_| true).unwrap().seq;
        o.ack("a", seq).unwrap();
        assert_eq!(o.next_for("a", |_| true).unwrap().event.text, "event 11");
        // Bytes bound too: long texts.
        let (mut o, _) = Outbox::open(&d.join("big"), 1);
        o.set_channels(&["a".into()]);
        for n in 0..200 {
            let mut e = ev(n);
            e.text = "x".repeat(super::super::event::MAX_TEXT);
            o.push(e).unwrap();
        }
        let len = std::fs::metadata(d.join("big")).unwrap().len() as usize;
        assert!(len <= MAX_BYTES + MAX_RECORD, "{len}");
        assert!(o.dropped() > 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    fn sample() -> (Vec<u8>, Decoded) {
        let d = Decoded {
            next_seq: 6,
            epoch_ms: 77,
            dropped: 0,
            cursors: vec![("a".into(), 0)],
            events: (1..=5)
                .map(|n| Queued {
                    seq: n,
                    id: id_of(77, n),
                    event: ev(n),
                })
                .collect(),
            problems: Vec::new(),
        };
        (encode(&d), d)
    }

    #[test]
    fn notify_outbox_every_truncation_keeps_the_whole_records() {
        let (bytes, full) = sample();
        assert_eq!(decode(&bytes), full);
        for cut in 0..bytes.len() {
            let d = decode(&bytes[..cut]);
            // Every event kept is one of the originals, in order, and none is made up.
            let t = texts(&d);
            assert!(texts(&full).starts_with(&t), "cut {cut}: {t:?}");
            if cut < bytes.len() {
                assert!(!d.problems.is_empty(), "cut {cut}");
            }
        }
        // Cut inside the last record: the four before are kept.
        let d = decode(&bytes[..bytes.len() - 3]);
        assert_eq!(d.events.len(), 4);
        assert!(
            d.problems[0].contains("cut or damaged from byte"),
            "{:?}",
            d.problems
        );
    }

    #[test]
    fn notify_outbox_every_bit_flip_loses_at_most_one_record() {
        let (bytes, full) = sample();
        for i in 6..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let d = decode(&b);
                // A flip in the state record loses the state, not the events.
                assert!(d.events.len() >= 4, "byte {i} bit {bit}: {:?}", d.problems);
                for q in &d.events {
                    assert!(full.events.contains(q), "byte {i} bit {bit}: made up {q:?}");
                }
                assert!(
                    !d.problems.is_empty(),
                    "byte {i} bit {bit}: flip not noticed"
                );
            }
        }
        // Garbage is refused with a sentence.
        assert!(decode(b"hello").problems[0].contains("not an outbox file"));
        assert!(decode(b"PSOB\x09\x00").problems[0].contains("format version 9"));
    }

    #[test]
    fn notify_outbox_opens_a_damaged_file_with_a_clear_note() {
        let d = dir("damaged");
        let path = d.join("outbox");
        let (mut bytes, _) = sample();
        let n = bytes.len();
        bytes[n - 5] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (mut o, notes) = Outbox::open(&path, 0);
        assert_eq!(o.events().len(), 4);
        assert!(
            notes[0].starts_with(&path.display().to_string()),
            "{notes:?}"
        );
        o.set_channels(&["a".into()]);
        assert_eq!(o.next_for("a", |_| true).unwrap().event.text, "event 1");
        let _ = std::fs::remove_dir_all(&d);
    }
}
