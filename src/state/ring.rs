//! The agent's memory of what happened: a fixed-size ring of events with bounded text, so the
//! agent's memory does not grow with its uptime.

use std::collections::VecDeque;

use log::Level;

/// Events the ring keeps; the oldest goes when a new one comes.
pub const CAPACITY: usize = 256;
/// Bytes of an event's text (and of its source) kept; longer text is cut with `…`.
pub const MAX_TEXT: usize = 240;
pub const MAX_SOURCE: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Counts from 1 since the agent started; a gap tells a reader that events were dropped.
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub level: Level,
    /// What the event is about: a UPS, an upsd address, a file, `agent`.
    pub source: String,
    pub text: String,
}

pub struct Ring {
    events: VecDeque<Event>,
    next_seq: u64,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            events: VecDeque::with_capacity(CAPACITY),
            next_seq: 1,
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, `…` marking the cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 3);
    out.push_str(&s[..end]);
    out.push('…');
    out
}

impl Ring {
    pub fn push(&mut self, time: u64, level: Level, source: &str, text: &str) {
        if self.events.len() == CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            seq: self.next_seq,
            time,
            level,
            source: bounded(source, MAX_SOURCE),
            text: bounded(text, MAX_TEXT),
        });
        self.next_seq += 1;
    }

    /// The last `n` events, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Event> {
        self.events.iter().skip(self.events.len().saturating_sub(n))
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ring_keeps_the_last_events_and_bounds_text() {
        let mut r = Ring::default();
        for i in 0..(CAPACITY as u64 + 10) {
            r.push(i, Level::Info, "ups1", &"x".repeat(1000));
        }
        assert_eq!(r.len(), CAPACITY);
        let first = r.last(CAPACITY).next().unwrap();
        assert_eq!(first.seq, 11);
        assert!(first.text.len() <= MAX_TEXT);
        assert!(first.text.ends_with('…'));
        let last: Vec<u64> = r.last(3).map(|e| e.seq).collect();
        assert_eq!(
            last,
            [
                CAPACITY as u64 + 8,
                CAPACITY as u64 + 9,
                CAPACITY as u64 + 10
            ]
        );
        assert_eq!(r.last(10_000).count(), CAPACITY);
    }

    #[test]
    fn agent_ring_cuts_on_character_boundaries() {
        let s = "é".repeat(200);
        let b = bounded(&s, 11);
        assert!(b.len() <= 11, "{b}");
        assert!(b.ends_with('…'));
        assert_eq!(bounded("short", 11), "short");
    }
}
