//! The page's Commands: for one UPS of the settings, the instant commands it offers (a button
//! each, CSRF as every form), the battery tests kept and the "replace battery" finding. A
//! command that cuts the power shows a second form first and sends nothing until it is
//! confirmed; a battery test is followed to its end (at most [`PAGE_TEST_WAIT`]) and kept.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::form::Form;
use super::super::http::Response;
use super::super::pages::{self, esc, Frame};
use super::{App, Session};
use crate::settings::model::{Settings, UpsEntry};
use crate::state::battery::{self, Origin};
use crate::upsd::client::Client;
use crate::upsd::command::{self, cuts_power, Account};
use crate::upsd::target::Target;

/// How long the page follows a battery test before it answers.
pub const PAGE_TEST_WAIT: Duration = Duration::from_secs(180);

fn entry<'a>(settings: &'a Settings, form: &Form) -> Result<&'a UpsEntry, String> {
    let name = form.text("ups");
    settings
        .ups
        .iter()
        .find(|u| u.nut_device_name == name)
        .or(if name.is_empty() {
            settings.ups.first()
        } else {
            None
        })
        .ok_or_else(|| format!("no UPS `{name}` in the settings"))
}

impl App {
    fn command_client(&self, u: &UpsEntry) -> Client {
        let mut opts = self.config.client.clone();
        opts.retry_count = 0;
        opts.connect_timeout = Duration::from_secs(3);
        opts.request_timeout = Duration::from_secs(3);
        opts.tls.mode = u.tls;
        Client::new(
            Target {
                ups: Some(u.nut_device_name.clone()),
                host: u.upsd_host.clone(),
                port: u.upsd_port,
            },
            opts,
        )
    }

    fn results_path(&self) -> std::path::PathBuf {
        battery::path(&self.config.settings_path)
    }

    /// `GET /commands?ups=NAME`.
    pub(super) async fn commands_page(
        &self,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        let f = Frame {
            title: "Commands",
            current: "/commands",
            session: s,
        };
        let u = match entry(settings, form) {
            Ok(u) => u,
            Err(e) => return Response::html(404, pages::message(&f, "Commands", &e)),
        };
        let ups = u.nut_device_name.clone();
        let mut client = self.command_client(u);
        client.set_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(10)));
        let offered = command::offered(&mut client, &ups).await;
        let mut b = String::new();
        let _ = write!(b, "<h1>Commands: {}</h1>", esc(&ups));
        if settings.ups.len() > 1 {
            b.push_str("<p>");
            for o in &settings.ups {
                let _ = write!(
                    b,
                    "<a href=\"/commands?ups={0}\">{0}</a> ",
                    esc(&o.nut_device_name)
                );
            }
            b.push_str("</p>");
        }
        b.push_str("<section class=\"card\" id=\"commands\"><h2>What the UPS offers</h2>");
        match &offered {
            Ok(list) if list.is_empty() => {
                b.push_str("<p>This UPS offers no instant commands.</p>")
            }
            Ok(list) => {
                b.push_str("<table><tbody>");
                for o in list {
                    let warn = if cuts_power(&o.name) {
                        " <strong>(cuts the power: asks again)</strong>"
                    } else {
                        ""
                    };
                    let button = match s {
                        Some(s) => format!(
                            "<form method=\"post\" action=\"/commands\" class=\"inline\">{}<input type=\"hidden\" name=\"ups\" value=\"{}\"><input type=\"hidden\" name=\"cmd\" value=\"{}\"><button data-cmd=\"{}\">Run</button></form>",
                            pages::csrf_field(s),
                            esc(&ups),
                            esc(&o.name),
                            esc(&o.name)
                        ),
                        None => String::new(),
                    };
                    let _ = write!(
                        b,
                        "<tr><td><code>{}</code></td><td>{}{warn}</td><td>{button}</td></tr>",
                        esc(&o.name),
                        esc(&o.desc)
                    );
                }
                b.push_str("</tbody></table>");
            }
            Err(e) => {
                let _ = write!(b, "<p class=\"failed\">{}</p>", esc(&e.to_string()));
            }
        }
        b.push_str("</section>");
        b.push_str(&self.results_html(&ups));
        Response::html(200, pages::page(&f, &b))
    }

    /// The battery tests kept and the finding.
    fn results_html(&self, ups: &str) -> String {
        let (results, _) = battery::load(&self.results_path());
        let status = self
            .shared
            .borrow()
            .ups
            .iter()
            .find(|s| s.name == ups)
            .map(|s| s.state.status_text())
            .unwrap_or_default();
        let tests = results.tests(ups);
        let mut b =
            String::from("<section class=\"card\" id=\"battery-tests\"><h2>Battery tests</h2>");
        if let Some(why) = battery::replace_battery(&status, &tests) {
            let _ = write!(
                b,
                "<p class=\"failed\" id=\"battery-replace\">Replace the battery [{}]: {}</p>",
                battery::REPLACE_CODE,
                esc(&why)
            );
        }
        if tests.is_empty() {
            b.push_str("<p>No battery tests kept yet.</p>");
        } else {
            b.push_str("<table><thead><tr><th>When</th><th>Test</th><th>Started by</th><th>Result</th><th>Charge</th><th>Runtime</th><th>Load</th></tr></thead><tbody>");
            let n = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v}"));
            for t in tests.iter().rev() {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{} → {}</td><td>{} → {}</td><td>{}</td></tr>",
                    pages::when(t.at),
                    esc(&t.cmd),
                    t.origin.as_str(),
                    esc(&t.tracking),
                    t.test_result
                        .as_deref()
                        .map_or(String::new(), |r| format!(" ({})", esc(r))),
                    n(t.before.charge),
                    n(t.after.charge),
                    n(t.before.runtime),
                    n(t.after.runtime),
                    n(t.after.load.or(t.before.load)),
                );
            }
            b.push_str("</tbody></table>");
        }
        b.push_str("</section>");
        b
    }

    /// `POST /commands`: `ups`, `cmd`, and `confirm=cut-power` for a command that cuts the
    /// power (without it: the second form, nothing sent).
    pub(super) async fn commands_run(
        &self,
        settings: &Settings,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        let f = Frame {
            title: "Commands",
            current: "/commands",
            session: s,
        };
        let u = match entry(settings, form) {
            Ok(u) => u,
            Err(e) => return Response::html(404, pages::message(&f, "Commands", &e)),
        };
        let ups = u.nut_device_name.clone();
        let cmd = form.text("cmd").to_string();
        let confirmed = form.text("confirm") == "cut-power";
        if cuts_power(&cmd) && !confirmed {
            let mut b = format!(
                "<h1>{}: {} cuts the power</h1><p>Everything {} feeds loses its power. Nothing was sent yet.</p>",
                esc(&ups),
                esc(&cmd),
                esc(&ups)
            );
            if let Some(s) = s {
                let _ = write!(
                    b,
                    "<form method=\"post\" action=\"/commands\">{}<input type=\"hidden\" name=\"ups\" value=\"{}\"><input type=\"hidden\" name=\"cmd\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"cut-power\"><button id=\"cut-power\">Cut the power: run {}</button> <a href=\"/commands?ups={}\">Cancel</a></form>",
                    pages::csrf_field(s),
                    esc(&ups),
                    esc(&cmd),
                    esc(&cmd),
                    esc(&ups)
                );
            }
            return Response::html(200, pages::page(&f, &b));
        }
        let (Some(user), Some(password)) = (&u.nut_username, &u.nut_password) else {
            return Response::html(
                422,
                pages::message(
                    &f,
                    "Commands",
                    "No NUT account stored for this UPS: store one with `instcmds` in upsd.users on the setup page",
                ),
            );
        };
        let account = Account {
            user,
            password: &password.0,
        };
        let mut client = self.command_client(u);
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = if cmd.starts_with("test.battery.start") {
            let run = async {
                let offered = command::offered(&mut client, &ups).await?;
                command::admit(&ups, &cmd, &offered, false)?;
                command::self_test(&mut client, &ups, &cmd, &account, PAGE_TEST_WAIT).await
            }
            .await;
            match run {
                Ok(r) => {
                    let record = battery::record_of(at, &cmd, Origin::User, Ok(&r));
                    if let Err(e) = battery::append(&self.results_path(), &ups, record) {
                        log::warn!("{e}");
                    }
                    Ok(r.outcome.word())
                }
                Err(e) => Err(e),
            }
        } else {
            command::run(
                &mut client,
                &ups,
                &cmd,
                &account,
                confirmed,
                Duration::from_secs(30),
            )
            .await
            .map(|o| o.word())
        };
        let (status, mut b) = match &text {
            Ok(w) => (
                200,
                format!(
                    "<h1>{}: {}</h1><p id=\"tracking\">{}</p>",
                    esc(&ups),
                    esc(&cmd),
                    esc(w)
                ),
            ),
            Err(e) => (
                422,
                format!(
                    "<h1 class=\"failed\">{}: {} not done</h1><pre id=\"tracking\">{}</pre>",
                    esc(&ups),
                    esc(&cmd),
                    esc(&e.to_string())
                ),
            ),
        };
        b.push_str(&self.results_html(&ups));
        let _ = write!(
            b,
            "<p><a href=\"/commands?ups={}\">Commands</a></p>",
            esc(&ups)
        );
        Response::html(status, pages::page(&f, &b))
    }
}
