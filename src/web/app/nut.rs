//! The page's changes of NUT's files: Adopt a found UPS, Remove one, write the settings into
//! NUT. Each is previewed first (the unified diff of each file, what will run), then made
//! through the application layer's one path ([`crate::inspect::adopt`]); the page's process is
//! unprivileged, so the root side applies it (the spool).

use std::fmt::Write;
use std::path::Path;

use super::super::form::Form;
use super::super::http::{Response, Route};
use super::super::pages::{self, esc, Frame};
use super::{refuse, App, Session};
use crate::inspect::adopt::{self, ChangeError, Changed};
use crate::inspect::{Face, Plan};
use crate::json::{array, strings, Object};
use crate::manage::{spool, ManageError, Mode, Outcome};

/// What the page asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Adopt,
    Remove,
    ToNut,
}

impl Ask {
    fn path(self) -> &'static str {
        match self {
            Ask::Adopt => "/nut/adopt",
            Ask::Remove => "/nut/remove",
            Ask::ToNut => "/nut/to-nut",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Ask::Adopt => "Adopt",
            Ask::Remove => "Remove",
            Ask::ToNut => "Write into NUT's files",
        }
    }

    /// The form field that names what the change is about.
    fn field(self) -> &'static str {
        match self {
            Ask::Adopt => "device",
            Ask::Remove | Ask::ToNut => "ups",
        }
    }
}

/// The change made off the agent's thread (the scan, a serial dialogue and the root side's
/// apply and verification take seconds).
fn make(
    given: crate::inspect::Given,
    installed: crate::inspect::Installed,
    ask: Ask,
    what: String,
    mode: Mode,
) -> Result<Changed, ChangeError> {
    let mut given = given;
    let face = match ask {
        Ask::Adopt => {
            // A serial port the user picked is one they allow to be asked who it is.
            if what.starts_with('/') && !given.serial_ports.contains(&what) {
                given.serial_ports.push(what.clone());
            }
            Face::Adopt
        }
        Ask::Remove | Ask::ToNut => Face::Sync,
    };
    let plan =
        Plan::resolve(face, &given, installed).map_err(|e| ChangeError::Usage(e.to_string()))?;
    plan.require_nut_dir()
        .map_err(|e| ChangeError::Usage(e.to_string()))?;
    let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
    match ask {
        Ask::Adopt => {
            let report = crate::inspect::check(&plan, &|_| {});
            let device = (!what.is_empty()).then_some(what.as_str());
            adopt::adopt(&plan, &report, device, mode, &mut make)
        }
        Ask::Remove => adopt::remove(&plan, &what, mode, &mut make),
        Ask::ToNut => adopt::to_nut(
            &plan,
            (!what.is_empty()).then_some(what.as_str()),
            &mut make,
        ),
    }
}

/// The outcome as JSON: the diffs (passwords masked), findings added and fixed, what ran and
/// what the verification saw.
fn outcome_json(o: &mut Object, out: &Outcome) {
    o.raw(
        "diffs",
        &array(out.diffs.iter().map(|d| {
            let mut s = String::new();
            let mut f = Object::new(&mut s);
            f.str("file", &d.file).str("diff", &d.diff);
            f.end();
            s
        })),
    )
    .raw(
        "added",
        &strings(out.added.iter().map(|f| f.message.as_str())),
    )
    .raw(
        "fixed",
        &strings(out.removed.iter().map(|f| f.message.as_str())),
    )
    .raw("actions", &strings(out.actions.iter().map(String::as_str)))
    .raw("ran", &strings(out.ran.iter().map(String::as_str)))
    .raw(
        "verified",
        &strings(out.verified.iter().map(String::as_str)),
    );
}

/// The status a failed change answers with.
pub(super) fn status_of(e: &ChangeError) -> u16 {
    match e {
        ChangeError::Usage(_) | ChangeError::Edit(_) => 422,
        ChangeError::Manage(ManageError::Refused { .. }) => 422,
        ChangeError::Manage(ManageError::Changed { .. }) => 409,
        ChangeError::Manage(ManageError::Spool(_)) => 503,
        _ => 500,
    }
}

pub(super) fn outcome_html(b: &mut String, out: &Outcome) {
    if out.unchanged() {
        b.push_str("<p>Nothing changes.</p>");
    }
    for d in &out.diffs {
        let _ = write!(
            b,
            "<section class=\"card\"><h2>{}</h2><pre class=\"diff\">{}</pre></section>",
            esc(&d.file),
            esc(&d.diff)
        );
    }
    let list = |b: &mut String, title: &str, items: &[String]| {
        if items.is_empty() {
            return;
        }
        let _ = write!(b, "<h3>{}</h3><ul class=\"plain\">", esc(title));
        for i in items {
            let _ = write!(b, "<li>{}</li>", esc(i));
        }
        b.push_str("</ul>");
    };
    let msgs = |fs: &[crate::nut::diag::Finding]| -> Vec<String> {
        fs.iter()
            .map(|f| {
                format!(
                    "{} {}:{}: {}",
                    f.severity.as_str(),
                    f.file,
                    f.line,
                    f.message
                )
            })
            .collect()
    };
    list(b, "Findings the change adds", &msgs(&out.added));
    list(b, "Findings the change fixes", &msgs(&out.removed));
    if out.ran.is_empty() {
        list(b, "What NUT will do", &out.actions);
    } else {
        list(b, "What ran", &out.ran);
    }
    list(b, "Verified live", &out.verified);
}

impl App {
    /// `POST /nut/adopt|remove|to-nut`: without `confirm`, the preview (a dry run) and a
    /// button that makes it; with it, the change.
    pub(super) async fn nut_change(&self, ask: Ask, form: &Form, s: Option<&Session>) -> Response {
        let what = form.text(ask.field()).to_string();
        let confirm = form.text("confirm") == "yes";
        let mode = if confirm { Mode::Apply } else { Mode::DryRun };
        let given = self.config.given.clone();
        let installed = self.config.installed.clone();
        let w = what.clone();
        let r = match self
            .pool
            .run(move || make(given, installed, ask, w, mode))
            .await
        {
            Ok(r) => r,
            Err(b) => return super::busy(route_of(ask), &b, s),
        };
        let f = Frame {
            title: ask.verb(),
            current: "/check",
            session: s,
        };
        let mut b = String::new();
        match (&r, confirm) {
            (Ok(c), false) => {
                let _ = write!(
                    b,
                    "<h1>{} {}: the change</h1>",
                    esc(ask.verb()),
                    esc(&c.ups)
                );
                outcome_html(&mut b, &c.outcome);
                if let Some(s) = s {
                    let _ = write!(
                        b,
                        "<form method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"{}\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>{}</button> <a href=\"/check\">Cancel</a></form>",
                        ask.path(),
                        pages::csrf_field(s),
                        ask.field(),
                        esc(&what),
                        esc(ask.verb())
                    );
                }
            }
            (Ok(c), true) => {
                let _ = write!(b, "<h1>{}: done</h1>", esc(&c.ups));
                outcome_html(&mut b, &c.outcome);
                b.push_str("<p><a href=\"/\">Status</a> · <a href=\"/check\">Check again</a></p>");
            }
            (Err(e), _) => {
                let _ = write!(
                    b,
                    "<h1 class=\"failed\">{}: not done</h1><pre>{}</pre>",
                    esc(ask.verb()),
                    esc(&e.to_string())
                );
                if let ChangeError::Manage(ManageError::Refused { outcome, .. }) = e {
                    outcome_html(&mut b, outcome);
                }
                if let ChangeError::Manage(ManageError::Failed(fail)) = e {
                    outcome_html(&mut b, &fail.outcome);
                }
            }
        }
        let status = r.as_ref().err().map_or(200, status_of);
        Response::html(status, pages::page(&f, &b))
    }

    /// `POST /api/adopt|remove|to-nut`: the same, in JSON; `mode` is `dry-run` (the default),
    /// `apply` or `no-apply`.
    pub(super) async fn nut_change_api(
        &self,
        ask: Ask,
        route: Route,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        let what = form.text(ask.field()).to_string();
        let Some(mode) = Mode::parse(match form.text("mode") {
            "" => "dry-run",
            m => m,
        }) else {
            return refuse(route, 422, "mode is dry-run, no-apply or apply", s);
        };
        let given = self.config.given.clone();
        let installed = self.config.installed.clone();
        let r = match self
            .pool
            .run(move || make(given, installed, ask, what, mode))
            .await
        {
            Ok(r) => r,
            Err(b) => return super::busy(route, &b, s),
        };
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.str("mode", mode.as_str());
        let status = match &r {
            Ok(c) => {
                o.str("ups", &c.ups).bool("ok", true);
                outcome_json(&mut o, &c.outcome);
                200
            }
            Err(e) => {
                o.bool("ok", false).str("error", &e.to_string());
                match e {
                    ChangeError::Manage(ManageError::Refused { outcome, .. }) => {
                        outcome_json(&mut o, outcome)
                    }
                    ChangeError::Manage(ManageError::Failed(f)) => outcome_json(&mut o, &f.outcome),
                    _ => {}
                }
                status_of(e)
            }
        };
        o.end();
        Response::json(status, out)
    }
}

fn route_of(ask: Ask) -> Route {
    match ask {
        Ask::Adopt => Route::NutAdopt,
        Ask::Remove => Route::NutRemove,
        Ask::ToNut => Route::NutToNut,
    }
}
