//! `power-snitch check`: everything at once — NUT's files, the hardware, the cross-check, the
//! live upsd and the settings — as one findings report in `validate`'s shape.

use std::io::IsTerminal;

use super::{given, Args, CommandError, Format, Output};
use crate::inspect::{self, render, Face, Installed, Plan};

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "check takes no argument `{extra}`"
        )));
    }
    let plan = Plan::resolve(
        Face::Check,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    plan.require_nut_dir()?;
    warn_settings(&plan);
    let report = inspect::check(&plan, &progress(common.format));
    let text = match common.format {
        Format::Human => render::check_human(&plan, &report),
        Format::Json => render::check_json(&plan, &report),
    };
    Ok(Output {
        code: render::exit_code(&report.findings),
        text,
    })
}

/// What loading the settings warned about, once on stderr.
pub fn warn_settings(plan: &Plan) {
    for w in &plan.settings_warnings {
        eprintln!("power-snitch: warning: {w}");
    }
}

/// Progress of the serial dialogues on a terminal (never in JSON mode).
pub fn progress(format: Format) -> impl Fn(&str) + Sync {
    let show = format == Format::Human && std::io::stderr().is_terminal();
    move |path: &str| {
        if show {
            eprintln!("probing {path} (APC Smart, Megatec/Q1)...");
        }
    }
}
