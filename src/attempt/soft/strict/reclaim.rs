//! Removing the private records and probes a crashed publisher left behind, as Python
//! filelock does: a private name whose file is also published (two links) goes at once;
//! one with a single link only once it is 2 s old by the file system's own clock (read
//! from a probe file, so hosts need no shared time).

use std::io::{self, Write};
use std::path::Path;

use super::ClaimState;
use super::names;
use crate::sys::soft_calls as soft_sys;
use crate::sys::strict_calls as sys;

/// How old (file system clock) an unpublished private record must be to be removed.
const GRACE_NS: i128 = 2_000_000_000;

/// Removes the private record `name` in `directory` if a crashed publisher left it.
pub(super) fn private_record(directory: &Path, name: &str) -> io::Result<()> {
    let path = directory.join(name);
    let found = match sys::lstat(&path) {
        Ok(found) => found,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !found.regular {
        return Err(io::Error::other(format!(
            "{} is not a regular private record",
            path.display()
        )));
    }
    if found.nlink == 1 {
        let public = names::claim_name(ClaimState::Held, &names::new_token());
        match filesystem_now(directory, &public) {
            Some(now) if now - found.mtime_ns >= GRACE_NS => {}
            _ => return Ok(()),
        }
    }
    match soft_sys::unlink(&path) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) || sys::is_not_permitted(&e) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The file system's clock now, in nanoseconds: the modification time of a probe written
/// in `directory` under a private name of `public` (removed at once). `None` when it cannot
/// be written.
fn filesystem_now(directory: &Path, public: &str) -> Option<i128> {
    let probe = directory.join(names::private_name(public));
    let mut file = soft_sys::create_new(&probe, 0o600).ok()?;
    let now = file
        .write_all(b"\n")
        .ok()
        .and_then(|()| sys::fstat(&file).ok())
        .map(|m| m.mtime_ns);
    drop(file);
    let _ = soft_sys::unlink(&probe);
    now
}
