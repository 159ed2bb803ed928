//! File calls of the read-write soft protocol (Python filelock 4.3.1's `OsFiles`): records
//! created exclusively and owner-only, read without following a symlink or blocking on a
//! FIFO, published by a no-replace hard link, rewritten in place only when they are still
//! the file this process created. Missing files are `Ok(None)` / `Ok(false)` where the
//! protocol treats them as a normal outcome.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::soft_calls::{Node, fstat, lstat};

/// `true` for an error that means "no such entry" (NFS answers `ESTALE` after a peer
/// unlinks one).
pub(crate) fn is_missing(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::NotFound {
        return true;
    }
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ESTALE)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        options.mode(0o600);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        use windows_sys::Win32::Storage::FileSystem::{
            FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
        };
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        options.share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE);
    }
    options
}

/// Creates `path` with `data` (`O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW`, mode `0o600`), with an
/// `fsync` when `durable`. Returns the new file's node. A failed write removes the file.
pub(crate) fn create(path: &Path, data: &[u8], durable: bool) -> io::Result<Node> {
    let mut file = options().write(true).create_new(true).open(path)?;
    let written = file
        .write_all(data)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .and_then(|()| fstat(&file));
    if written.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    written
}

/// Reads at most `limit` bytes of `path`: `None` if it is missing, empty for anything but a
/// regular file.
pub(crate) fn read(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match options().read(true).open(path) {
        Ok(file) => file,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut content = Vec::new();
    if fstat(&file)?.regular {
        (&file).take(limit).read_to_end(&mut content)?;
    }
    Ok(Some(content))
}

/// The node at `path` (never followed), `None` if missing.
pub(crate) fn node(path: &Path) -> Option<Node> {
    lstat(path).ok()
}

/// Links `source` at `target`, never replacing an existing `target` (`AlreadyExists`).
pub(crate) fn link(source: &Path, target: &Path) -> io::Result<()> {
    fs::hard_link(source, target)
}

/// `true` for a link error that means this file system has no hard links.
pub(crate) fn links_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS | libc::EXDEV)
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Atomically replaces `target` with `source` (`rename(2)`).
pub(crate) fn replace(source: &Path, target: &Path) -> io::Result<()> {
    fs::rename(source, target)
}

/// Rewrites `path` from offset 0 with `data` (no truncation: a record keeps its length),
/// only if it is still the regular file `id` with one link and starts with `header`.
/// `Ok(false)` when it is missing or another file.
pub(crate) fn overwrite(path: &Path, data: &[u8], id: &Node, header: &[u8]) -> io::Result<bool> {
    let mut file = match options().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if is_missing(&e) => return Ok(false),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(false),
        Err(e) => return Err(e),
    };
    let found = fstat(&file)?;
    if !found.regular || !found.same_file(id) || links(&file)? != 1 {
        return Ok(false);
    }
    let mut start = vec![0; header.len()];
    let mut read = 0;
    while read < start.len() {
        match file.read(&mut start[read..])? {
            0 => return Ok(false),
            n => read += n,
        }
    }
    if start != header {
        return Ok(false);
    }
    write_at_start(&file, data)?;
    Ok(true)
}

#[cfg(unix)]
fn links(file: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink())
}

#[cfg(not(unix))]
fn links(_file: &File) -> io::Result<u64> {
    Ok(1) // not asked on Windows: std does not say (a record is never linked twice here)
}

#[cfg(unix)]
fn write_at_start(file: &File, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(data, 0)
}

#[cfg(windows)]
fn write_at_start(file: &File, data: &[u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0;
    while done < data.len() {
        match file.seek_write(&data[done..], done as u64)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Unlinks `path`; a missing one (or, on Windows, one still open elsewhere, left to a later
/// sweep) is no error.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) if cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// The names in `dir` (at most `limit + 1`; names that are not UTF-8 are left out, no
/// protocol name is one); empty if `dir` is missing.
pub(crate) fn list(dir: &Path, limit: usize) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries.take(limit.saturating_add(1)) {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Creates the directory `dir` owner-only (`0o700`, an existing one is fine), then checks
/// that `dir` is a directory and not a symlink: `Ok(false)` if it is not.
pub(crate) fn make_private_dir(dir: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    let builder = {
        use std::os::unix::fs::DirBuilderExt;
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o700);
        builder
    };
    #[cfg(not(unix))]
    let builder = fs::DirBuilder::new();
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(lstat(dir)?.directory)
}

/// Creates `dir` and its missing parents (default permissions).
pub(crate) fn make_dirs(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// `path` made absolute, with its parent directory resolved (symlinks) when it exists, the
/// last component kept as given (Python filelock's `canonical`). Only reads.
pub(crate) fn canonical(path: std::path::PathBuf) -> std::path::PathBuf {
    if path.as_os_str().is_empty() {
        return path;
    }
    let path = std::path::absolute(&path).unwrap_or(path);
    if cfg!(windows) {
        return path; // `canonicalize` would turn it into a `\\?\` path
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => match fs::canonicalize(parent) {
            Ok(parent) => parent.join(name),
            Err(_) => path,
        },
        _ => path,
    }
}
