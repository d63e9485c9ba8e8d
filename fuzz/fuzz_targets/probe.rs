//! Any bytes through the probe's pure parsers: HID report descriptors, the serial dialogues
//! (fed in the pieces a port might deliver), NUT's udev rules and USB matcher patterns. None
//! may panic, and a dialogue always ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::probe::dialogue::{Action, Dialogue, Protocol};
use power_snitch::probe::{hid, matcher, table};

fuzz_target!(|data: &[u8]| {
    let s = hid::parse(data);
    let _ = (s.is_power_device(), s.kind());

    for p in Protocol::ALL {
        let (mut d, mut action) = Dialogue::start(p);
        let mut chunks = data.chunks(7);
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "a dialogue must end");
            action = match action {
                Action::Done(_) => break,
                Action::Send(..) | Action::Read => match chunks.next() {
                    Some(c) => d.feed(c),
                    None => d.timeout(),
                },
            };
        }
    }

    let text = String::from_utf8_lossy(data);
    let _ = table::parse_udev_rules(&text);
    if let Some((pattern, subject)) = text.split_once('\n') {
        if let Ok(re) = matcher::Regex::new(pattern) {
            let _ = re.full_match(subject);
        }
    }
});
