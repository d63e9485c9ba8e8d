//! ups.conf: the UPS sections the drivers, upsdrvctl and upsd read.

use super::conf::{format_line, report_extra, section_name, setting, Setting};
use super::diag::{Code, Sink};
use super::drivers::{Lookup, VarKind, GLOBAL};
use super::fnv::FnvMap;
use super::lexer::{Line, Pos};
use super::text::Text;
use super::Context;

/// One `name = value` or flag line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Text,
    /// `None` for a flag.
    pub value: Option<Text>,
    pub pos: Pos,
    pub value_pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsSection {
    pub name: String,
    /// Where the `[name]` header is.
    pub pos: Pos,
    pub entries: Vec<Entry>,
}

impl UpsSection {
    /// The value NUT uses: the last one given.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.name == name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|e| e.value.as_deref())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpsConf {
    pub globals: Vec<Entry>,
    pub sections: Vec<UpsSection>,
}

impl UpsConf {
    /// The sections NUT ends up with: a repeated name merges into its first occurrence.
    pub fn section(&self, name: &str) -> Option<&UpsSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn global(&self, name: &str) -> Option<&str> {
        self.globals
            .iter()
            .rev()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }
}

/// Reads the structure, as NUT's `upsconf.c` does, reporting lines NUT ignores.
pub fn parse(lines: &[Line], sink: &mut Sink) -> UpsConf {
    let mut conf = UpsConf::default();
    for line in lines.iter().filter(|l| !l.skipped && !l.words.is_empty()) {
        let first = &line.words[0];
        if let Some(name) = section_name(first) {
            report_extra(sink, first, &line.words[1..]);
            conf.sections.push(UpsSection {
                name: name.to_string(),
                pos: first.pos,
                entries: Vec::new(),
            });
            continue;
        }
        let entry = match setting(line) {
            Setting::Flag(w) => Entry {
                name: w.text.clone(),
                value: None,
                pos: w.pos,
                value_pos: w.pos,
            },
            Setting::Value { name, value, extra } => {
                report_extra(sink, name, extra);
                Entry {
                    name: name.text.clone(),
                    value: Some(value.text.clone()),
                    pos: name.pos,
                    value_pos: value.pos,
                }
            }
            Setting::Empty(name) => {
                sink.warning(
                    Code::MissingValue,
                    name.pos,
                    format!("`{} =` has no value, so NUT ignores the line", name.text),
                )
                .with_hint(format!("write `{} = VALUE`", name.text));
                continue;
            }
            Setting::Other => {
                if line.after_error {
                    sink.warning(
                        Code::NotASetting,
                        first.pos,
                        "NUT reads the rest of the line after the `#` as a line of its own, and ignores it".into(),
                    );
                } else if first.text.starts_with('[') {
                    sink.warning(
                        Code::NotASetting,
                        first.pos,
                        "NUT ignores this line: a section name cannot contain white space, so this is not a `[section]` header, and the settings below it go to the section before".into(),
                    )
                    .with_hint("write the name without spaces, e.g. `[rack-ups]`");
                } else {
                    let w = &line.words;
                    // The value of a secret (an SNMP community) is not echoed.
                    let value = if super::conf::is_secret_name(&w[0].text) {
                        "VALUE"
                    } else {
                        w[1].text.as_str()
                    };
                    sink.warning(
                        Code::NotASetting,
                        first.pos,
                        "NUT ignores this line: it is neither a `[section]` nor `name = value`"
                            .into(),
                    )
                    .with_hint(format!("write `{} = {value}`", w[0].text));
                }
                continue;
            }
        };
        match conf.sections.last_mut() {
            Some(section) => section.entries.push(entry),
            None => conf.globals.push(entry),
        }
    }
    conf
}

/// A section as NUT's programs use it: a repeated `[name]` adds to the first one.
#[derive(Clone, Debug)]
pub struct Merged<'a> {
    pub name: &'a str,
    pub pos: Pos,
    pub entries: Vec<&'a Entry>,
}

impl Merged<'_> {
    /// The value NUT uses: the last one given.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.name == name).copied()
    }
}

/// Merges repeated sections, reporting each repetition.
pub fn merged<'a>(conf: &'a UpsConf, sink: &mut Sink) -> Vec<Merged<'a>> {
    let mut out: Vec<Merged> = Vec::with_capacity(conf.sections.len());
    let mut index: FnvMap<&str, usize> =
        FnvMap::with_capacity_and_hasher(conf.sections.len(), Default::default());
    for section in &conf.sections {
        match index.get(section.name.as_str()) {
            Some(&i) => {
                let first = &mut out[i];
                sink.warning(
                    Code::Duplicate,
                    section.pos,
                    format!(
                        "UPS `{}` is already defined at line {}; NUT merges both sections and later values win",
                        section.name, first.pos.line
                    ),
                )
                .with_hint("give each UPS its own name, or merge the sections");
                first.entries.extend(section.entries.iter());
            }
            None => {
                index.insert(&section.name, out.len());
                out.push(Merged {
                    name: &section.name,
                    pos: section.pos,
                    entries: section.entries.iter().collect(),
                });
            }
        }
    }
    out
}

/// Checks what NUT's programs will make of the sections.
pub fn check(conf: &UpsConf, cx: &Context, sink: &mut Sink) {
    check_globals(conf, cx, sink);
    for section in &merged(conf, sink) {
        check_name(section, sink);
        check_section(section, cx, sink);
    }
}

fn check_globals(conf: &UpsConf, cx: &Context, sink: &mut Sink) {
    for e in &conf.globals {
        match cx.drivers.lookup(GLOBAL, &e.name, cx.version) {
            Lookup::Accepted(kind) => {
                check_kind(e, kind, sink);
                check_value(e, sink);
            }
            Lookup::NotYet(v) => {
                sink.warning(
                    Code::UnknownDirective,
                    e.pos,
                    format!(
                        "`{}` is understood from NUT {v} on; NUT {} ignores it",
                        e.name, cx.version
                    ),
                );
            }
            Lookup::NoLonger(v) => {
                sink.warning(
                    Code::Removed,
                    e.pos,
                    format!("`{}` is no longer read since NUT {v}", e.name),
                );
            }
            Lookup::Unknown => {
                let in_section = cx
                    .drivers
                    .section_var("", &e.name, cx.version)
                    .is_some_and(|l| matches!(l, Lookup::Accepted(_)))
                    || cx
                        .drivers
                        .drivers
                        .iter()
                        .any(|d| d.vars.iter().any(|v| e.name == v.name.as_str()));
                if in_section {
                    sink.warning(
                        Code::OutsideSection,
                        e.pos,
                        format!("`{}` is a UPS setting, but it comes before any `[section]`, so NUT ignores it", e.name),
                    )
                    .with_hint("move it below the `[name]` line of its UPS");
                } else {
                    sink.warning(
                        Code::UnknownDirective,
                        e.pos,
                        format!(
                            "NUT does not know the global setting `{}` and ignores it",
                            e.name
                        ),
                    )
                    .with_hint(format!(
                        "global settings are: {}",
                        cx.drivers.accepted(GLOBAL, cx.version).join(", ")
                    ));
                }
            }
        }
    }
}

fn check_name(section: &Merged, sink: &mut Sink) {
    let name = section.name;
    if name.is_empty() {
        sink.error(
            Code::BadSectionName,
            section.pos,
            "a section needs a name: `[]` cannot be started or monitored".into(),
        )
        .with_hint("write e.g. `[myups]`");
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        sink.warning(
            Code::BadSectionName,
            section.pos,
            format!("the UPS name `{name}` contains `{c}`; clients address a UPS as NAME@HOST:PORT, so use letters, digits, `_`, `-` and `.` only"),
        );
    }
}

/// Does a section have what upsd needs to serve it (`driver` and `port`)?
pub fn complete(section: &UpsSection) -> bool {
    section
        .get("driver")
        .and_then(|e| e.value.as_deref())
        .is_some_and(|d| !d.is_empty())
        && section.value("port").is_some_and(|p| !p.is_empty())
}

fn check_section(section: &Merged, cx: &Context, sink: &mut Sink) {
    let driver = section.get("driver");
    let Some(driver_entry) = driver else {
        sink.error(
            Code::MissingDriver,
            section.pos,
            format!(
                "UPS `{}` has no `driver`, so no driver can serve it",
                section.name
            ),
        )
        .with_hint("add `driver = NAME` (e.g. usbhid-ups for most USB UPSes)");
        return check_port(section, sink);
    };
    check_port(section, sink);
    let driver = driver_entry.value.as_deref().unwrap_or_default();
    let known = cx
        .drivers
        .driver(driver)
        .is_some_and(|d| d.since.is_none_or(|s| s <= cx.version));
    let on_host = cx.host_drivers.map(|h| h.iter().any(|d| d == driver));
    match (known, on_host) {
        (_, Some(true)) | (true, None) => {}
        // A driver of this release that Debian ships in a package of its own, not installed.
        (true, Some(false)) if package_of(driver).is_some() => {
            let package = package_of(driver).unwrap_or_default();
            sink.error(
                Code::UnknownDriver,
                driver_entry.value_pos,
                format!("driver `{driver}` (NUT {}) is not installed on this host: it comes in the package {package}, and the driver cannot start without it", cx.version),
            )
            .with_hint(format!("install {package} (e.g. `apt install {package}`)"));
        }
        (_, Some(false)) | (false, None) => {
            let near = nearest(driver, cx);
            let where_ = if on_host.is_some() {
                "this host's NUT driver directory"
            } else {
                "NUT"
            };
            let f = sink.error(
                Code::UnknownDriver,
                driver_entry.value_pos,
                format!("there is no driver `{driver}` in {where_} {}", cx.version),
            );
            match near {
                Some(n) => f.with_hint(format!("did you mean `{n}`?")),
                None => f.with_hint("see the driver list in NUT's hardware compatibility list"),
            }
        }
    }
    let mut seen: Vec<&Entry> = Vec::new();
    for &e in &section.entries {
        if let Some(prev) = seen.iter().find(|p| p.name == e.name) {
            sink.warning(
                Code::Duplicate,
                e.pos,
                format!(
                    "`{}` is already set at line {}; the later value wins",
                    e.name, prev.pos.line
                ),
            );
        } else {
            seen.push(e);
        }
        match cx.drivers.section_var(driver, &e.name, cx.version) {
            Some(Lookup::Accepted(kind)) => {
                check_kind(e, kind, sink);
                check_value(e, sink);
            }
            Some(Lookup::NotYet(v)) => {
                sink.error(
                    Code::UnknownVariable,
                    e.pos,
                    format!(
                        "`{}` is accepted by {driver} from NUT {v} on; the {driver} of NUT {} stops with a fatal error on it",
                        e.name, cx.version
                    ),
                )
                .with_hint(format!("remove it, or upgrade NUT to {v}"));
            }
            Some(Lookup::NoLonger(v)) => {
                sink.error(
                    Code::UnknownVariable,
                    e.pos,
                    format!("{driver} no longer accepts `{}` since NUT {v}, and stops with a fatal error on it", e.name),
                )
                .with_hint("remove it");
            }
            Some(Lookup::Unknown) if known => {
                let f = sink.error(
                    Code::UnknownVariable,
                    e.pos,
                    format!(
                        "{driver} does not accept `{}`: the driver stops with \"'{}' is not a valid variable name for this driver\"",
                        e.name, e.name
                    ),
                );
                let accepted = cx.drivers.accepted(driver, cx.version);
                match accepted.iter().find(|a| close(a, &e.name)) {
                    Some(n) => f.with_hint(format!("did you mean `{n}`?")),
                    None => f.with_hint(format!("{driver} accepts: {}", accepted.join(", "))),
                }
            }
            Some(Lookup::Unknown) | None => {
                if cx.drivers.lookup(GLOBAL, &e.name, cx.version) != Lookup::Unknown {
                    // e.g. maxretry inside a section: only upsdrvctl reads it globally.
                    sink.warning(
                        Code::OutsideSection,
                        e.pos,
                        format!(
                            "`{}` is a global setting; inside a section the driver may reject it",
                            e.name
                        ),
                    )
                    .with_hint("move it above the first `[section]`");
                } else {
                    sink.info(
                        Code::UnknownVariable,
                        e.pos,
                        format!("cannot check `{}`: the variables of driver `{driver}` are not known here", e.name),
                    );
                }
            }
        }
    }
}

/// The Debian package of a driver that nut-server does not ship (Debian 12, 13 and sid alike).
fn package_of(driver: &str) -> Option<&'static str> {
    Some(match driver {
        "snmp-ups" => "nut-snmp",
        "netxml-ups" => "nut-xml",
        "nut-ipmipsu" => "nut-ipmi",
        "powerman-pdu" => "nut-powerman-pdu",
        "adelsystem_cbi"
        | "generic_modbus"
        | "huawei-ups2000"
        | "phoenixcontact_modbus"
        | "socomec_jbus"
        | "apc_modbus" => "nut-modbus",
        _ => return None,
    })
}

fn check_port(section: &Merged, sink: &mut Sink) {
    match section.get("port") {
        None => {
            sink.error(
                Code::MissingPort,
                section.pos,
                format!("UPS `{}` has no `port`: the driver stops with \"you must specify a port name\"", section.name),
            )
            .with_hint("add `port = auto` for USB, or the device path (e.g. /dev/ttyUSB0) for serial");
        }
        Some(Entry {
            value: Some(v),
            value_pos,
            ..
        }) if v.is_empty() => {
            sink.error(Code::BadValue, *value_pos, "`port` is empty".into())
                .with_hint("`port = auto` for USB, or a device path for serial");
        }
        // A USB-only driver never opens its port: it scans USB whatever the port says.
        Some(Entry {
            value: Some(v),
            value_pos,
            ..
        }) if v.starts_with("/dev/")
            && section
                .get("driver")
                .and_then(|e| e.value.as_deref())
                .is_some_and(|d| {
                    crate::nut::drivers::bus(d, v) == Some(crate::nut::drivers::Bus::Usb)
                }) =>
        {
            let driver = section
                .get("driver")
                .and_then(|e| e.value.as_deref())
                .unwrap_or_default();
            sink.warning(
                Code::BadValue,
                *value_pos,
                format!("{driver} talks only USB: it ignores `port = {v}` and opens the first USB device its matchers allow"),
            )
            .with_hint("write `port = auto`; for a serial UPS use a serial driver (e.g. blazer_ser, nutdrv_qx)");
        }
        _ => {}
    }
}

fn check_kind(e: &Entry, kind: VarKind, sink: &mut Sink) {
    match (kind, &e.value) {
        (VarKind::Flag, Some(v)) => {
            sink.warning(
                Code::FlagWithValue,
                e.pos,
                format!(
                    "`{}` is a flag: NUT turns it on whatever the value (`{v}`), even `no`",
                    e.name
                ),
            )
            .with_hint(format!(
                "write just `{}` to turn it on, or remove the line",
                e.name
            ));
        }
        (VarKind::Value, None) => {
            sink.warning(
                Code::FlagWithValue,
                e.pos,
                format!("`{}` takes a value; on its own it sets nothing", e.name),
            )
            .with_hint(format!("write `{} = VALUE`", e.name));
        }
        _ => {}
    }
}

/// Checks the form of values whose form NUT constrains.
fn check_value(e: &Entry, sink: &mut Sink) {
    let Some(v) = e.value.as_deref() else { return };
    let pos = e.value_pos;
    let name = e.name.as_str();
    // USB match values are regular expressions; only plain ones can be checked for form.
    let plain = || !v.chars().any(|c| "^$.*+?()[]{}|\\".contains(c));
    let hex4 = v.len() == 4 && v.chars().all(|c| c.is_ascii_hexdigit());
    let digits =
        |max: usize| v.len() <= max && !v.is_empty() && v.chars().all(|c| c.is_ascii_digit());
    // The driver compiles each USB matcher as a POSIX extended regular expression at start
    // and stops with "invalid regular expression" when one does not compile (every release).
    if matches!(
        name,
        "vendorid" | "productid" | "vendor" | "product" | "serial" | "bus" | "device" | "busport"
    ) {
        if let Err(why) = crate::nut::ere::Regex::new(v) {
            sink.error(
                Code::BadValue,
                pos,
                format!("`{name}` is matched as a regular expression, and `{v}` is not one ({why}): the driver stops at start with \"invalid regular expression\""),
            )
            .with_hint("escape the special characters (`\\?`, `\\*`, `\\.`), or match with `.` for any one character");
            return;
        }
    }
    match name {
        "vendorid" | "productid" if !hex4 && plain() => {
            let f = sink.error(
                Code::BadValue,
                pos,
                format!("`{name}` must be 4 hexadecimal digits (it is matched against the device's ID), not `{v}`"),
            );
            let d = v.trim_start_matches("0x").trim_start_matches("0X");
            if !d.is_empty() && d.len() <= 4 && d.chars().all(|c| c.is_ascii_hexdigit()) {
                f.with_hint(format!("write `{name} = {:0>4}`", d.to_ascii_lowercase()));
            }
        }
        "bus" | "device" if !digits(3) && plain() => {
            sink.error(
                Code::BadValue,
                pos,
                format!("`{name}` is matched against a USB {name} number such as `001`, not `{v}`"),
            )
            .with_hint("see `lsusb`: Bus 001 Device 004");
        }
        "busport"
            if (v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-'))
                && plain() =>
        {
            sink.error(
                Code::BadValue,
                pos,
                format!("`busport` is a USB port path such as `1.2`, not `{v}`"),
            );
        }
        // NUT reads these with atoi() or a string compare and silently falls back.
        "sdorder" | "maxstartdelay" | "maxretry" | "retrydelay" | "debug_min"
            if v.parse::<i64>().is_err() =>
        {
            sink.warning(
                Code::BadValue,
                pos,
                format!("`{name}` must be a whole number, not `{v}`; NUT reads it as 0"),
            );
        }
        "pollinterval" if !v.parse::<u32>().is_ok_and(|n| n > 0) => {
            sink.warning(
                Code::BadValue,
                pos,
                format!("`pollinterval` must be a whole number of seconds above 0, not `{v}`; the driver would poll without pause"),
            )
            .with_hint("the default is 2");
        }
        "synchronous" if !matches!(v, "yes" | "no" | "auto") => {
            sink.warning(
                Code::BadValue,
                pos,
                format!("`synchronous` is `yes`, `no` or `auto`, not `{v}`"),
            );
        }
        _ => {}
    }
}

fn nearest<'a>(driver: &str, cx: &'a Context) -> Option<&'a str> {
    let from_host = cx.host_drivers.into_iter().flatten().map(|s| s.as_str());
    from_host
        .chain(cx.drivers.driver_names(cx.version))
        .find(|n| close(n, driver))
}

/// Names that differ by case, `-`/`_`, or one edit.
pub fn close(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let (a, b) = (norm(a), norm(b));
    a == b
        || edit_distance(&a, &b) <= 1
        || (a.len() > 3 && (a.starts_with(&b) || b.starts_with(&a)))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Writes ups.conf text that NUT (and [`parse`]) reads back as `conf`.
pub fn format(conf: &UpsConf) -> String {
    fn entry(out: &mut String, indent: &str, e: &Entry) {
        out.push_str(indent);
        match &e.value {
            Some(v) => out.push_str(&format_line([e.name.as_str(), "=", v.as_str()])),
            None => out.push_str(&format_line([e.name.as_str()])),
        }
        out.push('\n');
    }
    let mut out = String::new();
    for e in &conf.globals {
        entry(&mut out, "", e);
    }
    for s in &conf.sections {
        out.push_str(&format_line([format!("[{}]", s.name).as_str()]));
        out.push('\n');
        for e in &s.entries {
            entry(&mut out, "\t", e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::conf::read_lines;

    #[test]
    fn a_driver_of_a_package_not_installed_names_the_package() {
        use crate::nut::drivers::DriverDb;
        use crate::nut::{validate, Context, FileMeta, FileState, Snapshot};
        let file = |t: &str| FileState::Read {
            text: t.as_bytes().to_vec(),
            meta: FileMeta {
                mode: 0o100640,
                uid: 0,
                gid: 0,
            },
        };
        let snap = Snapshot {
            ups_conf: file("[a]\n\tdriver = snmp-ups\n\tport = 10.0.0.9\n[b]\n\tdriver = snmp-upz\n\tport = x\n"),
            upsd_conf: FileState::Missing,
            upsd_users: FileState::Missing,
            upsmon_conf: FileState::Missing,
            nut_conf: FileState::Missing,
            daemon: None,
        };
        let host: Vec<String> = ["dummy-ups", "usbhid-ups"].map(String::from).to_vec();
        let cx = Context {
            version: crate::nut::version::NutVersion::new(2, 8, 0),
            drivers: DriverDb::builtin(),
            host_drivers: Some(&host),
        };
        let (_, findings) = validate(&snap, &cx);
        let on = |line: u32| {
            findings
                .iter()
                .find(|f| f.file == "ups.conf" && f.line == line)
                .map(|f| (f.severity, f.message.clone()))
                .unwrap_or_else(|| panic!("no finding on line {line}: {findings:?}"))
        };
        let (severity, message) = on(2);
        assert_eq!(severity, crate::nut::diag::Severity::Error);
        assert!(message.contains("package nut-snmp"), "{message}");
        assert!(!message.contains("there is no driver"), "{message}");
        assert!(on(5).1.contains("there is no driver `snmp-upz`"));
    }
    use crate::nut::lexer::Dialect;
    use crate::nut::Rng;

    fn parse_text(text: &str) -> (UpsConf, Vec<String>) {
        let mut sink = Sink::new("ups.conf");
        let lines = read_lines(text.as_bytes(), Dialect::HashInQuotesIsError, &mut sink);
        let conf = parse(&lines, &mut sink);
        (
            conf,
            sink.findings.iter().map(|f| f.code.to_string()).collect(),
        )
    }

    /// Names and values only: positions differ between the original and the formatted text.
    fn shape(c: &UpsConf) -> Vec<(Option<String>, String, Option<String>)> {
        let g = c.globals.iter().map(|e| {
            (
                None,
                e.name.to_string(),
                e.value.as_deref().map(String::from),
            )
        });
        let s = c.sections.iter().flat_map(|s| {
            std::iter::once((Some(s.name.clone()), String::new(), None)).chain(
                s.entries.iter().map(move |e| {
                    (
                        Some(s.name.clone()),
                        e.name.to_string(),
                        e.value.as_deref().map(String::from),
                    )
                }),
            )
        });
        g.chain(s).collect()
    }

    fn word(rng: &mut Rng, allow_empty: bool) -> String {
        const PIECES: &[&str] = &[
            "ups", "a b", "x=y", "#1", "\\", "\"", "[", "]", "port", "", "0463", "é",
        ];
        loop {
            let n = 1 + rng.below(3);
            let w: String = (0..n).map(|_| rng.pick(PIECES)).collect();
            // NUT keeps printable ASCII only; a name cannot be `=` or look like a header.
            let w: String = w.chars().filter(|c| (' '..='~').contains(c)).collect();
            let header = w.starts_with('[') && w.ends_with(']') && w.len() >= 2;
            if (allow_empty || !w.is_empty()) && w != "=" && !header {
                return w;
            }
        }
    }

    fn entry(rng: &mut Rng, flag: bool) -> Entry {
        Entry {
            name: Text::new(&word(rng, false)),
            value: (!flag).then(|| Text::new(&word(rng, true))),
            pos: Pos::default(),
            value_pos: Pos::default(),
        }
    }

    #[test]
    fn format_then_parse_gives_the_same_configuration() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..3_000 {
            let mut conf = UpsConf::default();
            for i in 0..rng.below(3) {
                conf.globals.push(entry(&mut rng, i == 1));
            }
            for _ in 0..rng.below(4) {
                let name = word(&mut rng, true);
                let entries = (0..rng.below(4)).map(|i| entry(&mut rng, i == 2)).collect();
                conf.sections.push(UpsSection {
                    name,
                    pos: Pos::default(),
                    entries,
                });
            }
            let text = format(&conf);
            let (back, findings) = parse_text(&text);
            assert_eq!(shape(&back), shape(&conf), "formatted as:\n{text}");
            assert!(
                findings.is_empty(),
                "formatted text has findings {findings:?}:\n{text}"
            );
        }
    }
}
