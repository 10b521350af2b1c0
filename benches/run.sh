#!/usr/bin/env bash
# Regenerates BENCHMARKS.md's issue-3 table: every criterion row of benches/benches/verify.rs in
# one run, then the 1,000,000-token memory run, then the table (src/bin/report.rs).
# Usage, from anywhere: bash benches/run.sh [extra criterion flags, e.g. --quick]
# Other work on the machine disturbs the timings: check `uptime` first; the table records the
# load average it was written under.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cargo bench -p custody-benches --bench verify -- "$@"
cargo run --release -q -p custody-benches --bin rss
cargo run --release -q -p custody-benches --bin report -- BENCHMARKS.md
