//! [`open`]: the lock a spec string names, picked at run time.

use std::path::PathBuf;

use crate::display_text::redact;
use crate::{
    Error, FileLock, Lock, SoftFileLease, SoftFileLock, SoftReadWriteLock, StrictSoftFileLock,
};

/// The lock a spec names, with default settings:
///
/// | spec | lock |
/// |---|---|
/// | `PATH` (anything below) | [`FileLock`] on `PATH` |
/// | `soft:PATH` | [`SoftFileLock`] on `PATH` |
/// | `strict:PATH` | [`StrictSoftFileLock`] on `PATH` |
/// | `lease:PATH`, `lease:PATH?duration=30&heartbeat=10` | [`SoftFileLease`] on `PATH` ([`SoftFileLease::builder_from_spec`]) |
/// | `softrw:PATH`, `softrw:PATH?heartbeat=30&stale=90` | [`SoftReadWriteLock`] on `PATH` ([`SoftReadWriteLock::builder_from_spec`]) |
/// | `postgres://user@host:port/db?lock=NAME` (or `postgresql://`) | [`PgLock`](crate::postgres::PgLock) named `NAME` (feature `postgres`); the other query parameters are the connection's ([`PgLock::from_url`](crate::postgres::PgLock::from_url)) |
///
/// Touches nothing: no file is opened and no connection made until the first acquire.
///
/// # Errors
///
/// [`Error::InvalidSpec`] at once for an empty spec, an unknown `scheme://`, a
/// `postgres://` URL that does not parse or has no `lock=` name, or `postgres://` in a
/// build without feature `postgres`.
pub fn open(spec: &str) -> Result<Box<dyn Lock>, Error> {
    let invalid = |reason: &str| Error::InvalidSpec {
        path: PathBuf::from(redact(spec)),
        reason: reason.to_owned(),
    };
    if spec.is_empty() {
        return Err(invalid("the spec is empty"));
    }
    if let Some(path) = spec.strip_prefix("soft:") {
        if path.is_empty() {
            return Err(invalid("`soft:` needs a path after it"));
        }
        return Ok(Box::new(SoftFileLock::new(path)));
    }
    if let Some(path) = spec.strip_prefix("strict:") {
        if path.is_empty() {
            return Err(invalid("`strict:` needs a path after it"));
        }
        return Ok(Box::new(StrictSoftFileLock::new(path)));
    }
    if spec.starts_with("lease:") {
        return Ok(Box::new(SoftFileLease::builder_from_spec(spec)?.build()));
    }
    if spec.starts_with("softrw:") {
        return Ok(Box::new(
            SoftReadWriteLock::builder_from_spec(spec)?.build(),
        ));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Box::new(crate::postgres::PgLock::from_url(spec)?));
        #[cfg(not(feature = "postgres"))]
        return Err(invalid(
            "this build has no PostgreSQL backend (enable the crate's `postgres` feature)",
        ));
    }
    if let Some((scheme, _)) = spec.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(invalid(
            "unknown scheme (known: a path, `soft:PATH`, `strict:PATH`, `lease:PATH`, `softrw:PATH`, `postgres://...?lock=NAME`)",
        ));
    }
    Ok(Box::new(FileLock::new(spec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_pick_the_backend() {
        // An absolute path of this platform (a spec's path is made absolute, as every lock's).
        let tmp = std::env::temp_dir().join("x.lock");
        let t = tmp.to_str().unwrap();
        assert_eq!(open(t).unwrap().spec(), t);
        assert_eq!(
            open(&format!("soft:{t}")).unwrap().spec(),
            format!("soft:{t}")
        );
        assert!(matches!(open(""), Err(Error::InvalidSpec { .. })));
        assert!(matches!(open("soft:"), Err(Error::InvalidSpec { .. })));
        assert_eq!(
            open(&format!("strict:{t}")).unwrap().spec(),
            format!("strict:{t}")
        );
        assert!(matches!(open("strict:"), Err(Error::InvalidSpec { .. })));
        assert_eq!(
            open(&format!("lease:{t}?duration=1.5")).unwrap().spec(),
            format!("lease:{t}?duration=1.5&heartbeat=0.5")
        );
        assert_eq!(
            open(&format!("lease:{t}")).unwrap().spec(),
            format!("lease:{t}?duration=30&heartbeat=10")
        );
        for bad in [
            "lease:",
            "lease:?duration=3",
            "lease:/x?duration=0",
            "lease:/x?duration=-1",
            "lease:/x?duration=abc",
            "lease:/x?ttl=3",
            "lease:/x?duration",
        ] {
            assert!(matches!(open(bad), Err(Error::InvalidSpec { .. })), "{bad}");
        }
        assert!(matches!(
            open("redis://h/x"),
            Err(Error::InvalidSpec { .. })
        ));
        // A relative file name with a colon is a path (made absolute, as every lock path);
        // on Windows `a:` is a drive.
        #[cfg(unix)]
        {
            let spec = open("a:b.lock").unwrap().spec();
            assert!(std::path::Path::new(&spec).is_absolute(), "{spec}");
            assert!(spec.ends_with("/a:b.lock"), "{spec}");
        }
    }
}
