//! The setup page: status, NUT configuration, the check's findings and test-connection in a
//! browser, a JSON API for the same, and `/metrics` for Prometheus — served beside the agent
//! (`power-snitch run` makes a [`Page`] and hands it to the agent, which tells it the settings)
//! on the settings' `web_listen` (feature `web`). The page reads the agent's state
//! (`crate::state`); it imports nothing of the agent.
//!
//! Pure parts: [`http`] (requests, responses, the routing table and who may ask for what),
//! [`form`] (form bodies, the setup form against the settings model), [`auth`] (password hash,
//! sessions, CSRF tokens, setup code, the brake on guessing), [`pages`] (HTML), [`metrics`]
//! (Prometheus text). Edges: [`server`] (TCP and HTTP/1.1 through hyper, bounded; TLS on a
//! non-loopback address), [`tls`] (the page's certificate and the addresses to open), [`pool`]
//! (the blocking work on a fixed set of threads) and [`app`] (each route: the agent's state, the
//! settings file, the check, upsd).
//!
//! **Architecture invariant:** no response carries a password: not the UPS passwords (forms
//! say "unchanged"), not the admin password or its hash; the setup code goes to the log only,
//! never to the event ring the status page shows.

pub mod app;
pub mod auth;
pub mod charts;
pub mod form;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod pool;
pub mod server;
pub mod tls;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::inspect::{self, Face, Given, Installed, Plan};
use crate::nut::diag::Finding;
use crate::nut::version::NutVersion;
use crate::settings::model::Settings;
use crate::state::{Companion, Shared};

/// What a full check found, for the check page and `/api/check`.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub nut_dir: String,
    pub nut_version: String,
    pub findings: Vec<Finding>,
    /// Each UPS found and the ups.conf section that serves it.
    pub found: Vec<(pages::Found, Option<String>)>,
    /// The report as `power-snitch check --format json` prints it.
    pub json: String,
    /// The UPSes found that no section serves: (device, what it is), each with an Adopt button.
    pub adoptable: Vec<(String, String)>,
}

/// What the page needs from the command line that started the agent.
#[derive(Clone)]
pub struct Config {
    pub settings_path: PathBuf,
    /// Where the hardware is read.
    pub root: crate::probe::Root,
    /// upsd client options (TLS trust) for test-connection.
    pub client: crate::upsd::client::Options,
    /// What the check's plan is resolved from, as for `check`: the agent's options.
    pub given: Given,
    /// The installed NUT, resolved once when the agent starts.
    pub installed: Installed,
}

/// The page's Check: the application layer's check of the page's plan (blocking; run off the
/// agent's thread), as the check page and `/api/check` show it.
pub fn check_report(given: &Given, installed: Installed) -> Result<CheckReport, String> {
    let plan = Plan::resolve(Face::Page, given, installed).map_err(|e| e.to_string())?;
    plan.require_nut_dir().map_err(|e| e.to_string())?;
    let report = inspect::check(&plan, &|_| {});
    let found = report
        .inv
        .ups
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let f = pages::Found {
                description: crate::probe::cross::describe(&report.inv, u),
                drivers: u.drivers.clone(),
                port: u.port.clone(),
            };
            (f, report.section_of(i).map(str::to_string))
        })
        .collect();
    let adoptable = inspect::adopt::candidates(&plan, &report)
        .into_iter()
        .map(|c| (c.device, c.describe))
        .collect();
    Ok(CheckReport {
        adoptable,
        nut_dir: plan.nut_dir.display().to_string(),
        nut_version: plan.installed.version.to_string(),
        json: inspect::render::check_json(&plan, &report),
        findings: report.findings,
        found,
    })
}

/// The setup code file next to the settings: the page writes it while no admin password is set
/// (the code, the addresses to open, the certificate's fingerprint); the console shows it.
pub fn setup_code_path(settings: &Path) -> PathBuf {
    settings
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("setup-code")
}

/// The token Prometheus gives as `Authorization: Bearer` to read `/metrics` while the status is
/// not public: a file next to the settings, made at the page's first start.
pub fn scrape_token_path(settings: &Path) -> PathBuf {
    setup_code_path(settings).with_file_name("metrics-token")
}

/// More names the page is served as (a reverse proxy's, a DNS name), one a line: a file next
/// to the settings, read when a request's `Host` is none of the built-in ones.
pub fn hosts_path(settings: &Path) -> PathBuf {
    setup_code_path(settings).with_file_name("web-hosts")
}

/// `N` random bytes from the system, or none when it has none to give.
pub fn random<const N: usize>() -> Option<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).ok()?;
    Some(out)
}

/// The page being served: its address and task.
pub struct Running {
    pub listen: String,
    /// The addresses a person can open, and over HTTPS the certificate's fingerprint.
    pub urls: Vec<String>,
    pub fingerprint: Option<String>,
    pub task: tokio::task::JoinHandle<()>,
    /// While no admin password is set and the page listens on every address: the task that
    /// says the setup code again with the new addresses when the machine's change (the LAN's
    /// DHCP answers after the agent has started).
    pub announce: Option<tokio::task::JoinHandle<()>>,
    /// Why the address could not be bound yet: the task tries again, with back-off, until it
    /// can (another program holding the port must not keep the page away for good).
    pub waiting: Option<String>,
}

/// How often the machine's addresses are read again while the setup is not done.
pub const ADDRESSES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Says the setup code again (log, journal, the setup code file the console shows) each time
/// the addresses a person can open change, until the admin password is set.
async fn announce_new_addresses(
    app: Rc<app::App>,
    addr: std::net::SocketAddr,
    fingerprint: Option<String>,
    mut last: Vec<String>,
) {
    loop {
        tokio::time::sleep(ADDRESSES_EVERY).await;
        if app.settings().web_password.is_some() {
            return;
        }
        let urls = tls::urls(addr, true, &tls::Names::of_this_machine(), "/login");
        if urls != last {
            app.announce_setup_code(&urls, fingerprint.as_deref());
            last = urls;
        }
    }
}

/// The first wait before binding again, and the longest.
pub const BIND_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
pub const BIND_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

fn bind(addr: std::net::SocketAddr, listen: &str) -> Result<tokio::net::TcpListener, String> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tokio::net::TcpListener::from_std(l).map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Binds `addr` again and again (1 s, 2 s, 4 s, ... up to [`BIND_RETRY_MAX`] apart), an error
/// in the log and the events each time the reason changes, then serves.
async fn bind_later(
    addr: std::net::SocketAddr,
    listen: String,
    app: Rc<app::App>,
    first: String,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let mut delay = BIND_RETRY_FIRST;
    let mut last = first;
    loop {
        tokio::time::sleep(delay).await;
        match bind(addr, &listen) {
            Ok(l) => {
                app.shared.borrow_mut().emit(
                    log::Level::Warn,
                    "web",
                    &format!("setup page on {listen} at last: the address is free now"),
                );
                server::serve(l, app, tls).await;
                return;
            }
            Err(e) => {
                if e != last {
                    app.shared.borrow_mut().emit(
                        log::Level::Error,
                        "web",
                        &format!("{e}; trying again"),
                    );
                    last = e;
                }
                delay = (delay * 2).min(BIND_RETRY_MAX);
            }
        }
    }
}

/// Serves the page on `listen` on the current `LocalSet`: plain HTTP on a loopback address,
/// HTTPS with the page's certificate (made at the first start, see [`tls::load_or_make`])
/// on any other. An address that is not ADDRESS:PORT, or a certificate that cannot be made,
/// is an error (never plain HTTP instead); an address that cannot be bound now is retried by
/// the task (see [`Running::waiting`]), so the caller says it loudly.
pub fn start(
    listen: &str,
    shared: Rc<RefCell<Shared>>,
    config: Config,
    nut_version: NutVersion,
) -> Result<Running, String> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("web_listen `{listen}` is not ADDRESS:PORT"))?;
    let https = !addr.ip().is_loopback();
    let names = tls::Names::of_this_machine();
    let identity = if https {
        Some(
            tls::load_or_make(&config.settings_path, &names)
                .map_err(|e| format!("no HTTPS for {listen}: {e}"))?,
        )
    } else {
        None
    };
    let fingerprint = identity.as_ref().map(|i| i.fingerprint.clone());
    let tls = identity.map(|i| i.config);
    let app = Rc::new(app::App::new(shared, config, nut_version));
    app.served_as(listen);
    app.make_scrape_token();
    let login_urls = tls::urls(addr, https, &names, "/login");
    app.announce_setup_code(&login_urls, fingerprint.as_deref());
    let announce = (https && addr.ip().is_unspecified() && app.settings().web_password.is_none())
        .then(|| {
            tokio::task::spawn_local(announce_new_addresses(
                app.clone(),
                addr,
                fingerprint.clone(),
                login_urls,
            ))
        });
    let (task, waiting) = match bind(addr, listen) {
        Ok(l) => (tokio::task::spawn_local(server::serve(l, app, tls)), None),
        Err(e) => (
            tokio::task::spawn_local(bind_later(addr, listen.to_string(), app, e.clone(), tls)),
            Some(e),
        ),
    };
    Ok(Running {
        listen: listen.to_string(),
        urls: tls::urls(addr, https, &names, "/"),
        fingerprint,
        task,
        announce,
        waiting,
    })
}

/// The setup page beside the agent: served on the settings' `web_listen`, started, moved or
/// stopped when it changes. An address that cannot be bound is logged; the agent runs on
/// without the page.
pub struct Page {
    config: Config,
    running: Option<Running>,
}

impl Page {
    pub fn new(config: Config) -> Page {
        Page {
            config,
            running: None,
        }
    }
}

impl Companion for Page {
    fn apply(
        &mut self,
        settings: &Settings,
        nut_version: NutVersion,
        shared: &Rc<RefCell<Shared>>,
    ) {
        let want = settings.web_listen.clone();
        if self.running.as_ref().map(|w| w.listen.as_str()) == Some(want.as_str()) {
            return;
        }
        let emit = |level, text: &str| shared.borrow_mut().emit(level, "web", text);
        if let Some(old) = self.running.take() {
            old.task.abort();
            if let Some(a) = old.announce {
                a.abort();
            }
            emit(
                log::Level::Info,
                &format!("stopped serving on {}", old.listen),
            );
        }
        if want.is_empty() {
            log::info!("web: the setup page is off (web_listen is empty)");
            return;
        }
        match start(&want, shared.clone(), self.config.clone(), nut_version) {
            Ok(r) => {
                match &r.waiting {
                    None => emit(
                        log::Level::Info,
                        &format!(
                            "setup page on {}{}",
                            r.urls.join(" "),
                            r.fingerprint
                                .as_ref()
                                .map_or(String::new(), |f| format!(" (certificate SHA-256 {f})"))
                        ),
                    ),
                    Some(e) => emit(
                        log::Level::Error,
                        &format!("no setup page yet: {e}; trying again until it is free"),
                    ),
                }
                self.running = Some(r);
            }
            Err(e) => emit(log::Level::Warn, &format!("no setup page: {e}")),
        }
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.task.abort();
            if let Some(a) = r.announce {
                a.abort();
            }
        }
    }
}
