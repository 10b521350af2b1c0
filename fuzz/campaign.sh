#!/usr/bin/env bash
# A fuzz campaign: each named target (default: all) runs on stable without a sanitizer until it
# reaches FUZZ_RUNS executions (default 20,000,000) or FUZZ_SECONDS (default 600), whichever comes
# first, one target at a time, continuing from corpus/<target> (seeded from seeds/ and
# regressions/). Prints one table row per target for fuzz/README.md's campaign record.
# Logs go to $FUZZ_LOGS (default /tmp/custody-fuzz-logs). Exits non-zero if any target crashes.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-600}
runs=${FUZZ_RUNS:-20000000}
logs=${FUZZ_LOGS:-/tmp/custody-fuzz-logs}
mkdir -p "$logs"

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer none
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  for src in "seeds/$target" "regressions/$target"; do
    if [ -d "$src" ]; then
      cp -n -- "$src"/* "corpus/$target"/ 2>/dev/null || true
    fi
  done
  start=$(date +%s)
  status=ok
  # The binary cargo-fuzz built, run directly, so that edits elsewhere in the tree during a long
  # campaign never rebuild it halfway.
  if ! "$bin/$target" -artifact_prefix="artifacts/$target/" "corpus/$target" \
      -runs="$runs" -max_total_time="$seconds" -print_final_stats=1 >"$logs/$target.log" 2>&1; then
    status=CRASH
    failed+=("$target")
  fi
  end=$(date +%s)
  execs=$(grep -E '^stat::number_of_executed_units' "$logs/$target.log" | awk '{print $2}' | tail -n 1)
  execs=${execs:-0}
  secs=$((end - start))
  echo "| \`$target\` | $execs | $secs | $((execs / (secs > 0 ? secs : 1))) | $status |"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz campaign: crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in $logs)" >&2
  exit 1
fi
