//! The terminal line discipline: turns typed bytes into an edited line and
//! the bytes to echo (VT100), without allocation.
//!
//! Keys: printable bytes and UTF-8 insert at the cursor; Backspace/DEL
//! delete the character before it; Ctrl-U clears the line; Ctrl-C cancels
//! it; Left/Right move the cursor; Up/Down walk the history; Enter (CR, LF,
//! or CR LF) ends it. Other control bytes are ignored. With echo off
//! nothing typed is echoed and the line is not remembered.

/// Longest line.
pub const MAX_LINE: usize = 4096;
/// Lines remembered for Up/Down.
pub const HISTORY: usize = 16;
/// Longest line remembered.
pub const HISTORY_LINE: usize = 256;

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Enter: the line is [`LineEditor::line`].
    Line,
    /// Ctrl-C.
    Cancelled,
    /// More than the allowed bytes were typed before the line ended. The
    /// bytes past the limit are dropped (not echoed) until the line end, so
    /// an over-long line ends one read, not many.
    TooLong,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in an escape sequence.
    None,
    /// After ESC.
    Started,
    /// After ESC `[`.
    Csi,
}

/// Line editor state for one terminal.
pub struct LineEditor {
    buf: [u8; MAX_LINE],
    len: usize,
    cursor: usize,
    max: usize,
    echo: bool,
    esc: Escape,
    last_cr: bool,
    history: [[u8; HISTORY_LINE]; HISTORY],
    history_len: [usize; HISTORY],
    /// Lines stored (capped at HISTORY); the newest is at `newest`.
    stored: usize,
    newest: usize,
    /// How far back Up has gone (0: editing a new line).
    back: usize,
    /// The line went past `max`: drop bytes until its end.
    overflow: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

impl LineEditor {
    /// An idle editor with an empty history.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LINE],
            len: 0,
            cursor: 0,
            max: MAX_LINE,
            echo: true,
            esc: Escape::None,
            last_cr: false,
            history: [[0; HISTORY_LINE]; HISTORY],
            history_len: [0; HISTORY],
            stored: 0,
            newest: 0,
            back: 0,
            overflow: false,
        }
    }

    /// Starts reading a line of at most `max` bytes (clamped to
    /// 1..=[`MAX_LINE`]), echoing or not.
    pub fn start(&mut self, max: usize, echo: bool) {
        self.len = 0;
        self.cursor = 0;
        self.max = max.clamp(1, MAX_LINE);
        self.echo = echo;
        self.esc = Escape::None;
        self.back = 0;
        self.overflow = false;
    }

    /// The line typed so far (the finished line after [`Event::Line`]).
    pub fn line(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn out(&self, out: &mut impl FnMut(&[u8]), bytes: &[u8]) {
        if self.echo {
            out(bytes);
        }
    }

    fn left(&self, out: &mut impl FnMut(&[u8]), columns: usize) {
        for _ in 0..columns {
            self.out(out, b"\x1b[D");
        }
    }

    /// Characters (not bytes) in `self.buf[from..to]`.
    fn chars(&self, from: usize, to: usize) -> usize {
        self.buf[from..to].iter().filter(|&&b| !is_continuation(b)).count()
    }

    /// Redraws from the cursor to the end, clearing `extra` stale columns,
    /// and puts the terminal cursor back.
    fn redraw_tail(&self, out: &mut impl FnMut(&[u8]), extra: usize) {
        self.out(out, &self.buf[self.cursor..self.len]);
        for _ in 0..extra {
            self.out(out, b" ");
        }
        self.left(out, self.chars(self.cursor, self.len) + extra);
    }

    /// Replaces the whole line with `text` on screen and in the buffer.
    fn replace(&mut self, out: &mut impl FnMut(&[u8]), text_from: Option<usize>) {
        let old_chars = self.chars(0, self.len);
        self.left(out, self.chars(0, self.cursor));
        let (len, src) = match text_from {
            Some(slot) => (self.history_len[slot], self.history[slot]),
            None => (0, [0; HISTORY_LINE]),
        };
        self.buf[..len].copy_from_slice(&src[..len]);
        self.len = len;
        self.cursor = len;
        self.out(out, &self.buf[..len]);
        let new_chars = self.chars(0, len);
        let extra = old_chars.saturating_sub(new_chars);
        for _ in 0..extra {
            self.out(out, b" ");
        }
        self.left(out, extra);
    }

    fn remember(&mut self) {
        if !self.echo || self.len == 0 || self.len > HISTORY_LINE {
            return;
        }
        self.newest = (self.newest + 1) % HISTORY;
        self.history[self.newest][..self.len].copy_from_slice(&self.buf[..self.len]);
        self.history_len[self.newest] = self.len;
        self.stored = (self.stored + 1).min(HISTORY);
    }

    fn history_slot(&self, back: usize) -> usize {
        (self.newest + HISTORY - (back - 1)) % HISTORY
    }

    /// Feeds one typed byte; echo goes to `out`. Returns how the read ended
    /// when this byte ended it.
    pub fn feed(&mut self, byte: u8, out: &mut impl FnMut(&[u8])) -> Option<Event> {
        let after_cr = core::mem::replace(&mut self.last_cr, false);
        match self.esc {
            Escape::Started => {
                self.esc = if byte == b'[' { Escape::Csi } else { Escape::None };
                return None;
            }
            Escape::Csi => {
                if (0x30..=0x3f).contains(&byte) {
                    return None; // parameters: ignored
                }
                self.esc = Escape::None;
                match byte {
                    b'D' if self.cursor > 0 => {
                        self.cursor -= 1;
                        while self.cursor > 0 && is_continuation(self.buf[self.cursor]) {
                            self.cursor -= 1;
                        }
                        self.out(out, b"\x1b[D");
                    }
                    b'C' if self.cursor < self.len => {
                        self.cursor += 1;
                        while self.cursor < self.len && is_continuation(self.buf[self.cursor]) {
                            self.cursor += 1;
                        }
                        self.out(out, b"\x1b[C");
                    }
                    b'A' if self.echo && self.back < self.stored => {
                        self.back += 1;
                        let slot = self.history_slot(self.back);
                        self.replace(out, Some(slot));
                    }
                    b'B' if self.echo && self.back > 0 => {
                        self.back -= 1;
                        let slot = (self.back > 0).then(|| self.history_slot(self.back));
                        self.replace(out, slot);
                    }
                    _ => {}
                }
                return None;
            }
            Escape::None => {}
        }
        if self.overflow && !matches!(byte, b'\r' | b'\n' | 0x03) {
            return None;
        }
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\n' && after_cr {
                    return None; // the LF of a CR LF pair
                }
                self.last_cr = byte == b'\r';
                out(b"\r\n");
                if self.overflow {
                    self.overflow = false;
                    self.len = 0;
                    self.cursor = 0;
                    return Some(Event::TooLong);
                }
                self.remember();
                Some(Event::Line)
            }
            0x03 => {
                out(b"^C\r\n");
                self.len = 0;
                self.cursor = 0;
                self.overflow = false;
                Some(Event::Cancelled)
            }
            0x1b => {
                self.esc = Escape::Started;
                None
            }
            0x08 | 0x7f => {
                if self.cursor > 0 {
                    let end = self.cursor;
                    let mut start = end - 1;
                    while start > 0 && is_continuation(self.buf[start]) {
                        start -= 1;
                    }
                    self.buf.copy_within(end..self.len, start);
                    self.len -= end - start;
                    self.cursor = start;
                    self.out(out, b"\x08");
                    self.redraw_tail(out, 1);
                }
                None
            }
            0x15 => {
                self.replace(out, None);
                None
            }
            0x00..=0x1f => None,
            _ => {
                if self.len == self.max {
                    self.overflow = true;
                    return None;
                }
                self.buf.copy_within(self.cursor..self.len, self.cursor + 1);
                self.buf[self.cursor] = byte;
                self.len += 1;
                self.cursor += 1;
                self.out(out, &[byte]);
                if self.cursor < self.len {
                    self.redraw_tail(out, 0);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn typed(ed: &mut LineEditor, keys: &[u8]) -> (Option<Event>, Vec<u8>) {
        let mut echo = Vec::new();
        let mut last = None;
        for &k in keys {
            if let Some(e) = ed.feed(k, &mut |b: &[u8]| echo.extend_from_slice(b)) {
                last = Some(e);
            }
        }
        (last, echo)
    }

    fn line_of(ed: &mut LineEditor, keys: &[u8]) -> Vec<u8> {
        ed.start(MAX_LINE, true);
        assert_eq!(typed(ed, keys).0, Some(Event::Line));
        ed.line().to_vec()
    }

    #[test]
    fn editing_keys() {
        let mut ed = LineEditor::new();
        assert_eq!(line_of(&mut ed, b"hello\r"), b"hello");
        assert_eq!(line_of(&mut ed, b"abc\x7f\x7fx\r"), b"ax");
        assert_eq!(line_of(&mut ed, b"abc\x15xyz\r"), b"xyz");
        assert_eq!(line_of(&mut ed, b"abcd\x1b[D\x1b[DXY\r"), b"abXYcd");
        assert_eq!(line_of(&mut ed, b"ab\x1b[D\x1b[D\x1b[C\x7fZ\r"), b"Zb");
        assert_eq!(line_of(&mut ed, "h\u{e9}llo\x1b[D\x1b[D\x1b[D\x7f\r".as_bytes()), b"hllo");
    }

    #[test]
    fn history_walks_back_and_forth() {
        let mut ed = LineEditor::new();
        for l in [&b"one\r"[..], b"two\r", b"three\r"] {
            line_of(&mut ed, l);
        }
        assert_eq!(line_of(&mut ed, b"\x1b[A\r"), b"three");
        assert_eq!(line_of(&mut ed, b"\x1b[A\x1b[A\x1b[A\r"), b"two");
        assert_eq!(line_of(&mut ed, b"\x1b[A\x1b[A\x1b[B\r"), b"two");
        assert_eq!(line_of(&mut ed, b"\x1b[A\x1b[Bnew\r"), b"new");
    }

    #[test]
    fn cancel_too_long_and_no_echo() {
        let mut ed = LineEditor::new();
        ed.start(MAX_LINE, true);
        assert_eq!(typed(&mut ed, b"oops\x03").0, Some(Event::Cancelled));
        ed.start(4, true);
        assert_eq!(typed(&mut ed, b"abcde").0, None);
        let (event, echo) = typed(&mut ed, b"fgh\r");
        assert_eq!(event, Some(Event::TooLong));
        assert_eq!(echo, b"\r\n", "bytes past the limit are not echoed");
        // The next line starts clean.
        ed.start(4, true);
        assert_eq!(typed(&mut ed, b"ab\r").0, Some(Event::Line));
        assert_eq!(ed.line(), b"ab");
        ed.start(64, false);
        let (event, echo) = typed(&mut ed, b"s3cret\r");
        assert_eq!(event, Some(Event::Line));
        assert_eq!(ed.line(), b"s3cret");
        assert!(!echo.windows(6).any(|w| w == b"s3cret"), "password echoed: {echo:?}");
        // Not remembered either: Up gives the line before it.
        assert_eq!(line_of(&mut ed, b"\x1b[A\r"), b"ab");
    }

    #[test]
    fn crlf_is_one_line_end() {
        let mut ed = LineEditor::new();
        assert_eq!(line_of(&mut ed, b"a\r"), b"a");
        ed.start(MAX_LINE, true);
        assert_eq!(typed(&mut ed, b"\nb\r").0, Some(Event::Line));
        assert_eq!(ed.line(), b"b");
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_the_bound(keys in proptest::collection::vec(any::<u8>(), 0..2000), max in 1usize..300) {
            let mut ed = LineEditor::new();
            ed.start(max, true);
            for k in keys {
                let _ = ed.feed(k, &mut |_: &[u8]| {});
                prop_assert!(ed.line().len() <= max);
                if ed.line().is_empty() { ed.start(max, true); }
            }
        }
    }
}
