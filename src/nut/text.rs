//! The text of a config word. Most words are short (`driver`, `=`, `usbhid-ups`), so they are
//! kept inline and reading a file does not allocate once per word.

use std::fmt;
use std::ops::Deref;

const INLINE: usize = 30;

#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Text {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(String),
}

impl Text {
    pub fn new(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline {
                len: s.len() as u8,
                buf,
            }
        } else {
            Text::Heap(s.to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Text::Inline { len, buf } => {
                let bytes = &buf[..usize::from(*len)];
                // SAFETY: `new` is the only constructor of `Inline`, and it copies a whole `&str`
                // (so valid UTF-8) of exactly `len` bytes; the bytes are never changed after.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Text::Heap(s) => s,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::new("")
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_texts_read_back() {
        for s in [
            "",
            "=",
            "usbhid-ups",
            &"x".repeat(30),
            &"y".repeat(31),
            &"z".repeat(512),
        ] {
            let t = Text::new(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(t, s);
        }
        assert!(matches!(Text::new(&"x".repeat(30)), Text::Inline { .. }));
        assert!(matches!(Text::new(&"x".repeat(31)), Text::Heap(_)));
    }
}
