//! Watching the directory: notify's thread forwards paths into a tokio task
//! that debounces them per path and applies them under the mutation lock.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::RegistryError;
use super::engine::Inner;
use super::store::relative_name;

/// Under a continuous stream of writes, a path is read at the latest this
/// many debounce periods after its first event.
const MAX_WAIT_FACTOR: u32 = 8;
/// A missing file is looked at again after this many debounce periods before
/// its deletion is recorded.
const CONFIRM_FACTOR: u32 = 4;

/// A running watch of the registry directory; dropping it stops the watch.
pub struct Watcher {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // A change being applied finishes on its blocking thread (it holds
        // the mutation lock there), so aborting here leaves no half change.
        self.task.abort();
    }
}

enum Signal {
    /// Something happened at this path (relative to the root).
    Path(String),
    /// Events may have been lost: look at everything.
    Rescan,
}

/// Start watching: the root (not recursively) and each visible top-level
/// directory (recursively), so the history is not watched.
pub(crate) async fn start(inner: Arc<Inner>) -> Result<Watcher, RegistryError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let root = inner.root.clone();
    let handler_root = root.clone();
    let handler = move |event: notify::Result<notify::Event>| forward(&handler_root, event, &tx);
    let setup_root = root.clone();
    let (watcher, dirs) = tokio::task::spawn_blocking(move || -> Result<_, RegistryError> {
        let watch_error = |path: &Path, source| RegistryError::Watch { path: path.display().to_string(), source };
        let mut watcher = notify::recommended_watcher(handler).map_err(|e| watch_error(&setup_root, e))?;
        watcher.watch(&setup_root, RecursiveMode::NonRecursive).map_err(|e| watch_error(&setup_root, e))?;
        let mut dirs = HashSet::new();
        for dir in top_level_dirs(&setup_root) {
            let path = setup_root.join(&dir);
            watcher.watch(&path, RecursiveMode::Recursive).map_err(|e| watch_error(&path, e))?;
            dirs.insert(dir);
        }
        Ok((watcher, dirs))
    })
    .await
    .map_err(|e| RegistryError::Internal(format!("the watcher setup failed: {e}")))??;
    let watcher = Arc::new(Mutex::new(watcher));
    let task = tokio::spawn(run(inner, rx, Arc::downgrade(&watcher), dirs));
    Ok(Watcher { _watcher: watcher, task })
}

/// Visible directories directly under the root.
fn top_level_dirs(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// On notify's thread: keep the events that may change content, as paths
/// relative to the root.
fn forward(root: &Path, event: notify::Result<notify::Event>, tx: &mpsc::UnboundedSender<Signal>) {
    let event = match event {
        Ok(e) => e,
        Err(error) => {
            tracing::warn!(%error, "registry watcher error; rescanning");
            let _ = tx.send(Signal::Rescan);
            return;
        }
    };
    if event.need_rescan() {
        let _ = tx.send(Signal::Rescan);
    }
    let relevant = match event.kind {
        // Our own reads open files; only a write being closed matters.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    };
    if !relevant {
        return;
    }
    for path in &event.paths {
        if let Some(rel) = relevant_path(root, path) {
            let _ = tx.send(Signal::Path(rel));
        }
    }
}

/// The path relative to the root, unless it is the root, hidden (the
/// history, temporary files), not UTF-8, or an editor's temporary file.
fn relevant_path(root: &Path, path: &Path) -> Option<String> {
    let rel = relative_name(path.strip_prefix(root).ok()?)?;
    if rel.split('/').any(|c| c.starts_with('.')) {
        return None;
    }
    let file = rel.rsplit('/').next().unwrap_or(&rel);
    let editor_temp = file.ends_with('~')
        || file.ends_with(".swp")
        || file.ends_with(".swx")
        || file.ends_with(".swo")
        || file == "4913"
        || (file.starts_with('#') && file.ends_with('#'));
    (!editor_temp).then_some(rel)
}

struct Pending {
    first: Instant,
    last: Instant,
    /// Set for the last look at a missing or empty file: what is found
    /// then is taken as it is.
    confirm_at: Option<Instant>,
}

impl Pending {
    fn fresh(now: Instant) -> Self {
        Pending { first: now, last: now, confirm_at: None }
    }

    fn due(&self, debounce: Duration) -> Instant {
        match self.confirm_at {
            Some(at) => at,
            None => (self.last + debounce).min(self.first + debounce * MAX_WAIT_FACTOR),
        }
    }
}

async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Signal>,
    watcher: Weak<Mutex<RecommendedWatcher>>,
    mut dirs: HashSet<String>,
) {
    // Bounded so that deadlines computed from it cannot overflow.
    let debounce = inner.options.debounce.min(Duration::from_secs(60));
    let mut pending: HashMap<String, Pending> = HashMap::new();
    // What changed between `open` and the first event.
    let (later, new_dirs) = rescan(&inner, &watcher, dirs).await;
    dirs = new_dirs;
    look_again(&mut pending, later, debounce);
    let mut rescan_at: Option<Instant> = None;
    loop {
        let next = pending.values().map(|p| p.due(debounce)).chain(rescan_at).min();
        tokio::select! {
            signal = rx.recv() => match signal {
                None => break,
                Some(Signal::Path(rel)) => {
                    let now = Instant::now();
                    pending
                        .entry(rel)
                        .and_modify(|p| {
                            if p.confirm_at.is_some() {
                                *p = Pending::fresh(now);
                            } else {
                                p.last = now;
                            }
                        })
                        .or_insert_with(|| Pending::fresh(now));
                }
                Some(Signal::Rescan) => {
                    rescan_at.get_or_insert(Instant::now() + debounce);
                }
            },
            () = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                if rescan_at.is_some_and(|at| at <= now) {
                    rescan_at = None;
                    pending.clear();
                    let (later, new_dirs) = rescan(&inner, &watcher, dirs).await;
                    dirs = new_dirs;
                    look_again(&mut pending, later, debounce);
                    continue;
                }
                let due: Vec<(String, bool)> = pending
                    .iter()
                    .filter(|(_, p)| p.due(debounce) <= now)
                    .map(|(rel, p)| (rel.clone(), p.confirm_at.is_some()))
                    .collect();
                for (rel, _) in &due {
                    pending.remove(rel);
                }
                let (later, new_dirs) = apply(&inner, &watcher, due, dirs).await;
                dirs = new_dirs;
                look_again(&mut pending, later, debounce);
            }
        }
    }
}

/// Schedule a last look at documents whose file was missing or empty (a
/// fresh event for the same path takes precedence).
fn look_again(pending: &mut HashMap<String, Pending>, names: Vec<String>, debounce: Duration) {
    let at = Instant::now() + debounce * CONFIRM_FACTOR;
    for name in names {
        pending.entry(name).or_insert(Pending { first: at, last: at, confirm_at: Some(at) });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Apply a batch of due paths under the mutation lock, on a blocking thread.
/// Returns the documents to look at again and the watched top-level dirs.
async fn apply(
    inner: &Arc<Inner>,
    watcher: &Weak<Mutex<RecommendedWatcher>>,
    due: Vec<(String, bool)>,
    mut dirs: HashSet<String>,
) -> (Vec<String>, HashSet<String>) {
    let held = inner.lock().await;
    let task_inner = Arc::clone(inner);
    let watcher = watcher.upgrade();
    let fallback = dirs.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut later = Vec::new();
        for (rel, settled) in due {
            if !rel.contains('/') {
                // An event on the directory itself: created, deleted or replaced.
                track_dir(&task_inner.root, watcher.as_ref(), &rel, &mut dirs, true);
            }
            later.extend(task_inner.sync_path(&held, &rel, settled));
        }
        (later, dirs)
    })
    .await;
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "registry watcher batch failed");
        (Vec::new(), fallback)
    })
}

/// Look at everything again (after `open`, or when events were lost).
/// Returns the documents to look at again and the watched top-level dirs.
async fn rescan(
    inner: &Arc<Inner>,
    watcher: &Weak<Mutex<RecommendedWatcher>>,
    mut dirs: HashSet<String>,
) -> (Vec<String>, HashSet<String>) {
    let held = inner.lock().await;
    let task_inner = Arc::clone(inner);
    let watcher = watcher.upgrade();
    let fallback = dirs.clone();
    let result = tokio::task::spawn_blocking(move || {
        for dir in top_level_dirs(&task_inner.root) {
            track_dir(&task_inner.root, watcher.as_ref(), &dir, &mut dirs, false);
        }
        let later = task_inner.sync_all(&held, None, false);
        (later, dirs)
    })
    .await;
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "registry rescan failed");
        (Vec::new(), fallback)
    })
}

/// Keep the recursive watch of a top-level directory in step with its
/// existence (a directory created later is watched from then on). With
/// `force`, watch it again even if it was watched (it may be a new
/// directory of the same name).
fn track_dir(
    root: &Path,
    watcher: Option<&Arc<Mutex<RecommendedWatcher>>>,
    dir: &str,
    dirs: &mut HashSet<String>,
    force: bool,
) {
    let path: PathBuf = root.join(dir);
    let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        dirs.remove(dir);
        return;
    }
    if dirs.contains(dir) && !force {
        return;
    }
    if let Some(watcher) = watcher {
        match watcher.lock().watch(&path, RecursiveMode::Recursive) {
            Ok(()) => {
                dirs.insert(dir.to_owned());
            }
            Err(error) => tracing::warn!(path = %path.display(), %error, "registry cannot watch a directory"),
        }
    }
}
