//! `power-snitch probe`: the UPS hardware on USB and serial ports.

use super::{given, Args, CommandError, Format, Output};
use crate::inspect::{self, render, Face, Installed, Plan};

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "probe takes no argument `{extra}`"
        )));
    }
    let plan = Plan::resolve(
        Face::Probe,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    let probed = inspect::probe(&plan, &super::check::progress(common.format));
    let text = match (common.format, common.ups_conf) {
        (Format::Human, true) => probed.sections.iter().map(|s| format!("{s}\n\n")).collect(),
        (Format::Human, false) => render::probe_human(&probed.inv),
        (Format::Json, _) => format!("{}\n", render::probe_json(&probed)),
    };
    Ok(Output::ok(text))
}
