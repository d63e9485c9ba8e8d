//! What is known about USB devices by VID:PID: the vendor, the family, and the NUT drivers that
//! serve it. Two sources: our own table (`devices.txt`, built from what NUT publishes) and,
//! when the host has them, NUT's installed udev rules, so a newer NUT's devices are known too.
//!
//! Pure: text in, entries out.

/// Where a device's identity came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Our own table, compiled in.
    Table,
    /// NUT's udev rules on the host, at this path.
    UdevRules(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Table => "device table".to_string(),
            Source::UdevRules(path) => format!("udev rules {path}"),
        }
    }
}

/// One VID:PID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub vid: u16,
    pub pid: u16,
    /// Preferred first; empty for an adapter, or when the host's rules do not name it.
    pub drivers: Vec<String>,
    pub vendor: String,
    pub models: String,
    /// The first NUT release that serves it, when later than 2.8.0.
    pub since: Option<String>,
    /// A USB-serial adapter chip rather than a UPS: the UPS behind it speaks for itself.
    pub adapter: bool,
}

impl Known {
    pub fn is_adapter(&self) -> bool {
        self.adapter
    }
}

/// The compiled-in table.
pub const BUILTIN: &str = include_str!("devices.txt");

/// Reads our table format: `vid:pid TAB drivers TAB vendor TAB models TAB since`.
/// A malformed line is an error naming its line: the table ships in the binary and a test
/// reads it, so an error here never reaches a user.
pub fn parse_table(text: &str) -> Result<Vec<Known>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |why: &str| format!("devices.txt:{}: {why}: {line}", n + 1);
        if fields.len() != 5 {
            return Err(bad("expected 5 tab-separated fields"));
        }
        let (vid, pid) = parse_id_pair(fields[0]).ok_or_else(|| bad("bad vid:pid"))?;
        let drivers = match fields[1] {
            "-" => Vec::new(),
            d => d.split(',').map(|s| s.trim().to_string()).collect(),
        };
        out.push(Known {
            vid,
            pid,
            drivers,
            vendor: fields[2].to_string(),
            models: fields[3].to_string(),
            since: (fields[4] != "-").then(|| fields[4].to_string()),
            adapter: fields[1] == "-",
        });
    }
    out.sort_by_key(|k| (k.vid, k.pid));
    Ok(out)
}

fn parse_id_pair(s: &str) -> Option<(u16, u16)> {
    let (v, p) = s.split_once(':')?;
    Some((parse_hex4(v)?, parse_hex4(p)?))
}

/// Four hex digits, as sysfs and the udev rules write USB ids.
pub fn parse_hex4(s: &str) -> Option<u16> {
    if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(s, 16).ok()
}

/// Reads NUT's udev rules (`nut-usbups.rules`): `# Vendor` headers, `#  model  - driver`
/// comments, then `ATTR{idVendor}=="xxxx", ATTR{idProduct}=="yyyy"` lines. A rule without a
/// comment before it is still a UPS NUT serves, with its driver unknown.
pub fn parse_udev_rules(text: &str) -> Vec<Known> {
    let mut out: Vec<Known> = Vec::new();
    let mut vendor = String::new();
    let mut comment: Option<(String, String)> = None;
    // Comments before the rules' LABEL are the file's header, not vendors.
    let mut started = !text.contains("LABEL=");
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("LABEL=") {
            started = true;
            continue;
        }
        if !started {
            continue;
        }
        // Vendor blocks end at a blank line; rules after one without a header have no vendor.
        if line.is_empty() {
            vendor.clear();
            comment = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            if rest.starts_with("  ") {
                let rest = rest.trim();
                comment = Some(match rest.rsplit_once(" - ") {
                    Some((models, driver)) => {
                        (models.trim().to_string(), driver.trim().to_string())
                    }
                    None => (rest.to_string(), String::new()),
                });
            } else if rest.starts_with(' ') && !rest.trim().is_empty() {
                vendor = rest.trim().to_string();
                comment = None;
            }
            continue;
        }
        let (Some(vid), Some(pid)) = (attr(line, "idVendor"), attr(line, "idProduct")) else {
            continue;
        };
        let (models, driver) = comment.take().unwrap_or_default();
        let models = match models.as_str() {
            "" | "e.g. ?" => "various models".to_string(),
            m => m.to_string(),
        };
        // NUT 2.8.5's rules name every driver of an ID, separated by spaces.
        let mut drivers: Vec<String> = Vec::new();
        for d in driver.split_whitespace() {
            if !drivers.iter().any(|x| x == d) {
                drivers.push(d.to_string());
            }
        }
        match out.iter_mut().find(|k| k.vid == vid && k.pid == pid) {
            Some(k) => {
                for d in drivers {
                    if !k.drivers.contains(&d) {
                        k.drivers.push(d);
                    }
                }
            }
            None => out.push(Known {
                vid,
                pid,
                drivers,
                vendor: vendor.clone(),
                models,
                since: None,
                adapter: false,
            }),
        }
    }
    out.sort_by_key(|k| (k.vid, k.pid));
    out
}

/// The value of `ATTR{name}=="xxxx"` (or `ATTRS{...}`) on a rule line.
fn attr(line: &str, name: &str) -> Option<u16> {
    for prefix in ["ATTR{", "ATTRS{"] {
        let key = format!("{prefix}{name}}}==\"");
        if let Some(at) = line.find(&key) {
            let rest = &line[at + key.len()..];
            return parse_hex4(rest.get(..4)?.to_ascii_lowercase().as_str());
        }
    }
    None
}

/// Both sources, asked in order: our table, then the host's rules.
#[derive(Clone, Debug, Default)]
pub struct Knowledge {
    pub table: Vec<Known>,
    pub host: Option<(String, Vec<Known>)>,
}

impl Knowledge {
    pub fn builtin() -> Self {
        Knowledge {
            table: parse_table(BUILTIN).expect("the compiled-in device table is well formed"),
            host: None,
        }
    }

    pub fn with_host_rules(mut self, path: &str, text: &str) -> Self {
        self.host = Some((path.to_string(), parse_udev_rules(text)));
        self
    }

    /// The entry for a VID:PID and where it came from. Our table wins; the host's rules add
    /// what it lacks, and drivers a newer NUT added for a known id.
    pub fn lookup(&self, vid: u16, pid: u16) -> Option<(Known, Source)> {
        let find = |list: &[Known]| {
            list.binary_search_by_key(&(vid, pid), |k| (k.vid, k.pid))
                .ok()
                .map(|i| list[i].clone())
        };
        let host = self
            .host
            .as_ref()
            .and_then(|(path, list)| find(list).map(|k| (k, path)));
        match (find(&self.table), host) {
            (Some(mut k), Some((h, _))) => {
                for d in h.drivers {
                    if !k.drivers.contains(&d) {
                        k.drivers.push(d);
                    }
                }
                Some((k, Source::Table))
            }
            (Some(k), None) => Some((k, Source::Table)),
            (None, Some((h, path))) => Some((h, Source::UdevRules(path.clone()))),
            (None, None) => None,
        }
    }

    /// Every UPS VID:PID of our table (not adapters), for the udev rules.
    pub fn table_ups_ids(&self) -> Vec<(u16, u16)> {
        // The table is sorted and has each id once.
        self.table
            .iter()
            .filter(|k| !k.is_adapter())
            .map(|k| (k.vid, k.pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_reads_and_is_sorted_without_duplicates() {
        let t = parse_table(BUILTIN).unwrap();
        assert!(t.len() > 100, "{} entries", t.len());
        for w in t.windows(2) {
            assert!((w[0].vid, w[0].pid) < (w[1].vid, w[1].pid), "{w:?}");
        }
        let cps = t
            .iter()
            .find(|k| (k.vid, k.pid) == (0x0764, 0x0501))
            .unwrap();
        assert_eq!(cps.drivers[0], "usbhid-ups");
        let ftdi = t
            .iter()
            .find(|k| (k.vid, k.pid) == (0x0403, 0x6001))
            .unwrap();
        assert!(ftdi.is_adapter());
    }

    #[test]
    fn the_builtin_table_covers_the_installed_rules_when_present() {
        // On a host with NUT installed, every id of its rules must be in our table.
        let Ok(text) = std::fs::read_to_string("/lib/udev/rules.d/62-nut-usbups.rules") else {
            return;
        };
        let table = parse_table(BUILTIN).unwrap();
        for k in parse_udev_rules(&text) {
            let ours = table
                .iter()
                .find(|t| (t.vid, t.pid) == (k.vid, k.pid))
                .unwrap_or_else(|| panic!("{:04x}:{:04x} missing", k.vid, k.pid));
            for d in &k.drivers {
                assert!(
                    ours.drivers.contains(d),
                    "{:04x}:{:04x} lacks {d}",
                    k.vid,
                    k.pid
                );
            }
        }
    }

    const RULES: &str = r#"# This file is generated
ACTION=="remove", GOTO="nut-usbups_rules_end"
LABEL="nut-usbups_rules_real"
#  SNR-UPS-LID-XXXX UPSes  - nutdrv_qx
ATTR{idVendor}=="0001", ATTR{idProduct}=="0000", MODE="664", GROUP="nut"

# Hewlett Packard
#  e.g. ?  - usbhid-ups
ATTR{idVendor}=="03f0", ATTR{idProduct}=="0001", MODE="664", GROUP="nut"
#  T500  - bcmxcp_usb
ATTR{idVendor}=="03F0", ATTR{idProduct}=="1f01", MODE="664", GROUP="nut"
ATTR{idVendor}=="abcd", ATTR{idProduct}=="0002", MODE="664", GROUP="nut"
"#;

    #[test]
    fn udev_rules_give_vendor_models_and_driver() {
        let k = parse_udev_rules(RULES);
        assert_eq!(k.len(), 4);
        assert_eq!(k[0].drivers, vec!["nutdrv_qx"]);
        assert_eq!(k[0].vendor, "");
        assert_eq!(
            (k[1].vendor.as_str(), k[1].models.as_str()),
            ("Hewlett Packard", "various models")
        );
        assert_eq!(
            (k[2].vid, k[2].pid, k[2].models.as_str()),
            (0x03f0, 0x1f01, "T500")
        );
        assert_eq!(k[2].drivers, vec!["bcmxcp_usb"]);
        // No comment: known to NUT, driver unknown, and not taken for an adapter.
        assert!(k[3].drivers.is_empty() && !k[3].is_adapter());
    }

    #[test]
    fn lookup_prefers_the_table_and_falls_back_to_the_host() {
        let know = Knowledge::builtin().with_host_rules("/x.rules", RULES);
        let (k, src) = know.lookup(0x0764, 0x0501).unwrap();
        assert_eq!(src, Source::Table);
        assert_eq!(k.vendor, "Cyber Power Systems");
        let (k, src) = know.lookup(0xabcd, 0x0002).unwrap();
        assert_eq!(src, Source::UdevRules("/x.rules".into()));
        assert_eq!(k.vendor, "Hewlett Packard");
        assert!(know.lookup(0x1209, 0xc0de).is_none());
    }
}
