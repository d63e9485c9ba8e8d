//! `power-snitch test-connection [UPS@HOST[:PORT]] [--user U --password-stdin] [--login]`:
//! a step-by-step verdict on the way from here to the UPS's data, without side effects unless
//! `--login` asks for a LOGIN test.

use std::io::BufRead;

use super::status::{client_for, usage};
use super::{runtime, Args, Format};
use crate::json::Object;
use crate::upsd::client::{Client, Reply, TlsState};
use crate::upsd::error::{ErrorKind, NutError};
use crate::upsd::proto::Request;
use crate::upsd::target::Target;

/// One step's verdict.
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub error: Option<NutError>,
    pub message: String,
}

impl Step {
    fn ok(name: &'static str, message: impl Into<String>) -> Step {
        Step {
            name,
            ok: true,
            error: None,
            message: message.into(),
        }
    }

    fn failed(name: &'static str, e: NutError) -> Step {
        let mut message = e.message.clone();
        if let Some(h) = &e.hint {
            message.push_str(&format!("; {h}"));
        }
        Step {
            name,
            ok: false,
            error: Some(e),
            message,
        }
    }
}

pub fn run(args: &Args) -> (u8, String) {
    let c = &args.common;
    let credentials = match (&c.user, c.password_stdin) {
        (None, false) => None,
        (Some(u), true) => match read_password() {
            Ok(p) => Some((u.clone(), p)),
            Err(e) => return usage(c.format, &e),
        },
        (Some(_), false) => {
            return usage(
                c.format,
                "--user needs --password-stdin (the password is read from standard input)",
            )
        }
        (None, true) => return usage(c.format, "--password-stdin needs --user"),
    };
    if c.login && credentials.is_none() {
        return usage(c.format, "--login needs --user and --password-stdin");
    }
    let mut client = match client_for(args, "test-connection") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let target = client.target.clone();
    let steps = runtime().block_on(steps(&mut client, credentials, c.login));
    let ok = steps.iter().all(|s| s.ok);
    let out = match c.format {
        Format::Human => human(&target, &steps, ok),
        Format::Json => json(&steps, ok),
    };
    (if ok { 0 } else { 2 }, out)
}

/// The first line of standard input, without its newline.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs the steps in order; a step that fails stops the ones that need it.
pub async fn steps(
    client: &mut Client,
    credentials: Option<(String, String)>,
    login: bool,
) -> Vec<Step> {
    let mut out = Vec::new();
    let address = client.target.address();
    if let Err(e) = client.connect().await {
        // The TCP connection worked and STARTTLS (or its handshake) failed.
        if e.code.starts_with("tls") || e.message.starts_with("STARTTLS") {
            out.push(Step::ok("reachable", format!("connected to {address}")));
            out.push(Step::failed("tls", e));
        } else {
            out.push(Step::failed("reachable", e));
        }
        return out;
    }
    out.push(Step::ok("reachable", format!("connected to {address}")));
    out.push(Step::ok(
        "tls",
        match &client.tls {
            TlsState::Encrypted(v) => format!("encrypted ({v}), upsd's certificate verified"),
            TlsState::NotOffered(code) => {
                format!("upsd offers no TLS (ERR {code}): the connection is not encrypted")
            }
            TlsState::NoTrust => {
                "not attempted: no CA file or pinned certificate to verify upsd with".to_string()
            }
            TlsState::Off => "off (--tls off)".to_string(),
            TlsState::NotBuilt => "not attempted: this build has no TLS".to_string(),
        },
    ));

    let ver = line(client, &Request::Ver).await;
    let netver = line(client, &Request::NetVer).await;
    match (ver, netver) {
        (Ok(v), Ok(n)) => out.push(Step::ok(
            "protocol",
            format!("{} (protocol {})", v.join(" "), n.join(" ")),
        )),
        (Err(e), _) | (_, Err(e)) => {
            out.push(Step::failed("protocol", e));
            return out;
        }
    }

    let ups = match client.target.ups.clone() {
        Some(u) => u,
        None => match client.list_ups().await {
            Ok(list) if list.len() == 1 => list[0].0.clone(),
            Ok(list) => {
                let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
                let e = NutError::new(
                    ErrorKind::Configuration,
                    "which-ups",
                    format!("upsd serves {} UPSes: {}", list.len(), names.join(", ")),
                )
                .hint("name one: test-connection UPS@HOST");
                out.push(Step::failed("ups known", e));
                return out;
            }
            Err(e) => {
                out.push(Step::failed("ups known", e));
                return out;
            }
        },
    };
    match line(client, &Request::GetUpsDesc(ups.clone())).await {
        Ok(w) => out.push(Step::ok(
            "ups known",
            format!(
                "upsd serves `{ups}` ({})",
                w.get(2).map_or("", String::as_str)
            ),
        )),
        Err(e) => {
            out.push(Step::failed("ups known", e));
            return out;
        }
    }

    match line(client, &Request::GetVar(ups.clone(), "ups.status".into())).await {
        Ok(w) => {
            out.push(Step::ok(
                "driver connected",
                "the driver is connected to upsd",
            ));
            let status = w.get(3).cloned().unwrap_or_default();
            if status == "WAIT" || status.is_empty() {
                let e = NutError::new(
                    ErrorKind::Connection,
                    "no-data",
                    "the driver has no data yet (ups.status is WAIT)",
                )
                .hint("wait a few seconds after the driver starts");
                out.push(Step::failed("data fresh", e));
            } else {
                out.push(Step::ok("data fresh", format!("ups.status is {status}")));
            }
        }
        Err(e) if e.code == "DATA-STALE" => {
            out.push(Step::ok(
                "driver connected",
                "the driver is connected to upsd",
            ));
            out.push(Step::failed("data fresh", e));
        }
        Err(e) => {
            out.push(Step::failed("driver connected", e));
            return out;
        }
    }

    if let Some((user, password)) = credentials {
        out.push(check_credentials(client, &ups, &user, &password, login).await);
    }
    out
}

async fn line(client: &mut Client, req: &Request) -> Result<Vec<String>, NutError> {
    match client.request(req).await? {
        Reply::Line(w) => Ok(w),
        _ => Err(NutError::new(
            ErrorKind::Protocol,
            "bad-reply",
            format!("{}: not a one-line reply", req.name()),
        )),
    }
}

/// USERNAME and PASSWORD always answer OK; upsd checks them only when they are used. A SET VAR
/// on a variable no UPS has tells, for a user with SET rights, without changing anything; only
/// LOGIN can tell for other users, and it is done only when asked.
async fn check_credentials(
    client: &mut Client,
    ups: &str,
    user: &str,
    password: &str,
    login: bool,
) -> Step {
    const NAME: &str = "credentials";
    // A fresh session, so nothing of the steps above carries over.
    client.disconnect();
    for req in [
        Request::Username(user.into()),
        Request::Password(password.into()),
    ] {
        if let Err(e) = line(client, &req).await {
            return Step::failed(NAME, e);
        }
    }
    let probe = Request::SetVar(
        ups.into(),
        "power-snitch.credential-probe".into(),
        "x".into(),
    );
    match line(client, &probe).await {
        Err(e) if e.code == "VAR-NOT-SUPPORTED" || e.code == "VAR-UNKNOWN" => {
            client.disconnect();
            return Step::ok(NAME, format!("`{user}` and its password are valid (checked with a SET probe that changes nothing; the user has SET rights)"));
        }
        Err(e) if e.code == "ACCESS-DENIED" => {}
        Err(e) => return Step::failed(NAME, e),
        Ok(w) => {
            return Step::failed(
                NAME,
                NutError::new(
                    ErrorKind::Protocol,
                    "bad-reply",
                    format!("SET VAR probe: unexpected `{}`", w.join(" ")),
                ),
            );
        }
    }
    if !login {
        client.disconnect();
        let e = NutError::new(
            ErrorKind::Authentication,
            "login-needed",
            format!("upsd refused the SET probe: either the password of `{user}` is wrong, or the user has no SET rights (an upsmon-only user)"),
        )
        .hint("add --login to check by LOGIN (upsd counts it as a client of the UPS until LOGOUT)");
        return Step::failed(NAME, e);
    }
    let result = match line(client, &Request::Login(ups.into())).await {
        Ok(_) => {
            let _ = client.request(&Request::Logout).await;
            Step::ok(
                NAME,
                format!("`{user}` and its password are valid (checked by LOGIN, then LOGOUT)"),
            )
        }
        Err(e) => Step::failed(NAME, e),
    };
    client.disconnect();
    result
}

fn human(target: &Target, steps: &[Step], ok: bool) -> String {
    let mut out = String::new();
    for s in steps {
        let mark = if s.ok { "ok  " } else { "FAIL" };
        let kind = s.error.as_ref().map_or(String::new(), |e| {
            format!(" [{} {}]", e.kind.as_str(), e.code)
        });
        out.push_str(&format!("{mark} {}{kind}: {}\n", s.name, s.message));
    }
    let verdict = if ok { "all steps passed" } else { "failed" };
    out.push_str(&format!("{}: {verdict}\n", target.address()));
    out
}

pub fn json(steps: &[Step], ok: bool) -> String {
    let mut list = String::from("[");
    for (i, s) in steps.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        let mut o = Object::new(&mut list);
        o.str("name", s.name)
            .raw("ok", if s.ok { "true" } else { "false" })
            .opt_str("error_kind", s.error.as_ref().map(|e| e.kind.as_str()))
            .opt_str("code", s.error.as_ref().map(|e| e.code.as_str()))
            .str("message", &s.message);
        o.end();
    }
    list.push(']');
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", if ok { "true" } else { "false" })
        .raw("steps", &list);
    o.end();
    out + "\n"
}
