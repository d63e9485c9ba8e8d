//! The control socket: a line protocol on a local Unix stream socket, so that `status --agent`,
//! `events` and a udev hook can ask the running agent.
//!
//! Protocol: the client sends one request per line (at most [`MAX_REQUEST`] bytes with its
//! newline); the agent answers each with one line of JSON, `{"ok":true,...}` or
//! `{"ok":false,"error":"..."}` ([`Reply`] reads it back). Requests: `status`, `events [N]`,
//! `recheck`, `help`. A last word `text` asks for the human form instead, as
//! `{"ok":true,"text":"..."}`. A longer line is answered with an error and the connection
//! closed; so is a client silent for [`IDLE`].
//!
//! Who is served: at most [`MAX_CLIENTS`] clients at once, and at most [`PER_UID`] of them from
//! one user (the kernel tells the peer's uid, `SO_PEERCRED`); [`RESERVED`] more places are kept
//! for the agent's own user and root, so that the udev hook (which runs as the agent's user)
//! and the administrator are served while other users hold every place. Others are told
//! "busy" and closed. Rechecks are coalesced by the agent's loop (see `agent::decide`).
//!
//! The protocol (parsing, rendering, who is admitted) is pure; [`serve`] and [`ask`] are the
//! edges.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::json::Object;
use crate::state::view::{events_json, events_text, status_json, status_text};
use crate::state::{ring, Shared};

pub const DEFAULT_PATH: &str = "/run/power-snitch/control.sock";
/// Bytes of one request line, its newline included.
pub const MAX_REQUEST: usize = 4096;
/// Clients served at once (beyond them, only the reserved places).
pub const MAX_CLIENTS: usize = 8;
/// Clients one user may have among [`MAX_CLIENTS`].
pub const PER_UID: usize = 3;
/// Places only the agent's own user and root may take when the others are full.
pub const RESERVED: usize = 4;
/// A client that sends no complete request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(10);
/// Bytes of a reply the command-line client reads (the largest, 256 events, is about 100 KB).
pub const MAX_REPLY: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    /// The last N events (all the ring has when no N is given).
    Events(usize),
    Recheck,
    Help,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub request: Request,
    /// Human text instead of JSON.
    pub text: bool,
}

pub const HELP: &str =
    "requests, one per line: status | events [N] | recheck | help; add `text` for human text";

/// Parses one request line (without its newline).
pub fn parse(line: &[u8]) -> Result<Parsed, String> {
    let line = std::str::from_utf8(line).map_err(|_| "a request is ASCII text".to_string())?;
    let mut words: Vec<&str> = line.split_ascii_whitespace().collect();
    let text = words.last() == Some(&"text");
    if text {
        words.pop();
    }
    let request = match words.as_slice() {
        ["status"] => Request::Status,
        ["events"] => Request::Events(ring::CAPACITY),
        ["events", n] => Request::Events(
            n.parse::<usize>()
                .map_err(|_| format!("events takes a count, not `{}`", ring::bounded(n, 40)))?
                .min(ring::CAPACITY),
        ),
        ["recheck"] => Request::Recheck,
        ["help"] => Request::Help,
        [] => return Err(format!("empty request; {HELP}")),
        [w, ..] => {
            return Err(format!(
                "unknown request `{}`; {HELP}",
                ring::bounded(w, 40)
            ))
        }
    };
    Ok(Parsed { request, text })
}

pub fn error_reply(message: &str) -> String {
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", "false").str("error", message);
    o.end();
    out
}

pub fn text_reply(text: &str) -> String {
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", "true").str("text", text);
    o.end();
    out
}

/// The reply to a request that needs nothing but the shared state.
pub fn answer(p: Parsed, s: &Shared) -> String {
    match (p.request, p.text) {
        (Request::Status, false) => status_json(s),
        (Request::Status, true) => text_reply(&status_text(s)),
        (Request::Events(n), false) => events_json(s.ring.last(n)),
        (Request::Events(n), true) => text_reply(&events_text(s.ring.last(n))),
        (Request::Help, _) => text_reply(HELP),
        (Request::Recheck, _) => error_reply("recheck is answered by the agent's main loop"),
    }
}

/// The string value of `"key":` in one of our replies (as our JSON writer escapes it).
pub fn string_field(reply: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = reply.find(&pat)? + pat.len();
    let mut out = String::new();
    let mut chars = reply[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}

/// Whether a client of user `uid` is served, given the users of the clients served now (one
/// entry per client). `trusted` is the agent's own user or root: they may also take the
/// [`RESERVED`] places, and no per-user limit applies to them.
pub fn admit(open: &[u32], uid: u32, trusted: bool) -> Result<(), String> {
    if trusted {
        return if open.len() < MAX_CLIENTS + RESERVED {
            Ok(())
        } else {
            Err(format!("busy: {} clients already", open.len()))
        };
    }
    let same = open.iter().filter(|u| **u == uid).count();
    if same >= PER_UID {
        return Err(format!(
            "busy: user {uid} already has {same} connections (at most {PER_UID})"
        ));
    }
    if open.len() >= MAX_CLIENTS {
        return Err(format!("busy: {MAX_CLIENTS} clients already"));
    }
    Ok(())
}

/// A reply line as the client reads it: the agent said yes (the line as written, and its
/// human text when one was asked for), or refused with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok { json: String, text: Option<String> },
    Refused(String),
}

impl Reply {
    /// Reads one of our reply lines (without its newline); anything else is an error saying
    /// what came.
    pub fn parse(line: &str) -> Result<Reply, String> {
        let form = |l: &str| l.starts_with('{') && l.ends_with('}');
        if form(line) && line.starts_with(r#"{"ok":true"#) {
            return Ok(Reply::Ok {
                json: line.to_string(),
                text: string_field(line, "text"),
            });
        }
        if form(line) && line.starts_with(r#"{"ok":false"#) {
            return Ok(Reply::Refused(
                string_field(line, "error").unwrap_or_else(|| "no reason given".into()),
            ));
        }
        Err(format!(
            "the agent's reply is not one of its JSON lines: `{}`",
            ring::bounded(line, 80)
        ))
    }
}

/// A request the main loop answers (recheck), with where the reply goes.
pub type Asked = (Parsed, oneshot::Sender<String>);

/// How long a refused client has to read its "busy" line.
const BUSY_WRITE: Duration = Duration::from_secs(1);

/// Accepts clients until the task is dropped.
pub async fn serve(listener: UnixListener, shared: Rc<RefCell<Shared>>, main: mpsc::Sender<Asked>) {
    let me = nix::unistd::geteuid().as_raw();
    // The users of the clients served now: at most MAX_CLIENTS + RESERVED entries.
    let open: Rc<RefCell<Vec<u32>>> =
        Rc::new(RefCell::new(Vec::with_capacity(MAX_CLIENTS + RESERVED)));
    let refusing = Rc::new(Cell::new(0usize));
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // No credentials: the least trusted user there is.
        let uid = stream.peer_cred().map_or(u32::MAX, |c| c.uid());
        let verdict = admit(&open.borrow(), uid, uid == me || uid == 0);
        if let Err(e) = verdict {
            log::debug!("control socket: {e}");
            // A bounded number of refusals being written; beyond, the client is just closed.
            if refusing.get() < MAX_CLIENTS {
                refusing.set(refusing.get() + 1);
                let refusing = refusing.clone();
                let mut line = error_reply(&e);
                line.push('\n');
                tokio::task::spawn_local(async move {
                    let _ =
                        tokio::time::timeout(BUSY_WRITE, stream.write_all(line.as_bytes())).await;
                    refusing.set(refusing.get() - 1);
                });
            }
            continue;
        }
        open.borrow_mut().push(uid);
        let (shared, main, open) = (shared.clone(), main.clone(), open.clone());
        tokio::task::spawn_local(async move {
            client(stream, &shared, &main).await;
            let mut o = open.borrow_mut();
            if let Some(i) = o.iter().position(|u| *u == uid) {
                o.swap_remove(i);
            }
        });
    }
}

/// Serves one client: requests in turn until it closes, goes silent or oversteps.
async fn client(stream: UnixStream, shared: &RefCell<Shared>, main: &mpsc::Sender<Asked>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(1024, rd);
    let mut line = Vec::with_capacity(128);
    loop {
        let got = tokio::time::timeout(IDLE, read_line(&mut rd, &mut line)).await;
        let (mut reply, close) = match got {
            Err(_) => return,
            Ok(Err(_)) | Ok(Ok(Line::Closed)) => return,
            Ok(Ok(Line::TooLong)) => (
                error_reply(&format!("request longer than {MAX_REQUEST} bytes; closing")),
                true,
            ),
            Ok(Ok(Line::Complete)) => match parse(&line) {
                Err(e) => (error_reply(&e), false),
                Ok(p) if p.request == Request::Recheck => {
                    let (tx, rx) = oneshot::channel();
                    let r = match main.send((p, tx)).await {
                        Ok(()) => rx
                            .await
                            .unwrap_or_else(|_| error_reply("the agent is stopping")),
                        Err(_) => error_reply("the agent is stopping"),
                    };
                    (r, false)
                }
                Ok(p) => (answer(p, &shared.borrow()), false),
            },
        };
        reply.push('\n');
        if tokio::time::timeout(IDLE, wr.write_all(reply.as_bytes()))
            .await
            .map_or(true, |r| r.is_err())
            || close
        {
            return;
        }
    }
}

enum Line {
    Complete,
    TooLong,
    Closed,
}

/// Reads one line into `line` (without its newline), keeping at most [`MAX_REQUEST`] bytes.
async fn read_line<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<Line> {
    line.clear();
    loop {
        let chunk = rd.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(Line::Closed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if line.len() + take > MAX_REQUEST {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&chunk[..take]);
        rd.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Complete);
        }
    }
}

/// The client side, blocking: sends one request and returns the agent's reply.
pub fn ask(path: &Path, request: &str, timeout: Duration) -> Result<Reply, String> {
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the agent at {}: {e} (is `power-snitch run` running? --control-socket PATH)",
            path.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("cannot send to the agent: {e}"))?;
    let mut reply = String::new();
    std::io::BufReader::new(s.take(MAX_REPLY as u64))
        .read_line(&mut reply)
        .map_err(|e| format!("no reply from the agent: {e}"))?;
    if !reply.ends_with('\n') {
        return Err("the agent's reply was cut short".into());
    }
    reply.pop();
    Reply::parse(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_control_parses_requests() {
        let p = |s: &str| parse(s.as_bytes());
        let ok = |request, text| Ok(Parsed { request, text });
        assert_eq!(p("status"), ok(Request::Status, false));
        assert_eq!(p(" status  text "), ok(Request::Status, true));
        assert_eq!(p("events"), ok(Request::Events(ring::CAPACITY), false));
        assert_eq!(p("events 5 text"), ok(Request::Events(5), true));
        assert_eq!(
            p("events 99999"),
            ok(Request::Events(ring::CAPACITY), false)
        );
        assert_eq!(p("recheck"), ok(Request::Recheck, false));
        assert!(p("events x")
            .unwrap_err()
            .starts_with("events takes a count"));
        assert!(p("reboot")
            .unwrap_err()
            .starts_with("unknown request `reboot`"));
        assert!(p("").unwrap_err().starts_with("empty request"));
        assert!(parse(&[0xff, 0xfe]).is_err());
        let long = "x".repeat(3000);
        assert!(p(&long).unwrap_err().len() < 300, "the echo is bounded");
    }

    #[test]
    fn agent_control_replies_round_trip_their_text() {
        let text = "ups1: \"OL\"\n\tbattery 100%\u{1}é\\";
        let reply = text_reply(text);
        assert!(!reply.contains('\n'));
        assert_eq!(string_field(&reply, "text").as_deref(), Some(text));
        let e = error_reply("no \"such\" thing");
        assert_eq!(
            string_field(&e, "error").as_deref(),
            Some("no \"such\" thing")
        );
        assert!(e.starts_with(r#"{"ok":false"#));
        assert_eq!(string_field(&e, "text"), None);
    }

    #[test]
    fn agent_control_replies_are_read_back_typed() {
        assert_eq!(
            Reply::parse(&text_reply("3 polls")),
            Ok(Reply::Ok {
                json: text_reply("3 polls"),
                text: Some("3 polls".into())
            })
        );
        assert_eq!(
            Reply::parse(r#"{"ok":true,"errors":0}"#),
            Ok(Reply::Ok {
                json: r#"{"ok":true,"errors":0}"#.into(),
                text: None
            })
        );
        assert_eq!(
            Reply::parse(&error_reply("busy: 8 clients already")),
            Ok(Reply::Refused("busy: 8 clients already".into()))
        );
        for bad in [
            "",
            "ok",
            r#"{"ok":truely"#,
            "{\"ok\":true",
            r#"["ok",true]"#,
        ] {
            let e = Reply::parse(bad).unwrap_err();
            assert!(e.starts_with("the agent's reply is not"), "{bad}: {e}");
        }
    }

    #[test]
    fn agent_control_one_user_cannot_take_every_place() {
        let (me, other, third) = (998, 1000, 1001);
        // One user: PER_UID places, then busy.
        let mut open = Vec::new();
        while admit(&open, other, false).is_ok() {
            open.push(other);
        }
        assert_eq!(open.len(), PER_UID);
        assert!(admit(&open, other, false)
            .unwrap_err()
            .contains("user 1000 already has 3 connections"));
        // Others fill the shared places...
        let mut uid = 2000;
        while open.len() < MAX_CLIENTS {
            assert_eq!(admit(&open, uid, false), Ok(()));
            open.push(uid);
            uid += 1;
        }
        assert!(admit(&open, third, false)
            .unwrap_err()
            .contains("busy: 8 clients"));
        // ...and the agent's own user and root still get the reserved ones.
        for _ in 0..RESERVED {
            assert_eq!(admit(&open, me, true), Ok(()));
            open.push(me);
        }
        assert!(
            admit(&open, 0, true).is_err(),
            "the reserved places are bounded too"
        );
        // The trusted clients in reserved places do not let others in.
        assert!(admit(&open, third, false).is_err());
    }
}
