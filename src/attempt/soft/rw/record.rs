//! A participant's holder record (Python's `encode_holder`, `holder_lease`), byte for byte:
//!
//! ```text
//! filelock-rw/1
//! token=<token>
//! pid=<pid>
//! host=<host>
//! lease=<stale threshold, as Python's repr(float)>
//! nonce=<token>            (fresh at every refresh: peers compare contents)
//! ```
//!
//! Pure: no system calls.

use std::time::Duration;

/// The first line of every record of the protocol.
pub(crate) const PROTOCOL: &str = "filelock-rw/1";

/// A token: 32 lowercase hex digits (Python's `is_token`).
pub(crate) fn is_token(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh token.
pub(crate) fn new_token() -> String {
    super::super::claim::random_hex()
}

/// The header that identifies `token`'s record.
pub(crate) fn header(token: &str) -> Vec<u8> {
    format!("{PROTOCOL}\ntoken={token}\n").into_bytes()
}

/// The whole record of `token` with a fresh nonce: always the same length.
pub(crate) fn encode(token: &str, lease: Duration) -> Vec<u8> {
    let mut bytes = header(token);
    bytes.extend_from_slice(
        format!(
            "pid={}\nhost={}\nlease={}\nnonce={}\n",
            std::process::id(),
            super::super::host_name(),
            super::super::record::python_repr(lease.as_secs_f64()),
            new_token()
        )
        .as_bytes(),
    );
    bytes
}

/// The `lease=` a record's writer promised to refresh within, in seconds: only when spelt
/// exactly as Python's `repr` spells it (else ignored).
pub(crate) fn lease(record: Option<&[u8]>) -> Option<f64> {
    let text = std::str::from_utf8(record?).ok()?;
    let value = text.split('\n').find_map(|l| l.strip_prefix("lease="))?;
    let lease: f64 = value.parse().ok()?;
    (lease.is_finite() && lease > 0.0 && super::super::record::python_repr(lease) == value)
        .then_some(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_six_lines_and_keeps_its_length() {
        let token = new_token();
        assert!(is_token(&token));
        let a = encode(&token, Duration::from_secs(3));
        let b = encode(&token, Duration::from_secs(3));
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b, "a fresh nonce each time");
        let text = String::from_utf8(a).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "filelock-rw/1");
        assert_eq!(lines[1], format!("token={token}"));
        assert_eq!(lines[2], format!("pid={}", std::process::id()));
        assert!(lines[3].starts_with("host="));
        assert_eq!(lines[4], "lease=3.0");
        assert!(is_token(lines[5].strip_prefix("nonce=").unwrap()));
        assert_eq!(lines.len(), 6);
        assert!(text.starts_with(std::str::from_utf8(&header(&token)).unwrap()));
    }

    #[test]
    fn lease_only_in_pythons_spelling() {
        assert_eq!(lease(Some(b"x\nlease=90.0\n")), Some(90.0));
        assert_eq!(lease(Some(b"lease=1e+16\n")), Some(1e16));
        for bad in [
            &b"lease=90\n"[..],
            b"lease=inf\n",
            b"lease=-1.0\n",
            b"lease=0.0\n",
            b"",
        ] {
            assert_eq!(lease(Some(bad)), None);
        }
        assert_eq!(lease(None), None);
    }
}
