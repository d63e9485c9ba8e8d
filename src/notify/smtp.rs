//! E-mail over SMTP, the little the agent needs, hand-written (an SMTP client crate such as
//! lettre brings far more than this dialogue): EHLO, STARTTLS (`smtp://`, port 587) or
//! implicit TLS (`smtps://`, port 465), AUTH PLAIN or LOGIN, one message. The reply parsing
//! and the message are pure.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::net::{self, Conn, SendError, EXCHANGE_TIMEOUT};

pub const SCHEMES: &[(&str, u16, bool)] = &[("smtp", 587, false), ("smtps", 465, true)];
/// Bytes of one reply at most.
const MAX_REPLY: usize = 8 * 1024;

/// Base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A whole reply at the start of `buf` (the last line is `NNN ` or `NNN`): its code, its text
/// lines, and its length; `None` while incomplete.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(u16, Vec<String>, usize)>, String> {
    let mut at = 0;
    let mut lines = Vec::new();
    while let Some(end) = buf[at..].iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&buf[at..at + end])
            .trim_end()
            .to_string();
        at += end + 1;
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an SMTP reply: `{}`", bounded(&line)))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_string());
        if !more {
            return Ok(Some((code, lines, at)));
        }
    }
    if buf.len() > MAX_REPLY {
        return Err("the SMTP server's reply is too long".into());
    }
    Ok(None)
}

fn bounded(s: &str) -> String {
    crate::state::ring::bounded(s, 200)
}

/// The message: headers and the sentence, dot-stuffed, CRLF line ends, ending with `.`.
pub fn message(from: &str, to: &[&str], subject: &str, id: &str, body: &str, date: &str) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let mut m = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{}@power-snitch>\r\nX-Power-Snitch-Id: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        clean(from),
        clean(&to.join(", ")),
        clean(subject),
        clean(id),
        clean(id)
    );
    for line in body.lines() {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str(".\r\n");
    m
}

/// RFC 5322's date for `secs` since the epoch, in UTC.
pub fn rfc5322_date(secs: u64) -> String {
    let days = secs / 86400;
    let (h, mi, s) = (secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAY: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {d:02} {} {y} {h:02}:{mi:02}:{s:02} +0000",
        DAY[(days % 7) as usize],
        MON[(m - 1) as usize]
    )
}

struct Dialogue {
    conn: Conn,
    buf: Vec<u8>,
}

impl Dialogue {
    async fn reply(&mut self) -> Result<(u16, Vec<String>), SendError> {
        loop {
            if let Some((code, lines, n)) = parse_reply(&self.buf).map_err(SendError::Transport)? {
                self.buf.drain(..n);
                return Ok((code, lines));
            }
            let mut chunk = [0u8; 1024];
            let n = self
                .conn
                .read(&mut chunk)
                .await
                .map_err(|e| SendError::Transport(format!("SMTP server: {e}")))?;
            if n == 0 {
                return Err(SendError::Transport(
                    "the SMTP server closed the connection".into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `line` (unless empty) and wants a reply with code `want` (its first digit).
    async fn ask(&mut self, line: &str, want: u16, shown: &str) -> Result<Vec<String>, SendError> {
        if !line.is_empty() {
            self.conn
                .write_all(line.as_bytes())
                .await
                .map_err(|e| SendError::Transport(format!("SMTP server: {e}")))?;
        }
        let (code, lines) = self.reply().await?;
        if code / 100 != want / 100 {
            return Err(SendError::Refused(format!(
                "SMTP {shown}: {code} {}",
                bounded(&lines.join(" "))
            )));
        }
        Ok(lines)
    }
}

/// What sending needs.
pub struct Mail<'a> {
    pub url: &'a str,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub ca_file: Option<&'a str>,
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub id: &'a str,
    pub body: &'a str,
    pub at: u64,
}

/// Sends one message; returns the server's answer to the message's end.
pub async fn send(m: &Mail<'_>) -> Result<String, SendError> {
    match tokio::time::timeout(EXCHANGE_TIMEOUT * 2, exchange(m)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Transport(format!(
            "the SMTP server did not finish within {} s",
            (EXCHANGE_TIMEOUT * 2).as_secs()
        ))),
    }
}

async fn exchange(m: &Mail<'_>) -> Result<String, SendError> {
    let u = net::parse_url(m.url, SCHEMES).map_err(SendError::Config)?;
    let tcp = net::tcp(&u.host, u.port).await?;
    let conn: Conn = if u.tls {
        net::start_tls(tcp, &u.host, m.ca_file).await?
    } else {
        Box::new(tcp)
    };
    let mut d = Dialogue {
        conn,
        buf: Vec::new(),
    };
    d.ask("", 220, "greeting").await?;
    let ehlo = format!("EHLO {}\r\n", mqtt_free_host());
    let mut caps = d.ask(&ehlo, 250, "EHLO").await?;
    if !u.tls {
        // STARTTLS always: a password or a message never goes in clear.
        if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
            return Err(SendError::Refused(
                "the SMTP server does not offer STARTTLS (use smtps:// for implicit TLS)".into(),
            ));
        }
        d.ask("STARTTLS\r\n", 220, "STARTTLS").await?;
        let plain = std::mem::replace(&mut d.conn, Box::new(tokio::io::empty()));
        d.conn = net::start_tls(plain, &u.host, m.ca_file).await?;
        d.buf.clear();
        caps = d.ask(&ehlo, 250, "EHLO").await?;
    }
    if let (Some(user), Some(pw)) = (m.user, m.password) {
        let auth = caps
            .iter()
            .find(|c| c.to_ascii_uppercase().starts_with("AUTH"))
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_default();
        if auth.contains("PLAIN") {
            let token = base64(format!("\0{user}\0{pw}").as_bytes());
            d.ask(&format!("AUTH PLAIN {token}\r\n"), 235, "AUTH PLAIN")
                .await?;
        } else if auth.contains("LOGIN") {
            d.ask("AUTH LOGIN\r\n", 334, "AUTH LOGIN").await?;
            d.ask(
                &format!("{}\r\n", base64(user.as_bytes())),
                334,
                "AUTH LOGIN user",
            )
            .await?;
            d.ask(
                &format!("{}\r\n", base64(pw.as_bytes())),
                235,
                "AUTH LOGIN password",
            )
            .await?;
        } else {
            return Err(SendError::Refused(
                "the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN".into(),
            ));
        }
    }
    let to: Vec<&str> =
        m.to.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
    d.ask(&format!("MAIL FROM:<{}>\r\n", m.from), 250, "MAIL FROM")
        .await?;
    for t in &to {
        d.ask(&format!("RCPT TO:<{t}>\r\n"), 250, "RCPT TO").await?;
    }
    d.ask("DATA\r\n", 354, "DATA").await?;
    let msg = message(m.from, &to, m.subject, m.id, m.body, &rfc5322_date(m.at));
    let answer = d.ask(&msg, 250, "the message").await?;
    let _ = d.ask("QUIT\r\n", 221, "QUIT").await;
    Ok(format!("250 {}", bounded(&answer.join(" "))))
}

fn mqtt_free_host() -> String {
    let h = super::channel::hostname();
    if h.is_empty()
        || !h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        "power-snitch".into()
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_smtp_pieces() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("\0u\0p", "AHUAcA=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            parse_reply(b"250-mail.example\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\nxx"),
            Ok(Some((
                250,
                vec![
                    "mail.example".into(),
                    "STARTTLS".into(),
                    "AUTH PLAIN LOGIN".into()
                ],
                54
            )))
        );
        assert_eq!(parse_reply(b"250-a\r\n250 b"), Ok(None));
        assert!(parse_reply(b"HTTP/1.1 200\r\n").is_err());
        let m = message(
            "a@x",
            &["b@y", "c@z"],
            "UPS",
            "ps-1-2",
            "line\n.dot",
            "Thu, 01 Jan 1970 00:00:00 +0000",
        );
        assert!(m.contains("To: b@y, c@z\r\n"));
        assert!(m.ends_with("\r\n\r\nline\r\n..dot\r\n.\r\n"), "{m}");
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_796_169_600),
            "Wed, 02 Dec 2026 00:00:00 +0000"
        );
    }
}
