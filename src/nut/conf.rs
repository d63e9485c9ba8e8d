//! What all parseconf-based files share: lexing with findings, and reading `key = value`.

use super::diag::{Code, Sink};
use super::lexer::{lex, Dialect, Line, Mangling, Word, ARG_LIMIT, WORD_LIMIT};
use super::version::NutVersion;

/// A keyword of a directive file (upsd.conf, upsmon.conf): how many words it needs after it,
/// and the release that added it.
pub type Directive = (&'static str, usize, Option<NutVersion>);

/// Finds a line's keyword in `table` as `program` does (case-sensitive), reporting a keyword
/// the program does not know, or not yet in `version`.
pub fn directive(
    key: &Word,
    table: &[Directive],
    program: &str,
    version: NutVersion,
    sink: &mut Sink,
) -> Option<Directive> {
    let Some(&d) = table.iter().find(|d| key.text == d.0) else {
        let file = sink.file;
        let f = sink.warning(
            Code::UnknownDirective,
            key.pos,
            format!(
                "{program} does not know `{}` and ignores the line",
                key.text
            ),
        );
        match table.iter().find(|d| d.0.eq_ignore_ascii_case(&key.text)) {
            Some(d) => f.with_hint(format!("keywords are case-sensitive: write `{}`", d.0)),
            None => f.with_hint(format!("see `man {file}`")),
        }
        return None;
    };
    if let Some(v) = d.2.filter(|v| version < *v) {
        sink.warning(
            Code::UnknownDirective,
            key.pos,
            format!(
                "`{}` is understood from NUT {v} on; {program} {version} ignores it",
                d.0
            ),
        );
        return None;
    }
    Some(d)
}

/// Lexes a file and reports every silent change NUT makes to it.
pub fn read_lines(text: &[u8], dialect: Dialect, sink: &mut Sink) -> Vec<Line> {
    let lexed = lex(text, dialect);
    for event in lexed.events {
        let pos = event.pos;
        match event.what {
            Mangling::HashInQuotes => sink
                .error(
                    Code::LineSkipped,
                    pos,
                    "NUT up to 2.8.5 stops at an unescaped `#` inside quotes and skips this line"
                        .into(),
                )
                .with_hint("write `\\#` for a literal `#`"),
            Mangling::DroppedBytes { count, non_ascii } => {
                let what = if non_ascii {
                    "non-ASCII bytes"
                } else {
                    "control characters (a tab, a line break inside quotes)"
                };
                sink.warning(
                    Code::BytesDropped,
                    pos,
                    format!("NUT drops {count} byte(s) of {what} from this word"),
                )
                .with_hint("use printable ASCII only; NUT keeps bytes 0x20 to 0x7F")
            }
            Mangling::WordCut { len } => sink
                .warning(
                    Code::WordCut,
                    pos,
                    format!("this word has {len} characters; NUT keeps only the first {WORD_LIMIT}"),
                )
                .with_hint("shorten it"),
            Mangling::WordsDropped { count } => sink
                .warning(
                    Code::WordsDropped,
                    pos,
                    format!(
                        "NUT keeps {ARG_LIMIT} words of a line and drops the {count} after this one"
                    ),
                )
                .with_hint("quote a long value, or split the line"),
            Mangling::EqualsSplit => sink
                .warning(
                    Code::EqualsSplit,
                    pos,
                    "this unquoted `=` is a word of its own to NUT, so it splits what surrounds it"
                        .into(),
                )
                .with_hint("put the value in double quotes, or write `\\=`"),
            Mangling::QuoteRunsOn { until_line } => sink
                .warning(
                    Code::QuoteRunsOn,
                    pos,
                    format!(
                        "the quote opened here runs on to line {until_line}; NUT drops the line break and reads it all as one word"
                    ),
                )
                .with_hint("close the quote on the same line"),
            Mangling::UnterminatedQuote => sink
                .warning(
                    Code::UnterminatedQuote,
                    pos,
                    "the quote opened here is never closed: NUT reads the rest of the file into this word"
                        .into(),
                )
                .with_hint("close the quote"),
            Mangling::EmptyWord { after_continuation } => {
                let why = if after_continuation {
                    "the trailing backslash joins a line that starts with white space or is empty, so NUT reads an empty word here"
                } else {
                    "NUT reads an empty word here (a dropped control or non-ASCII byte started it)"
                };
                sink.warning(Code::EmptyWord, pos, why.into())
                    .with_hint("remove the backslash, or the indentation of the next line")
            }
            Mangling::BackslashBeforeCr => sink
                .warning(
                    Code::BackslashCr,
                    pos,
                    "this line ends in `\\` and a Windows line ending: the backslash escapes the CR, so it does not join the next line"
                        .into(),
                )
                .with_hint("convert the file to Unix line endings (dos2unix)"),
            Mangling::LastLineLost => sink
                .warning(
                    Code::LastLineLost,
                    pos,
                    "the file ends in this one-word line without a newline: NUT never reads it"
                        .into(),
                )
                .with_hint("end the file with a newline"),
            Mangling::QuoteInsideWord => sink
                .warning(
                    Code::QuoteInWord,
                    pos,
                    "a `\"` inside a word is an ordinary character to NUT; quotes group only at the start of a word"
                        .into(),
                )
                .with_hint("quote the whole word"),
            Mangling::HashEndsWord => sink
                .warning(
                    Code::CommentInWord,
                    pos,
                    "this `#` starts a comment, so NUT ends the word right before it".into(),
                )
                .with_hint("write `\\#` (or quote the word, NUT 2.8.6 and later) to keep the `#`; put a space before a comment"),
            Mangling::TextAfterQuote => sink
                .warning(
                    Code::TextAfterQuote,
                    pos,
                    "text right after a closing quote is a separate word to NUT".into(),
                )
                .with_hint("put a space before it, or move it inside the quotes"),
        }
    }
    lexed.lines
}

/// Is this word NUT's `=` separator (quoted or not, NUT compares the text)?
pub fn is_equals(w: &Word) -> bool {
    w.text == "="
}

/// A line in NUT's `name = value` form, or a bare flag.
pub enum Setting<'a> {
    /// `name = value`, with any words NUT ignores after the value.
    Value {
        name: &'a Word,
        value: &'a Word,
        extra: &'a [Word],
    },
    /// A single word.
    Flag(&'a Word),
    /// `name =` with nothing after it.
    Empty(&'a Word),
    /// Two or more words without `=` in second place.
    Other,
}

/// Reads a line the way ups.conf's and upsd.users' readers do.
pub fn setting(line: &Line) -> Setting<'_> {
    match line.words.as_slice() {
        [flag] => Setting::Flag(flag),
        [name, eq] if is_equals(eq) => Setting::Empty(name),
        [name, eq, value, extra @ ..] if is_equals(eq) => Setting::Value { name, value, extra },
        _ => Setting::Other,
    }
}

/// Is this word a `[section]` header, as NUT tests it (starts with `[`, ends with `]`)?
pub fn section_name(w: &Word) -> Option<&str> {
    let t = w.text.as_str();
    (t.len() >= 2 && t.starts_with('[') && t.ends_with(']')).then(|| &t[1..t.len() - 1])
}

/// Does this setting hold a secret (SNMP community, passwords, keys)? Its value is never echoed.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "community", "secret", "key"]
        .iter()
        .any(|s| n.contains(s))
}

/// Reports words NUT ignores after a value.
pub fn report_extra(sink: &mut Sink, name: &Word, extra: &[Word]) {
    if let Some(first) = extra.first() {
        if is_secret_name(&name.text) {
            sink.warning(
                Code::ExtraWords,
                first.pos,
                format!(
                    "NUT ignores the {} word(s) after the value of `{}`",
                    extra.len(),
                    name.text
                ),
            )
            .with_hint("put the whole value in double quotes");
            return;
        }
        let ignored: Vec<&str> = extra
            .iter()
            .map(|w| {
                if w.text.is_empty() {
                    "\"\""
                } else {
                    w.text.as_str()
                }
            })
            .collect();
        sink.warning(
            Code::ExtraWords,
            first.pos,
            format!(
                "NUT ignores `{}` after the value of `{}`",
                ignored.join(" "),
                name.text
            ),
        )
        .with_hint("put the whole value in double quotes");
    }
}

/// Writes a word so that NUT's lexer reads it back unchanged: bare when it can be, else in
/// double quotes with `\`, `"` and `#` escaped (as NUT's own `pconf_encode` does).
pub fn format_word(text: &str) -> String {
    let bare = !text.is_empty()
        && text
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b'#' | b'='));
    if bare {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Writes a line of words (each through [`format_word`], a lone `=` as it is).
pub fn format_line<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let parts: Vec<String> = words
        .into_iter()
        .map(|w| {
            if w == "=" {
                "=".to_string()
            } else {
                format_word(w)
            }
        })
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nut::lexer::{lex, Dialect};
    use crate::nut::Rng;

    fn random_text(rng: &mut Rng) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ab=#\"\\ \t\n\r[]x1\x01\xc3\xa9\x7f";
        let len = rng.next() % 80;
        (0..len).map(|_| rng.pick(ALPHABET)).collect()
    }

    /// Format what the lexer read, read it again: the same words, for any input.
    #[test]
    fn formatting_what_was_read_reads_back_the_same() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for dialect in [Dialect::HashInQuotesIsError, Dialect::HashInQuotesIsLiteral] {
            for _ in 0..20_000 {
                let input = random_text(&mut rng);
                for line in lex(&input, dialect).lines.iter().filter(|l| !l.skipped) {
                    let words: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
                    let text = format_line(words.iter().copied()) + "\n";
                    let again = lex(text.as_bytes(), dialect);
                    let back: Vec<&str> = again
                        .lines
                        .iter()
                        .flat_map(|l| l.words.iter().map(|w| w.text.as_str()))
                        .collect();
                    assert_eq!(back, words, "input {input:?} formatted as {text:?}");
                    assert!(
                        again
                            .events
                            .iter()
                            .all(|e| matches!(e.what, Mangling::EqualsSplit)),
                        "formatting {words:?} as {text:?} is mangled: {:?}",
                        again.events
                    );
                }
            }
        }
    }

    #[test]
    fn formats_words_nut_style() {
        assert_eq!(format_word("abc"), "abc");
        assert_eq!(format_word("a b"), "\"a b\"");
        assert_eq!(format_word("1=2"), "\"1=2\"");
        assert_eq!(format_word("a#\"\\"), "\"a\\#\\\"\\\\\"");
        assert_eq!(format_word(""), "\"\"");
    }

    #[test]
    fn secrets_are_not_echoed_when_words_are_ignored() {
        let mut sink = Sink::new("ups.conf");
        let lines = read_lines(
            b"authPassword = my secret words\n",
            Dialect::HashInQuotesIsLiteral,
            &mut sink,
        );
        if let Setting::Value { name, extra, .. } = setting(&lines[0]) {
            report_extra(&mut sink, name, extra);
        }
        let f = sink.findings.last().unwrap();
        assert_eq!(f.code, Code::ExtraWords);
        assert!(
            !f.message.contains("secret") && !f.message.contains("words"),
            "{}",
            f.message
        );
        assert!(is_secret_name("community") && !is_secret_name("desc"));
    }
}
