// Fixed guest locations of volumes and rootfs (reference-runtime-rs.md §0; host dirs: host-dirs.ts), and the
// name generators that put per-container entries below them.
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';
import { guestConst, joinGuest, joinHost, type GuestPath, type HostPath } from '../paths.js';
import type { HostDirs } from './host-dirs.js';

/** Guest share dir: the virtio-fs mount point and the only place CopyFile may write. */
export const GUEST_SHARE_DIR = guestConst('/run/kata-containers/shared/containers');
/** The reference spells the share dir with a trailing slash in Storage.mount_point. */
export const GUEST_SHARE_DIR_STORAGE = '/run/kata-containers/shared/containers/';
export const PASSTHROUGH = 'passthrough';
/** Guest sandbox dir (no trailing slash since a9ec8ef21f). */
export const GUEST_SANDBOX_DIR = guestConst('/run/kata-containers/sandbox');
export const GUEST_SHM_DIR = guestConst('/run/kata-containers/sandbox/shm');
export const GUEST_EPHEMERAL_DIR = guestConst('/run/kata-containers/sandbox/ephemeral');
/** Guest-pull rootfs root: `/run/kata-containers/<cid>/rootfs`. */
export const GUEST_KATA_DIR = guestConst('/run/kata-containers');

/** A source of random hex: `bytes` random bytes as lowercase hex (2×bytes characters). */
export type RandomHex = (bytes: number) => string;

/** A deterministic RandomHex for tests and for plans without an injected source: 0…01, 0…02, … */
export function sequentialHex(): RandomHex {
  let n = 0;
  return (bytes) =>
    (++n)
      .toString(16)
      .padStart(bytes * 2, '0')
      .slice(-bytes * 2);
}

/** `basename(dest)`; `/` and empty names have none (reference error `get mount destination failed`). */
export function destinationName(dest: string): Result<string, string> {
  const name = path.posix.basename(path.posix.normalize(dest));
  return name === '' || name === '/' || name === '.' || name === '..'
    ? err('get mount destination failed')
    : ok(name);
}

/** CopyFile destination of a file or directory mount: `<share dir>/<cid>-<16 hex>-<basename(dest)>`. */
export function copyGuestPath(
  containerId: string,
  dest: string,
  random: RandomHex,
): Result<GuestPath, string> {
  return destinationName(dest).andThen((name) =>
    joinGuest(GUEST_SHARE_DIR, `${containerId}-${random(8)}-${name}`).mapErr((e) => e.message),
  );
}

/** Host and guest paths of a sandbox-scoped shared-fs volume named `name`. */
export function sharedVolumePaths(
  dirs: Pick<HostDirs, 'sharedRw' | 'sharedRo'>,
  name: string,
): Result<{ rw: HostPath; ro: HostPath; guest: GuestPath }, string> {
  const rw = joinHost(dirs.sharedRw, PASSTHROUGH, name);
  const ro = joinHost(dirs.sharedRo, PASSTHROUGH, name);
  const guest = joinGuest(GUEST_SHARE_DIR, PASSTHROUGH, name);
  if (rw.isErr()) return err(rw.error.message);
  if (ro.isErr()) return err(ro.error.message);
  if (guest.isErr()) return err(guest.error.message);
  return ok({ rw: rw.value, ro: ro.value, guest: guest.value });
}

/** A problem about `mounts[i]` of a bundle's config.json. */
export function mountProblem(source: string, field: string, value: unknown, what: string): Problem {
  return problem('mount', source, field, value, what);
}
