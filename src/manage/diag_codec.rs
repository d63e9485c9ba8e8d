//! Findings as one line of tab-separated fields, for the spool's results.

use crate::nut::diag::{Finding, Severity};

pub fn finding_to(f: &Finding) -> String {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        f.severity.as_str(),
        f.code.as_str(),
        clean(&f.file),
        f.line,
        f.column,
        clean(&f.message),
        f.hint.as_deref().map(clean).unwrap_or_default()
    )
}

pub fn finding_from(s: &str) -> Option<Finding> {
    let w: Vec<&str> = s.splitn(7, '\t').collect();
    let [sev, code, file, line, col, message, hint] = w[..] else {
        return None;
    };
    let severity = [Severity::Error, Severity::Warning, Severity::Info]
        .into_iter()
        .find(|x| x.as_str() == sev)?;
    Some(Finding {
        severity,
        code: super::code_named(code)?,
        file: file.to_string(),
        line: line.parse().ok()?,
        column: col.parse().ok()?,
        message: message.to_string(),
        hint: (!hint.is_empty()).then(|| hint.to_string()),
        section: None,
    })
}
