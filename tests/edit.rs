//! The editor of NUT's files against the fixture corpus, the probe's suggestions and the
//! validator: no-op edits keep every byte, adopt writes what the probe suggests and adds no
//! error, remove undoes adopt, and what NUT cannot carry is refused.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use power_snitch::nut::diag::Severity;
use power_snitch::nut::drivers::DriverDb;
use power_snitch::nut::edit::{
    self, doc::Doc, AdoptRequest, Files, NutConfDoc, Reason, SectionSpec, SyncRequest, UpsConfDoc,
    UpsdDoc, UpsmonDoc, UsersDoc,
};
use power_snitch::nut::nut_conf::Mode;
use power_snitch::nut::version::NutVersion;
use power_snitch::nut::{
    validate, Context, FileMeta, FileState, Parsed, Snapshot, NUT_CONF, UPSD_CONF, UPSD_USERS,
    UPSMON_CONF, UPS_CONF,
};
use power_snitch::settings::model::UpsEntry;

const V280: NutVersion = NutVersion::new(2, 8, 0);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            all_files(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// Every file of the corpus reads into a document and back byte for byte, and each NUT file
/// goes through a no-op edit (setting what NUT already reads) unchanged.
#[test]
fn every_fixture_survives_a_no_op_edit_byte_for_byte() {
    let mut files = Vec::new();
    all_files(&root().join("tests/fixtures"), &mut files);
    all_files(&root().join("tests/edit-fixtures"), &mut files);
    assert!(files.len() > 500, "{} files", files.len());
    let mut nut_files = 0;
    for p in &files {
        let bytes = fs::read(p).unwrap();
        assert_eq!(Doc::parse(&bytes).to_bytes(), bytes, "{}", p.display());
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        for version in [V280, NutVersion::NEWEST] {
            let same = match name.as_str() {
                UPS_CONF => {
                    let mut d = UpsConfDoc::parse(&bytes, version);
                    for s in d.section_names() {
                        let entries = d.entries(&s);
                        for e in &entries {
                            // The value NUT uses (the last), set again.
                            let last = entries.iter().rev().find(|x| x.name == e.name).unwrap();
                            let _ = d.set(&s, &last.name, last.value.as_deref());
                        }
                    }
                    d.to_bytes()
                }
                UPSD_CONF => {
                    let mut d = UpsdDoc::parse(&bytes, version);
                    let mut sink = power_snitch::nut::diag::Sink::new(UPSD_CONF);
                    let lines =
                        power_snitch::nut::conf::read_lines(&bytes, version.dialect(), &mut sink);
                    let cx = context(version);
                    let conf = power_snitch::nut::upsd_conf::parse(&lines, &cx, &mut sink);
                    let list: Vec<(String, Option<u16>)> = lines
                        .iter()
                        .filter(|l| {
                            !l.skipped && l.words.first().is_some_and(|w| w.text == "LISTEN")
                        })
                        .map(|l| {
                            (
                                l.words
                                    .get(1)
                                    .map(|w| w.text.to_string())
                                    .unwrap_or_default(),
                                l.words.get(2).and_then(|w| w.text.parse().ok()),
                            )
                        })
                        .collect();
                    // Only lines written as `LISTEN ADDR [PORT]` are set again.
                    let plain = lines
                        .iter()
                        .filter(|l| l.words.first().is_some_and(|w| w.text == "LISTEN"))
                        .all(|l| {
                            !l.skipped
                                && (l.words.len() == 2
                                    || (l.words.len() == 3
                                        && l.words[2].text.parse::<u16>().is_ok()))
                        });
                    if plain && conf.listen.len() == list.len() {
                        let _ = d.set_listen(&list);
                    }
                    d.to_bytes()
                }
                NUT_CONF => {
                    let mut d = NutConfDoc::parse(&bytes);
                    if let Some(m) = d.mode() {
                        d.set_mode(m).unwrap();
                    }
                    d.to_bytes()
                }
                UPSD_USERS => UsersDoc::parse(&bytes, version).to_bytes(),
                UPSMON_CONF => UpsmonDoc::parse(&bytes, version).to_bytes(),
                _ => continue,
            };
            nut_files += 1;
            assert_eq!(
                String::from_utf8_lossy(&same),
                String::from_utf8_lossy(&bytes),
                "{} (NUT {version})",
                p.display()
            );
        }
    }
    assert!(nut_files > 300, "{nut_files} NUT files");
}

fn context(version: NutVersion) -> Context<'static> {
    Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    }
}

fn apply(files: &Files, changes: &BTreeMap<&'static str, Vec<u8>>) -> Files {
    let mut out = files.clone();
    for (k, v) in changes {
        out.insert(k, v.clone());
    }
    out
}

/// The validator over the five files: what it parsed, and its errors.
fn check(files: &Files, version: NutVersion) -> (Parsed, Vec<String>) {
    let state = |n: &str| match files.get(n) {
        Some(t) => FileState::Read {
            text: t.clone(),
            meta: FileMeta {
                mode: 0o100640,
                uid: 0,
                gid: 0,
            },
        },
        None => FileState::Missing,
    };
    let snap = Snapshot {
        ups_conf: state(UPS_CONF),
        upsd_conf: state(UPSD_CONF),
        upsd_users: state(UPSD_USERS),
        upsmon_conf: state(UPSMON_CONF),
        nut_conf: state(NUT_CONF),
        daemon: None,
    };
    let (parsed, findings) = validate(&snap, &context(version));
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}:{}: {}", f.file, f.line, f.message))
        .collect();
    (parsed, errors)
}

/// The lines `new` adds to `old` in one place, when it only adds (else a panic).
fn only_added(old: &[u8], new: &[u8]) -> Vec<String> {
    let old: Vec<&str> = std::str::from_utf8(old)
        .unwrap()
        .split_inclusive('\n')
        .collect();
    let new: Vec<&str> = std::str::from_utf8(new)
        .unwrap()
        .split_inclusive('\n')
        .collect();
    let p = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let s = old[p..]
        .iter()
        .rev()
        .zip(new[p..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    assert_eq!(p + s, old.len(), "lines changed, not only added");
    new[p..new.len() - s]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn debian() -> Files {
    let dir = root().join("tests/edit-fixtures/debian-2.8.0");
    [UPS_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, NUT_CONF]
        .into_iter()
        .map(|n| (n, fs::read(dir.join(n)).unwrap()))
        .collect()
}

/// The sections `probe --ups-conf` suggests for a captured tree.
fn probe_sections(case: &str, version: &str) -> Vec<String> {
    let empty = std::env::temp_dir().join(format!("ps-edit-empty-{}", std::process::id()));
    fs::create_dir_all(&empty).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_power-snitch"))
        .args([
            "probe",
            "--ups-conf",
            "--nut-version",
            version,
            "--sysfs-root",
        ])
        .arg(root().join("tests/fixtures/usb").join(case).join("sys"))
        .arg("--nut-dir")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    String::from_utf8(o.stdout)
        .unwrap()
        .split("\n\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn request(text: &str, version: NutVersion, seed: u8) -> AdoptRequest {
    AdoptRequest {
        section: SectionSpec::from_text(text, version).unwrap(),
        password: edit::password_from(&[seed; 24]),
        version,
    }
}

/// From Debian's fresh /etc/nut (MODE=none, no section), adopting two identical UPSes that
/// the probe tells apart by busport: the sections are what the probe suggests, the MONITOR
/// lines and accounts match, MODE is standalone, and the validator finds no error.
#[test]
fn adopting_from_a_fresh_debian_directory_writes_what_the_probe_suggests() {
    let v = NutVersion::new(2, 8, 5);
    let suggested = probe_sections("identical-twins", "2.8.5");
    assert_eq!(suggested.len(), 2, "{suggested:?}");
    let fresh = debian();
    let (parsed, _) = check(&fresh, v);
    assert!(
        parsed.ups.unwrap().sections.is_empty(),
        "a fresh directory has no UPS"
    );
    let mut files = fresh.clone();
    for (i, text) in suggested.iter().enumerate() {
        let req = request(text, v, i as u8 + 1);
        let changes = edit::adopt(&files, &req).unwrap();
        let mut names: Vec<&str> = changes.keys().copied().collect();
        names.sort_unstable();
        let want: Vec<&str> = if i == 0 {
            vec![NUT_CONF, UPS_CONF, UPSD_USERS, UPSMON_CONF]
        } else {
            vec![UPS_CONF, UPSD_USERS, UPSMON_CONF]
        };
        assert_eq!(names, want, "adopt {i} changes");
        files = apply(&files, &changes);
    }
    let (parsed, errors) = check(&files, v);
    assert_eq!(errors, Vec::<String>::new());
    let ups = parsed.ups.unwrap();
    for text in &suggested {
        let spec = SectionSpec::from_text(text, v).unwrap();
        let s = ups.section(&spec.name).unwrap();
        let got: Vec<(String, Option<String>)> = s
            .entries
            .iter()
            .map(|e| (e.name.to_string(), e.value.as_deref().map(str::to_string)))
            .collect();
        let want: Vec<(String, Option<String>)> = spec
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        assert_eq!(got, want);
        // The text itself: the section's lines are the probe's, byte for byte.
        assert!(
            String::from_utf8_lossy(&files[UPS_CONF]).contains(text.as_str()),
            "{text}"
        );
    }
    let monitors = parsed.upsmon.unwrap().monitors;
    assert_eq!(monitors.len(), 2);
    let users = parsed.users.unwrap();
    for (i, m) in monitors.iter().enumerate() {
        assert_eq!(
            (m.host.as_str(), m.port, m.power_value),
            ("localhost", 3493, 1)
        );
        assert_eq!(m.user, edit::monitor_account(&m.ups));
        assert_eq!(m.password, edit::password_from(&[i as u8 + 1; 24]));
        let u = users.user(&m.user).unwrap();
        assert_eq!(u.password.as_ref().unwrap().0, m.password);
        assert_eq!(u.role, Some(power_snitch::nut::upsd_users::Role::Primary));
        // It may run the battery tests, and no command that cuts the power.
        assert_eq!(u.instcmds, edit::BATTERY_TEST_COMMANDS);
    }
    assert_eq!(
        parsed.nut.unwrap().mode.map(|m| m.0),
        Some(Mode::Standalone)
    );
    // Only the lines adopt concerns changed: the fresh files are still there around them.
    for n in [UPS_CONF, UPSD_USERS, UPSMON_CONF] {
        let added = only_added(&fresh[n], &files[n]);
        let want = if n == UPSMON_CONF { 2 } else { 2 * 7 + 2 };
        let want = if n == UPSD_USERS { 2 * 5 } else { want };
        assert_eq!(added.len(), want, "{n}: {added:?}");
    }
    // Remove undoes both adopts, byte for byte, but for MODE.
    for text in suggested.iter().rev() {
        let name = SectionSpec::from_text(text, v).unwrap().name;
        files = apply(&files, &edit::remove(&files, &name, v).unwrap());
    }
    for n in [UPS_CONF, UPSD_USERS, UPSMON_CONF] {
        assert_eq!(
            String::from_utf8_lossy(&files[n]),
            String::from_utf8_lossy(&fresh[n]),
            "{n}"
        );
    }
}

/// NUT 2.8.0's usbhid-ups has no busport: the second twin cannot be told apart, and adopt
/// refuses to write a second section for what the first already serves.
#[test]
fn adopt_refuses_a_device_a_section_already_serves() {
    let suggested = probe_sections("identical-twins", "2.8.0");
    assert_eq!(suggested.len(), 2);
    let first = edit::adopt(&debian(), &request(&suggested[0], V280, 1)).unwrap();
    let files = apply(&debian(), &first);
    let err = edit::adopt(&files, &request(&suggested[1], V280, 2)).unwrap_err();
    assert_eq!(
        err.reason,
        Reason::SameDevice {
            section: "cps".into()
        },
        "{err}"
    );
    // The same name twice.
    let err = edit::adopt(&files, &request(&suggested[0], V280, 3)).unwrap_err();
    assert!(matches!(err.reason, Reason::Exists { .. }), "{err}");
    // MODE=netserver stays.
    let mut netserver = debian();
    netserver.insert(NUT_CONF, b"MODE=netserver\n".to_vec());
    let changes = edit::adopt(&netserver, &request(&suggested[0], V280, 1)).unwrap();
    assert!(!changes.contains_key(NUT_CONF));
}

/// The settings of a UPS into NUT: the driver and port into its section, the credentials into
/// the MONITOR line and the account; creating each when missing, and changing nothing when
/// NUT already says the same.
#[test]
fn settings_go_into_nut_creating_what_is_missing() {
    let mut entry = UpsEntry::new("rack");
    entry.nut_driver = "dummy-ups".into();
    entry.nut_port = Some("rack.dev".into());
    entry.nut_username = Some("watcher".into());
    entry.nut_password = Some(power_snitch::settings::model::Secret("s3cret-pw".into()));
    let req = |e: &UpsEntry| SyncRequest {
        name: e.nut_device_name.clone(),
        driver: e.nut_driver.clone(),
        port: e.nut_port.clone(),
        user: e.nut_username.clone(),
        password: e.nut_password.as_ref().map(|s| s.0.clone()),
        upsd_host: e.upsd_host.clone(),
        upsd_port: e.upsd_port,
        version: V280,
    };
    let mut files = debian();
    files.insert(NUT_CONF, b"MODE=standalone\n".to_vec());
    let changes = edit::to_nut(&files, &req(&entry)).unwrap();
    files = apply(&files, &changes);
    let (parsed, errors) = check(&files, V280);
    assert_eq!(errors, Vec::<String>::new());
    let s = parsed
        .ups
        .as_ref()
        .unwrap()
        .section("rack")
        .unwrap()
        .clone();
    assert_eq!(s.value("driver"), Some("dummy-ups"));
    assert_eq!(s.value("port"), Some("rack.dev"));
    let m = &parsed.upsmon.as_ref().unwrap().monitors[0];
    assert_eq!(
        (m.ups.as_str(), m.user.as_str(), m.password.as_str()),
        ("rack", "watcher", "s3cret-pw")
    );
    let u = parsed
        .users
        .as_ref()
        .unwrap()
        .user("watcher")
        .unwrap()
        .clone();
    assert_eq!(u.password.unwrap().0, "s3cret-pw");
    // Again: nothing changes.
    assert_eq!(edit::to_nut(&files, &req(&entry)).unwrap(), BTreeMap::new());
    // A new port and password: only those lines change.
    entry.nut_port = Some("other.dev".into());
    entry.nut_password = Some(power_snitch::settings::model::Secret("n3w-pw".into()));
    let changes = edit::to_nut(&files, &req(&entry)).unwrap();
    for (n, new) in &changes {
        let old = String::from_utf8_lossy(&files[n]).to_string();
        let new = String::from_utf8_lossy(new).to_string();
        let gone: Vec<&str> = old
            .lines()
            .filter(|l| !new.lines().any(|m| m == *l))
            .collect();
        assert_eq!(gone.len(), 1, "{n}: {gone:?}");
    }
    files = apply(&files, &changes);
    let (parsed, _) = check(&files, V280);
    assert_eq!(
        parsed.ups.unwrap().section("rack").unwrap().value("port"),
        Some("other.dev")
    );
    assert_eq!(parsed.upsmon.unwrap().monitors[0].password, "n3w-pw");
    // A remote upsd's files are not these.
    entry.upsd_host = "nas.lan".into();
    let err = edit::to_nut(&files, &req(&entry)).unwrap_err();
    assert!(matches!(err.reason, Reason::NotLocal { .. }), "{err}");
}

/// Each class of value NUT cannot carry is refused, saying what and where, never the value.
#[test]
fn what_nut_cannot_carry_is_refused() {
    let base = b"[ups]\n\tdriver = dummy-ups\n\tport = x.dev\n";
    let set = |section: &str, key: &str, value: &str| {
        let mut d = UpsConfDoc::parse(base, V280);
        d.set(section, key, Some(value)).map(|_| ()).unwrap_err()
    };
    for (section, key, value, why) in [
        ("ups", "desc", "two\nlines", "0x0a"),
        ("ups", "desc", "cr\rhere", "0x0d"),
        ("ups", "desc", "tab\there", "0x09"),
        ("ups", "desc", "caf\u{e9}", "0xc3"),
        ("ups", "desc", "del\x7f", "0x7f"),
        ("ups", "desc", &"x".repeat(513), "513 characters"),
        ("up s", "desc", "x", "a space"),
        ("[ups]", "desc", "x", "`[`"),
        ("a/b", "desc", "x", "`/`"),
        ("a..b", "desc", "x", "`..`"),
        ("-x", "desc", "x", "`-`"),
        ("ups", "de sc", "x", "not a setting name"),
        ("ups", "a=b", "x", "not a setting name"),
    ] {
        let err = set(section, key, value);
        let text = err.to_string();
        assert!(text.contains(why), "{section} {key}: {text}");
        assert!(text.starts_with("ups.conf: "), "{text}");
        if value.len() > 3 {
            assert!(!text.contains(value), "the value is not echoed: {text}");
        }
    }
    // A password upsmon cannot send.
    for bad in ["two words", "a=b", "x#y", "q\"q", "b\\s", ""] {
        let req = AdoptRequest {
            section: SectionSpec::from_text("[u]\n\tdriver = dummy-ups\n\tport = u.dev", V280)
                .unwrap(),
            password: bad.into(),
            version: V280,
        };
        let err = edit::adopt(&debian(), &req).unwrap_err();
        assert_eq!(err.file, UPSMON_CONF, "{err}");
        assert!(err.to_string().contains("the password"), "{err}");
    }
    // A quoted `#` is written escaped, which every release reads.
    let mut d = UpsConfDoc::parse(base, V280);
    d.set("ups", "desc", Some("Rack #3 \"left\"")).unwrap();
    let text = String::from_utf8(d.to_bytes()).unwrap();
    assert!(
        text.contains("\tdesc = \"Rack \\#3 \\\"left\\\"\"\n"),
        "{text}"
    );
    let mut files = debian();
    files.insert(UPS_CONF, d.to_bytes());
    let (parsed, _) = check(&files, NutVersion::new(2, 7, 4));
    assert_eq!(
        parsed.ups.unwrap().section("ups").unwrap().value("desc"),
        Some("Rack #3 \"left\"")
    );
}
