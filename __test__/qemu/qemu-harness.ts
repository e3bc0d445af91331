// Real QEMU for tests: a plan from the planner's builders, our command line, a temp dir per VM,
// and teardown that kills every process by its pid and removes sockets and files, even when the
// test fails. A process-exit hook kills whatever a timed-out test left behind.
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { HypervisorConfig } from '../../ts/config/kata-config.js';
import { hostPath } from '../../ts/paths.js';
import { BlockDevicePlanner, type BlockDevice } from '../../ts/plan/block-devices.js';
import type { ResourcePlan } from '../../ts/plan/plan.js';
import { planPorts } from '../../ts/plan/ports.js';
import { usableAccel, DEFAULT_QEMU } from '../../ts/qemu/accel.js';
import {
  AGENT_PORT_NAME,
  qemuCommandLine,
  type Accel,
  type VmLaunch,
} from '../../ts/qemu/cmdline.js';
import { Virtiofsd, Vm } from '../../ts/qemu/vm.js';
import { kataConfig, planOf } from '../plan/plan-builders.js';

const live = new Set<number>();
process.once('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Tracks a pid until its process is reaped. */
export function track(pid: number | undefined, exited: Promise<unknown>): void {
  if (pid === undefined) return;
  live.add(pid);
  void exited.then(() => live.delete(pid));
}

export const QMP_TIMEOUT_MS = 20_000;

/** A temp dir removed in teardown. */
export function scratchDir(t: ExecutionContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-qemu-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A raw disk image of `bytes` (zeros unless `content`). */
export function diskImage(
  dir: string,
  name: string,
  bytes = 1 << 20,
  content?: Uint8Array,
): string {
  const file = path.join(dir, name);
  const data = Buffer.alloc(bytes);
  if (content) data.set(content);
  writeFileSync(file, data);
  return file;
}

export function configWith(hv: Partial<HypervisorConfig>): HypervisorConfig {
  return kataConfig({
    kernel: '',
    image: '',
    initrd: '',
    kernelParams: '',
    cpuFeatures: '',
    sharedFs: 'none',
    ...hv,
  }).hypervisor;
}

/** A plan for `hv`, shrunk to a small VM (paused tests never touch guest RAM). */
export function smallPlan(hv: HypervisorConfig, patch: Partial<ResourcePlan> = {}): ResourcePlan {
  // The example sandbox's rootfs needs a shared fs to be planned; the VM side is all we use.
  const planned = hv.sharedFs === 'none' ? { ...hv, sharedFs: 'virtio-fs' as const } : hv;
  const p = planOf({ config: { ...kataConfig(), hypervisor: planned } })._unsafeUnwrap();
  return {
    ...p,
    memoryMiB: 256,
    maxMemoryMiB: 256,
    vcpus: { boot: 1, max: 2, exact: '1' },
    // Nothing shared unless `hv` shares it (the rootfs was planned over virtio-fs regardless).
    ...(hv.sharedFs === 'none' ? { sharedDirs: null } : {}),
    ...patch,
  };
}

/** A planner for hot-plugged devices of this config, on the same ports as the plan. */
export function devicePlanner(hv: HypervisorConfig): BlockDevicePlanner {
  return new BlockDevicePlanner(hv, planPorts(hv)._unsafeUnwrap());
}

export function hotplugDevice(
  planner: BlockDevicePlanner,
  file: string,
  readOnly = false,
): BlockDevice {
  return planner
    .allocate({ pathOnHost: hostPath(file)._unsafeUnwrap(), readOnly, hotplug: true })
    ._unsafeUnwrap();
}

export interface StartedVm {
  readonly vm: Vm;
  readonly dir: string;
  readonly accel: Accel;
  readonly args: readonly string[];
  readonly virtiofsd?: Virtiofsd;
}

/** Builds the command line from the plan and starts QEMU; killed and cleaned in teardown. */
export async function startVm(
  t: ExecutionContext,
  plan: ResourcePlan,
  hv: HypervisorConfig,
  launch: Partial<VmLaunch> & { accel?: Accel; sharedDir?: string } = {},
): Promise<StartedVm> {
  const dir = scratchDir(t);
  const accel = launch.accel ?? (await usableAccel()).accel;
  let virtiofsSocket: string | undefined;
  let virtiofsd: Virtiofsd | undefined;
  if (hv.sharedFs === 'virtio-fs') {
    virtiofsSocket = path.join(dir, 'vfs.sock');
    const fsd = await Virtiofsd.start({
      socketPath: virtiofsSocket,
      sharedDir: launch.sharedDir ?? dir,
      logPath: path.join(dir, 'virtiofsd.log'),
    });
    if (fsd.isErr()) t.fail(fsd.error.message);
    const d = fsd._unsafeUnwrap();
    virtiofsd = d;
    track(d.pid, d.exited);
    t.teardown(async () => void (await d.kill()));
  }
  const full: VmLaunch = {
    qmpSocket: path.join(dir, 'qmp.sock'),
    agent: {
      kind: 'virtio-serial',
      socketPath: path.join(dir, 'agent.sock'),
      portName: AGENT_PORT_NAME,
    },
    paused: true,
    pcieNativeHotplug: true,
    ...(virtiofsSocket ? { virtiofsSocket } : {}),
    ...launch,
    accel,
  };
  const args = qemuCommandLine(plan, hv, full);
  if (args.isErr()) throw new Error(args.error.map((p) => p.message).join('\n'));
  const vm = await Vm.spawn({
    binary: hv.path || DEFAULT_QEMU,
    args: args.value,
    logPath: path.join(dir, 'qemu.log'),
    qmpSocket: full.qmpSocket,
    startTimeoutMs: QMP_TIMEOUT_MS,
  });
  if (vm.isErr())
    throw new Error(`QEMU did not start: ${vm.error.message}\nargs: ${args.value.join(' ')}`);
  track(vm.value.pid, vm.value.exited);
  t.teardown(async () => void (await vm.value.kill()));
  return { vm: vm.value, dir, accel, args: args.value, ...(virtiofsd ? { virtiofsd } : {}) };
}

/** What /proc says about a process's AIO engines and an image's open flags. */
export interface AioFacts {
  readonly ioUringFds: number;
  /** Kernel AIO rings mapped into the process (`/[aio]` in maps): one per io_setup. */
  readonly aioRings: number;
  /** O_DIRECT on the fd open on `image`, null when none is open. */
  readonly imageDirect: boolean | null;
}

const O_DIRECT = 0o40000;

export function aioFacts(pid: number, image: string): AioFacts {
  const fdDir = `/proc/${pid}/fd`;
  let ioUringFds = 0;
  let imageDirect: boolean | null = null;
  for (const fd of readdirSync(fdDir)) {
    let target: string;
    try {
      target = readlinkSync(`${fdDir}/${fd}`);
    } catch {
      continue;
    }
    if (target === 'anon_inode:[io_uring]') ioUringFds++;
    if (target === image) {
      const flags = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      imageDirect = flags ? (Number.parseInt(flags[1]!, 8) & O_DIRECT) !== 0 : null;
    }
  }
  const aioRings = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('/[aio]')).length;
  return { ioUringFds, aioRings, imageDirect };
}

/** True while `pid` exists (and is not a zombie we already reaped). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
