// Shared-fs volumes (shared_fs = virtio-fs): each canonical host source is bind-mounted once into
// the sandbox's shared dir as `sandbox-<8 hex>-<basename(src)>` (rw dir; ro dir remounted
// read-only for read-only users), seen by the guest under the share dir's `passthrough/`, with
// separate ro/rw refcounts as runtime-rs `MountedInfo` (upgrade to rw, downgrade to ro, unmount
// at zero).
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { GuestPath, HostPath } from '../paths.js';
import type { HostDirs } from './host-dirs.js';
import { sharedVolumePaths, type RandomHex } from './volumes-paths.js';

type SharedDirs = Pick<HostDirs, 'sharedRw' | 'sharedRo'>;

/** What the host must do for one acquire: a new bind, nothing, or a remount read-write. */
export type SharedBindAction = 'bind' | 'reuse' | 'upgrade-rw';
/** What the host must do for one release. */
export type SharedReleaseAction = 'keep' | 'downgrade-ro' | 'unmount' | 'unknown';

/** A host bind into the shared dir, as one container's mount uses it. */
export interface SharedFsBind {
  /** Canonical host source. */
  readonly hostSource: string;
  /** Bind target in the rw shared dir. */
  readonly hostPath: HostPath;
  /** The same entry in the ro dir (remounted read-only when no user needs rw). */
  readonly hostReadOnlyPath: HostPath;
  readonly guestPath: GuestPath;
  readonly readOnly: boolean;
  readonly action: SharedBindAction;
}

interface Mounted {
  readonly hostPath: HostPath;
  readonly hostReadOnlyPath: HostPath;
  readonly guestPath: GuestPath;
  ro: number;
  rw: number;
}

export class SharedFsVolumes {
  readonly #dirs: SharedDirs;
  readonly #mounted = new Map<string, Mounted>();

  /** `dirs`: the sandbox's rw and ro shared dirs (`HostDirs`, rootless-prefixed when rootless). */
  constructor(dirs: SharedDirs) {
    this.#dirs = dirs;
  }

  /** One more user of `canonicalSource`, read-only or not. */
  acquire(
    canonicalSource: string,
    readOnly: boolean,
    random: RandomHex,
  ): Result<SharedFsBind, string> {
    const known = this.#mounted.get(canonicalSource);
    if (known !== undefined) {
      const upgrade = !readOnly && known.rw === 0;
      if (readOnly) known.ro++;
      else known.rw++;
      return ok({
        hostSource: canonicalSource,
        ...this.#paths(known),
        readOnly,
        action: upgrade ? 'upgrade-rw' : 'reuse',
      });
    }
    const base = path.posix.basename(canonicalSource) || 'root';
    const paths = sharedVolumePaths(this.#dirs, `sandbox-${random(4)}-${base}`);
    if (paths.isErr()) return err(paths.error);
    const entry: Mounted = {
      hostPath: paths.value.rw,
      hostReadOnlyPath: paths.value.ro,
      guestPath: paths.value.guest,
      ro: readOnly ? 1 : 0,
      rw: readOnly ? 0 : 1,
    };
    this.#mounted.set(canonicalSource, entry);
    return ok({ hostSource: canonicalSource, ...this.#paths(entry), readOnly, action: 'bind' });
  }

  /** One user fewer; unmount at zero, downgrade when the last rw user leaves and ro users remain. */
  release(canonicalSource: string, readOnly: boolean): SharedReleaseAction {
    const known = this.#mounted.get(canonicalSource);
    if (known === undefined || (readOnly ? known.ro : known.rw) === 0) return 'unknown';
    if (readOnly) known.ro--;
    else known.rw--;
    if (known.ro + known.rw === 0) {
      this.#mounted.delete(canonicalSource);
      return 'unmount';
    }
    return !readOnly && known.rw === 0 ? 'downgrade-ro' : 'keep';
  }

  /** ro/rw counts for a source, or undefined. */
  counts(canonicalSource: string): { ro: number; rw: number } | undefined {
    const m = this.#mounted.get(canonicalSource);
    return m === undefined ? undefined : { ro: m.ro, rw: m.rw };
  }

  #paths(m: Mounted) {
    return { hostPath: m.hostPath, hostReadOnlyPath: m.hostReadOnlyPath, guestPath: m.guestPath };
  }
}
