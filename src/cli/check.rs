//! `power-snitch check`: everything at once — NUT's files, the hardware, the cross-check, the
//! live upsd and the settings — as one findings report in `validate`'s shape.

use std::time::Duration;

use super::{client_options, probe, runtime, settings, validate, Args, Format};
use crate::json;
use crate::nut::diag::{Code, Finding, Severity};
use crate::nut::lexer::Pos;
use crate::nut::Parsed;
use crate::probe::cross::{self, Live, LiveUps};
use crate::probe::Inventory;
use crate::upsd::client::Client;
use crate::upsd::error::NutError;
use crate::upsd::target::Target;

/// Everything `check` found, before it is rendered.
pub struct Checked {
    pub nut: validate::Nut,
    pub findings: Vec<Finding>,
    pub inv: Inventory,
    /// Which section serves which detected UPS (its index in `inv.ups`).
    pub claims: Vec<(String, usize)>,
}

pub fn run(args: &Args) -> (u8, String) {
    let common = &args.common;
    if let Some(extra) = args.positional.first() {
        return validate::fail(common.format, &format!("check takes no argument `{extra}`"));
    }
    match gather(args) {
        Ok(c) => render(common.format, &c),
        Err(e) => validate::fail(common.format, &e),
    }
}

/// Runs every check (blocking: it probes the hardware and asks upsd).
pub fn gather(args: &Args) -> Result<Checked, String> {
    let common = &args.common;
    if common.no_upsd && common.upsd.is_some() {
        return Err("give --upsd or --no-upsd, not both".into());
    }
    let nut = validate::Nut::resolve(common)?;
    let stored = settings::stored(args);
    let target = upsd_target(args, stored.as_ref())?;
    let root = probe::root(common)?;
    let (parsed, mut findings) = nut.validate();
    let inv = probe::hardware(common, &root, parsed.ups.as_ref());

    let live = match &target {
        Some(t) => match ask_upsd(args, t) {
            Ok(l) => Some(l),
            Err(e) => {
                findings.push(unreachable(&parsed, t, &e));
                None
            }
        },
        None => None,
    };
    let conf = parsed.ups.clone().unwrap_or_default();
    let outcome = crate::probe::cross_check(&root, &conf, &inv, live.as_ref(), nut.version);
    findings.extend(outcome.findings);
    if let Some(s) = &stored {
        findings.extend(settings::compare(args, s, &parsed, &nut.dir));
    }
    crate::nut::sort(&mut findings);
    Ok(Checked {
        nut,
        findings,
        inv,
        claims: outcome.claims,
    })
}

/// The report of a check, in `validate`'s shape, and its exit code.
pub fn render(format: Format, c: &Checked) -> (u8, String) {
    let (inv, findings, nut) = (&c.inv, &c.findings, &c.nut);
    let devices = json::array(inv.ups.iter().enumerate().map(|(i, u)| {
        let section = c
            .claims
            .iter()
            .find(|(_, j)| *j == i)
            .map(|(n, _)| n.as_str());
        let mut d = probe::device_json(inv, u, None);
        d.pop();
        d.push_str(",\"section\":");
        match section {
            Some(n) => {
                json::string(&mut d, n);
            }
            None => d.push_str("null"),
        }
        d.push('}');
        d
    }));
    let (code, report) = nut.report(format, findings, &[("devices", devices)]);
    let out = match format {
        Format::Human => format!("{}{report}", found(inv, &c.claims)),
        Format::Json => report,
    };
    (code, out)
}

/// One line per UPS found and the section that serves it.
fn found(inv: &Inventory, claims: &[(String, usize)]) -> String {
    let mut out = String::new();
    for (i, u) in inv.ups.iter().enumerate() {
        let by = match claims.iter().find(|(_, j)| *j == i) {
            Some((n, _)) => format!("[{n}]"),
            None => "no section".to_string(),
        };
        out.push_str(&format!("found: {} -> {by}\n", cross::describe(inv, u)));
    }
    out
}

/// Which upsd to ask: `--upsd`, else the first stored UPS's, else localhost; none with
/// `--no-upsd`.
fn upsd_target(
    args: &Args,
    stored: Option<&crate::settings::model::Settings>,
) -> Result<Option<Target>, String> {
    let common = &args.common;
    if common.no_upsd {
        return Ok(None);
    }
    if let Some(t) = &common.upsd {
        let spec = if t.contains('@') {
            t.clone()
        } else {
            format!("@{t}")
        };
        let mut target = Target::parse(&spec).map_err(|e| format!("--upsd: {e}"))?;
        target.ups = None;
        return Ok(Some(target));
    }
    Ok(Some(match stored.and_then(|s| s.ups.first()) {
        Some(u) => Target {
            ups: None,
            host: u.upsd_host.clone(),
            port: u.upsd_port,
        },
        None => Target::localhost(),
    }))
}

/// Asks upsd which UPSes it serves and, for each, the variables the cross-check compares.
fn ask_upsd(args: &Args, target: &Target) -> Result<Live, NutError> {
    let mut opts = match client_options(&args.common) {
        Ok(o) => o,
        Err(e) => {
            return Err(NutError::new(
                crate::upsd::error::ErrorKind::Configuration,
                "options",
                e,
            ))
        }
    };
    // A check should not wait long for a upsd that is not there.
    if args.common.timeout.is_none() {
        opts.connect_timeout = Duration::from_secs(2);
        opts.request_timeout = Duration::from_secs(2);
    }
    if args.common.retries.is_none() {
        opts.retry_count = 0;
    }
    let mut client = Client::new(target.clone(), opts);
    // The whole question to upsd ends within the command's time.
    let total = args
        .common
        .timeout
        .map_or(Duration::from_secs(10), Duration::from_secs_f64);
    client.set_deadline(Some(tokio::time::Instant::now() + total));
    let address = target.address();
    let rt = runtime()
        .map_err(|e| NutError::new(crate::upsd::error::ErrorKind::Connection, "runtime", e))?;
    let result = rt.block_on(async {
        let list = client.list_ups().await?;
        let mut ups = Vec::new();
        for (name, _) in list {
            let state = match client.vars(&name).await {
                Ok(vars) => {
                    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    LiveUps::Vars {
                        driver: get("driver.name"),
                        vendor_id: get("ups.vendorid"),
                        product_id: get("ups.productid"),
                        status: get("ups.status"),
                    }
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => LiveUps::Error(e.code().to_string()),
            };
            ups.push((name, state));
        }
        client.disconnect();
        Ok(ups)
    });
    match result {
        Ok(ups) => Ok(Live {
            target: address,
            ups,
        }),
        Err(e) => Err(e),
    }
}

/// upsd did not answer: an error where nut.conf's MODE runs upsd here, else information.
fn unreachable(parsed: &Parsed, target: &Target, e: &NutError) -> Finding {
    use crate::nut::nut_conf::Mode;
    let mode = parsed.nut.as_ref().and_then(|n| n.mode).map(|m| m.0);
    let serves = matches!(mode, Some(Mode::Standalone) | Some(Mode::NetServer));
    let severity = if serves {
        Severity::Error
    } else {
        Severity::Info
    };
    let mut f = Finding::new(
        severity,
        Code::UpsdUnreachable,
        "",
        Pos::new(0, 0),
        format!("cannot ask upsd at {}: {}", target.address(), e.message()),
    );
    f.hint = Some(e.hint_text().map_or_else(
        || {
            "start it (systemctl start nut-server), or give --upsd HOST:PORT, or --no-upsd"
                .to_string()
        },
        str::to_string,
    ));
    f
}
