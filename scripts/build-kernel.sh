#!/usr/bin/env bash
# Builds the minimal guest kernel: Debian's linux-source-6.1 (apt) configured the way Kata
# configures its guest kernels — `allnoconfig` as the base, Kata's config fragments merged with
# scripts/kconfig/merge_config.sh (../shared/peers/kata-kernel-config/fragments/{common,x86_64},
# read-only), then our own fragment (below) — everything built in (CONFIG_MODULES is off), and
# an uncompressed, PVH-bootable vmlinux as the result.
#   $KATA_TS_CACHE/kernel-<key>/{vmlinux,config,config-report.txt}  (default /var/cache/kata-ts)
# copied to OUT (default build/kernel). <key> hashes every input of the build: the fragments,
# our fragment and recipe, the linux-source package version and `gcc --version`; the object tree
# (kernel-build/) is shared between keys, so a changed config recompiles only what changed.
# Which fragments are used, and which are left out and why, is decided in `fragments()`.
# Requested options the merged config did not get are listed in config-report.txt: options the
# 6.1 tree lacks (Kata's fragments track newer kernels) and options whose dependencies are
# unmet. Options of our own fragment must all end up set, or the build fails.
# Usage: build-kernel.sh [--no-wait] [OUT] → OUT/vmlinux, OUT/config, OUT/config-report.txt
#        build-kernel.sh --print-path   → prints the cached vmlinux (exit 1 if not built)
# Exit codes: 0 built/cached; 3 the Kata fragments are absent (no ../shared); 4 --no-wait and
#             another build is running; other: failure.
# Needs (Makefile APT_PACKAGES): linux-source-6.1 bc flex bison libelf-dev libssl-dev gcc make.
set -euo pipefail
no_wait=0
if [ "${1:-}" = --no-wait ]; then no_wait=1 && shift; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
frags=${KATA_KERNEL_FRAGMENTS:-$repo/../shared/peers/kata-kernel-config/fragments}
cache=${KATA_TS_CACHE:-/var/cache/kata-ts}
tarball=/usr/src/linux-source-6.1.tar.xz
jobs=${KERNEL_JOBS:-2}
arch=x86_64

if [ ! -d "$frags/common" ] || [ ! -d "$frags/$arch" ]; then
  {
    echo "################################################################################"
    echo "build-kernel: SKIPPED: no Kata kernel config fragments at $frags"
    echo "build-kernel: (../shared/peers/kata-kernel-config ships with the project's CI machines;"
    echo "build-kernel:  set KATA_KERNEL_FRAGMENTS to a fragments/ directory)"
    echo "################################################################################"
  } >&2
  exit 3
fi
frags=$(cd "$frags" && pwd)

# Our guest's needs on top of Kata's fragments: what /init, both agents and the tests use. Each
# must end up =y. (virtio, ext4/xfs/overlay/tmpfs/fuse, cgroups, namespaces, seccomp, PCI/ACPI
# hotplug, 9p, vsock, bridge/netfilter/tun/veth are in Kata's fragments too; listing them here
# makes the build fail if a fragment ever stops providing them.)
own_fragment() {
  cat <<'EOF'
# kata-ts guest requirements (scripts/build-kernel.sh)
CONFIG_64BIT=y
CONFIG_LOCALVERSION="-kata-ts"
CONFIG_PVH=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_DEVTMPFS=y
CONFIG_TMPFS=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_UNIX98_PTYS=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_PCI=y
CONFIG_PCI_MSI=y
CONFIG_PCIEPORTBUS=y
CONFIG_HOTPLUG_PCI=y
CONFIG_HOTPLUG_PCI_PCIE=y
CONFIG_HOTPLUG_PCI_ACPI=y
CONFIG_HOTPLUG_PCI_SHPC=y
CONFIG_ACPI=y
CONFIG_ACPI_HOTPLUG_CPU=y
CONFIG_HOTPLUG_CPU=y
CONFIG_MEMORY_HOTPLUG=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_SCSI=y
CONFIG_BLK_DEV_SD=y
CONFIG_SCSI_VIRTIO=y
CONFIG_VIRTIO_CONSOLE=y
CONFIG_VIRTIO_NET=y
CONFIG_FUSE_FS=y
CONFIG_VIRTIO_FS=y
CONFIG_NET_9P=y
CONFIG_NET_9P_VIRTIO=y
CONFIG_9P_FS=y
CONFIG_VSOCKETS=y
CONFIG_VIRTIO_VSOCKETS=y
CONFIG_BLK_DEV_LOOP=y
CONFIG_EXT4_FS=y
CONFIG_XFS_FS=y
CONFIG_OVERLAY_FS=y
CONFIG_CGROUPS=y
CONFIG_MEMCG=y
CONFIG_CGROUP_PIDS=y
CONFIG_CGROUP_FREEZER=y
CONFIG_CPUSETS=y
CONFIG_CGROUP_DEVICE=y
CONFIG_CGROUP_CPUACCT=y
CONFIG_CGROUP_SCHED=y
CONFIG_CFS_BANDWIDTH=y
CONFIG_CGROUP_HUGETLB=y
CONFIG_NAMESPACES=y
CONFIG_UTS_NS=y
CONFIG_IPC_NS=y
CONFIG_USER_NS=y
CONFIG_PID_NS=y
CONFIG_NET_NS=y
CONFIG_SECCOMP=y
CONFIG_SECCOMP_FILTER=y
CONFIG_BRIDGE=y
CONFIG_BRIDGE_NETFILTER=y
CONFIG_NETFILTER=y
CONFIG_NF_CONNTRACK=y
CONFIG_NF_NAT=y
CONFIG_NF_TABLES=y
CONFIG_IP_NF_IPTABLES=y
CONFIG_IP_NF_FILTER=y
CONFIG_IP_NF_NAT=y
CONFIG_IP_NF_TARGET_MASQUERADE=y
CONFIG_TUN=y
CONFIG_VETH=y
# The guest's clock: without an RTC driver the guest starts at 1970.
CONFIG_RTC_CLASS=y
CONFIG_RTC_DRV_CMOS=y
# /proc/config.gz: tests read the guest kernel's options from inside the guest.
CONFIG_IKCONFIG=y
CONFIG_IKCONFIG_PROC=y
EOF
}

# Kata's selection (tools/packaging/kernel/build-kernel.sh): every common/*.conf without a
# `!x86_64` tag on its first line, and every x86_64/*.conf; the sub-folders (confidential, tdx,
# snp, signing) only for confidential builds, so not here. Left out deliberately:
#   common/mlx5.conf — Mellanox ConnectX/InfiniBand hardware drivers: no such device under QEMU
#   here, and the largest single chunk of compile time.
excluded="common/mlx5.conf"
fragments() {
  local f rel
  for f in "$frags"/common/*.conf "$frags/$arch"/*.conf; do
    rel=${f#"$frags"/}
    [[ " $excluded " == *" $rel "* ]] && continue
    head -1 "$f" | grep -q "!$arch" && continue
    echo "$f"
  done
}

[ -f "$tarball" ] || { echo "build-kernel: $tarball missing: apt-get install linux-source-6.1 (make apt)" >&2; exit 1; }
srcver=$(dpkg-query -W -f '${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$tarball")
mapfile -t selected < <(fragments)
key=$(
  {
    echo "srcver=$srcver arch=$arch"
    gcc --version | head -1
    # The recipe: bump when the commands below change what is built (not for comments/messages).
    echo "recipe=1 base=allnoconfig merge=merge_config.sh-n target=vmlinux excluded=$excluded"
    own_fragment
    for f in "${selected[@]}"; do echo "${f#"$frags"/}"; cat "$f"; done
  } | sha256sum | cut -c1-16
)
result="$cache/kernel-$key"
out=${1:-$repo/build/kernel}

if [ "${1:-}" = --print-path ]; then
  [ -f "$result/vmlinux" ] && { echo "$result/vmlinux"; exit 0; }
  exit 1
fi

install_result() {
  mkdir -p "$out"
  for f in vmlinux config config-report.txt BUILD-INFO; do
    cp "$result/$f" "$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f"
  done
  echo "$out/vmlinux"
}

mkdir -p "$cache"
exec 9>"$cache/kernel.lock"
# --no-wait (make's prerequisite of `guest`): while another build holds the lock, say so and exit 4
# instead of blocking; the guest is then built without this artifact.
if [ "$no_wait" = 1 ]; then
  flock -n 9 || { echo "build-kernel: another build is running (lock $cache/kernel.lock); not waiting for it" >&2; exit 4; }
else
  flock 9
fi
if [ -f "$result/vmlinux" ]; then
  echo "build-kernel: cached $result" >&2
  install_result
  exit 0
fi

start=$(date +%s)
src="$cache/linux-source-6.1-$srcver"
if [ ! -f "$src/.extracted" ]; then
  echo "build-kernel: extracting $tarball" >&2
  rm -rf "$src" && mkdir -p "$src"
  tar -xJf "$tarball" -C "$src" --strip-components=1
  touch "$src/.extracted"
fi
obj="$cache/kernel-build-$srcver"
mkdir -p "$obj"
work=$(mktemp -d "$cache/.kernel-XXXXXXXX")
trap 'rm -rf "$work"' EXIT
own_fragment >"$work/kata-ts.conf"

# merge_config.sh -n: allnoconfig with the merged fragments as KCONFIG_ALLCONFIG (what Kata does);
# -r would make a redefinition fatal — Kata's fragments repeat a few symbols with equal values.
echo "build-kernel: merging ${#selected[@]} Kata fragments + kata-ts.conf (base allnoconfig)" >&2
(cd "$src" && ARCH=$arch ./scripts/kconfig/merge_config.sh -n -O "$obj" "${selected[@]}" "$work/kata-ts.conf" >"$work/merge.log" 2>&1) ||
  { tail -20 "$work/merge.log" >&2; exit 1; }
make -C "$src" O="$obj" ARCH=$arch olddefconfig >"$work/olddefconfig.log" 2>&1 || { tail -20 "$work/olddefconfig.log" >&2; exit 1; }

# What was asked and not granted: absent from every Kconfig of this tree, or present but unmet.
report="$work/config-report.txt"
symbols_in_tree=$(cd "$src" && find . -name 'Kconfig*' -print0 | xargs -0 sed -n 's/^[[:space:]]*\(menu\)\{0,1\}config[[:space:]]\{1,\}\([A-Za-z0-9_]*\).*/\2/p' | sort -u)
check() { # file → lines "SYMBOL wanted got"
  sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=\(.*\)$/\1 \2/p' "$1" | while read -r sym val; do
    got=$(sed -n "s/^$sym=\(.*\)$/\1/p" "$obj/.config")
    [ "$got" = "$val" ] || echo "$sym $val ${got:-unset}"
  done
}
{
  echo "# Options requested by the fragments that the merged config did not get (linux-source-6.1 $srcver)"
  echo "# fragments: $(for f in "${selected[@]}"; do printf '%s ' "${f#"$frags"/}"; done)"
  echo "# left out: $excluded"
  for f in "${selected[@]}"; do
    check "$f" | while read -r sym val got; do
      if grep -qx "${sym#CONFIG_}" <<<"$symbols_in_tree"; then why="dependencies unmet in 6.1 or overridden"; else why="not in the 6.1 tree"; fi
      echo "${f#"$frags"/}: $sym=$val → $got ($why)"
    done
  done
} >"$report"
own_missing=$(check "$work/kata-ts.conf")
if [ -n "$own_missing" ]; then
  echo "build-kernel: kata-ts guest requirements not met by the merged config:" >&2
  echo "$own_missing" | sed 's/^/  /' >&2
  exit 1
fi
echo "build-kernel: $(grep -vc '^#' "$report") requested options not granted (see config-report.txt)" >&2

echo "build-kernel: make -j$jobs vmlinux in $obj" >&2
make -C "$src" O="$obj" ARCH=$arch -j"$jobs" vmlinux >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
readelf -n "$obj/vmlinux" 2>/dev/null | grep -q Xen || { echo "build-kernel: $obj/vmlinux has no PVH entry note" >&2; exit 1; }
cp "$obj/vmlinux" "$work/vmlinux"
strip --strip-debug "$work/vmlinux" 2>/dev/null || true
cp "$obj/.config" "$work/config"
printf 'linux_source=%s\nrelease=%s\nfragments=%s\nbuild_seconds=%s\n' "$srcver" "$(cat "$obj/include/config/kernel.release")" \
  "${#selected[@]}" "$(($(date +%s) - start))" >"$work/BUILD-INFO"
rm -f "$work"/*.log "$work/kata-ts.conf"
rm -rf "$result" && mv "$work" "$result"
trap - EXIT
echo "build-kernel: $(cat "$result/BUILD-INFO" | tr '\n' ' ')" >&2
install_result
