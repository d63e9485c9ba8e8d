//! What each NUT driver accepts in ups.conf, per NUT version.
//!
//! The facts live in `drivers.txt` (our own format, read once): for every driver its flags and
//! values, with `since`/`until` versions; the pseudo-driver `*core*` lists what NUT's driver
//! core accepts in every section, `*global*` what ups.conf accepts before the first section.

use std::sync::OnceLock;

use super::fnv::FnvMap;
use super::version::NutVersion;

/// Whether a variable takes a value (`name = value`) or stands alone (`name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarKind {
    Flag,
    Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarSpec {
    pub name: String,
    pub kind: VarKind,
    pub since: Option<NutVersion>,
    pub until: Option<NutVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverSpec {
    pub name: String,
    pub since: Option<NutVersion>,
    pub vars: Vec<VarSpec>,
    /// Lower-cased variable name to its entries in `vars` (one per version range).
    by_name: FnvMap<String, Vec<usize>>,
}

/// What a driver makes of a variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Accepted(VarKind),
    /// Accepted from this later version on.
    NotYet(NutVersion),
    /// No longer accepted from this version on.
    NoLonger(NutVersion),
    Unknown,
}

#[derive(Debug, Default)]
pub struct DriverDb {
    pub drivers: Vec<DriverSpec>,
    /// Driver name to its place in `drivers`.
    index: FnvMap<String, usize>,
}

pub const CORE: &str = "*core*";
pub const GLOBAL: &str = "*global*";

impl DriverDb {
    /// The built-in table.
    pub fn builtin() -> &'static DriverDb {
        static DB: OnceLock<DriverDb> = OnceLock::new();
        DB.get_or_init(|| {
            DriverDb::parse(include_str!("drivers.txt")).expect("the built-in driver table parses")
        })
    }

    /// Reads the table format; an error names the line.
    pub fn parse(text: &str) -> Result<DriverDb, String> {
        let mut db = DriverDb::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |m: &str| format!("drivers.txt:{}: {m}: `{line}`", i + 1);
            let mut words = line.split_whitespace();
            let head = words.next().unwrap_or_default();
            let name = words.next().ok_or_else(|| err("missing name"))?.to_string();
            let (mut since, mut until) = (None, None);
            while let Some(k) = words.next() {
                let v = words
                    .next()
                    .ok_or_else(|| err("missing version"))?
                    .parse()
                    .map_err(|e: String| err(&e))?;
                match k {
                    "since" => since = Some(v),
                    "until" => until = Some(v),
                    _ => return Err(err("expected `since` or `until`")),
                }
            }
            let kind = match head {
                "driver" => {
                    db.index.insert(name.clone(), db.drivers.len());
                    db.drivers.push(DriverSpec {
                        name,
                        since,
                        vars: Vec::new(),
                        by_name: FnvMap::default(),
                    });
                    continue;
                }
                "flag" => VarKind::Flag,
                "value" => VarKind::Value,
                _ => return Err(err("expected `driver`, `flag` or `value`")),
            };
            let driver = db
                .drivers
                .last_mut()
                .ok_or_else(|| err("a variable before any `driver` line"))?;
            driver
                .by_name
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(driver.vars.len());
            driver.vars.push(VarSpec {
                name,
                kind,
                since,
                until,
            });
        }
        Ok(db)
    }

    pub fn driver(&self, name: &str) -> Option<&DriverSpec> {
        self.index.get(name).map(|&i| &self.drivers[i])
    }

    /// The names of the real drivers that exist in `version`.
    pub fn driver_names(&self, version: NutVersion) -> impl Iterator<Item = &str> {
        self.drivers
            .iter()
            .filter(move |d| !d.name.starts_with('*') && d.since.is_none_or(|s| s <= version))
            .map(|d| d.name.as_str())
    }

    /// Looks a variable up in one block of the table.
    pub fn lookup(&self, block: &str, var: &str, version: NutVersion) -> Lookup {
        let Some(driver) = self.driver(block) else {
            return Lookup::Unknown;
        };
        // The core's and ups.conf's own keys are case-sensitive; a driver's are not.
        let same = |name: &str| {
            if block.starts_with('*') {
                name == var
            } else {
                name.eq_ignore_ascii_case(var)
            }
        };
        let mut result = Lookup::Unknown;
        let found = if var.bytes().any(|b| b.is_ascii_uppercase()) {
            driver.by_name.get(&var.to_ascii_lowercase())
        } else {
            driver.by_name.get(var)
        };
        let specs = found.into_iter().flatten().map(|&i| &driver.vars[i]);
        for spec in specs.filter(|v| same(&v.name)) {
            match (spec.since, spec.until) {
                (Some(s), _) if version < s => {
                    if result == Lookup::Unknown {
                        result = Lookup::NotYet(s);
                    }
                }
                (_, Some(u)) if version >= u => {
                    if result == Lookup::Unknown {
                        result = Lookup::NoLonger(u);
                    }
                }
                _ => return Lookup::Accepted(spec.kind),
            }
        }
        result
    }

    /// What `driver` makes of `var` inside a section: the core's variables first, then the
    /// driver's own. `None` when the table does not know the driver.
    pub fn section_var(&self, driver: &str, var: &str, version: NutVersion) -> Option<Lookup> {
        // `default.*` and `override.*` set data for every driver.
        if var.starts_with("default.") || var.starts_with("override.") {
            return Some(Lookup::Accepted(VarKind::Value));
        }
        match self.lookup(CORE, var, version) {
            Lookup::Accepted(k) => Some(Lookup::Accepted(k)),
            core => {
                self.driver(driver)?;
                match self.lookup(driver, var, version) {
                    Lookup::Unknown => Some(core),
                    own => Some(own),
                }
            }
        }
    }

    /// The variables `driver` accepts in `version`, for hints.
    pub fn accepted(&self, driver: &str, version: NutVersion) -> Vec<&str> {
        [CORE, driver]
            .iter()
            .filter_map(|b| self.driver(b))
            .flat_map(|d| d.vars.iter())
            .filter(|v| v.since.is_none_or(|s| s <= version) && v.until.is_none_or(|u| version < u))
            .map(|v| v.name.as_str())
            .collect()
    }
}

/// The bus a driver talks on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus {
    Usb,
    Serial,
}

impl Bus {
    pub fn as_str(self) -> &'static str {
        match self {
            Bus::Usb => "usb",
            Bus::Serial => "serial",
        }
    }
}

/// Drivers that only talk USB: their `port` is ignored (`auto` by convention).
const USB_DRIVERS: &[&str] = &[
    "usbhid-ups",
    "blazer_usb",
    "bcmxcp_usb",
    "tripplite_usb",
    "richcomm_usb",
    "riello_usb",
    "nutdrv_atcl_usb",
];
/// Drivers that talk USB when `port = auto` and serial otherwise.
const DUAL_DRIVERS: &[&str] = &["nutdrv_qx", "apc_modbus"];
/// Drivers whose `port` is a file, a host or another UPS, never a serial device.
const NOT_SERIAL: &[&str] = &[
    "dummy-ups",
    "clone",
    "clone-outlet",
    "snmp-ups",
    "netxml-ups",
    "apcupsd-ups",
    "nut-ipmipsu",
    "powerman-pdu",
    "generic_gpio",
    "macosx-ups",
];

/// Whether a section's driver talks USB or serial (a device path, `/dev/...` or a link to
/// one), or neither (network and dummy drivers).
pub fn bus(driver: &str, port: &str) -> Option<Bus> {
    if USB_DRIVERS.contains(&driver) {
        return Some(Bus::Usb);
    }
    if DUAL_DRIVERS.contains(&driver) && (port == "auto" || port.is_empty()) {
        return Some(Bus::Usb);
    }
    (port.starts_with('/') && !NOT_SERIAL.contains(&driver)).then_some(Bus::Serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_driver_talks_on_its_bus() {
        for (driver, port, bus_) in [
            ("usbhid-ups", "auto", Some(Bus::Usb)),
            ("usbhid-ups", "/dev/ttyS0", Some(Bus::Usb)),
            ("nutdrv_qx", "auto", Some(Bus::Usb)),
            ("nutdrv_qx", "", Some(Bus::Usb)),
            ("nutdrv_qx", "/dev/ttyUSB0", Some(Bus::Serial)),
            ("blazer_ser", "/dev/serial/by-id/x", Some(Bus::Serial)),
            ("apcsmart", "/dev/ttyS0", Some(Bus::Serial)),
            ("dummy-ups", "/etc/nut/ups.dev", None),
            ("snmp-ups", "10.0.0.9", None),
            ("apcsmart", "auto", None),
        ] {
            assert_eq!(bus(driver, port), bus_, "{driver} {port}");
        }
    }

    const V280: NutVersion = NutVersion::new(2, 8, 0);

    #[test]
    fn builtin_table_parses_and_knows_the_common_drivers() {
        let db = DriverDb::builtin();
        for d in [
            "usbhid-ups",
            "nutdrv_qx",
            "blazer_usb",
            "blazer_ser",
            "apcsmart",
            "apcupsd-ups",
            "dummy-ups",
            "snmp-ups",
            "tripplite_usb",
            "bcmxcp_usb",
            "riello_usb",
            "richcomm_usb",
        ] {
            assert!(db.driver(d).is_some(), "{d} missing");
        }
        assert_eq!(
            db.section_var("usbhid-ups", "pollonly", V280),
            Some(Lookup::Accepted(VarKind::Flag))
        );
        assert_eq!(
            db.section_var("usbhid-ups", "desc", V280),
            Some(Lookup::Accepted(VarKind::Value))
        );
        assert_eq!(
            db.section_var("dummy-ups", "lowbatt", V280),
            Some(Lookup::Unknown)
        );
        assert_eq!(db.section_var("no-such-driver", "lowbatt", V280), None);
    }

    #[test]
    fn versions_gate_variables() {
        let db = DriverDb::parse("driver x\nvalue a\nvalue b since 2.8.2\nflag c until 2.8.1\n")
            .unwrap();
        assert_eq!(db.lookup("x", "a", V280), Lookup::Accepted(VarKind::Value));
        assert_eq!(
            db.lookup("x", "b", V280),
            Lookup::NotYet(NutVersion::new(2, 8, 2))
        );
        assert_eq!(
            db.lookup("x", "b", NutVersion::new(2, 8, 3)),
            Lookup::Accepted(VarKind::Value)
        );
        assert_eq!(db.lookup("x", "c", V280), Lookup::Accepted(VarKind::Flag));
        assert_eq!(
            db.lookup("x", "c", NutVersion::new(2, 8, 1)),
            Lookup::NoLonger(NutVersion::new(2, 8, 1))
        );
        assert!(DriverDb::parse("value a\n").unwrap_err().contains(":1:"));
    }
}
