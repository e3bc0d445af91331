// Starting a process as the VMM user: setgroups([kvm gid]) → setgid → setuid in the child (the
// `rootless` crate), and a setup guard that removes the user when the start fails.
import { type Result } from 'neverthrow';
import { call } from '../native.js';
import type { PidLauncher } from '../qemu/vm.js';
import type { RootlessError } from './errors.js';
import {
  createRootlessUser,
  teardownRootlessUser,
  type CreateUserOptions,
  type RootlessUser,
} from './user.js';

export interface RootlessCommand {
  readonly path: string;
  readonly args: readonly string[];
  readonly stdout?: string;
  readonly stderr?: string;
}

/**
 * The launched VMM's supplementary groups: exactly the group of /dev/kvm, as the reference does
 * (`setgroups([kvm gid])`), whatever it is. Where /dev/kvm is root:root (gid 0, as on these
 * hosts) that hands the VMM root's group: give /dev/kvm a kvm group on such hosts (README).
 */
export function vmmGroups(user: Pick<RootlessUser, 'kvmGid'>): number[] {
  return [user.kvmGid];
}

/** Launches `cmd` as `user` with exactly `vmmGroups(user)`; Ok(pid) once it has exec'd. */
export function launchAsRootlessUser(
  user: RootlessUser,
  cmd: RootlessCommand,
): Result<number, RootlessError> {
  return call((n) =>
    n.spawnAsUser({
      path: cmd.path,
      args: [...cmd.args],
      uid: user.uid,
      gid: user.gid,
      groups: vmmGroups(user),
      ...(cmd.stdout !== undefined ? { stdout: cmd.stdout } : {}),
      ...(cmd.stderr !== undefined ? { stderr: cmd.stderr } : {}),
    }),
  );
}

/** How a launched process ended, or `running`; undefined for a pid not launched here. */
export function launchedExit(
  pid: number,
): { running: boolean; code?: number | null; signal?: number | null } | undefined {
  return call((n) => n.spawnedExit(pid)).unwrapOr(null) ?? undefined;
}

/**
 * Creates the VMM user and runs `start` with it. Armed until `start` succeeds: if it fails, the
 * user and its runtime dir are removed before the error is returned.
 */
export function startRootless<T>(
  start: (user: RootlessUser) => Result<T, RootlessError>,
  options: CreateUserOptions = {},
): Result<{ user: RootlessUser; value: T }, RootlessError> {
  return createRootlessUser(options).andThen((user) => {
    const started = start(user);
    if (started.isErr()) teardownRootlessUser(user);
    return started.map((value) => ({ user, value }));
  });
}

export { teardownRootlessUser };

/**
 * A `PidLauncher` (ts/qemu/vm.ts) starting processes as `user` with exactly the kvm group; the
 * exit is read from the native reaper (launchedExit).
 */
export function rootlessLauncher(user: RootlessUser): PidLauncher {
  return ({ binary, args, logPath }) =>
    launchAsRootlessUser(user, { path: binary, args, stdout: logPath, stderr: logPath }).map(
      (pid) => ({
        pid,
        exit: () => {
          const e = launchedExit(pid);
          // Unknown to the reaper (cannot happen for a pid it returned): treat as gone.
          if (e === undefined) return { code: null, signal: null };
          return e.running ? null : { code: e.code ?? null, signal: e.signal ?? null };
        },
      }),
    );
}
