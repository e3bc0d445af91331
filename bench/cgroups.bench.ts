// cgroups.fs_cycle: one sandbox-cgroup cycle on cgroup v1 cpu + memory through the TypeScript
// API (CgroupManager via ts/native.ts): create, set cpu quota/period and memory limit, add a
// process, move it back to the parent, delete. Against bench/c/cgroup_cycle.c doing the same
// syscalls, compiled with gcc and run in the same process tree, rounds interleaved.
// cgroups.systemd_scope: SystemdManager create (StartTransientUnit, waits until active) +
// delete (StopUnit, waits until gone) against `systemd-run --scope true` (entered with nsenter),
// both on the same private systemd (__test__/harness/private-systemd.ts).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { call, type NativeAddon } from '../ts/native.js';
import { removeSubtree, uniqueSubtree } from '../__test__/harness/cgroup-subtree.js';
import { startPrivateSystemd } from '../__test__/harness/private-systemd.js';
import { higherIsBetter, type Metrics } from './metric.js';

type Manager = InstanceType<NativeAddon['CgroupManager']>;
const ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['cpu', 'memory'];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function fsManager(path: string): Manager {
  return call((n) => n.CgroupManager.cgroupfs({ version: 'v1', root: ROOT, path, controllers: CONTROLLERS }))._unsafeUnwrap();
}

function tsRound(sub: string, pid: number, ms: number): number {
  const parent = fsManager(sub);
  const m = fsManager(`${sub}/cycle-ts`);
  const limits = { periodUs: 100_000, quotaUs: 50_000, memoryBytes: 256 * 1024 * 1024 };
  let cycles = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    call(() => {
      m.create([]);
      m.setResources(limits);
      m.addProcess(pid);
      parent.addProcess(pid);
      m.delete();
    })._unsafeUnwrap();
    cycles++;
    now = process.hrtime.bigint();
  }
  return cycles / (Number(now - start) / 1e9);
}

function compileFloor(): string {
  const out = fileURLToPath(new URL('../build/cgroup_cycle', import.meta.url));
  mkdirSync(fileURLToPath(new URL('../build', import.meta.url)), { recursive: true });
  execFileSync('gcc', ['-O2', '-o', out, fileURLToPath(new URL('./c/cgroup_cycle.c', import.meta.url))]);
  return out;
}

async function fsCycle(): Promise<Metrics> {
  const sub = uniqueSubtree();
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    const floor = compileFloor();
    call(() => fsManager(sub).create([child.pid!]))._unsafeUnwrap();
    tsRound(sub, child.pid!, 150); // warm-up
    const ours: number[] = [];
    const peer: number[] = [];
    const floorRound = () => Number(execFileSync(floor, [ROOT, sub, String(child.pid), '400'], { encoding: 'utf8' }).trim());
    // Interleaved, alternating which goes first: the kernel's cgroup costs drift with load.
    for (let round = 0; round < 5; round++) {
      if (round % 2 === 0) {
        ours.push(tsRound(sub, child.pid!, 400));
        peer.push(floorRound());
      } else {
        peer.push(floorRound());
        ours.push(tsRound(sub, child.pid!, 400));
      }
    }
    return {
      'cgroups.fs_cycle': higherIsBetter(
        Math.round(median(ours)),
        Math.round(median(peer)),
        'cycles/s',
        'v1 cpu+memory: create, set quota/period+memory limit, add pid, move back, delete — TS CgroupManager vs C syscalls floor (median of 5 interleaved 0.4 s rounds)',
      ),
    };
  } finally {
    child.kill('SIGKILL');
    removeSubtree(sub);
  }
}

async function systemdScope(): Promise<Metrics> {
  const sd = await startPrivateSystemd();
  try {
    const n = 15;
    const procs = await Promise.all(Array.from({ length: n + 2 }, () => sd.spawnInside(['sleep', '600'])));
    const cycle = async (i: number) => {
      const m = call((a) =>
        a.CgroupManager.systemd({ version: 'v1', busAddress: sd.busAddress, slice: 'kata-bench.slice', unit: `kata-bench-${i}.scope`, cgroupBase: sd.subtree, pidNamespace: true }),
      )._unsafeUnwrap();
      await m.createAsync([procs[i]!.pid]);
      await m.deleteAsync();
    };
    await cycle(n); // warm-up: first connection and slice creation
    await cycle(n + 1);
    let start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await cycle(i);
    const ours = n / (Number(process.hrtime.bigint() - start) / 1e9);
    start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await sd.exec(['systemd-run', '--quiet', '--scope', '--slice=kata-bench.slice', 'true']);
    const peer = n / (Number(process.hrtime.bigint() - start) / 1e9);
    procs.forEach((p) => p.kill());
    return {
      'cgroups.systemd_scope': higherIsBetter(
        Number(ours.toFixed(1)),
        Number(peer.toFixed(1)),
        'scopes/s',
        `private systemd 252: SystemdManager create (StartTransientUnit, wait active) + delete (StopUnit, wait gone) vs nsenter + systemd-run --scope true; ${n} each`,
      ),
    };
  } finally {
    await sd.stop();
  }
}

export async function run(): Promise<Metrics> {
  return { ...(await fsCycle()), ...(await systemdScope()) };
}
