// A private systemd 252 as PID 1 of its own namespaces, for SystemdManager tests and benchmarks
// (peers.md "systemd"). private-systemd-init.sh does the namespace-side setup; this file starts
// it, waits until it is ready, offers ways to run processes inside, and tears everything down:
// SIGKILL to its PID 1 (by the pid we started), then the host cgroup subtree and the temp dir.
// systemd never sees the host cgroup root (cgroup namespace + private cgroup mounts) nor the
// host /proc/sys (read-only bind).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { hierarchies, removeSubtree, uniqueSubtree } from './cgroup-subtree.js';

const run = promisify(execFile);
const INIT = fileURLToPath(new URL('./private-systemd-init.sh', import.meta.url));

const UNITS: Record<string, string> = {
  'default.target':
    '[Unit]\nDescription=kata-ts private systemd\nDefaultDependencies=no\nWants=dbus.socket dbus.service\n',
  'dbus.socket':
    '[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n',
  'dbus.service':
    '[Unit]\nDefaultDependencies=no\nRequires=dbus.socket\nAfter=dbus.socket\n[Service]\n' +
    'ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation\n',
};

export interface InsideProcess {
  /** Host pid of the process running inside the namespaces. */
  readonly pid: number;
  /** Its pid inside systemd's pid namespace. */
  readonly nsPid: number;
  kill(): void;
}

export interface PrivateSystemd {
  /** Host pid of the namespace's PID 1 (systemd). */
  readonly pid1: number;
  /** D-Bus address of its system bus, reachable from the host. */
  readonly busAddress: string;
  /** Host cgroup subtree (in every hierarchy) that is systemd's cgroup root. */
  readonly subtree: string;
  /** Runs a command inside all of its namespaces (`nsenter -a`). */
  exec(args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Starts a long-running process inside, placed in systemd's root cgroup. */
  spawnInside(args: string[]): Promise<InsideProcess>;
  /** Kills systemd and everything inside, removes the cgroup subtree and the temp dir. */
  stop(): Promise<void>;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function nsPidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('NSpid:'));
  const ids = (line ?? '').split(/\s+/).slice(1).filter(Boolean).map(Number);
  return ids[ids.length - 1] ?? pid;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Starts a private systemd and waits until `systemctl is-system-running` says running/degraded.
 * `hybrid` gives it the host's layout (v1 controllers); `unified` gives it only the cgroup2
 * hierarchy, so it runs in unified (v2) mode — on this host without cpu/memory controllers.
 */
export async function startPrivateSystemd(
  layout: 'hybrid' | 'unified' = 'hybrid',
): Promise<PrivateSystemd> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-systemd-'));
  const runDir = join(dir, 'run');
  const unitsDir = join(dir, 'units');
  mkdirSync(runDir);
  mkdirSync(unitsDir);
  for (const [name, text] of Object.entries(UNITS)) writeFileSync(join(unitsDir, name), text);
  const subtree = uniqueSubtree();
  const log = join(dir, 'systemd.log');
  // Watchdog: the shell holds our pipe on its stdin; if this process dies without stop(), the
  // pipe closes, the shell SIGKILLs unshare (which ignores SIGTERM), and --kill-child takes the
  // namespace's PID 1 (and so the whole namespace) with it.
  const child: ChildProcess = spawn(
    'sh',
    [
      '-c',
      'unshare --kill-child=SIGKILL "$@" & u=$!; read -r _; kill -KILL $u 2>/dev/null; wait',
      'sh',
      '--pid',
      '--fork',
      '--mount',
      '--mount-proc',
      '--uts',
      '--ipc',
      '--net',
      '--propagation',
      'private',
      INIT,
      subtree,
      runDir,
      unitsDir,
      layout,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  let pid1 = 0;

  const stop = async () => {
    if (pid1 > 0) {
      try {
        process.kill(pid1, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    child.stdin?.end();
    if (child.exitCode === null && child.signalCode === null) {
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
    }
    writeFileSync(log, output.join(''));
    // Wait until the namespace's processes are gone before removing their cgroups.
    await waitFor('the private systemd to exit', 5000, () =>
      pid1 === 0 || !existsSync(`/proc/${pid1}`) ? true : undefined,
    );
    removeSubtree(subtree);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    pid1 = await waitFor('the namespace PID 1', 5000, () => {
      const unshare = child.pid ? childrenOf(child.pid)[0] : undefined;
      return unshare ? childrenOf(unshare)[0] : undefined;
    });
    const exec = async (args: string[]) => {
      const { stdout, stderr } = await run('nsenter', ['-t', String(pid1), '-a', '--', ...args], {
        encoding: 'utf8',
      });
      return { stdout, stderr };
    };
    await waitFor('systemctl is-system-running', 15_000, async () => {
      try {
        const { stdout } = await exec(['systemctl', 'is-system-running']);
        return /running|degraded/.test(stdout) ? true : undefined;
      } catch (e) {
        const out = String((e as { stdout?: string }).stdout ?? '');
        return /degraded/.test(out) ? true : undefined;
      }
    });
    const socket = join(runDir, 'dbus', 'system_bus_socket');
    await waitFor('the system bus socket', 5000, () => (existsSync(socket) ? true : undefined));

    const spawnInside = async (args: string[]): Promise<InsideProcess> => {
      // The shell joins systemd's root cgroup on the host side (outside its cgroup namespace
      // systemd could not move it), then becomes nsenter, whose child runs the command.
      const join_ = hierarchies()
        .map((h) => `echo $$ > ${h}/${subtree}/cgroup.procs`)
        .join(' && ');
      const outer = spawn(
        'sh',
        ['-c', `${join_} && exec nsenter -t ${pid1} -a -- "$@"`, 'sh', ...args],
        { stdio: 'ignore' },
      );
      const pid = await waitFor('the process inside', 5000, () =>
        outer.pid ? childrenOf(outer.pid)[0] : undefined,
      );
      return {
        pid,
        nsPid: nsPidOf(pid),
        kill: () => {
          for (const p of [pid, outer.pid]) {
            try {
              if (p) process.kill(p, 'SIGKILL');
            } catch {
              // gone
            }
          }
        },
      };
    };
    return { pid1, busAddress: `unix:path=${socket}`, subtree, exec, spawnInside, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw new Error(
      `private systemd did not start: ${(e as Error).message}\n${output.join('').slice(-2000)}`,
    );
  }
}
