//! Checks across files: nut.conf's MODE against the files present, and every MONITOR line
//! against ups.conf, upsd.users and upsd.conf.

use std::net::IpAddr;

use super::diag::{Code, Finding, Sink};
use super::lexer::Pos;
use super::nut_conf::Mode;
use super::upsd_conf::UpsdConf;
use super::upsd_users::Role;
use super::upsmon_conf::{Monitor, MonitorRole};
use super::version::NutVersion;
use super::{FileState, Parsed, Snapshot, NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

const WHOLE: Pos = Pos::new(0, 0);

pub fn check(snap: &Snapshot, parsed: &Parsed, version: NutVersion) -> Vec<Finding> {
    let mut out = Vec::new();
    let mode = check_mode(snap, parsed, version, &mut out);
    let serves = matches!(mode, Some(Mode::Standalone | Mode::NetServer))
        || (mode.is_none() && parsed.ups.is_some());
    // MODE=netclient starts no upsd here, but a MONITOR line may still name this host's
    // upsd (started some other way): its users must let upsmon in all the same.
    let netclient_here = mode == Some(Mode::NetClient) && parsed.users.is_some();
    if serves || netclient_here {
        if serves {
            check_served(parsed, &mut out);
        }
        let mut sink = Sink::new(UPSMON_CONF);
        if let Some(upsmon) = &parsed.upsmon {
            for (i, m) in upsmon.monitors.iter().enumerate() {
                if let Some(prev) = upsmon.monitors[..i]
                    .iter()
                    .find(|p| p.ups == m.ups && p.host == m.host && p.port == m.port)
                {
                    sink.warning(
                        Code::Duplicate,
                        m.pos,
                        format!(
                            "{}@{} is already monitored at line {}",
                            m.ups, m.host, prev.pos.line
                        ),
                    );
                }
                check_monitor(m, parsed, &mut sink);
            }
        }
        out.extend(sink.findings);
    }
    out
}

/// upsd stops at start when ups.conf leaves it no complete UPS, unless ALLOW_NO_DEVICE is on.
fn check_served(parsed: &Parsed, out: &mut Vec<Finding>) {
    let Some(ups) = &parsed.ups else { return };
    if ups.sections.iter().any(super::ups_conf::complete) {
        return;
    }
    let mut sink = Sink::new(UPS_CONF);
    let allowed = parsed.upsd.as_ref().is_some_and(|u| u.allow_no_device);
    let message = if ups.sections.is_empty() {
        "ups.conf defines no UPS"
    } else {
        "no UPS in ups.conf has both `driver` and `port`"
    };
    if allowed {
        sink.info(
            Code::NoUps,
            WHOLE,
            format!("{message}; upsd starts anyway (ALLOW_NO_DEVICE)"),
        );
    } else {
        sink.error(
            Code::NoUps,
            WHOLE,
            format!("{message}: upsd stops with \"at least one UPS must be defined in ups.conf\""),
        )
        .with_hint("add a section `[myups]` with `driver` and `port`, or `ALLOW_NO_DEVICE true` to upsd.conf");
    }
    out.extend(sink.findings);
}

fn check_mode(
    snap: &Snapshot,
    parsed: &Parsed,
    version: NutVersion,
    out: &mut Vec<Finding>,
) -> Option<Mode> {
    let mut sink = Sink::new(NUT_CONF);
    let mode = match (&snap.nut_conf, parsed.nut.as_ref().and_then(|n| n.mode)) {
        // Debian's upsd and upsmon up to 2.8.1 are wrappers that source nut.conf and exit 1
        // without a MODE (run by the differential tests); 2.8.5's units start upsd anyway.
        (FileState::Missing, _) if version <= NutVersion::new(2, 8, 1) => {
            sink.error(
                Code::MissingFile,
                WHOLE,
                format!("nut.conf is missing: Debian's NUT {version} starts nothing (its upsd and upsmon wrappers exit 1 without a MODE)"),
            )
            .with_hint("create nut.conf with `MODE=standalone` (or netserver, netclient)");
            None
        }
        (FileState::Missing, _) => {
            sink.warning(
                Code::MissingFile,
                WHOLE,
                "nut.conf is missing: NUT's service scripts do not know which parts to start"
                    .into(),
            )
            .with_hint("create nut.conf with `MODE=standalone` (or netserver, netclient)");
            None
        }
        (FileState::Read { .. }, None) => {
            sink.error(
                Code::BadMode,
                WHOLE,
                "nut.conf sets no MODE: NUT's service scripts start nothing".into(),
            )
            .with_hint("add `MODE=standalone` (or netserver, netclient)");
            None
        }
        (_, mode) => mode.map(|m| m.0),
    };
    out.extend(sink.findings);

    let present = |s: &FileState| !matches!(s, FileState::Missing);
    let mut need = |file: &str, state: &FileState, severity_error: bool, why: &str| {
        if !present(state) {
            let mut s = Sink::new(file);
            let m = format!("{file} is missing: {why}");
            if severity_error {
                s.error(Code::MissingFile, WHOLE, m);
            } else {
                s.warning(Code::MissingFile, WHOLE, m);
            }
            out.extend(s.findings);
        }
    };
    let has_ups = parsed.ups.as_ref().is_some_and(|u| !u.sections.is_empty());
    let mode_pos = parsed
        .nut
        .as_ref()
        .and_then(|n| n.mode)
        .map_or(WHOLE, |m| m.1);
    let monitors = parsed
        .upsmon
        .as_ref()
        .is_some_and(|u| !u.monitors.is_empty());
    match mode {
        Some(m @ (Mode::Standalone | Mode::NetServer)) => {
            let what = m.as_str();
            need(
                UPS_CONF,
                &snap.ups_conf,
                true,
                &format!("MODE={what} starts drivers from it"),
            );
            need(
                UPSD_CONF,
                &snap.upsd_conf,
                true,
                "upsd exits at start without it",
            );
            need(
                UPSD_USERS,
                &snap.upsd_users,
                true,
                "upsd exits at start without it",
            );
            need(
                UPSMON_CONF,
                &snap.upsmon_conf,
                false,
                "nothing will shut this system down on low battery",
            );
        }
        Some(Mode::NetClient) => {
            need(
                UPSMON_CONF,
                &snap.upsmon_conf,
                true,
                "MODE=netclient runs only upsmon, which needs it",
            );
            if has_ups {
                let mut s = Sink::new(NUT_CONF);
                s.info(
                    Code::BadMode,
                    mode_pos,
                    "MODE=netclient starts no driver, so ups.conf's UPSes are not served here"
                        .into(),
                )
                .with_hint("use MODE=standalone or netserver to serve them");
                out.extend(s.findings);
            }
        }
        Some(Mode::None) if has_ups || monitors => {
            let mut s = Sink::new(NUT_CONF);
            s.warning(
                Code::BadMode,
                mode_pos,
                "MODE=none: NUT starts nothing, although its files configure UPSes".into(),
            )
            .with_hint("set MODE=standalone (or netserver, netclient)");
            out.extend(s.findings);
        }
        _ => {}
    }
    mode
}

fn check_monitor(m: &Monitor, parsed: &Parsed, sink: &mut Sink) {
    let listeners = parsed
        .upsd
        .as_ref()
        .map(UpsdConf::listeners)
        .unwrap_or_else(|| UpsdConf::default().listeners());
    if !is_local(&m.host, &listeners) {
        return;
    }
    if let Some(ups) = &parsed.ups {
        if ups.section(&m.ups).is_none() {
            let f = sink.error(
                Code::MonitorUnknownUps,
                m.ups_pos,
                format!("MONITOR names UPS `{}`, which ups.conf does not define: upsd answers UNKNOWN-UPS", m.ups),
            );
            let names: Vec<&str> = ups.sections.iter().map(|s| s.name.as_str()).collect();
            if !names.is_empty() {
                f.with_hint(format!("ups.conf defines: {}", names.join(", ")));
            }
        }
    }
    if let Some(users) = &parsed.users {
        match users.user(&m.user) {
            None => {
                sink.error(
                    Code::MonitorUnknownUser,
                    m.user_pos,
                    format!(
                        "upsd.users defines no user `{}`: upsd refuses the login (ACCESS-DENIED)",
                        m.user
                    ),
                )
                .with_hint(format!(
                    "add `[{}]` with its password and `upsmon primary` to upsd.users",
                    m.user
                ));
            }
            Some(u) => {
                match &u.password {
                    Some((pw, at)) if *pw != m.password => {
                        sink.error(
                            Code::MonitorWrongPassword,
                            m.password_pos,
                            format!(
                                "this password differs from the one upsd.users gives `{}` (line {}): upsd refuses the login",
                                m.user, at.line
                            ),
                        )
                        .with_hint("use the same password in both files (quote it if it has spaces, `#` or `=`)");
                    }
                    None => {
                        sink.error(
                            Code::MonitorWrongPassword,
                            m.password_pos,
                            format!(
                                "user `{}` has no password in upsd.users: upsd refuses the login",
                                m.user
                            ),
                        );
                    }
                    _ => {}
                }
                let ok = !matches!(
                    (m.role, u.role),
                    (_, None) | (MonitorRole::Primary, Some(Role::Secondary))
                );
                if !ok {
                    let want = match m.role {
                        MonitorRole::Primary => "primary",
                        MonitorRole::Secondary => "secondary",
                    };
                    sink.error(
                        Code::MonitorNoRole,
                        m.role_pos,
                        format!("MONITOR asks for `{want}`, but upsd.users does not give `{}` `upsmon {want}`: upsd answers ACCESS-DENIED", m.user),
                    )
                    .with_hint(format!("add `upsmon {want}` to [{}] in upsd.users", m.user));
                }
            }
        }
    }
    let listening = listeners
        .iter()
        .any(|(addr, port)| *port == m.port && covers(addr, &m.host));
    if parsed.upsd.is_some() && !listening {
        let list: Vec<String> = listeners
            .iter()
            .map(|(a, p)| format!("{a} port {p}"))
            .collect();
        sink.error(
            Code::MonitorNotListening,
            m.pos,
            format!(
                "MONITOR connects to {} port {}, but upsd listens only on {}",
                m.host,
                m.port,
                list.join(", ")
            ),
        )
        .with_hint(format!(
            "add `LISTEN {} {}` to upsd.conf, or change the MONITOR line",
            loopback_for(&m.host),
            m.port
        ));
    }
}

fn loopback_for(host: &str) -> &str {
    if host == "::1" {
        "::1"
    } else {
        "127.0.0.1"
    }
}

/// Is this host this machine, as far as the files can tell?
fn is_local(host: &str, listeners: &[(String, u16)]) -> bool {
    is_loopback(host) || listeners.iter().any(|(a, _)| a == host && !is_wildcard(a))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "localhost.localdomain"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_wildcard(addr: &str) -> bool {
    matches!(addr, "0.0.0.0" | "::" | "*")
}

/// Does upsd listening on `addr` accept a connection to `host`?
fn covers(addr: &str, host: &str) -> bool {
    if addr == host {
        return true;
    }
    let v4 = |s: &str| s == "localhost" || s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4());
    let v6 = |s: &str| s == "localhost" || s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6());
    match addr {
        "0.0.0.0" => v4(host) || !is_loopback(host),
        "::" | "*" => true,
        _ if is_loopback(addr) && is_loopback(host) => {
            // localhost resolves to both loopbacks; a literal must match the family.
            host == "localhost"
                || addr == "localhost"
                || (v4(addr) && v4(host))
                || (v6(addr) && v6(host))
        }
        _ => false,
    }
}
