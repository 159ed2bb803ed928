//! Unix system calls of the soft (marker file) protocol: exclusive create, reading without
//! following or blocking, `lstat` identities, `renameat2(RENAME_EXCHANGE)` /
//! `renamex_np(RENAME_SWAP)`, `kill(pid, 0)` and `gethostname`.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

pub(crate) use super::marker_node::Node;

impl Node {
    fn of(meta: &fs::Metadata) -> Self {
        let ft = meta.file_type();
        Node {
            regular: ft.is_file(),
            directory: ft.is_dir(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// `lstat(2)`: never follows a symlink.
pub(crate) fn lstat(path: &Path) -> io::Result<Node> {
    fs::symlink_metadata(path).map(|m| Node::of(&m))
}

/// `fstat(2)`.
pub(crate) fn fstat(file: &File) -> io::Result<Node> {
    file.metadata().map(|m| Node::of(&m))
}

/// Creates a marker: `O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, `mode` reduced by the
/// umask. `O_EXCL` never follows a symlink, dangling or not: one at the path is `EEXIST`.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Opens a marker for reading, `O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` (a FIFO planted
/// in a race after the `lstat` does not hang the open), and reads at most `limit` bytes
/// when it is a regular file.
pub(crate) fn read_marker(path: &Path, limit: u64) -> io::Result<(File, Node, Vec<u8>)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let node = fstat(&file)?;
    let mut content = Vec::new();
    if node.regular {
        (&file).take(limit).read_to_end(&mut content)?;
    }
    Ok((file, node, content))
}

/// Opens a held lease's own marker to refresh its times (which its owner may do through a
/// read-only descriptor) and reads at most `limit` bytes of it: as [`read_marker`].
pub(crate) fn open_for_refresh(path: &Path, limit: u64) -> io::Result<(File, Vec<u8>)> {
    read_marker(path, limit).map(|(file, _, content)| (file, content))
}

/// Overwrites the start of `file` with `content` and cuts it there.
pub(crate) fn overwrite(file: &File, content: &[u8]) -> io::Result<()> {
    file.write_all_at(content, 0)?;
    file.set_len(content.len() as u64)
}

/// `unlink(2)`.
pub(crate) fn unlink(path: &Path) -> io::Result<()> {
    fs::remove_file(path)
}

/// `rename(2)`.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

/// The names in directory `dir` (`readdir`), in no order.
pub(crate) fn names_in(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect()
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Atomically exchanges the nodes at `a` and `b` (both must exist). `Unsupported` where the
/// platform or file system cannot (see [`exchange_unsupported`]).
pub(crate) fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    #[cfg(test)]
    if EXCHANGE_UNSUPPORTED.get() {
        // What NFS answers `renameat2(RENAME_EXCHANGE)`.
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (a, b) = (c_path(a)?, c_path(b)?);
    exchange_c(&a, &b)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn exchange_c(a: &CString, b: &CString) -> io::Result<()> {
    loop {
        // SAFETY: both pointers come from live `CString`s (NUL-terminated, valid for the
        // call); AT_FDCWD makes them relative to the working directory, as `rename` does.
        // The raw syscall is used because older glibc lacks the `renameat2` wrapper.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn exchange_c(a: &CString, b: &CString) -> io::Result<()> {
    // SAFETY: both pointers come from live `CString`s, valid for the call.
    let rc = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
fn exchange_c(_a: &CString, _b: &CString) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
thread_local! {
    /// Tests: make every [`exchange`] on this thread fail as on a file system without
    /// `RENAME_EXCHANGE` (NFS: `EINVAL`); none can be mounted on a test machine without
    /// privileges.
    static EXCHANGE_UNSUPPORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tests: while a value lives, every [`exchange`] on this thread fails as on a file system
/// that cannot exchange names (see `EXCHANGE_UNSUPPORTED`).
#[cfg(test)]
pub(crate) struct ExchangeUnsupported;

#[cfg(test)]
impl ExchangeUnsupported {
    pub(crate) fn on() -> Self {
        EXCHANGE_UNSUPPORTED.set(true);
        ExchangeUnsupported
    }
}

#[cfg(test)]
impl Drop for ExchangeUnsupported {
    fn drop(&mut self) {
        EXCHANGE_UNSUPPORTED.set(false);
    }
}

/// `true` when an exchange error means "this platform or file system cannot exchange"
/// (Python filelock gives up breaking on the same errors).
pub(crate) fn exchange_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EXDEV) | Some(libc::EOPNOTSUPP)
        )
}

/// Whether process `pid` exists: `kill(pid, 0)`. `ESRCH` is "gone"; `EPERM` (exists, not
/// ours to signal) and any other error count as alive: only proof of death breaks a lock.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true; // 0 and negatives address process groups: never probe those
    }
    // SAFETY: signal 0 sends nothing; it only checks that `pid` exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// `gethostname(2)`, as raw bytes (empty on failure).
pub(crate) fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call; the kernel
    // writes at most `len` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Vec::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf[..end].to_vec()
}

/// Whether this process may write the file at `path`, as Python filelock's
/// `raise_on_not_writable_file` asks it: a file whose owner-write bit is set counts as
/// writable (another user's marker is read, not written); otherwise `access(W_OK)` with the
/// effective ids decides (ACLs, group bits, root). `true` when it cannot tell (the file is
/// gone, or the call fails for another reason than `EACCES`/`EROFS`): the caller then goes
/// on as before.
pub(crate) fn may_write(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return true;
    };
    // The owner-write bit, `S_IWUSR` (whose type differs between platforms).
    if meta.permissions().mode() & 0o200 != 0 {
        return true;
    }
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: `path` is a NUL-terminated string that lives for the duration of the call.
    let rc =
        unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    rc == 0
        || !matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EACCES) | Some(libc::EROFS)
        )
}

/// macOS: the raw `kinfo_proc` of process `pid`, from `sysctl(CTL_KERN, KERN_PROC,
/// KERN_PROC_PID, pid)` (size probe, then the read), as Python filelock reads it for the
/// start token. `NotFound` for a PID that is gone (the read returns nothing).
#[cfg(target_os = "macos")]
pub(crate) fn kinfo_proc(pid: u32) -> io::Result<Vec<u8>> {
    let pid =
        libc::c_int::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
    let mut len: libc::size_t = 0;
    // SAFETY: `mib` holds the 4 names passed; a null buffer asks for the size only, which
    // the kernel writes to `len`, a live local.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            4,
            std::ptr::null_mut(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is `len` writable bytes and outlives the call; the kernel writes at most
    // `len` bytes and stores the count it wrote in `len`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            4,
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len == 0 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    buf.truncate(len);
    Ok(buf)
}
