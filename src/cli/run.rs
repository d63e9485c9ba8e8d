//! `power-snitch run`: the agent (see `crate::agent`).

use std::path::PathBuf;

use super::status::usage;
use super::{client_options, Args};
use crate::agent::{self, control};
use crate::state::Companion;

pub fn run(args: &Args) -> (u8, String) {
    let format = args.common.format;
    if let Some(extra) = args.positional.first() {
        return usage(format, &format!("run takes no argument `{extra}`"));
    }
    let client = match client_options(&args.common) {
        Ok(o) => o,
        Err(e) => return usage(format, &e),
    };
    let root = match super::probe::root(&args.common) {
        Ok(r) => r,
        Err(e) => return usage(format, &e),
    };
    // The agent and, beside it, the page: the agent tells the page the settings it applies.
    let companions = companions(args, &root);
    let config = agent::Config {
        settings_path: super::settings::path(args),
        nut_dir: args.common.nut_dir.clone(),
        nut_version: args.common.nut_version,
        control_socket: control_socket(args),
        root,
        client,
        set_log_level: Box::new(super::logger::set_base),
        companions,
    };
    (agent::run(config), String::new())
}

/// What `run` serves beside the agent: the setup page (feature `web`).
#[cfg(feature = "web")]
fn companions(args: &Args, root: &crate::probe::Root) -> Vec<Box<dyn Companion>> {
    vec![Box::new(crate::web::Page::new(web_config(
        args,
        root.clone(),
    )))]
}

#[cfg(not(feature = "web"))]
fn companions(_: &Args, _: &crate::probe::Root) -> Vec<Box<dyn Companion>> {
    Vec::new()
}

pub fn control_socket(args: &Args) -> PathBuf {
    args.common
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_PATH))
}

/// The setup page's needs: the settings file, the hardware's root, upsd's TLS trust, and the
/// full check as `check` runs it.
#[cfg(feature = "web")]
fn web_config(args: &Args, root: crate::probe::Root) -> crate::web::Config {
    let client = client_options(&args.common).unwrap_or_default();
    let base = args.clone();
    let check: crate::web::CheckFn = std::sync::Arc::new(move |dir: &std::path::Path| {
        let mut a = base.clone();
        a.common.nut_dir = Some(dir.to_path_buf());
        a.common.format = super::Format::Json;
        a.positional.clear();
        let c = super::check::gather(&a)?;
        let (_, json) = super::check::render(super::Format::Json, &c);
        let found = c
            .inv
            .ups
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let section = c
                    .claims
                    .iter()
                    .find(|(_, j)| *j == i)
                    .map(|(n, _)| n.clone());
                let f = crate::web::pages::Found {
                    description: crate::probe::cross::describe(&c.inv, u),
                    drivers: u.drivers.clone(),
                    port: u.port.clone(),
                };
                (f, section)
            })
            .collect();
        Ok(crate::web::CheckReport {
            nut_dir: c.nut.dir.display().to_string(),
            nut_version: c.nut.version.to_string(),
            findings: c.findings,
            found,
            json,
        })
    });
    crate::web::Config {
        settings_path: super::settings::path(args),
        root,
        client,
        check,
    }
}
