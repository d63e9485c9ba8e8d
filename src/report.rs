//! Renders findings for a person (like a compiler) or for a program (JSON).

use std::path::Path;

use crate::json::Object;
use crate::nut::diag::{Finding, Severity};

/// Counts by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Self {
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        Summary {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
        }
    }

    /// The monitoring-plugin exit code: 0 clean (or info only), 1 warnings, 2 errors.
    pub fn exit_code(self) -> u8 {
        if self.errors > 0 {
            2
        } else if self.warnings > 0 {
            1
        } else {
            0
        }
    }
}

/// What a validation run found, and against what.
pub struct Validation<'a> {
    pub dir: &'a Path,
    pub nut_version: String,
    /// Where the version came from: a program's path, `--nut-version`, or `default`.
    pub version_source: String,
    pub findings: &'a [Finding],
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn human(v: &Validation) -> String {
    let mut out = String::new();
    for f in v.findings {
        let path = if f.file.is_empty() {
            v.dir.display().to_string()
        } else {
            v.dir.join(&f.file).display().to_string()
        };
        let place = if f.line == 0 {
            path
        } else {
            format!("{path}:{}:{}", f.line, f.column)
        };
        out.push_str(&format!(
            "{place}: {}[{}]: {}\n",
            f.severity.as_str(),
            f.code,
            f.message
        ));
        if let Some(h) = &f.hint {
            out.push_str(&format!("    hint: {}\n", h.replace('\n', "\n          ")));
        }
    }
    let s = Summary::of(v.findings);
    out.push_str(&format!(
        "{}: {}, {}, {} (NUT {}, {})\n",
        v.dir.display(),
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        plural(s.infos, "info"),
        v.nut_version,
        v.version_source
    ));
    out
}

pub fn json(v: &Validation) -> String {
    json_with(v, &[])
}

/// The JSON report with more top-level fields (already JSON) after the findings.
pub fn json_with(v: &Validation, extra: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut findings = String::from("[");
    for (i, f) in v.findings.iter().enumerate() {
        if i > 0 {
            findings.push(',');
        }
        let path = (!f.file.is_empty()).then(|| v.dir.join(&f.file).display().to_string());
        let mut o = Object::new(&mut findings);
        o.str("severity", f.severity.as_str())
            .str("code", f.code.as_str())
            .str("file", &f.file)
            .opt_str("path", path.as_deref())
            .num("line", f.line.into())
            .num("column", f.column.into())
            .str("message", &f.message)
            .opt_str("hint", f.hint.as_deref());
        o.end();
    }
    findings.push(']');
    let s = Summary::of(v.findings);
    let mut summary = String::new();
    let mut o = Object::new(&mut summary);
    o.num("errors", s.errors as u64)
        .num("warnings", s.warnings as u64)
        .num("infos", s.infos as u64);
    o.end();
    let mut o = Object::new(&mut out);
    o.str("nut_dir", &v.dir.display().to_string())
        .str("nut_version", &v.nut_version)
        .str("nut_version_source", &v.version_source)
        .raw("findings", &findings)
        .raw("summary", &summary)
        .num("exit_code", s.exit_code().into());
    for (k, raw) in extra {
        o.raw(k, raw);
    }
    o.end();
    out.push('\n');
    out
}

/// A failure of the check itself, as JSON.
pub fn json_error(message: &str) -> String {
    let mut out = String::new();
    let mut inner = String::new();
    let mut e = Object::new(&mut inner);
    e.str("kind", "usage").str("message", message);
    e.end();
    let mut o = Object::new(&mut out);
    o.raw("error", &inner);
    o.end();
    out.push('\n');
    out
}
