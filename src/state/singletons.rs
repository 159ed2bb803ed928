//! Singleton handles: one lock state per path in this process, when asked for
//! (`FileLockBuilder::singleton`, Python filelock's `is_singleton`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use super::State;

static SINGLETONS: Mutex<BTreeMap<PathBuf, Weak<State>>> = Mutex::new(BTreeMap::new());

/// The lock state shared by every singleton handle of `path`.
///
/// Paths are compared after making them absolute (`std::path::absolute`: lexical, no file
/// system access), so `a.lock` and `./a.lock` are one lock, but two paths that reach the
/// same file through a symlinked directory are not.
pub(crate) fn singleton(path: &Path) -> Arc<State> {
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut map = crate::sync::lock(&SINGLETONS);
    if let Some(state) = map.get(&key).and_then(Weak::upgrade) {
        return state;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let state = Arc::new(State::new(Arc::from(path)));
    map.insert(key, Arc::downgrade(&state));
    state
}
