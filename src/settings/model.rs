//! The UPS configuration model (the plan's UPSConfig, one entry per UPS) and agent-wide
//! settings. Domain types only: the stored form is `settings::stored`.

use std::fmt;

use crate::upsd::tls::TlsMode;

/// A password: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"********\""
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "********" })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsEntry {
    pub nut_device_name: String,
    pub nut_driver: String,
    pub nut_port: Option<String>,
    pub nut_username: Option<String>,
    pub nut_password: Option<Secret>,
    pub nut_retry_count: u32,
    /// Seconds.
    pub nut_retry_delay: u32,
    pub upsd_host: String,
    pub upsd_port: u16,
    pub tls: TlsMode,
    /// Seconds between polls.
    pub poll_interval: u32,
}

impl UpsEntry {
    pub fn new(name: &str) -> Self {
        UpsEntry {
            nut_device_name: name.to_string(),
            nut_driver: String::new(),
            nut_port: None,
            nut_username: None,
            nut_password: None,
            nut_retry_count: 3,
            nut_retry_delay: 5,
            upsd_host: "localhost".into(),
            upsd_port: 3493,
            tls: TlsMode::Auto,
            poll_interval: 5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [(&'static str, LogLevel); 5] = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];

    pub fn as_str(self) -> &'static str {
        LogLevel::ALL
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("warn", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub nut_conf_dir: String,
    pub log_level: LogLevel,
    /// The setup page's address; empty: off.
    pub web_listen: String,
    /// The setup page's admin password as a salted PBKDF2 hash (`web::auth`); none: not set.
    pub web_password: Option<Secret>,
    /// Whether the status page, its JSON and /metrics may be read without logging in.
    pub web_public_status: bool,
    pub ups: Vec<UpsEntry>,
    /// Where events are told (notification channels) and the flapping guard.
    pub notify: NotifySettings,
    /// Whether the agent restarts a driver whose data stays stale or that stays disconnected
    /// while its device is present (with a back-off and a cap per hour).
    pub self_heal: bool,
    /// Whether the agent adopts the one UPS found when NUT serves none, without a click.
    pub auto_adopt: bool,
    /// The battery self-test the agent runs on each UPS that offers it: every so many days
    /// (0: never) and which test.
    pub battery_test_every: u16,
    pub battery_test_kind: BatteryTest,
}

/// A battery self-test the agent may schedule (never one that cuts power).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatteryTest {
    /// `test.battery.start.quick`
    Quick,
    /// `test.battery.start.deep`
    Deep,
}

impl BatteryTest {
    pub const ALL: [BatteryTest; 2] = [BatteryTest::Quick, BatteryTest::Deep];

    pub fn as_str(self) -> &'static str {
        match self {
            BatteryTest::Quick => "quick",
            BatteryTest::Deep => "deep",
        }
    }

    /// The instant command that starts it.
    pub fn command(self) -> &'static str {
        match self {
            BatteryTest::Quick => "test.battery.start.quick",
            BatteryTest::Deep => "test.battery.start.deep",
        }
    }
}

/// Where the setup page listens by default: this machine only.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8080";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nut_conf_dir: "/etc/nut".into(),
            log_level: LogLevel::Warn,
            web_listen: DEFAULT_WEB_LISTEN.into(),
            web_password: None,
            web_public_status: true,
            ups: Vec::new(),
            notify: NotifySettings::default(),
            self_heal: true,
            auto_adopt: false,
            battery_test_every: 0,
            battery_test_kind: BatteryTest::Quick,
        }
    }
}

/// Every key `settings set` takes: agent-wide ones, then per-UPS ones. The admin password is
/// not one: `power-snitch web-password` sets it.
pub const AGENT_KEYS: &[&str] = &[
    "nut_conf_dir",
    "log_level",
    "web_listen",
    "web_public_status",
    "self_heal",
    "auto_adopt",
    "battery_test_every",
    "battery_test_kind",
];
pub const UPS_KEYS: &[&str] = &[
    "nut_device_name",
    "nut_driver",
    "nut_port",
    "nut_username",
    "nut_password",
    "nut_retry_count",
    "nut_retry_delay",
    "upsd_host",
    "upsd_port",
    "tls",
    "poll_interval",
];

fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    key: &str,
    v: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    v.parse::<T>()
        .ok()
        .filter(|n| *n >= min && *n <= max)
        .ok_or_else(|| format!("{key} is a whole number from {min} to {max}, not `{v}`"))
}

fn word(key: &str, v: &str, what: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 512 || !v.chars().all(|c| ('!'..='~').contains(&c)) {
        return Err(format!(
            "{key} is {what}: 1 to 512 printable ASCII characters without spaces"
        ));
    }
    Ok(v.to_string())
}

impl Settings {
    /// Sets one agent-wide key.
    pub fn set_agent(&mut self, key: &str, v: &str) -> Result<(), String> {
        match key {
            "nut_conf_dir" => {
                if !v.starts_with('/') {
                    return Err(format!(
                        "nut_conf_dir is an absolute directory path, not `{v}`"
                    ));
                }
                self.nut_conf_dir = v.to_string();
            }
            "log_level" => {
                self.log_level = LogLevel::ALL
                    .iter()
                    .find(|(n, _)| *n == v)
                    .map(|(_, l)| *l)
                    .ok_or_else(|| {
                        format!("log_level is error, warn, info, debug or trace, not `{v}`")
                    })?;
            }
            "web_listen" => {
                if !v.is_empty() && v.parse::<std::net::SocketAddr>().is_err() {
                    return Err(format!("web_listen is ADDRESS:PORT (e.g. 127.0.0.1:8080) or empty for off, not `{v}`"));
                }
                self.web_listen = v.to_string();
            }
            "web_public_status" => self.web_public_status = yes_no(key, v)?,
            "self_heal" => self.self_heal = yes_no(key, v)?,
            "auto_adopt" => self.auto_adopt = yes_no(key, v)?,
            "battery_test_every" => self.battery_test_every = number(key, v, 0, 366)?,
            "battery_test_kind" => {
                self.battery_test_kind = BatteryTest::ALL
                    .into_iter()
                    .find(|t| t.as_str() == v)
                    .ok_or_else(|| format!("battery_test_kind is quick or deep, not `{v}`"))?
            }
            _ => return Err(unknown(key)),
        }
        Ok(())
    }
}

impl UpsEntry {
    /// Sets one per-UPS key; the password goes through [`UpsEntry::set_password`].
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        match key {
            "nut_device_name" => self.nut_device_name = word(key, v, "a ups.conf section name")?,
            "nut_driver" => self.nut_driver = word(key, v, "a NUT driver name")?,
            "nut_port" => {
                self.nut_port = (!v.is_empty())
                    .then(|| word(key, v, "a port"))
                    .transpose()?
            }
            "nut_username" => {
                self.nut_username = (!v.is_empty())
                    .then(|| word(key, v, "a user name"))
                    .transpose()?
            }
            "nut_password" => return Err("the password is set only with --password-stdin".into()),
            "nut_retry_count" => self.nut_retry_count = number(key, v, 0, 100)?,
            "nut_retry_delay" => self.nut_retry_delay = number(key, v, 0, 3600)?,
            "upsd_host" => self.upsd_host = word(key, v, "a host name or address")?,
            "upsd_port" => self.upsd_port = number(key, v, 1, 65535)?,
            "tls" => self.tls = TlsMode::parse(v).map_err(|e| format!("tls: {e}"))?,
            "poll_interval" => self.poll_interval = number(key, v, 1, 3600)?,
            _ => return Err(unknown(key)),
        }
        Ok(())
    }

    pub fn set_password(&mut self, p: &str) -> Result<(), String> {
        if p.len() > 512 || p.chars().any(|c| !(' '..='~').contains(&c)) {
            return Err("nut_password is up to 512 printable ASCII characters".into());
        }
        self.nut_password = (!p.is_empty()).then(|| Secret(p.to_string()));
        Ok(())
    }

    /// The value of a key as shown to a person (the password masked).
    pub fn show(&self, key: &str) -> String {
        match key {
            "nut_device_name" => self.nut_device_name.clone(),
            "nut_driver" => self.nut_driver.clone(),
            "nut_port" => self.nut_port.clone().unwrap_or_default(),
            "nut_username" => self.nut_username.clone().unwrap_or_default(),
            "nut_password" => self
                .nut_password
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            "nut_retry_count" => self.nut_retry_count.to_string(),
            "nut_retry_delay" => self.nut_retry_delay.to_string(),
            "upsd_host" => self.upsd_host.clone(),
            "upsd_port" => self.upsd_port.to_string(),
            "tls" => match self.tls {
                TlsMode::Off => "off",
                TlsMode::Auto => "auto",
                TlsMode::Required => "required",
            }
            .to_string(),
            "poll_interval" => self.poll_interval.to_string(),
            _ => String::new(),
        }
    }
}

impl Settings {
    pub fn show_agent(&self, key: &str) -> String {
        match key {
            "nut_conf_dir" => self.nut_conf_dir.clone(),
            "log_level" => self.log_level.as_str().to_string(),
            "web_listen" => self.web_listen.clone(),
            "web_public_status" => yes(self.web_public_status),
            "self_heal" => yes(self.self_heal),
            "auto_adopt" => yes(self.auto_adopt),
            "battery_test_every" => self.battery_test_every.to_string(),
            "battery_test_kind" => self.battery_test_kind.as_str().to_string(),
            _ => String::new(),
        }
    }
}

fn yes_no(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(format!("{key} is yes or no, not `{v}`")),
    }
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn unknown(key: &str) -> String {
    format!(
        "unknown key `{key}`; keys are {} and, per UPS, {}",
        AGENT_KEYS.join(", "),
        UPS_KEYS.join(", ")
    )
}

/// How much an event matters; ordered from least to most. A channel takes events of its
/// `min_severity` and above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Severity, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("a severity is info, warning or critical, not `{s}`"))
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<Severity> {
        Severity::ALL.get(usize::from(c)).copied()
    }
}

/// What kind of receiver a channel talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// A JSON POST to any HTTP(S) receiver, optionally signed (HMAC-SHA256 of the body).
    Webhook,
    /// An ntfy topic URL.
    Ntfy,
    /// E-mail over SMTP (`smtp://` with STARTTLS, `smtps://` implicit TLS).
    Smtp,
    /// MQTT 3.1.1 (`mqtt://`, `mqtts://`), with Home Assistant discovery.
    Mqtt,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Webhook,
        ChannelKind::Ntfy,
        ChannelKind::Smtp,
        ChannelKind::Mqtt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Smtp => "smtp",
            ChannelKind::Mqtt => "mqtt",
        }
    }

    pub fn parse(s: &str) -> Result<ChannelKind, String> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("a channel's kind is webhook, ntfy, smtp or mqtt, not `{s}`"))
    }
}

/// One notification channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// 1 to 32 of a-z, 0-9, `-`, `_`: how the CLI, the page and the outbox name it.
    pub name: String,
    pub kind: ChannelKind,
    /// Where: `http(s)://` (webhook, ntfy), `smtp(s)://host[:port]`, `mqtt(s)://host[:port]`.
    pub url: String,
    pub min_severity: Severity,
    /// The webhook's HMAC key, ntfy's access token, the SMTP or MQTT password.
    pub secret: Option<Secret>,
    /// The SMTP or MQTT user.
    pub user: Option<String>,
    /// A PEM file of the authorities (or the receiver's own certificate) to verify TLS with;
    /// none: the system's CA file.
    pub ca_file: Option<String>,
    /// E-mail: the sender and the recipients (comma-separated). MQTT: the topic prefix.
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Channel {
    pub fn new(name: &str, kind: ChannelKind, url: &str) -> Channel {
        Channel {
            name: name.to_string(),
            kind,
            url: url.to_string(),
            min_severity: Severity::Info,
            secret: None,
            user: None,
            ca_file: None,
            from: None,
            to: None,
        }
    }

    /// The channel as shown to a person: the secret masked.
    pub fn show(&self) -> String {
        let mut s = format!(
            "{} {} {} min_severity={}",
            self.name,
            self.kind.as_str(),
            self.url,
            self.min_severity.as_str()
        );
        for (k, v) in [
            ("user", &self.user),
            ("ca_file", &self.ca_file),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}={v}"));
            }
        }
        if self.secret.is_some() {
            s.push_str(" secret=********");
        }
        s
    }
}

/// Channels at most.
pub const MAX_CHANNELS: usize = 8;
/// The flapping guard's window by default, seconds.
pub const DEFAULT_FLAP_WINDOW: u32 = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    /// Seconds: a state toggling faster than this is summarised, not repeated; 0 off.
    pub flap_window: u32,
    pub channels: Vec<Channel>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            flap_window: DEFAULT_FLAP_WINDOW,
            channels: Vec::new(),
        }
    }
}

/// Checks a channel's fields (the URL's form is checked where it is used, by its kind).
pub fn check_channel(c: &Channel) -> Result<(), String> {
    let name_ok = !c.name.is_empty()
        && c.name.len() <= 32
        && c.name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
    if !name_ok {
        return Err(format!(
            "a channel's name is 1 to 32 of a-z, 0-9, - and _, not `{}`",
            c.name
        ));
    }
    let schemes: &[&str] = match c.kind {
        ChannelKind::Webhook | ChannelKind::Ntfy => &["http://", "https://"],
        ChannelKind::Smtp => &["smtp://", "smtps://"],
        ChannelKind::Mqtt => &["mqtt://", "mqtts://"],
    };
    if !schemes.iter().any(|s| c.url.starts_with(s)) || c.url.len() > 1024 {
        return Err(format!(
            "channel {}: a {} URL starts with {} (up to 1024 characters)",
            c.name,
            c.kind.as_str(),
            schemes.join(" or ")
        ));
    }
    if c.url
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(format!("channel {}: the URL has spaces", c.name));
    }
    if c.url[c.url.find("://").map_or(0, |i| i + 3)..]
        .split('/')
        .next()
        .is_some_and(|a| a.contains('@'))
    {
        return Err(format!(
            "channel {}: put the user in `user` and the password in the secret, not in the URL",
            c.name
        ));
    }
    for (k, v) in [
        ("user", &c.user),
        ("ca_file", &c.ca_file),
        ("from", &c.from),
        ("to", &c.to),
    ] {
        if let Some(v) = v {
            if v.is_empty() || v.len() > 512 || v.chars().any(|ch| ch.is_control()) {
                return Err(format!(
                    "channel {}: {k} is 1 to 512 characters on one line",
                    c.name
                ));
            }
        }
    }
    if c.ca_file.as_deref().is_some_and(|f| !f.starts_with('/')) {
        return Err(format!("channel {}: ca_file is an absolute path", c.name));
    }
    if c.kind == ChannelKind::Smtp && (c.from.is_none() || c.to.is_none()) {
        return Err(format!(
            "channel {}: e-mail needs from and to (the sender and the recipients)",
            c.name
        ));
    }
    if let Some(s) = &c.secret {
        if s.0.len() > 512 || s.0.chars().any(|ch| ch.is_control()) {
            return Err(format!(
                "channel {}: the secret is up to 512 characters on one line",
                c.name
            ));
        }
    }
    Ok(())
}

impl NotifySettings {
    /// Adds or replaces a channel by name.
    pub fn put(&mut self, c: Channel) -> Result<(), String> {
        check_channel(&c)?;
        let full = self.channels.len() >= MAX_CHANNELS;
        match self.channels.iter_mut().find(|x| x.name == c.name) {
            Some(x) => *x = c,
            None if full => return Err(format!("at most {MAX_CHANNELS} channels")),
            None => self.channels.push(c),
        }
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<(), String> {
        let n = self.channels.len();
        self.channels.retain(|c| c.name != name);
        if self.channels.len() == n {
            return Err(format!("no channel named `{name}`"));
        }
        Ok(())
    }

    pub fn set_flap_window(&mut self, v: &str) -> Result<(), String> {
        self.flap_window = number("flap_window", v, 0, 3600)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_values_out_of_range_naming_the_field() {
        let mut u = UpsEntry::new("ups");
        assert_eq!(
            u.set("nut_retry_count", "101").unwrap_err(),
            "nut_retry_count is a whole number from 0 to 100, not `101`"
        );
        assert!(u
            .set("upsd_port", "0")
            .unwrap_err()
            .starts_with("upsd_port"));
        assert!(u.set("tls", "maybe").unwrap_err().starts_with("tls"));
        assert!(u.set("nut_password", "x").is_err());
        u.set("nut_retry_count", "4").unwrap();
        assert_eq!(u.nut_retry_count, 4);
        let mut s = Settings::default();
        assert!(s.set_agent("web_listen", "nonsense").is_err());
        s.set_agent("web_listen", "0.0.0.0:8080").unwrap();
        assert!(s
            .set_agent("bogus", "1")
            .unwrap_err()
            .contains("unknown key"));
    }

    #[test]
    fn passwords_are_never_shown() {
        let mut u = UpsEntry::new("ups");
        u.set_password("hunter2").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
        assert_eq!(u.show("nut_password"), "********");
    }

    #[test]
    fn notify_channels_are_checked_and_secrets_never_shown() {
        let mut n = NotifySettings::default();
        let mut c = Channel::new("hook", ChannelKind::Webhook, "https://example.org/h");
        c.secret = Some(Secret("k3y".into()));
        n.put(c.clone()).unwrap();
        assert!(!c.show().contains("k3y"));
        assert!(!format!("{n:?}").contains("k3y"));
        for (mut bad, why) in [
            (
                Channel::new("Bad Name", ChannelKind::Ntfy, "https://ntfy.sh/t"),
                "name",
            ),
            (
                Channel::new("m", ChannelKind::Mqtt, "http://broker"),
                "mqtt:// or mqtts://",
            ),
            (
                Channel::new("m", ChannelKind::Mqtt, "mqtt://u:pw@broker"),
                "not in the URL",
            ),
            (
                Channel::new("e", ChannelKind::Smtp, "smtp://mail:587"),
                "from and to",
            ),
        ] {
            bad.ca_file = None;
            assert!(n.put(bad).unwrap_err().contains(why), "{why}");
        }
        c.ca_file = Some("relative.pem".into());
        assert!(n.put(c).unwrap_err().contains("absolute"));
        assert!(n.remove("nope").is_err());
        n.remove("hook").unwrap();
        assert!(n.set_flap_window("3601").is_err());
        n.set_flap_window("0").unwrap();
        for k in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(k.as_str()), Ok(k));
        }
    }
}
