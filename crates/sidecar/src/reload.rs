//! Reload triggers: SIGHUP, and a poll of the files the pack is made of (every
//! `--reload-interval-ms`).
//!
//! **What is watched.** The pack directory's entries the loader reads (`*.trust`, `*.cedar`,
//! `*.cedarschema`, `entities.json`: a new one counts) and every other file the pack in force
//! read: its `keys` and `biscuit_keys` files, wherever they are. Each by metadata, symbolic
//! links followed as the loader follows them: size, modification and change times, device and
//! inode, so an in-place edit, an atomic rename and a swapped symlink (a Kubernetes ConfigMap)
//! all show; a watched key file that disappears is a change too.
//!
//! **Unreadable entries.** An entry that cannot be read (a dangling symbolic link such as an
//! editor's `.#pack.trust` lock, permission denied) is skipped with a warning
//! (`reload_entry_skipped`, once while the problem lasts; the gauge
//! `custody_pack_watch_unreadable_entries`); the rest of the poll goes on. A pack directory
//! that cannot be listed skips the poll, with one warning (`reload_poll_failed`).
//!
//! **Stable over two polls.** A change is loaded only once a poll finds the files exactly as
//! the previous poll did: a file caught half-written, even one that parses, is not loaded while
//! the writer is still writing. Each deferral is logged (`reload_deferred`, counted in
//! `custody_pack_changes_deferred_total`), and so is a change undone before it was loaded
//! (`reload_change_reverted`). A writer that pauses longer than one interval in the middle of a
//! file can still be caught: write to another name (`pack.trust.tmp`, which is not watched) and
//! rename it into place, which is atomic. SIGHUP reloads at once, without the two-poll rule.
//!
//! **Changes during a load.** After a reload the files are known as the poll before it saw
//! them, so a change made while the pack loads is seen at the next poll. When the pack in force
//! reads other key files than before (at start, or after a trust file named new ones), those
//! are first looked at after the load: if any watched file was modified within a second of the
//! load's start or later, the pack is loaded once more after the next poll.

use std::collections::BTreeSet;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use custody_policy::{PackEntry, PolicyPack};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::state::State;

/// Entries of the pack directory looked at, at most.
const MAX_ENTRIES: usize = 10_000;

/// A watched file modified this long before a load started, or later, may have changed while
/// the load read it (coarse file system clocks included).
const RECENT: Duration = Duration::from_secs(1);

/// The files of `pack` outside its directory listing: its key files, wherever they are.
pub(crate) fn pack_files(pack: &PolicyPack) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = pack
        .domains
        .iter()
        .flat_map(|d| {
            let ca = d.ca.as_ref().map(|c| &c.path);
            d.key_files.iter().chain(&d.biscuit_key_files).chain(ca)
        })
        .cloned()
        .collect();
    files.sort();
    files.dedup();
    files
}

/// One poll's view of the watched files.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// A digest of every watched file's metadata (an absent one as absent).
    pub digest: [u8; 32],
    /// Entries that could not be read: (path, why).
    pub unreadable: BTreeSet<(String, String)>,
    /// The latest modification or change time among the watched files.
    newest: Option<SystemTime>,
}

/// The watched files of the pack in `dir` whose other files are `files`; `Err` when the
/// directory cannot be listed.
pub(crate) fn snapshot(dir: &Path, files: &[PathBuf]) -> Result<Snapshot, String> {
    let mut entries: Vec<(String, Option<Metadata>)> = Vec::new();
    let mut unreadable = BTreeSet::new();
    let listing = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the pack directory `{}`: {e}", dir.display()))?;
    for entry in listing.take(MAX_ENTRIES) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                unreadable.insert((dir.display().to_string(), e.to_string()));
                continue;
            }
        };
        if PackEntry::of(Path::new(&entry.file_name())).is_none() {
            continue;
        }
        let path = entry.path();
        // follows symbolic links, as the loader does
        match std::fs::metadata(&path) {
            // the loader skips what is not a file
            Ok(m) if !m.is_file() => {}
            Ok(m) => entries.push((format!("dir:{}", path.display()), Some(m))),
            Err(e) => {
                unreadable.insert((path.display().to_string(), e.to_string()));
            }
        }
    }
    for f in files {
        let m = match std::fs::metadata(f) {
            Ok(m) => Some(m),
            Err(e) => {
                unreadable.insert((f.display().to_string(), e.to_string()));
                None
            }
        };
        entries.push((format!("file:{}", f.display()), m));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    let mut newest = None;
    for (name, meta) in &entries {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        match meta {
            None => h.update([0]),
            Some(m) => {
                h.update([1]);
                for v in stat(m) {
                    h.update(v.to_be_bytes());
                }
                newest = newest.max(changed(m));
            }
        }
    }
    Ok(Snapshot {
        digest: h.finalize().into(),
        unreadable,
        newest,
    })
}

/// What of a file's metadata shows a change.
#[cfg(unix)]
fn stat(m: &Metadata) -> [i64; 7] {
    use std::os::unix::fs::MetadataExt as _;
    let (ino, dev, len) = (m.ino(), m.dev(), m.len());
    [
        i64::from_ne_bytes(len.to_ne_bytes()),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        i64::from_ne_bytes(ino.to_ne_bytes()),
        i64::from_ne_bytes(dev.to_ne_bytes()),
    ]
}

#[cfg(not(unix))]
fn stat(m: &Metadata) -> [i64; 7] {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let len = i64::try_from(m.len()).unwrap_or(i64::MAX);
    let secs = i64::try_from(mtime.as_secs()).unwrap_or(i64::MAX);
    [len, secs, i64::from(mtime.subsec_nanos()), 0, 0, 0, 0]
}

/// The later of a file's modification and change (rename, permissions) times.
fn changed(m: &Metadata) -> Option<SystemTime> {
    let modified = m.modified().ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let ctime = u64::try_from(m.ctime()).ok().and_then(|secs| {
            let nanos = u32::try_from(m.ctime_nsec()).unwrap_or(0);
            UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
        });
        modified.max(ctime)
    }
    #[cfg(not(unix))]
    modified
}

/// What the poller knows between polls.
#[derive(Debug, Default)]
pub(crate) struct Watcher {
    /// The watched files as the pack in force read them; `None` when not known for sure
    /// (a change may have raced the load): the next stable poll reloads.
    loaded: Option<[u8; 32]>,
    /// A change the last poll saw and did not load yet.
    pending: Option<[u8; 32]>,
    /// The unreadable entries already reported.
    reported: BTreeSet<(String, String)>,
    /// The directory listing failure already reported.
    dir_problem: Option<String>,
}

impl Watcher {
    /// The watcher for a pack just loaded. `before` was taken before the load began (at
    /// `started`) over `before_files`; the pack loaded reads `files` (`None`: the load
    /// failed). Blocking (file metadata).
    pub(crate) fn after_load(
        dir: &Path,
        before: Result<Snapshot, String>,
        before_files: &[PathBuf],
        files: Option<&[PathBuf]>,
        started: SystemTime,
    ) -> Watcher {
        let mut w = Watcher::default();
        let Ok(before) = before else {
            return w;
        };
        match files {
            None => w.loaded = Some(before.digest),
            Some(files) if files == before_files => w.loaded = Some(before.digest),
            Some(files) => {
                // the new files are first looked at now: trust what is seen only if nothing
                // watched changed since shortly before the load began
                let since = started.checked_sub(RECENT).unwrap_or(UNIX_EPOCH);
                if let Ok(after) = snapshot(dir, files) {
                    if after.newest.is_some_and(|t| t >= since) {
                        w.pending = Some(after.digest);
                    } else {
                        w.loaded = Some(after.digest);
                    }
                }
            }
        }
        w
    }

    /// Reports each unreadable entry once while it lasts.
    fn report(&mut self, state: &State, unreadable: &BTreeSet<(String, String)>) {
        state
            .metrics
            .pack_unreadable
            .store(unreadable.len() as u64, Ordering::Relaxed);
        for (path, error) in unreadable.difference(&self.reported) {
            state.log.event(
                "warn",
                "reload_entry_skipped",
                json!({"path": path, "error": error, "note": "the entry is skipped; the rest of the pack is still watched"}),
            );
        }
        self.reported.clone_from(unreadable);
    }

    /// One poll: reloads when the watched files changed and have stayed so since the last
    /// poll.
    pub(crate) async fn poll(&mut self, state: &State) {
        state.metrics.pack_polls.fetch_add(1, Ordering::Relaxed);
        let files = pack_files(state.verifier.load().pack());
        let dir = state.policies.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let snap = snapshot(&dir, &files);
            (snap, files)
        })
        .await;
        let Ok((snap, files)) = looked else {
            return;
        };
        let snap = match snap {
            Ok(s) => {
                self.dir_problem = None;
                s
            }
            Err(e) => {
                if self.dir_problem.as_ref() != Some(&e) {
                    let serving = state.verifier.load().pack().version.clone();
                    state.log.event(
                        "warn",
                        "reload_poll_failed",
                        json!({"error": e, "serving": serving}),
                    );
                    self.dir_problem = Some(e);
                }
                return;
            }
        };
        self.report(state, &snap.unreadable);
        if self.loaded == Some(snap.digest) {
            if self.pending.take().is_some() {
                state.log.event(
                    "info",
                    "reload_change_reverted",
                    json!({"note": "the files changed back before the change was loaded"}),
                );
            }
            return;
        }
        if self.pending != Some(snap.digest) {
            let again = self.pending.replace(snap.digest).is_some();
            state.metrics.pack_deferred.fetch_add(1, Ordering::Relaxed);
            state.log.event(
                "info",
                "reload_deferred",
                json!({
                    "reason": if again { "still changing" } else { "changed" },
                    "note": "a change is loaded once the files are unchanged over two polls",
                }),
            );
            return;
        }
        self.pending = None;
        let started = SystemTime::now();
        // a failed load is logged by `reload`; it is tried again at the next change
        let _ = state.reload("file_change").await;
        let now_files = pack_files(state.verifier.load().pack());
        if now_files == files {
            self.loaded = Some(snap.digest);
            return;
        }
        let dir = state.policies.clone();
        let before_files = files;
        let settled = tokio::task::spawn_blocking(move || {
            Watcher::after_load(&dir, Ok(snap), &before_files, Some(&now_files), started)
        })
        .await;
        match settled {
            Ok(w) => {
                self.loaded = w.loaded;
                self.pending = w.pending;
            }
            Err(_) => self.loaded = None,
        }
    }
}

/// Polls the pack's files and reloads when they changed. Runs until the task is dropped.
pub(crate) async fn watch(state: Arc<State>, interval: Duration, mut watcher: Watcher) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        watcher.poll(&state).await;
    }
}

/// Reloads on every SIGHUP. Runs until the task is dropped.
#[cfg(unix)]
pub(crate) async fn on_sighup(state: Arc<State>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        state.log.event(
            "warn",
            "no_sighup",
            serde_json::json!({"error": "cannot install a SIGHUP handler"}),
        );
        return;
    };
    while hup.recv().await.is_some() {
        let _ = state.reload("sighup").await;
    }
}

#[cfg(not(unix))]
pub(crate) async fn on_sighup(_state: Arc<State>) {}
