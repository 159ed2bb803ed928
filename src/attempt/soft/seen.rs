//! Reading a marker: what it says (a protocol 2 owner record, a legacy record, Python's
//! break record), never following a symlink nor opening a non-regular node.

use std::io;
use std::path::Path;

use super::marker::{self, Content};
use super::record::{self, OwnerRecord};
use crate::sys::soft_calls::{self as sys, Node};
use crate::sys::{self as os, FileId};

/// What a marker says: a protocol 2 owner record (Python 4.x), or a legacy record.
#[derive(Debug)]
pub(crate) enum Seen {
    Owner(OwnerRecord),
    Legacy(Content),
    /// Python's break record, `filelock/break\n<pid>\n`, that its `break_lock_file`
    /// exchanges in for a marker it removes: malformed, naming the breaker.
    Break(u32),
}

/// Reads the regular marker at `path`: its node, parsed content and identity; `None` if it
/// vanished.
pub(crate) fn read(path: &Path) -> io::Result<Option<(Node, Seen, Option<FileId>)>> {
    let file_and_content = sys::read_marker(path, marker::MAX_MARKER_LEN as u64 + 1);
    let (file, node, bytes) = match file_and_content {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let content = if !node.regular {
        Seen::Legacy(Content::Malformed)
    } else if let Some(owner) = record::parse(&bytes) {
        Seen::Owner(owner)
    } else if let Some(pid) = marker::break_record_pid(&bytes) {
        Seen::Break(pid)
    } else {
        Seen::Legacy(marker::parse(&bytes))
    };
    let id = os::inspect(&file).ok().map(|facts| facts.id);
    Ok(Some((node, content, id)))
}
