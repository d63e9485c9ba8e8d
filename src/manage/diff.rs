//! Unified diffs of NUT's files, sans I/O: a Myers diff over lines, printed like `diff -u` with
//! `a/NAME` and `b/NAME` headers and three lines of context, passwords masked on both sides.

use crate::nut::{UPSD_USERS, UPSMON_CONF};

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;
/// Most lines of one file diffed; NUT's files are a few hundred lines. Past this the diff says
/// only that the file changed.
pub const MAX_LINES: usize = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// The unified diff from `old` to `new` of the file `name` (empty when they are equal). `None`
/// for `old` is a file that does not exist yet, `None` for `new` one that goes away.
pub fn unified(name: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> String {
    if old == new {
        return String::new();
    }
    let a = lines(old.unwrap_or_default());
    let b = lines(new.unwrap_or_default());
    let mut out = format!(
        "--- {}\n+++ {}\n",
        if old.is_some() {
            format!("a/{name}")
        } else {
            "/dev/null".into()
        },
        if new.is_some() {
            format!("b/{name}")
        } else {
            "/dev/null".into()
        },
    );
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        out.push_str(&format!(
            "@@ the file has more than {MAX_LINES} lines: not diffed @@\n"
        ));
        return out;
    }
    // Compared unmasked (a changed password is a changed line), printed masked.
    let ops = myers(&a, &b);
    // Positions of each op in a and b.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Same => {
                i += 1;
                j += 1;
            }
            Op::Del => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Same).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (ai, bj) = pos[start];
        let acount = ops[start..end].iter().filter(|o| **o != Op::Add).count();
        let bcount = ops[start..end].iter().filter(|o| **o != Op::Del).count();
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(ai, acount),
            range(bj, bcount)
        ));
        for (idx, op) in ops.iter().enumerate().take(end).skip(start) {
            let (x, y) = pos[idx];
            let (mark, line) = match op {
                Op::Same => (' ', &a[x]),
                Op::Del => ('-', &a[x]),
                Op::Add => ('+', &b[y]),
            };
            out.push(mark);
            out.push_str(&mask(name, &line.text));
            out.push('\n');
            if !line.newline {
                out.push_str("\\ No newline at end of file\n");
            }
        }
        k += 1;
    }
    out
}

/// `diff -u`'s range: `start,count`, 1-based; an empty range names the line before it.
fn range(start: usize, count: usize) -> String {
    match count {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

/// One line of a file and whether a newline ended it.
#[derive(PartialEq, Eq)]
struct Line {
    text: String,
    newline: bool,
}

/// The file's lines.
fn lines(text: &[u8]) -> Vec<Line> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, nl) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        rest = &rest[(line.len() + usize::from(nl)).min(rest.len())..];
        out.push(Line {
            text: String::from_utf8_lossy(line).into_owned(),
            newline: nl,
        });
    }
    out
}

/// The line with its password replaced by `********`: upsd.users' `password = ...` and the
/// password word of upsmon.conf's MONITOR lines.
pub fn mask(name: &str, line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    match name {
        UPSD_USERS => {
            let lower = trimmed.to_ascii_lowercase();
            if let Some(after) = lower.strip_prefix("password") {
                if after.trim_start().starts_with('=') {
                    return format!("{indent}password = ********");
                }
            }
            line.to_string()
        }
        UPSMON_CONF => {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            if words
                .first()
                .is_some_and(|w| w.eq_ignore_ascii_case("MONITOR"))
                && words.len() >= 5
            {
                let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
                // MONITOR system power user password role: the password is the fifth word,
                // unless a quoted word before it has spaces (then mask everything after user).
                w[4] = "********".into();
                return format!("{indent}{}", w.join(" "));
            }
            line.to_string()
        }
        _ => line.to_string(),
    }
}

/// Most differing lines Myers looks for; past it the middle is shown replaced whole, so the
/// memory stays bounded (about `MAX_D`² words).
const MAX_D: usize = 300;

/// An edit script from `a` to `b`: the shortest (Myers) when the files differ in at most
/// [`MAX_D`] lines after their common start and end, else the differing middle replaced.
fn myers<T: PartialEq>(a: &[T], b: &[T]) -> Vec<Op> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops = vec![Op::Same; pre];
    match shortest(ma, mb) {
        Some(mid) => ops.extend(mid),
        None => {
            ops.extend(std::iter::repeat_n(Op::Del, ma.len()));
            ops.extend(std::iter::repeat_n(Op::Add, mb.len()));
        }
    }
    ops.extend(std::iter::repeat_n(Op::Same, suf));
    ops
}

fn shortest<T: PartialEq>(a: &[T], b: &[T]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let cap = (a.len() + b.len()).min(MAX_D);
    let off = cap as isize + 1;
    let mut v = vec![0isize; 2 * cap + 3];
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut found = false;
    'outer: for d in 0..=cap as isize {
        trace.push(v.clone());
        let mut k = -d;
        while k <= d {
            let idx = (k + off) as usize;
            let mut x = if k == -d || (k != d && v[idx - 1] < v[idx + 1]) {
                v[idx + 1]
            } else {
                v[idx - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx] = x;
            if x >= n && y >= m {
                found = true;
                break 'outer;
            }
            k += 2;
        }
    }
    if !found {
        return None;
    }
    // Walk back: trace[d] is V before step d.
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..trace.len()).rev() {
        let v = &trace[d];
        let d = d as isize;
        let k = x - y;
        let prev_k = if k == -d || (k != d && v[(k - 1 + off) as usize] < v[(k + 1 + off) as usize])
        {
            k + 1
        } else {
            k - 1
        };
        let prev_x = v[(prev_k + off) as usize];
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Same);
            x -= 1;
            y -= 1;
        }
        if x == prev_x {
            ops.push(Op::Add);
            y -= 1;
        } else {
            ops.push(Op::Del);
            x -= 1;
        }
    }
    while x > 0 && y > 0 {
        ops.push(Op::Same);
        x -= 1;
        y -= 1;
    }
    ops.reverse();
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, old: Option<&str>, new: Option<&str>, want: &str) {
        let got = unified(name, old.map(str::as_bytes), new.map(str::as_bytes));
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn diffs_like_diff_u() {
        check("ups.conf", Some("a\n"), Some("a\n"), "");
        check(
            "ups.conf",
            Some("a\nb\nc\n"),
            Some("a\nB\nc\n"),
            "--- a/ups.conf\n+++ b/ups.conf\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n",
        );
        check(
            "ups.conf",
            None,
            Some("[x]\n"),
            "--- /dev/null\n+++ b/ups.conf\n@@ -0,0 +1 @@\n+[x]\n",
        );
        check(
            "ups.conf",
            Some("x"),
            Some("x\n"),
            "--- a/ups.conf\n+++ b/ups.conf\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n",
        );
        // Two changes far apart make two hunks; near ones share one.
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .map(|i| match i {
                2 => "two\n".to_string(),
                18 => "eighteen\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        check(
            "ups.conf",
            Some(&old),
            Some(&new),
            "--- a/ups.conf\n+++ b/ups.conf\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n",
        );
    }

    #[test]
    fn masks_passwords_on_both_sides() {
        check(
            "upsd.users",
            Some("[mon]\n\tpassword = old\n"),
            Some("[mon]\n\tpassword = \"new one\"\n\tupsmon primary\n"),
            "--- a/upsd.users\n+++ b/upsd.users\n@@ -1,2 +1,3 @@\n [mon]\n-\tpassword = ********\n+\tpassword = ********\n+\tupsmon primary\n",
        );
        let got = unified(
            "upsmon.conf",
            Some(b"MONITOR ups@localhost 1 mon secret1 primary\n"),
            Some(b"MONITOR ups@localhost 1 mon secret2 primary\n"),
        );
        assert!(!got.contains("secret"), "{got}");
        // The changed password is a changed line, masked on both sides.
        assert!(got.contains("-MONITOR ups@localhost 1 mon ******** primary\n+MONITOR ups@localhost 1 mon ******** primary\n"), "{got}");
    }

    #[test]
    fn myers_is_minimal_and_consistent() {
        let mut rng = crate::nut::Rng(7);
        for _ in 0..300 {
            let a: Vec<u64> = (0..rng.below(12)).map(|_| rng.below(4)).collect();
            let b: Vec<u64> = (0..rng.below(12)).map(|_| rng.below(4)).collect();
            // Compared unmasked (a changed password is a changed line), printed masked.
            let ops = myers(&a, &b);
            // Replaying the script on a gives b.
            let (mut i, mut j, mut out) = (0, 0, Vec::new());
            for op in &ops {
                match op {
                    Op::Same => {
                        assert_eq!(a[i], b[j]);
                        out.push(a[i]);
                        i += 1;
                        j += 1;
                    }
                    Op::Del => i += 1,
                    Op::Add => {
                        out.push(b[j]);
                        j += 1;
                    }
                }
            }
            assert_eq!((i, out), (a.len(), b.clone()));
            // As many kept lines as the longest common subsequence.
            let kept = ops.iter().filter(|o| **o == Op::Same).count();
            assert_eq!(kept, lcs(&a, &b), "{a:?} {b:?}");
        }
    }

    fn lcs(a: &[u64], b: &[u64]) -> usize {
        let mut t = vec![vec![0; b.len() + 1]; a.len() + 1];
        for i in 0..a.len() {
            for j in 0..b.len() {
                t[i + 1][j + 1] = if a[i] == b[j] {
                    t[i][j] + 1
                } else {
                    t[i][j + 1].max(t[i + 1][j])
                };
            }
        }
        t[a.len()][b.len()]
    }
}
