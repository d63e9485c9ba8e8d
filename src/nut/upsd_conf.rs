//! upsd.conf: where upsd listens and how it behaves.

use std::net::IpAddr;

use super::conf::{directive, Directive};
use super::diag::{Code, Sink};
use super::lexer::{Line, Pos};
use super::version::NutVersion;
use super::Context;

/// NUT's network port.
pub const DEFAULT_PORT: u16 = 3493;

/// One LISTEN line, with the port upsd really binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub address: String,
    pub port: u16,
    pub pos: Pos,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpsdConf {
    pub listen: Vec<Listen>,
    pub maxage: Option<u32>,
    /// ALLOW_NO_DEVICE: upsd starts even when ups.conf serves no UPS.
    pub allow_no_device: bool,
}

impl UpsdConf {
    /// The addresses upsd listens on: its LISTEN lines, or loopback when there are none.
    pub fn listeners(&self) -> Vec<(String, u16)> {
        if self.listen.is_empty() {
            vec![
                ("127.0.0.1".into(), DEFAULT_PORT),
                ("::1".into(), DEFAULT_PORT),
            ]
        } else {
            self.listen
                .iter()
                .map(|l| (l.address.clone(), l.port))
                .collect()
        }
    }
}

/// Directives, the number of words each needs after the keyword, and the version that added it:
/// generated from NUT's releases (`nut-releases/gen-tables`).
pub const DIRECTIVES: &[Directive] = super::directives::UPSD_CONF;

pub fn parse(lines: &[Line], cx: &Context, sink: &mut Sink) -> UpsdConf {
    let mut conf = UpsdConf::default();
    let mut allow_not_all = false;
    for line in lines.iter().filter(|l| !l.skipped && !l.words.is_empty()) {
        let key = &line.words[0];
        let args = &line.words[1..];
        if matches!(key.text.as_str(), "ACL" | "ACCEPT" | "REJECT") {
            sink.warning(
                Code::Removed,
                key.pos,
                format!("{} was removed in NUT 2.4; upsd ignores it", key.text),
            )
            .with_hint("limit access with LISTEN addresses and a firewall");
            continue;
        }
        let Some((name, need, _)) = directive(key, DIRECTIVES, "upsd", cx.version, sink) else {
            continue;
        };
        if args.len() < need || args.first().is_some_and(|w| w.text == "=") {
            sink.warning(
                Code::MissingValue,
                key.pos,
                format!(
                    "`{name}` needs {need} value(s) after it, without `=`; upsd ignores this line"
                ),
            )
            .with_hint(format!("write e.g. `{name} VALUE`"));
            continue;
        }
        let value = &args[0];
        let extra_from = if name == "LISTEN" { 2 } else { need };
        if let Some(first) = args.get(extra_from) {
            sink.warning(
                Code::ExtraWords,
                first.pos,
                format!("upsd ignores the words after `{name}`'s value"),
            )
            .with_hint("quote a value that contains spaces");
        }
        match name {
            "MAXAGE" | "TRACKINGDELAY" | "MAXCONN" | "DEBUG_MIN" => {
                // upsd takes the value only when it starts with a digit.
                match value.text.parse::<u32>() {
                    Ok(n) => {
                        if name == "MAXAGE" {
                            conf.maxage = Some(n);
                        }
                        if n == 0 && name == "MAXCONN" {
                            sink.error(
                                Code::BadValue,
                                value.pos,
                                "MAXCONN 0 lets no client connect".into(),
                            );
                        }
                    }
                    Err(_) => {
                        sink.warning(
                            Code::BadValue,
                            value.pos,
                            format!("`{name}` must be a whole number, not `{}`; upsd logs an error and keeps its default", value.text),
                        );
                    }
                }
            }
            "ALLOW_NO_DEVICE" | "ALLOW_NOT_ALL_LISTENERS" | "DISABLE_WEAK_SSL" => {
                if name == "ALLOW_NO_DEVICE" {
                    conf.allow_no_device = is_true(&value.text);
                }
                if name == "ALLOW_NOT_ALL_LISTENERS" {
                    allow_not_all = is_true(&value.text);
                }
                if !is_boolean(&value.text) {
                    sink.warning(
                        Code::BadValue,
                        value.pos,
                        format!("`{name}` is `true` or `false`, not `{}`", value.text),
                    );
                }
            }
            "CERTREQUEST"
                if !matches!(
                    value.text.as_str(),
                    "0" | "1" | "2" | "NO" | "REQUEST" | "REQUIRE"
                ) =>
            {
                sink.warning(
                    Code::BadValue,
                    value.pos,
                    format!(
                        "CERTREQUEST is 0 (NO), 1 (REQUEST) or 2 (REQUIRE), not `{}`",
                        value.text
                    ),
                );
            }
            "LISTEN" => {
                if let Some(l) = check_listen(value, args.get(1), sink) {
                    if let Some(prev) = conf
                        .listen
                        .iter()
                        .find(|p| p.address == l.address && p.port == l.port)
                    {
                        sink.error(
                            Code::Duplicate,
                            l.pos,
                            format!("upsd already listens on {} port {} (line {}); the second bind fails", l.address, l.port, prev.pos.line),
                        );
                    }
                    conf.listen.push(l);
                }
            }
            _ => {}
        }
    }
    check_binds(&conf.listen, cx.version, allow_not_all, sink);
    conf
}

/// The families a LISTEN address binds: (IPv4 wildcard, IPv6 wildcard, IPv4, IPv6). `*` is
/// getaddrinfo's wildcard: 0.0.0.0 in 2.8.0, both :: and 0.0.0.0 from 2.8.1 on (measured).
fn binds(address: &str, version: NutVersion) -> Option<(bool, bool, bool, bool)> {
    if address == "*" {
        return Some((true, version >= NutVersion::new(2, 8, 1), true, false));
    }
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some((a.is_unspecified(), false, true, false)),
        IpAddr::V6(a) => Some((false, a.is_unspecified(), false, true)),
    }
}

/// LISTEN lines on one port that cannot all bind: a wildcard takes the port for every address
/// of its family, and before 2.8.1 an IPv6 wildcard (without IPV6_V6ONLY) takes IPv4's too.
/// upsd logs "not listening on ..." and runs without that socket; from 2.8.2 on it exits,
/// unless ALLOW_NOT_ALL_LISTENERS is true. (Host names are not resolved here.)
fn check_binds(listen: &[Listen], version: NutVersion, allow_not_all: bool, sink: &mut Sink) {
    let old_v6 = version < NutVersion::new(2, 8, 1);
    for (i, a) in listen.iter().enumerate() {
        for b in &listen[..i] {
            if a.port != b.port || a.address == b.address {
                continue; // the same address twice is the duplicate above
            }
            let (Some(x), Some(y)) = (binds(&a.address, version), binds(&b.address, version))
            else {
                continue;
            };
            let takes = |w: (bool, bool, bool, bool), o: (bool, bool, bool, bool)| {
                (w.0 && o.2) || (w.1 && o.3) || (old_v6 && w.1 && o.2)
            };
            if !takes(x, y) && !takes(y, x) {
                continue;
            }
            // upsd 2.8.0 binds the LISTEN lines last first; later releases in file order.
            let (lost, won) = if version < NutVersion::new(2, 8, 1) {
                (b, a)
            } else {
                (a, b)
            };
            let message = format!(
                "upsd cannot listen on both {} (line {}) and {} (line {}) port {}: the second \
                 bind fails",
                won.address, won.pos.line, lost.address, lost.pos.line, a.port
            );
            let hint = "keep the wildcard alone, or list the addresses one by one";
            if version >= NutVersion::new(2, 8, 2) && !allow_not_all {
                sink.error(
                    Code::BadListen,
                    lost.pos,
                    format!(
                        "{message}, and upsd {version} exits (ALLOW_NOT_ALL_LISTENERS is not set)"
                    ),
                )
                .with_hint(hint);
            } else {
                sink.warning(
                    Code::BadListen,
                    lost.pos,
                    format!("{message}; upsd {version} logs \"not listening on {} port {}\" and runs without it", lost.address, a.port),
                )
                .with_hint(hint);
            }
        }
    }
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1")
}

fn is_boolean(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
    )
}

fn check_listen(
    addr: &super::lexer::Word,
    port: Option<&super::lexer::Word>,
    sink: &mut Sink,
) -> Option<Listen> {
    let a = addr.text.as_str();
    let numeric = a.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit()));
    let valid_host = !numeric
        && !a.is_empty()
        && a.len() <= 253
        && a.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        });
    // `*` is getaddrinfo's wildcard: upsd binds every address.
    if a.parse::<IpAddr>().is_err() && !valid_host && a != "*" {
        sink.error(
            Code::BadListen,
            addr.pos,
            format!("`{a}` is not an IP address or host name: upsd exits at start"),
        )
        .with_hint("write e.g. `LISTEN 127.0.0.1 3493` or `LISTEN ::1`");
        return None;
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.text.parse::<u64>() {
            Ok(0) => {
                sink.error(
                    Code::BadListen,
                    p.pos,
                    "port 0 is not a port upsd can be reached on".into(),
                );
                return None;
            }
            Ok(n) if n > 65535 => {
                let bound = (n % 65536) as u16;
                sink.warning(
                    Code::BadListen,
                    p.pos,
                    format!("port {n} is above 65535: upsd silently binds port {bound} instead"),
                )
                .with_hint("use a port from 1 to 65535 (NUT's own is 3493)");
                bound
            }
            Ok(n) => n as u16,
            Err(_) => {
                sink.error(
                    Code::BadListen,
                    p.pos,
                    format!("`{}` is not a port number: upsd cannot bind it", p.text),
                )
                .with_hint("write a number from 1 to 65535 (NUT's own is 3493)");
                return None;
            }
        },
    };
    Some(Listen {
        address: a.to_string(),
        port,
        pos: addr.pos,
    })
}
