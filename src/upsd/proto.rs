//! NUT's network protocol, sans I/O: requests encoded as upsd reads them, reply lines parsed as
//! upsd writes them, and lists assembled with bounds.
//!
//! **Invariant:** nothing here reads or writes a socket; every input is bounded and no reply
//! makes these functions panic.

use super::error::{ErrorKind, NutError, TransportFailure};
use crate::nut::conf::format_word;
use crate::nut::lexer::{lex, Dialect, WORD_LIMIT};

/// Longest reply line accepted. upsd's lines are a few hundred bytes (values are at most 256).
pub const MAX_LINE: usize = 8 * 1024;
/// Most items accepted in one list. A UPS has a few hundred variables at most.
pub const MAX_LIST: usize = 10_000;

/// A request, as NUT 2.8's upsd understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Ver,
    NetVer,
    /// The older spelling of NETVER.
    ProtVer,
    Help,
    ListUps,
    ListVar(String),
    ListRw(String),
    ListCmd(String),
    ListEnum(String, String),
    ListRange(String, String),
    ListClient(String),
    GetVar(String, String),
    GetType(String, String),
    GetDesc(String, String),
    GetCmdDesc(String, String),
    GetUpsDesc(String),
    GetNumLogins(String),
    GetTracking(String),
    Username(String),
    Password(String),
    Login(String),
    Logout,
    Primary(String),
    /// PRIMARY's name before NUT 2.8.0.
    Master(String),
    Fsd(String),
    SetVar(String, String, String),
    SetTracking(bool),
    InstCmd(String, String, Option<String>),
    StartTls,
}

/// What a request's reply looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One line: `OK ...`, a data line, or `ERR`.
    Line,
    /// `BEGIN LIST <what>` ... `END LIST <what>`, with `what` given here.
    List(Vec<String>),
    /// No reply at all (HELP on 2.8).
    None,
}

impl Request {
    /// The words of the request, before encoding.
    fn words(&self) -> Vec<&str> {
        use Request::*;
        match self {
            Ver => vec!["VER"],
            NetVer => vec!["NETVER"],
            ProtVer => vec!["PROTVER"],
            Help => vec!["HELP"],
            ListUps => vec!["LIST", "UPS"],
            ListVar(u) => vec!["LIST", "VAR", u],
            ListRw(u) => vec!["LIST", "RW", u],
            ListCmd(u) => vec!["LIST", "CMD", u],
            ListEnum(u, v) => vec!["LIST", "ENUM", u, v],
            ListRange(u, v) => vec!["LIST", "RANGE", u, v],
            ListClient(u) => vec!["LIST", "CLIENT", u],
            GetVar(u, v) => vec!["GET", "VAR", u, v],
            GetType(u, v) => vec!["GET", "TYPE", u, v],
            GetDesc(u, v) => vec!["GET", "DESC", u, v],
            GetCmdDesc(u, c) => vec!["GET", "CMDDESC", u, c],
            GetUpsDesc(u) => vec!["GET", "UPSDESC", u],
            GetNumLogins(u) => vec!["GET", "NUMLOGINS", u],
            GetTracking(id) => vec!["GET", "TRACKING", id],
            Username(u) => vec!["USERNAME", u],
            Password(p) => vec!["PASSWORD", p],
            Login(u) => vec!["LOGIN", u],
            Logout => vec!["LOGOUT"],
            Primary(u) => vec!["PRIMARY", u],
            Master(u) => vec!["MASTER", u],
            Fsd(u) => vec!["FSD", u],
            SetVar(u, v, val) => vec!["SET", "VAR", u, v, val],
            SetTracking(on) => vec!["SET", "TRACKING", if *on { "ON" } else { "OFF" }],
            InstCmd(u, c, None) => vec!["INSTCMD", u, c],
            InstCmd(u, c, Some(v)) => vec!["INSTCMD", u, c, v],
            StartTls => vec!["STARTTLS"],
        }
    }

    /// How the request is named in messages: its keywords, never its arguments (a password).
    pub fn name(&self) -> String {
        let w = self.words();
        let keywords = match w.first().copied() {
            Some("LIST" | "GET" | "SET") => 2,
            _ => 1,
        };
        w[..keywords.min(w.len())].join(" ")
    }

    pub fn shape(&self) -> Shape {
        use Request::*;
        let list = |w: &[&str]| Shape::List(w.iter().map(|s| s.to_string()).collect());
        match self {
            ListUps | ListVar(_) | ListRw(_) | ListCmd(_) | ListEnum(..) | ListRange(..)
            | ListClient(_) => list(&self.words()[1..]),
            Help => Shape::None,
            _ => Shape::Line,
        }
    }

    /// Does sending it again change nothing? (Reads can be retried after a lost connection.)
    pub fn is_read(&self) -> bool {
        use Request::*;
        matches!(
            self,
            Ver | NetVer
                | ProtVer
                | ListUps
                | ListVar(_)
                | ListRw(_)
                | ListCmd(_)
                | ListEnum(..)
                | ListRange(..)
                | ListClient(_)
                | GetVar(..)
                | GetType(..)
                | GetDesc(..)
                | GetCmdDesc(..)
                | GetUpsDesc(_)
                | GetNumLogins(_)
                | GetTracking(_)
        )
    }

    /// The request line, newline included, with NUT's own quoting. Refuses what upsd would
    /// silently mangle: control characters, non-ASCII, words over 512 bytes.
    pub fn encode(&self) -> Result<String, NutError> {
        let mut line = String::new();
        for (i, w) in self.words().into_iter().enumerate() {
            let what = if matches!(self, Request::Password(_)) && i == 1 {
                "the password"
            } else {
                "a word"
            };
            if let Some(c) = w.chars().find(|c| !(' '..='~').contains(c)) {
                return Err(NutError::new(
                    ErrorKind::Configuration,
                    "unsendable",
                    format!(
                        "{}: {what} contains {}, which upsd would drop",
                        self.name(),
                        describe(c)
                    ),
                )
                .hint("use printable ASCII only"));
            }
            if w.len() > WORD_LIMIT {
                return Err(NutError::new(
                    ErrorKind::Configuration,
                    "unsendable",
                    format!(
                        "{}: {what} is {} bytes; upsd keeps only {WORD_LIMIT}",
                        self.name(),
                        w.len()
                    ),
                ));
            }
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&format_word(w));
        }
        line.push('\n');
        Ok(line)
    }
}

fn describe(c: char) -> String {
    if c.is_control() {
        format!("a control character (U+{:04X})", c as u32)
    } else {
        format!("the non-ASCII character `{c}`")
    }
}

/// One reply line, in words (quotes and escapes removed, as NUT's client library reads it with
/// `pconf_line`, which, unlike a file's last line, keeps a lone word without a newline).
pub fn words(line: &[u8]) -> Vec<String> {
    let mut terminated = Vec::with_capacity(line.len() + 1);
    terminated.extend_from_slice(line);
    terminated.push(b'\n');
    lex(&terminated, Dialect::HashInQuotesIsLiteral)
        .lines
        .into_iter()
        .filter(|l| !l.skipped)
        .flat_map(|l| l.words.into_iter().map(|w| w.text.to_string()))
        .collect()
}

fn protocol(request: &Request, what: String) -> NutError {
    NutError::transport(
        TransportFailure::BadReply,
        format!("{}: {what}", request.name()),
    )
    .hint("is this port a NUT upsd (default 3493)?")
}

impl Request {
    /// The words a good one-line reply starts with (`None`: any text, e.g. VER's banner).
    fn reply_head(&self) -> Option<&'static [&'static str]> {
        use Request::*;
        match self {
            GetVar(..) => Some(&["VAR"]),
            GetType(..) => Some(&["TYPE"]),
            GetDesc(..) => Some(&["DESC"]),
            GetCmdDesc(..) => Some(&["CMDDESC"]),
            GetUpsDesc(_) => Some(&["UPSDESC"]),
            GetNumLogins(_) => Some(&["NUMLOGINS"]),
            GetTracking(_) => Some(&["PENDING", "SUCCESS"]),
            Ver | NetVer | ProtVer | Help => None,
            _ => Some(&["OK"]),
        }
    }
}

/// Checks a one-line reply: `ERR` becomes its error, a reply of the wrong form a protocol
/// error; a good one is returned as words.
pub fn line_reply(request: &Request, line: &[u8]) -> Result<Vec<String>, NutError> {
    let w = words(line);
    match w.first().map(String::as_str) {
        Some("ERR") => Err(NutError::from_err(
            w.get(1).map_or("", String::as_str),
            &request.name(),
        )),
        Some(first) => match request.reply_head() {
            Some(heads) if !heads.contains(&first) => Err(protocol(
                request,
                format!("expected a reply starting with {}", heads.join(" or ")),
            )),
            _ => Ok(w),
        },
        None => Err(protocol(request, "an empty reply line".into())),
    }
}

/// What `GET TRACKING ID` says of an instant command (NUT 2.8's TRACKING).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// upsd handed it to the driver, which has not answered yet.
    Pending,
    /// The driver ran it.
    Success,
    /// The driver refused or failed it, with upsd's word (`INSTCMD-FAILED`, `INVALID-ARGUMENT`,
    /// …).
    Failed(String),
    /// upsd does not know this id (`ERR UNKNOWN`): too old, or never ours.
    Unknown,
}

impl Tracking {
    /// Reads `GET TRACKING`'s answer: a `PENDING` or `SUCCESS` line, or upsd's `ERR` word.
    pub fn of(reply: Result<Vec<String>, NutError>) -> Result<Tracking, NutError> {
        match reply {
            Ok(w) => match w.first().map(String::as_str) {
                Some("PENDING") => Ok(Tracking::Pending),
                Some("SUCCESS") => Ok(Tracking::Success),
                _ => Err(NutError::transport(
                    TransportFailure::BadReply,
                    "GET TRACKING: expected PENDING, SUCCESS or ERR",
                )),
            },
            Err(e) => match e.refusal() {
                Some(code) if code.as_str() == "UNKNOWN" => Ok(Tracking::Unknown),
                Some(code) => Ok(Tracking::Failed(code.as_str().to_string())),
                None => Err(e),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Tracking::Pending => "PENDING",
            Tracking::Success => "SUCCESS",
            Tracking::Failed(_) => "FAILED",
            Tracking::Unknown => "UNKNOWN",
        }
    }
}

/// The tracking id in `INSTCMD`'s answer: `OK TRACKING <id>` after `SET TRACKING ON`; `None`
/// for a bare `OK` (tracking off, or a upsd without it).
pub fn tracking_id(reply: &[String]) -> Option<&str> {
    match reply {
        [ok, t, id] if ok == "OK" && t == "TRACKING" && !id.is_empty() => Some(id),
        _ => None,
    }
}

/// Does this instant command cut the power to the load (now, after a delay, or for a while)?
/// NUT names them `load.off`, `load.off.delay`, `load.cycle`, `shutdown.return`,
/// `shutdown.stayoff`, `shutdown.reboot` … and the same per outlet (`outlet.1.load.off`);
/// `shutdown.stop` cancels a shutdown and cuts nothing. Such a command needs a second
/// confirmation and is never scheduled.
pub fn cuts_power(cmd: &str) -> bool {
    let parts: Vec<&str> = cmd.split('.').collect();
    let load_cut = parts
        .windows(2)
        .any(|w| w[0] == "load" && (w[1] == "off" || w[1] == "cycle"));
    let shutdown = parts.contains(&"shutdown") && !parts.ends_with(&["shutdown", "stop"]);
    // NUT 2.8.1's drivers offer their own shutdown of the UPS.
    let killpower = parts.ends_with(&["killpower"]);
    load_cut || shutdown || killpower
}

/// Assembles a `BEGIN LIST` ... `END LIST` reply, line by line, within [`MAX_LIST`] items.
#[derive(Debug)]
pub struct ListReader {
    what: Vec<String>,
    started: bool,
    pub items: Vec<Vec<String>>,
}

impl ListReader {
    pub fn new(what: Vec<String>) -> Self {
        ListReader {
            what,
            started: false,
            items: Vec::new(),
        }
    }

    /// Feeds one line; `Ok(true)` once the list is complete.
    pub fn feed(&mut self, request: &Request, line: &[u8]) -> Result<bool, NutError> {
        let w = words(line);
        if !self.started {
            if w.first().map(String::as_str) == Some("ERR") {
                return line_reply(request, line).map(|_| false);
            }
            if w.len() >= 2 && w[0] == "BEGIN" && w[1] == "LIST" && w[2..] == self.what[..] {
                self.started = true;
                return Ok(false);
            }
            return Err(protocol(
                request,
                format!("expected `BEGIN LIST {}`", self.what.join(" ")),
            ));
        }
        if w.len() >= 2 && w[0] == "END" && w[1] == "LIST" {
            if w[2..] != self.what[..] {
                return Err(protocol(
                    request,
                    "the list ends with another list's name".into(),
                ));
            }
            return Ok(true);
        }
        // Items start with the list's kind (VAR, UPS, CMD, ...), then its arguments.
        if w.first() != self.what.first()
            || w.len() < self.what.len()
            || w[1..self.what.len()] != self.what[1..]
        {
            return Err(protocol(
                request,
                format!("a line that is not a `{}` item", self.what[0]),
            ));
        }
        if self.items.len() >= MAX_LIST {
            return Err(protocol(
                request,
                format!("a list longer than {MAX_LIST} items"),
            ));
        }
        self.items.push(w[self.what.len()..].to_vec());
        Ok(false)
    }
}

/// A client upsd counts as logged in to a UPS (`LIST CLIENT`): the address it connects from.
/// upsd does not say which account it logged in with (`CLIENT <ups> <address>`, in every
/// release from 2.8.0 on; NUT's server/netlist.c).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    pub ups: String,
    pub address: String,
}

/// The most clients kept from one `LIST CLIENT` reply.
pub const MAX_CLIENTS: usize = 256;

/// `LIST CLIENT ups`'s items (the words after `CLIENT ups`, as [`ListReader`] keeps them) as
/// clients: an item without an address is left out; at most [`MAX_CLIENTS`].
pub fn logged_in(ups: &str, items: &[Vec<String>]) -> Vec<LoggedIn> {
    items
        .iter()
        .filter_map(|i| match i.as_slice() {
            [address, ..] if !address.is_empty() => Some(LoggedIn {
                ups: ups.to_string(),
                address: address.clone(),
            }),
            _ => None,
        })
        .take(MAX_CLIENTS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: Request) -> String {
        r.encode().unwrap()
    }

    #[test]
    fn encodes_with_nut_quoting() {
        assert_eq!(enc(Request::ListVar("ups1".into())), "LIST VAR ups1\n");
        assert_eq!(enc(Request::Password("a b".into())), "PASSWORD \"a b\"\n");
        assert_eq!(enc(Request::Password("1=2".into())), "PASSWORD \"1=2\"\n");
        assert_eq!(
            enc(Request::Password("x\"y\\z#".into())),
            "PASSWORD \"x\\\"y\\\\z\\#\"\n"
        );
        assert_eq!(enc(Request::Password(String::new())), "PASSWORD \"\"\n");
        assert_eq!(
            enc(Request::SetVar(
                "u".into(),
                "ups.id".into(),
                "my ups".into()
            )),
            "SET VAR u ups.id \"my ups\"\n"
        );
        assert_eq!(enc(Request::SetTracking(true)), "SET TRACKING ON\n");
    }

    #[test]
    fn refuses_what_upsd_would_mangle() {
        let e = Request::Password("p\tw".into()).encode().unwrap_err();
        assert!(
            e.message()
                .contains("the password contains a control character"),
            "{e}"
        );
        assert!(!e.message().contains("p\tw"));
        assert!(Request::Username("é".into()).encode().is_err());
        assert!(Request::Login("x".repeat(513)).encode().is_err());
        assert!(Request::Login("x".repeat(512)).encode().is_ok());
    }

    #[test]
    fn names_never_show_arguments() {
        assert_eq!(Request::Password("secret".into()).name(), "PASSWORD");
        assert_eq!(Request::GetVar("u".into(), "v".into()).name(), "GET VAR");
    }

    #[test]
    fn parses_reply_lines() {
        let r = Request::GetVar("u".into(), "ups.status".into());
        assert_eq!(
            line_reply(&r, b"VAR u ups.status \"OL CHRG\"").unwrap(),
            ["VAR", "u", "ups.status", "OL CHRG"]
        );
        assert_eq!(
            line_reply(&r, b"VAR u x \"say \\\"hi\\\"\"").unwrap()[3],
            "say \"hi\""
        );
        let e = line_reply(&r, b"ERR DATA-STALE").unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::Connection, "DATA-STALE"));
        assert_eq!(line_reply(&r, b"").unwrap_err().kind(), ErrorKind::Protocol);
        assert_eq!(line_reply(&Request::NetVer, b"1.3").unwrap(), ["1.3"]);
        assert_eq!(
            line_reply(&Request::Logout, b"OK Goodbye").unwrap(),
            ["OK", "Goodbye"]
        );
        assert_eq!(
            line_reply(&r, b"garbage here").unwrap_err().kind(),
            ErrorKind::Protocol
        );
        assert_eq!(
            line_reply(&Request::Login("u".into()), b"VAR x")
                .unwrap_err()
                .kind(),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn reads_list_client_as_addresses() {
        let r = Request::ListClient("ups".into());
        let Shape::List(what) = r.shape() else {
            panic!()
        };
        let mut l = ListReader::new(what);
        for line in [
            &b"BEGIN LIST CLIENT ups"[..],
            b"CLIENT ups 127.0.0.1",
            b"CLIENT ups ::1",
            b"CLIENT ups",
        ] {
            assert!(!l.feed(&r, line).unwrap());
        }
        assert!(l.feed(&r, b"END LIST CLIENT ups").unwrap());
        let got = logged_in("ups", &l.items);
        assert_eq!(
            got,
            [
                LoggedIn {
                    ups: "ups".into(),
                    address: "127.0.0.1".into()
                },
                LoggedIn {
                    ups: "ups".into(),
                    address: "::1".into()
                }
            ]
        );
        let many: Vec<Vec<String>> = (0..MAX_CLIENTS + 5)
            .map(|i| vec![format!("10.0.0.{i}")])
            .collect();
        assert_eq!(logged_in("ups", &many).len(), MAX_CLIENTS);
        let mut l = ListReader::new(vec!["CLIENT".into(), "ups".into()]);
        assert_eq!(
            l.feed(&r, b"ERR UNKNOWN-UPS").unwrap_err().code(),
            "UNKNOWN-UPS"
        );
    }

    #[test]
    fn reads_lists_and_bounds_them() {
        let r = Request::ListVar("u".into());
        let Shape::List(what) = r.shape() else {
            panic!()
        };
        let mut l = ListReader::new(what.clone());
        assert!(!l.feed(&r, b"BEGIN LIST VAR u").unwrap());
        assert!(!l.feed(&r, b"VAR u battery.charge \"100\"").unwrap());
        assert!(l.feed(&r, b"END LIST VAR u").unwrap());
        assert_eq!(
            l.items,
            vec![vec!["battery.charge".to_string(), "100".to_string()]]
        );

        let mut l = ListReader::new(what.clone());
        assert_eq!(
            l.feed(&r, b"ERR UNKNOWN-UPS").unwrap_err().code(),
            "UNKNOWN-UPS"
        );
        let mut l2 = ListReader::new(what.clone());
        assert_eq!(
            l2.feed(&r, b"VAR u x 1").unwrap_err().kind(),
            ErrorKind::Protocol
        );
        let _ = l.items;

        let mut l = ListReader::new(what.clone());
        l.feed(&r, b"BEGIN LIST VAR u").unwrap();
        assert_eq!(
            l.feed(&r, b"VAR other x 1").unwrap_err().kind(),
            ErrorKind::Protocol
        );
        assert_eq!(
            l.feed(&r, b"END LIST VAR other").unwrap_err().kind(),
            ErrorKind::Protocol
        );

        let mut l = ListReader::new(what);
        l.feed(&r, b"BEGIN LIST VAR u").unwrap();
        for i in 0..MAX_LIST {
            l.feed(&r, format!("VAR u v{i} 1").as_bytes()).unwrap();
        }
        assert!(l
            .feed(&r, b"VAR u one.too.many 1")
            .unwrap_err()
            .message()
            .contains("longer than"));
    }

    #[test]
    fn tracking_answers() {
        let r = Request::GetTracking("id".into());
        let of = |line: &[u8]| Tracking::of(line_reply(&r, line));
        assert_eq!(of(b"PENDING").unwrap(), Tracking::Pending);
        assert_eq!(of(b"SUCCESS").unwrap(), Tracking::Success);
        assert_eq!(
            of(b"ERR INSTCMD-FAILED").unwrap(),
            Tracking::Failed("INSTCMD-FAILED".into())
        );
        assert_eq!(of(b"ERR UNKNOWN").unwrap(), Tracking::Unknown);
        assert_eq!(of(b"OK").unwrap_err().kind(), ErrorKind::Protocol);
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            tracking_id(&w("OK TRACKING 98C489FD-821C-4132-9D93-4F6590B55E63")),
            Some("98C489FD-821C-4132-9D93-4F6590B55E63")
        );
        assert_eq!(tracking_id(&w("OK")), None);
        assert_eq!(tracking_id(&w("OK TRACKING")), None);
    }

    #[test]
    fn which_commands_cut_power() {
        for cut in [
            "load.off",
            "load.off.delay",
            "load.cycle",
            "shutdown.return",
            "shutdown.stayoff",
            "shutdown.reboot",
            "shutdown.reboot.graceful",
            "outlet.1.load.off",
            "outlet.2.load.cycle",
            "outlet.1.shutdown.return",
            "driver.killpower",
        ] {
            assert!(cuts_power(cut), "{cut}");
        }
        for safe in [
            "test.battery.start.quick",
            "test.battery.start.deep",
            "test.battery.stop",
            "beeper.toggle",
            "load.on",
            "load.on.delay",
            "shutdown.stop",
            "calibrate.start",
            "offload",
            "driver.reload",
        ] {
            assert!(!cuts_power(safe), "{safe}");
        }
    }
}
