//! The Notifications page: the channels (kind, URL, the lowest severity each takes, whether a
//! secret is stored — never the secret), a form to add or change one, its removal, the flapping
//! guard's window, and "Send a test" per channel, which reports what the receiver answered.
//!
//! Every form carries the session's CSRF token and the settings' version, as the setup form
//! does: a form made before another change is refused, nothing saved. A channel's secret is
//! handled like the UPS password: an empty field keeps the stored one, a checkbox clears it,
//! and it never appears in a page or a log line.
//!
//! "Send a test" runs [`crate::notify::send_test`] (the one `notify test` runs) on the page's
//! pool, within [`TEST_TIMEOUT`], so the agent's thread never waits on a receiver.

use std::fmt::Write;
use std::time::Duration;

use super::super::form::{encode, Form};
use super::super::http::{Response, Route};
use super::super::pages::{self, esc, Frame};
use super::{refuse, App, Session};
use crate::settings::model::{Channel, ChannelKind, Secret, Settings, Severity, MAX_CHANNELS};

/// The longest a test may take, whatever the receiver does (each exchange of the channel is
/// bounded too; this bounds them all).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(25);

/// The settings with the channel the form describes added or changed (`original` names the
/// channel changed; empty for a new one). The secret: a typed one replaces the stored one,
/// `secret_clear` removes it, an empty field keeps it.
pub fn apply_channel(current: &Settings, form: &Form) -> Result<Settings, String> {
    let original = form.text("original");
    let stored = if original.is_empty() {
        None
    } else {
        Some(
            current
                .notify
                .channels
                .iter()
                .find(|c| c.name == original)
                .ok_or_else(|| format!("there is no channel `{original}` any more"))?,
        )
    };
    let name = form.text("name").trim();
    if name != original && current.notify.channels.iter().any(|c| c.name == name) {
        return Err(format!("a channel named `{name}` exists already"));
    }
    let kind = ChannelKind::parse(form.text("kind"))?;
    let mut c = Channel::new(name, kind, form.text("url").trim());
    c.min_severity =
        Severity::parse(form.text("min_severity")).map_err(|e| format!("min_severity: {e}"))?;
    let opt = |k: &str| Some(form.text(k).trim().to_string()).filter(|v| !v.is_empty());
    c.user = opt("user");
    c.ca_file = opt("ca_file");
    c.from = opt("from");
    c.to = opt("to");
    let typed = form.get("secret").unwrap_or("");
    c.secret = if form.checked("secret_clear") {
        None
    } else if !typed.is_empty() {
        Some(Secret(typed.to_string()))
    } else {
        stored.and_then(|s| s.secret.clone())
    };
    let mut new = current.clone();
    if let Some(s) = stored {
        if s.name != c.name {
            new.notify.remove(&s.name)?;
        }
    }
    new.notify.put(c)?;
    Ok(new)
}

/// What the page shows.
pub struct View<'a> {
    pub settings: &'a Settings,
    /// The channel in the form (its stored name), or none for a new one.
    pub original: Option<&'a str>,
    /// What was typed, when the form was refused: shown again as typed (but the secret).
    pub typed: Option<&'a Form>,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    /// A test's channel and what came of it.
    pub test: Option<(&'a str, &'a Result<String, String>)>,
    pub version: &'a str,
}

fn options<T: Copy + PartialEq>(
    out: &mut String,
    all: &[T],
    name: fn(T) -> &'static str,
    sel: &str,
) {
    for &v in all {
        let n = name(v);
        let s = if n == sel { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{n}\"{s}>{n}</option>");
    }
}

/// The page as HTML.
pub fn html(f: &Frame, v: &View) -> String {
    let session = f.session.expect("the notifications page needs a session");
    let csrf = pages::csrf_field(session);
    let version = format!(
        "<input type=\"hidden\" name=\"version\" value=\"{}\">",
        esc(v.version)
    );
    let mut b = String::from("<h1>Notifications</h1>");
    if let Some(n) = v.notice {
        let _ = write!(b, "<p class=\"alert ok\" role=\"status\">{}</p>", esc(n));
    }
    if let Some((name, r)) = v.test {
        let (class, text) = match r {
            Ok(a) => (
                "ok",
                format!("channel {name}: delivered; the receiver answered: {a}"),
            ),
            Err(e) => ("bad", format!("channel {name}: not delivered: {e}")),
        };
        let _ = write!(
            b,
            "<p class=\"alert {class}\" role=\"status\" id=\"test-result\">{}</p>",
            esc(&text)
        );
    }
    if let Some(e) = v.error {
        let _ = write!(
            b,
            "<p class=\"alert bad\" role=\"alert\">Nothing was saved: {}</p>",
            esc(e)
        );
    }

    // The channels.
    let n = &v.settings.notify;
    b.push_str("<section class=\"card\" id=\"channels\"><h2>Channels</h2>");
    if n.channels.is_empty() {
        b.push_str("<p class=\"small\">No channel yet: events are only logged. Add one below.</p>");
    } else {
        b.push_str("<table><thead><tr><th>Name</th><th>Kind</th><th>URL</th><th>Takes</th><th>Secret</th><th></th></tr></thead><tbody>");
        for c in &n.channels {
            let _ = write!(
                b,
                "<tr><td>{name}</td><td>{}</td><td><code>{}</code></td><td>{} and above</td><td>{}</td><td>\
<a class=\"button small\" href=\"/notify?channel={enc}#edit\">Edit</a> \
<form method=\"post\" action=\"/notify/test\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"name\" value=\"{name}\"><button class=\"button small\">Send a test</button></form> \
<form method=\"post\" action=\"/notify/remove\" class=\"inline\">{csrf}{version}<input type=\"hidden\" name=\"name\" value=\"{name}\"><button class=\"button small danger\">Remove</button></form></td></tr>",
                c.kind.as_str(),
                esc(&c.url),
                c.min_severity.as_str(),
                if c.secret.is_some() { "set" } else { "none" },
                name = esc(&c.name),
                enc = encode(&c.name),
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    // The form: a new channel, or the one named.
    let stored = v
        .original
        .and_then(|o| n.channels.iter().find(|c| c.name == o));
    let val = |k: &str, stored: Option<&str>| -> String {
        match v.typed {
            Some(t) => t.text(k).to_string(),
            None => stored.unwrap_or("").to_string(),
        }
    };
    let kind = val("kind", stored.map(|c| c.kind.as_str()));
    let sev = val(
        "min_severity",
        Some(stored.map_or("warning", |c| c.min_severity.as_str())),
    );
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/notify\" class=\"card\" id=\"edit\" novalidate>{csrf}{version}<input type=\"hidden\" name=\"original\" value=\"{}\"><h2>{}</h2>",
        esc(v.original.unwrap_or("")),
        match v.original {
            Some(o) => format!("Change channel {}", esc(o)),
            None if n.channels.len() >= MAX_CHANNELS =>
                format!("At most {MAX_CHANNELS} channels: remove one to add another"),
            None => "Add a channel".to_string(),
        }
    );
    let text = |b: &mut String, name: &str, label: &str, value: &str, help: &str| {
        let _ = write!(
            b,
            "<div class=\"field\"><label for=\"{name}\">{label}</label><input type=\"text\" id=\"{name}\" name=\"{name}\" value=\"{}\" autocapitalize=\"off\" autocomplete=\"off\">{}</div>",
            esc(value),
            if help.is_empty() { String::new() } else { format!("<p class=\"help\">{help}</p>") }
        );
    };
    text(
        &mut b,
        "name",
        "Name",
        &val("name", stored.map(|c| c.name.as_str())),
        "1 to 32 of a-z, 0-9, - and _.",
    );
    b.push_str(
        "<div class=\"field\"><label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">",
    );
    options(&mut b, &ChannelKind::ALL, ChannelKind::as_str, &kind);
    b.push_str("</select></div>");
    text(&mut b, "url", "URL", &val("url", stored.map(|c| c.url.as_str())), "webhook and ntfy: <code>https://…</code>; e-mail: <code>smtp://host:587</code> (STARTTLS) or <code>smtps://host</code>; MQTT: <code>mqtt://host</code> or <code>mqtts://host</code>.");
    b.push_str("<div class=\"field\"><label for=\"min_severity\">Takes events of</label><select id=\"min_severity\" name=\"min_severity\">");
    options(&mut b, &Severity::ALL, Severity::as_str, &sev);
    b.push_str("</select><p class=\"help\">and above.</p></div>");
    text(
        &mut b,
        "user",
        "User (e-mail, MQTT)",
        &val("user", stored.and_then(|c| c.user.as_deref())),
        "",
    );
    let has_secret = stored.is_some_and(|c| c.secret.is_some());
    let _ = write!(
        b,
        "<div class=\"field\"><label for=\"secret\">Secret</label><input type=\"password\" id=\"secret\" name=\"secret\" value=\"\" autocomplete=\"new-password\" placeholder=\"{}\"><p class=\"help\">The webhook's signing key, ntfy's access token, the e-mail or MQTT password. {}</p></div>",
        if has_secret { "unchanged" } else { "none set" },
        if has_secret { "Stored, and never shown. Type a new one to replace it." } else { "" }
    );
    if has_secret {
        b.push_str("<div class=\"field check\"><input type=\"checkbox\" id=\"secret_clear\" name=\"secret_clear\"><label for=\"secret_clear\">Remove the stored secret</label></div>");
    }
    text(
        &mut b,
        "ca_file",
        "CA file",
        &val("ca_file", stored.and_then(|c| c.ca_file.as_deref())),
        "A PEM file to verify the receiver's certificate with; empty: the system's.",
    );
    text(
        &mut b,
        "from",
        "From (e-mail)",
        &val("from", stored.and_then(|c| c.from.as_deref())),
        "",
    );
    text(
        &mut b,
        "to",
        "To (e-mail: the recipients; MQTT: the topic prefix)",
        &val("to", stored.and_then(|c| c.to.as_deref())),
        "",
    );
    b.push_str("<button type=\"submit\">Save the channel</button>");
    if v.original.is_some() {
        b.push_str(" <a href=\"/notify\">Add a new one instead</a>");
    }
    b.push_str("</form>");

    // The flapping guard.
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/notify/flap\" class=\"card\" id=\"flap\">{csrf}{version}<h2>Flapping guard</h2>\
<div class=\"field\"><label for=\"flap_window\">Seconds</label><input type=\"number\" id=\"flap_window\" name=\"flap_window\" min=\"0\" max=\"3600\" inputmode=\"numeric\" value=\"{}\"><p class=\"help\">A state that toggles faster than this is told once, summarised, not every time; 0 tells every change.</p></div>\
<button type=\"submit\">Save</button></form>",
        n.flap_window
    );
    pages::page(f, &b)
}

impl App {
    fn notify_html(&self, status: u16, v: &View, s: Option<&Session>) -> Response {
        let f = self.frame("Notifications", "/setup", s);
        Response::html(status, html(&f, v))
    }

    /// `GET /notify` (`?channel=NAME` puts that channel in the form).
    pub(super) fn notify_page(
        &self,
        settings: &Settings,
        q: &Form,
        s: Option<&Session>,
    ) -> Response {
        let original = q
            .get("channel")
            .and_then(|n| settings.notify.channels.iter().find(|c| c.name == n))
            .map(|c| c.name.as_str());
        let notice = match (q.get("saved"), q.get("removed")) {
            (Some("0"), _) => Some("Saved: nothing changed.".to_string()),
            (Some(n), _) => Some(format!(
                "Saved: {n} change(s). The agent applies them at once."
            )),
            (None, Some(r)) => Some(format!("Channel {r} removed.")),
            _ => None,
        };
        let version = self.version(settings);
        let v = View {
            settings,
            original,
            typed: None,
            error: None,
            notice: notice.as_deref(),
            test: None,
            version: &version,
        };
        self.notify_html(200, &v, s)
    }

    /// Refuses a form made from other settings than the stored ones.
    fn stale(
        &self,
        route: Route,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Option<Response> {
        let ok = super::auth::same(
            form.text("version").as_bytes(),
            self.version(settings).as_bytes(),
        );
        (!ok).then(|| {
            refuse(
                route,
                409,
                "the settings changed since this form was loaded: nothing was saved; reload the page and try again",
                s,
            )
        })
    }

    /// `POST /notify`: a channel added or changed.
    pub(super) fn notify_save(
        &self,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        if let Some(r) = self.stale(Route::NotifySave, settings, form, s) {
            return r;
        }
        match apply_channel(settings, form) {
            Ok(new) => match self.save(settings, &new) {
                Ok(n) => Response::redirect(&format!("/notify?saved={n}#channels")),
                Err(e) => refuse(Route::NotifySave, 500, &e, s),
            },
            Err(e) => {
                let original = Some(form.text("original")).filter(|o| {
                    !o.is_empty() && settings.notify.channels.iter().any(|c| c.name == *o)
                });
                let version = self.version(settings);
                let v = View {
                    settings,
                    original,
                    typed: Some(form),
                    error: Some(&e),
                    notice: None,
                    test: None,
                    version: &version,
                };
                self.notify_html(422, &v, s)
            }
        }
    }

    /// `POST /notify/remove`: a channel removed.
    pub(super) fn notify_remove(
        &self,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        if let Some(r) = self.stale(Route::NotifyRemove, settings, form, s) {
            return r;
        }
        let name = form.text("name");
        let mut new = settings.clone();
        if let Err(e) = new.notify.remove(name) {
            return refuse(Route::NotifyRemove, 422, &e, s);
        }
        match self.save(settings, &new) {
            Ok(_) => Response::redirect(&format!("/notify?removed={}#channels", encode(name))),
            Err(e) => refuse(Route::NotifyRemove, 500, &e, s),
        }
    }

    /// `POST /notify/flap`: the flapping guard's window.
    pub(super) fn notify_flap(
        &self,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        if let Some(r) = self.stale(Route::NotifyFlap, settings, form, s) {
            return r;
        }
        let mut new = settings.clone();
        if let Err(e) = new.notify.set_flap_window(form.text("flap_window").trim()) {
            let version = self.version(settings);
            let v = View {
                settings,
                original: None,
                typed: None,
                error: Some(&e),
                notice: None,
                test: None,
                version: &version,
            };
            return self.notify_html(422, &v, s);
        }
        match self.save(settings, &new) {
            Ok(n) => Response::redirect(&format!("/notify?saved={n}#flap")),
            Err(e) => refuse(Route::NotifyFlap, 500, &e, s),
        }
    }

    /// `POST /notify/test`: a test event sent on the channel named, now, on the pool; the page
    /// says what the receiver answered (or why nothing was delivered). 502 when not delivered.
    pub(super) async fn notify_test(
        &self,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        let name = form.text("name");
        let Some(c) = settings
            .notify
            .channels
            .iter()
            .find(|c| c.name == name)
            .cloned()
        else {
            return refuse(
                Route::NotifyTest,
                422,
                &format!("no channel named `{name}`"),
                s,
            );
        };
        let r = match self.pool.run(move || test_now(&c)).await {
            Ok(r) => r,
            Err(b) => return super::busy(Route::NotifyTest, &b, s),
        };
        let version = self.version(settings);
        let v = View {
            settings,
            original: None,
            typed: None,
            error: None,
            notice: None,
            test: Some((name, &r)),
            version: &version,
        };
        self.notify_html(if r.is_ok() { 200 } else { 502 }, &v, s)
    }
}

/// Sends the test on a runtime of this (pool) thread, within [`TEST_TIMEOUT`].
fn test_now(c: &Channel) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        match tokio::time::timeout(TEST_TIMEOUT, crate::notify::send_test(c)).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the receiver did not finish within {} s",
                TEST_TIMEOUT.as_secs()
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::form::parse;

    fn stored() -> Settings {
        let mut s = Settings::default();
        let mut c = Channel::new("hook", ChannelKind::Webhook, "https://example.org/h");
        c.secret = Some(Secret("stored-key".into()));
        s.notify.put(c).unwrap();
        s
    }

    fn apply(body: &str) -> Result<Settings, String> {
        apply_channel(&stored(), &parse(body.as_bytes()))
    }

    #[test]
    fn notify_page_keeps_the_secret_unless_one_is_typed_or_cleared() {
        let base = "original=hook&name=hook&kind=webhook&url=https%3A%2F%2Fexample.org%2Fh2&min_severity=warning";
        let s = apply(&format!("{base}&secret=")).unwrap();
        let c = &s.notify.channels[0];
        assert_eq!(c.secret, Some(Secret("stored-key".into())));
        assert_eq!(
            (c.url.as_str(), c.min_severity),
            ("https://example.org/h2", Severity::Warning)
        );
        let s = apply(&format!("{base}&secret=new-key")).unwrap();
        assert_eq!(s.notify.channels[0].secret, Some(Secret("new-key".into())));
        let s = apply(&format!("{base}&secret=&secret_clear=on")).unwrap();
        assert_eq!(s.notify.channels[0].secret, None);
        // Renamed: the old name is gone, the secret goes along.
        let s = apply(
            &base
                .replace("name=hook&", "name=hook2&")
                .replace("original=hook2", "original=hook"),
        )
        .unwrap();
        let names: Vec<&str> = s.notify.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["hook2"]);
        assert_eq!(
            s.notify.channels[0].secret,
            Some(Secret("stored-key".into()))
        );
    }

    #[test]
    fn notify_page_refuses_what_the_model_refuses_and_says_why() {
        for (body, want) in [
            (
                "name=hook&kind=webhook&url=https%3A%2F%2Fx&min_severity=info",
                "exists already",
            ),
            (
                "name=Bad&kind=webhook&url=https%3A%2F%2Fx&min_severity=info",
                "a channel's name",
            ),
            (
                "name=m&kind=pigeon&url=https%3A%2F%2Fx&min_severity=info",
                "kind is webhook",
            ),
            (
                "name=m&kind=mqtt&url=https%3A%2F%2Fx&min_severity=info",
                "starts with mqtt://",
            ),
            (
                "name=m&kind=ntfy&url=https%3A%2F%2Fx&min_severity=loud",
                "min_severity",
            ),
            (
                "name=e&kind=smtp&url=smtp%3A%2F%2Fmail&min_severity=info",
                "needs from and to",
            ),
            (
                "original=gone&name=gone&kind=ntfy&url=https%3A%2F%2Fx&min_severity=info",
                "no channel `gone` any more",
            ),
        ] {
            let e = apply(body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        let s = apply(
            "name=phone&kind=ntfy&url=https%3A%2F%2Fntfy.sh%2Ft&min_severity=critical&user=&to=",
        )
        .unwrap();
        let c = &s.notify.channels[1];
        assert_eq!(
            (c.user.clone(), c.to.clone(), c.secret.clone()),
            (None, None, None)
        );
    }

    #[test]
    fn notify_page_never_shows_a_secret_and_carries_csrf_and_version() {
        let s = stored();
        let session = crate::web::auth::Session {
            token: "t".into(),
            csrf: "csrf-token".into(),
            created: 0,
            last_used: 0,
        };
        let f = Frame {
            title: "Notifications",
            current: "/setup",
            session: Some(&session),
        };
        let answer = Ok("HTTP 200 OK: accepted".to_string());
        for (original, typed) in [
            (None, None),
            (Some("hook"), None),
            (Some("hook"), Some(parse(b"name=hook&secret=typed-secret"))),
        ] {
            let v = View {
                settings: &s,
                original,
                typed: typed.as_ref(),
                error: None,
                notice: None,
                test: Some(("hook", &answer)),
                version: "v1",
            };
            let h = html(&f, &v);
            assert!(
                !h.contains("stored-key") && !h.contains("typed-secret"),
                "{h}"
            );
            assert!(h.contains("<td>set</td>"), "{h}");
            assert_eq!(
                h.matches("name=\"csrf\" value=\"csrf-token\"").count(),
                5,
                "{h}"
            );
            assert_eq!(h.matches("name=\"version\" value=\"v1\"").count(), 3, "{h}");
            assert!(
                h.contains("channel hook: delivered; the receiver answered: HTTP 200 OK: accepted")
            );
            assert_eq!(h.contains("secret_clear"), original.is_some(), "{h}");
        }
    }
}
