//! The async driver: attempts on Tokio's blocking pool, sleeps on Tokio's timer.

use std::io;

use tokio::time::Instant;

use super::{Acquisition, Described, Step};
use crate::attempt::Attempt;
use crate::{Error, LockGuard, Op};

/// Acquires under Tokio.
///
/// Cancel-safe: dropping the future at a sleep drops the attempt (closing the file it keeps
/// open); dropping it while an attempt runs on the blocking pool leaves that attempt to
/// release whatever it wins as soon as it finishes. The hold is counted only in the step
/// that returns the guard, with no await after it.
pub(crate) async fn acquire(
    mut acquisition: Acquisition,
    mut attempt: Attempt,
) -> Result<LockGuard, Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::io(
            acquisition.path(),
            Op::Spawn,
            io::Error::other("no Tokio runtime here; outside one, use the blocking_* methods"),
        ));
    }
    if let Some(guard) = acquisition.reenter()? {
        return Ok(guard);
    }
    let start = Instant::now();
    loop {
        acquisition.attempting();
        let outcome = tokio::task::spawn_blocking(move || attempt.run())
            .await
            .map_err(|join| Error::io(acquisition.path(), Op::Spawn, io::Error::other(join)))??;
        let step = acquisition.after(outcome, start.elapsed());
        let step = match acquisition.describe(step) {
            Described::Ready(step) => step,
            Described::Lookup(lookup) => tokio::task::spawn_blocking(move || lookup.run())
                .await
                .map_err(|join| Error::io(acquisition.path(), Op::Spawn, io::Error::other(join)))?,
        };
        let sleep;
        (attempt, sleep) = match step? {
            Step::Acquired(guard) => return Ok(guard),
            Step::Retry(attempt, sleep) => (attempt, sleep),
        };
        tokio::time::sleep(sleep).await;
        // The owner may have won the lock meanwhile through another future of its task.
        if let Some(guard) = acquisition.reenter()? {
            return Ok(guard);
        }
    }
}
