//! Platforms without a file watch here: waiters rely on in-process wake-ups and polling.

use std::io;
use std::path::Path;
use std::task::{Context, Poll};

/// Never created: [`Watch::new`] always fails.
#[derive(Debug)]
pub(crate) struct Watch(());

impl Watch {
    pub(crate) fn new(_path: &Path, _release: super::Release) -> io::Result<Watch> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn is_alive(&self) -> bool {
        false
    }

    pub(crate) fn poll_event(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Nothing is kept: there is no watch here.
pub(crate) fn keep_idle(_keep: bool) {}
