//! The serial dialogues that identify a UPS: APC Smart (`Y` → `SM`) and Megatec/Q1 (`Q1` →
//! `(230.0 ...`), as sans-I/O state machines. The caller writes what a step asks to send,
//! feeds what the port answers, and calls [`Dialogue::timeout`] when a step's time is up.
//!
//! Only read-only requests are sent: APC's `Y` (smart mode), `^A` (model), `n` (serial), `b`
//! (firmware); Megatec's `Q1` (status) and `I` (information). Nothing that tests, switches or
//! shuts down a UPS.

use std::time::Duration;

/// Replies longer than this are not a UPS we know.
const MAX_REPLY: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    ApcSmart,
    Megatec,
}

impl Protocol {
    /// In the order they are tried: APC's one-byte `Y` is harmless to a Megatec UPS (which
    /// waits for a carriage return), while Megatec's `Q1` would ask an APC UPS for two things.
    pub const ALL: [Protocol; 2] = [Protocol::ApcSmart, Protocol::Megatec];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::ApcSmart => "apcsmart",
            Protocol::Megatec => "megatec",
        }
    }

    /// The NUT drivers that speak it, preferred first.
    pub fn drivers(self) -> &'static [&'static str] {
        match self {
            Protocol::ApcSmart => &["apcsmart"],
            Protocol::Megatec => &["nutdrv_qx", "blazer_ser"],
        }
    }

    /// What ups.conf needs beyond driver and port for this protocol.
    pub fn extra_settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Protocol::ApcSmart => &[],
            Protocol::Megatec => &[("protocol", "megatec")],
        }
    }
}

/// What a UPS said about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    /// NUT-style status flags from the status reply (`OL`, `OB LB`, ...).
    pub status: Option<String>,
    /// Input voltage from the status reply, for people.
    pub input_voltage: Option<String>,
}

/// What the caller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes, then read; this step may take up to the duration.
    Send(Vec<u8>, Duration),
    /// Keep reading within the current step's time.
    Read,
    /// The dialogue is over: the UPS spoke this protocol, or did not.
    Done(Option<Identity>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    ApcMode,
    ApcModel,
    ApcSerial,
    ApcFirmware,
    MegatecStatus,
    MegatecInfo,
    Over,
}

/// One protocol's conversation with one port.
#[derive(Clone, Debug)]
pub struct Dialogue {
    protocol: Protocol,
    step: Step,
    buf: Vec<u8>,
    found: Identity,
}

const APC_STEP: Duration = Duration::from_millis(600);
const MEGATEC_STEP: Duration = Duration::from_millis(1000);

impl Dialogue {
    /// Starts a dialogue; send the returned bytes first.
    pub fn start(protocol: Protocol) -> (Dialogue, Action) {
        let step = match protocol {
            Protocol::ApcSmart => Step::ApcMode,
            Protocol::Megatec => Step::MegatecStatus,
        };
        let d = Dialogue {
            protocol,
            step,
            buf: Vec::new(),
            found: Identity::default(),
        };
        let action = d.request();
        (d, action)
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn request(&self) -> Action {
        let (bytes, time): (&[u8], Duration) = match self.step {
            Step::ApcMode => (b"Y", APC_STEP),
            Step::ApcModel => (b"\x01", APC_STEP),
            Step::ApcSerial => (b"n", APC_STEP),
            Step::ApcFirmware => (b"b", APC_STEP),
            // A leading CR ends whatever an earlier probe left in the UPS's line buffer.
            Step::MegatecStatus => (b"\rQ1\r", MEGATEC_STEP),
            Step::MegatecInfo => (b"I\r", MEGATEC_STEP),
            Step::Over => return self.done(),
        };
        Action::Send(bytes.to_vec(), time)
    }

    fn done(&self) -> Action {
        let identified = !matches!(self.step, Step::ApcMode | Step::MegatecStatus);
        Action::Done(identified.then(|| self.found.clone()))
    }

    fn advance(&mut self, next: Step) -> Action {
        self.step = next;
        self.buf.clear();
        if next == Step::Over {
            return self.done();
        }
        self.request()
    }

    /// The current step's time ran out. A UPS that answered the first request stays
    /// identified: the later requests only add detail.
    pub fn timeout(&mut self) -> Action {
        let next = match self.step {
            Step::ApcMode | Step::MegatecStatus | Step::Over => {
                let a = self.done();
                self.step = Step::Over;
                return a;
            }
            Step::ApcModel => Step::ApcSerial,
            Step::ApcSerial => Step::ApcFirmware,
            Step::ApcFirmware | Step::MegatecInfo => Step::Over,
        };
        self.advance(next)
    }

    /// Bytes from the port.
    pub fn feed(&mut self, bytes: &[u8]) -> Action {
        if self.step == Step::Over {
            return self.done();
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_REPLY {
            // Endless noise: not a UPS we know, or a later detail we give up on.
            return self.timeout();
        }
        match self.protocol {
            Protocol::ApcSmart => self.feed_apc(),
            Protocol::Megatec => self.feed_megatec(),
        }
    }

    fn feed_apc(&mut self) -> Action {
        // APC ends every reply with CR LF.
        let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
            return Action::Read;
        };
        let line = String::from_utf8_lossy(&self.buf[..end]).trim().to_string();
        let value = (!line.is_empty() && line != "NA").then(|| printable(&line));
        match self.step {
            Step::ApcMode => {
                if line != "SM" {
                    self.step = Step::Over;
                    return Action::Done(None);
                }
                self.found.manufacturer = Some("APC".to_string());
                self.advance(Step::ApcModel)
            }
            Step::ApcModel => {
                self.found.model = value;
                self.advance(Step::ApcSerial)
            }
            Step::ApcSerial => {
                self.found.serial = value;
                self.advance(Step::ApcFirmware)
            }
            Step::ApcFirmware => {
                self.found.firmware = value;
                self.advance(Step::Over)
            }
            _ => self.done(),
        }
    }

    fn feed_megatec(&mut self) -> Action {
        // Megatec ends replies with CR; a UPS may echo what it did not understand first.
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\r') else {
                return Action::Read;
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).to_string();
            match self.step {
                Step::MegatecStatus => {
                    if let Some(q1) = parse_q1(&line) {
                        self.found.status = Some(q1.status);
                        self.found.input_voltage = Some(q1.input_voltage);
                        return self.advance(Step::MegatecInfo);
                    }
                }
                Step::MegatecInfo => {
                    if let Some(rest) = line.strip_prefix('#') {
                        let (mfr, model, fw) = parse_info(rest);
                        self.found.manufacturer = mfr;
                        self.found.model = model;
                        self.found.firmware = fw;
                        return self.advance(Step::Over);
                    }
                }
                _ => return self.done(),
            }
        }
    }
}

/// A Q1 status reply, as far as identification needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Q1 {
    pub input_voltage: String,
    pub status: String,
}

/// `(MMM.M NNN.N PPP.P QQQ RR.R S.SS TT.T b7b6b5b4b3b2b1b0`: eight fields, the last eight
/// status bits. Bit 7 is utility fail (on battery), bit 6 battery low, bit 4 UPS failed, bit 2
/// test in progress; bit 5 (boost or buck) does not say which, so it is left out.
pub fn parse_q1(line: &str) -> Option<Q1> {
    let body = line.strip_prefix('(')?;
    let fields: Vec<&str> = body.split_ascii_whitespace().collect();
    if fields.len() != 8 {
        return None;
    }
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !fields[..7].iter().all(|f| numeric(f)) {
        return None;
    }
    let bits = fields[7].as_bytes();
    if bits.len() != 8 || !bits.iter().all(|b| *b == b'0' || *b == b'1') {
        return None;
    }
    let on = |i: usize| bits[i] == b'1';
    let mut status = vec![if on(0) { "OB" } else { "OL" }];
    if on(1) {
        status.push("LB");
    }
    if on(5) {
        status.push("CAL");
    }
    if on(3) {
        status.push("ALARM");
    }
    Some(Q1 {
        input_voltage: fields[0].to_string(),
        status: status.join(" "),
    })
}

/// `#Company_Name(15) Model(10) Version(10)`, fixed width in the protocol, but trimmed
/// leniently: some firmware pads differently.
fn parse_info(rest: &str) -> (Option<String>, Option<String>, Option<String>) {
    let field = |from: usize, len: usize| -> Option<String> {
        let s: String = rest.chars().skip(from).take(len).collect();
        let s = printable(s.trim());
        (!s.is_empty()).then_some(s)
    };
    if rest.chars().count() >= 37 {
        (field(0, 15), field(16, 10), field(27, 10))
    } else {
        let mut w = rest.split_ascii_whitespace().map(printable);
        (w.next(), w.next(), w.next())
    }
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a dialogue against scripted replies: `replies[i]` answers the i-th request
    /// (`None`: silence until the step's time runs out).
    fn converse(p: Protocol, replies: &[Option<&[u8]>]) -> (Option<Identity>, Vec<Vec<u8>>) {
        let (mut d, mut action) = Dialogue::start(p);
        let mut sent = Vec::new();
        let mut replies = replies.iter();
        loop {
            action = match action {
                Action::Send(bytes, _) => {
                    sent.push(bytes);
                    match replies.next() {
                        Some(Some(r)) => {
                            // Byte by byte, as a slow port delivers them.
                            let mut a = Action::Read;
                            for b in r.iter() {
                                a = d.feed(&[*b]);
                                if a != Action::Read {
                                    break;
                                }
                            }
                            if a == Action::Read {
                                d.timeout()
                            } else {
                                a
                            }
                        }
                        _ => d.timeout(),
                    }
                }
                Action::Read => d.timeout(),
                Action::Done(id) => return (id, sent),
            }
        }
    }

    #[test]
    fn an_apc_smart_ups_tells_model_serial_and_firmware() {
        let (id, sent) = converse(
            Protocol::ApcSmart,
            &[
                Some(b"SM\r\n"),
                Some(b"Smart-UPS 1500\r\n"),
                Some(b"AS0934123456\r\n"),
                Some(b"601.3.I\r\n"),
            ],
        );
        let id = id.unwrap();
        assert_eq!(id.model.as_deref(), Some("Smart-UPS 1500"));
        assert_eq!(id.serial.as_deref(), Some("AS0934123456"));
        assert_eq!(id.firmware.as_deref(), Some("601.3.I"));
        assert_eq!(
            sent,
            vec![
                b"Y".to_vec(),
                b"\x01".to_vec(),
                b"n".to_vec(),
                b"b".to_vec()
            ]
        );
    }

    #[test]
    fn an_apc_ups_that_says_na_or_nothing_to_details_is_still_apc() {
        let (id, _) = converse(
            Protocol::ApcSmart,
            &[Some(b"SM\r\n"), Some(b"NA\r\n"), None],
        );
        let id = id.unwrap();
        assert_eq!(id.manufacturer.as_deref(), Some("APC"));
        assert_eq!((id.model, id.serial), (None, None));
    }

    #[test]
    fn silence_or_other_answers_are_not_apc() {
        assert_eq!(converse(Protocol::ApcSmart, &[None]).0, None);
        assert_eq!(converse(Protocol::ApcSmart, &[Some(b"ERROR\r\n")]).0, None);
        assert_eq!(converse(Protocol::ApcSmart, &[Some(&[b'x'; 300])]).0, None);
    }

    #[test]
    fn a_megatec_ups_tells_its_status_and_information() {
        let (id, sent) = converse(
            Protocol::Megatec,
            &[
                Some(b"Y\r(229.5 140.0 229.5 013 50.0 13.6 25.0 00001001\r"),
                Some(b"#INNO TECH       UPS 1000    V2.10     \r"),
            ],
        );
        let id = id.unwrap();
        assert_eq!(id.status.as_deref(), Some("OL"));
        assert_eq!(id.input_voltage.as_deref(), Some("229.5"));
        assert_eq!(id.manufacturer.as_deref(), Some("INNO TECH"));
        assert_eq!(id.model.as_deref(), Some("UPS 1000"));
        assert_eq!(id.firmware.as_deref(), Some("V2.10"));
        assert_eq!(sent, vec![b"\rQ1\r".to_vec(), b"I\r".to_vec()]);
    }

    #[test]
    fn a_megatec_ups_without_information_is_still_identified() {
        let (id, _) = converse(
            Protocol::Megatec,
            &[
                Some(b"(000.0 000.0 229.5 013 50.0 11.2 25.0 11000000\r"),
                Some(b"I\r"),
            ],
        );
        assert_eq!(id.unwrap().status.as_deref(), Some("OB LB"));
    }

    #[test]
    fn echoes_and_garbage_are_not_megatec() {
        assert_eq!(converse(Protocol::Megatec, &[Some(b"\rQ1\r")]).0, None);
        assert_eq!(converse(Protocol::Megatec, &[Some(b"(1 2 3\r")]).0, None);
        assert_eq!(converse(Protocol::Megatec, &[None]).0, None);
    }

    #[test]
    fn q1_fields_are_checked() {
        assert!(parse_q1("(229.5 140.0 229.5 013 50.0 13.6 25.0 00001001").is_some());
        assert!(parse_q1("(229.5 140.0 229.5 013 50.0 13.6 25.0 0000100").is_none());
        assert!(parse_q1("(229.5 140.0 229.5 O13 50.0 13.6 25.0 00001001").is_none());
        assert!(parse_q1("229.5 140.0 229.5 013 50.0 13.6 25.0 00001001").is_none());
    }
}
