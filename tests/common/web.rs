//! The agent with its setup page on a free port, for the page's tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::nut::free_port;

pub const BIN: &str = env!("CARGO_BIN_EXE_power-snitch");

pub fn bin(args: &[&str], stdin: &str) -> std::process::Output {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("power-snitch runs");
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

/// A running agent with its page on a free port; stderr collected.
pub struct Agent {
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
    pub settings: PathBuf,
    pub port: u16,
    nut_dir: PathBuf,
}

/// `power-snitch run` on these files, its stderr collected line by line.
fn spawn(settings: &Path, nut_dir: &Path, dir: &Path) -> (Child, Arc<Mutex<Vec<String>>>) {
    let sys = super::fixtures_dir().join("usb/pi4-mixed/sys");
    let mut child = Command::new(BIN)
        .args(["run", "-v", "--settings"])
        .arg(settings)
        .arg("--nut-dir")
        .arg(nut_dir)
        .arg("--control-socket")
        .arg(dir.join("control.sock"))
        .arg("--sysfs-root")
        .arg(&sys)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        // Without systemd here, a change of NUT's files runs NUT's programs directly: on the
        // test's NUT directory, as root (no `nut` account owns the temporary files).
        .env("NUT_STATEPATH", nut_dir)
        .env("NUT_ALTPIDPATH", nut_dir)
        .env("POWER_SNITCH_NUT_USER", "root")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(l);
        }
    });
    (child, lines)
}

impl Agent {
    /// `set` are `settings set` arguments for the UPS `ups1` (and agent-wide keys).
    pub fn start(name: &str, nut_dir: &Path, set: &[&str], ups_password: Option<&str>) -> Agent {
        Agent::start_on(name, nut_dir, set, ups_password, free_port(), true)
    }

    /// [`Agent::start`] on `port`; `ready` waits for the agent's "ready" line.
    pub fn start_on(
        name: &str,
        nut_dir: &Path,
        set: &[&str],
        ups_password: Option<&str>,
        port: u16,
        ready: bool,
    ) -> Agent {
        let dir = std::env::temp_dir().join(format!("ps-web-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let settings = dir.join("settings.bin");
        let s = settings.to_str().unwrap();
        let listen = format!("web_listen=127.0.0.1:{port}");
        let mut args = vec!["settings", "set", "--settings", s, "--ups", "ups1", &listen];
        args.extend_from_slice(set);
        let out = bin(&args, "");
        assert!(out.status.success(), "{out:?}");
        if let Some(p) = ups_password {
            let out = bin(
                &[
                    "settings",
                    "set",
                    "--settings",
                    s,
                    "--ups",
                    "ups1",
                    "--password-stdin",
                ],
                &format!("{p}\n"),
            );
            assert!(out.status.success(), "{out:?}");
        }
        let (child, lines) = spawn(&settings, nut_dir, &dir);
        let a = Agent {
            child,
            lines,
            dir,
            settings,
            port,
            nut_dir: nut_dir.to_path_buf(),
        };
        if ready {
            a.wait_for(|l| l.contains("info: ready;"));
        }
        a
    }

    /// Stops the agent (SIGKILL) and starts it again with the same files, its log starting
    /// afresh; waits for its "ready" line.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, lines) = spawn(&self.settings, &self.nut_dir, &self.dir);
        self.child = child;
        self.lines = lines;
        self.wait_for(|l| l.contains("info: ready;"));
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the agent still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such line; the log:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn settings(&self) -> power_snitch::settings::model::Settings {
        power_snitch::settings::store::load(&self.settings).settings
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A UPS on a real upsd + dummy-ups, and an agent monitoring it as `admin` (password
/// `adminpass` in `users`) with its setup page's admin password set to `admin_password`.
pub fn served_agent(name: &str, users: &str, admin_password: &str) -> (super::nut::Nut, Agent) {
    let dev = "ups.status: OL CHRG\nbattery.charge: 87\nbattery.runtime: 1500\nups.load: 23\ninput.voltage: 230.5\noutput.voltage: 229\nups.mfr: Dummy\nups.model: Rack 1500\n";
    served_agent_with(name, users, admin_password, dev)
}

/// [`served_agent`] with dummy-ups reading `dev`.
pub fn served_agent_with(
    name: &str,
    users: &str,
    admin_password: &str,
    dev: &str,
) -> (super::nut::Nut, Agent) {
    served_agent_more(name, users, admin_password, dev, "")
}

/// [`served_agent_with`], with `more` added to ups.conf after upsd started (sections upsd need
/// not serve, for the check to find).
pub fn served_agent_more(
    name: &str,
    users: &str,
    admin_password: &str,
    dev: &str,
    more: &str,
) -> (super::nut::Nut, Agent) {
    served_agent_on(name, users, admin_password, dev, more, false)
}

/// [`served_agent`] with the page on 0.0.0.0 (so over HTTPS, reached as 127.0.0.1).
pub fn served_agent_https(
    name: &str,
    users: &str,
    admin_password: &str,
) -> (super::nut::Nut, Agent) {
    let dev = "ups.status: OL CHRG\nbattery.charge: 87\nbattery.runtime: 1500\nups.load: 23\ninput.voltage: 230.5\noutput.voltage: 229\nups.mfr: Dummy\nups.model: Rack 1500\n";
    served_agent_on(name, users, admin_password, dev, "", true)
}

/// [`served_agent_more`], on 0.0.0.0 (HTTPS) when `https`.
pub fn served_agent_on(
    name: &str,
    users: &str,
    admin_password: &str,
    dev: &str,
    more: &str,
    https: bool,
) -> (super::nut::Nut, Agent) {
    let mut nut = super::nut::Nut::new(name, &[("ups1", "ups1.dev", dev)], users, "");
    std::fs::write(nut.dir.join("nut.conf"), "MODE=standalone\n").unwrap();
    nut.start_driver("ups1");
    nut.start_upsd();
    nut.wait_ready("ups1");
    if !more.is_empty() {
        let conf = nut.dir.join("ups.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        std::fs::write(&conf, format!("{text}{more}")).unwrap();
    }
    let upsd_port = format!("upsd_port={}", nut.port);
    let port = free_port();
    let any = format!("web_listen=0.0.0.0:{port}");
    let mut set = vec![
        "upsd_host=127.0.0.1",
        &upsd_port,
        "poll_interval=1",
        "nut_driver=dummy-ups",
        "nut_port=ups1.dev",
        "nut_username=admin",
    ];
    if https {
        set.push(&any);
    }
    let agent = Agent::start_on(name, &nut.dir, &set, Some("adminpass"), port, true);
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(
        &["web-password", "--settings", &s],
        &format!("{admin_password}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    (nut, agent)
}
