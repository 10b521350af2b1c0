#!/usr/bin/env bash
# The CI fuzz step: every target for a short, fixed time (FUZZ_SECONDS, default 20) on a copy of
# its committed seeds and past crashes, so the work tree is not modified. Installs cargo-fuzz if
# it is missing. Exits non-zero if any target crashes (the input is left in fuzz/artifacts/).
# Runs on the stable toolchain without a sanitizer; see fuzz/README.md for ASan.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One target at a time: `cargo fuzz run` builds only its own binary, which is removed after its
# run, so the disk holds the shared dependencies and one instrumented binary, not nineteen.
bin_dir="target/$(rustc -vV | awk '/^host:/ {print $2}')/release"
failed=()
for target in $(cargo fuzz list); do
  corpus="$work/$target"
  mkdir -p "$corpus"
  for src in "seeds/$target" "regressions/$target"; do
    if [ -d "$src" ]; then
      cp -- "$src"/* "$corpus"/ 2>/dev/null || true
    fi
  done
  cargo fuzz build --sanitizer none "$target"
  echo "== fuzz $target for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
  if ! cargo fuzz run --sanitizer none "$target" "$corpus" -- \
      -max_total_time="$seconds" -print_final_stats=1 2>"$work/$target.log"; then
    grep -A3 -E 'panicked at|ERROR: libFuzzer|^SUMMARY' "$work/$target.log" | head -n 20 || true
    grep -E 'artifacts/' "$work/$target.log" | head -n 2 || true
    failed+=("$target")
  else
    grep -E '^(stat::number_of_executed_units|Done )' "$work/$target.log" || true
  fi
  # the binary is in release/ and, under its hashed name, in release/deps/: remove both
  rm -f -- "$bin_dir/$target"
  find "$bin_dir/deps" -maxdepth 1 -type f -perm -u+x -name "$target-*" -delete
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz smoke: no crash"
