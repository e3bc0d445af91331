#!/bin/sh
# The cgroups crate's tests for a guest: the test binary linked statically (crt-static, in the
# target dir the static agent uses) and an initramfs that is the guest's plus /bin/cgroups-tests
# (a second cpio archive appended: the kernel unpacks concatenated archives in order).
# __test__/cgroups/guest-v2.spec.ts boots it and runs the `guest_v2` tests against the guest's
# full cgroup2 (this host's cgroup2 offers no cpu/cpuset/memory/pids controllers).
#
#   scripts/build-cgroups-guest-tests.sh [OUT_DIR] [BASE_INITRAMFS]
#   → OUT_DIR/initramfs.cpio.gz (default build/cgroups-guest, base build/guest/initramfs.cpio.gz)
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/cgroups-guest}
base=${2:-build/guest/initramfs.cpio.gz}
[ -f "$base" ] || { echo "build-cgroups-guest-tests: $base missing (make guest)" >&2; exit 1; }
mkdir -p "$out"
bin=$(RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=target/guest-static \
  cargo test -p cgroups --release --target x86_64-unknown-linux-gnu --no-run --message-format=json |
  jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .target.name == "cgroups") | .executable')
[ -x "$bin" ] || { echo "build-cgroups-guest-tests: no test binary built" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin"
cp "$bin" "$work/root/bin/cgroups-tests"
(cd "$work/root" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0) | gzip -n >"$work/extra.cpio.gz"
tmp="$out/.initramfs.cpio.gz.$$"
cat "$base" "$work/extra.cpio.gz" >"$tmp"
mv "$tmp" "$out/initramfs.cpio.gz"
echo "$out/initramfs.cpio.gz"
