#!/usr/bin/env bash
# `make demo`: one busybox container in a VM-isolated sandbox. Its rootfs is an ext4 image
# hot-plugged as virtio-scsi (blockfile `loop` rootfs mount), a kubelet configmap is copied into
# the guest and live-synced (the demo changes it on the host and the container sees the change),
# /dev/shm is the sandbox shm, and the VM runs in the sandbox's host cgroup. Ends with timings.
#
# DEMO_GUEST (make demo GUEST=…): ours (default, build/guest/initramfs.cpio.gz, our agent as PID 1)
#   or kata (build/guest/initramfs-kata.cpio.gz, upstream kata-agent behind the serial relay).
# DEMO_CONFIG (make demo CONFIG=…): demo (default, examples/demo/configuration.toml.in) or stock
#   (Kata's runtime-rs QEMU template filled by scripts/fill-stock-config.sh, only paths changed).
# Either way the agent's own GetGuestDetails answer (its version) is printed, so the reader sees
# which agent ran.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
demo="$root/build/demo"
sid="demo-$(date +%s)"
kata=(node "$root/bin/kata-ts.js")
export KATA_TS_STATE_ROOT="${KATA_TS_STATE_ROOT:-$demo/state}"
# The Debian guest kernel boots under TCG here (this host's KVM cannot boot it, see peers.md).
export KATA_TS_QEMU_ACCEL="${KATA_TS_QEMU_ACCEL:-tcg}"

guest=${DEMO_GUEST:-ours}
config=${DEMO_CONFIG:-demo}
case $guest in
  ours) initrd=initramfs.cpio.gz agent_name="our kata-ts-agent" ;;
  kata) initrd=initramfs-kata.cpio.gz agent_name="upstream kata-agent" ;;
  *) echo "kata-ts: demo: GUEST=$(printf '%q' "$guest"): expected ours or kata" >&2; exit 2 ;;
esac
case $config in demo | stock) ;; *)
  echo "kata-ts: demo: CONFIG=$(printf '%q' "$config"): expected demo or stock" >&2; exit 2 ;;
esac
if [[ ! -f $root/build/guest/$initrd ]]; then
  echo "kata-ts: demo: build/guest/$initrd missing (make guest; GUEST=kata needs make kata-agent)" >&2
  exit 2
fi

rm -rf "$demo" && mkdir -p "$demo/bundle/rootfs"
render() { sed -e "s|@ROOT@|$root|g" -e "s|@DEMO@|$demo|g" -e "s|@SID@|$sid|g" "$1" >"$2"; }
if [[ $config == stock ]]; then
  # Unchanged but for paths; exit 3 (no ../shared) is passed on with its SKIPPED message.
  bash "$root/scripts/fill-stock-config.sh" "$demo/configuration.toml" --guest "$guest"
else
  render "$root/examples/demo/configuration.toml.in" "$demo/configuration.toml"
  # The template boots our agent's image (bench/sandbox.bench.ts renders it too); GUEST picks another.
  sed -i "s|/build/guest/initramfs.cpio.gz\"|/build/guest/$initrd\"|" "$demo/configuration.toml"
  grep -q "/build/guest/$initrd\"" "$demo/configuration.toml" ||
    { echo "kata-ts: demo: configuration.toml.in has no initramfs.cpio.gz initrd line" >&2; exit 2; }
fi
render "$root/examples/demo/config.json.in" "$demo/bundle/config.json"
cp "$root/build/rootfs/busybox.ext4" "$demo/rootfs.ext4"
printf '[{"type": "ext4", "source": "%s", "options": ["loop"]}]\n' "$demo/rootfs.ext4" >"$demo/bundle/rootfs-mounts.json"
cm="$demo/kubelet/pods/demo-pod/volumes/kubernetes.io~configmap/app-config"
mkdir -p "$cm"
cp "$root/examples/demo/demo.sh.in" "$cm/demo.sh"
echo "hello from the host" >"$cm/greeting"

cleanup() { "${kata[@]}" cleanup "$sid" >/dev/null 2>&1 || true; rmdir /sys/fs/cgroup/*/kata-ts-demo 2>/dev/null || true; }
trap cleanup EXIT

echo "demo: guest build/guest/$initrd ($agent_name), config $config"
echo "demo: kata-ts run --config $demo/configuration.toml $demo/bundle  (sandbox $sid, accel $KATA_TS_QEMU_ACCEL)"
out="$demo/container.out"
"${kata[@]}" run --timings --agent-details --id "$sid" --config "$demo/configuration.toml" "$demo/bundle" >"$out" 2>"$demo/kata-ts.err" &
run=$!
# Once the container has read the configmap, show the host side and update the configmap.
for _ in $(seq 600); do grep -q 'configmap says' "$out" 2>/dev/null && break; kill -0 $run 2>/dev/null || break; sleep 0.1; done
shown=0
grep -m1 '^agent: ' "$demo/kata-ts.err" | sed 's/^agent: /guest agent (GetGuestDetails): /' || true
if grep -q 'configmap says' "$out"; then
  cat "$out" && shown=$(wc -l <"$out")
  cg=$("${kata[@]}" state "$sid" | node -e 'const s=JSON.parse(require("fs").readFileSync(0,"utf8")); console.log(s.cgroups.record.sandbox.path)')
  procs=$(ls /sys/fs/cgroup/cpu/"$cg"/cgroup.procs /sys/fs/cgroup/"$cg"/cgroup.procs 2>/dev/null | head -1 || true)
  echo "host: sandbox cgroup ${procs%/cgroup.procs} holds pids $(tr '\n' ' ' <"$procs")(QEMU and kata-ts)"
  echo "host: updating the configmap"
  echo "updated on the host at $(date +%T)" >"$cm/greeting.tmp" && mv "$cm/greeting.tmp" "$cm/greeting"
fi
status=0
wait $run || status=$?
tail -n +$((shown + 1)) "$out"
echo "demo: container exited with $status"
# kata-ts's stderr: its timing table (and any error); JSON log lines are left in the file.
grep -v -e '^{' -e '^agent: ' "$demo/kata-ts.err" || true
exit $status
