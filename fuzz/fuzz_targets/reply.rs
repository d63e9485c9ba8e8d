//! Any bytes as upsd's replies: the one-line and list parsers never panic, and a list never
//! holds more than its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use power_snitch::upsd::proto::{line_reply, ListReader, Request, Shape, MAX_LIST};

fuzz_target!(|data: &[u8]| {
    let requests = [
        Request::GetVar("ups".into(), "ups.status".into()),
        Request::Login("ups".into()),
        Request::Ver,
        Request::ListVar("ups".into()),
        Request::ListUps,
        Request::ListRange("ups".into(), "x".into()),
    ];
    for req in &requests {
        match req.shape() {
            Shape::List(what) => {
                let mut list = ListReader::new(what);
                for line in data.split(|b| *b == b'\n') {
                    match list.feed(req, line) {
                        Ok(true) | Err(_) => break,
                        Ok(false) => {}
                    }
                }
                assert!(list.items.len() <= MAX_LIST);
            }
            _ => {
                for line in data.split(|b| *b == b'\n') {
                    let _ = line_reply(req, line);
                }
            }
        }
    }
});
