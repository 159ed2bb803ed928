//! Claiming a marker name: the marker's mode, writing our record into a new marker, the
//! private name a breaker builds its marker under, and removing a marker only if it is ours.
//! Used by the attempt and by the take-over of a stale marker; it uses neither.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
#[cfg(unix)]
use std::io;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sys::soft_calls::{self as sys, Node};
use crate::sys::{self as os};
use crate::{Error, Op};

/// How often one attempt retries after a race (the marker vanished between seeing it and
/// reading it) before counting as contended.
pub(super) const MAX_RACES: usize = 8;

/// The mode the marker is created with when none is configured (reduced by the umask).
const DEFAULT_MODE: u32 = 0o666;

/// Group and other write bits: a marker never has them (Python filelock neither).
pub(super) const GROUP_OTHER_WRITE: u32 = 0o022;

pub(super) fn create_mode(permissions: Option<u32>) -> u32 {
    permissions.unwrap_or(DEFAULT_MODE) & !GROUP_OTHER_WRITE
}

/// Writes our `record` into `file` (just created at `path`), applies configured permissions.
/// On failure the marker is removed (identity-checked) and the error returned.
pub(super) fn publish(
    mut file: File,
    path: &Path,
    permissions: Option<u32>,
    record: &[u8],
) -> Result<File, Error> {
    if let Some(bits) = permissions {
        // Best effort, as Python: the umask reduced them at creation.
        let _ = os::set_permissions(&file, bits & !GROUP_OTHER_WRITE);
    }
    match file.write_all(record) {
        Ok(()) => Ok(file),
        Err(e) => {
            remove_if_ours(&file, path);
            Err(Error::io(path, Op::WriteMarker, e))
        }
    }
}

/// `true` when `path` still names the same unmodified node as `seen`.
pub(super) fn still(path: &Path, seen: &Node) -> bool {
    sys::lstat(path).is_ok_and(|now| now.same_version(seen))
}

/// Creates `<path>.break.<pid>.<32 hex>`, as Python filelock names it.
#[cfg(unix)]
pub(super) fn create_aside(
    path: &Path,
    permissions: Option<u32>,
) -> Result<(PathBuf, File), Error> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..MAX_RACES {
        let aside = aside_name(path);
        match sys::create_new(&aside, create_mode(permissions)) {
            Ok(file) => return Ok((aside, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(Error::io(path, Op::BreakStale, e)),
        }
    }
    Err(Error::io(path, Op::BreakStale, last))
}

/// `<path>.break.<pid>.<32 hex>`: a fresh name next to the lock file, as Python filelock
/// names it. When that would pass [`NAME_MAX`] (a lock file name over about 205 bytes),
/// the lock file's name is cut to fit in front of the same suffix: the name then no longer
/// starts with `<lock file name>.`, so Python, which looks for `<name>.break.<pid>.<hex>`
/// only, passes it over as it does any other file, and it always fits.
pub(super) fn aside_name(path: &Path) -> PathBuf {
    recovery_name(path, "break", std::process::id())
}

/// `<path>.<operation>.<pid>.<32 hex>` (`break` or `restore`), cut to fit as
/// [`aside_name`].
pub(super) fn recovery_name(path: &Path, operation: &str, pid: u32) -> PathBuf {
    let suffix = format!(".{operation}.{pid}.{}", random_hex());
    let Some(name) = path.file_name() else {
        // No final component (`..`, `/`): the lock attempt itself fails on such a path.
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        return PathBuf::from(name);
    };
    path.with_file_name(fitted_name(name, &suffix))
}

/// The longest file name, in bytes (UTF-16 units on Windows), that common file systems
/// accept: `NAME_MAX` of ext4, XFS, btrfs, tmpfs, APFS, NTFS.
const NAME_MAX: usize = 255;

/// `name` followed by `suffix` (ASCII, under 64 bytes), with `name` cut so that the whole
/// fits [`NAME_MAX`]; a UTF-8 (or UTF-16) character is never split.
#[cfg(unix)]
fn fitted_name(name: &std::ffi::OsStr, suffix: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = name.as_bytes();
    let mut cut = bytes.len().min(NAME_MAX.saturating_sub(suffix.len()));
    if let Ok(text) = std::str::from_utf8(bytes) {
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
    }
    let mut fitted = bytes[..cut].to_vec();
    fitted.extend_from_slice(suffix.as_bytes());
    std::ffi::OsString::from_vec(fitted)
}

#[cfg(windows)]
fn fitted_name(name: &std::ffi::OsStr, suffix: &str) -> std::ffi::OsString {
    use std::os::windows::ffi::{OsStrExt, OsStringExt};
    let units: Vec<u16> = name.encode_wide().collect();
    let mut cut = units.len().min(NAME_MAX.saturating_sub(suffix.len()));
    // Never split a surrogate pair (a low surrogate right after the cut).
    if cut > 0 && cut < units.len() && (0xDC00..0xE000).contains(&units[cut]) {
        cut -= 1;
    }
    let mut fitted = units[..cut].to_vec();
    fitted.extend(suffix.encode_utf16());
    std::ffi::OsString::from_wide(&fitted)
}

/// 32 hex digits, unpredictable enough for a private name (`O_EXCL` guarantees uniqueness).
pub(super) fn random_hex() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let first = a.finish();
    a.write_u64(first);
    format!("{first:016x}{:016x}", a.finish())
}

/// Unlinks `path` if it still names `file`'s inode.
pub(super) fn remove_if_ours(file: &File, path: &Path) {
    if let (Ok(ours), Ok(there)) = (sys::fstat(file), sys::lstat(path))
        && ours.same_file(&there)
    {
        let _ = sys::unlink(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aside_names_keep_pythons_form_when_it_fits() {
        let path = Path::new("/some/dir/t.lock");
        let aside = aside_name(path);
        assert_eq!(aside.parent(), path.parent());
        let name = aside.file_name().unwrap().to_str().unwrap();
        let prefix = format!("t.lock.break.{}.", std::process::id());
        let hex = name.strip_prefix(&prefix).expect(name);
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }

    #[test]
    fn aside_names_always_fit_name_max() {
        let suffix_len = format!(".break.{}.", std::process::id()).len() + 32;
        for len in [
            1,
            200,
            NAME_MAX - suffix_len,
            NAME_MAX - suffix_len + 1,
            250,
            255,
        ] {
            let long = "n".repeat(len);
            let aside = aside_name(&Path::new("/d").join(&long));
            assert_eq!(aside.parent(), Some(Path::new("/d")));
            let name = aside.file_name().unwrap().to_str().unwrap();
            assert!(name.len() <= NAME_MAX, "{len}: {} bytes", name.len());
            assert!(name.contains(&format!(".break.{}.", std::process::id())));
            if len + suffix_len > NAME_MAX {
                assert!(
                    !name.starts_with(&format!("{long}.")),
                    "a cut name is not taken for one of Python's"
                );
            }
        }
        // Multi-byte characters are never split.
        let aside = aside_name(&Path::new("/d").join("é".repeat(127)));
        let name = aside.file_name().unwrap().to_str().expect("valid UTF-8");
        // The limit counts bytes on Unix, UTF-16 units on Windows.
        let units = if cfg!(windows) {
            name.encode_utf16().count()
        } else {
            name.len()
        };
        assert!(units <= NAME_MAX, "{units}");
    }
}
