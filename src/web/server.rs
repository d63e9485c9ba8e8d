//! **The edge**: accepts TCP connections and speaks HTTP/1.1 through hyper, within bounds — at
//! most [`MAX_CONNECTIONS`] at once and [`MAX_PER_CLIENT`] from one client (so one address
//! holding sockets open leaves room for others), headers within [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`]
//! (at most [`MAX_HEADERS`] of them), a body of at most [`MAX_BODY`] bytes (a larger
//! `Content-Length` is refused before any of it is read), and a connection
//! closed after [`CONNECTION_LIFETIME`] whatever it does. Everything else is [`App::handle`].
//!
//! With TLS (a non-loopback `web_listen`), each connection's first byte decides: a TLS
//! handshake (0x16) is completed within [`HEADER_TIMEOUT`], anything else is read as a plain
//! HTTP head (at most [`MAX_HEADER_BYTES`], within the same time) and answered with a redirect
//! to HTTPS, never served. Both happen inside the connection's place under the limits above,
//! so a stalled handshake or plain HTTP holds one place for at most [`HEADER_TIMEOUT`]; the
//! session cookie is `Secure`.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::body::{Body, Bytes};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::app::App;
use super::auth::Client;
use super::http::{Request, Response, SECURITY_HEADERS};

pub const MAX_CONNECTIONS: usize = 32;
/// Connections one client (an IPv4 address, an IPv6 /64) may hold at once.
pub const MAX_PER_CLIENT: usize = 8;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole request head (hyper's read buffer; its smallest allowed value is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 48;
pub const MAX_BODY: usize = 64 * 1024;
/// Time to receive a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

fn header(req: &hyper::Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(4096)
        .collect()
}

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header("content-type", r.content_type);
    for (k, v) in SECURITY_HEADERS {
        b = b.header(*k, *v);
    }
    for (k, v) in r.headers {
        b = b.header(k, v);
    }
    b.body(Full::new(Bytes::from(r.body))).unwrap_or_else(|_| {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"bad response\n")));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

fn too_large() -> hyper::Response<Full<Bytes>> {
    let mut r = to_hyper(Response::text(
        413,
        format!("a request body is at most {MAX_BODY} bytes\n"),
    ));
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

async fn serve_one(
    app: &App,
    peer: IpAddr,
    tls: bool,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let mut r = Request {
        peer: Some(peer),
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        cookie: header(&req, "cookie"),
        content_type: header(&req, "content-type"),
        csrf_header: header(&req, "x-csrf-token"),
        origin: header(&req, "origin"),
        host: header(&req, "host"),
        authorization: header(&req, "authorization"),
        body: Vec::new(),
    };
    if r.method == "POST" {
        // A declared length over the limit is refused before waiting for any of it.
        if req.body().size_hint().lower() > MAX_BODY as u64 {
            return Ok(too_large());
        }
        let body = Limited::new(req.into_body(), MAX_BODY);
        match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
            Ok(Ok(b)) => r.body = b.to_bytes().to_vec(),
            Ok(Err(_)) => return Ok(too_large()),
            Err(_) => return Ok(to_hyper(Response::text(408, "the body took too long\n"))),
        }
    }
    let mut answer = app.handle(r).await;
    if tls {
        // The session cookie never goes back over plain HTTP.
        for (k, v) in &mut answer.headers {
            if *k == "set-cookie" {
                v.push_str("; Secure");
            }
        }
    }
    Ok(to_hyper(answer))
}

/// Connections open per client.
#[derive(Default)]
struct PerClient(Vec<(Client, usize)>);

impl PerClient {
    fn count(&self, c: Client) -> usize {
        self.0.iter().find(|(k, _)| *k == c).map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, c: Client) {
        match self.0.iter_mut().find(|(k, _)| *k == c) {
            Some((_, n)) => *n += 1,
            None => self.0.push((c, 1)),
        }
    }

    fn remove(&mut self, c: Client) {
        if let Some(i) = self.0.iter().position(|(k, _)| *k == c) {
            self.0[i].1 -= 1;
            if self.0[i].1 == 0 {
                self.0.swap_remove(i);
            }
        }
    }
}

/// Answers "busy" on a connection it will not serve, then closes it.
fn refuse_busy(stream: tokio::net::TcpStream) {
    tokio::task::spawn_local(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = stream;
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\nconnection: close\r\nretry-after: 1\r\n\r\nbusy\n"),
        )
        .await;
    });
}

/// HTTP/1.1 on one connection (plain TCP or TLS) until it ends.
async fn http<I>(builder: &http1::Builder, io: I, app: Rc<App>, peer: IpAddr, tls: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let service = service_fn(|req| {
        let app = app.clone();
        async move { serve_one(&app, peer, tls, req).await }
    });
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

/// A connection to the HTTPS port: the handshake, or a redirect for plain HTTP, within
/// [`HEADER_TIMEOUT`]; then HTTP/1.1 over TLS.
async fn https(
    builder: &http1::Builder,
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Rc<App>,
    peer: IpAddr,
) {
    let deadline = tokio::time::Instant::now() + HEADER_TIMEOUT;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => return plain_http(stream, &app, deadline).await,
        _ => return,
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => http(builder, s, app, peer, true).await,
        Ok(Err(e)) => log::debug!("web: TLS handshake with {peer} failed: {e}"),
        Err(_) => log::debug!("web: TLS handshake with {peer} timed out"),
    }
}

/// Plain HTTP sent to the HTTPS port: its head read (bounded), answered with a redirect to
/// HTTPS or a refusal, and the connection closed.
async fn plain_http(mut stream: TcpStream, app: &App, deadline: tokio::time::Instant) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while head.len() < MAX_HEADER_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let answer = super::tls::plain_http_answer(&head, &|h| app.serves_host(h));
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = stream.write_all(&answer).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Accepts connections until the task is dropped; with `tls`, HTTPS (see the module's
/// documentation).
pub async fn serve(
    listener: TcpListener,
    app: Rc<App>,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let active = Rc::new(Cell::new(0usize));
    let per_client = Rc::new(RefCell::new(PerClient::default()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let builder = Rc::new(builder);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok((s, a)) => (s, a.ip()),
            Err(e) => {
                log::warn!("web: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let client = Client::of(peer);
        if active.get() >= MAX_CONNECTIONS || per_client.borrow().count(client) >= MAX_PER_CLIENT {
            refuse_busy(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        active.set(active.get() + 1);
        per_client.borrow_mut().add(client);
        let (app, active, builder, per_client, acceptor) = (
            app.clone(),
            active.clone(),
            builder.clone(),
            per_client.clone(),
            acceptor.clone(),
        );
        tokio::task::spawn_local(async move {
            let conn = async {
                match acceptor {
                    Some(a) => https(&builder, stream, a, app, peer).await,
                    None => http(&builder, stream, app, peer, false).await,
                }
            };
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            active.set(active.get() - 1);
            per_client.borrow_mut().remove(client);
        });
    }
}
