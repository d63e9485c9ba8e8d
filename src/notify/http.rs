//! The little of HTTP/1.1 the webhook and ntfy channels need: one POST per connection
//! (`Connection: close`), the status line and the start of the body read back, bounded.
//! Hand-written: an HTTP client crate (hyper's client, reqwest) would cost far more than these
//! lines, and the agent already has tokio and rustls.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::net::{self, SendError, Url, EXCHANGE_TIMEOUT};

/// Bytes of a reply read; the body's first line is kept for the person testing a channel.
pub const MAX_REPLY: usize = 16 * 1024;
pub const MAX_SHOWN: usize = 200;

pub const SCHEMES: &[(&str, u16, bool)] = &[("http", 80, false), ("https", 443, true)];

/// What the receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The status line's reason and the body's start, on one line.
    pub text: String,
}

/// The request's bytes.
pub fn request(url: &Url, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let default = if url.tls { 443 } else { 80 };
    let host = if url.port == default {
        host
    } else {
        format!("{host}:{}", url.port)
    };
    let mut r = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: power-snitch/{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        // Header values never carry a line break (they come from the settings and events).
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut out = r.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads the status and the body's start out of a reply (as much as came).
pub fn parse_reply(reply: &[u8]) -> Result<Answer, String> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("not an HTTP reply: `{}`", shown(status_line)));
    };
    let status: u16 = match (version.starts_with("HTTP/1."), code.parse()) {
        (true, Ok(c)) if (100..600).contains(&c) => c,
        _ => return Err(format!("not an HTTP reply: `{}`", shown(status_line))),
    };
    let reason = parts.next().unwrap_or("").trim();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        // The first chunk is enough to show.
        body.split_once("\r\n").map_or(body, |(_, b)| b)
    } else {
        body
    };
    let first = body.trim().lines().next().unwrap_or("").trim();
    let text = if first.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {first}")
    };
    Ok(Answer {
        status,
        text: shown(&text),
    })
}

fn shown(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::state::ring::bounded(&one, MAX_SHOWN)
}

/// POSTs `body` to `url`, bounded by [`EXCHANGE_TIMEOUT`]; a 2xx answer is `Ok`, another a
/// refusal with what the receiver said.
pub async fn post(
    url: &Url,
    headers: &[(&str, String)],
    body: &[u8],
    ca_file: Option<&str>,
) -> Result<Answer, SendError> {
    let exchange = async {
        let mut c = net::connect(&url.host, url.port, url.tls, ca_file).await?;
        let io = |e: std::io::Error| SendError::Transport(format!("{}: {e}", url.host));
        c.write_all(&request(url, headers, body))
            .await
            .map_err(io)?;
        c.flush().await.map_err(io)?;
        let mut reply = Vec::with_capacity(1024);
        let mut buf = [0u8; 2048];
        loop {
            match c.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.len() >= MAX_REPLY || complete(&reply) {
                        break;
                    }
                }
                // A TLS peer closing without close_notify, after a whole reply, is fine.
                Err(_) if !reply.is_empty() => break,
                Err(e) => return Err(io(e)),
            }
        }
        if reply.is_empty() {
            return Err(SendError::Transport(format!(
                "{} closed the connection without an answer",
                url.host
            )));
        }
        parse_reply(&reply).map_err(SendError::Transport)
    };
    let answer = match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(SendError::Transport(format!(
                "{} did not answer within {} s",
                url.host,
                EXCHANGE_TIMEOUT.as_secs()
            )))
        }
    };
    if (200..300).contains(&answer.status) {
        Ok(answer)
    } else {
        Err(SendError::Refused(format!(
            "HTTP {} {}",
            answer.status, answer.text
        )))
    }
}

/// Whether a reply with a Content-Length is whole (so a receiver that keeps the connection
/// open anyway does not hold us until the timeout).
fn complete(reply: &[u8]) -> bool {
    let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| reply.len() >= end + 4 + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_http_requests_and_replies() {
        let url = net::parse_url("http://[::1]:8080/hook?a=1", SCHEMES).unwrap();
        let r = request(&url, &[("X-A", "b\r\nInjected: 1".into())], b"{}");
        let r = String::from_utf8(r).unwrap();
        assert!(
            r.starts_with("POST /hook?a=1 HTTP/1.1\r\nHost: [::1]:8080\r\n"),
            "{r}"
        );
        assert!(r.contains("Content-Length: 2\r\n"));
        assert!(r.contains("X-A: bInjected: 1\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n{}"));
        for (reply, want) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..], Ok((200, "OK: ok"))),
            (b"HTTP/1.1 204 No Content\r\n\r\n", Ok((204, "No Content"))),
            (
                b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnope!\r\n0\r\n\r\n",
                Ok((403, "Forbidden: nope!")),
            ),
            (b"SSH-2.0-OpenSSH\r\n", Err("not an HTTP reply")),
            (b"HTTP/1.1 abc\r\n\r\n", Err("not an HTTP reply")),
        ] {
            match (parse_reply(reply), want) {
                (Ok(a), Ok((s, t))) => assert_eq!((a.status, a.text.as_str()), (s, t)),
                (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
                (got, want) => panic!("{got:?} / {want:?}"),
            }
        }
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"));
    }
}
