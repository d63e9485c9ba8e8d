//! The scheduled battery self-test: the settings' `battery_test_every` (days, 0 never) and
//! `battery_test_kind` (quick or deep), run by the agent on each UPS that offers the test.
//!
//! [`decide`] is pure, `now` passed in: due when the newest test kept in the results file (so
//! a restart does not test twice) is a period old; never while the UPS runs on its battery or
//! a test of it runs; a test that could not be sent is tried again a day later, not at once.
//! [`Scheduler`] is the edge: it looks once a minute, runs each due test in a task of its own
//! (the UPS's numbers before and after, NUT's TRACKING), keeps the record and logs it.
//!
//! **Architecture invariant:** the schedule runs only `test.battery.start.quick` or
//! `.deep`, never a command that cuts the power.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::Level;

use crate::notify::event::{Event, Kind, Severity};
use crate::notify::Hub;
use crate::settings::model::{BatteryTest, Settings};
use crate::state::battery::{self, Origin, TestRecord};
use crate::state::Shared;
use crate::upsd::client::{Client, Options};
use crate::upsd::command::{self, Account, DEEP_TEST, QUICK_TEST};
use crate::upsd::target::Target;

pub const DAY: u64 = 24 * 3600;
/// How often the schedule is looked at.
pub const LOOK_EVERY: u64 = 60;
/// How soon again while a UPS's state is not known yet.
const SOON: u64 = 2;

/// What to do about one UPS's scheduled test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not scheduled (every = 0), or no account to send it with.
    Off,
    /// Not yet: due at this time (unix seconds).
    NotDue(u64),
    /// Due, but the UPS runs on its battery (or its state is not known).
    OnBattery,
    /// A test of this UPS runs now.
    Running,
    Run,
}

/// The schedule's command for the settings' kind.
pub fn command_of(kind: BatteryTest) -> &'static str {
    match kind {
        BatteryTest::Quick => QUICK_TEST,
        BatteryTest::Deep => DEEP_TEST,
    }
}

/// Whether `ups`'s scheduled test runs now: every `every_days` days after the newest test
/// kept (`last`), a day after one that could not be sent; the first one at once.
pub fn decide(
    now: u64,
    every_days: u16,
    last: Option<&TestRecord>,
    on_line: bool,
    running: bool,
) -> Decision {
    if every_days == 0 {
        return Decision::Off;
    }
    if running {
        return Decision::Running;
    }
    if let Some(last) = last {
        let wait = if last.ran() {
            u64::from(every_days) * DAY
        } else {
            DAY
        };
        let due = last.at.saturating_add(wait);
        // A clock set back (the newest test in the future) does not hold the schedule off.
        if now < due && last.at <= now {
            return Decision::NotDue(due);
        }
    }
    if !on_line {
        return Decision::OnBattery;
    }
    Decision::Run
}

/// The edge: looks at the schedule once a minute and runs the due tests.
pub struct Scheduler {
    results: PathBuf,
    client: Options,
    /// The UPSes whose test runs now.
    running: Rc<RefCell<Vec<String>>>,
    next_look: u64,
    /// Where "replace the battery" is told.
    hub: Hub,
}

impl Scheduler {
    pub fn new(settings_path: &std::path::Path, client: Options, hub: Hub) -> Scheduler {
        Scheduler {
            results: battery::path(settings_path),
            client,
            running: Rc::default(),
            next_look: 0,
            hub,
        }
    }

    /// Called on the agent's tick with the wall clock; starts the tests that are due.
    pub fn tick(&mut self, now: u64, settings: &Settings, shared: &Rc<RefCell<Shared>>) {
        if now < self.next_look && self.next_look <= now + LOOK_EVERY {
            return;
        }
        self.next_look = now + LOOK_EVERY;
        // The tests kept (run from the command line or the page too), for the status.
        let (results, problem) = battery::load(&self.results);
        if let Some(p) = problem {
            shared.borrow_mut().emit(Level::Warn, "battery", &p);
        }
        shared.borrow_mut().battery = results.clone();
        if settings.battery_test_every == 0 {
            return;
        }
        let cmd = command_of(settings.battery_test_kind);
        for u in &settings.ups {
            let name = &u.nut_device_name;
            let (Some(user), Some(password)) = (&u.nut_username, &u.nut_password) else {
                continue;
            };
            let (seen, on_line) = {
                let sh = shared.borrow();
                sh.ups
                    .iter()
                    .find(|s| &s.name == name)
                    .map_or((false, false), |s| {
                        let mut words = s.state.flags.words();
                        (s.state.seen, s.state.seen && !words.any(|w| w == "OB"))
                    })
            };
            if !seen {
                // Not polled yet (the agent just started): look again soon.
                self.next_look = self.next_look.min(now + SOON);
            }
            let running = self.running.borrow().iter().any(|r| r == name);
            let d = decide(
                now,
                settings.battery_test_every,
                results.last(name),
                on_line,
                running,
            );
            log::debug!("battery test of {name}: {d:?}");
            if d != Decision::Run {
                continue;
            }
            self.running.borrow_mut().push(name.clone());
            let mut opts = self.client.clone();
            opts.retry_count = u.nut_retry_count;
            opts.retry_delay = Duration::from_secs(u64::from(u.nut_retry_delay));
            opts.tls.mode = u.tls;
            let job = Job {
                target: Target {
                    ups: Some(name.clone()),
                    host: u.upsd_host.clone(),
                    port: u.upsd_port,
                },
                opts,
                cmd,
                user: user.clone(),
                password: password.0.clone(),
                results: self.results.clone(),
                running: Rc::clone(&self.running),
                shared: Rc::clone(shared),
                hub: self.hub.clone(),
                at: now,
            };
            tokio::task::spawn_local(job.run());
        }
    }
}

/// One scheduled test, run in its own task.
struct Job {
    target: Target,
    opts: Options,
    cmd: &'static str,
    user: String,
    password: String,
    results: PathBuf,
    running: Rc<RefCell<Vec<String>>>,
    shared: Rc<RefCell<Shared>>,
    hub: Hub,
    at: u64,
}

impl Job {
    async fn run(self) {
        let ups = self.target.ups.clone().unwrap_or_default();
        let wait = if self.cmd == DEEP_TEST {
            Duration::from_secs(3 * 3600)
        } else {
            Duration::from_secs(5 * 60)
        };
        self.shared.borrow_mut().emit(
            Level::Info,
            "battery",
            &format!("{ups}: the scheduled battery test ({}) starts", self.cmd),
        );
        let mut client = Client::new(self.target.clone(), self.opts.clone());
        let account = Account {
            user: &self.user,
            password: &self.password,
        };
        let run = async {
            let offered = command::offered(&mut client, &ups).await?;
            command::admit(&ups, self.cmd, &offered, false)?;
            command::self_test(&mut client, &ups, self.cmd, &account, wait).await
        }
        .await;
        let record = battery::record_of(self.at, self.cmd, Origin::Schedule, run.as_ref());
        let (level, text) = match &run {
            Ok(r) => (
                if matches!(r.outcome, command::Outcome::Failed(_)) {
                    Level::Warn
                } else {
                    Level::Info
                },
                format!(
                    "{ups}: the scheduled battery test ended: {}",
                    r.outcome.word()
                ),
            ),
            Err(e) => (
                Level::Warn,
                format!("{ups}: the scheduled battery test could not run: {e}"),
            ),
        };
        // Kept first, then told: whoever reads the line finds the record.
        let kept = battery::append(&self.results, &ups, record);
        // What the tests say of the battery (the UPS's own RB is told from its status).
        let (results, _) = battery::load(&self.results);
        self.shared.borrow_mut().battery = results.clone();
        if let Some(why) = battery::replace_battery("", &results.tests(&ups)) {
            self.shared.borrow_mut().emit(
                Level::Warn,
                "battery",
                &format!(
                    "{ups}: replace the battery [{}]: {why}",
                    battery::REPLACE_CODE
                ),
            );
            self.hub.event(Event::new(
                Kind::ReplaceBattery,
                Severity::Warning,
                &format!("{ups}@{}", self.target.address()),
                format!("{ups}: the battery needs replacing: {why}"),
                self.at,
            ));
        }
        self.running.borrow_mut().retain(|r| *r != ups);
        let mut sh = self.shared.borrow_mut();
        if let Err(e) = kept {
            sh.emit(Level::Warn, "battery", &e);
        }
        sh.emit(level, "battery", &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::battery::Values;

    fn test(at: u64, tracking: &str) -> TestRecord {
        TestRecord {
            at,
            cmd: QUICK_TEST.into(),
            origin: Origin::Schedule,
            tracking: tracking.into(),
            test_result: None,
            before: Values::default(),
            after: Values::default(),
            lowest_charge: None,
        }
    }

    #[test]
    fn the_schedule_decides() {
        let t0 = 1_800_000_000;
        let ok = test(t0, "SUCCESS");
        let not_run = test(t0, "NOT RUN access-denied");
        for (now, every, last, on_line, running, want) in [
            // Never scheduled.
            (t0, 0, None, true, false, Decision::Off),
            // The first test runs at once; then every 30 days.
            (t0, 30, None, true, false, Decision::Run),
            (
                t0 + DAY,
                30,
                Some(&ok),
                true,
                false,
                Decision::NotDue(t0 + 30 * DAY),
            ),
            (
                t0 + 30 * DAY - 1,
                30,
                Some(&ok),
                true,
                false,
                Decision::NotDue(t0 + 30 * DAY),
            ),
            (t0 + 30 * DAY, 30, Some(&ok), true, false, Decision::Run),
            // Not on battery, nor twice at once.
            (
                t0 + 31 * DAY,
                30,
                Some(&ok),
                false,
                false,
                Decision::OnBattery,
            ),
            (t0 + 31 * DAY, 30, Some(&ok), true, true, Decision::Running),
            // A test that could not be sent: again a day later, not every minute.
            (
                t0 + 3600,
                30,
                Some(&not_run),
                true,
                false,
                Decision::NotDue(t0 + DAY),
            ),
            (t0 + DAY, 30, Some(&not_run), true, false, Decision::Run),
            // A clock set back does not hold it off for the whole period.
            (t0 - DAY, 30, Some(&ok), true, false, Decision::Run),
        ] {
            assert_eq!(
                decide(now, every, last, on_line, running),
                want,
                "now {now}, every {every}, last {:?}",
                last.map(|l| (l.at, &l.tracking))
            );
        }
    }

    #[test]
    fn after_a_restart_the_kept_results_say_when_the_last_test_ran() {
        // The agent restarts a day after a test: the results file, not its memory, decides.
        let mut r = battery::Results::default();
        r.push("ups", test(1_000, "SUCCESS"));
        let bytes = battery::encode(&r);
        let after_restart = battery::decode(&bytes).unwrap();
        assert_eq!(
            decide(1_000 + DAY, 30, after_restart.last("ups"), true, false),
            Decision::NotDue(1_000 + 30 * DAY)
        );
        assert_eq!(
            decide(1_000 + DAY, 30, None, true, false),
            Decision::Run,
            "without the file it would test again"
        );
    }

    #[test]
    fn the_schedule_runs_only_battery_tests() {
        for k in BatteryTest::ALL.iter() {
            let c = command_of(*k);
            assert!(c.starts_with("test.battery.start.") && !command::cuts_power(c));
        }
    }
}
