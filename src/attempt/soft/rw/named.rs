//! Who holds a read-write soft lock, as the newest snapshot and the holder's record say:
//! the writer (granted or queued), else a reader. PID and host are informational only (the
//! protocol never judges liveness by them).

use std::path::Path;

use crate::{Error, Holder, LockMode};

use super::files::Files;
use super::log::Log;

/// The holder the newest generation names, with the PID and host of its record; `None`
/// when nobody holds it (or the record says nothing usable).
pub(crate) fn holder(lock: &Path) -> Result<Option<Holder>, Error> {
    let mut files = Files::new(lock);
    if files.read(&files.gen_dir().join("HEAD"))?.is_none()
        && files.list(&files.gen_dir(), 0)?.is_empty()
    {
        return Ok(None); // no log yet: create nothing just to look
    }
    let latest = Log::new(&files).latest(&mut files)?;
    let (token, mode) = match (&latest.writer, latest.readers.iter().next()) {
        (Some(writer), _) => (writer, LockMode::Exclusive),
        (None, Some(reader)) => (reader, LockMode::Shared),
        (None, None) => return Ok(None),
    };
    let Some(record) = files.read(&files.holder(token))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&record);
    let field = |name: &str| {
        text.split('\n')
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let Some(pid) = field("pid").and_then(|p| p.parse::<u32>().ok()) else {
        return Ok(None);
    };
    Ok(Some(Holder::new(pid, mode).with_host(field("host"))))
}
