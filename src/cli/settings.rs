//! `power-snitch settings show|set|import|history` and `power-snitch sync [--apply]`.

use std::path::PathBuf;

use super::{Args, CommandError, Format, Output};
use crate::inspect::{self, Face, Installed, Plan};
use crate::json::Object;
use crate::report::{self, Summary, Validation};
use crate::settings::model::{Settings, UpsEntry, AGENT_KEYS, UPS_KEYS};
use crate::settings::store::{self, check_dir, load};
use crate::settings::sync;

/// The settings that are numbers, shown as JSON numbers.
const NUMBER_KEYS: &[&str] = &[
    "nut_retry_count",
    "nut_retry_delay",
    "upsd_port",
    "poll_interval",
];

pub fn path(args: &Args) -> PathBuf {
    crate::inspect::plan::settings_path(args.common.settings.as_deref())
}

pub fn run(args: &Args) -> Result<Output, CommandError> {
    match args.positional.first().map(String::as_str) {
        Some("show") => Ok(show(args)),
        Some("set") => set(args),
        Some("import") => import(args),
        Some("history") => history(args),
        Some(other) => Err(CommandError::Usage(format!(
            "unknown settings command `{other}`: show, set, import or history"
        ))),
        None => Err(CommandError::Usage(
            "settings needs a command: show, set, import or history".into(),
        )),
    }
}

/// Loads, printing each warning once on stderr.
fn load_warned(args: &Args) -> store::Loaded {
    let p = path(args);
    let loaded = load(&p);
    warn(&p, &loaded);
    loaded
}

fn warn(p: &std::path::Path, loaded: &store::Loaded) {
    for w in &loaded.warnings {
        eprintln!("power-snitch: warning: {w}");
    }
    if let Some(dir) = p.parent().and_then(check_dir) {
        eprintln!("power-snitch: warning: {dir}");
    }
    if let Some(v) = loaded.old_version {
        eprintln!(
            "power-snitch: {} is in format version {v}; the next change writes the current one",
            p.display()
        );
    }
}

fn show(args: &Args) -> Output {
    let loaded = load_warned(args);
    let s = &loaded.settings;
    match args.common.format {
        Format::Human => {
            let mut out = String::new();
            for k in AGENT_KEYS {
                out.push_str(&format!("{k}: {}\n", s.show_agent(k)));
            }
            for u in &s.ups {
                out.push_str(&format!("[{}]\n", u.nut_device_name));
                for k in UPS_KEYS.iter().filter(|k| **k != "nut_device_name") {
                    out.push_str(&format!("  {k}: {}\n", u.show(k)));
                }
            }
            Output::ok(out)
        }
        Format::Json => {
            let mut ups = String::from("[");
            for (i, u) in s.ups.iter().enumerate() {
                if i > 0 {
                    ups.push(',');
                }
                let mut o = Object::new(&mut ups);
                for k in UPS_KEYS {
                    json_value(&mut o, k, u.show(k));
                }
                o.end();
            }
            ups.push(']');
            let mut out = String::new();
            let mut o = Object::new(&mut out);
            for k in AGENT_KEYS {
                json_value(&mut o, k, s.show_agent(k));
            }
            o.raw("ups", &ups);
            o.end();
            Output::ok(out + "\n")
        }
    }
}

/// A setting's value in JSON: numbers as numbers, everything else as a string.
fn json_value(o: &mut Object, key: &str, shown: String) {
    if NUMBER_KEYS.contains(&key) {
        if let Ok(n) = shown.parse::<u64>() {
            o.num(key, n);
            return;
        }
    }
    o.str(key, &shown);
}

/// The entry `--ups` names, or the only one.
fn entry<'a>(s: &'a mut Settings, ups: Option<&str>) -> Result<&'a mut UpsEntry, String> {
    match ups {
        Some(name) => {
            if !s.ups.iter().any(|u| u.nut_device_name == name) {
                s.ups.push(UpsEntry::new(name));
            }
            Ok(s.ups.iter_mut().find(|u| u.nut_device_name == name).expect("just ensured"))
        }
        None => match s.ups.len() {
            1 => Ok(&mut s.ups[0]),
            0 => Err("there is no UPS in the settings yet: name one with --ups NAME (or run `settings import`)".into()),
            _ => Err(format!(
                "there are {} UPSes in the settings: pick one with --ups NAME",
                s.ups.len()
            )),
        },
    }
}

fn set(args: &Args) -> Result<Output, CommandError> {
    let pairs = &args.positional[1..];
    if pairs.is_empty() && !args.common.password_stdin {
        return Err(CommandError::Usage(
            "settings set needs KEY=VALUE pairs (or --password-stdin)".into(),
        ));
    }
    let mut password = None;
    if args.common.password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| {
            CommandError::Usage(format!("cannot read the password from standard input: {e}"))
        })?;
        password = Some(line.trim_end_matches(['\n', '\r']).to_string());
    }
    write(args, |loaded| {
        let mut new = loaded.settings;
        for pair in pairs {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!("`{pair}` is not KEY=VALUE"));
            };
            if AGENT_KEYS.contains(&k) {
                new.set_agent(k, v)?;
            } else {
                entry(&mut new, args.common.ups.as_deref()).and_then(|u| u.set(k, v))?;
            }
        }
        if let Some(pw) = &password {
            entry(&mut new, args.common.ups.as_deref()).and_then(|u| u.set_password(pw))?;
        }
        Ok(new)
    })
}

/// Read-modify-write under the settings' writers' lock: `edit` gets the settings as they are
/// now; its error is a usage error (exit 3), a failed write exit 2.
fn write(
    args: &Args,
    edit: impl FnOnce(store::Loaded) -> Result<Settings, String>,
) -> Result<Output, CommandError> {
    let p = path(args);
    let result = store::update(&p, |loaded| {
        warn(&p, &loaded);
        edit(loaded)
    });
    match result {
        Ok(saved) if !saved.wrote => Ok(Output::ok(format!("{}: unchanged\n", p.display()))),
        Ok(saved) => {
            for (f, a, b) in &saved.changes {
                log::info!("settings: {f}: {a} -> {b}");
            }
            Ok(Output::ok(format!(
                "{}: {} change(s) written\n",
                p.display(),
                saved.changes.len()
            )))
        }
        Err(store::UpdateError::Edit(e)) => Err(CommandError::Usage(e)),
        Err(store::UpdateError::Store(e)) => Err(CommandError::Failed(e)),
    }
}

fn history(args: &Args) -> Result<Output, CommandError> {
    let log = store::log_path(&path(args));
    store::history(&path(args))
        .map(Output::ok)
        .map_err(|e| CommandError::Failed(format!("cannot read {}: {e}", log.display())))
}

/// The plan of `settings import` and `sync`: NUT's directory by the one precedence, which
/// must exist.
fn plan(args: &Args) -> Result<Plan, CommandError> {
    let plan = Plan::resolve(
        Face::Sync,
        &super::given(&args.common)?,
        Installed::detect(args.common.nut_version),
    )?;
    plan.require_nut_dir()?;
    Ok(plan)
}

fn import(args: &Args) -> Result<Output, CommandError> {
    let plan = plan(args)?;
    // The directory the entries came from is the one the agent then watches.
    let dir = std::fs::canonicalize(&plan.nut_dir).unwrap_or_else(|_| plan.nut_dir.clone());
    let dir = dir
        .to_str()
        .ok_or_else(|| CommandError::Usage(format!("{} is not a UTF-8 path", dir.display())))?
        .to_string();
    write(args, |loaded| {
        let (parsed, _) = inspect::read_nut(&plan);
        let mut new = sync::import(&loaded.settings, &parsed, args.common.ups.as_deref())?;
        new.set_agent("nut_conf_dir", &dir)?;
        Ok(new)
    })
}

pub fn sync(args: &Args) -> Result<Output, CommandError> {
    let format = args.common.format;
    match (args.common.to_nut, args.common.apply) {
        (true, true) => {
            return Err(CommandError::Usage(
                "sync goes one way: --to-nut (the settings into NUT's files) or --from-nut (NUT's files into the settings)".into(),
            ))
        }
        (true, false) => return super::adopt::to_nut(args),
        (false, _) if args.common.dry_run || args.common.no_apply => {
            return Err(CommandError::Usage(
                "--dry-run and --no-apply are for sync --to-nut (sync alone already writes nothing)".into(),
            ))
        }
        _ => {}
    }
    let plan = plan(args)?;
    if args.common.apply {
        return write(args, |loaded| {
            let (parsed, _) = inspect::read_nut(&plan);
            Ok(sync::apply(&loaded.settings, &parsed))
        });
    }
    let loaded = load_warned(args);
    let (parsed, _) = inspect::read_nut(&plan);
    let findings = inspect::settings::compare(&plan, &loaded.settings, &parsed);
    let settings_dir = plan
        .settings_path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let v = Validation {
        dir: &settings_dir,
        nut_version: plan.installed.version.to_string(),
        version_source: format!("against {}", plan.nut_dir.display()),
        findings: &findings,
    };
    let text = match format {
        Format::Human => report::human(&v),
        Format::Json => report::json(&v),
    };
    Ok(Output {
        code: Summary::of(&findings).exit_code(),
        text,
    })
}

/// Where `status` and `test-connection` go without a target: the first UPS of the stored
/// settings (with its retry policy and TLS mode), else localhost:3493.
pub fn default_target(args: &Args) -> (crate::upsd::target::Target, Option<UpsEntry>) {
    let loaded = load(&path(args));
    match loaded.settings.ups.into_iter().next() {
        Some(u) => (
            crate::upsd::target::Target {
                ups: Some(u.nut_device_name.clone()),
                host: u.upsd_host.clone(),
                port: u.upsd_port,
            },
            Some(u),
        ),
        None => (crate::upsd::target::Target::localhost(), None),
    }
}

/// Applies a stored entry's retry policy and TLS mode where the command line did not.
pub fn apply_entry(opts: &mut crate::upsd::client::Options, common: &super::Common, u: &UpsEntry) {
    use std::time::Duration;
    if common.retries.is_none() {
        opts.retry_count = u.nut_retry_count;
    }
    if common.retry_delay.is_none() {
        opts.retry_delay = Duration::from_secs(u64::from(u.nut_retry_delay));
    }
    if common.tls.is_none() {
        opts.tls.mode = u.tls;
    }
}
