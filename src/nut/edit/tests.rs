//! Property tests of the editor over generated files: what NUT's parser reads from the result
//! is the intended model, the lines an edit does not concern keep their bytes, and an edit
//! followed by its inverse gives the original bytes.

use super::*;
use crate::nut::conf::{format_word, read_lines};
use crate::nut::diag::Sink;
use crate::nut::drivers::DriverDb;
use crate::nut::version::NutVersion;
use crate::nut::{ups_conf, upsd_users, upsmon_conf, Context, Rng};

type Model = Vec<(String, Option<String>)>;

/// ups.conf as a model: globals and sections, each a list of (key, value or flag).
#[derive(Clone, Debug, PartialEq, Eq)]
struct UpsModel {
    globals: Model,
    sections: Vec<(String, Model)>,
}

const VALUES: &[&str] = &[
    "abc",
    "a b",
    "x#y",
    "q\"q",
    "b\\s",
    "1=2",
    "",
    "auto",
    "/dev/ttyUSB0",
    "Rack #3",
];
const KEYS: &[&str] = &[
    "driver",
    "port",
    "desc",
    "vendorid",
    "serial",
    "pollinterval",
    "nolock",
    "maxretry",
];
const VERSIONS: &[NutVersion] = &[
    NutVersion::new(2, 7, 4),
    NutVersion::new(2, 8, 0),
    NutVersion::NEWEST,
];

struct Style {
    crlf: bool,
    indent: &'static str,
}

fn render_value(rng: &mut Rng, v: &str) -> String {
    let w = format_word(v);
    // Quotes a value does not need, sometimes: the user's style.
    if !w.starts_with('"') && rng.below(4) == 0 {
        format!("\"{w}\"")
    } else {
        w
    }
}

fn noise(rng: &mut Rng, out: &mut Vec<String>) {
    for _ in 0..rng.below(3) {
        out.push(
            rng.pick(&["# a comment", "", "   ", "\t# indented comment", "#"])
                .to_string(),
        );
    }
}

fn render_entry(rng: &mut Rng, style: &Style, k: &str, v: &Option<String>, out: &mut Vec<String>) {
    let mut line = style.indent.to_string();
    line.push_str(k);
    if let Some(v) = v {
        line.push_str(rng.pick(&[" = ", "=", "  =  ", "\t=\t"]));
        line.push_str(&render_value(rng, v));
    }
    if rng.below(5) == 0 {
        line.push_str(rng.pick(&[" # note", "\t#x", "  # \"quoted\" note"]));
    }
    out.push(line);
}

fn gen_model(rng: &mut Rng) -> UpsModel {
    let entries = |rng: &mut Rng| {
        let mut m: Model = Vec::new();
        for _ in 0..rng.below(5) {
            let k = rng.pick(KEYS).to_string();
            if m.iter().any(|e| e.0 == k) {
                continue;
            }
            let v = (rng.below(6) != 0).then(|| rng.pick(VALUES).to_string());
            m.push((k, v));
        }
        m
    };
    let globals = if rng.below(3) == 0 {
        entries(rng)
    } else {
        Vec::new()
    };
    let mut sections = Vec::new();
    for i in 0..rng.below(4) {
        sections.push((format!("ups{i}"), entries(rng)));
    }
    UpsModel { globals, sections }
}

fn render(rng: &mut Rng, m: &UpsModel) -> Vec<u8> {
    let style = Style {
        crlf: rng.below(4) == 0,
        indent: rng.pick(&["", "\t", "  ", "    "]),
    };
    let mut lines = Vec::new();
    noise(rng, &mut lines);
    for (k, v) in &m.globals {
        render_entry(
            rng,
            &Style {
                crlf: style.crlf,
                indent: "",
            },
            k,
            v,
            &mut lines,
        );
        noise(rng, &mut lines);
    }
    for (name, entries) in &m.sections {
        noise(rng, &mut lines);
        lines.push(format!("[{name}]"));
        for (k, v) in entries {
            render_entry(rng, &style, k, v, &mut lines);
            if rng.below(4) == 0 {
                noise(rng, &mut lines);
            }
        }
    }
    noise(rng, &mut lines);
    let end = if style.crlf { "\r\n" } else { "\n" };
    let mut text = lines.join(end);
    // Sometimes no final newline (after a comment, so that NUT reads every setting).
    if rng.below(5) == 0 {
        text.push_str(end);
        text.push_str("# end");
    } else if !lines.is_empty() {
        text.push_str(end);
    }
    text.into_bytes()
}

fn read_model(bytes: &[u8], version: NutVersion) -> UpsModel {
    let mut sink = Sink::new(crate::nut::UPS_CONF);
    let lines = read_lines(bytes, version.dialect(), &mut sink);
    let conf = ups_conf::parse(&lines, &mut sink);
    let model = |es: &[ups_conf::Entry]| -> Model {
        es.iter()
            .map(|e| (e.name.to_string(), e.value.as_deref().map(str::to_string)))
            .collect()
    };
    UpsModel {
        globals: model(&conf.globals),
        sections: conf
            .sections
            .iter()
            .map(|s| (s.name.clone(), model(&s.entries)))
            .collect(),
    }
}

/// The physical lines (without endings) of `old` that `new` does not keep in place: the
/// common prefix and suffix taken off.
fn changed(old: &[u8], new: &[u8]) -> (std::ops::Range<usize>, usize) {
    let o: Vec<Vec<u8>> = doc::Doc::parse(old)
        .lines
        .into_iter()
        .map(|l| l.text)
        .collect();
    let n: Vec<Vec<u8>> = doc::Doc::parse(new)
        .lines
        .into_iter()
        .map(|l| l.text)
        .collect();
    let p = o.iter().zip(&n).take_while(|(a, b)| a == b).count();
    let s = o[p..]
        .iter()
        .rev()
        .zip(n[p..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (p..o.len() - s, n.len() - s - p)
}

/// The physical line (0-based) where NUT reads `key` last in section `name` (or the globals).
fn line_of(bytes: &[u8], version: NutVersion, name: Option<&str>, key: &str) -> Option<usize> {
    let mut sink = Sink::new(crate::nut::UPS_CONF);
    let lines = read_lines(bytes, version.dialect(), &mut sink);
    let conf = ups_conf::parse(&lines, &mut sink);
    let entries = match name {
        Some(n) => conf.section(n)?.entries.clone(),
        None => conf.globals.clone(),
    };
    entries
        .iter()
        .rev()
        .find(|e| e.name == key)
        .map(|e| e.pos.line as usize - 1)
}

#[test]
fn ups_conf_edits_read_back_as_meant_and_touch_only_their_lines() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut counts = [0usize; 6];
    for case in 0..4000 {
        let version = rng.pick(VERSIONS);
        let model = gen_model(&mut rng);
        let bytes = render(&mut rng, &model);
        assert_eq!(
            read_model(&bytes, version),
            model,
            "generated {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let mut doc = UpsConfDoc::parse(&bytes, version);
        assert_eq!(doc.to_bytes(), bytes);
        let mut want = model.clone();
        let value = rng.pick(VALUES).to_string();
        let kind = rng.below(6);
        let ctx = || {
            format!(
                "case {case} kind {kind} NUT {version}\n{}",
                String::from_utf8_lossy(&bytes)
            )
        };
        match kind {
            // Set a key of a section: the line NUT reads is replaced, or one is added.
            0 | 1 if !model.sections.is_empty() => {
                let s = rng.below(model.sections.len() as u64) as usize;
                let name = model.sections[s].0.clone();
                let key = rng.pick(KEYS).to_string();
                let flag = rng.below(8) == 0;
                let v = (!flag).then(|| value.clone());
                let old = model.sections[s].1.iter().find(|e| e.0 == key).cloned();
                let at = line_of(&bytes, version, Some(&name), &key);
                doc.set(&name, &key, v.as_deref()).unwrap();
                match want.sections[s].1.iter_mut().find(|e| e.0 == key) {
                    Some(e) => e.1 = v.clone(),
                    None => want.sections[s].1.push((key.clone(), v.clone())),
                }
                let after = doc.to_bytes();
                assert_eq!(read_model(&after, version), want, "{}", ctx());
                let (gone, added) = changed(&bytes, &after);
                match at {
                    Some(line) if old.as_ref().map(|o| &o.1) != Some(&v) => {
                        assert_eq!((gone.clone(), added), (line..line + 1, 1), "{}", ctx())
                    }
                    Some(_) => assert_eq!(after, bytes, "{}", ctx()),
                    None => assert_eq!((gone.len(), added), (0, 1), "{}", ctx()),
                }
                // The inverse: the old value back, or the new key removed.
                match old {
                    Some((_, old_v)) => {
                        let was_canonical = {
                            let line = &doc::Doc::parse(&bytes).lines[at.unwrap()].text;
                            old_v.as_ref().is_none_or(|o| {
                                let text = String::from_utf8_lossy(line);
                                !text.contains(&format!("\"{o}\""))
                                    || format_word(o).starts_with('"')
                            })
                        };
                        doc.set(&name, &key, old_v.as_deref()).unwrap();
                        let values = old_v.is_some() && v.is_some();
                        if values
                            && (was_canonical
                                || v.as_deref()
                                    .is_some_and(|v| !format_word(v).starts_with('"')))
                        {
                            same_but_newline(&doc.to_bytes(), &bytes, &ctx());
                        }
                        assert_eq!(read_model(&doc.to_bytes(), version), model, "{}", ctx());
                    }
                    None => {
                        doc.remove(&name, &key).unwrap();
                        same_but_newline(&doc.to_bytes(), &bytes, &ctx());
                    }
                }
                counts[0] += 1;
            }
            // Remove a key: gone from the model, no other line changed.
            2 if !model.sections.is_empty() => {
                let s = rng.below(model.sections.len() as u64) as usize;
                let name = model.sections[s].0.clone();
                let key = rng.pick(KEYS).to_string();
                doc.remove(&name, &key).unwrap();
                want.sections[s].1.retain(|e| e.0 != key);
                let after = doc.to_bytes();
                assert_eq!(read_model(&after, version), want, "{}", ctx());
                let (gone, added) = changed(&bytes, &after);
                assert!(added == 0 && gone.len() <= 1, "{}", ctx());
                counts[1] += 1;
            }
            // Add a section, then remove it.
            3 => {
                let name = format!("new{}", rng.below(3));
                let entries: Vec<Entry> = (0..rng.below(4))
                    .map(|i| Entry {
                        name: KEYS[i as usize].to_string(),
                        value: Some(rng.pick(VALUES).to_string()),
                    })
                    .collect();
                doc.add_section(&SectionSpec {
                    name: name.clone(),
                    entries: entries.clone(),
                })
                .unwrap();
                want.sections.push((
                    name.clone(),
                    entries
                        .iter()
                        .map(|e| (e.name.clone(), e.value.clone()))
                        .collect(),
                ));
                let after = doc.to_bytes();
                assert_eq!(read_model(&after, version), want, "{}", ctx());
                let (gone, added) = changed(&bytes, &after);
                assert_eq!(gone.len(), 0, "{}", ctx());
                let blank = usize::from(!bytes.is_empty());
                assert_eq!(added, 1 + entries.len() + blank, "{}", ctx());
                // New lines copy the indentation of the sections' settings.
                if let Some(e) = entries.first() {
                    let text = String::from_utf8_lossy(&after).to_string();
                    let indent = model
                        .sections
                        .iter()
                        .rev()
                        .find(|s| !s.1.is_empty())
                        .map_or("\t", |_| "");
                    if indent == "\t" {
                        assert!(text.contains(&format!("\n\t{} ", e.name)), "{}", ctx());
                    }
                }
                assert!(matches!(
                    doc.add_section(&SectionSpec {
                        name: name.clone(),
                        entries: Vec::new()
                    })
                    .unwrap_err()
                    .reason,
                    Reason::Exists { .. }
                ));
                doc.remove_section(&name).unwrap();
                same_but_newline(&doc.to_bytes(), &bytes, &ctx());
                counts[2] += 1;
            }
            // Remove a section: its lines go, the others stay.
            4 if !model.sections.is_empty() => {
                let s = rng.below(model.sections.len() as u64) as usize;
                let name = model.sections[s].0.clone();
                doc.remove_section(&name).unwrap();
                want.sections.remove(s);
                let after = doc.to_bytes();
                assert_eq!(read_model(&after, version), want, "{}", ctx());
                let (_, added) = changed(&bytes, &after);
                assert_eq!(added, 0, "{}", ctx());
                counts[3] += 1;
            }
            // A global: set, then removed when it was new.
            5 => {
                let key = rng.pick(KEYS).to_string();
                let existed = model.globals.iter().any(|e| e.0 == key);
                doc.set_global(&key, Some(&value)).unwrap();
                match want.globals.iter_mut().find(|e| e.0 == key) {
                    Some(e) => e.1 = Some(value.clone()),
                    None => want.globals.push((key.clone(), Some(value.clone()))),
                }
                let after = doc.to_bytes();
                assert_eq!(read_model(&after, version), want, "{}", ctx());
                let (gone, added) = changed(&bytes, &after);
                assert!(gone.len() <= 1 && added <= 1, "{}", ctx());
                if !existed {
                    doc.remove_global(&key);
                    same_but_newline(&doc.to_bytes(), &bytes, &ctx());
                }
                counts[4] += 1;
            }
            _ => counts[5] += 1,
        }
    }
    assert!(counts[..5].iter().all(|&c| c > 200), "{counts:?}");
}

/// `got` is `want`, or `want` with the final newline an edit at its end gave it.
fn same_but_newline(got: &[u8], want: &[u8], ctx: &str) {
    let fixed = |w: &[u8]| {
        let mut w = w.to_vec();
        if !w.is_empty() && !w.ends_with(b"\n") {
            let crlf = w.windows(2).any(|p| p == b"\r\n");
            w.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        w
    };
    assert!(
        got == want || got == fixed(want),
        "{ctx}\n got {:?}\nwant {:?}",
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want)
    );
}

fn cx(version: NutVersion) -> Context<'static> {
    Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    }
}

fn read_users(bytes: &[u8], version: NutVersion) -> upsd_users::UpsdUsers {
    let mut sink = Sink::new(crate::nut::UPSD_USERS);
    let lines = read_lines(bytes, version.dialect(), &mut sink);
    upsd_users::parse(&lines, &cx(version), &mut sink)
}

fn read_upsmon(bytes: &[u8], version: NutVersion) -> upsmon_conf::UpsmonConf {
    let mut sink = Sink::new(crate::nut::UPSMON_CONF);
    let lines = read_lines(bytes, version.dialect(), &mut sink);
    upsmon_conf::parse(&lines, &cx(version), &mut sink)
}

const PASSWORDS: &[&str] = &["s3cret", "p@ss-word_1", "X!y%z", "(paren)"];

#[test]
fn users_and_monitors_read_back_as_meant_and_undo_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..2000 {
        let version = rng.pick(VERSIONS);
        let ending = if rng.below(4) == 0 { "\r\n" } else { "\n" };
        let indent = rng.pick(&["", "\t", "  "]);
        // upsd.users with a few users, in any of the spellings upsd reads.
        let mut users = String::from("# users\n");
        let n = rng.below(3);
        for i in 0..n {
            users.push_str(&format!("[u{i}]{ending}"));
            users.push_str(&format!(
                "{indent}password = {}{ending}",
                format_word(rng.pick(PASSWORDS))
            ));
            let role = rng.pick(&["upsmon primary", "upsmon = secondary", "upsmon master", ""]);
            if !role.is_empty() {
                users.push_str(&format!("{indent}{role}{ending}"));
            }
            if rng.below(2) == 0 {
                users.push_str(&format!(
                    "{indent}actions = SET{ending}{indent}actions = FSD # too{ending}"
                ));
            }
            users.push_str(ending);
        }
        let bytes = users.into_bytes();
        let ctx = || {
            format!(
                "case {case} NUT {version}\n{}",
                String::from_utf8_lossy(&bytes)
            )
        };
        let mut doc = UsersDoc::parse(&bytes, version);
        let name = format!("u{}", rng.below(4));
        let existed = (name.as_bytes()[1] - b'0') < n as u8;
        let spec = UserSpec {
            name: name.clone(),
            password: rng.pick(PASSWORDS).to_string(),
            upsmon: rng.pick(&[Some(Role::Primary), Some(Role::Secondary), None]),
            actions: if rng.below(2) == 0 {
                vec!["SET".into()]
            } else {
                Vec::new()
            },
            instcmds: if rng.below(3) == 0 {
                vec!["load.off".into(), "ALL".into()]
            } else {
                Vec::new()
            },
        };
        doc.put(&spec).unwrap();
        let after = doc.to_bytes();
        let read = read_users(&after, version);
        let u = read.user(&name).unwrap_or_else(|| panic!("{}", ctx()));
        assert_eq!(
            u.password.as_ref().map(|p| p.0.as_str()),
            Some(spec.password.as_str()),
            "{}",
            ctx()
        );
        let role = spec.upsmon.map(|r| match r {
            Role::Primary => upsd_users::Role::Primary,
            Role::Secondary => upsd_users::Role::Secondary,
        });
        assert_eq!(u.role, role, "{}", ctx());
        assert_eq!(u.actions, spec.actions, "{}", ctx());
        assert_eq!(u.instcmds, spec.instcmds, "{}", ctx());
        assert_eq!(
            read.users.len() as u64,
            n + u64::from(!existed),
            "{}",
            ctx()
        );
        if !existed {
            doc.remove(&name).unwrap();
            same_but_newline(&doc.to_bytes(), &bytes, &ctx());
        }

        // upsmon.conf: MONITOR lines and directives.
        let mut mon = String::from("# upsmon\nMINSUPPLIES 1\n");
        let m = rng.below(3);
        for i in 0..m {
            let role = Role::Primary.word(version);
            mon.push_str(&format!(
                "{indent}MONITOR ups{i}@localhost 1 u{i} {} {role}{ending}",
                rng.pick(PASSWORDS)
            ));
        }
        mon.push_str(&format!(
            "SHUTDOWNCMD \"/sbin/shutdown -h +0\"{ending}# end{ending}"
        ));
        let bytes = mon.into_bytes();
        let ctx = || {
            format!(
                "case {case} NUT {version}\n{}",
                String::from_utf8_lossy(&bytes)
            )
        };
        let mut doc = UpsmonDoc::parse(&bytes, version);
        let ups = format!("ups{}", rng.below(4));
        let existed = (ups.as_bytes()[3] - b'0') < m as u8;
        let spec = MonitorSpec {
            ups: ups.clone(),
            host: rng.pick(&["localhost", "127.0.0.1"]).to_string(),
            port: rng.pick(&[None, Some(3493), Some(13493)]),
            power: rng.below(3) as u32,
            user: "mon".into(),
            password: rng.pick(PASSWORDS).to_string(),
            role: rng.pick(&[Role::Primary, Role::Secondary]),
        };
        doc.put_monitor(&spec).unwrap();
        let after = doc.to_bytes();
        let read = read_upsmon(&after, version);
        let got: Vec<_> = read.monitors.iter().filter(|x| x.ups == ups).collect();
        assert_eq!(got.len(), 1, "{}", ctx());
        assert_eq!(
            (
                got[0].port,
                got[0].power_value,
                got[0].user.as_str(),
                got[0].password.as_str()
            ),
            (
                spec.port.unwrap_or(3493),
                spec.power,
                "mon",
                spec.password.as_str()
            ),
            "{}",
            ctx()
        );
        assert_eq!(
            read.monitors.len() as u64,
            m + u64::from(!existed),
            "{}",
            ctx()
        );
        let (gone, added) = changed(&bytes, &after);
        assert_eq!((gone.len(), added), (usize::from(existed), 1), "{}", ctx());
        if !existed {
            doc.remove_monitor(&ups, "localhost").unwrap();
            same_but_newline(&doc.to_bytes(), &bytes, &ctx());
        }
        // A directive given twice: the one upsmon uses (the last) is replaced.
        let mut doc = UpsmonDoc::parse(&bytes, version);
        doc.set("MINSUPPLIES", &["0"]).unwrap();
        doc.set("NOTIFYCMD", &["/usr/bin/notify me"]).unwrap();
        let read = read_upsmon(&doc.to_bytes(), version);
        assert_eq!(read.min_supplies.map(|m| m.0), Some(0), "{}", ctx());
        let text = String::from_utf8(doc.to_bytes()).unwrap();
        assert!(
            text.contains("\nMINSUPPLIES 0") && text.contains("NOTIFYCMD \"/usr/bin/notify me\""),
            "{text}"
        );
        doc.remove("NOTIFYCMD", None);
        doc.set("MINSUPPLIES", &["1"]).unwrap();
        same_but_newline(&doc.to_bytes(), &bytes, &ctx());
    }
}

#[test]
fn listen_lines_and_mode() {
    let v = NutVersion::new(2, 8, 0);
    let text = b"# upsd\nMAXAGE 15\nLISTEN 127.0.0.1 3493 # local\nLISTEN ::1\n";
    let mut d = UpsdDoc::parse(text, v);
    d.set_listen(&[("127.0.0.1".into(), Some(3493)), ("::1".into(), None)])
        .unwrap();
    assert_eq!(d.to_bytes(), text);
    d.set_listen(&[("0.0.0.0".into(), Some(3493))]).unwrap();
    assert_eq!(
        d.to_bytes(),
        b"# upsd\nMAXAGE 15\nLISTEN 0.0.0.0 3493 # local\n"
    );
    d.set_listen(&[
        ("0.0.0.0".into(), Some(3493)),
        ("::".into(), Some(13493)),
        ("10.0.0.1".into(), None),
    ])
    .unwrap();
    assert_eq!(
        String::from_utf8(d.to_bytes()).unwrap(),
        "# upsd\nMAXAGE 15\nLISTEN 0.0.0.0 3493 # local\nLISTEN :: 13493\nLISTEN 10.0.0.1\n"
    );
    let mut d = UpsdDoc::parse(b"MAXAGE 15", v);
    d.set_listen(&[("127.0.0.1".into(), None)]).unwrap();
    assert_eq!(d.to_bytes(), b"MAXAGE 15\nLISTEN 127.0.0.1\n");
    assert!(d.set_listen(&[("a b".into(), None)]).is_err());

    for (input, mode, want) in [
        ("MODE=none\n", Mode::Standalone, "MODE=standalone\n"),
        (
            "# c\nexport MODE=\"none\" # why\r\n",
            Mode::NetServer,
            "# c\nexport MODE=netserver # why\n",
        ),
        (
            "MODE=none\nMODE=netclient\n",
            Mode::Standalone,
            "MODE=none\nMODE=standalone\n",
        ),
        ("", Mode::Standalone, "MODE=standalone\n"),
        (
            "# only a comment",
            Mode::Standalone,
            "# only a comment\nMODE=standalone\n",
        ),
        ("  MODE=none\n", Mode::None, "  MODE=none\n"),
    ] {
        let mut d = NutConfDoc::parse(input.as_bytes());
        d.set_mode(mode).unwrap();
        assert_eq!(String::from_utf8(d.to_bytes()).unwrap(), want, "{input:?}");
        assert_eq!(d.mode(), Some(mode));
    }
}

use crate::nut::nut_conf::Mode;

#[test]
fn passwords_from_random_bytes_are_carried_by_upsd_and_upsmon() {
    let mut rng = Rng(7);
    for _ in 0..500 {
        let mut b = [0u8; 24];
        for x in &mut b {
            *x = rng.below(256) as u8;
        }
        let p = password_from(&b);
        assert_eq!(p.len(), 32);
        assert!(value::check_login("p", &p).is_ok(), "{p}");
        assert_eq!(format_word(&p), p, "written bare");
    }
    assert_ne!(password_from(&[0; 24]), password_from(&[1; 24]));
    assert_eq!(password_from(&[0xff; 24]), "_".repeat(32));
}

#[test]
fn a_last_line_ending_in_a_backslash_is_not_joined_to_a_new_line() {
    let v = NutVersion::new(2, 8, 0);
    for text in [&b"[a]\n\tdesc = x\\"[..], b"[a]\n\tdesc = x\\\n"] {
        let mut d = UpsConfDoc::parse(text, v);
        let err = d.set("a", "port", Some("auto")).unwrap_err();
        assert_eq!(
            (err.line, err.file),
            (Some(2), crate::nut::UPS_CONF),
            "{err}"
        );
        assert!(err.to_string().contains("backslash"), "{err}");
        assert_eq!(d.to_bytes(), text);
    }
    // An escaped backslash ends the value: the new line is its own.
    let mut d = UpsConfDoc::parse(b"[a]\n\tdesc = x\\\\", v);
    d.set("a", "port", Some("auto")).unwrap();
    assert_eq!(d.to_bytes(), b"[a]\n\tdesc = x\\\\\n\tport = auto\n");
}

#[test]
fn a_new_line_is_not_swallowed_by_an_open_quote() {
    let v = NutVersion::new(2, 8, 0);
    let text = b"[a]\n\tdesc = \"open\n\tport = x\n";
    let mut d = UpsConfDoc::parse(text, v);
    let err = d
        .add_section(&SectionSpec {
            name: "b".into(),
            entries: Vec::new(),
        })
        .unwrap_err();
    let text_err = err.to_string();
    assert!(
        text_err.contains("open quote") || text_err.contains("read differently"),
        "{err}"
    );
    assert_eq!(d.to_bytes(), text);
}

#[test]
fn a_last_line_nut_never_reads_stays_unread() {
    let v = NutVersion::new(2, 8, 0);
    let text = b"[a]\n\tport = x\n\tlost";
    let mut d = UpsConfDoc::parse(text, v);
    d.set("a", "driver", Some("dummy-ups")).unwrap();
    assert_eq!(
        d.to_bytes(),
        b"[a]\n\tport = x\n\tdriver = dummy-ups\n\tlost"
    );
    assert_eq!(d.entries("a").len(), 2);
}

/// A quote never closed takes every line after it, the last one without a newline too: an
/// edit of that directive keeps them together, and leaves no last line NUT would drop.
#[test]
fn a_quote_never_closed_keeps_the_last_line_with_its_directive() {
    use crate::nut::lexer::{lex, Mangling};
    let v = NutVersion::new(2, 8, 0);
    let text = b"MAXAGE 15\nLISTEN 12MODE=\"s7.0 127.0.0.1 13402\nLISTEN ::1 1\nx.y";
    let mut d = UpsdDoc::parse(text, v);
    d.set_listen(&[("127.0.0.1".into(), None)]).unwrap();
    let out = d.to_bytes();
    assert_eq!(out, b"MAXAGE 15\nLISTEN 127.0.0.1\n");
    assert!(!lex(&out, v.dialect())
        .events
        .iter()
        .any(|e| matches!(e.what, Mangling::LastLineLost)));
    // A last line without a newline after a closed quote is still a group of its own.
    let mut d = UpsdDoc::parse(b"LISTEN \"::1\"\nx.y", v);
    d.set_listen(&[("127.0.0.1".into(), None)]).unwrap();
    assert_eq!(d.to_bytes(), b"LISTEN \"127.0.0.1\"\nx.y");
    // A quote that runs over line breaks and closes on that last line takes it too: removing
    // the directive leaves no half of it behind.
    let text = b"MAXAGE 15\nLISTEN 12MODE=\"s1.0 SYSLOG\nNOTIFYFLAG LOWBATT\nNOCO\"";
    let mut d = UpsdDoc::parse(text, v);
    d.set_listen(&[]).unwrap();
    assert_eq!(d.to_bytes(), b"MAXAGE 15\n");
}
