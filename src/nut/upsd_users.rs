//! upsd.users: who may log in to upsd, and what they may do.

use super::conf::{section_name, setting, Setting};
use super::diag::{Code, Sink};
use super::lexer::{Line, Pos, Word};
use super::Context;

/// The upsmon role a user has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub pos: Pos,
    /// The password upsd keeps (the first one given), and where.
    pub password: Option<(String, Pos)>,
    pub role: Option<Role>,
    pub actions: Vec<String>,
    pub instcmds: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpsdUsers {
    pub users: Vec<User>,
}

impl UpsdUsers {
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

pub fn parse(lines: &[Line], cx: &Context, sink: &mut Sink) -> UpsdUsers {
    let mut conf = UpsdUsers::default();
    // Index of the user that settings go to; a repeated section merges into the first one.
    let mut current: Option<usize> = None;
    for line in lines.iter().filter(|l| !l.skipped && !l.words.is_empty()) {
        let first = &line.words[0];
        if let Some(name) = section_name(first) {
            if let Some(i) = conf.users.iter().position(|u| u.name == name) {
                sink.warning(
                    Code::Duplicate,
                    first.pos,
                    format!(
                        "user `{name}` is already defined at line {}: upsd keeps the first password and merges the other settings",
                        conf.users[i].pos.line
                    ),
                )
                .with_hint("keep one section per user");
                current = Some(i);
            } else {
                if name.is_empty() {
                    sink.error(
                        Code::BadSectionName,
                        first.pos,
                        "a user needs a name: `[]`".into(),
                    );
                }
                conf.users.push(User {
                    name: name.to_string(),
                    pos: first.pos,
                    password: None,
                    role: None,
                    actions: Vec::new(),
                    instcmds: Vec::new(),
                });
                current = Some(conf.users.len() - 1);
            }
            continue;
        }
        // `upsmon primary`, the two-word form.
        if let [k, v] = line.words.as_slice() {
            if k.text.eq_ignore_ascii_case("upsmon") {
                if let Some(i) = current {
                    set_role(&mut conf.users[i], v, cx, sink);
                } else {
                    outside(sink, k);
                }
                continue;
            }
        }
        let (name, values): (&Word, Vec<&Word>) = match setting(line) {
            Setting::Value { name, value, extra } => {
                (name, std::iter::once(value).chain(extra.iter()).collect())
            }
            Setting::Empty(name) => {
                sink.warning(
                    Code::MissingValue,
                    name.pos,
                    format!("`{} =` has no value; upsd ignores it", name.text),
                );
                continue;
            }
            _ => {
                sink.warning(
                    Code::NotASetting,
                    first.pos,
                    "upsd ignores this line: it is neither `[user]`, `name = value` nor `upsmon primary|secondary`".into(),
                )
                .with_hint("write `name = value`");
                continue;
            }
        };
        let Some(i) = current else {
            outside(sink, name);
            continue;
        };
        let user = &mut conf.users[i];
        let key = name.text.to_ascii_lowercase();
        match key.as_str() {
            "password" => {
                let value = values[0];
                if let Some((_, at)) = &user.password {
                    sink.warning(
                        Code::Duplicate,
                        name.pos,
                        format!(
                            "user `{}` already has a password (line {}); upsd ignores this one",
                            user.name, at.line
                        ),
                    );
                } else {
                    if values.len() > 1 {
                        // Passwords are never echoed: say where it ends, not what it is.
                        sink.warning(
                            Code::ExtraWords,
                            values[1].pos,
                            format!(
                                "upsd keeps only the first word of this password (up to column {}) and ignores the other {}",
                                values[1].pos.col,
                                values.len() - 1
                            ),
                        )
                        .with_hint("put the password in double quotes");
                    }
                    user.password = Some((value.text.to_string(), value.pos));
                }
            }
            "actions" => {
                for v in values {
                    if v.text.eq_ignore_ascii_case("SET") || v.text.eq_ignore_ascii_case("FSD") {
                        user.actions.push(v.text.to_ascii_uppercase());
                    } else {
                        sink.warning(
                            Code::BadValue,
                            v.pos,
                            format!("`{}` is not an action; upsd knows SET and FSD", v.text),
                        );
                    }
                }
            }
            "instcmds" => user
                .instcmds
                .extend(values.iter().map(|w| w.text.to_string())),
            "upsmon" => set_role(user, values[0], cx, sink),
            "allowfrom" => {
                sink.warning(
                    Code::Removed,
                    name.pos,
                    "`allowfrom` was removed in NUT 2.4; upsd ignores it".into(),
                )
                .with_hint("limit access with upsd.conf's LISTEN and a firewall");
            }
            _ => {
                sink.warning(
                    Code::UnknownDirective,
                    name.pos,
                    format!(
                        "upsd logs \"Unrecognized user setting {}\" and ignores it",
                        name.text
                    ),
                )
                .with_hint("settings are password, actions, instcmds and upsmon");
            }
        }
    }
    for user in &conf.users {
        if user.password.is_none() {
            sink.warning(
                Code::MissingPassword,
                user.pos,
                format!(
                    "user `{}` has no password, so it can never log in",
                    user.name
                ),
            )
            .with_hint("add `password = SECRET`");
        }
    }
    conf
}

fn outside(sink: &mut Sink, w: &Word) {
    sink.warning(
        Code::OutsideSection,
        w.pos,
        format!(
            "`{}` comes before any `[user]` section; upsd ignores it",
            w.text
        ),
    )
    .with_hint("put it below the `[user]` line it belongs to");
}

fn set_role(user: &mut User, v: &Word, cx: &Context, sink: &mut Sink) {
    let modern = cx.version.knows_primary();
    let role = match v.text.to_ascii_lowercase().as_str() {
        "primary" if modern => Role::Primary,
        "secondary" if modern => Role::Secondary,
        "master" => {
            if modern {
                sink.info(
                    Code::Deprecated,
                    v.pos,
                    "`upsmon master` is the old spelling".into(),
                )
                .with_hint("write `upsmon primary` (NUT 2.8.0 and later)");
            }
            Role::Primary
        }
        "slave" => {
            if modern {
                sink.info(
                    Code::Deprecated,
                    v.pos,
                    "`upsmon slave` is the old spelling".into(),
                )
                .with_hint("write `upsmon secondary` (NUT 2.8.0 and later)");
            }
            Role::Secondary
        }
        other => {
            let f = sink.warning(
                Code::BadValue,
                v.pos,
                format!(
                    "upsd logs \"Unknown upsmon type {other}\": this user gets no upsmon rights"
                ),
            );
            if modern {
                f.with_hint("write `upsmon primary` or `upsmon secondary`");
            } else {
                f.with_hint(format!(
                    "NUT {} knows only `upsmon master` and `upsmon slave`",
                    cx.version
                ));
            }
            return;
        }
    };
    user.role = Some(role);
}
