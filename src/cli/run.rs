//! `power-snitch run`: the agent (see `crate::agent`).

use std::path::PathBuf;

use super::status::usage;
use super::{client_options, Args};
use crate::agent::{self, control};

pub fn run(args: &Args) -> (u8, String) {
    let format = args.common.format;
    if let Some(extra) = args.positional.first() {
        return usage(format, &format!("run takes no argument `{extra}`"));
    }
    let client = match client_options(&args.common) {
        Ok(o) => o,
        Err(e) => return usage(format, &e),
    };
    let config = agent::Config {
        settings_path: super::settings::path(args),
        nut_dir: args.common.nut_dir.clone(),
        nut_version: args.common.nut_version,
        control_socket: control_socket(args),
        root: super::probe::root(&args.common),
        client,
        set_log_level: Box::new(super::logger::set_base),
    };
    (agent::run(config), String::new())
}

pub fn control_socket(args: &Args) -> PathBuf {
    args.common
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_PATH))
}
