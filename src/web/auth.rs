//! Who may do what, sans I/O: the admin password's hash, sessions and their CSRF tokens, the
//! one-time setup code, and the brake on repeated failed logins. Randomness and time are passed
//! in (`rand` fills bytes, `now` is seconds), so every rule is tested without a clock.
//!
//! **Invariants:** a session token, a CSRF token or a setup code is compared in constant time;
//! at most [`MAX_SESSIONS`] sessions exist (the oldest goes); nothing here keeps a password.

use std::num::NonZeroU32;

use ring::pbkdf2;

/// PBKDF2-HMAC-SHA256 rounds for a new hash: about 0.1 s on a Raspberry Pi 4.
pub const ITERATIONS: u32 = 100_000;
/// Fewest and most rounds a stored hash may ask for (a damaged or hostile settings file cannot
/// make a login take minutes).
const MIN_ITERATIONS: u32 = 1_000;
const MAX_ITERATIONS: u32 = 10_000_000;
pub const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Shortest and longest admin password.
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 256;

/// Sessions kept at once; a new login beyond this ends the oldest.
pub const MAX_SESSIONS: usize = 16;
/// A session ends this long after it was last used, and this long after it began in any case.
pub const SESSION_IDLE: u64 = 2 * 3600;
pub const SESSION_MAX: u64 = 24 * 3600;
/// The session cookie's name.
pub const COOKIE: &str = "ps_session";

/// Failed attempts allowed before each further one must wait, and the longest wait.
pub const FREE_FAILURES: u32 = 5;
pub const MAX_WAIT: u64 = 300;

/// Letters of a setup code: no 0/O, 1/I/L, so it can be read off a log and typed.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// Equal bytes, in time that depends only on the lengths.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Checks a new admin password's form: what a person must be told before it is hashed.
pub fn password_acceptable(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        ));
    }
    if p.len() > MAX_PASSWORD {
        return Err(format!("the password has at most {MAX_PASSWORD} bytes"));
    }
    if p.chars().any(char::is_control) {
        return Err("the password has a control character".into());
    }
    Ok(())
}

/// The stored form: `pbkdf2-sha256$ITERATIONS$SALT$HASH`, salt and hash in hex.
pub fn hash_password(password: &str, salt: &[u8; SALT_LEN], iterations: u32) -> String {
    let mut out = [0u8; HASH_LEN];
    let rounds = NonZeroU32::new(iterations.max(1)).expect("at least one round");
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    format!("pbkdf2-sha256${iterations}${}${}", hex(salt), hex(&out))
}

/// Whether `password` matches a stored hash; a stored value that is not one of ours matches
/// nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let ["pbkdf2-sha256", rounds, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (Ok(rounds), Some(salt), Some(hash)) = (rounds.parse::<u32>(), unhex(salt), unhex(hash))
    else {
        return false;
    };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&rounds) || hash.len() != HASH_LEN {
        return false;
    }
    let rounds = NonZeroU32::new(rounds).expect("checked above");
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// A setup code from 8 random bytes: `XXXX-XXXX`.
pub fn setup_code(random: &[u8; 8]) -> String {
    let mut out = String::with_capacity(9);
    for (i, b) in random.iter().enumerate() {
        if i == 4 {
            out.push('-');
        }
        out.push(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char);
    }
    out
}

/// A setup code kept in the setup code file (its first line), when it looks like one: 8 to
/// 24 letters, digits and dashes, at least 8 of them letters or digits.
pub fn stored_code(line: &str) -> Option<String> {
    let c = line.trim();
    let alnum = c.bytes().filter(u8::is_ascii_alphanumeric).count();
    (c.len() <= 24 && alnum >= 8 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| c.to_string())
}

/// A typed setup code against the expected one: case, spaces and dashes do not matter.
pub fn code_matches(expected: &str, typed: &str) -> bool {
    let norm = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(|b| b.to_ascii_uppercase())
            .collect()
    };
    let e = norm(expected);
    !e.is_empty() && same(&e, &norm(typed))
}

/// One logged-in browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// What the cookie carries (hex of 32 random bytes).
    pub token: String,
    /// What each form and API write carries.
    pub csrf: String,
    pub created: u64,
    pub last_used: u64,
}

/// The sessions, bounded.
#[derive(Default)]
pub struct Sessions {
    list: Vec<Session>,
}

impl Sessions {
    /// Starts a session from 64 random bytes (token, then CSRF token).
    pub fn start(&mut self, random: &[u8; 64], now: u64) -> Session {
        self.expire(now);
        if self.list.len() >= MAX_SESSIONS {
            let oldest = (0..self.list.len())
                .min_by_key(|&i| self.list[i].last_used)
                .expect("not empty");
            self.list.remove(oldest);
        }
        let s = Session {
            token: hex(&random[..32]),
            csrf: hex(&random[32..]),
            created: now,
            last_used: now,
        };
        self.list.push(s.clone());
        s
    }

    fn expire(&mut self, now: u64) {
        self.list.retain(|s| {
            now.saturating_sub(s.last_used) < SESSION_IDLE
                && now.saturating_sub(s.created) < SESSION_MAX
        });
    }

    /// The live session a cookie's token names, marked as used now.
    pub fn find(&mut self, token: &str, now: u64) -> Option<Session> {
        self.expire(now);
        let s = self
            .list
            .iter_mut()
            .find(|s| same(s.token.as_bytes(), token.as_bytes()))?;
        s.last_used = now;
        Some(s.clone())
    }

    pub fn end(&mut self, token: &str) {
        self.list
            .retain(|s| !same(s.token.as_bytes(), token.as_bytes()));
    }

    /// Ends every session (the admin password changed).
    pub fn clear(&mut self) {
        self.list.clear();
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The brake on guessing one client's attempts: after [`FREE_FAILURES`] failures in a row,
/// each further attempt must wait twice as long as the last (2 s, 4 s, 8 s, ... up to
/// [`MAX_WAIT`]) after the last failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Brake {
    pub failures: u32,
    pub last_failure: u64,
}

impl Brake {
    /// Seconds still to wait before an attempt is heard; 0 when it may go ahead.
    pub fn wait(&self, now: u64) -> u64 {
        if self.failures < FREE_FAILURES {
            return 0;
        }
        let exp = (self.failures - FREE_FAILURES).min(16);
        let until = self.last_failure + (2u64 << exp).min(MAX_WAIT);
        until.saturating_sub(now)
    }

    pub fn failed(&mut self, now: u64) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
    }

    pub fn succeeded(&mut self) {
        *self = Brake::default();
    }
}

/// Clients (addresses) whose brake is kept; beyond this the quietest is forgotten (the global
/// ceiling still counts its attempts).
pub const MAX_CLIENTS: usize = 256;
/// A client's brake is forgotten after this long without a failure.
pub const FORGET_AFTER: u64 = 3600;
/// The global ceiling: attempts all clients together may make at once, and the seconds after
/// which one more is allowed. One client alone never reaches it (its own brake is slower);
/// many together do, and then only the console's setup code lets an attempt through.
pub const GLOBAL_BURST: u32 = 30;
pub const GLOBAL_REFILL: u64 = 60;

/// Who is guessing: an IPv4 address, or an IPv6 address's /64 (one host gets a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client(u128);

impl Client {
    pub fn of(ip: std::net::IpAddr) -> Client {
        match ip {
            std::net::IpAddr::V4(v4) => Client(u128::from(u32::from(v4))),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(u128::from(u32::from(v4))),
                None => Client((u128::from(v6) >> 64 << 64) | 1 << 32),
            },
        }
    }
}

/// Why an attempt must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// This client failed too often: seconds to wait.
    Client(u64),
    /// Every client together reached the ceiling: seconds until one more attempt is allowed.
    Ceiling(u64),
}

impl Wait {
    pub fn secs(self) -> u64 {
        match self {
            Wait::Client(s) | Wait::Ceiling(s) => s,
        }
    }
}

/// An attempt let through: already counted as a failure, until [`Guard::succeeded`] or
/// [`Guard::cancel`] says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Ticket {
    client: Client,
    ceiling: bool,
}

/// The brake on guessing for the whole page: a [`Brake`] per client and a global ceiling (a
/// bucket of [`GLOBAL_BURST`] attempts, one more each [`GLOBAL_REFILL`] seconds). An attempt
/// is reserved before the password is hashed, so attempts sent in parallel are braked as if
/// they came one after the other.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    clients: Vec<(Client, Brake)>,
    /// Attempts taken from the bucket, and when it was last refilled.
    used: u32,
    refilled: u64,
}

impl Guard {
    fn refill(&mut self, now: u64) {
        if self.used == 0 {
            self.refilled = now;
            return;
        }
        let gained = now.saturating_sub(self.refilled) / GLOBAL_REFILL;
        if gained > 0 {
            self.used = self
                .used
                .saturating_sub(u32::try_from(gained).unwrap_or(u32::MAX));
            self.refilled += gained * GLOBAL_REFILL;
        }
    }

    fn brake(&mut self, client: Client, now: u64) -> &mut Brake {
        self.clients
            .retain(|(_, b)| now.saturating_sub(b.last_failure) < FORGET_AFTER);
        let i = match self.clients.iter().position(|(c, _)| *c == client) {
            Some(i) => i,
            None => {
                if self.clients.len() >= MAX_CLIENTS {
                    let quietest = (0..self.clients.len())
                        .min_by_key(|&i| self.clients[i].1.last_failure)
                        .unwrap_or(0);
                    self.clients.swap_remove(quietest);
                }
                self.clients.push((client, Brake::default()));
                self.clients.len() - 1
            }
        };
        &mut self.clients[i].1
    }

    /// Reserves an attempt by `client` now, counting it as failed until it succeeds. With
    /// `console_code` (the console's setup code was given) the global ceiling does not apply:
    /// no remote client can block that way in.
    pub fn reserve(
        &mut self,
        client: Client,
        now: u64,
        console_code: bool,
    ) -> Result<Ticket, Wait> {
        self.refill(now);
        let wait = self.brake(client, now).wait(now);
        if wait > 0 {
            return Err(Wait::Client(wait));
        }
        let ceiling = !console_code;
        if ceiling {
            if self.used >= GLOBAL_BURST {
                let next = self.refilled + GLOBAL_REFILL;
                return Err(Wait::Ceiling(next.saturating_sub(now).max(1)));
            }
            self.used += 1;
        }
        self.brake(client, now).failed(now);
        Ok(Ticket { client, ceiling })
    }

    /// The attempt succeeded: the client's brake is released, its attempt given back.
    pub fn succeeded(&mut self, t: Ticket) {
        self.clients.retain(|(c, _)| *c != t.client);
        if t.ceiling {
            self.used = self.used.saturating_sub(1);
        }
    }

    /// The attempt failed: the client's wait runs from now (the end of the attempt).
    pub fn failed(&mut self, t: Ticket, now: u64) {
        if let Some((_, b)) = self.clients.iter_mut().find(|(c, _)| *c == t.client) {
            b.last_failure = b.last_failure.max(now);
        }
    }

    /// The attempt was not made (no worker to hash it): it does not count.
    pub fn cancel(&mut self, t: Ticket) {
        if let Some((_, b)) = self.clients.iter_mut().find(|(c, _)| *c == t.client) {
            b.failures = b.failures.saturating_sub(1);
        }
        if t.ceiling {
            self.used = self.used.saturating_sub(1);
        }
    }

    /// Whether the global ceiling is reached now.
    pub fn at_ceiling(&mut self, now: u64) -> bool {
        self.refill(now);
        self.used >= GLOBAL_BURST
    }
}

/// Login lines written per [`LOG_WINDOW`] seconds; the rest are counted and said in one line.
pub const LOG_LINES: u32 = 10;
pub const LOG_WINDOW: u64 = 60;

/// Rate-limits the log lines about logins, so a flood of guesses cannot flood the journal:
/// at most [`LOG_LINES`] lines a window for logins heard (failed or not); of the attempts
/// refused at the brake only the first of a window gets a line. What is left out is counted
/// and said in one line when the next window opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginLog {
    window: u64,
    lines: u32,
    dropped: u32,
    refused: u32,
}

impl LoginLog {
    fn roll(&mut self, now: u64, out: &mut Vec<String>) {
        if now.saturating_sub(self.window) < LOG_WINDOW {
            return;
        }
        let refused = self.refused.saturating_sub(1);
        if self.dropped > 0 || refused > 0 {
            out.push(format!(
                "{} failed login(s) and {refused} refusal(s) not logged in {LOG_WINDOW} s",
                self.dropped
            ));
        }
        *self = LoginLog {
            window: now,
            ..LoginLog::default()
        };
    }

    /// The lines to write for a login heard now (it failed or succeeded).
    pub fn note(&mut self, now: u64, line: String) -> Vec<String> {
        let mut out = Vec::new();
        self.roll(now, &mut out);
        if self.lines < LOG_LINES {
            self.lines += 1;
            out.push(line);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
        out
    }

    /// The lines to write for an attempt refused at the brake now.
    pub fn refused(&mut self, now: u64, line: String) -> Vec<String> {
        let mut out = Vec::new();
        self.roll(now, &mut out);
        self.refused = self.refused.saturating_add(1);
        if self.refused == 1 {
            out.push(line);
        }
        out
    }
}

/// The cookie that starts a session: HttpOnly, SameSite=Strict, for the whole site.
pub fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_MAX}")
}

/// The cookie that ends it.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_auth_hashes_verify_and_refuse() {
        let salt = [7u8; SALT_LEN];
        let h = hash_password("correct horse", &salt, MIN_ITERATIONS);
        assert!(h.starts_with("pbkdf2-sha256$1000$0707"));
        assert!(!h.contains("correct"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct hors"));
        assert!(!verify_password(&h, ""));
        // Not ours, damaged, or asking for absurd work: matches nothing.
        for bad in [
            "",
            "plain",
            "pbkdf2-sha256$1000$zz$00",
            "pbkdf2-sha256$1$0707$00",
            &h.replace("$1000$", "$4000000000$"),
            &h[..h.len() - 2],
        ] {
            assert!(!verify_password(bad, "correct horse"), "{bad}");
        }
    }

    #[test]
    fn web_auth_pbkdf2_matches_a_known_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, first 32 bytes.
        let mut out = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(1).unwrap(),
            b"salt",
            b"passwd",
            &mut out,
        );
        assert_eq!(
            hex(&out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn web_auth_password_rules() {
        assert!(password_acceptable("short").is_err());
        assert!(password_acceptable("long enough").is_ok());
        assert!(password_acceptable("with\ttab!").is_err());
        assert!(password_acceptable(&"x".repeat(300)).is_err());
    }

    #[test]
    fn web_auth_setup_codes() {
        let c = setup_code(&[0, 1, 2, 3, 250, 251, 252, 253]);
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
        assert!(c.bytes().all(|b| b == b'-' || CODE_ALPHABET.contains(&b)));
        assert!(code_matches(&c, &c.to_lowercase().replace('-', " ")));
        assert!(!code_matches(&c, "ABCD-EFGH"));
        assert!(!code_matches("", ""));
        // What the setup code file keeps is read back; anything else makes a new code.
        assert_eq!(stored_code(&format!(" {c} ")), Some(c.clone()));
        assert_eq!(stored_code("L2NBT-FXLT2"), Some("L2NBT-FXLT2".into()));
        for bad in [
            "",
            "ABC-DEF",
            "ABCD EFGH",
            "https://pi.local:8080/login",
            &"A".repeat(25),
        ] {
            assert_eq!(stored_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn web_auth_sessions_expire_and_stay_bounded() {
        let mut s = Sessions::default();
        let a = s.start(&[1; 64], 100);
        assert_eq!(a.token.len(), 64);
        assert_ne!(a.token, hex(&[0; 32]));
        assert_eq!(s.find(&a.token, 200).map(|x| x.csrf), Some(a.csrf.clone()));
        assert_eq!(s.find("nope", 200), None);
        // Idle too long.
        assert_eq!(s.find(&a.token, 200 + SESSION_IDLE), None);
        // Used often, but too old.
        let b = s.start(&[2; 64], 1000);
        let mut t = 1000;
        while t < 1000 + SESSION_MAX - 60 {
            t += 3000;
            assert!(s.find(&b.token, t.min(1000 + SESSION_MAX - 1)).is_some());
        }
        assert_eq!(s.find(&b.token, 1000 + SESSION_MAX), None);
        // Bounded: the least recently used goes.
        let mut s = Sessions::default();
        let first = s.start(&[0; 64], 0);
        for i in 1..=MAX_SESSIONS as u8 {
            s.start(&[i; 64], u64::from(i));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.find(&first.token, 20), None);
        s.end(&hex(&[3; 32]));
        assert_eq!(s.len(), MAX_SESSIONS - 1);
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn web_auth_brake_doubles_the_wait() {
        let mut b = Brake::default();
        for i in 0..FREE_FAILURES {
            assert_eq!(b.wait(10), 0, "attempt {i} is free");
            b.failed(10);
        }
        assert_eq!(b.wait(10), 2);
        assert_eq!(b.wait(11), 1);
        assert_eq!(b.wait(12), 0);
        b.failed(12);
        assert_eq!(b.wait(12), 4);
        for _ in 0..30 {
            b.failed(20);
        }
        assert_eq!(b.wait(20), MAX_WAIT);
        b.succeeded();
        assert_eq!(b.wait(20), 0);
    }

    fn ip(s: &str) -> Client {
        Client::of(s.parse().unwrap())
    }

    #[test]
    fn web_auth_parallel_attempts_are_braked_like_serial_ones() {
        // Thirty attempts at once, none answered yet: each is reserved before its hash, so
        // only the free ones go ahead.
        let mut g = Guard::default();
        let gone: Vec<_> = (0..30)
            .filter_map(|_| g.reserve(ip("10.0.0.9"), 100, false).ok())
            .collect();
        assert_eq!(gone.len(), FREE_FAILURES as usize);
        assert_eq!(g.reserve(ip("10.0.0.9"), 100, false), Err(Wait::Client(2)));
        // Another client is not braked by this one.
        let t = g.reserve(ip("10.0.0.1"), 100, false).unwrap();
        g.succeeded(t);
        // The wait runs from the end of the last failed attempt.
        g.failed(gone[1], 103);
        assert_eq!(g.reserve(ip("10.0.0.9"), 103, false), Err(Wait::Client(2)));
        // A success releases its own client only.
        g.succeeded(gone[0]);
        assert!(g.reserve(ip("10.0.0.9"), 100, false).is_ok());
    }

    #[test]
    fn web_auth_one_client_never_reaches_the_ceiling() {
        let mut g = Guard::default();
        let mut t = 0;
        let mut tried = 0u64;
        while t < 86_400 {
            match g.reserve(ip("192.0.2.7"), t, false) {
                Ok(_) => tried += 1,
                Err(Wait::Client(w)) => t += w - 1,
                Err(Wait::Ceiling(_)) => panic!("one client reached the ceiling at {t}"),
            }
            assert!(!g.at_ceiling(t), "at {t}");
            t += 1;
        }
        // About one guess each MAX_WAIT seconds, plus the free ones.
        eprintln!("guesses a day from one address at the brake: {tried}");
        assert!(
            tried <= 86_400 / MAX_WAIT + 2 * u64::from(FREE_FAILURES) + 16,
            "{tried}"
        );
        assert!(tried >= 86_400 / MAX_WAIT, "{tried}");
    }

    #[test]
    fn web_auth_many_clients_hit_the_ceiling_but_the_console_code_passes() {
        let mut g = Guard::default();
        for i in 0..GLOBAL_BURST {
            assert!(g.reserve(ip(&format!("10.1.0.{i}")), 50, false).is_ok());
        }
        assert_eq!(
            g.reserve(ip("10.2.0.1"), 50, false),
            Err(Wait::Ceiling(GLOBAL_REFILL))
        );
        assert!(g.at_ceiling(50));
        // The setup code from the console is a way in that no remote client can block.
        let t = g.reserve(ip("10.2.0.1"), 50, true).unwrap();
        g.succeeded(t);
        // The bucket refills: one attempt each GLOBAL_REFILL seconds.
        assert!(g.reserve(ip("10.2.0.2"), 50 + GLOBAL_REFILL, false).is_ok());
        assert!(g
            .reserve(ip("10.2.0.3"), 50 + GLOBAL_REFILL, false)
            .is_err());
        // An attempt not made is given back.
        let mut g = Guard::default();
        for _ in 0..FREE_FAILURES {
            let t = g.reserve(ip("10.3.0.1"), 9, false).unwrap();
            g.cancel(t);
        }
        assert!(g.reserve(ip("10.3.0.1"), 9, false).is_ok());
        // IPv6: one /64 is one client; a v4-mapped address is its IPv4 one.
        assert_eq!(ip("2001:db8::1"), ip("2001:db8::ffff:2"));
        assert_ne!(ip("2001:db8::1"), ip("2001:db8:0:1::1"));
        assert_eq!(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
    }

    #[test]
    fn web_auth_the_ceiling_bounds_guesses_a_day_from_any_number_of_addresses() {
        let mut g = Guard::default();
        let mut tried = 0u64;
        // Three guesses a second, each from a new address, for a day.
        for t in 0..86_400u64 {
            for i in 0..3u32 {
                let a = std::net::Ipv4Addr::from(0x0a00_0000 + (t as u32 * 3 + i));
                if g.reserve(Client::of(a.into()), t, false).is_ok() {
                    tried += 1;
                }
            }
        }
        eprintln!("guesses a day from any number of addresses at the ceiling: {tried}");
        assert_eq!(
            tried,
            u64::from(GLOBAL_BURST) + 86_400 / GLOBAL_REFILL - 1,
            "the burst, then one each GLOBAL_REFILL seconds"
        );
    }

    #[test]
    fn web_auth_guard_stays_bounded() {
        let mut g = Guard::default();
        for i in 0..(MAX_CLIENTS as u32 * 3) {
            let a = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = g.reserve(
                Client::of(a),
                u64::from(i / 100) * GLOBAL_REFILL * 40,
                false,
            );
        }
        assert!(g.clients.len() <= MAX_CLIENTS);
    }

    #[test]
    fn web_auth_login_lines_are_rate_limited() {
        let mut l = LoginLog::default();
        let mut written = Vec::new();
        for i in 0..50 {
            written.extend(l.refused(1000, format!("refused {i}")));
        }
        for i in 0..100 {
            written.extend(l.note(1000, format!("failed {i}")));
        }
        // The first refusal, then the heard logins up to the budget: refusals do not use it.
        assert_eq!(written.len(), 1 + LOG_LINES as usize, "{written:?}");
        assert_eq!(written[0], "refused 0");
        assert_eq!(
            written[LOG_LINES as usize],
            format!("failed {}", LOG_LINES - 1)
        );
        let next = l.note(1000 + LOG_WINDOW, "login late".into());
        assert_eq!(
            next,
            [
                format!("90 failed login(s) and 49 refusal(s) not logged in {LOG_WINDOW} s"),
                "login late".to_string()
            ]
        );
    }

    #[test]
    fn web_auth_cookies() {
        let c = session_cookie("abc");
        for part in ["ps_session=abc", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert_eq!(cookie("a=1; ps_session=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("ps_session_x=1", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
    }
}
