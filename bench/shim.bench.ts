// containerd shim figures, measured through a private containerd (__test__/containerd harness) on
// the busybox image the tests build, against Debian's runc shim (io.containerd.runc.v2) in the
// same run.
// shim.ctr_run_to_output: ms from spawning `ctr run --rm … echo hello` until `hello` is read on
//   its stdout: kata-ts (a sandbox VM booted under TCG here, rootfs over virtio-fs; median of
//   OURS_ROUNDS) against runc (median of ROUNDS, after a warm-up run).
// shim.rss_mib: resident memory (VmRSS) of the shim per pod, mean over PODS long-running tasks
//   for runc, one pod for kata-ts (the front and the daemon; PSS per pod at 1 and 10 pods is
//   shim-density.bench.ts). Ours runs with the lifecycle's test hooks (paused QEMU, host-side
//   stand-in agent, force guest pull): the shim process is the same, the VM is not counted.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireAgentBinary } from '../__test__/agent/agent-harness.js';
import { busyboxArchive, BUSYBOX_IMAGE } from '../__test__/containerd/busybox-image.js';
import {
  startContainerd,
  type PrivateContainerd,
} from '../__test__/containerd/containerd-harness.js';
import {
  guestBuilt,
  guestConfig,
  hookConfig,
  RUNTIME,
  specFile,
  writeShim,
} from '../__test__/shim/shim-harness.js';
import { shimProcesses } from '../__test__/containerd/daemon-pods.js';
import { lowerIsBetter, type Metrics } from './metric.js';

const RUNC = 'io.containerd.runc.v2';
const ROUNDS = 10;
const PODS = 3;
const OURS_ROUNDS = 3;
/** The guest kernel boots only under TCG on this host (peers.md); elsewhere pass KATA_TS_QEMU_ACCEL. */
const ACCEL = process.env.KATA_TS_QEMU_ACCEL ?? 'tcg';

/** `ctr run --rm` to output through the kata-ts shim with the built guest (median of OURS_ROUNDS). */
async function oursRunMs(): Promise<number[]> {
  if (!guestBuilt) throw new Error('build/guest is missing: run `make guest`');
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-shim-bench-'));
  writeShim(dir, { KATA_TS_CONFIG: guestConfig(dir), KATA_TS_QEMU_ACCEL: ACCEL });
  const c = await startContainerd({ shimDirs: [dir] });
  try {
    await c.ctr('images', 'import', busyboxArchive());
    const times: number[] = [];
    for (let k = 0; k < OURS_ROUNDS; k++)
      times.push(
        await timeToOutput(
          c,
          ['run', '--rm', '--runtime', RUNTIME, BUSYBOX_IMAGE, `kecho-${k}`, 'echo', 'hello'],
          'hello',
        ),
      );
    return times;
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** ms from spawning ctr until `expected` appears on its stdout; rejects if ctr fails. */
function timeToOutput(c: PrivateContainerd, args: string[], expected: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = c.spawnCtr(...args);
    let out = '';
    let err = '';
    let at: number | undefined;
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (at === undefined && out.includes(expected)) at = performance.now() - start;
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) =>
      code === 0 && at !== undefined
        ? resolve(at)
        : reject(new Error(`ctr ${args.join(' ')}: exit ${code}\n${err}${out}`)),
    );
  });
}

function rssMiB(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) =>
    Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, anon: kib('RssAnon') / 1024 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** VmRSS of the kata-ts shim of one pod under the lifecycle's test hooks (the stand-in agent
 * serves one sandbox, so one pod). */
async function oursRssMiB(): Promise<{ rss: number; anon: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-shim-bench-'));
  const socket = path.join(dir, 'agent.sock');
  const agent = spawn(requireAgentBinary(), ['--listen', `unix:${socket}`, '--root', dir], {
    stdio: 'ignore',
  });
  writeShim(dir, {
    KATA_TS_CONFIG: hookConfig(dir),
    KATA_TS_TEST_AGENT: socket,
    KATA_TS_QEMU_PAUSED: '1',
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  const c = await startContainerd({ shimDirs: [dir] });
  try {
    await c.ctr('images', 'import', busyboxArchive());
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'kpod', ['sleep', '1000']),
      'kpod',
    );
    // The one host-wide shim: the front and the node daemon behind it.
    const { front, daemon } = shimProcesses(c);
    if (front.length !== 1 || daemon.length !== 1)
      throw new Error(`expected one front and one daemon, found ${front.length}, ${daemon.length}`);
    const [f, d] = [rssMiB(front[0]!), rssMiB(daemon[0]!)];
    return { rss: f.rss + d.rss, anon: f.anon + d.anon };
  } finally {
    await c.stop();
    agent.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Metrics> {
  const c = await startContainerd();
  try {
    await c.ctr('images', 'import', busyboxArchive());
    const runOnce = (k: number | 'warmup') =>
      timeToOutput(
        c,
        ['run', '--rm', '--runtime', RUNC, BUSYBOX_IMAGE, `echo-${k}`, 'echo', 'hello'],
        'hello',
      );
    await runOnce('warmup');
    const times: number[] = [];
    for (let k = 0; k < ROUNDS; k++) times.push(await runOnce(k));

    for (let k = 0; k < PODS; k++)
      await c.ctr(
        'run',
        '-d',
        '--null-io',
        '--runtime',
        RUNC,
        BUSYBOX_IMAGE,
        `pod-${k}`,
        'sleep',
        '1000',
      );
    const shims = c.shimPids();
    if (shims.length !== PODS)
      throw new Error(`expected ${PODS} runc shims, found ${shims.length}`);
    const mem = shims.map(rssMiB);
    const runMs = median(times);
    const rss = mean(mem.map((m) => m.rss));
    const anon = mean(mem.map((m) => m.anon));
    const ours = await oursRssMiB();
    const oursTimes = await oursRunMs();
    const oursMs = median(oursTimes);
    return {
      'shim.ctr_run_to_output': lowerIsBetter(
        oursMs,
        runMs,
        'ms',
        `kata-ts shim, sandbox VM with accel=${ACCEL}, rootfs over virtio-fs: median of ${OURS_ROUNDS} (${oursTimes.map((x) => x.toFixed(0)).join(', ')} ms) vs runc shim: median of ${ROUNDS}, range ${Math.min(...times).toFixed(0)}–${Math.max(...times).toFixed(0)} ms`,
      ),
      'shim.rss_mib': lowerIsBetter(
        ours.rss,
        rss,
        'MiB',
        `shim VmRSS per pod: kata-ts, one pod (front + node daemon with addon, sources through tsx; anonymous ${ours.anon.toFixed(1)} MiB; paused VM + stand-in agent, VM not counted) vs runc, mean of ${PODS} (anonymous ${anon.toFixed(1)} MiB)`,
      ),
    };
  } finally {
    await c.stop();
  }
}
