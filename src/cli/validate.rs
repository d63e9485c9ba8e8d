//! `power-snitch validate`: checks a NUT configuration directory.

use std::path::PathBuf;

use super::{Args, Format, EXIT_CANNOT_RUN};
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{host, validate, Context};
use crate::report::{self, Summary, Validation};

pub fn run(args: &Args) -> (u8, String) {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return fail(
            common.format,
            &format!("validate takes no argument `{extra}`; use --nut-dir DIR"),
        );
    }
    let dir: PathBuf = common.nut_dir.clone().unwrap_or_else(host::default_dir);
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return fail(
            common.format,
            &format!(
                "{} {why}: NUT is not installed here (apt install nut-server nut-client), or its files are elsewhere (--nut-dir DIR, or $NUT_CONFPATH)",
                dir.display()
            ),
        );
    }
    // An explicit version checks against that release's rules and built-in driver list; a
    // detected one also uses the host's installed drivers.
    let (version, source, installed) = match common.nut_version {
        Some(v) => (v, "--nut-version".to_string(), None),
        None => match host::detect_version() {
            Some((v, from)) => (v, from.display().to_string(), host::installed_drivers()),
            None => (
                NutVersion::NEWEST,
                "not installed; newest rules".to_string(),
                None,
            ),
        },
    };
    log::info!(
        "checking {} against NUT {version} ({source})",
        dir.display()
    );
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: installed.as_deref(),
    };
    let snap = host::snapshot(&dir);
    let (_, findings) = validate(&snap, &cx);
    let v = Validation {
        dir: &dir,
        nut_version: version.to_string(),
        version_source: source,
        findings: &findings,
    };
    let out = match common.format {
        Format::Human => report::human(&v),
        Format::Json => report::json(&v),
    };
    (Summary::of(&findings).exit_code(), out)
}

fn fail(format: Format, message: &str) -> (u8, String) {
    match format {
        Format::Json => (EXIT_CANNOT_RUN, report::json_error(message)),
        Format::Human => {
            eprintln!("power-snitch: {message}");
            (EXIT_CANNOT_RUN, String::new())
        }
    }
}
