//! Windows: `CreateFileW` refusing reparse points, `LockFileEx` through std, best-effort
//! delete on release.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_EXISTS, ERROR_FILE_NOT_FOUND,
    ERROR_LOCK_VIOLATION, ERROR_PATH_NOT_FOUND, ERROR_SHARING_VIOLATION, HANDLE,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    FILE_STANDARD_INFO, FileStandardInfo, GetFileInformationByHandle, GetFileInformationByHandleEx,
};

use super::{Create, Facts, OpenFailure};
use crate::{Error, NodeKind, Op};

/// Volume serial number and file index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    volume: u32,
    index: u64,
}

/// Opens (creating if needed) the lock file, never following a reparse point (symlink,
/// junction) at the path: the handle is opened on the link itself and refused below.
/// `create` says whether it may or must create the file.
pub(crate) fn open(path: &Path, _mode: u32, create: Create) -> Result<File, OpenFailure> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create == Create::IfMissing)
        .create_new(create == Create::New)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
        .map_err(|e| classify_open_error(path, e))?;
    let attributes = file
        .metadata()
        .map_err(|e| OpenFailure::Fatal(Error::io(path, Op::Inspect, e)))?
        .file_attributes();
    if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(OpenFailure::Fatal(Error::NotAFile {
            path: path.to_path_buf(),
            kind: NodeKind::Symlink,
        }));
    }
    Ok(file)
}

fn classify_open_error(path: &Path, err: io::Error) -> OpenFailure {
    match err.raw_os_error().map(|c| c as u32) {
        Some(ERROR_FILE_EXISTS) | Some(ERROR_ALREADY_EXISTS) => OpenFailure::Exists,
        Some(ERROR_SHARING_VIOLATION) | Some(ERROR_LOCK_VIOLATION) => OpenFailure::Busy,
        Some(ERROR_FILE_NOT_FOUND) | Some(ERROR_PATH_NOT_FOUND) => OpenFailure::MissingParent,
        Some(ERROR_ACCESS_DENIED) => match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_attributes() & FILE_ATTRIBUTE_DIRECTORY != 0 => {
                OpenFailure::Fatal(Error::NotAFile {
                    path: path.to_path_buf(),
                    kind: NodeKind::Directory,
                })
            }
            _ => OpenFailure::Fatal(Error::io(path, Op::Open, err)),
        },
        _ => OpenFailure::Fatal(Error::io(path, Op::Open, err)),
    }
}

/// Identity, link count and delete-pending state of the open file.
pub(crate) fn inspect(file: &File) -> io::Result<Facts> {
    let handle = file.as_raw_handle() as HANDLE;
    let mut info = MaybeUninit::<BY_HANDLE_FILE_INFORMATION>::uninit();
    // SAFETY: `handle` is a valid open file handle borrowed from `file` for this call, and
    // `info` points to writable memory of the structure's size.
    if unsafe { GetFileInformationByHandle(handle, info.as_mut_ptr()) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it filled the whole structure.
    let info = unsafe { info.assume_init() };
    let mut standard = MaybeUninit::<FILE_STANDARD_INFO>::uninit();
    // SAFETY: as above; the buffer size passed is exactly the structure's size.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle,
            FileStandardInfo,
            standard.as_mut_ptr().cast(),
            std::mem::size_of::<FILE_STANDARD_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it filled the whole structure.
    let standard = unsafe { standard.assume_init() };
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
