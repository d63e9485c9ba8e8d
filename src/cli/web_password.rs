//! `power-snitch web-password`: sets the setup page's admin password, read from the first line
//! of standard input, as a salted PBKDF2 hash in the settings. A running agent sees the new
//! settings, ends every session and stops accepting the setup code.

use std::io::BufRead;

use super::settings::path;
use super::status::usage;
use super::Args;
use crate::settings::model::Secret;
use crate::settings::store;
use crate::web::auth;

pub fn run(args: &Args) -> (u8, String) {
    let format = args.common.format;
    if let Some(extra) = args.positional.first() {
        return usage(
            format,
            &format!("web-password takes no argument `{extra}`; it reads the password from standard input"),
        );
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        return usage(
            format,
            &format!("cannot read the password from standard input: {e}"),
        );
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if let Err(e) = auth::password_acceptable(password) {
        return usage(format, &e);
    }
    let Some(salt) = crate::web::random::<{ auth::SALT_LEN }>() else {
        return usage(
            format,
            "the system has no randomness to give (getrandom failed)",
        );
    };
    let hash = auth::hash_password(password, &salt, auth::ITERATIONS);
    let p = path(args);
    let loaded = store::load(&p);
    for w in &loaded.warnings {
        eprintln!("power-snitch: warning: {w}");
    }
    let mut new = loaded.settings.clone();
    new.web_password = Some(Secret(hash));
    match store::commit(&p, &new) {
        Ok(_) => {
            let code = crate::web::setup_code_path(&p);
            let _ = std::fs::remove_file(&code);
            (
                0,
                format!("{}: the setup page's admin password is set\n", p.display()),
            )
        }
        Err(e) => {
            eprintln!("power-snitch: {e}");
            (2, String::new())
        }
    }
}
