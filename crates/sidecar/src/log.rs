//! Structured logs: one JSON object per line on standard error. Decision lines carry the
//! origin, actors, action, result, reason codes and latency, never a token.
//!
//! Lines go through a bounded queue to a writer thread, so a slow terminal never stalls a
//! decision; when the queue is full, in lines or in bytes, a line is dropped and counted
//! (`custody_log_lines_dropped_total`). The byte bound matters because a line quotes the
//! request's action, which only the message size limits.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::metrics::{Metrics, Rpc};
use custody_verifier::Decision;

/// Lines queued at most before dropping.
const QUEUE: usize = 16 * 1024;

/// Bytes of lines queued at most before dropping, 16 MiB: several seconds of decision lines at
/// 10,000 decisions a second (a line is a few hundred bytes), while a writer that has stopped
/// (a full pipe) cannot make the queue hold 16,384 lines of megabytes each.
const QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// A handle to the log writer.
#[derive(Clone, Debug)]
pub(crate) struct Logger {
    tx: SyncSender<String>,
    /// Bytes of the lines in the queue.
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    decisions: bool,
}

/// What one decision line says.
pub(crate) struct DecisionLine<'a> {
    pub rpc: Rpc,
    pub action: &'a str,
    pub peer: Option<&'a str>,
    pub decision: &'a Decision,
    pub latency: Duration,
    pub cached: bool,
    pub pack: &'a str,
}

impl Logger {
    /// Starts the writer thread.
    pub(crate) fn start(metrics: Arc<Metrics>, decisions: bool) -> Logger {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = Arc::clone(&queued);
        let spawned = std::thread::Builder::new()
            .name("custody-log".into())
            .spawn(move || write_lines(&rx, &writer_queued));
        if let Err(e) = spawned {
            eprintln!("custody: cannot start the log writer: {e}");
        }
        Logger {
            tx,
            queued,
            metrics,
            decisions,
        }
    }

    /// Logs an event: `{"ts":…,"level":…,"event":…, fields…}`.
    pub(crate) fn event(&self, level: &str, event: &str, fields: Value) {
        let mut m = Map::new();
        m.insert("ts".into(), timestamp().into());
        m.insert("level".into(), level.into());
        m.insert("event".into(), event.into());
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        self.send(Value::Object(m).to_string());
    }

    /// Logs one decision (unless decision logging is off).
    pub(crate) fn decision(&self, line: &DecisionLine<'_>) {
        if !self.decisions {
            return;
        }
        let d = line.decision;
        let codes: Vec<&str> = d.reasons.iter().map(|r| r.code.as_str()).collect();
        let (origin, actors) = match &d.chain {
            Some(c) => (c.origin.as_str(), c.actors.clone()),
            None => ("", Vec::new()),
        };
        self.event(
            "info",
            "decision",
            json!({
                "rpc": line.rpc.as_str(),
                "decision": if d.is_allowed() { "allow" } else { "deny" },
                "codes": codes,
                "origin": origin,
                "actors": actors,
                "action": line.action,
                "peer": line.peer,
                "latency_us": u64::try_from(line.latency.as_micros()).unwrap_or(u64::MAX),
                "cached": line.cached,
                "pack": line.pack,
            }),
        );
    }

    fn send(&self, line: String) {
        let len = line.len();
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(len).filter(|n| *n <= QUEUE_BYTES)
            })
            .is_ok();
        if !reserved {
            self.metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                self.metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(line)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                eprintln!("{line}");
            }
        }
    }
}

/// Writes lines as they come, a batch at a time; standard error is locked only while a batch
/// is written, so other writers (`eprintln!`) never wait for the next line.
fn write_lines(rx: &Receiver<String>, queued: &AtomicUsize) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(line) = rx.recv() {
        buf.clear();
        queued.fetch_sub(line.len(), Ordering::AcqRel);
        let _ = writeln!(buf, "{line}");
        while buf.len() < 64 * 1024 {
            let Ok(more) = rx.try_recv() else { break };
            queued.fetch_sub(more.len(), Ordering::AcqRel);
            let _ = writeln!(buf, "{more}");
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&buf);
        let _ = err.flush();
    }
}

/// RFC 3339 UTC with milliseconds.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logger whose writer never runs: every line stays queued.
    fn stalled() -> (Logger, Receiver<String>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let logger = Logger {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            metrics: Arc::new(Metrics::default()),
            decisions: true,
        };
        (logger, rx)
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let (log, rx) = stalled();
        let mib = "x".repeat(1024 * 1024);
        for _ in 0..QUEUE_BYTES / mib.len() {
            log.send(mib.clone());
        }
        assert_eq!(log.metrics.log_dropped.load(Ordering::Relaxed), 0);
        assert_eq!(log.queued.load(Ordering::Relaxed), QUEUE_BYTES);
        log.send(mib.clone());
        log.send("y".into());
        assert_eq!(log.metrics.log_dropped.load(Ordering::Relaxed), 2);
        assert_eq!(rx.try_iter().count(), QUEUE_BYTES / mib.len());
    }

    #[test]
    fn the_queue_is_bounded_in_lines() {
        let (log, rx) = stalled();
        for _ in 0..QUEUE + 3 {
            log.send("z".into());
        }
        assert_eq!(log.metrics.log_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(log.queued.load(Ordering::Relaxed), QUEUE);
        assert_eq!(rx.try_iter().count(), QUEUE);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_454), (2026, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }
}
