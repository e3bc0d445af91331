#!/usr/bin/env bash
# Builds the test guest under OUT (default build/guest, cached): Debian's kernel as an uncompressed
# vmlinux (PVH boot, no firmware) and a busybox initramfs holding our statically linked agent.
# /init (ts/guest/guest-init.sh) mounts the pseudo filesystems, loads the modules and, by the
# kernel command line, serves a line shell on the agent port (katats.init=shell, see
# ts/guest/guest-shell.ts) or execs the agent as PID 1 on it (default).
# The cache stamp names the kernel and a hash of this script, the init script and the agent, so a
# rebuilt agent rebuilds the initramfs (the kernel .debs stay cached in OUT/debs).
# Usage: build-guest.sh [OUT] [AGENT_BINARY]
# Needs: apt-get (download only, no install), dpkg-deb, xz, busybox-static, cpio (Makefile APT_PACKAGES).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-build/guest}
agent=${2:-target/guest-static/x86_64-unknown-linux-gnu/release/kata-ts-agent}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)
if [ -f "$agent" ]; then
  agent=$(cd "$(dirname "$agent")" && pwd)/$(basename "$agent")
  # A dynamically linked agent would not start in the initramfs (no libc there).
  if ! file -b "$agent" | grep -q 'static'; then echo "build-guest: $agent is not statically linked" >&2; exit 1; fi
else
  echo "build-guest: warning: no agent at $agent; the guest will only serve the test shell" >&2
  agent=""
fi

# The kernel ABI version: from a cached .deb (offline reruns), else linux-image-amd64's dependency.
cached=$(find "$out/debs" -maxdepth 1 -name 'linux-image-[0-9]*-amd64_*.deb' | head -1)
if [ -n "$cached" ]; then
  kver=$(basename "$cached" | sed -n 's/^linux-image-\([0-9].*-amd64\)_.*/\1/p')
else
  kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
  if [ -z "$kver" ]; then apt-get update -qq && kver=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1); fi
fi
[ -n "$kver" ] || { echo "build-guest: no linux-image-amd64 dependency found" >&2; exit 1; }
inputs_hash=$(cat "$here/build-guest.sh" "$here/guest-init.sh" ${agent:+"$agent"} | sha256sum | cut -c1-16)
stamp="$out/.built-$kver-$inputs_hash"
if [ -f "$stamp" ] && [ -f "$out/vmlinux" ] && [ -f "$out/initramfs.cpio.gz" ]; then exit 0; fi

cd "$out/debs"
# A stale package list can name versions the mirror no longer has: refresh once and retry.
fetch() { apt-get download "$1" || { apt-get update -qq && apt-get download "$1"; }; }
ls linux-image-"$kver"_*.deb >/dev/null 2>&1 || fetch "linux-image-$kver"
ls busybox-static_*.deb >/dev/null 2>&1 || fetch busybox-static
rm -rf "$out/x" "$out/root" && mkdir -p "$out/x" "$out/root"
dpkg-deb -x linux-image-"$kver"_*.deb "$out/x"
dpkg-deb -x busybox-static_*.deb "$out/x"
bb="$out/x/bin/busybox"

# vmlinuz → vmlinux: the xz stream starts at the FD 37 7A 58 5A 00 magic.
if [ ! -f "$out/vmlinux" ] || [ ! -f "$out/.vmlinux-$kver" ]; then
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/x/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
  tail -c +"$((off + 1))" "$out/x/boot/vmlinuz-$kver" | xz -dc 2>/dev/null >"$out/vmlinux.tmp" || true
  [ -s "$out/vmlinux.tmp" ] || { echo "build-guest: could not extract vmlinux" >&2; exit 1; }
  mv "$out/vmlinux.tmp" "$out/vmlinux"
  rm -f "$out"/.vmlinux-* && touch "$out/.vmlinux-$kver"
fi

# Modules in dependency order from modules.dep (busybox depmod; no kmod on the host). Built in
# (=y in /boot/config-*): tmpfs, devtmpfs, namespaces, PCIe/ACPI hotplug. crc32c_generic is listed
# before ext4: ext4 asks the crypto API for "crc32c" (a softdep, not in modules.dep).
moddir="$out/x/lib/modules/$kver"
"$bb" depmod -b "$out/x" "$kver"
# /init loads the device drivers (no udev/mdev: nothing would load them on a uevent) and ext4
# before the agent starts; a background loader would race the agent's first mount, since busybox
# modprobe returns at once for a module still loading. overlay and xfs load on demand: a mount of
# an unknown fstype makes the kernel run /sbin/modprobe fs-<type> (busybox, modules.alias).
devices="virtio_pci virtio_blk virtio_scsi sd_mod virtio_console fuse virtiofs crc32c_generic ext4"
on_demand="overlay xfs"
order=()
add() { local m; for m in "$@"; do [[ " ${order[*]-} " == *" $m "* ]] || order+=("$m"); done; }
deps_of() {
  local line deps
  line=$(grep -E "/$1\.ko:" "$moddir/modules.dep") || { echo "build-guest: no module $1 in $kver" >&2; exit 1; }
  deps=$(echo "${line#*:}" | tr ' ' '\n' | grep . | tac || true)
  # shellcheck disable=SC2086
  add $deps "${line%%:*}"
}
for w in $devices; do deps_of "$w"; done
n_loaded=${#order[@]}
for w in $on_demand; do deps_of "$w"; done

root="$out/root"
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" "$root/lib/modules/$kver"
cp "$bb" "$root/bin/busybox"
ln -s ../bin/busybox "$root/sbin/modprobe" # the kernel's request_module runs /sbin/modprobe (lazy: xfs)
[ -z "$agent" ] || cp "$agent" "$root/bin/kata-ts-agent"
for m in "${order[@]}"; do
  mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
  cp "$moddir/$m" "$root/lib/modules/$kver/$m"
done
"$bb" depmod -b "$root" "$kver"
for m in "${order[@]:0:$n_loaded}"; do echo "/lib/modules/$kver/$m"; done >"$root/etc/modules.order"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
cp "$here/guest-init.sh" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null | gzip -1 -n >"$out/initramfs.cpio.gz")
rm -rf "$out/x" && rm -f "$out"/.built-* && touch "$stamp"
echo "build-guest: $out/vmlinux, $out/initramfs.cpio.gz (kernel $kver, ${#order[@]} modules, agent: ${agent:-none})"
