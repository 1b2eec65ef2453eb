//! Backslash escapes for the text of `--send` steps.

/// Telnet's "interpret as command" byte: COM1 is a telnet connection.
const IAC: u8 = 0xff;
/// Telnet's BREAK command: QEMU turns it into a break on the serial line.
const BREAK: u8 = 0xf3;

/// Decodes the backslash escapes of a `--send` argument into the bytes written to COM1,
/// which QEMU reads as telnet: a data byte 0xff is doubled, and `\B` is a telnet BREAK
/// (`IAC BRK`), a break condition on the guest's serial line.
///
/// Understood escapes: `\r`, `\n`, `\t`, `\0`, `\\`, `\e` (ESC, 0x1b), `\xNN` (exactly two
/// hex digits, any byte value) and `\B`. Every other character stands for its UTF-8 encoding.
pub fn decode_escapes(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('e') => out.push(0x1b),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hi = chars.next().and_then(|c| c.to_digit(16));
                let lo = chars.next().and_then(|c| c.to_digit(16));
                match (hi, lo) {
                    // Two hex digits never exceed 0xff.
                    (Some(hi), Some(lo)) => {
                        let byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
                        if byte == IAC {
                            out.push(IAC);
                        }
                        out.push(byte);
                    }
                    _ => return Err(r"\x must be followed by two hex digits".to_string()),
                }
            }
            Some('B') => out.extend_from_slice(&[IAC, BREAK]),
            Some(other) => return Err(format!("unknown escape \\{other}")),
            None => return Err("trailing backslash".to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode_escapes;

    #[test]
    fn plain_text_is_utf8() {
        assert_eq!(decode_escapes("help").unwrap(), b"help");
        assert_eq!(decode_escapes("é").unwrap(), "é".as_bytes());
        assert_eq!(decode_escapes("").unwrap(), b"");
    }

    #[test]
    fn named_escapes() {
        assert_eq!(decode_escapes(r"ls\r\n").unwrap(), b"ls\r\n");
        assert_eq!(decode_escapes(r"a\tb").unwrap(), b"a\tb");
        assert_eq!(decode_escapes(r"a\\b").unwrap(), b"a\\b");
        assert_eq!(decode_escapes(r"\0").unwrap(), b"\0");
        assert_eq!(decode_escapes(r"\e[A").unwrap(), b"\x1b[A");
    }

    #[test]
    fn hex_escapes() {
        assert_eq!(decode_escapes(r"\x1b[A").unwrap(), b"\x1b[A");
        assert_eq!(decode_escapes(r"\x03").unwrap(), [3]);
        // 0xff is telnet's IAC: doubled on the wire.
        assert_eq!(decode_escapes(r"\xFF\xfe").unwrap(), [0xff, 0xff, 0xfe]);
        assert_eq!(decode_escapes(r"a\Bb").unwrap(), [b'a', 0xff, 0xf3, b'b']);
        assert_eq!(decode_escapes(r"\x414").unwrap(), b"A4");
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert_eq!(decode_escapes(r"\q").unwrap_err(), r"unknown escape \q");
        assert_eq!(decode_escapes("abc\\").unwrap_err(), "trailing backslash");
        assert!(decode_escapes(r"\x1").is_err());
        assert!(decode_escapes(r"\xg0").is_err());
    }
}
