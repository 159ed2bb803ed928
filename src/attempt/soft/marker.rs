//! The marker record, byte for byte as Python `filelock` 4.x writes and reads it:
//! `<pid>\n<host>\n<start token>\n`, or only the first two lines when the writer has no
//! start token. Pure: no system calls.

use std::fmt;

/// Markers longer than this are malformed (Python reads at most 1025 bytes and rejects
/// more than 1024).
pub(crate) const MAX_MARKER_LEN: usize = 1024;

/// Python filelock's `StrictSoftFileLock` sentinel: never broken.
const STRICT_SENTINEL: &[u8] = b"1\nfilelock-strict-v1\x00\n0\n";

/// A process start token: an unsigned integer of up to 192 bits (on Linux
/// `(boot_id << 64) | starttime`, the boot id being 128 bits), kept as its high part
/// (`token >> 64`) and its low 64 bits. Written in decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) high: u128,
    pub(crate) low: u64,
}

impl Token {
    /// Python's `_same_start`: equal, or, when either side has no boot id (high part 0),
    /// the same low 64 bits (start time).
    pub(crate) fn same_start(&self, other: &Token) -> bool {
        self == other || ((self.high == 0 || other.high == 0) && self.low == other.low)
    }

    /// Parses ASCII decimal digits. A value beyond 192 bits (no writer produces one)
    /// saturates, so it equals no real token.
    pub(super) fn parse(digits: &str) -> Token {
        // Little-endian 64-bit limbs; the fourth catches overflow.
        let mut limbs = [0u64; 4];
        for d in digits.bytes() {
            let mut carry = u128::from(d - b'0');
            for limb in &mut limbs {
                let v = u128::from(*limb) * 10 + carry;
                *limb = v as u64;
                carry = v >> 64;
            }
            if carry != 0 || limbs[3] != 0 {
                return Token {
                    high: u128::MAX,
                    low: u64::MAX,
                };
            }
        }
        Token {
            high: (u128::from(limbs[2]) << 64) | u128::from(limbs[1]),
            low: limbs[0],
        }
    }
}

impl fmt::Display for Token {
    /// The decimal value of `(high << 64) | low`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CHUNK: u64 = 10_000_000_000_000_000_000; // 10^19 < 2^64
        let mut limbs = [self.low, self.high as u64, (self.high >> 64) as u64];
        let mut chunks = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut rem = 0u128;
            for limb in limbs.iter_mut().rev() {
                let v = (rem << 64) | u128::from(*limb);
                *limb = (v / u128::from(CHUNK)) as u64;
                rem = v % u128::from(CHUNK);
            }
            chunks.push(rem as u64);
        }
        match chunks.split_last() {
            None => f.write_str("0"),
            Some((first, rest)) => {
                write!(f, "{first}")?;
                rest.iter().rev().try_for_each(|c| write!(f, "{c:019}"))
            }
        }
    }
}

/// The PID of Python's break record, `filelock/break\n<pid>\n` exactly (its
/// `break_marker_pid`): what its `break_lock_file` exchanges in for a marker it removes.
pub(crate) fn break_record_pid(bytes: &[u8]) -> Option<u32> {
    let digits = bytes
        .strip_prefix(b"filelock/break\n")?
        .strip_suffix(b"\n")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Who a well-formed marker names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) token: Option<Token>,
}

impl Holder {
    /// The record, exactly as Python filelock writes it.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{}\n{}\n", self.pid, self.host);
        if let Some(token) = self.token {
            s.push_str(&format!("{token}\n"));
        }
        s.into_bytes()
    }
}

/// What a marker's content says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// A holder that may be checked for liveness.
    Holder(Holder),
    /// Empty: a writer that has created the file and not yet written it (or was killed in
    /// between), or an old release. Never broken: nothing tells a writer about to write
    /// from one that is gone (Python filelock does the same).
    Empty,
    /// Python's strict sentinel: never broken.
    Unbreakable,
    /// Anything else: broken once seen unchanged for the malformed age threshold.
    Malformed,
}

/// Parses a marker's bytes (at most [`MAX_MARKER_LEN`] + 1 read) as Python's
/// `parse_lock_holder` does.
pub(crate) fn parse(bytes: &[u8]) -> Content {
    if bytes.is_empty() {
        return Content::Empty;
    }
    if bytes == STRICT_SENTINEL {
        return Content::Unbreakable;
    }
    if bytes.len() > MAX_MARKER_LEN || bytes.last() != Some(&b'\n') {
        return Content::Malformed;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Content::Malformed;
    };
    let lines = split_lines(text.trim_matches(is_python_space));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (pid, host, token) = match lines.as_slice() {
        [pid, host] => (*pid, *host, None),
        [pid, host, token] if digits(token) => (*pid, *host, Some(Token::parse(token))),
        _ => return Content::Malformed,
    };
    if !digits(pid) {
        return Content::Malformed;
    }
    match pid.parse::<u32>() {
        Ok(pid) if (1..=i32::MAX as u32).contains(&pid) => Content::Holder(Holder {
            pid,
            host: host.to_owned(),
            token,
        }),
        _ => Content::Malformed,
    }
}

/// Python's `str.isspace`: Unicode white space plus the four ASCII separators.
pub(super) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.splitlines()` (without the line ends).
pub(super) fn split_lines(s: &str) -> Vec<&str> {
    let is_break = |c: char| {
        matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        )
    };
    let mut lines = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        match rest.find(is_break) {
            None => {
                lines.push(rest);
                break;
            }
            Some(i) => {
                lines.push(&rest[..i]);
                let after = &rest[i..];
                let skip = if after.starts_with("\r\n") {
                    2
                } else {
                    after.chars().next().map_or(1, char::len_utf8)
                };
                rest = &after[skip..];
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value observed from Python filelock 4.3.1 (see notes): boot id
    /// dc500952-be8d-4972-83ef-e0c2377b6c6d, starttime 12966.
    const OBSERVED: &str = "5402050269783023946941495664693294079072104762456986890918";

    #[test]
    fn token_matches_python_decimal() {
        let token = Token {
            high: 0xdc500952_be8d_4972_83ef_e0c2377b6c6d,
            low: 12966,
        };
        assert_eq!(token.to_string(), OBSERVED);
        assert_eq!(Token::parse(OBSERVED), token);
        assert_eq!(Token { high: 0, low: 0 }.to_string(), "0");
        assert_eq!(Token { high: 0, low: 7 }.to_string(), "7");
        assert_eq!(
            Token { high: 1, low: 0 }.to_string(),
            "18446744073709551616"
        );
    }

    #[test]
    fn format_and_parse_round_trip() {
        let holder = Holder {
            pid: 3462,
            host: "vm".into(),
            token: Some(Token::parse(OBSERVED)),
        };
        let bytes = holder.to_bytes();
        assert_eq!(bytes, format!("3462\nvm\n{OBSERVED}\n").into_bytes());
        assert_eq!(parse(&bytes), Content::Holder(holder));
        let two = b"12\nhost?pidns-effffff3\n";
        assert_eq!(
            parse(two),
            Content::Holder(Holder {
                pid: 12,
                host: "host?pidns-effffff3".into(),
                token: None
            })
        );
    }

    #[test]
    fn parse_rules_follow_python() {
        assert_eq!(parse(b""), Content::Empty);
        assert_eq!(parse(STRICT_SENTINEL), Content::Unbreakable);
        for bad in [
            &b"hello"[..],
            b"hello\n",
            b"12\nvm",                  // no final newline
            b"12\n",                    // one line
            b"12\nvm\n1\nx\n",          // four lines
            b"0\nvm\n",                 // pid 0
            b"2147483648\nvm\n",        // pid beyond 2^31-1
            b"-1\nvm\n",                // sign
            b"12\nvm\nabc\n",           // token not digits
            b"\xff\nvm\n",              // not UTF-8
            "\u{661}\nvm\n".as_bytes(), // non-ASCII digit
        ] {
            assert_eq!(parse(bad), Content::Malformed, "{bad:?}");
        }
        // Surrounding white space is stripped before splitting, as `str.strip()` does.
        assert!(matches!(parse(b"  12\nvm\n\n"), Content::Holder(_)));
        assert!(matches!(parse(b"12\r\nvm\r\n"), Content::Holder(_)));
        let long = format!("1\n{}\n", "h".repeat(MAX_MARKER_LEN));
        assert_eq!(parse(long.as_bytes()), Content::Malformed);
    }

    #[test]
    fn break_records_name_their_breaker() {
        assert_eq!(break_record_pid(b"filelock/break\n4242\n"), Some(4242));
        for bad in [
            &b"filelock/break\n4242"[..],
            b"filelock/break\n\n",
            b"filelock/break\n-1\n",
            b"filelock/break\n42\n\n",
            b"4242\nvm\n",
        ] {
            assert_eq!(break_record_pid(bad), None, "{bad:?}");
        }
        assert_eq!(parse(b"filelock/break\n4242\n"), Content::Malformed);
    }

    #[test]
    fn same_start_compares_low_bits_without_boot_id() {
        let a = Token { high: 5, low: 9 };
        assert!(a.same_start(&a));
        assert!(a.same_start(&Token { high: 0, low: 9 }));
        assert!(!a.same_start(&Token { high: 6, low: 9 }));
        assert!(!a.same_start(&Token { high: 5, low: 8 }));
    }
}
