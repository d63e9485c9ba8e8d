//! The agent, `power-snitch run`: monitors each configured UPS through its upsd, logs every
//! change that matters once, watches NUT's files and the settings, answers on a control socket
//! and tells systemd how it is doing. One thread (a current-thread tokio runtime), one task per
//! upsd connection, bounded memory.
//!
//! Both loops here (the main loop, and one per upsd connection) are "wait for the next event,
//! then handle it": what to do is asked of [`decide`], what a reading means of [`monitor`].
//!
//! **Architecture invariant:** the meaning of a reading or a failed connection is decided in
//! [`monitor`] (pure, time passed in); this module only feeds it and logs what it says.
//!
//! **Architecture invariant:** every decision of the loops (reconnect now or back off, which
//! UPS to poll and when, which connections a settings change restarts, when a recheck runs) is
//! a pure function in [`decide`] with `now` passed in; the loops only wait and dispatch.

pub mod auto;
pub mod check;
pub mod control;
pub mod decide;
pub mod files;
pub mod heal;
pub mod notify;
pub mod selftest;
pub mod watch;

use crate::state::{monitor, ring};
use crate::state::{status_line, unix_now, LinkSlot, Shared};

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use log::Level;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::notify as notifications;
use crate::nut::diag::Finding;
use crate::nut::host;
use crate::nut::version::NutVersion;
use crate::settings::model::{LogLevel, Secret, Settings};
use crate::settings::store;
use crate::state::{unix_ms, Companion};
use crate::upsd::client::{Client, Options};
use crate::upsd::error::NutError;
use crate::upsd::proto::Request;
use crate::upsd::target::Target;
use decide::{AfterPoll, Params, Step};
use monitor::{Link, Note, Reading, Readings, RetryPolicy, Vars};
use ring::Ring;

use decide::BACKOFF_CAP;

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
    /// The history is saved at most every this many seconds (0: only on stop).
    pub history_every: u64,
    /// Where the hardware is read (`/sys`, or a captured tree with `--sysfs-root`).
    pub root: crate::probe::Root,
    /// Timeouts and TLS trust for upsd; retries and the TLS mode come from each entry.
    pub client: Options,
    /// Applies the settings' log level (the command line's -v/-q and RUST_LOG on top).
    pub set_log_level: Box<dyn Fn(LogLevel)>,
    /// What runs beside the agent and follows its settings (the setup page, made by `run`).
    pub companions: Vec<Box<dyn Companion>>,
    /// Serial ports auto-adopt may ask too (`--serial-port`; USB-serial adapters always).
    pub serial_ports: Vec<String>,
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
    /// What the last look found of NUT's directory, its files and the settings file.
    prints: Vec<files::FileState>,
    groups: Vec<Group>,
    /// Where events worth telling go (never waits).
    hub: notifications::Hub,
    /// Restarting stale drivers and adopting the one UPS found.
    auto: auto::Auto,
    /// The scheduled battery self-tests.
    selftest: selftest::Scheduler,
}

impl Agent {
    fn emit(&self, level: Level, source: &str, text: &str) {
        self.shared.borrow_mut().emit(level, source, text);
    }

    /// Saves the history next to the settings (a failure is a warning; the next try is one
    /// interval later).
    fn save_history(&self) {
        let path = crate::state::history::path(&self.config.settings_path);
        let mut sh = self.shared.borrow_mut();
        sh.history.saved_at = unix_now();
        match crate::state::history::save(&path, &sh.history) {
            Ok(n) => {
                sh.history.dirty = false;
                log::debug!("history: saved {n} bytes to {}", path.display());
            }
            Err(e) => sh.emit(Level::Warn, "history", &e),
        }
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
        let path = &self.config.settings_path;
        crate::inspect::plan::nut_dir(
            self.config.nut_dir.as_deref(),
            crate::inspect::plan::names_dir(&store::load(path))
                .then_some((path.as_path(), &self.settings)),
            std::env::var_os("NUT_CONFPATH").as_deref(),
        )
        .0
    }

    /// Runs [`check::recheck`] and logs which findings appeared and went away; `asked` says
    /// it was asked on the control socket (then an unchanged result is only a debug line).
    fn recheck(&mut self, first: bool, asked: bool) -> (Vec<String>, Vec<String>) {
        let installed = crate::inspect::Installed {
            version: self.version,
            source: String::new(),
            driver_dir: None,
            drivers: self.installed.clone(),
        };
        let (new, sections) = check::recheck_sections(&check::Recheck {
            nut_dir: &self.nut_dir,
            installed: &installed,
            settings: &self.settings,
            settings_path: &self.config.settings_path,
            root: &self.config.root,
        });
        self.auto.checked(sections, &new, unix_now());
        let summary = check::summary(&new);
        let (appeared, gone): (Vec<String>, Vec<String>) = if first {
            for f in &new {
                log::log!(check::level(f.severity), "{}", check::describe(f));
            }
            (new.iter().map(check::describe).collect(), Vec::new())
        } else {
            let (a, g) = check::diff(&self.findings, &new);
            let mut events = Vec::new();
            notifications::event::finding_events(&a, unix_now(), &mut events);
            self.hub.events(events);
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
        let changed = !appeared.is_empty() || !gone.is_empty();
        let verb = if first || changed { "now" } else { "unchanged" };
        let text = format!(
            "{} and the settings: {verb} {e} error(s), {w} warning(s), {i} info(s)",
            self.nut_dir.display()
        );
        match decide::summary_level(first, changed, asked, e) {
            Some(level) => self.emit(level, "check", &text),
            None => log::debug!("check: {text}"),
        }
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
        asked: bool,
        watcher: Option<&mut watch::Watcher>,
    ) -> (Vec<String>, Vec<String>) {
        let prints = files::look(&self.nut_dir, &self.config.settings_path);
        let settings_name = self.settings_name();
        let mut settings_changed = reload_settings;
        for c in files::changes(&self.prints, &prints) {
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
                self.prints = files::look(&self.nut_dir, &self.config.settings_path);
                if let Some(w) = watcher {
                    self.watch(w);
                }
            }
        }
        self.recheck(false, asked)
    }

    /// What self-healing and auto-adopt need of the agent.
    fn auto_do(&mut self, f: impl FnOnce(&mut auto::Auto, &auto::Ctx)) {
        let installed = crate::inspect::Installed {
            version: self.version,
            source: String::new(),
            driver_dir: None,
            drivers: self.installed.clone(),
        };
        let cx = auto::Ctx {
            shared: &self.shared,
            settings: &self.settings,
            settings_path: &self.config.settings_path,
            nut_dir: &self.nut_dir,
            installed: &installed,
            root: &self.config.root,
            serial_ports: &self.config.serial_ports,
            hub: &self.hub,
        };
        f(&mut self.auto, &cx);
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
        self.hub.configure(&self.settings.notify);
        for c in &mut self.config.companions {
            c.apply(&self.settings, self.version, &self.shared);
        }
        let now = Instant::now();
        let mut notes = Vec::new();
        {
            let mut sh = self.shared.borrow_mut();
            let old = std::mem::take(&mut sh.ups);
            sh.ups = decide::slots(old, &self.settings, now, &mut notes);
            let names: Vec<&str> = self
                .settings
                .ups
                .iter()
                .map(|u| u.nut_device_name.as_str())
                .collect();
            sh.history.retain(&names);
            for (source, text) in &notes {
                sh.emit(Level::Info, source, text);
            }
            if self.settings.ups.is_empty() {
                sh.emit(
                    Level::Warn,
                    "agent",
                    "no UPS in the settings: nothing to monitor (`power-snitch settings import`, or `settings set --ups NAME ...`)",
                );
            }
        }
        let running: Vec<Params> = self.groups.iter().map(|g| g.params.clone()).collect();
        let plan = decide::restarts(&running, &decide::connections(&self.settings));
        let mut groups: Vec<Option<Group>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        for &i in &plan.stop {
            if let Some(g) = groups[i].take() {
                g.task.abort();
                self.shared
                    .borrow_mut()
                    .links
                    .retain(|l| l.address != g.address);
            }
        }
        for &i in &plan.keep {
            if let Some(g) = groups[i].take() {
                g.wake.notify_one();
                self.groups.push(g);
            }
        }
        for p in plan.start {
            let g = self.spawn(p);
            self.groups.push(g);
        }
    }

    fn spawn(&self, p: Params) -> Group {
        let address = decide::address(&p.host, p.port);
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
            self.hub.clone(),
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
                if e.reconnect_may_help() {
                    return Err(e);
                }
                log::warn!(
                    "{source}: upsd refused the credentials ({}); reading without them",
                    e.message()
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

/// One upsd connection: asks [`decide::upsd_step`] what to do next (connect, poll a UPS,
/// wait), does it, and feeds the outcome to the link's state machine and the UPS's monitor.
async fn watch_upsd(
    shared: Rc<RefCell<Shared>>,
    address: String,
    mut client: Client,
    credentials: Option<(String, Secret)>,
    wake: Rc<Notify>,
    hub: notifications::Hub,
) {
    let source = format!("upsd {address}");
    let mut notes = Vec::with_capacity(16);
    let mut events = Vec::new();
    // When each UPS of this upsd went on battery (for the outage's length); one per UPS.
    let mut on_battery: Vec<(String, Option<u64>)> = Vec::new();
    let mut next_attempt = Instant::now();
    let mut up = false;
    // Feeds the link's state machine; logs what it says; returns its wait (for a failure).
    let link_do = |f: &mut dyn FnMut(&mut Link) -> (Duration, Option<Note>)| {
        let mut sh = shared.borrow_mut();
        let (wait, n, event) = sh.links.iter_mut().find(|l| l.address == address).map_or(
            (BACKOFF_CAP, None, None),
            |l| {
                let (up, ever, since) = (l.link.is_up(), l.link.was_up, l.link.since);
                let (wait, n) = f(&mut l.link);
                let now = unix_now();
                let event = notifications::event::link_change(
                    &address,
                    up,
                    l.link.is_up(),
                    ever,
                    &l.link.last_error,
                    now.saturating_sub(since),
                    now,
                );
                (wait, n, event)
            },
        );
        hub.events(event);
        if let Some(n) = n {
            sh.emit(n.level, &source, &n.text);
        }
        wait
    };
    loop {
        let now = Instant::now();
        let step = decide::upsd_step(up, next_attempt, &shared.borrow().ups, &address, now);
        let name = match step {
            Step::Wait(until) => {
                tokio::select! {
                    _ = sleep_until(until) => {}
                    _ = wake.notified() => {}
                }
                continue;
            }
            Step::Connect => {
                match open(&mut client, &credentials, &source).await {
                    Ok(()) => up = true,
                    Err(e) => {
                        let wait = link_do(&mut |l| l.failed(unix_now(), &e.message()));
                        log::debug!(
                            "{source}: {}; next attempt in {} ms",
                            e.message(),
                            wait.as_millis()
                        );
                        next_attempt = Instant::now() + wait;
                    }
                }
                continue;
            }
            Step::Poll(name) => name,
        };
        let mut r = poll(&mut client, &name).await;
        let mut reconnects = 0;
        loop {
            let transport = matches!(&r, Err(e) if e.reconnect_may_help());
            match decide::after_poll(transport, reconnects) {
                AfterPoll::Answered => {
                    link_do(&mut |l| (Duration::ZERO, l.connected(unix_now())));
                    break;
                }
                AfterPoll::ReconnectNow => {
                    log::debug!(
                        "{source}: {}; reconnecting",
                        r.as_ref().err().map_or(String::new(), NutError::message)
                    );
                    reconnects += 1;
                    r = match open(&mut client, &credentials, &source).await {
                        Ok(()) => poll(&mut client, &name).await,
                        Err(e) => Err(e),
                    };
                }
                AfterPoll::Lost => {
                    let message = r.as_ref().err().map_or(String::new(), NutError::message);
                    let wait = link_do(&mut |l| l.failed(unix_now(), &message));
                    up = false;
                    next_attempt = Instant::now() + wait;
                    break;
                }
            }
        }
        if !up {
            continue;
        }
        let message = r.as_ref().err().map(NutError::message).unwrap_or_default();
        let reading = match &r {
            Ok(list) => Reading::Vars(Vars::from_list(list)),
            Err(e) => Reading::Unavailable {
                code: e.code(),
                message: &message,
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
        let before = slot.state.clone();
        let now = unix_now();
        slot.state.observe(reading, now, &mut notes);
        let ob = match on_battery.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                if on_battery.len() >= 64 {
                    on_battery.remove(0);
                }
                on_battery.push((name.clone(), None));
                on_battery.len() - 1
            }
        };
        notifications::event::ups_changes(
            &format!("{name}@{address}"),
            &before,
            &slot.state,
            &mut on_battery[ob].1,
            now,
            &mut events,
        );
        hub.events(events.drain(..));
        slot.readings = match &r {
            Ok(list) => Readings::from_list(list),
            Err(_) => Readings::default(),
        };
        let sample = crate::state::history::Sample::of(&slot.state, &slot.readings);
        hub.state(notifications::mqtt::UpsState {
            source: format!("{name}@{address}"),
            name: name.clone(),
            status: slot.state.status_text(),
            charge: slot.readings.get("battery.charge"),
            runtime: slot.readings.get("battery.runtime"),
            load: slot.readings.get("ups.load"),
            input_voltage: slot.readings.get("input.voltage"),
            output_voltage: slot.readings.get("output.voltage"),
            on_battery: slot.state.flags.has("OB"),
            low_battery: slot.state.flags.has("LB"),
            replace_battery: slot.state.flags.has("RB"),
            mfr: slot.readings.mfr.clone(),
            model: slot.readings.model.clone(),
        });
        let done = Instant::now();
        slot.polls += 1;
        slot.last_poll = Some(done);
        slot.last_poll_ms = Some(unix_ms());
        slot.due = decide::next_due(
            slot.due,
            Duration::from_secs(u64::from(slot.poll_interval)),
            done,
        );
        log::debug!(
            "{name}: polled ({} variables)",
            r.as_ref().map_or(0, |l| l.len())
        );
        sh.history.record(&name, unix_now(), &sample);
        sh.emit_notes(&name, &mut notes);
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
    let (Ok(term), Ok(int), Ok(hup)) = signals else {
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
        history: Default::default(),
        heal: Vec::new(),
        battery: Default::default(),
    }));
    {
        let path = crate::state::history::path(&config.settings_path);
        let (history, problem) = crate::state::history::load(&path);
        let mut sh = shared.borrow_mut();
        sh.history = history;
        sh.history.saved_at = unix_now();
        if let Some(p) = problem {
            sh.emit(Level::Warn, "history", &p);
        }
    }
    let config_settings_path = config.settings_path.clone();
    let (auto_tx, auto_rx) = mpsc::channel::<auto::Done>(16);
    let client_options = config.client.clone();
    let hub = notifications::start(&notifications::outbox_path(&config_settings_path));
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
        hub: hub.clone(),
        auto: auto::Auto::new(auto_tx),
        selftest: selftest::Scheduler::new(&config_settings_path, client_options, hub),
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
    agent.recheck(true, false);
    agent.prints = files::look(&agent.nut_dir, &agent.config.settings_path);

    let listener = match bind_control(&agent.config.control_socket) {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let (asked_tx, asked_rx) = mpsc::channel::<control::Asked>(4);
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
    agent.auto_do(|a, cx| a.maybe_adopt(cx));

    let last_status = status_line(&shared.borrow());
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
    let mut sources = Sources {
        term,
        int,
        hup,
        asked: asked_rx,
        auto: auto_rx,
        tick,
        watchdog: tokio::time::interval(watchdog_every),
        watchdog_on: notifier.watchdog.is_some(),
    };
    let mut state = LoopState {
        watcher,
        events: Vec::new(),
        pending: watch::Pending::default(),
        settle: None,
        waiting: Vec::new(),
        recheck_at: None,
        last_recheck: None,
        last_status,
    };
    loop {
        let event = next_event(&mut sources, &mut state).await;
        if handle_event(&mut agent, &mut state, &notifier, event, Instant::now()) == Flow::Stop {
            break;
        }
    }
    notifier.send("STOPPING=1");
    if agent.shared.borrow().history.dirty {
        agent.save_history();
    }
    server.abort();
    for c in &mut agent.config.companions {
        c.stop();
    }
    for g in &agent.groups {
        g.task.abort();
    }
    let _ = std::fs::remove_file(&agent.config.control_socket);
    0
}

/// What the main loop waits on.
struct Sources {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    asked: mpsc::Receiver<control::Asked>,
    auto: mpsc::Receiver<auto::Done>,
    tick: tokio::time::Interval,
    watchdog: tokio::time::Interval,
    watchdog_on: bool,
}

/// What the main loop keeps between events.
struct LoopState {
    watcher: Option<watch::Watcher>,
    events: Vec<(PathBuf, std::ffi::OsString)>,
    pending: watch::Pending,
    /// When pending file events are read.
    settle: Option<Instant>,
    /// Recheck requests waiting for the next run (one per client: bounded by the control
    /// socket's places), and whether each wants text.
    waiting: Vec<(bool, tokio::sync::oneshot::Sender<String>)>,
    recheck_at: Option<Instant>,
    last_recheck: Option<Instant>,
    last_status: String,
}

/// One thing that happened.
enum Event {
    Stop(&'static str),
    Hangup,
    Files(std::io::Result<()>),
    Settled,
    Asked(control::Asked),
    Auto(auto::Done),
    RecheckDue,
    Tick,
    Watchdog,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// Waits for the next event; decides nothing.
async fn next_event(src: &mut Sources, st: &mut LoopState) -> Event {
    let watching = st.watcher.is_some();
    tokio::select! {
        _ = src.term.recv() => Event::Stop("SIGTERM"),
        _ = src.int.recv() => Event::Stop("SIGINT"),
        _ = src.hup.recv() => Event::Hangup,
        r = async {
            match st.watcher.as_mut() {
                Some(w) => w.next(&mut st.events).await,
                None => std::future::pending().await,
            }
        }, if watching => Event::Files(r),
        _ = sleep_until(st.settle.unwrap_or_else(Instant::now)), if st.settle.is_some() => Event::Settled,
        Some(a) = src.asked.recv() => Event::Asked(a),
        Some(d) = src.auto.recv() => Event::Auto(d),
        _ = sleep_until(st.recheck_at.unwrap_or_else(Instant::now)), if st.recheck_at.is_some() => Event::RecheckDue,
        _ = src.tick.tick() => Event::Tick,
        _ = src.watchdog.tick(), if src.watchdog_on => Event::Watchdog,
    }
}

/// Does what an event calls for, as [`decide`] says.
fn handle_event(
    agent: &mut Agent,
    st: &mut LoopState,
    notifier: &notify::Notifier,
    event: Event,
    now: Instant,
) -> Flow {
    match event {
        Event::Stop(why) => {
            log::info!("{why}: stopping");
            return Flow::Stop;
        }
        Event::Hangup => {
            agent.emit(
                Level::Info,
                "agent",
                "SIGHUP: reading the settings and NUT's files again",
            );
            agent.refresh(true, false, st.watcher.as_mut());
            agent.auto_do(|a, cx| a.maybe_adopt(cx));
        }
        Event::Files(Ok(())) => {
            watch::classify(
                &st.events,
                &agent.nut_dir,
                &agent.config.settings_path,
                &mut st.pending,
            );
            st.settle = decide::settle_at(st.settle, &st.pending, now);
        }
        Event::Files(Err(e)) => {
            agent.emit(
                Level::Warn,
                "files",
                &format!("stopped watching files: {e}; changes are seen only on SIGHUP"),
            );
            st.watcher = None;
        }
        Event::Settled => {
            st.settle = None;
            let p = std::mem::take(&mut st.pending);
            agent.refresh(p.settings, false, st.watcher.as_mut());
        }
        Event::Auto(done) => agent.auto_do(|a, cx| a.done(cx, done, unix_now())),
        Event::Asked((asked, reply)) => {
            st.waiting.push((asked.text, reply));
            st.recheck_at = Some(decide::recheck_at(st.last_recheck, st.recheck_at, now));
        }
        Event::RecheckDue => {
            st.recheck_at = None;
            st.last_recheck = Some(now);
            let n = st.waiting.len();
            log::debug!("recheck asked on the control socket ({n} request(s) share this run)");
            let (appeared, gone) = agent.refresh(false, true, st.watcher.as_mut());
            agent.auto_do(|a, cx| a.maybe_adopt(cx));
            let sh = agent.shared.borrow();
            for (text, reply) in st.waiting.drain(..) {
                let _ = reply.send(recheck_reply(&sh, &appeared, &gone, text));
            }
        }
        Event::Tick => {
            agent.auto_do(|a, cx| a.tick(cx, unix_now()));
            let due = agent
                .shared
                .borrow()
                .history
                .save_due(unix_now(), agent.config.history_every);
            if due {
                agent.save_history();
            }
            agent
                .selftest
                .tick(unix_now(), &agent.settings, &agent.shared);
            let now = status_line(&agent.shared.borrow());
            if now != st.last_status {
                notifier.send(&notify::status_message(&now));
                st.last_status = now;
            }
        }
        Event::Watchdog => notifier.send("WATCHDOG=1"),
    }
    Flow::Go
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
