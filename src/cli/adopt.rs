//! `adopt [DEVICE]`, `remove UPS` and `sync --to-nut`: NUT's files changed through the one
//! path ([`crate::inspect::adopt`]), printed as `undo` prints a change.

use std::path::Path;

use super::undo::{finish, mode, render};
use super::{given, Args, CommandError, Output};
use crate::inspect::adopt::{self, ChangeError, Changed};
use crate::inspect::{Face, Installed, Plan};
use crate::manage::{spool, Mode};

fn plan(args: &Args, face: Face) -> Result<Plan, CommandError> {
    let common = &args.common;
    let mut g = given(common)?;
    // A serial port named as the device is one the user allows to be asked who it is.
    if face == Face::Adopt {
        if let Some(d) = args.positional.first().filter(|d| d.starts_with('/')) {
            if !g.serial_ports.contains(d) {
                g.serial_ports.push(d.clone());
            }
        }
    }
    let plan = Plan::resolve(face, &g, Installed::detect(common.nut_version))?;
    plan.require_nut_dir()?;
    Ok(plan)
}

fn at_most_one(args: &Args, what: &str) -> Result<Option<String>, CommandError> {
    match args.positional.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        [_, extra, ..] => Err(CommandError::Usage(format!(
            "{what} takes one argument, not also `{extra}`"
        ))),
    }
}

/// A change's result: the diff, what ran and was verified, and the settings entry.
fn done(
    r: Result<Changed, ChangeError>,
    mode: Mode,
    args: &Args,
    verb: &str,
) -> Result<Output, CommandError> {
    let format = args.common.format;
    match r {
        Ok(c) => {
            let mut text = render(&c.outcome, mode, format);
            if format == super::Format::Human {
                if c.settings_written {
                    text.push_str(&format!("settings: the entry {} {verb}\n", c.ups));
                }
                if mode == Mode::Apply && !c.outcome.unchanged() {
                    text.push_str(&format!("{}: done\n", c.ups));
                }
            }
            Ok(Output::ok(text))
        }
        Err(ChangeError::Manage(e)) => finish(Err(e), mode, format),
        Err(ChangeError::Usage(e)) => Err(CommandError::Usage(e)),
        Err(e @ (ChangeError::Edit(_) | ChangeError::Io(_))) => {
            Err(CommandError::Failed(e.to_string()))
        }
    }
}

/// `adopt [DEVICE]`: the detected UPS no section serves (the only one, or the one named) gets
/// its section, a monitoring account, the MONITOR line and MODE, applied and verified.
pub fn adopt(args: &Args) -> Result<Output, CommandError> {
    let device = at_most_one(args, "adopt")?;
    let mode = mode(&args.common)?;
    let plan = plan(args, Face::Adopt)?;
    let report = crate::inspect::check(&plan, &|_| {});
    let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
    let r = adopt::adopt(&plan, &report, device.as_deref(), mode, &mut make);
    done(r, mode, args, "was written")
}

/// `remove UPS`: its section, MONITOR lines and account, and its settings entry.
pub fn remove(args: &Args) -> Result<Output, CommandError> {
    let Some(ups) = at_most_one(args, "remove")? else {
        return Err(CommandError::Usage(
            "remove takes the UPS's name: remove UPS".into(),
        ));
    };
    let mode = mode(&args.common)?;
    let plan = plan(args, Face::Sync)?;
    let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
    let r = adopt::remove(&plan, &ups, mode, &mut make);
    done(r, mode, args, "was removed")
}

/// `sync --to-nut [--ups NAME]`: the settings' driver, port and credentials into NUT's files.
pub fn to_nut(args: &Args) -> Result<Output, CommandError> {
    let mode = mode(&args.common)?;
    let plan = plan(args, Face::Sync)?;
    let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
    let r = adopt::to_nut(&plan, args.common.ups.as_deref(), &mut make);
    done(r, mode, args, "")
}
