//! `power-snitch run`: the agent (see `crate::agent`), wired from the command line.

use std::path::PathBuf;

use super::{client_options, Args, CommandError, Output};
use crate::agent::{self, control};
use crate::state::Companion;

pub fn run(args: &Args) -> Result<Output, CommandError> {
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "run takes no argument `{extra}`"
        )));
    }
    let client = client_options(&args.common).map_err(CommandError::Usage)?;
    let given = super::given(&args.common)?;
    let root = crate::inspect::plan::root(given.sysfs_root.as_deref())?;
    // The agent and, beside it, the page: the agent tells the page the settings it applies.
    let companions = companions(args, &root, &client, given);
    let config = agent::Config {
        settings_path: super::settings::path(args),
        nut_dir: args.common.nut_dir.clone(),
        nut_version: args.common.nut_version,
        control_socket: control_socket(args),
        history_every: args
            .common
            .history_every
            .unwrap_or(crate::state::history::SAVE_EVERY),
        root,
        client,
        set_log_level: Box::new(super::logger::set_base),
        companions,
        serial_ports: args.common.serial_ports.clone(),
    };
    Ok(Output {
        code: agent::run(config),
        text: String::new(),
    })
}

/// What `run` serves beside the agent: the setup page (feature `web`).
#[cfg(feature = "web")]
fn companions(
    args: &Args,
    root: &crate::probe::Root,
    client: &crate::upsd::client::Options,
    given: crate::inspect::Given,
) -> Vec<Box<dyn Companion>> {
    vec![Box::new(crate::web::Page::new(crate::web::Config {
        settings_path: super::settings::path(args),
        root: root.clone(),
        client: client.clone(),
        installed: crate::inspect::Installed::detect(args.common.nut_version),
        given,
    }))]
}

#[cfg(not(feature = "web"))]
fn companions(
    _: &Args,
    _: &crate::probe::Root,
    _: &crate::upsd::client::Options,
    _: crate::inspect::Given,
) -> Vec<Box<dyn Companion>> {
    Vec::new()
}

pub fn control_socket(args: &Args) -> PathBuf {
    args.common
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_PATH))
}
