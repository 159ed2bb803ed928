//! Text that other processes wrote, made safe to show: the one place that turns it into
//! what the crate prints.
//!
//! A soft-lock marker's host line, a holder's command line from `/proc/<pid>/cmdline` (and
//! any field a future backend reads from another program) is written by whoever can write
//! that file or start that process. Shown raw, an ESC or BEL in it would let them clear the
//! user's terminal, rewrite earlier lines or forge log entries. Everything the crate shows
//! of such text (`Error`'s and `Holder`'s `Display`, the waiting hook's holder, the CLI, the
//! `tracing` fields) goes through [`Untrusted`], which:
//!
//! - writes control characters (C0, DEL, C1), line and paragraph separators and the
//!   bidirectional-formatting characters visibly, as `\x1b` or `\u{202e}`;
//! - writes each byte of invalid UTF-8 as `\xff`;
//! - stops after a bounded number of bytes of output, marked with `...`.
//!
//! Backslashes are left as they are (Windows paths in command lines stay readable), so the
//! escaped text is for reading, not for parsing back: programs that need the exact bytes
//! read the raw fields of [`Holder`](crate::Holder).

use std::fmt::{self, Write};

/// The most bytes of host name shown (Python filelock's host line is at most 253 bytes).
pub(crate) const MAX_HOST: usize = 253;

/// The most bytes of command line shown.
pub(crate) const MAX_COMMAND: usize = 200;

/// Untrusted bytes, displayed escaped and bounded (see the module documentation).
#[derive(Clone, Copy)]
pub(crate) struct Untrusted<'a> {
    bytes: &'a [u8],
    max: usize,
}

impl<'a> Untrusted<'a> {
    /// `bytes`, shown with at most `max` bytes of output (plus `...` when cut).
    pub(crate) fn new(bytes: &'a [u8], max: usize) -> Self {
        Untrusted { bytes, max }
    }
}

/// `true` for a character that must not reach a terminal or a log line as it is.
fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL, C1 (CSI is U+009B)
        || matches!(
            c,
            '\u{061c}'                 // Arabic letter mark
            | '\u{200e}' | '\u{200f}'  // left-to-right / right-to-left mark
            | '\u{2028}' | '\u{2029}'  // line / paragraph separator
            | '\u{202a}'..='\u{202e}'  // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}'  // bidi isolates
        )
}

/// Writes `piece` unless it would take the output past `max`; `Ok(false)` when it did not fit.
fn put(
    f: &mut fmt::Formatter<'_>,
    written: &mut usize,
    max: usize,
    piece: &str,
) -> Result<bool, fmt::Error> {
    if *written + piece.len() > max {
        return Ok(false);
    }
    *written += piece.len();
    f.write_str(piece)?;
    Ok(true)
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = 0;
        let mut piece = String::with_capacity(12);
        for chunk in self.bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                piece.clear();
                if !needs_escape(c) {
                    piece.push(c);
                } else if (c as u32) < 0x100 {
                    write!(piece, "\\x{:02x}", c as u32)?;
                } else {
                    write!(piece, "\\u{{{:x}}}", c as u32)?;
                }
                if !put(f, &mut written, self.max, &piece)? {
                    return f.write_str("...");
                }
            }
            for byte in chunk.invalid() {
                piece.clear();
                write!(piece, "\\x{byte:02x}")?;
                if !put(f, &mut written, self.max, &piece)? {
                    return f.write_str("...");
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `spec` with any URL password replaced by `***`, for messages.
pub(crate) fn redact(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => spec.to_owned(),
        },
        None => spec.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5/db?lock=x"),
            "postgres://u:***@h:5/db?lock=x"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("/tmp/a.lock"), "/tmp/a.lock");
    }

    fn show(bytes: &[u8], max: usize) -> String {
        Untrusted::new(bytes, max).to_string()
    }

    #[test]
    fn control_characters_are_escaped_visibly() {
        assert_eq!(
            show(b"other\x1b[2J\x1b[1A\x07\x7fhost\n", 100),
            "other\\x1b[2J\\x1b[1A\\x07\\x7fhost\\x0a"
        );
        assert_eq!(show("a\u{9b}b\u{85}".as_bytes(), 100), "a\\x9bb\\x85");
        assert_eq!(
            show("x\u{202e}y\u{2028}".as_bytes(), 100),
            "x\\u{202e}y\\u{2028}"
        );
    }

    #[test]
    fn plain_text_is_unchanged() {
        let text = "cargo build --release C:\\x\\y é 漢字 ~!?";
        assert_eq!(show(text.as_bytes(), 100), text);
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(show(b"a\xffb\xc3", 100), "a\\xffb\\xc3");
    }

    #[test]
    fn the_output_is_bounded_without_cutting_an_escape_or_a_character() {
        assert_eq!(show(b"abcdef", 4), "abcd...");
        // Four bytes of budget hold one escape (`\x1b`), never half of the next.
        assert_eq!(show(b"\x1b\x1b", 5), "\\x1b...");
        assert_eq!(show("éé".as_bytes(), 3), "é...");
        let hostile = vec![0x1b; 1 << 20];
        assert!(show(&hostile, MAX_HOST).len() <= MAX_HOST + 3);
    }
}
