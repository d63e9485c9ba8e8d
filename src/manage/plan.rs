//! What a change of NUT's files needs NUT to do, sans I/O: the old and the new parsed files in,
//! the actions out (drivers started, restarted, stopped; upsd and upsmon reloaded, restarted,
//! started or stopped as nut.conf's MODE says).

use std::fmt;

use crate::nut::conf::read_lines;
use crate::nut::diag::Sink;
use crate::nut::lexer::Dialect;
use crate::nut::nut_conf::Mode;
use crate::nut::ups_conf::{Entry, UpsConf};
use crate::nut::{Parsed, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

/// A NUT program the actions start, stop, restart or reload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// The driver of a ups.conf section.
    Driver(String),
    Upsd,
    Upsmon,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Start,
    Stop,
    Restart,
    Reload,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub op: Op,
    pub unit: Unit,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Driver(name) => write!(f, "the driver of [{name}]"),
            Unit::Upsd => f.write_str("upsd"),
            Unit::Upsmon => f.write_str("upsmon"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Restart => "restart",
            Op::Reload => "reload",
        };
        write!(f, "{op} {}", self.unit)
    }
}

/// upsd.conf directives upsd reads only when it starts: where it listens, its state path, its
/// certificates. A reload (`upsd -c reload`) keeps the old ones, so a change needs a restart.
/// MAXAGE, MAXCONN, TRACKINGDELAY and ALLOW_NO_DEVICE take effect on reload.
pub const UPSD_RESTART: &[&str] = &[
    "LISTEN",
    "STATEPATH",
    "DATAPATH",
    "CERTFILE",
    "CERTPATH",
    "CERTIDENT",
    "CERTREQUEST",
    "DISABLE_WEAK_SSL",
    "ALLOW_NOT_ALL_LISTENERS",
];

/// Whether going from `old` to `new` upsd.conf changes a directive only a restart applies.
pub fn upsd_needs_restart(old: &[u8], new: &[u8], dialect: Dialect) -> bool {
    let directives = |text: &[u8]| {
        let mut sink = Sink::new(UPSD_CONF);
        let mut out: Vec<Vec<String>> = read_lines(text, dialect, &mut sink)
            .iter()
            .filter(|l| !l.skipped && !l.words.is_empty())
            .filter(|l| UPSD_RESTART.contains(&l.words[0].text.as_str()))
            .map(|l| l.words.iter().map(|w| w.text.to_string()).collect())
            .collect();
        out.sort();
        out
    };
    directives(old) != directives(new)
}

/// nut.conf's MODE: what it says should run. No nut.conf or no MODE is NUT's "not configured".
fn mode(p: &Parsed) -> Mode {
    p.nut
        .as_ref()
        .and_then(|n| n.mode)
        .map_or(Mode::None, |m| m.0)
}

/// upsd and the drivers run in these modes.
fn serves(m: Mode) -> bool {
    matches!(m, Mode::Standalone | Mode::NetServer)
}

/// upsmon runs in these modes.
fn monitors(m: Mode) -> bool {
    matches!(m, Mode::Standalone | Mode::NetServer | Mode::NetClient)
}

/// A section's settings as NUT ends up with them (a repeated section merges into the first).
fn settings<'a>(conf: &'a UpsConf, name: &str) -> Vec<(&'a str, Option<&'a str>)> {
    conf.sections
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| s.entries.iter())
        .map(pairs)
        .collect()
}

fn pairs(e: &Entry) -> (&str, Option<&str>) {
    (e.name.as_str(), e.value.as_deref())
}

fn names(conf: &UpsConf) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in &conf.sections {
        if !out.contains(&s.name.as_str()) {
            out.push(&s.name);
        }
    }
    out
}

/// The actions that bring NUT from `old` to `new`; `changed` names the files whose bytes
/// change, `upsd_restart` says a directive only a restart applies changed
/// ([`upsd_needs_restart`]). Drivers stop first, then start or restart, then upsd, then upsmon.
pub fn plan(old: &Parsed, new: &Parsed, changed: &[&str], upsd_restart: bool) -> Vec<Action> {
    let empty = UpsConf::default();
    let (om, nm) = (mode(old), mode(new));
    let (oups, nups) = (
        old.ups.as_ref().unwrap_or(&empty),
        new.ups.as_ref().unwrap_or(&empty),
    );
    let act = |op, unit| Action { op, unit };
    let mut out = Vec::new();
    if serves(om) && !serves(nm) {
        out.extend(
            names(oups)
                .into_iter()
                .map(|n| act(Op::Stop, Unit::Driver(n.into()))),
        );
        out.push(act(Op::Stop, Unit::Upsd));
    }
    if serves(nm) {
        let was = serves(om);
        let globals_changed = was
            && oups.globals.iter().map(pairs).collect::<Vec<_>>()
                != nups.globals.iter().map(pairs).collect::<Vec<_>>();
        let (onames, nnames) = (names(oups), names(nups));
        if was {
            out.extend(
                onames
                    .iter()
                    .filter(|n| !nnames.contains(n))
                    .map(|n| act(Op::Stop, Unit::Driver(n.to_string()))),
            );
        }
        let mut drivers_changed = false;
        for n in &nnames {
            let op = if !was || !onames.contains(n) {
                Some(Op::Start)
            } else if globals_changed || settings(oups, n) != settings(nups, n) {
                Some(Op::Restart)
            } else {
                None
            };
            if let Some(op) = op {
                drivers_changed = true;
                out.push(act(op, Unit::Driver(n.to_string())));
            }
        }
        let sections_changed = drivers_changed || onames.iter().any(|n| !nnames.contains(n));
        if !was {
            out.push(act(Op::Start, Unit::Upsd));
        } else if upsd_restart {
            out.push(act(Op::Restart, Unit::Upsd));
        } else if sections_changed
            || changed
                .iter()
                .any(|f| [UPS_CONF, UPSD_CONF, UPSD_USERS].contains(f))
        {
            out.push(act(Op::Reload, Unit::Upsd));
        }
    }
    match (monitors(om), monitors(nm)) {
        (true, false) => out.push(act(Op::Stop, Unit::Upsmon)),
        (false, true) => out.push(act(Op::Start, Unit::Upsmon)),
        (true, true) if changed.contains(&UPSMON_CONF) => out.push(act(Op::Reload, Unit::Upsmon)),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::drivers::DriverDb;
    use crate::nut::version::NutVersion;
    use crate::nut::{validate, Context, FileMeta, FileState, Snapshot, NUT_CONF};

    fn parsed(ups: &str, mode: &str) -> Parsed {
        let read = |t: &str| FileState::Read {
            text: t.as_bytes().to_vec(),
            meta: FileMeta {
                mode: 0o640,
                uid: 0,
                gid: 0,
            },
        };
        let snap = Snapshot {
            ups_conf: read(ups),
            upsd_conf: FileState::Missing,
            upsd_users: FileState::Missing,
            upsmon_conf: FileState::Missing,
            nut_conf: read(&format!("MODE={mode}\n")),
            daemon: None,
        };
        let cx = Context {
            version: NutVersion::NEWEST,
            drivers: DriverDb::builtin(),
            host_drivers: None,
        };
        validate(&snap, &cx).0
    }

    const A: &str = "[a]\n driver = dummy-ups\n port = a.dev\n";
    const AB: &str =
        "[a]\n driver = dummy-ups\n port = a.dev\n[b]\n driver = nutdrv_qx\n port = /dev/ttyS0\n";

    /// (old ups.conf, old MODE, new ups.conf, new MODE, files changed, upsd restart, actions)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a [&'a str],
        bool,
        &'a [&'a str],
    );

    #[test]
    fn plans_what_each_change_needs() {
        let cases: &[Case] = &[
            // Nothing changes: nothing runs.
            (A, "standalone", A, "standalone", &[], false, &[]),
            // A fresh NUT configured: every driver, upsd and upsmon start.
            (
                "",
                "none",
                AB,
                "standalone",
                &[UPS_CONF, NUT_CONF],
                false,
                &[
                    "start the driver of [a]",
                    "start the driver of [b]",
                    "start upsd",
                    "start upsmon",
                ],
            ),
            // A section added: only its driver starts, upsd reloads.
            (
                A,
                "standalone",
                AB,
                "standalone",
                &[UPS_CONF],
                false,
                &["start the driver of [b]", "reload upsd"],
            ),
            // A section removed: its driver stops, upsd reloads.
            (
                AB,
                "standalone",
                A,
                "standalone",
                &[UPS_CONF],
                false,
                &["stop the driver of [b]", "reload upsd"],
            ),
            // One driver variable: only that driver restarts.
            (
                AB,
                "standalone",
                &AB.replace("/dev/ttyS0", "/dev/ttyS1"),
                "standalone",
                &[UPS_CONF],
                false,
                &["restart the driver of [b]", "reload upsd"],
            ),
            // A comment only: upsd reloads, no driver restarts.
            (
                AB,
                "standalone",
                &format!("# mine\n{AB}"),
                "standalone",
                &[UPS_CONF],
                false,
                &["reload upsd"],
            ),
            // A global directive: every driver restarts.
            (
                AB,
                "standalone",
                &format!("pollinterval = 5\n{AB}"),
                "standalone",
                &[UPS_CONF],
                false,
                &[
                    "restart the driver of [a]",
                    "restart the driver of [b]",
                    "reload upsd",
                ],
            ),
            // upsd.users: reload. upsd.conf's LISTEN: restart.
            (
                A,
                "standalone",
                A,
                "standalone",
                &[UPSD_USERS],
                false,
                &["reload upsd"],
            ),
            (
                A,
                "standalone",
                A,
                "standalone",
                &[UPSD_CONF],
                true,
                &["restart upsd"],
            ),
            // upsmon.conf: upsmon reloads.
            (
                A,
                "standalone",
                A,
                "standalone",
                &[UPSMON_CONF],
                false,
                &["reload upsmon"],
            ),
            // MODE to netclient: the server side stops, upsmon stays.
            (
                A,
                "standalone",
                A,
                "netclient",
                &[NUT_CONF],
                false,
                &["stop the driver of [a]", "stop upsd"],
            ),
            // MODE to none: everything stops.
            (
                A,
                "netserver",
                A,
                "none",
                &[NUT_CONF],
                false,
                &["stop the driver of [a]", "stop upsd", "stop upsmon"],
            ),
            // With MODE=none nothing runs whatever changes.
            ("", "none", A, "none", &[UPS_CONF, UPSMON_CONF], false, &[]),
            // netclient to standalone: the server side starts, upsmon reloads its new file.
            (
                A,
                "netclient",
                A,
                "standalone",
                &[NUT_CONF, UPSMON_CONF],
                false,
                &["start the driver of [a]", "start upsd", "reload upsmon"],
            ),
        ];
        for (i, (ou, om, nu, nm, changed, restart, want)) in cases.iter().enumerate() {
            let got: Vec<String> = plan(&parsed(ou, om), &parsed(nu, nm), changed, *restart)
                .iter()
                .map(|a| a.to_string())
                .collect();
            assert_eq!(got, *want, "case {i}");
        }
    }

    #[test]
    fn knows_which_upsd_conf_changes_need_a_restart() {
        let d = NutVersion::NEWEST.dialect();
        let cases: &[(&str, &str, bool)] = &[
            ("LISTEN 127.0.0.1 3493\n", "LISTEN 127.0.0.1 3493\n", false),
            (
                "LISTEN 127.0.0.1 3493\n",
                "# here\nLISTEN 127.0.0.1 3493\nMAXAGE 30\n",
                false,
            ),
            ("LISTEN 127.0.0.1 3493\n", "LISTEN 0.0.0.0 3493\n", true),
            ("", "LISTEN 127.0.0.1\n", true),
            ("MAXCONN 10\n", "MAXCONN 20\n", false),
            ("", "CERTFILE /etc/nut/cert.pem\n", true),
        ];
        for (old, new, want) in cases {
            assert_eq!(
                upsd_needs_restart(old.as_bytes(), new.as_bytes(), d),
                *want,
                "{old:?} -> {new:?}"
            );
        }
    }
}
