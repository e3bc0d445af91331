#!/usr/bin/env bash
# Fills Kata's stock runtime-rs QEMU configuration template
# (../shared/peers/kata-config/configuration-qemu-runtime-rs.toml.in) exactly as upstream's
# Makefile does, by running upstream's own `make` rule on it (runtime-rs.Makefile, the
# `$(GENERATED_FILES): %: %.in` sed rule), then changes only paths for this machine.
#
# Usage: scripts/fill-stock-config.sh OUT [--guest ours|kata]
#   OUT      the filled configuration.toml to write
#   --guest  which initramfs of build/guest the config boots: ours (initramfs.cpio.gz, default)
#            or kata (initramfs-kata.cpio.gz, upstream kata-agent)
# Environment: KATA_CONFIG_PEER (default ../shared/peers/kata-config), KATA_TS_GUEST_DIR
# (default build/guest), VIRTIOFSD (default: Debian's /usr/lib/qemu/virtiofsd, else PATH).
#
# What the Makefile needs that ../shared does not hold is stubbed in a temporary tree:
# - `../../utils.mk` (build helpers only; none of the template's values come from it) — empty;
# - `arch/x86_64-options.mk`, upstream's x86_64 values (kata-containers
#   src/runtime-rs/arch/x86_64-options.mk): MACHINETYPE q35, KERNELPARAMS and
#   MACHINEACCELERATORS empty, CPUFEATURES pmu=off, QEMUCMD qemu-system-x86_64;
# - `VERSION` (only `@VERSION@`, which this template does not use) — from kata-agent's UPSTREAM_REV.
#
# Path changes (the only edits after upstream's rule), each a whole `key = value` line:
#   kernel                               → build/guest/vmlinux
#   image                                → initrd = build/guest/<initramfs>  (this machine has an
#                                          initramfs, no rootfs image; upstream's own Makefile
#                                          makes the same image → initrd swap for ppc64le)
#   virtio_fs_daemon, valid_virtio_fs_daemon_paths → Debian's virtiofsd
#   path, valid_hypervisor_paths         → command -v qemu-system-x86_64 (Debian: /usr/bin, as stock)
#
# Exit codes: 0 written; 2 usage or a failed step; 3 the peer tree is absent (a user's clone
# without ../shared), with a framed SKIPPED message, as scripts/build-kata-agent.sh does.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "kata-ts: fill-stock-config: $*" >&2; exit 2; }

out=${1:-}
[[ -n $out ]] || die "usage: fill-stock-config.sh OUT [--guest ours|kata]"
shift
guest=ours
while [[ $# -gt 0 ]]; do
  case $1 in
    --guest) guest=${2:-}; shift 2 || die "--guest needs a value" ;;
    *) die "unknown argument $(printf '%q' "$1")" ;;
  esac
done
case $guest in
  ours) initrd_name=initramfs.cpio.gz ;;
  kata) initrd_name=initramfs-kata.cpio.gz ;;
  *) die "--guest: $(printf '%q' "$guest") is not ours or kata" ;;
esac

peer=${KATA_CONFIG_PEER:-$root/../shared/peers/kata-config}
template=$peer/configuration-qemu-runtime-rs.toml.in
makefile=$peer/runtime-rs.Makefile
if [[ ! -f $template || ! -f $makefile ]]; then
  echo "fill-stock-config: ==========================================================="
  echo "fill-stock-config: SKIPPED: no stock Kata configuration at $peer"
  echo "fill-stock-config: (../shared/peers/kata-config is shipped with the project's CI machines,"
  echo "fill-stock-config:  not with the package; point KATA_CONFIG_PEER at a copy to use it)"
  echo "fill-stock-config: ==========================================================="
  exit 3
fi
guest_dir=${KATA_TS_GUEST_DIR:-$root/build/guest}
qemu=$(command -v qemu-system-x86_64 || echo /usr/bin/qemu-system-x86_64)
virtiofsd=${VIRTIOFSD:-}
if [[ -z $virtiofsd ]]; then
  if [[ -x /usr/lib/qemu/virtiofsd ]]; then virtiofsd=/usr/lib/qemu/virtiofsd
  else virtiofsd=$(command -v virtiofsd || echo /usr/libexec/virtiofsd); fi
fi
rev=$(cat "$root/../shared/peers/kata-agent/UPSTREAM_REV" 2>/dev/null || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/kata-ts-stock-config.XXXXXXXX")
trap 'rm -rf "$work"' EXIT
rs=$work/src/runtime-rs
mkdir -p "$rs/arch" "$rs/config"
: >"$work/utils.mk"
cp "$makefile" "$rs/Makefile"
cp "$template" "$rs/config/configuration-qemu-runtime-rs.toml.in"
echo "$rev" >"$rs/VERSION"
cat >"$rs/arch/x86_64-options.mk" <<'EOF'
MACHINETYPE := q35
KERNELPARAMS :=
MACHINEACCELERATORS :=
CPUFEATURES := pmu=off
QEMUCMD := qemu-system-x86_64
DBCMD := dragonball
CLHCMD := cloud-hypervisor
FCCMD := firecracker
FCJAILERCMD := jailer
REMOTE := remote
EOF
# Upstream's rule, upstream's defaults (PREFIX empty → /usr, ARCH x86_64).
make -s -C "$rs" ARCH=x86_64 config/configuration-qemu-runtime-rs.toml >"$work/make.log" 2>&1 ||
  { sed 's/^/  make: /' "$work/make.log" >&2; die "upstream's Makefile rule failed"; }
filled=$rs/config/configuration-qemu-runtime-rs.toml
if grep -n '@[A-Z_0-9]*@' "$filled" >&2; then die "placeholders left unfilled (above)"; fi

# Replace one `key = …` line (the first, in [hypervisor.qemu]); fail when the key is absent so an
# upstream rename cannot silently leave a stock path behind.
set_line() {
  local key=$1 line=$2
  grep -q "^$key = " "$filled" || die "stock template has no '$key = ' line"
  awk -v key="$key" -v line="$line" 'BEGIN { done = 0 }
    !done && index($0, key " = ") == 1 { print line; done = 1; next } { print }' \
    "$filled" >"$filled.new" && mv "$filled.new" "$filled"
}
set_line path "path = \"$qemu\""
set_line valid_hypervisor_paths "valid_hypervisor_paths = [\"$qemu\"]"
set_line kernel "kernel = \"$guest_dir/vmlinux\""
set_line image "initrd = \"$guest_dir/$initrd_name\""
set_line virtio_fs_daemon "virtio_fs_daemon = \"$virtiofsd\""
set_line valid_virtio_fs_daemon_paths "valid_virtio_fs_daemon_paths = [\"$virtiofsd\"]"

mkdir -p "$(dirname "$out")"
tmp_out=$(mktemp "$(dirname "$out")/.stock-config.XXXXXXXX")
cp "$filled" "$tmp_out" && mv "$tmp_out" "$out"
echo "fill-stock-config: wrote $out (guest $guest)"
