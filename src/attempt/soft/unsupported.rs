//! Platforms without the soft protocol (neither Unix nor Windows): every attempt is
//! `Unsupported`.

use std::fs::File;
use std::path::Path;

use crate::Error;
use crate::sys::FileId;

/// Never constructed here: the attempt fails first.
#[allow(dead_code)] // the shape the attempt layer matches on
#[derive(Debug)]
pub(crate) enum SoftOutcome {
    Won(File),
    Busy(Option<FileId>),
    MissingParent,
}

fn unsupported(path: &Path) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        reason: "the soft lock is implemented on Unix and Windows only",
        source: None,
    }
}

pub(crate) fn attempt_as(
    path: &Path,
    _permissions: Option<u32>,
    _flavour: super::Flavour,
    _lifetime: Option<std::time::Duration>,
) -> Result<SoftOutcome, Error> {
    Err(unsupported(path))
}

pub(crate) fn adopt(_file: File, path: &Path, _permissions: Option<u32>) -> Result<File, Error> {
    Err(unsupported(path))
}

pub(crate) fn holder(_path: &Path) -> Option<crate::Holder> {
    None
}

pub(crate) fn found(_path: &Path) -> crate::attempt::Found {
    crate::attempt::Found::default()
}

pub(crate) fn release(_file: File, path: &Path) -> Result<(), Error> {
    Err(unsupported(path))
}

pub(crate) fn recorded_pid(_path: &Path) -> Option<u32> {
    None
}

pub(crate) fn names_us(_path: &Path) -> bool {
    false
}

pub(crate) fn break_marker(path: &Path) -> Result<bool, Error> {
    Err(unsupported(path))
}
