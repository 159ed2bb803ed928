//! Whether a directory is on a file system known to be local, where a non-blocking lock
//! call (and the open of an existing file) waits on no one: no server, no daemon, no
//! network. The drivers make such calls inline on a Tokio worker; everything else keeps
//! the hop to the blocking pool (DESIGN semantics 4). Unknown means "not local".

use std::io;
use std::path::Path;

/// `Ok(true)` when `dir` is on a local file system (Linux: by `statfs` magic, a list of
/// disk and memory file systems; macOS and the BSDs: `MNT_LOCAL`, except FUSE). Network
/// file systems (NFS, CIFS/SMB, Ceph, Lustre, 9p, AFS, GFS2, OCFS2), FUSE and anything not
/// listed are `Ok(false)`. One `statfs`, which may itself wait on a network file system:
/// call it where waiting is allowed.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn is_local(dir: &Path) -> io::Result<bool> {
    let magic = statfs(dir)?.f_type as u32;
    Ok(linux_magic_is_local(magic))
}

/// The `statfs` magic numbers of local file systems (linux/magic.h).
#[cfg(any(target_os = "linux", target_os = "android", test))]
const LOCAL_MAGICS: &[(u32, &str)] = &[
    (0xEF53, "ext2/3/4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0xF2F5_2010, "f2fs"),
    (0x2FC1_2FC1, "zfs"),
    (0xCA45_1A4E, "bcachefs"),
    (0x794C_7630, "overlayfs"),
    (0x5265_4973, "reiserfs"),
    (0x3153_464A, "jfs"),
    (0x3434, "nilfs2"),
    (0x4D44, "vfat"),
    (0x2011_BAB0, "exfat"),
    (0x5346_544E, "ntfs3"),
    (0xE0F5_E1E2, "erofs"),
    (0x7371_7368, "squashfs"),
];

#[cfg(any(target_os = "linux", target_os = "android", test))]
fn linux_magic_is_local(magic: u32) -> bool {
    LOCAL_MAGICS.iter().any(|&(m, _)| m == magic)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn statfs(dir: &Path) -> io::Result<libc::statfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: all zeroes is a valid `struct statfs` (plain data), filled in by the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `c` is a NUL-terminated path and `buf` a valid `struct statfs`.
        if unsafe { libc::statfs(c.as_ptr(), &mut buf) } == 0 {
            return Ok(buf);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
pub(crate) fn is_local(dir: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: all zeroes is a valid `struct statfs` (plain data), filled in by the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `c` is a NUL-terminated path and `buf` a valid `struct statfs`.
        if unsafe { libc::statfs(c.as_ptr(), &mut buf) } == 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let name: Vec<u8> = buf
        .f_fstypename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let fuse = name.starts_with(b"fuse") || name.ends_with(b"fuse");
    // The types differ: `u32` and `c_int` on macOS, `u64` on FreeBSD.
    #[allow(clippy::unnecessary_cast)]
    let local = buf.f_flags as u64 & libc::MNT_LOCAL as u64 != 0;
    Ok(local && !fuse)
}

/// Elsewhere (Windows, other Unixes): not known, so never inline.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
pub(crate) fn is_local(_dir: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_fuse_magics_are_not_local() {
        for (magic, name) in [
            (0x6969, "nfs"),
            (0xFF53_4D42, "cifs"),
            (0xFE53_4D42, "smb2"),
            (0x6573_5546, "fuse"),
            (0x0BD0_0BD0, "lustre"),
            (0x00C3_6400, "ceph"),
            (0x0102_1997, "9p"),
            (0x0112_1997, "unknown"),
        ] {
            assert!(!linux_magic_is_local(magic), "{name} counted as local");
        }
        assert!(linux_magic_is_local(0xEF53), "ext4");
        assert!(linux_magic_is_local(0x0102_1994), "tmpfs");
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn a_temporary_directory_is_on_a_local_file_system() {
        // Test machines keep temporary files on a disk or in memory.
        let dir = tempfile::tempdir().unwrap();
        assert!(is_local(dir.path()).unwrap());
        assert!(is_local(&dir.path().join("missing")).is_err());
    }
}
