//! Windows system calls of the soft (marker file) protocol, the same surface as
//! `unix_soft`: exclusive create and reads that never follow a reparse point, identities
//! (volume serial and file index), process liveness and start time, the host name.
//!
//! Markers are opened sharing read, write and delete, so that contenders can read a held
//! marker and a breaker can move a stale one. A delete-pending marker (deleted while still
//! open elsewhere) reads as gone and creates as existing: only time resolves it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::windows::ffi::OsStringExt;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_INVALID_PARAMETER, ERROR_SHARING_VIOLATION, FILETIME, HANDLE, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_BASIC_INFO,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_GENERIC_READ, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_ATTRIBUTES, FileBasicInfo,
};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNamePhysicalDnsHostname, GetComputerNameExW,
};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
    WaitForSingleObject,
};

use super::windows::{handle_info, handle_info_ex, is_delete_pending};

const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

pub(crate) use super::marker_node::Node;

/// The node at `path` itself, never what a reparse point names. A delete-pending node is
/// `NotFound`: it is on its way out.
pub(crate) fn lstat(path: &Path) -> io::Result<Node> {
    let file = OpenOptions::new()
        .access_mode(0) // attributes only
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
        .map_err(pending_is_gone)?;
    fstat(&file)
}

/// The node of an open handle.
pub(crate) fn fstat(file: &File) -> io::Result<Node> {
    let info = handle_info(file)?;
    // SAFETY: FILE_BASIC_INFO is the structure of FileBasicInfo.
    let basic: FILE_BASIC_INFO = unsafe { handle_info_ex(file, FileBasicInfo) }?;
    let reparse = info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0;
    let directory = info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY != 0;
    Ok(Node {
        regular: !reparse && !directory,
        directory: directory && !reparse,
        dev: u64::from(info.dwVolumeSerialNumber),
        ino: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        mtime_ns: filetime_ns(info.ftLastWriteTime),
        ctime_ns: i128::from(basic.ChangeTime) * 100,
    })
}

fn filetime_ns(t: FILETIME) -> i128 {
    ((i128::from(t.dwHighDateTime) << 32) | i128::from(t.dwLowDateTime)) * 100
}

/// Creates a marker (`CREATE_NEW`: fails on any node at the path, reparse points
/// included). Windows has no mode bits: `mode` is ignored. A delete-pending node there is
/// `AlreadyExists`.
pub(crate) fn create_new(path: &Path, _mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
        .map_err(|e| {
            if is_delete_pending(&e) {
                io::Error::new(io::ErrorKind::AlreadyExists, e)
            } else {
                e
            }
        })
}

/// Opens a marker for reading without following a reparse point, and reads at most
/// `limit` bytes when it is a plain file.
pub(crate) fn read_marker(path: &Path, limit: u64) -> io::Result<(File, Node, Vec<u8>)> {
    let file = OpenOptions::new()
        .read(true)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
        .map_err(pending_is_gone)?;
    let node = fstat(&file)?;
    let mut content = Vec::new();
    if node.regular {
        (&file).take(limit).read_to_end(&mut content)?;
    }
    Ok((file, node, content))
}

/// Opens a held lease's own marker to refresh its times (read access and the right to
/// write attributes, never following a reparse point) and reads at most `limit` bytes.
pub(crate) fn open_for_refresh(path: &Path, limit: u64) -> io::Result<(File, Vec<u8>)> {
    let file = OpenOptions::new()
        .access_mode(FILE_GENERIC_READ | FILE_WRITE_ATTRIBUTES)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
        .map_err(pending_is_gone)?;
    let mut content = Vec::new();
    (&file).take(limit).read_to_end(&mut content)?;
    Ok((file, content))
}

fn pending_is_gone(e: io::Error) -> io::Error {
    if is_delete_pending(&e) {
        io::Error::new(io::ErrorKind::NotFound, e)
    } else {
        e
    }
}

/// Overwrites the start of `file` with `content` and cuts it there.
pub(crate) fn overwrite(file: &File, content: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < content.len() {
        match file.seek_write(&content[written..], written as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.set_len(content.len() as u64)
}

/// Deletes the node at `path`.
pub(crate) fn unlink(path: &Path) -> io::Result<()> {
    fs::remove_file(path)
}

/// Renames `from` to `to` (a fresh name).
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

/// Whether `e` is `ERROR_SHARING_VIOLATION`: another process has the file open without
/// sharing the access asked for (a [`rename`] of a marker a live holder keeps open).
pub(crate) fn is_sharing_violation(e: &io::Error) -> bool {
    e.raw_os_error() == Some(ERROR_SHARING_VIOLATION as i32)
}

/// Makes `link` a second name of the file at `original`.
pub(crate) fn hard_link(original: &Path, link: &Path) -> io::Result<()> {
    fs::hard_link(original, link)
}

/// A process handle, closed when dropped.
struct Process(HANDLE);

impl Process {
    /// `None` when the process cannot be opened; `Err` carries why.
    fn open(pid: u32, access: u32) -> Result<Process, io::Error> {
        // SAFETY: plain call with no pointers; a null result is an error, checked.
        let handle = unsafe { OpenProcess(access, 0, pid) };
        if handle.is_null() {
            Err(io::Error::last_os_error())
        } else {
            Ok(Process(handle))
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful OpenProcess and is closed only here.
        unsafe { CloseHandle(self.0) };
    }
}

/// Whether process `pid` runs, as Python filelock checks it on Windows:
/// `OpenProcess(SYNCHRONIZE)` then a zero wait. "No such process" (`ERROR_INVALID_PARAMETER`)
/// and a signalled (exited) process are gone; any other failure (access denied) counts as
/// alive: only proof of death breaks a lock.
pub(crate) fn process_alive(pid: u32) -> bool {
    match Process::open(pid, PROCESS_SYNCHRONIZE) {
        Ok(process) => {
            // SAFETY: a valid process handle; a zero timeout never blocks.
            let waited = unsafe { WaitForSingleObject(process.0, 0) };
            waited == WAIT_TIMEOUT
        }
        Err(e) => e.raw_os_error() != Some(ERROR_INVALID_PARAMETER as i32),
    }
}

/// The creation time of process `pid` as Python filelock records it on Windows: the
/// `FILETIME` from `GetProcessTimes` as `(high << 32) | low` (100 ns units since 1601).
/// `None` when the process cannot be queried.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let process = Process::open(pid, PROCESS_QUERY_LIMITED_INFORMATION).ok()?;
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: a valid process handle and four writable FILETIMEs that outlive the call.
    let ok =
        unsafe { GetProcessTimes(process.0, &mut created, &mut exited, &mut kernel, &mut user) };
    (ok != 0).then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
}

/// The host name as Python's `socket.gethostname()` returns it on Windows
/// (`GetComputerNameExW(ComputerNamePhysicalDnsHostname)`), UTF-8 (empty on failure).
pub(crate) fn hostname() -> Vec<u8> {
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: the pointer and length describe `buf`, which outlives the call; on success
    // `len` is the number of characters written, without the terminating NUL.
    let ok =
        unsafe { GetComputerNameExW(ComputerNamePhysicalDnsHostname, buf.as_mut_ptr(), &mut len) };
    if ok == 0 {
        return Vec::new();
    }
    let name = OsString::from_wide(&buf[..(len as usize).min(buf.len())]);
    name.to_string_lossy().into_owned().into_bytes()
}

/// Whether this process may write the file at `path`, as Python filelock's
/// `raise_on_not_writable_file` asks it on Windows: not when its read-only attribute is
/// set. `true` when it cannot tell.
pub(crate) fn may_write(path: &Path) -> bool {
    fs::symlink_metadata(path).map_or(true, |meta| !meta.permissions().readonly())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_has_a_stable_start() {
        let pid = std::process::id();
        assert!(process_alive(pid));
        let start = process_start(pid).expect("our own start time");
        assert_ne!(start, 0);
        assert_eq!(process_start(pid), Some(start));
    }

    #[test]
    fn an_exited_process_is_gone() {
        let mut child = std::process::Command::new("cmd")
            .args(["/C", "exit"])
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        drop(child); // closes our handle: nothing keeps the process object alive
        assert!(!process_alive(pid));
    }

    #[test]
    fn the_host_name_is_known() {
        assert!(!hostname().is_empty());
    }

    #[test]
    fn a_node_is_the_same_file_across_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let file = create_new(&a, 0o644).unwrap();
        let before = lstat(&a).unwrap();
        assert!(before.regular && !before.directory);
        assert!(fstat(&file).unwrap().same_version(&before));
        rename(&a, &b).unwrap();
        assert!(lstat(&b).unwrap().same_version(&before));
        assert_eq!(lstat(&a).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(lstat(dir.path()).unwrap().directory);
    }
}
