// Shared by the daemon specs and the shim benchmark: pods through a private containerd on the
// host-wide kata-ts shim (front + daemon), and what a test must find gone afterwards.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { BUSYBOX_IMAGE } from './busybox-image.js';
import { alive, childrenOf, type PrivateContainerd } from './containerd-harness.js';
import { hierarchies } from '../harness/cgroup-subtree.js';
import { RUNTIME, tasks, until } from '../shim/shim-harness.js';

/** The command line of `pid` as words ('' when gone). */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** The front (`kata-ts-shim-front`) among containerd's shims, and the node daemon under it. */
export function shimProcesses(c: PrivateContainerd): { front: number[]; daemon: number[] } {
  const front = c
    .shimPids()
    .filter((p) => cmdline(p)[0]?.endsWith('kata-ts-shim-front') && alive(p));
  const daemon = front.flatMap((f) =>
    childrenOf(f).filter((p) => cmdline(p).includes('daemon') && alive(p)),
  );
  return { front, daemon };
}

/** The pid namespace of `pid` ('' when gone). */
function pidNamespace(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return '';
  }
}

/** QEMU and virtiofsd processes in this containerd's pid namespace. */
export function vmProcesses(c: PrivateContainerd): number[] {
  const ns = pidNamespace(c.holderPid);
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => {
      const program = cmdline(pid)[0] ?? '';
      return /qemu|virtiofsd/.test(program) && pidNamespace(pid) === ns && alive(pid);
    });
}

/** What of the sandboxes is still there: VM processes, mounts, /run/kata-ts entries, cgroups. */
export async function leftovers(c: PrivateContainerd): Promise<string[]> {
  const left = vmProcesses(c).map((p) => `process ${p} ${cmdline(p)[0]}`);
  const { stdout } = await c.inside(
    'sh',
    '-c',
    "awk '$5 ~ /rootfs|kata/' /proc/self/mountinfo; ls /run/kata-ts 2>/dev/null || true",
  );
  left.push(...stdout.trim().split('\n').filter(Boolean));
  for (const h of hierarchies()) {
    try {
      for (const d of readdirSync(`${h}/${c.namespace}`, { withFileTypes: true }))
        if (d.isDirectory()) left.push(`cgroup ${h}/${c.namespace}/${d.name}`);
    } catch {
      // no subtree
    }
  }
  return left;
}

/** `ctr run -d --null-io` of a long-running busybox task. */
export function runPod(c: PrivateContainerd, id: string): Promise<unknown> {
  return c.ctr(
    'run',
    '-d',
    '--null-io',
    '--runtime',
    RUNTIME,
    BUSYBOX_IMAGE,
    id,
    'sleep',
    '100000',
  );
}

/** Kills, deletes and removes the tasks and containers; waits for the shim to go. */
export async function removePods(c: PrivateContainerd, ids: readonly string[]): Promise<void> {
  await Promise.all(
    ids.map(async (id) => {
      await c.ctr('task', 'kill', '--signal', 'SIGKILL', id).catch(() => undefined);
      await until(
        'the task to stop',
        async () => (await tasks(c)).get(id) !== 'RUNNING',
        60_000,
      ).catch(() => undefined);
      await c.ctr('task', 'delete', id).catch(() => undefined);
      await c.ctr('containers', 'delete', id).catch(() => undefined);
    }),
  );
  await until('the shim to exit', () => c.shimPids().every((p) => !alive(p)), 30_000).catch(
    () => undefined,
  );
}

/** The host-wide shim socket of this containerd (in its private /run), seen from this process. */
export function shimSocketOnHost(c: PrivateContainerd): string {
  return path.join(c.dir, 'run/kata-ts/shim.sock');
}
