//! The protocol's files under the root `<lock>.rw/` (Python's `OsFiles`), with OS errors
//! turned into [`Error`]s that name the lock path.

use std::io;
use std::path::{Path, PathBuf};

use crate::sys::rw_records as sys;
use crate::sys::soft_calls::Node;
use crate::{Error, Op};

use super::{GENERATIONS, HOLDERS, MAX_RECORD_SIZE};

/// The root of one lock's protocol files.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    /// The lock path, as errors name it.
    lock: PathBuf,
    root: PathBuf,
    prepared: bool,
}

impl Files {
    /// The files of the lock `lock` (absolute, its parent resolved): `<lock>.rw/`.
    pub(crate) fn new(lock: &Path) -> Self {
        let mut root = lock.as_os_str().to_owned();
        root.push(".rw");
        Files {
            lock: lock.to_path_buf(),
            root: PathBuf::from(root),
            prepared: false,
        }
    }

    pub(crate) fn lock(&self) -> &Path {
        &self.lock
    }

    pub(crate) fn gen_dir(&self) -> PathBuf {
        self.root.join(GENERATIONS)
    }

    pub(crate) fn holder(&self, token: &str) -> PathBuf {
        self.root.join(HOLDERS).join(token)
    }

    pub(crate) fn holders_dir(&self) -> PathBuf {
        self.root.join(HOLDERS)
    }

    pub(crate) fn error(&self, op: Op, e: io::Error) -> Error {
        Error::io(&self.lock, op, e)
    }

    pub(crate) fn protocol(&self, reason: impl Into<String>) -> Error {
        Error::Protocol {
            path: self.lock.clone(),
            entry: None,
            reason: reason.into(),
        }
    }

    /// Creates the lock's parent, then `<lock>.rw/`, `gen/` and `holders/` owner-only
    /// (once per participant unless `force`d): a symlink or a file there is refused.
    pub(crate) fn prepare(&mut self, force: bool) -> Result<(), Error> {
        if self.prepared && !force {
            return Ok(());
        }
        if let Some(parent) = self.lock.parent() {
            sys::make_dirs(parent).map_err(|e| self.error(Op::CreateParent, e))?;
        }
        for dir in [self.root.clone(), self.gen_dir(), self.holders_dir()] {
            let is_dir =
                sys::make_private_dir(&dir).map_err(|e| self.error(Op::CreateParent, e))?;
            if !is_dir {
                return Err(self.protocol(format!(
                    "{} is not a directory or is a symlink; refusing to use it",
                    dir.display()
                )));
            }
        }
        self.prepared = true;
        Ok(())
    }

    /// The bytes of `path`, `None` when missing.
    pub(crate) fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        sys::read(path, MAX_RECORD_SIZE as u64 + 1).map_err(|e| self.error(Op::ReadLog, e))
    }

    /// Creates `path` exclusively: `Ok(Err(kind))` for `AlreadyExists` and `NotFound`, which
    /// the protocol handles.
    pub(crate) fn create(
        &self,
        path: &Path,
        data: &[u8],
        durable: bool,
        op: Op,
    ) -> Result<Result<Node, io::ErrorKind>, Error> {
        match sys::create(path, data, durable) {
            Ok(node) => Ok(Ok(node)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Err(e.kind())),
            Err(e) if sys::is_missing(&e) => Ok(Err(io::ErrorKind::NotFound)),
            Err(e) => Err(self.error(op, e)),
        }
    }

    /// Unlinks `path` (missing is fine); with a `witness`, only while the witness exists.
    pub(crate) fn unlink(&self, path: &Path, witness: Option<&Path>) -> Result<(), Error> {
        if witness.is_some_and(|w| sys::node(w).is_none()) {
            return Ok(());
        }
        sys::remove(path).map_err(|e| self.error(Op::WriteRecord, e))
    }

    /// Publishes `source` at `target` with a no-replace hard link: `true` when `target` is
    /// now `source`'s file (also when an NFS retransmission reported a done link as failed).
    pub(crate) fn link(&self, source: &Path, target: &Path) -> Result<bool, Error> {
        let failure = match sys::link(source, target) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
            Err(e) if sys::links_unsupported(&e) => {
                return Err(Error::Unsupported {
                    path: self.lock.clone(),
                    reason: "the file system does not support atomic no-replace hard-link publication",
                    source: Some(e),
                });
            }
            Err(e) => Some(e),
        };
        if let (Some(a), Some(b)) = (sys::node(source), sys::node(target))
            && a.same_file(&b)
        {
            return Ok(true);
        }
        match failure {
            Some(e) if sys::is_missing(&e) && self.read(source)?.is_none() => Ok(false),
            Some(e) => Err(self.error(Op::Commit, e)),
            None => Ok(false),
        }
    }

    /// Writes `data` to a temporary `staging` then renames it over `target`.
    pub(crate) fn replace_with(
        &self,
        target: &Path,
        staging: &Path,
        data: &[u8],
    ) -> io::Result<()> {
        sys::create(staging, data, false)?;
        let renamed = sys::replace(staging, target);
        if renamed.is_err() {
            let _ = sys::remove(staging);
        }
        renamed
    }

    /// Rewrites our record `path` in place if it is still the file `id` with `header`.
    pub(crate) fn overwrite(
        &self,
        path: &Path,
        data: &[u8],
        id: &Node,
        header: &[u8],
    ) -> io::Result<bool> {
        sys::overwrite(path, data, id, header)
    }

    /// The names in `dir`, at most `limit + 1`.
    pub(crate) fn list(&self, dir: &Path, limit: usize) -> Result<Vec<String>, Error> {
        sys::list(dir, limit).map_err(|e| self.error(Op::ReadLog, e))
    }
}
