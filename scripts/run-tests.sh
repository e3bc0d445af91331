#!/usr/bin/env bash
# Runs every check and test suite, keeps going after a failure, and ends with `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=build/test-logs
mkdir -p "$logs"
passed=0
failed=0

check() { # name, command... — a lint-style check counts as one test
  local name=$1; shift
  if "$@" >"$logs/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; tail -n 40 "$logs/$name.log"
  fi
}

check rustfmt cargo fmt --all -- --check
check clippy cargo clippy --workspace --all-targets --release --target x86_64-unknown-linux-gnu -- -D warnings
check tsc npx tsc --noEmit -p tsconfig.json

# cargo test: sum the per-binary result lines.
cargo test --workspace --release --target x86_64-unknown-linux-gnu >"$logs/cargo-test.log" 2>&1
cargo_rc=$?
cp_=$(grep -Eo '[0-9]+ passed' "$logs/cargo-test.log" | awk '{s+=$1} END {print s+0}')
cf_=$(grep -Eo '[0-9]+ failed' "$logs/cargo-test.log" | awk '{s+=$1} END {print s+0}')
if [ $cargo_rc -ne 0 ] && [ "$cf_" -eq 0 ]; then cf_=1; tail -n 40 "$logs/cargo-test.log"; fi
[ "$cf_" -gt 0 ] && grep -E '^(test .* FAILED|---- )' "$logs/cargo-test.log" | head -40
echo "cargo test: $cp_ passed, $cf_ failed"
passed=$((passed + cp_)); failed=$((failed + cf_))

# ava (TypeScript via tsx), TAP for exact counts; the human log keeps the details.
npx ava --tap >"$logs/ava.tap" 2>"$logs/ava.stderr"
ava_rc=$?
ap=$(grep -E '^# pass ' "$logs/ava.tap" | awk '{print $3}' | tail -1)
af=$(grep -E '^# fail ' "$logs/ava.tap" | awk '{print $3}' | tail -1)
ap=${ap:-0}; af=${af:-0}
if [ $ava_rc -ne 0 ] && [ "$af" -eq 0 ]; then af=1; tail -n 40 "$logs/ava.stderr"; fi
[ "$af" -gt 0 ] && grep -E -A 12 '^not ok' "$logs/ava.tap" | head -80
echo "ava: $ap passed, $af failed"
passed=$((passed + ap)); failed=$((failed + af))

# libFuzzer smoke (issue 13): every cargo-fuzz target for a few seconds, no sanitizer (the
# build is the cost); `make fuzz` is the longer run that records figures in bench/results.json.
check fuzz-smoke env FUZZ_SECONDS=5 FUZZ_SANITIZER=none FUZZ_RESULTS= bash scripts/fuzz.sh

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
