//! `power-snitch notify`: the notification channels in the settings (list, add, remove, set)
//! and `notify test CHANNEL`, which sends a test event now and prints what the receiver
//! answered. A running agent sees the new settings by itself.

use std::io::BufRead;

use super::settings::path;
use super::{Args, CommandError, Output};
use crate::settings::model::{Channel, ChannelKind, Secret, Severity};
use crate::settings::store;

pub const USAGE: &str = "notify list | add NAME KIND URL [KEY=VALUE]... [--password-stdin] | remove NAME | set flap_window=SECS | test NAME";

pub fn run(args: &Args) -> Result<Output, CommandError> {
    let usage = || CommandError::Usage(format!("usage: power-snitch {USAGE}"));
    let pos = &args.positional;
    match pos.first().map(String::as_str) {
        None | Some("list") => list(args),
        Some("add") => add(args),
        Some("remove") => {
            let name = pos.get(1).ok_or_else(usage)?;
            edit(args, |s| s.notify.remove(name))
        }
        Some("set") => {
            let kv = pos.get(1).ok_or_else(usage)?;
            match kv.split_once('=') {
                Some(("flap_window", v)) => edit(args, |s| s.notify.set_flap_window(v)),
                _ => Err(CommandError::Usage(format!(
                    "notify set takes flap_window=SECS, not `{kv}`"
                ))),
            }
        }
        Some("test") => test(args, pos.get(1).ok_or_else(usage)?),
        Some(other) => Err(CommandError::Usage(format!(
            "unknown `notify {other}`; usage: power-snitch {USAGE}"
        ))),
    }
}

fn list(args: &Args) -> Result<Output, CommandError> {
    let s = store::load(&path(args)).settings;
    let mut out = format!("flap_window={} s\n", s.notify.flap_window);
    if s.notify.channels.is_empty() {
        out.push_str("no channel (power-snitch notify add NAME KIND URL)\n");
    }
    for c in &s.notify.channels {
        out.push_str(&c.show());
        out.push('\n');
    }
    Ok(Output::ok(out))
}

fn add(args: &Args) -> Result<Output, CommandError> {
    let pos = &args.positional;
    let (Some(name), Some(kind), Some(url)) = (pos.get(1), pos.get(2), pos.get(3)) else {
        return Err(CommandError::Usage(format!("usage: power-snitch {USAGE}")));
    };
    let kind = ChannelKind::parse(kind).map_err(CommandError::Usage)?;
    let mut c = Channel::new(name, kind, url);
    for kv in &pos[4..] {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| CommandError::Usage(format!("`{kv}` is not KEY=VALUE")))?;
        let v = Some(v.to_string()).filter(|v| !v.is_empty());
        match k {
            "min_severity" => {
                c.min_severity = Severity::parse(v.as_deref().unwrap_or(""))
                    .map_err(|e| CommandError::Usage(format!("min_severity: {e}")))?
            }
            "user" => c.user = v,
            "ca_file" => c.ca_file = v,
            "from" => c.from = v,
            "to" => c.to = v,
            "secret" => {
                return Err(CommandError::Usage(
                    "a secret is never taken from the command line (other users can read it): use --password-stdin".into(),
                ))
            }
            _ => {
                return Err(CommandError::Usage(format!(
                    "unknown key `{k}`; keys are min_severity, user, ca_file, from, to"
                )))
            }
        }
    }
    if args.common.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            CommandError::Usage(format!("cannot read the secret from standard input: {e}"))
        })?;
        let secret = line.trim_end_matches(['\n', '\r']);
        c.secret = (!secret.is_empty()).then(|| Secret(secret.to_string()));
    }
    edit(args, move |s| s.notify.put(c))
}

fn edit(
    args: &Args,
    f: impl FnOnce(&mut crate::settings::model::Settings) -> Result<(), String>,
) -> Result<Output, CommandError> {
    let p = path(args);
    let r = store::update(&p, |loaded| {
        let mut s = loaded.settings;
        f(&mut s).map(|()| s)
    });
    match r {
        Ok(saved) => Ok(Output::ok(format!(
            "{}: {}\n",
            p.display(),
            if saved.wrote { "saved" } else { "unchanged" }
        ))),
        Err(store::UpdateError::Edit(e)) => Err(CommandError::Usage(e)),
        Err(store::UpdateError::Store(e)) => Err(CommandError::Failed(e)),
    }
}

fn test(args: &Args, name: &str) -> Result<Output, CommandError> {
    let s = store::load(&path(args)).settings;
    let Some(c) = s.notify.channels.iter().find(|c| c.name == name) else {
        return Err(CommandError::Usage(format!(
            "no channel named `{name}` (power-snitch notify list)"
        )));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::CannotRun(format!("cannot start the runtime: {e}")))?;
    match rt.block_on(crate::notify::send_test(c)) {
        Ok(answer) => Ok(Output::ok(format!(
            "channel {name}: delivered; the receiver answered: {answer}\n"
        ))),
        Err(e) => Err(CommandError::Failed(format!("channel {name}: {e}"))),
    }
}
