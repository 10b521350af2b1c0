//! Counters for the Prometheus text endpoint (served by the HTTP port, `web.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

/// Latency bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// Which RPC decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rpc {
    Check,
    Verify,
    VerifyBatch,
    /// The AuthZEN evaluation endpoints (`authzen.rs`), one count per evaluation.
    Authzen,
}

impl Rpc {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rpc::Check => "check",
            Rpc::Verify => "verify",
            Rpc::VerifyBatch => "verify_batch",
            Rpc::Authzen => "authzen",
        }
    }
}

/// Every counter the sidecar keeps.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (rpc, result, code) -> count; code is `""` on allow.
    decisions: Mutex<BTreeMap<(Rpc, &'static str, &'static str), u64>>,
    latency_buckets: [AtomicU64; BUCKETS_US.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_entries: AtomicU64,
    pub cache_bytes: AtomicU64,
    pub cache_evictions: AtomicU64,
    pub shed: AtomicU64,
    pub health_shed: AtomicU64,
    /// Polls of the pack's files, changes seen but deferred (not yet stable over two polls),
    /// and the entries the last poll could not read.
    pub pack_polls: AtomicU64,
    pub pack_deferred: AtomicU64,
    pub pack_unreadable: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub log_dropped: AtomicU64,
    pack_version: Mutex<String>,
}

impl Metrics {
    pub(crate) fn decision(&self, rpc: Rpc, allowed: bool, code: &'static str) {
        let result = if allowed { "allow" } else { "deny" };
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((rpc, result, code)).or_insert(0) += 1;
        }
    }

    pub(crate) fn latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        for (bound, counter) in BUCKETS_US.iter().zip(&self.latency_buckets) {
            if us <= *bound {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub(crate) fn set_pack_version(&self, version: &str) {
        if let Ok(mut v) = self.pack_version.lock() {
            version.clone_into(&mut v);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render_decisions(&mut out);
        self.render_latency(&mut out);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters = [
            (
                "custody_decision_cache_hits_total",
                "Check decisions answered from the cache.",
                get(&self.cache_hits),
            ),
            (
                "custody_decision_cache_misses_total",
                "Check decisions computed (cache on).",
                get(&self.cache_misses),
            ),
            (
                "custody_decision_cache_evictions_total",
                "Live cache entries dropped to keep within the entry or byte bound.",
                get(&self.cache_evictions),
            ),
            (
                "custody_requests_shed_total",
                "RPCs refused over the concurrency limit.",
                get(&self.shed),
            ),
            (
                "custody_health_requests_shed_total",
                "Health requests refused over the health-check concurrency limit.",
                get(&self.health_shed),
            ),
            (
                "custody_pack_polls_total",
                "Polls of the pack's files for changes.",
                get(&self.pack_polls),
            ),
            (
                "custody_pack_changes_deferred_total",
                "Polls that saw a change not yet loaded: a change is loaded once unchanged over two polls.",
                get(&self.pack_deferred),
            ),
            (
                "custody_log_lines_dropped_total",
                "Decision log lines dropped (log writer behind).",
                get(&self.log_dropped),
            ),
        ];
        for (name, help, value) in counters {
            write_metric(&mut out, name, "counter", help, value);
        }
        write_metric(
            &mut out,
            "custody_decision_cache_entries",
            "gauge",
            "Entries in the decision cache.",
            get(&self.cache_entries),
        );
        write_metric(
            &mut out,
            "custody_decision_cache_bytes",
            "gauge",
            "Bytes charged to the decision cache's entries.",
            get(&self.cache_bytes),
        );
        write_metric(
            &mut out,
            "custody_pack_watch_unreadable_entries",
            "gauge",
            "Entries of the pack the last poll could not read (skipped, each logged once).",
            get(&self.pack_unreadable),
        );
        let _ = writeln!(
            out,
            "# HELP custody_pack_reloads_total Pack reloads by result.\n\
             # TYPE custody_pack_reloads_total counter\n\
             custody_pack_reloads_total{{result=\"ok\"}} {}\n\
             custody_pack_reloads_total{{result=\"error\"}} {}",
            get(&self.reloads_ok),
            get(&self.reloads_failed)
        );
        let version = self
            .pack_version
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP custody_pack_info The policy pack in force.\n# TYPE custody_pack_info gauge\n\
             custody_pack_info{{version=\"{}\"}} 1",
            escape_label(&version)
        );
        out
    }

    fn render_decisions(&self, out: &mut String) {
        out.push_str(
            "# HELP custody_decisions_total Decisions by RPC, result and first reason code.\n",
        );
        out.push_str("# TYPE custody_decisions_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            for ((rpc, result, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "custody_decisions_total{{rpc=\"{}\",result=\"{result}\",code=\"{code}\"}} {n}",
                    rpc.as_str()
                );
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        let name = "custody_decision_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to decide one RPC, queueing excluded."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, counter) in BUCKETS_US.iter().zip(&self.latency_buckets) {
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// One unlabelled metric with its `HELP` and `TYPE` lines.
fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Binds the HTTP port (`--metrics-listen`, alias `--http-listen`).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::ServeError::Listen {
            addr,
            metrics: true,
            source,
        })
}

/// What the verifier in force reports at scrape time (its caches are its own: a reload
/// starts them afresh).
pub(crate) type VerifierStats = Arc<dyn Fn() -> String + Send + Sync>;

/// The token cache of `v` in the text exposition format.
pub(crate) fn token_cache_text(v: &custody_verifier::Verifier) -> String {
    let c = v.token_cache();
    let stats = c.stats();
    let mut out = String::new();
    for (name, kind, help, value) in [
        (
            "custody_token_cache_hits_total",
            "counter",
            "Tokens answered from the verifier's token cache (since the pack in force loaded).",
            stats.hits,
        ),
        (
            "custody_token_cache_misses_total",
            "counter",
            "Signatures checked (since the pack in force loaded).",
            stats.misses,
        ),
        (
            "custody_token_cache_entries",
            "gauge",
            "Verified tokens held by the verifier in force.",
            c.len() as u64,
        ),
    ] {
        write_metric(&mut out, name, kind, help, value);
    }
    out
}

/// Each remote key source's state (labels `domain`, `source` (its keyword) and `url`).
pub(crate) fn key_sources_text(status: &[custody_sources::SourceStatus]) -> String {
    if status.is_empty() {
        return String::new();
    }
    let labels = |s: &custody_sources::SourceStatus| {
        format!(
            "domain=\"{}\",source=\"{}\",url=\"{}\"",
            escape_label(&s.domain),
            s.kind.keyword(),
            escape_label(&s.url)
        )
    };
    let mut out = String::new();
    type Value = fn(&custody_sources::SourceStatus) -> Option<u64>;
    let families: [(&str, &str, &str, Value); 6] = [
        (
            "custody_key_source_up",
            "gauge",
            "1 while the source's last good key set is served, else 0.",
            |s| Some(u64::from(s.keys.is_some())),
        ),
        (
            "custody_key_source_keys",
            "gauge",
            "Token keys in the source's last good set.",
            |s| Some(s.keys.unwrap_or(0) as u64),
        ),
        (
            "custody_key_source_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the source's last successful fetch.",
            |s| {
                s.last_success
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
            },
        ),
        (
            "custody_key_source_failures_total",
            "counter",
            "Failed or refused fetches of the source.",
            |s| Some(s.failures),
        ),
        (
            "custody_key_source_fetches_total",
            "counter",
            "Fetches of the source.",
            |s| Some(s.fetches),
        ),
        (
            "custody_key_source_sequence",
            "gauge",
            "The spiffe_sequence of the source's last good bundle.",
            |s| s.sequence,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in status {
            if let Some(v) = value(s) {
                let _ = writeln!(out, "{name}{{{}}} {v}", labels(s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.decision(Rpc::Check, true, "");
        m.decision(Rpc::Check, false, "expired");
        m.decision(Rpc::Check, false, "expired");
        m.latency(Duration::from_micros(300));
        m.set_pack_version("abc");
        let text = m.render();
        assert!(text
            .contains("custody_decisions_total{rpc=\"check\",result=\"deny\",code=\"expired\"} 2"));
        assert!(text.contains("custody_decision_latency_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("custody_decision_latency_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("custody_pack_info{version=\"abc\"} 1"));
    }
}
