//! Any file and any edit: the editor never panics, and a successful edit's result re-reads
//! with no silent change by NUT's lexer that the file did not already have.
//!
//! Input: a byte choosing the NUT version, a byte choosing the edit, then the file and the
//! edit's words, separated by 0xFF bytes (which NUT drops anyway).
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::nut::edit::{
    self, AdoptRequest, Entry, Files, MonitorSpec, NutConfDoc, Role, SectionSpec, SyncRequest,
    UpsConfDoc, UpsdDoc, UpsmonDoc, UserSpec, UsersDoc,
};
use power_snitch::nut::lexer::{lex, Dialect, Mangling};
use power_snitch::nut::nut_conf::Mode;
use power_snitch::nut::version::NutVersion;
use power_snitch::nut::{NUT_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

/// How many of each kind of silent change the lexer makes.
fn manglings(bytes: &[u8], dialect: Dialect) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for e in lex(bytes, dialect).events {
        let kind = match e.what {
            Mangling::DroppedBytes { .. } => "dropped".to_string(),
            Mangling::WordCut { .. } => "cut".to_string(),
            Mangling::WordsDropped { .. } => "words".to_string(),
            Mangling::QuoteRunsOn { .. } => "runs-on".to_string(),
            Mangling::EmptyWord { .. } => "empty".to_string(),
            other => format!("{other:?}"),
        };
        match out.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => out.push((kind, 1)),
        }
    }
    out
}

fn no_new_mangling(before: &[u8], after: &[u8], dialect: Dialect) {
    let old = manglings(before, dialect);
    for (kind, n) in manglings(after, dialect) {
        let had = old.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n);
        assert!(n <= had, "the edit adds {kind}: {n} > {had}\n{:?}", String::from_utf8_lossy(after));
    }
}

fuzz_target!(|data: &[u8]| {
    let [v, op, rest @ ..] = data else { return };
    let version = [NutVersion::new(2, 7, 4), NutVersion::new(2, 8, 0), NutVersion::NEWEST][*v as usize % 3];
    let dialect = version.dialect();
    let mut parts = rest.split(|b| *b == 0xff);
    let file = parts.next().unwrap_or_default();
    let words: Vec<String> = parts.map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let result: Option<Vec<u8>> = match op % 16 {
        0 => {
            let mut d = UpsConfDoc::parse(file, version);
            d.set(w(0), w(1), words.get(2).map(String::as_str)).ok().map(|_| d.to_bytes())
        }
        1 => {
            let mut d = UpsConfDoc::parse(file, version);
            d.remove(w(0), w(1)).ok().map(|_| d.to_bytes())
        }
        2 => {
            let mut d = UpsConfDoc::parse(file, version);
            let entries = words[1.min(words.len())..]
                .chunks(2)
                .map(|c| Entry { name: c[0].clone(), value: c.get(1).cloned() })
                .collect();
            d.add_section(&SectionSpec { name: w(0).into(), entries }).ok().map(|_| d.to_bytes())
        }
        3 => {
            let mut d = UpsConfDoc::parse(file, version);
            d.remove_section(w(0)).ok().map(|_| d.to_bytes())
        }
        4 => {
            let mut d = UpsConfDoc::parse(file, version);
            d.set_global(w(0), words.get(1).map(String::as_str)).ok().map(|_| d.to_bytes())
        }
        5 => {
            let mut d = UsersDoc::parse(file, version);
            let spec = UserSpec {
                name: w(0).into(),
                password: w(1).into(),
                upsmon: [None, Some(Role::Primary), Some(Role::Secondary)][words.len() % 3],
                actions: w(2).split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                instcmds: w(3).split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            };
            d.put(&spec).ok().map(|_| d.to_bytes())
        }
        6 => {
            let mut d = UsersDoc::parse(file, version);
            d.remove(w(0)).ok().map(|_| d.to_bytes())
        }
        7 => {
            let mut d = UpsmonDoc::parse(file, version);
            let spec = MonitorSpec {
                ups: w(0).into(),
                host: w(1).into(),
                port: w(2).parse().ok(),
                power: w(3).parse().unwrap_or(1),
                user: w(4).into(),
                password: w(5).into(),
                role: if words.len() % 2 == 0 { Role::Primary } else { Role::Secondary },
            };
            d.put_monitor(&spec).ok().map(|_| d.to_bytes())
        }
        8 => {
            let mut d = UpsmonDoc::parse(file, version);
            d.remove_monitor(w(0), w(1)).ok().map(|_| d.to_bytes())
        }
        9 => {
            let mut d = UpsmonDoc::parse(file, version);
            let args: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
            d.set(w(0), &args).ok().map(|_| d.to_bytes())
        }
        10 => {
            let mut d = UpsdDoc::parse(file, version);
            let list: Vec<(String, Option<u16>)> =
                words.chunks(2).map(|c| (c[0].clone(), c.get(1).and_then(|p| p.parse().ok()))).collect();
            d.set_listen(&list).ok().map(|_| d.to_bytes())
        }
        11 => {
            let mut d = NutConfDoc::parse(file);
            let mode = [Mode::None, Mode::Standalone, Mode::NetServer, Mode::NetClient][words.len() % 4];
            let ok = d.set_mode(mode).is_ok();
            assert!(!ok || d.mode() == Some(mode));
            None
        }
        // The recipes over five files (the file split at 0xFE).
        op => {
            let mut five = file.split(|b| *b == 0xfe);
            let files: Files = [UPS_CONF, UPSD_USERS, UPSMON_CONF, NUT_CONF]
                .into_iter()
                .map(|n| (n, five.next().unwrap_or_default().to_vec()))
                .collect();
            let changes = match op {
                12 | 13 => SectionSpec::from_text(w(0), version).ok().and_then(|section| {
                    edit::adopt(&files, &AdoptRequest { section, password: w(1).into(), version }).ok()
                }),
                14 => edit::remove(&files, w(0), version).ok(),
                _ => edit::to_nut(
                    &files,
                    &SyncRequest {
                        name: w(0).into(),
                        driver: w(1).into(),
                        port: words.get(2).cloned(),
                        user: words.get(3).cloned(),
                        password: words.get(4).cloned(),
                        upsd_host: "localhost".into(),
                        upsd_port: 3493,
                        version,
                    },
                )
                .ok(),
            };
            for (name, bytes) in changes.into_iter().flatten() {
                if name != NUT_CONF {
                    no_new_mangling(&files[name], &bytes, dialect);
                }
            }
            None
        }
    };
    if let Some(after) = result {
        no_new_mangling(file, &after, dialect);
    }
});
