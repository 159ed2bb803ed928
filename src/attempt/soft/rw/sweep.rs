//! Staleness on the observer's own clock (Python's `Ledger`, `Sweep`): a record is stale
//! once this observer has seen it unchanged (or missing) for the longer of its own stale
//! threshold and the record's `lease=`. No mtime, no wall clock, no PID probe: hosts need
//! no shared time.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

use super::files::Files;
use super::record::{self, is_token};
use super::snapshot::Snapshot;
use super::{HOUSEKEEPING_BATCH, MAX_LISTED_NAMES, TEMPORARY_PREFIX};

/// What this observer has seen of each record, and since when.
#[derive(Debug)]
pub(crate) struct Sweep {
    threshold: Duration,
    /// Record key -> (content, or `None` when missing; first seen with it).
    seen: HashMap<String, (Option<Vec<u8>>, Instant)>,
    /// The sweep cursor per kind (`holder`, `temporary`).
    after: HashMap<&'static str, String>,
    next_at: Instant,
}

impl Sweep {
    pub(crate) fn new(threshold: Duration) -> Self {
        Sweep {
            threshold,
            seen: HashMap::new(),
            after: HashMap::new(),
            next_at: Instant::now(),
        }
    }

    /// How long this observer has seen `value` at `key` unchanged, as of `asked` (the clock
    /// read *before* the record was: a pause after the read cannot count toward its age).
    fn observe(&mut self, key: &str, value: Option<Vec<u8>>, asked: Instant) -> Duration {
        let now = Instant::now();
        match self.seen.get(key) {
            Some((seen, since)) if *seen == value => asked.saturating_duration_since(*since),
            _ => {
                self.seen.insert(key.to_owned(), (value, now));
                Duration::ZERO
            }
        }
    }

    pub(crate) fn forget(&mut self, key: &str) {
        self.seen.remove(key);
    }

    /// `true` once the record at `path` has been seen unchanged long enough.
    pub(crate) fn is_stale(
        &mut self,
        files: &Files,
        key: &str,
        path: &Path,
    ) -> Result<bool, Error> {
        let asked = Instant::now();
        let content = files.read(path)?;
        let lease = record::lease(content.as_deref()).unwrap_or(0.0);
        let limit = self
            .threshold
            .max(Duration::try_from_secs_f64(lease).unwrap_or(Duration::MAX));
        Ok(self.observe(key, content, asked) >= limit)
    }

    /// Removes stale records that no snapshot names, and stale temporary files (at most
    /// every half threshold; a batch of names per kind and pass, the cursor kept).
    pub(crate) fn run(
        &mut self,
        files: &Files,
        latest: Option<&Snapshot>,
        token: &str,
    ) -> Result<(), Error> {
        let now = Instant::now();
        if now < self.next_at {
            return Ok(());
        }
        self.next_at = now + self.threshold / 2;
        let mut watched: HashSet<String> = HashSet::new();
        if let Some(latest) = latest {
            watched.extend(latest.members().cloned());
            let dir = files.holders_dir();
            let mut unnamed: Vec<String> = files
                .list(&dir, MAX_LISTED_NAMES)?
                .into_iter()
                .filter(|n| n != token && !latest.has_member(n) && is_token(n))
                .collect();
            unnamed.sort();
            self.sweep_batch(files, &dir, &unnamed, "holder", &mut watched)?;
        }
        let dir = files.gen_dir();
        let mut temporary: Vec<String> = files
            .list(&dir, MAX_LISTED_NAMES)?
            .into_iter()
            .filter(|n| n.starts_with(TEMPORARY_PREFIX))
            .collect();
        temporary.sort();
        self.sweep_batch(files, &dir, &temporary, "temporary", &mut watched)?;
        match latest {
            Some(_) => self.seen.retain(|key, _| watched.contains(key)),
            None => self
                .seen
                .retain(|key, _| !key.starts_with("temporary:") || watched.contains(key)),
        }
        Ok(())
    }

    fn sweep_batch(
        &mut self,
        files: &Files,
        dir: &Path,
        names: &[String],
        kind: &'static str,
        watched: &mut HashSet<String>,
    ) -> Result<(), Error> {
        watched.extend(names.iter().map(|n| format!("{kind}:{n}")));
        let after = self.after.get(kind).map_or("", String::as_str);
        let mut start = names.partition_point(|n| n.as_str() <= after);
        if start == names.len() {
            start = 0;
        }
        let batch = &names[start..(start + HOUSEKEEPING_BATCH).min(names.len())];
        if let Some(last) = batch.last() {
            self.after.insert(kind, last.clone());
        }
        for name in batch {
            let key = format!("{kind}:{name}");
            let path = dir.join(name);
            if self.is_stale(files, &key, &path)? {
                files.unlink(&path, None)?;
                self.forget(&key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_record_ages_only_while_unchanged_on_our_clock() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(&dir.path().join("l"));
        let path = dir.path().join("rec");
        std::fs::write(&path, b"lease=2.0\n").unwrap();
        let mut sweep = Sweep::new(Duration::from_secs(1));
        assert!(!sweep.is_stale(&files, "k", &path).unwrap());
        tokio::time::advance(Duration::from_millis(1500)).await;
        // The record's lease (2 s) is longer than our threshold (1 s): it wins.
        assert!(!sweep.is_stale(&files, "k", &path).unwrap());
        std::fs::write(&path, b"lease=2.0\nx\n").unwrap();
        assert!(
            !sweep.is_stale(&files, "k", &path).unwrap(),
            "a change restarts the age"
        );
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(
            !sweep.is_stale(&files, "k", &path).unwrap(),
            "a change restarts the age"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(sweep.is_stale(&files, "k", &path).unwrap());
        // A missing record ages the same way.
        std::fs::remove_file(&path).unwrap();
        assert!(!sweep.is_stale(&files, "k", &path).unwrap());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(sweep.is_stale(&files, "k", &path).unwrap());
    }
}
