//! What each channel sends for an event (pure: the bodies and headers), and the sending, one
//! event at a time, bounded by timeouts. Each channel kind is behind its cargo feature; a
//! channel whose feature this build lacks says so when it is used.

use super::net::SendError;
use super::outbox::Queued;
use crate::settings::model::{Channel, ChannelKind, Severity};

/// The machine's name in messages (the host name, bounded).
pub fn hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    crate::state::ring::bounded(h.trim(), 64)
}

/// The webhook's JSON body.
pub fn webhook_body(q: &Queued, host: &str) -> String {
    let mut out = String::with_capacity(256);
    let mut o = crate::json::Object::new(&mut out);
    o.str("id", &q.id)
        .str("kind", q.event.kind.as_str())
        .str("severity", q.event.severity.as_str())
        .str("source", &q.event.source)
        .str("text", &q.event.text)
        .num("at", q.event.at)
        .str("host", host);
    o.end();
    out
}

/// The header carrying the webhook's signature: `sha256=` and the hex HMAC-SHA256 of the body
/// keyed with the channel's secret.
pub const SIGNATURE_HEADER: &str = "X-Power-Snitch-Signature";
/// The header carrying the event's stable id (webhook and ntfy).
pub const ID_HEADER: &str = "X-Power-Snitch-Id";

#[cfg(feature = "notify-webhook")]
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&k, body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// ntfy's priority (1 min … 5 max) and tags (emoji short codes, then the kind).
pub fn ntfy_priority(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info => (3, "information_source"),
        Severity::Warning => (4, "warning"),
        Severity::Critical => (5, "rotating_light"),
    }
}

/// ntfy's headers for an event.
pub fn ntfy_headers(q: &Queued, host: &str) -> Vec<(&'static str, String)> {
    let (priority, tag) = ntfy_priority(q.event.severity);
    vec![
        (
            "Title",
            format!("{host}: {}", q.event.kind.as_str().replace('_', " ")),
        ),
        ("Priority", priority.to_string()),
        ("Tags", format!("{tag},{}", q.event.kind.as_str())),
        (ID_HEADER, q.id.clone()),
        ("Content-Type", "text/plain; charset=utf-8".into()),
    ]
}

/// Sends one event on `c`; returns what the receiver answered.
pub async fn send(c: &Channel, q: &Queued, host: &str) -> Result<String, SendError> {
    match c.kind {
        ChannelKind::Webhook => webhook(c, q, host).await,
        ChannelKind::Ntfy => ntfy(c, q, host).await,
        ChannelKind::Smtp => mail(c, q, host).await,
        ChannelKind::Mqtt => mqtt_once(c, q, host).await,
    }
}

#[cfg_attr(
    all(
        feature = "notify-webhook",
        feature = "notify-ntfy",
        feature = "notify-mqtt",
        feature = "notify-smtp"
    ),
    allow(dead_code)
)]
fn missing(feature: &str, what: &str) -> SendError {
    SendError::Config(format!(
        "{what} is not in this build (the cargo feature `{feature}`)"
    ))
}

#[cfg(feature = "notify-smtp")]
async fn mail(c: &Channel, q: &Queued, host: &str) -> Result<String, SendError> {
    let subject = format!(
        "[{}] {}: {}",
        q.event.severity.as_str(),
        host,
        q.event.kind.as_str().replace('_', " ")
    );
    super::smtp::send(&super::smtp::Mail {
        url: &c.url,
        user: c.user.as_deref(),
        password: c.secret.as_ref().map(|s| s.0.as_str()),
        ca_file: c.ca_file.as_deref(),
        from: c.from.as_deref().unwrap_or(""),
        to: c.to.as_deref().unwrap_or(""),
        subject: &subject,
        id: &q.id,
        body: &q.event.text,
        at: q.event.at,
    })
    .await
}

#[cfg(not(feature = "notify-smtp"))]
async fn mail(_: &Channel, _: &Queued, _: &str) -> Result<String, SendError> {
    Err(missing("notify-smtp", "e-mail"))
}

/// One event over a short MQTT session (for "send a test"; the agent keeps a lasting one).
#[cfg(feature = "notify-mqtt")]
async fn mqtt_once(c: &Channel, q: &Queued, host: &str) -> Result<String, SendError> {
    use super::mqtt;
    let prefix = super::mqtt_prefix(c);
    let id = format!("power-snitch-test-{}", mqtt::slug(host));
    let mut s = mqtt::Session::open(
        &c.url,
        c.user.as_deref(),
        c.secret.as_ref().map(|s| s.0.as_str()),
        c.ca_file.as_deref(),
        &prefix,
        &id,
    )
    .await?;
    let topic = mqtt::event_topic(&prefix);
    s.publish(&topic, webhook_body(q, host).as_bytes(), false)
        .await?;
    s.close().await;
    // Session::open returns only after a CONNACK of 0; publish after the PUBACK.
    Ok(format!(
        "CONNACK 0 (connection accepted); the broker acknowledged the event on {topic} (PUBACK)"
    ))
}

#[cfg(not(feature = "notify-mqtt"))]
async fn mqtt_once(_: &Channel, _: &Queued, _: &str) -> Result<String, SendError> {
    Err(missing("notify-mqtt", "MQTT"))
}

#[cfg(any(feature = "notify-webhook", feature = "notify-ntfy"))]
fn http_url(c: &Channel) -> Result<super::net::Url, SendError> {
    super::net::parse_url(&c.url, super::http::SCHEMES)
        .map_err(|e| SendError::Config(format!("channel {}: {e}", c.name)))
}

#[cfg(feature = "notify-webhook")]
async fn webhook(c: &Channel, q: &Queued, host: &str) -> Result<String, SendError> {
    let url = http_url(c)?;
    let body = webhook_body(q, host);
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        (ID_HEADER, q.id.clone()),
    ];
    if let Some(s) = &c.secret {
        headers.push((
            SIGNATURE_HEADER,
            format!(
                "sha256={}",
                hmac_sha256_hex(s.0.as_bytes(), body.as_bytes())
            ),
        ));
    }
    let a = super::http::post(&url, &headers, body.as_bytes(), c.ca_file.as_deref()).await?;
    Ok(format!("HTTP {} {}", a.status, a.text))
}

#[cfg(not(feature = "notify-webhook"))]
async fn webhook(_: &Channel, _: &Queued, _: &str) -> Result<String, SendError> {
    Err(missing("notify-webhook", "the webhook"))
}

#[cfg(feature = "notify-ntfy")]
async fn ntfy(c: &Channel, q: &Queued, host: &str) -> Result<String, SendError> {
    let url = http_url(c)?;
    let mut headers = ntfy_headers(q, host);
    if let Some(s) = &c.secret {
        headers.push(("Authorization", format!("Bearer {}", s.0)));
    }
    let a = super::http::post(
        &url,
        &headers,
        q.event.text.as_bytes(),
        c.ca_file.as_deref(),
    )
    .await?;
    Ok(format!("HTTP {} {}", a.status, a.text))
}

#[cfg(not(feature = "notify-ntfy"))]
async fn ntfy(_: &Channel, _: &Queued, _: &str) -> Result<String, SendError> {
    Err(missing("notify-ntfy", "ntfy"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::{Event, Kind};

    fn q() -> Queued {
        Queued {
            seq: 7,
            id: "ps-1-7".into(),
            event: Event::new(
                Kind::OnBattery,
                Severity::Warning,
                "eaton@localhost:3493",
                "eaton@localhost:3493: on \"battery\"".into(),
                1700000000,
            ),
        }
    }

    #[test]
    fn notify_webhook_body_is_json_with_the_id() {
        let b = webhook_body(&q(), "pi");
        assert_eq!(
            b,
            r#"{"id":"ps-1-7","kind":"on_battery","severity":"warning","source":"eaton@localhost:3493","text":"eaton@localhost:3493: on \"battery\"","at":1700000000,"host":"pi"}"#
        );
    }

    #[cfg(feature = "notify-webhook")]
    #[test]
    fn notify_webhook_hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn notify_ntfy_priority_and_tags_follow_severity() {
        for (s, p, t) in [
            (Severity::Info, "3", "information_source,on_battery"),
            (Severity::Warning, "4", "warning,on_battery"),
            (Severity::Critical, "5", "rotating_light,on_battery"),
        ] {
            let mut e = q();
            e.event.severity = s;
            let h = ntfy_headers(&e, "pi");
            let get = |k| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
            assert_eq!(get("Priority"), Some(p));
            assert_eq!(get("Tags"), Some(t));
            assert_eq!(get("Title"), Some("pi: on battery"));
            assert_eq!(get(ID_HEADER), Some("ps-1-7"));
        }
    }
}
