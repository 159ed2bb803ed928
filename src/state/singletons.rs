//! Singleton handles: one lock state per lock file and lock kind in this process, when
//! asked for (`FileLockBuilder::singleton`, Python filelock's `is_singleton`).

use std::collections::HashMap;
use std::mem::Discriminant;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use super::State;
use crate::attempt::Protocol;

/// One registry per protocol (Python keeps one per lock class): a `FileLock` and a
/// `SoftFileLock` of one path are different locks.
type Registry = HashMap<(Discriminant<Protocol>, PathBuf), Weak<State>>;

static SINGLETONS: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The lock state shared by every singleton handle of `path` speaking `protocol`.
///
/// Paths are compared by [`canonical`]: `link/a` through a symlinked directory,
/// `sub/../a` and `a` are one lock, as in Python filelock.
pub(crate) fn singleton(path: &Path, protocol: Protocol) -> Arc<State> {
    let key = (std::mem::discriminant(&protocol), canonical(path));
    let mut map = crate::sync::lock(&SINGLETONS);
    if let Some(state) = map.get(&key).and_then(Weak::upgrade) {
        return state;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let state = Arc::new(State::new(Arc::from(path)));
    map.insert(key, Arc::downgrade(&state));
    state
}

/// `path` with its parent directory resolved (symlinks, `.` and `..`), and its file name
/// as given, as Python filelock's registry key: the file name is not resolved, so a
/// symlink at the lock path (which an acquire refuses) is not confused with its target.
/// Reads the file system once, at construction; a part of the parent that does not exist
/// yet is kept as spelled below its deepest existing ancestor.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            resolve_dir(parent).join(name)
        }
        _ => path.to_path_buf(),
    }
}

fn resolve_dir(dir: &Path) -> PathBuf {
    if let Ok(resolved) = std::fs::canonicalize(dir) {
        return resolved;
    }
    match (dir.parent(), dir.file_name()) {
        (Some(up), Some(name)) if !up.as_os_str().is_empty() => resolve_dir(up).join(name),
        _ => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn a_missing_parent_is_kept_below_its_resolved_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let path = dir.path().join("not/yet/x.lock");
        assert_eq!(canonical(&path), real.join("not/yet/x.lock"));
    }
}
