//! The claim record, byte for byte as Python filelock 4.3.1 writes and reads it:
//! `filelock-strict-v1\n<token>\n<pid>\n<host as lower-case hex of its UTF-8>\n<start token or
//! nothing>\n`. Pure: no system calls.

use super::super::identity;
use super::super::marker::Token;

const MAGIC: &str = "filelock-strict-v1";

/// Claims longer than this are refused (Python's `CLAIM_RECORD_LIMIT`); the sentinel too.
pub(super) const RECORD_LIMIT: usize = 1024;

/// Python's strict sentinel at the lock path: legacy soft locks never break it.
pub(super) const SENTINEL: &[u8] = b"1\nfilelock-strict-v1\x00\n0\n";

/// Who wrote a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) start: Option<Token>,
}

/// This process's claim record for `token`.
pub(super) fn ours(token: &str) -> Vec<u8> {
    let me = identity::ours();
    let host: String = me.host.bytes().map(|b| format!("{b:02x}")).collect();
    let start = me.token.map(|t| t.to_string()).unwrap_or_default();
    format!("{MAGIC}\n{token}\n{}\n{host}\n{start}\n", me.pid).into_bytes()
}

/// A canonical decimal (what Python's `str(int(text)) == text` accepts): digits, no
/// leading zero unless it is `0`.
fn canonical_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// Parses the record of the claim named with `token`, as Python's `parse_claim`: `None`
/// when malformed.
pub(super) fn parse(token: &str, bytes: &[u8]) -> Option<Owner> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.is_ascii())?;
    let fields: Vec<&str> = text.split('\n').collect();
    let [magic, written_token, pid, host_hex, start, trailing] = fields.as_slice() else {
        return None;
    };
    if *magic != MAGIC || written_token != &token || !trailing.is_empty() {
        return None;
    }
    if !canonical_decimal(pid) {
        return None;
    }
    let pid: u32 = pid
        .parse()
        .ok()
        .filter(|p| (1..=i32::MAX as u32).contains(p))?;
    let start = match *start {
        "" => None,
        digits if canonical_decimal(digits) => Some(Token::parse(digits)),
        _ => return None,
    };
    let host = decode_host(host_hex)?;
    Some(Owner { pid, host, start })
}

/// The host name from lower-case hex of UTF-8, refused when it is empty of meaning to
/// Python (not printable, or with white space).
fn decode_host(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let host = String::from_utf8(bytes).ok()?;
    let printable = host.chars().all(|c| !c.is_control() && !c.is_whitespace());
    printable.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "27f974d41adc4f141dfaaca9ae3ae769";

    #[test]
    fn parses_what_python_wrote() {
        // A record written by Python filelock 4.3.1 on host "vm".
        let record = format!(
            "filelock-strict-v1\n{T}\n16037\n766d\n25612111511023058442408507766040494650085400696842438542\n"
        );
        let owner = parse(T, record.as_bytes()).unwrap();
        assert_eq!(owner.pid, 16037);
        assert_eq!(owner.host, "vm");
        assert_eq!(
            owner.start.unwrap().to_string(),
            "25612111511023058442408507766040494650085400696842438542"
        );
        let no_start = format!("filelock-strict-v1\n{T}\n7\n766d\n\n");
        assert_eq!(parse(T, no_start.as_bytes()).unwrap().start, None);
    }

    #[test]
    fn our_record_parses_as_ours() {
        let owner = parse(T, &ours(T)).unwrap();
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(owner.host, identity::host_name());
        assert_eq!(owner.start, identity::ours().token);
    }

    #[test]
    fn refuses_what_python_refuses() {
        for bad in [
            format!("filelock-strict-v1\n{T}\n07\n766d\n\n"),
            format!("filelock-strict-v1\n{T}\n0\n766d\n\n"),
            format!("filelock-strict-v1\n{T}\n2147483648\n766d\n\n"),
            format!("filelock-strict-v1\n{T}\n7\n766D\n\n"),
            format!("filelock-strict-v1\n{T}\n7\n76 6d\n\n"),
            format!("filelock-strict-v1\n{T}\n7\n7620\n\n"),
            format!("filelock-strict-v1\n{T}\n7\n766d\n01\n"),
            format!("filelock-strict-v1\n{T}\n7\n766d\n\nx"),
            format!("filelock-strict-v2\n{T}\n7\n766d\n\n"),
            format!("filelock-strict-v1\n{}\n7\n766d\n\n", "0".repeat(32)),
            format!("filelock-strict-v1\n{T}\n7\n766d\n"),
        ] {
            assert_eq!(parse(T, bad.as_bytes()), None, "{bad:?}");
        }
    }
}
