//! The settings against NUT's files, as a check sees them: the comparison, what changed since
//! the last check, and upsd's word on the stored credentials.

use std::path::{Path, PathBuf};

use super::plan::Plan;
use crate::nut::diag::Finding;
use crate::nut::Parsed;
use crate::settings::model::Settings;
use crate::settings::sync;

/// The settings against NUT's files; with the face's live part, what changed since the last
/// check and upsd's word on the stored credentials. Findings name the settings file.
pub fn compare(plan: &Plan, settings: &Settings, parsed: &Parsed) -> Vec<Finding> {
    let name = plan.settings_name();
    let mut findings = sync::compare(settings, parsed);
    for f in &mut findings {
        f.file = name.clone();
    }
    if plan.face.settings_live() {
        findings.extend(track_changes(&plan.settings_path, &plan.nut_dir, &name));
        match super::runtime() {
            Ok(rt) => findings.extend(rt.block_on(live_credentials(settings, parsed, &name))),
            Err(e) => log::warn!("the stored credentials were not checked with upsd: {e}"),
        }
    }
    findings
}

/// Compares the fingerprints of NUT's files and of the settings with the last check's, and
/// remembers the new ones.
pub fn track_changes(settings: &Path, nut_dir: &Path, name: &str) -> Vec<Finding> {
    use crate::settings::fingerprint;
    let seen_path = {
        let mut s = settings.as_os_str().to_owned();
        s.push(".seen");
        PathBuf::from(s)
    };
    let mut now: Vec<_> = [
        crate::nut::NUT_CONF,
        crate::nut::UPS_CONF,
        crate::nut::UPSD_CONF,
        crate::nut::UPSD_USERS,
        crate::nut::UPSMON_CONF,
    ]
    .iter()
    .filter_map(|f| fingerprint::of(f, &nut_dir.join(f)))
    .collect();
    now.extend(fingerprint::of(name, settings));
    let found = match std::fs::read_to_string(&seen_path) {
        Ok(text) => fingerprint::changes(&fingerprint::parse(&text), &now, name),
        Err(_) => Vec::new(),
    };
    if let Err(e) = fingerprint::remember(&seen_path, &now) {
        eprintln!(
            "power-snitch: warning: cannot remember the files' fingerprints in {}: {e}",
            seen_path.display()
        );
    }
    found
}

/// Asks upsd itself whether each entry's user name and password are right, with the SET probe
/// that changes nothing (the diagnosis test-connection runs). Where only LOGIN could tell, or
/// upsd does not answer, says so as info. All of it within [`CHECK_TIME`].
pub async fn live_credentials(
    settings: &Settings,
    parsed: &Parsed,
    file: &str,
) -> Vec<crate::nut::diag::Finding> {
    use crate::nut::diag::{Code, Finding, Severity};
    use crate::nut::lexer::Pos;
    use crate::upsd::client::{Client, Options};
    use crate::upsd::diagnose::{credentials, Credentials};
    use crate::upsd::error::ErrCode;
    use std::time::Duration;
    let deadline = tokio::time::Instant::now() + CHECK_TIME;
    let mut out = Vec::new();
    for u in &settings.ups {
        let (Some(user), Some(pw)) = (&u.nut_username, &u.nut_password) else {
            continue;
        };
        let target = crate::upsd::target::Target {
            ups: Some(u.nut_device_name.clone()),
            host: u.upsd_host.clone(),
            port: u.upsd_port,
        };
        let mut opts = Options {
            retry_count: 0,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            ..Options::default()
        };
        opts.tls.mode = u.tls;
        let mut c = Client::new(target.clone(), opts);
        c.set_deadline(Some(deadline));
        let name = &u.nut_device_name;
        let mut say =
            |sev, code, m: String| out.push(Finding::new(sev, code, file, Pos::new(0, 0), m));
        match credentials(&mut c, name, user, &pw.0, false).await {
            Ok(Credentials::Valid(_)) => {}
            Ok(Credentials::PasswordOrRights) => {
                // upsd.users says whether the user may SET: then a refusal means the password.
                let may_set = parsed
                    .users
                    .as_ref()
                    .and_then(|us| us.user(user))
                    .is_some_and(|nu| nu.actions.iter().any(|a| a == "SET"));
                if may_set {
                    say(
                        Severity::Error,
                        Code::SettingsPassword,
                        format!("UPS `{name}`: upsd refuses the settings' password for `{user}`"),
                    );
                } else {
                    say(Severity::Info, Code::SettingsPassword, format!("UPS `{name}`: upsd refused the SET probe for `{user}`, who has no SET rights, so only LOGIN can tell: `power-snitch test-connection --login`"));
                }
            }
            Err(e) if e.refusal() == Some(&ErrCode::UnknownUps) => say(
                Severity::Error,
                Code::SettingsUpsMissing,
                format!(
                    "UPS `{name}`: upsd at {} does not serve it",
                    target.address()
                ),
            ),
            Err(e) => say(
                Severity::Info,
                Code::SettingsPassword,
                format!(
                    "UPS `{name}`: could not check the credentials with upsd at {}: {}",
                    target.address(),
                    e.message()
                ),
            ),
        }
    }
    out
}

/// The settings' check gives upsd this much time in all.
const CHECK_TIME: std::time::Duration = std::time::Duration::from_secs(10);
