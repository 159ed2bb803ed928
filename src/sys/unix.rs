//! Unix: `open(2)` with `O_NOFOLLOW|O_NONBLOCK`, `fstat(2)`, `flock(2)` through std.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{Create, Facts, OpenFailure};
use crate::NodeKind;

/// Device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl FileId {
    /// `true` when `node` (from `lstat`) is this file.
    pub(super) fn is(&self, node: &super::soft_calls::Node) -> bool {
        self.dev == node.dev && self.ino == node.ino
    }
}

/// Opens (creating if needed) the lock file: `O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK`,
/// never `O_TRUNC`. `O_NONBLOCK` keeps a FIFO planted at the path from hanging the open.
/// `create` says whether it may or must create the file.
///
/// An existing file that cannot be opened for writing (no write permission, a read-only
/// file system) is opened read-only: `flock` needs no write access, as `flock(1)` and std's
/// `File::lock` know. If that fails too, the first error is the one reported.
pub(crate) fn open(path: &Path, mode: u32, create: Create) -> Result<File, OpenFailure> {
    let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    let error = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create == Create::IfMissing)
        .create_new(create == Create::New)
        .mode(mode)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => return Ok(file),
        Err(error) => error,
    };
    if create != Create::New
        && matches!(error.raw_os_error(), Some(libc::EACCES) | Some(libc::EROFS))
    {
        // No `O_CREAT`: a missing file stays missing, and the write open's error stands.
        if let Ok(file) = OpenOptions::new().read(true).custom_flags(flags).open(path) {
            return Ok(file);
        }
    }
    Err(classify_open_error(path, error))
}

fn classify_open_error(path: &Path, err: io::Error) -> OpenFailure {
    match err.raw_os_error() {
        Some(libc::EINTR) => OpenFailure::Again,
        Some(libc::EEXIST) => OpenFailure::Exists,
        Some(libc::ENOENT) => OpenFailure::MissingParent,
        Some(libc::EISDIR) => OpenFailure::NotAFile(NodeKind::Directory),
        // O_NOFOLLOW on a symlink: ELOOP (Linux, macOS), EMLINK (FreeBSD). ENXIO: a socket.
        // Look at the node to say what it is; if it is not what we think, report the errno.
        Some(libc::ELOOP) | Some(libc::EMLINK) | Some(libc::ENXIO) | Some(libc::EOPNOTSUPP) => {
            match fs::symlink_metadata(path) {
                Ok(meta) => match node_kind(&meta.file_type()) {
                    Some(kind) => OpenFailure::NotAFile(kind),
                    None => OpenFailure::Failed(err),
                },
                Err(_) => OpenFailure::Failed(err),
            }
        }
        _ => OpenFailure::Failed(err),
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

/// What `path` names, without following a symlink or opening anything.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtPath {
    /// Nothing is there.
    Missing,
    /// A regular file with this identity.
    File(FileId),
    /// Something else.
    NotAFile(NodeKind),
}

/// One `lstat` of `path`: what is there (for finding a holder without opening the file).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn at_path(path: &Path) -> io::Result<AtPath> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AtPath::Missing),
        Err(e) => return Err(e),
    };
    Ok(match node_kind(&meta.file_type()) {
        Some(kind) => AtPath::NotAFile(kind),
        None => AtPath::File(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }),
    })
}

/// One `fstat` of the open lock file. (`File::metadata` would make a `statx` call, which
/// costs more and is on the path of every acquire.)
pub(crate) fn inspect(file: &File) -> io::Result<Facts> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the descriptor is open for the duration of the call (borrowed from `file`),
    // and `stat` points to writable memory the size of a `struct stat`.
    if unsafe { libc::fstat(file.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fstat` succeeded, so it filled the whole structure.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let (mode, dev, ino) = (stat.st_mode as u32, stat.st_dev as u64, stat.st_ino as u64);
    Ok(Facts {
        not_a_file: kind_of_mode(mode),
        id: FileId { dev, ino },
        linked: stat.st_nlink > 0,
        permissions: Some(mode & 0o7777),
    })
}

/// The identity of what `path` names now (`lstat(2)`: a symlink is not followed), `None`
/// when nothing is there. With [`inspect`] of a won lock file: does the path still name the
/// file that was locked?
pub(crate) fn path_id(path: &Path) -> io::Result<Option<FileId>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is a NUL-terminated string that lives for the duration of the call,
    // and `stat` points to writable memory the size of a `struct stat`.
    if unsafe { libc::lstat(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
            _ => Err(error),
        };
    }
    // SAFETY: `lstat` succeeded, so it filled the whole structure.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(Some(FileId {
        dev: stat.st_dev as u64,
        ino: stat.st_ino as u64,
    }))
}

/// What the `st_mode` file type bits say, `None` for a regular file.
fn kind_of_mode(mode: u32) -> Option<NodeKind> {
    #[allow(clippy::unnecessary_cast)] // `mode_t` is u16 on some platforms
    let kind = match mode & libc::S_IFMT as u32 {
        m if m == libc::S_IFREG as u32 => return None,
        m if m == libc::S_IFDIR as u32 => NodeKind::Directory,
        m if m == libc::S_IFLNK as u32 => NodeKind::Symlink,
        m if m == libc::S_IFIFO as u32 => NodeKind::Fifo,
        m if m == libc::S_IFSOCK as u32 => NodeKind::Socket,
        m if m == libc::S_IFBLK as u32 => NodeKind::BlockDevice,
        m if m == libc::S_IFCHR as u32 => NodeKind::CharDevice,
        _ => NodeKind::Other,
    };
    Some(kind)
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
