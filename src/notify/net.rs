//! Connections to receivers: TCP with a timeout, then TLS (rustls, the certificate verified
//! against the system's CA file or a configured one) when the URL asks for it.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The system's CA bundle (Debian's ca-certificates).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Longest wait for a connection, a TLS handshake, or a whole exchange with a receiver.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

pub trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A receiver's stream: plain or TLS.
pub type Conn = Box<dyn Io>;

/// Why a delivery failed, kept apart: the receiver could not be reached (retry later), or
/// it answered with a refusal (what it said).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Connect, TLS, a timeout, a broken connection.
    Transport(String),
    /// The receiver answered and refused (HTTP status, SMTP or MQTT code): its answer.
    Refused(String),
    /// Our configuration cannot work (a URL, a CA file).
    Config(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transport(e) => write!(f, "cannot reach the receiver: {e}"),
            SendError::Refused(e) => write!(f, "the receiver refused: {e}"),
            SendError::Config(e) => write!(f, "{e}"),
        }
    }
}

/// Opens TCP to `host:port` within [`CONNECT_TIMEOUT`].
pub async fn tcp(host: &str, port: u16) -> Result<TcpStream, SendError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(SendError::Transport(format!("{host}:{port}: {e}"))),
        Err(_) => Err(SendError::Transport(format!(
            "{host}:{port}: no connection within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Connects, and with `tls` runs the handshake, verifying the certificate for `host` against
/// `ca_file` (or the system's CA file).
pub async fn connect(
    host: &str,
    port: u16,
    tls: bool,
    ca_file: Option<&str>,
) -> Result<Conn, SendError> {
    let s = tcp(host, port).await?;
    if !tls {
        return Ok(Box::new(s));
    }
    start_tls(s, host, ca_file).await
}

#[cfg(feature = "tls")]
pub async fn start_tls<S: Io + 'static>(
    s: S,
    host: &str,
    ca_file: Option<&str>,
) -> Result<Conn, SendError> {
    use rustls::pki_types::ServerName;
    use std::sync::Arc;
    let ca = ca_file.unwrap_or(SYSTEM_CA_FILE);
    let crate::upsd::tls::Trust::Roots(certs) =
        crate::upsd::tls::roots_from_file(Path::new(ca)).map_err(SendError::Config)?
    else {
        return Err(SendError::Config(format!("{ca}: no certificate")));
    };
    let mut roots = rustls::RootCertStore::empty();
    let (_, bad) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(SendError::Config(format!(
            "{ca}: none of its {bad} certificate(s) can be used"
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        SendError::Config(format!(
            "`{host}` cannot be checked against a certificate: {e}"
        ))
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, s)).await {
        Ok(Ok(t)) => Ok(Box::new(t)),
        Ok(Err(e)) => Err(SendError::Transport(format!(
            "TLS with {host} failed: {e} (CA file {ca})"
        ))),
        Err(_) => Err(SendError::Transport(format!(
            "TLS with {host}: no handshake within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(not(feature = "tls"))]
pub async fn start_tls<S: Io + 'static>(
    _s: S,
    _host: &str,
    _ca_file: Option<&str>,
) -> Result<Conn, SendError> {
    let _ = Path::new(SYSTEM_CA_FILE);
    Err(SendError::Config(
        "this build has no TLS (the `tls` feature)".into(),
    ))
}

/// A receiver's address as a URL gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path and query, at least `/`.
    pub path: String,
    /// `user:password@` in the URL, if any.
    pub userinfo: Option<(String, String)>,
}

/// Parses `scheme://[user:pass@]host[:port][/path]` for the schemes given with their default
/// port and whether they use TLS.
pub fn parse_url(s: &str, schemes: &[(&str, u16, bool)]) -> Result<Url, String> {
    let bad = |why: &str| format!("`{}` is not a usable URL: {why}", redact(s));
    if s.len() > 1024 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("up to 1024 characters without spaces"));
    }
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme://"))?;
    let scheme = scheme.to_ascii_lowercase();
    let &(_, default_port, tls) =
        schemes
            .iter()
            .find(|(n, _, _)| *n == scheme)
            .ok_or_else(|| {
                let names: Vec<&str> = schemes.iter().map(|(n, _, _)| *n).collect();
                bad(&format!("the scheme is {}", names.join(" or ")))
            })?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            (Some((user.to_string(), pass.to_string())), h)
        }
        None => (None, authority),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| bad("an unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| bad("the port is a number from 1 to 65535"))?,
            None if after.is_empty() => default_port,
            None => return Err(bad("text after the host")),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| bad("the port is a number from 1 to 65535"))?,
            ),
            None => (hostport.to_string(), default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(bad("no host, or port 0"));
    }
    Ok(Url {
        scheme,
        tls,
        host,
        port,
        path,
        userinfo,
    })
}

/// A URL as it may be shown: a password in it replaced.
pub fn redact(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(a), Some(b)) if b > a => {
            let user_end = s[a + 3..b].find(':').map_or(b, |i| a + 3 + i);
            if user_end < b {
                format!("{}:********{}", &s[..user_end], &s[b..])
            } else {
                s.to_string()
            }
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: &[(&str, u16, bool)] = &[("http", 80, false), ("https", 443, true)];

    #[test]
    fn notify_urls() {
        let u = parse_url("https://ntfy.sh/ups-alerts", HTTP).unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "ntfy.sh", 443, "/ups-alerts")
        );
        let u = parse_url("http://10.0.0.2:8123?x=1", HTTP).unwrap();
        assert_eq!((u.port, u.path.as_str()), (8123, "/?x=1"));
        let u = parse_url("mqtts://ha:s3cret@[::1]:8883", &[("mqtts", 8883, true)]).unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.userinfo, Some(("ha".into(), "s3cret".into())));
        for (bad, why) in [
            ("ftp://x/", "the scheme is http or https"),
            ("http//x", "no scheme"),
            ("http://x:99999/", "port"),
            ("http:///p", "no host"),
            ("http://a b/", "without spaces"),
        ] {
            let e = parse_url(bad, HTTP).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = parse_url("gopher://u:hunter2@h/", HTTP).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(redact("mqtt://u:pw@h:1"), "mqtt://u:********@h:1");
        assert_eq!(redact("mqtt://u@h:1"), "mqtt://u@h:1");
        assert_eq!(redact("http://h/a@b"), "http://h/a@b");
    }
}
