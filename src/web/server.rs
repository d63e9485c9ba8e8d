//! **The edge**: accepts TCP connections and speaks HTTP/1.1 through hyper, within bounds — at
//! most [`MAX_CONNECTIONS`] at once, headers within [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`]
//! (at most [`MAX_HEADERS`] of them), a body of at most [`MAX_BODY`] bytes, and a connection
//! closed after [`CONNECTION_LIFETIME`] whatever it does. Everything else is [`App::handle`].

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::app::App;
use super::http::{Request, Response, SECURITY_HEADERS};

pub const MAX_CONNECTIONS: usize = 32;
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

async fn serve_one(
    app: &App,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let mut r = Request {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        cookie: header(&req, "cookie"),
        content_type: header(&req, "content-type"),
        csrf_header: header(&req, "x-csrf-token"),
        origin: header(&req, "origin"),
        host: header(&req, "host"),
        body: Vec::new(),
    };
    if r.method == "POST" {
        let body = Limited::new(req.into_body(), MAX_BODY);
        match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
            Ok(Ok(b)) => r.body = b.to_bytes().to_vec(),
            Ok(Err(_)) => {
                return Ok(to_hyper(Response::text(
                    413,
                    format!("a request body is at most {MAX_BODY} bytes\n"),
                )))
            }
            Err(_) => return Ok(to_hyper(Response::text(408, "the body took too long\n"))),
        }
    }
    Ok(to_hyper(app.handle(r).await))
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, app: Rc<App>) {
    let active = Rc::new(Cell::new(0usize));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let builder = Rc::new(builder);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("web: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if active.get() >= MAX_CONNECTIONS {
            // Busy: a short answer, then close.
            tokio::task::spawn_local(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\nconnection: close\r\nretry-after: 1\r\n\r\nbusy\n"),
                )
                .await;
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        active.set(active.get() + 1);
        let (app, active, builder) = (app.clone(), active.clone(), builder.clone());
        tokio::task::spawn_local(async move {
            let service = service_fn(|req| {
                let app = app.clone();
                async move { serve_one(&app, req).await }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            active.set(active.get() - 1);
        });
    }
}
