//! Per-uid failure records, kept in tpmd's state directory so that neither a restart nor a
//! crash forgets them. The file is replaced atomically (a temporary file in the same
//! directory, synced, then renamed over the old one): a crash leaves the old or the new
//! records, never half of them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch: records outlive the process, so they use the wall clock.
pub type WallSecs = u64;

const FILE_NAME: &str = "da-budget.json";

/// How fast a uid's failures are forgotten when the TPM does not say (TPM 1.2).
pub const DEFAULT_FORGET_SECS: u32 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Failures outstanding at `last_failure`.
    pub failures: u32,
    pub last_failure: WallSecs,
}

impl Record {
    /// Failures still outstanding at `now`, forgetting one per `forget_secs` after the
    /// last failure, as the TPM does.
    pub fn outstanding(&self, now: WallSecs, forget_secs: u32) -> u32 {
        if forget_secs == 0 {
            return 0;
        }
        let forgotten = now.saturating_sub(self.last_failure) / u64::from(forget_secs);
        self.failures
            .saturating_sub(u32::try_from(forgotten).unwrap_or(u32::MAX))
    }

    /// Seconds until at most `level` failures are outstanding.
    pub fn seconds_until_at_most(&self, level: u32, now: WallSecs, forget_secs: u32) -> u64 {
        if self.outstanding(now, forget_secs) <= level {
            return 0;
        }
        let due = self.last_failure + u64::from(self.failures - level) * u64::from(forget_secs);
        due.saturating_sub(now).max(1)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    uids: BTreeMap<u32, Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(
        "cannot create tpmd's state directory {path}: {source}; give another with --state-dir"
    )]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The records of every uid with failures outstanding, and where they are kept.
#[derive(Debug)]
pub struct UidRecords {
    records: BTreeMap<u32, Record>,
    path: Option<PathBuf>,
}

impl UidRecords {
    /// Records kept only in memory (unit tests, benchmarks).
    pub fn in_memory() -> UidRecords {
        UidRecords {
            records: BTreeMap::new(),
            path: None,
        }
    }

    /// Loads the records from `dir`, creating it (0700) if needed. A file that does not
    /// parse is set aside as `da-budget.json.corrupt` and the records start empty: the
    /// TPM's own counter, read at start, still bounds every try.
    pub fn open(dir: &Path) -> Result<UidRecords, RecordsError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| RecordsError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let path = dir.join(FILE_NAME);
        let records = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<FileFormat>(&bytes) {
                Ok(file) => file.uids,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "unreadable DA budget records ({e}); starting afresh");
                    let _ = std::fs::rename(&path, path.with_extension("json.corrupt"));
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(RecordsError::Read { path, source }),
        };
        Ok(UidRecords {
            records,
            path: Some(path),
        })
    }

    pub fn get(&self, uid: u32) -> Option<&Record> {
        self.records.get(&uid)
    }

    pub fn outstanding(&self, uid: u32, now: WallSecs, forget_secs: u32) -> u32 {
        self.get(uid).map_or(0, |r| r.outstanding(now, forget_secs))
    }

    /// Counts a failure of `uid` now and saves every record still outstanding.
    pub fn failed(
        &mut self,
        uid: u32,
        now: WallSecs,
        forget_secs: u32,
    ) -> Result<(), RecordsError> {
        let failures = self.outstanding(uid, now, forget_secs).saturating_add(1);
        self.records.insert(
            uid,
            Record {
                failures,
                last_failure: now,
            },
        );
        self.records
            .retain(|_, r| r.outstanding(now, forget_secs) > 0);
        self.save()
    }

    fn save(&self) -> Result<(), RecordsError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let write_error = |source| RecordsError::Write {
            path: path.clone(),
            source,
        };
        let file = FileFormat {
            version: 1,
            uids: self.records.clone(),
        };
        let bytes =
            serde_json::to_vec_pretty(&file).map_err(|e| write_error(std::io::Error::other(e)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".da-budget-")
            .tempfile_in(dir)
            .map_err(write_error)?;
        temp.write_all(&bytes)
            .and_then(|_| temp.as_file().sync_all())
            .map_err(write_error)?;
        temp.persist(path).map_err(|e| write_error(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_forgotten_one_per_period_after_the_last() {
        let r = Record {
            failures: 3,
            last_failure: 1000,
        };
        assert_eq!(r.outstanding(1599, 600), 3);
        assert_eq!(r.outstanding(1600, 600), 2);
        assert_eq!(r.outstanding(9999, 600), 0);
        assert_eq!(r.outstanding(1000, 0), 0);
        assert_eq!(r.seconds_until_at_most(1, 1000, 600), 1200);
        assert_eq!(r.seconds_until_at_most(1, 2100, 600), 100);
        assert_eq!(r.seconds_until_at_most(3, 1000, 600), 0);
    }

    #[test]
    fn records_survive_reopening_and_forget_old_uids() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut records = UidRecords::open(&state).unwrap();
        records.failed(1001, 10_000, 600).unwrap();
        records.failed(1001, 10_001, 600).unwrap();
        records.failed(1002, 10_002, 600).unwrap();
        let reopened = UidRecords::open(&state).unwrap();
        assert_eq!(reopened.outstanding(1001, 10_002, 600), 2);
        assert_eq!(reopened.outstanding(1002, 10_002, 600), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Much later, one new failure leaves only its own uid on file.
        let mut records = reopened;
        records.failed(1003, 100_000, 600).unwrap();
        let text = std::fs::read_to_string(state.join(FILE_NAME)).unwrap();
        assert!(text.contains("1003") && !text.contains("1001"), "{text}");
        // Nothing else is left behind in the directory.
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let records = UidRecords::open(dir.path()).unwrap();
        assert_eq!(records.outstanding(1001, 0, 600), 0);
        assert!(dir.path().join("da-budget.json.corrupt").exists());
    }
}
