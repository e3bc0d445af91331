#!/usr/bin/env bash
# Runs every check and test suite, keeps going after a failure, and ends with the line
#   N passed, N failed, N skipped
# counting tests only: cargo test (passed / failed / ignored) plus ava (TAP pass / fail / skip,
# todo counted as skipped). Checks (rustfmt, clippy, tsc, prettier, fuzz-smoke, harness-runc) are
# not tests: each prints `check <name>: ok|FAIL` on its own line, and a failed check fails the run.
# Every skipped test is listed by name. With CI=true a promised suite (PROMISED_SUITES below)
# with any skipped test fails the run: CI machines must have what those suites need.
# Exit status: 0 only when no test failed, no check failed and (in CI) no promised suite skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=build/test-logs
mkdir -p "$logs"

# Promised suites: `name|spec files (globs under __test__/)`. A suite whose globs match no file
# yet is reported as "not present" and checked once its spec files exist.
# The guest suites run once per agent image (__test__/guest/guest-images.ts forEachGuestImage:
# ours and kata-agent), each skip loud; the minimal kernel is the guests' default (make kernel is
# a prerequisite of make guest), so its own suite is promised with them.
PROMISED_SUITES=(
  'guest|guest/e2e.spec.ts guest/agent-requests.spec.ts guest/storage-kinds.spec.ts guest/minimal-kernel.spec.ts guest/security-context.spec.ts guest/resources.spec.ts qemu/guest.spec.ts lifecycle/guest-run.spec.ts lifecycle/concurrent-pods.spec.ts'
  'cri|shim/stats.spec.ts shim/tty.spec.ts shim/update.spec.ts shim/cri-refusals.spec.ts containerd/*.spec.ts network/*.spec.ts'
  'rootless|lifecycle/rootless.spec.ts rootless/*.spec.ts'
  'containerd-shim|shim/shim-tasks.spec.ts shim/shim-guest.spec.ts shim/shim-protocol.spec.ts lifecycle/shim-commands.spec.ts'
  'cgroups|cgroups/*.spec.ts'
  'kata-agent|kata-agent/*.spec.ts */kata-agent*.spec.ts'
  'stock-config|config/stock-config.spec.ts guest/pci-bridge.spec.ts qemu/stock-config-run.spec.ts'
  'security|shim/shim-security.spec.ts shim/control-socket.spec.ts shim/shim-task-methods.spec.ts shim/shim-failed-create.spec.ts shim/shim-hostile-bundle.spec.ts lifecycle/shared-fs.spec.ts lifecycle/leftovers.spec.ts lifecycle/crash-cleanup.spec.ts faults/*.spec.ts cli/output-files.spec.ts'
)

failed_checks=()
check() { # name, command... — reported on its own line, never counted as a test
  local name=$1
  shift
  if "$@" >"$logs/check-$name.log" 2>&1; then
    echo "check $name: ok"
  else
    echo "check $name: FAIL"
    tail -n 40 "$logs/check-$name.log" | sed 's/^/    /'
    failed_checks+=("$name")
  fi
}

check rustfmt cargo fmt --all -- --check
check clippy cargo clippy --workspace --all-targets --release --target x86_64-unknown-linux-gnu -- -D warnings
check tsc npx tsc --noEmit -p tsconfig.json
check prettier npm run --silent format:check

# cargo test: sum the `test result:` lines of every test binary and doc-test run.
# Rust tests that need root carry `#[ignore = "needs root: …"]`: run when we are root, else
# reported as skipped with that reason (cargo has no runtime skip). The cgroups crate's
# `guest_v2_*` tests are ignored for another reason: they need the TCG guest's full cgroup2 and
# are run there by __test__/cgroups/guest-v2.spec.ts, so they are filtered out here.
include_ignored=()
[ "$(id -u)" = 0 ] && include_ignored=(-- --include-ignored --skip guest_v2_)
cargo test --workspace --release --target x86_64-unknown-linux-gnu "${include_ignored[@]}" >"$logs/cargo-test.log" 2>&1
cargo_rc=$?
read -r cp cf ci < <(grep -E '^test result: ' "$logs/cargo-test.log" |
  awk '{ for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
       END { print p+0, f+0, g+0 }')
if [ "$cargo_rc" -ne 0 ] && [ "$cf" -eq 0 ]; then
  # A build error or a crashed test binary: no result line says so.
  cf=1
  echo "cargo test exited $cargo_rc without a failed test:"
  tail -n 40 "$logs/cargo-test.log" | sed 's/^/    /'
fi
[ "$cf" -gt 0 ] && grep -E '^(test .* FAILED|---- )' "$logs/cargo-test.log" | head -40
echo "cargo test: $cp passed, $cf failed, $ci skipped"
grep -E '^test .* \.\.\. ignored' "$logs/cargo-test.log" |
  sed -E 's/^test (.*) \.\.\. ignored, (.*)$/  skipped (cargo): \1 [\2]/; s/^test (.*) \.\.\. ignored$/  skipped (cargo): \1/'

# ava (TypeScript via tsx): TAP for exact counts and titles.
npx ava --tap >"$logs/ava.tap" 2>"$logs/ava.stderr"
ava_rc=$?
count() { grep -E "^# $1 [0-9]+" "$logs/ava.tap" | awk '{ print $3 }' | tail -1; }
ap=$(count pass)
af=$(count fail)
as=$(count skip)
ap=${ap:-0}
af=${af:-0}
as=${as:-0}
todo=$(grep -cE '^not ok [0-9]+ - .* # TODO$' "$logs/ava.tap")
# supertap counts a todo under `# fail`; it is a test not written yet, so it counts as skipped.
af=$((af - todo))
as=$((as + todo))
if [ "$ava_rc" -ne 0 ] && [ "$af" -eq 0 ]; then
  af=1
  echo "ava exited $ava_rc without a failed test:"
  tail -n 40 "$logs/ava.stderr" | sed 's/^/    /'
fi
# Each failure with its YAML block (not the todos, which TAP also marks `not ok`).
[ "$af" -gt 0 ] && awk '/^(not )?ok [0-9]+ - / { show = /^not ok/ && !/# TODO$/ } show' "$logs/ava.tap" | head -80
echo "ava: $ap passed, $af failed, $as skipped"
grep -E '^ok [0-9]+ - .* # SKIP$|^not ok [0-9]+ - .* # TODO$' "$logs/ava.tap" |
  sed -E 's/^(not )?ok [0-9]+ - (.*) # (SKIP|TODO)$/  skipped (ava): \2/'

# The harness check: the private containerd harness proven with Debian's runc shim. It tests the
# harness, not kata-ts, so it is not counted among the tests.
if [ "$(id -u)" = 0 ]; then
  check harness-runc npx ava __test__/containerd/runc-baseline.check.ts
else
  echo "check harness-runc: skipped (needs root)"
fi

# libFuzzer smoke: every cargo-fuzz target for a few seconds, no sanitizer (the build is the
# cost); `make fuzz` is the longer run that records figures in bench/results.json.
check fuzz-smoke env FUZZ_SECONDS=5 FUZZ_SANITIZER=none FUZZ_RESULTS= bash scripts/fuzz.sh

# Promised suites: ava prefixes each title with the spec file's path below __test__/, `.spec`
# and the extension dropped, parts joined by ` › ` (` » ` on terminals without unicode).
tap_prefix() { # __test__-relative spec path → regex matching its TAP title prefix
  local dir file
  dir=$(dirname "$1")
  file=$(basename "$1" | sed -E 's/\.spec\././; s/\.test\././; s/test-//; s/\.ts$//')
  printf '%s' "$dir/$file" | sed -E 's/[.[\*^$()+?{}|]/\\&/g; s#/# [›»] #g'
}
suite_failures=()
for entry in "${PROMISED_SUITES[@]}"; do
  name=${entry%%|*}
  files=()
  for glob in ${entry#*|}; do
    for f in __test__/$glob; do [ -f "$f" ] && files+=("${f#__test__/}"); done
  done
  if [ "${#files[@]}" -eq 0 ]; then
    echo "suite $name: not present yet (${entry#*|})"
    continue
  fi
  ran=0 skipped=0
  for f in "${files[@]}"; do
    re="^(not )?ok [0-9]+ - $(tap_prefix "$f") [›»] "
    ran=$((ran + $(grep -cE "$re" "$logs/ava.tap")))
    skipped=$((skipped + $(grep -E "$re" "$logs/ava.tap" | grep -cE '# (SKIP|TODO)$')))
  done
  if [ "$ran" -eq 0 ]; then
    echo "suite $name: no test reported (${files[*]})"
    suite_failures+=("$name")
  elif [ "$skipped" -gt 0 ]; then
    echo "suite $name: $skipped of $ran tests skipped"
    [ "${CI:-}" = true ] && suite_failures+=("$name")
  else
    echo "suite $name: $ran tests ran"
  fi
done

passed=$((cp + ap))
failed=$((cf + af))
skipped=$((ci + as))
status=0
[ "$failed" -eq 0 ] || status=1
if [ "${#failed_checks[@]}" -gt 0 ]; then
  echo "failed checks: ${failed_checks[*]}"
  status=1
fi
if [ "${#suite_failures[@]}" -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "CI=true: promised suites skipped or missing: ${suite_failures[*]}"
  else
    echo "promised suites missing from the run: ${suite_failures[*]}"
  fi
  status=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
