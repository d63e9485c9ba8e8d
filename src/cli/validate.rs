//! `power-snitch validate`: checks a NUT configuration directory.

use std::path::PathBuf;

use super::{Args, Common, Format, EXIT_CANNOT_RUN};
use crate::nut::diag::Finding;
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{host, validate, Context, Parsed};
use crate::report::{self, Summary, Validation};

/// The NUT directory and the release whose rules apply to it.
pub struct Nut {
    pub dir: PathBuf,
    pub version: NutVersion,
    /// Where the version came from: `--nut-version`, a program's path, or the default.
    pub source: String,
    /// The drivers installed on the host, when the version came from the host.
    pub installed: Option<Vec<String>>,
}

impl Nut {
    /// Resolves `--nut-dir` (else $NUT_CONFPATH, else /etc/nut) and the version.
    pub fn resolve(common: &Common) -> Result<Nut, String> {
        let dir: PathBuf = common.nut_dir.clone().unwrap_or_else(host::default_dir);
        if !dir.is_dir() {
            let why = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            return Err(format!(
                "{} {why}: NUT is not installed here (apt install nut-server nut-client), or its files are elsewhere (--nut-dir DIR, or $NUT_CONFPATH)",
                dir.display()
            ));
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
        Ok(Nut {
            dir,
            version,
            source,
            installed,
        })
    }

    /// Reads and validates the directory.
    pub fn validate(&self) -> (Parsed, Vec<Finding>) {
        log::info!(
            "checking {} against NUT {} ({})",
            self.dir.display(),
            self.version,
            self.source
        );
        let cx = Context {
            version: self.version,
            drivers: DriverDb::builtin(),
            host_drivers: self.installed.as_deref(),
        };
        validate(&host::snapshot(&self.dir), &cx)
    }

    /// The report of these findings in the chosen format, and its exit code.
    pub fn report(
        &self,
        format: Format,
        findings: &[Finding],
        extra_json: &[(&str, String)],
    ) -> (u8, String) {
        let v = Validation {
            dir: &self.dir,
            nut_version: self.version.to_string(),
            version_source: self.source.clone(),
            findings,
        };
        let out = match format {
            Format::Human => report::human(&v),
            Format::Json => report::json_with(&v, extra_json),
        };
        (Summary::of(findings).exit_code(), out)
    }
}

pub fn run(args: &Args) -> (u8, String) {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return fail(
            common.format,
            &format!("validate takes no argument `{extra}`; use --nut-dir DIR"),
        );
    }
    let nut = match Nut::resolve(common) {
        Ok(n) => n,
        Err(e) => return fail(common.format, &e),
    };
    let (_, findings) = nut.validate();
    nut.report(common.format, &findings, &[])
}

pub fn fail(format: Format, message: &str) -> (u8, String) {
    match format {
        Format::Json => (EXIT_CANNOT_RUN, report::json_error(message)),
        Format::Human => {
            eprintln!("power-snitch: {message}");
            (EXIT_CANNOT_RUN, String::new())
        }
    }
}
