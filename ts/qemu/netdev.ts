// QEMU arguments for the planned NICs: `-netdev tap,fd=…` (the tap queues and vhost-net fds
// opened in the pod's netns, passed to QEMU as inherited fds) and a `virtio-net-pci` device on
// its planned pcie.0 function with the veth's MAC. Pure: fd numbers as QEMU will see them in.
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';
import type { NicPlan } from '../plan/network.js';
import { qemuOpts } from './cmdline.js';

/** The fds one NIC hands QEMU, as numbers in QEMU's fd table. */
export interface NicFds {
  readonly tap: readonly number[];
  readonly vhost: readonly number[];
}

/** `-netdev` + `-device` pairs, in NIC order. */
export function netdevArgs(
  nics: readonly NicPlan[],
  fds: readonly NicFds[],
): Result<string[], Problem> {
  if (fds.length !== nics.length)
    return err(problem('qemu', 'qemu command line', 'netdev', fds.length, 'one fd set per NIC'));
  const args: string[] = [];
  for (const [i, nic] of nics.entries()) {
    const f = fds[i]!;
    if (f.tap.length !== nic.queues || (nic.vhost && f.vhost.length !== nic.queues))
      return err(
        problem('qemu', 'qemu command line', `netdev ${nic.id}`, f.tap.length, 'one fd per queue'),
      );
    const many = nic.queues > 1;
    args.push(
      '-netdev',
      qemuOpts('tap', {
        id: nic.id,
        ...(many ? { fds: f.tap.join(':') } : { fd: f.tap[0] }),
        ...(nic.vhost
          ? { vhost: true, ...(many ? { vhostfds: f.vhost.join(':') } : { vhostfd: f.vhost[0] }) }
          : {}),
      }),
      '-device',
      qemuOpts('virtio-net-pci', {
        id: `virtio-${nic.id}`,
        netdev: nic.id,
        mac: nic.mac,
        bus: nic.bus,
        addr: nic.addr,
        ...(nic.multifunction ? { multifunction: true } : {}),
        // vectors = 2 per queue pair + config + control (QEMU's own formula for mq).
        ...(many ? { mq: true, vectors: 2 * nic.queues + 2 } : {}),
        host_mtu: nic.mtu,
        // No option ROM: -nodefaults guests boot by PVH, and a missing ROM file fails start.
        romfile: '',
      }),
    );
  }
  return ok(args);
}
