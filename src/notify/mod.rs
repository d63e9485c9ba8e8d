//! Notifications that are never lost: the agent hands each event worth telling to a [`Hub`]
//! (never waiting); the service behind it holds back flapping states ([`event::Guard`]), puts
//! each event in the durable [`outbox`] (one write per event), and one task per channel
//! delivers them in order, retrying with back-off while its receiver is down; a delivery
//! moves the channel's cursor in the outbox (one write per delivery), so an agent killed
//! mid-delivery sends what is left after it starts again, with the same ids.
//!
//! [`event`] is what changed (pure), [`outbox`] the file (its format pure), [`channel`] what
//! each channel sends, [`http`] and [`net`] the small client side of HTTP and TLS.
//!
//! **Architecture invariant:** monitoring never waits on a channel: [`Hub::event`] only queues
//! (bounded; when full, the event is logged and dropped), and every exchange with a receiver
//! is bounded by timeouts.

pub mod channel;
pub mod event;
pub mod http;
pub mod mqtt;
pub mod net;
pub mod outbox;
pub mod smtp;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::settings::model::{Channel, NotifySettings};
use event::{Event, Guard, Kind, Severity};
use net::SendError;
use outbox::{Outbox, Queued};

/// Events queued between the agent and the service; beyond, dropped with a log line.
pub const QUEUE: usize = 256;
/// Back-off between delivery attempts of one channel: doubling from the first up to the cap.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(60);

/// The outbox's file, next to the settings file.
pub fn outbox_path(settings_path: &Path) -> std::path::PathBuf {
    let mut p = settings_path.as_os_str().to_owned();
    p.push(".outbox");
    p.into()
}

enum Cmd {
    Event(Event),
    Configure(NotifySettings),
    State(mqtt::UpsState),
}

/// The UPSes' states for MQTT (at most [`MAX_STATES`]), and a wake-up when one changes.
struct States {
    list: RefCell<Vec<mqtt::UpsState>>,
    changed: Notify,
}

pub const MAX_STATES: usize = 32;

/// Where the agent hands events and settings; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Cmd>,
}

impl Hub {
    /// Queues an event; never waits.
    pub fn event(&self, e: Event) {
        if let Err(mpsc::error::TrySendError::Full(Cmd::Event(e))) = self.tx.try_send(Cmd::Event(e))
        {
            log::warn!("notifications: the queue is full; not told: {}", e.text);
        }
    }

    pub fn events(&self, es: impl IntoIterator<Item = Event>) {
        for e in es {
            self.event(e);
        }
    }

    /// The UPS's state now (for MQTT's sensors); only a change is published.
    pub fn state(&self, u: mqtt::UpsState) {
        let _ = self.tx.try_send(Cmd::State(u));
    }

    /// Applies the notification settings (channels started, changed or stopped).
    pub fn configure(&self, n: &NotifySettings) {
        let _ = self.tx.try_send(Cmd::Configure(n.clone()));
    }
}

struct Running {
    channel: Channel,
    task: JoinHandle<()>,
}

/// Starts the notification service on the current `LocalSet`; returns its hub.
pub fn start(outbox_path: &Path) -> Hub {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (outbox, notes) = Outbox::open(outbox_path, crate::state::unix_ms());
    for n in notes {
        log::warn!("notifications: {n}");
    }
    if !outbox.events().is_empty() {
        log::info!(
            "notifications: {} event(s) in the outbox from before",
            outbox.events().len()
        );
    }
    tokio::task::spawn_local(serve(rx, Rc::new(RefCell::new(outbox))));
    Hub { tx }
}

async fn serve(mut rx: mpsc::Receiver<Cmd>, outbox: Rc<RefCell<Outbox>>) {
    let wake = Rc::new(Notify::new());
    let states = Rc::new(States {
        list: RefCell::new(Vec::new()),
        changed: Notify::new(),
    });
    let mut guard = Guard::new(0);
    let mut running: Vec<Running> = Vec::new();
    let host = channel::hostname();
    loop {
        let due = guard.next_due();
        let cmd = tokio::select! {
            c = rx.recv() => match c {
                Some(c) => Some(c),
                None => break,
            },
            _ = wait_until_unix(due.unwrap_or(0)), if due.is_some() => None,
        };
        let now = crate::state::unix_now();
        let mut out = Vec::new();
        match cmd {
            Some(Cmd::Event(e)) => out.extend(guard.offer(e, now)),
            Some(Cmd::Configure(n)) => {
                guard.window = u64::from(n.flap_window);
                reconfigure(&mut running, &n.channels, &outbox, &wake, &states, &host);
            }
            Some(Cmd::State(u)) => {
                let mut list = states.list.borrow_mut();
                let full = list.len() >= MAX_STATES;
                match list.iter_mut().find(|x| x.source == u.source) {
                    Some(x) if *x == u => continue,
                    Some(x) => *x = u,
                    None if full => continue,
                    None => list.push(u),
                }
                drop(list);
                states.changed.notify_waiters();
                continue;
            }
            None => {}
        }
        out.extend(guard.due(now));
        for e in out {
            log::debug!("notifications: {} {}", e.kind.as_str(), e.text);
            if let Err(err) = outbox.borrow_mut().push(e) {
                log::warn!("notifications: {err}; the event is kept in memory");
            }
        }
        // Every channel task looks for work (each has its own permit).
        wake.notify_waiters();
    }
    for r in running {
        r.task.abort();
    }
}

async fn wait_until_unix(t: u64) {
    let now = crate::state::unix_now();
    tokio::time::sleep(Duration::from_secs(t.saturating_sub(now))).await;
}

fn reconfigure(
    running: &mut Vec<Running>,
    wanted: &[Channel],
    outbox: &Rc<RefCell<Outbox>>,
    wake: &Rc<Notify>,
    states: &Rc<States>,
    host: &str,
) {
    running.retain(|r| {
        let keep = wanted.contains(&r.channel);
        if !keep {
            r.task.abort();
        }
        keep
    });
    let names: Vec<String> = wanted.iter().map(|c| c.name.clone()).collect();
    outbox.borrow_mut().set_channels(&names);
    for c in wanted {
        if running.iter().any(|r| r.channel == *c) {
            continue;
        }
        log::info!("notifications: channel {} ({})", c.name, c.kind.as_str());
        let task = match c.kind {
            #[cfg(feature = "notify-mqtt")]
            crate::settings::model::ChannelKind::Mqtt => tokio::task::spawn_local(deliver_mqtt(
                c.clone(),
                outbox.clone(),
                wake.clone(),
                states.clone(),
                host.to_string(),
            )),
            _ => tokio::task::spawn_local(deliver(
                c.clone(),
                outbox.clone(),
                wake.clone(),
                host.to_string(),
            )),
        };
        let _ = states;
        running.push(Running {
            channel: c.clone(),
            task,
        });
    }
}

/// One channel: sends the next event it wants, in order; on a failure waits (doubling from
/// [`RETRY_FIRST`] to [`RETRY_CAP`]) and sends the same event again.
async fn deliver(c: Channel, outbox: Rc<RefCell<Outbox>>, wake: Rc<Notify>, host: String) {
    let mut pause = RETRY_FIRST;
    let mut failing = false;
    let wants = |e: &Event| event::passes(c.min_severity, e);
    loop {
        let next: Option<Queued> = outbox.borrow().next_for(&c.name, wants).cloned();
        let Some(q) = next else {
            // Events it does not want are passed (so the outbox need not keep them for it).
            outbox.borrow_mut().pass(&c.name);
            // Register before looking again, so a wake-up between is not lost.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if outbox.borrow().next_for(&c.name, wants).is_none() {
                notified.await;
            }
            continue;
        };
        match channel::send(&c, &q, &host).await {
            Ok(answer) => {
                if failing {
                    log::warn!("notifications: channel {} delivers again", c.name);
                }
                failing = false;
                pause = RETRY_FIRST;
                log::debug!("notifications: {} -> {}: {answer}", q.id, c.name);
                if let Err(e) = outbox.borrow_mut().ack(&c.name, q.seq) {
                    log::warn!("notifications: {e}");
                }
            }
            Err(e) => {
                if !failing {
                    log::warn!(
                        "notifications: channel {}: {e}; retrying (event {} and later wait)",
                        c.name,
                        q.id
                    );
                }
                failing = true;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_CAP);
            }
        }
    }
}

/// One MQTT channel: a lasting session (its last will says `offline`); on each connection
/// the retained discovery configs and states of every UPS, then each state change (retained)
/// and each event in order (QoS 1, acknowledged before the outbox moves on); pings while idle.
#[cfg(feature = "notify-mqtt")]
async fn deliver_mqtt(
    c: Channel,
    outbox: Rc<RefCell<Outbox>>,
    wake: Rc<Notify>,
    states: Rc<States>,
    host: String,
) {
    let prefix = mqtt_prefix(&c);
    let client_id = format!("power-snitch-{}-{}", mqtt::slug(&host), c.name);
    let wants = |e: &Event| event::passes(c.min_severity, e);
    let mut pause = RETRY_FIRST;
    loop {
        let opened = mqtt::Session::open(
            &c.url,
            c.user.as_deref(),
            c.secret.as_ref().map(|s| s.0.as_str()),
            c.ca_file.as_deref(),
            &prefix,
            &client_id,
        )
        .await;
        let err = match opened {
            Err(e) => e,
            Ok(mut s) => {
                if pause > RETRY_FIRST {
                    log::warn!("notifications: channel {} delivers again", c.name);
                }
                pause = RETRY_FIRST;
                let mut published: Vec<mqtt::UpsState> = Vec::new();
                let e = loop {
                    let notified = wake.notified();
                    let changed = states.changed.notified();
                    tokio::pin!(notified, changed);
                    notified.as_mut().enable();
                    changed.as_mut().enable();
                    let now: Vec<mqtt::UpsState> = states.list.borrow().clone();
                    let mut r = Ok(());
                    for u in &now {
                        let old = published.iter().find(|p| p.source == u.source);
                        if old.is_none() {
                            for (t, p) in mqtt::discovery(&prefix, u) {
                                r = r.and(s.publish(&t, p.as_bytes(), true).await);
                            }
                        }
                        if old != Some(u) {
                            let t = mqtt::state_topic(&prefix, u);
                            r = r.and(s.publish(&t, mqtt::state_json(u).as_bytes(), true).await);
                        }
                    }
                    if let Err(e) = r {
                        break e;
                    }
                    published = now;
                    let next = outbox.borrow().next_for(&c.name, wants).cloned();
                    if let Some(q) = next {
                        let body = channel::webhook_body(&q, &host);
                        if let Err(e) = s
                            .publish(&mqtt::event_topic(&prefix), body.as_bytes(), false)
                            .await
                        {
                            break e;
                        }
                        if let Err(e) = outbox.borrow_mut().ack(&c.name, q.seq) {
                            log::warn!("notifications: {e}");
                        }
                        continue;
                    }
                    outbox.borrow_mut().pass(&c.name);
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = &mut changed => {}
                        _ = tokio::time::sleep(mqtt::PING_EVERY) => {
                            if let Err(e) = s.ping().await {
                                break e;
                            }
                        }
                    }
                };
                s.close().await;
                e
            }
        };
        log::warn!(
            "notifications: channel {}: {err}; connecting again in {} s",
            c.name,
            pause.as_secs()
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_CAP);
    }
}

/// The MQTT channel's topic prefix (its `to`, else `power-snitch`).
pub fn mqtt_prefix(c: &Channel) -> String {
    c.to.clone().unwrap_or_else(|| "power-snitch".into())
}

/// Sends a test event on `c` now (not through the outbox); returns what the receiver said.
pub async fn send_test(c: &Channel) -> Result<String, SendError> {
    let now = crate::state::unix_ms();
    let host = channel::hostname();
    let q = Queued {
        seq: 0,
        id: format!("ps-test-{now:x}"),
        event: Event::new(
            Kind::Test,
            Severity::Info,
            "power-snitch",
            format!(
                "a test from Power Snitch on {host}: channel {} works",
                c.name
            ),
            now / 1000,
        ),
    };
    channel::send(c, &q, &host).await
}
