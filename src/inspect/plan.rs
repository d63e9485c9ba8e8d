//! The installation resolved once: NUT's directory and where it came from, NUT's version and
//! drivers, the settings, the hardware's root and USB reader, the upsd to ask, and which serial
//! ports may be talked to.
//!
//! **Architecture invariant:** NUT's directory is chosen by [`nut_dir`] and nowhere else:
//! an explicit `--nut-dir`, else the settings' `nut_conf_dir` (when there is a settings file
//! that can be read),
//! else `$NUT_CONFPATH`, else `/etc/nut`. Every command, the agent and the page use it, so
//! `check` reads the directory the agent watches.
//!
//! **Architecture invariant:** which serial ports may be talked to is decided by
//! [`Face::talk`] and nowhere else, with the reason per face written there.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::nut::host;
use crate::nut::version::NutVersion;
use crate::probe::udev_event::{Action, Event};
use crate::probe::usbdev::DeviceReader;
use crate::probe::Root;
use crate::settings::model::Settings;
use crate::settings::store;
use crate::upsd::client::Options;
use crate::upsd::target::Target;

/// Where the settings file is when nothing names one.
pub const DEFAULT_SETTINGS: &str = store::DEFAULT_PATH;

/// Which face asks: it decides what the check covers and which ports may be talked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    /// `check`: everything, with dialogues on the ports ups.conf and the user name.
    Check,
    /// `validate`: NUT's files only.
    Validate,
    /// `probe`: the hardware, with dialogues as `check`.
    Probe,
    /// `udev-check`: the hardware against ups.conf after one device came or went.
    UdevCheck,
    /// The agent's recheck: files, settings, hardware, no dialogue, no upsd (it watches upsd).
    Recheck,
    /// The setup page's Check: as `check`, without any dialogue.
    Page,
    /// `sync` and `settings import`: the settings against NUT's files, with upsd's word on the
    /// stored credentials.
    Sync,
    /// `adopt` and the page's Adopt: the hardware against ups.conf, with dialogues as `check`
    /// (the page names the one port the user chose).
    Adopt,
}

/// Which serial ports a scan may send bytes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Talk {
    /// The ports ups.conf names for serial drivers and the ports the user named.
    Named,
    /// None: ports are listed, never opened.
    Never,
    /// A udev event's tty (kernel name), when it is about one: listed alone, and asked only
    /// when it appeared and no ups.conf section names it.
    Event { tty: Option<String>, appeared: bool },
}

impl Face {
    /// The probe policy, one reason per face; `event` is the udev event `udev-check` is about.
    pub fn talk(self, event: Option<&Event>) -> Talk {
        match self {
            // The user asked for a look at the hardware now: the ports ups.conf names (when its
            // driver holds one, the port is skipped as held) and those the user named may be
            // asked who they are.
            // Adopting: the user named the device (or accepts the only one found); a port its
            // driver holds is skipped as held, as for `check`.
            Face::Check | Face::Probe | Face::Adopt => Talk::Named,
            // A NUT driver that is about to start must not find its port locked by us: the
            // agent rechecks right after files change (a driver may be restarting), and the
            // page's Check runs while the agent and NUT's drivers are up. Both see through upsd
            // whether a driver serves its UPS.
            Face::Recheck | Face::Page => Talk::Never,
            // udev starts NUT's driver for a configured port at this very moment: only a port
            // that appeared and that no section names may be asked.
            Face::UdevCheck => match event {
                Some(e) => Talk::Event {
                    tty: e.is_tty().then(|| e.kernel.clone()),
                    appeared: e.action == Action::Add,
                },
                None => Talk::Never,
            },
            // Files and settings only: no scan at all.
            Face::Validate | Face::Sync => Talk::Never,
        }
    }

    /// Whether the check reads the hardware.
    pub fn hardware(self) -> bool {
        !matches!(self, Face::Validate | Face::Sync)
    }

    /// Whether the check compares the settings with NUT's files.
    pub fn settings(self) -> bool {
        matches!(self, Face::Check | Face::Page | Face::Recheck | Face::Sync)
    }

    /// Whether the check remembers the files' fingerprints and asks upsd about the stored
    /// credentials (the agent tracks both on its own).
    pub fn settings_live(self) -> bool {
        matches!(self, Face::Check | Face::Page | Face::Sync)
    }
}

/// What a face was given before anything is resolved: the user's options, or the agent's.
#[derive(Clone)]
pub struct Given {
    pub nut_dir: Option<PathBuf>,
    pub nut_version: Option<NutVersion>,
    pub settings: Option<PathBuf>,
    pub sysfs_root: Option<PathBuf>,
    /// Serial ports the user named (`--serial-port`).
    pub serial_ports: Vec<String>,
    pub upsd: Upsd,
    /// The upsd client's options (or why they could not be made: a CA file that cannot be
    /// read); a check shortens the defaults the user did not set.
    pub client: Result<Options, String>,
    /// `--timeout`: it bounds the whole question to upsd.
    pub timeout: Option<f64>,
    pub retries_given: bool,
    /// `$NUT_CONFPATH` as the face read it (the environment is read at the face, not here).
    pub env_confpath: Option<OsString>,
}

impl Default for Given {
    fn default() -> Self {
        Given {
            nut_dir: None,
            nut_version: None,
            settings: None,
            sysfs_root: None,
            serial_ports: Vec::new(),
            upsd: Upsd::Default,
            client: Ok(Options::default()),
            timeout: None,
            retries_given: false,
            env_confpath: None,
        }
    }
}

/// Which upsd a check asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Upsd {
    /// The first stored UPS's upsd, else localhost.
    #[default]
    Default,
    /// This address (`--upsd`).
    At(Target),
    /// None (`--no-upsd`).
    None,
}

/// Where NUT's directory came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirSource {
    Option,
    Settings(PathBuf),
    Env,
    Default,
}

impl DirSource {
    pub fn describe(&self) -> String {
        match self {
            DirSource::Option => "--nut-dir".to_string(),
            DirSource::Settings(p) => format!("nut_conf_dir of {}", p.display()),
            DirSource::Env => "$NUT_CONFPATH".to_string(),
            DirSource::Default => "the default".to_string(),
        }
    }
}

/// NUT's directory by the one precedence: explicit, the settings, `$NUT_CONFPATH`, `/etc/nut`.
/// `settings` is the settings file's path and contents when the file exists.
pub fn nut_dir(
    explicit: Option<&Path>,
    settings: Option<(&Path, &Settings)>,
    env: Option<&std::ffi::OsStr>,
) -> (PathBuf, DirSource) {
    if let Some(d) = explicit {
        return (d.to_path_buf(), DirSource::Option);
    }
    if let Some((path, s)) = settings {
        return (
            PathBuf::from(&s.nut_conf_dir),
            DirSource::Settings(path.to_path_buf()),
        );
    }
    match env.filter(|v| !v.is_empty()) {
        Some(v) => (PathBuf::from(v), DirSource::Env),
        None => (PathBuf::from("/etc/nut"), DirSource::Default),
    }
}

/// Whether loaded settings may name NUT's directory: a file that could not be read (defaults
/// stand in for it) names none, and the rule goes on to `$NUT_CONFPATH`.
pub fn names_dir(loaded: &store::Loaded) -> bool {
    matches!(
        loaded.source,
        store::Source::Current | store::Source::Previous
    )
}

/// The installed NUT: the release whose rules apply, where that came from, its drivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub version: NutVersion,
    /// `--nut-version`, the program that said it, or that NUT is not installed.
    pub source: String,
    /// The directory of NUT's drivers, when one is installed.
    pub driver_dir: Option<PathBuf>,
    /// The drivers installed there, when the version came from the host.
    pub drivers: Option<Vec<String>>,
}

impl Installed {
    /// An explicit version checks against that release's rules and built-in driver list; a
    /// detected one also uses the host's installed drivers.
    pub fn detect(explicit: Option<NutVersion>) -> Installed {
        match explicit {
            Some(v) => Installed {
                version: v,
                source: "--nut-version".to_string(),
                driver_dir: host::driver_dir(),
                drivers: None,
            },
            None => match host::detect_version() {
                Some((v, from)) => Installed {
                    version: v,
                    source: from.display().to_string(),
                    driver_dir: host::driver_dir(),
                    drivers: host::installed_drivers(),
                },
                None => Installed {
                    version: NutVersion::NEWEST,
                    source: "not installed; newest rules".to_string(),
                    driver_dir: None,
                    drivers: None,
                },
            },
        }
    }
}

/// The upsd a check asks and how.
#[derive(Clone)]
pub struct Ask {
    pub target: Target,
    pub options: Result<Options, String>,
    /// The whole question to upsd ends within this time (`--timeout`, else 10 s).
    pub total: std::time::Duration,
}

/// Everything a check needs, resolved once.
pub struct Plan {
    pub face: Face,
    pub nut_dir: PathBuf,
    pub dir_source: DirSource,
    pub installed: Installed,
    pub settings_path: PathBuf,
    /// The settings, when the file exists.
    pub settings: Option<Settings>,
    /// What loading the settings warned about, for the face to show.
    pub settings_warnings: Vec<String>,
    pub root: Root,
    /// What sysfs lacks, asked of the USB devices: only for the real `/sys`.
    pub usb: Option<Box<dyn DeviceReader>>,
    pub upsd: Option<Ask>,
    pub talk: Talk,
    /// Serial ports the user named.
    pub serial_ports: Vec<String>,
}

/// Why a plan could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// An option's value is wrong (`--sysfs-root` that is not a sysfs tree).
    Option(String),
    /// NUT's directory is not there.
    NoNutDir(String),
}

impl PlanError {
    pub fn message(&self) -> &str {
        match self {
            PlanError::Option(m) | PlanError::NoNutDir(m) => m,
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The probe's root from `--sysfs-root`: a directory that looks like sysfs, or an error saying
/// what it is not.
pub fn root(sysfs_root: Option<&Path>) -> Result<Root, PlanError> {
    let Some(dir) = sysfs_root else {
        return Ok(Root::system());
    };
    if !dir.is_dir() {
        return Err(PlanError::Option(format!(
            "--sysfs-root {} is not a directory",
            dir.display()
        )));
    }
    if !dir.join("bus/usb").exists() && !dir.join("class/tty").exists() {
        return Err(PlanError::Option(format!(
            "--sysfs-root {} is not a sysfs tree: it has neither bus/usb nor class/tty (give the tree's sys directory)",
            dir.display()
        )));
    }
    Ok(Root::from_sysfs(dir.to_path_buf()))
}

/// The USB device reader for a root: the devices themselves on the real system, none for a
/// captured tree (its devices are not here to ask).
pub fn usb_reader(root: &Root) -> Option<Box<dyn DeviceReader>> {
    root.is_system().then(crate::probe::usbdev::system)
}

/// The settings file: the one given, else the default.
pub fn settings_path(given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| PathBuf::from(DEFAULT_SETTINGS), Path::to_path_buf)
}

impl Plan {
    /// Resolves what `given` names for `face`; NUT's version comes from `installed` (resolved
    /// once per command, or once per agent).
    pub fn resolve(face: Face, given: &Given, installed: Installed) -> Result<Plan, PlanError> {
        let root = root(given.sysfs_root.as_deref())?;
        let settings_path = settings_path(given.settings.as_deref());
        let (settings, settings_warnings, readable) = if settings_path.exists() {
            let loaded = store::load(&settings_path);
            let readable = names_dir(&loaded);
            let mut w = loaded.warnings;
            w.extend(settings_path.parent().and_then(store::check_dir));
            if let Some(v) = loaded.old_version {
                w.push(format!(
                    "{} is in format version {v}; the next change writes the current one",
                    settings_path.display()
                ));
            }
            (Some(loaded.settings), w, readable)
        } else {
            (None, Vec::new(), false)
        };
        let (nut_dir, dir_source) = nut_dir(
            given.nut_dir.as_deref(),
            settings
                .as_ref()
                .filter(|_| readable)
                .map(|s| (settings_path.as_path(), s)),
            given.env_confpath.as_deref(),
        );
        let upsd = match &given.upsd {
            _ if !matches!(face, Face::Check | Face::Page) => None,
            Upsd::None => None,
            Upsd::At(t) => Some(t.clone()),
            Upsd::Default => Some(match settings.as_ref().and_then(|s| s.ups.first()) {
                Some(u) => Target {
                    ups: None,
                    host: u.upsd_host.clone(),
                    port: u.upsd_port,
                },
                None => Target::localhost(),
            }),
        }
        .map(|target| {
            let options = given.client.clone().map(|mut o| {
                // A check should not wait long for a upsd that is not there.
                if given.timeout.is_none() {
                    o.connect_timeout = std::time::Duration::from_secs(2);
                    o.request_timeout = std::time::Duration::from_secs(2);
                }
                if !given.retries_given {
                    o.retry_count = 0;
                }
                o
            });
            let total = given.timeout.map_or(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs_f64,
            );
            Ask {
                target,
                options,
                total,
            }
        });
        let usb = if face.hardware() {
            usb_reader(&root)
        } else {
            None
        };
        Ok(Plan {
            face,
            nut_dir,
            dir_source,
            installed,
            settings_path,
            settings,
            settings_warnings,
            usb,
            root,
            upsd,
            talk: face.talk(None),
            serial_ports: given.serial_ports.clone(),
        })
    }

    /// NUT's directory must be one to check anything.
    pub fn require_nut_dir(&self) -> Result<(), PlanError> {
        let dir = &self.nut_dir;
        if dir.is_dir() {
            return Ok(());
        }
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        Err(PlanError::NoNutDir(format!(
            "{} {why}: NUT is not installed here (apt install nut-server nut-client), or its files are elsewhere (--nut-dir DIR, settings set nut_conf_dir=DIR, or $NUT_CONFPATH)",
            dir.display()
        )))
    }

    /// The settings file's name, as findings about it name it.
    pub fn settings_name(&self) -> String {
        self.settings_path.file_name().map_or_else(
            || "settings".to_string(),
            |n| n.to_string_lossy().to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_comes_from_the_option_then_the_settings_then_the_environment() {
        let s = Settings {
            nut_conf_dir: "/from/settings".into(),
            ..Settings::default()
        };
        let file = Path::new("/var/lib/power-snitch/settings.bin");
        let env = std::ffi::OsStr::new("/from/env");
        type Case<'a> = (
            Option<&'a Path>,
            Option<(&'a Path, &'a Settings)>,
            Option<&'a std::ffi::OsStr>,
            &'a str,
            DirSource,
        );
        let cases: [Case; 6] = [
            (
                Some(Path::new("/opt")),
                Some((file, &s)),
                Some(env),
                "/opt",
                DirSource::Option,
            ),
            (
                None,
                Some((file, &s)),
                Some(env),
                "/from/settings",
                DirSource::Settings(file.into()),
            ),
            (None, None, Some(env), "/from/env", DirSource::Env),
            (
                None,
                None,
                Some(std::ffi::OsStr::new("")),
                "/etc/nut",
                DirSource::Default,
            ),
            (None, None, None, "/etc/nut", DirSource::Default),
            (
                Some(Path::new("/opt")),
                None,
                None,
                "/opt",
                DirSource::Option,
            ),
        ];
        for (explicit, settings, env, dir, source) in cases {
            assert_eq!(
                nut_dir(explicit, settings, env),
                (PathBuf::from(dir), source),
                "{explicit:?} {env:?}"
            );
        }
    }

    #[test]
    fn only_check_and_probe_talk_to_configured_ports() {
        let tty = crate::probe::udev_event::from_instance("add:ttyUSB0:0403:6001").unwrap();
        assert_eq!(Face::Check.talk(None), Talk::Named);
        assert_eq!(Face::Probe.talk(None), Talk::Named);
        for f in [Face::Recheck, Face::Page, Face::Validate] {
            assert_eq!(f.talk(Some(&tty)), Talk::Never, "{f:?}");
        }
        assert_eq!(
            Face::UdevCheck.talk(Some(&tty)),
            Talk::Event {
                tty: Some("ttyUSB0".into()),
                appeared: true
            }
        );
        assert_eq!(Face::UdevCheck.talk(None), Talk::Never);
    }
}
