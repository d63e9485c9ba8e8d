//! systemd's notification protocol (sd_notify(3)) written by hand: `READY=1`, `STATUS=...`,
//! `WATCHDOG=1` and `STOPPING=1` as datagrams to the Unix socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name when it starts with `@`). Nothing is sent when it is unset.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Bytes of a STATUS= text; systemd shows one line.
pub const MAX_STATUS: usize = 400;

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Path(std::path::PathBuf),
    /// An abstract socket name, without the leading `@`.
    Abstract(Vec<u8>),
}

/// `$NOTIFY_SOCKET`'s value, checked: an absolute path or `@name`.
pub fn parse_address(v: &str) -> Option<Address> {
    if let Some(name) = v.strip_prefix('@') {
        (!name.is_empty()).then(|| Address::Abstract(name.as_bytes().to_vec()))
    } else if v.starts_with('/') {
        Some(Address::Path(v.into()))
    } else {
        None
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set for this process
/// (`$WATCHDOG_PID`, when set, must be ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let us: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(us / 2))
}

/// `STATUS=` with the text on one line and bounded.
pub fn status_message(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "STATUS={}",
        crate::state::ring::bounded(&one_line, MAX_STATUS)
    )
}

pub struct Notifier {
    target: Option<(UnixDatagram, Address)>,
    pub watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`, and removes them from the
    /// environment so that programs we start do not notify in our name. Call before any thread
    /// starts.
    pub fn from_env() -> Notifier {
        let var = |k| std::env::var(k).ok();
        let address = var("NOTIFY_SOCKET").as_deref().and_then(parse_address);
        let watchdog = watchdog_interval(
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(k);
        }
        let target = address.and_then(|a| match UnixDatagram::unbound() {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                Some((s, a))
            }
            Err(e) => {
                log::warn!("cannot open a socket for systemd's notifications: {e}");
                None
            }
        });
        Notifier {
            watchdog: watchdog.filter(|_| target.is_some()),
            target,
        }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram (several `KEY=VALUE` lines); a failure is logged at debug level,
    /// since systemd may be gone while we stop.
    pub fn send(&self, message: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        let r = match addr {
            Address::Path(p) => sock.send_to(message.as_bytes(), p),
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(message.as_bytes(), &a))
            }
        };
        if let Err(e) = r {
            log::debug!("systemd notification not sent: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_notify_addresses() {
        assert_eq!(
            parse_address("/run/systemd/notify"),
            Some(Address::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_address("@sd-notify-1"),
            Some(Address::Abstract(b"sd-notify-1".to_vec()))
        );
        assert_eq!(parse_address("relative"), None);
        assert_eq!(parse_address("@"), None);
    }

    #[test]
    fn agent_notify_watchdog_is_half_the_timeout_and_ours() {
        let d = |s| Some(Duration::from_secs(s));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), d(15));
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), d(15));
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn agent_notify_status_is_one_bounded_line() {
        assert_eq!(status_message("a\nb"), "STATUS=a b");
        assert!(status_message(&"x".repeat(1000)).len() <= MAX_STATUS + 7);
    }

    #[test]
    fn agent_notify_sends_to_a_path_and_an_abstract_name() {
        let dir = std::env::temp_dir().join(format!("ps-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                Address::Path(path.clone()),
            )),
            watchdog: None,
        };
        n.send("READY=1\nSTATUS=ok");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("ps-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                parse_address(&format!("@{name}")).unwrap(),
            )),
            watchdog: None,
        };
        n.send("WATCHDOG=1");
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
