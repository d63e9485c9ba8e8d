//! `power-snitch settings show|set|import|history` and `power-snitch sync [--apply]`.

use std::path::PathBuf;

use super::status::usage;
use super::{Args, Format};
use crate::json::Object;
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{host, validate, Context, Parsed};
use crate::report::{self, Summary, Validation};
use crate::settings::model::{Settings, UpsEntry, AGENT_KEYS, UPS_KEYS};
use crate::settings::store::{self, check_dir, load, DEFAULT_PATH};
use crate::settings::sync;

pub fn path(args: &Args) -> PathBuf {
    args.common
        .settings
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

pub fn run(args: &Args) -> (u8, String) {
    let format = args.common.format;
    match args.positional.first().map(String::as_str) {
        Some("show") => show(args),
        Some("set") => set(args),
        Some("import") => import(args),
        Some("history") => history(args),
        Some(other) => usage(
            format,
            &format!("unknown settings command `{other}`: show, set, import or history"),
        ),
        None => usage(
            format,
            "settings needs a command: show, set, import or history",
        ),
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

fn show(args: &Args) -> (u8, String) {
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
            (0, out)
        }
        Format::Json => {
            let mut ups = String::from("[");
            for (i, u) in s.ups.iter().enumerate() {
                if i > 0 {
                    ups.push(',');
                }
                let mut o = Object::new(&mut ups);
                for k in UPS_KEYS {
                    o.str(k, &u.show(k));
                }
                o.end();
            }
            ups.push(']');
            let mut out = String::new();
            let mut o = Object::new(&mut out);
            for k in AGENT_KEYS {
                o.str(k, &s.show_agent(k));
            }
            o.raw("ups", &ups);
            o.end();
            (0, out + "\n")
        }
    }
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

fn set(args: &Args) -> (u8, String) {
    let format = args.common.format;
    let pairs = &args.positional[1..];
    if pairs.is_empty() && !args.common.password_stdin {
        return usage(
            format,
            "settings set needs KEY=VALUE pairs (or --password-stdin)",
        );
    }
    let mut password = None;
    if args.common.password_stdin {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            return usage(
                format,
                &format!("cannot read the password from standard input: {e}"),
            );
        }
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
) -> (u8, String) {
    let p = path(args);
    let result = store::update(&p, |loaded| {
        warn(&p, &loaded);
        edit(loaded)
    });
    match result {
        Ok(saved) if !saved.wrote => (0, format!("{}: unchanged\n", p.display())),
        Ok(saved) => {
            for (f, a, b) in &saved.changes {
                log::info!("settings: {f}: {a} -> {b}");
            }
            (
                0,
                format!(
                    "{}: {} change(s) written\n",
                    p.display(),
                    saved.changes.len()
                ),
            )
        }
        Err(store::UpdateError::Edit(e)) => usage(args.common.format, &e),
        Err(store::UpdateError::Store(e)) => {
            eprintln!("power-snitch: {e}");
            (2, String::new())
        }
    }
}

fn history(args: &Args) -> (u8, String) {
    let log = store::log_path(&path(args));
    match store::history(&path(args)) {
        Ok(t) => (0, t),
        Err(e) => {
            eprintln!("power-snitch: cannot read {}: {e}", log.display());
            (2, String::new())
        }
    }
}

/// NUT's files as validate reads them.
fn nut(args: &Args, settings: &Settings) -> Result<(PathBuf, Parsed, NutVersion), String> {
    let dir = args
        .common
        .nut_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&settings.nut_conf_dir));
    if !dir.is_dir() {
        return Err(format!(
            "{} is not a directory: give --nut-dir DIR or set nut_conf_dir",
            dir.display()
        ));
    }
    let version = args
        .common
        .nut_version
        .or_else(|| host::detect_version().map(|v| v.0))
        .unwrap_or(NutVersion::NEWEST);
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let (parsed, _) = validate(&host::snapshot(&dir), &cx);
    Ok((dir, parsed, version))
}

fn import(args: &Args) -> (u8, String) {
    write(args, |loaded| {
        let (_, parsed, _) = nut(args, &loaded.settings)?;
        sync::import(&loaded.settings, &parsed, args.common.ups.as_deref())
    })
}

/// Asks upsd itself whether each entry's user name and password are right, with the SET probe
/// that changes nothing (the diagnosis test-connection runs). Where only LOGIN could tell, or
/// upsd does not answer, says so as info. All of it within [`CHECK_TIME`].
async fn live_credentials(
    settings: &Settings,
    parsed: &Parsed,
    file: &str,
) -> Vec<crate::nut::diag::Finding> {
    use crate::nut::diag::{Code, Finding, Severity};
    use crate::nut::lexer::Pos;
    use crate::upsd::client::{Client, Options};
    use crate::upsd::diagnose::{credentials, Credentials};
    use crate::upsd::error::ErrCode;
    use std::time::Duration;
    let deadline = tokio::time::Instant::now() + CHECK_TIME;
    let mut out = Vec::new();
    for u in &settings.ups {
        let (Some(user), Some(pw)) = (&u.nut_username, &u.nut_password) else {
            continue;
        };
        let target = crate::upsd::target::Target {
            ups: Some(u.nut_device_name.clone()),
            host: u.upsd_host.clone(),
            port: u.upsd_port,
        };
        let mut opts = Options {
            retry_count: 0,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            ..Options::default()
        };
        opts.tls.mode = u.tls;
        let mut c = Client::new(target.clone(), opts);
        c.set_deadline(Some(deadline));
        let name = &u.nut_device_name;
        let mut say =
            |sev, code, m: String| out.push(Finding::new(sev, code, file, Pos::new(0, 0), m));
        match credentials(&mut c, name, user, &pw.0, false).await {
            Ok(Credentials::Valid(_)) => {}
            Ok(Credentials::PasswordOrRights) => {
                // upsd.users says whether the user may SET: then a refusal means the password.
                let may_set = parsed
                    .users
                    .as_ref()
                    .and_then(|us| us.user(user))
                    .is_some_and(|nu| nu.actions.iter().any(|a| a == "SET"));
                if may_set {
                    say(
                        Severity::Error,
                        Code::SettingsPassword,
                        format!("UPS `{name}`: upsd refuses the settings' password for `{user}`"),
                    );
                } else {
                    say(Severity::Info, Code::SettingsPassword, format!("UPS `{name}`: upsd refused the SET probe for `{user}`, who has no SET rights, so only LOGIN can tell: `power-snitch test-connection --login`"));
                }
            }
            Err(e) if e.refusal() == Some(&ErrCode::UnknownUps) => say(
                Severity::Error,
                Code::SettingsUpsMissing,
                format!(
                    "UPS `{name}`: upsd at {} does not serve it",
                    target.address()
                ),
            ),
            Err(e) => say(
                Severity::Info,
                Code::SettingsPassword,
                format!(
                    "UPS `{name}`: could not check the credentials with upsd at {}: {}",
                    target.address(),
                    e.message()
                ),
            ),
        }
    }
    out
}

/// The settings' check gives upsd this much time in all.
const CHECK_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Compares the fingerprints of NUT's files and of the settings with the last check's, and
/// remembers the new ones.
fn track_changes(
    settings: &std::path::Path,
    nut_dir: &std::path::Path,
    name: &str,
) -> Vec<crate::nut::diag::Finding> {
    use crate::settings::fingerprint;
    let seen_path = {
        let mut s = settings.as_os_str().to_owned();
        s.push(".seen");
        PathBuf::from(s)
    };
    let mut now: Vec<_> = [
        crate::nut::NUT_CONF,
        crate::nut::UPS_CONF,
        crate::nut::UPSD_CONF,
        crate::nut::UPSD_USERS,
        crate::nut::UPSMON_CONF,
    ]
    .iter()
    .filter_map(|f| fingerprint::of(f, &nut_dir.join(f)))
    .collect();
    now.extend(fingerprint::of(name, settings));
    let found = match std::fs::read_to_string(&seen_path) {
        Ok(text) => fingerprint::changes(&fingerprint::parse(&text), &now, name),
        Err(_) => Vec::new(),
    };
    if let Err(e) = fingerprint::remember(&seen_path, &now) {
        eprintln!(
            "power-snitch: warning: cannot remember the files' fingerprints in {}: {e}",
            seen_path.display()
        );
    }
    found
}

/// The settings against NUT's files: the comparison, what changed since the last check, and
/// upsd's word on the stored credentials. Findings name the settings file.
pub fn compare(
    args: &Args,
    settings: &Settings,
    parsed: &Parsed,
    nut_dir: &std::path::Path,
) -> Vec<crate::nut::diag::Finding> {
    let settings_path = path(args);
    let name = settings_path.file_name().map_or_else(
        || "settings".to_string(),
        |n| n.to_string_lossy().to_string(),
    );
    let mut findings = sync::compare(settings, parsed);
    for f in &mut findings {
        f.file = name.clone();
    }
    findings.extend(track_changes(&settings_path, nut_dir, &name));
    match super::runtime() {
        Ok(rt) => findings.extend(rt.block_on(live_credentials(settings, parsed, &name))),
        Err(e) => eprintln!("power-snitch: cannot ask upsd about the credentials: {e}"),
    }
    findings
}

/// The stored settings for `check`, when there are any (warnings on stderr).
pub fn stored(args: &Args) -> Option<Settings> {
    path(args).exists().then(|| load_warned(args).settings)
}

pub fn sync(args: &Args) -> (u8, String) {
    let format = args.common.format;
    if args.common.apply {
        return write(args, |loaded| {
            let (_, parsed, _) = nut(args, &loaded.settings)?;
            Ok(sync::apply(&loaded.settings, &parsed))
        });
    }
    let loaded = load_warned(args);
    let (dir, parsed, version) = match nut(args, &loaded.settings) {
        Ok(n) => n,
        Err(e) => return usage(format, &e),
    };
    let settings_path = path(args);
    let findings = compare(args, &loaded.settings, &parsed, &dir);
    let settings_dir = settings_path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let v = Validation {
        dir: &settings_dir,
        nut_version: version.to_string(),
        version_source: format!("against {}", dir.display()),
        findings: &findings,
    };
    let out = match format {
        Format::Human => report::human(&v),
        Format::Json => report::json(&v),
    };
    (Summary::of(&findings).exit_code(), out)
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
