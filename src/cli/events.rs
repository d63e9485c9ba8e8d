//! `power-snitch events [-n N]` and `power-snitch status --agent`: ask the running agent on its
//! control socket.

use std::time::Duration;

use super::status::usage;
use super::{Args, Format};
use crate::agent::control::{ask, error_reply, Reply};

/// How long the agent has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Default number of events shown.
pub const DEFAULT_COUNT: usize = 20;

pub fn run(args: &Args) -> (u8, String) {
    if let Some(extra) = args.positional.first() {
        return usage(
            args.common.format,
            &format!("events takes no argument `{extra}`; use -n N"),
        );
    }
    let n = args.common.count.unwrap_or(DEFAULT_COUNT);
    request(args, &format!("events {n}"))
}

/// `status --agent`.
pub fn status(args: &Args) -> (u8, String) {
    if let Some(extra) = args.positional.first() {
        return usage(
            args.common.format,
            &format!(
                "status --agent takes no UPS (`{extra}`): it shows every UPS the agent monitors"
            ),
        );
    }
    request(args, "status")
}

/// Sends a request; JSON is printed as the agent wrote it, human text decoded from its reply.
fn request(args: &Args, req: &str) -> (u8, String) {
    let format = args.common.format;
    let path = super::run::control_socket(args);
    let line = match format {
        Format::Json => req.to_string(),
        Format::Human => format!("{req} text"),
    };
    let reply = match ask(&path, &line, TIMEOUT) {
        Ok(r) => r,
        Err(e) => {
            return match format {
                Format::Json => (2, crate::report::json_error(&e)),
                Format::Human => {
                    eprintln!("power-snitch: {e}");
                    (2, String::new())
                }
            }
        }
    };
    match (format, reply) {
        (Format::Json, Reply::Ok { json, .. }) => (0, json + "\n"),
        (Format::Human, Reply::Ok { json, text }) => (0, text.unwrap_or(json)),
        (Format::Json, Reply::Refused(e)) => (2, error_reply(&e) + "\n"),
        (Format::Human, Reply::Refused(e)) => {
            eprintln!("power-snitch: the agent answered: {e}");
            (2, String::new())
        }
    }
}
