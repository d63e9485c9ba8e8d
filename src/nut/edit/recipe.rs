//! Whole changes over the five files: adopt a UPS, remove it, write the settings into NUT.

use std::collections::BTreeMap;

use super::files::{
    same_host, Entry, MonitorSpec, NutConfDoc, Role, SectionSpec, UpsConfDoc, UpsmonDoc, UserSpec,
    UsersDoc,
};
use super::{EditError, Reason};
use crate::nut::drivers::bus;
use crate::nut::nut_conf::Mode;
use crate::nut::upsd_conf::DEFAULT_PORT;
use crate::nut::version::NutVersion;
use crate::nut::{NUT_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

/// The files as they are, by name (`ups.conf`, …); a missing file is empty.
pub type Files = BTreeMap<&'static str, Vec<u8>>;
/// The new bytes of exactly the files that change.
pub type Changes = BTreeMap<&'static str, Vec<u8>>;

/// The five files being edited together.
struct Set {
    before: Files,
    ups: UpsConfDoc,
    users: UsersDoc,
    upsmon: UpsmonDoc,
    nut: NutConfDoc,
}

impl Set {
    fn open(files: &Files, version: NutVersion) -> Set {
        let get = |n: &str| files.get(n).map(Vec::as_slice).unwrap_or_default();
        Set {
            before: [UPS_CONF, UPSD_USERS, UPSMON_CONF, NUT_CONF]
                .iter()
                .map(|n| (*n, get(n).to_vec()))
                .collect(),
            ups: UpsConfDoc::parse(get(UPS_CONF), version),
            users: UsersDoc::parse(get(UPSD_USERS), version),
            upsmon: UpsmonDoc::parse(get(UPSMON_CONF), version),
            nut: NutConfDoc::parse(get(NUT_CONF)),
        }
    }

    fn changes(self) -> Changes {
        let after = [
            (UPS_CONF, self.ups.to_bytes()),
            (UPSD_USERS, self.users.to_bytes()),
            (UPSMON_CONF, self.upsmon.to_bytes()),
            (NUT_CONF, self.nut.to_bytes()),
        ];
        after
            .into_iter()
            .filter(|(n, b)| self.before.get(n) != Some(b))
            .collect()
    }
}

/// What `adopt` writes.
#[derive(Clone, PartialEq, Eq)]
pub struct AdoptRequest {
    /// The section the probe suggests: [`SectionSpec::from_text`] of its text.
    pub section: SectionSpec,
    /// The monitoring account's password (see [`password_from`]).
    pub password: String,
    pub version: NutVersion,
}

impl std::fmt::Debug for AdoptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdoptRequest")
            .field("section", &self.section)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The upsd.users account [`adopt`] creates for UPS `ups`.
pub fn monitor_account(ups: &str) -> String {
    format!("monitor-{ups}")
}

/// A password from 24 random bytes: 32 characters of letters, digits, `-` and `_` (192 bits),
/// which upsd.users holds bare and upsmon sends unquoted.
pub fn password_from(random: &[u8; 24]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(32);
    for c in random.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
        }
    }
    out
}

/// The settings a section uses to select its device.
const MATCHERS: &[&str] = &[
    "vendorid",
    "productid",
    "vendor",
    "product",
    "serial",
    "bus",
    "busport",
    "device",
];

/// Does a section with `existing` entries already serve the device `new` describes? Same
/// driver, the same port for a serial device, and every matcher the existing section has
/// equal in the new one (a section without matchers takes any device of its driver).
fn serves(existing: &[Entry], new: &SectionSpec) -> bool {
    let get = |k: &str| {
        existing
            .iter()
            .rev()
            .find(|e| e.name == k)
            .and_then(|e| e.value.as_deref())
    };
    let (Some(driver), Some(new_driver)) = (get("driver"), new.value("driver")) else {
        return false;
    };
    if driver != new_driver {
        return false;
    }
    let port = get("port").unwrap_or("");
    let new_port = new.value("port").unwrap_or("");
    match (bus(driver, port), bus(new_driver, new_port)) {
        (Some(crate::nut::drivers::Bus::Usb), Some(crate::nut::drivers::Bus::Usb)) => {}
        _ if port != new_port => return false,
        _ => {}
    }
    MATCHERS.iter().all(|k| match get(k) {
        None => true,
        Some(v) => new.value(k).is_some_and(|n| n.eq_ignore_ascii_case(v)),
    })
}

/// Where this machine's upsd answers, as upsd.conf's LISTEN lines say: `localhost` when it
/// listens on loopback or everywhere (with the port when it is not NUT's), else the first
/// address it listens on.
fn local_upsd(files: &Files, version: NutVersion) -> (String, Option<u16>) {
    use crate::nut::{conf, diag::Sink, drivers::DriverDb, upsd_conf, Context, UPSD_CONF};
    let text = files.get(UPSD_CONF).map(Vec::as_slice).unwrap_or_default();
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let mut sink = Sink::new(UPSD_CONF);
    let lines = conf::read_lines(text, version.dialect(), &mut sink);
    let listeners = upsd_conf::parse(&lines, &cx, &mut sink).listeners();
    let local = |a: &str| {
        matches!(
            a,
            "127.0.0.1" | "::1" | "localhost" | "0.0.0.0" | "::" | "*"
        )
    };
    let port = |p: u16| (p != DEFAULT_PORT).then_some(p);
    match listeners.iter().find(|(a, _)| local(a)) {
        Some((_, p)) => ("localhost".into(), port(*p)),
        None => match listeners.first() {
            Some((a, p)) => (a.clone(), port(*p)),
            None => ("localhost".into(), None),
        },
    }
}

/// Adopts a detected UPS: its section, a monitoring account, the MONITOR line, MODE.
pub fn adopt(files: &Files, req: &AdoptRequest) -> Result<Changes, EditError> {
    let mut set = Set::open(files, req.version);
    let name = &req.section.name;
    let place = format!("[{name}]");
    let err = |reason| EditError {
        file: UPS_CONF,
        place: place.clone(),
        line: None,
        reason,
    };
    for what in ["driver", "port"] {
        if req.section.value(what).is_none_or(str::is_empty) {
            return Err(err(Reason::Incomplete {
                what: format!("a `{what}`"),
            }));
        }
    }
    if set.ups.section_names().contains(name) {
        return Err(err(Reason::Exists {
            what: "section".into(),
        }));
    }
    for other in set.ups.section_names() {
        if serves(&set.ups.entries(&other), &req.section) {
            return Err(err(Reason::SameDevice { section: other }));
        }
    }
    set.ups.add_section(&req.section)?;
    let user = monitor_account(name);
    if set.users.user_names().contains(&user) {
        return Err(EditError {
            file: UPSD_USERS,
            place: format!("user [{user}]"),
            line: None,
            reason: Reason::Exists {
                what: "user".into(),
            },
        });
    }
    let (host, port) = local_upsd(files, req.version);
    let monitor = MonitorSpec {
        ups: name.clone(),
        host,
        port,
        power: 1,
        user: user.clone(),
        password: req.password.clone(),
        role: Role::Primary,
    };
    // The MONITOR line first: it refuses a password upsmon cannot send.
    set.upsmon.put_monitor(&monitor)?;
    set.users.put(&UserSpec {
        name: user,
        password: req.password.clone(),
        upsmon: Some(Role::Primary),
        actions: Vec::new(),
        instcmds: Vec::new(),
    })?;
    if !matches!(set.nut.mode(), Some(Mode::Standalone | Mode::NetServer)) {
        set.nut.set_mode(Mode::Standalone)?;
    }
    Ok(set.changes())
}

/// Removes a UPS: its section, its MONITOR lines on this machine, and the account [`adopt`]
/// made for it when no other MONITOR line uses it.
pub fn remove(files: &Files, ups: &str, version: NutVersion) -> Result<Changes, EditError> {
    let mut set = Set::open(files, version);
    let had_section = set.ups.remove_section(ups).is_ok();
    let users: Vec<String> = set
        .upsmon
        .monitors()
        .into_iter()
        .filter(|m| m.ups == ups && same_host(&m.host, "localhost"))
        .map(|m| m.user)
        .collect();
    let had_monitor = set.upsmon.remove_monitor(ups, "localhost").is_ok();
    if !had_section && !had_monitor {
        return Err(EditError {
            file: UPS_CONF,
            place: format!("[{ups}]"),
            line: None,
            reason: Reason::NotFound {
                what: "section or MONITOR line".into(),
            },
        });
    }
    let still: Vec<String> = set.upsmon.monitors().into_iter().map(|m| m.user).collect();
    let account = monitor_account(ups);
    if users.contains(&account) && !still.contains(&account) {
        // The account may be gone already: nothing to remove then.
        let _ = set.users.remove(&account);
    }
    // The last UPS gone: NUT back to what a fresh install has, MODE=none, rather than upsd
    // and upsmon refusing to start with nothing to serve or watch.
    if set.ups.section_names().is_empty()
        && still.is_empty()
        && matches!(set.nut.mode(), Some(Mode::Standalone))
    {
        set.nut.set_mode(Mode::None)?;
    }
    Ok(set.changes())
}

/// The settings of one UPS that go into NUT's files (from `settings::model::UpsEntry`:
/// `nut_device_name`, `nut_driver`, `nut_port`, `nut_username`, `nut_password`, `upsd_host`,
/// `upsd_port`).
#[derive(Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub name: String,
    pub driver: String,
    pub port: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub upsd_host: String,
    pub upsd_port: u16,
    pub version: NutVersion,
}

impl std::fmt::Debug for SyncRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRequest")
            .field("name", &self.name)
            .field("driver", &self.driver)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("upsd_host", &self.upsd_host)
            .field("upsd_port", &self.upsd_port)
            .finish_non_exhaustive()
    }
}

/// Writes the settings' driver, port and credentials into the section, the MONITOR line and
/// the account, creating what is missing. A MONITOR line keeps its power value and role.
pub fn to_nut(files: &Files, req: &SyncRequest) -> Result<Changes, EditError> {
    let mut set = Set::open(files, req.version);
    let place = format!("[{}]", req.name);
    if !same_host(&req.upsd_host, "localhost") {
        return Err(EditError {
            file: UPS_CONF,
            place,
            line: None,
            reason: Reason::NotLocal {
                host: req.upsd_host.clone(),
            },
        });
    }
    if set.ups.section_names().contains(&req.name) {
        if !req.driver.is_empty() {
            set.ups.set(&req.name, "driver", Some(&req.driver))?;
        }
        if let Some(p) = req.port.as_deref().filter(|p| !p.is_empty()) {
            set.ups.set(&req.name, "port", Some(p))?;
        }
    } else {
        let (driver, Some(port)) = (&req.driver, req.port.as_deref().filter(|p| !p.is_empty()))
        else {
            return Err(EditError {
                file: UPS_CONF,
                place,
                line: None,
                reason: Reason::Incomplete {
                    what: "a driver and a port to create the section".into(),
                },
            });
        };
        if driver.is_empty() {
            return Err(EditError {
                file: UPS_CONF,
                place,
                line: None,
                reason: Reason::Incomplete {
                    what: "a driver and a port to create the section".into(),
                },
            });
        }
        set.ups.add_section(&SectionSpec {
            name: req.name.clone(),
            entries: vec![
                Entry {
                    name: "driver".into(),
                    value: Some(driver.clone()),
                },
                Entry {
                    name: "port".into(),
                    value: Some(port.to_string()),
                },
            ],
        })?;
    }
    if let (Some(user), Some(password)) = (&req.user, &req.password) {
        let old = set
            .upsmon
            .monitors()
            .into_iter()
            .find(|m| m.ups == req.name && same_host(&m.host, &req.upsd_host));
        let role = old.as_ref().map_or(Role::Primary, |m| m.role);
        set.upsmon.put_monitor(&MonitorSpec {
            ups: req.name.clone(),
            host: old
                .as_ref()
                .map_or_else(|| req.upsd_host.clone(), |m| m.host.clone()),
            port: (req.upsd_port != DEFAULT_PORT).then_some(req.upsd_port),
            power: old.as_ref().map_or(1, |m| m.power),
            user: user.clone(),
            password: password.clone(),
            role,
        })?;
        if set.users.user_names().contains(user) {
            set.users.set_password(user, password)?;
        } else {
            set.users.put(&UserSpec {
                name: user.clone(),
                password: password.clone(),
                upsmon: Some(role),
                actions: Vec::new(),
                instcmds: Vec::new(),
            })?;
        }
    }
    Ok(set.changes())
}
