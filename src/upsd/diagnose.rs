//! The diagnosis of the way from here to a UPS's data, step by step, and the credential probe:
//! one implementation that `test-connection`, the setup page's test and the settings' check
//! (`check`, `sync`) share; each face renders the typed steps in its own words.
//!
//! **Architecture invariant:** the diagnosis stops at the first step whose transport failed:
//! nothing more is sent to a upsd that is gone, silent or not speaking NUT's protocol.

use super::client::{Client, Reply, TlsState};
use super::error::{ErrCode, ErrorKind, NutError};
use super::proto::Request;
use crate::json::Object;

/// The steps, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepName {
    Reachable,
    Tls,
    Protocol,
    UpsKnown,
    DriverConnected,
    DataFresh,
    Credentials,
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Reachable => "reachable",
            StepName::Tls => "tls",
            StepName::Protocol => "protocol",
            StepName::UpsKnown => "ups known",
            StepName::DriverConnected => "driver connected",
            StepName::DataFresh => "data fresh",
            StepName::Credentials => "credentials",
        }
    }
}

/// One step's verdict: what was found, or why it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: StepName,
    pub outcome: Result<String, NutError>,
}

impl Step {
    fn passed(name: StepName, message: impl Into<String>) -> Step {
        Step {
            name,
            outcome: Ok(message.into()),
        }
    }

    fn failed(name: StepName, e: NutError) -> Step {
        Step {
            name,
            outcome: Err(e),
        }
    }

    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }

    pub fn error(&self) -> Option<&NutError> {
        self.outcome.as_ref().err()
    }

    /// What was found, or what failed and what to check.
    pub fn message(&self) -> String {
        match &self.outcome {
            Ok(m) => m.clone(),
            Err(e) => match e.hint_text() {
                Some(h) => format!("{}; {h}", e.message()),
                None => e.message(),
            },
        }
    }
}

/// How valid credentials were proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// upsd answered a SET VAR on a variable no UPS has with VAR-NOT-SUPPORTED: the password is
    /// right and the user has SET rights; nothing changed.
    SetProbe,
    /// LOGIN, then LOGOUT.
    Login,
}

/// upsd's word on a user name and password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    Valid(Proof),
    /// The SET probe was refused: a wrong password, or a user without SET rights (an
    /// upsmon-only user); only LOGIN can tell, and it was not asked for.
    PasswordOrRights,
}

/// The name of the variable the SET probe names: no UPS has it, so nothing is ever set.
pub const PROBE_VARIABLE: &str = "power-snitch.credential-probe";

/// Asks upsd whether `user` and `password` are right, on a fresh session, without side effects
/// unless `login` allows a LOGIN (upsd counts it as a client of the UPS until LOGOUT).
/// USERNAME and PASSWORD always answer OK; upsd checks them only when they are used.
pub async fn credentials(
    client: &mut Client,
    ups: &str,
    user: &str,
    password: &str,
    login: bool,
) -> Result<Credentials, NutError> {
    client.disconnect();
    let r = probe_credentials(client, ups, user, password, login).await;
    client.disconnect();
    r
}

async fn probe_credentials(
    client: &mut Client,
    ups: &str,
    user: &str,
    password: &str,
    login: bool,
) -> Result<Credentials, NutError> {
    line(client, &Request::Username(user.into())).await?;
    line(client, &Request::Password(password.into())).await?;
    let probe = Request::SetVar(ups.into(), PROBE_VARIABLE.into(), "x".into());
    match line(client, &probe).await {
        Err(e)
            if matches!(
                e.refusal(),
                Some(ErrCode::VarNotSupported | ErrCode::VarUnknown)
            ) =>
        {
            return Ok(Credentials::Valid(Proof::SetProbe))
        }
        Err(e) if e.refusal() == Some(&ErrCode::AccessDenied) => {}
        // upsd refuses a SET on a UPS whose driver is away before it looks at the user; LOGIN
        // does not ask for the driver, so it still tells.
        Err(e)
            if login
                && matches!(
                    e.refusal(),
                    Some(ErrCode::DriverNotConnected | ErrCode::DataStale)
                ) => {}
        Err(e) => return Err(e),
        Ok(w) => {
            return Err(NutError::new(
                ErrorKind::Protocol,
                "bad-reply",
                format!("SET VAR probe: unexpected `{}`", w.join(" ")),
            ))
        }
    }
    if !login {
        return Ok(Credentials::PasswordOrRights);
    }
    line(client, &Request::Login(ups.into())).await?;
    let _ = client.request(&Request::Logout).await;
    Ok(Credentials::Valid(Proof::Login))
}

/// Runs the steps in order; a step that fails stops the ones that need it, and a transport
/// failure stops everything.
pub async fn diagnose(
    client: &mut Client,
    credentials: Option<(String, String)>,
    login: bool,
) -> Vec<Step> {
    let mut out = Vec::new();
    run(client, credentials, login, &mut out).await;
    client.disconnect();
    out
}

async fn run(
    client: &mut Client,
    creds: Option<(String, String)>,
    login: bool,
    out: &mut Vec<Step>,
) {
    use StepName::*;
    let address = client.target.address();
    if let Err(e) = client.connect().await {
        // The TCP connection worked and STARTTLS (or its handshake) failed.
        if client.tcp_reached() {
            out.push(Step::passed(Reachable, format!("connected to {address}")));
            out.push(Step::failed(Tls, e));
        } else {
            out.push(Step::failed(Reachable, e));
        }
        return;
    }
    out.push(Step::passed(Reachable, format!("connected to {address}")));
    out.push(Step::passed(
        Tls,
        match &client.tls {
            TlsState::Encrypted(v) => format!("encrypted ({v}), upsd's certificate verified"),
            // A build without SSL, apart from an SSL build without a certificate.
            TlsState::NotOffered(code) => match code.as_str() {
                "FEATURE-NOT-SUPPORTED" => "this upsd is built without TLS \
                    (FEATURE-NOT-SUPPORTED): the connection is not encrypted"
                    .to_string(),
                "FEATURE-NOT-CONFIGURED" => "TLS is not configured in this upsd \
                    (FEATURE-NOT-CONFIGURED: no CERTFILE, or CERTPATH and CERTIDENT, in \
                    upsd.conf): the connection is not encrypted"
                    .to_string(),
                _ => format!("upsd offers no TLS (ERR {code}): the connection is not encrypted"),
            },
            TlsState::NoTrust => {
                "not attempted: no CA file or pinned certificate to verify upsd with".to_string()
            }
            TlsState::Off => "off (--tls off)".to_string(),
            TlsState::NotBuilt => "not attempted: this build has no TLS".to_string(),
        },
    ));

    let versions = async {
        let v = line(client, &Request::Ver).await?;
        let n = line(client, &Request::NetVer).await?;
        Ok::<_, NutError>(format!("{} (protocol {})", v.join(" "), n.join(" ")))
    };
    match versions.await {
        Ok(m) => out.push(Step::passed(Protocol, m)),
        Err(e) => return out.push(Step::failed(Protocol, e)),
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
                return out.push(Step::failed(UpsKnown, e));
            }
            Err(e) => return out.push(Step::failed(UpsKnown, e)),
        },
    };
    match line(client, &Request::GetUpsDesc(ups.clone())).await {
        Ok(w) => out.push(Step::passed(
            UpsKnown,
            format!(
                "upsd serves `{ups}` ({})",
                w.get(2).map_or("", String::as_str)
            ),
        )),
        Err(e) => return out.push(Step::failed(UpsKnown, e)),
    }

    match line(client, &Request::GetVar(ups.clone(), "ups.status".into())).await {
        Ok(w) => {
            out.push(Step::passed(
                DriverConnected,
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
                out.push(Step::failed(DataFresh, e));
            } else {
                out.push(Step::passed(DataFresh, format!("ups.status is {status}")));
            }
        }
        Err(e) if e.refusal() == Some(&ErrCode::DataStale) => {
            out.push(Step::passed(
                DriverConnected,
                "the driver is connected to upsd",
            ));
            out.push(Step::failed(DataFresh, e));
        }
        Err(e) => return out.push(Step::failed(DriverConnected, e)),
    }

    let Some((user, password)) = creds else {
        return;
    };
    let step = match credentials(client, &ups, &user, &password, login).await {
        Ok(self::Credentials::Valid(Proof::SetProbe)) => Step::passed(Credentials, format!("`{user}` and its password are valid (checked with a SET probe that changes nothing; the user has SET rights)")),
        Ok(self::Credentials::Valid(Proof::Login)) => Step::passed(
            Credentials,
            format!("`{user}` and its password are valid (checked by LOGIN, then LOGOUT)"),
        ),
        Ok(self::Credentials::PasswordOrRights) => Step::failed(
            Credentials,
            NutError::new(
                ErrorKind::Authentication,
                "login-needed",
                format!("upsd refused the SET probe: either the password of `{user}` is wrong, or the user has no SET rights (an upsmon-only user)"),
            )
            .hint("add --login to check by LOGIN (upsd counts it as a client of the UPS until LOGOUT)"),
        ),
        Err(e) => Step::failed(Credentials, e),
    };
    out.push(step);
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

/// The steps as JSON: `{"ok", "steps": [{"name", "ok", "error_kind", "code", "message"}]}`.
pub fn json(steps: &[Step]) -> String {
    let ok = steps.iter().all(Step::ok);
    let mut list = String::from("[");
    for (i, s) in steps.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        let mut o = Object::new(&mut list);
        o.str("name", s.name.as_str())
            .raw("ok", if s.ok() { "true" } else { "false" })
            .opt_str("error_kind", s.error().map(|e| e.kind().as_str()))
            .opt_str("code", s.error().map(NutError::code))
            .str("message", &s.message());
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
