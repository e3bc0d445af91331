// Real processes for the cgroup tests, killed by their pid in teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { ExecutionContext } from 'ava';

/** Spawns `sleep 600`; killed when the test ends. */
export function sleeper(t: ExecutionContext): ChildProcess & { pid: number } {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => kill(child.pid));
  if (child.pid === undefined) throw new Error('sleep did not start');
  return child as ChildProcess & { pid: number };
}

export function kill(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function threadsOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * A real multi-threaded process standing in for a VMM: node with two worker threads (the
 * "vCPUs"). Resolves once the workers run; returns its pid and the workers' thread ids.
 */
export async function multiThreaded(
  t: ExecutionContext,
): Promise<{ pid: number; workerTids: number[] }> {
  const script = `
    const { Worker } = require('node:worker_threads');
    let up = 0;
    for (let i = 0; i < 2; i++) {
      const w = new Worker("require('node:worker_threads').parentPort.postMessage(0); setInterval(() => {}, 1000)", { eval: true });
      w.once('message', () => { if (++up === 2) process.stdout.write('ready\\n'); });
    }
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => kill(child.pid));
  const pid = child.pid!;
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`node exited early (${code})`)));
  });
  // All of node's threads are named "node"; the workers start last, so they hold the two
  // highest thread ids once both reported in.
  return {
    pid,
    workerTids: threadsOf(pid)
      .filter((x) => x !== pid)
      .slice(-2),
  };
}
