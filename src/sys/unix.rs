//! Unix: `open(2)` with `O_NOFOLLOW|O_NONBLOCK`, `fstat(2)`, `flock(2)` through std.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{Create, Facts, OpenFailure};
use crate::{Error, NodeKind, Op};

/// Device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(super) dev: u64,
    pub(super) ino: u64,
}

/// Opens (creating if needed) the lock file: `O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK`,
/// never `O_TRUNC`. `O_NONBLOCK` keeps a FIFO planted at the path from hanging the open.
/// `create` says whether it may or must create the file.
pub(crate) fn open(path: &Path, mode: u32, create: Create) -> Result<File, OpenFailure> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create == Create::IfMissing)
        .create_new(create == Create::New)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| classify_open_error(path, e))
}

fn classify_open_error(path: &Path, err: io::Error) -> OpenFailure {
    let fatal = |e| OpenFailure::Fatal(Error::io(path, Op::Open, e));
    match err.raw_os_error() {
        Some(libc::EINTR) => OpenFailure::Again,
        Some(libc::EEXIST) => OpenFailure::Exists,
        Some(libc::ENOENT) => OpenFailure::MissingParent,
        Some(libc::EISDIR) => OpenFailure::Fatal(not_a_file(path, NodeKind::Directory)),
        // O_NOFOLLOW on a symlink: ELOOP (Linux, macOS), EMLINK (FreeBSD). ENXIO: a socket.
        // Look at the node to say what it is; if it is not what we think, report the errno.
        Some(libc::ELOOP) | Some(libc::EMLINK) | Some(libc::ENXIO) | Some(libc::EOPNOTSUPP) => {
            match fs::symlink_metadata(path) {
                Ok(meta) => match node_kind(&meta.file_type()) {
                    Some(kind) => OpenFailure::Fatal(not_a_file(path, kind)),
                    None => fatal(err),
                },
                Err(_) => fatal(err),
            }
        }
        _ => fatal(err),
    }
}

fn not_a_file(path: &Path, kind: NodeKind) -> Error {
    Error::NotAFile {
        path: path.to_path_buf(),
        kind,
    }
}

pub(super) fn node_kind(ft: &fs::FileType) -> Option<NodeKind> {
    Some(if ft.is_file() {
        return None;
    } else if ft.is_dir() {
        NodeKind::Directory
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else {
        NodeKind::Other
    })
}

/// One `fstat` of the open lock file.
pub(crate) fn inspect(file: &File) -> io::Result<Facts> {
    let meta = file.metadata()?;
    Ok(Facts {
        not_a_file: node_kind(&meta.file_type()),
        id: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        linked: meta.nlink() > 0,
        permissions: Some(meta.mode() & 0o7777),
    })
}

/// `fchmod` to the configured bits.
pub(crate) fn set_permissions(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

/// Unlocks, then closes. The file is never deleted on Unix: deleting a lock file lets two
/// holders exist at once (one on the unlinked inode, one on a new file).
pub(crate) fn release(file: File, _path: &Path, _preserve_lock_file: bool) -> io::Result<()> {
    let unlocked = super::unlock(&file);
    drop(file); // closing the descriptor releases the lock even if `unlock` failed
    unlocked
}
