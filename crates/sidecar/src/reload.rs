//! Reload triggers: SIGHUP, and a poll of the pack directory's file names, sizes and
//! modification times (every `--reload-interval-ms`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::state::State;

/// Entries looked at in the pack directory at most, and how deep.
const MAX_ENTRIES: usize = 10_000;
const MAX_DEPTH: usize = 4;

/// A digest of the directory's file names, sizes and modification times; `None` when the
/// directory cannot be read.
pub(crate) fn fingerprint(dir: &Path) -> Option<[u8; 32]> {
    let mut entries = Vec::new();
    walk(dir, Path::new(""), 0, &mut entries).ok()?;
    entries.sort();
    let mut h = Sha256::new();
    for (path, len, mtime) in entries {
        h.update((path.len() as u64).to_be_bytes());
        h.update(path.as_bytes());
        h.update(len.to_be_bytes());
        h.update(mtime.to_be_bytes());
    }
    Some(h.finalize().into())
}

fn walk(
    dir: &Path,
    rel: &Path,
    depth: usize,
    out: &mut Vec<(String, u64, u128)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        if out.len() >= MAX_ENTRIES {
            break;
        }
        let entry = entry?;
        // follows symbolic links, as the loader does
        let meta = std::fs::metadata(entry.path())?;
        let rel = rel.join(entry.file_name());
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                walk(&entry.path(), &rel, depth + 1, out)?;
            }
            continue;
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        out.push((rel.to_string_lossy().into_owned(), meta.len(), mtime));
    }
    Ok(())
}

async fn fingerprint_async(dir: &Path) -> Option<[u8; 32]> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || fingerprint(&dir))
        .await
        .ok()
        .flatten()
}

/// Polls the pack directory and reloads when it changed. Runs until the task is dropped.
pub(crate) async fn watch(state: Arc<State>, interval: Duration, mut last: Option<[u8; 32]>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = fingerprint_async(&state.policies).await;
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        let _ = state.reload("file_change").await;
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
