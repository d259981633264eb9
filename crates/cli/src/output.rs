//! Writing to stdout without panicking when the reader goes away (`chocominer sub | head`:
//! `main` ends quietly on the error), nor letting text from the bus, which anybody who may
//! publish chooses, drive the terminal ([`escape`], [`json_line`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

/// Writes `text` to stdout and flushes it, so a script reading line by line sees it at once.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether `error` comes from stdout being closed by its reader.
pub fn is_closed(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Characters a terminal acts on instead of showing: the control characters (C0, DEL, C1: ESC,
/// CSI, OSC, BEL, CR, ...) and the bidirectional-text controls, which reorder what follows
/// them on the line.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` fit to print on a terminal: every [unsafe](is_unsafe) character written as an escape
/// (`\n`, `\x1b`, `\u{9b}`, ...) and every backslash doubled, so that an escape on the screen is
/// never the sender's own text. Text without either comes back as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || is_unsafe(c)) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => shown.push_str("\\\\"),
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if (c as u32) < 0x80 && is_unsafe(c) => {
                let _ = write!(shown, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(shown, "\\u{{{:x}}}", c as u32);
            }
            c => shown.push(c),
        }
    }
    Cow::Owned(shown)
}

/// `value` as one line of JSON, its strings exactly as received. serde_json writes C0 control
/// characters as `\u00XX` but leaves DEL, C1 and the bidirectional controls raw: those are
/// written as `\uXXXX` too (valid JSON, the same strings once parsed), so that the line holds
/// no character a terminal acts on.
pub fn json_line<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let json = serde_json::to_string(value)?;
    // Outside strings serde_json writes only ASCII punctuation, digits and letters: any such
    // character is inside a string, where `\uXXXX` stands for it.
    let mut line = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        if is_unsafe(c) {
            let _ = write!(line, "\\u{:04x}", c as u32);
        } else {
            line.push(c);
        }
    }
    line.push('\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert!(matches!(escape("rng-1/17"), Cow::Borrowed("rng-1/17")));
        assert_eq!(
            escape("w1\x1b]0;pwned\x07\x1b[2J\r\n"),
            "w1\\x1b]0;pwned\\x07\\x1b[2J\\r\\n"
        );
        assert_eq!(escape("\x7f\u{9b}31m"), "\\x7f\\u{9b}31m");
        assert_eq!(escape("a\u{202e}b"), "a\\u{202e}b");
        // The sender's own "\x1b" stays distinguishable from an escaped ESC.
        assert_eq!(escape("\\x1b"), "\\\\x1b");
        assert_eq!(escape("crème brûlée ✓"), "crème brûlée ✓");
    }

    #[test]
    fn json_lines_hold_no_raw_control_and_parse_back_the_same() {
        let nasty = "a\x1b[31mb\r\x07\x7f\u{85}\u{9b}c\u{202e}d\n";
        let line = json_line(&serde_json::json!({ "field": nasty })).unwrap();
        let (body, end) = line.split_at(line.len() - 1);
        assert_eq!(end, "\n");
        assert!(!body.chars().any(is_unsafe), "{line:?}");
        let back: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(back["field"], nasty);
    }
}
