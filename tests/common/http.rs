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

/// HTTPS for the tests: rustls over std's TcpStream, trusting exactly one certificate (by its
/// SHA-256), or any (to see which one the page serves). The certificate served is returned.
#[cfg(feature = "web")]
pub mod tls {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct Pin {
        sha256: Option<[u8; 32]>,
        seen: Arc<Mutex<Vec<u8>>>,
        provider: Arc<CryptoProvider>,
    }

    pub fn sha256(b: &[u8]) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, b);
        d.as_ref().try_into().unwrap()
    }

    /// `AB:CD:...`, as the page prints a fingerprint.
    pub fn colon_hex(b: &[u8]) -> String {
        b.iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    impl ServerCertVerifier for Pin {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            *self.seen.lock().unwrap() = end_entity.as_ref().to_vec();
            match self.sha256 {
                Some(want) if sha256(end_entity.as_ref()) != want => {
                    Err(rustls::Error::General("not the pinned certificate".into()))
                }
                _ => Ok(ServerCertVerified::assertion()),
            }
        }

        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// Sends `bytes` over TLS to 127.0.0.1:`port` and reads until the server closes: the
    /// reply and the certificate served; an error when the handshake fails (a pin that does
    /// not match, no TLS at all).
    pub fn raw(
        port: u16,
        bytes: &[u8],
        pin: Option<[u8; 32]>,
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pin {
                sha256: pin,
                seen: seen.clone(),
                provider,
            }))
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(bytes).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => {}
            // hyper closes without close_notify at times: what came before counts.
            Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.to_string()),
        }
        let cert = seen.lock().unwrap().clone();
        Ok((out, cert))
    }

    /// One request over HTTPS (as [`super::request`]), trusting only `pin`.
    pub fn request(
        port: u16,
        pin: [u8; 32],
        method: &str,
        path: &str,
        extra: &[&str],
        body: &str,
    ) -> super::Reply {
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
        let (bytes, _) = raw(port, req.as_bytes(), Some(pin)).expect("the page answers over HTTPS");
        super::parse(&bytes)
    }

    /// The certificate the page on `port` serves (DER).
    pub fn served_certificate(port: u16) -> Vec<u8> {
        let (_, cert) = raw(
            port,
            b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            None,
        )
        .expect("a TLS handshake");
        cert
    }
}
