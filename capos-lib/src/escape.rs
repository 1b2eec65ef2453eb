//! Escaping of text a program hands the kernel for the console or the log,
//! so that it stays inside the one line the kernel frames it in.
//!
//! Control characters become visible escapes: `\n` -> `\n` (backslash, n),
//! `\r` -> `\r`, tab -> `\t`, ESC -> `\e`, any other C0 character or DEL ->
//! `\xNN`, a C1 control (U+0080..U+009F, which some terminals take as CSI and
//! friends) -> `\u{NN}`. Everything else passes unchanged, backslashes too,
//! so escaping escaped text changes nothing.

use core::fmt::{self, Write};

/// The cut marker's opening: `…(N bytes cut)` follows a bounded record.
pub const CUT_MARKER: &str = "\u{2026}(";

/// The escaped form of `c`, or `None` when it is written as is.
fn escape_char(c: char, buf: &mut [u8; 8]) -> Option<&str> {
    let s: &str = match c {
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\u{1b}' => "\\e",
        '\0'..='\u{1f}' | '\u{7f}' => {
            let b = c as u8;
            let hex = b"0123456789abcdef";
            *buf = [b'\\', b'x', hex[(b >> 4) as usize], hex[(b & 15) as usize], 0, 0, 0, 0];
            return core::str::from_utf8(&buf[..4]).ok();
        }
        '\u{80}'..='\u{9f}' => {
            let b = c as u8;
            let hex = b"0123456789abcdef";
            *buf = [b'\\', b'u', b'{', hex[(b >> 4) as usize], hex[(b & 15) as usize], b'}', 0, 0];
            return core::str::from_utf8(&buf[..6]).ok();
        }
        _ => return None,
    };
    Some(s)
}

/// Whether `c` would be escaped.
pub fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Writes `text` escaped.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    write_escaped_bounded(out, text, usize::MAX).map(|_| ())
}

/// Writes at most `max` bytes of escaped `text` (never half an escape or half
/// a character); returns how many bytes of `text` did not fit.
pub fn write_escaped_bounded<W: Write + ?Sized>(
    out: &mut W,
    text: &str,
    max: usize,
) -> Result<usize, fmt::Error> {
    let mut written = 0usize;
    let mut plain_start = 0usize;
    let mut buf = [0u8; 8];
    for (i, c) in text.char_indices() {
        let escaped = escape_char(c, &mut buf);
        let len = escaped.map_or(c.len_utf8(), str::len);
        if written + len > max {
            out.write_str(&text[plain_start..i])?;
            return Ok(text.len() - i);
        }
        written += len;
        if let Some(e) = escaped {
            out.write_str(&text[plain_start..i])?;
            out.write_str(e)?;
            plain_start = i + c.len_utf8();
        }
    }
    out.write_str(&text[plain_start..])?;
    Ok(0)
}

/// Writes `text` escaped and bounded to `max` bytes, followed by the marker
/// `…(N bytes cut)` when `N` bytes of `text` did not fit.
pub fn write_record<W: Write + ?Sized>(out: &mut W, text: &str, max: usize) -> fmt::Result {
    let cut = write_escaped_bounded(out, text, max)?;
    if cut > 0 {
        write!(out, "{CUT_MARKER}{cut} bytes cut)")?;
    }
    Ok(())
}

/// A [`Write`] adapter that escapes everything written through it.
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(&mut self.0, s)
    }
}

/// Whether `line` starts with the word `name`: `name` followed by `:` or a
/// space (`hello: done`, `isolation child: ...`).
pub fn starts_with_name(line: &str, name: &str) -> bool {
    !name.is_empty()
        && line
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s).unwrap();
        out
    }

    fn record(s: &str, max: usize) -> String {
        let mut out = String::new();
        write_record(&mut out, s, max).unwrap();
        out
    }

    #[test]
    fn control_characters_become_escapes() {
        assert_eq!(esc("a\nb"), "a\\nb");
        assert_eq!(esc("a\r\nb"), "a\\r\\nb");
        assert_eq!(esc("\x1b[2J\x1b[31mred"), "\\e[2J\\e[31mred");
        assert_eq!(esc("\0\x07\x7f"), "\\x00\\x07\\x7f");
        assert_eq!(esc("tab\there"), "tab\\there");
        assert_eq!(esc("\u{9b}31m"), "\\u{9b}31m");
    }

    #[test]
    fn plain_text_and_backslashes_pass() {
        assert_eq!(esc("hello: done"), "hello: done");
        assert_eq!(esc("a\\nb é ✓"), "a\\nb é ✓");
        assert_eq!(esc(&esc("x\ny\x1b")), esc("x\ny\x1b"));
    }

    #[test]
    fn bound_cuts_whole_characters_and_escapes() {
        assert_eq!(record("abcdef", 4), "abcd\u{2026}(2 bytes cut)");
        assert_eq!(record("abc", 3), "abc");
        // `\n` takes two bytes: it does not fit after "abc" in 4.
        assert_eq!(record("abc\nd", 4), "abc\u{2026}(2 bytes cut)");
        // "é" is two bytes: never split.
        assert_eq!(record("aé", 2), "a\u{2026}(2 bytes cut)");
        assert_eq!(record(&"x".repeat(65536), 512).len(), 512 + "\u{2026}(65024 bytes cut)".len());
    }

    #[test]
    fn names() {
        assert!(starts_with_name("hello: done", "hello"));
        assert!(starts_with_name("isolation child: x", "isolation"));
        assert!(!starts_with_name("init: hello exited with code 0", "logforge"));
        assert!(!starts_with_name("hellothere: x", "hello"));
        assert!(!starts_with_name("hello", "hello"));
        assert!(!starts_with_name(": x", ""));
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_control_characters(s in any::<String>(), max in 0usize..64) {
            let out = record(&s, max);
            prop_assert!(!out.chars().any(needs_escape));
            let mut bounded = String::new();
            let cut = write_escaped_bounded(&mut bounded, &s, max).unwrap();
            prop_assert!(bounded.len() <= max);
            prop_assert!(cut <= s.len());
            prop_assert!(s.is_char_boundary(s.len() - cut));
            prop_assert_eq!(bounded, esc(&s[..s.len() - cut]));
        }
    }
}
