#!/usr/bin/env bash
# Builds the test guests under OUT (default build/guest, cached):
#   vmlinux-debian          Debian's generic kernel, uncompressed (PVH boot, no firmware): the peer
#   vmlinux-minimal         the minimal kernel (scripts/build-kernel.sh), when MINIMAL_KERNEL is given
#   vmlinux                 symlink to the default kernel (GUEST_KERNEL=debian|minimal)
#   initramfs.cpio.gz       busybox + our statically linked agent
#   initramfs-kata.cpio.gz  busybox + upstream kata-agent + our serial relay, when KATA_AGENT is given
# Both initramfs carry the same /init (ts/guest/guest-init.sh) and the Debian kernel's modules;
# /init loads them only under the kernel they were built for (the minimal kernel has its drivers
# built in). /init mounts the pseudo filesystems, finds the `agent.channel.0` virtio-serial port,
# then by kernel command line serves a line shell on it (katats.init=shell, see
# ts/guest/guest-shell.ts), or runs the image's agent: ours as PID 1 on the port, or kata-agent on
# unix:///run/kata-agent.sock with the relay joining the port to it. The host cannot tell them apart.
# Each artifact has its own cache stamp (a hash of this script, the init script and its binaries),
# so a rebuilt agent rebuilds only its initramfs; the kernel .debs stay cached in OUT/debs.
# Usage: [MINIMAL_KERNEL=…] [KATA_AGENT=… SERIAL_RELAY=…] [GUEST_KERNEL=debian|minimal] \
#        build-guest.sh [OUT] [AGENT_BINARY]
# Needs: apt-get (download only, no install), dpkg-deb, xz, busybox-static, cpio (Makefile APT_PACKAGES).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-build/guest}
agent=${2:-target/guest-static/x86_64-unknown-linux-gnu/release/kata-ts-agent}
default_kernel=${GUEST_KERNEL:-debian}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)

abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
# A dynamically linked binary would not start in the initramfs (no libc there).
static_binary() { file -b "$1" | grep -q 'static' || { echo "build-guest: $1 is not statically linked" >&2; exit 1; }; }
if [ -f "$agent" ]; then
  agent=$(abs "$agent") && static_binary "$agent"
else
  echo "build-guest: warning: no agent at $agent; the guest will only serve the test shell" >&2
  agent=""
fi
kata_agent=${KATA_AGENT:-}
relay=${SERIAL_RELAY:-}
if [ -n "$kata_agent" ]; then
  [ -f "$kata_agent" ] && [ -n "$relay" ] && [ -f "$relay" ] ||
    { echo "build-guest: KATA_AGENT needs SERIAL_RELAY, and both must exist ($kata_agent, ${relay:-unset})" >&2; exit 1; }
  kata_agent=$(abs "$kata_agent") && relay=$(abs "$relay")
  static_binary "$kata_agent" && static_binary "$relay"
fi
minimal=${MINIMAL_KERNEL:-}
[ -z "$minimal" ] || [ -f "$minimal" ] || { echo "build-guest: MINIMAL_KERNEL=$minimal does not exist" >&2; exit 1; }
case "$default_kernel" in
debian) ;;
minimal)
  if [ -z "$minimal" ] && [ ! -f "$out/vmlinux-minimal" ]; then
    echo "build-guest: WARNING: GUEST_KERNEL=minimal but no minimal kernel (scripts/build-kernel.sh); the default stays Debian's" >&2
    default_kernel=debian
  fi
  ;;
*) echo "build-guest: GUEST_KERNEL must be debian or minimal, not $default_kernel" >&2; exit 1 ;;
esac

# The kernel ABI version: from a cached .deb (offline reruns), else linux-image-amd64's dependency.
cached=$(find "$out/debs" -maxdepth 1 -name 'linux-image-[0-9]*-amd64_*.deb' | head -1)
if [ -n "$cached" ]; then
  kver=$(basename "$cached" | sed -n 's/^linux-image-\([0-9].*-amd64\)_.*/\1/p')
else
  kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
  if [ -z "$kver" ]; then apt-get update -qq && kver=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1); fi
fi
[ -n "$kver" ] || { echo "build-guest: no linux-image-amd64 dependency found" >&2; exit 1; }

# The minimal kernel is copied, not linked: build/ must not point into a cache that can be pruned.
if [ -n "$minimal" ] && ! cmp -s "$minimal" "$out/vmlinux-minimal"; then
  cp "$minimal" "$out/vmlinux-minimal.tmp" && mv "$out/vmlinux-minimal.tmp" "$out/vmlinux-minimal"
fi
# Older layouts had the Debian kernel as a plain vmlinux.
if [ -f "$out/vmlinux" ] && [ ! -L "$out/vmlinux" ] && [ ! -f "$out/vmlinux-debian" ]; then mv "$out/vmlinux" "$out/vmlinux-debian"; fi
set_default_kernel() {
  [ -f "$out/vmlinux-$default_kernel" ] || return 0
  [ "$(readlink "$out/vmlinux" 2>/dev/null)" = "vmlinux-$default_kernel" ] || ln -sfn "vmlinux-$default_kernel" "$out/vmlinux"
}

ours_stamp="$out/.built-ours-$kver-$(cat "$here/build-guest.sh" "$here/guest-init.sh" ${agent:+"$agent"} | sha256sum | cut -c1-16)"
kata_stamp=""
[ -z "$kata_agent" ] || kata_stamp="$out/.built-kata-$kver-$(cat "$here/build-guest.sh" "$here/guest-init.sh" "$kata_agent" "$relay" | sha256sum | cut -c1-16)"
if [ -f "$ours_stamp" ] && [ -f "$out/initramfs.cpio.gz" ] && [ -f "$out/vmlinux-debian" ] && [ -f "$out/.vmlinux-$kver" ] &&
  { [ -z "$kata_stamp" ] || { [ -f "$kata_stamp" ] && [ -f "$out/initramfs-kata.cpio.gz" ]; }; }; then
  set_default_kernel
  exit 0
fi

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
if [ ! -f "$out/vmlinux-debian" ] || [ ! -f "$out/.vmlinux-$kver" ]; then
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/x/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
  tail -c +"$((off + 1))" "$out/x/boot/vmlinuz-$kver" | xz -dc 2>/dev/null >"$out/vmlinux.tmp" || true
  [ -s "$out/vmlinux.tmp" ] || { echo "build-guest: could not extract vmlinux" >&2; exit 1; }
  mv "$out/vmlinux.tmp" "$out/vmlinux-debian"
  rm -f "$out"/.vmlinux-* && touch "$out/.vmlinux-$kver"
fi
set_default_kernel

# Modules in dependency order from modules.dep (busybox depmod; no kmod on the host). Built in
# (=y in /boot/config-*): tmpfs, devtmpfs, namespaces, PCIe/ACPI hotplug. crc32c_generic is listed
# before ext4: ext4 asks the crypto API for "crc32c" (a softdep, not in modules.dep).
moddir="$out/x/lib/modules/$kver"
"$bb" depmod -b "$out/x" "$kver"
# /init loads the device drivers (no udev/mdev: nothing would load them on a uevent) and ext4
# before the agent starts; a background loader would race the agent's first mount, since busybox
# modprobe returns at once for a module still loading. overlay and xfs load on demand: a mount of
# an unknown fstype makes the kernel run /sbin/modprobe fs-<type> (busybox, modules.alias).
devices="virtio_pci virtio_blk virtio_scsi sd_mod virtio_console virtio_net fuse virtiofs crc32c_generic ext4"
on_demand="overlay xfs bridge br_netfilter tun veth"
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

# The part both images share: busybox, the modules, /etc, /init.
root="$out/root"
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" "$root/lib/modules/$kver"
cp "$bb" "$root/bin/busybox"
ln -s ../bin/busybox "$root/sbin/modprobe" # the kernel's request_module runs /sbin/modprobe (lazy: xfs)
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

# pack NAME FILE:DEST... — the shared root plus these binaries, as OUT/NAME.
pack() {
  local name=$1 spec
  shift
  rm -rf "$out/pack" && cp -a "$root" "$out/pack"
  for spec in "$@"; do cp "${spec%%:*}" "$out/pack/${spec#*:}"; done
  (cd "$out/pack" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null | gzip -1 -n >"$out/$name.tmp")
  mv "$out/$name.tmp" "$out/$name"
  rm -rf "$out/pack"
}
pack initramfs.cpio.gz ${agent:+"$agent:bin/kata-ts-agent"}
rm -f "$out"/.built-ours-* "$out"/.built-"$kver"-* && touch "$ours_stamp"
if [ -n "$kata_agent" ]; then
  pack initramfs-kata.cpio.gz "$kata_agent:bin/kata-agent" "$relay:bin/kata-ts-serial-relay"
  rm -f "$out"/.built-kata-* && touch "$kata_stamp"
fi
rm -rf "$out/x" "$root"
echo "build-guest: $out (kernel $kver, ${#order[@]} modules, agent: ${agent:-none}, kata-agent: ${kata_agent:-none}," \
  "minimal kernel: ${minimal:-none}, default kernel: $(readlink "$out/vmlinux"))"
