//! NUT's configuration lexer (`parseconf`), reproduced byte for byte.
//!
//! Every NUT file except nut.conf goes through one state machine in NUT's `common/parseconf.c`.
//! This module replays it exactly, over bytes already in memory, and remembers two things NUT
//! forgets: where each word came from (line and column), and every place where NUT silently
//! changes what the user wrote (a byte it drops, a word it cuts, a quote that runs on).
//!
//! **Invariant:** no I/O, and no input makes [`lex`] panic or grow beyond a bounded multiple of
//! its input.

use super::text::Text;

/// A place in a file: 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

/// How NUT's parser treats an unescaped `#` inside double quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// NUT up to 2.8.5: a parse error; NUT skips the line read so far, then goes on reading
    /// right after the `#` as if a new line started there.
    HashInQuotesIsError,
    /// NUT 2.8.6 and later: a literal character.
    HashInQuotesIsLiteral,
}

/// Most words NUT keeps on one line (`PCONF_DEFAULT_ARG_LIMIT`).
pub const ARG_LIMIT: usize = 32;
/// Most characters NUT keeps in one word (`PCONF_DEFAULT_WORDLEN_LIMIT`).
pub const WORD_LIMIT: usize = 512;

/// One word as NUT will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: Text,
    /// Where the word starts (its opening quote, for a quoted word).
    pub pos: Pos,
    /// The word was written in double quotes.
    pub quoted: bool,
}

/// One logical line: what one call of NUT's `pconf_file_next` hands to the file's reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub words: Vec<Word>,
    /// Where NUT started reading this line.
    pub pos: Pos,
    /// The physical line NUT read its last byte from: past `pos.line` when a quote or a
    /// backslash carried it over line breaks.
    pub end_line: u32,
    /// NUT reported a parse error on this line and its readers skip it.
    pub skipped: bool,
    /// This line is what follows a parse error on the same physical line.
    pub after_error: bool,
}

/// A silent change NUT makes to what the user wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mangling {
    /// Bytes below 0x20 or above 0x7F inside a word are dropped (`count` of them, from `pos`).
    DroppedBytes { count: usize, non_ascii: bool },
    /// A word longer than [`WORD_LIMIT`] characters is cut to that length.
    WordCut { len: usize },
    /// A line with more than [`ARG_LIMIT`] words loses the rest.
    WordsDropped { count: usize },
    /// A `=` outside quotes ends the word and is a word of its own.
    EqualsSplit,
    /// A double quote opened here is still open at the end of the physical line, so the
    /// line break is dropped and the word runs on to `until_line`.
    QuoteRunsOn { until_line: u32 },
    /// A double quote opened here is never closed before the end of the file.
    UnterminatedQuote,
    /// An unescaped `#` inside quotes (NUT up to 2.8.5): the line is skipped.
    HashInQuotes,
    /// An empty word that the user did not write as `""`; `after_continuation` when a trailing
    /// backslash joined a line that starts with white space or is empty.
    EmptyWord { after_continuation: bool },
    /// A backslash before a carriage return (Windows line ending): it escapes the CR, so it
    /// does not join the next line.
    BackslashBeforeCr,
    /// The file ends, without a newline, in a line of a single word: NUT never sees it.
    LastLineLost,
    /// A `"` in the middle of a word is an ordinary character.
    QuoteInsideWord,
    /// Text right after a closing quote starts a new word.
    TextAfterQuote,
    /// A `#` right after a word's text (`my#1ups`) starts a comment and ends the word there.
    HashEndsWord,
}

/// A [`Mangling`] and where it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub pos: Pos,
    pub what: Mangling,
}

/// What [`lex`] read: the logical lines, in order, and every silent change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lexed {
    pub lines: Vec<Line>,
    pub events: Vec<Event>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    FindWordStart,
    FindEol,
    QuoteCollect,
    QcLiteral,
    Collect,
    CollectLiteral,
}

struct Lexer {
    dialect: Dialect,
    state: State,
    pos: Pos,
    // The word being read.
    buf: Vec<u8>,
    word_pos: Pos,
    word_quoted: bool,
    word_after_continuation: bool,
    dropped: usize,
    dropped_non_ascii: bool,
    dropped_pos: Pos,
    refused: usize,
    // The line being read.
    words: Vec<Word>,
    words_refused: usize,
    line_pos: Pos,
    quote_open: Option<Pos>,
    quote_ran_on: bool,
    after_quote: bool,
    out: Lexed,
}

/// Reads a whole file as NUT does.
pub fn lex(input: &[u8], dialect: Dialect) -> Lexed {
    let mut lx = Lexer {
        dialect,
        state: State::FindWordStart,
        pos: Pos::new(1, 1),
        buf: Vec::new(),
        word_pos: Pos::new(1, 1),
        word_quoted: false,
        word_after_continuation: false,
        dropped: 0,
        dropped_non_ascii: false,
        dropped_pos: Pos::default(),
        refused: 0,
        words: Vec::new(),
        words_refused: 0,
        line_pos: Pos::new(1, 1),
        quote_open: None,
        quote_ran_on: false,
        after_quote: false,
        out: Lexed::default(),
    };
    let mut i = 0;
    while i < input.len() {
        // Fast path: a run of ordinary characters inside a word is copied at once. It does
        // exactly what the byte-by-byte machine would: every byte is printable ASCII (one
        // column each, nothing dropped) and the run stops at the word length limit.
        if let Some(quoted) = match lx.state {
            State::Collect => Some(false),
            State::QuoteCollect => Some(true),
            _ => None,
        } {
            let room = WORD_LIMIT.saturating_sub(lx.buf.len());
            let run = input[i..]
                .iter()
                .take(room)
                .take_while(|&&b| plain(b, quoted))
                .count();
            if run > 0 {
                lx.buf.extend_from_slice(&input[i..i + run]);
                lx.pos.col = lx.pos.col.saturating_add(run as u32);
                i += run;
                continue;
            }
        }
        let ch = input[i];
        i += 1;
        let here = lx.pos;
        lx.step(ch, here);
        // Columns count characters: UTF-8 continuation bytes do not move the column.
        if ch == b'\n' {
            lx.pos = Pos::new(here.line.saturating_add(1), 1);
        } else if ch & 0xC0 != 0x80 {
            lx.pos.col = lx.pos.col.saturating_add(1);
        }
    }
    lx.finish_file();
    lx.out
}

impl Lexer {
    fn event(&mut self, pos: Pos, what: Mangling) {
        self.out.events.push(Event { pos, what });
    }

    fn start_word(&mut self, pos: Pos, quoted: bool) {
        self.word_pos = pos;
        self.word_quoted = quoted;
    }

    fn step(&mut self, ch: u8, here: Pos) {
        self.state = match self.state {
            State::FindWordStart => self.find_word_start(ch, here),
            State::FindEol => {
                if ch == b'\n' {
                    self.end_line(false);
                    State::FindWordStart
                } else {
                    State::FindEol
                }
            }
            State::QuoteCollect => self.quote_collect(ch, here),
            State::QcLiteral => {
                if ch == b'\r' {
                    self.event(here, Mangling::BackslashBeforeCr);
                }
                if ch != b'\n' {
                    self.add_char(ch, here);
                }
                State::QuoteCollect
            }
            State::Collect => self.collect(ch, here),
            State::CollectLiteral => {
                if ch == b'\n' {
                    self.word_after_continuation = true;
                } else {
                    if ch == b'\r' {
                        self.event(here, Mangling::BackslashBeforeCr);
                    }
                    self.add_char(ch, here);
                }
                State::Collect
            }
        };
    }

    fn find_word_start(&mut self, ch: u8, here: Pos) -> State {
        if std::mem::take(&mut self.after_quote) && !matches!(ch, b'#') && !is_c_space(ch) {
            self.event(here, Mangling::TextAfterQuote);
        }
        match ch {
            b'\n' => {
                self.end_line(false);
                State::FindWordStart
            }
            b'#' => State::FindEol,
            c if is_c_space(c) => State::FindWordStart,
            b'\\' => {
                self.start_word(here, false);
                State::CollectLiteral
            }
            b'"' => {
                self.start_word(here, true);
                self.quote_open = Some(here);
                self.quote_ran_on = false;
                State::QuoteCollect
            }
            _ => {
                self.start_word(here, false);
                self.add_char(ch, here);
                if ch == b'=' {
                    if self.words.len() != 1 {
                        self.event(here, Mangling::EqualsSplit);
                    }
                    self.end_word();
                    State::FindWordStart
                } else {
                    State::Collect
                }
            }
        }
    }

    fn quote_collect(&mut self, ch: u8, here: Pos) -> State {
        match ch {
            b'#' if self.dialect == Dialect::HashInQuotesIsError => {
                self.event(here, Mangling::HashInQuotes);
                self.close_quote(here);
                self.end_word();
                self.end_line(true);
                State::FindWordStart
            }
            b'"' => {
                self.close_quote(here);
                self.end_word();
                self.after_quote = true;
                State::FindWordStart
            }
            b'\\' => State::QcLiteral,
            b'\n' => {
                // NUT keeps collecting; the newline itself is below 0x20 and dropped.
                self.quote_ran_on = true;
                State::QuoteCollect
            }
            _ => {
                self.add_char(ch, here);
                State::QuoteCollect
            }
        }
    }

    fn close_quote(&mut self, here: Pos) {
        if let Some(open) = self.quote_open.take() {
            if self.quote_ran_on {
                self.event(
                    open,
                    Mangling::QuoteRunsOn {
                        until_line: here.line,
                    },
                );
            }
        }
    }

    fn collect(&mut self, ch: u8, here: Pos) -> State {
        match ch {
            b'#' => {
                self.event(here, Mangling::HashEndsWord);
                self.end_word();
                State::FindEol
            }
            b'\n' => {
                self.end_word();
                self.end_line(false);
                State::FindWordStart
            }
            c if is_c_space(c) => {
                self.end_word();
                State::FindWordStart
            }
            b'=' => {
                self.end_word();
                // NUT calls its word-start handler on the same `=`, which makes it a word.
                self.start_word(here, false);
                self.add_char(ch, here);
                if self.words.len() != 1 {
                    self.event(here, Mangling::EqualsSplit);
                }
                self.end_word();
                State::FindWordStart
            }
            b'\\' => State::CollectLiteral,
            _ => {
                if ch == b'"' {
                    self.event(here, Mangling::QuoteInsideWord);
                }
                self.add_char(ch, here);
                State::Collect
            }
        }
    }

    /// NUT's `addchar`: drops bytes outside 0x20..=0x7F, then stops at the length limit.
    fn add_char(&mut self, ch: u8, here: Pos) {
        if !(0x20..=0x7f).contains(&ch) {
            if self.dropped == 0 {
                self.dropped_pos = here;
            }
            self.dropped += 1;
            self.dropped_non_ascii |= ch >= 0x80;
            return;
        }
        if self.buf.len() >= WORD_LIMIT {
            self.refused += 1;
            return;
        }
        self.buf.push(ch);
    }

    /// NUT's `endofword`: the word joins the line unless the line is full.
    fn end_word(&mut self) {
        if self.dropped > 0 {
            let (pos, count, non_ascii) = (self.dropped_pos, self.dropped, self.dropped_non_ascii);
            self.event(pos, Mangling::DroppedBytes { count, non_ascii });
        }
        if self.refused > 0 {
            let len = WORD_LIMIT + self.refused;
            self.event(self.word_pos, Mangling::WordCut { len });
        }
        if self.words.len() >= ARG_LIMIT {
            self.words_refused += 1;
        } else {
            if self.buf.is_empty() && !self.word_quoted {
                let after_continuation = self.word_after_continuation;
                self.event(self.word_pos, Mangling::EmptyWord { after_continuation });
            }
            // Only bytes 0x20..=0x7F reach the buffer, so it is always valid UTF-8.
            let text = Text::new(std::str::from_utf8(&self.buf).unwrap_or_default());
            self.words.push(Word {
                text,
                pos: self.word_pos,
                quoted: self.word_quoted,
            });
        }
        self.buf.clear();
        self.dropped = 0;
        self.dropped_non_ascii = false;
        self.refused = 0;
        self.word_quoted = false;
        self.word_after_continuation = false;
    }

    fn end_line(&mut self, skipped: bool) {
        if self.words_refused > 0 {
            let pos = self.words.last().map_or(self.line_pos, |w| w.pos);
            let count = self.words_refused;
            self.event(pos, Mangling::WordsDropped { count });
        }
        let words = std::mem::replace(&mut self.words, Vec::with_capacity(4));
        let after_error = self
            .out
            .lines
            .last()
            .is_some_and(|l| l.skipped && l.pos.line == self.line_pos.line);
        self.out.lines.push(Line {
            words,
            pos: self.line_pos,
            end_line: self.pos.line,
            skipped,
            after_error,
        });
        self.words_refused = 0;
        // The next line starts with the next byte: after a newline, or, after a parse error,
        // right behind the byte that caused it.
        self.line_pos = if skipped {
            Pos::new(self.pos.line, self.pos.col.saturating_add(1))
        } else {
            Pos::new(self.pos.line.saturating_add(1), 1)
        };
    }

    fn finish_file(&mut self) {
        if let Some(open) = self.quote_open.take() {
            if matches!(self.state, State::QuoteCollect | State::QcLiteral) {
                self.event(open, Mangling::UnterminatedQuote);
            }
        }
        // NUT's `pconf_file_next` at end of file: a line with no finished word is dropped,
        // even when a word is still being read.
        if self.words.is_empty() {
            if !self.buf.is_empty() {
                self.event(self.word_pos, Mangling::LastLineLost);
            }
            return;
        }
        if !self.buf.is_empty() {
            self.end_word();
        }
        self.end_line(false);
    }
}

/// A byte that the word states add to the word and do nothing else with.
fn plain(b: u8, quoted: bool) -> bool {
    match b {
        b'#' | b'"' | b'\\' => false,
        b' ' | b'=' => quoted,
        0x21..=0x7e => true,
        _ => false,
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(input: &str, dialect: Dialect) -> Vec<Vec<String>> {
        lex(input.as_bytes(), dialect)
            .lines
            .iter()
            .filter(|l| !l.skipped)
            .map(|l| l.words.iter().map(|w| w.text.to_string()).collect())
            .collect()
    }

    fn check(input: &str, expected: &[&[&str]]) {
        let got = words(input, Dialect::HashInQuotesIsLiteral);
        let want: Vec<Vec<String>> = expected
            .iter()
            .map(|l| l.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(got, want, "input {input:?}");
    }

    fn events(input: &str, dialect: Dialect) -> Vec<(u32, u32, Mangling)> {
        lex(input.as_bytes(), dialect)
            .events
            .into_iter()
            .map(|e| (e.pos.line, e.pos.col, e.what))
            .collect()
    }

    #[test]
    fn splits_on_white_space() {
        check("this is a line\n", &[&["this", "is", "a", "line"]]);
        check("  a\tb \x0b c\r\n", &[&["a", "b", "c"]]);
    }

    #[test]
    fn quotes_group_words_and_may_span_lines() {
        check(
            "this \"is also\" a line\n",
            &[&["this", "is also", "a", "line"]],
        );
        check("desc = \"two\nlines\"\n", &[&["desc", "=", "twolines"]]);
        assert_eq!(
            events("desc = \"two\nlines\"\n", Dialect::HashInQuotesIsLiteral),
            vec![(1, 8, Mangling::QuoteRunsOn { until_line: 2 })]
        );
    }

    #[test]
    fn backslash_escapes_any_character() {
        check("embedded\\ space\n", &[&["embedded space"]]);
        check("embedded\\\\backslash\n", &[&["embedded\\backslash"]]);
        check("a = \"say \\\"hi\\\"\"\n", &[&["a", "=", "say \"hi\""]]);
        check("a = b\\#c\n", &[&["a", "=", "b#c"]]);
        check("a = b\\=c\n", &[&["a", "=", "b=c"]]);
    }

    #[test]
    fn trailing_backslash_joins_lines() {
        check("a = b\\\nc\n", &[&["a", "=", "bc"]]);
        check("a = \"b\\\nc\"\n", &[&["a", "=", "bc"]]);
    }

    #[test]
    fn continuation_onto_indented_line_inserts_an_empty_word() {
        check("a \\\n  b\n", &[&["a", "", "b"]]);
        assert_eq!(
            events("a \\\n  b\n", Dialect::HashInQuotesIsLiteral),
            vec![(
                1,
                3,
                Mangling::EmptyWord {
                    after_continuation: true
                }
            )]
        );
    }

    #[test]
    fn hash_starts_a_comment_outside_quotes() {
        check("id = my#1ups\n", &[&["id", "=", "my"]]);
        assert_eq!(
            events("id = my#1ups\n", Dialect::HashInQuotesIsLiteral),
            vec![(1, 8, Mangling::HashEndsWord)]
        );
        assert!(events("id = my #1ups\n", Dialect::HashInQuotesIsLiteral).is_empty());
        check("# all comment\nx\n", &[&[], &["x"]]);
    }

    #[test]
    fn equals_is_its_own_word_unless_quoted_or_escaped() {
        check(
            "password = 123=123\n",
            &[&["password", "=", "123", "=", "123"]],
        );
        check("a=b\n", &[&["a", "=", "b"]]);
        check("a =b\n", &[&["a", "=", "b"]]);
        check("a = \"1=2\"\n", &[&["a", "=", "1=2"]]);
        assert_eq!(
            events("password = 123=123\n", Dialect::HashInQuotesIsLiteral),
            vec![(1, 15, Mangling::EqualsSplit)]
        );
        assert!(events("a=b\n", Dialect::HashInQuotesIsLiteral).is_empty());
    }

    #[test]
    fn a_line_keeps_32_words() {
        let line: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let got = words(&(line.join(" ") + "\n"), Dialect::HashInQuotesIsLiteral);
        assert_eq!(got[0].len(), ARG_LIMIT);
        assert_eq!(got[0][31], "w31");
        let text = line.join(" ") + "\n";
        let col = text.find("w31").unwrap() as u32 + 1;
        let ev = events(&text, Dialect::HashInQuotesIsLiteral);
        assert_eq!(ev, vec![(1, col, Mangling::WordsDropped { count: 8 })]);
    }

    #[test]
    fn a_word_keeps_512_characters() {
        let long = "x".repeat(600);
        let got = words(&format!("desc = {long}\n"), Dialect::HashInQuotesIsLiteral);
        assert_eq!(got[0][2].len(), WORD_LIMIT);
        assert_eq!(
            events(&format!("desc = {long}\n"), Dialect::HashInQuotesIsLiteral),
            vec![(1, 8, Mangling::WordCut { len: 600 })]
        );
    }

    #[test]
    fn bytes_outside_printable_ascii_are_dropped() {
        check("desc = \"Café\tbar\"\n", &[&["desc", "=", "Cafbar"]]);
        assert_eq!(
            events("desc = \"Café\tbar\"\n", Dialect::HashInQuotesIsLiteral),
            vec![(
                1,
                12,
                Mangling::DroppedBytes {
                    count: 3,
                    non_ascii: true
                }
            )]
        );
        // DEL (0x7F) is kept.
        check("a = x\x7f\n", &[&["a", "=", "x\x7f"]]);
    }

    #[test]
    fn hash_in_quotes_depends_on_the_version() {
        let input = "desc = \"Rack #3\"\nport = x\n";
        check(input, &[&["desc", "=", "Rack #3"], &["port", "=", "x"]]);
        // Up to 2.8.5 the line is skipped and reading restarts after the `#`.
        let lexed = lex(input.as_bytes(), Dialect::HashInQuotesIsError);
        assert!(lexed.lines[0].skipped);
        assert_eq!(lexed.lines[1].words[0].text, "3\"");
        assert_eq!(lexed.lines[1].pos, Pos::new(1, 15));
        assert_eq!(lexed.lines[2].words[0].text, "port");
        assert_eq!(
            lexed.events[0],
            Event {
                pos: Pos::new(1, 14),
                what: Mangling::HashInQuotes
            }
        );
    }

    #[test]
    fn end_of_file_without_newline() {
        check("a = b", &[&["a", "=", "b"]]);
        // A single word with no newline is never seen.
        check("a = b\n[ups]", &[&["a", "=", "b"]]);
        assert_eq!(
            events("a = b\n[ups]", Dialect::HashInQuotesIsLiteral),
            vec![(2, 1, Mangling::LastLineLost)]
        );
        // An unterminated quote takes the rest of the file.
        check("desc = \"abc\nport = x\n", &[&["desc", "=", "abcport = x"]]);
        assert_eq!(
            events("desc = \"abc\nport = x\n", Dialect::HashInQuotesIsLiteral),
            vec![(1, 8, Mangling::UnterminatedQuote)]
        );
    }

    #[test]
    fn quotes_only_group_at_the_start_of_a_word() {
        check("a = b\"c d\"\n", &[&["a", "=", "b\"c", "d\""]]);
        check("a = \"b\"c\n", &[&["a", "=", "b", "c"]]);
        assert_eq!(
            events("a = \"b\"c\n", Dialect::HashInQuotesIsLiteral),
            vec![(1, 8, Mangling::TextAfterQuote)]
        );
        check("a = \"\"\n", &[&["a", "=", ""]]);
    }

    #[test]
    fn control_byte_at_word_start_makes_an_empty_word() {
        check("a \x01 b\n", &[&["a", "", "b"]]);
    }

    #[test]
    fn backslash_before_cr_does_not_join() {
        check("a = b\\\r\nc\n", &[&["a", "=", "b"], &["c"]]);
        assert!(
            events("a = b\\\r\nc\n", Dialect::HashInQuotesIsLiteral).contains(&(
                1,
                7,
                Mangling::BackslashBeforeCr
            ))
        );
    }

    #[test]
    fn columns_count_characters() {
        let lexed = lex("é = x\n".as_bytes(), Dialect::HashInQuotesIsLiteral);
        assert_eq!(lexed.lines[0].words[1].pos, Pos::new(1, 3));
    }
}
