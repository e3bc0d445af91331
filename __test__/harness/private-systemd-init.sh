#!/bin/bash
# Runs as PID 1 of fresh pid/mount/uts/ipc/net namespaces (started by private-systemd.ts through
# `unshare --pid --fork --mount --mount-proc --uts --ipc --net --propagation private`) and turns
# into a private systemd that can never touch the host's cgroups or sysctls:
#  - it joins a dedicated host cgroup subtree in every hierarchy, then a new cgroup namespace,
#    so the fresh cgroup mounts below show that subtree as their root;
#  - a private tmpfs on /sys/fs/cgroup holds those mounts (systemd remounts it read-only);
#  - /run is a host directory of the test's own, /proc/sys is read-only.
# Usage: private-systemd-init.sh <cgroup subtree name> <run dir> <units dir> <hybrid|unified>
#   hybrid: v1 controllers + name=systemd + cgroup2 at unified (as the host);
#   unified: only cgroup2, mounted at /sys/fs/cgroup (systemd runs in unified mode).
set -euo pipefail
sub=$1 run=$2 units=$3 layout=$4
for h in /sys/fs/cgroup/*/; do
  h=${h%/}
  [ -e "$h/cgroup.procs" ] || continue
  mkdir -p "$h/$sub"
  if [ -e "$h/cpuset.cpus" ]; then
    cat "$h/cpuset.cpus" > "$h/$sub/cpuset.cpus"
    cat "$h/cpuset.mems" > "$h/$sub/cpuset.mems"
  fi
  echo 0 > "$h/$sub/cgroup.procs"
done
exec unshare --cgroup -- /bin/bash -euo pipefail -c '
run=$1 units=$2 layout=$3
mount --bind "$run" /run
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
if [ "$layout" = unified ]; then
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
else
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup-root /sys/fs/cgroup
  for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
    mkdir /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
  done
  mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
fi
exec env -i container=other SYSTEMD_UNIT_PATH="$units" /lib/systemd/systemd --system --log-target=console --log-level=notice
' private-systemd "$run" "$units" "$layout"
