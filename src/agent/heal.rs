//! Self-healing of NUT's drivers, sans I/O with `now` passed in (seconds): when a driver's data
//! stays stale (`DATA-STALE`) or it stays disconnected (`DRIVER-NOT-CONNECTED`) while its
//! device is there, it is restarted, with a back-off (30 s doubling to 30 min), at most a few
//! times an hour; past that cap the driver is given up (one critical line, no restart storm)
//! until it has been healthy for a while. After its device went and came back, a driver that
//! did not come back with it is restarted without waiting for the back-off.
//!
//! The agent feeds each poll's outcome ([`Health`]) and each device that came back
//! ([`Driver::replugged`]); it does what [`Driver::observe`] returns (through the apply path's
//! restart of one driver) and reports the restart's end with [`Driver::done`].

/// How eagerly drivers are restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A driver is restarted once its data has been missing this long (seconds).
    pub after: u64,
    /// The wait after the first restart; it doubles after each one...
    pub backoff: u64,
    /// ... up to this.
    pub backoff_cap: u64,
    /// Most restarts in any hour; one more is "given up".
    pub per_hour: usize,
    /// A driver healthy this long starts afresh (back-off, count, given up).
    pub reset_after: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            after: 30,
            backoff: 30,
            backoff_cap: 30 * 60,
            per_hour: 6,
            reset_after: 10 * 60,
        }
    }
}

/// The environment variables that shorten the policy's times (seconds; for tests).
pub const ENV_AFTER: &str = "POWER_SNITCH_HEAL_AFTER";
pub const ENV_BACKOFF: &str = "POWER_SNITCH_HEAL_BACKOFF";
pub const ENV_RESET: &str = "POWER_SNITCH_HEAL_RESET";
/// The most restarts an hour (tests: fewer, so giving up comes soon).
pub const ENV_PER_HOUR: &str = "POWER_SNITCH_HEAL_PER_HOUR";

impl Policy {
    /// The default policy with the times `var` gives (an unset or unreadable value keeps the
    /// default; 1 s at least).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Policy {
        let mut p = Policy::default();
        let get = |name: &str, default: u64| {
            var(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(default, |v| v.max(1))
        };
        p.after = get(ENV_AFTER, p.after);
        p.backoff = get(ENV_BACKOFF, p.backoff);
        p.backoff_cap = p.backoff_cap.max(p.backoff);
        p.reset_after = get(ENV_RESET, p.reset_after);
        p.per_hour = get(ENV_PER_HOUR, p.per_hour as u64).min(60) as usize;
        p
    }
}

/// What a poll says of a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// upsd has its data.
    Healthy,
    /// `DATA-STALE`.
    Stale,
    /// `DRIVER-NOT-CONNECTED`.
    Disconnected,
    /// Nothing to go by: not read yet, upsd down, another error, or its device is not there
    /// (restarting cannot help).
    Unknown,
}

/// Why a driver was restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Stale,
    Disconnected,
    /// Its device went and came back, and the driver did not come back with it.
    Replugged,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Stale, Reason::Disconnected, Reason::Replugged];

    /// The word in /metrics' `reason` label ([`crate::state::HEAL_REASONS`]).
    pub fn as_str(self) -> &'static str {
        crate::state::HEAL_REASONS[self.index()]
    }

    pub fn index(self) -> usize {
        match self {
            Reason::Stale => 0,
            Reason::Disconnected => 1,
            Reason::Replugged => 2,
        }
    }

    /// "data stale for 40 s", for the log and the page.
    pub fn describe(self, bad_for: u64) -> String {
        match self {
            Reason::Stale => format!("data stale for {bad_for} s"),
            Reason::Disconnected => format!("driver not connected to upsd for {bad_for} s"),
            Reason::Replugged => {
                format!("its device came back but the driver did not ({bad_for} s without data)")
            }
        }
    }
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Restart the driver; its data has been missing `bad_for` seconds.
    Restart {
        reason: Reason,
        bad_for: u64,
    },
    /// The cap is reached: stop restarting (said once).
    GiveUp {
        restarts: usize,
    },
    /// Data is back after restarts (said once per episode).
    Healed {
        restarts: u32,
    },
}

/// One driver's self-healing state: fixed size (the restart times are at most `per_hour`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Driver {
    /// Since when its data has been missing, and how.
    bad: Option<(Health, u64)>,
    healthy_since: Option<u64>,
    /// The restarts in the last hour.
    recent: Vec<u64>,
    /// The wait after the next restart (0: the policy's first).
    backoff: u64,
    /// No restart before this.
    next_at: u64,
    pub given_up: bool,
    /// A restart runs now.
    pub in_flight: bool,
    /// Restarts since data was last there (for "healed").
    episode: u32,
    /// Its device came back; the next restart is for that.
    replugged: bool,
    /// Restarts ever, per [`Reason::ALL`].
    pub restarts: [u64; 3],
}

impl Driver {
    /// Takes a poll's outcome at `now`.
    pub fn observe(&mut self, p: &Policy, health: Health, now: u64) -> Decision {
        match health {
            Health::Healthy => {
                self.bad = None;
                self.replugged = false;
                let since = *self.healthy_since.get_or_insert(now);
                if now.saturating_sub(since) >= p.reset_after {
                    self.recent.clear();
                    self.backoff = 0;
                    self.next_at = 0;
                    self.given_up = false;
                }
                if self.episode > 0 && !self.in_flight {
                    let restarts = std::mem::take(&mut self.episode);
                    return Decision::Healed { restarts };
                }
                Decision::Nothing
            }
            Health::Unknown => Decision::Nothing,
            Health::Stale | Health::Disconnected => {
                self.healthy_since = None;
                let since = match self.bad {
                    Some((_, since)) => since,
                    None => now,
                };
                self.bad = Some((health, since));
                if self.in_flight || self.given_up {
                    return Decision::Nothing;
                }
                let bad_for = now.saturating_sub(since);
                if bad_for < p.after || now < self.next_at {
                    return Decision::Nothing;
                }
                self.recent.retain(|t| now.saturating_sub(*t) < 3600);
                if self.recent.len() >= p.per_hour {
                    self.given_up = true;
                    return Decision::GiveUp {
                        restarts: self.recent.len(),
                    };
                }
                let reason = match (self.replugged, health) {
                    (true, _) => Reason::Replugged,
                    (false, Health::Stale) => Reason::Stale,
                    _ => Reason::Disconnected,
                };
                self.replugged = false;
                self.recent.push(now);
                let wait = if self.backoff == 0 {
                    p.backoff
                } else {
                    self.backoff
                };
                self.next_at = now + wait;
                self.backoff = wait.saturating_mul(2).min(p.backoff_cap);
                self.in_flight = true;
                self.episode += 1;
                self.restarts[reason.index()] += 1;
                Decision::Restart { reason, bad_for }
            }
        }
    }

    /// The restart ended (either way): the driver's data is judged afresh from `now`.
    pub fn done(&mut self, now: u64) {
        self.in_flight = false;
        if self.bad.is_some() {
            self.bad = self.bad.map(|(h, _)| (h, now));
        }
    }

    /// Its device came back at `now`: a driver still without data is restarted as soon as its
    /// data has been missing [`Policy::after`], without the back-off's wait.
    pub fn replugged(&mut self, now: u64) {
        self.replugged = true;
        self.next_at = self.next_at.min(now);
        if let Some((h, _)) = self.bad {
            self.bad = Some((h, now));
        }
    }

    /// The restarts in the hour before `now`.
    pub fn recent(&self, now: u64) -> usize {
        self.recent
            .iter()
            .filter(|t| now.saturating_sub(**t) < 3600)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    /// Feeds `polls` (time, health) and returns the decisions that were not `Nothing`, each
    /// with its time; every restart ends at once.
    fn run(p: &Policy, d: &mut Driver, polls: &[(u64, Health)]) -> Vec<(u64, Decision)> {
        let mut out = Vec::new();
        for &(t, h) in polls {
            let r = d.observe(p, h, t);
            if matches!(r, Decision::Restart { .. }) {
                d.done(t);
            }
            if r != Decision::Nothing {
                out.push((t, r));
            }
        }
        out
    }

    fn every(from: u64, to: u64, step: u64, h: Health) -> Vec<(u64, Health)> {
        (from..to).step_by(step as usize).map(|t| (t, h)).collect()
    }

    fn restart(reason: Reason, bad_for: u64) -> Decision {
        Decision::Restart { reason, bad_for }
    }

    #[test]
    fn stale_data_is_restarted_after_the_wait_and_healed_said_once() {
        let p = Policy::default();
        let mut d = Driver::default();
        let mut polls = every(0, 30, 5, Healthy);
        polls.extend(every(30, 65, 5, Stale));
        polls.extend(every(65, 80, 5, Healthy));
        assert_eq!(
            run(&p, &mut d, &polls),
            vec![
                (60, restart(Reason::Stale, 30)),
                (65, Decision::Healed { restarts: 1 })
            ]
        );
        assert_eq!(d.restarts, [1, 0, 0]);
    }

    #[test]
    fn a_failing_driver_backs_off_doubling_is_capped_and_given_up_once() {
        let p = Policy::default();
        let mut d = Driver::default();
        let got = run(&p, &mut d, &every(0, 4 * 3600, 5, Disconnected));
        let times: Vec<u64> = got.iter().map(|(t, _)| *t).collect();
        // 30 s to count, then waits of 30, 60, 120, 240, 480, 960 s; the seventh is refused.
        assert_eq!(times, vec![30, 60, 120, 240, 480, 960, 1920]);
        assert!(matches!(
            got[0].1,
            Decision::Restart {
                reason: Reason::Disconnected,
                ..
            }
        ));
        assert_eq!(got[6].1, Decision::GiveUp { restarts: 6 });
        assert!(d.given_up);
        assert_eq!(d.restarts, [0, 6, 0]);
        // Healthy for a while: it starts afresh, and can be restarted (and given up) again.
        let mut polls = every(4 * 3600, 4 * 3600 + 700, 5, Healthy);
        polls.extend(every(4 * 3600 + 700, 4 * 3600 + 755, 5, Stale));
        let got = run(&p, &mut d, &polls);
        assert_eq!(
            got,
            vec![
                (4 * 3600, Decision::Healed { restarts: 6 }),
                (4 * 3600 + 730, restart(Reason::Stale, 30))
            ]
        );
    }

    #[test]
    fn the_back_off_stops_at_its_cap_and_the_hour_caps_the_count() {
        let p = Policy {
            per_hour: 100,
            ..Policy::default()
        };
        let mut d = Driver::default();
        let got = run(&p, &mut d, &every(0, 3 * 3600, 10, Stale));
        let gaps: Vec<u64> = got.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert_eq!(&gaps[..7], &[30, 60, 120, 240, 480, 960, 1800]);
        assert!(gaps[7..].iter().all(|g| *g == 1800), "{gaps:?}");
    }

    #[test]
    fn nothing_is_restarted_without_a_reason() {
        let p = Policy::default();
        let mut d = Driver::default();
        // Unknown (upsd down, device gone) never restarts; short outages neither.
        let mut polls = every(0, 600, 5, Unknown);
        polls.extend(every(600, 620, 5, Stale));
        polls.extend(every(620, 640, 5, Healthy));
        polls.extend(every(640, 665, 5, Disconnected));
        assert_eq!(run(&p, &mut d, &polls), vec![]);
    }

    #[test]
    fn a_restart_running_is_not_started_again() {
        let p = Policy::default();
        let mut d = Driver::default();
        assert_eq!(d.observe(&p, Stale, 0), Decision::Nothing);
        assert_eq!(d.observe(&p, Stale, 30), restart(Reason::Stale, 30));
        assert_eq!(d.observe(&p, Stale, 500), Decision::Nothing);
        assert_eq!(d.observe(&p, Healthy, 501), Decision::Nothing);
        d.done(502);
        assert_eq!(
            d.observe(&p, Healthy, 503),
            Decision::Healed { restarts: 1 }
        );
        assert_eq!(d.observe(&p, Healthy, 508), Decision::Nothing);
    }

    #[test]
    fn a_device_that_came_back_skips_the_back_off() {
        let p = Policy::default();
        let mut d = Driver::default();
        let got = run(&p, &mut d, &every(0, 245, 5, Stale));
        assert_eq!(got.len(), 4, "{got:?}");
        // The next one would wait until 480 (the back-off); the device comes back at 245.
        d.replugged(245);
        let got = run(&p, &mut d, &every(245, 300, 5, Stale));
        assert_eq!(got, vec![(275, restart(Reason::Replugged, 30))]);
        assert_eq!(d.restarts, [4, 0, 1]);
    }

    #[test]
    fn the_times_come_from_the_environment_when_given() {
        let p = Policy::from_vars(|n| match n {
            ENV_AFTER => Some("2".into()),
            ENV_BACKOFF => Some("0".into()),
            ENV_RESET => Some("x".into()),
            ENV_PER_HOUR => Some("3".into()),
            _ => None,
        });
        assert_eq!(
            (p.after, p.backoff, p.reset_after, p.per_hour),
            (2, 1, 600, 3)
        );
        assert_eq!(Policy::from_vars(|_| None), Policy::default());
    }
}
