//! The command line: what the user typed (parsed without touching the system), then dispatch.

pub(crate) mod adopt;
mod apply_spool;
pub(crate) mod check;
mod client;
mod command;
pub mod error;
mod events;
mod logger;
mod notify;
pub(crate) mod probe;
mod run;
pub(crate) mod settings;
pub(crate) mod status;
pub(crate) mod test_connection;
mod udev;
mod undo;
pub(crate) mod validate;
#[cfg(feature = "web")]
mod web_password;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::nut::version::NutVersion;

pub use error::{CommandError, Output};

/// Exit code when the check itself could not run.
pub const EXIT_CANNOT_RUN: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// Options every command accepts, before or after the command's name.
#[derive(Clone, Debug, PartialEq)]
pub struct Common {
    pub nut_dir: Option<PathBuf>,
    pub settings: Option<PathBuf>,
    pub format: Format,
    /// -1 per `-q`, +1 per `-v`.
    pub verbosity: i8,
    pub nut_version: Option<NutVersion>,
    /// upsd client: seconds per request and for connecting; retries and their delay.
    pub timeout: Option<f64>,
    pub retries: Option<u32>,
    pub retry_delay: Option<f64>,
    /// test-connection: the user to check, the password read from stdin, and a LOGIN test.
    pub user: Option<String>,
    pub password_stdin: bool,
    pub login: bool,
    /// upsd TLS: mode, trust anchor, and the plain-text password escape hatch.
    pub tls: Option<crate::upsd::tls::TlsMode>,
    pub ca_file: Option<PathBuf>,
    pub pin_sha256: Option<[u8; 32]>,
    pub allow_plaintext_password: bool,
    /// settings and sync: which UPS entry, and whether to write.
    pub ups: Option<String>,
    pub apply: bool,
    /// probe and check: where sysfs is, serial ports to probe, printing sections.
    pub sysfs_root: Option<PathBuf>,
    pub serial_ports: Vec<String>,
    pub ups_conf: bool,
    /// check: which upsd to ask, or none.
    pub upsd: Option<String>,
    pub no_upsd: bool,
    /// run, status --agent, events: the agent's control socket.
    pub control_socket: Option<PathBuf>,
    /// status: ask the running agent instead of upsd.
    pub agent: bool,
    /// events: how many.
    pub count: Option<usize>,
    /// Commands that change NUT's files: the preview only, or write without applying.
    pub dry_run: bool,
    pub no_apply: bool,
    /// sync: which way (`--to-nut`, or `--from-nut` as `--apply` says).
    pub to_nut: bool,
    /// run: save the history at most every this many seconds (0: only on stop).
    pub history_every: Option<u64>,
    /// client add: the kind of client, and the LAN address upsd is to listen on.
    pub preset: Option<String>,
    pub listen: Option<String>,
    /// command: the second confirmation of a command that cuts the power; the tests kept.
    pub yes_cut_power: bool,
    pub results: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Validate,
    Status,
    TestConnection,
    Settings,
    Sync,
    Probe,
    Check,
    UdevRules,
    UdevCheck,
    Run,
    Events,
    WebPassword,
    Notify,
    Help,
    Version,
    Undo,
    ApplySpool,
    Adopt,
    Remove,
    Client,
    InstantCommand,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub command: Command,
    pub common: Common,
    pub positional: Vec<String>,
}

/// Options every command takes.
pub const GLOBAL_OPTIONS: &[&str] = &["--format", "-v", "-q", "--help", "--version"];

/// The options of upsd's client.
const UPSD: [&str; 7] = [
    "--timeout",
    "--retries",
    "--retry-delay",
    "--tls",
    "--ca-file",
    "--pin-sha256",
    "--allow-plaintext-password",
];

impl Command {
    pub const ALL: [Command; 21] = [
        Command::Validate,
        Command::Status,
        Command::TestConnection,
        Command::Settings,
        Command::Sync,
        Command::Probe,
        Command::Check,
        Command::UdevRules,
        Command::UdevCheck,
        Command::Run,
        Command::Events,
        Command::WebPassword,
        Command::Notify,
        Command::Help,
        Command::Version,
        Command::Undo,
        Command::ApplySpool,
        Command::Adopt,
        Command::Remove,
        Command::Client,
        Command::InstantCommand,
    ];

    /// The name the user types.
    pub fn name(self) -> &'static str {
        match self {
            Command::Validate => "validate",
            Command::Status => "status",
            Command::TestConnection => "test-connection",
            Command::Settings => "settings",
            Command::Sync => "sync",
            Command::Probe => "probe",
            Command::Check => "check",
            Command::UdevRules => "udev-rules",
            Command::UdevCheck => "udev-check",
            Command::Run => "run",
            Command::Events => "events",
            Command::WebPassword => "web-password",
            Command::Notify => "notify",
            Command::Help => "help",
            Command::Version => "version",
            Command::Undo => "undo",
            Command::ApplySpool => "apply-spool",
            Command::Adopt => "adopt",
            Command::Remove => "remove",
            Command::Client => "client",
            Command::InstantCommand => "command",
        }
    }

    /// The options the command takes besides [`GLOBAL_OPTIONS`]; any other is a usage error.
    pub fn options(self) -> Vec<&'static str> {
        // Where NUT's directory is: the option, the settings, then $NUT_CONFPATH.
        let nut = ["--nut-dir", "--settings", "--nut-version"];
        let mut o: Vec<&'static str> = match self {
            Command::Validate => nut.to_vec(),
            Command::Probe => [&nut[..], &["--sysfs-root", "--serial-port", "--ups-conf"]].concat(),
            Command::Check => [
                &nut[..],
                &["--sysfs-root", "--serial-port", "--upsd", "--no-upsd"],
                &UPSD,
            ]
            .concat(),
            Command::UdevRules => vec![],
            Command::UdevCheck => [&nut[..], &["--sysfs-root", "--control-socket"]].concat(),
            Command::Status => [&["--settings", "--agent", "--control-socket"][..], &UPSD].concat(),
            Command::TestConnection => [
                &["--settings", "--user", "--password-stdin", "--login"][..],
                &UPSD,
            ]
            .concat(),
            Command::Settings => [&nut[..], &["--ups", "--password-stdin"]].concat(),
            Command::Sync => [
                &nut[..],
                &[
                    "--apply",
                    "--from-nut",
                    "--to-nut",
                    "--ups",
                    "--dry-run",
                    "--no-apply",
                ],
            ]
            .concat(),
            Command::Run => [
                &nut[..],
                &[
                    "--sysfs-root",
                    "--control-socket",
                    "--history-every",
                    "--serial-port",
                ],
                &UPSD,
            ]
            .concat(),
            Command::Events => vec!["--control-socket", "--count"],
            Command::WebPassword => vec!["--settings"],
            Command::Notify => vec!["--settings", "--password-stdin"],
            Command::Help | Command::Version => vec![],
            Command::Undo => [&nut[..], &["--dry-run", "--no-apply"]].concat(),
            // Never --settings: the root side takes NUT's directory from no file the agent writes.
            Command::ApplySpool => vec!["--nut-dir", "--nut-version"],
            Command::Adopt => [
                &nut[..],
                &["--sysfs-root", "--serial-port", "--dry-run", "--no-apply"],
            ]
            .concat(),
            Command::Remove => [&nut[..], &["--dry-run", "--no-apply"]].concat(),
            Command::Client => [
                &nut[..],
                &["--preset", "--ups", "--listen", "--dry-run", "--no-apply"],
            ]
            .concat(),
            Command::InstantCommand => [
                &[
                    "--settings",
                    "--user",
                    "--password-stdin",
                    "--yes-cut-power",
                    "--results",
                ][..],
                &UPSD,
            ]
            .concat(),
        };
        o.extend_from_slice(GLOBAL_OPTIONS);
        o
    }
}

pub const USAGE: &str = "\
power-snitch: keeps a UPS + Network UPS Tools setup correct and observable

Usage: power-snitch COMMAND [OPTIONS]

Commands:
  check [--upsd HOST[:PORT] | --no-upsd]
                           everything at once: validate, probe, cross-check the hardware against
                           ups.conf, ask upsd, compare the settings
  probe [--serial-port PATH]... [--ups-conf]
                           the UPS hardware found on USB and serial ports; --ups-conf prints
                           ready ups.conf sections
  udev-rules               the udev rules that start a check when a UPS comes or goes
  udev-check [ACTION:KERNEL:VID:PID]
                           check one device that came or went (from udev's environment, or as
                           the unit power-snitch-check@.service names it) against ups.conf
  validate                 check NUT's files (ups.conf, upsd.conf, upsd.users, upsmon.conf, nut.conf)
  status [UPS[@HOST[:PORT]]]
                           every variable of a UPS, as upsc prints them; without UPS, the UPSes
  test-connection [UPS[@HOST[:PORT]]] [--user U --password-stdin] [--login]
                           check step by step that upsd serves the UPS, and the credentials
  settings show|set|import|history
                           Power Snitch's settings: show (password masked); set [--ups NAME]
                           KEY=VALUE... [--password-stdin]; import [--ups NAME] from NUT's files;
                           history of changes
  sync [--from-nut | --to-nut] [--ups NAME]
                           compare the settings with NUT's files; --from-nut (or --apply) takes
                           NUT's values into the settings; --to-nut writes the settings' driver,
                           port and credentials into NUT's files (applied and verified)
  adopt [DEVICE] [--dry-run | --no-apply]
                           the detected UPS no section serves (the only one, or DEVICE: its USB
                           name such as 1-1.3, its serial port, or the section name `probe`
                           suggests): its ups.conf section, a monitoring account with a new
                           password, the MONITOR line and MODE, applied and verified, and its
                           settings entry
  remove UPS [--dry-run | --no-apply]
                           the reverse: its section, MONITOR line, account and settings entry
  client add NAME --preset synology|truenas|proxmox|homeassistant|upsmon [--ups UPS]
         [--listen ADDRESS] [--dry-run | --no-apply]
                           this machine as the NUT server of the LAN: a secondary account (its own
                           password; Synology's fixed monuser/secret), LISTEN on the LAN address,
                           MODE=netserver, applied and verified; then what to enter on the client
  client list              the client accounts, and who upsd says is logged in (LIST CLIENT)
  client remove NAME [--dry-run | --no-apply]
                           its account; the last one gone, LISTEN and MODE back as they were
  run [--control-socket PATH]
                           the agent: monitor each UPS of the settings, log every change, watch
                           NUT's files and the settings; for systemd (Type=notify) or a terminal
  status --agent           the running agent's view: each UPS and upsd connection
  events [-n N]            the running agent's last N events (default 20, at most 256)
  web-password             set the setup page's admin password, read from standard input
  undo [--dry-run | --no-apply]
                           restore NUT's files from the newest backup, validated, applied and
                           verified like any change (an undo can be undone)
  apply-spool              the root side (power-snitch-apply.service): validate and apply the
                           changes of NUT's files the agent proposed
  notify list|add|remove|set|test
                           notification channels: add NAME webhook|ntfy|smtp|mqtt URL
                           [min_severity=S user=U ca_file=F from=A to=A] [--password-stdin];
                           remove NAME; set flap_window=SECS; test NAME sends a test now
  command UPS[@HOST[:PORT]] [CMD] [--yes-cut-power] [--results]
                           the instant commands the UPS offers; with CMD, run it (NUT's
                           TRACKING says how it went; a battery test is followed to its end and
                           kept); a command that cuts the power needs --yes-cut-power;
                           --results: the battery tests kept and the replace-battery finding
  help                     print this text

Options (before or after the command; each command takes those it uses, any other is refused):
  --nut-dir DIR          NUT's configuration directory (default: the settings' nut_conf_dir
                         when there is a settings file, else $NUT_CONFPATH, else /etc/nut)
  --settings FILE        Power Snitch's settings file (default: /var/lib/power-snitch/settings.bin)
  --format human|json    output for people (default) or for programs
  --nut-version X.Y.Z    check against this NUT release instead of the installed one
  --sysfs-root DIR       read USB devices and ports from this sysfs tree (default /sys); device
                         nodes are then under DIR/../dev
  --serial-port PATH     probe this serial port too (repeatable); ports ups.conf names and
                         USB-serial adapters are probed anyway
  --timeout SECS         upsd: the command's whole time with upsd, retries included (default 15;
                         each connect and request at most 5 s of it)
  --retries N            upsd: retries of a failed connection (default 3)
  --retry-delay SECS     upsd: pause between retries (default 5)
  --tls off|auto|required
                         upsd: STARTTLS when offered and verifiable (auto, default), never, or always
  --ca-file FILE         upsd: verify its certificate against these (PEM; may be upsd's own)
  --pin-sha256 HEX       upsd: accept exactly the certificate with this SHA-256
  --allow-plaintext-password
                         upsd: allow a password without TLS to a host that is not this machine
  --control-socket PATH  the agent's control socket (default /run/power-snitch/control.sock)
  --dry-run              changing NUT's files: show the diff and what would run, write nothing
  --no-apply             changing NUT's files: write (validated, backed up), restart nothing
                         (for a NUT directory that is not this machine's, e.g. an SD card's)
  --history-every SECS   run: save the history at most every SECS seconds (default 600; 0: only
                         on stop)
  -v, -q                 more or less logging on stderr (repeatable); RUST_LOG=MODULE=LEVEL,...
  -h, --help             print this text
  -V, --version          print the version

Exit codes (validate, check): 0 nothing above info, 1 warnings, 2 errors, 3 the check could not run.
Exit codes (status, test-connection): 0 success, 2 failure, 3 bad arguments.
Exit codes (run): 0 stopped by SIGTERM or SIGINT, 3 could not start.
Exit codes (events, status --agent): 0 success, 2 the agent did not answer, 3 bad arguments.
Exit codes (command): 0 done (TRACKING said SUCCESS, or upsd does not track), 2 refused, failed
or no answer in time, 3 bad arguments.
Exit codes (undo, adopt, remove, sync --to-nut, client): 0 done, 2 refused or failed (then rolled
back), 3 bad arguments or no backup.
";

/// Parses the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = OsString>>(argv: I) -> Result<Args, String> {
    let mut command = None;
    let mut common = Common {
        nut_dir: None,
        settings: None,
        format: Format::Human,
        verbosity: 0,
        nut_version: None,
        timeout: None,
        retries: None,
        retry_delay: None,
        user: None,
        password_stdin: false,
        login: false,
        tls: None,
        ca_file: None,
        pin_sha256: None,
        allow_plaintext_password: false,
        ups: None,
        apply: false,
        sysfs_root: None,
        serial_ports: Vec::new(),
        ups_conf: false,
        upsd: None,
        no_upsd: false,
        control_socket: None,
        agent: false,
        count: None,
        dry_run: false,
        no_apply: false,
        to_nut: false,
        history_every: None,
        preset: None,
        listen: None,
        yes_cut_power: false,
        results: false,
    };
    let mut positional = Vec::new();
    // Each option given: its canonical name and what the user typed.
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))?;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("{name} needs {what}")),
            }
        };
        if let Some(canonical) = canonical(&name) {
            given.push((canonical, name.clone()));
        }
        match name.as_str() {
            "--nut-dir" => common.nut_dir = Some(PathBuf::from(value("a directory")?)),
            "--settings" => common.settings = Some(PathBuf::from(value("a file")?)),
            "--format" => {
                common.format = match value("`human` or `json`")?.as_str() {
                    "human" => Format::Human,
                    "json" => Format::Json,
                    other => return Err(format!("--format is `human` or `json`, not `{other}`")),
                }
            }
            "--nut-version" => {
                common.nut_version = Some(value("a version such as 2.8.0")?.parse()?)
            }
            "--timeout" => common.timeout = Some(seconds(&name, &value("seconds")?)?),
            "--retry-delay" => common.retry_delay = Some(seconds(&name, &value("seconds")?)?),
            "--retries" => {
                let v = value("a number")?;
                common.retries = Some(
                    v.parse()
                        .map_err(|_| format!("--retries takes a whole number, not `{v}`"))?,
                )
            }
            "--user" => common.user = Some(value("a user name")?),
            "--password-stdin" => common.password_stdin = true,
            "--login" => common.login = true,
            "--tls" => common.tls = Some(crate::upsd::tls::TlsMode::parse(&value("off, auto or required")?)?),
            "--ca-file" => common.ca_file = Some(PathBuf::from(value("a PEM file")?)),
            "--pin-sha256" => common.pin_sha256 = Some(crate::upsd::tls::parse_pin(&value("64 hex digits")?)?),
            "--allow-plaintext-password" => common.allow_plaintext_password = true,
            "--ups" => common.ups = Some(value("a UPS name")?),
            "--apply" => common.apply = true,
            "--sysfs-root" => common.sysfs_root = Some(PathBuf::from(value("a directory")?)),
            "--serial-port" => common.serial_ports.push(value("a path")?),
            "--ups-conf" => common.ups_conf = true,
            "--upsd" => common.upsd = Some(value("HOST[:PORT]")?),
            "--no-upsd" => common.no_upsd = true,
            "--control-socket" => {
                common.control_socket = Some(PathBuf::from(value("a socket path")?))
            }
            "--agent" => common.agent = true,
            "--dry-run" => common.dry_run = true,
            "--no-apply" => common.no_apply = true,
            "--to-nut" => common.to_nut = true,
            "--from-nut" => common.apply = true,
            "-n" | "--count" => {
                let v = value("a number")?;
                common.count = Some(
                    v.parse()
                        .map_err(|_| format!("{name} takes a whole number, not `{v}`"))?,
                )
            }
            "--history-every" => {
                let v = value("seconds")?;
                common.history_every = Some(v.parse().map_err(|_| {
                    format!("--history-every takes whole seconds (0: only on stop), not `{v}`")
                })?)
            }
            "--preset" => common.preset = Some(value("a preset")?),
            "--listen" => common.listen = Some(value("an IP address")?),
            "--yes-cut-power" => common.yes_cut_power = true,
            "--results" => common.results = true,
            "--password" => {
                return Err("a password is never taken from the command line (other users can read it): use --password-stdin".into())
            }
            "-h" | "--help" => command = Some(Command::Help),
            "-V" | "--version" => command = Some(Command::Version),
            s if s.starts_with("--") => return Err(format!("unknown option `{s}`")),
            s if s.starts_with('-') && s.len() > 1 => {
                for c in s[1..].chars() {
                    match c {
                        'v' => common.verbosity = common.verbosity.saturating_add(1),
                        'q' => common.verbosity = common.verbosity.saturating_sub(1),
                        'h' => command = Some(Command::Help),
                        'V' => command = Some(Command::Version),
                        _ => return Err(format!("unknown option `-{c}`")),
                    }
                }
            }
            _ if command.is_none() => {
                command = Some(match arg.as_str() {
                    "validate" => Command::Validate,
                    "status" => Command::Status,
                    "test-connection" => Command::TestConnection,
                    "settings" => Command::Settings,
                    "sync" => Command::Sync,
                    "probe" => Command::Probe,
                    "check" => Command::Check,
                    "udev-rules" => Command::UdevRules,
                    "udev-check" => Command::UdevCheck,
                    "run" => Command::Run,
                    "events" => Command::Events,
                    "web-password" => Command::WebPassword,
                    "notify" => Command::Notify,
                    "help" => Command::Help,
                    "undo" => Command::Undo,
                    "apply-spool" => Command::ApplySpool,
                    "adopt" => Command::Adopt,
                    "remove" => Command::Remove,
                    "client" => Command::Client,
                    "command" => Command::InstantCommand,
                    other => return Err(format!("unknown command `{other}`")),
                })
            }
            _ => positional.push(arg),
        }
    }
    let command = command.ok_or("no command given")?;
    let takes = command.options();
    if let Some((_, typed)) = given.iter().find(|(c, _)| !takes.contains(c)) {
        return Err(format!("`{}` does not take {typed}", command.name()));
    }
    Ok(Args {
        command,
        common,
        positional,
    })
}

/// The options of each command, as `help` lists them (from [`Command::options`]).
pub fn options_text() -> String {
    let mut out = String::from("Options per command (besides --format, -v, -q):\n");
    for c in Command::ALL {
        let own: Vec<&str> = c
            .options()
            .into_iter()
            .filter(|o| !GLOBAL_OPTIONS.contains(o))
            .collect();
        if matches!(c, Command::Help | Command::Version) {
            continue;
        }
        let mut line = format!("  {:<16}", c.name());
        if own.is_empty() {
            line.push_str(" none");
        }
        for o in own {
            if line.len() + 1 + o.len() > 98 {
                out.push_str(&line);
                out.push('\n');
                line = " ".repeat(18);
            }
            line.push(' ');
            line.push_str(o);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The canonical name of an option (`-n` is `--count`); `None` for what is not one.
fn canonical(name: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "--nut-dir",
        "--settings",
        "--format",
        "--nut-version",
        "--timeout",
        "--retry-delay",
        "--retries",
        "--user",
        "--password-stdin",
        "--login",
        "--tls",
        "--ca-file",
        "--pin-sha256",
        "--allow-plaintext-password",
        "--ups",
        "--apply",
        "--sysfs-root",
        "--serial-port",
        "--ups-conf",
        "--upsd",
        "--no-upsd",
        "--control-socket",
        "--agent",
        "--count",
        "--dry-run",
        "--no-apply",
        "--to-nut",
        "--from-nut",
        "--history-every",
        "--preset",
        "--listen",
        "--yes-cut-power",
        "--results",
    ];
    match name {
        "-n" => Some("--count"),
        n => NAMES.iter().find(|k| **k == n).copied(),
    }
}

/// Runs the program and returns its exit code.
pub fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("power-snitch: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    logger::init(args.common.verbosity);
    logger::forbid_core_dumps();
    let format = args.common.format;
    let result = match args.command {
        Command::Help => Ok(Output::ok(format!("{USAGE}\n{}", options_text()))),
        Command::Version => Ok(Output::ok(format!(
            "power-snitch {}\n",
            env!("CARGO_PKG_VERSION")
        ))),
        Command::Validate => validate::run(&args),
        Command::Status => Ok(status::run(&args).into()),
        Command::TestConnection => Ok(test_connection::run(&args).into()),
        Command::Settings => settings::run(&args),
        Command::Sync => settings::sync(&args),
        Command::Probe => probe::run(&args),
        Command::Check => check::run(&args),
        Command::UdevRules => udev::rules(&args),
        Command::UdevCheck => udev::check(&args),
        Command::Run => run::run(&args),
        Command::Events => Ok(events::run(&args).into()),
        Command::Undo => undo::run(&args),
        Command::ApplySpool => apply_spool::run(&args),
        Command::Adopt => adopt::adopt(&args),
        Command::Remove => adopt::remove(&args),
        Command::Client => client::run(&args),
        Command::InstantCommand => Ok(command::run(&args).into()),
        Command::Notify => notify::run(&args),
        #[cfg(feature = "web")]
        Command::WebPassword => web_password::run(&args),
        #[cfg(not(feature = "web"))]
        Command::WebPassword => Err(CommandError::Usage(
            "this build has no setup page (cargo feature `web`)".into(),
        )),
    };
    let (code, out) = error::finish(format, result);
    write_stdout(&out);
    ExitCode::from(code)
}

fn seconds(option: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
        .ok_or_else(|| format!("{option} takes seconds from 0 to 3600, not `{v}`"))
}

/// The upsd client's options from the command line, on top of the defaults; a CA file that
/// cannot be read is an error.
pub fn client_options(common: &Common) -> Result<crate::upsd::client::Options, String> {
    use crate::upsd::tls::{roots_from_file, Trust};
    use std::time::Duration;
    let mut o = crate::upsd::client::Options::default();
    if let Some(m) = common.tls {
        o.tls.mode = m;
    }
    o.tls.trust = match (&common.ca_file, common.pin_sha256) {
        (Some(_), Some(_)) => return Err("give --ca-file or --pin-sha256, not both".into()),
        (Some(f), None) => roots_from_file(f)?,
        (None, Some(pin)) => Trust::Pinned(pin),
        (None, None) => Trust::Nothing,
    };
    o.tls.allow_plaintext_password = common.allow_plaintext_password;
    if let Some(t) = common.timeout {
        o.connect_timeout = Duration::from_secs_f64(t);
        o.request_timeout = Duration::from_secs_f64(t);
    }
    if let Some(r) = common.retries {
        o.retry_count = r;
    }
    if let Some(d) = common.retry_delay {
        o.retry_delay = Duration::from_secs_f64(d);
    }
    Ok(o)
}

/// What the command line gives the application layer: the user's options and the environment.
pub fn given(common: &Common) -> Result<crate::inspect::Given, CommandError> {
    use crate::inspect::plan::{Given, Upsd};
    let upsd = match (&common.upsd, common.no_upsd) {
        (Some(_), true) => {
            return Err(CommandError::Usage(
                "give --upsd or --no-upsd, not both".into(),
            ))
        }
        (_, true) => Upsd::None,
        (Some(t), false) => {
            let spec = if t.contains('@') {
                t.clone()
            } else {
                format!("@{t}")
            };
            let mut target = crate::upsd::target::Target::parse(&spec)
                .map_err(|e| CommandError::Usage(format!("--upsd: {e}")))?;
            target.ups = None;
            Upsd::At(target)
        }
        (None, false) => Upsd::Default,
    };
    Ok(Given {
        nut_dir: common.nut_dir.clone(),
        nut_version: common.nut_version,
        settings: common.settings.clone(),
        sysfs_root: common.sysfs_root.clone(),
        serial_ports: common.serial_ports.clone(),
        upsd,
        client: client_options(common),
        timeout: common.timeout,
        retries_given: common.retries.is_some(),
        env_confpath: std::env::var_os("NUT_CONFPATH"),
    })
}

/// A single-threaded runtime for one command; a system out of file descriptors is an error the
/// command reports, not a crash.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("power-snitch: cannot write output: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(OsString::from))
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        let a = parse("--nut-dir /x validate --format json -vv").unwrap();
        let b = parse("validate --nut-dir=/x --format=json -v -v").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.command, Command::Validate);
        assert_eq!(a.common.nut_dir, Some(PathBuf::from("/x")));
        assert_eq!(a.common.format, Format::Json);
        assert_eq!(a.common.verbosity, 2);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert_eq!(
            parse("validate --format xml").unwrap_err(),
            "--format is `human` or `json`, not `xml`"
        );
        assert_eq!(
            parse("frobnicate").unwrap_err(),
            "unknown command `frobnicate`"
        );
        assert_eq!(
            parse("validate --nut-dir").unwrap_err(),
            "--nut-dir needs a directory"
        );
        assert!(parse("validate --nut-version x").is_err());
        assert_eq!(parse("").unwrap_err(), "no command given");
    }

    /// A value each option can take, or none for a flag.
    fn sample(option: &str) -> Option<&'static str> {
        match option {
            "--nut-dir" | "--sysfs-root" => Some("/x"),
            "--settings" | "--ca-file" | "--control-socket" => Some("/x/f"),
            "--format" => Some("json"),
            "--nut-version" => Some("2.8.0"),
            "--timeout" | "--retry-delay" => Some("1"),
            "--retries" | "--count" | "--history-every" => Some("2"),
            "--user" | "--ups" => Some("u"),
            "--tls" => Some("off"),
            "--pin-sha256" => {
                Some("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
            }
            "--serial-port" => Some("/dev/ttyS0"),
            "--upsd" => Some("localhost:3493"),
            _ => None,
        }
    }

    #[test]
    fn every_command_takes_its_own_options_and_refuses_the_others() {
        let all: Vec<&str> = [
            "--nut-dir",
            "--settings",
            "--format",
            "--nut-version",
            "--timeout",
            "--retry-delay",
            "--retries",
            "--user",
            "--password-stdin",
            "--login",
            "--tls",
            "--ca-file",
            "--pin-sha256",
            "--allow-plaintext-password",
            "--ups",
            "--apply",
            "--sysfs-root",
            "--serial-port",
            "--ups-conf",
            "--upsd",
            "--no-upsd",
            "--control-socket",
            "--agent",
            "--count",
            "--dry-run",
            "--no-apply",
            "--history-every",
        ]
        .into();
        for command in Command::ALL {
            if command == Command::Version {
                continue;
            }
            let takes = command.options();
            for option in &all {
                let mut argv = vec![command.name().to_string(), option.to_string()];
                argv.extend(sample(option).map(String::from));
                let r = parse_args(argv.iter().map(OsString::from));
                if takes.contains(option) {
                    let a = r.unwrap_or_else(|e| panic!("{argv:?}: {e}"));
                    assert_eq!(a.command, command);
                } else {
                    assert_eq!(
                        r.unwrap_err(),
                        format!("`{}` does not take {option}", command.name()),
                        "{argv:?}"
                    );
                }
            }
        }
        // What users typed and was silently ignored before.
        for (line, ok) in [
            ("validate --apply", false),
            ("probe --login", false),
            ("probe --no-upsd", false),
            ("events -n 3", true),
            ("status -n 3", false),
            ("check --upsd localhost --serial-port /dev/ttyS1", true),
            ("sync --apply --nut-dir /x", true),
            ("settings import --nut-dir /x", true),
            ("run --ups-conf", false),
            ("udev-rules --settings /x", false),
            ("help --format json -v", true),
        ] {
            assert_eq!(parse(line).is_ok(), ok, "{line}");
        }
        assert_eq!(
            parse("status -n 3").unwrap_err(),
            "`status` does not take -n"
        );
    }

    #[test]
    fn agent_commands_and_their_options() {
        let a = parse("run --control-socket /tmp/c.sock -v").unwrap();
        assert_eq!(a.command, Command::Run);
        assert_eq!(a.common.control_socket, Some(PathBuf::from("/tmp/c.sock")));
        let e = parse("events -n 5").unwrap();
        assert_eq!((e.command, e.common.count), (Command::Events, Some(5)));
        assert_eq!(parse("events --count=7").unwrap().common.count, Some(7));
        assert!(parse("events -n x").is_err());
        assert!(parse("status --agent").unwrap().common.agent);
    }
}
