//! Unix system calls of the strict soft lock (`StrictSoftFileLock`): directories made and
//! opened without following a symlink, their listings, hard links that never replace a
//! name, and the metadata (owner, mode, link count) its checks read.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::NodeKind;

/// What the strict protocol reads of a node (`lstat`) or an open file (`fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `None` for a regular file, else what is there instead.
    pub(crate) kind: Option<NodeKind>,
    pub(crate) regular: bool,
    pub(crate) directory: bool,
    pub(crate) symlink: bool,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) uid: u32,
    /// The permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub(crate) mode: u32,
    pub(crate) nlink: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i128,
}

impl Meta {
    fn of(meta: &fs::Metadata) -> Self {
        let ft = meta.file_type();
        Meta {
            kind: super::unix::node_kind(&ft),
            regular: ft.is_file(),
            directory: ft.is_dir(),
            symlink: ft.is_symlink(),
            dev: meta.dev(),
            ino: meta.ino(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            nlink: meta.nlink(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// Same file: device and inode.
    pub(crate) fn same_file(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// `lstat(2)`: never follows a symlink.
pub(crate) fn lstat(path: &Path) -> io::Result<Meta> {
    fs::symlink_metadata(path).map(|m| Meta::of(&m))
}

/// `fstat(2)`.
pub(crate) fn fstat(file: &File) -> io::Result<Meta> {
    file.metadata().map(|m| Meta::of(&m))
}

/// `mkdir(2)` with `mode` (reduced by the umask). A symlink at `path` is `EEXIST`, never
/// followed.
pub(crate) fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    DirBuilder::new().mode(mode).create(path)
}

/// Opens the directory at `path`: `O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC`, so a symlink
/// or anything but a directory there fails (`ELOOP`, `ENOTDIR`).
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The names in the directory at `path` (no `.` and `..`), in the order the file system
/// lists them, at most `limit` of them.
pub(crate) fn list(path: &Path, limit: usize) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(path)?.take(limit) {
        names.push(entry?.file_name());
    }
    Ok(names)
}

/// `link(2)` without following a symlink at `source`: a new name for the same file. An
/// existing `destination` is `EEXIST`, never replaced.
pub(crate) fn hard_link(source: &Path, destination: &Path) -> io::Result<()> {
    fs::hard_link(source, destination)
}

/// Sets the mode bits (sticky included) of an open file or directory: `fchmod(2)`.
pub(crate) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Whether a hard link error means "this file system cannot make hard links" (Python
/// filelock's `raise_if_hard_links_unsupported`: `ENOSYS`, `EXDEV`, `ENOTSUP`).
pub(crate) fn links_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EXDEV) | Some(libc::EOPNOTSUPP)
        )
        || e.raw_os_error() == Some(libc::ENOTSUP)
}

/// `ESTALE`: an NFS file handle the server no longer knows.
pub(crate) fn is_stale_handle(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESTALE)
}

/// `EPERM`: Linux refuses a hard link to another account's file (protected hard links).
pub(crate) fn is_not_permitted(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM)
}
