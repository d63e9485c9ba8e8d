//! Any bytes as what a browser sends the setup page: a form body or query string, the setup
//! form applied to settings, a Cookie header, a path, an Origin. Nothing panics; a form keeps
//! its bound; a refused setup form changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::settings::model::{Settings, UpsEntry};
use power_snitch::web::{auth, form, http};

fuzz_target!(|data: &[u8]| {
    let f = form::parse(data);
    assert!(f.0.len() <= form::MAX_FIELDS);
    let mut current = Settings::default();
    current.ups.push(UpsEntry::new("ups1"));
    for original in ["", "ups1"] {
        let input = form::SetupInput { original, form: &f };
        if let Ok(new) = form::apply_setup(&current, &input) {
            assert!(new.ups.len() <= current.ups.len() + 1);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = auth::cookie(&text, auth::COOKIE);
    let _ = auth::code_matches("ABCD-EFGH", &text);
    let _ = http::same_origin(&text, "pi:8080");
    let _ = http::route("GET", &text);
    let _ = http::route("POST", &text);
    let _ = form::encode(&text);
});
