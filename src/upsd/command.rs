//! Instant commands: what a UPS offers (`LIST CMD`, `GET CMDDESC`), which may be sent (pure:
//! [`admit`]), one command run with NUT's TRACKING ([`run`]), and a battery self-test with the
//! UPS's numbers before and after ([`self_test`]).
//!
//! **Architecture invariant:** nothing reaches `INSTCMD` that the UPS does not offer, and no
//! command that cuts the power ([`cuts_power`]) without its second confirmation: [`admit`]
//! decides both, before anything is sent.

use std::time::Duration;

use tokio::time::{sleep, Instant};

use super::client::Client;
use super::error::{ErrorKind, NutError};
pub use super::proto::cuts_power;
use super::proto::Tracking;

/// The battery tests a schedule may run.
pub const QUICK_TEST: &str = "test.battery.start.quick";
pub const DEEP_TEST: &str = "test.battery.start.deep";

/// How often `GET TRACKING` and the test's end are asked.
const TRACKING_PAUSE: Duration = Duration::from_millis(250);
const TEST_PAUSE: Duration = Duration::from_secs(1);
/// How long a test may take to show in `ups.status` (or `ups.test.result`) once the driver ran
/// the command; a test that never shows is over.
const TEST_SHOWS_WITHIN: Duration = Duration::from_secs(10);

/// One command a UPS offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub name: String,
    /// `GET CMDDESC`: NUT's sentence for it.
    pub desc: String,
}

/// The account `INSTCMD` is sent with: `instcmds` for it in upsd.users.
pub struct Account<'a> {
    pub user: &'a str,
    pub password: &'a str,
}

/// What became of a command that was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TRACKING: the driver ran it.
    Success,
    /// TRACKING: the driver failed it, with upsd's word.
    Failed(String),
    /// TRACKING still said PENDING when the wait was over.
    Pending,
    /// upsd accepted it without a tracking id (no TRACKING): sent, result unknown.
    Untracked,
}

impl Outcome {
    /// TRACKING's word, as results and JSON show it.
    pub fn word(&self) -> String {
        match self {
            Outcome::Success => "SUCCESS".into(),
            Outcome::Failed(w) => format!("FAILED {w}"),
            Outcome::Pending => "PENDING".into(),
            Outcome::Untracked => "UNTRACKED".into(),
        }
    }
}

/// The commands `ups` offers, with NUT's description of each.
pub async fn offered(client: &mut Client, ups: &str) -> Result<Vec<Offered>, NutError> {
    Ok(client
        .commands(ups)
        .await?
        .into_iter()
        .map(|(name, desc)| Offered { name, desc })
        .collect())
}

/// May `cmd` be sent to `ups`? Only a command it offers, and one that cuts the power only with
/// the second confirmation. Pure: the refusal says what the UPS offers, or what to add.
pub fn admit(
    ups: &str,
    cmd: &str,
    offered: &[Offered],
    cut_confirmed: bool,
) -> Result<(), NutError> {
    if !offered.iter().any(|o| o.name == cmd) {
        let names: Vec<&str> = offered.iter().map(|o| o.name.as_str()).collect();
        let list = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(NutError::new(
            ErrorKind::Configuration,
            "command-not-offered",
            format!("{ups} does not offer the command `{cmd}`; it offers: {list}"),
        )
        .hint(format!(
            "`power-snitch command {ups}` lists them with their descriptions"
        )));
    }
    if cuts_power(cmd) && !cut_confirmed {
        return Err(NutError::new(
            ErrorKind::Configuration,
            "cuts-power",
            format!("`{cmd}` cuts the power to what {ups} feeds; nothing was sent"),
        )
        .hint("confirm it a second time (--yes-cut-power on the command line)"));
    }
    Ok(())
}

/// Sends `cmd` to `ups` if [`admit`] allows it, and follows it with TRACKING for at most
/// `wait`.
pub async fn run(
    client: &mut Client,
    ups: &str,
    cmd: &str,
    account: &Account<'_>,
    cut_confirmed: bool,
    wait: Duration,
) -> Result<Outcome, NutError> {
    let offered = offered(client, ups).await?;
    admit(ups, cmd, &offered, cut_confirmed)?;
    let id = client
        .instcmd(ups, cmd, account.user, account.password)
        .await?;
    let Some(id) = id else {
        return Ok(Outcome::Untracked);
    };
    let until = Instant::now() + wait;
    loop {
        match client.tracking(&id).await? {
            Tracking::Pending if Instant::now() + TRACKING_PAUSE < until => {
                sleep(TRACKING_PAUSE).await
            }
            Tracking::Pending => return Ok(Outcome::Pending),
            Tracking::Success => return Ok(Outcome::Success),
            Tracking::Failed(w) => return Ok(Outcome::Failed(w)),
            // upsd does not know the id (it forgot it, or never tracked it for this driver):
            // sent, the result not known.
            Tracking::Unknown => return Ok(Outcome::Untracked),
        }
    }
}

/// What a battery test is judged by, read from upsd at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub status: String,
    pub charge: Option<f64>,
    /// Seconds.
    pub runtime: Option<f64>,
    pub load: Option<f64>,
    pub test_result: Option<String>,
}

impl Snapshot {
    /// From `LIST VAR`'s pairs.
    pub fn of(vars: &[(String, String)]) -> Snapshot {
        let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let num = |n: &str| {
            get(n)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        Snapshot {
            status: get("ups.status").unwrap_or_default().to_string(),
            charge: num("battery.charge"),
            runtime: num("battery.runtime"),
            load: num("ups.load"),
            test_result: get("ups.test.result").map(String::from),
        }
    }

    /// Does the UPS say a test runs? `CAL` or `TEST` in ups.status (nutdrv_qx, usbhid-ups), or
    /// ups.test.result "in progress".
    pub fn testing(&self) -> bool {
        self.status
            .split_whitespace()
            .any(|w| w == "CAL" || w == "TEST")
            || self
                .test_result
                .as_deref()
                .is_some_and(|r| r.to_ascii_lowercase().contains("in progress"))
    }

    pub fn on_battery(&self) -> bool {
        self.status.split_whitespace().any(|w| w == "OB")
    }
}

/// A battery test as it ran.
#[derive(Clone, Debug, PartialEq)]
pub struct TestRun {
    pub cmd: String,
    pub outcome: Outcome,
    pub before: Snapshot,
    pub after: Snapshot,
    /// The lowest charge seen while the test ran.
    pub lowest_charge: Option<f64>,
}

/// Runs the battery test `cmd` on `ups`: the numbers before, the command with TRACKING, then
/// waits (at most `wait_end`) for the UPS to say the test is over, and the numbers after.
/// Refused on battery: a test would only drain it further.
pub async fn self_test(
    client: &mut Client,
    ups: &str,
    cmd: &str,
    account: &Account<'_>,
    wait_end: Duration,
) -> Result<TestRun, NutError> {
    let before = Snapshot::of(&client.vars(ups).await?);
    if before.on_battery() {
        return Err(NutError::new(
            ErrorKind::Configuration,
            "on-battery",
            format!("{ups} runs on its battery: no battery test now"),
        ));
    }
    let outcome = run(client, ups, cmd, account, false, Duration::from_secs(30)).await?;
    let mut lowest = before.charge;
    let mut after = before.clone();
    if !matches!(outcome, Outcome::Failed(_)) {
        let started = Instant::now();
        let mut seen = false;
        loop {
            sleep(TEST_PAUSE).await;
            after = Snapshot::of(&client.vars(ups).await?);
            lowest = match (lowest, after.charge) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let waited = started.elapsed();
            if after.testing() {
                seen = true;
            }
            let over = if seen {
                !after.testing()
            } else {
                waited >= TEST_SHOWS_WITHIN
            };
            if over || waited >= wait_end {
                break;
            }
        }
    }
    Ok(TestRun {
        cmd: cmd.to_string(),
        outcome,
        before,
        after,
        lowest_charge: lowest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(names: &[&str]) -> Vec<Offered> {
        names
            .iter()
            .map(|n| Offered {
                name: n.to_string(),
                desc: String::new(),
            })
            .collect()
    }

    #[test]
    fn only_offered_commands_and_power_cuts_only_confirmed() {
        let o = offered(&["beeper.toggle", "load.off", QUICK_TEST]);
        assert!(admit("qx", QUICK_TEST, &o, false).is_ok());
        let e = admit("qx", DEEP_TEST, &o, true).unwrap_err();
        assert_eq!(e.code(), "command-not-offered");
        assert!(
            e.message()
                .contains("it offers: beeper.toggle, load.off, test.battery.start.quick"),
            "{e}"
        );
        assert!(admit("qx", "x", &[], false)
            .unwrap_err()
            .message()
            .contains("it offers: none"));
        assert_eq!(
            admit("qx", "load.off", &o, false).unwrap_err().code(),
            "cuts-power"
        );
        assert!(admit("qx", "load.off", &o, true).is_ok());
    }

    #[test]
    fn snapshot_reads_the_test_state() {
        let v = |pairs: &[(&str, &str)]| {
            Snapshot::of(
                &pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let s = v(&[
            ("ups.status", "OL CAL"),
            ("battery.charge", "93"),
            ("ups.load", "x"),
        ]);
        assert!(s.testing());
        assert_eq!((s.charge, s.load), (Some(93.0), None));
        assert!(!v(&[("ups.status", "OL")]).testing());
        assert!(v(&[("ups.status", "OL"), ("ups.test.result", "In progress")]).testing());
        assert!(v(&[("ups.status", "OB DISCHRG")]).on_battery());
        assert!(!v(&[("ups.status", "OL")]).on_battery());
    }
}
