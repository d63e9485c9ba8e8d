//! `power-snitch run`: the agent (see `crate::agent`), wired from the command line.

use std::path::PathBuf;

use super::{client_options, Args, CommandError, Output};
use crate::agent::{self, control};

pub fn run(args: &Args) -> Result<Output, CommandError> {
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "run takes no argument `{extra}`"
        )));
    }
    let client = client_options(&args.common).map_err(CommandError::Usage)?;
    let given = super::given(&args.common)?;
    let root = crate::inspect::plan::root(given.sysfs_root.as_deref())?;
    let config = agent::Config {
        settings_path: super::settings::path(args),
        nut_dir: args.common.nut_dir.clone(),
        nut_version: args.common.nut_version,
        control_socket: control_socket(args),
        root: root.clone(),
        client: client.clone(),
        set_log_level: Box::new(super::logger::set_base),
        #[cfg(feature = "web")]
        web: crate::web::Config {
            settings_path: super::settings::path(args),
            root,
            client,
            installed: crate::inspect::Installed::detect(args.common.nut_version),
            given,
        },
    };
    Ok(Output {
        code: agent::run(config),
        text: String::new(),
    })
}

pub fn control_socket(args: &Args) -> PathBuf {
    args.common
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_PATH))
}
