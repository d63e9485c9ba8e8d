//! Battery tests kept, and what they say of the battery. Sans I/O except [`load`] and
//! [`save`]:
//! - per UPS the last [`KEEP`] tests (when, which command, who started it, TRACKING's answer,
//!   `ups.test.result`, charge, runtime and load before and after), at most [`MAX_UPS`] UPSes;
//! - the file `battery-tests.bin` next to the settings, in the frame of our other files
//!   (`settings::frame`: magic `PSNB`, version, length, CRC-32, postcard), whole or not at all;
//! - [`replace_battery`]: the "replace battery" finding (`battery-replace`) from the UPS's `RB`,
//!   a failed test, or a runtime clearly below the earlier tests' at a similar load;
//! - the JSON the status and the page show.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::json::{self, Object};
use crate::settings::frame;

/// Tests kept per UPS.
pub const KEEP: usize = 16;
/// UPSes kept.
pub const MAX_UPS: usize = 16;
/// Longest text kept in a record (command, TRACKING's word, `ups.test.result`).
const TEXT_MAX: usize = 120;
/// The finding's stable code.
pub const REPLACE_CODE: &str = "battery-replace";
/// A runtime below this share of the earlier tests' median (at a similar load) is a worn
/// battery.
pub const RUNTIME_FLOOR: f64 = 0.7;
/// Loads within this share of each other are similar.
pub const SIMILAR_LOAD: f64 = 0.10;
/// Earlier tests at a similar load needed before a runtime is compared with their median.
pub const RUNTIME_BASE: usize = 2;

/// Who started a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    User,
    Schedule,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::User => "user",
            Origin::Schedule => "schedule",
        }
    }
}

/// Charge (%), runtime (s) and load (%) at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Values {
    pub charge: Option<f64>,
    pub runtime: Option<f64>,
    pub load: Option<f64>,
}

/// One test as it ran (or was tried).
#[derive(Clone, Debug, PartialEq)]
pub struct TestRecord {
    /// Unix seconds, when it was started.
    pub at: u64,
    pub cmd: String,
    pub origin: Origin,
    /// TRACKING's answer (`SUCCESS`, `FAILED INSTCMD-FAILED`, `PENDING`, `UNTRACKED`), or
    /// `NOT RUN <code>` when it could not be sent.
    pub tracking: String,
    /// `ups.test.result` after the test, when the UPS has it.
    pub test_result: Option<String>,
    pub before: Values,
    pub after: Values,
    /// The lowest charge seen while it ran.
    pub lowest_charge: Option<f64>,
}

impl TestRecord {
    /// Was it sent at all?
    pub fn ran(&self) -> bool {
        !self.tracking.starts_with("NOT RUN")
    }

    /// Did it fail, by TRACKING's or the UPS's word? The word, when it did.
    pub fn failure(&self) -> Option<String> {
        if let Some(w) = self.tracking.strip_prefix("FAILED") {
            return Some(format!("TRACKING said FAILED{w}"));
        }
        let r = self.test_result.as_deref()?;
        let l = r.to_ascii_lowercase();
        (l.contains("fail") || l.contains("error") || l.contains("abort"))
            .then(|| format!("the UPS said \"{r}\""))
    }
}

fn bounded(s: &str) -> String {
    let mut end = s.len().min(TEXT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The tests kept, per UPS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    ups: Vec<(String, VecDeque<TestRecord>)>,
}

impl Results {
    /// The tests of `ups`, oldest first.
    pub fn tests(&self, ups: &str) -> Vec<&TestRecord> {
        self.ups
            .iter()
            .find(|(n, _)| n == ups)
            .map(|(_, t)| t.iter().collect())
            .unwrap_or_default()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ups.iter().map(|(n, _)| n.as_str())
    }

    /// Keeps `record` for `ups`: the oldest goes beyond [`KEEP`]; a UPS beyond [`MAX_UPS`]
    /// replaces the one tested longest ago.
    pub fn push(&mut self, ups: &str, mut record: TestRecord) {
        record.cmd = bounded(&record.cmd);
        record.tracking = bounded(&record.tracking);
        record.test_result = record.test_result.as_deref().map(bounded);
        let i = match self.ups.iter().position(|(n, _)| n == ups) {
            Some(i) => i,
            None => {
                if self.ups.len() >= MAX_UPS {
                    let oldest = (0..self.ups.len())
                        .min_by_key(|&i| self.ups[i].1.back().map_or(0, |r| r.at))
                        .unwrap_or(0);
                    self.ups.remove(oldest);
                }
                self.ups.push((bounded(ups), VecDeque::with_capacity(KEEP)));
                self.ups.len() - 1
            }
        };
        let tests = &mut self.ups[i].1;
        if tests.len() >= KEEP {
            tests.pop_front();
        }
        tests.push_back(record);
    }

    /// When the newest test of `ups` was started (or tried).
    pub fn last(&self, ups: &str) -> Option<&TestRecord> {
        self.ups
            .iter()
            .find(|(n, _)| n == ups)
            .and_then(|(_, t)| t.back())
    }
}

/// The record of a test that ran (or, with its error's code, one that could not be sent).
pub fn record_of(
    at: u64,
    cmd: &str,
    origin: Origin,
    run: Result<&crate::upsd::command::TestRun, &crate::upsd::error::NutError>,
) -> TestRecord {
    use crate::upsd::command::Snapshot;
    let values = |s: &Snapshot| Values {
        charge: s.charge,
        runtime: s.runtime,
        load: s.load,
    };
    match run {
        Ok(r) => TestRecord {
            at,
            cmd: cmd.to_string(),
            origin,
            tracking: r.outcome.word(),
            test_result: r.after.test_result.clone(),
            before: values(&r.before),
            after: values(&r.after),
            lowest_charge: r.lowest_charge,
        },
        Err(e) => TestRecord {
            at,
            cmd: cmd.to_string(),
            origin,
            tracking: format!("NOT RUN {}", e.code()),
            test_result: None,
            before: Values::default(),
            after: Values::default(),
            lowest_charge: None,
        },
    }
}

/// The "replace battery" finding for a UPS, with its reason: the UPS says `RB`; its newest test
/// failed; or the newest test's runtime is below [`RUNTIME_FLOOR`] of the median of the earlier
/// tests at a load within [`SIMILAR_LOAD`] (at least [`RUNTIME_BASE`] of them).
pub fn replace_battery(status: &str, tests: &[&TestRecord]) -> Option<String> {
    if status.split_whitespace().any(|w| w == "RB") {
        return Some("the UPS reports RB (replace battery)".into());
    }
    let ran: Vec<&TestRecord> = tests.iter().copied().filter(|t| t.ran()).collect();
    let newest = ran.last()?;
    if let Some(why) = newest.failure() {
        return Some(format!(
            "the last battery test ({}) failed: {why}",
            newest.cmd
        ));
    }
    let measure = |t: &TestRecord| {
        let v = if t.after.runtime.is_some() {
            t.after
        } else {
            t.before
        };
        Some((v.runtime?, v.load?))
    };
    let (runtime, load) = measure(newest)?;
    let similar = |l: f64| (l - load).abs() <= (load * SIMILAR_LOAD).max(1.0);
    let mut earlier: Vec<f64> = ran[..ran.len() - 1]
        .iter()
        .filter_map(|t| measure(t))
        .filter(|&(_, l)| similar(l))
        .map(|(r, _)| r)
        .collect();
    if earlier.len() < RUNTIME_BASE {
        return None;
    }
    earlier.sort_by(f64::total_cmp);
    let n = earlier.len();
    let median = if n % 2 == 1 {
        earlier[n / 2]
    } else {
        (earlier[n / 2 - 1] + earlier[n / 2]) / 2.0
    };
    (runtime < median * RUNTIME_FLOOR).then(|| {
        format!(
            "the runtime at {load:.0} % load is {runtime:.0} s, below {:.0} % of the earlier tests' {median:.0} s",
            RUNTIME_FLOOR * 100.0
        )
    })
}

// ---------------------------------------------------------------------------------------------
// JSON

fn num(o: &mut Object, k: &str, v: Option<f64>) {
    match v {
        Some(v) if v.is_finite() => {
            o.raw(k, &format!("{}", (v * 10.0).round() / 10.0));
        }
        _ => {
            o.raw(k, "null");
        }
    }
}

fn values_json(v: &Values) -> String {
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    num(&mut o, "charge", v.charge);
    num(&mut o, "runtime", v.runtime);
    num(&mut o, "load", v.load);
    o.end();
    out
}

pub fn record_json(t: &TestRecord) -> String {
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.num("at", t.at)
        .str("cmd", &t.cmd)
        .str("origin", t.origin.as_str())
        .str("tracking", &t.tracking)
        .opt_str("test_result", t.test_result.as_deref())
        .raw("before", &values_json(&t.before))
        .raw("after", &values_json(&t.after));
    num(&mut o, "lowest_charge", t.lowest_charge);
    o.end();
    out
}

/// A UPS's tests (newest first) and the finding, as `{"tests": [...], "replace": ...}`.
pub fn ups_json(results: &Results, ups: &str, status: &str) -> String {
    let tests = results.tests(ups);
    let mut out = String::new();
    let mut o = Object::new(&mut out);
    o.raw(
        "tests",
        &json::array(tests.iter().rev().map(|t| record_json(t))),
    );
    match replace_battery(status, &tests) {
        Some(why) => {
            let mut f = String::new();
            let mut fo = Object::new(&mut f);
            fo.str("code", REPLACE_CODE).str("reason", &why);
            fo.end();
            o.raw("replace", &f);
        }
        None => {
            o.raw("replace", "null");
        }
    }
    o.end();
    out
}

// ---------------------------------------------------------------------------------------------
// The file

pub const MAGIC: &[u8; 4] = b"PSNB";
pub const VERSION: u16 = 1;
/// Far more than [`MAX_UPS`] × [`KEEP`] records of bounded text.
pub const MAX_PAYLOAD: usize = 256 * 1024;

#[derive(Serialize, Deserialize)]
struct FileV1 {
    ups: Vec<(String, Vec<RecordV1>)>,
}

#[derive(Serialize, Deserialize)]
struct RecordV1 {
    at: u64,
    cmd: String,
    /// 0 user, 1 schedule
    origin: u8,
    tracking: String,
    test_result: Option<String>,
    before: [Option<f64>; 3],
    after: [Option<f64>; 3],
    lowest_charge: Option<f64>,
}

fn v3(v: &Values) -> [Option<f64>; 3] {
    [v.charge, v.runtime, v.load]
}

fn values(a: [Option<f64>; 3]) -> Values {
    Values {
        charge: a[0],
        runtime: a[1],
        load: a[2],
    }
}

pub fn encode(r: &Results) -> Vec<u8> {
    let file = FileV1 {
        ups: r
            .ups
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.iter()
                        .map(|t| RecordV1 {
                            at: t.at,
                            cmd: t.cmd.clone(),
                            origin: match t.origin {
                                Origin::User => 0,
                                Origin::Schedule => 1,
                            },
                            tracking: t.tracking.clone(),
                            test_result: t.test_result.clone(),
                            before: v3(&t.before),
                            after: v3(&t.after),
                            lowest_charge: t.lowest_charge,
                        })
                        .collect(),
                )
            })
            .collect(),
    };
    let payload =
        postcard::to_allocvec(&file).expect("serializing plain data into memory cannot fail");
    frame::seal(MAGIC, VERSION, &payload)
}

/// Reads a results file; never panics. What it holds beyond the bounds is refused.
pub fn decode(bytes: &[u8]) -> Result<Results, String> {
    let (_, payload) =
        frame::open(bytes, MAGIC, VERSION, MAX_PAYLOAD).map_err(|e| e.to_string())?;
    let file: FileV1 = postcard::from_bytes(payload).map_err(|e| e.to_string())?;
    if file.ups.len() > MAX_UPS {
        return Err(format!("{} UPSes, more than {MAX_UPS}", file.ups.len()));
    }
    let mut r = Results::default();
    for (name, tests) in file.ups {
        if tests.len() > KEEP || r.ups.iter().any(|(n, _)| *n == name) {
            return Err(format!("UPS `{name}`: {} tests, or twice", tests.len()));
        }
        for t in tests {
            let origin = match t.origin {
                0 => Origin::User,
                1 => Origin::Schedule,
                o => return Err(format!("UPS `{name}`: unknown origin {o}")),
            };
            r.push(
                &name,
                TestRecord {
                    at: t.at,
                    cmd: t.cmd,
                    origin,
                    tracking: t.tracking,
                    test_result: t.test_result,
                    before: values(t.before),
                    after: values(t.after),
                    lowest_charge: t.lowest_charge,
                },
            );
        }
    }
    Ok(r)
}

/// The results file next to the settings file: `DIR/battery-tests.bin`.
pub fn path(settings: &std::path::Path) -> std::path::PathBuf {
    settings
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("battery-tests.bin")
}

/// Reads the results. No file: none kept. A damaged one: none, the file set aside as
/// `NAME.damaged`, and the reason (for the log).
pub fn load(path: &std::path::Path) -> (Results, Option<String>) {
    match frame::read_bounded(path, MAX_PAYLOAD) {
        Ok(None) => (Results::default(), None),
        Err(e) => (
            Results::default(),
            Some(format!("{}: {e}; no battery tests known", path.display())),
        ),
        Ok(Some(bytes)) => match decode(&bytes) {
            Ok(r) => (r, None),
            Err(e) => {
                let kept = frame::set_aside(path);
                (
                    Results::default(),
                    Some(format!(
                        "{}: {e}; no battery tests known (the file is {kept})",
                        path.display()
                    )),
                )
            }
        },
    }
}

/// Writes the results whole (see `settings::frame::write_whole`).
pub fn save(path: &std::path::Path, r: &Results) -> Result<(), String> {
    frame::write_whole(path, &encode(r)).map_err(|e| {
        format!(
            "cannot save the battery tests to {}: {e}; the file is unchanged",
            path.display()
        )
    })
}

/// Adds one record to the file at `path` (read, push, write whole).
pub fn append(path: &std::path::Path, ups: &str, record: TestRecord) -> Result<(), String> {
    let (mut r, problem) = load(path);
    if let Some(p) = problem {
        log::warn!("{p}");
    }
    r.push(ups, record);
    save(path, &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(at: u64, tracking: &str, result: Option<&str>, runtime: f64, load: f64) -> TestRecord {
        TestRecord {
            at,
            cmd: "test.battery.start.quick".into(),
            origin: Origin::Schedule,
            tracking: tracking.into(),
            test_result: result.map(String::from),
            before: Values {
                charge: Some(100.0),
                runtime: Some(runtime + 60.0),
                load: Some(load),
            },
            after: Values {
                charge: Some(95.0),
                runtime: Some(runtime),
                load: Some(load),
            },
            lowest_charge: Some(90.0),
        }
    }

    /// The finding (or none) for a status and tests given as (tracking, result, runtime, load).
    fn check(status: &str, tests: &[(&str, Option<&str>, f64, f64)], want: Option<&str>) {
        let records: Vec<TestRecord> = tests
            .iter()
            .enumerate()
            .map(|(i, (t, r, rt, l))| test(i as u64, t, *r, *rt, *l))
            .collect();
        let refs: Vec<&TestRecord> = records.iter().collect();
        let got = replace_battery(status, &refs);
        match (want, &got) {
            (None, None) => {}
            (Some(w), Some(g)) if g.contains(w) => {}
            _ => panic!("{status} {tests:?}: want {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn replace_battery_findings() {
        let ok = ("SUCCESS", None, 1200.0, 20.0);
        check("OL", &[], None);
        check("OL RB", &[], Some("reports RB"));
        check("OL", &[ok, ok, ok], None);
        check(
            "OL",
            &[ok, ("FAILED INSTCMD-FAILED", None, 1200.0, 20.0)],
            Some("TRACKING said FAILED INSTCMD-FAILED"),
        );
        check(
            "OL",
            &[ok, ("SUCCESS", Some("Failed - battery"), 1200.0, 20.0)],
            Some("the UPS said \"Failed - battery\""),
        );
        check(
            "OL",
            &[ok, ("SUCCESS", Some("Done and passed"), 1200.0, 20.0)],
            None,
        );
        // A failed test followed by a good one: the battery answered.
        check("OL", &[("FAILED X", None, 1200.0, 20.0), ok], None);
        // A test that could not be sent says nothing of the battery.
        check(
            "OL",
            &[ok, ("NOT RUN access-denied", None, 0.0, 20.0)],
            None,
        );
        // The runtime at a similar load falls below 70 % of the earlier median.
        let worn = ("SUCCESS", None, 700.0, 21.0);
        check("OL", &[ok, ok, worn], Some("below 70 %"));
        check(
            "OL",
            &[
                ok,
                ("SUCCESS", None, 1100.0, 20.0),
                ("SUCCESS", None, 900.0, 20.0),
            ],
            None,
        );
        // At another load the runtime is not comparable.
        check("OL", &[ok, ok, ("SUCCESS", None, 700.0, 40.0)], None);
        // One earlier test is not a base.
        check("OL", &[ok, worn], None);
    }

    #[test]
    fn results_are_bounded() {
        let mut r = Results::default();
        for i in 0..(KEEP as u64 + 5) {
            r.push("a", test(i, "SUCCESS", None, 1.0, 1.0));
        }
        let t = r.tests("a");
        assert_eq!(t.len(), KEEP);
        assert_eq!(t[0].at, 5);
        for u in 0..(MAX_UPS as u64 + 3) {
            r.push(&format!("u{u}"), test(100 + u, "SUCCESS", None, 1.0, 1.0));
        }
        assert_eq!(r.names().count(), MAX_UPS);
        assert!(r.tests("a").is_empty(), "the UPS tested longest ago went");
        let mut long = test(1, &"x".repeat(1000), None, 1.0, 1.0);
        long.cmd = "é".repeat(200);
        r.push("b", long);
        let b = r.last("b").unwrap();
        assert!(b.tracking.len() <= TEXT_MAX && b.cmd.len() <= TEXT_MAX);
    }

    #[test]
    fn results_file_round_trips_and_damage_is_refused() {
        let mut r = Results::default();
        r.push(
            "a",
            test(7, "SUCCESS", Some("Done and passed"), 1200.0, 20.0),
        );
        let mut u = test(9, "NOT RUN access-denied", None, 1.0, 2.0);
        u.origin = Origin::User;
        u.after = Values::default();
        r.push("b", u);
        let bytes = encode(&r);
        assert_eq!(decode(&bytes).unwrap(), r);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err());
        }
        let dir = std::env::temp_dir().join(format!("ps-battery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = path(&dir.join("settings.bin"));
        assert_eq!(load(&p), (Results::default(), None));
        save(&p, &r).unwrap();
        assert_eq!(load(&p).0, r);
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let (got, why) = load(&p);
        assert_eq!(got, Results::default());
        assert!(why.unwrap().contains("damaged"));
        assert!(dir.join("battery-tests.bin.damaged").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn json_shows_newest_first_and_the_finding() {
        let mut r = Results::default();
        r.push("a", test(1, "SUCCESS", None, 1200.0, 20.0));
        r.push("a", test(2, "FAILED INSTCMD-FAILED", None, 1200.0, 20.0));
        let j = ups_json(&r, "a", "OL");
        assert!(
            j.find("\"at\":2").unwrap() < j.find("\"at\":1").unwrap(),
            "{j}"
        );
        assert!(j.contains("\"code\":\"battery-replace\""), "{j}");
        assert!(ups_json(&r, "none", "OL").contains("\"replace\":null"));
    }
}
