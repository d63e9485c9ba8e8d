//! NUT's USB device matchers (`vendorid`, `productid`, `vendor`, `product`, `serial`, `bus`,
//! `device`, `busport`) applied to a device: each a POSIX extended regular expression
//! ([`Regex`], NUT's own rules in `nut::ere`), compared against the whole value. Ids are
//! compared as `%04x`, bus, device and port numbers as `%03d`.

use super::UsbDevice;
pub use crate::nut::ere::Regex;

/// One of NUT's USB matchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    VendorId,
    ProductId,
    Vendor,
    Product,
    Serial,
    Bus,
    Device,
    BusPort,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::VendorId,
        Field::ProductId,
        Field::Vendor,
        Field::Product,
        Field::Serial,
        Field::Bus,
        Field::Device,
        Field::BusPort,
    ];

    /// The ups.conf variable.
    pub fn name(self) -> &'static str {
        match self {
            Field::VendorId => "vendorid",
            Field::ProductId => "productid",
            Field::Vendor => "vendor",
            Field::Product => "product",
            Field::Serial => "serial",
            Field::Bus => "bus",
            Field::Device => "device",
            Field::BusPort => "busport",
        }
    }

    /// What NUT compares the pattern with. A missing string is empty, as in NUT.
    pub fn value(self, d: &UsbDevice) -> String {
        let trimmed = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_string();
        match self {
            Field::VendorId => format!("{:04x}", d.vendor_id),
            Field::ProductId => format!("{:04x}", d.product_id),
            Field::Vendor => trimmed(&d.manufacturer),
            Field::Product => trimmed(&d.product),
            Field::Serial => trimmed(&d.serial),
            Field::Bus => format!("{:03}", d.busnum),
            Field::Device => format!("{:03}", d.devnum),
            Field::BusPort => format!("{:03}", d.port_number().unwrap_or(0)),
        }
    }

    /// Numbers that change when the device is plugged in again.
    pub fn unstable(self) -> bool {
        matches!(self, Field::Device)
    }
}

/// The matchers a ups.conf section sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matchers {
    pub set: Vec<(Field, String, Regex)>,
}

impl Matchers {
    pub fn matches(&self, d: &UsbDevice) -> bool {
        self.set.iter().all(|(f, _, re)| re.full_match(&f.value(d)))
    }

    pub fn has(&self, f: Field) -> bool {
        self.set.iter().any(|(g, _, _)| *g == f)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
