//! The setup page: status, NUT configuration, the check's findings and test-connection in a
//! browser, a JSON API for the same, and `/metrics` for Prometheus — served by the agent
//! (`power-snitch run`) on the settings' `web_listen` (feature `web`).
//!
//! Pure parts: [`http`] (requests, responses, the routing table and who may ask for what),
//! [`form`] (form bodies, the setup form against the settings model), [`auth`] (password hash,
//! sessions, CSRF tokens, setup code, the brake on guessing), [`pages`] (HTML), [`metrics`]
//! (Prometheus text). Edges: [`server`] (TCP and HTTP/1.1 through hyper, bounded), [`pool`]
//! (the blocking work on a fixed set of threads) and [`app`] (each route: the agent's state, the
//! settings file, the check, upsd).
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
pub mod pool;
pub mod server;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::agent::Shared;
use crate::nut::diag::Finding;
use crate::nut::version::NutVersion;

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

/// Runs the full check for a NUT directory (blocking; run off the agent's thread).
pub type CheckFn = Arc<dyn Fn(&Path) -> Result<CheckReport, String> + Send + Sync>;

/// What the page needs from the command line that started the agent.
#[derive(Clone)]
pub struct Config {
    pub settings_path: PathBuf,
    /// Where the hardware is read.
    pub root: crate::probe::Root,
    /// upsd client options (TLS trust) for test-connection.
    pub client: crate::upsd::client::Options,
    pub check: CheckFn,
}

/// The setup code file the SD-card image writes next to the settings.
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
    pub task: tokio::task::JoinHandle<()>,
    /// Why the address could not be bound yet: the task tries again, with back-off, until it
    /// can (another program holding the port must not keep the page away for good).
    pub waiting: Option<String>,
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
async fn bind_later(addr: std::net::SocketAddr, listen: String, app: Rc<app::App>, first: String) {
    let mut delay = BIND_RETRY_FIRST;
    let mut last = first;
    loop {
        tokio::time::sleep(delay).await;
        match bind(addr, &listen) {
            Ok(l) => {
                app.shared.borrow_mut().emit(
                    log::Level::Warn,
                    "web",
                    &format!("setup page on http://{listen}/ at last: the address is free now"),
                );
                server::serve(l, app).await;
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

/// Serves the page on `listen` on the current `LocalSet`. An address that is not ADDRESS:PORT
/// is an error; one that cannot be bound now is retried by the task (see
/// [`Running::waiting`]), so the caller says it loudly.
pub fn start(
    listen: &str,
    shared: Rc<RefCell<Shared>>,
    config: Config,
    nut_version: NutVersion,
) -> Result<Running, String> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("web_listen `{listen}` is not ADDRESS:PORT"))?;
    let app = Rc::new(app::App::new(shared, config, nut_version));
    app.served_as(listen);
    app.make_scrape_token();
    app.announce_setup_code(listen);
    let (task, waiting) = match bind(addr, listen) {
        Ok(l) => (tokio::task::spawn_local(server::serve(l, app)), None),
        Err(e) => (
            tokio::task::spawn_local(bind_later(addr, listen.to_string(), app, e.clone())),
            Some(e),
        ),
    };
    Ok(Running {
        listen: listen.to_string(),
        task,
        waiting,
    })
}
