//! A udev event as `udev-check` receives it: from udev's environment (`ACTION`, `DEVPATH`,
//! `ID_VENDOR_ID`, ...) or from the systemd unit's instance name
//! (`add:1-1.3:0764:0501`, `remove:ttyUSB0::`), which the udev rules build. Pure.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
        }
    }
}

/// What came or went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    /// The kernel's name: a USB device (`1-1.3`), an interface (`1-1.3:1.0`) or a tty.
    pub kernel: String,
    pub vendor_id: Option<u16>,
    pub product_id: Option<u16>,
}

impl Event {
    /// The USB device the event is about: the device itself, or an interface's device.
    pub fn usb_device(&self) -> Option<&str> {
        let dev = self.kernel.split(':').next()?;
        super::sysfs::is_device_name(dev).then_some(dev)
    }

    pub fn is_interface(&self) -> bool {
        self.usb_device().is_some() && self.kernel.contains(':')
    }

    pub fn is_tty(&self) -> bool {
        self.kernel.starts_with("tty")
    }

    /// `1-1.3 (0764:0501)`, for log lines.
    pub fn describe(&self) -> String {
        match (self.vendor_id, self.product_id) {
            (Some(v), Some(p)) => format!("{} ({v:04x}:{p:04x})", self.kernel),
            _ => self.kernel.clone(),
        }
    }
}

fn action(s: &str) -> Result<Action, String> {
    match s {
        "add" => Ok(Action::Add),
        "remove" => Ok(Action::Remove),
        other => Err(format!(
            "`{other}` is not an action udev-check handles (add, remove)"
        )),
    }
}

fn id(s: &str) -> Option<u16> {
    super::table::parse_hex4(&s.to_ascii_lowercase())
}

/// Parses `ACTION:KERNEL:VID:PID` (VID and PID may be empty; KERNEL may contain `:`).
pub fn from_instance(instance: &str) -> Result<Event, String> {
    let parts: Vec<&str> = instance.split(':').collect();
    if parts.len() < 4 || parts[1].is_empty() {
        return Err(format!(
            "`{instance}` is not ACTION:KERNEL:VID:PID (as the udev rules name the unit)"
        ));
    }
    let n = parts.len();
    Ok(Event {
        action: action(parts[0])?,
        kernel: parts[1..n - 2].join(":"),
        vendor_id: id(parts[n - 2]),
        product_id: id(parts[n - 1]),
    })
}

/// Reads udev's environment, given as a lookup (the edge passes `std::env::var`).
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Event, String> {
    let act = get("ACTION")
        .ok_or("no ACTION in the environment: run by udev, or give ACTION:KERNEL:VID:PID")?;
    let devpath = get("DEVPATH").ok_or("no DEVPATH in the environment")?;
    let kernel = devpath
        .rsplit('/')
        .next()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("DEVPATH `{devpath}` names no device"))?
        .to_string();
    // usb_id's ids; else the kernel's PRODUCT (`764/501/1`, hex without leading zeros).
    let product: Vec<Option<u16>> = get("PRODUCT")
        .map(|p| {
            p.split('/')
                .map(|x| u16::from_str_radix(x, 16).ok())
                .collect()
        })
        .unwrap_or_default();
    let vendor_id = get("ID_VENDOR_ID")
        .and_then(|v| id(&v))
        .or(product.first().copied().flatten());
    let product_id = get("ID_MODEL_ID")
        .and_then(|v| id(&v))
        .or(product.get(1).copied().flatten());
    Ok(Event {
        action: action(&act)?,
        kernel,
        vendor_id,
        product_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_name_action_device_and_ids() {
        let e = from_instance("add:1-1.3:0764:0501").unwrap();
        assert_eq!((e.action, e.kernel.as_str()), (Action::Add, "1-1.3"));
        assert_eq!((e.vendor_id, e.product_id), (Some(0x0764), Some(0x0501)));
        assert_eq!(e.usb_device(), Some("1-1.3"));
        let e = from_instance("remove:1-1.3:1.0:051D:0002").unwrap();
        assert_eq!(e.kernel, "1-1.3:1.0");
        assert!(e.is_interface());
        assert_eq!(e.vendor_id, Some(0x051d));
        let e = from_instance("remove:ttyUSB0::").unwrap();
        assert!(e.is_tty() && e.vendor_id.is_none() && e.usb_device().is_none());
        assert!(from_instance("change:1-1:0764:0501").is_err());
        assert!(from_instance("add:1-1").is_err());
        assert!(from_instance("add::0764:0501").is_err());
    }

    #[test]
    fn the_environment_gives_the_same() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = from_env(env(&[
            ("ACTION", "remove"),
            ("DEVPATH", "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1/1-1.3"),
            ("PRODUCT", "764/501/1"),
        ]))
        .unwrap();
        assert_eq!(e, from_instance("remove:1-1.3:0764:0501").unwrap());
        let e = from_env(env(&[
            ("ACTION", "add"),
            ("DEVPATH", "/devices/x/1-1.2:1.0/ttyUSB0/tty/ttyUSB0"),
            ("ID_VENDOR_ID", "0403"),
            ("ID_MODEL_ID", "6001"),
        ]))
        .unwrap();
        assert_eq!((e.kernel.as_str(), e.vendor_id), ("ttyUSB0", Some(0x0403)));
        assert!(from_env(env(&[("DEVPATH", "/x")])).is_err());
    }
}
