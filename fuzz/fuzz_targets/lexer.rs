//! Any bytes: the lexer never panics, and what it reads formats back to the same words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::nut::conf::format_line;
use power_snitch::nut::lexer::{lex, Dialect};

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::HashInQuotesIsError, Dialect::HashInQuotesIsLiteral] {
        let lexed = lex(data, dialect);
        for line in lexed.lines.iter().filter(|l| !l.skipped) {
            let words: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
            let text = format_line(words.iter().copied()) + "\n";
            let again = lex(text.as_bytes(), dialect);
            let back: Vec<&str> = again.lines.iter().flat_map(|l| l.words.iter().map(|w| w.text.as_str())).collect();
            assert_eq!(back, words);
        }
    }
});
