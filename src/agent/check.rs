//! What the agent checks about the installation (the application layer's check, as the agent's
//! face), and what changed between two checks.

use std::path::Path;

use crate::inspect::{self, Face, Installed, Plan};
use crate::nut::diag::{Finding, Severity};
use crate::probe::Root;
use crate::settings::model::Settings;

/// What the agent holds that a recheck needs: resolved when it starts and on each settings
/// change, not per recheck.
pub struct Recheck<'a> {
    pub nut_dir: &'a Path,
    pub installed: &'a Installed,
    pub settings: &'a Settings,
    pub settings_path: &'a Path,
    pub root: &'a Root,
}

/// The application layer's check for the agent ([`Face::Recheck`]): NUT's files, the settings
/// against them (without asking upsd), and the hardware against ups.conf (without serial
/// dialogues: a configured port belongs to its NUT driver, which may be starting right now;
/// the agent watches upsd itself, so without the live view).
pub fn recheck(r: &Recheck) -> Vec<Finding> {
    recheck_sections(r).0
}

/// [`recheck`], and the sections ups.conf has (for self-healing and auto-adopt).
pub fn recheck_sections(r: &Recheck) -> (Vec<Finding>, Vec<String>) {
    let plan = Plan {
        face: Face::Recheck,
        nut_dir: r.nut_dir.to_path_buf(),
        dir_source: inspect::plan::DirSource::Option,
        installed: r.installed.clone(),
        settings_path: r.settings_path.to_path_buf(),
        settings: Some(r.settings.clone()),
        settings_warnings: Vec::new(),
        root: r.root.clone(),
        usb: inspect::plan::usb_reader(r.root),
        upsd: None,
        talk: Face::Recheck.talk(None),
        serial_ports: Vec::new(),
    };
    let report = inspect::check(&plan, &|_| {});
    let sections = report
        .parsed
        .ups
        .map(|u| u.sections.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    (report.findings, sections)
}

/// A finding's identity across checks: the same code, file, line and message.
fn key(f: &Finding) -> (crate::nut::diag::Code, &str, u32, &str) {
    (f.code, &f.file, f.line, &f.message)
}

/// Findings of `new` not in `old` (appeared), and of `old` not in `new` (gone).
pub fn diff<'a>(old: &'a [Finding], new: &'a [Finding]) -> (Vec<&'a Finding>, Vec<&'a Finding>) {
    let appeared = new
        .iter()
        .filter(|n| !old.iter().any(|o| key(o) == key(n)))
        .collect();
    let gone = old
        .iter()
        .filter(|o| !new.iter().any(|n| key(o) == key(n)))
        .collect();
    (appeared, gone)
}

/// `file:line:column: severity[code]: message`, as `validate` prints a finding.
pub fn describe(f: &Finding) -> String {
    let place = match (f.file.is_empty(), f.line) {
        (true, _) => String::new(),
        (false, 0) => format!("{}: ", f.file),
        (false, l) => format!("{}:{l}:{}: ", f.file, f.column),
    };
    format!("{place}{}[{}]: {}", f.severity.as_str(), f.code, f.message)
}

pub fn level(s: Severity) -> log::Level {
    match s {
        Severity::Error => log::Level::Error,
        Severity::Warning => log::Level::Warn,
        Severity::Info => log::Level::Info,
    }
}

/// `N error(s), N warning(s), N info(s)`.
pub fn summary(findings: &[Finding]) -> (usize, usize, usize) {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::Error), n(Severity::Warning), n(Severity::Info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::diag::Code;
    use crate::nut::lexer::Pos;

    fn f(code: Code, line: u32, msg: &str) -> Finding {
        Finding::new(
            Severity::Error,
            code,
            "ups.conf",
            Pos::new(line, 1),
            msg.into(),
        )
    }

    #[test]
    fn agent_check_diffs_findings_by_code_file_line_and_message() {
        let old = [f(Code::MissingPort, 3, "a"), f(Code::NoUps, 0, "b")];
        let mut moved = f(Code::MissingPort, 4, "a");
        moved.hint = Some("different hint, same finding otherwise".into());
        let new = [moved, f(Code::NoUps, 0, "b")];
        let (appeared, gone) = diff(&old, &new);
        assert_eq!(appeared, [&new[0]]);
        assert_eq!(gone, [&old[0]]);
        let (a, g) = diff(&new, &new);
        assert!(a.is_empty() && g.is_empty());
    }

    #[test]
    fn agent_check_describes_like_validate() {
        assert_eq!(
            describe(&f(Code::MissingPort, 3, "no port")),
            "ups.conf:3:1: error[missing-port]: no port"
        );
        assert_eq!(
            describe(&f(Code::NoUps, 0, "none")),
            "ups.conf: error[no-ups]: none"
        );
    }
}
