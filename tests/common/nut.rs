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
            &["-FF", "-u", "root"],
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
        // Killed, it leaves its PID file (-FF writes one, so `upsd -c reload` finds it).
        let _ = std::fs::remove_file(self.dir.join("upsd.pid"));
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

/// One NUT release as an oracle: a Debian root holding that release's nut-server and
/// nut-client, built and cached by `nut-releases/build-roots`; its programs run inside it by
/// chroot (which needs root).
pub struct Release {
    pub suite: String,
    pub version: power_snitch::nut::version::NutVersion,
    /// The Debian package's version, e.g. `2.8.1-5+deb13u1`.
    pub package: String,
    pub root: PathBuf,
}

/// Where `nut-releases/build-roots` keeps the roots.
pub fn roots_dir() -> PathBuf {
    std::env::var_os("POWER_SNITCH_NUT_ROOTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/power-snitch-nut"))
}

/// Every release of nut-releases/suites with its root. Panics, saying how to build them, when
/// a root is absent or holds another release than its suite should.
pub fn releases() -> Vec<Release> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = fs::read_to_string(repo.join("nut-releases/suites")).expect("nut-releases/suites");
    let build = format!(
        "build them with `sudo nut-releases/build-roots` (about 8 min cold; set \
         POWER_SNITCH_NUT_ROOTS to keep them elsewhere than {})",
        roots_dir().display()
    );
    let mut out = Vec::new();
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (suite, want) = (w[0], w[1]);
        let root = roots_dir().join(suite);
        let stamp = fs::read_to_string(root.join("power-snitch-root")).unwrap_or_else(|e| {
            panic!(
                "the NUT {want} root ({suite}) is missing: {}: {e}; {build}",
                root.join("power-snitch-root").display()
            )
        });
        let package = stamp
            .lines()
            .find_map(|l| l.strip_prefix("nut "))
            .unwrap_or_default()
            .to_string();
        let version: power_snitch::nut::version::NutVersion = package
            .split(['-', '+', '~'])
            .next()
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}; {build}", root.display()));
        assert_eq!(
            version.to_string(),
            want,
            "{} holds NUT {package}, not {want}; {build}",
            root.display()
        );
        out.push(Release {
            suite: suite.to_string(),
            version,
            package,
            root,
        });
    }
    out
}

impl Release {
    /// Where the release installs `program` (a driver, upsd, upsmon, upsdrvctl, upsc), as a
    /// path inside the root: its driver directory first (Debian's /sbin/upsd up to 2.8.1 is a
    /// wrapper script), then sbin and bin.
    pub fn program(&self, program: &str) -> Option<PathBuf> {
        [
            "lib/nut",
            "usr/lib/nut",
            "usr/libexec/nut",
            "usr/sbin",
            "usr/bin",
        ]
        .iter()
        .map(|d| Path::new("/").join(d).join(program))
        .find(|p| self.root.join(p.strip_prefix("/").unwrap()).is_file())
    }

    /// A command running `program` (a path inside the root) inside the root.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(&self.root).arg(program);
        cmd
    }

    /// `program -V` run inside the root, at most five seconds: what it printed.
    pub fn banner(&self, program: &Path) -> Option<String> {
        let out = self
            .command(Path::new("timeout"))
            .args(["5"])
            .arg(program)
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Some(text)
    }

    /// A user of the root's account database, with the groups it is in.
    pub fn account(&self, name: &str) -> Option<power_snitch::nut::Account> {
        let passwd = fs::read_to_string(self.root.join("etc/passwd")).ok()?;
        let groups = fs::read_to_string(self.root.join("etc/group")).ok()?;
        let user: Vec<&str> = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[0] == name)?;
        let mut gids = vec![user[3].parse().ok()?];
        for g in groups.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if g.len() > 3 && g[3].split(',').any(|m| m == name) {
                gids.extend(g[2].parse::<u32>().ok());
            }
        }
        Some(power_snitch::nut::Account {
            name: name.to_string(),
            uid: user[2].parse().ok()?,
            gids,
        })
    }

    /// A fresh directory under the root's /tmp: (its path here, its path inside the root).
    pub fn temp_dir(&self, name: &str) -> (PathBuf, PathBuf) {
        let inside = Path::new("/tmp").join(format!("ps-{}-{name}", std::process::id()));
        let here = self.root.join(inside.strip_prefix("/").unwrap());
        let _ = fs::remove_dir_all(&here);
        fs::create_dir_all(&here).unwrap();
        (here, inside)
    }
}
