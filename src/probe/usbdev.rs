//! What sysfs cannot tell about a USB device and only the device itself can: the HID report
//! descriptor of an interface no kernel HID driver is bound to, and string descriptors the kernel
//! did not keep. (An interface a program claims through usbfs, a running NUT driver, lacks its
//! descriptor in sysfs too, but answers busy: the kernel lends it to one usbfs user at a time.)
//!
//! [`fill`] is pure: it asks a [`DeviceReader`] for what each device lacks and fills it in,
//! turning every failure into a problem line. The reader is the edge; with the `usb` feature
//! [`system`] gives one that talks to the devices through libusb (`rusb`), without it one that
//! has nothing. The probe uses it only for the real system's sysfs, never for a captured tree.

use super::{hid, UsbDevice};

/// The strings a device's descriptor names, as read from it. `None` where it names none or the
/// read failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Strings {
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
}

/// Why a reader could not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing can be read on this system or with this build (no usbfs, as in a container; or
    /// built without the `usb` feature). Said once, not per device.
    Unavailable(String),
    /// This device could not be read: permission denied, gone, busy, timed out, refused.
    Device(String),
}

/// Reads a device by its bus number and address (sysfs `busnum`, `devnum`).
pub trait DeviceReader {
    /// The strings the device descriptor names.
    fn strings(&self, busnum: u16, devnum: u16) -> Result<Strings, ReadError>;
    /// The HID report descriptor of an interface of the active configuration.
    fn report_descriptor(
        &self,
        busnum: u16,
        devnum: u16,
        interface: u8,
    ) -> Result<Vec<u8>, ReadError>;
}

/// The longest report descriptor read (the kernel's HID_MAX_DESCRIPTOR_SIZE).
pub const MAX_REPORT_DESCRIPTOR: usize = 4096;

/// Fills in, from the reader, the strings a device lacks and the HID summaries of its HID
/// interfaces (class 0x03) that sysfs had no report descriptor for. What sysfs gave is kept.
/// A device's failure becomes a line in `problems` naming it. When the reader cannot read
/// anything at all, nothing more is asked, and one line names the devices whose HID report
/// descriptors stay unknown; strings alone do not make that line, since a device lacking one
/// usually names none.
pub fn fill(inv_usb: &mut [UsbDevice], reader: &dyn DeviceReader, problems: &mut Vec<String>) {
    let mut down: Option<String> = None;
    let mut unread: Vec<String> = Vec::new();
    for d in inv_usb.iter_mut() {
        let what = format!("USB {} ({:04x}:{:04x})", d.name, d.vendor_id, d.product_id);
        let lacks_strings = d.manufacturer.is_none() || d.product.is_none() || d.serial.is_none();
        if lacks_strings && down.is_none() {
            match reader.strings(d.busnum, d.devnum) {
                Ok(s) => {
                    fill_string(&mut d.manufacturer, s.manufacturer);
                    fill_string(&mut d.product, s.product);
                    fill_string(&mut d.serial, s.serial);
                }
                Err(ReadError::Device(e)) => {
                    problems.push(format!("{what}: strings could not be read: {e}"));
                }
                Err(ReadError::Unavailable(e)) => down = Some(e),
            }
        }
        for i in d.interfaces.iter_mut() {
            // An interface a program holds through usbfs (a running NUT driver) is lent to it
            // alone: asking would only disturb it.
            if i.class != 0x03 || i.hid.is_some() || i.held_by_program() {
                continue;
            }
            if down.is_some() {
                unread.push(format!("{} interface {}", d.name, i.number));
                continue;
            }
            match reader.report_descriptor(d.busnum, d.devnum, i.number) {
                Ok(bytes) => {
                    let bytes = &bytes[..bytes.len().min(MAX_REPORT_DESCRIPTOR)];
                    i.hid = Some(hid::Summary {
                        from_device: true,
                        ..hid::parse(bytes)
                    });
                }
                Err(ReadError::Device(e)) => problems.push(format!(
                    "{what}: HID report descriptor of interface {} is not in sysfs and could \
                     not be read from the device: {e}",
                    i.number
                )),
                Err(ReadError::Unavailable(e)) => {
                    unread.push(format!("{} interface {}", d.name, i.number));
                    down = Some(e);
                }
            }
        }
    }
    if let (Some(why), false) = (down, unread.is_empty()) {
        problems.push(format!(
            "HID report descriptors not in sysfs could not be read from the devices (USB {}): \
             {why}",
            unread.join(", ")
        ));
    }
}

/// Keeps what sysfs had; takes the device's string cleaned as sysfs strings are (trimmed,
/// without control characters, empty counts as absent).
fn fill_string(have: &mut Option<String>, read: Option<String>) {
    if have.is_some() {
        return;
    }
    *have = read
        .map(|s| {
            s.trim()
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
        })
        .filter(|s| !s.is_empty());
}

/// The report descriptor's length from the HID class descriptor (type 0x21, HID 1.11 section
/// 6.2.1) among an interface's extra descriptor bytes: bLength, bDescriptorType, bcdHID,
/// bCountryCode, bNumDescriptors, then (bDescriptorType, wDescriptorLength) for each, where
/// type 0x22 is the report descriptor. `None` when there is none or the bytes are malformed.
pub fn report_descriptor_length(extra: &[u8]) -> Option<u16> {
    let mut rest = extra;
    while rest.len() >= 2 {
        let len = usize::from(rest[0]);
        if len < 2 || len > rest.len() {
            return None;
        }
        let (desc, next) = rest.split_at(len);
        if desc[1] == 0x21 && len >= 6 {
            let count = usize::from(desc[5]);
            return desc[6..]
                .chunks_exact(3)
                .take(count)
                .find(|c| c[0] == 0x22)
                .map(|c| u16::from_le_bytes([c[1], c[2]]));
        }
        rest = next;
    }
    None
}

/// The reader for this system: libusb with the `usb` feature.
#[cfg(feature = "usb")]
pub fn system() -> Box<dyn DeviceReader> {
    Box::new(libusb::Reader::default())
}

/// The reader for this system: without the `usb` feature, one that has nothing.
#[cfg(not(feature = "usb"))]
pub fn system() -> Box<dyn DeviceReader> {
    Box::new(Nothing)
}

/// A reader that has nothing: what a build without the `usb` feature offers.
pub struct Nothing;

impl DeviceReader for Nothing {
    fn strings(&self, _: u16, _: u16) -> Result<Strings, ReadError> {
        Err(nothing())
    }

    fn report_descriptor(&self, _: u16, _: u16, _: u8) -> Result<Vec<u8>, ReadError> {
        Err(nothing())
    }
}

fn nothing() -> ReadError {
    ReadError::Unavailable(
        "this build reads USB devices only through sysfs (built without the `usb` feature)"
            .to_string(),
    )
}

/// **The edge**: devices through libusb. It opens a device but never claims an interface nor
/// detaches a kernel driver. The kernel itself lends an interface no one holds to a request
/// addressed to it, for as long as the device is open (and logs "did not claim interface");
/// an interface a driver or program holds answers busy.
#[cfg(feature = "usb")]
mod libusb {
    use std::cell::OnceCell;
    use std::time::Duration;

    use rusb::UsbContext;

    use super::{report_descriptor_length, ReadError, Strings, MAX_REPORT_DESCRIPTOR};

    const TIMEOUT: Duration = Duration::from_secs(1);

    /// libusb is started on first use, so a probe that needs nothing from it never starts it.
    #[derive(Default)]
    pub struct Reader {
        context: OnceCell<Result<rusb::Context, String>>,
    }

    impl Reader {
        fn device(
            &self,
            busnum: u16,
            devnum: u16,
        ) -> Result<rusb::Device<rusb::Context>, ReadError> {
            let context = self
                .context
                // Not rusb::devices(): its global context panics where there is no usbfs.
                .get_or_init(|| {
                    rusb::Context::new().map_err(|e| match e {
                        rusb::Error::Other | rusb::Error::NotFound | rusb::Error::Access => {
                            format!(
                                "libusb cannot start ({e}); is /dev/bus/usb there (not in a \
                                 container without USB)?"
                            )
                        }
                        e => format!("libusb cannot start: {e}"),
                    })
                })
                .as_ref()
                .map_err(|e| ReadError::Unavailable(e.clone()))?;
            let list = context.devices().map_err(|e| {
                ReadError::Unavailable(format!("libusb cannot list the devices: {e}"))
            })?;
            list.iter()
                .find(|d| u16::from(d.bus_number()) == busnum && u16::from(d.address()) == devnum)
                .ok_or_else(|| {
                    ReadError::Device(format!(
                        "not found at bus {busnum} address {devnum} (unplugged while probing?)"
                    ))
                })
        }
    }

    impl super::DeviceReader for Reader {
        fn strings(&self, busnum: u16, devnum: u16) -> Result<Strings, ReadError> {
            let device = self.device(busnum, devnum)?;
            let desc = device.device_descriptor().map_err(device_error)?;
            let named = [
                desc.manufacturer_string_index(),
                desc.product_string_index(),
                desc.serial_number_string_index(),
            ];
            // A descriptor that names no string needs no open (which may be refused).
            if named.iter().all(Option::is_none) {
                return Ok(Strings::default());
            }
            let handle = device.open().map_err(device_error)?;
            let languages = handle.read_languages(TIMEOUT).map_err(device_error)?;
            let Some(&lang) = languages.first() else {
                return Err(ReadError::Device(
                    "names strings but no language".to_string(),
                ));
            };
            Ok(Strings {
                manufacturer: handle.read_manufacturer_string(lang, &desc, TIMEOUT).ok(),
                product: handle.read_product_string(lang, &desc, TIMEOUT).ok(),
                serial: handle.read_serial_number_string(lang, &desc, TIMEOUT).ok(),
            })
        }

        fn report_descriptor(
            &self,
            busnum: u16,
            devnum: u16,
            interface: u8,
        ) -> Result<Vec<u8>, ReadError> {
            let device = self.device(busnum, devnum)?;
            let config = device.active_config_descriptor().map_err(device_error)?;
            let length = config
                .interfaces()
                .filter(|i| i.number() == interface)
                .flat_map(|i| i.descriptors())
                .find_map(|d| report_descriptor_length(d.extra()))
                .ok_or_else(|| {
                    ReadError::Device(format!(
                        "interface {interface} has no HID class descriptor naming a report \
                         descriptor"
                    ))
                })?;
            let mut buf = vec![0u8; usize::from(length).min(MAX_REPORT_DESCRIPTOR)];
            let handle = device.open().map_err(device_error)?;
            // A request to an interface is for whoever holds it: claimed for the read (no kernel
            // driver is bound, or sysfs would have had the descriptor), released after.
            handle.claim_interface(interface).map_err(device_error)?;
            // GET_DESCRIPTOR (0x06) of the interface (bmRequestType 0x81), Report (0x22), index 0.
            let read =
                handle.read_control(0x81, 0x06, 0x2200, u16::from(interface), &mut buf, TIMEOUT);
            let _ = handle.release_interface(interface);
            let n = read.map_err(device_error)?;
            buf.truncate(n);
            Ok(buf)
        }
    }

    fn device_error(e: rusb::Error) -> ReadError {
        ReadError::Device(match e {
            rusb::Error::Access => "permission denied (run as root, or let NUT's udev rules give \
                                    the device to the nut group)"
                .to_string(),
            rusb::Error::NoDevice | rusb::Error::NotFound => {
                "the device is gone (unplugged while probing?)".to_string()
            }
            rusb::Error::Busy => "busy: another program holds the interface (a running NUT \
                                  driver?)"
                .to_string(),
            rusb::Error::Timeout => "no answer within 1 s".to_string(),
            rusb::Error::Pipe => "the device refused the request".to_string(),
            e => e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use crate::probe::Interface;

    // A minimal UPS report descriptor (see hid.rs) and a boot-keyboard start.
    const UPS: &[u8] = &[
        0x05, 0x84, 0x09, 0x04, 0xa1, 0x01, 0x05, 0x85, 0x09, 0x66, 0x81, 0x02, 0xc0,
    ];
    const KEYBOARD: &[u8] = &[0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0xc0];

    /// Answers from tables keyed by (busnum, devnum); records what was asked.
    #[derive(Default)]
    struct Fake {
        strings: HashMap<(u16, u16), Result<Strings, ReadError>>,
        descriptors: HashMap<(u16, u16, u8), Result<Vec<u8>, ReadError>>,
        asked: RefCell<Vec<String>>,
    }

    impl DeviceReader for Fake {
        fn strings(&self, busnum: u16, devnum: u16) -> Result<Strings, ReadError> {
            self.asked
                .borrow_mut()
                .push(format!("strings {busnum}/{devnum}"));
            self.strings
                .get(&(busnum, devnum))
                .cloned()
                .unwrap_or_else(|| Err(ReadError::Device("the device is gone".to_string())))
        }

        fn report_descriptor(
            &self,
            busnum: u16,
            devnum: u16,
            interface: u8,
        ) -> Result<Vec<u8>, ReadError> {
            self.asked
                .borrow_mut()
                .push(format!("descriptor {busnum}/{devnum}:{interface}"));
            self.descriptors
                .get(&(busnum, devnum, interface))
                .cloned()
                .unwrap_or_else(|| Err(ReadError::Device("the device is gone".to_string())))
        }
    }

    fn device(name: &str, devnum: u16, interfaces: &[(u8, u8)]) -> UsbDevice {
        UsbDevice {
            name: name.to_string(),
            vendor_id: 0x0764,
            product_id: 0x0501,
            class: 0,
            manufacturer: Some("CPS".to_string()),
            product: Some("CP1500PFCLCD".to_string()),
            serial: Some("CTHJV2002919".to_string()),
            busnum: 1,
            devnum,
            devpath: name.split_once('-').unwrap().1.to_string(),
            interfaces: interfaces
                .iter()
                .map(|&(number, class)| Interface {
                    number,
                    class,
                    subclass: 0,
                    protocol: 0,
                    driver: None,
                    hid: None,
                    ttys: Vec::new(),
                })
                .collect(),
            node: None,
        }
    }

    fn strings(m: Option<&str>, p: Option<&str>, s: Option<&str>) -> Strings {
        Strings {
            manufacturer: m.map(str::to_string),
            product: p.map(str::to_string),
            serial: s.map(str::to_string),
        }
    }

    /// Runs `fill` and returns the devices, the problems and what the reader was asked.
    fn check(
        mut devices: Vec<UsbDevice>,
        fake: Fake,
        asked: &[&str],
        problems: &[&str],
    ) -> Vec<UsbDevice> {
        let mut got = Vec::new();
        fill(&mut devices, &fake, &mut got);
        assert_eq!(*fake.asked.borrow(), asked, "asked");
        assert_eq!(got, problems, "problems");
        devices
    }

    #[test]
    fn a_device_sysfs_tells_everything_about_is_not_asked() {
        let mut d = device("1-1.3", 4, &[(0, 0x03)]);
        d.interfaces[0].hid = Some(hid::parse(UPS));
        let before = d.clone();
        let after = check(vec![d], Fake::default(), &[], &[]);
        assert_eq!(after, vec![before]);
    }

    #[test]
    fn an_unbound_hid_interface_gets_its_summary_from_the_device() {
        let mut fake = Fake::default();
        fake.descriptors.insert((1, 4, 0), Ok(UPS.to_vec()));
        // Interface 1 is not HID: not asked.
        let after = check(
            vec![device("1-1.3", 4, &[(0, 0x03), (1, 0xff)])],
            fake,
            &["descriptor 1/4:0"],
            &[],
        );
        let h = after[0].interfaces[0].hid.as_ref().unwrap();
        assert!(h.is_power_device());
        assert!(h.from_device, "said to be read from the device");
        assert_eq!((h.length, h.crc32), (UPS.len(), super::hid::crc32(UPS)));
        assert_eq!(after[0].interfaces[1].hid, None);
    }

    #[test]
    fn an_interface_a_program_holds_is_not_asked_for() {
        // usbhid-ups claimed it through usbfs: the kernel lends it to that program alone.
        let mut held = device("1-1.4", 6, &[(0, 0x03)]);
        held.interfaces[0].driver = Some("usbfs".to_string());
        let after = check(vec![held], Fake::default(), &[], &[]);
        assert_eq!(after[0].interfaces[0].hid, None);
    }

    #[test]
    fn each_hid_interface_is_asked_for() {
        let mut fake = Fake::default();
        fake.descriptors.insert((1, 5, 0), Ok(KEYBOARD.to_vec()));
        fake.descriptors.insert((1, 5, 1), Ok(UPS.to_vec()));
        let after = check(
            vec![device("1-1.2", 5, &[(0, 0x03), (1, 0x03)])],
            fake,
            &["descriptor 1/5:0", "descriptor 1/5:1"],
            &[],
        );
        assert_eq!(
            after[0].interfaces[0].hid.as_ref().unwrap().kind(),
            "keyboard"
        );
        assert!(after[0].hid().is_some());
        assert!(after[0].interfaces[1]
            .hid
            .as_ref()
            .unwrap()
            .is_power_device());
    }

    #[test]
    fn missing_strings_are_filled_and_sysfs_strings_kept() {
        let mut d = device("1-1.3", 4, &[]);
        d.manufacturer = None;
        d.serial = None;
        let mut fake = Fake::default();
        fake.strings.insert(
            (1, 4),
            Ok(strings(
                Some(" American\tPower "),
                Some("other"),
                Some("  "),
            )),
        );
        let after = check(vec![d], fake, &["strings 1/4"], &[]);
        // Cleaned as sysfs strings are; the product sysfs had stays; a blank serial is none.
        assert_eq!(after[0].manufacturer.as_deref(), Some("AmericanPower"));
        assert_eq!(after[0].product.as_deref(), Some("CP1500PFCLCD"));
        assert_eq!(after[0].serial, None);
    }

    #[test]
    fn device_errors_name_the_device_and_the_rest_goes_on() {
        let mut a = device("1-1.2", 3, &[(0, 0x03)]);
        a.product = None;
        let b = device("1-1.3", 4, &[(0, 0x03)]);
        let mut fake = Fake::default();
        fake.strings.insert(
            (1, 3),
            Err(ReadError::Device("permission denied".to_string())),
        );
        fake.descriptors.insert(
            (1, 3, 0),
            Err(ReadError::Device(
                "busy: another program holds the interface".to_string(),
            )),
        );
        fake.descriptors.insert((1, 4, 0), Ok(UPS.to_vec()));
        let after = check(
            vec![a, b],
            fake,
            &["strings 1/3", "descriptor 1/3:0", "descriptor 1/4:0"],
            &[
                "USB 1-1.2 (0764:0501): strings could not be read: permission denied",
                "USB 1-1.2 (0764:0501): HID report descriptor of interface 0 is not in sysfs \
                 and could not be read from the device: busy: another program holds the \
                 interface",
            ],
        );
        assert_eq!(after[0].product, None);
        assert_eq!(after[0].interfaces[0].hid, None);
        assert!(after[1].interfaces[0].hid.is_some());
    }

    #[test]
    fn an_unavailable_reader_is_asked_once_and_reported_once() {
        let mut a = device("1-1.2", 3, &[(0, 0x03)]);
        a.serial = None;
        let b = device("1-1.3", 4, &[(0, 0x03), (1, 0x03)]);
        let mut fake = Fake::default();
        fake.strings
            .insert((1, 3), Err(ReadError::Unavailable("no usbfs".to_string())));
        check(
            vec![a, b],
            fake,
            &["strings 1/3"],
            &[
                "HID report descriptors not in sysfs could not be read from the devices (USB \
               1-1.2 interface 0, 1-1.3 interface 0, 1-1.3 interface 1): no usbfs",
            ],
        );
    }

    #[test]
    fn an_unavailable_reader_is_not_reported_for_strings_alone() {
        let mut a = device("1-1.2", 3, &[(0, 0xff)]);
        a.serial = None;
        let mut fake = Fake::default();
        fake.strings
            .insert((1, 3), Err(ReadError::Unavailable("no usbfs".to_string())));
        check(vec![a], fake, &["strings 1/3"], &[]);
    }

    #[test]
    fn the_reader_that_has_nothing_says_so_once() {
        let mut devices = vec![
            device("1-1.2", 3, &[(0, 0x03)]),
            device("1-1.3", 4, &[(0, 0x03)]),
        ];
        let mut problems = Vec::new();
        fill(&mut devices, &Nothing, &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("1-1.2 interface 0, 1-1.3 interface 0"),
            "{problems:?}"
        );
        assert!(problems[0].contains("only through sysfs"), "{problems:?}");
    }

    /// The system's reader answers on any machine, without USB too (where libusb's global
    /// context would panic).
    #[cfg(feature = "usb")]
    #[test]
    fn the_system_reader_answers_without_usb() {
        let reader = system();
        let got = reader.report_descriptor(1, 1, 0);
        if !std::path::Path::new("/dev/bus/usb").exists() {
            assert!(
                matches!(&got, Err(ReadError::Unavailable(e)) if e.contains("/dev/bus/usb")),
                "{got:?}"
            );
            assert!(matches!(
                reader.strings(1, 1),
                Err(ReadError::Unavailable(_))
            ));
        }
    }

    #[test]
    fn an_oversized_descriptor_is_cut_at_the_bound() {
        // A collection opened at the bound's edge and closed past it: cut, it stays open.
        let mut bytes = vec![0x05, 0x84, 0x09, 0x04, 0xa1, 0x01];
        bytes.resize(MAX_REPORT_DESCRIPTOR, 0x00);
        bytes.push(0xc0);
        let mut fake = Fake::default();
        fake.descriptors.insert((1, 4, 0), Ok(bytes));
        let after = check(
            vec![device("1-1.3", 4, &[(0, 0x03)])],
            fake,
            &["descriptor 1/4:0"],
            &[],
        );
        let h = after[0].interfaces[0].hid.as_ref().unwrap();
        assert!(
            h.error.as_deref().unwrap().contains("never closed"),
            "{h:?}"
        );
    }

    #[test]
    fn the_report_descriptor_length_comes_from_the_hid_class_descriptor() {
        let cases: &[(&[u8], Option<u16>)] = &[
            // A UPS's HID descriptor: HID 1.10, country 0, one descriptor, report of 0x0377.
            (
                &[0x09, 0x21, 0x10, 0x01, 0x00, 0x01, 0x22, 0x77, 0x03],
                Some(0x0377),
            ),
            // After a vendor descriptor, and with a physical descriptor (0x23) listed first.
            (
                &[
                    0x03, 0x41, 0x00, 0x0c, 0x21, 0x11, 0x01, 0x00, 0x02, 0x23, 0x10, 0x00, 0x22,
                    0x3f, 0x00,
                ],
                Some(0x003f),
            ),
            // No HID class descriptor; nothing at all.
            (&[0x07, 0x05, 0x81, 0x03, 0x08, 0x00, 0x0a], None),
            (&[], None),
            // A report descriptor entry beyond bNumDescriptors does not count.
            (
                &[0x09, 0x21, 0x10, 0x01, 0x00, 0x00, 0x22, 0x77, 0x03],
                None,
            ),
            // Cut off, a zero length, a length past the end: no panic, nothing.
            (&[0x09, 0x21, 0x10, 0x01, 0x00, 0x01, 0x22, 0x77], None),
            (&[0x00, 0x21, 0x10], None),
            (&[0x01], None),
            (&[0x06, 0x21, 0x10, 0x01, 0x00, 0x01], None),
        ];
        for (extra, want) in cases {
            assert_eq!(report_descriptor_length(extra), *want, "{extra:02x?}");
        }
    }

    #[test]
    fn any_extra_bytes_are_read_without_panic() {
        let mut rng = crate::nut::Rng(0x9e37_79b9);
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let x = rng.next();
                    // Small lengths and the HID types often, so the walk goes deep.
                    match x % 4 {
                        0 => (x >> 8) as u8 % 12,
                        1 => 0x21,
                        2 => 0x22,
                        _ => (x >> 8) as u8,
                    }
                })
                .collect();
            let _ = report_descriptor_length(&bytes);
        }
    }
}
