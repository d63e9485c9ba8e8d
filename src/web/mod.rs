//! The setup page: status, NUT configuration, the check's findings and test-connection in a
//! browser, a JSON API for the same, and `/metrics` for Prometheus — served beside the agent
//! (`power-snitch run` makes a [`Page`] and hands it to the agent, which tells it the settings)
//! on the settings' `web_listen` (feature `web`). The page reads the agent's state
//! (`crate::state`); it imports nothing of the agent.
//!
//! Pure parts: [`http`] (requests, responses, the routing table and who may ask for what),
//! [`form`] (form bodies, the setup form against the settings model), [`auth`] (password hash,
//! sessions, CSRF tokens, setup code, the brake on guessing), [`pages`] (HTML), [`metrics`]
//! (Prometheus text). Edges: [`server`] (TCP and HTTP/1.1 through hyper, bounded) and [`app`]
//! (each route: the agent's state, the settings file, the check, upsd).
//!
//! **Architecture invariant:** no response carries a password: not the UPS passwords (forms
//! say "unchanged"), not the admin password or its hash; the setup code goes to the log only,
//! never to the event ring the status page shows.

pub mod app;
pub mod auth;
pub mod form;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod server;

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
    Ok(CheckReport {
        nut_dir: plan.nut_dir.display().to_string(),
        nut_version: plan.installed.version.to_string(),
        json: inspect::render::check_json(&plan, &report),
        findings: report.findings,
        found,
    })
}

/// The setup code file the SD-card image writes next to the settings.
pub fn setup_code_path(settings: &Path) -> PathBuf {
    settings
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("setup-code")
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
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `listen` and serves the page on the current `LocalSet`; an address that cannot be
/// bound is an error for the caller to log (the agent runs on without its page).
pub fn start(
    listen: &str,
    shared: Rc<RefCell<Shared>>,
    config: Config,
    nut_version: NutVersion,
) -> Result<Running, String> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("web_listen `{listen}` is not ADDRESS:PORT"))?;
    let std_listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let app = Rc::new(app::App::new(shared, config, nut_version));
    app.announce_setup_code(listen);
    let task = tokio::task::spawn_local(server::serve(listener, app));
    Ok(Running {
        listen: listen.to_string(),
        task,
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
                emit(log::Level::Info, &format!("setup page on http://{want}/"));
                self.running = Some(r);
            }
            Err(e) => emit(log::Level::Warn, &format!("no setup page: {e}")),
        }
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.task.abort();
        }
    }
}
