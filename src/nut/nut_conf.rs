//! nut.conf: read by the shell (NUT's init scripts and systemd helpers source it), so it
//! follows shell assignment rules, not NUT's config lexer.

use super::diag::{Code, Sink};
use super::lexer::Pos;

/// What nut.conf's MODE says NUT should run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    None,
    Standalone,
    NetServer,
    NetClient,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Standalone => "standalone",
            Mode::NetServer => "netserver",
            Mode::NetClient => "netclient",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NutConf {
    pub mode: Option<(Mode, Pos)>,
}

/// Generated from the sample nut.conf of each release (`nut-releases/gen-tables`).
const KNOWN: &[&str] = super::directives::NUT_CONF;

pub fn parse(text: &[u8], sink: &mut Sink) -> NutConf {
    let mut conf = NutConf::default();
    let text = String::from_utf8_lossy(text);
    let mut crlf_told = false;
    // Lines end at `\n` only: the shell keeps a `\r` before it as part of the value.
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let crlf = raw.ends_with('\r');
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |col: usize| Pos::new(lineno, u32::try_from(col + 1).unwrap_or(u32::MAX));
        let body = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let body_col = indent + (line.len() - body.len());
        let Some((name, value)) = body.split_once('=') else {
            sink.error(
                Code::ShellSyntax,
                at(body_col),
                format!(
                    "the shell runs `{}` as a command: this is not an assignment",
                    body.split_whitespace().next().unwrap_or(body)
                ),
            )
            .with_hint("write `NAME=value`");
            continue;
        };
        if name.is_empty()
            || name.ends_with(char::is_whitespace)
            || value.starts_with(char::is_whitespace)
        {
            let n = name.trim();
            sink.error(
                Code::ShellSyntax,
                at(body_col),
                format!(
                    "spaces around `=`: the shell runs `{n}` as a command instead of setting it"
                ),
            )
            .with_hint(format!("write `{n}={}` with no spaces", value.trim()));
            continue;
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            sink.error(
                Code::ShellSyntax,
                at(body_col),
                format!("`{name}` is not a shell variable name"),
            );
            continue;
        }
        if crlf && !crlf_told {
            crlf_told = true;
            let message = format!(
                "this line ends in a Windows line ending (CR LF): the shell reads `{name}` as \
                 `{}\\r`, with the carriage return",
                value.trim_matches(['"', '\''])
            );
            let hint = "save nut.conf with Unix line endings (e.g. `sed -i 's/\\r$//' nut.conf`)";
            if name == "MODE" {
                sink.error(
                    Code::BadMode,
                    at(body_col + name.len() + 1),
                    format!("{message}, a MODE NUT's scripts do not know: they exit 1 and start nothing"),
                )
                .with_hint(hint);
                continue;
            }
            sink.warning(Code::ShellSyntax, at(body_col), message)
                .with_hint(hint);
        } else if crlf && name == "MODE" {
            sink.error(
                Code::BadMode,
                at(body_col + name.len() + 1),
                "MODE ends in a carriage return (CR LF line ending): NUT's scripts do not know it and start nothing".into(),
            )
            .with_hint("save nut.conf with Unix line endings (e.g. `sed -i 's/\\r$//' nut.conf`)");
            continue;
        }
        let value = match unquote(value) {
            Ok(v) => v,
            Err(why) => {
                sink.error(Code::ShellSyntax, at(body_col + name.len() + 1), why)
                    .with_hint("quote a value with spaces: NAME=\"a b\"");
                continue;
            }
        };
        if !KNOWN.contains(&name) {
            sink.info(
                Code::UnknownDirective,
                at(body_col),
                format!("NUT's scripts do not read `{name}`"),
            );
            continue;
        }
        if name == "MODE" {
            let pos = at(body_col + name.len() + 1);
            let mode = match value.as_str() {
                "none" => Mode::None,
                "standalone" => Mode::Standalone,
                "netserver" => Mode::NetServer,
                "netclient" => Mode::NetClient,
                other => {
                    sink.error(
                        Code::BadMode,
                        pos,
                        format!("MODE `{other}` is unknown: NUT's scripts start nothing"),
                    )
                    .with_hint("MODE is none, standalone, netserver or netclient");
                    continue;
                }
            };
            conf.mode = Some((mode, pos));
        }
    }
    conf
}

/// A shell word: plain, "double" or 'single' quoted, with an optional trailing comment.
fn unquote(v: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    out.push(d);
                }
                if !closed {
                    return Err(format!("the {c} quote is never closed"));
                }
            }
            '\\' => out.extend(chars.next()),
            c if c.is_whitespace() => {
                let rest: String = chars.collect();
                if rest.trim_start().starts_with('#') || rest.trim().is_empty() {
                    break;
                }
                return Err(format!(
                    "the shell takes only `{out}` as the value and runs `{}` as a command",
                    rest.trim()
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(text: &str) -> (Option<Mode>, Vec<Code>) {
        let mut sink = Sink::new("nut.conf");
        let conf = parse(text.as_bytes(), &mut sink);
        (
            conf.mode.map(|m| m.0),
            sink.findings.iter().map(|f| f.code).collect(),
        )
    }

    #[test]
    fn reads_shell_assignments() {
        assert_eq!(mode("MODE=standalone\n"), (Some(Mode::Standalone), vec![]));
        assert_eq!(
            mode("MODE=\"netserver\" # x\n"),
            (Some(Mode::NetServer), vec![])
        );
        assert_eq!(
            mode("export MODE='netclient'\n"),
            (Some(Mode::NetClient), vec![])
        );
        assert_eq!(mode("MODE = standalone\n"), (None, vec![Code::ShellSyntax]));
        assert_eq!(mode("MODE=stand alone\n"), (None, vec![Code::ShellSyntax]));
        assert_eq!(mode("MODE=bogus\n"), (None, vec![Code::BadMode]));
    }
}
