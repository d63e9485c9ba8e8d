//! Can a NUT driver's account open a device node for reading and writing? Pure: the node's
//! owner, group and mode against an account's ids. (POSIX ACLs such as systemd-logind's
//! `uaccess` go to the seat's user, never to `nut`, so mode bits decide.)

use crate::nut::{Account, FileMeta};

/// Whether `who` may open a node with this metadata read-write.
pub fn can_open_rw(meta: &FileMeta, who: &Account) -> bool {
    if who.uid == 0 {
        return true;
    }
    let bits = if meta.uid == who.uid {
        (meta.mode >> 6) & 0o7
    } else if who.gids.contains(&meta.gid) {
        (meta.mode >> 3) & 0o7
    } else {
        meta.mode & 0o7
    };
    bits & 0o6 == 0o6
}

/// A udev rule that gives the driver's group read-write access to a USB device.
pub fn usb_rule(vendor_id: u16, product_id: u16, group: &str) -> String {
    format!(
        "SUBSYSTEM==\"usb\", ATTR{{idVendor}}==\"{vendor_id:04x}\", ATTR{{idProduct}}==\"{product_id:04x}\", MODE=\"0660\", GROUP=\"{group}\""
    )
}

/// A udev rule for a serial port, by its USB adapter when it has one.
pub fn tty_rule(
    kernel_name: &str,
    adapter: Option<(u16, u16, Option<&str>)>,
    group: &str,
) -> String {
    match adapter {
        Some((v, p, serial)) => {
            let serial = serial
                .map(|s| format!(", ATTRS{{serial}}==\"{s}\""))
                .unwrap_or_default();
            format!(
                "SUBSYSTEM==\"tty\", ATTRS{{idVendor}}==\"{v:04x}\", ATTRS{{idProduct}}==\"{p:04x}\"{serial}, MODE=\"0660\", GROUP=\"{group}\""
            )
        }
        None => format!(
            "SUBSYSTEM==\"tty\", KERNEL==\"{kernel_name}\", MODE=\"0660\", GROUP=\"{group}\""
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nut() -> Account {
        Account {
            name: "nut".into(),
            uid: 110,
            gids: vec![115, 20],
        }
    }

    fn meta(uid: u32, gid: u32, mode: u32) -> FileMeta {
        FileMeta { mode, uid, gid }
    }

    #[test]
    fn owner_group_and_others_each_decide_in_turn() {
        assert!(can_open_rw(&meta(0, 115, 0o664), &nut()));
        assert!(!can_open_rw(&meta(0, 0, 0o664), &nut()));
        assert!(can_open_rw(&meta(0, 0, 0o666), &nut()));
        assert!(!can_open_rw(&meta(0, 115, 0o644), &nut()));
        // The owner's bits apply to the owner even when the group's would allow.
        assert!(!can_open_rw(&meta(110, 115, 0o460), &nut()));
        assert!(can_open_rw(&meta(0, 20, 0o660), &nut()));
        let root = Account {
            name: "root".into(),
            uid: 0,
            gids: vec![0],
        };
        assert!(can_open_rw(&meta(0, 0, 0o600), &root));
    }

    #[test]
    fn rules_name_the_device() {
        assert_eq!(
            usb_rule(0x051d, 0x0002, "nut"),
            r#"SUBSYSTEM=="usb", ATTR{idVendor}=="051d", ATTR{idProduct}=="0002", MODE="0660", GROUP="nut""#
        );
        assert!(
            tty_rule("ttyUSB0", Some((0x0403, 0x6001, Some("A5"))), "nut")
                .contains(r#"ATTRS{serial}=="A5""#)
        );
        assert!(tty_rule("ttyS0", None, "nut").contains(r#"KERNEL=="ttyS0""#));
    }
}
