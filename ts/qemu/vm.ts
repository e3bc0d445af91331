// Starting and supervising one QEMU process (and its virtiofsd): stdout/stderr to a log file,
// QMP connected before the VM is handed out, exit detected and reported with the log's tail.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  fstatSync,
  openSync,
  rmSync,
} from 'node:fs';
import { constants } from 'node:os';
import { ResultAsync, errAsync, okAsync, type Result } from 'neverthrow';
import { readLogTail } from '../input/read-log-tail.js';
import { QmpClient, type QmpError } from './qmp-client.js';

/**
 * A log of ours, appended to (a relaunch in the same run dir keeps the earlier output). A planted
 * symlink at its name is refused (ELOOP), a planted FIFO does not block the open (O_NONBLOCK, no
 * effect on a regular file) and is refused by the fstat below.
 */
const LOG_FLAGS =
  fsConstants.O_WRONLY |
  fsConstants.O_CREAT |
  fsConstants.O_APPEND |
  fsConstants.O_NOFOLLOW |
  fsConstants.O_NONBLOCK |
  fsConstants.O_NOCTTY;

/** Opens `logPath` for appending; throws (a named error) on a link or a non-regular file. */
function openLog(logPath: string): number {
  let fd: number;
  try {
    fd = openSync(logPath, LOG_FLAGS, 0o640);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new Error(
      `log ${logPath}: ${code === 'ELOOP' ? 'is a symbolic link (not followed)' : code}`,
    );
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error(`log ${logPath}: not a regular file`);
  }
  return fd;
}

export type VmError =
  | { readonly kind: 'vm-spawn'; readonly binary: string; readonly message: string }
  | {
      readonly kind: 'vm-exited';
      readonly code: number | null;
      readonly signal: string | null;
      readonly log: string;
      readonly message: string;
    }
  | QmpError;

/** How a supervised process ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface VmSpawnOptions {
  /** QEMU binary, e.g. `/usr/bin/qemu-system-x86_64`. */
  readonly binary: string;
  readonly args: readonly string[];
  /** QEMU stdout and stderr go here (appended). */
  readonly logPath: string;
  readonly qmpSocket: string;
  /** Budget for QEMU to start and QMP to negotiate (default 15 s; a loaded machine is slow). */
  readonly startTimeoutMs?: number;
  /** Called once when QEMU exits, whatever the cause. */
  readonly onExit?: (exit: ProcessExit, logTail: string) => void;
  /** How to start the process; default a node child of this process. */
  readonly launcher?: PidLauncher;
}

/** A process started by a PidLauncher: its pid, and how it ended (null while it runs). */
export interface LaunchedPid {
  readonly pid: number;
  readonly exit: () => { readonly code: number | null; readonly signal: number | null } | null;
}

/**
 * Starts `binary` some other way than a node child (e.g. as the rootless VMM user, ts/rootless):
 * Ok once it has exec'd. Its stdout and stderr are appended to `logPath`.
 */
export type PidLauncher = (cmd: {
  readonly binary: string;
  readonly args: readonly string[];
  readonly logPath: string;
}) => Result<LaunchedPid, { readonly message: string }>;

export interface VirtiofsdOptions {
  readonly binary?: string;
  readonly socketPath: string;
  readonly sharedDir: string;
  readonly logPath: string;
  readonly extraArgs?: readonly string[];
  /** How to start virtiofsd; default a node child of this process. */
  readonly launcher?: PidLauncher;
}

/** The C virtiofsd that ships with QEMU 7.2. */
export const DEFAULT_VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

/** Last `bytes` of a log, for error messages (a planted link or FIFO is not read). */
export function logTail(logPath: string, bytes = 2000): string {
  return readLogTail(logPath, bytes);
}

/** A started process with its exit as a promise; killed only by its own pid. */
interface Supervised {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  readonly exit: ProcessExit | null;
  /** Why the start failed (ENOENT, EACCES, a privilege-drop step), if it did. */
  readonly spawnError: string | null;
  /** SIGKILL by pid unless already gone; resolves when the process is reaped. */
  kill(): Promise<ProcessExit>;
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // ESRCH: it exited between the check and the kill.
  }
}

/** A node child process. */
class ChildSupervised implements Supervised {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | null = null;
  spawnError: string | null = null;

  constructor(binary: string, args: readonly string[], logPath: string) {
    const fd = openLog(logPath);
    try {
      // Own session and process group: the VM is not signalled with its parent's group and
      // outlives it (a shim daemon restarted after a crash re-attaches, Vm.attach).
      this.child = spawn(binary, [...args], { stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
      this.child.once('error', (e) => {
        this.spawnError = e.message;
        this.#exit = { code: null, signal: null };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exit(): ProcessExit | null {
    return this.#exit;
  }

  async kill(): Promise<ProcessExit> {
    if (this.#exit === null && this.child.pid !== undefined) killPid(this.child.pid);
    return this.exited;
  }
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** How often a launched (non-child) process is polled for its exit. */
const EXIT_POLL_MS = 25;

/** A process started by a PidLauncher; its exit is polled (the launcher reaps it). */
class PidSupervised implements Supervised {
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | null = null;
  readonly spawnError: string | null;
  readonly pid: number | undefined;

  constructor(launcher: PidLauncher, binary: string, args: readonly string[], logPath: string) {
    const launched = launcher({ binary, args, logPath });
    if (launched.isErr()) {
      this.pid = undefined;
      this.spawnError = launched.error.message;
      this.#exit = { code: null, signal: null };
      this.exited = Promise.resolve(this.#exit);
      return;
    }
    const { pid, exit } = launched.value;
    this.pid = pid;
    this.spawnError = null;
    this.exited = new Promise((resolve) => {
      const timer = setInterval(() => {
        const e = exit();
        if (e === null) return;
        clearInterval(timer);
        this.#exit = {
          code: e.code,
          signal: e.signal === null ? null : (SIGNAL_NAMES.get(e.signal) ?? null),
        };
        resolve(this.#exit);
      }, EXIT_POLL_MS);
    });
  }

  get exit(): ProcessExit | null {
    return this.#exit;
  }

  async kill(): Promise<ProcessExit> {
    if (this.#exit === null && this.pid !== undefined) killPid(this.pid);
    return this.exited;
  }
}

/** A process another (now gone) process started: its exit is polled through `alive`. */
class AdoptedSupervised implements Supervised {
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | null = null;
  readonly spawnError = null;

  constructor(
    readonly pid: number,
    alive: () => boolean,
  ) {
    this.exited = new Promise((resolve) => {
      const timer = setInterval(() => {
        if (alive()) return;
        clearInterval(timer);
        // Not our child: its status went to whoever reaped it.
        this.#exit = { code: null, signal: null };
        resolve(this.#exit);
      }, EXIT_POLL_MS * 8);
    });
  }

  get exit(): ProcessExit | null {
    return this.#exit;
  }

  async kill(): Promise<ProcessExit> {
    if (this.#exit === null) killPid(this.pid);
    return this.exited;
  }
}

function supervise(
  binary: string,
  args: readonly string[],
  logPath: string,
  launcher?: PidLauncher,
): Supervised {
  return launcher === undefined
    ? new ChildSupervised(binary, args, logPath)
    : new PidSupervised(launcher, binary, args, logPath);
}

/** A running virtiofsd for one VM (it exits by itself when QEMU disconnects). */
export class Virtiofsd {
  readonly #proc: Supervised;
  readonly socketPath: string;

  private constructor(proc: Supervised, socketPath: string) {
    this.#proc = proc;
    this.socketPath = socketPath;
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  get exited(): Promise<ProcessExit> {
    return this.#proc.exited;
  }

  /** Starts virtiofsd and waits for its socket (QEMU connects to it at startup). */
  static start(o: VirtiofsdOptions, timeoutMs = 10_000): ResultAsync<Virtiofsd, VmError> {
    const binary = o.binary ?? DEFAULT_VIRTIOFSD;
    const args = [
      `--socket-path=${o.socketPath}`,
      '-o',
      `source=${o.sharedDir}`,
      '-o',
      'cache=auto',
      ...(o.extraArgs ?? []),
    ];
    const proc = supervise(binary, args, o.logPath, o.launcher);
    const wait = async (): Promise<Virtiofsd> => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (proc.exit !== null) break;
        if (existsSync(o.socketPath)) return new Virtiofsd(proc, o.socketPath);
        await new Promise((r) => setTimeout(r, 20));
      }
      const exit = proc.exit ?? (await proc.kill());
      const log = logTail(o.logPath);
      throw {
        kind: 'vm-exited',
        code: exit.code,
        signal: exit.signal,
        log,
        message: `virtiofsd did not create ${o.socketPath}: ${log || 'no output'}`,
      } satisfies VmError;
    };
    return ResultAsync.fromPromise(wait(), (e) => e as VmError);
  }

  kill(): Promise<ProcessExit> {
    return this.#proc.kill();
  }
}

/** A started QEMU with its QMP connection. */
export class Vm {
  readonly #proc: Supervised;
  readonly qmp: QmpClient;
  readonly logPath: string;
  readonly qmpSocket: string;
  /** ms from spawn until QMP negotiated. */
  readonly startMs: number;

  private constructor(proc: Supervised, qmp: QmpClient, o: VmSpawnOptions, startMs: number) {
    this.#proc = proc;
    this.qmp = qmp;
    this.logPath = o.logPath;
    this.qmpSocket = o.qmpSocket;
    this.startMs = startMs;
  }

  /** Spawns QEMU and connects QMP; an early exit is reported with QEMU's own error text. */
  static spawn(o: VmSpawnOptions): ResultAsync<Vm, VmError> {
    const started = performance.now();
    let proc: Supervised;
    try {
      proc = supervise(o.binary, o.args, o.logPath, o.launcher);
    } catch (e) {
      return errAsync({
        kind: 'vm-spawn',
        binary: o.binary,
        message: `cannot start ${o.binary}: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
    void proc.exited.then((exit) => o.onExit?.(exit, logTail(o.logPath)));
    const exitedEarly = async (): Promise<VmError> => {
      const exit = await proc.exited;
      const log = logTail(o.logPath);
      if (proc.spawnError !== null)
        return {
          kind: 'vm-spawn',
          binary: o.binary,
          message: `cannot start ${o.binary}: ${proc.spawnError}`,
        };
      const how = exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
      return {
        kind: 'vm-exited',
        code: exit.code,
        signal: exit.signal,
        log,
        message: `QEMU exited (${how}) during startup: ${log || 'no output'}`,
      };
    };
    return QmpClient.connect(o.qmpSocket, {
      timeoutMs: o.startTimeoutMs ?? 15_000,
      abandon: proc.exited,
    })
      .orElse((qmpErr) => {
        // QEMU closes the socket a moment before it exits: give the exit a chance to arrive so
        // the error is QEMU's own text. A VM without QMP is unusable, so one still running is killed.
        const settle = async (): Promise<VmError> => {
          const exitedSoon = await Promise.race([
            proc.exited.then(() => true),
            new Promise<boolean>((r) => setTimeout(() => r(false), 2_000).unref()),
          ]);
          if (exitedSoon) return exitedEarly();
          await proc.kill();
          return qmpErr;
        };
        return ResultAsync.fromSafePromise(settle()).andThen((e) =>
          errAsync<QmpClient, VmError>(e),
        );
      })
      .andThen((qmp) => okAsync(new Vm(proc, qmp, o, performance.now() - started)));
  }

  /**
   * Re-attaches to a QEMU started by an earlier process (a restarted shim daemon): `alive` says
   * whether the recorded process (pid and start time) still runs; QMP is connected again.
   */
  static attach(o: {
    readonly pid: number;
    readonly alive: () => boolean;
    readonly qmpSocket: string;
    readonly logPath: string;
    readonly onExit?: VmSpawnOptions['onExit'];
    readonly timeoutMs?: number;
  }): ResultAsync<Vm, VmError> {
    const started = performance.now();
    const proc = new AdoptedSupervised(o.pid, o.alive);
    void proc.exited.then((exit) => o.onExit?.(exit, logTail(o.logPath)));
    const spawnOptions = { binary: '', args: [], logPath: o.logPath, qmpSocket: o.qmpSocket };
    return QmpClient.connect(o.qmpSocket, {
      timeoutMs: o.timeoutMs ?? 15_000,
      abandon: proc.exited,
    }).map((qmp) => new Vm(proc, qmp, spawnOptions, performance.now() - started));
  }

  get pid(): number {
    return this.#proc.pid!;
  }

  /** Resolves when QEMU exits, with how. */
  get exited(): Promise<ProcessExit> {
    return this.#proc.exited;
  }

  get running(): boolean {
    return this.#proc.exit === null;
  }

  /** QMP `quit`, then wait up to `timeoutMs` for the exit; SIGKILL by pid if it does not come. */
  async quit(timeoutMs = 5_000): Promise<ProcessExit> {
    if (this.#proc.exit !== null) return this.#proc.exit;
    await this.qmp.execute('quit', undefined, { timeoutMs });
    const timer = new Promise<null>((r) => setTimeout(() => r(null), timeoutMs).unref());
    const exit = await Promise.race([this.#proc.exited, timer]);
    this.qmp.close();
    return exit ?? this.#proc.kill();
  }

  /** SIGKILL by pid and wait for the reap; safe to call twice. */
  async kill(): Promise<ProcessExit> {
    this.qmp.close();
    return this.#proc.kill();
  }

  /** Removes a socket path QEMU left behind (QEMU unlinks its server sockets on clean exit only). */
  static removeSocket(path: string): void {
    rmSync(path, { force: true });
  }
}
