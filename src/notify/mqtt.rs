//! MQTT 3.1.1, the little the agent needs, hand-written (an MQTT client crate brings its own
//! event loop and far more code than these packets): CONNECT with a last will, PUBLISH at QoS
//! 0 or 1, PUBACK, PINGREQ, DISCONNECT; and Home Assistant's MQTT discovery for each UPS (a
//! device with sensors and binary sensors, availability through the last will, retained
//! configs). The packet codec is pure; [`Session`] is one connection to a broker.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::net::{self, Conn, SendError, EXCHANGE_TIMEOUT};

pub const SCHEMES: &[(&str, u16, bool)] = &[("mqtt", 1883, false), ("mqtts", 8883, true)];
/// Seconds of the keep-alive the agent asks for; it pings at half of it.
pub const KEEP_ALIVE: u16 = 60;
/// A packet from the broker larger than this ends the connection.
pub const MAX_PACKET: usize = 64 * 1024;
/// Home Assistant's discovery prefix.
pub const DISCOVERY_PREFIX: &str = "homeassistant";

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len().min(65535) as u16).to_be_bytes());
    out.extend_from_slice(&s[..s.len().min(65535)]);
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// What CONNECT carries.
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub will: Option<(&'a str, &'a [u8])>,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
}

pub fn connect(c: &Connect) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    put_str(&mut body, b"MQTT");
    body.push(4);
    let mut flags = 0x02; // clean session
    if c.will.is_some() {
        flags |= 0x04 | 0x08 | 0x20; // will, QoS 1, retained
    }
    if c.user.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&KEEP_ALIVE.to_be_bytes());
    put_str(&mut body, c.client_id.as_bytes());
    if let Some((topic, msg)) = c.will {
        put_str(&mut body, topic.as_bytes());
        put_str(&mut body, msg);
    }
    if let Some(u) = c.user {
        put_str(&mut body, u.as_bytes());
    }
    if let Some(p) = c.password {
        put_str(&mut body, p.as_bytes());
    }
    packet(0x10, &body)
}

/// PUBLISH; `id` is the packet id for QoS 1 (none: QoS 0).
pub fn publish(topic: &str, payload: &[u8], retain: bool, id: Option<u16>) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut body, topic.as_bytes());
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut kind = 0x30;
    if id.is_some() {
        kind |= 0x02;
    }
    if retain {
        kind |= 0x01;
    }
    packet(kind, &body)
}

pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// A packet from the broker, as far as the agent cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    ConnAck { code: u8 },
    PubAck { id: u16 },
    PingResp,
    Other(u8),
}

/// Parses one whole packet from the start of `buf`: `Ok(None)` while incomplete, else the
/// packet and its length.
pub fn parse(buf: &[u8]) -> Result<Option<(Incoming, usize)>, String> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err("the broker sent a malformed packet length".into());
        }
    }
    if len > MAX_PACKET {
        return Err(format!("the broker sent a packet of {len} bytes"));
    }
    let Some(body) = buf.get(i..i + len) else {
        return Ok(None);
    };
    let p = match (kind >> 4, body) {
        (2, [_, code]) => Incoming::ConnAck { code: *code },
        (4, [a, b]) => Incoming::PubAck {
            id: u16::from_be_bytes([*a, *b]),
        },
        (13, []) => Incoming::PingResp,
        (k, _) => Incoming::Other(k),
    };
    Ok(Some((p, i + len)))
}

/// CONNACK's refusals (MQTT 3.1.1, 3.2.2.3).
pub fn connack_text(code: u8) -> String {
    match code {
        1 => "unacceptable protocol version".into(),
        2 => "client identifier rejected".into(),
        3 => "server unavailable".into(),
        4 => "bad user name or password".into(),
        5 => "not authorized".into(),
        c => format!("refused with code {c}"),
    }
}

/// One UPS's state as published for Home Assistant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpsState {
    /// `ups@host:port`.
    pub source: String,
    pub name: String,
    pub status: String,
    pub charge: Option<f64>,
    pub runtime: Option<f64>,
    pub load: Option<f64>,
    pub input_voltage: Option<f64>,
    pub output_voltage: Option<f64>,
    pub on_battery: bool,
    pub low_battery: bool,
    pub replace_battery: bool,
    pub mfr: String,
    pub model: String,
}

/// A topic-safe id: a-z, 0-9 and `_`.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The agent's topics under `prefix`.
pub fn availability_topic(prefix: &str) -> String {
    format!("{prefix}/availability")
}

pub fn state_topic(prefix: &str, u: &UpsState) -> String {
    format!("{prefix}/{}/state", slug(&u.source))
}

pub fn event_topic(prefix: &str) -> String {
    format!("{prefix}/event")
}

/// The state's JSON (numbers absent when the UPS does not report them).
pub fn state_json(u: &UpsState) -> String {
    let mut out = String::new();
    let mut o = crate::json::Object::new(&mut out);
    o.str("status", &u.status);
    for (k, v) in [
        ("charge", u.charge),
        ("runtime", u.runtime),
        ("load", u.load),
        ("input_voltage", u.input_voltage),
        ("output_voltage", u.output_voltage),
    ] {
        match v {
            Some(x) => o.raw(k, &format!("{x}")),
            None => o.raw(k, "null"),
        };
    }
    let on = |b: bool| if b { "ON" } else { "OFF" };
    o.str("on_battery", on(u.on_battery))
        .str("low_battery", on(u.low_battery))
        .str("replace_battery", on(u.replace_battery));
    o.end();
    out
}

/// (component, key, name, device_class, unit)
type Entity = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// Home Assistant's discovery configs for one UPS: (topic, retained JSON payload).
pub fn discovery(prefix: &str, u: &UpsState) -> Vec<(String, String)> {
    let id = slug(&u.source);
    let device = {
        let mut d = String::new();
        let mut o = crate::json::Object::new(&mut d);
        o.raw(
            "identifiers",
            &crate::json::strings([format!("power_snitch_{id}").as_str()]),
        )
        .str("name", &u.name)
        .str(
            "manufacturer",
            if u.mfr.is_empty() { "unknown" } else { &u.mfr },
        )
        .str("model", if u.model.is_empty() { "UPS" } else { &u.model })
        .str(
            "sw_version",
            concat!("power-snitch ", env!("CARGO_PKG_VERSION")),
        );
        o.end();
        d
    };
    let entities: [Entity; 9] = [
        ("sensor", "status", "Status", None, None),
        (
            "sensor",
            "charge",
            "Battery charge",
            Some("battery"),
            Some("%"),
        ),
        (
            "sensor",
            "runtime",
            "Battery runtime",
            Some("duration"),
            Some("s"),
        ),
        ("sensor", "load", "Load", Some("power_factor"), Some("%")),
        (
            "sensor",
            "input_voltage",
            "Input voltage",
            Some("voltage"),
            Some("V"),
        ),
        (
            "sensor",
            "output_voltage",
            "Output voltage",
            Some("voltage"),
            Some("V"),
        ),
        (
            "binary_sensor",
            "on_battery",
            "On battery",
            Some("problem"),
            None,
        ),
        (
            "binary_sensor",
            "low_battery",
            "Low battery",
            Some("battery"),
            None,
        ),
        (
            "binary_sensor",
            "replace_battery",
            "Replace battery",
            Some("problem"),
            None,
        ),
    ];
    let state = state_topic(prefix, u);
    let avail = availability_topic(prefix);
    entities
        .iter()
        .map(|(component, key, name, class, unit)| {
            let mut p = String::new();
            let mut o = crate::json::Object::new(&mut p);
            o.str("name", name)
                .str("unique_id", &format!("power_snitch_{id}_{key}"))
                .str("object_id", &format!("{id}_{key}"))
                .str("state_topic", &state)
                .str("value_template", &format!("{{{{ value_json.{key} }}}}"))
                .str("availability_topic", &avail)
                .str("payload_available", "online")
                .str("payload_not_available", "offline");
            // Absent, not null: Home Assistant's schema takes no null.
            if let Some(c) = class {
                o.str("device_class", c);
            }
            if let Some(u) = unit {
                o.str("unit_of_measurement", u);
            }
            if *component == "binary_sensor" {
                o.str("payload_on", "ON").str("payload_off", "OFF");
            } else if unit.is_some() {
                o.str("state_class", "measurement");
            }
            o.raw("device", &device);
            o.end();
            (
                format!("{DISCOVERY_PREFIX}/{component}/power_snitch_{id}/{key}/config"),
                p,
            )
        })
        .collect()
}

/// One connection to the broker.
pub struct Session {
    conn: Conn,
    buf: Vec<u8>,
    next_id: u16,
}

impl Session {
    /// Connects, sends CONNECT with the last will (`offline`, retained, on the availability
    /// topic), waits for CONNACK, then says `online` (retained).
    pub async fn open(
        url: &str,
        user: Option<&str>,
        password: Option<&str>,
        ca_file: Option<&str>,
        prefix: &str,
        client_id: &str,
    ) -> Result<Session, SendError> {
        let u = net::parse_url(url, SCHEMES).map_err(SendError::Config)?;
        let conn = net::connect(&u.host, u.port, u.tls, ca_file).await?;
        let mut s = Session {
            conn,
            buf: Vec::new(),
            next_id: 1,
        };
        let avail = availability_topic(prefix);
        s.write(&connect(&Connect {
            client_id,
            will: Some((&avail, b"offline")),
            user,
            password,
        }))
        .await?;
        match s.read().await? {
            Incoming::ConnAck { code: 0 } => {}
            Incoming::ConnAck { code } => {
                return Err(SendError::Refused(format!(
                    "the MQTT broker refused the connection: {}",
                    connack_text(code)
                )))
            }
            other => {
                return Err(SendError::Transport(format!(
                    "the MQTT broker answered CONNECT with {other:?}"
                )))
            }
        }
        s.publish(&avail, b"online", true).await?;
        Ok(s)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let w = async {
            self.conn.write_all(bytes).await?;
            self.conn.flush().await
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, w).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendError::Transport(format!("MQTT broker: {e}"))),
            Err(_) => Err(SendError::Transport(
                "MQTT broker: writing timed out".into(),
            )),
        }
    }

    /// The next packet, within the exchange timeout.
    pub async fn read(&mut self) -> Result<Incoming, SendError> {
        let r = async {
            loop {
                if let Some((p, n)) = parse(&self.buf).map_err(SendError::Transport)? {
                    self.buf.drain(..n);
                    return Ok(p);
                }
                let mut chunk = [0u8; 1024];
                let n = self
                    .conn
                    .read(&mut chunk)
                    .await
                    .map_err(|e| SendError::Transport(format!("MQTT broker: {e}")))?;
                if n == 0 {
                    return Err(SendError::Transport(
                        "the MQTT broker closed the connection".into(),
                    ));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, r).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transport(format!(
                "the MQTT broker did not answer within {} s",
                EXCHANGE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// PUBLISH at QoS 1, waiting for its PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
    ) -> Result<(), SendError> {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.write(&publish(topic, payload, retain, Some(id)))
            .await?;
        loop {
            match self.read().await? {
                Incoming::PubAck { id: got } if got == id => return Ok(()),
                _ => continue,
            }
        }
    }

    pub async fn ping(&mut self) -> Result<(), SendError> {
        self.write(&PINGREQ).await?;
        loop {
            if self.read().await? == Incoming::PingResp {
                return Ok(());
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.write(&DISCONNECT).await;
    }
}

/// How often an idle session pings.
pub const PING_EVERY: Duration = Duration::from_secs(KEEP_ALIVE as u64 / 2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_mqtt_packets() {
        let c = connect(&Connect {
            client_id: "ps",
            will: Some(("p/availability", b"offline")),
            user: Some("u"),
            password: Some("pw"),
        });
        assert_eq!(
            c,
            [
                &[0x10, 46, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xEE, 0, 60, 0, 2, b'p', b's'][..],
                &[0, 14],
                b"p/availability",
                &[0, 7],
                b"offline",
                &[0, 1, b'u', 0, 2, b'p', b'w'],
            ]
            .concat()
        );
        assert_eq!(
            publish("t", b"x", true, Some(7)),
            [0x33, 6, 0, 1, b't', 0, 7, b'x']
        );
        assert_eq!(publish("t", b"x", false, None), [0x30, 4, 0, 1, b't', b'x']);
        // A long body: two length bytes.
        let p = publish("t", &[0; 200], false, None);
        assert_eq!(&p[..3], &[0x30, (203 % 128) | 0x80, 1]);
        // Incoming: whole, partial, bad.
        assert_eq!(
            parse(&[0x20, 2, 0, 0]),
            Ok(Some((Incoming::ConnAck { code: 0 }, 4)))
        );
        assert_eq!(
            parse(&[0x40, 2, 0, 7, 0xD0]),
            Ok(Some((Incoming::PubAck { id: 7 }, 4)))
        );
        assert_eq!(parse(&[0xD0, 0]), Ok(Some((Incoming::PingResp, 2))));
        for partial in [&[][..], &[0x40], &[0x40, 2, 0]] {
            assert_eq!(parse(partial), Ok(None));
        }
        assert!(parse(&[0x30, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
        assert!(parse(&[0x30, 0xff, 0xff, 0x7f])
            .unwrap_err()
            .contains("bytes"));
        assert_eq!(connack_text(4), "bad user name or password");
    }

    #[test]
    fn notify_mqtt_home_assistant_discovery() {
        let u = UpsState {
            source: "eaton@127.0.0.1:3493".into(),
            name: "eaton".into(),
            status: "OB".into(),
            charge: Some(80.0),
            on_battery: true,
            ..UpsState::default()
        };
        let d = discovery("power-snitch", &u);
        assert_eq!(d.len(), 9);
        assert_eq!(
            d[1].0,
            "homeassistant/sensor/power_snitch_eaton_127_0_0_1_3493/charge/config"
        );
        assert_eq!(
            d[1].1,
            r#"{"name":"Battery charge","unique_id":"power_snitch_eaton_127_0_0_1_3493_charge","object_id":"eaton_127_0_0_1_3493_charge","state_topic":"power-snitch/eaton_127_0_0_1_3493/state","value_template":"{{ value_json.charge }}","availability_topic":"power-snitch/availability","payload_available":"online","payload_not_available":"offline","device_class":"battery","unit_of_measurement":"%","state_class":"measurement","device":{"identifiers":["power_snitch_eaton_127_0_0_1_3493"],"name":"eaton","manufacturer":"unknown","model":"UPS","sw_version":"power-snitch VERSION"}}"#
                .replace("VERSION", env!("CARGO_PKG_VERSION"))
        );
        assert!(d[6].0.starts_with("homeassistant/binary_sensor/"));
        assert!(d[6].1.contains(r#""payload_on":"ON","payload_off":"OFF""#));
        assert_eq!(
            state_json(&u),
            r#"{"status":"OB","charge":80,"runtime":null,"load":null,"input_voltage":null,"output_voltage":null,"on_battery":"ON","low_battery":"OFF","replace_battery":"OFF"}"#
        );
    }
}
