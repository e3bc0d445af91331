#!/usr/bin/env bash
# Builds the upstream kata-agent test peer (../shared/peers/kata-agent, read-only) as a static
# binary, once per machine, into a cache outside the clone:
#   $KATA_TS_CACHE/kata-agent-<key>/kata-agent   (KATA_TS_CACHE default /var/cache/kata-ts)
# <key> hashes everything the binary depends on: UPSTREAM_REV, Cargo.lock, the manifests and
# sources of the trimmed tree, the features, RUSTFLAGS and `rustc -vV`. The cargo target dir
# (kata-agent-target/) is shared between keys, so a changed input recompiles only what changed.
# Built as the peer's README says: --locked --release -p kata-agent, crt-static, plus the
# `init-data` feature (initdata is exercised by the guest suites), from a copy of the tree in
# the cache (kata-agent-src/): the tree itself is never written.
# Prints the binary's path as the last line of stdout.
# Usage: build-kata-agent.sh [--no-wait | --print-path]   (--print-path: print the cached path and exit 0 if
#        it is built, exit 1 if not; never builds)
# Exit codes: 0 built/cached; 3 the peer tree is absent (a user's clone without ../shared:
#             the kata-agent suites skip and say so; CI=true makes that a failure); 4 --no-wait and
#             another build is running; other: failure.
set -euo pipefail
no_wait=0
if [ "${1:-}" = --no-wait ]; then no_wait=1 && shift; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
peer=${KATA_AGENT_PEER:-$repo/../shared/peers/kata-agent}
features=init-data
rustflags='-C target-feature=+crt-static'
target=x86_64-unknown-linux-gnu
cache=${KATA_TS_CACHE:-/var/cache/kata-ts}

if [ ! -f "$peer/Cargo.toml" ] || [ ! -f "$peer/UPSTREAM_REV" ]; then
  {
    echo "################################################################################"
    echo "build-kata-agent: SKIPPED: no kata-agent peer tree at $peer"
    echo "build-kata-agent: (../shared/peers/kata-agent is shipped with the project's CI machines,"
    echo "build-kata-agent:  not with a user's clone; set KATA_AGENT_PEER to a kata-agent tree)"
    echo "################################################################################"
  } >&2
  exit 3
fi
peer=$(cd "$peer" && pwd)

# Inputs of the build. The trimmed tree is hashed file by file (sorted relative paths), so the
# key does not depend on where ../shared is mounted.
key=$(
  {
    echo "features=$features rustflags=$rustflags target=$target"
    rustc -vV
    (cd "$peer" && find . -type f ! -path './target/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
)
out="$cache/kata-agent-$key"
bin="$out/kata-agent"

if [ "${1:-}" = --print-path ]; then
  [ -x "$bin" ] && { echo "$bin"; exit 0; }
  exit 1
fi

mkdir -p "$cache"
# One build per machine at a time; a second caller waits and then finds the binary cached.
exec 9>"$cache/kata-agent.lock"
# --no-wait (make's prerequisite of `guest`): while another build holds the lock, say so and exit 4
# instead of blocking; the guest is then built without this artifact.
if [ "$no_wait" = 1 ]; then
  flock -n 9 || { echo "build-kata-agent: another build is running (lock $cache/kata-agent.lock); not waiting for it" >&2; exit 4; }
else
  flock 9
fi
if [ -x "$bin" ]; then
  echo "build-kata-agent: cached $("$bin" --version 2>/dev/null | head -1)" >&2
  echo "$bin"
  exit 0
fi

start=$(date +%s)
echo "build-kata-agent: building kata-agent $(cat "$peer/UPSTREAM_REV") (features: $features) into $out" >&2
# Built from a copy: upstream's protocols/build.rs writes its generated code into its own src/,
# which fails on the read-only peer tree (CI) and would dirty it (and this key) elsewhere.
src="$cache/kata-agent-src"
mkdir -p "$src"
rsync -a --delete --exclude /target "$peer/" "$src/"
CARGO_TARGET_DIR="$cache/kata-agent-target" RUSTFLAGS="$rustflags" \
  cargo build --locked --release -p kata-agent --features "$features" --target "$target" \
  --manifest-path "$src/Cargo.toml" >&2
built="$cache/kata-agent-target/$target/release/kata-agent"
file -b "$built" | grep -q 'static' || { echo "build-kata-agent: $built is not statically linked" >&2; exit 1; }
version=$("$built" --version | head -1)
case "$version" in "kata-agent version "*) ;; *) echo "build-kata-agent: unexpected --version: $version" >&2; exit 1 ;; esac
tmp=$(mktemp -d "$cache/.kata-agent-XXXXXXXX")
cp "$built" "$tmp/kata-agent"
strip "$tmp/kata-agent" 2>/dev/null || true
printf 'upstream_rev=%s\nfeatures=%s\nrustflags=%s\nversion=%s\nbuild_seconds=%s\n' \
  "$(cat "$peer/UPSTREAM_REV")" "$features" "$rustflags" "$version" "$(($(date +%s) - start))" >"$tmp/BUILD-INFO"
rm -rf "$out" && mv "$tmp" "$out"
echo "build-kata-agent: $version, $(($(date +%s) - start)) s" >&2
echo "$bin"
