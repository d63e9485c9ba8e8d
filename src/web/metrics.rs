//! `/metrics` in Prometheus' text exposition format (version 0.0.4), sans I/O.
//!
//! The UPS metrics carry the names NUT's Prometheus exporters use (`network_ups_tools_` and the
//! NUT variable with `.` as `_`, a `ups` label; `ups.status` as one series per flag, 1 or 0;
//! `device_info` with the names as labels), so dashboards and alerts written for those work on
//! a fleet of these. The agent's own state is under `power_snitch_`.

use std::fmt::Write;

use crate::state::monitor::{Data, READINGS};
use crate::state::Shared;

/// The status flags always exported (0 when not set), as NUT's exporters do.
pub const FLAGS: &[&str] = &[
    "OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER", "TRIM",
    "BOOST", "FSD",
];

/// What each exported reading is.
fn help(var: &str) -> &'static str {
    match var {
        "battery.charge" => "Battery charge (percent), NUT's battery.charge.",
        "battery.runtime" => "Battery runtime (seconds), NUT's battery.runtime.",
        "battery.voltage" => "Battery voltage (V), NUT's battery.voltage.",
        "input.voltage" => "Input voltage (V), NUT's input.voltage.",
        "output.voltage" => "Output voltage (V), NUT's output.voltage.",
        "ups.load" => "Load (percent of capacity), NUT's ups.load.",
        "ups.realpower" => "Real power (W), NUT's ups.realpower.",
        "ups.temperature" => "UPS temperature (degrees C), NUT's ups.temperature.",
        "input.frequency" => "Input frequency (Hz), NUT's input.frequency.",
        _ => "A NUT variable.",
    }
}

/// A label value with `\`, `"` and line feeds escaped.
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A float as Prometheus writes it.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// The status words set besides [`FLAGS`] (ALARM, WAIT, words the agent does not know), each
/// once however often upsd repeats it: one series each, 1.
fn other_words(u: &crate::state::UpsSlot) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let known: Vec<&str> = u.state.flags.words().collect();
    for w in known
        .into_iter()
        .chain(u.state.other.split_ascii_whitespace())
    {
        if !FLAGS.contains(&w) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Every metric of the agent's state.
pub fn render(s: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    for (i, var) in READINGS.iter().enumerate() {
        let name = format!("network_ups_tools_{}", var.replace('.', "_"));
        let mut header = false;
        for u in &s.ups {
            if let Some(v) = u.readings.values[i] {
                if !header {
                    family(&mut out, &name, "gauge", help(var));
                    header = true;
                }
                let _ = writeln!(out, "{name}{{ups=\"{}\"}} {}", label(&u.name), value(v));
            }
        }
    }
    let with_data = || s.ups.iter().filter(|u| u.state.data == Data::Ok);
    if with_data().next().is_some() {
        family(
            &mut out,
            "network_ups_tools_ups_status",
            "gauge",
            "UPS status flag from ups.status: 1 when set, 0 when not.",
        );
        for u in with_data() {
            for f in FLAGS {
                let _ = writeln!(
                    out,
                    "network_ups_tools_ups_status{{ups=\"{}\",flag=\"{f}\"}} {}",
                    label(&u.name),
                    u8::from(u.state.flags.has(f))
                );
            }
            for w in other_words(u) {
                let _ = writeln!(
                    out,
                    "network_ups_tools_ups_status{{ups=\"{}\",flag=\"{}\"}} 1",
                    label(&u.name),
                    label(w)
                );
            }
        }
        family(
            &mut out,
            "network_ups_tools_device_info",
            "gauge",
            "UPS device information as labels; always 1.",
        );
        for u in with_data() {
            let _ = writeln!(
                out,
                "network_ups_tools_device_info{{ups=\"{}\",mfr=\"{}\",model=\"{}\"}} 1",
                label(&u.name),
                label(&u.readings.mfr),
                label(&u.readings.model)
            );
        }
    }
    family(
        &mut out,
        "power_snitch_ups_data_ok",
        "gauge",
        "1 when upsd has fresh data for the UPS, 0 when not (or not read yet).",
    );
    for u in &s.ups {
        let _ = writeln!(
            out,
            "power_snitch_ups_data_ok{{ups=\"{}\",upsd=\"{}\"}} {}",
            label(&u.name),
            label(&u.upsd),
            u8::from(u.state.data == Data::Ok)
        );
    }
    family(
        &mut out,
        "power_snitch_ups_polls_total",
        "counter",
        "Polls of the UPS since the agent started.",
    );
    for u in &s.ups {
        let _ = writeln!(
            out,
            "power_snitch_ups_polls_total{{ups=\"{}\"}} {}",
            label(&u.name),
            u.polls
        );
    }
    family(
        &mut out,
        "power_snitch_upsd_connected",
        "gauge",
        "1 when the agent's connection to upsd is up.",
    );
    for l in &s.links {
        let _ = writeln!(
            out,
            "power_snitch_upsd_connected{{upsd=\"{}\"}} {}",
            label(&l.address),
            u8::from(l.link.is_up())
        );
    }
    family(
        &mut out,
        "power_snitch_findings",
        "gauge",
        "Findings of the last check of NUT's files and the settings, by severity.",
    );
    let (e, w, i) = s.findings;
    for (sev, n) in [("error", e), ("warning", w), ("info", i)] {
        let _ = writeln!(out, "power_snitch_findings{{severity=\"{sev}\"}} {n}");
    }
    family(
        &mut out,
        "power_snitch_events_total",
        "counter",
        "Events the agent logged since it started.",
    );
    let last = s.ring.last(1).next().map_or(0, |e| e.seq);
    let _ = writeln!(out, "power_snitch_events_total {last}");
    heal(&mut out, s);
    family(
        &mut out,
        "power_snitch_start_time_seconds",
        "gauge",
        "When the agent started, in seconds since the epoch.",
    );
    let _ = writeln!(out, "power_snitch_start_time_seconds {}", s.started);
    out
}

/// The self-healing's counters: restarts per UPS and reason, and the drivers given up.
fn heal(out: &mut String, s: &Shared) {
    family(
        out,
        "power_snitch_driver_restarts_total",
        "counter",
        "Driver restarts by the agent's self-healing since it started, by reason.",
    );
    for h in &s.heal {
        for (reason, n) in crate::state::HEAL_REASONS.iter().zip(h.restarts) {
            let _ = writeln!(
                out,
                "power_snitch_driver_restarts_total{{ups=\"{}\",reason=\"{reason}\"}} {n}",
                label(&h.ups)
            );
        }
    }
    family(
        out,
        "power_snitch_driver_given_up",
        "gauge",
        "1 when the agent stopped restarting the UPS's driver (too many restarts in an hour).",
    );
    for h in &s.heal {
        let _ = writeln!(
            out,
            "power_snitch_driver_given_up{{ups=\"{}\"}} {}",
            label(&h.ups),
            u8::from(h.given_up)
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::monitor::{Reading, Readings, Vars};
    use crate::state::ring::Ring;
    use crate::state::UpsSlot;

    pub(crate) fn shared() -> Shared {
        let mut u = UpsSlot::new("rack \"A\"", "127.0.0.1:3493", 5);
        let vars = Vars {
            status: Some("OB LB XYZ"),
            charge: Some("15"),
            ..Vars::default()
        };
        u.state.observe(Reading::Vars(vars), 100, &mut Vec::new());
        let list: Vec<(String, String)> = [
            ("battery.charge", "15"),
            ("battery.runtime", "300"),
            ("input.voltage", "0"),
            ("ups.mfr", "CPS"),
            ("ups.model", "CP1500"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        u.readings = Readings::from_list(&list);
        u.polls = 7;
        let mut ring = Ring::default();
        ring.push(100, log::Level::Warn, "rack", "on battery <b>(OB)</b>");
        Shared {
            started: 50,
            ring,
            ups: vec![u, UpsSlot::new("spare", "127.0.0.1:3493", 5)],
            links: Vec::new(),
            findings: (1, 2, 3),
            checked_at: 100,
            settings_path: "/var/lib/power-snitch/settings.bin".into(),
            nut_dir: "/etc/nut".into(),
            history: Default::default(),
            heal: vec![crate::state::HealCount {
                ups: "rack \"A\"".into(),
                restarts: [2, 1, 0],
                given_up: true,
            }],
            battery: Default::default(),
        }
    }

    #[test]
    fn web_metrics_use_nut_exporter_names_and_escape_labels() {
        let m = render(&shared());
        for want in [
            "# TYPE network_ups_tools_battery_charge gauge",
            "network_ups_tools_battery_charge{ups=\"rack \\\"A\\\"\"} 15",
            "network_ups_tools_battery_runtime{ups=\"rack \\\"A\\\"\"} 300",
            "network_ups_tools_input_voltage{ups=\"rack \\\"A\\\"\"} 0",
            "network_ups_tools_ups_status{ups=\"rack \\\"A\\\"\",flag=\"OB\"} 1",
            "network_ups_tools_ups_status{ups=\"rack \\\"A\\\"\",flag=\"LB\"} 1",
            "network_ups_tools_ups_status{ups=\"rack \\\"A\\\"\",flag=\"OL\"} 0",
            "network_ups_tools_ups_status{ups=\"rack \\\"A\\\"\",flag=\"XYZ\"} 1",
            "network_ups_tools_device_info{ups=\"rack \\\"A\\\"\",mfr=\"CPS\",model=\"CP1500\"} 1",
            "power_snitch_ups_data_ok{ups=\"spare\",upsd=\"127.0.0.1:3493\"} 0",
            "power_snitch_ups_polls_total{ups=\"rack \\\"A\\\"\"} 7",
            "power_snitch_findings{severity=\"warning\"} 2",
            "power_snitch_events_total 1",
            "power_snitch_start_time_seconds 50",
            "# TYPE power_snitch_driver_restarts_total counter",
            "power_snitch_driver_restarts_total{ups=\"rack \\\"A\\\"\",reason=\"stale\"} 2",
            "power_snitch_driver_restarts_total{ups=\"rack \\\"A\\\"\",reason=\"disconnected\"} 1",
            "power_snitch_driver_restarts_total{ups=\"rack \\\"A\\\"\",reason=\"replugged\"} 0",
            "power_snitch_driver_given_up{ups=\"rack \\\"A\\\"\"} 1",
        ] {
            assert!(m.contains(want), "no {want} in\n{m}");
        }
        // A UPS without data has no NUT series; each family is declared once.
        assert!(!m.contains("ups=\"spare\",flag"));
        assert_eq!(m.matches("# TYPE network_ups_tools_ups_status").count(), 1);
        assert_eq!(label("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(230.5), "230.5");
    }

    #[test]
    fn web_metrics_export_every_status_word_once() {
        let mut s = shared();
        let vars = Vars {
            status: Some("OL ALARM WAIT XYZ XYZ OL XYZ"),
            ..Vars::default()
        };
        s.ups[0]
            .state
            .observe(Reading::Vars(vars), 200, &mut Vec::new());
        let m = render(&s);
        for w in ["OL", "ALARM", "WAIT", "XYZ"] {
            let series =
                format!("network_ups_tools_ups_status{{ups=\"rack \\\"A\\\"\",flag=\"{w}\"}} 1");
            assert_eq!(m.matches(&series).count(), 1, "{series} in\n{m}");
        }
        // No series twice, whatever the flags.
        let mut seen = std::collections::HashSet::new();
        for l in m.lines().filter(|l| !l.starts_with('#')) {
            let series = l.rsplit_once(' ').unwrap().0;
            assert!(seen.insert(series.to_string()), "{series} twice in\n{m}");
        }
    }
}
