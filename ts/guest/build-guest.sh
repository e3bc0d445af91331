#!/usr/bin/env bash
# Builds the test guest under build/guest (cached): Debian's kernel as an uncompressed vmlinux
# (PVH boot, no firmware) and a busybox initramfs whose /init loads the virtio modules and serves
# a line-oriented shell on the agent virtio-serial port (see ts/guest/guest-shell.ts).
# Needs: apt-get (download only, no install), dpkg-deb, xz, busybox-static, cpio (Makefile APT_PACKAGES).
set -euo pipefail
out=${1:-build/guest}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)
# The kernel ABI version: from a cached .deb (offline reruns), else linux-image-amd64's dependency.
cached=$(ls "$out"/debs/linux-image-[0-9]*-amd64_*.deb 2>/dev/null | head -1 || true)
if [ -n "$cached" ]; then
  kver=$(basename "$cached" | sed -n 's/^linux-image-\([0-9].*-amd64\)_.*/\1/p')
else
  kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
  if [ -z "$kver" ]; then apt-get update -qq && kver=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1); fi
fi
[ -n "$kver" ] || { echo "build-guest: no linux-image-amd64 dependency found" >&2; exit 1; }
stamp="$out/.built-$kver"
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
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/x/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
tail -c +"$((off + 1))" "$out/x/boot/vmlinuz-$kver" | xz -dc 2>/dev/null >"$out/vmlinux.tmp" || true
[ -s "$out/vmlinux.tmp" ] || { echo "build-guest: could not extract vmlinux" >&2; exit 1; }
mv "$out/vmlinux.tmp" "$out/vmlinux"

# Modules in dependency order from modules.dep (busybox depmod; no kmod on the host).
moddir="$out/x/lib/modules/$kver"
"$bb" depmod -b "$out/x" "$kver"
want="virtio_pci virtio_blk virtio_scsi sd_mod virtio_console"
order=()
add() { local m; for m in "$@"; do [[ " ${order[*]-} " == *" $m "* ]] || order+=("$m"); done; }
for w in $want; do
  line=$(grep -E "/$w\.ko:" "$moddir/modules.dep")
  deps=$(echo "${line#*:}" | tr ' ' '\n' | grep . | tac || true)
  # shellcheck disable=SC2086
  add $deps "${line%%:*}"
done
root="$out/root"
mkdir -p "$root/bin" "$root/modules" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
cp "$bb" "$root/bin/busybox"
for m in "${order[@]}"; do cp "$moddir/$m" "$root/modules/"; echo "/modules/$(basename "$m")"; done >"$root/modules/order"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "$m" 2>/dev/null; done
echo "guest: modules loaded" >/dev/console 2>/dev/null
port=""
for i in $(seq 1 200); do
  for p in /sys/class/virtio-ports/*; do
    [ -f "$p/name" ] && [ "$(cat "$p/name")" = agent.channel.0 ] && port=/dev/$(basename "$p")
  done
  [ -n "$port" ] && [ -e "$port" ] && break
  sleep 0.05
done
mkdir -p /dev/virtio-ports && ln -sf "$port" /dev/virtio-ports/agent.channel.0
echo "guest: shell on $port" >/dev/console 2>/dev/null
exec 3<>"$port"
echo "READY" >&3
while read -r line <&3; do
  sh -c "$line" >/tmp/out 2>&1; rc=$?
  cat /tmp/out >&3; echo "__END__ $rc" >&3
done
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1 >"$out/initramfs.cpio.gz")
rm -rf "$out/x" && rm -f "$out"/.built-* && touch "$stamp"
echo "build-guest: $out/vmlinux, $out/initramfs.cpio.gz (kernel $kver, ${#order[@]} modules)"
