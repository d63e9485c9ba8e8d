//! HID report descriptors: which usage pages a device speaks, to recognise a HID Power Device
//! (usage pages 0x84 Power Device and 0x85 Battery System) that no VID:PID table knows.
//!
//! Pure: bytes in, a summary out. Never panics on any input.

/// HID usage page of the Power Device class (HID Power Devices spec, 1.1).
pub const PAGE_POWER_DEVICE: u16 = 0x84;
/// HID usage page of the Battery System class.
pub const PAGE_BATTERY_SYSTEM: u16 = 0x85;

/// What a report descriptor says about the device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Every usage page named, in order of first appearance (at most 32 kept).
    pub pages: Vec<u16>,
    /// The usage (page, id) of each top-level application collection (at most 16 kept).
    pub applications: Vec<(u16, u16)>,
    /// Where the bytes stopped making sense, if they did.
    pub error: Option<String>,
    /// The descriptor's length in bytes and its CRC-32 (IEEE 802.3, as zlib's `crc32`): the
    /// same bytes read by another way, or on another machine, give the same pair.
    pub length: usize,
    pub crc32: u32,
    /// Read from the device itself (libusb), not from sysfs (a kernel driver held it).
    pub from_device: bool,
}

impl Summary {
    /// A HID Power Device: a top-level application collection on the power or battery page,
    /// or, when the collections could not be read, usages from those pages at all.
    pub fn is_power_device(&self) -> bool {
        let power = |p: u16| p == PAGE_POWER_DEVICE || p == PAGE_BATTERY_SYSTEM;
        if self.applications.is_empty() {
            self.pages.iter().any(|&p| power(p))
        } else {
            self.applications.iter().any(|&(p, _)| power(p))
        }
    }

    /// A short name of the first application collection, for people.
    pub fn kind(&self) -> &'static str {
        match self.applications.first() {
            Some((0x84, 0x04)) => "HID UPS",
            Some((0x84, _)) | Some((0x85, _)) => "HID power device",
            Some((0x01, 0x06)) => "keyboard",
            Some((0x01, 0x02)) => "mouse",
            Some((0x01, 0x04)) | Some((0x01, 0x05)) => "game controller",
            Some((0x0c, _)) => "consumer control",
            Some((p, _)) if *p >= 0xff00 => "vendor-defined HID",
            Some(_) => "HID device",
            None => "HID device without collections",
        }
    }
}

const MAX_PAGES: usize = 32;
const MAX_APPLICATIONS: usize = 16;

/// Reads a report descriptor item by item (HID 1.11, section 6.2.2).
pub fn parse(bytes: &[u8]) -> Summary {
    let mut s = Summary {
        length: bytes.len(),
        crc32: crc32(bytes),
        ..Summary::default()
    };
    let mut page: u16 = 0;
    // The last local usage seen, as (page, id), for the collection that follows it.
    let mut usage: Option<(u16, u16)> = None;
    let mut depth: u32 = 0;
    let mut i = 0usize;
    while i < bytes.len() {
        let prefix = bytes[i];
        if prefix == 0xfe {
            // Long item: size, tag, data. No standard long items exist; skip it.
            let Some(&size) = bytes.get(i + 1) else {
                s.error = Some(format!("long item at byte {i} is cut off"));
                break;
            };
            i += 3 + size as usize;
            continue;
        }
        let size = match prefix & 0x03 {
            3 => 4,
            n => n as usize,
        };
        let Some(data) = bytes.get(i + 1..i + 1 + size) else {
            s.error = Some(format!("item at byte {i} is cut off"));
            break;
        };
        let value = data
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        let kind = (prefix >> 2) & 0x03;
        let tag = prefix >> 4;
        match (kind, tag) {
            // Global: Usage Page.
            (1, 0x0) => {
                page = value as u16;
                note_page(&mut s, page);
            }
            // Local: Usage; a 4-byte usage carries its own page.
            (2, 0x0) => {
                let (p, id) = if size == 4 {
                    ((value >> 16) as u16, value as u16)
                } else {
                    (page, value as u16)
                };
                note_page(&mut s, p);
                usage = Some((p, id));
            }
            // Main: Collection. 0x01 is Application.
            (0, 0xa) => {
                if depth == 0 && value == 0x01 && s.applications.len() < MAX_APPLICATIONS {
                    s.applications.push(usage.unwrap_or((page, 0)));
                }
                depth = depth.saturating_add(1);
                usage = None;
            }
            // Main: End Collection.
            (0, 0xc) => {
                if depth == 0 {
                    s.error = Some(format!("End Collection without a collection at byte {i}"));
                    break;
                }
                depth -= 1;
            }
            // Any other main item clears the local state.
            (0, _) => usage = None,
            _ => {}
        }
        i += 1 + size;
    }
    if s.error.is_none() && depth > 0 {
        s.error = Some(format!("{depth} collection(s) never closed"));
    }
    s
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit: descriptors are at most
/// 4 KiB.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn note_page(s: &mut Summary, page: u16) {
    if !s.pages.contains(&page) && s.pages.len() < MAX_PAGES {
        s.pages.push(page);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A minimal UPS: Usage Page (Power Device), Usage (UPS), Collection (Application),
    // Usage Page (Battery System), Usage (Remaining Capacity), Input, End Collection.
    const UPS: &[u8] = &[
        0x05, 0x84, 0x09, 0x04, 0xa1, 0x01, 0x05, 0x85, 0x09, 0x66, 0x81, 0x02, 0xc0,
    ];
    // The boot keyboard from HID 1.11 appendix B.1, shortened.
    const KEYBOARD: &[u8] = &[
        0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00, 0x25,
        0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0xc0,
    ];

    #[test]
    fn a_ups_is_a_power_device() {
        let s = parse(UPS);
        assert_eq!(s.pages, vec![0x84, 0x85]);
        assert_eq!(s.applications, vec![(0x84, 0x04)]);
        assert!(s.is_power_device());
        assert_eq!(s.kind(), "HID UPS");
        assert_eq!(s.error, None);
    }

    #[test]
    fn the_summary_names_length_and_crc32_of_the_bytes() {
        let s = parse(UPS);
        assert_eq!((s.length, s.from_device), (13, false));
        // zlib.crc32 of the same bytes; and the standard check value of "123456789".
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(&[]), 0);
        assert_eq!(s.crc32, 0x7af4_1827);
        assert_ne!(parse(&UPS[..12]).crc32, s.crc32);
    }

    #[test]
    fn a_keyboard_is_not() {
        let s = parse(KEYBOARD);
        assert!(!s.is_power_device());
        assert_eq!(s.kind(), "keyboard");
    }

    #[test]
    fn extended_usages_carry_their_page() {
        // Usage (0x0084_0004) as a 4-byte local item, then Collection (Application).
        let s = parse(&[0x0b, 0x04, 0x00, 0x84, 0x00, 0xa1, 0x01, 0xc0]);
        assert_eq!(s.applications, vec![(0x84, 0x04)]);
    }

    #[test]
    fn cut_and_unbalanced_descriptors_are_reported() {
        assert!(parse(&UPS[..3]).error.unwrap().contains("cut off"));
        assert!(parse(&UPS[..12]).error.unwrap().contains("never closed"));
        assert!(parse(&[0xc0])
            .error
            .unwrap()
            .contains("without a collection"));
        // Power pages named but collections unreadable still count.
        assert!(parse(&UPS[..12]).is_power_device());
    }

    #[test]
    fn any_bytes_are_read_without_panic() {
        let mut rng = crate::nut::Rng(0x1234_5678);
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = parse(&bytes);
        }
    }
}
