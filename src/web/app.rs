//! What each route does: the access rules, then the page or the JSON. This is where the pure
//! parts meet the agent's state, the settings file, the check and upsd; the HTTP connection
//! itself is `server`'s.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::auth::{self, Guard, LoginLog, Session, Sessions, Wait};
use super::form::{self, Form, SetupInput};
use super::http::{self, Access, Request, Response, Route};
use super::pages::{self, CheckView, Choices, Found, Frame, SetupView, TestView};
use super::pool::{Busy, Pool};
use super::{charts, metrics, CheckReport, Config};
use crate::json::Object;
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{host, Context};
use crate::settings::model::{Secret, Settings, UpsEntry, AGENT_KEYS, UPS_KEYS};
use crate::settings::{store, sync};
use crate::state::history::{self, Range};
use crate::state::{view, Shared};
use crate::upsd::client::Client;
use crate::upsd::target::Target;

mod clients;
mod commands;
mod notify;
mod nut;

const STYLE: &[u8] = include_bytes!("assets/style.css");
const SCRIPT: &[u8] = include_bytes!("assets/app.js");
const ICON: &[u8] = include_bytes!("assets/icon.svg");

/// A settings change as the store names it: (field, old, new), secrets masked.
type Change = (String, String, String);

/// A failed login waits this long before it is answered, whatever the brake says.
const FAILED_LOGIN_PAUSE: Duration = Duration::from_millis(500);

pub struct App {
    pub shared: Rc<RefCell<Shared>>,
    pub config: Config,
    pub nut_version: NutVersion,
    sessions: RefCell<Sessions>,
    guard: RefCell<Guard>,
    login_log: Cell<LoginLog>,
    /// The blocking work: hashes, the check, the setup form's choices.
    pool: Pool,
    /// The names the page is served as (its listen address; see [`host_ok`]).
    listen: RefCell<String>,
    /// The key of the settings' version in forms (random per start: the version says nothing
    /// about what the settings hold).
    version_key: [u8; 32],
    /// The setup code printed to the log at start, while no password is set.
    setup_code: RefCell<Option<String>>,
    /// The setup code logged when logins from many addresses reached the ceiling: with it, an
    /// attempt passes the ceiling.
    ceiling_code: RefCell<Option<String>>,
    /// The admin password hash last seen: when it changes, every session ends.
    last_hash: RefCell<Option<Secret>>,
}

fn now() -> u64 {
    pages::unix_now()
}

/// A refusal in the route's language: JSON for the API, a page otherwise.
fn refuse(route: Route, status: u16, text: &str, session: Option<&Session>) -> Response {
    if route.is_api() {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.str("error", text);
        o.end();
        return Response::json(status, out);
    }
    let f = Frame {
        title: "Refused",
        current: "",
        session,
    };
    Response::html(status, pages::message(&f, "Refused", text))
}

impl App {
    pub fn new(shared: Rc<RefCell<Shared>>, config: Config, nut_version: NutVersion) -> App {
        App {
            shared,
            config,
            nut_version,
            sessions: RefCell::default(),
            guard: RefCell::default(),
            login_log: Cell::default(),
            pool: Pool::default(),
            listen: RefCell::default(),
            version_key: super::random::<32>().unwrap_or_default(),
            setup_code: RefCell::new(None),
            ceiling_code: RefCell::new(None),
            last_hash: RefCell::new(None),
        }
    }

    pub(super) fn settings(&self) -> Settings {
        let s = store::load(&self.config.settings_path).settings;
        let mut last = self.last_hash.borrow_mut();
        if *last != s.web_password {
            if last.is_some() || s.web_password.is_some() {
                self.sessions.borrow_mut().clear();
            }
            if s.web_password.is_some() {
                self.setup_code.borrow_mut().take();
            }
            *last = s.web_password.clone();
        }
        s
    }

    /// Without an admin password: the one setup code, logged (never into the event ring, which
    /// the status page shows) with the addresses to open (`urls`) and, over HTTPS, the
    /// certificate's fingerprint. The code is the setup code file's (next to the settings), or
    /// a new one written there (0600) with the addresses and the fingerprint, for the
    /// console to show; so every restart, the log and the console say the same code.
    pub fn announce_setup_code(&self, urls: &[String], fingerprint: Option<&str>) {
        let s = self.settings();
        if s.web_password.is_some() {
            return;
        }
        let file = super::setup_code_path(&self.config.settings_path);
        let kept = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.lines().next().and_then(auth::stored_code));
        let code = match kept {
            Some(c) => c,
            None => {
                let Some(random) = super::random::<8>() else {
                    log::error!("web: no randomness for a setup code; set the password with `power-snitch web-password`");
                    return;
                };
                auth::setup_code(&random)
            }
        };
        let text = setup_code_file(&code, urls, fingerprint);
        if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            if let Err(e) = super::tls::write_private(&file, text.as_bytes()) {
                log::warn!("web: cannot write {}: {e}", file.display());
            }
        }
        let check = fingerprint.map_or(String::new(), |f| {
            format!(", check that the certificate's SHA-256 fingerprint is {f}")
        });
        log::warn!(
            "web: no admin password yet: open {}{check}, and give the setup code {code}, or run `power-snitch web-password` on this machine",
            urls.join(" or ")
        );
        *self.setup_code.borrow_mut() = Some(code);
    }

    /// Whether a request's `Host` names this page (see [`host_ok`] and the `web-hosts` file).
    pub fn serves_host(&self, host: &str) -> bool {
        host_ok(host, &self.listen.borrow())
            || extra_host_ok(host, &super::hosts_path(&self.config.settings_path))
    }

    /// The address the page is served on, one of the names a request's `Host` may give.
    pub fn served_as(&self, listen: &str) {
        *self.listen.borrow_mut() = listen.to_string();
    }

    /// Makes the scrape token file next to the settings when there is none (0600, 32 random
    /// bytes in hex), so Prometheus can read `/metrics` while the status is not public.
    pub fn make_scrape_token(&self) {
        let path = super::scrape_token_path(&self.config.settings_path);
        if path.exists() {
            return;
        }
        let Some(random) = super::random::<32>() else {
            log::warn!("web: no randomness for a scrape token");
            return;
        };
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(format!("{}\n", auth::hex(&random)).as_bytes())?;
                f.sync_all()
            });
        match made {
            Ok(()) => log::info!("web: made {}", path.display()),
            Err(e) => log::warn!("web: cannot make {}: {e}", path.display()),
        }
    }

    /// Whether an `Authorization` header carries the scrape token (read from its file each
    /// time, so a new file takes effect without a restart).
    fn scrape_token_ok(&self, authorization: &str) -> bool {
        let Some(given) = authorization.strip_prefix("Bearer ") else {
            return false;
        };
        let path = super::scrape_token_path(&self.config.settings_path);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return false;
        };
        let want = text.trim();
        want.len() >= 32 && auth::same(given.trim().as_bytes(), want.as_bytes())
    }

    fn code_ok(&self, typed: &str) -> bool {
        if typed.is_empty() {
            return false;
        }
        for c in [&self.setup_code, &self.ceiling_code] {
            if let Some(c) = c.borrow().as_deref() {
                if auth::code_matches(c, typed) {
                    return true;
                }
            }
        }
        let file = super::setup_code_path(&self.config.settings_path);
        match std::fs::read_to_string(&file) {
            Ok(text) => auth::code_matches(text.lines().next().unwrap_or("").trim(), typed),
            Err(_) => false,
        }
    }

    fn frame<'a>(
        &self,
        title: &'a str,
        current: &'a str,
        session: Option<&'a Session>,
    ) -> Frame<'a> {
        Frame {
            title,
            current,
            session,
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        if !self.serves_host(&req.host) {
            return Response::text(421, "this page is not served under that name\n");
        }
        let route = match http::route(&req.method, &req.path) {
            Ok(r) => r,
            Err(405) => {
                return refuse(Route::ApiStatus, 405, "method not allowed", None)
                    .with("allow", http::allowed(&req.path).to_string())
            }
            Err(_) => {
                let f = self.frame("Not found", "", None);
                return Response::html(
                    404,
                    pages::message(&f, "Not found", "There is no such page."),
                );
            }
        };
        match route {
            Route::Style => return Response::asset(http::CSS, STYLE),
            Route::Script => return Response::asset(http::JS, SCRIPT),
            Route::Icon => return Response::asset("image/svg+xml", ICON),
            _ => {}
        }
        let settings = self.settings();
        let t = now();
        let token = auth::cookie(&req.cookie, auth::COOKIE).unwrap_or("");
        let session = if token.is_empty() {
            None
        } else {
            self.sessions.borrow_mut().find(token, t)
        };
        let form = if req.method == "POST" {
            form::parse(&req.body)
        } else {
            form::parse(req.query.as_bytes())
        };
        let scraper = route == Route::Metrics && self.scrape_token_ok(&req.authorization);
        match route.access() {
            Access::Anyone => {}
            Access::Status if settings.web_public_status || session.is_some() || scraper => {}
            Access::Status | Access::Session if !route.is_api() && req.method != "POST" => {
                if session.is_none() {
                    let next = if req.query.is_empty() {
                        req.path.clone()
                    } else {
                        format!("{}?{}", req.path, req.query)
                    };
                    return Response::redirect(&format!("/login?next={}", form::encode(&next)));
                }
            }
            Access::Status | Access::Session | Access::Write => {
                let Some(s) = &session else {
                    return refuse(route, 401, "log in first", None);
                };
                if route.access() == Access::Write {
                    let given = form.get("csrf").unwrap_or(&req.csrf_header);
                    if !auth::same(given.as_bytes(), s.csrf.as_bytes()) {
                        return refuse(
                            route,
                            403,
                            "the form's security token does not match this session: reload the page and try again",
                            session.as_ref(),
                        );
                    }
                    if !http::same_origin(&req.origin, &req.host) {
                        return refuse(route, 403, "a change from another site", session.as_ref());
                    }
                }
            }
        }
        let s = session.as_ref();
        match route {
            Route::Status => {
                let f = self.frame("Status", "/", s);
                let sh = self.shared.borrow();
                let range = Range::parse(form.text("range")).unwrap_or(Range::Day);
                let charts = charts::section(&sh, t, range);
                Response::html(200, pages::status(&f, &sh, t, &charts))
            }
            Route::StatusLive => Response::html(
                200,
                pages::status_live(&self.shared.borrow(), t, s.is_some()),
            ),
            Route::LoginForm => {
                if s.is_some() {
                    return Response::redirect("/");
                }
                let f = self.frame("Log in", "", None);
                Response::html(
                    200,
                    pages::login(
                        &f,
                        settings.web_password.is_some(),
                        None,
                        safe_next(form.text("next")),
                        self.guard.borrow_mut().at_ceiling(t),
                    ),
                )
            }
            Route::Login => self.login(req.peer, &settings, &form).await,
            Route::FirstPassword => self.first_password(req.peer, &settings, &form).await,
            Route::Logout => {
                self.sessions.borrow_mut().end(token);
                Response::redirect("/").with("set-cookie", auth::cleared_cookie())
            }
            Route::SetupForm => self.setup_form(&settings, &form, s).await,
            Route::SetupSave => self.setup_save(&settings, &form, s).await,
            Route::Check => self.check_page(&settings, &form, s).await,
            Route::SyncApply => self.sync_apply(&settings, &form, s),
            Route::TestForm => {
                let selected = settings.ups.first().map(|u| u.nut_device_name.as_str());
                let user = settings
                    .ups
                    .first()
                    .and_then(|u| u.nut_username.as_deref())
                    .unwrap_or("");
                let f = self.frame("Test connection", "/test", s);
                let v = TestView {
                    settings: &settings,
                    selected,
                    user,
                    login: false,
                    result: None,
                    error: None,
                };
                Response::html(200, pages::test(&f, &v))
            }
            Route::TestRun => self.test_page(&settings, &form, s).await,
            Route::NutAdopt => self.nut_change(nut::Ask::Adopt, &form, s).await,
            Route::NutRemove => self.nut_change(nut::Ask::Remove, &form, s).await,
            Route::NutToNut => self.nut_change(nut::Ask::ToNut, &form, s).await,
            Route::ApiAdopt => self.nut_change_api(nut::Ask::Adopt, route, &form, s).await,
            Route::ApiRemove => self.nut_change_api(nut::Ask::Remove, route, &form, s).await,
            Route::ApiToNut => self.nut_change_api(nut::Ask::ToNut, route, &form, s).await,
            Route::Clients => self.clients_page(s).await,
            Route::ClientAdd => self.clients_change(true, &form, s).await,
            Route::ClientRemove => self.clients_change(false, &form, s).await,
            Route::Commands => self.commands_page(&settings, &form, s).await,
            Route::CommandRun => self.commands_run(&settings, &form, s).await,
            Route::ApiStatus => {
                // Without a session: UPS state only (no process, files or check counts).
                let sh = self.shared.borrow();
                let json = match s {
                    Some(_) => view::status_json(&sh),
                    None => view::public_status_json(&sh),
                };
                Response::json(200, json)
            }
            Route::ApiEvents => {
                let n = form
                    .text("n")
                    .parse::<usize>()
                    .unwrap_or(crate::state::ring::CAPACITY);
                let sh = self.shared.borrow();
                let shown: Vec<_> = sh
                    .ring
                    .last(crate::state::ring::CAPACITY)
                    .filter(|e| s.is_some() || pages::public_event(&sh, e))
                    .collect();
                let from = shown.len().saturating_sub(n);
                Response::json(200, view::events_json(shown[from..].iter().copied()))
            }
            Route::ApiHistory => {
                let range = match form.text("range") {
                    "" => None,
                    r => match Range::parse(r) {
                        Some(r) => Some(r),
                        None => return refuse(route, 400, "range is 24h or 7d", s),
                    },
                };
                let ups = Some(form.text("ups")).filter(|u| !u.is_empty());
                let sh = self.shared.borrow();
                Response::json(200, history::json(&sh.history, t, range, ups))
            }
            Route::ApiCheck => match self.run_check().await {
                Ok(r) => Response::json(200, r.json),
                Err(CheckError::Busy(b)) => busy(route, &b, s),
                Err(CheckError::Failed(e)) => refuse(route, 500, &e, s),
            },
            Route::ApiSettings => Response::json(200, settings_json(&settings)),
            Route::ApiTest => match self.run_test(&settings, &form).await {
                Ok((_, steps)) => Response::json(200, crate::upsd::diagnose::json(&steps)),
                Err(e) => refuse(route, 422, &e, s),
            },
            Route::Metrics => {
                Response::new(200, http::METRICS, metrics::render(&self.shared.borrow()))
            }
            Route::NotifyPage => self.notify_page(&settings, &form, s),
            Route::NotifySave => self.notify_save(&settings, &form, s),
            Route::NotifyRemove => self.notify_remove(&settings, &form, s),
            Route::NotifyFlap => self.notify_flap(&settings, &form, s),
            Route::NotifyTest => self.notify_test(&settings, &form, s).await,
            Route::Style | Route::Script | Route::Icon => unreachable!("answered above"),
        }
    }

    /// A login event for the log and the event ring (both rate-limited): the client's address
    /// and the time, never what was typed. `refused`: an attempt the brake refused.
    fn log_login(&self, level: log::Level, text: String, refused: bool) {
        let t = now();
        let mut l = self.login_log.get();
        let lines = if refused {
            l.refused(t, text)
        } else {
            l.note(t, text)
        };
        self.login_log.set(l);
        for line in lines {
            self.shared.borrow_mut().emit(level, "web", &line);
        }
    }

    /// Reserves a login attempt by `peer` before anything is checked; else the answer that says
    /// how long to wait. A correct setup code from the console passes the global ceiling.
    fn reserve(&self, peer: Option<IpAddr>, code: &str) -> Result<auth::Ticket, Response> {
        let t = now();
        let ip = peer.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let console = self.code_ok(code);
        let reserved = self
            .guard
            .borrow_mut()
            .reserve(auth::Client::of(ip), t, console);
        let wait = match reserved {
            Ok(ticket) => return Ok(ticket),
            Err(w) => w,
        };
        let (text, ask_code) = match wait {
            Wait::Client(w) => (
                format!("Too many wrong attempts from your address: try again in {w} s."),
                false,
            ),
            Wait::Ceiling(_) => {
                self.ceiling_reached();
                (
                    "Too many wrong attempts: give the setup code from the device's log."
                        .to_string(),
                    true,
                )
            }
        };
        self.log_login(
            log::Level::Warn,
            format!("login from {ip} refused at {}: {text}", pages::when(t)),
            true,
        );
        let f = self.frame("Log in", "", None);
        Err(
            Response::html(429, pages::login(&f, true, Some(&text), "/", ask_code))
                .with("retry-after", wait.secs().to_string()),
        )
    }

    /// The ceiling is reached: a setup code for the console (the log, never the event ring),
    /// made once until it is used.
    fn ceiling_reached(&self) {
        if self.ceiling_code.borrow().is_some() {
            return;
        }
        let Some(random) = super::random::<8>() else {
            return;
        };
        let code = auth::setup_code(&random);
        log::warn!(
            "web: wrong logins reached the ceiling; to log in, give the setup code {code} with the password"
        );
        *self.ceiling_code.borrow_mut() = Some(code);
    }

    async fn failed(&self, ip: Option<IpAddr>, ticket: auth::Ticket, what: &str) {
        self.guard.borrow_mut().failed(ticket, now());
        self.log_login(
            log::Level::Warn,
            format!(
                "failed login from {} at {}: {what}",
                shown_ip(ip),
                pages::when(now())
            ),
            false,
        );
        tokio::time::sleep(FAILED_LOGIN_PAUSE).await;
    }

    fn start_session(&self, ip: Option<IpAddr>, ticket: auth::Ticket, next: &str) -> Response {
        let Some(random) = super::random::<64>() else {
            return Response::text(500, "no randomness for a session");
        };
        self.guard.borrow_mut().succeeded(ticket);
        self.log_login(
            log::Level::Info,
            format!("login from {} at {}", shown_ip(ip), pages::when(now())),
            false,
        );
        let s = self.sessions.borrow_mut().start(&random, now());
        Response::redirect(safe_next(next)).with("set-cookie", auth::session_cookie(&s.token))
    }

    async fn login(&self, peer: Option<IpAddr>, settings: &Settings, form: &Form) -> Response {
        let next = safe_next(form.text("next"));
        let Some(hash) = settings.web_password.clone() else {
            return Response::redirect("/login");
        };
        let code = form.text("code");
        let ticket = match self.reserve(peer, code) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let f = self.frame("Log in", "", None);
        if !code.is_empty() && !self.code_ok(code) {
            self.failed(peer, ticket, "wrong setup code").await;
            return Response::html(
                401,
                pages::login(&f, true, Some("That is not the setup code."), next, true),
            );
        }
        let typed = form.get("password").unwrap_or("").to_string();
        match self
            .pool
            .run(move || auth::verify_password(&hash.0, &typed))
            .await
        {
            Ok(true) => {
                if !code.is_empty() {
                    self.ceiling_code.borrow_mut().take();
                }
                self.start_session(peer, ticket, next)
            }
            Ok(false) => {
                self.failed(peer, ticket, "wrong password").await;
                let ask = self.guard.borrow_mut().at_ceiling(now());
                Response::html(
                    401,
                    pages::login(&f, true, Some("Wrong password."), next, ask),
                )
            }
            Err(b) => {
                self.guard.borrow_mut().cancel(ticket);
                busy(Route::Login, &b, None)
            }
        }
    }

    async fn first_password(
        &self,
        peer: Option<IpAddr>,
        settings: &Settings,
        form: &Form,
    ) -> Response {
        let f = self.frame("Log in", "", None);
        let next = safe_next(form.text("next"));
        if settings.web_password.is_some() {
            return Response::html(
                409,
                pages::login(
                    &f,
                    true,
                    Some("An admin password is already set: log in with it."),
                    next,
                    false,
                ),
            );
        }
        let ticket = match self.reserve(peer, form.text("code")) {
            Ok(t) => t,
            Err(r) => return r,
        };
        if !self.code_ok(form.text("code")) {
            self.failed(peer, ticket, "wrong setup code").await;
            return Response::html(
                401,
                pages::login(&f, false, Some("That is not the setup code."), next, false),
            );
        }
        let password = form.get("password").unwrap_or("");
        let problem = auth::password_acceptable(password).err().or_else(|| {
            (form.get("confirm") != Some(password)).then(|| "the two passwords differ".to_string())
        });
        if let Some(p) = problem {
            // The code was right: what is wrong is the new password, not a guess.
            self.guard.borrow_mut().cancel(ticket);
            return Response::html(422, pages::login(&f, false, Some(&p), next, false));
        }
        let Some(salt) = super::random::<{ auth::SALT_LEN }>() else {
            self.guard.borrow_mut().cancel(ticket);
            return Response::text(500, "no randomness for a salt");
        };
        let password = password.to_string();
        let hash = match self
            .pool
            .run(move || auth::hash_password(&password, &salt, auth::ITERATIONS))
            .await
        {
            Ok(h) => h,
            Err(b) => {
                self.guard.borrow_mut().cancel(ticket);
                return busy(Route::FirstPassword, &b, None);
            }
        };
        let mut new = settings.clone();
        new.web_password = Some(Secret(hash));
        if let Err(e) = self.save(settings, &new) {
            self.guard.borrow_mut().cancel(ticket);
            return Response::html(500, pages::login(&f, false, Some(&e), next, false));
        }
        self.setup_code.borrow_mut().take();
        let _ = std::fs::remove_file(super::setup_code_path(&self.config.settings_path));
        // The new hash is seen on the next load; start from it now.
        *self.last_hash.borrow_mut() = new.web_password.clone();
        self.start_session(peer, ticket, next)
    }

    /// Writes the settings and their change log under the writers' lock; returns how many
    /// fields changed against the file as it was then.
    fn save(&self, _shown: &Settings, new: &Settings) -> Result<usize, String> {
        let changes = store::commit(&self.config.settings_path, new)?.changes;
        for (field, a, b) in &changes {
            log::info!("web: settings changed: {field}: {a} -> {b}");
        }
        Ok(changes.len())
    }

    fn nut_dir(&self) -> PathBuf {
        PathBuf::from(&self.shared.borrow().nut_dir)
    }

    async fn setup_form(&self, settings: &Settings, q: &Form, s: Option<&Session>) -> Response {
        let original = if q.checked("new") {
            None
        } else {
            match q.get("ups") {
                Some(name) => settings
                    .ups
                    .iter()
                    .find(|u| u.nut_device_name == name)
                    .map(|u| u.nut_device_name.as_str()),
                None => settings.ups.first().map(|u| u.nut_device_name.as_str()),
            }
        };
        let mut entry = original
            .and_then(|o| settings.ups.iter().find(|u| u.nut_device_name == o))
            .cloned()
            .unwrap_or_else(|| UpsEntry::new(""));
        // "Use" on a found UPS fills in its driver and port.
        if let Some(d) = q.get("driver").filter(|d| !d.is_empty()) {
            entry.nut_driver = d.to_string();
        }
        if let Some(p) = q.get("port").filter(|p| !p.is_empty()) {
            entry.nut_port = Some(p.to_string());
        }
        let choices = self.choices().await;
        let notice = q.get("saved").map(|n| match n {
            "0" => "Saved: nothing changed.".to_string(),
            n => format!("Saved: {n} change(s). The agent applies them at once."),
        });
        let f = self.frame("Setup", "/setup", s);
        let version = self.version(settings);
        let v = SetupView {
            settings,
            original,
            entry: &entry,
            log_level: settings.log_level,
            public_status: settings.web_public_status,
            errors: &[],
            typed: None,
            choices: &choices,
            notice: notice.as_deref(),
            version: &version,
        };
        Response::html(200, pages::setup(&f, &v))
    }

    /// The settings' version for a form: a keyed hash of their stored form, so a form made
    /// before another change (the command line's, another browser's) is known as stale.
    fn version(&self, settings: &Settings) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.version_key);
        let tag = ring::hmac::sign(&key, &crate::settings::stored::encode(settings));
        auth::hex(&tag.as_ref()[..16])
    }

    async fn setup_save(&self, settings: &Settings, form: &Form, s: Option<&Session>) -> Response {
        let original = form.text("original");
        if !auth::same(
            form.text("version").as_bytes(),
            self.version(settings).as_bytes(),
        ) {
            return refuse(
                Route::SetupSave,
                409,
                "the settings changed since this form was loaded: nothing was saved; reload the page and try again",
                s,
            );
        }
        let input = SetupInput { original, form };
        match form::apply_setup(settings, &input) {
            Ok(new) => match self.save(settings, &new) {
                Ok(n) => {
                    let name = new
                        .ups
                        .iter()
                        .find(|u| u.nut_device_name == form.text("nut_device_name"))
                        .map_or("", |u| u.nut_device_name.as_str());
                    Response::redirect(&format!("/setup?ups={}&saved={n}", form::encode(name)))
                }
                Err(e) => refuse(Route::SetupSave, 500, &e, s),
            },
            Err(errors) => {
                let choices = self.choices().await;
                let entry = settings
                    .ups
                    .iter()
                    .find(|u| u.nut_device_name == original)
                    .cloned()
                    .unwrap_or_else(|| UpsEntry::new(""));
                let orig = settings
                    .ups
                    .iter()
                    .find(|u| u.nut_device_name == original)
                    .map(|u| u.nut_device_name.as_str());
                let f = self.frame("Setup", "/setup", s);
                let version = self.version(settings);
                let v = SetupView {
                    settings,
                    original: orig,
                    entry: &entry,
                    log_level: settings.log_level,
                    public_status: form.checked("web_public_status"),
                    errors: &errors,
                    typed: Some(form),
                    choices: &choices,
                    notice: None,
                    version: &version,
                };
                Response::html(422, pages::setup(&f, &v))
            }
        }
    }

    /// What the setup form offers: the UPSes on USB (read from sysfs, no serial dialogue), the
    /// drivers that fit them and every driver, the ports, ups.conf's sections.
    async fn choices(&self) -> Choices {
        let root = self.config.root.clone();
        let dir = self.nut_dir();
        let version = self.nut_version;
        match self.pool.run(move || choices(&root, &dir, version)).await {
            Ok(c) => c,
            Err(b) => Choices {
                problems: vec![format!("the UPSes found are not shown: {b}")],
                ..Choices::default()
            },
        }
    }

    async fn run_check(&self) -> Result<CheckReport, CheckError> {
        let given = self.config.given.clone();
        let installed = self.config.installed.clone();
        self.pool
            .run(move || super::check_report(&given, installed))
            .await
            .map_err(CheckError::Busy)?
            .map_err(CheckError::Failed)
    }

    /// What `sync --apply` would change now, and the settings it would write.
    fn sync_preview(&self, settings: &Settings) -> Result<(Vec<Change>, Settings), String> {
        let dir = self.nut_dir();
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        let cx = Context {
            version: self.nut_version,
            drivers: DriverDb::builtin(),
            host_drivers: None,
        };
        let (parsed, _) = crate::nut::validate(&host::snapshot(&dir), &cx);
        let new = sync::apply(settings, &parsed);
        Ok((store::changes(settings, &new), new))
    }

    async fn check_page(&self, settings: &Settings, q: &Form, s: Option<&Session>) -> Response {
        let report = match self.run_check().await {
            Ok(r) => r,
            Err(CheckError::Busy(b)) => return busy(Route::Check, &b, s),
            Err(CheckError::Failed(e)) => {
                let f = self.frame("Check", "/check", s);
                return Response::html(500, pages::message(&f, "The check could not run", &e));
            }
        };
        let (sync, sync_error) = match self.sync_preview(settings) {
            Ok((c, _)) => (c, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let notice = q
            .get("synced")
            .map(|n| format!("Synced from NUT: {n} change(s) written."));
        let f = self.frame("Check", "/check", s);
        let v = CheckView {
            nut_dir: &report.nut_dir,
            nut_version: &report.nut_version,
            findings: &report.findings,
            found: &report.found,
            sync: &sync,
            sync_error: sync_error.as_deref(),
            notice: notice.as_deref(),
            adoptable: &report.adoptable,
        };
        Response::html(200, pages::check(&f, &v))
    }

    fn sync_apply(&self, settings: &Settings, form: &Form, s: Option<&Session>) -> Response {
        match self.sync_preview(settings) {
            Ok((changes, new)) => {
                if form.text("expect") != changes.len().to_string() {
                    return refuse(
                        Route::SyncApply,
                        409,
                        "NUT's files or the settings changed since the page showed what the sync would do: look again",
                        s,
                    );
                }
                match self.save(settings, &new) {
                    Ok(n) => Response::redirect(&format!("/check?synced={n}#sync")),
                    Err(e) => refuse(Route::SyncApply, 500, &e, s),
                }
            }
            Err(e) => refuse(Route::SyncApply, 500, &e, s),
        }
    }

    /// Runs test-connection's steps for the entry the form names, with the stored credentials
    /// or those typed (never stored).
    async fn run_test(
        &self,
        settings: &Settings,
        form: &Form,
    ) -> Result<(String, Vec<crate::upsd::diagnose::Step>), String> {
        let name = form.text("ups");
        let entry = settings
            .ups
            .iter()
            .find(|u| u.nut_device_name == name)
            .or(if name.is_empty() {
                settings.ups.first()
            } else {
                None
            })
            .ok_or_else(|| format!("no UPS `{name}` in the settings"))?;
        let user = match form.text("user") {
            "" => entry.nut_username.clone(),
            u => Some(u.to_string()),
        };
        let typed = form.get("password").unwrap_or("");
        let password = if !typed.is_empty() {
            Some(typed.to_string())
        } else if user == entry.nut_username {
            entry.nut_password.as_ref().map(|p| p.0.clone())
        } else {
            None
        };
        let credentials = match (user, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (Some(u), None) => {
                return Err(format!(
                    "no password for `{u}`: type it, or store it on the setup page"
                ))
            }
            (None, _) => None,
        };
        let login = form.checked("login");
        if login && credentials.is_none() {
            return Err("a LOGIN test needs a user name and password".into());
        }
        let target = Target {
            ups: Some(entry.nut_device_name.clone()),
            host: entry.upsd_host.clone(),
            port: entry.upsd_port,
        };
        let mut opts = self.config.client.clone();
        opts.retry_count = 0;
        opts.connect_timeout = Duration::from_secs(3);
        opts.request_timeout = Duration::from_secs(3);
        opts.tls.mode = entry.tls;
        let address = target.address();
        let mut client = Client::new(target, opts);
        // The page's whole test ends within this, whatever upsd does.
        client.set_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(10)));
        let steps = crate::upsd::diagnose::diagnose(&mut client, credentials, login).await;
        Ok((address, steps))
    }

    async fn test_page(&self, settings: &Settings, form: &Form, s: Option<&Session>) -> Response {
        let result = self.run_test(settings, form).await;
        let f = self.frame("Test connection", "/test", s);
        let (address, steps, error) = match &result {
            Ok((a, st)) => (a.as_str(), st.as_slice(), None),
            Err(e) => ("", &[][..], Some(e.as_str())),
        };
        let v = TestView {
            settings,
            selected: Some(form.text("ups")),
            user: form.text("user"),
            login: form.checked("login"),
            result: result.is_ok().then_some((address, steps)),
            error,
        };
        Response::html(if error.is_some() { 422 } else { 200 }, pages::test(&f, &v))
    }
}

/// Why the check gave no report.
enum CheckError {
    Busy(Busy),
    Failed(String),
}

/// "Busy, try again": 503 with `Retry-After`.
fn busy(route: Route, b: &Busy, s: Option<&Session>) -> Response {
    refuse(route, 503, &b.to_string(), s).with("retry-after", "1".into())
}

fn shown_ip(ip: Option<IpAddr>) -> String {
    ip.map_or("an unknown address".into(), |ip| ip.to_string())
}

/// The setup code file: the code on the first line (what the page compares), then the
/// addresses to open, one a line, and `SHA-256 FINGERPRINT` over HTTPS.
pub fn setup_code_file(code: &str, urls: &[String], fingerprint: Option<&str>) -> String {
    let mut out = format!("{code}\n");
    for u in urls {
        out.push_str(u);
        out.push('\n');
    }
    if let Some(f) = fingerprint {
        out.push_str(&format!("SHA-256 {f}\n"));
    }
    out
}

/// The pages a login may go on to.
const NEXT_PATHS: &[&str] = &["/", "/setup", "/check", "/test", "/notify"];

/// Where to go after logging in: one of [`NEXT_PATHS`], with a query of plain URL characters
/// only (no control character, space or backslash reaches `Location`); anything else is `/`.
fn safe_next(next: &str) -> &str {
    let (path, query) = next.split_once('?').unwrap_or((next, ""));
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"=&%-_.~+".contains(&b);
    if NEXT_PATHS.contains(&path) && query.bytes().all(plain) {
        next
    } else {
        "/"
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]:port`), lower case, without a
/// final dot.
fn host_name(host: &str) -> String {
    let h = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        },
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Names the page is also served as, from `text` (the `web-hosts` file): one a line, `#`
/// starts a comment; at most 64 names are read.
pub fn parse_hosts(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .take(64)
        .map(host_name)
        .collect()
}

/// Whether `host` is one of the names in the `web-hosts` file (read each time a request names
/// another host, so an edit applies at once; at most 4 KiB of it).
fn extra_host_ok(host: &str, file: &Path) -> bool {
    if std::fs::metadata(file).map_or(true, |m| m.len() > 4096) {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let name = host_name(host);
    !name.is_empty() && parse_hosts(&text).contains(&name)
}

/// The machine's host name, as the kernel has it.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether a request's `Host` names this page, so DNS rebinding (another site's name pointed at
/// this address) is refused: the listen address, the loopback names, the machine's name and
/// `NAME.local`, and any IP address of this machine. No `Host` at all (HTTP/1.0) is let in: a
/// browser always sends one.
pub fn host_ok(host: &str, listen: &str) -> bool {
    if host.is_empty() {
        return true;
    }
    let name = host_name(host);
    if name.is_empty() {
        return false;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        let listen_ip = listen.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
        // An address literal cannot be rebound; still, only one of this machine's (it can be
        // bound to) is the page's.
        return ip.is_loopback()
            || Some(ip) == listen_ip
            || (!ip.is_unspecified()
                && !ip.is_multicast()
                && std::net::UdpSocket::bind((ip, 0)).is_ok());
    }
    if name == "localhost" {
        return true;
    }
    let me = machine_name();
    !me.is_empty() && (name == me || name.strip_suffix(".local") == Some(me.as_str()))
}

/// The settings as JSON, without any secret: passwords are only said to be set or not.
pub fn settings_json(s: &Settings) -> String {
    let mut ups = String::from("[");
    for (i, u) in s.ups.iter().enumerate() {
        if i > 0 {
            ups.push(',');
        }
        let mut o = Object::new(&mut ups);
        for k in UPS_KEYS.iter().filter(|k| **k != "nut_password") {
            o.str(k, &u.show(k));
        }
        o.bool("nut_password_set", u.nut_password.is_some());
        o.end();
    }
    ups.push(']');
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    for k in AGENT_KEYS {
        o.str(k, &s.show_agent(k));
    }
    o.bool("web_password_set", s.web_password.is_some())
        .raw("ups", &ups);
    o.end();
    out
}

/// The setup form's choices (blocking: reads sysfs and NUT's files).
pub fn choices(root: &crate::probe::Root, nut_dir: &Path, version: NutVersion) -> Choices {
    use crate::probe::{scan, Scan};
    let usb = crate::inspect::plan::usb_reader(root);
    let inv = scan(
        &Scan {
            root,
            usb: usb.as_deref(),
            asked: &[],
            talk: false,
            only: None,
            progress: &|_| {},
        },
        &crate::probe::knowledge(root),
    );
    let mut c = Choices::default();
    for u in &inv.ups {
        c.found.push(Found {
            description: crate::probe::cross::describe(&inv, u),
            drivers: u.drivers.clone(),
            port: u.port.clone(),
        });
        for d in &u.drivers {
            if !c.drivers.contains(d) {
                c.drivers.push(d.clone());
            }
        }
        if !c.ports.contains(&u.port) {
            c.ports.push(u.port.clone());
        }
    }
    for d in DriverDb::builtin().driver_names(version) {
        if !c.drivers.iter().any(|x| x == d) {
            c.drivers.push(d.to_string());
        }
    }
    if !c.ports.iter().any(|p| p == "auto") {
        c.ports.insert(0, "auto".into());
    }
    for p in &inv.serial {
        if p.console {
            continue;
        }
        let name = p.by_id.first().cloned().unwrap_or_else(|| p.path.clone());
        if !c.ports.contains(&name) {
            c.ports.push(name);
        }
    }
    c.problems = inv.problems.clone();
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    if nut_dir.is_dir() {
        let (parsed, _) = crate::nut::validate(&host::snapshot(nut_dir), &cx);
        if let Some(conf) = parsed.ups {
            c.sections = conf.sections.iter().map(|s| s.name.clone()).collect();
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_next_stays_on_this_site() {
        assert_eq!(safe_next("/setup?ups=a"), "/setup?ups=a");
        assert_eq!(safe_next("/check"), "/check");
        assert_eq!(
            safe_next("/setup?ups=rack%201&new=1"),
            "/setup?ups=rack%201&new=1"
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "",
            "/\t/evil",
            "/%09/evil",
            "/setup\r\nset-cookie: x=1",
            "/setup?ups=a\r\nx: y",
            "/setup?ups=a b",
            "/static/../metrics",
            "/nope",
            "/setup/",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn web_host_names_the_page_or_is_refused() {
        let me = machine_name();
        let listen = "192.0.2.10:8080";
        for ok in [
            "",
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:8080",
            "[::1]:8080",
            "192.0.2.10:8080",
        ] {
            assert!(host_ok(ok, listen), "{ok}");
        }
        if !me.is_empty() {
            assert!(host_ok(&format!("{me}:8080"), listen));
            assert!(host_ok(&format!("{me}.local."), listen));
            assert!(!host_ok(&format!("{me}.evil.example"), listen));
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "192.0.2.99:8080",
            "0.0.0.0:8080",
            "[2001:db8::1]:8080",
            ":8080",
            "localhost.evil.example",
            "pi.localhost",
        ] {
            assert!(!host_ok(bad, listen), "{bad}");
        }
        assert_eq!(host_name("Pi.Local.:80"), "pi.local");
        assert_eq!(
            parse_hosts("# names\nUPS.example.lan\n\n  pi1.home.:8080  # the rack\n"),
            ["ups.example.lan", "pi1.home"]
        );
        assert_eq!(parse_hosts(&"a\n".repeat(100)).len(), 64);
        let dir = std::env::temp_dir().join(format!("ps-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web-hosts");
        assert!(!extra_host_ok("ups.example.lan", &file), "no file");
        std::fs::write(&file, "ups.example.lan\n").unwrap();
        assert!(extra_host_ok("UPS.example.lan:8080", &file));
        assert!(!extra_host_ok("evil.example", &file));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(host_name("[fe80::1]:80"), "fe80::1");
    }

    #[test]
    fn web_settings_json_has_no_secret() {
        let mut s = Settings::default();
        let mut u = UpsEntry::new("ups1");
        u.nut_username = Some("mon".into());
        u.nut_password = Some(Secret("hunter2-secret".into()));
        s.ups.push(u);
        s.web_password = Some(Secret("pbkdf2-sha256$1000$aa$bb".into()));
        let j = settings_json(&s);
        assert!(!j.contains("hunter2") && !j.contains("pbkdf2"), "{j}");
        assert!(j.contains(r#""nut_password_set":true"#), "{j}");
        assert!(j.contains(r#""web_password_set":true"#), "{j}");
        assert!(j.contains(r#""nut_username":"mon""#), "{j}");
    }
}
