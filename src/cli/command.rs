//! `power-snitch command UPS[@HOST[:PORT]] [CMD] [--yes-cut-power] [--results]`: the instant
//! commands a UPS offers (with NUT's description of each), one of them run with NUT's TRACKING,
//! or the battery tests kept with the "replace battery" finding.
//!
//! A battery test (`test.battery.start.*`) is followed to its end and kept in the results file
//! next to the settings, with the charge, runtime and load before and after. A command that
//! cuts the power needs `--yes-cut-power`; without it nothing is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::status::{cannot_run, client_for, failure, usage};
use super::{runtime, Args, Format};
use crate::json::{self, Object};
use crate::state::battery::{self, Origin};
use crate::upsd::command::{self, cuts_power, Account, Outcome, TestRun};

/// How long TRACKING is followed for a command that is not a battery test.
const TRACKING_WAIT: Duration = Duration::from_secs(30);
/// How long a battery test is waited for (a deep one runs the battery down).
const QUICK_WAIT: Duration = Duration::from_secs(5 * 60);
const DEEP_WAIT: Duration = Duration::from_secs(3 * 3600);

pub fn run(args: &Args) -> (u8, String) {
    let format = args.common.format;
    let (target, cmd) = match args.positional.as_slice() {
        [t] => (t.clone(), None),
        [t, c] => (t.clone(), Some(c.clone())),
        [] => {
            return usage(
                format,
                "command needs a UPS: command UPS[@HOST[:PORT]] [CMD]",
            )
        }
        [_, _, extra, ..] => {
            return usage(
                format,
                &format!("command takes one command, not also `{extra}`"),
            )
        }
    };
    if args.common.results && cmd.is_some() {
        return usage(
            format,
            "--results shows the tests kept; give no command with it",
        );
    }
    if args.common.yes_cut_power && cmd.is_none() {
        return usage(format, "--yes-cut-power confirms a command; name it");
    }
    let mut one = args.clone();
    one.positional = vec![target];
    let mut client = match client_for(&one, "command") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(ups) = client.target.ups.clone() else {
        return usage(
            format,
            "command needs a UPS name (UPS@HOST), not only a host",
        );
    };
    let settings_path = super::settings::path(args);
    let results_path = battery::path(&settings_path);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return cannot_run(format, &e),
    };
    if args.common.results {
        let status = rt
            .block_on(client.vars(&ups))
            .ok()
            .and_then(|v| v.into_iter().find(|(k, _)| k == "ups.status"))
            .map(|(_, v)| v)
            .unwrap_or_default();
        let (results, problem) = battery::load(&results_path);
        if let Some(p) = problem {
            log::warn!("{p}");
        }
        return (0, render_results(format, &ups, &results, &status));
    }
    let Some(cmd) = cmd else {
        return match rt.block_on(command::offered(&mut client, &ups)) {
            Ok(list) => (0, render_offered(format, &ups, &list)),
            Err(e) => failure(format, &e),
        };
    };
    let (user, password) = match account(args, &ups) {
        Ok(a) => a,
        Err(e) => return usage(format, &e),
    };
    let account = Account {
        user: &user,
        password: &password,
    };
    // A battery test is waited for; the command's deadline is then the test's own.
    let test = cmd.starts_with("test.battery.start");
    if test && args.common.timeout.is_none() {
        client.set_deadline(None);
    }
    if test {
        let wait = if cmd.ends_with(".deep") {
            DEEP_WAIT
        } else {
            QUICK_WAIT
        };
        let at = unix_now();
        let result = rt.block_on(async {
            let offered = command::offered(&mut client, &ups).await?;
            command::admit(&ups, &cmd, &offered, false)?;
            command::self_test(&mut client, &ups, &cmd, &account, wait).await
        });
        match result {
            Ok(run) => {
                let record = battery::record_of(at, &cmd, Origin::User, Ok(&run));
                if let Err(e) = battery::append(&results_path, &ups, record) {
                    log::warn!("{e}");
                }
                (exit_of(&run.outcome), render_test(format, &ups, &run))
            }
            Err(e) => failure(format, &e),
        }
    } else {
        let result = rt.block_on(command::run(
            &mut client,
            &ups,
            &cmd,
            &account,
            args.common.yes_cut_power,
            TRACKING_WAIT,
        ));
        match result {
            Ok(outcome) => (
                exit_of(&outcome),
                render_outcome(format, &ups, &cmd, &outcome),
            ),
            Err(e) => failure(format, &e),
        }
    }
}

fn exit_of(o: &Outcome) -> u8 {
    match o {
        Outcome::Success | Outcome::Untracked => 0,
        Outcome::Failed(_) | Outcome::Pending => 2,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The account `INSTCMD` goes with: `--user` and the password on standard input, else the
/// settings entry of this UPS.
fn account(args: &Args, ups: &str) -> Result<(String, String), String> {
    let c = &args.common;
    match (&c.user, c.password_stdin) {
        (Some(u), true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            return Ok((u.clone(), line.trim_end_matches(['\n', '\r']).to_string()));
        }
        (Some(_), false) => return Err("--user needs --password-stdin".into()),
        (None, true) => return Err("--password-stdin needs --user".into()),
        (None, false) => {}
    }
    let loaded = crate::settings::store::load(&super::settings::path(args));
    let entry = loaded
        .settings
        .ups
        .iter()
        .find(|u| u.nut_device_name == ups);
    match entry.and_then(|u| Some((u.nut_username.clone()?, u.nut_password.clone()?))) {
        Some((u, p)) => Ok((u, p.0)),
        None => Err(format!(
            "running a command needs a NUT account with `instcmds` for {ups} in upsd.users: \
             give --user USER --password-stdin, or store the UPS entry's nut_username and \
             nut_password (`settings set --ups {ups} nut_username=USER --password-stdin`)"
        )),
    }
}

fn num(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v} {unit}"))
}

fn render_offered(format: Format, ups: &str, list: &[command::Offered]) -> String {
    match format {
        Format::Human => {
            let mut out = String::new();
            for o in list {
                let mark = if cuts_power(&o.name) {
                    "  [cuts the power: needs --yes-cut-power]"
                } else {
                    ""
                };
                out.push_str(&format!("{:<28} {}{mark}\n", o.name, o.desc));
            }
            if list.is_empty() {
                out.push_str(&format!("{ups} offers no instant commands\n"));
            }
            out
        }
        Format::Json => {
            let items = json::array(list.iter().map(|o| {
                let mut s = String::new();
                let mut j = Object::new(&mut s);
                j.str("name", &o.name)
                    .str("description", &o.desc)
                    .bool("cuts_power", cuts_power(&o.name));
                j.end();
                s
            }));
            let mut out = String::new();
            let mut o = Object::new(&mut out);
            o.str("ups", ups).raw("commands", &items);
            o.end();
            out + "\n"
        }
    }
}

fn outcome_text(o: &Outcome) -> &'static str {
    match o {
        Outcome::Success => "the UPS ran it",
        Outcome::Failed(_) => "the UPS refused or failed it",
        Outcome::Pending => "no answer from the driver in time",
        Outcome::Untracked => "sent; upsd did not track it, so the result is not known",
    }
}

fn render_outcome(format: Format, ups: &str, cmd: &str, o: &Outcome) -> String {
    match format {
        Format::Human => format!("{ups}: {cmd}: {} ({})\n", o.word(), outcome_text(o)),
        Format::Json => {
            let mut out = String::new();
            let mut j = Object::new(&mut out);
            j.str("ups", ups).str("cmd", cmd).str("tracking", &o.word());
            j.end();
            out + "\n"
        }
    }
}

fn render_test(format: Format, ups: &str, run: &TestRun) -> String {
    match format {
        Format::Human => {
            let line = |s: &command::Snapshot| {
                format!(
                    "charge {}, runtime {}, load {}",
                    num(s.charge, "%"),
                    num(s.runtime, "s"),
                    num(s.load, "%")
                )
            };
            let mut out = format!(
                "{ups}: {}: {} ({})\n  before: {}\n  after:  {}\n",
                run.cmd,
                run.outcome.word(),
                outcome_text(&run.outcome),
                line(&run.before),
                line(&run.after)
            );
            out.push_str(&format!(
                "  lowest charge during the test: {}\n",
                num(run.lowest_charge, "%")
            ));
            if let Some(r) = &run.after.test_result {
                out.push_str(&format!("  ups.test.result: {r}\n"));
            }
            out
        }
        Format::Json => {
            let record = battery::record_of(unix_now(), &run.cmd, Origin::User, Ok(run));
            let mut out = String::new();
            let mut j = Object::new(&mut out);
            j.str("ups", ups)
                .str("cmd", &run.cmd)
                .str("tracking", &run.outcome.word())
                .raw("test", &battery::record_json(&record));
            j.end();
            out + "\n"
        }
    }
}

fn render_results(format: Format, ups: &str, r: &battery::Results, status: &str) -> String {
    match format {
        Format::Json => {
            let mut out = String::new();
            let mut j = Object::new(&mut out);
            j.str("ups", ups)
                .raw("battery", &battery::ups_json(r, ups, status));
            j.end();
            out + "\n"
        }
        Format::Human => {
            let tests = r.tests(ups);
            let mut out = String::new();
            if let Some(why) = battery::replace_battery(status, &tests) {
                out.push_str(&format!(
                    "{ups}: replace the battery [{}]: {why}\n",
                    battery::REPLACE_CODE
                ));
            }
            if tests.is_empty() {
                out.push_str(&format!("{ups}: no battery tests kept\n"));
            }
            for t in tests.iter().rev() {
                out.push_str(&format!(
                    "{} {} ({}): {}{}; charge {} -> {}, runtime {} -> {}, load {}\n",
                    t.at,
                    t.cmd,
                    t.origin.as_str(),
                    t.tracking,
                    t.test_result
                        .as_deref()
                        .map_or(String::new(), |r| format!(", {r}")),
                    num(t.before.charge, "%"),
                    num(t.after.charge, "%"),
                    num(t.before.runtime, "s"),
                    num(t.after.runtime, "s"),
                    num(t.after.load.or(t.before.load), "%"),
                ));
            }
            out
        }
    }
}
