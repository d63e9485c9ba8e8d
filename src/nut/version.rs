//! NUT versions, and the rules that change between them.

use std::fmt;
use std::str::FromStr;

use super::lexer::Dialect;

/// A NUT release, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NutVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl NutVersion {
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        NutVersion {
            major,
            minor,
            patch,
        }
    }

    /// The newest release whose rules this build knows: the default when none is detected.
    pub const NEWEST: NutVersion = NutVersion::new(2, 8, 6);

    /// How the config lexer treats `#` inside quotes (changed for 2.8.6).
    pub fn dialect(self) -> Dialect {
        if self >= NutVersion::new(2, 8, 6) {
            Dialect::HashInQuotesIsLiteral
        } else {
            Dialect::HashInQuotesIsError
        }
    }

    /// `primary`/`secondary` replaced `master`/`slave` in 2.8.0; older releases know only the
    /// old words.
    pub fn knows_primary(self) -> bool {
        self >= NutVersion::new(2, 8, 0)
    }

    /// Finds a version in a program's banner, such as `Network UPS Tools upsd 2.8.0`
    /// or `Network UPS Tools upsd 2.8.2.1-1-g1234abc`.
    pub fn from_banner(text: &str) -> Option<NutVersion> {
        text.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .filter(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .find_map(|w| {
                let core: String = w
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let v = core.trim_end_matches('.').parse::<NutVersion>().ok()?;
                (v.major >= 2).then_some(v)
            })
    }
}

impl fmt::Display for NutVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for NutVersion {
    type Err = String;

    /// `2.8`, `2.8.0`, `2.8.2.1` (the fourth part is ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a NUT version (expected e.g. 2.8.0)");
        let mut parts = s.trim().split('.');
        let mut next = |required: bool| -> Result<u16, String> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let major = next(true)?;
        let minor = next(true)?;
        let patch = next(false)?;
        Ok(NutVersion::new(major, minor, patch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_and_banners() {
        assert_eq!("2.8.0".parse(), Ok(NutVersion::new(2, 8, 0)));
        assert_eq!("2.7".parse(), Ok(NutVersion::new(2, 7, 0)));
        assert!("x.y".parse::<NutVersion>().is_err());
        assert_eq!(
            NutVersion::from_banner("Network UPS Tools upsd 2.8.0\n"),
            Some(NutVersion::new(2, 8, 0))
        );
        assert_eq!(
            NutVersion::from_banner("Network UPS Tools upsd 2.8.2.1-1-gabc (development)"),
            Some(NutVersion::new(2, 8, 2))
        );
        assert_eq!(
            NutVersion::from_banner("Network UPS Tools - Generic HID driver 0.47 (2.8.0)"),
            Some(NutVersion::new(2, 8, 0))
        );
    }

    #[test]
    fn dialect_changes_at_2_8_6() {
        assert_eq!(
            NutVersion::new(2, 8, 5).dialect(),
            Dialect::HashInQuotesIsError
        );
        assert_eq!(
            NutVersion::new(2, 8, 6).dialect(),
            Dialect::HashInQuotesIsLiteral
        );
    }
}
