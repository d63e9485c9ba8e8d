//! `power-snitch status [UPS[@HOST[:PORT]]]`: a UPS's variables, like `upsc`, or the UPSes;
//! `status --agent` asks the running agent instead (see `events.rs`).

use std::time::Duration;

use super::{client_options, runtime, Args, Format, EXIT_CANNOT_RUN};
use crate::json::Object;
use crate::upsd::client::Client;
use crate::upsd::error::NutError;
use crate::upsd::target::Target;

pub fn run(args: &Args) -> (u8, String) {
    if args.common.agent {
        return super::events::status(args);
    }
    let format = args.common.format;
    let mut client = match client_for(args, "status") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let target = client.target.clone();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return cannot_run(format, &e),
    };
    let result = rt.block_on(async {
        match &target.ups {
            Some(ups) => client.vars(ups).await.map(|v| render_vars(format, ups, &v)),
            None => client
                .list_ups()
                .await
                .map(|l| render_list(format, &target, &l)),
        }
    });
    match result {
        Ok(out) => (0, out),
        Err(e) => failure(format, &e),
    }
}

fn render_vars(format: Format, ups: &str, vars: &[(String, String)]) -> String {
    match format {
        Format::Human => vars.iter().map(|(k, v)| format!("{k}: {v}\n")).collect(),
        Format::Json => {
            let mut inner = String::new();
            let mut o = Object::new(&mut inner);
            for (k, v) in vars {
                o.str(k, v);
            }
            o.end();
            let mut out = String::new();
            let mut o = Object::new(&mut out);
            o.str("ups", ups).raw("vars", &inner);
            o.end();
            out + "\n"
        }
    }
}

fn render_list(format: Format, target: &Target, list: &[(String, String)]) -> String {
    match format {
        Format::Human => list.iter().map(|(n, _)| format!("{n}\n")).collect(),
        Format::Json => {
            let mut items = String::from("[");
            for (i, (n, d)) in list.iter().enumerate() {
                if i > 0 {
                    items.push(',');
                }
                let mut o = Object::new(&mut items);
                o.str("name", n).str("description", d);
                o.end();
            }
            items.push(']');
            let mut out = String::new();
            let mut o = Object::new(&mut out);
            o.str("host", &target.address()).raw("ups", &items);
            o.end();
            out + "\n"
        }
    }
}

/// A failure: exit 2, and in JSON `{"error": {"kind", "code", "message", "hint"}}`.
pub fn failure(format: Format, e: &NutError) -> (u8, String) {
    match format {
        Format::Human => {
            eprintln!("power-snitch: {e}");
            (2, String::new())
        }
        Format::Json => (2, error_json(e)),
    }
}

pub fn error_json(e: &NutError) -> String {
    let mut inner = String::new();
    let mut o = Object::new(&mut inner);
    o.str("kind", e.kind().as_str())
        .str("code", e.code())
        .str("message", &e.message())
        .opt_str("hint", e.hint_text());
    o.end();
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("error", &inner);
    o.end();
    out + "\n"
}

/// The whole time `status` and `test-connection` give upsd without `--timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// Without `--timeout`, each connect and request gets at most this much of it.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// The client for `status` and `test-connection`: the target on the command line, else the
/// stored settings' first UPS (with its retry policy and TLS mode), else localhost:3493.
/// `--timeout` (else [`DEFAULT_COMMAND_TIMEOUT`]) is a deadline for the whole command: every
/// connect, read and pause between retries ends by then.
pub fn client_for(args: &Args, command: &str) -> Result<Client, (u8, String)> {
    let format = args.common.format;
    let mut stored = None;
    let target = match args.positional.as_slice() {
        [] => {
            let (t, entry) = super::settings::default_target(args);
            stored = entry;
            t
        }
        [t] => Target::parse(t).map_err(|e| usage(format, &e))?,
        [_, extra, ..] => {
            return Err(usage(
                format,
                &format!("{command} takes one UPS, not also `{extra}`"),
            ))
        }
    };
    let mut opts = client_options(&args.common).map_err(|e| usage(format, &e))?;
    if let Some(u) = &stored {
        super::settings::apply_entry(&mut opts, &args.common, u);
    }
    let total = args
        .common
        .timeout
        .map_or(DEFAULT_COMMAND_TIMEOUT, Duration::from_secs_f64);
    if args.common.timeout.is_none() {
        opts.connect_timeout = DEFAULT_STEP_TIMEOUT;
        opts.request_timeout = DEFAULT_STEP_TIMEOUT;
    }
    let mut client = Client::new(target, opts);
    client.set_deadline(Some(tokio::time::Instant::now() + total));
    Ok(client)
}

/// The command could not run at all (no runtime: the system is out of resources): exit 3.
pub fn cannot_run(format: Format, message: &str) -> (u8, String) {
    usage(format, message)
}

pub fn usage(format: Format, message: &str) -> (u8, String) {
    match format {
        Format::Json => (EXIT_CANNOT_RUN, crate::report::json_error(message)),
        Format::Human => {
            eprintln!("power-snitch: {message}");
            (EXIT_CANNOT_RUN, String::new())
        }
    }
}
