//! The tokio client at the edge: one connection to upsd, bounded reads with a deadline per
//! request, and a client that reconnects and retries reads per the retry policy.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, timeout_at, Instant};

use super::error::{ErrorKind, NutError};
use super::proto::{line_reply, ListReader, Request, Shape, MAX_LINE};
use super::target::Target;

/// Timeouts and the retry policy (the settings' `nut_retry_count`, `nut_retry_delay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry_count: u32,
    pub retry_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            retry_count: 3,
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// A byte stream to upsd. TCP turns on quick ACKs before each read: upsd writes each reply
/// line separately and Nagle holds the next one until our ACK, which Linux delays by 40 ms.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    fn before_read(&self) {}
}

impl Transport for TcpStream {
    fn before_read(&self) {
        let _ = socket2::SockRef::from(self).set_tcp_quickack(true);
    }
}

impl Transport for tokio::io::DuplexStream {}

/// What a request got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Line(Vec<String>),
    List(Vec<Vec<String>>),
    Nothing,
}

/// Codes of failures on our side of the wire (as opposed to upsd's `ERR` answers).
const TRANSPORT: &[&str] = &[
    "connect-refused",
    "connect-failed",
    "connect-timeout",
    "resolve",
    "timeout",
    "closed",
    "io",
];

/// Did the connection itself fail (so reconnecting may help)?
pub fn is_transport(e: &NutError) -> bool {
    TRANSPORT.contains(&e.code.as_str())
}

/// One connection to upsd.
pub struct Connection<S> {
    io: BufReader<S>,
    timeout: Duration,
    /// A reply was cut short or too long: what comes next cannot be trusted.
    broken: bool,
}

impl<S: Transport> Connection<S> {
    pub fn new(stream: S, request_timeout: Duration) -> Self {
        Connection {
            io: BufReader::new(stream),
            timeout: request_timeout,
            broken: false,
        }
    }

    /// Sends one request and reads its whole reply, within the request timeout.
    pub async fn request(&mut self, req: &Request) -> Result<Reply, NutError> {
        if self.broken {
            return Err(NutError::new(
                ErrorKind::Connection,
                "closed",
                "the connection was abandoned after a bad reply",
            ));
        }
        let line = req.encode()?;
        let deadline = Instant::now() + self.timeout;
        let result = timeout_at(deadline, self.exchange(req, line.as_bytes())).await;
        let result = result.unwrap_or_else(|_| {
            Err(NutError::new(
                ErrorKind::Connection,
                "timeout",
                format!(
                    "{}: no complete reply within {} ms",
                    req.name(),
                    self.timeout.as_millis()
                ),
            )
            .hint("upsd may be overloaded, or this is not upsd"))
        });
        if let Err(e) = &result {
            if is_transport(e) || e.kind == ErrorKind::Protocol {
                self.broken = true;
            }
        }
        result
    }

    async fn exchange(&mut self, req: &Request, line: &[u8]) -> Result<Reply, NutError> {
        let io_err = |e: std::io::Error| {
            NutError::new(ErrorKind::Connection, "io", format!("{}: {e}", req.name()))
        };
        self.io.get_mut().write_all(line).await.map_err(io_err)?;
        match req.shape() {
            Shape::None => Ok(Reply::Nothing),
            Shape::Line => {
                let l = self.read_line(req).await?;
                line_reply(req, &l).map(Reply::Line)
            }
            Shape::List(what) => {
                let mut list = ListReader::new(what);
                loop {
                    let l = self.read_line(req).await?;
                    if list.feed(req, &l)? {
                        return Ok(Reply::List(list.items));
                    }
                }
            }
        }
    }

    /// One line, without its newline; at most [`MAX_LINE`] bytes.
    async fn read_line(&mut self, req: &Request) -> Result<Vec<u8>, NutError> {
        let mut line = Vec::new();
        loop {
            self.io.get_ref().before_read();
            let chunk = self.io.fill_buf().await.map_err(|e| {
                NutError::new(ErrorKind::Connection, "io", format!("{}: {e}", req.name()))
            })?;
            if chunk.is_empty() {
                return Err(NutError::new(
                    ErrorKind::Connection,
                    "closed",
                    format!("{}: upsd closed the connection", req.name()),
                )
                .hint(
                    "upsd drops idle clients after 60 s, and stops on SIGTERM; check that it runs",
                ));
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE + 1 - line.len();
            line.extend_from_slice(&chunk[..take.min(room)]);
            self.io.consume(take);
            if line.len() > MAX_LINE {
                return Err(NutError::new(
                    ErrorKind::Protocol,
                    "line-too-long",
                    format!("{}: a reply line longer than {MAX_LINE} bytes", req.name()),
                )
                .hint("upsd never sends such lines: is this port a NUT upsd?"));
            }
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }
}

/// Opens a TCP connection to upsd, trying each address of the host within the connect timeout.
pub async fn connect(target: &Target, opts: &Options) -> Result<Connection<TcpStream>, NutError> {
    let addr = target.address();
    let addrs: Vec<_> = match timeout(opts.connect_timeout, tokio::net::lookup_host(&addr)).await {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            return Err(NutError::new(
                ErrorKind::Connection,
                "resolve",
                format!("cannot resolve {}: {e}", target.host),
            )
            .hint("check the host name"))
        }
        Err(_) => {
            return Err(NutError::new(
                ErrorKind::Connection,
                "resolve",
                format!("resolving {} timed out", target.host),
            ))
        }
    };
    let mut last = NutError::new(
        ErrorKind::Connection,
        "resolve",
        format!("{} has no address", target.host),
    );
    for a in addrs {
        match timeout(opts.connect_timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(Connection::new(s, opts.request_timeout));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = NutError::new(
                    ErrorKind::Connection,
                    "connect-refused",
                    format!("{a} refused the connection"),
                )
                .hint(format!(
                    "is upsd running, and does upsd.conf LISTEN on {} port {}?",
                    target.host, target.port
                ));
            }
            Ok(Err(e)) => {
                last = NutError::new(
                    ErrorKind::Connection,
                    "connect-failed",
                    format!("cannot connect to {a}: {e}"),
                )
                .hint("check the network and any firewall");
            }
            Err(_) => {
                last = NutError::new(
                    ErrorKind::Connection,
                    "connect-timeout",
                    format!(
                        "{a} did not answer within {} ms",
                        opts.connect_timeout.as_millis()
                    ),
                )
                .hint("check the address, the network and any firewall");
            }
        }
    }
    Err(last)
}

/// A client for one upsd: connects on first use, and after a lost connection reconnects and
/// retries reads (never writes: a SET or INSTCMD is not sent twice).
pub struct Client {
    pub target: Target,
    pub opts: Options,
    conn: Option<Connection<TcpStream>>,
}

impl Client {
    pub fn new(target: Target, opts: Options) -> Self {
        Client {
            target,
            opts,
            conn: None,
        }
    }

    /// Connects now, with the retry policy.
    pub async fn connect(&mut self) -> Result<(), NutError> {
        let mut attempt = 0;
        loop {
            match connect(&self.target, &self.opts).await {
                Ok(c) => {
                    self.conn = Some(c);
                    return Ok(());
                }
                Err(e) if attempt < self.opts.retry_count => {
                    log::debug!("{e}; retrying in {} ms", self.opts.retry_delay.as_millis());
                    attempt += 1;
                    sleep(self.opts.retry_delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    pub async fn request(&mut self, req: &Request) -> Result<Reply, NutError> {
        let mut attempt = 0;
        loop {
            if self.conn.is_none() {
                self.connect().await?;
            }
            let conn = self.conn.as_mut().expect("connected above");
            match conn.request(req).await {
                Err(e) if is_transport(&e) => {
                    self.conn = None;
                    if !req.is_read() || attempt >= self.opts.retry_count {
                        return Err(e);
                    }
                    log::debug!("{e}; reconnecting");
                    attempt += 1;
                    if attempt > 1 {
                        sleep(self.opts.retry_delay).await;
                    }
                }
                other => return other,
            }
        }
    }

    /// `LIST VAR`, as (name, value) pairs in upsd's order.
    pub async fn vars(&mut self, ups: &str) -> Result<Vec<(String, String)>, NutError> {
        match self.request(&Request::ListVar(ups.into())).await? {
            Reply::List(items) => Ok(items
                .into_iter()
                .filter_map(|mut i| {
                    (i.len() >= 2).then(|| (std::mem::take(&mut i[0]), std::mem::take(&mut i[1])))
                })
                .collect()),
            _ => Err(NutError::new(
                ErrorKind::Protocol,
                "bad-reply",
                "LIST VAR: not a list",
            )),
        }
    }

    /// `LIST UPS`, as (name, description) pairs.
    pub async fn list_ups(&mut self) -> Result<Vec<(String, String)>, NutError> {
        match self.request(&Request::ListUps).await? {
            Reply::List(items) => Ok(items
                .into_iter()
                .map(|mut i| {
                    let desc = i.get_mut(1).map(std::mem::take).unwrap_or_default();
                    (i.into_iter().next().unwrap_or_default(), desc)
                })
                .collect()),
            _ => Err(NutError::new(
                ErrorKind::Protocol,
                "bad-reply",
                "LIST UPS: not a list",
            )),
        }
    }
}
