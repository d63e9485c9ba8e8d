//! A file as lines that keep their bytes, and the groups NUT's lexer reads them as.

use crate::nut::lexer::{lex, Dialect, Mangling};

/// How a physical line ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Lf,
    CrLf,
    /// The last line of a file without a final newline.
    None,
}

impl Ending {
    fn bytes(self) -> &'static [u8] {
        match self {
            Ending::Lf => b"\n",
            Ending::CrLf => b"\r\n",
            Ending::None => b"",
        }
    }
}

/// One physical line: its bytes without the ending, and the ending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raw {
    pub text: Vec<u8>,
    pub end: Ending,
}

/// A whole file, line by line. `to_bytes` of an unedited document is its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    pub lines: Vec<Raw>,
}

/// Physical lines `first..=last` that NUT's lexer reads as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub first: usize,
    pub last: usize,
    /// The words NUT reads, or `None` when the lines are not one plain line to NUT (a parse
    /// error, a line NUT never reads).
    pub words: Option<Vec<String>>,
    /// Whether a word's start column is known for an in-place edit: one physical line, no
    /// silent change by NUT, and where each word starts (0-based byte offsets).
    pub starts: Option<Vec<usize>>,
}

impl Group {
    /// A blank or comment-only line.
    pub fn is_blank(&self) -> bool {
        self.words.as_ref().is_some_and(Vec::is_empty)
    }
}

impl Doc {
    pub fn parse(bytes: &[u8]) -> Doc {
        let mut lines = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (text, end) = match rest[..i].strip_suffix(b"\r") {
                        Some(t) => (t, Ending::CrLf),
                        None => (&rest[..i], Ending::Lf),
                    };
                    lines.push(Raw {
                        text: text.to_vec(),
                        end,
                    });
                    rest = &rest[i + 1..];
                }
                None => {
                    lines.push(Raw {
                        text: rest.to_vec(),
                        end: Ending::None,
                    });
                    rest = &[];
                }
            }
        }
        Doc { lines }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.text.len() + 2).sum());
        for l in &self.lines {
            out.extend_from_slice(&l.text);
            out.extend_from_slice(l.end.bytes());
        }
        out
    }

    /// The lines as NUT's parseconf reads them.
    pub fn groups(&self, dialect: Dialect) -> Vec<Group> {
        let n = self.lines.len();
        if n == 0 {
            return Vec::new();
        }
        let lexed = lex(&self.to_bytes(), dialect);
        // The physical lines (0-based) where a logical line starts, and its index.
        let mut starts: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, l) in lexed.lines.iter().enumerate() {
            let at = (l.pos.line as usize).saturating_sub(1).min(n - 1);
            match starts.last_mut() {
                Some((p, ids)) if *p == at => ids.push(i),
                _ => starts.push((at, vec![i])),
            }
        }
        if starts.first().is_none_or(|s| s.0 != 0) {
            starts.insert(0, (0, Vec::new()));
        }
        // The last line without a newline that NUT never reads is a group of its own, unless
        // a quote or a backslash carried an earlier line into it (a quote never closed takes
        // every line after it, that one too).
        let unterminated = lexed
            .events
            .iter()
            .any(|e| matches!(e.what, Mangling::UnterminatedQuote));
        let carried = lexed.lines.iter().any(|l| l.end_line as usize >= n);
        let last_lost = !unterminated
            && !carried
            && self.lines[n - 1].end == Ending::None
            && starts.last().is_some_and(|s| s.0 != n - 1);
        if last_lost {
            starts.push((n - 1, Vec::new()));
        }
        let troubled: Vec<usize> = lexed
            .events
            .iter()
            .map(|e| (e.pos.line as usize).saturating_sub(1))
            .collect();
        let mut out = Vec::with_capacity(starts.len());
        for (k, (first, ids)) in starts.iter().enumerate() {
            let last = starts
                .get(k + 1)
                .map_or(n - 1, |s| s.0.saturating_sub(1))
                .max(*first);
            let words = match ids.as_slice() {
                [] => {
                    // Lines NUT reads as nothing (a comment that ends the file without a
                    // newline): blank only when they hold nothing but white space and comments.
                    let blank = self.lines[*first..=last].iter().all(|l| {
                        let t = trim_start(&l.text);
                        t.is_empty() || t[0] == b'#'
                    });
                    blank.then(Vec::new)
                }
                [i] if !lexed.lines[*i].skipped => Some(
                    lexed.lines[*i]
                        .words
                        .iter()
                        .map(|w| w.text.to_string())
                        .collect(),
                ),
                _ => None,
            };
            let clean = first == &last
                && !troubled.iter().any(|t| (*first..=last).contains(t))
                && words.is_some();
            let starts = match (clean, ids.as_slice()) {
                (true, [i]) => Some(
                    lexed.lines[*i]
                        .words
                        .iter()
                        .map(|w| byte_at(&self.lines[*first].text, w.pos.col))
                        .collect(),
                ),
                _ => None,
            };
            out.push(Group {
                first: *first,
                last,
                words,
                starts,
            });
        }
        out
    }

    /// The ending new lines get: the file's own (CR LF when its first line has one).
    pub fn ending(&self) -> Ending {
        match self.lines.first().map(|l| l.end) {
            Some(Ending::CrLf) => Ending::CrLf,
            _ => Ending::Lf,
        }
    }

    /// Replaces physical lines `range` with `new` lines of text. Lines written at the end of a
    /// file without a final newline give it one: NUT never reads a last line of one word
    /// without it.
    pub fn splice(&mut self, range: std::ops::Range<usize>, new: Vec<Vec<u8>>) {
        // New lines end as the line they replace, else as the line before them.
        let end = match self.lines.get(range.start).filter(|_| !range.is_empty()) {
            Some(l) if l.end != Ending::None => l.end,
            _ => match range.start.checked_sub(1).and_then(|i| self.lines.get(i)) {
                Some(l) if l.end != Ending::None => l.end,
                _ => self.ending(),
            },
        };
        if range.is_empty() && range.end == self.lines.len() && !new.is_empty() {
            if let Some(l) = self.lines.last_mut() {
                if l.end == Ending::None {
                    l.end = end;
                }
            }
        }
        let raws = new.into_iter().map(|text| Raw { text, end });
        self.lines.splice(range, raws);
    }

    /// The leading white space of a physical line.
    pub fn indent(&self, i: usize) -> Vec<u8> {
        let t = &self.lines[i].text;
        t[..t.len() - trim_start(t).len()].to_vec()
    }
}

fn trim_start(t: &[u8]) -> &[u8] {
    let k = t.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &t[k..]
}

/// The byte offset of 1-based character column `col` (columns count characters, as the lexer's).
fn byte_at(text: &[u8], col: u32) -> usize {
    let want = col.saturating_sub(1) as usize;
    let mut chars = 0;
    for (i, b) in text.iter().enumerate() {
        if b & 0xC0 != 0x80 {
            if chars == want {
                return i;
            }
            chars += 1;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_byte() {
        for input in [
            &b""[..],
            b"\n",
            b"a = b",
            b"a = b\r\nc\n",
            b"\r\n\r\n",
            b"x\n\n\ny",
            b"\xff\xfe\r",
        ] {
            assert_eq!(Doc::parse(input).to_bytes(), input);
        }
    }

    #[test]
    fn groups_follow_the_lexer() {
        let doc = Doc::parse(b"# c\n[ups]\n  driver = \"x\" # d\nport = a\\\nb\n\nlost");
        let g = doc.groups(Dialect::HashInQuotesIsLiteral);
        let spans: Vec<(usize, usize)> = g.iter().map(|g| (g.first, g.last)).collect();
        assert_eq!(spans, vec![(0, 0), (1, 1), (2, 2), (3, 4), (5, 5), (6, 6)]);
        assert!(g[0].is_blank());
        assert_eq!(
            g[2].words.as_deref(),
            Some(&["driver".to_string(), "=".into(), "x".into()][..])
        );
        assert_eq!(g[2].starts, Some(vec![2, 9, 11]));
        assert!(g[3].starts.is_none());
        assert!(g[4].is_blank() && g[5].words.is_none());
    }
}
