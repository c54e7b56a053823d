//! Who wrote an exit-time coverage file: fanotify on the `--watch-dir`
//! directories shows the agent the process that opens a counter file, and
//! that process's cgroup (`/proc/<pid>/cgroup`, see [`crate::cgroup`])
//! names its container. [`crate::exits`] asks [`Writers`] about each
//! counter file it takes, by the file's device and inode (Go writes
//! `tmp.covcounters.…` and renames it; the rename keeps the inode).
//!
//! **Marks.** One inode mark per directory (`FAN_EVENT_ON_CHILD`): each
//! watched directory and every subdirectory down to the depth the agent
//! reads (`<namespace>/<pod>/<container>`), marked as it appears (an
//! inotify watch on the directories above that depth reports new
//! subdirectories; a walk every 10 s catches anything missed). A mount
//! mark would not do: a pod writes through its own bind mount of the
//! hostPath, a different mount from the agent's, and a mount mark sees
//! only its own mount. A filesystem mark would see those writes, but also
//! every open and close of the whole host filesystem (usually `/`), all
//! queued to the agent; inode marks cost nothing outside the watched
//! directories, whoever's mount the write goes through.
//!
//! **Events.** The writer must still exist when the agent reads its
//! cgroup, and a program that lives 20 ms exits microseconds after it
//! closes its counter file (`close`, `rename`, `exit`): on a quiet machine
//! about one in a hundred `FAN_CLOSE_WRITE` events arrives after the
//! process has been reaped. So the agent asks for `FAN_OPEN_PERM`
//! instead (a `FAN_CLASS_CONTENT` group): the writer waits in `open` of
//! `tmp.covcounters.…` until the agent, having read its cgroup, answers
//! `FAN_ALLOW` (always allow: the agent never denies). Only opens of
//! counter-file names cost a read of `/proc`; any other open in the
//! directories is answered at once, and the agent's own opens too. A
//! kernel without permission events (`CONFIG_FANOTIFY_ACCESS_PERMISSIONS`)
//! gets a notification group with `FAN_CLOSE_WRITE`: best effort. The
//! first open of a file wins (the writer creates it; a later reader does
//! not take it over).
//!
//! **Bounds and trust.** At most [`MAX_REMEMBERED`] files are remembered,
//! a quarter of that per container (or for the host), so one workload
//! opening many counter files pushes out only its own entries (oldest first
//! out; an entry also goes when its file is stored), and at most
//! [`MAX_MARKS`] directories are marked; an entry is used only for a file
//! of the same name (`tmp.` aside) and inode, so a reused inode never
//! inherits an old attribution. The agent never reads a file's content
//! here: it looks at the event's descriptor (`fstat`, its name in
//! `/proc/self/fd`) and at `/proc/<pid>/cgroup` (at most 64 KiB).
//! Subdirectories are opened relative to their parent with `O_NOFOLLOW`
//! and marked by descriptor, so a symbolic link swapped in is never
//! followed; the event descriptors are opened `O_NONBLOCK` (a FIFO does
//! not stall the agent) and non-regular files are ignored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyEvent, FanotifyResponse, InitFlags, MarkFlags, MaskFlags,
    Response,
};
use nix::sys::inotify::{AddWatchFlags, InitFlags as InotifyInit, Inotify};

use crate::cgroup::{ContainerRef, container_of};

/// Most files whose writers are remembered.
pub const MAX_REMEMBERED: usize = 4096;
/// Most directories marked.
pub const MAX_MARKS: usize = 4096;
/// Deepest directory marked below a watched directory (as
/// [`crate::exits`] reads).
const MAX_DEPTH: usize = 3;
/// Largest `/proc/<pid>/cgroup` read.
const MAX_CGROUP_BYTES: u64 = 64 << 10;
/// A full walk of the watched directories this often.
const REWALK: Duration = Duration::from_secs(10);
/// A walk this soon after inotify reports a new directory.
const REWALK_SOON: Duration = Duration::from_millis(20);

/// Where the process that wrote a file ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// In no container: a host process.
    Host,
    /// In this container.
    Container(ContainerRef),
}

/// What the agent saw of a file's writer.
#[derive(Debug, Clone)]
pub struct Seen {
    pub writer: Writer,
    /// The writer's PID in the agent's PID namespace.
    pub pid: u32,
    /// When the writer opened the file.
    pub at: Instant,
}

/// A file's device and inode.
pub type FileKey = (u64, u64);

/// The final name of a counter file, from the name it has or had
/// (`tmp.covcounters.…` while Go writes it).
pub fn final_counter_name(name: &str) -> Option<&str> {
    let name = name.strip_prefix("tmp.").unwrap_or(name);
    crate::exits::counter_file_name(name).map(|_| name)
}

/// Whose entries count together: a container's, or the host's.
fn owner_of(w: &Writer) -> Option<&str> {
    match w {
        Writer::Host => None,
        Writer::Container(c) => Some(c.id.as_str()),
    }
}

#[derive(Debug, Default)]
struct Table {
    map: HashMap<FileKey, (String, Seen, u64)>,
    /// Insertion order (entries replaced or forgotten since are skipped).
    order: VecDeque<(FileKey, u64)>,
    seq: u64,
    /// Entries per container (`None`: the host).
    counts: HashMap<Option<String>, usize>,
}

impl Table {
    fn take_out(&mut self, key: &FileKey) {
        if let Some((_, seen, _)) = self.map.remove(key) {
            let owner = owner_of(&seen.writer).map(str::to_string);
            if let Some(n) = self.counts.get_mut(&owner) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&owner);
                }
            }
        }
    }

    fn live(&self, k: &FileKey, seq: u64) -> bool {
        self.map.get(k).is_some_and(|e| e.2 == seq)
    }
}

/// Files' writers by device and inode, bounded in all and per container
/// (so that one container writing or opening many counter files does not
/// push the others' out).
#[derive(Debug)]
pub struct Writers {
    inner: Mutex<Table>,
    cap: usize,
    per_writer: usize,
}

impl Writers {
    /// A table of at most `cap` files, `cap / 4` of one container (or of
    /// the host).
    pub fn new(cap: usize) -> Writers {
        let cap = cap.max(1);
        Writers {
            inner: Mutex::new(Table::default()),
            cap,
            per_writer: (cap / 4).max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the writer of this file under this final name is known.
    pub fn knows(&self, key: FileKey, name: &str) -> bool {
        self.lock().map.get(&key).is_some_and(|(n, _, _)| n == name)
    }

    /// Remembers a file's writer. Beyond the bounds the oldest entry goes:
    /// the writer's own oldest when it has `cap / 4`, else the oldest of
    /// all.
    pub fn remember(&self, key: FileKey, name: String, seen: Seen) {
        let mut guard = self.lock();
        let t = &mut *guard;
        t.take_out(&key);
        let owner = owner_of(&seen.writer).map(str::to_string);
        if t.counts.get(&owner).copied().unwrap_or(0) >= self.per_writer {
            let oldest = t.order.iter().find(|(k, s)| {
                t.live(k, *s)
                    && t.map
                        .get(k)
                        .is_some_and(|e| owner_of(&e.1.writer) == owner.as_deref())
            });
            if let Some((k, _)) = oldest.copied() {
                t.take_out(&k);
            }
        }
        t.seq += 1;
        let seq = t.seq;
        t.map.insert(key, (name, seen, seq));
        *t.counts.entry(owner).or_default() += 1;
        t.order.push_back((key, seq));
        while t.map.len() > self.cap {
            let Some((k, s)) = t.order.pop_front() else {
                break;
            };
            if t.live(&k, s) {
                t.take_out(&k);
            }
        }
        if t.order.len() > 2 * self.cap {
            let map = &t.map;
            t.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.2 == *s));
        }
    }

    /// The writer of a file, if it was seen under this final name.
    pub fn get(&self, key: FileKey, name: &str) -> Option<Seen> {
        self.lock()
            .map
            .get(&key)
            .filter(|(n, _, _)| n == name)
            .map(|(_, s, _)| s.clone())
    }

    /// Forgets a file (stored and removed).
    pub fn forget(&self, key: FileKey) {
        self.lock().take_out(&key);
    }

    /// Files remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the writers are seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `FAN_OPEN_PERM`: the writer waits for the agent.
    OpenPermission,
    /// `FAN_CLOSE_WRITE` (no permission events in this kernel): the writer
    /// may be gone when the event is read.
    CloseWrite,
}

/// Why fanotify cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("fanotify_init: {0} (it needs CAP_SYS_ADMIN)")]
    Init(Errno),
    #[error("inotify_init: {0}")]
    Inotify(Errno),
}

/// The fanotify watch of the `--watch-dir` directories: a thread that
/// fills [`Writers`], stopped on drop.
#[derive(Debug)]
pub struct Watcher {
    writers: Arc<Writers>,
    mode: Mode,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `dirs` (those that exist now are marked before this
    /// returns; the others when they appear, within 10 s).
    /// `proc_root` is where `<pid>/cgroup` of the event PIDs is read.
    pub fn start(dirs: Vec<PathBuf>, proc_root: PathBuf) -> Result<Watcher, StartError> {
        Watcher::start_as(dirs, proc_root, Mode::OpenPermission)
    }

    /// [`Watcher::start`] in `mode` ([`Mode::CloseWrite`] also when the
    /// kernel has no permission events).
    fn start_as(dirs: Vec<PathBuf>, proc_root: PathBuf, mode: Mode) -> Result<Watcher, StartError> {
        let event_flags = EventFFlags::O_RDONLY
            | EventFFlags::O_CLOEXEC
            | EventFFlags::O_LARGEFILE
            | EventFFlags::O_NONBLOCK;
        let base = InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK;
        let content = match mode {
            Mode::OpenPermission => {
                Fanotify::init(base | InitFlags::FAN_CLASS_CONTENT, event_flags)
            }
            Mode::CloseWrite => Err(Errno::EINVAL),
        };
        let (fan, mode) = match content {
            Ok(f) => (f, Mode::OpenPermission),
            Err(Errno::EINVAL) => (
                Fanotify::init(base | InitFlags::FAN_CLASS_NOTIF, event_flags)
                    .map_err(StartError::Init)?,
                Mode::CloseWrite,
            ),
            Err(e) => return Err(StartError::Init(e)),
        };
        let inotify = Inotify::init(InotifyInit::IN_CLOEXEC | InotifyInit::IN_NONBLOCK)
            .map_err(StartError::Inotify)?;
        let writers = Arc::new(Writers::new(MAX_REMEMBERED));
        let mut w = Worker {
            fan,
            inotify,
            mode,
            dirs,
            proc_root,
            writers: writers.clone(),
            marked: HashSet::new(),
            me: std::process::id(),
            warned_marks: false,
        };
        w.walk();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fanotify".into())
            .spawn(move || w.run(&s))
            .ok();
        Ok(Watcher {
            writers,
            mode,
            stop,
            thread,
        })
    }

    pub fn writers(&self) -> &Arc<Writers> {
        &self.writers
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    fan: Fanotify,
    inotify: Inotify,
    mode: Mode,
    dirs: Vec<PathBuf>,
    proc_root: PathBuf,
    writers: Arc<Writers>,
    /// Directories marked (device, inode), as of the last walk.
    marked: HashSet<FileKey>,
    me: u32,
    warned_marks: bool,
}

fn key_of(fd: BorrowedFd<'_>) -> Option<(FileKey, std::fs::FileType)> {
    let f = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let md = f.metadata().ok()?;
    Some(((md.dev(), md.ino()), md.file_type()))
}

/// A directory of a walk: open, or a parent's child to open when its turn
/// comes (so that a walk holds few descriptors).
enum ToOpen {
    Open(OwnedFd),
    Child(Arc<OwnedFd>, std::ffi::OsString),
}

/// Opens a subdirectory of `parent` without following a symbolic link.
fn open_subdir(parent: &OwnedFd, name: &std::ffi::OsStr) -> Option<OwnedFd> {
    use rustix::fs::{Mode as FileMode, OFlags};
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        FileMode::empty(),
    )
    .ok()
}

fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Worker {
    fn mask(&self) -> MaskFlags {
        let m = match self.mode {
            Mode::OpenPermission => MaskFlags::FAN_OPEN_PERM,
            Mode::CloseWrite => MaskFlags::FAN_CLOSE_WRITE,
        };
        m | MaskFlags::FAN_EVENT_ON_CHILD
    }

    /// Marks every directory down to [`MAX_DEPTH`] not marked yet.
    fn walk(&mut self) {
        let mut seen: HashSet<FileKey> = HashSet::new();
        for root in self.dirs.clone() {
            let Ok(f) = std::fs::File::open(&root) else {
                continue;
            };
            let mut stack: Vec<(ToOpen, usize)> = vec![(ToOpen::Open(OwnedFd::from(f)), 0)];
            while let Some((dir, depth)) = stack.pop() {
                let fd = match dir {
                    ToOpen::Open(fd) => fd,
                    ToOpen::Child(parent, name) => match open_subdir(&parent, &name) {
                        Some(fd) => fd,
                        None => continue,
                    },
                };
                let Some((key, ft)) = key_of(fd.as_fd()) else {
                    continue;
                };
                if !ft.is_dir() || !seen.insert(key) || seen.len() > MAX_MARKS {
                    continue;
                }
                if !self.marked.contains(&key) {
                    if self.marked.len() >= MAX_MARKS {
                        if !self.warned_marks {
                            self.warned_marks = true;
                            tracing::warn!(
                                limit = MAX_MARKS,
                                "too many directories to watch; files in the others are attributed by path"
                            );
                        }
                        continue;
                    }
                    if let Err(e) = self.fan.mark(
                        MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_ONLYDIR,
                        self.mask(),
                        &fd,
                        None::<&Path>,
                    ) {
                        tracing::debug!(dir = %root.display(), depth, error = %e, "cannot mark a directory");
                        continue;
                    }
                    if depth < MAX_DEPTH
                        && let Err(e) = self.inotify.add_watch(
                            &fd_path(fd.as_fd()),
                            AddWatchFlags::IN_CREATE
                                | AddWatchFlags::IN_MOVED_TO
                                | AddWatchFlags::IN_ONLYDIR,
                        )
                    {
                        tracing::debug!(error = %e, "cannot watch a directory for new subdirectories");
                    }
                    self.marked.insert(key);
                }
                if depth >= MAX_DEPTH {
                    continue;
                }
                let Ok(rd) = std::fs::read_dir(fd_path(fd.as_fd())) else {
                    continue;
                };
                let parent = Arc::new(fd);
                for e in rd.flatten() {
                    // file_type() does not follow symbolic links.
                    if e.file_type().is_ok_and(|t| t.is_dir()) && stack.len() < MAX_MARKS {
                        stack.push((ToOpen::Child(parent.clone(), e.file_name()), depth + 1));
                    }
                }
            }
        }
        // Directories gone (their marks went with them) or moved away.
        self.marked.retain(|k| seen.contains(k));
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut last_walk = Instant::now();
        let mut soon = false;
        while !stop.load(Ordering::Relaxed) {
            let wait = if soon {
                REWALK_SOON
            } else {
                Duration::from_millis(250)
            };
            let (fan_ready, dirs_ready) = {
                let mut fds = [
                    PollFd::new(self.fan.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                ];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(_) => (fds[0].any().unwrap_or(false), fds[1].any().unwrap_or(false)),
                    Err(Errno::EINTR) => (false, false),
                    Err(e) => {
                        tracing::warn!(error = %e, "fanotify: poll failed; attributing by path from now on");
                        return;
                    }
                }
            };
            if fan_ready {
                self.drain();
            }
            if dirs_ready {
                while let Ok(evs) = self.inotify.read_events() {
                    if evs.is_empty() {
                        break;
                    }
                    soon |= evs.iter().any(|e| {
                        e.mask
                            .intersects(AddWatchFlags::IN_ISDIR | AddWatchFlags::IN_Q_OVERFLOW)
                    });
                }
            }
            if (soon && last_walk.elapsed() >= REWALK_SOON) || last_walk.elapsed() >= REWALK {
                self.walk();
                last_walk = Instant::now();
                soon = false;
            }
        }
    }

    fn drain(&self) {
        loop {
            match self.fan.read_events() {
                Ok(evs) if evs.is_empty() => return,
                Ok(evs) => {
                    for e in &evs {
                        self.handle(e);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "fanotify: read failed");
                    return;
                }
            }
        }
    }

    fn handle(&self, e: &FanotifyEvent) {
        let Some(fd) = e.fd() else {
            tracing::debug!("fanotify: events lost (queue overflow); those files go by path");
            return;
        };
        if e.check_version()
            && let Ok(pid) = u32::try_from(e.pid())
            && pid != 0
            && pid != self.me
        {
            self.note(fd, pid);
        }
        if e.mask().contains(MaskFlags::FAN_OPEN_PERM)
            && let Err(err) = self
                .fan
                .write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW))
        {
            tracing::warn!(error = %err, "fanotify: cannot answer a permission event");
        }
    }

    /// Remembers who opened (or closed) a counter file.
    fn note(&self, fd: BorrowedFd<'_>, pid: u32) {
        let Some((key, ft)) = key_of(fd) else { return };
        if !ft.is_file() {
            return;
        }
        let Ok(link) = std::fs::read_link(fd_path(fd)) else {
            return;
        };
        let Some(name) = link
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(final_counter_name)
        else {
            return;
        };
        if self.writers.knows(key, name) {
            return;
        }
        let Some(text) = read_cgroup(&self.proc_root, pid) else {
            tracing::debug!(
                pid,
                file = name,
                "the writer of a counter file is gone; path attribution"
            );
            return;
        };
        let writer = container_of(&text).map_or(Writer::Host, Writer::Container);
        tracing::debug!(pid, file = name, ?writer, "counter file writer seen");
        self.writers.remember(
            key,
            name.to_string(),
            Seen {
                writer,
                pid,
                at: Instant::now(),
            },
        );
    }
}

/// `/proc/<pid>/cgroup`, at most [`MAX_CGROUP_BYTES`]; None when the
/// process is gone.
fn read_cgroup(proc_root: &Path, pid: u32) -> Option<String> {
    let f = std::fs::File::open(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    let mut text = String::new();
    f.take(MAX_CGROUP_BYTES).read_to_string(&mut text).ok()?;
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef";

    fn seen(pid: u32) -> Seen {
        Seen {
            writer: Writer::Host,
            pid,
            at: Instant::now(),
        }
    }

    fn pod(id: &str) -> Seen {
        Seen {
            writer: Writer::Container(ContainerRef {
                runtime: crate::cgroup::Runtime::CriO,
                id: id.into(),
                pod_uid: None,
            }),
            pid: 1,
            at: Instant::now(),
        }
    }

    #[test]
    fn counter_names_with_and_without_tmp() {
        let n = format!("covcounters.{H}.7.123");
        assert_eq!(final_counter_name(&n), Some(n.as_str()));
        assert_eq!(final_counter_name(&format!("tmp.{n}")), Some(n.as_str()));
        assert_eq!(final_counter_name(&format!("tmp.covmeta.{H}123")), None);
        assert_eq!(final_counter_name(&format!("tmp.tmp.{n}")), None);
    }

    #[test]
    fn one_writer_does_not_push_the_others_out() {
        let w = Writers::new(8);
        let name = |i: u64| format!("covcounters.{H}.{i}.1");
        w.remember((1, 0), name(0), pod("a"));
        w.remember((1, 1), name(1), seen(1));
        for i in 10..1000u64 {
            w.remember((1, i), name(i), pod("flood"));
        }
        // The flood keeps its newest 2 (8 / 4); the others stay.
        assert!(w.get((1, 0), &name(0)).is_some());
        assert!(w.get((1, 1), &name(1)).is_some());
        assert!(w.get((1, 999), &name(999)).is_some());
        assert!(w.get((1, 998), &name(998)).is_some());
        assert_eq!(w.len(), 4);
        let t = w.inner.lock().unwrap();
        assert_eq!(t.counts.get(&Some("flood".to_string())), Some(&2));
        assert!(t.order.len() <= 16);
    }

    #[test]
    fn the_table_is_bounded_and_checks_names() {
        let w = Writers::new(3);
        let name = |i: u64| format!("covcounters.{H}.{i}.1");
        for i in 0..10u64 {
            w.remember((1, i), name(i), pod(&format!("c{i}")));
        }
        assert_eq!(w.len(), 3);
        assert!(w.get((1, 0), &name(0)).is_none(), "oldest first out");
        assert!(w.get((1, 9), &name(9)).is_some());
        // A reused inode under another name is not the same file.
        assert!(w.get((1, 9), &name(8)).is_none());
        // Replacing one entry over and over keeps the order queue bounded.
        for i in 0..100u64 {
            w.remember((1, 9), name(i), seen(1));
        }
        assert_eq!(w.len(), 3);
        assert!(w.inner.lock().unwrap().order.len() <= 6);
        w.forget((1, 9));
        assert_eq!(w.len(), 2);
    }

    /// Real fanotify (needs CAP_SYS_ADMIN; skipped unless root): a counter
    /// file a child process creates (as `tmp.…`, then renamed) in a watched
    /// directory, and in a subdirectory made after the watch started, is
    /// remembered with that process as its writer; a directory reached
    /// through a symbolic link is not watched; this process's own files
    /// (the agent's) are not taken for a writer's.
    #[test]
    fn fanotify_sees_the_writer_of_a_counter_file() {
        let d = tempfile::tempdir().unwrap();
        let w = match Watcher::start(vec![d.path().to_path_buf()], "/proc".into()) {
            Ok(w) => w,
            Err(e) if !rustix::process::geteuid().is_root() => {
                eprintln!("skipped (not root): {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let write = |dir: &Path, pid: u32| {
            let n = format!("covcounters.{H}.{pid}.1");
            let tmp = dir.join(format!("tmp.{n}"));
            let st = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "echo x > '{}' && mv '{}' '{}'",
                    tmp.display(),
                    tmp.display(),
                    dir.join(&n).display()
                ))
                .status()
                .unwrap();
            assert!(st.success());
            let md = std::fs::metadata(dir.join(&n)).unwrap();
            ((md.dev(), md.ino()), n)
        };
        let (k1, n1) = write(d.path(), 11);
        let sub = d.path().join("made/later");
        std::fs::create_dir_all(&sub).unwrap();
        let mut found = None;
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(10));
            if w.writers().get(k1, &n1).is_some() {
                found = Some(());
                break;
            }
        }
        assert!(found.is_some(), "writer of a file in the watched directory");
        let s = w.writers().get(k1, &n1).unwrap();
        // The shell runs in this process's cgroup.
        let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        assert_eq!(
            s.writer,
            container_of(&mine).map_or(Writer::Host, Writer::Container)
        );
        assert_ne!(s.pid, std::process::id());
        // The new subdirectory is marked within moments.
        std::thread::sleep(Duration::from_millis(200));
        let (k2, n2) = write(&sub, 12);
        let deadline = Instant::now() + Duration::from_secs(2);
        while w.writers().get(k2, &n2).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            w.writers().get(k2, &n2).is_some(),
            "a subdirectory made later"
        );
        // A symbolic link to a directory outside is not followed.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("made/link")).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (k3, n3) = write(outside.path(), 13);
        std::thread::sleep(Duration::from_millis(200));
        assert!(w.writers().get(k3, &n3).is_none());
        // The agent's own opens are not taken for a writer's.
        let n4 = format!("covcounters.{H}.14.1");
        std::fs::write(d.path().join(&n4), b"x").unwrap();
        let md = std::fs::metadata(d.path().join(&n4)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(w.writers().get((md.dev(), md.ino()), &n4).is_none());
        assert_eq!(w.mode(), Mode::OpenPermission);
    }

    /// The fallback without permission events (`FAN_CLOSE_WRITE`, real
    /// fanotify; skipped unless root): a writer that is still there when
    /// the event is read is seen.
    #[test]
    fn close_write_mode_sees_a_writer_still_running() {
        let d = tempfile::tempdir().unwrap();
        let w = match Watcher::start_as(
            vec![d.path().to_path_buf()],
            "/proc".into(),
            Mode::CloseWrite,
        ) {
            Ok(w) => w,
            Err(e) if !rustix::process::geteuid().is_root() => {
                eprintln!("skipped (not root): {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(w.mode(), Mode::CloseWrite);
        let n = format!("covcounters.{H}.21.1");
        let tmp = d.path().join(format!("tmp.{n}"));
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo x > '{}' && mv '{}' '{}' && sleep 2",
                tmp.display(),
                tmp.display(),
                d.path().join(&n).display()
            ))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut key = None;
        while Instant::now() < deadline {
            if let Ok(md) = std::fs::metadata(d.path().join(&n)) {
                key = Some((md.dev(), md.ino()));
                if w.writers().get((md.dev(), md.ino()), &n).is_some() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let s = w.writers().get(key.expect("file written"), &n);
        assert!(s.is_some(), "writer seen at close");
    }
}
