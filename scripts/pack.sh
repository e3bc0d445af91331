#!/usr/bin/env bash
# Packs the publishable tarballs into $1 (napi-rs convention):
#   kata-ts-<v>.tgz                — compiled JS (dist/), the loader, types; optionalDependencies on
#   kata-ts-linux-x64-gnu-<v>.tgz  — the prebuilt .node and the shim front binary for x86_64 glibc.
# Like `napi prepublish`, optionalDependencies are added only to the packed manifest so that
# development installs never look for the unpublished platform package on the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: pack.sh OUT_DIR}")
node_file=kata-ts.linux-x64-gnu.node
[ -f "$node_file" ] || { echo "pack.sh: $node_file missing: run make build" >&2; exit 1; }
[ -d dist ] || { echo "pack.sh: dist/ missing: run make build" >&2; exit 1; }
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Platform package.
mkdir -p "$stage/platform"
cp npm/linux-x64-gnu/package.json npm/linux-x64-gnu/README.md "$stage/platform/"
cp "$node_file" "$stage/platform/"
front=target/x86_64-unknown-linux-gnu/release/kata-ts-shim-front
[ -x "$front" ] || { echo "pack.sh: $front missing: run make build" >&2; exit 1; }
cp "$front" "$stage/platform/"
node -e '
  const fs = require("fs"); const f = process.argv[1];
  const pkg = JSON.parse(fs.readFileSync(f, "utf8")); pkg.files.push("kata-ts-shim-front");
  fs.writeFileSync(f, JSON.stringify(pkg, null, 2) + "\n");
' "$stage/platform/package.json"
(cd "$stage/platform" && npm pack --silent --pack-destination "$out" >/dev/null)

# Main package: the `files` of package.json, with a publish-time manifest.
mkdir -p "$stage/main"
cp -r bin dist index.js index.d.ts examples README.md "$stage/main/"
node -e '
  const fs = require("fs");
  const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
  const platform = JSON.parse(fs.readFileSync("npm/linux-x64-gnu/package.json", "utf8"));
  delete pkg.devDependencies; delete pkg.scripts; delete pkg.ava; delete pkg.prettier;
  pkg.optionalDependencies = { [platform.name]: platform.version };
  fs.writeFileSync(process.argv[1], JSON.stringify(pkg, null, 2) + "\n");
' "$stage/main/package.json"
(cd "$stage/main" && npm pack --silent --pack-destination "$out" >/dev/null)
ls "$out"
