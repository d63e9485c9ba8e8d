//! The page's NUT clients: the client accounts and who upsd says is logged in (`GET
//! /clients`), "Add a client" and Remove, each previewed first (a dry run with the diff of each
//! file), then made through the application layer's one path ([`crate::inspect::clients`]).
//! After an applied add the page shows, once, what to enter on the client, the new account's
//! password included (the person adding the client types it there); that answer is not stored
//! by the browser (`Cache-Control: no-store`) and is served over HTTPS off loopback.

use std::fmt::Write;
use std::path::Path;

use super::super::form::Form;
use super::super::http::Response;
use super::super::pages::{self, esc, Frame};
use super::nut::{outcome_html, status_of};
use super::{App, Session};
use crate::inspect::adopt::{self, ChangeError};
use crate::inspect::clients::{self, Added, Listing};
use crate::inspect::{Face, Given, Installed, Plan};
use crate::manage::{spool, Mode, Outcome};
use crate::nut::edit::Preset;

fn plan(given: &Given, installed: Installed) -> Result<Plan, ChangeError> {
    let plan = Plan::resolve(Face::Sync, given, installed)
        .map_err(|e| ChangeError::Usage(e.to_string()))?;
    plan.require_nut_dir()
        .map_err(|e| ChangeError::Usage(e.to_string()))?;
    Ok(plan)
}

/// What the page asks of the application layer, off the agent's thread.
enum Ask {
    Add {
        name: String,
        preset: Preset,
        ups: Option<String>,
        listen: Option<String>,
    },
    Remove(String),
}

enum Done {
    Added(Box<Added>),
    Removed(Outcome),
}

fn make(given: Given, installed: Installed, ask: Ask, mode: Mode) -> Result<Done, ChangeError> {
    let plan = plan(&given, installed)?;
    let mut make = adopt::propose(&plan, mode, Path::new(spool::DEFAULT_SPOOL));
    match ask {
        Ask::Add {
            name,
            preset,
            ups,
            listen,
        } => clients::add(
            &plan,
            &name,
            preset,
            ups.as_deref(),
            listen.as_deref(),
            mode,
            &mut make,
        )
        .map(|a| Done::Added(Box::new(a))),
        Ask::Remove(name) => {
            if mode == Mode::DryRun {
                let mut dry = |p| {
                    crate::manage::change(
                        &crate::manage::Nut::at(
                            &plan.nut_dir,
                            plan.installed.version,
                            plan.installed.drivers.clone(),
                        ),
                        &p,
                        Mode::DryRun,
                        None,
                    )
                };
                return clients::remove(&plan, &name, &mut dry).map(Done::Removed);
            }
            clients::remove(&plan, &name, &mut make).map(Done::Removed)
        }
    }
}

fn listing_html(b: &mut String, l: &Listing, s: Option<&Session>) {
    b.push_str("<section class=\"card\"><h2>Client accounts</h2>");
    if l.accounts.is_empty() {
        b.push_str("<p>No client account in upsd.users.</p>");
    } else {
        b.push_str("<table><tr><th>Client</th><th>Account</th><th>Made by</th><th></th></tr>");
        for c in &l.accounts {
            let how = c.preset.map_or("hand".to_string(), |p| {
                format!("client add ({})", p.as_str())
            });
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>",
                esc(&c.name),
                esc(&c.account),
                if c.secondary {
                    " (upsmon secondary)"
                } else {
                    ""
                },
                esc(&how)
            );
            if let Some(s) = s {
                let _ = write!(
                    b,
                    "<form method=\"post\" action=\"/clients/remove\">{}<input type=\"hidden\" name=\"name\" value=\"{}\"><button>Remove</button></form>",
                    pages::csrf_field(s),
                    esc(&c.name)
                );
            }
            b.push_str("</td></tr>");
        }
        b.push_str("</table>");
    }
    b.push_str("</section><section class=\"card\"><h2>Logged in now</h2>");
    match &l.error {
        Some(e) => {
            let _ = write!(b, "<p>{}</p>", esc(e));
        }
        None => {
            let _ = write!(
                b,
                "<p>What upsd at {} says (<code>LIST CLIENT</code>): the address of each client logged in to a UPS. upsd does not say which account a client logged in with; clients that only read (Home Assistant) do not log in and are not listed.</p>",
                esc(&l.upsd)
            );
            if l.connected.is_empty() {
                b.push_str("<p>Nobody.</p>");
            } else {
                b.push_str("<table><tr><th>UPS</th><th>From</th><th>Account</th></tr>");
                for c in &l.connected {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&c.ups),
                        esc(&c.address),
                        esc(&c.account)
                    );
                }
                b.push_str("</table>");
            }
            for (u, n) in &l.logins {
                let _ = write!(b, "<p>[{}]: {n} login(s) (NUMLOGINS)</p>", esc(u));
            }
        }
    }
    for n in &l.notices {
        let _ = write!(b, "<p class=\"warning\">{}</p>", esc(n));
    }
    b.push_str("</section>");
}

fn add_form(b: &mut String, s: &Session) {
    let _ = write!(
        b,
        "<section class=\"card\"><h2>Add a client</h2><form method=\"post\" action=\"/clients/add\">{}<label>Name <input name=\"name\" required></label> <label>Kind <select name=\"preset\">",
        pages::csrf_field(s)
    );
    for p in Preset::ALL {
        let _ = write!(b, "<option value=\"{0}\">{0}</option>", p.as_str());
    }
    b.push_str("</select></label> <label>UPS <input name=\"ups\" placeholder=\"the only one\"></label> <label>LAN address <input name=\"listen\" placeholder=\"this machine's\"></label> <button>Preview</button></form><p>Synology DSM logs in with its fixed <code>monuser</code>/<code>secret</code>, a password everyone knows.</p></section>");
}

fn opt(form: &Form, k: &str) -> Option<String> {
    Some(form.text(k).trim().to_string()).filter(|v| !v.is_empty())
}

impl App {
    /// `GET /clients`.
    pub(super) async fn clients_page(&self, s: Option<&Session>) -> Response {
        let given = self.config.given.clone();
        let installed = self.config.installed.clone();
        let r = match self
            .pool
            .run(move || plan(&given, installed).and_then(|p| clients::list(&p)))
            .await
        {
            Ok(r) => r,
            Err(b) => return super::busy(super::http::Route::Clients, &b, s),
        };
        let f = Frame {
            title: "NUT clients",
            current: "/clients",
            session: s,
        };
        let mut b = String::from("<h1>NUT clients</h1>");
        match &r {
            Ok(l) => listing_html(&mut b, l, s),
            Err(e) => {
                let _ = write!(b, "<pre>{}</pre>", esc(&e.to_string()));
            }
        }
        if let Some(s) = s {
            add_form(&mut b, s);
        }
        Response::html(200, pages::page(&f, &b))
    }

    /// `POST /clients/add` and `/clients/remove`: without `confirm`, the preview; with it, the
    /// change.
    pub(super) async fn clients_change(
        &self,
        add: bool,
        form: &Form,
        s: Option<&Session>,
    ) -> Response {
        let confirm = form.text("confirm") == "yes";
        let mode = if confirm { Mode::Apply } else { Mode::DryRun };
        let name = form.text("name").trim().to_string();
        let route = if add {
            super::http::Route::ClientAdd
        } else {
            super::http::Route::ClientRemove
        };
        let ask = if add {
            let Some(preset) = Preset::parse(form.text("preset")) else {
                return super::refuse(
                    route,
                    422,
                    "the kind is synology, truenas, proxmox, homeassistant or upsmon",
                    s,
                );
            };
            Ask::Add {
                name: name.clone(),
                preset,
                ups: opt(form, "ups"),
                listen: opt(form, "listen"),
            }
        } else {
            Ask::Remove(name.clone())
        };
        let given = self.config.given.clone();
        let installed = self.config.installed.clone();
        let r = match self
            .pool
            .run(move || make(given, installed, ask, mode))
            .await
        {
            Ok(r) => r,
            Err(b) => return super::busy(route, &b, s),
        };
        let verb = if add {
            "Add a client"
        } else {
            "Remove a client"
        };
        let f = Frame {
            title: verb,
            current: "/clients",
            session: s,
        };
        let mut b = String::new();
        let mut secret = false;
        match &r {
            Ok(Done::Added(a)) => {
                if confirm {
                    let _ = write!(b, "<h1>Client {}: added</h1>", esc(&a.name));
                } else {
                    let _ = write!(
                        b,
                        "<h1>Add client {} ({}): the change</h1>",
                        esc(&a.name),
                        a.preset.as_str()
                    );
                }
                for w in &a.warnings {
                    let _ = write!(b, "<p class=\"warning\">{}</p>", esc(w));
                }
                outcome_html(&mut b, &a.outcome);
                if let Some(l) = &a.login {
                    let _ = write!(b, "<p>Verified live: {}</p>", esc(l));
                }
                if confirm {
                    secret = true;
                    b.push_str("<section class=\"card\"><h2>Enter on the client</h2><p>Shown once: the password is not kept anywhere but NUT's upsd.users.</p><table>");
                    for (k, v) in a.instructions() {
                        let _ = write!(
                            b,
                            "<tr><th>{}</th><td><code>{}</code></td></tr>",
                            esc(k),
                            esc(&v)
                        );
                    }
                    b.push_str("</table></section><p><a href=\"/clients\">NUT clients</a></p>");
                } else if let Some(s) = s {
                    let _ = write!(
                        b,
                        "<form method=\"post\" action=\"/clients/add\">{}<input type=\"hidden\" name=\"name\" value=\"{}\"><input type=\"hidden\" name=\"preset\" value=\"{}\"><input type=\"hidden\" name=\"ups\" value=\"{}\"><input type=\"hidden\" name=\"listen\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>Add the client</button> <a href=\"/clients\">Cancel</a></form>",
                        pages::csrf_field(s),
                        esc(&a.name),
                        a.preset.as_str(),
                        esc(form.text("ups")),
                        esc(&a.host),
                    );
                }
            }
            Ok(Done::Removed(o)) => {
                if confirm {
                    let _ = write!(b, "<h1>Client {}: removed</h1>", esc(&name));
                } else {
                    let _ = write!(b, "<h1>Remove client {}: the change</h1>", esc(&name));
                }
                outcome_html(&mut b, o);
                if confirm {
                    b.push_str("<p><a href=\"/clients\">NUT clients</a></p>");
                } else if let Some(s) = s {
                    let _ = write!(
                        b,
                        "<form method=\"post\" action=\"/clients/remove\">{}<input type=\"hidden\" name=\"name\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>Remove the client</button> <a href=\"/clients\">Cancel</a></form>",
                        pages::csrf_field(s),
                        esc(&name)
                    );
                }
            }
            Err(e) => {
                let _ = write!(
                    b,
                    "<h1 class=\"failed\">{}: not done</h1><pre>{}</pre>",
                    esc(verb),
                    esc(&e.to_string())
                );
                if let ChangeError::Manage(crate::manage::ManageError::Refused {
                    outcome, ..
                }) = e
                {
                    outcome_html(&mut b, outcome);
                }
            }
        }
        let status = r.as_ref().err().map_or(200, status_of);
        let resp = Response::html(status, pages::page(&f, &b));
        if secret {
            resp.with("cache-control", "no-store".into())
        } else {
            resp
        }
    }
}
