//! The simulated serial UPSes (tests/common/sim.rs): their dialogues byte for byte, then the
//! proof that they are faithful: NUT's own drivers (`nutdrv_qx`, `blazer_ser`, `apcsmart`) on
//! the simulators' pseudo-terminals, behind a real upsd, serve what the simulators say.
//!
//! Ports: Debian's NUT 2.8.0 drivers lock a serial port with `flock()` on the open descriptor,
//! not with UUCP `LCK..` files, so `/dev/pts/N` works as it is; the drivers' attempts to raise
//! DTR and lower RTS fail on a pty (`ENOTTY`) and are ignored. Each UPS still gets its own
//! simulator: the lock keeps a second driver off a port. The ports named in ups.conf are the
//! simulators' symlinks, stable paths in a temp dir.

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::nut::Nut;
use common::sim::{ApcSmart, Dialogue, Megatec, Power, PtySim, UnixSim};

/// Feeds each input in turn and checks the answer to each.
fn check(d: &mut impl Dialogue, exchanges: &[(&[u8], &[u8])]) {
    for (i, (input, want)) in exchanges.iter().enumerate() {
        let got = d.feed(input);
        assert_eq!(
            got.escape_ascii().to_string(),
            want.escape_ascii().to_string(),
            "exchange {i}, sent `{}`",
            input.escape_ascii()
        );
    }
}

const Q1_DEFAULT: &[u8] = b"(230.0 230.0 230.0 020 50.0 13.0 25.0 00001001\r";

#[test]
fn megatec_answers_status_ratings_and_info() {
    check(
        &mut Megatec::default(),
        &[
            (b"Q1\r", Q1_DEFAULT),
            (b"F\r", b"#230.0 004 012.0 50.0\r"),
            (b"I\r", b"#PowerSim        PS-1000    V1.2      \r"),
        ],
    );
}

#[test]
fn megatec_commands_split_or_joined() {
    check(
        &mut Megatec::default(),
        &[
            (b"Q", b""),
            (b"1", b""),
            (b"\r", Q1_DEFAULT),
            (b"F\rI", b"#230.0 004 012.0 50.0\r"),
            (b"\r", b"#PowerSim        PS-1000    V1.2      \r"),
            (b"\nQ1\r\n", Q1_DEFAULT),
        ],
    );
}

#[test]
fn megatec_echoes_what_it_does_not_know() {
    // What nutdrv_qx tries before it settles on Megatec; each echo is a "short reply" to it.
    let mut m = Megatec::default();
    for cmd in ["QGS", "M", "QS", "D", "ID", "QPI", "QMOD", "X\x01"] {
        let sent = format!("{cmd}\r");
        check(&mut m, &[(sent.as_bytes(), sent.as_bytes())]);
    }
}

#[test]
fn megatec_commands_without_answer_set_status_bits() {
    let bits = |m: &Megatec| m.status()[38..46].to_string();
    let mut m = Megatec::default();
    check(&mut m, &[(b"Q\r", b"")]);
    assert_eq!(bits(&m), "00001000", "Q toggles the beeper");
    check(&mut m, &[(b"T\r", b"")]);
    assert_eq!(bits(&m), "00001100", "T starts a test");
    check(&mut m, &[(b"CT\r", b""), (b"T10\r", b""), (b"CT\r", b"")]);
    assert_eq!(bits(&m), "00001000");
    check(&mut m, &[(b"S05R0010\r", b"")]);
    assert_eq!(bits(&m), "00001010", "S starts a shutdown");
    check(&mut m, &[(b"C\r", b""), (b"S.5\r", b"")]);
    assert_eq!(bits(&m), "00001010");
    check(&mut m, &[(b"C\r", b""), (b"SXY\r", b"SXY\r")]);
    assert_eq!(bits(&m), "00001000");
}

#[test]
fn megatec_state_flips() {
    let mut m = Megatec::default();
    m.state.power = Power::Battery;
    m.state.input_voltage = 0.0;
    m.state.charge = 50.0;
    check(
        &mut m,
        &[(b"Q1\r", b"(000.0 000.0 230.0 020 50.0 11.7 25.0 10001001\r")],
    );
    m.state.low_battery = true;
    m.state.charge = 0.0;
    m.state.load = 57.4;
    check(
        &mut m,
        &[(b"Q1\r", b"(000.0 000.0 230.0 057 50.0 10.4 25.0 11001001\r")],
    );
    m.state.battery_nominal = 2.0; // one cell: S.SS
    check(
        &mut m,
        &[(b"Q1\r", b"(000.0 000.0 230.0 057 50.0 1.73 25.0 11001001\r")],
    );
}

#[test]
fn megatec_fields_keep_their_width() {
    for v in [-5.0, 0.0, 1e9, f64::NAN, f64::INFINITY, 999.96] {
        let mut m = Megatec::default();
        let s = &mut m.state;
        (s.input_voltage, s.output_voltage, s.load, s.temperature) = (v, v, v, v);
        (s.input_frequency, s.charge, s.battery_nominal) = (v, v, v);
        (s.input_voltage_nominal, s.input_frequency_nominal) = (v, v);
        s.mfr = "A manufacturer far too long for the field".into();
        let q1 = m.feed(b"Q1\r");
        assert_eq!(q1.len(), 47, "{v}: {}", q1.escape_ascii());
        assert_eq!((q1[0], q1[46]), (b'(', b'\r'));
        assert_eq!(m.feed(b"F\r").len(), 22, "{v}");
        assert_eq!(m.feed(b"I\r").len(), 39, "{v}");
    }
}

#[test]
fn megatec_drops_an_overlong_line() {
    let mut m = Megatec::default();
    check(
        &mut m,
        &[(&[b'Q'; 1000], b""), (b"1\r", b""), (b"Q1\r", Q1_DEFAULT)],
    );
}

#[test]
fn apc_is_silent_until_smart_mode() {
    check(
        &mut ApcSmart::default(),
        &[
            (b"Q", b""),
            (b"f\x01", b""),
            (b"Y", b"SM\r\n"),
            (b"Q", b"08\r\n"),
            (b"R", b"BYE\r\n"),
            (b"Q", b""),
            (b"YY", b"SM\r\nSM\r\n"),
        ],
    );
}

#[test]
fn apc_answers_its_variables() {
    check(
        &mut ApcSmart::default(),
        &[
            (b"Y", b"SM\r\n"),
            (b"\x01", b"Smart-UPS 1500\r\n"),
            (b"n", b"AS1234567890\r\n"),
            (b"b", b"601.3.I\r\n"),
            (b"fLO", b"100.0\r\n230.0\r\n230.0\r\n"),
            (b"P", b"020.0\r\n"),
            (b"B", b"26.00\r\n"),
            (b"j", b"0045:\r\n"),
            (b"g", b"024\r\n"),
            (b"9", b"FF\r\n"),
            (b"F", b"50.00\r\n"),
            (b"C", b"025.0\r\n"),
            (b"X", b"NO\r\n"),
            (b"\x1a", b"#e44200153090\r\n"),
            (b"K", b"NA\r\n"),
            (b"\x1b", b"NA\r\n"),
            (b"-", b"NO\r\n"),
        ],
    );
}

#[test]
fn apc_command_set_has_the_form_apcsmart_checks_and_lists_only_what_it_answers() {
    let set = ApcSmart::command_set();
    let parts: Vec<&str> = set.split('.').collect();
    assert_eq!(parts.len(), 3, "{set:?}");
    assert_eq!(parts[0], "3");
    assert!(!parts[2].contains('*'), "'*' ends a line for apcsmart");
    let mut ups = ApcSmart::default();
    check(&mut ups, &[(b"Y", b"SM\r\n")]);
    for c in parts[2].bytes().filter(|c| !b"YR-".contains(c)) {
        let answer = ups.feed(&[c]);
        assert!(
            answer.ends_with(b"\r\n") && answer != b"NA\r\n",
            "`{}` is listed but answered `{}`",
            [c].escape_ascii(),
            answer.escape_ascii()
        );
    }
    check(&mut ups, &[(b"a", format!("{set}\r\n").as_bytes())]);
}

#[test]
fn apc_alerts_follow_the_state() {
    let mut ups = ApcSmart::default();
    ups.state.power = Power::Battery;
    assert_eq!(ups.unsolicited(), b"", "no alerts before smart mode");
    check(&mut ups, &[(b"Y", b"SM\r\n")]);
    assert_eq!(ups.unsolicited(), b"", "the state at Y is known");
    check(&mut ups, &[(b"Q", b"10\r\n")]);
    ups.state.power = Power::Line;
    assert_eq!(ups.unsolicited(), b"$");
    assert_eq!(ups.unsolicited(), b"");
    ups.state.power = Power::Battery;
    ups.state.low_battery = true;
    assert_eq!(ups.unsolicited(), b"!%");
    check(&mut ups, &[(b"Q", b"50\r\n")]);
    ups.state.power = Power::Line;
    ups.state.low_battery = false;
    ups.state.replace_battery = true;
    ups.state.load = 120.0;
    assert_eq!(ups.unsolicited(), b"$+#");
    check(&mut ups, &[(b"Q", b"A8\r\n")]);
}

#[test]
fn apc_settings_rotate_and_strings_arrive_in_pieces() {
    let mut ups = ApcSmart::default();
    check(
        &mut ups,
        &[
            (b"Y", b"SM\r\n"),
            (b"e", b"00\r\n"),
            (b"-", b"OK\r\n"),
            (b"e", b"15\r\n"),
            (b"e-e-e-e", b"15\r\nOK\r\n30\r\nOK\r\n90\r\nOK\r\n00\r\n"),
            (b"--e", b"OK\r\nOK\r\n30\r\n"),
            (b"Q-", b"08\r\nNO\r\n"),
            (b"c", b"UPS_IDEN\r\n"),
            (b"-", b""),
            (b"RACK", b""),
            (b"7\r\r\r", b"OK\r\n"),
            (b"c", b"RACK7\r\n"),
            (b"x-12/31/24", b"01/15/19\r\nOK\r\n"),
            (b"x", b"12/31/24\r\n"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The runners

/// Reads exactly `n` bytes, or panics after the reader's own timeout.
fn read_n(r: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    r.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("wanted {n} bytes: {e}"));
    buf
}

#[test]
fn pty_runner_serves_commands_split_across_writes_and_cleans_up() {
    use nix::sys::termios::{tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices::*};
    let pty = PtySim::start(Megatec::default()).unwrap();
    let link = pty.link().to_path_buf();
    assert!(pty.pts().starts_with("/dev/pts/"), "{:?}", pty.pts());
    assert_eq!(std::fs::read_link(&link).unwrap(), pty.pts());

    let mut port = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&link)
        .unwrap();
    // The runner made the terminal raw; a read gives up after 2 s.
    let mut tio = tcgetattr(&port).unwrap();
    (
        tio.control_chars[VMIN as usize],
        tio.control_chars[VTIME as usize],
    ) = (0, 20);
    tcsetattr(&port, SetArg::TCSANOW, &tio).unwrap();

    port.write_all(b"Q").unwrap();
    std::thread::sleep(Duration::from_millis(150));
    port.write_all(b"1\r").unwrap();
    assert_eq!(read_n(&mut port, Q1_DEFAULT.len()), Q1_DEFAULT);

    pty.set(|s| s.power = Power::Battery);
    port.write_all(b"Q1\r").unwrap();
    assert!(read_n(&mut port, Q1_DEFAULT.len()).ends_with(b" 10001001\r"));

    drop(port);
    drop(pty);
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is gone"
    );
}

#[test]
fn unix_runner_serves_one_connection_after_another_and_sends_alerts() {
    let dir = std::env::temp_dir().join(format!("ps-sim-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ups.sock");
    let unix = UnixSim::listen(ApcSmart::default(), &path).unwrap();
    let connect = || {
        let c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c
    };

    let mut c = connect();
    c.write_all(b"YQ").unwrap();
    assert_eq!(read_n(&mut c, 8), b"SM\r\n08\r\n");
    unix.set(|s| s.power = Power::Battery);
    assert_eq!(read_n(&mut c, 1), b"!", "the alert comes unasked");
    drop(c);

    let mut c = connect();
    c.write_all(b"Q").unwrap();
    assert_eq!(read_n(&mut c, 4), b"10\r\n", "still in smart mode");
    drop(c);

    drop(unix);
    assert!(!path.exists(), "the socket is gone");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// NUT's drivers on the simulators

const WAIT: Duration = Duration::from_secs(20);
const USERS: &str = "[admin]\n\tpassword = adminpw\n\tactions = SET\n\tinstcmds = ALL\n";

fn section(ups: &str, driver: &str, port: &Path, extra: &str) -> String {
    format!(
        "[{ups}]\n\tdriver = {driver}\n\tport = {}\n\tpollinterval = 1\n{extra}",
        port.display()
    )
}

/// Starts the drivers of `sections` (ups, driver) and upsd, and waits until each UPS is served.
fn start(nut: &mut Nut, sections: &[(&str, &str)]) {
    for (ups, driver) in sections {
        nut.start_driver_program(ups, driver);
    }
    nut.start_upsd();
    for (ups, _) in sections {
        nut.wait_ready(ups);
    }
}

/// The Q1 drivers on a Megatec simulator: what its answers say, and each flip of its state.
fn q1_driver_follows(nut: &Nut, ups: &str, sim: &PtySim<Megatec>) {
    for (var, want) in [
        ("ups.status", "OL"),
        ("input.voltage", "230.0"),
        ("output.voltage", "230.0"),
        ("ups.load", "20"),
        ("battery.charge", "100"),
        ("battery.voltage.nominal", "12.0"),
        ("input.voltage.nominal", "230"),
        ("ups.temperature", "25.0"),
        ("ups.beeper.status", "enabled"),
    ] {
        assert_eq!(nut.var(ups, var).as_deref(), Some(want), "{ups}: {var}");
    }

    sim.set(|s| {
        s.power = Power::Battery;
        s.input_voltage = 0.0;
        s.charge = 50.0;
    });
    nut.wait_var(ups, "ups.status", "OB", WAIT);
    nut.wait_var(ups, "battery.charge", "50", WAIT);
    assert_eq!(nut.var(ups, "input.voltage").as_deref(), Some("0.0"));

    sim.set(|s| {
        s.low_battery = true;
        s.charge = 0.0;
    });
    nut.wait_var(ups, "ups.status", "OB LB", WAIT);
    nut.wait_var(ups, "battery.charge", "0", WAIT);

    sim.set(|s| {
        s.power = Power::Line;
        s.low_battery = false;
        s.input_voltage = 228.5;
    });
    nut.wait_var(ups, "ups.status", "OL", WAIT);
    nut.wait_var(ups, "input.voltage", "228.5", WAIT);
}

#[test]
fn nutdrv_qx_reads_the_megatec_simulator() {
    let started = Instant::now();
    let megatec = PtySim::start(Megatec::default()).unwrap();
    // Without `protocol`, nutdrv_qx probes Voltronic, Mustek, … first: the echoes make it
    // choose Megatec, as with a real Megatec UPS.
    let detected = PtySim::start(Megatec::default()).unwrap();
    // Between full updates (every `pollfreq` s, 30 by default) nutdrv_qx reads only the status:
    // make every poll a full one.
    let conf = section(
        "qx",
        "nutdrv_qx",
        megatec.link(),
        "\tprotocol = megatec\n\tpollfreq = 1\n",
    ) + &section("qxauto", "nutdrv_qx", detected.link(), "");
    let mut nut = Nut::with_ups_conf("sim-qx", &conf, USERS, "");
    start(&mut nut, &[("qx", "nutdrv_qx"), ("qxauto", "nutdrv_qx")]);

    for ups in ["qx", "qxauto"] {
        assert_eq!(nut.var(ups, "device.mfr").as_deref(), Some("PowerSim"));
        assert_eq!(nut.var(ups, "device.model").as_deref(), Some("PS-1000"));
        assert_eq!(nut.var(ups, "ups.firmware").as_deref(), Some("V1.2"));
    }
    q1_driver_follows(&nut, "qx", &megatec);
    eprintln!("nutdrv_qx: {:?}", started.elapsed());
}

#[test]
fn blazer_ser_reads_the_megatec_simulator() {
    let started = Instant::now();
    let megatec = PtySim::start(Megatec::default()).unwrap();
    let conf = section("blazer", "blazer_ser", megatec.link(), "");
    let mut nut = Nut::with_ups_conf("sim-blazer", &conf, USERS, "");
    start(&mut nut, &[("blazer", "blazer_ser")]);

    assert_eq!(nut.var("blazer", "ups.mfr").as_deref(), Some("PowerSim"));
    assert_eq!(nut.var("blazer", "ups.model").as_deref(), Some("PS-1000"));
    q1_driver_follows(&nut, "blazer", &megatec);
    eprintln!("blazer_ser: {:?}", started.elapsed());
}

#[test]
fn apcsmart_reads_the_apc_simulator() {
    let started = Instant::now();
    let apc = PtySim::start(ApcSmart::default()).unwrap();
    let conf = section("apc", "apcsmart", apc.link(), "");
    let mut nut = Nut::with_ups_conf("sim-apc", &conf, USERS, "");
    start(&mut nut, &[("apc", "apcsmart")]);

    for (var, want) in [
        ("ups.status", "OL"),
        ("device.mfr", "APC"),
        ("ups.model", "Smart-UPS 1500"),
        ("ups.serial", "AS1234567890"),
        ("ups.firmware", "601.3.I"),
        ("ups.id", "UPS_IDEN"),
        ("battery.charge", "100.0"),
        ("battery.runtime", "2700"),
        ("battery.voltage", "26.00"),
        ("battery.charge.restart", "00"),
        ("input.voltage", "230.0"),
        ("input.quality", "FF"),
        ("ups.load", "020.0"),
    ] {
        assert_eq!(nut.var("apc", var).as_deref(), Some(want), "{var}");
    }

    apc.set(|s| {
        s.power = Power::Battery;
        s.input_voltage = 0.0;
        s.charge = 50.0;
        s.runtime_minutes = 12;
    });
    nut.wait_var("apc", "ups.status", "OB", WAIT);
    nut.wait_var("apc", "battery.charge", "050.0", WAIT);
    nut.wait_var("apc", "battery.runtime", "720", WAIT);
    assert_eq!(nut.var("apc", "input.voltage").as_deref(), Some("000.0"));

    apc.set(|s| s.low_battery = true);
    nut.wait_var("apc", "ups.status", "OB LB", WAIT);

    apc.set(|s| {
        s.power = Power::Line;
        s.low_battery = false;
        s.input_voltage = 229.1;
    });
    nut.wait_var("apc", "ups.status", "OL", WAIT);
    nut.wait_var("apc", "input.voltage", "229.1", WAIT);

    // The capability list made battery.charge.restart settable: upsd → apcsmart → `e`, `-`.
    let set = Command::new("upsrw")
        .args([
            "-s",
            "battery.charge.restart=30",
            "-u",
            "admin",
            "-p",
            "adminpw",
        ])
        .arg(nut.target("apc"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("upsrw runs");
    assert!(set.success());
    nut.wait_var("apc", "battery.charge.restart", "30", WAIT);
    assert_eq!(apc.with(|a| a.restart_charge()), "30");
    eprintln!("apcsmart: {:?}", started.elapsed());
}
