#!/bin/busybox sh
# /init of the test guest (copied into the initramfs by ts/guest/build-guest.sh).
# Mounts the pseudo filesystems, loads the modules when they match the running kernel (the
# minimal kernel has its drivers built in; overlay and xfs load on demand), finds the
# `agent.channel.0` virtio-serial port, then by kernel command line: `katats.init=shell` serves
# the line shell of ts/guest/guest-shell.ts; otherwise the image's agent: ours runs as PID 1 on
# the port; upstream kata-agent (in the kata image) listens on unix:///run/kata-agent.sock with
# kata-ts-serial-relay joining the port to it, and the guest powers off when it exits (as Kata's
# kata-agent.service does with FailureAction=poweroff). The root stays the initramfs (rootfs): the
# agents enter container roots with chroot, since pivot_root(2) refuses to move rootfs (a tmpfs
# copy + switch_root cost ~1.4 s under TCG).
# shellcheck shell=sh
bb=/bin/busybox
say() {
  up=""
  [ -r /proc/uptime ] && read -r up _ </proc/uptime
  echo "guest: ${up:+[$up] }$*" >/dev/console 2>/dev/null
}

$bb --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# Without a serial console (QEMU -serial none) the kernel could not open one for us: fds 0-2 are
# closed, and the agent's first open (the port) would become its stderr. Point them somewhere.
if { : >/dev/console; } 2>/dev/null; then exec </dev/null >/dev/console 2>&1; else exec </dev/null >/dev/null 2>&1; fi
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev run /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
say "pseudo filesystems mounted"
# The modules were built for one kernel (Debian's); another kernel (minimal, drivers built in)
# has no /lib/modules/<its release>, and nothing to load.
if [ -d "/lib/modules/$(uname -r)" ]; then
  while read -r m; do insmod "$m" 2>/dev/null; done </etc/modules.order
  say "modules loaded"
else
  say "kernel $(uname -r): drivers built in, no modules loaded"
fi

port=""
i=0
while [ $i -lt 200 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ -f "$p/name" ] && [ "$(cat "$p/name")" = agent.channel.0 ] && port=/dev/$(basename "$p")
  done
  [ -n "$port" ] && [ -e "$port" ] && break
  i=$((i + 1))
  sleep 0.05
done
[ -n "$port" ] || { say "no agent.channel.0 port"; poweroff -f; }
mkdir -p /dev/virtio-ports && ln -sf "$port" /dev/virtio-ports/agent.channel.0

case " $(cat /proc/cmdline) " in
*" katats.init=shell "*)
  say "shell on $port"
  exec 3<>"$port"
  echo "READY" >&3
  while read -r line <&3; do
    sh -c "$line" >/tmp/out 2>&1
    rc=$?
    cat /tmp/out >&3
    echo "__END__ $rc" >&3
  done
  poweroff -f
  ;;
esac

if [ -x /bin/kata-agent ]; then
  # Upstream kata-agent as an ordinary process (not PID 1: /init keeps the relay and reaps).
  mkdir -p /run/kata-containers
  say "kata-agent on unix:///run/kata-agent.sock, relayed from $port"
  /bin/kata-ts-serial-relay --port "$port" --socket /run/kata-agent.sock &
  KATA_AGENT_SERVER_ADDR=unix:///run/kata-agent.sock /bin/kata-agent
  say "kata-agent exited ($?): powering off"
  sync
  poweroff -f
fi

[ -x /bin/kata-ts-agent ] || { say "no /bin/kata-ts-agent in this image"; poweroff -f; }
# --guest: real mode (storages, containers in namespaces; as PID 1 DestroySandbox powers off).
say "agent on $port"
exec /bin/kata-ts-agent --guest --listen "serial:$port" --root /
