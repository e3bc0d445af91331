#!/usr/bin/env bash
# Builds a one-layer busybox OCI image archive that `ctr images import` accepts, with no registry:
# busybox-static's binary plus one symlink per applet, in an OCI image layout (oci-layout,
# index.json, manifest, config, layer blobs) tarred up. Reproducible (fixed mtimes, sorted, root
# owned), so the digest only changes with busybox-static. Cached: an existing archive newer than
# this script and than /bin/busybox is kept.
# Usage: build-busybox-oci.sh <out.tar> [image name, default docker.io/kata-ts/busybox:latest]
set -euo pipefail
out=$1
name=${2:-docker.io/kata-ts/busybox:latest}
busybox=/bin/busybox
if [ -s "$out" ] && [ "$out" -nt "$0" ] && [ "$out" -nt "$busybox" ]; then exit 0; fi
[ -x "$busybox" ] || { echo "build-busybox-oci: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs layout=$work/layout
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root} "$layout/blobs/sha256"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# --list-full names every applet with its install dir (bin/sh, usr/bin/env, sbin/init, ...).
for applet in $("$busybox" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  ln -sf /bin/busybox "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

epoch=0
tar --sort=name --mtime=@$epoch --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf "$work/layer.tar" .

blob() { # file → prints sha256 hex, moves the file into blobs/
  local d
  d=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$layout/blobs/sha256/$d"
  echo "$d"
}
size() { stat -c %s "$layout/blobs/sha256/$1"; }

layer=$(blob "$work/layer.tar")
cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer"]},"history":[{"created_by":"kata-ts scripts/build-busybox-oci.sh"}]}
EOF
config=$(blob "$work/config.json")
cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$(size "$config")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer","size":$(size "$layer")}]}
EOF
manifest=$(blob "$work/manifest.json")
# io.containerd.image.name names the image on import; ref.name is the OCI layout's own tag.
cat >"$layout/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$(size "$manifest"),"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
EOF
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@$epoch --owner=0 --group=0 --numeric-owner -C "$layout" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
