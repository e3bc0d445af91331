// Processes recorded in sandbox state: a pid is only trusted together with its /proc starttime,
// so cleanup never signals a process that merely reused a recorded pid. Processes whose pid was
// never recorded (a crash between spawn and the state write) are found by an argv word unique to
// the sandbox (its QMP or virtiofsd socket path), never by program name.
import { readdirSync, readFileSync } from 'node:fs';
import type { ProcessRef } from './state-schema.js';

/** Field 22 (starttime) of /proc/<pid>/stat; null when the process is gone. */
export function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** The ref of a live process (ours or a child we spawned). */
export function processRef(pid: number): ProcessRef | null {
  const startTime = startTimeOf(pid);
  return startTime === null ? null : { pid, startTime };
}

/** True while the recorded process (same pid and starttime) exists and is not a zombie. */
export function isAlive(ref: ProcessRef): boolean {
  if (startTimeOf(ref.pid) !== ref.startTime) return false;
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${ref.pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Live processes whose argv contains a word that includes `needle`. */
export function processesWithArg(needle: string): ProcessRef[] {
  const found: ProcessRef[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv.some((a) => a.includes(needle))) continue;
    const ref = processRef(pid);
    if (ref) found.push(ref);
  }
  return found;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGKILLs the recorded process if it is still the same one, and waits (≤ `timeoutMs`) until it
 * is gone or a zombie (a zombie holds no resources; its parent reaps it). True when it is gone.
 */
export async function killRecorded(ref: ProcessRef, timeoutMs = 5_000): Promise<boolean> {
  if (!isAlive(ref)) return true;
  try {
    process.kill(ref.pid, 'SIGKILL');
  } catch {
    return !isAlive(ref);
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(ref)) return true;
    await sleep(20);
  }
  return !isAlive(ref);
}
