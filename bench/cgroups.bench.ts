// cgroups.fs_cycle: one sandbox-cgroup cycle on cgroup v1 cpu + memory through the TypeScript
// API (CgroupManager via ts/native.ts): create, set cpu quota/period and memory limit, add a
// process, move it back to the parent, delete. Against bench/c/cgroup_cycle.c doing the same
// syscalls, compiled with gcc and run in the same process tree, rounds interleaved.
// cgroups.systemd_scope: SystemdManager create (StartTransientUnit, waits until active) +
// delete (StopUnit, waits until gone) against `systemd-run --scope true`, both on the same private
// systemd (__test__/harness/private-systemd.ts). The peer runs from one shell entered into the
// namespaces once (nsenter is not paid per cycle, as ours pays no namespace entry either); each
// cycle is the systemd-run process itself, as a user of that tool would run it.
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
  return call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v1', root: ROOT, path, controllers: CONTROLLERS }),
  )._unsafeUnwrap();
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
  execFileSync('gcc', [
    '-O2',
    '-o',
    out,
    fileURLToPath(new URL('./c/cgroup_cycle.c', import.meta.url)),
  ]);
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
    const floorRound = () =>
      Number(
        execFileSync(floor, [ROOT, sub, String(child.pid), '400'], { encoding: 'utf8' }).trim(),
      );
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

/** One shell inside the private systemd's namespaces (entered once), running commands in turn. */
function insideShell(pid1: number): {
  run: (cmd: string) => Promise<void>;
  close: () => Promise<void>;
} {
  const sh = spawn('nsenter', ['-t', String(pid1), '-a', '--', 'sh'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const exited = new Promise<void>((r) => sh.once('exit', () => r()));
  let out = '';
  let waiting: { tag: number; resolve: () => void; reject: (e: Error) => void } | null = null;
  let count = 0;
  sh.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (waiting === null) return;
    const { tag, resolve, reject } = waiting;
    if (out.includes(`ok-${tag}\n`)) resolve();
    else if (out.includes(`fail-${tag}\n`))
      reject(new Error(`inside the namespaces: command ${tag} failed`));
    else return;
    waiting = null;
    out = '';
  });
  return {
    run: (cmd) =>
      new Promise<void>((resolve, reject) => {
        const tag = ++count;
        waiting = { tag, resolve, reject };
        sh.stdin.write(`${cmd} && echo ok-${tag} || echo fail-${tag}\n`);
      }),
    close: async () => {
      sh.stdin.end();
      if (sh.exitCode === null && sh.pid !== undefined) process.kill(sh.pid, 'SIGKILL');
      await exited;
    },
  };
}

async function systemdScope(): Promise<Metrics> {
  const sd = await startPrivateSystemd();
  try {
    const n = 15;
    const procs = await Promise.all(
      Array.from({ length: n + 2 }, () => sd.spawnInside(['sleep', '600'])),
    );
    const cycle = async (i: number) => {
      const m = call((a) =>
        a.CgroupManager.systemd({
          version: 'v1',
          busAddress: sd.busAddress,
          slice: 'kata-bench.slice',
          unit: `kata-bench-${i}.scope`,
          cgroupBase: sd.subtree,
          pidNamespace: true,
        }),
      )._unsafeUnwrap();
      await m.createAsync([procs[i]!.pid]);
      await m.deleteAsync();
    };
    await cycle(n); // warm-up: first connection and slice creation
    await cycle(n + 1);
    let start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await cycle(i);
    const ours = n / (Number(process.hrtime.bigint() - start) / 1e9);
    const shell = insideShell(sd.pid1);
    let peer: number;
    try {
      const scope = 'systemd-run --quiet --scope --slice=kata-bench.slice true';
      await shell.run(scope); // warm-up, as ours had
      start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await shell.run(scope);
      peer = n / (Number(process.hrtime.bigint() - start) / 1e9);
    } finally {
      await shell.close();
    }
    procs.forEach((p) => p.kill());
    return {
      'cgroups.systemd_scope': higherIsBetter(
        Number(ours.toFixed(1)),
        Number(peer.toFixed(1)),
        'scopes/s',
        `private systemd 252: SystemdManager create (StartTransientUnit, wait active) + delete (StopUnit, wait gone) vs systemd-run --scope true from a shell already inside the namespaces; ${n} each after a warm-up`,
      ),
    };
  } finally {
    await sd.stop();
  }
}

export async function run(): Promise<Metrics> {
  return { ...(await fsCycle()), ...(await systemdScope()) };
}
