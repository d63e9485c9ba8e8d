//! `power-snitch test-connection [UPS@HOST[:PORT]] [--user U --password-stdin] [--login]`:
//! a step-by-step verdict on the way from here to the UPS's data, without side effects unless
//! `--login` asks for a LOGIN test.

use std::io::BufRead;

use super::status::{client_for, usage};
use super::{runtime, Args, Format};
use crate::upsd::diagnose::{diagnose, json, Step};
use crate::upsd::target::Target;

pub fn run(args: &Args) -> (u8, String) {
    let c = &args.common;
    let credentials = match (&c.user, c.password_stdin) {
        (None, false) => None,
        (Some(u), true) => match read_password() {
            Ok(p) => Some((u.clone(), p)),
            Err(e) => return usage(c.format, &e),
        },
        (Some(_), false) => {
            return usage(
                c.format,
                "--user needs --password-stdin (the password is read from standard input)",
            )
        }
        (None, true) => return usage(c.format, "--password-stdin needs --user"),
    };
    if c.login && credentials.is_none() {
        return usage(c.format, "--login needs --user and --password-stdin");
    }
    let mut client = match client_for(args, "test-connection") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let target = client.target.clone();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return super::status::cannot_run(c.format, &e),
    };
    let steps = rt.block_on(diagnose(&mut client, credentials, c.login));
    let ok = steps.iter().all(Step::ok);
    let out = match c.format {
        Format::Human => human(&target, &steps, ok),
        Format::Json => json(&steps),
    };
    (if ok { 0 } else { 2 }, out)
}

/// The first line of standard input, without its newline.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn human(target: &Target, steps: &[Step], ok: bool) -> String {
    let mut out = String::new();
    for s in steps {
        let mark = if s.ok() { "ok  " } else { "FAIL" };
        let kind = s.error().map_or(String::new(), |e| {
            format!(" [{} {}]", e.kind().as_str(), e.code())
        });
        out.push_str(&format!(
            "{mark} {}{kind}: {}\n",
            s.name.as_str(),
            s.message()
        ));
    }
    let verdict = if ok { "all steps passed" } else { "failed" };
    out.push_str(&format!("{}: {verdict}\n", target.address()));
    out
}
