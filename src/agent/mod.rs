//! The agent, `power-snitch run`: monitors each configured UPS through its upsd, logs every
//! change that matters once, watches NUT's files and the settings, answers on a control socket
//! and tells systemd how it is doing. One thread (a current-thread tokio runtime), one task per
//! upsd connection, bounded memory.
//!
//! **Architecture invariant:** the meaning of a reading or a failed connection is decided in
//! [`monitor`] (pure, time passed in); this module only feeds it and logs what it says.

pub mod check;
pub mod control;
pub mod monitor;
pub mod notify;
pub mod ring;
pub mod watch;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::Level;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::nut::diag::Finding;
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{host, Context};
use crate::settings::model::{LogLevel, Secret, Settings};
use crate::settings::store;
use crate::upsd::client::{is_transport, Client, Options};
use crate::upsd::error::NutError;
use crate::upsd::proto::Request;
use crate::upsd::target::Target;
use crate::upsd::tls::TlsMode;
use monitor::{Link, Note, Reading, Readings, RetryPolicy, UpsState, Vars};
use ring::Ring;

/// Longest pause between reconnection attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// How long file events settle before the files are read again (editors write in steps).
pub const SETTLE: Duration = Duration::from_millis(150);
/// Findings logged one by one after a change; beyond, a count.
pub const MAX_LOGGED_FINDINGS: usize = 20;
/// Exit code when the agent cannot start.
pub const EXIT_CANNOT_RUN: u8 = 3;

/// What `power-snitch run` was given.
pub struct Config {
    pub settings_path: PathBuf,
    /// `--nut-dir`; else the settings' `nut_conf_dir`.
    pub nut_dir: Option<PathBuf>,
    pub nut_version: Option<NutVersion>,
    pub control_socket: PathBuf,
    /// Where the hardware is read (`/sys`, or a captured tree with `--sysfs-root`).
    pub root: crate::probe::Root,
    /// Timeouts and TLS trust for upsd; retries and the TLS mode come from each entry.
    pub client: Options,
    /// Applies the settings' log level (the command line's -v/-q and RUST_LOG on top).
    pub set_log_level: Box<dyn Fn(LogLevel)>,
    /// The setup page's needs; it is served on the settings' `web_listen`.
    #[cfg(feature = "web")]
    pub web: crate::web::Config,
}

/// One configured UPS, as the monitor tasks and the control socket see it.
pub struct UpsSlot {
    pub name: String,
    /// upsd's `host:port`.
    pub upsd: String,
    pub poll_interval: u32,
    pub state: UpsState,
    /// The last poll's numbers (charge, runtime, load, voltages) and names; empty when upsd
    /// had no data.
    pub readings: Readings,
    pub polls: u64,
    pub last_poll_ms: Option<u64>,
    last_poll: Option<Instant>,
    due: Instant,
}

impl UpsSlot {
    /// A UPS not polled yet, due now.
    pub fn new(name: &str, upsd: &str, poll_interval: u32) -> UpsSlot {
        UpsSlot {
            name: name.to_string(),
            upsd: upsd.to_string(),
            poll_interval,
            state: UpsState::default(),
            readings: Readings::default(),
            polls: 0,
            last_poll_ms: None,
            last_poll: None,
            due: Instant::now(),
        }
    }
}

pub struct LinkSlot {
    pub address: String,
    pub link: Link,
}

/// What the tasks share (one thread: a `RefCell`, never borrowed across an await).
pub struct Shared {
    pub started: u64,
    pub ring: Ring,
    pub ups: Vec<UpsSlot>,
    pub links: Vec<LinkSlot>,
    /// Errors, warnings, infos of the last check, and when it ran.
    pub findings: (usize, usize, usize),
    pub checked_at: u64,
    pub settings_path: String,
    pub nut_dir: String,
}

impl Shared {
    /// Logs an event and keeps it in the ring (debug ones are only logged).
    pub fn emit(&mut self, level: Level, source: &str, text: &str) {
        log::log!(level, "{source}: {text}");
        if level <= Level::Info {
            self.ring.push(unix_now(), level, source, text);
        }
    }

    fn emit_notes(&mut self, source: &str, notes: &mut Vec<Note>) {
        for n in notes.drain(..) {
            self.emit(n.level, source, &n.text);
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The one-line state for systemd's STATUS=: each UPS, its data and its upsd, then findings.
pub fn status_line(s: &Shared) -> String {
    let mut parts: Vec<String> = s
        .ups
        .iter()
        .map(|u| {
            let st = &u.state;
            let data = match &st.data {
                monitor::Data::Unknown => "not read yet".to_string(),
                monitor::Data::Ok => st.status_text(),
                monitor::Data::Unavailable(code) => code.clone(),
            };
            let charge = st.charge.map_or(String::new(), |c| format!(", {c}%"));
            let link = s
                .links
                .iter()
                .find(|l| l.address == u.upsd)
                .map_or("?", |l| l.link.state.as_str());
            format!("{}: {data}{charge}, upsd {link}", u.name)
        })
        .collect();
    if parts.is_empty() {
        parts.push("no UPS configured".into());
    }
    let (e, w, _) = s.findings;
    parts.push(format!("NUT files: {e} error(s), {w} warning(s)"));
    parts.join("; ")
}

/// Runs the agent until SIGTERM or SIGINT; returns the exit code.
pub fn run(config: Config) -> u8 {
    let notifier = notify::Notifier::from_env();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, main_loop(config, notifier))
}

/// What decides a upsd connection; a change reconnects.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Params {
    host: String,
    port: u16,
    retry_count: u32,
    retry_delay: u32,
    tls: TlsMode,
    credentials: Option<(String, Secret)>,
}

struct Group {
    address: String,
    params: Params,
    wake: Rc<Notify>,
    task: JoinHandle<()>,
}

struct Agent {
    config: Config,
    shared: Rc<RefCell<Shared>>,
    settings: Settings,
    nut_dir: PathBuf,
    version: NutVersion,
    installed: Option<Vec<String>>,
    findings: Vec<Finding>,
    prints: Vec<(String, Option<u64>)>,
    groups: Vec<Group>,
    #[cfg(feature = "web")]
    web: Option<crate::web::Running>,
}

fn address(host: &str, port: u16) -> String {
    Target {
        ups: None,
        host: host.to_string(),
        port,
    }
    .address()
}

impl Agent {
    fn emit(&self, level: Level, source: &str, text: &str) {
        self.shared.borrow_mut().emit(level, source, text);
    }

    fn settings_name(&self) -> String {
        self.config
            .settings_path
            .file_name()
            .map_or("settings".into(), |n| n.to_string_lossy().to_string())
    }

    /// Reads the settings with the store's fallbacks, logging each warning once.
    fn load_settings(&self) -> Settings {
        let loaded = store::load(&self.config.settings_path);
        let source = self.settings_name();
        for w in &loaded.warnings {
            self.emit(Level::Warn, &source, w);
        }
        if let Some(w) = self
            .config
            .settings_path
            .parent()
            .and_then(store::check_dir)
        {
            self.emit(Level::Warn, &source, &w);
        }
        if loaded.source == store::Source::Missing {
            self.emit(
                Level::Warn,
                &source,
                &format!(
                    "{} does not exist: built-in defaults, no UPS (`power-snitch settings import` creates entries from NUT's files)",
                    self.config.settings_path.display()
                ),
            );
        }
        loaded.settings
    }

    fn resolve_nut_dir(&self) -> PathBuf {
        self.config
            .nut_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(&self.settings.nut_conf_dir))
    }

    fn context(&self) -> Context<'_> {
        Context {
            version: self.version,
            drivers: DriverDb::builtin(),
            host_drivers: self.installed.as_deref(),
        }
    }

    /// Runs [`check::recheck`] and logs which findings appeared and went away.
    fn recheck(&mut self, first: bool) -> (Vec<String>, Vec<String>) {
        let snapshot = host::snapshot(&self.nut_dir);
        let new = check::recheck(
            &snapshot,
            &self.context(),
            &self.settings,
            &self.settings_name(),
            &self.config.root,
        );
        let summary = check::summary(&new);
        let (appeared, gone): (Vec<String>, Vec<String>) = if first {
            for f in &new {
                log::log!(check::level(f.severity), "{}", check::describe(f));
            }
            (new.iter().map(check::describe).collect(), Vec::new())
        } else {
            let (a, g) = check::diff(&self.findings, &new);
            for f in a.iter().take(MAX_LOGGED_FINDINGS) {
                self.emit(
                    check::level(f.severity),
                    "check",
                    &format!("new: {}", check::describe(f)),
                );
            }
            for f in g.iter().take(MAX_LOGGED_FINDINGS) {
                self.emit(
                    Level::Info,
                    "check",
                    &format!("resolved: {}", check::describe(f)),
                );
            }
            for (n, what) in [(a.len(), "new"), (g.len(), "resolved")] {
                if n > MAX_LOGGED_FINDINGS {
                    self.emit(
                        Level::Info,
                        "check",
                        &format!("... and {} more {what} findings", n - MAX_LOGGED_FINDINGS),
                    );
                }
            }
            (
                a.iter().map(|f| check::describe(f)).collect(),
                g.iter().map(|f| check::describe(f)).collect(),
            )
        };
        let (e, w, i) = summary;
        let verb = if first || !appeared.is_empty() || !gone.is_empty() {
            "now"
        } else {
            "unchanged"
        };
        self.emit(
            if e > 0 { Level::Warn } else { Level::Info },
            "check",
            &format!(
                "{} and the settings: {verb} {e} error(s), {w} warning(s), {i} info(s)",
                self.nut_dir.display()
            ),
        );
        self.findings = new;
        let mut sh = self.shared.borrow_mut();
        sh.findings = summary;
        sh.checked_at = unix_now();
        (appeared, gone)
    }

    /// Reads what changed on disk (or everything, on SIGHUP), applies new settings and checks
    /// again; returns the findings that appeared and went away.
    fn refresh(
        &mut self,
        reload_settings: bool,
        watcher: Option<&mut watch::Watcher>,
    ) -> (Vec<String>, Vec<String>) {
        let prints = check::fingerprints(&self.nut_dir, &self.config.settings_path);
        let settings_name = self.settings_name();
        let mut settings_changed = reload_settings;
        for c in check::changed_files(&self.prints, &prints) {
            settings_changed |= c.starts_with(&settings_name);
            self.emit(Level::Info, "files", &c);
        }
        self.prints = prints;
        if settings_changed {
            let new = self.load_settings();
            let changes = store::changes(&self.settings, &new);
            for (field, a, b) in &changes {
                self.emit(Level::Info, &settings_name, &format!("{field}: {a} -> {b}"));
            }
            if changes.is_empty() {
                log::debug!("{settings_name}: read again, nothing changed");
            }
            self.settings = new;
            self.apply_settings();
            let dir = self.resolve_nut_dir();
            if dir != self.nut_dir {
                self.nut_dir = dir;
                self.shared.borrow_mut().nut_dir = self.nut_dir.display().to_string();
                self.prints = check::fingerprints(&self.nut_dir, &self.config.settings_path);
                if let Some(w) = watcher {
                    self.watch(w);
                }
            }
        }
        self.recheck(false)
    }

    /// Serves the setup page on the settings' `web_listen`: started, moved or stopped when it
    /// changes. An address that cannot be bound is logged; the agent runs on without the page.
    #[cfg(feature = "web")]
    fn apply_web(&mut self) {
        let want = self.settings.web_listen.clone();
        if self.web.as_ref().map(|w| w.listen.as_str()) == Some(want.as_str()) {
            return;
        }
        if let Some(old) = self.web.take() {
            old.task.abort();
            self.emit(
                Level::Info,
                "web",
                &format!("stopped serving on {}", old.listen),
            );
        }
        if want.is_empty() {
            log::info!("web: the setup page is off (web_listen is empty)");
            return;
        }
        match crate::web::start(
            &want,
            self.shared.clone(),
            self.config.web.clone(),
            self.version,
        ) {
            Ok(r) => {
                match &r.waiting {
                    None => self.emit(Level::Info, "web", &format!("setup page on http://{want}/")),
                    Some(e) => self.emit(
                        Level::Error,
                        "web",
                        &format!("no setup page yet: {e}; trying again until it is free"),
                    ),
                }
                self.web = Some(r);
            }
            Err(e) => self.emit(Level::Warn, "web", &format!("no setup page: {e}")),
        }
    }

    fn watch(&self, w: &mut watch::Watcher) {
        let settings_dir = self
            .config
            .settings_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for e in w.watch(&[&self.nut_dir, settings_dir]) {
            self.emit(Level::Warn, "files", &e);
        }
    }

    /// Makes the monitor tasks and UPS slots match the settings: new UPSes are polled, removed
    /// ones dropped, a new poll interval applies from the next poll, and a upsd whose connection
    /// settings changed is reconnected.
    fn apply_settings(&mut self) {
        (self.config.set_log_level)(self.settings.log_level);
        #[cfg(feature = "web")]
        self.apply_web();
        let now = Instant::now();
        {
            let mut sh = self.shared.borrow_mut();
            let mut old = std::mem::take(&mut sh.ups);
            let mut slots = Vec::with_capacity(self.settings.ups.len());
            for u in &self.settings.ups {
                let upsd = address(&u.upsd_host, u.upsd_port);
                let interval = Duration::from_secs(u64::from(u.poll_interval));
                match old
                    .iter()
                    .position(|s| s.name == u.nut_device_name && s.upsd == upsd)
                {
                    Some(i) => {
                        let mut s = old.remove(i);
                        if s.poll_interval != u.poll_interval {
                            s.poll_interval = u.poll_interval;
                            s.due = s.last_poll.map_or(now, |t| t + interval);
                        }
                        slots.push(s);
                    }
                    None => {
                        sh.emit(
                            Level::Info,
                            &u.nut_device_name,
                            &format!(
                                "monitoring through upsd at {upsd}, every {} s",
                                u.poll_interval
                            ),
                        );
                        slots.push(UpsSlot::new(&u.nut_device_name, &upsd, u.poll_interval));
                    }
                }
            }
            for s in old {
                sh.emit(Level::Info, &s.name, "no longer monitored");
            }
            sh.ups = slots;
            if self.settings.ups.is_empty() {
                sh.emit(
                    Level::Warn,
                    "agent",
                    "no UPS in the settings: nothing to monitor (`power-snitch settings import`, or `settings set --ups NAME ...`)",
                );
            }
        }
        // One connection per upsd; the first entry for it gives the retry policy, TLS mode and
        // credentials.
        let mut wanted: Vec<Params> = Vec::new();
        for u in &self.settings.ups {
            if wanted
                .iter()
                .any(|p| p.host == u.upsd_host && p.port == u.upsd_port)
            {
                continue;
            }
            wanted.push(Params {
                host: u.upsd_host.clone(),
                port: u.upsd_port,
                retry_count: u.nut_retry_count,
                retry_delay: u.nut_retry_delay,
                tls: u.tls,
                credentials: u.nut_username.clone().zip(u.nut_password.clone()),
            });
        }
        let mut kept = Vec::new();
        for g in std::mem::take(&mut self.groups) {
            if wanted.contains(&g.params) {
                g.wake.notify_one();
                kept.push(g);
            } else {
                g.task.abort();
                self.shared
                    .borrow_mut()
                    .links
                    .retain(|l| l.address != g.address);
            }
        }
        for p in wanted {
            if kept.iter().any(|g| g.params == p) {
                continue;
            }
            kept.push(self.spawn(p));
        }
        self.groups = kept;
    }

    fn spawn(&self, p: Params) -> Group {
        let address = address(&p.host, p.port);
        let policy = RetryPolicy {
            count: p.retry_count,
            delay: Duration::from_secs(u64::from(p.retry_delay)),
            cap: BACKOFF_CAP,
        };
        self.shared.borrow_mut().links.push(LinkSlot {
            address: address.clone(),
            link: Link::new(policy, unix_now()),
        });
        let mut opts = self.config.client.clone();
        // The agent keeps its own retry policy (monitor::Link); the client tries once.
        opts.retry_count = 0;
        opts.retry_delay = Duration::ZERO;
        opts.tls.mode = p.tls;
        let target = Target {
            ups: None,
            host: p.host.clone(),
            port: p.port,
        };
        let wake = Rc::new(Notify::new());
        let task = tokio::task::spawn_local(watch_upsd(
            self.shared.clone(),
            address.clone(),
            Client::new(target, opts),
            p.credentials.clone(),
            wake.clone(),
        ));
        Group {
            address,
            params: p,
            wake,
            task,
        }
    }
}

/// Connects and, with credentials, identifies itself to upsd (USERNAME, PASSWORD).
async fn open(
    client: &mut Client,
    credentials: &Option<(String, Secret)>,
    source: &str,
) -> Result<(), NutError> {
    client.disconnect();
    client.connect().await?;
    if let Some((user, pw)) = credentials {
        for req in [
            Request::Username(user.clone()),
            Request::Password(pw.0.clone()),
        ] {
            if let Err(e) = client.request(&req).await {
                if is_transport(&e) {
                    return Err(e);
                }
                log::warn!(
                    "{source}: upsd refused the credentials ({}); reading without them",
                    e.message
                );
                break;
            }
        }
    }
    Ok(())
}

async fn poll(client: &mut Client, ups: &str) -> Result<Vec<(String, String)>, NutError> {
    client.vars(ups).await
}

/// One upsd connection: connects per the retry policy, polls each of its UPSes when due.
async fn watch_upsd(
    shared: Rc<RefCell<Shared>>,
    address: String,
    mut client: Client,
    credentials: Option<(String, Secret)>,
    wake: Rc<Notify>,
) {
    let source = format!("upsd {address}");
    let mut notes = Vec::with_capacity(16);
    let mut next_attempt = Instant::now();
    let mut up = false;
    let link_do = |f: &mut dyn FnMut(&mut Link) -> Option<Note>| {
        let mut sh = shared.borrow_mut();
        let n = sh
            .links
            .iter_mut()
            .find(|l| l.address == address)
            .and_then(|l| f(&mut l.link));
        if let Some(n) = n {
            sh.emit(n.level, &source, &n.text);
        }
    };
    loop {
        if !up {
            tokio::select! {
                _ = sleep_until(next_attempt) => {}
                _ = wake.notified() => continue,
            }
            match open(&mut client, &credentials, &source).await {
                Ok(()) => up = true,
                Err(e) => {
                    let mut wait = Duration::ZERO;
                    link_do(&mut |l| {
                        let (w, n) = l.failed(unix_now(), &e.message);
                        wait = w;
                        n
                    });
                    log::debug!(
                        "{source}: {}; next attempt in {} ms",
                        e.message,
                        wait.as_millis()
                    );
                    next_attempt = Instant::now() + wait;
                    continue;
                }
            }
        }
        let now = Instant::now();
        let due: Vec<String> = shared
            .borrow()
            .ups
            .iter()
            .filter(|u| u.upsd == address && u.due <= now)
            .map(|u| u.name.clone())
            .collect();
        for name in due {
            let mut r = poll(&mut client, &name).await;
            if matches!(&r, Err(e) if is_transport(e)) {
                // upsd drops idle clients and restarts: one immediate reconnect is not a loss.
                log::debug!(
                    "{source}: {}; reconnecting",
                    r.as_ref().err().map_or("", |e| &e.message)
                );
                r = match open(&mut client, &credentials, &source).await {
                    Ok(()) => poll(&mut client, &name).await,
                    Err(e) => Err(e),
                };
            }
            match &r {
                Err(e) if is_transport(e) => {
                    up = false;
                    let mut wait = Duration::ZERO;
                    link_do(&mut |l| {
                        let (w, n) = l.failed(unix_now(), &e.message);
                        wait = w;
                        n
                    });
                    next_attempt = Instant::now() + wait;
                    break;
                }
                _ => link_do(&mut |l| l.connected(unix_now())),
            }
            let reading = match &r {
                Ok(list) => Reading::Vars(Vars::from_list(list)),
                Err(e) => Reading::Unavailable {
                    code: &e.code,
                    message: &e.message,
                },
            };
            let mut sh = shared.borrow_mut();
            let Some(slot) = sh
                .ups
                .iter_mut()
                .find(|u| u.name == name && u.upsd == address)
            else {
                continue;
            };
            slot.state.observe(reading, unix_now(), &mut notes);
            slot.readings = match &r {
                Ok(list) => Readings::from_list(list),
                Err(_) => Readings::default(),
            };
            let done = Instant::now();
            let interval = Duration::from_secs(u64::from(slot.poll_interval));
            slot.polls += 1;
            slot.last_poll = Some(done);
            slot.last_poll_ms = Some(unix_ms());
            slot.due += interval;
            if slot.due <= done {
                slot.due = done + interval;
            }
            log::debug!(
                "{name}: polled ({} variables)",
                r.as_ref().map_or(0, |l| l.len())
            );
            sh.emit_notes(&name, &mut notes);
        }
        if !up {
            continue;
        }
        let next = shared
            .borrow()
            .ups
            .iter()
            .filter(|u| u.upsd == address)
            .map(|u| u.due)
            .min()
            .unwrap_or_else(|| Instant::now() + BACKOFF_CAP);
        tokio::select! {
            _ = sleep_until(next) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Binds the control socket with mode 0660; a stale socket file (nobody answering) is replaced.
fn bind_control(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "another agent answers on {}; stop it, or give --control-socket PATH",
            path.display()
        ));
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket; remove it or give --control-socket PATH",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    // No moment with wider permissions than 0660.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (give --control-socket PATH)",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    Ok(listener)
}

async fn main_loop(config: Config, notifier: notify::Notifier) -> u8 {
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = signals else {
        log::error!("cannot handle signals");
        return EXIT_CANNOT_RUN;
    };
    let shared = Rc::new(RefCell::new(Shared {
        started: unix_now(),
        ring: Ring::default(),
        ups: Vec::new(),
        links: Vec::new(),
        findings: (0, 0, 0),
        checked_at: 0,
        settings_path: config.settings_path.display().to_string(),
        nut_dir: String::new(),
    }));
    let mut agent = Agent {
        config,
        shared: shared.clone(),
        settings: Settings::default(),
        nut_dir: PathBuf::new(),
        version: NutVersion::NEWEST,
        installed: None,
        findings: Vec::new(),
        prints: Vec::new(),
        groups: Vec::new(),
        #[cfg(feature = "web")]
        web: None,
    };
    agent.settings = agent.load_settings();
    (agent.config.set_log_level)(agent.settings.log_level);
    agent.nut_dir = agent.resolve_nut_dir();
    shared.borrow_mut().nut_dir = agent.nut_dir.display().to_string();
    let (version, source) = match agent.config.nut_version {
        Some(v) => (v, "--nut-version".to_string()),
        None => match host::detect_version() {
            Some((v, from)) => {
                agent.installed = host::installed_drivers();
                (v, from.display().to_string())
            }
            None => (NutVersion::NEWEST, "NUT not installed; newest rules".into()),
        },
    };
    agent.version = version;
    log::info!(
        "power-snitch {} starting: settings {}, NUT's files in {} (NUT {version}, {source})",
        env!("CARGO_PKG_VERSION"),
        agent.config.settings_path.display(),
        agent.nut_dir.display()
    );
    if !agent.nut_dir.is_dir() {
        agent.emit(
            Level::Warn,
            "files",
            &format!(
                "{} is not a directory: NUT's files cannot be checked (--nut-dir DIR, or settings set nut_conf_dir=DIR)",
                agent.nut_dir.display()
            ),
        );
    }
    agent.recheck(true);
    agent.prints = check::fingerprints(&agent.nut_dir, &agent.config.settings_path);

    let listener = match bind_control(&agent.config.control_socket) {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let (asked_tx, mut asked_rx) = mpsc::channel::<control::Asked>(4);
    let server = tokio::task::spawn_local(control::serve(listener, shared.clone(), asked_tx));

    let mut watcher = match watch::Watcher::new() {
        Ok(w) => Some(w),
        Err(e) => {
            agent.emit(
                Level::Warn,
                "files",
                &format!("cannot watch files (inotify: {e}); changes are seen only on SIGHUP"),
            );
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        agent.watch(w);
    }
    agent.apply_settings();

    let mut last_status = status_line(&shared.borrow());
    notifier.send(&format!(
        "READY=1\n{}",
        notify::status_message(&last_status)
    ));
    log::info!(
        "ready; control socket {}",
        agent.config.control_socket.display()
    );

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watchdog_every = notifier.watchdog.unwrap_or(Duration::from_secs(3600));
    let mut watchdog = tokio::time::interval(watchdog_every);
    let mut pending = watch::Pending::default();
    let mut settle: Option<Instant> = None;
    let mut events = Vec::new();
    loop {
        tokio::select! {
            _ = term.recv() => { log::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { log::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                agent.emit(Level::Info, "agent", "SIGHUP: reading the settings and NUT's files again");
                agent.refresh(true, watcher.as_mut());
            }
            r = async { watcher.as_mut().expect("guarded").next(&mut events).await }, if watcher.is_some() => {
                match r {
                    Ok(()) => {
                        watch::classify(&events, &agent.nut_dir, &agent.config.settings_path, &mut pending);
                        if pending.nut || pending.settings {
                            settle.get_or_insert(Instant::now() + SETTLE);
                        }
                    }
                    Err(e) => {
                        agent.emit(Level::Warn, "files", &format!("stopped watching files: {e}; changes are seen only on SIGHUP"));
                        watcher = None;
                    }
                }
            }
            _ = async { sleep_until(settle.expect("guarded")).await }, if settle.is_some() => {
                settle = None;
                let p = std::mem::take(&mut pending);
                agent.refresh(p.settings, watcher.as_mut());
            }
            Some((asked, reply)) = asked_rx.recv() => {
                agent.emit(Level::Info, "agent", "recheck asked on the control socket");
                let (appeared, gone) = agent.refresh(false, watcher.as_mut());
                let r = recheck_reply(&shared.borrow(), &appeared, &gone, asked.text);
                let _ = reply.send(r);
            }
            _ = tick.tick() => {
                let now = status_line(&shared.borrow());
                if now != last_status {
                    notifier.send(&notify::status_message(&now));
                    last_status = now;
                }
            }
            _ = watchdog.tick(), if notifier.watchdog.is_some() => notifier.send("WATCHDOG=1"),
        }
    }
    notifier.send("STOPPING=1");
    server.abort();
    #[cfg(feature = "web")]
    if let Some(w) = agent.web.take() {
        w.task.abort();
    }
    for g in &agent.groups {
        g.task.abort();
    }
    let _ = std::fs::remove_file(&agent.config.control_socket);
    0
}

/// The reply to `recheck`: the summary, and the findings that appeared and went away.
fn recheck_reply(s: &Shared, appeared: &[String], gone: &[String], text: bool) -> String {
    use crate::json::Object;
    let (e, w, i) = s.findings;
    if text {
        let mut t = format!("{e} error(s), {w} warning(s), {i} info(s)\n");
        for a in appeared.iter().take(MAX_LOGGED_FINDINGS) {
            t.push_str(&format!("new: {a}\n"));
        }
        for g in gone.iter().take(MAX_LOGGED_FINDINGS) {
            t.push_str(&format!("resolved: {g}\n"));
        }
        return control::text_reply(&t);
    }
    let list = |items: &[String]| {
        let mut out = String::from("[");
        for (i, d) in items.iter().take(MAX_LOGGED_FINDINGS).enumerate() {
            if i > 0 {
                out.push(',');
            }
            crate::json::string(&mut out, d);
        }
        out.push(']');
        out
    };
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw("ok", "true")
        .num("errors", e as u64)
        .num("warnings", w as u64)
        .num("infos", i as u64)
        .raw("appeared", &list(appeared))
        .raw("gone", &list(gone));
    o.end();
    out
}
