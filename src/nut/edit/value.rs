//! What NUT can carry, and words written so NUT reads them back unchanged.

use super::{Reason, MAX_NAME};
use crate::nut::conf::format_word;
use crate::nut::lexer::WORD_LIMIT;

/// A value in a file: printable ASCII (0x20–0x7E), at most the lexer's word length. Anything
/// else NUT drops, cuts or reads as a line break (a newline would add a line).
pub fn check_value(what: &str, v: &str) -> Result<(), Reason> {
    if let Some(b) = v.bytes().find(|b| !(0x20..=0x7e).contains(b)) {
        let why = match b {
            b'\n' | b'\r' => "a line break would end the line (and could add one)",
            0x80.. => "NUT drops bytes outside ASCII",
            _ => "NUT drops control characters",
        };
        return Err(Reason::Value {
            what: what.to_string(),
            why: format!("has byte 0x{b:02x}: {why}; use printable ASCII (0x20 to 0x7E) only"),
        });
    }
    if v.len() > WORD_LIMIT {
        return Err(Reason::Value {
            what: what.to_string(),
            why: format!("has {} characters; NUT keeps only {WORD_LIMIT}", v.len()),
        });
    }
    Ok(())
}

/// A UPS or user name: NUT's clients address it as NAME@HOST, systemd as `nut-driver@NAME`, and
/// it names files in NUT's state directory.
pub fn check_name(what: &str, v: &str) -> Result<(), Reason> {
    let bad = |why: &str| {
        Err(Reason::Name {
            what: what.to_string(),
            why: why.to_string(),
        })
    };
    if v.is_empty() {
        return bad("is empty");
    }
    if v.len() > MAX_NAME {
        return bad(&format!("is longer than {MAX_NAME} characters"));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        let shown = match c {
            ' ' => "a space".to_string(),
            c if c.is_ascii_graphic() => format!("`{c}`"),
            c => format!("character U+{:04X}", c as u32),
        };
        return bad(&format!(
            "contains {shown}; use letters, digits, `_`, `-` and `.` only"
        ));
    }
    if v.contains("..") || v.starts_with(['-', '.']) {
        return bad("may not start with `-` or `.`, nor contain `..`");
    }
    Ok(())
}

/// A setting's or command's name (`vendorid`, `override.battery.charge.low`, `load.off`).
pub fn check_key(what: &str, v: &str) -> Result<(), Reason> {
    let ok = !v.is_empty()
        && v.len() <= MAX_NAME
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !v.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Reason::Name {
            what: what.to_string(),
            why: "is not a setting name: letters, digits, `_`, `.` and `-` only".into(),
        })
    }
}

/// A user name or password upsmon sends: upsmon writes `PASSWORD %s` without quoting, and upsd
/// reads that line with the same lexer as the files, so a space, `=`, `#`, `"` or `\` would
/// split or change it.
pub fn check_login(what: &str, v: &str) -> Result<(), Reason> {
    check_value(what, v)?;
    let why = if v.is_empty() {
        Some("is empty".to_string())
    } else {
        v.chars()
            .find(|c| matches!(c, ' ' | '=' | '#' | '"' | '\\'))
            .map(|c| {
                let shown = if c == ' ' { "a space".to_string() } else { format!("`{c}`") };
                format!("contains {shown}: upsmon sends it to upsd unquoted and upsd would read it differently")
            })
    };
    match why {
        Some(why) => Err(Reason::Value {
            what: what.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// A host name or address in `UPS@HOST` or a LISTEN line.
pub fn check_host(what: &str, v: &str) -> Result<(), Reason> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_' | b'*'))
        && !v.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Reason::Name {
            what: what.to_string(),
            why: "is not a host name or address".into(),
        })
    }
}

/// A word as NUT reads it back: bare when it can be, else quoted with `\`, `"` and `#`
/// escaped (an escaped `#` is literal in every release, a quoted bare one only from 2.8.6).
/// `quoted` keeps the double quotes of the word it replaces.
pub fn word(text: &str, quoted: bool) -> String {
    let w = format_word(text);
    if quoted && !w.starts_with('"') {
        format!("\"{w}\"")
    } else {
        w
    }
}
