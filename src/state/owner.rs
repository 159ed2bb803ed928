//! Who is asking: the current Tokio task, or the current thread outside any task.

use std::thread::{self, ThreadId};

/// The owner of a reentrant hold.
///
/// Inside a Tokio task (`tokio::spawn`, `spawn_blocking`, ...) it is the task; elsewhere,
/// including the future driven by `Runtime::block_on` (so `#[tokio::main]` and
/// `#[tokio::test]` bodies), it is the thread. Futures joined inside one task
/// (`join!`, `select!`, `FuturesUnordered`) share that task's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Task(tokio::task::Id),
    Thread(ThreadId),
}

impl Owner {
    /// The owner of the code running now.
    pub(crate) fn current() -> Self {
        match tokio::task::try_id() {
            Some(id) => Owner::Task(id),
            None => Owner::Thread(thread::current().id()),
        }
    }
}
