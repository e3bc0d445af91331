// The throwaway VMM user: `kata-<random hex>` made with useradd (retrying on a name collision),
// its runtime dir /run/user/<uid> (0700, owned by it), and the kvm group from /dev/kvm. Any
// failure after the user exists removes user and dir again; teardown is idempotent.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { err, ok, type Result } from 'neverthrow';
import { type HostPath } from '../paths.js';
import type { RootlessError } from './errors.js';
import { findSbinTool } from './executable.js';
import { vmmUserRuntimeDir } from '../plan/rootless-dirs.js';

export interface RootlessUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Group of /dev/kvm: the launched VMM's only supplementary group. */
  readonly kvmGid: number;
  readonly runtimeDir: HostPath;
}

export interface CreateUserOptions {
  /** Parent of the runtime dir; default /run/user. */
  readonly runtimeRoot?: string;
  readonly kvmDevice?: string;
  /** Name attempts before giving up; default 5. */
  readonly attempts?: number;
  /** Random suffix source; default 8 hex digits. */
  readonly randomSuffix?: () => string;
  /** Effective uid of kata-ts; default `process.geteuid()`. */
  readonly euid?: number;
}

/** useradd's exit status for "username already in use". */
const USERADD_NAME_IN_USE = 9;
/** useradd/userdel exit status when /etc/passwd is locked by a concurrent user tool. */
const PASSWD_LOCKED = 10;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** userdel's exit status while a (just killed, not yet reaped) process still runs as the user. */
const USERDEL_USER_BUSY = 8;

/** Runs a shadow tool, retrying for a few seconds on the transient `retryOn` statuses. */
function run(
  tool: string,
  args: readonly string[],
  retryOn: readonly number[] = [PASSWD_LOCKED],
): { status: number | null; stderr: string } {
  for (let i = 0; ; i++) {
    const r = runOnce(tool, args);
    if (r.status === null || !retryOn.includes(r.status) || i >= 50) return r;
    sleepMs(100);
  }
}

function runOnce(tool: string, args: readonly string[]): { status: number | null; stderr: string } {
  try {
    execFileSync(tool, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { status: 0, stderr: '' };
  } catch (e) {
    const x = e as { status?: number | null; stderr?: Buffer; message?: string };
    return { status: x.status ?? null, stderr: x.stderr?.toString().trim() || (x.message ?? '') };
  }
}

function passwdEntry(name: string): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  const f = line?.split(':');
  return f && f.length >= 4 ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}

/** True when a user of that exact name exists in /etc/passwd. */
export function userExists(name: string): boolean {
  return passwdEntry(name) !== undefined;
}

function requireRoot(euid: number): Result<true, RootlessError> {
  return euid === 0
    ? ok(true)
    : err({
        kind: 'rootless-not-root',
        euid,
        message: `rootless VMM requested but kata-ts runs as uid ${euid}, not root: it cannot create the VMM user`,
      });
}

function addUser(useradd: string, options: CreateUserOptions): Result<string, RootlessError> {
  const attempts = options.attempts ?? 5;
  const suffix = options.randomSuffix ?? (() => randomBytes(4).toString('hex'));
  let last: RootlessError | undefined;
  for (let i = 0; i < attempts; i++) {
    const name = `kata-${suffix()}`;
    const r = run(useradd, ['-M', '-s', '/sbin/nologin', '-c', 'kata-ts temporary VMM user', name]);
    if (r.status === 0) return ok(name);
    last = {
      kind: 'rootless-useradd',
      name,
      status: r.status,
      message: `useradd ${name} failed (status ${r.status}): ${r.stderr}`,
    };
    if (r.status !== USERADD_NAME_IN_USE) return err(last);
  }
  return err(
    last ?? {
      kind: 'rootless-useradd',
      name: '',
      status: null,
      message: 'useradd: no attempts made',
    },
  );
}

function makeRuntimeDir(dir: HostPath, uid: number, gid: number): Result<true, RootlessError> {
  if (existsSync(dir))
    return err({
      kind: 'rootless-runtime-dir',
      path: dir,
      message: `runtime dir ${dir} already exists`,
    });
  try {
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, uid, gid);
    return ok(true);
  } catch (e) {
    return err({
      kind: 'rootless-runtime-dir',
      path: dir,
      message: `creating runtime dir ${dir}: ${(e as Error).message}`,
    });
  }
}

/** Removes the user (`userdel -r`) and its runtime dir; fine to call again or on a half-made user. */
export function teardownRootlessUser(user: {
  readonly name: string;
  readonly runtimeDir?: string;
}): Result<true, RootlessError> {
  if (user.runtimeDir !== undefined) rmSync(user.runtimeDir, { recursive: true, force: true });
  if (!userExists(user.name)) return ok(true);
  return findSbinTool('userdel').andThen((userdel) => {
    const r = run(userdel, ['-r', user.name], [PASSWD_LOCKED, USERDEL_USER_BUSY]);
    // userdel -r exits 12 when the (never created) home is missing; the user is gone all the same.
    return userExists(user.name)
      ? err({
          kind: 'rootless-userdel',
          name: user.name,
          status: r.status,
          message: `userdel -r ${user.name} failed (status ${r.status}): ${r.stderr}`,
        } as const)
      : ok(true as const);
  });
}

/** Creates the VMM user and its runtime dir; on any failure after useradd, removes both. */
export function createRootlessUser(
  options: CreateUserOptions = {},
): Result<RootlessUser, RootlessError> {
  return requireRoot(options.euid ?? process.geteuid?.() ?? -1)
    .andThen(() => findSbinTool('useradd'))
    .andThen((useradd) => addUser(useradd, options))
    .andThen((name) => {
      let runtimeDir: string | undefined;
      const built = (() => {
        const entry = passwdEntry(name);
        if (!entry)
          return err<RootlessUser, RootlessError>({
            kind: 'rootless-lookup',
            name,
            message: `user ${name} not in /etc/passwd after useradd`,
          });
        const device = options.kvmDevice ?? '/dev/kvm';
        let kvmGid: number;
        try {
          kvmGid = statSync(device).gid;
        } catch (e) {
          return err<RootlessUser, RootlessError>({
            kind: 'rootless-kvm',
            device,
            message: `stat ${device}: ${(e as Error).message}`,
          });
        }
        return vmmUserRuntimeDir(entry.uid, options.runtimeRoot).andThen((dir) =>
          makeRuntimeDir(dir, entry.uid, entry.gid).map((): RootlessUser => {
            runtimeDir = dir;
            return { name, uid: entry.uid, gid: entry.gid, kvmGid, runtimeDir: dir };
          }),
        );
      })();
      if (built.isErr()) {
        // Setup guard: the user exists, so undo it (and the dir, if made) before reporting.
        teardownRootlessUser(runtimeDir === undefined ? { name } : { name, runtimeDir });
      }
      return built;
    });
}
