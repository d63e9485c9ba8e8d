//! Forms, sans I/O: `application/x-www-form-urlencoded` bodies and query strings, and the setup
//! form checked field by field against the settings model's own rules.
//!
//! **Invariant:** [`parse`] never panics and keeps at most [`MAX_FIELDS`] fields; invalid
//! percent escapes and UTF-8 are replaced, never trusted.

use crate::settings::model::{Settings, UpsEntry, UPS_KEYS};

pub const MAX_FIELDS: usize = 64;

/// The fields of a form or query string, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(pub Vec<(String, String)>);

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=two+words`.
pub fn parse(text: &[u8]) -> Form {
    let text = String::from_utf8_lossy(text);
    Form(
        text.split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_FIELDS)
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect(),
    )
}

impl Form {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, trimmed, or "".
    pub fn text(&self, key: &str) -> &str {
        self.get(key).map_or("", str::trim)
    }

    pub fn checked(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_empty())
    }
}

/// Percent-encodes a value for a URL's query.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The setup form's fields besides the per-UPS keys.
pub const AGENT_FIELDS: &[&str] = &["log_level", "web_public_status"];

/// A field's problem, for the page to show next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// What the setup form asks: the entry to change (by its name before the change; empty for a
/// new UPS) and every field as typed.
pub struct SetupInput<'a> {
    pub original: &'a str,
    pub form: &'a Form,
}

/// The settings the form asks for, or every field's problem. Nothing is half-applied: either
/// all fields are valid and the result is whole, or the errors say which are not.
///
/// The UPS password: a typed one replaces the stored one, `nut_password_clear` removes it, and
/// an empty field keeps it (the page never has it to send back).
pub fn apply_setup(current: &Settings, input: &SetupInput) -> Result<Settings, Vec<FieldError>> {
    let form = input.form;
    let mut errors = Vec::new();
    let mut new = current.clone();
    let existing = current
        .ups
        .iter()
        .position(|u| !input.original.is_empty() && u.nut_device_name == input.original);
    if !input.original.is_empty() && existing.is_none() {
        errors.push(FieldError {
            field: "nut_device_name",
            message: format!(
                "UPS `{}` is no longer in the settings; reload the page",
                input.original
            ),
        });
        return Err(errors);
    }
    let mut entry = match existing {
        Some(i) => current.ups[i].clone(),
        None => UpsEntry::new(""),
    };
    for &field in UPS_KEYS.iter().filter(|k| **k != "nut_password") {
        if let Err(message) = entry.set(field, form.text(field)) {
            errors.push(FieldError { field, message });
        }
    }
    if form.checked("nut_password_clear") {
        entry.nut_password = None;
    } else if let Some(p) = form.get("nut_password").filter(|p| !p.is_empty()) {
        if let Err(message) = entry.set_password(p) {
            errors.push(FieldError {
                field: "nut_password",
                message,
            });
        }
    }
    if entry.nut_password.is_some() && entry.nut_username.is_none() {
        errors.push(FieldError {
            field: "nut_username",
            message: "a password needs a user name".into(),
        });
    }
    let clash = new
        .ups
        .iter()
        .enumerate()
        .any(|(i, u)| Some(i) != existing && u.nut_device_name == entry.nut_device_name);
    if clash {
        errors.push(FieldError {
            field: "nut_device_name",
            message: format!(
                "another entry is already called `{}`",
                entry.nut_device_name
            ),
        });
    }
    for key in ["log_level", "web_public_status"] {
        let v = match key {
            "web_public_status" => {
                if form.checked(key) {
                    "yes"
                } else {
                    "no"
                }
            }
            _ => form.text(key),
        };
        if let Err(message) = new.set_agent(key, v) {
            let field = AGENT_FIELDS.iter().find(|f| **f == key).expect("listed");
            errors.push(FieldError { field, message });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match existing {
        Some(i) => new.ups[i] = entry,
        None => new.ups.push(entry),
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::model::Secret;

    #[test]
    fn web_form_decodes_bodies_and_bounds_them() {
        let f = parse(b"a=1&b=two+words&c=%41%2f%zz&&d&e=%e9%");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), Some("two words"));
        assert_eq!(f.get("c"), Some("A/%zz"));
        assert_eq!(f.get("d"), Some(""));
        assert_eq!(f.get("e"), Some("\u{fffd}%"));
        assert_eq!(f.get("zz"), None);
        let many = "x=1&".repeat(1000);
        assert_eq!(parse(many.as_bytes()).0.len(), MAX_FIELDS);
        assert_eq!(parse(&[0xff, b'=', 0xfe]).0.len(), 1);
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(
            parse(format!("k={}", encode("a b/é&=")).as_bytes()).get("k"),
            Some("a b/é&=")
        );
    }

    fn current() -> Settings {
        let mut s = Settings::default();
        let mut u = UpsEntry::new("ups1");
        u.nut_driver = "usbhid-ups".into();
        u.nut_port = Some("auto".into());
        u.nut_username = Some("mon".into());
        u.nut_password = Some(Secret("stored-secret".into()));
        s.ups.push(u);
        s
    }

    fn form(pairs: &[(&str, &str)]) -> Form {
        let mut f = vec![
            ("nut_device_name", "ups1"),
            ("nut_driver", "usbhid-ups"),
            ("nut_port", "auto"),
            ("nut_username", "mon"),
            ("nut_password", ""),
            ("nut_retry_count", "3"),
            ("nut_retry_delay", "5"),
            ("upsd_host", "localhost"),
            ("upsd_port", "3493"),
            ("tls", "auto"),
            ("poll_interval", "5"),
            ("log_level", "warn"),
            ("web_public_status", "on"),
        ];
        for (k, v) in pairs {
            match f.iter_mut().find(|(fk, _)| fk == k) {
                Some(e) => e.1 = v,
                None => f.push((k, v)),
            }
        }
        Form(
            f.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn apply(original: &str, f: &Form) -> Result<Settings, Vec<FieldError>> {
        apply_setup(&current(), &SetupInput { original, form: f })
    }

    #[test]
    fn web_form_keeps_the_password_unless_one_is_typed_or_cleared() {
        let s = apply("ups1", &form(&[("poll_interval", "3")])).unwrap();
        assert_eq!(s.ups[0].poll_interval, 3);
        assert_eq!(s.ups[0].nut_password, Some(Secret("stored-secret".into())));
        let s = apply("ups1", &form(&[("nut_password", "new one")])).unwrap();
        assert_eq!(s.ups[0].nut_password, Some(Secret("new one".into())));
        let s = apply("ups1", &form(&[("nut_password_clear", "on")])).unwrap();
        assert_eq!(s.ups[0].nut_password, None);
    }

    #[test]
    fn web_form_reports_every_bad_field_and_changes_nothing() {
        let e = apply(
            "ups1",
            &form(&[
                ("poll_interval", "0"),
                ("upsd_port", "99999"),
                ("nut_driver", ""),
                ("tls", "maybe"),
                ("log_level", "loud"),
            ]),
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "nut_driver",
                "upsd_port",
                "tls",
                "poll_interval",
                "log_level"
            ]
        );
        assert!(e[3].message.contains("from 1 to 3600"), "{e:?}");
    }

    #[test]
    fn web_form_adds_renames_and_refuses_clashes() {
        let s = apply(
            "",
            &form(&[
                ("nut_device_name", "ups2"),
                ("nut_username", ""),
                ("nut_password", ""),
            ]),
        )
        .unwrap();
        assert_eq!(s.ups.len(), 2);
        assert_eq!(s.ups[1].nut_device_name, "ups2");
        assert_eq!(s.ups[1].nut_password, None);
        let s = apply("ups1", &form(&[("nut_device_name", "rack")])).unwrap();
        assert_eq!(s.ups.len(), 1);
        assert_eq!(s.ups[0].nut_device_name, "rack");
        let e = apply("", &form(&[])).unwrap_err();
        assert_eq!(e[0].field, "nut_device_name");
        let e = apply("gone", &form(&[])).unwrap_err();
        assert!(e[0].message.contains("no longer"));
        let e = apply("ups1", &form(&[("nut_username", "")])).unwrap_err();
        assert_eq!(e[0].field, "nut_username");
    }
}
