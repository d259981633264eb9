//! Writing to stdout without panicking when the reader goes away.
//!
//! `println!` panics when stdout is a closed pipe (`chocominer sub | head`); these writes return
//! the error instead, and `main` ends quietly on it.

use std::io::{self, Write};

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
