//! `power-snitch web-password`: sets the setup page's admin password, read from the first line
//! of standard input, as a salted PBKDF2 hash in the settings. A running agent sees the new
//! settings, ends every session and stops accepting the setup code.

use std::io::BufRead;

use super::settings::path;
use super::{Args, CommandError, Output};
use crate::settings::model::Secret;
use crate::settings::store;
use crate::web::auth;

pub fn run(args: &Args) -> Result<Output, CommandError> {
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::Usage(format!(
            "web-password takes no argument `{extra}`; it reads the password from standard input"
        )));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        CommandError::Usage(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\n', '\r']);
    auth::password_acceptable(password).map_err(CommandError::Usage)?;
    let Some(salt) = crate::web::random::<{ auth::SALT_LEN }>() else {
        return Err(CommandError::CannotRun(
            "the system has no randomness to give (getrandom failed)".into(),
        ));
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
            Ok(Output::ok(format!(
                "{}: the setup page's admin password is set\n",
                p.display()
            )))
        }
        Err(e) => Err(CommandError::Failed(e)),
    }
}
