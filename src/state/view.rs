//! The agent's state rendered as the control socket (`status`, `events`) and the page's JSON
//! API give it: JSON with our writer, and text for people. Pure.

use std::time::{Duration, SystemTime};

use super::monitor::{Data, LinkState};
use super::ring::Event;
use super::{Shared, UpsSlot};
use crate::json::{self, Object};
use crate::settings::store::timestamp;

fn opt_num(o: &mut Object, k: &str, v: Option<u64>) {
    match v {
        Some(v) => o.num(k, v),
        None => o.raw(k, "null"),
    };
}

fn data_str(d: &Data) -> &str {
    match d {
        Data::Unknown => "unknown",
        Data::Ok => "ok",
        Data::Unavailable(code) => code,
    }
}

/// `status` as JSON.
pub fn status_json(s: &Shared) -> String {
    status_json_as(s, true)
}

/// The status as anyone may read it while the status is public: the UPSes and the upsd
/// connections only, without the agent's process, its files and the check's counts.
pub fn public_status_json(s: &Shared) -> String {
    status_json_as(s, false)
}

fn status_json_as(s: &Shared, full: bool) -> String {
    let mut upsd = String::from("[");
    for (i, l) in s.links.iter().enumerate() {
        if i > 0 {
            upsd.push(',');
        }
        let mut o = Object::new(&mut upsd);
        let failures = match l.link.state {
            LinkState::Retrying { failures } | LinkState::BackingOff { failures, .. } => failures,
            _ => 0,
        };
        o.str("address", &l.address)
            .str("state", l.link.state.as_str())
            .num("since", l.link.since)
            .num("failures", u64::from(failures))
            .opt_str(
                "error",
                (!l.link.is_up() && !l.link.last_error.is_empty())
                    .then_some(l.link.last_error.as_str()),
            );
        o.end();
    }
    upsd.push(']');
    let mut ups = String::from("[");
    for (i, u) in s.ups.iter().enumerate() {
        if i > 0 {
            ups.push(',');
        }
        ups_json(&mut ups, u, &s.battery);
    }
    ups.push(']');
    let (e, w, n) = s.findings;
    let mut findings = String::new();
    let mut o = Object::new(&mut findings);
    o.num("errors", e as u64)
        .num("warnings", w as u64)
        .num("infos", n as u64)
        .num("checked", s.checked_at);
    o.end();
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", "true")
        .str("version", env!("CARGO_PKG_VERSION"));
    if full {
        o.num("pid", u64::from(std::process::id()))
            .num("started", s.started)
            .str("settings", &s.settings_path)
            .str("nut_dir", &s.nut_dir)
            .raw("findings", &findings);
    }
    o.raw("upsd", &upsd).raw("ups", &ups);
    o.end();
    out
}

fn ups_json(out: &mut String, u: &UpsSlot, battery: &super::battery::Results) {
    let st = &u.state;
    let mut flags = String::from("[");
    for (i, w) in st.flags.words().enumerate() {
        if i > 0 {
            flags.push(',');
        }
        json::string(&mut flags, w);
    }
    flags.push(']');
    let mut o = Object::new(out);
    o.str("name", &u.name)
        .str("upsd", &u.upsd)
        .str("data", data_str(&st.data))
        .str("status", &st.status_text())
        .raw("flags", &flags)
        .num("since", st.since);
    opt_num(&mut o, "charge", st.charge.map(u64::from));
    o.opt_str("alarm", (!st.alarm.is_empty()).then_some(st.alarm.as_str()))
        .num("charge_low", u64::from(st.low))
        .num("charge_warning", u64::from(st.warning))
        .num("poll_interval", u64::from(u.poll_interval))
        .num("polls", u.polls);
    opt_num(&mut o, "last_poll_ms", u.last_poll_ms);
    let mut readings = String::new();
    let mut r = Object::new(&mut readings);
    for (name, v) in super::monitor::READINGS.iter().zip(u.readings.values) {
        if let Some(v) = v {
            r.raw(name, &v.to_string());
        }
    }
    r.end();
    o.raw(
        "battery",
        &super::battery::ups_json(battery, &u.name, &st.status_text()),
    )
    .raw("readings", &readings)
    .opt_str(
        "mfr",
        (!u.readings.mfr.is_empty()).then_some(u.readings.mfr.as_str()),
    )
    .opt_str(
        "model",
        (!u.readings.model.is_empty()).then_some(u.readings.model.as_str()),
    );
    o.end();
}

fn when(t: u64) -> String {
    timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(t))
}

/// `status` for people.
pub fn status_text(s: &Shared) -> String {
    let mut out = String::new();
    if s.ups.is_empty() {
        out.push_str("no UPS in the settings\n");
    }
    for u in &s.ups {
        let st = &u.state;
        let what = match &st.data {
            Data::Unknown => "not read yet".to_string(),
            Data::Ok => format!("{} since {}", st.status_text(), when(st.since)),
            Data::Unavailable(code) => format!("{code} (last status {})", st.status_text()),
        };
        let charge = st
            .charge
            .map_or(String::new(), |c| format!(", battery {c}%"));
        out.push_str(&format!(
            "{} at {}: {what}{charge}; polled every {} s, {} polls\n",
            u.name, u.upsd, u.poll_interval, u.polls
        ));
    }
    for l in &s.links {
        let err = if l.link.is_up() || l.link.last_error.is_empty() {
            String::new()
        } else {
            format!(" ({})", l.link.last_error)
        };
        out.push_str(&format!(
            "upsd {}: {} since {}{err}\n",
            l.address,
            l.link.state.as_str(),
            when(l.link.since)
        ));
    }
    let (e, w, n) = s.findings;
    out.push_str(&format!(
        "{}: {e} error(s), {w} warning(s), {n} info(s), checked {}\n",
        s.nut_dir,
        when(s.checked_at)
    ));
    out
}

fn level_str(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

pub fn events_json<'a>(events: impl Iterator<Item = &'a Event>) -> String {
    let mut list = String::from("[");
    for (i, e) in events.enumerate() {
        if i > 0 {
            list.push(',');
        }
        let mut o = Object::new(&mut list);
        o.num("seq", e.seq)
            .num("time", e.time)
            .str("level", level_str(e.level))
            .str("source", &e.source)
            .str("text", &e.text);
        o.end();
    }
    list.push(']');
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", "true").raw("events", &list);
    o.end();
    out
}

pub fn events_text<'a>(events: impl Iterator<Item = &'a Event>) -> String {
    events
        .map(|e| {
            format!(
                "{} {} {}: {}\n",
                when(e.time),
                level_str(e.level),
                e.source,
                e.text
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ring;

    #[test]
    fn state_view_events_render() {
        let mut r = ring::Ring::default();
        r.push(0, log::Level::Warn, "ups1", "on battery (OB)");
        assert_eq!(
            events_json(r.last(10)),
            r#"{"ok":true,"events":[{"seq":1,"time":0,"level":"warning","source":"ups1","text":"on battery (OB)"}]}"#
        );
        assert_eq!(
            events_text(r.last(10)),
            "1970-01-01T00:00:00Z warning ups1: on battery (OB)\n"
        );
    }
}
