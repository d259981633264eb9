//! Colour for people at a terminal, plain text for pipes, files and `NO_COLOR`.

use std::io::IsTerminal;

/// Whether to colour what goes to stdout.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    terminal: bool,
    colour: bool,
}

impl Paint {
    /// Colour only when stdout is a terminal and `NO_COLOR` is unset (see no-color.org).
    pub fn for_stdout() -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let terminal = std::io::stdout().is_terminal();
        Paint {
            terminal,
            colour: terminal && !no_color,
        }
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// A nugget: bold yellow.
    pub fn gold(self, text: &str) -> String {
        self.wrap("1;33", text)
    }

    /// Something wrong: bold red.
    pub fn alarm(self, text: &str) -> String {
        self.wrap("1;31", text)
    }

    /// Emphasis: bold.
    pub fn strong(self, text: &str) -> String {
        self.wrap("1", text)
    }

    /// Secondary details: dim.
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    /// Whether stdout is a terminal (which `status --watch` may clear).
    pub fn is_terminal(self) -> bool {
        self.terminal
    }

    /// Colour on, as on a terminal: for tests of what the colours wrap.
    #[cfg(test)]
    pub fn colour() -> Paint {
        Paint {
            terminal: true,
            colour: true,
        }
    }

    /// The escape sequences this module writes, and no other.
    #[cfg(test)]
    pub const SEQUENCES: [&str; 5] = ["\x1b[1;33m", "\x1b[1;31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"];
}
