//! Windows: `CreateFileW` refusing reparse points, `LockFileEx` through std, best-effort
//! delete on release.
//!
//! The lock file is opened without `FILE_SHARE_DELETE`, as Python `filelock` opens it: a
//! holder's delete on release then fails (sharing violation, ignored) while any other
//! process has the file open, so a file that someone holds or is about to lock is never
//! deleted under them (with Windows 10's POSIX delete semantics the name would vanish and a
//! newcomer could create and lock a second file: two holders).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_DELETE_PENDING, ERROR_FILE_EXISTS,
    ERROR_FILE_NOT_FOUND, ERROR_LOCK_VIOLATION, ERROR_PATH_NOT_FOUND, ERROR_SHARING_VIOLATION,
    HANDLE, NTSTATUS, STATUS_DELETE_PENDING,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_INFO_BY_HANDLE_CLASS,
    FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_STANDARD_INFO,
    FileStandardInfo, GetFileInformationByHandle, GetFileInformationByHandleEx,
};

use super::{Create, Facts, OpenFailure};
use crate::NodeKind;

/// Volume serial number and file index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    volume: u32,
    index: u64,
}

impl FileId {
    /// `true` when `node` (from `lstat`) is this file.
    pub(super) fn is(&self, node: &super::soft_calls::Node) -> bool {
        u64::from(self.volume) == node.dev && self.index == node.ino
    }
}

/// Opens (creating if needed) the lock file, never following a reparse point (symlink,
/// junction) at the path: the handle is opened on the link itself and refused below.
/// `create` says whether it may or must create the file.
///
/// An existing file that cannot be opened for writing (a read-only attribute, an ACL that
/// grants read only) is opened for reading: `LockFileEx` needs `GENERIC_READ` or
/// `GENERIC_WRITE`, either one. (Windows can still refuse where Unix would not: a file
/// another process opened without `FILE_SHARE_READ`.)
pub(crate) fn open(path: &Path, _mode: u32, create: Create) -> Result<File, OpenFailure> {
    let options = |write: bool| {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(write)
            .create(write && create == Create::IfMissing)
            .create_new(write && create == Create::New)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        options
    };
    let file = match options(true).open(path) {
        Ok(file) => file,
        Err(e) => {
            // The NT status must be read first: any later call may overwrite it.
            let failure = classify_open_error(path, e, last_nt_status());
            match failure {
                OpenFailure::Failed(ref source)
                    if create != Create::New
                        && source.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) =>
                {
                    options(false).open(path).map_err(|_| failure)?
                }
                failure => return Err(failure),
            }
        }
    };
    let attributes = file
        .metadata()
        .map_err(OpenFailure::InspectFailed)?
        .file_attributes();
    match node_kind(attributes) {
        Some(kind) => Err(OpenFailure::NotAFile(kind)),
        None => Ok(file),
    }
}

/// What a node with these attributes is, `None` for a plain file. A reparse point
/// (symlink, junction, mount point) counts as a symlink even when it is a directory.
fn node_kind(attributes: u32) -> Option<NodeKind> {
    if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        Some(NodeKind::Symlink)
    } else if attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        Some(NodeKind::Directory)
    } else {
        None
    }
}

/// Whether a failed open only says "someone else has this file right now": a sharing
/// violation, or a file deleted while open elsewhere (delete pending). Win32 reports a
/// delete-pending file as `ERROR_ACCESS_DENIED`, the same code as a missing permission;
/// only the thread's last NT status (`STATUS_DELETE_PENDING`) tells them apart.
fn is_contention(win32: u32, nt_status: NTSTATUS) -> bool {
    match win32 {
        ERROR_SHARING_VIOLATION | ERROR_LOCK_VIOLATION | ERROR_DELETE_PENDING => true,
        ERROR_ACCESS_DENIED => nt_status == STATUS_DELETE_PENDING,
        _ => false,
    }
}

fn classify_open_error(path: &Path, err: io::Error, nt_status: NTSTATUS) -> OpenFailure {
    let Some(code) = err.raw_os_error().map(|c| c as u32) else {
        return OpenFailure::Failed(err);
    };
    match code {
        _ if is_contention(code, nt_status) => OpenFailure::Busy,
        ERROR_FILE_EXISTS | ERROR_ALREADY_EXISTS => OpenFailure::Exists,
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => OpenFailure::MissingParent,
        // A directory (or a directory junction) cannot be opened as a file: say what it
        // is. Anything else denied is a missing permission (or a read-only file).
        ERROR_ACCESS_DENIED => match fs::symlink_metadata(path)
            .ok()
            .and_then(|meta| node_kind(meta.file_attributes()))
        {
            Some(kind) => OpenFailure::NotAFile(kind),
            None => OpenFailure::Failed(err),
        },
        _ => OpenFailure::Failed(err),
    }
}

#[link(name = "ntdll")]
unsafe extern "system" {
    /// The NT status behind the thread's last Win32 error (ntdll; Windows XP and later,
    /// and wine). Not in `windows-sys`.
    fn RtlGetLastNtStatus() -> NTSTATUS;
}

/// Whether `e`, just returned by a failed open on this thread, means a delete-pending file.
/// Call it before any other system call: it reads the thread's last NT status.
pub(super) fn is_delete_pending(e: &io::Error) -> bool {
    match e.raw_os_error().map(|c| c as u32) {
        Some(ERROR_DELETE_PENDING) => true,
        Some(ERROR_ACCESS_DENIED) => last_nt_status() == STATUS_DELETE_PENDING,
        _ => false,
    }
}

fn last_nt_status() -> NTSTATUS {
    // SAFETY: takes no arguments and only reads the calling thread's TEB.
    unsafe { RtlGetLastNtStatus() }
}

/// `GetFileInformationByHandle` of an open file: attributes, times, volume and index.
pub(super) fn handle_info(file: &File) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    let mut info = MaybeUninit::<BY_HANDLE_FILE_INFORMATION>::uninit();
    // SAFETY: the handle is valid, borrowed from `file` for this call, and `info` points to
    // writable memory of the structure's size.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, info.as_mut_ptr()) } == 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it filled the whole structure.
    Ok(unsafe { info.assume_init() })
}

/// `GetFileInformationByHandleEx` of an open file for `class`.
///
/// # Safety
/// `T` must be the structure Windows fills for `class` (`FILE_STANDARD_INFO` for
/// `FileStandardInfo`, `FILE_BASIC_INFO` for `FileBasicInfo`, ...).
pub(super) unsafe fn handle_info_ex<T>(
    file: &File,
    class: FILE_INFO_BY_HANDLE_CLASS,
) -> io::Result<T> {
    let mut info = MaybeUninit::<T>::uninit();
    // SAFETY: the handle is valid, borrowed from `file` for this call; the buffer is
    // writable and exactly `size_of::<T>()` bytes, the size passed.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            file.as_raw_handle() as HANDLE,
            class,
            info.as_mut_ptr().cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded and, by the caller's promise, `T` is what it fills.
    Ok(unsafe { info.assume_init() })
}

/// Identity, link count and delete-pending state of the open file.
pub(crate) fn inspect(file: &File) -> io::Result<Facts> {
    let info = handle_info(file)?;
    // SAFETY: FILE_STANDARD_INFO is the structure of FileStandardInfo.
    let standard: FILE_STANDARD_INFO = unsafe { handle_info_ex(file, FileStandardInfo) }?;
    let directory = info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY != 0;
    Ok(Facts {
        not_a_file: directory.then_some(NodeKind::Directory),
        id: FileId {
            volume: info.dwVolumeSerialNumber,
            index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        },
        linked: info.nNumberOfLinks > 0 && !standard.DeletePending,
        permissions: None,
    })
}

/// The identity of what `path` names now (opened for its attributes only, sharing
/// everything, on the reparse point itself if it is one), `None` when nothing is there or
/// it is being deleted. With [`inspect`] of a won lock file: does the path still name the
/// file that was locked?
pub(crate) fn path_id(path: &Path) -> io::Result<Option<FileId>> {
    let opened = OpenOptions::new()
        .access_mode(FILE_READ_ATTRIBUTES)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) => {
            let nt_status = last_nt_status();
            return match error.raw_os_error().map(|c| c as u32) {
                Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => Ok(None),
                Some(code) if is_contention(code, nt_status) => Ok(None),
                _ => Err(error),
            };
        }
    };
    let info = handle_info(&file)?;
    Ok(Some(FileId {
        volume: info.dwVolumeSerialNumber,
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    }))
}

/// Windows has no Unix permission bits: the configured mode is ignored.
pub(crate) fn set_permissions(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Releases by closing the handle (which drops the `LockFileEx` lock; `UnlockFile` is not
/// needed and misbehaves under wine), then deletes the file, best effort, unless asked to
/// keep it.
pub(crate) fn release(file: File, path: &Path, preserve_lock_file: bool) -> io::Result<()> {
    drop(file);
    if !preserve_lock_file {
        // Another process may have it open or locked already: that is fine, it stays.
        let _ = fs::remove_file(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use windows_sys::Win32::Foundation::{
        ERROR_INVALID_NAME, STATUS_ACCESS_DENIED, STATUS_OBJECT_NAME_NOT_FOUND,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_READONLY,
    };

    use super::*;

    #[test]
    fn reparse_points_are_refused_even_when_they_are_directories() {
        // What a symlink, a directory symlink and a junction carry. (wine 8 cannot create
        // symlinks, so this mapping is all that can be checked off Windows.)
        assert_eq!(
            node_kind(FILE_ATTRIBUTE_REPARSE_POINT),
            Some(NodeKind::Symlink)
        );
        assert_eq!(
            node_kind(FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY),
            Some(NodeKind::Symlink)
        );
        assert_eq!(
            node_kind(FILE_ATTRIBUTE_DIRECTORY),
            Some(NodeKind::Directory)
        );
        for plain in [
            FILE_ATTRIBUTE_NORMAL,
            FILE_ATTRIBUTE_ARCHIVE,
            FILE_ATTRIBUTE_READONLY,
        ] {
            assert_eq!(node_kind(plain), None);
        }
    }

    #[test]
    fn delete_pending_and_sharing_violation_are_contention_access_denied_is_not() {
        assert!(is_contention(ERROR_SHARING_VIOLATION, 0));
        assert!(is_contention(ERROR_LOCK_VIOLATION, 0));
        assert!(is_contention(ERROR_DELETE_PENDING, 0));
        assert!(is_contention(ERROR_ACCESS_DENIED, STATUS_DELETE_PENDING));
        assert!(!is_contention(ERROR_ACCESS_DENIED, STATUS_ACCESS_DENIED));
        assert!(!is_contention(ERROR_ACCESS_DENIED, 0));
        assert!(!is_contention(ERROR_INVALID_NAME, STATUS_DELETE_PENDING));
    }

    #[test]
    fn the_nt_status_of_a_failed_open_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        assert!(File::open(&path).is_err());
        assert_eq!(last_nt_status(), STATUS_OBJECT_NAME_NOT_FOUND);
    }

    #[test]
    fn an_access_denied_open_is_a_typed_permission_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denied.lock");
        let err = io::Error::from_raw_os_error(ERROR_ACCESS_DENIED as i32);
        match classify_open_error(&path, err, STATUS_ACCESS_DENIED) {
            OpenFailure::Failed(source) => {
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied)
            }
            other => panic!("expected a permission error, got {other:?}"),
        }
    }
}
