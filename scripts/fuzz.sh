#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets in fuzz/ (cargo-fuzz), runs each for a bounded time,
# and merges `fuzz.<target>` figures (executions, seconds, crashes) into bench/results.json.
# Exits non-zero if any target crashed; the crashing inputs are in fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_SECONDS    run time per target (default 20; the CI smoke uses 10)
#   FUZZ_TARGETS    space-separated subset of targets (default: all of `cargo fuzz list`)
#   FUZZ_SANITIZER  address (default) | none (no ASan: faster build, still catches panics)
#   FUZZ_RESULTS    results file to merge into (default bench/results.json; empty: none)
#   FUZZ_TOOLCHAIN  nightly | stable (default: nightly when rustup has one installed)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-address}
results=${FUZZ_RESULTS-bench/results.json}
target_dir=fuzz/target
logs=build/fuzz
mkdir -p "$logs"

# cargo-fuzz from crates.io, into cargo's default bin dir, when `cargo fuzz` is missing.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# libFuzzer instrumentation needs unstable rustc flags: nightly when installed, else stable
# with RUSTC_BOOTSTRAP=1 (CI machines may only have stable).
toolchain=${FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then toolchain=nightly; else toolchain=stable; fi
fi
if [ "$toolchain" = nightly ]; then
  fuzz=(cargo +nightly fuzz)
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
  # A rustup default of nightly must not sneak in: pin stable when rustup is there.
  if command -v rustup >/dev/null 2>&1; then fuzz=(env RUSTC_BOOTSTRAP=1 cargo +stable fuzz); fi
fi

targets=${FUZZ_TARGETS:-$("${fuzz[@]}" list)}
flags=(-s "$sanitizer" --target-dir "$target_dir")

echo "fuzz: building (${fuzz[*]}, sanitizer $sanitizer)"
build_start=$(date +%s.%N)
"${fuzz[@]}" build "${flags[@]}" >"$logs/build.log" 2>&1 || { tail -n 40 "$logs/build.log"; exit 2; }
build_seconds=$(awk -v a="$build_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "fuzz: build took ${build_seconds} s"

# The fuzz targets' scratch files (copy_paths builds trees there) stay under the target dir.
scratch=$target_dir/tmp
rm -rf "$scratch" && mkdir -p "$scratch"
summary=$logs/summary.tsv
: >"$summary"
total_crashes=0
for t in $targets; do
  # New corpus units go to a scratch corpus; the committed seeds in fuzz/corpus/<t> are read only.
  work=$target_dir/corpus/$t
  artifacts=fuzz/artifacts/$t
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
  stamp=$logs/$t.stamp
  touch "$stamp"
  log=$logs/$t.log
  start=$(date +%s.%N)
  rc=0
  TMPDIR=$PWD/$scratch "${fuzz[@]}" run "${flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    >"$log" 2>&1 || rc=$?
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
  [ -n "$execs" ] || execs=$(grep -Eo '^#[0-9]+[[:space:]]+DONE' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
  execs=${execs:-0}
  secs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -Eo 'in [0-9]+' | grep -Eo '[0-9]+' | tail -1 || true)
  secs=${secs:-$wall}
  crashes=$(find "$artifacts" -maxdepth 1 -type f -newer "$stamp" \
    \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    echo "fuzz: $t exited $rc without an artifact"; tail -n 40 "$log"; crashes=1
  fi
  if [ "$crashes" -gt 0 ]; then
    grep -E -A 8 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "$log" | head -30 || true
  fi
  total_crashes=$((total_crashes + crashes))
  printf '%s\t%s\t%s\t%s\n' "$t" "$execs" "$secs" "$crashes" >>"$summary"
  printf 'fuzz.%-18s %10s executions in %5s s, %s crash(es)\n' "$t" "$execs" "$secs" "$crashes"
done
rm -rf "$scratch"

# Read-modify-write: keep every other key. The Metric fields (kind/ours/peer/ratio/unit/note) let
# bench/run.ts print these rows in its table like any other figure: an absolute figure, no peer.
if [ -n "$results" ]; then
  node - "$results" "$summary" "$sanitizer" <<'JS'
const fs = require('node:fs');
const [file, summary, sanitizer] = process.argv.slice(2);
const results = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
for (const line of fs.readFileSync(summary, 'utf8').split('\n').filter(Boolean)) {
  const [target, executions, seconds, crashes] = line.split('\t');
  const [n, s, c] = [Number(executions), Number(seconds), Number(crashes)];
  const perSecond = s > 0 ? Math.round(n / s) : 0;
  results[`fuzz.${target}`] = {
    executions: n, seconds: s, crashes: c,
    kind: 'absolute', ours: perSecond, peer: null, ratio: null, unit: 'exec/s',
    note: `cargo fuzz (libFuzzer, sanitizer ${sanitizer}): ${n} executions in ${s} s, ${c} crash(es)`,
  };
}
const sorted = Object.fromEntries(Object.entries(results).sort(([a], [b]) => a.localeCompare(b)));
fs.writeFileSync(file, `${JSON.stringify(sorted, null, 2)}\n`);
JS
  echo "fuzz: merged into $results"
fi

if [ "$total_crashes" -gt 0 ]; then
  echo "fuzz: $total_crashes crash(es); inputs in fuzz/artifacts/<target>/ (reproduce: cargo +nightly fuzz run <target> <file>)"
  exit 1
fi
echo "fuzz: no crashes"
