//! `apply-spool`: the root side of privilege separation (power-snitch-apply.service). NUT's
//! directory is `--nut-dir`, else `$NUT_CONFPATH`, else /etc/nut: never the settings, which
//! the unprivileged agent writes.

use std::path::Path;

use super::{Args, CommandError, Output};
use crate::inspect::Installed;
use crate::manage::{run::Systemd, spool, verify, Nut};

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "apply-spool takes no argument `{extra}`"
        )));
    }
    let dir = common
        .nut_dir
        .clone()
        .unwrap_or_else(crate::nut::host::default_dir);
    let installed = Installed::detect(common.nut_version);
    let nut = Nut::at(&dir, installed.version, installed.drivers);
    let mut runner = Systemd::detect();
    let handled = spool::apply_spool(
        Path::new(spool::DEFAULT_SPOOL),
        &nut,
        &mut runner,
        verify::TIMEOUT,
    )
    .map_err(|e| CommandError::CannotRun(e.to_string()))?;
    let mut text = String::new();
    for h in &handled {
        match &h.result {
            Ok(o) => {
                let line = format!(
                    "{}: applied ({} file(s); ran {})",
                    h.id,
                    o.diffs.len(),
                    if o.ran.is_empty() {
                        "nothing".into()
                    } else {
                        o.ran.join(", ")
                    }
                );
                log::info!("{line}");
                text.push_str(&line);
            }
            Err(e) => {
                let line = format!("{}: {e}", h.id);
                log::warn!("{line}");
                text.push_str(&line);
            }
        }
        text.push('\n');
    }
    Ok(Output::ok(text))
}
