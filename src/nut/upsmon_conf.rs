//! upsmon.conf: which UPSes upsmon watches, and what it does about them.

use super::conf::{directive, Directive};
use super::diag::{Code, Sink};
use super::lexer::{Line, Pos, Word};
use super::version::NutVersion;
use super::Context;

/// What a MONITOR line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorRole {
    Primary,
    Secondary,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub ups: String,
    pub host: String,
    pub port: u16,
    pub power_value: u32,
    pub user: String,
    pub password: String,
    pub role: MonitorRole,
    pub pos: Pos,
    pub ups_pos: Pos,
    pub user_pos: Pos,
    pub password_pos: Pos,
    pub role_pos: Pos,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpsmonConf {
    pub monitors: Vec<Monitor>,
    pub min_supplies: Option<(u32, Pos)>,
    pub run_as_user: Option<String>,
    pub shutdown_cmd: Option<String>,
}

/// Directives and the words each needs after the keyword: generated from NUT's releases
/// (`nut-releases/gen-tables`).
pub const DIRECTIVES: &[Directive] = super::directives::UPSMON_CONF;

/// Notify types and the release that added each, as each release's upsmon logs "invalid
/// notify type" (NOTIFYFLAG) or "not a valid notify event name" (NOTIFYMSG) for the others:
/// generated from NUT's releases (`nut-releases/gen-tables`).
const NOTIFY_TYPES: &[(&str, Option<NutVersion>)] = super::directives::NOTIFY_TYPES;
const NOTIFY_FLAGS: &[&str] = &["SYSLOG", "WALL", "EXEC", "IGNORE"];
const NUMERIC: &[&str] = &[
    "MINSUPPLIES",
    "POLLFREQ",
    "POLLFREQALERT",
    "HOSTSYNC",
    "DEADTIME",
    "RBWARNTIME",
    "NOCOMMWARNTIME",
    "FINALDELAY",
    "CERTVERIFY",
    "FORCESSL",
    "DEBUG_MIN",
    "POLLFAIL_LOG_THROTTLE_MAX",
    "OFFDURATION",
    "OBLBDURATION",
    "ALARMCRITICAL",
    "OVERDURATION",
];

pub fn parse(lines: &[Line], cx: &Context, sink: &mut Sink) -> UpsmonConf {
    let mut conf = UpsmonConf::default();
    // (directive, or notify setting and its type; the line it was first set on)
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    // An old-style MONITOR line stops upsmon before it counts the power supplies.
    let mut old_style = false;
    for line in lines.iter().filter(|l| !l.skipped && !l.words.is_empty()) {
        let key = &line.words[0];
        let args = &line.words[1..];
        let Some((name, need, _)) = directive(key, DIRECTIVES, "upsmon", cx.version, sink) else {
            continue;
        };
        // upsmon reads a MONITOR line of four words as the pre-2.0 form without a user name,
        // whatever the words are, and stops (measured in 2.8.0, 2.8.1 and 2.8.5).
        if name == "MONITOR" && args.len() == 4 {
            old_style = true;
            sink.error(
                Code::BadMonitor,
                key.pos,
                "a MONITOR line of four words is the old form without a user name: upsmon stops with \"Unable to use old-style MONITOR line without a username\" (\"unusable configuration\")".into(),
            )
            .with_hint("write `MONITOR ups@host POWERVALUE USER PASSWORD primary|secondary`; quote a password with spaces");
            continue;
        }
        if args.len() < need {
            let code = if name == "MONITOR" {
                Code::BadMonitor
            } else {
                Code::MissingValue
            };
            let f = sink.push(
                if name == "MONITOR" {
                    super::diag::Severity::Error
                } else {
                    super::diag::Severity::Warning
                },
                code,
                key.pos,
                format!(
                    "`{name}` needs {need} word(s) after it, this line has {}: upsmon ignores it",
                    args.len()
                ),
            );
            if name == "MONITOR" {
                f.with_hint("write `MONITOR ups@host POWERVALUE USER PASSWORD primary|secondary`; quote a password with spaces");
            }
            continue;
        }
        if let Some(extra) = args.get(need) {
            let what = if name == "SHUTDOWNCMD" || name == "NOTIFYCMD" {
                "upsmon takes only the first word as the command; put the whole command in double quotes"
            } else {
                "upsmon ignores the words after the value; quote a value that contains spaces"
            };
            sink.warning(
                Code::ExtraWords,
                extra.pos,
                format!("`{name}` takes {need} word(s): {what}"),
            );
        }
        if args[0].text == "=" {
            sink.warning(
                Code::BadValue,
                args[0].pos,
                format!("upsmon.conf has no `=`: `{name} = ...` makes `=` the value"),
            )
            .with_hint(format!("write `{name} VALUE`"));
            continue;
        }
        // A directive given twice: upsmon keeps the later one without a word. MONITOR and
        // CERTHOST take one line per UPS or host; the notify settings one per type.
        if !matches!(name, "MONITOR" | "CERTHOST") {
            let what = if name.starts_with("NOTIFY") && name != "NOTIFYCMD" {
                format!("{name} {}", args[0].text)
            } else {
                name.to_string()
            };
            if let Some(first) = seen.get(&what) {
                sink.warning(
                    Code::Duplicate,
                    key.pos,
                    format!("`{what}` is also set on line {first}: upsmon keeps this later one and ignores the first without a word"),
                )
                .with_hint("keep one of the two lines");
            } else {
                seen.insert(what, key.pos.line);
            }
        }
        match name {
            "MONITOR" => {
                if let Some(m) = parse_monitor(args, cx, sink) {
                    conf.monitors.push(m);
                }
            }
            "MINSUPPLIES" => {
                if let Ok(n) = args[0].text.parse() {
                    conf.min_supplies = Some((n, key.pos));
                }
            }
            "RUN_AS_USER" => conf.run_as_user = Some(args[0].text.to_string()),
            "SHUTDOWNCMD" => conf.shutdown_cmd = Some(args[0].text.to_string()),
            "NOTIFYFLAG" | "NOTIFYMSG" => {
                check_notify_type(&args[0], cx, sink);
                if name == "NOTIFYFLAG" {
                    for flag in args[1].text.split('+') {
                        if !NOTIFY_FLAGS.contains(&flag) {
                            sink.warning(
                                Code::BadValue,
                                args[1].pos,
                                format!("`{flag}` is not a notify flag: use SYSLOG, WALL, EXEC or IGNORE joined by `+`"),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
        if NUMERIC.contains(&name) && args[0].text.parse::<i64>().is_err() {
            sink.warning(
                Code::BadValue,
                args[0].pos,
                format!("`{name}` must be a whole number, not `{}`", args[0].text),
            );
        }
    }
    if !conf.monitors.is_empty() && conf.shutdown_cmd.as_deref().is_none_or(str::is_empty) {
        sink.warning(
            Code::MissingValue,
            Pos::new(0, 0),
            "upsmon.conf has no SHUTDOWNCMD: on low battery upsmon cannot shut this system down"
                .into(),
        )
        .with_hint("add `SHUTDOWNCMD \"/sbin/shutdown -h +0\"`");
    }
    let supply: u32 = conf.monitors.iter().map(|m| m.power_value).sum();
    let (min, pos) = conf.min_supplies.unwrap_or((1, Pos::new(0, 0)));
    if old_style {
        // upsmon has already stopped: the supplies are never counted.
    } else if conf.monitors.is_empty() && min > 0 {
        sink.error(
            Code::NoMonitor,
            pos,
            "upsmon.conf has no usable MONITOR line: upsmon stops with \"insufficient power configured\"".into(),
        )
        .with_hint(format!(
            "add `MONITOR myups@localhost 1 USER PASSWORD {}`",
            if cx.version.knows_primary() { "primary" } else { "master" }
        ));
    } else if supply < min {
        sink.error(
            Code::InsufficientPower,
            pos,
            format!("MINSUPPLIES is {min} but the MONITOR lines supply {supply}: upsmon stops with \"insufficient power configured\""),
        )
        .with_hint("lower MINSUPPLIES, or raise the power values of the MONITOR lines");
    }
    conf
}

fn check_notify_type(w: &Word, cx: &Context, sink: &mut Sink) {
    let known = || {
        NOTIFY_TYPES
            .iter()
            .filter(|t| t.1.is_none_or(|v| v <= cx.version))
            .map(|t| t.0)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match NOTIFY_TYPES.iter().find(|t| t.0 == w.text.as_str()) {
        Some((_, Some(since))) if *since > cx.version => {
            sink.warning(
                Code::BadValue,
                w.pos,
                format!(
                    "`{}` is a notify type from NUT {since} on: upsmon {} does not know it and ignores the line",
                    w.text, cx.version
                ),
            )
            .with_hint(format!("types of NUT {}: {}", cx.version, known()));
        }
        Some(_) => {}
        None => {
            sink.warning(
                Code::BadValue,
                w.pos,
                format!("`{}` is not a notify type upsmon knows", w.text),
            )
            .with_hint(format!("types are: {}", known()));
        }
    }
}

/// `MONITOR ups@host[:port] POWERVALUE USER PASSWORD primary|secondary`.
fn parse_monitor(args: &[Word], cx: &Context, sink: &mut Sink) -> Option<Monitor> {
    let [system, power, user, password, role, ..] = args else {
        return None;
    };
    let (ups, host, port) = match split_system(&system.text) {
        Ok(parts) => parts,
        Err(why) => {
            sink.error(Code::BadMonitor, system.pos, why)
                .with_hint("write the UPS as NAME@HOST or NAME@HOST:PORT");
            return None;
        }
    };
    let power_value = match power.text.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            sink.error(
                Code::BadMonitor,
                power.pos,
                format!("the power value must be a whole number (how many supplies this UPS feeds), not `{}`", power.text),
            );
            return None;
        }
    };
    let modern = cx.version.knows_primary();
    let role_kind = match role.text.to_ascii_lowercase().as_str() {
        "primary" if modern => MonitorRole::Primary,
        "secondary" if modern => MonitorRole::Secondary,
        "master" | "slave" => {
            let new = if role.text.eq_ignore_ascii_case("master") {
                "primary"
            } else {
                "secondary"
            };
            // Info, not a warning: every 2.8 release accepts it, and most published
            // configurations still write it (109 times in 54 of 71 of a corpus).
            if modern {
                sink.info(
                    Code::Deprecated,
                    role.pos,
                    format!("`{}` is the old spelling", role.text),
                )
                .with_hint(format!("write `{new}` (NUT 2.8.0 and later)"));
            }
            if new == "primary" {
                MonitorRole::Primary
            } else {
                MonitorRole::Secondary
            }
        }
        _ => {
            let hint = if modern {
                "primary or secondary"
            } else {
                "master or slave"
            };
            sink.error(
                Code::BadMonitor,
                role.pos,
                // The word may be part of a password split at a space: it is not echoed.
                format!(
                    "the sixth word of MONITOR is not a role: upsmon {} knows {hint}",
                    cx.version
                ),
            )
            .with_hint(format!(
                "the last word of MONITOR is {hint}; quote a password with spaces"
            ));
            return None;
        }
    };
    // upsmon sends USERNAME and PASSWORD without quoting; upsd reads the line with the same
    // lexer as the files, so these characters split or change the word.
    for (what, w) in [("user name", user), ("password", password)] {
        if let Some(c) = w
            .text
            .chars()
            .find(|c| matches!(c, ' ' | '=' | '"' | '\\' | '#') || c.is_ascii_control())
        {
            let shown = if c == ' ' {
                "a space".to_string()
            } else {
                format!("`{c}`")
            };
            sink.error(
                Code::BadMonitor,
                w.pos,
                format!("this {what} contains {shown}: upsmon sends it to upsd unquoted, so upsd reads it differently and the login fails (INVALID-ARGUMENT or ACCESS-DENIED)"),
            )
            .with_hint(format!("use a {what} of letters, digits and punctuation other than `=`, `#`, `\"` and `\\`, in both upsmon.conf and upsd.users"));
        }
    }
    Some(Monitor {
        ups,
        host,
        port,
        power_value,
        user: user.text.to_string(),
        password: password.text.to_string(),
        role: role_kind,
        pos: system.pos,
        ups_pos: system.pos,
        user_pos: user.pos,
        password_pos: password.pos,
        role_pos: role.pos,
    })
}

/// Splits `ups@host[:port]` as NUT's `upscli_splitname` does.
pub fn split_system(s: &str) -> Result<(String, String, u16), String> {
    let t = super::target::Target::parse(s)?;
    let ups = t
        .ups
        .ok_or_else(|| format!("`{s}` has no UPS name before `@`"))?;
    Ok((ups, t.host, t.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_system_names() {
        assert_eq!(
            split_system("ups@localhost"),
            Ok(("ups".into(), "localhost".into(), 3493))
        );
        assert_eq!(
            split_system("ups@h:1234"),
            Ok(("ups".into(), "h".into(), 1234))
        );
        assert_eq!(
            split_system("ups"),
            Ok(("ups".into(), "localhost".into(), 3493))
        );
        assert_eq!(
            split_system("ups@[::1]:99"),
            Ok(("ups".into(), "::1".into(), 99))
        );
        assert_eq!(
            split_system("ups@::1"),
            Ok(("ups".into(), "::1".into(), 3493))
        );
        assert!(split_system("ups@h:x").is_err());
        assert!(split_system("@h").is_err());
    }
}
