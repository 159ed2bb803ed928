//! One reader or writer in the generation log (Python's `Participant`): publishes its
//! holder record, joins the newest snapshot (a writer first queues, which shuts out new
//! readers, and is granted once the readers are gone), evicts stale members, refreshes its
//! record, and withdraws. Blocking: run it where file system calls may run.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::sys::soft_calls::Node;
use crate::{Error, LockMode, Op};

use super::files::Files;
use super::log::Log;
use super::record;
use super::snapshot::Snapshot;
use super::sweep::Sweep;

/// What a heartbeat found (Python's `HeartbeatOutcome`).
#[derive(Debug)]
pub(crate) enum Beat {
    /// The record is refreshed and the token is still a member.
    Ok,
    /// The record is gone or replaced, or the token is no longer a member: evicted.
    Lost,
    /// Refreshing failed; the hold may still stand.
    Transient(io::Error),
}

#[derive(Debug, Clone, Copy)]
struct HolderRecord {
    id: Node,
    /// When its last good refresh was asked for.
    refreshed: Instant,
}

/// A reader or writer of one lock.
#[derive(Debug)]
pub(crate) struct Participant {
    token: String,
    mode: LockMode,
    generation: Option<u64>,
    files: Files,
    log: Log,
    sweep: Sweep,
    threshold: Duration,
    holder: Option<HolderRecord>,
    entered: bool,
    /// The record was published and not yet withdrawn: dropping leaves.
    published: bool,
}

impl Participant {
    /// A participant of the lock whose protocol files are `files`; touches nothing.
    pub(crate) fn new(files: Files, mode: LockMode, threshold: Duration) -> Self {
        Participant {
            token: record::new_token(),
            mode,
            generation: None,
            log: Log::new(&files),
            files,
            sweep: Sweep::new(threshold),
            threshold,
            holder: None,
            entered: false,
            published: false,
        }
    }

    /// This participant's token (its record's name).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The generation that granted the hold (Python's `generation`), while held.
    pub(crate) fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// The lock path.
    pub(crate) fn lock(&self) -> &std::path::Path {
        self.files.lock()
    }

    /// Creates the protocol's directories and our record: it must exist before our token
    /// enters any snapshot.
    pub(crate) fn publish(&mut self) -> Result<(), Error> {
        self.files.prepare(false)?;
        self.published = true;
        self.create_holder()
    }

    fn create_holder(&mut self) -> Result<(), Error> {
        let asked = Instant::now();
        let path = self.files.holder(&self.token);
        let data = record::encode(&self.token, self.threshold);
        let id = match self.files.create(&path, &data, false, Op::WriteRecord)? {
            Ok(id) => id,
            Err(io::ErrorKind::NotFound) => {
                self.files.prepare(true)?;
                match self.files.create(&path, &data, false, Op::WriteRecord)? {
                    Ok(id) => id,
                    Err(kind) => return Err(self.files.error(Op::WriteRecord, kind.into())),
                }
            }
            Err(kind) => return Err(self.files.error(Op::WriteRecord, kind.into())),
        };
        self.holder = Some(HolderRecord {
            id,
            refreshed: asked,
        });
        Ok(())
    }

    /// Up to four tries (a lost commit race can be won on a fresh snapshot): `true` when
    /// the hold is granted.
    pub(crate) fn advance(&mut self) -> Result<bool, Error> {
        for _ in 0..4 {
            if let Some(granted) = self.attempt()? {
                return Ok(granted);
            }
        }
        Ok(false)
    }

    fn attempt(&mut self) -> Result<Option<bool>, Error> {
        let latest = match self.log.latest(&mut self.files) {
            Ok(latest) => latest,
            Err(e) => {
                if Log::is_overflow(&e) {
                    self.sweep.run(&self.files, None, &self.token)?;
                }
                return Err(e);
            }
        };
        if !self.keep_claim_fresh(&latest)? {
            return Ok(None);
        }
        self.sweep.run(&self.files, Some(&latest), &self.token)?;
        let mut stale = Vec::new();
        for token in latest.members().filter(|t| **t != self.token) {
            let path = self.files.holder(token);
            if self.sweep.is_stale(&self.files, token, &path)? {
                stale.push(token.clone());
            }
        }
        let mut writer = latest.writer.clone().filter(|w| !stale.contains(w));
        let mut readers = latest.readers.clone();
        readers.retain(|r| !stale.contains(r));
        if !self.entered {
            if writer.is_some() {
                // Writer preference: nobody joins while a writer queues or holds. An
                // eviction can still proceed.
                if !stale.is_empty() {
                    self.commit(&latest, writer, readers, &stale)?;
                }
                return Ok(Some(false));
            }
            match self.mode {
                LockMode::Exclusive => writer = Some(self.token.clone()),
                LockMode::Shared => {
                    readers.insert(self.token.clone());
                }
            }
        }
        let granted = self.mode == LockMode::Shared || readers.is_empty();
        if self.entered && stale.is_empty() && !granted {
            return Ok(Some(false));
        }
        let Some(generation) = self.commit(&latest, writer, readers, &stale)? else {
            return Ok(None);
        };
        if self.outlived_lease(self.holder) {
            self.start_over()?;
            return Ok(None);
        }
        self.entered = true;
        if granted {
            self.generation = Some(generation);
        }
        Ok(Some(granted))
    }

    fn keep_claim_fresh(&mut self, latest: &Snapshot) -> Result<bool, Error> {
        // An NFS retry can report a committed link as lost; a peer can evict a waiting writer.
        let holder = self.holder;
        let kept = self
            .refresh_nonce()
            .map_err(|e| self.files.error(Op::WriteRecord, e))?;
        if self.outlived_lease(holder) {
            self.start_over()?;
            return Ok(false);
        }
        if !kept {
            match self.create_holder() {
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        self.entered = latest.has_member(&self.token);
        Ok(true)
    }

    fn refresh_nonce(&mut self) -> io::Result<bool> {
        let Some(holder) = self.holder else {
            return Ok(false);
        };
        let asked = Instant::now();
        let kept = self.files.overwrite(
            &self.files.holder(&self.token),
            &record::encode(&self.token, self.threshold),
            &holder.id,
            &record::header(&self.token),
        )?;
        if kept {
            self.holder = Some(HolderRecord {
                refreshed: asked,
                ..holder
            });
        }
        Ok(kept)
    }

    fn commit(
        &mut self,
        latest: &Snapshot,
        writer: Option<String>,
        readers: std::collections::BTreeSet<String>,
        stale: &[String],
    ) -> Result<Option<u64>, Error> {
        let successor = Snapshot {
            generation: latest.generation + 1,
            writer,
            readers,
        };
        if !self.log.commit(&mut self.files, &successor)? {
            return Ok(None);
        }
        for token in stale {
            tracing::debug!(target: "tokio_filelock", path = %self.files.lock().display(), %token, "evicted a stale holder");
            self.files.unlink(&self.files.holder(token), None)?;
            self.sweep.forget(token);
        }
        Ok(Some(successor.generation))
    }

    fn outlived_lease(&self, holder: Option<HolderRecord>) -> bool {
        holder.is_some_and(|h| h.refreshed.elapsed() >= self.threshold)
    }

    fn start_over(&mut self) -> Result<(), Error> {
        // A late sweep can still remove the old name: take a new one.
        self.leave()?;
        self.token = record::new_token();
        self.published = true;
        self.create_holder()
    }

    /// Withdraws from the log (commits a successor without us while we are a member) and
    /// removes our record. Gives up with [`Error::Protocol`] if peers win every commit for
    /// a whole stale threshold.
    pub(crate) fn leave(&mut self) -> Result<(), Error> {
        let withdrawn = self.withdraw();
        self.entered = false;
        self.generation = None;
        self.published = false;
        let removed = self.files.unlink(&self.files.holder(&self.token), None);
        withdrawn.and(removed)
    }

    fn withdraw(&mut self) -> Result<(), Error> {
        let give_up = Instant::now() + self.threshold;
        let mut delay = Duration::from_millis(1);
        loop {
            let latest = self.log.latest(&mut self.files)?;
            if !latest.has_member(&self.token) {
                return Ok(());
            }
            let mut successor = latest.clone();
            successor.generation += 1;
            if successor.writer.as_deref() == Some(self.token.as_str()) {
                successor.writer = None;
            }
            successor.readers.remove(&self.token);
            if self.log.commit(&mut self.files, &successor)? {
                return Ok(());
            }
            let remaining = give_up.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.files.protocol(
                    "could not withdraw holder from generation log before its stale threshold",
                ));
            }
            std::thread::sleep(delay.min(remaining));
            delay = (delay * 2).min(Duration::from_millis(10));
        }
    }

    /// One heartbeat: refreshes our record, sweeps, and checks that we are still a member.
    pub(crate) fn heartbeat(&mut self) -> Beat {
        match self.refresh_nonce() {
            Ok(true) => {}
            Ok(false) => return Beat::Lost,
            Err(e) => return Beat::Transient(e),
        }
        // A failed scan says nothing about this holder.
        let latest = match self.log.latest(&mut self.files) {
            Ok(latest) => latest,
            Err(e) => {
                if Log::is_overflow(&e) {
                    let _ = self.sweep.run(&self.files, None, &self.token);
                }
                return Beat::Ok;
            }
        };
        let _ = self.sweep.run(&self.files, Some(&latest), &self.token);
        if latest.has_member(&self.token) {
            Beat::Ok
        } else {
            Beat::Lost
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        // A queued writer shuts out new readers until it leaves: an abandoned acquire
        // (cancelled, timed out, failed) withdraws.
        if self.published
            && let Err(error) = self.leave()
        {
            tracing::warn!(target: "tokio_filelock", path = %self.files.lock().display(), %error, "withdrawing from the read-write lock failed");
        }
    }
}
