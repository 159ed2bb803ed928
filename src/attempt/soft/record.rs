//! The protocol 2 owner record of Python `filelock` 4.x (`_soft/_records.py`), byte for byte:
//!
//! ```text
//! filelock/2
//! pid=<pid>
//! host=<host>
//! mode=lease            (or exclusive, or a newer protocol's word: "unknown", never broken)
//! token=<32 hex>        (a lease's claim token)
//! duration=<seconds>    (a lease's duration, as Python's `repr(float)`)
//! start=<start token>   (when the writer has one)
//! ```
//!
//! Each line ends with `\n`. Pure: no system calls.

use std::time::Duration;

use super::marker::Token;

/// The first line of every protocol 2 record.
const PROTOCOL: &str = "filelock/2";

/// What an owner record says its holder agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A lease: taken over once seen unchanged for its duration.
    Lease,
    /// An exclusive hold: broken only on proof that its holder is gone.
    Exclusive,
    /// A mode of a newer protocol: never broken.
    Unknown,
}

/// A parsed protocol 2 owner record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OwnerRecord {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) mode: Mode,
    pub(crate) token: Option<String>,
    /// The lease duration, in seconds.
    pub(crate) duration: Option<f64>,
    pub(crate) start: Option<Token>,
}

/// The record of a lease held by `pid` on `host`, as Python writes it.
pub(crate) fn encode_lease(
    pid: u32,
    host: &str,
    token: &str,
    duration: Duration,
    start: Option<Token>,
) -> Vec<u8> {
    let mut text = format!(
        "{PROTOCOL}\npid={pid}\nhost={host}\nmode=lease\ntoken={token}\nduration={}\n",
        python_repr(duration.as_secs_f64())
    );
    if let Some(start) = start {
        text.push_str(&format!("start={start}\n"));
    }
    text.into_bytes()
}

/// Parses `bytes` as Python's `parse_marker` does: `None` unless it is a complete protocol 2
/// record (then the legacy rules apply to it).
pub(crate) fn parse(bytes: &[u8]) -> Option<OwnerRecord> {
    if bytes.len() > super::marker::MAX_MARKER_LEN || bytes.last() != Some(&b'\n') {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let lines = super::marker::split_lines(text.trim_matches(super::marker::is_python_space));
    let (first, rest) = lines.split_first()?;
    if *first != PROTOCOL {
        return None;
    }
    // Later lines win, as Python's dict does.
    let field = |name: &str| -> Result<Option<&str>, ()> {
        let mut found = None;
        for line in rest {
            let (key, value) = line.split_once('=').ok_or(())?;
            if key == name {
                found = Some(value);
            }
        }
        Ok(found)
    };
    let mode = match field("mode").ok()?? {
        "lease" => Mode::Lease,
        "exclusive" => Mode::Exclusive,
        _ => Mode::Unknown,
    };
    let host = field("host").ok()?.filter(|h| !h.is_empty())?;
    let pid = decimal(field("pid").ok()??)?;
    let duration = match field("duration").ok()? {
        Some(text) if is_duration_spelling(text) => Some(text.parse::<f64>().ok()?),
        Some(_) => return None,
        None => None,
    };
    let start = match field("start").ok()? {
        Some(text) => Some(start_token(text)?),
        None => None,
    };
    let pid = u32::try_from(pid)
        .ok()
        .filter(|p| (1..=i32::MAX as u32).contains(p))?;
    let token = field("token").ok()?.map(str::to_owned);
    if mode == Mode::Lease
        && (token.as_deref().is_none_or(str::is_empty)
            || !duration.is_some_and(|d| d.is_finite() && d > 0.0))
    {
        return None;
    }
    Some(OwnerRecord {
        pid,
        host: host.to_owned(),
        mode,
        token,
        duration,
        start,
    })
}

/// ASCII decimal digits (Python's `parse_decimal`), as a number (saturating far beyond any
/// PID: such a value is out of range either way).
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

fn start_token(text: &str) -> Option<Token> {
    decimal(text)?;
    Some(Token::parse(text))
}

/// Python's `_DURATION` pattern: `[0-9]+(\.[0-9]+)?(e[+-][0-9]+)?`.
fn is_duration_spelling(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (number, exponent) = match text.split_once('e') {
        Some((number, exponent)) => (number, Some(exponent)),
        None => (text, None),
    };
    let number_ok = match number.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(number),
    };
    let exponent_ok = exponent.is_none_or(|e| e.strip_prefix(['+', '-']).is_some_and(digits));
    number_ok && exponent_ok
}

/// `repr(x)` of a finite, positive Python float: the shortest digits that read back as `x`,
/// in fixed notation with at least one decimal (`30.0`, `0.1`) when the decimal point falls
/// within 16 places, else in exponent notation with a sign and two or more digits
/// (`1e+16`, `1e-05`, `2.5e-07`).
pub(crate) fn python_repr(x: f64) -> String {
    // Rust's `{:e}` writes the shortest round-trip digits: `d.ddde<exp>`.
    let sci = format!("{x:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return sci;
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exp + 1; // where the decimal point falls after the first digit
    if -4 < point && point <= 16 {
        if point <= 0 {
            let zeros = "0".repeat(point.unsigned_abs() as usize);
            return format!("0.{zeros}{digits}");
        }
        let point = point as usize;
        if digits.len() <= point {
            let zeros = "0".repeat(point - digits.len());
            return format!("{digits}{zeros}.0");
        }
        return format!("{}.{}", &digits[..point], &digits[point..]);
    }
    let (first, rest) = digits.split_at(1);
    let sign = if exp < 0 { '-' } else { '+' };
    let fraction = if rest.is_empty() {
        String::new()
    } else {
        format!(".{rest}")
    };
    format!("{first}{fraction}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        // Values printed by CPython 3.11's repr().
        for (x, python) in [
            (30.0, "30.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123_456_789.125, "123456789.125"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.5e-7, "2.5e-07"),
            (1e22, "1e+22"),
            (7.0, "7.0"),
        ] {
            assert_eq!(python_repr(x), python, "{x}");
            assert!(is_duration_spelling(python));
        }
    }

    #[test]
    fn lease_record_round_trips() {
        let start = Token { high: 5, low: 9 };
        let token = "0123456789abcdef0123456789abcdef";
        let bytes = encode_lease(42, "vm", token, Duration::from_millis(1500), Some(start));
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            format!(
                "filelock/2\npid=42\nhost=vm\nmode=lease\ntoken={token}\nduration=1.5\nstart={start}\n"
            )
        );
        let record = parse(&bytes).unwrap();
        assert_eq!(record.pid, 42);
        assert_eq!(record.host, "vm");
        assert_eq!(record.mode, Mode::Lease);
        assert_eq!(record.token.as_deref(), Some(token));
        assert_eq!(record.duration, Some(1.5));
        assert_eq!(record.start, Some(start));
    }

    #[test]
    fn parse_rules_follow_python() {
        let ok = b"filelock/2\npid=7\nhost=h\nmode=exclusive\n";
        assert_eq!(parse(ok).unwrap().mode, Mode::Exclusive);
        let newer = b"filelock/2\npid=7\nhost=h\nmode=shared-v9\n";
        assert_eq!(parse(newer).unwrap().mode, Mode::Unknown);
        for bad in [
            &b"7\nh\n"[..],                                           // legacy
            b"filelock/2\npid=7\nhost=h\nmode=exclusive",             // no final newline
            b"filelock/2\npid=7\nhost=h\n",                           // no mode
            b"filelock/2\npid=7\nmode=exclusive\n",                   // no host
            b"filelock/2\npid=0\nhost=h\nmode=exclusive\n",           // pid 0
            b"filelock/2\npid=7\nhost=h\nmode=exclusive\nnoequals\n", // a line without '='
            b"filelock/2\npid=7\nhost=h\nmode=lease\nduration=1.0\n", // lease without token
            b"filelock/2\npid=7\nhost=h\nmode=lease\ntoken=t\n",      // lease without duration
            b"filelock/2\npid=7\nhost=h\nmode=lease\ntoken=t\nduration=inf\n",
            b"filelock/2\npid=7\nhost=h\nmode=lease\ntoken=t\nduration=1e999\n",
            b"filelock/2\npid=7\nhost=h\nmode=exclusive\nstart=x\n",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
