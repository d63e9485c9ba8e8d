//! A tiny HTTP/1.1 client over std's TcpStream for the tests: one request per connection
//! (`Connection: close`), the whole reply read, nothing hidden.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` this reply sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .find_map(|(_, v)| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k == name).then(|| val.to_string())
            })
    }

    /// The value of the hidden `csrf` field of the page.
    pub fn csrf(&self) -> Option<String> {
        self.hidden("csrf")
    }

    /// The value of the page's hidden field `name`.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let key = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&key)? + key.len();
        Some(self.body[at..].split('"').next()?.to_string())
    }
}

/// A connection to the page on 127.0.0.1 from the loopback address `from` (any of 127/8), so
/// a test can be several clients.
pub fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(sock.into())
}

/// Sends raw bytes and reads the reply until the server closes.
pub fn raw(port: u16, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    raw_from([127, 0, 0, 1], port, bytes)
}

/// [`raw`] from another loopback address.
pub fn raw_from(from: [u8; 4], port: u16, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = connect_from(from, port)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    // A server that refuses a request may close before reading all of it: what it answered
    // before the reset still counts.
    let written = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    if out.is_empty() {
        written?;
    }
    Ok(out)
}

pub fn parse(bytes: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One request; `extra` headers as `Name: value` lines.
pub fn request(port: u16, method: &str, path: &str, extra: &[&str], body: &str) -> Reply {
    request_from([127, 0, 0, 1], port, method, path, extra, body)
}

/// [`request`] from another loopback address.
pub fn request_from(
    from: [u8; 4],
    port: u16,
    method: &str,
    path: &str,
    extra: &[&str],
    body: &str,
) -> Reply {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    parse(&raw_from(from, port, req.as_bytes()).expect("the page answers"))
}

pub fn get(port: u16, path: &str, cookie: Option<&str>) -> Reply {
    let c = cookie.map(|c| format!("Cookie: ps_session={c}"));
    let extra: Vec<&str> = c.iter().map(String::as_str).collect();
    request(port, "GET", path, &extra, "")
}

pub fn post(port: u16, path: &str, cookie: Option<&str>, body: &str) -> Reply {
    let c = cookie.map(|c| format!("Cookie: ps_session={c}"));
    let extra: Vec<&str> = c.iter().map(String::as_str).collect();
    request(port, "POST", path, &extra, body)
}

/// Percent-encodes a form value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
