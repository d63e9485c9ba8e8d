//! The pages as HTML, sans I/O: each takes plain data and returns a document (or, for the
//! status page's refreshing part, a fragment). Every text from outside goes through [`esc`].
//!
//! **Invariants:** no page has a password's value in it (the UPS password field is always
//! empty, saying "unchanged"); every form that changes something carries the session's CSRF
//! token; every page works without JavaScript (the script only refreshes the status and asks
//! before the sync).

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::auth::Session;
use super::form::{encode, FieldError};
use crate::nut::diag::{Finding, Severity};
use crate::settings::model::{LogLevel, Settings, UpsEntry};
use crate::state::monitor::Data;
use crate::state::ring::Event;
use crate::state::{Shared, UpsSlot};
use crate::upsd::diagnose::Step;

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn when(t: u64) -> String {
    if t == 0 {
        return "—".into();
    }
    crate::settings::store::timestamp(UNIX_EPOCH + Duration::from_secs(t))
        .replace('T', " ")
        .replace('Z', " UTC")
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Which page a document is, for the navigation, and who is looking.
pub struct Frame<'a> {
    pub title: &'a str,
    pub current: &'a str,
    pub session: Option<&'a Session>,
}

const NAV: &[(&str, &str)] = &[
    ("/", "Status"),
    ("/setup", "Setup"),
    ("/check", "Check"),
    ("/test", "Test connection"),
    ("/clients", "NUT clients"),
    ("/commands", "Commands"),
];

/// The hidden field every changing form carries.
pub fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// A whole document around `body`.
pub fn page(f: &Frame, body: &str) -> String {
    let mut nav = String::new();
    for (href, label) in NAV {
        let cur = if *href == f.current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{cur}>{label}</a>");
    }
    match f.session {
        Some(s) => {
            let _ = write!(
                nav,
                "<form method=\"post\" action=\"/logout\" class=\"inline\">{}<button class=\"link\">Log out</button></form>",
                csrf_field(s)
            );
        }
        None => nav.push_str("<a href=\"/login\">Log in</a>"),
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · Power Snitch</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
<link rel=\"icon\" href=\"/static/icon.svg\"><script src=\"/static/app.js\" defer></script></head>\
<body><header><a class=\"brand\" href=\"/\">⚡ Power Snitch</a><nav>{nav}</nav></header>\
<main>{body}</main><footer>power-snitch {}</footer></body></html>\n",
        esc(f.title),
        env!("CARGO_PKG_VERSION")
    )
}

/// A status word in words, and how it looks: `ok`, `info`, `warn`, `bad` or `muted`.
pub fn word(w: &str) -> (&'static str, &'static str) {
    match w {
        "OL" => ("on line", "ok"),
        "OB" => ("on battery", "warn"),
        "LB" => ("low battery", "bad"),
        "HB" => ("high battery", "warn"),
        "RB" => ("replace battery", "warn"),
        "CHRG" => ("charging", "info"),
        "DISCHRG" => ("discharging", "warn"),
        "BYPASS" => ("on bypass", "warn"),
        "CAL" => ("calibrating", "info"),
        "OFF" => ("output off", "bad"),
        "OVER" => ("overloaded", "bad"),
        "TRIM" => ("trimming voltage", "info"),
        "BOOST" => ("boosting voltage", "info"),
        "FSD" => ("forced shutdown", "bad"),
        "ALARM" => ("alarm", "bad"),
        "WAIT" => ("waiting for the driver", "muted"),
        _ => ("", "muted"),
    }
}

fn rank(class: &str) -> u8 {
    match class {
        "bad" => 4,
        "warn" => 3,
        "muted" => 2,
        "ok" => 1,
        _ => 0,
    }
}

fn num(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if (v.fract()).abs() < 1e-9 => format!("{v:.0}{unit}"),
        Some(v) => format!("{v:.1}{unit}"),
        None => "—".into(),
    }
}

fn runtime(v: Option<f64>) -> String {
    match v {
        Some(s) if s >= 3600.0 => {
            format!("{} h {} min", (s / 3600.0) as u64, (s as u64 % 3600) / 60)
        }
        Some(s) if s >= 60.0 => format!("{} min", (s / 60.0).round() as u64),
        Some(s) => format!("{s:.0} s"),
        None => "—".into(),
    }
}

fn ups_card(out: &mut String, u: &UpsSlot, link: Option<&str>) {
    let st = &u.state;
    let r = &u.readings;
    let mut badges = String::new();
    let mut class = "muted";
    match &st.data {
        Data::Unknown => {
            badges.push_str("<span class=\"badge muted\">waiting for the first reading</span>");
        }
        Data::Unavailable(code) => {
            class = "bad";
            let _ = write!(
                badges,
                "<span class=\"badge bad\">no data: {}</span>",
                esc(code)
            );
        }
        Data::Ok => {
            class = "ok";
            for w in st.flags.words() {
                let (text, c) = word(w);
                if rank(c) > rank(class) {
                    class = c;
                }
                let _ = write!(
                    badges,
                    "<span class=\"badge {c}\" title=\"{w}\">{text}</span>"
                );
            }
            for w in st.other.split_ascii_whitespace() {
                let _ = write!(badges, "<span class=\"badge muted\">{}</span>", esc(w));
            }
            if !st.alarm.is_empty() {
                let _ = write!(
                    badges,
                    "<span class=\"badge bad\">{}</span>",
                    esc(&st.alarm)
                );
            }
        }
    }
    let charge = r.get("battery.charge");
    let bar = charge.map_or(String::new(), |c| {
        let level = if c <= f64::from(st.low) {
            "bad"
        } else if c <= f64::from(st.warning) {
            "warn"
        } else {
            "ok"
        };
        format!(
            "<div class=\"bar\" role=\"meter\" aria-valuemin=\"0\" aria-valuemax=\"100\" aria-valuenow=\"{c:.0}\"><div class=\"fill {level}\" style=\"width:{:.0}%\"></div></div>",
            c.clamp(0.0, 100.0)
        )
    });
    let title = match (r.mfr.is_empty(), r.model.is_empty()) {
        (true, true) => String::new(),
        _ => format!(
            "<span class=\"model\">{} {}</span>",
            esc(&r.mfr),
            esc(&r.model)
        ),
    };
    let _ = write!(
        out,
        "<section class=\"card ups {class}\" data-ups=\"{name}\"><h2>{name} {title}</h2><p class=\"badges\">{badges}</p>{bar}\
<dl class=\"grid\"><div><dt>Charge</dt><dd>{charge}</dd></div><div><dt>Runtime</dt><dd>{runtime}</dd></div>\
<div><dt>Load</dt><dd>{load}</dd></div><div><dt>Input</dt><dd>{input}</dd></div><div><dt>Output</dt><dd>{output}</dd></div>\
<div><dt>upsd</dt><dd>{upsd} <span class=\"badge {lc}\">{link}</span></dd></div></dl>\
<p class=\"small\">Status since {since}; polled every {every} s, {polls} polls.</p></section>",
        name = esc(&u.name),
        charge = num(charge, " %"),
        runtime = runtime(r.get("battery.runtime")),
        load = num(r.get("ups.load"), " %"),
        input = num(r.get("input.voltage"), " V"),
        output = num(r.get("output.voltage"), " V"),
        upsd = esc(&u.upsd),
        lc = if link == Some("connected") { "ok" } else { "bad" },
        link = esc(link.unwrap_or("unknown")),
        since = when(st.since),
        every = u.poll_interval,
        polls = u.polls,
    );
}

fn level_class(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "bad",
        log::Level::Warn => "warn",
        _ => "info",
    }
}

fn events_table(out: &mut String, events: &[&Event]) {
    if events.is_empty() {
        out.push_str("<p class=\"small\">No events yet.</p>");
        return;
    }
    out.push_str("<table class=\"events\"><thead><tr><th>Time</th><th>What</th><th>Event</th></tr></thead><tbody>");
    for e in events.iter().rev() {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td class=\"nowrap\">{}</td><td>{}</td><td>{}</td></tr>",
            level_class(e.level),
            when(e.time),
            esc(&e.source),
            esc(&e.text)
        );
    }
    out.push_str("</tbody></table>");
}

/// How many events the status page shows.
pub const STATUS_EVENTS: usize = 20;

/// Whether an event is about a UPS's or a upsd connection's state: what anyone may see while
/// the status is public. The check's findings, settings changes and the page's own events
/// (which name files, NUT users and addresses) need a session.
pub fn public_event(s: &Shared, e: &Event) -> bool {
    s.ups.iter().any(|u| u.name == e.source)
        || e.source
            .strip_prefix("upsd ")
            .is_some_and(|a| s.links.iter().any(|l| l.address == a))
}

/// The refreshing part of the status page; `private` (a session looks) adds the check's summary
/// and every event, else only UPS state is shown.
pub fn status_live(s: &Shared, now: u64, private: bool) -> String {
    let mut out = String::new();
    if s.ups.is_empty() {
        out.push_str("<section class=\"card\"><h2>No UPS in the settings</h2><p>Add one on the <a href=\"/setup\">setup page</a>, or run <code>power-snitch settings import</code> on the device.</p></section>");
    }
    for u in &s.ups {
        let link = s
            .links
            .iter()
            .find(|l| l.address == u.upsd)
            .map(|l| l.link.state.as_str());
        ups_card(&mut out, u, link);
    }
    if !s.links.is_empty() {
        out.push_str("<section class=\"card\"><h2>upsd connections</h2><ul class=\"plain\">");
        for l in &s.links {
            let up = l.link.is_up();
            let _ = write!(
                out,
                "<li><span class=\"badge {}\">{}</span> {} since {}{}</li>",
                if up { "ok" } else { "bad" },
                esc(l.link.state.as_str()),
                esc(&l.address),
                when(l.link.since),
                if up || l.link.last_error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", esc(&l.link.last_error))
                }
            );
        }
        out.push_str("</ul></section>");
    }
    let (e, w, i) = s.findings;
    if !private {
        out.push_str("<section class=\"card\"><h2>Last events</h2>");
        let events: Vec<&Event> = s
            .ring
            .last(crate::state::ring::CAPACITY)
            .filter(|e| public_event(s, e))
            .collect();
        events_table(
            &mut out,
            &events[events.len().saturating_sub(STATUS_EVENTS)..],
        );
        let _ = write!(
            out,
            "<p class=\"small\">Log in to see every event.</p></section><p class=\"small\" id=\"updated\">Updated {}.</p>",
            when(now)
        );
        return out;
    }
    let class = if e > 0 {
        "bad"
    } else if w > 0 {
        "warn"
    } else {
        "ok"
    };
    let _ = write!(
        out,
        "<section class=\"card\"><h2>NUT's files</h2><p><span class=\"badge {class}\">{e} error(s), {w} warning(s)</span> {i} info(s) in {}, checked {}. <a href=\"/check\">See the check</a></p></section>",
        esc(&s.nut_dir),
        when(s.checked_at)
    );
    out.push_str("<section class=\"card\"><h2>Last events</h2>");
    let events: Vec<&Event> = s.ring.last(STATUS_EVENTS).collect();
    events_table(&mut out, &events);
    let _ = write!(
        out,
        "</section><p class=\"small\" id=\"updated\">Updated {}.</p>",
        when(now)
    );
    out
}

/// The status page; `history` is the charts' section (`charts::section`), after the live part.
pub fn status(f: &Frame, s: &Shared, now: u64, history: &str) -> String {
    page(
        f,
        &format!(
            "<h1>Status</h1><div id=\"live\" data-src=\"/status/live\" aria-live=\"polite\">{}</div>{history}",
            status_live(s, now, f.session.is_some())
        ),
    )
}

/// The login page: the password, or (while none is set) the setup code and a new password.
/// With `ask_code` (logins from many addresses reached the ceiling) the password form also
/// asks for the setup code from the device's log.
pub fn login(
    f: &Frame,
    password_set: bool,
    error: Option<&str>,
    next: &str,
    ask_code: bool,
) -> String {
    let mut b = String::from("<h1>Log in</h1>");
    if let Some(e) = error {
        let _ = write!(b, "<p class=\"alert bad\" role=\"alert\">{}</p>", esc(e));
    }
    let next = esc(next);
    let code = if ask_code {
        "<p>Too many wrong logins: give the setup code from the agent's log (<code>journalctl -u power-snitch</code>) too.</p>\
<label for=\"code\">Setup code</label><input id=\"code\" name=\"code\" autocomplete=\"off\" required placeholder=\"XXXX-XXXX\">"
    } else {
        ""
    };
    if password_set {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/login\" class=\"card narrow\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
{code}<label for=\"password\">Admin password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Log in</button></form>\
<p class=\"small\">Forgot it? Set a new one on the device: <code>power-snitch web-password</code>.</p>"
        );
    } else {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/login/setup\" class=\"card narrow\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<p>No admin password is set yet. Give the setup code and choose one.</p>\
<label for=\"code\">Setup code</label><input id=\"code\" name=\"code\" autocomplete=\"off\" required placeholder=\"XXXX-XXXX\">\
<label for=\"password\">New admin password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\
<label for=\"confirm\">The same again</label><input type=\"password\" id=\"confirm\" name=\"confirm\" autocomplete=\"new-password\" minlength=\"8\" required>\
<button type=\"submit\">Set the password and log in</button></form>\
<p class=\"small\">The setup code is in the agent's log (<code>journalctl -u power-snitch</code>) and, on the SD-card image, in <code>/var/lib/power-snitch/setup-code</code>. Or set the password on the device: <code>power-snitch web-password</code>.</p>"
        );
    }
    page(f, &b)
}

/// A UPS found by the probe, as the setup page offers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub description: String,
    pub drivers: Vec<String>,
    pub port: String,
}

/// What the setup form offers to pick from.
#[derive(Clone, Debug, Default)]
pub struct Choices {
    pub found: Vec<Found>,
    /// Drivers that fit a found UPS first, then every driver this NUT ships.
    pub drivers: Vec<String>,
    /// `auto`, found UPSes' ports, and the serial ports that exist.
    pub ports: Vec<String>,
    /// ups.conf's sections.
    pub sections: Vec<String>,
    /// What could not be read while looking.
    pub problems: Vec<String>,
}

/// What the setup page shows.
pub struct SetupView<'a> {
    pub settings: &'a Settings,
    /// The entry edited (its name in the settings), or none for a new UPS.
    pub original: Option<&'a str>,
    /// The values in the form: the entry's, or what was typed when it was refused.
    pub entry: &'a UpsEntry,
    pub log_level: LogLevel,
    pub public_status: bool,
    pub errors: &'a [FieldError],
    /// What was typed, when the form was refused: shown again as typed.
    pub typed: Option<&'a super::form::Form>,
    pub choices: &'a Choices,
    pub notice: Option<&'a str>,
    /// The settings' version the form was made from (refused when they changed meanwhile).
    pub version: &'a str,
}

fn datalist(id: &str, items: &[String]) -> String {
    let mut out = format!("<datalist id=\"{id}\">");
    for i in items {
        let _ = write!(out, "<option value=\"{}\">", esc(i));
    }
    out.push_str("</datalist>");
    out
}

struct Field<'a> {
    name: &'static str,
    label: &'a str,
    value: String,
    kind: &'a str,
    extra: String,
    help: &'a str,
}

fn field(out: &mut String, mut f: Field, errors: &[FieldError], typed: Option<&super::form::Form>) {
    if let (Some(t), false) = (typed, f.kind == "password") {
        f.value = t.text(f.name).to_string();
    }
    let err = errors.iter().find(|e| e.field == f.name);
    let invalid = if err.is_some() {
        format!(" aria-invalid=\"true\" aria-describedby=\"err-{}\"", f.name)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<div class=\"field{}\"><label for=\"{n}\">{}</label><input type=\"{}\" id=\"{n}\" name=\"{n}\" value=\"{}\"{}{invalid}>",
        if err.is_some() { " invalid" } else { "" },
        esc(f.label),
        f.kind,
        esc(&f.value),
        f.extra,
        n = f.name
    );
    if let Some(e) = err {
        let _ = write!(
            out,
            "<p class=\"error\" id=\"err-{}\">{}</p>",
            f.name,
            esc(&e.message)
        );
    }
    if !f.help.is_empty() {
        let _ = write!(out, "<p class=\"help\">{}</p>", f.help);
    }
    out.push_str("</div>");
}

pub fn setup(f: &Frame, v: &SetupView) -> String {
    let session = f.session.expect("the setup page needs a session");
    let mut b = String::from("<h1>Setup</h1>");
    if let Some(n) = v.notice {
        let _ = write!(b, "<p class=\"alert ok\" role=\"status\">{}</p>", esc(n));
    }
    if !v.errors.is_empty() {
        let _ = write!(
            b,
            "<p class=\"alert bad\" role=\"alert\">Nothing was saved: {} field(s) need a change.</p>",
            v.errors.len()
        );
    }
    // The entries, when there are several, and a new one.
    b.push_str("<nav class=\"tabs\">");
    for u in &v.settings.ups {
        let cur = if v.original == Some(u.nut_device_name.as_str()) {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<a href=\"/setup?ups={}\"{cur}>{}</a>",
            encode(&u.nut_device_name),
            esc(&u.nut_device_name)
        );
    }
    let cur = if v.original.is_none() {
        " aria-current=\"page\""
    } else {
        ""
    };
    let _ = write!(b, "<a href=\"/setup?new=1\"{cur}>+ Add a UPS</a></nav>");

    // What the probe found.
    b.push_str("<section class=\"card\"><h2>UPSes found on this machine</h2>");
    if v.choices.found.is_empty() {
        b.push_str("<p class=\"small\">None found on USB or the serial ports ups.conf names (a serial UPS is recognised on the <a href=\"/check\">check</a> page, which talks to it).</p>");
    } else {
        b.push_str("<ul class=\"plain\">");
        for d in &v.choices.found {
            let driver = d.drivers.first().cloned().unwrap_or_default();
            let ups = v
                .original
                .map_or(String::from("new=1"), |o| format!("ups={}", encode(o)));
            let _ = write!(
                b,
                "<li>{} — driver {}, port <code>{}</code> <a class=\"button small\" href=\"/setup?{ups}&amp;driver={}&amp;port={}\">Use</a></li>",
                esc(&d.description),
                esc(&if d.drivers.is_empty() { "unknown".to_string() } else { d.drivers.join(", ") }),
                esc(&d.port),
                encode(&driver),
                encode(&d.port)
            );
        }
        b.push_str("</ul>");
    }
    for p in &v.choices.problems {
        let _ = write!(b, "<p class=\"small\">{}</p>", esc(p));
    }
    b.push_str("</section>");

    let e = v.entry;
    let errs = v.errors;
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/setup\" class=\"card\" novalidate>{}<input type=\"hidden\" name=\"original\" value=\"{}\"><input type=\"hidden\" name=\"version\" value=\"{}\"><fieldset><legend>NUT</legend>",
        csrf_field(session),
        esc(v.original.unwrap_or("")),
        esc(v.version)
    );
    let text = |name, label, value: String, extra: &str, help| Field {
        name,
        label,
        value,
        kind: "text",
        extra: extra.to_string(),
        help,
    };
    let number = |name, label, value: String, min: u32, max: u32, help| Field {
        name,
        label,
        value,
        kind: "number",
        extra: format!(" min=\"{min}\" max=\"{max}\" inputmode=\"numeric\""),
        help,
    };
    field(
        &mut b,
        text(
            "nut_device_name",
            "Device name (ups.conf section)",
            e.nut_device_name.clone(),
            " list=\"sections\" autocapitalize=\"off\" required",
            "",
        ),
        errs,
        v.typed,
    );
    field(
        &mut b,
        text(
            "nut_driver",
            "Driver",
            e.nut_driver.clone(),
            " list=\"drivers\" autocapitalize=\"off\"",
            "Drivers that fit the UPSes found come first.",
        ),
        errs,
        v.typed,
    );
    field(&mut b, text("nut_port", "Port", e.nut_port.clone().unwrap_or_default(), " list=\"ports\" autocapitalize=\"off\"", "<code>auto</code> for USB; a serial port's stable <code>/dev/serial/by-id/…</code> name."), errs, v.typed);
    field(
        &mut b,
        text(
            "nut_username",
            "upsd user name",
            e.nut_username.clone().unwrap_or_default(),
            " autocomplete=\"off\" autocapitalize=\"off\"",
            "",
        ),
        errs,
        v.typed,
    );
    let has_password = e.nut_password.is_some();
    field(
        &mut b,
        Field {
            name: "nut_password",
            label: "upsd password",
            value: String::new(),
            kind: "password",
            extra: format!(
                " autocomplete=\"new-password\" placeholder=\"{}\"",
                if has_password {
                    "unchanged"
                } else {
                    "none set"
                }
            ),
            help: if has_password {
                "Stored, and never shown. Type a new one to replace it."
            } else {
                ""
            },
        },
        errs,
        v.typed,
    );
    if has_password {
        b.push_str("<div class=\"field check\"><input type=\"checkbox\" id=\"nut_password_clear\" name=\"nut_password_clear\"><label for=\"nut_password_clear\">Remove the stored password</label></div>");
    }
    field(
        &mut b,
        number(
            "nut_retry_count",
            "Retries after a lost connection",
            e.nut_retry_count.to_string(),
            0,
            100,
            "",
        ),
        errs,
        v.typed,
    );
    field(
        &mut b,
        number(
            "nut_retry_delay",
            "Seconds between retries",
            e.nut_retry_delay.to_string(),
            0,
            3600,
            "",
        ),
        errs,
        v.typed,
    );
    field(
        &mut b,
        text(
            "upsd_host",
            "upsd host",
            e.upsd_host.clone(),
            " autocapitalize=\"off\"",
            "",
        ),
        errs,
        v.typed,
    );
    field(
        &mut b,
        number(
            "upsd_port",
            "upsd port",
            e.upsd_port.to_string(),
            1,
            65535,
            "",
        ),
        errs,
        v.typed,
    );
    field(
        &mut b,
        number(
            "poll_interval",
            "Poll interval (seconds)",
            e.poll_interval.to_string(),
            1,
            3600,
            "",
        ),
        errs,
        v.typed,
    );
    let tls = v
        .typed
        .map_or_else(|| e.show("tls"), |t| t.text("tls").to_string());
    let _ = write!(b, "<div class=\"field{}\"><label for=\"tls\">TLS to upsd</label><select id=\"tls\" name=\"tls\">", if errs.iter().any(|x| x.field == "tls") { " invalid" } else { "" });
    for (val, label) in [
        ("auto", "when upsd offers it and it can be verified"),
        ("required", "required"),
        ("off", "off"),
    ] {
        let sel = if tls == val { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{val}\"{sel}>{label}</option>");
    }
    b.push_str("</select>");
    if let Some(x) = errs.iter().find(|x| x.field == "tls") {
        let _ = write!(
            b,
            "<p class=\"error\" id=\"err-tls\">{}</p>",
            esc(&x.message)
        );
    }
    b.push_str("</div></fieldset><fieldset><legend>Agent</legend><div class=\"field\"><label for=\"log_level\">Log level</label><select id=\"log_level\" name=\"log_level\">");
    for (name, l) in LogLevel::ALL {
        let sel = if l == v.log_level { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{name}\"{sel}>{name}</option>");
    }
    let _ = write!(
        b,
        "</select></div><div class=\"field check\"><input type=\"checkbox\" id=\"web_public_status\" name=\"web_public_status\"{}><label for=\"web_public_status\">Anyone who can reach this page may read the status and /metrics</label></div></fieldset>\
<button type=\"submit\">Save</button> <span class=\"small\">Every field is checked before anything is stored.</span>{}{}{}</form>",
        if v.public_status { " checked" } else { "" },
        datalist("sections", &v.choices.sections),
        datalist("drivers", &v.choices.drivers),
        datalist("ports", &v.choices.ports)
    );
    b.push_str("<p class=\"card\" id=\"notify-link\"><a href=\"/notify\">Notifications</a>: where power cuts and problems are told (webhook, ntfy, e-mail, MQTT), and a test per channel.</p>");
    // This entry into NUT's files, or out of them and the settings: each previewed first.
    if let Some(name) = v.original {
        let _ = write!(
            b,
            "<section class=\"card\" id=\"nut-files\"><h2>NUT's files</h2><p class=\"small\">Saving changes only these settings. To make NUT use them, write them into ups.conf, upsd.users and upsmon.conf; or remove this UPS from NUT's files and the settings. You see the change first.</p>\
<form method=\"post\" action=\"/nut/to-nut\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"ups\" value=\"{n}\"><button>Write into NUT's files…</button></form> \
<form method=\"post\" action=\"/nut/remove\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"ups\" value=\"{n}\"><button class=\"danger\">Remove {n}…</button></form></section>",
            csrf = csrf_field(session),
            n = esc(name)
        );
    }
    page(f, &b)
}

/// What the check page shows.
pub struct CheckView<'a> {
    pub nut_dir: &'a str,
    pub nut_version: &'a str,
    pub findings: &'a [Finding],
    pub found: &'a [(Found, Option<String>)],
    /// What `sync --apply` would change: (field, now, then), secrets masked.
    pub sync: &'a [(String, String, String)],
    pub sync_error: Option<&'a str>,
    pub notice: Option<&'a str>,
    /// The UPSes found that no section serves: (device, what it is).
    pub adoptable: &'a [(String, String)],
}

/// The files in the order a person fixes them.
fn file_rank(file: &str) -> u8 {
    match file {
        "nut.conf" => 0,
        "ups.conf" => 1,
        "upsd.conf" => 2,
        "upsd.users" => 3,
        "upsmon.conf" => 4,
        "" => 6,
        _ => 5,
    }
}

pub fn check(f: &Frame, v: &CheckView) -> String {
    let session = f.session.expect("the check page needs a session");
    let mut b = String::from("<h1>Check</h1>");
    if let Some(n) = v.notice {
        let _ = write!(b, "<p class=\"alert ok\" role=\"status\">{}</p>", esc(n));
    }
    let count = |s| v.findings.iter().filter(|x| x.severity == s).count();
    let (e, w, i) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    let class = if e > 0 {
        "bad"
    } else if w > 0 {
        "warn"
    } else {
        "ok"
    };
    let _ = write!(
        b,
        "<p><span class=\"badge {class}\">{e} error(s), {w} warning(s), {i} info(s)</span> in <code>{}</code> (NUT {}): NUT's files, the hardware, the cross-check, the live upsd and the settings. <a href=\"/check\">Check again</a></p>",
        esc(v.nut_dir),
        esc(v.nut_version)
    );
    if !v.found.is_empty() {
        b.push_str("<section class=\"card\"><h2>Hardware</h2><ul class=\"plain\">");
        for (d, section) in v.found {
            let _ = write!(
                b,
                "<li>{} → {}</li>",
                esc(&d.description),
                section
                    .as_ref()
                    .map_or("no section serves it".to_string(), |s| format!(
                        "<code>[{}]</code>",
                        esc(s)
                    ))
            );
        }
        b.push_str("</ul></section>");
    }
    if let (false, Some(s)) = (v.adoptable.is_empty(), f.session) {
        b.push_str("<section class=\"card\" id=\"adopt\"><h2>Adopt a UPS</h2><p class=\"small\">Writes its ups.conf section, a monitoring account and the MONITOR line, and starts its driver: you see the change first.</p><ul class=\"plain\">");
        for (device, what) in v.adoptable {
            let _ = write!(
                b,
                "<li><form method=\"post\" action=\"/nut/adopt\" class=\"inline\">{}<input type=\"hidden\" name=\"device\" value=\"{}\"><button>Adopt…</button></form> {}</li>",
                csrf_field(s),
                esc(device),
                esc(what)
            );
        }
        b.push_str("</ul></section>");
    }
    let mut files: Vec<&str> = v.findings.iter().map(|x| x.file.as_str()).collect();
    files.sort_by_key(|x| (file_rank(x), *x));
    files.dedup();
    if files.is_empty() {
        b.push_str("<section class=\"card\"><h2>Findings</h2><p>Nothing to report.</p></section>");
    }
    for file in files {
        let title = if file.is_empty() {
            "The installation"
        } else {
            file
        };
        let _ = write!(
            b,
            "<section class=\"card findings\"><h2>{}</h2>",
            esc(title)
        );
        for sev in [Severity::Error, Severity::Warning, Severity::Info] {
            let list: Vec<&Finding> = v
                .findings
                .iter()
                .filter(|x| x.file == file && x.severity == sev)
                .collect();
            if list.is_empty() {
                continue;
            }
            let (label, class) = match sev {
                Severity::Error => ("Errors", "bad"),
                Severity::Warning => ("Warnings", "warn"),
                Severity::Info => ("Information", "info"),
            };
            let _ = write!(b, "<h3 class=\"{class}\">{label}</h3><ul class=\"plain\">");
            for x in list {
                let place = match (x.line, x.column) {
                    (0, _) => String::new(),
                    (l, 0) => format!("<span class=\"place\">line {l}</span> "),
                    (l, c) => format!("<span class=\"place\">line {l}, column {c}</span> "),
                };
                let _ = write!(
                    b,
                    "<li class=\"finding {class}\">{place}<code>{}</code> {}",
                    x.code,
                    esc(&x.message)
                );
                if let Some(h) = &x.hint {
                    let _ = write!(b, "<div class=\"hint\">hint: {}</div>", esc(h));
                }
                b.push_str("</li>");
            }
            b.push_str("</ul>");
        }
        b.push_str("</section>");
    }
    b.push_str("<section class=\"card\" id=\"sync\"><h2>Sync from NUT</h2>");
    if let Some(e) = v.sync_error {
        let _ = write!(b, "<p class=\"alert bad\">{}</p>", esc(e));
    } else if v.sync.is_empty() {
        b.push_str("<p>The settings agree with NUT's files on driver, port and credentials.</p>");
    } else {
        b.push_str("<p>NUT's files are the source of truth for driver, port and credentials. Syncing changes:</p><table><thead><tr><th>Setting</th><th>Now</th><th>From NUT</th></tr></thead><tbody>");
        for (field, a, c) in v.sync {
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(field),
                esc(a),
                esc(c)
            );
        }
        let _ = write!(
            b,
            "</tbody></table><form method=\"post\" action=\"/sync\" data-confirm=\"Apply these {} change(s) to the settings?\">{}<input type=\"hidden\" name=\"expect\" value=\"{}\"><button type=\"submit\">Apply the sync</button></form>",
            v.sync.len(),
            csrf_field(session),
            v.sync.len()
        );
    }
    b.push_str("</section>");
    page(f, &b)
}

/// What the test page shows.
pub struct TestView<'a> {
    pub settings: &'a Settings,
    pub selected: Option<&'a str>,
    pub user: &'a str,
    pub login: bool,
    /// The target's address and the steps, once run.
    pub result: Option<(&'a str, &'a [Step])>,
    pub error: Option<&'a str>,
}

pub fn test(f: &Frame, v: &TestView) -> String {
    let session = f.session.expect("the test page needs a session");
    let mut b = String::from("<h1>Test connection</h1>");
    if let Some(e) = v.error {
        let _ = write!(b, "<p class=\"alert bad\" role=\"alert\">{}</p>", esc(e));
    }
    if v.settings.ups.is_empty() {
        b.push_str("<p>There is no UPS in the settings yet: add one on the <a href=\"/setup\">setup page</a>.</p>");
        return page(f, &b);
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/test\" class=\"card\">{}<div class=\"field\"><label for=\"ups\">UPS</label><select id=\"ups\" name=\"ups\">",
        csrf_field(session)
    );
    for u in &v.settings.ups {
        let sel = if v.selected == Some(u.nut_device_name.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<option value=\"{n}\"{sel}>{n} at {}:{}</option>",
            esc(&u.upsd_host),
            u.upsd_port,
            n = esc(&u.nut_device_name)
        );
    }
    let _ = write!(
        b,
        "</select></div><div class=\"field\"><label for=\"user\">User name</label><input id=\"user\" name=\"user\" value=\"{}\" autocomplete=\"off\" autocapitalize=\"off\"><p class=\"help\">Empty: the stored one. Without a user, the credentials are not checked.</p></div>\
<div class=\"field\"><label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"off\" placeholder=\"the stored one\"><p class=\"help\">Empty: the stored one. Typing one tests it without storing it.</p></div>\
<div class=\"field check\"><input type=\"checkbox\" id=\"login\" name=\"login\"{}><label for=\"login\">Also test by LOGIN (upsd counts this page as a client of the UPS until LOGOUT; otherwise nothing changes)</label></div>\
<button type=\"submit\">Run the test</button></form>",
        esc(v.user),
        if v.login { " checked" } else { "" }
    );
    if let Some((address, steps)) = v.result {
        let ok = steps.iter().all(Step::ok);
        let _ = write!(
            b,
            "<section class=\"card\" id=\"result\"><h2>{}: <span class=\"badge {}\">{}</span></h2><ol class=\"steps\">",
            esc(address),
            if ok { "ok" } else { "bad" },
            if ok { "all steps passed" } else { "failed" }
        );
        for s in steps {
            let kind = s.error().map_or(String::new(), |e| {
                format!(
                    " <span class=\"badge bad kind\">{}</span> <code>{}</code>",
                    e.kind().as_str(),
                    esc(e.code())
                )
            });
            let _ = write!(
                b,
                "<li class=\"step {}\" data-step=\"{}\"><span class=\"badge {}\">{}</span> <strong>{}</strong>{kind}<div>{}</div></li>",
                if s.ok() { "ok" } else { "bad" },
                esc(s.name.as_str()),
                if s.ok() { "ok" } else { "bad" },
                if s.ok() { "ok" } else { "failed" },
                esc(s.name.as_str()),
                // The command line's advice, in the page's words.
                esc(&s.message().replace("add --login", "tick \"Also test by LOGIN\""))
            );
        }
        b.push_str("</ol></section>");
    }
    page(f, &b)
}

/// A page for a refusal or a failure.
pub fn message(f: &Frame, heading: &str, text: &str) -> String {
    page(f, &format!("<h1>{}</h1><p>{}</p>", esc(heading), esc(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::diag::Code;
    use crate::nut::lexer::Pos;
    use crate::settings::model::Secret;

    fn session() -> Session {
        Session {
            token: "t".repeat(64),
            csrf: "c".repeat(64),
            created: 0,
            last_used: 0,
        }
    }

    fn frame<'a>(s: Option<&'a Session>) -> Frame<'a> {
        Frame {
            title: "T",
            current: "/",
            session: s,
        }
    }

    #[test]
    fn web_pages_escape_everything_from_outside() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let live = status_live(&crate::web::metrics::tests::shared(), 200, true);
        assert!(!live.contains("on battery <b>"));
        assert!(live.contains("on battery &lt;b&gt;(OB)&lt;/b&gt;"));
        assert!(live.contains("rack &quot;A&quot;"));
    }

    #[test]
    fn web_public_status_shows_ups_state_only() {
        let mut sh = crate::web::metrics::tests::shared();
        sh.ring.push(
            101,
            log::Level::Warn,
            "check",
            "new: upsd.users: user `mon` has no password",
        );
        sh.ring.push(
            102,
            log::Level::Info,
            "settings.bin",
            "nut_username[rack]: a -> b",
        );
        sh.ring
            .push(103, log::Level::Warn, "web", "failed login from 10.0.0.9");
        sh.ring
            .push(104, log::Level::Warn, "rack \"A\"", "on battery");
        let public = status_live(&sh, 200, false);
        for hidden in [
            "mon",
            "nut_username",
            "10.0.0.9",
            "<h2>NUT's files",
            "error(s)",
        ] {
            assert!(!public.contains(hidden), "{hidden} in\n{public}");
        }
        assert!(public.contains("on battery") && public.contains("Log in to see"));
        let private = status_live(&sh, 200, true);
        for shown in [
            "user `mon`",
            "nut_username",
            "failed login",
            "<h2>NUT's files",
        ] {
            assert!(private.contains(shown), "{shown} in\n{private}");
        }
    }

    #[test]
    fn web_status_says_the_state_in_words_and_colour() {
        let live = status_live(&crate::web::metrics::tests::shared(), 200, true);
        assert!(live.contains("<section class=\"card ups bad\""), "{live}");
        assert!(live.contains("<span class=\"badge warn\" title=\"OB\">on battery</span>"));
        assert!(live.contains("<span class=\"badge bad\" title=\"LB\">low battery</span>"));
        assert!(live.contains("15 %") && live.contains("5 min"));
        assert!(
            live.contains("fill bad"),
            "the bar is red at the low threshold"
        );
        assert!(live.contains("waiting for the first reading"), "the spare");
        assert!(live.contains("1 error(s), 2 warning(s)"));
        assert!(!live.contains("<html"), "a fragment");
    }

    #[test]
    fn web_setup_never_shows_the_password_and_marks_bad_fields() {
        let mut s = Settings::default();
        let mut u = UpsEntry::new("ups1");
        u.nut_password = Some(Secret("hunter2-secret".into()));
        s.ups.push(u.clone());
        let sess = session();
        let typed = super::super::form::parse(
            b"nut_device_name=ups1&poll_interval=0&nut_password=typed-secret",
        );
        let errors = [FieldError {
            field: "poll_interval",
            message: "poll_interval is a whole number from 1 to 3600, not `0`".into(),
        }];
        let choices = Choices {
            drivers: vec!["usbhid-ups".into()],
            ports: vec!["auto".into()],
            ..Choices::default()
        };
        let v = SetupView {
            settings: &s,
            original: Some("ups1"),
            entry: &u,
            log_level: LogLevel::Warn,
            public_status: true,
            errors: &errors,
            typed: Some(&typed),
            choices: &choices,
            notice: None,
            version: "v<1>",
        };
        let html = setup(&frame(Some(&sess)), &v);
        assert!(html.contains("name=\"version\" value=\"v&lt;1&gt;\""));
        assert!(!html.contains("hunter2") && !html.contains("typed-secret"));
        assert!(html.contains("placeholder=\"unchanged\""));
        assert!(html.contains("name=\"csrf\" value=\"cccc"));
        assert!(html.contains("id=\"poll_interval\" name=\"poll_interval\" value=\"0\" min=\"1\" max=\"3600\" inputmode=\"numeric\" aria-invalid=\"true\""), "{html}");
        assert!(html.contains(
            "<p class=\"error\" id=\"err-poll_interval\">poll_interval is a whole number"
        ));
        assert!(html.contains("<option value=\"usbhid-ups\">"));
    }

    #[test]
    fn web_check_groups_by_file_then_severity() {
        let f = |sev, code, file: &str, line| {
            Finding::new(sev, code, file, Pos::new(line, 2), format!("{file} {line}"))
                .hint("do <this>")
        };
        let findings = vec![
            f(Severity::Warning, Code::Duplicate, "upsd.users", 3),
            f(Severity::Error, Code::MissingPort, "ups.conf", 7),
            f(Severity::Info, Code::Deprecated, "ups.conf", 2),
        ];
        let sync = vec![(
            "nut_driver[ups1]".to_string(),
            "a".to_string(),
            "b".to_string(),
        )];
        let sess = session();
        let v = CheckView {
            nut_dir: "/etc/nut",
            nut_version: "2.8.0",
            findings: &findings,
            found: &[],
            sync: &sync,
            sync_error: None,
            notice: None,
            adoptable: &[],
        };
        let html = check(&frame(Some(&sess)), &v);
        let ups = html.find("<h2>ups.conf</h2>").unwrap();
        let users = html.find("<h2>upsd.users</h2>").unwrap();
        assert!(ups < users, "ups.conf before upsd.users");
        let errors = html.find("<h3 class=\"bad\">Errors</h3>").unwrap();
        let infos = html.find("<h3 class=\"info\">Information</h3>").unwrap();
        assert!(ups < errors && errors < infos && infos < users);
        assert!(html.contains("line 7, column 2</span> <code>missing-port</code>"));
        assert!(html.contains("hint: do &lt;this&gt;"));
        assert!(html.contains("1 error(s), 1 warning(s), 1 info(s)"));
        assert!(html.contains("action=\"/sync\"") && html.contains("name=\"expect\" value=\"1\""));
    }

    #[test]
    fn web_login_asks_for_the_code_until_a_password_is_set() {
        let first = login(&frame(None), false, None, "/setup", false);
        assert!(first.contains("action=\"/login/setup\"") && first.contains("Setup code"));
        let again = login(
            &frame(None),
            true,
            Some("Wrong <password>."),
            "/x\"y",
            false,
        );
        assert!(again.contains("action=\"/login\"") && !again.contains("Setup code"));
        assert!(again.contains("Wrong &lt;password&gt;."));
        assert!(again.contains("value=\"/x&quot;y\""));
        // At the ceiling, the password form asks for the console's setup code too.
        let locked = login(&frame(None), true, None, "/", true);
        assert!(locked.contains("action=\"/login\"") && locked.contains("name=\"code\""));
        assert!(locked.contains("journalctl"));
    }
}
