#!/usr/bin/env bash
# A busybox container rootfs as an ext4 image (cached): busybox-static with applet symlinks in
# /bin, /etc/passwd and /etc/group, empty /proc /sys /dev /tmp /etc/config. mkfs.ext4 -d fills
# the image from a directory, so nothing is mounted on the host. UUID and hash seed are fixed;
# the cache stamp is a hash of this script and the busybox .deb.
# Usage: build-rootfs-image.sh [OUT_DIR] → OUT_DIR/busybox.ext4
# Needs: busybox-static's .deb (taken from build/guest/debs or apt-get download), dpkg-deb, e2fsprogs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-build/rootfs}
size_mib=${ROOTFS_SIZE_MIB:-16}
mkdir -p "$out"
out=$(cd "$out" && pwd)
image="$out/busybox.ext4"
debs="$here/../build/guest/debs"
deb=$(find "$debs" "$out" -maxdepth 1 -name 'busybox-static_*.deb' 2>/dev/null | head -1)
if [ -z "$deb" ]; then
  (cd "$out" && { apt-get download busybox-static || { apt-get update -qq && apt-get download busybox-static; }; })
  deb=$(find "$out" -maxdepth 1 -name 'busybox-static_*.deb' | head -1)
fi
hash=$(cat "$here/build-rootfs-image.sh" "$deb" | sha256sum | cut -c1-16)
stamp="$out/.busybox-ext4-$hash"
if [ -f "$stamp" ] && [ -f "$image" ]; then exit 0; fi

work="$out/work"
rm -rf "$work" && mkdir -p "$work/x" "$work/root"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/x"
r="$work/root"
mkdir -p "$r/bin" "$r/etc/config" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/root" "$r/run"
chmod 1777 "$r/tmp"
cp "$work/x/bin/busybox" "$r/bin/busybox"
for a in $("$r/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
rm -f "$image.tmp"
mkfs.ext4 -q -F -L busybox -U 6b617461-7473-4275-7379-626f78000001 \
  -E root_owner=0:0,hash_seed=6b617461-7473-4275-7379-626f78000002 -d "$r" "$image.tmp" "${size_mib}M" >/dev/null
mv "$image.tmp" "$image"
rm -f "$out"/.busybox-ext4-* && touch "$stamp"
echo "build-rootfs-image: $image (${size_mib} MiB, $(find "$r/bin" -type l | wc -l) applets)"
