//! The tokio client at the edge: one connection to upsd, bounded reads with a deadline per
//! request, and a client that reconnects and retries reads per the retry policy.
//!
//! **Architecture invariant:** a client given a deadline ([`Client::set_deadline`]) never waits
//! past it: resolving, connecting, STARTTLS and its handshake, every read and every pause
//! between retries end by then, so a command's `--timeout` bounds the whole command.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout_at, Instant};

#[cfg(feature = "tls")]
use super::error::ErrCode;
use super::error::ErrCode as ErrCodeName;
use super::error::{ErrorKind, NutError, TransportFailure};
use super::proto::{line_reply, tracking_id, ListReader, Request, Shape, Tracking, MAX_LINE};
use super::target::Target;
#[cfg(feature = "tls")]
use super::tls::handshake;
use super::tls::{Stream, TlsMode, TlsOptions, Trust};

/// Most instant commands listed for one UPS (NUT's drivers offer a few dozen at most).
pub const MAX_COMMANDS: usize = 128;

/// Timeouts, the retry policy (the settings' `nut_retry_count`, `nut_retry_delay`) and TLS.
#[derive(Clone, Debug)]
pub struct Options {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry_count: u32,
    pub retry_delay: Duration,
    pub tls: TlsOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            retry_count: 3,
            retry_delay: Duration::from_secs(5),
            tls: TlsOptions::default(),
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

/// One connection to upsd.
pub struct Connection<S> {
    io: BufReader<S>,
    timeout: Duration,
    /// No read goes past this (the command's deadline), whatever the request timeout.
    pub deadline: Option<Instant>,
    /// A reply was cut short or too long: what comes next cannot be trusted.
    broken: bool,
}

impl<S: Transport> Connection<S> {
    pub fn new(stream: S, request_timeout: Duration) -> Self {
        Connection {
            io: BufReader::new(stream),
            timeout: request_timeout,
            deadline: None,
            broken: false,
        }
    }

    /// The stream, for STARTTLS; nothing may be left unread.
    pub fn into_inner(self) -> Result<S, NutError> {
        if !self.io.buffer().is_empty() {
            return Err(NutError::transport(
                TransportFailure::BadReply,
                "upsd sent data after OK STARTTLS",
            ));
        }
        Ok(self.io.into_inner())
    }

    /// Sends one request and reads its whole reply, within the request timeout.
    pub async fn request(&mut self, req: &Request) -> Result<Reply, NutError> {
        if self.broken {
            return Err(NutError::transport(
                TransportFailure::Closed,
                "the connection was abandoned after a bad reply",
            ));
        }
        let line = req.encode()?;
        let started = Instant::now();
        let deadline = earliest(started + self.timeout, self.deadline);
        let result = timeout_at(deadline, self.exchange(req, line.as_bytes())).await;
        let result = result.unwrap_or_else(|_| {
            Err(NutError::transport(
                TransportFailure::Timeout,
                format!(
                    "{}: no complete reply within {} ms{}",
                    req.name(),
                    (deadline - started).as_millis(),
                    if deadline < started + self.timeout {
                        " (the command's time was up)"
                    } else {
                        ""
                    }
                ),
            )
            .hint("upsd may be overloaded, or this is not upsd"))
        });
        // A reply we could not read whole leaves the stream mid-reply: nothing after it can be
        // trusted. An `ERR` answer, whatever its class, leaves the session as it was.
        if matches!(&result, Err(e) if e.is_transport()) {
            self.broken = true;
        }
        result
    }

    async fn exchange(&mut self, req: &Request, line: &[u8]) -> Result<Reply, NutError> {
        let io_err = |e: std::io::Error| {
            NutError::transport(TransportFailure::Io, format!("{}: {e}", req.name()))
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
                NutError::transport(TransportFailure::Io, format!("{}: {e}", req.name()))
            })?;
            if chunk.is_empty() {
                return Err(NutError::transport(
                    TransportFailure::Closed,
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
                return Err(NutError::transport(
                    TransportFailure::LineTooLong,
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

/// The earlier of `t` and the deadline.
fn earliest(t: Instant, deadline: Option<Instant>) -> Instant {
    deadline.map_or(t, |d| d.min(t))
}

/// The addresses of `host:port`. A literal address needs no lookup; a name is looked up on a
/// thread of its own (so that the wait is bounded), or here when the system gives no thread.
async fn resolve(target: &Target, until: Instant) -> Result<Vec<SocketAddr>, NutError> {
    let addr = target.address();
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let lookup = |a: &str| a.to_socket_addrs().map(|i| i.collect::<Vec<_>>());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = addr.clone();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(lookup(&name));
        });
    let result = match spawned {
        Ok(_) => match timeout_at(until, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(std::io::Error::other("the lookup stopped")),
            Err(_) => {
                return Err(NutError::transport(
                    TransportFailure::Resolve,
                    format!("resolving {} timed out", target.host),
                ))
            }
        },
        Err(e) => {
            log::debug!("no thread to resolve {addr} ({e}): resolving here");
            lookup(&addr)
        }
    };
    result.map_err(|e| {
        NutError::transport(
            TransportFailure::Resolve,
            format!("cannot resolve {}: {e}", target.host),
        )
        .hint("check the host name")
    })
}

/// Opens a TCP connection to upsd, trying each address of the host within the connect timeout
/// (and the deadline).
pub async fn connect(
    target: &Target,
    opts: &Options,
    deadline: Option<Instant>,
) -> Result<Connection<Stream>, NutError> {
    let started = Instant::now();
    let until = earliest(started + opts.connect_timeout, deadline);
    let addrs = resolve(target, until).await?;
    let mut last = NutError::transport(
        TransportFailure::Resolve,
        format!("{} has no address", target.host),
    );
    for a in addrs {
        let until = earliest(Instant::now() + opts.connect_timeout, deadline);
        match timeout_at(until, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                let mut c = Connection::new(Stream::Plain(s), opts.request_timeout);
                c.deadline = deadline;
                return Ok(c);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = NutError::transport(
                    TransportFailure::ConnectRefused,
                    format!("{a} refused the connection"),
                )
                .hint(format!(
                    "is upsd running, and does upsd.conf LISTEN on {} port {}?",
                    target.host, target.port
                ));
            }
            Ok(Err(e)) => {
                last = NutError::transport(
                    TransportFailure::ConnectFailed,
                    format!("cannot connect to {a}: {e}"),
                )
                .hint("check the network and any firewall");
            }
            Err(_) => {
                last = NutError::transport(
                    TransportFailure::ConnectTimeout,
                    format!(
                        "{a} did not answer within {} ms",
                        (until - started).as_millis()
                    ),
                )
                .hint("check the address, the network and any firewall");
            }
        }
    }
    Err(last)
}

/// May a password be sent to `host` over this connection?
pub fn password_may_go(host: &str, tls: &TlsState, allow_plaintext: bool) -> bool {
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    local || allow_plaintext || matches!(tls, TlsState::Encrypted(_))
}

/// A client for one upsd: connects on first use, and after a lost connection reconnects and
/// retries reads (never writes: a SET or INSTCMD is not sent twice).
pub struct Client {
    pub target: Target,
    pub opts: Options,
    conn: Option<Connection<Stream>>,
    /// What became of TLS on the current connection.
    pub tls: TlsState,
    /// Nothing waits past this: the command's whole time with upsd.
    deadline: Option<Instant>,
    /// The last connection attempt got as far as TCP (what failed after was STARTTLS).
    tcp_reached: bool,
}

/// Whether the connection is encrypted, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsState {
    /// `--tls off`, or not connected yet.
    Off,
    /// No CA file or pin: nothing to verify upsd with, so STARTTLS was not sent.
    NoTrust,
    /// upsd answered STARTTLS with this error (FEATURE-NOT-CONFIGURED, ...).
    NotOffered(String),
    /// Encrypted, with this TLS version, and upsd's certificate verified.
    Encrypted(String),
    /// This build has no TLS (cargo feature `tls`).
    NotBuilt,
}

impl Client {
    pub fn new(target: Target, opts: Options) -> Self {
        Client {
            target,
            opts,
            conn: None,
            tls: TlsState::Off,
            deadline: None,
            tcp_reached: false,
        }
    }

    /// Bounds everything from now on: no connect, read or pause between retries goes past
    /// `deadline` (None: each step has its own timeout only, as the agent wants).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        if let Some(c) = &mut self.conn {
            c.deadline = deadline;
        }
    }

    /// Whether the last connection attempt reached upsd's port (a failure after that was
    /// STARTTLS's).
    pub fn tcp_reached(&self) -> bool {
        self.tcp_reached
    }

    /// Whether a pause of `pause` still leaves time before the deadline.
    fn time_for(&self, pause: Duration) -> bool {
        self.deadline.is_none_or(|d| Instant::now() + pause < d)
    }

    /// Connects now, with the retry policy, and STARTTLS per the TLS policy.
    pub async fn connect(&mut self) -> Result<(), NutError> {
        let mut attempt = 0;
        loop {
            self.tcp_reached = false;
            let opened = match connect(&self.target, &self.opts, self.deadline).await {
                Ok(c) => {
                    self.tcp_reached = true;
                    self.secure(c).await
                }
                Err(e) => Err(e),
            };
            match opened {
                Ok(c) => {
                    self.conn = Some(c);
                    return Ok(());
                }
                Err(e)
                    if e.reconnect_may_help()
                        && attempt < self.opts.retry_count
                        && self.time_for(self.opts.retry_delay) =>
                {
                    log::debug!("{e}; retrying in {} ms", self.opts.retry_delay.as_millis());
                    attempt += 1;
                    sleep(self.opts.retry_delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// STARTTLS per the TLS policy.
    async fn secure(&mut self, conn: Connection<Stream>) -> Result<Connection<Stream>, NutError> {
        let tls = &self.opts.tls;
        self.tls = TlsState::Off;
        if tls.mode == TlsMode::Off {
            return Ok(conn);
        }
        if matches!(tls.trust, Trust::Nothing) {
            if tls.mode == TlsMode::Required {
                return Err(NutError::new(
                    ErrorKind::Configuration,
                    "tls-no-trust",
                    "TLS is required, but there is no CA file or pinned certificate to verify upsd with",
                )
                .hint("give --ca-file FILE or --pin-sha256 HEX"));
            }
            self.tls = TlsState::NoTrust;
            return Ok(conn);
        }
        self.starttls(conn).await
    }

    #[cfg(not(feature = "tls"))]
    async fn starttls(&mut self, conn: Connection<Stream>) -> Result<Connection<Stream>, NutError> {
        if self.opts.tls.mode == TlsMode::Required {
            return Err(NutError::new(
                ErrorKind::Configuration,
                "tls-not-built",
                "TLS is required, but this build of power-snitch has no TLS (cargo feature `tls`)",
            ));
        }
        self.tls = TlsState::NotBuilt;
        Ok(conn)
    }

    #[cfg(feature = "tls")]
    async fn starttls(
        &mut self,
        mut conn: Connection<Stream>,
    ) -> Result<Connection<Stream>, NutError> {
        let tls = &self.opts.tls;
        match conn.request(&Request::StartTls).await {
            Ok(_) => {}
            Err(e)
                if tls.mode == TlsMode::Auto
                    && matches!(
                        e.refusal(),
                        Some(
                            ErrCode::FeatureNotConfigured
                                | ErrCode::FeatureNotSupported
                                | ErrCode::UnknownCommand
                        )
                    ) =>
            {
                log::info!(
                    "{}: upsd offers no TLS ({})",
                    self.target.address(),
                    e.code()
                );
                self.tls = TlsState::NotOffered(e.code().to_string());
                return Ok(conn);
            }
            Err(e) => return Err(e),
        }
        let Stream::Plain(tcp) = conn.into_inner()? else {
            return Err(NutError::new(
                ErrorKind::Protocol,
                "starttls-twice",
                "STARTTLS on an encrypted connection",
            ));
        };
        let until = earliest(Instant::now() + self.opts.request_timeout, self.deadline);
        let stream = timeout_at(until, handshake(tcp, &self.target.host, &tls.trust))
            .await
            .map_err(|_| {
                NutError::transport(
                    TransportFailure::Timeout,
                    "the TLS handshake with upsd timed out",
                )
            })??;
        self.tls = TlsState::Encrypted(stream.tls_version().unwrap_or_default());
        let mut c = Connection::new(stream, self.opts.request_timeout);
        c.deadline = self.deadline;
        Ok(c)
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// A password goes in clear text only to this machine, unless the user allowed more.
    fn check_password_channel(&self) -> Result<(), NutError> {
        if password_may_go(
            &self.target.host,
            &self.tls,
            self.opts.tls.allow_plaintext_password,
        ) {
            return Ok(());
        }
        Err(NutError::new(
            ErrorKind::Configuration,
            "plaintext-password",
            format!("refusing to send the password unencrypted to {}", self.target.host),
        )
        .hint("use TLS (configure upsd's certificate and give --ca-file or --pin-sha256), or allow it with --allow-plaintext-password"))
    }

    pub async fn request(&mut self, req: &Request) -> Result<Reply, NutError> {
        let mut attempt = 0;
        loop {
            if self.conn.is_none() {
                self.connect().await?;
            }
            if matches!(req, Request::Password(_)) {
                self.check_password_channel()?;
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match conn.request(req).await {
                Err(e) if e.is_transport() => {
                    // The stream is mid-reply or gone: the next request starts afresh.
                    self.conn = None;
                    let pause = if attempt > 0 {
                        self.opts.retry_delay
                    } else {
                        Duration::ZERO
                    };
                    if !e.reconnect_may_help()
                        || !req.is_read()
                        || attempt >= self.opts.retry_count
                        || !self.time_for(pause)
                    {
                        return Err(e);
                    }
                    log::debug!("{e}; reconnecting");
                    attempt += 1;
                    sleep(pause).await;
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
            _ => Err(NutError::transport(
                TransportFailure::BadReply,
                "LIST VAR: not a list",
            )),
        }
    }

    /// `LIST CLIENT UPS`: the addresses upsd counts as logged in to `ups` (upsmon and the
    /// clients that LOGIN; not those that only read).
    pub async fn list_clients(
        &mut self,
        ups: &str,
    ) -> Result<Vec<super::proto::LoggedIn>, NutError> {
        match self.request(&Request::ListClient(ups.into())).await? {
            Reply::List(items) => Ok(super::proto::logged_in(ups, &items)),
            _ => Err(NutError::transport(
                TransportFailure::BadReply,
                "LIST CLIENT: not a list",
            )),
        }
    }

    /// `GET NUMLOGINS UPS`: how many logins upsd counts on `ups`.
    pub async fn num_logins(&mut self, ups: &str) -> Result<u32, NutError> {
        match self.request(&Request::GetNumLogins(ups.into())).await? {
            Reply::Line(w) => w.get(2).and_then(|n| n.parse().ok()).ok_or_else(|| {
                NutError::transport(TransportFailure::BadReply, "NUMLOGINS: not a number")
            }),
            _ => Err(NutError::transport(
                TransportFailure::BadReply,
                "GET NUMLOGINS: not a line",
            )),
        }
    }

    /// `LIST CMD` with each command's `GET CMDDESC`, in upsd's order, at most
    /// [`MAX_COMMANDS`].
    pub async fn commands(&mut self, ups: &str) -> Result<Vec<(String, String)>, NutError> {
        let Reply::List(items) = self.request(&Request::ListCmd(ups.into())).await? else {
            return Err(NutError::transport(
                TransportFailure::BadReply,
                "LIST CMD: not a list",
            ));
        };
        let mut out = Vec::new();
        for name in items.into_iter().filter_map(|i| i.into_iter().next()) {
            if out.len() >= MAX_COMMANDS {
                break;
            }
            let desc = match self
                .request(&Request::GetCmdDesc(ups.into(), name.clone()))
                .await?
            {
                Reply::Line(w) => w.get(3).cloned().unwrap_or_default(),
                _ => String::new(),
            };
            out.push((name, desc));
        }
        Ok(out)
    }

    /// `USERNAME`, `PASSWORD`, `SET TRACKING ON` (when `track`), then `INSTCMD`: the tracking
    /// id, or `None` when upsd has no TRACKING (older than 2.8) or answered a bare `OK`.
    /// Sent once, never retried.
    pub async fn instcmd(
        &mut self,
        ups: &str,
        cmd: &str,
        user: &str,
        password: &str,
    ) -> Result<Option<String>, NutError> {
        // A fresh session: USERNAME and PASSWORD can be given once per connection.
        self.disconnect();
        self.request(&Request::Username(user.into())).await?;
        self.request(&Request::Password(password.into())).await?;
        let tracking = match self.request(&Request::SetTracking(true)).await {
            Ok(_) => true,
            Err(e)
                if matches!(
                    e.refusal(),
                    Some(ErrCodeName::UnknownCommand | ErrCodeName::InvalidArgument)
                ) =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        let reply = self
            .request(&Request::InstCmd(ups.into(), cmd.into(), None))
            .await?;
        Ok(match reply {
            Reply::Line(w) if tracking => tracking_id(&w).map(String::from),
            _ => None,
        })
    }

    /// `GET TRACKING ID`.
    pub async fn tracking(&mut self, id: &str) -> Result<Tracking, NutError> {
        let reply = match self.request(&Request::GetTracking(id.into())).await {
            Ok(Reply::Line(w)) => Ok(w),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        Tracking::of(reply)
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
            _ => Err(NutError::transport(
                TransportFailure::BadReply,
                "LIST UPS: not a list",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_in_clear_text_only_to_this_machine() {
        let plain = TlsState::NotOffered("FEATURE-NOT-CONFIGURED".into());
        assert!(password_may_go("localhost", &plain, false));
        assert!(password_may_go("127.0.0.1", &plain, false));
        assert!(password_may_go("::1", &plain, false));
        assert!(!password_may_go("nas.example", &plain, false));
        assert!(!password_may_go("192.0.2.7", &TlsState::NoTrust, false));
        assert!(password_may_go("192.0.2.7", &plain, true));
        assert!(password_may_go(
            "nas.example",
            &TlsState::Encrypted("TLSv1_3".into()),
            false
        ));
    }
}
