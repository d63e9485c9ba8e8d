//! NUT releases with known defects that bite a configuration: each defect names the releases
//! it is in (the first with it, the first fixed), the driver and, where the defect needs one,
//! the setting that makes it bite, and its source (a NUT pull request, issue or commit). A
//! finding comes only when the release checked against has the defect and a ups.conf section
//! meets it; it is about that section, at its `driver` line.

use super::diag::{Code, Severity, Sink};
use super::ups_conf::UpsConf;
use super::version::NutVersion;

/// One known defect of NUT.
pub struct Defect {
    /// The first release with the defect.
    pub from: NutVersion,
    /// The first release (or NUT's development tree, 2.8.6) without it.
    pub fixed: NutVersion,
    pub driver: &'static str,
    /// A flag of the section the defect needs (driver variables: case-insensitive).
    pub flag: Option<&'static str>,
    pub severity: Severity,
    /// What goes wrong, after "NUT X.Y.Z's DRIVER ".
    pub what: &'static str,
    /// Where it is told: NUT's pull request, issue or commit.
    pub source: &'static str,
    pub hint: &'static str,
}

/// The known defects, oldest release first.
pub const DEFECTS: &[Defect] = &[
    Defect {
        from: NutVersion::new(2, 8, 0),
        fixed: NutVersion::new(2, 8, 2),
        driver: "usbhid-ups",
        flag: Some("pollonly"),
        severity: Severity::Warning,
        what: "with `pollonly` misses the errors of libusb 1.0 (a UPS unplugged or no longer \
               answering) and never reconnects: upsd keeps serving the last readings",
        source: "NUT commit e85bd0416 \"Fix passing of errors up from libusb 1.x\", first in \
                 2.8.2; nut issue #3573",
        hint: "remove `pollonly`, or upgrade NUT to 2.8.2 or later",
    },
    Defect {
        from: NutVersion::new(2, 8, 5),
        fixed: NutVersion::new(2, 8, 6),
        driver: "usbhid-ups",
        flag: None,
        severity: Severity::Info,
        what: "can crash (segmentation fault) when the UPS stops answering while the driver \
               (re)connects: it reads past the two report descriptor lengths it tries",
        source: "a regression of NUT 2.8.5, fixed by nut PR #3550 (after 2.8.5, not yet \
                 released)",
        hint: "let the service manager restart the driver (Debian's nut-driver@ units do); \
               the fix comes with the release after 2.8.5",
    },
];

/// A finding for each section of `conf` that meets a defect of `version`.
pub fn check(conf: &UpsConf, version: NutVersion, sink: &mut Sink) {
    let mut done: Vec<&str> = Vec::new();
    for section in &conf.sections {
        if done.contains(&section.name.as_str()) {
            continue;
        }
        done.push(&section.name);
        // A repeated section merges into one: the last value of all of them wins.
        let entries = || {
            conf.sections
                .iter()
                .filter(|s| s.name == section.name)
                .flat_map(|s| s.entries.iter())
        };
        let Some(driver) = entries().rfind(|e| e.name == "driver") else {
            continue;
        };
        let Some(name) = driver.value.as_deref() else {
            continue;
        };
        for d in DEFECTS {
            if d.driver != name || version < d.from || version >= d.fixed {
                continue;
            }
            if let Some(flag) = d.flag {
                if !entries().any(|e| e.name.eq_ignore_ascii_case(flag)) {
                    continue;
                }
            }
            let from = sink.findings.len();
            sink.push(
                d.severity,
                Code::KnownDefect,
                driver.pos,
                format!(
                    "UPS `{}`: NUT {version}'s {name} {} ({})",
                    section.name, d.what, d.source
                ),
            )
            .with_hint(d.hint);
            sink.about_section(from, &section.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::conf::read_lines;

    /// The codes and lines of the defects `ups_conf` meets in `version`.
    fn check_text(ups_conf: &str, version: &str) -> Vec<(Severity, u32, String)> {
        let mut sink = Sink::new("ups.conf");
        let version: NutVersion = version.parse().unwrap();
        let lines = read_lines(ups_conf.as_bytes(), version.dialect(), &mut sink);
        let conf = crate::nut::ups_conf::parse(&lines, &mut sink);
        sink.findings.clear();
        check(&conf, version, &mut sink);
        sink.findings
            .iter()
            .map(|f| (f.severity, f.line, f.message.clone()))
            .collect()
    }

    const POLLONLY: &str = "[ups]\n\tdriver = usbhid-ups\n\tport = auto\n\tPollOnly\n";
    const PLAIN: &str = "[ups]\n\tport = auto\n\tdriver = usbhid-ups\n";

    #[test]
    fn each_defect_only_where_release_and_configuration_meet_it() {
        for (text, version, want) in [
            (POLLONLY, "2.8.0", Some((Severity::Warning, 2, "e85bd0416"))),
            (POLLONLY, "2.8.1", Some((Severity::Warning, 2, "#3573"))),
            (POLLONLY, "2.8.2", None),
            (PLAIN, "2.8.1", None),
            (PLAIN, "2.8.5", Some((Severity::Info, 3, "nut PR #3550"))),
            (POLLONLY, "2.8.5", Some((Severity::Info, 2, "nut PR #3550"))),
            (PLAIN, "2.8.4", None),
            (PLAIN, "2.8.6", None),
            (
                "[ups]\n\tdriver = nutdrv_qx\n\tport = auto\n",
                "2.8.5",
                None,
            ),
            (
                "[ups]\n\tdriver = nutdrv_qx\n\tport = auto\n\tpollonly\n",
                "2.8.1",
                None,
            ),
        ] {
            let got = check_text(text, version);
            match want {
                None => assert!(got.is_empty(), "{version} {text:?}: {got:?}"),
                Some((sev, line, source)) => {
                    assert_eq!(got.len(), 1, "{version} {text:?}: {got:?}");
                    assert_eq!((got[0].0, got[0].1), (sev, line), "{got:?}");
                    assert!(got[0].2.contains(source), "{got:?}");
                    assert!(got[0].2.contains(&format!("NUT {version}'s")), "{got:?}");
                }
            }
        }
    }

    #[test]
    fn a_repeated_section_is_one_ups() {
        let text = "[ups]\n\tdriver = nutdrv_qx\n\tport = auto\n[ups]\n\tdriver = usbhid-ups\n\tpollonly\n";
        let got = check_text(text, "2.8.1");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, 5);
    }
}
