// Starting a process as the VMM user: setgroups([kvm gid]) → setgid → setuid in the child (the
// `rootless` crate), and a setup guard that removes the user when the start fails.
import { type Result } from 'neverthrow';
import { call } from '../native.js';
import type { RootlessError } from './errors.js';
import { createRootlessUser, teardownRootlessUser, type CreateUserOptions, type RootlessUser } from './user.js';

export interface RootlessCommand {
  readonly path: string;
  readonly args: readonly string[];
  readonly stdout?: string;
  readonly stderr?: string;
}

/** Launches `cmd` as `user` with exactly the kvm group; Ok(pid) once it has exec'd. */
export function launchAsRootlessUser(user: RootlessUser, cmd: RootlessCommand): Result<number, RootlessError> {
  return call((n) =>
    n.spawnAsUser({
      path: cmd.path,
      args: [...cmd.args],
      uid: user.uid,
      gid: user.gid,
      groups: [user.kvmGid],
      ...(cmd.stdout !== undefined ? { stdout: cmd.stdout } : {}),
      ...(cmd.stderr !== undefined ? { stderr: cmd.stderr } : {}),
    }),
  );
}

/** How a launched process ended, or `running`; undefined for a pid not launched here. */
export function launchedExit(pid: number): { running: boolean; code?: number | null; signal?: number | null } | undefined {
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
