// virtio-fs "watchable" mounts (runtime-rs `virtio_fs_share_mount.rs`, kata-types
// `is_watchable_mount`, vectors §2.3): a small configmap or secret shared over virtio-fs is
// mounted by the agent as `watchable-bind` under `passthrough/watchable/`, where the agent polls
// it for changes (inotify does not cross virtio-fs).
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { joinGuest, type GuestPath } from '../paths.js';
import type { PathFact } from './host-facts.js';
import { isConfigmap, isSecret } from './k8s-paths.js';
import { GUEST_SHARE_DIR, PASSTHROUGH } from './volumes-paths.js';
import type { StorageInit } from './volumes-storage.js';

/** At most this many files keep a mount watchable (the agent has a similar cap). */
export const WATCHABLE_FILE_LIMIT = 8;
export const WATCHABLE_DIR = 'watchable';
export const WATCHABLE_BIND_DRIVER = 'watchable-bind';

/** kata-types `is_watchable_mount`: a secret or configmap path holding 1..8 files (a file counts 1). */
export function isWatchableMount(source: string, fact: PathFact): boolean {
  if (source === '' || fact.kind === 'missing' || !(isSecret(source) || isConfigmap(source)))
    return false;
  const count = fact.kind === 'dir' ? (fact.fileCount ?? 0) : 1;
  return count > 0;
}

/** The watchable-bind Storage over a shared volume's guest path, and the mount point the container binds. */
export function watchableStorage(
  sharedGuestPath: GuestPath,
  options: readonly string[],
): Result<{ storage: StorageInit; guestPath: GuestPath }, string> {
  const mountPoint = joinGuest(
    GUEST_SHARE_DIR,
    PASSTHROUGH,
    WATCHABLE_DIR,
    path.posix.basename(sharedGuestPath),
  );
  if (mountPoint.isErr()) return err(mountPoint.error.message);
  return ok({
    guestPath: mountPoint.value,
    storage: {
      driver: WATCHABLE_BIND_DRIVER,
      source: sharedGuestPath,
      fstype: 'bind',
      options: [...options],
      mountPoint: mountPoint.value,
    },
  });
}
