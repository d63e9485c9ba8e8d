//! The agent's decisions, sans I/O: what a upsd connection does next (connect, poll a UPS, or
//! wait), whether a failed poll reconnects at once or gives the connection up to the back-off
//! of [`crate::state::monitor::Link`], when each UPS is polled next, which upsd connections a settings
//! change restarts and which it leaves alone, and when a recheck runs. Each is a function of
//! state, an event and `now`, all passed in.
//!
//! **Architecture invariant:** nothing here reads a socket, a file or a clock; the loops in
//! `agent::mod` only wait for the next event, ask these functions what to do, and do it.

use std::time::Duration;

use tokio::time::Instant;

use super::watch::Pending;
use crate::settings::model::{Secret, Settings};
use crate::state::UpsSlot;
use crate::upsd::target::Target;
use crate::upsd::tls::TlsMode;

/// Longest pause between reconnection attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// How long file events settle before the files are read again (editors write in steps).
pub const SETTLE: Duration = Duration::from_millis(150);
/// Shortest time between two rechecks asked on the control socket: requests arriving while one
/// runs, or within this time after it, share the next run and its answer.
pub const RECHECK_GAP: Duration = Duration::from_secs(1);
/// Immediate reconnections after a poll failed for the transport (upsd drops idle clients and
/// restarts: one immediate reconnect is not a loss).
pub const RECONNECTS_PER_POLL: u32 = 1;

/// `host:port` as the agent names a upsd.
pub fn address(host: &str, port: u16) -> String {
    Target {
        ups: None,
        host: host.to_string(),
        port,
    }
    .address()
}

/// What decides a upsd connection; a change reconnects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub host: String,
    pub port: u16,
    pub retry_count: u32,
    pub retry_delay: u32,
    pub tls: TlsMode,
    pub credentials: Option<(String, Secret)>,
}

/// One connection per upsd; the first UPS entry for it gives the retry policy, TLS mode and
/// credentials.
pub fn connections(settings: &Settings) -> Vec<Params> {
    let mut wanted: Vec<Params> = Vec::new();
    for u in &settings.ups {
        if wanted
            .iter()
            .any(|p| p.host == u.upsd_host && p.port == u.upsd_port)
        {
            continue;
        }
        wanted.push(Params {
            host: u.upsd_host.clone(),
            port: u.upsd_port,
            retry_count: u.nut_retry_count,
            retry_delay: u.nut_retry_delay,
            tls: u.tls,
            credentials: u.nut_username.clone().zip(u.nut_password.clone()),
        });
    }
    wanted
}

/// What a settings change does to the running upsd connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restart {
    /// Indexes of running connections left alone (they are woken to see new poll times).
    pub keep: Vec<usize>,
    /// Indexes of running connections stopped: upsd gone from the settings, or its connection
    /// settings changed.
    pub stop: Vec<usize>,
    /// Connections started (new, or replacing a stopped one).
    pub start: Vec<Params>,
}

/// Which connections a change from `running` to `wanted` keeps, stops and starts. A connection
/// whose parameters are all unchanged is kept, whatever else changed (poll intervals, UPSes
/// added or removed on the same upsd).
pub fn restarts(running: &[Params], wanted: &[Params]) -> Restart {
    let mut r = Restart::default();
    for (i, p) in running.iter().enumerate() {
        if wanted.contains(p) && !running[..i].contains(p) {
            r.keep.push(i);
        } else {
            r.stop.push(i);
        }
    }
    for p in wanted {
        if !r.keep.iter().any(|&i| running[i] == *p) && !r.start.contains(p) {
            r.start.push(p.clone());
        }
    }
    r
}

/// The UPS slots the settings call for: existing ones kept with their state (a new poll
/// interval counts from the last poll), new ones due now. Appends what to log as (source,
/// text).
pub fn slots(
    mut old: Vec<UpsSlot>,
    settings: &Settings,
    now: Instant,
    notes: &mut Vec<(String, String)>,
) -> Vec<UpsSlot> {
    let mut slots = Vec::with_capacity(settings.ups.len());
    for u in &settings.ups {
        let upsd = address(&u.upsd_host, u.upsd_port);
        let interval = Duration::from_secs(u64::from(u.poll_interval));
        match old
            .iter()
            .position(|s| s.name == u.nut_device_name && s.upsd == upsd)
        {
            Some(i) => {
                let mut s = old.remove(i);
                if s.poll_interval != u.poll_interval {
                    s.poll_interval = u.poll_interval;
                    s.due = s.last_poll.map_or(now, |t| t + interval);
                }
                slots.push(s);
            }
            None => {
                notes.push((
                    u.nut_device_name.clone(),
                    format!(
                        "monitoring through upsd at {upsd}, every {} s",
                        u.poll_interval
                    ),
                ));
                slots.push(UpsSlot::at(&u.nut_device_name, &upsd, u.poll_interval, now));
            }
        }
    }
    for s in old {
        notes.push((s.name, "no longer monitored".into()));
    }
    slots
}

/// What a upsd connection does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do before this time (or a wake-up).
    Wait(Instant),
    Connect,
    /// Poll this UPS (the first that is due).
    Poll(String),
}

/// The next step of the connection to `address`: down, it connects when the next attempt is
/// due; up, it polls the first UPS that is due, else waits for the earliest.
pub fn upsd_step(
    up: bool,
    next_attempt: Instant,
    ups: &[UpsSlot],
    address: &str,
    now: Instant,
) -> Step {
    if !up {
        return if now >= next_attempt {
            Step::Connect
        } else {
            Step::Wait(next_attempt)
        };
    }
    let mine = ups.iter().filter(|u| u.upsd == address);
    if let Some(u) = mine.clone().filter(|u| u.due <= now).min_by_key(|u| u.due) {
        return Step::Poll(u.name.clone());
    }
    Step::Wait(mine.map(|u| u.due).min().unwrap_or(now + BACKOFF_CAP))
}

/// What a poll's outcome calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterPoll {
    /// upsd answered (variables or an `ERR`): the connection is up.
    Answered,
    /// The transport failed: reconnect now and poll again.
    ReconnectNow,
    /// The transport failed again: the connection is down, the retry policy decides when.
    Lost,
}

/// After a poll: `transport_failed` says whether the socket failed (not upsd refusing),
/// `reconnects` how many immediate reconnections this poll already made.
pub fn after_poll(transport_failed: bool, reconnects: u32) -> AfterPoll {
    match (transport_failed, reconnects < RECONNECTS_PER_POLL) {
        (false, _) => AfterPoll::Answered,
        (true, true) => AfterPoll::ReconnectNow,
        (true, false) => AfterPoll::Lost,
    }
}

/// When the UPS polled at `done` is due again: one interval after its last due time, or after
/// `done` when the poll ran late (no burst of catch-up polls).
pub fn next_due(due: Instant, interval: Duration, done: Instant) -> Instant {
    let next = due + interval;
    if next <= done {
        done + interval
    } else {
        next
    }
}

/// When a recheck asked at `now` runs: with the one already scheduled, else at once unless the
/// last ran less than [`RECHECK_GAP`] ago.
pub fn recheck_at(last: Option<Instant>, scheduled: Option<Instant>, now: Instant) -> Instant {
    if let Some(at) = scheduled {
        return at;
    }
    match last {
        Some(t) if t + RECHECK_GAP > now => t + RECHECK_GAP,
        _ => now,
    }
}

/// When pending file events are read: the first event of a burst starts the settle time, later
/// ones do not move it.
pub fn settle_at(current: Option<Instant>, pending: &Pending, now: Instant) -> Option<Instant> {
    match current {
        Some(at) => Some(at),
        None if pending.nut || pending.settings => Some(now + SETTLE),
        None => None,
    }
}

/// How a recheck's summary line is logged: `None` for debug only (not in the event ring).
/// The first check and a change are worth an event; an unchanged recheck asked on the control
/// socket is not (a flood of them must not fill the log or the ring); one after a file event
/// or SIGHUP is, since someone changed something.
pub fn summary_level(first: bool, changed: bool, asked: bool, errors: usize) -> Option<log::Level> {
    if asked && !first && !changed {
        return None;
    }
    Some(if errors > 0 {
        log::Level::Warn
    } else {
        log::Level::Info
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::model::UpsEntry;

    fn params(host: &str, port: u16) -> Params {
        Params {
            host: host.into(),
            port,
            retry_count: 3,
            retry_delay: 5,
            tls: TlsMode::Auto,
            credentials: None,
        }
    }

    #[test]
    fn agent_decide_a_settings_change_restarts_only_the_connections_it_changes() {
        let a = params("10.0.0.1", 3493);
        let b = params("10.0.0.2", 3493);
        let c = params("10.0.0.3", 3493);
        let mut b2 = b.clone();
        b2.retry_delay = 9;
        let mut a_tls = a.clone();
        a_tls.credentials = Some(("mon".into(), Secret("pw".into())));
        let one = |p: &Params| vec![p.clone()];
        let check = |running: &[Params],
                     wanted: &[Params],
                     keep: &[usize],
                     stop: &[usize],
                     start: &[&Params]| {
            let r = restarts(running, wanted);
            assert_eq!(r.keep, keep, "keep");
            assert_eq!(r.stop, stop, "stop");
            assert_eq!(r.start.iter().collect::<Vec<_>>(), start, "start");
        };
        // Nothing changed: everything kept.
        check(
            &[a.clone(), b.clone()],
            &[a.clone(), b.clone()],
            &[0, 1],
            &[],
            &[],
        );
        // One upsd's retry delay changed: only it restarts.
        check(
            &[a.clone(), b.clone()],
            &[a.clone(), b2.clone()],
            &[0],
            &[1],
            &[&b2],
        );
        // New credentials reconnect; a new upsd starts; a removed one stops.
        check(
            &[a.clone(), b.clone()],
            &[a_tls.clone(), c.clone()],
            &[],
            &[0, 1],
            &[&a_tls, &c],
        );
        // From nothing, and to nothing.
        check(&[], &one(&a), &[], &[], &[&a]);
        check(&one(&a), &[], &[], &[0], &[]);
        // A duplicate running connection (never made, but harmless) is stopped.
        check(&[a.clone(), a.clone()], &one(&a), &[0], &[1], &[]);
    }

    fn entry(name: &str, host: &str, port: u16, interval: u32) -> UpsEntry {
        UpsEntry {
            upsd_host: host.into(),
            upsd_port: port,
            poll_interval: interval,
            ..UpsEntry::new(name)
        }
    }

    #[test]
    fn agent_decide_one_connection_per_upsd_with_the_first_entry_s_policy() {
        let mut first = entry("ups1", "10.0.0.1", 3493, 5);
        first.nut_retry_count = 7;
        let mut second = entry("ups2", "10.0.0.1", 3493, 5);
        second.nut_retry_count = 1;
        let s = Settings {
            ups: vec![first, second, entry("ups3", "10.0.0.1", 3494, 5)],
            ..Settings::default()
        };
        let c = connections(&s);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].port, c[0].retry_count), (3493, 7));
        assert_eq!(c[1].port, 3494);
    }

    #[test]
    fn agent_decide_slots_keep_state_and_move_the_next_poll_with_a_new_interval() {
        let t0 = Instant::now();
        let mut s = Settings {
            ups: vec![entry("ups1", "h", 3493, 5), entry("ups2", "h", 3493, 5)],
            ..Settings::default()
        };
        let mut notes = Vec::new();
        let mut v = slots(Vec::new(), &s, t0, &mut notes);
        assert_eq!(
            notes,
            [
                (
                    "ups1".to_string(),
                    "monitoring through upsd at h:3493, every 5 s".to_string()
                ),
                (
                    "ups2".to_string(),
                    "monitoring through upsd at h:3493, every 5 s".to_string()
                ),
            ]
        );
        assert!(v.iter().all(|u| u.due == t0), "new UPSes are due now");
        v[0].polls = 9;
        v[0].last_poll = Some(t0);
        v[0].due = t0 + Duration::from_secs(5);
        // ups1 now every 2 s, ups2 gone, ups3 new.
        s.ups = vec![entry("ups1", "h", 3493, 2), entry("ups3", "h", 3493, 5)];
        notes.clear();
        let t1 = t0 + Duration::from_secs(1);
        let v = slots(v, &s, t1, &mut notes);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].polls, v[0].poll_interval), (9, 2), "state kept");
        assert_eq!(v[0].due, t0 + Duration::from_secs(2), "from the last poll");
        assert_eq!(v[1].due, t1);
        assert_eq!(
            notes,
            [
                (
                    "ups3".to_string(),
                    "monitoring through upsd at h:3493, every 5 s".to_string()
                ),
                ("ups2".to_string(), "no longer monitored".to_string()),
            ]
        );
    }

    #[test]
    fn agent_decide_the_connection_connects_when_due_and_polls_what_is_due() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut a = UpsSlot::at("a", "h:1", 5, s(10));
        let b = UpsSlot::at("b", "h:1", 5, s(4));
        let other = UpsSlot::at("c", "h:2", 5, s(0));
        a.due = s(10);
        let ups = [a, b, other];
        // Down: wait for the attempt, then connect.
        assert_eq!(upsd_step(false, s(3), &ups, "h:1", s(1)), Step::Wait(s(3)));
        assert_eq!(upsd_step(false, s(3), &ups, "h:1", s(3)), Step::Connect);
        // Up: the other upsd's UPS is not ours; wait for our earliest.
        assert_eq!(upsd_step(true, s(0), &ups, "h:1", s(1)), Step::Wait(s(4)));
        assert_eq!(
            upsd_step(true, s(0), &ups, "h:1", s(4)),
            Step::Poll("b".into())
        );
        assert_eq!(
            upsd_step(true, s(0), &ups, "h:1", s(11)),
            Step::Poll("b".into()),
            "the most overdue first"
        );
        // No UPS on this upsd (yet): a long wait, woken by a settings change.
        assert_eq!(
            upsd_step(true, s(0), &ups, "h:9", s(1)),
            Step::Wait(s(1) + BACKOFF_CAP)
        );
    }

    #[test]
    fn agent_decide_a_broken_poll_reconnects_once_then_backs_off() {
        assert_eq!(after_poll(false, 0), AfterPoll::Answered);
        assert_eq!(
            after_poll(false, 1),
            AfterPoll::Answered,
            "an ERR after a reconnect"
        );
        assert_eq!(after_poll(true, 0), AfterPoll::ReconnectNow);
        assert_eq!(after_poll(true, 1), AfterPoll::Lost);
    }

    #[test]
    fn agent_decide_polls_keep_their_rhythm_without_catching_up() {
        let t0 = Instant::now();
        let i = Duration::from_secs(5);
        // On time: one interval after the due time, however long the poll took.
        assert_eq!(next_due(t0, i, t0 + Duration::from_millis(300)), t0 + i);
        // Late (upsd was slow for 12 s): one interval from now, not a burst.
        let late = t0 + Duration::from_secs(12);
        assert_eq!(next_due(t0, i, late), late + i);
    }

    #[test]
    fn agent_decide_rechecks_asked_together_share_one_run() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // The first request runs at once.
        assert_eq!(recheck_at(None, None, t0), t0);
        // One ran 300 ms ago: the next waits for the gap.
        assert_eq!(recheck_at(Some(t0), None, ms(300)), ms(1000));
        // One is scheduled: later requests join it.
        assert_eq!(recheck_at(Some(t0), Some(ms(1000)), ms(900)), ms(1000));
        // Long after the last: at once.
        assert_eq!(recheck_at(Some(t0), None, ms(5000)), ms(5000));
    }

    #[test]
    fn agent_decide_file_events_settle_from_the_first_of_a_burst() {
        let t0 = Instant::now();
        let nut = Pending {
            nut: true,
            settings: false,
        };
        assert_eq!(settle_at(None, &Pending::default(), t0), None);
        assert_eq!(settle_at(None, &nut, t0), Some(t0 + SETTLE));
        let later = t0 + Duration::from_millis(100);
        assert_eq!(settle_at(Some(t0 + SETTLE), &nut, later), Some(t0 + SETTLE));
    }

    #[test]
    fn agent_decide_an_unchanged_recheck_asked_on_the_socket_is_debug_only() {
        use log::Level::{Info, Warn};
        assert_eq!(summary_level(false, false, true, 0), None);
        assert_eq!(summary_level(false, false, true, 3), None);
        assert_eq!(summary_level(false, true, true, 3), Some(Warn));
        assert_eq!(summary_level(true, false, false, 0), Some(Info));
        assert_eq!(
            summary_level(false, false, false, 0),
            Some(Info),
            "after a file event"
        );
    }
}
