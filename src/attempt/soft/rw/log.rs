//! The generation log under `<lock>.rw/gen/` (Python's `GenerationLog`): finding the newest
//! snapshot, and committing its successor by a no-replace hard link.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::{Error, Op};

use super::files::Files;
use super::record::{is_token, new_token};
use super::snapshot::Snapshot;
use super::{GENERATION_DIGITS, HOUSEKEEPING_BATCH, MAX_LISTED_NAMES, RETAINED, TEMPORARY_PREFIX};

/// What a listing of `gen/` found.
enum Listed {
    Generations(Vec<u64>),
    /// More than [`MAX_LISTED_NAMES`] names (Python's `GenerationListingOverflowError`).
    Overflow,
}

/// One participant's view of the log.
#[derive(Debug)]
pub(crate) struct Log {
    dir: PathBuf,
    epoch: Option<Vec<u8>>,
    latest: Option<Snapshot>,
}

impl Log {
    pub(crate) fn new(files: &Files) -> Self {
        Log {
            dir: files.gen_dir(),
            epoch: None,
            latest: None,
        }
    }

    fn path(&self, generation: u64) -> PathBuf {
        self.dir
            .join(format!("{generation:0width$}", width = GENERATION_DIGITS))
    }

    fn epoch_path(&self) -> PathBuf {
        self.dir.join("epoch")
    }

    fn head_path(&self) -> PathBuf {
        self.dir.join("HEAD")
    }

    fn temporary(&self) -> PathBuf {
        self.dir.join(format!("{TEMPORARY_PREFIX}{}", new_token()))
    }

    /// The newest snapshot. A log that names no readable one (twice) is a protocol error.
    pub(crate) fn latest(&mut self, files: &mut Files) -> Result<Snapshot, Error> {
        let found = match self.find(files)? {
            Some(found) => found,
            // Compaction or a reset can remove every name between listing and reading.
            None => self
                .find(files)?
                .ok_or_else(|| files.protocol("generation log names no readable snapshot"))?,
        };
        self.latest = Some(found.clone());
        Ok(found)
    }

    /// `true` when the last error of [`latest`](Self::latest) was a listing overflow.
    pub(crate) fn is_overflow(error: &Error) -> bool {
        matches!(error, Error::Protocol { reason, .. } if reason.starts_with(OVERFLOW))
    }

    fn find(&mut self, files: &mut Files) -> Result<Option<Snapshot>, Error> {
        let epoch = self.incarnation(files)?;
        if epoch != self.epoch {
            self.epoch = epoch;
            self.latest = None;
        }
        let mut named: BTreeSet<u64> = match self.list(files)? {
            Listed::Generations(list) => list.into_iter().collect(),
            Listed::Overflow => return Err(overflow(files)),
        };
        if let Some(latest) = &self.latest
            && latest.generation > 0
        {
            named.insert(latest.generation);
        }
        let head = self.head_generation(files)?.filter(|&g| g > 0);
        if let Some(head) = head {
            named.insert(head);
        }
        for &generation in named.iter().rev() {
            if let Some(start) = self.read(files, generation)? {
                // Generations stay contiguous after HEAD, so one gap there ends the probe.
                let patience = if Some(generation) == head {
                    1
                } else {
                    RETAINED
                };
                return self.probe(files, start, patience).map(Some);
            }
        }
        let newest = named.last().copied().unwrap_or(0);
        let found = self.probe(files, Snapshot::empty(newest), RETAINED)?;
        Ok((found.generation > newest || named.is_empty()).then_some(found))
    }

    fn incarnation(&self, files: &mut Files) -> Result<Option<Vec<u8>>, Error> {
        let path = self.epoch_path();
        if let Some(epoch) = files.read(&path)? {
            return Ok(Some(epoch));
        }
        let line = format!("{}\n", new_token());
        match files.create(&path, line.as_bytes(), true, Op::Commit)? {
            Ok(_) | Err(std::io::ErrorKind::AlreadyExists) => {}
            // A participant recreates a missing directory before publication.
            Err(_) => return Ok(None),
        }
        files.read(&path)
    }

    fn listed(&self, files: &Files) -> Result<Listed, Error> {
        let names = files.list(&self.dir, MAX_LISTED_NAMES)?;
        if names.len() > MAX_LISTED_NAMES {
            return Ok(Listed::Overflow);
        }
        let mut generations: Vec<u64> = names
            .iter()
            .filter(|n| n.len() == GENERATION_DIGITS && n.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|n| n.parse().ok())
            .collect();
        generations.sort_unstable();
        Ok(Listed::Generations(generations))
    }

    /// The newest [`RETAINED`] generations listed; older ones are removed (a batch a call).
    fn list(&self, files: &mut Files) -> Result<Listed, Error> {
        let Listed::Generations(listed) = self.listed(files)? else {
            return Ok(Listed::Overflow);
        };
        let n = listed.len();
        if n > RETAINED {
            let newest = self.path(listed[n - 1]);
            for &old in &listed[..(n - RETAINED).min(HOUSEKEEPING_BATCH)] {
                files.unlink(&self.path(old), Some(&newest))?;
            }
        }
        Ok(Listed::Generations(
            listed[n.saturating_sub(RETAINED)..].to_vec(),
        ))
    }

    fn head_generation(&self, files: &Files) -> Result<Option<u64>, Error> {
        // A crash can tear HEAD: only a hint, its target is read before it counts.
        Ok(self
            .head_record(files)?
            .and_then(|record| Snapshot::parse(&record))
            .map(|s| s.generation))
    }

    fn head_record(&self, files: &Files) -> Result<Option<Vec<u8>>, Error> {
        let Some(data) = files.read(&self.head_path())? else {
            return Ok(None);
        };
        // A delayed HEAD update may belong to a removed log.
        let Some(cut) = data.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let (epoch, record) = data.split_at(cut + 1);
        Ok((self.valid_epoch() == Some(epoch)).then(|| record.to_vec()))
    }

    fn valid_epoch(&self) -> Option<&[u8]> {
        let epoch = self.epoch.as_deref()?;
        let line = std::str::from_utf8(epoch).ok()?;
        is_token(line.strip_suffix('\n').unwrap_or(line)).then_some(epoch)
    }

    fn read(&self, files: &Files, generation: u64) -> Result<Option<Snapshot>, Error> {
        let Some(data) = files.read(&self.path(generation))? else {
            return Ok(None);
        };
        match Snapshot::parse(&data) {
            Some(snapshot) if snapshot.generation == generation => Ok(Some(snapshot)),
            _ => Err(files.protocol(format!(
                "malformed generation record {generation:0width$}",
                width = GENERATION_DIGITS
            ))),
        }
    }

    fn probe(&self, files: &Files, start: Snapshot, patience: usize) -> Result<Snapshot, Error> {
        let mut latest = start;
        let mut generation = latest.generation;
        let limit = generation + 2 * RETAINED as u64;
        let mut gap = 0;
        while gap < patience && generation < limit {
            generation += 1;
            match self.read(files, generation)? {
                Some(snapshot) => {
                    latest = snapshot;
                    gap = 0;
                }
                None => gap += 1,
            }
        }
        Ok(latest)
    }

    /// Commits `successor` (numbered one past the newest): `true` if it is now the newest.
    pub(crate) fn commit(
        &mut self,
        files: &mut Files,
        successor: &Snapshot,
    ) -> Result<bool, Error> {
        let g = successor.generation;
        // Compaction may free this slot during publication.
        if !self.extends_the_log(files, g)? {
            return Ok(false);
        }
        let data = successor.encode();
        if !self.publish(files, &self.path(g), &data)? {
            return Ok(false);
        }
        let Listed::Generations(listed) = self.listed(files)? else {
            // A peer may already have extended the record published before the listing failed.
            return Ok(false);
        };
        let newest = listed
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.head_generation(files)?.unwrap_or(0));
        let extends = self.extends_the_log(files, g)?;
        if files.read(&self.epoch_path())? != self.epoch {
            return Ok(false); // another log may now use this number
        }
        if newest.saturating_sub(g) >= RETAINED as u64 {
            files.unlink(&self.path(g), Some(&self.path(newest)))?;
            return Ok(false);
        }
        if !extends {
            return Ok(false);
        }
        self.latest = Some(successor.clone());
        // A failed HEAD update costs readers a probe. A delayed commit must not move HEAD back.
        if let Some(epoch) = self.valid_epoch().map(<[u8]>::to_vec)
            && self.head_generation(files).ok().flatten().unwrap_or(0) < g
        {
            let mut head = epoch;
            head.extend_from_slice(&data);
            let _ = files.replace_with(&self.head_path(), &self.temporary(), &head);
        }
        if let Some(expired) = g.checked_sub(RETAINED as u64 + 1).filter(|&e| e > 0) {
            self.compact_through(files, expired, g)?;
        }
        Ok(true)
    }

    fn extends_the_log(&self, files: &Files, generation: u64) -> Result<bool, Error> {
        if generation > 1 {
            return Ok(files.read(&self.path(generation - 1))?.is_some());
        }
        Ok(self.head_record(files)?.is_none())
    }

    fn publish(
        &self,
        files: &mut Files,
        target: &std::path::Path,
        data: &[u8],
    ) -> Result<bool, Error> {
        let temporary = self.temporary();
        match files.create(&temporary, data, true, Op::Commit)? {
            Ok(_) => {}
            Err(std::io::ErrorKind::NotFound) => {
                files.prepare(true)?;
                return Ok(false);
            }
            Err(_) => return Ok(false),
        }
        let linked = (|| {
            // A reset before staging may put this file in another log.
            if files.read(&self.epoch_path())? != self.epoch {
                return Ok(false);
            }
            files.link(&temporary, target)
        })();
        let removed = files.unlink(&temporary, None);
        let linked = linked?;
        removed?;
        Ok(linked)
    }

    fn compact_through(&self, files: &Files, expired: u64, newest: u64) -> Result<(), Error> {
        // Oldest first: no gap below a stalled committer's record.
        let mut oldest = expired;
        while oldest > 1 && files.read(&self.path(oldest - 1))?.is_some() {
            oldest -= 1;
            if expired - oldest >= HOUSEKEEPING_BATCH as u64 {
                return Ok(()); // listings prune a larger backlog
            }
        }
        let witness = self.path(newest);
        for generation in oldest..=expired {
            files.unlink(&self.path(generation), Some(&witness))?;
        }
        Ok(())
    }
}

const OVERFLOW: &str = "generation log holds more than";

fn overflow(files: &Files) -> Error {
    files.protocol(format!("{OVERFLOW} {MAX_LISTED_NAMES} names"))
}
