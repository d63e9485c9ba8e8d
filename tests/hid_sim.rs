//! The simulated USB HID UPS's sans-I/O part (tests/common/hid_sim.rs): its descriptors parse
//! into the fields NUT's subdrivers read, and the reports it builds from the state read back,
//! the way NUT's libhid.c reads them, as the state's values.

#[allow(dead_code)]
#[path = "common/sim.rs"]
mod sim;

#[allow(dead_code)]
#[path = "common/hid_sim.rs"]
mod hid_sim;

use hid_sim::{control, nut_path, parse, Command, Device, Field, Kind, PERSONALITIES};
use sim::Power;

/// The field of a usage in a collection (by the collection's usage), of a kind.
fn field(d: &Device, kind: Kind, usage: (u16, u16), within: Option<(u16, u16)>) -> &Field {
    d.fields
        .iter()
        .find(|f| f.kind == kind && f.usage == usage && within.is_none_or(|c| f.path.contains(&c)))
        .unwrap_or_else(|| {
            panic!(
                "{}: no {kind:?} field {usage:x?} in {within:x?}",
                d.personality.name
            )
        })
}

fn read(d: &Device, f: &Field) -> f64 {
    let report = d
        .report(f.kind, f.report_id)
        .expect("the field's report exists");
    assert_eq!(report[0], f.report_id, "the report starts with its ID");
    Device::read_back(f, &report)
}

const UPS: (u16, u16) = (0x84, 0x04);
const INPUT: (u16, u16) = (0x84, 0x1a);
const REMAINING_CAPACITY: (u16, u16) = (0x85, 0x66);
const RUNTIME_TO_EMPTY: (u16, u16) = (0x85, 0x68);
const AC_PRESENT: (u16, u16) = (0x85, 0xd0);
const DISCHARGING: (u16, u16) = (0x85, 0x45);
const BELOW_CAPACITY_LIMIT: (u16, u16) = (0x85, 0x42);
const VOLTAGE: (u16, u16) = (0x84, 0x30);

#[test]
fn every_personality_is_a_ups_with_the_fields_nut_reads() {
    for p in PERSONALITIES {
        let d = Device::new(p).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        assert!(
            !p.source.is_empty(),
            "{}: the capture it follows is named",
            p.name
        );
        assert!(
            d.fields.iter().all(|f| f.path.first() == Some(&UPS)),
            "{}: one UPS collection",
            p.name
        );
        for usage in [
            REMAINING_CAPACITY,
            RUNTIME_TO_EMPTY,
            AC_PRESENT,
            DISCHARGING,
            BELOW_CAPACITY_LIMIT,
        ] {
            field(&d, Kind::Feature, usage, None);
        }
        field(&d, Kind::Feature, VOLTAGE, Some(INPUT));
        assert!(
            !d.report_ids(Kind::Input).is_empty(),
            "{}: interrupt-in reports",
            p.name
        );
        let hid = d.hid_descriptor();
        assert_eq!(
            usize::from(u16::from_le_bytes([hid[7], hid[8]])),
            p.descriptor.len()
        );
    }
}

#[test]
fn cyberpower_cst135_layout_is_the_captured_one() {
    let d = Device::new(hid_sim::personality("cyberpower-cst135").unwrap()).unwrap();
    assert_eq!(d.personality.descriptor.len(), 726);
    // As NUT's cps-hid reads a CyberPower (and the ESPHome component's test asserts): charge
    // and runtime in input report 8, the status bits in 11, input voltage in feature 15.
    let charge = field(&d, Kind::Input, REMAINING_CAPACITY, None);
    assert_eq!((charge.report_id, charge.offset, charge.size), (0x08, 0, 8));
    let runtime = field(&d, Kind::Input, RUNTIME_TO_EMPTY, None);
    assert_eq!(
        (runtime.report_id, runtime.offset, runtime.size),
        (0x08, 8, 16)
    );
    let discharging = field(&d, Kind::Input, DISCHARGING, None);
    assert_eq!((discharging.report_id, discharging.offset), (0x0b, 2));
    let input = field(&d, Kind::Feature, VOLTAGE, Some(INPUT));
    assert_eq!((input.report_id, input.size), (0x0f, 16));
    assert_eq!(d.report_len(Kind::Feature, 0x0b), Some(2));
    assert_eq!(
        d.report(Kind::Feature, 0x77),
        None,
        "no such report: a stall"
    );
}

/// Control lines, then what NUT must read: on line, low battery, charge, runtime (s), input V.
type Step = (&'static [&'static str], bool, bool, f64, f64, f64);

/// The image test's walk: OL, OB, OB LB, OL.
const OL_OB_LB_OL: &[Step] = &[
    (
        &["status OL", "charge 100", "runtime 45", "input 121"],
        true,
        false,
        100.0,
        2700.0,
        121.0,
    ),
    (
        &["status OB", "charge 60", "runtime 20", "input 0"],
        false,
        false,
        60.0,
        1200.0,
        0.0,
    ),
    (
        &["status OB LB", "charge 8", "runtime 2"],
        false,
        true,
        8.0,
        120.0,
        0.0,
    ),
    (
        &["status OL", "charge 30", "runtime 10", "input 119"],
        true,
        false,
        30.0,
        600.0,
        119.0,
    ),
];

#[test]
fn reports_follow_the_state_through_ol_ob_lb_ol() {
    for p in PERSONALITIES {
        let mut d = Device::new(p).unwrap();
        for (lines, line, low, charge, runtime, input) in OL_OB_LB_OL {
            for l in *lines {
                assert_eq!(control(l, &mut d.state), Ok(Command::Changed), "{l}");
            }
            assert_eq!(d.state.power == Power::Line, *line);
            for kind in [Kind::Feature, Kind::Input] {
                let name = p.name;
                assert_eq!(
                    read(&d, field(&d, kind, AC_PRESENT, None)),
                    f64::from(u8::from(*line)),
                    "{name} {lines:?}"
                );
                assert_eq!(
                    read(&d, field(&d, kind, DISCHARGING, None)),
                    f64::from(u8::from(!line)),
                    "{name} {lines:?}"
                );
                assert_eq!(
                    read(&d, field(&d, kind, BELOW_CAPACITY_LIMIT, None)),
                    f64::from(u8::from(*low)),
                    "{name}"
                );
                assert_eq!(
                    read(&d, field(&d, kind, REMAINING_CAPACITY, None)),
                    *charge,
                    "{name} {lines:?}"
                );
                assert_eq!(
                    read(&d, field(&d, kind, RUNTIME_TO_EMPTY, None)),
                    *runtime,
                    "{name} {lines:?}"
                );
            }
            let v = read(&d, field(&d, Kind::Feature, VOLTAGE, Some(INPUT)));
            assert!(
                (v - input).abs() < 0.5,
                "{}: input voltage {v}, want {input}",
                p.name
            );
        }
        // The interrupt-in reports are the input reports, each with its ID.
        let ids = d.report_ids(Kind::Input);
        let sent: Vec<u8> = d.input_reports().iter().map(|r| r[0]).collect();
        assert_eq!(sent, ids);
    }
}

#[test]
fn set_report_is_kept_for_what_the_state_does_not_drive() {
    let mut d = Device::new(hid_sim::personality("cyberpower-cst135").unwrap()).unwrap();
    // Report 0x15: DelayBeforeShutdown, 16 bits, in minutes: -1 until the host sets one (as
    // NUT does for `shutdown.return`), then what it set.
    let delay = field(&d, Kind::Feature, (0x84, 0x57), None).clone();
    assert_eq!(d.report(Kind::Feature, 0x15), Some(vec![0x15, 0xff, 0xff]));
    assert!(d.set_report(Kind::Feature, 0x15, &[0x15, 0x02, 0x00]));
    assert_eq!(d.report(Kind::Feature, 0x15), Some(vec![0x15, 0x02, 0x00]));
    assert_eq!(
        Device::read_back(&delay, &d.report(Kind::Feature, 0x15).unwrap()),
        120.0
    );
    // A value the state drives wins over what the host wrote.
    assert!(d.set_report(Kind::Feature, 0x08, &[0x08, 0x05]));
    assert_eq!(d.report(Kind::Feature, 0x08).unwrap()[1], 100);
    assert!(
        !d.set_report(Kind::Feature, 0x77, &[0x77, 1]),
        "no such report"
    );
}

#[test]
fn control_lines_are_checked() {
    let mut state = sim::UpsState::default();
    for p in PERSONALITIES {
        assert_eq!(
            control(&format!("plug {}", p.name), &mut state),
            Ok(Command::Plug {
                name: p.name.into(),
                serial: true
            })
        );
    }
    assert_eq!(
        control("plug apc no-serial", &mut state),
        Ok(Command::Plug {
            name: "apc".into(),
            serial: false
        })
    );
    assert!(control("plug apc twice", &mut state)
        .unwrap_err()
        .contains("no-serial"));
    assert!(control("plug nosuch", &mut state)
        .unwrap_err()
        .contains("unknown personality"));
    assert_eq!(control("unplug", &mut state), Ok(Command::Unplug));
    assert_eq!(control("replug", &mut state), Ok(Command::Replug));
    assert!(control("status OX", &mut state).is_err());
    assert!(control("status", &mut state).is_err());
    assert!(control("charge x", &mut state)
        .unwrap_err()
        .contains("not a number"));
    assert!(control("charge -3", &mut state)
        .unwrap_err()
        .contains("out of range"));
    assert!(control("charge NaN", &mut state).is_err());
    assert!(control("frobnicate", &mut state)
        .unwrap_err()
        .contains("unknown command"));
    assert_eq!(control("status OB LB", &mut state), Ok(Command::Changed));
    assert!(state.power == Power::Battery && state.low_battery);
}

#[test]
fn bad_descriptors_are_errors_not_panics() {
    assert!(parse(&[0x05]).is_err(), "an item cut short");
    assert!(
        parse(&[0xc0]).is_err(),
        "End Collection without a collection"
    );
    assert!(parse(&[0xb4]).is_err(), "Pop without Push");
    assert!(parse(&[0xa4; 9]).is_err(), "Push nested too deep");
    assert!(parse(&[0xfe]).is_err(), "a long item without its size");
    // Every truncation and a byte flipped anywhere: an error or fields, never a panic.
    for p in PERSONALITIES {
        let desc = p.descriptor;
        for n in 0..desc.len() {
            let _ = parse(&desc[..n]);
            let mut d = desc.to_vec();
            d[n] ^= 0xff;
            let _ = parse(&d);
        }
    }
}

/// What a capture shows of a personality: the HID descriptor's 9 bytes, and NUT's
/// `Path: ..., ReportID: .., Offset: .., Size: ..` of some fields (Feature) with the report
/// bytes it read and the value it computed from them.
struct Capture {
    name: &'static str,
    hid: [u8; 9],
    fields: &'static [(&'static str, u8, u32, u32)],
    values: &'static [(&'static str, &'static [u8], f64)],
}

const CAPTURES: &[Capture] = &[
    Capture {
        name: "apc",
        hid: [0x09, 0x21, 0x00, 0x01, 0x21, 0x01, 0x22, 0x19, 0x04],
        fields: &[
            ("UPS.PowerSummary.APCStatusFlag", 0x06, 16, 8),
            ("UPS.PowerSummary.RemainingCapacity", 0x0c, 0, 8),
            ("UPS.PowerSummary.RunTimeToEmpty", 0x0c, 8, 16),
            ("UPS.PowerSummary.ACPresent", 0x13, 0, 8),
            ("UPS.PowerSummary.ShutdownImminent", 0x14, 8, 8),
            ("UPS.PowerSummary.PresentStatus.ACPresent", 0x16, 2, 1),
            (
                "UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit",
                0x16,
                4,
                1,
            ),
            ("UPS.Battery.RunTimeToEmpty", 0x23, 0, 16),
            ("UPS.Input.Voltage", 0x31, 0, 16),
        ],
        values: &[
            (
                "UPS.PowerSummary.RemainingCapacity",
                &[0x0c, 0x64, 0x64, 0x03],
                100.0,
            ),
            (
                "UPS.PowerSummary.RunTimeToEmpty",
                &[0x0c, 0x64, 0x64, 0x03],
                868.0,
            ),
            ("UPS.Input.Voltage", &[0x31, 0xe4, 0x00], 228.0),
            (
                "UPS.PowerSummary.APCStatusFlag",
                &[0x06, 0x00, 0x00, 0x08],
                8.0,
            ),
        ],
    },
    Capture {
        name: "eaton",
        hid: [0x09, 0x21, 0x10, 0x01, 0x21, 0x01, 0x22, 0x02, 0x06],
        fields: &[
            ("UPS.PowerSummary.PresentStatus.ACPresent", 0x01, 0, 8),
            ("UPS.PowerSummary.PresentStatus.Discharging", 0x01, 24, 8),
            ("UPS.PowerSummary.PresentStatus.Good", 0x01, 32, 8),
            ("UPS.PowerSummary.RemainingCapacity", 0x06, 0, 8),
            ("UPS.PowerSummary.RunTimeToEmpty", 0x06, 8, 32),
            ("UPS.BatterySystem.Charger.Mode", 0x26, 8, 8),
            ("UPS.PowerConverter.Input.[1].Voltage", 0x31, 32, 16),
            (
                "UPS.PowerConverter.Input.[1].PresentStatus.Used",
                0x32,
                32,
                8,
            ),
            (
                "UPS.PowerConverter.Input.[3].PresentStatus.Used",
                0x3b,
                0,
                8,
            ),
        ],
        values: &[
            (
                "UPS.PowerSummary.RemainingCapacity",
                &[0x06, 0x64, 0xec, 0x06, 0x00, 0x00],
                100.0,
            ),
            (
                "UPS.PowerSummary.RunTimeToEmpty",
                &[0x06, 0x64, 0xec, 0x06, 0x00, 0x00],
                1772.0,
            ),
            (
                "UPS.PowerConverter.Input.[1].Voltage",
                &[0x31, 0x00, 0x00, 0xf3, 0x01, 0xf2, 0x08],
                229.0,
            ),
        ],
    },
    Capture {
        name: "cyberpower",
        hid: [0x09, 0x21, 0x10, 0x01, 0x21, 0x01, 0x22, 0xfe, 0x01],
        fields: &[
            ("UPS.PowerSummary.RemainingCapacity", 0x08, 0, 8),
            ("UPS.PowerSummary.RunTimeToEmpty", 0x08, 8, 16),
            ("UPS.PowerSummary.PresentStatus.ACPresent", 0x0b, 0, 1),
            ("UPS.PowerSummary.PresentStatus.Discharging", 0x0b, 2, 1),
            ("UPS.PowerSummary.PresentStatus.FullyCharged", 0x0b, 4, 1),
            ("UPS.Input.Voltage", 0x0f, 0, 16),
        ],
        values: &[
            (
                "UPS.PowerSummary.RemainingCapacity",
                &[0x08, 0x64, 0x27, 0x09, 0x2c, 0x01],
                100.0,
            ),
            (
                "UPS.PowerSummary.RunTimeToEmpty",
                &[0x08, 0x64, 0x27, 0x09, 0x2c, 0x01],
                2343.0,
            ),
            ("UPS.Input.Voltage", &[0x0f, 0x76, 0x00], 118.0),
        ],
    },
];

/// The feature field NUT reads for a path (NUT asks GET_REPORT for feature reports only).
fn feature<'a>(d: &'a Device, path: &str) -> &'a Field {
    d.fields
        .iter()
        .find(|f| f.kind == Kind::Feature && nut_path(f) == path)
        .unwrap_or_else(|| panic!("{}: no feature field {path}", d.personality.name))
}

#[test]
fn descriptors_are_laid_out_as_nut_read_the_captured_units() {
    for c in CAPTURES {
        let p = hid_sim::personality(c.name).unwrap();
        let d = Device::new(p).unwrap();
        assert_eq!(d.hid_descriptor(), c.hid, "{}: the HID descriptor", c.name);
        for &(path, id, offset, size) in c.fields {
            let f = feature(&d, path);
            assert_eq!(
                (f.report_id, f.offset, f.size),
                (id, offset, size),
                "{path}"
            );
        }
        for &(path, report, want) in c.values {
            let got = Device::read_back(feature(&d, path), report);
            assert!(
                (got - want).abs() < 0.01,
                "{}: {path} {got}, NUT read {want}",
                c.name
            );
        }
    }
    assert!(
        PERSONALITIES
            .iter()
            .filter(|p| p.name != "cyberpower-cst135")
            .all(|p| CAPTURES.iter().any(|c| c.name == p.name)),
        "every personality from a NUT capture is checked against it"
    );
}

/// What a subdriver path must read for a state.
#[derive(Clone, Copy, Debug)]
enum Want {
    Line,
    Battery,
    Low,
    Charge,
    RuntimeSeconds,
    InputVolts,
    Is(f64),
    /// Eaton's charger mode: 1 charging, 2 discharging, 4 resting (full).
    ChargerMode,
}

/// What cps-hid.c reads of both CyberPower personalities.
const CPS_PATHS: &[(&str, Want)] = &[
    ("UPS.PowerSummary.RemainingCapacity", Want::Charge),
    ("UPS.PowerSummary.RunTimeToEmpty", Want::RuntimeSeconds),
    ("UPS.Input.Voltage", Want::InputVolts),
    ("UPS.PowerSummary.PresentStatus.ACPresent", Want::Line),
    ("UPS.PowerSummary.PresentStatus.Discharging", Want::Battery),
    (
        "UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit",
        Want::Low,
    ),
];

/// The paths each vendor's subdriver maps to ups.status, battery.charge, battery.runtime and
/// input.voltage (cps-hid.c, apc-hid.c, mge-hid.c), with what they must read.
const SUBDRIVER_PATHS: &[(&str, &[(&str, Want)])] = &[
    ("cyberpower", CPS_PATHS),
    ("cyberpower-cst135", CPS_PATHS),
    (
        "apc",
        &[
            ("UPS.PowerSummary.RemainingCapacity", Want::Charge),
            ("UPS.Battery.RunTimeToEmpty", Want::RuntimeSeconds),
            ("UPS.PowerSummary.RunTimeToEmpty", Want::RuntimeSeconds),
            ("UPS.Input.Voltage", Want::InputVolts),
            ("UPS.PowerSummary.PresentStatus.ACPresent", Want::Line),
            ("UPS.PowerSummary.PresentStatus.Discharging", Want::Battery),
            (
                "UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit",
                Want::Low,
            ),
            (
                "UPS.PowerSummary.PresentStatus.ShutdownImminent",
                Want::Is(0.0),
            ),
            ("UPS.PowerSummary.ACPresent", Want::Line),
            ("UPS.PowerSummary.Discharging", Want::Battery),
            ("UPS.PowerSummary.BelowRemainingCapacityLimit", Want::Low),
            ("UPS.PowerSummary.APCStatusFlag", Want::Is(8.0)),
        ],
    ),
    (
        "eaton",
        &[
            ("UPS.PowerSummary.RemainingCapacity", Want::Charge),
            ("UPS.PowerSummary.RunTimeToEmpty", Want::RuntimeSeconds),
            ("UPS.PowerConverter.Input.[1].Voltage", Want::InputVolts),
            ("UPS.PowerSummary.PresentStatus.ACPresent", Want::Line),
            (
                "UPS.PowerConverter.Input.[1].PresentStatus.Used",
                Want::Line,
            ),
            (
                "UPS.PowerConverter.Input.[3].PresentStatus.Used",
                Want::Battery,
            ),
            ("UPS.PowerSummary.PresentStatus.Good", Want::Is(1.0)),
            (
                "UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit",
                Want::Low,
            ),
            ("UPS.BatterySystem.Charger.ABMEnable", Want::Is(1.0)),
            ("UPS.BatterySystem.Charger.Mode", Want::ChargerMode),
        ],
    ),
];

#[test]
fn every_subdriver_path_follows_the_state_through_ol_ob_lb_ol() {
    // The walk, then back to full charge at 230 V.
    let more: &[Step] = &[(
        &["charge 100", "input 230"],
        true,
        false,
        100.0,
        600.0,
        230.0,
    )];
    for p in PERSONALITIES {
        let paths = SUBDRIVER_PATHS
            .iter()
            .find(|(n, _)| *n == p.name)
            .unwrap_or_else(|| panic!("{}: its subdriver's paths are listed", p.name))
            .1;
        let mut d = Device::new(p).unwrap();
        for (lines, line, low, charge, runtime, input) in OL_OB_LB_OL.iter().chain(more) {
            for l in *lines {
                assert_eq!(control(l, &mut d.state), Ok(Command::Changed), "{l}");
            }
            for &(path, want) in paths {
                let expected = match want {
                    Want::Line => f64::from(u8::from(*line)),
                    Want::Battery => f64::from(u8::from(!line)),
                    Want::Low => f64::from(u8::from(*low)),
                    Want::Charge => *charge,
                    Want::RuntimeSeconds => *runtime,
                    Want::InputVolts => *input,
                    Want::Is(v) => v,
                    Want::ChargerMode if !line => 2.0,
                    Want::ChargerMode if *charge < 100.0 => 1.0,
                    Want::ChargerMode => 4.0,
                };
                // GET_REPORT (feature), as NUT polls.
                let f = feature(&d, path);
                let got = read(&d, f);
                assert!(
                    (got - expected).abs() < 0.05,
                    "{} {lines:?}: {path} reads {got}, want {expected}",
                    p.name
                );
                // The interrupt-in report of the same path, where there is one.
                let sent = d.input_reports();
                for f in d
                    .fields
                    .iter()
                    .filter(|f| f.kind == Kind::Input && nut_path(f) == path)
                {
                    let report = sent
                        .iter()
                        .find(|r| r[0] == f.report_id)
                        .expect("every input report is sent");
                    let got = Device::read_back(f, report);
                    assert!(
                        (got - expected).abs() < 0.05,
                        "{} {lines:?}: interrupt {path} reads {got}, want {expected}",
                        p.name
                    );
                }
            }
        }
    }
}

#[test]
fn nut_fixes_widen_what_the_units_send_beyond_their_declared_range() {
    // APC declares Input.Voltage 0..255 (ES 850G2) next to a High Voltage Transfer up to 278:
    // apc-hid.c widens it to 0..556, and a real unit sends 264 V as 264.
    let apc = Device::new(hid_sim::personality("apc").unwrap()).unwrap();
    let v = feature(&apc, "UPS.Input.Voltage");
    assert_eq!((v.log_min, v.log_max), (0, 556));
    let parsed = parse(apc.personality.descriptor).unwrap();
    let declared = parsed
        .iter()
        .find(|f| f.kind == Kind::Feature && nut_path(f) == "UPS.Input.Voltage")
        .unwrap();
    assert_eq!((declared.log_min, declared.log_max), (0, 255));
    // Without the fix, NUT would keep the bits below 256 of 264 V: 8.
    let report = [0x31, 0x08, 0x01];
    assert_eq!(Device::read_back(declared, &report), 8.0);
    assert_eq!(Device::read_back(v, &report), 264.0);
}

#[test]
fn paths_are_named_as_nut_names_them() {
    let eaton = Device::new(hid_sim::personality("eaton").unwrap()).unwrap();
    let names: Vec<String> = eaton.fields.iter().map(nut_path).collect();
    for want in [
        "UPS.PowerConverter.Input.[1].Voltage",
        "UPS.PowerConverter.Input.[3].PresentStatus.Used",
        "UPS.PowerSummary.PresentStatus.ACPresent",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    // An unknown usage prints as NUT prints it: page and id in hex.
    let apc = Device::new(hid_sim::personality("apc").unwrap()).unwrap();
    assert!(apc
        .fields
        .iter()
        .any(|f| nut_path(f) == "UPS.Input.ff860061"));
}
