//! Simulated serial UPSes: the Megatec/Q1 dialogue (what `nutdrv_qx` with `protocol = megatec`
//! and `blazer_ser` speak) and APC's Smart protocol (what `apcsmart` speaks).
//!
//! Two layers, kept apart as in the product:
//! - **Dialogues** ([`Megatec`], [`ApcSmart`]) are sans-I/O state machines: bytes from the host
//!   in, the UPS's answer out ([`Dialogue::feed`]), commands split across reads or several in
//!   one. Their [`UpsState`] is plain data a test flips (mains lost, battery low, charge, …).
//!   Every internal buffer is bounded; no input makes them panic.
//! - **Runners** serve a dialogue: [`serve`] over any `Read + Write` stream, [`PtySim`] on a
//!   pseudo-terminal (NUT drivers open its slave like a serial port), [`UnixSim`] on a Unix
//!   socket (as QEMU's `-chardev socket,path=…` connects to). State changes go through the shared
//!   handle; dropping a runner stops it.
//!
//! What each dialogue answers was taken from NUT 2.8.0's drivers (`nutdrv_qx_megatec.c`,
//! `blazer.c`, `apcsmart.c`, `apcsmart_tabs.c`) and checked against Debian's binaries in
//! `tests/simulators.rs`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a runner looks for alerts to send and for a stop request while the host is silent.
pub const TICK: Duration = Duration::from_millis(50);

/// Where the UPS takes its power from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Mains present: NUT's `OL`.
    Line,
    /// Mains lost, running on the battery: NUT's `OB`.
    Battery,
}

/// What the simulated UPS measures and says about itself. Plain data: change any field and the
/// next answer tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct UpsState {
    pub power: Power,
    /// The UPS's own low-battery signal: NUT's `LB`.
    pub low_battery: bool,
    /// NUT's `RB` (APC only; Megatec has no such bit).
    pub replace_battery: bool,
    /// Percent, 0 to 100. Megatec UPSes do not report it: they report the battery voltage that
    /// goes with it (see [`UpsState::battery_voltage`]), from which NUT estimates the charge.
    pub charge: f64,
    /// Minutes of runtime left (APC only).
    pub runtime_minutes: u32,
    pub input_voltage: f64,
    pub input_frequency: f64,
    pub output_voltage: f64,
    /// Percent of the rated power.
    pub load: f64,
    /// Degrees Celsius.
    pub temperature: f64,
    /// 12, 24, 36 or 48 V.
    pub battery_nominal: f64,
    pub input_voltage_nominal: f64,
    pub input_frequency_nominal: f64,
    /// Megatec's `I` only; NUT hard-codes "APC" for apcsmart.
    pub mfr: String,
    pub model: String,
    /// APC's `n` only; Megatec's `I` has no serial.
    pub serial: String,
    pub firmware: String,
}

impl Default for UpsState {
    fn default() -> UpsState {
        UpsState {
            power: Power::Line,
            low_battery: false,
            replace_battery: false,
            charge: 100.0,
            runtime_minutes: 45,
            input_voltage: 230.0,
            input_frequency: 50.0,
            output_voltage: 230.0,
            load: 20.0,
            temperature: 25.0,
            battery_nominal: 12.0,
            input_voltage_nominal: 230.0,
            input_frequency_nominal: 50.0,
            mfr: String::new(),
            model: String::new(),
            serial: String::new(),
            firmware: String::new(),
        }
    }
}

impl UpsState {
    /// The battery voltage for the charge: linear from 10.4 V (empty) to 13.0 V (full) per
    /// 12 V block, the same model NUT's Q1 drivers use to estimate the charge back.
    pub fn battery_voltage(&self) -> f64 {
        let charge = clamp(self.charge, 0.0, 100.0);
        self.battery_nominal / 12.0 * (10.4 + 2.6 * charge / 100.0)
    }
}

/// A UPS's side of a serial dialogue, without I/O.
pub trait Dialogue {
    /// Takes what the host sent, in any split, and returns the answers to the commands it
    /// completed, in order.
    fn feed(&mut self, input: &[u8]) -> Vec<u8>;

    /// What the UPS sends without being asked (APC's alert characters). Runners call it between
    /// reads.
    fn unsolicited(&mut self) -> Vec<u8> {
        Vec::new()
    }

    fn state(&self) -> &UpsState;

    fn state_mut(&mut self) -> &mut UpsState;
}

impl Dialogue for Box<dyn Dialogue + Send> {
    fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        (**self).feed(input)
    }

    fn unsolicited(&mut self) -> Vec<u8> {
        (**self).unsolicited()
    }

    fn state(&self) -> &UpsState {
        (**self).state()
    }

    fn state_mut(&mut self) -> &mut UpsState {
        (**self).state_mut()
    }
}

/// The protocols simulated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Megatec,
    Apc,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "megatec" | "q1" => Ok(Protocol::Megatec),
            "apc" | "apcsmart" => Ok(Protocol::Apc),
            _ => Err(format!("unknown protocol `{s}` (megatec or apc)")),
        }
    }
}

impl Protocol {
    /// A UPS of this protocol with its default identity.
    pub fn simulator(self) -> Box<dyn Dialogue + Send> {
        match self {
            Protocol::Megatec => Box::new(Megatec::default()),
            Protocol::Apc => Box::new(ApcSmart::default()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Megatec / Q1

/// Longest command line kept; a longer one is dropped whole, up to its CR.
const MEGATEC_LINE_MAX: usize = 64;
/// Most command lines [`Megatec::received`] keeps.
pub const MEGATEC_LOG_MAX: usize = 4096;

/// A Megatec (Q1) UPS. Commands end with CR; answers too. Known commands:
///
/// | host | UPS |
/// | --- | --- |
/// | `Q1` | `(MMM.M NNN.N PPP.P QQQ RR.R S.SS TT.T b7..b0` (input, input fault, output voltage, load %, frequency, battery voltage, temperature, status bits) |
/// | `F` | `#MMM.M QQQ SS.SS RR.R` (rated voltage, current, battery voltage, frequency) |
/// | `I` | `#` manufacturer (15) model (10) version (10) |
/// | `Q` | (nothing) toggles the beeper |
/// | `T`, `TL`, `Tnn` | (nothing) battery test starts (and ends by itself after [`Megatec::test_length`] `Q1`s, the battery sagging by [`Megatec::test_dip`] meanwhile); echoed back when [`Megatec::refuse_tests`] |
/// | `CT` | (nothing) battery test stops |
/// | `Sn`, `SnRmmmm` | (nothing) shutdown pending |
/// | `C` | (nothing) shutdown cancelled |
///
/// Anything else comes back as it was sent, CR included: that is how a Megatec UPS refuses a
/// command, and what `nutdrv_qx`'s protocol detection relies on (it sends `QGS`, `M`, `QS`, `D`,
/// `ID` and `QPI` before it settles on Megatec, and rejects each echo as a short reply).
#[derive(Clone, Debug)]
pub struct Megatec {
    pub state: UpsState,
    pub beeper: bool,
    pub testing: bool,
    pub shutdown_pending: bool,
    /// A battery test as a real UPS runs it: `Some(n)` ends it by itself after `n` status
    /// answers (`Q1`); `None` (the default) runs it until `CT`.
    pub test_length: Option<u32>,
    /// Percent of charge the battery shows less while a test runs (its voltage sags under the
    /// load), back when the test ends.
    pub test_dip: f64,
    /// The UPS refuses battery tests (echoes `T`, `TL`, `Tnn`), as one with a failed battery.
    pub refuse_tests: bool,
    /// Every command line the host sent, oldest first, at most [`MEGATEC_LOG_MAX`].
    pub received: Vec<Vec<u8>>,
    test_left: u32,
    line: Vec<u8>,
    overflow: bool,
}

impl Default for Megatec {
    fn default() -> Megatec {
        Megatec::new(UpsState {
            mfr: "PowerSim".into(),
            model: "PS-1000".into(),
            firmware: "V1.2".into(),
            ..UpsState::default()
        })
    }
}

impl Megatec {
    pub fn new(state: UpsState) -> Megatec {
        Megatec {
            state,
            beeper: true,
            testing: false,
            shutdown_pending: false,
            test_length: None,
            test_dip: 0.0,
            refuse_tests: false,
            received: Vec::new(),
            test_left: 0,
            line: Vec::with_capacity(MEGATEC_LINE_MAX),
            overflow: false,
        }
    }

    /// Whether the host ever sent a command line starting with `prefix`.
    pub fn received_any(&self, prefix: &[u8]) -> bool {
        self.received.iter().any(|c| c.starts_with(prefix))
    }

    fn start_test(&mut self, cmd: &[u8]) -> Vec<u8> {
        if self.refuse_tests {
            let mut echo = cmd.to_vec();
            echo.push(b'\r');
            return echo;
        }
        self.testing = true;
        self.test_left = self.test_length.unwrap_or(0);
        Vec::new()
    }

    /// The answer to one command (without its CR).
    fn answer(&mut self, cmd: &[u8]) -> Vec<u8> {
        if self.received.len() == MEGATEC_LOG_MAX {
            self.received.remove(0);
        }
        self.received.push(cmd.to_vec());
        match cmd {
            b"Q1" => {
                let status = self.status().into_bytes();
                if self.testing && self.test_length.is_some() {
                    self.test_left = self.test_left.saturating_sub(1);
                    if self.test_left == 0 {
                        self.testing = false;
                    }
                }
                status
            }
            b"F" => self.ratings().into_bytes(),
            b"I" => self.info().into_bytes(),
            b"Q" => {
                self.beeper = !self.beeper;
                Vec::new()
            }
            b"T" | b"TL" => self.start_test(cmd),
            b"CT" => {
                self.testing = false;
                Vec::new()
            }
            b"C" => {
                self.shutdown_pending = false;
                Vec::new()
            }
            [b'T', a, b] if a.is_ascii_digit() && b.is_ascii_digit() => self.start_test(cmd),
            [b'S', rest @ ..] if is_shutdown_args(rest) => {
                self.shutdown_pending = true;
                Vec::new()
            }
            _ => {
                let mut echo = cmd.to_vec();
                echo.push(b'\r');
                echo
            }
        }
    }

    /// `Q1`: 46 characters and a CR, always, whatever the values.
    pub fn status(&self) -> String {
        let s = &self.state;
        let bits = [
            s.power == Power::Battery, // b7 utility fail
            s.low_battery,             // b6 battery low
            false,                     // b5 bypass/boost active
            false,                     // b4 UPS failed
            true,                      // b3 line-interactive (standby) type
            self.testing,              // b2 test in progress
            self.shutdown_pending,     // b1 shutdown active
            self.beeper,               // b0 beeper on
        ];
        let bits: String = bits.iter().map(|&b| if b { '1' } else { '0' }).collect();
        let battery = if self.testing && self.test_dip > 0.0 {
            UpsState {
                charge: s.charge - self.test_dip,
                ..s.clone()
            }
            .battery_voltage()
        } else {
            s.battery_voltage()
        };
        // The battery field is S.SS (per cell) or SS.S (whole battery), four characters.
        let battery = if battery < 10.0 {
            fixed(battery, 4, 2)
        } else {
            fixed(battery, 4, 1)
        };
        format!(
            "({} {} {} {} {} {} {} {bits}\r",
            fixed(s.input_voltage, 5, 1),
            fixed(s.input_voltage, 5, 1),
            fixed(s.output_voltage, 5, 1),
            fixed(s.load.round(), 3, 0),
            fixed(s.input_frequency, 4, 1),
            battery,
            fixed(s.temperature, 4, 1),
        )
    }

    /// `F`: 21 characters and a CR.
    pub fn ratings(&self) -> String {
        let s = &self.state;
        format!(
            "#{} {} {} {}\r",
            fixed(s.input_voltage_nominal, 5, 1),
            fixed(4.0, 3, 0),
            fixed(s.battery_nominal, 5, 1),
            fixed(s.input_frequency_nominal, 4, 1),
        )
    }

    /// `I`: 38 characters and a CR.
    pub fn info(&self) -> String {
        let s = &self.state;
        format!(
            "#{} {} {}\r",
            padded(&s.mfr, 15),
            padded(&s.model, 10),
            padded(&s.firmware, 10)
        )
    }
}

fn is_shutdown_args(rest: &[u8]) -> bool {
    let (delay, restore) = rest.split_at(rest.len().min(2));
    let delay_ok = delay.len() == 2 && delay.iter().all(|c| c.is_ascii_digit() || *c == b'.');
    let restore_ok = restore.is_empty()
        || (restore.len() == 5
            && restore[0] == b'R'
            && restore[1..].iter().all(u8::is_ascii_digit));
    delay_ok && restore_ok
}

impl Dialogue for Megatec {
    fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in input {
            match b {
                b'\r' => {
                    if !self.overflow {
                        let line = std::mem::take(&mut self.line);
                        out.extend(self.answer(&line));
                        self.line = line;
                    }
                    self.line.clear();
                    self.overflow = false;
                }
                b'\n' => {}
                _ if self.line.len() == MEGATEC_LINE_MAX => self.overflow = true,
                _ if !self.overflow => self.line.push(b),
                _ => {}
            }
        }
        out
    }

    fn state(&self) -> &UpsState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut UpsState {
        &mut self.state
    }
}

// ---------------------------------------------------------------------------------------------
// APC Smart

/// The variables this UPS answers (besides `a`, `Y`, `R`, `Q` and `-`), listed in its `a`
/// command set; each comes from `apcsmart_tabs.c`.
const APC_VARIABLES: &[u8] = b"\x01\x1a9BCFLOPXbcefgjlmnouxy";
/// The instant commands it accepts, answering `OK`: front panel test, calibration, simulated
/// power failure, self test.
const APC_COMMANDS: &[u8] = b"ADUW";
/// Alerts it may send on its own, listed in its `a` command set.
const APC_ALERTS: &str = "!$%+?=#|";
/// `e` (battery.charge.restart) is an enumerated setting; `^Z` lists its values.
const APC_RESTART_CHARGES: [&str; 4] = ["00", "15", "30", "90"];
/// Editable strings (`c` ups.id, `x` battery.date) are 8 characters.
const APC_STRLEN: usize = 8;

/// An APC Smart-UPS speaking the Smart protocol: single-character commands, answers ending in
/// CR LF. It answers nothing until the host sends `Y` (it answers `SM`), and `R` (answer `BYE`)
/// puts it back into that dumb mode. In smart mode an unknown command gets `NA`.
///
/// | host | UPS |
/// | --- | --- |
/// | `Q` | status flags in hex: 08 on line, 10 on battery, 40 low battery, 80 replace battery, 20 overload, 01 calibration |
/// | `^A` `n` `b` `m` | model, serial, firmware (locale `I` last), manufacturing date |
/// | `B` `f` `L` `O` `P` `C` `F` | battery voltage, charge %, input and output voltage, load %, temperature, frequency |
/// | `j` | runtime in minutes, as `0045:` |
/// | `9` `g` `o` `l` `u` `X` `y` | line quality, nominal battery voltage, nominal output voltage, transfer points, self-test result, copyright |
/// | `e` | restart charge, an enumerated setting: `-` after it moves to the next value (`OK`) |
/// | `c` `x` | ups.id and battery.date, 8-character strings: `-` after one, then 8 characters (CR padded), sets it (`OK`) |
/// | `a` | `3.!$%+?=#|.` and every command above |
/// | `^Z` | capabilities: `#` and the values of `e` |
/// | `A` `D` `U` `W` | `OK` |
///
/// On its own it sends `!` when the mains fail, `$` when they return, `%` and `+` when the
/// battery turns low and recovers, `#` when the battery needs replacing.
#[derive(Clone, Debug)]
pub struct ApcSmart {
    pub state: UpsState,
    /// `c`
    pub ups_id: String,
    /// `x`
    pub battery_date: String,
    pub calibrating: bool,
    smart: bool,
    restart_charge: usize,
    self_test: &'static str,
    last_var: Option<u8>,
    /// After `-` following `c` or `x`: the variable and the characters so far.
    pending_string: Option<(u8, Vec<u8>)>,
    /// What the last alerts told the host: (power, low battery, replace battery).
    announced: (Power, bool, bool),
}

impl Default for ApcSmart {
    fn default() -> ApcSmart {
        ApcSmart::new(UpsState {
            battery_nominal: 24.0,
            mfr: "APC".into(),
            model: "Smart-UPS 1500".into(),
            serial: "AS1234567890".into(),
            firmware: "601.3.I".into(),
            ..UpsState::default()
        })
    }
}

impl ApcSmart {
    pub fn new(state: UpsState) -> ApcSmart {
        let announced = (state.power, state.low_battery, state.replace_battery);
        ApcSmart {
            state,
            ups_id: "UPS_IDEN".into(),
            battery_date: "01/15/19".into(),
            calibrating: false,
            smart: false,
            restart_charge: 0,
            self_test: "NO",
            last_var: None,
            pending_string: None,
            announced,
        }
    }

    /// Whether the UPS is in smart mode (after `Y`, before `R`).
    pub fn is_smart(&self) -> bool {
        self.smart
    }

    /// `e`: the battery charge needed to restart after a shutdown, percent.
    pub fn restart_charge(&self) -> &'static str {
        APC_RESTART_CHARGES[self.restart_charge]
    }

    /// `Q`'s flags.
    pub fn status_flags(&self) -> u8 {
        let s = &self.state;
        let mut flags = 0u8;
        if self.calibrating {
            flags |= 0x01;
        }
        flags |= match s.power {
            Power::Line => 0x08,
            Power::Battery => 0x10,
        };
        if s.load > 100.0 {
            flags |= 0x20;
        }
        if s.low_battery {
            flags |= 0x40;
        }
        if s.replace_battery {
            flags |= 0x80;
        }
        flags
    }

    /// The `a` answer: protocol version, alerts, commands.
    pub fn command_set() -> String {
        let mut cmds: Vec<u8> = b"-QRYa".to_vec();
        cmds.extend_from_slice(APC_VARIABLES);
        cmds.extend_from_slice(APC_COMMANDS);
        cmds.sort_unstable();
        format!("3.{APC_ALERTS}.{}", String::from_utf8_lossy(&cmds))
    }

    /// The value of a variable, or `None` if this UPS has no such variable.
    fn variable(&self, cmd: u8) -> Option<String> {
        let s = &self.state;
        let v = match cmd {
            0x01 => field_text(&s.model, 32),
            0x1a => format!(
                "#e4{}{}{}",
                APC_RESTART_CHARGES.len(),
                APC_RESTART_CHARGES[0].len(),
                APC_RESTART_CHARGES.concat()
            ),
            b'9' => match s.power {
                Power::Line => "FF".into(),
                Power::Battery => "00".into(),
            },
            b'B' => fixed(s.battery_voltage(), 5, 2),
            b'C' => fixed(s.temperature, 5, 1),
            b'F' => fixed(s.input_frequency, 5, 2),
            b'L' => fixed(s.input_voltage, 5, 1),
            b'O' => fixed(s.output_voltage, 5, 1),
            b'P' => fixed(s.load, 5, 1),
            b'X' => self.self_test.into(),
            b'b' => field_text(&s.firmware, 16),
            b'c' => field_text(&self.ups_id, APC_STRLEN),
            b'e' => APC_RESTART_CHARGES[self.restart_charge].into(),
            b'f' => fixed(s.charge, 5, 1),
            b'g' => fixed(s.battery_nominal, 3, 0),
            b'j' => format!("{}:", fixed(f64::from(s.runtime_minutes), 4, 0)),
            b'l' => "196".into(),
            b'm' => "01/15/19".into(),
            b'n' => field_text(&s.serial, 16),
            b'o' => fixed(s.input_voltage_nominal, 3, 0),
            b'u' => "253".into(),
            b'x' => field_text(&self.battery_date, APC_STRLEN),
            b'y' => "(C) APCC".into(),
            _ => return None,
        };
        Some(v)
    }

    /// The answer to one command byte in smart mode, without its CR LF; `None` for none.
    fn answer(&mut self, cmd: u8) -> Option<String> {
        let last_var = self.last_var.take();
        let answer = match cmd {
            b'Y' => "SM".into(),
            b'R' => {
                self.smart = false;
                "BYE".into()
            }
            b'Q' => format!("{:02X}", self.status_flags()),
            b'a' => ApcSmart::command_set(),
            b'-' => match last_var {
                Some(var @ (b'c' | b'x')) => {
                    self.pending_string = Some((var, Vec::with_capacity(APC_STRLEN)));
                    return None;
                }
                Some(b'e') => {
                    self.restart_charge = (self.restart_charge + 1) % APC_RESTART_CHARGES.len();
                    self.last_var = Some(b'e');
                    "OK".into()
                }
                _ => "NO".into(),
            },
            b'A' | b'U' => "OK".into(),
            b'D' => {
                self.calibrating = !self.calibrating;
                "OK".into()
            }
            b'W' => {
                self.self_test = "OK";
                "OK".into()
            }
            _ => match self.variable(cmd) {
                Some(v) => {
                    self.last_var = Some(cmd);
                    v
                }
                None => "NA".into(),
            },
        };
        Some(answer)
    }

    fn set_string(&mut self, var: u8, raw: &[u8]) {
        let value: String = raw
            .iter()
            .filter(|&&c| c != b'\r')
            .map(|&c| char::from(c))
            .collect();
        match var {
            b'c' => self.ups_id = value,
            _ => self.battery_date = value,
        }
    }
}

impl Dialogue for ApcSmart {
    fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in input {
            if let Some((var, mut value)) = self.pending_string.take() {
                value.push(b);
                if value.len() == APC_STRLEN {
                    self.set_string(var, &value);
                    out.extend_from_slice(b"OK\r\n");
                } else {
                    self.pending_string = Some((var, value));
                }
                continue;
            }
            if !self.smart {
                if b == b'Y' {
                    self.smart = true;
                    self.announced = (
                        self.state.power,
                        self.state.low_battery,
                        self.state.replace_battery,
                    );
                    out.extend_from_slice(b"SM\r\n");
                }
                continue;
            }
            if let Some(answer) = self.answer(b) {
                out.extend_from_slice(answer.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    fn unsolicited(&mut self) -> Vec<u8> {
        if !self.smart {
            return Vec::new();
        }
        let s = &self.state;
        let (power, low, replace) = self.announced;
        let mut out = Vec::new();
        if s.power != power {
            out.push(match s.power {
                Power::Battery => b'!',
                Power::Line => b'$',
            });
        }
        if s.low_battery != low {
            out.push(if s.low_battery { b'%' } else { b'+' });
        }
        if s.replace_battery && !replace {
            out.push(b'#');
        }
        self.announced = (s.power, s.low_battery, s.replace_battery);
        out
    }

    fn state(&self) -> &UpsState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut UpsState {
        &mut self.state
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting: fixed-width fields that keep their width whatever the value.

fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        lo
    } else {
        v.clamp(lo, hi)
    }
}

/// `v` zero-padded to `width` characters with `decimals` decimals, clamped to what fits.
fn fixed(v: f64, width: usize, decimals: usize) -> String {
    let int_digits = if decimals == 0 {
        width
    } else {
        width - decimals - 1
    };
    let max = 10f64.powi(int_digits as i32) - 10f64.powi(-(decimals as i32));
    format!("{:0width$.decimals$}", clamp(v, 0.0, max))
}

/// `s` as printable ASCII, cut or space-padded to exactly `width` characters.
fn padded(s: &str, width: usize) -> String {
    let mut t = field_text(s, width);
    while t.len() < width {
        t.push(' ');
    }
    t
}

/// `s` as printable ASCII without the characters that end or split a Smart protocol line, at
/// most `max` characters.
fn field_text(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .map(|c| if c == '*' { '?' } else { c })
        .take(max)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Runners

fn lock<S>(sim: &Mutex<S>) -> MutexGuard<'_, S> {
    sim.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `sim` over `io` until `stop` is set, the peer closes (a read of 0 bytes), or an I/O
/// error. A read that times out (`WouldBlock` or `TimedOut`) is when alerts go out and `stop` is
/// looked at: give a socket a read timeout (e.g. [`TICK`]) so that happens while the host is
/// silent.
pub fn serve<S: Dialogue, T: Read + Write>(
    sim: &Mutex<S>,
    io: &mut T,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        let alerts = lock(sim).unsolicited();
        if !alerts.is_empty() {
            io.write_all(&alerts)?;
            io.flush()?;
        }
        match io.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let answer = lock(sim).feed(&buf[..n]);
                if !answer.is_empty() {
                    io.write_all(&answer)?;
                    io.flush()?;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A serving thread with its stop flag; dropping it stops and joins the thread.
struct Server<S> {
    sim: Arc<Mutex<S>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<S> Server<S> {
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S: Send + 'static> Server<S> {
    fn spawn(
        name: &str,
        sim: S,
        body: impl FnOnce(&Mutex<S>, &AtomicBool) + Send + 'static,
    ) -> io::Result<Server<S>> {
        let sim = Arc::new(Mutex::new(sim));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&sim), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&s, &st))?;
        Ok(Server {
            sim,
            stop,
            thread: Some(thread),
        })
    }
}

impl<S> Drop for Server<S> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The master side of a pseudo-terminal, for [`serve`]: a read waits at most [`TICK`], and
/// what nobody reads on the slave side is lost once the terminal's buffer is full, as on a
/// serial line (the master is non-blocking, so the simulator never hangs on a silent host).
struct PtyMaster(File);

impl Read for PtyMaster {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let timeout = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => Err(io::ErrorKind::TimedOut.into()),
            Ok(_) => match self.0.read(buf) {
                // EIO: no process has the slave open; ours always does, so only briefly.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    std::thread::sleep(TICK);
                    Err(io::ErrorKind::TimedOut.into())
                }
                r => r,
            },
            Err(nix::errno::Errno::EINTR) => Err(io::ErrorKind::Interrupted.into()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Write for PtyMaster {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(buf.len()),
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A simulated UPS on a pseudo-terminal. NUT drivers open [`PtySim::link`] (or
/// [`PtySim::pts`]) as their `port`.
///
/// The terminal starts raw, so nothing is echoed back to the simulator before a driver opens
/// the port and sets its own mode (on Linux a pty's settings live on the slave; setting them
/// through the master sets the slave's). The simulator keeps the slave open itself, so a driver
/// that closes and reopens the port finds the same terminal and the master never hangs up.
pub struct PtySim<S: Dialogue + Send + 'static> {
    server: Server<S>,
    pts: PathBuf,
    link: PathBuf,
    /// The temp dir made for the link by [`PtySim::start`], removed on drop.
    own_dir: Option<PathBuf>,
    slave: Option<std::os::fd::OwnedFd>,
}

impl<S: Dialogue + Send + 'static> PtySim<S> {
    /// Serves `sim` on a new pseudo-terminal, linked as `ttyUPS` in a new temp dir.
    pub fn start(sim: S) -> io::Result<PtySim<S>> {
        let dir = std::env::temp_dir().join(format!(
            "ps-sim-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let mut pty = PtySim::start_at(sim, &dir.join("ttyUPS"))?;
        pty.own_dir = Some(dir);
        Ok(pty)
    }

    /// Serves `sim` on a new pseudo-terminal, with a symlink to its slave at `link` (replacing
    /// what is there).
    pub fn start_at(sim: S, link: &Path) -> io::Result<PtySim<S>> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        use std::os::fd::AsRawFd;

        let pty = nix::pty::openpty(
            None::<&nix::pty::Winsize>,
            None::<&nix::sys::termios::Termios>,
        )?;
        // openpty(3) leaves both ends inheritable: a program the tests start meanwhile would
        // hold the port open (and a careful prober would leave it alone).
        for fd in [pty.master.as_raw_fd(), pty.slave.as_raw_fd()] {
            fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        }
        let mut raw = tcgetattr(&pty.master)?;
        cfmakeraw(&mut raw);
        tcsetattr(&pty.master, SetArg::TCSANOW, &raw)?;
        let flags = OFlag::from_bits_truncate(fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            pty.master.as_raw_fd(),
            FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
        )?;
        let pts = nix::unistd::ttyname(&pty.slave)?;
        let _ = fs::remove_file(link);
        std::os::unix::fs::symlink(&pts, link)?;

        let mut master = PtyMaster(File::from(pty.master));
        let server = Server::spawn("ups-sim-pty", sim, move |sim, stop| {
            let _ = serve(sim, &mut master, stop);
        })?;
        Ok(PtySim {
            server,
            pts,
            link: link.to_path_buf(),
            own_dir: None,
            slave: Some(pty.slave),
        })
    }

    /// Closes the simulator's own hold on the slave, so that, as on a real serial port, no
    /// process has it open until a program opens it (the terminal's settings stay).
    pub fn release(&mut self) {
        self.slave = None;
    }

    /// The slave device, e.g. `/dev/pts/7`.
    pub fn pts(&self) -> &Path {
        &self.pts
    }

    /// The symlink to the slave device.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The shared simulator, for changes from any thread.
    pub fn handle(&self) -> Arc<Mutex<S>> {
        Arc::clone(&self.server.sim)
    }

    /// Runs `f` on the simulator, between two of its answers.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut lock(&self.server.sim))
    }

    /// Changes the UPS's state, e.g. `pty.set(|s| s.power = Power::Battery)`.
    pub fn set(&self, f: impl FnOnce(&mut UpsState)) {
        f(lock(&self.server.sim).state_mut())
    }
}

impl<S: Dialogue + Send + 'static> Drop for PtySim<S> {
    fn drop(&mut self) {
        self.server.shutdown();
        let _ = fs::remove_file(&self.link);
        if let Some(dir) = &self.own_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A simulated UPS on a Unix stream socket: listens at a path and serves one connection at a
/// time, as a serial port serves one host (QEMU's `-chardev socket,path=…,server=off` connects
/// to it and hands the guest a serial port).
pub struct UnixSim<S: Dialogue + Send + 'static> {
    server: Server<S>,
    path: PathBuf,
}

impl<S: Dialogue + Send + 'static> UnixSim<S> {
    /// Listens at `path` (replacing a stale socket there).
    pub fn listen(sim: S, path: &Path) -> io::Result<UnixSim<S>> {
        let _ = fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let server = Server::spawn("ups-sim-unix", sim, move |sim, stop| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let ok = conn.set_nonblocking(false).is_ok()
                            && conn.set_read_timeout(Some(TICK)).is_ok();
                        if ok {
                            let _ = serve(sim, &mut conn, stop);
                        }
                    }
                    Err(_) => std::thread::sleep(TICK),
                }
            }
        })?;
        Ok(UnixSim {
            server,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The shared simulator, for changes from any thread.
    pub fn handle(&self) -> Arc<Mutex<S>> {
        Arc::clone(&self.server.sim)
    }

    /// Runs `f` on the simulator, between two of its answers.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut lock(&self.server.sim))
    }

    /// Changes the UPS's state.
    pub fn set(&self, f: impl FnOnce(&mut UpsState)) {
        f(lock(&self.server.sim).state_mut())
    }
}

impl<S: Dialogue + Send + 'static> Drop for UnixSim<S> {
    fn drop(&mut self) {
        self.server.shutdown();
        let _ = fs::remove_file(&self.path);
    }
}
