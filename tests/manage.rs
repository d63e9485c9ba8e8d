//! Changing NUT's files against real NUT: Debian's upsd, upsdrvctl, dummy-ups, nutdrv_qx on a
//! simulated Megatec UPS, and upsmon, all in a temporary NUT directory; then the root side of
//! the spool as an attacker would feed it.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::nut::{free_port, LIBEXEC};
use common::sim::{Megatec, PtySim};
use power_snitch::manage::run::Direct;
use power_snitch::manage::spool::{self, MAX_BATCH, MAX_PENDING};
use power_snitch::manage::{
    change, content_hash, undo, Apply, ManageError, Mode, Nut, Outcome, Proposal,
};
use power_snitch::nut::version::NutVersion;

/// upsmon keeps its PID file in NUT's run directory whatever the environment says: one at a
/// time.
static UPSMON: Mutex<()> = Mutex::new(());

/// A NUT directory as Debian's package leaves it: MODE=none, no section, no user, no MONITOR.
fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ps-manage-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    for (file, text) in [
        ("nut.conf", "# Network UPS Tools: example nut.conf\n#\nMODE=none\n"),
        ("ups.conf", "# Network UPS Tools: example ups.conf\n#\n# maxretry = 3\n"),
        ("upsd.conf", "# Network UPS Tools: example upsd.conf\n# LISTEN 127.0.0.1 3493\n"),
        ("upsd.users", "# Network UPS Tools: Example upsd.users\n"),
        ("upsmon.conf", "# Network UPS Tools: example upsmon.conf\n# MONITOR myups@localhost 1 upsmon pass primary\n"),
    ] {
        fs::write(dir.join(file), text).unwrap();
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o640)).unwrap();
    }
    fs::write(
        dir.join("dummy.dev"),
        "ups.status: OL\nbattery.charge: 100\n",
    )
    .unwrap();
    dir
}

fn nut(dir: &Path) -> Nut {
    Nut::at(dir, NutVersion::new(2, 8, 0), None)
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    fs::read(dir.join(f)).unwrap_or_default()
}

fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(f, t)| (f.to_string(), t.as_bytes().to_vec()))
        .collect()
}

/// Everything NUT runs for a directory, stopped when the test ends (also when it fails).
struct Running {
    dir: PathBuf,
    /// This test runs upsmon (holding [`UPSMON`]): stop it at the end. upsmon's PID file is
    /// NUT's, not the directory's, so another test must not stop it.
    upsmon: bool,
}

impl Running {
    fn runner(&self) -> Direct {
        Direct::new(&self.dir, &self.dir, Path::new(LIBEXEC), Some("root"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut r = self.runner();
        use power_snitch::manage::plan::{Action, Op, Unit};
        if self.upsmon {
            let _ = power_snitch::manage::run::Runner::run(
                &mut r,
                &Action {
                    op: Op::Stop,
                    unit: Unit::Upsmon,
                },
            );
        }
        // upsmon leaves its PID file behind.
        let upsmon = Path::new("/run/nut/upsmon.pid");
        let gone = |p: i32| !power_snitch::manage::run::alive(nix::unistd::Pid::from_raw(p));
        if self.upsmon
            && fs::read_to_string(upsmon)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .is_some_and(gone)
        {
            let _ = fs::remove_file(upsmon);
        }
        // Whatever is left: every PID file in the directory.
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pid") {
                if let Some(pid) = fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn pid(dir: &Path, file: &str) -> Option<i32> {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

fn upsc(port: u16, ups: &str, var: &str) -> Option<String> {
    let out = Command::new("upsc")
        .arg(format!("{ups}@127.0.0.1:{port}"))
        .arg(var)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// Waits until `f` holds, at most `limit`.
fn eventually(limit: Duration, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Megatec UPS on a pty, as tests/simulators.rs proves nutdrv_qx reads it.
fn megatec() -> PtySim<Megatec> {
    PtySim::start(Megatec::default()).unwrap()
}

fn apply_with(
    dir: &Path,
    p: &Proposal,
    mode: Mode,
    run: &mut Direct,
) -> Result<Outcome, ManageError> {
    change(
        &nut(dir),
        p,
        mode,
        Some(Apply {
            runner: run,
            verify_timeout: Duration::from_secs(30),
        }),
    )
}

#[test]
fn adopts_two_upses_restarts_only_what_changed_rolls_back_a_failure_and_undoes() {
    let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh("live");
    let running = Running {
        dir: dir.clone(),
        upsmon: true,
    };
    let mut run = running.runner();
    let sim = megatec();
    let port = free_port();
    let ups_conf = format!(
        "# Network UPS Tools: example ups.conf\n#\n# maxretry = 3\n[dummy]\n\tdriver = dummy-ups\n\tport = dummy.dev\n[qx]\n\tdriver = nutdrv_qx\n\tport = {}\n\tprotocol = megatec\n",
        sim.link().display()
    );
    let proposal = Proposal::new(
        files(&[
            ("nut.conf", "# Network UPS Tools: example nut.conf\n#\nMODE=standalone\n"),
            ("ups.conf", &ups_conf),
            ("upsd.conf", &format!("# Network UPS Tools: example upsd.conf\nLISTEN 127.0.0.1 {port}\n")),
            ("upsd.users", "# Network UPS Tools: Example upsd.users\n[monuser]\n\tpassword = s3cret-pw\n\tupsmon primary\n"),
            ("upsmon.conf", &format!("# Network UPS Tools: example upsmon.conf\nMONITOR dummy@127.0.0.1:{port} 1 monuser s3cret-pw primary\nMONITOR qx@127.0.0.1:{port} 1 monuser s3cret-pw primary\n")),
        ]),
        "adopt two UPSes",
    );
    let before: Vec<Vec<u8>> = ["nut.conf", "ups.conf", "upsd.users"]
        .iter()
        .map(|f| read(&dir, f))
        .collect();

    // --dry-run: the preview, nothing written, nothing run.
    let o = apply_with(&dir, &proposal, Mode::DryRun, &mut run).unwrap();
    assert_eq!(o.diffs.len(), 5);
    let users = &o
        .diffs
        .iter()
        .find(|d| d.file == "upsd.users")
        .unwrap()
        .diff;
    assert!(
        users.contains("+\tpassword = ********") && !users.contains("s3cret"),
        "{users}"
    );
    assert!(o.diffs.iter().all(|d| !d.diff.contains("s3cret")));
    assert_eq!(
        o.actions,
        [
            "start the driver of [dummy]",
            "start the driver of [qx]",
            "start upsd",
            "start upsmon"
        ]
    );
    assert!(o.ran.is_empty() && o.backup.is_none());
    let after: Vec<Vec<u8>> = ["nut.conf", "ups.conf", "upsd.users"]
        .iter()
        .map(|f| read(&dir, f))
        .collect();
    assert_eq!(before, after);
    assert!(!dir.join("power-snitch-backups").exists());
    assert!(upsc(port, "dummy", "ups.status").is_none());

    // Apply: both drivers, upsd and upsmon start; both UPSes are served and the account logs in.
    let o = apply_with(&dir, &proposal, Mode::Apply, &mut run).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.ran, o.actions);
    assert!(
        o.verified.iter().any(|v| v.contains("[dummy]")),
        "{:?}",
        o.verified
    );
    assert!(
        o.verified.iter().any(|v| v.contains("[qx]")),
        "{:?}",
        o.verified
    );
    assert!(
        o.verified.iter().any(|v| v.contains("`monuser` logs in")),
        "{:?}",
        o.verified
    );
    assert_eq!(read(&dir, "ups.conf"), ups_conf.as_bytes());
    assert_eq!(upsc(port, "dummy", "ups.status").as_deref(), Some("OL"));
    assert_eq!(upsc(port, "qx", "ups.status").as_deref(), Some("OL"));
    assert_eq!(upsc(port, "qx", "device.mfr").as_deref(), Some("PowerSim"));
    // upsmon itself logged in to both.
    let deadline = Instant::now() + Duration::from_secs(15);
    while upsd_numlogins(port, "dummy") < 1 || upsd_numlogins(port, "qx") < 1 {
        let ps = Command::new("sh")
            .arg("-c")
            .arg("ps -eo pid,ppid,stat,args | grep [u]psmon; cat /run/nut/upsmon.pid")
            .output()
            .unwrap();
        assert!(
            Instant::now() < deadline,
            "upsmon logs in to [dummy] and [qx]: {:?}; {}",
            power_snitch::manage::run::Runner::logs(
                &mut run,
                &power_snitch::manage::plan::Unit::Upsmon
            ),
            String::from_utf8_lossy(&ps.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The new secret files are root:nut 0640 as they were; the backup holds the old versions.
    let users = fs::metadata(dir.join("upsd.users")).unwrap();
    assert_eq!(users.mode() & 0o7777, 0o640);
    let backup = o.backup.clone().unwrap();
    assert!(backup.starts_with(dir.join("power-snitch-backups")));
    assert_eq!(fs::read(backup.join("nut.conf")).unwrap(), before[0]);

    // One driver variable changes: only that driver restarts; the other keeps its PID.
    let dummy_pid = pid(&dir, "dummy-ups-dummy.pid").expect("dummy-ups's PID file");
    let qx_pid = pid(&dir, "nutdrv_qx-qx.pid").expect("nutdrv_qx's PID file");
    let changed = ups_conf.replace(
        "\tprotocol = megatec\n",
        "\tprotocol = megatec\n\tpollinterval = 3\n",
    );
    let o = apply_with(
        &dir,
        &Proposal::new(files(&[("ups.conf", &changed)]), "poll less often"),
        Mode::Apply,
        &mut run,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.actions, ["restart the driver of [qx]", "reload upsd"]);
    assert_eq!(pid(&dir, "dummy-ups-dummy.pid"), Some(dummy_pid));
    assert_ne!(pid(&dir, "nutdrv_qx-qx.pid"), Some(qx_pid));
    assert_eq!(upsc(port, "qx", "ups.status").as_deref(), Some("OL"));
    let diff = &o.diffs[0].diff;
    assert!(diff.contains("+\tpollinterval = 3\n"), "{diff}");

    // A change whose driver cannot start: the files come back and the old UPSes are served.
    let broken = format!("{changed}[gone]\n\tdriver = nutdrv_qx\n\tport = /dev/ttyPS-not-there\n\tprotocol = megatec\n");
    let e = apply_with(
        &dir,
        &Proposal::new(files(&[("ups.conf", &broken)]), "a UPS that is not there"),
        Mode::Apply,
        &mut run,
    )
    .unwrap_err();
    let ManageError::Failed(f) = &e else {
        panic!("not a failed apply: {e}")
    };
    assert!(f.what.contains("upsdrvctl"), "{}", f.what);
    assert!(
        f.logs
            .iter()
            .any(|l| l.contains("ttyPS-not-there") || l.contains("No such file")),
        "NUT's own words are in the report: {:?}",
        f.logs
    );
    assert!(f.restored.is_ok(), "{:?}", f.restored);
    assert_eq!(read(&dir, "ups.conf"), changed.as_bytes());
    assert_eq!(upsc(port, "dummy", "ups.status").as_deref(), Some("OL"));
    assert_eq!(upsc(port, "qx", "ups.status").as_deref(), Some("OL"));
    assert!(upsc(port, "gone", "ups.status").is_none());
    assert_eq!(pid(&dir, "dummy-ups-dummy.pid"), Some(dummy_pid));
    assert!(e.to_string().contains("the previous files are back"), "{e}");

    // Undo: the change before (pollinterval) goes; undo again brings it back.
    let o = undo(
        &nut(&dir),
        Mode::Apply,
        Some(Apply {
            runner: &mut run,
            verify_timeout: Duration::from_secs(30),
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&dir, "ups.conf"), ups_conf.as_bytes());
    assert_eq!(o.actions, ["restart the driver of [qx]", "reload upsd"]);
    assert_eq!(upsc(port, "qx", "ups.status").as_deref(), Some("OL"));
    undo(
        &nut(&dir),
        Mode::Apply,
        Some(Apply {
            runner: &mut run,
            verify_timeout: Duration::from_secs(30),
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&dir, "ups.conf"), changed.as_bytes());

    // A section removed: its driver stops (while ups.conf still names it), the other stays.
    let qx_pid = pid(&dir, "nutdrv_qx-qx.pid").expect("nutdrv_qx's PID file");
    let without = changed[..changed.find("[qx]").unwrap()].to_string();
    let o = apply_with(
        &dir,
        &Proposal::new(
            files(&[
                ("ups.conf", &without),
                (
                    "upsmon.conf",
                    &format!("MONITOR dummy@127.0.0.1:{port} 1 monuser s3cret-pw primary\n"),
                ),
            ]),
            "the Megatec UPS is gone",
        ),
        Mode::Apply,
        &mut run,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        o.ran,
        ["stop the driver of [qx]", "reload upsd", "reload upsmon"]
    );
    eventually(Duration::from_secs(10), "nutdrv_qx stops", || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(qx_pid), None).is_err()
    });
    eventually(Duration::from_secs(10), "upsd forgets [qx]", || {
        upsc(port, "qx", "ups.status").is_none()
    });
    assert_eq!(pid(&dir, "dummy-ups-dummy.pid"), Some(dummy_pid));
    assert_eq!(upsc(port, "dummy", "ups.status").as_deref(), Some("OL"));
    drop(sim);
    drop(running);
}

/// upsd's count of upsmon logins on `ups`, through the product's own client.
fn upsd_numlogins(port: u16, ups: &str) -> u32 {
    use power_snitch::upsd::client::{Client, Options, Reply};
    use power_snitch::upsd::proto::Request;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = power_snitch::nut::target::Target {
            ups: None,
            host: "127.0.0.1".into(),
            port,
        };
        let mut c = Client::new(target, Options::default());
        match c.request(&Request::GetNumLogins(ups.into())).await {
            Ok(Reply::Line(w)) => w.last().and_then(|n| n.parse().ok()).unwrap_or(0),
            _ => 0,
        }
    })
}

#[test]
fn no_apply_writes_validated_and_backed_up_and_runs_nothing() {
    let dir = fresh("noapply");
    let _cleanup = Running {
        dir: dir.clone(),
        upsmon: false,
    };
    let mut run = Direct::new(&dir, &dir, Path::new("/nonexistent"), Some("root"));
    let port = free_port();
    let p = Proposal::new(
        files(&[
            ("nut.conf", "MODE=standalone\n"),
            (
                "ups.conf",
                "[dummy]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
            ),
            ("upsd.conf", &format!("LISTEN 127.0.0.1 {port}\n")),
            ("upsd.users", "[mon]\n\tpassword = pw\n\tupsmon primary\n"),
            (
                "upsmon.conf",
                &format!("MONITOR dummy@127.0.0.1:{port} 1 mon pw primary\n"),
            ),
        ]),
        "prepare an SD card",
    );
    // The programs do not even exist here: nothing may be run.
    let o = apply_with(&dir, &p, Mode::NoApply, &mut run).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.ran.is_empty() && o.verified.is_empty());
    assert_eq!(
        o.actions,
        ["start the driver of [dummy]", "start upsd", "start upsmon"]
    );
    assert_eq!(read(&dir, "nut.conf"), b"MODE=standalone\n");
    assert!(o.backup.as_ref().unwrap().join("nut.conf").exists());
    assert!(fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().ends_with(".pid")));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // A change that adds an error is refused with the findings, nothing written.
    let e = apply_with(
        &dir,
        &Proposal::new(
            files(&[(
                "ups.conf",
                "[dummy]\n\tdriver = no-such-driver\n\tport = dummy.dev\n",
            )]),
            "bad",
        ),
        Mode::NoApply,
        &mut run,
    )
    .unwrap_err();
    let ManageError::Refused { added, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        !added.is_empty() && added.iter().all(|f| f.file == "ups.conf"),
        "{added:?}"
    );
    assert_eq!(
        read(&dir, "ups.conf"),
        b"[dummy]\n\tdriver = dummy-ups\n\tport = dummy.dev\n"
    );
    // Undo with --no-apply restores the fresh files, and a file the change created goes.
    undo(&nut(&dir), Mode::NoApply, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read(&dir, "nut.conf"),
        b"# Network UPS Tools: example nut.conf\n#\nMODE=none\n"
    );
    // Backups are bounded.
    for i in 0..15 {
        let t = format!("# {i}\n");
        change(
            &nut(&dir),
            &Proposal::new(files(&[("ups.conf", &t)]), "churn"),
            Mode::NoApply,
            None,
        )
        .unwrap();
    }
    let kept = fs::read_dir(dir.join("power-snitch-backups"))
        .unwrap()
        .count();
    assert_eq!(kept, power_snitch::manage::fsop::KEEP_BACKUPS);
}

/// A NUT directory and a spool beside it, for the root side.
struct SpoolCase {
    base: PathBuf,
    nut: PathBuf,
    spool: PathBuf,
}

impl SpoolCase {
    fn new(name: &str) -> SpoolCase {
        let nut = fresh(&format!("spool-{name}"));
        let base = nut.with_extension("spool");
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        SpoolCase {
            spool: base.join("apply"),
            nut,
            base,
        }
    }

    /// Writes raw bytes as a proposal, as an agent under an attacker's control could.
    fn raw(&self, id: &str, bytes: &[u8]) {
        fs::create_dir_all(self.spool.join("in")).unwrap();
        fs::set_permissions(self.spool.join("in"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(self.spool.join("in").join(format!("{id}.proposal")), bytes).unwrap();
    }

    fn run(&self) -> Vec<spool::Handled> {
        let mut r = Direct::new(
            &self.nut,
            &self.nut,
            Path::new("/nonexistent"),
            Some("root"),
        );
        spool::apply_spool(&self.spool, &nut(&self.nut), &mut r, Duration::from_secs(5)).unwrap()
    }

    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(&self.nut)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

impl Drop for SpoolCase {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
        let _ = fs::remove_dir_all(&self.nut);
    }
}

fn proposal(pairs: &[(&str, &str)]) -> Proposal {
    Proposal::new(files(pairs), "test")
}

#[test]
fn the_root_side_writes_only_nuts_five_files_with_content_it_validated() {
    let c = SpoolCase::new("names");
    let before = c.snapshot();
    let outside = c.base.join("outside");
    fs::write(&outside, "untouched\n").unwrap();
    // Names that are not NUT's five: a path, a way up, a newline, another NUT file.
    let bad_names = [
        "../outside",
        "/etc/passwd",
        "../../../../tmp/x",
        "ups.conf/../../outside",
        "upssched.conf",
        "upsset.conf",
        ".ups.conf",
    ];
    for (i, name) in bad_names.iter().enumerate() {
        let p = Proposal::new(files(&[(name, "[x]\n")]), "attack");
        c.raw(
            &format!("1{i}-1"),
            &spool::encode_proposal(&p, Mode::NoApply),
        );
    }
    // Raw records: a newline inside a name, a length that lies, two records for one file.
    c.raw(
        "30-1",
        b"power-snitch-proposal 1\nmode - 8\nno-apply\nfile ups.conf\n../x 4\n[x]\n\n",
    );
    c.raw(
        "31-1",
        b"power-snitch-proposal 1\nmode - 8\nno-apply\nfile ups.conf 2\n[x]\n\n",
    );
    c.raw("32-1", b"power-snitch-proposal 1\nmode - 8\nno-apply\nfile ups.conf 4\n[a]\n\nfile ups.conf 4\n[b]\n\n");
    let mut handled = Vec::new();
    while fs::read_dir(c.spool.join("in")).unwrap().count() > 0 {
        handled.extend(c.run());
    }
    assert_eq!(handled.len(), bad_names.len() + 3);
    for h in &handled {
        let e = h.result.as_ref().unwrap_err();
        assert!(
            matches!(e, ManageError::NotNutFile(_) | ManageError::Spool(_)),
            "{}: {e}",
            h.id
        );
        // The proposer reads the refusal back.
        let out = c.spool.join("out").join(format!("{}.result", h.id));
        let got = spool::wait_result(&c.spool, &h.id, Duration::from_secs(1)).unwrap_err();
        assert!(!out.exists());
        assert_eq!(got.to_string(), e.to_string());
    }
    assert_eq!(c.snapshot(), before);
    assert_eq!(fs::read(&outside).unwrap(), b"untouched\n");
    assert!(!c.nut.join("upssched.conf").exists());
}

#[test]
fn names_and_values_that_would_escape_are_refused_or_stay_values() {
    let c = SpoolCase::new("values");
    // Section and user names with `/`, `../` or a leading dot.
    let cases = [
        (
            "ups.conf",
            "[../../etc]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
        ),
        (
            "ups.conf",
            "[a/b]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
        ),
        (
            "ups.conf",
            "[..]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
        ),
        (
            "upsd.users",
            "[../root]\n\tpassword = x\n\tupsmon primary\n",
        ),
    ];
    for (file, text) in cases {
        let e = change(
            &nut(&c.nut),
            &proposal(&[(file, text)]),
            Mode::NoApply,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(e, ManageError::Unsafe { .. } | ManageError::Refused { .. }),
            "{text:?}: {e}"
        );
    }
    // A value that looks like more records or more lines stays the file's bytes, exactly.
    let text = "[a]\n\tdriver = dummy-ups\n\tport = dummy.dev\n\tdesc = \"x\"\n# file upsd.users 5\n# [evil]\n";
    let p = proposal(&[("ups.conf", text)]);
    let id = spool::submit(&c.spool, &p, Mode::NoApply).unwrap();
    // The spool belongs to the agent's account (here: nobody): its result must be its own to
    // read, not root's.
    for d in ["", "in", "out"] {
        std::os::unix::fs::chown(c.spool.join(d), Some(65534), Some(65534)).unwrap();
    }
    let handled = c.run();
    assert_eq!(handled.len(), 1);
    let result = fs::metadata(c.spool.join("out").join(format!("{id}.result"))).unwrap();
    assert_eq!(
        (result.uid(), result.gid(), result.mode() & 0o777),
        (65534, 65534, 0o600)
    );
    let o =
        spool::wait_result(&c.spool, &id, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.via_spool && o.ran.is_empty());
    assert_eq!(read(&c.nut, "ups.conf"), text.as_bytes());
    assert_eq!(
        read(&c.nut, "upsd.users"),
        b"# Network UPS Tools: Example upsd.users\n"
    );
}

#[test]
fn symlinks_are_refused_not_followed() {
    let c = SpoolCase::new("links");
    let target = c.base.join("target");
    fs::write(&target, "# not NUT's\n").unwrap();
    fs::remove_file(c.nut.join("ups.conf")).unwrap();
    std::os::unix::fs::symlink(&target, c.nut.join("ups.conf")).unwrap();
    let p = proposal(&[(
        "ups.conf",
        "[a]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
    )]);
    let e = change(&nut(&c.nut), &p, Mode::NoApply, None).unwrap_err();
    assert!(
        matches!(e, ManageError::Io(_)) && e.to_string().contains("symlink"),
        "{e}"
    );
    // Another file of the directory is a link too: the whole change is refused before writing.
    let p = proposal(&[("nut.conf", "MODE=standalone\n")]);
    let e = change(&nut(&c.nut), &p, Mode::NoApply, None).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(fs::read(&target).unwrap(), b"# not NUT's\n");
    // NUT's directory itself a link.
    let link = c.base.join("nut-link");
    std::os::unix::fs::symlink(&c.nut, &link).unwrap();
    let e = change(
        &nut(&link),
        &proposal(&[("nut.conf", "MODE=none\n")]),
        Mode::NoApply,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    // The backups' directory a link to elsewhere.
    fs::remove_file(c.nut.join("ups.conf")).unwrap();
    fs::create_dir_all(c.base.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(c.base.join("elsewhere"), c.nut.join("power-snitch-backups"))
        .unwrap();
    let e = change(
        &nut(&c.nut),
        &proposal(&[("nut.conf", "MODE=none\n# x\n")]),
        Mode::NoApply,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(fs::read_dir(c.base.join("elsewhere")).unwrap().count(), 0);
    // A proposal in the spool that is a link to a file elsewhere.
    fs::create_dir_all(c.spool.join("in")).unwrap();
    fs::set_permissions(c.spool.join("in"), fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = c.base.join("proposal");
    fs::write(
        &elsewhere,
        spool::encode_proposal(&proposal(&[("nut.conf", "MODE=none\n#y\n")]), Mode::NoApply),
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, c.spool.join("in/5-1.proposal")).unwrap();
    let handled = c.run();
    assert!(handled[0]
        .result
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("symlink"));
    assert_eq!(
        read(&c.nut, "nut.conf"),
        b"# Network UPS Tools: example nut.conf\n#\nMODE=none\n"
    );
}

#[test]
fn a_file_changed_after_the_proposal_was_made_is_not_overwritten() {
    let c = SpoolCase::new("swap");
    let mut p = proposal(&[(
        "ups.conf",
        "[a]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
    )]);
    p.base = spool::base_of(&c.nut);
    assert_eq!(
        p.base["ups.conf"],
        Some(content_hash(&read(&c.nut, "ups.conf")))
    );
    let id = spool::submit(&c.spool, &p, Mode::NoApply).unwrap();
    // Between the proposal and the root side's run, someone swaps the file.
    let swapped = c.nut.join("ups.conf.new");
    fs::write(
        &swapped,
        "[theirs]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
    )
    .unwrap();
    fs::rename(&swapped, c.nut.join("ups.conf")).unwrap();
    c.run();
    let e = spool::wait_result(&c.spool, &id, Duration::from_secs(1)).unwrap_err();
    assert!(e.to_string().contains("ups.conf changed"), "{e}");
    assert_eq!(
        read(&c.nut, "ups.conf"),
        b"[theirs]\n\tdriver = dummy-ups\n\tport = dummy.dev\n"
    );
    // A file that did not exist for the proposer but does now.
    fs::remove_file(c.nut.join("upsmon.conf")).unwrap();
    let mut p = proposal(&[("upsmon.conf", "MINSUPPLIES 1\n")]);
    p.base = spool::base_of(&c.nut);
    fs::write(c.nut.join("upsmon.conf"), "MINSUPPLIES 0\n").unwrap();
    let e = change(&nut(&c.nut), &p, Mode::NoApply, None).unwrap_err();
    assert_eq!(
        e,
        ManageError::Changed {
            file: "upsmon.conf".into()
        }
    );
}

#[test]
fn a_flood_of_proposals_is_bounded() {
    let c = SpoolCase::new("flood");
    // The proposer stops at MAX_PENDING waiting proposals.
    for i in 0..MAX_PENDING {
        let t = format!("# {i}\n");
        spool::submit(&c.spool, &proposal(&[("ups.conf", &t)]), Mode::NoApply).unwrap();
    }
    let e = spool::submit(
        &c.spool,
        &proposal(&[("ups.conf", "# more\n")]),
        Mode::NoApply,
    )
    .unwrap_err();
    assert!(e.to_string().contains("already wait"), "{e}");
    // Written straight into the spool past that bound: at most MAX_BATCH applied, the rest
    // refused, every one answered and removed; junk names removed unread.
    for i in 0..20 {
        c.raw(
            &format!("9999999999999999{i:04}-7"),
            &spool::encode_proposal(&proposal(&[("ups.conf", "# flood\n")]), Mode::NoApply),
        );
    }
    fs::write(c.spool.join("in/junk"), "x").unwrap();
    let handled = c.run();
    assert_eq!(handled.len(), MAX_PENDING + 20);
    let applied = handled.iter().filter(|h| h.result.is_ok()).count();
    assert_eq!(applied, MAX_BATCH);
    assert!(handled[MAX_BATCH..].iter().all(|h| h
        .result
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("at once")));
    assert_eq!(fs::read_dir(c.spool.join("in")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(c.spool.join("out")).unwrap().count(),
        MAX_PENDING + 20
    );
    // The first MAX_BATCH (the proposer's, in order) landed; the last of them is the file.
    assert_eq!(
        read(&c.nut, "ups.conf"),
        format!("# {}\n", MAX_BATCH - 1).as_bytes()
    );
    // An oversized proposal is refused unread.
    c.raw("99-1", &vec![b'x'; spool::MAX_PROPOSAL + 10]);
    let h = c.run();
    assert!(h[0]
        .result
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("larger"));
    // A spool whose in/ others may write is refused whole.
    c.raw(
        "100-1",
        &spool::encode_proposal(&proposal(&[("ups.conf", "# x\n")]), Mode::NoApply),
    );
    fs::set_permissions(c.spool.join("in"), fs::Permissions::from_mode(0o777)).unwrap();
    let mut r = Direct::new(&c.nut, &c.nut, Path::new("/nonexistent"), None);
    let e = spool::apply_spool(&c.spool, &nut(&c.nut), &mut r, Duration::from_secs(1)).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
}

/// The root side's units, verified by systemd with the binary just built.
#[test]
fn apply_units_verify() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ps-apply-units-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let service = fs::read_to_string(repo.join("systemd/power-snitch-apply.service")).unwrap();
    let path = fs::read_to_string(repo.join("systemd/power-snitch-apply.path")).unwrap();
    assert!(service.contains("ExecStart=/usr/bin/power-snitch apply-spool"));
    assert!(service.lines().any(|l| l == "Type=oneshot"));
    assert!(path
        .lines()
        .any(|l| l == "DirectoryNotEmpty=/var/lib/power-snitch/apply/in"));
    fs::write(
        dir.join("power-snitch-apply.service"),
        service.replace("/usr/bin/power-snitch", env!("CARGO_BIN_EXE_power-snitch")),
    )
    .unwrap();
    fs::write(dir.join("power-snitch-apply.path"), &path).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("power-snitch-apply.path"))
        .arg(dir.join("power-snitch-apply.service"))
        .output()
        .expect("systemd-analyze is installed (Debian's package systemd)");
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `power-snitch undo` from the command line: `--dry-run` shows the diff and writes nothing,
/// `--no-apply` restores without running anything, and an undo is itself undone.
#[test]
fn the_undo_command_previews_restores_and_is_undone() {
    let dir = fresh("cli");
    let _cleanup = Running {
        dir: dir.clone(),
        upsmon: false,
    };
    let fresh_ups = read(&dir, "ups.conf");
    let mine = "[dummy]\n\tdriver = dummy-ups\n\tport = dummy.dev\n";
    change(
        &nut(&dir),
        &proposal(&[("ups.conf", mine)]),
        Mode::NoApply,
        None,
    )
    .unwrap();
    let undo_cmd = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_power-snitch"))
            .args(["undo", "--nut-dir"])
            .arg(&dir)
            .args([
                "--nut-version",
                "2.8.0",
                "--settings",
                "/nonexistent/settings.bin",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = undo_cmd(&["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("--- a/ups.conf\n+++ b/ups.conf\n") && text.contains("-[dummy]\n"),
        "{text}"
    );
    assert!(text.contains("nothing written (--dry-run)"), "{text}");
    assert_eq!(read(&dir, "ups.conf"), mine.as_bytes());
    let out = undo_cmd(&["--no-apply"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(&dir, "ups.conf"), fresh_ups);
    let out = undo_cmd(&["--no-apply", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["mode"], "no-apply");
    assert_eq!(v["diffs"][0]["file"], "ups.conf");
    assert_eq!(read(&dir, "ups.conf"), mine.as_bytes());
    let out = undo_cmd(&["--no-apply", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3));
    // A directory without backups has nothing to undo.
    let empty = fresh("cli-empty");
    let _cleanup2 = Running {
        dir: empty.clone(),
        upsmon: false,
    };
    let out = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args([
            "undo",
            "--no-apply",
            "--nut-version",
            "2.8.0",
            "--settings",
            "/nonexistent/s.bin",
            "--nut-dir",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no backup"),
        "{out:?}"
    );
}

/// Through the spool end to end: the proposer waits (bounded) in one thread while the root
/// side applies with real NUT, verifies, and answers; then an undo asked through the spool,
/// whose files the root side reads from the backups itself.
#[test]
fn a_proposal_through_the_spool_is_applied_verified_and_answered() {
    let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
    let c = SpoolCase::new("live");
    let running = Running {
        dir: c.nut.clone(),
        upsmon: true,
    };
    let port = free_port();
    let p = proposal(&[
        ("nut.conf", "MODE=netserver\n"),
        (
            "ups.conf",
            "[dummy]\n\tdriver = dummy-ups\n\tport = dummy.dev\n",
        ),
        ("upsd.conf", &format!("LISTEN 127.0.0.1 {port}\n")),
        ("upsd.users", "[mon]\n\tpassword = pw\n\tupsmon primary\n"),
        (
            "upsmon.conf",
            &format!("MONITOR dummy@127.0.0.1:{port} 1 mon pw primary\n"),
        ),
    ]);
    let mut p = p;
    p.base = spool::base_of(&c.nut);
    let spool_dir = c.spool.clone();
    let proposer = std::thread::spawn(move || {
        spool::submit_and_wait(&spool_dir, &p, Mode::Apply, Duration::from_secs(60))
    });
    // The root side, as power-snitch-apply.path would start it once the proposal is there.
    let mut r = running.runner();
    let deadline = Instant::now() + Duration::from_secs(10);
    let handled = loop {
        let h =
            spool::apply_spool(&c.spool, &nut(&c.nut), &mut r, Duration::from_secs(30)).unwrap();
        if !h.is_empty() || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(handled.len(), 1);
    let o = proposer.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(o.via_spool);
    assert_eq!(
        o.ran,
        ["start the driver of [dummy]", "start upsd", "start upsmon"]
    );
    assert!(
        o.verified.iter().any(|v| v.contains("`mon` logs in")),
        "{:?}",
        o.verified
    );
    assert!(
        o.verified.iter().any(|v| v.contains("[dummy]")),
        "{:?}",
        o.verified
    );
    assert_eq!(upsc(port, "dummy", "ups.status").as_deref(), Some("OL"));
    assert!(
        fs::read_dir(c.spool.join("out")).unwrap().next().is_none(),
        "the proposer removed its result"
    );

    // An undo through the spool: the root side restores the fresh files and stops NUT.
    let id = spool::submit(&c.spool, &power_snitch::manage::undo_request(), Mode::Apply).unwrap();
    let bytes = fs::read(c.spool.join("in").join(format!("{id}.proposal"))).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("file "),
        "an undo names no file"
    );
    spool::apply_spool(&c.spool, &nut(&c.nut), &mut r, Duration::from_secs(30)).unwrap();
    let o =
        spool::wait_result(&c.spool, &id, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        o.ran,
        ["stop the driver of [dummy]", "stop upsd", "stop upsmon"]
    );
    assert_eq!(
        read(&c.nut, "nut.conf"),
        b"# Network UPS Tools: example nut.conf\n#\nMODE=none\n"
    );
    eventually(Duration::from_secs(10), "upsd stops", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

/// The plan a face makes for `dir`, with `settings` and the serial ports the user named.
fn adopt_plan(
    face: power_snitch::inspect::Face,
    dir: &Path,
    settings: &Path,
    ports: &[&Path],
) -> power_snitch::inspect::Plan {
    use power_snitch::inspect::{Given, Installed, Plan};
    let given = Given {
        nut_dir: Some(dir.to_path_buf()),
        settings: Some(settings.to_path_buf()),
        serial_ports: ports.iter().map(|p| p.display().to_string()).collect(),
        ..Given::default()
    };
    Plan::resolve(
        face,
        &given,
        Installed::detect(Some(NutVersion::new(2, 8, 0))),
    )
    .unwrap()
}

#[test]
fn adopt_a_found_ups_from_a_fresh_nut_write_the_settings_into_nut_and_remove_it() {
    use power_snitch::inspect::{self, adopt, Face};
    use power_snitch::settings::model::{Secret, UpsEntry};
    use power_snitch::settings::store;
    let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh("adopt");
    let running = Running {
        dir: dir.clone(),
        upsmon: true,
    };
    let mut run = running.runner();
    let sim = megatec();
    let port = free_port();
    // upsd on the test's port: the one line a user would set in Debian's fresh upsd.conf.
    fs::write(dir.join("upsd.conf"), format!("LISTEN 127.0.0.1 {port}\n")).unwrap();
    let settings = dir.join("state/settings.bin");
    let mut make = |p: Proposal| {
        change(
            &nut(&dir),
            &p,
            Mode::Apply,
            Some(Apply {
                runner: &mut run,
                verify_timeout: Duration::from_secs(30),
            }),
        )
    };

    // The probe finds the Megatec UPS on the named port; no section serves it: one candidate.
    let plan = adopt_plan(Face::Adopt, &dir, &settings, &[sim.link()]);
    let report = inspect::check(&plan, &|_| {});
    let found = adopt::candidates(&plan, &report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].section.contains("driver = nutdrv_qx"),
        "{}",
        found[0].section
    );

    // One step: section, account, MONITOR line, MODE; applied and verified; the settings entry.
    let c = adopt::adopt(&plan, &report, None, Mode::Apply, &mut make)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = c.ups.clone();
    assert!(c.settings_written);
    assert_eq!(upsc(port, &name, "ups.status").as_deref(), Some("OL"));
    assert_eq!(upsc(port, &name, "device.mfr").as_deref(), Some("PowerSim"));
    eventually(Duration::from_secs(15), "upsmon logs in", || {
        upsd_numlogins(port, &name) >= 1
    });
    let ups_conf = String::from_utf8(read(&dir, "ups.conf")).unwrap();
    assert!(
        ups_conf.starts_with("# Network UPS Tools: example ups.conf\n#\n# maxretry = 3\n"),
        "the user's lines stay: {ups_conf}"
    );
    assert!(ups_conf.contains(&format!("[{name}]")), "{ups_conf}");
    let upsmon = String::from_utf8(read(&dir, "upsmon.conf")).unwrap();
    let account = adopt_account(&name);
    assert!(
        upsmon.contains(&format!("MONITOR {name}@localhost:{port} 1 {account} ")),
        "{upsmon}"
    );
    assert_eq!(
        read(&dir, "nut.conf"),
        b"# Network UPS Tools: example nut.conf\n#\nMODE=standalone\n"
    );
    let stored = store::load(&settings).settings;
    let entry = stored
        .ups
        .iter()
        .find(|u| u.nut_device_name == name)
        .unwrap();
    assert_eq!(entry.nut_driver, "nutdrv_qx");
    assert_eq!(entry.nut_username.as_deref(), Some(account.as_str()));
    let password = entry.nut_password.clone().unwrap().0;
    assert!(password.len() >= 32 && upsmon.contains(&password));
    assert!(
        c.outcome.diffs.iter().all(|d| !d.diff.contains(&password)),
        "the preview masks it"
    );

    // Nothing is left to adopt; adopting it again is refused.
    let plan = adopt_plan(Face::Adopt, &dir, &settings, &[sim.link()]);
    let report = inspect::check(&plan, &|_| {});
    assert!(adopt::candidates(&plan, &report).is_empty());
    let e = adopt::adopt(&plan, &report, None, Mode::Apply, &mut make).unwrap_err();
    assert!(e.to_string().contains("nothing to adopt"), "{e}");

    // A settings entry (dummy-ups) into NUT's files: section, account and MONITOR line.
    store::update(&settings, |l| {
        let mut s = l.settings;
        let mut u = UpsEntry::new("dummy");
        u.nut_driver = "dummy-ups".into();
        u.nut_port = Some("dummy.dev".into());
        u.nut_username = Some("watcher".into());
        u.nut_password = Some(Secret("w4tch-it".into()));
        u.upsd_port = port;
        s.ups.push(u);
        Ok::<_, String>(s)
    })
    .unwrap();
    let plan = adopt_plan(Face::Sync, &dir, &settings, &[]);
    adopt::to_nut(&plan, Some("dummy"), &mut make).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(upsc(port, "dummy", "ups.status").as_deref(), Some("OL"));
    assert!(String::from_utf8(read(&dir, "upsd.users"))
        .unwrap()
        .contains("[watcher]"));

    // Remove the adopted UPS: its section, MONITOR line, account and settings entry go; its
    // driver stops; the other UPS stays served.
    let plan = adopt_plan(Face::Sync, &dir, &settings, &[]);
    adopt::remove(&plan, &name, Mode::Apply, &mut make).unwrap_or_else(|e| panic!("{e}"));
    assert!(upsc(port, &name, "ups.status").is_none());
    assert_eq!(upsc(port, "dummy", "ups.status").as_deref(), Some("OL"));
    let users = String::from_utf8(read(&dir, "upsd.users")).unwrap();
    assert!(
        !users.contains(&account) && users.contains("[watcher]"),
        "{users}"
    );
    assert!(!String::from_utf8(read(&dir, "ups.conf"))
        .unwrap()
        .contains(&format!("[{name}]")));
    let stored = store::load(&settings).settings;
    assert!(stored.ups.iter().all(|u| u.nut_device_name != name));
}

fn adopt_account(ups: &str) -> String {
    power_snitch::nut::edit::monitor_account(ups)
}

#[test]
fn the_adopt_command_previews_then_writes_without_applying() {
    let dir = fresh("adopt-cli");
    let mut sim = megatec();
    // As on a real serial port, nothing holds it open until a program opens it.
    sim.release();
    let settings = dir.join("state/settings.bin");
    // NUT's files as Debian installs them: root:nut, so upsd (user nut) reads them.
    let nut_gid = nix::unistd::Group::from_name("nut").unwrap().unwrap().gid;
    for f in [
        "nut.conf",
        "ups.conf",
        "upsd.conf",
        "upsd.users",
        "upsmon.conf",
    ] {
        nix::unistd::chown(&dir.join(f), None, Some(nut_gid)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_power-snitch");
    let run = |extra: &[&str]| {
        let out = Command::new(bin)
            .arg("adopt")
            .arg(sim.link())
            .args(["--nut-version", "2.8.0", "--nut-dir"])
            .arg(&dir)
            .arg("--settings")
            .arg(&settings)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let before: Vec<Vec<u8>> = ["nut.conf", "ups.conf", "upsd.users", "upsmon.conf"]
        .iter()
        .map(|f| read(&dir, f))
        .collect();
    let (code, out, err) = run(&["--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("+++ b/ups.conf") && out.contains("+\tdriver = nutdrv_qx"),
        "{out}"
    );
    assert!(out.contains("+\tpassword = ********"), "{out}");
    assert!(out.contains("nothing written (--dry-run)"), "{out}");
    let after: Vec<Vec<u8>> = ["nut.conf", "ups.conf", "upsd.users", "upsmon.conf"]
        .iter()
        .map(|f| read(&dir, f))
        .collect();
    assert_eq!(before, after);
    assert!(!settings.exists());

    let (code, out, err) = run(&["--no-apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(String::from_utf8(read(&dir, "ups.conf"))
        .unwrap()
        .contains("driver = nutdrv_qx"));
    assert!(
        settings.exists(),
        "the settings entry is written with the files"
    );
    // What was written passes NUT's own reading (our validator: no error).
    let out = Command::new(bin)
        .args(["validate", "--nut-version", "2.8.0", "--nut-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.code().unwrap() < 2,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Two at once is a usage error; a second adopt finds nothing left.
    assert_eq!(run(&["--dry-run", "--no-apply"]).0, Some(3));
    let (code, _, err) = run(&["--dry-run"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("no UPS without a ups.conf section") || err.contains("nothing to adopt"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[cfg(feature = "web")]
#[test]
fn the_page_previews_and_adopts_a_found_ups_and_a_forged_request_changes_nothing() {
    use common::http::{enc, get, post};
    use common::web::{bin, Agent};
    let _one = UPSMON.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh("page");
    let _running = Running {
        dir: dir.clone(),
        upsmon: true,
    };
    let mut sim = megatec();
    sim.release();
    let port = free_port();
    fs::write(dir.join("upsd.conf"), format!("LISTEN 127.0.0.1 {port}\n")).unwrap();
    let agent = Agent::start("adopt-page", &dir, &["nut_driver=dummy-ups"], None);
    let s = agent.settings.to_str().unwrap().to_string();
    let out = bin(&["web-password", "--settings", &s], "page-admin-pw\n");
    assert!(out.status.success(), "{out:?}");
    let r = post(
        agent.port,
        "/login",
        None,
        &format!("password={}&next=%2Fcheck", enc("page-admin-pw")),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.cookie("ps_session").unwrap();
    let c = Some(cookie.as_str());
    let csrf = get(agent.port, "/setup", c).csrf().expect("a CSRF token");
    let device = sim.link().display().to_string();
    let files = || {
        ["nut.conf", "ups.conf", "upsd.users", "upsmon.conf"]
            .iter()
            .map(|f| read(&dir, f))
            .collect::<Vec<_>>()
    };
    let before = files();

    // A forged request (no CSRF token) is refused and changes nothing.
    let r = post(
        agent.port,
        "/nut/adopt",
        c,
        &format!("device={}&confirm=yes", enc(&device)),
    );
    assert_eq!(r.status, 403, "{r:?}");
    let r = post(
        agent.port,
        "/api/adopt",
        c,
        &format!("device={}&mode=apply", enc(&device)),
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(files(), before);

    // The preview: the diff of each file, the password masked, nothing written.
    let r = post(
        agent.port,
        "/nut/adopt",
        c,
        &format!("csrf={csrf}&device={}", enc(&device)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("+\tdriver = nutdrv_qx"), "{}", r.body);
    assert!(r.body.contains("password = ********"), "{}", r.body);
    assert!(
        r.body.contains("name=\"confirm\" value=\"yes\""),
        "{}",
        r.body
    );
    let r = post(
        agent.port,
        "/api/adopt",
        c,
        &format!("csrf={csrf}&device={}&mode=dry-run", enc(&device)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["file"] == "ups.conf"));
    assert_eq!(files(), before);

    // Adopt: the page's process makes the change (it may write this directory), verified live.
    let r = post(
        agent.port,
        "/nut/adopt",
        c,
        &format!("csrf={csrf}&device={}&confirm=yes", enc(&device)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Verified live"), "{}", r.body);
    let stored = agent.settings();
    let entry = stored
        .ups
        .iter()
        .find(|u| u.nut_driver == "nutdrv_qx")
        .expect("the adopted UPS's settings entry");
    assert_eq!(
        upsc(port, &entry.nut_device_name, "ups.status").as_deref(),
        Some("OL")
    );
    assert!(!r.body.contains(&entry.nut_password.clone().unwrap().0));

    // Remove through the API: served no more, the entry gone.
    let name = entry.nut_device_name.clone();
    let r = post(
        agent.port,
        "/api/remove",
        c,
        &format!("csrf={csrf}&ups={}&mode=apply", enc(&name)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(upsc(port, &name, "ups.status").is_none());
    assert!(agent
        .settings()
        .ups
        .iter()
        .all(|u| u.nut_device_name != name));
}
