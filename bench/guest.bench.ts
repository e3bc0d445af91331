// Guest figures (need `make guest`; without it both metrics are reported as 0 with a note).
// guest.boot_to_agent: ms from QEMU spawn until our agent, PID 1 in the TCG guest, answers health
//   Check SERVING over the virtio-serial port; peer = spawn → the same image's /init wrote READY
//   in shell mode (katats.init=shell): the boot floor without the agent. Median of 3 each.
// guest.container_start: ms from CreateContainer until the first stdout byte of the container
//   process arrives over ReadStdout (CreateContainer + StartContainer + ReadStdout, the rootfs
//   already hot-plugged), in the TCG guest; peer = `runc run` of the same busybox command on
//   the host (spawn → first stdout byte), native speed. Median over 2 containers × 3 boots.
// Both figures again for upstream kata-agent (`….kata_agent`: build/guest/initramfs-kata.cpio.gz,
// kata-agent 4.1.0 behind our serial relay; same kernel, plan, host side and peers), booted
// alternately with ours in the same run, so the two agents are side by side. kata-agent's boot
// counts until it answers health Check through the relay.
import { spawn } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { lowerIsBetter, type Metrics } from './metric.js';
import type { GuestImage } from '../ts/guest/guest-shell.js';
import { GUEST_IMAGES } from '../__test__/guest/guest-image-paths.js';
import { bootAgentGuest } from '../ts/guest/boot-agent-guest.js';
import { GuestShell, SHELL_BOOT_PARAMS } from '../ts/guest/guest-shell.js';
import { launchVm } from '../ts/qemu/launch.js';
import {
  createAndStart,
  createSandbox,
  GUEST_IMAGE,
  missingGuestParts,
  podFixture,
  prepareContainer,
  readAllStdout,
} from '../__test__/guest/planned-pod.js';

const BOOTS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One agent boot: boot ms and CreateContainer → first byte ms of both pod containers. */
async function agentBoot(image: GuestImage): Promise<{ bootMs: number; startMs: number[] }> {
  const f = podFixture('virtio-blk-pci');
  try {
    const g = (
      await bootAgentGuest({
        plan: f.plan,
        config: f.hv,
        image,
        runDir: path.join(f.dir, 'run'),
        bootTimeoutMs: 180_000,
      })
    )._unsafeUnwrap();
    try {
      await createSandbox(g.agent, f.plan);
      const startMs: number[] = [];
      for (const c of f.plan.containers) {
        await prepareContainer(g.agent, { kind: 'unix', path: g.vm.agentSocket }, g.vm.vm.qmp, c);
        const t0 = performance.now();
        await createAndStart(g.agent, c);
        let first = 0;
        await readAllStdout(g.agent, c.id, () => (first = performance.now() - t0));
        startMs.push(first);
      }
      return { bootMs: g.bootMs, startMs };
    } finally {
      await g.stop();
    }
  } finally {
    f.cleanup();
  }
}

/** Which kernel build/guest/vmlinux is (debian or minimal). */
function kernelName(): string {
  try {
    return readlinkSync(GUEST_IMAGE!.kernel).replace(/^vmlinux-/, '');
  } catch {
    return 'vmlinux';
  }
}

/** Spawn → READY of the same image in shell mode. */
async function shellBoot(): Promise<number> {
  const f = podFixture('virtio-blk-pci');
  try {
    const started = performance.now();
    const vm = (
      await launchVm({
        plan: f.plan,
        config: f.hv,
        runDir: path.join(f.dir, 'run'),
        launch: {
          accel: 'tcg',
          kernel: GUEST_IMAGE!.kernel,
          initrd: GUEST_IMAGE!.initrd,
          extraKernelParams: SHELL_BOOT_PARAMS,
        },
      })
    )._unsafeUnwrap();
    try {
      const shell = (await GuestShell.connect(vm.agentSocket))._unsafeUnwrap();
      (await shell.ready(90_000))._unsafeUnwrap();
      const ms = performance.now() - started;
      shell.close();
      return ms;
    } finally {
      await vm.stop();
    }
  } finally {
    f.cleanup();
  }
}

/** `runc run` of `cat` in a busybox rootfs dir on the host: spawn → first stdout byte. */
async function runcStart(dir: string, n: number): Promise<number> {
  const bundle = path.join(dir, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc']) mkdirSync(path.join(rootfs, d));
  cpSync('/usr/bin/busybox', path.join(rootfs, 'bin/busybox'));
  symlinkSync('busybox', path.join(rootfs, 'bin/cat'));
  writeFileSync(path.join(rootfs, 'etc/key'), 'value\n');
  await new Promise<void>((resolve, reject) =>
    spawn('runc', ['spec'], { cwd: bundle, stdio: 'ignore' }).once('exit', (c) =>
      c === 0 ? resolve() : reject(new Error(`runc spec: ${c}`)),
    ),
  );
  const config = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  config.process.terminal = false;
  config.process.args = ['cat', '/etc/key'];
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
  const runs: number[] = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    runs.push(
      await new Promise<number>((resolve, reject) => {
        const child = spawn(
          'runc',
          ['--root', path.join(dir, 'state'), 'run', `kata-ts-bench-${process.pid}-${k}`],
          { cwd: bundle, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let first = 0;
        child.stdout.once('data', () => (first = performance.now() - t0));
        child.once('exit', (c) =>
          c === 0 && first > 0 ? resolve(first) : reject(new Error(`runc run exited ${c}`)),
        );
      }),
    );
  }
  return median(runs);
}

export async function run(): Promise<Metrics> {
  const missing = missingGuestParts();
  if (missing !== null) {
    const note = `not measured: ${missing}`;
    return {
      'guest.boot_to_agent': lowerIsBetter(0, 0, 'ms', note),
      'guest.container_start': lowerIsBetter(0, 0, 'ms', note),
    };
  }
  const kata = GUEST_IMAGES.find((i) => i.name === 'kata-agent')!;
  const kataMissing = kata.missing();
  const boots: number[] = [];
  const shells: number[] = [];
  const starts: number[] = [];
  const kataBoots: number[] = [];
  const kataStarts: number[] = [];
  const loadBefore = loadavg()[0]!;
  for (let k = 0; k < BOOTS; k++) {
    const a = await agentBoot(GUEST_IMAGE!);
    boots.push(a.bootMs);
    starts.push(...a.startMs);
    if (kataMissing === null) {
      const b = await agentBoot(kata.image);
      kataBoots.push(b.bootMs);
      kataStarts.push(...b.startMs);
    }
    shells.push(await shellBoot());
  }
  const conditions = `TCG, kernel ${kernelName()}, load average ${loadBefore.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-bench-runc-'));
  let runc = 0;
  try {
    runc = await runcStart(dir, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    'guest.boot_to_agent': lowerIsBetter(
      median(boots),
      median(shells),
      'ms',
      `spawn → our agent (PID 1, static) answers health Check over virtio-serial; peer = spawn → same image's /init READY in shell mode; median of ${BOOTS}, alternating with kata-agent; ${conditions}`,
    ),
    'guest.container_start': lowerIsBetter(
      median(starts),
      runc,
      'ms',
      `CreateContainer → first stdout byte over ReadStdout, busybox ext4 rootfs hot-plugged (virtio-blk), our agent in the TCG guest; peer = host runc run (spawn → first byte, native); median of ${starts.length}; ${conditions}`,
    ),
    'guest.boot_to_agent.kata_agent':
      kataMissing !== null
        ? lowerIsBetter(0, 0, 'ms', `not measured: ${kataMissing}`)
        : lowerIsBetter(
            median(kataBoots),
            median(shells),
            'ms',
            `spawn → upstream kata-agent 4.1.0 (started by /init, behind kata-ts-serial-relay) answers health Check over virtio-serial; peer = spawn → /init READY in shell mode (our image); ours in the same run ${median(boots).toFixed(0)} ms; median of ${BOOTS}; ${conditions}`,
          ),
    'guest.container_start.kata_agent':
      kataMissing !== null
        ? lowerIsBetter(0, 0, 'ms', `not measured: ${kataMissing}`)
        : lowerIsBetter(
            median(kataStarts),
            runc,
            'ms',
            `CreateContainer → first stdout byte over ReadStdout on upstream kata-agent 4.1.0, same plan and hot-plugged rootfs; peer = host runc run; ours in the same run ${median(starts).toFixed(0)} ms; median of ${kataStarts.length}; ${conditions}`,
          ),
  };
}
