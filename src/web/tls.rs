//! HTTPS for the page on a non-loopback `web_listen`: the page's own self-signed certificate
//! (ECDSA P-256, made at the first start and kept next to the settings), its SHA-256
//! fingerprint for the user to compare in the browser, the addresses a person can open, and
//! the answer to plain HTTP sent to the HTTPS port (a redirect).
//!
//! Pure parts: the certificate's DER ([`certificate`]), PEM, the fingerprint, the machine's
//! addresses from `/proc/net` text ([`parse_fib_trie`], [`parse_if_inet6`]), the URLs
//! ([`urls`]) and the plain-HTTP answer ([`plain_http_answer`]). The edges: [`load_or_make`]
//! (the key file) and [`Names::of_this_machine`].
//!
//! The certificate is written by hand (about 150 lines of DER) rather than with `rcgen`: it is
//! one fixed shape, signed by ring, which the binary already has; `rcgen` would add `yasna`
//! and `time` for what this file does.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// At most this many addresses go into the certificate and the log line.
pub const MAX_ADDRESSES: usize = 16;

/// The file holding the page's key and certificate (PEM), next to the settings.
pub fn key_path(settings: &Path) -> PathBuf {
    super::setup_code_path(settings).with_file_name("web-tls.pem")
}

/// Where a damaged key file is kept when a new one is made.
pub fn damaged_key_path(settings: &Path) -> PathBuf {
    super::setup_code_path(settings).with_file_name("web-tls.pem.damaged")
}

/// What the page is reached as: the machine's name and its addresses (loopback ones
/// included; [`urls`] leaves them out when it can).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

impl Names {
    /// This machine's host name (the kernel's) and addresses (`/proc/net/fib_trie`,
    /// `/proc/net/if_inet6`); what cannot be read is left out.
    pub fn of_this_machine() -> Names {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let host = read("/proc/sys/kernel/hostname")
            .trim()
            .to_ascii_lowercase();
        let mut addrs: Vec<IpAddr> = parse_fib_trie(&read("/proc/net/fib_trie"))
            .into_iter()
            .map(IpAddr::V4)
            .collect();
        for (a, scope) in parse_if_inet6(&read("/proc/net/if_inet6")) {
            // A link-local address needs its interface in a URL, which browsers do not take.
            if scope != 0x20 {
                addrs.push(IpAddr::V6(a));
            }
        }
        addrs.dedup();
        addrs.truncate(MAX_ADDRESSES);
        Names { host, addrs }
    }

    /// The DNS names the certificate is for: the host name, `NAME.local`, `localhost`.
    pub fn dns(&self) -> Vec<String> {
        let mut out = Vec::new();
        if dns_ok(&self.host) {
            out.push(self.host.clone());
            if !self.host.ends_with(".local") {
                out.push(format!("{}.local", self.host));
            }
        }
        out.push("localhost".into());
        out
    }
}

/// A name a certificate's `dNSName` may carry: letters, digits, `-` and `.`, not empty.
fn dns_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The local IPv4 addresses in `/proc/net/fib_trie` (each `/32 host LOCAL` entry), in order,
/// once each.
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last.take() {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// The IPv6 addresses in `/proc/net/if_inet6`, with their scope (0 global, 0x10 host, 0x20
/// link), in order, once each.
pub fn parse_if_inet6(text: &str) -> Vec<(Ipv6Addr, u8)> {
    let mut out: Vec<(Ipv6Addr, u8)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[0].len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(f[0], 16) else {
            continue;
        };
        let Ok(scope) = u8::from_str_radix(f[3], 16) else {
            continue;
        };
        let a = Ipv6Addr::from(bits);
        if !out.iter().any(|(x, _)| *x == a) {
            out.push((a, scope));
        }
    }
    out
}

/// The addresses a person can open for `path` on a page listening on `listen`: the host
/// name's `.local` and each non-loopback address when it listens on every address (IPv4 only
/// for 0.0.0.0), or the one address it listens on; never `0.0.0.0`. Loopback only when there
/// is nothing else.
pub fn urls(listen: SocketAddr, https: bool, names: &Names, path: &str) -> Vec<String> {
    let scheme = if https { "https" } else { "http" };
    let port = listen.port();
    let at = |host: &str| format!("{scheme}://{host}:{port}{path}");
    let ip_url = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => at(&a.to_string()),
        IpAddr::V6(a) => at(&format!("[{a}]")),
    };
    let ip = listen.ip();
    if ip.is_loopback() {
        return vec![ip_url(&ip)];
    }
    let mut out = Vec::new();
    if dns_ok(&names.host) && names.host != "localhost" {
        let local = if names.host.ends_with(".local") {
            names.host.clone()
        } else {
            format!("{}.local", names.host)
        };
        out.push(at(&local));
    }
    if ip.is_unspecified() {
        for a in &names.addrs {
            let family_ok = ip.is_ipv6() || a.is_ipv4();
            if family_ok && !a.is_loopback() && !a.is_unspecified() {
                out.push(ip_url(a));
            }
        }
    } else {
        out.push(ip_url(&ip));
    }
    if out.is_empty() {
        out.push(ip_url(&if ip.is_ipv6() {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }));
    }
    out
}

/// The SHA-256 of a certificate (DER) as browsers show it: upper-case hex pairs and colons.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut s = String::with_capacity(95);
    for (i, b) in d.as_ref().iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

// --- DER -----------------------------------------------------------------------------------

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = Vec::with_capacity(n + 4);
    out.push(tag);
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        // Everything here is far below 64 KiB.
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

const OID_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0A];
const OID_SAN: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x11];
const OID_BASIC: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x13];
const OID_KEY_USAGE: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x0F];
const OID_EXT_KEY_USAGE: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x25];
const OID_SERVER_AUTH: &[u8] = &[0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let flag: &[u8] = if critical { &[0x01, 0x01, 0xFF] } else { &[] };
    seq(&[oid, flag, &der(0x04, value)])
}

/// The to-be-signed part of the page's certificate: version 3, `serial` (made positive),
/// signed with ECDSA P-256 SHA-256, subject and issuer `CN=NAME, O=Power Snitch`, valid from
/// 1970 (the board has no clock of its own: its time may be early at the first start) to
/// 9999 (RFC 5280's "no expiry"), for a server (CA false, digital signature, server auth),
/// for the names and addresses given (at most [`MAX_ADDRESSES`]).
pub fn tbs_certificate(public_key: &[u8], serial: [u8; 16], names: &Names) -> Vec<u8> {
    let mut serial = serial;
    serial[0] = (serial[0] & 0x7F) | 0x40;
    let alg = seq(&[OID_ECDSA_SHA256]);
    let cn = names
        .dns()
        .into_iter()
        .next()
        .unwrap_or_else(|| "localhost".into());
    let name = seq(&[
        &der(0x31, &seq(&[OID_CN, &der(0x0C, cn.as_bytes())])),
        &der(0x31, &seq(&[OID_O, &der(0x0C, b"Power Snitch")])),
    ]);
    let validity = seq(&[&der(0x17, b"700101000000Z"), &der(0x18, b"99991231235959Z")]);
    let mut key_bits = vec![0u8];
    key_bits.extend_from_slice(public_key);
    let spki = seq(&[&seq(&[OID_EC_PUBLIC_KEY, OID_P256]), &der(0x03, &key_bits)]);
    let mut san = Vec::new();
    for n in names.dns() {
        san.extend(der(0x82, n.as_bytes()));
    }
    let mut addrs = names.addrs.clone();
    for lo in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        if !addrs.contains(&lo) {
            addrs.push(lo);
        }
    }
    for a in addrs.iter().take(MAX_ADDRESSES + 2) {
        match a {
            IpAddr::V4(v4) => san.extend(der(0x87, &v4.octets())),
            IpAddr::V6(v6) => san.extend(der(0x87, &v6.octets())),
        }
    }
    let extensions = seq(&[
        &extension(OID_BASIC, true, &seq(&[])),
        &extension(OID_KEY_USAGE, true, &[0x03, 0x02, 0x07, 0x80]),
        &extension(OID_EXT_KEY_USAGE, false, &seq(&[OID_SERVER_AUTH])),
        &extension(OID_SAN, false, &der(0x30, &san)),
    ]);
    seq(&[
        &[0xA0, 0x03, 0x02, 0x01, 0x02],
        &der(0x02, &serial),
        &alg,
        &name,
        &validity,
        &name,
        &spki,
        &der(0xA3, &extensions),
    ])
}

/// The whole certificate: `tbs` with its ECDSA signature (DER, as ring makes it).
pub fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut sig_bits = vec![0u8];
    sig_bits.extend_from_slice(signature);
    seq(&[tbs, &seq(&[OID_ECDSA_SHA256]), &der(0x03, &sig_bits)])
}

// --- PEM -----------------------------------------------------------------------------------

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

// --- the key file ------------------------------------------------------------------------

/// The page's key and certificate, ready to serve.
pub struct Identity {
    pub config: Arc<rustls::ServerConfig>,
    /// The end-entity certificate (DER).
    pub certificate: Vec<u8>,
    /// [`fingerprint`] of it.
    pub fingerprint: String,
}

/// rustls' server configuration for a PEM file's key and certificates; why not.
pub fn identity_from_pem(pem: &[u8]) -> Result<Identity, String> {
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("a certificate that cannot be read: {e}"))?;
    let Some(first) = chain.first() else {
        return Err("no certificate".into());
    };
    let certificate = first.as_ref().to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the key and the certificate do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Resumed sessions: a few browsers, not a growing table.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(32);
    Ok(Identity {
        fingerprint: fingerprint(&certificate),
        certificate,
        config: Arc::new(config),
    })
}

/// A new key and self-signed certificate for `names`, as PEM (key first).
pub fn make_pem(names: &Names) -> Result<String, String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "no randomness for a key".to_string())?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "the new key cannot be read back".to_string())?;
    let serial = super::random::<16>().ok_or("no randomness for a serial number")?;
    let tbs = tbs_certificate(pair.public_key().as_ref(), serial, names);
    let sig = pair
        .sign(&rng, &tbs)
        .map_err(|_| "the certificate cannot be signed".to_string())?;
    let cert = certificate(&tbs, sig.as_ref());
    Ok(format!(
        "{}{}",
        pem("PRIVATE KEY", pkcs8.as_ref()),
        pem("CERTIFICATE", &cert)
    ))
}

/// Writes `bytes` to `path` with mode 0600, whole or not at all: a temporary file in the
/// same directory, synced, renamed over `path`, the directory synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The page's identity from its key file next to the settings, or a new one made and written
/// there (0600) when there is none, or it cannot be read or used (the old file kept as
/// `web-tls.pem.damaged`, said in a log line). Files of the user's own (a key and a
/// certificate chain in PEM) are used as they are.
pub fn load_or_make(settings: &Path, names: &Names) -> Result<Identity, String> {
    let path = key_path(settings);
    let why = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() > 64 * 1024 => "it is over 64 KiB".to_string(),
        Ok(bytes) => match identity_from_pem(&bytes) {
            Ok(id) => return Ok(id),
            Err(e) => e,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => e.to_string(),
    };
    if !why.is_empty() {
        let kept = damaged_key_path(settings);
        let _ = std::fs::rename(&path, &kept);
        log::error!(
            "web: the page's key file {} cannot be used ({why}): a new key and certificate are made (the old file is kept as {}); the certificate's fingerprint changes",
            path.display(),
            kept.display()
        );
    }
    let pem = make_pem(names)?;
    write_private(&path, pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let id = identity_from_pem(pem.as_bytes())?;
    log::info!(
        "web: made the page's key and self-signed certificate {} (SHA-256 {})",
        path.display(),
        id.fingerprint
    );
    Ok(id)
}

// --- plain HTTP on the HTTPS port ----------------------------------------------------------

/// The whole answer to a plain HTTP request head sent to the HTTPS port: a redirect to the
/// same path over HTTPS when the `Host` is one of the page's names (`host_ok`), else a
/// refusal saying to use HTTPS. Nothing of the request is served.
pub fn plain_http_answer(head: &[u8], host_ok: &dyn Fn(&str) -> bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/");
    let plain = |s: &str| s.bytes().all(|b| (0x21..=0x7E).contains(&b));
    let target = if target.starts_with('/')
        && !target.starts_with("//")
        && target.len() <= 1024
        && plain(target)
    {
        target
    } else {
        "/"
    };
    let host = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("host").then(|| v.trim())
        })
        .unwrap_or("");
    let host_plain = !host.is_empty()
        && host.len() <= 255
        && plain(host)
        && !host.contains(['/', '\\', '@', '?', '#']);
    let (status, location, body) = if host_plain && host_ok(host) {
        let url = format!("https://{host}{target}");
        (
            "301 Moved Permanently",
            Some(url.clone()),
            format!("This page is served over HTTPS: {url}\n"),
        )
    } else {
        (
            "400 Bad Request",
            None,
            "This port speaks HTTPS: open the page with https://\n".to_string(),
        )
    };
    let mut out = format!("HTTP/1.1 {status}\r\n");
    if let Some(l) = location {
        let _ = write!(out, "location: {l}\r\n");
    }
    let _ = write!(
        out,
        "content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            host: "power-snitch-44d4".into(),
            addrs: vec![
                "127.0.0.1".parse().unwrap(),
                "192.0.2.2".parse().unwrap(),
                "::1".parse().unwrap(),
                "fd00::2".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn web_tls_addresses_from_proc_net() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.0\n           /8 host LOCAL\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 192.0.2.2\n        /32 host LOCAL\n     |-- 192.0.2.255\n        /32 link BROADCAST\nLocal:\n     |-- 192.0.2.2\n        /32 host LOCAL\n";
        assert_eq!(
            parse_fib_trie(fib),
            [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000002 04 40 00 82     eth0\nfe8000000000000000fc00fffe000001 04 40 20 80     eth0\nnonsense\n";
        let got = parse_if_inet6(v6);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], ("fd00::2".parse().unwrap(), 0));
        assert_eq!(got[2].1, 0x20);
        assert!(parse_fib_trie("").is_empty() && parse_if_inet6("x y").is_empty());
    }

    #[test]
    fn web_tls_urls_a_person_can_open() {
        let n = names();
        let any4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            urls(any4, true, &n, "/login"),
            [
                "https://power-snitch-44d4.local:8080/login",
                "https://192.0.2.2:8080/login"
            ]
        );
        let any6: SocketAddr = "[::]:8443".parse().unwrap();
        assert_eq!(
            urls(any6, true, &n, "/"),
            [
                "https://power-snitch-44d4.local:8443/",
                "https://192.0.2.2:8443/",
                "https://[fd00::2]:8443/"
            ]
        );
        let one: SocketAddr = "192.0.2.2:80".parse().unwrap();
        assert_eq!(
            urls(one, true, &n, "/login"),
            [
                "https://power-snitch-44d4.local:80/login",
                "https://192.0.2.2:80/login"
            ]
        );
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            urls(lo, false, &n, "/login"),
            ["http://127.0.0.1:8080/login"]
        );
        let bare = Names::default();
        assert_eq!(urls(any4, true, &bare, "/"), ["https://127.0.0.1:8080/"]);
        for u in urls(any4, true, &n, "/")
            .iter()
            .chain(&urls(any6, true, &n, "/"))
        {
            assert!(!u.contains("0.0.0.0") && !u.contains("[::]"), "{u}");
        }
    }

    #[test]
    fn web_tls_a_made_certificate_is_what_rustls_accepts_for_its_key() {
        let pem = make_pem(&names()).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let id = identity_from_pem(pem.as_bytes()).unwrap();
        assert_eq!(id.fingerprint.len(), 95);
        assert_eq!(id.fingerprint, fingerprint(&id.certificate));
        // The names are in it, in the DER of a dNSName and an iPAddress.
        let has = |b: &[u8]| id.certificate.windows(b.len()).any(|w| w == b);
        assert!(has(b"power-snitch-44d4.local"));
        assert!(has(&[0x87, 4, 192, 0, 2, 2]));
        assert!(has(b"localhost"));
        // Another key's certificate with this key is refused; so is damage.
        let other = make_pem(&names()).unwrap();
        let (key, _) = pem.split_at(pem.find("-----BEGIN CERTIFICATE").unwrap());
        let (_, cert) = other.split_at(other.find("-----BEGIN CERTIFICATE").unwrap());
        let mixed = format!("{key}{cert}");
        assert!(identity_from_pem(mixed.as_bytes())
            .err()
            .unwrap()
            .contains("do not go together"));
        assert!(identity_from_pem(b"garbage").is_err());
        assert!(identity_from_pem(key.as_bytes()).is_err(), "no certificate");
    }

    #[test]
    fn web_tls_base64_and_der_lengths() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(der(0x04, &[7; 3])[..2], [0x04, 3]);
        assert_eq!(der(0x04, &[7; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[7; 300])[..4], [0x04, 0x82, 1, 44]);
    }

    #[test]
    fn web_tls_plain_http_is_redirected_to_https_or_refused() {
        let ok = |h: &str| h.starts_with("pi.local") || h.starts_with("192.0.2.2");
        let answer =
            |head: &str| String::from_utf8(plain_http_answer(head.as_bytes(), &ok)).unwrap();
        let a = answer("GET /login?next=%2Fsetup HTTP/1.1\r\nHost: pi.local:8080\r\n\r\n");
        assert!(a.starts_with("HTTP/1.1 301 "), "{a}");
        assert!(
            a.contains("\r\nlocation: https://pi.local:8080/login?next=%2Fsetup\r\n"),
            "{a}"
        );
        let a = answer("POST //evil.example/x HTTP/1.1\r\nhost: 192.0.2.2:8080\r\n\r\n");
        assert!(a.contains("location: https://192.0.2.2:8080/\r\n"), "{a}");
        for bad in [
            "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: pi.local@evil.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: pi.local\x0bx\r\n\r\n",
            "\r\n\r\n",
        ] {
            let a = answer(bad);
            assert!(
                a.starts_with("HTTP/1.1 400 ") && !a.contains("location"),
                "{bad:?}: {a}"
            );
        }
        let a = answer("GET /a\x01b HTTP/1.1\r\nHost: pi.local\r\n\r\n");
        assert!(a.contains("location: https://pi.local/\r\n"), "{a}");
    }
}
