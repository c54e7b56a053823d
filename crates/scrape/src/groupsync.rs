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
//! The guarantee is the one `Batch` documents: a batch's data is on disk
//! before any of its renames. A failed `syncfs` makes each batch of that
//! sync fall back to syncing its own files, so an error is reported
//! against the file it belongs to.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

/// One file system's sync state.
#[derive(Default)]
struct Group {
    state: Mutex<State>,
    done: Condvar,
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
    /// Recent generations whose `syncfs` failed.
    failed: BTreeSet<u64>,
}

/// Groups by file system (device number).
static GROUPS: LazyLock<Mutex<HashMap<u64, Arc<Group>>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes the data of `files` durable; `Err((index, error))` names the
/// file that could not be synced. The files are all written already.
pub(crate) fn sync_files(files: &[&File]) -> Result<(), (usize, std::io::Error)> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let dev = match first.metadata() {
        Ok(m) => m.dev(),
        Err(_) => return sync_each(files),
    };
    let group = lock(&GROUPS).entry(dev).or_default().clone();
    let mut st = lock(&group.state);
    let mine = st.started + 1;
    st.waiting += 1;
    loop {
        if st.finished >= mine {
            let failed = st.failed.contains(&mine);
            drop(st);
            return if failed { sync_each(files) } else { Ok(()) };
        }
        if !st.running {
            // Lead the sync of generation `mine` (= started + 1).
            st.running = true;
            st.started += 1;
            let generation = st.started;
            let batches = std::mem::take(&mut st.waiting);
            drop(st);
            let result = if batches == 1 {
                sync_each(files)
            } else {
                rustix::fs::syncfs(*first).map_err(|e| (0, std::io::Error::from(e)))
            };
            st = lock(&group.state);
            st.running = false;
            st.finished = generation;
            if batches > 1 && result.is_err() {
                st.failed.insert(generation);
                while st.failed.len() > 64 {
                    st.failed.pop_first();
                }
            }
            group.done.notify_all();
            drop(st);
            return match result {
                Err(_) if batches > 1 => sync_each(files),
                r => r,
            };
        }
        st = group.done.wait(st).unwrap_or_else(PoisonError::into_inner);
    }
}

/// `fdatasync` of each file, stopping at the first failure.
fn sync_each(files: &[&File]) -> Result<(), (usize, std::io::Error)> {
    for (i, f) in files.iter().enumerate() {
        f.sync_data().map_err(|e| (i, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Many batches at once, from many threads (leaders and followers,
    /// `syncfs` and `fdatasync`): every one returns (no batch is left
    /// waiting for a sync nobody leads), and every file is whole.
    #[test]
    fn concurrent_batches_share_syncs_and_all_finish() {
        let d = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..32)
            .map(|t| {
                let dir = d.path().to_path_buf();
                std::thread::spawn(move || {
                    for i in 0..8 {
                        let files: Vec<File> = (0..4)
                            .map(|k| {
                                let mut f = File::create(dir.join(format!("{t}-{i}-{k}"))).unwrap();
                                f.write_all(&[k as u8; 4096]).unwrap();
                                f
                            })
                            .collect();
                        let refs: Vec<&File> = files.iter().collect();
                        sync_files(&refs).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut n = 0;
        for e in std::fs::read_dir(d.path()).unwrap().flatten() {
            let k: u8 = e
                .file_name()
                .to_str()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(std::fs::read(e.path()).unwrap(), vec![k; 4096]);
            n += 1;
        }
        assert_eq!(n, 32 * 8 * 4);
    }

    #[test]
    fn no_files_is_nothing_to_do() {
        assert!(sync_files(&[]).is_ok());
    }
}
