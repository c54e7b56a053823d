//! Group commit for [`crate::output::Batch`]: many entries written at once
//! share one sync of their file system instead of one `fdatasync` per file.
//!
//! A batch whose files are written asks [`sync_files`] to make them
//! durable. When no sync is running, it leads one: alone, it syncs its own
//! files (`fdatasync` each, what a lone writer such as the agent does);
//! with other batches waiting, it syncs the whole file system once
//! (`syncfs`), which covers every batch that arrived before it started.
//! Batches arriving meanwhile wait for the next sync. Collecting 400 pods
//! writes 1,600 files; on ext4 those fdatasyncs, each a journal commit,
//! were the collect's floor, and many of them in flight at once make every
//! one slower.
//!
//! `syncfs` also writes back every other process's dirty data on that file
//! system: right after a large build or next to a big copy it can take
//! tens of milliseconds or seconds instead of well under one. So the leader
//! keeps what each way has cost (a smoothed `syncfs` time, and a smoothed
//! time per file of `fdatasync`) and, when one `syncfs` is dearer than the
//! waiting batches' files synced one by one, lets each batch sync its own
//! files instead, trying `syncfs` again every [`PROBE_EVERY`] generations.
//!
//! Before a `syncfs` the leader also reads the system's dirty and
//! under-writeback memory (`/proc/meminfo`): when, beyond the waiting
//! batches' own bytes, more than [`BACKLOG_LIMIT`] waits to be written, a
//! `syncfs` would pay for it (the first one after a release build took
//! 1.1 s), so the batches sync their own files instead.
//!
//! The guarantee is the one `Batch` documents: a batch's data is on disk
//! before any of its renames. A failed `syncfs` makes each batch of that
//! sync fall back to syncing its own files, so an error is reported
//! against the file it belongs to.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// While per-file syncs are cheaper, `syncfs` is tried again this often
/// (in generations) to see whether the file system has quietened.
pub(crate) const PROBE_EVERY: u64 = 32;

/// Other data waiting to be written back (system-wide, beyond the waiting
/// batches' own bytes) above which no `syncfs` is started.
pub(crate) const BACKLOG_LIMIT: u64 = 64 << 20;

/// A sync's outcome: `Err((index, error))` names the file that failed.
type Synced = Result<(), (usize, std::io::Error)>;

/// One file system's sync state.
struct Group {
    state: Mutex<State>,
    done: Condvar,
    /// Bytes waiting to be written back, system-wide (`None`: unknown).
    backlog: fn() -> Option<u64>,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            state: Mutex::default(),
            done: Condvar::new(),
            backlog: system_backlog,
        }
    }
}

/// Whether a `syncfs` may start with `backlog` bytes waiting to be written
/// back, `own` of them the waiting batches'.
fn backlog_allows_syncfs(backlog: Option<u64>, own: u64) -> bool {
    backlog.is_none_or(|b| b.saturating_sub(own) <= BACKLOG_LIMIT)
}

/// `Dirty` plus `Writeback` from `/proc/meminfo`, in bytes.
fn system_backlog() -> Option<u64> {
    parse_backlog(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_backlog(meminfo: &str) -> Option<u64> {
    let kb = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    };
    Some((kb("Dirty:")? + kb("Writeback:")?) * 1024)
}

#[derive(Default)]
struct State {
    /// Whether a sync is running.
    running: bool,
    /// Generation of the last sync started; a batch arriving now waits
    /// for `started + 1`, the first sync that starts after it arrived.
    started: u64,
    /// Generation of the last sync finished.
    finished: u64,
    /// Batches waiting for the next sync.
    waiting: usize,
    /// Files of the batches waiting for the next sync.
    waiting_files: usize,
    /// Bytes of those files.
    waiting_bytes: u64,
    /// Recent generations whose `syncfs` succeeded (the last 64). A batch
    /// whose generation is not here (its `syncfs` failed or was judged
    /// dearer, or it is too old to be remembered) syncs its own files: a
    /// lost entry costs a sync, never durability.
    covered: BTreeSet<u64>,
    /// Smoothed time of one `syncfs` (ns); 0 until one has run.
    syncfs_ns: u64,
    /// Smoothed time of one file's `fdatasync` (ns); 0 until measured.
    file_ns: u64,
    /// Generation of the last `syncfs`.
    last_syncfs: u64,
}

impl State {
    /// Whether one `syncfs` should serve the waiting batches: yes unless
    /// both costs are known and `files` synced one by one cost less (and
    /// it is not time to probe `syncfs` again).
    fn choose_syncfs(&self, generation: u64, files: usize) -> bool {
        self.syncfs_ns == 0
            || self.file_ns == 0
            || self.syncfs_ns <= self.file_ns.saturating_mul(files as u64)
            || generation >= self.last_syncfs + PROBE_EVERY
    }

    /// Folds a new measurement into a smoothed value (weight 1/4).
    fn smooth(old: u64, new: u64) -> u64 {
        if old == 0 { new } else { (old * 3 + new) / 4 }
    }
}

/// Groups by file system (device number).
static GROUPS: LazyLock<Mutex<HashMap<u64, Arc<Group>>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes the data of `files` (`bytes` in all) durable; `Err((index,
/// error))` names the file that could not be synced. The files are all
/// written already.
pub(crate) fn sync_files(files: &[&File], bytes: u64) -> Synced {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let dev = match first.metadata() {
        Ok(m) => m.dev(),
        Err(_) => return sync_each(files),
    };
    let group = lock(&GROUPS).entry(dev).or_default().clone();
    sync_in(&group, files, bytes)
}

/// [`sync_files`] within one file system's group.
fn sync_in(group: &Group, files: &[&File], bytes: u64) -> Synced {
    let first = files[0];
    let mut st = lock(&group.state);
    let mine = st.started + 1;
    st.waiting += 1;
    st.waiting_files += files.len();
    st.waiting_bytes += bytes;
    loop {
        if st.finished >= mine {
            let each = !st.covered.contains(&mine);
            drop(st);
            return if each {
                timed_each(group, files)
            } else {
                Ok(())
            };
        }
        if !st.running {
            // Lead the sync of generation `mine` (= started + 1).
            st.running = true;
            st.started += 1;
            let generation = st.started;
            let batches = std::mem::take(&mut st.waiting);
            let waiting_files = std::mem::take(&mut st.waiting_files);
            let waiting_bytes = std::mem::take(&mut st.waiting_bytes);
            if batches == 1 {
                drop(st);
                let result = timed_each(group, files);
                st = lock(&group.state);
                st.running = false;
                st.finished = generation;
                group.done.notify_all();
                return result;
            }
            let syncfs = st.choose_syncfs(generation, waiting_files);
            drop(st);
            let syncfs = syncfs && backlog_allows_syncfs((group.backlog)(), waiting_bytes);
            let result = if syncfs {
                let t = Instant::now();
                let r = rustix::fs::syncfs(first).map_err(std::io::Error::from);
                Some((r, t.elapsed().as_nanos() as u64))
            } else {
                None
            };
            st = lock(&group.state);
            st.running = false;
            st.finished = generation;
            if let Some((Ok(()), ns)) = result {
                st.syncfs_ns = State::smooth(st.syncfs_ns, ns.max(1));
                st.last_syncfs = generation;
                st.covered.insert(generation);
                while st.covered.len() > 64 {
                    st.covered.pop_first();
                }
            }
            group.done.notify_all();
            // Back to the top: `finished >= mine` now, and the leader's
            // batch, like its followers, syncs its own files unless covered.
            continue;
        }
        st = group.done.wait(st).unwrap_or_else(PoisonError::into_inner);
    }
}

/// [`sync_each`], folding its time per file into the group's estimate.
fn timed_each(group: &Group, files: &[&File]) -> Synced {
    let t = Instant::now();
    let result = sync_each(files);
    if result.is_ok() {
        let per_file = (t.elapsed().as_nanos() as u64 / files.len().max(1) as u64).max(1);
        let mut st = lock(&group.state);
        st.file_ns = State::smooth(st.file_ns, per_file);
    }
    result
}

/// `fdatasync` of each file, stopping at the first failure.
fn sync_each(files: &[&File]) -> Synced {
    for (i, f) in files.iter().enumerate() {
        f.sync_data().map_err(|e| (i, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// `threads` threads each commit `batches` batches of four files through
    /// `sync` (file `T-B-K` holds `len` bytes `K + 1`); then checks that
    /// every file is there and whole.
    fn commit_batches(
        dir: &Path,
        threads: usize,
        batches: usize,
        len: usize,
        sync: &(dyn Fn(&[&File]) -> Synced + Sync),
    ) {
        std::thread::scope(|scope| {
            for t in 0..threads {
                scope.spawn(move || {
                    for i in 0..batches {
                        let files: Vec<File> = (0..4u8)
                            .map(|k| {
                                let mut f = File::create(dir.join(format!("{t}-{i}-{k}"))).unwrap();
                                f.write_all(&vec![k + 1; len]).unwrap();
                                f
                            })
                            .collect();
                        let refs: Vec<&File> = files.iter().collect();
                        sync(&refs).unwrap();
                    }
                });
            }
        });
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().into_string().unwrap();
            let k: u8 = name.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(std::fs::read(e.path()).unwrap(), vec![k + 1; len], "{name}");
            n += 1;
        }
        assert_eq!(n, threads * batches * 4);
    }

    /// Many batches at once, from many threads (leaders and followers,
    /// `syncfs` and `fdatasync`): every one returns (no batch is left
    /// waiting for a sync nobody leads), and every file is whole.
    #[test]
    fn concurrent_batches_share_syncs_and_all_finish() {
        let d = tempfile::tempdir().unwrap();
        commit_batches(d.path(), 32, 8, 4096, &|files| sync_files(files, 4 * 4096));
    }

    /// The leader's choice: `syncfs` until both costs are known, then the
    /// cheaper way, with a `syncfs` probe every `PROBE_EVERY` generations.
    #[test]
    fn syncfs_only_while_it_is_cheaper_than_the_files_one_by_one() {
        let quiet = State {
            syncfs_ns: 600_000,
            file_ns: 300_000,
            last_syncfs: 10,
            ..State::default()
        };
        assert!(quiet.choose_syncfs(11, 4), "0.6 ms against 4 x 0.3 ms");
        assert!(
            !quiet.choose_syncfs(11, 1),
            "0.6 ms against one 0.3 ms file"
        );
        let busy = State {
            syncfs_ns: 40_000_000,
            ..quiet
        };
        assert!(!busy.choose_syncfs(11, 100), "40 ms against 100 x 0.3 ms");
        assert!(busy.choose_syncfs(11, 200));
        assert!(busy.choose_syncfs(10 + PROBE_EVERY, 100), "probe");
        assert!(State::default().choose_syncfs(1, 1), "costs unknown");
        assert_eq!(State::smooth(0, 8), 8);
        assert_eq!(State::smooth(8, 16), 10);
    }

    /// With `syncfs` judged dear, every batch syncs its own files (and
    /// those files are whole): no `syncfs` runs before the next probe.
    #[test]
    fn batches_sync_their_own_files_while_syncfs_is_dear() {
        let d = tempfile::tempdir().unwrap();
        let group = Group::default();
        {
            let mut st = lock(&group.state);
            st.syncfs_ns = u64::MAX / 8;
            st.file_ns = 1;
        }
        // 28 batches: at most 28 generations, fewer than PROBE_EVERY.
        commit_batches(d.path(), 7, 4, 1000, &|files| sync_in(&group, files, 4000));
        let st = lock(&group.state);
        assert!(st.finished >= 1 && st.finished <= 28 && !st.running);
        assert_eq!(
            (st.syncfs_ns, st.last_syncfs),
            (u64::MAX / 8, 0),
            "no syncfs ran"
        );
        assert!(st.file_ns > 1, "the batches' own fdatasyncs were timed");
    }

    /// With more than `BACKLOG_LIMIT` of other data waiting to be written
    /// back, no `syncfs` runs, even before its cost is known; the
    /// batches' own bytes do not count against the limit.
    #[test]
    fn no_syncfs_over_a_writeback_backlog() {
        let d = tempfile::tempdir().unwrap();
        let group = Group {
            backlog: || Some(BACKLOG_LIMIT + (1 << 20)),
            ..Group::default()
        };
        commit_batches(d.path(), 7, 4, 1000, &|files| sync_in(&group, files, 4000));
        let st = lock(&group.state);
        assert!(st.finished >= 1 && !st.running);
        assert_eq!((st.syncfs_ns, st.last_syncfs), (0, 0), "no syncfs ran");
        assert!(st.covered.is_empty());
        assert!(st.file_ns > 0, "the batches synced their own files");
        drop(st);

        // The same backlog made of the batches' own bytes allows it.
        let over = Some(BACKLOG_LIMIT + (1 << 20));
        assert!(!backlog_allows_syncfs(over, 0));
        assert!(backlog_allows_syncfs(over, 1 << 20));
        assert!(backlog_allows_syncfs(None, 0), "unknown: allowed");
    }

    #[test]
    fn meminfo_backlog() {
        let text = "MemTotal:       24608036 kB\nDirty:              1234 kB\nWriteback:            16 kB\nWritebackTmp:      99 kB\n";
        assert_eq!(parse_backlog(text), Some(1250 * 1024));
        assert_eq!(parse_backlog("Dirty: 1 kB\n"), None);
        assert!(system_backlog().is_some(), "this machine's /proc/meminfo");
    }

    #[test]
    fn no_files_is_nothing_to_do() {
        assert!(sync_files(&[], 0).is_ok());
    }
}
