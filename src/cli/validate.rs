//! `power-snitch validate`: checks a NUT configuration directory (the files-only part of the
//! application layer's check).

use super::{given, Args, CommandError, Format, Output};
use crate::inspect::{self, render, Face, Installed, Plan};
use crate::report;

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "validate takes no argument `{extra}`; use --nut-dir DIR"
        )));
    }
    let plan = Plan::resolve(
        Face::Validate,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    plan.require_nut_dir()?;
    let (_, findings) = inspect::read_nut(&plan);
    let v = render::validation(&plan, &findings);
    let text = match common.format {
        Format::Human => report::human(&v),
        Format::Json => report::json(&v),
    };
    Ok(Output {
        code: render::exit_code(&findings),
        text,
    })
}
