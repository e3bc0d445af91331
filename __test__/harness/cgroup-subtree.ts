// Test cgroup subtrees: a unique `kata-ts-test-<random>` directory in every host hierarchy,
// removed depth-first (processes moved to the hierarchy root first) in teardown.
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** A fresh subtree name (not created yet). */
export function uniqueSubtree(): string {
  return `kata-ts-test-${randomBytes(5).toString('hex')}`;
}

/** Every hierarchy mount below /sys/fs/cgroup (v1 controllers, name=systemd, unified). */
export function hierarchies(): string[] {
  return readdirSync(CGROUP_ROOT)
    .map((d) => join(CGROUP_ROOT, d))
    .filter((d) => existsSync(join(d, 'cgroup.procs')));
}

export function readIds(file: string): number[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

function removeTree(dir: string, rootProcs: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const child = join(dir, entry);
    if (statSync(child).isDirectory()) removeTree(child, rootProcs);
  }
  for (let attempt = 0; ; attempt++) {
    try {
      for (const pid of readIds(join(dir, 'cgroup.procs'))) {
        try {
          writeFileSync(rootProcs, String(pid));
        } catch {
          // exited meanwhile
        }
      }
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt > 200) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** Removes `name` from every hierarchy (depth-first); missing is fine. */
export function removeSubtree(name: string): void {
  const failures: string[] = [];
  for (const h of hierarchies()) {
    try {
      removeTree(join(h, name), join(h, 'cgroup.procs'));
    } catch (e) {
      failures.push(`${h}/${name}: ${(e as Error).message}`);
    }
  }
  if (failures.length > 0) throw new Error(`could not remove test cgroups: ${failures.join('; ')}`);
}
