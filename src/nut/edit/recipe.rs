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

/// The instant commands the monitoring account [`adopt`] makes may run.
pub const BATTERY_TEST_COMMANDS: [&str; 3] = [
    "test.battery.start.quick",
    "test.battery.start.deep",
    "test.battery.stop",
];

/// Adopts a detected UPS: its section, a monitoring account (that may also run the battery
/// tests), the MONITOR line, MODE.
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
        // The battery tests the agent runs (and a person from the page): never a command
        // that cuts the power.
        instcmds: BATTERY_TEST_COMMANDS
            .iter()
            .map(|c| c.to_string())
            .collect(),
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

// ---------------------------------------------------------------------------------------------
// NUT clients on the LAN: a secondary account in upsd.users, LISTEN on the LAN address,
// MODE=netserver; and the way back.

/// What kind of machine a client is: what it asks for, and what it lets the user choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Synology DSM ("Network UPS server" in DSM's UPS settings): its login is fixed,
    /// `monuser`/`secret`, and it asks upsd for the UPS named `ups`.
    Synology,
    /// TrueNAS (UPS service, mode secondary): remote host, port, identifier (the UPS), monitor
    /// user and password of one's choice.
    Truenas,
    /// Proxmox VE: Debian's nut-client on the host, a MONITOR line in upsmon.conf.
    Proxmox,
    /// Home Assistant's NUT integration: host, port, user, password.
    HomeAssistant,
    /// Any upsmon: a MONITOR line.
    Upsmon,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Synology,
        Preset::Truenas,
        Preset::Proxmox,
        Preset::HomeAssistant,
        Preset::Upsmon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Synology => "synology",
            Preset::Truenas => "truenas",
            Preset::Proxmox => "proxmox",
            Preset::HomeAssistant => "homeassistant",
            Preset::Upsmon => "upsmon",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The login the client's firmware is fixed to, if it is.
    pub fn fixed_login(self) -> Option<(&'static str, &'static str)> {
        match self {
            Preset::Synology => Some(("monuser", "secret")),
            _ => None,
        }
    }

    /// The UPS name the client's firmware asks for, if it is fixed.
    pub fn fixed_ups(self) -> Option<&'static str> {
        match self {
            Preset::Synology => Some("ups"),
            _ => None,
        }
    }
}

/// What [`client_add`] writes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// The client's name: the upsd.users account (except for a preset with a fixed login),
    /// and what `client remove` takes.
    pub name: String,
    pub preset: Preset,
    /// The UPS the client watches; `None`: the only section of ups.conf.
    pub ups: Option<String>,
    /// The LAN address upsd is to listen on (the client connects to it).
    pub listen: String,
    /// The account's password (see [`password_from`]); unused for a fixed login.
    pub password: String,
    pub version: NutVersion,
}

impl std::fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRequest")
            .field("name", &self.name)
            .field("preset", &self.preset)
            .field("ups", &self.ups)
            .field("listen", &self.listen)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What [`client_add`] made: the files' new bytes and what the client needs to be told.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAdded {
    pub changes: Changes,
    pub account: String,
    pub password: String,
    pub ups: String,
    /// The port upsd listens on at the LAN address.
    pub port: u16,
    /// Warnings for the person (a well-known password, a UPS name the client will not find).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for ClientAdded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAdded")
            .field("files", &self.changes.keys().collect::<Vec<_>>())
            .field("account", &self.account)
            .field("ups", &self.ups)
            .field("port", &self.port)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// A client account found in upsd.users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAccount {
    /// The client's name (the marker's), or the account's when no marker names it.
    pub name: String,
    pub account: String,
    /// The preset `client add` was given (`None`: an account made by hand).
    pub preset: Option<Preset>,
    /// The account has `upsmon secondary` (or `slave`).
    pub secondary: bool,
}

/// The comment `client add` writes above the account it makes: `# power-snitch client NAME
/// (PRESET)`. NUT reads nothing from it; `client remove` and `client list` read it back.
const USER_MARK: &str = "# power-snitch client ";
/// The comment above the LISTEN lines `client add` writes; `(MODE was standalone)` when it
/// changed MODE too.
const LISTEN_MARK: &str = "# power-snitch client add: LISTEN for NUT clients on the LAN";

/// The well-known login's warning.
pub fn fixed_login_warning(user: &str, password: &str) -> String {
    format!(
        "`{user}`/`{password}` is Synology DSM's fixed login, known to everyone: anyone on the LAN who reaches upsd can log in with it and read the UPS. Here it is a secondary account (upsd gives it LOGIN only, not FSD), but a NUT server that keeps Synology's default has `{user}` as upsmon primary, which may also raise the forced shutdown (FSD) of every machine on the UPS. Keep upsd's port closed to other networks."
    )
}

fn trim(t: &[u8]) -> &[u8] {
    let k = t.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &t[k..]
}

/// The clients' accounts of upsd.users: those a marker names, and the other `upsmon
/// secondary` accounts.
pub fn client_accounts(files: &Files, version: NutVersion) -> Vec<ClientAccount> {
    use crate::nut::upsd_users::Role as UserRole;
    let text = files.get(UPSD_USERS).map(Vec::as_slice).unwrap_or_default();
    let users = parse_users(text, version);
    let doc = super::doc::Doc::parse(text);
    let mut out: Vec<ClientAccount> = Vec::new();
    for (i, l) in doc.lines.iter().enumerate() {
        let Some(rest) = std::str::from_utf8(trim(&l.text))
            .ok()
            .and_then(|t| t.strip_prefix(USER_MARK))
        else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(name), preset) = (w.next(), w.next()) else {
            continue;
        };
        let preset = preset
            .and_then(|p| p.strip_prefix('(')?.strip_suffix(')'))
            .and_then(Preset::parse);
        let Some(header) = doc.lines.get(i + 1).and_then(|h| {
            let t = std::str::from_utf8(trim(&h.text)).ok()?.trim_end();
            Some(t.strip_prefix('[')?.strip_suffix(']')?.to_string())
        }) else {
            continue;
        };
        if let Some(u) = users.iter().find(|u| u.name == header) {
            out.push(ClientAccount {
                name: name.to_string(),
                account: header,
                preset,
                secondary: u.role == Some(UserRole::Secondary),
            });
        }
    }
    for u in &users {
        if u.role == Some(UserRole::Secondary) && !out.iter().any(|c| c.account == u.name) {
            out.push(ClientAccount {
                name: u.name.clone(),
                account: u.name.clone(),
                preset: None,
                secondary: true,
            });
        }
    }
    out
}

fn parse_users(text: &[u8], version: NutVersion) -> Vec<crate::nut::upsd_users::User> {
    use crate::nut::{conf, diag::Sink, drivers::DriverDb, upsd_users, Context};
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let mut sink = Sink::new(UPSD_USERS);
    let lines = conf::read_lines(text, version.dialect(), &mut sink);
    upsd_users::parse(&lines, &cx, &mut sink).users
}

fn listeners_of(text: &[u8], version: NutVersion) -> Vec<(String, u16)> {
    use crate::nut::{conf, diag::Sink, drivers::DriverDb, upsd_conf, Context, UPSD_CONF};
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let mut sink = Sink::new(UPSD_CONF);
    let lines = conf::read_lines(text, version.dialect(), &mut sink);
    upsd_conf::parse(&lines, &cx, &mut sink).listeners()
}

/// Whether a listener on `on` takes connections to `addr` (the same address, or the wildcard
/// of its family).
fn covers(on: &str, addr: &str) -> bool {
    let v6 = addr.contains(':');
    on.eq_ignore_ascii_case(addr) || on == "*" || (on == "0.0.0.0" && !v6) || (on == "::" && v6)
}

fn loopback(addr: &str) -> bool {
    addr == "localhost"
        || addr
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Adds a NUT client: a secondary account (its own password, or the preset's fixed login)
/// with a marker comment above it, LISTEN on `req.listen` (with upsd's loopback addresses kept:
/// when upsd.conf has no LISTEN line, upsd's defaults 127.0.0.1 and ::1 are written first),
/// and MODE=netserver from standalone. Refused without a UPS served here, for a name or
/// account taken, and for a MODE under which this machine serves nothing.
pub fn client_add(files: &Files, req: &ClientRequest) -> Result<ClientAdded, EditError> {
    use super::value::{check_host, check_name};
    use crate::nut::UPSD_CONF;
    let mut set = Set::open(files, req.version);
    let place = format!("client {}", req.name);
    let err = |file, reason| EditError {
        file,
        place: place.clone(),
        line: None,
        reason,
    };
    check_name("the client name", &req.name).map_err(|r| err(UPSD_USERS, r))?;
    check_host("the LAN address", &req.listen).map_err(|r| err(UPSD_CONF, r))?;
    // upsd's own loopback listeners; another 127.x address stays this machine's too, which
    // is how a second NUT on the same machine (and the tests) reach it.
    if matches!(req.listen.as_str(), "127.0.0.1" | "::1" | "localhost") {
        return Err(err(
            UPSD_CONF,
            Reason::Value {
                what: "the LAN address".into(),
                why: "is upsd's loopback address, which no other machine reaches".into(),
            },
        ));
    }
    match set.nut.mode() {
        Some(Mode::Standalone | Mode::NetServer) => {}
        other => {
            return Err(err(
                NUT_CONF,
                Reason::Incomplete {
                    what: format!(
                        "a UPS this machine serves (MODE is {}): adopt one first",
                        other.map_or("not set", Mode::as_str)
                    ),
                },
            ))
        }
    }
    let sections = set.ups.section_names();
    let ups = match &req.ups {
        Some(u) if sections.contains(u) => u.clone(),
        Some(u) => {
            return Err(err(
                UPS_CONF,
                Reason::NotFound {
                    what: format!("section [{u}]"),
                },
            ))
        }
        None => match sections.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(err(
                    UPS_CONF,
                    Reason::Incomplete {
                        what: "a UPS section: adopt a UPS first".into(),
                    },
                ))
            }
            _ => {
                return Err(err(
                    UPS_CONF,
                    Reason::Incomplete {
                        what: format!("the UPS named (--ups): {}", sections.join(", ")),
                    },
                ))
            }
        },
    };
    let known = client_accounts(files, req.version);
    if known.iter().any(|c| c.name == req.name) {
        return Err(err(
            UPSD_USERS,
            Reason::Exists {
                what: "client".into(),
            },
        ));
    }
    let (account, password) = match req.preset.fixed_login() {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (req.name.clone(), req.password.clone()),
    };
    if set.users.user_names().contains(&account) {
        return Err(EditError {
            file: UPSD_USERS,
            place: format!("user [{account}]"),
            line: None,
            reason: Reason::Exists {
                what: "user".into(),
            },
        });
    }
    let mut warnings = Vec::new();
    if let Some((u, p)) = req.preset.fixed_login() {
        warnings.push(fixed_login_warning(u, p));
    }
    if let Some(want) = req.preset.fixed_ups().filter(|w| *w != ups) {
        warnings.push(format!(
            "{} asks upsd for the UPS named `{want}`, and this UPS is [{ups}]: the client will not find it unless the section is named [{want}]",
            req.preset.as_str()
        ));
    }
    set.users.put(&UserSpec {
        name: account.clone(),
        password: password.clone(),
        upsmon: Some(Role::Secondary),
        actions: Vec::new(),
        instcmds: Vec::new(),
    })?;
    // The marker, directly above the account's header (NUT reads nothing from a comment).
    let mut doc = super::doc::Doc::parse(&set.users.to_bytes());
    let header = format!("[{account}]");
    let at = doc
        .lines
        .iter()
        .rposition(|l| trim(&l.text) == header.as_bytes())
        .ok_or_else(|| err(UPSD_USERS, Reason::NotReadBack))?;
    let mark = format!("{USER_MARK}{} ({})", req.name, req.preset.as_str());
    doc.splice(at..at, vec![mark.into_bytes()]);
    let users_bytes = doc.to_bytes();
    set.users = UsersDoc::parse(&users_bytes, req.version);
    if !client_accounts(
        &[(UPSD_USERS, users_bytes)].into_iter().collect(),
        req.version,
    )
    .iter()
    .any(|c| c.name == req.name && c.account == account && c.secondary)
    {
        return Err(err(UPSD_USERS, Reason::NotReadBack));
    }
    // LISTEN on the LAN address, unless upsd listens there already.
    let old_conf = files.get(UPSD_CONF).cloned().unwrap_or_default();
    let listeners = listeners_of(&old_conf, req.version);
    let port = listeners
        .iter()
        .find(|(a, _)| loopback(a))
        .or(listeners.first())
        .map_or(DEFAULT_PORT, |(_, p)| *p);
    let mut upsd_conf = None;
    let mut was = None;
    if !listeners.iter().any(|(a, _)| covers(a, &req.listen)) {
        if set.nut.mode() == Some(Mode::Standalone) {
            set.nut.set_mode(Mode::NetServer)?;
            was = Some(Mode::Standalone);
        }
        let mut doc = super::doc::Doc::parse(&old_conf);
        let groups = doc.groups(req.version.dialect());
        let had_listen: Vec<&super::doc::Group> = groups
            .iter()
            .filter(|g| {
                g.words
                    .as_ref()
                    .is_some_and(|w| w.first().is_some_and(|k| k == "LISTEN"))
            })
            .collect();
        let at = had_listen.last().map_or(doc.lines.len(), |g| g.last + 1);
        let p = (port != DEFAULT_PORT).then(|| format!(" {port}"));
        let p = p.as_deref().unwrap_or("");
        let mut lines = vec![match was {
            Some(m) => format!("{LISTEN_MARK} (MODE was {})", m.as_str()),
            None => LISTEN_MARK.to_string(),
        }];
        let mut want = listeners.clone();
        if had_listen.is_empty() {
            // upsd's defaults, written out: a LISTEN line replaces them.
            lines.push(format!("LISTEN 127.0.0.1{p}"));
            lines.push(format!("LISTEN ::1{p}"));
        }
        lines.push(format!("LISTEN {}{p}", req.listen));
        want.push((req.listen.clone(), port));
        doc.splice(at..at, lines.into_iter().map(String::into_bytes).collect());
        let new = doc.to_bytes();
        if listeners_of(&new, req.version) != want {
            return Err(err(UPSD_CONF, Reason::NotReadBack));
        }
        upsd_conf = Some(new);
    } else if set.nut.mode() == Some(Mode::Standalone) {
        set.nut.set_mode(Mode::NetServer)?;
    }
    let mut changes = set.changes();
    if let Some(b) = upsd_conf {
        changes.insert(UPSD_CONF, b);
    }
    Ok(ClientAdded {
        changes,
        account,
        password,
        ups,
        port,
        warnings,
    })
}

/// Removes a client: its account (and the marker above it). When no secondary account
/// remains, the LISTEN lines `client add` wrote go (loopback only again, upsd.conf as it was)
/// and MODE goes back to what it was before them.
pub fn client_remove(files: &Files, name: &str, version: NutVersion) -> Result<Changes, EditError> {
    use crate::nut::UPSD_CONF;
    let mut set = Set::open(files, version);
    let known = client_accounts(files, version);
    let Some(client) = known.iter().find(|c| c.name == name) else {
        return Err(EditError {
            file: UPSD_USERS,
            place: format!("client {name}"),
            line: None,
            reason: Reason::NotFound {
                what: "client (see `power-snitch client list`)".into(),
            },
        });
    };
    set.users.remove(&client.account)?;
    let users_after = set.users.to_bytes();
    let secondary_left =
        client_accounts(&[(UPSD_USERS, users_after)].into_iter().collect(), version)
            .iter()
            .any(|c| c.secondary);
    let mut upsd_conf = None;
    if !secondary_left {
        let old = files.get(UPSD_CONF).cloned().unwrap_or_default();
        let mut doc = super::doc::Doc::parse(&old);
        if let Some(at) = doc
            .lines
            .iter()
            .position(|l| trim(&l.text).starts_with(LISTEN_MARK.as_bytes()))
        {
            let mark = String::from_utf8_lossy(&doc.lines[at].text).into_owned();
            let groups = doc.groups(version.dialect());
            let mut end = at + 1;
            for g in groups.iter().filter(|g| g.first > at) {
                let listen = g.first == end
                    && g.words
                        .as_ref()
                        .is_some_and(|w| w.first().is_some_and(|k| k == "LISTEN"));
                if !listen {
                    break;
                }
                end = g.last + 1;
            }
            doc.splice(at..end, Vec::new());
            upsd_conf = Some(doc.to_bytes());
            if mark.contains("(MODE was standalone)") && set.nut.mode() == Some(Mode::NetServer) {
                set.nut.set_mode(Mode::Standalone)?;
            }
        }
    }
    let mut changes = set.changes();
    if let Some(b) = upsd_conf.filter(|b| files.get(UPSD_CONF) != Some(b)) {
        changes.insert(UPSD_CONF, b);
    }
    Ok(changes)
}

#[cfg(test)]
mod client_tests {
    use super::*;
    use crate::nut::UPSD_CONF;

    const V: NutVersion = NutVersion::new(2, 8, 0);

    /// A NUT directory serving one UPS, as `adopt` leaves Debian's fresh files.
    fn served(upsd_conf: &str, mode: &str) -> Files {
        [
            (NUT_CONF, format!("# nut.conf\nMODE={mode}\n")),
            (
                UPS_CONF,
                "# ups.conf\n\n[ups]\n\tdriver = dummy-ups\n\tport = dummy.dev\n".to_string(),
            ),
            (UPSD_CONF, upsd_conf.to_string()),
            (
                UPSD_USERS,
                "# upsd.users\n\n[monitor-ups]\n\tpassword = pw-of-the-monitor\n\tupsmon primary\n"
                    .to_string(),
            ),
            (
                UPSMON_CONF,
                "MONITOR ups@localhost 1 monitor-ups pw-of-the-monitor primary\n".to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect()
    }

    fn req(name: &str, preset: Preset) -> ClientRequest {
        ClientRequest {
            name: name.into(),
            preset,
            ups: None,
            listen: "192.168.1.20".into(),
            password: "a-random-password-of-32-chars-x".into(),
            version: V,
        }
    }

    fn apply(files: &Files, changes: &Changes) -> Files {
        let mut out = files.clone();
        for (k, v) in changes {
            out.insert(k, v.clone());
        }
        out
    }

    fn text(f: &Files, name: &str) -> String {
        String::from_utf8(f[name].clone()).unwrap()
    }

    /// (upsd.conf before, MODE before, the LISTEN lines after, MODE after)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, u16)], &'a str);

    #[test]
    fn add_listens_on_the_lan_keeps_loopback_and_remove_gives_back_every_byte() {
        let cases: &[Case] = &[
            // Debian's fresh upsd.conf: no LISTEN, so upsd's defaults are written out first.
            (
                "# upsd.conf\n# LISTEN 127.0.0.1 3493\n",
                "standalone",
                &[("127.0.0.1", 3493), ("::1", 3493), ("192.168.1.20", 3493)],
                "netserver",
            ),
            // An own port: the LAN listener gets it too; MODE netserver stays.
            (
                "MAXAGE 20\nLISTEN 127.0.0.1 3555\nSTATEPATH /run/nut\n",
                "netserver",
                &[("127.0.0.1", 3555), ("192.168.1.20", 3555)],
                "netserver",
            ),
        ];
        for (conf, mode, listen, mode_after) in cases {
            let files = served(conf, mode);
            let added = client_add(&files, &req("nas", Preset::Truenas)).unwrap();
            let after = apply(&files, &added.changes);
            assert_eq!(
                listeners_of(&after[UPSD_CONF], V),
                listen
                    .iter()
                    .map(|(a, p)| (a.to_string(), *p))
                    .collect::<Vec<_>>(),
                "{conf}"
            );
            assert!(text(&after, NUT_CONF).contains(&format!("MODE={mode_after}\n")));
            let users = text(&after, UPSD_USERS);
            assert!(
                users.ends_with("\n\n# power-snitch client nas (truenas)\n[nas]\n\tpassword = a-random-password-of-32-chars-x\n\tupsmon secondary\n"),
                "{users}"
            );
            assert_eq!(added.account, "nas");
            assert_eq!(added.ups, "ups");
            assert!(added.warnings.is_empty(), "{:?}", added.warnings);
            assert_eq!(
                client_accounts(&after, V),
                [ClientAccount {
                    name: "nas".into(),
                    account: "nas".into(),
                    preset: Some(Preset::Truenas),
                    secondary: true
                }]
            );
            // The way back: every byte as it was.
            let back = client_remove(&after, "nas", V).unwrap();
            assert_eq!(apply(&after, &back), files, "{conf}");
        }
    }

    #[test]
    fn synology_gets_its_fixed_login_and_the_warning() {
        let files = served("LISTEN 127.0.0.1 3493\n", "standalone");
        let added = client_add(&files, &req("diskstation", Preset::Synology)).unwrap();
        assert_eq!(
            (added.account.as_str(), added.password.as_str()),
            ("monuser", "secret")
        );
        assert_eq!(added.warnings.len(), 1, "{:?}", added.warnings);
        assert!(
            added.warnings[0].contains("well") || added.warnings[0].contains("known to everyone")
        );
        assert!(added.warnings[0].contains("FSD"));
        let after = apply(&files, &added.changes);
        assert!(text(&after, UPSD_USERS).contains("# power-snitch client diskstation (synology)\n[monuser]\n\tpassword = secret\n\tupsmon secondary\n"));
        // A UPS not named `ups`: DSM will not find it, said plainly.
        let mut other = files.clone();
        other.insert(
            UPS_CONF,
            b"[rack]\n\tdriver = dummy-ups\n\tport = d.dev\n".to_vec(),
        );
        let added = client_add(&other, &req("ds", Preset::Synology)).unwrap();
        assert!(
            added.warnings.iter().any(|w| w.contains("named `ups`")),
            "{:?}",
            added.warnings
        );
        // Other presets: a password of their own, no warning.
        for p in [Preset::Proxmox, Preset::HomeAssistant, Preset::Upsmon] {
            let a = client_add(&files, &req("box", p)).unwrap();
            assert_eq!(a.account, "box");
            assert_eq!(a.password, "a-random-password-of-32-chars-x");
            assert!(a.warnings.is_empty());
        }
    }

    #[test]
    fn the_lan_listen_stays_while_another_secondary_remains() {
        let files = served("LISTEN 127.0.0.1 3493\n", "standalone");
        let one = apply(
            &files,
            &client_add(&files, &req("a", Preset::Upsmon))
                .unwrap()
                .changes,
        );
        let two = apply(
            &one,
            &client_add(&one, &req("b", Preset::Proxmox))
                .unwrap()
                .changes,
        );
        // The second one finds upsd listening there already: upsd.conf is not touched again.
        assert_eq!(two[UPSD_CONF], one[UPSD_CONF]);
        let back = apply(&two, &client_remove(&two, "a", V).unwrap());
        assert_eq!(back[UPSD_CONF], one[UPSD_CONF], "b still needs the LAN");
        assert!(text(&back, NUT_CONF).contains("MODE=netserver"));
        let back = apply(&back, &client_remove(&back, "b", V).unwrap());
        assert_eq!(back, files);
    }

    #[test]
    fn refusals_say_what_and_where() {
        let files = served("LISTEN 127.0.0.1 3493\n", "standalone");
        let e = |f: &Files, r: &ClientRequest| client_add(f, r).unwrap_err().to_string();
        assert!(e(&files, &req("bad name", Preset::Upsmon)).contains("the client name"));
        let mut r = req("x", Preset::Upsmon);
        r.listen = "127.0.0.1".into();
        assert!(e(&files, &r).contains("loopback"));
        let mut r = req("x", Preset::Upsmon);
        r.ups = Some("nope".into());
        assert!(e(&files, &r).contains("no such section [nope]"));
        // The account of another user is not taken over.
        assert!(e(&files, &req("monitor-ups", Preset::Upsmon)).contains("exists already"));
        let mut none = files.clone();
        none.insert(NUT_CONF, b"MODE=none\n".to_vec());
        assert!(e(&none, &req("x", Preset::Upsmon)).contains("MODE is none"));
        let mut two = files.clone();
        two.insert(
            UPS_CONF,
            b"[a]\n driver = dummy-ups\n port = a\n[b]\n driver = dummy-ups\n port = b\n".to_vec(),
        );
        assert!(e(&two, &req("x", Preset::Upsmon)).contains("a, b"));
        let after = apply(
            &files,
            &client_add(&files, &req("x", Preset::Upsmon))
                .unwrap()
                .changes,
        );
        assert!(e(&after, &req("x", Preset::Proxmox)).contains("client of this name exists"));
        assert!(client_remove(&files, "x", V)
            .unwrap_err()
            .to_string()
            .contains("no such client"));
        // A password NUT cannot carry is refused, never written.
        let mut r = req("y", Preset::Upsmon);
        r.password = "new\nline".into();
        assert!(client_add(&files, &r).is_err());
    }

    #[test]
    fn a_wildcard_listen_is_enough_and_is_left_alone() {
        let files = served("LISTEN 0.0.0.0 3493\n", "netserver");
        let added = client_add(&files, &req("ha", Preset::HomeAssistant)).unwrap();
        assert!(!added.changes.contains_key(UPSD_CONF));
        let after = apply(&files, &added.changes);
        assert_eq!(
            apply(&after, &client_remove(&after, "ha", V).unwrap()),
            files
        );
    }

    #[test]
    fn hand_made_secondary_accounts_are_clients_too() {
        let mut files = served("", "netserver");
        files.insert(
            UPSD_USERS,
            b"[nas]\n password = p\n upsmon secondary\n[admin]\n password = q\n".to_vec(),
        );
        let found = client_accounts(&files, V);
        assert_eq!(
            found,
            [ClientAccount {
                name: "nas".into(),
                account: "nas".into(),
                preset: None,
                secondary: true
            }]
        );
        let after = apply(&files, &client_remove(&files, "nas", V).unwrap());
        assert_eq!(text(&after, UPSD_USERS), "[admin]\n password = q\n");
    }
}
