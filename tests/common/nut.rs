//! A real NUT (Debian's upsd and dummy-ups) in a temp dir on a free loopback port, for tests.
//! Every NUT process runs under a small shell that kills it when the test process is gone,
//! so nothing outlives the tests.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const LIBEXEC: &str = "/lib/nut";

pub struct Nut {
    pub dir: PathBuf,
    pub port: u16,
    pub upsd: Option<Child>,
    pub drivers: Vec<(String, Child)>,
}

/// A port free now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `program args` with NUT's paths set to `dir`, supervised: killed when this test
/// process exits.
pub fn supervised(dir: &Path, program: &str, args: &[&str]) -> Child {
    let me = std::process::id();
    let cmdline = std::iter::once(program)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        "{cmdline} & c=$!; while kill -0 {me} 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 0.2; done; kill -9 $c 2>/dev/null; wait $c"
    );
    Command::new("sh")
        .args(["-c", &script])
        .process_group(0)
        .env("NUT_CONFPATH", dir)
        .env("NUT_STATEPATH", dir)
        .env("NUT_ALTPIDPATH", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh starts")
}

impl Nut {
    /// Writes the files; `ups` is `(name, port file, port file's content)`.
    pub fn new(name: &str, ups: &[(&str, &str, &str)], users: &str, upsd_extra: &str) -> Nut {
        let mut ups_conf = String::new();
        for (n, file, _) in ups {
            ups_conf.push_str(&format!(
                "[{n}]\n\tdriver = dummy-ups\n\tport = {file}\n\tdesc = \"UPS {n}\"\n"
            ));
        }
        let nut = Nut::with_ups_conf(name, &ups_conf, users, upsd_extra);
        for (_, file, content) in ups {
            fs::write(nut.dir.join(file), content).unwrap();
        }
        nut
    }

    /// Writes the files, with `ups_conf` as ups.conf word for word (any drivers and ports).
    pub fn with_ups_conf(name: &str, ups_conf: &str, users: &str, upsd_extra: &str) -> Nut {
        let dir = std::env::temp_dir().join(format!("ps-nut-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        fs::write(dir.join("ups.conf"), ups_conf).unwrap();
        fs::write(
            dir.join("upsd.conf"),
            format!("LISTEN 127.0.0.1 {port}\n{upsd_extra}"),
        )
        .unwrap();
        fs::write(dir.join("upsd.users"), users).unwrap();
        Nut {
            dir,
            port,
            upsd: None,
            drivers: Vec::new(),
        }
    }

    pub fn start_driver(&mut self, ups: &str) {
        let child = supervised(
            &self.dir,
            &format!("{LIBEXEC}/dummy-ups"),
            &["-a", ups, "-F", "-u", "root"],
        );
        self.drivers.push((ups.to_string(), child));
    }

    /// Starts `driver` (a program in /lib/nut) for the ups.conf section `ups`.
    pub fn start_driver_program(&mut self, ups: &str, driver: &str) {
        let child = supervised(
            &self.dir,
            &format!("{LIBEXEC}/{driver}"),
            &["-a", ups, "-F", "-u", "root"],
        );
        self.drivers.push((ups.to_string(), child));
    }

    pub fn stop_driver(&mut self, ups: &str) {
        if let Some(i) = self.drivers.iter().position(|d| d.0 == ups) {
            let (_, mut c) = self.drivers.remove(i);
            kill_group(&mut c);
        }
    }

    pub fn start_upsd(&mut self) {
        self.upsd = Some(supervised(
            &self.dir,
            &format!("{LIBEXEC}/upsd"),
            &["-F", "-u", "root"],
        ));
        // Wait for the port to accept.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "upsd did not start listening on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_upsd(&mut self) {
        if let Some(mut c) = self.upsd.take() {
            kill_group(&mut c);
        }
        // Wait until the port is closed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "upsd did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn target(&self, ups: &str) -> String {
        format!("{ups}@127.0.0.1:{}", self.port)
    }

    /// Waits until upsd serves `ups` with real data (dummy-ups needs about 2 s).
    pub fn wait_ready(&self, ups: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new("upsc")
                .arg(self.target(ups))
                .arg("ups.status")
                .stderr(Stdio::null())
                .output()
                .expect("upsc runs");
            let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !status.is_empty() && status != "WAIT" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ups} never became ready (last: {status:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Nut {
    /// `upsc UPS VAR`: the value, or `None` if upsc fails or has none.
    pub fn var(&self, ups: &str, var: &str) -> Option<String> {
        let out = Command::new("upsc")
            .arg(self.target(ups))
            .arg(var)
            .stderr(Stdio::null())
            .output()
            .expect("upsc runs");
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// Waits until upsd serves `want` for `ups`'s `var`; panics with the last value after
    /// `timeout`.
    pub fn wait_var(&self, ups: &str, var: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.var(ups, var);
            if got.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ups}: {var} is {got:?}, not {want:?}, after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Kills a supervised program: the shell and the NUT program share a process group.
pub fn kill_group(c: &mut Child) {
    let pgid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = c.wait();
}

impl Drop for Nut {
    fn drop(&mut self) {
        for (_, c) in &mut self.drivers {
            kill_group(c);
        }
        if let Some(c) = &mut self.upsd {
            kill_group(c);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
