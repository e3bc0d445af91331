// QEMU driver figures (bounded; each VM is killed by its pid at the end, even on failure).
// qemu.hotplug: block hot-plug + unplug (blockdev-add, device_add scsi-hd, device_del, wait for
//   DEVICE_DELETED, blockdev-del) through our QMP client vs the same commands written by a
//   minimal raw socket script, against the same paused VM, in the same run.
// qemu.boot_to_agent_socket: with the test guest built (`make guest`): ms from spawn until the
//   booted guest (TCG) opened the agent port and wrote to it. Without it: spawn → the agent
//   chardev socket accepts on a paused VM. An absolute figure: QMP-ready in the same starts is
//   a milestone of the same boot, not a peer, and is only quoted in the note.
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { absolute, lowerIsBetter, type Metrics } from './metric.js';
import { usableAccel, DEFAULT_QEMU } from '../ts/qemu/accel.js';
import { AGENT_PORT_NAME, qemuOpts } from '../ts/qemu/cmdline.js';
import { hotplugBlock, unplugBlock } from '../ts/qemu/hotplug.js';
import { Vm } from '../ts/qemu/vm.js';
import { hostPath } from '../ts/paths.js';
import {
  SHELL_BOOT_PARAMS,
  GuestShell,
  guestImage,
  type GuestImage,
} from '../ts/guest/guest-shell.js';
import type { BlockDevice } from '../ts/plan/block-devices.js';

const ROUNDS = 30;

function baseArgs(accel: string, dir: string): string[] {
  const cpu = accel === 'kvm' ? 'host,-arch-capabilities' : 'max';
  return [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-machine',
    `q35,accel=${accel}`,
    '-cpu',
    cpu,
    '-m',
    '128M',
    '-S',
    '-qmp',
    `unix:${path.join(dir, 'qmp.sock')},server=on,wait=off`,
    '-device',
    'virtio-scsi-pci,id=scsi0,bus=pcie.0,addr=0x03',
    '-device',
    'virtio-serial-pci,id=vser0,bus=pcie.0,addr=0x02',
    '-chardev',
    qemuOpts('socket', {
      id: 'agent',
      path: path.join(dir, 'agent.sock'),
      server: true,
      wait: false,
    }),
    '-device',
    qemuOpts('virtserialport', { bus: 'vser0.0', chardev: 'agent', name: AGENT_PORT_NAME }),
  ];
}

/** The same five commands over a bare socket: write JSON, read lines until the reply/event. */
async function rawHotplugCycle(socketPath: string, image: string, n: number): Promise<number> {
  const sock = net.createConnection(socketPath);
  sock.setEncoding('utf8');
  let buf = '';
  const waiters: ((line: Record<string, unknown>) => boolean)[] = [];
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      const w = waiters[0];
      if (w && w(msg)) waiters.shift();
    }
  });
  const until = (pred: (m: Record<string, unknown>) => boolean) =>
    new Promise<void>((r) => waiters.push((m) => (pred(m) ? (r(), true) : false)));
  const cmd = (execute: string, args?: unknown) => {
    const p = until((m) => 'return' in m || 'error' in m);
    sock.write(JSON.stringify({ execute, arguments: args }) + '\n');
    return p;
  };
  await until((m) => 'QMP' in m);
  await cmd('qmp_capabilities');
  const start = performance.now();
  for (let k = 0; k < n; k++) {
    const id = `raw-${k}`;
    await cmd('blockdev-add', {
      driver: 'raw',
      'node-name': id,
      'read-only': false,
      cache: { direct: false, 'no-flush': false },
      file: { driver: 'file', filename: image, aio: 'threads' },
    });
    await cmd('device_add', {
      driver: 'scsi-hd',
      bus: 'scsi0.0',
      id,
      drive: id,
      'scsi-id': 0,
      lun: 1,
      'share-rw': true,
    });
    const deleted = until(
      (m) => m.event === 'DEVICE_DELETED' && (m.data as { device?: string }).device === id,
    );
    sock.write(JSON.stringify({ execute: 'device_del', arguments: { id } }) + '\n');
    await deleted; // the device_del reply comes first and is skipped by the event predicate
    await cmd('blockdev-del', { 'node-name': id });
  }
  const ms = (performance.now() - start) / n;
  sock.destroy();
  return ms;
}

async function oursHotplugCycle(vm: Vm, image: string, n: number): Promise<number> {
  const start = performance.now();
  for (let k = 0; k < n; k++) {
    const d: BlockDevice = {
      id: `drive-${k}`,
      driver: 'virtio-scsi',
      agentDriver: 'scsi',
      pathOnHost: hostPath(image)._unsafeUnwrap(),
      readOnly: false,
      aio: 'threads',
      directIo: false,
      scsiAddr: '0:1',
      virtPath: '/dev/sda',
      index: 1,
      hotplug: true,
      bus: 'scsi0.0',
    };
    (await hotplugBlock(vm.qmp, d))._unsafeUnwrap();
    (await unplugBlock(vm.qmp, d.id))._unsafeUnwrap();
  }
  return (performance.now() - start) / n;
}

function connectsNow(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
  });
}

/** Spawn → agent socket accepts; the median of `n` starts. */
async function bootToAgentSocket(
  accel: string,
  n: number,
): Promise<{ agentMs: number; qmpMs: number }> {
  const agent: number[] = [];
  const qmp: number[] = [];
  for (let k = 0; k < n; k++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-bench-'));
    const agentSock = path.join(dir, 'agent.sock');
    const started = performance.now();
    const vm = await Vm.spawn({
      binary: DEFAULT_QEMU,
      args: baseArgs(accel, dir),
      logPath: path.join(dir, 'qemu.log'),
      qmpSocket: path.join(dir, 'qmp.sock'),
    });
    try {
      const v = vm._unsafeUnwrap();
      qmp.push(v.startMs);
      const deadline = Date.now() + 10_000;
      while (!(await connectsNow(agentSock)) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 2));
      agent.push(performance.now() - started);
    } finally {
      if (vm.isOk()) await vm.value.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { agentMs: median(agent), qmpMs: median(qmp) };
}

/** Spawn → guest READY on the agent port (TCG boot of the test guest); the median of `n` boots. */
async function bootGuestToAgent(
  image: GuestImage,
  n: number,
): Promise<{ agentMs: number; qmpMs: number }> {
  const agent: number[] = [];
  const qmp: number[] = [];
  for (let k = 0; k < n; k++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-bench-'));
    const args = [
      ...baseArgs('tcg', dir).filter((a) => a !== '-S'),
      '-smp',
      '1',
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      SHELL_BOOT_PARAMS,
      '-serial',
      'none',
    ];
    const started = performance.now();
    const vm = await Vm.spawn({
      binary: DEFAULT_QEMU,
      args,
      logPath: path.join(dir, 'qemu.log'),
      qmpSocket: path.join(dir, 'qmp.sock'),
    });
    try {
      const v = vm._unsafeUnwrap();
      qmp.push(v.startMs);
      const shell = (await GuestShell.connect(path.join(dir, 'agent.sock')))._unsafeUnwrap();
      (await shell.ready(90_000))._unsafeUnwrap();
      agent.push(performance.now() - started);
      shell.close();
    } finally {
      if (vm.isOk()) await vm.value.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { agentMs: median(agent), qmpMs: median(qmp) };
}

export async function run(): Promise<Metrics> {
  const { accel } = await usableAccel();
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-bench-'));
  const image = path.join(dir, 'disk.img');
  writeFileSync(image, Buffer.alloc(1 << 20));
  const secondQmp = ['-qmp', `unix:${path.join(dir, 'qmp2.sock')},server=on,wait=off`];
  const vm = (
    await Vm.spawn({
      binary: DEFAULT_QEMU,
      args: [...baseArgs(accel, dir), ...secondQmp],
      logPath: path.join(dir, 'qemu.log'),
      qmpSocket: path.join(dir, 'qmp.sock'),
    })
  )._unsafeUnwrap();
  let ours = 0;
  let raw = 0;
  try {
    // Warm both paths, then alternate so machine load hits them alike.
    await oursHotplugCycle(vm, image, 3);
    const rawSocket = path.join(dir, 'qmp2.sock');
    const oursRuns: number[] = [];
    const rawRuns: number[] = [];
    for (let r = 0; r < 3; r++) {
      oursRuns.push(await oursHotplugCycle(vm, image, ROUNDS / 3));
      rawRuns.push(await rawHotplugCycle(rawSocket, image, ROUNDS / 3));
    }
    ours = oursRuns.sort((a, b) => a - b)[1]!;
    raw = rawRuns.sort((a, b) => a - b)[1]!;
  } finally {
    await vm.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  const guest = guestImage(fileURLToPath(new URL('../build/guest', import.meta.url)));
  const boot = guest ? await bootGuestToAgent(guest, 3) : await bootToAgentSocket(accel, 5);
  const bootNote = guest
    ? `spawn → booted busybox guest (Debian 6.1 kernel, PVH, accel=tcg) opened the agent virtio-serial port and wrote READY; median of 3 (QMP negotiated after ${boot.qmpMs.toFixed(0)} ms in the same boots: a milestone, not a peer)`
    : `spawn → agent chardev socket accepts, accel=${accel}, paused VM (no guest built: run make guest); median of 5 (QMP negotiated after ${boot.qmpMs.toFixed(0)} ms in the same starts: a milestone, not a peer)`;
  return {
    'qemu.hotplug': lowerIsBetter(
      ours,
      raw,
      'ms',
      `scsi-hd hot-plug+unplug cycle (5 QMP commands + DEVICE_DELETED), paused VM, accel=${accel}; peer = raw socket script on a second QMP monitor of the same VM; median of 3×${ROUNDS / 3}`,
    ),
    'qemu.boot_to_agent_socket': absolute(Number(boot.agentMs.toFixed(1)), 'ms', bootNote),
  };
}
