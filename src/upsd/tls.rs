//! STARTTLS: how to trust upsd's certificate (a CA file, or a pinned SHA-256 of the
//! certificate) and the stream that is plain TCP or TLS over it.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::client::Transport;
#[cfg(feature = "tls")]
pub use with_tls::{handshake, sha256_hex};

/// When to encrypt (the settings' TLS policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Never send STARTTLS.
    Off,
    /// Use STARTTLS when upsd offers it and a trust anchor is configured.
    Auto,
    /// Refuse to go on without TLS.
    Required,
}

impl TlsMode {
    pub fn parse(s: &str) -> Result<TlsMode, String> {
        match s {
            "off" => Ok(TlsMode::Off),
            "auto" => Ok(TlsMode::Auto),
            "required" => Ok(TlsMode::Required),
            _ => Err(format!("the TLS mode is off, auto or required, not `{s}`")),
        }
    }
}

/// What upsd's certificate is checked against.
#[derive(Clone, Debug)]
pub enum Trust {
    /// None configured: TLS cannot be verified, so it is not used (and `required` fails).
    Nothing,
    /// Certificates of the authorities, or upsd's own self-signed certificate (DER).
    Roots(Vec<CertificateDer<'static>>),
    /// The SHA-256 of upsd's certificate (DER).
    Pinned([u8; 32]),
}

/// TLS settings for a connection.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub mode: TlsMode,
    pub trust: Trust,
    /// Send a password without TLS to a host that is not this machine.
    pub allow_plaintext_password: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            mode: TlsMode::Auto,
            trust: Trust::Nothing,
            allow_plaintext_password: false,
        }
    }
}

/// Reads a CA file (PEM).
pub fn roots_from_file(path: &Path) -> Result<Trust, String> {
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = certs
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(Trust::Roots(certs))
}

/// Parses a pin: 64 hex digits, colons allowed (as `openssl x509 -fingerprint -sha256` prints).
pub fn parse_pin(s: &str) -> Result<[u8; 32], String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("a SHA-256 pin is 64 hexadecimal digits, not `{s}`"));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The rustls side, built with the `tls` feature.
#[cfg(feature = "tls")]
mod with_tls {
    use std::fmt::Write as _;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use tokio::net::TcpStream;

    use super::{Stream, Trust};
    use crate::upsd::error::{ErrorKind, NutError, TransportFailure};

    pub fn sha256_hex(der: &[u8]) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut s = String::new();
        for b in d.as_ref() {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Accepts exactly one certificate: the pinned one (its signatures are still checked).
    #[derive(Debug)]
    struct Pinned {
        sha256: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let d = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
            if d.as_ref() == self.sha256 {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "upsd's certificate has SHA-256 {}, not the pinned one",
                    sha256_hex(end_entity.as_ref())
                )))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    fn config(trust: &Trust) -> Option<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .ok()?;
        let config = match trust {
            Trust::Nothing => return None,
            Trust::Roots(certs) => {
                let mut roots = RootCertStore::empty();
                for c in certs {
                    roots.add(c.clone()).ok()?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Pinned(sha256) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    sha256: *sha256,
                    provider,
                }))
                .with_no_client_auth(),
        };
        Some(Arc::new(config))
    }

    /// Runs the TLS handshake over a connection on which upsd has just answered `OK STARTTLS`.
    pub async fn handshake(tcp: TcpStream, host: &str, trust: &Trust) -> Result<Stream, NutError> {
        let config = config(trust).ok_or_else(|| {
            NutError::new(
                ErrorKind::Configuration,
                "tls-no-trust",
                "no CA file or pinned certificate to verify upsd with",
            )
        })?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            NutError::new(
                ErrorKind::Configuration,
                "tls-name",
                format!("`{host}` cannot be checked against a certificate: {e}"),
            )
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                NutError::transport(TransportFailure::TlsHandshake, format!("TLS with upsd failed: {e}"))
                    .hint("check the CA file or pin against upsd's certificate (CERTFILE, or CERTPATH + CERTIDENT in upsd.conf)")
            })?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// The connection to upsd: plain TCP, or TLS after STARTTLS.
pub enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.get_ref().0,
        }
    }

    /// The TLS version in use, if any.
    pub fn tls_version(&self) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.get_ref().1.protocol_version().map(|v| format!("{v:?}")),
        }
    }
}

impl Transport for Stream {
    fn before_read(&self) {
        self.tcp().before_read();
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pins() {
        let hex = "AB:".repeat(31) + "AB";
        assert_eq!(parse_pin(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_pin(&"00".repeat(32)).unwrap(), [0; 32]);
        assert!(parse_pin("abc").is_err());
        assert!(parse_pin(&"zz".repeat(32)).is_err());
    }
}
