//! The POSIX extended regular expressions NUT's USB matchers are written in (`vendorid`,
//! `product`, `serial`, …), matched as `usb-common.c` does: case-insensitively, against the
//! whole value with surrounding blanks trimmed. A small ERE engine of our own: literals, `.`,
//! bracket expressions with ranges and `[:class:]`, groups, `|`, `*`, `+`, `?`, `{m,n}`,
//! anchors. Matching backtracks with a step budget, so no pattern can take long. The
//! validator compiles every matcher with it (a bad one stops the driver); the probe matches
//! devices with it.

use std::cell::Cell;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Byte(u8),
    Any,
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
    Group(Vec<Vec<Piece>>),
    Start,
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    atom: Atom,
    min: u32,
    max: u32,
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regex {
    alt: Vec<Vec<Piece>>,
}

const MAX_REPEAT: u32 = 255;
const STEP_BUDGET: u32 = 200_000;

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let mut p = Parser {
            b: pattern.as_bytes(),
            i: 0,
            depth: 0,
        };
        let alt = p.alt()?;
        if p.i < p.b.len() {
            return Err(format!("unmatched `)` at position {}", p.i + 1));
        }
        Ok(Regex { alt })
    }

    /// Whether the pattern matches all of `s`, ignoring case.
    pub fn full_match(&self, s: &str) -> bool {
        let s = s.as_bytes();
        let budget = Cell::new(STEP_BUDGET);
        m_alt(&self.alt, s, 0, &mut |j| j == s.len(), &budget)
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn alt(&mut self) -> Result<Vec<Vec<Piece>>, String> {
        let mut alt = vec![self.seq()?];
        while self.peek() == Some(b'|') {
            self.i += 1;
            alt.push(self.seq()?);
        }
        Ok(alt)
    }

    fn seq(&mut self) -> Result<Vec<Piece>, String> {
        let mut seq: Vec<Piece> = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b'|' | b')' => break,
                b'*' | b'+' | b'?' | b'{' => {
                    let Some(last) = seq.pop() else {
                        return Err(format!(
                            "`{}` at position {} repeats nothing",
                            c as char,
                            self.i + 1
                        ));
                    };
                    let (min, max) = self.quantifier()?;
                    // A repeat of a repeat applies to the whole of it.
                    let atom = if last.min == 1 && last.max == 1 {
                        last.atom
                    } else {
                        Atom::Group(vec![vec![last]])
                    };
                    seq.push(Piece { atom, min, max });
                }
                _ => {
                    let atom = self.atom()?;
                    seq.push(Piece {
                        atom,
                        min: 1,
                        max: 1,
                    });
                }
            }
        }
        Ok(seq)
    }

    fn quantifier(&mut self) -> Result<(u32, u32), String> {
        let c = self.b[self.i];
        self.i += 1;
        Ok(match c {
            b'*' => (0, u32::MAX),
            b'+' => (1, u32::MAX),
            b'?' => (0, 1),
            _ => {
                let start = self.i;
                let close = self.b[start..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or_else(|| format!("`{{` at position {start} is never closed"))?;
                let body = std::str::from_utf8(&self.b[start..start + close]).unwrap_or("");
                self.i = start + close + 1;
                let num = |s: &str| -> Result<u32, String> {
                    s.parse::<u32>()
                        .ok()
                        .filter(|n| *n <= MAX_REPEAT)
                        .ok_or_else(|| format!("bad repeat count `{{{body}}}`"))
                };
                match body.split_once(',') {
                    None => {
                        let n = num(body)?;
                        (n, n)
                    }
                    Some((a, "")) => (num(a)?, u32::MAX),
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if a > b {
                            return Err(format!("bad repeat count `{{{body}}}`"));
                        }
                        (a, b)
                    }
                }
            }
        })
    }

    fn atom(&mut self) -> Result<Atom, String> {
        let c = self.b[self.i];
        self.i += 1;
        Ok(match c {
            b'.' => Atom::Any,
            b'^' => Atom::Start,
            b'$' => Atom::End,
            b'\\' => {
                let Some(n) = self.peek() else {
                    return Err("a trailing `\\` escapes nothing".to_string());
                };
                self.i += 1;
                Atom::Byte(n)
            }
            b'(' => {
                self.depth += 1;
                if self.depth > 32 {
                    return Err("groups nested too deep".to_string());
                }
                let alt = self.alt()?;
                if self.peek() != Some(b')') {
                    return Err("`(` is never closed".to_string());
                }
                self.i += 1;
                self.depth -= 1;
                Atom::Group(alt)
            }
            b'[' => self.class()?,
            other => Atom::Byte(other),
        })
    }

    fn class(&mut self) -> Result<Atom, String> {
        let negated = self.peek() == Some(b'^');
        if negated {
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err("`[` is never closed".to_string());
            };
            self.i += 1;
            if c == b']' && !first {
                break;
            }
            first = false;
            if c == b'[' && self.peek() == Some(b':') {
                let rest = &self.b[self.i + 1..];
                let end = rest
                    .windows(2)
                    .position(|w| w == b":]")
                    .ok_or("`[:` is never closed")?;
                let name = std::str::from_utf8(&rest[..end]).unwrap_or("");
                ranges.extend(
                    named_class(name).ok_or_else(|| format!("unknown class `[:{name}:]`"))?,
                );
                self.i += 1 + end + 2;
                continue;
            }
            if self.peek() == Some(b'-') && self.b.get(self.i + 1).is_some_and(|&n| n != b']') {
                let hi = self.b[self.i + 1];
                self.i += 2;
                if hi < c {
                    return Err(format!("range `{}-{}` is backwards", c as char, hi as char));
                }
                ranges.push((c, hi));
            } else {
                ranges.push((c, c));
            }
        }
        Ok(Atom::Class { negated, ranges })
    }
}

fn named_class(name: &str) -> Option<Vec<(u8, u8)>> {
    Some(match name {
        "digit" => vec![(b'0', b'9')],
        "alpha" => vec![(b'a', b'z'), (b'A', b'Z')],
        "alnum" => vec![(b'0', b'9'), (b'a', b'z'), (b'A', b'Z')],
        "upper" => vec![(b'A', b'Z')],
        "lower" => vec![(b'a', b'z')],
        "xdigit" => vec![(b'0', b'9'), (b'a', b'f'), (b'A', b'F')],
        "space" => vec![(b' ', b' '), (b'\t', b'\r')],
        "blank" => vec![(b' ', b' '), (b'\t', b'\t')],
        "punct" => vec![(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
        "print" => vec![(b' ', b'~')],
        "graph" => vec![(b'!', b'~')],
        "cntrl" => vec![(0, 31), (127, 127)],
        _ => return None,
    })
}

fn class_has(ranges: &[(u8, u8)], c: u8) -> bool {
    let within = |c: u8| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
    within(c) || within(c.to_ascii_lowercase()) || within(c.to_ascii_uppercase())
}

type Cont<'a> = dyn FnMut(usize) -> bool + 'a;

fn spend(budget: &Cell<u32>) -> bool {
    let left = budget.get();
    if left == 0 {
        return false;
    }
    budget.set(left - 1);
    true
}

fn m_alt(alt: &[Vec<Piece>], s: &[u8], i: usize, k: &mut Cont, budget: &Cell<u32>) -> bool {
    alt.iter().any(|seq| m_seq(seq, s, i, k, budget))
}

fn m_seq(seq: &[Piece], s: &[u8], i: usize, k: &mut Cont, budget: &Cell<u32>) -> bool {
    if !spend(budget) {
        return false;
    }
    match seq.split_first() {
        None => k(i),
        Some((p, rest)) => m_piece(p, 0, rest, s, i, k, budget),
    }
}

fn m_piece(
    p: &Piece,
    count: u32,
    rest: &[Piece],
    s: &[u8],
    i: usize,
    k: &mut Cont,
    budget: &Cell<u32>,
) -> bool {
    if !spend(budget) {
        return false;
    }
    // Greedy: one more, then the rest. An empty match ends the repeat, so `(a*)*` terminates.
    if count < p.max
        && m_atom(
            &p.atom,
            s,
            i,
            &mut |j| (j != i || count < p.min) && m_piece(p, count + 1, rest, s, j, k, budget),
            budget,
        )
    {
        return true;
    }
    count >= p.min && m_seq(rest, s, i, k, budget)
}

fn m_atom(atom: &Atom, s: &[u8], i: usize, k: &mut Cont, budget: &Cell<u32>) -> bool {
    match atom {
        Atom::Byte(b) => s.get(i).is_some_and(|c| c.eq_ignore_ascii_case(b)) && k(i + 1),
        Atom::Any => i < s.len() && k(i + 1),
        Atom::Class { negated, ranges } => {
            s.get(i).is_some_and(|&c| class_has(ranges, c) != *negated) && k(i + 1)
        }
        Atom::Group(alt) => m_alt(alt, s, i, k, budget),
        Atom::Start => i == 0 && k(i),
        Atom::End => i == s.len() && k(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p).unwrap().full_match(s)
    }

    #[test]
    fn literals_match_whole_values_ignoring_case() {
        assert!(m("0764", "0764"));
        assert!(!m("076", "0764"));
        assert!(!m("764", "0764"));
        assert!(m("CPS", "cps"));
        assert!(m("back-ups.*", "Back-UPS ES 700G FW:871.O4 .I USB FW:O4"));
    }

    #[test]
    fn classes_groups_and_repeats() {
        assert!(m("05[0-9a-f]d", "051D"));
        assert!(m("[[:digit:]]{4}", "0463"));
        assert!(!m("[[:digit:]]{4}", "04a3"));
        assert!(m("(eaton|mge)", "MGE"));
        assert!(m("^A5.*I$", "A50285BI"));
        assert!(m("a?b+c*", "bbb"));
        assert!(m("[^x]+", "abc"));
        assert!(!m("[^x]+", "axc"));
        assert!(m("a{2,3}", "aaa"));
        assert!(!m("a{2,3}", "aaaa"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
        assert!(m("[]a]", "]"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for p in [
            "(ab",
            "ab)",
            "[ab",
            "*a",
            "a{3,1}",
            "a\\",
            "[[:nope:]]",
            "[z-a]",
        ] {
            assert!(Regex::new(p).is_err(), "{p}");
        }
    }

    #[test]
    fn pathological_patterns_end() {
        let re = Regex::new("(a*)*(a*)*(a*)*b").unwrap();
        assert!(!re.full_match(&"a".repeat(60)));
        assert!(m("(a|aa)*c", &format!("{}c", "a".repeat(40))));
    }
}
