//! **The edge** that checks NUT live after a change, within a bounded time, with the upsd
//! client: upsd serves each section whose driver was started or restarted, the driver is
//! connected and its data fresh (no `WAIT`, `DRIVER-NOT-CONNECTED`, `DATA-STALE`), and each
//! MONITOR account of upsmon.conf for this machine's upsd logs in.

use std::time::Duration;

use crate::nut::target::Target;
use crate::nut::Parsed;
use crate::upsd::client::{Client, Options, Reply};
use crate::upsd::diagnose::credentials;
use crate::upsd::proto::Request;
use crate::upsd::tls::{TlsMode, TlsOptions};

use super::plan::{Action, Op, Unit};

/// How long the verification may take by default: a USB driver's first poll takes seconds.
pub const TIMEOUT: Duration = Duration::from_secs(45);

/// Where upsd listens, as a client reaches it: a wildcard address by loopback.
fn upsd_address(parsed: &Parsed) -> (String, u16) {
    let listeners = parsed
        .upsd
        .as_ref()
        .map(|u| u.listeners())
        .unwrap_or_else(|| vec![("127.0.0.1".into(), crate::nut::upsd_conf::DEFAULT_PORT)]);
    let (addr, port) = listeners
        .into_iter()
        .next()
        .unwrap_or(("127.0.0.1".into(), crate::nut::upsd_conf::DEFAULT_PORT));
    let addr = match addr.as_str() {
        "0.0.0.0" | "*" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        _ => addr,
    };
    (addr, port)
}

fn local(host: &str, listen: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1") || host == listen
}

/// What to verify after `actions` brought NUT to `parsed`: the sections whose driver was
/// started or restarted (every section when upsd itself started or restarted), and the
/// MONITOR lines for this upsd when upsmon runs. Ok: what was seen; Err: what failed and the
/// unit whose logs say why.
pub fn verify(
    parsed: &Parsed,
    actions: &[Action],
    limit: Duration,
) -> Result<Vec<String>, (String, Option<Unit>)> {
    let upsd_started = actions
        .iter()
        .any(|a| a.unit == Unit::Upsd && matches!(a.op, Op::Start | Op::Restart));
    let mut sections: Vec<String> = actions
        .iter()
        .filter(|a| matches!(a.op, Op::Start | Op::Restart))
        .filter_map(|a| match &a.unit {
            Unit::Driver(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    if upsd_started {
        for s in parsed.ups.iter().flat_map(|u| u.sections.iter()) {
            if !sections.contains(&s.name) {
                sections.push(s.name.clone());
            }
        }
    }
    let upsd_runs = actions
        .iter()
        .any(|a| a.unit == Unit::Upsd && a.op != Op::Stop)
        || !sections.is_empty();
    let upsmon_touched = actions
        .iter()
        .any(|a| a.unit == Unit::Upsmon && a.op != Op::Stop);
    if !upsd_runs && !upsmon_touched {
        return Ok(Vec::new());
    }
    let (host, port) = upsd_address(parsed);
    let monitors: Vec<_> = parsed
        .upsmon
        .iter()
        .flat_map(|m| m.monitors.iter())
        .filter(|m| local(&m.host, &host) && m.port == port)
        .cloned()
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| (format!("cannot start the verification: {e}"), None))?;
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + limit;
        let opts = Options {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            retry_count: 0,
            retry_delay: Duration::from_millis(200),
            tls: TlsOptions {
                mode: TlsMode::Off,
                ..TlsOptions::default()
            },
        };
        let target = Target {
            ups: None,
            host: host.clone(),
            port,
        };
        let mut seen = Vec::new();
        for ups in &sections {
            let mut client = Client::new(target.clone(), opts.clone());
            client.set_deadline(Some(deadline));
            let mut last;
            loop {
                let req = Request::GetVar(ups.clone(), "ups.status".into());
                match client.request(&req).await {
                    Ok(Reply::Line(w)) if w.len() >= 4 && w[3] != "WAIT" && !w[3].is_empty() => {
                        seen.push(format!("upsd serves [{ups}]: ups.status {}", w[3]));
                        break;
                    }
                    Ok(other) => last = format!("ups.status is {other:?}"),
                    Err(e) => {
                        last = e.message();
                        client.disconnect();
                    }
                }
                if tokio::time::Instant::now() + Duration::from_millis(250) >= deadline {
                    return Err((
                        format!(
                            "upsd at {host}:{port} does not serve [{ups}] with fresh data within {} s (last: {last})",
                            limit.as_secs()
                        ),
                        Some(Unit::Driver(ups.clone())),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        for m in &monitors {
            let mut client = Client::new(target.clone(), opts.clone());
            client.set_deadline(Some(deadline));
            let mut last;
            loop {
                match credentials(&mut client, &m.ups, &m.user, &m.password, true).await {
                    Ok(_) => {
                        seen.push(format!("the MONITOR account `{}` logs in to [{}]", m.user, m.ups));
                        break;
                    }
                    Err(e) => last = e.message(),
                }
                if tokio::time::Instant::now() + Duration::from_millis(250) >= deadline {
                    return Err((
                        format!(
                            "upsmon.conf's MONITOR {}@{} cannot log in as `{}` within {} s: {last}",
                            m.ups,
                            m.host,
                            m.user,
                            limit.as_secs()
                        ),
                        Some(Unit::Upsd),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(seen)
    })
}
