//! A command's result: its output and exit code, or the error that stopped it, mapped to the
//! exit code and rendered in one place.

use super::Format;

/// What a command that ran prints, and its exit code (0, or a check's 1 and 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub code: u8,
    pub text: String,
}

impl Output {
    pub fn ok(text: String) -> Output {
        Output { code: 0, text }
    }
}

impl From<(u8, String)> for Output {
    fn from((code, text): (u8, String)) -> Output {
        Output { code, text }
    }
}

/// Why a command stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The arguments are wrong (an extra argument, a bad value, options that exclude each
    /// other): exit 3.
    Usage(String),
    /// The command cannot run here (NUT's directory is missing, a tree that is not sysfs):
    /// exit 3.
    CannotRun(String),
    /// The command ran and failed (the settings could not be written): exit 2.
    Failed(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage(_) | CommandError::CannotRun(_) => super::EXIT_CANNOT_RUN,
            CommandError::Failed(_) => 2,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CommandError::Usage(m) | CommandError::CannotRun(m) | CommandError::Failed(m) => m,
        }
    }
}

impl From<crate::inspect::PlanError> for CommandError {
    fn from(e: crate::inspect::PlanError) -> CommandError {
        CommandError::CannotRun(e.message().to_string())
    }
}

/// The exit code and stdout of a command's result; an error goes to stderr, or as a JSON
/// error object to stdout in JSON mode.
pub fn finish(format: Format, result: Result<Output, CommandError>) -> (u8, String) {
    match result {
        Ok(o) => (o.code, o.text),
        Err(e) => match format {
            Format::Json => (e.exit_code(), crate::report::json_error(e.message())),
            Format::Human => {
                eprintln!("power-snitch: {}", e.message());
                (e.exit_code(), String::new())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_exit_code() {
        for (e, code) in [
            (CommandError::Usage("u".into()), 3),
            (CommandError::CannotRun("c".into()), 3),
            (CommandError::Failed("f".into()), 2),
        ] {
            assert_eq!(e.exit_code(), code, "{e:?}");
            let (c, out) = finish(Format::Json, Err(e.clone()));
            assert_eq!(c, code);
            assert!(out.contains(e.message()), "{out}");
        }
        assert_eq!(
            finish(
                Format::Human,
                Ok(Output {
                    code: 1,
                    text: "x".into()
                })
            ),
            (1, "x".to_string())
        );
    }
}
