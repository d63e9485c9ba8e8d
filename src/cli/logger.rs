//! Log records to stderr, through the `log` facade: plain (`power-snitch: warning: ...`) on a
//! terminal, with journald's priority prefixes (`<3>` error, `<4>` warning, `<6>` info, `<7>`
//! debug) when stderr is the journal (`$JOURNAL_STREAM` names it). Levels: warnings by default
//! (the agent: the settings' `log_level`), each `-v` one more, each `-q` one less; `RUST_LOG`
//! (`power_snitch::agent=debug,info`) sets levels per module on top.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::settings::model::LogLevel;

/// `RUST_LOG`'s directives: a level for all, and levels per module path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFilter {
    pub default: Option<LevelFilter>,
    pub modules: Vec<(String, LevelFilter)>,
}

fn level(s: &str) -> Option<LevelFilter> {
    Some(match s.to_ascii_lowercase().as_str() {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Parses `RUST_LOG`: comma-separated `LEVEL`, `MODULE` (all levels) or `MODULE=LEVEL`.
/// Returns what it understood and a message per directive it did not.
pub fn parse_env(spec: &str) -> (EnvFilter, Vec<String>) {
    let mut f = EnvFilter::default();
    let mut bad = Vec::new();
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            Some((m, l)) => match level(l.trim()) {
                Some(l) if !m.trim().is_empty() => f.modules.push((m.trim().replace('-', "_"), l)),
                _ => bad.push(format!("RUST_LOG: `{d}` is not MODULE=LEVEL")),
            },
            None => match level(d) {
                Some(l) => f.default = Some(l),
                None => f.modules.push((d.replace('-', "_"), LevelFilter::Trace)),
            },
        }
    }
    (f, bad)
}

impl EnvFilter {
    /// The level for a record's target: the longest module path that contains it, else the
    /// bare level, else `base`.
    pub fn level_for(&self, target: &str, base: LevelFilter) -> LevelFilter {
        self.modules
            .iter()
            .filter(|(m, _)| {
                target == m
                    || (target.starts_with(m.as_str()) && target[m.len()..].starts_with("::"))
            })
            .max_by_key(|(m, _)| m.len())
            .map(|(_, l)| *l)
            .or(self.default)
            .unwrap_or(base)
    }

    pub fn max(&self, base: LevelFilter) -> LevelFilter {
        self.modules
            .iter()
            .map(|(_, l)| *l)
            .chain(std::iter::once(self.default.unwrap_or(base)))
            .max()
            .unwrap_or(base)
    }
}

/// `level` moved by `verbosity` steps (`-v` +1, `-q` -1).
pub fn shifted(level: LevelFilter, verbosity: i8) -> LevelFilter {
    const ALL: [LevelFilter; 6] = [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];
    let i = ALL.iter().position(|l| *l == level).unwrap_or(2) as i16 + i16::from(verbosity);
    ALL[i.clamp(0, 5) as usize]
}

/// Whether `$JOURNAL_STREAM` (`DEVICE:INODE`) names this stderr.
pub fn is_journal(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// One record is one line whatever it quotes: a line break becomes a space (journald splits at
/// `\n`, a terminal returns at `\r`), every other control character but tab a visible `\xNN`
/// (no terminal escape reaches the screen from a value upsd, a USB string or a file sent).
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\t' => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The line as written: `<4>text` for the journal, `power-snitch: warning: text` otherwise.
pub fn format_line(journal: bool, level: Level, text: &str) -> String {
    let text = neutralise(text);
    if journal {
        let p = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        format!("<{p}>{text}")
    } else {
        let l = match level {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        format!("power-snitch: {l}: {text}")
    }
}

struct State {
    verbosity: i8,
    base: LevelFilter,
    env: EnvFilter,
}

static STATE: RwLock<State> = RwLock::new(State {
    verbosity: 0,
    base: LevelFilter::Warn,
    env: EnvFilter {
        default: None,
        modules: Vec::new(),
    },
});
static JOURNAL: AtomicBool = AtomicBool::new(false);

struct Stderr;

static LOGGER: Stderr = Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let Ok(s) = STATE.read() else { return false };
        metadata.level() <= s.env.level_for(metadata.target(), s.base)
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let line = format_line(
                JOURNAL.load(Ordering::Relaxed),
                record.level(),
                &record.args().to_string(),
            );
            eprintln!("{line}");
        }
    }

    fn flush(&self) {}
}

fn update(f: impl FnOnce(&mut State)) {
    if let Ok(mut s) = STATE.write() {
        f(&mut s);
        log::set_max_level(s.env.max(s.base));
    }
}

/// Warnings by default; each `-v` shows more, each `-q` less; `RUST_LOG` on top.
pub fn init(verbosity: i8) {
    if let Ok(js) = std::env::var("JOURNAL_STREAM") {
        if let Ok(st) = nix::sys::stat::fstat(2) {
            // Both fields are narrower than u64 on some 32-bit targets (armv7).
            #[allow(clippy::unnecessary_cast)]
            let (dev, ino) = (st.st_dev as u64, st.st_ino as u64);
            JOURNAL.store(is_journal(&js, dev, ino), Ordering::Relaxed);
        }
    }
    let (env, bad) = parse_env(&std::env::var("RUST_LOG").unwrap_or_default());
    update(|s| {
        s.verbosity = verbosity;
        s.base = shifted(LevelFilter::Warn, verbosity);
        s.env = env;
    });
    if log::set_logger(&LOGGER).is_err() {
        return;
    }
    for b in bad {
        log::warn!("{b}");
    }
}

/// No core dump, whatever the limits: an abort's dump would hold the UPS password and the
/// page's sessions (`prctl(PR_SET_DUMPABLE, 0)`; the units also set `LimitCORE=0`).
pub fn forbid_core_dumps() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        log::debug!("cannot turn off core dumps: {e}");
    }
}

/// The agent's level from its settings, moved by the command line's `-v`/`-q`.
pub fn set_base(level: LogLevel) {
    let l = match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    };
    update(|s| s.base = shifted(l, s.verbosity));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_rust_log_levels_per_module() {
        let (f, bad) = parse_env("power_snitch::agent=debug,info,power-snitch::upsd=off,bogus=x");
        assert_eq!(bad, ["RUST_LOG: `bogus=x` is not MODULE=LEVEL"]);
        let base = LevelFilter::Warn;
        assert_eq!(f.level_for("power_snitch::agent", base), LevelFilter::Debug);
        assert_eq!(
            f.level_for("power_snitch::agent::monitor", base),
            LevelFilter::Debug
        );
        assert_eq!(f.level_for("power_snitch::agentx", base), LevelFilter::Info);
        assert_eq!(
            f.level_for("power_snitch::upsd::client", base),
            LevelFilter::Off
        );
        assert_eq!(f.level_for("power_snitch::cli", base), LevelFilter::Info);
        assert_eq!(f.max(base), LevelFilter::Debug);
        let (none, _) = parse_env("");
        assert_eq!(none.level_for("x", base), base);
        let (m, _) = parse_env("power_snitch");
        assert_eq!(m.level_for("power_snitch::x", base), LevelFilter::Trace);
    }

    #[test]
    fn logger_forbids_core_dumps() {
        forbid_core_dumps();
        assert_eq!(nix::sys::prctl::get_dumpable(), Ok(false));
    }

    #[test]
    fn logger_verbosity_moves_the_base() {
        assert_eq!(shifted(LevelFilter::Warn, 1), LevelFilter::Info);
        assert_eq!(shifted(LevelFilter::Warn, -2), LevelFilter::Off);
        assert_eq!(shifted(LevelFilter::Info, 9), LevelFilter::Trace);
        assert_eq!(shifted(LevelFilter::Error, -9), LevelFilter::Off);
    }

    #[test]
    fn logger_lines_stay_one_line_without_control_characters() {
        for journal in [true, false] {
            let l = format_line(journal, Level::Warn, "a\r\nb\rc\x1b[2Jd\u{9b}e\tf");
            assert!(l.ends_with("a  b c\\x1b[2Jd\\x9be\tf"), "{l:?}");
            assert!(!l.chars().any(|c| c.is_control() && c != '\t'), "{l:?}");
        }
        assert!(matches!(neutralise("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn logger_journal_prefixes_and_detection() {
        assert_eq!(format_line(true, Level::Error, "x"), "<3>x");
        assert_eq!(format_line(true, Level::Warn, "a\nb"), "<4>a b");
        assert_eq!(format_line(true, Level::Info, "x"), "<6>x");
        assert_eq!(format_line(true, Level::Debug, "x"), "<7>x");
        assert_eq!(
            format_line(false, Level::Warn, "x"),
            "power-snitch: warning: x"
        );
        assert!(is_journal("8:12345", 8, 12345));
        assert!(!is_journal("8:12345", 8, 1));
        assert!(!is_journal("garbage", 8, 12345));
    }
}
