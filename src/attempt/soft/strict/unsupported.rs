//! Platforms without the strict protocol here (Windows, where Python publishes claims by
//! renaming open files with delete dispositions): every attempt reports
//! `Error::Unsupported`.

use std::fs::File;
use std::path::Path;

use super::Claim;
use crate::Error;
use crate::attempt::Found;

const REASON: &str = "the strict soft lock is only available on Unix in this version";

fn unsupported(lock: &Path) -> Error {
    Error::Unsupported {
        path: lock.to_path_buf(),
        reason: REASON,
        source: None,
    }
}

/// Never made on these platforms.
#[derive(Debug, Clone)]
pub(crate) struct Claims;

/// Never made on these platforms.
#[derive(Debug)]
#[allow(dead_code)] // the attempt fails before any outcome
pub(crate) enum StrictOutcome {
    Won(File, Claims),
    Busy,
    MissingParent,
}

pub(crate) fn attempt(lock: &Path, _permissions: Option<u32>) -> Result<StrictOutcome, Error> {
    Err(unsupported(lock))
}

pub(crate) fn release(_sentinel: File, _claims: Claims, _lock: &Path) -> Result<(), Error> {
    Ok(())
}

pub(crate) fn claims(lock: &Path) -> Result<Vec<Claim>, Error> {
    Err(unsupported(lock))
}

pub(crate) fn force_break(lock: &Path, _name: &str) -> Result<(), Error> {
    Err(unsupported(lock))
}

pub(crate) fn found(_lock: &Path) -> Found {
    Found::default()
}

pub(crate) fn missing(_claims: &Claims) -> Option<String> {
    None
}
