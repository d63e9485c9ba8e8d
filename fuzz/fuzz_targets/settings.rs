//! Any bytes as a settings file: the decoder never panics, and what it accepts re-encodes to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::settings::stored::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok((settings, _)) = decode(data) {
        assert_eq!(decode(&encode(&settings)).map(|r| r.0), Ok(settings));
    }
});
