//! `client add NAME --preset P`, `client list`, `client remove NAME`: this machine as the NUT
//! server of the LAN, through the application layer ([`crate::inspect::clients`]); a change
//! prints as `undo` prints one, then what to enter on the client.

use std::path::Path;

use super::undo::{finish, mode, render};
use super::{given, Args, CommandError, Format, Output};
use crate::inspect::adopt::{self, ChangeError};
use crate::inspect::clients::{self, Added, Listing};
use crate::inspect::{Face, Installed, Plan};
use crate::json::{array, strings, Object};
use crate::manage::{spool, Mode};
use crate::nut::edit::Preset;

const USAGE: &str = "client add NAME --preset synology|truenas|proxmox|homeassistant|upsmon [--ups UPS] [--listen ADDRESS] [--dry-run | --no-apply], client list, client remove NAME [--dry-run | --no-apply]";

fn plan(args: &Args) -> Result<Plan, CommandError> {
    let common = &args.common;
    let plan = Plan::resolve(
        Face::Sync,
        &given(common)?,
        Installed::detect(common.nut_version),
    )?;
    plan.require_nut_dir()?;
    Ok(plan)
}

fn failed(e: ChangeError, mode: Mode, format: Format) -> CommandError {
    match e {
        ChangeError::Manage(m) => match finish(Err(m), mode, format) {
            Err(c) => c,
            Ok(_) => CommandError::Failed("the change failed".into()),
        },
        ChangeError::Usage(u) => CommandError::Usage(u),
        e => CommandError::Failed(e.to_string()),
    }
}

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let p = &args.positional;
    let usage = |what: &str| CommandError::Usage(format!("{what}: {USAGE}"));
    match p.first().map(String::as_str) {
        Some("add") => {
            let [_, name] = p.as_slice() else {
                return Err(usage("client add takes one NAME"));
            };
            let preset = match args.common.preset.as_deref() {
                Some(s) => Preset::parse(s).ok_or_else(|| {
                    usage(&format!(
                        "--preset {s}: not one of synology, truenas, proxmox, homeassistant, upsmon"
                    ))
                })?,
                None => return Err(usage("client add needs --preset")),
            };
            add(args, name, preset)
        }
        Some("remove") => {
            let [_, name] = p.as_slice() else {
                return Err(usage("client remove takes one NAME"));
            };
            if args.common.preset.is_some() || args.common.listen.is_some() {
                return Err(usage("client remove takes no --preset or --listen"));
            }
            let mode = mode(&args.common)?;
            let plan = plan(args)?;
            let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
            let o = clients::remove(&plan, name, &mut make)
                .map_err(|e| failed(e, mode, args.common.format))?;
            let mut text = render(&o, mode, args.common.format);
            if args.common.format == Format::Human && mode == Mode::Apply {
                text.push_str(&format!(
                    "client {name}: removed; its login is refused now\n"
                ));
            }
            Ok(Output::ok(text))
        }
        Some("list") if p.len() == 1 => {
            if args.common.dry_run || args.common.no_apply || args.common.preset.is_some() {
                return Err(usage(
                    "client list changes nothing and takes no such option",
                ));
            }
            let plan = plan(args)?;
            let l =
                clients::list(&plan).map_err(|e| failed(e, Mode::DryRun, args.common.format))?;
            Ok(Output::ok(listing(&l, args.common.format)))
        }
        _ => Err(usage("client takes add, list or remove")),
    }
}

fn add(args: &Args, name: &str, preset: Preset) -> Result<Output, CommandError> {
    let format = args.common.format;
    let mode = mode(&args.common)?;
    let plan = plan(args)?;
    let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
    let a = clients::add(
        &plan,
        name,
        preset,
        args.common.ups.as_deref(),
        args.common.listen.as_deref(),
        mode,
        &mut make,
    )
    .map_err(|e| failed(e, mode, format))?;
    Ok(Output::ok(added(&a, mode, format)))
}

/// The change, then what to enter on the client (the password too: the person adding the
/// client types it there; it is on standard output only, never in a log).
fn added(a: &Added, mode: Mode, format: Format) -> String {
    if format == Format::Json {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.str("mode", mode.as_str())
            .str("client", &a.name)
            .str("preset", a.preset.as_str())
            .str("host", &a.host)
            .num("port", u64::from(a.port))
            .str("ups", &a.ups)
            .str("user", &a.user)
            .str("password", &a.password)
            .str("monitor", &a.monitor_line())
            .raw("warnings", &strings(a.warnings.iter().map(String::as_str)))
            .raw("verified", &strings(a.login.iter().map(String::as_str)))
            .raw("change", &render(&a.outcome, mode, format));
        o.end();
        out.push('\n');
        return out;
    }
    let mut text = render(&a.outcome, mode, format);
    if let Some(l) = &a.login {
        text.push_str(&format!("verified: {l}\n"));
    }
    for w in &a.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    let what = match mode {
        Mode::Apply => "enter on the client",
        _ => "to enter on the client once this is applied",
    };
    text.push_str(&format!(
        "\nclient {} ({}), {what}:\n",
        a.name,
        a.preset.as_str()
    ));
    for (k, v) in a.instructions() {
        text.push_str(&format!("  {k:<13} {v}\n"));
    }
    text
}

fn listing(l: &Listing, format: Format) -> String {
    if format == Format::Json {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.str("upsd", &l.upsd)
            .raw(
                "accounts",
                &array(l.accounts.iter().map(|c| {
                    let mut s = String::new();
                    let mut a = Object::new(&mut s);
                    a.str("name", &c.name)
                        .str("account", &c.account)
                        .str("preset", c.preset.map_or("", Preset::as_str))
                        .bool("secondary", c.secondary);
                    a.end();
                    s
                })),
            )
            .raw(
                "connected",
                &array(l.connected.iter().map(|c| {
                    let mut s = String::new();
                    let mut a = Object::new(&mut s);
                    a.str("ups", &c.ups)
                        .str("address", &c.address)
                        .str("account", &c.account);
                    a.end();
                    s
                })),
            )
            .raw(
                "logins",
                &array(l.logins.iter().map(|(u, n)| {
                    let mut s = String::new();
                    let mut a = Object::new(&mut s);
                    a.str("ups", u).num("numlogins", u64::from(*n));
                    a.end();
                    s
                })),
            )
            .raw("notices", &strings(l.notices.iter().map(String::as_str)));
        if let Some(e) = &l.error {
            o.str("error", e);
        }
        o.end();
        out.push('\n');
        return out;
    }
    let mut t = String::new();
    if l.accounts.is_empty() {
        t.push_str("no client accounts in upsd.users\n");
    }
    for c in &l.accounts {
        let how = match c.preset {
            Some(p) => format!("client add --preset {}", p.as_str()),
            None => "made by hand".into(),
        };
        let role = if c.secondary {
            "upsmon secondary"
        } else {
            "no upsmon role"
        };
        t.push_str(&format!(
            "client {:<16} account {:<16} {role}, {how}\n",
            c.name, c.account
        ));
    }
    match &l.error {
        Some(e) => t.push_str(&format!("{e}\n")),
        None => {
            t.push_str(&format!("\nlogged in at upsd {} (LIST CLIENT):\n", l.upsd));
            if l.connected.is_empty() {
                t.push_str("  nobody\n");
            }
            for c in &l.connected {
                t.push_str(&format!(
                    "  [{}] from {:<16} {}\n",
                    c.ups, c.address, c.account
                ));
            }
            for (u, n) in &l.logins {
                t.push_str(&format!("  [{u}] NUMLOGINS {n}\n"));
            }
        }
    }
    for n in &l.notices {
        t.push_str(&format!("warning: {n}\n"));
    }
    t
}
