//! The edits of each of NUT's five files.

use std::ops::Range;

use super::doc::{Doc, Ending, Group};
use super::value::{check_host, check_key, check_login, check_name, check_value, word};
use super::{EditError, Reason};
use crate::nut::lexer::{lex, Dialect};
use crate::nut::nut_conf::Mode;
use crate::nut::upsmon_conf::{split_system, DIRECTIVES as UPSMON_DIRECTIVES};
use crate::nut::version::NutVersion;
use crate::nut::{NUT_CONF, UPSD_CONF, UPSD_USERS, UPSMON_CONF, UPS_CONF};

/// A parseconf file (all but nut.conf) being edited.
#[derive(Clone, Debug)]
struct Conf {
    file: &'static str,
    doc: Doc,
    version: NutVersion,
}

/// A `[name]` section: its header's group and the groups up to the next header.
struct Section {
    name: String,
    header: usize,
    body: Range<usize>,
}

fn header_name(words: &[String]) -> Option<&str> {
    let t = words.first()?.as_str();
    (t.len() >= 2 && t.starts_with('[') && t.ends_with(']')).then(|| &t[1..t.len() - 1])
}

impl Conf {
    fn new(file: &'static str, bytes: &[u8], version: NutVersion) -> Conf {
        Conf {
            file,
            doc: Doc::parse(bytes),
            version,
        }
    }

    fn dialect(&self) -> Dialect {
        self.version.dialect()
    }

    fn err(&self, place: impl Into<String>, line: Option<usize>, reason: Reason) -> EditError {
        EditError {
            file: self.file,
            place: place.into(),
            line: line.map(|l| l as u32 + 1),
            reason,
        }
    }

    fn groups(&self) -> Vec<Group> {
        self.doc.groups(self.dialect())
    }

    /// The groups before the first section, and the sections.
    fn sections(groups: &[Group]) -> (Range<usize>, Vec<Section>) {
        let mut out: Vec<Section> = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            if let Some(name) = g.words.as_deref().and_then(header_name) {
                if let Some(last) = out.last_mut() {
                    last.body.end = i;
                }
                out.push(Section {
                    name: name.to_string(),
                    header: i,
                    body: i + 1..groups.len(),
                });
            }
        }
        let globals = 0..out.first().map_or(groups.len(), |s| s.header);
        (globals, out)
    }

    /// The last group in `range` that NUT reads something from (or cannot read plainly).
    fn content_end(groups: &[Group], range: Range<usize>) -> Option<usize> {
        range.rev().find(|&i| !groups[i].is_blank())
    }

    /// The comment lines directly above group `i` (no blank line between).
    fn attached(&self, groups: &[Group], i: usize) -> usize {
        let mut first = i;
        while first > 0 {
            let g = &groups[first - 1];
            let comment = g.is_blank() && {
                let t = &self.doc.lines[g.first].text;
                t.iter().find(|b| !matches!(b, b' ' | b'\t')) == Some(&b'#')
            };
            if !comment {
                break;
            }
            first -= 1;
        }
        first
    }

    /// The indentation of the setting lines in `range`, else of those in any section, else
    /// `dflt`.
    fn indent_for(&self, groups: &[Group], range: Range<usize>, dflt: &[u8]) -> Vec<u8> {
        let setting = |g: &&Group| {
            g.words
                .as_ref()
                .is_some_and(|w| !w.is_empty() && header_name(w).is_none())
        };
        let (_, sections) = Self::sections(groups);
        groups[range]
            .iter()
            .rev()
            .find(setting)
            .or_else(|| {
                sections
                    .iter()
                    .rev()
                    .find_map(|s| groups[s.body.clone()].iter().rev().find(setting))
            })
            .map_or_else(|| dflt.to_vec(), |g| self.doc.indent(g.first))
    }

    /// Builds a line of words and checks that NUT reads exactly them from it.
    fn line(&self, indent: &[u8], words: &[String], place: &str) -> Result<Vec<u8>, EditError> {
        let text: Vec<String> = words
            .iter()
            .map(|w| if w == "=" { w.clone() } else { word(w, false) })
            .collect();
        let mut out = indent.to_vec();
        out.extend_from_slice(text.join(" ").as_bytes());
        self.read_back(&out, words, place)?;
        Ok(out)
    }

    fn read_back(&self, line: &[u8], words: &[String], place: &str) -> Result<(), EditError> {
        let mut text = line.to_vec();
        text.push(b'\n');
        let lexed = lex(&text, self.dialect());
        let got: Vec<&str> = lexed
            .lines
            .iter()
            .flat_map(|l| l.words.iter().map(|w| w.text.as_str()))
            .collect();
        if lexed.lines.len() != 1 || lexed.lines[0].skipped || got != words {
            return Err(self.err(place, None, Reason::NotReadBack));
        }
        Ok(())
    }

    /// Replaces group `g` with a line of `words`: in place (keeping what comes before the
    /// value and a trailing comment) when the line is plain and has the same words before
    /// `keep` (the number of leading words that stay), else as a new line with its indent.
    fn replace(
        &mut self,
        g: &Group,
        words: &[String],
        keep: usize,
        place: &str,
    ) -> Result<(), EditError> {
        if g.words.as_deref() == Some(words) {
            return Ok(());
        }
        let old = &self.doc.lines[g.first].text;
        if let (Some(starts), Some(old_words)) = (&g.starts, &g.words) {
            if keep > 0
                && keep < words.len()
                && old_words.len() > keep
                && old_words[..keep] == words[..keep]
            {
                let from = starts[keep];
                // Quotes the user chose (not needed for the old value) are kept.
                let quoted = old.get(from) == Some(&b'"')
                    && !crate::nut::conf::format_word(&old_words[keep]).starts_with('"');
                let rest: Vec<String> = words[keep..]
                    .iter()
                    .map(|w| if w == "=" { w.clone() } else { word(w, quoted) })
                    .collect();
                let tail = self.tail(old);
                let mut new = old[..from].to_vec();
                new.extend_from_slice(rest.join(" ").as_bytes());
                new.extend_from_slice(&old[tail..]);
                if self.read_back(&new, words, place).is_ok() {
                    self.doc.splice(g.first..g.last + 1, vec![new]);
                    return Ok(());
                }
            }
        }
        let indent = self.doc.indent(g.first);
        let mut new = self.line(&indent, words, place)?;
        // A plain line keeps its trailing comment.
        if g.starts.is_some() {
            let old = &self.doc.lines[g.first].text;
            let mut with = new.clone();
            with.extend_from_slice(&old[self.tail(old)..]);
            if self.read_back(&with, words, place).is_ok() {
                new = with;
            }
        }
        self.doc.splice(g.first..g.last + 1, vec![new]);
        Ok(())
    }

    /// Where a plain line's words end: at the white space before its comment, or before its
    /// trailing white space. The lexer is the judge: the comment is kept only when the line
    /// without it reads the same words.
    fn tail(&self, text: &[u8]) -> usize {
        let words = |t: &[u8]| -> Vec<String> {
            let mut t = t.to_vec();
            t.push(b'\n');
            lex(&t, self.dialect())
                .lines
                .iter()
                .flat_map(|l| l.words.iter().map(|w| w.text.to_string()))
                .collect()
        };
        let trim = |end: usize| {
            end - text[..end]
                .iter()
                .rev()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count()
        };
        let mut in_quotes = false;
        let mut i = 0;
        while i < text.len() {
            match text[i] {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b'#' if !in_quotes => {
                    if words(&text[..i]) == words(text) {
                        return trim(i);
                    }
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        trim(text.len())
    }

    fn remove_groups(&mut self, groups: &[Group], mut ids: Vec<usize>) {
        ids.sort_unstable();
        for &i in ids.iter().rev() {
            self.doc
                .splice(groups[i].first..groups[i].last + 1, Vec::new());
        }
    }

    /// Inserts lines after group `after` (or at the start when `None`).
    /// Refused at the end of a file whose last line ends in a backslash: it would join the
    /// first new line to it.
    fn insert_after(
        &mut self,
        groups: &[Group],
        after: Option<usize>,
        lines: Vec<Vec<u8>>,
    ) -> Result<(), EditError> {
        let mut at = after.map_or(0, |i| groups[i].last + 1);
        // A last line NUT never reads (one word, no newline) stays last and unread: new lines
        // go before it.
        if let Some(g) = groups.last().filter(|g| g.words.is_none()) {
            let lost = self.doc.lines.last().is_some_and(|l| l.end == Ending::None);
            if lost && at == self.doc.lines.len() && g.first == g.last {
                at = g.first;
            }
        }
        if let Some(last) = self.doc.lines.last().filter(|_| at == self.doc.lines.len()) {
            let slashes = last.text.iter().rev().take_while(|b| **b == b'\\').count();
            if slashes % 2 == 1 && last.end != Ending::CrLf {
                let reason = Reason::Value {
                    what: "the file's last line".into(),
                    why: "ends in a backslash, which would join the new line to it: remove the backslash first".into(),
                };
                return Err(self.err("end of file", Some(at - 1), reason));
            }
        }
        let before = self.doc.clone();
        let count = lines.len();
        let own: Vec<Vec<String>> = lines.iter().map(|l| self.words_of(l)).collect();
        self.doc.splice(at..at, lines);
        // Each new line is read on its own, as written (not swallowed by an open quote), and
        // every other line reads as before.
        let old_words: Vec<&Option<Vec<String>>> = groups.iter().map(|g| &g.words).collect();
        let groups = self.groups();
        let others: Vec<&Option<Vec<String>>> = groups
            .iter()
            .filter(|g| !(at..at + count).contains(&g.first))
            .map(|g| &g.words)
            .collect();
        if others != old_words {
            self.doc = before;
            let reason = Reason::Value {
                what: "a line next to the new ones".into(),
                why: "would be read differently with them".into(),
            };
            return Err(self.err("end of file", Some(at.saturating_sub(1)), reason));
        }
        for (k, words) in own.into_iter().enumerate() {
            let i = at + k;
            let alone = groups
                .iter()
                .any(|g| g.first == i && g.last == i && g.words.as_ref() == Some(&words));
            if !alone {
                self.doc = before;
                let reason = Reason::Value {
                    what: "the line before the new one".into(),
                    why: format!("takes the new line into it (an open quote or a trailing backslash); {count} line(s) not added"),
                };
                return Err(self.err("end of file", Some(at.saturating_sub(1)), reason));
            }
        }
        Ok(())
    }

    /// The words NUT reads from one line on its own.
    fn words_of(&self, line: &[u8]) -> Vec<String> {
        let mut t = line.to_vec();
        t.push(b'\n');
        lex(&t, self.dialect())
            .lines
            .iter()
            .flat_map(|l| l.words.iter().map(|w| w.text.to_string()))
            .collect()
    }

    /// Removes every section named `name`: its lines, the comments attached above it, and the
    /// blank line before those.
    fn remove_section(&mut self, name: &str) -> bool {
        let groups = self.groups();
        let (_, sections) = Self::sections(&groups);
        let mut found = false;
        for s in sections.iter().rev().filter(|s| s.name == name) {
            found = true;
            let mut first = self.attached(&groups, s.header);
            let end = Self::content_end(&groups, s.body.clone()).unwrap_or(s.header);
            if first > 0
                && groups[first - 1].is_blank()
                && self.doc.lines[groups[first - 1].first]
                    .text
                    .iter()
                    .all(|b| matches!(b, b' ' | b'\t'))
            {
                first -= 1;
            }
            self.doc
                .splice(groups[first].first..groups[end].last + 1, Vec::new());
        }
        found
    }

    /// Adds a section of `lines` (header first) after the last section, a blank line before.
    fn add_section(&mut self, lines: Vec<Vec<u8>>) -> Result<(), EditError> {
        let groups = self.groups();
        let (_, sections) = Self::sections(&groups);
        let after = match sections.last() {
            Some(s) => Some(Self::content_end(&groups, s.body.clone()).unwrap_or(s.header)),
            None => groups.len().checked_sub(1),
        };
        let mut new = Vec::with_capacity(lines.len() + 1);
        if after.is_some() {
            new.push(Vec::new());
        }
        new.extend(lines);
        self.insert_after(&groups, after, new)
    }

    /// Sets `key` in the sections named `name` (or the globals when `None`): the last line
    /// NUT reads for it is replaced, else a line is added after the section's last one.
    /// `words` are the line's words after the key (`["=", value]`, or none for a flag).
    fn set_key(
        &mut self,
        name: Option<&str>,
        key: &str,
        words: &[String],
        fold: bool,
        first_wins: bool,
    ) -> Result<(), EditError> {
        let place = match name {
            Some(n) => format!("[{n}]"),
            None => "globals".to_string(),
        };
        let groups = self.groups();
        let (globals, sections) = Self::sections(&groups);
        let ranges: Vec<(usize, Range<usize>)> = match name {
            Some(n) => sections
                .iter()
                .filter(|s| s.name == n)
                .map(|s| (s.header, s.body.clone()))
                .collect(),
            None => vec![(usize::MAX, globals.clone())],
        };
        if ranges.is_empty() {
            return Err(self.err(
                place,
                None,
                Reason::NotFound {
                    what: "section".into(),
                },
            ));
        }
        let hits = Self::key_lines(&groups, &ranges, key, fold);
        let mut line = vec![key.to_string()];
        line.extend(words.iter().cloned());
        let target = if first_wins {
            hits.first()
        } else {
            hits.last()
        };
        if let Some(&t) = target {
            let keep = if words.first().is_some_and(|w| w == "=") {
                2
            } else {
                1
            };
            let g = groups[t].clone();
            return self.replace(&g, &line, keep, &place);
        }
        let (header, range) = ranges[0].clone();
        let after = match Self::content_end(&groups, range.clone()) {
            Some(i) => Some(i),
            None if header != usize::MAX => Some(header),
            // No global yet: right before the first section and the comments above it.
            None => match sections.first() {
                Some(s) => self.attached(&groups, s.header).checked_sub(1),
                None => groups.len().checked_sub(1),
            },
        };
        let dflt: &[u8] = if header == usize::MAX { b"" } else { b"\t" };
        let indent = if header == usize::MAX {
            Vec::new()
        } else {
            self.indent_for(&groups, range, dflt)
        };
        let new = self.line(&indent, &line, &place)?;
        self.insert_after(&groups, after, vec![new])
    }

    /// The setting lines for `key` in `ranges`, in file order.
    fn key_lines(
        groups: &[Group],
        ranges: &[(usize, Range<usize>)],
        key: &str,
        fold: bool,
    ) -> Vec<usize> {
        let same = |w: &str| {
            if fold {
                w.eq_ignore_ascii_case(key)
            } else {
                w == key
            }
        };
        ranges
            .iter()
            .flat_map(|(_, r)| r.clone())
            .filter(|&i| {
                groups[i].words.as_deref().is_some_and(|w| match w {
                    [k] => same(k),
                    [k, eq, _, ..] if eq == "=" => same(k),
                    [k, _] if fold => same(k),
                    _ => false,
                })
            })
            .collect()
    }

    fn remove_key(&mut self, name: Option<&str>, key: &str, fold: bool) {
        let groups = self.groups();
        let (globals, sections) = Self::sections(&groups);
        let ranges: Vec<(usize, Range<usize>)> = match name {
            Some(n) => sections
                .iter()
                .filter(|s| s.name == n)
                .map(|s| (s.header, s.body.clone()))
                .collect(),
            None => vec![(0, globals)],
        };
        let hits = Self::key_lines(&groups, &ranges, key, fold);
        self.remove_groups(&groups, hits);
    }

    /// Directive lines (upsd.conf, upsmon.conf) whose words satisfy `pick`.
    fn directive_lines(groups: &[Group], pick: impl Fn(&[String]) -> bool) -> Vec<usize> {
        (0..groups.len())
            .filter(|&i| {
                groups[i]
                    .words
                    .as_deref()
                    .is_some_and(|w| !w.is_empty() && pick(w))
            })
            .collect()
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// ups.conf being edited.
#[derive(Clone, Debug)]
pub struct UpsConfDoc(Conf);

/// One line of a section: `name = value`, or a flag (`value` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: Option<String>,
}

/// A ups.conf section to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionSpec {
    pub name: String,
    pub entries: Vec<Entry>,
}

impl SectionSpec {
    /// Reads a section written as ups.conf text, such as the one `probe --ups-conf` suggests
    /// (`probe::cross::section_text`), with NUT's own lexer.
    pub fn from_text(text: &str, version: NutVersion) -> Result<SectionSpec, EditError> {
        let err = |line: Option<u32>, why: &str| EditError {
            file: UPS_CONF,
            place: "suggested section".into(),
            line,
            reason: Reason::Value {
                what: "the section text".into(),
                why: why.to_string(),
            },
        };
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        let lexed = lex(&bytes, version.dialect());
        if let Some(e) = lexed.events.first() {
            return Err(err(
                Some(e.pos.line),
                "NUT does not read this line as written",
            ));
        }
        let mut spec: Option<SectionSpec> = None;
        for l in lexed.lines.iter().filter(|l| !l.words.is_empty()) {
            let w: Vec<&str> = l.words.iter().map(|w| w.text.as_str()).collect();
            match (w.as_slice(), spec.as_mut()) {
                ([h], None) if h.len() > 2 && h.starts_with('[') && h.ends_with(']') => {
                    spec = Some(SectionSpec {
                        name: h[1..h.len() - 1].to_string(),
                        entries: Vec::new(),
                    })
                }
                ([k], Some(s)) => s.entries.push(Entry {
                    name: k.to_string(),
                    value: None,
                }),
                ([k, "=", v], Some(s)) => s.entries.push(Entry {
                    name: k.to_string(),
                    value: Some(v.to_string()),
                }),
                _ => {
                    return Err(err(
                        Some(l.pos.line),
                        "expected one `[name]` and then `name = value` lines",
                    ))
                }
            }
        }
        spec.ok_or_else(|| err(None, "has no `[name]` line"))
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }
}

impl UpsConfDoc {
    pub fn parse(bytes: &[u8], version: NutVersion) -> Self {
        UpsConfDoc(Conf::new(UPS_CONF, bytes, version))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.doc.to_bytes()
    }

    /// The section names, in file order (a repeated name once).
    pub fn section_names(&self) -> Vec<String> {
        let (_, s) = Conf::sections(&self.0.groups());
        let mut out: Vec<String> = Vec::new();
        for s in s {
            if !out.contains(&s.name) {
                out.push(s.name);
            }
        }
        out
    }

    /// What NUT reads in section `name` (merged over repeated sections), in file order.
    pub fn entries(&self, name: &str) -> Vec<Entry> {
        let groups = self.0.groups();
        let (_, sections) = Conf::sections(&groups);
        sections
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.body.clone())
            .filter_map(|i| match groups[i].words.as_deref()? {
                [k] => Some(Entry {
                    name: k.clone(),
                    value: None,
                }),
                [k, eq, v, ..] if eq == "=" => Some(Entry {
                    name: k.clone(),
                    value: Some(v.clone()),
                }),
                _ => None,
            })
            .collect()
    }

    fn value_words(key: &str, value: Option<&str>) -> Result<Vec<String>, Reason> {
        check_key("the setting name", key)?;
        match value {
            Some(v) => {
                check_value(&format!("the value of `{key}`"), v)?;
                Ok(strings(&["=", v]))
            }
            None => Ok(Vec::new()),
        }
    }

    /// Sets `key` (a value, or a flag when `value` is `None`) in section `section`.
    pub fn set(&mut self, section: &str, key: &str, value: Option<&str>) -> Result<(), EditError> {
        let place = format!("[{section}]");
        check_name("the UPS name", section).map_err(|r| self.0.err(&place, None, r))?;
        let words = Self::value_words(key, value).map_err(|r| self.0.err(&place, None, r))?;
        // What NUT reads already: nothing to write.
        let now = self.entries(section);
        if now
            .iter()
            .rev()
            .find(|e| e.name == key)
            .is_some_and(|e| e.value.as_deref() == value)
        {
            return Ok(());
        }
        self.0.set_key(Some(section), key, &words, false, false)
    }

    /// Removes every line of `key` in section `section`.
    pub fn remove(&mut self, section: &str, key: &str) -> Result<(), EditError> {
        let place = format!("[{section}]");
        if !self.section_names().iter().any(|n| n == section) {
            return Err(self.0.err(
                place,
                None,
                Reason::NotFound {
                    what: "section".into(),
                },
            ));
        }
        self.0.remove_key(Some(section), key, false);
        Ok(())
    }

    /// Sets a global directive (before the first section).
    pub fn set_global(&mut self, key: &str, value: Option<&str>) -> Result<(), EditError> {
        let words = Self::value_words(key, value).map_err(|r| self.0.err("globals", None, r))?;
        self.0.set_key(None, key, &words, false, false)
    }

    pub fn remove_global(&mut self, key: &str) {
        self.0.remove_key(None, key, false);
    }

    /// Adds a section after the last one, with a blank line before it.
    pub fn add_section(&mut self, spec: &SectionSpec) -> Result<(), EditError> {
        let place = format!("[{}]", spec.name);
        check_name("the UPS name", &spec.name).map_err(|r| self.0.err(&place, None, r))?;
        if self.section_names().contains(&spec.name) {
            return Err(self.0.err(
                place,
                None,
                Reason::Exists {
                    what: "section".into(),
                },
            ));
        }
        let groups = self.0.groups();
        let (_, sections) = Conf::sections(&groups);
        let indent = self.0.indent_for(
            &groups,
            sections.last().map_or(0..0, |s| s.body.clone()),
            b"\t",
        );
        let mut lines = vec![self.0.line(b"", &[format!("[{}]", spec.name)], &place)?];
        for e in &spec.entries {
            let mut words = vec![e.name.clone()];
            words.extend(
                Self::value_words(&e.name, e.value.as_deref())
                    .map_err(|r| self.0.err(&place, None, r))?,
            );
            lines.push(self.0.line(&indent, &words, &place)?);
        }
        self.0.add_section(lines)
    }

    /// Removes section `name` (every section of that name), with the comments directly above.
    pub fn remove_section(&mut self, name: &str) -> Result<(), EditError> {
        if self.0.remove_section(name) {
            Ok(())
        } else {
            Err(self.0.err(
                format!("[{name}]"),
                None,
                Reason::NotFound {
                    what: "section".into(),
                },
            ))
        }
    }
}

/// An upsmon role in upsd.users and on a MONITOR line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    /// The word for `version`: `master`/`slave` before NUT 2.8.0.
    pub fn word(self, version: NutVersion) -> &'static str {
        match (self, version.knows_primary()) {
            (Role::Primary, true) => "primary",
            (Role::Secondary, true) => "secondary",
            (Role::Primary, false) => "master",
            (Role::Secondary, false) => "slave",
        }
    }
}

/// A user of upsd.users.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub password: String,
    pub upsmon: Option<Role>,
    /// `SET`, `FSD`.
    pub actions: Vec<String>,
    pub instcmds: Vec<String>,
}

impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("upsmon", &self.upsmon)
            .field("actions", &self.actions)
            .field("instcmds", &self.instcmds)
            .finish_non_exhaustive()
    }
}

/// A user's settings: each key and the words after it (`None`: no such line).
type UserLines = Vec<(&'static str, Option<Vec<String>>)>;

/// upsd.users being edited.
#[derive(Clone, Debug)]
pub struct UsersDoc(Conf);

impl UsersDoc {
    pub fn parse(bytes: &[u8], version: NutVersion) -> Self {
        UsersDoc(Conf::new(UPSD_USERS, bytes, version))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.doc.to_bytes()
    }

    pub fn user_names(&self) -> Vec<String> {
        let (_, s) = Conf::sections(&self.0.groups());
        let mut out: Vec<String> = Vec::new();
        for s in s {
            if !out.contains(&s.name) {
                out.push(s.name);
            }
        }
        out
    }

    /// The lines of a user after its header: (key, words after the key).
    fn lines(&self, u: &UserSpec) -> Result<UserLines, Reason> {
        check_value("the password", &u.password)?;
        if u.password.is_empty() {
            return Err(Reason::Value {
                what: "the password".into(),
                why: "is empty".into(),
            });
        }
        for a in &u.actions {
            if !matches!(a.as_str(), "SET" | "FSD") {
                return Err(Reason::Value {
                    what: "an action".into(),
                    why: format!("`{}` is not SET or FSD", a.escape_default()),
                });
            }
        }
        for c in &u.instcmds {
            check_key("an instant command", c)?;
        }
        let v = self.0.version;
        let list = |items: &[String]| {
            (!items.is_empty()).then(|| {
                let mut w = strings(&["="]);
                w.extend(items.iter().cloned());
                w
            })
        };
        Ok(vec![
            ("password", Some(vec!["=".into(), u.password.clone()])),
            ("upsmon", u.upsmon.map(|r| vec![r.word(v).to_string()])),
            ("actions", list(&u.actions)),
            ("instcmds", list(&u.instcmds)),
        ])
    }

    /// Adds user `u`, or replaces what it has: its password, upsmon role, actions and
    /// instcmds (a right not given is removed). Other lines of the user stay.
    pub fn put(&mut self, u: &UserSpec) -> Result<(), EditError> {
        let place = format!("user [{}]", u.name);
        check_name("the user name", &u.name).map_err(|r| self.0.err(&place, None, r))?;
        let lines = self.lines(u).map_err(|r| self.0.err(&place, None, r))?;
        if !self.user_names().contains(&u.name) {
            let groups = self.0.groups();
            let (_, sections) = Conf::sections(&groups);
            let indent = self.0.indent_for(
                &groups,
                sections.last().map_or(0..0, |s| s.body.clone()),
                b"\t",
            );
            let mut out = vec![self.0.line(b"", &[format!("[{}]", u.name)], &place)?];
            for (key, words) in lines {
                if let Some(words) = words {
                    let mut w = vec![key.to_string()];
                    w.extend(words);
                    out.push(self.0.line(&indent, &w, &place)?);
                }
            }
            return self.0.add_section(out);
        }
        for (key, words) in lines {
            // upsd keeps the first password; the role's last line wins; actions and instcmds
            // add up, so one line holds them all.
            let groups = self.0.groups();
            let (_, sections) = Conf::sections(&groups);
            let ranges: Vec<(usize, Range<usize>)> = sections
                .iter()
                .filter(|s| s.name == u.name)
                .map(|s| (s.header, s.body.clone()))
                .collect();
            let hits = Conf::key_lines(&groups, &ranges, key, true);
            match words {
                None => self.0.remove_groups(&groups, hits),
                Some(words) => {
                    if hits.len() > 1 {
                        self.0.remove_groups(&groups, hits[1..].to_vec());
                    }
                    self.0.set_key(Some(&u.name), key, &words, true, true)?;
                }
            }
        }
        Ok(())
    }

    /// Sets the password of an existing user (the line upsd keeps, the first).
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), EditError> {
        let place = format!("user [{name}]");
        check_value("the password", password).map_err(|r| self.0.err(&place, None, r))?;
        if password.is_empty() {
            let r = Reason::Value {
                what: "the password".into(),
                why: "is empty".into(),
            };
            return Err(self.0.err(place, None, r));
        }
        if !self.user_names().iter().any(|n| n == name) {
            return Err(self.0.err(
                place,
                None,
                Reason::NotFound {
                    what: "user".into(),
                },
            ));
        }
        self.0.set_key(
            Some(name),
            "password",
            &strings(&["=", password]),
            true,
            true,
        )
    }

    pub fn remove(&mut self, name: &str) -> Result<(), EditError> {
        if self.0.remove_section(name) {
            Ok(())
        } else {
            Err(self.0.err(
                format!("user [{name}]"),
                None,
                Reason::NotFound {
                    what: "user".into(),
                },
            ))
        }
    }
}

/// A MONITOR line of upsmon.conf.
#[derive(Clone, PartialEq, Eq)]
pub struct MonitorSpec {
    pub ups: String,
    pub host: String,
    /// `None`: NUT's port, not written.
    pub port: Option<u16>,
    pub power: u32,
    pub user: String,
    pub password: String,
    pub role: Role,
}

impl std::fmt::Debug for MonitorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorSpec")
            .field("ups", &self.ups)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("power", &self.power)
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Whether two host names are this same host to upsmon (the loopback names are one).
pub fn same_host(a: &str, b: &str) -> bool {
    let local = |h: &str| matches!(h, "localhost" | "127.0.0.1" | "::1");
    a.eq_ignore_ascii_case(b) || (local(a) && local(b))
}

/// upsmon.conf being edited.
#[derive(Clone, Debug)]
pub struct UpsmonDoc(Conf);

/// A MONITOR line read back: UPS, host, port, user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorLine {
    pub ups: String,
    pub host: String,
    pub port: u16,
    pub power: u32,
    pub user: String,
    pub role: Role,
}

impl UpsmonDoc {
    pub fn parse(bytes: &[u8], version: NutVersion) -> Self {
        UpsmonDoc(Conf::new(UPSMON_CONF, bytes, version))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.doc.to_bytes()
    }

    fn monitor_of(w: &[String]) -> Option<MonitorLine> {
        match w {
            [k, system, power, user, _, role, ..] if k == "MONITOR" => {
                let (ups, host, port) = split_system(system).ok()?;
                let role = if role.eq_ignore_ascii_case("primary")
                    || role.eq_ignore_ascii_case("master")
                {
                    Role::Primary
                } else {
                    Role::Secondary
                };
                Some(MonitorLine {
                    ups,
                    host,
                    port,
                    power: power.parse().ok()?,
                    user: user.clone(),
                    role,
                })
            }
            _ => None,
        }
    }

    /// The MONITOR lines upsmon reads (six words or more).
    pub fn monitors(&self) -> Vec<MonitorLine> {
        self.0
            .groups()
            .iter()
            .filter_map(|g| Self::monitor_of(g.words.as_deref()?))
            .collect()
    }

    fn monitor_lines(groups: &[Group], ups: &str, host: &str) -> Vec<usize> {
        Conf::directive_lines(groups, |w| {
            w[0] == "MONITOR"
                && w.get(1)
                    .and_then(|s| split_system(s).ok())
                    .is_some_and(|(u, h, _)| u == ups && same_host(&h, host))
        })
    }

    /// Adds or replaces the MONITOR line of `m.ups` at `m.host` (the first one; others for the
    /// same UPS and host are removed).
    pub fn put_monitor(&mut self, m: &MonitorSpec) -> Result<(), EditError> {
        let place = format!("MONITOR {}", m.ups);
        let checked = check_name("the UPS name", &m.ups)
            .and_then(|_| check_host("the host", &m.host))
            .and_then(|_| check_login("the user name", &m.user))
            .and_then(|_| check_login("the password", &m.password));
        checked.map_err(|r| self.0.err(&place, None, r))?;
        let host = if m.host.contains(':') && m.port.is_some() {
            format!("[{}]", m.host)
        } else {
            m.host.clone()
        };
        let system = match m.port {
            Some(p) => format!("{}@{host}:{p}", m.ups),
            None => format!("{}@{host}", m.ups),
        };
        let words = vec![
            "MONITOR".to_string(),
            system,
            m.power.to_string(),
            m.user.clone(),
            m.password.clone(),
            m.role.word(self.0.version).to_string(),
        ];
        let groups = self.0.groups();
        let hits = Self::monitor_lines(&groups, &m.ups, &m.host);
        if let Some(&first) = hits.first() {
            let g = groups[first].clone();
            self.0.remove_groups(&groups, hits[1..].to_vec());
            return self.0.replace(&g, &words, 1, &place);
        }
        let after = Conf::directive_lines(&groups, |w| w[0] == "MONITOR")
            .last()
            .copied()
            .or_else(|| Conf::content_end(&groups, 0..groups.len()));
        let indent = after.map_or_else(Vec::new, |i| self.0.doc.indent(groups[i].first));
        let new = self.0.line(&indent, &words, &place)?;
        let after = after.or(groups.len().checked_sub(1));
        self.0.insert_after(&groups, after, vec![new])
    }

    /// Removes the MONITOR lines of `ups` at `host`.
    pub fn remove_monitor(&mut self, ups: &str, host: &str) -> Result<(), EditError> {
        let groups = self.0.groups();
        let hits = Self::monitor_lines(&groups, ups, host);
        if hits.is_empty() {
            return Err(self.0.err(
                format!("MONITOR {ups}"),
                None,
                Reason::NotFound {
                    what: "MONITOR line".into(),
                },
            ));
        }
        self.0.remove_groups(&groups, hits);
        Ok(())
    }

    /// Which lines are the same directive to upsmon: one per keyword, the notify settings one
    /// per notify type.
    fn same(name: &str, args: &[String], w: &[String]) -> bool {
        w[0] == name
            && (!name.starts_with("NOTIFY") || name == "NOTIFYCMD" || w.get(1) == args.first())
    }

    /// Sets a directive other than MONITOR (`NOTIFYCMD`, `MINSUPPLIES`, `NOTIFYFLAG ONBATT`
    /// …): upsmon uses the last line of a directive, so that one is replaced.
    pub fn set(&mut self, name: &str, args: &[&str]) -> Result<(), EditError> {
        let place = name.to_string();
        let Some(d) = UPSMON_DIRECTIVES
            .iter()
            .find(|d| d.0 == name && d.0 != "MONITOR")
        else {
            return Err(self.0.err(
                place,
                None,
                Reason::Name {
                    what: "the directive".into(),
                    why: "is not an upsmon.conf directive this edit sets".into(),
                },
            ));
        };
        if args.len() != d.1 {
            return Err(self.0.err(
                place,
                None,
                Reason::Value {
                    what: "the directive".into(),
                    why: format!("takes {} word(s), not {}", d.1, args.len()),
                },
            ));
        }
        for a in args {
            check_value(&format!("the value of {name}"), a)
                .map_err(|r| self.0.err(&place, None, r))?;
        }
        let args = strings(args);
        let mut words = vec![name.to_string()];
        words.extend(args.iter().cloned());
        let groups = self.0.groups();
        let hits = Conf::directive_lines(&groups, |w| Self::same(name, &args, w));
        if let Some(&last) = hits.last() {
            let keep = if name.starts_with("NOTIFY") && name != "NOTIFYCMD" {
                2
            } else {
                1
            };
            let g = groups[last].clone();
            return self.0.replace(&g, &words, keep, &place);
        }
        let after = Conf::content_end(&groups, 0..groups.len()).or(groups.len().checked_sub(1));
        let new = self.0.line(b"", &words, &place)?;
        self.0.insert_after(&groups, after, vec![new])
    }

    /// Removes every line of a directive (for a notify setting, of its type `arg`).
    pub fn remove(&mut self, name: &str, arg: Option<&str>) {
        let args: Vec<String> = arg.into_iter().map(str::to_string).collect();
        let groups = self.0.groups();
        let hits = Conf::directive_lines(&groups, |w| Self::same(name, &args, w));
        self.0.remove_groups(&groups, hits);
    }
}

/// upsd.conf being edited.
#[derive(Clone, Debug)]
pub struct UpsdDoc(Conf);

impl UpsdDoc {
    pub fn parse(bytes: &[u8], version: NutVersion) -> Self {
        UpsdDoc(Conf::new(UPSD_CONF, bytes, version))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.doc.to_bytes()
    }

    /// Sets the whole list of LISTEN lines (address, and a port when not NUT's): line by line
    /// in place, extra old lines removed, extra new ones added after the last.
    pub fn set_listen(&mut self, list: &[(String, Option<u16>)]) -> Result<(), EditError> {
        let mut wanted = Vec::with_capacity(list.len());
        for (addr, port) in list {
            check_host("the LISTEN address", addr).map_err(|r| self.0.err("LISTEN", None, r))?;
            let mut w = vec!["LISTEN".to_string(), addr.clone()];
            w.extend(port.map(|p| p.to_string()));
            wanted.push(w);
        }
        let groups = self.0.groups();
        let old = Conf::directive_lines(&groups, |w| w[0] == "LISTEN");
        // From the end, so that earlier groups keep their lines.
        let after = old
            .last()
            .copied()
            .or_else(|| Conf::content_end(&groups, 0..groups.len()))
            .or(groups.len().checked_sub(1));
        if wanted.len() > old.len() {
            let indent = old
                .last()
                .map_or_else(Vec::new, |&i| self.0.doc.indent(groups[i].first));
            let mut lines = Vec::new();
            for w in &wanted[old.len()..] {
                lines.push(self.0.line(&indent, w, "LISTEN")?);
            }
            self.0.insert_after(&groups, after, lines)?;
        }
        for (k, &i) in old.iter().enumerate().rev() {
            match wanted.get(k) {
                Some(w) => self.0.replace(&groups[i].clone(), w, 1, "LISTEN")?,
                None => self
                    .0
                    .doc
                    .splice(groups[i].first..groups[i].last + 1, Vec::new()),
            }
        }
        Ok(())
    }
}

/// nut.conf being edited: shell assignments, not NUT's lexer.
#[derive(Clone, Debug)]
pub struct NutConfDoc(Doc);

impl NutConfDoc {
    pub fn parse(bytes: &[u8]) -> Self {
        NutConfDoc(Doc::parse(bytes))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// What MODE the shell ends up with, as the validator reads it.
    pub fn mode(&self) -> Option<Mode> {
        let mut sink = crate::nut::diag::Sink::new(NUT_CONF);
        crate::nut::nut_conf::parse(&self.0.to_bytes(), &mut sink)
            .mode
            .map(|m| m.0)
    }

    /// Sets MODE: the last `MODE=` line gets the new value (its `export`, indentation and
    /// comment kept), else `MODE=...` is added at the end.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), EditError> {
        if self.mode() == Some(mode) {
            return Ok(());
        }
        let value = mode.as_str();
        let body_at = |t: &[u8]| -> Option<usize> {
            let indent = t.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            let mut at = indent;
            if t[at..].starts_with(b"export ") {
                at += 7;
                at += t[at..]
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'\t'))
                    .count();
            }
            t[at..].starts_with(b"MODE=").then_some(at + 5)
        };
        let last = (0..self.0.lines.len())
            .rev()
            .find_map(|i| Some((i, body_at(&self.0.lines[i].text)?)));
        let before = self.0.clone();
        match last {
            Some((i, at)) => {
                let t = &self.0.lines[i].text;
                // The old value runs to the first white space outside quotes.
                let mut end = at;
                let mut quote: Option<u8> = None;
                while end < t.len() {
                    let b = t[end];
                    match quote {
                        Some(q) if b == q => quote = None,
                        Some(_) => {}
                        None if b == b'"' || b == b'\'' => quote = Some(b),
                        None if b == b' ' || b == b'\t' => break,
                        None => {}
                    }
                    end += 1;
                }
                let mut new = t[..at].to_vec();
                new.extend_from_slice(value.as_bytes());
                new.extend_from_slice(&t[end..]);
                self.0.splice(i..i + 1, vec![new]);
                // The shell would keep a carriage return as part of the value.
                self.0.lines[i].end = Ending::Lf;
                if self.mode() != Some(mode) {
                    self.0 = before;
                    let indent = self.0.indent(i);
                    let mut line = indent;
                    line.extend_from_slice(format!("MODE={value}").as_bytes());
                    self.0.splice(i..i + 1, vec![line]);
                    self.0.lines[i].end = Ending::Lf;
                }
            }
            None => {
                let n = self.0.lines.len();
                self.0
                    .splice(n..n, vec![format!("MODE={value}").into_bytes()]);
            }
        }
        if self.mode() != Some(mode) {
            return Err(EditError {
                file: NUT_CONF,
                place: "MODE".into(),
                line: None,
                reason: Reason::NotReadBack,
            });
        }
        Ok(())
    }
}
