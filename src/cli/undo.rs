//! `undo`: NUT's files from the newest backup, through the same validated path as every change
//! (here when this process may write NUT's directory, else through the root side); and what a
//! change of NUT's files prints, shared by the commands that change them.

use std::path::Path;

use super::{given, Args, CommandError, Common, Format, Output};
use crate::inspect::{Face, Installed, Plan};
use crate::json::{array, strings, Object};
use crate::manage::{self, spool, ManageError, Mode, Outcome};

/// `--dry-run` or `--no-apply` or neither.
pub(crate) fn mode(common: &Common) -> Result<Mode, CommandError> {
    match (common.dry_run, common.no_apply) {
        (true, true) => Err(CommandError::Usage(
            "--dry-run writes nothing and --no-apply writes: give one of them".into(),
        )),
        (true, false) => Ok(Mode::DryRun),
        (false, true) => Ok(Mode::NoApply),
        (false, false) => Ok(Mode::Apply),
    }
}

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "undo takes no argument `{extra}`"
        )));
    }
    let mode = mode(common)?;
    let plan = Plan::resolve(
        Face::Validate,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    plan.require_nut_dir()?;
    let r = crate::inspect::adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL))(
        manage::undo_request(),
    );
    finish(r, mode, common.format)
}

/// A change's result as the command's output and exit code.
pub(crate) fn finish(
    r: Result<Outcome, ManageError>,
    mode: Mode,
    format: Format,
) -> Result<Output, CommandError> {
    match r {
        Ok(o) => Ok(Output::ok(render(&o, mode, format))),
        Err(ManageError::NothingToUndo) => Err(CommandError::CannotRun(
            ManageError::NothingToUndo.to_string(),
        )),
        Err(ManageError::Refused { ref outcome, .. }) if format == Format::Human => {
            let e = r.as_ref().unwrap_err();
            Err(CommandError::Failed(format!(
                "{}{e}",
                render(outcome, Mode::DryRun, format)
            )))
        }
        Err(ManageError::Failed(ref f)) if format == Format::Human => {
            let e = r.as_ref().unwrap_err();
            Err(CommandError::Failed(format!(
                "{}{e}",
                render(&f.outcome, mode, format)
            )))
        }
        Err(e) => Err(CommandError::Failed(e.to_string())),
    }
}

/// The diffs, the findings the change adds and removes, what runs and what was seen.
pub(crate) fn render(o: &Outcome, mode: Mode, format: Format) -> String {
    if format == Format::Json {
        let mut out = String::new();
        let mut obj = Object::new(&mut out);
        obj.str("mode", mode.as_str())
            .raw(
                "diffs",
                &array(o.diffs.iter().map(|d| {
                    let mut s = String::new();
                    let mut f = Object::new(&mut s);
                    f.str("file", &d.file).str("diff", &d.diff);
                    f.end();
                    s
                })),
            )
            .raw(
                "added",
                &strings(o.added.iter().map(|f| f.message.as_str())),
            )
            .raw(
                "removed",
                &strings(o.removed.iter().map(|f| f.message.as_str())),
            )
            .opt_str(
                "backup",
                o.backup.as_ref().map(|b| b.to_str().unwrap_or_default()),
            )
            .raw("actions", &strings(o.actions.iter().map(String::as_str)))
            .raw("ran", &strings(o.ran.iter().map(String::as_str)))
            .raw("verified", &strings(o.verified.iter().map(String::as_str)));
        obj.end();
        out.push('\n');
        return out;
    }
    let mut out = String::new();
    if o.unchanged() {
        out.push_str("nothing changes\n");
        return out;
    }
    for d in &o.diffs {
        out.push_str(&d.diff);
    }
    for f in &o.added {
        out.push_str(&format!(
            "adds {} {}:{}: {}\n",
            f.severity.as_str(),
            f.file,
            f.line,
            f.message
        ));
    }
    for f in &o.removed {
        out.push_str(&format!("fixes {}:{}: {}\n", f.file, f.line, f.message));
    }
    let what = match mode {
        Mode::DryRun => "would run",
        Mode::NoApply => "to run once this NUT directory is live (--no-apply ran nothing)",
        Mode::Apply => "ran",
    };
    let list = if mode == Mode::Apply {
        &o.ran
    } else {
        &o.actions
    };
    if !list.is_empty() {
        out.push_str(&format!("{what}: {}\n", list.join(", ")));
    }
    for v in &o.verified {
        out.push_str(&format!("verified: {v}\n"));
    }
    if let Some(b) = &o.backup {
        out.push_str(&format!("previous files kept in {}\n", b.display()));
    }
    if mode == Mode::DryRun {
        out.push_str("nothing written (--dry-run)\n");
    }
    out
}
