//! Where a UPS is: `UPS@HOST[:PORT]`, as NUT's clients write it (upsmon.conf's MONITOR, and every
//! client of upsd).

use super::upsd_conf::DEFAULT_PORT;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// None: the server itself (`@HOST[:PORT]`, or nothing).
    pub ups: Option<String>,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn localhost() -> Self {
        Target {
            ups: None,
            host: "localhost".into(),
            port: DEFAULT_PORT,
        }
    }

    /// Parses `UPS`, `UPS@HOST`, `UPS@HOST:PORT`, `UPS@[IPv6]:PORT`, or `@HOST[:PORT]`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (ups, rest) = match s.split_once('@') {
            Some((u, r)) => (u, r),
            None => (s, "localhost"),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: an IPv6 address opened with `[` needs `]`"))?;
            (h, after.strip_prefix(':'))
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').expect("one colon");
            (h, Some(p))
        } else {
            (rest, None)
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host after `@`"));
        }
        let port =
            match port {
                None => DEFAULT_PORT,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("`{p}` in `{s}` is not a port number from 1 to 65535")
                })?,
            };
        Ok(Target {
            ups: (!ups.is_empty()).then(|| ups.to_string()),
            host: host.to_string(),
            port,
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ups: Option<&str>, host: &str, port: u16) -> Target {
        Target {
            ups: ups.map(String::from),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_nut_addresses() {
        assert_eq!(
            Target::parse("ups@localhost"),
            Ok(t(Some("ups"), "localhost", 3493))
        );
        assert_eq!(Target::parse("ups@h:1234"), Ok(t(Some("ups"), "h", 1234)));
        assert_eq!(Target::parse("ups"), Ok(t(Some("ups"), "localhost", 3493)));
        assert_eq!(Target::parse("ups@[::1]:99"), Ok(t(Some("ups"), "::1", 99)));
        assert_eq!(Target::parse("ups@::1"), Ok(t(Some("ups"), "::1", 3493)));
        assert_eq!(Target::parse("@nas:3494"), Ok(t(None, "nas", 3494)));
        assert_eq!(t(None, "::1", 1).address(), "[::1]:1");
        assert!(Target::parse("ups@h:x").is_err());
        assert!(Target::parse("ups@").is_err());
    }
}
