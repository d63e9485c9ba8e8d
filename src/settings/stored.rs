//! The settings file's format, sans I/O. Serialization is a compatibility promise, so the
//! stored form is its own versioned struct, converted to and from the domain types.
//!
//! Layout (little-endian): magic `PSNT`, format version (u16), payload length (u32),
//! CRC-32 of the payload (u32), then the postcard payload.
//!
//! **Invariant:** [`decode`] never panics; any input gives settings or a [`DecodeError`].

use serde::{Deserialize, Serialize};

use super::model::{
    BatteryTest, Channel, ChannelKind, LogLevel, NotifySettings, Secret, Settings, Severity,
    UpsEntry,
};
use crate::upsd::tls::TlsMode;

pub const MAGIC: &[u8; 4] = b"PSNT";
pub const VERSION: u16 = 4;
const HEADER: usize = 4 + 2 + 4 + 4;
/// A settings file is small; anything larger is not ours.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Format version 1 (read only: migrated to the current version on load).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct V1 {
    nut_conf_dir: String,
    log_level: u8,
    web_listen: String,
    ups: Vec<UpsV1>,
}

/// Format version 2: version 1 plus the setup page's admin password hash and whether its
/// status may be read without logging in. The UPS entries are unchanged.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct V2 {
    nut_conf_dir: String,
    log_level: u8,
    web_listen: String,
    /// `pbkdf2-sha256$ITERATIONS$SALT$HASH`, or none while no password is set.
    web_password: Option<String>,
    web_public_status: bool,
    ups: Vec<UpsV1>,
}

/// Format version 3: version 2 plus the notification channels and the flapping guard.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct V3 {
    nut_conf_dir: String,
    log_level: u8,
    web_listen: String,
    web_password: Option<String>,
    web_public_status: bool,
    ups: Vec<UpsV1>,
    notify: NotifyV1,
}

/// Format version 4: version 3 plus what the agent does by itself: self-healing of drivers,
/// adopting the one UPS found, the battery self-test's schedule.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct V4 {
    nut_conf_dir: String,
    log_level: u8,
    web_listen: String,
    web_password: Option<String>,
    web_public_status: bool,
    ups: Vec<UpsV1>,
    notify: NotifyV1,
    auto: AutoV1,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct AutoV1 {
    self_heal: bool,
    auto_adopt: bool,
    battery_test_every: u16,
    /// BatteryTest::ALL's index.
    battery_test_kind: u8,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Default)]
struct NotifyV1 {
    flap_window: u32,
    channels: Vec<ChannelV1>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct ChannelV1 {
    name: String,
    /// ChannelKind::ALL's index.
    kind: u8,
    url: String,
    /// Severity's code.
    min_severity: u8,
    secret: Option<String>,
    user: Option<String>,
    ca_file: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct UpsV1 {
    nut_device_name: String,
    nut_driver: String,
    nut_port: Option<String>,
    nut_username: Option<String>,
    nut_password: Option<String>,
    nut_retry_count: u32,
    nut_retry_delay: u32,
    upsd_host: String,
    upsd_port: u16,
    tls: u8,
    poll_interval: u32,
}

/// Why a file could not be read as settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort(usize),
    BadMagic,
    UnknownVersion(u16),
    Truncated { expected: usize, got: usize },
    TooLong(usize),
    Checksum,
    Payload(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooShort(n) => write!(f, "{n} bytes is too short for a settings file"),
            DecodeError::BadMagic => {
                write!(f, "not a Power Snitch settings file (wrong magic bytes)")
            }
            DecodeError::UnknownVersion(v) => write!(
                f,
                "format version {v} is newer than this program knows ({VERSION})"
            ),
            DecodeError::Truncated { expected, got } => write!(
                f,
                "truncated: the payload should be {expected} bytes, the file has {got}"
            ),
            DecodeError::TooLong(n) => write!(
                f,
                "the payload length {n} is larger than a settings file can be"
            ),
            DecodeError::Checksum => write!(f, "the checksum does not match: the file is damaged"),
            DecodeError::Payload(e) => write!(f, "the content cannot be read: {e}"),
        }
    }
}

/// CRC-32 (IEEE 802.3, as zlib).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn tls_code(t: TlsMode) -> u8 {
    match t {
        TlsMode::Off => 0,
        TlsMode::Auto => 1,
        TlsMode::Required => 2,
    }
}

fn level_code(l: LogLevel) -> u8 {
    LogLevel::ALL.iter().position(|(_, x)| *x == l).unwrap_or(1) as u8
}

pub fn encode(s: &Settings) -> Vec<u8> {
    let v4 = V4 {
        nut_conf_dir: s.nut_conf_dir.clone(),
        log_level: level_code(s.log_level),
        web_listen: s.web_listen.clone(),
        web_password: s.web_password.as_ref().map(|p| p.0.clone()),
        web_public_status: s.web_public_status,
        ups: s
            .ups
            .iter()
            .map(|u| UpsV1 {
                nut_device_name: u.nut_device_name.clone(),
                nut_driver: u.nut_driver.clone(),
                nut_port: u.nut_port.clone(),
                nut_username: u.nut_username.clone(),
                nut_password: u.nut_password.as_ref().map(|p| p.0.clone()),
                nut_retry_count: u.nut_retry_count,
                nut_retry_delay: u.nut_retry_delay,
                upsd_host: u.upsd_host.clone(),
                upsd_port: u.upsd_port,
                tls: tls_code(u.tls),
                poll_interval: u.poll_interval,
            })
            .collect(),
        notify: NotifyV1 {
            flap_window: s.notify.flap_window,
            channels: s
                .notify
                .channels
                .iter()
                .map(|c| ChannelV1 {
                    name: c.name.clone(),
                    kind: ChannelKind::ALL
                        .iter()
                        .position(|k| *k == c.kind)
                        .unwrap_or(0) as u8,
                    url: c.url.clone(),
                    min_severity: c.min_severity.code(),
                    secret: c.secret.as_ref().map(|p| p.0.clone()),
                    user: c.user.clone(),
                    ca_file: c.ca_file.clone(),
                    from: c.from.clone(),
                    to: c.to.clone(),
                })
                .collect(),
        },
        auto: AutoV1 {
            self_heal: s.self_heal,
            auto_adopt: s.auto_adopt,
            battery_test_every: s.battery_test_every,
            battery_test_kind: BatteryTest::ALL
                .iter()
                .position(|t| *t == s.battery_test_kind)
                .unwrap_or(0) as u8,
        },
    };
    let payload =
        postcard::to_allocvec(&v4).expect("serializing plain data into memory cannot fail");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The payload as one version's struct, all of it (bytes left over mean another version's
/// payload: the version number in the header is damaged).
fn exact<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(payload) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(DecodeError::Payload(format!(
            "{} bytes left over: the format version does not fit the content",
            rest.len()
        ))),
        Err(e) => Err(DecodeError::Payload(e.to_string())),
    }
}

/// Reads a settings file. Also returns the format version it was written in.
pub fn decode(bytes: &[u8]) -> Result<(Settings, u16), DecodeError> {
    if bytes.len() < HEADER {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let crc = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    if version == 0 || version > VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    if len > MAX_PAYLOAD {
        return Err(DecodeError::TooLong(len));
    }
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(DecodeError::Truncated {
            expected: len,
            got: payload.len(),
        });
    }
    if crc32(payload) != crc {
        return Err(DecodeError::Checksum);
    }
    // Each version has its struct; older ones are converted to the newest here (versions 1
    // and 2 had no notifications, versions 1 to 3 nothing done by itself: the defaults).
    let defaults = Settings::default();
    let mut auto = AutoV1 {
        self_heal: defaults.self_heal,
        auto_adopt: defaults.auto_adopt,
        battery_test_every: defaults.battery_test_every,
        battery_test_kind: 0,
    };
    let mut notify = NotifyV1 {
        flap_window: NotifySettings::default().flap_window,
        channels: Vec::new(),
    };
    let v2: V2 = match version {
        1 => {
            let v1: V1 = exact(payload)?;
            V2 {
                nut_conf_dir: v1.nut_conf_dir,
                log_level: v1.log_level,
                // Version 1 had no setup page, so its empty web_listen (the default then) was
                // never a choice to turn the page off: it becomes today's default, loopback.
                web_listen: if v1.web_listen.is_empty() {
                    Settings::default().web_listen
                } else {
                    v1.web_listen
                },
                web_password: None,
                web_public_status: true,
                ups: v1.ups,
            }
        }
        2 => exact(payload)?,
        3 => {
            let v3: V3 = exact(payload)?;
            notify = v3.notify;
            V2 {
                nut_conf_dir: v3.nut_conf_dir,
                log_level: v3.log_level,
                web_listen: v3.web_listen,
                web_password: v3.web_password,
                web_public_status: v3.web_public_status,
                ups: v3.ups,
            }
        }
        _ => {
            let v3: V4 = exact(payload)?;
            notify = v3.notify;
            auto = v3.auto;
            V2 {
                nut_conf_dir: v3.nut_conf_dir,
                log_level: v3.log_level,
                web_listen: v3.web_listen,
                web_password: v3.web_password,
                web_public_status: v3.web_public_status,
                ups: v3.ups,
            }
        }
    };
    let notify = NotifySettings {
        flap_window: notify.flap_window,
        channels: notify
            .channels
            .into_iter()
            .map(|c| {
                Ok(Channel {
                    kind: *ChannelKind::ALL.get(usize::from(c.kind)).ok_or_else(|| {
                        DecodeError::Payload(format!("unknown channel kind {}", c.kind))
                    })?,
                    min_severity: Severity::from_code(c.min_severity).ok_or_else(|| {
                        DecodeError::Payload(format!("unknown severity {}", c.min_severity))
                    })?,
                    name: c.name,
                    url: c.url,
                    secret: c.secret.map(Secret),
                    user: c.user,
                    ca_file: c.ca_file,
                    from: c.from,
                    to: c.to,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?,
    };
    let tls = |c: u8| match c {
        0 => Ok(TlsMode::Off),
        1 => Ok(TlsMode::Auto),
        2 => Ok(TlsMode::Required),
        _ => Err(DecodeError::Payload(format!("unknown TLS mode {c}"))),
    };
    let ups = v2
        .ups
        .into_iter()
        .map(|u| {
            Ok(UpsEntry {
                nut_device_name: u.nut_device_name,
                nut_driver: u.nut_driver,
                nut_port: u.nut_port,
                nut_username: u.nut_username,
                nut_password: u.nut_password.map(Secret),
                nut_retry_count: u.nut_retry_count,
                nut_retry_delay: u.nut_retry_delay,
                upsd_host: u.upsd_host,
                upsd_port: u.upsd_port,
                tls: tls(u.tls)?,
                poll_interval: u.poll_interval,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let log_level = LogLevel::ALL
        .get(usize::from(v2.log_level))
        .map(|(_, l)| *l)
        .ok_or_else(|| DecodeError::Payload(format!("unknown log level {}", v2.log_level)))?;
    Ok((
        Settings {
            nut_conf_dir: v2.nut_conf_dir,
            log_level,
            web_listen: v2.web_listen,
            web_password: v2.web_password.map(Secret),
            web_public_status: v2.web_public_status,
            ups,
            notify,
            self_heal: auto.self_heal,
            auto_adopt: auto.auto_adopt,
            battery_test_every: auto.battery_test_every,
            battery_test_kind: *BatteryTest::ALL
                .get(usize::from(auto.battery_test_kind))
                .ok_or_else(|| {
                    DecodeError::Payload(format!("unknown battery test {}", auto.battery_test_kind))
                })?,
        },
        version,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(n: usize) -> Settings {
        let mut s = Settings::default();
        for i in 0..n {
            let mut u = UpsEntry::new(&format!("ups{i}"));
            u.nut_driver = "usbhid-ups".into();
            u.nut_port = Some("auto".into());
            u.nut_username = Some("monuser".into());
            u.set_password("a-long-password-1").unwrap();
            s.ups.push(u);
        }
        s
    }

    #[test]
    fn round_trips_and_stays_small() {
        for n in [0, 1, 8] {
            let s = sample(n);
            let bytes = encode(&s);
            assert_eq!(decode(&bytes).unwrap(), (s, VERSION));
            if n == 1 {
                assert!(bytes.len() <= 256, "one UPS takes {} bytes", bytes.len());
            }
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_is_refused() {
        let bytes = encode(&sample(1));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode(&b).is_err(), "bit {i} flipped");
        }
    }

    /// A version 2 file (the committed fixture) reads as the same settings, with no
    /// notification channels and the default flapping guard.
    #[test]
    fn version_2_file_migrates() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures-settings/v2-one-ups.bin"
        );
        let mut s = sample(1);
        s.web_password = Some(Secret("pbkdf2-sha256$1000$00ff$abcd".into()));
        s.web_public_status = false;
        assert_eq!(decode(&std::fs::read(path).unwrap()).unwrap(), (s, 2));
    }

    /// A version 3 file (the committed fixture) reads as the same settings, with what the
    /// agent does by itself at its defaults.
    #[test]
    fn version_3_file_migrates() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures-settings/v3-one-ups-two-channels.bin"
        );
        assert_eq!(
            decode(&std::fs::read(path).unwrap()).unwrap(),
            (two_channels(), 3)
        );
    }

    /// The committed file of the current format version, written when asked
    /// (`WRITE_SETTINGS_FIXTURE=1`): while version 4 is current, the encoder writes exactly it.
    #[test]
    fn version_4_fixture_matches_this_encoder() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures-settings/v4-self-heal-off-auto-adopt-monthly-test.bin"
        );
        let mut s = two_channels();
        s.self_heal = false;
        s.auto_adopt = true;
        s.battery_test_every = 30;
        s.battery_test_kind = BatteryTest::Deep;
        if std::env::var_os("WRITE_SETTINGS_FIXTURE").is_some() {
            std::fs::write(path, encode(&s)).unwrap();
        }
        assert_eq!(std::fs::read(path).unwrap(), encode(&s));
        assert_eq!(decode(&encode(&s)).unwrap(), (s, 4));
    }

    fn two_channels() -> Settings {
        let mut s = sample(1);
        s.web_password = Some(Secret("pbkdf2-sha256$1000$00ff$abcd".into()));
        s.web_public_status = false;
        s.notify.flap_window = 30;
        let mut hook = Channel::new("hook", ChannelKind::Webhook, "https://example.org/hook");
        hook.secret = Some(Secret("hmac-key".into()));
        hook.min_severity = Severity::Warning;
        let mut mail = Channel::new("mail", ChannelKind::Smtp, "smtp://mail.example.org:587");
        mail.user = Some("ups".into());
        mail.secret = Some(Secret("mail-pw".into()));
        mail.ca_file = Some("/etc/ssl/mail-ca.pem".into());
        mail.from = Some("ups@example.org".into());
        mail.to = Some("admin@example.org".into());
        s.notify.channels = vec![hook, mail];
        s
    }

    /// A version 1 file reads as the same settings, with the fields version 2 added at their
    /// defaults: no admin password, status open, the page on loopback.
    #[test]
    fn version_1_file_migrates() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures-settings/v1-one-ups.bin"
        );
        let (s, version) = decode(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(version, 1);
        assert_eq!(s, sample(1));
        assert_eq!(s.web_password, None);
        assert!(s.web_public_status);
        assert_eq!(s.web_listen, "127.0.0.1:8080");
    }

    #[test]
    fn known_crc() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
