//! Publishing a record atomically and without replacing anything, as Python filelock does:
//! write it under a private name, then give it its public name with a hard link (which
//! fails on an existing name), then remove the private name. Readers never see a partial
//! record, and no rename-exchange is needed: any file system with hard links will do.

use std::io::{self, Write};
use std::path::Path;

use super::names;
use crate::sys::soft_calls as soft_sys;
use crate::sys::strict_calls::{self as sys, Meta};

/// Group and other write bits: a record never has them.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// What a publication did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Published {
    /// The record is at its public name.
    Yes,
    /// Another file has the public name.
    Exists,
    /// Someone removed (reclaimed) our private record before it was linked: nothing is
    /// published; try again later.
    Reclaimed,
}

/// Publishes `record` as `directory/public`, created with `mode` (less group and other
/// write, and the umask).
pub(super) fn publish(
    directory: &Path,
    public: &str,
    record: &[u8],
    mode: u32,
) -> io::Result<Published> {
    let private = directory.join(names::private_name(public));
    let mut file = soft_sys::create_new(&private, mode & !GROUP_OTHER_WRITE)?;
    let result = sys::fstat(&file).and_then(|ours| {
        file.write_all(record)?;
        link_private(&private, &directory.join(public), &ours).map(|p| (p, ours))
    });
    drop(file);
    match result {
        Ok((published, ours)) => {
            remove_if_same(&private, &ours);
            Ok(published)
        }
        Err(e) => {
            // Nothing of ours may stay behind under the private name.
            if let Ok(there) = sys::lstat(&private)
                && there.nlink == 1
            {
                let _ = soft_sys::unlink(&private);
            }
            Err(e)
        }
    }
}

fn link_private(private: &Path, public: &Path, ours: &Meta) -> io::Result<Published> {
    match sys::hard_link(private, public) {
        Ok(()) => {}
        // NFS may answer a retried link with EEXIST after it succeeded.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Ok(if same(public, ours) {
                Published::Yes
            } else {
                Published::Exists
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match sys::lstat(private) {
                Ok(_) => Err(e),
                Err(_) => Ok(Published::Reclaimed),
            };
        }
        Err(e) => return Err(e),
    }
    Ok(if same(public, ours) {
        Published::Yes
    } else {
        Published::Reclaimed
    })
}

/// Gives the claim `source` in `directory` the further name `destination`, never replacing
/// one: `Ok(false)` when another file has that name.
pub(super) fn link_no_replace(
    directory: &Path,
    source: &str,
    destination: &str,
) -> io::Result<bool> {
    let (source, destination) = (directory.join(source), directory.join(destination));
    match sys::hard_link(&source, &destination) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // An NFS retry of a link that succeeded: the same file under both names.
            let source = sys::lstat(&source)?;
            Ok(same(&destination, &source))
        }
        Err(e) => Err(e),
    }
}

fn same(path: &Path, ours: &Meta) -> bool {
    sys::lstat(path).is_ok_and(|there| there.same_file(ours))
}

fn remove_if_same(path: &Path, ours: &Meta) {
    if same(path, ours) {
        let _ = soft_sys::unlink(path);
    }
}
