//! One generation of the log (Python's `Snapshot`, `parse_snapshot`), byte for byte:
//!
//! ```text
//! filelock-rw/1
//! generation=<N>           (decimal, no leading zeros)
//! writer=<token>           (at most once)
//! reader=<token>           (one per reader, sorted ascending)
//! ```
//!
//! Each line ends with `\n`. Pure: no system calls.

use std::collections::BTreeSet;

use super::record::{PROTOCOL, is_token};
use super::{GENERATION_DIGITS, MAX_RECORD_SIZE};

/// Who holds the lock as of one generation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) writer: Option<String>,
    pub(crate) readers: BTreeSet<String>,
}

impl Snapshot {
    /// An empty snapshot numbered `generation` (generation 0 is implicit: no file).
    pub(crate) fn empty(generation: u64) -> Self {
        Snapshot {
            generation,
            ..Snapshot::default()
        }
    }

    /// `true` when `token` is the writer or a reader.
    pub(crate) fn has_member(&self, token: &str) -> bool {
        self.writer.as_deref() == Some(token) || self.readers.contains(token)
    }

    /// The writer and the readers.
    pub(crate) fn members(&self) -> impl Iterator<Item = &String> {
        self.writer.iter().chain(self.readers.iter())
    }

    /// The record's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut text = format!("{PROTOCOL}\ngeneration={}\n", self.generation);
        if let Some(writer) = &self.writer {
            text.push_str(&format!("writer={writer}\n"));
        }
        for reader in &self.readers {
            text.push_str(&format!("reader={reader}\n"));
        }
        text.into_bytes()
    }

    /// Parses a record as Python does: `None` for anything it would not accept.
    pub(crate) fn parse(data: &[u8]) -> Option<Snapshot> {
        if data.is_empty() || data.len() > MAX_RECORD_SIZE || !data.is_ascii() {
            return None;
        }
        let text = std::str::from_utf8(data).ok()?;
        let lines: Vec<&str> = text.split('\n').collect();
        let (first, rest) = lines.split_first()?;
        let (last, body) = rest.split_last()?;
        if *first != PROTOCOL || !last.is_empty() {
            return None;
        }
        let mut generation = None;
        let mut snapshot = Snapshot::default();
        for line in body {
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            match key {
                "generation"
                    if generation.is_none()
                        && value.len() <= GENERATION_DIGITS
                        && !value.is_empty()
                        && value.bytes().all(|b| b.is_ascii_digit())
                        && (value == "0" || !value.starts_with('0')) =>
                {
                    generation = Some(value.parse::<u64>().ok()?);
                }
                "writer" if snapshot.writer.is_none() && is_token(value) => {
                    snapshot.writer = Some(value.to_owned());
                }
                "reader" if is_token(value) && !snapshot.readers.contains(value) => {
                    snapshot.readers.insert(value.to_owned());
                }
                _ => return None,
            }
        }
        snapshot.generation = generation?;
        Some(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "2f2afa8767d004a0c68919791bfe6af4";
    const W: &str = "89674e211f543776b292ecad2225817b";

    #[test]
    fn encodes_as_python_observed() {
        let mut queued = Snapshot::empty(2);
        queued.writer = Some(W.into());
        queued.readers.insert(A.into());
        assert_eq!(
            queued.encode(),
            format!("filelock-rw/1\ngeneration=2\nwriter={W}\nreader={A}\n").into_bytes()
        );
        assert_eq!(Snapshot::empty(5).encode().len(), 27);
        assert_eq!(Snapshot::parse(&queued.encode()), Some(queued));
    }

    #[test]
    fn readers_are_sorted() {
        let mut s = Snapshot::empty(1);
        s.readers.insert(W.into());
        s.readers.insert(A.into());
        let text = String::from_utf8(s.encode()).unwrap();
        assert!(text.find(A).unwrap() < text.find(W).unwrap());
    }

    #[test]
    fn rejects_what_python_rejects() {
        for bad in [
            "".to_owned(),
            "filelock-rw/1\ngeneration=1".to_owned(),
            "filelock-rw/2\ngeneration=1\n".to_owned(),
            "filelock-rw/1\n".to_owned(),
            "filelock-rw/1\ngeneration=01\n".to_owned(),
            "filelock-rw/1\ngeneration=1\ngeneration=2\n".to_owned(),
            "filelock-rw/1\ngeneration=1\nwriter=x\n".to_owned(),
            format!("filelock-rw/1\ngeneration=1\nwriter={A}\nwriter={W}\n"),
            format!("filelock-rw/1\ngeneration=1\nreader={A}\nreader={A}\n"),
            "filelock-rw/1\ngeneration=1\nother=1\n".to_owned(),
            "filelock-rw/1\ngeneration=1\n\n".to_owned(),
            "filelock-rw/1\ngeneration=\u{b9}\n".to_owned(),
        ] {
            assert_eq!(Snapshot::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(
            Snapshot::parse(b"filelock-rw/1\ngeneration=0\n"),
            Some(Snapshot::empty(0))
        );
    }
}
