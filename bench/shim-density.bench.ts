// shim.host_mib_per_pod: host memory of the kata-ts shim per pod — the proportional set size
// (PSS, /proc/<pid>/smaps_rollup) of every kata-ts host process (the front and the node daemon;
// not QEMU or virtiofsd, which are the VM) divided by the pods it serves, at 1 and at 10 idle
// pods, against containerd-shim-runc-v2's PSS per pod (10 pods) in the same run. The shim runs
// as shipped: compiled dist/ JS through bin/containerd-shim-kata-ts-v2.js (build dist first:
// `npx tsc -p tsconfig.build.json`), with the daemon's node flags. The ten pods are created at
// once (`ctr run -d` ×10 concurrently): all must reach RUNNING.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { busyboxArchive, BUSYBOX_IMAGE } from '../__test__/containerd/busybox-image.js';
import {
  startContainerd,
  type PrivateContainerd,
} from '../__test__/containerd/containerd-harness.js';
import { removePods, runPod, shimProcesses } from '../__test__/containerd/daemon-pods.js';
import { repoRoot } from '../__test__/cli/cli-harness.js';
import { guestBuilt, guestConfig, tasks, until } from '../__test__/shim/shim-harness.js';
import { DAEMON_NODE_FLAGS } from '../ts/shim/daemon-flags.js';
import { lowerIsBetter, type Metrics } from './metric.js';

const RUNC = 'io.containerd.runc.v2';
const PODS = 10;
const ACCEL = process.env.KATA_TS_QEMU_ACCEL ?? 'tcg';
/** Small guests: ten boot under TCG on two cores. */
const GUEST_MIB = 256;

/** PSS of a process in MiB (0 when it is gone). */
export function pssMiB(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A shim dir whose `containerd-shim-kata-ts-v2` runs the shipped bin (dist/) with `env`. */
function shippedShim(dir: string, env: Record<string, string>): void {
  const exports = Object.entries(env)
    .map(([k, v]) => `export ${k}='${v}'\n`)
    .join('');
  const bin = path.join(repoRoot, 'bin/containerd-shim-kata-ts-v2.js');
  const file = path.join(dir, 'containerd-shim-kata-ts-v2');
  writeFileSync(file, `#!/bin/sh\n${exports}exec ${process.execPath} ${bin} "$@"\n`);
  chmodSync(file, 0o755);
}

async function runcPerPod(): Promise<number> {
  const c = await startContainerd();
  try {
    await c.ctr('images', 'import', busyboxArchive());
    await Promise.all(
      Array.from({ length: PODS }, (_, k) =>
        c.ctr('run', '-d', '--null-io', '--runtime', RUNC, BUSYBOX_IMAGE, `r${k}`, 'sleep', '1000'),
      ),
    );
    const shims = c.shimPids();
    if (shims.length !== PODS) throw new Error(`expected ${PODS} runc shims, got ${shims.length}`);
    await sleep(3_000);
    return sum(shims.map(pssMiB)) / PODS;
  } finally {
    await c.stop();
  }
}

/** kata-ts front + daemon PSS, once the pods are idle. */
async function oursPss(
  c: PrivateContainerd,
): Promise<{ total: number; front: number; daemon: number }> {
  await sleep(5_000);
  const { front, daemon } = shimProcesses(c);
  if (front.length !== 1 || daemon.length !== 1)
    throw new Error(`expected one front and one daemon, got ${front.length} and ${daemon.length}`);
  const f = pssMiB(front[0]!);
  const d = pssMiB(daemon[0]!);
  return { total: f + d, front: f, daemon: d };
}

export async function run(): Promise<Metrics> {
  if (!guestBuilt) throw new Error('build/guest is missing: run `make guest`');
  const runc = await runcPerPod();
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-density-'));
  const config = guestConfig(dir);
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(/^default_memory = .*$/m, `default_memory = ${GUEST_MIB}`),
  );
  shippedShim(dir, { KATA_TS_CONFIG: config, KATA_TS_QEMU_ACCEL: ACCEL });
  const c = await startContainerd({ shimDirs: [dir] });
  try {
    await c.ctr('images', 'import', busyboxArchive());
    await runPod(c, 'one');
    const one = await oursPss(c);
    await removePods(c, ['one']);
    const ids = Array.from({ length: PODS }, (_, k) => `p${k}`);
    const t0 = performance.now();
    await Promise.all(ids.map((id) => runPod(c, id)));
    await until(
      'all pods running',
      async () => {
        const listed = await tasks(c);
        return ids.every((id) => listed.get(id) === 'RUNNING');
      },
      300_000,
    );
    const allRunningS = (performance.now() - t0) / 1000;
    const ten = await oursPss(c);
    const load = loadavg()[0]!.toFixed(1);
    const note = (pods: number, m: typeof one) =>
      `PSS of kata-ts host processes / ${pods} idle pod(s): front ${m.front.toFixed(1)} MiB + node daemon ${m.daemon.toFixed(1)} MiB (dist JS, ${DAEMON_NODE_FLAGS.join(' ')}); QEMU and virtiofsd not counted (the VM); vs containerd-shim-runc-v2 PSS per pod, mean of ${PODS} (${runc.toFixed(2)} MiB); accel=${ACCEL}, guest ${GUEST_MIB} MiB, load ${load}`;
    await removePods(c, ids);
    return {
      'shim.host_mib_per_pod.1': lowerIsBetter(one.total, runc, 'MiB', note(1, one)),
      'shim.host_mib_per_pod.10': lowerIsBetter(
        ten.total / PODS,
        runc,
        'MiB',
        `${note(PODS, ten)}; the ${PODS} pods were created at once and all reached RUNNING in ${allRunningS.toFixed(0)} s`,
      ),
    };
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
