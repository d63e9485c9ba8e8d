//! Change tracking: a fingerprint (size, mtime, content hash) of each NUT file and of the
//! settings at the last check, and which changed since.

use std::fs;
use std::hash::Hasher;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::nut::diag::{Code, Finding, Severity};
use crate::nut::fnv::Fnv;
use crate::nut::lexer::Pos;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Print {
    pub name: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub hash: u64,
}

/// The fingerprint of a file, or None when it does not exist.
pub fn of(name: &str, path: &Path) -> Option<Print> {
    let meta = fs::metadata(path).ok()?;
    let bytes = fs::read(path).ok()?;
    let mut h = Fnv::default();
    h.write(&bytes);
    Some(Print {
        name: name.to_string(),
        size: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        hash: h.finish(),
    })
}

pub fn parse(text: &str) -> Vec<Print> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(Print {
                name: w.next()?.to_string(),
                size: w.next()?.parse().ok()?,
                mtime_ns: w.next()?.parse().ok()?,
                hash: u64::from_str_radix(w.next()?, 16).ok()?,
            })
        })
        .collect()
}

pub fn format(prints: &[Print]) -> String {
    prints
        .iter()
        .map(|p| format!("{} {} {} {:016x}\n", p.name, p.size, p.mtime_ns, p.hash))
        .collect()
}

/// Remembers the fingerprints in `path` (`settings.bin.seen`): mode 0600 like every state file
/// (the hashes tell whether a guessed password is the right one), written whole and renamed in.
pub fn remember(path: &Path, prints: &[Print]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format(prints).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Which files changed, appeared or went away since `old`; `file` names where findings go.
pub fn changes(old: &[Print], new: &[Print], file: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |m: String| {
        out.push(Finding::new(
            Severity::Info,
            Code::ChangedSinceLastCheck,
            file,
            Pos::new(0, 0),
            m,
        ));
    };
    for n in new {
        match old.iter().find(|o| o.name == n.name) {
            None => say(format!("{} appeared since the last check", n.name)),
            Some(o) if o.hash != n.hash || o.size != n.size => {
                say(format!("{} changed since the last check", n.name))
            }
            Some(o) if o.mtime_ns != n.mtime_ns => say(format!(
                "{} was written since the last check, with the same content",
                n.name
            )),
            Some(_) => {}
        }
    }
    for o in old.iter().filter(|o| !new.iter().any(|n| n.name == o.name)) {
        say(format!("{} went away since the last check", o.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, size: u64, mtime: i128, hash: u64) -> Print {
        Print {
            name: name.into(),
            size,
            mtime_ns: mtime,
            hash,
        }
    }

    #[test]
    fn reports_what_changed() {
        let old = vec![
            p("ups.conf", 10, 1, 7),
            p("upsd.users", 5, 1, 9),
            p("nut.conf", 3, 1, 1),
        ];
        let new = vec![
            p("ups.conf", 11, 2, 8),
            p("upsd.users", 5, 1, 9),
            p("upsmon.conf", 4, 1, 2),
        ];
        let msgs: Vec<String> = changes(&old, &new, "x")
            .into_iter()
            .map(|f| f.message)
            .collect();
        assert_eq!(
            msgs,
            [
                "ups.conf changed since the last check",
                "upsmon.conf appeared since the last check",
                "nut.conf went away since the last check"
            ]
        );
        assert_eq!(parse(&format(&old)), old);
    }
}
