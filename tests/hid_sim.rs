//! The simulated USB HID UPS's sans-I/O part (tests/common/hid_sim.rs): its descriptors parse
//! into the fields NUT's subdrivers read, and the reports it builds from the state read back,
//! the way NUT's libhid.c reads them, as the state's values.

#[allow(dead_code)]
#[path = "common/sim.rs"]
mod sim;

#[allow(dead_code)]
#[path = "common/hid_sim.rs"]
mod hid_sim;

use hid_sim::{control, parse, Command, Device, Field, Kind, PERSONALITIES};
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
fn cyberpower_layout_is_the_captured_one() {
    let d = Device::new(hid_sim::personality("cyberpower").unwrap()).unwrap();
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

#[test]
fn reports_follow_the_state_through_ol_ob_lb_ol() {
    for p in PERSONALITIES {
        let mut d = Device::new(p).unwrap();
        let walk: &[Step] = &[
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
        for (lines, line, low, charge, runtime, input) in walk {
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
    let mut d = Device::new(hid_sim::personality("cyberpower").unwrap()).unwrap();
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
    assert_eq!(
        control("plug cyberpower", &mut state),
        Ok(Command::Plug("cyberpower".into()))
    );
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
    let desc = hid_sim::personality("cyberpower").unwrap().descriptor;
    for n in 0..desc.len() {
        let _ = parse(&desc[..n]);
        let mut d = desc.to_vec();
        d[n] ^= 0xff;
        let _ = parse(&d);
    }
}
